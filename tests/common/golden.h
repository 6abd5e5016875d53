/* Reader for the TDGV reference-vector files in tests/golden/ (the format is
 * described in tests/golden/README.md). Header-only, for tests.
 *
 *   char err[256];
 *   golden_file *g = golden_load(GOLDEN_DIR "/rope_pre_tied.tdgv", err, sizeof err);
 *   const golden_array *a = golden_find(g, "0.qkv.w");   // dims, dtype, data
 *   const float *w = golden_f32(g, "0.qkv.w");           // NULL unless f32
 *   golden_free(g);
 *
 * The files are treated as untrusted: every length is checked against what is
 * left of the file, a CRC32 covers everything, and a bad file gives NULL and
 * a message, never a crash. Data are decoded from little-endian byte by byte,
 * so the reader works on any host, and each array is aligned for its type. */
#ifndef TD_TEST_GOLDEN_H
#define TD_TEST_GOLDEN_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#ifdef TD_SOURCE_DIR
#  define GOLDEN_DIR TD_SOURCE_DIR "/tests/golden"
#endif

#define GOLDEN_VERSION    1u
#define GOLDEN_NAME_MAX   63
#define GOLDEN_MAX_DIMS   4
#define GOLDEN_MAX_ARRAYS 4096
#define GOLDEN_MAX_BYTES  ((size_t)64 << 20)

typedef enum golden_dtype { GOLDEN_F32 = 1, GOLDEN_F64 = 2, GOLDEN_I32 = 3 } golden_dtype;

typedef struct golden_array {
    char name[GOLDEN_NAME_MAX + 1];
    golden_dtype dtype;
    int ndim;                       /* 0 .. GOLDEN_MAX_DIMS */
    int64_t dims[GOLDEN_MAX_DIMS];  /* unused entries are 1 */
    size_t count;                   /* product of dims */
    void *data;                     /* count elements, host byte order */
} golden_array;

typedef struct golden_file {
    int n_arrays;
    golden_array *arrays;           /* in file order */
    unsigned char *blob;            /* holds every array's data */
} golden_file;

static inline size_t golden_dtype_size(uint32_t dtype)
{
    return dtype == GOLDEN_F64 ? 8 : (dtype == GOLDEN_F32 || dtype == GOLDEN_I32) ? 4 : 0;
}

static inline const char *golden_dtype_name(golden_dtype dtype)
{
    return dtype == GOLDEN_F32 ? "f32" : dtype == GOLDEN_F64 ? "f64"
         : dtype == GOLDEN_I32 ? "i32" : "?";
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void golden_error(char *err, size_t err_size, const char *fmt, ...)
{
    if (err == NULL || err_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static inline uint32_t golden_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t golden_le64(const unsigned char *p)
{
    return (uint64_t)golden_le32(p) | (uint64_t)golden_le32(p + 4) << 32;
}

static inline void golden_free(golden_file *g)
{
    if (g == NULL) return;
    free(g->arrays);
    free(g->blob);
    free(g);
}

static inline const golden_array *golden_find(const golden_file *g, const char *name)
{
    if (g == NULL || name == NULL) return NULL;
    for (int i = 0; i < g->n_arrays; i++)
        if (strcmp(g->arrays[i].name, name) == 0) return &g->arrays[i];
    return NULL;
}

/* Decode element data at p (little-endian) into dst; n elements of dtype. */
static inline void golden_decode(void *dst, const unsigned char *p, size_t n, uint32_t dtype)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == GOLDEN_F64) {
            uint64_t u = golden_le64(p + 8 * i);
            memcpy((unsigned char *)dst + 8 * i, &u, 8);
        } else {
            uint32_t u = golden_le32(p + 4 * i);
            memcpy((unsigned char *)dst + 4 * i, &u, 4);
        }
    }
}

/* Parse one array header at buf[*pos..end); fills a (without data) and
 * returns its data size in bytes, or (size_t)-1 with a message. */
static inline size_t golden_parse_header(const unsigned char *buf, size_t *pos, size_t end,
                                         golden_array *a, int index, char *err, size_t err_size)
{
    size_t p = *pos;
    if (end - p < 4) goto truncated;
    uint32_t name_len = golden_le32(buf + p);
    p += 4;
    if (name_len == 0 || name_len > GOLDEN_NAME_MAX) {
        golden_error(err, err_size, "array %d: name length %u not in 1..%d", index,
                     (unsigned)name_len, GOLDEN_NAME_MAX);
        return (size_t)-1;
    }
    if (end - p < name_len) goto truncated;
    for (uint32_t i = 0; i < name_len; i++) {
        if (buf[p + i] < 0x21 || buf[p + i] > 0x7e) {
            golden_error(err, err_size, "array %d: name byte %u is not printable ASCII",
                         index, (unsigned)i);
            return (size_t)-1;
        }
    }
    memcpy(a->name, buf + p, name_len);
    a->name[name_len] = '\0';
    p += name_len;
    if (end - p < 8) goto truncated;
    uint32_t dtype = golden_le32(buf + p), ndim = golden_le32(buf + p + 4);
    p += 8;
    size_t esize = golden_dtype_size(dtype);
    if (esize == 0) {
        golden_error(err, err_size, "array '%s': unknown dtype %u", a->name, (unsigned)dtype);
        return (size_t)-1;
    }
    if (ndim > GOLDEN_MAX_DIMS) {
        golden_error(err, err_size, "array '%s': ndim %u > %d", a->name, (unsigned)ndim,
                     GOLDEN_MAX_DIMS);
        return (size_t)-1;
    }
    if ((end - p) / 4 < ndim) goto truncated;
    a->dtype = (golden_dtype)dtype;
    a->ndim = (int)ndim;
    /* The data must fit in what is left of the file, which also rules out
     * overflow in count * esize. */
    size_t left = end - p - 4 * (size_t)ndim, count = 1;
    for (int d = 0; d < GOLDEN_MAX_DIMS; d++) {
        a->dims[d] = 1;
        if ((uint32_t)d >= ndim) continue;
        uint32_t n = golden_le32(buf + p + 4 * (size_t)d);
        a->dims[d] = n;
        if (n != 0 && count > left / esize / n) {
            golden_error(err, err_size, "array '%s': data larger than the rest of the file",
                         a->name);
            return (size_t)-1;
        }
        count *= n;
    }
    p += 4 * (size_t)ndim;
    a->count = count;
    *pos = p;
    return count * esize;
truncated:
    golden_error(err, err_size, "array %d: header truncated at byte %zu", index, p);
    return (size_t)-1;
}

/* Parse a whole file image. NULL (and a message in err) on any defect. */
static inline golden_file *golden_parse(const unsigned char *buf, size_t size, char *err,
                                        size_t err_size)
{
    if (buf == NULL || size < 16) {
        golden_error(err, err_size, "file too short (%zu bytes)", size);
        return NULL;
    }
    if (size > GOLDEN_MAX_BYTES) {
        golden_error(err, err_size, "file too large (%zu bytes)", size);
        return NULL;
    }
    if (memcmp(buf, "TDGV", 4) != 0) {
        golden_error(err, err_size, "bad magic (not a TDGV file)");
        return NULL;
    }
    size_t end = size - 4;
    uint32_t want = golden_le32(buf + end);
    uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)end);
    if (got != want) {
        golden_error(err, err_size, "CRC32 mismatch (stored %08x, computed %08x)",
                     (unsigned)want, (unsigned)got);
        return NULL;
    }
    uint32_t version = golden_le32(buf + 4), n = golden_le32(buf + 8);
    if (version != GOLDEN_VERSION) {
        golden_error(err, err_size, "format version %u not supported (want %u)",
                     (unsigned)version, GOLDEN_VERSION);
        return NULL;
    }
    /* Each array takes at least 13 bytes (name length, 1-byte name, dtype, ndim). */
    if (n > GOLDEN_MAX_ARRAYS || n > (end - 12) / 13) {
        golden_error(err, err_size, "array count %u impossible for a %zu-byte file",
                     (unsigned)n, size);
        return NULL;
    }
    golden_file *g = calloc(1, sizeof *g);
    if (g == NULL) goto nomem;
    /* All data fit in the file; 8 bytes of slack per array keep each aligned. */
    g->arrays = calloc(n ? n : 1, sizeof *g->arrays);
    g->blob = malloc(end + 8 * (size_t)n + 8);
    if (g->arrays == NULL || g->blob == NULL) goto nomem;
    size_t pos = 12, used = 0;
    for (uint32_t i = 0; i < n; i++) {
        golden_array *a = &g->arrays[i];
        size_t bytes = golden_parse_header(buf, &pos, end, a, (int)i, err, err_size);
        if (bytes == (size_t)-1) goto fail;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(g->arrays[j].name, a->name) == 0) {
                golden_error(err, err_size, "array name '%s' appears twice", a->name);
                goto fail;
            }
        }
        used = (used + 7) & ~(size_t)7;
        a->data = g->blob + used;
        golden_decode(a->data, buf + pos, a->count, a->dtype);
        pos += bytes;
        used += bytes;
        g->n_arrays = (int)i + 1;
    }
    if (pos != end) {
        golden_error(err, err_size, "%zu unexpected bytes after the last array", end - pos);
        goto fail;
    }
    return g;
nomem:
    golden_error(err, err_size, "out of memory");
fail:
    golden_free(g);
    return NULL;
}

static inline golden_file *golden_load(const char *path, char *err, size_t err_size)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        golden_error(err, err_size, "cannot open %s", path ? path : "(null)");
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            if (cap > GOLDEN_MAX_BYTES) break;  /* golden_parse names the error */
            size_t ncap = cap ? 2 * cap : 65536;
            unsigned char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                golden_error(err, err_size, "out of memory reading %s", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        golden_error(err, err_size, "read error on %s", path);
        free(buf);
        return NULL;
    }
    golden_file *g = golden_parse(buf, size, err, err_size);
    free(buf);
    return g;
}

/* Typed views: NULL when the array is missing or has another dtype. */
static inline const float *golden_f32(const golden_file *g, const char *name)
{
    const golden_array *a = golden_find(g, name);
    return a && a->dtype == GOLDEN_F32 ? (const float *)a->data : NULL;
}

static inline const double *golden_f64(const golden_file *g, const char *name)
{
    const golden_array *a = golden_find(g, name);
    return a && a->dtype == GOLDEN_F64 ? (const double *)a->data : NULL;
}

static inline const int32_t *golden_i32(const golden_file *g, const char *name)
{
    const golden_array *a = golden_find(g, name);
    return a && a->dtype == GOLDEN_I32 ? (const int32_t *)a->data : NULL;
}

/* A one-element i32 array (the config ints): 1 and *out on success, else 0. */
static inline int golden_int(const golden_file *g, const char *name, int32_t *out)
{
    const golden_array *a = golden_find(g, name);
    if (a == NULL || a->dtype != GOLDEN_I32 || a->count != 1) return 0;
    *out = *(const int32_t *)a->data;
    return 1;
}

/* Element i of any array as a double (for comparisons across dtypes). */
static inline double golden_at(const golden_array *a, size_t i)
{
    switch (a->dtype) {
    case GOLDEN_F32: return ((const float *)a->data)[i];
    case GOLDEN_F64: return ((const double *)a->data)[i];
    case GOLDEN_I32: return ((const int32_t *)a->data)[i];
    }
    return 0.0;
}

#endif
