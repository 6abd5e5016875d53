/* Checkpoint files (docs/format.md): typed key/value metadata plus named
 * tensors, written atomically, read as untrusted input.
 *
 * The container knows nothing about models: the model, trainer and tokenizer
 * put their own keys and tensors. A writer collects metadata (copied) and
 * tensor references (not copied: the data is streamed from the caller's
 * buffers when a write call runs). A reader parses a whole file or buffer,
 * validates it and owns decoded copies of everything, except the tensors it
 * borrows from a buffer that outlives it (tdi_ckpt_read_borrowed).
 *
 * All memory goes through the allocator given at creation, zlib's included.
 * A handle is used by one thread at a time; a reader is read-only after
 * creation and may be shared. */
#ifndef TDI_CHECKPOINT_H
#define TDI_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

/* Format version this code writes and fully understands. */
#define TDI_CKPT_MAJOR 1
#define TDI_CKPT_MINOR 0
/* A file with a bf16 or q8_0 tensor is written as major 2 (docs/format.md
 * "Versions"): the same layout, two more dtypes. This reader reads both. */
#define TDI_CKPT_MAJOR_QUANT 2

/* Limits (docs/format.md#limits). */
#define TDI_CKPT_MAX_DIMS 4
#define TDI_CKPT_MAX_NAME 255                       /* keys and tensor names */
#define TDI_CKPT_MAX_META 65536u                    /* metadata entries */
#define TDI_CKPT_MAX_META_BYTES (64ull << 20)       /* metadata section, raw */
#define TDI_CKPT_MAX_STRING (16ull << 20)           /* bytes */
#define TDI_CKPT_MAX_ARRAY (1ull << 21)             /* elements */
#define TDI_CKPT_MAX_TENSORS 1048576u
#define TDI_CKPT_MAX_DIR_BYTES (512ull << 20)       /* directory section, raw */
#define TDI_CKPT_MAX_DATA_BYTES (1ull << 40)        /* all tensors, raw */
#define TDI_CKPT_MAX_FILE_BYTES (1ull << 41)

typedef enum tdi_dtype {
    TDI_DTYPE_F32 = 1,
    TDI_DTYPE_F64 = 2,
    TDI_DTYPE_I32 = 3,
    TDI_DTYPE_I64 = 4,
    TDI_DTYPE_U8 = 5,
    TDI_DTYPE_U64 = 6,
    TDI_DTYPE_BF16 = 7, /* major 2 */
    TDI_DTYPE_Q8_0 = 8  /* major 2: blocks of 32 elements, each an f32 scale and 32 i8 */
} tdi_dtype;

typedef enum tdi_meta_type {
    TDI_META_I64 = 1,
    TDI_META_U64 = 2,
    TDI_META_F64 = 3,
    TDI_META_STRING = 4,
    TDI_META_I64_ARRAY = 5,
    TDI_META_U64_ARRAY = 6,
    TDI_META_F64_ARRAY = 7
} tdi_meta_type;

/* Bytes per element — per block of tdi_dtype_block elements for q8_0 —;
 * 0 for a value that is not a tdi_dtype. */
size_t tdi_dtype_size(uint32_t dtype);
/* Elements per block: 32 for q8_0 (a tensor's last dimension must be a
 * multiple of it), 1 for the others. */
uint32_t tdi_dtype_block(uint32_t dtype);
/* "f32", ...; "unknown" otherwise. Likewise for metadata types. */
const char *tdi_dtype_name(uint32_t dtype);
const char *tdi_meta_type_name(uint32_t type);

/* ---------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------- */
typedef struct tdi_ckpt_writer tdi_ckpt_writer;

/* Compress this tensor with zlib (at the writer's level; ignored at level 0).
 * Float weights shrink little; leaving them stored keeps them mappable. */
#define TDI_CKPT_COMPRESS 1u

/* alloc: NULL for the C library. The new writer compresses the metadata and
 * directory sections at zlib level 6. */
td_status tdi_ckpt_writer_create(const td_allocator *alloc, tdi_ckpt_writer **out);
void tdi_ckpt_writer_free(tdi_ckpt_writer *w);

/* zlib level 0..9 for the metadata and directory sections and for tensors
 * added with TDI_CKPT_COMPRESS; 0 stores everything uncompressed. */
td_status tdi_ckpt_writer_set_level(tdi_ckpt_writer *w, int level);

/* Metadata. Keys are 1..255 bytes; a key may be used once (a duplicate is
 * reported by the write call). Values are copied. Arrays of n = 0 are
 * allowed (then the pointer may be NULL). Strings are NUL-terminated. */
td_status tdi_ckpt_put_i64(tdi_ckpt_writer *w, const char *key, int64_t v);
td_status tdi_ckpt_put_u64(tdi_ckpt_writer *w, const char *key, uint64_t v);
td_status tdi_ckpt_put_f64(tdi_ckpt_writer *w, const char *key, double v);
td_status tdi_ckpt_put_string(tdi_ckpt_writer *w, const char *key, const char *s);
td_status tdi_ckpt_put_i64_array(tdi_ckpt_writer *w, const char *key, const int64_t *v,
                                 size_t n);
td_status tdi_ckpt_put_u64_array(tdi_ckpt_writer *w, const char *key, const uint64_t *v,
                                 size_t n);
td_status tdi_ckpt_put_f64_array(tdi_ckpt_writer *w, const char *key, const double *v,
                                 size_t n);

/* A tensor of `ndim` (0..4) dims, each ≥ 1, row-major elements of `dtype` in
 * host byte order at `data` (any alignment). The name is copied; the data is
 * NOT: it must stay valid and unchanged until the last write call. Tensors
 * are stored in the order they are added. flags: 0 or TDI_CKPT_COMPRESS. */
td_status tdi_ckpt_add_tensor(tdi_ckpt_writer *w, const char *name, tdi_dtype dtype,
                              uint32_t ndim, const uint64_t *dims, const void *data,
                              uint32_t flags);

/* Write atomically to `path` (docs/format.md#atomic-writes). On failure an
 * existing file at `path` is untouched and no temporary file remains. */
td_status tdi_ckpt_write_file(tdi_ckpt_writer *w, const char *path);

/* Write to a new buffer from the writer's allocator; release it with
 * tdi_free() and that allocator (tdi_ckpt_writer_allocator()). */
td_status tdi_ckpt_write_memory(tdi_ckpt_writer *w, void **buf, size_t *size);
const td_allocator *tdi_ckpt_writer_allocator(const tdi_ckpt_writer *w);

/* ---------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------- */
typedef struct tdi_ckpt tdi_ckpt;

typedef struct tdi_ckpt_tensor {
    const char *name;                 /* NUL-terminated */
    tdi_dtype dtype;
    uint32_t ndim;
    uint64_t dims[TDI_CKPT_MAX_DIMS]; /* dims[i] = 1 for i >= ndim */
    uint64_t count;                   /* elements: the product of dims */
    size_t nbytes;                    /* count * tdi_dtype_size(dtype) */
    const void *data;                 /* 64-byte aligned, host byte order (borrowed:
                                       * inside the caller's buffer) */
} tdi_ckpt_tensor;

/* Parse and validate a whole checkpoint; *out is NULL on failure. The
 * buffer is only read during the call. */
td_status tdi_ckpt_read_file(const td_allocator *alloc, const char *path, tdi_ckpt **out);
td_status tdi_ckpt_read_memory(const td_allocator *alloc, const void *buf, size_t size,
                               tdi_ckpt **out);
void tdi_ckpt_free(tdi_ckpt *c);

/* The same for a buffer that outlives the reader (a mapped file): on a
 * little-endian host the data of a tensor stored uncompressed is not copied
 * but points into buf, once its CRC has matched (aligned as buf + its file
 * offset, a multiple of 64). Compressed tensors are decoded as usual. `name`
 * names the buffer in messages (NULL: "<memory>"). */
td_status tdi_ckpt_read_borrowed(const td_allocator *alloc, const void *buf, size_t size,
                                 const char *name, tdi_ckpt **out);

/* The one block holding every tensor that was decoded rather than borrowed
 * (each at a multiple of 64 bytes from its start, in file order), or NULL.
 * take hands it to the caller, who frees it with tdi_free() and the reader's
 * allocator; the tensors' data pointers into it stay valid while the caller
 * keeps it. */
const void *tdi_ckpt_data(const tdi_ckpt *c);
void *tdi_ckpt_take_data(tdi_ckpt *c);

/* The file's format version (the minor may be newer than TDI_CKPT_MINOR). */
void tdi_ckpt_version(const tdi_ckpt *c, uint32_t *major, uint32_t *minor);

/* Metadata, in file order. tdi_ckpt_meta_type() is 0 when the key is absent
 * (no error is set), else the stored type (possibly one this code does not
 * know, from a newer minor). */
size_t tdi_ckpt_meta_count(const tdi_ckpt *c);
const char *tdi_ckpt_meta_key(const tdi_ckpt *c, size_t i);   /* NULL if out of range */
uint32_t tdi_ckpt_meta_type(const tdi_ckpt *c, const char *key);

/* Typed getters: TD_ERR_FORMAT, with a message naming the key, when the key
 * is absent or holds another type. Pointers stay valid until
 * tdi_ckpt_free(); strings are NUL-terminated (len may be NULL); arrays are
 * 8-byte aligned and may be NULL when n is 0. */
td_status tdi_ckpt_get_i64(const tdi_ckpt *c, const char *key, int64_t *v);
td_status tdi_ckpt_get_u64(const tdi_ckpt *c, const char *key, uint64_t *v);
td_status tdi_ckpt_get_f64(const tdi_ckpt *c, const char *key, double *v);
td_status tdi_ckpt_get_string(const tdi_ckpt *c, const char *key, const char **s,
                              size_t *len);
td_status tdi_ckpt_get_i64_array(const tdi_ckpt *c, const char *key, const int64_t **v,
                                 size_t *n);
td_status tdi_ckpt_get_u64_array(const tdi_ckpt *c, const char *key, const uint64_t **v,
                                 size_t *n);
td_status tdi_ckpt_get_f64_array(const tdi_ckpt *c, const char *key, const double **v,
                                 size_t *n);

/* Tensors, in file order. tdi_ckpt_tensor_at/_find return NULL when out of
 * range or absent (no error is set); tdi_ckpt_tensor_get reports an absent
 * tensor or another dtype as TD_ERR_FORMAT. */
size_t tdi_ckpt_tensor_count(const tdi_ckpt *c);
const tdi_ckpt_tensor *tdi_ckpt_tensor_at(const tdi_ckpt *c, size_t i);
const tdi_ckpt_tensor *tdi_ckpt_tensor_find(const tdi_ckpt *c, const char *name);
td_status tdi_ckpt_tensor_get(const tdi_ckpt *c, const char *name, tdi_dtype dtype,
                              const tdi_ckpt_tensor **out);

/* Write the concatenation of parts[0..n_parts) (sizes[i] bytes each) to
 * `path` atomically, as tdi_ckpt_write_file does: a temporary file in the
 * same directory, fsync, rename; on failure `path` is untouched. */
td_status tdi_write_atomic(const td_allocator *a, const char *path, const void *const *parts,
                           const size_t *sizes, size_t n_parts);

#endif
