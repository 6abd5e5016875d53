/* Trainers on several threads, each with its own model and its own threads:
 * every run equals the same run alone, bit for bit. Built with
 * -fsanitize=thread this is also the data-race check. */
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

enum { N_JOBS = 3, STEPS = 4, B = 4, T = 16, V = 40, MASK = 39 };

typedef struct job {
    const td_schedule *schedule;
    int index;
    td_status status;
    float logits[T * V];
    double loss[STEPS];
} job;

/* Job i trains a model of seed i with n_threads 1 + i % 2, then reports its
 * losses and its logits on a fixed window. No cmocka assertion runs here. */
static void *run_job(void *arg)
{
    job *j = arg;
    td_model_config mc;
    td_model *m = NULL;
    td_trainer *tr = NULL;
    td_model_config_default(&mc);
    mc.vocab_size = V;
    mc.mask_id = MASK;
    mc.max_seq_len = T;
    mc.d_model = 32;
    mc.n_layers = 2;
    mc.n_heads = 2;
    mc.d_ff = 64;
    j->status = td_model_create(&mc, 10 + (uint64_t)j->index, NULL, &m);
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = B;
    tc.seq_len = T;
    tc.n_threads = 1 + j->index % 2;
    tc.seed = 7 + (uint64_t)j->index;
    if (j->status == TD_OK) j->status = td_trainer_create(m, j->schedule, &tc, &tr);
    int32_t tokens[B * T];
    for (int k = 0; k < STEPS && j->status == TD_OK; k++) {
        for (int i = 0; i < B * T; i++) tokens[i] = (i * (k + 3) + j->index) % MASK;
        td_train_stats st = { .struct_size = sizeof st };
        j->status = td_trainer_step(tr, tokens, &st);
        j->loss[k] = st.loss;
    }
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = i % 3 ? i : MASK;
    if (j->status == TD_OK) j->status = td_model_logits(m, ids, 1, T, 2, j->logits);
    td_trainer_free(tr);
    td_model_free(m);
    return NULL;
}

static void test_threads_match_sequential_runs(void **state)
{
    (void)state;
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    static job alone[N_JOBS], together[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        alone[i] = (job){ .schedule = s, .index = i };
        together[i] = alone[i];
        run_job(&alone[i]);
        assert_int_equal(alone[i].status, TD_OK);
    }
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &together[i]), 0);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(together[i].status, TD_OK);
        assert_memory_equal(together[i].loss, alone[i].loss, sizeof alone[i].loss);
        assert_memory_equal(together[i].logits, alone[i].logits, sizeof alone[i].logits);
    }
    td_schedule_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_match_sequential_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
