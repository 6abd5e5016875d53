/* Model checkpoint sections, shared by td_model_save/load and the trainer's
 * resumable checkpoints. */
#ifndef TDI_MODEL_IO_H
#define TDI_MODEL_IO_H

#include "io/checkpoint.h"
#include "model/model_api.h"

/* The "format" key of a model checkpoint (td_model_save) and of a trainer
 * checkpoint (td_trainer_save); a model loads from either. */
#define TDI_FORMAT_MODEL "libtextdiff-model"
#define TDI_FORMAT_TRAINER "libtextdiff-trainer"

/* Add the model (format key, configuration, parameters, tokenizer) to a
 * writer. tensor_flags: 0 (stored, mappable) or TDI_CKPT_COMPRESS. */
td_status tdi_model_write(const td_model *m, tdi_ckpt_writer *w, const char *format,
                          uint32_t tensor_flags);

/* A new model from a parsed checkpoint; every field validated. When `map`
 * is the mapping `ck` was read from (tdi_ckpt_read_borrowed) and the file's
 * tensors form the model's buffer, the model takes the mapping over (*map is
 * emptied) and its parameters stay in it. Otherwise the reader's block of
 * decoded tensors becomes the buffer when it can (ck's tensors then point
 * into the model: free ck first or with it), or the tensors are copied.
 * `alloc` must be the reader's allocator. */
td_status tdi_model_read(tdi_ckpt *ck, const td_allocator *alloc, tdi_mapping *map,
                         td_model **out);

/* td_model_load, with the mapping allowed (try_map = 1) or not (0: the file
 * is read into memory, as when mapping is impossible). */
td_status tdi_model_load_file(const char *path, const td_allocator *alloc, int try_map,
                              td_model **out);

/* The key of a reduced-precision model's dtype (i64, TDI_WT_*; absent:
 * f32), docs/format.md "Model checkpoints". */
#define TDI_MODEL_DTYPE_KEY "model.dtype"

/* The dtype a checkpoint's model is stored in (TD_ERR_FORMAT if invalid). */
td_status tdi_model_read_dtype(const tdi_ckpt *ck, int32_t *dtype);

/* The model configuration stored in a checkpoint, validated. */
td_status tdi_model_read_config(const tdi_ckpt *ck, tdi_model_config *c);

/* The checkpoint holds every tensor of `m` in its dtype (tdi_tensor.dtype:
 * f32, bf16 or q8_0) and of the right shape, all values (q8_0: scales) finite (TD_ERR_FORMAT or TD_ERR_CORRUPT naming the tensor). */
td_status tdi_model_check_params(const tdi_ckpt *ck, const tdi_model *m);

/* The checkpoint's tokenizer, if it has one, is valid and matches `c`
 * (TD_ERR_FORMAT otherwise). */
td_status tdi_model_check_tokenizer(const tdi_ckpt *ck, const tdi_model_config *c,
                                    const td_allocator *alloc);

/* Copy the checkpoint's parameters into `m` after checking them as above;
 * on failure `m` is unchanged. */
td_status tdi_model_read_params(const tdi_ckpt *ck, tdi_model *m);

#endif
