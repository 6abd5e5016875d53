/* AdamW: PyTorch vectors, the schedule's closed form, clipping, non-finite
 * gradients, thread-count independence, resume, argument checks, and
 * allocation failure. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "golden/adamw_vectors.h"
#include "train/adamw.h"
#include "util/rng.h"
#include "common/test_pool.h"

/* Block size of lib/train/adamw.c; the large tests straddle several blocks. */
enum { BLOCK = 8192 };

/* |got - want| <= tol * max(|want|, 1): relative for values above 1 in
 * magnitude, absolute below, so that values near 0 are not held to a
 * relative bound their float rounding cannot meet. */
static int close_to(double got, double want, double tol)
{
    double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
    return fabs(got - want) <= tol * scale;
}

static void assert_close(double got, double want, double tol, const char *what, size_t i)
{
    if (!close_to(got, want, tol)) {
        print_error("%s[%zu]: got %.9g, want %.9g (tolerance %g)\n", what, i, got, want, tol);
        fail();
    }
}

static tdi_adamw_config golden_config(void)
{
    tdi_adamw_config c;
    c.lr = adamw_vec_lr;
    c.beta1 = adamw_vec_beta1;
    c.beta2 = adamw_vec_beta2;
    c.eps = adamw_vec_eps;
    c.weight_decay = adamw_vec_weight_decay;
    c.clip_norm = adamw_vec_clip_norm;
    c.warmup = adamw_vec_warmup;
    c.total = adamw_vec_total;
    c.min_lr = adamw_vec_min_lr;
    return c;
}

/* PyTorch computes the same float32 expressions in another order (with FMA
 * in its vector kernels) and the gradient norm in float32, so the two agree
 * to rounding, not to the bit. Measured with PyTorch 1.13: parameters within
 * 3.0e-8 absolute (values up to 1.3), m within 8.5e-7 and v within 2.5e-7
 * relative, norms within 8.5e-8 relative. The bounds below leave a margin
 * of 2 to 10 and still catch every modelling error: per-step changes are
 * ~1e-2, so a wrong decay mask, schedule value, clipping factor or bias
 * correction moves the parameters by 1e-4 or more. */
#define GOLDEN_PARAM_TOL 2e-7  /* absolute, times max(1, |p|) */
#define GOLDEN_MOMENT_REL 2e-6 /* relative, elementwise */
#define GOLDEN_NORM_REL 1e-6

static void test_matches_pytorch(void **state)
{
    (void)state;
    /* The vectors exercise what they should: clipped and unclipped steps,
     * warm-up, cosine and the floor of the schedule, mixed decay ranges. */
    int clipped = 0, unclipped = 0;
    for (int s = 0; s < ADAMW_VEC_STEPS; s++) {
        if (adamw_vec_norm[s] > adamw_vec_clip_norm) clipped++; else unclipped++;
    }
    assert_true(clipped >= 2 && unclipped >= 2);
    assert_true(adamw_vec_warmup >= 1 && adamw_vec_total < ADAMW_VEC_STEPS);

    tdi_adamw_config cfg = golden_config();
    tdi_adamw *opt;
    assert_int_equal(tdi_adamw_create(NULL, ADAMW_VEC_N, &cfg, &opt), TD_OK);
    tdi_param_range ranges[ADAMW_VEC_RANGES];
    for (int r = 0; r < ADAMW_VEC_RANGES; r++) {
        ranges[r].offset = adamw_vec_range_offset[r];
        ranges[r].count = adamw_vec_range_count[r];
        ranges[r].decay = adamw_vec_range_decay[r];
    }
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, ranges, ADAMW_VEC_RANGES), TD_OK);

    float p[ADAMW_VEC_N];
    memcpy(p, adamw_vec_start, sizeof p);
    for (int s = 0; s < ADAMW_VEC_STEPS; s++) {
        double lr = tdi_adamw_lr(&cfg, s + 1);
        assert_true(fabs(lr - adamw_vec_lr_used[s]) <= 1e-12 * adamw_vec_lr_used[s]);
        double norm = -1;
        assert_int_equal(tdi_adamw_step(opt, p, adamw_vec_grads[s], test_pool(1), &norm), TD_OK);
        assert_true(fabs(norm - adamw_vec_norm[s]) <= GOLDEN_NORM_REL * adamw_vec_norm[s]);
        assert_int_equal(tdi_adamw_steps(opt), s + 1);
        for (int i = 0; i < ADAMW_VEC_N; i++)
            assert_close(p[i], adamw_vec_expect[s][i], GOLDEN_PARAM_TOL, "param", (size_t)i);
    }
    const float *m = tdi_adamw_m(opt), *v = tdi_adamw_v(opt);
    for (int i = 0; i < ADAMW_VEC_N; i++) {
        assert_true(fabs(m[i] - adamw_vec_m[i]) <= GOLDEN_MOMENT_REL * fabs(adamw_vec_m[i]));
        assert_true(fabs(v[i] - adamw_vec_v[i]) <= GOLDEN_MOMENT_REL * adamw_vec_v[i]);
    }
    tdi_adamw_free(opt);
}

static void test_lr_schedule_closed_form(void **state)
{
    (void)state;
    const double pi = 3.14159265358979323846;
    tdi_adamw_config c = tdi_adamw_config_default();
    c.lr = 1e-3f;
    c.min_lr = 1e-4f;
    c.warmup = 10;
    c.total = 110;
    assert_int_equal(tdi_adamw_config_check(&c), TD_OK);
    const double lr = c.lr, lo = c.min_lr;
    assert_true(tdi_adamw_lr(&c, 0) == 0.0);
    assert_true(tdi_adamw_lr(&c, -5) == 0.0);
    assert_true(fabs(tdi_adamw_lr(&c, 1) - lr / 10) < 1e-15);
    assert_true(fabs(tdi_adamw_lr(&c, 5) - lr / 2) < 1e-15);
    assert_true(tdi_adamw_lr(&c, 10) == lr);                         /* peak */
    assert_true(fabs(tdi_adamw_lr(&c, 11) - (lo + (lr - lo) * 0.5 * (1 + cos(pi / 100)))) <
                1e-15);
    assert_true(fabs(tdi_adamw_lr(&c, 60) - (lr + lo) / 2) < 1e-15); /* half-way */
    assert_true(fabs(tdi_adamw_lr(&c, 85) - (lo + (lr - lo) * 0.5 * (1 + cos(0.75 * pi)))) <
                1e-15);
    assert_true(fabs(tdi_adamw_lr(&c, 110) - lo) < 1e-15);
    assert_true(tdi_adamw_lr(&c, 111) == lo);
    assert_true(tdi_adamw_lr(&c, INT64_MAX) == lo);
    for (int64_t t = 1; t < 10; t++) assert_true(tdi_adamw_lr(&c, t) < tdi_adamw_lr(&c, t + 1));
    for (int64_t t = 10; t < 110; t++)
        assert_true(tdi_adamw_lr(&c, t) > tdi_adamw_lr(&c, t + 1));

    /* No warm-up: the first step is already on the cosine. */
    c.warmup = 0;
    c.total = 4;
    assert_true(fabs(tdi_adamw_lr(&c, 1) - (lo + (lr - lo) * 0.5 * (1 + cos(pi / 4)))) < 1e-15);
    assert_true(fabs(tdi_adamw_lr(&c, 2) - (lr + lo) / 2) < 1e-15);
    /* Warm-up to the end: then straight to the floor. */
    c.warmup = 4;
    assert_true(tdi_adamw_lr(&c, 4) == lr);
    assert_true(tdi_adamw_lr(&c, 5) == lo);
    /* min_lr = lr: constant after warm-up. */
    c.min_lr = c.lr;
    c.warmup = 2;
    c.total = 50;
    for (int64_t t = 2; t < 60; t++) assert_true(fabs(tdi_adamw_lr(&c, t) - lr) < 1e-15);
}

static void fill_uniform(float *x, size_t n, tdi_rng *r, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (2.0f * tdi_rng_f32(r) - 1.0f) * scale;
}

static void test_clipping(void **state)
{
    (void)state;
    enum { N = 3 * BLOCK + 5 };
    static float p[N], g[N];
    tdi_adamw_config c = tdi_adamw_config_default();
    c.clip_norm = 2.0f;
    c.beta1 = 0.75f; /* 1 - beta1 exact in float: m = 0.25 * clipped g exactly */
    tdi_rng r;
    tdi_rng_seed(&r, 11);
    fill_uniform(g, N, &r, 0.01f);
    double ref = 0;
    for (size_t i = 0; i < N; i++) ref += (double)g[i] * g[i];
    ref = sqrt(ref); /* about 0.9: below the threshold */
    assert_true(ref < c.clip_norm);

    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            /* Norm ~3.6: small enough that PyTorch's 1e-6 guard in
             * clip / (norm + 1e-6) shows in the factor's float bits. */
            for (size_t i = 0; i < N; i++) g[i] *= 4.0f;
            ref = 0;
            for (size_t i = 0; i < N; i++) ref += (double)g[i] * g[i];
            ref = sqrt(ref);
            assert_true(ref > c.clip_norm);
        }
        tdi_adamw *opt;
        assert_int_equal(tdi_adamw_create(NULL, N, &c, &opt), TD_OK);
        double norm;
        assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(2), &norm), TD_OK);
        assert_true(fabs(norm - ref) <= 1e-12 * ref);
        /* The factor from the returned norm: its last bits depend on the
         * order of summation, which the check above already bounds. */
        float coef = k == 1 ? (float)(c.clip_norm / (norm + 1e-6)) : 1.0f;
        const float *m = tdi_adamw_m(opt);
        for (size_t i = 0; i < N; i++) assert_true(m[i] == 0.25f * (g[i] * coef));
        tdi_adamw_free(opt);
    }

    /* clip_norm 0: no clipping, whatever the norm. */
    c.clip_norm = 0.0f;
    tdi_adamw *opt;
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &opt), TD_OK);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(1), NULL), TD_OK);
    const float *m = tdi_adamw_m(opt);
    for (size_t i = 0; i < N; i++) assert_true(m[i] == 0.25f * g[i]);
    tdi_adamw_free(opt);
}

static void test_non_finite_gradient_changes_nothing(void **state)
{
    (void)state;
    enum { N = 2 * BLOCK + 77 };
    static float p[N], g[N], p0[N], m0[N], v0[N];
    tdi_adamw_config c = tdi_adamw_config_default();
    tdi_adamw *opt;
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &opt), TD_OK);
    tdi_rng r;
    tdi_rng_seed(&r, 5);
    fill_uniform(p, N, &r, 1.0f);
    fill_uniform(g, N, &r, 0.1f);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(1), NULL), TD_OK); /* non-zero moments */

    const float bad[] = { NAN, INFINITY, -INFINITY };
    const size_t where[] = { 0, BLOCK + 3, N - 1 };
    for (int b = 0; b < 3; b++) {
        for (int w = 0; w < 3; w++) {
            for (int nt = 1; nt <= 2; nt++) {
                fill_uniform(g, N, &r, 0.1f);
                g[where[w]] = bad[b];
                memcpy(p0, p, sizeof p);
                memcpy(m0, tdi_adamw_m(opt), sizeof m0);
                memcpy(v0, tdi_adamw_v(opt), sizeof v0);
                double norm = 0;
                assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(nt), &norm), TD_ERR_NUMERIC);
                assert_false(isfinite(norm));
                assert_non_null(strstr(td_last_error_message(), "step 2"));
                assert_memory_equal(p, p0, sizeof p);
                assert_memory_equal(tdi_adamw_m(opt), m0, sizeof m0);
                assert_memory_equal(tdi_adamw_v(opt), v0, sizeof v0);
                assert_int_equal(tdi_adamw_steps(opt), 1);
            }
        }
    }
    /* The optimizer is still usable afterwards. */
    fill_uniform(g, N, &r, 0.1f);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(2), NULL), TD_OK);
    assert_int_equal(tdi_adamw_steps(opt), 2);
    assert_true(memcmp(p, p0, sizeof p) != 0);
    tdi_adamw_free(opt);
}

/* An independent double-precision AdamW, straight from the definition. */
typedef struct ref_state { double *p, *m, *v; } ref_state;

static double ref_lr(const tdi_adamw_config *c, int64_t t)
{
    if (t <= c->warmup) return (double)c->lr * (double)t / (double)c->warmup;
    if (t > c->total) return c->min_lr;
    double x = (double)(t - c->warmup) / (double)(c->total - c->warmup);
    return c->min_lr + ((double)c->lr - c->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * x));
}

static void ref_step(ref_state *s, const float *g, size_t n, const tdi_param_range *rg,
                     size_t n_ranges, const tdi_adamw_config *c, int64_t t)
{
    double norm = 0;
    for (size_t i = 0; i < n; i++) norm += (double)g[i] * g[i];
    norm = sqrt(norm);
    double coef = c->clip_norm > 0 && c->clip_norm / (norm + 1e-6) < 1
                      ? c->clip_norm / (norm + 1e-6) : 1.0;
    double lr = ref_lr(c, t);
    for (size_t k = 0; k < n_ranges; k++) {
        for (size_t i = rg[k].offset; i < rg[k].offset + rg[k].count; i++) {
            double gi = g[i] * coef;
            if (rg[k].decay) s->p[i] *= 1.0 - lr * c->weight_decay;
            s->m[i] = c->beta1 * s->m[i] + (1.0 - c->beta1) * gi;
            s->v[i] = c->beta2 * s->v[i] + (1.0 - c->beta2) * gi * gi;
            double mh = s->m[i] / (1.0 - pow(c->beta1, (double)t));
            double vh = s->v[i] / (1.0 - pow(c->beta2, (double)t));
            s->p[i] -= lr * mh / (sqrt(vh) + c->eps);
        }
    }
}

static void test_threads_bit_identical_and_match_reference(void **state)
{
    (void)state;
    enum { N = 5 * BLOCK + 123, STEPS = 4 };
    static float p1[N], p2[N], g[N];
    static double rp[N], rm[N], rv[N];
    /* Ranges that start and end inside blocks and span block boundaries. */
    const tdi_param_range rg[] = {
        { 0, 100, 1 }, { 100, BLOCK, 0 }, { BLOCK + 100, 3 * BLOCK, 1 },
        { 4 * BLOCK + 100, 1, 0 }, { 4 * BLOCK + 101, 22, 0 }, { 4 * BLOCK + 123, BLOCK, 1 },
    };
    const size_t nr = sizeof rg / sizeof rg[0];
    tdi_adamw_config c = tdi_adamw_config_default();
    c.lr = 1e-2f;
    c.weight_decay = 0.1f;
    c.clip_norm = 30.0f;
    c.warmup = 1;
    c.total = 3;
    c.min_lr = 1e-3f;
    tdi_adamw *o1, *o2;
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &o1), TD_OK);
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &o2), TD_OK);
    assert_int_equal(tdi_adamw_set_decay_ranges(o1, rg, nr), TD_OK);
    assert_int_equal(tdi_adamw_set_decay_ranges(o2, rg, nr), TD_OK);

    tdi_rng r;
    tdi_rng_seed(&r, 99);
    fill_uniform(p1, N, &r, 1.0f);
    memcpy(p2, p1, sizeof p1);
    ref_state s = { rp, rm, rv };
    for (size_t i = 0; i < N; i++) rp[i] = p1[i], rm[i] = rv[i] = 0;
    int clipped = 0;
    for (int64_t t = 1; t <= STEPS; t++) {
        fill_uniform(g, N, &r, t == 2 ? 1.0f : 0.1f); /* step 2 (norm ~120) is clipped */
        double n1, n2;
        assert_int_equal(tdi_adamw_step(o1, p1, g, test_pool(1), &n1), TD_OK);
        assert_int_equal(tdi_adamw_step(o2, p2, g, test_pool(2), &n2), TD_OK);
        assert_true(memcmp(&n1, &n2, sizeof n1) == 0);
        clipped += n1 > c.clip_norm;
        ref_step(&s, g, N, rg, nr, &c, t);
    }
    assert_int_equal(clipped, 1);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(tdi_adamw_m(o1), tdi_adamw_m(o2), N * sizeof(float));
    assert_memory_equal(tdi_adamw_v(o1), tdi_adamw_v(o2), N * sizeof(float));
    /* Float against double over four steps: the updates are ~1e-2 with
     * float rounding of ~1e-7 relative, well inside 1e-6. */
    const float *m = tdi_adamw_m(o1), *v = tdi_adamw_v(o1);
    for (size_t i = 0; i < N; i++) {
        assert_close(p1[i], rp[i], 1e-6, "param", i);
        assert_close(m[i], rm[i], 1e-6, "m", i);
        assert_true(fabs(v[i] - rv[i]) <= 1e-5 * rv[i]);
    }
    tdi_adamw_free(o1);
    tdi_adamw_free(o2);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    enum { N = BLOCK + 9 };
    static float pa[N], pb[N], g[4][N];
    tdi_adamw_config c = tdi_adamw_config_default();
    c.warmup = 2;
    c.total = 10;
    c.min_lr = 0.0f;
    tdi_rng r;
    tdi_rng_seed(&r, 3);
    fill_uniform(pa, N, &r, 1.0f);
    memcpy(pb, pa, sizeof pa);
    for (int s = 0; s < 4; s++) fill_uniform(g[s], N, &r, 0.2f);

    tdi_adamw *a, *b1, *b2;
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &a), TD_OK);
    for (int s = 0; s < 4; s++)
        assert_int_equal(tdi_adamw_step(a, pa, g[s], test_pool(1), NULL), TD_OK);

    assert_int_equal(tdi_adamw_create(NULL, N, &c, &b1), TD_OK);
    for (int s = 0; s < 2; s++)
        assert_int_equal(tdi_adamw_step(b1, pb, g[s], test_pool(1), NULL), TD_OK);
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &b2), TD_OK);
    assert_int_equal(tdi_adamw_size(b2), N);
    memcpy(tdi_adamw_m(b2), tdi_adamw_m(b1), N * sizeof(float));
    memcpy(tdi_adamw_v(b2), tdi_adamw_v(b1), N * sizeof(float));
    assert_int_equal(tdi_adamw_set_steps(b2, tdi_adamw_steps(b1)), TD_OK);
    tdi_adamw_free(b1);
    for (int s = 2; s < 4; s++)
        assert_int_equal(tdi_adamw_step(b2, pb, g[s], test_pool(1), NULL), TD_OK);
    assert_memory_equal(pa, pb, sizeof pa);
    assert_memory_equal(tdi_adamw_m(a), tdi_adamw_m(b2), N * sizeof(float));
    assert_int_equal(tdi_adamw_steps(b2), 4);
    tdi_adamw_free(a);
    tdi_adamw_free(b2);
}

/* With zero gradients and zero moments Adam's own update is 0, so the
 * parameters change only through weight decay: the mask becomes visible. */
static void test_decay_mask(void **state)
{
    (void)state;
    enum { N = 10 };
    float p[N], g[N] = { 0 };
    tdi_adamw_config c = tdi_adamw_config_default();
    c.lr = 0.1f;
    c.min_lr = c.lr;
    c.weight_decay = 0.5f;
    const float f = (float)(1.0 - (double)c.lr * c.weight_decay);
    tdi_adamw *opt;
    assert_int_equal(tdi_adamw_create(NULL, N, &c, &opt), TD_OK);
    for (int i = 0; i < N; i++) p[i] = 1.0f + (float)i;

    /* Default: the whole buffer decays. */
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(1), NULL), TD_OK);
    for (int i = 0; i < N; i++) assert_true(p[i] == (1.0f + (float)i) * f);

    const tdi_param_range rg[] = { { 0, 3, 0 }, { 3, 4, 7 }, { 7, 1, 0 }, { 8, 2, 0 } };
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, rg, 4), TD_OK);
    float before[N];
    memcpy(before, p, sizeof p);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(2), NULL), TD_OK);
    for (int i = 0; i < N; i++) assert_true(p[i] == (i >= 3 && i < 7 ? before[i] * f : before[i]));

    /* Bad masks are refused and the previous one stays. */
    const tdi_param_range gap[] = { { 0, 3, 1 }, { 4, 6, 1 } };
    const tdi_param_range overlap[] = { { 0, 5, 1 }, { 4, 6, 1 } };
    const tdi_param_range past[] = { { 0, 5, 1 }, { 5, 6, 1 } };
    const tdi_param_range empty[] = { { 0, 0, 1 }, { 0, 10, 1 } };
    const tdi_param_range shortr[] = { { 0, 9, 1 } };
    const tdi_param_range late[] = { { 1, 9, 1 } };
    const tdi_param_range huge[] = { { 0, 5, 1 }, { 5, SIZE_MAX, 1 } };
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, gap, 2), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "range 1 starts at 4"));
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, overlap, 2), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, past, 2), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, empty, 2), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, shortr, 1), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "end at 9"));
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, late, 1), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, huge, 2), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, rg, 0), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, NULL, 1), TD_ERR_INVALID_ARG);
    memcpy(before, p, sizeof p);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(1), NULL), TD_OK);
    for (int i = 0; i < N; i++) assert_true(p[i] == (i >= 3 && i < 7 ? before[i] * f : before[i]));
    tdi_adamw_free(opt);

    /* The default policy: only linear maps decay; the set is configurable. */
    assert_true(tdi_param_kind_decays(TDI_PARAM_MATRIX, TDI_DECAY_KINDS_DEFAULT));
    assert_false(tdi_param_kind_decays(TDI_PARAM_EMBEDDING, TDI_DECAY_KINDS_DEFAULT));
    assert_false(tdi_param_kind_decays(TDI_PARAM_BIAS, TDI_DECAY_KINDS_DEFAULT));
    assert_false(tdi_param_kind_decays(TDI_PARAM_NORM, TDI_DECAY_KINDS_DEFAULT));
    unsigned with_emb = TDI_DECAY_KINDS_DEFAULT | (1u << TDI_PARAM_EMBEDDING);
    assert_true(tdi_param_kind_decays(TDI_PARAM_EMBEDDING, with_emb));
    assert_false(tdi_param_kind_decays(TDI_PARAM_BIAS, with_emb));
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    const tdi_adamw_config ok = tdi_adamw_config_default();
    assert_int_equal(tdi_adamw_config_check(&ok), TD_OK);
    struct { const char *field; tdi_adamw_config c; } bad[32];
    int nb = 0;
#define BAD(fieldname, stmt) \
    do { bad[nb].field = fieldname; bad[nb].c = ok; { tdi_adamw_config *c = &bad[nb].c; stmt; } nb++; } while (0)
    BAD("lr", c->lr = 0.0f);
    BAD("lr", c->lr = -1e-3f);
    BAD("lr", c->lr = NAN);
    BAD("lr", c->lr = INFINITY);
    BAD("beta1", c->beta1 = 1.0f);
    BAD("beta1", c->beta1 = -0.1f);
    BAD("beta1", c->beta1 = NAN);
    BAD("beta2", c->beta2 = 1.0f);
    BAD("beta2", c->beta2 = NAN);
    BAD("eps", c->eps = 0.0f);
    BAD("eps", c->eps = -1e-8f);
    BAD("eps", c->eps = INFINITY);
    BAD("weight_decay", c->weight_decay = -0.01f);
    BAD("weight_decay", c->weight_decay = NAN);
    BAD("lr * weight_decay", (c->lr = 0.5f, c->min_lr = 0.5f, c->weight_decay = 2.0f));
    BAD("clip_norm", c->clip_norm = -1.0f);
    BAD("clip_norm", c->clip_norm = INFINITY);
    BAD("total", c->total = 0);
    BAD("warmup", (c->warmup = 11, c->total = 10));
    BAD("warmup", c->warmup = -1);
    BAD("min_lr", c->min_lr = -1e-5f);
    BAD("min_lr", c->min_lr = 2e-3f);
    BAD("min_lr", c->min_lr = NAN);
#undef BAD
    static char sentinel;
    tdi_adamw *opt = (void *)&sentinel; /* must come back NULL */
    for (int i = 0; i < nb; i++) {
        assert_int_equal(tdi_adamw_config_check(&bad[i].c), TD_ERR_INVALID_ARG);
        if (!strstr(td_last_error_message(), bad[i].field)) {
            print_error("case %d: '%s' not in '%s'\n", i, bad[i].field, td_last_error_message());
            fail();
        }
        assert_int_equal(tdi_adamw_create(NULL, 4, &bad[i].c, &opt), TD_ERR_INVALID_ARG);
        assert_null(opt);
    }
    assert_int_equal(tdi_adamw_config_check(NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_create(NULL, 0, &ok, &opt), TD_ERR_INVALID_ARG);
    assert_null(opt);
    assert_int_equal(tdi_adamw_create(NULL, SIZE_MAX / 2, &ok, &opt), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "too large"));
    assert_int_equal(tdi_adamw_create(NULL, 4, NULL, &opt), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_create(NULL, 4, &ok, NULL), TD_ERR_INVALID_ARG);

    float p[4] = { 1, 2, 3, 4 }, g[4] = { 0.1f, 0.2f, 0.3f, 0.4f };
    assert_int_equal(tdi_adamw_create(NULL, 4, &ok, &opt), TD_OK);
    assert_int_equal(tdi_adamw_step(opt, p, g, NULL, NULL), TD_OK); /* NULL: one thread */
    assert_int_equal(tdi_adamw_set_steps(opt, 0), TD_OK);
    assert_int_equal(tdi_adamw_step(opt, NULL, g, test_pool(1), NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_step(opt, p, NULL, test_pool(1), NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_step(NULL, p, g, test_pool(1), NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_steps(opt), 0);
    assert_int_equal(tdi_adamw_set_steps(opt, -1), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_adamw_set_steps(opt, INT64_MAX), TD_OK);
    assert_int_equal(tdi_adamw_step(opt, p, g, test_pool(1), NULL), TD_ERR_STATE);
    assert_int_equal(tdi_adamw_set_steps(opt, 0), TD_OK);

    /* A refused config leaves the old one; an accepted one takes effect. */
    assert_int_equal(tdi_adamw_set_config(opt, &bad[0].c), TD_ERR_INVALID_ARG);
    assert_true(tdi_adamw_get_config(opt)->lr == ok.lr);
    tdi_adamw_config c2 = ok;
    c2.lr = 5e-4f;
    c2.min_lr = 5e-4f;
    assert_int_equal(tdi_adamw_set_config(opt, &c2), TD_OK);
    assert_true(tdi_adamw_get_config(opt)->lr == 5e-4f);
    tdi_adamw_free(opt);
    tdi_adamw_free(NULL);
}

static void test_allocation_failure(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    tdi_adamw_config c = tdi_adamw_config_default();
    tdi_adamw *opt;
    int failures = 0;
    for (long k = 0;; k++) {
        h.calls = 0;
        h.fail_at = k;
        opt = (void *)&h; /* must come back NULL */
        td_status st = tdi_adamw_create(&a, 1000, &c, &opt);
        if (st == TD_OK) break;
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_null(opt);
        assert_int_equal(h.live, 0);
        failures++;
    }
    assert_true(failures >= 2); /* the handle and the moments, at least */

    /* The moments come from the host's hooks, aligned by the library. */
    assert_int_equal((uintptr_t)tdi_adamw_m(opt) % 64, 0);
    assert_int_equal((uintptr_t)tdi_adamw_v(opt) % 64, 0);

    const tdi_param_range rg[] = { { 0, 500, 1 }, { 500, 500, 0 } };
    h.fail_at = h.calls;
    long live = h.live;
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, rg, 2), TD_ERR_NOMEM);
    assert_int_equal(h.live, live);
    h.fail_at = -1;
    assert_int_equal(tdi_adamw_set_decay_ranges(opt, rg, 2), TD_OK);
    assert_int_equal(h.live, live);
    tdi_adamw_free(opt);
    assert_int_equal(h.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_lr_schedule_closed_form),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_non_finite_gradient_changes_nothing),
        cmocka_unit_test(test_threads_bit_identical_and_match_reference),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_decay_mask),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
