/* Writes small valid latent checkpoints as a starting corpus for
 * fuzz_latent: gen_latent_seeds <directory>. The encoder has the shape
 * fuzz_latent.c builds (width 8, vocabulary 6, [MASK] 5, max_seq_len 8); the
 * latent models are tiny, so that a whole file fits the fuzzer's input size
 * limit. */
#include <stdio.h>

#include <textdiff/textdiff.h>

#define TRY(x) do { if ((x) != TD_OK) { fprintf(stderr, "failed: %s\n", #x); return 1; } } while (0)

static int one(const td_model *enc, const char *dir, const char *name, int32_t L, int32_t N,
               int32_t schedule, int32_t prediction, int train)
{
    char path[1024];
    td_latent_config c;
    td_latent_model *lm = NULL;
    TRY(td_latent_config_default(&c));
    c.seq_len = L;
    c.n_latents = N;
    c.d_latent = 4;
    c.n_heads = 2;
    c.n_enc_layers = c.n_dec_layers = c.n_den_layers = 1;
    c.d_ff = 8;
    c.schedule = schedule;
    c.prediction = prediction;
    TRY(td_latent_model_create(enc, &c, 3, NULL, &lm));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    TRY(td_latent_model_save(lm, path));
    if (train) { /* a trainer checkpoint after one step (batch 1, seed 1) */
        td_latent_train_config tc;
        td_latent_trainer *t = NULL;
        int32_t ids[8] = { 0, 1, 2, 3, 4, 0, 1, 2 };
        TRY(td_latent_train_config_default(&tc));
        tc.batch_size = 1;
        TRY(td_latent_trainer_create(lm, &tc, &t));
        TRY(td_latent_trainer_step(t, ids, NULL));
        TRY(td_latent_trainer_save(t, path));
        td_latent_trainer_free(t);
    }
    td_latent_model_free(lm);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_latent_seeds <directory>\n");
        return 2;
    }
    td_model_config c;
    td_model *enc = NULL;
    TRY(td_model_config_default(&c));
    c.vocab_size = 6;
    c.mask_id = 5;
    c.max_seq_len = 8;
    c.d_model = 8;
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = 16;
    TRY(td_model_create(&c, 1, NULL, &enc));
    int bad = one(enc, argv[1], "latent-even.tdl", 4, 2, TD_LATENT_SCHEDULE_TAN_D,
                  TD_LATENT_PREDICT_X0, 0) ||
              one(enc, argv[1], "latent-uneven.tdl", 5, 2, TD_LATENT_SCHEDULE_COSINE,
                  TD_LATENT_PREDICT_V, 0) ||
              one(enc, argv[1], "latent-trainer.tdl", 4, 2, TD_LATENT_SCHEDULE_TAN_D,
                  TD_LATENT_PREDICT_X0, 1);
    td_model_free(enc);
    return bad;
}
