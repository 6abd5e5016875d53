/* The transformer encoder of docs/model.md: configuration, the parameter
 * buffer and its tensor directory, initialisation, and a workspace that runs
 * the network forward and backward over a batch.
 *
 * Memory: the parameters are one allocation, or a read-only mapping of the
 * model file (tdi_model_attach_mapping); a workspace holds one
 * allocation for activations and, when created for training, one for
 * activation gradients. Forward, logits and backward never allocate.
 *
 * Threads: a model is read-only after tdi_model_init and may be shared; a
 * workspace belongs to one thread at a time. `pool` runs the loops and the
 * matrix products (kernels.h; NULL: the calling thread alone); results are
 * bit-identical for every pool size.
 */
#ifndef TDI_MODEL_H
#define TDI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "textdiff/textdiff.h"
#include "util/mmap.h"
#include "util/pool.h"

enum { TDI_POS_ROPE = 0, TDI_POS_LEARNED = 1 };
enum { TDI_NORM_PRE = 0, TDI_NORM_POST = 1 };

/* Limits of docs/model.md. */
#define TDI_MAX_VOCAB      1048576
#define TDI_MAX_SEQ_LEN    65536
#define TDI_MAX_D_MODEL    16384
#define TDI_MAX_LAYERS     1024
#define TDI_MAX_D_FF       65536
#define TDI_MAX_PARAMS     2147483647 /* the total must stay below 2^31 */
#define TDI_MAX_TYPE_VOCAB 1024

typedef struct tdi_model_config {
    int32_t vocab_size, mask_id, max_seq_len, d_model, n_layers, n_heads, d_ff;
    int32_t pos_encoding;   /* TDI_POS_ROPE or TDI_POS_LEARNED */
    int32_t norm_placement; /* TDI_NORM_PRE or TDI_NORM_POST */
    int32_t tie_embeddings; /* 0 or 1 */
    int32_t causal;         /* 0 or 1: attention sees no later position */
    int32_t activation;     /* TDI_GELU_TANH or TDI_GELU_ERF (kernels.h) */
    int32_t type_vocab_size; /* 0, or rows of type_emb (row 0 added to every position) */
    int32_t pos_offset;     /* learned positions: position t reads row t + pos_offset */
    int32_t head_transform; /* 0 or 1: dense, GELU, LayerNorm before the output projection */
    float layer_norm_eps;   /* every LayerNorm's eps; not in tdi_model_fields */
} tdi_model_config;

/* The configuration's integer fields, in one table that every copy,
 * checkpoint key and range check goes through (layer_norm_eps, the one float,
 * is handled beside it): the name, its checkpoint key
 * ("model.<name>"), where it lives in tdi_model_config and in the public
 * td_model_config (both int32_t), and the range it must lie in on its own.
 * The rules between fields are in tdi_model_config_validate. */
typedef struct tdi_model_field {
    const char *name;
    const char *key;
    size_t offset;        /* in tdi_model_config */
    size_t public_offset; /* in td_model_config */
    int32_t min, max;
    int optional; /* added after 1.0: a checkpoint without the key means 0 */
} tdi_model_field;

#define TDI_MODEL_N_FIELDS 15
extern const tdi_model_field tdi_model_fields[TDI_MODEL_N_FIELDS];

static inline int32_t *tdi_model_field_ptr(tdi_model_config *c, const tdi_model_field *f)
{
    return (int32_t *)(void *)((char *)c + f->offset);
}

static inline int32_t tdi_model_field_get(const tdi_model_config *c, const tdi_model_field *f)
{
    return *(const int32_t *)(const void *)((const char *)c + f->offset);
}

/* Copy every field between the internal and the public configuration
 * (the public struct's struct_size is left alone). */
void tdi_model_config_to_public(const tdi_model_config *c, td_model_config *pub);
void tdi_model_config_from_public(const td_model_config *pub, tdi_model_config *c);

/* The defaults of docs/model.md (byte vocabulary, d = 256, 4 layers). */
tdi_model_config tdi_model_config_default(void);

/* TD_OK, or TD_ERR_INVALID_ARG naming the first offending field and its
 * limit. */
td_status tdi_model_config_validate(const tdi_model_config *c);

/* Number of float parameters of a valid configuration. */
size_t tdi_model_config_n_params(const tdi_model_config *c);

/* What a tensor is, for the policies that treat kinds differently (the
 * optimizer's weight decay, initialisation). */
typedef enum tdi_tensor_kind {
    TDI_TENSOR_MATRIX = 0,    /* weight of a linear map, [out, in] */
    TDI_TENSOR_EMBEDDING = 1, /* token or position table, [rows, d] */
    TDI_TENSOR_BIAS = 2,      /* bias vector of a linear map */
    TDI_TENSOR_NORM = 3       /* LayerNorm gain or shift */
} tdi_tensor_kind;

/* One named tensor of the parameter buffer, at params + offset. Matrices
 * are [rows, cols] row-major; vectors (biases, LayerNorm) have rows = 1. */
typedef struct tdi_tensor {
    char name[32];
    size_t offset;
    int32_t rows, cols;
    tdi_tensor_kind kind;
    int32_t dtype; /* TDI_WT_*: how its values are stored */
} tdi_tensor;

/* How a model of model_dtype (TDI_WT_*) stores a tensor (docs/quantization.md):
 * the weight matrices and the token embedding in the model's dtype — q8_0
 * only when cols is a multiple of 32 — and everything else (LayerNorm,
 * biases, position and type tables) as f32. */
int32_t tdi_tensor_dtype(int32_t model_dtype, tdi_tensor_kind kind, const char *name,
                         int32_t cols);

/* Size in floats of a tensor's storage in the buffer (without the gap). */
static inline size_t tdi_tensor_floats(const tdi_tensor *t)
{
    size_t bytes = tdi_wt_bytes(t->dtype, (size_t)t->rows * (size_t)t->cols);
    return (bytes + sizeof(float) - 1) / sizeof(float);
}

/* The checkpoint key of layer_norm_eps (f64; absent: TDI_LN_EPS). */
#define TDI_MODEL_EPS_KEY "model.layer_norm_eps"

/* Offsets (in floats) of one block's tensors, for params and grads alike. */
typedef struct tdi_layer_offsets {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    size_t ln2_w, ln2_b, fc_w, fc_b, fc2_w, fc2_b;
} tdi_layer_offsets;

#define TDI_NO_TENSOR ((size_t)-1)

/* Each tensor starts at a multiple of this many floats (64 bytes) of the
 * parameter buffer; the gaps are zero. A checkpoint lays its tensors out the
 * same way (docs/format.md), so that a mapped file is the buffer. */
#define TDI_PARAM_ALIGN 16

typedef struct tdi_model {
    td_allocator alloc;
    tdi_model_config cfg;
    int32_t dtype;       /* TDI_WT_*: F32, or the reduced precision of an inference-only
                            model (td_model_convert); see tdi_tensor_dtype */
    float *params;       /* [n_floats]; inside `map` when mapped (read-only) */
    tdi_mapping map;     /* the model file, when params point into it */
    size_t n_params;     /* parameters: the tensors' elements */
    size_t n_floats;     /* the buffer: n_params and the gaps between tensors */
    tdi_tensor *tensors; /* in buffer order, each at a multiple of TDI_PARAM_ALIGN */
    int32_t n_tensors;
    tdi_layer_offsets *layers; /* [n_layers] */
    size_t tok_emb;
    size_t pos_emb; /* TDI_NO_TENSOR unless learned positions */
    size_t type_emb; /* TDI_NO_TENSOR unless type_vocab_size > 0 */
    size_t lnf_w, lnf_b;
    size_t head_w, head_b, head_ln_w, head_ln_b; /* TDI_NO_TENSOR unless head_transform */
    size_t out_w; /* == tok_emb when tied */
    size_t out_b;
} tdi_model;

/* Validates the configuration and allocates the model with zeroed
 * parameters (a: NULL for the C library). *out is NULL on failure. */
td_status tdi_model_create(const tdi_model_config *c, const td_allocator *a, tdi_model **out);
void tdi_model_free(tdi_model *m);

/* The same without a parameter buffer (params NULL), for a loader that
 * gives it one: tdi_model_alloc_params (zeroed; TD_ERR_NOMEM on failure,
 * the model unchanged) or a mapped file. */
td_status tdi_model_create_bare(const tdi_model_config *c, int32_t dtype,
                                const td_allocator *a, tdi_model **out);

/* The storage dtype of a weight matrix with `in` columns (every linear map's
 * weight is a matrix or the token embedding: tdi_tensor_dtype agrees). */
static inline int32_t tdi_model_wt(const tdi_model *m, int32_t in)
{
    return tdi_tensor_dtype(m->dtype, TDI_TENSOR_MATRIX, "", in);
}

/* tdi_linear_forward with the weight and bias at offsets w and b of the
 * parameters, the weight in the dtype the model stores it in. */
static inline void tdi_model_linear(const tdi_model *m, float *y, const float *x, size_t w,
                                    size_t b, const float *add, int n, int in, int out,
                                    tdi_pool *pool)
{
    tdi_linear_forward_q(y, x, m->params + w, tdi_model_wt(m, in), m->params + b, add, n, in,
                         out, pool);
}
td_status tdi_model_alloc_params(tdi_model *m);

/* Make `params` (n_floats, laid out as the directory says, the gaps zero,
 * inside *map) the model's buffer; the model takes the mapping over (*map is
 * emptied) and unmaps it when freed. The pages are read-only. */
void tdi_model_attach_mapping(tdi_model *m, tdi_mapping *map, const float *params);

/* Give a mapped model private, writable parameters (a copy through its
 * allocator) and unmap the file: what a trainer needs before it updates
 * them. A no-op for a model whose parameters are its own. On failure
 * (TD_ERR_NOMEM) the model is unchanged. Not safe while other threads read
 * the model. */
td_status tdi_model_make_private(tdi_model *m);

/* docs/model.md "Initialisation": N(0, 0.02²) weights and embeddings,
 * N(0, (0.02/√(2L))²) for proj.w and fc2.w, zero biases, LayerNorm 1 and 0,
 * drawn from xoshiro256** seeded with `seed`, tensor by tensor in buffer
 * order, element by element. */
void tdi_model_init(tdi_model *m, uint64_t seed);

/* Where, in the parameters or their gradients, the row of position 0 lies
 * (pos_emb's row pos_offset); TDI_NO_TENSOR without learned positions. */
static inline size_t tdi_model_pos0(const tdi_model *m)
{
    if (m->cfg.pos_encoding != TDI_POS_LEARNED) return TDI_NO_TENSOR;
    return m->pos_emb + (size_t)m->cfg.pos_offset * (size_t)m->cfg.d_model;
}

/* The tensor with this exact name ("tok_emb", "3.qkv.w"), or NULL. */
const tdi_tensor *tdi_model_find(const tdi_model *m, const char *name);

/* Activations (and their gradients) for batches up to b_max x t_max. */
typedef struct tdi_workspace tdi_workspace;

/* rows_max bounds n_rows of tdi_model_logits/backward. Without backward the
 * workspace keeps one block's activations and reuses them layer after layer
 * (inference); with it, every block's activations are kept. n_threads
 * (1..1024) is the most threads it will be used with: attention keeps
 * per-thread scratch in it, and a forward or backward given a larger pool
 * runs attention on n_threads only (which changes no result). */
td_status tdi_workspace_create(const tdi_model *m, int32_t b_max, int32_t t_max,
                               int32_t rows_max, int32_t n_threads, int with_backward,
                               tdi_workspace **out);
void tdi_workspace_free(tdi_workspace *ws);

/* Runs the network on ids [B·T] up to the final hidden state.
 * key_mask [B·T] (1 = may be attended) or NULL. B <= b_max, T <= t_max,
 * every id in [0, V). */
td_status tdi_model_forward(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                            int32_t B, int32_t T, const uint8_t *key_mask, tdi_pool *pool);

/* Approximate key/value caching for block decoding (docs/sampling.md,
 * "Approximate caching"; Fast-dLLM): tdi_model_forward_kv is
 * tdi_model_forward that also keeps every layer's (rotated) keys and values,
 * k and v [L, B, T, d]; tdi_model_forward_window then runs only the rows
 * [lo, hi) of each sequence, their queries attending over the kept keys and
 * values of the other positions and their own fresh ones (which it stores).
 * Its final hidden state is valid at those rows only (tdi_model_logits
 * reads it). B and T must be the ones of the last forward_kv. An inference
 * workspace of a bidirectional model only. scores holds n_slices x
 * tdi_attention_window_floats(T, T) floats (kernels.h); hout B x T x d. */
typedef struct tdi_kv_buf {
    float *k, *v, *hout, *scores;
    int32_t n_slices;
} tdi_kv_buf;
td_status tdi_model_forward_kv(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                               int32_t B, int32_t T, const uint8_t *key_mask,
                               const tdi_kv_buf *kv, tdi_pool *pool);
td_status tdi_model_forward_window(const tdi_model *m, tdi_workspace *ws, const int32_t *ids,
                                   int32_t B, int32_t T, int32_t lo, int32_t hi,
                                   const uint8_t *key_mask, const tdi_kv_buf *kv,
                                   tdi_pool *pool);

/* logits [n_rows, V] for rows (indices into B·T, n_rows <= rows_max) of the
 * last forward; the [MASK] column is −∞. */
void tdi_model_logits(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                      int32_t n_rows, float *logits, tdi_pool *pool);

/* Given dlogits [n_rows, V] for those rows (its [MASK] column must be 0, as
 * tdi_crossentropy_forward_backward leaves it), ADDS the parameter gradients
 * into grads [n_floats]. Needs a workspace created with_backward and the
 * forward pass it follows; rows may repeat. */
void tdi_model_backward(const tdi_model *m, tdi_workspace *ws, const int32_t *rows,
                        int32_t n_rows, const float *dlogits, float *grads, tdi_pool *pool);

#endif
