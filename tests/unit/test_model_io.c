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
#include "train/trainer.h"
#include "util/alloc.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

static char dir[256];

/* Valid until the fourth call after. */
static const char *path_of(const char *name)
{
    static char p[4][512];
    static unsigned next;
    char *q = p[next++ % 4];
    snprintf(q, sizeof p[0], "%s/%s", dir, name);
    return q;
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
    td_model_config ca = { .struct_size = sizeof ca }, cb = { .struct_size = sizeof cb };
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
    /* No data is the caller's mistake, not a file's (docs/format.md, Errors);
     * an empty file is not a checkpoint (test_damaged_files_fail_when_mapped). */
    out = (td_model *)&out;
    assert_int_equal(td_model_load_memory(buf, 0, NULL, &out), TD_ERR_INVALID_ARG);
    assert_null(out);
    assert_non_null(strstr(td_last_error_message(), "size is 0"));
    assert_int_equal(td_model_load_memory(NULL, size, NULL, &out), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "data is NULL"));
    assert_int_equal(td_model_load_memory(buf, size, NULL, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_load(NULL, NULL, &out), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_save(NULL, path_of("x")), TD_ERR_INVALID_ARG);
    free(copy);
    free(buf);
    td_model_free(m);
}

/* The causal flag of the last model load_crafted loaded, -1 if none. */
static int32_t g_loaded_causal = -1;
static float g_loaded_eps = -1;

/* Well-formed containers with a bad model inside. The ten keys of 1.0 only:
 * model.causal is absent (a bidirectional model) unless variant 8 or 9 adds
 * it. */
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
    if (variant == 8) tdi_ckpt_put_i64(w, "model.causal", 1);
    if (variant == 9) tdi_ckpt_put_i64(w, "model.causal", 3);
    /* the keys added in 1.1 */
    if (variant == 10) tdi_ckpt_put_f64(w, "model.layer_norm_eps", 0.0);
    if (variant == 11) tdi_ckpt_put_i64(w, "model.activation", 2);
    if (variant == 12) tdi_ckpt_put_f64(w, "model.layer_norm_eps", 1e-12f);
    if (variant == 13) tdi_ckpt_put_f64(w, "model.layer_norm_eps", 0.1); /* not a float */
    if (variant == 14) tdi_ckpt_put_i64(w, "model.head_transform", 1); /* its tensors absent */
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
        g_loaded_causal = out != NULL ? out->m->cfg.causal : -1;
        g_loaded_eps = out != NULL ? out->m->cfg.layer_norm_eps : -1;
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
    assert_int_equal(load_crafted(9), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "model.causal"));
    assert_int_equal(load_crafted(8), TD_OK);
    assert_int_equal(g_loaded_causal, 1);
    assert_int_equal(load_crafted(10), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "model.layer_norm_eps"));
    assert_int_equal(load_crafted(11), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "model.activation"));
    assert_int_equal(load_crafted(13), TD_ERR_FORMAT);
    assert_int_equal(load_crafted(14), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "head.w"));
    assert_int_equal(load_crafted(12), TD_OK);
    assert_true(g_loaded_eps == 1e-12f);
    assert_int_equal(load_crafted(6), TD_OK); /* the control: the same file, intact */
    assert_int_equal(g_loaded_causal, 0);     /* no model.causal: bidirectional */
    assert_true(g_loaded_eps == 1e-5f);       /* a 1.0 file: the 1.0 model */
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

/* The gaps between tensors (docs/model.md) are zero however a model came. */
static void assert_zero_gaps(const td_model *model)
{
    const tdi_model *m = model->m;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        size_t end = t->offset + (size_t)t->rows * (size_t)t->cols;
        size_t next = i + 1 < m->n_tensors ? m->tensors[i + 1].offset : m->n_floats;
        for (size_t k = end; k < next; k++) assert_true(m->params[k] == 0.0f);
    }
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
    assert_zero_gaps(mapped);
    assert_zero_gaps(copied);
    assert_zero_gaps(read);
    assert_zero_gaps(packed);
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
    assert_int_equal(tdi_model_load_file(path_of("map.tdc"), NULL, 0, &from_trainer), TD_OK);
    assert_false(is_mapped(from_trainer));
    assert_same_logits(m, from_trainer);
    assert_zero_gaps(from_trainer);
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

/* Hooks that remember the largest block asked for. */
static size_t largest;
static void *big_malloc(void *u, size_t n) { (void)u; if (n > largest) largest = n; return malloc(n); }
static void *big_realloc(void *u, void *p, size_t n)
{
    (void)u;
    if (n > largest) largest = n;
    return realloc(p, n);
}
static void big_free(void *u, void *p) { (void)u; free(p); }

/* The mapping goes through no hook; a copy does. */
static void test_hooks_see_copies_not_mappings(void **state)
{
    (void)state;
    td_model *m = small_model(12, 1), *out;
    assert_int_equal(td_model_save(m, path_of("hooks.tdm")), TD_OK);
    size_t bytes = m->m->n_floats * sizeof(float);
    td_allocator a = { big_malloc, big_realloc, big_free, NULL };
    largest = 0;
    assert_int_equal(td_model_load(path_of("hooks.tdm"), &a, &out), TD_OK);
    assert_true(is_mapped(out));
    assert_true(largest < bytes / 4);
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = 1;
    c.seq_len = 4;
    td_trainer *t;
    assert_int_equal(td_trainer_create(out, s, &c, &t), TD_OK);
    assert_false(is_mapped(out)); /* a private copy */
    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(out);
    largest = 0;
    assert_int_equal(tdi_model_load_file(path_of("hooks.tdm"), &a, 0, &out), TD_OK);
    assert_true(largest >= bytes);
    td_model_free(out);
    td_model_free(m);
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
    td_train_stats st = { .struct_size = sizeof st };
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
    assert_int_equal(td_trainer_resume(tb, path_of("resume.tdm"), TD_RESUME_STRICT), TD_OK);
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
    td_model_config c = { .struct_size = sizeof c };
    td_model_get_config(a, &c);
    c.d_ff = 32;
    td_model *other;
    td_model_create(&c, 1, NULL, &other);
    td_trainer *to = trainer_for(other, s);
    float before = other->m->params[0];
    assert_int_equal(td_trainer_resume(to, path_of("resume.tdm"), 0), TD_ERR_STATE);
    assert_non_null(strstr(td_last_error_message(), "model.d_ff"));
    assert_int_equal(td_trainer_resume(to, path_of("resume.tdm"), 15), TD_ERR_STATE);
    td_trainer_get_step(to, &step);
    assert_int_equal(step, 0);
    assert_true(other->m->params[0] == before);
    assert_int_equal(td_trainer_resume(to, path_of("missing.tdm"), 0), TD_ERR_IO);
    assert_int_equal(td_trainer_resume(NULL, path_of("resume.tdm"), 0), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_resume(tb, NULL, 0), TD_ERR_INVALID_ARG);
    assert_int_equal(td_trainer_resume(tb, path_of("resume.tdm"), 1u << 4), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "flags"));
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

/* ---- what a resume checks ------------------------------------------------ */

/* The trainer's observable state, which a refused resume must not change. */
typedef struct snapshot {
    float *params, *m, *v;
    size_t n;
    int64_t step;
    uint64_t rng[4];
} snapshot;

static snapshot take(const td_trainer *t)
{
    snapshot s;
    const tdi_model *m = t->model->m;
    s.n = m->n_floats;
    s.params = malloc(s.n * sizeof(float));
    s.m = malloc(s.n * sizeof(float));
    s.v = malloc(s.n * sizeof(float));
    memcpy(s.params, m->params, s.n * sizeof(float));
    memcpy(s.m, tdi_adamw_m(t->opt), s.n * sizeof(float));
    memcpy(s.v, tdi_adamw_v(t->opt), s.n * sizeof(float));
    td_trainer_get_step(t, &s.step);
    memcpy(s.rng, t->rng.s, sizeof s.rng);
    return s;
}

static void assert_unchanged(const td_trainer *t, const snapshot *s)
{
    snapshot now = take(t);
    assert_memory_equal(now.params, s->params, s->n * sizeof(float));
    assert_memory_equal(now.m, s->m, s->n * sizeof(float));
    assert_memory_equal(now.v, s->v, s->n * sizeof(float));
    assert_int_equal(now.step, s->step);
    assert_memory_equal(now.rng, s->rng, sizeof s->rng);
    free(now.params);
    free(now.m);
    free(now.v);
}

static void drop(snapshot *s)
{
    free(s->params);
    free(s->m);
    free(s->v);
}

typedef struct run_setup {
    td_schedule_config sc;
    td_trainer_config tc;
} run_setup;

static run_setup setup_of(td_schedule_kind kind)
{
    run_setup r;
    td_schedule_config_default(&r.sc, kind);
    td_trainer_config_default(&r.tc);
    r.tc.batch_size = 2;
    r.tc.seq_len = 8;
    r.tc.seed = 5;
    return r;
}

/* A model of small_model's shape and a trainer for it, `steps` steps in. */
static td_trainer *make_trainer(const run_setup *r, uint64_t model_seed, int steps,
                                td_model **model)
{
    *model = small_model(model_seed, 0);
    td_schedule *s;
    assert_int_equal(td_schedule_create(&r->sc, NULL, &s), TD_OK);
    td_trainer *t;
    td_status cst = td_trainer_create(*model, s, &r->tc, &t);
    if (cst != TD_OK) fail_msg("trainer: %s", td_last_error_message());
    td_schedule_free(s);
    int32_t tokens[64];
    for (int i = 0; i < steps; i++) {
        for (int j = 0; j < r->tc.batch_size * r->tc.seq_len; j++) tokens[j] = (j * 5 + i) % 200;
        assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    }
    return t;
}

/* Resume a checkpoint of `saved` into a trainer of `into`: the status, and
 * on failure the message names `needle` and nothing changed. */
static void expect_resume(const run_setup *saved, const run_setup *into, uint32_t flags,
                          td_status want, const char *needle)
{
    td_model *ma, *mb;
    td_trainer *a = make_trainer(saved, 1, 2, &ma);
    assert_int_equal(td_trainer_save(a, path_of("check.tdc")), TD_OK);
    td_trainer *b = make_trainer(into, 2, 1, &mb);
    snapshot before = take(b);
    td_status st = td_trainer_resume(b, path_of("check.tdc"), flags);
    if (st != want)
        fail_msg("resume gave %s, not %s: %s", td_status_string(st), td_status_string(want),
                 td_last_error_message());
    if (st != TD_OK) {
        if (needle && !strstr(td_last_error_message(), needle))
            fail_msg("message '%s' does not name '%s'", td_last_error_message(), needle);
        assert_unchanged(b, &before);
    } else {
        int64_t step;
        td_trainer_get_step(b, &step);
        assert_int_equal(step, 2);
        assert_memory_equal(ma->m->params, mb->m->params, ma->m->n_floats * sizeof(float));
        /* The generator state comes from the file unless the seeds differ. */
        int same_seed = saved->tc.seed == into->tc.seed;
        if ((memcmp(a->rng.s, b->rng.s, sizeof a->rng.s) == 0) != same_seed)
            fail_msg("generator: seeds %llu and %llu", (unsigned long long)saved->tc.seed,
                     (unsigned long long)into->tc.seed);
        if (!same_seed) assert_memory_equal(b->rng.s, before.rng, sizeof before.rng);
    }
    drop(&before);
    td_trainer_free(a);
    td_trainer_free(b);
    td_model_free(ma);
    td_model_free(mb);
}

static void test_resume_refuses_another_run(void **state)
{
    (void)state;
    run_setup mlm = setup_of(TD_SCHEDULE_FIXED_RATE), diff = setup_of(TD_SCHEDULE_LOGLINEAR), r;
    expect_resume(&mlm, &mlm, TD_RESUME_STRICT, TD_OK, NULL);
    expect_resume(&diff, &diff, TD_RESUME_STRICT, TD_OK, NULL);
    /* MLM into diffusion, and back: the kind, with both values. */
    expect_resume(&mlm, &diff, TD_RESUME_STRICT, TD_ERR_STATE,
                  "schedule.kind: the checkpoint has 'fixed-rate', the trainer 'loglinear'");
    expect_resume(&diff, &mlm, TD_RESUME_STRICT, TD_ERR_STATE, "schedule.kind");
    expect_resume(&mlm, &diff, TD_RESUME_ALLOW_SCHEDULE, TD_OK, NULL);
    /* Each parameter of the kind. */
    r = mlm; r.sc.rate = 0.25;
    expect_resume(&mlm, &r, 0, TD_ERR_STATE, "schedule.rate: the checkpoint has 0.14999");
    expect_resume(&mlm, &r, TD_RESUME_ALLOW_SCHEDULE, TD_OK, NULL);
    r = mlm; r.sc.bert_corruption = 1;
    expect_resume(&mlm, &r, 0, TD_ERR_STATE, "schedule.bert_corruption");
    r = diff; r.sc.eps = 0.01;
    expect_resume(&diff, &r, 0, TD_ERR_STATE, "schedule.eps");
    r = diff; r.sc.t_min = 0.01;
    expect_resume(&diff, &r, 0, TD_ERR_STATE, "schedule.t_min");
    run_setup poly = setup_of(TD_SCHEDULE_POLYNOMIAL);
    r = poly; r.sc.power = 3;
    expect_resume(&poly, &r, 0, TD_ERR_STATE, "schedule.power");
    r = diff; r.sc.power = 3; /* not a parameter of log-linear: no difference */
    expect_resume(&diff, &r, 0, TD_OK, NULL);
    /* Batch shape and seed, each with its flag. */
    r = diff; r.tc.batch_size = 3;
    expect_resume(&diff, &r, 0, TD_ERR_STATE,
                  "trainer.batch_size: the checkpoint has 2, the trainer 3 (TD_RESUME_ALLOW_BATCH");
    expect_resume(&diff, &r, TD_RESUME_ALLOW_SEQ_LEN | TD_RESUME_ALLOW_SEED, TD_ERR_STATE,
                  "trainer.batch_size");
    expect_resume(&diff, &r, TD_RESUME_ALLOW_BATCH, TD_OK, NULL);
    r = diff; r.tc.seq_len = 4;
    expect_resume(&diff, &r, 0, TD_ERR_STATE, "trainer.seq_len: the checkpoint has 8");
    expect_resume(&diff, &r, TD_RESUME_ALLOW_SEQ_LEN, TD_OK, NULL);
    r = diff; r.tc.seed = 6;
    expect_resume(&diff, &r, 0, TD_ERR_STATE, "trainer.seed: the checkpoint has 5, the trainer 6");
    expect_resume(&diff, &r, TD_RESUME_ALLOW_SEED, TD_OK, NULL);
    /* The first difference is the one named; all flags allow all of them. */
    r = mlm; r.tc.batch_size = 3; r.tc.seed = 9;
    expect_resume(&diff, &r, 0, TD_ERR_STATE, "schedule.kind");
    expect_resume(&diff, &r, TD_RESUME_ALLOW_SCHEDULE, TD_ERR_STATE, "trainer.batch_size");
    expect_resume(&diff, &r, 15, TD_OK, NULL);
    /* What the trainer does not record may differ: the learning rate,
     * micro-batches, threads. */
    r = diff; r.tc.lr = 5e-4f; r.tc.micro_batch = 1; r.tc.n_threads = 2; r.tc.total_steps = 500;
    expect_resume(&diff, &r, 0, TD_OK, NULL);
}

/* A trainer checkpoint with one metadata key replaced (or removed, when
 * type is 0): every other key and every tensor copied as they are. */
typedef struct edit {
    const char *key;
    int type;           /* TDI_META_*, or 0: remove the key */
    int64_t i;
    uint64_t u;
    double f;
    const char *str;
    uint64_t arr[4];
    size_t n;
} edit;

/* An extra u8 tensor for rewrite(), or none when name is NULL. */
static const char *extra_name;
static const unsigned char *extra_bytes;
static uint64_t extra_size;

static void rewrite(const char *from, const char *to, const edit *e, const char *tensor,
                    size_t index, float value)
{
    tdi_ckpt *c;
    assert_int_equal(tdi_ckpt_read_file(NULL, from, &c), TD_OK);
    tdi_ckpt_writer *w;
    assert_int_equal(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    for (size_t i = 0; i < tdi_ckpt_meta_count(c); i++) {
        const char *key = tdi_ckpt_meta_key(c, i);
        if (e && strcmp(key, e->key) == 0) {
            switch (e->type) {
            case TDI_META_I64: tdi_ckpt_put_i64(w, key, e->i); break;
            case TDI_META_U64: tdi_ckpt_put_u64(w, key, e->u); break;
            case TDI_META_F64: tdi_ckpt_put_f64(w, key, e->f); break;
            case TDI_META_STRING: tdi_ckpt_put_string(w, key, e->str); break;
            case TDI_META_U64_ARRAY: tdi_ckpt_put_u64_array(w, key, e->arr, e->n); break;
            default: break; /* removed */
            }
            continue;
        }
        int64_t i64; uint64_t u64; double f64; const char *str;
        const uint64_t *ua; const double *fa; const int64_t *ia; size_t n;
        switch (tdi_ckpt_meta_type(c, key)) {
        case TDI_META_I64: tdi_ckpt_get_i64(c, key, &i64); tdi_ckpt_put_i64(w, key, i64); break;
        case TDI_META_U64: tdi_ckpt_get_u64(c, key, &u64); tdi_ckpt_put_u64(w, key, u64); break;
        case TDI_META_F64: tdi_ckpt_get_f64(c, key, &f64); tdi_ckpt_put_f64(w, key, f64); break;
        case TDI_META_STRING:
            tdi_ckpt_get_string(c, key, &str, NULL);
            tdi_ckpt_put_string(w, key, str);
            break;
        case TDI_META_U64_ARRAY:
            tdi_ckpt_get_u64_array(c, key, &ua, &n);
            tdi_ckpt_put_u64_array(w, key, ua, n);
            break;
        case TDI_META_F64_ARRAY:
            tdi_ckpt_get_f64_array(c, key, &fa, &n);
            tdi_ckpt_put_f64_array(w, key, fa, n);
            break;
        case TDI_META_I64_ARRAY:
            tdi_ckpt_get_i64_array(c, key, &ia, &n);
            tdi_ckpt_put_i64_array(w, key, ia, n);
            break;
        default: fail_msg("unexpected type of %s", key);
        }
    }
    float *patched = NULL;
    for (size_t i = 0; i < tdi_ckpt_tensor_count(c); i++) {
        const tdi_ckpt_tensor *t = tdi_ckpt_tensor_at(c, i);
        const void *data = t->data;
        if (tensor && strcmp(t->name, tensor) == 0) {
            patched = malloc(t->nbytes);
            memcpy(patched, t->data, t->nbytes);
            patched[index] = value;
            data = patched;
        }
        assert_int_equal(tdi_ckpt_add_tensor(w, t->name, t->dtype, t->ndim, t->dims, data, 0),
                         TD_OK);
    }
    if (extra_name)
        assert_int_equal(tdi_ckpt_add_tensor(w, extra_name, TDI_DTYPE_U8, 1, &extra_size,
                                             extra_bytes, 0), TD_OK);
    assert_int_equal(tdi_ckpt_write_file(w, to), TD_OK);
    tdi_ckpt_writer_free(w);
    free(patched);
    tdi_ckpt_free(c);
}

static void test_resume_validates_every_key(void **state)
{
    (void)state;
    run_setup r = setup_of(TD_SCHEDULE_LOGLINEAR);
    td_model *ma, *mb;
    td_trainer *a = make_trainer(&r, 1, 2, &ma);
    assert_int_equal(td_trainer_save(a, path_of("valid.tdc")), TD_OK);
    td_trainer *b = make_trainer(&r, 2, 1, &mb);
    snapshot before = take(b);
    const double nan = NAN;
    static const struct {
        edit e;
        td_status want;
    } cases[] = {
        { { "format", TDI_META_STRING, .str = "libtextdiff-model" }, TD_ERR_FORMAT },
        { { .key = "format" }, TD_ERR_FORMAT },
        { { "model.d_ff", TDI_META_I64, .i = 0 }, TD_ERR_FORMAT },
        { { "model.n_heads", TDI_META_I64, .i = 3 }, TD_ERR_FORMAT },
        { { "trainer.step", TDI_META_I64, .i = -1 }, TD_ERR_FORMAT },
        { { "trainer.step", TDI_META_U64, .u = 1 }, TD_ERR_FORMAT },
        { { "trainer.rng", TDI_META_U64_ARRAY, .n = 4 }, TD_ERR_FORMAT },
        { { "trainer.rng", TDI_META_U64_ARRAY, .arr = { 1, 2, 3 }, .n = 3 }, TD_ERR_FORMAT },
        { { "trainer.batch_size", TDI_META_I64, .i = 0 }, TD_ERR_FORMAT },
        { { "trainer.batch_size", TDI_META_I64, .i = 65537 }, TD_ERR_FORMAT },
        { { "trainer.seq_len", TDI_META_I64, .i = 0 }, TD_ERR_FORMAT },
        { { "trainer.seq_len", TDI_META_I64, .i = 17 }, TD_ERR_FORMAT }, /* > max_seq_len */
        { { .key = "trainer.seed" }, TD_ERR_FORMAT },
        { { "trainer.seed", TDI_META_I64, .i = 5 }, TD_ERR_FORMAT },
        { { "schedule.kind", TDI_META_STRING, .str = "junk" }, TD_ERR_FORMAT },
        { { "schedule.kind", TDI_META_STRING, .str = "" }, TD_ERR_FORMAT },
        { { "schedule.kind", TDI_META_I64, .i = 1 }, TD_ERR_FORMAT },
        { { "schedule.eps", TDI_META_F64, .f = 1.5 }, TD_ERR_FORMAT },
        { { "schedule.eps", TDI_META_F64, .f = 0 }, TD_ERR_FORMAT },
        { { "schedule.power", TDI_META_F64, .f = INFINITY }, TD_ERR_FORMAT },
        { { "schedule.power", TDI_META_F64, .f = -2 }, TD_ERR_FORMAT },
        { { "schedule.rate", TDI_META_F64, .f = 1 }, TD_ERR_FORMAT },
        { { "schedule.t_min", TDI_META_F64, .f = 0.5 }, TD_ERR_FORMAT },
        { { .key = "schedule.t_min" }, TD_ERR_FORMAT },
        { { "schedule.bert_corruption", TDI_META_I64, .i = 2 }, TD_ERR_FORMAT },
        { { "schedule.bert_corruption", TDI_META_I64, .i = 1 }, TD_ERR_FORMAT }, /* not MLM */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(path_of("valid.tdc"), path_of("edited.tdc"), &cases[i].e, NULL, 0, 0);
        for (uint32_t flags = 0; flags <= 15; flags += 15) {
            td_status st = td_trainer_resume(b, path_of("edited.tdc"), flags);
            if (st != cases[i].want)
                fail_msg("case %zu (%s): %s: %s", i, cases[i].e.key, td_status_string(st),
                         td_last_error_message());
            /* A rule between model fields names the fields, not their keys. */
            const char *key = cases[i].e.key;
            const char *needle = strncmp(key, "model.", 6) == 0 ? key + 6 : key;
            if (!strstr(td_last_error_message(), needle))
                fail_msg("case %zu: message '%s' does not name %s", i, td_last_error_message(),
                         needle);
            assert_unchanged(b, &before);
        }
    }
    edit eps_nan = { "schedule.eps", TDI_META_F64, .f = nan };
    rewrite(path_of("valid.tdc"), path_of("edited.tdc"), &eps_nan, NULL, 0, 0);
    assert_int_equal(td_trainer_resume(b, path_of("edited.tdc"), 0), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "schedule.eps"));

    /* The moments: finite, v >= 0, zero between tensors. */
    const tdi_model *m = mb->m;
    size_t gap = m->tensors[0].offset + (size_t)m->tensors[0].rows * m->tensors[0].cols;
    for (size_t t = 0; t + 1 < (size_t)m->n_tensors && gap == m->tensors[t + 1].offset; t++)
        gap = m->tensors[t + 1].offset + (size_t)m->tensors[t + 1].rows * m->tensors[t + 1].cols;
    assert_true(gap < m->n_floats); /* small_model's d_ff = 24 leaves gaps */
    static const struct {
        const char *tensor;
        int at_gap;
        float value;
    } bad[] = { { "opt.m", 0, NAN }, { "opt.v", 0, -1.0f }, { "opt.v", 0, INFINITY },
                { "opt.m", 1, 1.0f }, { "opt.v", 1, 1.0f } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rewrite(path_of("valid.tdc"), path_of("edited.tdc"), NULL, bad[i].tensor,
                bad[i].at_gap ? gap : 5, bad[i].value);
        assert_int_equal(td_trainer_resume(b, path_of("edited.tdc"), 0), TD_ERR_CORRUPT);
        assert_non_null(strstr(td_last_error_message(), bad[i].tensor));
        assert_unchanged(b, &before);
    }
    /* A tokenizer that does not fit the model, though resume keeps the
     * trainer's own. */
    unsigned char tok_bytes[64];
    size_t tok_size = 0;
    td_tokenizer *tok;
    assert_int_equal(td_tokenizer_create_char("abc", 3, 0, NULL, &tok), TD_OK);
    assert_int_equal(tdi_tokenizer_serialize(tok, tok_bytes, sizeof tok_bytes, &tok_size), TD_OK);
    td_tokenizer_free(tok);
    extra_name = "tokenizer";
    extra_bytes = tok_bytes;
    extra_size = tok_size;
    rewrite(path_of("valid.tdc"), path_of("edited.tdc"), NULL, NULL, 0, 0);
    extra_name = NULL;
    assert_int_equal(td_trainer_resume(b, path_of("edited.tdc"), 0), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "tokenizer"));
    assert_unchanged(b, &before);
    /* A model checkpoint is not a trainer's. */
    assert_int_equal(td_model_save(ma, path_of("model.tdm")), TD_OK);
    assert_int_equal(td_trainer_resume(b, path_of("model.tdm"), 0), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "not a trainer checkpoint"));
    assert_unchanged(b, &before);
    /* The control: the untouched file resumes. */
    rewrite(path_of("valid.tdc"), path_of("edited.tdc"), NULL, NULL, 0, 0);
    assert_int_equal(td_trainer_resume(b, path_of("edited.tdc"), 0), TD_OK);
    assert_memory_equal(ma->m->params, mb->m->params, m->n_floats * sizeof(float));
    drop(&before);
    td_trainer_free(a);
    td_trainer_free(b);
    td_model_free(ma);
    td_model_free(mb);
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
        cmocka_unit_test(test_hooks_see_copies_not_mappings),
        cmocka_unit_test(test_damaged_files_fail_when_mapped),
        cmocka_unit_test(test_resume_repeats_the_run_bit_for_bit),
        cmocka_unit_test(test_resume_refuses_another_run),
        cmocka_unit_test(test_resume_validates_every_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
