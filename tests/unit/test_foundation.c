/* Version, status codes, error messages, allocation hooks, RNG. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/rng.h"

static void test_version_macros_match_runtime(void **state)
{
    (void)state;
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", TD_VERSION_MAJOR, TD_VERSION_MINOR,
             TD_VERSION_PATCH);
    assert_string_equal(td_version_string(), expect);
    assert_string_equal(TD_VERSION_STRING, expect);
    assert_int_equal(td_version_number(),
                     TD_VERSION_MAJOR * 10000 + TD_VERSION_MINOR * 100 + TD_VERSION_PATCH);
    assert_int_equal(td_abi_version(), TD_ABI_VERSION);
}

static void test_check_version(void **state)
{
    (void)state;
    assert_int_equal(TD_CHECK_VERSION(), TD_OK);
    /* An older header against this library is fine within one ABI. */
    assert_int_equal(td_check_version(TD_ABI_VERSION, 0), TD_OK);
    /* A newer header may use functions this library lacks. */
    assert_int_equal(td_check_version(TD_ABI_VERSION, TD_VERSION_NUMBER + 1), TD_ERR_VERSION);
    assert_non_null(strstr(td_last_error_message(), "newer"));
    /* Another ABI generation is never compatible. */
    assert_int_equal(td_check_version(TD_ABI_VERSION + 1, TD_VERSION_NUMBER), TD_ERR_VERSION);
    assert_non_null(strstr(td_last_error_message(), "ABI"));
}

static void test_status_strings(void **state)
{
    (void)state;
    /* The numeric values are ABI: pin them. */
    assert_int_equal(TD_OK, 0);
    assert_int_equal(TD_ERR_INVALID_ARG, 1);
    assert_int_equal(TD_ERR_NOMEM, 2);
    assert_int_equal(TD_ERR_IO, 3);
    assert_int_equal(TD_ERR_FORMAT, 4);
    assert_int_equal(TD_ERR_CORRUPT, 5);
    assert_int_equal(TD_ERR_VERSION, 6);
    assert_int_equal(TD_ERR_NUMERIC, 7);
    assert_int_equal(TD_ERR_STATE, 8);
    assert_int_equal(TD_ERR_CANCELLED, 9);
    assert_int_equal(TD_ERR_UNSUPPORTED, 10);
    assert_int_equal(TD_ERR_INTERNAL, 11);
    const char *unknown = td_status_string((td_status)12345);
    assert_string_equal(unknown, "unknown status");
    for (int i = 0; i <= TD_ERR_INTERNAL; i++) {
        const char *s = td_status_string((td_status)i);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (int j = 0; j < i; j++) assert_string_not_equal(s, td_status_string((td_status)j));
    }
}

static void *other_thread(void *arg)
{
    (void)arg;
    tdi_fail(TD_ERR_IO, "message from the other thread");
    return NULL;
}

static void test_error_message_is_per_thread_and_sticky(void **state)
{
    (void)state;
    assert_int_equal(tdi_fail(TD_ERR_CORRUPT, "offset %d is bad", 42), TD_ERR_CORRUPT);
    assert_string_equal(td_last_error_message(), "offset 42 is bad");
    /* A successful call leaves the message alone. */
    assert_int_equal(TD_CHECK_VERSION(), TD_OK);
    assert_string_equal(td_last_error_message(), "offset 42 is bad");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(td_last_error_message(), "offset 42 is bad");
    /* Context goes before the callee's message. */
    tdi_fail(TD_ERR_CORRUPT, "inner %d", 7);
    assert_int_equal(tdi_fail_context(TD_ERR_FORMAT, "outer %s", "ctx"), TD_ERR_FORMAT);
    assert_string_equal(td_last_error_message(), "outer ctx: inner 7");
    /* Long messages are truncated, not overflowed. */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tdi_fail(TD_ERR_INVALID_ARG, "%s", big);
    assert_true(strlen(td_last_error_message()) < sizeof big - 1);
}

static void test_allocator_rejects_partial_hooks(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h), out;
    a.realloc_fn = NULL;
    assert_int_equal(tdi_allocator_init(&out, &a), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "realloc_fn"));
    assert_int_equal(tdi_allocator_init(&out, NULL), TD_OK);
    assert_non_null(out.malloc_fn);
}

static void test_allocations_are_aligned_and_grow(void **state)
{
    (void)state;
    test_heap h;
    td_allocator hooks = test_heap_allocator(&h), a;
    assert_int_equal(tdi_allocator_init(&a, &hooks), TD_OK);
    unsigned char *p = tdi_malloc(&a, 100);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % TDI_ALIGN, 0);
    for (int i = 0; i < 100; i++) p[i] = (unsigned char)i;
    /* Each realloc lands at another alignment; the data must follow. */
    for (size_t n = 200; n <= 3200; n *= 2) {
        p = tdi_realloc(&a, p, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % TDI_ALIGN, 0);
        for (int i = 0; i < 100; i++) assert_int_equal(p[i], i);
    }
    p = tdi_realloc(&a, p, 50); /* shrink keeps the prefix */
    for (int i = 0; i < 50; i++) assert_int_equal(p[i], i);
    tdi_free(&a, p);
    tdi_free(&a, NULL);
    assert_int_equal(h.live, 0);

    float *z = tdi_calloc(&a, 1000, sizeof(float));
    assert_non_null(z);
    for (int i = 0; i < 1000; i++) assert_true(z[i] == 0.0f);
    tdi_free(&a, z);
    assert_int_equal(h.live, 0);
}

static void test_allocation_failures_return_null(void **state)
{
    (void)state;
    test_heap h;
    td_allocator hooks = test_heap_allocator(&h), a;
    assert_int_equal(tdi_allocator_init(&a, &hooks), TD_OK);
    h.fail_at = 0;
    assert_null(tdi_malloc(&a, 10));
    assert_null(tdi_malloc(&a, SIZE_MAX));      /* overflow with the alignment pad */
    assert_null(tdi_calloc(&a, SIZE_MAX / 2, 4)); /* count * size overflows */
    void *p = tdi_malloc(&a, 16);
    assert_non_null(p);
    h.fail_at = h.calls;
    assert_null(tdi_realloc(&a, p, 1 << 20)); /* failed realloc keeps the block */
    tdi_free(&a, p);
    assert_int_equal(h.live, 0);
    assert_int_equal(tdi_nomem("f", 7), TD_ERR_NOMEM);
    assert_non_null(strstr(td_last_error_message(), "7 bytes"));
}

static void test_rng_known_vectors(void **state)
{
    (void)state;
    /* Published xoshiro256** outputs from state {1, 2, 3, 4}. */
    tdi_rng r = { { 1, 2, 3, 4 } };
    const uint64_t expect[] = { 11520u, 0u, 1509978240u, 1215971899390074240u,
                                1216172134540287360u, 607988272756665600u };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        assert_true(tdi_rng_u64(&r) == expect[i]);
    /* Seeding uses splitmix64; from 0 its first output is 0xE220A8397B1DCDAF. */
    tdi_rng_seed(&r, 0);
    assert_true(r.s[0] == 0xE220A8397B1DCDAFull);
    assert_true(r.s[1] == 0x6E789E6AA1B965F4ull);
}

static void test_rng_streams_and_distributions(void **state)
{
    (void)state;
    tdi_rng a, b;
    tdi_rng_stream(&a, 7, 0);
    tdi_rng_stream(&b, 7, 1);
    assert_true(tdi_rng_u64(&a) != tdi_rng_u64(&b));
    tdi_rng_stream(&b, 7, 0);
    tdi_rng_stream(&a, 7, 0);
    assert_true(tdi_rng_u64(&a) == tdi_rng_u64(&b));

    enum { N = 200000, K = 10 };
    double sum = 0, sumsq = 0, nsum = 0, nsumsq = 0;
    long counts[K] = { 0 };
    for (int i = 0; i < N; i++) {
        double u = tdi_rng_f64(&a);
        assert_true(u >= 0.0 && u < 1.0);
        float f = tdi_rng_f32(&a);
        assert_true(f >= 0.0f && f < 1.0f);
        sum += u;
        sumsq += u * u;
        uint64_t k = tdi_rng_below(&a, K);
        assert_true(k < K);
        counts[k]++;
        double z = tdi_rng_normal(&a);
        nsum += z;
        nsumsq += z * z;
    }
    double mean = sum / N, var = sumsq / N - mean * mean;
    assert_true(mean > 0.497 && mean < 0.503);     /* sd of the mean ~0.00065 */
    assert_true(var > 1.0 / 12 - 0.002 && var < 1.0 / 12 + 0.002);
    assert_true(nsum / N > -0.01 && nsum / N < 0.01);
    assert_true(nsumsq / N > 0.98 && nsumsq / N < 1.02);
    double chi2 = 0;
    for (int k = 0; k < K; k++) {
        double d = counts[k] - (double)N / K;
        chi2 += d * d / ((double)N / K);
    }
    assert_true(chi2 < 27.9); /* 9 degrees of freedom, p = 0.001 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_macros_match_runtime),
        cmocka_unit_test(test_check_version),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_error_message_is_per_thread_and_sticky),
        cmocka_unit_test(test_allocator_rejects_partial_hooks),
        cmocka_unit_test(test_allocations_are_aligned_and_grow),
        cmocka_unit_test(test_allocation_failures_return_null),
        cmocka_unit_test(test_rng_known_vectors),
        cmocka_unit_test(test_rng_streams_and_distributions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
