/* libFuzzer target for the model and trainer checkpoints as the public API
 * reads them: td_model_load_memory, and td_trainer_resume from a file.
 *
 * fuzz_checkpoint holds the container format to its promises; this target
 * reaches the fields behind it — the model configuration, tensor shapes and
 * values, the stored tokenizer, the optimizer moments, step and generator
 * state — and checks what an accepted file promises a host:
 *   - the model answers td_model_logits (TD_OK, or TD_ERR_NUMERIC when its
 *     weights overflow), with the [MASK] column at −∞;
 *   - written back (tdi_model_write) and read again, it is the same model:
 *     the same configuration and bit for bit the same logits;
 *   - a trainer checkpoint the reader accepts also resumes into a trainer of
 *     that configuration, which then takes a step (TD_OK or TD_ERR_NUMERIC);
 *     a refused resume leaves that trainer's step count at 0.
 * Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, so that mutated
 * inputs pass the CRCs and reach these fields. Seeds: gen_model_seeds. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <textdiff/textdiff.h>

#include "io/checkpoint.h"
#include "model/model_io.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

enum { MAX_T = 4 };

/* logits of one sequence of min(MAX_T, max_seq_len) tokens; 0 if refused. */
static float *logits_of(const td_model *m, const td_model_config *c, td_status *st)
{
    int32_t n = c->max_seq_len < MAX_T ? c->max_seq_len : MAX_T;
    int32_t ids[MAX_T];
    for (int32_t i = 0; i < n; i++) ids[i] = (c->mask_id + i) % c->vocab_size;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab_size);
    CHECK(out != NULL);
    *st = td_model_logits(m, ids, 1, n, 1, out);
    CHECK(*st == TD_OK || *st == TD_ERR_NUMERIC);
    if (*st == TD_OK)
        for (int32_t i = 0; i < n; i++)
            CHECK(isinf(out[(size_t)i * (size_t)c->vocab_size + (size_t)c->mask_id]) &&
                  out[(size_t)i * (size_t)c->vocab_size + (size_t)c->mask_id] < 0);
    return out;
}

static void check_model(td_model *m)
{
    td_model_config c;
    c.struct_size = sizeof c;
    CHECK(td_model_get_config(m, &c) == TD_OK);
    CHECK(c.vocab_size >= 2 && c.mask_id >= 0 && c.mask_id < c.vocab_size);
    CHECK(c.max_seq_len >= 1 && c.d_model >= 1 && c.n_heads >= 1 && c.d_model % c.n_heads == 0);
    td_status st;
    float *a = logits_of(m, &c, &st);

    /* Written back and read again: the same model. */
    tdi_ckpt_writer *w = NULL;
    CHECK(tdi_ckpt_writer_create(NULL, &w) == TD_OK);
    CHECK(tdi_model_write(m, w, TDI_FORMAT_MODEL, 0) == TD_OK);
    void *buf = NULL;
    size_t n = 0;
    CHECK(tdi_ckpt_write_memory(w, &buf, &n) == TD_OK);
    td_model *back = NULL;
    CHECK(td_model_load_memory(buf, n, NULL, &back) == TD_OK);
    tdi_free(tdi_ckpt_writer_allocator(w), buf);
    tdi_ckpt_writer_free(w);
    td_model_config cb;
    cb.struct_size = sizeof cb;
    CHECK(td_model_get_config(back, &cb) == TD_OK);
    CHECK(memcmp(&c, &cb, sizeof c) == 0);
    td_status st2;
    float *b = logits_of(back, &cb, &st2);
    CHECK(st == st2);
    int32_t rows = c.max_seq_len < MAX_T ? c.max_seq_len : MAX_T;
    if (st == TD_OK)
        CHECK(memcmp(a, b, sizeof(float) * (size_t)rows * (size_t)c.vocab_size) == 0);
    free(a);
    free(b);
    td_model_free(back);
}

/* A trainer for `c`, resumed from the bytes written to a temporary file. */
static void check_resume(const td_model_config *c, const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_model_%ld.tdc", (long)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);

    td_model *m = NULL;
    td_schedule_config sc;
    td_schedule *s = NULL;
    td_trainer_config tc;
    td_trainer *t = NULL;
    CHECK(td_model_create(c, 1, NULL, &m) == TD_OK);
    CHECK(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR) == TD_OK);
    CHECK(td_schedule_create(&sc, NULL, &s) == TD_OK);
    CHECK(td_trainer_config_default(&tc) == TD_OK);
    tc.batch_size = 1;
    tc.seq_len = c->max_seq_len < MAX_T ? c->max_seq_len : MAX_T;
    CHECK(td_trainer_create(m, s, &tc, &t) == TD_OK);
    uint32_t all = TD_RESUME_ALLOW_SCHEDULE | TD_RESUME_ALLOW_BATCH | TD_RESUME_ALLOW_SEQ_LEN |
                   TD_RESUME_ALLOW_SEED;
    int64_t step = -1;
    if (td_trainer_resume(t, path, all) == TD_OK) {
        int32_t tokens[MAX_T];
        for (int32_t i = 0; i < tc.seq_len; i++) /* never [MASK] */
            tokens[i] = (c->mask_id + 1 + i % (c->vocab_size - 1)) % c->vocab_size;
        td_status st = td_trainer_step(t, tokens, NULL);
        CHECK(st == TD_OK || st == TD_ERR_NUMERIC);
    } else {
        CHECK(td_trainer_get_step(t, &step) == TD_OK && step == 0);
    }
    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(m);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_model *m = NULL;
    if (td_model_load_memory(data, size, NULL, &m) != TD_OK) {
        CHECK(m == NULL);
        return 0;
    }
    check_model(m);
    td_model_config c;
    c.struct_size = sizeof c;
    CHECK(td_model_get_config(m, &c) == TD_OK);
    td_model_free(m);
    /* A trainer checkpoint's extra fields (moments, step, generator). */
    check_resume(&c, data, size);
    return 0;
}
