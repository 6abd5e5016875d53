/* The small model and schedules shared by the trainer, sampler and
 * evaluation tests (include after <cmocka.h>). */
#ifndef TD_TEST_TOY_H
#define TD_TEST_TOY_H

#include <stdlib.h>

#include "textdiff/textdiff.h"

/* A RoPE model of the given shape over vocab ids [0, vocab). */
static inline td_model *toy_model_sized(int32_t vocab, int32_t mask, int32_t max_seq_len,
                                        int32_t d_model, int32_t n_layers, int32_t n_heads,
                                        int32_t d_ff, uint64_t seed, const td_allocator *a)
{
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.vocab_size = vocab;
    c.mask_id = mask;
    c.max_seq_len = max_seq_len;
    c.d_model = d_model;
    c.n_layers = n_layers;
    c.n_heads = n_heads;
    c.d_ff = d_ff;
    td_model *m = NULL;
    assert_int_equal(td_model_create(&c, seed, a, &m), TD_OK);
    return m;
}

/* A 2-layer, 2-head RoPE model of width 32 over vocab ids [0, vocab). */
static inline td_model *toy_model_create(int32_t vocab, int32_t mask, int32_t max_seq_len,
                                         uint64_t seed, const td_allocator *a)
{
    return toy_model_sized(vocab, mask, max_seq_len, 32, 2, 2, 64, seed, a);
}

/* A schedule of `kind` with its defaults. */
static inline td_schedule *toy_schedule(td_schedule_kind kind)
{
    td_schedule_config c;
    td_schedule *s = NULL;
    assert_int_equal(td_schedule_config_default(&c, kind), TD_OK);
    assert_int_equal(td_schedule_create(&c, NULL, &s), TD_OK);
    return s;
}

/* 250 steps on the counting sequences (step·7 + b·3 + i) mod 10, batch 16
 * × seq_len, lr 1e-2: a toy model that has learnt something to sample.
 * Returns 0, or -1 when a call fails (for a cmocka group setup). */
static inline int toy_train_counting(td_model *m, const td_schedule *s, int32_t seq_len)
{
    enum { B = 16, STEPS = 250 };
    td_trainer_config c;
    if (td_trainer_config_default(&c) != TD_OK) return -1;
    c.batch_size = B;
    c.seq_len = seq_len;
    c.lr = 1e-2f;
    c.min_lr = 1e-3f;
    c.warmup_steps = 10;
    c.total_steps = STEPS;
    td_trainer *tr;
    if (td_trainer_create(m, s, &c, &tr) != TD_OK) return -1;
    int32_t *tokens = malloc(sizeof *tokens * B * (size_t)seq_len);
    int rc = tokens ? 0 : -1;
    for (int step = 0; step < STEPS && rc == 0; step++) {
        for (int b = 0; b < B; b++)
            for (int i = 0; i < seq_len; i++)
                tokens[b * seq_len + i] = (step * 7 + b * 3 + i) % 10;
        if (td_trainer_step(tr, tokens, NULL) != TD_OK) rc = -1;
    }
    free(tokens);
    td_trainer_free(tr);
    return rc;
}

#endif
