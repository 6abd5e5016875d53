/* The trainer: MLM and diffusion through one step function, determinism,
 * numeric failure handling, argument checks, allocation failures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "model/model_api.h"
#include "train/trainer.h"
#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { B = 8, T = 16, V = 12, MASK = 10 };

static td_model *tiny_model(const td_allocator *a)
{
    return toy_model_create(V, MASK, T, 7, a);
}

static td_schedule *schedule(td_schedule_kind kind) { return toy_schedule(kind); }

static td_trainer_config trainer_config(void)
{
    td_trainer_config c;
    assert_int_equal(td_trainer_config_default(&c), TD_OK);
    c.batch_size = B;
    c.seq_len = T;
    c.lr = 1e-2f;
    c.min_lr = 1e-3f;
    c.warmup_steps = 5;
    c.total_steps = 300;
    return c;
}

/* A learnable language: each sequence counts up modulo 10 from a random
 * start, so a masked token follows from either neighbour. */
static void make_batch(int32_t *tokens, unsigned seed)
{
    for (int b = 0; b < B; b++) {
        int start = (int)((seed * 7u + (unsigned)b * 3u) % 10u);
        for (int i = 0; i < T; i++) tokens[b * T + i] = (start + i) % 10;
    }
}

static double mean_loss(td_trainer *tr, int from, int to)
{
    int32_t tokens[B * T];
    double sum = 0;
    for (int s = from; s < to; s++) {
        make_batch(tokens, (unsigned)s);
        td_train_stats st = { .struct_size = sizeof st };
        assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
        assert_int_equal(st.step, s + 1);
        assert_true(isfinite(st.loss) && st.grad_norm > 0);
        sum += st.loss;
    }
    return sum / (to - from);
}

static void learns(td_schedule_kind kind)
{
    td_model *m = tiny_model(NULL);
    td_schedule *s = schedule(kind);
    td_trainer_config c = trainer_config();
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    td_schedule_free(s); /* the trainer keeps its own copy */
    double first = mean_loss(tr, 0, 10);
    mean_loss(tr, 10, 250);
    double last = mean_loss(tr, 250, 300);
    /* Uniform guessing over 10 digits costs ln 10 = 2.30 nats per token. */
    assert_true(first > 1.5);
    assert_true(last < 0.5 * first);
    td_trainer_free(tr);
    td_model_free(m);
}

static void test_mlm_learns(void **state) { (void)state; learns(TD_SCHEDULE_FIXED_RATE); }
static void test_diffusion_learns(void **state) { (void)state; learns(TD_SCHEDULE_LOGLINEAR); }

static void test_fixed_rate_masks_its_rate(void **state)
{
    (void)state;
    td_model *m = tiny_model(NULL);
    td_schedule *s = schedule(TD_SCHEDULE_FIXED_RATE);
    td_trainer_config c = trainer_config();
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    int32_t tokens[B * T];
    make_batch(tokens, 1);
    long masked = 0;
    const int steps = 50;
    for (int i = 0; i < steps; i++) {
        td_train_stats st = { .struct_size = sizeof st };
        assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
        masked += st.n_masked;
    }
    double rate = (double)masked / (steps * B * T);
    double sd = sqrt(0.15 * 0.85 / (steps * B * T));
    assert_true(fabs(rate - 0.15) < 5 * sd);
    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(m);
}

/* Two runs from the same seed agree to the bit, at any thread count. */
static void run(int nt, double *losses, float *params)
{
    td_model *m = tiny_model(NULL);
    td_schedule *s = schedule(TD_SCHEDULE_COSINE);
    td_trainer_config c = trainer_config();
    c.n_threads = nt;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    int32_t tokens[B * T];
    for (int i = 0; i < 20; i++) {
        make_batch(tokens, (unsigned)i);
        td_train_stats st = { .struct_size = sizeof st };
        assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
        losses[i] = st.loss;
    }
    memcpy(params, m->m->params, m->m->n_floats * sizeof(float));
    /* The gaps between tensors (docs/model.md) are never written. */
    const tdi_model *im = m->m;
    for (int32_t i = 0; i < im->n_tensors; i++) {
        const tdi_tensor *ts = &im->tensors[i];
        size_t end = i + 1 < im->n_tensors ? im->tensors[i + 1].offset : im->n_floats;
        for (size_t k = ts->offset + (size_t)ts->rows * (size_t)ts->cols; k < end; k++)
            assert_true(im->params[k] == 0.0f);
    }
    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_same_seed_same_bits(void **state)
{
    (void)state;
    td_model *m = tiny_model(NULL);
    size_t n = m->m->n_floats;
    td_model_free(m);
    double l1[20], l2[20], l3[20];
    float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float)),
          *p3 = malloc(n * sizeof(float));
    run(1, l1, p1);
    run(1, l2, p2);
    run(2, l3, p3);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(p1, p2, n * sizeof(float));
    assert_memory_equal(l1, l3, sizeof l1);
    assert_memory_equal(p1, p3, n * sizeof(float));
    free(p1);
    free(p2);
    free(p3);
}

/* A model wide enough that its products are split into blocks
 * (lib/kernels/gemm.c): the same bits at 1, 2 and 3 library threads; with
 * OpenBLAS running threads of its own, the same to rounding (its threaded
 * path may split a block's product otherwise: docs/api.md, "BLAS threads"). */
void openblas_set_num_threads(int n) __attribute__((weak));

enum { WB = 4, WT = 128 };

enum { WIDE_MAX_PARAMS = 1 << 20 };

/* Returns the parameter count; params holds them after three steps. */
static size_t run_wide(int nt, int blas_threads, double *losses, float *params)
{
    if (openblas_set_num_threads) openblas_set_num_threads(blas_threads);
    td_model *m = toy_model_sized(V, MASK, WT, 64, 1, 2, 256, 3, NULL);
    td_schedule *s = schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c = trainer_config();
    c.batch_size = WB;
    c.seq_len = WT;
    c.n_threads = nt;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    int32_t tokens[WB * WT];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < WB * WT; j++) tokens[j] = (j * 7 + i) % 10;
        td_train_stats st = { .struct_size = sizeof st };
        assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
        losses[i] = st.loss;
    }
    size_t n = m->m->n_floats;
    assert_true(n <= WIDE_MAX_PARAMS);
    memcpy(params, m->m->params, n * sizeof(float));
    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(m);
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return n;
}

static void test_split_products_same_bits(void **state)
{
    (void)state;
    enum { N_RUNS = 4 };
    static const int nt[N_RUNS] = { 1, 2, 3, 2 }, blas[N_RUNS] = { 1, 1, 1, 2 };
    double losses[N_RUNS][3];
    float *params[N_RUNS];
    size_t n = 0;
    for (int r = 0; r < N_RUNS; r++) {
        params[r] = malloc(WIDE_MAX_PARAMS * sizeof(float));
        assert_non_null(params[r]);
        n = run_wide(nt[r], blas[r], losses[r], params[r]);
    }
    for (int r = 1; r < N_RUNS; r++) {
        if (blas[r] == 1) {
            assert_memory_equal(losses[0], losses[r], sizeof losses[0]);
            assert_memory_equal(params[0], params[r], n * sizeof(float));
            continue;
        }
        for (int i = 0; i < 3; i++)
            assert_true(fabs(losses[r][i] - losses[0][i]) <= 1e-5 * fabs(losses[0][i]));
        for (size_t j = 0; j < n; j++)
            if (!(fabsf(params[r][j] - params[0][j]) <= 1e-4f))
                fail_msg("parameter %zu: %.9g with OpenBLAS's threads, %.9g without", j,
                         (double)params[r][j], (double)params[0][j]);
    }
    for (int r = 0; r < N_RUNS; r++) free(params[r]);
}

/* Passes of micro_batch sequences add up to the whole batch: the same masks,
 * the same loss and gradient up to rounding, at every split, ragged last
 * pass included. */
static void test_micro_batches_add_up(void **state)
{
    (void)state;
    enum { N_SPLITS = 4 };
    static const int32_t micro[N_SPLITS] = { 0, 4, 3, 1 };
    td_model *ref_model = tiny_model(NULL);
    size_t np = ref_model->m->n_floats;
    td_model_free(ref_model);
    float *g[N_SPLITS];
    td_train_stats st[N_SPLITS][3];
    for (int r = 0; r < N_SPLITS; r++) {
        td_model *m = tiny_model(NULL);
        td_schedule *s = schedule(TD_SCHEDULE_LOGLINEAR);
        td_trainer_config c = trainer_config();
        c.micro_batch = micro[r];
        c.lr = c.min_lr = 1e-7f; /* parameters stay put: later steps stay comparable */
        td_trainer *tr;
        assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
        int32_t tokens[B * T];
        for (int i = 0; i < 3; i++) {
            make_batch(tokens, (unsigned)i);
            st[r][i] = (td_train_stats){ .struct_size = sizeof st[r][i] };
            assert_int_equal(td_trainer_step(tr, tokens, &st[r][i]), TD_OK);
        }
        g[r] = malloc(np * sizeof(float));
        assert_non_null(g[r]);
        memcpy(g[r], tr->grads, np * sizeof(float));
        td_trainer_free(tr);
        td_schedule_free(s);
        td_model_free(m);
    }
    float gmax = 0.0f;
    for (size_t j = 0; j < np; j++) gmax = fmaxf(gmax, fabsf(g[0][j]));
    assert_true(gmax > 0.0f);
    for (int r = 1; r < N_SPLITS; r++) {
        for (int i = 0; i < 3; i++) {
            assert_int_equal(st[r][i].n_masked, st[0][i].n_masked);
            assert_true(fabs(st[r][i].loss - st[0][i].loss) <= 1e-5 * st[0][i].loss);
            assert_true(fabs(st[r][i].grad_norm - st[0][i].grad_norm) <=
                        1e-4 * st[0][i].grad_norm);
        }
        for (size_t j = 0; j < np; j++) assert_true(fabsf(g[r][j] - g[0][j]) <= 1e-5f * gmax);
    }
    for (int r = 0; r < N_SPLITS; r++) free(g[r]);
}

static void test_non_finite_step_is_not_applied(void **state)
{
    (void)state;
    td_model *m = tiny_model(NULL);
    td_schedule *s = schedule(TD_SCHEDULE_LINEAR);
    td_trainer_config c = trainer_config();
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    int32_t tokens[B * T];
    make_batch(tokens, 3);
    td_train_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
    /* Poison one weight of the last block: the loss becomes NaN. */
    size_t n = m->m->n_floats;
    m->m->params[m->m->lnf_w] = NAN;
    float *before = malloc(n * sizeof(float));
    memcpy(before, m->m->params, n * sizeof(float));
    tdi_rng rng = tr->rng;
    assert_int_equal(td_trainer_step(tr, tokens, &st), TD_ERR_NUMERIC);
    assert_non_null(strstr(td_last_error_message(), "not applied"));
    assert_memory_equal(before, m->m->params, n * sizeof(float));
    assert_memory_equal(&rng, &tr->rng, sizeof rng); /* the generator did not move */
    tokens[7] = MASK; /* a bad batch is found after the times are drawn */
    assert_int_equal(td_trainer_step(tr, tokens, &st), TD_ERR_INVALID_ARG);
    assert_memory_equal(&rng, &tr->rng, sizeof rng);
    make_batch(tokens, 3);
    /* Repaired, training continues from step 2. */
    m->m->params[m->m->lnf_w] = 1.0f;
    assert_int_equal(td_trainer_step(tr, tokens, &st), TD_OK);
    assert_int_equal(st.step, 2);
    free(before);
    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    td_model *m = tiny_model(NULL);
    td_schedule *s = schedule(TD_SCHEDULE_LINEAR);
    td_trainer_config c = trainer_config();
    td_trainer *tr = (td_trainer *)&tr;
    assert_int_equal(td_trainer_create(NULL, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_null(tr);
    assert_int_equal(td_trainer_create(m, NULL, &c, &tr), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_create(m, s, NULL, &tr), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_create(m, s, &c, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_config_default(NULL), TD_ERR_INVALID_ARG);

    c = trainer_config(); c.batch_size = 0;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "batch_size"));
    c = trainer_config(); c.seq_len = T + 1;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "seq_len"));
    c = trainer_config(); c.n_threads = 0;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "n_threads"));
    c = trainer_config(); c.micro_batch = B + 1;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "micro_batch"));
    c = trainer_config(); c.micro_batch = -1;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "micro_batch"));
    c = trainer_config(); c.lr = -1;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "lr"));
    c = trainer_config(); c.beta2 = 1.0f;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "beta2"));
    c = trainer_config(); c.warmup_steps = c.total_steps + 1;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    c = trainer_config(); c.struct_size = 3;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_ERR_INVALID_ARG);
    assert_null(tr);

    c = trainer_config();
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    int32_t tokens[B * T];
    make_batch(tokens, 0);
    assert_int_equal(td_trainer_step(tr, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_step(NULL, tokens, NULL), TD_ERR_INVALID_ARG);
    tokens[5] = MASK; /* clean data never holds [MASK] */
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_ERR_INVALID_ARG);
    tokens[5] = V;
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_ERR_INVALID_ARG);
    tokens[5] = 0;
    td_train_stats small = { .struct_size = 2 };
    assert_int_equal(td_trainer_step(tr, tokens, &small), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_OK);
    td_trainer_free(tr);
    td_trainer_free(NULL);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_schedule *s = schedule(TD_SCHEDULE_LINEAR);
    td_trainer_config c = trainer_config();
    td_model *m = tiny_model(&a);
    long base = h.live;
    for (long k = 0;; k++) {
        h.fail_at = h.calls + k;
        td_trainer *tr;
        td_status st = td_trainer_create(m, s, &c, &tr);
        if (st == TD_OK) {
            td_trainer_free(tr);
            assert_int_equal(h.live, base);
            break;
        }
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_null(tr);
        assert_int_equal(h.live, base);
        assert_true(k < 100);
    }
    td_model_free(m);
    assert_int_equal(h.live, 0);
    td_schedule_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlm_learns),
        cmocka_unit_test(test_diffusion_learns),
        cmocka_unit_test(test_fixed_rate_masks_its_rate),
        cmocka_unit_test(test_same_seed_same_bits),
        cmocka_unit_test(test_split_products_same_bits),
        cmocka_unit_test(test_micro_batches_add_up),
        cmocka_unit_test(test_non_finite_step_is_not_applied),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
