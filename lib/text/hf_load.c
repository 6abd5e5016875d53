/* Reading Hugging Face tokenizer files: vocab.txt (+ tokenizer_config.json),
 * vocab.json + merges.txt, tokenizer.json. JSON goes through cJSON, which
 * allocates with malloc: each document is parsed, copied into the handle's
 * allocator (tdi_hf_build) and freed before returning (docs/tokenizer.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/corpus.h"
#include "text/hf.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

/* ---- a growing list of token strings -------------------------------------- */

typedef struct toklist {
    const td_allocator *a;
    uint32_t *offsets;
    char *bytes;
    size_t n, off_cap, byte_len, byte_cap;
} toklist;

static td_status toklist_init(toklist *l, const td_allocator *a)
{
    memset(l, 0, sizeof *l);
    l->a = a;
    TDI_TRY(tdi_hf_grow(a, (void **)&l->offsets, &l->off_cap, 1, sizeof *l->offsets));
    l->offsets[0] = 0;
    return TD_OK;
}

static td_status toklist_add(toklist *l, const char *s, size_t n, const char *what)
{
    if (l->n >= TDI_TOKENIZER_MAX_VOCAB)
        return tdi_fail(TD_ERR_FORMAT, "%s: more than %u tokens", what,
                        (unsigned)TDI_TOKENIZER_MAX_VOCAB);
    if (n > TDI_HF_MAX_TOKEN_BYTES)
        return tdi_fail(TD_ERR_FORMAT, "%s: token %zu is longer than %u bytes", what, l->n,
                        (unsigned)TDI_HF_MAX_TOKEN_BYTES);
    TDI_TRY(tdi_hf_grow(l->a, (void **)&l->offsets, &l->off_cap, l->n + 2, sizeof *l->offsets));
    TDI_TRY(tdi_hf_grow(l->a, (void **)&l->bytes, &l->byte_cap, l->byte_len + n + 1, 1));
    memcpy(l->bytes + l->byte_len, s, n);
    l->byte_len += n;
    l->offsets[++l->n] = (uint32_t)l->byte_len;
    return TD_OK;
}

static void toklist_free(toklist *l)
{
    tdi_free(l->a, l->offsets);
    tdi_free(l->a, l->bytes);
}

/* ---- plain-text files ---------------------------------------------------- */

/* The next line of text[*pos..len), without its "\n" or "\r\n"; 0 at the end. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len) return 0;
    const char *s = text + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t k = nl ? (size_t)(nl - s) : len - *pos;
    *pos += k + (nl != NULL);
    if (k > 0 && s[k - 1] == '\r') k--;
    *line = s;
    *n = k;
    return 1;
}

static td_status parse_json(const char *text, size_t len, const char *what, cJSON **out)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out == NULL)
        return tdi_fail(TD_ERR_FORMAT, "%s: malformed JSON near byte %zu", what,
                        end != NULL && end >= text ? (size_t)(end - text) : (size_t)0);
    return TD_OK;
}

static int json_bool(const cJSON *obj, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsTrue(v)) return 1;
    if (cJSON_IsFalse(v)) return 0;
    return dflt;
}

/* BertNormalizer's options: strip_accents null/absent follows lowercase. */
static uint32_t bert_flags(int lower, int strip, int clean, int chinese)
{
    if (strip < 0) strip = lower;
    return (lower ? TDI_HF_LOWERCASE : 0u) | (strip ? TDI_HF_STRIP_ACCENTS : 0u) |
           (clean ? TDI_HF_CLEAN_TEXT : 0u) | (chinese ? TDI_HF_CHINESE_CHARS : 0u);
}

static int json_tristate(const cJSON *obj, const char *key) /* -1: null or absent */
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsTrue(v) ? 1 : cJSON_IsFalse(v) ? 0 : -1;
}

static td_status build(const toklist *l, int kind, uint32_t flags, uint32_t max_chars,
                       const int32_t *merges, size_t n_merges, const char *what,
                       const td_allocator *a, tdi_hf **out)
{
    tdi_hf_spec s = { kind, flags, max_chars, (uint32_t)l->n, l->offsets,
                      l->bytes ? l->bytes : "", (uint32_t)n_merges, merges, what };
    return tdi_hf_build(&s, a, out);
}

td_status tdi_hf_parse_vocab_txt(const char *vocab, size_t vocab_len, const char *config,
                                 size_t config_len, const td_allocator *alloc, tdi_hf **out)
{
    static const char *what = "vocab.txt";
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(vocab != NULL || vocab_len == 0, "%s: vocab is NULL", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    int lower = 1, strip = -1, chinese = 1;
    if (config != NULL) {
        cJSON *j;
        TDI_TRY(parse_json(config, config_len, "tokenizer_config.json", &j));
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return tdi_fail(TD_ERR_FORMAT, "tokenizer_config.json: not a JSON object");
        }
        lower = json_bool(j, "do_lower_case", 1);
        strip = json_tristate(j, "strip_accents");
        chinese = json_bool(j, "tokenize_chinese_chars", 1);
        cJSON_Delete(j);
    }
    toklist l;
    TDI_TRY(toklist_init(&l, &a));
    td_status st = TD_OK;
    size_t pos = 0, n;
    const char *line;
    while (st == TD_OK && next_line(vocab, vocab_len, &pos, &line, &n)) {
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r' ||
                         line[n - 1] == '\v' || line[n - 1] == '\f'))
            n--; /* the tokenizers library trims each line's end */
        st = toklist_add(&l, line, n, what);
    }
    if (st == TD_OK)
        st = build(&l, TDI_TOKENIZER_WORDPIECE,
                   bert_flags(lower, strip, 1, chinese) | TDI_HF_CLEANUP,
                   TDI_HF_DEFAULT_MAX_CHARS, NULL, 0, what, &a, out);
    toklist_free(&l);
    return st;
}

/* vocab.json's object: token -> id, the ids exactly 0..n-1. */
static td_status vocab_from_json(const cJSON *v, const char *what, toklist *l)
{
    if (!cJSON_IsObject(v)) return tdi_fail(TD_ERR_FORMAT, "%s: the vocabulary is not an "
                                            "object of token: id", what);
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n < 1 || n > TDI_TOKENIZER_MAX_VOCAB)
        return tdi_fail(TD_ERR_FORMAT, "%s: %zu tokens, must be in [1, %u]", what, n,
                        (unsigned)TDI_TOKENIZER_MAX_VOCAB);
    const cJSON **by_id = tdi_calloc(l->a, n, sizeof *by_id);
    if (by_id == NULL) return tdi_nomem(__func__, n * sizeof *by_id);
    td_status st = TD_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1.0;
        if (!(d >= 0.0 && d < (double)n) || d != (double)(size_t)d) {
            st = tdi_fail(TD_ERR_FORMAT, "%s: token \"%.64s\" has id %s; the ids of %zu tokens "
                          "must be 0..%zu", what, e->string,
                          cJSON_IsNumber(e) ? "out of range" : "that is not a number", n, n - 1);
            goto done;
        }
        size_t id = (size_t)d;
        if (by_id[id] != NULL) {
            st = tdi_fail(TD_ERR_FORMAT, "%s: tokens \"%.64s\" and \"%.64s\" share id %zu", what,
                          by_id[id]->string, e->string, id);
            goto done;
        }
        by_id[id] = e;
    }
    for (size_t id = 0; id < n && st == TD_OK; id++)
        st = toklist_add(l, by_id[id]->string, strlen(by_id[id]->string), what);
done:
    tdi_free(l->a, by_id);
    return st;
}

/* Looks a merge part up among the tokens gathered so far (before the hash
 * exists): a temporary tdi_hf gives the lookup. */
static td_status merges_from_text(const char *text, size_t len, const tdi_hf *vocab,
                                  const td_allocator *a, int32_t **merges, size_t *n_merges)
{
    static const char *what = "merges.txt";
    int32_t *m = NULL;
    size_t cap = 0, n = 0, pos = 0, k, line_no = 0;
    const char *line;
    while (next_line(text, len, &pos, &line, &k)) {
        line_no++;
        if (k >= 8 && memcmp(line, "#version", 8) == 0) continue;
        const char *sp = memchr(line, ' ', k);
        if (sp == NULL || memchr(sp + 1, ' ', k - (size_t)(sp + 1 - line)) != NULL) {
            tdi_free(a, m);
            return tdi_fail(TD_ERR_FORMAT, "%s: line %zu is not two tokens separated by one "
                            "space", what, line_no);
        }
        int32_t x = tdi_hf_lookup(vocab, line, (size_t)(sp - line));
        int32_t y = tdi_hf_lookup(vocab, sp + 1, k - (size_t)(sp + 1 - line));
        if (x < 0 || y < 0) {
            tdi_free(a, m);
            return tdi_fail(TD_ERR_FORMAT, "%s: line %zu names \"%.*s\", which is not in the "
                            "vocabulary", what, line_no, x < 0 ? (int)(sp - line) :
                            (int)(k - (size_t)(sp + 1 - line)), x < 0 ? line : sp + 1);
        }
        if (n >= TDI_TOKENIZER_MAX_VOCAB) {
            tdi_free(a, m);
            return tdi_fail(TD_ERR_FORMAT, "%s: more than %u merges", what,
                            (unsigned)TDI_TOKENIZER_MAX_VOCAB);
        }
        td_status st = tdi_hf_grow(a, (void **)&m, &cap, 2 * n + 2, sizeof *m);
        if (st != TD_OK) {
            tdi_free(a, m);
            return st;
        }
        m[2 * n] = x;
        m[2 * n + 1] = y;
        n++;
    }
    *merges = m;
    *n_merges = n;
    return TD_OK;
}

/* Builds the vocabulary alone first (its hash finds the merges' parts), then
 * the whole. */
static td_status build_bpe(const toklist *l, uint32_t flags, const char *merges_text,
                           size_t merges_len, const cJSON *merges_json, const char *what,
                           const td_allocator *a, tdi_hf **out);

td_status tdi_hf_parse_vocab_json(const char *vocab, size_t vocab_len, const char *merges,
                                  size_t merges_len, const td_allocator *alloc, tdi_hf **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(vocab != NULL && (merges != NULL || merges_len == 0),
                  "%s: vocab or merges is NULL", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    cJSON *j;
    TDI_TRY(parse_json(vocab, vocab_len, "vocab.json", &j));
    toklist l;
    td_status st = toklist_init(&l, &a);
    if (st == TD_OK) st = vocab_from_json(j, "vocab.json", &l);
    cJSON_Delete(j);
    if (st == TD_OK) st = build_bpe(&l, 0, merges ? merges : "", merges_len, NULL,
                                    "vocab.json + merges.txt", &a, out);
    toklist_free(&l);
    return st;
}

/* ---- tokenizer.json ------------------------------------------------------- */

static const char *json_type(const cJSON *obj) /* "type" of a component, or NULL */
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static td_status unsupported(const char *field, const char *value)
{
    return tdi_fail(TD_ERR_UNSUPPORTED, "tokenizer.json: %s %s is not supported (WordPiece "
                    "with BertNormalizer/BertPreTokenizer/WordPiece decoder, or byte-level BPE "
                    "with ByteLevel pre-tokenizer and decoder)", field, value ? value : "(none)");
}

/* A string field that must be absent, null, or one of two values. */
static int json_str_is(const cJSON *obj, const char *key, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) return a == NULL || b == NULL;
    if (!cJSON_IsString(v)) return 0;
    return (a != NULL && strcmp(v->valuestring, a) == 0) ||
           (b != NULL && strcmp(v->valuestring, b) == 0);
}

static td_status check_added(const cJSON *root, const tdi_hf *h)
{
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added == NULL || cJSON_IsNull(added)) return TD_OK;
    if (!cJSON_IsArray(added))
        return tdi_fail(TD_ERR_FORMAT, "tokenizer.json: added_tokens is not an array");
    const cJSON *e;
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return tdi_fail(TD_ERR_FORMAT, "tokenizer.json: an added token lacks id or content");
        double d = id->valuedouble;
        size_t len = 0;
        const char *t = NULL;
        if (d >= 0.0 && d < (double)tdi_hf_n_tokens(h) && d == (double)(int32_t)d)
            t = tdi_hf_token(h, (int32_t)d, &len);
        if (t == NULL || len != strlen(content->valuestring) ||
            memcmp(t, content->valuestring, len) != 0)
            return tdi_fail(TD_ERR_UNSUPPORTED, "tokenizer.json: added token \"%.64s\" (id %.0f) "
                            "is not the model vocabulary's token of that id; tokens added "
                            "beyond the model's vocabulary are not supported",
                            content->valuestring, d);
    }
    return TD_OK;
}

static td_status tokenizer_json_wordpiece(const cJSON *root, const cJSON *model,
                                          const td_allocator *a, tdi_hf **out)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    uint32_t flags = 0;
    if (norm != NULL && !cJSON_IsNull(norm)) {
        const char *ty = json_type(norm);
        if (ty == NULL || strcmp(ty, "BertNormalizer") != 0) return unsupported("normalizer", ty);
        int lower = json_bool(norm, "lowercase", 1);
        flags = bert_flags(lower, json_tristate(norm, "strip_accents"),
                           json_bool(norm, "clean_text", 1),
                           json_bool(norm, "handle_chinese_chars", 1));
    }
    const char *ty = json_type(pre);
    if (ty == NULL || strcmp(ty, "BertPreTokenizer") != 0) return unsupported("pre_tokenizer", ty);
    ty = json_type(dec);
    if (ty == NULL || strcmp(ty, "WordPiece") != 0 || !json_str_is(dec, "prefix", "##", NULL))
        return unsupported("decoder", ty);
    if (json_bool(dec, "cleanup", 1)) flags |= TDI_HF_CLEANUP;
    if (!json_str_is(model, "continuing_subword_prefix", "##", NULL))
        return unsupported("model.continuing_subword_prefix", "other than \"##\"");
    if (!json_str_is(model, "unk_token", "[UNK]", NULL))
        return unsupported("model.unk_token", "other than \"[UNK]\"");
    uint32_t max_chars = TDI_HF_DEFAULT_MAX_CHARS;
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (mc != NULL) {
        if (!cJSON_IsNumber(mc) || !(mc->valuedouble >= 1.0 && mc->valuedouble <= 1e6))
            return tdi_fail(TD_ERR_FORMAT, "tokenizer.json: max_input_chars_per_word must be a "
                            "number in [1, 1000000]");
        max_chars = (uint32_t)mc->valuedouble;
    }
    toklist l;
    TDI_TRY(toklist_init(&l, a));
    td_status st = vocab_from_json(cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                                   "tokenizer.json", &l);
    if (st == TD_OK)
        st = build(&l, TDI_TOKENIZER_WORDPIECE, flags, max_chars, NULL, 0, "tokenizer.json", a,
                   out);
    toklist_free(&l);
    return st;
}

static td_status merges_from_json(const cJSON *arr, const tdi_hf *vocab, const td_allocator *a,
                                  int32_t **merges, size_t *n_merges)
{
    static const char *what = "tokenizer.json";
    if (!cJSON_IsArray(arr)) return tdi_fail(TD_ERR_FORMAT, "%s: model.merges is not an array",
                                             what);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > TDI_TOKENIZER_MAX_VOCAB)
        return tdi_fail(TD_ERR_FORMAT, "%s: %zu merges, at most %u", what, n,
                        (unsigned)TDI_TOKENIZER_MAX_VOCAB);
    int32_t *m = tdi_malloc(a, (2 * n + 1) * sizeof *m);
    if (m == NULL) return tdi_nomem(__func__, (2 * n + 1) * sizeof *m);
    size_t r = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        if (cJSON_IsString(e)) { /* the older "a b" form */
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (sp != NULL && strchr(sp + 1, ' ') == NULL) {
                x = s;
                nx = (size_t)(sp - s);
                y = sp + 1;
                ny = strlen(y);
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            x = e->child->valuestring;
            nx = strlen(x);
            y = e->child->next->valuestring;
            ny = strlen(y);
        }
        if (x == NULL) {
            tdi_free(a, m);
            return tdi_fail(TD_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]",
                            what, r);
        }
        m[2 * r] = tdi_hf_lookup(vocab, x, nx);
        m[2 * r + 1] = tdi_hf_lookup(vocab, y, ny);
        if (m[2 * r] < 0 || m[2 * r + 1] < 0) {
            int bad_x = m[2 * r] < 0;
            tdi_free(a, m);
            return tdi_fail(TD_ERR_FORMAT, "%s: merge %zu names \"%.*s\", which is not in the "
                            "vocabulary", what, r, (int)(bad_x ? nx : ny), bad_x ? x : y);
        }
        r++;
    }
    *merges = m;
    *n_merges = n;
    return TD_OK;
}

static td_status build_bpe(const toklist *l, uint32_t flags, const char *merges_text,
                           size_t merges_len, const cJSON *merges_json, const char *what,
                           const td_allocator *a, tdi_hf **out)
{
    tdi_hf *vocab;
    TDI_TRY(build(l, TDI_TOKENIZER_BPE, flags, 0, NULL, 0, what, a, &vocab));
    int32_t *m = NULL;
    size_t n = 0;
    td_status st = merges_json != NULL ? merges_from_json(merges_json, vocab, a, &m, &n)
                                       : merges_from_text(merges_text, merges_len, vocab, a, &m,
                                                          &n);
    tdi_hf_free(vocab);
    if (st == TD_OK) st = build(l, TDI_TOKENIZER_BPE, flags, 0, m, n, what, a, out);
    tdi_free(a, m);
    return st;
}

static td_status tokenizer_json_bpe(const cJSON *root, const cJSON *model,
                                    const td_allocator *a, tdi_hf **out)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (norm != NULL && !cJSON_IsNull(norm)) return unsupported("normalizer", json_type(norm));
    const char *ty = json_type(pre);
    if (ty == NULL || strcmp(ty, "ByteLevel") != 0 || !json_bool(pre, "use_regex", 1))
        return unsupported("pre_tokenizer", ty);
    ty = json_type(dec);
    if (ty == NULL || strcmp(ty, "ByteLevel") != 0) return unsupported("decoder", ty);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (drop != NULL && !cJSON_IsNull(drop)) return unsupported("model.dropout", "non-null");
    if (!json_str_is(model, "continuing_subword_prefix", NULL, "") ||
        !json_str_is(model, "end_of_word_suffix", NULL, ""))
        return unsupported("model.continuing_subword_prefix/end_of_word_suffix", "non-empty");
    if (json_bool(model, "byte_fallback", 0)) return unsupported("model.byte_fallback", "true");
    if (json_bool(model, "ignore_merges", 0)) return unsupported("model.ignore_merges", "true");
    if (!json_str_is(model, "unk_token", NULL, "<unk>"))
        return unsupported("model.unk_token", "other than null or \"<unk>\"");
    uint32_t flags = json_bool(pre, "add_prefix_space", 0) ? TDI_HF_ADD_PREFIX_SPACE : 0;
    toklist l;
    TDI_TRY(toklist_init(&l, a));
    td_status st = vocab_from_json(cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                                   "tokenizer.json", &l);
    if (st == TD_OK)
        st = build_bpe(&l, flags, NULL, 0, cJSON_GetObjectItemCaseSensitive(model, "merges"),
                       "tokenizer.json", a, out);
    toklist_free(&l);
    return st;
}

td_status tdi_hf_parse_tokenizer_json(const char *json, size_t len, const td_allocator *alloc,
                                      tdi_hf **out)
{
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_ARG(json != NULL || len == 0, "%s: json is NULL", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    cJSON *root;
    TDI_TRY(parse_json(json ? json : "", len, "tokenizer.json", &root));
    td_status st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *ty = json_type(model);
    if (!cJSON_IsObject(root) || !cJSON_IsObject(model)) {
        st = tdi_fail(TD_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    } else if (ty != NULL && strcmp(ty, "WordPiece") == 0) {
        st = tokenizer_json_wordpiece(root, model, &a, out);
    } else if (ty != NULL && strcmp(ty, "BPE") == 0) {
        st = tokenizer_json_bpe(root, model, &a, out);
    } else {
        st = unsupported("model", ty);
    }
    if (st == TD_OK) {
        st = check_added(root, *out);
        if (st != TD_OK) {
            tdi_hf_free(*out);
            *out = NULL;
        }
    }
    cJSON_Delete(root);
    return st;
}

/* ---- files ----------------------------------------------------------------- */

static td_status read_all(const char *path, const td_allocator *a, char **text, size_t *len)
{
    return tdi_corpus_read_file(path, TDI_HF_MAX_FILE_BYTES, a, text, len);
}

td_status tdi_hf_load_vocab_txt(const char *vocab_path, const char *config_path,
                                const td_allocator *alloc, tdi_hf **out)
{
    char *v = NULL, *c = NULL;
    size_t nv = 0, nc = 0;
    TDI_TRY(read_all(vocab_path, alloc, &v, &nv));
    td_status st = config_path ? read_all(config_path, alloc, &c, &nc) : TD_OK;
    if (st == TD_OK) st = tdi_hf_parse_vocab_txt(v, nv, c, nc, alloc, out);
    tdi_corpus_text_free(alloc, c);
    tdi_corpus_text_free(alloc, v);
    return st;
}

td_status tdi_hf_load_vocab_json(const char *vocab_path, const char *merges_path,
                                 const td_allocator *alloc, tdi_hf **out)
{
    char *v = NULL, *m = NULL;
    size_t nv = 0, nm = 0;
    TDI_TRY(read_all(vocab_path, alloc, &v, &nv));
    td_status st = read_all(merges_path, alloc, &m, &nm);
    if (st == TD_OK) st = tdi_hf_parse_vocab_json(v, nv, m, nm, alloc, out);
    tdi_corpus_text_free(alloc, m);
    tdi_corpus_text_free(alloc, v);
    return st;
}

td_status tdi_hf_load_tokenizer_json(const char *path, const td_allocator *alloc, tdi_hf **out)
{
    char *j = NULL;
    size_t n = 0;
    TDI_TRY(read_all(path, alloc, &j, &n));
    td_status st = tdi_hf_parse_tokenizer_json(j, n, alloc, out);
    tdi_corpus_text_free(alloc, j);
    return st;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

td_status td_tokenizer_load_hf(const char *dir, const td_allocator *alloc, td_tokenizer **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(dir);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    size_t nd = strlen(dir);
    TDI_CHECK_ARG(nd > 0 && nd < 4000, "%s: dir has %zu bytes", __func__, nd);
    char p1[4096 + 32], p2[4096 + 32];
    const char *sep = dir[nd - 1] == '/' ? "" : "/";
    tdi_hf *h = NULL;
    td_status st;
    snprintf(p1, sizeof p1, "%s%stokenizer.json", dir, sep);
    if (exists(p1)) {
        st = tdi_hf_load_tokenizer_json(p1, &a, &h);
    } else {
        snprintf(p1, sizeof p1, "%s%svocab.json", dir, sep);
        snprintf(p2, sizeof p2, "%s%smerges.txt", dir, sep);
        if (exists(p1)) {
            st = tdi_hf_load_vocab_json(p1, p2, &a, &h);
        } else {
            snprintf(p1, sizeof p1, "%s%svocab.txt", dir, sep);
            snprintf(p2, sizeof p2, "%s%stokenizer_config.json", dir, sep);
            if (!exists(p1))
                return tdi_fail(TD_ERR_IO, "%s: %s has no tokenizer.json, vocab.json or "
                                "vocab.txt", __func__, dir);
            st = tdi_hf_load_vocab_txt(p1, exists(p2) ? p2 : NULL, &a, &h);
        }
    }
    if (st != TD_OK) return st;
    return tdi_tokenizer_from_hf(h, &a, out);
}
