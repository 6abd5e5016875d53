/* The workspace behind tdi_model_forward/logits/backward. Every buffer is
 * sized for b_max x t_max rows and used packed for the current B x T:
 * [N, width] row-major, N = B·T, at the start of the buffer. */
#ifndef TDI_WORKSPACE_H
#define TDI_WORKSPACE_H

#include "model/model.h"
#include "util/profile.h"

/* One block's saved activations. The norm slots hold what LayerNorm
 * backward needs on either side of the placement:
 *   pre-LN:  ln1 = LN1(x)           res1 = x + attn(ln1)
 *            ln2 = LN2(res1)        out  = res1 + mlp(ln2)
 *   post-LN: ln1 = x + attn(x)      res1 = LN1(ln1)
 *            ln2 = res1 + mlp(res1) out  = LN2(ln2)
 * x is the block's input, out the next block's input (both residual
 * stream buffers of the workspace).
 *
 * What is cheap to recompute is not kept per layer: fchg = GELU(fch) and,
 * pre-LN, ln1 and ln2 point into buffers shared by all layers
 * (ws->ln_shared, ws->ff_shared), and backward recomputes them from fch, x,
 * res1 and the saved mean and rstd — the same calls on the same inputs, so
 * the same bits. That is 6 of the 15 [N, d]-sized slices a layer would
 * otherwise keep. */
typedef struct tdi_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N, d], [N], [N] */
    float *qkv;                       /* [N, 3d], q and k rotated */
    float *att_max, *att_inv;         /* [B, H, T] per query row: score max, 1/Σe */
    float *atty;                      /* [N, d] heads concatenated */
    float *res1;                      /* [N, d] */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N, d], [N], [N] */
    float *fch, *fchg;                /* [N, d_ff] before / after GELU */
} tdi_layer_acts;

struct tdi_workspace {
    td_allocator alloc;
    tdi_model_config cfg; /* of the model it was made for */
    int32_t b_max, t_max, rows_max;
    int32_t n_threads;           /* the most threads attention may use */
    int with_backward;

    float *acts, *grads; /* the two allocations */

    /* activations */
    int32_t *ids;                /* [N] the last forward's input */
    float *emb;                  /* [N, d] post-LN: embeddings before LN_f */
    float *res;                  /* n_res x [N_max, d] residual stream */
    int32_t n_res;               /* L + 1 with backward; 1 without */
    float *lnf_mean, *lnf_rstd;  /* [N] */
    float *hf;                   /* [N, d] pre-LN: LN_f output (post-LN: last res) */
    float *rope_cos, *rope_sin;  /* [t_max, hd/2] with RoPE */
    float *hsel;                 /* [rows_max, d] final hidden state of the logit rows */
    /* head_transform: hsel -> head_pre = dense -> head_act = GELU -> head_out = LN */
    float *head_pre, *head_act, *head_out; /* [rows_max, d] */
    float *head_mean, *head_rstd;          /* [rows_max] */
    float *ln_shared;            /* [N, d] pre-LN: every layer's ln1 and ln2 */
    float *ff_shared;            /* [N, d_ff] every layer's fchg, then backward's dff */
    float *attn_scratch;         /* n_threads x [t_max, t_max], x 2 with backward */
    uint8_t *mask_copy;          /* [N] with backward: the last forward's key mask */
    const uint8_t *key_mask;     /* mask_copy, or NULL when that forward had none */

    /* activation gradients (with_backward only) */
    float *dres;                 /* [N, d] gradient of the residual stream */
    float *dtmp;                 /* [N, d] */
    float *dqkv;                 /* [N, 3d] */
    float *dhsel;                /* [rows_max, d] */
    float *dhead;                /* [rows_max, d] head_transform: the head's gradients */

    tdi_profile *prof;           /* times the kernels when set; NULL: off */
    int32_t B, T;                /* of the last forward; 0 before one */
    int32_t n_layer_acts;        /* L with backward; 1 (reused) without */
    tdi_layer_acts layer[];
};

/* Residual stream buffer i (0: block 0's input, L: the last block's output).
 * Without backward all are one buffer: a block reads its input for the
 * last time before it writes its output, so it can run in place. */
static inline float *tdi_ws_res(const tdi_workspace *ws, int32_t i)
{
    size_t stride = (size_t)ws->b_max * ws->t_max * ws->cfg.d_model;
    return ws->res + (size_t)(ws->with_backward ? i : 0) * stride;
}

static inline tdi_layer_acts *tdi_ws_layer(tdi_workspace *ws, int32_t l)
{
    return &ws->layer[ws->with_backward ? l : 0];
}

/* The final hidden state [N, d] that the output head reads. */
static inline float *tdi_ws_final(const tdi_workspace *ws)
{
    return ws->cfg.norm_placement == TDI_NORM_PRE ? ws->hf : tdi_ws_res(ws, ws->cfg.n_layers);
}

/* ws->hsel [n_rows, d] = final hidden state at rows of the last forward. */
void tdi_model_gather_rows(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                           int32_t n_rows, tdi_pool *pool);

#endif
