/* The library's own threads: a small pool per computing handle.
 *
 * A trainer or a sampler owns one pool of its n_threads; the computing calls
 * that have no handle (td_model_logits, td_eval_*) make one for the call and
 * free it before they return. Like its handle, a pool is used by one thread
 * at a time, and that thread takes part in every loop as thread 0, so a pool
 * of n threads starts at most n − 1 workers. Loops do not nest: a loop's
 * items never start another loop on the same pool.
 *
 * Being a good guest in the host process (docs/api.md, "Threads"):
 *  - workers start at the first loop that needs them, spin for a few tens of
 *    microseconds after each loop (the next one usually follows at once),
 *    then sleep on a condition variable: an idle handle costs no CPU;
 *  - tdi_pool_free joins them, so no library thread outlives the handles
 *    (dlclose() is safe once every handle is freed);
 *  - in a child of fork() the parent's workers do not exist: the pool notices
 *    that the process id changed, forgets them, re-initialises its locks
 *    (another thread may have held them at the fork) and starts new ones;
 *  - workers block every signal, so the host's handlers run on its threads;
 *  - a worker that cannot be started means fewer threads, never an error.
 *
 * Results never depend on how many threads run: tdi_pool_for gives each
 * thread a contiguous range of the items by a fixed rule, and the loops it
 * runs compute every item the same way whichever thread takes it (a thread
 * index may pick scratch, never change a result). */
#ifndef TDI_POOL_H
#define TDI_POOL_H

#include <limits.h>

#include "textdiff/textdiff.h"

typedef struct tdi_pool tdi_pool;

/* Items [begin, end) of a loop, run by thread `tid` (0 = the caller). */
typedef void (*tdi_pool_fn)(void *ctx, long begin, long end, int tid);

/* A pool of n_threads (>= 1) threads, the caller's included; no thread is
 * started yet. The pool's memory comes from `alloc` (NULL: the C library). */
td_status tdi_pool_create(const td_allocator *alloc, int n_threads, tdi_pool **out);

/* Joins the workers and frees the pool. NULL is fine. */
void tdi_pool_free(tdi_pool *pool);

/* The n_threads it was created with; 1 for NULL. */
int tdi_pool_size(const tdi_pool *pool);

/* Workers running now (for tests): 0 before the first loop and after free. */
int tdi_pool_workers(const tdi_pool *pool);

/* fn over items [0, n) on up to min(max_threads, pool size) threads, and
 * returns when all are done. Thread t of nt gets the t-th of nt contiguous
 * ranges whose sizes differ by at most one, the larger ones first. A NULL
 * pool runs fn(ctx, 0, n, 0) on the caller. */
void tdi_pool_run(tdi_pool *pool, long n, int max_threads, tdi_pool_fn fn, void *ctx);

static inline void tdi_pool_for(tdi_pool *pool, long n, tdi_pool_fn fn, void *ctx)
{
    tdi_pool_run(pool, n, INT_MAX, fn, ctx);
}

#endif
