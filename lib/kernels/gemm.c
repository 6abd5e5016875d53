/* The library's matrix product: one product split into blocks of C, the
 * blocks shared out over the pool's threads, each block one cblas_sgemm —
 * or all of them on the calling thread when the BLAS threads its calls
 * itself or must not be called concurrently (blas_callers.c).
 *
 * The blocks depend on the shape alone, never on the thread count, so every
 * element of C comes from the same BLAS call with the same operands however
 * many threads run: results are identical for every thread count. The
 * split runs along the larger of C's two dimensions, in a multiple of 4
 * blocks (an even share for 1, 2 or 4 threads) of about 256 rows or columns
 * each — large enough that re-packing the shared operand once per block
 * costs little, and a multiple of 16 so that blocks start on the kernels'
 * tile boundaries. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <stddef.h>

/* Below this many multiply-adds a product is one call. */
#define GEMM_SPLIT_MIN (1L << 21)

static int split_block(int dim)
{
    int n_blocks = 4 * ((dim + 512) / 1024 > 1 ? (dim + 512) / 1024 : 1);
    int blk = (dim + n_blocks - 1) / n_blocks;
    return (blk + 15) / 16 * 16;
}

/* One product's blocks, shared out over the pool. */
typedef struct gemm_job {
    enum CBLAS_TRANSPOSE ta, tb;
    int trans_a, trans_b, by_rows, m, n, k, blk, dim, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

static void gemm_blocks(void *ctx, long begin, long end, int tid)
{
    const gemm_job *g = ctx;
    (void)tid;
    for (long i = begin; i < end; i++) {
        int o = (int)i * g->blk, len = g->dim - o < g->blk ? g->dim - o : g->blk;
        if (g->by_rows) /* rows o.. of C and of op(A) */
            cblas_sgemm(CblasRowMajor, g->ta, g->tb, len, g->n, g->k, g->alpha,
                        g->trans_a ? g->a + o : g->a + (size_t)o * g->lda, g->lda, g->b,
                        g->ldb, g->beta, g->c + (size_t)o * g->ldc, g->ldc);
        else /* columns o.. of C and of op(B) */
            cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->m, len, g->k, g->alpha, g->a, g->lda,
                        g->trans_b ? g->b + (size_t)o * g->ldb : g->b + o, g->ldb, g->beta,
                        g->c + o, g->ldc);
    }
}

void tdi_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc, tdi_pool *pool)
{
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (m <= 0 || n <= 0) return;
    if ((long)m * n * (k > 0 ? k : 1) < GEMM_SPLIT_MIN) {
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job g = { ta, tb, trans_a, trans_b, m >= n, m, n, k, 0, 0, lda, ldb, ldc,
                   alpha, beta, a, b, c };
    g.dim = g.by_rows ? m : n;
    g.blk = split_block(g.dim);
    tdi_pool_run(pool, (g.dim + g.blk - 1) / g.blk, tdi_blas_callers(), gemm_blocks, &g);
}
