/* Hugging Face tokenizers (WordPiece, byte-level BPE) against the ids the
 * `tokenizers` library gives (tests/golden/hf-tok/, made by
 * tools/reference/make_hf_tokenizers.py): an edge-case text and the first
 * 200 KB of the corpus, from each file form; decoding; the checkpoint
 * description; bad files; allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <zlib.h>

#include "common/test_alloc_hooks.h"
#include "io/corpus.h"
#include "text/hf.h"
#include "text/tokenizer.h"

#define HF_DIR TD_SOURCE_DIR "/tests/golden/hf-tok"
#define CORPUS_SLICE (200 * 1024)

/* Whole file (plain or gzip) as bytes; NUL-terminated. */
static char *slurp(const char *path, size_t limit, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        size_t want = cap - n;
        if (limit && want > limit - n) want = limit - n;
        if (want == 0) break;
        int k = gzread(f, buf + n, (unsigned)want);
        if (k <= 0) break;
        n += (size_t)k;
    }
    gzclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A golden id list: the count, then the ids. */
static int32_t *read_ids(const char *path, size_t *n)
{
    size_t len;
    char *text = slurp(path, 0, &len);
    char *p = text, *end;
    *n = strtoul(p, &end, 10);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) {
        p = end;
        ids[i] = (int32_t)strtol(p, &end, 10);
        assert_true(end != p);
    }
    free(text);
    return ids;
}

static td_tokenizer *from(tdi_hf *h)
{
    td_tokenizer *t = NULL;
    assert_int_equal(tdi_tokenizer_from_hf(h, NULL, &t), TD_OK);
    return t;
}

static void expect_ids(const td_tokenizer *t, const char *text, size_t len, const char *ids_path)
{
    size_t n_want;
    int32_t *want = read_ids(ids_path, &n_want);
    size_t n = 0;
    assert_int_equal(td_tokenizer_encode(t, text, len, NULL, 0, &n), TD_OK);
    int32_t *got = malloc((n + 1) * sizeof *got);
    assert_int_equal(td_tokenizer_encode(t, text, len, got, n, &n), TD_OK);
    size_t first = 0;
    while (first < n && first < n_want && got[first] == want[first]) first++;
    if (n != n_want || first != n)
        fail_msg("%s: %zu ids, want %zu; first difference at %zu (%d vs %d)", ids_path, n,
                 n_want, first, first < n ? got[first] : -1, first < n_want ? want[first] : -1);
    free(got);
    free(want);
}

/* Decoding the golden ids gives what the tokenizers library's decode gives. */
static void expect_decoded(const td_tokenizer *t, const char *ids_path, const char *text_path)
{
    size_t n, want_len, len;
    int32_t *ids = read_ids(ids_path, &n);
    char *want = slurp(text_path, 0, &want_len);
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, NULL, 0, &len), TD_OK);
    char *got = malloc(len + 1);
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, got, len + 1, &len), TD_OK);
    if (len != want_len || memcmp(got, want, len) != 0)
        fail_msg("%s: decoded %zu bytes, want %zu:\n%s\n---\n%s", ids_path, len, want_len, got,
                 want);
    free(got);
    free(want);
    free(ids);
}

static char *edge_text(size_t *len) { return slurp(HF_DIR "/edge.txt", 0, len); }
static char *corpus_text(size_t *len)
{
    return slurp(TD_SOURCE_DIR "/data/kjv.txt.gz", CORPUS_SLICE, len);
}

static void check_golden(const td_tokenizer *t, const char *name)
{
    char path[512];
    size_t len;
    char *text = edge_text(&len);
    snprintf(path, sizeof path, HF_DIR "/%s-edge.ids", name);
    expect_ids(t, text, len, path);
    free(text);
    text = corpus_text(&len);
    assert_int_equal(len, CORPUS_SLICE);
    snprintf(path, sizeof path, HF_DIR "/%s-corpus.ids.gz", name);
    expect_ids(t, text, len, path);
    free(text);
    char dec[512];
    snprintf(path, sizeof path, HF_DIR "/%s-edge.ids", name);
    snprintf(dec, sizeof dec, HF_DIR "/%s-edge.decoded", name);
    expect_decoded(t, path, dec);
}

static void test_bpe_tokenizer_json(void **state)
{
    (void)state;
    td_tokenizer *t = NULL;
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/bpe", NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_BPE);
    int32_t v, id;
    assert_int_equal(td_tokenizer_vocab_size(t, &v), TD_OK);
    assert_int_equal(v, 3000);
    static const int32_t want[5] = { 4, 1, -1, 0, 2 }; /* <mask> <pad> (<unk>) <s> </s> */
    for (int k = 0; k < 5; k++) {
        if (k == 2) continue;
        assert_int_equal(td_tokenizer_special_id(t, (td_special_token)k, &id), TD_OK);
        assert_int_equal(id, want[k]);
    }
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_UNK, &id), TD_OK);
    assert_int_equal(id, 3);
    check_golden(t, "bpe");
    td_tokenizer_free(t);
}

static void test_bpe_vocab_json(void **state)
{
    (void)state;
    tdi_hf *h = NULL;
    assert_int_equal(tdi_hf_load_vocab_json(HF_DIR "/bpe/vocab.json", HF_DIR "/bpe/merges.txt",
                                            NULL, &h),
                     TD_OK);
    td_tokenizer *t = from(h);
    check_golden(t, "bpe");
    td_tokenizer_free(t);
}

static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    assert_non_null(p);
    size_t n = strlen(s), nf = strlen(from), nt = strlen(to);
    char *r = malloc(n - nf + nt + 1);
    memcpy(r, s, (size_t)(p - s));
    memcpy(r + (p - s), to, nt);
    strcpy(r + (p - s) + nt, p + nf);
    return r;
}

static td_tokenizer *edited(const char *path, const char *old, const char *new_text)
{
    size_t len;
    char *json = slurp(path, 0, &len);
    char *e = replace_once(json, old, new_text);
    tdi_hf *h = NULL;
    td_status st = tdi_hf_parse_tokenizer_json(e, strlen(e), NULL, &h);
    if (st != TD_OK) fail_msg("%s", td_last_error_message());
    free(e);
    free(json);
    return from(h);
}

static void test_bpe_prefix_space(void **state)
{
    (void)state;
    /* The first add_prefix_space is the pre-tokenizer's. */
    td_tokenizer *t = edited(HF_DIR "/bpe/tokenizer.json", "\"add_prefix_space\": false",
                             "\"add_prefix_space\": true");
    size_t len;
    char *text = edge_text(&len);
    expect_ids(t, text, len, HF_DIR "/bpe-prefix-edge.ids");
    free(text);
    td_tokenizer_free(t);
}

static void test_wordpiece_tokenizer_json(void **state)
{
    (void)state;
    td_tokenizer *t = NULL;
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/wordpiece", NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_WORDPIECE);
    static const int32_t want[5] = { 4, 0, 1, 2, 3 }; /* [MASK] [PAD] [UNK] [CLS] [SEP] */
    for (int k = 0; k < 5; k++) {
        int32_t id;
        assert_int_equal(td_tokenizer_special_id(t, (td_special_token)k, &id), TD_OK);
        assert_int_equal(id, want[k]);
    }
    check_golden(t, "wordpiece");
    td_tokenizer_free(t);
}

static void test_wordpiece_vocab_txt(void **state)
{
    (void)state;
    tdi_hf *h = NULL;
    assert_int_equal(tdi_hf_load_vocab_txt(HF_DIR "/wordpiece/vocab.txt",
                                           HF_DIR "/wordpiece/tokenizer_config.json", NULL, &h),
                     TD_OK);
    td_tokenizer *t = from(h);
    check_golden(t, "wordpiece");
    td_tokenizer_free(t);
}

static void test_wordpiece_cased(void **state)
{
    (void)state;
    td_tokenizer *t = edited(HF_DIR "/wordpiece/tokenizer.json", "\"lowercase\": true",
                             "\"lowercase\": false");
    size_t len;
    char *text = edge_text(&len);
    expect_ids(t, text, len, HF_DIR "/wordpiece-cased-edge.ids");
    free(text);
    td_tokenizer_free(t);
}

/* 400 random strings over many scripts, marks, controls and spaces
 * (random.txt, NUL-separated), each encoded alone; then the whole file as
 * one text. */
static void expect_random(const td_tokenizer *t, const char *ids_path)
{
    size_t len, ids_len;
    char *texts = slurp(HF_DIR "/random.txt", 0, &len);
    char *lines = slurp(ids_path, 0, &ids_len);
    const char *p = texts, *end = texts + len, *line = lines;
    size_t k = 0;
    for (;; k++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n_text = nul ? (size_t)(nul - p) : (size_t)(end - p);
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        int32_t want[1024], got[1024];
        size_t n_want = 0, n_got = 0;
        for (char *q = (char *)line; q < eol;) {
            char *next;
            long v = strtol(q, &next, 10);
            if (next == q) break;
            want[n_want++] = (int32_t)v;
            q = next;
        }
        assert_int_equal(td_tokenizer_encode(t, p, n_text, got, 1024, &n_got), TD_OK);
        if (n_got != n_want || memcmp(got, want, n_got * sizeof *got) != 0)
            fail_msg("%s: string %zu (\"%.*s\"): %zu ids, want %zu", ids_path, k, (int)n_text, p,
                     n_got, n_want);
        line = eol + 1;
        if (nul == NULL) break;
        p = nul + 1;
    }
    assert_int_equal(k + 1, 400);
    free(lines);
    free(texts);
}

static void test_random_strings(void **state)
{
    (void)state;
    static const char *names[3] = { "bpe", "wordpiece", "wordpiece-multi" };
    for (int i = 0; i < 3; i++) {
        char dir[512], ids[512];
        snprintf(dir, sizeof dir, HF_DIR "/%s", names[i]);
        snprintf(ids, sizeof ids, HF_DIR "/%s-random.ids.gz", names[i]);
        td_tokenizer *t = NULL;
        assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
        expect_random(t, ids);
        size_t len;
        char *whole = slurp(HF_DIR "/random.txt", 0, &len);
        snprintf(ids, sizeof ids, HF_DIR "/%s-random-whole.ids.gz", names[i]);
        expect_ids(t, whole, len, ids);
        free(whole);
        td_tokenizer_free(t);
    }
}

/* ---- checkpoints ---------------------------------------------------------- */

static void same_encoding(const td_tokenizer *a, const td_tokenizer *b)
{
    size_t len, na, nb;
    char *text = edge_text(&len);
    int32_t ia[4096], ib[4096];
    assert_int_equal(td_tokenizer_encode(a, text, len, ia, 4096, &na), TD_OK);
    assert_int_equal(td_tokenizer_encode(b, text, len, ib, 4096, &nb), TD_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    for (int k = 0; k < 5; k++) {
        int32_t x = -1, y = -1;
        td_status sa = td_tokenizer_special_id(a, (td_special_token)k, &x);
        assert_int_equal(td_tokenizer_special_id(b, (td_special_token)k, &y), sa);
        assert_int_equal(x, y);
    }
    free(text);
}

static unsigned char *describe(const td_tokenizer *t, size_t *size)
{
    assert_int_equal(tdi_tokenizer_serialize(t, NULL, 0, size), TD_OK);
    unsigned char *d = malloc(*size);
    assert_int_equal(tdi_tokenizer_serialize(t, d, *size, size), TD_OK);
    return d;
}

static void recrc(unsigned char *d, size_t size)
{
    uint32_t c = (uint32_t)crc32(0, d, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) d[size - 4 + i] = (unsigned char)(c >> (8 * i));
}

static void description_round_trip(const char *dir)
{
    td_tokenizer *t = NULL, *u = NULL;
    assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
    size_t size;
    unsigned char *d = describe(t, &size);
    assert_int_equal(d[4], 2); /* format version 2 for the Hugging Face kinds */
    assert_int_equal(tdi_tokenizer_deserialize(d, size, NULL, &u), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(u), tdi_tokenizer_kind_of(t));
    assert_int_equal(tdi_tokenizer_vocab_size(u), tdi_tokenizer_vocab_size(t));
    same_encoding(t, u);
    size_t size2;
    unsigned char *d2 = describe(u, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(d2, d, size);
    td_tokenizer_free(u);

    /* Every single-bit flip is caught (the CRC, or a field check). */
    for (size_t i = 0; i < size; i += 1 + size / 500) {
        d[i] ^= 0x10;
        u = NULL;
        assert_int_not_equal(tdi_tokenizer_deserialize(d, size, NULL, &u), TD_OK);
        assert_null(u);
        d[i] ^= 0x10;
    }
    /* Fields wrong under a valid CRC. */
    static const struct { size_t at; unsigned char v; } bad[] = {
        { 5, 9 }, { 5, 1 }, { 6, 0x80 }, { 7, 1 }, { 11, 0x7F }, { 19, 0x7F },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        unsigned char old = d[bad[k].at];
        d[bad[k].at] = bad[k].v;
        recrc(d, size);
        td_status st = tdi_tokenizer_deserialize(d, size, NULL, &u);
        if (st != TD_ERR_CORRUPT)
            fail_msg("byte %zu = %u: %s (%s)", bad[k].at, bad[k].v, td_status_string(st),
                     td_last_error_message());
        d[bad[k].at] = old;
    }
    recrc(d, size);
    assert_int_equal(tdi_tokenizer_deserialize(d, size - 5, NULL, &u), TD_ERR_CORRUPT);
    free(d2);
    free(d);
    td_tokenizer_free(t);
}

static void test_description(void **state)
{
    (void)state;
    description_round_trip(HF_DIR "/bpe");
    description_round_trip(HF_DIR "/wordpiece");
}

static void model_round_trip(const char *dir)
{
    td_tokenizer *t = NULL, *u = NULL;
    assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
    int32_t vocab, mask;
    assert_int_equal(td_tokenizer_vocab_size(t, &vocab), TD_OK);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, &mask), TD_OK);
    td_model_config c;
    td_model_config_default(&c);
    c.vocab_size = vocab;
    c.mask_id = mask;
    c.max_seq_len = 8;
    c.d_model = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = 16;
    td_model *m = NULL, *m2 = NULL;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
    assert_int_equal(td_model_set_tokenizer(m, t), TD_OK);
    char path[] = "/tmp/td_hf_tok_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(td_model_save(m, path), TD_OK);
    assert_int_equal(td_model_load(path, NULL, &m2), TD_OK);
    assert_int_equal(td_model_get_tokenizer(m2, NULL, &u), TD_OK);
    same_encoding(t, u);
    remove(path);
    td_tokenizer_free(u);
    td_model_free(m2);
    td_model_free(m);
    td_tokenizer_free(t);
}

static void test_model_tokenizer(void **state)
{
    (void)state;
    model_round_trip(HF_DIR "/bpe");
    model_round_trip(HF_DIR "/wordpiece");
}

/* ---- corpus, framing, decoding -------------------------------------------- */

static void test_corpus(void **state)
{
    (void)state;
    td_tokenizer *t = NULL;
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/bpe", NULL, &t), TD_OK);
    /* Invalid bytes read as U+FFFD, which this vocabulary spells with three
     * tokens: more ids than bytes. */
    char text[300];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)(i % 3 ? 0xFF : 'a');
    size_t n;
    assert_int_equal(td_tokenizer_encode(t, text, sizeof text, NULL, 0, &n), TD_OK);
    assert_true(n > sizeof text);
    int32_t *want = malloc(n * sizeof *want);
    assert_int_equal(td_tokenizer_encode(t, text, sizeof text, want, n, &n), TD_OK);
    td_corpus *c = NULL;
    assert_int_equal(td_corpus_create(text, sizeof text, t, NULL, &c), TD_OK);
    uint64_t nt, nv;
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &nt), TD_OK);
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_VALID, &nv), TD_OK);
    assert_int_equal(nt + nv, n);
    size_t m;
    const int32_t *got = tdi_corpus_tokens((const tdi_corpus *)c, &m);
    assert_int_equal(m, n);
    assert_memory_equal(got, want, n * sizeof *want);
    td_corpus_free(c);
    free(want);

    /* The corpus file, read and encoded like the text in memory. */
    assert_int_equal(td_corpus_load(HF_DIR "/edge.txt", t, NULL, &c), TD_OK);
    size_t len;
    char *edge = edge_text(&len);
    assert_int_equal(td_tokenizer_encode(t, edge, len, NULL, 0, &n), TD_OK);
    got = tdi_corpus_tokens((const tdi_corpus *)c, &m);
    assert_int_equal(m, n);
    free(edge);
    td_corpus_free(c);
    td_tokenizer_free(t);
}

static void test_framed(void **state)
{
    (void)state;
    static const char *dirs[2] = { HF_DIR "/bpe", HF_DIR "/wordpiece" };
    for (int k = 0; k < 2; k++) {
        td_tokenizer *t = NULL;
        assert_int_equal(td_tokenizer_load_hf(dirs[k], NULL, &t), TD_OK);
        int32_t plain[64], framed[66], cls, sep;
        size_t n, nf;
        assert_int_equal(td_tokenizer_encode(t, "In the beginning", 16, plain, 64, &n), TD_OK);
        assert_int_equal(td_tokenizer_encode_framed(t, "In the beginning", 16, NULL, 0, &nf),
                         TD_OK);
        assert_int_equal(nf, n + 2);
        assert_int_equal(td_tokenizer_encode_framed(t, "In the beginning", 16, framed, n + 1,
                                                    &nf),
                         TD_ERR_INVALID_ARG);
        assert_int_equal(td_tokenizer_encode_framed(t, "In the beginning", 16, framed, 66, &nf),
                         TD_OK);
        assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_CLS, &cls), TD_OK);
        assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_SEP, &sep), TD_OK);
        assert_int_equal(framed[0], cls);
        assert_memory_equal(framed + 1, plain, n * sizeof *plain);
        assert_int_equal(framed[n + 1], sep);
        int32_t eos = -1; /* the vocabulary's own end: [SEP] or </s> */
        assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_EOS, &eos), TD_OK);
        assert_int_equal(eos, sep);
        assert_int_equal(td_tokenizer_encode_framed(t, "", 0, framed, 2, &nf), TD_OK);
        assert_int_equal(nf, 2);
        td_tokenizer_free(t);
    }
    td_tokenizer *b = NULL;
    int32_t ids[8], id;
    size_t n;
    assert_int_equal(td_tokenizer_create_byte(NULL, &b), TD_OK);
    assert_int_equal(td_tokenizer_encode_framed(b, "ab", 2, ids, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_special_id(b, TD_TOKEN_CLS, &id), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_special_id(b, TD_TOKEN_SEP, &id), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_special_id(b, TD_TOKEN_EOS, &id), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_special_id(b, (td_special_token)6, &id), TD_ERR_INVALID_ARG);
    td_tokenizer_free(b);
}

static void test_decode(void **state)
{
    (void)state;
    td_tokenizer *t = NULL;
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/wordpiece", NULL, &t), TD_OK);
    int32_t ids[16], mask, pad;
    size_t n, len;
    assert_int_equal(td_tokenizer_encode(t, "And God said, Let there be light.", 33, ids, 16, &n),
                     TD_OK);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, &mask), TD_OK);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_PAD, &pad), TD_OK);
    char out[128];
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "and god said, let there be light.");
    ids[1] = mask;
    ids[n] = pad;
    ids[n + 1] = 999999; /* after [PAD]: not even looked at */
    assert_int_equal(td_tokenizer_decode(t, ids, n + 2, "<?>", out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "and <?> said, let there be light.");
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, out, 5, &len), TD_ERR_INVALID_ARG);
    assert_int_equal(len, strlen("and _ said, let there be light."));
    ids[0] = 1500;
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, out, sizeof out, &len),
                     TD_ERR_INVALID_ARG);
    td_tokenizer_free(t);

    /* Byte-level: a token sequence that cuts a character decodes with U+FFFD. */
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/bpe", NULL, &t), TD_OK);
    assert_int_equal(td_tokenizer_encode(t, "\xC3\xA9", 2, ids, 16, &n), TD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(td_tokenizer_decode(t, ids, 1, NULL, out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "\xEF\xBF\xBD");
    assert_int_equal(td_tokenizer_decode(t, ids, 2, NULL, out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "\xC3\xA9");
    td_tokenizer_free(t);
}

/* A word of a million letters: WordPiece's one [UNK] (without keeping the
 * word), byte-level BPE (its merges in O(k log k)) with an exact round trip;
 * 100 characters is still a word, 101 is [UNK]. */
static void test_long_words(void **state)
{
    (void)state;
    size_t big = 1000000, n, len;
    char *text = malloc(big + 1);
    memset(text, 'a', big);
    text[big] = '\0';
    td_tokenizer *wp = NULL, *bpe = NULL;
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/wordpiece", NULL, &wp), TD_OK);
    assert_int_equal(td_tokenizer_load_hf(HF_DIR "/bpe", NULL, &bpe), TD_OK);
    int32_t id, unk;
    assert_int_equal(td_tokenizer_special_id(wp, TD_TOKEN_UNK, &unk), TD_OK);
    assert_int_equal(td_tokenizer_encode(wp, text, big, &id, 1, &n), TD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(id, unk);
    int32_t ids[128];
    assert_int_equal(td_tokenizer_encode(wp, text, 100, ids, 128, &n), TD_OK);
    assert_true(n >= 1 && ids[0] != unk);
    assert_int_equal(td_tokenizer_encode(wp, text, 101, ids, 128, &n), TD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], unk);

    assert_int_equal(td_tokenizer_encode(bpe, text, big, NULL, 0, &n), TD_OK);
    assert_true(n >= 1 && n <= big);
    int32_t *many = malloc(n * sizeof *many);
    assert_int_equal(td_tokenizer_encode(bpe, text, big, many, n, &n), TD_OK);
    char *back = malloc(big + 1);
    assert_int_equal(td_tokenizer_decode(bpe, many, n, NULL, back, big + 1, &len), TD_OK);
    assert_int_equal(len, big);
    assert_memory_equal(back, text, big);
    free(back);
    free(many);
    td_tokenizer_free(bpe);
    td_tokenizer_free(wp);
    free(text);
}

/* One tokenizer shared by threads (it is immutable; scratch memory is per
 * call): each thread's ids are the single-threaded ones. */
typedef struct share_ctx {
    const td_tokenizer *t;
    const char *text;
    size_t len, n;
    int32_t *ids;
    td_status st;
} share_ctx;

static void *share_run(void *p)
{
    share_ctx *c = p;
    c->st = td_tokenizer_encode(c->t, c->text, c->len, c->ids, c->n, &c->n);
    return NULL;
}

static void test_shared_across_threads(void **state)
{
    (void)state;
    static const char *dirs[2] = { HF_DIR "/bpe", HF_DIR "/wordpiece" };
    size_t len;
    char *text = edge_text(&len);
    for (int k = 0; k < 2; k++) {
        td_tokenizer *t = NULL;
        assert_int_equal(td_tokenizer_load_hf(dirs[k], NULL, &t), TD_OK);
        size_t n;
        assert_int_equal(td_tokenizer_encode(t, text, len, NULL, 0, &n), TD_OK);
        int32_t *want = malloc(n * sizeof *want);
        assert_int_equal(td_tokenizer_encode(t, text, len, want, n, &n), TD_OK);
        enum { N_THREADS = 4 };
        share_ctx c[N_THREADS];
        pthread_t th[N_THREADS];
        for (int i = 0; i < N_THREADS; i++) {
            c[i] = (share_ctx){ t, text, len, n, malloc(n * sizeof(int32_t)), TD_OK };
            assert_int_equal(pthread_create(&th[i], NULL, share_run, &c[i]), 0);
        }
        for (int i = 0; i < N_THREADS; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(c[i].st, TD_OK);
            assert_int_equal(c[i].n, n);
            assert_memory_equal(c[i].ids, want, n * sizeof *want);
            free(c[i].ids);
        }
        free(want);
        td_tokenizer_free(t);
    }
    free(text);
}

/* ---- bad files ---------------------------------------------------------------- */

static void expect_fail(td_status got, td_status want, const char *needle)
{
    if (got != want || strstr(td_last_error_message(), needle) == NULL)
        fail_msg("%s (%s), want %s with \"%s\"", td_status_string(got), td_last_error_message(),
                 td_status_string(want), needle);
}

static const char *vtxt = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\n##b\n";

static void test_bad_vocab_txt(void **state)
{
    (void)state;
    tdi_hf *h = NULL;
#define TXT(s, st, needle) \
    expect_fail(tdi_hf_parse_vocab_txt(s, strlen(s), NULL, 0, NULL, &h), st, needle)
    assert_int_equal(tdi_hf_parse_vocab_txt(vtxt, strlen(vtxt), NULL, 0, NULL, &h), TD_OK);
    tdi_hf_free(h);
    TXT("[PAD]\n[UNK]\n[MASK]\na\nb\na\n", TD_ERR_FORMAT, "appears twice");
    TXT("[PAD]\n[UNK]\n[MASK]\na\xff\n", TD_ERR_FORMAT, "not valid UTF-8");
    TXT("[PAD]\n[UNK]\n[MASK]\n\xed\xa0\x80\n", TD_ERR_FORMAT, "not valid UTF-8");
    TXT("[PAD]\n[UNK]\na\n", TD_ERR_FORMAT, "[MASK]");
    TXT("[MASK]\n[UNK]\na\n", TD_ERR_FORMAT, "[PAD]");
    TXT("[MASK]\n[PAD]\na\n", TD_ERR_FORMAT, "[UNK]");
    TXT("[MASK]\n[PAD]\n[UNK]\n\na\n", TD_ERR_FORMAT, "empty");
    TXT("", TD_ERR_FORMAT, "tokens");
    char *big = malloc(3000);
    memset(big, 'x', 2999);
    big[2999] = '\0';
    TXT(big, TD_ERR_FORMAT, "longer than");
    free(big);
    const char *cfg = "{\"do_lower_case\": false";
    expect_fail(tdi_hf_parse_vocab_txt(vtxt, strlen(vtxt), cfg, strlen(cfg), NULL, &h),
                TD_ERR_FORMAT, "malformed JSON");
    cfg = "[1]";
    expect_fail(tdi_hf_parse_vocab_txt(vtxt, strlen(vtxt), cfg, strlen(cfg), NULL, &h),
                TD_ERR_FORMAT, "not a JSON object");
    assert_null(h);
#undef TXT
}

static const char *vjson_ok = "{\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"<mask>\":3}";

/* A byte-level vocabulary: the specials, the 256 byte characters, extras. */
static char *byte_vocab(const char *extra)
{
    char *s = malloc(8192);
    size_t n = (size_t)sprintf(s, "{\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"<mask>\":3");
    int id = 4, extra_cp = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra_cp++;
        if (cp == '"' || cp == '\\') n += (size_t)sprintf(s + n, ",\"\\%c\":%d", (char)cp, id++);
        else n += (size_t)sprintf(s + n, ",\"\\u%04x\":%d", cp, id++);
    }
    n += (size_t)sprintf(s + n, "%s}", extra);
    return s;
}

static void test_bad_vocab_json(void **state)
{
    (void)state;
    tdi_hf *h = NULL;
    char *v = byte_vocab(",\"ab\":260,\"abc\":261");
    const char *merges = "#version: 0.2\na b\nab c\n";
#define JS(vv, mm, st, needle) \
    expect_fail(tdi_hf_parse_vocab_json(vv, strlen(vv), mm, strlen(mm), NULL, &h), st, needle)
    assert_int_equal(tdi_hf_parse_vocab_json(v, strlen(v), merges, strlen(merges), NULL, &h),
                     TD_OK);
    tdi_hf_free(h);
    h = NULL;
    JS(v, "a b\nab zz\n", TD_ERR_FORMAT, "line 2 names \"zz\"");
    JS(v, "a b\nab\n", TD_ERR_FORMAT, "line 2 is not two tokens");
    JS(v, "a b c\n", TD_ERR_FORMAT, "line 1 is not two tokens");
    JS(v, "b c\n", TD_ERR_FORMAT, "merged token is not in the vocabulary");
    JS(vjson_ok, "", TD_ERR_FORMAT, "no token for byte 0x00");
    JS("{\"<pad>\":0,", "", TD_ERR_FORMAT, "malformed JSON");
    JS("[0, 1]", "", TD_ERR_FORMAT, "not an object");
    JS("{\"<pad>\":0,\"<mask>\":2}", "", TD_ERR_FORMAT, "out of range");
    JS("{\"<pad>\":0,\"<mask>\":0}", "", TD_ERR_FORMAT, "share id 0");
    JS("{\"<pad>\":0,\"<mask>\":\"1\"}", "", TD_ERR_FORMAT, "not a number");
    JS("{\"<pad>\":0,\"<mask>\":1e12}", "", TD_ERR_FORMAT, "out of range");
    JS("{\"<pad>\":0,\"<mask>\":0.5}", "", TD_ERR_FORMAT, "out of range");
    JS("{\"<pad>\":0,\"<mask>\":1,\"a\xff\":2}", "", TD_ERR_FORMAT, "UTF-8");
    JS("{\"<pad>\":0,\"<pad>\":1}", "", TD_ERR_FORMAT, "twice");
    char *nomask = byte_vocab("");
    memcpy(strstr(nomask, "<mask>"), "<mosk>", 6);
    JS(nomask, "", TD_ERR_FORMAT, "<mask>");
    assert_null(h);
    free(nomask);
    free(v);
#undef JS
}

static td_status parse_tj(const char *json, tdi_hf **h)
{
    return tdi_hf_parse_tokenizer_json(json, strlen(json), NULL, h);
}

static void test_bad_tokenizer_json(void **state)
{
    (void)state;
    tdi_hf *h = NULL;
    const char *wp_tail = "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
                          "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},"
                          "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\","
                          "\"continuing_subword_prefix\":\"##\",\"vocab\":{\"[PAD]\":0,"
                          "\"[UNK]\":1,\"[MASK]\":2,\"a\":3}}}";
    char buf[2048];
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"BertNormalizer\"},%s", wp_tail);
    assert_int_equal(parse_tj(buf, &h), TD_OK);
    assert_int_equal(tdi_hf_flags(h), TDI_HF_LOWERCASE | TDI_HF_STRIP_ACCENTS |
                                          TDI_HF_CLEAN_TEXT | TDI_HF_CHINESE_CHARS |
                                          TDI_HF_CLEANUP);
    tdi_hf_free(h);
    h = NULL;
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"NFKC\"},%s", wp_tail);
    expect_fail(parse_tj(buf, &h), TD_ERR_UNSUPPORTED, "normalizer NFKC");
    snprintf(buf, sizeof buf, "{\"added_tokens\":[{\"id\":4,\"content\":\"new\"}],%s", wp_tail);
    expect_fail(parse_tj(buf, &h), TD_ERR_UNSUPPORTED, "added token \"new\"");
    snprintf(buf, sizeof buf, "{\"added_tokens\":[{\"id\":2,\"content\":\"[MASK]\"}],%s",
             wp_tail);
    assert_int_equal(parse_tj(buf, &h), TD_OK);
    tdi_hf_free(h);
    h = NULL;
    expect_fail(parse_tj("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", &h),
                TD_ERR_UNSUPPORTED, "model Unigram");
    expect_fail(parse_tj("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},"
                         "\"pre_tokenizer\":{\"type\":\"Metaspace\"},"
                         "\"decoder\":{\"type\":\"ByteLevel\"}}", &h),
                TD_ERR_UNSUPPORTED, "pre_tokenizer Metaspace");
    expect_fail(parse_tj("{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},"
                         "\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                         "\"decoder\":{\"type\":\"ByteLevel\"}}", &h),
                TD_ERR_UNSUPPORTED, "byte_fallback");
    expect_fail(parse_tj("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<pad>\":0,\"<mask>\":1},"
                         "\"merges\":[\"<pad> <mask>\"]},"
                         "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                         "\"decoder\":{\"type\":\"ByteLevel\"}}", &h),
                TD_ERR_FORMAT, "no token for byte");
    char *bv = byte_vocab("");
    char *big = malloc(strlen(bv) + 256);
    sprintf(big, "{\"model\":{\"type\":\"BPE\",\"vocab\":%s,\"merges\":[[\"a\", \"zz\"]]},"
                 "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
            bv);
    expect_fail(parse_tj(big, &h), TD_ERR_FORMAT, "names \"zz\"");
    sprintf(big, "{\"model\":{\"type\":\"BPE\",\"vocab\":%s,\"merges\":[7]},"
                 "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
            bv);
    expect_fail(parse_tj(big, &h), TD_ERR_FORMAT, "merge 0 is neither");
    free(big);
    free(bv);
    expect_fail(parse_tj("{\"model\": ", &h), TD_ERR_FORMAT, "malformed JSON");
    expect_fail(parse_tj("[]", &h), TD_ERR_FORMAT, "no \"model\"");
    expect_fail(parse_tj("", &h), TD_ERR_FORMAT, "malformed JSON");
    assert_null(h);
    expect_fail(td_tokenizer_load_hf("/nonexistent-dir", NULL, &(td_tokenizer *){ NULL }),
                TD_ERR_IO, "has no tokenizer.json");
}

/* The directory loader's choice: tokenizer.json, else vocab.json +
 * merges.txt, else vocab.txt (+ tokenizer_config.json). */
static void test_directory_choice(void **state)
{
    (void)state;
    char dir[] = "/tmp/td_hf_dir_XXXXXX", path[256], cmd[512];
    assert_non_null(mkdtemp(dir));
    td_tokenizer *t = NULL;
    expect_fail(td_tokenizer_load_hf(dir, NULL, &t), TD_ERR_IO, "has no tokenizer.json");

    /* vocab.txt alone: uncased by default; a config can make it cased. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", HF_DIR "/wordpiece/vocab.txt", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_WORDPIECE);
    size_t len;
    char *text = edge_text(&len);
    expect_ids(t, text, len, HF_DIR "/wordpiece-edge.ids");
    td_tokenizer_free(t);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"do_lower_case\": false, \"model_max_length\": 512}", f);
    fclose(f);
    assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
    expect_ids(t, text, len, HF_DIR "/wordpiece-cased-edge.ids");
    td_tokenizer_free(t);

    /* vocab.json + merges.txt win over vocab.txt; merges.txt is required. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", HF_DIR "/bpe/vocab.json", dir);
    assert_int_equal(system(cmd), 0);
    expect_fail(td_tokenizer_load_hf(dir, NULL, &t), TD_ERR_IO, "merges.txt");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", HF_DIR "/bpe/merges.txt", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(td_tokenizer_load_hf(dir, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_BPE);
    expect_ids(t, text, len, HF_DIR "/bpe-edge.ids");
    td_tokenizer_free(t);

    /* tokenizer.json wins over both, and a bad one is not skipped. */
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"model\": {\"type\": \"Unigram\"}}", f);
    fclose(f);
    expect_fail(td_tokenizer_load_hf(dir, NULL, &t), TD_ERR_UNSUPPORTED, "Unigram");
    assert_null(t);
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- allocation failures ---------------------------------------------------- */

typedef struct load_ctx {
    const char *dir;
    td_allocator a;
    const char *corpus;
    size_t corpus_len;
} load_ctx;

static td_status load_use(void *p)
{
    load_ctx *c = p;
    td_tokenizer *t = NULL, *u = NULL;
    td_status st = td_tokenizer_load_hf(c->dir, &c->a, &t);
    int32_t ids[256];
    size_t n = 0, len;
    char out[512];
    static const char text[] = "In the be\xffginning  God's  Caf\xc3\xa9 \xe4\xb8\xad!";
    if (st == TD_OK) st = td_tokenizer_encode(t, text, sizeof text - 1, ids, 256, &n);
    /* A text long enough for byte-level BPE's cache of pieces. */
    size_t n_corpus;
    if (st == TD_OK) st = td_tokenizer_encode(t, c->corpus, c->corpus_len, NULL, 0, &n_corpus);
    if (st == TD_OK) st = td_tokenizer_decode(t, ids, n, NULL, out, sizeof out, &len);
    unsigned char desc[300000];
    size_t size = 0;
    if (st == TD_OK) st = tdi_tokenizer_serialize(t, desc, sizeof desc, &size);
    if (st == TD_OK) st = tdi_tokenizer_deserialize(desc, size, &c->a, &u);
    td_corpus *corpus = NULL;
    if (st == TD_OK) st = td_corpus_create(text, sizeof text - 1, u, &c->a, &corpus);
    td_corpus_free(corpus);
    td_tokenizer_free(u);
    td_tokenizer_free(t);
    return st;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    static const char *dirs[2] = { HF_DIR "/bpe", HF_DIR "/wordpiece" };
    for (int k = 0; k < 2; k++) {
        test_heap heap;
        size_t len;
        char *corpus = slurp(TD_SOURCE_DIR "/data/kjv.txt.gz", 40000, &len);
        load_ctx c = { dirs[k], test_heap_allocator(&heap), corpus, len };
        long failures = test_heap_fail_each(&heap, dirs[k], load_use, NULL, &c);
        assert_true(failures > 10);
        assert_int_equal(heap.live, 0);
        free(corpus);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_tokenizer_json),
        cmocka_unit_test(test_bpe_vocab_json),
        cmocka_unit_test(test_bpe_prefix_space),
        cmocka_unit_test(test_wordpiece_tokenizer_json),
        cmocka_unit_test(test_wordpiece_vocab_txt),
        cmocka_unit_test(test_wordpiece_cased),
        cmocka_unit_test(test_random_strings),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_model_tokenizer),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_framed),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_long_words),
        cmocka_unit_test(test_shared_across_threads),
        cmocka_unit_test(test_bad_vocab_txt),
        cmocka_unit_test(test_bad_vocab_json),
        cmocka_unit_test(test_bad_tokenizer_json),
        cmocka_unit_test(test_directory_choice),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
