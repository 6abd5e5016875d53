/* Token embedding lookup plus, for BERT-style models, learned absolute
 * positions. The backward scatter-adds into the embedding tables; rows that
 * share a token collide, so it runs over column blocks (each block visits
 * every row in order) instead of over rows: no races, and the same bits for
 * any thread count. */
#include "kernels/kernels.h"

#include <stddef.h>

#include "util/simd.h"

#define COL_BLOCK 64

typedef struct emb_job {
    float *out, *dtok, *dpos;
    const float *tok, *type, *pos, *dout;
    const void *tokq; /* tok stored as tok_dtype, when not f32 */
    const int32_t *ids;
    int B, T, d, tok_dtype;
} emb_job;

static void lookup_rows(void *ctx, long begin, long end, int tid)
{
    const emb_job *a = ctx;
    int d = a->d;
    (void)tid;
    for (long r = begin; r < end; r++) {
        float *o = a->out + (size_t)r * d;
        const float *e = o;
        if (a->tokq) /* a quantised table: the row dequantised in place */
            tdi_dequantize(a->tok_dtype, o, a->tokq, (size_t)a->ids[r] * d, (size_t)d);
        else
            e = a->tok + (size_t)a->ids[r] * d;
        if (a->type) {
            const float *t = a->type;
            TDI_SIMD()
            for (int j = 0; j < d; j++) o[j] = e[j] + t[j];
            e = o;
        }
        if (a->pos) {
            const float *p = a->pos + (size_t)(r % a->T) * d;
            TDI_SIMD()
            for (int j = 0; j < d; j++) o[j] = e[j] + p[j];
        } else if (e != o) {
            for (int j = 0; j < d; j++) o[j] = e[j];
        }
    }
}

/* out [B·T, d]; ids [B·T]; tok [V, d]; pos [T_max, d] or NULL */
void tdi_embedding_forward(float *out, const int32_t *ids, const float *tok, const float *type,
                           const float *pos, int B, int T, int d, tdi_pool *pool)
{
    emb_job a = { out, NULL, NULL, tok, type, pos, NULL, NULL, ids, B, T, d, TDI_WT_F32 };
    tdi_pool_for(pool, (long)B * T, lookup_rows, &a);
}

void tdi_embedding_forward_q(float *out, const int32_t *ids, const void *tok, int tok_dtype,
                             const float *type, const float *pos, int B, int T, int d,
                             tdi_pool *pool)
{
    if (tok_dtype == TDI_WT_F32) {
        tdi_embedding_forward(out, ids, tok, type, pos, B, T, d, pool);
        return;
    }
    emb_job a = { out, NULL, NULL, NULL, type, pos, NULL, tok, ids, B, T, d, tok_dtype };
    tdi_pool_for(pool, (long)B * T, lookup_rows, &a);
}

/* Columns [j0, j1) of dtok and dpos, every row in order. */
static void scatter_block(const emb_job *a, int j0, int j1)
{
    int n = a->B * a->T, d = a->d;
    for (int r = 0; r < n; r++) {
        const float *g = a->dout + (size_t)r * d;
        float *e = a->dtok + (size_t)a->ids[r] * d;
        TDI_SIMD()
        for (int j = j0; j < j1; j++) e[j] += g[j];
    }
    if (!a->dpos) return;
    for (int t = 0; t < a->T; t++) {
        float *p = a->dpos + (size_t)t * d;
        for (int b = 0; b < a->B; b++) {
            const float *g = a->dout + ((size_t)b * a->T + t) * d;
            TDI_SIMD()
            for (int j = j0; j < j1; j++) p[j] += g[j];
        }
    }
}

static void scatter_blocks(void *ctx, long begin, long end, int tid)
{
    const emb_job *a = ctx;
    (void)tid;
    for (long cb = begin; cb < end; cb++) {
        int j0 = (int)cb * COL_BLOCK;
        scatter_block(a, j0, j0 + COL_BLOCK < a->d ? j0 + COL_BLOCK : a->d);
    }
}

/* dtok [V, d] +=, dpos [T_max, d] += (or NULL); dout [B·T, d]; ids [B·T] */
void tdi_embedding_backward(float *dtok, float *dpos, const float *dout, const int32_t *ids,
                            int B, int T, int d, tdi_pool *pool)
{
    emb_job a = { NULL, dtok, dpos, NULL, NULL, NULL, dout, NULL, ids, B, T, d, TDI_WT_F32 };
    tdi_pool_for(pool, (d + COL_BLOCK - 1) / COL_BLOCK, scatter_blocks, &a);
}
