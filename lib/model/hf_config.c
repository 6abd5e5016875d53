/* config.json of a Hugging Face BERT, RoBERTa or DistilBERT (docs/hf.md,
 * "config.json") to a model configuration. */
#include <float.h>
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/kernels.h"
#include "model/hf.h"
#include "util/error.h"

static const char *const kind_names[] = { "bert", "roberta", "distilbert" };

/* config.json's integer `key` in [lo, hi] (absent: dflt, or an error when
 * required). */
static td_status get_int(const cJSON *root, const char *key, int required, int64_t dflt,
                         int64_t lo, int64_t hi, int32_t *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (j == NULL || cJSON_IsNull(j)) {
        if (required)
            return tdi_fail(TD_ERR_FORMAT, "config.json: no '%s'", key);
        *out = (int32_t)dflt;
        return TD_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return tdi_fail(TD_ERR_FORMAT, "config.json: '%s' must be a whole number in %lld..%lld",
                        key, (long long)lo, (long long)hi);
    *out = (int32_t)d;
    return TD_OK;
}

static td_status get_bool(const cJSON *root, const char *key, int dflt, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (j == NULL || cJSON_IsNull(j)) {
        *out = dflt;
        return TD_OK;
    }
    if (!cJSON_IsBool(j)) return tdi_fail(TD_ERR_FORMAT, "config.json: '%s' is not a boolean", key);
    *out = cJSON_IsTrue(j);
    return TD_OK;
}

static const char *get_string(const cJSON *root, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static td_status activation_of(const char *act, int32_t *out)
{
    if (act == NULL) return tdi_fail(TD_ERR_FORMAT, "config.json: no activation string");
    if (strcmp(act, "gelu") == 0) {
        *out = TDI_GELU_ERF;
    } else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) {
        *out = TDI_GELU_TANH;
    } else {
        return tdi_fail(TD_ERR_UNSUPPORTED, "config.json: activation '%.64s' is not supported "
                        "(gelu, gelu_new, gelu_pytorch_tanh)", act);
    }
    return TD_OK;
}

/* The configuration of docs/hf.md "config.json" from the parsed file. */
static td_status parse_config(const cJSON *root, int32_t mask_id, tdi_model_config *c,
                              hf_kind *kind)
{
    const char *type = get_string(root, "model_type");
    if (type == NULL) return tdi_fail(TD_ERR_FORMAT, "config.json: no string 'model_type'");
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(type, kind_names[i]) == 0) k = i;
    if (k < 0)
        return tdi_fail(TD_ERR_UNSUPPORTED, "config.json: model_type '%.64s' is not supported "
                        "(bert, roberta, distilbert)", type);
    *kind = (hf_kind)k;
    *c = tdi_model_config_default();
    c->pos_encoding = TDI_POS_LEARNED;
    c->norm_placement = TDI_NORM_POST;
    c->head_transform = 1;
    c->causal = 0;
    int tie = 1;
    TDI_TRY(get_bool(root, "tie_word_embeddings", 1, &tie));
    c->tie_embeddings = tie;
    int32_t max_pos;
    double eps = 1e-12;
    if (k == HF_DISTILBERT) {
        TDI_TRY(get_int(root, "vocab_size", 1, 0, 2, TDI_MAX_VOCAB, &c->vocab_size));
        TDI_TRY(get_int(root, "dim", 1, 0, 1, TDI_MAX_D_MODEL, &c->d_model));
        TDI_TRY(get_int(root, "n_layers", 1, 0, 1, TDI_MAX_LAYERS, &c->n_layers));
        TDI_TRY(get_int(root, "n_heads", 1, 0, 1, TDI_MAX_D_MODEL, &c->n_heads));
        TDI_TRY(get_int(root, "hidden_dim", 1, 0, 1, TDI_MAX_D_FF, &c->d_ff));
        TDI_TRY(get_int(root, "max_position_embeddings", 1, 0, 1, TDI_MAX_SEQ_LEN, &max_pos));
        TDI_TRY(activation_of(get_string(root, "activation"), &c->activation));
        c->type_vocab_size = 0;
        c->pos_offset = 0;
    } else {
        TDI_TRY(get_int(root, "vocab_size", 1, 0, 2, TDI_MAX_VOCAB, &c->vocab_size));
        TDI_TRY(get_int(root, "hidden_size", 1, 0, 1, TDI_MAX_D_MODEL, &c->d_model));
        TDI_TRY(get_int(root, "num_hidden_layers", 1, 0, 1, TDI_MAX_LAYERS, &c->n_layers));
        TDI_TRY(get_int(root, "num_attention_heads", 1, 0, 1, TDI_MAX_D_MODEL, &c->n_heads));
        TDI_TRY(get_int(root, "intermediate_size", 1, 0, 1, TDI_MAX_D_FF, &c->d_ff));
        TDI_TRY(get_int(root, "max_position_embeddings", 1, 0, 1, TDI_MAX_SEQ_LEN + 1024,
                        &max_pos));
        TDI_TRY(get_int(root, "type_vocab_size", 0, 2, 1, TDI_MAX_TYPE_VOCAB,
                        &c->type_vocab_size));
        TDI_TRY(activation_of(get_string(root, "hidden_act"), &c->activation));
        const char *pet = get_string(root, "position_embedding_type");
        if (pet != NULL && strcmp(pet, "absolute") != 0)
            return tdi_fail(TD_ERR_UNSUPPORTED, "config.json: position_embedding_type "
                            "'%.64s' is not supported (absolute)", pet);
        int dec = 0;
        TDI_TRY(get_bool(root, "is_decoder", 0, &dec));
        if (dec) return tdi_fail(TD_ERR_UNSUPPORTED, "config.json: is_decoder is true");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
        if (e != NULL) {
            if (!cJSON_IsNumber(e) || !(e->valuedouble >= FLT_MIN && e->valuedouble <= 1.0))
                return tdi_fail(TD_ERR_FORMAT, "config.json: 'layer_norm_eps' must be a number "
                                "in [FLT_MIN, 1]");
            eps = e->valuedouble;
        }
        c->pos_offset = 0;
        if (k == HF_ROBERTA) {
            /* Positions count from padding_idx + 1 (RoBERTa's embeddings). */
            int32_t pad;
            TDI_TRY(get_int(root, "pad_token_id", 0, 1, 0, TDI_MAX_SEQ_LEN - 1, &pad));
            c->pos_offset = pad + 1;
            if (c->activation != TDI_GELU_ERF) /* the head's GELU is always the erf one */
                return tdi_fail(TD_ERR_UNSUPPORTED, "config.json: a RoBERTa model with "
                                "hidden_act other than 'gelu' is not supported");
        }
    }
    c->layer_norm_eps = (float)eps;
    if (max_pos <= c->pos_offset)
        return tdi_fail(TD_ERR_FORMAT, "config.json: max_position_embeddings = %ld leaves no "
                        "position after the offset %ld", (long)max_pos, (long)c->pos_offset);
    c->max_seq_len = max_pos - c->pos_offset;
    c->mask_id = mask_id;
    if (tdi_model_config_validate(c) != TD_OK)
        return tdi_fail_context(TD_ERR_FORMAT, "config.json: the model it describes is invalid");
    return TD_OK;
}

td_status tdi_hf_parse_config(const char *text, size_t len, int32_t mask_id,
                              tdi_model_config *c, hf_kind *kind)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL)
        return tdi_fail(TD_ERR_FORMAT, "config.json: not valid JSON (at byte %zu)",
                        end ? (size_t)(end - text) : (size_t)0);
    td_status st = cJSON_IsObject(root)
                       ? parse_config(root, mask_id, c, kind)
                       : tdi_fail(TD_ERR_FORMAT, "config.json: not a JSON object");
    cJSON_Delete(root);
    return st;
}
