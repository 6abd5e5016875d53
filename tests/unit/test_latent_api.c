/* The public latent autoencoder: argument checks with their messages,
 * training that learns, checkpoints, determinism, and allocation failures
 * over the whole create / train / save / load / encode / decode workflow. */
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

#include "common/test_alloc_hooks.h"
#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { V = 20, MASK = 19, L = 12, N = 4, D = 16, B = 4 };

static td_latent_config small_config(void)
{
    td_latent_config c;
    assert_int_equal(td_latent_config_default(&c), TD_OK);
    c.seq_len = L;
    c.n_latents = N;
    c.d_latent = D;
    c.n_heads = 2;
    c.n_enc_layers = 1;
    c.n_dec_layers = 1;
    c.d_ff = 32;
    c.n_den_layers = 1;
    return c;
}

static td_latent_train_config small_train(void)
{
    td_latent_train_config c;
    assert_int_equal(td_latent_train_config_default(&c), TD_OK);
    c.batch_size = B;
    c.warmup_steps = 5;
    c.total_steps = 200;
    c.lr = 3e-3f;
    return c;
}

static void tokens_of(int32_t *t, int seed)
{
    for (int i = 0; i < B * L; i++) t[i] = (int32_t)((i * 7 + seed * 3 + (i / L)) % MASK);
}

static void expect_fail(td_status st, td_status want, const char *needle)
{
    assert_int_equal(st, want);
    if (strstr(td_last_error_message(), needle) == NULL)
        fail_msg("message '%s' lacks '%s'", td_last_error_message(), needle);
}

static void test_defaults_and_bad_configs(void **state)
{
    (void)state;
    td_latent_config c;
    assert_int_equal(td_latent_config_default(&c), TD_OK);
    assert_int_equal(c.seq_len, 128);
    assert_int_equal(c.n_latents, 32);
    assert_int_equal(c.d_latent, 128);
    td_latent_train_config tc;
    assert_int_equal(td_latent_train_config_default(&tc), TD_OK);
    assert_true(tc.mask_prob == 0.15f && tc.noise_std == 0.1f && tc.latent_dropout == 0.1f &&
                tc.mse_weight == 1.0f);

    td_model *enc = toy_model_create(V, MASK, L, 1, NULL);
    td_latent_model *lm = (td_latent_model *)1;
    c = small_config();
    c.n_latents = L + 1;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "n_latents");
    assert_null(lm);
    char buf[512];
    assert_true(td_model_errmsg(enc, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "n_latents"));
    c = small_config();
    c.d_latent = 0;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "d_latent");
    c = small_config();
    c.n_heads = 3;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "n_heads");
    c = small_config();
    c.seq_len = L + 1;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "max_seq_len");
    c = small_config();
    c.struct_size = 12;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "struct_size");

    td_model_config mc;
    td_model_config_default(&mc);
    mc.vocab_size = V;
    mc.mask_id = MASK;
    mc.max_seq_len = L;
    mc.d_model = 32;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.d_ff = 64;
    mc.causal = 1;
    td_model *causal;
    assert_int_equal(td_model_create(&mc, 1, NULL, &causal), TD_OK);
    c = small_config();
    expect_fail(td_latent_model_create(causal, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "causal");
    td_model_free(causal);

    c = small_config();
    assert_int_equal(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_OK);
    td_latent_trainer *tr = (td_latent_trainer *)1;
    td_latent_train_config t = small_train();
    t.noise_std = NAN;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "noise_std");
    assert_null(tr);
    assert_true(td_latent_model_errmsg(lm, buf, sizeof buf) > 0);
    t = small_train();
    t.mask_prob = 1.0f;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "mask_prob");
    t = small_train();
    t.latent_dropout = -0.1f;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "latent_dropout");
    t = small_train();
    t.mse_weight = INFINITY;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "mse_weight");
    t = small_train();
    t.batch_size = 0;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "batch_size");

    t = small_train();
    assert_int_equal(td_latent_trainer_create(lm, &t, &tr), TD_OK);
    int32_t tok[B * L];
    tokens_of(tok, 0);
    tok[5] = MASK;
    expect_fail(td_latent_trainer_step(tr, tok, NULL), TD_ERR_INVALID_ARG, "tokens[5]");
    assert_true(td_latent_trainer_errmsg(tr, buf, sizeof buf) > 0);
    tok[5] = V;
    expect_fail(td_latent_trainer_step(tr, tok, NULL), TD_ERR_INVALID_ARG, "[5]");
    td_latent_trainer_free(tr);

    float lat[B * N * D];
    int32_t ids[B * L];
    tokens_of(tok, 0);
    expect_fail(td_latent_model_encode(lm, tok, 0, 1, lat), TD_ERR_INVALID_ARG, "batch");
    expect_fail(td_latent_model_encode(lm, tok, 1, 0, lat), TD_ERR_INVALID_ARG, "n_threads");
    assert_int_equal(td_latent_model_encode(lm, tok, B, 1, lat), TD_OK);
    lat[7] = NAN;
    expect_fail(td_latent_model_decode(lm, lat, B, 1, ids, NULL), TD_ERR_INVALID_ARG,
                "latents[7]");
    expect_fail(td_latent_model_decode(lm, NULL, B, 1, ids, NULL), TD_ERR_INVALID_ARG, "NULL");
    td_latent_model_free(lm);
    td_latent_model_free(NULL);
    td_latent_trainer_free(NULL);
    td_model_free(enc);
}

/* The latents are normalised (mean 0, unit variance per vector), and
 * training on a fixed batch drives the reconstruction up. */
static void test_training_learns(void **state)
{
    (void)state;
    td_model *enc = toy_model_create(V, MASK, L, 1, NULL);
    td_latent_config c = small_config();
    td_latent_model *lm;
    assert_int_equal(td_latent_model_create(enc, &c, 5, NULL, &lm), TD_OK);
    uint64_t np;
    assert_int_equal(td_latent_model_num_params(lm, &np), TD_OK);
    assert_true(np > 0);
    int32_t tok[B * L];
    tokens_of(tok, 1);
    float lat[B * N * D];
    assert_int_equal(td_latent_model_encode(lm, tok, B, 1, lat), TD_OK);
    for (int v = 0; v < B * N; v++) {
        double m = 0, s = 0;
        for (int j = 0; j < D; j++) m += lat[v * D + j];
        m /= D;
        for (int j = 0; j < D; j++) s += (lat[v * D + j] - m) * (lat[v * D + j] - m);
        /* unit variance up to LayerNorm's ε */
        assert_true(fabs(m) < 1e-5 && s / D > 0.9 && s / D < 1.0 + 1e-5);
    }
    td_latent_train_config t = small_train();
    t.latent_dropout = 0.0f;
    td_latent_trainer *tr;
    assert_int_equal(td_latent_trainer_create(lm, &t, &tr), TD_OK);
    td_latent_train_stats st = { .struct_size = sizeof st };
    double first = 0;
    for (int s = 0; s < 150; s++) {
        assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
        if (s == 0) first = st.ce;
        assert_true(isfinite(st.loss) && fabs(st.loss - (st.ce + st.mse)) < 1e-9);
    }
    assert_int_equal(st.step, 150);
    assert_true(st.ce < 0.5 * first);
    int32_t ids[B * L];
    assert_int_equal(td_latent_model_encode(lm, tok, B, 1, lat), TD_OK);
    assert_int_equal(td_latent_model_decode(lm, lat, B, 1, ids, NULL), TD_OK);
    int right = 0;
    for (int i = 0; i < B * L; i++) right += ids[i] == tok[i];
    assert_true(right > B * L / 2);
    td_latent_trainer_free(tr);
    td_latent_model_free(lm);
    td_model_free(enc);
}

/* Random sequences, a fresh batch every step: the autoencoder has to
 * compress each sequence, not memorise a batch. Without a path that gives
 * each latent its own stretch of the text from the start, the latents of a
 * sequence collapse to one vector and the decoder stays at the unigram
 * level (accuracy ~1/19 here); with the chunk paths most held-out tokens
 * come back. */
static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 33;
}

static void test_compresses_fresh_batches(void **state)
{
    (void)state;
    enum { FL = 16, FN = 4, FB = 8, FV = 8 };
    td_model *enc = toy_model_create(FV + 1, FV, FL, 3, NULL);
    td_latent_config c = small_config();
    c.seq_len = FL;
    c.n_latents = FN;
    c.d_latent = 32;
    c.n_heads = 4;
    c.d_ff = 64;
    td_latent_model *lm;
    assert_int_equal(td_latent_model_create(enc, &c, 11, NULL, &lm), TD_OK);
    td_latent_train_config t = small_train();
    t.batch_size = FB;
    t.mask_prob = t.noise_std = t.latent_dropout = 0.0f;
    t.warmup_steps = 20;
    t.total_steps = 300;
    td_latent_trainer *tr;
    assert_int_equal(td_latent_trainer_create(lm, &t, &tr), TD_OK);
    td_latent_train_stats st = { .struct_size = sizeof st };
    int32_t tok[FB * FL], ids[FB * FL];
    uint64_t s = 42;
    for (int k = 0; k < 300; k++) {
        for (int i = 0; i < FB * FL; i++) tok[i] = (int32_t)(lcg(&s) % FV);
        assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
    }
    float lat[FB * FN * 32];
    int right = 0;
    for (int i = 0; i < FB * FL; i++) tok[i] = (int32_t)(lcg(&s) % FV); /* held out */
    assert_int_equal(td_latent_model_encode(lm, tok, FB, 1, lat), TD_OK);
    assert_int_equal(td_latent_model_decode(lm, lat, FB, 1, ids, NULL), TD_OK);
    for (int i = 0; i < FB * FL; i++) right += ids[i] == tok[i];
    print_message("fresh batches: ce %.3f, held-out accuracy %.3f\n", st.ce,
                  (double)right / (FB * FL));
    assert_true(right > FB * FL * 3 / 4);
    td_latent_trainer_free(tr);
    td_latent_model_free(lm);
    td_model_free(enc);
}

static void train_some(td_latent_model *lm, int steps, int n_threads, double *losses)
{
    td_latent_train_config t = small_train();
    t.n_threads = n_threads;
    td_latent_trainer *tr;
    assert_int_equal(td_latent_trainer_create(lm, &t, &tr), TD_OK);
    td_latent_train_stats st = { .struct_size = sizeof st };
    int32_t tok[B * L];
    for (int s = 0; s < steps; s++) {
        tokens_of(tok, s);
        assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
        losses[s] = st.loss;
    }
    td_latent_trainer_free(tr);
}

/* Same seed, same data: the same bits, on 1 and 2 threads; a checkpoint
 * gives back the same encoder-decoder. */
static void test_determinism_and_checkpoint(void **state)
{
    (void)state;
    td_model *enc = toy_model_create(V, MASK, L, 1, NULL);
    td_latent_config c = small_config();
    td_latent_model *a, *b;
    assert_int_equal(td_latent_model_create(enc, &c, 9, NULL, &a), TD_OK);
    assert_int_equal(td_latent_model_create(enc, &c, 9, NULL, &b), TD_OK);
    double la[5], lb[5];
    train_some(a, 5, 1, la);
    train_some(b, 5, 2, lb);
    assert_memory_equal(la, lb, sizeof la);
    int32_t tok[B * L], ia[B * L], ib[B * L];
    float za[B * N * D], zb[B * N * D];
    static float ga[B * L * V], gb[B * L * V];
    tokens_of(tok, 3);
    assert_int_equal(td_latent_model_encode(a, tok, B, 1, za), TD_OK);
    assert_int_equal(td_latent_model_encode(b, tok, B, 2, zb), TD_OK);
    assert_memory_equal(za, zb, sizeof za);

    char path[] = "/tmp/td_latent_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(td_latent_model_save(a, path), TD_OK);
    td_latent_model *r;
    assert_int_equal(td_latent_model_load(path, enc, NULL, &r), TD_OK);
    td_latent_config rc = { .struct_size = sizeof rc };
    assert_int_equal(td_latent_model_get_config(r, &rc), TD_OK);
    assert_memory_equal(&rc, &c, sizeof c);
    assert_int_equal(td_latent_model_encode(r, tok, B, 1, zb), TD_OK);
    assert_memory_equal(za, zb, sizeof za);
    assert_int_equal(td_latent_model_decode(a, za, B, 1, ia, ga), TD_OK);
    assert_int_equal(td_latent_model_decode(r, za, B, 1, ib, gb), TD_OK);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(ga, gb, sizeof ga);
    for (int i = 0; i < B * L; i++) assert_true(ia[i] != MASK && isinf(ga[i * V + MASK]));

    /* another encoder width: refused with both widths named */
    td_model *wide = toy_model_sized(V, MASK, L, 48, 1, 2, 64, 1, NULL);
    td_latent_model *bad = (td_latent_model *)1;
    expect_fail(td_latent_model_load(path, wide, NULL, &bad), TD_ERR_INVALID_ARG, "width 32");
    assert_null(bad);
    assert_non_null(strstr(td_last_error_message(), "width 48"));
    /* a model checkpoint is not a latent one, nor the reverse */
    assert_int_equal(td_model_save(enc, path), TD_OK);
    expect_fail(td_latent_model_load(path, enc, NULL, &bad), TD_ERR_FORMAT, "latent");
    assert_int_equal(td_latent_model_save(a, path), TD_OK);
    td_model *notmodel = NULL;
    assert_int_equal(td_model_load(path, NULL, &notmodel), TD_ERR_FORMAT);
    /* a damaged file: every truncation refused, a flipped byte refused */
    assert_int_equal(td_latent_model_save(a, path), TD_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char bytes[1 << 20];
    size_t size = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    assert_true(size > 0 && size < sizeof bytes);
    for (size_t cut = 0; cut < size; cut += size / 13 + 1) {
        f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, cut, f), cut);
        fclose(f);
        td_status st = td_latent_model_load(path, enc, NULL, &bad);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT);
        assert_null(bad);
    }
    bytes[size / 2] ^= 0x40;
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
    td_status st = td_latent_model_load(path, enc, NULL, &bad);
    assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT);
    unlink(path);
    td_model_free(wide);
    td_latent_model_free(r);
    td_latent_model_free(a);
    td_latent_model_free(b);
    td_model_free(enc);
}

/* Diffusion: bad knobs are refused; training the denoiser lowers its loss
 * and leaves the autoencoder as it was; generation is deterministic. */
static void test_diffusion(void **state)
{
    (void)state;
    td_model *enc = toy_model_create(V, MASK, L, 1, NULL);
    td_latent_config c = small_config();
    td_latent_model *lm = (td_latent_model *)1;
    c.n_den_layers = 0;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG,
                "n_den_layers");
    c = small_config();
    c.tan_d = NAN;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "tan_d");
    c = small_config();
    c.schedule = 2;
    expect_fail(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_ERR_INVALID_ARG, "schedule");
    c = small_config();
    c.prediction = TD_LATENT_PREDICT_V;
    assert_int_equal(td_latent_model_create(enc, &c, 1, NULL, &lm), TD_OK);

    td_latent_train_config t = small_train();
    td_latent_trainer *tr = (td_latent_trainer *)1;
    t.stage = 2;
    expect_fail(td_latent_trainer_create(lm, &t, &tr), TD_ERR_INVALID_ARG, "stage");
    t = small_train();
    t.stage = TD_LATENT_STAGE_DIFFUSION;
    assert_int_equal(td_latent_trainer_create(lm, &t, &tr), TD_OK);
    int32_t tok[B * L];
    tokens_of(tok, 4);
    float before[B * N * D], after[B * N * D];
    assert_int_equal(td_latent_model_encode(lm, tok, B, 1, before), TD_OK);
    td_latent_train_stats st = { .struct_size = sizeof st };
    double first = 0, last = 0;
    for (int s = 0; s < 120; s++) {
        assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
        assert_true(isnan(st.ce) && isnan(st.accuracy) && st.loss == st.mse);
        if (s < 10) first += st.loss / 10;
        if (s >= 110) last += st.loss / 10;
    }
    assert_true(last < 0.8 * first);
    assert_int_equal(td_latent_model_encode(lm, tok, B, 1, after), TD_OK);
    assert_memory_equal(before, after, sizeof before);
    td_latent_trainer_free(tr);

    td_latent_sample_config sc;
    assert_int_equal(td_latent_sample_config_default(&sc), TD_OK);
    assert_int_equal(sc.sampler, TD_LATENT_SAMPLER_DDIM);
    assert_int_equal(sc.steps, 100);
    int32_t ids[B * L], ids2[B * L];
    sc.steps = 0;
    expect_fail(td_latent_model_generate(lm, &sc, B, ids, NULL), TD_ERR_INVALID_ARG, "steps");
    td_latent_sample_config_default(&sc);
    sc.noise_scale = NAN;
    expect_fail(td_latent_model_generate(lm, &sc, B, ids, NULL), TD_ERR_INVALID_ARG,
                "noise_scale");
    td_latent_sample_config_default(&sc);
    sc.sampler = 5;
    expect_fail(td_latent_model_generate(lm, &sc, B, ids, NULL), TD_ERR_INVALID_ARG, "sampler");
    char buf[256];
    assert_true(td_latent_model_errmsg(lm, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "sampler"));
    for (int kind = 0; kind < 2; kind++) {
        td_latent_sample_config_default(&sc);
        sc.sampler = kind;
        sc.steps = 8;
        float z1[B * N * D], z2[B * N * D];
        assert_int_equal(td_latent_model_generate(lm, &sc, B, ids, z1), TD_OK);
        sc.n_threads = 2;
        assert_int_equal(td_latent_model_generate(lm, &sc, B, ids2, z2), TD_OK);
        assert_memory_equal(ids, ids2, sizeof ids);
        assert_memory_equal(z1, z2, sizeof z1);
        for (int i = 0; i < B * L; i++) assert_true(ids[i] >= 0 && ids[i] < V && ids[i] != MASK);
        for (int i = 0; i < B * N * D; i++) assert_true(isfinite(z1[i]));
        sc.seed = 2;
        assert_int_equal(td_latent_model_generate(lm, &sc, B, ids2, z2), TD_OK);
        assert_memory_not_equal(z1, z2, sizeof z1);
    }
    /* the denoiser travels in the checkpoint */
    char path[] = "/tmp/td_latent_dif_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(td_latent_model_save(lm, path), TD_OK);
    td_latent_model *r;
    assert_int_equal(td_latent_model_load(path, enc, NULL, &r), TD_OK);
    td_latent_config rc = { .struct_size = sizeof rc };
    assert_int_equal(td_latent_model_get_config(r, &rc), TD_OK);
    assert_memory_equal(&rc, &c, sizeof c);
    td_latent_sample_config_default(&sc);
    sc.steps = 5;
    sc.sampler = TD_LATENT_SAMPLER_DDPM;
    assert_int_equal(td_latent_model_generate(lm, &sc, B, ids, NULL), TD_OK);
    assert_int_equal(td_latent_model_generate(r, &sc, B, ids2, NULL), TD_OK);
    assert_memory_equal(ids, ids2, sizeof ids);
    unlink(path);
    td_latent_model_free(r);
    td_latent_model_free(lm);
    td_model_free(enc);
}

/* A run saved at step 3 and resumed into a fresh trainer over a model of
 * another initialisation continues bit for bit as the uninterrupted run
 * (augmentations on: the generator matters); the checkpoint loads as a
 * model; a trainer of another batch size, stage or seed, or over a model of
 * another configuration, is refused with TD_ERR_STATE and left unchanged. */
static void run_steps(td_latent_trainer *tr, int from, int to, double *losses)
{
    td_latent_train_stats st = { .struct_size = sizeof st };
    int32_t tok[B * L];
    for (int s = from; s < to; s++) {
        tokens_of(tok, s);
        assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
        assert_int_equal(st.step, s + 1);
        losses[s] = st.loss;
    }
}

static void test_trainer_resume(void **state)
{
    (void)state;
    td_model *enc = toy_model_create(V, MASK, L, 1, NULL);
    td_latent_config c = small_config();
    char path[] = "/tmp/td_latent_resume_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    int32_t tok[B * L];
    tokens_of(tok, 9);
    for (int stage = 0; stage < 2; stage++) {
        td_latent_train_config t = small_train();
        t.stage = stage;
        double a[6], b[6];
        float la[B * N * D], lb[B * N * D];
        td_latent_model *ma, *mb;
        td_latent_trainer *ta, *tb;
        assert_int_equal(td_latent_model_create(enc, &c, 5, NULL, &ma), TD_OK);
        assert_int_equal(td_latent_model_create(enc, &c, 6, NULL, &mb), TD_OK);
        assert_int_equal(td_latent_trainer_create(ma, &t, &ta), TD_OK);
        run_steps(ta, 0, 3, a);
        assert_int_equal(td_latent_trainer_save(ta, path), TD_OK);
        run_steps(ta, 3, 6, a);
        assert_int_equal(td_latent_trainer_create(mb, &t, &tb), TD_OK);
        assert_int_equal(td_latent_trainer_resume(tb, path), TD_OK);
        run_steps(tb, 3, 6, b);
        assert_memory_equal(a + 3, b + 3, 3 * sizeof(double));
        assert_int_equal(td_latent_model_encode(ma, tok, B, 1, la), TD_OK);
        assert_int_equal(td_latent_model_encode(mb, tok, B, 1, lb), TD_OK);
        assert_memory_equal(la, lb, sizeof la);
        td_latent_model *loaded;
        assert_int_equal(td_latent_model_load(path, enc, NULL, &loaded), TD_OK);
        td_latent_model_free(loaded);
        td_latent_trainer_free(tb);
        td_latent_trainer_free(ta);
        td_latent_model_free(mb);
        td_latent_model_free(ma);
    }
    /* path holds a diffusion-stage checkpoint at step 3 */
    td_latent_model *m;
    assert_int_equal(td_latent_model_create(enc, &c, 7, NULL, &m), TD_OK);
    float before[B * N * D], after[B * N * D];
    assert_int_equal(td_latent_model_encode(m, tok, B, 1, before), TD_OK);
    td_latent_train_config t = small_train();
    td_latent_trainer *tr;
    assert_int_equal(td_latent_trainer_create(m, &t, &tr), TD_OK); /* autoencoder stage */
    expect_fail(td_latent_trainer_resume(tr, path), TD_ERR_STATE, "stage");
    td_latent_trainer_free(tr);
    t.stage = TD_LATENT_STAGE_DIFFUSION;
    t.batch_size = B - 1;
    assert_int_equal(td_latent_trainer_create(m, &t, &tr), TD_OK);
    expect_fail(td_latent_trainer_resume(tr, path), TD_ERR_STATE, "batch_size");
    td_latent_trainer_free(tr);
    t.batch_size = B;
    t.seed = 2;
    assert_int_equal(td_latent_trainer_create(m, &t, &tr), TD_OK);
    expect_fail(td_latent_trainer_resume(tr, path), TD_ERR_STATE, "seed");
    td_latent_train_stats st = { .struct_size = sizeof st };
    assert_int_equal(td_latent_trainer_step(tr, tok, &st), TD_OK);
    assert_int_equal(st.step, 1); /* the refused resume left the step count at 0 */
    td_latent_trainer_free(tr);
    assert_int_equal(td_latent_model_save(m, path), TD_OK); /* a model, no trainer state */
    t.seed = 1;
    assert_int_equal(td_latent_trainer_create(m, &t, &tr), TD_OK);
    assert_int_equal(td_latent_model_encode(m, tok, B, 1, before), TD_OK);
    expect_fail(td_latent_trainer_resume(tr, path), TD_ERR_FORMAT, "latent.trainer.stage");
    assert_int_equal(td_latent_model_encode(m, tok, B, 1, after), TD_OK);
    assert_memory_equal(before, after, sizeof before);
    td_latent_trainer_free(tr);
    td_latent_config c2 = c;
    c2.n_latents = N / 2;
    td_latent_model *m2;
    assert_int_equal(td_latent_model_create(enc, &c2, 7, NULL, &m2), TD_OK);
    t.stage = TD_LATENT_STAGE_AUTOENCODER;
    assert_int_equal(td_latent_trainer_create(m2, &t, &tr), TD_OK);
    expect_fail(td_latent_trainer_resume(tr, path), TD_ERR_STATE, "configuration");
    expect_fail(td_latent_trainer_resume(tr, "/nonexistent/latent.tdl"), TD_ERR_IO, "");
    expect_fail(td_latent_trainer_resume(NULL, path), TD_ERR_INVALID_ARG, "");
    expect_fail(td_latent_trainer_save(tr, NULL), TD_ERR_INVALID_ARG, "");
    td_latent_trainer_free(tr);
    td_latent_model_free(m2);
    td_latent_model_free(m);
    unlink(path);
    td_model_free(enc);
}

typedef struct workflow {
    td_model *enc;
    td_allocator alloc;
    char path[64];
} workflow;

static td_status run_workflow(void *ctx)
{
    workflow *w = ctx;
    td_latent_config c = small_config();
    td_latent_train_config t = small_train();
    td_latent_model *lm = NULL, *lm2 = NULL;
    td_latent_trainer *tr = NULL;
    int32_t tok[B * L], ids[B * L];
    float lat[B * N * D];
    tokens_of(tok, 2);
    td_status st = td_latent_model_create(w->enc, &c, 1, &w->alloc, &lm);
    if (st == TD_OK) st = td_latent_trainer_create(lm, &t, &tr);
    if (st == TD_OK) st = td_latent_trainer_step(tr, tok, NULL);
    if (st == TD_OK) st = td_latent_model_save(lm, w->path);
    if (st == TD_OK) st = td_latent_model_load(w->path, w->enc, &w->alloc, &lm2);
    if (st == TD_OK) st = td_latent_model_encode(lm2, tok, B, 2, lat);
    if (st == TD_OK) st = td_latent_model_decode(lm2, lat, B, 2, ids, NULL);
    td_latent_trainer_free(tr);
    tr = NULL;
    t.stage = TD_LATENT_STAGE_DIFFUSION;
    td_latent_sample_config sc;
    td_latent_sample_config_default(&sc);
    sc.steps = 3;
    sc.n_threads = 2;
    if (st == TD_OK) st = td_latent_trainer_create(lm2, &t, &tr);
    if (st == TD_OK) st = td_latent_trainer_step(tr, tok, NULL);
    if (st == TD_OK) st = td_latent_model_generate(lm2, &sc, B, ids, lat);
    if (st == TD_OK) st = td_latent_trainer_save(tr, w->path);
    if (st == TD_OK) st = td_latent_trainer_resume(tr, w->path);
    td_latent_trainer_free(tr);
    td_latent_model_free(lm2);
    td_latent_model_free(lm);
    return st;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    workflow w;
    test_heap h;
    w.alloc = test_heap_allocator(&h);
    w.enc = toy_model_create(V, MASK, L, 1, NULL);
    snprintf(w.path, sizeof w.path, "/tmp/td_latent_oom_%ld.tdl", (long)getpid());
    long failures = test_heap_fail_each(&h, "latent workflow", run_workflow, NULL, &w);
    assert_true(failures > 10);
    assert_int_equal(h.live, 0);
    unlink(w.path);
    td_model_free(w.enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_bad_configs),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_compresses_fresh_batches),
        cmocka_unit_test(test_determinism_and_checkpoint),
        cmocka_unit_test(test_diffusion),
        cmocka_unit_test(test_trainer_resume),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
