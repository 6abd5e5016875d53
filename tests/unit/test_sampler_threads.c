/* Several samplers on several threads share one model, which they only
 * read: each thread's output equals the same sampler's output run alone.
 * Built with -fsanitize=thread this is also the data-race check. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { N_THREADS = 4, ROUNDS = 8, B = 2, T = 24, V = 40, MASK = 38, PAD = 39 };

typedef struct job {
    const td_model *model;
    const td_schedule *schedule;
    int index;
    td_status status;
    int32_t canvas[ROUNDS][B * T];
} job;

static void fill(int32_t *canvas, int index)
{
    for (int i = 0; i < B * T; i++) canvas[i] = MASK;
    canvas[0] = index;        /* a different prompt per job */
    canvas[T + 1] = 2 * index;
    for (int i = T - 4; i < T; i++) canvas[i] = PAD;
}

/* Job i: strategy i % 4, its own seed, and blocks for odd i. No cmocka
 * assertion runs here: failures are reported to the main thread. */
static void *run_job(void *arg)
{
    job *j = arg;
    td_sampler_config c;
    td_sampler *s = NULL;
    j->status = td_sampler_config_default(&c);
    c.strategy = j->index % 4;
    c.steps = 16;
    c.seed = 100 + (uint64_t)j->index;
    c.block_len = j->index % 2 ? 8 : 0;
    c.top_p = 0.9f;
    c.pad_id = PAD;
    c.max_batch = B;
    c.max_seq_len = T;
    if (j->status == TD_OK) j->status = td_sampler_create(j->model, j->schedule, &c, &s);
    for (int r = 0; r < ROUNDS && j->status == TD_OK; r++) {
        fill(j->canvas[r], j->index);
        j->status = td_sampler_generate(s, j->canvas[r], B, T, NULL, NULL, NULL);
    }
    td_sampler_free(s);
    return NULL;
}

static void test_threads_match_sequential_runs(void **state)
{
    (void)state;
    td_model *m = toy_model_sized(V, MASK, T, 32, 2, 4, 64, 5, NULL);
    td_schedule_config sc;
    td_schedule *sch;
    assert_int_equal(td_schedule_config_default(&sc, TD_SCHEDULE_COSINE), TD_OK);
    assert_int_equal(td_schedule_create(&sc, NULL, &sch), TD_OK);

    static job alone[N_THREADS], together[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        alone[i].model = together[i].model = m;
        alone[i].schedule = together[i].schedule = sch;
        alone[i].index = together[i].index = i;
        run_job(&alone[i]);
        assert_int_equal(alone[i].status, TD_OK);
    }
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &together[i]), 0);
    for (int i = 0; i < N_THREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(together[i].status, TD_OK);
        assert_memory_equal(alone[i].canvas, together[i].canvas, sizeof alone[i].canvas);
        for (int r = 0; r < ROUNDS; r++)
            for (int k = 0; k < B * T; k++) assert_int_not_equal(together[i].canvas[r][k], MASK);
    }
    /* the jobs differ from each other, so the comparison above means something */
    assert_memory_not_equal(alone[0].canvas, alone[1].canvas, sizeof alone[0].canvas);
    td_schedule_free(sch);
    td_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_match_sequential_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
