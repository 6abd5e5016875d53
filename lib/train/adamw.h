/* AdamW (Loshchilov & Hutter) with decoupled weight decay over one flat
 * float32 parameter buffer, global-norm gradient clipping and a warm-up +
 * cosine learning-rate schedule. The arithmetic follows PyTorch's
 * torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and a LambdaLR with the
 * schedule below, so that a run can be checked against PyTorch step by step
 * (tests/golden/adamw_vectors.h).
 *
 * One step, with t the 1-based step number, g the gradient, lr_t = lr(t):
 *   norm  = ||g||_2 over the whole buffer (double, fixed-order block sums)
 *   g    *= clip / (norm + 1e-6)            when clip > 0 and that factor is < 1
 *   p    *= 1 - lr_t * weight_decay         only in ranges marked for decay
 *   m     = beta1 * m + (1 - beta1) * g
 *   v     = beta2 * v + (1 - beta2) * g^2
 *   p    -= lr_t / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Thread safety: one thread at a time per optimizer; `nt` threads are used
 * inside a step, and the result is bit-identical for every nt.
 */
#ifndef TDI_ADAMW_H
#define TDI_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"
#include "util/pool.h"

typedef struct tdi_adamw_config {
    float lr;           /* peak learning rate, finite and > 0 */
    float beta1, beta2; /* moment decay rates, each in [0, 1) */
    float eps;          /* denominator floor, > 0 */
    float weight_decay; /* decoupled decay coefficient, >= 0, lr * weight_decay < 1 */
    float clip_norm;    /* global gradient-norm ceiling; 0 disables clipping */
    int64_t warmup;     /* steps of linear warm-up from 0, 0 <= warmup <= total */
    int64_t total;      /* step at which the cosine reaches min_lr, >= 1 */
    float min_lr;       /* floor of the cosine and the rate after `total`, 0 <= min_lr <= lr */
} tdi_adamw_config;

/* A stretch of the parameter buffer and whether weight decay applies to it.
 * The ranges given to an optimizer tile [0, n) exactly, in ascending order. */
typedef struct tdi_param_range {
    size_t offset;
    size_t count;
    int decay; /* nonzero: decayed */
} tdi_param_range;

/* What a parameter tensor is, for the decay policy. Weight decay is a prior
 * on the linear maps; shrinking biases, LayerNorm gains or embedding rows
 * toward zero only fights their role (LayerNorm gains belong near 1, rare
 * tokens' embeddings would be eroded between their rare gradients). */
typedef enum tdi_param_kind {
    TDI_PARAM_MATRIX = 0,    /* 2-D weight of a linear map */
    TDI_PARAM_EMBEDDING = 1, /* token or position embedding table */
    TDI_PARAM_BIAS = 2,      /* bias vector */
    TDI_PARAM_NORM = 3       /* LayerNorm gain or bias */
} tdi_param_kind;

/* A set of kinds to decay, as bits (1u << kind). */
#define TDI_DECAY_KINDS_DEFAULT (1u << TDI_PARAM_MATRIX)

/* Does `kind` decay under `decay_kinds`? */
static inline int tdi_param_kind_decays(tdi_param_kind kind, unsigned decay_kinds)
{
    return ((unsigned)kind < 32u && ((decay_kinds >> (unsigned)kind) & 1u)) ? 1 : 0;
}

typedef struct tdi_adamw tdi_adamw;

/* lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, clip 1.0,
 * no warm-up, total 1, min_lr = lr: a constant rate of 1e-3. */
tdi_adamw_config tdi_adamw_config_default(void);

/* TD_OK, or TD_ERR_INVALID_ARG naming the first bad field. */
td_status tdi_adamw_config_check(const tdi_adamw_config *cfg);

/* Learning rate of step t (1-based: the first step is t = 1):
 *   t <= warmup:          lr * t / warmup
 *   warmup < t <= total:  min_lr + (lr - min_lr) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2
 *   t > total:            min_lr
 * t < 1 gives 0. The config is assumed valid. */
double tdi_adamw_lr(const tdi_adamw_config *cfg, int64_t t);

/* An optimizer for `n` parameters (n >= 1) with zeroed moments, step 0, and
 * weight decay on the whole buffer until tdi_adamw_set_decay_ranges() says
 * otherwise. `alloc` NULL selects the C library. The moments and the scratch
 * of a step are one allocation; a step allocates nothing. *out is NULL on
 * failure. */
td_status tdi_adamw_create(const td_allocator *alloc, size_t n, const tdi_adamw_config *cfg,
                           tdi_adamw **out);
void tdi_adamw_free(tdi_adamw *opt);

/* Replace the decay mask. `ranges` must tile [0, n): the first starts at 0,
 * each starts where the previous ended, the last ends at n, no count is 0.
 * Copied; on failure the previous mask stays. */
td_status tdi_adamw_set_decay_ranges(tdi_adamw *opt, const tdi_param_range *ranges,
                                     size_t n_ranges);

/* Replace the hyper-parameters (e.g. on resume with a longer schedule); the
 * moments and the step counter are kept. */
td_status tdi_adamw_set_config(tdi_adamw *opt, const tdi_adamw_config *cfg);

/* One update of params[0..n) from grads[0..n) on the pool's threads (NULL:
 * the caller's alone); the result does not depend on how many. The
 * pre-clipping gradient norm goes to *grad_norm_out when it is not NULL.
 * If any gradient is NaN or infinite, returns TD_ERR_NUMERIC with the
 * parameters, the moments and the step counter untouched (*grad_norm_out is
 * then the non-finite norm). params and grads must not overlap. */
td_status tdi_adamw_step(tdi_adamw *opt, float *params, const float *grads, tdi_pool *pool,
                         double *grad_norm_out);

/* State for checkpoints: the moments (n floats each, writable so that a
 * loader can restore them) and the number of steps taken. Restoring m, v and
 * the step count gives a bit-identical continuation. */
size_t tdi_adamw_size(const tdi_adamw *opt);
float *tdi_adamw_m(tdi_adamw *opt);
float *tdi_adamw_v(tdi_adamw *opt);
int64_t tdi_adamw_steps(const tdi_adamw *opt);
td_status tdi_adamw_set_steps(tdi_adamw *opt, int64_t steps);
const tdi_adamw_config *tdi_adamw_get_config(const tdi_adamw *opt);

#endif
