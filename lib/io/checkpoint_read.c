/* Checkpoint reader. The file is hostile until proven otherwise: every size
 * is checked against the limits, the file size and its neighbours before it
 * is used, in 64-bit arithmetic that cannot overflow, and nothing is
 * allocated from a size that has not passed those checks. */
#include "io/checkpoint_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "util/alloc.h"
#include "util/error.h"

/* Fuzzing builds compute CRCs but accept mismatches, so that mutated inputs
 * reach the parsers behind the checksums. */
#if defined(FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
#  define TDI_CKPT_ENFORCE_CRC 0
#else
#  define TDI_CKPT_ENFORCE_CRC 1
#endif

typedef struct meta_entry {
    const char *key; /* NUL-terminated */
    uint32_t type;
    size_t n;        /* string bytes or array elements */
    union { int64_t i; uint64_t u; double f; const void *p; } v;
} meta_entry;

/* Where a tensor's bytes are in the file; needed only while loading. */
typedef struct tensor_src {
    uint64_t offset, stored, raw;
    uint32_t crc, codec;
} tensor_src;

struct tdi_ckpt {
    td_allocator alloc;
    uint32_t major, minor;
    uint32_t meta_count, tensor_count;
    meta_entry *meta;        /* block: entries, names, ids, payload */
    tdi_name *meta_names;
    uint32_t *meta_ids;      /* sorted by key */
    tdi_ckpt_tensor *tensors; /* block: tensors, sources, names, ids, name bytes */
    tensor_src *tsrc;
    tdi_name *tensor_names;
    uint32_t *tensor_ids;    /* sorted by name */
    unsigned char *data;     /* all tensors not borrowed, each at a multiple of 64 */
};

typedef struct section {
    uint64_t offset, stored, raw;
    uint32_t crc, codec;
} section;

typedef struct rd {
    const td_allocator *a;
    const char *name;          /* path or "<memory>", for messages */
    const unsigned char *mem;  /* memory source, or NULL */
    int fd;                    /* file source, or -1 */
    uint64_t size;
    uint32_t major, minor;
    int borrow;                /* memory source that outlives the reader */
    unsigned char *chunk;      /* file source: TDI_CKPT_CHUNK */
    z_stream zs;
    int z_ready;
} rd;

TDI_PRINTF(3, 4)
static td_status rd_fail(const rd *r, td_status st, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tdi_fail(st, "checkpoint '%s': %s", r->name, msg);
}

static td_status rd_nomem(const rd *r, const char *what, uint64_t bytes)
{
    return rd_fail(r, TD_ERR_NOMEM, "cannot allocate %llu bytes for %s",
                   (unsigned long long)bytes, what);
}

/* Allocation sizes come from 64-bit file fields. */
static void *rd_alloc(const rd *r, uint64_t bytes)
{
#if SIZE_MAX < UINT64_MAX
    if (bytes > SIZE_MAX - TDI_ALIGN) return NULL;
#endif
    return tdi_malloc(r->a, (size_t)bytes);
}

/* Copy [off, off + n) of the source to dst; the caller has checked the range
 * against r->size. A file that shrinks meanwhile reads short: truncated. */
static td_status src_read(rd *r, uint64_t off, void *dst, uint64_t n)
{
    if (r->mem) {
        if (n) memcpy(dst, r->mem + off, (size_t)n);
        return TD_OK;
    }
    unsigned char *d = dst;
    while (n > 0) {
        size_t piece = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t got = pread(r->fd, d, piece, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            char eb[128];
            return rd_fail(r, TD_ERR_IO, "read at offset %llu: %s", (unsigned long long)off,
                           tdi_errno_text(errno, eb, sizeof eb));
        }
        if (got == 0)
            return rd_fail(r, TD_ERR_CORRUPT, "truncated: nothing to read at offset %llu",
                           (unsigned long long)off);
        d += got;
        off += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return TD_OK;
}

static td_status check_crc(const rd *r, const char *what, uint64_t offset, uint32_t stored,
                           uint32_t computed)
{
    if (stored == computed || !TDI_CKPT_ENFORCE_CRC) return TD_OK;
    return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: CRC-32 mismatch (stored 0x%08x, "
                   "computed 0x%08x)", what, (unsigned long long)offset, (unsigned)stored,
                   (unsigned)computed);
}

/* ---------------------------------------------------------------------------
 * Regions: stored or zlib, CRC over the stored bytes
 * ------------------------------------------------------------------------- */

/* Codec and sizes of a region, before anything is read or allocated. */
static td_status check_region(const rd *r, const char *what, uint64_t offset,
                              uint64_t stored, uint64_t raw, uint32_t codec)
{
    if (codec != TDI_CODEC_NONE && codec != TDI_CODEC_ZLIB)
        return rd_fail(r, TD_ERR_FORMAT, "%s: unknown codec %u", what, (unsigned)codec);
    if (codec == TDI_CODEC_NONE && stored != raw)
        return rd_fail(r, TD_ERR_CORRUPT, "%s: stored_size %llu != raw_size %llu without "
                       "compression", what, (unsigned long long)stored,
                       (unsigned long long)raw);
    /* raw > 1032 * stored, without the overflowing product */
    if (codec == TDI_CODEC_ZLIB && (raw / TDI_CKPT_ZLIB_RATIO > stored ||
                                    (raw / TDI_CKPT_ZLIB_RATIO == stored &&
                                     raw % TDI_CKPT_ZLIB_RATIO != 0)))
        return rd_fail(r, TD_ERR_CORRUPT, "%s: raw_size %llu is more than zlib can produce "
                       "from stored_size %llu", what, (unsigned long long)raw,
                       (unsigned long long)stored);
    if (offset > r->size || stored > r->size - offset)
        return rd_fail(r, TD_ERR_CORRUPT, "%s: %llu bytes at offset %llu run past the end "
                       "of the file (%llu bytes)", what, (unsigned long long)stored,
                       (unsigned long long)offset, (unsigned long long)r->size);
    return TD_OK;
}

static td_status inflate_start(rd *r)
{
    if (r->z_ready) {
        if (inflateReset(&r->zs) != Z_OK)
            return rd_fail(r, TD_ERR_INTERNAL, "inflateReset failed");
        return TD_OK;
    }
    memset(&r->zs, 0, sizeof r->zs);
    r->zs.zalloc = tdi_zalloc;
    r->zs.zfree = tdi_zfree;
    r->zs.opaque = (void *)(uintptr_t)r->a; /* zlib's opaque is not const */
    int ret = inflateInit(&r->zs);
    if (ret == Z_MEM_ERROR) return rd_nomem(r, "the zlib state", sizeof(z_stream));
    if (ret != Z_OK) return rd_fail(r, TD_ERR_INTERNAL, "inflateInit failed (%d)", ret);
    r->z_ready = 1;
    return TD_OK;
}

/* Decompress a zlib region into dst (raw bytes), adding the stored bytes it
 * reads from a file to *crc. */
static td_status inflate_region(rd *r, const char *what, const section *g, unsigned char *dst,
                                uint32_t *crc)
{
    TDI_TRY(inflate_start(r));
    z_stream *zs = &r->zs;
    uint64_t in_off = g->offset, in_left = g->stored, out_done = 0;
    unsigned char dummy; /* zlib wants a non-NULL next_out even for 0 bytes */
    zs->avail_in = 0;
    for (;;) {
        if (zs->avail_in == 0 && in_left > 0) {
            size_t n;
            if (r->mem) {
                n = in_left > (1u << 30) ? (1u << 30) : (size_t)in_left;
                zs->next_in = (Bytef *)(uintptr_t)(r->mem + in_off);
            } else {
                n = in_left > TDI_CKPT_CHUNK ? TDI_CKPT_CHUNK : (size_t)in_left;
                TDI_TRY(src_read(r, in_off, r->chunk, n));
                *crc = tdi_crc32(*crc, r->chunk, n);
                zs->next_in = r->chunk;
            }
            zs->avail_in = (uInt)n;
            in_off += n;
            in_left -= n;
        }
        uint64_t room = g->raw - out_done;
        uInt avail = room > (1u << 30) ? (1u << 30) : (uInt)room;
        zs->next_out = avail ? dst + out_done : &dummy;
        zs->avail_out = avail;
        int ret = inflate(zs, Z_NO_FLUSH);
        out_done += avail - zs->avail_out;
        if (ret == Z_STREAM_END) break;
        if (ret == Z_OK) continue;
        if (ret == Z_MEM_ERROR) return rd_nomem(r, "the zlib window", 1u << 15);
        /* No progress possible: the input ran out first, or the output. */
        if (ret == Z_BUF_ERROR && zs->avail_in == 0 && in_left == 0)
            return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: zlib stream ends early "
                           "(%llu of %llu bytes decompressed)", what,
                           (unsigned long long)g->offset, (unsigned long long)out_done,
                           (unsigned long long)g->raw);
        if (ret == Z_BUF_ERROR)
            return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: decompresses to more than "
                           "raw_size %llu bytes", what, (unsigned long long)g->offset,
                           (unsigned long long)g->raw);
        return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: zlib: %s", what,
                       (unsigned long long)g->offset, zs->msg ? zs->msg : "stream error");
    }
    if (out_done != g->raw)
        return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: decompresses to %llu bytes, "
                       "raw_size is %llu", what, (unsigned long long)g->offset,
                       (unsigned long long)out_done, (unsigned long long)g->raw);
    if (zs->avail_in > 0 || in_left > 0)
        return rd_fail(r, TD_ERR_CORRUPT, "%s at offset %llu: %llu bytes after the end of "
                       "the zlib stream", what, (unsigned long long)g->offset,
                       (unsigned long long)(zs->avail_in + in_left));
    return TD_OK;
}

/* Read a checked region into dst (g->raw bytes), verifying its CRC. From
 * memory the CRC is checked before decompression; from a file, as the bytes
 * stream past. */
static td_status load_region(rd *r, const char *what, const section *g, unsigned char *dst)
{
    uint32_t crc = 0;
    if (g->codec == TDI_CODEC_NONE) {
        TDI_TRY(src_read(r, g->offset, dst, g->stored));
        return check_crc(r, what, g->offset, g->crc, tdi_crc32(0, dst, (size_t)g->stored));
    }
    if (r->mem) {
        crc = tdi_crc32(0, r->mem + g->offset, (size_t)g->stored);
        TDI_TRY(check_crc(r, what, g->offset, g->crc, crc));
        return inflate_region(r, what, g, dst, &crc);
    }
    TDI_TRY(inflate_region(r, what, g, dst, &crc));
    return check_crc(r, what, g->offset, g->crc, crc);
}

/* A tensor whose bytes in the source are already its decoded data: stored,
 * little-endian like the host, in a buffer that outlives the reader. */
static int borrowed(const rd *r, const tensor_src *s)
{
    return r->borrow && s->codec == TDI_CODEC_NONE && tdi_host_is_little_endian();
}

/* ---------------------------------------------------------------------------
 * Header
 * ------------------------------------------------------------------------- */
typedef struct header {
    uint32_t major, minor, header_size;
    uint64_t file_size;
    uint32_t meta_count, tensor_count;
    section meta, dir;
} header;

static section get_section(const unsigned char *p)
{
    section s;
    s.offset = tdi_le_get64(p + TDI_S_OFFSET);
    s.stored = tdi_le_get64(p + TDI_S_STORED);
    s.raw = tdi_le_get64(p + TDI_S_RAW);
    s.crc = tdi_le_get32(p + TDI_S_CRC);
    s.codec = p[TDI_S_CODEC];
    return s;
}

static td_status read_prefix(rd *r, header *h)
{
    unsigned char p[TDI_CKPT_PREFIX_LEN];
    if (r->size == 0) return rd_fail(r, TD_ERR_FORMAT, "empty (0 bytes): not a checkpoint");
    size_t have = r->size < sizeof p ? (size_t)r->size : sizeof p;
    TDI_TRY(src_read(r, 0, p, have));
    size_t cmp = have < TDI_CKPT_MAGIC_LEN ? have : TDI_CKPT_MAGIC_LEN;
    if (memcmp(p, TDI_CKPT_MAGIC, cmp) != 0)
        return rd_fail(r, TD_ERR_FORMAT, "bad magic at offset 0: not a checkpoint");
    if (have < sizeof p)
        return rd_fail(r, TD_ERR_CORRUPT, "truncated: %zu bytes, shorter than the %d-byte "
                       "prefix", have, TDI_CKPT_PREFIX_LEN);
    h->major = tdi_le_get16(p + TDI_H_MAJOR);
    h->minor = tdi_le_get16(p + TDI_H_MINOR);
    h->header_size = tdi_le_get32(p + TDI_H_HEADER_SIZE);
    if (h->major != TDI_CKPT_MAJOR && h->major != TDI_CKPT_MAJOR_QUANT)
        return rd_fail(r, TD_ERR_VERSION, "format version %u.%u: this reader reads major "
                       "versions %d and %d only", (unsigned)h->major, (unsigned)h->minor,
                       TDI_CKPT_MAJOR, TDI_CKPT_MAJOR_QUANT);
    uint32_t hs = h->header_size;
    if (h->minor <= TDI_CKPT_MINOR ? hs != TDI_CKPT_HEADER_SIZE
                                   : (hs < TDI_CKPT_HEADER_SIZE || hs > TDI_CKPT_MAX_HEADER ||
                                      hs % 4 != 0))
        return rd_fail(r, TD_ERR_FORMAT, "header_size %u (offset %d) is invalid for version "
                       "%u.%u", (unsigned)hs, TDI_H_HEADER_SIZE, (unsigned)h->major,
                       (unsigned)h->minor);
    if (hs > r->size)
        return rd_fail(r, TD_ERR_CORRUPT, "truncated: %llu bytes, shorter than the %u-byte "
                       "header", (unsigned long long)r->size, (unsigned)hs);
    return TD_OK;
}

static td_status read_header(rd *r, header *h)
{
    TDI_TRY(read_prefix(r, h));
    unsigned char p[TDI_CKPT_MAX_HEADER];
    uint32_t hs = h->header_size;
    TDI_TRY(src_read(r, 0, p, hs));
    TDI_TRY(check_crc(r, "header", 0, tdi_le_get32(p + hs - 4), tdi_crc32(0, p, hs - 4)));
    h->file_size = tdi_le_get64(p + TDI_H_FILE_SIZE);
    h->meta_count = tdi_le_get32(p + TDI_H_META_COUNT);
    h->tensor_count = tdi_le_get32(p + TDI_H_TENSOR_COUNT);
    h->meta = get_section(p + TDI_H_META);
    h->dir = get_section(p + TDI_H_DIR);
    r->major = h->major;
    r->minor = h->minor;

    if (h->file_size > TDI_CKPT_MAX_FILE_BYTES)
        return rd_fail(r, TD_ERR_FORMAT, "file_size %llu is over the limit %llu",
                       (unsigned long long)h->file_size,
                       (unsigned long long)TDI_CKPT_MAX_FILE_BYTES);
    if (h->file_size > r->size)
        return rd_fail(r, TD_ERR_CORRUPT, "truncated: %llu bytes, header says %llu",
                       (unsigned long long)r->size, (unsigned long long)h->file_size);
    if (h->file_size < r->size)
        return rd_fail(r, TD_ERR_CORRUPT, "%llu bytes after the end (file_size %llu)",
                       (unsigned long long)(r->size - h->file_size),
                       (unsigned long long)h->file_size);
    if (h->meta_count > TDI_CKPT_MAX_META)
        return rd_fail(r, TD_ERR_FORMAT, "meta_count %u is over the limit %u",
                       (unsigned)h->meta_count, TDI_CKPT_MAX_META);
    if (h->tensor_count > TDI_CKPT_MAX_TENSORS)
        return rd_fail(r, TD_ERR_FORMAT, "tensor_count %u is over the limit %u",
                       (unsigned)h->tensor_count, TDI_CKPT_MAX_TENSORS);
    if (h->meta.raw > TDI_CKPT_MAX_META_BYTES)
        return rd_fail(r, TD_ERR_FORMAT, "metadata raw_size %llu is over the limit %llu",
                       (unsigned long long)h->meta.raw,
                       (unsigned long long)TDI_CKPT_MAX_META_BYTES);
    if (h->dir.raw > TDI_CKPT_MAX_DIR_BYTES)
        return rd_fail(r, TD_ERR_FORMAT, "directory raw_size %llu is over the limit %llu",
                       (unsigned long long)h->dir.raw,
                       (unsigned long long)TDI_CKPT_MAX_DIR_BYTES);
    TDI_TRY(check_region(r, "metadata section", h->meta.offset, h->meta.stored, h->meta.raw,
                         h->meta.codec));
    TDI_TRY(check_region(r, "tensor directory", h->dir.offset, h->dir.stored, h->dir.raw,
                         h->dir.codec));
    if (h->meta.offset != hs)
        return rd_fail(r, TD_ERR_FORMAT, "metadata section at offset %llu, expected %u",
                       (unsigned long long)h->meta.offset, (unsigned)hs);
    if (h->dir.offset < h->meta.offset + h->meta.stored ||
        h->dir.offset + h->dir.stored != h->file_size)
        return rd_fail(r, TD_ERR_FORMAT, "tensor directory at offset %llu (%llu bytes) does "
                       "not end the file after the metadata", (unsigned long long)h->dir.offset,
                       (unsigned long long)h->dir.stored);
    /* Lower bounds on the sections' sizes, before allocating from them:
     * every entry has a fixed part and a name of at least one byte. */
    if (h->meta.raw < (uint64_t)h->meta_count * (TDI_M_FIXED + 1))
        return rd_fail(r, TD_ERR_CORRUPT, "metadata raw_size %llu cannot hold %u entries",
                       (unsigned long long)h->meta.raw, (unsigned)h->meta_count);
    if (h->dir.raw < (uint64_t)h->tensor_count * (TDI_D_FIXED + 1))
        return rd_fail(r, TD_ERR_CORRUPT, "directory raw_size %llu cannot hold %u entries",
                       (unsigned long long)h->dir.raw, (unsigned)h->tensor_count);
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------- */
static int has_nul(const unsigned char *p, size_t n)
{
    return n > 0 && memchr(p, 0, n) != NULL;
}

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

/* Validate one entry at raw[off]; returns its size and its payload needs. */
static td_status check_meta_entry(const rd *r, const unsigned char *raw, size_t size,
                                  size_t off, uint32_t i, size_t *entry, size_t *payload)
{
    if (size - off < TDI_M_FIXED)
        return rd_fail(r, TD_ERR_CORRUPT, "metadata entry %u at byte %zu runs past the end "
                       "of the section", (unsigned)i, off);
    const unsigned char *p = raw + off;
    size_t key_len = tdi_le_get16(p + TDI_M_KEY_LEN);
    uint32_t type = tdi_le_get16(p + TDI_M_TYPE);
    size_t value_len = tdi_le_get32(p + TDI_M_VALUE_LEN);
    if (key_len < 1 || key_len > TDI_CKPT_MAX_NAME)
        return rd_fail(r, TD_ERR_FORMAT, "metadata entry %u at byte %zu: key_len %zu is not "
                       "1..%d", (unsigned)i, off, key_len, TDI_CKPT_MAX_NAME);
    if (size - off - TDI_M_FIXED < key_len ||
        size - off - TDI_M_FIXED - key_len < value_len)
        return rd_fail(r, TD_ERR_CORRUPT, "metadata entry %u at byte %zu runs past the end "
                       "of the section", (unsigned)i, off);
    const unsigned char *key = p + TDI_M_FIXED;
    if (has_nul(key, key_len))
        return rd_fail(r, TD_ERR_FORMAT, "metadata entry %u at byte %zu: key contains a NUL",
                       (unsigned)i, off);
    size_t need = key_len + 1;
    switch (type) {
    case TDI_META_I64:
    case TDI_META_U64:
    case TDI_META_F64:
        if (value_len != 8)
            return rd_fail(r, TD_ERR_FORMAT, "metadata key '%.*s': value_len %zu, an %s "
                           "takes 8", (int)key_len, (const char *)key, value_len,
                           tdi_meta_type_name(type));
        break;
    case TDI_META_STRING:
        if (value_len > TDI_CKPT_MAX_STRING || has_nul(key + key_len, value_len))
            return rd_fail(r, TD_ERR_FORMAT, "metadata key '%.*s': string of %zu bytes is "
                           "over %llu or contains a NUL", (int)key_len, (const char *)key,
                           value_len, (unsigned long long)TDI_CKPT_MAX_STRING);
        need += value_len + 1;
        break;
    case TDI_META_I64_ARRAY:
    case TDI_META_U64_ARRAY:
    case TDI_META_F64_ARRAY:
        if (value_len % 8 != 0 || value_len / 8 > TDI_CKPT_MAX_ARRAY)
            return rd_fail(r, TD_ERR_FORMAT, "metadata key '%.*s': value_len %zu is not a "
                           "multiple of 8 up to %llu elements", (int)key_len,
                           (const char *)key, value_len,
                           (unsigned long long)TDI_CKPT_MAX_ARRAY);
        need = align8(need) + value_len;
        break;
    default:
        if (type == 0 || r->minor <= TDI_CKPT_MINOR)
            return rd_fail(r, TD_ERR_FORMAT, "metadata key '%.*s': unknown type %u",
                           (int)key_len, (const char *)key, (unsigned)type);
        break; /* from a newer minor: kept by name, value skipped */
    }
    *entry = TDI_M_FIXED + key_len + value_len;
    *payload = align8(need);
    return TD_OK;
}

/* Decode one validated entry, its key and value going to *pay. */
static void decode_meta_entry(const unsigned char *p, meta_entry *e, tdi_name *name,
                              unsigned char **pay)
{
    size_t key_len = tdi_le_get16(p + TDI_M_KEY_LEN);
    size_t value_len = tdi_le_get32(p + TDI_M_VALUE_LEN);
    const unsigned char *value = p + TDI_M_FIXED + key_len;
    unsigned char *q = *pay;
    memcpy(q, p + TDI_M_FIXED, key_len);
    q[key_len] = '\0';
    e->key = (const char *)q;
    name->p = e->key;
    name->len = key_len;
    e->type = tdi_le_get16(p + TDI_M_TYPE);
    e->n = 0;
    size_t used = key_len + 1;
    switch (e->type) {
    case TDI_META_I64: e->v.i = (int64_t)tdi_le_get64(value); break;
    case TDI_META_U64: e->v.u = tdi_le_get64(value); break;
    case TDI_META_F64: {
        uint64_t bits = tdi_le_get64(value);
        memcpy(&e->v.f, &bits, 8);
        break;
    }
    case TDI_META_STRING:
        memcpy(q + used, value, value_len);
        q[used + value_len] = '\0';
        e->v.p = q + used;
        e->n = value_len;
        used += value_len + 1;
        break;
    case TDI_META_I64_ARRAY:
    case TDI_META_U64_ARRAY:
    case TDI_META_F64_ARRAY:
        used = align8(used);
        tdi_le_convert(q + used, value, value_len, 8);
        e->v.p = value_len ? q + used : NULL;
        e->n = value_len / 8;
        used += value_len;
        break;
    default: e->v.p = NULL; break;
    }
    *pay = q + align8(used);
}

static td_status parse_meta(rd *r, tdi_ckpt *c, const unsigned char *raw, size_t size)
{
    uint32_t n = c->meta_count;
    size_t off = 0, payload = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t entry = 0, need = 0;
        TDI_TRY(check_meta_entry(r, raw, size, off, i, &entry, &need));
        off += entry;
        payload += need;
    }
    if (off != size)
        return rd_fail(r, TD_ERR_CORRUPT, "metadata entries end at byte %zu of %zu", off,
                       size);
    /* Entries hold at least 9 raw bytes each, so none of these overflow. */
    size_t entries = align8((size_t)n * sizeof(meta_entry));
    size_t names = align8((size_t)n * sizeof(tdi_name));
    size_t ids = align8((size_t)n * sizeof(uint32_t));
    unsigned char *block = rd_alloc(r, entries + names + ids + payload);
    if (!block) return rd_nomem(r, "metadata", entries + names + ids + payload);
    c->meta = (meta_entry *)(void *)block;
    c->meta_names = (tdi_name *)(void *)(block + entries);
    c->meta_ids = (uint32_t *)(void *)(block + entries + names);
    unsigned char *pay = block + entries + names + ids;
    off = 0;
    for (uint32_t i = 0; i < n; i++) {
        decode_meta_entry(raw + off, &c->meta[i], &c->meta_names[i], &pay);
        off += TDI_M_FIXED + tdi_le_get16(raw + off + TDI_M_KEY_LEN) +
               tdi_le_get32(raw + off + TDI_M_VALUE_LEN);
        c->meta_ids[i] = i;
    }
    tdi_names_sort(c->meta_ids, n, c->meta_names);
    uint32_t dup = tdi_names_duplicate(c->meta_ids, n, c->meta_names);
    if (dup != UINT32_MAX)
        return rd_fail(r, TD_ERR_FORMAT, "metadata key '%s' occurs more than once",
                       c->meta[dup].key);
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Tensor directory
 * ------------------------------------------------------------------------- */
static td_status check_dir_entry(const rd *r, const unsigned char *raw, size_t size,
                                 size_t off, uint32_t i, size_t *entry)
{
    if (size - off < TDI_D_FIXED)
        return rd_fail(r, TD_ERR_CORRUPT, "directory entry %u at byte %zu runs past the end "
                       "of the section", (unsigned)i, off);
    const unsigned char *p = raw + off;
    size_t entry_size = tdi_le_get32(p + TDI_D_ENTRY_SIZE);
    size_t name_len = tdi_le_get16(p + TDI_D_NAME_LEN);
    if (name_len < 1 || name_len > TDI_CKPT_MAX_NAME)
        return rd_fail(r, TD_ERR_FORMAT, "directory entry %u at byte %zu: name_len %zu is "
                       "not 1..%d", (unsigned)i, off, name_len, TDI_CKPT_MAX_NAME);
    if (r->minor <= TDI_CKPT_MINOR ? entry_size != TDI_D_FIXED + name_len
                                   : entry_size < TDI_D_FIXED + name_len)
        return rd_fail(r, TD_ERR_FORMAT, "directory entry %u at byte %zu: entry_size %zu "
                       "for a %zu-byte name", (unsigned)i, off, entry_size, name_len);
    if (entry_size > size - off)
        return rd_fail(r, TD_ERR_CORRUPT, "directory entry %u at byte %zu runs past the end "
                       "of the section", (unsigned)i, off);
    if (has_nul(p + TDI_D_FIXED, name_len))
        return rd_fail(r, TD_ERR_FORMAT, "directory entry %u at byte %zu: name contains a "
                       "NUL", (unsigned)i, off);
    *entry = entry_size;
    return TD_OK;
}

/* Shape, sizes and position of one tensor; *end is where the previous region
 * ended and becomes where this one ends; *raw_total sums the tensors for the
 * 2^40-byte limit. */
static td_status decode_dir_entry(const rd *r, const unsigned char *p, uint32_t i,
                                  tdi_ckpt_tensor *t, tensor_src *s, uint64_t *end,
                                  uint64_t *raw_total)
{
    char what[300];
    size_t name_len = tdi_le_get16(p + TDI_D_NAME_LEN);
    snprintf(what, sizeof what, "tensor %u '%.*s'", (unsigned)i, (int)name_len,
             (const char *)p + TDI_D_FIXED);
    uint32_t dtype = p[TDI_D_DTYPE], ndim = p[TDI_D_NDIM];
    uint64_t esize = tdi_dtype_size(dtype), block = tdi_dtype_block(dtype);
    if (esize == 0 || (dtype >= TDI_DTYPE_BF16 && r->major < TDI_CKPT_MAJOR_QUANT))
        return rd_fail(r, TD_ERR_FORMAT, "%s: unknown dtype %u in a version %u file", what,
                       (unsigned)dtype, (unsigned)r->major);
    if (block > 1 && (ndim == 0 || ndim > TDI_CKPT_MAX_DIMS ||
                      tdi_le_get64(p + TDI_D_DIMS + 8 * (ndim - 1)) % block != 0))
        return rd_fail(r, TD_ERR_FORMAT, "%s: a %s tensor's last dimension must be a multiple "
                       "of %u", what, tdi_dtype_name(dtype), (unsigned)block);
    if (ndim > TDI_CKPT_MAX_DIMS)
        return rd_fail(r, TD_ERR_FORMAT, "%s: ndim %u is over %d", what, (unsigned)ndim,
                       TDI_CKPT_MAX_DIMS);
    uint64_t count = 1;
    for (uint32_t d = 0; d < TDI_CKPT_MAX_DIMS; d++) {
        uint64_t dim = tdi_le_get64(p + TDI_D_DIMS + 8 * d);
        if (d >= ndim) {
            if (dim != 0)
                return rd_fail(r, TD_ERR_FORMAT, "%s: unused dims[%u] is %llu, not 0", what,
                               (unsigned)d, (unsigned long long)dim);
            t->dims[d] = 1;
            continue;
        }
        if (dim == 0 || dim > TDI_CKPT_MAX_DATA_BYTES / esize / count)
            return rd_fail(r, TD_ERR_FORMAT, "%s: dims[%u] = %llu is 0 or makes the tensor "
                           "larger than %llu bytes", what, (unsigned)d,
                           (unsigned long long)dim,
                           (unsigned long long)TDI_CKPT_MAX_DATA_BYTES);
        count *= dim;
        t->dims[d] = dim;
    }
    s->offset = tdi_le_get64(p + TDI_D_OFFSET);
    s->stored = tdi_le_get64(p + TDI_D_STORED);
    s->raw = tdi_le_get64(p + TDI_D_RAW);
    s->crc = tdi_le_get32(p + TDI_D_CRC);
    s->codec = p[TDI_D_CODEC];
    if (s->raw != count / block * esize)
        return rd_fail(r, TD_ERR_CORRUPT, "%s: raw_size %llu, but %llu elements of %s take "
                       "%llu", what, (unsigned long long)s->raw, (unsigned long long)count,
                       tdi_dtype_name(dtype), (unsigned long long)(count / block * esize));
    TDI_TRY(check_region(r, what, s->offset, s->stored, s->raw, s->codec));
    uint64_t expect = tdi_align64(*end);
    if (s->offset != expect)
        return rd_fail(r, TD_ERR_FORMAT, "%s: data at offset %llu, the layout puts it at %llu",
                       what, (unsigned long long)s->offset, (unsigned long long)expect);
    if (s->raw > TDI_CKPT_MAX_DATA_BYTES - *raw_total)
        return rd_fail(r, TD_ERR_FORMAT, "%s: all tensors together are over %llu bytes", what,
                       (unsigned long long)TDI_CKPT_MAX_DATA_BYTES);
    *raw_total += s->raw;
    *end = s->offset + s->stored; /* both bounded by the file size */
    t->dtype = (tdi_dtype)dtype;
    t->ndim = ndim;
    t->count = count;
    t->nbytes = (size_t)s->raw;
    return TD_OK;
}

static td_status parse_dir(rd *r, tdi_ckpt *c, const header *h, const unsigned char *raw,
                           size_t size, uint64_t *total)
{
    uint32_t n = c->tensor_count;
    size_t off = 0, name_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t entry = 0;
        TDI_TRY(check_dir_entry(r, raw, size, off, i, &entry));
        name_bytes += tdi_le_get16(raw + off + TDI_D_NAME_LEN) + 1u;
        off += entry;
    }
    if (off != size)
        return rd_fail(r, TD_ERR_CORRUPT, "directory entries end at byte %zu of %zu", off,
                       size);
    size_t tensors = align8((size_t)n * sizeof(tdi_ckpt_tensor));
    size_t srcs = align8((size_t)n * sizeof(tensor_src));
    size_t names = align8((size_t)n * sizeof(tdi_name));
    size_t ids = align8((size_t)n * sizeof(uint32_t));
    uint64_t bytes = (uint64_t)tensors + srcs + names + ids + name_bytes;
    unsigned char *block = rd_alloc(r, bytes);
    if (!block) return rd_nomem(r, "the tensor directory", bytes);
    c->tensors = (tdi_ckpt_tensor *)(void *)block;
    c->tsrc = (tensor_src *)(void *)(block + tensors);
    c->tensor_names = (tdi_name *)(void *)(block + tensors + srcs);
    c->tensor_ids = (uint32_t *)(void *)(block + tensors + srcs + names);
    char *chars = (char *)block + tensors + srcs + names + ids;

    uint64_t end = h->meta.offset + h->meta.stored, raw_total = 0;
    *total = 0; /* the in-memory block: each tensor at a multiple of 64 */
    off = 0;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = raw + off;
        tdi_ckpt_tensor *t = &c->tensors[i];
        memset(t, 0, sizeof *t);
        size_t name_len = tdi_le_get16(p + TDI_D_NAME_LEN);
        memcpy(chars, p + TDI_D_FIXED, name_len);
        chars[name_len] = '\0';
        t->name = chars;
        c->tensor_names[i].p = chars;
        c->tensor_names[i].len = name_len;
        c->tensor_ids[i] = i;
        chars += name_len + 1;
        TDI_TRY(decode_dir_entry(r, p, i, t, &c->tsrc[i], &end, &raw_total));
        if (!borrowed(r, &c->tsrc[i])) *total += tdi_align64(c->tsrc[i].raw);
        if (end > h->dir.offset)
            return rd_fail(r, TD_ERR_FORMAT, "tensor %u '%s' overlaps the directory at "
                           "offset %llu", (unsigned)i, t->name,
                           (unsigned long long)h->dir.offset);
        off += tdi_le_get32(p + TDI_D_ENTRY_SIZE);
    }
    if (end != h->dir.offset)
        return rd_fail(r, TD_ERR_FORMAT, "tensor directory at offset %llu, the layout puts it "
                       "at %llu", (unsigned long long)h->dir.offset, (unsigned long long)end);
    tdi_names_sort(c->tensor_ids, n, c->tensor_names);
    uint32_t dup = tdi_names_duplicate(c->tensor_ids, n, c->tensor_names);
    if (dup != UINT32_MAX)
        return rd_fail(r, TD_ERR_FORMAT, "tensor name '%s' occurs more than once",
                       c->tensors[dup].name);
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Tensor data
 * ------------------------------------------------------------------------- */
static td_status check_padding(rd *r, uint64_t from, uint64_t to)
{
    unsigned char pad[TDI_CKPT_ALIGN];
    size_t n = (size_t)(to - from); /* < 64 by the layout rule */
    TDI_TRY(src_read(r, from, pad, n));
    for (size_t i = 0; i < n; i++)
        if (pad[i] != 0)
            return rd_fail(r, TD_ERR_CORRUPT, "non-zero padding byte at offset %llu",
                           (unsigned long long)(from + i));
    return TD_OK;
}

static td_status load_tensors(rd *r, tdi_ckpt *c, const header *h, uint64_t total)
{
    if (c->tensor_count == 0) return TD_OK;
    if (total > 0) {
        c->data = rd_alloc(r, total);
        if (!c->data) return rd_nomem(r, "tensor data", total);
    }
    uint64_t end = h->meta.offset + h->meta.stored, at = 0;
    for (uint32_t i = 0; i < c->tensor_count; i++) {
        tdi_ckpt_tensor *t = &c->tensors[i];
        const tensor_src *s = &c->tsrc[i];
        char what[300];
        snprintf(what, sizeof what, "tensor %u '%s'", (unsigned)i, t->name);
        TDI_TRY(check_padding(r, end, s->offset));
        end = s->offset + s->stored;
        if (borrowed(r, s)) {
            const unsigned char *src = r->mem + s->offset;
            TDI_TRY(check_crc(r, what, s->offset, s->crc, tdi_crc32(0, src, (size_t)s->stored)));
            t->data = src;
            continue;
        }
        section g = { s->offset, s->stored, s->raw, s->crc, s->codec };
        unsigned char *dst = c->data + at;
        TDI_TRY(load_region(r, what, &g, dst));
        tdi_le_convert(dst, dst, t->nbytes, tdi_dtype_size(t->dtype));
        t->data = dst;
        at = tdi_align64(at + s->raw);
    }
    return TD_OK;
}

/* ---------------------------------------------------------------------------
 * Whole file
 * ------------------------------------------------------------------------- */
static td_status load_section(rd *r, const char *what, const section *g, unsigned char **out)
{
    unsigned char *buf = rd_alloc(r, g->raw);
    if (!buf) return rd_nomem(r, what, g->raw);
    td_status st = load_region(r, what, g, buf);
    if (st != TD_OK) {
        tdi_free(r->a, buf);
        return st;
    }
    *out = buf;
    return TD_OK;
}

static td_status parse(rd *r, tdi_ckpt *c)
{
    header h;
    TDI_TRY(read_header(r, &h));
    c->major = h.major;
    c->minor = h.minor;
    c->meta_count = h.meta_count;
    c->tensor_count = h.tensor_count;

    unsigned char *raw = NULL;
    TDI_TRY(load_section(r, "metadata section", &h.meta, &raw));
    td_status st = parse_meta(r, c, raw, (size_t)h.meta.raw);
    tdi_free(r->a, raw);
    TDI_TRY(st);

    uint64_t total = 0;
    TDI_TRY(load_section(r, "tensor directory", &h.dir, &raw));
    st = parse_dir(r, c, &h, raw, (size_t)h.dir.raw, &total);
    tdi_free(r->a, raw);
    TDI_TRY(st);
    return load_tensors(r, c, &h, total);
}

static td_status read_common(rd *r, const td_allocator *alloc, tdi_ckpt **out)
{
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_ckpt *c = tdi_malloc(&a, sizeof *c);
    if (!c) return tdi_nomem("tdi_ckpt_read", sizeof *c);
    memset(c, 0, sizeof *c);
    c->alloc = a;
    r->a = &c->alloc;
    td_status st = TD_OK;
    if (!r->mem) {
        r->chunk = tdi_malloc(r->a, TDI_CKPT_CHUNK);
        if (!r->chunk) st = rd_nomem(r, "the read buffer", TDI_CKPT_CHUNK);
    }
    if (st == TD_OK) st = parse(r, c);
    if (r->z_ready) inflateEnd(&r->zs);
    tdi_free(r->a, r->chunk);
    if (st != TD_OK) {
        tdi_ckpt_free(c);
        return st;
    }
    *out = c;
    return TD_OK;
}

td_status tdi_ckpt_read_memory(const td_allocator *alloc, const void *buf, size_t size,
                               tdi_ckpt **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(buf != NULL || size == 0, "%s: buf is NULL for size %zu", __func__, size);
    static const unsigned char empty[1];
    rd r;
    memset(&r, 0, sizeof r);
    r.name = "<memory>";
    r.mem = buf ? buf : empty;
    r.fd = -1;
    r.size = size;
    return read_common(&r, alloc, out);
}

td_status tdi_ckpt_read_borrowed(const td_allocator *alloc, const void *buf, size_t size,
                                 const char *name, tdi_ckpt **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(buf != NULL || size == 0, "%s: buf is NULL for size %zu", __func__, size);
    static const unsigned char empty[1];
    rd r;
    memset(&r, 0, sizeof r);
    r.name = name ? name : "<memory>";
    r.mem = buf ? buf : empty;
    r.fd = -1;
    r.size = size;
    r.borrow = 1;
    return read_common(&r, alloc, out);
}

td_status tdi_ckpt_read_file(const td_allocator *alloc, const char *path, tdi_ckpt **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    rd r;
    memset(&r, 0, sizeof r);
    r.name = path;
    r.fd = open(path, O_RDONLY | O_CLOEXEC);
    char eb[128];
    if (r.fd < 0)
        return rd_fail(&r, TD_ERR_IO, "cannot open: %s", tdi_errno_text(errno, eb, sizeof eb));
    struct stat sb;
    td_status st = TD_OK;
    if (fstat(r.fd, &sb) != 0)
        st = rd_fail(&r, TD_ERR_IO, "fstat: %s", tdi_errno_text(errno, eb, sizeof eb));
    else if (!S_ISREG(sb.st_mode))
        st = rd_fail(&r, TD_ERR_IO, "not a regular file");
    if (st == TD_OK) {
        r.size = (uint64_t)sb.st_size;
        st = read_common(&r, alloc, out);
    }
    (void)close(r.fd);
    return st;
}

void tdi_ckpt_free(tdi_ckpt *c)
{
    if (!c) return;
    td_allocator a = c->alloc;
    tdi_free(&a, c->meta);
    tdi_free(&a, c->tensors);
    tdi_free(&a, c->data);
    tdi_free(&a, c);
}

/* ---------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------- */
const void *tdi_ckpt_data(const tdi_ckpt *c)
{
    return c ? c->data : NULL;
}

void *tdi_ckpt_take_data(tdi_ckpt *c)
{
    if (!c) return NULL;
    void *p = c->data;
    c->data = NULL;
    return p;
}

void tdi_ckpt_version(const tdi_ckpt *c, uint32_t *major, uint32_t *minor)
{
    if (major) *major = c ? c->major : 0;
    if (minor) *minor = c ? c->minor : 0;
}

size_t tdi_ckpt_meta_count(const tdi_ckpt *c)
{
    return c ? c->meta_count : 0;
}

const char *tdi_ckpt_meta_key(const tdi_ckpt *c, size_t i)
{
    return c && i < c->meta_count ? c->meta[i].key : NULL;
}

static const meta_entry *find_meta(const tdi_ckpt *c, const char *key)
{
    if (!c || !key || c->meta_count == 0) return NULL;
    tdi_name k = { key, strlen(key) };
    uint32_t i = tdi_names_find(c->meta_ids, c->meta_count, c->meta_names, k);
    return i == UINT32_MAX ? NULL : &c->meta[i];
}

uint32_t tdi_ckpt_meta_type(const tdi_ckpt *c, const char *key)
{
    const meta_entry *e = find_meta(c, key);
    return e ? e->type : 0;
}

static td_status get_meta(const tdi_ckpt *c, const char *func, const char *key,
                          uint32_t type, const meta_entry **out)
{
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(key);
    const meta_entry *e = find_meta(c, key);
    if (!e) return tdi_fail(TD_ERR_FORMAT, "%s: checkpoint has no metadata key '%s'", func, key);
    if (e->type != type)
        return tdi_fail(TD_ERR_FORMAT, "%s: metadata key '%s' is %s (type %u), not %s", func,
                        key, tdi_meta_type_name(e->type), (unsigned)e->type,
                        tdi_meta_type_name(type));
    *out = e;
    return TD_OK;
}

td_status tdi_ckpt_get_i64(const tdi_ckpt *c, const char *key, int64_t *v)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_I64, &e));
    *v = e->v.i;
    return TD_OK;
}

td_status tdi_ckpt_get_u64(const tdi_ckpt *c, const char *key, uint64_t *v)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_U64, &e));
    *v = e->v.u;
    return TD_OK;
}

td_status tdi_ckpt_get_f64(const tdi_ckpt *c, const char *key, double *v)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_F64, &e));
    *v = e->v.f;
    return TD_OK;
}

td_status tdi_ckpt_get_string(const tdi_ckpt *c, const char *key, const char **s, size_t *len)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(s);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_STRING, &e));
    *s = e->v.p;
    if (len) *len = e->n;
    return TD_OK;
}

td_status tdi_ckpt_get_i64_array(const tdi_ckpt *c, const char *key, const int64_t **v,
                                 size_t *n)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_CHECK_PTR(n);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_I64_ARRAY, &e));
    *v = e->v.p;
    *n = e->n;
    return TD_OK;
}

td_status tdi_ckpt_get_u64_array(const tdi_ckpt *c, const char *key, const uint64_t **v,
                                 size_t *n)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_CHECK_PTR(n);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_U64_ARRAY, &e));
    *v = e->v.p;
    *n = e->n;
    return TD_OK;
}

td_status tdi_ckpt_get_f64_array(const tdi_ckpt *c, const char *key, const double **v,
                                 size_t *n)
{
    const meta_entry *e = NULL;
    TDI_CHECK_PTR(v);
    TDI_CHECK_PTR(n);
    TDI_TRY(get_meta(c, __func__, key, TDI_META_F64_ARRAY, &e));
    *v = e->v.p;
    *n = e->n;
    return TD_OK;
}

size_t tdi_ckpt_tensor_count(const tdi_ckpt *c)
{
    return c ? c->tensor_count : 0;
}

const tdi_ckpt_tensor *tdi_ckpt_tensor_at(const tdi_ckpt *c, size_t i)
{
    return c && i < c->tensor_count ? &c->tensors[i] : NULL;
}

const tdi_ckpt_tensor *tdi_ckpt_tensor_find(const tdi_ckpt *c, const char *name)
{
    if (!c || !name || c->tensor_count == 0) return NULL;
    tdi_name k = { name, strlen(name) };
    uint32_t i = tdi_names_find(c->tensor_ids, c->tensor_count, c->tensor_names, k);
    return i == UINT32_MAX ? NULL : &c->tensors[i];
}

td_status tdi_ckpt_tensor_get(const tdi_ckpt *c, const char *name, tdi_dtype dtype,
                              const tdi_ckpt_tensor **out)
{
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(name);
    TDI_CHECK_PTR(out);
    const tdi_ckpt_tensor *t = tdi_ckpt_tensor_find(c, name);
    if (!t) return tdi_fail(TD_ERR_FORMAT, "%s: checkpoint has no tensor '%s'", __func__, name);
    if (t->dtype != dtype)
        return tdi_fail(TD_ERR_FORMAT, "%s: tensor '%s' is %s, not %s", __func__, name,
                        tdi_dtype_name(t->dtype), tdi_dtype_name(dtype));
    *out = t;
    return TD_OK;
}
