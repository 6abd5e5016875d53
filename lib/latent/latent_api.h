/* The public latent model handle over tdi_latent_ae. */
#ifndef TDI_LATENT_API_H
#define TDI_LATENT_API_H

#include "io/checkpoint.h"
#include "latent/autoencoder.h"
#include "model/model_api.h"
#include "model/workspace.h"
#include "util/error.h"

struct td_latent_model {
    tdi_errslot err;
    const td_model *encoder; /* the caller's; read only */
    tdi_latent_ae *ae;
};

/* The encoder's final hidden states [B·L, d_enc] for tokens [B·L] (ids
 * already checked), in ews. */
td_status tdi_latent_features(const td_latent_model *lm, tdi_workspace *ews,
                              const int32_t *tokens, int32_t B, tdi_pool *pool,
                              const float **feat);

/* The model's configuration keys and tensors, into a checkpoint writer. */
td_status tdi_latent_write(const tdi_latent_ae *ae, tdi_ckpt_writer *w);

/* A latent model from a checkpoint of format "libtextdiff-latent" (every key
 * and tensor validated; TD_ERR_FORMAT / TD_ERR_CORRUPT), allocated with a. */
td_status tdi_latent_read(const tdi_ckpt *ck, const td_allocator *a, tdi_latent_ae **out);

/* x0 [n] estimated from the denoiser's prediction pred [n] of z [n] at
 * (α, σ): pred itself, or α·z − σ·v. */
void tdi_latent_x0_of(const tdi_latent_config *c, const float *pred, const float *z, double a,
                      double s, size_t n, float *x0);

#endif
