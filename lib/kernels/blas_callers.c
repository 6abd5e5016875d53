/* How many of the library's threads may call the BLAS at once (kernels.h).
 *
 * The library never changes the BLAS's own settings (they belong to the
 * process); it only reads them, before each product, and arranges never to
 * run two thread pools inside each other:
 *  - an OpenBLAS built without threads (Debian 12's serial variant) is not
 *    reentrant: two concurrent calls can share its packing buffers and give
 *    wrong results, so it is called from one thread at a time;
 *  - an OpenBLAS with threads of its own (the default variant, unless
 *    OPENBLAS_NUM_THREADS=1 or the host set 1) threads each call itself; the
 *    library then calls it from one thread, so that its pool and OpenBLAS's
 *    never run inside each other;
 *  - an OpenBLAS at one thread, or any other CBLAS (taken to be reentrant),
 *    is called from all the library's threads, one product block each.
 * The OpenBLAS functions are weak references: the file links against any
 * CBLAS and asks only when OpenBLAS is loaded. */
#include "kernels/kernels.h"

#include <limits.h>
#include <stddef.h>

#if defined(__GNUC__)
int openblas_get_parallel(void) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
#  define get_parallel openblas_get_parallel
#  define get_threads openblas_get_num_threads
#else /* no weak references: assume a reentrant, single-threaded BLAS */
static int (*const get_parallel)(void) = NULL;
static int (*const get_threads)(void) = NULL;
#endif

int tdi_blas_callers(void)
{
    if (get_parallel == NULL || get_threads == NULL) return INT_MAX;
    if (get_parallel() == 0) return 1; /* sequential: not reentrant */
    return get_threads() > 1 ? 1 : INT_MAX;
}
