/* The latent autoencoder of docs/latent-diffusion.md: a Perceiver-style
 * compressor (n_latents learned queries cross-attending to a frozen
 * encoder's per-token features) and a decoder (seq_len learned position
 * queries cross-attending to the latents), with a feature head (back to the
 * encoder's width, for the MSE term) and a vocabulary head.
 *
 *   ctx  = feat_in + PE                        [B·L, d_enc], PE the fixed sinusoidal
 *                                              positions (the compressor's attention
 *                                              is otherwise blind to order)
 *   x₀   = Q + patch(ctx)·W_poolᵀ              [B·N, d]: the learned queries plus a
 *                                              projection of latent n's chunk of the
 *                                              context, positions [⌈nL/N⌉, ⌈(n+1)L/N⌉),
 *                                              its rows side by side [w·d_enc] (w = ⌈L/N⌉,
 *                                              zeros after a shorter chunk's last row)
 *   lat  = LN₀(compressor(x₀, ctx))            [B·N, d], LN₀ without gain/shift
 *   latd = lat ⊙ drop                          latent feature dropout (scale
 *                                              1/(1 − p) folded into drop)
 *   y₀   = P + (latd·W_unpoolᵀ)[chunk(i), r(i)] [B·L, d]: position queries plus block
 *                                              r(i) (i's offset in its chunk) of the
 *                                              projection [w·d] of the latent whose
 *                                              chunk holds i, chunk(i) = ⌊i·N/L⌋
 *   h    = LN_f(decoder(y₀, latd))             [B·L, d]
 *   fhat = h·W_featᵀ + b_feat                  [B·L, d_enc]
 *   z    = fhat·W_outᵀ + b_out                 [B·L, V], [MASK] column −∞
 *   loss = mean CE(z, tokens) + mse_weight · mean (fhat − feat)²
 *
 * Each layer of either stack is a pre-LN cross-attention block:
 *   res1 = x + W_o·xattn(W_q·LN1(x), W_kv·ctx)
 *   y    = res1 + W_2·GELU(W_1·LN2(res1))
 * The first layer's x is x₀ (compressor) or y₀ (decoder): the chunk terms
 * give each latent its own stretch of the text from the first step
 * (docs/latent-diffusion.md, "Chunk paths").
 *
 * Memory: parameters are one allocation; a workspace holds the activations
 * (and, for training, their gradients) for up to b_max sequences in one
 * allocation. Forward and backward never allocate. */
#ifndef TDI_LATENT_AUTOENCODER_H
#define TDI_LATENT_AUTOENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "util/pool.h"

/* Limits (docs/latent-diffusion.md). */
#define TDI_LATENT_MAX_WIDTH 16384
#define TDI_LATENT_MAX_LAYERS 64

typedef struct tdi_latent_config {
    int32_t seq_len;      /* L: tokens per sequence */
    int32_t n_latents;    /* N <= L */
    int32_t d_latent;     /* d: width of the latents and of both stacks */
    int32_t n_heads;      /* divides d */
    int32_t n_enc_layers; /* compressor blocks */
    int32_t n_dec_layers; /* decoder blocks */
    int32_t d_ff;
    int32_t d_enc;        /* the frozen encoder's width */
    int32_t vocab_size;   /* the frozen encoder's vocabulary */
    int32_t mask_id;      /* never predicted */
    int32_t n_den_layers; /* denoiser blocks (self-attention over the latents) */
    int32_t schedule;     /* TDI_LATENT_COSINE or TDI_LATENT_TAN_D */
    int32_t prediction;   /* TDI_LATENT_X0 or TDI_LATENT_V */
    int32_t self_cond;    /* 0 or 1 */
    double tan_d;         /* d of the tan-d schedule, > 0 */
} tdi_latent_config;

enum { TDI_LATENT_COSINE = 0, TDI_LATENT_TAN_D = 1 };
enum { TDI_LATENT_X0 = 0, TDI_LATENT_V = 1 };

/* The variance-preserving schedule at t ∈ [0, 1]: z_t = α·x0 + σ·ε with
 * α² + σ² = 1 (docs/latent-diffusion.md, "Schedules"). */
void tdi_latent_alpha_sigma(const tdi_latent_config *c, double t, double *alpha,
                            double *sigma);

/* TD_OK, or TD_ERR_INVALID_ARG naming the first bad field. */
td_status tdi_latent_config_validate(const tdi_latent_config *c);

/* Offsets (in floats) of one cross-attention block's tensors. */
typedef struct tdi_xblock_offsets {
    size_t ln1_w, ln1_b, q_w, q_b, kv_w, kv_b, o_w, o_b;
    size_t ln2_w, ln2_b, fc_w, fc_b, fc2_w, fc2_b;
} tdi_xblock_offsets;

typedef struct tdi_latent_ae {
    td_allocator alloc;
    tdi_latent_config cfg;
    float *params;         /* [n_floats] */
    size_t n_params, n_floats;
    tdi_tensor *tensors;   /* in buffer order, each at a multiple of TDI_PARAM_ALIGN */
    int32_t n_tensors;
    tdi_xblock_offsets *blocks; /* compressor, decoder, then denoiser blocks */
    size_t enc_queries, enc_pool_w, dec_queries, dec_unpool_w, lnf_w, lnf_b, feat_w, feat_b, out_w, out_b;
    /* The denoiser's tensors follow the autoencoder's: [0, n_ae_floats) is
     * what the autoencoder's training updates, the rest the diffusion's. */
    size_t n_ae_floats;
    int32_t n_ae_tensors;
    size_t den_in_w, den_in_b, den_pos, den_t1_w, den_t1_b, den_t2_w, den_t2_b;
    size_t den_lnf_w, den_lnf_b, den_out_w, den_out_b;
} tdi_latent_ae;

/* w = ⌈L/N⌉: the most positions one latent's chunk holds. */
int32_t tdi_latent_chunk_width(const tdi_latent_config *c);

/* The parameter count of a valid configuration, without allocating. */
size_t tdi_latent_num_params(const tdi_latent_config *c);

/* Validates c and allocates an autoencoder with zeroed parameters. */
td_status tdi_latent_ae_create(const tdi_latent_config *c, const td_allocator *a,
                               tdi_latent_ae **out);
void tdi_latent_ae_free(tdi_latent_ae *ae);

/* N(0, 0.02²) matrices and queries, N(0, (0.02/√(2·layers))²) for W_o and
 * W_2, N(0, 1/cols) for W_pool and W_unpool, zero biases, LayerNorm 1 and 0; xoshiro256** from `seed`, tensor by
 * tensor in buffer order. */
void tdi_latent_ae_init(tdi_latent_ae *ae, uint64_t seed);

/* One block's saved activations. */
typedef struct tdi_xblock_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [R, d], [R], [R]  (R = B·Nq) */
    float *q, *kv;                    /* [R, d], [B·Lk, 2d] */
    float *p;                         /* [B, H, Nq, Lk] */
    float *att, *res1;                /* [R, d] */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fchg;                /* [R, d_ff] */
} tdi_xblock_acts;

typedef struct tdi_latent_ws {
    td_allocator alloc;
    tdi_latent_config cfg;
    int32_t b_max, B;
    int with_backward;
    void *block;            /* the one allocation */
    tdi_xblock_acts *acts;  /* compressor blocks, then decoder blocks */
    float *res_c;           /* (n_enc + 1) x [B·N, d] compressor residual stream */
    float *res_d;           /* (n_dec + 1) x [B·L, d] decoder residual stream */
    float *lat, *lat_mean, *lat_rstd, *latd, *drop; /* [B·N, d], [B·N] x 2, [B·N, d] x 2 */
    float *hf, *lnf_mean, *lnf_rstd;                 /* [B·L, d], [B·L] x 2 */
    float *fhat;            /* [B·L, d_enc] */
    float *logits;          /* [B·L, V]; the backward overwrites it with its gradient */
    float *ones, *zeros;    /* [d]: LN₀'s fixed gain and shift */
    float *pe;              /* [L, d_enc] sinusoidal positions */
    float *ctx_c;           /* [B·L, d_enc] the compressor's context: input + pe */
    float *patches;         /* [B·N, w·d_enc] each chunk's rows of ctx_c side by side */
    float *up, *dup;        /* [B·N, w·d] the decoder's chunk projection, its gradient */
    /* the denoiser, over B·N rows */
    float *zin;             /* [B·N, 2d] z_t | self-conditioning input */
    float *temb_in, *t1, *t1g, *temb; /* [B, d] */
    float *res_n;           /* (n_den + 1) x [B·N, d] */
    float *hn, *lnn_mean, *lnn_rstd, *pred; /* [B·N, d], [B·N] x 2, [B·N, d] */
    /* gradients (with_backward) */
    float *dres, *dtmp, *dff, *dq, *dkv, *dp, *dlat, *dfhat;
    float *dtemb, *dt1;     /* [B, d] */
    float *weights;         /* [B·L] cross-entropy weights */
    double *row_loss;       /* [B·L] */
} tdi_latent_ws;

td_status tdi_latent_ws_create(const tdi_latent_ae *ae, int32_t b_max, int with_backward,
                               tdi_latent_ws **out);
void tdi_latent_ws_free(tdi_latent_ws *ws);

/* Compressor: feat [B·L, d_enc] -> ws->lat [B·N, d] (normalised latents). */
void tdi_latent_ae_compress(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *feat,
                            int32_t B, tdi_pool *pool);

/* Decoder: latents [B·N, d] (drop [B·N·d] multiplies them, NULL = none) ->
 * ws->fhat and ws->logits. */
void tdi_latent_ae_decode(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *latents,
                          const float *drop, int32_t B, tdi_pool *pool);

/* The training loss of one batch after compress + decode (with ws->lat as
 * the decoder's input): tokens [B·L] (the targets), feat [B·L, d_enc] (the
 * clean features, the MSE's target). Returns the loss; *ce and *mse receive
 * its parts, *correct the number of rows whose arg max is the target.
 * With grads != NULL the parameter gradients are ADDED to grads [n_floats]
 * (the workspace must have been created with backward). */
double tdi_latent_ae_loss(const tdi_latent_ae *ae, tdi_latent_ws *ws, const int32_t *tokens,
                          const float *feat, float mse_weight, double *ce, double *mse,
                          int64_t *correct, float *grads, tdi_pool *pool);

/* Denoiser: z [B·N, d] at times t [B], self-conditioning input sc [B·N, d]
 * (NULL: zeros) -> ws->pred [B·N, d] (x0 or v, as cfg.prediction says). */
void tdi_latent_denoise(const tdi_latent_ae *ae, tdi_latent_ws *ws, const float *z,
                        const float *sc, const double *t, int32_t B, tdi_pool *pool);

/* Given dpred [B·N, d] (the loss's gradient in ws->pred's place) after
 * tdi_latent_denoise, ADDS the denoiser's parameter gradients into grads. */
void tdi_latent_denoise_backward(const tdi_latent_ae *ae, tdi_latent_ws *ws,
                                 const float *dpred, float *grads, tdi_pool *pool);

/* Arg max of each row of ws->logits [B·L, V] into ids [B·L]. */
void tdi_latent_ae_argmax(const tdi_latent_ae *ae, const tdi_latent_ws *ws, int32_t *ids);

#endif
