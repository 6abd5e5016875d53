/* Hugging Face BERT, RoBERTa and DistilBERT masked language models in and
 * out (docs/hf.md): config.json to a model configuration, the tensors of
 * model.safetensors to the parameter buffer and back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io/checkpoint.h"
#include "io/checkpoint_format.h"
#include "io/corpus.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/model_api.h"
#include "util/alloc.h"
#include "util/error.h"

/* The largest config.json and tokenizer.json read. */
#define HF_MAX_CONFIG ((size_t)1 << 20)
#define HF_MAX_TOKENIZER ((size_t)256 << 20)

static const char *const kind_names[] = { "bert", "roberta", "distilbert" };
static const char *const kind_archs[] = { "BertForMaskedLM", "RobertaForMaskedLM",
                                          "DistilBertForMaskedLM" };

/* ---- tensor names ---------------------------------------------------------- */

/* A library tensor's Hugging Face names: one, or three (q, k, v) stacked. */
typedef struct hf_names {
    const char *lib;
    const char *hf[3][3]; /* [kind][part] */
} hf_names;

/* Per block, after the layer prefix (hf_layer_prefix). */
static const hf_names layer_names[] = {
    { "ln1.w", { { "attention.output.LayerNorm.weight" },
                 { "attention.output.LayerNorm.weight" },
                 { "sa_layer_norm.weight" } } },
    { "ln1.b", { { "attention.output.LayerNorm.bias" },
                 { "attention.output.LayerNorm.bias" },
                 { "sa_layer_norm.bias" } } },
    { "qkv.w", { { "attention.self.query.weight", "attention.self.key.weight",
                   "attention.self.value.weight" },
                 { "attention.self.query.weight", "attention.self.key.weight",
                   "attention.self.value.weight" },
                 { "attention.q_lin.weight", "attention.k_lin.weight",
                   "attention.v_lin.weight" } } },
    { "qkv.b", { { "attention.self.query.bias", "attention.self.key.bias",
                   "attention.self.value.bias" },
                 { "attention.self.query.bias", "attention.self.key.bias",
                   "attention.self.value.bias" },
                 { "attention.q_lin.bias", "attention.k_lin.bias", "attention.v_lin.bias" } } },
    { "proj.w", { { "attention.output.dense.weight" }, { "attention.output.dense.weight" },
                  { "attention.out_lin.weight" } } },
    { "proj.b", { { "attention.output.dense.bias" }, { "attention.output.dense.bias" },
                  { "attention.out_lin.bias" } } },
    { "ln2.w", { { "output.LayerNorm.weight" }, { "output.LayerNorm.weight" },
                 { "output_layer_norm.weight" } } },
    { "ln2.b", { { "output.LayerNorm.bias" }, { "output.LayerNorm.bias" },
                 { "output_layer_norm.bias" } } },
    { "fc.w", { { "intermediate.dense.weight" }, { "intermediate.dense.weight" },
                { "ffn.lin1.weight" } } },
    { "fc.b", { { "intermediate.dense.bias" }, { "intermediate.dense.bias" },
                { "ffn.lin1.bias" } } },
    { "fc2.w", { { "output.dense.weight" }, { "output.dense.weight" }, { "ffn.lin2.weight" } } },
    { "fc2.b", { { "output.dense.bias" }, { "output.dense.bias" }, { "ffn.lin2.bias" } } },
};

static const hf_names global_names[] = {
    { "tok_emb", { { "bert.embeddings.word_embeddings.weight" },
                   { "roberta.embeddings.word_embeddings.weight" },
                   { "distilbert.embeddings.word_embeddings.weight" } } },
    { "pos_emb", { { "bert.embeddings.position_embeddings.weight" },
                   { "roberta.embeddings.position_embeddings.weight" },
                   { "distilbert.embeddings.position_embeddings.weight" } } },
    { "type_emb", { { "bert.embeddings.token_type_embeddings.weight" },
                    { "roberta.embeddings.token_type_embeddings.weight" },
                    { NULL } } },
    { "lnf.w", { { "bert.embeddings.LayerNorm.weight" },
                 { "roberta.embeddings.LayerNorm.weight" },
                 { "distilbert.embeddings.LayerNorm.weight" } } },
    { "lnf.b", { { "bert.embeddings.LayerNorm.bias" },
                 { "roberta.embeddings.LayerNorm.bias" },
                 { "distilbert.embeddings.LayerNorm.bias" } } },
    { "head.w", { { "cls.predictions.transform.dense.weight" }, { "lm_head.dense.weight" },
                  { "vocab_transform.weight" } } },
    { "head.b", { { "cls.predictions.transform.dense.bias" }, { "lm_head.dense.bias" },
                  { "vocab_transform.bias" } } },
    { "head_ln.w", { { "cls.predictions.transform.LayerNorm.weight" },
                     { "lm_head.layer_norm.weight" }, { "vocab_layer_norm.weight" } } },
    { "head_ln.b", { { "cls.predictions.transform.LayerNorm.bias" },
                     { "lm_head.layer_norm.bias" }, { "vocab_layer_norm.bias" } } },
    { "out.w", { { "cls.predictions.decoder.weight" }, { "lm_head.decoder.weight" },
                 { "vocab_projector.weight" } } },
    { "out.b", { { "cls.predictions.bias" }, { "lm_head.bias" }, { "vocab_projector.bias" } } },
};

static const char *const layer_prefix[] = { "bert.encoder.layer.", "roberta.encoder.layer.",
                                            "distilbert.transformer.layer." };

/* Tensors a file may hold that the masked language model does not use:
 * the pooler and next-sentence head of BERT's pre-training checkpoints,
 * buffers, and the decoder's copies of tied tensors. Prefixes. */
static const char *const ignored[3][5] = {
    { "bert.pooler.", "cls.seq_relationship.", "cls.predictions.decoder.bias", NULL },
    { "roberta.pooler.", "lm_head.decoder.bias", NULL },
    { NULL },
};

/* The Hugging Face name of part `part` of library tensor `lib` (NULL: none). */
static int hf_name(hf_kind k, const char *lib, int part, char *buf, size_t cap)
{
    const char *dot = strchr(lib, '.');
    if (lib[0] >= '0' && lib[0] <= '9' && dot) {
        int l = 0;
        for (const char *c = lib; c < dot; c++) l = 10 * l + (*c - '0');
        for (size_t i = 0; i < sizeof layer_names / sizeof *layer_names; i++)
            if (strcmp(layer_names[i].lib, dot + 1) == 0 && layer_names[i].hf[k][part]) {
                snprintf(buf, cap, "%s%d.%s", layer_prefix[k], l, layer_names[i].hf[k][part]);
                return 1;
            }
        return 0;
    }
    for (size_t i = 0; i < sizeof global_names / sizeof *global_names; i++)
        if (strcmp(global_names[i].lib, lib) == 0 && global_names[i].hf[k][part]) {
            snprintf(buf, cap, "%s", global_names[i].hf[k][part]);
            return 1;
        }
    return 0;
}

static int n_parts(const char *lib)
{
    const char *dot = strchr(lib, '.');
    return dot && (strcmp(dot, ".qkv.w") == 0 || strcmp(dot, ".qkv.b") == 0) ? 3 : 1;
}

/* The tensor under `name`, or under its aliases: LayerNorm.gamma/.beta
 * (older BERT checkpoints), the decoder's bias for the output bias. */
static tdi_st_tensor *find_hf(const tdi_st *st, const char *name)
{
    tdi_st_tensor *t = tdi_st_find(st, name);
    if (t) return t;
    char alt[256];
    size_t n = strlen(name);
    if (n > 6 && n < 200 && strstr(name, "LayerNorm.")) {
        int w = strcmp(name + n - 7, ".weight") == 0;
        snprintf(alt, sizeof alt, "%.*s%s", (int)(n - (w ? 7 : 5)), name, w ? ".gamma" : ".beta");
        if ((t = tdi_st_find(st, alt))) return t;
    }
    if (strcmp(name, "cls.predictions.bias") == 0)
        return tdi_st_find(st, "cls.predictions.decoder.bias");
    if (strcmp(name, "lm_head.bias") == 0) return tdi_st_find(st, "lm_head.decoder.bias");
    return NULL;
}

/* ---- config.json ------------------------------------------------------------ */

static td_status read_json(const char *path, size_t max, const td_allocator *a, cJSON **out,
                           int *missing)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    td_status st = tdi_corpus_read_file(path, max, a, &text, &len);
    if (st != TD_OK) {
        if (missing) *missing = st == TD_ERR_IO;
        return tdi_fail_context(st, "'%s'", path);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = end ? (size_t)(end - text) : 0;
    tdi_free(a, text);
    if (root == NULL)
        return tdi_fail(TD_ERR_FORMAT, "'%s': not valid JSON (at byte %zu)", path, at);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tdi_fail(TD_ERR_FORMAT, "'%s': not a JSON object", path);
    }
    *out = root;
    return TD_OK;
}

/* [MASK]'s id from tokenizer.json's added tokens ("[MASK]" or "<mask>"). */
static td_status find_mask_id(const char *dir, const td_allocator *a, int32_t *mask_id)
{
    size_t n = strlen(dir) + 32;
    char *path = tdi_malloc(a, n);
    if (!path) return tdi_nomem("td_model_load_hf", n);
    snprintf(path, n, "%s/tokenizer.json", dir);
    cJSON *root = NULL;
    int missing = 0;
    td_status st = read_json(path, HF_MAX_TOKENIZER, a, &root, &missing);
    tdi_free(a, path);
    if (st != TD_OK) {
        if (missing)
            return tdi_fail(TD_ERR_INVALID_ARG, "td_model_load_hf: mask_id = -1 asks for "
                            "[MASK]'s id from tokenizer.json, and '%s' has none: pass mask_id",
                            dir);
        return st;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *t;
    if (!cJSON_IsArray(added)) added = NULL;
    st = tdi_fail(TD_ERR_INVALID_ARG, "td_model_load_hf: tokenizer.json has no added token "
                  "'[MASK]' or '<mask>': pass mask_id");
    cJSON_ArrayForEach(t, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(t, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        if (cJSON_IsString(content) &&
            (strcmp(content->valuestring, "[MASK]") == 0 ||
             strcmp(content->valuestring, "<mask>") == 0) &&
            cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < TDI_MAX_VOCAB &&
            id->valuedouble == floor(id->valuedouble)) {
            *mask_id = (int32_t)id->valuedouble;
            st = TD_OK;
            break;
        }
    }
    cJSON_Delete(root);
    return st;
}

/* ---- loading ------------------------------------------------------------------ */

/* Every library tensor found with its shape, every file tensor used or
 * ignorable; then (params non-NULL) the data copied and checked finite. */
static td_status map_tensors(const tdi_model *m, hf_kind k, tdi_st *st, float *params)
{
    char name[256];
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        int parts = n_parts(t->name);
        int32_t rows = t->rows / parts;
        for (int part = 0; part < parts; part++) {
            if (!hf_name(k, t->name, part, name, sizeof name))
                return tdi_fail(TD_ERR_INTERNAL, "td_model_load_hf: no name for %s", t->name);
            tdi_st_tensor *s = find_hf(st, name);
            if (s == NULL)
                return tdi_fail(TD_ERR_FORMAT, "model.safetensors: no tensor '%s'", name);
            int vec = t->kind == TDI_TENSOR_BIAS || t->kind == TDI_TENSOR_NORM;
            uint64_t want0 = vec ? (uint64_t)t->cols / (uint64_t)parts : (uint64_t)rows;
            if (s->ndim != (vec ? 1u : 2u) || s->dims[0] != want0 ||
                (!vec && s->dims[1] != (uint64_t)t->cols)) {
                char have[96];
                size_t at = 0;
                for (uint32_t j = 0; j < s->ndim && at < sizeof have - 24; j++)
                    at += (size_t)snprintf(have + at, sizeof have - at, "%s%llu", j ? ", " : "",
                                           (unsigned long long)s->dims[j]);
                have[at] = '\0';
                if (vec)
                    return tdi_fail(TD_ERR_FORMAT, "model.safetensors: tensor '%s' has shape "
                                    "[%s], config.json makes it [%llu]", name, have,
                                    (unsigned long long)want0);
                return tdi_fail(TD_ERR_FORMAT, "model.safetensors: tensor '%s' has shape [%s], "
                                "config.json makes it [%llu, %ld]", name, have,
                                (unsigned long long)want0, (long)t->cols);
            }
            s->used = 1;
            if (params == NULL) continue;
            float *dst = params + t->offset + (size_t)part * (size_t)s->count;
            const float *view = tdi_st_f32_view(s);
            uint64_t bad_at = s->count;
            if (view) {
                memcpy(dst, view, s->count * sizeof *dst);
                for (uint64_t j = 0; j < s->count && bad_at == s->count; j++)
                    if (!isfinite(dst[j])) bad_at = j;
            } else {
                bad_at = tdi_st_read_f32(s, dst);
            }
            if (bad_at != s->count)
                return tdi_fail(TD_ERR_CORRUPT, "model.safetensors: tensor '%s' holds a "
                                "non-finite value at %llu", name, (unsigned long long)bad_at);
        }
    }
    if (params != NULL) return TD_OK;
    for (uint32_t i = 0; i < st->n; i++) {
        tdi_st_tensor *s = &st->tensors[i];
        if (s->used) continue;
        size_t len = strlen(s->name);
        int skip = len >= 12 && strcmp(s->name + len - 12, "position_ids") == 0;
        for (int j = 0; !skip && ignored[k][j]; j++)
            skip = strncmp(s->name, ignored[k][j], strlen(ignored[k][j])) == 0;
        /* The decoder's weight is the word embedding when tied. */
        if (!skip && m->cfg.tie_embeddings && hf_name(k, "out.w", 0, name, sizeof name))
            skip = strcmp(s->name, name) == 0;
        if (!skip)
            return tdi_fail(TD_ERR_FORMAT, "model.safetensors: tensor '%.200s' is not part of "
                            "a %s masked language model (docs/hf.md)", s->name, kind_names[k]);
    }
    return TD_OK;
}

static td_status load_hf(const char *dir, int32_t mask_id, const td_allocator *a,
                         td_model **out)
{
    size_t n = strlen(dir) + 32;
    char *path = tdi_malloc(a, n);
    if (!path) return tdi_nomem("td_model_load_hf", n);
    if (mask_id < 0) {
        td_status st = find_mask_id(dir, a, &mask_id);
        if (st != TD_OK) {
            tdi_free(a, path);
            return st;
        }
    }
    snprintf(path, n, "%s/config.json", dir);
    tdi_model_config c;
    hf_kind kind = HF_BERT;
    char *text = NULL;
    size_t len = 0;
    td_status st = tdi_corpus_read_file(path, HF_MAX_CONFIG, a, &text, &len);
    if (st != TD_OK) st = tdi_fail_context(st, "'%s'", path);
    if (st == TD_OK) st = tdi_hf_parse_config(text, len, mask_id, &c, &kind);
    tdi_free(a, text);
    tdi_st *sf = NULL;
    tdi_model *inner = NULL;
    if (st == TD_OK) {
        snprintf(path, n, "%s/model.safetensors", dir);
        st = tdi_st_open(path, a, &sf);
    }
    if (st == TD_OK) st = tdi_model_create_bare(&c, TDI_WT_F32, a, &inner);
    if (st == TD_OK) st = map_tensors(inner, kind, sf, NULL);
    if (st == TD_OK) st = tdi_model_alloc_params(inner);
    if (st == TD_OK) st = map_tensors(inner, kind, sf, inner->params);
    if (st == TD_OK) st = tdi_model_wrap(inner, out);
    if (st != TD_OK) {
        tdi_model_free(inner);
        if (st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT || st == TD_ERR_UNSUPPORTED)
            st = tdi_fail_context(st, "Hugging Face model '%s'", dir);
    }
    tdi_st_free(sf);
    tdi_free(a, path);
    return st;
}

td_status td_model_load_hf(const char *dir, int32_t mask_id, uint32_t flags,
                           const td_allocator *alloc, td_model **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(dir);
    TDI_CHECK_ARG(dir[0] != '\0', "%s: dir is empty", __func__);
    TDI_CHECK_ARG(mask_id >= -1, "%s: mask_id = %ld must be -1 (from tokenizer.json) or an id",
                  __func__, (long)mask_id);
    TDI_CHECK_ARG(flags == 0, "%s: flags = %lu must be 0", __func__, (unsigned long)flags);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    return load_hf(dir, mask_id, &a, out);
}

/* ---- export ---------------------------------------------------------------- */

/* Which architecture the model is (docs/hf.md "Export"), or an error. */
static td_status kind_of(const tdi_model_config *c, hf_kind *k)
{
    if (c->pos_encoding != TDI_POS_LEARNED || c->norm_placement != TDI_NORM_POST ||
        !c->head_transform || c->causal)
        return tdi_fail(TD_ERR_UNSUPPORTED, "td_model_save_hf: only a bidirectional model with "
                        "learned positions, post-LN and the head transform has a Hugging Face "
                        "architecture (docs/hf.md)");
    if (c->type_vocab_size == 0) {
        if (c->pos_offset != 0 || c->layer_norm_eps != 1e-12f)
            return tdi_fail(TD_ERR_UNSUPPORTED, "td_model_save_hf: without token types the "
                            "model would be a DistilBERT, which needs pos_offset 0 and "
                            "layer_norm_eps 1e-12");
        *k = HF_DISTILBERT;
    } else if (c->pos_offset > 0) {
        if (c->activation != TDI_GELU_ERF || c->pos_offset - 1 >= c->vocab_size)
            return tdi_fail(TD_ERR_UNSUPPORTED, "td_model_save_hf: a position offset makes "
                            "the model a RoBERTa, which needs the erf GELU and a padding id "
                            "pos_offset - 1 below vocab_size");
        *k = HF_ROBERTA;
    } else {
        *k = HF_BERT;
    }
    return TD_OK;
}

static size_t config_json(char *buf, size_t cap, const tdi_model_config *c, hf_kind k)
{
    const char *act = c->activation == TDI_GELU_ERF ? "gelu" : "gelu_new";
    const char *tie = c->tie_embeddings ? "true" : "false";
    int max_pos = c->max_seq_len + c->pos_offset;
    int n;
    if (k == HF_DISTILBERT)
        n = snprintf(buf, cap,
                     "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                     "  \"vocab_size\": %d,\n  \"dim\": %d,\n  \"n_layers\": %d,\n"
                     "  \"n_heads\": %d,\n  \"hidden_dim\": %d,\n  \"activation\": \"%s\",\n"
                     "  \"max_position_embeddings\": %d,\n  \"sinusoidal_pos_embds\": false,\n"
                     "  \"dropout\": 0.1,\n  \"attention_dropout\": 0.1,\n"
                     "  \"initializer_range\": 0.02,\n  \"pad_token_id\": 0,\n"
                     "  \"tie_word_embeddings\": %s\n}\n",
                     kind_archs[k], kind_names[k], (int)c->vocab_size, (int)c->d_model,
                     (int)c->n_layers, (int)c->n_heads, (int)c->d_ff, act, max_pos, tie);
    else
        n = snprintf(buf, cap,
                     "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                     "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n"
                     "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                     "  \"intermediate_size\": %d,\n  \"hidden_act\": \"%s\",\n"
                     "  \"max_position_embeddings\": %d,\n  \"type_vocab_size\": %d,\n"
                     "  \"layer_norm_eps\": %.9g,\n  \"pad_token_id\": %d,\n"
                     "  \"position_embedding_type\": \"absolute\",\n"
                     "  \"hidden_dropout_prob\": 0.1,\n  \"attention_probs_dropout_prob\": 0.1,\n"
                     "  \"initializer_range\": 0.02,\n  \"tie_word_embeddings\": %s\n}\n",
                     kind_archs[k], kind_names[k], (int)c->vocab_size, (int)c->d_model,
                     (int)c->n_layers, (int)c->n_heads, (int)c->d_ff, act, max_pos,
                     (int)c->type_vocab_size, (double)c->layer_norm_eps,
                     k == HF_ROBERTA ? (int)c->pos_offset - 1 : 0, tie);
    return n < 0 ? 0 : (size_t)n;
}

/* One safetensors entry per Hugging Face tensor (q, k and v apart), with
 * names in one block. */
static td_status export_tensors(const tdi_model *m, hf_kind k, const char *path)
{
    const td_allocator *a = &m->alloc;
    size_t cap = 0;
    for (int32_t i = 0; i < m->n_tensors; i++) cap += (size_t)n_parts(m->tensors[i].name);
    tdi_st_out *outs = tdi_calloc(a, cap, sizeof *outs);
    char *names = tdi_malloc(a, cap * 128);
    td_status st = TD_OK;
    if (!outs || !names) st = tdi_nomem("td_model_save_hf", cap * (128 + sizeof *outs));
    size_t n = 0;
    for (int32_t i = 0; st == TD_OK && i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        int parts = n_parts(t->name);
        for (int part = 0; part < parts; part++) {
            char *name = names + n * 128;
            if (!hf_name(k, t->name, part, name, 128)) {
                st = tdi_fail(TD_ERR_INTERNAL, "td_model_save_hf: no name for %s", t->name);
                break;
            }
            tdi_st_out *o = &outs[n++];
            o->name = name;
            size_t count = (size_t)t->rows * (size_t)t->cols / (size_t)parts;
            o->data = m->params + t->offset + (size_t)part * count;
            if (t->kind == TDI_TENSOR_BIAS || t->kind == TDI_TENSOR_NORM) {
                o->ndim = 1;
                o->dims[0] = count;
            } else {
                o->ndim = 2;
                o->dims[0] = (uint64_t)(t->rows / parts);
                o->dims[1] = (uint64_t)t->cols;
            }
        }
    }
    if (st == TD_OK) st = tdi_st_write(path, outs, n, a);
    tdi_free(a, names);
    tdi_free(a, outs);
    return st;
}

td_status td_model_save_hf(const td_model *model, const char *dir, uint32_t flags)
{
    TDI_ENTER(model);
    TDI_CHECK_PTR(model);
    TDI_CHECK_PTR(dir);
    TDI_CHECK_ARG(dir[0] != '\0', "%s: dir is empty", __func__);
    TDI_CHECK_ARG(flags == 0, "%s: flags = %lu must be 0", __func__, (unsigned long)flags);
    const tdi_model *m = model->m;
    if (m->dtype != TDI_WT_F32)
        return tdi_fail(TD_ERR_UNSUPPORTED, "%s: the model's weights are %s; only float32 "
                        "models are written as safetensors", __func__, tdi_wt_name(m->dtype));
    hf_kind k = HF_BERT;
    TDI_TRY(kind_of(&m->cfg, &k));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        char eb[128];
        return tdi_fail(TD_ERR_IO, "%s: cannot create directory '%s': %s", __func__, dir,
                        tdi_errno_text(errno, eb, sizeof eb));
    }
    size_t n = strlen(dir) + 32;
    size_t jlen = config_json(NULL, 0, &m->cfg, k);
    char *path = tdi_malloc(&m->alloc, n);
    char *json = tdi_malloc(&m->alloc, jlen + 1);
    td_status st = TD_OK;
    if (!path || !json) st = tdi_nomem(__func__, n + jlen + 1);
    if (st == TD_OK) {
        /* The weights first: a directory whose config.json is new has new
         * weights beside it. */
        snprintf(path, n, "%s/model.safetensors", dir);
        st = export_tensors(m, k, path);
    }
    if (st == TD_OK) {
        config_json(json, jlen + 1, &m->cfg, k);
        snprintf(path, n, "%s/config.json", dir);
        const void *parts[1] = { json };
        size_t sizes[1] = { jlen };
        st = tdi_write_atomic(&m->alloc, path, parts, sizes, 1);
    }
    tdi_free(&m->alloc, json);
    tdi_free(&m->alloc, path);
    return st;
}
