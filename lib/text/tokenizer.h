/* Tokenizers: text <-> token ids.
 *
 * The Hugging Face kinds (WordPiece, byte-level BPE) are described in
 * text/hf.h: their ids are the vocabulary's, special tokens included.
 *
 * The library's own two kinds, both with the same id layout: the n "symbols" come first
 * (ids 0..n-1), then the special tokens [MASK] = n, [PAD] = n + 1 and, when
 * present, [UNK] = n + 2. The vocabulary size is n + 2 or n + 3.
 *
 * - Byte-level (the default): symbol i is the byte i, n = 256, so
 *   [MASK] = 256, [PAD] = 257, vocabulary 258, no [UNK]. Any byte string
 *   round-trips exactly, valid UTF-8 or not.
 * - Character-level: the symbols are the Unicode code points of a corpus,
 *   in ascending code-point order (so the same text always gives the same
 *   ids). Input is decoded as UTF-8 with maximal-subpart substitution
 *   (text/utf8.h): every ill-formed piece becomes one U+FFFD, which is then an
 *   ordinary symbol — of the vocabulary built from such a text, too. Text
 *   round-trips exactly when it is valid UTF-8; otherwise it comes back with
 *   the replacements (and encoding that again gives the same ids).
 *   A vocabulary built with a cap keeps the max_chars most frequent code
 *   points (ties: the smaller code point) and gains [UNK], which stands for
 *   every other character. Without a cap there is no [UNK], and encoding a
 *   character outside the vocabulary fails with TD_ERR_INVALID_ARG.
 *
 * There are no BOS/EOS/SEP tokens: the model is bidirectional and sees fixed
 * windows of a continuous text, where a sequence boundary carries no meaning;
 * [PAD] is the one end marker. Decoding stops at the first [PAD] — the rest
 * is padding — so a variable-length result is a sequence followed by [PAD]s.
 * [MASK] decodes to a caller-chosen string ("_" by default) and [UNK] to
 * U+FFFD.
 *
 * Encode and decode follow snprintf's convention: the full result size is
 * always reported; a size query passes a NULL buffer and capacity 0 and
 * succeeds; a buffer too small for the result fails with TD_ERR_INVALID_ARG
 * (never silently truncates).
 *
 * A tokenizer is immutable after creation and may be shared read-only by
 * several threads.
 */
#ifndef TDI_TOKENIZER_H
#define TDI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

typedef enum tdi_tokenizer_kind {
    TDI_TOKENIZER_BYTE = 1,
    TDI_TOKENIZER_CHAR = 2,
    TDI_TOKENIZER_WORDPIECE = 3, /* Hugging Face WordPiece (text/hf.h) */
    TDI_TOKENIZER_BPE = 4        /* Hugging Face byte-level BPE (text/hf.h) */
} tdi_tokenizer_kind;

/* The model's limit on the vocabulary (docs/model.md). */
#define TDI_TOKENIZER_MAX_VOCAB 1048576u
#define TDI_TOKENIZER_BYTE_VOCAB 258u
#define TDI_TOKENIZER_DEFAULT_MASK_TEXT "_"

typedef struct td_tokenizer tdi_tokenizer;
struct tdi_hf;

/* td_tokenizer_create_byte, td_tokenizer_create_char, td_tokenizer_free,
 * td_tokenizer_encode and td_tokenizer_decode are public: see textdiff.h. */

/* A tokenizer of a Hugging Face vocabulary; takes `hf` (also on failure). */
td_status tdi_tokenizer_from_hf(struct tdi_hf *hf, const td_allocator *alloc,
                                tdi_tokenizer **out);
/* Its vocabulary, or NULL for the byte and character kinds. */
const struct tdi_hf *tdi_tokenizer_hf(const tdi_tokenizer *t);

/* Character-level tokenizer from an explicit list of code points, which must
 * be Unicode scalar values in strictly ascending order; n >= 1. */
td_status tdi_tokenizer_create_char_from_code_points(const uint32_t *code_points, size_t n,
                                                     int with_unk, const td_allocator *alloc,
                                                     tdi_tokenizer **out);

tdi_tokenizer_kind tdi_tokenizer_kind_of(const tdi_tokenizer *t);
uint32_t tdi_tokenizer_vocab_size(const tdi_tokenizer *t);
uint32_t tdi_tokenizer_n_symbols(const tdi_tokenizer *t);
int32_t tdi_tokenizer_mask_id(const tdi_tokenizer *t);
int32_t tdi_tokenizer_pad_id(const tdi_tokenizer *t);
int32_t tdi_tokenizer_unk_id(const tdi_tokenizer *t); /* -1 when there is none */
/* Character kind: the n_symbols code points, ascending. Byte kind: NULL. */
const uint32_t *tdi_tokenizer_code_points(const tdi_tokenizer *t);

/* A compact, self-checking description of the tokenizer for checkpoints
 * (format in docs/tokenizer.md): kind, flags and the code-point list, with a
 * CRC-32. Same snprintf convention as encode: out may be NULL with cap 0. */
td_status tdi_tokenizer_serialize(const tdi_tokenizer *t, void *out, size_t cap, size_t *size);

/* Rebuild a tokenizer from untrusted bytes: TD_ERR_FORMAT (not a tokenizer
 * description), TD_ERR_VERSION (a newer format) or TD_ERR_CORRUPT (anything
 * else wrong: length, CRC, kind, flags, code-point list). */
td_status tdi_tokenizer_deserialize(const void *data, size_t size, const td_allocator *alloc,
                                    tdi_tokenizer **out);

#endif
