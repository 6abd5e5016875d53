/* Encoding throughput of the Hugging Face tokenizers on the bundled corpus
 * (docs/tokenizer.md "Speed").
 *
 *   tokenizer_bench [--quick] [--repeat N] [--corpus FILE] [DIR...]
 *
 * Reads the corpus (default data/kjv.txt.gz; --quick: its first 200 KB),
 * loads each Hugging Face tokenizer directory (default: the byte-level BPE
 * and WordPiece vocabularies of tests/golden/hf-tok) and encodes the whole
 * text N times (default 5), the tokenizers taking turns so that a change in
 * the machine's load touches them alike. Prints, per tokenizer, the token
 * count and the median MB/s (10^6 bytes of text per second).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/corpus.h"
#include "textdiff/textdiff.h"

#define MAX_TOK 8

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *corpus = TD_SOURCE_DIR "/data/kjv.txt.gz";
    const char *dirs[MAX_TOK];
    int n_dirs = 0, repeat = 5, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) corpus = argv[++i];
        else if (argv[i][0] != '-' && n_dirs < MAX_TOK) dirs[n_dirs++] = argv[i];
        else {
            fprintf(stderr, "usage: tokenizer_bench [--quick] [--repeat N] [--corpus FILE] "
                            "[DIR...]\n");
            return 2;
        }
    }
    if (n_dirs == 0) {
        dirs[n_dirs++] = TD_SOURCE_DIR "/tests/golden/hf-tok/bpe";
        dirs[n_dirs++] = TD_SOURCE_DIR "/tests/golden/hf-tok/wordpiece";
    }
    if (repeat < 1 || repeat > 1000) repeat = 5;
    if (quick) repeat = 1;

    char *text;
    size_t len;
    if (tdi_corpus_read_file(corpus, (size_t)1 << 30, NULL, &text, &len) != TD_OK) {
        fprintf(stderr, "tokenizer_bench: %s\n", td_last_error_message());
        return 1;
    }
    if (quick && len > 200 * 1024) len = 200 * 1024;

    td_tokenizer *tok[MAX_TOK];
    for (int k = 0; k < n_dirs; k++)
        if (td_tokenizer_load_hf(dirs[k], NULL, &tok[k]) != TD_OK) {
            fprintf(stderr, "tokenizer_bench: %s\n", td_last_error_message());
            return 1;
        }
    int32_t *ids = malloc(len * sizeof *ids + 64);
    double *secs = malloc((size_t)n_dirs * (size_t)repeat * sizeof *secs);
    size_t n_ids[MAX_TOK] = { 0 };
    for (int r = 0; r < repeat; r++)
        for (int k = 0; k < n_dirs; k++) {
            double t0 = now();
            if (td_tokenizer_encode(tok[k], text, len, ids, len + 16, &n_ids[k]) != TD_OK) {
                fprintf(stderr, "tokenizer_bench: %s\n", td_last_error_message());
                return 1;
            }
            secs[(size_t)k * (size_t)repeat + (size_t)r] = now() - t0;
        }
    printf("corpus %s: %zu bytes, %d runs each\n", corpus, len, repeat);
    for (int k = 0; k < n_dirs; k++) {
        double *s = secs + (size_t)k * (size_t)repeat;
        qsort(s, (size_t)repeat, sizeof *s, by_value);
        double med = s[repeat / 2];
        printf("%-50s %9zu tokens  %6.2f bytes/token  median %.3f s  %7.2f MB/s\n", dirs[k],
               n_ids[k], (double)len / (double)n_ids[k], med, (double)len / med / 1e6);
        td_tokenizer_free(tok[k]);
    }
    free(secs);
    free(ids);
    tdi_corpus_text_free(NULL, text);
    return 0;
}
