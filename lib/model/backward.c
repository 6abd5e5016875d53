/* Backward pass: the forward of forward.c in reverse, accumulating into a
 * gradient buffer laid out like the parameters. ws->dres carries the
 * gradient of the residual stream from block to block. */
#include <assert.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/workspace.h"

/* dqkv [N, 3d] from datty [N, d]: attention, then RoPE's transpose on dq, dk. */
static void attention_block_backward(const tdi_model *m, tdi_workspace *ws,
                                     const tdi_layer_acts *a, const float *datty, int B, int T,
                                     tdi_pool *pool)
{
    int H = m->cfg.n_heads, hd = m->cfg.d_model / H;
    tdi_attention_backward(ws->dqkv, datty, a->qkv, a->att_max, a->att_inv, ws->key_mask,
                           m->cfg.causal, B, T, H, hd, ws->attn_scratch, ws->n_threads, pool);
    if (m->cfg.pos_encoding == TDI_POS_ROPE)
        tdi_rope_backward(ws->dqkv, 3 * m->cfg.d_model, B * T, T, 2 * H, hd, ws->rope_cos,
                          ws->rope_sin, pool);
}

/* The MLP's fc2 and GELU: recomputes fchg = GELU(fch) (not kept per layer),
 * accumulates fc2's parameter gradients from it, then overwrites the same
 * buffer with dff, the gradient of fch. Returns dff. */
static float *mlp_out_backward(const tdi_model *m, tdi_workspace *ws, const tdi_layer_acts *a,
                               const tdi_layer_offsets *o, float *grads, int N, tdi_pool *pool)
{
    const float *p = m->params;
    tdi_profile *pr = ws->prof;
    int d = m->cfg.d_model, ff = m->cfg.d_ff;
    float *dff = a->fchg; /* == ws->ff_shared */
    int act = m->cfg.activation;
    tdi_gelu_forward(a->fchg, a->fch, (size_t)N * ff, act, pool);
    TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                  tdi_linear_backward(NULL, grads + o->fc2_w, grads + o->fc2_b, ws->dres,
                                      a->fchg, p + o->fc2_w, N, ff, d, 0, pool));
    TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                  tdi_linear_backward(dff, NULL, NULL, ws->dres, NULL, p + o->fc2_w, N, ff, d,
                                      0, pool));
    tdi_gelu_backward(dff, dff, a->fch, (size_t)N * ff, act, pool);
    return dff;
}

/* ws->dres: gradient of the block's output in, of its input x out. */
static void block_backward(const tdi_model *m, tdi_workspace *ws, int32_t l, const float *x,
                           float *grads, int B, int T, tdi_pool *pool)
{
    const float *p = m->params;
    const tdi_layer_offsets *o = &m->layers[l];
    tdi_layer_acts *a = tdi_ws_layer(ws, l);
    tdi_profile *pr = ws->prof;
    float *g = grads, *dres = ws->dres, *dtmp = ws->dtmp;
    int N = B * T, d = m->cfg.d_model, ff = m->cfg.d_ff;
    float eps = m->cfg.layer_norm_eps;

    if (m->cfg.norm_placement == TDI_NORM_PRE) {
        /* out = res1 + fc2(gelu(fc(LN2(res1)))); ln2 is recomputed */
        float *dff = mlp_out_backward(m, ws, a, o, grads, N, pool);
        tdi_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, p + o->ln2_w,
                              p + o->ln2_b, N, d, eps, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dtmp, g + o->fc_w, g + o->fc_b, dff, a->ln2,
                                          p + o->fc_w, N, d, ff, 0, pool));
        tdi_layernorm_backward(dres, g + o->ln2_w, g + o->ln2_b, dtmp, a->res1, a->ln2_mean,
                               a->ln2_rstd, p + o->ln2_w, N, d, 1, pool);
        /* res1 = x + proj(attn(LN1(x))) */
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dtmp, g + o->proj_w, g + o->proj_b, dres, a->atty,
                                          p + o->proj_w, N, d, d, 0, pool));
        TDI_PROF_TIME(pr, TDI_PROF_ATTENTION,
                      attention_block_backward(m, ws, a, dtmp, B, T, pool));
        tdi_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p + o->ln1_w, p + o->ln1_b,
                              N, d, eps, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dtmp, g + o->qkv_w, g + o->qkv_b, ws->dqkv, a->ln1,
                                          p + o->qkv_w, N, d, 3 * d, 0, pool));
        tdi_layernorm_backward(dres, g + o->ln1_w, g + o->ln1_b, dtmp, x, a->ln1_mean,
                               a->ln1_rstd, p + o->ln1_w, N, d, 1, pool);
    } else {
        /* out = LN2(ln2), ln2 = res1 + fc2(gelu(fc(res1))) */
        tdi_layernorm_backward(dres, g + o->ln2_w, g + o->ln2_b, dres, a->ln2, a->ln2_mean,
                               a->ln2_rstd, p + o->ln2_w, N, d, 0, pool);
        float *dff = mlp_out_backward(m, ws, a, o, grads, N, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dres, g + o->fc_w, g + o->fc_b, dff, a->res1,
                                          p + o->fc_w, N, d, ff, 1, pool));
        /* res1 = LN1(ln1), ln1 = x + proj(attn(x)) */
        tdi_layernorm_backward(dres, g + o->ln1_w, g + o->ln1_b, dres, a->ln1, a->ln1_mean,
                               a->ln1_rstd, p + o->ln1_w, N, d, 0, pool);
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dtmp, g + o->proj_w, g + o->proj_b, dres, a->atty,
                                          p + o->proj_w, N, d, d, 0, pool));
        TDI_PROF_TIME(pr, TDI_PROF_ATTENTION,
                      attention_block_backward(m, ws, a, dtmp, B, T, pool));
        TDI_PROF_TIME(pr, TDI_PROF_MATMUL,
                      tdi_linear_backward(dres, g + o->qkv_w, g + o->qkv_b, ws->dqkv, x,
                                          p + o->qkv_w, N, d, 3 * d, 1, pool));
    }
}

void tdi_model_backward(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                        int32_t n_rows, const float *dlogits, float *grads, tdi_pool *pool)
{
    const tdi_model_config *c = &m->cfg;
    const float *p = m->params;
    int B = ws->B, T = ws->T, N = B * T, d = c->d_model, V = c->vocab_size;
    assert(ws->with_backward && N > 0);

    /* Output head: logits = h · Eᵀ + b, h = the final hidden state at rows
     * (hsel), or with head_transform head_out = LN(GELU(hsel·head.wᵀ + head.b)),
     * recomputed here. */
    tdi_model_gather_rows(m, ws, rows, n_rows, pool);
    if (!c->head_transform) {
        TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                      tdi_linear_backward(ws->dhsel, grads + m->out_w, grads + m->out_b,
                                          dlogits, ws->hsel, p + m->out_w, n_rows, d, V, 0,
                                          pool));
    } else {
        float *dh = ws->dhead;
        TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                      tdi_linear_forward(ws->head_pre, ws->hsel, p + m->head_w, p + m->head_b,
                                         NULL, n_rows, d, d, pool));
        tdi_gelu_forward(ws->head_act, ws->head_pre, (size_t)n_rows * d, c->activation, pool);
        tdi_layernorm_forward(ws->head_out, ws->head_mean, ws->head_rstd, ws->head_act,
                              p + m->head_ln_w, p + m->head_ln_b, n_rows, d,
                              c->layer_norm_eps, pool);
        TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                      tdi_linear_backward(dh, grads + m->out_w, grads + m->out_b, dlogits,
                                          ws->head_out, p + m->out_w, n_rows, d, V, 0, pool));
        tdi_layernorm_backward(dh, grads + m->head_ln_w, grads + m->head_ln_b, dh,
                               ws->head_act, ws->head_mean, ws->head_rstd, p + m->head_ln_w,
                               n_rows, d, 0, pool);
        tdi_gelu_backward(dh, dh, ws->head_pre, (size_t)n_rows * d, c->activation, pool);
        TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL,
                      tdi_linear_backward(ws->dhsel, grads + m->head_w, grads + m->head_b, dh,
                                          ws->hsel, p + m->head_w, n_rows, d, d, 0, pool));
    }
    int pre = c->norm_placement == TDI_NORM_PRE;
    float *dfinal = pre ? ws->dtmp : ws->dres;
    memset(dfinal, 0, (size_t)N * d * sizeof *dfinal);
    /* In row order, so that repeated rows add up the same way every time. */
    for (int i = 0; i < n_rows; i++) {
        float *dst = dfinal + (size_t)rows[i] * d;
        const float *src = ws->dhsel + (size_t)i * d;
        for (int j = 0; j < d; j++) dst[j] += src[j];
    }
    if (pre)
        tdi_layernorm_backward(ws->dres, grads + m->lnf_w, grads + m->lnf_b, dfinal,
                               tdi_ws_res(ws, c->n_layers), ws->lnf_mean, ws->lnf_rstd,
                               p + m->lnf_w, N, d, 0, pool);

    for (int32_t l = c->n_layers - 1; l >= 0; l--)
        block_backward(m, ws, l, tdi_ws_res(ws, l), grads, B, T, pool);

    if (!pre)
        tdi_layernorm_backward(ws->dres, grads + m->lnf_w, grads + m->lnf_b, ws->dres, ws->emb,
                               ws->lnf_mean, ws->lnf_rstd, p + m->lnf_w, N, d, 0, pool);
    size_t pos0 = tdi_model_pos0(m);
    tdi_embedding_backward(grads + m->tok_emb, pos0 != TDI_NO_TENSOR ? grads + pos0 : NULL,
                           ws->dres, ws->ids, B, T, d, pool);
    if (c->type_vocab_size > 0)
        tdi_colsum_accumulate(grads + m->type_emb, ws->dres, N, d, pool);
}
