/* safetensors reading and writing (safetensors.h, docs/hf.md). */
#include "io/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/checkpoint.h"
#include "io/checkpoint_format.h"
#include "util/alloc.h"
#include "util/endian.h"
#include "util/error.h"

static const char *const dtype_names[] = { "F32", "F16", "BF16" };
static const unsigned dtype_sizes[] = { 4, 2, 2 };

/* Every other dtype of the format, named in the message as unsupported
 * rather than unknown. */
static const char *const other_dtypes[] = { "F64", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16",
                                            "I8",  "U64",     "U32",     "U16", "U8",  "BOOL" };

static td_status bad(const char *what, const char *fmt, const char *name)
{
    return tdi_fail(TD_ERR_FORMAT, "safetensors header: tensor '%.200s': %s%s", name, what,
                    fmt ? fmt : "");
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int get_u64(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

static td_status parse_entry(const cJSON *e, tdi_st_tensor *t, uint64_t data_size)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return bad("not an object", NULL, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return bad("no string 'dtype'", NULL, name);
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(dt->valuestring, dtype_names[i]) == 0) k = i;
    if (k < 0) {
        for (size_t i = 0; i < sizeof other_dtypes / sizeof *other_dtypes; i++)
            if (strcmp(dt->valuestring, other_dtypes[i]) == 0)
                return tdi_fail(TD_ERR_UNSUPPORTED, "safetensors: tensor '%.200s' has dtype %s; "
                                "only F32, F16 and BF16 are read", name, other_dtypes[i]);
        return bad("unknown dtype ", dt->valuestring, name);
    }
    t->dtype = (tdi_st_dtype)k;
    if (!cJSON_IsArray(shape)) return bad("no array 'shape'", NULL, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > TDI_ST_MAX_DIMS) return bad("more than 8 dimensions", NULL, name);
    t->ndim = (uint32_t)nd;
    t->count = 1;
    const cJSON *x;
    int i = 0;
    cJSON_ArrayForEach(x, shape) {
        uint64_t v;
        if (!get_u64(x, &v)) return bad("a dimension is not a whole number >= 0", NULL, name);
        t->dims[i++] = v;
        if (v != 0 && t->count > UINT64_MAX / v) return bad("its size overflows", NULL, name);
        t->count *= v;
    }
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !get_u64(cJSON_GetArrayItem(offs, 0), &begin) ||
        !get_u64(cJSON_GetArrayItem(offs, 1), &end))
        return bad("'data_offsets' is not two whole numbers", NULL, name);
    if (t->count > UINT64_MAX / dtype_sizes[k]) return bad("its size overflows", NULL, name);
    uint64_t bytes = t->count * dtype_sizes[k];
    if (begin > end || end > data_size)
        return tdi_fail(TD_ERR_FORMAT, "safetensors: tensor '%.200s' lies at bytes %llu..%llu, "
                        "outside the %llu bytes of data", name, (unsigned long long)begin,
                        (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != bytes)
        return tdi_fail(TD_ERR_FORMAT, "safetensors: tensor '%.200s' has %llu bytes for a shape "
                        "of %llu %s elements", name, (unsigned long long)(end - begin),
                        (unsigned long long)t->count, dtype_names[k]);
    t->begin = begin;
    t->end = end;
    return TD_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tdi_st_tensor *)a)->name, ((const tdi_st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    const tdi_st_tensor *x = *(const tdi_st_tensor *const *)a, *y = *(const tdi_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The byte ranges tile the data exactly: sorted by start, each begins where
 * the previous ended (so none overlap), and the last ends at the end. */
static td_status check_layout(tdi_st *st, uint64_t data_size)
{
    if (st->n == 0) {
        if (data_size != 0)
            return tdi_fail(TD_ERR_FORMAT, "safetensors: %llu bytes of data and no tensor",
                            (unsigned long long)data_size);
        return TD_OK;
    }
    const tdi_st_tensor **order = tdi_malloc(&st->alloc, st->n * sizeof *order);
    if (!order) return tdi_nomem("tdi_st_parse", st->n * sizeof *order);
    for (uint32_t i = 0; i < st->n; i++) order[i] = &st->tensors[i];
    qsort(order, st->n, sizeof *order, by_begin);
    td_status rc = TD_OK;
    uint64_t at = 0;
    for (uint32_t i = 0; i < st->n && rc == TD_OK; i++) {
        const tdi_st_tensor *t = order[i];
        if (t->begin < at)
            rc = tdi_fail(TD_ERR_FORMAT, "safetensors: tensor '%.200s' (bytes %llu..%llu) "
                          "overlaps tensor '%.200s'", t->name, (unsigned long long)t->begin,
                          (unsigned long long)t->end, order[i - 1]->name);
        else if (t->begin > at)
            rc = tdi_fail(TD_ERR_FORMAT, "safetensors: bytes %llu..%llu of the data belong to "
                          "no tensor", (unsigned long long)at, (unsigned long long)t->begin);
        at = t->end;
    }
    if (rc == TD_OK && at != data_size)
        rc = tdi_fail(TD_ERR_FORMAT, "safetensors: bytes %llu..%llu of the data belong to no "
                      "tensor", (unsigned long long)at, (unsigned long long)data_size);
    tdi_free(&st->alloc, order);
    return rc;
}

/* The tensors of a parsed header into st (names into one block). */
static td_status take_entries(tdi_st *st, const cJSON *root, const unsigned char *data,
                              uint64_t data_size)
{
    const cJSON *e;
    size_t n = 0, name_bytes = 0;
    cJSON_ArrayForEach(e, root) {
        if (e->string == NULL) return tdi_fail(TD_ERR_FORMAT, "safetensors header: bad key");
        size_t len = strlen(e->string);
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e))
                return tdi_fail(TD_ERR_FORMAT, "safetensors header: __metadata__ is not an "
                                "object");
            continue;
        }
        if (len == 0 || len > TDI_ST_MAX_NAME)
            return tdi_fail(TD_ERR_FORMAT, "safetensors header: a tensor name of %zu bytes "
                            "(1..%d)", len, TDI_ST_MAX_NAME);
        n++;
        name_bytes += len + 1;
    }
    if (n > UINT32_MAX / 2) return tdi_fail(TD_ERR_FORMAT, "safetensors header: too many tensors");
    st->tensors = tdi_calloc(&st->alloc, n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) return tdi_nomem("tdi_st_parse", (n ? n : 1) * sizeof *st->tensors);
    st->names = tdi_malloc(&st->alloc, name_bytes ? name_bytes : 1);
    if (!st->names) return tdi_nomem("tdi_st_parse", name_bytes);
    char *np = st->names;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        tdi_st_tensor *t = &st->tensors[st->n];
        size_t len = strlen(e->string);
        memcpy(np, e->string, len + 1);
        t->name = np;
        np += len + 1;
        TDI_TRY(parse_entry(e, t, data_size));
        t->data = data + t->begin;
        st->n++;
    }
    qsort(st->tensors, st->n, sizeof *st->tensors, by_name);
    for (uint32_t i = 1; i < st->n; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return tdi_fail(TD_ERR_FORMAT, "safetensors header: tensor '%.200s' appears twice",
                            st->tensors[i].name);
    return check_layout(st, data_size);
}

static td_status parse(tdi_st *st, const unsigned char *p, size_t size)
{
    if (size < 8)
        return tdi_fail(TD_ERR_FORMAT, "safetensors: %zu bytes, shorter than the 8-byte header "
                        "length", size);
    uint64_t hlen = tdi_le_get64(p);
    if (hlen > size - 8)
        return tdi_fail(TD_ERR_FORMAT, "safetensors: the header length %llu runs past the end "
                        "of the %zu-byte file", (unsigned long long)hlen, size);
    if (hlen > TDI_ST_MAX_HEADER)
        return tdi_fail(TD_ERR_FORMAT, "safetensors: the header length %llu exceeds 100 MB",
                        (unsigned long long)hlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (root == NULL) {
        size_t at = end ? (size_t)(end - ((const char *)p + 8)) : 0;
        return tdi_fail(TD_ERR_FORMAT, "safetensors: the header is not valid JSON (at byte %zu "
                        "of %llu)", at, (unsigned long long)hlen);
    }
    /* Only spaces may follow the JSON value (writers pad the header). */
    size_t used = (size_t)(end - ((const char *)p + 8));
    td_status rc = TD_OK;
    for (size_t i = used; i < hlen && rc == TD_OK; i++)
        if (p[8 + i] != ' ')
            rc = tdi_fail(TD_ERR_FORMAT, "safetensors: bytes after the header's JSON value");
    if (rc == TD_OK && !cJSON_IsObject(root))
        rc = tdi_fail(TD_ERR_FORMAT, "safetensors: the header is not a JSON object");
    if (rc == TD_OK) rc = take_entries(st, root, p + 8 + hlen, size - 8 - hlen);
    cJSON_Delete(root);
    return rc;
}

td_status tdi_st_parse(const void *buf, size_t size, const td_allocator *alloc, tdi_st **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(buf != NULL || size == 0, "%s: buf is NULL", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_st *st = tdi_calloc(&a, 1, sizeof *st);
    if (!st) return tdi_nomem(__func__, sizeof *st);
    st->alloc = a;
    td_status rc = parse(st, buf, size);
    if (rc != TD_OK) {
        tdi_st_free(st);
        return rc;
    }
    *out = st;
    return TD_OK;
}

td_status tdi_st_open(const char *path, const td_allocator *alloc, tdi_st **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    tdi_mapping map;
    if (!tdi_map_file(path, &map)) {
        char eb[128];
        return tdi_fail(TD_ERR_IO, "'%s': cannot open and map it (%s; an empty file counts as "
                        "unreadable)", path, tdi_errno_text(errno, eb, sizeof eb));
    }
    td_status rc = tdi_st_parse(map.addr, map.size, alloc, out);
    if (rc != TD_OK) {
        tdi_unmap(&map);
        return tdi_fail_context(rc, "'%s'", path);
    }
    (*out)->map = map;
    return TD_OK;
}

void tdi_st_free(tdi_st *st)
{
    if (st == NULL) return;
    td_allocator a = st->alloc;
    tdi_unmap(&st->map);
    tdi_free(&a, st->names);
    tdi_free(&a, st->tensors);
    tdi_free(&a, st);
}

tdi_st_tensor *tdi_st_find(const tdi_st *st, const char *name)
{
    uint32_t lo = 0, hi = st->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* IEEE half to single, exactly (subnormals, infinities and NaN included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0x1F) {
        bits = sign | 0x7F800000u | (m << 13);
    } else if (e != 0) {
        bits = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        bits = sign;
    } else { /* subnormal: m · 2^-24 */
        float f = (float)m * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint64_t tdi_st_read_f32(const tdi_st_tensor *t, float *dst)
{
    const unsigned char *p = t->data;
    uint64_t bad_at = t->count;
    for (uint64_t i = 0; i < t->count; i++) {
        float f;
        if (t->dtype == TDI_ST_F32) {
            uint32_t b = tdi_le_get32(p + 4 * i);
            memcpy(&f, &b, sizeof f);
        } else if (t->dtype == TDI_ST_F16) {
            f = half_to_float(tdi_le_get16(p + 2 * i));
        } else {
            uint32_t b = (uint32_t)tdi_le_get16(p + 2 * i) << 16;
            memcpy(&f, &b, sizeof f);
        }
        if (!isfinite(f) && bad_at == t->count) bad_at = i;
        dst[i] = f;
    }
    return bad_at;
}

const float *tdi_st_f32_view(const tdi_st_tensor *t)
{
    if (t->dtype != TDI_ST_F32 || !tdi_host_is_little_endian() ||
        (uintptr_t)t->data % _Alignof(float) != 0)
        return NULL;
    return (const float *)(const void *)t->data;
}

/* ---- writing ------------------------------------------------------------- */

/* The header JSON, padded with spaces to a multiple of 8 bytes, into buf
 * (NULL: measure). Names are the library's own: checked to need no escape. */
static size_t header_json(char *buf, size_t cap, const tdi_st_out *t, size_t n)
{
    size_t len = 0;
    uint64_t off = 0;
#define PUT(...)                                                                       \
    do {                                                                               \
        int k_ = snprintf(buf ? buf + len : NULL, buf ? cap - len : 0, __VA_ARGS__);   \
        len += (size_t)k_;                                                             \
    } while (0)
    PUT("{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t count = t[i].dims[0] * (t[i].ndim == 2 ? t[i].dims[1] : 1);
        PUT(",\"%s\":{\"dtype\":\"F32\",\"shape\":[%llu", t[i].name,
            (unsigned long long)t[i].dims[0]);
        if (t[i].ndim == 2) PUT(",%llu", (unsigned long long)t[i].dims[1]);
        PUT("],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
            (unsigned long long)(off + 4 * count));
        off += 4 * count;
    }
    PUT("}");
#undef PUT
    while (len % 8 != 0) {
        if (buf) buf[len] = ' ';
        len++;
    }
    return len;
}

td_status tdi_st_write(const char *path, const tdi_st_out *t, size_t n,
                       const td_allocator *alloc)
{
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    if (!tdi_host_is_little_endian())
        return tdi_fail(TD_ERR_UNSUPPORTED, "safetensors: writing needs a little-endian host");
    for (size_t i = 0; i < n; i++)
        for (const char *c = t[i].name; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                return tdi_fail(TD_ERR_INTERNAL, "safetensors: tensor name needs escaping");
    size_t hlen = header_json(NULL, 0, t, n);
    size_t parts_n = n + 1;
    char *head = tdi_malloc(&a, 8 + hlen + 1);
    const void **parts = tdi_malloc(&a, parts_n * sizeof *parts);
    size_t *sizes = tdi_malloc(&a, parts_n * sizeof *sizes);
    td_status rc = TD_OK;
    if (!head || !parts || !sizes) {
        rc = tdi_nomem(__func__, 8 + hlen + 1 + parts_n * (sizeof *parts + sizeof *sizes));
    } else {
        tdi_le_put64((unsigned char *)head, hlen);
        header_json(head + 8, hlen + 1, t, n);
        parts[0] = head;
        sizes[0] = 8 + hlen;
        for (size_t i = 0; i < n; i++) {
            parts[i + 1] = t[i].data;
            sizes[i + 1] = 4 * (size_t)(t[i].dims[0] * (t[i].ndim == 2 ? t[i].dims[1] : 1));
        }
        rc = tdi_write_atomic(&a, path, (const void *const *)parts, sizes, parts_n);
    }
    tdi_free(&a, sizes);
    tdi_free(&a, parts);
    tdi_free(&a, head);
    return rc;
}
