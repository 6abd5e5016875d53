/* The causal (autoregressive) mode of the model: the mask itself, the
 * next-token objective of the trainer, the exact NLL of the evaluation, the
 * generative perplexity, and left-to-right sampling with its key/value
 * cache against the full forward pass. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/incremental.h"
#include "model/model_api.h"
#include "util/rng.h"
#include "common/test_alloc_hooks.h"
#include "common/test_pool.h"

#define V 20
#define MASK 18
#define TMAX 16

/* A model whose parameters are far from the initialisation, so that its
 * logits are well apart (no near-ties for greedy decoding to trip on). */
/* Set: the model also has the options of docs/hf.md that a causal model may
 * have (erf GELU, eps 1e-12, a token-type table, a position offset when
 * learned). */
static int with_hf_options;

static td_model *make_model(int causal, int pos, int norm, uint64_t seed)
{
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.vocab_size = V;
    c.mask_id = MASK;
    c.max_seq_len = TMAX;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_ff = 32;
    c.pos_encoding = pos;
    c.norm_placement = norm;
    c.causal = causal;
    if (with_hf_options) {
        c.activation = TD_ACT_GELU_ERF;
        c.layer_norm_eps = 1e-12f;
        c.type_vocab_size = 2;
        c.pos_offset = pos == TD_POS_LEARNED ? 2 : 0;
    }
    td_model *m = NULL;
    assert_int_equal(td_model_create(&c, seed, NULL, &m), TD_OK);
    tdi_model *im = m->m;
    tdi_rng r;
    tdi_rng_seed(&r, seed + 100);
    for (size_t i = 0; i < im->n_floats; i++)
        im->params[i] = (float)(0.8 * (tdi_rng_f64(&r) - 0.5));
    for (int32_t i = 0; i < im->n_tensors; i++) {
        const tdi_tensor *t = &im->tensors[i];
        if (strstr(t->name, "ln") && t->name[strlen(t->name) - 1] == 'w')
            for (int j = 0; j < t->cols; j++) im->params[t->offset + j] += 1.0f;
    }
    return m;
}

static void random_ids(int32_t *ids, int n, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)tdi_rng_below(&r, MASK); /* no [MASK] */
}

/* in [B, T] = x shifted right behind [MASK]. */
static void shift(int32_t *in, const int32_t *x, int B, int T)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) in[b * T + i] = i == 0 ? MASK : x[b * T + i - 1];
}

/* −log softmax(row)[target], in double. */
static double nll(const float *row, int target)
{
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < V; j++) mx = fmax(mx, (double)row[j]);
    for (int j = 0; j < V; j++) s += exp((double)row[j] - mx);
    return -((double)row[target] - mx - log(s));
}

static void test_config_and_checkpoint(void **state)
{
    (void)state;
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    assert_int_equal(c.causal, 0);
    c.causal = 2;
    td_model *m = NULL;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "causal"));
    c.causal = 0;
    c.reserved1 = 1;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_ERR_INVALID_ARG);

    m = make_model(1, TD_POS_ROPE, TD_NORM_PRE, 1);
    char path[] = "test_causal_ckpt.tdm";
    assert_int_equal(td_model_save(m, path), TD_OK);
    td_model *back = NULL;
    assert_int_equal(td_model_load(path, NULL, &back), TD_OK);
    td_model_config got = { .struct_size = sizeof got };
    assert_int_equal(td_model_get_config(back, &got), TD_OK);
    assert_int_equal(got.causal, 1);
    /* A 1.0 caller's struct has no such field: 48 bytes are written. */
    td_model_config old;
    memset(&old, 0xA5, sizeof old);
    old.struct_size = 48;
    assert_int_equal(td_model_get_config(back, &old), TD_OK);
    assert_int_equal(old.struct_size, 48);
    assert_int_equal((uint32_t)old.causal, 0xA5A5A5A5u);
    remove(path);
    td_model_free(back);
    td_model_free(m);
}

/* Position i of a causal model sees positions 0..i only: changing the
 * token at k changes no logit of a row before k, bit for bit. A
 * bidirectional model is the control. */
static void test_later_tokens_never_change_earlier_logits(void **state)
{
    (void)state;
    const int B = 2, T = 12, k = 6;
    int32_t ids[2 * 12], ids2[2 * 12];
    float *a = malloc(sizeof *a * B * T * V), *b = malloc(sizeof *b * B * T * V);
    for (int causal = 0; causal <= 1; causal++) {
        td_model *m = make_model(causal, TD_POS_ROPE, TD_NORM_PRE, 3);
        random_ids(ids, B * T, 4);
        memcpy(ids2, ids, sizeof ids);
        for (int s = 0; s < B; s++) ids2[s * T + k] = (ids[s * T + k] + 5) % MASK;
        for (int nt = 1; nt <= 2; nt++) {
            assert_int_equal(td_model_logits(m, ids, B, T, nt, a), TD_OK);
            assert_int_equal(td_model_logits(m, ids2, B, T, nt, b), TD_OK);
            for (int s = 0; s < B; s++) {
                size_t before = (size_t)(s * T) * V, n = (size_t)k * V;
                int same = memcmp(a + before, b + before, n * sizeof *a) == 0;
                assert_int_equal(same, causal); /* bidirectional rows do change */
                int later = memcmp(a + before + n, b + before + n,
                                   (size_t)(T - k) * V * sizeof *a) == 0;
                assert_false(later);
            }
        }
        td_model_free(m);
    }
    free(a);
    free(b);
}

/* The trainer's loss on a causal model is the mean next-token NLL of the
 * batch before the step, whatever the schedule; every position is scored. */
static void test_trainer_next_token(void **state)
{
    (void)state;
    const int B = 3, T = 10;
    td_model *m = make_model(1, TD_POS_ROPE, TD_NORM_PRE, 5);
    int32_t x[3 * 10], in[3 * 10];
    random_ids(x, B * T, 6);
    shift(in, x, B, T);
    float *logits = malloc(sizeof *logits * B * T * V);
    assert_int_equal(td_model_logits(m, in, B, T, 1, logits), TD_OK);
    double want = 0.0;
    for (int r = 0; r < B * T; r++) want += nll(logits + (size_t)r * V, x[r]);
    want /= (double)(B * T);

    td_schedule_config sc;
    td_schedule *sch = NULL;
    assert_int_equal(td_schedule_config_default(&sc, TD_SCHEDULE_FIXED_RATE), TD_OK);
    assert_int_equal(td_schedule_create(&sc, NULL, &sch), TD_OK);
    td_trainer_config tc;
    assert_int_equal(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = B;
    tc.seq_len = T;
    tc.micro_batch = 2; /* passes add up to the batch */
    td_trainer *t = NULL;
    assert_int_equal(td_trainer_create(m, sch, &tc, &t), TD_OK);
    td_train_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_trainer_step(t, x, &st), TD_OK);
    assert_int_equal(st.n_masked, B * T);
    if (fabs(st.loss - want) > 1e-5 * want) fail_msg("loss %.9g, direct %.9g", st.loss, want);
    /* Training lowers it. */
    for (int i = 0; i < 30; i++) assert_int_equal(td_trainer_step(t, x, &st), TD_OK);
    assert_true(st.loss < want);
    x[4] = MASK;
    assert_int_equal(td_trainer_step(t, x, &st), TD_ERR_INVALID_ARG);
    td_trainer_free(t);
    td_schedule_free(sch);
    free(logits);
    td_model_free(m);
}

/* td_eval_nelbo on a causal model: the exact NLL per token, window by
 * window, from the same shifted input. */
static void test_eval_exact_nll(void **state)
{
    (void)state;
    const int T = 12, W = 5;
    td_model *m = make_model(1, TD_POS_LEARNED, TD_NORM_POST, 7);
    int32_t x[5 * 12 + 3], in[12];
    random_ids(x, W * T + 3, 8);
    float *logits = malloc(sizeof *logits * T * V);
    double sum = 0.0, sq = 0.0;
    for (int w = 0; w < W; w++) {
        shift(in, x + w * T, 1, T);
        assert_int_equal(td_model_logits(m, in, 1, T, 1, logits), TD_OK);
        double s = 0.0;
        for (int i = 0; i < T; i++) s += nll(logits + (size_t)i * V, x[w * T + i]);
        sum += s / T;
        sq += (s / T) * (s / T);
    }
    double mean = sum / W, var = (sq - W * mean * mean) / (W - 1);

    td_eval_config ec;
    assert_int_equal(td_eval_config_default(&ec), TD_OK);
    ec.seq_len = T;
    ec.batch_size = 2;
    ec.bytes_per_token = 1.0;
    td_eval_result r = { .struct_size = sizeof r }, r2 = r;
    assert_int_equal(td_eval_nelbo(m, x, W * T + 3, &ec, &r), TD_OK);
    assert_int_equal(r.n_sequences, W);
    assert_int_equal(r.n_tokens, W * T);
    if (fabs(r.nelbo_nats - mean) > 1e-5 * mean)
        fail_msg("NLL %.9g, direct %.9g", r.nelbo_nats, mean);
    assert_true(fabs(r.nelbo_bits - mean / log(2.0)) < 1e-4);
    assert_true(fabs(r.bits_per_byte - r.nelbo_bits) < 1e-12);
    assert_true(fabs(r.std_error_nats - sqrt(var / W)) < 1e-4);
    ec.n_threads = 3;
    ec.batch_size = 4;
    ec.n_times = 7; /* not used */
    assert_int_equal(td_eval_nelbo(m, x, W * T + 3, &ec, &r2), TD_OK);
    assert_true(r2.nelbo_nats == r.nelbo_nats);

    double rate = 0.5, loss;
    assert_int_equal(td_eval_rates(m, x, W * T, &rate, 1, &ec, &loss, NULL), TD_ERR_UNSUPPORTED);
    assert_non_null(strstr(td_last_error_message(), "causal"));
    free(logits);
    td_model_free(m);
}

static void test_gen_perplexity(void **state)
{
    (void)state;
    const int T = 10, N = 4;
    td_model *m = make_model(1, TD_POS_ROPE, TD_NORM_PRE, 9);
    int32_t x[4 * 10], in[10];
    random_ids(x, N * T, 10);
    float *logits = malloc(sizeof *logits * T * V);
    double sum = 0.0;
    for (int s = 0; s < N; s++) {
        shift(in, x + s * T, 1, T);
        assert_int_equal(td_model_logits(m, in, 1, T, 1, logits), TD_OK);
        for (int i = 0; i < T; i++) sum += nll(logits + (size_t)i * V, x[s * T + i]);
    }
    double want_bits = sum / (N * T) / log(2.0);
    td_eval_config ec;
    assert_int_equal(td_eval_config_default(&ec), TD_OK);
    ec.bytes_per_token = 2.0;
    td_eval_result r = { .struct_size = sizeof r };
    assert_int_equal(td_eval_gen_perplexity(m, x, N, T, &ec, &r), TD_OK);
    if (fabs(r.nelbo_bits - want_bits) > 1e-5 * want_bits)
        fail_msg("bits %.9g, direct %.9g", r.nelbo_bits, want_bits);
    assert_true(fabs(r.bits_per_byte - r.nelbo_bits / 2.0) < 1e-12);
    assert_int_equal(r.n_sequences, N);
    assert_int_equal(td_eval_gen_perplexity(m, x, N, T, NULL, &r), TD_OK);

    assert_int_equal(td_eval_gen_perplexity(m, x, 0, T, &ec, &r), TD_ERR_INVALID_ARG);
    assert_int_equal(td_eval_gen_perplexity(m, x, 1, TMAX + 1, &ec, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "max_seq_len"));
    assert_int_equal(td_eval_gen_perplexity(m, NULL, N, T, &ec, &r), TD_ERR_INVALID_ARG);
    int32_t bad = x[3];
    x[3] = MASK;
    assert_int_equal(td_eval_gen_perplexity(m, x, N, T, &ec, &r), TD_ERR_INVALID_ARG);
    x[3] = V;
    assert_int_equal(td_eval_gen_perplexity(m, x, N, T, &ec, &r), TD_ERR_INVALID_ARG);
    x[3] = bad;
    td_model *bi = make_model(0, TD_POS_ROPE, TD_NORM_PRE, 9);
    assert_int_equal(td_eval_gen_perplexity(bi, x, N, T, &ec, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "causal"));
    td_model_free(bi);
    free(logits);
    td_model_free(m);
}

/* The incremental forward over the cache gives, at every position, the
 * logits of the full forward pass over the prefix, in every architecture. */
static void test_cached_logits_equal_full_forward(void **state)
{
    (void)state;
    const int B = 2, T = TMAX;
    int32_t x[2 * TMAX], in[2 * TMAX], step_ids[2];
    float *full = malloc(sizeof *full * B * T * V), *inc = malloc(sizeof *inc * B * V);
    for (int variant = 0; variant < 8; variant++) {
        with_hf_options = variant >= 4;
        td_model *m = make_model(1, variant & 1, (variant >> 1) & 1, 11 + (uint64_t)variant);
        random_ids(x, B * T, 12);
        shift(in, x, B, T);
        assert_int_equal(td_model_logits(m, in, B, T, 1, full), TD_OK);
        for (int nt = 1; nt <= 3; nt++) {
            tdi_kv_cache *kv = NULL;
            assert_int_equal(tdi_kv_cache_create(m->m, B, T, 3, &kv), TD_OK);
            double worst = 0.0;
            for (int pos = 0; pos < T; pos++) {
                for (int b = 0; b < B; b++) step_ids[b] = in[b * T + pos];
                tdi_model_step(m->m, kv, step_ids, B, pos, inc, test_pool(nt));
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < V; j++) {
                        float f = full[((size_t)b * T + pos) * V + j], g = inc[(size_t)b * V + j];
                        if (j == MASK) {
                            assert_true(isinf(g) && g < 0);
                            continue;
                        }
                        worst = fmax(worst, fabs((double)f - g));
                    }
            }
            if (worst > 1e-4) fail_msg("variant %d: cached logits differ by %g", variant, worst);
            tdi_kv_cache_free(kv);
        }
        td_model_free(m);
    }
    with_hf_options = 0;
    free(full);
    free(inc);
}

static td_sampler *ltr_sampler(const td_model *m, const td_schedule *sch, float temperature,
                               int32_t max_batch, int32_t n_threads)
{
    td_sampler_config c;
    assert_int_equal(td_sampler_config_default(&c), TD_OK);
    c.strategy = TD_SAMPLER_LEFT_TO_RIGHT;
    c.temperature = temperature;
    c.max_batch = max_batch;
    c.n_threads = n_threads;
    c.top_p = 0.95f;
    c.seed = 42;
    td_sampler *s = NULL;
    assert_int_equal(td_sampler_create(m, sch, &c, &s), TD_OK);
    return s;
}

static td_schedule *linear_schedule(void)
{
    td_schedule_config sc;
    td_schedule *sch = NULL;
    assert_int_equal(td_schedule_config_default(&sc, TD_SCHEDULE_LINEAR), TD_OK);
    assert_int_equal(td_schedule_create(&sc, NULL, &sch), TD_OK);
    return sch;
}

static void test_sampler_strategy_needs_matching_model(void **state)
{
    (void)state;
    td_schedule *sch = linear_schedule();
    td_model *bi = make_model(0, TD_POS_ROPE, TD_NORM_PRE, 1);
    td_model *ar = make_model(1, TD_POS_ROPE, TD_NORM_PRE, 1);
    td_sampler_config c;
    assert_int_equal(td_sampler_config_default(&c), TD_OK);
    td_sampler *s = NULL;
    c.strategy = TD_SAMPLER_LEFT_TO_RIGHT;
    assert_int_equal(td_sampler_create(bi, sch, &c, &s), TD_ERR_INVALID_ARG);
    assert_null(s);
    assert_non_null(strstr(td_last_error_message(), "needs a causal model"));
    for (int32_t k = TD_SAMPLER_ANCESTRAL; k <= TD_SAMPLER_ENTROPY; k++) {
        c.strategy = k;
        assert_int_equal(td_sampler_create(ar, sch, &c, &s), TD_ERR_INVALID_ARG);
        assert_non_null(strstr(td_last_error_message(), "TD_SAMPLER_LEFT_TO_RIGHT only"));
    }
    c.strategy = 5;
    assert_int_equal(td_sampler_create(ar, sch, &c, &s), TD_ERR_INVALID_ARG);
    td_model_free(ar);
    td_model_free(bi);
    td_schedule_free(sch);
}

typedef struct seen {
    int calls;
    int32_t last_step, n_steps, changed[8];
    int n_changed;
} seen;

static int32_t on_step(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                       int32_t batch, int32_t seq_len, const int32_t *changed,
                       int32_t n_changed)
{
    seen *s = user;
    (void)canvas;
    (void)batch;
    (void)seq_len;
    assert_int_equal(step, s->calls);
    s->calls++;
    s->n_steps = n_steps;
    s->n_changed = n_changed;
    for (int i = 0; i < n_changed && i < 8; i++) s->changed[i] = changed[i];
    return 0;
}

/* Greedy left-to-right generation equals a loop that runs the full forward
 * pass over the prefix at every position and takes the argmax; the prompt
 * and every other given token stay; calls and callbacks are counted. */
static void test_greedy_equals_full_forward_loop(void **state)
{
    (void)state;
    const int T = 14;
    td_schedule *sch = linear_schedule();
    td_model *m = make_model(1, TD_POS_ROPE, TD_NORM_PRE, 21);
    int32_t canvas[14], ref[14], in[14];
    for (int i = 0; i < T; i++) canvas[i] = MASK;
    canvas[0] = 3;
    canvas[1] = 4;
    canvas[7] = 9; /* a given token in the middle is context, not generated */
    canvas[T - 1] = 5; /* after the last [MASK]: never run */
    memcpy(ref, canvas, sizeof ref);
    float *logits = malloc(sizeof *logits * T * V);
    for (int pos = 0; pos < T; pos++) {
        if (ref[pos] != MASK) continue;
        shift(in, ref, 1, T);
        assert_int_equal(td_model_logits(m, in, 1, pos + 1, 1, logits), TD_OK);
        const float *row = logits + (size_t)pos * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (row[j] > row[best]) best = j;
        ref[pos] = best;
    }
    td_sampler *s = ltr_sampler(m, sch, 0.0f, 1, 1);
    td_sample_stats st = { .struct_size = sizeof st };
    seen sn = { 0 };
    assert_int_equal(td_sampler_generate(s, canvas, 1, T, on_step, &sn, &st), TD_OK);
    assert_memory_equal(canvas, ref, sizeof ref);
    assert_int_equal(st.model_calls, T - 1);
    assert_int_equal(st.steps, T - 4);
    assert_int_equal(st.tokens_revealed, T - 4);
    assert_int_equal(st.cached_steps, 0);
    assert_int_equal(sn.calls, T - 4);
    assert_int_equal(sn.n_steps, T - 4);
    assert_int_equal(sn.n_changed, 1);
    assert_int_equal(sn.changed[0], T - 2);
    /* Nothing to generate: no model call. */
    assert_int_equal(td_sampler_generate(s, canvas, 1, T, NULL, NULL, &st), TD_OK);
    assert_int_equal(st.model_calls, 0);
    td_sampler_free(s);
    free(logits);
    td_model_free(m);
    td_schedule_free(sch);
}

/* With temperature and top-p, the sampled tokens do not depend on the
 * thread count; each sequence draws from its own stream. */
static void test_threads_give_the_same_bits(void **state)
{
    (void)state;
    const int B = 3, T = TMAX;
    td_schedule *sch = linear_schedule();
    td_model *m = make_model(1, TD_POS_LEARNED, TD_NORM_PRE, 31);
    int32_t first[3 * TMAX], canvas[3 * TMAX];
    for (int nt = 1; nt <= 3; nt++) {
        td_sampler *s = ltr_sampler(m, sch, 1.0f, B, nt);
        for (int i = 0; i < B * T; i++) canvas[i] = i % T < 2 ? 1 + i / T : MASK;
        assert_int_equal(td_sampler_generate(s, canvas, B, T, NULL, NULL, NULL), TD_OK);
        for (int i = 0; i < B * T; i++) {
            assert_true(canvas[i] >= 0 && canvas[i] < V && canvas[i] != MASK);
            if (i % T < 2) assert_int_equal(canvas[i], 1 + i / T);
        }
        if (nt == 1)
            memcpy(first, canvas, sizeof first);
        else
            assert_memory_equal(canvas, first, sizeof first);
        td_sampler_free(s);
    }
    td_model_free(m);
    td_schedule_free(sch);
}

/* Every allocation of td_sampler_create failing in turn: TD_ERR_NOMEM and
 * nothing leaked; then generation allocates nothing. */
static void test_allocation_failures(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_model_config mc;
    assert_int_equal(td_model_config_default(&mc), TD_OK);
    mc.vocab_size = V;
    mc.mask_id = MASK;
    mc.max_seq_len = TMAX;
    mc.d_model = 16;
    mc.n_layers = 2;
    mc.n_heads = 2;
    mc.d_ff = 32;
    mc.causal = 1;
    td_model *m = NULL;
    assert_int_equal(td_model_create(&mc, 1, &a, &m), TD_OK);
    td_schedule *sch = linear_schedule();
    long base = h.live;
    td_sampler_config c;
    assert_int_equal(td_sampler_config_default(&c), TD_OK);
    c.strategy = TD_SAMPLER_LEFT_TO_RIGHT;
    c.max_batch = 2;
    c.top_k = 3;
    c.n_threads = 2;
    for (long k = 0;; k++) {
        h.fail_at = h.calls + k;
        td_sampler *s = (td_sampler *)&s;
        td_status st = td_sampler_create(m, sch, &c, &s);
        if (st == TD_OK) {
            h.fail_at = h.calls;
            long calls = h.calls;
            int32_t canvas[2 * TMAX];
            for (int i = 0; i < 2 * TMAX; i++) canvas[i] = MASK;
            assert_int_equal(td_sampler_generate(s, canvas, 2, TMAX, NULL, NULL, NULL), TD_OK);
            assert_int_equal(h.calls, calls);
            td_sampler_free(s);
            assert_int_equal(h.live, base);
            break;
        }
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_null(s);
        assert_int_equal(h.live, base);
        assert_true(k < 50);
    }
    td_schedule_free(sch);
    td_model_free(m);
    assert_int_equal(h.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_checkpoint),
        cmocka_unit_test(test_later_tokens_never_change_earlier_logits),
        cmocka_unit_test(test_trainer_next_token),
        cmocka_unit_test(test_eval_exact_nll),
        cmocka_unit_test(test_gen_perplexity),
        cmocka_unit_test(test_cached_logits_equal_full_forward),
        cmocka_unit_test(test_sampler_strategy_needs_matching_model),
        cmocka_unit_test(test_greedy_equals_full_forward_loop),
        cmocka_unit_test(test_threads_give_the_same_bits),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
