/* LayerNorm over the last dimension with biased variance (eps given), saving
 * mean and 1/std per row for the backward pass. The input, not the output,
 * is kept for backward: recovering x̂ from y would divide by w. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "util/simd.h"

#define COL_BLOCK 64

typedef struct ln_fwd {
    float *y, *mean, *rstd;
    const float *x, *w, *b;
    int d;
    float eps;
} ln_fwd;

static void forward_rows(void *ctx, long begin, long end, int tid)
{
    const ln_fwd *a = ctx;
    const float *w = a->w, *b = a->b;
    int d = a->d;
    (void)tid;
    for (long i = begin; i < end; i++) {
        const float *xr = a->x + (size_t)i * d;
        float *yr = a->y + (size_t)i * d;
        float s = 0.0f;
        TDI_SIMD(reduction(+:s))
        for (int j = 0; j < d; j++) s += xr[j];
        float m = s / (float)d;
        /* Two passes: Σ(x − m)² does not cancel the way Σx² − d·m² does. */
        float v = 0.0f;
        TDI_SIMD(reduction(+:v))
        for (int j = 0; j < d; j++) {
            float c = xr[j] - m;
            v += c * c;
        }
        float r = 1.0f / sqrtf(v / (float)d + a->eps);
        TDI_SIMD()
        for (int j = 0; j < d; j++) yr[j] = (xr[j] - m) * r * w[j] + b[j];
        a->mean[i] = m;
        a->rstd[i] = r;
    }
}

/* y, x [n, d]; w, b [d]; mean, rstd [n] */
void tdi_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                           const float *w, const float *b, int n, int d, float eps,
                           tdi_pool *pool)
{
    ln_fwd a = { y, mean, rstd, x, w, b, d, eps };
    tdi_pool_for(pool, n, forward_rows, &a);
}

typedef struct ln_bwd {
    float *dx, *dw, *db;
    const float *dy, *x, *mean, *rstd, *w;
    int n, d, accumulate;
} ln_bwd;

/* dw [d] += Σ_i dy·x̂,  db [d] += Σ_i dy, over column blocks (fixed order). */
static void param_grad_blocks(void *ctx, long begin, long end, int tid)
{
    const ln_bwd *a = ctx;
    int d = a->d;
    (void)tid;
    for (long cb = begin; cb < end; cb++) {
        int j0 = (int)cb * COL_BLOCK;
        int j1 = j0 + COL_BLOCK < d ? j0 + COL_BLOCK : d;
        float sw[COL_BLOCK] = { 0 }, sb[COL_BLOCK] = { 0 };
        for (int i = 0; i < a->n; i++) {
            const float *xr = a->x + (size_t)i * d;
            const float *gr = a->dy + (size_t)i * d;
            float m = a->mean[i], r = a->rstd[i];
            TDI_SIMD()
            for (int j = j0; j < j1; j++) {
                sw[j - j0] += gr[j] * (xr[j] - m) * r;
                sb[j - j0] += gr[j];
            }
        }
        for (int j = j0; j < j1; j++) {
            a->dw[j] += sw[j - j0];
            a->db[j] += sb[j - j0];
        }
    }
}

/* g = dy·w,  dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), row by row */
static void input_grad_rows(void *ctx, long begin, long end, int tid)
{
    const ln_bwd *a = ctx;
    const float *w = a->w;
    int d = a->d;
    (void)tid;
    for (long i = begin; i < end; i++) {
        const float *xr = a->x + (size_t)i * d;
        const float *gr = a->dy + (size_t)i * d;
        float *dxr = a->dx + (size_t)i * d;
        float m = a->mean[i], r = a->rstd[i];
        float sg = 0.0f, sgx = 0.0f;
        TDI_SIMD(reduction(+:sg, sgx))
        for (int j = 0; j < d; j++) {
            float g = gr[j] * w[j];
            sg += g;
            sgx += g * (xr[j] - m) * r;
        }
        float mg = sg / (float)d, mgx = sgx / (float)d;
        if (a->accumulate) {
            TDI_SIMD()
            for (int j = 0; j < d; j++)
                dxr[j] += r * (gr[j] * w[j] - mg - (xr[j] - m) * r * mgx);
        } else {
            TDI_SIMD()
            for (int j = 0; j < d; j++)
                dxr[j] = r * (gr[j] * w[j] - mg - (xr[j] - m) * r * mgx);
        }
    }
}

/* dx, dy, x [n, d]; w [d]; dw, db [d] += (both or neither) */
void tdi_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *mean, const float *rstd,
                            const float *w, int n, int d, int accumulate, tdi_pool *pool)
{
    ln_bwd a = { dx, dw, db, dy, x, mean, rstd, w, n, d, accumulate };
    /* Parameter grads first: dx may overwrite dy. */
    if (dw != NULL && db != NULL)
        tdi_pool_for(pool, (d + COL_BLOCK - 1) / COL_BLOCK, param_grad_blocks, &a);
    tdi_pool_for(pool, n, input_grad_rows, &a);
}
