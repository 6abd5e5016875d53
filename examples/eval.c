/* eval: score one or more checkpoints side by side on the validation split —
 * the NELBO bound (bits per byte, perplexity bound) and the loss at each
 * masking rate, with the same masks for every model. A model is scored in
 * its own tokens (its checkpoint's tokenizer, or a Hugging Face directory's)
 * and the NELBO is in bits per byte of the same text for every tokenizer. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define N_RATES 19

int main(int argc, char **argv)
{
    int seq_len = 128, windows = 400, threads = 1, times = 16;
    int64_t seed = 1;
    const char *corpus_path = TD_DEFAULT_CORPUS, *csv_path = NULL;
    cli_flag flags[] = {
        { "corpus", CLI_STRING, &corpus_path, "text file, plain or .gz" },
        { "seq-len", CLI_INT, &seq_len, "tokens per validation window" },
        { "windows", CLI_INT, &windows, "validation windows (0: all)" },
        { "times", CLI_INT, &times, "NELBO quadrature times" },
        { "seed", CLI_I64, &seed, "seed of the masks" },
        { "threads", CLI_INT, &threads, "threads" },
        { "csv", CLI_STRING, &csv_path, "write the per-rate table as CSV" },
    };
    char **paths;
    int n_models;
    cli_parse(argc, argv, "usage: eval [options] CHECKPOINT|HF_DIR...", flags,
              (int)(sizeof flags / sizeof flags[0]), &paths, &n_models);
    if (n_models == 0) {
        fprintf(stderr, "eval: give at least one checkpoint (--help for usage)\n");
        return 2;
    }
    td_eval_config ec;
    cli_check(td_eval_config_default(&ec), "eval config");
    ec.seq_len = seq_len;
    ec.n_threads = threads;
    ec.n_times = times;
    ec.seed = (uint64_t)seed;
    ec.max_sequences = windows;
    cli_print_runtime(stderr, threads, 1);

    double rates[N_RATES];
    for (int j = 0; j < N_RATES; j++) rates[j] = 0.05 * (j + 1);
    double(*loss)[N_RATES] = calloc((size_t)n_models, sizeof *loss);
    double(*acc)[N_RATES] = calloc((size_t)n_models, sizeof *acc);
    td_eval_result *res = calloc((size_t)n_models, sizeof *res);
    int *causal = calloc((size_t)n_models, sizeof *causal);

    for (int i = 0; i < n_models; i++) {
        /* a Hugging Face directory or a checkpoint, scored on the corpus in
         * its own tokens (bits per byte of the same text either way) */
        td_model *m;
        td_tokenizer *tok = NULL;
        if (cli_is_dir(paths[i])) {
            cli_load_hf(paths[i], &m, &tok);
        } else {
            cli_check(td_model_load(paths[i], NULL, &m), paths[i]);
            if (td_model_get_tokenizer(m, NULL, &tok) != TD_OK)
                cli_check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
        }
        td_corpus *corpus;
        cli_check(td_corpus_load(corpus_path, tok, NULL, &corpus), corpus_path);
        uint64_t n_windows;
        cli_check(td_corpus_num_windows(corpus, TD_SPLIT_VALID, seq_len, &n_windows), "windows");
        if (windows > 0 && n_windows > (uint64_t)windows) n_windows = (uint64_t)windows;
        const int64_t n_valid = (int64_t)(n_windows * (uint64_t)seq_len);
        int32_t *valid = malloc(sizeof *valid * (size_t)(n_valid > 0 ? n_valid : 1));
        for (uint64_t w = 0; w < n_windows; w++)
            cli_check(td_corpus_window(corpus, TD_SPLIT_VALID, seq_len, w, valid + w * seq_len),
                      "window");
        size_t bytes = 0;
        if (n_valid > 0) free(cli_decode(tok, valid, (size_t)n_valid, &bytes));
        ec.bytes_per_token = n_valid > 0 ? (double)bytes / (double)n_valid : 1.0;
        double t0 = cli_now();
        res[i].struct_size = sizeof res[i];
        cli_check(td_eval_nelbo(m, valid, n_valid, &ec, &res[i]),
                  "NELBO");
        td_model_config mc = { .struct_size = sizeof mc };
        cli_check(td_model_get_config(m, &mc), paths[i]);
        causal[i] = mc.causal;
        if (causal[i]) /* an AR model: its NELBO column is the exact NLL, no rates */
            for (int j = 0; j < N_RATES; j++) loss[i][j] = acc[i][j] = NAN;
        else
            cli_check(td_eval_rates(m, valid, n_valid, rates,
                                    N_RATES, &ec, loss[i], acc[i]),
                      "per-rate loss");
        fprintf(stderr, "%s: evaluated in %.1f s\n", paths[i], cli_now() - t0);
        td_model_free(m);
        free(valid);
        td_corpus_free(corpus);
        td_tokenizer_free(tok);
    }

    printf("validation: %lld windows of %d tokens, masks seeded %lld\n\n",
           (long long)res[0].n_sequences, seq_len, (long long)seed);
    printf("%-28s %14s %12s %12s %12s\n", "checkpoint", "NELBO bits/B", "+-", "ppl bound",
           "acc@15%");
    for (int i = 0; i < n_models; i++)
        printf("%-28s %14.4f %12.4f %12.3f %11.1f%%%s\n", paths[i], res[i].bits_per_byte,
               res[i].std_error_nats / log(2.0), res[i].perplexity_bound, 100 * acc[i][2],
               causal[i] ? "  (causal: exact NLL, no masking rates)" : "");
    printf("\nloss at each masking rate, bits per masked token (a byte with the byte "
           "tokenizer; accuracy)\n%-6s", "rate");
    for (int i = 0; i < n_models; i++) printf(" %22.22s", paths[i]);
    printf("\n");
    for (int j = 0; j < N_RATES; j++) {
        printf("%-6.2f", rates[j]);
        for (int i = 0; i < n_models; i++)
            printf(" %14.4f (%4.1f%%)", loss[i][j] / log(2.0), 100 * acc[i][j]);
        printf("\n");
    }
    if (csv_path) {
        FILE *f = fopen(csv_path, "w");
        if (!f) {
            perror(csv_path);
            return 1;
        }
        fprintf(f, "rate");
        for (int i = 0; i < n_models; i++) fprintf(f, ",%s_bits,%s_acc", paths[i], paths[i]);
        fprintf(f, "\n");
        for (int j = 0; j < N_RATES; j++) {
            fprintf(f, "%.2f", rates[j]);
            for (int i = 0; i < n_models; i++)
                fprintf(f, ",%.5f,%.5f", loss[i][j] / log(2.0), acc[i][j]);
            fprintf(f, "\n");
        }
        fclose(f);
    }
    free(loss);
    free(acc);
    free(res);
    free(causal);
    free(paths);
    return 0;
}
