/* The step profile (util/profile.h): a trainer with a profile attached
 * trains bit for bit like one without, its phases and kernel categories are
 * filled where they should be and nowhere else, and detaching stops it.
 *
 * Nothing here asserts on elapsed time, which another process on the
 * machine can stretch anywhere. The timing tests give the profile a clock
 * that counts its own reads: the "nanoseconds" become a count of clock
 * reads, fixed by the code path alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/toy.h"
#include "model/model_api.h"
#include "textdiff/textdiff.h"
#include "train/trainer.h"
#include "util/profile.h"

enum { B = 4, T = 16, V = 12, MASK = 10, STEPS = 3 };

static td_model *tiny_model(void) { return toy_model_create(V, MASK, T, 7, NULL); }

static td_trainer *tiny_trainer(td_model *m, td_schedule **s)
{
    td_schedule_config sc;
    assert_int_equal(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR), TD_OK);
    assert_int_equal(td_schedule_create(&sc, NULL, s), TD_OK);
    td_trainer_config c;
    assert_int_equal(td_trainer_config_default(&c), TD_OK);
    c.batch_size = B;
    c.seq_len = T;
    c.warmup_steps = 1;
    td_trainer *t = NULL;
    assert_int_equal(td_trainer_create(m, *s, &c, &t), TD_OK);
    return t;
}

static void batch(int32_t *tokens, int step)
{
    for (int i = 0; i < B * T; i++) tokens[i] = (i * 7 + step * 3) % MASK;
}

/* The counting clock; it starts away from 0, which the trainer reserves
 * for "no mark". */
static uint64_t ticks = 1000;
static uint64_t tick(void) { return ++ticks; }

static void profile_changes_nothing(void **state)
{
    (void)state;
    td_model *m0 = tiny_model(), *m1 = tiny_model();
    td_schedule *s0, *s1;
    td_trainer *t0 = tiny_trainer(m0, &s0), *t1 = tiny_trainer(m1, &s1);
    tdi_profile prof;
    memset(&prof, 0, sizeof prof);
    tdi_trainer_set_profile(t1, &prof);
    int32_t tokens[B * T];
    for (int s = 0; s < STEPS; s++) {
        batch(tokens, s);
        td_train_stats a = { .struct_size = sizeof a }, b = { .struct_size = sizeof b };
        assert_int_equal(td_trainer_step(t0, tokens, &a), TD_OK);
        assert_int_equal(td_trainer_step(t1, tokens, &b), TD_OK);
        assert_memory_equal(&a.loss, &b.loss, sizeof a.loss);
        assert_int_equal(a.n_masked, b.n_masked);
    }
    assert_int_equal(m0->m->n_floats, m1->m->n_floats);
    assert_memory_equal(m0->m->params, m1->m->params, m0->m->n_floats * sizeof(float));
    assert_int_equal(prof.steps, STEPS);
    td_trainer_free(t0);
    td_trainer_free(t1);
    td_schedule_free(s0);
    td_schedule_free(s1);
    td_model_free(m0);
    td_model_free(m1);
}

static void phases_and_kinds(void **state)
{
    (void)state;
    td_model *m = tiny_model();
    td_schedule *s;
    td_trainer *t = tiny_trainer(m, &s);
    tdi_profile prof;
    memset(&prof, 0, sizeof prof);
    prof.clock = tick;
    int32_t tokens[B * T];
    batch(tokens, 0);
    /* Untimed: a step before attaching adds nothing, and reads no clock. */
    uint64_t before_ticks = ticks;
    assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    assert_int_equal(prof.steps, 0);
    assert_true(ticks == before_ticks);

    tdi_trainer_set_profile(t, &prof);
    uint64_t t0 = tick();
    for (int i = 0; i < STEPS; i++) {
        batch(tokens, i + 1);
        assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    }
    uint64_t elapsed = tick() - t0;
    assert_int_equal(prof.steps, STEPS);

    uint64_t sum = 0;
    for (int ph = 0; ph < TDI_PROF_N_PHASES; ph++) {
        const uint64_t *ns = prof.ns[ph];
        assert_true(ns[TDI_PROF_TOTAL] > 0);
        assert_true(ns[TDI_PROF_MATMUL] + ns[TDI_PROF_ATTENTION] <= ns[TDI_PROF_TOTAL]);
        sum += ns[TDI_PROF_TOTAL];
    }
    /* The network's products and attention run in forward and backward. */
    for (int ph = TDI_PROF_FORWARD; ph <= TDI_PROF_BACKWARD; ph++) {
        assert_true(prof.ns[ph][TDI_PROF_MATMUL] > 0);
        assert_true(prof.ns[ph][TDI_PROF_ATTENTION] > 0);
    }
    /* The optimizer has neither. */
    assert_true(prof.ns[TDI_PROF_OPTIMIZER][TDI_PROF_MATMUL] == 0);
    assert_true(prof.ns[TDI_PROF_OPTIMIZER][TDI_PROF_ATTENTION] == 0);
    /* The phases lie inside the steps and cover them: outside the phases
     * the clock is read only to begin each of a step's four phase
     * intervals (zeroing the gradients, forward, backward, optimizer), and
     * once more by this test at the end. */
    assert_true(sum <= elapsed);
    assert_true(elapsed - sum <= 4 * STEPS + 1);

    /* Detached: later steps leave it alone. */
    tdi_profile before;
    memcpy(&before, &prof, sizeof prof);
    tdi_trainer_set_profile(t, NULL);
    assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    assert_memory_equal(&before, &prof, sizeof prof);

    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(m);
}

static void marks_without_profile(void **state)
{
    (void)state;
    /* No profile: no clock read, nothing written. */
    assert_true(tdi_prof_mark(NULL) == 0);
    assert_true(tdi_prof_phase_begin(NULL, TDI_PROF_BACKWARD) == 0);
    tdi_prof_add(NULL, TDI_PROF_MATMUL, 0);
    tdi_prof_phase_end(NULL, 0);

    tdi_profile p;
    memset(&p, 0, sizeof p);
    p.clock = tick;
    uint64_t mark = tdi_prof_phase_begin(&p, TDI_PROF_BACKWARD); /* read 1 */
    assert_int_equal(p.phase, TDI_PROF_BACKWARD);
    int calls = 0;
    TDI_PROF_TIME(&p, TDI_PROF_ATTENTION, calls++);              /* reads 2, 3 */
    tdi_prof_phase_end(&p, mark);                                /* read 4 */
    assert_int_equal(calls, 1);
    assert_true(p.ns[TDI_PROF_BACKWARD][TDI_PROF_ATTENTION] == 1);
    assert_true(p.ns[TDI_PROF_BACKWARD][TDI_PROF_TOTAL] == 3);
    assert_true(p.ns[TDI_PROF_FORWARD][TDI_PROF_TOTAL] == 0);
    assert_true(p.ns[TDI_PROF_BACKWARD][TDI_PROF_MATMUL] == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(profile_changes_nothing),
        cmocka_unit_test(phases_and_kinds),
        cmocka_unit_test(marks_without_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
