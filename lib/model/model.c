/* Configuration, parameter buffer, tensor directory and initialisation. */
#include "model/model.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/mmap.h"
#include "util/rng.h"

tdi_model_config tdi_model_config_default(void)
{
    tdi_model_config c;
    c.vocab_size = 258;
    c.mask_id = 256;
    c.max_seq_len = 256;
    c.d_model = 256;
    c.n_layers = 4;
    c.n_heads = 4;
    c.d_ff = 4 * 256;
    c.pos_encoding = TDI_POS_ROPE;
    c.norm_placement = TDI_NORM_PRE;
    c.tie_embeddings = 1;
    c.causal = 0;
    c.activation = TDI_GELU_TANH;
    c.type_vocab_size = 0;
    c.pos_offset = 0;
    c.head_transform = 0;
    c.layer_norm_eps = TDI_LN_EPS;
    return c;
}

/* Exact for every configuration within the field limits (< 2^42). */
static uint64_t count_params(const tdi_model_config *c)
{
    uint64_t V = (uint64_t)c->vocab_size, d = (uint64_t)c->d_model, f = (uint64_t)c->d_ff;
    uint64_t layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (f * d + f) + (d * f + d);
    uint64_t n = V * d + (uint64_t)c->n_layers * layer + 2 * d + V;
    if (c->pos_encoding == TDI_POS_LEARNED)
        n += ((uint64_t)c->max_seq_len + (uint64_t)c->pos_offset) * d;
    n += (uint64_t)c->type_vocab_size * d;
    if (c->head_transform) n += d * d + 3 * d;
    if (!c->tie_embeddings) n += V * d;
    return n;
}

#define FIELD_(f, lo, hi, opt)                                                              \
    { #f, "model." #f, offsetof(tdi_model_config, f), offsetof(td_model_config, f), lo, hi, opt }
#define FIELD(f, lo, hi) FIELD_(f, lo, hi, 0)

/* The order of docs/model.md's configuration and of the checkpoint keys. */
const tdi_model_field tdi_model_fields[TDI_MODEL_N_FIELDS] = {
    FIELD(vocab_size, 2, TDI_MAX_VOCAB),
    FIELD(mask_id, 0, TDI_MAX_VOCAB - 1),
    FIELD(max_seq_len, 1, TDI_MAX_SEQ_LEN),
    FIELD(d_model, 1, TDI_MAX_D_MODEL),
    FIELD(n_layers, 1, TDI_MAX_LAYERS),
    FIELD(n_heads, 1, TDI_MAX_D_MODEL),
    FIELD(d_ff, 1, TDI_MAX_D_FF),
    FIELD(pos_encoding, TDI_POS_ROPE, TDI_POS_LEARNED),
    FIELD(norm_placement, TDI_NORM_PRE, TDI_NORM_POST),
    FIELD(tie_embeddings, 0, 1),
    FIELD_(causal, 0, 1, 1),
    FIELD_(activation, TDI_GELU_TANH, TDI_GELU_ERF, 1),
    FIELD_(type_vocab_size, 0, TDI_MAX_TYPE_VOCAB, 1),
    FIELD_(pos_offset, 0, TDI_MAX_SEQ_LEN, 1),
    FIELD_(head_transform, 0, 1, 1),
};
#undef FIELD
#undef FIELD_

_Static_assert(sizeof(tdi_model_config) == TDI_MODEL_N_FIELDS * sizeof(int32_t) + sizeof(float),
               "every integer configuration field is in tdi_model_fields");

void tdi_model_config_to_public(const tdi_model_config *c, td_model_config *pub)
{
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        int32_t v = tdi_model_field_get(c, f);
        memcpy((char *)pub + f->public_offset, &v, sizeof v);
    }
    pub->layer_norm_eps = c->layer_norm_eps;
}

void tdi_model_config_from_public(const td_model_config *pub, tdi_model_config *c)
{
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        memcpy(tdi_model_field_ptr(c, f), (const char *)pub + f->public_offset,
               sizeof(int32_t));
    }
    c->layer_norm_eps = pub->layer_norm_eps;
}

td_status tdi_model_config_validate(const tdi_model_config *c)
{
    TDI_CHECK_PTR(c);
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        int32_t v = tdi_model_field_get(c, f);
        TDI_CHECK_ARG(v >= f->min && v <= f->max, "model config: %s = %ld is outside %ld..%ld",
                      f->name, (long)v, (long)f->min, (long)f->max);
    }
    TDI_CHECK_ARG(isfinite(c->layer_norm_eps) && c->layer_norm_eps >= FLT_MIN &&
                      c->layer_norm_eps <= 1.0f,
                  "model config: layer_norm_eps = %g is outside [FLT_MIN, 1]",
                  (double)c->layer_norm_eps);
    TDI_CHECK_ARG(c->pos_offset == 0 || c->pos_encoding == TDI_POS_LEARNED,
                  "model config: pos_offset = %ld needs learned positions",
                  (long)c->pos_offset);
    TDI_CHECK_ARG(!c->head_transform || !c->causal,
                  "model config: head_transform is for bidirectional models (causal = 0)");
    TDI_CHECK_ARG(c->mask_id < c->vocab_size,
                  "model config: mask_id = %ld must be in 0..vocab_size-1 (vocab_size = %ld)",
                  (long)c->mask_id, (long)c->vocab_size);
    TDI_CHECK_ARG(c->n_heads <= c->d_model && c->d_model % c->n_heads == 0,
                  "model config: n_heads = %ld must divide d_model = %ld", (long)c->n_heads,
                  (long)c->d_model);
    TDI_CHECK_ARG(c->pos_encoding != TDI_POS_ROPE || (c->d_model / c->n_heads) % 2 == 0,
                  "model config: head size d_model/n_heads = %ld must be even with RoPE",
                  (long)(c->d_model / c->n_heads));
    /* The buffer, gaps between tensors included, stays below 2^31 floats. */
    uint64_t n = count_params(c);
    uint64_t tensors = 4 + 12 * (uint64_t)c->n_layers + 1 + 1 + 4;
    TDI_CHECK_ARG(n + (TDI_PARAM_ALIGN - 1) * tensors <= TDI_MAX_PARAMS,
                  "model config: %llu parameters, the limit is 2^31 - 1 with the padding "
                  "between tensors", (unsigned long long)n);
    return TD_OK;
}

size_t tdi_model_config_n_params(const tdi_model_config *c)
{
    return (size_t)count_params(c);
}

int32_t tdi_tensor_dtype(int32_t model_dtype, tdi_tensor_kind kind, const char *name,
                         int32_t cols)
{
    if (model_dtype == TDI_WT_F32) return TDI_WT_F32;
    if (kind != TDI_TENSOR_MATRIX && strcmp(name, "tok_emb") != 0) return TDI_WT_F32;
    if (model_dtype == TDI_WT_Q8_0 && cols % TDI_Q8_BLOCK != 0) return TDI_WT_F32;
    return model_dtype;
}

/* Appends a tensor to the directory (when m->tensors is set) at the next
 * multiple of TDI_PARAM_ALIGN and returns its offset; run once to count,
 * once to fill. A tensor stored in a reduced precision takes the floats its
 * bytes fill, rounded up. */
static size_t add_tensor(tdi_model *m, size_t *off, int32_t *count, const char *name,
                         tdi_tensor_kind kind, int32_t rows, int32_t cols)
{
    size_t at = (*off + TDI_PARAM_ALIGN - 1) / TDI_PARAM_ALIGN * TDI_PARAM_ALIGN;
    size_t n = (size_t)rows * (size_t)cols;
    int32_t dtype = tdi_tensor_dtype(m->dtype, kind, name, cols);
    m->n_params += n;
    if (m->tensors) {
        tdi_tensor *t = &m->tensors[*count];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->offset = at;
        t->rows = rows;
        t->cols = cols;
        t->kind = kind;
        t->dtype = dtype;
    }
    (*count)++;
    *off = at + (tdi_wt_bytes(dtype, n) + sizeof(float) - 1) / sizeof(float);
    return at;
}

/* The order of docs/model.md "Parameters". */
static void build_directory(tdi_model *m)
{
    const tdi_model_config *c = &m->cfg;
    int32_t V = c->vocab_size, d = c->d_model, f = c->d_ff;
    size_t off = 0;
    int32_t n = 0;
    char name[32];
    m->n_params = 0;
    m->tok_emb = add_tensor(m, &off, &n, "tok_emb", TDI_TENSOR_EMBEDDING, V, d);
    m->pos_emb = TDI_NO_TENSOR;
    if (c->pos_encoding == TDI_POS_LEARNED)
        m->pos_emb = add_tensor(m, &off, &n, "pos_emb", TDI_TENSOR_EMBEDDING,
                                c->pos_offset + c->max_seq_len, d);
    m->type_emb = TDI_NO_TENSOR;
    if (c->type_vocab_size > 0)
        m->type_emb = add_tensor(m, &off, &n, "type_emb", TDI_TENSOR_EMBEDDING,
                                 c->type_vocab_size, d);
    for (int32_t l = 0; l < c->n_layers; l++) {
        tdi_layer_offsets lo;
#define LAYER_TENSOR(field, suffix, kind, rows, cols)               \
        snprintf(name, sizeof name, "%ld." suffix, (long)l);         \
        lo.field = add_tensor(m, &off, &n, name, TDI_TENSOR_##kind, rows, cols)
        LAYER_TENSOR(ln1_w, "ln1.w", NORM, 1, d);
        LAYER_TENSOR(ln1_b, "ln1.b", NORM, 1, d);
        LAYER_TENSOR(qkv_w, "qkv.w", MATRIX, 3 * d, d);
        LAYER_TENSOR(qkv_b, "qkv.b", BIAS, 1, 3 * d);
        LAYER_TENSOR(proj_w, "proj.w", MATRIX, d, d);
        LAYER_TENSOR(proj_b, "proj.b", BIAS, 1, d);
        LAYER_TENSOR(ln2_w, "ln2.w", NORM, 1, d);
        LAYER_TENSOR(ln2_b, "ln2.b", NORM, 1, d);
        LAYER_TENSOR(fc_w, "fc.w", MATRIX, f, d);
        LAYER_TENSOR(fc_b, "fc.b", BIAS, 1, f);
        LAYER_TENSOR(fc2_w, "fc2.w", MATRIX, d, f);
        LAYER_TENSOR(fc2_b, "fc2.b", BIAS, 1, d);
#undef LAYER_TENSOR
        if (m->layers) m->layers[l] = lo;
    }
    m->lnf_w = add_tensor(m, &off, &n, "lnf.w", TDI_TENSOR_NORM, 1, d);
    m->lnf_b = add_tensor(m, &off, &n, "lnf.b", TDI_TENSOR_NORM, 1, d);
    m->head_w = m->head_b = m->head_ln_w = m->head_ln_b = TDI_NO_TENSOR;
    if (c->head_transform) {
        m->head_w = add_tensor(m, &off, &n, "head.w", TDI_TENSOR_MATRIX, d, d);
        m->head_b = add_tensor(m, &off, &n, "head.b", TDI_TENSOR_BIAS, 1, d);
        m->head_ln_w = add_tensor(m, &off, &n, "head_ln.w", TDI_TENSOR_NORM, 1, d);
        m->head_ln_b = add_tensor(m, &off, &n, "head_ln.b", TDI_TENSOR_NORM, 1, d);
    }
    m->out_w = m->tok_emb;
    if (!c->tie_embeddings) m->out_w = add_tensor(m, &off, &n, "out.w", TDI_TENSOR_MATRIX, V, d);
    m->out_b = add_tensor(m, &off, &n, "out.b", TDI_TENSOR_BIAS, 1, V);
    m->n_tensors = n;
    m->n_floats = off;
}

static td_status model_new(const tdi_model_config *c, int32_t dtype, const td_allocator *a,
                           int with_params, tdi_model **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_TRY(tdi_model_config_validate(c));
    td_allocator alloc;
    TDI_TRY(tdi_allocator_init(&alloc, a));

    tdi_model *m = tdi_malloc(&alloc, sizeof *m);
    if (!m) return tdi_nomem("tdi_model_create", sizeof *m);
    memset(m, 0, sizeof *m);
    m->alloc = alloc;
    m->cfg = *c;
    m->dtype = dtype;
    build_directory(m); /* counts tensors and parameters */

    size_t tensor_bytes = (size_t)m->n_tensors * sizeof *m->tensors;
    size_t layer_bytes = (size_t)c->n_layers * sizeof *m->layers;
    size_t failed = 0;
    if (!(m->tensors = tdi_malloc(&alloc, tensor_bytes))) failed = tensor_bytes;
    else if (!(m->layers = tdi_malloc(&alloc, layer_bytes))) failed = layer_bytes;
    if (failed) {
        tdi_model_free(m);
        return tdi_nomem("tdi_model_create", failed);
    }
    build_directory(m); /* fills them */
    if (with_params) {
        td_status st = tdi_model_alloc_params(m);
        if (st != TD_OK) {
            tdi_model_free(m);
            return st;
        }
    }
    *out = m;
    return TD_OK;
}

td_status tdi_model_create(const tdi_model_config *c, const td_allocator *a, tdi_model **out)
{
    return model_new(c, TDI_WT_F32, a, 1, out);
}

td_status tdi_model_create_bare(const tdi_model_config *c, int32_t dtype,
                                const td_allocator *a, tdi_model **out)
{
    return model_new(c, dtype, a, 0, out);
}

td_status tdi_model_alloc_params(tdi_model *m)
{
    float *p = tdi_calloc(&m->alloc, m->n_floats, sizeof *p);
    if (!p) return tdi_nomem("tdi_model_create", m->n_floats * sizeof *p);
    m->params = p;
    return TD_OK;
}

void tdi_model_attach_mapping(tdi_model *m, tdi_mapping *map, const float *params)
{
    m->map = *map;
    m->params = (float *)(uintptr_t)params; /* read-only pages: see tdi_model_make_private */
    map->addr = NULL;
    map->size = 0;
}

td_status tdi_model_make_private(tdi_model *m)
{
    if (m->map.addr == NULL) return TD_OK;
    size_t bytes = m->n_floats * sizeof *m->params;
    float *p = tdi_malloc(&m->alloc, bytes);
    if (!p) return tdi_nomem("tdi_model_make_private", bytes);
    memcpy(p, m->params, bytes);
    m->params = p;
    tdi_unmap(&m->map);
    return TD_OK;
}

void tdi_model_free(tdi_model *m)
{
    if (m == NULL) return;
    td_allocator alloc = m->alloc;
    if (m->map.addr != NULL)
        tdi_unmap(&m->map);
    else
        tdi_free(&alloc, m->params);
    tdi_free(&alloc, m->layers);
    tdi_free(&alloc, m->tensors);
    tdi_free(&alloc, m);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void tdi_model_init(tdi_model *m, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    double std = 0.02, resid_std = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        if (t->kind == TDI_TENSOR_NORM || t->kind == TDI_TENSOR_BIAS) {
            float v = t->kind == TDI_TENSOR_NORM && ends_with(t->name, ".w") ? 1.0f : 0.0f;
            for (size_t j = 0; j < n; j++) p[j] = v;
            continue;
        }
        double s = ends_with(t->name, "proj.w") || ends_with(t->name, "fc2.w") ? resid_std : std;
        for (size_t j = 0; j < n; j++) p[j] = (float)(s * tdi_rng_normal(&r));
    }
}

const tdi_tensor *tdi_model_find(const tdi_model *m, const char *name)
{
    if (m == NULL || name == NULL) return NULL;
    for (int32_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}
