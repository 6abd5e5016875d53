#include "train/adamw.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#if defined(__SSE2__) || defined(_M_X64)
#  include <emmintrin.h>
#  define ADAMW_SSE2 1
#endif

/* Work is cut into blocks of this many elements whatever the thread count,
 * so that the norm's partial sums, and hence every bit of the result, do not
 * depend on nt. 8192 floats: the four streams of the update (g, p, m, v)
 * take 128 KiB, which stays in L2 while a block is processed. */
#define ADAMW_BLOCK ((size_t)8192)

/* Moments are padded to whole cache lines so that v and the partial sums
 * start 64-byte aligned inside the one allocation. */
#define ADAMW_PAD_FLOATS ((size_t)(TDI_ALIGN / sizeof(float)))

struct tdi_adamw {
    td_allocator alloc;
    tdi_adamw_config cfg;
    size_t n;
    size_t n_blocks;
    int64_t steps;
    unsigned char *state; /* m | v | partial sums: one allocation */
    float *m, *v;
    double *partial;      /* n_blocks sums of squares */
    tdi_param_range *ranges; /* tiles [0, n), adjacent ranges differ in `decay` */
    size_t n_ranges;
};

tdi_adamw_config tdi_adamw_config_default(void)
{
    tdi_adamw_config c;
    c.lr = 1e-3f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.weight_decay = 0.01f;
    c.clip_norm = 1.0f;
    c.warmup = 0;
    c.total = 1;
    c.min_lr = c.lr;
    return c;
}

td_status tdi_adamw_config_check(const tdi_adamw_config *cfg)
{
    TDI_CHECK_PTR(cfg);
    /* Written as !(ok) so that NaN fails every test. */
    TDI_CHECK_ARG(isfinite(cfg->lr) && cfg->lr > 0.0f,
                  "adamw: lr must be finite and > 0 (got %g)", (double)cfg->lr);
    TDI_CHECK_ARG(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f,
                  "adamw: beta1 must be in [0, 1) (got %g)", (double)cfg->beta1);
    TDI_CHECK_ARG(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f,
                  "adamw: beta2 must be in [0, 1) (got %g)", (double)cfg->beta2);
    TDI_CHECK_ARG(isfinite(cfg->eps) && cfg->eps > 0.0f,
                  "adamw: eps must be finite and > 0 (got %g)", (double)cfg->eps);
    TDI_CHECK_ARG(isfinite(cfg->weight_decay) && cfg->weight_decay >= 0.0f,
                  "adamw: weight_decay must be finite and >= 0 (got %g)",
                  (double)cfg->weight_decay);
    /* A factor 1 - lr * wd <= 0 would flip or zero the weights. */
    TDI_CHECK_ARG((double)cfg->lr * cfg->weight_decay < 1.0,
                  "adamw: lr * weight_decay must be < 1 (got %g * %g)", (double)cfg->lr,
                  (double)cfg->weight_decay);
    TDI_CHECK_ARG(isfinite(cfg->clip_norm) && cfg->clip_norm >= 0.0f,
                  "adamw: clip_norm must be finite and >= 0, 0 disables clipping (got %g)",
                  (double)cfg->clip_norm);
    TDI_CHECK_ARG(cfg->total >= 1, "adamw: total must be >= 1 (got %lld)",
                  (long long)cfg->total);
    TDI_CHECK_ARG(cfg->warmup >= 0 && cfg->warmup <= cfg->total,
                  "adamw: warmup must be in [0, total = %lld] (got %lld)",
                  (long long)cfg->total, (long long)cfg->warmup);
    TDI_CHECK_ARG(cfg->min_lr >= 0.0f && cfg->min_lr <= cfg->lr,
                  "adamw: min_lr must be in [0, lr = %g] (got %g)", (double)cfg->lr,
                  (double)cfg->min_lr);
    return TD_OK;
}

double tdi_adamw_lr(const tdi_adamw_config *cfg, int64_t t)
{
    const double pi = 3.14159265358979323846;
    double lr = cfg->lr, min_lr = cfg->min_lr;
    if (t < 1) return 0.0;
    if (t <= cfg->warmup) return lr * (double)t / (double)cfg->warmup;
    if (t > cfg->total) return min_lr;
    /* Here warmup < t <= total, so total - warmup >= 1. */
    double progress = (double)(t - cfg->warmup) / (double)(cfg->total - cfg->warmup);
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(pi * progress));
}

td_status tdi_adamw_create(const td_allocator *alloc, size_t n, const tdi_adamw_config *cfg,
                           tdi_adamw **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(n >= 1, "tdi_adamw_create: n must be >= 1");
    TDI_TRY(tdi_adamw_config_check(cfg));
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));

    size_t n_blocks = n / ADAMW_BLOCK + (n % ADAMW_BLOCK != 0);
    size_t stride = n / ADAMW_PAD_FLOATS + (n % ADAMW_PAD_FLOATS != 0);
    size_t moments, partials, bytes;
    if (!tdi_mul_size(stride, 2 * ADAMW_PAD_FLOATS * sizeof(float), &moments) ||
        !tdi_mul_size(n_blocks, sizeof(double), &partials) || moments > (size_t)-1 - partials)
        return tdi_fail(TD_ERR_INVALID_ARG, "tdi_adamw_create: n = %zu is too large", n);
    bytes = moments + partials;
    stride *= ADAMW_PAD_FLOATS;

    tdi_adamw *opt = tdi_malloc(&a, sizeof *opt);
    if (!opt) return tdi_nomem(__func__, sizeof *opt);
    memset(opt, 0, sizeof *opt);
    opt->alloc = a;
    opt->cfg = *cfg;
    opt->n = n;
    opt->n_blocks = n_blocks;
    opt->state = tdi_calloc(&a, 1, bytes);
    opt->ranges = tdi_malloc(&a, sizeof *opt->ranges);
    if (!opt->state || !opt->ranges) {
        size_t failed = opt->state ? sizeof *opt->ranges : bytes;
        tdi_adamw_free(opt);
        return tdi_nomem(__func__, failed);
    }
    opt->m = (void *)opt->state;
    opt->v = (void *)(opt->state + stride * sizeof(float));
    opt->partial = (void *)(opt->state + moments);
    opt->ranges[0].offset = 0;
    opt->ranges[0].count = n;
    opt->ranges[0].decay = 1;
    opt->n_ranges = 1;
    *out = opt;
    return TD_OK;
}

void tdi_adamw_free(tdi_adamw *opt)
{
    if (!opt) return;
    td_allocator a = opt->alloc;
    tdi_free(&a, opt->state);
    tdi_free(&a, opt->ranges);
    tdi_free(&a, opt);
}

td_status tdi_adamw_set_decay_ranges(tdi_adamw *opt, const tdi_param_range *ranges,
                                     size_t n_ranges)
{
    TDI_CHECK_PTR(opt);
    TDI_CHECK_PTR(ranges);
    TDI_CHECK_ARG(n_ranges >= 1, "tdi_adamw_set_decay_ranges: no ranges");
    size_t end = 0, merged = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        TDI_CHECK_ARG(ranges[i].offset == end,
                      "tdi_adamw_set_decay_ranges: range %zu starts at %zu, expected %zu", i,
                      ranges[i].offset, end);
        TDI_CHECK_ARG(ranges[i].count >= 1 && ranges[i].count <= opt->n - end,
                      "tdi_adamw_set_decay_ranges: range %zu (offset %zu, count %zu) is empty "
                      "or goes past n = %zu", i, ranges[i].offset, ranges[i].count, opt->n);
        end += ranges[i].count;
        if (i == 0 || (ranges[i].decay != 0) != (ranges[i - 1].decay != 0)) merged++;
    }
    TDI_CHECK_ARG(end == opt->n, "tdi_adamw_set_decay_ranges: ranges end at %zu, n = %zu", end,
                  opt->n);

    size_t bytes = merged * sizeof(tdi_param_range); /* merged <= n_ranges: no overflow */
    tdi_param_range *r = tdi_malloc(&opt->alloc, bytes);
    if (!r) return tdi_nomem(__func__, bytes);
    size_t k = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        int decay = ranges[i].decay != 0;
        if (k > 0 && r[k - 1].decay == decay) {
            r[k - 1].count += ranges[i].count;
        } else {
            r[k].offset = ranges[i].offset;
            r[k].count = ranges[i].count;
            r[k].decay = decay;
            k++;
        }
    }
    tdi_free(&opt->alloc, opt->ranges);
    opt->ranges = r;
    opt->n_ranges = k;
    return TD_OK;
}

td_status tdi_adamw_set_config(tdi_adamw *opt, const tdi_adamw_config *cfg)
{
    TDI_CHECK_PTR(opt);
    TDI_TRY(tdi_adamw_config_check(cfg));
    opt->cfg = *cfg;
    return TD_OK;
}

/* Sum of squares of g[0..len) in double: float squares are exact in double
 * and cannot overflow it, so the sum is non-finite exactly when some g is.
 * Four fixed accumulators: the order of additions is part of the result. */
static double sum_squares(const float *g, size_t len)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        double x0 = g[i], x1 = g[i + 1], x2 = g[i + 2], x3 = g[i + 3];
        s0 += x0 * x0;
        s1 += x1 * x1;
        s2 += x2 * x2;
        s3 += x3 * x3;
    }
    for (; i < len; i++) s0 += (double)g[i] * g[i];
    return (s0 + s1) + (s2 + s3);
}

/* Per-step scalars, rounded to float once so that every element sees the
 * same values (as PyTorch passes its double scalars to float kernels). */
typedef struct adamw_scalars {
    float coef;      /* clipping factor, 1 when not clipping */
    float decay;     /* 1 - lr * weight_decay */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
    float step_size; /* lr / (1 - beta1^t) */
} adamw_scalars;

/* p, g, m, v: [len]; `decay` is the factor on p (1 outside decayed ranges).
 * Explicit SSE2 because the compiler will not vectorise a loop around sqrtf,
 * which may set errno. The body and the scalar tail perform the same IEEE
 * operations in the same order (ISO C mode does not contract them to FMA),
 * so they agree bit for bit; and since spans follow fixed blocks and ranges,
 * an element takes the same path whatever the thread count anyway. */
static void update_span(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, size_t len, float decay, const adamw_scalars *s)
{
    const float coef = s->coef, b1 = s->beta1, ob1 = s->one_minus_beta1;
    const float b2 = s->beta2, ob2 = s->one_minus_beta2, bc2 = s->bc2_sqrt;
    const float eps = s->eps, step = s->step_size;
    size_t i = 0;
#if defined(ADAMW_SSE2)
    const __m128 vcoef = _mm_set1_ps(coef), vb1 = _mm_set1_ps(b1), vob1 = _mm_set1_ps(ob1);
    const __m128 vb2 = _mm_set1_ps(b2), vob2 = _mm_set1_ps(ob2), vbc2 = _mm_set1_ps(bc2);
    const __m128 veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(step), vdecay = _mm_set1_ps(decay);
    for (; i + 4 <= len; i += 4) {
        __m128 gi = _mm_mul_ps(_mm_loadu_ps(g + i), vcoef);
        __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), vb1), _mm_mul_ps(vob1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2),
                               _mm_mul_ps(_mm_mul_ps(vob2, gi), gi));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(_mm_mul_ps(_mm_loadu_ps(p + i), vdecay),
                                        _mm_mul_ps(vstep, _mm_div_ps(mi, denom))));
    }
#endif
    for (; i < len; i++) {
        float gi = g[i] * coef;
        float mi = m[i] * b1 + ob1 * gi;
        float vi = v[i] * b2 + ob2 * gi * gi;
        float denom = sqrtf(vi) / bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * (mi / denom);
    }
}

/* Index of the range containing element `at` (ranges tile [0, n)). */
static size_t range_at(const tdi_param_range *r, size_t n_ranges, size_t at)
{
    size_t lo = 0, hi = n_ranges - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (r[mid].offset <= at) lo = mid; else hi = mid - 1;
    }
    return lo;
}

static void update_block(tdi_adamw *opt, float *params, const float *grads, size_t b,
                         const adamw_scalars *s)
{
    size_t lo = b * ADAMW_BLOCK;
    size_t hi = opt->n - lo < ADAMW_BLOCK ? opt->n : lo + ADAMW_BLOCK;
    size_t r = range_at(opt->ranges, opt->n_ranges, lo);
    while (lo < hi) {
        const tdi_param_range *rg = &opt->ranges[r++];
        size_t end = rg->offset + rg->count < hi ? rg->offset + rg->count : hi;
        update_span(params + lo, grads + lo, opt->m + lo, opt->v + lo, end - lo,
                    rg->decay ? s->decay : 1.0f, s);
        lo = end;
    }
}

typedef struct adamw_job {
    tdi_adamw *opt;
    float *params;
    const float *grads;
    const adamw_scalars *s;
} adamw_job;

static void norm_blocks(void *ctx, long begin, long end, int tid)
{
    const adamw_job *j = ctx;
    const tdi_adamw *opt = j->opt;
    (void)tid;
    for (size_t b = (size_t)begin; b < (size_t)end; b++) {
        size_t lo = b * ADAMW_BLOCK;
        size_t len = opt->n - lo < ADAMW_BLOCK ? opt->n - lo : ADAMW_BLOCK;
        opt->partial[b] = sum_squares(j->grads + lo, len);
    }
}

static void update_blocks(void *ctx, long begin, long end, int tid)
{
    const adamw_job *j = ctx;
    (void)tid;
    for (size_t b = (size_t)begin; b < (size_t)end; b++)
        update_block(j->opt, j->params, j->grads, b, j->s);
}

/* The step's scalars at step t, for a pre-clipping gradient norm. */
static void step_scalars(const tdi_adamw_config *c, int64_t t, double norm, adamw_scalars *s)
{
    const double lr = tdi_adamw_lr(c, t);
    s->coef = 1.0f;
    if (c->clip_norm > 0.0f) {
        /* PyTorch's clip_grad_norm_ rule, including its 1e-6 guard. */
        double coef = (double)c->clip_norm / (norm + 1e-6);
        if (coef < 1.0) s->coef = (float)coef;
    }
    s->decay = (float)(1.0 - lr * c->weight_decay);
    s->beta1 = c->beta1;
    s->one_minus_beta1 = (float)(1.0 - c->beta1);
    s->beta2 = c->beta2;
    s->one_minus_beta2 = (float)(1.0 - c->beta2);
    s->bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    s->eps = c->eps;
    s->step_size = (float)(lr / (1.0 - pow(c->beta1, (double)t)));
}

td_status tdi_adamw_step(tdi_adamw *opt, float *params, const float *grads, tdi_pool *pool,
                         double *grad_norm_out)
{
    TDI_CHECK_PTR(opt);
    TDI_CHECK_PTR(params);
    TDI_CHECK_PTR(grads);
    if (opt->steps == INT64_MAX)
        return tdi_fail(TD_ERR_STATE, "tdi_adamw_step: step counter exhausted");
    const size_t nb = opt->n_blocks;
    adamw_scalars s;
    adamw_job job = { opt, params, grads, &s };

    tdi_pool_for(pool, (long)nb, norm_blocks, &job);
    double sumsq = 0.0;
    for (size_t b = 0; b < nb; b++) sumsq += opt->partial[b];
    double norm = sqrt(sumsq);
    if (grad_norm_out) *grad_norm_out = norm;
    if (!isfinite(norm))
        return tdi_fail(TD_ERR_NUMERIC, "tdi_adamw_step: gradient norm is %g at step %lld; "
                        "step skipped", norm, (long long)opt->steps + 1);

    const int64_t t = opt->steps + 1;
    step_scalars(&opt->cfg, t, norm, &s);
    tdi_pool_for(pool, (long)nb, update_blocks, &job);
    opt->steps = t;
    return TD_OK;
}

size_t tdi_adamw_size(const tdi_adamw *opt) { return opt->n; }
float *tdi_adamw_m(tdi_adamw *opt) { return opt->m; }
float *tdi_adamw_v(tdi_adamw *opt) { return opt->v; }
int64_t tdi_adamw_steps(const tdi_adamw *opt) { return opt->steps; }
const tdi_adamw_config *tdi_adamw_get_config(const tdi_adamw *opt) { return &opt->cfg; }

td_status tdi_adamw_set_steps(tdi_adamw *opt, int64_t steps)
{
    TDI_CHECK_PTR(opt);
    TDI_CHECK_ARG(steps >= 0, "tdi_adamw_set_steps: steps must be >= 0 (got %lld)",
                  (long long)steps);
    opt->steps = steps;
    return TD_OK;
}
