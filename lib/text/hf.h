/* Hugging Face subword tokenizers (docs/tokenizer.md): WordPiece as BERT
 * does it and byte-level BPE as GPT-2/RoBERTa do it, token for token the ids
 * of the `tokenizers` library.
 *
 * A tdi_hf holds the vocabulary (token strings in id order, found by a hash),
 * the merges (byte-level BPE: pair of ids -> rank and merged id, by a hash),
 * the options and the special-token ids. It is immutable once built and is
 * owned by a td_tokenizer (text/tokenizer.h) of kind TDI_TOKENIZER_WORDPIECE
 * or TDI_TOKENIZER_BPE.
 *
 * Every way in — vocab.txt, vocab.json + merges.txt, tokenizer.json, the
 * checkpoint description — ends in tdi_hf_build, the one place that
 * validates a vocabulary: UTF-8 tokens, no empty token, no duplicate, at most
 * TDI_TOKENIZER_MAX_VOCAB tokens, merges whose parts and concatenation are
 * tokens, and the special tokens the library needs ([MASK] and [PAD]).
 */
#ifndef TDI_HF_H
#define TDI_HF_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

typedef struct tdi_hf tdi_hf;

/* Options (bit flags, as stored in checkpoints). */
enum {
    TDI_HF_LOWERCASE = 1u << 0,      /* WordPiece: BertNormalizer lowercase */
    TDI_HF_STRIP_ACCENTS = 1u << 1,  /* WordPiece: NFD, drop nonspacing marks */
    TDI_HF_CLEAN_TEXT = 1u << 2,     /* WordPiece: drop controls, whitespace -> ' ' */
    TDI_HF_CHINESE_CHARS = 1u << 3,  /* WordPiece: spaces around CJK ideographs */
    TDI_HF_CLEANUP = 1u << 4,        /* WordPiece decoder: " ." -> "." etc. */
    TDI_HF_ADD_PREFIX_SPACE = 1u << 5, /* byte-level BPE: a space before the text */
    TDI_HF_WORDPIECE_FLAGS = 0x1Fu,
    TDI_HF_BPE_FLAGS = 1u << 5
};

#define TDI_HF_MAX_TOKEN_BYTES 1024u   /* longer tokens are refused */
#define TDI_HF_DEFAULT_MAX_CHARS 100u  /* WordPiece max_input_chars_per_word */
#define TDI_HF_MAX_FILE_BYTES ((size_t)256 << 20)

/* The special tokens, in the order of td_special_token's values. */
enum { TDI_HF_MASK, TDI_HF_PAD, TDI_HF_UNK, TDI_HF_CLS, TDI_HF_SEP, TDI_HF_N_SPECIAL };

/* What tdi_hf_build takes: n_tokens strings in id order, packed in
 * bytes[offsets[i] .. offsets[i + 1]); for BPE, n_merges pairs of ids in
 * rank order (merges[2r], merges[2r + 1]). Special tokens are found by name
 * ([MASK] [PAD] [UNK] [CLS] [SEP] for WordPiece; <mask> <pad> <unk> <s> </s>
 * for BPE). `what` names the source in messages. */
typedef struct tdi_hf_spec {
    int kind; /* TDI_TOKENIZER_WORDPIECE or TDI_TOKENIZER_BPE */
    uint32_t flags;
    uint32_t max_chars;
    uint32_t n_tokens;
    const uint32_t *offsets; /* n_tokens + 1 */
    const char *bytes;
    uint32_t n_merges;
    const int32_t *merges;
    const char *what;
} tdi_hf_spec;

/* Failures: TD_ERR_FORMAT for a bad vocabulary (message names the token or
 * merge), TD_ERR_NOMEM. */
td_status tdi_hf_build(const tdi_hf_spec *spec, const td_allocator *alloc, tdi_hf **out);
void tdi_hf_free(tdi_hf *h); /* with the allocator it was built with */

int tdi_hf_kind(const tdi_hf *h);
uint32_t tdi_hf_flags(const tdi_hf *h);
uint32_t tdi_hf_max_chars(const tdi_hf *h);
uint32_t tdi_hf_n_tokens(const tdi_hf *h);
int32_t tdi_hf_special(const tdi_hf *h, int which); /* -1: none */
const char *tdi_hf_token(const tdi_hf *h, int32_t id, size_t *len);
uint32_t tdi_hf_n_merges(const tdi_hf *h);
const int32_t *tdi_hf_merges(const tdi_hf *h); /* 2 * n_merges ids, rank order */
/* The id of a token string, or -1. */
int32_t tdi_hf_lookup(const tdi_hf *h, const char *s, size_t n);

/* text/tokenizer.h's conventions: snprintf-style sizes; scratch memory from
 * `alloc`. Invalid UTF-8 in the text reads as U+FFFD per maximal subpart
 * (Python's errors="replace"). */
td_status tdi_hf_encode(const tdi_hf *h, const td_allocator *alloc, const char *text,
                        size_t len, int32_t *ids, size_t cap, size_t *n_ids);
td_status tdi_hf_decode(const tdi_hf *h, const td_allocator *alloc, const int32_t *ids,
                        size_t n, const char *mask_text, char *out, size_t cap, size_t *len);

/* Grows *p (an array of *cap elements of `elem` bytes, through `a`) to hold
 * at least `need`, doubling; TD_ERR_NOMEM leaves it as it was. */
td_status tdi_hf_grow(const td_allocator *a, void **p, size_t *cap, size_t need, size_t elem);

/* Loaders (lib/text/hf_load.c). Each reads the files with at most
 * TDI_HF_MAX_FILE_BYTES each; TD_ERR_IO when a file cannot be read,
 * TD_ERR_FORMAT when it is malformed, TD_ERR_UNSUPPORTED for a valid
 * tokenizer.json this library does not implement. */
td_status tdi_hf_load_vocab_txt(const char *vocab_path, const char *config_path,
                                const td_allocator *alloc, tdi_hf **out);
td_status tdi_hf_load_vocab_json(const char *vocab_path, const char *merges_path,
                                 const td_allocator *alloc, tdi_hf **out);
td_status tdi_hf_load_tokenizer_json(const char *path, const td_allocator *alloc, tdi_hf **out);
/* The same from bytes in memory (config may be NULL), for the fuzz targets. */
td_status tdi_hf_parse_vocab_txt(const char *vocab, size_t vocab_len, const char *config,
                                 size_t config_len, const td_allocator *alloc, tdi_hf **out);
td_status tdi_hf_parse_vocab_json(const char *vocab, size_t vocab_len, const char *merges,
                                  size_t merges_len, const td_allocator *alloc, tdi_hf **out);
td_status tdi_hf_parse_tokenizer_json(const char *json, size_t len, const td_allocator *alloc,
                                      tdi_hf **out);

#endif
