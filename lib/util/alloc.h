/* Internal allocation through the host's hooks. Every block is 64-byte
 * aligned (cache line, AVX-512 width) and can be grown with tdi_realloc. */
#ifndef TDI_ALLOC_H
#define TDI_ALLOC_H

#include "textdiff/textdiff.h"

#define TDI_ALIGN 64

/* Copy `src` (NULL: the C library) into `dst`; rejects partial hook sets. */
td_status tdi_allocator_init(td_allocator *dst, const td_allocator *src);

/* These return NULL on failure (and on overflow) without setting a message;
 * the caller reports TD_ERR_NOMEM with context via tdi_nomem(). */
void *tdi_malloc(const td_allocator *a, size_t size);
void *tdi_calloc(const td_allocator *a, size_t count, size_t size);
void *tdi_realloc(const td_allocator *a, void *ptr, size_t size);
void tdi_free(const td_allocator *a, void *ptr);

td_status tdi_nomem(const char *func, size_t size);

/* Carving one allocation into 64-byte-aligned pieces: run a layout function
 * twice, first with base == NULL to measure (`used` bytes), then on the
 * block. Overflow is sticky: check `overflow` after measuring. */
typedef struct tdi_carver {
    unsigned char *base;
    size_t used;
    int overflow;
} tdi_carver;

/* The next piece of count * size bytes (NULL while measuring). */
void *tdi_carve(tdi_carver *c, size_t count, size_t size);

/* Measure with `layout`, allocate, lay out again: *block is the allocation
 * (NULL and TD_ERR_NOMEM on failure; the message names func). */
td_status tdi_carve_block(const td_allocator *a, void (*layout)(void *obj, tdi_carver *c),
                          void *obj, void **block, const char *func);

/* a * b without overflow: returns 0 and leaves *out alone on overflow. */
static inline int tdi_mul_size(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > (size_t)-1 / b) return 0;
    *out = a * b;
    return 1;
}

#endif
