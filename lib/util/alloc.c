#include "util/alloc.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

static void *libc_malloc(void *user, size_t size) { (void)user; return malloc(size); }
static void *libc_realloc(void *user, void *p, size_t size) { (void)user; return realloc(p, size); }
static void libc_free(void *user, void *p) { (void)user; free(p); }

td_status tdi_allocator_init(td_allocator *dst, const td_allocator *src)
{
    if (src == NULL) {
        dst->malloc_fn = libc_malloc;
        dst->realloc_fn = libc_realloc;
        dst->free_fn = libc_free;
        dst->user = NULL;
        return TD_OK;
    }
    if (!src->malloc_fn || !src->realloc_fn || !src->free_fn)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "allocator: malloc_fn, realloc_fn and free_fn must all be set");
    *dst = *src;
    return TD_OK;
}

/* Layout: [raw ... pad][offset byte][aligned user block]. The byte before
 * the user block holds its distance from `raw` (1..TDI_ALIGN). */
static unsigned char *aligned_in(unsigned char *raw)
{
    uintptr_t p = ((uintptr_t)raw + TDI_ALIGN) & ~(uintptr_t)(TDI_ALIGN - 1);
    return (unsigned char *)p;
}

static unsigned char *align_block(unsigned char *raw)
{
    unsigned char *user = aligned_in(raw);
    user[-1] = (unsigned char)(user - raw);
    return user;
}

void *tdi_malloc(const td_allocator *a, size_t size)
{
    if (size > (size_t)-1 - TDI_ALIGN) return NULL;
    unsigned char *raw = a->malloc_fn(a->user, size + TDI_ALIGN);
    return raw ? align_block(raw) : NULL;
}

void *tdi_calloc(const td_allocator *a, size_t count, size_t size)
{
    size_t n;
    if (!tdi_mul_size(count, size, &n)) return NULL;
    void *p = tdi_malloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void *tdi_realloc(const td_allocator *a, void *ptr, size_t size)
{
    if (ptr == NULL) return tdi_malloc(a, size);
    if (size > (size_t)-1 - TDI_ALIGN) return NULL;
    unsigned char *user = ptr;
    size_t old_off = user[-1];
    unsigned char *raw = a->realloc_fn(a->user, user - old_off, size + TDI_ALIGN);
    if (raw == NULL) return NULL;
    /* The new raw block may sit at a different alignment: move the data. */
    unsigned char *moved = raw + old_off;
    unsigned char *aligned = aligned_in(raw);
    if (aligned != moved) memmove(aligned, moved, size);
    aligned[-1] = (unsigned char)(aligned - raw);
    return aligned;
}

void tdi_free(const td_allocator *a, void *ptr)
{
    if (ptr == NULL) return;
    unsigned char *user = ptr;
    a->free_fn(a->user, user - user[-1]);
}

td_status tdi_nomem(const char *func, size_t size)
{
    return tdi_fail(TD_ERR_NOMEM, "%s: cannot allocate %zu bytes", func, size);
}

void *tdi_carve(tdi_carver *c, size_t count, size_t size)
{
    size_t n;
    if (c->overflow || !tdi_mul_size(count, size, &n) || n > (size_t)-1 / 2 - c->used) {
        c->overflow = 1;
        return NULL;
    }
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (n + TDI_ALIGN - 1) / TDI_ALIGN * TDI_ALIGN;
    return p;
}

td_status tdi_carve_block(const td_allocator *a, void (*layout)(void *obj, tdi_carver *c),
                          void *obj, void **block, const char *func)
{
    tdi_carver c = { NULL, 0, 0 };
    *block = NULL;
    layout(obj, &c);
    if (c.overflow)
        return tdi_fail(TD_ERR_NOMEM, "%s: scratch size overflows the address space", func);
    unsigned char *base = tdi_malloc(a, c.used ? c.used : 1);
    if (base == NULL) return tdi_nomem(func, c.used);
    tdi_carver fill = { base, 0, 0 };
    layout(obj, &fill);
    *block = base;
    return TD_OK;
}
