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

#include <cmocka.h>
#include <zlib.h>

#include "common/test_alloc_hooks.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_tokenizer_json),
        cmocka_unit_test(test_bpe_vocab_json),
        cmocka_unit_test(test_bpe_prefix_space),
        cmocka_unit_test(test_wordpiece_tokenizer_json),
        cmocka_unit_test(test_wordpiece_vocab_txt),
        cmocka_unit_test(test_wordpiece_cased),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
