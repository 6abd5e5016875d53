/* Evaluation of a model: the NELBO on a fixed quadrature grid and the loss
 * curve over masking rates (docs/evaluation.md). One engine serves both: a
 * list of work items (window, time), each masked from its own RNG stream,
 * packed batch_size to a forward pass. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "diffusion/corrupt.h"
#include "diffusion/schedule.h"
#include "kernels/kernels.h"
#include "model/model_api.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/error.h"
#include "util/rng.h"

/* Logits are produced in chunks of at most this many floats, so that a large
 * vocabulary does not need a [B·T, V] buffer. */
#define EVAL_LOGIT_FLOATS ((size_t)1 << 22)
#define EVAL_MAX_TIMES 65536
#define EVAL_MAX_RATES 65536

/* Sizes of the public structs in 1.0: smaller ones are refused. */
#define EVAL_CONFIG_V1 48
#define EVAL_RESULT_V1 64

static td_eval_config default_config(void)
{
    td_eval_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.seq_len = 128;
    c.batch_size = 16;
    c.n_threads = 1;
    c.n_times = 16;
    c.seed = 1;
    c.max_sequences = 0;
    c.bytes_per_token = 0.0;
    return c;
}

td_status td_eval_config_init(td_eval_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_eval_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, EVAL_CONFIG_V1, __func__);
}

/* One masked copy of one window. */
typedef struct eval_item {
    int64_t window; /* index in the stream: tokens [window·T, (window+1)·T) */
    double t;       /* masking probability */
} eval_item;

/* What one item scored. */
typedef struct item_score {
    double ce;       /* Σ cross-entropy over its hidden tokens, nats */
    int32_t hidden;  /* hidden tokens */
    int32_t correct; /* hidden tokens whose argmax prediction is the target */
} item_score;

typedef struct eval_ctx {
    const char *func;
    const tdi_model *m;
    td_eval_config cfg;
    const int32_t *tokens;
    int64_t n_windows;  /* windows in the stream */
    int64_t n_seq;      /* windows evaluated */
    tdi_schedule linear;
    tdi_workspace *ws;
    tdi_pool *pool;        /* threads for this call only */
    void *scratch;
    tdi_corruption corr;   /* ids [B·T], rows, targets, weights (unused) */
    double *row_loss;      /* [chunk] */
    float *logits;         /* [chunk, V] */
    int32_t *hit;          /* [chunk] 1 when the argmax is the target */
    item_score *scores;    /* [B] */
    eval_item *items;      /* [B] the batch being scored */
    double *ce_sum;        /* rates only: [n_rates] Σ cross-entropy of a rate */
    int64_t *counts;       /* rates only: [2·n_rates] hidden tokens, hits */
    int32_t chunk;         /* rows per logits pass */
    size_t n_rates;        /* rates only: entries of ce_sum */
} eval_ctx;

static td_status check_config(const td_eval_config *c, const tdi_model *m, const char *func)
{
    TDI_CHECK_ARG(c->seq_len >= 1 && c->seq_len <= m->cfg.max_seq_len,
                  "%s: cfg->seq_len = %d is outside [1, max_seq_len = %d]", func,
                  (int)c->seq_len, (int)m->cfg.max_seq_len);
    TDI_CHECK_ARG(c->batch_size >= 1 && c->batch_size <= 65536,
                  "%s: cfg->batch_size = %d is outside [1, 65536]", func, (int)c->batch_size);
    TDI_CHECK_ARG((int64_t)c->batch_size * c->seq_len <= INT32_MAX / 4,
                  "%s: batch_size x seq_len = %lld is too large", func,
                  (long long)c->batch_size * c->seq_len);
    TDI_CHECK_ARG(c->n_threads >= 1 && c->n_threads <= 1024,
                  "%s: cfg->n_threads = %d is outside [1, 1024]", func, (int)c->n_threads);
    TDI_CHECK_ARG(c->n_times >= 1 && c->n_times <= EVAL_MAX_TIMES,
                  "%s: cfg->n_times = %d is outside [1, %d]", func, (int)c->n_times,
                  EVAL_MAX_TIMES);
    TDI_CHECK_ARG(c->max_sequences >= 0 && c->max_sequences <= INT32_MAX,
                  "%s: cfg->max_sequences = %lld is outside [0, %d] (0: every window)", func,
                  (long long)c->max_sequences, INT32_MAX);
    TDI_CHECK_ARG(c->bytes_per_token == 0.0 ||
                      (c->bytes_per_token > 0.0 && isfinite(c->bytes_per_token)),
                  "%s: cfg->bytes_per_token = %g must be a positive number, or 0 if unknown",
                  func, c->bytes_per_token);
    return TD_OK;
}

/* Evaluated window j of n_seq spread evenly over n_windows: floor(j·n/s),
 * split so that the product cannot overflow (both counts < 2^31 here or
 * j == window). */
static int64_t window_of(const eval_ctx *c, int64_t j)
{
    if (c->n_seq == c->n_windows) return j;
    int64_t q = c->n_windows / c->n_seq, r = c->n_windows % c->n_seq;
    return j * q + (j * r) / c->n_seq;
}

/* Validates everything and fills the context's inputs; allocates nothing. */
static td_status setup(eval_ctx *c, const td_model *model, const int32_t *tokens,
                       int64_t n_tokens, const td_eval_config *cfg, const char *func)
{
    memset(c, 0, sizeof *c);
    c->func = func;
    TDI_CHECK_ARG(model != NULL, "%s: m is NULL", func);
    TDI_CHECK_ARG(tokens != NULL, "%s: tokens is NULL", func);
    TDI_CHECK_ARG(cfg != NULL, "%s: cfg is NULL", func);
    c->m = model->m;
    c->cfg = default_config();
    TDI_TRY(tdi_struct_in(&c->cfg, sizeof c->cfg, cfg, EVAL_CONFIG_V1, func, "cfg"));
    TDI_CHECK_ARG(c->cfg.reserved0 == 0, "%s: cfg->reserved0 must be 0", func);
    TDI_TRY(check_config(&c->cfg, c->m, func));
    const int64_t T = c->cfg.seq_len;
    TDI_CHECK_ARG(n_tokens >= T,
                  "%s: n_tokens = %lld holds no window of seq_len = %lld tokens", func,
                  (long long)n_tokens, (long long)T);
    c->tokens = tokens;
    c->n_windows = n_tokens / T;
    c->n_seq = c->n_windows;
    if (c->cfg.max_sequences > 0 && c->cfg.max_sequences < c->n_windows)
        c->n_seq = c->cfg.max_sequences;
    /* A clean [MASK] is a target the model can never predict (its logit is
     * −∞): an infinite loss. Checked here, by stream position, before any
     * work. */
    const int32_t V = c->m->cfg.vocab_size, mask = c->m->cfg.mask_id;
    for (int64_t j = 0; j < c->n_seq; j++) {
        const int64_t base = window_of(c, j) * T;
        for (int64_t i = 0; i < T; i++) {
            const int32_t x = tokens[base + i];
            TDI_CHECK_ARG(x >= 0 && x < V && x != mask, "%s: tokens[%lld] = %ld is %s", func,
                          (long long)(base + i), (long)x,
                          x == mask ? "the mask id" : "outside [0, vocab_size)");
        }
    }
    TDI_TRY(tdi_schedule_init(&c->linear, TDI_SCHEDULE_LINEAR));
    return TD_OK;
}

static void release(eval_ctx *c)
{
    tdi_pool_free(c->pool);
    tdi_workspace_free(c->ws);
    tdi_free(&c->m->alloc, c->scratch);
    c->pool = NULL;
    c->ws = NULL;
    c->scratch = NULL;
}

static void layout(void *obj, tdi_carver *k)
{
    eval_ctx *c = obj;
    const size_t B = (size_t)c->cfg.batch_size, N = B * (size_t)c->cfg.seq_len;
    const size_t chunk = (size_t)c->chunk, V = (size_t)c->m->cfg.vocab_size;
    c->corr.ids = tdi_carve(k, N, sizeof(int32_t));
    c->corr.rows = tdi_carve(k, N, sizeof(int32_t));
    c->corr.targets = tdi_carve(k, N, sizeof(int32_t));
    c->corr.weights = tdi_carve(k, N, sizeof(float));
    c->corr.capacity = N;
    c->row_loss = tdi_carve(k, chunk, sizeof(double));
    c->logits = tdi_carve(k, chunk * V, sizeof(float));
    c->hit = tdi_carve(k, chunk, sizeof(int32_t));
    c->scores = tdi_carve(k, B, sizeof(item_score));
    c->items = tdi_carve(k, B, sizeof(eval_item));
    c->ce_sum = tdi_carve(k, c->n_rates, sizeof(double));
    c->counts = tdi_carve(k, 2 * c->n_rates, sizeof(int64_t));
}

/* One workspace, one thread pool and one scratch block for the whole call;
 * n_rates > 0 adds the per-rate sums. */
static td_status allocate(eval_ctx *c, size_t n_rates)
{
    const size_t B = (size_t)c->cfg.batch_size, T = (size_t)c->cfg.seq_len;
    const size_t N = B * T, V = (size_t)c->m->cfg.vocab_size;
    size_t chunk = N * V <= EVAL_LOGIT_FLOATS ? N : EVAL_LOGIT_FLOATS / V;
    if (chunk < 1) chunk = 1;
    c->chunk = (int32_t)chunk;
    c->n_rates = n_rates;
    TDI_TRY(tdi_carve_block(&c->m->alloc, layout, c, &c->scratch, c->func));
    TDI_TRY(tdi_pool_create(&c->m->alloc, c->cfg.n_threads, &c->pool));
    return tdi_workspace_create(c->m, (int32_t)B, (int32_t)T, c->chunk, c->cfg.n_threads, 0,
                                &c->ws);
}

/* The RNG of window w at time t (docs/evaluation.md "Masks"): a key from
 * the seed and the bits of t, then the window's stream of that key. Keying
 * by the time's value rather than its index makes a rate-curve point at
 * t_k reuse the NELBO's masks, and the masks at one rate independent of
 * which other rates are asked for. */
static void mask_rng(tdi_rng *r, uint64_t seed, double t, int64_t window)
{
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    tdi_rng key;
    tdi_rng_stream(&key, seed, bits);
    tdi_rng_stream(r, tdi_rng_u64(&key), (uint64_t)window);
}

typedef struct hits_job {
    int32_t *hit;
    const float *logits;
    const int32_t *targets;
    int V;
} hits_job;

static void hit_rows(void *ctx, long begin, long end, int tid)
{
    const hits_job *h = ctx;
    (void)tid;
    for (long r = begin; r < end; r++) {
        const float *l = h->logits + (size_t)r * h->V;
        int best = 0;
        for (int j = 1; j < h->V; j++)
            if (l[j] > l[best]) best = j;
        h->hit[r] = best == h->targets[r];
    }
}

/* argmax over each logit row (first index on ties) against the target. */
static void top1_hits(int32_t *hit, const float *logits, const int32_t *targets, int n, int V,
                      tdi_pool *pool)
{
    hits_job h = { hit, logits, targets, V };
    tdi_pool_for(pool, n, hit_rows, &h);
}

/* Masks the items, runs one forward pass over them and scores every hidden
 * token into c->scores[0..n_items). Rows are visited in ascending order, so
 * each item's sum has a fixed order whatever the thread count. */
static td_status score_batch(eval_ctx *c, const eval_item *items, int32_t n_items,
                             int want_hits)
{
    const int32_t T = c->cfg.seq_len, V = c->m->cfg.vocab_size;
    tdi_pool *pool = c->pool;
    const tdi_corrupt_vocab vocab = { V, c->m->cfg.mask_id, 0, c->m->cfg.mask_id };
    size_t n = 0;
    for (int32_t b = 0; b < n_items && c->m->cfg.causal; b++) {
        /* A causal model: the window shifted right, every token scored. */
        tdi_corruption one = c->corr;
        one.ids += (size_t)b * T;
        one.rows += n;
        one.targets += n;
        one.weights += n;
        one.capacity = (size_t)T;
        TDI_TRY(tdi_corrupt_shift(&vocab, c->tokens + items[b].window * T, 1, (size_t)T, &one));
        for (size_t i = 0; i < one.n; i++) one.rows[i] += b * T;
        n += one.n;
        c->scores[b].ce = 0.0;
        c->scores[b].hidden = (int32_t)one.n;
        c->scores[b].correct = 0;
    }
    for (int32_t b = 0; b < n_items && !c->m->cfg.causal; b++) {
        tdi_rng rng;
        mask_rng(&rng, c->cfg.seed, items[b].t, items[b].window);
        tdi_corruption one = c->corr;
        one.ids += (size_t)b * T;
        one.rows += n;
        one.targets += n;
        one.weights += n;
        one.capacity = (size_t)T;
        TDI_TRY(tdi_corrupt(&c->linear, &vocab, c->tokens + items[b].window * T, 1, (size_t)T,
                            &items[b].t, &rng, &one));
        for (size_t i = 0; i < one.n; i++) one.rows[i] += b * T;
        n += one.n;
        c->scores[b].ce = 0.0;
        c->scores[b].hidden = (int32_t)one.n;
        c->scores[b].correct = 0;
    }
    if (n == 0) return TD_OK;
    TDI_TRY(tdi_model_forward(c->m, c->ws, c->corr.ids, n_items, T, NULL, pool));
    for (size_t start = 0; start < n; start += (size_t)c->chunk) {
        const int32_t rows = (int32_t)(n - start < (size_t)c->chunk ? n - start : (size_t)c->chunk);
        const int32_t *targets = c->corr.targets + start;
        tdi_model_logits(c->m, c->ws, c->corr.rows + start, rows, c->logits, pool);
        tdi_crossentropy_forward_backward(NULL, c->row_loss, c->logits, targets, NULL, rows, V,
                                          pool);
        if (want_hits) top1_hits(c->hit, c->logits, targets, rows, V, pool);
        for (int32_t r = 0; r < rows; r++) {
            if (!isfinite(c->row_loss[r]))
                return tdi_fail(TD_ERR_NUMERIC,
                                "%s: the loss of window %lld at t = %g is not finite", c->func,
                                (long long)items[c->corr.rows[start + r] / T].window,
                                items[c->corr.rows[start + r] / T].t);
            item_score *s = &c->scores[c->corr.rows[start + r] / T];
            s->ce += c->row_loss[r];
            if (want_hits) s->correct += c->hit[r];
        }
    }
    return TD_OK;
}

/* Running mean and sum of squared deviations (Welford), for the standard
 * error across windows without a per-window array. */
typedef struct welford { int64_t n; double mean, m2; } welford;

static void welford_add(welford *w, double x)
{
    w->n++;
    double d = x - w->mean;
    w->mean += d / (double)w->n;
    w->m2 += d * (x - w->mean);
}

/* Items window-major: item w is window w / K at time t_{w mod K}, so one
 * window's K terms arrive in order and are folded as soon as it is done. */
static td_status nelbo_run(eval_ctx *c, welford *acc)
{
    /* A causal model's NLL is exact: one term per window, weight 1/T. */
    const int causal = c->m->cfg.causal;
    const int64_t K = causal ? 1 : c->cfg.n_times, T = c->cfg.seq_len, B = c->cfg.batch_size;
    const int64_t n_items = c->n_seq * K;
    double window_sum = 0.0;
    for (int64_t w0 = 0; w0 < n_items; w0 += B) {
        const int32_t nb = (int32_t)(n_items - w0 < B ? n_items - w0 : B);
        for (int32_t b = 0; b < nb; b++) {
            const int64_t w = w0 + b;
            c->items[b].window = window_of(c, w / K);
            c->items[b].t = causal ? 1.0 : ((double)(w % K) + 0.5) / (double)K;
        }
        TDI_TRY(score_batch(c, c->items, nb, 0));
        for (int32_t b = 0; b < nb; b++) {
            window_sum += c->scores[b].ce / (c->items[b].t * (double)T);
            if ((w0 + b) % K == K - 1) {
                welford_add(acc, window_sum / (double)K);
                window_sum = 0.0;
            }
        }
    }
    return TD_OK;
}

/* td_eval_nelbo, and td_eval_gen_perplexity on its own windows. */
static td_status nelbo_call(const td_model *m, const int32_t *tokens, int64_t n_tokens,
                            const td_eval_config *cfg, td_eval_result *out, const char *func)
{
    TDI_CHECK_ARG(out != NULL, "%s: out is NULL", func);
    TDI_TRY(tdi_struct_size_check(out->struct_size, EVAL_RESULT_V1, func, "out"));
    eval_ctx c;
    TDI_TRY(setup(&c, m, tokens, n_tokens, cfg, func));
    welford acc = { 0, 0.0, 0.0 };
    td_status st = allocate(&c, 0);
    if (st == TD_OK) st = nelbo_run(&c, &acc);
    release(&c);
    TDI_TRY(st);

    td_eval_result r;
    memset(&r, 0, sizeof r);
    r.nelbo_nats = acc.mean;
    r.nelbo_bits = acc.mean / log(2.0);
    r.bits_per_byte = c.cfg.bytes_per_token > 0.0 ? r.nelbo_bits / c.cfg.bytes_per_token : NAN;
    r.perplexity_bound = exp(acc.mean);
    r.std_error_nats = acc.n > 1 ? sqrt(acc.m2 / (double)(acc.n - 1) / (double)acc.n) : NAN;
    r.n_sequences = acc.n;
    r.n_tokens = acc.n * c.cfg.seq_len;
    tdi_struct_out(out, out->struct_size, &r, sizeof r);
    return TD_OK;
}

td_status td_eval_nelbo(const td_model *m, const int32_t *tokens, int64_t n_tokens,
                        const td_eval_config *cfg, td_eval_result *out)
{
    TDI_ENTER(m);
    return nelbo_call(m, tokens, n_tokens, cfg, out, "td_eval_nelbo");
}

td_status td_eval_gen_perplexity(const td_model *scorer, const int32_t *samples, int32_t n_seqs,
                                 int32_t seq_len, const td_eval_config *cfg,
                                 td_eval_result *out)
{
    TDI_ENTER(scorer);
    static const char func[] = "td_eval_gen_perplexity";
    TDI_CHECK_ARG(scorer != NULL, "%s: scorer is NULL", func);
    TDI_CHECK_ARG(scorer->m->cfg.causal, "%s: the scorer needs a causal model (its "
                  "cfg.causal is 0; a bidirectional model gives no exact likelihood)", func);
    TDI_CHECK_ARG(samples != NULL, "%s: samples is NULL", func);
    TDI_CHECK_ARG(n_seqs >= 1, "%s: n_seqs = %d: there is no sequence to score", func,
                  (int)n_seqs);
    TDI_CHECK_ARG(seq_len >= 1 && seq_len <= scorer->m->cfg.max_seq_len,
                  "%s: seq_len = %d is outside [1, the scorer's max_seq_len = %d]", func,
                  (int)seq_len, (int)scorer->m->cfg.max_seq_len);
    td_eval_config c = default_config();
    if (cfg != NULL) {
        TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, EVAL_CONFIG_V1, func, "cfg"));
        TDI_CHECK_ARG(c.reserved0 == 0, "%s: cfg->reserved0 must be 0", func);
    }
    c.seq_len = seq_len;
    c.max_sequences = 0;
    if ((int64_t)c.batch_size * seq_len > INT32_MAX / 4) c.batch_size = 1;
    return nelbo_call(scorer, samples, (int64_t)n_seqs * seq_len, &c, out, func);
}

/* Items rate-major: item w is window w mod S at rate w / S. Rate j sums its
 * cross-entropy in ce_sum[j], its hidden tokens in counts[2·j] and its hits
 * in counts[2·j + 1]. */
static td_status rates_run(eval_ctx *c, const double *rates, int32_t n_rates, int want_hits)
{
    const int64_t S = c->n_seq, B = c->cfg.batch_size;
    const int64_t n_items = (int64_t)n_rates * S;
    for (int32_t j = 0; j < n_rates; j++) {
        c->ce_sum[j] = 0.0;
        c->counts[2 * j] = c->counts[2 * j + 1] = 0;
    }
    for (int64_t w0 = 0; w0 < n_items; w0 += B) {
        const int32_t nb = (int32_t)(n_items - w0 < B ? n_items - w0 : B);
        for (int32_t b = 0; b < nb; b++) {
            const int64_t w = w0 + b;
            c->items[b].window = window_of(c, w % S);
            c->items[b].t = rates[w / S];
        }
        TDI_TRY(score_batch(c, c->items, nb, want_hits));
        for (int32_t b = 0; b < nb; b++) {
            const int64_t j = (w0 + b) / S;
            c->ce_sum[j] += c->scores[b].ce;
            c->counts[2 * j] += c->scores[b].hidden;
            c->counts[2 * j + 1] += c->scores[b].correct;
        }
    }
    return TD_OK;
}

td_status td_eval_rates(const td_model *m, const int32_t *tokens, int64_t n_tokens,
                        const double *rates, int32_t n_rates, const td_eval_config *cfg,
                        double *loss_nats, double *accuracy)
{
    TDI_ENTER(m);
    static const char func[] = "td_eval_rates";
    TDI_CHECK_ARG(rates != NULL, "%s: rates is NULL", func);
    TDI_CHECK_ARG(loss_nats != NULL, "%s: loss_nats is NULL", func);
    TDI_CHECK_ARG(n_rates >= 1 && n_rates <= EVAL_MAX_RATES,
                  "%s: n_rates = %d is outside [1, %d]", func, (int)n_rates, EVAL_MAX_RATES);
    for (int32_t j = 0; j < n_rates; j++)
        TDI_CHECK_ARG(rates[j] > 0.0 && rates[j] <= 1.0,
                      "%s: rates[%d] = %g must be a number in (0, 1]", func, (int)j, rates[j]);
    if (m != NULL && m->m->cfg.causal)
        return tdi_fail(TD_ERR_UNSUPPORTED,
                        "%s: the model is causal; masking rates do not apply to it (its exact "
                        "NLL is td_eval_nelbo's)", func);
    eval_ctx c;
    TDI_TRY(setup(&c, m, tokens, n_tokens, cfg, func));
    td_status st = allocate(&c, (size_t)n_rates);
    if (st == TD_OK) st = rates_run(&c, rates, n_rates, accuracy != NULL);
    if (st == TD_OK) {
        for (int32_t j = 0; j < n_rates; j++) {
            const int64_t n = c.counts[2 * j], hits = c.counts[2 * j + 1];
            loss_nats[j] = n > 0 ? c.ce_sum[j] / (double)n : NAN;
            if (accuracy) accuracy[j] = n > 0 ? (double)hits / (double)n : NAN;
        }
    }
    release(&c);
    return st;
}
