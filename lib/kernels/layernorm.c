/* LayerNorm over the last dimension with biased variance (eps 1e-5), saving
 * mean and 1/std per row for the backward pass. The input, not the output,
 * is kept for backward: recovering x̂ from y would divide by w. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "util/parallel.h"

#define COL_BLOCK 64

/* y, x [n, d]; w, b [d]; mean, rstd [n] */
void tdi_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                           const float *w, const float *b, int n, int d, int nt)
{
    (void)nt;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        float s = 0.0f;
        TDI_OMP(simd reduction(+:s))
        for (int j = 0; j < d; j++) s += xr[j];
        float m = s / (float)d;
        /* Two passes: Σ(x − m)² does not cancel the way Σx² − d·m² does. */
        float v = 0.0f;
        TDI_OMP(simd reduction(+:v))
        for (int j = 0; j < d; j++) {
            float c = xr[j] - m;
            v += c * c;
        }
        float r = 1.0f / sqrtf(v / (float)d + TDI_LN_EPS);
        TDI_OMP(simd)
        for (int j = 0; j < d; j++) yr[j] = (xr[j] - m) * r * w[j] + b[j];
        mean[i] = m;
        rstd[i] = r;
    }
}

/* dw [d] += Σ_i dy·x̂,  db [d] += Σ_i dy, over column blocks (fixed order). */
static void layernorm_param_grads(float *dw, float *db, const float *dy, const float *x,
                                  const float *mean, const float *rstd, int n, int d, int nt)
{
    (void)nt;
    int n_blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int cb = 0; cb < n_blocks; cb++) {
        int j0 = cb * COL_BLOCK;
        int j1 = j0 + COL_BLOCK < d ? j0 + COL_BLOCK : d;
        float sw[COL_BLOCK] = { 0 }, sb[COL_BLOCK] = { 0 };
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * d;
            const float *gr = dy + (size_t)i * d;
            float m = mean[i], r = rstd[i];
            TDI_OMP(simd)
            for (int j = j0; j < j1; j++) {
                sw[j - j0] += gr[j] * (xr[j] - m) * r;
                sb[j - j0] += gr[j];
            }
        }
        for (int j = j0; j < j1; j++) {
            dw[j] += sw[j - j0];
            db[j] += sb[j - j0];
        }
    }
}

/* dx, dy, x [n, d]; w [d]:  g = dy·w,  dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) */
void tdi_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                            const float *x, const float *mean, const float *rstd,
                            const float *w, int n, int d, int accumulate, int nt)
{
    /* Parameter grads first: dx may overwrite dy. */
    if (dw != NULL && db != NULL) layernorm_param_grads(dw, db, dy, x, mean, rstd, n, d, nt);
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        const float *gr = dy + (size_t)i * d;
        float *dxr = dx + (size_t)i * d;
        float m = mean[i], r = rstd[i];
        float sg = 0.0f, sgx = 0.0f;
        TDI_OMP(simd reduction(+:sg, sgx))
        for (int j = 0; j < d; j++) {
            float g = gr[j] * w[j];
            sg += g;
            sgx += g * (xr[j] - m) * r;
        }
        float mg = sg / (float)d, mgx = sgx / (float)d;
        if (accumulate) {
            TDI_OMP(simd)
            for (int j = 0; j < d; j++)
                dxr[j] += r * (gr[j] * w[j] - mg - (xr[j] - m) * r * mgx);
        } else {
            TDI_OMP(simd)
            for (int j = 0; j < d; j++)
                dxr[j] = r * (gr[j] * w[j] - mg - (xr[j] - m) * r * mgx);
        }
    }
}
