/* Small helpers shared by the example programs: flag parsing, a progress
 * line, error exits. Not part of the library. */
#ifndef TD_EXAMPLES_CLI_H
#define TD_EXAMPLES_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "textdiff/textdiff.h"

#ifndef TD_DATA_DIR
#define TD_DATA_DIR "data"
#endif
#define TD_DEFAULT_CORPUS TD_DATA_DIR "/kjv.txt.gz"

/* One command-line flag: --name VALUE (or --name for a switch). */
typedef enum { CLI_INT, CLI_I64, CLI_FLOAT, CLI_STRING, CLI_SWITCH } cli_kind;
typedef struct cli_flag {
    const char *name;
    cli_kind kind;
    void *value;
    const char *help;
} cli_flag;

/* Parses argv into the flags; prints usage and exits on --help or an error.
 * Positional arguments are returned through *rest / *n_rest. */
void cli_parse(int argc, char **argv, const char *usage, cli_flag *flags, int n_flags,
               char ***rest, int *n_rest);

/* Exits with a message naming what failed when st is not TD_OK. */
void cli_check(td_status st, const char *what);

/* ids[0..n) as text with tok (td_tokenizer_decode: [MASK] as "_", stops at
 * [PAD]); malloc'd, NUL-terminated, its length in *len. */
char *cli_decode(const td_tokenizer *tok, const int32_t *ids, size_t n, size_t *len);

/* The text of a corpus split in order (windows of 4,096 tokens; a shorter
 * tail is left out), decoded with tok; malloc'd. */
char *cli_split_text(const td_corpus *c, const td_tokenizer *tok, td_split split, size_t *len);

/* A Hugging Face model directory (docs/bert-is-a-sampler.md): its tokenizer
 * (td_tokenizer_load_hf), then its model (td_model_load_hf with the
 * tokenizer's [MASK] id), with the tokenizer attached to the model
 * (td_model_set_tokenizer) so that the library's checkpoints carry it.
 * Exits with a message for a directory without config.json or a tokenizer
 * whose vocabulary size is not the model's. */
void cli_load_hf(const char *dir, td_model **m, td_tokenizer **tok);

/* Whether path names a directory. */
int cli_is_dir(const char *path);

/* Copies the tokenizer files of Hugging Face directory `from` (tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json, vocab.txt, vocab.json,
 * merges.txt: those present) into directory `to`; returns how many, or exits
 * with a message when one cannot be copied. */
int cli_copy_hf_tokenizer(const char *from, const char *to);

/* Wall-clock seconds. */
double cli_now(void);

/* What speed figures depend on, on one line of `out`: libtextdiff's threads
 * (threads > 0: the count the program runs with) and the BLAS, its kernels
 * and its threads (td_runtime_info_get). With full = 0 that line is left
 * out. Either way, when the BLAS runs kernels far below what the CPU
 * supports, a second line says so and how to fix it. */
void cli_print_runtime(FILE *out, int threads, int full);

/* A progress line on a terminal (rewritten in place), plain lines otherwise. */
typedef struct cli_progress {
    int tty;
    int64_t first; /* done at the start (a resumed run) */
    int64_t total;
    double start;
    double last_print;
} cli_progress;
void cli_progress_start(cli_progress *p, int64_t first, int64_t total);
void cli_progress_update(cli_progress *p, int64_t done, double tokens_per_s, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
void cli_progress_end(cli_progress *p);

#endif
