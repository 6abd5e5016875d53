/* libtextdiff performance benchmark (docs/performance.md).
 *
 *   bench [--quick] [--no-pytorch] [--configs S,M,B] [--threads 1,2]
 *         [--python /usr/bin/python3,venv/bin/python] [--repeat N]
 *
 * For each configuration and thread count it starts a fresh copy of itself
 * (`--child`), so that every peak RSS belongs to one configuration, and, unless
 * --no-pytorch, the PyTorch baseline (bench/pytorch_baseline.py) under each
 * interpreter of --python with the same shapes and threads. A child measures,
 * through the public API:
 *   - training: td_trainer_step with a log-linear schedule on random tokens;
 *     tokens/s = batch · seq_len / median step time; CPU time per step; the
 *     mean time of each phase, split by the library's step profile
 *     (lib/util/profile.h);
 *   - sampling: td_sampler_generate for every strategy, exact cache off/on;
 *   - the roofline: cblas_sgemm on the step's own GEMM shapes and layouts
 *     (layers, attention, output head) and the best square product.
 * The parent prints tables, the ratios to each PyTorch, where each step goes,
 * the targets, and one line of JSON.
 *
 * Threads: a child sets the trainer's and sampler's n_threads, and leaves
 * the BLAS as its environment left it (OPENBLAS_NUM_THREADS decides whether
 * the library's threads or OpenBLAS's run the products: docs/api.md). Only
 * the roofline, measured after the library's runs, sets OpenBLAS's thread
 * count to the child's, through openblas_set_num_threads() (a weak symbol,
 * so any CBLAS links), and puts it back. The baseline gets
 * OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE before
 * torch loads, and torch.set_num_threads().
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "textdiff/textdiff.h"
#include "train/trainer.h"
#include "util/profile.h"

#ifndef TD_BENCH_DIR
#define TD_BENCH_DIR "bench"
#endif

extern void openblas_set_num_threads(int n) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

/* ---- configurations ------------------------------------------------------ */

typedef struct bench_config {
    const char *name;
    int d_model, n_layers, n_heads, d_ff;
    int vocab, bert;                               /* bert: BERT's architecture, below */
    int seq_len, batch;                            /* training */
    int sample_batch, sample_len, sample_steps;    /* sampling */
} bench_config;

/* S, M, T and the sweep: the library's defaults (byte vocabulary, RoPE,
 * pre-LN, tanh GELU). B: bert-base's shape and architecture — vocabulary
 * 30,522 with [MASK] = 103, 512 learned positions, a token-type table,
 * post-LN with the embedding LayerNorm, erf GELU, LayerNorm eps 1e-12, the
 * MLM head transform, the tied output head; random weights. The sweep is S
 * at longer sequences with S's tokens per training step (4,096) and per
 * sampling step (1,024). */
static const bench_config CONFIGS[] = {
    { "S", 256, 4, 4, 1024, 258, 0, 128, 32, 8, 128, 64 },
    { "M", 512, 8, 8, 2048, 258, 0, 256, 8, 4, 256, 128 },
    { "B", 768, 12, 12, 3072, 30522, 1, 128, 8, 1, 128, 32 },
    { "S256", 256, 4, 4, 1024, 258, 0, 256, 16, 4, 256, 64 },
    { "S512", 256, 4, 4, 1024, 258, 0, 512, 8, 2, 512, 64 },
    { "S1024", 256, 4, 4, 1024, 258, 0, 1024, 4, 1, 1024, 64 },
    /* tiny: smoke tests of the benchmark, in each architecture */
    { "T", 64, 2, 2, 256, 258, 0, 32, 4, 2, 32, 8 },
    { "TB", 64, 2, 2, 256, 1000, 1, 32, 4, 2, 32, 8 },
};
#define BERT_MASK_ID 103
#define BERT_MAX_SEQ 512
#define N_CONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

/* How much to measure. */
typedef struct bench_plan {
    int warmup;        /* untimed training steps */
    int steps;         /* timed training steps */
    int sample_timed;  /* sampling steps timed per run; 0 = all */
    int sample_prefix; /* the default of sample_timed */
    int gemm_reps;     /* repetitions per GEMM shape (the minimum is kept) */
    int micro_batch;   /* > 0: a training-only run in passes of this many sequences */
    int cache_job;     /* steps of the exact cache's job; 0: none */
} bench_plan;

static bench_plan plan_for(const bench_config *c, int quick, int full_sampling)
{
    bench_plan p;
    int big = c->d_model >= 512, huge = c->d_model >= 768;
    p.warmup = quick || huge ? 1 : 2;
    p.steps = quick ? 2 : huge ? 3 : big ? 5 : 8;
    p.sample_prefix = quick ? 4 : big ? 8 : 16;
    p.sample_timed = full_sampling ? 0 : p.sample_prefix;
    p.gemm_reps = quick ? 1 : 3;
    p.micro_batch = 0;
    /* S, M and T only (4 and 2 steps per token): on the others it would take long */
    int cache = (strlen(c->name) == 1 && !huge) || strcmp(c->name, "TB") == 0;
    p.cache_job = !cache ? 0 : quick ? c->sample_len : (big ? 2 : 4) * c->sample_len;
    return p;
}

static const struct {
    const char *name;
    int strategy;
} STRATEGIES[] = {
    { "ancestral", TD_SAMPLER_ANCESTRAL },
    { "max_prob", TD_SAMPLER_MAX_PROB },
    { "margin", TD_SAMPLER_MARGIN },
    { "entropy", TD_SAMPLER_ENTROPY },
};
#define N_STRATEGIES ((int)(sizeof STRATEGIES / sizeof STRATEGIES[0]))

/* ---- small utilities ----------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long max_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss;
}

/* CPU time used on the whole machine (from /proc/stat) and by this process,
 * to tell how much other processes took while something was timed. */
typedef struct cpu_mark {
    double machine_s, own_s, wall_s;
} cpu_mark;

static cpu_mark cpu_now(void)
{
    cpu_mark m = { NAN, NAN, now_s() };
    FILE *f = fopen("/proc/stat", "r");
    if (f != NULL) {
        unsigned long long v[8] = { 0 };
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            /* user nice system idle iowait irq softirq steal: all but idle, iowait */
            unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
            m.machine_s = (double)busy / (double)sysconf(_SC_CLK_TCK);
        }
        fclose(f);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        m.own_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                  (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    return m;
}

/* Share of the machine's CPUs that other processes used between a and b;
 * NaN for less than two seconds, which the 10 ms ticks cannot resolve. */
static double others_share(cpu_mark a, cpu_mark b)
{
    if (b.wall_s - a.wall_s < 2.0) return NAN;
    double cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
    double others = (b.machine_s - a.machine_s) - (b.own_s - a.own_s);
    double share = others / ((b.wall_s - a.wall_s) * cpus);
    return share > 0.0 ? share : 0.0;
}

static void die(const char *what, td_status st)
{
    fprintf(stderr, "bench: %s: %s (%s)\n", what, td_status_string(st),
            td_last_error_message());
    exit(1);
}

static void check(td_status st, const char *what)
{
    if (st != TD_OK) die(what, st);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
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

/* splitmix64: the benchmark's own data, independent of the library's RNG. */
static uint64_t mix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Uniform over the ordinary tokens: the bytes (vocabulary 258: [MASK] and
 * [PAD] are 256 and 257), or every id but [MASK]. */
static int32_t random_token(const td_model_config *mc, uint64_t *state)
{
    if (mc->vocab_size == 258) return (int32_t)(mix64(state) & 255u);
    int32_t x = (int32_t)(mix64(state) % (uint64_t)(mc->vocab_size - 1));
    return x + (x >= mc->mask_id);
}

/* OpenBLAS's thread count (the old one is returned), when it is OpenBLAS. */
static int set_blas_threads(int n)
{
    if (!openblas_set_num_threads || !openblas_get_num_threads) return n;
    int old = openblas_get_num_threads();
    openblas_set_num_threads(n);
    return old;
}

/* A JSON object built field by field on one line. */
typedef struct json_buf {
    char *s;
    size_t len, cap;
} json_buf;

static void jb_printf(json_buf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(json_buf *j, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->s ? j->s + j->len : NULL, j->s ? j->cap - j->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) exit(1);
        if (j->s && j->len + (size_t)n < j->cap) {
            j->len += (size_t)n;
            return;
        }
        size_t cap = (j->cap ? j->cap * 2 : 1024) + (size_t)n;
        char *s = realloc(j->s, cap);
        if (s == NULL) exit(1);
        j->s = s;
        j->cap = cap;
    }
}

static void jb_num(json_buf *j, const char *key, double v)
{
    if (isfinite(v))
        jb_printf(j, "%s\"%s\":%.6g", j->len > 1 ? "," : "", key, v);
    else
        jb_printf(j, "%s\"%s\":null", j->len > 1 ? "," : "", key);
}

static void jb_str(json_buf *j, const char *key, const char *v)
{
    jb_printf(j, "%s\"%s\":\"%s\"", j->len > 1 ? "," : "", key, v);
}

/* The number stored under "key" in a flat JSON object; NaN when absent. */
static double json_get(const char *json, const char *key)
{
    if (json == NULL) return NAN;
    char pat[160];
    if (strlen(key) > sizeof pat - 4) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL) return NAN;
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0) return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* ---- model FLOPs and the GEMMs of one training step ---------------------- */

/* The parts of a step's matrix products, as the roofline times them. */
enum { PART_LAYERS, PART_ATTENTION, PART_HEAD, N_PARTS };
static const char *const PART_NAMES[N_PARTS] = { "layers", "attention", "head" };

/* Forward matrix-product FLOPs of each part (docs/performance.md), with
 * N = B·T rows and n_m the masked rows that reach the output head:
 *   layers     L · 2·N·(4d² + 2·d·d_ff)      qkv, proj, fc, fc2
 *   attention  L · 4·B·T²·d                  Q·Kᵀ (K = hd) and P·V (K = T)
 *   head       2·n_m·d·V (+ 2·n_m·d² with BERT's head transform)
 * A training step is 3 · forward (backward: two products per forward one). */
static void forward_flops(const bench_config *c, double n_masked, int vocab,
                          double part[N_PARTS])
{
    double N = (double)c->batch * c->seq_len, d = c->d_model, ff = c->d_ff;
    double T = c->seq_len, B = c->batch;
    part[PART_LAYERS] = c->n_layers * 2.0 * N * (4.0 * d * d + 2.0 * d * ff);
    part[PART_ATTENTION] = c->n_layers * 4.0 * B * T * T * d;
    part[PART_HEAD] = 2.0 * n_masked * d * (vocab + (c->bert ? d : 0.0));
}

static double step_flops(const bench_config *c, double n_masked, int vocab)
{
    double part[N_PARTS];
    forward_flops(c, n_masked, vocab, part);
    return 3.0 * (part[PART_LAYERS] + part[PART_ATTENTION] + part[PART_HEAD]);
}

/* One linear-layer product as lib/kernels/linear.c issues it. */
typedef struct gemm_shape {
    int part;
    enum CBLAS_TRANSPOSE ta, tb;
    int M, N, K;
    float beta;
    int times; /* per step */
} gemm_shape;

/* Forward y = x·wᵀ (beta 1: the bias is pre-filled), backward dx = dy·w and
 * dw += dyᵀ·x, for a layer of `in` -> `out` over `rows` rows. */
static int add_linear(gemm_shape *g, int n, int part, int rows, int in, int out, int times)
{
    g[n++] = (gemm_shape){ part, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, times };
    g[n++] = (gemm_shape){ part, CblasNoTrans, CblasNoTrans, rows, in, out, 0.0f, times };
    g[n++] = (gemm_shape){ part, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, times };
    return n;
}

static int linear_shapes(const bench_config *c, int n_masked, int vocab, gemm_shape *g)
{
    int N = c->batch * c->seq_len, d = c->d_model, L = c->n_layers;
    int n = 0;
    n = add_linear(g, n, PART_LAYERS, N, d, 3 * d, L);     /* qkv */
    n = add_linear(g, n, PART_LAYERS, N, d, d, L);         /* proj */
    n = add_linear(g, n, PART_LAYERS, N, d, c->d_ff, L);   /* fc */
    n = add_linear(g, n, PART_LAYERS, N, c->d_ff, d, L);   /* fc2 */
    if (c->bert) n = add_linear(g, n, PART_HEAD, n_masked, d, d, 1); /* head transform */
    n = add_linear(g, n, PART_HEAD, n_masked, d, vocab, 1); /* output head */
    return n;
}

static double time_linear(const gemm_shape *s, float *a, float *b, float *cm, int reps)
{
    int lda = s->ta == CblasNoTrans ? s->K : s->M;
    int ldb = s->tb == CblasNoTrans ? s->N : s->K;
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, s->ta, s->tb, s->M, s->N, s->K, 1.0f, a, lda, b, ldb,
                    s->beta, cm, s->N);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* The attention products of one layer — the model's FLOPs, without the
 * score product that lib/kernels/attention.c recomputes in backward — with
 * its strides, each product one cblas_sgemm threaded by the BLAS: the
 * machine's rate for these shapes. qkv, dqkv [N, 3d]; att, datt [B, H, T, T]
 * (here only); y, dy [N, d]. */
static void attention_gemms(const bench_config *c, int backward, const float *qkv, float *dqkv,
                            float *att, float *datt, float *y, const float *dy)
{
    int B = c->batch, T = c->seq_len, H = c->n_heads, d = c->d_model, hd = d / H, ld = 3 * d;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t head = (size_t)b * T * ld + (size_t)h * hd;
            size_t hy = (size_t)b * T * d + (size_t)h * hd;
            float *p = att + ((size_t)b * H + h) * T * T;
            float *dp = datt + ((size_t)b * H + h) * T * T;
            if (!backward) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale,
                            qkv + head, ld, qkv + head + d, ld, 0.0f, p, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T,
                            qkv + head + 2 * (size_t)d, ld, 0.0f, y + hy, d);
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy + hy,
                            d, qkv + head + 2 * (size_t)d, ld, 0.0f, dp, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T,
                            dy + hy, d, 0.0f, dqkv + head + 2 * (size_t)d, ld);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dp, T,
                            qkv + head + d, ld, 0.0f, dqkv + head, ld);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dp, T,
                            qkv + head, ld, 0.0f, dqkv + head + d, ld);
            }
        }
}

static void fill_uniform(float *x, size_t n, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(mix64(&st) >> 11) * 0x1.0p-53 * 2.0 - 1.0) * 0.5f;
}

typedef struct roofline {
    double s[N_PARTS], flop[N_PARTS]; /* sgemm time and FLOPs of each part, per step */
    double square_gflops;             /* 2048³ */
    double best_gflops;               /* the best square product: the machine's sgemm peak */
    int best_n;                       /* ... and its size */
} roofline;

/* The best of `reps` n × n × n products, GFLOP/s. */
static double square_sgemm(int n, int reps)
{
    float *sa = xmalloc((size_t)n * n * sizeof(float));
    float *sb = xmalloc((size_t)n * n * sizeof(float));
    float *sc = xmalloc((size_t)n * n * sizeof(float));
    fill_uniform(sa, (size_t)n * n, 1);
    fill_uniform(sb, (size_t)n * n, 2);
    double best = INFINITY;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, sa, n, sb, n,
                    0.0f, sc, n);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    free(sa);
    free(sb);
    free(sc);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

static roofline measure_roofline(const bench_config *c, int n_masked, int vocab, int reps)
{
    roofline r;
    memset(&r, 0, sizeof r);

    /* Square products: the machine's sgemm peak is the best of them. The
     * first also warms up OpenBLAS's buffers and threads. */
    static const int sizes[] = { 2048, 1024, 3072 };
    int n_sizes = reps > 1 ? 3 : 1;
    for (int i = 0; i < n_sizes; i++) {
        double g = square_sgemm(sizes[i], reps + (i == 0));
        if (sizes[i] == 2048) r.square_gflops = g;
        if (g > r.best_gflops) {
            r.best_gflops = g;
            r.best_n = sizes[i];
        }
    }

    gemm_shape g[32];
    int n = linear_shapes(c, n_masked > 0 ? n_masked : 1, vocab, g);
    size_t amax = 0, bmax = 0, cmax = 0;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N;
        size_t cc = (size_t)g[i].M * g[i].N;
        if (a > amax) amax = a;
        if (b > bmax) bmax = b;
        if (cc > cmax) cmax = cc;
    }
    float *a = xmalloc(amax * sizeof(float)), *b = xmalloc(bmax * sizeof(float));
    float *cm = xmalloc(cmax * sizeof(float));
    fill_uniform(a, amax, 3);
    fill_uniform(b, bmax, 4);
    fill_uniform(cm, cmax, 5);
    for (int i = 0; i < n; i++) {
        double t = time_linear(&g[i], a, b, cm, reps);
        r.s[g[i].part] += t * g[i].times;
        r.flop[g[i].part] += 2.0 * g[i].M * (double)g[i].N * g[i].K * g[i].times;
    }
    free(a);
    free(b);
    free(cm);

    size_t N = (size_t)c->batch * c->seq_len, d = (size_t)c->d_model;
    size_t natt = (size_t)c->batch * c->n_heads * c->seq_len * c->seq_len;
    float *qkv = xmalloc(N * 3 * d * sizeof(float)), *dqkv = xmalloc(N * 3 * d * sizeof(float));
    float *att = xmalloc(natt * sizeof(float)), *datt = xmalloc(natt * sizeof(float));
    float *y = xmalloc(N * d * sizeof(float)), *dy = xmalloc(N * d * sizeof(float));
    fill_uniform(qkv, N * 3 * d, 6);
    fill_uniform(dy, N * d, 7);
    for (int backward = 0; backward < 2; backward++) {
        double best = INFINITY;
        for (int i = 0; i < reps; i++) {
            double t0 = now_s();
            attention_gemms(c, backward, qkv, dqkv, att, datt, y, dy);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        r.s[PART_ATTENTION] += best * c->n_layers;
    }
    /* forward: 2 products of 2·T²·hd per head; backward: 4 */
    r.flop[PART_ATTENTION] = 6.0 * 2.0 * c->batch * (double)c->n_heads * c->seq_len *
                             c->seq_len * (c->d_model / c->n_heads) * c->n_layers;
    free(qkv);
    free(dqkv);
    free(att);
    free(datt);
    free(y);
    free(dy);
    return r;
}

/* ---- the child: one configuration at one thread count --------------------- */

typedef struct stop_after {
    int32_t steps;      /* stop after this many steps; 0 = never */
    int32_t mark_step;  /* note the time when this many steps are done */
    double mark_time;
} stop_after;

static int32_t stop_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                       int32_t batch, int32_t seq_len, const int32_t *changed,
                       int32_t n_changed)
{
    (void)n_steps, (void)canvas, (void)batch, (void)seq_len, (void)changed, (void)n_changed;
    stop_after *s = user;
    if (step + 1 == s->mark_step) s->mark_time = now_s();
    return s->steps > 0 && step + 1 >= s->steps;
}

static void prof_ms(json_buf *j, const char *phase, const uint64_t *ns, int64_t steps)
{
    char key[64];
    double k = 1e-6 / (double)(steps > 0 ? steps : 1);
    double total = (double)ns[TDI_PROF_TOTAL] * k, mm = (double)ns[TDI_PROF_MATMUL] * k;
    double at = (double)ns[TDI_PROF_ATTENTION] * k;
    snprintf(key, sizeof key, "%s_ms", phase);
    jb_num(j, key, total);
    snprintf(key, sizeof key, "%s_matmul_ms", phase);
    jb_num(j, key, mm);
    snprintf(key, sizeof key, "%s_attention_ms", phase);
    jb_num(j, key, at);
    snprintf(key, sizeof key, "%s_other_ms", phase);
    jb_num(j, key, total - mm - at);
}

/* Prints the child's JSON line and frees what it built. */
static int child_finish(json_buf *j, td_schedule *sch, td_model *model)
{
    td_schedule_free(sch);
    td_model_free(model);
    jb_printf(j, "}");
    printf("%s\n", j->s);
    free(j->s);
    return 0;
}

static int child_main(const bench_config *c, int threads, const bench_plan *p)
{
    json_buf j = { NULL, 0, 0 };
    jb_printf(&j, "{");
    jb_str(&j, "impl", "c");
    jb_str(&j, "config", c->name);
    jb_num(&j, "threads", threads);
    jb_num(&j, "rss_base_kb", (double)max_rss_kb());

    td_model_config mc;
    check(td_model_config_default(&mc), "model config");
    mc.d_model = c->d_model;
    mc.n_layers = c->n_layers;
    mc.n_heads = c->n_heads;
    mc.d_ff = c->d_ff;
    mc.vocab_size = c->vocab;
    if (c->bert) {
        mc.mask_id = BERT_MASK_ID;
        mc.max_seq_len = BERT_MAX_SEQ;
        mc.pos_encoding = TD_POS_LEARNED;
        mc.norm_placement = TD_NORM_POST;
        mc.activation = TD_ACT_GELU_ERF;
        mc.layer_norm_eps = 1e-12f;
        mc.type_vocab_size = 2;
        mc.head_transform = 1;
    }
    if (mc.max_seq_len < c->seq_len) mc.max_seq_len = c->seq_len;
    if (mc.max_seq_len < c->sample_len) mc.max_seq_len = c->sample_len;
    td_model *model;
    check(td_model_create(&mc, 1, NULL, &model), "model");
    uint64_t n_params;
    check(td_model_num_params(model, &n_params), "parameter count");
    jb_num(&j, "params", (double)n_params);

    td_schedule_config sc;
    check(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR), "schedule config");
    td_schedule *sch;
    check(td_schedule_create(&sc, NULL, &sch), "schedule");

    /* ---- training */
    td_trainer_config tc;
    check(td_trainer_config_default(&tc), "trainer config");
    tc.batch_size = c->batch;
    tc.seq_len = c->seq_len;
    tc.n_threads = threads;
    tc.micro_batch = p->micro_batch;
    jb_num(&j, "micro_batch", p->micro_batch);
    td_trainer *tr;
    check(td_trainer_create(model, sch, &tc, &tr), "trainer");
    size_t n_tok = (size_t)c->batch * c->seq_len;
    int32_t *tokens = xmalloc(n_tok * sizeof *tokens);
    double *times = xmalloc((size_t)p->steps * sizeof *times);
    uint64_t data_state = 42;
    tdi_profile prof;
    memset(&prof, 0, sizeof prof);
    double masked = 0.0;
    cpu_mark train0 = cpu_now(), timed0 = train0;
    for (int s = 0; s < p->warmup + p->steps; s++) {
        if (s == p->warmup) timed0 = cpu_now();
        for (size_t i = 0; i < n_tok; i++) tokens[i] = random_token(&mc, &data_state);
        int timed = s >= p->warmup;
        if (s == p->warmup) tdi_trainer_set_profile(tr, &prof);
        td_train_stats stats = { .struct_size = sizeof stats };
        double t0 = now_s();
        check(td_trainer_step(tr, tokens, &stats), "training step");
        double t = now_s() - t0;
        if (timed) {
            times[s - p->warmup] = t;
            masked += (double)stats.n_masked;
        }
    }
    tdi_trainer_set_profile(tr, NULL);
    cpu_mark train1 = cpu_now();
    jb_num(&j, "others_cpu_train", others_share(train0, train1));
    /* CPU time of this process (all its threads) per timed step: less
     * disturbed by other processes than the wall time */
    jb_num(&j, "step_cpu_ms", (train1.own_s - timed0.own_s) / p->steps * 1e3);
    jb_num(&j, "rss_train_kb", (double)max_rss_kb());
    masked /= p->steps;
    double mean = 0.0;
    for (int s = 0; s < p->steps; s++) mean += times[s] / p->steps;
    double med = median(times, p->steps);
    jb_num(&j, "steps_timed", p->steps);
    jb_num(&j, "train_tokens_per_s", (double)n_tok / med);
    jb_num(&j, "step_ms_median", med * 1e3);
    jb_num(&j, "step_ms_mean", mean * 1e3);
    jb_num(&j, "step_ms_min", times[0] * 1e3);
    jb_num(&j, "step_ms_max", times[p->steps - 1] * 1e3);
    jb_num(&j, "n_masked_mean", masked);
    prof_ms(&j, "fwd", prof.ns[TDI_PROF_FORWARD], prof.steps);
    prof_ms(&j, "bwd", prof.ns[TDI_PROF_BACKWARD], prof.steps);
    prof_ms(&j, "opt", prof.ns[TDI_PROF_OPTIMIZER], prof.steps);
    double flops = step_flops(c, masked, mc.vocab_size);
    jb_num(&j, "model_gflop_step", flops * 1e-9);
    jb_num(&j, "achieved_gflops", flops / med * 1e-9);
    td_trainer_free(tr);
    free(tokens);
    free(times);
    fprintf(stderr, "  C %s, %d thread%s: training %.0f tokens/s\n", c->name, threads,
            threads > 1 ? "s" : "", (double)n_tok / med);
    if (p->micro_batch > 0) /* a memory run: its peak RSS is the training's */
        return child_finish(&j, sch, model);

    /* ---- sampling */
    size_t n_canvas = (size_t)c->sample_batch * c->sample_len;
    int32_t *canvas = xmalloc(n_canvas * sizeof *canvas);
    int timed_steps = p->sample_timed > 0 && p->sample_timed < c->sample_steps
                          ? p->sample_timed
                          : c->sample_steps;
    jb_num(&j, "sample_steps", c->sample_steps);
    jb_num(&j, "sample_steps_timed", timed_steps);
    cpu_mark sample0 = cpu_now();
    for (int si = 0; si < N_STRATEGIES; si++)
        for (int cache = 0; cache < 2; cache++) {
            td_sampler_config smc;
            check(td_sampler_config_default(&smc), "sampler config");
            smc.strategy = STRATEGIES[si].strategy;
            smc.steps = c->sample_steps;
            smc.n_threads = threads;
            smc.max_batch = c->sample_batch;
            smc.max_seq_len = c->sample_len;
            smc.cache = cache;
            td_sampler *smp;
            check(td_sampler_create(model, sch, &smc, &smp), "sampler");
            /* One untimed step first: page in the workspace. */
            for (size_t i = 0; i < n_canvas; i++) canvas[i] = mc.mask_id;
            stop_after warm = { 1, 0, 0.0 };
            td_status st = td_sampler_generate(smp, canvas, c->sample_batch, c->sample_len,
                                               stop_cb, &warm, NULL);
            if (st != TD_OK && st != TD_ERR_CANCELLED) die("sampling", st);
            for (size_t i = 0; i < n_canvas; i++) canvas[i] = mc.mask_id;
            /* A full run also notes what the default prefix would have said. */
            stop_after stop = { timed_steps < c->sample_steps ? timed_steps : 0,
                                p->sample_prefix, 0.0 };
            td_sample_stats ss = { .struct_size = sizeof ss };
            double t0 = now_s();
            st = td_sampler_generate(smp, canvas, c->sample_batch, c->sample_len, stop_cb,
                                     &stop, &ss);
            double t = now_s() - t0;
            if (st != TD_OK && st != TD_ERR_CANCELLED) die("sampling", st);
            td_sampler_free(smp);
            /* The whole job's time, from the timed prefix of its steps. */
            double full = t * (double)c->sample_steps / (double)ss.steps;
            char key[96];
            snprintf(key, sizeof key, "sample_%s_cache%d_tokens_per_s", STRATEGIES[si].name,
                     cache);
            jb_num(&j, key, (double)n_canvas / full);
            snprintf(key, sizeof key, "sample_%s_cache%d_model_calls", STRATEGIES[si].name,
                     cache);
            jb_num(&j, key, (double)ss.model_calls);
            snprintf(key, sizeof key, "sample_%s_cache%d_ms_per_step", STRATEGIES[si].name,
                     cache);
            jb_num(&j, key, t / (double)ss.steps * 1e3);
            if (stop.steps == 0 && stop.mark_time > 0.0) {
                snprintf(key, sizeof key, "sample_%s_cache%d_prefix_tokens_per_s",
                         STRATEGIES[si].name, cache);
                jb_num(&j, key,
                       (double)n_canvas * p->sample_prefix /
                           ((stop.mark_time - t0) * (double)c->sample_steps));
            }
        }
    free(canvas);

    /* The exact cache's saving: one sequence, more steps than tokens
     * (S: 4 per token, M: 2), so that many steps reveal nothing and reuse
     * the last forward pass. Ancestral, every step timed. */
    int cache_steps = p->cache_job;
    int32_t *one = xmalloc((size_t)c->sample_len * sizeof *one);
    for (int cache = 0; cache < 2 && cache_steps > 0; cache++) {
        td_sampler_config smc;
        check(td_sampler_config_default(&smc), "sampler config");
        smc.strategy = TD_SAMPLER_ANCESTRAL;
        smc.steps = cache_steps;
        smc.n_threads = threads;
        smc.max_batch = 1;
        smc.max_seq_len = c->sample_len;
        smc.cache = cache;
        td_sampler *smp;
        check(td_sampler_create(model, sch, &smc, &smp), "sampler");
        for (int i = 0; i < c->sample_len; i++) one[i] = mc.mask_id;
        td_sample_stats ss = { .struct_size = sizeof ss };
        double t0 = now_s();
        check(td_sampler_generate(smp, one, 1, c->sample_len, NULL, NULL, &ss), "sampling");
        double t = now_s() - t0;
        td_sampler_free(smp);
        char key[64];
        snprintf(key, sizeof key, "cache_job_cache%d_s", cache);
        jb_num(&j, key, t);
        snprintf(key, sizeof key, "cache_job_cache%d_model_calls", cache);
        jb_num(&j, key, (double)ss.model_calls);
    }
    if (cache_steps > 0) jb_num(&j, "cache_job_steps", cache_steps);
    free(one);
    jb_num(&j, "others_cpu_sample", others_share(sample0, cpu_now()));
    jb_num(&j, "rss_peak_kb", (double)max_rss_kb());
    fprintf(stderr, "  C %s, %d thread%s: sampling done\n", c->name, threads,
            threads > 1 ? "s" : "");

    /* ---- roofline */
    /* The machine's sgemm at this thread count: OpenBLAS threading plain
     * calls, whatever the environment gave the library's runs above. */
    int blas_before = set_blas_threads(threads);
    roofline r = measure_roofline(c, (int)lround(masked), mc.vocab_size, p->gemm_reps);
    set_blas_threads(blas_before);
    double gemm_s = 0.0, gemm_flop = 0.0;
    for (int k = 0; k < N_PARTS; k++) {
        char key[64];
        snprintf(key, sizeof key, "gemm_%s_gflop", PART_NAMES[k]);
        jb_num(&j, key, r.flop[k] * 1e-9);
        snprintf(key, sizeof key, "gemm_%s_ms", PART_NAMES[k]);
        jb_num(&j, key, r.s[k] * 1e3);
        snprintf(key, sizeof key, "gemm_%s_gflops", PART_NAMES[k]);
        jb_num(&j, key, r.flop[k] / r.s[k] * 1e-9);
        gemm_s += r.s[k];
        gemm_flop += r.flop[k];
    }
    jb_num(&j, "gemm_rate_gflops", gemm_flop / gemm_s * 1e-9);
    jb_num(&j, "sgemm_square_gflops", r.square_gflops);
    jb_num(&j, "sgemm_best_gflops", r.best_gflops);
    jb_num(&j, "sgemm_best_n", r.best_n);
    /* MFU = (FLOPs / step time) / the best square sgemm rate; mfu_shapes
     * divides by the rate on the step's own shapes instead, i.e. it is the
     * time those products alone take over the whole step. */
    jb_num(&j, "mfu", flops / med * 1e-9 / r.best_gflops);
    jb_num(&j, "mfu_shapes", flops / med / (gemm_flop / gemm_s));
    return child_finish(&j, sch, model);
}

/* ---- the parent: spawn, collect, report ----------------------------------- */

#define MAX_REPEAT 9

/* n flat JSON objects with the same keys -> one, each number the median of
 * its n values (strings from the first). Frees the n inputs. */
static char *json_median(char **runs, int n)
{
    if (n == 1) return runs[0];
    json_buf out = { NULL, 0, 0 };
    jb_printf(&out, "{");
    const char *p = runs[0];
    while ((p = strchr(p, '"')) != NULL) {
        const char *k0 = p + 1, *k1 = strchr(k0, '"');
        if (k1 == NULL) break;
        const char *v = k1 + 1;
        while (*v == ' ') v++;
        if (*v != ':') { /* a string value, not a key */
            p = k1 + 1;
            continue;
        }
        for (v++; *v == ' '; v++) {}
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(k1 - k0), k0);
        if (*v == '"') {
            const char *e = strchr(v + 1, '"');
            if (e == NULL) break;
            jb_printf(&out, "%s\"%s\":%.*s", out.len > 1 ? "," : "", key, (int)(e - v + 1), v);
            p = e + 1;
            continue;
        }
        double vals[MAX_REPEAT];
        int m = 0;
        for (int i = 0; i < n; i++) {
            double x = json_get(runs[i], key);
            if (isfinite(x)) vals[m++] = x;
        }
        jb_num(&out, key, m > 0 ? median(vals, m) : NAN);
        p = v;
    }
    jb_printf(&out, "}");
    for (int i = 0; i < n; i++) free(runs[i]);
    return out.s;
}


/* "AMD EPYC, 2 CPUs; OpenBLAS 0.3.21 ... (core Zen); environment: ...", for
 * the JSON; without the BLAS for the printed report, which gives it on the
 * runtime line of the examples (cli_print_runtime). */
static void describe_machine(char *out, size_t cap, int with_blas)
{
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                const char *v = strchr(line, ':');
                if (v) snprintf(model, sizeof model, "%s", v + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        fclose(f);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char blas[256] = "BLAS unknown";
    td_runtime_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    if (td_runtime_info_get(&r) == TD_OK)
        snprintf(blas, sizeof blas, "%s (core %s)", r.blas_version[0] ? r.blas_version : r.blas_name,
                 r.blas_core[0] ? r.blas_core : "unknown");
    /* The thread variables the C runs inherit (the baseline sets its own). */
    static const char *const vars[] = { "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS",
                                        "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                                        "BLIS_NUM_THREADS" };
    char env[256] = "";
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        size_t used = strlen(env);
        if (v != NULL)
            snprintf(env + used, sizeof env - used, " %s=%.40s", vars[i], v);
    }
    snprintf(out, cap, "%s, %ld CPUs; %s%senvironment:%s", model, cpus, with_blas ? blas : "",
             with_blas ? "; " : "", env[0] ? env : " (no thread variables set)");
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\') *p = ' '; /* it goes into JSON as is */
}

/* Runs argv[0] with stdout captured; with `threads` > 0 the thread
 * variables of the baseline are set first. Returns the last line of its
 * output that starts with '{', or NULL. */
static char *run_capture(char *const argv[], int threads)
{
    int fd[2];
    if (pipe(fd) != 0) {
        perror("bench: pipe");
        return NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        return NULL;
    }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[1]);
        if (threads > 0) {
            char n[16];
            snprintf(n, sizeof n, "%d", threads);
            setenv("OPENBLAS_NUM_THREADS", n, 1);
            setenv("OMP_NUM_THREADS", n, 1);
            setenv("MKL_NUM_THREADS", n, 1);
            setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        }
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0, cap = 4096;
    char *out = xmalloc(cap);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            char *grown = realloc(out, cap);
            if (grown == NULL) exit(1);
            out = grown;
        }
        ssize_t n = read(fd[0], out + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: %s failed (status %d)\n", argv[0], status);
        free(out);
        return NULL;
    }
    char *line = NULL;
    for (char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (*p == '{') line = p;
    if (line == NULL) {
        free(out);
        return NULL;
    }
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *res = strdup(line);
    free(out);
    return res;
}

#define MAX_PY 4 /* interpreters compared in one run */

typedef struct result {
    const bench_config *cfg;
    int threads;
    char *c;          /* the C child's JSON line */
    char *py[MAX_PY]; /* each interpreter's; NULL without PyTorch */
    char *cm;         /* the micro-batch run's, at the largest thread count; or NULL */
} result;

/* The interpreters of --python, and what their torch says it is. */
typedef struct pythons {
    int n;
    const char *path[MAX_PY];
    char label[MAX_PY][256]; /* "torch 2.13.0+cpu (BLAS mkl, ...)", from the first run */
    double version[MAX_PY];  /* of torch, comparable */
    int ref;                 /* the newest torch (the first of equals): the targets' reference */
} pythons;

/* The micro-batch of the memory runs: a quarter of the batch. */
static int micro_batch_of(const bench_config *c) { return c->batch >= 4 ? c->batch / 4 : 1; }

static double ratio(double a, double b) { return a / b; }

/* The string stored under "key" in a flat JSON object, into out ("?" when
 * absent). */
static void json_get_str(const char *json, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    if (json == NULL) return;
    char pat[160];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL) return;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != '"') return;
    const char *e = strchr(p + 1, '"');
    if (e != NULL) snprintf(out, cap, "%.*s", (int)(e - p - 1), p + 1);
}

/* major·10⁶ + minor·10³ + patch of "2.13.0+cpu". */
static double version_number(const char *v)
{
    int a = 0, b = 0, c = 0;
    if (sscanf(v, "%d.%d.%d", &a, &b, &c) < 1) return -1.0;
    return a * 1e6 + b * 1e3 + c;
}

static void print_ms_row(const char *cfg, int thr, const char *phase, const char *json,
                         const char *key)
{
    char k[64];
    double v[4];
    static const char *const parts[4] = { "", "_matmul", "_attention", "_other" };
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof k, "%s%s_ms", key, parts[i]);
        v[i] = json_get(json, k);
    }
    printf("  %-5s %3d  %-10s %9.1f %9.1f %9.1f %9.1f\n", cfg, thr, phase, v[0], v[1], v[2],
           v[3]);
}

static const result *find(const result *r, int n, const char *cfg, int threads)
{
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].cfg->name, cfg) == 0 && r[i].threads == threads) return &r[i];
    return NULL;
}

/* The largest share of the CPUs that other processes took during any timed
 * part of this row's runs (C and every interpreter); NaN when every timed
 * part was too short to tell. */
static double row_others(const result *r, int n_py)
{
    static const char *const keys[] = { "others_cpu_train", "others_cpu_sample" };
    double worst = NAN;
    for (int k = 0; k < 2; k++)
        for (int p = -1; p < n_py; p++) {
            double v = json_get(p < 0 ? r->c : r->py[p], keys[k]);
            if (isfinite(v) && !(v <= worst)) worst = v;
        }
    return worst;
}

typedef struct target {
    char what[96];
    double value, goal; /* met when value >= goal (or <= when `at_most`) */
    int at_most;
    double others;      /* the share of the CPUs others took meanwhile */
} target;

static void add_target(target *t, int *n, double value, double goal, int at_most, double others,
                       const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void add_target(target *t, int *n, double value, double goal, int at_most, double others,
                       const char *fmt, ...)
{
    target *x = &t[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->what, sizeof x->what, fmt, ap);
    va_end(ap);
    x->value = value;
    x->goal = goal;
    x->at_most = at_most;
    x->others = others;
}

/* Where a C training step goes, ms per step: the layers' products, the
 * output head's (the profile counts both as matrix products; they are split
 * in the proportion of their sgemm times in the roofline), attention, the
 * rest of forward and backward, the optimizer. */
enum { SPLIT_LAYERS, SPLIT_HEAD, SPLIT_ATTENTION, SPLIT_OTHER, SPLIT_OPT, N_SPLIT };
static const char *const SPLIT_NAMES[N_SPLIT] = { "layer products", "output head", "attention",
                                                  "other", "optimizer" };

static void step_split(const char *c, double ms[N_SPLIT])
{
    double mm = json_get(c, "fwd_matmul_ms") + json_get(c, "bwd_matmul_ms");
    double lay = json_get(c, "gemm_layers_ms"), head = json_get(c, "gemm_head_ms");
    double h = isfinite(lay) && isfinite(head) && lay + head > 0.0 ? head / (lay + head) : 0.0;
    ms[SPLIT_LAYERS] = mm * (1.0 - h);
    ms[SPLIT_HEAD] = mm * h;
    ms[SPLIT_ATTENTION] = json_get(c, "fwd_attention_ms") + json_get(c, "bwd_attention_ms");
    ms[SPLIT_OTHER] = json_get(c, "fwd_other_ms") + json_get(c, "bwd_other_ms");
    ms[SPLIT_OPT] = json_get(c, "opt_ms");
}

static void report(const result *res, int n, int quick, const pythons *py)
{
    char machine[600], cpu[600];
    describe_machine(machine, sizeof machine, 1);
    describe_machine(cpu, sizeof cpu, 0);
    printf("\nlibtextdiff %s benchmark%s (log-linear schedule)\n%s\n", td_version_string(),
           quick ? " --quick" : "", cpu);
    cli_print_runtime(stdout, 0, 1); /* the children set the threads of each row */

    printf("\nConfigurations\n");
    const bench_config *seen[N_CONFIGS];
    int n_seen = 0;
    for (int i = 0; i < n; i++) {
        const bench_config *c = res[i].cfg;
        int dup = 0;
        for (int k = 0; k < n_seen; k++) dup |= seen[k] == c;
        if (dup) continue;
        seen[n_seen++] = c;
        printf("  %-5s d %d, %d layers, %d heads, d_ff %d, vocabulary %d, %s; %.1f M parameters;"
               "\n        training %d x %d tokens; sampling %d x %d tokens, %d steps\n",
               c->name, c->d_model, c->n_layers, c->n_heads, c->d_ff, c->vocab,
               c->bert ? "BERT (learned positions, post-LN, erf GELU, head transform, tied)"
                       : "RoPE, pre-LN, tanh GELU, tied head",
               json_get(res[i].c, "params") * 1e-6, c->batch, c->seq_len, c->sample_batch,
               c->sample_len, c->sample_steps);
    }
    for (int p = 0; p < py->n; p++)
        printf("  Py%d   %s: %s%s\n", p + 1, py->path[p], py->label[p],
               p == py->ref && py->n > 1 ? " (the targets' reference)" : "");

    printf("\nTraining (tokens/s = batch x seq_len / median step; others = share of the CPUs\n"
           "  other processes took while it ran, the largest of the row's runs)\n");
    printf("  cfg   thr  %10s", "C tok/s");
    for (int p = 0; p < py->n; p++) printf("   Py%d tok/s  C/Py%d", p + 1, p + 1);
    printf(" %10s %8s %7s\n", "C ms/step", "C GF/s", "others");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        double ct = json_get(r->c, "train_tokens_per_s");
        printf("  %-5s %3d  %10.0f", r->cfg->name, r->threads, ct);
        for (int p = 0; p < py->n; p++) {
            double pt = json_get(r->py[p], "train_tokens_per_s");
            printf(" %11.0f %6.2f", pt, ratio(ct, pt));
        }
        double o = row_others(r, py->n);
        printf(" %10.1f %8.1f", json_get(r->c, "step_ms_median"), json_get(r->c, "achieved_gflops"));
        if (isfinite(o))
            printf(" %6.1f%%\n", 100.0 * o);
        else
            printf(" %7s\n", "n/a"); /* every timed part under 2 s */
    }

    printf("\nTraining, CPU time per step (ms, all the process's threads, mean of the timed "
           "steps;\n  other processes disturb it far less than the wall time; at 1 thread the "
           "fairer comparison)\n");
    printf("  cfg   thr  %10s", "C CPU ms");
    for (int p = 0; p < py->n; p++) printf("  Py%d CPU ms Py%d/C", p + 1, p + 1);
    printf("\n");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        double cc = json_get(r->c, "step_cpu_ms");
        printf("  %-5s %3d  %10.1f", r->cfg->name, r->threads, cc);
        for (int p = 0; p < py->n; p++) {
            double pc = json_get(r->py[p], "step_cpu_ms");
            printf(" %11.1f %6.2f", pc, ratio(pc, cc));
        }
        printf("\n");
    }

    printf("\nC training step, mean ms per step (matrix products / attention / other)\n");
    printf("  cfg   thr  %-10s %9s %9s %9s %9s\n", "phase", "total", "matmul", "attention",
           "other");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        print_ms_row(r->cfg->name, r->threads, "forward", r->c, "fwd");
        print_ms_row(r->cfg->name, r->threads, "backward", r->c, "bwd");
        print_ms_row(r->cfg->name, r->threads, "optimizer", r->c, "opt");
    }
    if (py->n > 0) {
        printf("\nPyTorch training step, mean ms per step\n");
        printf("  cfg   thr  py  %9s %9s %9s %9s\n", "median", "forward", "backward",
               "optimizer");
        for (int i = 0; i < n; i++)
            for (int p = 0; p < py->n; p++)
                printf("  %-5s %3d  Py%d %9.1f %9.1f %9.1f %9.1f\n", res[i].cfg->name,
                       res[i].threads, p + 1, json_get(res[i].py[p], "step_ms_median"),
                       json_get(res[i].py[p], "fwd_ms"), json_get(res[i].py[p], "bwd_ms"),
                       json_get(res[i].py[p], "opt_ms"));
    }

    printf("\nSampling (tokens/s = sequences x length / time for all the steps, from the "
           "steps timed;\n  calls = forward passes in the steps timed; C/Py: no cache)\n");
    printf("  cfg   thr  %-10s %8s %8s %12s %12s", "strategy", "calls/0", "calls/1",
           "C no cache", "C cache");
    for (int p = 0; p < py->n; p++) printf("  Py%d tok/s  C/Py%d", p + 1, p + 1);
    printf("\n");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        for (int s = 0; s < N_STRATEGIES; s++) {
            char k[96];
            double v[2], calls[2];
            for (int cache = 0; cache < 2; cache++) {
                snprintf(k, sizeof k, "sample_%s_cache%d_tokens_per_s", STRATEGIES[s].name, cache);
                v[cache] = json_get(r->c, k);
                snprintf(k, sizeof k, "sample_%s_cache%d_model_calls", STRATEGIES[s].name, cache);
                calls[cache] = json_get(r->c, k);
            }
            printf("  %-5s %3d  %-10s %8.0f %8.0f %12.1f %12.1f", r->cfg->name, r->threads,
                   STRATEGIES[s].name, calls[0], calls[1], v[0], v[1]);
            snprintf(k, sizeof k, "sample_%s_tokens_per_s", STRATEGIES[s].name);
            for (int p = 0; p < py->n; p++) {
                double pv = json_get(r->py[p], k);
                if (isfinite(pv))
                    printf(" %10.1f %6.2f", pv, ratio(v[0], pv));
            }
            printf("\n");
        }
        printf("  %-5s %3d  (timed %g of %g steps)\n", r->cfg->name, r->threads,
               json_get(r->c, "sample_steps_timed"), json_get(r->c, "sample_steps"));
        char k[96];
        snprintf(k, sizeof k, "sample_%s_cache0_prefix_tokens_per_s", STRATEGIES[0].name);
        if (isfinite(json_get(r->c, k))) {
            printf("  %-5s %3d  (the default prefix of the same runs, cache off/on:",
                   r->cfg->name, r->threads);
            for (int s = 0; s < N_STRATEGIES; s++)
                for (int cache = 0; cache < 2; cache++) {
                    snprintf(k, sizeof k, "sample_%s_cache%d_prefix_tokens_per_s",
                             STRATEGIES[s].name, cache);
                    printf(" %.1f", json_get(r->c, k));
                }
            printf(")\n");
        }
    }

    printf("\nThe exact cache (ancestral, 1 sequence, more steps than tokens, every step "
           "timed)\n");
    printf("  cfg   thr  %6s %8s %10s %10s %8s %8s %8s\n", "length", "steps", "calls off",
           "calls on", "s off", "s on", "saving");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        if (!isfinite(json_get(r->c, "cache_job_steps"))) continue;
        double off = json_get(r->c, "cache_job_cache0_s"), on = json_get(r->c, "cache_job_cache1_s");
        printf("  %-5s %3d  %6d %8.0f %10.0f %10.0f %8.2f %8.2f %7.2fx\n", r->cfg->name,
               r->threads, r->cfg->sample_len, json_get(r->c, "cache_job_steps"),
               json_get(r->c, "cache_job_cache0_model_calls"),
               json_get(r->c, "cache_job_cache1_model_calls"), off, on, ratio(off, on));
    }

    printf("\nRoofline (cblas_sgemm on this step's own shapes and layouts: the layers' products,\n"
           "  attention's per-head products, the output head; best = the fastest square "
           "product;\n  MFU = model FLOP/s / best, MFU/shapes = model FLOP/s / the rate on "
           "the step's shapes)\n");
    printf("  cfg   thr  %8s %9s %9s %9s %9s %13s %9s %7s %10s\n", "GFLOP", "layers",
           "attention", "head", "all", "best (n)", "step GF/s", "MFU", "MFU/shapes");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        printf("  %-5s %3d  %8.1f %9.1f %9.1f %9.1f %9.1f %8.1f (%g) %9.1f %6.1f%% %9.1f%%\n",
               r->cfg->name, r->threads, json_get(r->c, "model_gflop_step"),
               json_get(r->c, "gemm_layers_gflops"), json_get(r->c, "gemm_attention_gflops"),
               json_get(r->c, "gemm_head_gflops"), json_get(r->c, "gemm_rate_gflops"),
               json_get(r->c, "sgemm_best_gflops"), json_get(r->c, "sgemm_best_n"),
               json_get(r->c, "achieved_gflops"), 100.0 * json_get(r->c, "mfu"),
               100.0 * json_get(r->c, "mfu_shapes"));
    }

    printf("\nWhere the C training step goes (share of the step's FLOPs; share of its time, "
           "from\n  the profile, the head's products split off in proportion to their sgemm "
           "time)\n");
    printf("  cfg   thr  %-21s %-40s %s\n", "FLOPs lay/attn/head",
           "time lay/head/attn/other/opt", "bound by");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        double f[N_PARTS], ft = 0.0;
        for (int k = 0; k < N_PARTS; k++) {
            char key[64];
            snprintf(key, sizeof key, "gemm_%s_gflop", PART_NAMES[k]);
            f[k] = json_get(r->c, key);
            ft += f[k];
        }
        double ms[N_SPLIT], total = 0.0;
        step_split(r->c, ms);
        int worst = 0;
        for (int k = 0; k < N_SPLIT; k++) {
            total += ms[k];
            if (ms[k] > ms[worst]) worst = k;
        }
        char fs[64], ts[96];
        snprintf(fs, sizeof fs, "%.0f/%.0f/%.0f%%", 100.0 * f[PART_LAYERS] / ft,
                 100.0 * f[PART_ATTENTION] / ft, 100.0 * f[PART_HEAD] / ft);
        snprintf(ts, sizeof ts, "%.0f/%.0f/%.0f/%.0f/%.0f%%", 100.0 * ms[0] / total,
                 100.0 * ms[1] / total, 100.0 * ms[2] / total, 100.0 * ms[3] / total,
                 100.0 * ms[4] / total);
        printf("  %-5s %3d  %-21s %-40s %s (%.0f%%)\n", r->cfg->name, r->threads, fs, ts,
               SPLIT_NAMES[worst], 100.0 * ms[worst] / total);
    }

    printf("\nMemory (peak RSS, MiB; training = after the timed steps)\n");
    printf("  cfg   thr  %10s %10s", "C base", "C train");
    for (int p = 0; p < py->n; p++) printf("  Py%d train  C/Py%d", p + 1, p + 1);
    printf("\n");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        double ct = json_get(r->c, "rss_train_kb");
        printf("  %-5s %3d  %10.1f %10.1f", r->cfg->name, r->threads,
               json_get(r->c, "rss_base_kb") / 1024.0, ct / 1024.0);
        for (int p = 0; p < py->n; p++) {
            double pt = json_get(r->py[p], "rss_train_kb");
            printf(" %10.1f %6.3f", pt / 1024.0, ratio(ct, pt));
        }
        printf("\n");
    }
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        if (r->cm == NULL) continue;
        double ct = json_get(r->cm, "rss_train_kb");
        printf("  %-5s %3d  micro_batch %g: C train %.1f MiB at %.0f tokens/s (%.2f of the "
               "whole batch's)",
               r->cfg->name, r->threads, json_get(r->cm, "micro_batch"), ct / 1024.0,
               json_get(r->cm, "train_tokens_per_s"),
               ratio(json_get(r->cm, "train_tokens_per_s"), json_get(r->c, "train_tokens_per_s")));
        for (int p = 0; p < py->n; p++)
            printf("; C/Py%d %.3f", p + 1, ratio(ct, json_get(r->py[p], "rss_train_kb")));
        printf("\n");
    }

    /* Other processes on the machine distort every number above. */
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        double w = row_others(&res[i], py->n);
        if (w > worst) worst = w; /* false for NaN */
    }
    printf("\nOther processes used at most %.1f%% of the CPUs during any timed part%s\n",
           100.0 * worst, worst > 0.05 ? ": the numbers are disturbed, run again" : "");

    /* ---- targets: at 2 threads, against the newest torch */
    static const struct {
        const char *cfg;
        double train, sample, rss_micro; /* rss_micro 0: no micro-batch target */
    } GOALS[] = { { "S", 1.3, 1.5, 0.25 }, { "M", 1.1, 1.5, 0.25 }, { "B", 1.0, 1.2, 0.0 } };
    target t[64];
    int nt = 0;
    const int ref = py->ref;
    for (int gi = 0; gi < (int)(sizeof GOALS / sizeof GOALS[0]); gi++) {
        const char *cn = GOALS[gi].cfg;
        const result *r2 = find(res, n, cn, 2), *r1 = find(res, n, cn, 1);
        if (r2 == NULL) continue;
        double o2 = row_others(r2, py->n);
        double o1 = r1 ? row_others(r1, py->n) : NAN;
        if (py->n > 0) {
            const char *pj = r2->py[ref];
            add_target(t, &nt, ratio(json_get(r2->c, "train_tokens_per_s"),
                                     json_get(pj, "train_tokens_per_s")),
                       GOALS[gi].train, 0, o2, "%s training tokens/s vs PyTorch (2 threads)", cn);
            for (int s = 0; s < 2; s++) {
                char k[96], kp[96];
                snprintf(k, sizeof k, "sample_%s_cache0_tokens_per_s", STRATEGIES[s].name);
                snprintf(kp, sizeof kp, "sample_%s_tokens_per_s", STRATEGIES[s].name);
                add_target(t, &nt, ratio(json_get(r2->c, k), json_get(pj, kp)),
                           GOALS[gi].sample, 0, o2,
                           "%s sampling %s, no cache, vs PyTorch (2 threads)", cn,
                           STRATEGIES[s].name);
            }
            if (r2->cm && GOALS[gi].rss_micro > 0.0) {
                int mb = micro_batch_of(r2->cfg);
                add_target(t, &nt,
                           ratio(json_get(r2->cm, "rss_train_kb"), json_get(pj, "rss_train_kb")),
                           GOALS[gi].rss_micro, 1, 0.0, "%s peak RSS / PyTorch's, micro_batch %d",
                           cn, mb);
            }
        }
        add_target(t, &nt, json_get(r2->c, "mfu"), 0.70, 0, o2,
                   "%s MFU vs the best sgemm (2 threads)", cn);
        if (r1)
            add_target(t, &nt, ratio(json_get(r2->c, "train_tokens_per_s"),
                                     json_get(r1->c, "train_tokens_per_s")),
                       1.7, 0, o1 > o2 ? o1 : o2,
                       "%s training, 2 threads / 1 thread", cn);
    }
    for (int i = 0; i < n && py->n > 0 && nt < 64; i++) /* every configuration */
        if (res[i].threads == 2)
            add_target(t, &nt, ratio(json_get(res[i].c, "rss_train_kb"),
                                     json_get(res[i].py[ref], "rss_train_kb")),
                       0.5, 1, 0.0, "%s training peak RSS / PyTorch's",
                       res[i].cfg->name);
    if (py->n > 0)
        printf("\nTargets (2 threads; PyTorch = Py%d, %s)\n", ref + 1, py->label[ref]);
    else
        printf("\nTargets (2 threads; PyTorch not run)\n");
    for (int i = 0; i < nt; i++) {
        int met = t[i].at_most ? t[i].value <= t[i].goal : t[i].value >= t[i].goal;
        printf("  %-52s %7.3f  (%s %.2f)  %s%s\n", t[i].what, t[i].value,
               t[i].at_most ? "<=" : ">=", t[i].goal, met ? "met" : "NOT met",
               t[i].others > 0.05 ? " (disturbed: no verdict)" : "");
    }
    if (nt > 0)
        printf("  (a target whose runs other processes disturbed by more than 5%% of the CPUs "
               "is marked:\n  its verdict means nothing; run again on a quiet machine)\n");

    /* ---- one JSON line */
    printf("\n{\"bench\":\"libtextdiff\",\"version\":\"%s\",\"machine\":\"%s\",\"quick\":%d,"
           "\"pythons\":[",
           td_version_string(), machine, quick);
    for (int p = 0; p < py->n; p++)
        printf("%s{\"path\":\"%s\",\"label\":\"%s\"}", p ? "," : "", py->path[p], py->label[p]);
    printf("],\"results\":[");
    for (int i = 0; i < n; i++) {
        printf("%s{\"config\":\"%s\",\"threads\":%d,\"c\":%s,\"c_micro\":%s,\"pytorch\":[",
               i ? "," : "", res[i].cfg->name, res[i].threads, res[i].c ? res[i].c : "null",
               res[i].cm ? res[i].cm : "null");
        for (int p = 0; p < py->n; p++)
            printf("%s%s", p ? "," : "", res[i].py[p] ? res[i].py[p] : "null");
        printf("]}");
    }
    printf("],\"targets\":[");
    for (int i = 0; i < nt; i++) {
        int met = t[i].at_most ? t[i].value <= t[i].goal : t[i].value >= t[i].goal;
        printf("%s{\"what\":\"%s\",\"value\":%.4g,\"goal\":%g,\"met\":%s,\"others_cpu\":%.3f}",
               i ? "," : "", t[i].what, isfinite(t[i].value) ? t[i].value : -1.0, t[i].goal,
               met ? "true" : "false", isfinite(t[i].others) ? t[i].others : -1.0);
    }
    printf("]}\n");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench [options]\n"
            "  --quick            fewer steps (a smoke run)\n"
            "  --no-pytorch       skip the PyTorch baseline\n"
            "  --configs LIST     of S, M, B, S256, S512, S1024 (default S,M; T and TB: tiny, "
            "smoke tests)\n"
            "  --threads LIST     1, 2 or 1,2 (default 1,2)\n"
            "  --full-sampling    time every sampling step (default: the first 16, M and B: 8)\n"
            "  --repeat N         run C and PyTorch N times each, in turns; report medians\n"
            "  --python LIST      interpreters with torch, comma-separated, each a column\n"
            "                     (default /usr/bin/python3)\n"
            "  --script PATH      the baseline (default %s/pytorch_baseline.py)\n",
            TD_BENCH_DIR);
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 64) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static const bench_config *config_named(const char *name)
{
    for (int i = 0; i < N_CONFIGS; i++)
        if (strcmp(CONFIGS[i].name, name) == 0) return &CONFIGS[i];
    return NULL;
}

int main(int argc, char **argv)
{
    int quick = 0, pytorch = 1, child = 0, full_sampling = 0, micro = 0, repeat = 1;
    const char *configs = "S,M", *threads_arg = "1,2", *child_cfg = NULL;
    const char *python = "/usr/bin/python3", *script = TD_BENCH_DIR "/pytorch_baseline.py";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--quick") == 0) quick = 1;
        else if (strcmp(a, "--no-pytorch") == 0) pytorch = 0;
        else if (strcmp(a, "--full-sampling") == 0) full_sampling = 1;
        else if (strcmp(a, "--child") == 0) child = 1;
        else if (strcmp(a, "--configs") == 0 && more) configs = argv[++i];
        else if (strcmp(a, "--config") == 0 && more) child_cfg = argv[++i];
        else if (strcmp(a, "--threads") == 0 && more) threads_arg = argv[++i];
        else if (strcmp(a, "--micro-batch") == 0 && more) micro = atoi(argv[++i]);
        else if (strcmp(a, "--repeat") == 0 && more) repeat = atoi(argv[++i]);
        else if (strcmp(a, "--python") == 0 && more) python = argv[++i];
        else if (strcmp(a, "--script") == 0 && more) script = argv[++i];
        else {
            usage();
            return strcmp(a, "--help") == 0 ? 0 : 2;
        }
    }
    if (TD_CHECK_VERSION() != TD_OK) {
        fprintf(stderr, "bench: %s\n", td_last_error_message());
        return 1;
    }
    if (repeat < 1 || repeat > MAX_REPEAT) {
        fprintf(stderr, "bench: --repeat must be 1..%d\n", MAX_REPEAT);
        return 2;
    }
    int thr[8];
    int n_thr = parse_list(threads_arg, thr, 8);
    if (n_thr <= 0) {
        fprintf(stderr, "bench: bad --threads '%s'\n", threads_arg);
        return 2;
    }

    if (child) {
        const bench_config *c = child_cfg ? config_named(child_cfg) : NULL;
        if (c == NULL) {
            fprintf(stderr, "bench: --child needs --config NAME\n");
            return 2;
        }
        bench_plan p = plan_for(c, quick, full_sampling);
        p.micro_batch = micro;
        return child_main(c, thr[0], &p);
    }

    pythons py;
    memset(&py, 0, sizeof py);
    char pylist[4096];
    snprintf(pylist, sizeof pylist, "%s", python);
    if (pytorch)
        for (char *tok = strtok(pylist, ","); tok; tok = strtok(NULL, ",")) {
            if (py.n == MAX_PY) {
                fprintf(stderr, "bench: at most %d interpreters in --python\n", MAX_PY);
                return 2;
            }
            py.path[py.n++] = tok;
        }

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
    } else {
        snprintf(self, sizeof self, "%s", argv[0]);
    }

    /* The configurations first: a typo should not cost a long run. */
    const bench_config *cfgs[N_CONFIGS];
    int n_cfg = 0;
    char list[128];
    snprintf(list, sizeof list, "%s", configs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        const bench_config *c = config_named(tok);
        if (c == NULL || n_cfg == N_CONFIGS) {
            fprintf(stderr, "bench: unknown configuration '%s'\n", tok);
            return 2;
        }
        cfgs[n_cfg++] = c;
    }

    result res[N_CONFIGS * 8];
    int n = 0;
    double start = now_s();
    for (int ci = 0; ci < n_cfg; ci++) {
        const bench_config *c = cfgs[ci];
        bench_plan p = plan_for(c, quick, full_sampling);
        for (int ti = 0; ti < n_thr; ti++) {
            char tbuf[16], steps[16], warm[16], sample[16];
            snprintf(tbuf, sizeof tbuf, "%d", thr[ti]);
            result *r = &res[n++];
            memset(r, 0, sizeof *r);
            r->cfg = c;
            r->threads = thr[ti];
            char *cargs[] = { self, "--child", "--config", (char *)c->name, "--threads", tbuf,
                              quick ? "--quick" : NULL, NULL, NULL };
            if (full_sampling) cargs[quick ? 7 : 6] = "--full-sampling";
            snprintf(steps, sizeof steps, "%d", p.steps);
            snprintf(warm, sizeof warm, "%d", p.warmup);
            snprintf(sample, sizeof sample, "%d", p.sample_timed);
            /* C and each PyTorch take turns, so that a slow spell of the
             * machine falls on all; each number is the median of the repeats. */
            char *c_runs[MAX_REPEAT], *py_runs[MAX_PY][MAX_REPEAT];
            for (int k = 0; k < repeat; k++) {
                fprintf(stderr, "[%5.0f s] %s, %d thread%s: libtextdiff (%d of %d)\n",
                        now_s() - start, c->name, thr[ti], thr[ti] > 1 ? "s" : "", k + 1,
                        repeat);
                c_runs[k] = run_capture(cargs, 0);
                if (c_runs[k] == NULL) return 1;
                for (int q = 0; q < py.n; q++) {
                    char *pargs[] = { (char *)py.path[q], (char *)script, "--config",
                                      (char *)c->name, "--threads", tbuf, "--warmup", warm,
                                      "--steps", steps, "--sample-timed", sample, NULL };
                    fprintf(stderr, "[%5.0f s] %s, %d thread%s: PyTorch %s (%d of %d)\n",
                            now_s() - start, c->name, thr[ti], thr[ti] > 1 ? "s" : "",
                            py.path[q], k + 1, repeat);
                    py_runs[q][k] = run_capture(pargs, thr[ti]);
                    if (py_runs[q][k] == NULL) return 1;
                }
            }
            r->c = json_median(c_runs, repeat);
            for (int q = 0; q < py.n; q++) {
                r->py[q] = json_median(py_runs[q], repeat);
                if (py.label[q][0] == '\0') {
                    char v[64], b[96];
                    json_get_str(r->py[q], "torch_version", v, sizeof v);
                    json_get_str(r->py[q], "torch_build", b, sizeof b);
                    snprintf(py.label[q], sizeof py.label[q], "torch %s (%s; mkldnn %s)", v, b,
                             json_get(r->py[q], "torch_mkldnn") == 1.0 ? "on" : "off");
                    py.version[q] = version_number(v);
                    if (py.version[q] > py.version[py.ref]) py.ref = q;
                }
            }
            if (ti == n_thr - 1) { /* the memory run, at the last thread count */
                char mb[16];
                snprintf(mb, sizeof mb, "%d", micro_batch_of(c));
                fprintf(stderr, "[%5.0f s] %s, %d thread%s: libtextdiff, micro_batch %s\n",
                        now_s() - start, c->name, thr[ti], thr[ti] > 1 ? "s" : "", mb);
                char *margs[] = { self, "--child", "--config", (char *)c->name, "--threads",
                                  tbuf, "--micro-batch", mb, quick ? "--quick" : NULL, NULL };
                r->cm = run_capture(margs, 0);
                if (r->cm == NULL) return 1;
            }
        }
    }
    fprintf(stderr, "[%5.0f s] done\n", now_s() - start);
    report(res, n, quick, &py);
    for (int i = 0; i < n; i++) {
        free(res[i].c);
        free(res[i].cm);
        for (int q = 0; q < py.n; q++) free(res[i].py[q]);
    }
    return 0;
}
