/* sample: generate text with a trained model — from an empty canvas, after a
 * prompt, or into the gaps of a template — with any strategy and knobs
 * (thresholds, remasking, guidance, token lists), and optionally watch the
 * canvas being unmasked step by step or stream the text as it settles.
 * --hf DIR samples from a Hugging Face BERT/RoBERTa/DistilBERT directory as
 * it is, in its own tokens (docs/bert-is-a-sampler.md). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "canvas.h"
#include "cli.h"

typedef struct show {
    const td_tokenizer *tok;
    int delay_ms;
    char *buf;
    size_t cap;
} show;

/* Prints the canvas with masks as '_' (and the unmasked text from the
 * current step highlighted). */
static int32_t on_step(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                       int32_t batch, int32_t seq_len, const int32_t *changed, int32_t n_changed)
{
    show *sh = user;
    (void)changed;
    fprintf(stderr, "\033[H\033[Jstep %d/%d, %d revealed\n\n", step + 1, n_steps, n_changed);
    for (int32_t b = 0; b < batch; b++) {
        size_t len;
        if (td_tokenizer_decode(sh->tok, canvas + (size_t)b * seq_len, (size_t)seq_len, "_",
                                sh->buf, sh->cap, &len) == TD_OK)
            fprintf(stderr, "%.*s\n\n", (int)len, sh->buf);
    }
    if (sh->delay_ms > 0) {
        struct timespec ts = { sh->delay_ms / 1000, (long)(sh->delay_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* --latent: n sequences from a latent diffusion model (docs/latent-diffusion.md)
 * over the frozen encoder `m`, DDIM or DDPM, one at a time with progress. */
static int sample_latent(td_model *m, const td_tokenizer *tok, const char *path,
                         const char *sampler, int steps, int n, int64_t seed, int threads)
{
    td_latent_model *lm;
    cli_check(td_latent_model_load(path, m, NULL, &lm), path);
    td_latent_config lc = { .struct_size = sizeof lc };
    cli_check(td_latent_model_get_config(lm, &lc), "latent config");
    td_latent_sample_config sc;
    cli_check(td_latent_sample_config_default(&sc), "latent sample config");
    if (strcmp(sampler, "ddpm") == 0) sc.sampler = TD_LATENT_SAMPLER_DDPM;
    else if (strcmp(sampler, "ddim") == 0 || strcmp(sampler, "ancestral") == 0)
        sc.sampler = TD_LATENT_SAMPLER_DDIM;
    else {
        fprintf(stderr, "sample: --latent takes --strategy ddim or ddpm\n");
        return 2;
    }
    sc.steps = steps;
    sc.n_threads = threads;
    int32_t *ids = malloc(sizeof *ids * (size_t)lc.seq_len);
    size_t cap = (size_t)lc.seq_len * 4 + 64, len;
    char *buf = malloc(cap);
    if (!ids || !buf) return 1;
    double t0 = cli_now();
    for (int b = 0; b < n; b++) {
        sc.seed = (uint64_t)seed + (uint64_t)b;
        cli_check(td_latent_model_generate(lm, &sc, 1, ids, NULL), "td_latent_model_generate");
        fprintf(stderr, "[%d/%d] %d %s steps, %.2f s\n", b + 1, n, steps,
                sc.sampler == TD_LATENT_SAMPLER_DDPM ? "DDPM" : "DDIM", cli_now() - t0);
        cli_check(td_tokenizer_decode(tok, ids, (size_t)lc.seq_len, "_", buf, cap, &len),
                  "decode");
        if (n > 1) printf("--- sample %d\n", b + 1);
        fwrite(buf, 1, len, stdout);
        printf("\n");
    }
    free(buf);
    free(ids);
    td_latent_model_free(lm);
    return 0;
}

/* Prints the newly stable text of sequence 0 as it arrives. */
static int32_t on_stream(void *user, int32_t b, const int32_t *prefix, int32_t prefix_len,
                         int32_t n_new)
{
    show *sh = user;
    size_t len;
    if (b == 0 && td_tokenizer_decode(sh->tok, prefix + prefix_len - n_new, (size_t)n_new, "_",
                                      sh->buf, sh->cap, &len) == TD_OK) {
        fwrite(sh->buf, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* "1,2,3" into ids (at most cap); returns how many, or -1 on a bad item. */
static int parse_ids(const char *list, int32_t *ids, int cap)
{
    int n = 0;
    const char *p = list;
    while (*p != '\0') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || n == cap || v < INT32_MIN || v > INT32_MAX) return -1;
        ids[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *model_path = TD_DATA_DIR "/../models/diffusion.tdm", *strategy = "ancestral";
    const char *prompt = "", *infill = NULL, *schedule_name = "loglinear";
    const char *remask = "none", *ban = NULL, *allow = NULL;
    double threshold = 0.0, factor = 0.0, eta = 0.0, t_on = 0.55, t_off = 0.05, alpha_on = 0.9;
    double guidance = 0.0;
    int stream = 0;
    int steps = 64, top_k = 0, block_len = 0, len = 128, n = 1, show_steps = 0, threads = 1;
    int delay = 40, stats_flag = 0;
    int approx = 0, eos = 0;
    double temperature = 1.0, top_p = 1.0, alg_temp = 0.0;
    int64_t seed = 1;
    const char *latent = NULL, *hf = NULL;
    cli_flag flags[] = {
        { "model", CLI_STRING, &model_path, "checkpoint (with --latent: the frozen encoder; "
          "default models/mlm.tdm)" },
        { "hf", CLI_STRING, &hf, "Hugging Face model directory (config.json, model.safetensors, "
          "tokenizer files) instead of --model: the canvas is framed by [CLS] ... [SEP] "
          "(<s> ... </s>) and special tokens are never drawn" },
        { "latent", CLI_STRING, &latent, "latent diffusion model (train_latent); --strategy "
          "ddim (default) or ddpm, --steps, --n, --seed, --threads apply" },
        { "strategy", CLI_STRING, &strategy, "ancestral, maxprob, margin, entropy, or ltr (left to right: a causal model's)" },
        { "steps", CLI_INT, &steps, "denoising steps (1: fill everything at once)" },
        { "schedule", CLI_STRING, &schedule_name, "linear, loglinear, cosine or polynomial" },
        { "temperature", CLI_FLOAT, &temperature, "sampling temperature (0: greedy)" },
        { "top-k", CLI_INT, &top_k, "sample among the k most likely tokens (0: all)" },
        { "top-p", CLI_FLOAT, &top_p, "nucleus sampling mass" },
        { "alg-temp", CLI_FLOAT, &alg_temp, "randomness of the confidence order" },
        { "block-len", CLI_INT, &block_len, "semi-autoregressive block length (0: off)" },
        { "len", CLI_INT, &len, "canvas length in tokens (bytes with the byte tokenizer; with --hf "
          "counting [CLS] and [SEP])" },
        { "prompt", CLI_STRING, &prompt, "text kept at the start of the canvas" },
        { "infill", CLI_STRING, &infill, "template: '_' marks each byte to generate" },
        { "n", CLI_INT, &n, "number of samples" },
        { "seed", CLI_I64, &seed, "seed" },
        { "threads", CLI_INT, &threads, "threads" },
        { "show-steps", CLI_SWITCH, &show_steps, "animate the canvas in the terminal" },
        { "delay", CLI_INT, &delay, "milliseconds between animation frames" },
        { "stats", CLI_SWITCH, &stats_flag, "print model calls and timing" },
        { "threshold", CLI_FLOAT, &threshold, "maxprob/margin: reveal every position above this confidence, in (0, 1] (0: off)" },
        { "factor", CLI_FLOAT, &factor, "maxprob/margin: Fast-dLLM's factor rule (0: off)" },
        { "remask", CLI_STRING, &remask, "none, rescale, cap or loop (ReMDM)" },
        { "eta", CLI_FLOAT, &eta, "remasking strength in [0, 1]" },
        { "t-on", CLI_FLOAT, &t_on, "loop: start of the remasking window" },
        { "t-off", CLI_FLOAT, &t_off, "loop: end of the remasking window" },
        { "alpha-on", CLI_FLOAT, &alpha_on, "loop: alpha held in the window" },
        { "guidance", CLI_FLOAT, &guidance, "classifier-free guidance w (0: off)" },
        { "ban", CLI_STRING, &ban, "comma-separated token ids never to draw (bytes with the byte tokenizer)" },
        { "allow", CLI_STRING, &allow, "comma-separated token ids, the only ones to draw" },
        { "stream", CLI_SWITCH, &stream, "print the text as it becomes final (one sample)" },
        { "approx-cache", CLI_INT, &approx, "with --block-len: keep keys and values outside the block, 1 prefix, 2 dual (0: off)" },
        { "eos", CLI_SWITCH, &eos, "end the text at the model's end token (a model trained with --docs)" },
    };
    cli_parse(argc, argv, "usage: sample [options]", flags, (int)(sizeof flags / sizeof flags[0]),
              NULL, NULL);
    if (latent != NULL && strcmp(model_path, TD_DATA_DIR "/../models/diffusion.tdm") == 0)
        model_path = TD_DATA_DIR "/../models/mlm.tdm";
    td_model *m;
    td_tokenizer *tok;
    if (hf != NULL && latent != NULL) {
        fprintf(stderr, "sample: --hf and --latent do not go together\n");
        return 2;
    }
    if (hf != NULL) {
        cli_load_hf(hf, &m, &tok);
    } else {
        cli_check(td_model_load(model_path, NULL, &m), model_path);
        cli_check(td_model_get_tokenizer(m, NULL, &tok), "tokenizer");
    }
    if (latent != NULL) {
        int rc = sample_latent(m, tok, latent, strategy, steps, n, seed, threads);
        td_tokenizer_free(tok);
        td_model_free(m);
        return rc;
    }
    int32_t mask, pad;
    cli_check(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask), "[MASK]");
    cli_check(td_tokenizer_special_id(tok, TD_TOKEN_PAD, &pad), "[PAD]");

    /* The canvas: a template with '_' holes, or a prompt followed by masks. */
    const char *text = infill ? infill : prompt, *why;
    int32_t *row, len32 = len;
    td_status cst = canvas_row(tok, text, strlen(text),
                               (infill ? CANVAS_TEMPLATE : 0) | (hf ? CANVAS_FRAMED : 0), &len32,
                               &row, &why);
    if (why != NULL) {
        fprintf(stderr, "sample: %s (--len %d)\n", why, len);
        return 2;
    }
    cli_check(cst, infill ? "template" : "prompt");
    len = len32;
    int32_t *canvas = malloc(sizeof *canvas * (size_t)len * (size_t)n);
    for (int b = 0; b < n; b++) memcpy(canvas + (size_t)b * len, row, sizeof *row * (size_t)len);

    static const char *const strategies[] = { "ancestral", "maxprob", "margin", "entropy",
                                              "ltr" };
    static const char *const schedules[] = { "linear", "loglinear", "cosine", "polynomial" };
    int strategy_id = -1, schedule_id = -1;
    for (int i = 0; i < 5; i++) {
        if (strcmp(strategy, strategies[i]) == 0) strategy_id = i; /* ltr: 4, LEFT_TO_RIGHT */
        if (i < 4 && strcmp(schedule_name, schedules[i]) == 0) schedule_id = i;
    }
    static const char *const remasks[] = { "none", "rescale", "cap", "loop" };
    int remask_id = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(remask, remasks[i]) == 0) remask_id = i;
    if (strategy_id < 0 || schedule_id < 0 || remask_id < 0) {
        fprintf(stderr, "sample: unknown --strategy, --schedule or --remask\n");
        return 2;
    }
    if (stream && (n != 1 || show_steps)) {
        fprintf(stderr, "sample: --stream prints one sample (--n 1), without --show-steps\n");
        return 2;
    }
    td_schedule_config scc;
    cli_check(td_schedule_config_default(&scc, (td_schedule_kind)schedule_id), "schedule");
    td_schedule *sch;
    cli_check(td_schedule_create(&scc, NULL, &sch), "schedule");
    td_sampler_config sc;
    cli_check(td_sampler_config_default(&sc), "sampler config");
    sc.strategy = strategy_id;
    sc.steps = steps;
    sc.temperature = (float)temperature;
    sc.top_k = top_k;
    sc.top_p = (float)top_p;
    sc.alg_temperature = (float)alg_temp;
    sc.block_len = block_len;
    sc.seed = (uint64_t)seed;
    sc.n_threads = threads;
    sc.pad_id = pad;
    sc.max_batch = n;
    sc.max_seq_len = len;
    sc.threshold = (float)threshold;
    sc.factor = (float)factor;
    sc.remask = remask_id;
    sc.eta = (float)eta;
    sc.remask_t_on = (float)t_on;
    sc.remask_t_off = (float)t_off;
    sc.remask_alpha_on = (float)alpha_on;
    sc.guidance = (float)guidance;
    sc.approx_cache = approx;
    if (eos) cli_check(td_tokenizer_special_id(tok, TD_TOKEN_EOS, &sc.eos_id), "--eos");
    td_sampler *s;
    cli_check(td_sampler_create(m, sch, &sc, &s), "sampler");
    const char *lists[2] = { ban, allow };
    for (int k = 0; k < 2; k++) {
        /* --hf: the special tokens ([UNK], [CLS], [SEP]; the model never
         * predicts [MASK], the sampler never draws [PAD]) join the ban list */
        const int specials = hf != NULL && k == 0 && allow == NULL;
        if (lists[k] == NULL && !specials) continue;
        int32_t ids[1024 + 3];
        int n_ids = lists[k] ? parse_ids(lists[k], ids, 1024) : 0;
        if (n_ids < 0 || (n_ids == 0 && lists[k] != NULL)) {
            fprintf(stderr, "sample: --%s takes comma-separated ids\n", k ? "allow" : "ban");
            return 2;
        }
        static const td_special_token banned[] = { TD_TOKEN_UNK, TD_TOKEN_CLS, TD_TOKEN_SEP };
        for (int i = 0; specials && i < 3; i++)
            if (td_tokenizer_special_id(tok, banned[i], &ids[n_ids]) == TD_OK) n_ids++;
        if (n_ids == 0) continue;
        cli_check(td_sampler_set_tokens(s, k ? TD_SAMPLER_TOKENS_ALLOW : TD_SAMPLER_TOKENS_BAN,
                                        ids, n_ids),
                  k ? "--allow" : "--ban");
    }

    size_t cap = (size_t)len * 4 + 64;
    show sh = { tok, delay, malloc(cap), cap };
    if (stream) cli_check(td_sampler_set_stream(s, on_stream, &sh), "--stream");
    td_sample_stats st = { .struct_size = sizeof st };
    double t0 = cli_now();
    cli_check(td_sampler_generate(s, canvas, n, len, show_steps ? on_step : NULL, &sh, &st),
              "generate");
    double dt = cli_now() - t0;
    for (int b = 0; b < n; b++) {
        size_t out_len;
        cli_check(td_tokenizer_decode(tok, canvas + (size_t)b * len, (size_t)len, "_", sh.buf, cap,
                                      &out_len),
                  "decode");
        if (n > 1) printf("--- sample %d\n", b + 1);
        if (!stream) fwrite(sh.buf, 1, out_len, stdout);
        printf("\n");
    }
    cli_print_runtime(stderr, threads, stats_flag);
    if (stats_flag)
        fprintf(stderr,
                "%lld steps, %lld model calls (%lld cached), %.3f calls/token, %lld remasked, "
                "%.2f s, %.0f tokens/s\n",
                (long long)st.steps, (long long)st.model_calls, (long long)st.cached_steps,
                st.calls_per_token, (long long)st.tokens_remasked, dt,
                (double)st.tokens_generated / dt);
    free(sh.buf);
    free(row);
    free(canvas);
    td_sampler_free(s);
    td_schedule_free(sch);
    td_tokenizer_free(tok);
    td_model_free(m);
    return 0;
}
