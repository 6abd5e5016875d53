/* demo: MLM next to diffusion on the bundled corpus.
 *
 * Two models of the same size, trained on the same data for the same steps
 * by the same trainer: one at BERT's single masking rate (15%), one over all
 * rates with the ELBO weight. The demo scores both with the same estimator
 * and then asks both to write: from an empty canvas and after a prompt, at
 * 1 step (BERT's one-shot fill) and at many. --retrain trains the two models
 * again with the library's own training loop. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_common.h"

#define MODELS_DIR TD_DATA_DIR "/../models"
enum { N_RATES = 5 };
static const double rates[N_RATES] = { 0.15, 0.3, 0.5, 0.7, 0.9 };

typedef struct scored {
    const char *name, *path;
    td_model *model;
    td_eval_result nelbo;
    double loss[N_RATES], acc[N_RATES];
} scored;

/* 1 − distinct/total over the sample's 4-grams: 0 for text that never
 * repeats itself, near 1 for a loop. */
static double repetition(const char *s, size_t n)
{
    if (n < 5) return 0;
    size_t total = n - 3, distinct = 0;
    for (size_t i = 0; i < total; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = memcmp(s + i, s + j, 4) == 0;
        distinct += !seen;
    }
    return 1.0 - (double)distinct / (double)total;
}

static void print_wrapped(const char *label, const char *text, size_t n, double rep)
{
    printf("  %-10s", label);
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (col >= 64 && text[i] == ' ') {
            printf("\n  %-10s", "");
            col = 0;
            continue;
        }
        if (text[i] == '\n') {
            fputs(" / ", stdout);
            col += 3;
        } else {
            putchar(text[i]);
            col++;
        }
    }
    printf("\n  %-10s[repeated 4-grams: %.0f%%]\n", "", 100 * rep);
}

static void generate(scored *m, int n_models, const char *prompt, int len, int steps,
                     uint64_t seed, int threads)
{
    printf("\n-- %s, %d step%s%s --\n", *prompt ? "after a prompt" : "from an empty canvas", steps,
           steps == 1 ? "" : "s", steps == 1 ? " (fill every mask at once, as BERT does)" : "");
    if (*prompt) printf("  prompt:   \"%s\"\n", prompt);
    td_schedule_config scc;
    td_schedule *sch;
    cli_check(td_schedule_config_default(&scc, TD_SCHEDULE_LOGLINEAR), "schedule");
    cli_check(td_schedule_create(&scc, NULL, &sch), "schedule");
    for (int i = 0; i < n_models; i++) {
        td_tokenizer *tok;
        cli_check(td_model_get_tokenizer(m[i].model, NULL, &tok), m[i].path);
        int32_t mask, pad;
        cli_check(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask), "[MASK]");
        cli_check(td_tokenizer_special_id(tok, TD_TOKEN_PAD, &pad), "[PAD]");
        int32_t *canvas = malloc(sizeof *canvas * (size_t)len);
        size_t n_prompt;
        cli_check(td_tokenizer_encode(tok, prompt, strlen(prompt), canvas, (size_t)len, &n_prompt),
                  "prompt");
        for (int k = (int)n_prompt; k < len; k++) canvas[k] = mask;
        td_sampler_config sc;
        cli_check(td_sampler_config_default(&sc), "sampler");
        sc.steps = steps;
        sc.seed = seed;
        sc.n_threads = threads;
        sc.pad_id = pad;
        sc.max_seq_len = len;
        td_sampler *s;
        cli_check(td_sampler_create(m[i].model, sch, &sc, &s), "sampler");
        cli_check(td_sampler_generate(s, canvas, 1, len, NULL, NULL, NULL), "generate");
        char text[1024];
        size_t n;
        cli_check(td_tokenizer_decode(tok, canvas, (size_t)len, "_", text, sizeof text, &n),
                  "decode");
        print_wrapped(m[i].name, text, n, repetition(text, n));
        td_sampler_free(s);
        free(canvas);
        td_tokenizer_free(tok);
    }
    td_schedule_free(sch);
}

static void retrain(int64_t steps, int threads)
{
    char steps_s[32], threads_s[16];
    snprintf(steps_s, sizeof steps_s, "%lld", (long long)steps);
    snprintf(threads_s, sizeof threads_s, "%d", threads);
    for (int diffusion = 0; diffusion <= 1; diffusion++) {
        const char *out = diffusion ? MODELS_DIR "/diffusion.tdm" : MODELS_DIR "/mlm.tdm";
        const char *ckpt = diffusion ? "diffusion.ckpt" : "mlm.ckpt";
        /* The commands of docs/mlm-vs-diffusion.md. */
        char *args[] = { diffusion ? "train_diffusion" : "train_mlm", "--d-model", "256",
                         "--layers", "3", "--heads", "4", "--seq-len", "128", "--batch", "32",
                         "--steps", steps_s, "--lr", "1.5e-3", "--min-lr", "1e-4", "--warmup",
                         "200", "--threads", threads_s, "--seed", "1", "--save-every", "250",
                         "--eval-every", "250", "--checkpoint", (char *)ckpt, "--resume",
                         "--export", (char *)out };
        int rc = train_main((int)(sizeof args / sizeof args[0]), args, diffusion);
        if (rc != 0) exit(rc);
    }
}

int main(int argc, char **argv)
{
    const char *mlm_path = MODELS_DIR "/mlm.tdm", *diff_path = MODELS_DIR "/diffusion.tdm";
    const char *prompt = "And God said, Let there be";
    int steps = 64, len = 96, windows = 16, threads = 2, do_retrain = 0;
    int64_t seed = 7, retrain_steps = 2200;
    cli_flag flags[] = {
        { "mlm", CLI_STRING, &mlm_path, "MLM-trained checkpoint" },
        { "diffusion", CLI_STRING, &diff_path, "diffusion-trained checkpoint" },
        { "prompt", CLI_STRING, &prompt, "prompt for the conditional samples" },
        { "steps", CLI_INT, &steps, "denoising steps of the multi-step samples" },
        { "len", CLI_INT, &len, "canvas length in bytes" },
        { "windows", CLI_INT, &windows, "validation windows to score (more: slower, tighter)" },
        { "seed", CLI_I64, &seed, "sampling seed" },
        { "threads", CLI_INT, &threads, "threads" },
        { "retrain", CLI_SWITCH, &do_retrain, "train both models again first (slow)" },
        { "retrain-steps", CLI_I64, &retrain_steps, "training steps for --retrain" },
    };
    cli_parse(argc, argv, "usage: demo [options]  (MLM vs diffusion on the King James Bible)",
              flags, (int)(sizeof flags / sizeof flags[0]), NULL, NULL);
    cli_check(TD_CHECK_VERSION(), "version check");
    if (do_retrain) retrain(retrain_steps, threads);
    scored m[2] = { { "MLM", mlm_path, NULL, { 0 }, { 0 }, { 0 } },
                    { "diffusion", diff_path, NULL, { 0 }, { 0 }, { 0 } } };
    for (int i = 0; i < 2; i++) cli_check(td_model_load(m[i].path, NULL, &m[i].model), m[i].path);

    /* Score both on the same validation windows with the same masks. */
    td_tokenizer *tok;
    cli_check(td_model_get_tokenizer(m[0].model, NULL, &tok), m[0].path);
    td_corpus *corpus;
    cli_check(td_corpus_load(TD_DEFAULT_CORPUS, tok, NULL, &corpus), TD_DEFAULT_CORPUS);
    td_tokenizer_free(tok);
    const int seq_len = 128;
    uint64_t n_windows;
    cli_check(td_corpus_num_windows(corpus, TD_SPLIT_VALID, seq_len, &n_windows), "validation");
    int32_t *valid = malloc(sizeof *valid * (size_t)(n_windows * seq_len));
    for (uint64_t w = 0; w < n_windows; w++)
        cli_check(td_corpus_window(corpus, TD_SPLIT_VALID, seq_len, w, valid + w * seq_len),
                  "window");
    td_eval_config ec;
    cli_check(td_eval_config_default(&ec), "eval");
    ec.seq_len = seq_len;
    ec.n_threads = threads;
    ec.max_sequences = windows;
    ec.n_times = 8;
    ec.bytes_per_token = 1.0;
    for (int i = 0; i < 2; i++) {
        m[i].nelbo.struct_size = sizeof m[i].nelbo;
        cli_check(td_eval_nelbo(m[i].model, valid, (int64_t)(n_windows * seq_len), &ec, &m[i].nelbo),
                  "NELBO");
        cli_check(td_eval_rates(m[i].model, valid, (int64_t)(n_windows * seq_len), rates, N_RATES,
                                &ec, m[i].loss, m[i].acc),
                  "per-rate loss");
    }
    free(valid);
    td_corpus_free(corpus);

    td_model_config mc = { .struct_size = sizeof mc };
    uint64_t n_params;
    td_model_get_config(m[0].model, &mc);
    td_model_num_params(m[0].model, &n_params);
    printf("libtextdiff %s: MLM vs masked diffusion on the King James Bible\n", td_version_string());
    printf("two byte-level transformers, %.1fM parameters each (d=%d, %d layers, %d heads),\n"
           "same data, same steps, same trainer; only the noise schedule differs\n",
           (double)n_params / 1e6, mc.d_model, mc.n_layers, mc.n_heads);
    cli_print_runtime(stdout, threads, 1);
    printf("\n");
    printf("held-out text, %lld windows of %d bytes, same masks for both (bits per byte):\n",
           (long long)m[0].nelbo.n_sequences, seq_len);
    printf("  %-22s %12s %12s\n", "", "MLM", "diffusion");
    printf("  %-22s %12.3f %12.3f\n", "NELBO bound", m[0].nelbo.bits_per_byte,
           m[1].nelbo.bits_per_byte);
    for (int j = 0; j < N_RATES; j++) {
        char label[64];
        snprintf(label, sizeof label, "loss at %2.0f%% masked", 100 * rates[j]);
        printf("  %-22s %12.3f %12.3f\n", label, m[0].loss[j] / log(2.0), m[1].loss[j] / log(2.0));
    }
    printf("  %-22s %11.1f%% %11.1f%%\n", "accuracy at 15%", 100 * m[0].acc[0], 100 * m[1].acc[0]);

    generate(m, 2, "", len, 1, (uint64_t)seed, threads);
    generate(m, 2, "", len, steps, (uint64_t)seed, threads);
    generate(m, 2, prompt, len, 1, (uint64_t)seed, threads);
    generate(m, 2, prompt, len, steps, (uint64_t)seed, threads);
    printf("\n(more: build/demo/bin/sample --help, build/demo/bin/eval --help, docs/mlm-vs-diffusion.md)\n");
    for (int i = 0; i < 2; i++) td_model_free(m[i].model);
    return 0;
}
