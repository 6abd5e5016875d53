/* Fully connected layer, W stored [out, in] as nn.Linear.weight. Each
 * product is one tdi_sgemm over all rows; bias and residual are folded in
 * by pre-filling y and running the GEMM with beta = 1, so y is written once
 * by the loop and once by the GEMM. */
#include "kernels/kernels.h"

#include <stddef.h>

#include "util/parallel.h"

/* Column blocks for reductions over rows: each block is summed by one thread
 * over all rows in order, so the result does not depend on the thread
 * count, and each row segment read is contiguous. */
#define COL_BLOCK 64

/* y [n, out] = x [n, in] · w [out, in]ᵀ + b (+ add) */
void tdi_linear_forward(float *y, const float *x, const float *w, const float *b,
                        const float *add, int n, int in, int out, int nt)
{
    float beta = 0.0f;
    if (b != NULL || add != NULL) {
        beta = 1.0f;
        TDI_OMP(parallel for num_threads(nt) schedule(static))
        for (int i = 0; i < n; i++) {
            float *yr = y + (size_t)i * out;
            const float *ar = add ? add + (size_t)i * out : NULL;
            if (ar && b) {
                TDI_OMP(simd)
                for (int j = 0; j < out; j++) yr[j] = ar[j] + b[j];
            } else if (ar) {
                if (ar != yr) {
                    TDI_OMP(simd)
                    for (int j = 0; j < out; j++) yr[j] = ar[j];
                }
            } else {
                TDI_OMP(simd)
                for (int j = 0; j < out; j++) yr[j] = b[j];
            }
        }
    }
    tdi_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, beta, y, out, nt);
}

/* acc [cols] += Σ_rows x [n, cols] */
void tdi_colsum_accumulate(float *acc, const float *x, int n, int cols, int nt)
{
    (void)nt;
    int n_blocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int cb = 0; cb < n_blocks; cb++) {
        int j0 = cb * COL_BLOCK;
        int j1 = j0 + COL_BLOCK < cols ? j0 + COL_BLOCK : cols;
        float s[COL_BLOCK] = { 0 };
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * cols;
            TDI_OMP(simd)
            for (int j = j0; j < j1; j++) s[j - j0] += xr[j];
        }
        for (int j = j0; j < j1; j++) acc[j] += s[j - j0];
    }
}

/* dx [n, in] (=|+=) dy [n, out] · w [out, in];  dw [out, in] += dyᵀ · x [n, in];
 * db [out] += Σ dy */
void tdi_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int n, int in, int out, int accumulate, int nt)
{
    if (dx != NULL)
        tdi_sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx, in, nt);
    if (dw != NULL)
        tdi_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in, nt);
    if (db != NULL) tdi_colsum_accumulate(db, dy, n, out, nt);
}
