/* Kernels against independent double-precision references.
 *
 * For every layer type the float32 forward is compared with a naive double
 * implementation written here from docs/model.md, and the float32 backward
 * with central differences of that double reference: for a random upstream
 * gradient R the objective is f(θ) = Σ R ⊙ y_ref(θ), θ = (inputs, params),
 * differentiated element by element with h = 1e-6·(1 + |θ_i|).
 *
 * Tolerances. In double the differences carry ~1e-10 truncation and rounding
 * error, so any mismatch is the float32 kernel's: each analytic gradient
 * must satisfy |g − g_fd| <= 1e-5 + 1e-4·|g_fd| (GRAD_ATOL, GRAD_RTOL), and
 * each forward output |y − y_ref| <= 1e-5 + 1e-5·|y_ref| (FWD_*). The float
 * kernels are measured at ~1e-6 relative, so these leave room without
 * letting a wrong term through (a missing term is O(1) relative).
 *
 * Every kernel also runs with nt = 1 and nt = 2 (attention also nt = 3,
 * which leaves threads with unequal shares of (batch, head) pairs) and must
 * give the same bits.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/fastmath.h"
#include "kernels/kernels.h"
#include "util/rng.h"
#include "common/test_pool.h"

#define GRAD_ATOL 1e-5
#define GRAD_RTOL 1e-4
#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-5

static tdi_rng rng;

static float uniform(float lo, float hi) { return lo + (hi - lo) * tdi_rng_f32(&rng); }

static float *new_floats(size_t n, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = uniform(lo, hi);
    return p;
}

static float *copy_floats(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* θ in double, assembled from float pieces so both precisions evaluate the
 * same point. */
static void put_double(double *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

static void assert_same_bits(const float *a, const float *b, size_t n)
{
    assert_memory_equal(a, b, n * sizeof *a);
}

static void assert_forward_close(const char *what, const float *y, const double *ref, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)y[i] - ref[i]);
        if (!(err <= FWD_ATOL + FWD_RTOL * fabs(ref[i])))
            fail_msg("%s forward [%zu]: %.9g vs reference %.9g", what, i, (double)y[i], ref[i]);
    }
}

typedef double (*objective_fn)(const double *theta, const void *ctx);

/* Compares analytic[i] with the central difference of f in θ_i. */
static void check_gradient(const char *what, objective_fn f, const void *ctx, double *theta,
                           size_t n, const float *analytic)
{
    for (size_t i = 0; i < n; i++) {
        double t0 = theta[i], h = 1e-6 * (1.0 + fabs(t0));
        theta[i] = t0 + h;
        double fp = f(theta, ctx);
        theta[i] = t0 - h;
        double fm = f(theta, ctx);
        theta[i] = t0;
        double num = (fp - fm) / ((t0 + h) - (t0 - h));
        double err = fabs((double)analytic[i] - num);
        if (!(err <= GRAD_ATOL + GRAD_RTOL * fabs(num)))
            fail_msg("%s gradient [%zu]: analytic %.9g, finite difference %.9g", what, i,
                     (double)analytic[i], num);
    }
}

static double dot_dr(const double *y, const float *r, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += y[i] * r[i];
    return s;
}

/* ------------------------------------------------------------------------ */
/* the inline exp and tanh the elementwise kernels use */

static void test_fastmath(void **state)
{
    (void)state;
    double worst_exp = 0, worst_tanh = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.3f + (88.3f + 87.3f) * (float)i / 2000000.0f;
        double rel = fabs(tdi_expf(x) / exp((double)x) - 1.0);
        if (rel > worst_exp) worst_exp = rel;
        float u = -12.0f + 24.0f * (float)i / 2000000.0f;
        double err = fabs(tdi_tanhf(u) - tanh((double)u));
        if (err > worst_tanh) worst_tanh = err;
    }
    print_message("fastmath: exp worst relative error %.3g, tanh worst absolute error %.3g\n",
                  worst_exp, worst_tanh);
    assert_true(worst_exp < 4e-7); /* ~3 ulp */
    assert_true(worst_tanh < 3e-7);
    /* Limits: a masked logit's exp is exactly 0, overflow is +inf, NaN stays. */
    assert_true(tdi_expf(-INFINITY) == 0.0f);
    assert_true(tdi_expf(-1000.0f) == 0.0f);
    assert_true(tdi_expf(0.0f) == 1.0f);
    assert_true(isinf(tdi_expf(INFINITY)) && tdi_expf(1000.0f) > 0);
    assert_true(isnan(tdi_expf(NAN)));
    assert_true(tdi_tanhf(INFINITY) == 1.0f && tdi_tanhf(-INFINITY) == -1.0f);
    assert_true(tdi_tanhf(30.0f) == 1.0f && tdi_tanhf(-30.0f) == -1.0f);
    assert_true(tdi_tanhf(0.0f) == 0.0f);
    assert_true(isnan(tdi_tanhf(NAN)));
}

/* ------------------------------------------------------------------------ */
/* linear */

typedef struct linear_ctx { int n, in, out; const float *r; double *y; } linear_ctx;

/* θ = x [n, in] | w [out, in] | b [out] */
static void linear_ref(double *y, const double *theta, int n, int in, int out)
{
    const double *x = theta, *w = x + (size_t)n * in, *b = w + (size_t)out * in;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int k = 0; k < in; k++) s += x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = s;
        }
}

static double linear_objective(const double *theta, const void *vctx)
{
    const linear_ctx *c = vctx;
    linear_ref(c->y, theta, c->n, c->in, c->out);
    return dot_dr(c->y, c->r, (size_t)c->n * c->out);
}

static void test_linear(void **state)
{
    (void)state;
    enum { N = 9, IN = 13, OUT = 70 }; /* OUT > 64: two column blocks */
    size_t nx = N * IN, nw = OUT * IN, ny = N * OUT;
    float *x = new_floats(nx, -1, 1), *w = new_floats(nw, -1, 1), *b = new_floats(OUT, -1, 1);
    float *add = new_floats(ny, -1, 1), *r = new_floats(ny, -1, 1);
    float *y = new_floats(ny, 0, 0), *y2 = new_floats(ny, 0, 0);
    double *theta = malloc((nx + nw + OUT) * sizeof *theta), *yref = malloc(ny * sizeof *yref);
    put_double(theta, x, nx);
    put_double(theta + nx, w, nw);
    put_double(theta + nx + nw, b, OUT);

    tdi_linear_forward(y, x, w, b, NULL, N, IN, OUT, test_pool(1));
    linear_ref(yref, theta, N, IN, OUT);
    assert_forward_close("linear", y, yref, ny);
    tdi_linear_forward(y2, x, w, b, NULL, N, IN, OUT, test_pool(2));
    assert_same_bits(y, y2, ny);

    /* Residual: add, and add in place (add == y). */
    tdi_linear_forward(y2, x, w, b, add, N, IN, OUT, test_pool(2));
    for (size_t i = 0; i < ny; i++) yref[i] += add[i];
    assert_forward_close("linear + add", y2, yref, ny);
    memcpy(y, add, ny * sizeof *y);
    tdi_linear_forward(y, x, w, b, y, N, IN, OUT, test_pool(1));
    assert_same_bits(y, y2, ny);
    /* No bias. */
    tdi_linear_forward(y, x, w, NULL, NULL, N, IN, OUT, test_pool(1));
    for (size_t i = 0; i < ny; i++) yref[i] -= add[i] + b[i % OUT];
    assert_forward_close("linear without bias", y, yref, ny);
    tdi_linear_forward(y, x, w, NULL, add, N, IN, OUT, test_pool(2));
    for (size_t i = 0; i < ny; i++) yref[i] += add[i];
    assert_forward_close("linear + add without bias", y, yref, ny);

    /* Backward into a gradient vector laid out as θ; dx starts as NaN to show
     * that accumulate = 0 never reads it. */
    float *g = new_floats(nx + nw + OUT, 0, 0), *g2 = new_floats(nx + nw + OUT, 0, 0);
    for (size_t i = 0; i < nx; i++) g[i] = NAN;
    tdi_linear_backward(g, g + nx, g + nx + nw, r, x, w, N, IN, OUT, 0, test_pool(1));
    linear_ctx ctx = { N, IN, OUT, r, yref };
    check_gradient("linear", linear_objective, &ctx, theta, nx + nw + OUT, g);
    tdi_linear_backward(g2, g2 + nx, g2 + nx + nw, r, x, w, N, IN, OUT, 0, test_pool(2));
    assert_same_bits(g, g2, nx + nw + OUT);

    /* A second pass accumulates everything: parameters always, dx on request.
     * A BLAS may add its product into C as it goes rather than once at the
     * end, which rounds differently: relative tolerance. */
    tdi_linear_backward(g2, g2 + nx, g2 + nx + nw, r, x, w, N, IN, OUT, 1, test_pool(2));
    for (size_t i = 0; i < nx + nw + OUT; i++)
        if (!(fabsf(g2[i] - 2 * g[i]) <= 1e-5f * (1 + fabsf(g[i]))))
            fail_msg("linear accumulate [%zu]: %.8g vs 2 x %.8g", i, (double)g2[i],
                     (double)g[i]);

    free(x); free(w); free(b); free(add); free(r); free(y); free(y2); free(theta); free(yref);
    free(g); free(g2);
}

/* ------------------------------------------------------------------------ */
/* layernorm */

typedef struct ln_ctx { int n, d; const float *r; double *y; } ln_ctx;

/* θ = x [n, d] | w [d] | b [d] */
static void layernorm_ref(double *y, const double *theta, int n, int d)
{
    const double *x = theta, *w = x + (size_t)n * d, *b = w + d;
    for (int i = 0; i < n; i++) {
        const double *xr = x + (size_t)i * d;
        double m = 0, v = 0;
        for (int j = 0; j < d; j++) m += xr[j];
        m /= d;
        for (int j = 0; j < d; j++) v += (xr[j] - m) * (xr[j] - m);
        v /= d;
        for (int j = 0; j < d; j++)
            y[(size_t)i * d + j] = (xr[j] - m) / sqrt(v + 1e-5) * w[j] + b[j];
    }
}

static double layernorm_objective(const double *theta, const void *vctx)
{
    const ln_ctx *c = vctx;
    layernorm_ref(c->y, theta, c->n, c->d);
    return dot_dr(c->y, c->r, (size_t)c->n * c->d);
}

static void test_layernorm(void **state)
{
    (void)state;
    enum { N = 6, D = 70 };
    size_t nx = N * D;
    float *x = new_floats(nx, -1, 1), *w = new_floats(D, 0.5f, 1.5f), *b = new_floats(D, -1, 1);
    float *r = new_floats(nx, -1, 1);
    for (int i = 0; i < N; i++) /* rows with their own offset and scale */
        for (int j = 0; j < D; j++) x[i * D + j] = x[i * D + j] * (float)(i + 1) + (float)(3 * i);
    float *y = new_floats(nx, 0, 0), *y2 = new_floats(nx, 0, 0);
    float mean[N], rstd[N], mean2[N], rstd2[N];
    double *theta = malloc((nx + 2 * D) * sizeof *theta), *yref = malloc(nx * sizeof *yref);
    put_double(theta, x, nx);
    put_double(theta + nx, w, D);
    put_double(theta + nx + D, b, D);

    tdi_layernorm_forward(y, mean, rstd, x, w, b, N, D, TDI_LN_EPS, test_pool(1));
    layernorm_ref(yref, theta, N, D);
    assert_forward_close("layernorm", y, yref, nx);
    tdi_layernorm_forward(y2, mean2, rstd2, x, w, b, N, D, TDI_LN_EPS, test_pool(2));
    assert_same_bits(y, y2, nx);
    assert_same_bits(rstd, rstd2, N);

    float *g = new_floats(nx + 2 * D, 0, 0), *g2 = new_floats(nx + 2 * D, 0, 0);
    tdi_layernorm_backward(g, g + nx, g + nx + D, r, x, mean, rstd, w, N, D, 0, test_pool(1));
    ln_ctx ctx = { N, D, r, yref };
    check_gradient("layernorm", layernorm_objective, &ctx, theta, nx + 2 * D, g);

    /* In place (dx == dy) with nt = 2 gives the same bits. */
    memcpy(g2, r, nx * sizeof *g2);
    tdi_layernorm_backward(g2, g2 + nx, g2 + nx + D, g2, x, mean, rstd, w, N, D, 0, test_pool(2));
    assert_same_bits(g, g2, nx + 2 * D);
    /* accumulate = 1 adds onto dx. */
    float *acc = new_floats(nx, -1, 1), *acc0 = copy_floats(acc, nx);
    tdi_layernorm_backward(acc, NULL, NULL, r, x, mean, rstd, w, N, D, 1, test_pool(2));
    for (size_t i = 0; i < nx; i++) assert_float_equal(acc[i], acc0[i] + g[i], 1e-6);

    free(x); free(w); free(b); free(r); free(y); free(y2); free(theta); free(yref);
    free(g); free(g2); free(acc); free(acc0);
}

/* ------------------------------------------------------------------------ */
/* GELU */

typedef struct gelu_ctx { size_t n; const float *r; } gelu_ctx;

static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.141592653589793) * (x + 0.044715 * x * x * x)));
}

static double gelu_objective(const double *theta, const void *vctx)
{
    const gelu_ctx *c = vctx;
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += gelu_ref(theta[i]) * c->r[i];
    return s;
}

static void test_gelu(void **state)
{
    (void)state;
    enum { N = 5000 }; /* more than one chunk of the parallel loop */
    float *x = new_floats(N, -6, 6), *r = new_floats(N, -1, 1);
    float *y = new_floats(N, 0, 0), *y2 = new_floats(N, 0, 0);
    double *theta = malloc(N * sizeof *theta), *yref = malloc(N * sizeof *yref);
    put_double(theta, x, N);
    for (int i = 0; i < N; i++) yref[i] = gelu_ref(theta[i]);
    tdi_gelu_forward(y, x, N, TDI_GELU_TANH, test_pool(1));
    assert_forward_close("gelu", y, yref, N);
    tdi_gelu_forward(y2, x, N, TDI_GELU_TANH, test_pool(2));
    assert_same_bits(y, y2, N);

    float *g = new_floats(N, 0, 0), *g2 = copy_floats(r, N);
    tdi_gelu_backward(g, r, x, N, TDI_GELU_TANH, test_pool(1));
    gelu_ctx ctx = { N, r };
    check_gradient("gelu", gelu_objective, &ctx, theta, N, g);
    tdi_gelu_backward(g2, g2, x, N, TDI_GELU_TANH, test_pool(2)); /* in place */
    assert_same_bits(g, g2, N);

    /* The kernels run in the version cloned for this CPU (AVX-512, AVX2 or
     * the baseline); the same formula one element at a time, compiled for
     * the baseline here, gives the same bits. */
    for (int i = 0; i < N; i++) {
        float v = x[i];
        float t = tdi_tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v));
        float fwd = 0.5f * v * (1.0f + t);
        float dt = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * v * v);
        float bwd = r[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
        assert_memory_equal(&fwd, &y[i], sizeof fwd);
        assert_memory_equal(&bwd, &g[i], sizeof bwd);
    }
    free(x); free(r); free(y); free(y2); free(theta); free(yref); free(g); free(g2);
}

/* The exact form, 0.5·x·(1 + erf(x/√2)), against libm's double erf and
 * central differences. */
static double gelu_erf_objective(const double *theta, const void *vctx)
{
    const gelu_ctx *c = vctx;
    double s = 0;
    for (size_t i = 0; i < c->n; i++)
        s += 0.5 * theta[i] * (1.0 + erf(theta[i] / sqrt(2.0))) * c->r[i];
    return s;
}

static void test_gelu_erf(void **state)
{
    (void)state;
    enum { N = 5000 };
    float *x = new_floats(N, -6, 6), *r = new_floats(N, -1, 1);
    float *y = new_floats(N, 0, 0), *y2 = new_floats(N, 0, 0);
    double *theta = malloc(N * sizeof *theta), *yref = malloc(N * sizeof *yref);
    put_double(theta, x, N);
    for (int i = 0; i < N; i++) yref[i] = 0.5 * theta[i] * (1.0 + erf(theta[i] / sqrt(2.0)));
    tdi_gelu_forward(y, x, N, TDI_GELU_ERF, test_pool(1));
    assert_forward_close("gelu_erf", y, yref, N);
    tdi_gelu_forward(y2, x, N, TDI_GELU_ERF, test_pool(2));
    assert_same_bits(y, y2, N);
    /* the two forms differ by up to ~5e-4 near |x| = 2: they are not mixed up */
    double most = 0;
    for (int i = 0; i < N; i++)
        most = fmax(most, fabs(yref[i] - gelu_ref(theta[i])));
    assert_true(most > 1e-4);

    float *g = new_floats(N, 0, 0), *g2 = copy_floats(r, N);
    tdi_gelu_backward(g, r, x, N, TDI_GELU_ERF, test_pool(1));
    gelu_ctx ctx = { N, r };
    check_gradient("gelu_erf", gelu_erf_objective, &ctx, theta, N, g);
    tdi_gelu_backward(g2, g2, x, N, TDI_GELU_ERF, test_pool(2)); /* in place */
    assert_same_bits(g, g2, N);
    free(x); free(r); free(y); free(y2); free(theta); free(yref); free(g); free(g2);
}

/* ------------------------------------------------------------------------ */
/* RoPE */

typedef struct rope_ctx { int n, ld, T, n_heads, hd; const float *r; double *y; } rope_ctx;

/* Rotation of the first n_heads·hd columns of every row, from the
 * definition: pair (i, i + hd/2), angle p·10000^(−2i/hd); the rest copied. */
static void rope_ref(double *y, const double *x, int n, int ld, int T, int n_heads, int hd)
{
    int half = hd / 2;
    memcpy(y, x, (size_t)n * ld * sizeof *y);
    for (int r = 0; r < n; r++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < half; i++) {
                double a = (r % T) * pow(10000.0, -2.0 * i / hd);
                size_t j0 = (size_t)r * ld + (size_t)h * hd + i, j1 = j0 + half;
                y[j0] = x[j0] * cos(a) - x[j1] * sin(a);
                y[j1] = x[j1] * cos(a) + x[j0] * sin(a);
            }
}

static double rope_objective(const double *theta, const void *vctx)
{
    const rope_ctx *c = vctx;
    rope_ref(c->y, theta, c->n, c->ld, c->T, c->n_heads, c->hd);
    return dot_dr(c->y, c->r, (size_t)c->n * c->ld);
}

static void test_rope_tables(void **state)
{
    (void)state;
    enum { TMAX = 4096, HD = 64 };
    float *c = malloc((size_t)TMAX * HD / 2 * sizeof *c), *s = malloc((size_t)TMAX * HD / 2 * sizeof *s);
    tdi_rope_tables(c, s, TMAX, HD);
    for (int p = 0; p < TMAX; p += 37)
        for (int i = 0; i < HD / 2; i++) {
            double a = p * pow(10000.0, -2.0 * i / HD);
            assert_true(fabs(c[p * HD / 2 + i] - cos(a)) <= 1e-7);
            assert_true(fabs(s[p * HD / 2 + i] - sin(a)) <= 1e-7);
        }
    free(c); free(s);
}

static void test_rope(void **state)
{
    (void)state;
    /* q | k | v of H = 2 heads, hd = 6: rotate 2H heads, leave v alone. */
    enum { B = 2, T = 5, H = 2, HD = 6, D = H * HD, LD = 3 * D, N = B * T };
    float cos_t[T * HD / 2], sin_t[T * HD / 2];
    tdi_rope_tables(cos_t, sin_t, T, HD);
    size_t nx = N * LD;
    float *x = new_floats(nx, -1, 1), *r = new_floats(nx, -1, 1);
    float *y = copy_floats(x, nx), *y2 = copy_floats(x, nx);
    double *theta = malloc(nx * sizeof *theta), *yref = malloc(nx * sizeof *yref);
    put_double(theta, x, nx);
    tdi_rope_forward(y, LD, N, T, 2 * H, HD, cos_t, sin_t, test_pool(1));
    rope_ref(yref, theta, N, LD, T, 2 * H, HD);
    assert_forward_close("rope", y, yref, nx);
    for (int i = 0; i < N; i++) /* v untouched, bit for bit */
        assert_memory_equal(y + i * LD + 2 * D, x + i * LD + 2 * D, D * sizeof(float));
    /* Position 0 is the identity. */
    assert_memory_equal(y, x, 2 * D * sizeof(float));
    tdi_rope_forward(y2, LD, N, T, 2 * H, HD, cos_t, sin_t, test_pool(2));
    assert_same_bits(y, y2, nx);

    /* Backward = the transpose; v columns pass through. The gradient layout
     * is θ, so the v part of dy must come back unchanged. */
    float *g = copy_floats(r, nx);
    tdi_rope_backward(g, LD, N, T, 2 * H, HD, cos_t, sin_t, test_pool(1));
    rope_ctx ctx = { N, LD, T, 2 * H, HD, r, yref };
    check_gradient("rope", rope_objective, &ctx, theta, nx, g);
    /* Backward undoes forward (a rotation's transpose is its inverse). */
    tdi_rope_backward(y, LD, N, T, 2 * H, HD, cos_t, sin_t, test_pool(2));
    for (size_t i = 0; i < nx; i++) assert_float_equal(y[i], x[i], 1e-6);
    free(x); free(r); free(y); free(y2); free(theta); free(yref); free(g);
}

/* ------------------------------------------------------------------------ */
/* attention */

/* The kernels' scratch for nt threads: exactly what the contract in
 * kernels.h asks for (so a sanitizer build catches any overrun), filled with
 * NaN so that anything read before being written shows up. */
static float *attention_scratch(int T, int nt, int backward)
{
    size_t n = (size_t)nt * tdi_attention_scratch_floats(T, backward);
    float *s = new_floats(n, 0, 0);
    for (size_t i = 0; i < n; i++) s[i] = NAN;
    return s;
}

static void attention_fwd(float *y, float *row_max, float *row_inv, const float *qkv,
                          const uint8_t *mask, int B, int T, int H, int hd, int nt)
{
    float *scratch = attention_scratch(T, nt, 0);
    tdi_attention_forward(y, row_max, row_inv, qkv, mask, 0, B, T, H, hd, scratch, nt,
                          test_pool(nt));
    free(scratch);
}

static void attention_bwd(float *g, const float *dy, const float *qkv, const float *row_max,
                          const float *row_inv, const uint8_t *mask, int B, int T, int H, int hd,
                          int nt)
{
    float *scratch = attention_scratch(T, nt, 1);
    tdi_attention_backward(g, dy, qkv, row_max, row_inv, mask, 0, B, T, H, hd, scratch, nt,
                           test_pool(nt));
    free(scratch);
}

typedef struct attn_ctx {
    int B, T, H, hd;
    const uint8_t *mask;
    const float *r;
    double *y;
} attn_ctx;

/* Probabilities P [T, T] of pair (b, h) in double, straight from the
 * definition; a row with no attendable key is all zeros. mx, inv [T] (may be
 * NULL) receive each row's score maximum and 1/Σe (−∞ and 0 for such a
 * row). */
static void attention_probs_ref(double *P, double *mx, double *inv, const double *qkv,
                                const uint8_t *mask, int b, int h, int T, int H, int hd)
{
    int d = H * hd, ld = 3 * d;
    for (int i = 0; i < T; i++) {
        const double *q = qkv + ((size_t)b * T + i) * ld + (size_t)h * hd;
        double *p = P + (size_t)i * T, m = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
            const double *k = qkv + ((size_t)b * T + j) * ld + d + (size_t)h * hd;
            double s = 0;
            for (int c = 0; c < hd; c++) s += q[c] * k[c];
            p[j] = s / sqrt((double)hd);
            if ((!mask || mask[b * T + j]) && p[j] > m) m = p[j];
        }
        for (int j = 0; j < T; j++) {
            p[j] = (!mask || mask[b * T + j]) ? exp(p[j] - m) : 0.0;
            sum += p[j];
        }
        for (int j = 0; j < T; j++) p[j] = sum > 0 ? p[j] / sum : 0.0;
        if (mx) mx[i] = m;
        if (inv) inv[i] = sum > 0 ? 1 / sum : 0.0;
    }
}

/* y [B·T, d] = heads of P·V; row_max, row_inv [B, H, T] may be NULL. */
static void attention_ref(double *y, double *row_max, double *row_inv, const double *qkv,
                          const uint8_t *mask, int B, int T, int H, int hd)
{
    int d = H * hd, ld = 3 * d;
    double *P = malloc((size_t)T * T * sizeof *P);
    assert_non_null(P);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)b * H + h;
            attention_probs_ref(P, row_max ? row_max + bh * T : NULL,
                                row_inv ? row_inv + bh * T : NULL, qkv, mask, b, h, T, H, hd);
            for (int i = 0; i < T; i++)
                for (int c = 0; c < hd; c++) {
                    double s = 0;
                    for (int j = 0; j < T; j++)
                        s += P[(size_t)i * T + j]
                             * qkv[((size_t)b * T + j) * ld + 2 * d + (size_t)h * hd + c];
                    y[((size_t)b * T + i) * d + (size_t)h * hd + c] = s;
                }
        }
    free(P);
}

/* The textbook backward in double, materialising P, dP and dS [T, T] of
 * every pair: dV = Pᵀ·dY, dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)),
 * dQ = dS·K/√hd, dK = dSᵀ·Q/√hd. dqkv [B·T, 3d], dy [B·T, d]. */
static void attention_backward_ref(double *dqkv, const double *qkv, const float *dy,
                                   const uint8_t *mask, int B, int T, int H, int hd)
{
    int d = H * hd, ld = 3 * d;
    double scale = 1 / sqrt((double)hd);
    size_t tt = (size_t)T * T;
    double *P = malloc(tt * sizeof *P), *dS = malloc(tt * sizeof *dS);
    assert_non_null(P);
    assert_non_null(dS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            attention_probs_ref(P, NULL, NULL, qkv, mask, b, h, T, H, hd);
            const double *Q = qkv + (size_t)b * T * ld + (size_t)h * hd;
            const double *K = Q + d, *V = Q + 2 * d;
            const float *dY = dy + (size_t)b * T * d + (size_t)h * hd;
            double *dQ = dqkv + (size_t)b * T * ld + (size_t)h * hd;
            double *dK = dQ + d, *dV = dQ + 2 * d;
            for (int i = 0; i < T; i++) {
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    double dp = 0;
                    for (int c = 0; c < hd; c++)
                        dp += (double)dY[(size_t)i * d + c] * V[(size_t)j * ld + c];
                    dS[(size_t)i * T + j] = dp;
                    dot += P[(size_t)i * T + j] * dp;
                }
                for (int j = 0; j < T; j++)
                    dS[(size_t)i * T + j] = P[(size_t)i * T + j] * (dS[(size_t)i * T + j] - dot);
            }
            for (int j = 0; j < T; j++)
                for (int c = 0; c < hd; c++) {
                    double q = 0, k = 0, v = 0;
                    for (int i = 0; i < T; i++) {
                        q += dS[(size_t)j * T + i] * K[(size_t)i * ld + c];
                        k += dS[(size_t)i * T + j] * Q[(size_t)i * ld + c];
                        v += P[(size_t)i * T + j] * dY[(size_t)i * d + c];
                    }
                    dQ[(size_t)j * ld + c] = scale * q;
                    dK[(size_t)j * ld + c] = scale * k;
                    dV[(size_t)j * ld + c] = v;
                }
        }
    free(P);
    free(dS);
}

static double attention_objective(const double *theta, const void *vctx)
{
    const attn_ctx *c = vctx;
    attention_ref(c->y, NULL, NULL, theta, c->mask, c->B, c->T, c->H, c->hd);
    return dot_dr(c->y, c->r, (size_t)c->B * c->T * c->H * c->hd);
}

/* Saved per-row numbers against the reference: a finite maximum and 1/Σe
 * close to it, or exactly −∞ and 0 for a row with nothing to attend. */
static void assert_row_stats_close(const float *row_max, const float *row_inv,
                                   const double *mx, const double *inv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (mx[i] == -INFINITY) {
            assert_true(row_max[i] == -INFINITY && row_inv[i] == 0.0f);
            continue;
        }
        if (!(fabs(row_max[i] - mx[i]) <= FWD_ATOL + FWD_RTOL * fabs(mx[i])
              && fabs(row_inv[i] - inv[i]) <= FWD_RTOL * inv[i]))
            fail_msg("attention row %zu: max %.9g inv %.9g vs reference %.9g %.9g", i,
                     (double)row_max[i], (double)row_inv[i], mx[i], inv[i]);
    }
}

/* Forward against the double reference, backward against central
 * differences of it, and nt = 1, 2, 3 bit for bit. */
static void check_attention(const uint8_t *mask)
{
    enum { B = 2, T = 5, H = 2, HD = 4, D = H * HD, N = B * T, NT_MAX = 3 };
    size_t nqkv = N * 3 * D, ny = N * D, nrow = (size_t)B * H * T;
    float *qkv = new_floats(nqkv, -1.5f, 1.5f), *r = new_floats(ny, -1, 1);
    float *y = new_floats(ny, 0, 0), *y2 = new_floats(ny, 0, 0);
    float *mx = new_floats(nrow, 0, 0), *inv = new_floats(nrow, 0, 0);
    float *mx2 = new_floats(nrow, 0, 0), *inv2 = new_floats(nrow, 0, 0);
    double *theta = malloc(nqkv * sizeof *theta), *yref = malloc(ny * sizeof *yref);
    double *mxref = malloc(nrow * sizeof *mxref), *invref = malloc(nrow * sizeof *invref);
    put_double(theta, qkv, nqkv);

    attention_fwd(y, mx, inv, qkv, mask, B, T, H, HD, 1);
    attention_ref(yref, mxref, invref, theta, mask, B, T, H, HD);
    assert_forward_close("attention", y, yref, ny);
    assert_row_stats_close(mx, inv, mxref, invref, nrow);
    for (int nt = 2; nt <= NT_MAX; nt++) {
        attention_fwd(y2, mx2, inv2, qkv, mask, B, T, H, HD, nt);
        assert_same_bits(y, y2, ny);
        assert_same_bits(mx, mx2, nrow);
        assert_same_bits(inv, inv2, nrow);
    }

    float *g = new_floats(nqkv, 0, 0), *g2 = new_floats(nqkv, 0, 0);
    attention_bwd(g, r, qkv, mx, inv, mask, B, T, H, HD, 1);
    attn_ctx ctx = { B, T, H, HD, mask, r, yref };
    check_gradient(mask ? "attention (key mask)" : "attention", attention_objective, &ctx,
                   theta, nqkv, g);
    for (int nt = 2; nt <= NT_MAX; nt++) {
        attention_bwd(g2, r, qkv, mx, inv, mask, B, T, H, HD, nt);
        assert_same_bits(g, g2, nqkv);
    }
    free(qkv); free(r); free(y); free(y2); free(mx); free(inv); free(mx2); free(inv2);
    free(theta); free(yref); free(mxref); free(invref); free(g); free(g2);
}

static void test_attention(void **state)
{
    (void)state;
    check_attention(NULL);
}

static void test_attention_key_mask(void **state)
{
    (void)state;
    /* Sequence 0 attends everywhere but key 2; sequence 1 is padded at 3, 4. */
    static const uint8_t mask[10] = { 1, 1, 0, 1, 1, 1, 1, 1, 0, 0 };
    check_attention(mask);
}

static void test_attention_fully_masked_sequence(void **state)
{
    (void)state;
    /* Sequence 1 has nothing to attend: zero output, zero gradient. */
    static const uint8_t full[10] = { 1, 1, 1, 0, 1, 0, 0, 0, 0, 0 };
    check_attention(full);

    enum { B = 2, T = 3, H = 1, HD = 2, D = H * HD, N = B * T };
    static const uint8_t mask[N] = { 1, 1, 0, 0, 0, 0 };
    float *qkv = new_floats(N * 3 * D, -1, 1), *dy = new_floats(N * D, -1, 1);
    float y[N * D], mx[B * H * T], inv[B * H * T], g[N * 3 * D];
    attention_fwd(y, mx, inv, qkv, mask, B, T, H, HD, 2);
    for (int i = T * D; i < N * D; i++) assert_true(y[i] == 0.0f);
    for (int i = 0; i < T * D; i++) assert_true(isfinite(y[i]) && y[i] != 0.0f);
    for (int i = T; i < 2 * T; i++) assert_true(mx[i] == -INFINITY && inv[i] == 0.0f);
    attention_bwd(g, dy, qkv, mx, inv, mask, B, T, H, HD, 2);
    for (int i = T * 3 * D; i < N * 3 * D; i++) assert_true(g[i] == 0.0f);
    for (int i = 0; i < T * 3 * D; i++) assert_true(isfinite(g[i]));
    free(qkv);
    free(dy);
}

/* Forward and backward against the materialising double implementation
 * above, on a shape where T is not a multiple of any vector width, several
 * pairs land on each thread, and every key-mask case occurs. */
static void test_attention_matches_materialising_reference(void **state)
{
    (void)state;
    enum { B = 3, T = 37, H = 3, HD = 8, D = H * HD, N = B * T, NT_MAX = 3 };
    size_t nqkv = N * 3 * D, ny = N * D, nrow = (size_t)B * H * T;
    uint8_t mask[N];
    for (int i = 0; i < N; i++) /* 0: all keys; 1: 11 padded + two holes; 2: none */
        mask[i] = (uint8_t)(i < T || (i < 2 * T && i % T < T - 11 && i % T != 4 && i % T != 9));
    for (int variant = 0; variant < 2; variant++) {
        const uint8_t *m = variant ? mask : NULL;
        float *qkv = new_floats(nqkv, -2, 2), *dy = new_floats(ny, -1, 1);
        float *y = new_floats(ny, 0, 0), *y2 = new_floats(ny, 0, 0);
        float *mx = new_floats(nrow, 0, 0), *inv = new_floats(nrow, 0, 0);
        float *g = new_floats(nqkv, 0, 0), *g2 = new_floats(nqkv, 0, 0);
        double *dq = malloc(nqkv * sizeof *dq), *yref = malloc(ny * sizeof *yref);
        double *gref = malloc(nqkv * sizeof *gref);
        put_double(dq, qkv, nqkv);
        attention_ref(yref, NULL, NULL, dq, m, B, T, H, HD);
        attention_backward_ref(gref, dq, dy, m, B, T, H, HD);

        attention_fwd(y, mx, inv, qkv, m, B, T, H, HD, 1);
        assert_forward_close("attention (materialising)", y, yref, ny);
        attention_bwd(g, dy, qkv, mx, inv, m, B, T, H, HD, 1);
        for (size_t i = 0; i < nqkv; i++) {
            double err = fabs((double)g[i] - gref[i]);
            if (!(err <= GRAD_ATOL + GRAD_RTOL * fabs(gref[i])))
                fail_msg("attention (materialising) gradient [%zu]: %.9g vs reference %.9g",
                         i, (double)g[i], gref[i]);
        }
        if (m) /* the fully masked sequence: exactly nothing */
            for (size_t i = 2 * (size_t)T * 3 * D; i < nqkv; i++) assert_true(g[i] == 0.0f);
        for (int nt = 2; nt <= NT_MAX; nt++) {
            float *mx2 = new_floats(nrow, 0, 0), *inv2 = new_floats(nrow, 0, 0);
            attention_fwd(y2, mx2, inv2, qkv, m, B, T, H, HD, nt);
            assert_same_bits(y, y2, ny);
            attention_bwd(g2, dy, qkv, mx2, inv2, m, B, T, H, HD, nt);
            assert_same_bits(g, g2, nqkv);
            free(mx2);
            free(inv2);
        }
        free(qkv); free(dy); free(y); free(y2); free(mx); free(inv); free(g); free(g2);
        free(dq); free(yref); free(gref);
    }
}

/* Backward rebuilds exactly the forward's probabilities. With hd = T, V = I
 * in every head makes the forward's output Y = P, and dY = I makes the
 * backward's dV = Pᵀ of the rebuilt P: products with one non-zero term are
 * exact in any BLAS, so the two must agree bit for bit. The same P shows
 * rows summing to 1 and masked keys at exactly 0. */
static void test_attention_backward_rebuilds_forward_probabilities(void **state)
{
    (void)state;
    enum { B = 3, T = 6, H = 2, HD = T, D = H * HD, N = B * T, LD = 3 * D };
    static const uint8_t mask[N] = { 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    float *qkv = new_floats((size_t)N * LD, -3, 3), *dy = new_floats((size_t)N * D, 0, 0);
    float *y = new_floats((size_t)N * D, 0, 0), *g = new_floats((size_t)N * LD, 0, 0);
    float mx[B * H * T], inv[B * H * T];
    for (int r = 0; r < N; r++)
        for (int c = 0; c < D; c++) {
            int eye = (r % T) == (c % HD);
            qkv[(size_t)r * LD + 2 * D + c] = eye ? 1.0f : 0.0f;
            dy[(size_t)r * D + c] = eye ? 1.0f : 0.0f;
        }
    for (int nt = 1; nt <= 3; nt++) {
        attention_fwd(y, mx, inv, qkv, mask, B, T, H, HD, nt);
        attention_bwd(g, dy, qkv, mx, inv, mask, B, T, H, HD, nt);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) {
                        float p = y[((size_t)b * T + i) * D + (size_t)h * HD + j];
                        float pb = g[((size_t)b * T + j) * LD + 2 * D + (size_t)h * HD + i];
                        assert_memory_equal(&p, &pb, sizeof p);
                        assert_true(p >= 0.0f);
                        if (!mask[b * T + j]) assert_true(p == 0.0f);
                        s += p;
                    }
                    assert_true(b == 2 ? s == 0.0 : fabs(s - 1.0) < 1e-6);
                }
    }
    free(qkv); free(dy); free(y); free(g);
}

/* ------------------------------------------------------------------------ */
/* embedding */

typedef struct emb_ctx { int V, TMAX, B, T, d; const int32_t *ids; const float *r; } emb_ctx;

/* θ = tok [V, d] | pos [TMAX, d] */
static double embedding_objective(const double *theta, const void *vctx)
{
    const emb_ctx *c = vctx;
    const double *tok = theta, *pos = theta + (size_t)c->V * c->d;
    double s = 0;
    for (int r = 0; r < c->B * c->T; r++)
        for (int j = 0; j < c->d; j++)
            s += (tok[(size_t)c->ids[r] * c->d + j] + pos[(size_t)(r % c->T) * c->d + j])
                 * c->r[(size_t)r * c->d + j];
    return s;
}

static void test_embedding(void **state)
{
    (void)state;
    enum { V = 7, TMAX = 6, B = 2, T = 4, D = 70, N = B * T };
    static const int32_t ids[N] = { 3, 0, 3, 6, 6, 6, 1, 3 }; /* repeats collide */
    size_t nt = V * D, np = TMAX * D;
    float *tok = new_floats(nt, -1, 1), *pos = new_floats(np, -1, 1);
    float *r = new_floats(N * D, -1, 1), *y = new_floats(N * D, 0, 0);
    tdi_embedding_forward(y, ids, tok, NULL, pos, B, T, D, test_pool(2));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            assert_true(y[i * D + j] == tok[ids[i] * D + j] + pos[(i % T) * D + j]);
    tdi_embedding_forward(y, ids, tok, NULL, NULL, B, T, D, test_pool(1));
    for (int i = 0; i < N; i++) assert_memory_equal(y + i * D, tok + ids[i] * D, D * sizeof *y);

    double *theta = malloc((nt + np) * sizeof *theta);
    put_double(theta, tok, nt);
    put_double(theta + nt, pos, np);
    float *g = new_floats(nt + np, 0, 0), *g2 = new_floats(nt + np, 0, 0);
    tdi_embedding_backward(g, g + nt, r, ids, B, T, D, test_pool(1));
    emb_ctx ctx = { V, TMAX, B, T, D, ids, r };
    check_gradient("embedding", embedding_objective, &ctx, theta, nt + np, g);
    tdi_embedding_backward(g2, g2 + nt, r, ids, B, T, D, test_pool(2));
    assert_same_bits(g, g2, nt + np);
    free(tok); free(pos); free(r); free(y); free(theta); free(g); free(g2);
}

/* ------------------------------------------------------------------------ */
/* cross-entropy */

typedef struct ce_ctx { int n, V; const int32_t *targets; const float *weights; } ce_ctx;

static double crossentropy_ref(const double *logits, const ce_ctx *c, double *row_loss)
{
    double total = 0;
    for (int r = 0; r < c->n; r++) {
        const double *l = logits + (size_t)r * c->V;
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < c->V; j++) mx = l[j] > mx ? l[j] : mx;
        for (int j = 0; j < c->V; j++) s += exp(l[j] - mx);
        double loss = log(s) + mx - l[c->targets[r]];
        if (row_loss) row_loss[r] = loss;
        total += (c->weights ? c->weights[r] : 1.0) * loss;
    }
    return total;
}

static double crossentropy_objective(const double *theta, const void *vctx)
{
    return crossentropy_ref(theta, vctx, NULL);
}

static void test_crossentropy(void **state)
{
    (void)state;
    enum { N = 4, V = 9, MASK = 3 };
    static const int32_t targets[N] = { 0, 8, 5, 5 };
    static const float weights[N] = { 1.0f, 0.5f, 2.5f, 0.0f };
    float *logits = new_floats(N * V, -4, 4);
    for (int r = 0; r < N; r++) logits[r * V + MASK] = -INFINITY;
    logits[2 * V + 5] = 30.0f; /* a confident row: p ≈ 1 */
    double *theta = malloc(N * V * sizeof *theta), ref_rows[N], rows[N], rows2[N];
    put_double(theta, logits, N * V);
    ce_ctx ctx = { N, V, targets, weights };
    double ref = crossentropy_ref(theta, &ctx, ref_rows);

    float *g = new_floats(N * V, 0, 0), *g2 = copy_floats(logits, N * V);
    double loss = tdi_crossentropy_forward_backward(g, rows, logits, targets, weights, N, V,
                                                    test_pool(1));
    assert_true(fabs(loss - ref) <= 1e-6 * fabs(ref));
    for (int r = 0; r < N; r++) assert_true(fabs(rows[r] - ref_rows[r]) <= 1e-6 * (1 + ref_rows[r]));
    /* The −∞ column: probability, hence gradient, exactly 0. */
    for (int r = 0; r < N; r++) assert_true(g[r * V + MASK] == 0.0f);
    /* Zero weight: no gradient at all. */
    for (int j = 0; j < V; j++) assert_true(g[3 * V + j] == 0.0f);
    /* Finite differences over every finite logit (the −∞ column is skipped by
     * giving it zero analytic and numeric gradient: it never moves). */
    for (int r = 0; r < N; r++) theta[r * V + MASK] = -1e300;
    check_gradient("crossentropy", crossentropy_objective, &ctx, theta, N * V, g);

    /* In place (dlogits == logits), nt = 2: same bits. */
    double loss2 = tdi_crossentropy_forward_backward(g2, rows2, g2, targets, weights, N, V,
                                                     test_pool(2));
    assert_true(loss2 == loss);
    assert_same_bits(g, g2, N * V);
    assert_memory_equal(rows, rows2, sizeof rows);
    /* Loss only, unit weights. */
    ce_ctx unit = { N, V, targets, NULL };
    put_double(theta, logits, N * V);
    double loss3 = tdi_crossentropy_forward_backward(NULL, rows2, logits, targets, NULL, N, V,
                                                     test_pool(1));
    double ref3 = crossentropy_ref(theta, &unit, NULL);
    assert_true(fabs(loss3 - ref3) <= 1e-6 * fabs(ref3));
    free(logits); free(theta); free(g); free(g2);
}

static int setup(void **state)
{
    (void)state;
    tdi_rng_seed(&rng, 20240611);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fastmath),
        cmocka_unit_test_setup(test_linear, setup),
        cmocka_unit_test_setup(test_layernorm, setup),
        cmocka_unit_test_setup(test_gelu, setup),
        cmocka_unit_test_setup(test_gelu_erf, setup),
        cmocka_unit_test_setup(test_rope_tables, setup),
        cmocka_unit_test_setup(test_rope, setup),
        cmocka_unit_test_setup(test_attention, setup),
        cmocka_unit_test_setup(test_attention_key_mask, setup),
        cmocka_unit_test_setup(test_attention_fully_masked_sequence, setup),
        cmocka_unit_test_setup(test_attention_matches_materialising_reference, setup),
        cmocka_unit_test_setup(test_attention_backward_rebuilds_forward_probabilities, setup),
        cmocka_unit_test_setup(test_embedding, setup),
        cmocka_unit_test_setup(test_crossentropy, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
