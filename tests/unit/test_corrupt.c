/* Absorbing corruption: masking rates against binomial bounds, BERT's
 * 80/10/10 split, and the loss weights checked by Monte Carlo against the
 * quantity they must estimate. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "diffusion/corrupt.h"
#include "diffusion/schedule.h"
#include "util/rng.h"

enum { V = 258, MASK = 256, MAXB = 16, MAXT = 128, MAXN = MAXB * MAXT };

static const tdi_corrupt_vocab vocab = { V, MASK, 0, 256 };

typedef struct batch {
    int32_t clean[MAXN], ids[MAXN], rows[MAXN], targets[MAXN];
    float weights[MAXN];
    double t[MAXB];
    tdi_corruption out;
} batch;

static batch bt; /* large: keep it off the stack */

static void batch_reset(batch *b)
{
    b->out.ids = b->ids;
    b->out.rows = b->rows;
    b->out.targets = b->targets;
    b->out.weights = b->weights;
    b->out.capacity = MAXN;
    b->out.n = 0;
}

static void fill_clean(batch *b, size_t n, int32_t lo, int32_t hi, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) b->clean[i] = lo + (int32_t)tdi_rng_below(&r, (uint64_t)(hi - lo));
}

static tdi_schedule make(tdi_schedule_kind kind)
{
    tdi_schedule s;
    assert_int_equal(tdi_schedule_init(&s, kind), TD_OK);
    return s;
}

static tdi_schedule make_fixed(double r, int bert)
{
    tdi_schedule s = make(TDI_SCHEDULE_FIXED_RATE);
    assert_int_equal(tdi_schedule_set_rate(&s, r), TD_OK);
    assert_int_equal(tdi_schedule_set_bert_corrupt(&s, bert), TD_OK);
    return s;
}

/* |observed − expected| within z binomial standard deviations. */
static void assert_binomial(long hits, long trials, double p, double z)
{
    double sd = sqrt((double)trials * p * (1.0 - p));
    double diff = fabs((double)hits - (double)trials * p);
    if (!(diff <= z * sd + 1e-9))
        fail_msg("%ld of %ld, expected p = %.6f: off by %.2f sd", hits, trials, p,
                 sd > 0 ? diff / sd : INFINITY);
}

/* The output is consistent with the input: masked where scored, clean
 * elsewhere, rows ascending, targets the clean ids, weights w(t_b)/(T·B). */
static void check_structure(const tdi_schedule *s, const batch *b, size_t B, size_t T)
{
    size_t k = 0;
    for (size_t r = 0; r < B * T; r++) {
        int scored = k < b->out.n && (size_t)b->rows[k] == r;
        if (scored) {
            assert_int_equal(b->targets[k], b->clean[r]);
            float w = (float)(tdi_schedule_weight(s, b->t[r / T]) / ((double)T * (double)B));
            assert_true(b->weights[k] == w);
            if (!s->bert_corrupt) assert_int_equal(b->ids[r], MASK);
            k++;
        } else {
            assert_int_equal(b->ids[r], b->clean[r]);
        }
    }
    assert_int_equal(k, b->out.n);
}

static void test_masking_fraction_matches_schedule(void **state)
{
    (void)state;
    enum { B = 8, T = 128, DRAWS = 150 };
    const double times[] = { 0.0, 0.03, 0.5, 0.97, 1.0 };
    fill_clean(&bt, B * T, 0, 256, 1);
    tdi_rng rng;
    tdi_rng_seed(&rng, 2);
    for (int kind = 0; kind <= 4; kind++) {
        tdi_schedule s = make((tdi_schedule_kind)kind);
        for (size_t ti = 0; ti < sizeof times / sizeof times[0]; ti++) {
            double p = tdi_schedule_mask_prob(&s, times[ti]);
            long hits = 0;
            for (int d = 0; d < DRAWS; d++) {
                batch_reset(&bt);
                for (int i = 0; i < B; i++) bt.t[i] = times[ti];
                assert_int_equal(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, &bt.out),
                                 TD_OK);
                if (d < 3) check_structure(&s, &bt, B, T);
                hits += (long)bt.out.n;
            }
            assert_binomial(hits, (long)B * T * DRAWS, p, 5.0);
            if (p == 0.0) assert_int_equal(hits, 0);
            if (p == 1.0) assert_int_equal(hits, (long)B * T * DRAWS);
        }
    }
}

/* Each sequence is masked at its own rate, and a sequence with nothing
 * masked has no scored row, so it contributes zero. */
static void test_per_sequence_times(void **state)
{
    (void)state;
    enum { B = 4, T = 128, DRAWS = 400 };
    const double times[B] = { 0.0, 0.1, 0.6, 0.9 };
    tdi_schedule s = make(TDI_SCHEDULE_COSINE);
    fill_clean(&bt, B * T, 0, 256, 3);
    tdi_rng rng;
    tdi_rng_seed(&rng, 4);
    long hits[B] = { 0 };
    for (int d = 0; d < DRAWS; d++) {
        batch_reset(&bt);
        memcpy(bt.t, times, sizeof times);
        assert_int_equal(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, &bt.out), TD_OK);
        check_structure(&s, &bt, B, T);
        for (size_t k = 0; k < bt.out.n; k++) hits[bt.rows[k] / T]++;
    }
    assert_int_equal(hits[0], 0);
    for (int b = 1; b < B; b++)
        assert_binomial(hits[b], (long)T * DRAWS, tdi_schedule_mask_prob(&s, times[b]), 5.0);
}

/* BERT: selected at rate r, all scored; 80% [MASK], 10% a random token,
 * 10% unchanged. Clean ids outside the random range tell "random" from
 * "unchanged" apart. */
static void test_bert_80_10_10(void **state)
{
    (void)state;
    enum { B = 16, T = 128, DRAWS = 300, LO = 10, HI = 200 };
    const tdi_corrupt_vocab v = { V, MASK, LO, HI };
    tdi_schedule s = make_fixed(0.15, 1);
    fill_clean(&bt, B * T, 200, 256, 5);
    tdi_rng rng;
    tdi_rng_seed(&rng, 6);
    long selected = 0, masked = 0, random = 0, same = 0;
    static long per_token[HI];
    memset(per_token, 0, sizeof per_token);
    for (int d = 0; d < DRAWS; d++) {
        batch_reset(&bt);
        assert_int_equal(tdi_schedule_draw_times(&s, NULL, B, bt.t), TD_OK);
        assert_int_equal(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &rng, &bt.out), TD_OK);
        check_structure(&s, &bt, B, T);
        selected += (long)bt.out.n;
        for (size_t k = 0; k < bt.out.n; k++) {
            assert_true(bt.weights[k] == (float)(1.0 / (0.15 * T * B)));
            int32_t z = bt.ids[bt.rows[k]];
            if (z == MASK) {
                masked++;
            } else if (z == bt.targets[k]) {
                same++;
            } else {
                assert_true(z >= LO && z < HI);
                random++;
                per_token[z]++;
            }
        }
    }
    assert_binomial(selected, (long)B * T * DRAWS, 0.15, 5.0);
    assert_binomial(masked, selected, 0.8, 5.0);
    assert_binomial(random, selected, 0.1, 5.0);
    assert_binomial(same, selected, 0.1, 5.0);
    /* Random replacements are uniform over [LO, HI): chi-square, 189 dof. */
    double chi2 = 0, e = (double)random / (HI - LO);
    for (int z = LO; z < HI; z++) chi2 += (per_token[z] - e) * (per_token[z] - e) / e;
    assert_true(chi2 < 265.0); /* p ≈ 0.0002 */
    for (int z = 0; z < LO; z++) assert_int_equal(per_token[z], 0);
}

/* When the clean token lies in the random range, the random draw may give it
 * back: unchanged becomes 0.1 + 0.1/n, as in BERT. */
static void test_bert_random_may_repeat(void **state)
{
    (void)state;
    enum { B = 16, T = 128, DRAWS = 300, LO = 0, HI = 4 };
    const tdi_corrupt_vocab v = { V, MASK, LO, HI };
    tdi_schedule s = make_fixed(0.3, 1);
    fill_clean(&bt, B * T, LO, HI, 7);
    tdi_rng rng;
    tdi_rng_seed(&rng, 8);
    long selected = 0, same = 0, masked = 0;
    for (int d = 0; d < DRAWS; d++) {
        batch_reset(&bt);
        assert_int_equal(tdi_schedule_draw_times(&s, NULL, B, bt.t), TD_OK);
        assert_int_equal(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &rng, &bt.out), TD_OK);
        selected += (long)bt.out.n;
        for (size_t k = 0; k < bt.out.n; k++) {
            int32_t z = bt.ids[bt.rows[k]];
            masked += z == MASK;
            same += z == bt.targets[k];
        }
    }
    assert_binomial(selected, (long)B * T * DRAWS, 0.3, 5.0);
    assert_binomial(masked, selected, 0.8, 5.0);
    assert_binomial(same, selected, 0.1 + 0.1 / (HI - LO), 5.0);
}

/* Synthetic per-position cross-entropies: any fixed function of (b, i). */
static double synthetic_ce(size_t b, size_t i, size_t T)
{
    double x = sin(0.37 * (double)i + 1.3 * (double)b);
    return 0.5 + 3.0 * x * x + (double)i / (double)T;
}

/* Monte Carlo of the batch loss Σ weight·CE over scored rows; returns its
 * mean and standard error over `draws` batches. */
static void mc_loss(const tdi_schedule *s, const tdi_corrupt_vocab *v, size_t B, size_t T,
                    int draws, uint64_t seed, double *mean, double *se)
{
    static double ce[MAXN];
    for (size_t r = 0; r < B * T; r++) ce[r] = synthetic_ce(r / T, r % T, T);
    fill_clean(&bt, B * T, 0, 256, seed);
    tdi_rng rng;
    tdi_rng_seed(&rng, seed + 1);
    double sum = 0, sumsq = 0;
    for (int d = 0; d < draws; d++) {
        batch_reset(&bt);
        assert_int_equal(tdi_schedule_draw_times(s, &rng, B, bt.t), TD_OK);
        assert_int_equal(tdi_corrupt(s, v, bt.clean, B, T, bt.t, &rng, &bt.out), TD_OK);
        double loss = 0;
        for (size_t k = 0; k < bt.out.n; k++) loss += (double)bt.weights[k] * ce[bt.rows[k]];
        sum += loss;
        sumsq += loss * loss;
    }
    *mean = sum / draws;
    double var = (sumsq - sum * sum / draws) / (draws - 1);
    *se = sqrt(var / draws);
}

static double mean_ce(size_t B, size_t T)
{
    double m = 0;
    for (size_t r = 0; r < B * T; r++) m += synthetic_ce(r / T, r % T, T);
    return m / (double)(B * T);
}

/* The key identity: with a fixed rate r, E[Σ_masked CE / (r·T·B)] is the
 * mean cross-entropy over positions — BERT's MLM loss in expectation.
 * Also with the 80/10/10 variant, whose selected rows are all scored. */
static void test_fixed_rate_loss_is_mean_ce(void **state)
{
    (void)state;
    enum { B = 8, T = 64, DRAWS = 4000 };
    const double rates[] = { 0.15, 0.5 };
    const double want = mean_ce(B, T);
    for (size_t i = 0; i < 2; i++)
        for (int bert = 0; bert <= 1; bert++) {
            tdi_schedule s = make_fixed(rates[i], bert);
            double mean, se;
            mc_loss(&s, &vocab, B, T, DRAWS, 100 + 10 * i + (size_t)bert, &mean, &se);
            if (!(fabs(mean - want) <= 4.0 * se))
                fail_msg("rate %.2f bert %d: MC loss %.5f ± %.5f, mean CE %.5f", rates[i], bert,
                         mean, se, want);
            assert_true(se < 0.01 * want); /* the test resolves a 1% error */
        }
}

/* The same estimator for diffusion: over t ~ U[t_min, 1], the expected loss is
 * mean CE · E[w(t)(1 − α(t))] = mean CE · E[−α′(t)]
 *                             = mean CE · (α(t_min) − α(1)) / (1 − t_min). */
static void test_diffusion_loss_expectation(void **state)
{
    (void)state;
    enum { B = 8, T = 64, DRAWS = 6000 };
    const double ce = mean_ce(B, T);
    for (int kind = 0; kind <= 3; kind++) {
        tdi_schedule s = make((tdi_schedule_kind)kind);
        double factor = (tdi_schedule_alpha(&s, s.t_min) - tdi_schedule_alpha(&s, 1.0)) /
                        (1.0 - s.t_min);
        double mean, se;
        mc_loss(&s, &vocab, B, T, DRAWS, 200 + (uint64_t)kind, &mean, &se);
        if (!(fabs(mean - ce * factor) <= 4.0 * se))
            fail_msg("%s: MC loss %.5f ± %.5f, expected %.5f", tdi_schedule_kind_name(s.kind),
                     mean, se, ce * factor);
        assert_true(se < 0.02 * ce * factor);
    }
}

static void test_deterministic_given_rng(void **state)
{
    (void)state;
    enum { B = 4, T = 100 };
    static int32_t first[B * T], rows1[B * T];
    const tdi_corrupt_vocab v = { V, MASK, 0, 256 };
    for (int bert = 0; bert <= 1; bert++) {
        tdi_schedule s = make_fixed(0.4, bert);
        fill_clean(&bt, B * T, 0, 256, 9);
        for (int i = 0; i < B; i++) bt.t[i] = 0.4;
        tdi_rng a, b;
        tdi_rng_seed(&a, 11);
        b = a;
        batch_reset(&bt);
        assert_int_equal(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &a, &bt.out), TD_OK);
        size_t n1 = bt.out.n;
        memcpy(first, bt.ids, sizeof first);
        memcpy(rows1, bt.rows, n1 * sizeof rows1[0]);
        batch_reset(&bt);
        assert_int_equal(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &b, &bt.out), TD_OK);
        assert_int_equal(bt.out.n, n1);
        assert_memory_equal(bt.ids, first, sizeof first);
        assert_memory_equal(bt.rows, rows1, n1 * sizeof rows1[0]);
        assert_memory_equal(&a, &b, sizeof a);
        /* The generator moved on: the next batch differs. */
        batch_reset(&bt);
        assert_int_equal(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &b, &bt.out), TD_OK);
        assert_true(memcmp(bt.ids, first, sizeof first) != 0);
    }
}

static void expect_invalid(td_status st, const char *needle)
{
    assert_int_equal(st, TD_ERR_INVALID_ARG);
    if (!strstr(td_last_error_message(), needle))
        fail_msg("message \"%s\" lacks \"%s\"", td_last_error_message(), needle);
}

/* Bad input is rejected before anything is written or drawn. */
static void test_invalid_arguments(void **state)
{
    (void)state;
    enum { B = 2, T = 8 };
    tdi_schedule s = make(TDI_SCHEDULE_LINEAR);
    tdi_schedule bert = make_fixed(0.15, 1);
    tdi_rng rng, before;
    tdi_rng_seed(&rng, 1);
    before = rng;
    fill_clean(&bt, B * T, 0, 256, 1);
    bt.t[0] = 0.5;
    bt.t[1] = 1.0;
    batch_reset(&bt);
    for (int i = 0; i < B * T; i++) bt.ids[i] = -7;
    tdi_corruption *o = &bt.out;

    expect_invalid(tdi_corrupt(NULL, &vocab, bt.clean, B, T, bt.t, &rng, o), "s is NULL");
    expect_invalid(tdi_corrupt(&s, NULL, bt.clean, B, T, bt.t, &rng, o), "vocab is NULL");
    expect_invalid(tdi_corrupt(&s, &vocab, NULL, B, T, bt.t, &rng, o), "clean is NULL");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, NULL, &rng, o), "t is NULL");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, NULL, o), "rng is NULL");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, NULL), "out is NULL");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, 0, T, bt.t, &rng, o), "must be > 0");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, 0, bt.t, &rng, o), "must be > 0");
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, (size_t)1 << 20, (size_t)1 << 12, bt.t,
                               &rng, o), "int32");
    o->capacity = B * T - 1;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "capacity");
    o->capacity = MAXN;
    o->weights = NULL;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "weights");
    o->weights = bt.weights;

    tdi_schedule broken = s;
    broken.t_min = 0.9;
    expect_invalid(tdi_corrupt(&broken, &vocab, bt.clean, B, T, bt.t, &rng, o), "t_min");

    tdi_corrupt_vocab v = vocab;
    v.mask_id = V;
    expect_invalid(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &rng, o), "mask_id = 258");
    v = vocab;
    v.vocab_size = 1;
    expect_invalid(tdi_corrupt(&s, &v, bt.clean, B, T, bt.t, &rng, o), "vocab_size");
    /* The random range matters only with BERT corruption. */
    v = vocab;
    v.random_lo = 250;
    v.random_hi = 258;
    expect_invalid(tdi_corrupt(&bert, &v, bt.clean, B, T, bt.t, &rng, o), "contains mask_id");
    v.random_hi = 250;
    expect_invalid(tdi_corrupt(&bert, &v, bt.clean, B, T, bt.t, &rng, o), "non-empty");
    v.random_lo = 0;
    v.random_hi = 300;
    expect_invalid(tdi_corrupt(&bert, &v, bt.clean, B, T, bt.t, &rng, o), "non-empty");

    bt.t[1] = 1.5;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "t[1] = 1.5");
    bt.t[1] = NAN;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "t[1]");
    bt.t[1] = -0.0;

    bt.clean[T + 3] = MASK;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o),
                   "sequence 1, position 3 is the mask id");
    bt.clean[T + 3] = V;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "outside");
    bt.clean[T + 3] = -1;
    expect_invalid(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), "position 3");

    /* Nothing was drawn or written by any failing call. */
    assert_memory_equal(&rng, &before, sizeof rng);
    for (int i = 0; i < B * T; i++) assert_int_equal(bt.ids[i], -7);

    bt.clean[T + 3] = 5;
    assert_int_equal(tdi_corrupt(&s, &vocab, bt.clean, B, T, bt.t, &rng, o), TD_OK);
    for (size_t k = 0; k < o->n; k++) assert_true(bt.rows[k] < T); /* t[1] = 0 masks nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masking_fraction_matches_schedule),
        cmocka_unit_test(test_per_sequence_times),
        cmocka_unit_test(test_bert_80_10_10),
        cmocka_unit_test(test_bert_random_may_repeat),
        cmocka_unit_test(test_fixed_rate_loss_is_mean_ce),
        cmocka_unit_test(test_diffusion_loss_expectation),
        cmocka_unit_test(test_deterministic_given_rng),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
