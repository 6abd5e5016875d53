/* Versioned configuration structs (docs/api.md): the caller's struct begins
 * with its own size; fields beyond it keep their defaults. */
#ifndef TDI_CONFIG_H
#define TDI_CONFIG_H

#include <stdint.h>
#include <string.h>

#include "util/error.h"

/* Copy the caller's `src` (struct_size bytes) over `dst`, which holds the
 * defaults. `min_size` is the size of the first published version. */
static inline td_status tdi_config_copy(void *dst, size_t dst_size, const void *src,
                                        size_t min_size, const char *func)
{
    uint32_t size;
    memcpy(&size, src, sizeof size);
    if (size < min_size)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "%s: cfg->struct_size is %u, at least %zu expected "
                        "(initialise the struct with its _default function)",
                        func, (unsigned)size, min_size);
    if (size > dst_size)
        return tdi_fail(TD_ERR_VERSION,
                        "%s: cfg->struct_size %u is larger than this library's %zu: "
                        "the program was built against a newer libtextdiff",
                        func, (unsigned)size, dst_size);
    memcpy(dst, src, size);
    return TD_OK;
}

#endif
