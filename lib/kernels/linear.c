/* Fully connected layer, W stored [out, in] as nn.Linear.weight. Each
 * product is one tdi_sgemm over all rows; bias and residual are folded in
 * by pre-filling y and running the GEMM with beta = 1, so y is written once
 * by the loop and once by the GEMM. */
#include "kernels/kernels.h"

#include <stddef.h>

#include "util/simd.h"

/* Column blocks for reductions over rows: each block is summed by one thread
 * over all rows in order, so the result does not depend on the thread
 * count, and each row segment read is contiguous. */
#define COL_BLOCK 64

typedef struct prefill_job {
    float *y;
    const float *b, *add;
    int out;
} prefill_job;

/* Rows of y = add + b, add alone, or b alone: what the GEMM adds to. */
static void prefill_rows(void *ctx, long begin, long end, int tid)
{
    const prefill_job *p = ctx;
    const float *b = p->b;
    int out = p->out;
    (void)tid;
    for (long i = begin; i < end; i++) {
        float *yr = p->y + (size_t)i * out;
        const float *ar = p->add ? p->add + (size_t)i * out : NULL;
        if (ar && b) {
            TDI_SIMD()
            for (int j = 0; j < out; j++) yr[j] = ar[j] + b[j];
        } else if (ar) {
            if (ar != yr) {
                TDI_SIMD()
                for (int j = 0; j < out; j++) yr[j] = ar[j];
            }
        } else {
            TDI_SIMD()
            for (int j = 0; j < out; j++) yr[j] = b[j];
        }
    }
}

int tdi_linear_prefill(float *y, const float *b, const float *add, int n, int out,
                       tdi_pool *pool)
{
    if (b == NULL && add == NULL) return 0;
    prefill_job p = { y, b, add, out };
    tdi_pool_for(pool, n, prefill_rows, &p);
    return 1;
}

/* y [n, out] = x [n, in] · w [out, in]ᵀ + b (+ add) */
void tdi_linear_forward(float *y, const float *x, const float *w, const float *b,
                        const float *add, int n, int in, int out, tdi_pool *pool)
{
    float beta = tdi_linear_prefill(y, b, add, n, out, pool) ? 1.0f : 0.0f;
    tdi_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, beta, y, out, pool);
}

typedef struct colsum_job {
    float *acc;
    const float *x;
    int n, cols;
} colsum_job;

static void colsum_blocks(void *ctx, long begin, long end, int tid)
{
    const colsum_job *c = ctx;
    (void)tid;
    for (long cb = begin; cb < end; cb++) {
        int j0 = (int)cb * COL_BLOCK;
        int j1 = j0 + COL_BLOCK < c->cols ? j0 + COL_BLOCK : c->cols;
        float s[COL_BLOCK] = { 0 };
        for (int i = 0; i < c->n; i++) {
            const float *xr = c->x + (size_t)i * c->cols;
            TDI_SIMD()
            for (int j = j0; j < j1; j++) s[j - j0] += xr[j];
        }
        for (int j = j0; j < j1; j++) c->acc[j] += s[j - j0];
    }
}

/* acc [cols] += Σ_rows x [n, cols] */
void tdi_colsum_accumulate(float *acc, const float *x, int n, int cols, tdi_pool *pool)
{
    colsum_job c = { acc, x, n, cols };
    tdi_pool_for(pool, (cols + COL_BLOCK - 1) / COL_BLOCK, colsum_blocks, &c);
}

/* dx [n, in] (=|+=) dy [n, out] · w [out, in];  dw [out, in] += dyᵀ · x [n, in];
 * db [out] += Σ dy */
void tdi_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int n, int in, int out, int accumulate, tdi_pool *pool)
{
    if (dx != NULL)
        tdi_sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx, in, pool);
    if (dw != NULL)
        tdi_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in, pool);
    if (db != NULL) tdi_colsum_accumulate(db, dy, n, out, pool);
}
