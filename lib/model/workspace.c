/* Workspace layout: activations carved from one allocation, activation
 * gradients from another. Without backward only one block's activations and
 * one residual stream buffer exist, so an inference workspace does not grow
 * with depth. */
#include "model/workspace.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"

/* The callers' own bound on n_threads. */
#define TDI_WS_MAX_THREADS 1024

/* An a x b float matrix from the carver (lib/util/alloc.h). */
static float *carve(tdi_carver *c, size_t a, size_t b)
{
    size_t n;
    if (!tdi_mul_size(a, b, &n)) {
        c->overflow = 1;
        return NULL;
    }
    return tdi_carve(c, n, sizeof(float));
}

static void layout_acts(tdi_workspace *ws, tdi_carver *c)
{
    const tdi_model_config *cfg = &ws->cfg;
    size_t N = (size_t)ws->b_max * ws->t_max, d = (size_t)cfg->d_model;
    size_t ff = (size_t)cfg->d_ff, H = (size_t)cfg->n_heads, T = (size_t)ws->t_max;
    size_t att_rows = (size_t)ws->b_max * H * T; /* [B, H, T] */
    size_t tt; /* attention's slices hold up to 2·(T² + 15) floats */
    if (!tdi_mul_size(T, T, &tt) || tt > SIZE_MAX / 4) c->overflow = 1;
    int post = cfg->norm_placement == TDI_NORM_POST;

    /* int32 ids share the float block: same size, and only ever accessed
     * as int32. */
    ws->ids = (int32_t *)(void *)carve(c, N, 1);
    ws->emb = post ? carve(c, N, d) : NULL;
    ws->res = carve(c, (size_t)ws->n_res * N, d);
    ws->lnf_mean = carve(c, N, 1);
    ws->lnf_rstd = carve(c, N, 1);
    ws->hf = post ? NULL : carve(c, N, d);
    ws->rope_cos = ws->rope_sin = NULL;
    if (cfg->pos_encoding == TDI_POS_ROPE) {
        size_t half = d / H / 2;
        ws->rope_cos = carve(c, T, half);
        ws->rope_sin = carve(c, T, half);
    }
    ws->hsel = carve(c, (size_t)ws->rows_max, d);
    ws->head_pre = ws->head_act = ws->head_out = ws->head_mean = ws->head_rstd = NULL;
    if (cfg->head_transform) {
        ws->head_pre = carve(c, (size_t)ws->rows_max, d);
        ws->head_act = carve(c, (size_t)ws->rows_max, d);
        ws->head_out = carve(c, (size_t)ws->rows_max, d);
        ws->head_mean = carve(c, (size_t)ws->rows_max, 1);
        ws->head_rstd = carve(c, (size_t)ws->rows_max, 1);
    }
    ws->ln_shared = post ? NULL : carve(c, N, d);
    ws->ff_shared = carve(c, N, ff);
    /* One T×T matrix per thread for the forward, two for the backward. */
    ws->attn_scratch = carve(c, (size_t)ws->n_threads,
                             tdi_attention_scratch_floats(ws->t_max, ws->with_backward));
    ws->mask_copy = ws->with_backward ? tdi_carve(c, N, 1) : NULL;
    for (int32_t l = 0; l < ws->n_layer_acts; l++) {
        tdi_layer_acts *a = &ws->layer[l];
        a->ln1 = post ? carve(c, N, d) : ws->ln_shared;
        a->ln1_mean = carve(c, N, 1);
        a->ln1_rstd = carve(c, N, 1);
        a->qkv = carve(c, N, 3 * d);
        a->att_max = carve(c, att_rows, 1);
        a->att_inv = carve(c, att_rows, 1);
        a->atty = carve(c, N, d);
        a->res1 = carve(c, N, d);
        a->ln2 = post ? carve(c, N, d) : ws->ln_shared;
        a->ln2_mean = carve(c, N, 1);
        a->ln2_rstd = carve(c, N, 1);
        a->fch = carve(c, N, ff);
        a->fchg = ws->ff_shared;
    }
}

static void layout_grads(tdi_workspace *ws, tdi_carver *c)
{
    const tdi_model_config *cfg = &ws->cfg;
    size_t N = (size_t)ws->b_max * ws->t_max, d = (size_t)cfg->d_model;
    ws->dres = carve(c, N, d);
    ws->dtmp = carve(c, N, d);
    ws->dqkv = carve(c, N, 3 * d);
    ws->dhsel = carve(c, (size_t)ws->rows_max, d);
    ws->dhead = cfg->head_transform ? carve(c, (size_t)ws->rows_max, d) : NULL;
}

static void layout_acts_block(void *ws, tdi_carver *c) { layout_acts(ws, c); }
static void layout_grads_block(void *ws, tdi_carver *c) { layout_grads(ws, c); }

td_status tdi_workspace_create(const tdi_model *m, int32_t b_max, int32_t t_max,
                               int32_t rows_max, int32_t n_threads, int with_backward,
                               tdi_workspace **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(m);
    TDI_CHECK_ARG(b_max >= 1, "%s: b_max = %ld must be at least 1", __func__, (long)b_max);
    TDI_CHECK_ARG(t_max >= 1 && t_max <= m->cfg.max_seq_len,
                  "%s: t_max = %ld is outside 1..max_seq_len (%ld)", __func__, (long)t_max,
                  (long)m->cfg.max_seq_len);
    TDI_CHECK_ARG((int64_t)b_max * t_max <= INT_MAX,
                  "%s: b_max x t_max = %lld exceeds %d rows", __func__,
                  (long long)b_max * t_max, INT_MAX);
    TDI_CHECK_ARG(rows_max >= 1, "%s: rows_max = %ld must be at least 1", __func__,
                  (long)rows_max);
    TDI_CHECK_ARG(n_threads >= 1 && n_threads <= TDI_WS_MAX_THREADS,
                  "%s: n_threads = %ld is outside 1..%d", __func__, (long)n_threads,
                  TDI_WS_MAX_THREADS);

    int32_t n_layer_acts = with_backward ? m->cfg.n_layers : 1;
    size_t head = sizeof(tdi_workspace) + (size_t)n_layer_acts * sizeof(tdi_layer_acts);
    tdi_workspace *ws = tdi_malloc(&m->alloc, head);
    if (!ws) return tdi_nomem(__func__, head);
    memset(ws, 0, head);
    ws->alloc = m->alloc;
    ws->cfg = m->cfg;
    ws->b_max = b_max;
    ws->t_max = t_max;
    ws->rows_max = rows_max;
    ws->n_threads = n_threads;
    ws->with_backward = with_backward != 0;
    ws->n_res = with_backward ? m->cfg.n_layers + 1 : 1;
    ws->n_layer_acts = n_layer_acts;

    void *acts = NULL, *grads = NULL;
    td_status st = tdi_carve_block(&ws->alloc, layout_acts_block, ws, &acts, __func__);
    if (st == TD_OK && ws->with_backward)
        st = tdi_carve_block(&ws->alloc, layout_grads_block, ws, &grads, __func__);
    ws->acts = acts;
    ws->grads = grads;
    if (st != TD_OK) {
        tdi_workspace_free(ws);
        return st;
    }
    if (ws->rope_cos)
        tdi_rope_tables(ws->rope_cos, ws->rope_sin, t_max, m->cfg.d_model / m->cfg.n_heads);
    *out = ws;
    return TD_OK;
}

void tdi_workspace_free(tdi_workspace *ws)
{
    if (ws == NULL) return;
    td_allocator alloc = ws->alloc;
    tdi_free(&alloc, ws->grads);
    tdi_free(&alloc, ws->acts);
    tdi_free(&alloc, ws);
}
