/* The sampler's toolbox (docs/sampling.md): confidence thresholds and the
 * factor rule against confidences recomputed from the very logits the
 * sampler drew from (captured by the logits hook), ReMDM remasking against
 * σ and the reveal probability computed from the public schedule, the
 * stable-prefix stream, token lists, the logits hook, classifier-free
 * guidance against logits computed independently by td_model_logits,
 * argument checks and allocation failures.
 *
 * The model is the counting model of test_sampler.c; the flat one (every
 * logit exactly 0) draws uniformly over the ten digits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "model/model_api.h"
#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { T = 16, V = 12, MASK = 10, PAD = 11, BMAX = 8, D = 32 };

static td_model *g_model; /* trained to count modulo 10 */
static td_model *g_flat;  /* every logit exactly 0 */
static td_schedule *g_loglin;

static int group_setup(void **state)
{
    (void)state;
    g_model = toy_model_create(V, MASK, T, 11, NULL);
    g_flat = toy_model_create(V, MASK, T, 11, NULL);
    tdi_model *f = g_flat->m;
    memset(f->params + f->out_w, 0, (size_t)V * D * sizeof(float));
    memset(f->params + f->out_b, 0, (size_t)V * sizeof(float));
    g_loglin = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    return toy_train_counting(g_model, g_loglin, T);
}

static int group_teardown(void **state)
{
    (void)state;
    td_model_free(g_model);
    td_model_free(g_flat);
    td_schedule_free(g_loglin);
    return 0;
}

static td_sampler_config config(td_sampler_strategy strategy, int32_t steps)
{
    td_sampler_config c;
    assert_int_equal(td_sampler_config_default(&c), TD_OK);
    c.strategy = strategy;
    c.steps = steps;
    c.pad_id = PAD;
    c.max_batch = BMAX;
    return c;
}

static td_sampler *sampler_of(const td_model *m, const td_sampler_config *c)
{
    td_sampler *s = NULL;
    assert_int_equal(td_sampler_create(m, g_loglin, c, &s), TD_OK);
    return s;
}

static void all_masks(int32_t *canvas, int n)
{
    for (int i = 0; i < n; i++) canvas[i] = MASK;
}

static int count(const int32_t *canvas, int n, int32_t id)
{
    int k = 0;
    for (int i = 0; i < n; i++) k += canvas[i] == id;
    return k;
}

/* A prefix, a suffix, spans and a padded tail: the fixed positions. */
static void layout_canvas(int32_t *canvas)
{
    all_masks(canvas, 4 * T);
    for (int i = 0; i < 3; i++) canvas[0 * T + i] = 5 + i;
    for (int i = T - 3; i < T; i++) canvas[1 * T + i] = i % 10;
    for (int i = 0; i < T; i += 3) canvas[2 * T + i] = (i + 2) % 10;
    canvas[3 * T + 0] = 1;
    canvas[3 * T + 1] = 2;
    for (int i = T - 5; i < T; i++) canvas[3 * T + i] = PAD;
}

static const td_sampler_strategy strategies[4] = { TD_SAMPLER_ANCESTRAL, TD_SAMPLER_MAX_PROB,
                                                   TD_SAMPLER_MARGIN, TD_SAMPLER_ENTROPY };

/* ---- thresholds (Fast-dLLM) ----------------------------------------------- */

/* What the hook saw this step and the rule to check the step against. */
typedef struct fast_state {
    double threshold, factor;
    int margin;
    int steps_seen, hook_calls;
    double conf[BMAX * T]; /* NaN: the row drew nothing this step */
    int32_t prev[BMAX * T];
    long revealed;
} fast_state;

/* The confidence at temperature 0 on the softmax over every id but [MASK]
 * and [PAD], in double: p(argmax), or p(first) − p(second) for MARGIN. */
static double confidence(const float *z, int margin)
{
    double mx = -INFINITY, sum = 0.0, second = -INFINITY;
    for (int i = 0; i < V; i++)
        if (i != MASK && i != PAD && z[i] > mx) mx = z[i];
    int first_seen = 0;
    for (int i = 0; i < V; i++) {
        if (i == MASK || i == PAD) continue;
        sum += exp((double)z[i] - mx);
        if (z[i] == mx && !first_seen) first_seen = 1;
        else if (z[i] > second) second = z[i];
    }
    return margin ? (1.0 - exp(second - mx)) / sum : 1.0 / sum;
}

static int32_t fast_hook(void *user, const int32_t *rows, int32_t n_rows, float *logits,
                         int32_t vocab_size)
{
    fast_state *fs = user;
    assert_int_equal(vocab_size, V);
    fs->hook_calls++;
    for (int32_t j = 0; j < n_rows; j++)
        fs->conf[rows[j]] = confidence(logits + (size_t)j * V, fs->margin);
    return 0;
}

static int desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static int32_t fast_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                       int32_t batch, int32_t seq_len, const int32_t *changed, int32_t n_changed)
{
    fast_state *fs = user;
    (void)step;
    (void)n_steps;
    (void)changed;
    (void)n_changed;
    fs->steps_seen++;
    for (int b = 0; b < batch; b++) {
        double c[T];
        int n = 0, rev = 0;
        double min_rev = INFINITY, max_kept = -INFINITY;
        for (int i = 0; i < seq_len; i++) {
            int r = b * seq_len + i;
            if (isnan(fs->conf[r])) {
                assert_int_equal(canvas[r], fs->prev[r]); /* drew nothing, kept */
                continue;
            }
            assert_int_equal(fs->prev[r], MASK);
            c[n++] = fs->conf[r];
            if (canvas[r] != MASK) {
                rev++;
                if (fs->conf[r] < min_rev) min_rev = fs->conf[r];
            } else if (fs->conf[r] > max_kept) {
                max_kept = fs->conf[r];
            }
        }
        if (n == 0) continue;
        qsort(c, (size_t)n, sizeof *c, desc);
        int want = 0, undecided = 0;
        if (fs->threshold > 0) {
            for (int j = 0; j < n; j++) {
                /* a confidence within rounding of the threshold is undecided */
                undecided |= fabs(c[j] - fs->threshold) < 1e-9;
                want += c[j] > fs->threshold;
            }
        } else {
            while (want < n && (want + 2) * (1.0 - c[want]) < fs->factor) want++;
        }
        if (want == 0) want = 1;
        fs->revealed += rev;
        if (undecided) continue;
        assert_int_equal(rev, want);
        /* the revealed ones are the most confident */
        assert_true(min_rev >= max_kept);
    }
    for (int r = 0; r < batch * seq_len; r++) fs->conf[r] = NAN;
    memcpy(fs->prev, canvas, (size_t)batch * seq_len * sizeof *canvas);
    return 0;
}

static void run_fast(double threshold, double factor, td_sampler_strategy strategy)
{
    fast_state *fs = calloc(1, sizeof *fs);
    fs->threshold = threshold;
    fs->factor = factor;
    fs->margin = strategy == TD_SAMPLER_MARGIN;
    for (int r = 0; r < BMAX * T; r++) fs->conf[r] = NAN;
    td_sampler_config c = config(strategy, T);
    c.temperature = 0.0f;
    c.threshold = (float)threshold;
    c.factor = (float)factor;
    td_sampler *s = sampler_of(g_model, &c);
    assert_int_equal(td_sampler_set_logits_hook(s, fast_hook, fs), TD_OK);
    int32_t canvas[4 * T];
    all_masks(canvas, 4 * T);
    for (int b = 0; b < 4; b++) canvas[b * T + b] = (b * 3) % 10;
    memcpy(fs->prev, canvas, sizeof canvas);
    td_sample_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_sampler_generate(s, canvas, 4, T, fast_cb, fs, &st), TD_OK);
    assert_int_equal(count(canvas, 4 * T, MASK), 0);
    assert_int_equal(st.tokens_generated, 4 * (T - 1));
    assert_int_equal(st.tokens_revealed, 4 * (T - 1));
    assert_int_equal(fs->revealed, 4 * (T - 1));
    /* the block ends once filled: no step without a forward pass */
    assert_int_equal(st.steps, fs->steps_seen);
    assert_int_equal(st.model_calls, st.steps);
    assert_int_equal(st.cached_steps, 0);
    assert_true(st.steps < T);
    assert_true(fabs(st.calls_per_token - (double)st.model_calls / (4 * (T - 1))) < 1e-15);
    td_sampler_free(s);
    free(fs);
}

/* Each step reveals exactly the masked positions whose confidence exceeds
 * the threshold, or the most confident one when none does. */
static void test_threshold_reveals_what_exceeds_it(void **state)
{
    (void)state;
    const double thresholds[4] = { 0.3, 0.6, 0.9, 1.0 };
    for (int i = 0; i < 4; i++) {
        run_fast(thresholds[i], 0.0, TD_SAMPLER_MAX_PROB);
        run_fast(thresholds[i], 0.0, TD_SAMPLER_MARGIN);
    }
}

/* The factor rule: the n most confident, n the largest with
 * (n + 1)(1 − c_(n)) < f, at least one. */
static void test_factor_rule(void **state)
{
    (void)state;
    const double factors[3] = { 0.5, 1.0, 3.0 };
    for (int i = 0; i < 3; i++) {
        run_fast(0.0, factors[i], TD_SAMPLER_MAX_PROB);
        run_fast(0.0, factors[i], TD_SAMPLER_MARGIN);
    }
}

/* A lower threshold takes fewer model calls; threshold 1 (nothing exceeds
 * it) reveals one position per step. */
static void test_threshold_calls(void **state)
{
    (void)state;
    int64_t calls[2];
    const float thr[2] = { 1.0f, 0.3f };
    for (int i = 0; i < 2; i++) {
        td_sampler_config c = config(TD_SAMPLER_MAX_PROB, T);
        c.threshold = thr[i];
        int32_t canvas[BMAX * T];
        all_masks(canvas, BMAX * T);
        td_sample_stats st = { .struct_size = sizeof st };
        td_sampler *s = sampler_of(g_model, &c);
        assert_int_equal(td_sampler_generate(s, canvas, 1, T, NULL, NULL, &st), TD_OK);
        td_sampler_free(s);
        calls[i] = st.model_calls;
    }
    assert_int_equal(calls[0], T);
    assert_true(calls[1] < T / 2);
}

/* ---- remasking (ReMDM) ------------------------------------------------------ */

typedef struct remask_state {
    int32_t remask, steps;
    double eta, t_on, t_off, alpha_on; /* the loop's, as the sampler reads them */
    int32_t prev[BMAX * T];
    uint8_t fixed[BMAX * T];
    double x_rev[16], np_rev[16], var_rev[16];
    double x_rem[16], np_rem[16], var_rem[16];
} remask_state;

static double alpha(double t)
{
    double a;
    assert_int_equal(td_schedule_alpha(g_loglin, t, &a), TD_OK);
    return a;
}

/* The loop's α as docs/sampling.md writes it. */
static double loop_alpha(const remask_state *rs, double t)
{
    if (t > rs->t_on) return rs->alpha_on * alpha((t - rs->t_on) / (1.0 - rs->t_on));
    if (t > rs->t_off) return rs->alpha_on;
    return 1.0 - (1.0 - rs->alpha_on) * (1.0 - alpha(t / rs->t_off));
}

static int32_t remask_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                         int32_t batch, int32_t seq_len, const int32_t *changed,
                         int32_t n_changed)
{
    remask_state *rs = user;
    (void)n_steps;
    (void)changed;
    (void)n_changed;
    int n = batch * seq_len, masked = 0, tokens = 0, rev = 0, rem = 0;
    for (int r = 0; r < n; r++) {
        if (rs->fixed[r]) {
            assert_int_equal(canvas[r], rs->prev[r]);
            continue;
        }
        if (rs->prev[r] == MASK) {
            masked++;
            rev += canvas[r] != MASK;
        } else {
            tokens++;
            rem += canvas[r] == MASK;
            if (canvas[r] != MASK) assert_int_equal(canvas[r], rs->prev[r]);
        }
    }
    double t = 1.0 - (double)step / rs->steps;
    double s = step + 1 == rs->steps ? 0.0 : 1.0 - (double)(step + 1) / rs->steps;
    const int loop = rs->remask == TD_SAMPLER_REMASK_LOOP;
    double at = loop ? loop_alpha(rs, t) : alpha(t), as = loop ? loop_alpha(rs, s) : alpha(s);
    double smax = fmin(1.0, (1.0 - as) / at);
    double sigma = rs->remask == TD_SAMPLER_REMASK_RESCALE ? rs->eta * smax
                                                           : fmin(rs->eta, smax);
    if (loop && !(t <= rs->t_on && t > rs->t_off)) sigma = 0.0;
    double p = (as - (1.0 - sigma) * at) / (1.0 - at);
    rs->x_rev[step] += rev;
    rs->np_rev[step] += masked * p;
    rs->var_rev[step] += masked * p * (1 - p);
    rs->x_rem[step] += rem;
    rs->np_rem[step] += tokens * sigma;
    rs->var_rem[step] += tokens * sigma * (1 - sigma);
    memcpy(rs->prev, canvas, (size_t)n * sizeof *canvas);
    return 0;
}

/* Ancestral ReMDM: a masked position is revealed with
 * (α_s − (1 − σ)α_t)/(1 − α_t), a generated token masked again with σ —
 * binomial counts summed over runs, against σ from the public schedule
 * (for the loop, α remapped as docs/sampling.md says).
 * Fixed positions never change, and nothing is left masked. */
static void test_remask_probabilities(void **state)
{
    (void)state;
    const int32_t modes[3] = { TD_SAMPLER_REMASK_RESCALE, TD_SAMPLER_REMASK_CAP,
                               TD_SAMPLER_REMASK_LOOP };
    const double etas[3] = { 0.5, 0.1, 0.05 };
    for (int mi = 0; mi < 3; mi++) {
        remask_state *rs = calloc(1, sizeof *rs);
        rs->remask = modes[mi];
        rs->eta = (float)etas[mi];
        rs->steps = 10;
        td_sampler_config c = config(TD_SAMPLER_ANCESTRAL, rs->steps);
        c.remask = modes[mi];
        c.eta = (float)etas[mi];
        c.remask_t_on = 0.75f;
        c.remask_t_off = 0.25f;
        c.remask_alpha_on = 0.6f;
        rs->t_on = c.remask_t_on;
        rs->t_off = c.remask_t_off;
        rs->alpha_on = c.remask_alpha_on;
        td_sampler *s = sampler_of(g_flat, &c);
        long remasked = 0;
        for (int run = 0; run < 40; run++) {
            int32_t canvas[BMAX * T];
            all_masks(canvas, BMAX * T);
            layout_canvas(canvas); /* the first 4 sequences; 4 more all masks */
            for (int r = 0; r < BMAX * T; r++) rs->fixed[r] = canvas[r] != MASK;
            int gen = count(canvas, BMAX * T, MASK);
            memcpy(rs->prev, canvas, sizeof canvas);
            td_sample_stats st = { .struct_size = sizeof st };
            assert_int_equal(td_sampler_generate(s, canvas, BMAX, T, remask_cb, rs, &st),
                             TD_OK);
            assert_int_equal(count(canvas, BMAX * T, MASK), 0);
            assert_int_equal(st.tokens_generated, gen);
            assert_int_equal(st.tokens_revealed, gen + st.tokens_remasked);
            remasked += st.tokens_remasked;
        }
        assert_true(remasked > 100);
        for (int k = 0; k < rs->steps; k++) {
            assert_true(fabs(rs->x_rev[k] - rs->np_rev[k]) <= 5 * sqrt(rs->var_rev[k]) + 1e-9);
            assert_true(fabs(rs->x_rem[k] - rs->np_rem[k]) <= 5 * sqrt(rs->var_rem[k]) + 1e-9);
        }
        assert_true(rs->x_rem[rs->steps - 1] == 0); /* σ = 0 at the last step */
        td_sampler_free(s);
        free(rs);
    }
}

/* Every strategy, blocks or not, every mode: fixed positions are never
 * touched, [PAD] and [MASK] never written, and the canvas ends full. */
static void test_remask_never_touches_fixed(void **state)
{
    (void)state;
    const int32_t block_lens[2] = { 0, 5 };
    for (int si = 0; si < 4; si++)
        for (int bi = 0; bi < 2; bi++)
            for (int mode = 1; mode <= 3; mode++) {
                int32_t before[4 * T], canvas[4 * T];
                layout_canvas(before);
                memcpy(canvas, before, sizeof canvas);
                td_sampler_config c = config(strategies[si], 12);
                c.block_len = block_lens[bi];
                c.temperature = 2.0f;
                c.remask = mode;
                c.eta = 1.0f;
                c.remask_t_on = 0.9f;
                c.remask_t_off = 0.2f;
                td_sample_stats st = { .struct_size = sizeof st };
                td_sampler *s = sampler_of(g_model, &c);
                assert_int_equal(td_sampler_generate(s, canvas, 4, T, NULL, NULL, &st), TD_OK);
                td_sampler_free(s);
                assert_true(st.tokens_remasked > 0);
                for (int i = 0; i < 4 * T; i++) {
                    if (before[i] != MASK) assert_int_equal(canvas[i], before[i]);
                    else assert_true(canvas[i] >= 0 && canvas[i] < 10);
                }
            }
}

/* η = 0 is the plain sampler, bit for bit, whatever the mode. */
static void test_eta_zero_is_plain(void **state)
{
    (void)state;
    for (int si = 0; si < 4; si++)
        for (int mode = 0; mode <= 3; mode++) {
            int32_t a[4 * T], b[4 * T];
            layout_canvas(a);
            memcpy(b, a, sizeof a);
            td_sampler_config c = config(strategies[si], 7);
            c.block_len = 6;
            td_sample_stats sa = { .struct_size = sizeof sa }, sb = { .struct_size = sizeof sb };
            td_sampler *s = sampler_of(g_model, &c);
            assert_int_equal(td_sampler_generate(s, a, 4, T, NULL, NULL, &sa), TD_OK);
            td_sampler_free(s);
            c.remask = mode;
            c.eta = 0.0f;
            s = sampler_of(g_model, &c);
            assert_int_equal(td_sampler_generate(s, b, 4, T, NULL, NULL, &sb), TD_OK);
            td_sampler_free(s);
            assert_memory_equal(a, b, sizeof a);
            assert_memory_equal(&sa, &sb, sizeof sa);
            assert_int_equal(sb.tokens_remasked, 0);
        }
}

/* The loop masks again only at steps that start inside (t_off, t_on]. */
typedef struct loop_state {
    int steps;
    double t_on, t_off;
    long inside;
    int32_t prev[BMAX * T];
} loop_state;

static int32_t loop_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                       int32_t batch, int32_t seq_len, const int32_t *changed, int32_t n_changed)
{
    loop_state *ls = user;
    (void)n_steps;
    (void)changed;
    (void)n_changed;
    int rem = 0;
    for (int r = 0; r < batch * seq_len; r++) rem += ls->prev[r] != MASK && canvas[r] == MASK;
    double t = 1.0 - (double)step / ls->steps;
    if (!(t <= ls->t_on && t > ls->t_off)) assert_int_equal(rem, 0);
    ls->inside += rem;
    memcpy(ls->prev, canvas, (size_t)batch * seq_len * sizeof *canvas);
    return 0;
}

static void test_remask_loop_window(void **state)
{
    (void)state;
    loop_state ls = { 20, (double)0.6f, (double)0.2f, 0, { 0 } };
    td_sampler_config c = config(TD_SAMPLER_ANCESTRAL, ls.steps);
    c.remask = TD_SAMPLER_REMASK_LOOP;
    c.eta = 0.5f;
    c.remask_t_on = 0.6f;
    c.remask_t_off = 0.2f;
    td_sampler *s = sampler_of(g_flat, &c);
    for (int run = 0; run < 5; run++) {
        int32_t canvas[BMAX * T];
        all_masks(canvas, BMAX * T);
        memcpy(ls.prev, canvas, sizeof canvas);
        assert_int_equal(td_sampler_generate(s, canvas, BMAX, T, loop_cb, &ls, NULL), TD_OK);
        assert_int_equal(count(canvas, BMAX * T, MASK), 0);
    }
    assert_true(ls.inside > 0);
    td_sampler_free(s);
}

/* ---- the stable-prefix stream ----------------------------------------------- */

typedef struct stream_state {
    int32_t reported[BMAX][T]; /* what each sequence's stream said so far */
    int32_t len[BMAX];
    int calls;
    const int32_t *canvas;     /* the live canvas */
    int no_remask;             /* then the prefix is exactly up to the first [MASK] */
} stream_state;

static int32_t stream_fn(void *user, int32_t b, const int32_t *prefix, int32_t prefix_len,
                         int32_t n_new)
{
    stream_state *ss = user;
    ss->calls++;
    assert_true(b >= 0 && b < BMAX);
    assert_true(n_new > 0);
    assert_int_equal(prefix_len - n_new, ss->len[b]);
    /* it extends what was said: nothing before was revised */
    for (int i = 0; i < ss->len[b]; i++) assert_int_equal(prefix[i], ss->reported[b][i]);
    for (int i = 0; i < prefix_len; i++) assert_int_not_equal(prefix[i], MASK);
    assert_ptr_equal(prefix, ss->canvas + (size_t)b * T);
    memcpy(ss->reported[b], prefix, (size_t)prefix_len * sizeof *prefix);
    ss->len[b] = prefix_len;
    return 0;
}

/* Checked after each step: without remasking, the stable prefix reaches
 * the first [MASK]. */
static int32_t stream_step_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                              int32_t batch, int32_t seq_len, const int32_t *changed,
                              int32_t n_changed)
{
    stream_state *ss = user;
    (void)step;
    (void)n_steps;
    (void)changed;
    (void)n_changed;
    for (int b = 0; b < batch; b++) {
        int first = 0;
        while (first < seq_len && canvas[b * seq_len + first] != MASK) first++;
        if (ss->no_remask) assert_int_equal(ss->len[b], first);
        else assert_true(ss->len[b] <= first);
    }
    return 0;
}

static void test_stream_never_revises(void **state)
{
    (void)state;
    const int32_t block_lens[2] = { 0, 5 };
    for (int si = 0; si < 4; si++)
        for (int bi = 0; bi < 2; bi++)
            for (int mode = 0; mode <= 3; mode++) {
                stream_state ss;
                memset(&ss, 0, sizeof ss);
                ss.no_remask = mode == 0;
                int32_t canvas[4 * T];
                layout_canvas(canvas);
                ss.canvas = canvas;
                td_sampler_config c = config(strategies[si], 10);
                c.block_len = block_lens[bi];
                c.remask = mode;
                c.eta = mode ? 0.8f : 0.0f;
                td_sampler *s = sampler_of(g_model, &c);
                assert_int_equal(td_sampler_set_stream(s, stream_fn, &ss), TD_OK);
                assert_int_equal(td_sampler_generate(s, canvas, 4, T, stream_step_cb, &ss, NULL),
                                 TD_OK);
                /* in the end every sequence was streamed whole, as it stands */
                for (int b = 0; b < 4; b++) {
                    assert_int_equal(ss.len[b], T);
                    assert_memory_equal(ss.reported[b], canvas + b * T, T * sizeof *canvas);
                }
                assert_true(ss.calls >= 4);
                /* without a stream, the same tokens */
                int32_t again[4 * T];
                layout_canvas(again);
                assert_int_equal(td_sampler_set_stream(s, NULL, NULL), TD_OK);
                assert_int_equal(td_sampler_set_seed(s, 1), TD_OK);
                assert_int_equal(td_sampler_generate(s, again, 4, T, NULL, NULL, NULL), TD_OK);
                assert_memory_equal(again, canvas, sizeof canvas);
                td_sampler_free(s);
            }
}

static int32_t stop_stream(void *user, int32_t b, const int32_t *prefix, int32_t prefix_len,
                           int32_t n_new)
{
    (void)user;
    (void)b;
    (void)prefix;
    (void)n_new;
    return prefix_len >= 4;
}

static void test_stream_cancels(void **state)
{
    (void)state;
    td_sampler_config c = config(TD_SAMPLER_MAX_PROB, 4);
    c.block_len = 4; /* the prefix reaches 4 after the first block at the latest */
    td_sampler *s = sampler_of(g_model, &c);
    assert_int_equal(td_sampler_set_stream(s, stop_stream, NULL), TD_OK);
    int32_t canvas[T];
    all_masks(canvas, T);
    assert_int_equal(td_sampler_generate(s, canvas, 1, T, NULL, NULL, NULL), TD_ERR_CANCELLED);
    assert_non_null(strstr(td_last_error_message(), "stream"));
    assert_true(count(canvas, T, MASK) > 0);
    td_sampler_free(s);
}

/* ---- token lists and the logits hook ---------------------------------------- */

static void test_ban_and_allow(void **state)
{
    (void)state;
    const int32_t ban[3] = { 0, 4, 9 }, allow[2] = { 2, 7 };
    for (int si = 0; si < 4; si++)
        for (int list = 0; list < 2; list++) {
            td_sampler_config c = config(strategies[si], 5);
            c.temperature = 2.0f;
            td_sampler *s = sampler_of(g_flat, &c);
            if (list == 0) assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN,
                                                                  ban, 3), TD_OK);
            else assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALLOW, allow, 2),
                                  TD_OK);
            int seen[V] = { 0 };
            for (int run = 0; run < 10; run++) {
                int32_t canvas[4 * T];
                layout_canvas(canvas);
                int32_t before[4 * T];
                memcpy(before, canvas, sizeof canvas);
                assert_int_equal(td_sampler_generate(s, canvas, 4, T, NULL, NULL, NULL), TD_OK);
                for (int r = 0; r < 4 * T; r++)
                    if (before[r] == MASK) seen[canvas[r]]++;
            }
            if (list == 0) {
                for (int j = 0; j < 3; j++) assert_int_equal(seen[ban[j]], 0);
                for (int v = 0; v < 10; v++)
                    if (v != 0 && v != 4 && v != 9) assert_true(seen[v] > 0);
            } else {
                for (int v = 0; v < V; v++)
                    if (v != 2 && v != 7) assert_int_equal(seen[v], 0);
                assert_true(seen[2] > 0 && seen[7] > 0);
            }
            /* cleared: every digit again */
            assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALL, NULL, 0), TD_OK);
            int32_t canvas[BMAX * T];
            all_masks(canvas, BMAX * T);
            assert_int_equal(td_sampler_generate(s, canvas, BMAX, T, NULL, NULL, NULL), TD_OK);
            for (int v = 0; v < 10; v++) assert_true(count(canvas, BMAX * T, v) > 0);
            td_sampler_free(s);
        }
}

static void test_bad_token_lists(void **state)
{
    (void)state;
    td_sampler_config c = config(TD_SAMPLER_ANCESTRAL, 4);
    td_sampler *s = sampler_of(g_flat, &c);
    const int32_t ok[1] = { 3 }, out[2] = { 3, V }, neg[1] = { -1 }, mask[1] = { MASK },
                  pad[1] = { PAD }, digits[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALLOW, ok, 1), TD_OK);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, out, 2),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "ids[1]"));
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, neg, 1),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALLOW, mask, 1),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "[MASK]"));
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALLOW, pad, 1),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, digits, 10),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "no token"));
    assert_int_equal(td_sampler_set_tokens(s, 3, ok, 1), TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, NULL, 1),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, ok, 0),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_ALL, ok, 1),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_tokens(NULL, TD_SAMPLER_TOKENS_ALL, NULL, 0),
                     TD_ERR_INVALID_ARG);
    /* banning [MASK] and [PAD] is harmless; the failures above changed
     * nothing: the allow list {3} still holds */
    const int32_t specials[2] = { MASK, PAD };
    int32_t canvas[T];
    all_masks(canvas, T);
    assert_int_equal(td_sampler_generate(s, canvas, 1, T, NULL, NULL, NULL), TD_OK);
    assert_int_equal(count(canvas, T, 3), T);
    assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, specials, 2), TD_OK);
    assert_int_equal(td_sampler_set_stream(NULL, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_sampler_set_logits_hook(NULL, NULL, NULL), TD_ERR_INVALID_ARG);
    td_sampler_free(s);
}

/* The hook's changes are what is drawn from; its stop cancels. */
static int32_t only_six(void *user, const int32_t *rows, int32_t n_rows, float *logits,
                        int32_t vocab_size)
{
    int *calls = user;
    (void)rows;
    ++*calls;
    for (int32_t j = 0; j < n_rows; j++)
        for (int32_t v = 0; v < vocab_size; v++)
            if (v != 6) logits[(size_t)j * vocab_size + v] = -INFINITY;
    return *calls > 3;
}

static void test_logits_hook(void **state)
{
    (void)state;
    td_sampler_config c = config(TD_SAMPLER_ANCESTRAL, 3);
    td_sampler *s = sampler_of(g_model, &c);
    int calls = 0;
    assert_int_equal(td_sampler_set_logits_hook(s, only_six, &calls), TD_OK);
    int32_t canvas[2 * T];
    all_masks(canvas, 2 * T);
    assert_int_equal(td_sampler_generate(s, canvas, 2, T, NULL, NULL, NULL), TD_OK);
    assert_int_equal(count(canvas, 2 * T, 6), 2 * T);
    assert_int_equal(calls, 3);
    all_masks(canvas, 2 * T);
    assert_int_equal(td_sampler_generate(s, canvas, 2, T, NULL, NULL, NULL), TD_ERR_CANCELLED);
    assert_non_null(strstr(td_last_error_message(), "hook"));
    td_sampler_free(s);
}

/* ---- classifier-free guidance ----------------------------------------------- */

typedef struct guide_state {
    float w;
    int checked;
    float got[BMAX * T * V];
    int32_t rows[BMAX * T];
    int32_t n_rows;
} guide_state;

static int32_t capture(void *user, const int32_t *rows, int32_t n_rows, float *logits,
                       int32_t vocab_size)
{
    guide_state *gs = user;
    memcpy(gs->got, logits, (size_t)n_rows * vocab_size * sizeof *logits);
    memcpy(gs->rows, rows, (size_t)n_rows * sizeof *rows);
    gs->n_rows = n_rows;
    return 1; /* one step is enough */
}

/* The logits drawn from are l_c + w·(l_c − l_u), l_c of the canvas and l_u
 * of the canvas with its fixed positions masked, both computed by
 * td_model_logits; w = 0 is the unguided sampler bit for bit. */
static void test_guidance(void **state)
{
    (void)state;
    const float ws[3] = { 1.5f, -0.5f, 3.0f };
    for (int wi = 0; wi < 3; wi++) {
        guide_state *gs = calloc(1, sizeof *gs);
        td_sampler_config c = config(TD_SAMPLER_MAX_PROB, 4);
        c.guidance = ws[wi];
        td_sampler *s = sampler_of(g_model, &c);
        assert_int_equal(td_sampler_set_logits_hook(s, capture, gs), TD_OK);
        int32_t canvas[4 * T], uncond[4 * T];
        layout_canvas(canvas);
        for (int r = 0; r < 4 * T; r++) uncond[r] = canvas[r] == PAD ? PAD : MASK;
        td_sample_stats st = { .struct_size = sizeof st };
        /* [PAD] is attended by td_model_logits; use the unpadded sequences */
        assert_int_equal(td_sampler_generate(s, canvas, 3, T, NULL, NULL, &st),
                         TD_ERR_CANCELLED);
        assert_int_equal(st.model_calls, 2);
        static float lc[3 * T * V], lu[3 * T * V];
        assert_int_equal(td_model_logits(g_model, canvas, 3, T, 1, lc), TD_OK);
        assert_int_equal(td_model_logits(g_model, uncond, 3, T, 1, lu), TD_OK);
        assert_int_equal(gs->n_rows, count(canvas, 3 * T, MASK));
        for (int32_t j = 0; j < gs->n_rows; j++)
            for (int v = 0; v < V; v++) {
                size_t o = (size_t)gs->rows[j] * V + v;
                float got = gs->got[(size_t)j * V + v];
                if (v == MASK) {
                    assert_true(isinf(got) && got < 0);
                    continue;
                }
                double want = (double)lc[o] + ws[wi] * ((double)lc[o] - lu[o]);
                assert_true(fabs(got - want) < 1e-4 * (1.0 + fabs(want)));
            }
        td_sampler_free(s);
        free(gs);
    }
    /* w = 0: one forward pass per step, the unguided tokens */
    for (int si = 0; si < 4; si++) {
        int32_t a[4 * T], b[4 * T];
        layout_canvas(a);
        memcpy(b, a, sizeof a);
        td_sampler_config c = config(strategies[si], 6);
        td_sample_stats sa = { .struct_size = sizeof sa }, sb = { .struct_size = sizeof sb };
        td_sampler *s = sampler_of(g_model, &c);
        assert_int_equal(td_sampler_generate(s, a, 4, T, NULL, NULL, &sa), TD_OK);
        td_sampler_free(s);
        c.guidance = 0.0f;
        c.remask = TD_SAMPLER_REMASK_CAP; /* with η = 0: off */
        s = sampler_of(g_model, &c);
        assert_int_equal(td_sampler_generate(s, b, 4, T, NULL, NULL, &sb), TD_OK);
        td_sampler_free(s);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(&sa, &sb, sizeof sa);
    }
    /* guided generation completes, at twice the forward passes */
    td_sampler_config c = config(TD_SAMPLER_ANCESTRAL, 6);
    c.guidance = 2.0f;
    c.cache = 0;
    int32_t canvas[4 * T];
    layout_canvas(canvas);
    td_sample_stats st = { .struct_size = sizeof st };
    td_sampler *s = sampler_of(g_model, &c);
    assert_int_equal(td_sampler_generate(s, canvas, 4, T, NULL, NULL, &st), TD_OK);
    td_sampler_free(s);
    assert_int_equal(st.model_calls, 12);
    assert_int_equal(count(canvas, 4 * T, MASK), 0);
}

/* ---- approximate caching ------------------------------------------------------ */

/* Every logit row the sampler drew from, in order. With `replay` set, each
 * row must also match the replayed trace's (the same rows; logits to float
 * rounding) and is then replaced by it, so that both runs draw the same
 * tokens even where a rounding difference would tip a draw. */
typedef struct trace {
    float *logits; /* [cap, V] */
    int32_t *rows;
    int32_t n, cap;
    const struct trace *replay;
} trace;

static int32_t trace_hook(void *user, const int32_t *rows, int32_t n_rows, float *logits,
                          int32_t vocab_size)
{
    trace *t = user;
    assert_true(t->n + n_rows <= t->cap);
    if (t->replay != NULL) {
        const trace *r = t->replay;
        assert_true(t->n + n_rows <= r->n);
        assert_memory_equal(rows, r->rows + t->n, (size_t)n_rows * sizeof *rows);
        const float *want = r->logits + (size_t)t->n * vocab_size;
        for (size_t i = 0; i < (size_t)n_rows * vocab_size; i++) {
            if (isinf(want[i])) assert_true(logits[i] == want[i]);
            else assert_true(fabsf(logits[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])));
        }
        memcpy(logits, want, (size_t)n_rows * vocab_size * sizeof *logits);
    }
    memcpy(t->logits + (size_t)t->n * vocab_size, logits,
           (size_t)n_rows * vocab_size * sizeof *logits);
    memcpy(t->rows + t->n, rows, (size_t)n_rows * sizeof *rows);
    t->n += n_rows;
    return 0;
}

static td_model *arch_model(int32_t n_layers, int32_t pos, int32_t norm)
{
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.vocab_size = V;
    c.mask_id = MASK;
    c.max_seq_len = T;
    c.d_model = D;
    c.n_layers = n_layers;
    c.n_heads = 2;
    c.d_ff = 64;
    c.pos_encoding = pos;
    c.norm_placement = norm;
    td_model *m = NULL;
    assert_int_equal(td_model_create(&c, 7, NULL, &m), TD_OK);
    return m;
}

/* Greedy max-prob decoding of the layout canvas in blocks of 4, its
 * logits traced; returns the model calls. */
static int64_t approx_run(const td_model *m, int32_t approx, int32_t steps, int32_t *canvas,
                          trace *t)
{
    td_sampler_config c = config(TD_SAMPLER_MAX_PROB, steps);
    c.temperature = 0.0f;
    c.block_len = 4;
    c.approx_cache = approx;
    c.n_threads = 2;
    td_sampler *s = sampler_of(m, &c);
    assert_int_equal(td_sampler_set_logits_hook(s, trace_hook, t), TD_OK);
    layout_canvas(canvas);
    td_sample_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_sampler_generate(s, canvas, 4, T, NULL, NULL, &st), TD_OK);
    td_sampler_free(s);
    assert_int_equal(count(canvas, 4 * T, MASK), 0);
    return st.model_calls;
}

static void trace_init(trace *t)
{
    t->cap = 4 * T * 8;
    t->n = 0;
    t->replay = NULL;
    t->logits = malloc((size_t)t->cap * V * sizeof *t->logits);
    t->rows = malloc((size_t)t->cap * sizeof *t->rows);
    assert_non_null(t->logits);
    assert_non_null(t->rows);
}

static void trace_free(trace *t)
{
    free(t->logits);
    free(t->rows);
}

/* With one layer the keys and values outside the block depend on their own
 * tokens only, which do not change during the block: the prefix and dual
 * caches are exact there (to float rounding), for every architecture, with
 * a padded sequence and fixed ids in the canvas. Each cached run replays the
 * exact run's logits after checking its own against them (trace.replay), so
 * a rounding difference cannot send it down another path. */
static void test_approx_cache_exact_one_layer(void **state)
{
    (void)state;
    for (int arch = 0; arch < 4; arch++) {
        td_model *m = arch_model(1, arch & 1 ? TD_POS_LEARNED : TD_POS_ROPE,
                                 arch & 2 ? TD_NORM_POST : TD_NORM_PRE);
        trace ref, got;
        trace_init(&ref);
        int32_t want[4 * T], canvas[4 * T];
        int64_t calls = approx_run(m, TD_SAMPLER_APPROX_OFF, 4, want, &ref);
        for (int32_t mode = TD_SAMPLER_APPROX_PREFIX; mode <= TD_SAMPLER_APPROX_DUAL; mode++) {
            trace_init(&got);
            got.replay = &ref;
            assert_int_equal(approx_run(m, mode, 4, canvas, &got), calls);
            assert_memory_equal(canvas, want, sizeof want);
            assert_int_equal(got.n, ref.n);
            trace_free(&got);
        }
        trace_free(&ref);
        td_model_free(m);
    }
}

/* Deeper models: approximate, but each block's first forward pass is a
 * full one, so with one step per block the tokens and logits are those of
 * the exact sampler bit for bit; with more steps later logits differ. */
static void test_approx_cache_refresh(void **state)
{
    (void)state;
    td_model *m = arch_model(3, TD_POS_ROPE, TD_NORM_PRE);
    for (int32_t mode = TD_SAMPLER_APPROX_PREFIX; mode <= TD_SAMPLER_APPROX_DUAL; mode++) {
        trace ref, got;
        trace_init(&ref);
        trace_init(&got);
        int32_t want[4 * T], canvas[4 * T];
        approx_run(m, TD_SAMPLER_APPROX_OFF, 1, want, &ref);
        approx_run(m, mode, 1, canvas, &got);
        assert_memory_equal(canvas, want, sizeof want);
        assert_int_equal(got.n, ref.n);
        assert_memory_equal(got.logits, ref.logits, (size_t)ref.n * V * sizeof *ref.logits);
        ref.n = got.n = 0;
        approx_run(m, TD_SAMPLER_APPROX_OFF, 4, want, &ref);
        approx_run(m, mode, 4, canvas, &got);
        /* the first step of the first block is a full pass: the same rows */
        int32_t first = 0;
        while (first < ref.n && ref.rows[first] / T == 0 && ref.rows[first] % T < 4) first++;
        assert_true(first > 0);
        double diff = 0.0;
        for (size_t i = 0; i < (size_t)ref.n * V && i < (size_t)got.n * V; i++)
            if (isfinite(ref.logits[i]) && isfinite(got.logits[i]))
                diff = fmax(diff, fabs((double)ref.logits[i] - got.logits[i]));
        assert_true(diff > 0.0); /* stale keys and values: approximate */
        trace_free(&ref);
        trace_free(&got);
    }
    td_model_free(m);
}

/* ---- end of text ---------------------------------------------------------------- */

enum { EOS = 9 };

/* Forces the end token at position `at` of every sequence and forbids it
 * elsewhere; records the rows it saw. */
typedef struct eos_state {
    int32_t at;
    int32_t seen_after; /* rows after `at` asked for a token once the end was drawn */
    int drawn[BMAX];
} eos_state;

static int32_t force_eos(void *user, const int32_t *rows, int32_t n_rows, float *logits,
                         int32_t vocab_size)
{
    eos_state *e = user;
    for (int32_t j = 0; j < n_rows; j++) {
        int32_t b = rows[j] / T, i = rows[j] % T;
        float *z = logits + (size_t)j * vocab_size;
        if (i > e->at && e->drawn[b]) e->seen_after++;
        if (i == e->at) {
            for (int v = 0; v < vocab_size; v++) z[v] = v == EOS ? 0.0f : -INFINITY;
        } else {
            z[EOS] = -INFINITY;
        }
    }
    return 0;
}

static int32_t eos_cb(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                      int32_t batch, int32_t seq_len, const int32_t *changed, int32_t n_changed)
{
    eos_state *e = user;
    (void)step; (void)n_steps;
    for (int32_t j = 0; j < n_changed; j++) {
        if (j > 0) assert_true(changed[j] > changed[j - 1]); /* ascending, no repeat */
        (void)canvas;
    }
    for (int32_t b = 0; b < batch; b++)
        for (int32_t i = 0; i < seq_len; i++)
            if (canvas[b * seq_len + i] == EOS) e->drawn[b] = 1;
    return 0;
}

/* Generation stops at the end token: what follows it is [PAD], nothing
 * after it draws a token once it is there, the blocks after it need no
 * model call, and decoding-style trimming (the first [PAD]) ends the text
 * right after it. */
static void test_eos_stops_generation(void **state)
{
    (void)state;
    for (int si = 0; si < 4; si++) {
        for (int blocks = 0; blocks < 2; blocks++) {
            eos_state e = { .at = 5 };
            td_sampler_config c = config(strategies[si], 4);
            c.eos_id = EOS;
            c.block_len = blocks ? 4 : 0;
            td_sampler *s = sampler_of(g_model, &c);
            assert_int_equal(td_sampler_set_logits_hook(s, force_eos, &e), TD_OK);
            int32_t canvas[3 * T];
            all_masks(canvas, 3 * T);
            canvas[T + 0] = 3; /* a prompt */
            canvas[2 * T + T - 1] = 7; /* a fixed id after the end stays */
            td_sample_stats st = { .struct_size = sizeof st };
            assert_int_equal(td_sampler_generate(s, canvas, 3, T, eos_cb, &e, &st), TD_OK);
            td_sampler_free(s);
            for (int b = 0; b < 3; b++) {
                const int32_t *row = canvas + b * T;
                for (int i = 0; i < 5; i++) assert_true(row[i] >= 0 && row[i] < EOS);
                assert_int_equal(row[5], EOS);
                for (int i = 6; i < T; i++)
                    assert_int_equal(row[i], b == 2 && i == T - 1 ? 7 : PAD);
            }
            assert_int_equal(count(canvas, 3 * T, MASK), 0);
            if (blocks) {
                /* blocks 2 and 3 hold no [MASK] once the end is drawn in block 1 */
                assert_int_equal(e.seen_after, 0);
                assert_true(st.model_calls <= 2 * 4);
            }
        }
    }
    /* an end in the prompt: everything generated after it is [PAD] at once */
    td_sampler_config c = config(TD_SAMPLER_MAX_PROB, 4);
    c.eos_id = EOS;
    td_sampler *s = sampler_of(g_model, &c);
    int32_t canvas[T];
    all_masks(canvas, T);
    canvas[2] = EOS;
    assert_int_equal(td_sampler_generate(s, canvas, 1, T, NULL, NULL, NULL), TD_OK);
    td_sampler_free(s);
    for (int i = 3; i < T; i++) assert_int_equal(canvas[i], PAD);
    assert_true(canvas[0] != MASK && canvas[1] != MASK);
}

/* Learning to stop: a small model trained briefly on a corpus of short lines
 * packed with [EOS] (td_corpus_create_docs) ends its text after a line: given
 * a line as the prompt it writes [EOS] next, and the sampler pads the rest. */
static void test_eos_learned_from_packed_lines(void **state)
{
    (void)state;
    enum { TT = 16, BB = 16 };
    td_tokenizer *tok;
    assert_int_equal(td_tokenizer_create_byte_eos(NULL, &tok), TD_OK);
    int32_t vocab, mask, pad, eos;
    assert_int_equal(td_tokenizer_vocab_size(tok, &vocab), TD_OK);
    assert_int_equal(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask), TD_OK);
    assert_int_equal(td_tokenizer_special_id(tok, TD_TOKEN_PAD, &pad), TD_OK);
    assert_int_equal(td_tokenizer_special_id(tok, TD_TOKEN_EOS, &eos), TD_OK);
    static char text[4000];
    size_t len = 0;
    for (int i = 0; i < 200; i++) len += (size_t)sprintf(text + len, "%s\n", i % 2 ? "dog" : "cat");
    td_corpus *corpus;
    assert_int_equal(td_corpus_create_docs(text, len, "\n", tok, NULL, &corpus), TD_OK);
    td_model *m = toy_model_sized(vocab, mask, TT, 32, 2, 2, 64, 3, NULL);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = BB;
    c.seq_len = TT;
    c.lr = 1e-2f;
    c.min_lr = 1e-3f;
    c.warmup_steps = 10;
    c.total_steps = 300;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, g_loglin, &c, &tr), TD_OK);
    int32_t tokens[BB * TT];
    for (int k = 0; k < 300; k++) {
        assert_int_equal(td_corpus_batch(corpus, TD_SPLIT_TRAIN, 1, (uint64_t)k, BB, TT, tokens),
                         TD_OK);
        assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_OK);
    }
    td_trainer_free(tr);
    td_sampler_config sc;
    assert_int_equal(td_sampler_config_default(&sc), TD_OK);
    sc.strategy = TD_SAMPLER_MAX_PROB;
    sc.temperature = 0.0f;
    sc.steps = 4;
    sc.block_len = 4;
    sc.pad_id = pad;
    sc.eos_id = eos;
    sc.max_batch = 2;
    td_sampler *s = sampler_of(m, &sc);
    int32_t canvas[2 * TT];
    for (int i = 0; i < 2 * TT; i++) canvas[i] = mask;
    const char *prompts[2] = { "cat\n", "dog\n" };
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++) canvas[b * TT + i] = (unsigned char)prompts[b][i];
    td_sample_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_sampler_generate(s, canvas, 2, TT, NULL, NULL, &st), TD_OK);
    for (int b = 0; b < 2; b++) {
        assert_int_equal(canvas[b * TT + 4], eos);
        for (int i = 5; i < TT; i++) assert_int_equal(canvas[b * TT + i], pad);
        char out[64];
        size_t n;
        assert_int_equal(td_tokenizer_decode(tok, canvas + b * TT, TT, NULL, out, sizeof out, &n),
                         TD_OK);
        assert_string_equal(out, prompts[b]); /* the text ends at [EOS] */
    }
    assert_int_equal(st.model_calls, 1); /* one block; the later ones are [PAD] */
    td_sampler_free(s);
    td_model_free(m);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
}

/* ---- failures ------------------------------------------------------------------ */

static void expect_bad(td_sampler_config c, const char *field)
{
    td_sampler *s = (td_sampler *)&s;
    assert_int_equal(td_sampler_create(g_model, g_loglin, &c, &s), TD_ERR_INVALID_ARG);
    assert_null(s);
    if (strstr(td_last_error_message(), field) == NULL) fail_msg("%s", td_last_error_message());
}

static void test_invalid_configs(void **state)
{
    (void)state;
    td_sampler_config c0 = config(TD_SAMPLER_MAX_PROB, 4), c;
    c = c0; c.threshold = -0.1f; expect_bad(c, "threshold");
    c = c0; c.threshold = 1.5f; expect_bad(c, "threshold");
    c = c0; c.threshold = NAN; expect_bad(c, "threshold");
    c = c0; c.factor = -1.0f; expect_bad(c, "factor");
    c = c0; c.factor = INFINITY; expect_bad(c, "factor");
    c = c0; c.factor = 1.0f; c.threshold = 0.9f; expect_bad(c, "factor");
    c = c0; c.threshold = 0.9f; c.strategy = TD_SAMPLER_ANCESTRAL; expect_bad(c, "threshold");
    c = c0; c.threshold = 0.9f; c.strategy = TD_SAMPLER_ENTROPY; expect_bad(c, "threshold");
    c = c0; c.threshold = 0.9f; c.alg_temperature = 0.5f; expect_bad(c, "alg_temperature");
    c = c0; c.remask = 4; expect_bad(c, "remask");
    c = c0; c.remask = -1; expect_bad(c, "remask");
    c = c0; c.remask = 1; c.eta = -0.5f; expect_bad(c, "eta");
    c = c0; c.remask = 1; c.eta = NAN; expect_bad(c, "eta");
    c = c0; c.remask = 1; c.eta = 1.5f; expect_bad(c, "eta");
    c = c0; c.eta = 0.5f; expect_bad(c, "eta"); /* no remask schedule */
    c = c0; c.remask_t_on = 0.05f; expect_bad(c, "t_on");
    c = c0; c.remask_t_off = -0.1f; expect_bad(c, "t_off");
    c = c0; c.remask_t_on = 1.5f; expect_bad(c, "t_on");
    c = c0; c.remask_t_on = NAN; expect_bad(c, "t_on");
    c = c0; c.remask_alpha_on = 0.0f; expect_bad(c, "alpha_on");
    c = c0; c.remask_alpha_on = 1.0f; expect_bad(c, "alpha_on");
    c = c0; c.remask_alpha_on = NAN; expect_bad(c, "alpha_on");
    c = c0; c.guidance = NAN; expect_bad(c, "guidance");
    c = c0; c.guidance = INFINITY; expect_bad(c, "guidance");
    c = c0; c.guidance = -INFINITY; expect_bad(c, "guidance");
    c = c0; c.eos_id = V; expect_bad(c, "eos_id");
    c = c0; c.eos_id = -2; expect_bad(c, "eos_id");
    c = c0; c.eos_id = MASK; expect_bad(c, "eos_id");
    c = c0; c.eos_id = PAD; expect_bad(c, "eos_id");
    c = c0; c.eos_id = 3; c.pad_id = -1; expect_bad(c, "pad_id");
    c = c0; c.eos_id = 3; c.remask = 1; c.eta = 0.5f; expect_bad(c, "remask");
    c = c0; c.approx_cache = 3; expect_bad(c, "approx_cache");
    c = c0; c.approx_cache = -1; expect_bad(c, "approx_cache");
    c = c0; c.approx_cache = TD_SAMPLER_APPROX_DUAL; expect_bad(c, "block_len");
    c = c0; c.approx_cache = 1; c.block_len = 4; c.guidance = 1.0f; expect_bad(c, "guidance");
    /* the boundary values that are valid */
    td_sampler *s;
    c = c0; c.threshold = 1.0f; c.remask = TD_SAMPLER_REMASK_LOOP; c.eta = 1.0f;
    c.remask_t_on = 1.0f; c.remask_t_off = 0.0f; c.guidance = -2.0f;
    assert_int_equal(td_sampler_create(g_model, g_loglin, &c, &s), TD_OK);
    td_sampler_free(s);
    c = c0; c.strategy = TD_SAMPLER_MARGIN; c.factor = 1e-3f;
    assert_int_equal(td_sampler_create(g_model, g_loglin, &c, &s), TD_OK);
    td_sampler_free(s);
    /* a 96-byte config: approx_cache and eos_id keep their defaults */
    c = c0;
    c.struct_size = 96;
    c.approx_cache = 7;
    assert_int_equal(td_sampler_create(g_model, g_loglin, &c, &s), TD_OK);
    td_sampler_free(s);
    /* a 1.0-sized config: the new fields keep their defaults */
    c = c0;
    c.struct_size = 64;
    c.guidance = NAN; /* beyond the caller's struct: not read */
    assert_int_equal(td_sampler_create(g_model, g_loglin, &c, &s), TD_OK);
    td_sampler_free(s);
}

static int32_t no_stream(void *u, int32_t b, const int32_t *p, int32_t n, int32_t k)
{
    (void)u; (void)b; (void)p; (void)n; (void)k;
    return 0;
}

static int32_t no_hook(void *u, const int32_t *r, int32_t n, float *l, int32_t v)
{
    (void)u; (void)r; (void)n; (void)l; (void)v;
    return 0;
}

/* Creation with every option fails cleanly at each allocation; generation
 * with them allocates nothing. */
static void test_allocation_failures(void **state)
{
    (void)state;
    test_heap h;
    td_allocator a = test_heap_allocator(&h);
    td_model *m = toy_model_create(V, MASK, T, 11, &a);
    long base = h.live;
    for (int variant = 0; variant < 3; variant++) {
        td_sampler_config c = config(TD_SAMPLER_MAX_PROB, 5);
        c.top_k = 3;
        c.guidance = 1.5f;
        c.remask = variant ? TD_SAMPLER_REMASK_LOOP : TD_SAMPLER_REMASK_CAP;
        c.eta = 0.3f;
        c.threshold = variant ? 0.0f : 0.7f;
        c.factor = variant ? 1.0f : 0.0f;
        if (variant == 2) { /* approximate caching (not with guidance) */
            c.guidance = 0.0f;
            c.approx_cache = TD_SAMPLER_APPROX_DUAL;
            c.block_len = 4;
            c.n_threads = 2;
            c.remask = TD_SAMPLER_REMASK_NONE;
            c.eta = 0.0f;
            c.eos_id = 9;
        }
        for (long k = 0;; k++) {
            h.fail_at = h.calls + k;
            td_sampler *s = (td_sampler *)&s;
            td_status st = td_sampler_create(m, g_loglin, &c, &s);
            if (st == TD_OK) {
                h.fail_at = h.calls;
                long calls = h.calls;
                const int32_t ban[2] = { 1, 2 };
                assert_int_equal(td_sampler_set_tokens(s, TD_SAMPLER_TOKENS_BAN, ban, 2), TD_OK);
                assert_int_equal(td_sampler_set_stream(s, no_stream, NULL), TD_OK);
                assert_int_equal(td_sampler_set_logits_hook(s, no_hook, NULL), TD_OK);
                int32_t canvas[BMAX * T];
                all_masks(canvas, BMAX * T);
                canvas[3] = 4;
                assert_int_equal(td_sampler_generate(s, canvas, BMAX, T, NULL, NULL, NULL), TD_OK);
                assert_int_equal(count(canvas, BMAX * T, MASK), 0);
                assert_int_equal(h.calls, calls);
                td_sampler_free(s);
                assert_int_equal(h.live, base);
                break;
            }
            assert_int_equal(st, TD_ERR_NOMEM);
            assert_null(s);
            assert_int_equal(h.live, base);
            assert_true(k < 60);
        }
    }
    td_model_free(m);
    assert_int_equal(h.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_reveals_what_exceeds_it),
        cmocka_unit_test(test_factor_rule),
        cmocka_unit_test(test_threshold_calls),
        cmocka_unit_test(test_remask_probabilities),
        cmocka_unit_test(test_remask_never_touches_fixed),
        cmocka_unit_test(test_eta_zero_is_plain),
        cmocka_unit_test(test_remask_loop_window),
        cmocka_unit_test(test_stream_never_revises),
        cmocka_unit_test(test_stream_cancels),
        cmocka_unit_test(test_ban_and_allow),
        cmocka_unit_test(test_bad_token_lists),
        cmocka_unit_test(test_logits_hook),
        cmocka_unit_test(test_guidance),
        cmocka_unit_test(test_eos_stops_generation),
        cmocka_unit_test(test_eos_learned_from_packed_lines),
        cmocka_unit_test(test_approx_cache_exact_one_layer),
        cmocka_unit_test(test_approx_cache_refresh),
        cmocka_unit_test(test_invalid_configs),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
