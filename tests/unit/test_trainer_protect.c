/* Prompt-protected (SFT-style) training: protected positions are never
 * masked (or, dropped, always masked) and never scored, in the corruption (against the unprotected
 * corruption drawn from the same stream) and in td_trainer_step_protected
 * (no protection = td_trainer_step bit for bit). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/toy.h"
#include "diffusion/corrupt.h"
#include "model/model_api.h"
#include "textdiff/textdiff.h"

enum { B = 4, T = 12, V = 12, MASK = 10 };

typedef struct batch {
    int32_t clean[B * T];
    uint8_t protect[B * T];
    int32_t ids[B * T], rows[B * T], targets[B * T];
    float weights[B * T];
    tdi_corruption out;
} batch;

static void init_batch(batch *bt)
{
    memset(bt, 0, sizeof *bt);
    for (int r = 0; r < B * T; r++) bt->clean[r] = (r * 7 + 3) % 10;
    /* a prompt of b + 2 positions in sequence b, dropped (2) in sequence 2,
     * and sequence 3 all prompt */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            bt->protect[b * T + i] = b == 3 ? 1 : i < b + 2 ? (b == 2 ? 2 : 1) : 0;
    bt->out = (tdi_corruption){ bt->ids, bt->rows, bt->targets, bt->weights, B * T, 0 };
}

static int free_positions(const uint8_t *protect, int b)
{
    int f = 0;
    for (int i = 0; i < T; i++) f += !protect[b * T + i];
    return f;
}

/* The same stream with and without protection: the unprotected positions
 * are corrupted identically, the protected ones stay clean and are not
 * scored, and the weights are w(t)/(F_b·B). */
static void test_corruption_skips_protected(void **state)
{
    (void)state;
    tdi_schedule s;
    assert_int_equal(tdi_schedule_init(&s, TDI_SCHEDULE_LOGLINEAR), TD_OK);
    tdi_corrupt_vocab v = { V, MASK, 0, MASK };
    const double ts[B] = { 0.3, 0.7, 1.0, 0.9 };
    for (int rep = 0; rep < 20; rep++) {
        batch a, p;
        init_batch(&a);
        init_batch(&p);
        tdi_rng ra, rp;
        tdi_rng_seed(&ra, 100 + (uint64_t)rep);
        rp = ra;
        assert_int_equal(tdi_corrupt(&s, &v, a.clean, B, T, ts, &ra, &a.out), TD_OK);
        assert_int_equal(tdi_corrupt_protected(&s, &v, p.clean, p.protect, B, T, ts, &rp, &p.out),
                         TD_OK);
        assert_memory_equal(&ra, &rp, sizeof ra); /* the same draws */
        size_t j = 0;
        for (int r = 0; r < B * T; r++) {
            int b = r / T;
            if (p.protect[r]) { /* kept, or masked when dropped; never scored */
                assert_int_equal(p.ids[r], p.protect[r] == 2 ? MASK : p.clean[r]);
                continue;
            }
            assert_int_equal(p.ids[r], a.ids[r]);
            if (p.ids[r] == MASK) {
                assert_true(j < p.out.n);
                assert_int_equal(p.rows[j], r);
                assert_int_equal(p.targets[j], p.clean[r]);
                float w = (float)(tdi_schedule_weight(&s, ts[b]) /
                                  ((double)free_positions(p.protect, b) * B));
                assert_true(p.weights[j] == w);
                j++;
            }
        }
        assert_int_equal(j, p.out.n);
        /* no protection at all: tdi_corrupt's output, bit for bit */
        batch z;
        init_batch(&z);
        memset(z.protect, 0, sizeof z.protect);
        tdi_rng_seed(&rp, 100 + (uint64_t)rep);
        assert_int_equal(tdi_corrupt_protected(&s, &v, z.clean, z.protect, B, T, ts, &rp, &z.out),
                         TD_OK);
        assert_int_equal(z.out.n, a.out.n);
        assert_memory_equal(z.ids, a.ids, sizeof a.ids);
        assert_memory_equal(z.rows, a.rows, a.out.n * sizeof *a.rows);
        assert_memory_equal(z.weights, a.weights, a.out.n * sizeof *a.weights);
    }
    batch bad;
    init_batch(&bad);
    bad.protect[5] = 3;
    tdi_rng r;
    tdi_rng_seed(&r, 1);
    assert_int_equal(tdi_corrupt_protected(&s, &v, bad.clean, bad.protect, B, T, ts, &r, &bad.out),
                     TD_ERR_INVALID_ARG);
}

static void test_shift_skips_protected(void **state)
{
    (void)state;
    tdi_corrupt_vocab v = { V, MASK, 0, MASK };
    batch p;
    init_batch(&p);
    assert_int_equal(tdi_corrupt_shift_protected(&v, p.clean, p.protect, B, T, &p.out), TD_OK);
    size_t j = 0;
    for (int r = 0; r < B * T; r++) {
        int b = r / T, i = r % T;
        /* the input: shifted, a dropped prompt masked */
        assert_int_equal(p.ids[r], i == 0 || p.protect[r - 1] == 2 ? MASK : p.clean[r - 1]);
        if (p.protect[r]) continue;
        assert_int_equal(p.rows[j], r);
        assert_int_equal(p.targets[j], p.clean[r]);
        assert_true(p.weights[j] == (float)(1.0 / ((double)free_positions(p.protect, b) * B)));
        j++;
    }
    assert_int_equal(j, p.out.n);
}

static td_trainer *trainer_of(td_model *m, const td_schedule *s)
{
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = B;
    c.seq_len = T;
    td_trainer *t = NULL;
    assert_int_equal(td_trainer_create(m, s, &c, &t), TD_OK);
    return t;
}

static void params(const td_model *m, float **p, size_t *n)
{
    const tdi_model *im = m->m;
    *p = im->params;
    *n = im->n_floats;
}

/* All zeros (or NULL) is td_trainer_step; a prompt only ever lowers the
 * scored count, step by step on the same stream; all protected scores
 * nothing; a bad flag changes nothing. */
static void test_trainer_step_protected(void **state)
{
    (void)state;
    const int causal_cases[2] = { 0, 1 };
    for (int ci = 0; ci < 2; ci++) {
        td_model_config mc;
        td_model_config_default(&mc);
        mc.vocab_size = V;
        mc.mask_id = MASK;
        mc.max_seq_len = T;
        mc.d_model = 16;
        mc.n_layers = 1;
        mc.n_heads = 2;
        mc.d_ff = 32;
        mc.causal = causal_cases[ci];
        td_model *m[3];
        for (int k = 0; k < 3; k++) assert_int_equal(td_model_create(&mc, 5, NULL, &m[k]), TD_OK);
        td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
        td_trainer *tr[3];
        for (int k = 0; k < 3; k++) tr[k] = trainer_of(m[k], s);
        batch bt;
        init_batch(&bt);
        uint8_t zeros[B * T] = { 0 };
        long scored_plain = 0, scored_prot = 0;
        for (int step = 0; step < 6; step++) {
            td_train_stats st[3];
            for (int k = 0; k < 3; k++) st[k].struct_size = sizeof st[k];
            assert_int_equal(td_trainer_step(tr[0], bt.clean, &st[0]), TD_OK);
            assert_int_equal(td_trainer_step_protected(tr[1], bt.clean, step % 2 ? zeros : NULL,
                                                       &st[1]), TD_OK);
            assert_int_equal(td_trainer_step_protected(tr[2], bt.clean, bt.protect, &st[2]),
                             TD_OK);
            assert_memory_equal(&st[0], &st[1], sizeof st[0]);
            assert_true(st[2].n_masked <= st[0].n_masked);
            if (causal_cases[ci]) {
                int f = 0;
                for (int b = 0; b < B; b++) f += free_positions(bt.protect, b);
                assert_int_equal(st[2].n_masked, f);
            }
            scored_plain += st[0].n_masked;
            scored_prot += st[2].n_masked;
        }
        assert_true(scored_prot < scored_plain);
        float *p0, *p1;
        size_t n0, n1;
        params(m[0], &p0, &n0);
        params(m[1], &p1, &n1);
        assert_memory_equal(p0, p1, n0 * sizeof *p0);
        /* everything protected: nothing scored */
        uint8_t all[B * T];
        memset(all, 1, sizeof all);
        td_train_stats st = { .struct_size = sizeof st };
        assert_int_equal(td_trainer_step_protected(tr[2], bt.clean, all, &st), TD_OK);
        assert_int_equal(st.n_masked, 0);
        assert_true(st.loss == 0.0);
        /* a flag other than 0 or 1 */
        float *p2;
        size_t n2;
        params(m[2], &p2, &n2);
        float *copy = malloc(n2 * sizeof *copy);
        memcpy(copy, p2, n2 * sizeof *copy);
        int64_t steps_before = 0, steps_after = 0;
        assert_int_equal(td_trainer_get_step(tr[2], &steps_before), TD_OK);
        all[7] = 3;
        assert_int_equal(td_trainer_step_protected(tr[2], bt.clean, all, &st), TD_ERR_INVALID_ARG);
        assert_non_null(strstr(td_last_error_message(), "protect[7]"));
        assert_int_equal(td_trainer_get_step(tr[2], &steps_after), TD_OK);
        assert_int_equal(steps_after, steps_before);
        assert_memory_equal(copy, p2, n2 * sizeof *copy);
        free(copy);
        assert_int_equal(td_trainer_step_protected(NULL, bt.clean, all, &st), TD_ERR_INVALID_ARG);
        assert_int_equal(td_trainer_step_protected(tr[2], NULL, all, &st), TD_ERR_INVALID_ARG);
        for (int k = 0; k < 3; k++) {
            td_trainer_free(tr[k]);
            td_model_free(m[k]);
        }
        td_schedule_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corruption_skips_protected),
        cmocka_unit_test(test_shift_skips_protected),
        cmocka_unit_test(test_trainer_step_protected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
