/* The public latent model: create, configuration, checkpoints, encode and
 * decode (docs/latent-diffusion.md). */
#include "latent/latent_api.h"

#include <math.h>
#include <string.h>

#include "io/checkpoint.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/rng.h"

/* The size of td_latent_config in its first version. */
#define LATENT_CONFIG_V1 56
#define LATENT_SAMPLE_CONFIG_V1 32
#define FORMAT_LATENT "libtextdiff-latent"

static td_latent_config default_config(void)
{
    td_latent_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.seq_len = 128;
    c.n_latents = 32;
    c.d_latent = 128;
    c.n_heads = 4;
    c.n_enc_layers = 2;
    c.n_dec_layers = 2;
    c.d_ff = 4 * 128;
    c.n_den_layers = 4;
    c.schedule = TD_LATENT_SCHEDULE_TAN_D;
    c.prediction = TD_LATENT_PREDICT_X0;
    c.self_cond = 1;
    c.tan_d = 9.0;
    return c;
}

td_status td_latent_config_init(td_latent_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_latent_config c = default_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, LATENT_CONFIG_V1, __func__);
}

/* The internal configuration of `pub` over `encoder`. */
static td_status internal_config(const td_latent_config *pub, const td_model *encoder,
                                 tdi_latent_config *c, const char *func)
{
    const tdi_model_config *e = &encoder->m->cfg;
    if (e->causal)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: the encoder is causal; latent features need "
                        "a bidirectional model", func);
    *c = (tdi_latent_config){ pub->seq_len, pub->n_latents, pub->d_latent, pub->n_heads,
                              pub->n_enc_layers, pub->n_dec_layers, pub->d_ff, e->d_model,
                              e->vocab_size, e->mask_id, pub->n_den_layers, pub->schedule,
                              pub->prediction, pub->self_cond, pub->tan_d };
    if (pub->seq_len > e->max_seq_len)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: seq_len = %d is above the encoder's "
                        "max_seq_len = %d", func, (int)pub->seq_len, (int)e->max_seq_len);
    td_status st = tdi_latent_config_validate(c);
    if (st != TD_OK) return tdi_fail_context(st, "%s", func);
    return TD_OK;
}

static td_status wrap(const td_model *encoder, tdi_latent_ae *ae, td_latent_model **out)
{
    td_latent_model *lm = tdi_calloc(&ae->alloc, 1, sizeof *lm);
    if (lm == NULL) {
        tdi_latent_ae_free(ae);
        return tdi_nomem("td_latent_model", sizeof *lm);
    }
    tdi_errslot_init(&lm->err);
    lm->encoder = encoder;
    lm->ae = ae;
    *out = lm;
    return TD_OK;
}

td_status td_latent_model_create(const td_model *encoder, const td_latent_config *cfg,
                                 uint64_t seed, const td_allocator *alloc, td_latent_model **out)
{
    TDI_ENTER(encoder);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(encoder);
    TDI_CHECK_PTR(cfg);
    td_latent_config c = default_config();
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, LATENT_CONFIG_V1, __func__, "cfg"));
    tdi_latent_config ic;
    TDI_TRY(internal_config(&c, encoder, &ic, __func__));
    tdi_latent_ae *ae;
    TDI_TRY(tdi_latent_ae_create(&ic, alloc, &ae));
    tdi_latent_ae_init(ae, seed);
    return wrap(encoder, ae, out);
}

void td_latent_model_free(td_latent_model *lm)
{
    if (lm == NULL) return;
    tdi_errslot_destroy(&lm->err);
    tdi_latent_ae *ae = lm->ae;
    td_allocator a = ae->alloc;
    tdi_free(&a, lm);
    tdi_latent_ae_free(ae);
}

size_t td_latent_model_errmsg(const td_latent_model *lm, char *buf, size_t cap)
{
    return tdi_errslot_copy(lm != NULL ? &lm->err : NULL, buf, cap);
}

static td_latent_config public_config(const tdi_latent_config *c)
{
    td_latent_config p = default_config();
    p.seq_len = c->seq_len;
    p.n_latents = c->n_latents;
    p.d_latent = c->d_latent;
    p.n_heads = c->n_heads;
    p.n_enc_layers = c->n_enc_layers;
    p.n_dec_layers = c->n_dec_layers;
    p.d_ff = c->d_ff;
    p.n_den_layers = c->n_den_layers;
    p.schedule = c->schedule;
    p.prediction = c->prediction;
    p.self_cond = c->self_cond;
    p.tan_d = c->tan_d;
    return p;
}

td_status td_latent_model_get_config(const td_latent_model *lm, td_latent_config *cfg)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(cfg);
    TDI_TRY(tdi_struct_size_check(cfg->struct_size, LATENT_CONFIG_V1, __func__, "cfg"));
    td_latent_config c = public_config(&lm->ae->cfg);
    tdi_struct_out(cfg, cfg->struct_size, &c, sizeof c);
    return TD_OK;
}

td_status td_latent_model_num_params(const td_latent_model *lm, uint64_t *n_params)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(n_params);
    *n_params = lm->ae->n_params;
    return TD_OK;
}

/* ---- checkpoints --------------------------------------------------------- */

typedef struct latent_key {
    const char *key;
    size_t offset; /* in tdi_latent_config */
} latent_key;

static const latent_key keys[] = {
    { "latent.seq_len", offsetof(tdi_latent_config, seq_len) },
    { "latent.n_latents", offsetof(tdi_latent_config, n_latents) },
    { "latent.d_latent", offsetof(tdi_latent_config, d_latent) },
    { "latent.n_heads", offsetof(tdi_latent_config, n_heads) },
    { "latent.n_enc_layers", offsetof(tdi_latent_config, n_enc_layers) },
    { "latent.n_dec_layers", offsetof(tdi_latent_config, n_dec_layers) },
    { "latent.d_ff", offsetof(tdi_latent_config, d_ff) },
    { "latent.encoder.d_model", offsetof(tdi_latent_config, d_enc) },
    { "latent.encoder.vocab_size", offsetof(tdi_latent_config, vocab_size) },
    { "latent.encoder.mask_id", offsetof(tdi_latent_config, mask_id) },
    { "latent.n_den_layers", offsetof(tdi_latent_config, n_den_layers) },
    { "latent.schedule", offsetof(tdi_latent_config, schedule) },
    { "latent.prediction", offsetof(tdi_latent_config, prediction) },
    { "latent.self_cond", offsetof(tdi_latent_config, self_cond) },
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static int32_t *key_ptr(tdi_latent_config *c, const latent_key *k)
{
    return (int32_t *)(void *)((char *)c + k->offset);
}

static void tensor_dims(const tdi_tensor *t, uint32_t *ndim, uint64_t dims[2])
{
    *ndim = t->rows == 1 ? 1 : 2;
    dims[0] = (uint64_t)(t->rows == 1 ? t->cols : t->rows);
    dims[1] = (uint64_t)t->cols;
}

td_status tdi_latent_write(const tdi_latent_ae *ae, tdi_ckpt_writer *w)
{
    tdi_latent_config c = ae->cfg;
    TDI_TRY(tdi_ckpt_put_string(w, "format", FORMAT_LATENT));
    for (size_t i = 0; i < N_KEYS; i++)
        TDI_TRY(tdi_ckpt_put_i64(w, keys[i].key, *key_ptr(&c, &keys[i])));
    TDI_TRY(tdi_ckpt_put_f64(w, "latent.tan_d", c.tan_d));
    for (int32_t i = 0; i < ae->n_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        uint32_t ndim;
        uint64_t dims[2];
        tensor_dims(t, &ndim, dims);
        TDI_TRY(tdi_ckpt_add_tensor(w, t->name, TDI_DTYPE_F32, ndim, dims,
                                    ae->params + t->offset, 0));
    }
    return TD_OK;
}

td_status td_latent_model_save(const td_latent_model *lm, const char *path)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(path);
    tdi_ckpt_writer *w;
    TDI_TRY(tdi_ckpt_writer_create(&lm->ae->alloc, &w));
    td_status st = tdi_latent_write(lm->ae, w);
    if (st == TD_OK) st = tdi_ckpt_write_file(w, path);
    tdi_ckpt_writer_free(w);
    return st;
}

static td_status read_config(const tdi_ckpt *ck, tdi_latent_config *c)
{
    const char *format = NULL;
    td_status st = tdi_ckpt_get_string(ck, "format", &format, NULL);
    if (st != TD_OK || strcmp(format, FORMAT_LATENT) != 0)
        return tdi_fail(TD_ERR_FORMAT, "latent checkpoint: the file holds no latent model "
                        "(metadata key 'format' is not '%s')", FORMAT_LATENT);
    for (size_t i = 0; i < N_KEYS; i++) {
        int64_t v;
        TDI_TRY(tdi_ckpt_get_i64(ck, keys[i].key, &v));
        if (v < 0 || v > INT32_MAX)
            return tdi_fail(TD_ERR_FORMAT, "latent checkpoint: %s = %lld is outside 0..%ld",
                            keys[i].key, (long long)v, (long)INT32_MAX);
        *key_ptr(c, &keys[i]) = (int32_t)v;
    }
    TDI_TRY(tdi_ckpt_get_f64(ck, "latent.tan_d", &c->tan_d));
    if (tdi_latent_config_validate(c) != TD_OK)
        return tdi_fail_context(TD_ERR_FORMAT, "latent checkpoint: invalid configuration");
    return TD_OK;
}

static td_status read_params(const tdi_ckpt *ck, tdi_latent_ae *ae)
{
    for (int32_t i = 0; i < ae->n_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        const tdi_ckpt_tensor *ct;
        TDI_TRY(tdi_ckpt_tensor_get(ck, t->name, TDI_DTYPE_F32, &ct));
        uint32_t ndim;
        uint64_t dims[2];
        tensor_dims(t, &ndim, dims);
        if (ct->ndim != ndim || ct->dims[0] != dims[0] || (ndim == 2 && ct->dims[1] != dims[1]))
            return tdi_fail(TD_ERR_FORMAT, "latent checkpoint: tensor %s has the wrong shape",
                            t->name);
        const float *src = ct->data;
        for (uint64_t k = 0; k < ct->count; k++)
            if (!isfinite(src[k]))
                return tdi_fail(TD_ERR_CORRUPT,
                                "latent checkpoint: tensor %s holds a non-finite value at %llu",
                                t->name, (unsigned long long)k);
        memcpy(ae->params + t->offset, src, ct->nbytes);
    }
    return TD_OK;
}

td_status tdi_latent_read(const tdi_ckpt *ck, const td_allocator *a, tdi_latent_ae **out)
{
    *out = NULL;
    tdi_latent_config c;
    memset(&c, 0, sizeof c);
    TDI_TRY(read_config(ck, &c));
    /* a small file cannot make the loader allocate a large model */
    uint64_t have = 0;
    for (size_t i = 0; i < tdi_ckpt_tensor_count(ck); i++)
        have += tdi_ckpt_tensor_at(ck, i)->count;
    size_t need = tdi_latent_num_params(&c);
    if (need > have)
        return tdi_fail(TD_ERR_FORMAT, "latent checkpoint: its configuration has %zu "
                        "parameters, its tensors hold %llu values", need,
                        (unsigned long long)have);
    tdi_latent_ae *ae;
    TDI_TRY(tdi_latent_ae_create(&c, a, &ae));
    td_status st = read_params(ck, ae);
    if (st != TD_OK) {
        tdi_latent_ae_free(ae);
        return st;
    }
    *out = ae;
    return TD_OK;
}

td_status td_latent_model_load(const char *path, const td_model *encoder,
                               const td_allocator *alloc, td_latent_model **out)
{
    TDI_ENTER(encoder);
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(path);
    TDI_CHECK_PTR(encoder);
    td_allocator al;
    TDI_TRY(tdi_allocator_init(&al, alloc));
    tdi_ckpt *ck;
    TDI_TRY(tdi_ckpt_read_file(&al, path, &ck));
    tdi_latent_config c;
    memset(&c, 0, sizeof c);
    tdi_latent_ae *ae = NULL;
    td_status st = read_config(ck, &c);
    const tdi_model_config *e = &encoder->m->cfg;
    if (st == TD_OK && e->causal)
        st = tdi_fail(TD_ERR_INVALID_ARG, "%s: the encoder is causal", __func__);
    if (st == TD_OK && (e->d_model != c.d_enc || e->vocab_size != c.vocab_size ||
                        e->mask_id != c.mask_id))
        st = tdi_fail(TD_ERR_INVALID_ARG,
                      "%s: %s was trained over an encoder of width %d, vocabulary %d and "
                      "[MASK] %d; this encoder has width %d, vocabulary %d and [MASK] %d",
                      __func__, path, (int)c.d_enc, (int)c.vocab_size, (int)c.mask_id,
                      (int)e->d_model, (int)e->vocab_size, (int)e->mask_id);
    if (st == TD_OK && c.seq_len > e->max_seq_len)
        st = tdi_fail(TD_ERR_INVALID_ARG, "%s: seq_len %d is above the encoder's max_seq_len %d",
                      __func__, (int)c.seq_len, (int)e->max_seq_len);
    if (st == TD_OK) st = tdi_latent_read(ck, &al, &ae);
    tdi_ckpt_free(ck);
    if (st != TD_OK) return st;
    return wrap(encoder, ae, out);
}

/* ---- encode and decode --------------------------------------------------- */

td_status tdi_latent_features(const td_latent_model *lm, tdi_workspace *ews,
                              const int32_t *tokens, int32_t B, tdi_pool *pool,
                              const float **feat)
{
    TDI_TRY(tdi_model_forward(lm->encoder->m, ews, tokens, B, lm->ae->cfg.seq_len, NULL, pool));
    *feat = tdi_ws_final(ews);
    return TD_OK;
}

static td_status check_call(const td_latent_model *lm, int32_t batch, int32_t n_threads,
                            const char *func)
{
    int32_t most = INT32_MAX / lm->ae->cfg.seq_len;
    TDI_CHECK_ARG(batch >= 1 && batch <= most, "%s: batch = %d is outside [1, %d]", func,
                  (int)batch, (int)most);
    TDI_CHECK_ARG(n_threads >= 1 && n_threads <= 1024,
                  "%s: n_threads = %d is outside [1, 1024]", func, (int)n_threads);
    return TD_OK;
}

td_status td_latent_model_encode(const td_latent_model *lm, const int32_t *tokens,
                                 int32_t batch, int32_t n_threads, float *latents)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(tokens);
    TDI_CHECK_PTR(latents);
    TDI_TRY(check_call(lm, batch, n_threads, __func__));
    const tdi_latent_ae *ae = lm->ae;
    int32_t L = ae->cfg.seq_len;
    TDI_TRY(tdi_check_ids(tokens, (size_t)batch * L, ae->cfg.vocab_size, __func__));
    tdi_workspace *ews = NULL;
    tdi_latent_ws *ws = NULL;
    tdi_pool *pool = NULL;
    const float *feat = NULL;
    td_status st = tdi_workspace_create(lm->encoder->m, batch, L, 1, n_threads, 0, &ews);
    if (st == TD_OK) st = tdi_latent_ws_create(ae, batch, 0, &ws);
    if (st == TD_OK) st = tdi_pool_create(&ae->alloc, n_threads, &pool);
    if (st == TD_OK) st = tdi_latent_features(lm, ews, tokens, batch, pool, &feat);
    if (st == TD_OK) {
        tdi_latent_ae_compress(ae, ws, feat, batch, pool);
        size_t n = (size_t)batch * ae->cfg.n_latents * ae->cfg.d_latent;
        memcpy(latents, ws->lat, n * sizeof(float));
        for (size_t i = 0; i < n && st == TD_OK; i++)
            if (!isfinite(ws->lat[i])) /* weights so large that the arithmetic overflows */
                st = tdi_fail(TD_ERR_NUMERIC, "%s: latents[%zu] = %g is not finite", __func__,
                              i, (double)ws->lat[i]);
    }
    tdi_pool_free(pool);
    tdi_latent_ws_free(ws);
    tdi_workspace_free(ews);
    return st;
}

td_status td_latent_model_decode(const td_latent_model *lm, const float *latents,
                                 int32_t batch, int32_t n_threads, int32_t *ids, float *logits)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(latents);
    TDI_CHECK_PTR(ids);
    TDI_TRY(check_call(lm, batch, n_threads, __func__));
    const tdi_latent_ae *ae = lm->ae;
    size_t n = (size_t)batch * ae->cfg.n_latents * ae->cfg.d_latent;
    for (size_t i = 0; i < n; i++)
        TDI_CHECK_ARG(isfinite(latents[i]), "%s: latents[%zu] = %g is not finite", __func__, i,
                      (double)latents[i]);
    tdi_latent_ws *ws = NULL;
    tdi_pool *pool = NULL;
    td_status st = tdi_latent_ws_create(ae, batch, 0, &ws);
    if (st == TD_OK) st = tdi_pool_create(&ae->alloc, n_threads, &pool);
    if (st == TD_OK) {
        tdi_latent_ae_decode(ae, ws, latents, NULL, batch, pool);
        tdi_latent_ae_argmax(ae, ws, ids);
        size_t nz = (size_t)batch * ae->cfg.seq_len * ae->cfg.vocab_size;
        size_t V = (size_t)ae->cfg.vocab_size, mask = (size_t)ae->cfg.mask_id;
        for (size_t i = 0; i < nz && st == TD_OK; i++)
            if (!isfinite(ws->logits[i]) && i % V != mask)
                st = tdi_fail(TD_ERR_NUMERIC, "%s: logit %zu is %g", __func__, i,
                              (double)ws->logits[i]);
        if (logits != NULL)
            memcpy(logits, ws->logits,
                   (size_t)batch * ae->cfg.seq_len * ae->cfg.vocab_size * sizeof(float));
    }
    tdi_pool_free(pool);
    tdi_latent_ws_free(ws);
    return st;
}

/* ---- generation ---------------------------------------------------------- */

static td_latent_sample_config default_sample_config(void)
{
    td_latent_sample_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.sampler = TD_LATENT_SAMPLER_DDIM;
    c.steps = 100;
    c.n_threads = 1;
    c.seed = 1;
    c.noise_scale = 1.0f;
    return c;
}

td_status td_latent_sample_config_init(td_latent_sample_config *cfg, size_t size)
{
    TDI_ENTER_NONE();
    td_latent_sample_config c = default_sample_config();
    return tdi_struct_init(cfg, size, &c, sizeof c, LATENT_SAMPLE_CONFIG_V1, __func__);
}

/* x̂0 [n] from the denoiser's prediction at (α, σ) of z [n]. */
void tdi_latent_x0_of(const tdi_latent_config *c, const float *pred, const float *z, double a,
                      double s, size_t n, float *x0)
{
    for (size_t i = 0; i < n; i++)
        x0[i] = c->prediction == TDI_LATENT_X0 ? pred[i]
                                               : (float)(a * z[i] - s * (double)pred[i]);
}

/* The reverse walk of td_latent_model_generate on the workspace's rows. */
static void reverse(const tdi_latent_ae *ae, tdi_latent_ws *ws, const td_latent_sample_config *sc,
                    int32_t B, float *z, float *x0, float *prev, double *times, tdi_rng *rng,
                    tdi_pool *pool)
{
    const tdi_latent_config *c = &ae->cfg;
    size_t n = (size_t)B * c->n_latents * c->d_latent;
    for (size_t i = 0; i < n; i++) z[i] = (float)(sc->noise_scale * tdi_rng_normal(rng));
    for (int32_t k = sc->steps; k >= 1; k--) {
        double t = (double)k / sc->steps, s = (double)(k - 1) / sc->steps;
        double at, st, as, ss;
        tdi_latent_alpha_sigma(c, t, &at, &st);
        tdi_latent_alpha_sigma(c, s, &as, &ss);
        for (int32_t b = 0; b < B; b++) times[b] = t;
        tdi_latent_denoise(ae, ws, z, c->self_cond && k < sc->steps ? prev : NULL, times, B,
                           pool);
        tdi_latent_x0_of(c, ws->pred, z, at, st, n, x0);
        if (c->self_cond) memcpy(prev, x0, n * sizeof *x0);
        if (k == 1) {
            memcpy(z, x0, n * sizeof *z);
            break;
        }
        if (sc->sampler == TD_LATENT_SAMPLER_DDIM) {
            /* ε̂ = (z − α_t·x̂0)/σ_t, z_s = α_s·x̂0 + σ_s·ε̂ */
            for (size_t i = 0; i < n; i++) {
                double eps = (z[i] - at * x0[i]) / st;
                z[i] = (float)(as * x0[i] + ss * eps);
            }
        } else {
            /* q(z_s | z_t, x0): α_ts = α_t/α_s, σ_ts² = σ_t² − α_ts²·σ_s²,
             * mean = α_ts·σ_s²/σ_t²·z_t + α_s·σ_ts²/σ_t²·x0,
             * var = σ_ts²·σ_s²/σ_t² */
            double ats = at / as, s2ts = st * st - ats * ats * ss * ss;
            if (s2ts < 0.0) s2ts = 0.0;
            double cz = ats * ss * ss / (st * st), cx = as * s2ts / (st * st);
            double sd = sqrt(s2ts * ss * ss / (st * st));
            for (size_t i = 0; i < n; i++)
                z[i] = (float)(cz * z[i] + cx * x0[i] + sd * tdi_rng_normal(rng));
        }
    }
}

td_status td_latent_model_generate(const td_latent_model *lm,
                                   const td_latent_sample_config *cfg, int32_t batch,
                                   int32_t *ids, float *latents)
{
    TDI_ENTER(lm);
    TDI_CHECK_PTR(lm);
    TDI_CHECK_PTR(cfg);
    TDI_CHECK_PTR(ids);
    td_latent_sample_config c = default_sample_config();
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, LATENT_SAMPLE_CONFIG_V1, __func__, "cfg"));
    TDI_CHECK_ARG(c.sampler == TD_LATENT_SAMPLER_DDPM || c.sampler == TD_LATENT_SAMPLER_DDIM,
                  "%s: cfg->sampler = %d is not a td_latent_sampler_kind", __func__,
                  (int)c.sampler);
    TDI_CHECK_ARG(c.steps >= 1 && c.steps <= 100000, "%s: cfg->steps = %d is outside "
                  "[1, 100000]", __func__, (int)c.steps);
    TDI_CHECK_ARG(c.noise_scale >= 0.0f && c.noise_scale <= 10.0f,
                  "%s: cfg->noise_scale = %g is outside [0, 10]", __func__,
                  (double)c.noise_scale);
    TDI_CHECK_ARG(c.reserved0 == 0, "%s: cfg->reserved0 must be 0", __func__);
    TDI_TRY(check_call(lm, batch, c.n_threads, __func__));
    const tdi_latent_ae *ae = lm->ae;
    size_t n = (size_t)batch * ae->cfg.n_latents * ae->cfg.d_latent;
    tdi_latent_ws *ws = NULL;
    tdi_pool *pool = NULL;
    float *buf = NULL;
    double *times = NULL;
    td_status st = tdi_latent_ws_create(ae, batch, 0, &ws);
    if (st == TD_OK) st = tdi_pool_create(&ae->alloc, c.n_threads, &pool);
    if (st == TD_OK) {
        buf = tdi_malloc(&ae->alloc, 3 * n * sizeof *buf);
        times = tdi_malloc(&ae->alloc, (size_t)batch * sizeof *times);
        if (buf == NULL || times == NULL) st = tdi_nomem(__func__, 3 * n * sizeof *buf);
    }
    if (st == TD_OK) {
        tdi_rng rng;
        tdi_rng_seed(&rng, c.seed);
        reverse(ae, ws, &c, batch, buf, buf + n, buf + 2 * n, times, &rng, pool);
        if (latents != NULL) memcpy(latents, buf, n * sizeof *buf);
        tdi_latent_ae_decode(ae, ws, buf, NULL, batch, pool);
        tdi_latent_ae_argmax(ae, ws, ids);
    }
    tdi_free(&ae->alloc, times);
    tdi_free(&ae->alloc, buf);
    tdi_pool_free(pool);
    tdi_latent_ws_free(ws);
    return st;
}
