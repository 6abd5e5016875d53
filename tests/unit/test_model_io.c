/* Model and trainer checkpoints: round trips, damaged files, resume. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "common/toy.h"
#include "model/model_api.h"
#include "model/model_io.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

static char dir[256];

static const char *path_of(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/td_model_io_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static td_model *small_model(uint64_t seed, int with_tokenizer)
{
    td_model_config c;
    td_model_config_default(&c);
    c.max_seq_len = 16;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_ff = 24;
    td_model *m;
    assert_int_equal(td_model_create(&c, seed, NULL, &m), TD_OK);
    if (with_tokenizer) {
        td_tokenizer *t;
        assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
        assert_int_equal(td_model_set_tokenizer(m, t), TD_OK);
        td_tokenizer_free(t);
    }
    return m;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*size);
    assert_int_equal(fread(buf, 1, *size, f), *size);
    fclose(f);
    return buf;
}

static void assert_same_model(const td_model *a, const td_model *b)
{
    td_model_config ca, cb;
    td_model_get_config(a, &ca);
    td_model_get_config(b, &cb);
    assert_memory_equal(&ca, &cb, sizeof ca);
    assert_int_equal(a->m->n_floats, b->m->n_floats);
    assert_memory_equal(a->m->params, b->m->params, a->m->n_floats * sizeof(float));
}

static void test_round_trip_to_the_bit(void **state)
{
    (void)state;
    td_model *m = small_model(3, 1), *back, *mem;
    assert_int_equal(td_model_save(m, path_of("m.tdm")), TD_OK);
    assert_int_equal(td_model_load(path_of("m.tdm"), NULL, &back), TD_OK);
    assert_same_model(m, back);
    size_t size;
    unsigned char *buf = read_all(path_of("m.tdm"), &size);
    assert_int_equal(td_model_load_memory(buf, size, NULL, &mem), TD_OK);
    assert_same_model(m, mem);
    td_tokenizer *tok;
    assert_int_equal(td_model_get_tokenizer(back, NULL, &tok), TD_OK);
    int32_t id;
    assert_int_equal(td_tokenizer_special_id(tok, TD_TOKEN_PAD, &id), TD_OK);
    assert_int_equal(id, 257);
    td_tokenizer_free(tok);
    /* Saving again replaces the file atomically with identical bytes. */
    assert_int_equal(td_model_save(back, path_of("m.tdm")), TD_OK);
    size_t size2;
    unsigned char *buf2 = read_all(path_of("m.tdm"), &size2);
    assert_int_equal(size, size2);
    assert_memory_equal(buf, buf2, size);
    free(buf);
    free(buf2);
    td_model_free(m);
    td_model_free(back);
    td_model_free(mem);
}

static void test_damaged_files_are_rejected(void **state)
{
    (void)state;
    td_model *m = small_model(4, 1), *out;
    assert_int_equal(td_model_save(m, path_of("d.tdm")), TD_OK);
    size_t size;
    unsigned char *buf = read_all(path_of("d.tdm"), &size);
    /* Every truncation: every byte of the first 4 KiB, then a stride. */
    for (size_t len = 1; len < size; len += len < 4096 ? 1 : 97) {
        out = (td_model *)&out;
        td_status st = td_model_load_memory(buf, len, NULL, &out);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT);
        assert_null(out);
    }
    /* Random single and double bit flips. */
    tdi_rng r;
    tdi_rng_seed(&r, 11);
    unsigned char *copy = malloc(size);
    for (int i = 0; i < 400; i++) {
        memcpy(copy, buf, size);
        for (int k = 0; k <= i % 2; k++) {
            size_t at = (size_t)tdi_rng_below(&r, size);
            copy[at] ^= (unsigned char)(1u << tdi_rng_below(&r, 8));
        }
        td_status st = td_model_load_memory(copy, size, NULL, &out);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT || st == TD_ERR_VERSION);
        assert_null(out);
    }
    assert_int_equal(td_model_load(path_of("missing.tdm"), NULL, &out), TD_ERR_IO);
    assert_int_equal(td_model_save(m, "/nonexistent-dir/x.tdm"), TD_ERR_IO);
    assert_int_equal(td_model_load_memory(buf, 0, NULL, &out), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_load(NULL, NULL, &out), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_save(NULL, path_of("x")), TD_ERR_INVALID_ARG);
    free(copy);
    free(buf);
    td_model_free(m);
}

/* Well-formed containers with a bad model inside. */
static td_status load_crafted(int variant)
{
    td_model *m = small_model(5, 0);
    tdi_ckpt_writer *w;
    assert_int_equal(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    tdi_ckpt_put_string(w, "format", variant == 0 ? "something-else" : "libtextdiff-model");
    const char *keys[] = { "model.vocab_size", "model.mask_id", "model.max_seq_len",
                           "model.d_model", "model.n_layers", "model.n_heads", "model.d_ff",
                           "model.pos_encoding", "model.norm_placement", "model.tie_embeddings" };
    int64_t vals[] = { 258, 256, 16, 16, 2, 2, 24, 0, 0, 1 };
    if (variant == 1) vals[3] = (int64_t)1 << 40;   /* absurd width */
    if (variant == 2) vals[5] = 3;                  /* heads do not divide d */
    for (int i = 0; i < 10; i++) tdi_ckpt_put_i64(w, keys[i], vals[i]);
    float *p = m->m->params;
    if (variant == 4) p[m->m->tensors[3].offset] = NAN;
    for (int32_t i = 0; i < m->m->n_tensors; i++) {
        const tdi_tensor *t = &m->m->tensors[i];
        if (variant == 5 && i == 2) continue; /* a tensor is missing */
        uint64_t dims[2] = { (uint64_t)t->rows, (uint64_t)t->cols };
        if (t->rows == 1) tdi_ckpt_add_tensor(w, t->name, TDI_DTYPE_F32, 1, dims + 1, p + t->offset, 0);
        else tdi_ckpt_add_tensor(w, t->name, TDI_DTYPE_F32, 2, dims, p + t->offset, 0);
    }
    unsigned char tok_bytes[64];
    if (variant == 7) { /* a tokenizer of another vocabulary */
        td_tokenizer *tok;
        size_t n = 0;
        assert_int_equal(td_tokenizer_create_char("abc", 3, 0, NULL, &tok), TD_OK);
        assert_int_equal(tdi_tokenizer_serialize(tok, tok_bytes, sizeof tok_bytes, &n), TD_OK);
        td_tokenizer_free(tok);
        uint64_t dim = n;
        tdi_ckpt_add_tensor(w, "tokenizer", TDI_DTYPE_U8, 1, &dim, tok_bytes, 0);
    }
    void *buf;
    size_t size;
    td_status st = tdi_ckpt_write_memory(w, &buf, &size);
    if (st == TD_OK) {
        td_model *out = NULL;
        st = td_model_load_memory(buf, size, NULL, &out);
        td_model_free(out);
        tdi_free(tdi_ckpt_writer_allocator(w), buf);
    }
    tdi_ckpt_writer_free(w);
    td_model_free(m);
    return st;
}

static void test_invalid_models_in_valid_files(void **state)
{
    (void)state;
    assert_int_equal(load_crafted(0), TD_ERR_FORMAT);
    assert_int_equal(load_crafted(1), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "d_model"));
    assert_int_equal(load_crafted(2), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "n_heads"));
    assert_int_equal(load_crafted(4), TD_ERR_CORRUPT);
    assert_non_null(strstr(td_last_error_message(), "non-finite"));
    assert_int_equal(load_crafted(5), TD_ERR_FORMAT);
    assert_int_equal(load_crafted(7), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "does not match"));
    assert_int_equal(load_crafted(6), TD_OK); /* the control: the same file, intact */
}

static void test_tokenizer_attachment(void **state)
{
    (void)state;
    td_model *m = small_model(6, 0);
    td_tokenizer *tok = (td_tokenizer *)&tok;
    assert_int_equal(td_model_get_tokenizer(m, NULL, &tok), TD_ERR_STATE);
    assert_null(tok);
    assert_int_equal(td_tokenizer_create_char("abc", 3, 0, NULL, &tok), TD_OK);
    assert_int_equal(td_model_set_tokenizer(m, tok), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "does not match"));
    td_tokenizer_free(tok);
    td_model_free(m);
}

/* ---- mapped models ------------------------------------------------------- */

static void write_all(const char *path, const void *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static int is_mapped(const td_model *m)
{
    const unsigned char *p = (const unsigned char *)m->m->params, *lo = m->m->map.addr;
    if (lo == NULL) return 0;
    assert_true(p >= lo && p + m->m->n_floats * sizeof(float) <= lo + m->m->map.size);
    return 1;
}

enum { LB = 2, LT = 16 };

/* Logits of a fixed batch, to compare models bit for bit. */
static float *logits_of(const td_model *m)
{
    int32_t ids[LB * LT];
    for (int i = 0; i < LB * LT; i++) ids[i] = (i * 37 + 5) % 256;
    ids[3] = 256; /* a [MASK] */
    float *out = malloc(sizeof *out * LB * LT * 258);
    assert_non_null(out);
    assert_int_equal(td_model_logits(m, ids, LB, LT, 1, out), TD_OK);
    return out;
}

static void assert_same_logits(const td_model *a, const td_model *b)
{
    float *la = logits_of(a), *lb = logits_of(b);
    assert_memory_equal(la, lb, sizeof *la * LB * LT * 258);
    free(la);
    free(lb);
}

/* The model's file written with every tensor compressed (an internal
 * option): readable, never mapped. */
static void save_compressed(const td_model *m, const char *path)
{
    tdi_ckpt_writer *w;
    assert_int_equal(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_int_equal(tdi_model_write(m, w, TDI_FORMAT_MODEL, TDI_CKPT_COMPRESS), TD_OK);
    assert_int_equal(tdi_ckpt_write_file(w, path), TD_OK);
    tdi_ckpt_writer_free(w);
}

static void test_load_maps_the_file(void **state)
{
    (void)state;
    td_model *m = small_model(8, 1), *mapped, *copied, *read, *packed;
    assert_true(m->m->n_floats > m->m->n_params); /* d_ff = 24: gaps between tensors */
    assert_int_equal(td_model_save(m, path_of("map.tdm")), TD_OK);
    assert_int_equal(td_model_load(path_of("map.tdm"), NULL, &mapped), TD_OK);
    assert_true(is_mapped(mapped));
    assert_same_model(m, mapped);
    size_t size;
    unsigned char *buf = read_all(path_of("map.tdm"), &size);
    assert_int_equal(td_model_load_memory(buf, size, NULL, &copied), TD_OK);
    assert_false(is_mapped(copied));
    assert_int_equal(tdi_model_load_file(path_of("map.tdm"), NULL, 0, &read), TD_OK);
    assert_false(is_mapped(read));
    save_compressed(m, path_of("packed.tdm"));
    assert_int_equal(td_model_load(path_of("packed.tdm"), NULL, &packed), TD_OK);
    assert_false(is_mapped(packed));
    assert_same_model(m, packed);
    assert_same_logits(m, mapped);
    assert_same_logits(copied, mapped);
    assert_same_logits(read, mapped);
    assert_same_logits(packed, mapped);
    td_tokenizer *tok;
    assert_int_equal(td_model_get_tokenizer(mapped, NULL, &tok), TD_OK);
    td_tokenizer_free(tok);

    /* The file replaced by another model (a rename: a new inode), then
     * deleted: the mapped model still reads the old one. */
    td_model *other = small_model(9, 1);
    assert_int_equal(td_model_save(other, path_of("map.tdm")), TD_OK);
    assert_same_logits(m, mapped);
    assert_int_equal(unlink(path_of("map.tdm")), 0);
    assert_same_logits(m, mapped);
    assert_same_model(m, mapped);
    /* A trainer checkpoint maps as a model too. */
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = 2;
    c.seq_len = 8;
    td_trainer *t;
    assert_int_equal(td_trainer_create(m, s, &c, &t), TD_OK);
    assert_int_equal(td_trainer_save(t, path_of("map.tdc")), TD_OK);
    td_model *from_trainer;
    assert_int_equal(td_model_load(path_of("map.tdc"), NULL, &from_trainer), TD_OK);
    assert_true(is_mapped(from_trainer));
    assert_same_logits(m, from_trainer);
    td_model_free(from_trainer);
    td_trainer_free(t);
    td_schedule_free(s);

    free(buf);
    td_model_free(other);
    td_model_free(m);
    td_model_free(mapped);
    td_model_free(copied);
    td_model_free(read);
    td_model_free(packed);
}

static void test_training_a_mapped_model_leaves_the_file(void **state)
{
    (void)state;
    td_model *m = small_model(10, 1), *mapped;
    assert_int_equal(td_model_save(m, path_of("train.tdm")), TD_OK);
    size_t size, size2;
    unsigned char *before = read_all(path_of("train.tdm"), &size);
    assert_int_equal(td_model_load(path_of("train.tdm"), NULL, &mapped), TD_OK);
    assert_true(is_mapped(mapped));
    td_schedule *s = toy_schedule(TD_SCHEDULE_FIXED_RATE);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = 2;
    c.seq_len = 16;
    td_trainer *t;
    assert_int_equal(td_trainer_create(mapped, s, &c, &t), TD_OK);
    assert_false(is_mapped(mapped)); /* private, writable parameters */
    assert_same_model(m, mapped);
    int32_t tokens[2 * 16];
    for (int i = 0; i < 2 * 16; i++) tokens[i] = 'a' + i % 26;
    for (int i = 0; i < 3; i++) assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    assert_memory_not_equal(m->m->params, mapped->m->params, m->m->n_floats * sizeof(float));
    unsigned char *after = read_all(path_of("train.tdm"), &size2);
    assert_int_equal(size, size2);
    assert_memory_equal(before, after, size);
    free(before);
    free(after);
    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(mapped);
    td_model_free(m);
}

/* Damaged files fail through the mapped path as they do when read. */
static void test_damaged_files_fail_when_mapped(void **state)
{
    (void)state;
    td_model *m = small_model(11, 1), *out;
    assert_int_equal(td_model_save(m, path_of("good.tdm")), TD_OK);
    size_t size;
    unsigned char *buf = read_all(path_of("good.tdm"), &size);
    const char *bad = path_of("bad.tdm");
    char bad_path[512];
    snprintf(bad_path, sizeof bad_path, "%s", bad);
    for (size_t len = 0; len < size; len += len < 300 ? 1 : 509) {
        write_all(bad_path, buf, len);
        out = (td_model *)&out;
        td_status st = td_model_load(bad_path, NULL, &out);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT);
        assert_null(out);
    }
    tdi_rng r;
    tdi_rng_seed(&r, 12);
    unsigned char *copy = malloc(size);
    for (int i = 0; i < 100; i++) {
        memcpy(copy, buf, size);
        size_t at = (size_t)tdi_rng_below(&r, size);
        copy[at] ^= (unsigned char)(1u << tdi_rng_below(&r, 8));
        write_all(bad_path, copy, size);
        td_status st = td_model_load(bad_path, NULL, &out);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT || st == TD_ERR_VERSION);
        assert_null(out);
    }
    /* An empty file is not a checkpoint; a directory cannot be read. */
    write_all(bad_path, buf, 0);
    assert_int_equal(td_model_load(bad_path, NULL, &out), TD_ERR_FORMAT);
    assert_int_equal(td_model_load(dir, NULL, &out), TD_ERR_IO);
    free(copy);
    free(buf);
    td_model_free(m);
}

/* ---- trainer resume ------------------------------------------------------ */

enum { B = 4, T = 16, STEPS = 10, CUT = 5 };

static td_trainer *trainer_for(td_model *m, td_schedule *s)
{
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = B;
    c.seq_len = T;
    c.warmup_steps = 2;
    c.total_steps = STEPS;
    c.seed = 77;
    td_trainer *t;
    assert_int_equal(td_trainer_create(m, s, &c, &t), TD_OK);
    return t;
}

static double step_on(td_trainer *t, const td_corpus *corpus)
{
    int64_t step;
    td_trainer_get_step(t, &step);
    int32_t tokens[B * T];
    assert_int_equal(td_corpus_batch(corpus, TD_SPLIT_TRAIN, 5, (uint64_t)step, B, T, tokens),
                     TD_OK);
    td_train_stats st = { sizeof st, 0, 0, 0, 0, 0 };
    assert_int_equal(td_trainer_step(t, tokens, &st), TD_OK);
    return st.loss;
}

static void test_resume_repeats_the_run_bit_for_bit(void **state)
{
    (void)state;
    const char *text = "In the beginning God created the heaven and the earth. And the earth "
                       "was without form, and void; and darkness was upon the face of the deep.";
    td_tokenizer *tok;
    td_corpus *corpus;
    td_tokenizer_create_byte(NULL, &tok);
    assert_int_equal(td_corpus_create(text, strlen(text), tok, NULL, &corpus), TD_OK);
    td_schedule_config sc;
    td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR);
    td_schedule *s;
    td_schedule_create(&sc, NULL, &s);

    td_model *a = small_model(1, 1);
    td_trainer *ta = trainer_for(a, s);
    double straight[STEPS];
    for (int i = 0; i < STEPS; i++) {
        if (i == CUT) assert_int_equal(td_trainer_save(ta, path_of("resume.tdm")), TD_OK);
        straight[i] = step_on(ta, corpus);
    }

    td_model *b = small_model(2, 0); /* different weights: all come from the file */
    td_trainer *tb = trainer_for(b, s);
    assert_int_equal(td_trainer_resume(tb, path_of("resume.tdm")), TD_OK);
    int64_t step;
    td_trainer_get_step(tb, &step);
    assert_int_equal(step, CUT);
    for (int i = CUT; i < STEPS; i++) {
        double loss = step_on(tb, corpus);
        assert_memory_equal(&loss, &straight[i], sizeof loss);
    }
    assert_memory_equal(a->m->params, b->m->params, a->m->n_floats * sizeof(float));

    /* A trainer checkpoint is also a model. */
    td_model *as_model;
    assert_int_equal(td_model_load(path_of("resume.tdm"), NULL, &as_model), TD_OK);
    td_model_free(as_model);

    /* Another configuration is refused and changes nothing. */
    td_model_config c;
    td_model_get_config(a, &c);
    c.d_ff = 32;
    td_model *other;
    td_model_create(&c, 1, NULL, &other);
    td_trainer *to = trainer_for(other, s);
    float before = other->m->params[0];
    assert_int_equal(td_trainer_resume(to, path_of("resume.tdm")), TD_ERR_INVALID_ARG);
    td_trainer_get_step(to, &step);
    assert_int_equal(step, 0);
    assert_true(other->m->params[0] == before);
    assert_int_equal(td_trainer_resume(to, path_of("missing.tdm")), TD_ERR_IO);
    assert_int_equal(td_trainer_resume(NULL, path_of("resume.tdm")), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_save(ta, "/nonexistent-dir/r.tdm"), TD_ERR_IO);

    td_trainer_free(to);
    td_model_free(other);
    td_trainer_free(ta);
    td_trainer_free(tb);
    td_model_free(a);
    td_model_free(b);
    td_schedule_free(s);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_to_the_bit),
        cmocka_unit_test(test_damaged_files_are_rejected),
        cmocka_unit_test(test_invalid_models_in_valid_files),
        cmocka_unit_test(test_tokenizer_attachment),
        cmocka_unit_test(test_load_maps_the_file),
        cmocka_unit_test(test_training_a_mapped_model_leaves_the_file),
        cmocka_unit_test(test_damaged_files_fail_when_mapped),
        cmocka_unit_test(test_resume_repeats_the_run_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
