#include "io/corpus.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ZLIB_CONST 1 /* next_in is const */
#include <zlib.h>

#include "util/alloc.h"
#include "util/error.h"

/* ---- reading -------------------------------------------------------------- */

enum { CHUNK = 1 << 16 };
#define MEM_BLOCK ((size_t)1 << 30) /* zlib counts input in uInt */

/* Where the file's bytes come from: a FILE read in chunks, or memory. */
typedef struct source {
    FILE *f;
    const char *name;
    const unsigned char *mem;
    size_t mem_left;
    unsigned char *chunk;
    size_t offset; /* bytes delivered so far */
} source;

static td_status io_error(const char *what, const char *name, int err)
{
    char msg[128];
    if (strerror_r(err, msg, sizeof msg) != 0) snprintf(msg, sizeof msg, "error %d", err);
    return tdi_fail(TD_ERR_IO, "corpus: cannot %s %s: %s", what, name, msg);
}

/* The next block of input; *n == 0 at the end. */
static td_status source_next(source *s, const unsigned char **p, size_t *n)
{
    if (s->f == NULL) {
        size_t k = s->mem_left < MEM_BLOCK ? s->mem_left : MEM_BLOCK;
        *p = s->mem;
        s->mem += k;
        s->mem_left -= k;
        *n = k;
    } else {
        errno = 0;
        size_t k = fread(s->chunk, 1, CHUNK, s->f);
        if (k < CHUNK && ferror(s->f)) return io_error("read", s->name, errno ? errno : EIO);
        *p = s->chunk;
        *n = k;
    }
    s->offset += *n;
    return TD_OK;
}

/* The growing text, always with room for its NUL. While inflating it may
 * hold max + 1 bytes: that one byte too many is how a stream that does not
 * fit is told apart from one that fits exactly. */
typedef struct sink {
    td_allocator *a;
    char *p;
    size_t len, cap, max;
    const char *name;
} sink;

static td_status too_large(const sink *o)
{
    return tdi_fail(TD_ERR_INVALID_ARG, "corpus: %s holds more than max_bytes = %zu bytes of text",
                    o->name, o->max);
}

/* Room for `extra` more bytes and the NUL; len + extra <= max + 1. */
static td_status sink_reserve(sink *o, size_t extra)
{
    size_t need = o->len + extra + 1;
    if (need <= o->cap) return TD_OK;
    size_t cap = o->cap > 0 ? o->cap : CHUNK;
    while (cap < need && cap <= SIZE_MAX / 2) cap *= 2;
    if (cap < need) cap = need;
    if (cap > o->max + 2) cap = o->max + 2;
    char *p = tdi_realloc(o->a, o->p, cap);
    if (p == NULL) return tdi_nomem("corpus", cap);
    o->p = p;
    o->cap = cap;
    return TD_OK;
}

static td_status sink_append(sink *o, const unsigned char *p, size_t n)
{
    if (n > o->max - o->len) return too_large(o);
    TDI_TRY(sink_reserve(o, n));
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return TD_OK;
}

static voidpf zalloc_hook(voidpf opaque, uInt items, uInt size)
{
    size_t n;
    if (!tdi_mul_size(items, size, &n)) return Z_NULL;
    return tdi_malloc(opaque, n);
}

static void zfree_hook(voidpf opaque, voidpf p) { tdi_free(opaque, p); }

static td_status corrupt(const source *s, const z_stream *zs, const char *why)
{
    return tdi_fail(TD_ERR_CORRUPT, "corpus: %s: bad gzip data near byte %zu: %s", s->name,
                    s->offset - zs->avail_in, why);
}

/* Inflates gzip members until the input ends; `p[0..n)` is the first block. */
static td_status inflate_all(source *s, const unsigned char *p, size_t n, sink *o)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = zalloc_hook;
    zs.zfree = zfree_hook;
    zs.opaque = o->a;
    int zr = inflateInit2(&zs, 16 + MAX_WBITS); /* gzip wrapper only */
    if (zr == Z_MEM_ERROR) return tdi_nomem("corpus: inflateInit2", sizeof(z_stream));
    if (zr != Z_OK) return tdi_fail(TD_ERR_INTERNAL, "corpus: inflateInit2 failed (%d)", zr);
    zs.next_in = p;
    zs.avail_in = (uInt)n;

    td_status st = TD_OK;
    int eof = 0, in_member = 1;
    for (;;) {
        if (zs.avail_in == 0 && !eof) {
            if ((st = source_next(s, &p, &n)) != TD_OK) break;
            eof = n == 0;
            zs.next_in = p;
            zs.avail_in = (uInt)n;
        }
        if (zs.avail_in == 0) {
            if (in_member) st = corrupt(s, &zs, "truncated stream");
            break;
        }
        if (!in_member) { /* more input after a member: the next member */
            inflateReset(&zs);
            in_member = 1;
        }
        if ((st = sink_reserve(o, 1)) != TD_OK) break;
        size_t room = o->cap - 1 - o->len;
        if (room > UINT_MAX) room = UINT_MAX;
        uInt in_before = zs.avail_in;
        zs.next_out = (Bytef *)o->p + o->len;
        zs.avail_out = (uInt)room;
        zr = inflate(&zs, Z_NO_FLUSH);
        o->len += room - zs.avail_out;
        if (o->len > o->max) {
            st = too_large(o);
            break;
        }
        if (zr == Z_STREAM_END) {
            in_member = 0;
        } else if (zr == Z_MEM_ERROR) {
            st = tdi_nomem("corpus: inflate", 1u << MAX_WBITS);
            break;
        } else if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT) {
            st = corrupt(s, &zs, zs.msg ? zs.msg : "invalid data");
            break;
        } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && (zs.avail_in == 0 || zs.avail_out == 0))) {
            st = tdi_fail(TD_ERR_INTERNAL, "corpus: inflate returned %d (in %u -> %u)", zr,
                          (unsigned)in_before, (unsigned)zs.avail_in);
            break;
        }
    }
    inflateEnd(&zs);
    return st;
}

/* size_hint: the input's size when known, 0 otherwise. */
static td_status read_source(source *s, size_t size_hint, size_t max_bytes,
                             const td_allocator *alloc, char **text, size_t *len)
{
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    sink o = { &a, NULL, 0, 0, max_bytes < SIZE_MAX / 4 ? max_bytes : SIZE_MAX / 4, s->name };
    td_status st = TD_OK;
    if (s->f != NULL) {
        s->chunk = tdi_malloc(&a, CHUNK);
        if (s->chunk == NULL) return tdi_nomem("corpus", CHUNK);
    }
    const unsigned char *p;
    size_t n;
    if ((st = source_next(s, &p, &n)) != TD_OK) goto done;
    int gzip = n >= 2 && p[0] == 0x1F && p[1] == 0x8B;
    if (!gzip && size_hint > o.max) {
        st = too_large(&o);
        goto done;
    }
    /* One allocation for the typical file: the exact size of plain text, a
     * typical ratio for gzip (text compresses about 3.5:1). */
    size_t want = gzip ? (size_hint < o.max / 4 ? size_hint * 4 : o.max) : size_hint;
    if ((st = sink_reserve(&o, want)) != TD_OK) goto done;
    if (gzip) {
        st = inflate_all(s, p, n, &o);
    } else {
        while (n > 0) {
            if ((st = sink_append(&o, p, n)) != TD_OK) goto done;
            if ((st = source_next(s, &p, &n)) != TD_OK) goto done;
        }
    }
done:
    tdi_free(&a, s->chunk);
    s->chunk = NULL;
    if (st != TD_OK) {
        tdi_free(&a, o.p);
        return st;
    }
    o.p[o.len] = '\0';
    *text = o.p;
    *len = o.len;
    return TD_OK;
}

td_status tdi_corpus_read_file(const char *path, size_t max_bytes, const td_allocator *alloc,
                               char **text, size_t *len)
{
    TDI_CHECK_PTR(text);
    *text = NULL;
    TDI_CHECK_PTR(len);
    TDI_CHECK_PTR(path);
    source s = { NULL, path, NULL, 0, NULL, 0 };
    s.f = fopen(path, "rb");
    if (s.f == NULL) return io_error("open", path, errno);
    struct stat sb;
    size_t hint = 0;
    if (fstat(fileno(s.f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
        hint = (uintmax_t)sb.st_size < SIZE_MAX ? (size_t)sb.st_size : SIZE_MAX;
    td_status st = read_source(&s, hint, max_bytes, alloc, text, len);
    fclose(s.f); /* read-only: nothing to lose if closing fails */
    return st;
}

td_status tdi_corpus_read_buffer(const void *data, size_t size, size_t max_bytes,
                                 const td_allocator *alloc, char **text, size_t *len)
{
    TDI_CHECK_PTR(text);
    *text = NULL;
    TDI_CHECK_PTR(len);
    TDI_CHECK_ARG(data != NULL || size == 0, "%s: data is NULL", __func__);
    source s = { NULL, "buffer", data, size, NULL, 0 };
    return read_source(&s, size, max_bytes, alloc, text, len);
}

void tdi_corpus_text_free(const td_allocator *alloc, char *text)
{
    td_allocator a;
    if (text == NULL || tdi_allocator_init(&a, alloc) != TD_OK) return;
    tdi_free(&a, text);
}

/* ---- tokenised corpus and its split --------------------------------------- */

struct td_corpus {
    tdi_errslot err;
    td_allocator alloc;
    int32_t *ids;
    size_t n;
    size_t block_len;
    uint32_t valid_every;
};

tdi_split_opts tdi_split_opts_default(void)
{
    tdi_split_opts o = { TDI_SPLIT_DEFAULT_BLOCK_LEN, TDI_SPLIT_DEFAULT_VALID_EVERY, NULL };
    return o;
}

/* The next document of text[0..len): up to and including the next
 * occurrence of sep, or the rest. */
static size_t doc_len(const char *text, size_t len, const char *sep, size_t sep_len)
{
    for (size_t i = 0; i + sep_len <= len; i++)
        if (memcmp(text + i, sep, sep_len) == 0) return i + sep_len;
    return len;
}

/* Packed documents (docs/corpus.md "End of text"): each one encoded on its
 * own and followed by the end token. Two passes: sizes, then ids. */
static td_status encode_docs(tdi_corpus *c, const char *text, size_t len, const char *sep,
                             const tdi_tokenizer *tok)
{
    int32_t eos;
    TDI_TRY(td_tokenizer_special_id(tok, TD_TOKEN_EOS, &eos));
    const size_t sep_len = strlen(sep);
    size_t total = 0, k, n;
    for (size_t at = 0; at < len; at += k) {
        k = doc_len(text + at, len - at, sep, sep_len);
        TDI_TRY(td_tokenizer_encode(tok, text + at, k, NULL, 0, &n));
        TDI_CHECK_ARG(n <= SIZE_MAX / sizeof *c->ids - 1 - total, "%s: too many tokens",
                      __func__);
        total += n + 1;
    }
    c->ids = tdi_malloc(&c->alloc, total * sizeof *c->ids);
    if (c->ids == NULL) return tdi_nomem(__func__, total * sizeof *c->ids);
    c->n = 0;
    for (size_t at = 0; at < len; at += k) {
        k = doc_len(text + at, len - at, sep, sep_len);
        TDI_TRY(td_tokenizer_encode(tok, text + at, k, c->ids + c->n, total - c->n, &n));
        c->n += n;
        c->ids[c->n++] = eos;
    }
    return TD_OK;
}

td_status tdi_corpus_create(const char *text, size_t len, const tdi_tokenizer *tok,
                            const tdi_split_opts *opts, const td_allocator *alloc,
                            tdi_corpus **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(tok);
    TDI_CHECK_ARG(text != NULL || len == 0, "%s: text is NULL", __func__);
    TDI_CHECK_ARG(len > 0, "%s: the text is empty", __func__);
    tdi_split_opts o = opts ? *opts : tdi_split_opts_default();
    size_t period;
    TDI_CHECK_ARG(o.block_len >= 1, "%s: block_len is 0", __func__);
    TDI_CHECK_ARG(o.valid_every != 1, "%s: valid_every = 1 leaves nothing to train on",
                  __func__);
    TDI_CHECK_ARG(tdi_mul_size(o.block_len, o.valid_every, &period),
                  "%s: block_len * valid_every overflows", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));

    tdi_corpus *c = tdi_malloc(&a, sizeof *c);
    if (c == NULL) return tdi_nomem(__func__, sizeof *c);
    tdi_errslot_init(&c->err);
    c->alloc = a;
    c->block_len = o.block_len;
    c->valid_every = o.valid_every;
    c->n = 0;
    if (o.doc_sep != NULL) {
        c->ids = NULL;
        td_status st = o.doc_sep[0] != '\0'
                           ? encode_docs(c, text, len, o.doc_sep, tok)
                           : tdi_fail(TD_ERR_INVALID_ARG, "%s: the document separator is empty",
                                      __func__);
        if (st != TD_OK) {
            tdi_corpus_free(c);
            return st;
        }
        *out = c;
        return TD_OK;
    }
    /* Nearly always every token consumes at least one byte, so len ids
     * suffice; byte-level BPE can need more (an invalid byte reads as the
     * three-byte U+FFFD, a space may be put in front), then it runs again. */
    size_t bytes;
    c->ids = tdi_mul_size(len, sizeof *c->ids, &bytes) ? tdi_malloc(&a, bytes) : NULL;
    if (c->ids == NULL) {
        tdi_errslot_destroy(&c->err);
        tdi_free(&a, c);
        return tdi_nomem(__func__, len * sizeof *c->ids);
    }
    td_status st = td_tokenizer_encode(tok, text, len, c->ids, len, &c->n);
    if (st == TD_ERR_INVALID_ARG && c->n > len) {
        int32_t *more = tdi_mul_size(c->n, sizeof *c->ids, &bytes) ? tdi_realloc(&a, c->ids, bytes)
                                                                   : NULL;
        if (more == NULL) {
            st = tdi_nomem(__func__, c->n * sizeof *c->ids);
        } else {
            c->ids = more;
            st = td_tokenizer_encode(tok, text, len, c->ids, c->n, &c->n);
        }
    }
    if (st != TD_OK) {
        tdi_corpus_free(c);
        return st;
    }
    if (c->n < len) { /* multi-byte characters: give the slack back */
        int32_t *shrunk = tdi_realloc(&a, c->ids, c->n * sizeof *c->ids);
        if (shrunk != NULL) c->ids = shrunk;
    }
    *out = c;
    return TD_OK;
}

td_status tdi_corpus_load(const char *path, size_t max_bytes, const tdi_tokenizer *tok,
                          const tdi_split_opts *opts, const td_allocator *alloc,
                          tdi_corpus **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(tok);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    char *text;
    size_t len;
    TDI_TRY(tdi_corpus_read_file(path, max_bytes, &a, &text, &len));
    td_status st = tdi_corpus_create(text, len, tok, opts, &a, out);
    tdi_free(&a, text);
    return st;
}

void tdi_corpus_free(tdi_corpus *c)
{
    if (c == NULL) return;
    tdi_errslot_destroy(&c->err);
    td_allocator a = c->alloc;
    tdi_free(&a, c->ids);
    tdi_free(&a, c);
}

const int32_t *tdi_corpus_tokens(const tdi_corpus *c, size_t *n)
{
    *n = c->n;
    return c->ids;
}

/* A split is a sequence of runs: run i starts at first + i * period and is
 * run_len tokens long, except the last one, which the end of the corpus may
 * cut short (to last_len). */
typedef struct runs { size_t first, period, run_len, count, last_len; } runs;

static runs split_runs(const tdi_corpus *c, tdi_split split)
{
    runs r = { 0, c->n, c->n, 0, 0 };
    size_t k = c->valid_every;
    if (k == 0) {
        if (split == TDI_SPLIT_TRAIN) {
            r.count = 1;
            r.last_len = c->n;
        }
        return r;
    }
    r.period = k * c->block_len;
    r.first = split == TDI_SPLIT_TRAIN ? 0 : (k - 1) * c->block_len;
    r.run_len = split == TDI_SPLIT_TRAIN ? (k - 1) * c->block_len : c->block_len;
    if (r.first >= c->n) return r;
    r.count = (c->n - r.first - 1) / r.period + 1;
    size_t last_start = r.first + (r.count - 1) * r.period;
    r.last_len = c->n - last_start < r.run_len ? c->n - last_start : r.run_len;
    return r;
}

size_t tdi_corpus_split_size(const tdi_corpus *c, tdi_split split)
{
    runs r = split_runs(c, split);
    return r.count == 0 ? 0 : (r.count - 1) * r.run_len + r.last_len;
}

tdi_split tdi_corpus_split_of(const tdi_corpus *c, size_t pos)
{
    size_t k = c->valid_every;
    if (k == 0) return TDI_SPLIT_TRAIN;
    return (pos / c->block_len) % k == k - 1 ? TDI_SPLIT_VALID : TDI_SPLIT_TRAIN;
}

static uint64_t per_run(size_t run_len, size_t seq_len, int tiles)
{
    if (run_len < seq_len) return 0;
    return tiles ? run_len / seq_len : run_len - seq_len + 1;
}

static uint64_t count_in(const runs *r, size_t seq_len, int tiles)
{
    if (r->count == 0 || seq_len == 0) return 0;
    return (uint64_t)(r->count - 1) * per_run(r->run_len, seq_len, tiles) +
           per_run(r->last_len, seq_len, tiles);
}

/* Offset of the index-th window (or tile) of a split, index < count_in(). */
static size_t locate(const runs *r, size_t seq_len, int tiles, uint64_t index)
{
    uint64_t each = per_run(r->run_len, seq_len, tiles);
    uint64_t full = (uint64_t)(r->count - 1) * each;
    size_t run = index < full ? (size_t)(index / each) : r->count - 1;
    uint64_t j = index < full ? index % each : index - full;
    return r->first + run * r->period + (size_t)(tiles ? j * seq_len : j);
}

uint64_t tdi_corpus_n_windows(const tdi_corpus *c, tdi_split split, size_t seq_len)
{
    runs r = split_runs(c, split);
    return count_in(&r, seq_len, 0);
}

uint64_t tdi_corpus_n_tiles(const tdi_corpus *c, tdi_split split, size_t seq_len)
{
    runs r = split_runs(c, split);
    return count_in(&r, seq_len, 1);
}

static const char *split_name(tdi_split s)
{
    return s == TDI_SPLIT_TRAIN ? "training" : "validation";
}

td_status tdi_corpus_sample(const tdi_corpus *c, tdi_split split, tdi_rng *rng, size_t batch,
                            size_t seq_len, int32_t *out, size_t *starts)
{
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(rng);
    TDI_CHECK_PTR(out);
    TDI_CHECK_ARG(split == TDI_SPLIT_TRAIN || split == TDI_SPLIT_VALID, "%s: bad split %d",
                  __func__, (int)split);
    size_t total;
    TDI_CHECK_ARG(batch >= 1 && seq_len >= 1 && tdi_mul_size(batch, seq_len, &total),
                  "%s: batch = %zu, seq_len = %zu", __func__, batch, seq_len);
    runs r = split_runs(c, split);
    uint64_t n = count_in(&r, seq_len, 0);
    if (n == 0)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "%s: no window of %zu tokens fits in the %s split (runs of %zu tokens)",
                        __func__, seq_len, split_name(split), r.count ? r.run_len : 0);
    for (size_t b = 0; b < batch; b++) {
        size_t start = locate(&r, seq_len, 0, tdi_rng_below(rng, n));
        memcpy(out + b * seq_len, c->ids + start, seq_len * sizeof *out);
        if (starts) starts[b] = start;
    }
    return TD_OK;
}

td_status tdi_corpus_tile(const tdi_corpus *c, tdi_split split, size_t seq_len, uint64_t index,
                          int32_t *out, size_t *start)
{
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(out);
    TDI_CHECK_ARG(split == TDI_SPLIT_TRAIN || split == TDI_SPLIT_VALID, "%s: bad split %d",
                  __func__, (int)split);
    TDI_CHECK_ARG(seq_len >= 1, "%s: seq_len is 0", __func__);
    runs r = split_runs(c, split);
    uint64_t n = count_in(&r, seq_len, 1);
    TDI_CHECK_ARG(index < n, "%s: tile %llu of %llu (%s split, %zu tokens each)", __func__,
                  (unsigned long long)index, (unsigned long long)n, split_name(split), seq_len);
    size_t s = locate(&r, seq_len, 1, index);
    memcpy(out, c->ids + s, seq_len * sizeof *out);
    if (start) *start = s;
    return TD_OK;
}

/* ---- public API --------------------------------------------------------- */

static td_status check_split(td_split split, const char *func)
{
    if (split != TD_SPLIT_TRAIN && split != TD_SPLIT_VALID)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: split = %d is not TD_SPLIT_TRAIN or TD_SPLIT_VALID",
                        func, (int)split);
    return TD_OK;
}

static td_status check_seq_len(int32_t seq_len, const char *func)
{
    if (seq_len < 1)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: seq_len = %d must be at least 1", func,
                        (int)seq_len);
    return TD_OK;
}

td_status td_corpus_load(const char *path, const td_tokenizer *tok, const td_allocator *alloc,
                         td_corpus **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    TDI_CHECK_PTR(tok);
    return tdi_corpus_load(path, TDI_CORPUS_DEFAULT_MAX_BYTES, tok, NULL, alloc, out);
}

td_status td_corpus_create(const char *text, size_t len, const td_tokenizer *tok,
                           const td_allocator *alloc, td_corpus **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(text);
    TDI_CHECK_PTR(tok);
    return tdi_corpus_create(text, len, tok, NULL, alloc, out);
}

td_status td_corpus_create_docs(const char *text, size_t len, const char *separator,
                                const td_tokenizer *tok, const td_allocator *alloc,
                                td_corpus **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(text);
    TDI_CHECK_PTR(separator);
    TDI_CHECK_PTR(tok);
    tdi_split_opts o = tdi_split_opts_default();
    o.doc_sep = separator;
    return tdi_corpus_create(text, len, tok, &o, alloc, out);
}

td_status td_corpus_load_docs(const char *path, const char *separator, const td_tokenizer *tok,
                              const td_allocator *alloc, td_corpus **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    TDI_CHECK_PTR(separator);
    TDI_CHECK_PTR(tok);
    tdi_split_opts o = tdi_split_opts_default();
    o.doc_sep = separator;
    return tdi_corpus_load(path, TDI_CORPUS_DEFAULT_MAX_BYTES, tok, &o, alloc, out);
}

void td_corpus_free(td_corpus *c) { tdi_corpus_free(c); }

size_t td_corpus_errmsg(const td_corpus *c, char *buf, size_t cap)
{
    return tdi_errslot_copy(c != NULL ? &c->err : NULL, buf, cap);
}

td_status td_corpus_num_tokens(const td_corpus *c, td_split split, uint64_t *n_tokens)
{
    TDI_ENTER(c);
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(n_tokens);
    TDI_TRY(check_split(split, __func__));
    *n_tokens = tdi_corpus_split_size(c, (tdi_split)split);
    return TD_OK;
}

td_status td_corpus_batch(const td_corpus *c, td_split split, uint64_t seed, uint64_t index,
                          int32_t batch, int32_t seq_len, int32_t *out)
{
    TDI_ENTER(c);
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(out);
    TDI_TRY(check_split(split, __func__));
    TDI_TRY(check_seq_len(seq_len, __func__));
    TDI_CHECK_ARG(batch >= 1, "%s: batch = %d must be at least 1", __func__, (int)batch);
    tdi_rng rng;
    tdi_rng_stream(&rng, seed, index);
    return tdi_corpus_sample(c, (tdi_split)split, &rng, (size_t)batch, (size_t)seq_len, out,
                             NULL);
}

td_status td_corpus_num_windows(const td_corpus *c, td_split split, int32_t seq_len,
                                uint64_t *n_windows)
{
    TDI_ENTER(c);
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(n_windows);
    TDI_TRY(check_split(split, __func__));
    TDI_TRY(check_seq_len(seq_len, __func__));
    *n_windows = tdi_corpus_n_tiles(c, (tdi_split)split, (size_t)seq_len);
    return TD_OK;
}

td_status td_corpus_window(const td_corpus *c, td_split split, int32_t seq_len, uint64_t index,
                           int32_t *out)
{
    TDI_ENTER(c);
    TDI_CHECK_PTR(c);
    TDI_CHECK_PTR(out);
    TDI_TRY(check_split(split, __func__));
    TDI_TRY(check_seq_len(seq_len, __func__));
    return tdi_corpus_tile(c, (tdi_split)split, (size_t)seq_len, index, out, NULL);
}
