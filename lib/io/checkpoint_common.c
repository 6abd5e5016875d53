#include "io/checkpoint_format.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

_Static_assert(sizeof(float) == 4 && sizeof(double) == 8,
               "checkpoint tensors assume IEEE 754 binary32 and binary64");
_Static_assert(TDI_CKPT_CHUNK % 8 == 0 && TDI_CKPT_CHUNK % 36 == 0,
               "chunks hold whole elements and q8_0 blocks");

size_t tdi_dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case TDI_DTYPE_F32: return 4;
    case TDI_DTYPE_F64: return 8;
    case TDI_DTYPE_I32: return 4;
    case TDI_DTYPE_I64: return 8;
    case TDI_DTYPE_U8:  return 1;
    case TDI_DTYPE_U64: return 8;
    case TDI_DTYPE_BF16: return 2;
    case TDI_DTYPE_Q8_0: return 36;
    }
    return 0;
}

uint32_t tdi_dtype_block(uint32_t dtype)
{
    return dtype == TDI_DTYPE_Q8_0 ? 32 : 1;
}

const char *tdi_dtype_name(uint32_t dtype)
{
    switch (dtype) {
    case TDI_DTYPE_F32: return "f32";
    case TDI_DTYPE_F64: return "f64";
    case TDI_DTYPE_I32: return "i32";
    case TDI_DTYPE_I64: return "i64";
    case TDI_DTYPE_U8:  return "u8";
    case TDI_DTYPE_U64: return "u64";
    case TDI_DTYPE_BF16: return "bf16";
    case TDI_DTYPE_Q8_0: return "q8_0";
    }
    return "unknown";
}

const char *tdi_meta_type_name(uint32_t type)
{
    switch (type) {
    case TDI_META_I64:       return "i64";
    case TDI_META_U64:       return "u64";
    case TDI_META_F64:       return "f64";
    case TDI_META_STRING:    return "string";
    case TDI_META_I64_ARRAY: return "i64 array";
    case TDI_META_U64_ARRAY: return "u64 array";
    case TDI_META_F64_ARRAY: return "f64 array";
    }
    return "unknown";
}

const char *tdi_errno_text(int err, char *buf, size_t n)
{
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "error %d", err);
    return buf;
}

void *tdi_zalloc(void *opaque, unsigned items, unsigned size)
{
    size_t n;
    if (!tdi_mul_size(items, size, &n)) return NULL;
    return tdi_malloc(opaque, n);
}

void tdi_zfree(void *opaque, void *p)
{
    tdi_free(opaque, p);
}

int tdi_name_cmp(tdi_name a, tdi_name b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0) return c;
    return (a.len > b.len) - (a.len < b.len);
}

static void sift_down(uint32_t *ids, uint32_t root, uint32_t n, const tdi_name *names)
{
    for (;;) {
        uint64_t child = 2 * (uint64_t)root + 1;
        if (child >= n) return;
        uint32_t c = (uint32_t)child;
        if (c + 1 < n && tdi_name_cmp(names[ids[c]], names[ids[c + 1]]) < 0) c++;
        if (tdi_name_cmp(names[ids[root]], names[ids[c]]) >= 0) return;
        uint32_t t = ids[root];
        ids[root] = ids[c];
        ids[c] = t;
        root = c;
    }
}

void tdi_names_sort(uint32_t *ids, uint32_t n, const tdi_name *names)
{
    if (n < 2) return;
    for (uint32_t i = n / 2; i-- > 0;) sift_down(ids, i, n, names);
    for (uint32_t end = n - 1; end > 0; end--) {
        uint32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down(ids, 0, end, names);
    }
}

uint32_t tdi_names_find(const uint32_t *ids, uint32_t n, const tdi_name *names,
                        tdi_name key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = tdi_name_cmp(names[ids[mid]], key);
        if (c == 0) return ids[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return UINT32_MAX;
}

uint32_t tdi_names_duplicate(const uint32_t *ids, uint32_t n, const tdi_name *names)
{
    for (uint32_t i = 1; i < n; i++)
        if (tdi_name_cmp(names[ids[i - 1]], names[ids[i]]) == 0) return ids[i];
    return UINT32_MAX;
}
