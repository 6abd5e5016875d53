/* The public model handle: configuration, validation, logits, allocation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "textdiff/textdiff.h"

static td_model_config small_config(void)
{
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.vocab_size = 13;
    c.mask_id = 11;
    c.max_seq_len = 9;
    c.d_model = 12;
    c.n_layers = 2;
    c.n_heads = 3;
    c.d_ff = 20;
    return c;
}

static void test_defaults_and_parameter_count(void **state)
{
    (void)state;
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    assert_int_equal(c.struct_size, sizeof c);
    assert_int_equal(c.vocab_size, 258);
    assert_int_equal(c.mask_id, 256);
    assert_int_equal(c.d_model, 256);
    assert_int_equal(c.d_ff, 1024);
    assert_int_equal(c.pos_encoding, TD_POS_ROPE);
    assert_int_equal(c.norm_placement, TD_NORM_PRE);
    assert_int_equal(c.tie_embeddings, 1);
    for (int tied = 0; tied <= 1; tied++)
        for (int pos = 0; pos <= 1; pos++) {
            c = small_config();
            c.tie_embeddings = tied;
            c.pos_encoding = pos;
            td_model *m;
            assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
            uint64_t n = 0, V = 13, d = 12, f = 20, T = 9;
            uint64_t layer = 4 * d + 3 * d * d + 3 * d + d * d + d + f * d + f + d * f + d;
            uint64_t expect = V * d + 2 * layer + 2 * d + V + (tied ? 0 : V * d) + (pos ? T * d : 0);
            assert_int_equal(td_model_num_params(m, &n), TD_OK);
            assert_int_equal(n, expect);
            td_model_config back = { .struct_size = sizeof back };
            assert_int_equal(td_model_get_config(m, &back), TD_OK);
            assert_memory_equal(&back, &c, sizeof c);
            td_model_free(m);
        }
    td_model_free(NULL);
}

static void expect_invalid(const td_model_config *c, const char *needle)
{
    td_model *m = (td_model *)&m;
    assert_int_equal(td_model_create(c, 1, NULL, &m), TD_ERR_INVALID_ARG);
    assert_null(m);
    if (strstr(td_last_error_message(), needle) == NULL)
        fail_msg("message '%s' does not name %s", td_last_error_message(), needle);
}

static void test_bad_configs_name_the_field(void **state)
{
    (void)state;
    td_model_config c;
    c = small_config(); c.vocab_size = 1;          expect_invalid(&c, "vocab_size");
    c = small_config(); c.vocab_size = 1 << 21;    expect_invalid(&c, "vocab_size");
    c = small_config(); c.mask_id = 13;            expect_invalid(&c, "mask_id");
    c = small_config(); c.mask_id = -1;            expect_invalid(&c, "mask_id");
    c = small_config(); c.max_seq_len = 0;         expect_invalid(&c, "max_seq_len");
    c = small_config(); c.d_model = 0;             expect_invalid(&c, "d_model");
    c = small_config(); c.n_layers = 0;            expect_invalid(&c, "n_layers");
    c = small_config(); c.n_heads = 5;             expect_invalid(&c, "n_heads");
    c = small_config(); c.n_heads = 0;             expect_invalid(&c, "n_heads");
    c = small_config(); c.n_heads = 4;             expect_invalid(&c, "even"); /* hd = 3 */
    c = small_config(); c.d_ff = 0;                expect_invalid(&c, "d_ff");
    c = small_config(); c.pos_encoding = 2;        expect_invalid(&c, "pos_encoding");
    c = small_config(); c.norm_placement = -1;     expect_invalid(&c, "norm_placement");
    c = small_config(); c.tie_embeddings = 2;      expect_invalid(&c, "tie_embeddings");
    c = small_config(); c.d_model = 16384; c.n_layers = 1024; c.n_heads = 1;
    expect_invalid(&c, "parameters");
    c = small_config(); c.struct_size = 0;         expect_invalid(&c, "struct_size");
    c = small_config(); c.struct_size += 4;        expect_invalid(&c, "struct_size");
    c = small_config(); c.reserved0 = 1;           expect_invalid(&c, "reserved0");
    td_model *m;
    assert_int_equal(td_model_create(NULL, 1, NULL, &m), TD_ERR_INVALID_ARG);
    c = small_config();
    assert_int_equal(td_model_create(&c, 1, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_config_default(NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_get_config(NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_num_params(NULL, NULL), TD_ERR_INVALID_ARG);
}

static void test_logits(void **state)
{
    (void)state;
    td_model_config c = small_config();
    td_model *m, *m2, *m3;
    assert_int_equal(td_model_create(&c, 5, NULL, &m), TD_OK);
    assert_int_equal(td_model_create(&c, 5, NULL, &m2), TD_OK);
    assert_int_equal(td_model_create(&c, 6, NULL, &m3), TD_OK);
    enum { B = 3, T = 7, V = 13 };
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 5) % V;
    float *l = malloc(sizeof(float) * B * T * V), *l1 = malloc(sizeof(float) * T * V),
          *l2 = malloc(sizeof(float) * B * T * V);
    assert_int_equal(td_model_logits(m, ids, B, T, 2, l), TD_OK);
    for (int r = 0; r < B * T; r++)
        for (int v = 0; v < V; v++) {
            float x = l[r * V + v];
            if (v == c.mask_id) assert_true(isinf(x) && x < 0);
            else assert_true(isfinite(x));
        }
    /* Each sequence alone gives its rows of the batch: nothing leaks. */
    for (int b = 0; b < B; b++) {
        assert_int_equal(td_model_logits(m, ids + b * T, 1, T, 1, l1), TD_OK);
        for (int k = 0; k < T * V; k++)
            if (k % V != c.mask_id) assert_true(fabsf(l1[k] - l[b * T * V + k]) < 1e-5f);
    }
    /* Same seed, same model; another seed, another model. */
    assert_int_equal(td_model_logits(m2, ids, B, T, 1, l2), TD_OK);
    assert_memory_equal(l, l2, sizeof(float) * B * T * V);
    assert_int_equal(td_model_logits(m3, ids, B, T, 1, l2), TD_OK);
    assert_memory_not_equal(l, l2, sizeof(float) * B * T * V);

    assert_int_equal(td_model_logits(m, ids, B, 10, 1, l), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "seq_len"));
    assert_int_equal(td_model_logits(m, ids, 0, T, 1, l), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_logits(m, ids, B, T, 0, l), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_logits(m, NULL, B, T, 1, l), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_logits(m, ids, B, T, 1, NULL), TD_ERR_INVALID_ARG);
    ids[4] = V;
    assert_int_equal(td_model_logits(m, ids, B, T, 1, l), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "ids[4]"));
    free(l);
    free(l1);
    free(l2);
    td_model_free(m);
    td_model_free(m2);
    td_model_free(m3);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_model_config c = small_config();
    for (long k = 0;; k++) {
        h.fail_at = h.calls + k;
        td_model *m;
        td_status st = td_model_create(&c, 1, &a, &m);
        if (st == TD_OK) {
            int32_t ids[4] = { 1, 2, 3, 4 };
            float l[4 * 13];
            /* logits allocates scratch: fail each of its allocations too */
            for (long j = 0;; j++) {
                h.fail_at = h.calls + j;
                long live = h.live;
                td_status s2 = td_model_logits(m, ids, 1, 4, 1, l);
                assert_int_equal(h.live, live);
                if (s2 == TD_OK) break;
                assert_int_equal(s2, TD_ERR_NOMEM);
                assert_true(j < 50);
            }
            td_model_free(m);
            break;
        }
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_null(m);
        assert_int_equal(h.live, 0);
        assert_true(k < 50);
    }
    assert_int_equal(h.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_parameter_count),
        cmocka_unit_test(test_bad_configs_name_the_field),
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
