/* Byte layout of checkpoint files and the helpers the reader and the writer
 * share. The offsets below are those of docs/format.md; keep them in step. */
#ifndef TDI_CHECKPOINT_FORMAT_H
#define TDI_CHECKPOINT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "io/checkpoint.h"
#include "util/crc32.h"
#include "util/endian.h"

#define TDI_CKPT_MAGIC "\x89TDC\r\n\x1a\n"
#define TDI_CKPT_MAGIC_LEN 8
#define TDI_CKPT_PREFIX_LEN 16   /* magic, major, minor, header_size */
#define TDI_CKPT_HEADER_SIZE 128 /* as written by 1.0 */
#define TDI_CKPT_MAX_HEADER 4096
#define TDI_CKPT_ALIGN 64        /* tensor data in the file */
#define TDI_CKPT_ZLIB_RATIO 1032 /* deflate's best case: 258 bytes per 2 bits */

/* Header fields. */
#define TDI_H_MAJOR 8
#define TDI_H_MINOR 10
#define TDI_H_HEADER_SIZE 12
#define TDI_H_FILE_SIZE 16
#define TDI_H_META_COUNT 24
#define TDI_H_TENSOR_COUNT 28
#define TDI_H_META 32
#define TDI_H_DIR 64

/* Section descriptor fields, relative to the descriptor. */
#define TDI_S_OFFSET 0
#define TDI_S_STORED 8
#define TDI_S_RAW 16
#define TDI_S_CRC 24
#define TDI_S_CODEC 28
#define TDI_S_SIZE 32

/* Directory entry fields. */
#define TDI_D_ENTRY_SIZE 0
#define TDI_D_NAME_LEN 4
#define TDI_D_DTYPE 6
#define TDI_D_NDIM 7
#define TDI_D_DIMS 8
#define TDI_D_OFFSET 40
#define TDI_D_STORED 48
#define TDI_D_RAW 56
#define TDI_D_CRC 64
#define TDI_D_CODEC 68
#define TDI_D_FIXED 72

/* Metadata entry fields. */
#define TDI_M_KEY_LEN 0
#define TDI_M_TYPE 2
#define TDI_M_VALUE_LEN 4
#define TDI_M_FIXED 8

#define TDI_CODEC_NONE 0
#define TDI_CODEC_ZLIB 1

/* Streaming granularity of both directions: a multiple of every dtype size
 * (q8_0's 36-byte block included). */
#define TDI_CKPT_CHUNK (72u << 10)

static inline uint64_t tdi_align64(uint64_t x)
{
    return (x + (TDI_CKPT_ALIGN - 1)) & ~(uint64_t)(TDI_CKPT_ALIGN - 1);
}

/* strerror() without its shared buffer (XSI strerror_r). */
const char *tdi_errno_text(int err, char *buf, size_t n);

/* zlib allocation through a td_allocator (the z_stream's opaque). */
void *tdi_zalloc(void *opaque, unsigned items, unsigned size);
void tdi_zfree(void *opaque, void *p);

/* Names (keys, tensor names) as byte ranges, sorted through an index so that
 * lookups and duplicate checks stay O(log n) on hostile input. */
typedef struct tdi_name {
    const char *p;
    size_t len;
} tdi_name;

int tdi_name_cmp(tdi_name a, tdi_name b);
/* Sort ids[0..n) by names[ids[i]] (heapsort: no allocation, no recursion). */
void tdi_names_sort(uint32_t *ids, uint32_t n, const tdi_name *names);
/* Position in names of `key`, or UINT32_MAX; ids sorted by tdi_names_sort. */
uint32_t tdi_names_find(const uint32_t *ids, uint32_t n, const tdi_name *names,
                        tdi_name key);
/* First name (an index into names) that occurs twice, or UINT32_MAX. */
uint32_t tdi_names_duplicate(const uint32_t *ids, uint32_t n, const tdi_name *names);

#endif
