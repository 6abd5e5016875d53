/* The library's matrix product: one product split into blocks of C, the
 * blocks shared out over the OpenMP team, each block one single-threaded
 * cblas_sgemm (lib/util/blas_threads.h says why the BLAS does not thread
 * itself).
 *
 * The blocks depend on the shape alone, never on the thread count, so every
 * element of C comes from the same BLAS call with the same operands whatever
 * nt is: results are identical for every nt. The split runs along the
 * larger of C's two dimensions, in a multiple of 4 blocks (an even share for
 * 1, 2 or 4 threads) of about 256 rows or columns each — large enough that
 * re-packing the shared operand once per block costs little, and a multiple
 * of 16 so that blocks start on the kernels' tile boundaries. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <stddef.h>

#include "util/parallel.h"

/* Below this many multiply-adds a product is one call. */
#define GEMM_SPLIT_MIN (1L << 21)

static int split_block(int dim)
{
    int n_blocks = 4 * ((dim + 512) / 1024 > 1 ? (dim + 512) / 1024 : 1);
    int blk = (dim + n_blocks - 1) / n_blocks;
    return (blk + 15) / 16 * 16;
}

void tdi_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc, int nt)
{
    (void)nt;
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (m <= 0 || n <= 0) return;
    if ((long)m * n * (k > 0 ? k : 1) < GEMM_SPLIT_MIN) {
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int by_rows = m >= n;
    int dim = by_rows ? m : n;
    int blk = split_block(dim);
    int n_blocks = (dim + blk - 1) / blk;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int i = 0; i < n_blocks; i++) {
        int o = i * blk, len = dim - o < blk ? dim - o : blk;
        if (by_rows) /* rows o.. of C and of op(A) */
            cblas_sgemm(CblasRowMajor, ta, tb, len, n, k, alpha,
                        trans_a ? a + o : a + (size_t)o * lda, lda, b, ldb, beta,
                        c + (size_t)o * ldc, ldc);
        else /* columns o.. of C and of op(B) */
            cblas_sgemm(CblasRowMajor, ta, tb, m, len, k, alpha, a, lda,
                        trans_b ? b + (size_t)o * ldb : b + o, ldb, beta, c + o, ldc);
    }
}
