/* Numerical and size edges of generation, each as documented: nothing or
 * everything masked, length 1 and the maximum length, huge logits,
 * temperatures near 0 and very large, top-p near 0 and exactly 1, top-k 1
 * and at least the vocabulary. */
#include <math.h>
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

enum { V = 40, MASK = 39, T = 24 };

static td_model *g_model;
static td_schedule *g_sched;

static td_sampler_config config(int32_t strategy)
{
    td_sampler_config c;
    td_sampler_config_default(&c);
    c.strategy = strategy;
    c.steps = 6;
    c.seed = 5;
    return c;
}

/* Generates into canvas (seq_len positions, all masked first unless keep). */
static td_sample_stats generate(const td_sampler_config *c, int32_t *canvas, int32_t seq_len,
                                int keep)
{
    td_sampler *s;
    assert_int_equal(td_sampler_create(g_model, g_sched, c, &s), TD_OK);
    if (!keep)
        for (int i = 0; i < seq_len; i++) canvas[i] = MASK;
    td_sample_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_sampler_generate(s, canvas, 1, seq_len, NULL, NULL, &st), TD_OK);
    for (int i = 0; i < seq_len; i++) assert_true(canvas[i] >= 0 && canvas[i] < MASK);
    td_sampler_free(s);
    return st;
}

static void test_nothing_and_everything_masked(void **state)
{
    (void)state;
    for (int32_t strategy = TD_SAMPLER_ANCESTRAL; strategy <= TD_SAMPLER_ENTROPY; strategy++) {
        td_sampler_config c = config(strategy);
        int32_t canvas[T], copy[T];
        td_sample_stats st = generate(&c, canvas, T, 0);
        assert_int_equal(st.tokens_revealed, T);
        memcpy(copy, canvas, sizeof canvas);
        st = generate(&c, canvas, T, 1); /* nothing left to generate */
        assert_memory_equal(canvas, copy, sizeof canvas);
        assert_int_equal(st.tokens_revealed, 0);
        assert_int_equal(st.model_calls, 0);
    }
}

static void test_length_one_and_the_maximum(void **state)
{
    (void)state;
    for (int32_t strategy = TD_SAMPLER_ANCESTRAL; strategy <= TD_SAMPLER_ENTROPY; strategy++) {
        td_sampler_config c = config(strategy);
        int32_t canvas[T + 1];
        assert_int_equal(generate(&c, canvas, 1, 0).tokens_revealed, 1);
        assert_int_equal(generate(&c, canvas, T, 0).tokens_revealed, T);
        td_sampler *s;
        assert_int_equal(td_sampler_create(g_model, g_sched, &c, &s), TD_OK);
        for (int i = 0; i < T + 1; i++) canvas[i] = MASK;
        assert_int_equal(td_sampler_generate(s, canvas, 1, T + 1, NULL, NULL, NULL),
                         TD_ERR_INVALID_ARG);
        td_sampler_free(s);
    }
}

/* The greedy canvas: temperature 0. */
static void greedy(int32_t strategy, int32_t *canvas)
{
    td_sampler_config c = config(strategy);
    c.temperature = 0.0f;
    generate(&c, canvas, T, 0);
}

/* A filter that keeps one token, or a temperature near 0, draws the greedy
 * tokens. (Only the ancestral strategy's output must then equal greedy's:
 * the confidence strategies rank positions by the kept, tempered
 * distribution, in which every confidence is then equal; at temperature 0 they
 * rank by the model's own probabilities — docs/sampling.md.) */
static void test_filters_at_their_limits(void **state)
{
    (void)state;
    for (int32_t strategy = TD_SAMPLER_ANCESTRAL; strategy <= TD_SAMPLER_ENTROPY; strategy++) {
        int32_t want[T], got[T], ref[T];
        int exact = strategy == TD_SAMPLER_ANCESTRAL;
        greedy(strategy, want);
        td_sampler_config c = config(strategy);
        c.temperature = 1e-30f; /* near 0: the logits become huge */
        generate(&c, got, T, 0);
        if (exact) assert_memory_equal(got, want, sizeof got);
        c = config(strategy);
        c.top_p = 1e-9f; /* the smallest nucleus holds the top token only */
        generate(&c, got, T, 0);
        if (exact) assert_memory_equal(got, want, sizeof got);
        c = config(strategy);
        c.top_k = 1;
        generate(&c, got, T, 0);
        if (exact) assert_memory_equal(got, want, sizeof got);

        c = config(strategy); /* the defaults, against filters that keep everything */
        generate(&c, ref, T, 0);
        c.top_p = 1.0f;
        generate(&c, got, T, 0);
        assert_memory_equal(got, ref, sizeof got);
        c.top_k = V - 1; /* every id but [MASK] */
        generate(&c, got, T, 0);
        assert_memory_equal(got, ref, sizeof got);
        c.top_k = 1000000;
        generate(&c, got, T, 0);
        assert_memory_equal(got, ref, sizeof got);

        c = config(strategy);
        c.temperature = 1e30f; /* the logits vanish: draws are uniform, still valid */
        generate(&c, got, T, 0);
        c.temperature = 3.4e38f;
        generate(&c, got, T, 0);
    }
}

static void test_huge_logits(void **state)
{
    (void)state;
    /* Scale the tied embedding: logits grow by the factor (about 1e4 here)
     * and stay finite; the draw is then the most likely token. */
    tdi_model *m = g_model->m;
    float *saved = malloc(m->n_floats * sizeof(float));
    memcpy(saved, m->params, m->n_floats * sizeof(float));
    for (size_t i = 0; i < m->n_floats; i++) m->params[i] *= 100.0f;
    float logits[T * V];
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = MASK;
    assert_int_equal(td_model_logits(g_model, ids, 1, T, 1, logits), TD_OK);
    float big = 0;
    for (int i = 0; i < T * V; i++)
        if (isfinite(logits[i]) && fabsf(logits[i]) > big) big = fabsf(logits[i]);
    assert_true(big > 1e3f);
    int32_t want[T], got[T];
    greedy(TD_SAMPLER_ANCESTRAL, want);
    td_sampler_config c = config(TD_SAMPLER_ANCESTRAL);
    generate(&c, got, T, 0);
    assert_memory_equal(got, want, sizeof got);
    for (int32_t strategy = TD_SAMPLER_MAX_PROB; strategy <= TD_SAMPLER_ENTROPY; strategy++) {
        c = config(strategy);
        generate(&c, got, T, 0);
    }
    memcpy(m->params, saved, m->n_floats * sizeof(float));
    free(saved);
}

static int setup(void **state)
{
    (void)state;
    g_model = toy_model_create(V, MASK, T, 4, NULL);
    g_sched = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    td_schedule_free(g_sched);
    td_model_free(g_model);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_and_everything_masked),
        cmocka_unit_test(test_length_one_and_the_maximum),
        cmocka_unit_test(test_filters_at_their_limits),
        cmocka_unit_test(test_huge_logits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
