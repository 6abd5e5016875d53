/* train_sft: prompt-protected (SFT-style) training on a synthetic task.
 * Each example is "abcd=dcba": a prompt of random letters and '=', then its
 * reverse. td_trainer_step_protected keeps the prompt (flag 1: never
 * masked, never scored) and trains on the response alone; the trained model
 * then answers prompts it never saw (a held-out set of letter strings),
 * decoding the masked response greedily, and the exact-match accuracy is
 * printed. Usage: train_sft [--steps N] [--letters K] [--len L] ... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <textdiff/textdiff.h>

#include "cli.h"

/* Prompt number `code` (base `letters`, `len` digits) as "abcd=", then, if
 * `answer`, its reverse; the rest of row [seq_len] is [MASK]. */
static void example(int32_t *row, int64_t code, int letters, int len, int answer,
                    int32_t mask, uint8_t *protect)
{
    for (int i = 0; i < len; i++) {
        row[i] = 'a' + (int32_t)(code % letters);
        code /= letters;
    }
    row[len] = '=';
    for (int i = 0; i < len; i++) row[len + 1 + i] = answer ? row[len - 1 - i] : mask;
    if (protect != NULL)
        for (int i = 0; i < 2 * len + 1; i++) protect[i] = i <= len; /* the prompt */
}

/* Held out: every prompt whose code is a multiple of 10. */
static int held_out(int64_t code) { return code % 10 == 0; }

int main(int argc, char **argv)
{
    int steps = 600, letters = 8, len = 5, batch = 32, d_model = 64, layers = 2, threads = 1;
    int n_eval = 200;
    double lr = 3e-3;
    int64_t seed = 1;
    cli_flag flags[] = {
        { "steps", CLI_INT, &steps, "training steps" },
        { "letters", CLI_INT, &letters, "alphabet size, 2..26" },
        { "len", CLI_INT, &len, "prompt length in letters, 1..8" },
        { "batch", CLI_INT, &batch, "sequences per step" },
        { "d-model", CLI_INT, &d_model, "model width" },
        { "layers", CLI_INT, &layers, "transformer blocks" },
        { "lr", CLI_FLOAT, &lr, "peak learning rate" },
        { "eval", CLI_INT, &n_eval, "held-out prompts to answer" },
        { "seed", CLI_I64, &seed, "seed" },
        { "threads", CLI_INT, &threads, "threads" },
    };
    cli_parse(argc, argv, "usage: train_sft [options]", flags,
              (int)(sizeof flags / sizeof flags[0]), NULL, NULL);
    if (letters < 2 || letters > 26 || len < 1 || len > 8 || steps < 1 || batch < 1 ||
        n_eval < 1) {
        fprintf(stderr, "train_sft: --letters 2..26, --len 1..8, --steps, --batch, --eval >= 1\n");
        return 2;
    }
    int64_t n_codes = 1;
    for (int i = 0; i < len; i++) n_codes *= letters;
    if (n_codes < 20) {
        fprintf(stderr, "train_sft: letters^len = %lld prompts is too few to hold some out\n",
                (long long)n_codes);
        return 2;
    }
    const int T = 2 * len + 1;

    td_tokenizer *tok;
    cli_check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
    int32_t mask, vocab;
    cli_check(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask), "[MASK]");
    cli_check(td_tokenizer_vocab_size(tok, &vocab), "vocabulary");
    td_model_config mc;
    cli_check(td_model_config_default(&mc), "model config");
    mc.vocab_size = vocab;
    mc.mask_id = mask;
    mc.max_seq_len = T;
    mc.d_model = d_model;
    mc.n_layers = layers;
    mc.n_heads = 4;
    mc.d_ff = 2 * d_model;
    td_model *m;
    cli_check(td_model_create(&mc, (uint64_t)seed, NULL, &m), "model");
    cli_check(td_model_set_tokenizer(m, tok), "tokenizer");
    td_schedule_config scc;
    cli_check(td_schedule_config_default(&scc, TD_SCHEDULE_LOGLINEAR), "schedule");
    td_schedule *sch;
    cli_check(td_schedule_create(&scc, NULL, &sch), "schedule");
    td_trainer_config tc;
    cli_check(td_trainer_config_default(&tc), "trainer config");
    tc.batch_size = batch;
    tc.seq_len = T;
    tc.lr = (float)lr;
    tc.min_lr = (float)lr / 10;
    tc.warmup_steps = steps / 20;
    tc.total_steps = steps;
    tc.seed = (uint64_t)seed;
    tc.n_threads = threads;
    td_trainer *tr;
    cli_check(td_trainer_create(m, sch, &tc, &tr), "trainer");

    int32_t *tokens = malloc(sizeof *tokens * (size_t)batch * (size_t)T);
    uint8_t *protect = malloc((size_t)batch * (size_t)T);
    if (tokens == NULL || protect == NULL) {
        fprintf(stderr, "train_sft: out of memory\n");
        return 1;
    }
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15u + 1;
    double t0 = cli_now(), loss = 0.0;
    for (int k = 0; k < steps; k++) {
        for (int b = 0; b < batch; b++) {
            int64_t code;
            do { /* training prompts only */
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                code = (int64_t)(rng % (uint64_t)n_codes);
            } while (held_out(code));
            example(tokens + (size_t)b * T, code, letters, len, 1, mask,
                    protect + (size_t)b * T);
        }
        td_train_stats st = { .struct_size = sizeof st };
        cli_check(td_trainer_step_protected(tr, tokens, protect, &st), "step");
        loss = k == 0 ? st.loss : 0.95 * loss + 0.05 * st.loss;
        if ((k + 1) % (steps / 5 > 0 ? steps / 5 : 1) == 0)
            printf("step %d: loss %.3f (%.1f s)\n", k + 1, loss, cli_now() - t0);
    }

    /* Answer held-out prompts: the response masked, greedy, one position
     * per step (max-prob), the prompt fixed. */
    td_sampler_config sc;
    cli_check(td_sampler_config_default(&sc), "sampler config");
    sc.strategy = TD_SAMPLER_MAX_PROB;
    sc.steps = len;
    sc.temperature = 0.0f;
    sc.max_batch = 1;
    sc.n_threads = threads;
    td_sampler *s;
    cli_check(td_sampler_create(m, sch, &sc, &s), "sampler");
    int exact = 0, chars = 0, n = 0;
    int32_t *row = malloc(sizeof *row * (size_t)T), *want = malloc(sizeof *want * (size_t)T);
    for (int64_t code = 0; code < n_codes && n < n_eval; code += 10, n++) {
        example(row, code, letters, len, 0, mask, NULL);
        example(want, code, letters, len, 1, mask, NULL);
        cli_check(td_sampler_generate(s, row, 1, T, NULL, NULL, NULL), "generate");
        int right = 0;
        for (int i = len + 1; i < T; i++) right += row[i] == want[i];
        chars += right;
        exact += right == len;
        if (n < 3) {
            size_t l;
            char *text = cli_decode(tok, row, (size_t)T, &l);
            printf("held-out %s\n", text);
            free(text);
        }
    }
    printf("held-out prompts: %d, exact answers %.1f%%, letters right %.1f%%\n", n,
           100.0 * exact / n, 100.0 * chars / ((double)n * len));
    free(row);
    free(want);
    free(tokens);
    free(protect);
    td_sampler_free(s);
    td_trainer_free(tr);
    td_schedule_free(sch);
    td_model_free(m);
    td_tokenizer_free(tok);
    return 0;
}
