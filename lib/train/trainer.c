/* One trainer for MLM and diffusion: the schedule decides the masking rate
 * and the loss weight; every line below is shared. A causal model trains
 * on next-token prediction instead (its input shifted right, every position
 * scored); only the making of the batch differs. */
#include "diffusion/corrupt.h"
#include "diffusion/schedule.h"
#include "kernels/kernels.h"
#include "model/model_api.h"
#include "model/workspace.h"
#include "train/adamw.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

/* Sizes of the public structs in 1.0: smaller ones are refused. */
#define TRAINER_CONFIG_V1 72
#define TRAIN_STATS_V1 48

static td_trainer_config default_config(void)
{
    td_trainer_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.batch_size = 32;
    c.seq_len = 128;
    c.n_threads = 1;
    c.seed = 1;
    c.lr = 1e-3f;
    c.min_lr = 1e-4f;
    c.warmup_steps = 100;
    c.total_steps = 10000;
    c.beta1 = 0.9f;
    c.beta2 = 0.95f;
    c.eps = 1e-8f;
    c.weight_decay = 0.1f;
    c.clip_norm = 1.0f;
    return c;
}

td_status td_trainer_config_init(td_trainer_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_trainer_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, TRAINER_CONFIG_V1, __func__);
}

static tdi_adamw_config optimizer_config(const td_trainer_config *c)
{
    tdi_adamw_config o;
    o.lr = c->lr;
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.eps = c->eps;
    o.weight_decay = c->weight_decay;
    o.clip_norm = c->clip_norm;
    o.warmup = c->warmup_steps;
    o.total = c->total_steps;
    o.min_lr = c->min_lr;
    return o;
}

static td_status check_config(const td_trainer_config *c, const tdi_model *m)
{
    TDI_CHECK_ARG(c->batch_size >= 1 && c->batch_size <= 65536,
                  "td_trainer_create: cfg->batch_size = %d is outside [1, 65536]",
                  (int)c->batch_size);
    TDI_CHECK_ARG(c->seq_len >= 1 && c->seq_len <= m->cfg.max_seq_len,
                  "td_trainer_create: cfg->seq_len = %d is outside [1, max_seq_len = %d]",
                  (int)c->seq_len, (int)m->cfg.max_seq_len);
    TDI_CHECK_ARG((int64_t)c->batch_size * c->seq_len <= INT32_MAX / 4,
                  "td_trainer_create: batch_size x seq_len = %lld is too large",
                  (long long)c->batch_size * c->seq_len);
    TDI_CHECK_ARG(c->n_threads >= 1 && c->n_threads <= 1024,
                  "td_trainer_create: cfg->n_threads = %d is outside [1, 1024]",
                  (int)c->n_threads);
    TDI_CHECK_ARG(c->micro_batch >= 0 && c->micro_batch <= c->batch_size,
                  "td_trainer_create: cfg->micro_batch = %d is outside [0, batch_size = %d]",
                  (int)c->micro_batch, (int)c->batch_size);
    tdi_adamw_config o = optimizer_config(c);
    return tdi_adamw_config_check(&o);
}

/* The optimizer's view of a tensor of the model's directory: its decay
 * policy is by kind (train/adamw.h). */
static tdi_param_kind param_kind(tdi_tensor_kind kind)
{
    switch (kind) {
    case TDI_TENSOR_EMBEDDING: return TDI_PARAM_EMBEDDING;
    case TDI_TENSOR_BIAS: return TDI_PARAM_BIAS;
    case TDI_TENSOR_NORM: return TDI_PARAM_NORM;
    case TDI_TENSOR_MATRIX: break;
    }
    return TDI_PARAM_MATRIX;
}

void td_trainer_free(td_trainer *t)
{
    if (t == NULL) return;
    tdi_errslot_destroy(&t->err);
    td_allocator a = t->alloc;
    tdi_pool_free(t->pool); /* joins its threads */
    tdi_workspace_free(t->ws);
    tdi_adamw_free(t->opt);
    tdi_free(&a, t->scratch);
    tdi_free(&a, t->grads);
    tdi_free(&a, t);
}

size_t td_trainer_errmsg(const td_trainer *t, char *buf, size_t cap)
{
    return tdi_errslot_copy(t != NULL ? &t->err : NULL, buf, cap);
}

/* One block for the batch: corrupted ids, rows, targets, weights, times,
 * per-row losses, and the logits (then their gradient). */
static void layout(void *obj, tdi_carver *c)
{
    td_trainer *t = obj;
    size_t n = (size_t)t->cfg.batch_size * (size_t)t->cfg.seq_len;
    t->corr.ids = tdi_carve(c, n, sizeof(int32_t));
    t->corr.rows = tdi_carve(c, n, sizeof(int32_t));
    t->corr.targets = tdi_carve(c, n, sizeof(int32_t));
    t->corr.weights = tdi_carve(c, n, sizeof(float));
    t->corr.capacity = n;
    t->times = tdi_carve(c, (size_t)t->cfg.batch_size, sizeof(double));
    t->row_loss = tdi_carve(c, n, sizeof(double));
    size_t pass = (size_t)t->micro_batch * (size_t)t->cfg.seq_len;
    t->pass_rows = tdi_carve(c, pass, sizeof(int32_t));
    t->logits = tdi_carve(c, pass * (size_t)t->model->m->cfg.vocab_size, sizeof(float));
}

static td_status allocate(td_trainer *t)
{
    const tdi_model *m = t->model->m;
    int32_t pass = t->micro_batch * t->cfg.seq_len;
    t->grads = tdi_calloc(&t->alloc, m->n_floats, sizeof(float));
    if (t->grads == NULL) return tdi_nomem("td_trainer_create", m->n_floats * sizeof(float));
    TDI_TRY(tdi_carve_block(&t->alloc, layout, t, &t->scratch, "td_trainer_create"));
    TDI_TRY(tdi_workspace_create(m, t->micro_batch, t->cfg.seq_len, pass, t->cfg.n_threads, 1,
                                 &t->ws));
    TDI_TRY(tdi_pool_create(&t->alloc, t->cfg.n_threads, &t->pool));
    tdi_adamw_config o = optimizer_config(&t->cfg);
    TDI_TRY(tdi_adamw_create(&t->alloc, m->n_floats, &o, &t->opt));
    tdi_param_range *ranges = tdi_malloc(&t->alloc, sizeof *ranges * (size_t)m->n_tensors);
    if (ranges == NULL) return tdi_nomem("td_trainer_create", sizeof *ranges * m->n_tensors);
    /* A tensor's range covers the zero gap after it: its gradient there is
     * zero, so the update leaves it zero. */
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *ts = &m->tensors[i];
        size_t end = i + 1 < m->n_tensors ? m->tensors[i + 1].offset : m->n_floats;
        ranges[i].offset = ts->offset;
        ranges[i].count = end - ts->offset;
        ranges[i].decay = tdi_param_kind_decays(param_kind(ts->kind), TDI_DECAY_KINDS_DEFAULT);
    }
    td_status st = tdi_adamw_set_decay_ranges(t->opt, ranges, (size_t)m->n_tensors);
    tdi_free(&t->alloc, ranges);
    return st;
}

td_status td_trainer_create(td_model *model, const td_schedule *s, const td_trainer_config *cfg,
                            td_trainer **out)
{
    TDI_ENTER(model);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(model);
    TDI_CHECK_PTR(s);
    TDI_CHECK_PTR(cfg);
    td_trainer_config c = default_config();
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, TRAINER_CONFIG_V1, __func__, "cfg"));
    TDI_TRY(check_config(&c, model->m));
    const tdi_model *m = model->m;
    if (m->dtype != TDI_WT_F32)
        return tdi_fail(TD_ERR_UNSUPPORTED, "%s: the model's weights are %s (td_model_convert): "
                        "such a model is for inference only; train the float32 model",
                        __func__, tdi_wt_name(m->dtype));
    if (tdi_schedule_of(s)->bert_corrupt && m->cfg.mask_id == 0)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "%s: BERT corruption draws random tokens below mask_id, which is 0",
                        __func__);
    td_trainer *t = tdi_calloc(&m->alloc, 1, sizeof *t);
    if (t == NULL) return tdi_nomem(__func__, sizeof *t);
    tdi_errslot_init(&t->err);
    t->alloc = m->alloc;
    t->model = model;
    t->schedule = *tdi_schedule_of(s);
    t->cfg = c;
    t->micro_batch = c.micro_batch > 0 ? c.micro_batch : c.batch_size;
    t->n_ranks = 1;
    tdi_rng_seed(&t->rng, c.seed);
    td_status st = allocate(t);
    /* A model mapped from its file is read-only: train a private copy. */
    if (st == TD_OK) st = tdi_model_make_private(model->m);
    if (st != TD_OK) {
        td_trainer_free(t);
        return st;
    }
    *out = t;
    return TD_OK;
}

/* td_trainer_step after its argument checks. */
static td_status step(td_trainer *t, const int32_t *tokens, const uint8_t *protect,
                      td_train_stats *stats, const char *func)
{
    tdi_model *m = t->model->m;
    const int32_t B = t->cfg.batch_size, T = t->cfg.seq_len, V = m->cfg.vocab_size;
    tdi_pool *pool = t->pool;
    /* Random tokens for BERT's 80/10/10 are drawn from the ids below
     * [MASK] (the bytes, for the byte tokenizer). */
    tdi_corrupt_vocab vocab = { V, m->cfg.mask_id, 0, m->cfg.mask_id };

    tdi_profile *prof = t->prof;
    uint64_t mark = tdi_prof_phase_begin(prof, TDI_PROF_BACKWARD);
    memset(t->grads, 0, m->n_floats * sizeof(float));
    tdi_prof_phase_end(prof, mark);

    mark = tdi_prof_phase_begin(prof, TDI_PROF_FORWARD);
    if (m->cfg.causal) { /* next-token prediction: the schedule is not used */
        TDI_TRY(tdi_corrupt_shift_protected(&vocab, tokens, protect, (size_t)B, (size_t)T,
                                            &t->corr));
    } else {
        TDI_TRY(tdi_schedule_draw_times(&t->schedule, &t->rng, (size_t)B, t->times));
        TDI_TRY(tdi_corrupt_protected(&t->schedule, &vocab, tokens, protect, (size_t)B,
                                      (size_t)T, t->times, &t->rng, &t->corr));
    }
    const int32_t n = (int32_t)t->corr.n;
    /* This rank's shard of the batch: sequences [s0, s1), all of them
     * without data parallelism. */
    const int32_t shard = B / t->n_ranks, s0 = t->rank * shard, s1 = s0 + shard;
    int32_t start = 0;
    while (start < n && t->corr.rows[start] < s0 * T) start++;
    double loss = 0.0;
    /* Passes of micro_batch sequences. The scored rows are ascending, so a
     * pass's rows are the next run of them; the loss weights are the whole
     * batch's, so the passes' (and the shards') losses and gradients add up
     * to the batch's. A non-finite loss ends the passes; with a reduce hook
     * the other ranks still get their reduction and see it in the sum. */
    for (int32_t b0 = s0, first = start; b0 < s1 && first < n; b0 += t->micro_batch) {
        int32_t nb = s1 - b0 < t->micro_batch ? s1 - b0 : t->micro_batch, base = b0 * T;
        int32_t k = 0;
        while (first + k < n && t->corr.rows[first + k] < base + nb * T) k++;
        if (k == 0) continue; /* nothing masked in these sequences */
        const int32_t *rows = t->corr.rows + first;
        if (base > 0) {
            for (int32_t i = 0; i < k; i++) t->pass_rows[i] = rows[i] - base;
            rows = t->pass_rows;
        }
        if (mark == 0) mark = tdi_prof_phase_begin(prof, TDI_PROF_FORWARD);
        TDI_TRY(tdi_model_forward(m, t->ws, t->corr.ids + base, nb, T, NULL, pool));
        tdi_model_logits(m, t->ws, rows, k, t->logits, pool);
        double pass_loss = tdi_crossentropy_forward_backward(
            t->logits, t->row_loss + first, t->logits, t->corr.targets + first,
            t->corr.weights + first, k, V, pool);
        loss += pass_loss;
        tdi_prof_phase_end(prof, mark);
        mark = 0;
        if (!isfinite(pass_loss)) break;
        mark = tdi_prof_phase_begin(prof, TDI_PROF_BACKWARD);
        tdi_model_backward(m, t->ws, rows, k, t->logits, t->grads, pool);
        tdi_prof_phase_end(prof, mark);
        mark = 0;
        first += k;
    }
    if (mark != 0) tdi_prof_phase_end(prof, mark);
    if (t->reduce != NULL) {
        double values[1] = { loss };
        td_status rs = t->reduce(t->reduce_user, t->grads, m->n_floats, values, 1);
        TDI_ENTER(t); /* the hook may have called the library on other handles */
        if (rs != TD_OK)
            return tdi_fail(rs > 0 && rs <= TD_ERR_INTERNAL ? rs : TD_ERR_INTERNAL,
                            "%s: the reduce hook returned %d (%s) at step %lld; step not applied",
                            func, (int)rs, td_status_string(rs),
                            (long long)tdi_adamw_steps(t->opt) + 1);
        loss = values[0];
    }
    if (!isfinite(loss))
        return tdi_fail(TD_ERR_NUMERIC, "%s: loss is %g at step %lld; step not applied", func,
                        loss, (long long)tdi_adamw_steps(t->opt) + 1);

    mark = tdi_prof_phase_begin(prof, TDI_PROF_OPTIMIZER);
    double grad_norm = 0.0;
    td_status st = tdi_adamw_step(t->opt, m->params, t->grads, pool, &grad_norm);
    tdi_prof_phase_end(prof, mark);
    if (st == TD_ERR_NUMERIC)
        return tdi_fail(TD_ERR_NUMERIC, "%s: gradient norm is %g at step %lld; step not applied",
                        func, grad_norm, (long long)tdi_adamw_steps(t->opt) + 1);
    TDI_TRY(st);
    if (stats != NULL) {
        td_train_stats full;
        memset(&full, 0, sizeof full);
        full.step = tdi_adamw_steps(t->opt);
        full.loss = loss;
        full.grad_norm = grad_norm;
        full.lr = tdi_adamw_lr(tdi_adamw_get_config(t->opt), full.step);
        full.n_masked = n;
        tdi_struct_out(stats, stats->struct_size, &full, sizeof full);
    }
    if (prof != NULL) prof->steps++;
    return TD_OK;
}

/* A failed step changes nothing: the model and the optimizer are only
 * written by the update at its end, and the generator is put back. */
static td_status checked_step(td_trainer *t, const int32_t *tokens, const uint8_t *protect,
                              td_train_stats *stats, const char *func)
{
    if (stats != NULL)
        TDI_TRY(tdi_struct_size_check(stats->struct_size, TRAIN_STATS_V1, func, "stats"));
    if (protect != NULL) {
        size_t n = (size_t)t->cfg.batch_size * (size_t)t->cfg.seq_len;
        for (size_t r = 0; r < n; r++)
            TDI_CHECK_ARG(protect[r] <= 2, "%s: protect[%zu] = %u must be 0, 1 or 2", func, r,
                          (unsigned)protect[r]);
    }
    tdi_rng saved = t->rng;
    td_status st = step(t, tokens, protect, stats, func);
    if (st != TD_OK) t->rng = saved;
    return st;
}

td_status td_trainer_step(td_trainer *t, const int32_t *tokens, td_train_stats *stats)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(tokens);
    return checked_step(t, tokens, NULL, stats, __func__);
}

td_status td_trainer_step_protected(td_trainer *t, const int32_t *tokens,
                                    const uint8_t *protect, td_train_stats *stats)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(tokens);
    return checked_step(t, tokens, protect, stats, __func__);
}

void tdi_trainer_set_profile(td_trainer *t, tdi_profile *prof)
{
    t->prof = prof;
    t->ws->prof = prof;
}

td_status td_trainer_get_config(const td_trainer *t, td_trainer_config *cfg)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(cfg);
    TDI_TRY(tdi_struct_size_check(cfg->struct_size, TRAINER_CONFIG_V1, __func__, "cfg"));
    td_trainer_config c = t->cfg;
    c.micro_batch = t->micro_batch;
    tdi_struct_out(cfg, cfg->struct_size, &c, sizeof c);
    return TD_OK;
}

td_status td_trainer_set_data_parallel(td_trainer *t, int32_t rank, int32_t n_ranks,
                                       td_reduce_fn reduce, void *user)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    const int32_t B = t->cfg.batch_size;
    TDI_CHECK_ARG(n_ranks >= 1 && n_ranks <= B,
                  "%s: n_ranks = %d is outside [1, batch_size = %d]", __func__, (int)n_ranks,
                  (int)B);
    TDI_CHECK_ARG(B % n_ranks == 0,
                  "%s: batch_size = %d is not divisible by n_ranks = %d: every rank takes "
                  "batch_size / n_ranks sequences of the global batch",
                  __func__, (int)B, (int)n_ranks);
    TDI_CHECK_ARG(rank >= 0 && rank < n_ranks, "%s: rank = %d is outside [0, n_ranks = %d)",
                  __func__, (int)rank, (int)n_ranks);
    TDI_CHECK_ARG(reduce != NULL || n_ranks == 1,
                  "%s: reduce is NULL with n_ranks = %d > 1", __func__, (int)n_ranks);
    t->rank = rank;
    t->n_ranks = n_ranks;
    t->reduce = reduce;
    t->reduce_user = user;
    return TD_OK;
}
