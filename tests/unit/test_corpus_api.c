/* The public corpus handle over the bundled King James Bible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "textdiff/textdiff.h"

#define KJV TD_SOURCE_DIR "/data/kjv.txt.gz"

static void test_kjv_batches_and_windows(void **state)
{
    (void)state;
    td_tokenizer *tok;
    td_corpus *c;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    assert_int_equal(td_corpus_load(KJV, tok, NULL, &c), TD_OK);
    td_tokenizer_free(tok); /* the corpus does not need it any more */
    uint64_t ntrain, nvalid;
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &ntrain), TD_OK);
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_VALID, &nvalid), TD_OK);
    assert_int_equal(ntrain + nvalid, 4137847);
    assert_true(nvalid > 0.045 * (ntrain + nvalid) && nvalid < 0.055 * (ntrain + nvalid));

    enum { B = 4, T = 64 };
    int32_t a[B * T], b[B * T];
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 9, 3, B, T, a), TD_OK);
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 9, 3, B, T, b), TD_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 9, 4, B, T, b), TD_OK);
    assert_memory_not_equal(a, b, sizeof a);
    for (int i = 0; i < B * T; i++) assert_true(a[i] >= 0 && a[i] < 256);

    uint64_t nw;
    assert_int_equal(td_corpus_num_windows(c, TD_SPLIT_VALID, 128, &nw), TD_OK);
    assert_int_equal(nw, nvalid / 128);
    int32_t w[128];
    assert_int_equal(td_corpus_window(c, TD_SPLIT_VALID, 128, nw - 1, w), TD_OK);
    assert_int_equal(td_corpus_window(c, TD_SPLIT_VALID, 128, nw, w), TD_ERR_INVALID_ARG);

    assert_int_equal(td_corpus_batch(c, (td_split)5, 1, 0, B, T, a), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "split"));
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 1, 0, 0, T, a), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 1, 0, B, 0, a), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_batch(c, TD_SPLIT_TRAIN, 1, 0, B, T, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_num_tokens(NULL, TD_SPLIT_TRAIN, &nw), TD_ERR_INVALID_ARG);
    td_corpus_free(c);
    td_corpus_free(NULL);
}

static void test_load_errors(void **state)
{
    (void)state;
    td_tokenizer *tok;
    td_corpus *c = (td_corpus *)&c;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    assert_int_equal(td_corpus_load("/nonexistent/kjv.txt", tok, NULL, &c), TD_ERR_IO);
    assert_null(c);
    assert_non_null(strstr(td_last_error_message(), "/nonexistent/kjv.txt"));
    assert_int_equal(td_corpus_load(NULL, tok, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_load(KJV, NULL, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_create("abc", 3, tok, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_create("abc", 3, tok, NULL, &c), TD_OK);
    uint64_t n;
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &n), TD_OK);
    assert_int_equal(n, 3);
    td_corpus_free(c);
    td_tokenizer_free(tok);
}

/* Documents with an end of text: each document (up to and including its
 * separator) encoded, then [EOS]; a last document without a separator too. */
static void test_documents_end_with_eos(void **state)
{
    (void)state;
    td_tokenizer *tok, *plain;
    td_corpus *c = (td_corpus *)&c;
    assert_int_equal(td_tokenizer_create_byte_eos(NULL, &tok), TD_OK);
    assert_int_equal(td_tokenizer_create_byte(NULL, &plain), TD_OK);
    static const struct { const char *text, *sep; int32_t want[16]; int n; } cases[] = {
        { "ab\ncd\nef", "\n", { 'a', 'b', '\n', 258, 'c', 'd', '\n', 258, 'e', 'f', 258 }, 11 },
        { "p1\n\np2\n\n", "\n\n", { 'p', '1', '\n', '\n', 258, 'p', '2', '\n', '\n', 258 }, 10 },
        { "x\ny\n", "\n\n", { 'x', '\n', 'y', '\n', 258 }, 5 },
        { "\n\n", "\n", { '\n', 258, '\n', 258 }, 4 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(td_corpus_create_docs(cases[k].text, strlen(cases[k].text), cases[k].sep,
                                               tok, NULL, &c), TD_OK);
        uint64_t n;
        assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &n), TD_OK);
        assert_int_equal(n, cases[k].n);
        int32_t got[16];
        assert_int_equal(td_corpus_window(c, TD_SPLIT_TRAIN, cases[k].n, 0, got), TD_OK);
        assert_memory_equal(got, cases[k].want, (size_t)cases[k].n * sizeof *got);
        td_corpus_free(c);
    }
    /* the bundled corpus, one document per verse line: one [EOS] per line */
    assert_int_equal(td_corpus_load_docs(KJV, "\n", tok, NULL, &c), TD_OK);
    uint64_t ntrain, nvalid;
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &ntrain), TD_OK);
    assert_int_equal(td_corpus_num_tokens(c, TD_SPLIT_VALID, &nvalid), TD_OK);
    assert_int_equal(ntrain + nvalid, 4137847 + 31102);
    int32_t w[256];
    assert_int_equal(td_corpus_window(c, TD_SPLIT_TRAIN, 256, 0, w), TD_OK);
    int first = -1;
    for (int i = 0; i < 256 && first < 0; i++)
        if (w[i] == 258) first = i;
    assert_true(first > 0);
    assert_int_equal(w[first - 1], '\n');
    assert_int_equal(w[first - 2], '.'); /* "... the heaven and the earth." */
    td_corpus_free(c);
    /* refused: no end token, empty or missing separator */
    c = (td_corpus *)&c;
    assert_int_equal(td_corpus_create_docs("ab", 2, "\n", plain, NULL, &c), TD_ERR_INVALID_ARG);
    assert_null(c);
    assert_non_null(strstr(td_last_error_message(), "[EOS]"));
    assert_int_equal(td_corpus_create_docs("ab", 2, "", tok, NULL, &c), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "separator"));
    assert_int_equal(td_corpus_create_docs("ab", 2, NULL, tok, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_load_docs(KJV, NULL, tok, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_corpus_load_docs("/nonexistent", "\n", tok, NULL, &c), TD_ERR_IO);
    td_tokenizer_free(plain);
    td_tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kjv_batches_and_windows),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_documents_end_with_eos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
