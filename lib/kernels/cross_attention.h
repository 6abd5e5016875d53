/* Multi-head cross-attention: Nq queries of each sequence attend to the Lk
 * context rows of the same sequence (the latent autoencoder's compressor
 * and decoder, docs/latent-diffusion.md). No masks: every query sees every
 * context row. Conventions as in kernels.h. */
#ifndef TDI_CROSS_ATTENTION_H
#define TDI_CROSS_ATTENTION_H

#include "util/pool.h"

/* q [B·Nq, d], kv [B·Lk, 2d] (k | v), d = H·hd.
 * out [B·Nq, d] = heads of softmax(q·kᵀ/√hd)·v side by side;
 * p [B, H, Nq, Lk] receives the probabilities (kept for the backward). */
void tdi_xattn_forward(float *out, float *p, const float *q, const float *kv, int B, int Nq,
                       int Lk, int H, int hd, tdi_pool *pool);

/* dq [B·Nq, d] and dkv [B·Lk, 2d] are written from dout [B·Nq, d]; q, kv and
 * p are the forward's; dp [B, H, Nq, Lk] is scratch. */
void tdi_xattn_backward(float *dq, float *dkv, float *dp, const float *dout, const float *q,
                        const float *kv, const float *p, int B, int Nq, int Lk, int H, int hd,
                        tdi_pool *pool);

#endif
