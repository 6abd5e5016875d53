/* Evaluation: the NELBO and the per-rate curve against an independent
 * brute-force computation (masks regenerated from docs/evaluation.md's RNG
 * scheme, one sequence at a time through td_model_logits, cross-entropy in
 * double), against closed forms for a model with constant logits, the
 * ∫ℓ(r)dr ≈ NELBO identity on a trained model, determinism, argument checks
 * and allocation failures. */
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
#include "common/toy.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

enum { T = 16, V = 12, MASK = 10, ARGMAX = 3, N_WIN = 48, TAIL = 5 };
enum { N_TOK = N_WIN * T + TAIL };

static td_model *tiny_model(const td_allocator *a)
{
    return toy_model_create(V, MASK, T, 11, a);
}

/* A stream that counts up modulo 10 and restarts at a random digit now and
 * then: predictable from the neighbours, but not trivially. Ids 0..9 (and 11
 * once in a while, a rare token); never [MASK]. */
static void make_stream(int32_t *tok, int64_t n, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    int32_t x = 0;
    for (int64_t i = 0; i < n; i++) {
        double u = tdi_rng_f64(&r);
        if (u < 0.1) x = (int32_t)tdi_rng_below(&r, 10);
        else x = (x + 1) % 10;
        tok[i] = u > 0.98 ? 11 : x;
    }
}

static td_eval_config eval_config(void)
{
    td_eval_config c;
    assert_int_equal(td_eval_config_default(&c), TD_OK);
    c.seq_len = T;
    c.batch_size = 7; /* not a divisor of anything: batches straddle windows */
    c.n_times = 8;
    c.seed = 5;
    return c;
}

/* ---- the independent computation --------------------------------------- */

/* The documented mask scheme, re-derived from its description. */
static void doc_mask(uint8_t *hidden, uint64_t seed, double t, int64_t window)
{
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    tdi_rng key, r;
    tdi_rng_stream(&key, seed, bits);
    tdi_rng_stream(&r, tdi_rng_u64(&key), (uint64_t)window);
    for (int i = 0; i < T; i++) hidden[i] = tdi_rng_f64(&r) < t;
}

static int64_t doc_window(int64_t j, int64_t n_seq, int64_t n_windows)
{
    return j * n_windows / n_seq;
}

/* Cross-entropy of every position of one masked window, in double, from
 * the public logits of the whole sequence; argmax hits on the side. These
 * logits come from another computation than the library's (one sequence at
 * a time, not a batch), which may round differently, so a hit is a range:
 * sure when the right token leads every other by more than HIT_TOL, possible
 * when it is within HIT_TOL of the best. */
#define HIT_TOL 1e-4
typedef struct position_loss { double ce[T]; int hit_sure[T], hit_possible[T]; } position_loss;

static void model_losses(const td_model *m, const int32_t *clean, const uint8_t *hidden,
                         position_loss *out)
{
    int32_t z[T];
    float logits[T * V];
    for (int i = 0; i < T; i++) z[i] = hidden[i] ? MASK : clean[i];
    assert_int_equal(td_model_logits(m, z, 1, T, 1, logits), TD_OK);
    for (int i = 0; i < T; i++) {
        const float *l = logits + i * V;
        double mx = -INFINITY, others = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) {
            if (l[j] > mx) mx = l[j];
            if (j != clean[i] && l[j] > others) others = l[j];
        }
        for (int j = 0; j < V; j++) s += exp((double)l[j] - mx);
        const double mine = l[clean[i]], tol = HIT_TOL * (1 + fabs(mx));
        out->ce[i] = log(s) + mx - mine;
        out->hit_sure[i] = mine > others + tol;
        out->hit_possible[i] = mine >= mx - tol;
    }
}

typedef struct brute { double nelbo, se; } brute;

/* cost(x): when non-NULL, the loss of token x at every masked position (a
 * model with constant logits); otherwise the model is run. */
static brute brute_nelbo(const td_model *m, const double *cost, const int32_t *tok,
                         int64_t n_windows, int64_t n_seq, int K, uint64_t seed)
{
    double sum = 0, sum2 = 0;
    for (int64_t j = 0; j < n_seq; j++) {
        const int64_t w = doc_window(j, n_seq, n_windows);
        const int32_t *x = tok + w * T;
        double est = 0;
        for (int k = 0; k < K; k++) {
            double t = (k + 0.5) / K;
            uint8_t hidden[T];
            doc_mask(hidden, seed, t, w);
            position_loss pl;
            if (!cost) model_losses(m, x, hidden, &pl);
            double ce = 0;
            for (int i = 0; i < T; i++)
                if (hidden[i]) ce += cost ? cost[x[i]] : pl.ce[i];
            est += ce / (t * T);
        }
        est /= K;
        sum += est;
        sum2 += est * est;
    }
    brute b;
    b.nelbo = sum / n_seq;
    b.se = sqrt((sum2 / n_seq - b.nelbo * b.nelbo) * n_seq / (n_seq - 1) / n_seq);
    return b;
}

/* loss and accuracy at one rate; `argmax` is the constant model's
 * prediction when cost is given. The accuracy is a range [acc[0], acc[1]]
 * (position_loss), a single value for the constant model. */
static void brute_rate(const td_model *m, const double *cost, int argmax, const int32_t *tok,
                       int64_t n_seq, double r, uint64_t seed, double *loss, double acc[2])
{
    double ce = 0;
    long hidden_n = 0, hits = 0, maybe = 0;
    for (int64_t w = 0; w < n_seq; w++) {
        const int32_t *x = tok + w * T;
        uint8_t hidden[T];
        doc_mask(hidden, seed, r, w);
        position_loss pl;
        if (!cost) model_losses(m, x, hidden, &pl);
        for (int i = 0; i < T; i++) {
            if (!hidden[i]) continue;
            hidden_n++;
            ce += cost ? cost[x[i]] : pl.ce[i];
            hits += cost ? x[i] == argmax : pl.hit_sure[i];
            maybe += cost ? x[i] == argmax : pl.hit_possible[i];
        }
    }
    *loss = ce / (double)hidden_n;
    acc[0] = (double)hits / (double)hidden_n;
    acc[1] = (double)maybe / (double)hidden_n;
}

/* ---- a model whose logits are out.b at every position ------------------ */

/* Zero weights give a zero hidden state (LayerNorm of 0 is its bias, 0), so
 * the logits are out.b: −log p(x | z) = cost[x] whatever z is. */
static void make_constant(td_model *m, const float *bias, double *cost)
{
    tdi_model *im = m->m;
    memset(im->params, 0, im->n_floats * sizeof(float));
    memcpy(im->params + im->out_b, bias, V * sizeof(float));
    double z = 0;
    for (int j = 0; j < V; j++)
        if (j != MASK) z += exp((double)bias[j]);
    for (int j = 0; j < V; j++) cost[j] = log(z) - bias[j];
}

static const float generic_bias[V] = { 0.3f, -0.2f, 0.1f, 0.9f, -0.5f, 0.0f,
                                       0.4f, -0.1f, 0.2f, -0.3f, 5.0f, -1.0f };

static void test_constant_model_nelbo(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 1);
    td_model *m = tiny_model(NULL);
    double cost[V];
    make_constant(m, generic_bias, cost);

    td_eval_config c = eval_config();
    td_eval_result r;
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_OK);
    assert_int_equal(r.n_sequences, N_WIN);
    assert_int_equal(r.n_tokens, N_WIN * T);

    /* The same estimator, from the documented masks and the closed form. */
    brute b = brute_nelbo(NULL, cost, tok, N_WIN, N_WIN, c.n_times, c.seed);
    assert_true(fabs(r.nelbo_nats - b.nelbo) < 1e-6 * b.nelbo);
    assert_true(fabs(r.std_error_nats - b.se) < 1e-5 * b.se);

    /* In expectation over the masks the estimator is exactly the
     * cross-entropy of the unigram softmax(out.b) against the data. */
    double h = 0;
    for (int i = 0; i < N_WIN * T; i++) h += cost[tok[i]];
    h /= N_WIN * T;
    assert_true(fabs(r.nelbo_nats - h) < 4 * r.std_error_nats);

    assert_true(fabs(r.nelbo_bits - r.nelbo_nats / log(2.0)) < 1e-12);
    assert_true(fabs(r.perplexity_bound - exp(r.nelbo_nats)) < 1e-9 * r.perplexity_bound);
    assert_true(isnan(r.bits_per_byte)); /* bytes_per_token unknown */
    c.bytes_per_token = 2.5;
    td_eval_result r2;
    r2.struct_size = sizeof r2;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r2), TD_OK);
    assert_true(fabs(r2.bits_per_byte - r.nelbo_bits / 2.5) < 1e-12);

    /* Over many seeds the mean converges on h: the estimator is unbiased. */
    double mean = 0;
    const int n_seeds = 40;
    for (int s = 0; s < n_seeds; s++) {
        c.seed = 1000 + (uint64_t)s;
        assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r2), TD_OK);
        mean += r2.nelbo_nats / n_seeds;
    }
    /* The masks' share of the spread only: the data are fixed. */
    assert_true(fabs(mean - h) < 4 * r.std_error_nats / sqrt(n_seeds));
    td_model_free(m);
}

static void test_constant_model_rates_flat(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 2);
    td_model *m = tiny_model(NULL);
    double cost[V];
    td_eval_config c = eval_config();
    double rates[19], loss[19], acc[19];
    for (int j = 0; j < 19; j++) rates[j] = 0.05 * (j + 1);

    /* Every token of the data costs the same: the curve is flat at that cost
     * for any masks, exactly, and the argmax (token 3, boosted, and absent
     * from this data) is never right. */
    float flat[V];
    for (int j = 0; j < V; j++) flat[j] = 0.0f;
    flat[ARGMAX] = 1.0f;
    int32_t no3[N_TOK];
    for (int i = 0; i < N_TOK; i++) no3[i] = tok[i] == ARGMAX || tok[i] == 11 ? 0 : tok[i];
    make_constant(m, flat, cost);
    assert_int_equal(td_eval_rates(m, no3, N_TOK, rates, 19, &c, loss, acc), TD_OK);
    for (int j = 0; j < 19; j++) {
        assert_true(fabs(loss[j] - cost[0]) < 1e-6);
        assert_true(acc[j] == 0.0);
    }

    /* Generic out.b: the curve matches the documented masks exactly and is
     * flat within its sampling error around the unigram cross-entropy; the
     * accuracy is the frequency of the argmax token among hidden tokens. */
    make_constant(m, generic_bias, cost);
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 19, &c, loss, acc), TD_OK);
    double h = 0, h2 = 0, freq = 0;
    for (int i = 0; i < N_WIN * T; i++) {
        h += cost[tok[i]];
        h2 += cost[tok[i]] * cost[tok[i]];
        freq += tok[i] == ARGMAX;
    }
    h /= N_WIN * T;
    freq /= N_WIN * T;
    const double sd = sqrt(h2 / (N_WIN * T) - h * h);
    for (int j = 0; j < 19; j++) {
        double bl, ba[2];
        brute_rate(NULL, cost, ARGMAX, tok, N_WIN, rates[j], c.seed, &bl, ba);
        assert_true(fabs(loss[j] - bl) < 1e-6 * bl);
        assert_true(fabs(acc[j] - ba[0]) < 1e-12);
        /* n ≈ rate · tokens hidden; the finite population shrinks the error. */
        double n = rates[j] * N_WIN * T, fpc = sqrt(1 - rates[j] + 1.0 / n);
        assert_true(fabs(loss[j] - h) < 4.5 * sd / sqrt(n) * fpc);
        assert_true(fabs(acc[j] - freq) < 4.5 * sqrt(freq * (1 - freq) / n) * fpc);
    }
    td_model_free(m);
}

/* ---- a trained model ---------------------------------------------------- */

/* Trained once for the tests that need a model with a non-trivial curve. */
static td_model *g_trained;

static int train_once(void **state)
{
    (void)state;
    td_model *m = tiny_model(NULL);
    td_schedule_config sc;
    td_schedule *s;
    assert_int_equal(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR), TD_OK);
    assert_int_equal(td_schedule_create(&sc, NULL, &s), TD_OK);
    td_trainer_config tc;
    assert_int_equal(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = 8;
    tc.seq_len = T;
    tc.lr = 3e-3f;
    tc.min_lr = 3e-4f;
    tc.warmup_steps = 5;
    tc.total_steps = 400;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &tc, &tr), TD_OK);
    int32_t batch[8 * T];
    for (int i = 0; i < 400; i++) {
        make_stream(batch, 8 * T, 100 + (uint64_t)i);
        assert_int_equal(td_trainer_step(tr, batch, NULL), TD_OK);
    }
    td_trainer_free(tr);
    td_schedule_free(s);
    g_trained = m;
    return 0;
}

static int free_trained(void **state)
{
    (void)state;
    td_model_free(g_trained);
    return 0;
}

static void test_trained_model_against_brute_force(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 3);
    const td_model *m = g_trained;
    td_eval_config c = eval_config();
    c.max_sequences = 20; /* windows spread over the 48 */
    td_eval_result r;
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_OK);
    assert_int_equal(r.n_sequences, 20);
    brute b = brute_nelbo(m, NULL, tok, N_WIN, 20, c.n_times, c.seed);
    assert_true(fabs(r.nelbo_nats - b.nelbo) < 1e-5 * b.nelbo);
    assert_true(fabs(r.std_error_nats - b.se) < 1e-4 * b.se);

    double rates[3] = { 0.15, 0.5, 1.0 }, loss[3], acc[3];
    c.max_sequences = 0;
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 3, &c, loss, acc), TD_OK);
    for (int j = 0; j < 3; j++) {
        double bl, ba[2];
        brute_rate(m, NULL, 0, tok, N_WIN, rates[j], c.seed, &bl, ba);
        assert_true(fabs(loss[j] - bl) < 1e-5 * bl);
        assert_true(acc[j] >= ba[0] - 1e-12 && acc[j] <= ba[1] + 1e-12);
    }
    /* It learnt something: context helps at 15%, and nothing is left to
     * help at 100%. */
    assert_true(loss[0] < 0.7 * loss[2]);
    assert_true(acc[0] > acc[2]);
}

/* ∫_0^1 ℓ(r) dr ≈ NELBO. On the NELBO's own grid the masks are the same
 * and the two differ only in dividing each time's loss by the hidden count
 * or by its expectation; on another grid and seed, also by the masks'
 * sampling error and the quadrature. Either way the difference is Monte
 * Carlo noise of the masks alone (the windows are the same), which the
 * standard error across windows bounds from above. */
static void test_rate_curve_integrates_to_nelbo(void **state)
{
    (void)state;
    enum { K = 20, BIG = 400 * T };
    static int32_t tok[BIG];
    make_stream(tok, BIG, 4);
    const td_model *m = g_trained;
    td_eval_config c = eval_config();
    c.n_times = K;
    c.batch_size = 32;
    td_eval_result r;
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, BIG, &c, &r), TD_OK);

    double rates[K], loss[K], integral = 0;
    for (int k = 0; k < K; k++) rates[k] = (k + 0.5) / K;
    assert_int_equal(td_eval_rates(m, tok, BIG, rates, K, &c, loss, NULL), TD_OK);
    for (int k = 0; k < K; k++) integral += loss[k] / K;
    assert_true(loss[0] < 0.7 * loss[K - 1]); /* far from flat */

    enum { K2 = 10 };
    double rates2[K2], loss2[K2], integral2 = 0;
    for (int k = 0; k < K2; k++) rates2[k] = 0.05 + 0.1 * k;
    c.seed = 99;
    assert_int_equal(td_eval_rates(m, tok, BIG, rates2, K2, &c, loss2, NULL), TD_OK);
    for (int k = 0; k < K2; k++) integral2 += loss2[k] / K2;
    print_message("NELBO %.4f +- %.4f; integral of the rate curve: %.4f on the same masks, "
                  "%.4f on 10 rates with another seed\n",
                  r.nelbo_nats, r.std_error_nats, integral, integral2);
    assert_true(fabs(integral - r.nelbo_nats) < r.std_error_nats);
    assert_true(fabs(integral2 - r.nelbo_nats) < 2 * r.std_error_nats);
}

/* ---- determinism -------------------------------------------------------- */

static void test_deterministic(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 5);
    td_model *m = tiny_model(NULL);
    td_eval_config c = eval_config();
    td_eval_result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.struct_size = b.struct_size = sizeof a;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &a), TD_OK);
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &b), TD_OK);
    assert_memory_equal(&a, &b, sizeof a);
    c.n_threads = 2;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &b), TD_OK);
    assert_memory_equal(&a, &b, sizeof a);

    /* The masks do not depend on the batch size; the sums only change by
     * GEMM rounding. */
    const int32_t sizes[3] = { 1, 8, 64 };
    for (int i = 0; i < 3; i++) {
        c.batch_size = sizes[i];
        assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &b), TD_OK);
        assert_true(fabs(a.nelbo_nats - b.nelbo_nats) < 1e-6 * a.nelbo_nats);
    }
    /* Another seed, other masks. */
    c = eval_config();
    c.seed = 6;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &b), TD_OK);
    assert_true(a.nelbo_nats != b.nelbo_nats);

    double rates[4] = { 0.9, 0.15, 0.5, 0.05 }, l1[4], a1[4], l2[4], a2[4];
    c = eval_config();
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 4, &c, l1, a1), TD_OK);
    c.n_threads = 2;
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 4, &c, l2, a2), TD_OK);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(a1, a2, sizeof a1);
    /* A rate's masks do not depend on the other rates asked for. Its windows
     * sit elsewhere in the batches, which may round differently: the loss
     * agrees to rounding, the accuracy within the independent computation's
     * range (an argmax within rounding of a tie may go either way). */
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates + 1, 1, &c, l2, a2), TD_OK);
    assert_true(fabs(l2[0] - l1[1]) < 1e-6 * l1[1]);
    double bl, ba[2];
    brute_rate(m, NULL, 0, tok, N_WIN, rates[1], c.seed, &bl, ba);
    assert_true(a1[1] >= ba[0] - 1e-12 && a1[1] <= ba[1] + 1e-12);
    assert_true(a2[0] >= ba[0] - 1e-12 && a2[0] <= ba[1] + 1e-12);
    td_model_free(m);
}

static void test_one_window_and_empty_rates(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 6);
    td_model *m = tiny_model(NULL);
    td_eval_config c = eval_config();
    td_eval_result r;
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, T + 3, &c, &r), TD_OK);
    assert_int_equal(r.n_sequences, 1);
    assert_true(isfinite(r.nelbo_nats) && isnan(r.std_error_nats));

    /* At a tiny rate one window may hide nothing at all: NaN, not 0. */
    double rate = 1e-9, loss = 0, acc = 0;
    assert_int_equal(td_eval_rates(m, tok, T, &rate, 1, &c, &loss, &acc), TD_OK);
    assert_true(isnan(loss) && isnan(acc));

    td_model_free(m);
}

static void test_non_finite_model(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 7);
    td_model *m = tiny_model(NULL);
    m->m->params[m->m->lnf_w] = NAN;
    td_eval_config c = eval_config();
    td_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_ERR_NUMERIC);
    assert_non_null(strstr(td_last_error_message(), "not finite"));
    assert_true(r.nelbo_nats == 0.0);
    double rate = 0.5, loss = -1;
    assert_int_equal(td_eval_rates(m, tok, N_TOK, &rate, 1, &c, &loss, NULL), TD_ERR_NUMERIC);
    assert_true(loss == -1);
    td_model_free(m);
}

/* ---- argument checks and allocation failures ---------------------------- */

static void expect_bad_config(const td_model *m, const int32_t *tok, td_eval_config c,
                              const char *word)
{
    td_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), c.struct_size > sizeof c
                                                               ? TD_ERR_VERSION
                                                               : TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), word));
    assert_true(r.nelbo_nats == 0.0 && r.n_sequences == 0);
    double rate = 0.5, loss = -1;
    assert_int_equal(td_eval_rates(m, tok, N_TOK, &rate, 1, &c, &loss, NULL),
                     c.struct_size > sizeof c ? TD_ERR_VERSION : TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), word));
    assert_true(loss == -1);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 8);
    td_model *m = tiny_model(NULL);
    td_eval_config c = eval_config(), bad;
    td_eval_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    assert_int_equal(td_eval_config_default(NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_eval_nelbo(NULL, tok, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "m is NULL"));
    assert_int_equal(td_eval_nelbo(m, NULL, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "tokens"));
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, NULL, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "cfg"));
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, NULL), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "out"));
    r.struct_size = 4;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "struct_size"));
    r.struct_size = sizeof r;

    bad = c; bad.seq_len = 0;           expect_bad_config(m, tok, bad, "seq_len");
    bad = c; bad.seq_len = T + 1;       expect_bad_config(m, tok, bad, "max_seq_len");
    bad = c; bad.batch_size = 0;        expect_bad_config(m, tok, bad, "batch_size");
    bad = c; bad.n_threads = 0;         expect_bad_config(m, tok, bad, "n_threads");
    bad = c; bad.n_times = 0;           expect_bad_config(m, tok, bad, "n_times");
    bad = c; bad.n_times = 70000;       expect_bad_config(m, tok, bad, "n_times");
    bad = c; bad.max_sequences = -1;    expect_bad_config(m, tok, bad, "max_sequences");
    bad = c; bad.bytes_per_token = -1;  expect_bad_config(m, tok, bad, "bytes_per_token");
    bad = c; bad.bytes_per_token = NAN; expect_bad_config(m, tok, bad, "bytes_per_token");
    bad = c; bad.struct_size = 8;       expect_bad_config(m, tok, bad, "struct_size");
    bad = c; bad.reserved0 = 1;         expect_bad_config(m, tok, bad, "reserved0");

    assert_int_equal(td_eval_nelbo(m, tok, T - 1, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "n_tokens"));
    assert_int_equal(td_eval_nelbo(m, tok, -5, &c, &r), TD_ERR_INVALID_ARG);
    tok[100] = MASK;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "tokens[100]"));
    assert_non_null(strstr(td_last_error_message(), "mask id"));
    tok[100] = V;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "tokens[100]"));
    tok[100] = -1;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_ERR_INVALID_ARG);
    /* The tail beyond the last whole window is not read. */
    tok[100] = 0;
    tok[N_TOK - 1] = MASK;
    assert_int_equal(td_eval_nelbo(m, tok, N_TOK, &c, &r), TD_OK);
    tok[N_TOK - 1] = 0;

    double rates[2] = { 0.5, 0.25 }, loss[2] = { -1, -1 }, acc[2];
    assert_int_equal(td_eval_rates(m, tok, N_TOK, NULL, 2, &c, loss, acc), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "rates"));
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 2, &c, NULL, acc), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "loss_nats"));
    assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 0, &c, loss, acc), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "n_rates"));
    const double bad_rates[4] = { 0.0, -0.1, 1.5, NAN };
    for (int i = 0; i < 4; i++) {
        rates[1] = bad_rates[i];
        assert_int_equal(td_eval_rates(m, tok, N_TOK, rates, 2, &c, loss, acc),
                         TD_ERR_INVALID_ARG);
        assert_non_null(strstr(td_last_error_message(), "rates[1]"));
    }
    assert_true(loss[0] == -1 && loss[1] == -1);
    assert_int_equal(td_eval_rates(NULL, tok, N_TOK, rates, 1, &c, loss, acc),
                     TD_ERR_INVALID_ARG);
    td_model_free(m);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int32_t tok[N_TOK];
    make_stream(tok, N_TOK, 9);
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_model *m = tiny_model(&a);
    const long base = h.live;
    td_eval_config c = eval_config();
    for (int which = 0; which < 2; which++) {
        for (long k = 0;; k++) {
            h.fail_at = h.calls + k;
            td_eval_result r;
            memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            double rate = 0.3, loss = -1;
            td_status st = which == 0 ? td_eval_nelbo(m, tok, N_TOK, &c, &r)
                                      : td_eval_rates(m, tok, N_TOK, &rate, 1, &c, &loss, NULL);
            assert_int_equal(h.live, base);
            if (st == TD_OK) {
                assert_true(k >= 2); /* the scratch block and the workspace */
                break;
            }
            assert_int_equal(st, TD_ERR_NOMEM);
            assert_true(r.nelbo_nats == 0.0 && loss == -1);
            assert_true(k < 20);
        }
    }
    td_model_free(m);
    assert_int_equal(h.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_model_nelbo),
        cmocka_unit_test(test_constant_model_rates_flat),
        cmocka_unit_test(test_trained_model_against_brute_force),
        cmocka_unit_test(test_rate_curve_integrates_to_nelbo),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_one_window_and_empty_rates),
        cmocka_unit_test(test_non_finite_model),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, train_once, free_trained);
}
