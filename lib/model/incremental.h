/* Incremental forward of a causal model (docs/sampling.md, "Left to
 * right"): one position of B sequences at a time, attending over a cache of
 * the keys and values of the positions before it. Position p of a causal
 * model depends only on positions 0..p, so the logits it gives equal those
 * of tdi_model_forward over the whole prefix (within float rounding: the
 * products are grouped differently).
 *
 * The cache is allocated once (tdi_kv_cache_create); a step allocates
 * nothing. Like a workspace, it belongs to one thread at a time; results do
 * not depend on the pool's size. */
#ifndef TDI_INCREMENTAL_H
#define TDI_INCREMENTAL_H

#include "model/model.h"

typedef struct tdi_kv_cache tdi_kv_cache;

/* A cache for up to b_max sequences of t_max positions (t_max <= the
 * model's max_seq_len) and pools of up to n_threads. The model must be
 * causal. */
td_status tdi_kv_cache_create(const tdi_model *m, int32_t b_max, int32_t t_max,
                              int32_t n_threads, tdi_kv_cache **out);
void tdi_kv_cache_free(tdi_kv_cache *c);

/* Runs position pos (0 <= pos < t_max) of sequences 0..B-1, whose inputs
 * there are ids [B] (in [0, V)); stores its keys and values in the cache
 * and writes logits [B, V] (the [MASK] column −∞). Positions 0..pos−1 of
 * the same B sequences must have been run before, in any earlier calls. */
void tdi_model_step(const tdi_model *m, tdi_kv_cache *c, const int32_t *ids, int32_t B,
                    int32_t pos, float *logits, tdi_pool *pool);

#endif
