/* Thread pools for the tests that call internal kernels and passes with a
 * thread count: test_pool(nt) is a pool of nt threads (1..8), made on first
 * use and freed at exit, so that no test leaks one. */
#ifndef TD_TEST_POOL_H
#define TD_TEST_POOL_H

#include <stdlib.h>

#include "util/pool.h"

static tdi_pool *test_pools_[9];

static void test_pools_free_(void)
{
    for (int i = 0; i < 9; i++) {
        tdi_pool_free(test_pools_[i]);
        test_pools_[i] = NULL;
    }
}

static inline tdi_pool *test_pool(int nt)
{
    if (nt < 1 || nt > 8) abort();
    if (test_pools_[nt] == NULL) {
        int first = 1;
        for (int i = 0; i < 9; i++) first &= test_pools_[i] == NULL;
        if (tdi_pool_create(NULL, nt, &test_pools_[nt]) != TD_OK) abort();
        if (first) atexit(test_pools_free_);
    }
    return test_pools_[nt];
}

#endif
