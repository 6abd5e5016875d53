/* Reduced-precision weights, measured (docs/performance.md "Reduced
 * precision"): for each model, its float32 checkpoint against the bf16 and
 * q8_0 conversions (td_model_convert), saved and loaded back as a host
 * would —
 *   - size: the checkpoint file, and the peak resident memory of a child
 *     process that loads it (mapped) and generates once;
 *   - speed: CPU time (this process's, CLOCK_PROCESS_CPUTIME_ID: the
 *     machine is shared) per forward pass of sampling, median of
 *     interleaved repetitions, and the tokens generated per CPU second;
 *     and the bare products (the int8 and bf16 kernels against cblas_sgemm)
 *     on the models' shapes;
 *   - quality: NELBO and the per-rate losses on the validation windows of
 *     the corpus (the same masks for every dtype), and how many sampled
 *     tokens differ from the float32 model's with the same seed.
 * The output is plain text and one JSON line per model. Run it with
 * OPENBLAS_NUM_THREADS=1: OpenBLAS's own threads spin on a busy machine and
 * their CPU time counts. --kernels: the products only; --quick: a smoke
 * run. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "textdiff/textdiff.h"

#define N_RATES 10
#define N_DT 3

static const char *dt_name[N_DT] = { "f32", "bf16", "q8_0" };

static void check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "quant_bench: %s: %s (%s)\n", what, td_status_string(st),
            td_last_error_message());
    exit(1);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* VmHWM of this process, in KiB. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kib;
}

typedef struct opts {
    int windows, times, reps, seq_len, batch, steps;
} opts;

static void generate(const td_model *m, const td_schedule *s, const opts *o, uint64_t seed,
                     int32_t *canvas, td_sample_stats *stats)
{
    td_sampler_config c;
    td_sampler_config_default(&c);
    c.steps = o->steps;
    c.max_batch = o->batch;
    c.seed = seed;
    td_sampler *smp;
    check(td_sampler_create(m, s, &c, &smp), "td_sampler_create");
    td_model_config mc = { .struct_size = sizeof mc };
    td_model_get_config(m, &mc);
    for (int i = 0; i < o->batch * o->seq_len; i++) canvas[i] = mc.mask_id;
    stats->struct_size = sizeof *stats;
    check(td_sampler_generate(smp, canvas, o->batch, o->seq_len, NULL, NULL, stats),
          "td_sampler_generate");
    td_sampler_free(smp);
}

/* A child that loads `path`, generates once and reports its peak RSS. */
static long child_rss_kib(const char *path, const td_schedule *s, const opts *o)
{
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        td_model *m;
        check(td_model_load(path, NULL, &m), path);
        int32_t *canvas = malloc(sizeof *canvas * (size_t)(o->batch * o->seq_len));
        td_sample_stats st;
        generate(m, s, o, 1, canvas, &st);
        long kib = peak_rss_kib();
        ssize_t w = write(fd[1], &kib, sizeof kib);
        _exit(w == (ssize_t)sizeof kib ? 0 : 1);
    }
    close(fd[1]);
    long kib = -1;
    if (read(fd[0], &kib, sizeof kib) != (ssize_t)sizeof kib) kib = -1;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return kib;
}

/* GMAC/s of y [n, out] = x [n, in] · wᵀ: sgemm against the dtype's kernel,
 * one thread, median of interleaved runs. */
static void kernel_speed(int n, int in, int out, int reps, double gmac[N_DT])
{
    float *x = malloc(sizeof *x * (size_t)n * in), *w = malloc(sizeof *w * (size_t)out * in);
    float *y = malloc(sizeof *y * (size_t)n * out);
    void *wq[N_DT] = { w, malloc(tdi_wt_bytes(TDI_WT_BF16, (size_t)out * in)),
                       malloc(tdi_wt_bytes(TDI_WT_Q8_0, (size_t)out * in)) };
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)((i * 7919 % 1000) / 500.0 - 1);
    for (size_t i = 0; i < (size_t)out * in; i++) w[i] = (float)((i * 104729 % 1000) / 5e4 - 0.01);
    tdi_quantize(TDI_WT_BF16, wq[1], w, (size_t)out * in);
    tdi_quantize(TDI_WT_Q8_0, wq[2], w, (size_t)out * in);
    double t[N_DT][64];
    for (int r = 0; r < reps; r++)
        for (int d = 0; d < N_DT; d++) {
            double t0 = cpu_seconds();
            int k = 0;
            do {
                tdi_linear_forward_q(y, x, wq[d], d, NULL, NULL, n, in, out, NULL);
                k++;
            } while (cpu_seconds() - t0 < 0.05);
            t[d][r] = (cpu_seconds() - t0) / k;
        }
    for (int d = 0; d < N_DT; d++)
        gmac[d] = (double)n * in * out / median(t[d], reps) * 1e-9;
    free(x), free(w), free(y), free(wq[1]), free(wq[2]);
}

static void run_model(const char *path, const char *corpus_path, const char *tmpdir,
                      const opts *o)
{
    td_model *m[N_DT];
    char saved[N_DT][512];
    long fsize[N_DT];
    check(td_model_load(path, NULL, &m[0]), path);
    snprintf(saved[0], sizeof saved[0], "%s", path);
    for (int d = 1; d < N_DT; d++) {
        td_model *q;
        check(td_model_convert(m[0], d, NULL, &q), "td_model_convert");
        snprintf(saved[d], sizeof saved[d], "%s/quant_bench_%s.tdm", tmpdir, dt_name[d]);
        check(td_model_save(q, saved[d]), saved[d]);
        td_model_free(q);
        check(td_model_load(saved[d], NULL, &m[d]), saved[d]); /* as a host would */
    }
    for (int d = 0; d < N_DT; d++) fsize[d] = file_bytes(saved[d]);

    td_schedule_config scfg;
    td_schedule_config_default(&scfg, TD_SCHEDULE_LOGLINEAR);
    td_schedule *s;
    check(td_schedule_create(&scfg, NULL, &s), "td_schedule_create");

    long rss[N_DT];
    for (int d = 0; d < N_DT; d++) rss[d] = child_rss_kib(saved[d], s, o);

    /* Speed: interleaved, CPU time per forward pass. */
    size_t cells = (size_t)o->batch * o->seq_len;
    int32_t *canvas[N_DT];
    for (int d = 0; d < N_DT; d++) canvas[d] = malloc(sizeof(int32_t) * cells);
    double per_call[N_DT][64], tok_s[N_DT][64];
    int64_t calls = 0;
    for (int r = 0; r < o->reps; r++)
        for (int d = 0; d < N_DT; d++) {
            td_sample_stats st;
            double t0 = cpu_seconds();
            generate(m[d], s, o, 1, canvas[d], &st);
            double dt = cpu_seconds() - t0;
            per_call[d][r] = dt / (double)st.model_calls;
            tok_s[d][r] = (double)cells / dt;
            calls = st.model_calls;
        }
    int differ[N_DT] = { 0 };
    for (int d = 1; d < N_DT; d++)
        for (size_t i = 0; i < cells; i++) differ[d] += canvas[d][i] != canvas[0][i];

    /* Quality: the same validation windows and masks for every dtype. */
    td_tokenizer *tok;
    check(td_model_get_tokenizer(m[0], NULL, &tok), "td_model_get_tokenizer");
    td_corpus *corpus;
    check(td_corpus_load(corpus_path, tok, NULL, &corpus), corpus_path);
    uint64_t n_win;
    check(td_corpus_num_windows(corpus, TD_SPLIT_VALID, o->seq_len, &n_win), "windows");
    if (o->windows > 0 && (uint64_t)o->windows < n_win) n_win = (uint64_t)o->windows;
    int32_t *valid = malloc(sizeof *valid * (size_t)n_win * (size_t)o->seq_len);
    uint64_t total;
    check(td_corpus_num_windows(corpus, TD_SPLIT_VALID, o->seq_len, &total), "windows");
    for (uint64_t w = 0; w < n_win; w++) /* spread evenly over the split */
        check(td_corpus_window(corpus, TD_SPLIT_VALID, o->seq_len, w * (total / n_win),
                               valid + w * (uint64_t)o->seq_len), "td_corpus_window");
    td_eval_config ec;
    td_eval_config_default(&ec);
    ec.seq_len = o->seq_len;
    ec.n_times = o->times;
    ec.bytes_per_token = 1;
    double rates[N_RATES], loss[N_DT][N_RATES], nelbo[N_DT], se[N_DT];
    for (int j = 0; j < N_RATES; j++) rates[j] = 0.05 + 0.1 * j;
    int64_t n_tok = (int64_t)n_win * o->seq_len;
    for (int d = 0; d < N_DT; d++) {
        td_eval_result res = { .struct_size = sizeof res };
        check(td_eval_nelbo(m[d], valid, n_tok, &ec, &res), "td_eval_nelbo");
        nelbo[d] = res.bits_per_byte;
        se[d] = res.std_error_nats / log(2.0);
        check(td_eval_rates(m[d], valid, n_tok, rates, N_RATES, &ec, loss[d], NULL),
              "td_eval_rates");
    }

    printf("\n%s: %llu validation windows of %d, %d times; sampling %d x %d, %d steps "
           "(%lld forward passes), 1 thread, %d interleaved repetitions\n",
           path, (unsigned long long)n_win, o->seq_len, o->times, o->batch, o->seq_len,
           o->steps, (long long)calls, o->reps);
    printf("%-6s %10s %9s %11s %9s %9s %7s %8s  %s\n", "dtype", "file", "peak RSS",
           "ms/forward", "tokens/s", "NELBO", "dNELBO", "differ", "loss at rates 0.05..0.95 "
           "(nats/token; relative change)");
    double med_call[N_DT], med_tok[N_DT];
    for (int d = 0; d < N_DT; d++) {
        med_call[d] = median(per_call[d], o->reps);
        med_tok[d] = median(tok_s[d], o->reps);
        printf("%-6s %10ld %6ld Ki %11.2f %9.0f %9.4f %+6.2f%% %8d ", dt_name[d], fsize[d],
               rss[d], 1e3 * med_call[d], med_tok[d], nelbo[d],
               100 * (nelbo[d] / nelbo[0] - 1), differ[d]);
        for (int j = 0; j < N_RATES; j++)
            printf(d ? " %+.2f%%" : " %.3f", d ? 100 * (loss[d][j] / loss[0][j] - 1)
                                                : loss[0][j]);
        printf("\n");
    }
    printf("(NELBO in bits/byte; its standard error across windows: %.4f; differ: sampled "
           "tokens unlike the f32 model's, of %zu)\n", se[0], cells);
    printf("{\"model\":\"%s\",\"windows\":%llu", path, (unsigned long long)n_win);
    for (int d = 0; d < N_DT; d++) {
        printf(",\"%s\":{\"file\":%ld,\"rss_kib\":%ld,\"ms_per_forward\":%.3f,"
               "\"tokens_per_s\":%.1f,\"nelbo_bpb\":%.5f,\"differ\":%d,\"rate_loss\":[",
               dt_name[d], fsize[d], rss[d], 1e3 * med_call[d], med_tok[d], nelbo[d],
               differ[d]);
        for (int j = 0; j < N_RATES; j++) printf("%s%.5f", j ? "," : "", loss[d][j]);
        printf("]}");
    }
    printf("}\n");
    fflush(stdout);

    free(valid);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    for (int d = 0; d < N_DT; d++) {
        free(canvas[d]);
        td_model_free(m[d]);
        if (d) unlink(saved[d]);
    }
    td_schedule_free(s);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when redirected */
    opts o = { 64, 8, 5, 128, 1, 64 };
    const char *corpus = TD_SOURCE_DIR "/data/kjv.txt.gz", *tmpdir = "/tmp";
    const char *models[8];
    int n_models = 0, quick = 0, kernels_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) { quick = 1; continue; }
        if (!strcmp(a, "--kernels")) { kernels_only = 1; continue; }
        if (!v) { fprintf(stderr, "quant_bench: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--model") && n_models < 8) models[n_models++] = v;
        else if (!strcmp(a, "--corpus")) corpus = v;
        else if (!strcmp(a, "--tmpdir")) tmpdir = v;
        else if (!strcmp(a, "--windows")) o.windows = atoi(v);
        else if (!strcmp(a, "--times")) o.times = atoi(v);
        else if (!strcmp(a, "--reps")) o.reps = atoi(v);
        else if (!strcmp(a, "--steps")) o.steps = atoi(v);
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else { fprintf(stderr, "quant_bench: unknown option %s\n", a); return 2; }
    }
    if (o.reps < 1 || o.reps > 64) o.reps = 5;
    if (quick) {
        o.windows = 4, o.times = 2, o.reps = 1, o.steps = 4, o.seq_len = 32;
    }
    if (n_models == 0) {
        models[n_models++] = TD_SOURCE_DIR "/models/mlm.tdm";
        models[n_models++] = TD_SOURCE_DIR "/models/diffusion.tdm";
    }
    td_runtime_info ri = { .struct_size = sizeof ri };
    td_runtime_info_get(&ri);
    double load[3] = { 0 };
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(f);
    }
    printf("BLAS %s (%s, %d threads), CPU features 0x%x (AVX512-VNNI %s, AVX512-BF16 %s, AMX %s); "
           "load average %.2f %.2f %.2f\n", ri.blas_name, ri.blas_core, ri.blas_threads,
           ri.cpu_features,
           ri.cpu_features & TD_CPU_AVX512_VNNI ? "yes" : "no",
           ri.cpu_features & TD_CPU_AVX512_BF16 ? "yes" : "no",
           ri.cpu_features & TD_CPU_AMX_TILE ? "yes" : "no", load[0], load[1], load[2]);
    /* The products alone, on the shapes of one sampling forward pass. */
    static const int shapes[][3] = { { 128, 256, 768 }, { 128, 256, 1024 }, { 128, 1024, 256 },
                                     { 16, 256, 1024 }, { 1, 256, 1024 } };
    printf("products, 1 thread, GMAC/s (n x in -> out):  sgemm   bf16   q8_0\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double g[N_DT];
        kernel_speed(shapes[i][0], shapes[i][1], shapes[i][2], quick ? 1 : o.reps, g);
        printf("  %4d x %4d -> %4d %25.1f %6.1f %6.1f\n", shapes[i][0], shapes[i][1],
               shapes[i][2], g[0], g[1], g[2]);
    }
    for (int i = 0; !kernels_only && i < n_models; i++) run_model(models[i], corpus, tmpdir, &o);
    return 0;
}
