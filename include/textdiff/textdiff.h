/*
 * libtextdiff — masked (absorbing-state) discrete text diffusion in C.
 *
 * This is the one stable public header. It includes only <stddef.h> and
 * <stdint.h>, compiles as C11 and as C++, and every declaration in it is
 * covered by the ABI promise in docs/abi.md.
 *
 * Conventions (apply to every function below unless its comment says
 * otherwise):
 *  - Functions return td_status: TD_OK (0) on success, a positive TD_ERR_*
 *    code on failure. On failure nothing observable has changed, and
 *    td_last_error_message() on the calling thread explains what was wrong.
 *  - Constructors return the new handle through an out-parameter and set it
 *    to NULL on failure. Destructors accept NULL.
 *  - The library never prints, exits or aborts because of its input.
 *  - Strings are UTF-8, NUL-terminated, and owned by the library unless
 *    stated otherwise.
 *  - Threads: n_threads counts the calling thread. A trainer or sampler
 *    starts its other threads at its first computing call and joins them in
 *    its _free; td_model_logits and td_eval_* join theirs before returning.
 *    The library changes no process-wide setting (of the BLAS or any other
 *    library), and no thread of it outlives the handles, so fork() and
 *    dlclose() are safe (docs/api.md, "Threads").
 */
#ifndef TEXTDIFF_H
#define TEXTDIFF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Export macro
 * ------------------------------------------------------------------------- */
#if defined(TD_STATIC)
#  define TD_API
#elif defined(_WIN32)
#  if defined(TD_BUILDING_LIBRARY)
#    define TD_API __declspec(dllexport)
#  else
#    define TD_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define TD_API __attribute__((visibility("default")))
#else
#  define TD_API
#endif

/* ---------------------------------------------------------------------------
 * Version
 *
 * TD_VERSION_* describe the release this header belongs to. TD_ABI_VERSION
 * is the binary-interface generation: it is the shared library's SONAME
 * number (libtextdiff.so.<TD_ABI_VERSION>) and changes only when a change
 * breaks binaries built against an earlier header (docs/abi.md).
 * ------------------------------------------------------------------------- */
#define TD_VERSION_MAJOR 1
#define TD_VERSION_MINOR 0
#define TD_VERSION_PATCH 0
#define TD_ABI_VERSION   1

#define TD_VERSION_NUMBER \
    (TD_VERSION_MAJOR * 10000 + TD_VERSION_MINOR * 100 + TD_VERSION_PATCH)

#define TD_STRINGIFY_(x) #x
#define TD_STRINGIFY(x) TD_STRINGIFY_(x)
#define TD_VERSION_STRING \
    TD_STRINGIFY(TD_VERSION_MAJOR) "." TD_STRINGIFY(TD_VERSION_MINOR) "." \
    TD_STRINGIFY(TD_VERSION_PATCH)

/* ---------------------------------------------------------------------------
 * Status codes. The numeric values are part of the ABI: they are never
 * renumbered or reused. New codes are appended.
 * ------------------------------------------------------------------------- */
typedef enum td_status {
    TD_OK               = 0,  /* success */
    TD_ERR_INVALID_ARG  = 1,  /* NULL pointer, bad size, value out of range */
    TD_ERR_NOMEM        = 2,  /* an allocation failed; nothing was leaked */
    TD_ERR_IO           = 3,  /* open/read/write/fsync/rename failed */
    TD_ERR_FORMAT       = 4,  /* a file is not in the expected format */
    TD_ERR_CORRUPT      = 5,  /* a file is damaged (checksum, truncation) */
    TD_ERR_VERSION      = 6,  /* unsupported file version or ABI mismatch */
    TD_ERR_NUMERIC      = 7,  /* non-finite loss or gradient; step skipped */
    TD_ERR_STATE        = 8,  /* call not valid in the handle's state */
    TD_ERR_CANCELLED    = 9,  /* a callback asked to stop */
    TD_ERR_UNSUPPORTED  = 10, /* feature not available in this build */
    TD_ERR_INTERNAL     = 11  /* a bug in libtextdiff; please report it */
} td_status;

/* Compile-time version of the library actually loaded at run time. */
TD_API uint32_t td_version_number(void);      /* e.g. 10000 for 1.0.0 */
TD_API const char *td_version_string(void);   /* e.g. "1.0.0" */
TD_API uint32_t td_abi_version(void);         /* the SONAME number */

/*
 * Run-time compatibility check: is the loaded library usable by a program
 * compiled against a header with the given TD_ABI_VERSION and
 * TD_VERSION_NUMBER? It is when the ABI generations are equal and the loaded
 * library is at least as new as the header (a newer header may declare
 * functions an older library lacks). Returns TD_OK or TD_ERR_VERSION.
 * Call it as TD_CHECK_VERSION() at start-up.
 */
TD_API td_status td_check_version(uint32_t header_abi_version,
                                  uint32_t header_version_number);
#define TD_CHECK_VERSION() td_check_version(TD_ABI_VERSION, TD_VERSION_NUMBER)

/* Static English text for a status code ("invalid argument", ...). Never
 * NULL; unknown codes give "unknown status". */
TD_API const char *td_status_string(td_status status);

/*
 * Error detail, in two places (docs/api.md, "Errors").
 *
 * td_last_error_message(): the most recent failure on the calling thread —
 * which argument, which file and offset, which limit. Every public function
 * that returns an error sets it; successful calls leave it unchanged (like
 * errno). The text stays valid until the next failing call on the same
 * thread. Never NULL; "" before any failure. It is the only place for the
 * failures of calls that take no handle (td_model_load, td_*_create
 * without a parent handle).
 *
 * td_<handle>_errmsg(h, buf, cap): the most recent failure of a call whose
 * first argument was h (td_trainer_create and td_sampler_create report on
 * their model), from any thread: for hosts whose calls move between OS
 * threads (Go, async runtimes, thread pools). It copies the message into
 * buf (truncated to cap − 1 bytes, NUL-terminated, when cap > 0) and
 * returns its full length; "" and 0 before any failure or for a NULL
 * handle. It is safe to call while other threads use h; when several
 * threads use one handle, the message is that of whichever failed last.
 */
TD_API const char *td_last_error_message(void);

/* ---------------------------------------------------------------------------
 * Memory
 *
 * A host may route every allocation a handle makes through its own hooks.
 * Each constructor takes a `const td_allocator *` (NULL selects the C
 * library's malloc/realloc/free); the hooks are copied into the handle and
 * inherited by everything it creates. All three hooks are required. They
 * follow the C library's contracts (malloc(0) may return NULL; realloc(p, n)
 * keeps the old block on failure) and must be thread-safe if handles that
 * share them are used from several threads. The library aligns its own large
 * buffers; the hooks need only return malloc-aligned memory.
 * Allocations made inside the BLAS library are outside this mechanism.
 * ------------------------------------------------------------------------- */
typedef struct td_allocator {
    void *(*malloc_fn)(void *user, size_t size);
    void *(*realloc_fn)(void *user, void *ptr, size_t size);
    void (*free_fn)(void *user, void *ptr);
    void *user;
} td_allocator;

/* ---------------------------------------------------------------------------
 * Structs that grow (docs/abi.md)
 *
 * Every public struct except td_allocator begins with `uint32_t
 * struct_size`, has no padding, and grows only at its end, in units of 8
 * bytes; a field added later treats 0 as "the default". The library reads
 * and writes the caller's size, never its own:
 *  - Config structs: fill one with its td_*_config_default() (an inline
 *    wrapper passing sizeof *cfg to the exported td_*_config_init(cfg, size);
 *    bindings call _init with their own size), change fields, pass it in.
 *    Fields a smaller (older) struct lacks keep their defaults; a larger
 *    (newer) struct is accepted when the bytes this library does not know
 *    are zero, and refused with TD_ERR_VERSION otherwise.
 *  - Structs the library fills (defaults, a handle's config, results): set
 *    struct_size = sizeof the struct first. The library writes min(that,
 *    its own size) bytes and sets struct_size to the count it wrote, so a
 *    caller can tell which fields are valid.
 * A struct_size below the 1.0 size, not a multiple of 8, or above 4096 is
 * refused with TD_ERR_INVALID_ARG. Nothing outside the caller's struct is
 * ever read or written.
 * ------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------
 * Noise schedule (docs/diffusion.md)
 *
 * A token stays itself with probability α(t) at time t ∈ [0, 1] and is
 * [MASK] otherwise. The diffusion kinds train over all t ~ U[t_min, 1] with
 * the ELBO weight w(t) = −α′(t)/(1 − α(t)); TD_SCHEDULE_FIXED_RATE trains at
 * one masking rate r with weight 1/r — BERT's MLM. The trainer does not
 * distinguish them otherwise. A schedule is immutable after creation and may
 * be shared by any number of trainers and samplers on any threads.
 * ------------------------------------------------------------------------- */
typedef struct td_schedule td_schedule;

typedef enum td_schedule_kind {
    TD_SCHEDULE_LINEAR     = 0, /* α = 1 − t */
    TD_SCHEDULE_LOGLINEAR  = 1, /* α = 1 − (1 − ε)t (MDLM) */
    TD_SCHEDULE_COSINE     = 2, /* α = cos(πt/2) */
    TD_SCHEDULE_POLYNOMIAL = 3, /* α = 1 − t^k */
    TD_SCHEDULE_FIXED_RATE = 4  /* masking rate r at every step (MLM) */
} td_schedule_kind;

typedef struct td_schedule_config {
    uint32_t struct_size;
    int32_t kind;            /* td_schedule_kind */
    double eps;              /* log-linear ε ∈ (0, 1); default 1e-3 */
    double power;            /* polynomial k > 0; default 2 */
    double rate;             /* fixed-rate r ∈ (0, 1); default 0.15 */
    double t_min;            /* smallest training time ∈ (0, 0.5); default 1e-3 */
    int32_t bert_corruption; /* fixed-rate only: BERT's 80/10/10 rule; default 0 */
    int32_t reserved0;       /* must be 0 */
} td_schedule_config;

/* Defaults for `kind` (parameters of other kinds are ignored). */
TD_API td_status td_schedule_config_init(td_schedule_config *cfg, size_t size,
                                         td_schedule_kind kind);
static inline td_status td_schedule_config_default(td_schedule_config *cfg,
                                                   td_schedule_kind kind)
{
    return td_schedule_config_init(cfg, sizeof *cfg, kind);
}
TD_API td_status td_schedule_create(const td_schedule_config *cfg, const td_allocator *alloc,
                                    td_schedule **out);
TD_API void td_schedule_free(td_schedule *s);
TD_API size_t td_schedule_errmsg(const td_schedule *s, char *buf, size_t cap);
/* The schedule's configuration; set cfg->struct_size first. */
TD_API td_status td_schedule_get_config(const td_schedule *s, td_schedule_config *cfg);

/* α(t), α′(t) and w(t) for t ∈ [0, 1]. α(0) = 1 exactly. w(t) is evaluated
 * at max(t, t_min) (for fixed-rate at max(t, min(t_min, r))), since it
 * diverges at 0. */
TD_API td_status td_schedule_alpha(const td_schedule *s, double t, double *alpha);
TD_API td_status td_schedule_alpha_deriv(const td_schedule *s, double t, double *deriv);
TD_API td_status td_schedule_weight(const td_schedule *s, double t, double *weight);

/* ---------------------------------------------------------------------------
 * Tokenizer (docs/tokenizer.md)
 *
 * Byte-level (ids 0..255 are bytes, [MASK] = 256, [PAD] = 257) or
 * character-level (the code points of a corpus, sorted, then [MASK], [PAD]
 * and, with a cap, [UNK]), or a Hugging Face WordPiece or byte-level BPE
 * vocabulary with that vocabulary's ids, giving the ids the Hugging Face
 * `tokenizers` library gives. A tokenizer is immutable and may be shared
 * across threads. Encode and decode follow snprintf: the needed size is
 * always reported, a NULL buffer with capacity 0 asks for it, and a buffer
 * that is too small fails with TD_ERR_INVALID_ARG without truncating.
 * ------------------------------------------------------------------------- */
typedef struct td_tokenizer td_tokenizer;

typedef enum td_special_token {
    TD_TOKEN_MASK = 0,  /* the absorbing [MASK] */
    TD_TOKEN_PAD  = 1,  /* [PAD]: ends variable-length output */
    TD_TOKEN_UNK  = 2,  /* [UNK] (<unk>): capped character vocabularies, WordPiece,
                           byte-level BPE vocabularies that have one */
    TD_TOKEN_CLS  = 3,  /* [CLS] or <s>: a Hugging Face sequence start */
    TD_TOKEN_SEP  = 4,  /* [SEP] or </s>: a Hugging Face sequence end */
    TD_TOKEN_EOS  = 5   /* end of text: [EOS] (258) of td_tokenizer_create_byte_eos; a
                           Hugging Face vocabulary's [SEP] or </s> */
} td_special_token;

TD_API td_status td_tokenizer_create_byte(const td_allocator *alloc, td_tokenizer **out);
/* The byte tokenizer with an end of text: ids 0..255 bytes, [MASK] = 256,
 * [PAD] = 257, [EOS] = 258 (vocabulary 259). Text never encodes to [EOS];
 * decoding stops at it as at [PAD]. Its description is format version 3
 * (docs/tokenizer.md), which older libraries refuse with TD_ERR_VERSION. */
TD_API td_status td_tokenizer_create_byte_eos(const td_allocator *alloc, td_tokenizer **out);

/* The character vocabulary of text[0..len) (UTF-8; each invalid sequence
 * counts as U+FFFD): every code point it holds, or with max_chars > 0 the
 * max_chars most frequent ones plus [UNK]. */
TD_API td_status td_tokenizer_create_char(const char *text, size_t len, uint32_t max_chars,
                                          const td_allocator *alloc, td_tokenizer **out);
/* A Hugging Face tokenizer from a directory (docs/tokenizer.md): its
 * tokenizer.json when present (model WordPiece or BPE as BERT and RoBERTa/
 * GPT-2 use them; anything else is TD_ERR_UNSUPPORTED), else vocab.json +
 * merges.txt (byte-level BPE), else vocab.txt (+ tokenizer_config.json's
 * do_lower_case; WordPiece). Ids are the vocabulary's; the vocabulary must
 * hold [MASK] and [PAD] (<mask>, <pad>), and WordPiece also [UNK].
 * TD_ERR_IO when none of the files can be read, TD_ERR_FORMAT for a
 * malformed one. */
TD_API td_status td_tokenizer_load_hf(const char *dir, const td_allocator *alloc,
                                      td_tokenizer **out);
TD_API void td_tokenizer_free(td_tokenizer *t);
TD_API size_t td_tokenizer_errmsg(const td_tokenizer *t, char *buf, size_t cap);

TD_API td_status td_tokenizer_vocab_size(const td_tokenizer *t, int32_t *vocab_size);

/* The id of a special token; TD_ERR_INVALID_ARG if this tokenizer has none. */
TD_API td_status td_tokenizer_special_id(const td_tokenizer *t, td_special_token which,
                                         int32_t *id);

/* Text to ids: *n_ids receives the number of ids the whole text needs
 * (byte-level BPE can need more than the text has bytes). The Hugging Face
 * kinds read invalid UTF-8 as U+FFFD per maximal subpart, and special-token
 * strings in the text as ordinary text. */
TD_API td_status td_tokenizer_encode(const td_tokenizer *t, const char *text, size_t len,
                                     int32_t *ids, size_t cap, size_t *n_ids);

/* The same framed as BERT and RoBERTa frame one sequence: [CLS] ids [SEP]
 * or <s> ids </s>. TD_ERR_INVALID_ARG for a tokenizer without both. */
TD_API td_status td_tokenizer_encode_framed(const td_tokenizer *t, const char *text,
                                            size_t len, int32_t *ids, size_t cap,
                                            size_t *n_ids);

/* Ids to NUL-terminated text; *len receives its length without the NUL (the
 * buffer needs *len + 1 bytes). Decoding stops at the first [PAD] (or [EOS]
 * of a byte tokenizer that has one). Each
 * [MASK] becomes mask_text (NULL: "_"). Byte-level output is raw bytes and
 * need not be valid UTF-8; character-level and Hugging Face output always
 * is (a byte-level BPE sequence that cuts a character gives U+FFFD). */
TD_API td_status td_tokenizer_decode(const td_tokenizer *t, const int32_t *ids, size_t n,
                                     const char *mask_text, char *out, size_t cap, size_t *len);

/* ---------------------------------------------------------------------------
 * Corpus (docs/corpus.md): a text file (plain or gzip, detected by content)
 * tokenised once and split deterministically into training and validation
 * (every 20th block of 8192 tokens is validation). A corpus is immutable and
 * may be read by several threads at once.
 * ------------------------------------------------------------------------- */
typedef struct td_corpus td_corpus;

typedef enum td_split {
    TD_SPLIT_TRAIN = 0,
    TD_SPLIT_VALID = 1
} td_split;

/* Reads and tokenises a file of at most 1 GiB of text. */
TD_API td_status td_corpus_load(const char *path, const td_tokenizer *tok,
                                const td_allocator *alloc, td_corpus **out);
/* The same for text already in memory (copied; need not outlive the call). */
TD_API td_status td_corpus_create(const char *text, size_t len, const td_tokenizer *tok,
                                  const td_allocator *alloc, td_corpus **out);
/* The same with an end of text (docs/corpus.md "End of text"): the text is
 * cut into documents after each occurrence of `separator` (non-empty; "\n"
 * for lines, "\n\n" for paragraphs; it stays at the end of its document),
 * each document is tokenised on its own and followed by the tokenizer's
 * TD_TOKEN_EOS, so a model trained on it sees where texts end. The split
 * rule is the same, on the packed tokens. TD_ERR_INVALID_ARG for a
 * tokenizer without an end token or an empty separator. */
TD_API td_status td_corpus_create_docs(const char *text, size_t len, const char *separator,
                                       const td_tokenizer *tok, const td_allocator *alloc,
                                       td_corpus **out);
TD_API td_status td_corpus_load_docs(const char *path, const char *separator,
                                     const td_tokenizer *tok, const td_allocator *alloc,
                                     td_corpus **out);
TD_API void td_corpus_free(td_corpus *c);
TD_API size_t td_corpus_errmsg(const td_corpus *c, char *buf, size_t cap);

TD_API td_status td_corpus_num_tokens(const td_corpus *c, td_split split, uint64_t *n_tokens);

/* Batch number `index` of a run seeded with `seed`: `batch` windows of
 * seq_len tokens at uniformly random offsets of the split, into
 * out[batch · seq_len]. Stateless: the same (seed, index) always gives the
 * same batch, so a resumed run sees exactly the batches it would have. */
TD_API td_status td_corpus_batch(const td_corpus *c, td_split split, uint64_t seed,
                                 uint64_t index, int32_t batch, int32_t seq_len, int32_t *out);

/* Non-overlapping windows of seq_len tokens tiling the split in text order
 * (for evaluation): how many there are, and a copy of the index-th. */
TD_API td_status td_corpus_num_windows(const td_corpus *c, td_split split, int32_t seq_len,
                                       uint64_t *n_windows);
TD_API td_status td_corpus_window(const td_corpus *c, td_split split, int32_t seq_len,
                                  uint64_t index, int32_t *out);

/* ---------------------------------------------------------------------------
 * Model (docs/model.md): a bidirectional transformer encoder with a tied
 * output head; RoPE and pre-LN by default, BERT's learned positions and
 * post-LN as options. Its parameters are one contiguous float32 buffer
 * (partly bf16 or q8_0 in a model made by td_model_convert).
 * A model is not modified by sampling or evaluation and may then be shared
 * read-only across threads; a trainer updates it in place.
 * ------------------------------------------------------------------------- */
typedef struct td_model td_model;

typedef enum td_pos_encoding {
    TD_POS_ROPE    = 0, /* rotary embeddings inside attention (default) */
    TD_POS_LEARNED = 1  /* learned absolute position embeddings (BERT) */
} td_pos_encoding;

typedef enum td_activation {
    TD_ACT_GELU_TANH = 0, /* GELU, tanh approximation (GPT-2; HF "gelu_new") (default) */
    TD_ACT_GELU_ERF  = 1  /* GELU, exact erf form (BERT; HF "gelu") */
} td_activation;

typedef enum td_norm_placement {
    TD_NORM_PRE  = 0,   /* LayerNorm before each sub-layer, and at the end */
    TD_NORM_POST = 1    /* LayerNorm after each residual sum (BERT) */
} td_norm_placement;

typedef struct td_model_config {
    uint32_t struct_size;
    int32_t vocab_size;     /* default 258: bytes, [MASK] = 256, [PAD] = 257 */
    int32_t mask_id;        /* the absorbing [MASK] token; default 256 */
    int32_t max_seq_len;    /* default 256 */
    int32_t d_model;        /* default 256 */
    int32_t n_layers;       /* default 4 */
    int32_t n_heads;        /* must divide d_model; default 4 */
    int32_t d_ff;           /* default 4 · d_model */
    int32_t pos_encoding;   /* td_pos_encoding */
    int32_t norm_placement; /* td_norm_placement */
    int32_t tie_embeddings; /* 1: the output projection is the token embedding */
    int32_t reserved0;      /* must be 0 */
    int32_t causal;         /* 0: bidirectional (default); 1: causal — a position attends
                               to itself and earlier ones only, and the trainer, the
                               evaluation and the sampler treat the model as
                               autoregressive (docs/model.md, "Causal mode") */
    int32_t reserved1;      /* must be 0 */
    /* Added in 1.1 (the struct grew from 56 to 80 bytes): the options that
     * Hugging Face's BERT, RoBERTa and DistilBERT need (docs/hf.md). */
    int32_t activation;      /* td_activation of the MLP (and of the head transform) */
    float layer_norm_eps;    /* every LayerNorm's epsilon; default 1e-5 */
    int32_t type_vocab_size; /* 0 (default): none; n: a token-type table [n, d_model]
                                whose row 0 is added to every embedding */
    int32_t pos_offset;      /* learned positions: position t reads row t + pos_offset of
                                a table of pos_offset + max_seq_len rows (RoBERTa: 2) */
    int32_t head_transform;  /* 1: dense, activation, LayerNorm before the output
                                projection (BERT's MLM head); 0 (default): none */
    int32_t reserved2;       /* must be 0 */
} td_model_config;

TD_API td_status td_model_config_init(td_model_config *cfg, size_t size);
static inline td_status td_model_config_default(td_model_config *cfg)
{
    return td_model_config_init(cfg, sizeof *cfg);
}

/* A new model with parameters initialised from `seed` (docs/model.md).
 * Limits and the error for each field are in docs/model.md. */
TD_API td_status td_model_create(const td_model_config *cfg, uint64_t seed,
                                 const td_allocator *alloc, td_model **out);
TD_API void td_model_free(td_model *m);
TD_API size_t td_model_errmsg(const td_model *m, char *buf, size_t cap);
/* The model's configuration; set cfg->struct_size first. */
TD_API td_status td_model_get_config(const td_model *m, td_model_config *cfg);
TD_API td_status td_model_num_params(const td_model *m, uint64_t *n_params);
/* CRC-32 (zlib's) of the parameter buffer's bytes: equal parameters give equal
 * checksums. Data-parallel replicas compare it to prove they stayed
 * identical (docs/distributed.md). */
TD_API td_status td_model_checksum(const td_model *m, uint32_t *checksum);

/* logits [batch · seq_len, vocab_size] for token ids [batch · seq_len]
 * (row b·seq_len + i is position i of sequence b; the [MASK] column is
 * −INFINITY). Allocates its scratch and starts its threads for the call;
 * n_threads >= 1. */
TD_API td_status td_model_logits(const td_model *m, const int32_t *ids, int32_t batch,
                                 int32_t seq_len, int32_t n_threads, float *logits);

/* Checkpoints (docs/format.md): saved atomically (temporary file, fsync,
 * rename; an existing file is replaced only by a complete new one). Loading
 * validates every field and returns TD_ERR_FORMAT, TD_ERR_CORRUPT,
 * TD_ERR_VERSION or TD_ERR_IO with a message; it never reads out of bounds.
 * A trainer checkpoint (td_trainer_save) also loads as a model.
 * td_model_load maps the file read-only and shared when its tensors are
 * stored uncompressed (as td_model_save writes them): the parameters are the
 * file's pages, shared by every process that loads it, and the file may be
 * replaced by rename or deleted afterwards — but not changed in place while
 * mapped. Otherwise it reads a copy. td_model_load_memory always copies;
 * the buffer need not outlive the call. */
TD_API td_status td_model_save(const td_model *m, const char *path);
TD_API td_status td_model_load(const char *path, const td_allocator *alloc, td_model **out);
TD_API td_status td_model_load_memory(const void *data, size_t size, const td_allocator *alloc,
                                      td_model **out);

/* Hugging Face masked language models (docs/hf.md). td_model_load_hf reads
 * a directory holding config.json and model.safetensors of a
 * BertForMaskedLM, RobertaForMaskedLM or DistilBertForMaskedLM (F32, F16 or
 * BF16 tensors; the parameters become float32) into a new model. mask_id is
 * the [MASK] token's id (config.json does not say it), or -1 to take it from
 * the added tokens of the directory's tokenizer.json ("[MASK]" or "<mask>").
 * flags must be 0. Every field and tensor is validated: TD_ERR_FORMAT,
 * TD_ERR_CORRUPT (a non-finite value), TD_ERR_UNSUPPORTED (another
 * architecture or option) or TD_ERR_IO, with a message; nothing is loaded
 * on failure.
 * td_model_save_hf writes a model of such an architecture (learned
 * positions, post-LN, the head transform, bidirectional; which one follows
 * from type_vocab_size and pos_offset) into `dir` (created if missing) as
 * config.json and model.safetensors (F32), each replaced atomically;
 * TD_ERR_UNSUPPORTED for any other model. flags must be 0. */
TD_API td_status td_model_load_hf(const char *dir, int32_t mask_id, uint32_t flags,
                                  const td_allocator *alloc, td_model **out);
TD_API td_status td_model_save_hf(const td_model *m, const char *dir, uint32_t flags);

/* Reduced-precision weights for inference (docs/quantization.md).
 * td_model_convert makes a new model from a float32 one whose weight
 * matrices and token embedding are stored as bf16 or q8_0 (blocks of 32
 * int8 weights with one float32 scale; a matrix whose rows are not a
 * multiple of 32 long stays float32); LayerNorm, biases and position
 * tables stay float32. The new model samples, evaluates, saves and loads
 * like any other (its checkpoint is smaller, and maps the same way), but is
 * for inference only: td_trainer_create and td_model_save_hf refuse it with
 * TD_ERR_UNSUPPORTED. TD_ERR_STATE when m is not float32 (converted
 * already); TD_ERR_NUMERIC when a weight is beyond bf16's range. alloc:
 * NULL for m's allocator. td_model_get_dtype says how a model's weights are
 * stored (TD_DTYPE_F32 for every model not converted). */
typedef enum td_dtype {
    TD_DTYPE_F32  = 0, /* float32: every model that td_model_convert did not make */
    TD_DTYPE_BF16 = 1, /* bfloat16 weights, float32 arithmetic */
    TD_DTYPE_Q8_0 = 2  /* 8-bit weights in blocks of 32 with a float32 scale */
} td_dtype;

TD_API td_status td_model_convert(const td_model *m, int32_t dtype, const td_allocator *alloc,
                                  td_model **out);
TD_API td_status td_model_get_dtype(const td_model *m, int32_t *dtype);

/* The tokenizer travels with the model in its checkpoints. set copies its
 * description (its vocabulary size and [MASK] id must match the model's);
 * get builds a new tokenizer from it, or fails with TD_ERR_STATE when the
 * model has none. */
TD_API td_status td_model_set_tokenizer(td_model *m, const td_tokenizer *tok);
TD_API td_status td_model_get_tokenizer(const td_model *m, const td_allocator *alloc,
                                        td_tokenizer **out);

/* ---------------------------------------------------------------------------
 * Trainer: one training step for MLM and for diffusion alike. Each step
 * draws a time per sequence from the schedule, masks the batch, runs the
 * model forward and backward on the masked positions, and applies AdamW.
 * The trainer updates the model it was created with; the model must outlive
 * it, and the schedule is copied. Same seed, same n_threads, same data:
 * bit-identical training.
 * ------------------------------------------------------------------------- */
typedef struct td_trainer td_trainer;

typedef struct td_trainer_config {
    uint32_t struct_size;
    int32_t batch_size;     /* sequences per step; default 32 */
    int32_t seq_len;        /* tokens per sequence, <= max_seq_len; default 128 */
    int32_t n_threads;      /* threads the step computes with; default 1 */
    uint64_t seed;          /* masking times and positions; default 1 */
    float lr;               /* peak learning rate; default 1e-3 */
    float min_lr;           /* end of the cosine decay; default 1e-4 */
    int64_t warmup_steps;   /* linear warm-up; default 100 */
    int64_t total_steps;    /* where the cosine reaches min_lr; default 10000 */
    float beta1, beta2;     /* default 0.9, 0.95 */
    float eps;              /* default 1e-8 */
    float weight_decay;     /* on weight matrices only; default 0.1 */
    float clip_norm;        /* global gradient norm ceiling, 0 = off; default 1 */
    int32_t micro_batch;    /* sequences per forward/backward pass, 1..batch_size;
                             * the passes' gradients add up to the batch's, with
                             * activation memory for micro_batch sequences only;
                             * 0 = batch_size (default) */
} td_trainer_config;

typedef struct td_train_stats {
    uint32_t struct_size;
    uint32_t reserved0;
    int64_t step;           /* steps completed, this one included */
    double loss;            /* the batch's NELBO estimate, nats per token */
    double grad_norm;       /* before clipping */
    double lr;              /* learning rate applied */
    int64_t n_masked;       /* masked (scored) positions in the batch */
} td_train_stats;

TD_API td_status td_trainer_config_init(td_trainer_config *cfg, size_t size);
static inline td_status td_trainer_config_default(td_trainer_config *cfg)
{
    return td_trainer_config_init(cfg, sizeof *cfg);
}
TD_API td_status td_trainer_create(td_model *m, const td_schedule *s,
                                   const td_trainer_config *cfg, td_trainer **out);
TD_API void td_trainer_free(td_trainer *t);
TD_API size_t td_trainer_errmsg(const td_trainer *t, char *buf, size_t cap);

/* One step on tokens [batch_size · seq_len] (ids in [0, vocab_size), never
 * [MASK]). stats may be NULL; otherwise set its struct_size first. A
 * non-finite loss or gradient returns TD_ERR_NUMERIC and leaves the model
 * and the optimizer untouched. */
TD_API td_status td_trainer_step(td_trainer *t, const int32_t *tokens, td_train_stats *stats);

/* td_trainer_step for prompt-protected (SFT-style, LLaDA's) training:
 * protect [batch_size · seq_len] marks positions that are never scored:
 * 1 = kept as they are, never masked — a prompt the model conditions on;
 * 2 = [MASK] in the input — a dropped prompt, so that the model also learns
 * the unconditional prediction classifier-free guidance needs (the host
 * chooses which sequences drop their prompt); 0 = trained as usual. Other
 * values: TD_ERR_INVALID_ARG. Sequence b's scored positions weigh
 * w(t)/(F_b · batch_size), F_b its positions flagged 0, instead of
 * w(t)/(seq_len · batch_size). NULL or all zeros is td_trainer_step, bit
 * for bit. For a causal model flagged positions are not scored. */
TD_API td_status td_trainer_step_protected(td_trainer *t, const int32_t *tokens,
                                           const uint8_t *protect, td_train_stats *stats);

/* Steps completed so far (restored by td_trainer_resume). */
TD_API td_status td_trainer_get_step(const td_trainer *t, int64_t *step);

/* A resumable checkpoint: the model (as td_model_save writes it) plus the
 * optimizer moments, the step count and the random generator state. */
TD_API td_status td_trainer_save(const td_trainer *t, const char *path);

/* What td_trainer_resume lets differ between a checkpoint and the trainer
 * (bits, OR-ed together). A checkpoint records the schedule (kind and
 * parameters), batch_size, seq_len and seed of the run that wrote it; by
 * default (TD_RESUME_STRICT) it resumes only into a trainer configured the
 * same way. With a flag the trainer keeps its own setting for that field.
 * The model's configuration must always be the same. */
typedef enum td_resume_flags {
    TD_RESUME_STRICT         = 0,
    TD_RESUME_ALLOW_SCHEDULE = 1 << 0, /* another schedule kind or parameters */
    TD_RESUME_ALLOW_BATCH    = 1 << 1, /* another batch_size */
    TD_RESUME_ALLOW_SEQ_LEN  = 1 << 2, /* another seq_len */
    TD_RESUME_ALLOW_SEED     = 1 << 3  /* another seed; the trainer then keeps its
                                          own random stream */
} td_resume_flags;

/* Restores a td_trainer_save checkpoint into a trainer whose model has the
 * same configuration: parameters, optimizer state, step and generator.
 * Continuing with the same data (e.g. td_corpus_batch indexed by the step)
 * repeats the uninterrupted run bit for bit at the same thread counts.
 * `flags`: TD_RESUME_STRICT or td_resume_flags bits. Every key of the file
 * is validated (TD_ERR_FORMAT or TD_ERR_CORRUPT naming it); a checkpoint
 * whose model configuration, or whose schedule, batch_size, seq_len or seed
 * unless allowed by `flags`, differs from the trainer's fails with
 * TD_ERR_STATE naming the first such field and both values. On any error
 * the trainer and its model are unchanged. */
TD_API td_status td_trainer_resume(td_trainer *t, const char *path, uint32_t flags);

/* The trainer's configuration as created (micro_batch resolved to the
 * sequences per pass); set cfg->struct_size first. */
TD_API td_status td_trainer_get_config(const td_trainer *t, td_trainer_config *cfg);

/* ---------------------------------------------------------------------------
 * Data parallelism (docs/distributed.md): n_ranks trainers — one per process
 * or device — train copies of one model on one global batch. Every rank has
 * the same model, schedule and configuration and passes the same global
 * batch [batch_size · seq_len] to td_trainer_step. Each draws the times and
 * masks of the whole batch (cheap, and so every rank's generator stays the
 * same), runs forward and backward on its shard only — sequences
 * [rank · batch_size / n_ranks, (rank + 1) · batch_size / n_ranks) — and then
 * calls `reduce` once per step, after backward and before the optimizer.
 *
 * The reduce hook must replace each element of grads[n_grads] (the shard's
 * gradient, in the layout of the parameters) and values[n_values] (the
 * shard's loss and any later per-step figures) by its sum over all ranks —
 * an all-reduce, e.g. MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM), NCCL's
 * ncclAllReduce or a host's own transport. Every rank calls it at the same
 * point with the same counts. The loss weights are the global batch's, so
 * the sums are exactly the gradient and the loss one process would compute
 * on the whole batch (up to the rounding of the summation order): clipping
 * uses the global norm, every rank applies the same AdamW step, and stats
 * report the global loss. A hook that returns anything but TD_OK fails the
 * step with that status, nothing applied. A non-finite loss on any rank
 * still calls the hook, so every rank fails with TD_ERR_NUMERIC together.
 *
 * n_ranks must divide batch_size (TD_ERR_INVALID_ARG otherwise); 0 <= rank <
 * n_ranks; reduce may be NULL only when n_ranks is 1 (the default, a plain
 * trainer). Checkpoints do not depend on n_ranks: rank 0 saves, and any
 * number of ranks that divides batch_size resumes. Set micro_batch to
 * batch_size / n_ranks (or less) so that a rank's activation memory is for
 * its shard only. */
typedef td_status (*td_reduce_fn)(void *user, float *grads, size_t n_grads, double *values,
                                  size_t n_values);
TD_API td_status td_trainer_set_data_parallel(td_trainer *t, int32_t rank, int32_t n_ranks,
                                              td_reduce_fn reduce, void *user);

/* ---------------------------------------------------------------------------
 * Sampler (docs/sampling.md): a trained model as a generator. The caller
 * passes a canvas of token ids in which [MASK] marks what to generate; every
 * other id is kept as it is (a prompt, a suffix, any spans: infilling). The
 * sampler walks the time grid t_k = 1 − k/steps from t = 1 down to 0 and
 * reveals masked positions on the way, as the schedule's α says; at t = 0
 * none is left. It never writes [MASK] or [PAD]. Filling every mask at once
 * from one model call, as BERT does, is steps = 1 of any strategy.
 *
 * The model must outlive the sampler and is only read, so samplers on
 * several threads may share one model (while no trainer updates it); the
 * schedule is copied. A sampler is used by one thread at a time. All
 * scratch is allocated by td_sampler_create, none by td_sampler_generate.
 * ------------------------------------------------------------------------- */
typedef struct td_sampler td_sampler;

typedef enum td_sampler_strategy {
    /* MDLM: each masked position is revealed with probability
     * (α(s) − α(t)) / (1 − α(t)), its token drawn from the model. */
    TD_SAMPLER_ANCESTRAL = 0,
    /* Confidence-ordered (LLaDA's low-confidence remasking): draw a token
     * for every masked position, keep the k most confident, where k follows
     * the schedule. Confidence is the probability of the drawn token ... */
    TD_SAMPLER_MAX_PROB  = 1,
    /* ... the top-1 minus top-2 probability ... */
    TD_SAMPLER_MARGIN    = 2,
    /* ... or the negative entropy of the token distribution. */
    TD_SAMPLER_ENTROPY   = 3,
    /* Causal models only (and they only with this one): left to right, one
     * position per model call, each [MASK] drawn from the model given the
     * positions before it, every other id kept. Keys and values of the
     * positions already processed are cached, so a step costs one position's
     * forward pass. steps, block_len, cache and alg_temperature are not
     * used; the schedule may be any. */
    TD_SAMPLER_LEFT_TO_RIGHT = 4
} td_sampler_strategy;

/* ReMDM (docs/sampling.md "Remasking"): at each step from t to s, every
 * generated (not fixed) position of the block that holds a token is masked
 * again with probability σ_t, and a masked one is revealed with probability
 * (α(s) − (1 − σ_t)·α(t)) / (1 − α(t)) instead of the plain p. With
 * σ_max = min(1, (1 − α(s))/α(t)): */
typedef enum td_sampler_remask {
    TD_SAMPLER_REMASK_NONE    = 0, /* σ = 0 */
    TD_SAMPLER_REMASK_RESCALE = 1, /* σ = η · σ_max   (ReMDM "rescale", σ-max) */
    TD_SAMPLER_REMASK_CAP     = 2, /* σ = min(η, σ_max)   (ReMDM "cap") */
    TD_SAMPLER_REMASK_LOOP    = 3  /* α held at alpha_on inside (t_off, t_on], σ = min(η,
                                      σ_max) there and 0 outside   (ReMDM "loop") */
} td_sampler_remask;

/* Approximate key/value caching for block decoding (docs/sampling.md,
 * "Approximate caching"). At a block's first forward pass the keys and
 * values of every layer are kept; the block's later steps run the network
 * on a window only, attending over the kept keys and values elsewhere. */
typedef enum td_sampler_approx {
    TD_SAMPLER_APPROX_OFF    = 0, /* every forward pass over the whole canvas (exact) */
    TD_SAMPLER_APPROX_PREFIX = 1, /* window: the block and everything after it */
    TD_SAMPLER_APPROX_DUAL   = 2  /* window: the block alone */
} td_sampler_approx;

typedef struct td_sampler_config {
    uint32_t struct_size;
    int32_t strategy;        /* td_sampler_strategy; default TD_SAMPLER_ANCESTRAL */
    int32_t steps;           /* steps per block, 1..1,000,000; default 64 */
    float temperature;       /* >= 0; 0 = always the most likely token; default 1 */
    int32_t top_k;           /* draw among the k most likely tokens, 0 = all (so is a k
                                that keeps every token); default 0 */
    float top_p;             /* nucleus: smallest set of mass >= top_p, in (0, 1]; default 1 */
    uint64_t seed;           /* default 1 */
    int32_t block_len;       /* > 0: denoise blocks of this many positions left to
                                right, each with `steps` steps; 0 = one block; default 0 */
    int32_t n_threads;       /* threads it computes with, 1..1024; default 1 */
    float alg_temperature;   /* confidence strategies: 0 = reveal the k most confident;
                                > 0 = draw the k positions with probability ∝
                                exp(confidence / alg_temperature); default 0 */
    int32_t pad_id;          /* [PAD]: kept, never attended to, never generated;
                                -1 = none; default -1 */
    int32_t max_batch;       /* largest batch td_sampler_generate accepts; default 1 */
    int32_t max_seq_len;     /* longest canvas, <= the model's; 0 = the model's; default 0 */
    int32_t cache;           /* 1: run the model only for a step that draws tokens and
                                whose canvas it has not seen (exact: same output);
                                0: run it at every step; default 1 */
    int32_t reserved0;       /* must be 0 */
    /* Appended after 1.0.0 (the 64-byte struct of 1.0.0 is still accepted; the fields
     * below then keep their defaults). */
    float threshold;         /* MAX_PROB and MARGIN: in (0, 1], each step reveals every
                                masked position of the block whose confidence exceeds it,
                                at least the most confident one (Fast-dLLM); a block ends
                                as soon as it is filled, `steps` is the most it may take;
                                0 = off; default 0 */
    float factor;            /* MAX_PROB and MARGIN: > 0, Fast-dLLM's factor rule: reveal
                                the n most confident, n the largest with
                                (n + 1)(1 − c_(n)) < factor, at least 1; ends blocks as
                                threshold does; 0 = off; default 0 (not with threshold) */
    int32_t remask;          /* td_sampler_remask: ReMDM remasking of generated tokens;
                                default TD_SAMPLER_REMASK_NONE */
    float eta;               /* remasking strength η in [0, 1]; 0 = the plain sampler,
                                bit for bit; default 0 */
    float remask_t_on;       /* TD_SAMPLER_REMASK_LOOP: the window t ∈ (t_off, t_on] ... */
    float remask_t_off;      /* ... with 0 <= t_off < t_on <= 1; defaults 0.55, 0.05 */
    float remask_alpha_on;   /* ... in which α is held at alpha_on ∈ (0, 1); default 0.9 */
    float guidance;          /* classifier-free guidance w, finite: logits
                                l_c + w·(l_c − l_u), l_c of the canvas, l_u of the canvas
                                with its fixed positions masked; 0 = l_c alone (one
                                forward pass per step, bit for bit the unguided sampler);
                                default 0 */
    /* Appended later (the 96-byte struct is still accepted): */
    int32_t approx_cache;    /* td_sampler_approx: keep the keys and values outside the
                                current block, refreshed at each block's first forward
                                pass (Fast-dLLM); approximate; needs block_len > 0, no
                                guidance; default TD_SAMPLER_APPROX_OFF */
    int32_t eos_id;          /* end of text: once a sequence holds it, every generated
                                position after it becomes pad_id (not drawn, not attended
                                to, not decoded); needs pad_id, no remasking; -1 = none;
                                default -1 */
} td_sampler_config;

/* Called after every step. `canvas` [batch · seq_len] is the current state;
 * `changed` lists the n_changed positions (index b · seq_len + i, ascending)
 * that this step revealed or, with remasking, masked again. `step` counts from 0 to n_steps − 1 over all
 * blocks. Return 0 to continue, anything else to stop generation with
 * TD_ERR_CANCELLED. The callback may call the library, but not this
 * sampler: its td_sampler_generate and td_sampler_set_seed fail there with
 * TD_ERR_STATE. */
typedef int32_t (*td_sampler_callback)(void *user, int32_t step, int32_t n_steps,
                                       const int32_t *canvas, int32_t batch, int32_t seq_len,
                                       const int32_t *changed, int32_t n_changed);

typedef struct td_sample_stats {
    uint32_t struct_size;
    uint32_t reserved0;
    int64_t model_calls;     /* forward passes of the network */
    int64_t steps;           /* steps taken, over all blocks */
    int64_t cached_steps;    /* steps that needed no forward pass */
    int64_t tokens_revealed; /* positions written */
    /* Appended after 1.0.0 (the 40-byte struct of 1.0.0 is still accepted): */
    int64_t tokens_generated;/* positions that were [MASK] in the canvas passed in */
    int64_t tokens_remasked; /* generated tokens masked again (remasking) */
    double calls_per_token;  /* model_calls / tokens_generated; NaN when none */
} td_sample_stats;

TD_API td_status td_sampler_config_init(td_sampler_config *cfg, size_t size);
static inline td_status td_sampler_config_default(td_sampler_config *cfg)
{
    return td_sampler_config_init(cfg, sizeof *cfg);
}

/* A sampler for `m` and the time grid of `s`. Every field of cfg is checked
 * (the message names the first bad one); scratch for max_batch sequences of
 * max_seq_len tokens is allocated through the model's allocator. */
TD_API td_status td_sampler_create(const td_model *m, const td_schedule *s,
                                   const td_sampler_config *cfg, td_sampler **out);
TD_API void td_sampler_free(td_sampler *s);
TD_API size_t td_sampler_errmsg(const td_sampler *s, char *buf, size_t cap);

/* Restart the random stream as if the sampler had been created with `seed`. */
TD_API td_status td_sampler_set_seed(td_sampler *s, uint64_t seed);

/* Generates in place: canvas [batch · seq_len] (row b · seq_len + i is
 * position i of sequence b), every id in [0, vocab_size), batch <=
 * max_batch, seq_len <= max_seq_len. Each call continues the random stream;
 * the sequences of a batch draw from separate streams. cb and stats may be
 * NULL (set stats->struct_size first). Invalid arguments change nothing.
 * On TD_ERR_CANCELLED (from cb) or TD_ERR_NUMERIC (non-finite logits) the
 * canvas holds the steps completed so far, some positions still [MASK],
 * and stats counts them. */
TD_API td_status td_sampler_generate(td_sampler *s, int32_t *canvas, int32_t batch,
                                     int32_t seq_len, td_sampler_callback cb, void *user,
                                     td_sample_stats *stats);

/* Streaming (docs/sampling.md "Streaming and steering"): after every step,
 * for each sequence b whose stable prefix grew, `prefix` [prefix_len] is
 * that sequence's canvas up to its stable prefix, of which the last n_new
 * ids are new. The stable prefix is the longest prefix of positions that no
 * later step can change: fixed ids and tokens that are revealed and, with
 * remasking, can no longer be masked again. It only grows, so what was
 * reported is never revised. Return 0 to continue, anything else to stop
 * with TD_ERR_CANCELLED. Same rules as td_sampler_callback. */
typedef int32_t (*td_sampler_stream_fn)(void *user, int32_t b, const int32_t *prefix,
                                        int32_t prefix_len, int32_t n_new);

/* Called with the logits [n_rows · vocab_size] of the rows about to draw a
 * token (rows[j] = b · seq_len + i, ascending), after guidance and before
 * the token lists of td_sampler_set_tokens; it may modify them (−∞
 * removes a token). Return 0 to continue, anything else to stop with
 * TD_ERR_CANCELLED. It runs on the thread that called generate. */
typedef int32_t (*td_sampler_logits_fn)(void *user, const int32_t *rows, int32_t n_rows,
                                        float *logits, int32_t vocab_size);

typedef enum td_sampler_tokens {
    TD_SAMPLER_TOKENS_ALL   = 0, /* every token may be drawn (clears a list) */
    TD_SAMPLER_TOKENS_BAN   = 1, /* the listed ids are never drawn */
    TD_SAMPLER_TOKENS_ALLOW = 2  /* only the listed ids are drawn */
} td_sampler_tokens;

/* These setters hold for the following td_sampler_generate calls until set
 * again (NULL fn: none); they fail with TD_ERR_UNSUPPORTED for
 * TD_SAMPLER_LEFT_TO_RIGHT and TD_ERR_STATE from the sampler's callback. */
TD_API td_status td_sampler_set_stream(td_sampler *s, td_sampler_stream_fn fn, void *user);
TD_API td_status td_sampler_set_logits_hook(td_sampler *s, td_sampler_logits_fn fn,
                                            void *user);
/* Restricts the tokens drawn: `mode` td_sampler_tokens, ids [n_ids] (NULL
 * with 0 for TD_SAMPLER_TOKENS_ALL). Every id must lie in [0, vocab_size);
 * an allow list may not hold [MASK] or [PAD], and some token besides those
 * must stay drawable; TD_ERR_INVALID_ARG otherwise, and nothing changes. */
TD_API td_status td_sampler_set_tokens(td_sampler *s, int32_t mode, const int32_t *ids,
                                       int32_t n_ids);

/* ---------------------------------------------------------------------------
 * Evaluation (docs/evaluation.md): one estimator for every model, MLM-trained
 * or diffusion-trained. The validation stream `tokens` is cut into
 * consecutive windows of seq_len tokens (a tail shorter than seq_len is left
 * out). The masks depend only on the seed, the window's index in the stream
 * and the masking time, never on the model, the batch size or the thread
 * count: the same model gives the same numbers on every run, and different
 * models are scored on identical masks. Evaluation only reads the model, so
 * several evaluations (and samplers) may share it across threads. Each call
 * allocates its scratch once, through the model's allocator.
 * ------------------------------------------------------------------------- */
typedef struct td_eval_config {
    uint32_t struct_size;
    int32_t seq_len;         /* tokens per window, <= max_seq_len; default 128 */
    int32_t batch_size;      /* windows per forward pass; default 16 */
    int32_t n_threads;       /* threads it computes with; default 1 */
    int32_t n_times;         /* K, times of the NELBO quadrature; default 16 */
    int32_t reserved0;       /* must be 0 */
    uint64_t seed;           /* the masks; default 1 */
    int64_t max_sequences;   /* 0: every window; n: n windows spread evenly
                                over the stream; default 0 */
    double bytes_per_token;  /* for bits per byte (1 for the byte tokenizer);
                                0: unknown; default 0 */
} td_eval_config;

typedef struct td_eval_result {
    uint32_t struct_size;
    uint32_t reserved0;
    double nelbo_nats;       /* NELBO in nats per token: an upper bound on
                                −log p(x) / seq_len, averaged over windows */
    double nelbo_bits;       /* the same in bits per token */
    double bits_per_byte;    /* nelbo_bits / bytes_per_token; NaN when unknown */
    double perplexity_bound; /* exp(nelbo_nats) */
    double std_error_nats;   /* standard error of nelbo_nats across windows;
                                NaN for a single window */
    int64_t n_sequences;     /* windows evaluated */
    int64_t n_tokens;        /* tokens in them: n_sequences · seq_len */
} td_eval_result;

TD_API td_status td_eval_config_init(td_eval_config *cfg, size_t size);
static inline td_status td_eval_config_default(td_eval_config *cfg)
{
    return td_eval_config_init(cfg, sizeof *cfg);
}

/* The NELBO of model `m` on tokens[0..n_tokens) (docs/evaluation.md). For
 * a causal model (cfg.causal = 1) it is instead the exact NLL per token, not
 * a bound: each window shifted right behind [MASK] as the begin token, every
 * position scored once (cfg->n_times and seed are not used). Otherwise, for
 * each window, the K masking times t_k = (k + 1/2)/K, one mask per time
 * (each token hidden with probability t_k), and the cross-entropy of the
 * hidden tokens weighted by 1/(t_k · seq_len). The ids of the evaluated
 * windows must lie in [0, vocab_size) and not be [MASK]. Set
 * out->struct_size first; it is written only on success. A non-finite loss
 * fails with TD_ERR_NUMERIC. */
TD_API td_status td_eval_nelbo(const td_model *m, const int32_t *tokens, int64_t n_tokens,
                               const td_eval_config *cfg, td_eval_result *out);

/* Generative perplexity: how likely a causal `scorer` finds the sequences
 * samples [n_seqs · seq_len] (e.g. a sampler's output). The result is the
 * exact NLL per token under the scorer, as td_eval_nelbo gives it for a
 * causal model: nelbo_nats/bits per token, bits_per_byte with
 * cfg->bytes_per_token, perplexity_bound = exp(NLL) (here the perplexity
 * itself), the standard error across the sequences. cfg may be NULL (the
 * defaults); its seq_len and max_sequences are not used. TD_ERR_INVALID_ARG
 * for a bidirectional scorer, no sequence, seq_len above the scorer's
 * max_seq_len, or an id outside [0, vocab_size) or equal to [MASK]. */
TD_API td_status td_eval_gen_perplexity(const td_model *scorer, const int32_t *samples,
                                        int32_t n_seqs, int32_t seq_len,
                                        const td_eval_config *cfg, td_eval_result *out);

/* The loss curve over masking rates: for each rates[j] ∈ (0, 1], every
 * evaluated window masked once at that rate, and loss_nats[j] = the mean
 * cross-entropy per hidden token (nats), accuracy[j] = the fraction of
 * hidden tokens whose most probable prediction is right (accuracy may be
 * NULL). A rate at which no token is hidden gives NaN for both. The masks
 * at a rate equal to a NELBO time t_k are the NELBO's own; cfg->n_times is
 * not used. Outputs are written only on success. */
TD_API td_status td_eval_rates(const td_model *m, const int32_t *tokens, int64_t n_tokens,
                               const double *rates, int32_t n_rates, const td_eval_config *cfg,
                               double *loss_nats, double *accuracy);
/* (A causal model has no masking rates: td_eval_rates returns
 * TD_ERR_UNSUPPORTED for it.) */

/* ---------------------------------------------------------------------------
 * Text statistics (docs/evaluation.md, "Text statistics"): how a sample
 * reads, without a model — to put next to the NELBO and to generation speed.
 * A word is a maximal run of ASCII letters, digits, apostrophes and bytes
 * >= 0x80, ASCII letters case-folded.
 * ------------------------------------------------------------------------- */
typedef struct td_text_stats {
    uint32_t struct_size;
    uint32_t reserved0;
    int64_t n_bytes;         /* the text's length */
    int64_t n_words;
    double distinct_1;       /* distinct words / words */
    double distinct_2;       /* distinct word pairs / word pairs */
    double distinct_3;       /* the same for word triples; NaN with fewer words */
    double repetition;       /* share of the bytes covered by an occurrence of one
                                of the 10 most frequent byte 4-grams */
    double word_entropy_bits;/* entropy of the word distribution, bits per word */
    double known_words;      /* share of words that also occur in the reference;
                                NaN without one */
} td_text_stats;

/* Statistics of text[0..len); reference (may be NULL, with reference_len 0)
 * is a text whose words count as known, e.g. the training corpus. Scratch
 * comes from alloc (NULL: the C library). Set out->struct_size first. */
TD_API td_status td_text_stats_compute(const char *text, size_t len, const char *reference,
                                       size_t reference_len, const td_allocator *alloc,
                                       td_text_stats *out);

/* ---------------------------------------------------------------------------
 * Latent autoencoder (docs/latent-diffusion.md): the first half of latent
 * text diffusion. A frozen bidirectional model (the "encoder", any td_model
 * with cfg.causal = 0) turns seq_len tokens into per-token features (its
 * final hidden states); a compressor (n_latents learned queries
 * cross-attending to the features) maps them to n_latents normalised latent
 * vectors of width d_latent; a decoder (seq_len learned position queries
 * cross-attending to the latents) maps those back to token logits. Training
 * minimises the reconstruction cross-entropy plus an MSE term that keeps the
 * decoder's reconstructed features near the encoder's, with three
 * augmentations: masking of encoder feature rows, Gaussian noise on them,
 * and dropout of latent features.
 *
 * The encoder is only read: it must outlive the latent model and every
 * trainer of it, and not be trained meanwhile. A latent model is read-only
 * outside its trainer and may then be shared across threads.
 * ------------------------------------------------------------------------- */
typedef struct td_latent_model td_latent_model;

typedef enum td_latent_schedule {
    TD_LATENT_SCHEDULE_COSINE = 0, /* α = cos(πt/2), σ = sin(πt/2) */
    TD_LATENT_SCHEDULE_TAN_D  = 1  /* TEncDM's tan-d: α² = 1/(1 + d²·tan²(πt/2)) */
} td_latent_schedule;

typedef enum td_latent_prediction {
    TD_LATENT_PREDICT_X0 = 0,      /* the denoiser predicts the clean latents */
    TD_LATENT_PREDICT_V  = 1       /* ... v = α·ε − σ·x0 */
} td_latent_prediction;

typedef struct td_latent_config {
    uint32_t struct_size;
    int32_t seq_len;       /* L, tokens per sequence, <= the encoder's max_seq_len;
                              default 128 */
    int32_t n_latents;     /* N latent vectors, 1..seq_len; default 32 */
    int32_t d_latent;      /* d, their width (and the compressor's, decoder's and
                              denoiser's); default 128 */
    int32_t n_heads;       /* must divide d_latent; default 4 */
    int32_t n_enc_layers;  /* compressor blocks; default 2 */
    int32_t n_dec_layers;  /* decoder blocks; default 2 */
    int32_t d_ff;          /* default 4 · d_latent */
    int32_t n_den_layers;  /* denoiser blocks; default 4 */
    int32_t schedule;      /* td_latent_schedule; default TD_LATENT_SCHEDULE_TAN_D */
    int32_t prediction;    /* td_latent_prediction; default TD_LATENT_PREDICT_X0 */
    int32_t self_cond;     /* 1: self-conditioning (the previous estimate of x0 is an
                              input of the denoiser); default 1 */
    double tan_d;          /* d of the tan-d schedule, in (0, 1e6]; default 9 */
} td_latent_config;

TD_API td_status td_latent_config_init(td_latent_config *cfg, size_t size);
static inline td_status td_latent_config_default(td_latent_config *cfg)
{
    return td_latent_config_init(cfg, sizeof *cfg);
}

/* A new latent model (autoencoder and denoiser) over `encoder` with
 * parameters initialised from `seed` (docs/latent-diffusion.md).
 * TD_ERR_INVALID_ARG for a causal encoder or a bad field (n_latents above
 * seq_len, d_latent 0, n_heads not dividing it, seq_len above the encoder's
 * max_seq_len, ...), naming it. It and td_latent_model_load report their
 * failures on the encoder (td_model_errmsg). */
TD_API td_status td_latent_model_create(const td_model *encoder, const td_latent_config *cfg,
                                        uint64_t seed, const td_allocator *alloc,
                                        td_latent_model **out);
TD_API void td_latent_model_free(td_latent_model *lm);
TD_API size_t td_latent_model_errmsg(const td_latent_model *lm, char *buf, size_t cap);
/* The configuration; set cfg->struct_size first. */
TD_API td_status td_latent_model_get_config(const td_latent_model *lm, td_latent_config *cfg);
TD_API td_status td_latent_model_num_params(const td_latent_model *lm, uint64_t *n_params);

/* Checkpoints in the format of docs/format.md (format "libtextdiff-latent"):
 * the configuration, the encoder's width, vocabulary size and [MASK] id, and
 * the autoencoder's tensors — not the encoder, which the loader is given
 * again. Saved atomically. Loading validates every field and fails with
 * TD_ERR_INVALID_ARG when `encoder` is causal or its width, vocabulary size
 * or [MASK] id differ from the saved ones. */
TD_API td_status td_latent_model_save(const td_latent_model *lm, const char *path);
TD_API td_status td_latent_model_load(const char *path, const td_model *encoder,
                                      const td_allocator *alloc, td_latent_model **out);

/* tokens [batch · seq_len] (ids in [0, vocab_size)) -> latents
 * [batch · n_latents · d_latent]: the encoder's features, compressed, without
 * augmentation. Allocates its scratch for the call; n_threads >= 1.
 * TD_ERR_NUMERIC when a latent is not finite (weights that overflow). */
TD_API td_status td_latent_model_encode(const td_latent_model *lm, const int32_t *tokens,
                                        int32_t batch, int32_t n_threads, float *latents);

/* latents [batch · n_latents · d_latent] (finite) -> ids [batch · seq_len],
 * each the most likely token (never [MASK]); logits [batch · seq_len ·
 * vocab_size] receives the logits when not NULL ([MASK] column −∞).
 * TD_ERR_NUMERIC when a logit is not finite (the outputs are still written). */
TD_API td_status td_latent_model_decode(const td_latent_model *lm, const float *latents,
                                        int32_t batch, int32_t n_threads, int32_t *ids,
                                        float *logits);

/* Trainer of either stage: AdamW as td_trainer's (warm-up + cosine). The
 * autoencoder stage updates the compressor and decoder (with the
 * augmentations); the diffusion stage updates only the denoiser, on the
 * latents of the (then frozen) autoencoder: each sequence gets a time t
 * (stratified over the batch), z_t = α·x0 + σ·ε, and with self_cond, half of
 * the sequences (drawn) get the denoiser's own estimate of x0 from a first
 * pass as input (no gradient through it), the others zeros; the loss is the
 * mean squared error of the prediction (x0 or v). The latent model must
 * outlive the trainer. */
typedef struct td_latent_trainer td_latent_trainer;

typedef enum td_latent_stage {
    TD_LATENT_STAGE_AUTOENCODER = 0,
    TD_LATENT_STAGE_DIFFUSION   = 1
} td_latent_stage;

typedef struct td_latent_train_config {
    uint32_t struct_size;
    int32_t batch_size;     /* sequences per step; default 16 */
    int32_t n_threads;      /* default 1 */
    int32_t stage;          /* td_latent_stage: what a step trains; default
                               TD_LATENT_STAGE_AUTOENCODER */
    uint64_t seed;          /* the augmentations' (or the diffusion's times, noise and
                               self-conditioning draws') random stream; default 1 */
    float lr;               /* peak learning rate; default 1e-3 */
    float min_lr;           /* end of the cosine decay; default 1e-4 */
    int64_t warmup_steps;   /* default 100 */
    int64_t total_steps;    /* default 2000 */
    float beta1, beta2;     /* default 0.9, 0.99 */
    float eps;              /* default 1e-8 */
    float weight_decay;     /* on weight matrices only; default 0.01 */
    float clip_norm;        /* 0 = off; default 1 */
    float mse_weight;       /* weight of the feature MSE term, >= 0; default 1 */
    float mask_prob;        /* probability that an encoder feature row (a token's
                               whole feature vector) is zeroed, [0, 1); default 0.15 */
    float noise_std;        /* std of Gaussian noise added to the features, >= 0;
                               default 0.1 */
    float latent_dropout;   /* probability that a latent feature is dropped (the
                               others scaled by 1/(1 − p)), [0, 1); default 0.1 */
    int32_t reserved1;      /* must be 0 */
} td_latent_train_config;

typedef struct td_latent_train_stats {
    uint32_t struct_size;
    uint32_t reserved0;
    int64_t step;           /* steps completed, this one included */
    double loss;            /* autoencoder: ce + mse_weight · mse; diffusion: mse */
    double ce;              /* reconstruction cross-entropy, nats per token (NaN in
                               the diffusion stage) */
    double mse;             /* autoencoder: mean squared feature error; diffusion:
                               mean squared error of the denoiser's prediction */
    double accuracy;        /* share of tokens reconstructed (arg max), under the
                               augmentations (NaN in the diffusion stage) */
    double grad_norm;       /* before clipping */
    double lr;              /* learning rate applied */
} td_latent_train_stats;

TD_API td_status td_latent_train_config_init(td_latent_train_config *cfg, size_t size);
static inline td_status td_latent_train_config_default(td_latent_train_config *cfg)
{
    return td_latent_train_config_init(cfg, sizeof *cfg);
}
TD_API td_status td_latent_trainer_create(td_latent_model *lm, const td_latent_train_config *cfg,
                                          td_latent_trainer **out);
TD_API void td_latent_trainer_free(td_latent_trainer *t);
TD_API size_t td_latent_trainer_errmsg(const td_latent_trainer *t, char *buf, size_t cap);

/* One step on tokens [batch_size · seq_len] (ids in [0, vocab_size)). stats
 * may be NULL (otherwise set its struct_size first). A non-finite loss or
 * gradient returns TD_ERR_NUMERIC and leaves the model and the optimizer
 * untouched. */
TD_API td_status td_latent_trainer_step(td_latent_trainer *t, const int32_t *tokens,
                                        td_latent_train_stats *stats);

/* A resumable checkpoint (atomic): the latent model (it loads with
 * td_latent_model_load), the optimizer's moments for the stage's
 * parameters, the step count, the augmentation generator's state, and the
 * stage, batch size and seed. */
TD_API td_status td_latent_trainer_save(const td_latent_trainer *t, const char *path);

/* Restores a td_latent_trainer_save checkpoint into a trainer whose model
 * has the same configuration and whose stage, batch size and seed are the
 * checkpoint's (TD_ERR_STATE naming the first that differs): the model's
 * parameters, the moments, the step count and the generator, so that the
 * run continues bit for bit as if uninterrupted. TD_ERR_FORMAT or
 * TD_ERR_CORRUPT for a malformed file; on any error the trainer and its
 * model are unchanged. */
TD_API td_status td_latent_trainer_resume(td_latent_trainer *t, const char *path);

/* Generation: Gaussian noise z_1 ~ noise_scale · N(0, I) on the latents,
 * `steps` denoising steps on the grid t_k = k/steps down to 0, the final
 * latents decoded (arg max) to text. */
typedef enum td_latent_sampler_kind {
    TD_LATENT_SAMPLER_DDPM = 0, /* ancestral: z_s ~ q(z_s | z_t, x̂0) */
    TD_LATENT_SAMPLER_DDIM = 1  /* deterministic: z_s = α_s·x̂0 + σ_s·ε̂ */
} td_latent_sampler_kind;

typedef struct td_latent_sample_config {
    uint32_t struct_size;
    int32_t sampler;         /* td_latent_sampler_kind; default TD_LATENT_SAMPLER_DDIM */
    int32_t steps;           /* 1..100,000; default 100 */
    int32_t n_threads;       /* default 1 */
    uint64_t seed;           /* the noise; the same seed gives the same text; default 1 */
    float noise_scale;       /* scale of the initial noise, finite, in [0, 10];
                                default 1 */
    int32_t reserved0;       /* must be 0 */
} td_latent_sample_config;

TD_API td_status td_latent_sample_config_init(td_latent_sample_config *cfg, size_t size);
static inline td_status td_latent_sample_config_default(td_latent_sample_config *cfg)
{
    return td_latent_sample_config_init(cfg, sizeof *cfg);
}

/* batch new sequences: ids [batch · seq_len]; latents [batch · n_latents ·
 * d_latent] receives the final latents when not NULL. Allocates its scratch
 * for the call. Deterministic: same model, configuration and batch, same
 * output. */
TD_API td_status td_latent_model_generate(const td_latent_model *lm,
                                          const td_latent_sample_config *cfg, int32_t batch,
                                          int32_t *ids, float *latents);

/* ---------------------------------------------------------------------------
 * Runtime report (docs/api.md "Runtime report"): the BLAS the library
 * computes its matrix products with, which of its kernels it runs and with
 * how many threads, the CPU's vector extensions, and whether the BLAS runs
 * kernels far below what the CPU supports — worth printing next to any
 * speed figure, since the same build can be several times faster or slower
 * on another machine. Safe to call from any thread at any time.
 * ------------------------------------------------------------------------- */

/* CPU vector extensions (td_runtime_info.cpu_features): what the CPU has and
 * the operating system enables. x86-64 only; 0 on other architectures. */
#define TD_CPU_SSE42       (1u << 0)
#define TD_CPU_AVX         (1u << 1)
#define TD_CPU_AVX2        (1u << 2)
#define TD_CPU_FMA         (1u << 3)
#define TD_CPU_AVX512F     (1u << 4)
#define TD_CPU_AVX512CD    (1u << 5)
#define TD_CPU_AVX512BW    (1u << 6)
#define TD_CPU_AVX512DQ    (1u << 7)
#define TD_CPU_AVX512VL    (1u << 8)
#define TD_CPU_AVX512_VNNI (1u << 9)
#define TD_CPU_AVX512_BF16 (1u << 10)
#define TD_CPU_AMX_TILE    (1u << 11)
#define TD_CPU_AMX_BF16    (1u << 12)
#define TD_CPU_AMX_INT8    (1u << 13)

/* How the BLAS runs its own threads (td_runtime_info.blas_threading); the
 * values are OpenBLAS's openblas_get_parallel(). */
typedef enum td_blas_threading {
    TD_BLAS_THREADING_UNKNOWN = -1,
    TD_BLAS_SERIAL            = 0,
    TD_BLAS_PTHREADS          = 1,
    TD_BLAS_OPENMP            = 2
} td_blas_threading;

/* Strings are NUL-terminated (truncated to fit) and "" when unknown. The
 * layout has no padding and is pinned by a test; fields are only ever
 * appended. */
typedef struct td_runtime_info {
    uint32_t struct_size;     /* set by the caller: sizeof(td_runtime_info) */
    uint32_t cpu_features;    /* TD_CPU_* bits */
    char blas_name[16];       /* "OpenBLAS", "BLIS" or "reference" */
    char blas_version[128];   /* OpenBLAS: openblas_get_config(), e.g. "OpenBLAS
                                 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."; BLIS:
                                 "BLIS 0.9.0" */
    char blas_core[32];       /* the kernels it runs: OpenBLAS's core
                                 ("Haswell", "SkylakeX", "Prescott"), BLIS's
                                 configuration ("haswell", "zen3") */
    int32_t blas_threads;     /* the BLAS's own thread count as the process set
                                 it (OPENBLAS_NUM_THREADS, ...); 0 if unknown.
                                 The library itself threads with n_threads. */
    int32_t blas_threading;   /* td_blas_threading */
    char lib_threading[32];   /* how libtextdiff runs its own n_threads:
                                 "pthread pool" */
    int32_t blas_slow_kernel; /* 1 when the BLAS runs kernels far below what the
                                 CPU supports (e.g. OpenBLAS's SSE3 "Prescott"
                                 kernels on an AVX2 CPU it does not recognise);
                                 blas_advice then says how to fix it */
    int32_t reserved0;        /* 0 */
    char blas_advice[128];    /* e.g. "OpenBLAS runs its Prescott kernels on a CPU
                                 with AVX2 and FMA: set OPENBLAS_CORETYPE=Haswell";
                                 "" when blas_slow_kernel is 0 */
} td_runtime_info;

/* Fills `info` (set info->struct_size = sizeof first; the struct_size
 * rules above apply). Any thread, any time. */
TD_API td_status td_runtime_info_get(td_runtime_info *info);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TEXTDIFF_H */
