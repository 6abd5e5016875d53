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
 * at a time. */
#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/draw.h"
#include "diffusion/sampler_ar.h"
#include "diffusion/schedule.h"
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
};

/* What one generate call has done so far. */
typedef struct run_state {
    int fresh;                  /* the workspace holds a forward of the canvas */
    int32_t n_changed;
    int64_t model_calls, steps, cached_steps, revealed;
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
    return c;
}

td_status td_sampler_config_init(td_sampler_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_sampler_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, SAMPLER_CONFIG_V1, __func__);
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
    return TD_OK;
}

void td_sampler_free(td_sampler *s)
{
    if (s == NULL) return;
    tdi_errslot_destroy(&s->err);
    td_allocator a = s->alloc;
    tdi_pool_free(s->pool); /* joins its threads */
    tdi_workspace_free(s->ws);
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

/* An open-interval uniform, so that the Gumbel transform stays finite. */
static double open_uniform(tdi_rng *r)
{
    return ((double)(tdi_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
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
        if (!last && m > 0) {
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
        if (tdi_draw_token(&s->draw, s->logits + o, V, s->u_tok[e], s->w + o,
                           s->rank ? s->rank + o : NULL, &s->tokens[e], &conf) != 0)
            s->tokens[e] = -1;
        s->conf[e] = conf;
    }
}

/* tokens and confidences of rows[0..n) from the last forward pass. */
static td_status draw_rows(td_sampler *s, int32_t n)
{
    for (int32_t at = 0; at < n; at += s->chunk) {
        int32_t len = n - at < s->chunk ? n - at : s->chunk;
        tdi_model_logits(s->model, s->ws, s->rows + at, len, s->logits, s->pool);
        draw_job j = { s, at };
        tdi_pool_for(s->pool, len, draw_chunk, &j);
        for (int32_t i = len - 1; i >= 0; i--)
            if (s->tokens[at + i] < 0)
                return tdi_fail(TD_ERR_NUMERIC,
                                "td_sampler_generate: the model's logits at row %d are not "
                                "finite", (int)s->rows[at + i]);
    }
    return TD_OK;
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

/* Step k of `steps` over the block [lo, hi): from t = 1 − k/steps to
 * s = 1 − (k+1)/steps, exactly 0 at the last step. */
static td_status step(td_sampler *s, int32_t *canvas, int32_t batch, int32_t seq_len,
                      const uint8_t *key_mask, int32_t lo, int32_t hi, int32_t k,
                      run_state *rs)
{
    const int32_t steps = s->cfg.steps;
    const int last = k + 1 == steps;
    const double t = 1.0 - (double)k / steps, sn = last ? 0.0 : 1.0 - (double)(k + 1) / steps;
    const double p = tdi_schedule_reveal_prob(&s->schedule, t, sn);
    const int ancestral = s->cfg.strategy == TD_SAMPLER_ANCESTRAL;
    int32_t n = ancestral ? list_ancestral(s, canvas, batch, seq_len, lo, hi, p)
                          : list_confidence(s, canvas, batch, seq_len, lo, hi, p, last);
    rs->steps++;
    rs->n_changed = 0;
    int run = s->cfg.cache ? n > 0 && !rs->fresh : 1;
    if (run) {
        TDI_TRY(tdi_model_forward(s->model, s->ws, canvas, batch, seq_len, key_mask,
                                  s->pool));
        rs->fresh = 1;
        rs->model_calls++;
    } else {
        rs->cached_steps++;
    }
    if (n == 0) return TD_OK;
    TDI_TRY(draw_rows(s, n));
    if (ancestral) {
        for (int32_t i = 0; i < n; i++) {
            canvas[s->rows[i]] = s->tokens[i];
            s->changed[i] = s->rows[i];
        }
        rs->n_changed = n;
    } else {
        rs->n_changed = commit_confidence(s, canvas, batch);
    }
    if (rs->n_changed > 0) rs->fresh = 0;
    rs->revealed += rs->n_changed;
    return TD_OK;
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

    const uint8_t *key_mask = NULL;
    if (s->cfg.pad_id >= 0) {
        int any = 0;
        for (int32_t i = 0; i < n; i++) {
            s->key_mask[i] = canvas[i] != s->cfg.pad_id;
            any |= !s->key_mask[i];
        }
        if (any) key_mask = s->key_mask;
    }
    uint64_t call_seed = tdi_rng_u64(&s->master);
    for (int32_t b = 0; b < batch; b++) tdi_rng_stream(&s->seq_rng[b], call_seed, (uint64_t)b);

    run_state rs;
    memset(&rs, 0, sizeof rs);
    td_status st = TD_OK;
    if (s->kv != NULL) {
        st = generate_ltr(s, canvas, batch, seq_len, cb, user, &rs);
        if (stats != NULL) write_stats(stats, &rs);
        return st;
    }
    for (int32_t blk = 0; blk < n_blocks && st == TD_OK; blk++) {
        int32_t lo = block > 0 ? blk * block : 0;
        int32_t hi = block > 0 && seq_len - lo > block ? lo + block : seq_len;
        for (int32_t k = 0; k < steps && st == TD_OK; k++) {
            st = step(s, canvas, batch, seq_len, key_mask, lo, hi, k, &rs);
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
