/* The CBLAS the build selected is the one loaded, and it multiplies right. */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "util/rng.h"
#include "common/test_pool.h"


static void test_loaded_blas_is_the_selected_one(void **state)
{
    (void)state;
    Dl_info info;
    void *sym;
    void (*fn)(void) = (void (*)(void))cblas_sgemm;
    memcpy(&sym, &fn, sizeof sym); /* POSIX: function and object pointers agree */
    assert_true(dladdr(sym, &info) != 0);
    assert_non_null(info.dli_fname);
    if (strcmp(TD_BLAS_NAME, "openblas") == 0) {
        assert_non_null(strstr(info.dli_fname, "openblas"));
    } else if (strcmp(TD_BLAS_NAME, "blis") == 0) {
        assert_non_null(strstr(info.dli_fname, "blis"));
    } else {
        assert_null(strstr(info.dli_fname, "openblas"));
        assert_null(strstr(info.dli_fname, "blis"));
    }
}

int openblas_get_parallel(void) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
void openblas_set_num_threads(int n) __attribute__((weak));

/* Who calls the BLAS (lib/kernels/blas_callers.c): every library thread
 * when OpenBLAS runs each call on its caller, one when it threads calls
 * itself or is sequential, every thread for another CBLAS. The library
 * only reads the setting; this test sets it, as a host may. */
static void test_blas_callers_follow_the_setting(void **state)
{
    (void)state;
    if (!openblas_get_parallel || !openblas_set_num_threads || !openblas_get_num_threads) {
        assert_int_equal(tdi_blas_callers(), INT_MAX);
        return;
    }
    if (openblas_get_parallel() == 0) { /* Debian's serial variant: not reentrant */
        assert_int_equal(tdi_blas_callers(), 1);
        return;
    }
    int old = openblas_get_num_threads();
    openblas_set_num_threads(1);
    assert_int_equal(tdi_blas_callers(), INT_MAX);
    openblas_set_num_threads(2);
    assert_int_equal(tdi_blas_callers(), 1);
    openblas_set_num_threads(old);
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

/* tdi_sgemm against a double product, for every transpose pair, shapes that
 * split by rows, by columns and not at all, with leading dimensions wider
 * than the matrices and beta != 0; and the same bits at 1, 2 and 3 threads. */
static void check_sgemm(int ta, int tb, int m, int n, int k)
{
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 7;
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb;
    size_t nc = (size_t)m * ldc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    float *c0 = malloc(nc * sizeof *c0), *c[3];
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c0);
    tdi_rng r;
    tdi_rng_seed(&r, (uint64_t)(m * 7 + n * 3 + k + ta * 2 + tb));
    for (size_t i = 0; i < na; i++) a[i] = tdi_rng_f32(&r) - 0.5f;
    for (size_t i = 0; i < nb; i++) b[i] = tdi_rng_f32(&r) - 0.5f;
    for (size_t i = 0; i < nc; i++) c0[i] = tdi_rng_f32(&r) - 0.5f;
    const float alpha = 0.75f, beta = 0.5f;
    for (int t = 0; t < 3; t++) {
        c[t] = malloc(nc * sizeof *c[t]);
        assert_non_null(c[t]);
        memcpy(c[t], c0, nc * sizeof *c0);
        tdi_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c[t], ldc, test_pool(t + 1));
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += x * y;
            }
            double want = alpha * s + beta * (double)c0[(size_t)i * ldc + j];
            double got = c[0][(size_t)i * ldc + j];
            assert_true(fabs(got - want) <= 1e-5 * (1.0 + sqrt((double)k)));
        }
    for (int t = 1; t < 3; t++) assert_memory_equal(c[0], c[t], nc * sizeof *c0);
    for (int t = 0; t < 3; t++) free(c[t]);
    free(a);
    free(b);
    free(c0);
}

static void sgemm_shapes(void)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_sgemm(ta, tb, 1000, 96, 40);  /* split by rows, ragged last block */
            check_sgemm(ta, tb, 70, 1300, 33);  /* split by columns */
            check_sgemm(ta, tb, 9, 11, 13);     /* too small to split */
        }
}

/* Both ways of running the blocks: on the library's threads (OpenBLAS at
 * one thread, or another CBLAS) and, with a threaded OpenBLAS, one after
 * another on the caller, each threaded by OpenBLAS. */
static void test_sgemm_blocks(void **state)
{
    (void)state;
    sgemm_shapes();
    if (!openblas_get_parallel || !openblas_set_num_threads || !openblas_get_num_threads ||
        openblas_get_parallel() == 0)
        return;
    int old = openblas_get_num_threads();
    openblas_set_num_threads(old > 1 ? 1 : 2);
    sgemm_shapes();
    openblas_set_num_threads(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_blas_is_the_selected_one),
        cmocka_unit_test(test_sgemm_matches_naive_product),
        cmocka_unit_test(test_blas_callers_follow_the_setting),
        cmocka_unit_test(test_sgemm_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
