/* libFuzzer target for latent checkpoints as the public API reads them:
 * td_latent_model_load over a fixed small encoder (width 8, vocabulary 6,
 * [MASK] 5, max_seq_len 8; gen_latent_seeds.c writes seeds for it).
 *
 * It reaches the latent configuration keys, the tensor directory, shapes and
 * values behind the container, and checks what an accepted file promises:
 *   - a refused file leaves *out NULL;
 *   - the model encodes a sequence and decodes its latents (TD_OK, or
 *     TD_ERR_NUMERIC when its weights overflow), never to [MASK] or outside
 *     the vocabulary;
 *   - saved and loaded again it is the same model: the same configuration
 *     and bit for bit the same latents.
 *   - a trainer (autoencoder stage, batch 1, seed 1) over it either resumes
 *     from the file and then takes a step (TD_OK or TD_ERR_NUMERIC), or
 *     refuses it and then takes its first step.
 * Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, so that mutated
 * inputs pass the CRCs. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <textdiff/textdiff.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { report(#cond); __builtin_trap(); } } while (0)

static void report(const char *what)
{
    fprintf(stderr, "fuzz_latent: %s fails; last error: %s\n", what, td_last_error_message());
}

enum { ENC_V = 6, ENC_MASK = 5, ENC_LEN = 8, ENC_D = 8 };

static td_model *encoder(void)
{
    static td_model *m = NULL;
    if (m == NULL) {
        td_model_config c;
        CHECK(td_model_config_default(&c) == TD_OK);
        c.vocab_size = ENC_V;
        c.mask_id = ENC_MASK;
        c.max_seq_len = ENC_LEN;
        c.d_model = ENC_D;
        c.n_layers = 1;
        c.n_heads = 2;
        c.d_ff = 16;
        CHECK(td_model_create(&c, 1, NULL, &m) == TD_OK);
    }
    return m;
}

/* The latents of one fixed sequence, or NULL when the model overflows. */
static float *latents_of(const td_latent_model *lm, const td_latent_config *c)
{
    int32_t ids[ENC_LEN], out[ENC_LEN];
    for (int32_t i = 0; i < c->seq_len; i++) ids[i] = i % ENC_MASK;
    float *lat = malloc(sizeof(float) * (size_t)c->n_latents * (size_t)c->d_latent);
    CHECK(lat != NULL);
    td_status st = td_latent_model_encode(lm, ids, 1, 1, lat);
    CHECK(st == TD_OK || st == TD_ERR_NUMERIC);
    if (st != TD_OK) {
        free(lat);
        return NULL;
    }
    st = td_latent_model_decode(lm, lat, 1, 1, out, NULL);
    CHECK(st == TD_OK || st == TD_ERR_NUMERIC);
    if (st == TD_OK)
        for (int32_t i = 0; i < c->seq_len; i++) CHECK(out[i] >= 0 && out[i] < ENC_MASK);
    return lat;
}

static void check_resume(td_latent_model *lm, const char *path)
{
    td_latent_config c;
    c.struct_size = sizeof c;
    CHECK(td_latent_model_get_config(lm, &c) == TD_OK);
    td_latent_train_config tc;
    CHECK(td_latent_train_config_default(&tc) == TD_OK);
    tc.batch_size = 1;
    td_latent_trainer *t = NULL;
    CHECK(td_latent_trainer_create(lm, &tc, &t) == TD_OK);
    int resumed = td_latent_trainer_resume(t, path) == TD_OK;
    int32_t ids[ENC_LEN];
    for (int32_t i = 0; i < c.seq_len; i++) ids[i] = i % ENC_MASK;
    td_latent_train_stats st = { .struct_size = sizeof st };
    td_status s = td_latent_trainer_step(t, ids, &st);
    CHECK(s == TD_OK || s == TD_ERR_NUMERIC);
    if (!resumed && s == TD_OK) CHECK(st.step == 1);
    td_latent_trainer_free(t);
}

static char *temp_path(const char *what)
{
    static char path[2][64];
    int k = what[0] == 'i' ? 0 : 1;
    snprintf(path[k], sizeof path[k], "/tmp/fuzz_latent_%s_%ld.tdl", what, (long)getpid());
    return path[k];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = temp_path("in"), *again = temp_path("out");
    FILE *f = fopen(in, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
    td_latent_model *lm = (td_latent_model *)&lm; /* must be reset */
    td_status st = td_latent_model_load(in, encoder(), NULL, &lm);
    if (st != TD_OK) {
        unlink(in);
        CHECK(lm == NULL);
        return 0;
    }

    td_latent_config c;
    c.struct_size = sizeof c;
    CHECK(td_latent_model_get_config(lm, &c) == TD_OK);
    CHECK(c.seq_len >= 1 && c.seq_len <= ENC_LEN && c.n_latents >= 1 &&
          c.n_latents <= c.seq_len && c.d_latent >= 1 && c.d_latent % c.n_heads == 0);
    float *a = latents_of(lm, &c);

    CHECK(td_latent_model_save(lm, again) == TD_OK);
    td_latent_model *back = NULL;
    CHECK(td_latent_model_load(again, encoder(), NULL, &back) == TD_OK);
    unlink(again);
    td_latent_config cb;
    cb.struct_size = sizeof cb;
    CHECK(td_latent_model_get_config(back, &cb) == TD_OK);
    CHECK(memcmp(&c, &cb, sizeof c) == 0);
    float *b = latents_of(back, &cb);
    CHECK((a == NULL) == (b == NULL));
    if (a != NULL)
        CHECK(memcmp(a, b, sizeof(float) * (size_t)c.n_latents * (size_t)c.d_latent) == 0);
    free(a);
    free(b);
    td_latent_model_free(back);
    check_resume(lm, in); /* last: it trains lm */
    unlink(in);
    td_latent_model_free(lm);
    return 0;
}
