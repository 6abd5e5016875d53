/* The CBLAS the build selected is the one loaded, and it multiplies right. */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "util/rng.h"

static void test_loaded_blas_is_the_selected_one(void **state)
{
    (void)state;
    Dl_info info;
    void *sym;
    void (*fn)(void) = (void (*)(void))cblas_sgemm;
    memcpy(&sym, &fn, sizeof sym); /* POSIX: function and object pointers agree */
    assert_true(dladdr(sym, &info) != 0);
    assert_non_null(info.dli_fname);
    if (strcmp(TD_BLAS_NAME, "openblas") == 0)
        assert_non_null(strstr(info.dli_fname, "openblas"));
    else
        assert_null(strstr(info.dli_fname, "openblas"));
}

static void test_sgemm_matches_naive_product(void **state)
{
    (void)state;
    enum { M = 37, N = 29, K = 53 };
    static float a[M * K], b[K * N], c[M * N];
    tdi_rng r;
    tdi_rng_seed(&r, 1);
    for (int i = 0; i < M * K; i++) a[i] = tdi_rng_f32(&r) - 0.5f;
    for (int i = 0; i < K * N; i++) b[i] = tdi_rng_f32(&r) - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f,
                c, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            assert_true(c[i * N + j] - s < 1e-5 && s - c[i * N + j] < 1e-5);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_blas_is_the_selected_one),
        cmocka_unit_test(test_sgemm_matches_naive_product),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
