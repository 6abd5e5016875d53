/* Model checkpoint sections, shared by td_model_save/load and the trainer's
 * resumable checkpoints. */
#ifndef TDI_MODEL_IO_H
#define TDI_MODEL_IO_H

#include "io/checkpoint.h"
#include "model/model_api.h"

/* Add the model (configuration, parameters, tokenizer) to a writer. */
td_status tdi_model_write(const td_model *m, tdi_ckpt_writer *w);

/* A new model from a parsed checkpoint; every field validated. */
td_status tdi_model_read(const tdi_ckpt *ck, const td_allocator *alloc, td_model **out);

/* The model configuration stored in a checkpoint, validated. */
td_status tdi_model_read_config(const tdi_ckpt *ck, tdi_model_config *c);

/* Copy the checkpoint's parameters into `m` (shapes must match exactly); on
 * failure `m` is unchanged. */
td_status tdi_model_read_params(const tdi_ckpt *ck, tdi_model *m);

#endif
