/* The library's thread pool (pool.h says what it promises).
 *
 * One job at a time: the owner publishes fn, ctx and the item count, bumps
 * a generation counter under the lock and wakes the workers; every worker
 * runs its range (or nothing, when it is beyond the job's thread count)
 * and counts itself out of `pending`; the owner runs range 0 and waits for
 * `pending` to reach 0. Both waits spin briefly and then sleep on a
 * condition variable, re-checking the counter under the lock, so no wake-up
 * is lost: the generation is bumped and `pending`'s last decrement signalled
 * while the lock is held. */
#include "util/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/error.h"

/* How long a thread spins for the next job, or for the others to finish
 * theirs, before it sleeps. The loops of a forward pass follow each other
 * within microseconds, while waking a sleeping thread takes tens of them;
 * a longer gap (between steps, or while the host computes) should cost no
 * CPU, because the host's cores are not all ours. */
#define SPIN_NS 50000

#if defined(__x86_64__) || defined(__i386__)
#  define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#  define cpu_relax() __asm__ __volatile__("yield")
#else
#  define cpu_relax() ((void)0)
#endif

typedef struct worker {
    tdi_pool *pool;
    pthread_t thread;
    int tid;            /* 1.. (0 is the owner) */
    unsigned start_gen; /* the generation before its first job */
} worker;

struct tdi_pool {
    td_allocator alloc;
    int size;           /* threads, the owner's included */
    int n_workers;      /* started and not joined */
    int start_failed;   /* pthread_create failed: do not retry every loop */
    int sync_ok;        /* lock and conditions initialised */
    pid_t pid;          /* the process that started the workers */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new generation, or stop */
    pthread_cond_t idle; /* pending reached 0 */
    atomic_uint gen;
    atomic_int pending; /* workers still in the current job */
    atomic_int stop;
    /* the current job: written before `gen` is bumped, read after */
    tdi_pool_fn fn;
    void *ctx;
    long n;
    int n_active;
    worker workers[];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef int (*ready_fn)(tdi_pool *p, unsigned seen);

static int job_ready(tdi_pool *p, unsigned seen)
{
    return atomic_load_explicit(&p->gen, memory_order_acquire) != seen ||
           atomic_load_explicit(&p->stop, memory_order_acquire);
}

static int job_done(tdi_pool *p, unsigned unused)
{
    (void)unused;
    return atomic_load_explicit(&p->pending, memory_order_acquire) == 0;
}

/* Waits until ready(): spinning for up to SPIN_NS, then asleep on cv. */
static void wait_for(tdi_pool *p, pthread_cond_t *cv, ready_fn ready, unsigned seen)
{
    uint64_t deadline = 0;
    for (unsigned i = 1; !ready(p, seen); i++) {
        cpu_relax();
        if (i % 64 != 0) continue; /* a clock read costs as much as many checks */
        uint64_t t = now_ns();
        if (deadline == 0) {
            deadline = t + SPIN_NS;
        } else if (t >= deadline) {
            pthread_mutex_lock(&p->lock);
            while (!ready(p, seen)) pthread_cond_wait(cv, &p->lock);
            pthread_mutex_unlock(&p->lock);
            return;
        }
    }
}

/* Thread tid's contiguous share of the current job. */
static void run_share(tdi_pool *p, int tid)
{
    if (tid >= p->n_active) return;
    long q = p->n / p->n_active, r = p->n % p->n_active;
    long begin = tid * q + (tid < r ? tid : r);
    long end = begin + q + (tid < r);
    if (begin < end) p->fn(p->ctx, begin, end, tid);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tdi_pool *p = w->pool;
    unsigned seen = w->start_gen;
    for (;;) {
        wait_for(p, &p->wake, job_ready, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_share(p, w->tid);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->idle);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

static int init_sync(tdi_pool *p)
{
    if (pthread_mutex_init(&p->lock, NULL) != 0) return 0;
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return 0;
    }
    if (pthread_cond_init(&p->idle, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        return 0;
    }
    atomic_store_explicit(&p->pending, 0, memory_order_relaxed);
    atomic_store_explicit(&p->stop, 0, memory_order_relaxed);
    return 1;
}

/* In a child of fork(): the workers stayed in the parent, and the lock may
 * have been held by one of them at the fork. Start from scratch (the
 * objects are the child's own copies, never used by another thread). */
static void forget_workers(tdi_pool *p)
{
    p->n_workers = 0;
    /* Should re-initialising fail, the pool runs on the owner alone, which
     * never touches the lock. */
    p->sync_ok = init_sync(p);
    p->start_failed = !p->sync_ok;
}

static void start_workers(tdi_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Workers inherit this mask: the host's signal handlers stay on its
     * own threads. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed);
    while (p->n_workers < p->size - 1) {
        worker *w = &p->workers[p->n_workers];
        w->pool = p;
        w->tid = p->n_workers + 1;
        w->start_gen = g;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->start_failed = 1; /* run with the threads we have */
            break;
        }
        p->n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    p->pid = getpid();
}

/* Threads a job of `want` threads can have now, starting workers lazily. */
static int threads_available(tdi_pool *p, int want)
{
    if (p->n_workers > 0 && p->pid != getpid()) forget_workers(p);
    if (p->n_workers + 1 < want && !p->start_failed) start_workers(p);
    return want < p->n_workers + 1 ? want : p->n_workers + 1;
}

td_status tdi_pool_create(const td_allocator *alloc, int n_threads, tdi_pool **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(n_threads >= 1, "%s: n_threads = %d must be at least 1", __func__, n_threads);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    size_t size = sizeof(tdi_pool) + (size_t)(n_threads - 1) * sizeof(worker);
    tdi_pool *p = tdi_malloc(&a, size);
    if (p == NULL) return tdi_nomem(__func__, size);
    p->alloc = a;
    p->size = n_threads;
    p->n_workers = 0;
    p->start_failed = 0;
    p->pid = 0;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    p->fn = NULL;
    p->ctx = NULL;
    p->n = 0;
    p->n_active = 0;
    p->sync_ok = init_sync(p);
    if (!p->sync_ok) {
        tdi_free(&a, p);
        return tdi_fail(TD_ERR_NOMEM, "%s: could not initialise a mutex or condition variable",
                        __func__);
    }
    *out = p;
    return TD_OK;
}

void tdi_pool_free(tdi_pool *p)
{
    if (p == NULL) return;
    if (p->n_workers > 0 && p->pid != getpid()) forget_workers(p);
    if (p->n_workers > 0) {
        pthread_mutex_lock(&p->lock);
        atomic_store_explicit(&p->stop, 1, memory_order_release);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < p->n_workers; i++) pthread_join(p->workers[i].thread, NULL);
        p->n_workers = 0;
    }
    if (p->sync_ok) {
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
    }
    td_allocator a = p->alloc;
    tdi_free(&a, p);
}

int tdi_pool_size(const tdi_pool *p) { return p ? p->size : 1; }

int tdi_pool_workers(const tdi_pool *p) { return p ? p->n_workers : 0; }

void tdi_pool_run(tdi_pool *p, long n, int max_threads, tdi_pool_fn fn, void *ctx)
{
    if (n <= 0) return;
    int nt = tdi_pool_size(p);
    if (nt > max_threads) nt = max_threads;
    if (nt > n) nt = (int)n;
    if (nt > 1) nt = threads_available(p, nt);
    if (nt <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->n_active = nt;
    atomic_store_explicit(&p->pending, p->n_workers, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_share(p, 0);
    wait_for(p, &p->idle, job_done, 0);
}
