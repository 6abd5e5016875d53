/* Byte layout of checkpoint files and the helpers the reader and the writer
 * share. The offsets below are those of docs/format.md; keep them in step. */
#ifndef TDI_CHECKPOINT_FORMAT_H
#define TDI_CHECKPOINT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "io/checkpoint.h"

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

/* Streaming granularity of both directions: a multiple of every dtype size. */
#define TDI_CKPT_CHUNK (64u << 10)

/* Little-endian fields, whatever the host's byte order. */
static inline void tdi_le_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void tdi_le_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void tdi_le_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t tdi_le_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t tdi_le_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint64_t tdi_le_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint64_t tdi_align64(uint64_t x)
{
    return (x + (TDI_CKPT_ALIGN - 1)) & ~(uint64_t)(TDI_CKPT_ALIGN - 1);
}

/* CRC-32 for lengths beyond zlib's uInt. */
uint32_t tdi_crc32(uint32_t crc, const void *p, size_t n);

/* Convert n bytes of elements of `elem` bytes (1, 4, 8) between host order
 * and little-endian; `src` may be unaligned and may equal `dst`. The same
 * function goes both ways: it is a byte swap on a big-endian host and a copy
 * on a little-endian one. */
void tdi_le_convert(void *dst, const void *src, size_t n, size_t elem);

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
