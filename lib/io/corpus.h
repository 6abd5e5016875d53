/* Text corpora: reading a file (plain or gzip), tokenising it once, and
 * drawing training and validation windows from a deterministic split.
 *
 * Reading. A file whose first two bytes are gzip's magic (1F 8B) is inflated
 * with zlib, through the caller's allocator; anything else is plain text. The
 * file name plays no part. Concatenated gzip members are read as one text, as
 * gzip -d does; any other bytes after the last member, a truncated stream or
 * a bad CRC/length trailer are TD_ERR_CORRUPT. The decoded size is capped by
 * max_bytes (a gzip bomb stops there: TD_ERR_INVALID_ARG naming the limit).
 * Failing to open or read is TD_ERR_IO.
 *
 * Split. The token stream is cut into blocks of block_len tokens; with
 * valid_every = k, block b is validation when b % k == k - 1 and training
 * otherwise (k = 20: blocks 19, 39, ... — 5% of the text, spread evenly
 * through it, so validation covers every part of the corpus instead of only
 * its end). k = 0 puts everything in training. The two splits share no
 * token, and every window lies inside one contiguous run of its split — a
 * training run is the k - 1 blocks between two validation blocks — so no
 * window crosses from one split into the other. The split depends only on
 * the token count and the options.
 *
 * A corpus is immutable after creation: several threads may draw from it at
 * once, each with its own tdi_rng.
 */
#ifndef TDI_CORPUS_H
#define TDI_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

#define TDI_CORPUS_DEFAULT_MAX_BYTES ((size_t)1 << 30)
#define TDI_SPLIT_DEFAULT_BLOCK_LEN ((size_t)8192)
#define TDI_SPLIT_DEFAULT_VALID_EVERY 20u

/* The whole text of a file, plain or gzip, NUL-terminated (the NUL is not
 * counted in *len). Release it with tdi_corpus_text_free and the same
 * allocator. */
td_status tdi_corpus_read_file(const char *path, size_t max_bytes, const td_allocator *alloc,
                               char **text, size_t *len);

/* The same for a file's bytes already in memory. */
td_status tdi_corpus_read_buffer(const void *data, size_t size, size_t max_bytes,
                                 const td_allocator *alloc, char **text, size_t *len);

/* Frees a text from tdi_corpus_read_*; text may be NULL. */
void tdi_corpus_text_free(const td_allocator *alloc, char *text);

typedef enum tdi_split { TDI_SPLIT_TRAIN = 0, TDI_SPLIT_VALID = 1 } tdi_split;

typedef struct tdi_split_opts {
    size_t block_len;     /* tokens per block, >= 1 */
    uint32_t valid_every; /* every k-th block is validation; 0: no validation; not 1 */
    const char *doc_sep;  /* NULL: one text; else documents end after each occurrence of
                             this (non-empty) string, each followed by the end token */
} tdi_split_opts;

/* block_len 8192, valid_every 20. */
tdi_split_opts tdi_split_opts_default(void);

typedef struct td_corpus tdi_corpus;

/* Tokenise text[0..len) with `tok` (which need not outlive the corpus) and
 * split it; opts NULL selects the defaults. The text must not be empty and
 * must encode (a character tokenizer without [UNK] rejects characters
 * outside its vocabulary). */
td_status tdi_corpus_create(const char *text, size_t len, const tdi_tokenizer *tok,
                            const tdi_split_opts *opts, const td_allocator *alloc,
                            tdi_corpus **out);

/* tdi_corpus_read_file + tdi_corpus_create; the text is not kept. */
td_status tdi_corpus_load(const char *path, size_t max_bytes, const tdi_tokenizer *tok,
                          const tdi_split_opts *opts, const td_allocator *alloc,
                          tdi_corpus **out);

void tdi_corpus_free(tdi_corpus *c);

/* The whole token stream, both splits, in text order. */
const int32_t *tdi_corpus_tokens(const tdi_corpus *c, size_t *n);
size_t tdi_corpus_split_size(const tdi_corpus *c, tdi_split split); /* tokens */
tdi_split tdi_corpus_split_of(const tdi_corpus *c, size_t pos);    /* pos < n */

/* Number of distinct windows of seq_len tokens (start offsets) in a split. */
uint64_t tdi_corpus_n_windows(const tdi_corpus *c, tdi_split split, size_t seq_len);

/* batch windows of seq_len tokens, each starting at an offset drawn
 * uniformly from all windows of the split, into out[batch, seq_len]
 * (row-major). starts, when not NULL, receives each window's offset in the
 * token stream. Fails with TD_ERR_INVALID_ARG when no window of that length
 * fits in the split. Same rng state => same windows. */
td_status tdi_corpus_sample(const tdi_corpus *c, tdi_split split, tdi_rng *rng, size_t batch,
                            size_t seq_len, int32_t *out, size_t *starts);

/* Non-overlapping windows for evaluation: each run of the split is tiled
 * from its start with windows of seq_len tokens (a run's tail shorter than
 * seq_len is left out). tdi_corpus_n_tiles counts them; tdi_corpus_tile copies
 * the index-th (in text order) into out[seq_len] and its offset into *start
 * (may be NULL). */
uint64_t tdi_corpus_n_tiles(const tdi_corpus *c, tdi_split split, size_t seq_len);
td_status tdi_corpus_tile(const tdi_corpus *c, tdi_split split, size_t seq_len, uint64_t index,
                          int32_t *out, size_t *start);

#endif
