/* The latent autoencoder's trainer (docs/latent-diffusion.md, "Training"):
 * frozen encoder features, the three augmentations, the loss of
 * autoencoder.c and AdamW (train/adamw.h). */
#include <math.h>
#include <string.h>

#include "io/checkpoint.h"
#include "latent/latent_api.h"
#include "train/adamw.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/rng.h"

#define LATENT_TRAIN_CONFIG_V1 88
#define LATENT_TRAIN_STATS_V1 64

struct td_latent_trainer {
    tdi_errslot err;
    td_allocator alloc;
    td_latent_model *lm;
    td_latent_train_config cfg;
    tdi_workspace *ews;  /* the encoder's, inference only */
    tdi_latent_ws *ws;
    tdi_pool *pool;
    tdi_adamw *opt;
    float *grads;        /* [n_floats] */
    float *feat_in;      /* [B·L, d_enc] augmented features */
    float *drop;         /* [B·N, d] latent dropout multipliers */
    /* diffusion stage: [B·N, d] each, and the times [B] */
    float *x0, *eps, *z, *sc, *target, *dpred;
    double *times;
    size_t p_off, p_count; /* the stretch of the parameters this stage updates */
    tdi_rng rng;
};

static td_latent_train_config default_config(void)
{
    td_latent_train_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.batch_size = 16;
    c.n_threads = 1;
    c.seed = 1;
    c.lr = 1e-3f;
    c.min_lr = 1e-4f;
    c.warmup_steps = 100;
    c.total_steps = 2000;
    c.beta1 = 0.9f;
    c.beta2 = 0.99f;
    c.eps = 1e-8f;
    c.weight_decay = 0.01f;
    c.clip_norm = 1.0f;
    c.mse_weight = 1.0f;
    c.mask_prob = 0.15f;
    c.noise_std = 0.1f;
    c.latent_dropout = 0.1f;
    return c;
}

td_status td_latent_train_config_init(td_latent_train_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_latent_train_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, LATENT_TRAIN_CONFIG_V1, __func__);
}

static tdi_adamw_config optimizer_config(const td_latent_train_config *c)
{
    tdi_adamw_config o = tdi_adamw_config_default();
    o.lr = c->lr;
    o.min_lr = c->min_lr;
    o.warmup = c->warmup_steps;
    o.total = c->total_steps;
    o.beta1 = c->beta1;
    o.beta2 = c->beta2;
    o.eps = c->eps;
    o.weight_decay = c->weight_decay;
    o.clip_norm = c->clip_norm;
    return o;
}

static td_status check_config(const td_latent_train_config *c, const char *f)
{
    TDI_CHECK_ARG(c->batch_size >= 1 && c->batch_size <= 65536,
                  "%s: batch_size = %d is outside [1, 65536]", f, (int)c->batch_size);
    TDI_CHECK_ARG(c->n_threads >= 1 && c->n_threads <= 1024,
                  "%s: n_threads = %d is outside [1, 1024]", f, (int)c->n_threads);
    TDI_CHECK_ARG(c->stage == TD_LATENT_STAGE_AUTOENCODER || c->stage == TD_LATENT_STAGE_DIFFUSION,
                  "%s: stage = %d is not a td_latent_stage", f, (int)c->stage);
    TDI_CHECK_ARG(c->reserved1 == 0, "%s: reserved1 must be 0", f);
    TDI_CHECK_ARG(c->mse_weight >= 0.0f && isfinite(c->mse_weight),
                  "%s: mse_weight = %g must be finite and >= 0", f, (double)c->mse_weight);
    TDI_CHECK_ARG(c->mask_prob >= 0.0f && c->mask_prob < 1.0f,
                  "%s: mask_prob = %g is outside [0, 1)", f, (double)c->mask_prob);
    TDI_CHECK_ARG(c->noise_std >= 0.0f && isfinite(c->noise_std),
                  "%s: noise_std = %g must be finite and >= 0", f, (double)c->noise_std);
    TDI_CHECK_ARG(c->latent_dropout >= 0.0f && c->latent_dropout < 1.0f,
                  "%s: latent_dropout = %g is outside [0, 1)", f, (double)c->latent_dropout);
    tdi_adamw_config o = optimizer_config(c);
    td_status st = tdi_adamw_config_check(&o);
    if (st != TD_OK) return tdi_fail_context(st, "%s", f);
    return TD_OK;
}

void td_latent_trainer_free(td_latent_trainer *t)
{
    if (t == NULL) return;
    tdi_errslot_destroy(&t->err);
    td_allocator a = t->alloc;
    tdi_pool_free(t->pool);
    tdi_workspace_free(t->ews);
    tdi_latent_ws_free(t->ws);
    tdi_adamw_free(t->opt);
    tdi_free(&a, t->grads);
    tdi_free(&a, t->feat_in);
    tdi_free(&a, t->drop);
    tdi_free(&a, t->x0);
    tdi_free(&a, t->times);
    tdi_free(&a, t);
}

size_t td_latent_trainer_errmsg(const td_latent_trainer *t, char *buf, size_t cap)
{
    return tdi_errslot_copy(t != NULL ? &t->err : NULL, buf, cap);
}

static int decays(tdi_tensor_kind k)
{
    return tdi_param_kind_decays(k == TDI_TENSOR_MATRIX ? TDI_PARAM_MATRIX
                                 : k == TDI_TENSOR_EMBEDDING ? TDI_PARAM_EMBEDDING
                                 : k == TDI_TENSOR_BIAS ? TDI_PARAM_BIAS : TDI_PARAM_NORM,
                                 TDI_DECAY_KINDS_DEFAULT);
}

static td_status allocate(td_latent_trainer *t)
{
    static const char f[] = "td_latent_trainer_create";
    const tdi_latent_ae *ae = t->lm->ae;
    const tdi_latent_config *c = &ae->cfg;
    int32_t B = t->cfg.batch_size;
    int diffusion = t->cfg.stage == TD_LATENT_STAGE_DIFFUSION;
    size_t nf = (size_t)B * c->seq_len * c->d_enc, nl = (size_t)B * c->n_latents * c->d_latent;
    t->grads = tdi_calloc(&t->alloc, ae->n_floats, sizeof(float));
    if (t->grads == NULL) return tdi_nomem(f, ae->n_floats * sizeof(float));
    if (diffusion) {
        t->x0 = tdi_calloc(&t->alloc, 6 * nl, sizeof(float));
        if (t->x0 == NULL) return tdi_nomem(f, 6 * nl * sizeof(float));
        t->eps = t->x0 + nl;
        t->z = t->eps + nl;
        t->sc = t->z + nl;
        t->target = t->sc + nl;
        t->dpred = t->target + nl;
        t->times = tdi_calloc(&t->alloc, (size_t)B, sizeof(double));
        if (t->times == NULL) return tdi_nomem(f, (size_t)B * sizeof(double));
    } else {
        t->feat_in = tdi_calloc(&t->alloc, nf, sizeof(float));
        if (t->feat_in == NULL) return tdi_nomem(f, nf * sizeof(float));
        t->drop = tdi_calloc(&t->alloc, nl, sizeof(float));
        if (t->drop == NULL) return tdi_nomem(f, nl * sizeof(float));
    }
    TDI_TRY(tdi_workspace_create(t->lm->encoder->m, B, c->seq_len, 1, t->cfg.n_threads, 0,
                                 &t->ews));
    TDI_TRY(tdi_latent_ws_create(ae, B, 1, &t->ws));
    TDI_TRY(tdi_pool_create(&t->alloc, t->cfg.n_threads, &t->pool));
    /* The autoencoder's tensors, or the denoiser's (docs/latent-diffusion.md). */
    int32_t first = diffusion ? ae->n_ae_tensors : 0;
    int32_t last = diffusion ? ae->n_tensors : ae->n_ae_tensors;
    t->p_off = diffusion ? ae->n_ae_floats : 0;
    t->p_count = diffusion ? ae->n_floats - ae->n_ae_floats : ae->n_ae_floats;
    tdi_adamw_config o = optimizer_config(&t->cfg);
    TDI_TRY(tdi_adamw_create(&t->alloc, t->p_count, &o, &t->opt));
    size_t nr = (size_t)(last - first);
    tdi_param_range *ranges = tdi_malloc(&t->alloc, sizeof *ranges * nr);
    if (ranges == NULL) return tdi_nomem(f, sizeof *ranges * nr);
    for (int32_t i = first; i < last; i++) {
        const tdi_tensor *ts = &ae->tensors[i];
        size_t end = i + 1 < last ? ae->tensors[i + 1].offset : t->p_off + t->p_count;
        ranges[i - first] = (tdi_param_range){ ts->offset - t->p_off, end - ts->offset,
                                               decays(ts->kind) };
    }
    td_status st = tdi_adamw_set_decay_ranges(t->opt, ranges, nr);
    tdi_free(&t->alloc, ranges);
    return st;
}

td_status td_latent_trainer_create(td_latent_model *lm, const td_latent_train_config *cfg,
                                   td_latent_trainer **out)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(cfg);
    td_latent_train_config c = default_config();
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, LATENT_TRAIN_CONFIG_V1, __func__, "cfg"));
    TDI_TRY(check_config(&c, __func__));
    td_latent_trainer *t = tdi_calloc(&lm->ae->alloc, 1, sizeof *t);
    if (t == NULL) return tdi_nomem(__func__, sizeof *t);
    tdi_errslot_init(&t->err);
    t->alloc = lm->ae->alloc;
    t->lm = lm;
    t->cfg = c;
    tdi_rng_seed(&t->rng, c.seed);
    td_status st = allocate(t);
    if (st != TD_OK) {
        td_latent_trainer_free(t);
        return st;
    }
    *out = t;
    return TD_OK;
}

/* feat_in = features with rows zeroed (mask_prob) and Gaussian noise;
 * drop = 0 or 1/(1 − p) per latent feature. One draw per row, then per
 * element, in order: the same seed gives the same augmentations. */
static void augment(td_latent_trainer *t, const float *feat)
{
    const tdi_latent_config *c = &t->lm->ae->cfg;
    int32_t B = t->cfg.batch_size, De = c->d_enc;
    size_t rows = (size_t)B * c->seq_len;
    double pm = t->cfg.mask_prob, sd = t->cfg.noise_std, pd = t->cfg.latent_dropout;
    for (size_t r = 0; r < rows; r++) {
        int masked = pm > 0.0 && tdi_rng_f64(&t->rng) < pm;
        const float *src = feat + r * De;
        float *dst = t->feat_in + r * De;
        for (int32_t j = 0; j < De; j++) {
            double v = masked ? 0.0 : src[j];
            if (sd > 0.0) v += sd * tdi_rng_normal(&t->rng);
            dst[j] = (float)v;
        }
    }
    size_t nl = (size_t)B * c->n_latents * c->d_latent;
    float keep = (float)(1.0 / (1.0 - pd));
    for (size_t i = 0; i < nl; i++)
        t->drop[i] = pd > 0.0 && tdi_rng_f64(&t->rng) < pd ? 0.0f : (pd > 0.0 ? keep : 1.0f);
}

/* The autoencoder stage's loss and gradients; *correct for the stats. */
static double autoencoder_pass(td_latent_trainer *t, const int32_t *tokens, const float *feat,
                               double *ce, double *mse, int64_t *correct)
{
    tdi_latent_ae *ae = t->lm->ae;
    int32_t B = t->cfg.batch_size;
    augment(t, feat);
    tdi_latent_ae_compress(ae, t->ws, t->feat_in, B, t->pool);
    tdi_latent_ae_decode(ae, t->ws, t->ws->lat, t->drop, B, t->pool);
    return tdi_latent_ae_loss(ae, t->ws, tokens, feat, t->cfg.mse_weight, ce, mse, correct,
                              t->grads, t->pool);
}

/* The diffusion stage's loss and gradients (the header's td_latent_trainer
 * comment): times stratified over the batch, z_t, self-conditioning for a
 * random half, the prediction's mean squared error. */
static double diffusion_pass(td_latent_trainer *t, const float *feat)
{
    tdi_latent_ae *ae = t->lm->ae;
    const tdi_latent_config *c = &ae->cfg;
    int32_t B = t->cfg.batch_size;
    size_t per = (size_t)c->n_latents * c->d_latent, n = (size_t)B * per;
    tdi_latent_ae_compress(ae, t->ws, feat, B, t->pool);
    memcpy(t->x0, t->ws->lat, n * sizeof(float));
    double u = tdi_rng_f64(&t->rng);
    for (int32_t b = 0; b < B; b++) t->times[b] = fmod(u + (double)b / B, 1.0);
    for (size_t i = 0; i < n; i++) t->eps[i] = (float)tdi_rng_normal(&t->rng);
    for (int32_t b = 0; b < B; b++) {
        double a, s;
        tdi_latent_alpha_sigma(c, t->times[b], &a, &s);
        for (size_t i = b * per; i < (b + 1) * per; i++) {
            t->z[i] = (float)(a * t->x0[i] + s * t->eps[i]);
            t->target[i] = c->prediction == TDI_LATENT_X0 ? t->x0[i]
                                                          : (float)(a * t->eps[i] - s * t->x0[i]);
        }
    }
    const float *sc = NULL;
    if (c->self_cond) {
        int any = 0;
        tdi_latent_denoise(ae, t->ws, t->z, NULL, t->times, B, t->pool);
        for (int32_t b = 0; b < B; b++) {
            int use = tdi_rng_f64(&t->rng) < 0.5;
            double a, s;
            tdi_latent_alpha_sigma(c, t->times[b], &a, &s);
            if (use) {
                tdi_latent_x0_of(c, t->ws->pred + b * per, t->z + b * per, a, s, per,
                                 t->sc + b * per);
                any = 1;
            } else {
                memset(t->sc + b * per, 0, per * sizeof(float));
            }
        }
        if (any) sc = t->sc;
    }
    tdi_latent_denoise(ae, t->ws, t->z, sc, t->times, B, t->pool);
    double sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)t->ws->pred[i] - t->target[i];
        sq += e * e;
        t->dpred[i] = (float)(2.0 * e / (double)n);
    }
    tdi_latent_denoise_backward(ae, t->ws, t->dpred, t->grads, t->pool);
    return sq / (double)n;
}

static td_status step(td_latent_trainer *t, const int32_t *tokens, td_latent_train_stats *stats)
{
    static const char func[] = "td_latent_trainer_step";
    tdi_latent_ae *ae = t->lm->ae;
    int32_t B = t->cfg.batch_size;
    int diffusion = t->cfg.stage == TD_LATENT_STAGE_DIFFUSION;
    const float *feat;
    memset(t->grads, 0, ae->n_floats * sizeof(float));
    TDI_TRY(tdi_latent_features(t->lm, t->ews, tokens, B, t->pool, &feat));
    double ce = NAN, mse, loss;
    int64_t correct = 0;
    if (diffusion) loss = mse = diffusion_pass(t, feat);
    else loss = autoencoder_pass(t, tokens, feat, &ce, &mse, &correct);
    int64_t next = tdi_adamw_steps(t->opt) + 1;
    if (!isfinite(loss))
        return tdi_fail(TD_ERR_NUMERIC, "%s: loss is %g at step %lld; step not applied", func,
                        loss, (long long)next);
    double grad_norm = 0.0;
    td_status st = tdi_adamw_step(t->opt, ae->params + t->p_off, t->grads + t->p_off, t->pool,
                                  &grad_norm);
    if (st == TD_ERR_NUMERIC)
        return tdi_fail(TD_ERR_NUMERIC, "%s: gradient norm is %g at step %lld; step not applied",
                        func, grad_norm, (long long)next);
    TDI_TRY(st);
    if (stats != NULL) {
        td_latent_train_stats full;
        memset(&full, 0, sizeof full);
        full.step = tdi_adamw_steps(t->opt);
        full.loss = loss;
        full.ce = ce;
        full.mse = mse;
        full.accuracy = diffusion ? NAN : (double)correct / ((double)B * ae->cfg.seq_len);
        full.grad_norm = grad_norm;
        full.lr = tdi_adamw_lr(tdi_adamw_get_config(t->opt), full.step);
        tdi_struct_out(stats, stats->struct_size, &full, sizeof full);
    }
    return TD_OK;
}

td_status td_latent_trainer_step(td_latent_trainer *t, const int32_t *tokens,
                                 td_latent_train_stats *stats)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(tokens);
    if (stats != NULL)
        TDI_TRY(tdi_struct_size_check(stats->struct_size, LATENT_TRAIN_STATS_V1, __func__,
                                      "stats"));
    const tdi_latent_config *c = &t->lm->ae->cfg;
    TDI_TRY(tdi_check_ids(tokens, (size_t)t->cfg.batch_size * c->seq_len, c->vocab_size,
                          __func__));
    size_t n = (size_t)t->cfg.batch_size * c->seq_len;
    for (size_t i = 0; i < n; i++)
        TDI_CHECK_ARG(tokens[i] != c->mask_id, "%s: tokens[%zu] is [MASK]: the autoencoder "
                      "learns text", __func__, i);
    /* A failed step changes nothing: the generator is put back. */
    tdi_rng saved = t->rng;
    td_status st = step(t, tokens, stats);
    if (st != TD_OK) t->rng = saved;
    return st;
}

/* ---- checkpoints (docs/latent-diffusion.md, "Resuming") ------------------- */

td_status td_latent_trainer_save(const td_latent_trainer *t, const char *path)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    tdi_ckpt_writer *w;
    TDI_TRY(tdi_ckpt_writer_create(&t->alloc, &w));
    uint64_t n = tdi_adamw_size(t->opt);
    td_status st = tdi_latent_write(t->lm->ae, w);
    if (st == TD_OK) st = tdi_ckpt_put_i64(w, "latent.trainer.stage", t->cfg.stage);
    if (st == TD_OK) st = tdi_ckpt_put_i64(w, "latent.trainer.step", tdi_adamw_steps(t->opt));
    if (st == TD_OK) st = tdi_ckpt_put_u64_array(w, "latent.trainer.rng", t->rng.s, 4);
    if (st == TD_OK) st = tdi_ckpt_put_i64(w, "latent.trainer.batch_size", t->cfg.batch_size);
    if (st == TD_OK) st = tdi_ckpt_put_u64(w, "latent.trainer.seed", t->cfg.seed);
    if (st == TD_OK)
        st = tdi_ckpt_add_tensor(w, "opt.m", TDI_DTYPE_F32, 1, &n,
                                 tdi_adamw_m(((td_latent_trainer *)t)->opt), 0);
    if (st == TD_OK)
        st = tdi_ckpt_add_tensor(w, "opt.v", TDI_DTYPE_F32, 1, &n,
                                 tdi_adamw_v(((td_latent_trainer *)t)->opt), 0);
    if (st == TD_OK) st = tdi_ckpt_write_file(w, path);
    tdi_ckpt_writer_free(w);
    return st;
}

#define BAD(...) tdi_fail(TD_ERR_FORMAT, "latent trainer checkpoint: " __VA_ARGS__)

/* n floats, finite, never negative for v. */
static td_status read_moments(const tdi_ckpt *ck, const char *name, size_t n, const float **out)
{
    const tdi_ckpt_tensor *ct;
    TDI_TRY(tdi_ckpt_tensor_get(ck, name, TDI_DTYPE_F32, &ct));
    if (ct->ndim != 1 || ct->count != n)
        return BAD("tensor %s has %llu values in %u dimensions, %zu expected in 1", name,
                   (unsigned long long)ct->count, (unsigned)ct->ndim, n);
    const float *x = ct->data;
    int second = strcmp(name, "opt.v") == 0;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]) || (second && x[k] < 0.0f))
            return tdi_fail(TD_ERR_CORRUPT, "latent trainer checkpoint: %s[%zu] = %g is invalid",
                            name, k, (double)x[k]);
    *out = x;
    return TD_OK;
}

static td_status same(const char *path, const char *what, long long saved, long long mine)
{
    if (saved == mine) return TD_OK;
    return tdi_fail(TD_ERR_STATE, "td_latent_trainer_resume: '%s' differs from the trainer in "
                    "%s: the checkpoint has %lld, the trainer %lld", path, what, saved, mine);
}

/* Everything read and checked before the trainer changes. */
static td_status resume(td_latent_trainer *t, const tdi_ckpt *ck, const char *path)
{
    const tdi_latent_ae *ae = t->lm->ae;
    tdi_latent_ae *saved = NULL;
    TDI_TRY(tdi_latent_read(ck, &t->alloc, &saved));
    td_status st = TD_OK;
    if (memcmp(&saved->cfg, &ae->cfg, sizeof ae->cfg) != 0)
        st = tdi_fail(TD_ERR_STATE, "td_latent_trainer_resume: '%s' holds a latent model of "
                      "another configuration (L %d, N %d, d %d, ...) than the trainer's "
                      "(L %d, N %d, d %d, ...)", path, (int)saved->cfg.seq_len,
                      (int)saved->cfg.n_latents, (int)saved->cfg.d_latent,
                      (int)ae->cfg.seq_len, (int)ae->cfg.n_latents, (int)ae->cfg.d_latent);
    int64_t stage = -1, step = -1, batch = -1;
    uint64_t seed = 0;
    const uint64_t *rng = NULL;
    size_t n_rng = 0;
    const float *m = NULL, *v = NULL;
    size_t n = tdi_adamw_size(t->opt);
    if (st == TD_OK) st = tdi_ckpt_get_i64(ck, "latent.trainer.stage", &stage);
    if (st == TD_OK) st = tdi_ckpt_get_i64(ck, "latent.trainer.step", &step);
    if (st == TD_OK && (step < 0 || step == INT64_MAX))
        st = BAD("latent.trainer.step = %lld is outside 0..2^63 - 2", (long long)step);
    if (st == TD_OK) st = tdi_ckpt_get_u64_array(ck, "latent.trainer.rng", &rng, &n_rng);
    if (st == TD_OK && (n_rng != 4 || (rng[0] | rng[1] | rng[2] | rng[3]) == 0))
        st = BAD("latent.trainer.rng is not a generator state (4 numbers, not all 0)");
    if (st == TD_OK) st = tdi_ckpt_get_i64(ck, "latent.trainer.batch_size", &batch);
    if (st == TD_OK) st = tdi_ckpt_get_u64(ck, "latent.trainer.seed", &seed);
    if (st == TD_OK) st = same(path, "stage", (long long)stage, (long long)t->cfg.stage);
    if (st == TD_OK)
        st = same(path, "batch_size", (long long)batch, (long long)t->cfg.batch_size);
    if (st == TD_OK && seed != t->cfg.seed)
        st = tdi_fail(TD_ERR_STATE, "td_latent_trainer_resume: '%s' differs from the trainer "
                      "in seed: the checkpoint has %llu, the trainer %llu", path,
                      (unsigned long long)seed, (unsigned long long)t->cfg.seed);
    if (st == TD_OK) st = read_moments(ck, "opt.m", n, &m);
    if (st == TD_OK) st = read_moments(ck, "opt.v", n, &v);
    if (st == TD_OK) st = tdi_adamw_set_steps(t->opt, step);
    if (st == TD_OK) {
        memcpy(t->lm->ae->params, saved->params, ae->n_floats * sizeof(float));
        memcpy(tdi_adamw_m(t->opt), m, n * sizeof(float));
        memcpy(tdi_adamw_v(t->opt), v, n * sizeof(float));
        memcpy(t->rng.s, rng, sizeof t->rng.s);
    }
    tdi_latent_ae_free(saved);
    return st;
}

td_status td_latent_trainer_resume(td_latent_trainer *t, const char *path)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    tdi_ckpt *ck;
    TDI_TRY(tdi_ckpt_read_file(&t->alloc, path, &ck));
    td_status st = resume(t, ck, path);
    tdi_ckpt_free(ck);
    return st;
}
