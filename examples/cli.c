#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage_exit(const char *usage, const cli_flag *flags, int n, int code)
{
    FILE *out = code ? stderr : stdout;
    fprintf(out, "%s\n\noptions:\n", usage);
    for (int i = 0; i < n; i++) {
        const char *arg = flags[i].kind == CLI_SWITCH ? "" : flags[i].kind == CLI_STRING ? " S"
                                                                                          : " N";
        fprintf(out, "  --%s%-*s %s", flags[i].name, (int)(18 - strlen(flags[i].name)), arg,
                flags[i].help);
        switch (flags[i].kind) {
        case CLI_INT: fprintf(out, " [%d]", *(int *)flags[i].value); break;
        case CLI_I64: fprintf(out, " [%lld]", (long long)*(int64_t *)flags[i].value); break;
        case CLI_FLOAT: fprintf(out, " [%g]", *(double *)flags[i].value); break;
        case CLI_STRING: {
            const char *s = *(const char **)flags[i].value;
            if (s) fprintf(out, " [%s]", s);
            break;
        }
        case CLI_SWITCH: break;
        }
        fputc('\n', out);
    }
    exit(code);
}

void cli_parse(int argc, char **argv, const char *usage, cli_flag *flags, int n_flags,
               char ***rest, int *n_rest)
{
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) usage_exit(usage, flags, n_flags, 0);
        if (strncmp(a, "--", 2) != 0) {
            pos[np++] = argv[i];
            continue;
        }
        int found = 0;
        for (int f = 0; f < n_flags && !found; f++) {
            if (strcmp(a + 2, flags[f].name) != 0) continue;
            found = 1;
            if (flags[f].kind == CLI_SWITCH) {
                *(int *)flags[f].value = 1;
                continue;
            }
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --%s needs a value\n", argv[0], flags[f].name);
                exit(2);
            }
            const char *v = argv[++i];
            char *end = NULL;
            switch (flags[f].kind) {
            case CLI_INT: *(int *)flags[f].value = (int)strtol(v, &end, 10); break;
            case CLI_I64: *(int64_t *)flags[f].value = strtoll(v, &end, 10); break;
            case CLI_FLOAT: *(double *)flags[f].value = strtod(v, &end); break;
            case CLI_STRING: *(const char **)flags[f].value = v; break;
            case CLI_SWITCH: break;
            }
            if (end != NULL && (*end != '\0' || end == v)) {
                fprintf(stderr, "%s: --%s: '%s' is not a number\n", argv[0], flags[f].name, v);
                exit(2);
            }
        }
        if (!found) {
            fprintf(stderr, "%s: unknown option %s (try --help)\n", argv[0], a);
            exit(2);
        }
    }
    if (rest) {
        *rest = pos;
        *n_rest = np;
    } else {
        if (np > 0) {
            fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], pos[0]);
            exit(2);
        }
        free(pos);
    }
}

void cli_check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "error: %s: %s (%s)\n", what, td_last_error_message(), td_status_string(st));
    exit(1);
}

int cli_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* dir/name into buf (exits when it does not fit). */
static const char *join(char *buf, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) {
        fprintf(stderr, "error: %s: path too long\n", dir);
        exit(1);
    }
    return buf;
}

void cli_load_hf(const char *dir, td_model **m, td_tokenizer **tok)
{
    char path[4096];
    if (access(join(path, sizeof path, dir, "config.json"), R_OK) != 0) {
        fprintf(stderr,
                "error: %s: no config.json: not a Hugging Face model directory "
                "(config.json, model.safetensors and the tokenizer's files)\n",
                dir);
        exit(1);
    }
    cli_check(td_tokenizer_load_hf(dir, NULL, tok), dir);
    int32_t mask, n_tok, n_model;
    cli_check(td_tokenizer_special_id(*tok, TD_TOKEN_MASK, &mask), dir);
    cli_check(td_tokenizer_vocab_size(*tok, &n_tok), dir);
    cli_check(td_model_load_hf(dir, mask, 0, NULL, m), dir);
    td_model_config mc;
    cli_check(td_model_config_default(&mc), "model config");
    cli_check(td_model_get_config(*m, &mc), dir);
    n_model = mc.vocab_size;
    if (n_tok != n_model) {
        fprintf(stderr,
                "error: %s: the tokenizer has %d tokens but the model's vocab_size is %d: "
                "they do not belong together\n",
                dir, (int)n_tok, (int)n_model);
        exit(1);
    }
    cli_check(td_model_set_tokenizer(*m, *tok), dir);
}

int cli_copy_hf_tokenizer(const char *from, const char *to)
{
    static const char *const files[] = { "tokenizer.json", "tokenizer_config.json",
                                         "special_tokens_map.json", "vocab.txt", "vocab.json",
                                         "merges.txt" };
    int n = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[4096], dst[4096], tmp[4200], buf[65536];
        FILE *in = fopen(join(src, sizeof src, from, files[i]), "rb");
        if (in == NULL) continue;
        join(dst, sizeof dst, to, files[i]);
        snprintf(tmp, sizeof tmp, "%s.tmp", dst);
        FILE *out = fopen(tmp, "wb");
        int ok = out != NULL;
        size_t got;
        while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, out) == got;
        ok = ok && !ferror(in);
        if (out != NULL && fclose(out) != 0) ok = 0;
        fclose(in);
        if (!ok || rename(tmp, dst) != 0) {
            perror(dst);
            remove(tmp);
            exit(1);
        }
        n++;
    }
    return n;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_print_runtime(FILE *out, int threads, int full)
{
    td_runtime_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    if (td_runtime_info_get(&r) != TD_OK) return;
    if (full) {
        static const char *const models[] = { "serial", "pthreads", "OpenMP" };
        const char *model = r.blas_threading >= TD_BLAS_SERIAL && r.blas_threading <= TD_BLAS_OPENMP
                                ? models[r.blas_threading] : "threading unknown";
        char lib[64], blas[48];
        if (threads > 0)
            snprintf(lib, sizeof lib, "%d thread%s, %s", threads, threads == 1 ? "" : "s",
                     r.lib_threading);
        else
            snprintf(lib, sizeof lib, "%s", r.lib_threading);
        if (r.blas_threads > 0)
            snprintf(blas, sizeof blas, "%d thread%s, %s", (int)r.blas_threads,
                     r.blas_threads == 1 ? "" : "s", model);
        else
            snprintf(blas, sizeof blas, "%s", model);
        fprintf(out, "runtime: libtextdiff %s (%s); BLAS %s (core %s, %s)\n", td_version_string(),
                lib, r.blas_version[0] ? r.blas_version : r.blas_name,
                r.blas_core[0] ? r.blas_core : "unknown", blas);
    }
    if (r.blas_slow_kernel)
        fprintf(out, "note: %s, for several times faster matrix products\n", r.blas_advice);
    fflush(out);
}

void cli_progress_start(cli_progress *p, int64_t first, int64_t total)
{
    p->tty = isatty(fileno(stderr));
    p->first = first;
    p->total = total;
    p->start = cli_now();
    p->last_print = 0;
}

void cli_progress_update(cli_progress *p, int64_t done, double tokens_per_s, const char *fmt, ...)
{
    double now = cli_now();
    int last = done >= p->total;
    /* A terminal is redrawn a few times a second; a log gets a line every
     * ten seconds. */
    if (!last && now - p->last_print < (p->tty ? 0.2 : 10.0)) return;
    p->last_print = now;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    double frac = p->total > 0 ? (double)done / (double)p->total : 1.0;
    double run = (double)(done - p->first) / (double)(p->total > p->first ? p->total - p->first : 1);
    double elapsed = now - p->start;
    double eta = run > 0 ? elapsed / run - elapsed : 0;
    char bar[21];
    int filled = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
    bar[20] = '\0';
    fprintf(stderr, "%s[%s] %lld/%lld %s | %.0f tok/s | ETA %d:%02d%s", p->tty ? "\r" : "", bar,
            (long long)done, (long long)p->total, msg, tokens_per_s, (int)(eta / 60),
            (int)eta % 60, p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->tty) fputc('\n', stderr);
}

char *cli_decode(const td_tokenizer *tok, const int32_t *ids, size_t n, size_t *len)
{
    cli_check(td_tokenizer_decode(tok, ids, n, NULL, NULL, 0, len), "decode");
    char *text = malloc(*len + 1);
    if (text == NULL) cli_check(TD_ERR_NOMEM, "decode");
    cli_check(td_tokenizer_decode(tok, ids, n, NULL, text, *len + 1, len), "decode");
    return text;
}

char *cli_split_text(const td_corpus *c, const td_tokenizer *tok, td_split split, size_t *len)
{
    enum { W = 4096 }; /* a window lies inside one block of the split */
    uint64_t n_windows;
    cli_check(td_corpus_num_windows(c, split, W, &n_windows), "corpus windows");
    int32_t *ids = malloc(sizeof *ids * (size_t)(n_windows ? n_windows * W : 1));
    if (ids == NULL) cli_check(TD_ERR_NOMEM, "corpus");
    for (uint64_t w = 0; w < n_windows; w++)
        cli_check(td_corpus_window(c, split, W, w, ids + w * W), "corpus window");
    char *text = cli_decode(tok, ids, (size_t)(n_windows * W), len);
    free(ids);
    return text;
}
