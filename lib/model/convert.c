/* td_model_convert: a float32 model's weights in a reduced precision, as a
 * new inference-only model (docs/quantization.md). */
#include "model/model.h"
#include "model/model_api.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

_Static_assert((int)TDI_WT_F32 == (int)TD_DTYPE_F32 && (int)TDI_WT_BF16 == (int)TD_DTYPE_BF16 &&
                   (int)TDI_WT_Q8_0 == (int)TD_DTYPE_Q8_0,
               "the storage dtypes are the public td_dtype values");

/* Every tensor of `src` into the (zeroed) buffer of `dst`, which has the
 * same configuration and its own dtype. */
static td_status convert_tensors(const tdi_model *src, tdi_model *dst)
{
    for (int32_t i = 0; i < dst->n_tensors; i++) {
        const tdi_tensor *t = &dst->tensors[i];
        const float *from = src->params + src->tensors[i].offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        if (t->dtype == TDI_WT_F32) {
            memcpy(dst->params + t->offset, from, n * sizeof(float));
        } else if (!tdi_quantize(t->dtype, dst->params + t->offset, from, n)) {
            return tdi_fail(TD_ERR_NUMERIC, "td_model_convert: tensor %s has a value beyond "
                            "the range of %s", t->name, tdi_wt_name(t->dtype));
        }
    }
    return TD_OK;
}

td_status td_model_convert(const td_model *m, int32_t dtype, const td_allocator *alloc,
                           td_model **out)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(m);
    TDI_CHECK_ARG(dtype == TD_DTYPE_BF16 || dtype == TD_DTYPE_Q8_0,
                  "%s: dtype = %ld: expected TD_DTYPE_BF16 (%d) or TD_DTYPE_Q8_0 (%d)",
                  __func__, (long)dtype, TD_DTYPE_BF16, TD_DTYPE_Q8_0);
    const tdi_model *src = m->m;
    if (src->dtype != TDI_WT_F32)
        return tdi_fail(TD_ERR_STATE, "%s: the model is already %s; convert its float32 "
                        "original instead", __func__, tdi_wt_name(src->dtype));
    tdi_model *inner;
    TDI_TRY(tdi_model_create_bare(&src->cfg, dtype, alloc ? alloc : &src->alloc, &inner));
    td_model *model = NULL;
    td_status st = tdi_model_alloc_params(inner);
    if (st == TD_OK) st = convert_tensors(src, inner);
    if (st == TD_OK) st = tdi_model_wrap(inner, &model);
    if (st != TD_OK) {
        tdi_model_free(inner);
        return st;
    }
    if (m->tokenizer != NULL) {
        model->tokenizer = tdi_malloc(&inner->alloc, m->tokenizer_size);
        if (model->tokenizer == NULL) {
            td_model_free(model);
            return tdi_nomem(__func__, m->tokenizer_size);
        }
        memcpy(model->tokenizer, m->tokenizer, m->tokenizer_size);
        model->tokenizer_size = m->tokenizer_size;
    }
    *out = model;
    return TD_OK;
}

td_status td_model_get_dtype(const td_model *m, int32_t *dtype)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(dtype);
    *dtype = m->m->dtype;
    return TD_OK;
}
