/* Drawing one token from a row of logits (docs/sampling.md "Drawing a
 * token"), in double precision from a 53-bit uniform.
 *
 * The candidates are the ids whose logit is finite, except `exclude`. With
 * τ' = temperature (1 when temperature is 0) and m the largest candidate
 * logit, candidate i has weight q_i = exp((z_i − m) / τ'). Filtering ranks
 * the candidates by (logit descending, id ascending): top-k keeps the first
 * k, then top-p keeps the shortest prefix whose weight reaches top_p of the
 * weight that is left. The token is the first maximum (temperature 0) or is
 * drawn by inverse CDF: the first candidate, in id order without filtering
 * and in rank order with it, at which the running sum of q exceeds u·Σq.
 * Confidence is measured on the kept distribution p = q / Σq. */
#ifndef TDI_DRAW_H
#define TDI_DRAW_H

#include <stdint.h>

typedef enum tdi_confidence {
    TDI_CONF_NONE        = 0,
    TDI_CONF_PROB        = 1, /* p(token) */
    TDI_CONF_MARGIN      = 2, /* p(first) − p(second), 1 with one candidate */
    TDI_CONF_NEG_ENTROPY = 3  /* Σ p log p, ≤ 0 */
} tdi_confidence;

typedef struct tdi_draw_config {
    double temperature;        /* >= 0; 0 = the first maximum */
    int32_t top_k;             /* >= 0; 0 = no limit */
    double top_p;              /* (0, 1]; 1 = no limit */
    int32_t exclude;           /* an id never drawn ([PAD]), or -1 */
    tdi_confidence confidence;
} tdi_draw_config;

/* One entry of a row's ranking. */
typedef struct tdi_logit_rank {
    float z;
    int32_t id;
} tdi_logit_rank;

/* Does this configuration rank candidates (needs the `rank` scratch)? */
int tdi_draw_ranks(const tdi_draw_config *c);

/* Draws from logits [V] with u ∈ [0, 1). Scratch: w [V] doubles, and
 * rank [V] when tdi_draw_ranks(c) (NULL otherwise). Writes *token and, unless
 * TDI_CONF_NONE, *confidence. Returns 0, or -1 when a logit is NaN, a
 * candidate logit is +∞, or there is no candidate (nothing is written). */
int tdi_draw_token(const tdi_draw_config *c, const float *logits, int32_t V, double u,
                   double *w, tdi_logit_rank *rank, int32_t *token, double *confidence);

#endif
