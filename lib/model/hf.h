/* Hugging Face models (docs/hf.md): the parts shared by the loader
 * (hf.c) and the config.json parser (hf_config.c, fuzzed on its own). */
#ifndef TDI_HF_H
#define TDI_HF_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef enum hf_kind { HF_BERT = 0, HF_ROBERTA = 1, HF_DISTILBERT = 2 } hf_kind;

/* The model configuration of config.json's text (len bytes, not necessarily
 * NUL-terminated) with [MASK] = mask_id, validated field by field
 * (TD_ERR_FORMAT, or TD_ERR_UNSUPPORTED for another architecture or
 * option). cJSON's allocations go to malloc and are freed before it
 * returns. */
td_status tdi_hf_parse_config(const char *text, size_t len, int32_t mask_id,
                              tdi_model_config *c, hf_kind *kind);

#endif
