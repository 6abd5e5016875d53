/* The public model handle: the network plus what travels with it in a
 * checkpoint (the tokenizer description). */
#ifndef TDI_MODEL_API_H
#define TDI_MODEL_API_H

#include "model/model.h"
#include "util/error.h"

struct td_model {
    tdi_errslot err;
    tdi_model *m;
    unsigned char *tokenizer;  /* serialised tokenizer description, or NULL */
    size_t tokenizer_size;
};

/* Take ownership of `inner` in a new handle (on failure `inner` is kept). */
td_status tdi_model_wrap(tdi_model *inner, td_model **out);

/* TD_ERR_INVALID_ARG naming the first id outside [0, vocab). */
td_status tdi_check_ids(const int32_t *ids, size_t n, int32_t vocab, const char *func);

#endif
