/* The sampler of docs/sampling.md: ancestral (MDLM) and confidence-ordered
 * (LLaDA, Dream) unmasking of a canvas, optionally block by block; and, for
 * a causal model, left to right with a key/value cache (sampler_ar.c).
 *
 * A step first decides which rows need a token: for ancestral sampling the
 * rows that the schedule reveals (decided without the model), for the
 * confidence strategies every masked row of the block. Only then, and only
 * if there is such a row, does it run the network — and not even then when
 * the canvas is the one of the last forward pass, whose hidden states are
 * still in the workspace. Logits are computed for those rows alone, a chunk
 * at a time.
 *
 * The toolbox on top (docs/sampling.md): confidence thresholds (Fast-dLLM),
 * ReMDM remasking of generated tokens, classifier-free guidance (a second
 * workspace runs the canvas with its fixed positions masked), token lists,
 * a logits hook and a stream of the stable prefix. */
#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/draw.h"
#include "diffusion/sampler_ar.h"
#include "diffusion/schedule.h"
#include "kernels/kernels.h"
#include "model/model_api.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/error.h"
#include "util/rng.h"

#define MAX_STEPS 1000000
#define MAX_BATCH 65536
#define MAX_THREADS 1024
/* Logit rows per output-head product: enough for an efficient GEMM, and a
 * bounded scratch for large vocabularies. */
#define CHUNK_ROWS 256
#define CHUNK_FLOATS (1 << 22)

/* A row of the step's list and the score that orders it. */
typedef struct pos_score {
    double score;
    int32_t idx; /* into the step's row list */
} pos_score;

struct td_sampler {
    tdi_errslot err;
    td_allocator alloc;
    int in_callback;            /* generate's callback is running */
    const tdi_model *model;     /* read only; not owned */
    tdi_schedule schedule;      /* a copy */
    td_sampler_config cfg;      /* validated, max_seq_len resolved */
    tdi_draw_config draw;
    tdi_rng master;             /* one draw per generate call seeds its streams */
    tdi_workspace *ws;          /* the diffusion strategies' */
    tdi_workspace *ws_u;        /* guidance: the forward of the unconditional canvas */
    tdi_kv_cache *kv;           /* left to right's */
    tdi_pool *pool;             /* its n_threads; workers start at the first call */
    int32_t chunk;              /* logit rows per head product */
    int32_t n_max;              /* max_batch · max_seq_len */
    void *scratch;              /* one block for the arrays below */
    tdi_rng *seq_rng;           /* [max_batch] this call's stream per sequence */
    int32_t *seg_start;         /* [max_batch] each sequence's slice of `rows` */
    int32_t *seg_len;           /* [max_batch] */
    int32_t *n_reveal;          /* [max_batch] confidence strategies: k this step */
    int32_t *rows;              /* [n_max] rows that draw a token this step, ascending */
    double *u_tok;              /* [n_max] their token uniforms */
    double *u_pos;              /* [n_max] their position uniforms (alg_temperature) */
    int32_t *tokens;            /* [n_max] their drawn tokens */
    double *conf;               /* [n_max] and confidences */
    pos_score *order;           /* [n_max] */
    int32_t *changed;           /* [n_max] rows written this step, ascending */
    uint8_t *key_mask;          /* [n_max] 0 at [PAD] */
    float *logits;              /* [chunk, V] */
    double *w;                  /* [chunk, V] draw weights */
    tdi_logit_rank *rank;       /* [chunk, V], when top-k or top-p rank tokens */
    tdi_kv_buf approx;          /* approx_cache: keys, values [L, n_max, d] and scratch */
    uint8_t *free_row;          /* [n_max] 1: [MASK] when the call began (generated) */
    int32_t *remasked;          /* [n_max] rows masked again this step, ascending */
    int32_t *merged;            /* [n_max] scratch to merge `changed` and `remasked` */
    int32_t *reported;          /* [max_batch] stable prefix streamed so far */
    int32_t *canvas_u;          /* [n_max] guidance: fixed positions masked */
    float *logits_u;            /* [chunk, V] guidance: their logits */
    uint8_t *token_ok;          /* [2V] draw only ids with 1; the second half stages */
    int32_t token_mode;         /* td_sampler_tokens */
    td_sampler_stream_fn stream;
    void *stream_user;
    td_sampler_logits_fn hook;
    void *hook_user;
};

/* What one generate call has done so far. */
typedef struct run_state {
    const uint8_t *key_mask;    /* s->key_mask when the canvas has [PAD], else NULL */
    int fresh;                  /* the workspace holds a forward of the canvas */
    int kv_valid;               /* approx_cache: kept keys and values of this block */
    int32_t n_changed;
    int64_t model_calls, steps, cached_steps, revealed, generated, remasked;
} run_state;

/* Sizes of the public structs in 1.0: smaller ones are refused. */
#define SAMPLER_CONFIG_V1 64
#define SAMPLE_STATS_V1 40

static td_sampler_config default_config(void)
{
    td_sampler_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.strategy = TD_SAMPLER_ANCESTRAL;
    c.steps = 64;
    c.temperature = 1.0f;
    c.top_k = 0;
    c.top_p = 1.0f;
    c.seed = 1;
    c.block_len = 0;
    c.n_threads = 1;
    c.alg_temperature = 0.0f;
    c.pad_id = -1;
    c.max_batch = 1;
    c.max_seq_len = 0;
    c.cache = 1;
    c.remask = TD_SAMPLER_REMASK_NONE;
    c.remask_t_on = 0.55f;
    c.remask_t_off = 0.05f;
    c.remask_alpha_on = 0.9f;
    c.approx_cache = TD_SAMPLER_APPROX_OFF;
    c.eos_id = -1;
    return c;
}

td_status td_sampler_config_init(td_sampler_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_sampler_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, SAMPLER_CONFIG_V1, __func__);
}

/* The fields appended after 1.0.0 (docs/sampling.md). */
static td_status check_toolbox(const td_sampler_config *c)
{
    const char *f = "td_sampler_create";
    const int ranked = c->strategy == TD_SAMPLER_MAX_PROB || c->strategy == TD_SAMPLER_MARGIN;
    const int diffusion = c->strategy != TD_SAMPLER_LEFT_TO_RIGHT;
    TDI_CHECK_ARG(isfinite(c->threshold) && c->threshold >= 0.0f && c->threshold <= 1.0f,
                  "%s: cfg->threshold = %g is outside (0, 1] (0 = off)", f,
                  (double)c->threshold);
    TDI_CHECK_ARG(isfinite(c->factor) && c->factor >= 0.0f,
                  "%s: cfg->factor = %g must be finite and > 0 (0 = off)", f, (double)c->factor);
    TDI_CHECK_ARG(c->threshold == 0.0f || c->factor == 0.0f,
                  "%s: cfg->threshold and cfg->factor are two rules: set one", f);
    const int fast = c->threshold > 0.0f || c->factor > 0.0f;
    TDI_CHECK_ARG(!fast || ranked,
                  "%s: cfg->threshold and cfg->factor apply to TD_SAMPLER_MAX_PROB and "
                  "TD_SAMPLER_MARGIN only (strategy %d)", f, (int)c->strategy);
    TDI_CHECK_ARG(!fast || c->alg_temperature == 0.0f,
                  "%s: cfg->threshold or cfg->factor rank positions by confidence: "
                  "cfg->alg_temperature must be 0", f);
    TDI_CHECK_ARG(c->remask >= TD_SAMPLER_REMASK_NONE && c->remask <= TD_SAMPLER_REMASK_LOOP,
                  "%s: cfg->remask = %d is not a td_sampler_remask", f, (int)c->remask);
    TDI_CHECK_ARG(isfinite(c->eta) && c->eta >= 0.0f && c->eta <= 1.0f,
                  "%s: cfg->eta = %g is outside [0, 1]", f, (double)c->eta);
    TDI_CHECK_ARG(c->eta == 0.0f || c->remask != TD_SAMPLER_REMASK_NONE,
                  "%s: cfg->eta = %g needs a cfg->remask schedule", f, (double)c->eta);
    TDI_CHECK_ARG(isfinite(c->remask_t_on) && isfinite(c->remask_t_off) &&
                      c->remask_t_off >= 0.0f && c->remask_t_off < c->remask_t_on &&
                      c->remask_t_on <= 1.0f,
                  "%s: cfg->remask_t_off = %g and cfg->remask_t_on = %g must satisfy "
                  "0 <= t_off < t_on <= 1", f, (double)c->remask_t_off,
                  (double)c->remask_t_on);
    TDI_CHECK_ARG(c->remask_alpha_on > 0.0f && c->remask_alpha_on < 1.0f,
                  "%s: cfg->remask_alpha_on = %g is outside (0, 1)", f,
                  (double)c->remask_alpha_on);
    TDI_CHECK_ARG(isfinite(c->guidance), "%s: cfg->guidance = %g must be finite", f,
                  (double)c->guidance);
    TDI_CHECK_ARG(diffusion || (!fast && c->remask == TD_SAMPLER_REMASK_NONE &&
                                c->guidance == 0.0f),
                  "%s: TD_SAMPLER_LEFT_TO_RIGHT takes no threshold, factor, remask or "
                  "guidance", f);
    TDI_CHECK_ARG(c->approx_cache >= TD_SAMPLER_APPROX_OFF &&
                      c->approx_cache <= TD_SAMPLER_APPROX_DUAL,
                  "%s: cfg->approx_cache = %d is not a td_sampler_approx", f,
                  (int)c->approx_cache);
    if (c->approx_cache != TD_SAMPLER_APPROX_OFF) {
        TDI_CHECK_ARG(diffusion, "%s: cfg->approx_cache is for the diffusion strategies, not "
                      "TD_SAMPLER_LEFT_TO_RIGHT (which has an exact cache)", f);
        TDI_CHECK_ARG(c->block_len > 0, "%s: cfg->approx_cache = %d keeps the keys and values "
                      "outside the current block: it needs cfg->block_len > 0", f,
                      (int)c->approx_cache);
        TDI_CHECK_ARG(c->guidance == 0.0f, "%s: cfg->approx_cache does not combine with "
                      "cfg->guidance", f);
    }
    if (c->eos_id != -1) {
        TDI_CHECK_ARG(c->pad_id >= 0, "%s: cfg->eos_id = %d needs cfg->pad_id: what follows "
                      "the end becomes [PAD]", f, (int)c->eos_id);
        TDI_CHECK_ARG(diffusion, "%s: cfg->eos_id is for the diffusion strategies, not "
                      "TD_SAMPLER_LEFT_TO_RIGHT", f);
        TDI_CHECK_ARG(c->remask == TD_SAMPLER_REMASK_NONE || c->eta == 0.0f,
                      "%s: cfg->eos_id does not combine with remasking (an end once drawn "
                      "is final)", f);
    }
    return TD_OK;
}

static td_status check_config(const td_sampler_config *c, const tdi_model_config *mc)
{
    const char *f = "td_sampler_create";
    TDI_CHECK_ARG(c->strategy >= TD_SAMPLER_ANCESTRAL &&
                      c->strategy <= TD_SAMPLER_LEFT_TO_RIGHT,
                  "%s: cfg->strategy = %d is not a td_sampler_strategy", f, (int)c->strategy);
    TDI_CHECK_ARG(c->strategy != TD_SAMPLER_LEFT_TO_RIGHT || mc->causal,
                  "%s: cfg->strategy is TD_SAMPLER_LEFT_TO_RIGHT, which needs a causal model "
                  "(this one is bidirectional)", f);
    TDI_CHECK_ARG(c->strategy == TD_SAMPLER_LEFT_TO_RIGHT || !mc->causal,
                  "%s: the model is causal: it generates with TD_SAMPLER_LEFT_TO_RIGHT only, "
                  "not with cfg->strategy = %d (a diffusion strategy)", f, (int)c->strategy);
    TDI_CHECK_ARG(c->steps >= 1 && c->steps <= MAX_STEPS,
                  "%s: cfg->steps = %d is outside [1, %d]", f, (int)c->steps, MAX_STEPS);
    TDI_CHECK_ARG(isfinite(c->temperature) && c->temperature >= 0.0f,
                  "%s: cfg->temperature = %g must be finite and >= 0", f,
                  (double)c->temperature);
    TDI_CHECK_ARG(c->top_k >= 0, "%s: cfg->top_k = %d must be >= 0 (0 = off)", f,
                  (int)c->top_k);
    TDI_CHECK_ARG(c->top_p > 0.0f && c->top_p <= 1.0f,
                  "%s: cfg->top_p = %g is outside (0, 1]", f, (double)c->top_p);
    TDI_CHECK_ARG(c->block_len >= 0, "%s: cfg->block_len = %d must be >= 0 (0 = one block)",
                  f, (int)c->block_len);
    TDI_CHECK_ARG(c->n_threads >= 1 && c->n_threads <= MAX_THREADS,
                  "%s: cfg->n_threads = %d is outside [1, %d]", f, (int)c->n_threads,
                  MAX_THREADS);
    TDI_CHECK_ARG(isfinite(c->alg_temperature) && c->alg_temperature >= 0.0f,
                  "%s: cfg->alg_temperature = %g must be finite and >= 0", f,
                  (double)c->alg_temperature);
    TDI_CHECK_ARG(c->alg_temperature == 0.0f || c->strategy != TD_SAMPLER_ANCESTRAL,
                  "%s: cfg->alg_temperature applies to the confidence strategies only", f);
    TDI_CHECK_ARG(c->pad_id == -1 || (c->pad_id >= 0 && c->pad_id < mc->vocab_size),
                  "%s: cfg->pad_id = %d is neither -1 nor in [0, vocab_size = %d)", f,
                  (int)c->pad_id, (int)mc->vocab_size);
    TDI_CHECK_ARG(c->pad_id != mc->mask_id, "%s: cfg->pad_id = %d is the model's mask_id", f,
                  (int)c->pad_id);
    TDI_CHECK_ARG(c->eos_id == -1 || (c->eos_id >= 0 && c->eos_id < mc->vocab_size),
                  "%s: cfg->eos_id = %d is neither -1 nor in [0, vocab_size = %d)", f,
                  (int)c->eos_id, (int)mc->vocab_size);
    TDI_CHECK_ARG(c->eos_id == -1 || (c->eos_id != mc->mask_id && c->eos_id != c->pad_id),
                  "%s: cfg->eos_id = %d is the model's mask_id or cfg->pad_id", f,
                  (int)c->eos_id);
    TDI_CHECK_ARG(mc->vocab_size - 1 - (c->pad_id >= 0) >= 1,
                  "%s: the vocabulary has no token besides [MASK] and [PAD] to generate", f);
    TDI_CHECK_ARG(c->max_batch >= 1 && c->max_batch <= MAX_BATCH,
                  "%s: cfg->max_batch = %d is outside [1, %d]", f, (int)c->max_batch,
                  MAX_BATCH);
    TDI_CHECK_ARG(c->max_seq_len >= 0 && c->max_seq_len <= mc->max_seq_len,
                  "%s: cfg->max_seq_len = %d is outside [0, the model's max_seq_len = %d]", f,
                  (int)c->max_seq_len, (int)mc->max_seq_len);
    int64_t seq = c->max_seq_len > 0 ? c->max_seq_len : mc->max_seq_len;
    TDI_CHECK_ARG((int64_t)c->max_batch * seq <= INT32_MAX / 4,
                  "%s: cfg->max_batch x max_seq_len = %lld is too large", f,
                  (long long)c->max_batch * seq);
    TDI_CHECK_ARG(c->cache == 0 || c->cache == 1, "%s: cfg->cache = %d must be 0 or 1", f,
                  (int)c->cache);
    return check_toolbox(c);
}

void td_sampler_free(td_sampler *s)
{
    if (s == NULL) return;
    tdi_errslot_destroy(&s->err);
    td_allocator a = s->alloc;
    tdi_pool_free(s->pool); /* joins its threads */
    tdi_workspace_free(s->ws);
    tdi_workspace_free(s->ws_u);
    tdi_kv_cache_free(s->kv);
    tdi_free(&a, s->scratch);
    tdi_free(&a, s);
}

size_t td_sampler_errmsg(const td_sampler *s, char *buf, size_t cap)
{
    return tdi_errslot_copy(s != NULL ? &s->err : NULL, buf, cap);
}

/* The scratch block (tdi_carve_block). */
static void layout(void *obj, tdi_carver *c)
{
    td_sampler *s = obj;
    size_t B = (size_t)s->cfg.max_batch, n = (size_t)s->n_max;
    size_t cv = (size_t)s->chunk * (size_t)s->model->cfg.vocab_size;
    s->seq_rng = tdi_carve(c, B, sizeof *s->seq_rng);
    s->seg_start = tdi_carve(c, B, sizeof *s->seg_start);
    s->seg_len = tdi_carve(c, B, sizeof *s->seg_len);
    s->n_reveal = tdi_carve(c, B, sizeof *s->n_reveal);
    s->rows = tdi_carve(c, n, sizeof *s->rows);
    s->u_tok = tdi_carve(c, n, sizeof *s->u_tok);
    s->u_pos = tdi_carve(c, n, sizeof *s->u_pos);
    s->tokens = tdi_carve(c, n, sizeof *s->tokens);
    s->conf = tdi_carve(c, n, sizeof *s->conf);
    s->order = tdi_carve(c, n, sizeof *s->order);
    s->changed = tdi_carve(c, n, sizeof *s->changed);
    s->key_mask = tdi_carve(c, n, sizeof *s->key_mask);
    s->logits = tdi_carve(c, cv, sizeof *s->logits);
    s->w = tdi_carve(c, cv, sizeof *s->w);
    s->rank = tdi_draw_ranks(&s->draw) ? tdi_carve(c, cv, sizeof *s->rank) : NULL;
    s->free_row = tdi_carve(c, n, sizeof *s->free_row);
    s->remasked = tdi_carve(c, n, sizeof *s->remasked);
    s->merged = tdi_carve(c, n, sizeof *s->merged);
    s->reported = tdi_carve(c, B, sizeof *s->reported);
    s->token_ok = tdi_carve(c, 2 * (size_t)s->model->cfg.vocab_size, sizeof *s->token_ok);
    int guided = s->cfg.guidance != 0.0f;
    s->canvas_u = guided ? tdi_carve(c, n, sizeof *s->canvas_u) : NULL;
    s->logits_u = guided ? tdi_carve(c, cv, sizeof *s->logits_u) : NULL;
    if (s->cfg.approx_cache != TD_SAMPLER_APPROX_OFF) {
        size_t d = (size_t)s->model->cfg.d_model, L = (size_t)s->model->cfg.n_layers;
        s->approx.k = tdi_carve(c, L * n * d, sizeof(float));
        s->approx.v = tdi_carve(c, L * n * d, sizeof(float));
        s->approx.hout = tdi_carve(c, n * d, sizeof(float));
        int32_t T = s->cfg.max_seq_len;
        s->approx.scores = tdi_carve(c, (size_t)s->cfg.n_threads *
                                            tdi_attention_window_floats(T, T), sizeof(float));
        s->approx.n_slices = s->cfg.n_threads;
    }
}

static tdi_confidence confidence_of(int32_t strategy)
{
    switch (strategy) {
    case TD_SAMPLER_MAX_PROB: return TDI_CONF_PROB;
    case TD_SAMPLER_MARGIN: return TDI_CONF_MARGIN;
    case TD_SAMPLER_ENTROPY: return TDI_CONF_NEG_ENTROPY;
    default: return TDI_CONF_NONE;
    }
}

td_status td_sampler_create(const td_model *m, const td_schedule *sch,
                            const td_sampler_config *cfg, td_sampler **out)
{
    TDI_ENTER(m);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(m);
    TDI_CHECK_PTR(sch);
    TDI_CHECK_PTR(cfg);
    td_sampler_config c = default_config();
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, SAMPLER_CONFIG_V1, __func__, "cfg"));
    TDI_CHECK_ARG(c.reserved0 == 0, "%s: cfg->reserved0 must be 0", __func__);
    const tdi_model *im = m->m;
    TDI_TRY(check_config(&c, &im->cfg));
    if (c.max_seq_len == 0) c.max_seq_len = im->cfg.max_seq_len;

    td_sampler *s = tdi_calloc(&im->alloc, 1, sizeof *s);
    if (s == NULL) return tdi_nomem(__func__, sizeof *s);
    tdi_errslot_init(&s->err);
    s->alloc = im->alloc;
    s->model = im;
    s->schedule = *tdi_schedule_of(sch);
    s->cfg = c;
    s->draw.temperature = c.temperature;
    /* A top-k that keeps every candidate (all ids but [MASK] and [PAD]) is no
     * filter: it draws the very tokens top_k = 0 draws. */
    int32_t candidates = im->cfg.vocab_size - 1 - (c.pad_id >= 0);
    s->draw.top_k = c.top_k >= candidates ? 0 : c.top_k;
    s->draw.top_p = c.top_p;
    s->draw.exclude = c.pad_id;
    s->draw.confidence = confidence_of(c.strategy);
    tdi_rng_seed(&s->master, c.seed);
    s->n_max = c.max_batch * c.max_seq_len;
    int32_t by_vocab = CHUNK_FLOATS / im->cfg.vocab_size;
    s->chunk = CHUNK_ROWS;
    if (s->chunk > by_vocab) s->chunk = by_vocab > 0 ? by_vocab : 1;
    if (s->chunk > s->n_max) s->chunk = s->n_max;
    const int ltr = c.strategy == TD_SAMPLER_LEFT_TO_RIGHT;
    if (ltr) s->chunk = c.max_batch; /* a step's logits: one row per sequence */

    td_status st = tdi_carve_block(&s->alloc, layout, s, &s->scratch, __func__);
    if (st == TD_OK && ltr)
        st = tdi_kv_cache_create(im, c.max_batch, c.max_seq_len, c.n_threads, &s->kv);
    else if (st == TD_OK)
        st = tdi_workspace_create(im, c.max_batch, c.max_seq_len, s->chunk, c.n_threads, 0,
                                      &s->ws);
    if (st == TD_OK && c.guidance != 0.0f)
        st = tdi_workspace_create(im, c.max_batch, c.max_seq_len, s->chunk, c.n_threads, 0,
                                  &s->ws_u);
    if (st == TD_OK) st = tdi_pool_create(&s->alloc, c.n_threads, &s->pool);
    if (st != TD_OK) {
        td_sampler_free(s);
        return st;
    }
    *out = s;
    return TD_OK;
}

/* The callback sees the sampler mid-generation: it may not restart it. */
static td_status check_not_in_callback(const td_sampler *s, const char *func)
{
    if (s->in_callback)
        return tdi_fail(TD_ERR_STATE, "%s: called from the sampler's own callback", func);
    return TD_OK;
}

td_status td_sampler_set_seed(td_sampler *s, uint64_t seed)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_TRY(check_not_in_callback(s, __func__));
    tdi_rng_seed(&s->master, seed);
    return TD_OK;
}

static td_status check_setter(const td_sampler *s, const char *func)
{
    TDI_TRY(check_not_in_callback(s, func));
    if (s->kv != NULL)
        return tdi_fail(TD_ERR_UNSUPPORTED,
                        "%s: TD_SAMPLER_LEFT_TO_RIGHT has no stream, logits hook or token list",
                        func);
    return TD_OK;
}

td_status td_sampler_set_stream(td_sampler *s, td_sampler_stream_fn fn, void *user)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_TRY(check_setter(s, __func__));
    s->stream = fn;
    s->stream_user = user;
    return TD_OK;
}

td_status td_sampler_set_logits_hook(td_sampler *s, td_sampler_logits_fn fn, void *user)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_TRY(check_setter(s, __func__));
    s->hook = fn;
    s->hook_user = user;
    return TD_OK;
}

td_status td_sampler_set_tokens(td_sampler *s, int32_t mode, const int32_t *ids, int32_t n_ids)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_TRY(check_setter(s, __func__));
    const char *f = __func__;
    const int32_t V = s->model->cfg.vocab_size, mask = s->model->cfg.mask_id;
    const int32_t pad = s->cfg.pad_id;
    TDI_CHECK_ARG(mode >= TD_SAMPLER_TOKENS_ALL && mode <= TD_SAMPLER_TOKENS_ALLOW,
                  "%s: mode = %d is not a td_sampler_tokens", f, (int)mode);
    TDI_CHECK_ARG(n_ids >= 0, "%s: n_ids = %d is negative", f, (int)n_ids);
    TDI_CHECK_ARG(mode != TD_SAMPLER_TOKENS_ALL || n_ids == 0,
                  "%s: TD_SAMPLER_TOKENS_ALL takes no ids (n_ids = %d)", f, (int)n_ids);
    TDI_CHECK_ARG(mode == TD_SAMPLER_TOKENS_ALL || n_ids > 0,
                  "%s: an empty list: use TD_SAMPLER_TOKENS_ALL", f);
    if (n_ids > 0) TDI_CHECK_PTR(ids);
    for (int32_t j = 0; j < n_ids; j++) {
        TDI_CHECK_ARG(ids[j] >= 0 && ids[j] < V, "%s: ids[%d] = %d is outside [0, vocab_size "
                      "= %d)", f, (int)j, (int)ids[j], (int)V);
        TDI_CHECK_ARG(mode != TD_SAMPLER_TOKENS_ALLOW || (ids[j] != mask && ids[j] != pad),
                      "%s: ids[%d] = %d is %s, which is never drawn: it cannot be allowed", f,
                      (int)j, (int)ids[j], ids[j] == mask ? "[MASK]" : "[PAD]");
    }
    uint8_t *stage = s->token_ok + V;
    memset(stage, mode != TD_SAMPLER_TOKENS_ALLOW, (size_t)V);
    for (int32_t j = 0; j < n_ids; j++) stage[ids[j]] = mode == TD_SAMPLER_TOKENS_ALLOW;
    int32_t left = 0;
    for (int32_t i = 0; i < V; i++) left += stage[i] && i != mask && i != pad;
    TDI_CHECK_ARG(left > 0, "%s: the list leaves no token to draw", f);
    memcpy(s->token_ok, stage, (size_t)V);
    s->token_mode = mode;
    return TD_OK;
}

/* An open-interval uniform, so that the Gumbel transform stays finite. */
static double open_uniform(tdi_rng *r)
{
    return ((double)(tdi_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}

/* 1 − α(t) of the loop variant, whose α is the schedule's compressed to reach
 * alpha_on at t_on, held there down to t_off, then brought from alpha_on to
 * 1 at t = 0 (docs/sampling.md "Remasking"). */
static double loop_mask_prob(const td_sampler *s, double t)
{
    const double on = s->cfg.remask_t_on, off = s->cfg.remask_t_off;
    const double a_on = s->cfg.remask_alpha_on;
    if (t > on) return 1.0 - a_on * tdi_schedule_alpha(&s->schedule, (t - on) / (1.0 - on));
    if (t > off) return 1.0 - a_on;
    return off > 0.0 ? (1.0 - a_on) * tdi_schedule_mask_prob(&s->schedule, t / off) : 0.0;
}

/* The step from t to sn: the reveal probability *p of a masked position and
 * the remasking probability σ of a generated one (ReMDM). Without
 * remasking, p is the plain sampler's. */
static double step_probs(const td_sampler *s, double t, double sn, double *p)
{
    const td_sampler_config *c = &s->cfg;
    if (c->remask == TD_SAMPLER_REMASK_NONE || c->eta == 0.0f) {
        *p = tdi_schedule_reveal_prob(&s->schedule, t, sn);
        return 0.0;
    }
    const int loop = c->remask == TD_SAMPLER_REMASK_LOOP;
    double m_t = loop ? loop_mask_prob(s, t) : tdi_schedule_mask_prob(&s->schedule, t);
    double m_s = loop ? loop_mask_prob(s, sn) : tdi_schedule_mask_prob(&s->schedule, sn);
    double a_t = 1.0 - m_t;
    double sigma_max = a_t > 0.0 && m_s < a_t ? m_s / a_t : 1.0;
    double eta = c->eta, sigma;
    if (c->remask == TD_SAMPLER_REMASK_RESCALE)
        sigma = eta * sigma_max;
    else if (loop && !(t <= c->remask_t_on && t > c->remask_t_off))
        sigma = 0.0;
    else
        sigma = eta < sigma_max ? eta : sigma_max;
    /* (α(s) − (1 − σ) α(t)) / (1 − α(t)) with α(s) − α(t) = m_t − m_s */
    double q = m_t > 0.0 ? (m_t - m_s + sigma * a_t) / m_t : 1.0;
    *p = q < 0.0 ? 0.0 : q > 1.0 ? 1.0 : q;
    return sigma;
}

/* Remasking: each generated row of [lo, hi) that holds a token is listed
 * with probability sigma (one draw each, after the step's other draws). */
static int32_t list_remask(td_sampler *s, const int32_t *canvas, int32_t batch,
                           int32_t seq_len, int32_t lo, int32_t hi, double sigma)
{
    const int32_t mask = s->model->cfg.mask_id;
    int32_t n = 0;
    if (sigma <= 0.0) return 0;
    for (int32_t b = 0; b < batch; b++)
        for (int32_t i = lo; i < hi; i++) {
            int32_t row = b * seq_len + i;
            if (!s->free_row[row] || canvas[row] == mask) continue;
            if (tdi_rng_f64(&s->seq_rng[b]) < sigma) s->remasked[n++] = row;
        }
    return n;
}

/* Ancestral: each masked row of [lo, hi) is revealed with probability p
 * (one draw, skipped when p is 0 or 1), and a revealed row draws a token
 * uniform. Returns the number of rows listed. */
static int32_t list_ancestral(td_sampler *s, const int32_t *canvas, int32_t batch,
                              int32_t seq_len, int32_t lo, int32_t hi, double p)
{
    const int32_t mask = s->model->cfg.mask_id;
    int32_t n = 0;
    for (int32_t b = 0; b < batch; b++) {
        tdi_rng *r = &s->seq_rng[b];
        for (int32_t i = lo; i < hi; i++) {
            int32_t row = b * seq_len + i;
            if (canvas[row] != mask) continue;
            int reveal = p >= 1.0 || (p > 0.0 && tdi_rng_f64(r) < p);
            if (!reveal) continue;
            s->rows[n] = row;
            s->u_tok[n] = tdi_rng_f64(r);
            n++;
        }
    }
    return n;
}

/* Confidence strategies: every masked row of [lo, hi) draws a token (and,
 * with alg_temperature, a position uniform); sequence b will reveal
 * n_reveal[b] of its seg_len[b] rows. */
static int32_t list_confidence(td_sampler *s, const int32_t *canvas, int32_t batch,
                               int32_t seq_len, int32_t lo, int32_t hi, double p, int last)
{
    const int32_t mask = s->model->cfg.mask_id;
    const int gumbel = s->cfg.alg_temperature > 0.0f;
    int32_t n = 0;
    for (int32_t b = 0; b < batch; b++) {
        tdi_rng *r = &s->seq_rng[b];
        s->seg_start[b] = n;
        for (int32_t i = lo; i < hi; i++) {
            int32_t row = b * seq_len + i;
            if (canvas[row] != mask) continue;
            s->rows[n] = row;
            s->u_tok[n] = tdi_rng_f64(r);
            if (gumbel) s->u_pos[n] = open_uniform(r);
            n++;
        }
        int32_t m = n - s->seg_start[b];
        s->seg_len[b] = m;
        int32_t k = m;
        if (!last && m > 0 && (s->cfg.threshold > 0.0f || s->cfg.factor > 0.0f)) {
            k = -1; /* decided from the confidences (fast_counts) */
        } else if (!last && m > 0) {
            double want = floor((double)m * p + 0.5);
            k = want < 1.0 ? 1 : want > (double)m ? m : (int32_t)want;
        }
        s->n_reveal[b] = k;
    }
    return n;
}

typedef struct draw_job {
    td_sampler *s;
    int32_t at; /* the chunk's first entry of the step's row list */
} draw_job;

/* Rows [at + begin, at + end) of the list: a token each, or −1 when its
 * logits cannot be drawn from. */
static void draw_chunk(void *ctx, long begin, long end, int tid)
{
    const draw_job *j = ctx;
    td_sampler *s = j->s;
    const int32_t V = s->model->cfg.vocab_size;
    (void)tid;
    for (long i = begin; i < end; i++) {
        size_t o = (size_t)i * (size_t)V;
        int32_t e = j->at + (int32_t)i;
        double conf = 0.0;
        if (s->token_mode != TD_SAMPLER_TOKENS_ALL)
            for (int32_t v = 0; v < V; v++)
                if (!s->token_ok[v]) s->logits[o + (size_t)v] = -INFINITY;
        if (tdi_draw_token(&s->draw, s->logits + o, V, s->u_tok[e], s->w + o,
                           s->rank ? s->rank + o : NULL, &s->tokens[e], &conf) != 0)
            s->tokens[e] = -1;
        s->conf[e] = conf;
    }
}

/* Guidance: l_c + w·(l_c − l_u) where both are finite; elsewhere (the
 * [MASK] column, −∞ in both) l_c. */
static void guide(td_sampler *s, int32_t len)
{
    const float w = s->cfg.guidance;
    size_t n = (size_t)len * (size_t)s->model->cfg.vocab_size;
    for (size_t i = 0; i < n; i++) {
        float c = s->logits[i], u = s->logits_u[i];
        if (isfinite(c) && isfinite(u)) s->logits[i] = c + w * (c - u);
    }
}

/* tokens and confidences of rows[0..n) from the last forward pass. */
static td_status draw_rows(td_sampler *s, int32_t n)
{
    const int32_t V = s->model->cfg.vocab_size;
    for (int32_t at = 0; at < n; at += s->chunk) {
        int32_t len = n - at < s->chunk ? n - at : s->chunk;
        tdi_model_logits(s->model, s->ws, s->rows + at, len, s->logits, s->pool);
        if (s->ws_u != NULL) {
            tdi_model_logits(s->model, s->ws_u, s->rows + at, len, s->logits_u, s->pool);
            guide(s, len);
        }
        if (s->hook != NULL) {
            s->in_callback = 1;
            int32_t stop = s->hook(s->hook_user, s->rows + at, len, s->logits, V);
            s->in_callback = 0;
            TDI_ENTER(s); /* the hook may have called the library */
            if (stop != 0)
                return tdi_fail(TD_ERR_CANCELLED,
                                "td_sampler_generate: cancelled by the logits hook");
        }
        draw_job j = { s, at };
        tdi_pool_for(s->pool, len, draw_chunk, &j);
        for (int32_t i = len - 1; i >= 0; i--)
            if (s->tokens[at + i] < 0)
                return tdi_fail(TD_ERR_NUMERIC,
                                "td_sampler_generate: the logits at row %d are not finite, "
                                "or leave no token to draw (the model's, or after guidance, "
                                "the logits hook and the token list)", (int)s->rows[at + i]);
    }
    return TD_OK;
}

static int conf_desc_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Fast-dLLM: how many positions each sequence reveals, from the
 * confidences — those above the threshold, or the factor rule's n — and at
 * least one. */
static void fast_counts(td_sampler *s, int32_t batch)
{
    const double thr = s->cfg.threshold, fac = s->cfg.factor;
    for (int32_t b = 0; b < batch; b++) {
        if (s->n_reveal[b] >= 0) continue;
        int32_t start = s->seg_start[b], len = s->seg_len[b], k = 0;
        if (thr > 0.0) {
            for (int32_t j = 0; j < len; j++) k += s->conf[start + j] > thr;
        } else {
            /* (n + 1)(1 − c_(n)) grows with n: the n that satisfy it are 1..k */
            double *c = (double *)s->order + start; /* scratch: order is twice the size */
            for (int32_t j = 0; j < len; j++) c[j] = s->conf[start + j];
            qsort(c, (size_t)len, sizeof *c, conf_desc_cmp);
            while (k < len && (double)(k + 2) * (1.0 - c[k]) < fac) k++;
        }
        s->n_reveal[b] = k > 0 ? k : 1;
    }
}

static int order_cmp(const void *a, const void *b)
{
    const pos_score *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int int_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Writes the tokens of the n_reveal[b] best-scoring rows of each sequence
 * (ties to the leftmost); returns how many rows it wrote. */
static int32_t commit_confidence(td_sampler *s, int32_t *canvas, int32_t batch)
{
    const double at = s->cfg.alg_temperature;
    int32_t n = 0;
    for (int32_t b = 0; b < batch; b++) {
        int32_t start = s->seg_start[b], len = s->seg_len[b], k = s->n_reveal[b];
        if (k == 0) continue;
        int32_t *sel = s->changed + n;
        if (k == len) {
            for (int32_t j = 0; j < len; j++) sel[j] = start + j;
        } else {
            pos_score *o = s->order + start;
            for (int32_t j = 0; j < len; j++) {
                int32_t idx = start + j;
                double score = s->conf[idx];
                /* Gumbel-top-k: the k largest of score/τ + Gumbel noise are
                 * k draws without replacement with probability ∝ exp(score/τ). */
                if (at > 0.0) score = score / at - log(-log(s->u_pos[idx]));
                o[j].score = score;
                o[j].idx = idx;
            }
            qsort(o, (size_t)len, sizeof *o, order_cmp);
            for (int32_t j = 0; j < k; j++) sel[j] = o[j].idx;
            qsort(sel, (size_t)k, sizeof *sel, int_cmp);
        }
        for (int32_t j = 0; j < k; j++) {
            int32_t idx = sel[j];
            canvas[s->rows[idx]] = s->tokens[idx];
            sel[j] = s->rows[idx];
        }
        n += k;
    }
    return n;
}

/* Merges the step's remasked (or padded) rows into `changed` (both
 * ascending; a row in both is listed once); returns the merged count. */
static int32_t merge_changed(td_sampler *s, int32_t n_rev, int32_t n_rem)
{
    int32_t i = 0, j = 0, o = 0;
    while (i < n_rev || j < n_rem) {
        if (i < n_rev && j < n_rem && s->changed[i] == s->remasked[j]) j++;
        s->merged[o++] = j >= n_rem || (i < n_rev && s->changed[i] < s->remasked[j])
                             ? s->changed[i++] : s->remasked[j++];
    }
    memcpy(s->changed, s->merged, (size_t)o * sizeof *s->changed);
    return o;
}

/* Guidance's canvas: the fixed positions (prompt, infill, not [PAD]) masked. */
static void uncond_canvas(td_sampler *s, const int32_t *canvas, int32_t n)
{
    const int32_t mask = s->model->cfg.mask_id, pad = s->cfg.pad_id;
    for (int32_t i = 0; i < n; i++)
        s->canvas_u[i] = s->free_row[i] || canvas[i] == pad ? canvas[i] : mask;
}

/* End of text: in each sequence every generated position after the first
 * eos_id becomes [PAD] (not attended to from then on). Lists the rows it
 * writes in s->remasked (ascending); returns how many. */
static int32_t end_at_eos(td_sampler *s, int32_t *canvas, int32_t batch, int32_t seq_len,
                          run_state *rs)
{
    const int32_t eos = s->cfg.eos_id, pad = s->cfg.pad_id;
    int32_t n = 0;
    for (int32_t b = 0; b < batch; b++) {
        int32_t r = b * seq_len, end = r + seq_len, i = r;
        while (i < end && canvas[i] != eos) i++;
        for (i++; i < end; i++) {
            if (!s->free_row[i] || canvas[i] == pad) continue;
            canvas[i] = pad;
            s->key_mask[i] = 0;
            s->remasked[n++] = i;
        }
    }
    if (n > 0) rs->key_mask = s->key_mask;
    return n;
}

/* Step k of `steps` over the block [lo, hi): from t = 1 − k/steps to
 * s = 1 − (k+1)/steps, exactly 0 at the last step. */
static td_status step(td_sampler *s, int32_t *canvas, int32_t batch, int32_t seq_len,
                      int32_t lo, int32_t hi, int32_t k, run_state *rs)
{
    const uint8_t *key_mask = rs->key_mask;
    const int32_t steps = s->cfg.steps;
    const int last = k + 1 == steps;
    const double t = 1.0 - (double)k / steps, sn = last ? 0.0 : 1.0 - (double)(k + 1) / steps;
    double p;
    const double sigma = step_probs(s, t, sn, &p);
    const int ancestral = s->cfg.strategy == TD_SAMPLER_ANCESTRAL;
    int32_t n = ancestral ? list_ancestral(s, canvas, batch, seq_len, lo, hi, p)
                          : list_confidence(s, canvas, batch, seq_len, lo, hi, p, last);
    int32_t n_rem = list_remask(s, canvas, batch, seq_len, lo, hi, sigma);
    rs->steps++;
    rs->n_changed = 0;
    int run = s->cfg.cache ? n > 0 && !rs->fresh : 1;
    if (run && s->cfg.approx_cache != TD_SAMPLER_APPROX_OFF) {
        if (rs->kv_valid) { /* the block's rows (dual) or the block and what follows */
            int32_t w_hi = s->cfg.approx_cache == TD_SAMPLER_APPROX_DUAL ? hi : seq_len;
            TDI_TRY(tdi_model_forward_window(s->model, s->ws, canvas, batch, seq_len, lo,
                                             w_hi, key_mask, &s->approx, s->pool));
        } else {
            TDI_TRY(tdi_model_forward_kv(s->model, s->ws, canvas, batch, seq_len, key_mask,
                                         &s->approx, s->pool));
            rs->kv_valid = 1;
        }
        rs->model_calls++;
        rs->fresh = 1;
    } else if (run) {
        TDI_TRY(tdi_model_forward(s->model, s->ws, canvas, batch, seq_len, key_mask,
                                  s->pool));
        rs->model_calls++;
        if (s->ws_u != NULL) {
            uncond_canvas(s, canvas, batch * seq_len);
            TDI_TRY(tdi_model_forward(s->model, s->ws_u, s->canvas_u, batch, seq_len,
                                      key_mask, s->pool));
            rs->model_calls++;
        }
        rs->fresh = 1;
    } else {
        rs->cached_steps++;
    }
    int32_t n_rev = 0;
    if (n > 0) {
        TDI_TRY(draw_rows(s, n));
        if (ancestral) {
            for (int32_t i = 0; i < n; i++) {
                canvas[s->rows[i]] = s->tokens[i];
                s->changed[i] = s->rows[i];
            }
            n_rev = n;
        } else {
            fast_counts(s, batch);
            n_rev = commit_confidence(s, canvas, batch);
        }
    }
    const int32_t mask = s->model->cfg.mask_id;
    for (int32_t j = 0; j < n_rem; j++) canvas[s->remasked[j]] = mask;
    rs->remasked += n_rem;
    /* the rows an end pads go where remasking's would (the two exclude each other) */
    if (s->cfg.eos_id >= 0) n_rem = end_at_eos(s, canvas, batch, seq_len, rs);
    rs->n_changed = n_rem > 0 ? merge_changed(s, n_rev, n_rem) : n_rev;
    if (rs->n_changed > 0) rs->fresh = 0;
    rs->revealed += n_rev;
    return TD_OK;
}

/* Does canvas row `row` hold a token that no later step can change? */
static int is_final(const td_sampler *s, const int32_t *canvas, int32_t row, int remask_open)
{
    if (canvas[row] == s->model->cfg.mask_id) return 0;
    return !s->free_row[row] || !remask_open;
}

/* Streams each sequence's stable prefix as it grows. remask_open: a later
 * step of the block [lo, hi) may still mask a generated token there. */
static td_status stream_prefixes(td_sampler *s, const int32_t *canvas, int32_t batch,
                                 int32_t seq_len, int32_t lo, int32_t hi, int remask_open)
{
    for (int32_t b = 0; b < batch; b++) {
        const int32_t *row = canvas + (size_t)b * seq_len;
        int32_t from = s->reported[b], len = from;
        while (len < seq_len &&
               is_final(s, canvas, b * seq_len + len, remask_open && len >= lo && len < hi))
            len++;
        if (len == from) continue;
        s->reported[b] = len;
        s->in_callback = 1;
        int32_t stop = s->stream(s->stream_user, b, row, len, len - from);
        s->in_callback = 0;
        TDI_ENTER(s); /* the stream may have called the library */
        if (stop != 0)
            return tdi_fail(TD_ERR_CANCELLED, "td_sampler_generate: cancelled by the stream");
    }
    return TD_OK;
}

/* May a step after step k of a block still mask a generated token again? */
static int remask_open_after(const td_sampler *s, int32_t k)
{
    const td_sampler_config *c = &s->cfg;
    if (c->remask == TD_SAMPLER_REMASK_NONE || c->eta == 0.0f || k + 1 >= c->steps) return 0;
    /* the loop remasks only at steps that begin inside (t_off, t_on] */
    return c->remask != TD_SAMPLER_REMASK_LOOP ||
           1.0 - (double)(k + 1) / c->steps > c->remask_t_off;
}

/* Fast rules end a block once it has no [MASK] left. */
static int block_filled(const td_sampler *s, const int32_t *canvas, int32_t batch,
                        int32_t seq_len, int32_t lo, int32_t hi)
{
    const int32_t mask = s->model->cfg.mask_id;
    for (int32_t b = 0; b < batch; b++)
        for (int32_t i = lo; i < hi; i++)
            if (canvas[b * seq_len + i] == mask) return 0;
    return 1;
}

static td_status check_generate(const td_sampler *s, const int32_t *canvas, int32_t batch,
                                int32_t seq_len, const td_sample_stats *stats)
{
    const char *f = "td_sampler_generate";
    TDI_CHECK_ARG(batch >= 1 && batch <= s->cfg.max_batch,
                  "%s: batch = %d is outside [1, max_batch = %d]", f, (int)batch,
                  (int)s->cfg.max_batch);
    TDI_CHECK_ARG(seq_len >= 1 && seq_len <= s->cfg.max_seq_len,
                  "%s: seq_len = %d is outside [1, max_seq_len = %d]", f, (int)seq_len,
                  (int)s->cfg.max_seq_len);
    if (stats != NULL)
        TDI_TRY(tdi_struct_size_check(stats->struct_size, SAMPLE_STATS_V1, f, "stats"));
    int32_t n_blocks = s->cfg.block_len > 0 ? (seq_len - 1) / s->cfg.block_len + 1 : 1;
    TDI_CHECK_ARG((int64_t)n_blocks * s->cfg.steps <= INT32_MAX,
                  "%s: %d blocks x %d steps exceed %d steps", f, (int)n_blocks,
                  (int)s->cfg.steps, INT32_MAX);
    const int32_t V = s->model->cfg.vocab_size;
    for (int32_t i = 0; i < batch * seq_len; i++)
        TDI_CHECK_ARG(canvas[i] >= 0 && canvas[i] < V,
                      "%s: canvas[%d] = %d is outside [0, vocab_size = %d)", f, (int)i,
                      (int)canvas[i], (int)V);
    return TD_OK;
}

static void write_stats(td_sample_stats *stats, const run_state *rs)
{
    td_sample_stats full;
    memset(&full, 0, sizeof full);
    full.model_calls = rs->model_calls;
    full.steps = rs->steps;
    full.cached_steps = rs->cached_steps;
    full.tokens_revealed = rs->revealed;
    full.tokens_generated = rs->generated;
    full.tokens_remasked = rs->remasked;
    full.calls_per_token = rs->generated > 0 ? (double)rs->model_calls / (double)rs->generated
                                             : NAN;
    tdi_struct_out(stats, stats->struct_size, &full, sizeof full);
}

/* The callback of a left-to-right run (sampler_ar.h). */
typedef struct ar_notify {
    td_sampler *s;
    td_sampler_callback cb;
    void *user;
    const int32_t *canvas;
    int32_t batch, seq_len;
} ar_notify;

static int32_t ar_callback(void *ctx, int32_t step, int32_t n_steps, int32_t n_changed)
{
    ar_notify *a = ctx;
    a->s->in_callback = 1;
    int32_t stop = a->cb(a->user, step, n_steps, a->canvas, a->batch, a->seq_len,
                         a->s->changed, n_changed);
    a->s->in_callback = 0;
    TDI_ENTER(a->s); /* the callback may have called the library */
    return stop;
}

static td_status generate_ltr(td_sampler *s, int32_t *canvas, int32_t batch, int32_t seq_len,
                              td_sampler_callback cb, void *user, run_state *rs)
{
    ar_notify note = { s, cb, user, canvas, batch, seq_len };
    tdi_ar_sampler a = { s->model, s->kv, &s->draw, s->seq_rng, s->pool, s->logits, s->w,
                         s->rank, s->tokens, s->changed, cb ? ar_callback : NULL, &note };
    tdi_ar_counts counts;
    td_status st = tdi_ar_generate(&a, canvas, batch, seq_len, &counts);
    rs->model_calls = counts.model_calls;
    rs->steps = counts.steps;
    rs->revealed = counts.revealed;
    return st;
}

td_status td_sampler_generate(td_sampler *s, int32_t *canvas, int32_t batch, int32_t seq_len,
                              td_sampler_callback cb, void *user, td_sample_stats *stats)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_TRY(check_not_in_callback(s, __func__));
    TDI_CHECK_PTR(canvas);
    TDI_TRY(check_generate(s, canvas, batch, seq_len, stats));
    const int32_t n = batch * seq_len, block = s->cfg.block_len, steps = s->cfg.steps;
    const int32_t n_blocks = block > 0 ? (seq_len - 1) / block + 1 : 1;
    const int32_t n_steps = n_blocks * steps;

    run_state rs;
    memset(&rs, 0, sizeof rs);
    if (s->cfg.pad_id >= 0) {
        int any = 0;
        for (int32_t i = 0; i < n; i++) {
            s->key_mask[i] = canvas[i] != s->cfg.pad_id;
            any |= !s->key_mask[i];
        }
        if (any) rs.key_mask = s->key_mask;
    }
    uint64_t call_seed = tdi_rng_u64(&s->master);
    for (int32_t b = 0; b < batch; b++) tdi_rng_stream(&s->seq_rng[b], call_seed, (uint64_t)b);

    const int32_t mask = s->model->cfg.mask_id;
    for (int32_t i = 0; i < n; i++) {
        s->free_row[i] = canvas[i] == mask;
        rs.generated += s->free_row[i];
    }
    memset(s->reported, 0, (size_t)batch * sizeof *s->reported);
    if (s->cfg.eos_id >= 0) (void)end_at_eos(s, canvas, batch, seq_len, &rs); /* a given end */
    const int fast = s->cfg.threshold > 0.0f || s->cfg.factor > 0.0f;
    td_status st = TD_OK;
    if (s->kv != NULL) {
        st = generate_ltr(s, canvas, batch, seq_len, cb, user, &rs);
        if (stats != NULL) write_stats(stats, &rs);
        return st;
    }
    for (int32_t blk = 0; blk < n_blocks && st == TD_OK; blk++) {
        int32_t lo = block > 0 ? blk * block : 0;
        int32_t hi = block > 0 && seq_len - lo > block ? lo + block : seq_len;
        if (s->cfg.approx_cache != TD_SAMPLER_APPROX_OFF) /* refreshed at every block */
            rs.kv_valid = rs.fresh = 0;
        for (int32_t k = 0; k < steps && st == TD_OK; k++) {
            if (fast && block_filled(s, canvas, batch, seq_len, lo, hi)) break;
            st = step(s, canvas, batch, seq_len, lo, hi, k, &rs);
            if (st == TD_OK && s->stream != NULL) {
                int open = remask_open_after(s, k) &&
                           !(fast && block_filled(s, canvas, batch, seq_len, lo, hi));
                st = stream_prefixes(s, canvas, batch, seq_len, lo, hi, open);
            }
            if (st != TD_OK || cb == NULL) continue;
            s->in_callback = 1;
            int32_t stop = cb(user, blk * steps + k, n_steps, canvas, batch, seq_len, s->changed,
                              rs.n_changed);
            s->in_callback = 0;
            TDI_ENTER(s); /* the callback may have called the library */
            if (stop != 0)
                st = tdi_fail(TD_ERR_CANCELLED,
                              "td_sampler_generate: cancelled by the callback after step %d of %d",
                              (int)(blk * steps + k), (int)n_steps);
        }
    }
    if (stats != NULL) write_stats(stats, &rs);
    return st;
}
