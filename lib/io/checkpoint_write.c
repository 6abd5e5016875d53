/* Checkpoint writer: collects metadata (encoded on arrival) and tensor
 * references, then streams header, sections and tensors to a file or a
 * memory buffer. The header goes last, once sizes and CRCs are known. */
#include "io/checkpoint_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "util/alloc.h"
#include "util/error.h"

typedef struct wtensor {
    size_t name_off;   /* into names */
    size_t name_len;
    uint32_t dtype;
    uint32_t ndim;
    uint64_t dims[TDI_CKPT_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    uint32_t flags;
    /* Filled in by each write. */
    uint64_t offset, stored;
    uint32_t crc;
    uint32_t codec;
} wtensor;

struct tdi_ckpt_writer {
    td_allocator alloc;
    int level;
    unsigned char *meta; /* the encoded metadata section, raw */
    size_t meta_len, meta_cap;
    uint32_t meta_count;
    char *names;         /* tensor names, back to back */
    size_t names_len, names_cap;
    wtensor *tensors;
    uint32_t n_tensors, tensors_cap;
    uint64_t data_bytes; /* sum of tensor nbytes */
};

/* Grow *buf so that it holds `need` bytes, doubling; the old block stays
 * valid on failure. */
static int grow(const td_allocator *a, void **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap : 256;
    while (n < need) {
        if (n > (size_t)-1 / 2) { n = need; break; }
        n *= 2;
    }
    void *p = tdi_realloc(a, *buf, n);
    if (!p) return 0;
    *buf = p;
    *cap = n;
    return 1;
}

td_status tdi_ckpt_writer_create(const td_allocator *alloc, tdi_ckpt_writer **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_ckpt_writer *w = tdi_malloc(&a, sizeof *w);
    if (!w) return tdi_nomem(__func__, sizeof *w);
    memset(w, 0, sizeof *w);
    w->alloc = a;
    w->level = 6;
    *out = w;
    return TD_OK;
}

void tdi_ckpt_writer_free(tdi_ckpt_writer *w)
{
    if (!w) return;
    td_allocator a = w->alloc;
    tdi_free(&a, w->meta);
    tdi_free(&a, w->names);
    tdi_free(&a, w->tensors);
    tdi_free(&a, w);
}

const td_allocator *tdi_ckpt_writer_allocator(const tdi_ckpt_writer *w)
{
    return w ? &w->alloc : NULL;
}

td_status tdi_ckpt_writer_set_level(tdi_ckpt_writer *w, int level)
{
    TDI_CHECK_PTR(w);
    TDI_CHECK_ARG(level >= 0 && level <= 9, "%s: level %d is not in 0..9", __func__, level);
    w->level = level;
    return TD_OK;
}

static td_status check_name(const char *func, const char *what, const char *name,
                            size_t *len)
{
    TDI_CHECK_ARG(name != NULL, "%s: %s is NULL", func, what);
    size_t n = strlen(name);
    TDI_CHECK_ARG(n >= 1 && n <= TDI_CKPT_MAX_NAME, "%s: %s '%.40s' is %zu bytes, not 1..%d",
                  func, what, name, n, TDI_CKPT_MAX_NAME);
    *len = n;
    return TD_OK;
}

/* Append one encoded metadata entry; `value` holds value_len bytes already
 * in file order (little-endian). */
static td_status put_entry(tdi_ckpt_writer *w, const char *func, const char *key,
                           uint32_t type, const void *value, size_t value_len,
                           size_t elem)
{
    TDI_CHECK_PTR(w);
    size_t key_len = 0;
    TDI_TRY(check_name(func, "key", key, &key_len));
    TDI_CHECK_ARG(w->meta_count < TDI_CKPT_MAX_META, "%s: more than %u metadata entries",
                  func, TDI_CKPT_MAX_META);
    size_t need = TDI_M_FIXED + key_len + value_len;
    TDI_CHECK_ARG(need <= TDI_CKPT_MAX_META_BYTES - w->meta_len,
                  "%s: metadata would exceed %llu bytes at key '%s'", func,
                  (unsigned long long)TDI_CKPT_MAX_META_BYTES, key);
    void *buf = w->meta;
    if (!grow(&w->alloc, &buf, &w->meta_cap, w->meta_len + need))
        return tdi_nomem(func, w->meta_len + need);
    w->meta = buf;
    unsigned char *p = w->meta + w->meta_len;
    tdi_le_put16(p + TDI_M_KEY_LEN, (uint16_t)key_len);
    tdi_le_put16(p + TDI_M_TYPE, (uint16_t)type);
    tdi_le_put32(p + TDI_M_VALUE_LEN, (uint32_t)value_len);
    memcpy(p + TDI_M_FIXED, key, key_len);
    if (value_len) tdi_le_convert(p + TDI_M_FIXED + key_len, value, value_len, elem);
    w->meta_len += need;
    w->meta_count++;
    return TD_OK;
}

td_status tdi_ckpt_put_i64(tdi_ckpt_writer *w, const char *key, int64_t v)
{
    return put_entry(w, __func__, key, TDI_META_I64, &v, 8, 8);
}

td_status tdi_ckpt_put_u64(tdi_ckpt_writer *w, const char *key, uint64_t v)
{
    return put_entry(w, __func__, key, TDI_META_U64, &v, 8, 8);
}

td_status tdi_ckpt_put_f64(tdi_ckpt_writer *w, const char *key, double v)
{
    return put_entry(w, __func__, key, TDI_META_F64, &v, 8, 8);
}

td_status tdi_ckpt_put_string(tdi_ckpt_writer *w, const char *key, const char *s)
{
    TDI_CHECK_PTR(s);
    size_t n = strlen(s);
    TDI_CHECK_ARG(n <= TDI_CKPT_MAX_STRING, "%s: string for key '%s' is %zu bytes, over %llu",
                  __func__, key ? key : "(null)", n, (unsigned long long)TDI_CKPT_MAX_STRING);
    return put_entry(w, __func__, key, TDI_META_STRING, s, n, 1);
}

static td_status put_array(tdi_ckpt_writer *w, const char *func, const char *key,
                           uint32_t type, const void *v, size_t n)
{
    TDI_CHECK_ARG(v != NULL || n == 0, "%s: values are NULL for n = %zu", func, n);
    TDI_CHECK_ARG(n <= TDI_CKPT_MAX_ARRAY, "%s: array for key '%s' has %zu elements, over %llu",
                  func, key ? key : "(null)", n, (unsigned long long)TDI_CKPT_MAX_ARRAY);
    return put_entry(w, func, key, type, v, n * 8, 8);
}

td_status tdi_ckpt_put_i64_array(tdi_ckpt_writer *w, const char *key, const int64_t *v,
                                 size_t n)
{
    return put_array(w, __func__, key, TDI_META_I64_ARRAY, v, n);
}

td_status tdi_ckpt_put_u64_array(tdi_ckpt_writer *w, const char *key, const uint64_t *v,
                                 size_t n)
{
    return put_array(w, __func__, key, TDI_META_U64_ARRAY, v, n);
}

td_status tdi_ckpt_put_f64_array(tdi_ckpt_writer *w, const char *key, const double *v,
                                 size_t n)
{
    return put_array(w, __func__, key, TDI_META_F64_ARRAY, v, n);
}

td_status tdi_ckpt_add_tensor(tdi_ckpt_writer *w, const char *name, tdi_dtype dtype,
                              uint32_t ndim, const uint64_t *dims, const void *data,
                              uint32_t flags)
{
    TDI_CHECK_PTR(w);
    size_t name_len = 0;
    TDI_TRY(check_name(__func__, "name", name, &name_len));
    size_t esize = tdi_dtype_size((uint32_t)dtype);
    TDI_CHECK_ARG(esize != 0, "%s: tensor '%s': dtype %d is not a tdi_dtype", __func__, name,
                  (int)dtype);
    TDI_CHECK_ARG(ndim <= TDI_CKPT_MAX_DIMS, "%s: tensor '%s': ndim %u is over %d", __func__,
                  name, (unsigned)ndim, TDI_CKPT_MAX_DIMS);
    TDI_CHECK_ARG(ndim == 0 || dims != NULL, "%s: tensor '%s': dims is NULL", __func__, name);
    TDI_CHECK_ARG(data != NULL, "%s: tensor '%s': data is NULL", __func__, name);
    uint32_t block = tdi_dtype_block((uint32_t)dtype);
    TDI_CHECK_ARG(block == 1 || (ndim >= 1 && dims[ndim - 1] % block == 0),
                  "%s: tensor '%s': a %s tensor's last dimension must be a multiple of %u",
                  __func__, name, tdi_dtype_name((uint32_t)dtype), (unsigned)block);
    TDI_CHECK_ARG((flags & ~TDI_CKPT_COMPRESS) == 0, "%s: tensor '%s': unknown flags 0x%x",
                  __func__, name, (unsigned)flags);
    TDI_CHECK_ARG(w->n_tensors < TDI_CKPT_MAX_TENSORS, "%s: more than %u tensors", __func__,
                  TDI_CKPT_MAX_TENSORS);
    uint64_t bytes = esize;
    for (uint32_t i = 0; i < ndim; i++) {
        TDI_CHECK_ARG(dims[i] >= 1 && dims[i] <= TDI_CKPT_MAX_DATA_BYTES / bytes,
                      "%s: tensor '%s': dims[%u] = %llu is 0 or makes it over %llu bytes",
                      __func__, name, (unsigned)i, (unsigned long long)dims[i],
                      (unsigned long long)TDI_CKPT_MAX_DATA_BYTES);
        bytes *= dims[i];
    }
    bytes /= block;
    /* Each tensor may be padded by up to 63 bytes in the file. */
    TDI_CHECK_ARG(bytes <= TDI_CKPT_MAX_DATA_BYTES - w->data_bytes,
                  "%s: tensor '%s': all tensors together would exceed %llu bytes", __func__,
                  name, (unsigned long long)TDI_CKPT_MAX_DATA_BYTES);
#if SIZE_MAX < UINT64_MAX
    TDI_CHECK_ARG(bytes <= SIZE_MAX, "%s: tensor '%s' does not fit in memory", __func__, name);
#endif

    void *buf = w->tensors;
    size_t cap = (size_t)w->tensors_cap * sizeof(wtensor);
    if (!grow(&w->alloc, &buf, &cap, ((size_t)w->n_tensors + 1) * sizeof(wtensor)))
        return tdi_nomem(__func__, ((size_t)w->n_tensors + 1) * sizeof(wtensor));
    w->tensors = buf;
    w->tensors_cap = (uint32_t)(cap / sizeof(wtensor));
    buf = w->names;
    if (!grow(&w->alloc, &buf, &w->names_cap, w->names_len + name_len))
        return tdi_nomem(__func__, w->names_len + name_len);
    w->names = buf;

    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name_off = w->names_len;
    t->name_len = name_len;
    t->dtype = (uint32_t)dtype;
    t->ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++) t->dims[i] = dims[i];
    t->nbytes = bytes;
    t->data = data;
    t->flags = flags;
    memcpy(w->names + w->names_len, name, name_len);
    w->names_len += name_len;
    w->n_tensors++;
    w->data_bytes += bytes;
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Output: a growing memory buffer, or a file descriptor behind a staging
 * buffer. Either way the header is patched in at offset 0 at the end.
 * ------------------------------------------------------------------------- */
typedef struct sink {
    const td_allocator *a;
    int fd;             /* -1: memory */
    const char *path;   /* for messages */
    unsigned char *buf; /* memory: the whole output; file: staging */
    size_t len, cap;
    uint64_t pos;       /* bytes emitted */
} sink;

static td_status write_all(int fd, const char *path, const unsigned char *p, size_t n,
                           uint64_t offset, int positioned)
{
    char eb[128];
    while (n > 0) {
        size_t piece = n > (1u << 30) ? (1u << 30) : n;
        ssize_t r = positioned ? pwrite(fd, p, piece, (off_t)offset) : write(fd, p, piece);
        if (r < 0) {
            if (errno == EINTR) continue;
            return tdi_fail(TD_ERR_IO, "checkpoint '%s': write at offset %llu: %s", path,
                            (unsigned long long)offset,
                            tdi_errno_text(errno, eb, sizeof eb));
        }
        if (r == 0)
            return tdi_fail(TD_ERR_IO, "checkpoint '%s': write at offset %llu made no progress",
                            path, (unsigned long long)offset);
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return TD_OK;
}

static td_status sink_flush(sink *s)
{
    if (s->fd < 0 || s->len == 0) return TD_OK;
    TDI_TRY(write_all(s->fd, s->path, s->buf, s->len, s->pos - s->len, 0));
    s->len = 0;
    return TD_OK;
}

static td_status sink_write(sink *s, const void *p, size_t n)
{
    if (n == 0) return TD_OK;
    if (s->fd < 0) {
        if (n > (size_t)-1 - s->len) return tdi_nomem("tdi_ckpt_write_memory", (size_t)-1);
        void *buf = s->buf;
        if (!grow(s->a, &buf, &s->cap, s->len + n))
            return tdi_nomem("tdi_ckpt_write_memory", s->len + n);
        s->buf = buf;
        memcpy(s->buf + s->len, p, n);
        s->len += n;
        s->pos += n;
        return TD_OK;
    }
    if (s->len + n > s->cap) TDI_TRY(sink_flush(s));
    if (n >= s->cap) {
        TDI_TRY(write_all(s->fd, s->path, p, n, s->pos, 0));
    } else {
        memcpy(s->buf + s->len, p, n);
        s->len += n;
    }
    s->pos += n;
    return TD_OK;
}

static td_status sink_zeros(sink *s, size_t n)
{
    static const unsigned char zeros[TDI_CKPT_ALIGN];
    while (n > 0) {
        size_t piece = n < sizeof zeros ? n : sizeof zeros;
        TDI_TRY(sink_write(s, zeros, piece));
        n -= piece;
    }
    return TD_OK;
}

static td_status sink_patch(sink *s, const unsigned char *p, size_t n)
{
    if (s->fd < 0) {
        memcpy(s->buf, p, n);
        return TD_OK;
    }
    TDI_TRY(sink_flush(s));
    return write_all(s->fd, s->path, p, n, 0, 1);
}

/* ---------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------- */
typedef struct wctx {
    tdi_ckpt_writer *w;
    sink *s;
    z_stream zs;
    int z_ready;
    unsigned char *in;  /* TDI_CKPT_CHUNK: little-endian elements */
    unsigned char *out; /* TDI_CKPT_CHUNK: compressed bytes */
} wctx;

typedef struct region {
    uint64_t offset, stored, raw;
    uint32_t crc;
    uint32_t codec;
} region;

/* Feed n bytes to the open deflate stream and emit what it produces. */
static td_status deflate_feed(wctx *x, const unsigned char *p, size_t n, int finish,
                              region *r)
{
    x->zs.next_in = (Bytef *)(uintptr_t)p; /* zlib's API is not const-correct */
    x->zs.avail_in = (uInt)n;
    for (;;) {
        x->zs.next_out = x->out;
        x->zs.avail_out = TDI_CKPT_CHUNK;
        int ret = deflate(&x->zs, finish ? Z_FINISH : Z_NO_FLUSH);
        if (ret == Z_STREAM_ERROR)
            return tdi_fail(TD_ERR_INTERNAL, "checkpoint: deflate failed (%d)", ret);
        size_t have = TDI_CKPT_CHUNK - x->zs.avail_out;
        r->crc = tdi_crc32(r->crc, x->out, have);
        TDI_TRY(sink_write(x->s, x->out, have));
        if (finish ? ret == Z_STREAM_END : x->zs.avail_out != 0) break;
    }
    return TD_OK;
}

static td_status deflate_begin(wctx *x)
{
    if (!x->z_ready) {
        memset(&x->zs, 0, sizeof x->zs);
        x->zs.zalloc = tdi_zalloc;
        x->zs.zfree = tdi_zfree;
        x->zs.opaque = &x->w->alloc;
        int ret = deflateInit(&x->zs, x->w->level);
        if (ret == Z_MEM_ERROR) return tdi_nomem("deflateInit", 0);
        if (ret != Z_OK)
            return tdi_fail(TD_ERR_INTERNAL, "checkpoint: deflateInit failed (%d)", ret);
        x->z_ready = 1;
        return TD_OK;
    }
    if (deflateReset(&x->zs) != Z_OK)
        return tdi_fail(TD_ERR_INTERNAL, "checkpoint: deflateReset failed");
    return TD_OK;
}

/* A section held in memory (metadata, directory). */
static td_status emit_section(wctx *x, const unsigned char *raw, size_t n, region *r)
{
    r->offset = x->s->pos;
    r->raw = n;
    r->crc = 0;
    r->codec = (x->w->level > 0 && n > 0) ? TDI_CODEC_ZLIB : TDI_CODEC_NONE;
    if (r->codec == TDI_CODEC_NONE) {
        r->crc = tdi_crc32(0, raw, n);
        TDI_TRY(sink_write(x->s, raw, n));
    } else {
        TDI_TRY(deflate_begin(x));
        TDI_TRY(deflate_feed(x, raw, n, 1, r));
    }
    r->stored = x->s->pos - r->offset;
    return TD_OK;
}

static td_status emit_tensor(wctx *x, wtensor *t)
{
    TDI_TRY(sink_zeros(x->s, (size_t)(tdi_align64(x->s->pos) - x->s->pos)));
    region r = { x->s->pos, 0, t->nbytes, 0, TDI_CODEC_NONE };
    int z = x->w->level > 0 && (t->flags & TDI_CKPT_COMPRESS);
    if (z) {
        r.codec = TDI_CODEC_ZLIB;
        TDI_TRY(deflate_begin(x));
    }
    size_t esize = tdi_dtype_size(t->dtype);
    const unsigned char *src = t->data;
    size_t left = (size_t)t->nbytes;
    do {
        size_t n = left < TDI_CKPT_CHUNK ? left : TDI_CKPT_CHUNK;
        tdi_le_convert(x->in, src, n, esize);
        src += n;
        left -= n;
        if (z) {
            TDI_TRY(deflate_feed(x, x->in, n, left == 0, &r));
        } else {
            r.crc = tdi_crc32(r.crc, x->in, n);
            TDI_TRY(sink_write(x->s, x->in, n));
        }
    } while (left > 0);
    t->offset = r.offset;
    t->stored = x->s->pos - r.offset;
    t->crc = r.crc;
    t->codec = r.codec;
    return TD_OK;
}

static void put_region(unsigned char *p, const region *r)
{
    tdi_le_put64(p + TDI_S_OFFSET, r->offset);
    tdi_le_put64(p + TDI_S_STORED, r->stored);
    tdi_le_put64(p + TDI_S_RAW, r->raw);
    tdi_le_put32(p + TDI_S_CRC, r->crc);
    p[TDI_S_CODEC] = (unsigned char)r->codec;
}

static size_t directory_size(const tdi_ckpt_writer *w)
{
    return (size_t)w->n_tensors * TDI_D_FIXED + w->names_len;
}

static void encode_directory(const tdi_ckpt_writer *w, unsigned char *p)
{
    for (uint32_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        size_t entry = TDI_D_FIXED + t->name_len;
        memset(p, 0, TDI_D_FIXED);
        tdi_le_put32(p + TDI_D_ENTRY_SIZE, (uint32_t)entry);
        tdi_le_put16(p + TDI_D_NAME_LEN, (uint16_t)t->name_len);
        p[TDI_D_DTYPE] = (unsigned char)t->dtype;
        p[TDI_D_NDIM] = (unsigned char)t->ndim;
        for (uint32_t d = 0; d < t->ndim; d++) tdi_le_put64(p + TDI_D_DIMS + 8 * d, t->dims[d]);
        tdi_le_put64(p + TDI_D_OFFSET, t->offset);
        tdi_le_put64(p + TDI_D_STORED, t->stored);
        tdi_le_put64(p + TDI_D_RAW, t->nbytes);
        tdi_le_put32(p + TDI_D_CRC, t->crc);
        p[TDI_D_CODEC] = (unsigned char)t->codec;
        memcpy(p + TDI_D_FIXED, w->names + t->name_off, t->name_len);
        p += entry;
    }
}

/* Duplicate keys and names are caught here, in O(n log n), rather than on
 * every put. */
static td_status check_unique(tdi_ckpt_writer *w, const char *func)
{
    uint32_t n = w->meta_count > w->n_tensors ? w->meta_count : w->n_tensors;
    if (n < 2) return TD_OK;
    size_t bytes = (size_t)n * (sizeof(tdi_name) + sizeof(uint32_t));
    unsigned char *scratch = tdi_malloc(&w->alloc, bytes);
    if (!scratch) return tdi_nomem(func, bytes);
    tdi_name *names = (tdi_name *)(void *)scratch;
    uint32_t *ids = (uint32_t *)(void *)(scratch + (size_t)n * sizeof(tdi_name));
    td_status st = TD_OK;

    const unsigned char *p = w->meta;
    for (uint32_t i = 0; i < w->meta_count; i++) {
        size_t key_len = tdi_le_get16(p + TDI_M_KEY_LEN);
        names[i].p = (const char *)p + TDI_M_FIXED;
        names[i].len = key_len;
        ids[i] = i;
        p += TDI_M_FIXED + key_len + tdi_le_get32(p + TDI_M_VALUE_LEN);
    }
    tdi_names_sort(ids, w->meta_count, names);
    uint32_t dup = tdi_names_duplicate(ids, w->meta_count, names);
    if (dup != UINT32_MAX) {
        st = tdi_fail(TD_ERR_INVALID_ARG, "%s: metadata key '%.*s' is set more than once",
                      func, (int)names[dup].len, names[dup].p);
        goto done;
    }
    for (uint32_t i = 0; i < w->n_tensors; i++) {
        names[i].p = w->names + w->tensors[i].name_off;
        names[i].len = w->tensors[i].name_len;
        ids[i] = i;
    }
    tdi_names_sort(ids, w->n_tensors, names);
    dup = tdi_names_duplicate(ids, w->n_tensors, names);
    if (dup != UINT32_MAX)
        st = tdi_fail(TD_ERR_INVALID_ARG, "%s: tensor name '%.*s' is used more than once",
                      func, (int)names[dup].len, names[dup].p);
done:
    tdi_free(&w->alloc, scratch);
    return st;
}

/* Everything but the opening and closing of the sink. */
static td_status write_body(tdi_ckpt_writer *w, sink *s)
{
    wctx x;
    memset(&x, 0, sizeof x);
    x.w = w;
    x.s = s;
    td_status st = TD_OK;
    unsigned char *dir = NULL;
    size_t dir_len = directory_size(w);
    unsigned char header[TDI_CKPT_HEADER_SIZE];
    region meta, dsec;

    x.in = tdi_malloc(&w->alloc, 2 * (size_t)TDI_CKPT_CHUNK);
    if (!x.in) { st = tdi_nomem(__func__, 2 * (size_t)TDI_CKPT_CHUNK); goto done; }
    x.out = x.in + TDI_CKPT_CHUNK;
    dir = tdi_malloc(&w->alloc, dir_len);
    if (!dir) { st = tdi_nomem(__func__, dir_len); goto done; }

    memset(header, 0, sizeof header);
    if ((st = sink_write(s, header, sizeof header)) != TD_OK) goto done;
    if ((st = emit_section(&x, w->meta, w->meta_len, &meta)) != TD_OK) goto done;
    for (uint32_t i = 0; i < w->n_tensors; i++)
        if ((st = emit_tensor(&x, &w->tensors[i])) != TD_OK) goto done;
    encode_directory(w, dir);
    if ((st = emit_section(&x, dir, dir_len, &dsec)) != TD_OK) goto done;

    memcpy(header, TDI_CKPT_MAGIC, TDI_CKPT_MAGIC_LEN);
    uint32_t major = TDI_CKPT_MAJOR;
    for (uint32_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].dtype >= TDI_DTYPE_BF16) major = TDI_CKPT_MAJOR_QUANT;
    tdi_le_put16(header + TDI_H_MAJOR, (uint16_t)major);
    tdi_le_put16(header + TDI_H_MINOR, TDI_CKPT_MINOR);
    tdi_le_put32(header + TDI_H_HEADER_SIZE, TDI_CKPT_HEADER_SIZE);
    tdi_le_put64(header + TDI_H_FILE_SIZE, s->pos);
    tdi_le_put32(header + TDI_H_META_COUNT, w->meta_count);
    tdi_le_put32(header + TDI_H_TENSOR_COUNT, w->n_tensors);
    put_region(header + TDI_H_META, &meta);
    put_region(header + TDI_H_DIR, &dsec);
    tdi_le_put32(header + TDI_CKPT_HEADER_SIZE - 4,
                 tdi_crc32(0, header, TDI_CKPT_HEADER_SIZE - 4));
    st = sink_patch(s, header, sizeof header);
    if (st == TD_OK) st = sink_flush(s);
done:
    if (x.z_ready) deflateEnd(&x.zs);
    tdi_free(&w->alloc, dir);
    tdi_free(&w->alloc, x.in);
    return st;
}

td_status tdi_ckpt_write_memory(tdi_ckpt_writer *w, void **buf, size_t *size)
{
    TDI_CHECK_PTR(w);
    TDI_CHECK_PTR(buf);
    TDI_CHECK_PTR(size);
    *buf = NULL;
    *size = 0;
    TDI_TRY(check_unique(w, __func__));
    sink s = { &w->alloc, -1, "<memory>", NULL, 0, 0, 0 };
    /* Exact for stored tensors, so one allocation in the common case. */
    uint64_t estimate = TDI_CKPT_HEADER_SIZE + (uint64_t)w->meta_len;
    for (uint32_t i = 0; i < w->n_tensors; i++)
        estimate = tdi_align64(estimate) + w->tensors[i].nbytes;
    estimate += directory_size(w);
#if SIZE_MAX < UINT64_MAX
    if (estimate > SIZE_MAX) return tdi_nomem(__func__, SIZE_MAX);
#endif
    s.buf = tdi_malloc(&w->alloc, (size_t)estimate);
    if (!s.buf) return tdi_nomem(__func__, (size_t)estimate);
    s.cap = (size_t)estimate;
    td_status st = write_body(w, &s);
    if (st != TD_OK) {
        tdi_free(&w->alloc, s.buf);
        return st;
    }
    *buf = s.buf;
    *size = s.len;
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Atomic file output
 * ------------------------------------------------------------------------- */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Create "<dir>/.<base>.tmp-<hex>" exclusively. The suffix only needs to be
 * unlikely to collide; O_EXCL makes a collision a retry, not a clobber. The
 * base is cut to 200 bytes so that the name stays within NAME_MAX (255). */
static td_status create_temp(const td_allocator *a, const void *salt, const char *path,
                             char **tmp_out, int *fd_out)
{
    char eb[128];
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dir_len;
    size_t n = strlen(path) + 1 + 5 + 16 + 1; /* '.', ".tmp-", hex, NUL */
    char *tmp = tdi_malloc(a, n);
    if (!tmp) return tdi_nomem(__func__, n);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)salt;
    for (int attempt = 0; attempt < 32; attempt++) {
        uint64_t r = mix64(seed + 0x9E3779B97F4A7C15ull * (uint64_t)(attempt + 1));
        snprintf(tmp, n, "%.*s.%.200s.tmp-%016llx", (int)dir_len, path, base,
                 (unsigned long long)r);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            *fd_out = fd;
            return TD_OK;
        }
        if (errno != EEXIST && errno != EINTR) {
            td_status st = tdi_fail(TD_ERR_IO, "checkpoint '%s': cannot create temporary file "
                                    "'%s': %s", path, tmp,
                                    tdi_errno_text(errno, eb, sizeof eb));
            tdi_free(a, tmp);
            return st;
        }
    }
    tdi_free(a, tmp);
    return tdi_fail(TD_ERR_IO, "checkpoint '%s': no free temporary file name", path);
}

/* Make the rename itself durable. Best effort: the new file is already in
 * place, and some file systems refuse to sync a directory. */
static void sync_parent(const char *path, char *tmp)
{
    const char *slash = strrchr(path, '/');
    if (slash == path) {
        strcpy(tmp, "/");
    } else if (slash) {
        memcpy(tmp, path, (size_t)(slash - path));
        tmp[slash - path] = '\0';
    } else {
        strcpy(tmp, ".");
    }
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    (void)close(fd);
}

td_status tdi_ckpt_write_file(tdi_ckpt_writer *w, const char *path)
{
    TDI_CHECK_PTR(w);
    TDI_CHECK_PTR(path);
    TDI_CHECK_ARG(path[0] != '\0', "%s: path is empty", __func__);
    TDI_TRY(check_unique(w, __func__));
    char eb[128];

    unsigned char *staging = tdi_malloc(&w->alloc, 4 * (size_t)TDI_CKPT_CHUNK);
    if (!staging) return tdi_nomem(__func__, 4 * (size_t)TDI_CKPT_CHUNK);
    char *tmp = NULL;
    int fd = -1;
    td_status st = create_temp(&w->alloc, w, path, &tmp, &fd);
    if (st != TD_OK) {
        tdi_free(&w->alloc, staging);
        return st;
    }
    sink s = { &w->alloc, fd, path, staging, 0, 4 * (size_t)TDI_CKPT_CHUNK, 0 };
    st = write_body(w, &s);
    if (st == TD_OK && fsync(fd) != 0)
        st = tdi_fail(TD_ERR_IO, "checkpoint '%s': fsync: %s", path,
                      tdi_errno_text(errno, eb, sizeof eb));
    /* close() can report a deferred write error (NFS): it counts. */
    if (close(fd) != 0 && st == TD_OK)
        st = tdi_fail(TD_ERR_IO, "checkpoint '%s': close: %s", path,
                      tdi_errno_text(errno, eb, sizeof eb));
    if (st == TD_OK && rename(tmp, path) != 0)
        st = tdi_fail(TD_ERR_IO, "checkpoint '%s': rename from '%s': %s", path, tmp,
                      tdi_errno_text(errno, eb, sizeof eb));
    if (st != TD_OK)
        (void)unlink(tmp);
    else
        sync_parent(path, tmp);
    tdi_free(&w->alloc, tmp);
    tdi_free(&w->alloc, staging);
    return st;
}

td_status tdi_write_atomic(const td_allocator *a, const char *path, const void *const *parts,
                           const size_t *sizes, size_t n_parts)
{
    char eb[128];
    char *tmp = NULL;
    int fd = -1;
    TDI_TRY(create_temp(a, parts, path, &tmp, &fd));
    td_status st = TD_OK;
    uint64_t pos = 0;
    for (size_t i = 0; st == TD_OK && i < n_parts; i++) {
        st = write_all(fd, path, parts[i], sizes[i], pos, 0);
        pos += sizes[i];
    }
    if (st == TD_OK && fsync(fd) != 0)
        st = tdi_fail(TD_ERR_IO, "'%s': fsync: %s", path, tdi_errno_text(errno, eb, sizeof eb));
    if (close(fd) != 0 && st == TD_OK)
        st = tdi_fail(TD_ERR_IO, "'%s': close: %s", path, tdi_errno_text(errno, eb, sizeof eb));
    if (st == TD_OK && rename(tmp, path) != 0)
        st = tdi_fail(TD_ERR_IO, "'%s': rename from '%s': %s", path, tmp,
                      tdi_errno_text(errno, eb, sizeof eb));
    if (st != TD_OK)
        (void)unlink(tmp);
    else
        sync_parent(path, tmp);
    tdi_free(a, tmp);
    return st;
}
