/* safetensors files (Hugging Face): an 8-byte little-endian header length,
 * a JSON header naming each tensor's dtype, shape and byte range in the data
 * that follows, then the data (docs/hf.md, "safetensors").
 *
 * Reading: F32, F16 and BF16 tensors, little-endian. The file is mapped, not
 * read; a tensor's bytes are read where they lie (tdi_st_f32_view gives an
 * F32 tensor's floats in place when they are aligned). Every field is
 * validated: the header length against the file, the JSON, each dtype,
 * shape and byte range (inside the data, no two tensors overlapping, the
 * data covered exactly as the format requires), every name unique. The
 * header is parsed with cJSON, whose allocations go to malloc and are freed
 * before the parse returns; everything kept is copied into the handle's
 * allocator.
 *
 * Writing: F32 only, through tdi_st_write (atomic, lib/io/checkpoint.h). */
#ifndef TDI_SAFETENSORS_H
#define TDI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"
#include "util/mmap.h"

typedef enum tdi_st_dtype { TDI_ST_F32 = 0, TDI_ST_F16 = 1, TDI_ST_BF16 = 2 } tdi_st_dtype;

#define TDI_ST_MAX_DIMS 8
/* Longest header accepted (the format's own reader stops at 100 MB). */
#define TDI_ST_MAX_HEADER ((uint64_t)100 << 20)
#define TDI_ST_MAX_NAME 1024

typedef struct tdi_st_tensor {
    char *name;
    tdi_st_dtype dtype;
    uint32_t ndim;
    uint64_t dims[TDI_ST_MAX_DIMS];
    uint64_t count;             /* elements */
    uint64_t begin, end;        /* byte range in the data section */
    const unsigned char *data;  /* the bytes, inside the file */
    int used;                   /* free for the caller (the HF loader marks tensors) */
} tdi_st_tensor;

typedef struct tdi_st {
    td_allocator alloc;
    tdi_mapping map;            /* the file, when opened from a path */
    tdi_st_tensor *tensors;     /* sorted by name */
    uint32_t n;
    char *names;                /* one block for every name */
} tdi_st;

/* Parse a file already in memory (borrowed: it must outlive *out). */
td_status tdi_st_parse(const void *buf, size_t size, const td_allocator *alloc, tdi_st **out);
/* Map and parse a file (TD_ERR_IO when it cannot be opened). */
td_status tdi_st_open(const char *path, const td_allocator *alloc, tdi_st **out);
void tdi_st_free(tdi_st *st);

/* The tensor with this name, or NULL. */
tdi_st_tensor *tdi_st_find(const tdi_st *st, const char *name);

/* The elements [0, count) of t as float32 into dst (F16 and BF16 widened
 * exactly). Returns the index of the first non-finite value, or count. */
uint64_t tdi_st_read_f32(const tdi_st_tensor *t, float *dst);

/* An F32 tensor's floats where they lie in the file, when it is F32, the
 * host little-endian and the bytes aligned for float; NULL otherwise. */
const float *tdi_st_f32_view(const tdi_st_tensor *t);

/* One tensor to write: name, shape and float32 data. */
typedef struct tdi_st_out {
    const char *name;
    uint32_t ndim;
    uint64_t dims[2];
    const float *data;
} tdi_st_out;

/* Write `n` F32 tensors to `path` atomically, in this order. */
td_status tdi_st_write(const char *path, const tdi_st_out *t, size_t n,
                       const td_allocator *alloc);

#endif
