/* The trainer's data-parallel hook (td_trainer_set_data_parallel) without
 * MPI: N ranks as N threads, each with its own model and trainer, whose
 * reduce hook sums the shards through shared memory. N ranks must train as
 * one process does on the whole batch (up to the rounding of the sums),
 * stay identical to each other, and fail together. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/toy.h"
#include "model/model_api.h"
#include "textdiff/textdiff.h"
#include "train/trainer.h"

enum { B = 8, T = 16, V = 12, MASK = 10, STEPS = 20, MAX_RANKS = 4 };

/* An all-reduce over threads: every rank posts its buffers, rank 0 sums
 * them in rank order, every rank copies the sums back. */
typedef struct group {
    pthread_barrier_t barrier;
    int n;
    float *grads[MAX_RANKS];
    double loss[MAX_RANKS];
    float *sum;
    double loss_sum;
} group;

typedef struct rank {
    group *g;
    int r;
    td_model *model;
    td_trainer *trainer;
    double losses[STEPS];
    td_status status;
} rank;

static td_status sum_over_threads(void *user, float *grads, size_t n_grads, double *values,
                                  size_t n_values)
{
    rank *me = user;
    group *g = me->g;
    assert_int_equal(n_values, 1);
    g->grads[me->r] = grads;
    g->loss[me->r] = values[0];
    pthread_barrier_wait(&g->barrier);
    if (me->r == 0) {
        for (size_t i = 0; i < n_grads; i++) {
            float s = 0;
            for (int r = 0; r < g->n; r++) s += g->grads[r][i];
            g->sum[i] = s;
        }
        g->loss_sum = 0;
        for (int r = 0; r < g->n; r++) g->loss_sum += g->loss[r];
    }
    pthread_barrier_wait(&g->barrier);
    memcpy(grads, g->sum, n_grads * sizeof *grads);
    values[0] = g->loss_sum;
    pthread_barrier_wait(&g->barrier); /* before anyone posts the next step */
    return TD_OK;
}

static void make_batch(int32_t *tokens, unsigned seed)
{
    for (int b = 0; b < B; b++) {
        int start = (int)((seed * 7u + (unsigned)b * 3u) % 10u);
        for (int i = 0; i < T; i++) tokens[b * T + i] = (start + i + (int)(seed % 3u)) % 10;
    }
}

static void create(rank *k, int32_t micro)
{
    k->model = toy_model_create(V, MASK, T, 7, NULL);
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c;
    assert_int_equal(td_trainer_config_default(&c), TD_OK);
    c.batch_size = B;
    c.seq_len = T;
    c.lr = 1e-2f;
    c.warmup_steps = 2;
    c.total_steps = STEPS;
    c.micro_batch = micro;
    assert_int_equal(td_trainer_create(k->model, s, &c, &k->trainer), TD_OK);
    td_schedule_free(s);
}

static void destroy(rank *k)
{
    td_trainer_free(k->trainer);
    td_model_free(k->model);
}

static void *train(void *arg)
{
    rank *k = arg;
    int32_t tokens[B * T];
    k->status = TD_OK;
    for (int s = 0; s < STEPS && k->status == TD_OK; s++) {
        make_batch(tokens, (unsigned)s);
        td_train_stats st = { .struct_size = sizeof st };
        k->status = td_trainer_step(k->trainer, tokens, &st);
        k->losses[s] = st.loss;
    }
    return NULL;
}

static void ranks_match_one_process(int n)
{
    rank one = { 0 };
    create(&one, 0);
    train(&one);
    assert_int_equal(one.status, TD_OK);
    const tdi_model *ref = one.model->m;

    group g = { .n = n };
    g.sum = malloc(ref->n_floats * sizeof *g.sum);
    assert_non_null(g.sum);
    pthread_barrier_init(&g.barrier, NULL, (unsigned)n);
    rank k[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < n; r++) {
        k[r] = (rank){ .g = &g, .r = r };
        create(&k[r], B / n);
        assert_int_equal(
            td_trainer_set_data_parallel(k[r].trainer, r, n, sum_over_threads, &k[r]), TD_OK);
    }
    for (int r = 0; r < n; r++) pthread_create(&th[r], NULL, train, &k[r]);
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);

    uint32_t crc0 = 0, crc = 0;
    assert_int_equal(td_model_checksum(k[0].model, &crc0), TD_OK);
    for (int r = 0; r < n; r++) {
        assert_int_equal(k[r].status, TD_OK);
        /* The replicas are identical: the same sums, the same update. */
        assert_int_equal(td_model_checksum(k[r].model, &crc), TD_OK);
        assert_int_equal(crc, crc0);
        for (int s = 0; s < STEPS; s++) {
            assert_true(k[r].losses[s] == k[0].losses[s]);
            /* The global loss, as one process computes it. */
            assert_true(fabs(k[r].losses[s] - one.losses[s]) <= 1e-6 * one.losses[s]);
        }
    }
    /* The parameters: the shards' sums round differently from one pass over
     * the batch, and Adam's division by sqrt(v) enlarges that where a
     * gradient is tiny. Bound: a thousandth of the furthest Adam can move a
     * parameter in these steps (about lr per step); measured 2.5e-5 to
     * 4.7e-5 against 2e-4. */
    const float *p = k[0].model->m->params;
    double d = 0, scale = 0;
    for (size_t i = 0; i < ref->n_floats; i++) {
        d = fmax(d, fabs((double)p[i] - ref->params[i]));
        scale = fmax(scale, fabs((double)ref->params[i]));
    }
    assert_true(scale > 0);
    print_message("%d ranks: largest parameter difference %.3g (largest parameter %.3g)\n", n, d, scale);
    assert_true(d <= 1e-3 * 1e-2 * STEPS);
    /* ... and training moved them: the comparison is not vacuous. */
    rank fresh = { 0 };
    create(&fresh, 0);
    double moved = 0;
    for (size_t i = 0; i < ref->n_floats; i++)
        moved = fmax(moved, fabs((double)fresh.model->m->params[i] - ref->params[i]));
    assert_true(moved > 1e-3);
    destroy(&fresh);

    for (int r = 0; r < n; r++) destroy(&k[r]);
    pthread_barrier_destroy(&g.barrier);
    free(g.sum);
    destroy(&one);
}

static void test_two_ranks(void **state)
{
    (void)state;
    ranks_match_one_process(2);
}

static void test_four_ranks(void **state)
{
    (void)state;
    ranks_match_one_process(4);
}

/* Hooks for one rank that fail, or that poison the loss. */
static td_status failing_hook(void *user, float *grads, size_t n_grads, double *values,
                              size_t n_values)
{
    (void)user, (void)grads, (void)n_grads, (void)values, (void)n_values;
    return TD_ERR_IO;
}

static td_status nan_hook(void *user, float *grads, size_t n_grads, double *values,
                          size_t n_values)
{
    (void)user, (void)grads, (void)n_grads, (void)n_values;
    values[0] = NAN; /* another rank's non-finite loss, seen in the sum */
    return TD_OK;
}

static int g_calls;
static td_status counting_hook(void *user, float *grads, size_t n_grads, double *values,
                               size_t n_values)
{
    (void)user, (void)grads, (void)n_grads, (void)values, (void)n_values;
    g_calls++;
    return TD_OK;
}

static void test_failed_hook_changes_nothing(void **state)
{
    (void)state;
    rank k = { 0 };
    create(&k, 0);
    int32_t tokens[B * T];
    make_batch(tokens, 0);
    uint32_t before = 0, after = 0;
    int64_t step = -1;
    char msg[256];
    td_train_stats st = { .struct_size = sizeof st };

    assert_int_equal(td_model_checksum(k.model, &before), TD_OK);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 1, failing_hook, NULL), TD_OK);
    assert_int_equal(td_trainer_step(k.trainer, tokens, &st), TD_ERR_IO);
    td_trainer_errmsg(k.trainer, msg, sizeof msg);
    assert_non_null(strstr(msg, "reduce hook"));
    assert_int_equal(td_model_checksum(k.model, &after), TD_OK);
    assert_int_equal(after, before);
    assert_int_equal(td_trainer_get_step(k.trainer, &step), TD_OK);
    assert_int_equal(step, 0);

    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 1, nan_hook, NULL), TD_OK);
    assert_int_equal(td_trainer_step(k.trainer, tokens, &st), TD_ERR_NUMERIC);
    assert_int_equal(td_model_checksum(k.model, &after), TD_OK);
    assert_int_equal(after, before);

    /* A hook on one rank is called once per step; detached, never. */
    g_calls = 0;
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 1, counting_hook, NULL), TD_OK);
    assert_int_equal(td_trainer_step(k.trainer, tokens, &st), TD_OK);
    assert_int_equal(g_calls, 1);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 1, NULL, NULL), TD_OK);
    assert_int_equal(td_trainer_step(k.trainer, tokens, &st), TD_OK);
    assert_int_equal(g_calls, 1);
    assert_int_equal(td_model_checksum(k.model, &after), TD_OK);
    assert_int_not_equal(after, before);
    destroy(&k);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rank k = { 0 };
    create(&k, 0);
    char msg[256];
    assert_int_equal(td_trainer_set_data_parallel(NULL, 0, 1, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 3, counting_hook, NULL),
                     TD_ERR_INVALID_ARG);
    td_trainer_errmsg(k.trainer, msg, sizeof msg);
    assert_non_null(strstr(msg, "not divisible"));
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 0, counting_hook, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 16, counting_hook, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 2, 2, counting_hook, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, -1, 2, counting_hook, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_set_data_parallel(k.trainer, 0, 2, NULL, NULL),
                     TD_ERR_INVALID_ARG);

    uint32_t crc;
    assert_int_equal(td_model_checksum(NULL, &crc), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_checksum(k.model, NULL), TD_ERR_INVALID_ARG);

    td_trainer_config c = { .struct_size = sizeof c };
    assert_int_equal(td_trainer_get_config(k.trainer, &c), TD_OK);
    assert_int_equal(c.struct_size, sizeof c);
    assert_int_equal(c.batch_size, B);
    assert_int_equal(c.seq_len, T);
    assert_int_equal(c.micro_batch, B); /* 0 resolved */
    assert_int_equal(td_trainer_get_config(NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_get_config(k.trainer, NULL), TD_ERR_INVALID_ARG);
    c.struct_size = 3;
    assert_int_equal(td_trainer_get_config(k.trainer, &c), TD_ERR_INVALID_ARG);
    destroy(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_four_ranks),
        cmocka_unit_test(test_failed_hook_changes_nothing),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
