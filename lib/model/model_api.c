/* The public model handle over tdi_model. */
#include "model/model.h"
#include "model/model_api.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/crc32.h"
#include "util/error.h"

#include <string.h>

/* The size of td_model_config in 1.0: smaller structs are refused. */
#define MODEL_CONFIG_V1 48

static td_model_config public_config(const tdi_model_config *c)
{
    td_model_config p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    tdi_model_config_to_public(c, &p);
    return p;
}

td_status td_model_config_init(td_model_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    tdi_model_config d = tdi_model_config_default();
    td_model_config c = public_config(&d);
    return tdi_struct_init(cfg, size, &c, sizeof c, MODEL_CONFIG_V1, __func__);
}

td_status tdi_model_wrap(tdi_model *inner, td_model **out)
{
    td_model *m = tdi_malloc(&inner->alloc, sizeof *m);
    if (m == NULL) return tdi_nomem("td_model", sizeof *m);
    memset(m, 0, sizeof *m);
    tdi_errslot_init(&m->err);
    m->m = inner;
    *out = m;
    return TD_OK;
}

td_status td_model_create(const td_model_config *cfg, uint64_t seed, const td_allocator *alloc,
                          td_model **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(cfg);
    tdi_model_config d = tdi_model_config_default();
    td_model_config c = public_config(&d);
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, MODEL_CONFIG_V1, __func__, "cfg"));
    TDI_CHECK_ARG(c.reserved0 == 0, "%s: cfg->reserved0 must be 0", __func__);
    TDI_CHECK_ARG(c.reserved1 == 0, "%s: cfg->reserved1 must be 0", __func__);
    TDI_CHECK_ARG(c.reserved2 == 0, "%s: cfg->reserved2 must be 0", __func__);
    tdi_model_config ic;
    tdi_model_config_from_public(&c, &ic);
    tdi_model *inner;
    TDI_TRY(tdi_model_create(&ic, alloc, &inner));
    tdi_model_init(inner, seed);
    td_status st = tdi_model_wrap(inner, out);
    if (st != TD_OK) tdi_model_free(inner);
    return st;
}

void td_model_free(td_model *m)
{
    if (m == NULL) return;
    tdi_errslot_destroy(&m->err);
    tdi_model *inner = m->m;
    td_allocator a = inner->alloc;
    tdi_free(&a, m->tokenizer);
    tdi_free(&a, m);
    tdi_model_free(inner);
}

size_t td_model_errmsg(const td_model *m, char *buf, size_t cap)
{
    return tdi_errslot_copy(m != NULL ? &m->err : NULL, buf, cap);
}

td_status td_model_get_config(const td_model *m, td_model_config *cfg)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(cfg);
    TDI_TRY(tdi_struct_size_check(cfg->struct_size, MODEL_CONFIG_V1, __func__, "cfg"));
    td_model_config c = public_config(&m->m->cfg);
    tdi_struct_out(cfg, cfg->struct_size, &c, sizeof c);
    return TD_OK;
}

td_status td_model_checksum(const td_model *m, uint32_t *checksum)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(checksum);
    *checksum = tdi_crc32(0, m->m->params, m->m->n_floats * sizeof(float));
    return TD_OK;
}

td_status td_model_num_params(const td_model *m, uint64_t *n_params)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(n_params);
    *n_params = m->m->n_params;
    return TD_OK;
}

td_status tdi_check_ids(const int32_t *ids, size_t n, int32_t vocab, const char *func)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return tdi_fail(TD_ERR_INVALID_ARG, "%s: ids[%zu] = %d is outside [0, %d)", func, i,
                            (int)ids[i], (int)vocab);
    return TD_OK;
}

td_status td_model_logits(const td_model *m, const int32_t *ids, int32_t batch, int32_t seq_len,
                          int32_t n_threads, float *logits)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(ids);
    TDI_CHECK_PTR(logits);
    const tdi_model *im = m->m;
    TDI_CHECK_ARG(batch >= 1 && batch <= INT32_MAX / im->cfg.max_seq_len,
                  "%s: batch = %d is outside [1, %d]", __func__, (int)batch,
                  (int)(INT32_MAX / im->cfg.max_seq_len));
    TDI_CHECK_ARG(seq_len >= 1 && seq_len <= im->cfg.max_seq_len,
                  "%s: seq_len = %d is outside [1, max_seq_len = %d]", __func__, (int)seq_len,
                  (int)im->cfg.max_seq_len);
    TDI_CHECK_ARG(n_threads >= 1 && n_threads <= 1024,
                  "%s: n_threads = %d is outside [1, 1024]", __func__, (int)n_threads);
    int32_t n = batch * seq_len;
    TDI_TRY(tdi_check_ids(ids, (size_t)n, im->cfg.vocab_size, __func__));
    /* Rows are produced in chunks so that the scratch stays small. The
     * threads live for this call only: no handle keeps them. */
    tdi_workspace *ws = NULL;
    tdi_pool *pool = NULL;
    int32_t *rows = NULL;
    td_status st = tdi_workspace_create(im, batch, seq_len, seq_len, n_threads, 0, &ws);
    if (st == TD_OK) st = tdi_pool_create(&im->alloc, n_threads, &pool);
    if (st == TD_OK) {
        rows = tdi_malloc(&im->alloc, sizeof *rows * (size_t)seq_len);
        if (rows == NULL) st = tdi_nomem(__func__, sizeof *rows * (size_t)seq_len);
    }
    if (st == TD_OK) st = tdi_model_forward(im, ws, ids, batch, seq_len, NULL, pool);
    for (int32_t b = 0; st == TD_OK && b < batch; b++) {
        for (int32_t i = 0; i < seq_len; i++) rows[i] = b * seq_len + i;
        tdi_model_logits(im, ws, rows, seq_len,
                         logits + (size_t)b * seq_len * (size_t)im->cfg.vocab_size, pool);
    }
    tdi_free(&im->alloc, rows);
    tdi_pool_free(pool);
    tdi_workspace_free(ws);
    return st;
}
