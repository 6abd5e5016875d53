/* Forward pass of docs/model.md "Forward", and the output head. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/workspace.h"
#include "util/error.h"

/* An approximate key/value cache pass (model.h): NULL for a plain forward;
 * else a full pass that stores every layer's keys and values (w == 0), or
 * a pass over the window [lo, lo + w) of each sequence of length t. */
typedef struct kv_pass {
    const tdi_kv_buf *kv;
    int32_t t, lo, w;
    const uint8_t *key_mask; /* [B·t] or NULL */
} kv_pass;

static float *kv_layer(const kv_pass *p, float *base, int32_t l, int B, int d)
{
    return base + (size_t)l * (size_t)B * (size_t)p->t * (size_t)d;
}

/* Copies the keys and values of rows [B·n] of qkv (row b·n + j is position
 * lo + j of sequence b) into layer l of the cache. */
static void kv_store(const kv_pass *p, const float *qkv, int32_t l, int B, int n, int lo,
                     int d)
{
    float *k = kv_layer(p, p->kv->k, l, B, d), *v = kv_layer(p, p->kv->v, l, B, d);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < n; j++) {
            size_t to = ((size_t)b * (size_t)p->t + (size_t)(lo + j)) * (size_t)d;
            const float *row = qkv + ((size_t)b * (size_t)n + (size_t)j) * 3 * (size_t)d;
            memcpy(k + to, row + d, (size_t)d * sizeof(float));
            memcpy(v + to, row + 2 * (size_t)d, (size_t)d * sizeof(float));
        }
}

/* Rotates q and k (2H consecutive heads of the qkv rows), then attends.
 * With a cache pass, stores the keys and values of layer l; a window pass
 * attends over the cache, its own keys and values fresh. */
static void attention_block(const tdi_model *m, tdi_workspace *ws, tdi_layer_acts *a,
                            int32_t l, const uint8_t *key_mask, int B, int T,
                            const kv_pass *kp, tdi_pool *pool)
{
    int H = m->cfg.n_heads, d = m->cfg.d_model, hd = d / H;
    int lo = kp != NULL && kp->w > 0 ? kp->lo : 0;
    if (m->cfg.pos_encoding == TDI_POS_ROPE) /* row r at position lo + r % T */
        tdi_rope_forward(a->qkv, 3 * d, B * T, T, 2 * H, hd, ws->rope_cos + (size_t)lo * hd / 2,
                         ws->rope_sin + (size_t)lo * hd / 2, pool);
    if (kp != NULL) kv_store(kp, a->qkv, l, B, T, lo, d);
    if (kp == NULL || kp->w == 0) {
        tdi_attention_forward(a->atty, a->att_max, a->att_inv, a->qkv, key_mask, m->cfg.causal,
                              B, T, H, hd, ws->attn_scratch, ws->n_threads, pool);
        return;
    }
    tdi_attention_window_forward(a->atty, a->qkv, 3 * d, kv_layer(kp, kp->kv->k, l, B, d),
                                 kv_layer(kp, kp->kv->v, l, B, d), kp->key_mask, B, T,
                                 kp->t, H, hd, kp->kv->scores, kp->kv->n_slices, pool);
}

/* One block, x [N, d] -> y [N, d] (see tdi_layer_acts for the slots). */
static void block_forward(const tdi_model *m, tdi_workspace *ws, int32_t l, const float *x,
                          float *y, const uint8_t *key_mask, int B, int T, const kv_pass *kp,
                          tdi_pool *pool)
{
    const float *p = m->params;
    const tdi_layer_offsets *o = &m->layers[l];
    tdi_layer_acts *a = tdi_ws_layer(ws, l);
    tdi_profile *pr = ws->prof;
    int N = B * T, d = m->cfg.d_model, ff = m->cfg.d_ff, act = m->cfg.activation;
    float eps = m->cfg.layer_norm_eps;

    if (m->cfg.norm_placement == TDI_NORM_PRE) {
        tdi_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p + o->ln1_w, p + o->ln1_b,
                              N, d, eps, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->qkv, a->ln1, o->qkv_w, o->qkv_b, NULL, N,
                                         d, 3 * d, pool));
        TDI_PROF_TIME(pr, TDI_PROF_ATTENTION,
                      attention_block(m, ws, a, l, key_mask, B, T, kp, pool));
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->res1, a->atty, o->proj_w, o->proj_b, x, N,
                                         d, d, pool));
        tdi_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, p + o->ln2_w,
                              p + o->ln2_b, N, d, eps, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->fch, a->ln2, o->fc_w, o->fc_b, NULL, N, d,
                                         ff, pool));
        tdi_gelu_forward(a->fchg, a->fch, (size_t)N * ff, act, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, y, a->fchg, o->fc2_w, o->fc2_b, a->res1, N,
                                         ff, d, pool));
    } else {
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->qkv, x, o->qkv_w, o->qkv_b, NULL, N, d,
                                         3 * d, pool));
        TDI_PROF_TIME(pr, TDI_PROF_ATTENTION,
                      attention_block(m, ws, a, l, key_mask, B, T, kp, pool));
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->ln1, a->atty, o->proj_w, o->proj_b, x, N,
                                         d, d, pool));
        tdi_layernorm_forward(a->res1, a->ln1_mean, a->ln1_rstd, a->ln1, p + o->ln1_w,
                              p + o->ln1_b, N, d, eps, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->fch, a->res1, o->fc_w, o->fc_b, NULL, N,
                                         d, ff, pool));
        tdi_gelu_forward(a->fchg, a->fch, (size_t)N * ff, act, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_model_linear(m, a->ln2, a->fchg, o->fc2_w, o->fc2_b, a->res1,
                                         N, ff, d, pool));
        tdi_layernorm_forward(y, a->ln2_mean, a->ln2_rstd, a->ln2, p + o->ln2_w, p + o->ln2_b,
                              N, d, eps, pool);
    }
}

/* Checks the arguments every forward shares. */
static td_status check_forward(const tdi_model *m, const tdi_workspace *ws, const int32_t *ids,
                               int32_t B, int32_t T, const char *func)
{
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(ws);
    TDI_CHECK_PTR(ids);
    TDI_CHECK_ARG(memcmp(&ws->cfg, &m->cfg, sizeof m->cfg) == 0,
                  "%s: the workspace was made for another model configuration", func);
    TDI_CHECK_ARG(B >= 1 && B <= ws->b_max, "%s: B = %ld is outside 1..%ld", func,
                  (long)B, (long)ws->b_max);
    TDI_CHECK_ARG(T >= 1 && T <= ws->t_max, "%s: T = %ld is outside 1..%ld", func,
                  (long)T, (long)ws->t_max);
    const tdi_model_config *c = &m->cfg;
    for (int r = 0; r < B * T; r++)
        TDI_CHECK_ARG(ids[r] >= 0 && ids[r] < c->vocab_size,
                      "%s: ids[%d] = %ld is outside 0..%ld", func, r, (long)ids[r],
                      (long)(c->vocab_size - 1));
    return TD_OK;
}

/* The network over ids [B·T] (a window pass: rows [lo, lo + w) of each
 * sequence of kp->t, packed as B·w rows). Writes the final hidden state of
 * those rows at the start of the workspace's buffers. */
static void forward_rows(const tdi_model *m, tdi_workspace *ws, const int32_t *ids, int32_t B,
                         int32_t T, int32_t lo, const uint8_t *key_mask, const kv_pass *kp,
                         tdi_pool *pool)
{
    const tdi_model_config *c = &m->cfg;
    int N = B * T, d = c->d_model;
    float eps = c->layer_norm_eps;
    const float *p = m->params;
    size_t pos0 = tdi_model_pos0(m);
    const float *pos = pos0 != TDI_NO_TENSOR ? p + pos0 + (size_t)lo * d : NULL;
    const float *type = c->type_vocab_size > 0 ? p + m->type_emb : NULL;
    float *x = tdi_ws_res(ws, 0);
    if (c->norm_placement == TDI_NORM_PRE) {
        tdi_embedding_forward_q(x, ids, p + m->tok_emb, tdi_model_wt(m, d),
                                type, pos, B, T, d, pool);
    } else { /* BERT normalises the embeddings, here with lnf */
        tdi_embedding_forward_q(ws->emb, ids, p + m->tok_emb, tdi_model_wt(m, d),
                                type, pos, B, T, d, pool);
        tdi_layernorm_forward(x, ws->lnf_mean, ws->lnf_rstd, ws->emb, p + m->lnf_w,
                              p + m->lnf_b, N, d, eps, pool);
    }
    for (int32_t l = 0; l < c->n_layers; l++)
        block_forward(m, ws, l, tdi_ws_res(ws, l), tdi_ws_res(ws, l + 1), key_mask, B, T, kp,
                      pool);
    if (c->norm_placement == TDI_NORM_PRE)
        tdi_layernorm_forward(ws->hf, ws->lnf_mean, ws->lnf_rstd, tdi_ws_res(ws, c->n_layers),
                              p + m->lnf_w, p + m->lnf_b, N, d, eps, pool);
}

static td_status forward_full(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                              int32_t B, int32_t T, const uint8_t *key_mask, const kv_pass *kp,
                              tdi_pool *pool)
{
    ws->B = ws->T = 0; /* invalid until the pass completes */
    memcpy(ws->ids, ids, (size_t)B * T * sizeof *ids);
    /* Attention backward rebuilds the probabilities: it needs this mask. */
    ws->key_mask = NULL;
    if (ws->with_backward && key_mask) {
        memcpy(ws->mask_copy, key_mask, (size_t)B * T);
        ws->key_mask = ws->mask_copy;
    }
    forward_rows(m, ws, ws->ids, B, T, 0, key_mask, kp, pool);
    ws->B = B;
    ws->T = T;
    return TD_OK;
}

td_status tdi_model_forward(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                            int32_t B, int32_t T, const uint8_t *key_mask, tdi_pool *pool)
{
    TDI_TRY(check_forward(m, ws, ids, B, T, __func__));
    return forward_full(m, ws, ids, B, T, key_mask, NULL, pool);
}

td_status tdi_model_forward_kv(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                               int32_t B, int32_t T, const uint8_t *key_mask,
                               const tdi_kv_buf *kv, tdi_pool *pool)
{
    TDI_TRY(check_forward(m, ws, ids, B, T, __func__));
    TDI_CHECK_ARG(!ws->with_backward && !m->cfg.causal,
                  "%s: an inference workspace of a bidirectional model only", __func__);
    kv_pass kp = { kv, T, 0, 0, key_mask };
    return forward_full(m, ws, ids, B, T, key_mask, &kp, pool);
}

td_status tdi_model_forward_window(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                                   int32_t B, int32_t T, int32_t lo, int32_t hi,
                                   const uint8_t *key_mask, const tdi_kv_buf *kv,
                                   tdi_pool *pool)
{
    TDI_TRY(check_forward(m, ws, ids, B, T, __func__));
    TDI_CHECK_ARG(!ws->with_backward && !m->cfg.causal,
                  "%s: an inference workspace of a bidirectional model only", __func__);
    TDI_CHECK_ARG(lo >= 0 && lo < hi && hi <= T, "%s: the window [%ld, %ld) is not inside "
                  "[0, T = %ld)", __func__, (long)lo, (long)hi, (long)T);
    const int32_t W = hi - lo, d = m->cfg.d_model;
    ws->B = ws->T = 0;
    ws->key_mask = NULL;
    for (int32_t b = 0; b < B; b++)
        memcpy(ws->ids + (size_t)b * W, ids + (size_t)b * T + lo, (size_t)W * sizeof *ids);
    kv_pass kp = { kv, T, lo, W, key_mask };
    forward_rows(m, ws, ws->ids, B, W, lo, key_mask, &kp, pool);
    /* The packed rows go to their places b·T + lo + j of the final state
     * (through kv->hout: the two overlap). The other rows are stale. */
    float *fin = tdi_ws_final(ws);
    const size_t row = (size_t)d * sizeof(float);
    memcpy(kv->hout, fin, (size_t)B * W * row);
    for (int32_t b = 0; b < B; b++)
        memcpy(fin + ((size_t)b * T + lo) * d, kv->hout + (size_t)b * W * d, (size_t)W * row);
    ws->B = B;
    ws->T = T;
    return TD_OK;
}

typedef struct gather_job {
    float *dst;
    const float *src;
    const int32_t *rows;
    int d, n_src;
} gather_job;

static void gather(void *ctx, long begin, long end, int tid)
{
    const gather_job *g = ctx;
    (void)tid;
    for (long i = begin; i < end; i++) {
        assert(g->rows[i] >= 0 && g->rows[i] < g->n_src);
        memcpy(g->dst + (size_t)i * g->d, g->src + (size_t)g->rows[i] * g->d,
               (size_t)g->d * sizeof(float));
    }
}

void tdi_model_gather_rows(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                           int32_t n_rows, tdi_pool *pool)
{
    assert(ws->B > 0 && n_rows >= 0 && n_rows <= ws->rows_max);
    gather_job g = { ws->hsel, tdi_ws_final(ws), rows, m->cfg.d_model, ws->B * ws->T };
    tdi_pool_for(pool, n_rows, gather, &g);
}

/* head_transform: head_out = LN(GELU(hsel·head.wᵀ + head.b)) for n rows. */
static const float *head_forward(const tdi_model *m, tdi_workspace *ws, int32_t n,
                                 tdi_pool *pool)
{
    const float *p = m->params;
    int d = m->cfg.d_model;
    if (!m->cfg.head_transform) return ws->hsel;
    TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                  tdi_model_linear(m, ws->head_pre, ws->hsel, m->head_w, m->head_b, NULL,
                                     n, d, d, pool));
    tdi_gelu_forward(ws->head_act, ws->head_pre, (size_t)n * d, m->cfg.activation, pool);
    tdi_layernorm_forward(ws->head_out, ws->head_mean, ws->head_rstd, ws->head_act,
                          p + m->head_ln_w, p + m->head_ln_b, n, d, m->cfg.layer_norm_eps,
                          pool);
    return ws->head_out;
}

void tdi_model_logits(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                      int32_t n_rows, float *logits, tdi_pool *pool)
{
    int V = m->cfg.vocab_size, d = m->cfg.d_model;
    tdi_model_gather_rows(m, ws, rows, n_rows, pool);
    const float *h = head_forward(m, ws, n_rows, pool);
    TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                  tdi_model_linear(m, logits, h, m->out_w, m->out_b, NULL, n_rows, d, V, pool));
    for (int i = 0; i < n_rows; i++) logits[(size_t)i * V + m->cfg.mask_id] = -INFINITY;
}
