/* The incremental forward of incremental.h: block_forward of forward.c for
 * one new row per sequence, with attention over the cached keys and values.
 * Every product goes through the same kernels (kernels.h) on [B, ·] rows. */
#include "model/incremental.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

struct tdi_kv_cache {
    td_allocator alloc;
    int32_t b_max, t_max, n_threads;
    void *block;
    float *k, *v;               /* [L, b_max, t_max, d] rotated keys, values */
    float *x, *ln, *qkv, *att;  /* [b_max, d], [b_max, d], [b_max, 3d], [b_max, d] */
    float *res1, *tmp, *fch;    /* [b_max, d], [b_max, d], [b_max, d_ff] */
    float *mean, *rstd;         /* [b_max] */
    float *scores;              /* [n_threads, t_max] */
    float *rope_cos, *rope_sin; /* [t_max, hd/2] with RoPE */
    const tdi_model_config *cfg;
};

static void layout(void *obj, tdi_carver *k)
{
    tdi_kv_cache *c = obj;
    const size_t B = (size_t)c->b_max, T = (size_t)c->t_max, d = (size_t)c->cfg->d_model;
    const size_t L = (size_t)c->cfg->n_layers, hd = d / (size_t)c->cfg->n_heads;
    c->k = tdi_carve(k, L * B * T * d, sizeof(float));
    c->v = tdi_carve(k, L * B * T * d, sizeof(float));
    c->x = tdi_carve(k, B * d, sizeof(float));
    c->ln = tdi_carve(k, B * d, sizeof(float));
    c->qkv = tdi_carve(k, B * 3 * d, sizeof(float));
    c->att = tdi_carve(k, B * d, sizeof(float));
    c->res1 = tdi_carve(k, B * d, sizeof(float));
    c->tmp = tdi_carve(k, B * d, sizeof(float));
    c->fch = tdi_carve(k, B * (size_t)c->cfg->d_ff, sizeof(float));
    c->mean = tdi_carve(k, B, sizeof(float));
    c->rstd = tdi_carve(k, B, sizeof(float));
    c->scores = tdi_carve(k, (size_t)c->n_threads * T, sizeof(float));
    int rope = c->cfg->pos_encoding == TDI_POS_ROPE;
    c->rope_cos = rope ? tdi_carve(k, T * hd / 2, sizeof(float)) : NULL;
    c->rope_sin = rope ? tdi_carve(k, T * hd / 2, sizeof(float)) : NULL;
}

td_status tdi_kv_cache_create(const tdi_model *m, int32_t b_max, int32_t t_max,
                              int32_t n_threads, tdi_kv_cache **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(m);
    TDI_CHECK_ARG(m->cfg.causal, "%s: the model is not causal", __func__);
    TDI_CHECK_ARG(b_max >= 1 && t_max >= 1 && t_max <= m->cfg.max_seq_len,
                  "%s: b_max = %ld, t_max = %ld: need b_max >= 1, 1 <= t_max <= %ld",
                  __func__, (long)b_max, (long)t_max, (long)m->cfg.max_seq_len);
    TDI_CHECK_ARG(n_threads >= 1 && n_threads <= 1024, "%s: n_threads = %ld is outside 1..1024",
                  __func__, (long)n_threads);
    tdi_kv_cache *c = tdi_calloc(&m->alloc, 1, sizeof *c);
    if (c == NULL) return tdi_nomem(__func__, sizeof *c);
    c->alloc = m->alloc;
    c->b_max = b_max;
    c->t_max = t_max;
    c->n_threads = n_threads;
    c->cfg = &m->cfg;
    td_status st = tdi_carve_block(&c->alloc, layout, c, &c->block, __func__);
    if (st != TD_OK) {
        tdi_kv_cache_free(c);
        return st;
    }
    if (c->rope_cos)
        tdi_rope_tables(c->rope_cos, c->rope_sin, t_max, m->cfg.d_model / m->cfg.n_heads);
    c->cfg = NULL; /* the model is passed to every step */
    *out = c;
    return TD_OK;
}

void tdi_kv_cache_free(tdi_kv_cache *c)
{
    if (c == NULL) return;
    td_allocator a = c->alloc;
    tdi_free(&a, c->block);
    tdi_free(&a, c);
}

/* Attention of the new rows over the cached positions 0..pos, one (b, h)
 * pair per item, in a fixed order whichever thread runs it. */
typedef struct step_attn {
    const tdi_kv_cache *c;
    const float *k, *v; /* this layer's cache */
    int pos, H, hd, d;
    float scale;
} step_attn;

static void attend_pairs(void *ctx, long begin, long end, int tid)
{
    const step_attn *a = ctx;
    const tdi_kv_cache *c = a->c;
    const int d = a->d, hd = a->hd, n = a->pos + 1;
    float *s = c->scores + (size_t)tid * (size_t)c->t_max;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / a->H), h = (int)(bh % a->H);
        const float *q = c->qkv + (size_t)b * 3 * d + (size_t)h * hd;
        const size_t base = (size_t)b * (size_t)c->t_max * d + (size_t)h * hd;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float *kj = a->k + base + (size_t)j * d;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += q[i] * kj[i];
            s[j] = dot * a->scale;
            if (s[j] > mx) mx = s[j];
        }
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        float inv = 1.0f / sum, *y = c->att + (size_t)b * d + (size_t)h * hd;
        for (int i = 0; i < hd; i++) y[i] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float *vj = a->v + base + (size_t)j * d, p = s[j] * inv;
            for (int i = 0; i < hd; i++) y[i] += p * vj[i];
        }
    }
}

/* qkv [B, 3d] of position pos: rotate q and k, store k and v in layer l's
 * cache, attend into c->att [B, d]. */
static void attention_step(const tdi_model *m, tdi_kv_cache *c, int32_t l, int B, int pos,
                           tdi_pool *pool)
{
    const int d = m->cfg.d_model, H = m->cfg.n_heads, hd = d / H;
    if (c->rope_cos) /* one position: the tables from row pos, each row at "position 0" */
        tdi_rope_forward(c->qkv, 3 * d, B, 1, 2 * H, hd, c->rope_cos + (size_t)pos * hd / 2,
                         c->rope_sin + (size_t)pos * hd / 2, pool);
    const size_t layer = (size_t)l * (size_t)c->b_max * (size_t)c->t_max * d;
    float *k = c->k + layer, *v = c->v + layer;
    for (int b = 0; b < B; b++) {
        size_t at = ((size_t)b * (size_t)c->t_max + (size_t)pos) * d;
        memcpy(k + at, c->qkv + (size_t)b * 3 * d + d, (size_t)d * sizeof(float));
        memcpy(v + at, c->qkv + (size_t)b * 3 * d + 2 * (size_t)d, (size_t)d * sizeof(float));
    }
    step_attn a = { c, k, v, pos, H, hd, d, (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, c->n_threads, attend_pairs, &a);
}

/* block_forward (forward.c) for rows c->x [B, d], in place. */
static void block_step(const tdi_model *m, tdi_kv_cache *c, int32_t l, int B, int pos,
                       tdi_pool *pool)
{
    const float *p = m->params;
    const tdi_layer_offsets *o = &m->layers[l];
    const int d = m->cfg.d_model, ff = m->cfg.d_ff, act = m->cfg.activation;
    const float eps = m->cfg.layer_norm_eps;
    if (m->cfg.norm_placement == TDI_NORM_PRE) {
        tdi_layernorm_forward(c->ln, c->mean, c->rstd, c->x, p + o->ln1_w, p + o->ln1_b, B, d,
                              eps, pool);
        tdi_model_linear(m, c->qkv, c->ln, o->qkv_w, o->qkv_b, NULL, B, d, 3 * d, pool);
        attention_step(m, c, l, B, pos, pool);
        tdi_model_linear(m, c->res1, c->att, o->proj_w, o->proj_b, c->x, B, d, d, pool);
        tdi_layernorm_forward(c->ln, c->mean, c->rstd, c->res1, p + o->ln2_w, p + o->ln2_b, B,
                              d, eps, pool);
        tdi_model_linear(m, c->fch, c->ln, o->fc_w, o->fc_b, NULL, B, d, ff, pool);
        tdi_gelu_forward(c->fch, c->fch, (size_t)B * ff, act, pool);
        tdi_model_linear(m, c->x, c->fch, o->fc2_w, o->fc2_b, c->res1, B, ff, d, pool);
    } else {
        tdi_model_linear(m, c->qkv, c->x, o->qkv_w, o->qkv_b, NULL, B, d, 3 * d, pool);
        attention_step(m, c, l, B, pos, pool);
        tdi_model_linear(m, c->tmp, c->att, o->proj_w, o->proj_b, c->x, B, d, d, pool);
        tdi_layernorm_forward(c->res1, c->mean, c->rstd, c->tmp, p + o->ln1_w, p + o->ln1_b, B,
                              d, eps, pool);
        tdi_model_linear(m, c->fch, c->res1, o->fc_w, o->fc_b, NULL, B, d, ff, pool);
        tdi_gelu_forward(c->fch, c->fch, (size_t)B * ff, act, pool);
        tdi_model_linear(m, c->tmp, c->fch, o->fc2_w, o->fc2_b, c->res1, B, ff, d, pool);
        tdi_layernorm_forward(c->x, c->mean, c->rstd, c->tmp, p + o->ln2_w, p + o->ln2_b, B, d,
                              eps, pool);
    }
}

void tdi_model_step(const tdi_model *m, tdi_kv_cache *c, const int32_t *ids, int32_t B,
                    int32_t pos, float *logits, tdi_pool *pool)
{
    assert(m->cfg.causal && B >= 1 && B <= c->b_max && pos >= 0 && pos < c->t_max);
    const tdi_model_config *mc = &m->cfg;
    const int d = mc->d_model, V = mc->vocab_size;
    const float eps = mc->layer_norm_eps;
    const float *p = m->params;
    /* One position: the position table from row pos, as "position 0" of T = 1. */
    size_t pos0 = tdi_model_pos0(m);
    const float *pe = pos0 != TDI_NO_TENSOR ? p + pos0 + (size_t)pos * d : NULL;
    const float *type = mc->type_vocab_size > 0 ? p + m->type_emb : NULL;
    if (mc->norm_placement == TDI_NORM_PRE) {
        tdi_embedding_forward_q(c->x, ids, p + m->tok_emb, tdi_model_wt(m, d),
                                type, pe, B, 1, d, pool);
    } else {
        tdi_embedding_forward_q(c->tmp, ids, p + m->tok_emb, tdi_model_wt(m, d),
                                type, pe, B, 1, d, pool);
        tdi_layernorm_forward(c->x, c->mean, c->rstd, c->tmp, p + m->lnf_w, p + m->lnf_b, B, d,
                              eps, pool);
    }
    for (int32_t l = 0; l < mc->n_layers; l++) block_step(m, c, l, B, pos, pool);
    const float *h = c->x;
    if (mc->norm_placement == TDI_NORM_PRE) {
        tdi_layernorm_forward(c->ln, c->mean, c->rstd, c->x, p + m->lnf_w, p + m->lnf_b, B, d,
                              eps, pool);
        h = c->ln;
    }
    tdi_model_linear(m, logits, h, m->out_w, m->out_b, NULL, B, d, V, pool);
    for (int32_t b = 0; b < B; b++) logits[(size_t)b * V + mc->mask_id] = -INFINITY;
}
