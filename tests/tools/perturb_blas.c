/* A CBLAS shim for LD_PRELOAD: cblas_sgemm calls the real one, then moves
 * every element of C by a few units in the last place. It stands in for
 * the BLAS libraries and kernels this machine does not have: each rounds
 * its products a little differently, and no test may depend on how.
 *
 *   TD_PERTURB_SEED=3 LD_PRELOAD=build/tests/libtd_perturb_blas.so \
 *       ctest --test-dir build -L unit -E '^(test_blas|bench_smoke|dlopen)$'
 *
 * The change is a function of the element's value and the seed alone, so
 * equal results stay equal (the same product at any thread count, or
 * split into blocks); it is at most TD_PERTURB_ULPS units (default 2) either
 * way. 0, subnormal, infinite and NaN results are left alone. TD_PERTURB_SEED=0
 * turns it off. Not part of the library; test_blas, which checks which
 * library provides cblas_sgemm, cannot pass under it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* RTLD_NEXT */
#endif
#include <cblas.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int,
                         int, float, const float *, int, const float *, int, float, float *, int);

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtoull(v, NULL, 10) : fallback;
}

static void perturb(float *p, uint64_t seed, uint32_t ulps)
{
    uint32_t b;
    memcpy(&b, p, sizeof b);
    const uint32_t exp = b & 0x7f800000u;
    if (exp == 0 || exp == 0x7f800000u) return; /* 0, subnormal, inf, NaN */
    const uint64_t h = mix(b ^ (seed * 0x9e3779b97f4a7c15ULL));
    const int32_t d = (int32_t)(h % (2u * ulps + 1u)) - (int32_t)ulps;
    const uint32_t moved = b + (uint32_t)d;
    if ((moved & 0x7f800000u) == 0x7f800000u || (moved & 0x7f800000u) == 0) return;
    memcpy(p, &moved, sizeof moved);
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const int m, const int n, const int k,
                 const float alpha, const float *a, const int lda, const float *b, const int ldb,
                 const float beta, float *c, const int ldc)
{
    static sgemm_fn real;
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "cblas_sgemm");
        memcpy(&real, &sym, sizeof real);
        if (real == NULL) abort();
    }
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    const uint64_t seed = env_u64("TD_PERTURB_SEED", 1);
    const uint32_t ulps = (uint32_t)env_u64("TD_PERTURB_ULPS", 2);
    if (seed == 0 || ulps == 0) return;
    const int rows = order == CblasRowMajor ? m : n, cols = order == CblasRowMajor ? n : m;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) perturb(c + (size_t)i * (size_t)ldc + (size_t)j, seed, ulps);
}
