/* OpenBLAS's thread count, held at one while the library computes
 * (blas_threads.h). The OpenBLAS functions are weak references, so this
 * file links against any CBLAS and only acts when OpenBLAS is loaded. */
#include "util/blas_threads.h"

#include <pthread.h>
#include <stddef.h>

#if defined(__GNUC__)
int openblas_get_num_threads(void) __attribute__((weak));
void openblas_set_num_threads(int n) __attribute__((weak));
#  define get_threads openblas_get_num_threads
#  define set_threads openblas_set_num_threads
#else /* no weak references: leave the BLAS alone */
static int (*const get_threads)(void) = NULL;
static void (*const set_threads)(int) = NULL;
#endif

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static long holders;       /* under hold_lock */
static int saved_threads;  /* the application's count, under hold_lock */

int tdi_blas_threads_controlled(void)
{
    return get_threads != NULL && set_threads != NULL;
}

void tdi_blas_hold(void)
{
    if (!tdi_blas_threads_controlled()) return;
    pthread_mutex_lock(&hold_lock);
    if (holders++ == 0) {
        saved_threads = get_threads();
        if (saved_threads != 1) set_threads(1);
    }
    pthread_mutex_unlock(&hold_lock);
}

void tdi_blas_release(void)
{
    if (!tdi_blas_threads_controlled()) return;
    pthread_mutex_lock(&hold_lock);
    if (holders > 0 && --holders == 0 && saved_threads != 1)
        set_threads(saved_threads);
    pthread_mutex_unlock(&hold_lock);
}
