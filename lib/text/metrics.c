/* Sample-quality statistics of a text (docs/evaluation.md, "Text
 * statistics"): distinct word n-grams, the repetition of byte 4-grams, the
 * entropy of the word distribution, and the share of words a reference text
 * also uses. Pure counting: exact, independent of any model. */
#include "util/alloc.h"
#include "util/config.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

#define TEXT_STATS_V1 72
#define TOP_GRAMS 10

/* A word is a maximal run of ASCII letters, digits, apostrophes and bytes
 * >= 0x80 (UTF-8 letters); ASCII letters compare case-folded. */
static int word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '\'' || c >= 0x80;
}

static unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* The next word of text[*at..len): 1 with [*start, *start + *n), 0 at the
 * end. Advances *at past it. */
static int next_word(const unsigned char *text, size_t len, size_t *at, size_t *start,
                     size_t *n)
{
    size_t i = *at;
    while (i < len && !word_byte(text[i])) i++;
    if (i == len) return 0;
    size_t j = i;
    while (j < len && word_byte(text[j])) j++;
    *at = j;
    *start = i;
    *n = j - i;
    return 1;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* ---- an open-addressing table of (key, count), keys never 0 ------------- */

typedef struct table {
    uint64_t *keys;
    int64_t *counts;
    size_t cap, used;   /* cap a power of two, at least twice used */
} table;

static td_status table_init(table *t, const td_allocator *a, size_t max_keys)
{
    size_t cap = 16;
    while (cap < 2 * max_keys + 2) cap *= 2;
    t->cap = cap;
    t->used = 0;
    t->keys = tdi_calloc(a, cap, sizeof *t->keys);
    t->counts = tdi_calloc(a, cap, sizeof *t->counts);
    if (t->keys == NULL || t->counts == NULL) return tdi_nomem("td_text_stats", cap * 16);
    return TD_OK;
}

static void table_free(table *t, const td_allocator *a)
{
    tdi_free(a, t->keys);
    tdi_free(a, t->counts);
}

/* The slot of `key` (key != 0), inserted with count 0 when new. */
static size_t table_slot(table *t, uint64_t key)
{
    size_t i = (size_t)mix(key) & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != key) i = (i + 1) & (t->cap - 1);
    if (t->keys[i] == 0) {
        t->keys[i] = key;
        t->used++;
    }
    return i;
}

/* ---- words --------------------------------------------------------------- */

typedef struct words {
    uint32_t *ids;      /* [n] each word's id: its index among distinct words */
    int64_t *freq;      /* [n_distinct] occurrences of each id */
    size_t n, n_distinct;
    table index;        /* word hash -> id + 1 (in the table's counts) */
} words;

/* A word's 64-bit hash; words hashing alike count as one (odds ~n²/2^64). */
static uint64_t word_hash(const unsigned char *p, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ len;
    for (size_t i = 0; i < len; i++) h = mix(h ^ fold(p[i])) + i;
    return h | 1; /* never 0 */
}

/* Splits text into words; ids are assigned in order of first appearance. */
static td_status split_words(const unsigned char *text, size_t len, const td_allocator *a,
                             words *w)
{
    size_t max_words = len / 2 + 1; /* words are separated */
    w->ids = tdi_malloc(a, max_words * sizeof *w->ids);
    w->freq = tdi_calloc(a, max_words, sizeof *w->freq);
    if (w->ids == NULL || w->freq == NULL)
        return tdi_nomem("td_text_stats", max_words * 12);
    TDI_TRY(table_init(&w->index, a, max_words));
    w->n = 0;
    int64_t next = 0;
    for (size_t at = 0, i, n; next_word(text, len, &at, &i, &n);) {
        size_t slot = table_slot(&w->index, word_hash(text + i, n));
        if (w->index.counts[slot] == 0) w->index.counts[slot] = ++next;
        uint32_t id = (uint32_t)(w->index.counts[slot] - 1);
        w->freq[id]++;
        w->ids[w->n++] = id;
    }
    w->n_distinct = (size_t)next;
    return TD_OK;
}

static void words_free(words *w, const td_allocator *a)
{
    tdi_free(a, w->ids);
    tdi_free(a, w->freq);
    table_free(&w->index, a);
}

static int known(const words *ref, const unsigned char *p, size_t len)
{
    const table *t = &ref->index;
    uint64_t key = word_hash(p, len);
    size_t i = (size_t)mix(key) & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != key) i = (i + 1) & (t->cap - 1);
    return t->keys[i] == key;
}

/* Distinct n-grams of word ids over all n-grams; NaN when there are none. */
static td_status distinct(const words *w, int n, const td_allocator *a, double *out)
{
    if (w->n < (size_t)n) {
        *out = NAN;
        return TD_OK;
    }
    size_t total = w->n - (size_t)n + 1;
    table t;
    td_status st = table_init(&t, a, total);
    if (st == TD_OK) {
        for (size_t i = 0; i < total; i++) {
            uint64_t key = 0;
            for (int k = 0; k < n; k++) key = mix(key + w->ids[i + (size_t)k] + 1);
            table_slot(&t, key | 1);
        }
        *out = (double)t.used / (double)total;
    }
    table_free(&t, a);
    return st;
}

/* Entropy in bits of the word distribution (the maximum-likelihood
 * estimate, summed in id order so the result is reproducible). */
static double word_entropy(const words *w)
{
    if (w->n == 0) return NAN;
    double h = 0.0, n = (double)w->n;
    for (size_t id = 0; id < w->n_distinct; id++) {
        double p = (double)w->freq[id] / n;
        h -= p * log2(p);
    }
    return h;
}

/* Share of bytes covered by an occurrence of one of the TOP_GRAMS most
 * frequent byte 4-grams. */
static td_status repetition(const unsigned char *text, size_t len, const td_allocator *a,
                            double *out)
{
    if (len < 4) {
        *out = NAN;
        return TD_OK;
    }
    size_t total = len - 3;
    table t;
    unsigned char *covered = NULL;
    td_status st = table_init(&t, a, total);
    if (st == TD_OK && (covered = tdi_calloc(a, len, 1)) == NULL) st = tdi_nomem(__func__, len);
    if (st == TD_OK) {
        for (size_t i = 0; i < total; i++) {
            uint32_t g;
            memcpy(&g, text + i, 4);
            t.counts[table_slot(&t, (uint64_t)g + 1)]++;
        }
        uint64_t top[TOP_GRAMS] = { 0 };
        int64_t top_n[TOP_GRAMS] = { 0 };
        for (size_t s = 0; s < t.cap; s++) { /* keep the TOP_GRAMS largest, ties by key */
            if (t.keys[s] == 0) continue;
            int64_t c = t.counts[s];
            int k = TOP_GRAMS;
            while (k > 0 && (top_n[k - 1] < c || (top_n[k - 1] == c && top[k - 1] > t.keys[s])))
                k--;
            if (k == TOP_GRAMS) continue;
            memmove(top + k + 1, top + k, (TOP_GRAMS - 1 - (size_t)k) * sizeof *top);
            memmove(top_n + k + 1, top_n + k, (TOP_GRAMS - 1 - (size_t)k) * sizeof *top_n);
            top[k] = t.keys[s];
            top_n[k] = c;
        }
        for (size_t i = 0; i < total; i++) {
            uint32_t g;
            memcpy(&g, text + i, 4);
            for (int k = 0; k < TOP_GRAMS; k++)
                if (top_n[k] > 0 && top[k] == (uint64_t)g + 1) {
                    memset(covered + i, 1, 4);
                    break;
                }
        }
        size_t n_cov = 0;
        for (size_t i = 0; i < len; i++) n_cov += covered[i];
        *out = (double)n_cov / (double)len;
    }
    tdi_free(a, covered);
    table_free(&t, a);
    return st;
}

/* Share of the text's words that the reference uses too. */
static td_status known_share(const unsigned char *text, size_t len, const unsigned char *ref,
                             size_t ref_len, const td_allocator *a, double *out)
{
    words r;
    memset(&r, 0, sizeof r);
    td_status st = split_words(ref, ref_len, a, &r);
    if (st == TD_OK) {
        size_t count = 0, hits = 0;
        for (size_t at = 0, i, n; next_word(text, len, &at, &i, &n); count++)
            hits += (size_t)known(&r, text + i, n);
        *out = count > 0 ? (double)hits / (double)count : NAN;
    }
    words_free(&r, a);
    return st;
}

static td_status compute(const unsigned char *text, size_t len, const unsigned char *ref,
                         size_t ref_len, const td_allocator *a, td_text_stats *r)
{
    words w;
    memset(&w, 0, sizeof w);
    td_status st = split_words(text, len, a, &w);
    if (st == TD_OK) st = distinct(&w, 1, a, &r->distinct_1);
    if (st == TD_OK) st = distinct(&w, 2, a, &r->distinct_2);
    if (st == TD_OK) st = distinct(&w, 3, a, &r->distinct_3);
    r->n_words = (int64_t)w.n;
    r->word_entropy_bits = word_entropy(&w);
    words_free(&w, a);
    if (st == TD_OK) st = repetition(text, len, a, &r->repetition);
    r->known_words = NAN;
    if (st == TD_OK && ref != NULL) st = known_share(text, len, ref, ref_len, a, &r->known_words);
    return st;
}

td_status td_text_stats_compute(const char *text, size_t len, const char *reference,
                                size_t reference_len, const td_allocator *alloc,
                                td_text_stats *out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    TDI_TRY(tdi_struct_size_check(out->struct_size, TEXT_STATS_V1, __func__, "out"));
    TDI_CHECK_ARG(text != NULL || len == 0, "%s: text is NULL", __func__);
    TDI_CHECK_ARG(reference != NULL || reference_len == 0, "%s: reference is NULL", __func__);
    TDI_CHECK_ARG(len <= ((size_t)1 << 32) && reference_len <= ((size_t)1 << 32),
                  "%s: texts are limited to 4 GiB", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    td_text_stats r;
    memset(&r, 0, sizeof r);
    r.n_bytes = (int64_t)len;
    TDI_TRY(compute((const unsigned char *)text, len, (const unsigned char *)reference,
                    reference_len, &a, &r));
    tdi_struct_out(out, out->struct_size, &r, sizeof r);
    return TD_OK;
}
