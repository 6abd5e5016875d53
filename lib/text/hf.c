#include "text/hf.h"

#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer.h"
#include "text/utf8.h"
#include "util/alloc.h"
#include "util/error.h"

struct tdi_hf {
    td_allocator alloc;
    int kind;
    uint32_t flags, max_chars;
    uint32_t n_tokens;
    uint32_t *offsets; /* n_tokens + 1 */
    char *bytes;
    uint32_t *tok_slots; /* id + 1, 0 = empty; a power of two */
    size_t tok_mask;
    uint32_t n_merges;
    int32_t *merges;      /* 2 * n_merges */
    uint64_t *merge_keys; /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t *merge_rank;
    int32_t *merge_id;
    size_t merge_mask;
    int32_t special[TDI_HF_N_SPECIAL];
    int32_t byte_id[256];  /* BPE: the token of each byte's character */
    uint16_t byte_cp[256]; /* GPT-2's byte -> printable code point */
    int16_t cp_byte[324];  /* and back; -1 for the others */
};

/* ---- hashing ------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ull;
    return h;
}
#define FNV_SEED 0xCBF29CE484222325ull

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    return x;
}

static size_t table_size(size_t n) /* a power of two >= 2n, >= 16 */
{
    size_t c = 16;
    while (c < 2 * n) c <<= 1;
    return c;
}

/* The id of prefix + s (prefix may be empty), or -1. */
static int32_t lookup2(const tdi_hf *h, const char *prefix, size_t np, const char *s, size_t n)
{
    uint64_t hv = fnv(fnv(FNV_SEED, prefix, np), s, n);
    for (size_t i = hv & h->tok_mask;; i = (i + 1) & h->tok_mask) {
        uint32_t v = h->tok_slots[i];
        if (v == 0) return -1;
        uint32_t id = v - 1, len = h->offsets[id + 1] - h->offsets[id];
        const char *t = h->bytes + h->offsets[id];
        if (len == np + n && memcmp(t, prefix, np) == 0 && memcmp(t + np, s, n) == 0)
            return (int32_t)id;
    }
}

int32_t tdi_hf_lookup(const tdi_hf *h, const char *s, size_t n)
{
    return lookup2(h, "", 0, s, n);
}

static int merge_find(const tdi_hf *h, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = mix64(key) & h->merge_mask;; i = (i + 1) & h->merge_mask) {
        if (h->merge_keys[i] == UINT64_MAX) return 0;
        if (h->merge_keys[i] == key) {
            *rank = h->merge_rank[i];
            *id = h->merge_id[i];
            return 1;
        }
    }
}

/* ---- building ------------------------------------------------------------ */

void tdi_hf_free(tdi_hf *h)
{
    if (h == NULL) return;
    td_allocator a = h->alloc;
    tdi_free(&a, h->offsets);
    tdi_free(&a, h->bytes);
    tdi_free(&a, h->tok_slots);
    tdi_free(&a, h->merges);
    tdi_free(&a, h->merge_keys);
    tdi_free(&a, h->merge_rank);
    tdi_free(&a, h->merge_id);
    tdi_free(&a, h);
}

static void byte_map(tdi_hf *h)
{
    uint32_t extra = 0;
    for (int i = 0; i < 324; i++) h->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        h->byte_cp[b] = (uint16_t)(printable ? (uint32_t)b : 256u + extra++);
        h->cp_byte[h->byte_cp[b]] = (int16_t)b;
    }
}

static const char *const special_names[2][TDI_HF_N_SPECIAL] = {
    { "[MASK]", "[PAD]", "[UNK]", "[CLS]", "[SEP]" },
    { "<mask>", "<pad>", "<unk>", "<s>", "</s>" },
};

static td_status build_tokens(tdi_hf *h, const tdi_hf_spec *s)
{
    const char *what = s->what;
    uint32_t n = s->n_tokens;
    size_t total = s->offsets[n];
    h->offsets = tdi_malloc(&h->alloc, ((size_t)n + 1) * sizeof *h->offsets);
    h->bytes = tdi_malloc(&h->alloc, total ? total : 1);
    size_t cap = table_size(n);
    h->tok_slots = tdi_calloc(&h->alloc, cap, sizeof *h->tok_slots);
    if (h->offsets == NULL || h->bytes == NULL || h->tok_slots == NULL)
        return tdi_nomem(__func__, total + cap * sizeof *h->tok_slots);
    h->tok_mask = cap - 1;
    memcpy(h->offsets, s->offsets, ((size_t)n + 1) * sizeof *h->offsets);
    if (total) memcpy(h->bytes, s->bytes, total);
    for (uint32_t id = 0; id < n; id++) {
        uint32_t o = h->offsets[id], len = h->offsets[id + 1] - o;
        const char *t = h->bytes + o;
        if (len == 0)
            return tdi_fail(TD_ERR_FORMAT, "%s: token %u is empty", what, (unsigned)id);
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t k = tdi_utf8_next((const unsigned char *)t + i, len - i, &cp);
            if (cp == TDI_UTF8_REPLACEMENT && (k != 3 || memcmp(t + i, "\xEF\xBF\xBD", 3) != 0))
                return tdi_fail(TD_ERR_FORMAT, "%s: token %u is not valid UTF-8", what,
                                (unsigned)id);
            i += k;
        }
        uint64_t hv = fnv(FNV_SEED, t, len);
        size_t i = hv & h->tok_mask;
        for (; h->tok_slots[i] != 0; i = (i + 1) & h->tok_mask) {
            uint32_t other = h->tok_slots[i] - 1;
            if (h->offsets[other + 1] - h->offsets[other] == len &&
                memcmp(h->bytes + h->offsets[other], t, len) == 0)
                return tdi_fail(TD_ERR_FORMAT, "%s: token \"%.*s\" appears twice (ids %u and %u)",
                                what, (int)(len > 64 ? 64 : len), t, (unsigned)other,
                                (unsigned)id);
        }
        h->tok_slots[i] = id + 1;
    }
    return TD_OK;
}

static td_status build_merges(tdi_hf *h, const tdi_hf_spec *s)
{
    uint32_t m = s->n_merges;
    size_t cap = table_size(m);
    h->merges = tdi_malloc(&h->alloc, (2 * (size_t)m + 1) * sizeof *h->merges);
    h->merge_keys = tdi_malloc(&h->alloc, cap * sizeof *h->merge_keys);
    h->merge_rank = tdi_malloc(&h->alloc, cap * sizeof *h->merge_rank);
    h->merge_id = tdi_malloc(&h->alloc, cap * sizeof *h->merge_id);
    if (h->merges == NULL || h->merge_keys == NULL || h->merge_rank == NULL ||
        h->merge_id == NULL)
        return tdi_nomem(__func__, cap * 16);
    h->merge_mask = cap - 1;
    h->n_merges = m;
    if (m) memcpy(h->merges, s->merges, 2 * (size_t)m * sizeof *h->merges);
    for (size_t i = 0; i < cap; i++) h->merge_keys[i] = UINT64_MAX;
    char buf[2 * TDI_HF_MAX_TOKEN_BYTES];
    for (uint32_t r = 0; r < m; r++) {
        int32_t a = h->merges[2 * r], b = h->merges[2 * r + 1];
        if (a < 0 || b < 0 || (uint32_t)a >= h->n_tokens || (uint32_t)b >= h->n_tokens)
            return tdi_fail(TD_ERR_FORMAT, "%s: merge %u names token ids %ld and %ld, outside "
                            "the vocabulary of %u", s->what, (unsigned)r, (long)a, (long)b,
                            (unsigned)h->n_tokens);
        size_t la, lb;
        const char *ta = tdi_hf_token(h, a, &la), *tb = tdi_hf_token(h, b, &lb);
        memcpy(buf, ta, la);
        memcpy(buf + la, tb, lb);
        int32_t id = tdi_hf_lookup(h, buf, la + lb);
        if (id < 0)
            return tdi_fail(TD_ERR_FORMAT, "%s: merge %u (\"%.*s\" \"%.*s\"): the merged token "
                            "is not in the vocabulary", s->what, (unsigned)r, (int)la, ta,
                            (int)lb, tb);
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = mix64(key) & h->merge_mask;
        while (h->merge_keys[i] != UINT64_MAX && h->merge_keys[i] != key)
            i = (i + 1) & h->merge_mask;
        /* A repeated pair takes its last rank, as the tokenizers library's map does. */
        h->merge_keys[i] = key;
        h->merge_rank[i] = r;
        h->merge_id[i] = id;
    }
    return TD_OK;
}

static td_status build_specials(tdi_hf *h, const tdi_hf_spec *s)
{
    int bpe = h->kind == TDI_TOKENIZER_BPE;
    for (int k = 0; k < TDI_HF_N_SPECIAL; k++) {
        const char *name = special_names[bpe][k];
        h->special[k] = tdi_hf_lookup(h, name, strlen(name));
    }
    const char *need[3] = { special_names[bpe][TDI_HF_MASK], special_names[bpe][TDI_HF_PAD],
                            bpe ? NULL : special_names[0][TDI_HF_UNK] };
    int idx[3] = { TDI_HF_MASK, TDI_HF_PAD, TDI_HF_UNK };
    for (int k = 0; k < 3; k++)
        if (need[k] != NULL && h->special[idx[k]] < 0)
            return tdi_fail(TD_ERR_FORMAT, "%s: the vocabulary has no %s token, which the "
                            "library needs (%s)", s->what, need[k],
                            k == 0 ? "the diffusion's absorbing state"
                            : k == 1 ? "the end of variable-length output"
                                     : "WordPiece's unknown word");
    if (bpe) {
        for (int b = 0; b < 256; b++) {
            unsigned char enc[4];
            size_t k = tdi_utf8_put(h->byte_cp[b], enc);
            h->byte_id[b] = tdi_hf_lookup(h, (const char *)enc, k);
            if (h->byte_id[b] < 0)
                return tdi_fail(TD_ERR_FORMAT, "%s: the byte-level vocabulary has no token for "
                                "byte 0x%02X (\"%.*s\")", s->what, (unsigned)b, (int)k, enc);
        }
    }
    return TD_OK;
}

td_status tdi_hf_build(const tdi_hf_spec *s, const td_allocator *alloc, tdi_hf **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(s);
    const char *what = s->what ? s->what : "vocabulary";
    TDI_CHECK_ARG(s->kind == TDI_TOKENIZER_WORDPIECE || s->kind == TDI_TOKENIZER_BPE,
                  "%s: kind %d", __func__, s->kind);
    uint32_t allowed = s->kind == TDI_TOKENIZER_BPE ? TDI_HF_BPE_FLAGS : TDI_HF_WORDPIECE_FLAGS;
    if ((s->flags & ~allowed) != 0)
        return tdi_fail(TD_ERR_FORMAT, "%s: options 0x%X not valid for this kind", what,
                        (unsigned)s->flags);
    if (s->n_tokens < 1 || s->n_tokens > TDI_TOKENIZER_MAX_VOCAB)
        return tdi_fail(TD_ERR_FORMAT, "%s: %u tokens, must be in [1, %u]", what,
                        (unsigned)s->n_tokens, (unsigned)TDI_TOKENIZER_MAX_VOCAB);
    if (s->kind == TDI_TOKENIZER_WORDPIECE && s->n_merges != 0)
        return tdi_fail(TD_ERR_FORMAT, "%s: WordPiece has no merges", what);
    if (s->kind == TDI_TOKENIZER_WORDPIECE && (s->max_chars < 1 || s->max_chars > 1000000))
        return tdi_fail(TD_ERR_FORMAT, "%s: max_input_chars_per_word = %u", what,
                        (unsigned)s->max_chars);
    if (s->n_merges > TDI_TOKENIZER_MAX_VOCAB)
        return tdi_fail(TD_ERR_FORMAT, "%s: %u merges, at most %u", what,
                        (unsigned)s->n_merges, (unsigned)TDI_TOKENIZER_MAX_VOCAB);
    TDI_CHECK_ARG(s->offsets != NULL && (s->bytes != NULL || s->offsets[s->n_tokens] == 0) &&
                      (s->merges != NULL || s->n_merges == 0),
                  "%s: NULL arrays", __func__);
    if (s->offsets[0] != 0)
        return tdi_fail(TD_ERR_FORMAT, "%s: offsets do not start at 0", what);
    for (uint32_t i = 0; i < s->n_tokens; i++)
        if (s->offsets[i + 1] < s->offsets[i] ||
            s->offsets[i + 1] - s->offsets[i] > TDI_HF_MAX_TOKEN_BYTES)
            return tdi_fail(TD_ERR_FORMAT, "%s: token %u is longer than %u bytes", what,
                            (unsigned)i, (unsigned)TDI_HF_MAX_TOKEN_BYTES);

    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_hf *h = tdi_calloc(&a, 1, sizeof *h);
    if (h == NULL) return tdi_nomem(__func__, sizeof *h);
    h->alloc = a;
    h->kind = s->kind;
    h->flags = s->flags;
    h->max_chars = s->kind == TDI_TOKENIZER_WORDPIECE ? s->max_chars : 0;
    h->n_tokens = s->n_tokens;
    byte_map(h);
    tdi_hf_spec named = *s;
    named.what = what;
    td_status st = build_tokens(h, &named);
    if (st == TD_OK) st = build_merges(h, &named);
    if (st == TD_OK) st = build_specials(h, &named);
    if (st != TD_OK) {
        tdi_hf_free(h);
        return st;
    }
    *out = h;
    return TD_OK;
}

int tdi_hf_kind(const tdi_hf *h) { return h->kind; }
uint32_t tdi_hf_flags(const tdi_hf *h) { return h->flags; }
uint32_t tdi_hf_max_chars(const tdi_hf *h) { return h->max_chars; }
uint32_t tdi_hf_n_tokens(const tdi_hf *h) { return h->n_tokens; }
int32_t tdi_hf_special(const tdi_hf *h, int which) { return h->special[which]; }
uint32_t tdi_hf_n_merges(const tdi_hf *h) { return h->n_merges; }
const int32_t *tdi_hf_merges(const tdi_hf *h) { return h->merges; }

const char *tdi_hf_token(const tdi_hf *h, int32_t id, size_t *len)
{
    *len = h->offsets[id + 1] - h->offsets[id];
    return h->bytes + h->offsets[id];
}

/* ---- character classes (utf8proc) ---------------------------------------- */

/* The White_Space property: Rust's char::is_whitespace, Oniguruma's \s. */
static int is_ws(uint32_t c)
{
    if (c < 128) return c == ' ' || (c >= 9 && c <= 13);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

enum { CLS_L, CLS_N, CLS_S, CLS_O };

/* The classes of the byte-level pre-tokenizer's pattern: \p{L}, \p{N}, \s, other. */
static int bpe_class(uint32_t c)
{
    if (c < 128) {
        if ((c | 32) - 'a' < 26) return CLS_L;
        if (c - '0' < 10) return CLS_N;
        return is_ws(c) ? CLS_S : CLS_O;
    }
    if (is_ws(c)) return CLS_S;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) return CLS_L;
    if (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO) return CLS_N;
    return CLS_O;
}

/* BertNormalizer's is_control: Cc, Cf, Cn, Co, Cs except \t \n \r. */
static int is_control(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (c < 128) return c < 32 || c == 127;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
}

/* BertPreTokenizer's punctuation: ASCII punctuation or a P* category. */
static int is_punct(uint32_t c)
{
    if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                        (c >= 123 && c <= 126);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static int is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct sym { int32_t id, prev, next; } sym;
typedef struct merge_item { uint32_t rank, pos; int32_t id; } merge_item;

typedef struct enc {
    const tdi_hf *h;
    const td_allocator *a;
    int32_t *ids;
    size_t cap, n;
    /* scratch, grown on demand */
    sym *syms;
    merge_item *heap;
    size_t sym_cap, heap_cap, heap_n;
    unsigned char *word; /* WordPiece: the current word's bytes */
    size_t word_len, word_cap, word_chars;
    /* BPE: the ids of short pre-tokens already seen in this call */
    struct cache_slot *slots;
    unsigned char *keys;
    int32_t *cached;
    size_t n_slots_used, keys_len, keys_cap, cached_len, cached_cap;
    int use_cache;
} enc;

/* Byte-level BPE's pre-token cache (per call: the tokenizer stays
 * immutable). A text repeats its words: the corpus's 1.08 M pieces are a
 * few thousand distinct ones, so most pieces are one hash probe instead of
 * a merge loop. Only pieces of 2..CACHE_MAX_KEY bytes are cached, and the
 * table stops taking entries at half full; the ids are the same either way.
 * A text shorter than CACHE_MIN_TEXT bytes does without (the table is
 * 768 KiB). */
enum { CACHE_SLOTS = 1 << 15, CACHE_MAX_KEY = 32, CACHE_MIN_TEXT = 16384 };
typedef struct cache_slot {
    uint64_t hash; /* 0: empty */
    uint32_t key_off, ids_off;
    uint32_t key_len, n_ids;
} cache_slot;

static void emit(enc *e, int32_t id)
{
    if (e->n < e->cap) e->ids[e->n] = id;
    e->n++;
}

td_status tdi_hf_grow(const td_allocator *a, void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return TD_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > ((size_t)-1 / 2) / elem) return tdi_nomem(__func__, need);
        c *= 2;
    }
    void *q = tdi_realloc(a, *p, c * elem);
    if (q == NULL) return tdi_nomem(__func__, c * elem);
    *p = q;
    *cap = c;
    return TD_OK;
}

static uint64_t cache_hash(const unsigned char *p, size_t k)
{
    uint64_t hv = fnv(FNV_SEED, p, k);
    return hv ? hv : 1;
}

/* The cached ids of p[0..k), or NULL (and *slot: where they would go, or
 * NULL when the table takes no more). */
static const int32_t *cache_find(enc *e, const unsigned char *p, size_t k, uint64_t hv,
                                 size_t *n, cache_slot **slot)
{
    *slot = NULL;
    if (e->slots == NULL) return NULL;
    for (size_t i = hv & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_slot *c = &e->slots[i];
        if (c->hash == 0) {
            if (e->n_slots_used < CACHE_SLOTS / 2) *slot = c;
            return NULL;
        }
        if (c->hash == hv && c->key_len == k && memcmp(e->keys + c->key_off, p, k) == 0) {
            *n = c->n_ids;
            return e->cached + c->ids_off;
        }
    }
}

static td_status cache_put(enc *e, cache_slot *c, const unsigned char *p, size_t k, uint64_t hv,
                           const sym *s)
{
    size_t n = 0;
    for (int32_t i = 0; i >= 0; i = s[i].next) n++;
    TDI_TRY(tdi_hf_grow(e->a, (void **)&e->keys, &e->keys_cap, e->keys_len + k, 1));
    TDI_TRY(tdi_hf_grow(e->a, (void **)&e->cached, &e->cached_cap, e->cached_len + n,
                        sizeof *e->cached));
    memcpy(e->keys + e->keys_len, p, k);
    size_t j = e->cached_len;
    for (int32_t i = 0; i >= 0; i = s[i].next) e->cached[j++] = s[i].id;
    *c = (cache_slot){ hv, (uint32_t)e->keys_len, (uint32_t)e->cached_len, (uint32_t)k,
                       (uint32_t)n };
    e->keys_len += k;
    e->cached_len += n;
    e->n_slots_used++;
    return TD_OK;
}

static int item_less(const merge_item *x, const merge_item *y)
{
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static td_status heap_push(enc *e, merge_item it)
{
    TDI_TRY(tdi_hf_grow(e->a, (void **)&e->heap, &e->heap_cap, e->heap_n + 1, sizeof *e->heap));
    size_t i = e->heap_n++;
    while (i > 0 && item_less(&it, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = it;
    return TD_OK;
}

static merge_item heap_pop(enc *e)
{
    merge_item top = e->heap[0], last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && item_less(&e->heap[c + 1], &e->heap[c])) c++;
        if (!item_less(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

/* The tokenizers library's Word::merge_all: the pair of lowest rank (then
 * leftmost) merges first; stale queue entries are skipped. */
static td_status bpe_word(enc *e, const unsigned char *p, size_t k)
{
    const tdi_hf *h = e->h;
    if (k == 1) {
        emit(e, h->byte_id[p[0]]);
        return TD_OK;
    }
    cache_slot *slot = NULL;
    uint64_t hv = 0;
    if (e->use_cache && k <= CACHE_MAX_KEY) {
        if (e->slots == NULL) {
            e->slots = tdi_calloc(e->a, CACHE_SLOTS, sizeof *e->slots);
            if (e->slots == NULL) return tdi_nomem("tdi_hf_encode", CACHE_SLOTS * sizeof *e->slots);
        }
        size_t n;
        hv = cache_hash(p, k);
        const int32_t *hit = cache_find(e, p, k, hv, &n, &slot);
        if (hit != NULL) {
            for (size_t i = 0; i < n; i++) emit(e, hit[i]);
            return TD_OK;
        }
    }
    TDI_TRY(tdi_hf_grow(e->a, (void **)&e->syms, &e->sym_cap, k, sizeof *e->syms));
    sym *s = e->syms;
    for (size_t i = 0; i < k; i++) {
        s[i].id = h->byte_id[p[i]];
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < k ? (int32_t)i + 1 : -1;
    }
    e->heap_n = 0;
    for (size_t i = 0; i + 1 < k; i++) {
        merge_item it = { 0, (uint32_t)i, 0 };
        if (merge_find(h, s[i].id, s[i + 1].id, &it.rank, &it.id)) TDI_TRY(heap_push(e, it));
    }
    while (e->heap_n > 0) {
        merge_item top = heap_pop(e);
        sym *cur = &s[top.pos];
        if (cur->id < 0 || cur->next < 0) continue;
        sym *right = &s[cur->next];
        uint32_t rank;
        int32_t id;
        if (!merge_find(h, cur->id, right->id, &rank, &id) || id != top.id) continue;
        cur->id = top.id;
        int32_t after = right->next;
        right->id = -1;
        cur->next = after;
        if (after >= 0) s[after].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            merge_item it = { 0, (uint32_t)cur->prev, 0 };
            if (merge_find(h, s[cur->prev].id, cur->id, &it.rank, &it.id))
                TDI_TRY(heap_push(e, it));
        }
        if (after >= 0) {
            merge_item it = { 0, top.pos, 0 };
            if (merge_find(h, cur->id, s[after].id, &it.rank, &it.id)) TDI_TRY(heap_push(e, it));
        }
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) emit(e, s[i].id);
    return slot != NULL ? cache_put(e, slot, p, k, hv, s) : TD_OK;
}

static size_t next_cp(const unsigned char *u, size_t m, size_t i, uint32_t *cp)
{
    if (u[i] < 0x80) {
        *cp = u[i];
        return 1;
    }
    return tdi_utf8_next(u + i, m - i, cp);
}

/* End of the pre-token starting at u[i] (valid UTF-8), by the pattern
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t bpe_pretoken(const unsigned char *u, size_t m, size_t i)
{
    if (u[i] == '\'' && i + 1 < m) {
        unsigned char c = u[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < m && ((c == 'r' && u[i + 2] == 'e') || (c == 'v' && u[i + 2] == 'e') ||
                          (c == 'l' && u[i + 2] == 'l')))
            return i + 3;
    }
    uint32_t cp;
    size_t j = i + next_cp(u, m, i, &cp);
    int cls = bpe_class(cp);
    if (cp == ' ' && j < m) {
        uint32_t c2;
        size_t k = next_cp(u, m, j, &c2);
        int cls2 = bpe_class(c2);
        if (cls2 != CLS_S) {
            cls = cls2;
            j += k;
        }
    }
    if (cls != CLS_S) {
        while (j < m) {
            size_t k = next_cp(u, m, j, &cp);
            if (bpe_class(cp) != cls) break;
            j += k;
        }
        return j;
    }
    size_t last = i; /* start of the run's last character */
    while (j < m) {
        size_t k = next_cp(u, m, j, &cp);
        if (!is_ws(cp)) return last > i ? last : j; /* \s+(?!\S), else \s+ */
        last = j;
        j += k;
    }
    return j;
}

static td_status bpe_encode(enc *e, const unsigned char *u, size_t m)
{
    e->use_cache = m >= CACHE_MIN_TEXT;
    for (size_t i = 0; i < m;) {
        size_t j = bpe_pretoken(u, m, i);
        TDI_TRY(bpe_word(e, u + i, j - i));
        i = j;
    }
    return TD_OK;
}

/* The text as the tokenizers library sees it: valid UTF-8 (U+FFFD for each
 * ill-formed subpart) with, when configured, a space in front. *copy is
 * NULL when the text can be used as it is. */
static td_status normalized_text(const tdi_hf *h, const td_allocator *a, const char *text,
                                 size_t len, char **copy, const unsigned char **u, size_t *m)
{
    *copy = NULL;
    *u = (const unsigned char *)text;
    *m = len;
    int prefix = (h->flags & TDI_HF_ADD_PREFIX_SPACE) && len > 0 && text[0] != ' ';
    int valid = 1;
    for (size_t i = 0; i < len && valid;) {
        if ((unsigned char)text[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = tdi_utf8_next((const unsigned char *)text + i, len - i, &cp);
        if (cp == TDI_UTF8_REPLACEMENT && (k != 3 || memcmp(text + i, "\xEF\xBF\xBD", 3) != 0))
            valid = 0;
        i += k;
    }
    if (valid && !prefix) return TD_OK;
    size_t need = len + 1;
    if (!valid) TDI_TRY(tdi_utf8_sanitize(text, len, NULL, 0, &need));
    char *c = tdi_malloc(a, need + 2);
    if (c == NULL) return tdi_nomem("tdi_hf_encode", need + 2);
    size_t n = len;
    if (valid) memcpy(c + prefix, text, len);
    else tdi_utf8_sanitize(text, len, c + prefix, need + 1, &n);
    c[0] = prefix ? ' ' : c[0];
    *copy = c;
    *u = (const unsigned char *)c;
    *m = n + (size_t)prefix;
    return TD_OK;
}

/* WordPiece on one pre-token (the tokenizers library's WordPiece model). */
static void wordpiece_word(enc *e)
{
    const tdi_hf *h = e->h;
    const char *w = (const char *)e->word;
    size_t n = e->word_len;
    if (n == 0) return;
    size_t first = e->n;
    if (e->word_chars > h->max_chars) goto unk;
    for (size_t start = 0; start < n;) {
        size_t end = n;
        int32_t id = -1;
        while (end > start) {
            id = start > 0 ? lookup2(h, "##", 2, w + start, end - start)
                           : lookup2(h, "", 0, w, end);
            if (id >= 0) break;
            do end--; while (end > start && (e->word[end] & 0xC0) == 0x80);
        }
        if (id < 0) goto unk;
        emit(e, id);
        start = end;
    }
    e->word_len = e->word_chars = 0;
    return;
unk:
    e->n = first;
    emit(e, h->special[TDI_HF_UNK]);
    e->word_len = e->word_chars = 0;
}

static td_status word_add(enc *e, uint32_t cp)
{
    if (e->word_chars >= e->h->max_chars) { /* [UNK] anyway: count, keep nothing */
        e->word_chars++;
        return TD_OK;
    }
    TDI_TRY(tdi_hf_grow(e->a, (void **)&e->word, &e->word_cap, e->word_len + 4, 1));
    e->word_len += tdi_utf8_put(cp, e->word + e->word_len);
    e->word_chars++;
    return TD_OK;
}

/* BertPreTokenizer: whitespace splits, punctuation stands alone. */
static td_status pretok_char(enc *e, uint32_t cp)
{
    if (is_ws(cp)) {
        wordpiece_word(e);
        return TD_OK;
    }
    if (is_punct(cp)) {
        wordpiece_word(e);
        TDI_TRY(word_add(e, cp));
        wordpiece_word(e);
        return TD_OK;
    }
    return word_add(e, cp);
}

static td_status lower_char(enc *e, uint32_t cp)
{
    if (!(e->h->flags & TDI_HF_LOWERCASE)) return pretok_char(e, cp);
    if (cp == 0x130) { /* the one unconditional multi-character lowercase */
        TDI_TRY(pretok_char(e, 'i'));
        return pretok_char(e, 0x307);
    }
    return pretok_char(e, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

static td_status strip_char(enc *e, uint32_t cp)
{
    if (!(e->h->flags & TDI_HF_STRIP_ACCENTS) || cp < 0xC0) return lower_char(e, cp);
    utf8proc_int32_t d[32];
    int last = 0;
    utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32,
                                                 UTF8PROC_DECOMPOSE, &last);
    if (k < 0 || k > 32) return lower_char(e, cp);
    for (utf8proc_ssize_t i = 0; i < k; i++)
        if (utf8proc_category(d[i]) != UTF8PROC_CATEGORY_MN)
            TDI_TRY(lower_char(e, (uint32_t)d[i]));
    return TD_OK;
}

static td_status wordpiece_encode(enc *e, const unsigned char *s, size_t len)
{
    uint32_t f = e->h->flags;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += next_cp(s, len, i, &cp);
        if (f & TDI_HF_CLEAN_TEXT) {
            if (cp == 0 || cp == TDI_UTF8_REPLACEMENT || is_control(cp)) continue;
            if (is_ws(cp)) cp = ' ';
        }
        if ((f & TDI_HF_CHINESE_CHARS) && is_chinese(cp)) {
            TDI_TRY(strip_char(e, ' '));
            TDI_TRY(strip_char(e, cp));
            TDI_TRY(strip_char(e, ' '));
        } else {
            TDI_TRY(strip_char(e, cp));
        }
    }
    wordpiece_word(e);
    return TD_OK;
}

td_status tdi_hf_encode(const tdi_hf *h, const td_allocator *a, const char *text, size_t len,
                        int32_t *ids, size_t cap, size_t *n_ids)
{
    enc e;
    memset(&e, 0, sizeof e);
    e.h = h;
    e.a = a;
    e.ids = ids;
    e.cap = ids != NULL ? cap : 0;
    td_status st;
    if (h->kind == TDI_TOKENIZER_BPE) {
        char *copy;
        const unsigned char *u;
        size_t m;
        st = normalized_text(h, a, text, len, &copy, &u, &m);
        if (st == TD_OK) st = bpe_encode(&e, u, m);
        tdi_free(a, copy);
    } else {
        st = wordpiece_encode(&e, (const unsigned char *)text, len);
    }
    tdi_free(a, e.syms);
    tdi_free(a, e.heap);
    tdi_free(a, e.word);
    tdi_free(a, e.slots);
    tdi_free(a, e.keys);
    tdi_free(a, e.cached);
    if (st != TD_OK) return st;
    *n_ids = e.n;
    if (ids != NULL && e.n > cap)
        return tdi_fail(TD_ERR_INVALID_ARG, "td_tokenizer_encode: the result needs %zu ids, "
                        "the buffer holds %zu", e.n, cap);
    return TD_OK;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct sink {
    const td_allocator *a;
    char *p;
    size_t len, cap;
} sink;

static td_status put(sink *o, const void *p, size_t n)
{
    TDI_TRY(tdi_hf_grow(o->a, (void **)&o->p, &o->cap, o->len + n + 1, 1));
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return TD_OK;
}

/* Replace every `from` in o->p[start..) by the no longer `to`. */
static void replace_all(sink *o, size_t start, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), w = start;
    for (size_t r = start; r < o->len;) {
        if (r + nf <= o->len && memcmp(o->p + r, from, nf) == 0) {
            memcpy(o->p + w, to, nt);
            w += nt;
            r += nf;
        } else {
            o->p[w++] = o->p[r++];
        }
    }
    o->len = w;
}

/* The tokenizers library's WordPiece decoder, cleanup applied to each piece. */
static void cleanup(sink *o, size_t start)
{
    static const char *const rules[][2] = {
        { " .", "." }, { " ?", "?" }, { " !", "!" }, { " ,", "," }, { " ' ", "'" },
        { " n't", "n't" }, { " 'm", "'m" }, { " do not", " don't" }, { " 's", "'s" },
        { " 've", "'ve" }, { " 're", "'re" },
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        replace_all(o, start, rules[i][0], rules[i][1]);
}

static td_status bpe_piece(const tdi_hf *h, sink *o, const char *t, size_t n)
{
    /* A token whose every character is a byte's stands for those bytes;
     * any other (an added token) for its own UTF-8. */
    size_t start = o->len;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tdi_utf8_next((const unsigned char *)t + i, n - i, &cp);
        if (cp >= 324 || h->cp_byte[cp] < 0) {
            o->len = start;
            return put(o, t, n);
        }
        unsigned char b = (unsigned char)h->cp_byte[cp];
        TDI_TRY(put(o, &b, 1));
    }
    return TD_OK;
}

td_status tdi_hf_decode(const tdi_hf *h, const td_allocator *a, const int32_t *ids, size_t n,
                        const char *mask_text, char *out, size_t cap, size_t *len)
{
    sink o = { a, NULL, 0, 0 };
    td_status st = TD_OK;
    int wp = h->kind == TDI_TOKENIZER_WORDPIECE;
    for (size_t i = 0; i < n && st == TD_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= h->n_tokens) {
            st = tdi_fail(TD_ERR_INVALID_ARG, "td_tokenizer_decode: ids[%zu] = %ld is outside "
                          "[0, %u)", i, (long)id, (unsigned)h->n_tokens);
            break;
        }
        if (id == h->special[TDI_HF_PAD]) break;
        size_t tl;
        const char *t = tdi_hf_token(h, id, &tl);
        if (id == h->special[TDI_HF_MASK]) {
            t = mask_text;
            tl = strlen(mask_text);
        }
        if (!wp) {
            st = id == h->special[TDI_HF_MASK] ? put(&o, t, tl) : bpe_piece(h, &o, t, tl);
            continue;
        }
        size_t start = o.len;
        if (i > 0 && id != h->special[TDI_HF_MASK] && tl >= 2 && memcmp(t, "##", 2) == 0) {
            st = put(&o, t + 2, tl - 2);
        } else {
            if (i > 0) st = put(&o, " ", 1);
            if (st == TD_OK) st = put(&o, t, tl);
        }
        if (st == TD_OK && (h->flags & TDI_HF_CLEANUP)) cleanup(&o, start);
    }
    if (st == TD_OK) {
        /* Byte-level output may cut a character: from_utf8_lossy, as HF. */
        st = tdi_utf8_sanitize(o.p ? o.p : "", o.len, out, cap, len);
        if (st != TD_OK)
            st = tdi_fail(TD_ERR_INVALID_ARG, "td_tokenizer_decode: the result needs %zu bytes, "
                          "the buffer holds %zu", *len + 1, cap);
    }
    tdi_free(a, o.p);
    return st;
}
