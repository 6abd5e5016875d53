/* Public tokenizer queries: vocabulary size and special ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "textdiff/textdiff.h"

static void test_byte_tokenizer_ids(void **state)
{
    (void)state;
    td_tokenizer *t;
    int32_t v = -1, id = -1;
    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    assert_int_equal(td_tokenizer_vocab_size(t, &v), TD_OK);
    assert_int_equal(v, 258);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, &id), TD_OK);
    assert_int_equal(id, 256);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_PAD, &id), TD_OK);
    assert_int_equal(id, 257);
    id = 7;
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_UNK, &id), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "[UNK]"));
    assert_int_equal(id, 7);
    assert_int_equal(td_tokenizer_special_id(t, (td_special_token)9, &id), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_vocab_size(NULL, &v), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_vocab_size(t, NULL), TD_ERR_INVALID_ARG);
    td_tokenizer_free(t);
    td_tokenizer_free(NULL);
}

static void test_capped_char_tokenizer_ids(void **state)
{
    (void)state;
    const char *text = "abracadabra";
    td_tokenizer *t;
    int32_t v, mask, pad, unk;
    assert_int_equal(td_tokenizer_create_char(text, strlen(text), 3, NULL, &t), TD_OK);
    assert_int_equal(td_tokenizer_vocab_size(t, &v), TD_OK);
    assert_int_equal(v, 6); /* a b r, then [MASK] [PAD] [UNK] */
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, &mask), TD_OK);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_PAD, &pad), TD_OK);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_UNK, &unk), TD_OK);
    assert_int_equal(mask, 3);
    assert_int_equal(pad, 4);
    assert_int_equal(unk, 5);
    int32_t ids[4];
    size_t n;
    assert_int_equal(td_tokenizer_encode(t, "arcd", 4, ids, 4, &n), TD_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], unk);
    assert_int_equal(ids[3], unk);
    td_tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_tokenizer_ids),
        cmocka_unit_test(test_capped_char_tokenizer_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
