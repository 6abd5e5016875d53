/* Noise schedules: α, α′ and w against independent double-precision
 * formulas and finite differences, stratified times, parameter checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "diffusion/schedule.h"
#include "util/rng.h"

#define PI 3.14159265358979323846

/* Every kind, and the non-default parameters worth covering. */
static tdi_schedule make(tdi_schedule_kind kind, double param)
{
    tdi_schedule s;
    memset(&s, 0, sizeof s); /* padding too: the tests memcmp whole structs */
    assert_int_equal(tdi_schedule_init(&s, kind), TD_OK);
    if (kind == TDI_SCHEDULE_LOGLINEAR) assert_int_equal(tdi_schedule_set_eps(&s, param), TD_OK);
    if (kind == TDI_SCHEDULE_POLYNOMIAL)
        assert_int_equal(tdi_schedule_set_power(&s, param), TD_OK);
    if (kind == TDI_SCHEDULE_FIXED_RATE)
        assert_int_equal(tdi_schedule_set_rate(&s, param), TD_OK);
    return s;
}

enum { N_CASES = 9 };
static tdi_schedule all_cases(int i)
{
    switch (i) {
    case 0: return make(TDI_SCHEDULE_LINEAR, 0);
    case 1: return make(TDI_SCHEDULE_LOGLINEAR, 1e-3);
    case 2: return make(TDI_SCHEDULE_LOGLINEAR, 0.2);
    case 3: return make(TDI_SCHEDULE_COSINE, 0);
    case 4: return make(TDI_SCHEDULE_POLYNOMIAL, 0.5);
    case 5: return make(TDI_SCHEDULE_POLYNOMIAL, 1.0);
    case 6: return make(TDI_SCHEDULE_POLYNOMIAL, 3.0);
    case 7: return make(TDI_SCHEDULE_FIXED_RATE, 0.15);
    default: return make(TDI_SCHEDULE_FIXED_RATE, 0.6);
    }
}

/* The formulas of DESIGN §2, written out independently of the library. */
static double ref_alpha(const tdi_schedule *s, double t)
{
    switch (s->kind) {
    case TDI_SCHEDULE_LINEAR:
    case TDI_SCHEDULE_FIXED_RATE: return 1.0 - t;
    case TDI_SCHEDULE_LOGLINEAR:  return 1.0 - (1.0 - s->eps) * t;
    case TDI_SCHEDULE_COSINE:     return cos(PI * t / 2.0);
    case TDI_SCHEDULE_POLYNOMIAL: return 1.0 - pow(t, s->power);
    }
    fail();
    return 0;
}

static void assert_close(double got, double want, double rel, double abs_tol)
{
    double err = fabs(got - want);
    if (!(err <= abs_tol + rel * fabs(want)))
        fail_msg("got %.17g, want %.17g (error %.3g)", got, want, err);
}

static void test_defaults(void **state)
{
    (void)state;
    for (int k = 0; k <= 4; k++) {
        tdi_schedule s;
        assert_int_equal(tdi_schedule_init(&s, (tdi_schedule_kind)k), TD_OK);
        assert_int_equal((int)s.kind, k);
        assert_true(s.eps == 1e-3 && s.power == 2.0 && s.rate == 0.15 && s.t_min == 1e-3);
        assert_int_equal(s.bert_corrupt, 0);
        assert_int_equal(tdi_schedule_validate(&s), TD_OK);
        assert_string_not_equal(tdi_schedule_kind_name(s.kind), "unknown");
    }
    assert_string_equal(tdi_schedule_kind_name((tdi_schedule_kind)99), "unknown");
}

/* α(0) = 1 exactly (α is not clamped to t_min); α(1) is 0 to rounding,
 * except log-linear where it is ε by definition. */
static void test_alpha_endpoints(void **state)
{
    (void)state;
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        assert_true(tdi_schedule_alpha(&s, 0.0) == 1.0);
        assert_true(tdi_schedule_mask_prob(&s, 0.0) == 0.0);
        double a1 = tdi_schedule_alpha(&s, 1.0);
        if (s.kind == TDI_SCHEDULE_LOGLINEAR)
            assert_close(a1, s.eps, 0, 1e-15);
        else
            assert_close(a1, 0.0, 0, 1e-15);
        assert_close(tdi_schedule_mask_prob(&s, 1.0), 1.0 - a1, 0, 1e-15);
        /* Outside [0, 1] the argument is clamped; NaN stays NaN. */
        assert_true(tdi_schedule_alpha(&s, -0.5) == 1.0);
        assert_true(tdi_schedule_alpha(&s, 1.5) == a1);
        assert_true(isnan(tdi_schedule_alpha(&s, NAN)));
        assert_true(isnan(tdi_schedule_mask_prob(&s, NAN)));
    }
}

static void test_alpha_matches_formula_and_decreases(void **state)
{
    (void)state;
    enum { G = 20000 };
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        double prev = tdi_schedule_alpha(&s, 0.0);
        for (int j = 1; j <= G; j++) {
            double t = (double)j / G;
            double a = tdi_schedule_alpha(&s, t);
            assert_close(a, ref_alpha(&s, t), 0, 1e-15);
            assert_close(tdi_schedule_mask_prob(&s, t), 1.0 - ref_alpha(&s, t), 0, 5e-16);
            if (!(a < prev)) fail_msg("%s: alpha(%g) = %.17g does not decrease",
                                      tdi_schedule_kind_name(s.kind), t, a);
            prev = a;
        }
    }
}

/* 1 − α for tiny t keeps its relative precision (no 1 − cos cancellation). */
static void test_mask_prob_small_t(void **state)
{
    (void)state;
    tdi_schedule s = make(TDI_SCHEDULE_COSINE, 0);
    for (double t = 1e-9; t < 1e-2; t *= 10) {
        double x = PI * t / 2;
        double series = x * x / 2 - x * x * x * x / 24; /* 1 − cos x */
        assert_close(tdi_schedule_mask_prob(&s, t), series, 1e-12, 0);
    }
    tdi_schedule p = make(TDI_SCHEDULE_POLYNOMIAL, 3.0);
    assert_close(tdi_schedule_mask_prob(&p, 1e-6), 1e-18, 1e-14, 0);
}

static void test_alpha_deriv_finite_differences(void **state)
{
    (void)state;
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        for (double t = 0.005; t <= 0.995; t += 0.01) {
            double h = 1e-4 * t;
            double fd = (ref_alpha(&s, t + h) - ref_alpha(&s, t - h)) / (2 * h);
            assert_close(tdi_schedule_alpha_deriv(&s, t), fd, 1e-7, 1e-9);
        }
        /* One-sided at the ends, where the central difference leaves [0, 1]. */
        double h = 1e-7;
        assert_close(tdi_schedule_alpha_deriv(&s, 1.0),
                     (ref_alpha(&s, 1.0) - ref_alpha(&s, 1.0 - h)) / h, 1e-5, 1e-6);
    }
    /* At t = 0: finite except for a polynomial power below 1. */
    tdi_schedule half = all_cases(4), one = all_cases(5), cube = all_cases(6);
    assert_true(isinf(tdi_schedule_alpha_deriv(&half, 0.0)));
    assert_true(tdi_schedule_alpha_deriv(&half, 0.0) < 0);
    assert_true(tdi_schedule_alpha_deriv(&one, 0.0) == -1.0);
    assert_true(tdi_schedule_alpha_deriv(&cube, 0.0) == 0.0);
    tdi_schedule cosine = all_cases(3), lin = all_cases(0);
    assert_true(tdi_schedule_alpha_deriv(&cosine, 0.0) == 0.0);
    assert_true(tdi_schedule_alpha_deriv(&lin, 0.0) == -1.0);
}

/* 1 − α of the reference, without cancellation (1 − cos x = 2 sin²(x/2)),
 * so that its finite differences stay accurate for small t. */
static double ref_mask(const tdi_schedule *s, double t)
{
    if (s->kind == TDI_SCHEDULE_COSINE) return 2.0 * pow(sin(PI * t / 4.0), 2.0);
    if (s->kind == TDI_SCHEDULE_POLYNOMIAL) return pow(t, s->power);
    return 1.0 - ref_alpha(s, t);
}

/* w(t) = −α′/(1 − α), with α′ a central difference of the reference. */
static void test_weight_matches_numerical_ratio(void **state)
{
    (void)state;
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        for (double t = s.t_min; t <= 1.0 - 1e-3; t += 0.0071) {
            double h = 1e-4 * t;
            double fd = (ref_mask(&s, t + h) - ref_mask(&s, t - h)) / (2 * h); /* = −α′ */
            assert_close(tdi_schedule_weight(&s, t), fd / ref_mask(&s, t), 1e-7, 0);
        }
    }
}

static void test_weight_clamps_near_zero(void **state)
{
    (void)state;
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        double at_min = tdi_schedule_weight(&s, s.t_min);
        assert_true(isfinite(at_min) && at_min > 0);
        assert_true(tdi_schedule_weight(&s, 0.0) == at_min);
        assert_true(tdi_schedule_weight(&s, 0.5 * s.t_min) == at_min);
        assert_true(tdi_schedule_weight(&s, -1.0) == at_min);
        assert_true(tdi_schedule_weight(&s, 2.0) == tdi_schedule_weight(&s, 1.0));
        assert_true(tdi_schedule_weight(&s, 2.0 * s.t_min) < at_min);
    }
    tdi_schedule s = make(TDI_SCHEDULE_LINEAR, 0);
    assert_int_equal(tdi_schedule_set_t_min(&s, 0.01), TD_OK);
    assert_true(tdi_schedule_weight(&s, 0.0) == 100.0);
    assert_true(tdi_schedule_weight(&s, 1.0) == 1.0);
}

/* Fixed-rate is the linear schedule at t = r: masks with probability r,
 * weighs by 1/r — also for a rate below t_min. */
static void test_fixed_rate_weight(void **state)
{
    (void)state;
    const double rates[] = { 0.15, 0.5, 0.999, 1e-4 };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        tdi_schedule s = make(TDI_SCHEDULE_FIXED_RATE, rates[i]);
        double r = rates[i];
        assert_close(tdi_schedule_mask_prob(&s, r), r, 1e-15, 0);
        assert_close(tdi_schedule_weight(&s, r), 1.0 / r, 1e-15, 0);
        /* Expected number masked times weight = 1 per position. */
        assert_close(tdi_schedule_mask_prob(&s, r) * tdi_schedule_weight(&s, r), 1.0, 1e-15, 0);
    }
}

static void test_reveal_prob(void **state)
{
    (void)state;
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        assert_true(tdi_schedule_reveal_prob(&s, 0.0, 0.0) == 1.0);
        for (double t = 0.02; t <= 1.0; t += 0.02) {
            assert_true(tdi_schedule_reveal_prob(&s, t, 0.0) == 1.0);
            assert_true(tdi_schedule_reveal_prob(&s, t, t) == 0.0);
            for (double u = 0.25; u < 1.0; u += 0.25) {
                double sv = u * t;
                double want = (ref_alpha(&s, sv) - ref_alpha(&s, t)) / (1.0 - ref_alpha(&s, t));
                double got = tdi_schedule_reveal_prob(&s, t, sv);
                assert_close(got, want, 1e-9, 1e-12);
                assert_true(got > 0.0 && got < 1.0);
            }
        }
    }
}

static void test_stratified_one_per_bin(void **state)
{
    (void)state;
    static double u[1000];
    static int hits[1000];
    const size_t sizes[] = { 1, 2, 3, 7, 64, 1000 };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (uint64_t seed = 0; seed < 200; seed++) {
            tdi_rng r, replay;
            tdi_rng_seed(&r, seed);
            replay = r;
            assert_int_equal(tdi_stratified_uniforms(&r, n, u), TD_OK);
            /* One draw consumed: the generator advanced by exactly one. */
            double u0 = tdi_rng_f64(&replay);
            assert_true(memcmp(&r, &replay, sizeof r) == 0);
            memset(hits, 0, n * sizeof hits[0]);
            for (size_t i = 0; i < n; i++) {
                assert_true(u[i] >= 0.0 && u[i] < 1.0);
                size_t bin = (size_t)floor(u[i] * (double)n);
                if (bin >= n) bin = n - 1;
                /* Bin membership by the boundaries themselves, not by rounding. */
                while (bin > 0 && u[i] < (double)bin / (double)n) bin--;
                while (bin + 1 < n && u[i] >= (double)(bin + 1) / (double)n) bin++;
                hits[bin]++;
                /* The points are (u0 + i/n) mod 1. */
                double want = fmod(u0 + (double)i / (double)n, 1.0);
                double d = fabs(u[i] - want);
                assert_true(d < 1e-12 || fabs(d - 1.0) < 1e-12);
            }
            for (size_t b = 0; b < n; b++) assert_int_equal(hits[b], 1);
        }
    }
}

static void test_draw_times(void **state)
{
    (void)state;
    enum { B = 16, DRAWS = 4000 };
    double t[B], u[B];
    for (int c = 0; c < N_CASES; c++) {
        tdi_schedule s = all_cases(c);
        if (c == 1) assert_int_equal(tdi_schedule_set_t_min(&s, 0.05), TD_OK);
        tdi_rng r, replay;
        tdi_rng_seed(&r, 42);
        double mean = 0;
        for (int d = 0; d < DRAWS; d++) {
            replay = r;
            assert_int_equal(tdi_schedule_draw_times(&s, &r, B, t), TD_OK);
            if (s.kind == TDI_SCHEDULE_FIXED_RATE) {
                for (int i = 0; i < B; i++) assert_true(t[i] == s.rate);
                assert_true(memcmp(&r, &replay, sizeof r) == 0); /* rng untouched */
                continue;
            }
            assert_int_equal(tdi_stratified_uniforms(&replay, B, u), TD_OK);
            for (int i = 0; i < B; i++) {
                assert_true(t[i] >= s.t_min && t[i] <= 1.0);
                assert_close(t[i], s.t_min + (1.0 - s.t_min) * u[i], 1e-15, 0);
                mean += t[i];
            }
        }
        if (s.kind != TDI_SCHEDULE_FIXED_RATE) {
            /* Uniform on [t_min, 1]: the offset u0 is uniform, so is each t_i. */
            mean /= (double)B * DRAWS;
            /* A stratified batch's mean varies only through the offset within
             * a stratum: sd (1 − t_min) / (B·sqrt(12)), not sqrt(B) times more. */
            double sd = (1.0 - s.t_min) / ((double)B * sqrt(12.0 * DRAWS));
            assert_close(mean, 0.5 * (1.0 + s.t_min), 0, 4.0 * sd);
        }
    }
    tdi_schedule fixed = make(TDI_SCHEDULE_FIXED_RATE, 0.3);
    assert_int_equal(tdi_schedule_draw_times(&fixed, NULL, B, t), TD_OK);
    assert_true(t[0] == 0.3 && t[B - 1] == 0.3);
}

static void expect_invalid(td_status st, const char *needle)
{
    assert_int_equal(st, TD_ERR_INVALID_ARG);
    if (!strstr(td_last_error_message(), needle))
        fail_msg("message \"%s\" lacks \"%s\"", td_last_error_message(), needle);
}

static void test_invalid_parameters(void **state)
{
    (void)state;
    const double bad_unit[] = { 0.0, 1.0, -0.1, 1.5, NAN, INFINITY };
    tdi_schedule s, before;

    s = make(TDI_SCHEDULE_LOGLINEAR, 0.01);
    before = s;
    for (size_t i = 0; i < 6; i++) expect_invalid(tdi_schedule_set_eps(&s, bad_unit[i]), "eps");
    assert_true(memcmp(&s, &before, sizeof s) == 0);

    s = make(TDI_SCHEDULE_FIXED_RATE, 0.2);
    before = s;
    for (size_t i = 0; i < 6; i++)
        expect_invalid(tdi_schedule_set_rate(&s, bad_unit[i]), "rate r");
    expect_invalid(tdi_schedule_set_bert_corrupt(&s, 2), "0 or 1");
    assert_true(memcmp(&s, &before, sizeof s) == 0);
    assert_int_equal(tdi_schedule_set_bert_corrupt(&s, 1), TD_OK);
    assert_int_equal(s.bert_corrupt, 1);

    s = make(TDI_SCHEDULE_POLYNOMIAL, 2.0);
    before = s;
    const double bad_k[] = { 0.0, -1.0, NAN, INFINITY, -INFINITY };
    for (size_t i = 0; i < 5; i++) expect_invalid(tdi_schedule_set_power(&s, bad_k[i]), "power k");
    assert_true(memcmp(&s, &before, sizeof s) == 0);

    s = make(TDI_SCHEDULE_COSINE, 0);
    before = s;
    const double bad_tmin[] = { 0.0, 0.5, -1e-3, 0.7, NAN };
    for (size_t i = 0; i < 5; i++) expect_invalid(tdi_schedule_set_t_min(&s, bad_tmin[i]), "t_min");
    assert_true(memcmp(&s, &before, sizeof s) == 0);

    /* A parameter the kind does not have. */
    expect_invalid(tdi_schedule_set_eps(&s, 0.01), "applies only to a loglinear schedule");
    expect_invalid(tdi_schedule_set_power(&s, 2.0), "polynomial");
    expect_invalid(tdi_schedule_set_rate(&s, 0.15), "fixed-rate");
    expect_invalid(tdi_schedule_set_bert_corrupt(&s, 1), "BERT");
    assert_true(memcmp(&s, &before, sizeof s) == 0);

    expect_invalid(tdi_schedule_init(&s, (tdi_schedule_kind)7), "unknown schedule kind");
    expect_invalid(tdi_schedule_init(NULL, TDI_SCHEDULE_LINEAR), "s is NULL");

    /* validate() catches fields written directly (e.g. from a file). */
    s = make(TDI_SCHEDULE_LOGLINEAR, 0.01);
    s.eps = 1.0;
    expect_invalid(tdi_schedule_validate(&s), "eps");
    s = make(TDI_SCHEDULE_POLYNOMIAL, 2.0);
    s.power = NAN;
    expect_invalid(tdi_schedule_validate(&s), "power");
    s = make(TDI_SCHEDULE_FIXED_RATE, 0.15);
    s.rate = 0.0;
    expect_invalid(tdi_schedule_validate(&s), "rate");
    s = make(TDI_SCHEDULE_LINEAR, 0);
    s.t_min = 0.0;
    expect_invalid(tdi_schedule_validate(&s), "t_min");
    s = make(TDI_SCHEDULE_LINEAR, 0);
    s.bert_corrupt = 1;
    expect_invalid(tdi_schedule_validate(&s), "needs a fixed-rate schedule");
    s = make(TDI_SCHEDULE_LINEAR, 0);
    s.kind = (tdi_schedule_kind)-1;
    expect_invalid(tdi_schedule_validate(&s), "unknown schedule kind");

    double t[4];
    tdi_rng r;
    tdi_rng_seed(&r, 1);
    s = make(TDI_SCHEDULE_LINEAR, 0);
    expect_invalid(tdi_schedule_draw_times(&s, &r, 0, t), "n must be > 0");
    expect_invalid(tdi_schedule_draw_times(&s, NULL, 4, t), "rng is NULL");
    expect_invalid(tdi_schedule_draw_times(&s, &r, 4, NULL), "t is NULL");
    expect_invalid(tdi_stratified_uniforms(&r, 0, t), "n must be > 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_alpha_endpoints),
        cmocka_unit_test(test_alpha_matches_formula_and_decreases),
        cmocka_unit_test(test_mask_prob_small_t),
        cmocka_unit_test(test_alpha_deriv_finite_differences),
        cmocka_unit_test(test_weight_matches_numerical_ratio),
        cmocka_unit_test(test_weight_clamps_near_zero),
        cmocka_unit_test(test_fixed_rate_weight),
        cmocka_unit_test(test_reveal_prob),
        cmocka_unit_test(test_stratified_one_per_bin),
        cmocka_unit_test(test_draw_times),
        cmocka_unit_test(test_invalid_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
