/* score: how samples read — distinct word n-grams, repetition, word entropy
 * and the share of words the training text knows — next to the same figures
 * for held-out text and for uniformly random text of the same length, so
 * that every number has a place on the scale. With --scorer AR_MODEL (a
 * causal model, e.g. from train_ar) each row also gets its generative
 * perplexity: the exact NLL of the text under that model, in bits/byte. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = realloc(buf, cap *= 2);
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

/* The scorer's NLL of text in bits/byte: the text in its tokens, cut into
 * windows of its max_seq_len (a shorter tail is left out); NaN when there
 * is none. */
static double gen_perplexity(const td_model *scorer, const td_tokenizer *tok, const char *text,
                             size_t len)
{
    td_model_config mc = { .struct_size = sizeof mc };
    cli_check(td_model_get_config(scorer, &mc), "scorer config");
    int32_t T = mc.max_seq_len;
    if (len > ((size_t)1 << 24)) len = (size_t)1 << 24;
    size_t n_ids;
    cli_check(td_tokenizer_encode(tok, text, len, NULL, 0, &n_ids), "encode");
    int32_t *ids = malloc(sizeof *ids * (n_ids ? n_ids : 1));
    cli_check(td_tokenizer_encode(tok, text, len, ids, n_ids, &n_ids), "encode");
    int32_t n = (int32_t)(n_ids / (size_t)T);
    double result = NAN;
    if (n > 0) {
        size_t bytes;
        free(cli_decode(tok, ids, (size_t)n * (size_t)T, &bytes));
        td_eval_config ec;
        cli_check(td_eval_config_default(&ec), "eval config");
        ec.bytes_per_token = (double)bytes / ((double)n * T);
        td_eval_result r = { .struct_size = sizeof r };
        cli_check(td_eval_gen_perplexity(scorer, ids, n, T, &ec, &r), "generative perplexity");
        result = r.bits_per_byte;
    }
    free(ids);
    return result;
}

static void row(const char *name, const char *text, size_t len, const char *ref, size_t ref_len,
                const td_model *scorer, const td_tokenizer *tok)
{
    td_text_stats s = { .struct_size = sizeof s };
    cli_check(td_text_stats_compute(text, len, ref, ref_len, NULL, &s), name);
    printf("%-32s %9lld %7lld  %6.3f %6.3f %6.3f  %6.1f%%  %6.2f  %6.1f%%", name,
           (long long)s.n_bytes, (long long)s.n_words, s.distinct_1, s.distinct_2, s.distinct_3,
           100 * s.repetition, s.word_entropy_bits, 100 * s.known_words);
    if (scorer) printf("  %7.3f", gen_perplexity(scorer, tok, text, len));
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *corpus_path = TD_DEFAULT_CORPUS;
    int64_t seed = 1;
    const char *scorer_path = NULL;
    cli_flag flags[] = {
        { "corpus", CLI_STRING, &corpus_path,
          "training text (plain or .gz): its training split defines the known words, "
          "its validation split is the held-out row" },
        { "seed", CLI_I64, &seed, "seed of the random row" },
        { "scorer", CLI_STRING, &scorer_path,
          "a causal model (train_ar): adds each text's NLL under it, bits/byte" },
    };
    char **paths;
    int n_paths;
    cli_parse(argc, argv, "usage: score [options] SAMPLES... (text files, - for stdin)", flags,
              (int)(sizeof flags / sizeof flags[0]), &paths, &n_paths);
    /* The scorer's tokenizer (bytes without one) splits the corpus and
     * turns text into the scorer's ids. */
    td_model *scorer = NULL;
    td_tokenizer *tok;
    if (scorer_path) {
        cli_check(td_model_load(scorer_path, NULL, &scorer), scorer_path);
        cli_check(td_model_get_tokenizer(scorer, NULL, &tok), scorer_path);
    } else {
        cli_check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
    }
    td_corpus *corpus;
    cli_check(td_corpus_load(corpus_path, tok, NULL, &corpus), corpus_path);
    size_t ref_len, held_len;
    char *ref = cli_split_text(corpus, tok, TD_SPLIT_TRAIN, &ref_len);
    char *held = cli_split_text(corpus, tok, TD_SPLIT_VALID, &held_len);
    printf("%-32s %9s %7s  %6s %6s %6s  %7s  %6s  %7s%s\n", "text", "bytes", "words", "dist-1",
           "dist-2", "dist-3", "rep-10", "H/word", "known", scorer ? "  gen-NLL" : "");
    size_t len = 0;
    for (int i = 0; i < n_paths; i++) {
        char *text = read_file(paths[i], &len);
        row(paths[i], text, len, ref, ref_len, scorer, tok);
        free(text);
    }
    /* The scale, at the length of the last sample (64 KiB without one):
     * held-out text, and uniform draws from the bytes the corpus uses. */
    if (len == 0 || len > held_len) len = held_len < 65536 ? held_len : 65536;
    row("held-out text", held, len, ref, ref_len, scorer, tok);
    int used[256] = { 0 }, n_used = 0;
    unsigned char alphabet[256];
    for (size_t i = 0; i < ref_len; i++) used[(unsigned char)ref[i]] = 1;
    for (int b = 0; b < 256; b++)
        if (used[b]) alphabet[n_used++] = (unsigned char)b;
    char *random_text = malloc(len);
    uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < len; i++) { /* xorshift64*: any decent generator will do */
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        random_text[i] = (char)alphabet[((x * 0x2545F4914F6CDD1DULL) >> 32) % (uint64_t)n_used];
    }
    row("uniform random bytes", random_text, len, ref, ref_len, scorer, tok);
    free(random_text);
    free(held);
    free(ref);
    td_model_free(scorer);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    return 0;
}
