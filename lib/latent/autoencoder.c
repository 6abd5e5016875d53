/* The latent autoencoder (autoencoder.h): parameters, initialisation, the
 * workspace, forward and backward. */
#include "latent/autoencoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cross_attention.h"
#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/rng.h"

td_status tdi_latent_config_validate(const tdi_latent_config *c)
{
    static const char f[] = "latent config";
    TDI_CHECK_ARG(c->seq_len >= 1 && c->seq_len <= TDI_MAX_SEQ_LEN,
                  "%s: seq_len = %d is outside [1, %d]", f, (int)c->seq_len, TDI_MAX_SEQ_LEN);
    TDI_CHECK_ARG(c->n_latents >= 1 && c->n_latents <= c->seq_len,
                  "%s: n_latents = %d is outside [1, seq_len = %d]: the latents compress the "
                  "sequence", f, (int)c->n_latents, (int)c->seq_len);
    TDI_CHECK_ARG(c->d_latent >= 1 && c->d_latent <= TDI_LATENT_MAX_WIDTH,
                  "%s: d_latent = %d is outside [1, %d]", f, (int)c->d_latent,
                  TDI_LATENT_MAX_WIDTH);
    TDI_CHECK_ARG(c->n_heads >= 1 && c->d_latent % c->n_heads == 0,
                  "%s: n_heads = %d must be >= 1 and divide d_latent = %d", f, (int)c->n_heads,
                  (int)c->d_latent);
    TDI_CHECK_ARG(c->n_enc_layers >= 1 && c->n_enc_layers <= TDI_LATENT_MAX_LAYERS,
                  "%s: n_enc_layers = %d is outside [1, %d]", f, (int)c->n_enc_layers,
                  TDI_LATENT_MAX_LAYERS);
    TDI_CHECK_ARG(c->n_dec_layers >= 1 && c->n_dec_layers <= TDI_LATENT_MAX_LAYERS,
                  "%s: n_dec_layers = %d is outside [1, %d]", f, (int)c->n_dec_layers,
                  TDI_LATENT_MAX_LAYERS);
    TDI_CHECK_ARG(c->d_ff >= 1 && c->d_ff <= TDI_MAX_D_FF, "%s: d_ff = %d is outside [1, %d]",
                  f, (int)c->d_ff, TDI_MAX_D_FF);
    TDI_CHECK_ARG(c->d_enc >= 1 && c->d_enc <= TDI_MAX_D_MODEL,
                  "%s: encoder width %d is outside [1, %d]", f, (int)c->d_enc, TDI_MAX_D_MODEL);
    TDI_CHECK_ARG(c->vocab_size >= 2 && c->vocab_size <= TDI_MAX_VOCAB,
                  "%s: vocab_size = %d is outside [2, %d]", f, (int)c->vocab_size,
                  TDI_MAX_VOCAB);
    TDI_CHECK_ARG(c->mask_id >= 0 && c->mask_id < c->vocab_size,
                  "%s: mask_id = %d is outside [0, vocab_size)", f, (int)c->mask_id);
    TDI_CHECK_ARG(c->n_den_layers >= 1 && c->n_den_layers <= TDI_LATENT_MAX_LAYERS,
                  "%s: n_den_layers = %d is outside [1, %d]", f, (int)c->n_den_layers,
                  TDI_LATENT_MAX_LAYERS);
    TDI_CHECK_ARG(c->schedule == TDI_LATENT_COSINE || c->schedule == TDI_LATENT_TAN_D,
                  "%s: schedule = %d is not a td_latent_schedule", f, (int)c->schedule);
    TDI_CHECK_ARG(c->prediction == TDI_LATENT_X0 || c->prediction == TDI_LATENT_V,
                  "%s: prediction = %d is not a td_latent_prediction", f, (int)c->prediction);
    TDI_CHECK_ARG(c->self_cond == 0 || c->self_cond == 1, "%s: self_cond = %d is not 0 or 1",
                  f, (int)c->self_cond);
    TDI_CHECK_ARG(c->tan_d > 0.0 && c->tan_d <= 1e6,
                  "%s: tan_d = %g is outside (0, 1e6]", f, c->tan_d);
    /* Every tensor, and a workspace row block of one sequence, below 2^31
     * floats: int arithmetic in the kernels stays exact. */
    double n = (double)c->seq_len * c->d_latent * 4.0 +
               (double)(c->n_enc_layers + c->n_dec_layers + c->n_den_layers) *
                   ((double)c->d_latent * (6.0 * c->d_latent + 2.0 * c->d_ff) +
                    2.0 * c->d_latent * c->d_enc) +
               (double)c->d_enc * (c->vocab_size + c->d_latent) +
               (double)((c->seq_len + c->n_latents - 1) / c->n_latents) * c->d_latent *
                   (c->d_enc + c->d_latent) +
               (double)c->seq_len * c->vocab_size;
    TDI_CHECK_ARG(n < 2147483647.0, "%s: the configuration needs %.0f parameters and "
                  "activations per sequence, more than 2^31 - 1", f, n);
    return TD_OK;
}

/* The tensor directory, built twice: counting (ae->tensors NULL), then
 * filling. */
typedef struct dir_builder {
    tdi_latent_ae *ae;
    int32_t n;
    size_t off;
} dir_builder;

static size_t add(dir_builder *b, const char *name, int32_t rows, int32_t cols,
                  tdi_tensor_kind kind)
{
    size_t at = b->off;
    if (b->ae->tensors) {
        tdi_tensor *t = &b->ae->tensors[b->n];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->offset = at;
        t->rows = rows;
        t->cols = cols;
        t->kind = kind;
    }
    b->ae->n_params += (size_t)rows * (size_t)cols;
    size_t n = (size_t)rows * (size_t)cols;
    b->off += (n + TDI_PARAM_ALIGN - 1) / TDI_PARAM_ALIGN * TDI_PARAM_ALIGN;
    b->n++;
    return at;
}

static void block_dir(dir_builder *b, const char *stack, int32_t l, int32_t d, int32_t dc,
                      int32_t ff, tdi_xblock_offsets *o)
{
    char nm[32];
#define T(field, suffix, r, c, k)                                     \
    snprintf(nm, sizeof nm, "%s.%d." suffix, stack, (int)l);          \
    o->field = add(b, nm, r, c, k)
    T(ln1_w, "ln1.w", 1, d, TDI_TENSOR_NORM);
    T(ln1_b, "ln1.b", 1, d, TDI_TENSOR_NORM);
    T(q_w, "q.w", d, d, TDI_TENSOR_MATRIX);
    T(q_b, "q.b", 1, d, TDI_TENSOR_BIAS);
    T(kv_w, "kv.w", 2 * d, dc, TDI_TENSOR_MATRIX);
    T(kv_b, "kv.b", 1, 2 * d, TDI_TENSOR_BIAS);
    T(o_w, "o.w", d, d, TDI_TENSOR_MATRIX);
    T(o_b, "o.b", 1, d, TDI_TENSOR_BIAS);
    T(ln2_w, "ln2.w", 1, d, TDI_TENSOR_NORM);
    T(ln2_b, "ln2.b", 1, d, TDI_TENSOR_NORM);
    T(fc_w, "fc.w", ff, d, TDI_TENSOR_MATRIX);
    T(fc_b, "fc.b", 1, ff, TDI_TENSOR_BIAS);
    T(fc2_w, "fc2.w", d, ff, TDI_TENSOR_MATRIX);
    T(fc2_b, "fc2.b", 1, d, TDI_TENSOR_BIAS);
#undef T
}

static void build_dir(tdi_latent_ae *ae)
{
    const tdi_latent_config *c = &ae->cfg;
    dir_builder b = { ae, 0, 0 };
    int32_t d = c->d_latent, ff = c->d_ff;
    tdi_xblock_offsets scratch;
    ae->n_params = 0;
    ae->enc_queries = add(&b, "enc.queries", c->n_latents, d, TDI_TENSOR_EMBEDDING);
    int32_t w = tdi_latent_chunk_width(c);
    ae->enc_pool_w = add(&b, "enc.pool.w", d, w * c->d_enc, TDI_TENSOR_MATRIX);
    for (int32_t l = 0; l < c->n_enc_layers; l++)
        block_dir(&b, "enc", l, d, c->d_enc, ff, ae->blocks ? &ae->blocks[l] : &scratch);
    ae->dec_queries = add(&b, "dec.queries", c->seq_len, d, TDI_TENSOR_EMBEDDING);
    ae->dec_unpool_w = add(&b, "dec.unpool.w", w * d, d, TDI_TENSOR_MATRIX);
    for (int32_t l = 0; l < c->n_dec_layers; l++)
        block_dir(&b, "dec", l, d, d, ff,
                  ae->blocks ? &ae->blocks[c->n_enc_layers + l] : &scratch);
    ae->lnf_w = add(&b, "dec.lnf.w", 1, d, TDI_TENSOR_NORM);
    ae->lnf_b = add(&b, "dec.lnf.b", 1, d, TDI_TENSOR_NORM);
    ae->feat_w = add(&b, "dec.feat.w", c->d_enc, d, TDI_TENSOR_MATRIX);
    ae->feat_b = add(&b, "dec.feat.b", 1, c->d_enc, TDI_TENSOR_BIAS);
    ae->out_w = add(&b, "dec.out.w", c->vocab_size, c->d_enc, TDI_TENSOR_MATRIX);
    ae->out_b = add(&b, "dec.out.b", 1, c->vocab_size, TDI_TENSOR_BIAS);
    ae->n_ae_tensors = b.n;
    ae->n_ae_floats = b.off;
    ae->den_in_w = add(&b, "den.in.w", d, 2 * d, TDI_TENSOR_MATRIX);
    ae->den_in_b = add(&b, "den.in.b", 1, d, TDI_TENSOR_BIAS);
    ae->den_pos = add(&b, "den.pos", c->n_latents, d, TDI_TENSOR_EMBEDDING);
    ae->den_t1_w = add(&b, "den.t1.w", d, d, TDI_TENSOR_MATRIX);
    ae->den_t1_b = add(&b, "den.t1.b", 1, d, TDI_TENSOR_BIAS);
    ae->den_t2_w = add(&b, "den.t2.w", d, d, TDI_TENSOR_MATRIX);
    ae->den_t2_b = add(&b, "den.t2.b", 1, d, TDI_TENSOR_BIAS);
    int32_t nb = c->n_enc_layers + c->n_dec_layers;
    for (int32_t l = 0; l < c->n_den_layers; l++)
        block_dir(&b, "den", l, d, d, ff, ae->blocks ? &ae->blocks[nb + l] : &scratch);
    ae->den_lnf_w = add(&b, "den.lnf.w", 1, d, TDI_TENSOR_NORM);
    ae->den_lnf_b = add(&b, "den.lnf.b", 1, d, TDI_TENSOR_NORM);
    ae->den_out_w = add(&b, "den.out.w", d, d, TDI_TENSOR_MATRIX);
    ae->den_out_b = add(&b, "den.out.b", 1, d, TDI_TENSOR_BIAS);
    ae->n_tensors = b.n;
    ae->n_floats = b.off;
}

size_t tdi_latent_num_params(const tdi_latent_config *c)
{
    tdi_latent_ae ae;
    memset(&ae, 0, sizeof ae);
    ae.cfg = *c;
    build_dir(&ae); /* counts */
    return ae.n_params;
}

void tdi_latent_ae_free(tdi_latent_ae *ae)
{
    if (ae == NULL) return;
    td_allocator a = ae->alloc;
    tdi_free(&a, ae->params);
    tdi_free(&a, ae->tensors);
    tdi_free(&a, ae->blocks);
    tdi_free(&a, ae);
}

td_status tdi_latent_ae_create(const tdi_latent_config *c, const td_allocator *a,
                               tdi_latent_ae **out)
{
    *out = NULL;
    TDI_TRY(tdi_latent_config_validate(c));
    td_allocator al;
    TDI_TRY(tdi_allocator_init(&al, a));
    tdi_latent_ae *ae = tdi_calloc(&al, 1, sizeof *ae);
    if (ae == NULL) return tdi_nomem(__func__, sizeof *ae);
    ae->alloc = al;
    ae->cfg = *c;
    build_dir(ae); /* counts */
    size_t nb = (size_t)(c->n_enc_layers + c->n_dec_layers + c->n_den_layers);
    ae->blocks = tdi_calloc(&al, nb, sizeof *ae->blocks);
    ae->tensors = tdi_calloc(&al, (size_t)ae->n_tensors, sizeof *ae->tensors);
    if (ae->blocks == NULL || ae->tensors == NULL) {
        size_t size = (size_t)ae->n_tensors * sizeof(tdi_tensor);
        tdi_latent_ae_free(ae);
        return tdi_nomem(__func__, size);
    }
    build_dir(ae);
    ae->params = tdi_calloc(&al, ae->n_floats, sizeof(float));
    if (ae->params == NULL) {
        size_t size = ae->n_floats * sizeof(float);
        tdi_latent_ae_free(ae);
        return tdi_nomem(__func__, size);
    }
    *out = ae;
    return TD_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void tdi_latent_ae_init(tdi_latent_ae *ae, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    int32_t layers = ae->cfg.n_enc_layers + ae->cfg.n_dec_layers;
    double std_res = 0.02 / sqrt(2.0 * layers);
    double std_den = 0.02 / sqrt(2.0 * ae->cfg.n_den_layers);
    for (int32_t i = 0; i < ae->n_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        float *p = ae->params + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        if (t->kind == TDI_TENSOR_NORM) {
            float v = ends_with(t->name, ".w") ? 1.0f : 0.0f;
            for (size_t j = 0; j < n; j++) p[j] = v;
        } else if (t->kind == TDI_TENSOR_BIAS) {
            memset(p, 0, n * sizeof *p);
        } else {
            int res = ends_with(t->name, ".o.w") || ends_with(t->name, ".fc2.w");
            double sd = !res ? 0.02 : i >= ae->n_ae_tensors ? std_den : std_res;
            /* the chunk projections: outputs of unit variance from inputs of
             * unit variance */
            if (t->offset == ae->enc_pool_w || t->offset == ae->dec_unpool_w)
                sd = 1.0 / sqrt((double)t->cols);
            for (size_t j = 0; j < n; j++) p[j] = (float)(sd * tdi_rng_normal(&r));
        }
    }
}

/* ---- workspace ------------------------------------------------------------ */

static void ws_layout(void *obj, tdi_carver *cv)
{
    tdi_latent_ws *ws = obj;
    const tdi_latent_config *c = &ws->cfg;
    size_t B = (size_t)ws->b_max, L = (size_t)c->seq_len, N = (size_t)c->n_latents;
    size_t d = (size_t)c->d_latent, ff = (size_t)c->d_ff, H = (size_t)c->n_heads;
    size_t f = sizeof(float);
    int32_t ne = c->n_enc_layers, nd = c->n_dec_layers, nn = c->n_den_layers;
    for (int32_t l = 0; l < ne + nd + nn; l++) {
        int enc = l < ne, den = l >= ne + nd;
        size_t R = B * (enc || den ? N : L), K = B * (enc ? L : N);
        tdi_xblock_acts *a = ws->acts ? &ws->acts[l] : &(tdi_xblock_acts){ 0 };
        a->ln1 = tdi_carve(cv, R * d, f);
        a->ln1_mean = tdi_carve(cv, R, f);
        a->ln1_rstd = tdi_carve(cv, R, f);
        a->q = tdi_carve(cv, R * d, f);
        a->kv = tdi_carve(cv, K * 2 * d, f);
        a->p = tdi_carve(cv, B * H * N * L, f);
        a->att = tdi_carve(cv, R * d, f);
        a->res1 = tdi_carve(cv, R * d, f);
        a->ln2 = tdi_carve(cv, R * d, f);
        a->ln2_mean = tdi_carve(cv, R, f);
        a->ln2_rstd = tdi_carve(cv, R, f);
        a->fch = tdi_carve(cv, R * ff, f);
        a->fchg = tdi_carve(cv, R * ff, f);
    }
    ws->res_c = tdi_carve(cv, (size_t)(ne + 1) * B * N * d, f);
    ws->res_d = tdi_carve(cv, (size_t)(nd + 1) * B * L * d, f);
    ws->lat = tdi_carve(cv, B * N * d, f);
    ws->lat_mean = tdi_carve(cv, B * N, f);
    ws->lat_rstd = tdi_carve(cv, B * N, f);
    ws->latd = tdi_carve(cv, B * N * d, f);
    ws->drop = tdi_carve(cv, B * N * d, f);
    ws->hf = tdi_carve(cv, B * L * d, f);
    ws->lnf_mean = tdi_carve(cv, B * L, f);
    ws->lnf_rstd = tdi_carve(cv, B * L, f);
    ws->fhat = tdi_carve(cv, B * L * (size_t)c->d_enc, f);
    ws->logits = tdi_carve(cv, B * L * (size_t)c->vocab_size, f);
    ws->ones = tdi_carve(cv, d, f);
    ws->zeros = tdi_carve(cv, d, f);
    ws->weights = tdi_carve(cv, B * L, f);
    ws->row_loss = tdi_carve(cv, B * L, sizeof(double));
    ws->pe = tdi_carve(cv, L * (size_t)c->d_enc, f);
    ws->ctx_c = tdi_carve(cv, B * L * (size_t)c->d_enc, f);
    size_t w = (size_t)tdi_latent_chunk_width(c);
    ws->patches = tdi_carve(cv, B * N * w * (size_t)c->d_enc, f);
    ws->up = tdi_carve(cv, B * N * w * d, f);
    ws->zin = tdi_carve(cv, B * N * 2 * d, f);
    ws->temb_in = tdi_carve(cv, B * d, f);
    ws->t1 = tdi_carve(cv, B * d, f);
    ws->t1g = tdi_carve(cv, B * d, f);
    ws->temb = tdi_carve(cv, B * d, f);
    ws->res_n = tdi_carve(cv, (size_t)(nn + 1) * B * N * d, f);
    ws->hn = tdi_carve(cv, B * N * d, f);
    ws->lnn_mean = tdi_carve(cv, B * N, f);
    ws->lnn_rstd = tdi_carve(cv, B * N, f);
    ws->pred = tdi_carve(cv, B * N * d, f);
    if (!ws->with_backward) return;
    ws->dtemb = tdi_carve(cv, B * d, f);
    ws->dt1 = tdi_carve(cv, B * d, f);
    size_t R = B * L, dmax = (size_t)c->d_enc > d ? (size_t)c->d_enc : d;
    ws->dres = tdi_carve(cv, R * d, f);
    ws->dtmp = tdi_carve(cv, R * dmax, f);
    ws->dff = tdi_carve(cv, R * ff, f);
    ws->dq = tdi_carve(cv, R * d, f);
    ws->dkv = tdi_carve(cv, R * 2 * d, f);
    ws->dp = tdi_carve(cv, B * H * N * L, f);
    ws->dlat = tdi_carve(cv, B * N * d, f);
    ws->dfhat = tdi_carve(cv, R * (size_t)c->d_enc, f);
    ws->dup = tdi_carve(cv, B * N * w * d, f);
}

td_status tdi_latent_ws_create(const tdi_latent_ae *ae, int32_t b_max, int with_backward,
                               tdi_latent_ws **out)
{
    *out = NULL;
    TDI_CHECK_ARG(b_max >= 1 && b_max <= INT32_MAX / ae->cfg.seq_len,
                  "%s: batch %d is outside [1, %d]", __func__, (int)b_max,
                  (int)(INT32_MAX / ae->cfg.seq_len));
    int32_t nb = ae->cfg.n_enc_layers + ae->cfg.n_dec_layers + ae->cfg.n_den_layers;
    tdi_latent_ws *ws = tdi_calloc(&ae->alloc, 1, sizeof *ws);
    if (ws == NULL) return tdi_nomem(__func__, sizeof *ws);
    ws->alloc = ae->alloc;
    ws->cfg = ae->cfg;
    ws->b_max = b_max;
    ws->with_backward = with_backward != 0;
    ws->acts = tdi_calloc(&ae->alloc, (size_t)nb, sizeof *ws->acts);
    if (ws->acts == NULL) {
        tdi_latent_ws_free(ws);
        return tdi_nomem(__func__, (size_t)nb * sizeof *ws->acts);
    }
    td_status st = tdi_carve_block(&ae->alloc, ws_layout, ws, &ws->block, __func__);
    if (st != TD_OK) {
        tdi_latent_ws_free(ws);
        return st;
    }
    for (int32_t j = 0; j < ae->cfg.d_latent; j++) {
        ws->ones[j] = 1.0f;
        ws->zeros[j] = 0.0f;
    }
    /* pe(p, j) = sin / cos (p · 10000^(−2i/d_enc)), i = j/2: even columns sin */
    int32_t De = ae->cfg.d_enc;
    for (int32_t p = 0; p < ae->cfg.seq_len; p++)
        for (int32_t j = 0; j < De; j++) {
            double a = p * exp(-log(10000.0) * (double)(2 * (j / 2)) / De);
            ws->pe[(size_t)p * De + j] = (float)(j % 2 == 0 ? sin(a) : cos(a));
        }
    *out = ws;
    return TD_OK;
}

void tdi_latent_ws_free(tdi_latent_ws *ws)
{
    if (ws == NULL) return;
    td_allocator a = ws->alloc;
    tdi_free(&a, ws->block);
    tdi_free(&a, ws->acts);
    tdi_free(&a, ws);
}

/* ---- forward ------------------------------------------------------------- */

/* y [B·Nq, d] from x [B·Nq, d] and ctx [B·Lk, dc]; ctx NULL: self-attention
 * (the context is LN1(x), Lk = Nq, dc = d). */
static void block_forward(const tdi_latent_ae *ae, const tdi_xblock_offsets *o,
                          tdi_xblock_acts *a, const float *x, float *y, const float *ctx,
                          int B, int Nq, int Lk, int dc, tdi_pool *pool)
{
    const float *p = ae->params;
    int d = ae->cfg.d_latent, ff = ae->cfg.d_ff, H = ae->cfg.n_heads, R = B * Nq;
    tdi_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p + o->ln1_w, p + o->ln1_b, R,
                          d, TDI_LN_EPS, pool);
    tdi_linear_forward(a->q, a->ln1, p + o->q_w, p + o->q_b, NULL, R, d, d, pool);
    if (ctx == NULL) ctx = a->ln1; /* self-attention */
    tdi_linear_forward(a->kv, ctx, p + o->kv_w, p + o->kv_b, NULL, B * Lk, dc, 2 * d, pool);
    tdi_xattn_forward(a->att, a->p, a->q, a->kv, B, Nq, Lk, H, d / H, pool);
    tdi_linear_forward(a->res1, a->att, p + o->o_w, p + o->o_b, x, R, d, d, pool);
    tdi_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, p + o->ln2_w,
                          p + o->ln2_b, R, d, TDI_LN_EPS, pool);
    tdi_linear_forward(a->fch, a->ln2, p + o->fc_w, p + o->fc_b, NULL, R, d, ff, pool);
    tdi_gelu_forward(a->fchg, a->fch, (size_t)R * ff, TD_ACT_GELU_TANH, pool);
    tdi_linear_forward(y, a->fchg, p + o->fc2_w, p + o->fc2_b, a->res1, R, ff, d, pool);
}

static void broadcast(float *dst, const float *src, int B, size_t n)
{
    for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * n, src, n * sizeof *src);
}

int32_t tdi_latent_chunk_width(const tdi_latent_config *c)
{
    return (c->seq_len + c->n_latents - 1) / c->n_latents;
}

/* Position i's chunk ⌊i·N/L⌋ and its offset in the chunk, which starts at
 * ⌈n·L/N⌉ (N <= L: every chunk has 1 .. ⌈L/N⌉ positions). */
static void chunk_of(int i, int N, int L, int *n, int *r)
{
    *n = (int)((int64_t)i * N / L);
    *r = i - (int)(((int64_t)*n * L + N - 1) / N);
}

/* Row i of [B·L, cols] <-> block (chunk(i), offset(i)) of [B·N, w·cols]:
 * dir 0 gathers patches from rows (unused offsets are left zero), dir 1
 * adds the blocks to the rows. */
static void chunk_map(float *rows, float *blocks, int B, int N, int L, int w, int cols,
                      int dir)
{
    if (dir == 0) memset(blocks, 0, (size_t)B * N * w * cols * sizeof *blocks);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            int n, r;
            chunk_of(i, N, L, &n, &r);
            float *row = rows + ((size_t)b * L + i) * cols;
            float *blk = blocks + (((size_t)b * N + n) * w + r) * cols;
            if (dir == 0) memcpy(blk, row, (size_t)cols * sizeof *row);
            else
                for (int j = 0; j < cols; j++) row[j] += blk[j];
        }
}

void tdi_latent_ae_compress(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *feat,
                            int32_t B, tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    int N = c->n_latents, L = c->seq_len, d = c->d_latent;
    size_t stride = (size_t)ws->b_max * N * d, per = (size_t)L * c->d_enc;
    for (int32_t b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++)
            ws->ctx_c[b * per + i] = feat[b * per + i] + ws->pe[i];
    broadcast(ws->res_c, ae->params + ae->enc_queries, B, (size_t)N * d);
    int w = tdi_latent_chunk_width(c);
    chunk_map(ws->ctx_c, ws->patches, B, N, L, w, c->d_enc, 0);
    tdi_linear_forward(ws->res_c, ws->patches, ae->params + ae->enc_pool_w, NULL, ws->res_c,
                       B * N, w * c->d_enc, d, pool);
    for (int32_t l = 0; l < c->n_enc_layers; l++)
        block_forward(ae, &ae->blocks[l], &ws->acts[l], ws->res_c + l * stride,
                      ws->res_c + (l + 1) * stride, ws->ctx_c, B, N, L, c->d_enc, pool);
    tdi_layernorm_forward(ws->lat, ws->lat_mean, ws->lat_rstd,
                          ws->res_c + c->n_enc_layers * stride, ws->ones, ws->zeros, B * N, d,
                          TDI_LN_EPS, pool);
    ws->B = B;
}

void tdi_latent_ae_decode(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *latents,
                          const float *drop, int32_t B, tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    const float *p = ae->params;
    int N = c->n_latents, L = c->seq_len, d = c->d_latent, V = c->vocab_size;
    size_t nl = (size_t)B * N * d, stride = (size_t)ws->b_max * L * d;
    for (size_t i = 0; i < nl; i++) {
        ws->drop[i] = drop ? drop[i] : 1.0f;
        ws->latd[i] = latents[i] * ws->drop[i];
    }
    broadcast(ws->res_d, p + ae->dec_queries, B, (size_t)L * d);
    int w = tdi_latent_chunk_width(c);
    tdi_linear_forward(ws->up, ws->latd, p + ae->dec_unpool_w, NULL, NULL, B * N, d, w * d,
                       pool);
    chunk_map(ws->res_d, ws->up, B, N, L, w, d, 1);
    for (int32_t l = 0; l < c->n_dec_layers; l++)
        block_forward(ae, &ae->blocks[c->n_enc_layers + l], &ws->acts[c->n_enc_layers + l],
                      ws->res_d + l * stride, ws->res_d + (l + 1) * stride, ws->latd, B, L, N,
                      d, pool);
    int R = B * L;
    tdi_layernorm_forward(ws->hf, ws->lnf_mean, ws->lnf_rstd,
                          ws->res_d + c->n_dec_layers * stride, p + ae->lnf_w, p + ae->lnf_b, R,
                          d, TDI_LN_EPS, pool);
    tdi_linear_forward(ws->fhat, ws->hf, p + ae->feat_w, p + ae->feat_b, NULL, R, d, c->d_enc,
                       pool);
    tdi_linear_forward(ws->logits, ws->fhat, p + ae->out_w, p + ae->out_b, NULL, R, c->d_enc,
                       V, pool);
    for (int i = 0; i < R; i++) ws->logits[(size_t)i * V + c->mask_id] = -INFINITY;
    ws->B = B;
}

void tdi_latent_ae_argmax(const tdi_latent_ae *ae, const tdi_latent_ws *ws, int32_t *ids)
{
    int V = ae->cfg.vocab_size, R = ws->B * ae->cfg.seq_len;
    for (int i = 0; i < R; i++) {
        const float *z = ws->logits + (size_t)i * V;
        int best = ae->cfg.mask_id == 0 ? 1 : 0;
        for (int v = 0; v < V; v++)
            if (v != ae->cfg.mask_id && z[v] > z[best]) best = v;
        ids[i] = best;
    }
}

/* ---- backward ------------------------------------------------------------ */

/* ws->dres [B·Nq, d]: gradient of y in, of x out. dctx [B·Lk, dc] += the
 * context's gradient when not NULL. ctx NULL: self-attention, as forward. */
static void block_backward(const tdi_latent_ae *ae, tdi_latent_ws *ws,
                           const tdi_xblock_offsets *o, const tdi_xblock_acts *a,
                           const float *x, const float *ctx, float *dctx, float *g, int B,
                           int Nq, int Lk, int dc, tdi_pool *pool)
{
    const float *p = ae->params;
    int d = ae->cfg.d_latent, ff = ae->cfg.d_ff, H = ae->cfg.n_heads, R = B * Nq;
    float *dres = ws->dres, *dtmp = ws->dtmp;
    /* y = res1 + fc2(gelu(fc(LN2(res1)))) */
    tdi_linear_backward(ws->dff, g + o->fc2_w, g + o->fc2_b, dres, a->fchg, p + o->fc2_w, R,
                        ff, d, 0, pool);
    tdi_gelu_backward(ws->dff, ws->dff, a->fch, (size_t)R * ff, TD_ACT_GELU_TANH, pool);
    tdi_linear_backward(dtmp, g + o->fc_w, g + o->fc_b, ws->dff, a->ln2, p + o->fc_w, R, d, ff,
                        0, pool);
    tdi_layernorm_backward(dres, g + o->ln2_w, g + o->ln2_b, dtmp, a->res1, a->ln2_mean,
                           a->ln2_rstd, p + o->ln2_w, R, d, 1, pool);
    /* res1 = x + o(xattn(q(LN1(x)), kv(ctx))) */
    tdi_linear_backward(dtmp, g + o->o_w, g + o->o_b, dres, a->att, p + o->o_w, R, d, d, 0,
                        pool);
    tdi_xattn_backward(ws->dq, ws->dkv, ws->dp, dtmp, a->q, a->kv, a->p, B, Nq, Lk, H, d / H,
                       pool);
    tdi_linear_backward(dtmp, g + o->q_w, g + o->q_b, ws->dq, a->ln1, p + o->q_w, R, d, d, 0,
                        pool);
    if (ctx == NULL) { /* self-attention: kv's input is LN1(x) too */
        ctx = a->ln1;
        dctx = dtmp;
    }
    tdi_linear_backward(dctx, g + o->kv_w, g + o->kv_b, ws->dkv, ctx, p + o->kv_w, B * Lk, dc,
                        2 * d, 1, pool);
    tdi_layernorm_backward(dres, g + o->ln1_w, g + o->ln1_b, dtmp, x, a->ln1_mean, a->ln1_rstd,
                           p + o->ln1_w, R, d, 1, pool);
}

/* dst [n] += Σ_b src [b·n .. (b+1)·n), sequences in order. */
static void sum_batch(float *dst, const float *src, int B, size_t n)
{
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) dst[i] += src[(size_t)b * n + i];
}

double tdi_latent_ae_loss(const tdi_latent_ae *ae, tdi_latent_ws *ws, const int32_t *tokens,
                          const float *feat, float mse_weight, double *ce, double *mse,
                          int64_t *correct, float *grads, tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    const float *p = ae->params;
    int B = ws->B, L = c->seq_len, N = c->n_latents, d = c->d_latent, De = c->d_enc;
    int V = c->vocab_size, R = B * L;
    for (int i = 0; i < R; i++) ws->weights[i] = 1.0f / (float)R;
    if (correct != NULL) {
        int64_t k = 0;
        for (int i = 0; i < R; i++) {
            const float *z = ws->logits + (size_t)i * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (z[v] > z[best]) best = v;
            k += best == tokens[i];
        }
        *correct = k;
    }
    double sq = 0.0;
    size_t nf = (size_t)R * De;
    for (size_t i = 0; i < nf; i++) {
        double e = (double)ws->fhat[i] - feat[i];
        sq += e * e;
    }
    double m = sq / (double)nf;
    double cross = tdi_crossentropy_forward_backward(grads ? ws->logits : NULL, ws->row_loss,
                                                     ws->logits, tokens, ws->weights, R, V,
                                                     pool);
    *ce = cross;
    *mse = m;
    if (grads == NULL) return cross + mse_weight * m;

    /* Heads: logits = fhat·W_outᵀ + b, fhat = hf·W_featᵀ + b. */
    float s = (float)(2.0 * mse_weight / (double)nf);
    for (size_t i = 0; i < nf; i++) ws->dfhat[i] = s * (ws->fhat[i] - feat[i]);
    tdi_linear_backward(ws->dfhat, grads + ae->out_w, grads + ae->out_b, ws->logits, ws->fhat,
                        p + ae->out_w, R, De, V, 1, pool);
    tdi_linear_backward(ws->dtmp, grads + ae->feat_w, grads + ae->feat_b, ws->dfhat, ws->hf,
                        p + ae->feat_w, R, d, De, 0, pool);
    size_t sd = (size_t)ws->b_max * L * d, sc = (size_t)ws->b_max * N * d;
    int32_t ne = c->n_enc_layers, nd = c->n_dec_layers;
    tdi_layernorm_backward(ws->dres, grads + ae->lnf_w, grads + ae->lnf_b, ws->dtmp,
                           ws->res_d + nd * sd, ws->lnf_mean, ws->lnf_rstd, p + ae->lnf_w, R,
                           d, 0, pool);
    /* Decoder blocks; their context gradients add up in dlat. */
    memset(ws->dlat, 0, (size_t)B * N * d * sizeof(float));
    for (int32_t l = nd - 1; l >= 0; l--)
        block_backward(ae, ws, &ae->blocks[ne + l], &ws->acts[ne + l], ws->res_d + l * sd,
                       ws->latd, ws->dlat, grads, B, L, N, d, pool);
    sum_batch(grads + ae->dec_queries, ws->dres, B, (size_t)L * d);
    int w = tdi_latent_chunk_width(c);
    chunk_map(ws->dres, ws->dup, B, N, L, w, d, 0);
    tdi_linear_backward(ws->dlat, grads + ae->dec_unpool_w, NULL, ws->dup, ws->latd,
                        p + ae->dec_unpool_w, B * N, d, w * d, 1, pool);
    /* latd = lat ⊙ drop, lat = LN₀(res_c[ne]) */
    size_t nl = (size_t)B * N * d;
    for (size_t i = 0; i < nl; i++) ws->dlat[i] *= ws->drop[i];
    tdi_layernorm_backward(ws->dres, NULL, NULL, ws->dlat, ws->res_c + ne * sc, ws->lat_mean,
                           ws->lat_rstd, ws->ones, B * N, d, 0, pool);
    for (int32_t l = ne - 1; l >= 0; l--)
        block_backward(ae, ws, &ae->blocks[l], &ws->acts[l], ws->res_c + l * sc, ws->ctx_c,
                       NULL, grads, B, N, L, De, pool);
    sum_batch(grads + ae->enc_queries, ws->dres, B, (size_t)N * d);
    tdi_linear_backward(NULL, grads + ae->enc_pool_w, NULL, ws->dres, ws->patches,
                        p + ae->enc_pool_w, B * N, w * De, d, 0, pool);
    return cross + mse_weight * m;
}

/* ---- denoiser ------------------------------------------------------------ */

void tdi_latent_alpha_sigma(const tdi_latent_config *c, double t, double *alpha, double *sigma)
{
    const double half_pi = 1.5707963267948966;
    double co = cos(half_pi * t), si = sin(half_pi * t);
    if (t <= 0.0) { /* exact endpoints */
        co = 1.0;
        si = 0.0;
    } else if (t >= 1.0) {
        co = 0.0;
        si = 1.0;
    }
    /* tan-d: α² = 1 / (1 + d²·tan²(πt/2)) = cos² / (cos² + d²·sin²); d = 1 is
     * the cosine schedule. Written with cos and sin, it holds at t = 1. */
    double dd = c->schedule == TDI_LATENT_TAN_D ? c->tan_d : 1.0;
    double r = sqrt(co * co + dd * dd * si * si);
    *alpha = co / r;
    *sigma = dd * si / r;
}

/* e [d]: sin/cos of 1000·t at the frequencies 10000^(−i/(d/2)), i = j/2:
 * even columns sin, odd columns cos. */
static void time_features(float *e, double t, int d)
{
    int half = d / 2 > 0 ? d / 2 : 1;
    for (int j = 0; j < d; j++) {
        double f = exp(-log(10000.0) * (double)(j / 2) / half);
        e[j] = (float)(j % 2 == 0 ? sin(1000.0 * t * f) : cos(1000.0 * t * f));
    }
}

void tdi_latent_denoise(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *z,
                        const float *sc, const double *t, int32_t B, tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    const float *p = ae->params;
    int N = c->n_latents, d = c->d_latent, R = B * N;
    size_t stride = (size_t)ws->b_max * N * d;
    for (int r = 0; r < R; r++) {
        memcpy(ws->zin + (size_t)r * 2 * d, z + (size_t)r * d, (size_t)d * sizeof(float));
        float *dst = ws->zin + (size_t)r * 2 * d + d;
        if (sc) memcpy(dst, sc + (size_t)r * d, (size_t)d * sizeof(float));
        else memset(dst, 0, (size_t)d * sizeof(float));
    }
    /* temb [B, d] = W_t2·GELU(W_t1·e(t) + b_t1) + b_t2 */
    for (int b = 0; b < B; b++) time_features(ws->temb_in + (size_t)b * d, t[b], d);
    tdi_linear_forward(ws->t1, ws->temb_in, p + ae->den_t1_w, p + ae->den_t1_b, NULL, B, d, d,
                       pool);
    tdi_gelu_forward(ws->t1g, ws->t1, (size_t)B * d, TD_ACT_GELU_TANH, pool);
    tdi_linear_forward(ws->temb, ws->t1g, p + ae->den_t2_w, p + ae->den_t2_b, NULL, B, d, d,
                       pool);
    /* x = W_in·[z | sc] + b_in + pos[n] + temb[b] */
    float *x = ws->res_n;
    tdi_linear_forward(x, ws->zin, p + ae->den_in_w, p + ae->den_in_b, NULL, R, 2 * d, d, pool);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            float *row = x + ((size_t)b * N + n) * d;
            const float *pos = p + ae->den_pos + (size_t)n * d, *te = ws->temb + (size_t)b * d;
            for (int j = 0; j < d; j++) row[j] += pos[j] + te[j];
        }
    int32_t base = c->n_enc_layers + c->n_dec_layers;
    for (int32_t l = 0; l < c->n_den_layers; l++)
        block_forward(ae, &ae->blocks[base + l], &ws->acts[base + l], ws->res_n + l * stride,
                      ws->res_n + (l + 1) * stride, NULL, B, N, N, d, pool);
    tdi_layernorm_forward(ws->hn, ws->lnn_mean, ws->lnn_rstd,
                          ws->res_n + c->n_den_layers * stride, p + ae->den_lnf_w,
                          p + ae->den_lnf_b, R, d, TDI_LN_EPS, pool);
    tdi_linear_forward(ws->pred, ws->hn, p + ae->den_out_w, p + ae->den_out_b, NULL, R, d, d,
                       pool);
    ws->B = B;
}

void tdi_latent_denoise_backward(const tdi_latent_ae *ae, tdi_latent_ws *ws,
                                 const float *dpred, float *grads, tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    const float *p = ae->params;
    int B = ws->B, N = c->n_latents, d = c->d_latent, R = B * N;
    size_t stride = (size_t)ws->b_max * N * d;
    float *g = grads;
    tdi_linear_backward(ws->dtmp, g + ae->den_out_w, g + ae->den_out_b, dpred, ws->hn,
                        p + ae->den_out_w, R, d, d, 0, pool);
    tdi_layernorm_backward(ws->dres, g + ae->den_lnf_w, g + ae->den_lnf_b, ws->dtmp,
                           ws->res_n + c->n_den_layers * stride, ws->lnn_mean, ws->lnn_rstd,
                           p + ae->den_lnf_w, R, d, 0, pool);
    int32_t base = c->n_enc_layers + c->n_dec_layers;
    for (int32_t l = c->n_den_layers - 1; l >= 0; l--)
        block_backward(ae, ws, &ae->blocks[base + l], &ws->acts[base + l],
                       ws->res_n + l * stride, NULL, NULL, g, B, N, N, d, pool);
    /* x = W_in·zin + b_in + pos + temb: z and sc are inputs, not learned */
    tdi_linear_backward(NULL, g + ae->den_in_w, g + ae->den_in_b, ws->dres, ws->zin,
                        p + ae->den_in_w, R, 2 * d, d, 0, pool);
    sum_batch(g + ae->den_pos, ws->dres, B, (size_t)N * d);
    memset(ws->dtemb, 0, (size_t)B * d * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            for (int j = 0; j < d; j++)
                ws->dtemb[(size_t)b * d + j] += ws->dres[((size_t)b * N + n) * d + j];
    tdi_linear_backward(ws->dt1, g + ae->den_t2_w, g + ae->den_t2_b, ws->dtemb, ws->t1g,
                        p + ae->den_t2_w, B, d, d, 0, pool);
    tdi_gelu_backward(ws->dt1, ws->dt1, ws->t1, (size_t)B * d, TD_ACT_GELU_TANH, pool);
    tdi_linear_backward(NULL, g + ae->den_t1_w, g + ae->den_t1_b, ws->dt1, ws->temb_in,
                        p + ae->den_t1_w, B, d, d, 0, pool);
}
