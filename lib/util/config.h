/* The struct_size protocol of public structs (docs/abi.md).
 *
 * Every public struct begins with `uint32_t struct_size`, has no padding, and
 * grows only at its end, in units of 8 bytes. So any size that is a multiple
 * of 8 and at least the 1.0 size ends on a field boundary, and:
 *  - a struct the caller passes in (a config) is read for min(caller's size,
 *    ours) bytes; fields the caller lacks keep their defaults; bytes the
 *    caller has beyond ours must be zero (a newer program asking for a knob
 *    this library does not know is refused, not ignored);
 *  - a struct the library fills (defaults, a handle's config, results) gets
 *    min(caller's size, ours) bytes, and its struct_size is set to that
 *    count, so the caller sees which fields were written. Nothing outside
 *    the caller's struct is ever read or written. */
#ifndef TDI_CONFIG_H
#define TDI_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"

/* No public struct will ever be this large: a bigger struct_size is garbage
 * (an uninitialised field), not a future version. */
#define TDI_STRUCT_MAX 4096u

/* `size` as the caller's struct_size of `what`, whose 1.0 size is min_size. */
static inline td_status tdi_struct_size_check(uint32_t size, size_t min_size, const char *func,
                                              const char *what)
{
    if (size < min_size || size % 8 != 0 || size > TDI_STRUCT_MAX)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "%s: %s->struct_size is %u; it must be sizeof the struct (at least "
                        "%zu, a multiple of 8): set it with sizeof, or use the _default "
                        "function", func, what, (unsigned)size, min_size);
    return TD_OK;
}

/* Read the caller's struct `src` over `dst` (lib_size bytes, holding the
 * defaults). */
static inline td_status tdi_struct_in(void *dst, size_t lib_size, const void *src,
                                      size_t min_size, const char *func, const char *what)
{
    uint32_t size;
    memcpy(&size, src, sizeof size);
    TDI_TRY(tdi_struct_size_check(size, min_size, func, what));
    const unsigned char *tail = (const unsigned char *)src;
    for (size_t i = lib_size; i < size; i++)
        if (tail[i] != 0)
            return tdi_fail(TD_ERR_VERSION,
                            "%s: %s sets a field at byte %zu, beyond the %zu bytes this "
                            "library knows: the program was built against a newer libtextdiff",
                            func, what, i, lib_size);
    memcpy(dst, src, size < lib_size ? size : lib_size);
    memcpy(dst, &(uint32_t){ (uint32_t)lib_size }, sizeof(uint32_t));
    return TD_OK;
}

/* Write `src` (lib_size bytes, the library's full struct) into the caller's
 * struct `dst` of `caller_size` bytes, already checked with
 * tdi_struct_size_check. */
static inline void tdi_struct_out(void *dst, uint32_t caller_size, const void *src,
                                  size_t lib_size)
{
    uint32_t n = caller_size < lib_size ? caller_size : (uint32_t)lib_size;
    memcpy(dst, src, n);
    memcpy(dst, &n, sizeof n);
}

/* A _config_init(cfg, size) body: check `size`, then write `full`. */
static inline td_status tdi_struct_init(void *dst, size_t size, const void *full,
                                        size_t lib_size, size_t min_size, const char *func)
{
    if (dst == NULL) return tdi_fail(TD_ERR_INVALID_ARG, "%s: cfg is NULL", func);
    if (size > TDI_STRUCT_MAX) size = TDI_STRUCT_MAX + 1; /* rejected below */
    TDI_TRY(tdi_struct_size_check((uint32_t)size, min_size, func, "cfg"));
    tdi_struct_out(dst, (uint32_t)size, full, lib_size);
    return TD_OK;
}

#endif
