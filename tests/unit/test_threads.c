/* The library's own threads (lib/util/pool.h): how a loop is shared out,
 * that workers start lazily and that every one is joined by the time the
 * handle that owns it is freed (or the handle-less call returns), and that
 * a worker which cannot be started means fewer threads, not an error. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "common/toy.h"
#include "textdiff/textdiff.h"
#include "util/pool.h"

#if defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define TD_TEST_SANITIZED 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define TD_TEST_SANITIZED 1
#endif

/* Threads of this process now. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- the pool alone ------------------------------------------------------ */

enum { MAX_ITEMS = 64 };

typedef struct record {
    int owner[MAX_ITEMS]; /* the thread that ran each item */
    long first[8], last[8];
    int calls[8];
} record;

static void note(void *ctx, long begin, long end, int tid)
{
    record *r = ctx;
    r->calls[tid]++;
    r->first[tid] = begin;
    r->last[tid] = end;
    for (long i = begin; i < end; i++) r->owner[i] = tid;
}

/* Each thread runs one call on one contiguous range; the sizes differ by at
 * most one, the larger first, in thread order; no item twice or never. */
static void check_partition(tdi_pool *p, long n, int max_threads, int want_threads)
{
    record r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < MAX_ITEMS; i++) r.owner[i] = -1;
    tdi_pool_run(p, n, max_threads, note, &r);
    long next = 0, q = n / want_threads, rem = n % want_threads;
    for (int t = 0; t < want_threads; t++) {
        assert_int_equal(r.calls[t], 1);
        assert_int_equal(r.first[t], next);
        next += q + (t < rem);
        assert_int_equal(r.last[t], next);
    }
    for (int t = want_threads; t < 8; t++) assert_int_equal(r.calls[t], 0);
    for (long i = 0; i < n; i++) assert_true(r.owner[i] >= 0);
}

/* First in the file: no thread stack is cached yet, so the first worker
 * needs new memory, which the address-space limit refuses. */
static void test_failed_start_means_fewer_threads(void **state)
{
    (void)state;
#if defined(TD_TEST_SANITIZED)
    skip(); /* sanitizer runtimes map memory of their own */
#else
    tdi_pool *p;
    assert_int_equal(tdi_pool_create(NULL, 3, &p), TD_OK);
    struct rlimit old, tight;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    unsigned long vm_kb = 0;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &vm_kb) == 1) break;
    fclose(f);
    assert_true(vm_kb > 0);
    tight = old;
    tight.rlim_cur = (rlim_t)(vm_kb + 1024) * 1024; /* 1 MiB more: no 8 MiB stack */
    assert_int_equal(setrlimit(RLIMIT_AS, &tight), 0);
    record r;
    memset(&r, 0, sizeof r);
    tdi_pool_run(p, 10, 3, note, &r);
    int workers = tdi_pool_workers(p);
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    assert_int_equal(workers, 0);
    assert_int_equal(r.calls[0], 1); /* the caller did everything */
    assert_int_equal(r.first[0], 0);
    assert_int_equal(r.last[0], 10);
    tdi_pool_free(p);
#endif
}

static void test_partition(void **state)
{
    (void)state;
    tdi_pool *p;
    assert_int_equal(tdi_pool_create(NULL, 3, &p), TD_OK);
    assert_int_equal(tdi_pool_size(p), 3);
    assert_int_equal(tdi_pool_workers(p), 0); /* nothing started yet */
    check_partition(p, 10, 8, 3);             /* 4, 3, 3 */
    assert_int_equal(tdi_pool_workers(p), 2);
    check_partition(p, 2, 8, 2);              /* fewer items than threads */
    check_partition(p, 1, 8, 1);
    check_partition(p, 11, 2, 2);             /* capped by max_threads */
    check_partition(p, 12, 1, 1);
    for (int i = 0; i < 200; i++) check_partition(p, 64, 8, 3); /* sleep and spin paths */
    tdi_pool_run(p, 0, 8, note, NULL); /* no items: fn is not called */
    tdi_pool_free(p);

    check_partition(NULL, 7, 8, 1); /* NULL: the caller alone */
    assert_int_equal(tdi_pool_size(NULL), 1);
    assert_int_equal(tdi_pool_workers(NULL), 0);
    tdi_pool_free(NULL);
    assert_int_equal(tdi_pool_create(NULL, 0, &p), TD_ERR_INVALID_ARG);
    assert_null(p);
}

/* Loops that follow each other at once and after a long pause (the workers
 * asleep by then) give the same sums. */
typedef struct sum_job {
    const double *x;
    double part[MAX_ITEMS];
} sum_job;

static void sum_items(void *ctx, long begin, long end, int tid)
{
    sum_job *j = ctx;
    (void)tid;
    for (long i = begin; i < end; i++) j->part[i] = j->x[i] * j->x[i];
}

static void test_idle_workers_wake(void **state)
{
    (void)state;
    double x[MAX_ITEMS];
    for (int i = 0; i < MAX_ITEMS; i++) x[i] = 0.5 + i;
    tdi_pool *p;
    assert_int_equal(tdi_pool_create(NULL, 2, &p), TD_OK);
    for (int round = 0; round < 3; round++) {
        sum_job j = { x, { 0 } };
        tdi_pool_for(p, MAX_ITEMS, sum_items, &j);
        for (int i = 0; i < MAX_ITEMS; i++) assert_true(j.part[i] == x[i] * x[i]);
        struct timespec pause = { 0, 20 * 1000 * 1000 }; /* well past the spin */
        nanosleep(&pause, NULL);
    }
    tdi_pool_free(p);
}

/* ---- no thread outlives its handle or call ------------------------------- */

enum { TB = 4, TT = 48, TV = 40, TMASK = 38 };

static void train_and_sample(td_model *m, int32_t n_threads, int *threads_while_alive)
{
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config tc;
    assert_int_equal(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = TB;
    tc.seq_len = TT;
    tc.n_threads = n_threads;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &tc, &tr), TD_OK);
    int32_t tokens[TB * TT];
    for (int i = 0; i < TB * TT; i++) tokens[i] = (i * 7) % 30;
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_OK);

    td_sampler_config sc;
    assert_int_equal(td_sampler_config_default(&sc), TD_OK);
    sc.steps = 4;
    sc.max_batch = TB;
    sc.max_seq_len = TT;
    sc.n_threads = n_threads;
    td_sampler *sp;
    assert_int_equal(td_sampler_create(m, s, &sc, &sp), TD_OK);
    int32_t canvas[TB * TT];
    for (int i = 0; i < TB * TT; i++) canvas[i] = TMASK;
    assert_int_equal(td_sampler_generate(sp, canvas, TB, TT, NULL, NULL, NULL), TD_OK);
    if (threads_while_alive) *threads_while_alive = count_threads();
    td_sampler_free(sp);
    td_trainer_free(tr);
    td_schedule_free(s);
}

static void test_no_thread_outlives_its_handle(void **state)
{
    (void)state;
    td_model *m = toy_model_sized(TV, TMASK, TT, 64, 2, 2, 128, 3, NULL);
    /* One thread first: whatever the BLAS starts for itself starts now. */
    train_and_sample(m, 1, NULL);
    int base = count_threads();
    int alive = 0;
    train_and_sample(m, 3, &alive);
    assert_int_equal(alive, base + 4);  /* 2 workers each: trainer and sampler */
    assert_int_equal(count_threads(), base);

    /* The handle-less calls keep their threads for the call only. */
    float *logits = malloc(sizeof *logits * TB * TT * TV);
    assert_non_null(logits);
    int32_t ids[TB * TT];
    for (int i = 0; i < TB * TT; i++) ids[i] = i % 30;
    assert_int_equal(td_model_logits(m, ids, TB, TT, 2, logits), TD_OK);
    assert_int_equal(count_threads(), base);
    free(logits);
    td_eval_config ec;
    assert_int_equal(td_eval_config_default(&ec), TD_OK);
    ec.seq_len = TT;
    ec.batch_size = 2;
    ec.n_times = 2;
    ec.n_threads = 2;
    td_eval_result r = { .struct_size = sizeof r };
    int32_t stream[4 * TT];
    for (int i = 0; i < 4 * TT; i++) stream[i] = (i * 5) % 30;
    assert_int_equal(td_eval_nelbo(m, stream, 4 * TT, &ec, &r), TD_OK);
    double rate = 0.5, loss;
    assert_int_equal(td_eval_rates(m, stream, 4 * TT, &rate, 1, &ec, &loss, NULL), TD_OK);
    assert_int_equal(count_threads(), base);
    td_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_start_means_fewer_threads),
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_idle_workers_wake),
        cmocka_unit_test(test_no_thread_outlives_its_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
