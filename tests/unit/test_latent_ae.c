/* The latent autoencoder's layers against independent references:
 *  - cross-attention (lib/kernels/cross_attention.c): forward against a naive
 *    double implementation written here, backward against central
 *    differences of it (as test_kernels.c does for the other kernels), and
 *    the same bits on 1 and 2 threads;
 *  - the whole autoencoder (compressor, normalised latents, latent dropout,
 *    decoder, heads, loss) against a PyTorch float64 version of the same
 *    modules: loss, latents, logits and every parameter gradient
 *    (tests/golden/latent_vectors.h, tools/reference/latent_vectors.py). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/test_pool.h"
#include "golden/latent_vectors.h"
#include "io/checkpoint.h"
#include "kernels/cross_attention.h"
#include "latent/autoencoder.h"
#include "util/rng.h"

#define HALF_PI 1.5707963267948966

static tdi_rng rng;

static float *rand_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * tdi_rng_f32(&rng) - 1.0f);
    return p;
}

enum { XB = 2, XNQ = 3, XLK = 5, XH = 2, XHD = 4, XD = XH * XHD };

/* Σ R ⊙ xattn(q, kv) in double, q [XB·XNQ, XD], kv [XB·XLK, 2·XD]. */
static double xattn_ref(const double *q, const double *kv, const float *r, double *out)
{
    double f = 0.0, scale = 1.0 / sqrt((double)XHD);
    for (int b = 0; b < XB; b++)
        for (int h = 0; h < XH; h++)
            for (int i = 0; i < XNQ; i++) {
                double s[XLK], mx = -INFINITY, sum = 0.0;
                const double *qi = q + (size_t)(b * XNQ + i) * XD + h * XHD;
                for (int j = 0; j < XLK; j++) {
                    const double *kj = kv + (size_t)(b * XLK + j) * 2 * XD + h * XHD;
                    s[j] = 0.0;
                    for (int e = 0; e < XHD; e++) s[j] += qi[e] * kj[e];
                    s[j] *= scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < XLK; j++) sum += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < XHD; e++) {
                    double y = 0.0;
                    for (int j = 0; j < XLK; j++)
                        y += s[j] / sum * kv[(size_t)(b * XLK + j) * 2 * XD + XD + h * XHD + e];
                    size_t at = (size_t)(b * XNQ + i) * XD + h * XHD + e;
                    if (out) out[at] = y;
                    f += y * r[at];
                }
            }
    return f;
}

static void test_xattn_against_double_reference(void **state)
{
    (void)state;
    tdi_rng_seed(&rng, 3);
    size_t nq = XB * XNQ * XD, nkv = XB * XLK * 2 * XD, np = XB * XH * XNQ * XLK;
    float *q = rand_floats(nq, 1.5f), *kv = rand_floats(nkv, 1.5f), *r = rand_floats(nq, 1.0f);
    float out[XB * XNQ * XD], p[XB * XH * XNQ * XLK], dq[XB * XNQ * XD], dkv[XB * XLK * 2 * XD];
    float dp[XB * XH * XNQ * XLK];
    tdi_xattn_forward(out, p, q, kv, XB, XNQ, XLK, XH, XHD, NULL);
    double qd[XB * XNQ * XD], kvd[XB * XLK * 2 * XD], ref[XB * XNQ * XD];
    for (size_t i = 0; i < nq; i++) qd[i] = q[i];
    for (size_t i = 0; i < nkv; i++) kvd[i] = kv[i];
    xattn_ref(qd, kvd, r, ref);
    for (size_t i = 0; i < nq; i++) assert_true(fabs(out[i] - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]));
    for (size_t i = 0; i < np; i++) assert_true(p[i] >= 0.0f && p[i] <= 1.0f);
    tdi_xattn_backward(dq, dkv, dp, r, q, kv, p, XB, XNQ, XLK, XH, XHD, NULL);
    /* central differences of the double reference */
    for (int which = 0; which < 2; which++) {
        double *th = which ? kvd : qd;
        const float *g = which ? dkv : dq;
        size_t n = which ? nkv : nq;
        for (size_t i = 0; i < n; i++) {
            double t0 = th[i], h = 1e-6 * (1.0 + fabs(t0));
            th[i] = t0 + h;
            double fp = xattn_ref(qd, kvd, r, NULL);
            th[i] = t0 - h;
            double fm = xattn_ref(qd, kvd, r, NULL);
            th[i] = t0;
            double num = (fp - fm) / (2 * h);
            if (!(fabs(g[i] - num) <= 1e-5 + 1e-4 * fabs(num)))
                fail_msg("xattn %s gradient [%zu]: analytic %.9g, finite difference %.9g",
                         which ? "kv" : "q", i, (double)g[i], num);
        }
    }
    /* the same bits on two threads */
    tdi_pool *pool = test_pool(2);
    float out2[XB * XNQ * XD], p2[XB * XH * XNQ * XLK], dq2[XB * XNQ * XD];
    float dkv2[XB * XLK * 2 * XD];
    tdi_xattn_forward(out2, p2, q, kv, XB, XNQ, XLK, XH, XHD, pool);
    tdi_xattn_backward(dq2, dkv2, dp, r, q, kv, p2, XB, XNQ, XLK, XH, XHD, pool);
    assert_memory_equal(out, out2, sizeof out);
    assert_memory_equal(dq, dq2, sizeof dq);
    assert_memory_equal(dkv, dkv2, sizeof dkv);
    free(q);
    free(kv);
    free(r);
}

static tdi_latent_ae *golden_ae(void)
{
    tdi_latent_config c = { LG_L, LG_N, LG_D, LG_H, LG_NE, LG_ND, LG_FF, LG_DE, LG_V, LG_MASK,
                            LG_NN, TDI_LATENT_TAN_D, TDI_LATENT_X0, 1, 9.0 };
    tdi_latent_ae *ae;
    assert_int_equal(tdi_latent_ae_create(&c, NULL, &ae), TD_OK);
    size_t k = 0;
    for (int32_t i = 0; i < ae->n_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        memcpy(ae->params + t->offset, lg_params + k, n * sizeof(float));
        k += n;
    }
    assert_int_equal(k, sizeof lg_params / sizeof lg_params[0]);
    assert_int_equal(ae->n_params, k);
    assert_int_equal(ae->n_ae_tensors, LG_N_AE_TENSORS);
    return ae;
}

static void assert_close(const char *what, size_t i, double got, double want, double atol,
                         double rtol)
{
    if (!(fabs(got - want) <= atol + rtol * fabs(want)))
        fail_msg("%s [%zu]: %.9g, PyTorch %.9g", what, i, got, want);
}

/* got[i] within tol of want[i] on the scale of the whole tensor (its
 * largest |want|): float32 products, in whatever order and rounding the
 * BLAS computes them, against PyTorch's float64 (as test_golden_model). */
static void assert_tensor_close(const char *what, const float *got, const double *want, size_t n,
                                size_t skip_mod, size_t skip, double tol)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!(skip_mod && i % skip_mod == skip) && fabs(want[i]) > scale) scale = fabs(want[i]);
    for (size_t i = 0; i < n; i++)
        if (!(skip_mod && i % skip_mod == skip)) assert_close(what, i, got[i], want[i], tol * scale, 0);
}

static void run_golden(int n_threads)
{
    tdi_latent_ae *ae = golden_ae();
    tdi_latent_ws *ws;
    assert_int_equal(tdi_latent_ws_create(ae, LG_B, 1, &ws), TD_OK);
    tdi_pool *pool = n_threads > 1 ? test_pool(n_threads) : NULL;
    float *grads = calloc(ae->n_floats, sizeof *grads);
    assert_non_null(grads);
    tdi_latent_ae_compress(ae, ws, lg_feat_in, LG_B, pool);
    assert_tensor_close("latents", ws->lat, lg_latents, LG_B * LG_N * LG_D, 0, 0, 1e-4);
    tdi_latent_ae_decode(ae, ws, ws->lat, lg_drop, LG_B, pool);
    for (size_t i = LG_MASK; i < LG_B * LG_L * LG_V; i += LG_V)
        assert_true(isinf(ws->logits[i]) && ws->logits[i] < 0);
    assert_tensor_close("logits", ws->logits, lg_logits, LG_B * LG_L * LG_V, LG_V, LG_MASK, 1e-4);
    double ce, mse;
    int64_t correct;
    double loss = tdi_latent_ae_loss(ae, ws, lg_tokens, lg_feat, LG_MSE_WEIGHT, &ce, &mse,
                                     &correct, grads, pool);
    assert_close("loss", 0, loss, LG_LOSS, 1e-6, 1e-5);
    assert_close("ce", 0, ce, LG_CE, 1e-6, 1e-5);
    assert_close("mse", 0, mse, LG_MSE, 1e-6, 1e-5);
    assert_true(correct >= 0 && correct <= LG_B * LG_L);
    size_t k = 0;
    for (int32_t i = 0; i < ae->n_ae_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        assert_tensor_close(t->name, grads + t->offset, lg_grads + k, n, 0, 0, 2e-4);
        k += n;
    }
    free(grads);
    tdi_latent_ws_free(ws);
    tdi_latent_ae_free(ae);
}

static void test_autoencoder_matches_pytorch(void **state)
{
    (void)state;
    run_golden(1);
    run_golden(2);
}

/* The denoiser: time conditioning, the self-conditioning input and the
 * self-attention blocks, against PyTorch's autograd. */
static void run_denoiser_golden(int n_threads)
{
    tdi_latent_ae *ae = golden_ae();
    tdi_latent_ws *ws;
    assert_int_equal(tdi_latent_ws_create(ae, LG_B, 1, &ws), TD_OK);
    tdi_pool *pool = n_threads > 1 ? test_pool(n_threads) : NULL;
    float *grads = calloc(ae->n_floats, sizeof *grads);
    size_t n = LG_B * LG_N * LG_D;
    float dpred[LG_B * LG_N * LG_D];
    tdi_latent_denoise(ae, ws, lg_z, lg_sc, lg_times, LG_B, pool);
    double loss = 0.0;
    assert_tensor_close("prediction", ws->pred, lg_pred, n, 0, 0, 1e-4);
    for (size_t i = 0; i < n; i++) {
        double e = (double)ws->pred[i] - lg_target[i];
        loss += e * e / (double)n;
        dpred[i] = (float)(2.0 * e / (double)n);
    }
    assert_close("denoiser loss", 0, loss, LG_DEN_LOSS, 1e-6, 1e-5);
    tdi_latent_denoise_backward(ae, ws, dpred, grads, pool);
    size_t k = 0;
    for (int32_t i = 0; i < ae->n_tensors; i++) {
        const tdi_tensor *t = &ae->tensors[i];
        size_t m = (size_t)t->rows * (size_t)t->cols;
        if (i < ae->n_ae_tensors) { /* the autoencoder is not the denoiser's */
            for (size_t j = 0; j < m; j++)
                if (grads[t->offset + j] != 0.0f)
                    fail_msg("gradient of %s [%zu]: %.9g, not 0", t->name, j,
                             (double)grads[t->offset + j]);
        } else {
            assert_tensor_close(t->name, grads + t->offset, lg_grads + k, m, 0, 0, 2e-4);
        }
        k += m;
    }
    free(grads);
    tdi_latent_ws_free(ws);
    tdi_latent_ae_free(ae);
}

static void test_denoiser_matches_pytorch(void **state)
{
    (void)state;
    run_denoiser_golden(1);
    run_denoiser_golden(2);
}

/* α² + σ² = 1, α decreasing from 1 to 0, σ increasing from 0 to 1; tan-d
 * with d = 1 is the cosine schedule; tan-d (d = 9) is α² = 1/(1 + 81 tan²). */
static void test_schedules(void **state)
{
    (void)state;
    tdi_latent_config c = { 0 };
    for (int kind = 0; kind < 2; kind++) {
        c.schedule = kind;
        c.tan_d = 9.0;
        double a, s, pa = 2.0, ps = -1.0;
        tdi_latent_alpha_sigma(&c, 0.0, &a, &s);
        assert_true(a == 1.0 && s == 0.0);
        tdi_latent_alpha_sigma(&c, 1.0, &a, &s);
        assert_true(a == 0.0 && s == 1.0);
        for (int i = 0; i <= 1000; i++) {
            double t = i / 1000.0;
            tdi_latent_alpha_sigma(&c, t, &a, &s);
            assert_true(fabs(a * a + s * s - 1.0) < 1e-12);
            assert_true(a < pa && s > ps);
            pa = a;
            ps = s;
            double want = kind == 0 ? cos(HALF_PI * t)
                                    : sqrt(1.0 / (1.0 + 81.0 * pow(tan(HALF_PI * t), 2)));
            if (i < 1000) assert_true(fabs(a - want) < 1e-12);
        }
    }
    c.schedule = TDI_LATENT_TAN_D;
    c.tan_d = 1.0;
    tdi_latent_config cos_c = { 0 };
    for (int i = 0; i <= 100; i++) {
        double a1, s1, a2, s2;
        tdi_latent_alpha_sigma(&c, i / 100.0, &a1, &s1);
        tdi_latent_alpha_sigma(&cos_c, i / 100.0, &a2, &s2);
        assert_true(fabs(a1 - a2) < 1e-15 && fabs(s1 - s2) < 1e-15);
    }
}

/* A wrong term shows up: dropping the MSE weight changes the gradient. */
static void test_golden_is_sensitive(void **state)
{
    (void)state;
    tdi_latent_ae *ae = golden_ae();
    tdi_latent_ws *ws;
    assert_int_equal(tdi_latent_ws_create(ae, LG_B, 1, &ws), TD_OK);
    float *grads = calloc(ae->n_floats, sizeof *grads);
    tdi_latent_ae_compress(ae, ws, lg_feat_in, LG_B, NULL);
    tdi_latent_ae_decode(ae, ws, ws->lat, NULL, LG_B, NULL); /* no dropout */
    double ce, mse;
    double loss = tdi_latent_ae_loss(ae, ws, lg_tokens, lg_feat, LG_MSE_WEIGHT, &ce, &mse, NULL,
                                     grads, NULL);
    assert_true(fabs(loss - LG_LOSS) > 1e-3);
    free(grads);
    tdi_latent_ws_free(ws);
    tdi_latent_ae_free(ae);
}

/* Refuses allocations above 64 MiB. */
static void *small_malloc(void *user, size_t n)
{
    (void)user;
    return n > ((size_t)64 << 20) ? NULL : malloc(n);
}
static void *small_realloc(void *user, void *p, size_t n)
{
    (void)user;
    return n > ((size_t)64 << 20) ? NULL : realloc(p, n);
}
static void small_free(void *user, void *p)
{
    (void)user;
    free(p);
}

/* A small file whose configuration is valid but large (d_latent 2048, d_ff
 * 8192, 8 + 8 + 8 blocks: 1.4 billion parameters) and which holds no
 * tensors is refused as malformed before the model is allocated. */
static void test_small_file_large_config(void **state)
{
    (void)state;
    td_model_config mc;
    assert_int_equal(td_model_config_default(&mc), TD_OK);
    mc.vocab_size = 6;
    mc.mask_id = 5;
    mc.max_seq_len = 8;
    mc.d_model = 8;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.d_ff = 16;
    td_model *enc;
    assert_int_equal(td_model_create(&mc, 1, NULL, &enc), TD_OK);
    static const char *const names[] = {
        "latent.seq_len", "latent.n_latents", "latent.d_latent", "latent.n_heads",
        "latent.n_enc_layers", "latent.n_dec_layers", "latent.d_ff", "latent.encoder.d_model",
        "latent.encoder.vocab_size", "latent.encoder.mask_id", "latent.n_den_layers",
        "latent.schedule", "latent.prediction", "latent.self_cond"
    };
    static const int64_t values[] = { 8, 4, 2048, 4, 8, 8, 8192, 8, 6, 5, 8, 1, 0, 1 };
    tdi_ckpt_writer *w;
    assert_int_equal(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_int_equal(tdi_ckpt_put_string(w, "format", "libtextdiff-latent"), TD_OK);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(tdi_ckpt_put_i64(w, names[i], values[i]), TD_OK);
    assert_int_equal(tdi_ckpt_put_f64(w, "latent.tan_d", 9.0), TD_OK);
    char path[] = "/tmp/test_latent_ae_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(tdi_ckpt_write_file(w, path), TD_OK);
    tdi_ckpt_writer_free(w);
    td_allocator small = { small_malloc, small_realloc, small_free, NULL };
    td_latent_model *lm = (td_latent_model *)&lm;
    assert_int_equal(td_latent_model_load(path, enc, &small, &lm), TD_ERR_FORMAT);
    assert_null(lm);
    assert_non_null(strstr(td_last_error_message(), "its tensors hold 0 values"));
    unlink(path);
    td_model_free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xattn_against_double_reference),
        cmocka_unit_test(test_autoencoder_matches_pytorch),
        cmocka_unit_test(test_golden_is_sensitive),
        cmocka_unit_test(test_denoiser_matches_pytorch),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_small_file_large_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
