#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "text/hf.h"
#include "text/utf8.h"
#include "util/alloc.h"
#include "util/crc32.h"
#include "util/endian.h"
#include "util/error.h"

struct td_tokenizer {
    tdi_errslot err;
    td_allocator alloc;
    tdi_tokenizer_kind kind;
    uint32_t n_symbols;
    int32_t mask_id, pad_id, unk_id;
    int32_t eos_id;   /* byte kind with an end of text: 258, else -1 */
    tdi_hf *hf;       /* the Hugging Face kinds' vocabulary, else NULL */
    int32_t low[256]; /* char kind: id of each code point below 256, or -1 */
    uint32_t cps[];   /* char kind: n_symbols code points, ascending */
};

static td_status tokenizer_alloc(const td_allocator *alloc, tdi_tokenizer_kind kind, size_t n,
                                 int with_unk, tdi_tokenizer **out)
{
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    size_t n_cps = kind == TDI_TOKENIZER_CHAR ? n : 0;
    size_t size = sizeof(tdi_tokenizer) + n_cps * sizeof(uint32_t);
    tdi_tokenizer *t = tdi_malloc(&a, size);
    if (t == NULL) return tdi_nomem(__func__, size);
    tdi_errslot_init(&t->err);
    t->alloc = a;
    t->kind = kind;
    t->n_symbols = (uint32_t)n;
    t->mask_id = (int32_t)n;
    t->pad_id = (int32_t)n + 1;
    t->unk_id = with_unk ? (int32_t)n + 2 : -1;
    t->eos_id = -1;
    t->hf = NULL;
    for (int i = 0; i < 256; i++) t->low[i] = -1;
    *out = t;
    return TD_OK;
}

/* Checks the code-point list (scalar values, strictly ascending) and builds
 * the direct lookup table for the code points below 256. */
static td_status char_index(tdi_tokenizer *t, td_status bad, const char *what)
{
    for (uint32_t i = 0; i < t->n_symbols; i++) {
        uint32_t cp = t->cps[i];
        if (!tdi_utf8_is_scalar(cp))
            return tdi_fail(bad, "%s: code point %u (0x%X) is not a Unicode scalar value", what,
                            (unsigned)i, (unsigned)cp);
        if (i > 0 && cp <= t->cps[i - 1])
            return tdi_fail(bad, "%s: code points not strictly ascending at index %u", what,
                            (unsigned)i);
        if (cp < 256) t->low[cp] = (int32_t)i;
    }
    return TD_OK;
}

static size_t max_symbols(int with_unk)
{
    return TDI_TOKENIZER_MAX_VOCAB - 2u - (with_unk ? 1u : 0u);
}

td_status td_tokenizer_create_byte(const td_allocator *alloc, tdi_tokenizer **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    return tokenizer_alloc(alloc, TDI_TOKENIZER_BYTE, 256, 0, out);
}

td_status td_tokenizer_create_byte_eos(const td_allocator *alloc, tdi_tokenizer **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_TRY(tokenizer_alloc(alloc, TDI_TOKENIZER_BYTE, 256, 0, out));
    (*out)->eos_id = 258;
    return TD_OK;
}

td_status tdi_tokenizer_create_char_from_code_points(const uint32_t *code_points, size_t n,
                                                     int with_unk, const td_allocator *alloc,
                                                     tdi_tokenizer **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(code_points);
    TDI_CHECK_ARG(n >= 1 && n <= max_symbols(with_unk),
                  "%s: n = %zu, must be in [1, %zu]", __func__, n, max_symbols(with_unk));
    tdi_tokenizer *t;
    TDI_TRY(tokenizer_alloc(alloc, TDI_TOKENIZER_CHAR, n, with_unk != 0, &t));
    memcpy(t->cps, code_points, n * sizeof *code_points);
    td_status st = char_index(t, TD_ERR_INVALID_ARG, __func__);
    if (st != TD_OK) {
        td_tokenizer_free(t);
        return st;
    }
    *out = t;
    return TD_OK;
}

/* Code points are counted in pages of 256, allocated only for the pages the
 * text touches (one for ASCII text) instead of a 17 MB table. */
enum { PAGE_BITS = 8, PAGE = 1 << PAGE_BITS, N_PAGES = (TDI_UTF8_MAX_SCALAR + 1) >> PAGE_BITS };

typedef struct cp_count { uint32_t cp; uint64_t count; } cp_count;

static int by_count_desc(const void *pa, const void *pb)
{
    const cp_count *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

static int by_value(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* Histogram of the text's code points, returned as (cp, count) ascending. */
static td_status count_code_points(const unsigned char *s, size_t len, const td_allocator *a,
                                   cp_count **hist, size_t *n_hist)
{
    uint32_t *page_slot = tdi_malloc(a, N_PAGES * sizeof *page_slot);
    if (page_slot == NULL) return tdi_nomem(__func__, N_PAGES * sizeof *page_slot);
    for (size_t p = 0; p < N_PAGES; p++) page_slot[p] = UINT32_MAX;

    size_t n_pages = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += tdi_utf8_next(s + i, len - i, &cp);
        if (page_slot[cp >> PAGE_BITS] == UINT32_MAX)
            page_slot[cp >> PAGE_BITS] = (uint32_t)n_pages++;
    }
    size_t bytes = n_pages * PAGE * sizeof(uint64_t);
    uint64_t *counts = tdi_calloc(a, n_pages * PAGE, sizeof *counts);
    if (counts == NULL) {
        tdi_free(a, page_slot);
        return tdi_nomem(__func__, bytes);
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += tdi_utf8_next(s + i, len - i, &cp);
        counts[(size_t)page_slot[cp >> PAGE_BITS] * PAGE + (cp & (PAGE - 1))]++;
    }

    size_t n = 0;
    for (size_t p = 0; p < N_PAGES; p++) {
        if (page_slot[p] == UINT32_MAX) continue;
        for (size_t j = 0; j < PAGE; j++) n += counts[(size_t)page_slot[p] * PAGE + j] != 0;
    }
    cp_count *h = tdi_malloc(a, n * sizeof *h);
    if (h == NULL) {
        tdi_free(a, counts);
        tdi_free(a, page_slot);
        return tdi_nomem(__func__, n * sizeof *h);
    }
    size_t k = 0;
    for (size_t p = 0; p < N_PAGES; p++) { /* page order = code-point order */
        if (page_slot[p] == UINT32_MAX) continue;
        for (size_t j = 0; j < PAGE; j++) {
            uint64_t c = counts[(size_t)page_slot[p] * PAGE + j];
            if (c == 0) continue;
            h[k].cp = (uint32_t)(p * PAGE + j);
            h[k].count = c;
            k++;
        }
    }
    tdi_free(a, counts);
    tdi_free(a, page_slot);
    *hist = h;
    *n_hist = n;
    return TD_OK;
}

td_status td_tokenizer_create_char(const char *text, size_t len, uint32_t max_chars,
                                    const td_allocator *alloc, tdi_tokenizer **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(text != NULL || len == 0, "%s: text is NULL", __func__);
    TDI_CHECK_ARG(len > 0, "%s: the text is empty, there is no character to build on",
                  __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));

    cp_count *hist = NULL;
    size_t n = 0;
    TDI_TRY(count_code_points((const unsigned char *)text, len, &a, &hist, &n));

    int with_unk = max_chars > 0;
    if (with_unk && n > max_chars) {
        qsort(hist, n, sizeof *hist, by_count_desc);
        n = max_chars;
    }
    td_status st = TD_OK;
    uint32_t *cps = NULL;
    if (n > max_symbols(with_unk)) {
        st = tdi_fail(TD_ERR_INVALID_ARG,
                      "%s: the text has %zu distinct characters, more than a vocabulary of "
                      "%u holds; set max_chars",
                      __func__, n, (unsigned)TDI_TOKENIZER_MAX_VOCAB);
        goto done;
    }
    cps = tdi_malloc(&a, n * sizeof *cps);
    if (cps == NULL) {
        st = tdi_nomem(__func__, n * sizeof *cps);
        goto done;
    }
    for (size_t i = 0; i < n; i++) cps[i] = hist[i].cp;
    qsort(cps, n, sizeof *cps, by_value);
    st = tdi_tokenizer_create_char_from_code_points(cps, n, with_unk, &a, out);
done:
    tdi_free(&a, cps);
    tdi_free(&a, hist);
    return st;
}

td_status tdi_tokenizer_from_hf(tdi_hf *hf, const td_allocator *alloc, tdi_tokenizer **out)
{
    tdi_tokenizer *t;
    td_status st = tokenizer_alloc(alloc, (tdi_tokenizer_kind)tdi_hf_kind(hf), 0, 0, &t);
    if (st != TD_OK) {
        tdi_hf_free(hf);
        return st;
    }
    t->hf = hf;
    t->n_symbols = tdi_hf_n_tokens(hf);
    t->mask_id = tdi_hf_special(hf, TDI_HF_MASK);
    t->pad_id = tdi_hf_special(hf, TDI_HF_PAD);
    t->unk_id = tdi_hf_special(hf, TDI_HF_UNK);
    *out = t;
    return TD_OK;
}

const tdi_hf *tdi_tokenizer_hf(const tdi_tokenizer *t) { return t->hf; }

void td_tokenizer_free(tdi_tokenizer *t)
{
    if (t == NULL) return;
    tdi_hf_free(t->hf);
    tdi_errslot_destroy(&t->err);
    td_allocator a = t->alloc;
    tdi_free(&a, t);
}

size_t td_tokenizer_errmsg(const td_tokenizer *t, char *buf, size_t cap)
{
    return tdi_errslot_copy(t != NULL ? &t->err : NULL, buf, cap);
}

tdi_tokenizer_kind tdi_tokenizer_kind_of(const tdi_tokenizer *t) { return t->kind; }
uint32_t tdi_tokenizer_n_symbols(const tdi_tokenizer *t) { return t->n_symbols; }
int32_t tdi_tokenizer_mask_id(const tdi_tokenizer *t) { return t->mask_id; }
int32_t tdi_tokenizer_pad_id(const tdi_tokenizer *t) { return t->pad_id; }
int32_t tdi_tokenizer_unk_id(const tdi_tokenizer *t) { return t->unk_id; }

uint32_t tdi_tokenizer_vocab_size(const tdi_tokenizer *t)
{
    if (t->hf != NULL) return t->n_symbols;
    return t->n_symbols + (t->unk_id >= 0 || t->eos_id >= 0 ? 3u : 2u);
}

const uint32_t *tdi_tokenizer_code_points(const tdi_tokenizer *t)
{
    return t->kind == TDI_TOKENIZER_CHAR ? t->cps : NULL;
}

static int32_t char_lookup(const tdi_tokenizer *t, uint32_t cp)
{
    if (cp < 256) return t->low[cp];
    size_t lo = 0, hi = t->n_symbols;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->cps[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n_symbols && t->cps[lo] == cp ? (int32_t)lo : -1;
}

static td_status too_small(const char *func, size_t need, size_t cap, const char *unit)
{
    return tdi_fail(TD_ERR_INVALID_ARG, "%s: the result needs %zu %s, the buffer holds %zu",
                    func, need, unit, cap);
}

td_status td_tokenizer_encode(const tdi_tokenizer *t, const char *text, size_t len,
                               int32_t *ids, size_t cap, size_t *n_ids)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(n_ids);
    TDI_CHECK_ARG(text != NULL || len == 0, "%s: text is NULL", __func__);
    TDI_CHECK_ARG(ids != NULL || cap == 0, "%s: ids is NULL with cap %zu", __func__, cap);
    const unsigned char *s = (const unsigned char *)text;

    if (t->hf != NULL) return tdi_hf_encode(t->hf, &t->alloc, text, len, ids, cap, n_ids);
    if (t->kind == TDI_TOKENIZER_BYTE) {
        *n_ids = len;
        if (ids == NULL) return TD_OK;
        if (len > cap) return too_small(__func__, len, cap, "ids");
        for (size_t i = 0; i < len; i++) ids[i] = s[i];
        return TD_OK;
    }

    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t cp;
        size_t k = tdi_utf8_next(s + i, len - i, &cp);
        int32_t id = char_lookup(t, cp);
        if (id < 0) {
            if (t->unk_id < 0)
                return tdi_fail(TD_ERR_INVALID_ARG,
                                "%s: character U+%04X at byte %zu is not in the vocabulary "
                                "(which has no [UNK])",
                                __func__, (unsigned)cp, i);
            id = t->unk_id;
        }
        if (n < cap) ids[n] = id;
        i += k;
    }
    *n_ids = n;
    if (ids != NULL && n > cap) return too_small(__func__, n, cap, "ids");
    return TD_OK;
}

td_status td_tokenizer_encode_framed(const tdi_tokenizer *t, const char *text, size_t len,
                                      int32_t *ids, size_t cap, size_t *n_ids)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(n_ids);
    TDI_CHECK_ARG(ids != NULL || cap == 0, "%s: ids is NULL with cap %zu", __func__, cap);
    int32_t cls = t->hf != NULL ? tdi_hf_special(t->hf, TDI_HF_CLS) : -1;
    int32_t sep = t->hf != NULL ? tdi_hf_special(t->hf, TDI_HF_SEP) : -1;
    TDI_CHECK_ARG(cls >= 0 && sep >= 0, "%s: this tokenizer has no [CLS]/[SEP] (<s>/</s>) to "
                  "frame a sequence with", __func__);
    TDI_CHECK_ARG(text != NULL || len == 0, "%s: text is NULL", __func__);
    size_t n = 0;
    td_status st = tdi_hf_encode(t->hf, &t->alloc, text, len, cap >= 1 ? ids + 1 : ids,
                                 cap >= 1 ? cap - 1 : 0, &n);
    if (st != TD_OK && !(st == TD_ERR_INVALID_ARG && ids != NULL && n + 2 > cap)) return st;
    *n_ids = n + 2;
    if (ids == NULL) return TD_OK;
    if (n + 2 > cap) return too_small(__func__, n + 2, cap, "ids");
    ids[0] = cls;
    ids[n + 1] = sep;
    return TD_OK;
}

/* Appends piece[0..k) at *pos, storing what fits before the NUL's place. */
static void put_bytes(char *out, size_t cap, size_t *pos, const void *piece, size_t k)
{
    const char *p = piece;
    for (size_t j = 0; j < k; j++, (*pos)++)
        if (*pos + 1 < cap) out[*pos] = p[j];
}

td_status td_tokenizer_decode(const tdi_tokenizer *t, const int32_t *ids, size_t n,
                               const char *mask_text, char *out, size_t cap, size_t *len)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(len);
    TDI_CHECK_ARG(ids != NULL || n == 0, "%s: ids is NULL", __func__);
    TDI_CHECK_ARG(out != NULL || cap == 0, "%s: out is NULL with cap %zu", __func__, cap);
    if (mask_text == NULL) mask_text = TDI_TOKENIZER_DEFAULT_MASK_TEXT;
    if (t->hf != NULL) return tdi_hf_decode(t->hf, &t->alloc, ids, n, mask_text, out, cap, len);
    size_t mask_len = strlen(mask_text);
    static const unsigned char replacement[3] = { 0xEF, 0xBF, 0xBD }; /* U+FFFD */
    uint32_t vocab = tdi_tokenizer_vocab_size(t);

    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= vocab)
            return tdi_fail(TD_ERR_INVALID_ARG, "%s: ids[%zu] = %ld is outside [0, %u)", __func__,
                            i, (long)id, (unsigned)vocab);
        if (id == t->pad_id || id == t->eos_id) break;
        if (id == t->mask_id) {
            put_bytes(out, cap, &pos, mask_text, mask_len);
        } else if (id == t->unk_id) {
            put_bytes(out, cap, &pos, replacement, sizeof replacement);
        } else if (t->kind == TDI_TOKENIZER_BYTE) {
            unsigned char b = (unsigned char)id;
            put_bytes(out, cap, &pos, &b, 1);
        } else {
            unsigned char enc[4];
            put_bytes(out, cap, &pos, enc, tdi_utf8_put(t->cps[id], enc));
        }
    }
    *len = pos;
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    if (out != NULL && pos >= cap) return too_small(__func__, pos + 1, cap, "bytes");
    return TD_OK;
}

/* ---- description format (docs/tokenizer.md) ------------------------------ */

static const unsigned char tok_magic[4] = { 'T', 'D', 'T', 'K' };
enum {
    TOK_FORMAT_VERSION = 1,
    TOK_FORMAT_VERSION_HF = 2, /* the Hugging Face kinds */
    TOK_FORMAT_VERSION_EOS = 3, /* version 1 with flag TOK_FLAG_EOS (byte kind) */
    TOK_HF_HEADER = 20,        /* + max_chars, n_merges */
    TOK_HEADER = 12,       /* magic, version, kind, flags, reserved, n_symbols */
    TOK_CRC = 4,
    TOK_FLAG_UNK = 1,
    TOK_FLAG_EOS = 2,
    VARINT_MAX_BYTES = 3   /* 21 bits cover U+10FFFF */
};

static size_t varint_len(uint32_t v)
{
    size_t k = 1;
    while (v >= 0x80u) {
        v >>= 7;
        k++;
    }
    return k;
}

static size_t put_varint(unsigned char *p, uint32_t v)
{
    size_t k = 0;
    while (v >= 0x80u) {
        p[k++] = (unsigned char)(0x80u | (v & 0x7Fu));
        v >>= 7;
    }
    p[k++] = (unsigned char)v;
    return k;
}

/* Canonical LEB128 of at most VARINT_MAX_BYTES bytes within p[0..n);
 * returns the bytes used, 0 when malformed. */
static size_t get_varint(const unsigned char *p, size_t n, uint32_t *v)
{
    uint32_t x = 0;
    for (size_t k = 0; k < VARINT_MAX_BYTES && k < n; k++) {
        x |= (uint32_t)(p[k] & 0x7Fu) << (7 * k);
        if ((p[k] & 0x80u) == 0) {
            if (k > 0 && p[k] == 0) return 0; /* overlong: one encoding per value */
            *v = x;
            return k + 1;
        }
    }
    return 0;
}

/* Version 2: the header's n is the token count; then max_chars, n_merges,
 * each token as LEB128 length + bytes, each merge as two LEB128 ids. */
static td_status hf_serialize(const tdi_hf *h, void *out, size_t cap, size_t *size)
{
    uint32_t n = tdi_hf_n_tokens(h), m = tdi_hf_n_merges(h);
    const int32_t *merges = tdi_hf_merges(h);
    size_t need = TOK_HF_HEADER + TOK_CRC;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        tdi_hf_token(h, (int32_t)i, &len);
        need += varint_len((uint32_t)len) + len;
    }
    for (uint32_t r = 0; r < 2 * m; r++) need += varint_len((uint32_t)merges[r]);
    *size = need;
    if (out == NULL) return TD_OK;
    if (need > cap) return too_small("tdi_tokenizer_serialize", need, cap, "bytes");
    unsigned char *p = out;
    memcpy(p, tok_magic, sizeof tok_magic);
    p[4] = TOK_FORMAT_VERSION_HF;
    p[5] = (unsigned char)tdi_hf_kind(h);
    p[6] = (unsigned char)tdi_hf_flags(h);
    p[7] = 0;
    tdi_le_put32(p + 8, n);
    tdi_le_put32(p + 12, tdi_hf_max_chars(h));
    tdi_le_put32(p + 16, m);
    size_t pos = TOK_HF_HEADER;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *tok = tdi_hf_token(h, (int32_t)i, &len);
        pos += put_varint(p + pos, (uint32_t)len);
        memcpy(p + pos, tok, len);
        pos += len;
    }
    for (uint32_t r = 0; r < 2 * m; r++) pos += put_varint(p + pos, (uint32_t)merges[r]);
    tdi_le_put32(p + pos, tdi_crc32(0, p, pos));
    return TD_OK;
}

static td_status hf_deserialize(const unsigned char *p, size_t body, const td_allocator *alloc,
                                tdi_tokenizer **out)
{
    static const char *f = "tdi_tokenizer_deserialize";
    unsigned kind = p[5];
    if (body < TOK_HF_HEADER)
        return tdi_fail(TD_ERR_CORRUPT, "%s: tokenizer description truncated", f);
    if (kind != TDI_TOKENIZER_WORDPIECE && kind != TDI_TOKENIZER_BPE)
        return tdi_fail(TD_ERR_CORRUPT, "%s: unknown tokenizer kind %u", f, kind);
    uint32_t n = tdi_le_get32(p + 8), max_chars = tdi_le_get32(p + 12);
    if (p[7] != 0 || (kind == TDI_TOKENIZER_BPE && max_chars != 0))
        return tdi_fail(TD_ERR_CORRUPT, "%s: reserved byte 0x%02X, max_chars %u", f,
                        (unsigned)p[7], (unsigned)max_chars);
    uint32_t m = tdi_le_get32(p + 16);
    size_t avail = body - TOK_HF_HEADER;
    /* Each token takes at least 2 bytes and each merge 2: the allocations
     * are bounded by the input's size, whatever the counts claim. */
    if (n < 1 || n > TDI_TOKENIZER_MAX_VOCAB || n > avail / 2 || m > (avail - 2 * n) / 2)
        return tdi_fail(TD_ERR_CORRUPT, "%s: %u tokens and %u merges in a %zu-byte "
                        "description", f, (unsigned)n, (unsigned)m, body + TOK_CRC);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    uint32_t *offsets = tdi_malloc(&a, ((size_t)n + 1) * sizeof *offsets);
    char *bytes = tdi_malloc(&a, avail);
    int32_t *merges = tdi_malloc(&a, (2 * (size_t)m + 1) * sizeof *merges);
    td_status st = TD_OK;
    if (offsets == NULL || bytes == NULL || merges == NULL) {
        st = tdi_nomem(f, avail + (size_t)n * 4 + (size_t)m * 8);
        goto done;
    }
    size_t pos = TOK_HF_HEADER, blen = 0;
    offsets[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        size_t k = get_varint(p + pos, body - pos, &len);
        if (k == 0 || len > body - pos - k) {
            st = tdi_fail(TD_ERR_CORRUPT, "%s: bad token %u at byte %zu", f, (unsigned)i, pos);
            goto done;
        }
        memcpy(bytes + blen, p + pos + k, len);
        blen += len;
        offsets[i + 1] = (uint32_t)blen;
        pos += k + len;
    }
    for (uint32_t r = 0; r < 2 * m; r++) {
        uint32_t id;
        size_t k = get_varint(p + pos, body - pos, &id);
        if (k == 0) {
            st = tdi_fail(TD_ERR_CORRUPT, "%s: bad merge %u at byte %zu", f, (unsigned)(r / 2),
                          pos);
            goto done;
        }
        merges[r] = (int32_t)id;
        pos += k;
    }
    if (pos != body) {
        st = tdi_fail(TD_ERR_CORRUPT, "%s: %zu stray bytes after the merges", f, body - pos);
        goto done;
    }
    tdi_hf_spec spec = { (int)kind, p[6], max_chars, n, offsets, bytes, m, merges,
                         "tokenizer description" };
    tdi_hf *h;
    st = tdi_hf_build(&spec, &a, &h);
    if (st == TD_ERR_FORMAT) st = TD_ERR_CORRUPT; /* the message says why */
    if (st == TD_OK) st = tdi_tokenizer_from_hf(h, &a, out);
done:
    tdi_free(&a, merges);
    tdi_free(&a, bytes);
    tdi_free(&a, offsets);
    return st;
}

td_status tdi_tokenizer_serialize(const tdi_tokenizer *t, void *out, size_t cap, size_t *size)
{
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(size);
    TDI_CHECK_ARG(out != NULL || cap == 0, "%s: out is NULL with cap %zu", __func__, cap);
    if (t->hf != NULL) return hf_serialize(t->hf, out, cap, size);
    size_t need = TOK_HEADER + TOK_CRC;
    if (t->kind == TDI_TOKENIZER_CHAR)
        for (uint32_t i = 0; i < t->n_symbols; i++)
            need += varint_len(i == 0 ? t->cps[0] : t->cps[i] - t->cps[i - 1]);
    *size = need;
    if (out == NULL) return TD_OK;
    if (need > cap) return too_small(__func__, need, cap, "bytes");

    unsigned char *p = out;
    memcpy(p, tok_magic, sizeof tok_magic);
    p[4] = t->eos_id >= 0 ? TOK_FORMAT_VERSION_EOS : TOK_FORMAT_VERSION;
    p[5] = (unsigned char)t->kind;
    p[6] = t->unk_id >= 0 ? TOK_FLAG_UNK : t->eos_id >= 0 ? TOK_FLAG_EOS : 0;
    p[7] = 0;
    tdi_le_put32(p + 8, t->n_symbols);
    size_t pos = TOK_HEADER;
    if (t->kind == TDI_TOKENIZER_CHAR)
        for (uint32_t i = 0; i < t->n_symbols; i++)
            pos += put_varint(p + pos, i == 0 ? t->cps[0] : t->cps[i] - t->cps[i - 1]);
    tdi_le_put32(p + pos, tdi_crc32(0, p, pos));
    return TD_OK;
}

td_status tdi_tokenizer_deserialize(const void *data, size_t size, const td_allocator *alloc,
                                    tdi_tokenizer **out)
{
    static const char *what = "tokenizer description";
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(data != NULL || size == 0, "%s: data is NULL", __func__);
    const unsigned char *p = data;
    if (size < sizeof tok_magic || memcmp(p, tok_magic, sizeof tok_magic) != 0)
        return tdi_fail(TD_ERR_FORMAT, "%s: not a %s (bad magic)", __func__, what);
    if (size < TOK_HEADER + TOK_CRC)
        return tdi_fail(TD_ERR_CORRUPT, "%s: %s truncated at %zu bytes", __func__, what, size);
    if (p[4] != TOK_FORMAT_VERSION && p[4] != TOK_FORMAT_VERSION_HF &&
        p[4] != TOK_FORMAT_VERSION_EOS)
        return tdi_fail(TD_ERR_VERSION, "%s: %s format version %u, this library reads 1 to %u",
                        __func__, what, (unsigned)p[4], (unsigned)TOK_FORMAT_VERSION_EOS);
    size_t body = size - TOK_CRC;
    uint32_t stored = tdi_le_get32(p + body), actual = tdi_crc32(0, p, body);
    if (stored != actual)
        return tdi_fail(TD_ERR_CORRUPT, "%s: %s CRC-32 is %08X, expected %08X", __func__, what,
                        (unsigned)actual, (unsigned)stored);

    if (p[4] == TOK_FORMAT_VERSION_HF) return hf_deserialize(p, body, alloc, out);
    unsigned kind = p[5], flags = p[6];
    uint32_t n = tdi_le_get32(p + 8);
    int with_unk = (flags & TOK_FLAG_UNK) != 0;
    if (kind != TDI_TOKENIZER_BYTE && kind != TDI_TOKENIZER_CHAR)
        return tdi_fail(TD_ERR_CORRUPT, "%s: unknown tokenizer kind %u", __func__, kind);
    /* version 1: flags UNK (char kind) or none; version 3: flag EOS (byte kind) */
    unsigned allowed = p[4] == TOK_FORMAT_VERSION_EOS ? TOK_FLAG_EOS
                       : kind == TDI_TOKENIZER_CHAR   ? TOK_FLAG_UNK : 0;
    if ((flags & ~allowed) != 0 || p[7] != 0 ||
        (p[4] == TOK_FORMAT_VERSION_EOS && (kind != TDI_TOKENIZER_BYTE || flags == 0)))
        return tdi_fail(TD_ERR_CORRUPT, "%s: invalid flags 0x%02X / reserved byte 0x%02X",
                        __func__, flags, (unsigned)p[7]);
    if (kind == TDI_TOKENIZER_BYTE) {
        if (n != 256 || body != TOK_HEADER)
            return tdi_fail(TD_ERR_CORRUPT, "%s: byte tokenizer with %u symbols and %zu bytes",
                            __func__, (unsigned)n, size);
        return flags & TOK_FLAG_EOS ? td_tokenizer_create_byte_eos(alloc, out)
                                    : td_tokenizer_create_byte(alloc, out);
    }
    /* Every symbol takes at least one byte: this bounds the allocation by the
     * input's size, whatever n claims. */
    if (n < 1 || n > max_symbols(with_unk) || n > body - TOK_HEADER)
        return tdi_fail(TD_ERR_CORRUPT, "%s: %u symbols in a %zu-byte description", __func__,
                        (unsigned)n, size);

    tdi_tokenizer *t;
    TDI_TRY(tokenizer_alloc(alloc, TDI_TOKENIZER_CHAR, n, with_unk, &t));
    size_t pos = TOK_HEADER;
    uint32_t prev = 0;
    td_status st = TD_OK;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t delta;
        size_t k = get_varint(p + pos, body - pos, &delta);
        if (k == 0 || delta > TDI_UTF8_MAX_SCALAR - prev) { /* order: char_index */
            st = tdi_fail(TD_ERR_CORRUPT, "%s: bad code point %u at byte %zu", __func__,
                          (unsigned)i, pos);
            goto fail;
        }
        prev += delta;
        t->cps[i] = prev;
        pos += k;
    }
    if (pos != body) {
        st = tdi_fail(TD_ERR_CORRUPT, "%s: %zu stray bytes after the code points", __func__,
                      body - pos);
        goto fail;
    }
    st = char_index(t, TD_ERR_CORRUPT, what);
    if (st != TD_OK) goto fail;
    *out = t;
    return TD_OK;
fail:
    td_tokenizer_free(t);
    return st;
}

td_status td_tokenizer_vocab_size(const td_tokenizer *t, int32_t *vocab_size)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(vocab_size);
    *vocab_size = (int32_t)tdi_tokenizer_vocab_size(t);
    return TD_OK;
}

td_status td_tokenizer_special_id(const td_tokenizer *t, td_special_token which, int32_t *id)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(id);
    int32_t v;
    switch (which) {
    case TD_TOKEN_MASK: v = tdi_tokenizer_mask_id(t); break;
    case TD_TOKEN_PAD: v = tdi_tokenizer_pad_id(t); break;
    case TD_TOKEN_UNK: v = tdi_tokenizer_unk_id(t); break;
    case TD_TOKEN_CLS: v = t->hf != NULL ? tdi_hf_special(t->hf, TDI_HF_CLS) : -1; break;
    case TD_TOKEN_SEP: v = t->hf != NULL ? tdi_hf_special(t->hf, TDI_HF_SEP) : -1; break;
    case TD_TOKEN_EOS: /* a Hugging Face vocabulary's sequence end ([SEP], </s>) */
        v = t->hf != NULL ? tdi_hf_special(t->hf, TDI_HF_SEP) : t->eos_id;
        break;
    default:
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: unknown special token %d", __func__, (int)which);
    }
    if (v < 0)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: this tokenizer has no %s", __func__,
                        which == TD_TOKEN_UNK && t->hf == NULL
                            ? "[UNK] (no vocabulary cap)"
                            : which == TD_TOKEN_UNK ? "[UNK]"
                            : which == TD_TOKEN_CLS ? "[CLS] or <s>"
                            : which == TD_TOKEN_EOS && t->hf == NULL
                                ? "[EOS] (td_tokenizer_create_byte_eos makes one)"
                                : "[SEP] or </s>");
    *id = v;
    return TD_OK;
}
