/* Token embedding lookup plus, for BERT-style models, learned absolute
 * positions. The backward scatter-adds into the embedding tables; rows that
 * share a token collide, so it runs over column blocks (each block visits
 * every row in order) instead of over rows: no races, and the same bits for
 * any thread count. */
#include "kernels/kernels.h"

#include <stddef.h>

#include "util/parallel.h"

#define COL_BLOCK 64

/* out [B·T, d]; ids [B·T]; tok [V, d]; pos [T_max, d] or NULL */
void tdi_embedding_forward(float *out, const int32_t *ids, const float *tok, const float *pos,
                           int B, int T, int d, int nt)
{
    (void)nt;
    int n = B * T;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int r = 0; r < n; r++) {
        float *o = out + (size_t)r * d;
        const float *e = tok + (size_t)ids[r] * d;
        if (pos) {
            const float *p = pos + (size_t)(r % T) * d;
            TDI_OMP(simd)
            for (int j = 0; j < d; j++) o[j] = e[j] + p[j];
        } else {
            for (int j = 0; j < d; j++) o[j] = e[j];
        }
    }
}

/* dtok [V, d] +=, dpos [T_max, d] += (or NULL); dout [B·T, d]; ids [B·T] */
void tdi_embedding_backward(float *dtok, float *dpos, const float *dout, const int32_t *ids,
                            int B, int T, int d, int nt)
{
    (void)nt;
    int n = B * T;
    int n_blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int cb = 0; cb < n_blocks; cb++) {
        int j0 = cb * COL_BLOCK;
        int j1 = j0 + COL_BLOCK < d ? j0 + COL_BLOCK : d;
        for (int r = 0; r < n; r++) {
            const float *g = dout + (size_t)r * d;
            float *e = dtok + (size_t)ids[r] * d;
            TDI_OMP(simd)
            for (int j = j0; j < j1; j++) e[j] += g[j];
        }
        if (dpos) {
            for (int t = 0; t < T; t++) {
                float *p = dpos + (size_t)t * d;
                for (int b = 0; b < B; b++) {
                    const float *g = dout + ((size_t)b * T + t) * d;
                    TDI_OMP(simd)
                    for (int j = j0; j < j1; j++) p[j] += g[j];
                }
            }
        }
    }
}
