/* train_latent: latent text diffusion (docs/latent-diffusion.md) over a
 * frozen model's features (by default the shipped models/mlm.tdm). First the
 * autoencoder, measured by the share of validation tokens that come back
 * from the latents (encode, decode, arg max) and one reconstruction printed
 * beside its original; then the denoiser on the frozen autoencoder's latents,
 * and a few generated samples. --init continues from a saved model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "textdiff/textdiff.h"

#define DEFAULT_ENCODER TD_DATA_DIR "/../models/mlm.tdm"

/* Reconstruction accuracy over n_windows validation windows. */
static double reconstruction(const td_latent_model *lm, const td_corpus *c, int32_t L,
                             int32_t n_windows, int32_t threads, int32_t *first_in,
                             int32_t *first_out)
{
    td_latent_config cfg = { .struct_size = sizeof cfg };
    cli_check(td_latent_model_get_config(lm, &cfg), "td_latent_model_get_config");
    uint64_t avail;
    cli_check(td_corpus_num_windows(c, TD_SPLIT_VALID, L, &avail), "td_corpus_num_windows");
    if ((uint64_t)n_windows > avail) n_windows = (int32_t)avail;
    int32_t *tok = malloc(sizeof *tok * (size_t)L), *ids = malloc(sizeof *ids * (size_t)L);
    float *lat = malloc(sizeof *lat * (size_t)cfg.n_latents * (size_t)cfg.d_latent);
    if (!tok || !ids || !lat) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    int64_t right = 0, total = 0;
    for (int32_t w = 0; w < n_windows; w++) {
        uint64_t index = avail * (uint64_t)w / (uint64_t)n_windows;
        cli_check(td_corpus_window(c, TD_SPLIT_VALID, L, index, tok), "td_corpus_window");
        cli_check(td_latent_model_encode(lm, tok, 1, threads, lat), "td_latent_model_encode");
        cli_check(td_latent_model_decode(lm, lat, 1, threads, ids, NULL),
                  "td_latent_model_decode");
        for (int32_t i = 0; i < L; i++) right += ids[i] == tok[i];
        total += L;
        if (w == 0) {
            memcpy(first_in, tok, sizeof *tok * (size_t)L);
            memcpy(first_out, ids, sizeof *ids * (size_t)L);
        }
    }
    free(tok);
    free(ids);
    free(lat);
    return total ? (double)right / (double)total : 0.0;
}

static void print_text(const td_tokenizer *tok, const char *label, const int32_t *ids, int32_t n)
{
    size_t len = 0;
    cli_check(td_tokenizer_decode(tok, ids, (size_t)n, NULL, NULL, 0, &len), "decode");
    char *s = malloc(len + 1);
    if (!s) exit(1);
    cli_check(td_tokenizer_decode(tok, ids, (size_t)n, NULL, s, len + 1, &len), "decode");
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n') s[i] = ' ';
    printf("%s %s\n", label, s);
    free(s);
}

int main(int argc, char **argv)
{
    const char *corpus_path = TD_DEFAULT_CORPUS, *encoder_path = DEFAULT_ENCODER;
    const char *out = "latent.tdl", *init = NULL;
    int32_t diffusion_steps = 500, den_layers = 4, n_samples = 2, sample_steps = 50;
    int32_t steps = 500, batch = 16, seq_len = 128, n_latents = 32, d_latent = 128;
    int32_t layers = 2, threads = 1, eval_windows = 64, log_every = 50;
    int64_t warmup = 50;
    double lr = 1e-3, mse_weight = 1.0, mask_prob = 0.15, noise_std = 0.1, dropout = 0.1;
    int64_t seed = 1;
    cli_flag flags[] = {
        { "corpus", CLI_STRING, &corpus_path, "text file, plain or .gz (default: the KJV)" },
        { "encoder", CLI_STRING, &encoder_path, "frozen bidirectional model (models/mlm.tdm)" },
        { "out", CLI_STRING, &out, "where to save the model (latent.tdl)" },
        { "init", CLI_STRING, &init, "continue from this latent model (its configuration)" },
        { "steps", CLI_INT, &steps, "autoencoder training steps (500)" },
        { "diffusion-steps", CLI_INT, &diffusion_steps, "denoiser training steps (500)" },
        { "den-layers", CLI_INT, &den_layers, "denoiser blocks (4)" },
        { "samples", CLI_INT, &n_samples, "sequences generated at the end, DDIM (2)" },
        { "sample-steps", CLI_INT, &sample_steps, "their denoising steps (50)" },
        { "batch", CLI_INT, &batch, "sequences per step (16)" },
        { "seq-len", CLI_INT, &seq_len, "L, tokens per sequence (128)" },
        { "latents", CLI_INT, &n_latents, "N, latent vectors per sequence (32)" },
        { "d-latent", CLI_INT, &d_latent, "d, their width (128)" },
        { "layers", CLI_INT, &layers, "compressor and decoder blocks each (2)" },
        { "lr", CLI_FLOAT, &lr, "peak learning rate (1e-3)" },
        { "warmup", CLI_I64, &warmup, "warm-up steps (50)" },
        { "mse-weight", CLI_FLOAT, &mse_weight, "weight of the feature MSE (1)" },
        { "mask-prob", CLI_FLOAT, &mask_prob, "feature rows zeroed (0.15)" },
        { "noise-std", CLI_FLOAT, &noise_std, "Gaussian noise on the features (0.1)" },
        { "latent-dropout", CLI_FLOAT, &dropout, "latent feature dropout (0.1)" },
        { "threads", CLI_INT, &threads, "threads (1)" },
        { "seed", CLI_I64, &seed, "initialisation, batches and augmentations (1)" },
        { "eval-windows", CLI_INT, &eval_windows, "validation windows measured at the end (64)" },
        { "log-every", CLI_INT, &log_every, "steps between progress lines (50)" },
    };
    cli_parse(argc, argv, "train_latent [flags]: a latent autoencoder over a frozen model",
              flags, (int)(sizeof flags / sizeof flags[0]), NULL, NULL);
    cli_check(TD_CHECK_VERSION(), "td_check_version");

    td_model *enc;
    cli_check(td_model_load(encoder_path, NULL, &enc), encoder_path);
    td_tokenizer *tok;
    cli_check(td_model_get_tokenizer(enc, NULL, &tok), "the encoder's tokenizer");
    td_corpus *corpus;
    cli_check(td_corpus_load(corpus_path, tok, NULL, &corpus), corpus_path);

    td_latent_config lc;
    td_latent_config_default(&lc);
    lc.seq_len = seq_len;
    lc.n_latents = n_latents;
    lc.d_latent = d_latent;
    lc.n_enc_layers = lc.n_dec_layers = layers;
    lc.d_ff = 4 * d_latent;
    lc.n_den_layers = den_layers;
    td_latent_model *lm;
    if (init != NULL) {
        cli_check(td_latent_model_load(init, enc, NULL, &lm), init);
        lc.struct_size = sizeof lc;
        cli_check(td_latent_model_get_config(lm, &lc), "td_latent_model_get_config");
        seq_len = lc.seq_len;
        n_latents = lc.n_latents;
        d_latent = lc.d_latent;
        layers = lc.n_enc_layers;
    } else {
        cli_check(td_latent_model_create(enc, &lc, (uint64_t)seed, NULL, &lm),
                  "td_latent_model_create");
    }
    uint64_t n_params;
    td_latent_model_num_params(lm, &n_params);
    printf("latent autoencoder: L = %d tokens -> N = %d latents of width %d, %d+%d blocks, "
           "%llu parameters; encoder %s\n", (int)seq_len, (int)n_latents, (int)d_latent,
           (int)layers, (int)layers, (unsigned long long)n_params, encoder_path);
    cli_print_runtime(stdout, threads, 1);

    td_latent_train_config tc;
    td_latent_train_config_default(&tc);
    tc.batch_size = batch;
    tc.n_threads = threads;
    tc.seed = (uint64_t)seed;
    tc.lr = (float)lr;
    tc.warmup_steps = warmup < steps ? warmup : steps;
    tc.total_steps = steps;
    tc.mse_weight = (float)mse_weight;
    tc.mask_prob = (float)mask_prob;
    tc.noise_std = (float)noise_std;
    tc.latent_dropout = (float)dropout;
    td_latent_trainer *tr = NULL;
    if (steps > 0) cli_check(td_latent_trainer_create(lm, &tc, &tr), "td_latent_trainer_create");

    int32_t *tokens = malloc(sizeof *tokens * (size_t)batch * (size_t)seq_len);
    if (!tokens) return 1;
    cli_progress prog;
    cli_progress_start(&prog, 0, steps);
    td_latent_train_stats st = { .struct_size = sizeof st };
    double t0 = cli_now();
    for (int32_t s = 0; s < steps; s++) {
        cli_check(td_corpus_batch(corpus, TD_SPLIT_TRAIN, (uint64_t)seed, (uint64_t)s, batch,
                                  seq_len, tokens), "td_corpus_batch");
        cli_check(td_latent_trainer_step(tr, tokens, &st), "td_latent_trainer_step");
        double tps = (double)(s + 1) * batch * seq_len / (cli_now() - t0);
        cli_progress_update(&prog, s + 1, tps, "ce %.3f  mse %.3f  acc %.3f", st.ce, st.mse,
                            st.accuracy);
        if (log_every > 0 && ((s + 1) % log_every == 0 || s + 1 == steps) && !prog.tty)
            fflush(stdout);
    }
    cli_progress_end(&prog);
    if (steps > 0)
        printf("autoencoder: %d steps in %.1f s: ce %.4f nats/token, mse %.4f, batch accuracy "
               "%.4f\n", (int)steps, cli_now() - t0, st.ce, st.mse, st.accuracy);
    td_latent_trainer_free(tr);
    tr = NULL;

    int32_t *orig = malloc(sizeof *orig * (size_t)seq_len), *rec = malloc(sizeof *rec * (size_t)seq_len);
    if (!orig || !rec) return 1;
    double acc = reconstruction(lm, corpus, seq_len, eval_windows, threads, orig, rec);
    printf("validation reconstruction accuracy (%d windows, no augmentation): %.4f\n",
           (int)eval_windows, acc);
    print_text(tok, "original:     ", orig, seq_len);
    print_text(tok, "reconstructed:", rec, seq_len);

    /* The denoiser, on the latents of the autoencoder as it now is. */
    tc.stage = TD_LATENT_STAGE_DIFFUSION;
    tc.warmup_steps = warmup < diffusion_steps ? warmup : diffusion_steps;
    tc.total_steps = diffusion_steps > 0 ? diffusion_steps : 1;
    if (diffusion_steps > 0) {
        cli_check(td_latent_trainer_create(lm, &tc, &tr), "td_latent_trainer_create");
        cli_progress_start(&prog, 0, diffusion_steps);
        t0 = cli_now();
        for (int32_t s = 0; s < diffusion_steps; s++) {
            cli_check(td_corpus_batch(corpus, TD_SPLIT_TRAIN, (uint64_t)seed + 1, (uint64_t)s,
                                      batch, seq_len, tokens), "td_corpus_batch");
            cli_check(td_latent_trainer_step(tr, tokens, &st), "td_latent_trainer_step");
            double tps = (double)(s + 1) * batch * seq_len / (cli_now() - t0);
            cli_progress_update(&prog, s + 1, tps, "denoising mse %.4f", st.mse);
        }
        cli_progress_end(&prog);
        printf("denoiser: %d steps in %.1f s: mse %.4f\n", (int)diffusion_steps, cli_now() - t0,
               st.mse);
        td_latent_trainer_free(tr);
    }
    cli_check(td_latent_model_save(lm, out), out);
    printf("saved %s\n", out);
    if (n_samples > 0) {
        td_latent_sample_config sc;
        td_latent_sample_config_default(&sc);
        sc.steps = sample_steps;
        sc.n_threads = threads;
        for (int32_t k = 0; k < n_samples; k++) {
            sc.seed = (uint64_t)seed + (uint64_t)k;
            cli_check(td_latent_model_generate(lm, &sc, 1, rec, NULL), "td_latent_model_generate");
            char label[32];
            snprintf(label, sizeof label, "sample %d (DDIM %d):", (int)k + 1, (int)sample_steps);
            print_text(tok, label, rec, seq_len);
        }
    }

    free(orig);
    free(rec);
    free(tokens);
    td_latent_model_free(lm);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    td_model_free(enc);
    return 0;
}
