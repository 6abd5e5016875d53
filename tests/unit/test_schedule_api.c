/* The public schedule handle: configuration, validation, evaluation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "textdiff/textdiff.h"

static void test_each_kind_matches_its_formula(void **state)
{
    (void)state;
    const double pi = 3.14159265358979323846;
    for (int kind = TD_SCHEDULE_LINEAR; kind <= TD_SCHEDULE_FIXED_RATE; kind++) {
        td_schedule_config c;
        assert_int_equal(td_schedule_config_default(&c, (td_schedule_kind)kind), TD_OK);
        assert_int_equal(c.struct_size, sizeof c);
        td_schedule *s;
        assert_int_equal(td_schedule_create(&c, NULL, &s), TD_OK);
        for (double t = 0.05; t < 1.0; t += 0.1) {
            double a, da, w, expect;
            assert_int_equal(td_schedule_alpha(s, t, &a), TD_OK);
            assert_int_equal(td_schedule_alpha_deriv(s, t, &da), TD_OK);
            assert_int_equal(td_schedule_weight(s, t, &w), TD_OK);
            switch (kind) {
            case TD_SCHEDULE_LOGLINEAR: expect = 1 - (1 - 1e-3) * t; break;
            case TD_SCHEDULE_COSINE: expect = cos(pi * t / 2); break;
            case TD_SCHEDULE_POLYNOMIAL: expect = 1 - t * t; break;
            default: expect = 1 - t; break;
            }
            assert_true(fabs(a - expect) < 1e-12);
            assert_true(fabs(w - (-da / (1 - a))) < 1e-9 * w);
        }
        double a0;
        assert_int_equal(td_schedule_alpha(s, 0.0, &a0), TD_OK);
        assert_true(a0 == 1.0);
        td_schedule_free(s);
    }
    td_schedule_free(NULL);
}

static void test_fixed_rate_is_mlm(void **state)
{
    (void)state;
    td_schedule_config c;
    assert_int_equal(td_schedule_config_default(&c, TD_SCHEDULE_FIXED_RATE), TD_OK);
    assert_true(c.rate == 0.15);
    c.rate = 0.3;
    c.bert_corruption = 1;
    td_schedule *s;
    assert_int_equal(td_schedule_create(&c, NULL, &s), TD_OK);
    double w;
    assert_int_equal(td_schedule_weight(s, 0.3, &w), TD_OK);
    assert_true(fabs(w - 1 / 0.3) < 1e-12);
    td_schedule_config back = { .struct_size = sizeof back };
    assert_int_equal(td_schedule_get_config(s, &back), TD_OK);
    assert_int_equal(back.kind, TD_SCHEDULE_FIXED_RATE);
    assert_true(back.rate == 0.3);
    assert_int_equal(back.bert_corruption, 1);
    td_schedule_free(s);
}

static void expect_invalid(const td_schedule_config *c, const char *needle)
{
    td_schedule *s = (td_schedule *)&s;
    assert_int_equal(td_schedule_create(c, NULL, &s), TD_ERR_INVALID_ARG);
    assert_null(s);
    assert_non_null(strstr(td_last_error_message(), needle));
}

static void test_bad_configs_are_rejected(void **state)
{
    (void)state;
    td_schedule_config c;
    td_schedule *s;
    assert_int_equal(td_schedule_config_default(NULL, TD_SCHEDULE_LINEAR), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_config_default(&c, (td_schedule_kind)9), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_create(NULL, NULL, &s), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "cfg"));
    td_schedule_config_default(&c, TD_SCHEDULE_LINEAR);
    assert_int_equal(td_schedule_create(&c, NULL, NULL), TD_ERR_INVALID_ARG);

    td_schedule_config_default(&c, TD_SCHEDULE_LOGLINEAR);
    c.eps = 1.5;
    expect_invalid(&c, "eps");
    td_schedule_config_default(&c, TD_SCHEDULE_POLYNOMIAL);
    c.power = -1;
    expect_invalid(&c, "k");
    c.power = NAN;
    expect_invalid(&c, "k");
    td_schedule_config_default(&c, TD_SCHEDULE_FIXED_RATE);
    c.rate = 1.0;
    expect_invalid(&c, "r");
    td_schedule_config_default(&c, TD_SCHEDULE_COSINE);
    c.t_min = 0.7;
    expect_invalid(&c, "t_min");
    td_schedule_config_default(&c, TD_SCHEDULE_COSINE);
    c.bert_corruption = 1;
    expect_invalid(&c, "bert");
    td_schedule_config_default(&c, TD_SCHEDULE_LINEAR);
    c.kind = 17;
    expect_invalid(&c, "kind");

    /* Versioned struct: too small is a caller bug, too large a newer header. */
    td_schedule_config_default(&c, TD_SCHEDULE_LINEAR);
    c.struct_size = 2;
    expect_invalid(&c, "struct_size");
    td_schedule_config_default(&c, TD_SCHEDULE_LINEAR);
    c.reserved0 = 1;
    expect_invalid(&c, "reserved0");
}

static void test_bad_evaluation_arguments(void **state)
{
    (void)state;
    td_schedule_config c;
    td_schedule *s;
    double v = 42;
    td_schedule_config_default(&c, TD_SCHEDULE_COSINE);
    assert_int_equal(td_schedule_create(&c, NULL, &s), TD_OK);
    assert_int_equal(td_schedule_alpha(s, -0.1, &v), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_alpha(s, 1.1, &v), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_weight(s, NAN, &v), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "t ="));
    assert_int_equal(td_schedule_alpha_deriv(s, 0.5, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_alpha(NULL, 0.5, &v), TD_ERR_INVALID_ARG);
    assert_int_equal(td_schedule_get_config(s, NULL), TD_ERR_INVALID_ARG);
    assert_true(v == 42);
    td_schedule_free(s);
}

static void test_allocation_failure_leaks_nothing(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_schedule_config c;
    td_schedule_config_default(&c, TD_SCHEDULE_LOGLINEAR);
    td_schedule *s;
    h.fail_at = 0;
    assert_int_equal(td_schedule_create(&c, &a, &s), TD_ERR_NOMEM);
    assert_null(s);
    assert_int_equal(h.live, 0);
    h.fail_at = -1;
    assert_int_equal(td_schedule_create(&c, &a, &s), TD_OK);
    assert_int_equal(h.live, 1);
    td_schedule_free(s);
    assert_int_equal(h.live, 0);
    a.free_fn = NULL;
    assert_int_equal(td_schedule_create(&c, &a, &s), TD_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_kind_matches_its_formula),
        cmocka_unit_test(test_fixed_rate_is_mlm),
        cmocka_unit_test(test_bad_configs_are_rejected),
        cmocka_unit_test(test_bad_evaluation_arguments),
        cmocka_unit_test(test_allocation_failure_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
