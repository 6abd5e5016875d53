/* Models in checkpoint files (docs/format.md "Model checkpoints"): the
 * configuration as metadata, every parameter tensor by its docs/model.md
 * name, and the tokenizer description when the model has one. Tensors are
 * written uncompressed, in the buffer's order and alignment, so that
 * td_model_load can map a file instead of copying it. */
#include "io/checkpoint.h"
#include "kernels/kernels.h"
#include "model/model_api.h"
#include "model/model_io.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/mmap.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The checkpoint dtype of a tensor stored as `wt` (TDI_WT_*). */
static tdi_dtype ckpt_dtype(int32_t wt)
{
    return wt == TDI_WT_BF16 ? TDI_DTYPE_BF16 : wt == TDI_WT_Q8_0 ? TDI_DTYPE_Q8_0
                                                                  : TDI_DTYPE_F32;
}

static void tensor_dims(const tdi_tensor *t, uint32_t *ndim, uint64_t dims[2])
{
    if (t->rows == 1) {
        *ndim = 1;
        dims[0] = (uint64_t)t->cols;
    } else {
        *ndim = 2;
        dims[0] = (uint64_t)t->rows;
        dims[1] = (uint64_t)t->cols;
    }
}

td_status tdi_model_write(const td_model *model, tdi_ckpt_writer *w, const char *format,
                          uint32_t tensor_flags)
{
    const tdi_model *m = model->m;
    TDI_TRY(tdi_ckpt_put_string(w, "format", format));
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        TDI_TRY(tdi_ckpt_put_i64(w, f->key, tdi_model_field_get(&m->cfg, f)));
    }
    TDI_TRY(tdi_ckpt_put_f64(w, TDI_MODEL_EPS_KEY, m->cfg.layer_norm_eps));
    if (m->dtype != TDI_WT_F32) TDI_TRY(tdi_ckpt_put_i64(w, TDI_MODEL_DTYPE_KEY, m->dtype));
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        uint32_t ndim;
        uint64_t dims[2];
        tensor_dims(t, &ndim, dims);
        TDI_TRY(tdi_ckpt_add_tensor(w, t->name, ckpt_dtype(t->dtype), ndim, dims,
                                    m->params + t->offset, tensor_flags));
    }
    if (model->tokenizer != NULL) {
        uint64_t n = model->tokenizer_size;
        TDI_TRY(tdi_ckpt_add_tensor(w, "tokenizer", TDI_DTYPE_U8, 1, &n, model->tokenizer, 0));
    }
    return TD_OK;
}

td_status tdi_model_read_config(const tdi_ckpt *ck, tdi_model_config *c)
{
    const char *format = NULL;
    td_status st = tdi_ckpt_get_string(ck, "format", &format, NULL);
    if (st != TD_OK ||
        (strcmp(format, TDI_FORMAT_MODEL) != 0 && strcmp(format, TDI_FORMAT_TRAINER) != 0))
        return tdi_fail(TD_ERR_FORMAT, "model checkpoint: the file holds no libtextdiff model "
                        "(metadata key 'format' is not '%s' or '%s')", TDI_FORMAT_MODEL,
                        TDI_FORMAT_TRAINER);
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        int64_t v = 0;
        if (!(f->optional && tdi_ckpt_meta_type(ck, f->key) == 0))
            TDI_TRY(tdi_ckpt_get_i64(ck, f->key, &v));
        if (v < f->min || v > f->max)
            return tdi_fail(TD_ERR_FORMAT, "model checkpoint: %s = %lld is outside %ld..%ld",
                            f->key, (long long)v, (long)f->min, (long)f->max);
        *tdi_model_field_ptr(c, f) = (int32_t)v;
    }
    double eps = TDI_LN_EPS;
    if (tdi_ckpt_meta_type(ck, TDI_MODEL_EPS_KEY) != 0)
        TDI_TRY(tdi_ckpt_get_f64(ck, TDI_MODEL_EPS_KEY, &eps));
    if (!(eps >= FLT_MIN && eps <= 1.0) || (double)(float)eps != eps)
        return tdi_fail(TD_ERR_FORMAT, "model checkpoint: %s = %g is not a float in "
                        "[FLT_MIN, 1]", TDI_MODEL_EPS_KEY, eps);
    c->layer_norm_eps = (float)eps;
    if (tdi_model_config_validate(c) != TD_OK)
        return tdi_fail_context(TD_ERR_FORMAT, "model checkpoint: invalid configuration");
    return TD_OK;
}

td_status tdi_model_read_dtype(const tdi_ckpt *ck, int32_t *dtype)
{
    int64_t v = TDI_WT_F32;
    if (tdi_ckpt_meta_type(ck, TDI_MODEL_DTYPE_KEY) != 0)
        TDI_TRY(tdi_ckpt_get_i64(ck, TDI_MODEL_DTYPE_KEY, &v));
    if (v != TDI_WT_F32 && v != TDI_WT_BF16 && v != TDI_WT_Q8_0)
        return tdi_fail(TD_ERR_FORMAT, "model checkpoint: %s = %lld is not 0 (f32), 1 (bf16) "
                        "or 2 (q8_0)", TDI_MODEL_DTYPE_KEY, (long long)v);
    *dtype = (int32_t)v;
    return TD_OK;
}

/* The first element of ct (f32, bf16, or the scales of q8_0) that is not
 * finite — or for q8_0 whose value is −128, outside the −127..127 that the
 * kernels assume — or ct->count when all are valid. */
static uint64_t first_invalid(const tdi_ckpt_tensor *ct)
{
    if (ct->dtype == TDI_DTYPE_Q8_0) {
        const tdi_block_q8_0 *b = ct->data;
        for (uint64_t k = 0; k < ct->count / TDI_Q8_BLOCK; k++) {
            if (!isfinite(b[k].d)) return k * TDI_Q8_BLOCK;
            for (int i = 0; i < TDI_Q8_BLOCK; i++)
                if (b[k].qs[i] == -128) return k * TDI_Q8_BLOCK + (uint64_t)i;
        }
        return ct->count;
    }
    float v[64];
    for (uint64_t k = 0; k < ct->count; k += 64) {
        size_t n = ct->count - k < 64 ? (size_t)(ct->count - k) : 64;
        tdi_dequantize(ct->dtype == TDI_DTYPE_BF16 ? TDI_WT_BF16 : TDI_WT_F32, v, ct->data, k,
                       n);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(v[i])) return k + i;
    }
    return ct->count;
}

td_status tdi_model_check_params(const tdi_ckpt *ck, const tdi_model *m)
{
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        const tdi_ckpt_tensor *ct;
        TDI_TRY(tdi_ckpt_tensor_get(ck, t->name, ckpt_dtype(t->dtype), &ct));
        uint32_t ndim;
        uint64_t dims[2];
        tensor_dims(t, &ndim, dims);
        if (ct->ndim != ndim || ct->dims[0] != dims[0] || (ndim == 2 && ct->dims[1] != dims[1]))
            return tdi_fail(TD_ERR_FORMAT, "model checkpoint: tensor %s has the wrong shape",
                            t->name);
        uint64_t k = first_invalid(ct);
        if (k < ct->count)
            return tdi_fail(TD_ERR_CORRUPT,
                            "model checkpoint: tensor %s holds a non-finite value%s at %llu",
                            t->name, ct->dtype == TDI_DTYPE_Q8_0 ? " or a q8_0 value of -128" : "",
                            (unsigned long long)k);
    }
    return TD_OK;
}

/* Every tensor is checked before any is copied, so a bad file leaves the
 * model as it was. */
td_status tdi_model_read_params(const tdi_ckpt *ck, tdi_model *m)
{
    TDI_TRY(tdi_model_check_params(ck, m));
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        const tdi_ckpt_tensor *ct = tdi_ckpt_tensor_find(ck, t->name);
        memcpy(m->params + t->offset, ct->data, ct->nbytes);
    }
    return TD_OK;
}

/* Do the checked tensors already form the model's buffer, starting at
 * `base` inside [lo, hi): each where the directory puts it? Then a mapped
 * file or the reader's own block can be the buffer, with no copy. */
static int forms_buffer(const tdi_ckpt *ck, const tdi_model *m, const unsigned char *base,
                        const unsigned char *lo, const unsigned char *hi)
{
    if (base == NULL || (uintptr_t)base % 64 != 0) return 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        const unsigned char *p = tdi_ckpt_tensor_find(ck, t->name)->data;
        if (p < lo || p >= hi || p != base + t->offset * sizeof(float)) return 0;
    }
    return 1;
}

/* Give `m` its parameters, last, once everything else has succeeded: the
 * mapped file's tensors when they form the buffer (the model takes the
 * mapping over); else the reader's block of decoded tensors when it does
 * (taken over, its gaps zeroed, its tail cut off); else a copy. */
static td_status give_params(tdi_ckpt *ck, tdi_model *m, tdi_mapping *map)
{
    const unsigned char *first = tdi_ckpt_tensor_find(ck, m->tensors[0].name)->data;
    if (map != NULL && map->addr != NULL) {
        const unsigned char *lo = map->addr;
        if (forms_buffer(ck, m, first, lo, lo + map->size)) {
            tdi_model_attach_mapping(m, map, (const float *)(const void *)first);
            return TD_OK;
        }
    }
    const unsigned char *block = tdi_ckpt_data(ck);
    size_t bytes = m->n_floats * sizeof(float);
    if (block == first && forms_buffer(ck, m, block, block, block + bytes)) {
        float *p = tdi_ckpt_take_data(ck);
        for (int32_t i = 0; i < m->n_tensors; i++) { /* the gaps: zero, like the file's */
            const tdi_tensor *t = &m->tensors[i];
            size_t end = t->offset * sizeof(float) +
                         tdi_wt_bytes(t->dtype, (size_t)t->rows * (size_t)t->cols);
            size_t next = i + 1 < m->n_tensors ? m->tensors[i + 1].offset : m->n_floats;
            memset((unsigned char *)p + end, 0, next * sizeof(float) - end);
        }
        float *cut = tdi_realloc(&m->alloc, p, bytes); /* the tokenizer, a trainer's moments */
        m->params = cut ? cut : p;
        return TD_OK;
    }
    TDI_TRY(tdi_model_alloc_params(m));
    return tdi_model_read_params(ck, m);
}

/* The checkpoint's tokenizer (NULL when it has none), validated and
 * matching the configuration. */
static td_status load_tokenizer(const tdi_ckpt *ck, const tdi_model_config *c,
                                const td_allocator *alloc, td_tokenizer **out)
{
    *out = NULL;
    const tdi_ckpt_tensor *t = tdi_ckpt_tensor_find(ck, "tokenizer");
    if (t == NULL) return TD_OK;
    if (t->dtype != TDI_DTYPE_U8 || t->ndim != 1)
        return tdi_fail(TD_ERR_FORMAT, "model checkpoint: tensor tokenizer is not bytes");
    td_tokenizer *tok;
    TDI_TRY(tdi_tokenizer_deserialize(t->data, t->nbytes, alloc, &tok));
    /* A mismatch is the file's fault; anything else (out of memory) is not. */
    if ((int64_t)tdi_tokenizer_vocab_size(tok) != c->vocab_size ||
        tdi_tokenizer_mask_id(tok) != c->mask_id) {
        td_status st = tdi_fail(TD_ERR_FORMAT, "model checkpoint: the tokenizer (vocabulary %u, "
                                "[MASK] %d) does not match the model (vocabulary %d, [MASK] %d)",
                                (unsigned)tdi_tokenizer_vocab_size(tok),
                                (int)tdi_tokenizer_mask_id(tok), (int)c->vocab_size,
                                (int)c->mask_id);
        td_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return TD_OK;
}

td_status tdi_model_check_tokenizer(const tdi_ckpt *ck, const tdi_model_config *c,
                                    const td_allocator *alloc)
{
    td_tokenizer *tok;
    TDI_TRY(load_tokenizer(ck, c, alloc, &tok));
    td_tokenizer_free(tok);
    return TD_OK;
}

static td_status read_tokenizer(const tdi_ckpt *ck, td_model *model)
{
    td_tokenizer *tok;
    TDI_TRY(load_tokenizer(ck, &model->m->cfg, &model->m->alloc, &tok));
    if (tok == NULL) return TD_OK;
    td_status st = td_model_set_tokenizer(model, tok);
    td_tokenizer_free(tok);
    return st;
}

td_status tdi_model_read(tdi_ckpt *ck, const td_allocator *alloc, tdi_mapping *map,
                         td_model **out)
{
    tdi_model_config c;
    int32_t dtype = 0;
    TDI_TRY(tdi_model_read_config(ck, &c));
    TDI_TRY(tdi_model_read_dtype(ck, &dtype));
    tdi_model *inner;
    TDI_TRY(tdi_model_create_bare(&c, dtype, alloc, &inner));
    td_model *model = NULL;
    td_status st = tdi_model_check_params(ck, inner);
    if (st == TD_OK) st = tdi_model_wrap(inner, &model);
    if (st != TD_OK) {
        tdi_model_free(inner);
        return st;
    }
    st = read_tokenizer(ck, model);
    if (st == TD_OK) st = give_params(ck, inner, map);
    if (st != TD_OK) {
        td_model_free(model);
        return st;
    }
    *out = model;
    return TD_OK;
}

td_status td_model_save(const td_model *m, const char *path)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(path);
    tdi_ckpt_writer *w;
    TDI_TRY(tdi_ckpt_writer_create(&m->m->alloc, &w));
    td_status st = tdi_model_write(m, w, TDI_FORMAT_MODEL, 0);
    if (st == TD_OK) st = tdi_ckpt_write_file(w, path);
    tdi_ckpt_writer_free(w);
    return st;
}

td_status tdi_model_load_file(const char *path, const td_allocator *alloc, int try_map,
                              td_model **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_mapping map = { NULL, 0 };
    tdi_ckpt *ck = NULL;
    td_status st;
    if (try_map && tdi_map_file(path, &map))
        st = tdi_ckpt_read_borrowed(&a, map.addr, map.size, path, &ck);
    else
        st = tdi_ckpt_read_file(&a, path, &ck);
    if (st == TD_OK) {
        st = tdi_model_read(ck, &a, &map, out);
        if (st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT)
            st = tdi_fail_context(st, "checkpoint '%s'", path);
    }
    tdi_ckpt_free(ck);
    tdi_unmap(&map); /* unless the model took it over */
    return st;
}

td_status td_model_load(const char *path, const td_allocator *alloc, td_model **out)
{
    TDI_ENTER_NONE();
    return tdi_model_load_file(path, alloc, 1, out);
}

td_status td_model_load_memory(const void *data, size_t size, const td_allocator *alloc,
                               td_model **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(data != NULL, "%s: data is NULL", __func__);
    TDI_CHECK_ARG(size > 0, "%s: size is 0", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_ckpt *ck = NULL;
    td_status st = tdi_ckpt_read_memory(&a, data, size, &ck);
    if (st == TD_OK) st = tdi_model_read(ck, &a, NULL, out);
    tdi_ckpt_free(ck);
    return st;
}

td_status td_model_set_tokenizer(td_model *m, const td_tokenizer *tok)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(tok);
    const tdi_model_config *c = &m->m->cfg;
    if ((int64_t)tdi_tokenizer_vocab_size(tok) != c->vocab_size ||
        tdi_tokenizer_mask_id(tok) != c->mask_id)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "%s: the tokenizer (vocabulary %u, [MASK] %d) does not match the model "
                        "(vocabulary %d, [MASK] %d)",
                        __func__, (unsigned)tdi_tokenizer_vocab_size(tok),
                        (int)tdi_tokenizer_mask_id(tok), (int)c->vocab_size, (int)c->mask_id);
    size_t size;
    TDI_TRY(tdi_tokenizer_serialize(tok, NULL, 0, &size));
    unsigned char *buf = tdi_malloc(&m->m->alloc, size);
    if (buf == NULL) return tdi_nomem(__func__, size);
    td_status st = tdi_tokenizer_serialize(tok, buf, size, &size);
    if (st != TD_OK) {
        tdi_free(&m->m->alloc, buf);
        return st;
    }
    tdi_free(&m->m->alloc, m->tokenizer);
    m->tokenizer = buf;
    m->tokenizer_size = size;
    return TD_OK;
}

td_status td_model_get_tokenizer(const td_model *m, const td_allocator *alloc, td_tokenizer **out)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(m);
    if (m->tokenizer == NULL)
        return tdi_fail(TD_ERR_STATE, "%s: the model has no tokenizer (see td_model_set_tokenizer)",
                        __func__);
    return tdi_tokenizer_deserialize(m->tokenizer, m->tokenizer_size, alloc, out);
}
