/* Left-to-right generation for a causal model (docs/sampling.md, "Left to
 * right"), the TD_SAMPLER_LEFT_TO_RIGHT strategy of td_sampler_generate. */
#ifndef TDI_SAMPLER_AR_H
#define TDI_SAMPLER_AR_H

#include "diffusion/draw.h"
#include "model/incremental.h"
#include "util/rng.h"

/* What the loop works with; every buffer is the sampler's (nothing is
 * allocated here). */
typedef struct tdi_ar_sampler {
    const tdi_model *model;     /* causal */
    tdi_kv_cache *kv;           /* for batch x seq_len */
    const tdi_draw_config *draw;
    tdi_rng *seq_rng;           /* [batch] one stream per sequence */
    tdi_pool *pool;
    float *logits;              /* [batch, V] */
    double *w;                  /* [batch, V] draw weights */
    tdi_logit_rank *rank;       /* [batch, V] or NULL (tdi_draw_ranks) */
    int32_t *ids;               /* [batch] a step's inputs */
    int32_t *changed;           /* [batch] the rows a step wrote */
    /* Called after each step that wrote a token (n_changed of them, listed
     * in `changed`); non-zero stops generation with TD_ERR_CANCELLED. */
    int32_t (*notify)(void *ctx, int32_t step, int32_t n_steps, int32_t n_changed);
    void *notify_ctx;
} tdi_ar_sampler;

typedef struct tdi_ar_counts {
    int64_t model_calls, steps, revealed;
} tdi_ar_counts;

/* Fills the [MASK] positions of canvas [batch · seq_len] left to right:
 * position i of every sequence is one incremental step whose input is the
 * token at i − 1 ([MASK] at 0); a masked position draws its token from the
 * step's logits with a uniform of its sequence's stream. Positions after
 * the last [MASK] are not run. *counts is written also on failure. */
td_status tdi_ar_generate(const tdi_ar_sampler *a, int32_t *canvas, int32_t batch,
                          int32_t seq_len, tdi_ar_counts *counts);

#endif
