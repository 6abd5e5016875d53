/* Little-endian fields, whatever the host's byte order: the files the
 * library writes (checkpoints, tokenizer descriptions) are little-endian and
 * are encoded byte by byte, never as a struct. */
#ifndef TDI_ENDIAN_H
#define TDI_ENDIAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* 1 on a little-endian host (folded to a constant by the compiler). */
static inline int tdi_host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char low;
    memcpy(&low, &one, 1);
    return low == 1;
}

/* Convert n bytes of elements of `elem` bytes (1, 4, 8) between host order
 * and little-endian; `src` may be unaligned and may equal `dst`. The same
 * function goes both ways: it is a byte swap on a big-endian host and a copy
 * on a little-endian one. */
void tdi_le_convert(void *dst, const void *src, size_t n, size_t elem);

#endif
