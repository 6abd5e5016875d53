/* Absorbing-state corruption of a training batch and the rows it scores
 * (docs/diffusion.md).
 *
 * Given clean ids x[B, T] and one time t_b per sequence, every position is
 * independently selected with probability 1 − α(t_b). A selected position
 * becomes [MASK] and is scored: the loss of the batch is
 *
 *     Σ over scored rows  weight · CE(row),   weight = w(t_b) / (T·B),
 *
 * i.e. per sequence w(t)·(1/T)·Σ_masked CE (MDLM's per-token form), averaged
 * over the batch. A sequence in which no position is selected contributes
 * zero (it has no scored row), which is what the estimator expects: its
 * expectation over the selections is the NELBO term of that t.
 *
 * With a fixed-rate schedule whose BERT flag is set, the selected positions
 * are all scored, but only 80% of them become [MASK]; 10% become a token
 * drawn uniformly from [random_lo, random_hi) (which may equal the original,
 * as in BERT) and 10% stay unchanged.
 *
 * Random draws, in order, per position b·T + i: one 53-bit uniform for
 * "is it selected?"; with the BERT flag and only for selected positions,
 * a second uniform for mask/random/unchanged and, for "random", a third draw
 * for the token. The result is a deterministic function of the inputs and
 * of the state of `rng`. */
#ifndef TDI_CORRUPT_H
#define TDI_CORRUPT_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/schedule.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

typedef struct tdi_corrupt_vocab {
    int32_t vocab_size;  /* V: clean ids lie in [0, V) */
    int32_t mask_id;     /* the absorbing [MASK], < V; never a clean id */
    int32_t random_lo;   /* BERT flag only: random replacements are drawn */
    int32_t random_hi;   /* uniformly from [random_lo, random_hi), without mask_id */
} tdi_corrupt_vocab;

/* Caller-owned output buffers; nothing is allocated. rows, targets and
 * weights must each hold `capacity` >= B·T entries (at t = 1 of the linear
 * schedule every position is scored). */
typedef struct tdi_corruption {
    int32_t *ids;      /* [B, T]  the corrupted batch z_t */
    int32_t *rows;     /* [n]     scored rows b·T + i, ascending */
    int32_t *targets;  /* [n]     the clean id at each scored row */
    float *weights;    /* [n]     w(t_b) / (T·B) for the row's sequence b */
    size_t capacity;   /* entries available in rows, targets and weights */
    size_t n;          /* out: number of scored rows */
} tdi_corruption;

/* Corrupt clean[B, T] at times t[B] (each finite, in [0, 1]) under schedule
 * `s`. Checks every argument and every clean id (in [0, V), not mask_id)
 * before it writes anything or draws from `rng`; B·T must fit in int32_t. */
td_status tdi_corrupt(const tdi_schedule *s, const tdi_corrupt_vocab *vocab,
                      const int32_t *clean, size_t B, size_t T, const double *t,
                      tdi_rng *rng, tdi_corruption *out);

/* td_trainer_step_protected's flags. */
#define TDI_PROTECT_KEEP    1 /* kept clean, never scored (a prompt) */
#define TDI_PROTECT_DROPPED 2 /* [MASK] in the input, never scored (a dropped prompt) */

/* tdi_corrupt with protected positions (prompt-protected, SFT-style
 * training): protect [B, T] (NULL: none; each 0, 1 or 2, checked) marks the
 * positions that are never selected — kept clean (1) or masked (2, prompt
 * dropout for guidance), never scored. Their
 * "is it selected?" uniform is drawn all the same, so that the random
 * stream does not depend on them. A sequence's rows are weighted by
 * w(t_b) / (F_b·B), F_b its number of unprotected positions (T without
 * protection: tdi_corrupt's weights, bit for bit). */
td_status tdi_corrupt_protected(const tdi_schedule *s, const tdi_corrupt_vocab *vocab,
                                const int32_t *clean, const uint8_t *protect, size_t B,
                                size_t T, const double *t, tdi_rng *rng, tdi_corruption *out);

/* The next-token objective of a causal model (docs/training.md): the input
 * is clean[B, T] shifted right by one with mask_id as the begin token
 * (z = [m, x_0, …, x_{T−2}] per sequence), every position b·T + i is scored
 * against x_i with weight 1/(T·B). Checks the clean ids as tdi_corrupt does;
 * draws nothing. */
td_status tdi_corrupt_shift(const tdi_corrupt_vocab *vocab, const int32_t *clean, size_t B,
                            size_t T, tdi_corruption *out);

/* The same with protect [B, T] as above (NULL: none): protected positions
 * are not scored, the others of sequence b weigh 1/(F_b·B). */
td_status tdi_corrupt_shift_protected(const tdi_corrupt_vocab *vocab, const int32_t *clean,
                                      const uint8_t *protect, size_t B, size_t T,
                                      tdi_corruption *out);

#endif
