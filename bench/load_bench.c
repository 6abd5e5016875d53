/* Loading a model: mapped, read, copied from memory, compressed
 * (docs/performance.md "Loading models").
 *
 *   load_bench [--quick] [--repeat N] [--dir DIR]
 *
 * It writes the benchmark's M model (25.4 M parameters; --quick: a tiny
 * one) to DIR (default: a new directory under $TMPDIR or /tmp, removed at
 * the end) twice: as td_model_save writes it (tensors stored, mappable) and
 * with every tensor zlib-compressed (the internal writer option). Then, for
 * each way of loading, with the file's pages dropped from the page cache
 * first (cold, posix_fadvise DONTNEED) and already cached (warm), a fresh
 * copy of the program (`--child`) loads the model once and reports:
 *   - the time of the load call (for load_memory: reading the file into a
 *     buffer, then td_model_load_memory, both timed);
 *   - peak RSS during the load over the process's RSS before it (VmHWM and
 *     VmRSS from /proc/self/status), and the RSS the loaded model keeps,
 *     anonymous and file-backed (RssAnon, RssFile).
 * The median of N children is printed (N = --repeat, default 5).
 *
 * Sharing: two children load the same file, each samples a few steps (so
 * that every weight has been read), and wait; the parent reads their
 * /proc/<pid>/smaps_rollup: Rss counts a shared page in full in each
 * process, Pss splits it between the processes that map it. Done for the
 * mapped load and, as the contrast, for the copying one.
 *
 * The ways of loading:
 *   mapped      td_model_load (maps the file, no copy)
 *   read        the same path with mapping refused (tdi_model_load_file with
 *               try_map = 0): what td_model_load does when it cannot map
 *   memory      fread of the whole file, then td_model_load_memory
 *   compressed  td_model_load of the compressed file (mapped, decompressed
 *               into memory)
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "model/model_io.h"
#include "textdiff/textdiff.h"

static const char *const MODES[] = { "mapped", "read", "memory", "compressed" };
#define N_MODES 4

static void check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "load_bench: %s: %s: %s\n", what, td_status_string(st),
            td_last_error_message());
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double mib(long kib) { return kib / 1024.0; }

/* A field of /proc/self/status or /proc/<pid>/smaps_rollup, in kB. */
static long proc_kb(const char *file, const char *field)
{
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static td_model *load(const char *mode, const char *path, double *ms)
{
    td_model *m = NULL;
    double t0 = now_ms();
    if (strcmp(mode, "mapped") == 0 || strcmp(mode, "compressed") == 0) {
        check(td_model_load(path, NULL, &m), path);
    } else if (strcmp(mode, "read") == 0) {
        check(tdi_model_load_file(path, NULL, 0, &m), path);
    } else {
        FILE *f = fopen(path, "rb");
        struct stat sb;
        if (!f || stat(path, &sb) != 0) {
            perror(path);
            exit(1);
        }
        unsigned char *buf = malloc((size_t)sb.st_size);
        if (!buf || fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
            perror(path);
            exit(1);
        }
        fclose(f);
        check(td_model_load_memory(buf, (size_t)sb.st_size, NULL, &m), path);
        free(buf);
    }
    *ms = now_ms() - t0;
    return m;
}

/* One load in a fresh process, as one line: the time (ms), then in kB the
 * peak RSS over the RSS before the load, and the anonymous and file-backed
 * RSS the loaded model added. */
static int child_load(const char *mode, const char *path, int cold)
{
    if (cold) drop_cache(path);
    const char *st = "/proc/self/status";
    long before = proc_kb(st, "VmRSS"), anon0 = proc_kb(st, "RssAnon");
    long file0 = proc_kb(st, "RssFile");
    double ms;
    td_model *m = load(mode, path, &ms);
    printf("%.3f %ld %ld %ld\n", ms, proc_kb(st, "VmHWM") - before,
           proc_kb(st, "RssAnon") - anon0, proc_kb(st, "RssFile") - file0);
    td_model_free(m);
    return 0;
}

/* Load, sample until every weight has been read, say so, wait for EOF. */
static int child_share(const char *mode, const char *path)
{
    double ms;
    td_model *m = load(mode, path, &ms);
    td_schedule_config sc;
    td_schedule *s;
    check(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR), "schedule");
    check(td_schedule_create(&sc, NULL, &s), "schedule");
    td_sampler_config c;
    check(td_sampler_config_default(&c), "sampler");
    c.steps = 4;
    c.max_seq_len = 64;
    td_sampler *smp;
    check(td_sampler_create(m, s, &c, &smp), "sampler");
    int32_t canvas[64];
    for (int i = 0; i < 64; i++) canvas[i] = 256; /* [MASK] */
    check(td_sampler_generate(smp, canvas, 1, 64, NULL, NULL, NULL), "generate");
    printf("ready\n");
    fflush(stdout);
    char b;
    while (read(STDIN_FILENO, &b, 1) > 0) {
    }
    td_sampler_free(smp);
    td_schedule_free(s);
    td_model_free(m);
    return 0;
}

/* ---- the parent ----------------------------------------------------------- */

typedef struct child {
    pid_t pid;
    FILE *out; /* its stdout */
    int in;    /* its stdin */
} child;

static child spawn(char *const argv[])
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0) {
        perror("load_bench: pipe");
        exit(1);
    }
    /* The parent's ends must not leak into later children: a child whose
     * stdin another child also holds open never sees its end. */
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    child c;
    c.pid = fork();
    if (c.pid < 0) {
        perror("load_bench: fork");
        exit(1);
    }
    if (c.pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(in[0], STDIN_FILENO);
        close(out[0]);
        close(out[1]);
        close(in[0]);
        close(in[1]);
        execv(argv[0], argv);
        fprintf(stderr, "load_bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    c.out = fdopen(out[0], "r");
    c.in = in[1];
    return c;
}

static void reap(child *c)
{
    close(c->in);
    fclose(c->out);
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "load_bench: a child failed (status %d)\n", status);
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void measure_loads(const char *self, const char *plain, const char *packed, int repeat)
{
    printf("\n%-11s %-5s %10s %14s %13s %13s\n", "load", "cache", "time (ms)",
           "peak +RSS MiB", "+anon MiB", "+file MiB");
    for (int mode = 0; mode < N_MODES; mode++)
        for (int cold = 1; cold >= 0; cold--) {
            double ms[64], peak[64], anon[64], file[64];
            const char *path = mode == 3 ? packed : plain;
            for (int r = 0; r < repeat; r++) {
                char *argv[] = { (char *)self, "--child", (char *)MODES[mode], (char *)path,
                                 cold ? "cold" : "warm", NULL };
                child c = spawn(argv);
                long pk, an, fi;
                if (fscanf(c.out, "%lf %ld %ld %ld", &ms[r], &pk, &an, &fi) != 4) {
                    fprintf(stderr, "load_bench: no result from a child\n");
                    exit(1);
                }
                reap(&c);
                peak[r] = mib(pk);
                anon[r] = mib(an);
                file[r] = mib(fi);
            }
            printf("%-11s %-5s %10.1f %14.1f %13.1f %13.1f\n", MODES[mode],
                   cold ? "cold" : "warm", median(ms, repeat), median(peak, repeat),
                   median(anon, repeat), median(file, repeat));
        }
}

/* Rss and Pss (kB) of the mappings of `path` in process `pid`. */
static void file_mapping_kb(pid_t pid, const char *path, long *rss, long *pss)
{
    char name[64], line[4352];
    snprintf(name, sizeof name, "/proc/%ld/smaps", (long)pid);
    *rss = *pss = 0;
    FILE *f = fopen(name, "r");
    if (!f) return;
    size_t n = strlen(path);
    int in_file = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        int header = len > 0 && strchr("0123456789abcdef", line[0]) && strchr(line, '-') &&
                     strchr(line, '-') < strchr(line, ' ');
        if (header) {
            in_file = len >= n && strcmp(line + len - n, path) == 0;
            continue;
        }
        if (!in_file) continue;
        if (strncmp(line, "Rss:", 4) == 0) *rss += strtol(line + 4, NULL, 10);
        if (strncmp(line, "Pss:", 4) == 0) *pss += strtol(line + 4, NULL, 10);
    }
    fclose(f);
}

static void measure_sharing(const char *self, const char *plain)
{
    printf("\n%-7s %-8s %12s %12s %16s %16s\n", "load", "process", "Rss MiB", "Pss MiB",
           "file's Rss MiB", "file's Pss MiB");
    static const char *const modes[] = { "mapped", "read" };
    for (int k = 0; k < 2; k++) {
        child c[2];
        for (int i = 0; i < 2; i++) {
            char *argv[] = { (char *)self, "--share", (char *)modes[k], (char *)plain, NULL };
            c[i] = spawn(argv);
        }
        for (int i = 0; i < 2; i++) {
            char line[32];
            if (!fgets(line, sizeof line, c[i].out) || strcmp(line, "ready\n") != 0) {
                fprintf(stderr, "load_bench: a sampling child did not get ready\n");
                exit(1);
            }
        }
        for (int i = 0; i < 2; i++) {
            char file[64];
            snprintf(file, sizeof file, "/proc/%ld/smaps_rollup", (long)c[i].pid);
            long rss = proc_kb(file, "Rss"), pss = proc_kb(file, "Pss"), frss, fpss;
            file_mapping_kb(c[i].pid, plain, &frss, &fpss);
            printf("%-7s %-8d %12.1f %12.1f %16.1f %16.1f\n", modes[k], i + 1, mib(rss),
                   mib(pss), mib(frss), mib(fpss));
        }
        for (int i = 0; i < 2; i++) reap(&c[i]);
    }
}

static void write_models(const char *dir, int quick, char *plain, char *packed, size_t cap)
{
    td_model_config mc;
    check(td_model_config_default(&mc), "config");
    mc.d_model = quick ? 64 : 512;
    mc.n_layers = quick ? 2 : 8;
    mc.n_heads = quick ? 2 : 8;
    mc.d_ff = 4 * mc.d_model;
    td_model *m;
    check(td_model_create(&mc, 1, NULL, &m), "model");
    td_tokenizer *tok;
    check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
    check(td_model_set_tokenizer(m, tok), "tokenizer");
    td_tokenizer_free(tok);
    uint64_t n;
    check(td_model_num_params(m, &n), "parameters");
    snprintf(plain, cap, "%s/model.tdm", dir);
    snprintf(packed, cap, "%s/model-zlib.tdm", dir);
    double t0 = now_ms();
    check(td_model_save(m, plain), plain);
    double t1 = now_ms();
    tdi_ckpt_writer *w;
    check(tdi_ckpt_writer_create(NULL, &w), "writer");
    check(tdi_model_write(m, w, TDI_FORMAT_MODEL, TDI_CKPT_COMPRESS), "writer");
    check(tdi_ckpt_write_file(w, packed), packed);
    double t2 = now_ms();
    tdi_ckpt_writer_free(w);
    td_model_free(m);
    struct stat a, b;
    if (stat(plain, &a) != 0 || stat(packed, &b) != 0) {
        perror("load_bench: stat");
        exit(1);
    }
    printf("model: d_model %d, %d layers, %llu parameters\n", mc.d_model, mc.n_layers,
           (unsigned long long)n);
    printf("stored file:     %.1f MiB, saved in %.0f ms\n", a.st_size / 1048576.0, t1 - t0);
    printf("compressed file: %.1f MiB, saved in %.0f ms\n", b.st_size / 1048576.0, t2 - t1);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_load(argv[2], argv[3], strcmp(argv[4], "cold") == 0);
    if (argc == 4 && strcmp(argv[1], "--share") == 0) return child_share(argv[2], argv[3]);

    int quick = 0, repeat = 5;
    const char *dir_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_arg = argv[++i];
        } else {
            fprintf(stderr, "usage: load_bench [--quick] [--repeat N] [--dir DIR]\n");
            return 2;
        }
    }
    if (repeat < 1 || repeat > 64) {
        fprintf(stderr, "load_bench: --repeat must be in 1..64\n");
        return 2;
    }
    if (quick) repeat = 1;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("load_bench: /proc/self/exe");
        return 1;
    }
    self[len] = '\0';
    char dir[4096];
    if (dir_arg) {
        /* Absolute and resolved: the children's smaps name it that way. */
        if (!realpath(dir_arg, dir)) {
            perror(dir_arg);
            return 1;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/td-load-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("load_bench: mkdtemp");
            return 1;
        }
    }
    char plain[4200], packed[4200];
    write_models(dir, quick, plain, packed, sizeof plain);
    measure_loads(self, plain, packed, repeat);
    measure_sharing(self, plain);
    if (!dir_arg) {
        remove(plain);
        remove(packed);
        rmdir(dir);
    }
    return 0;
}
