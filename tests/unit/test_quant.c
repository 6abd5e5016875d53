/* Reduced-precision weights (docs/quantization.md): the bf16 and q8_0
 * kernels against double-precision references of the same arithmetic, whole
 * models against their float32 originals, checkpoints of converted models,
 * and the errors. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "model/incremental.h"
#include "model/model_api.h"
#include "textdiff/textdiff.h"
#include "util/crc32.h"
#include "util/pool.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void) /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

static float *random_floats(size_t n, double scale)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * uniform());
    return p;
}

/* ---- quantisation of a vector ------------------------------------------- */

static void test_q8_blocks_round_to_the_nearest_step(void **state)
{
    (void)state;
    enum { N = 4 * TDI_Q8_BLOCK };
    float *x = random_floats(N, 3.0);
    x[5] = 0.0f;
    for (int i = 2 * TDI_Q8_BLOCK; i < 3 * TDI_Q8_BLOCK; i++) x[i] = 0.0f; /* an all-zero block */
    tdi_block_q8_0 b[N / TDI_Q8_BLOCK];
    assert_int_equal(tdi_wt_bytes(TDI_WT_Q8_0, N), sizeof b);
    assert_int_equal(sizeof(tdi_block_q8_0), 36);
    assert_true(tdi_quantize(TDI_WT_Q8_0, b, x, N));
    float back[N];
    tdi_dequantize(TDI_WT_Q8_0, back, b, 0, N);
    for (int k = 0; k < N / TDI_Q8_BLOCK; k++) {
        double amax = 0;
        for (int i = 0; i < TDI_Q8_BLOCK; i++) amax = fmax(amax, fabs(x[k * 32 + i]));
        assert_true(fabs(b[k].d - amax / 127.0) <= 1e-7 * amax);
        for (int i = 0; i < TDI_Q8_BLOCK; i++) {
            int q = b[k].qs[i];
            assert_true(q >= -127 && q <= 127);
            /* the nearest multiple of d, within float rounding of x/d */
            assert_true(fabs((double)x[k * 32 + i] - (double)back[k * 32 + i]) <=
                        0.5 * b[k].d * (1 + 1e-5) + 1e-30);
        }
    }
    for (int i = 2 * TDI_Q8_BLOCK; i < 3 * TDI_Q8_BLOCK; i++) assert_true(back[i] == 0.0f);
    /* a non-finite value makes its block's scale NaN, never an undefined cast */
    float bad[TDI_Q8_BLOCK] = { 1.0f, INFINITY, -2.0f, NAN };
    tdi_block_q8_0 nb;
    assert_true(tdi_quantize(TDI_WT_Q8_0, &nb, bad, TDI_Q8_BLOCK));
    assert_true(isnan(nb.d));
    /* a row from the middle */
    float mid[TDI_Q8_BLOCK];
    tdi_dequantize(TDI_WT_Q8_0, mid, b, TDI_Q8_BLOCK, TDI_Q8_BLOCK);
    assert_memory_equal(mid, back + TDI_Q8_BLOCK, sizeof mid);
    free(x);
}

static void test_bf16_rounds_to_nearest_even(void **state)
{
    (void)state;
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: even mantissa (1) wins;
     * 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: 1 + 2^-6. */
    float x[5] = { 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, 1e-3f, FLT_MAX };
    uint16_t h[5];
    float back[5];
    assert_true(tdi_quantize(TDI_WT_BF16, h, x, 4));
    tdi_dequantize(TDI_WT_BF16, back, h, 0, 4);
    assert_true(back[0] == 1.0f);
    assert_true(back[1] == 1.0f + 0x1p-6f);
    assert_true(back[2] == -2.5f);
    assert_true(fabs(back[3] - 1e-3) <= 1e-3 * 0x1p-8);
    assert_false(tdi_quantize(TDI_WT_BF16, h, x + 4, 1)); /* rounds to infinity */
    assert_int_equal(tdi_wt_bytes(TDI_WT_BF16, 5), 10);
    assert_int_equal(tdi_wt_bytes(7, 5), 0);
}

/* ---- the products against double precision ------------------------------- */

/* y [n, out] in double: (add + b) + Σ over blocks of the block's exact integer
 * dot product times both scales (q8_0), or Σ x · bf16(w) (bf16); also Σ of
 * the absolute terms, for the error bound. */
static void reference(int dtype, const float *x, const void *w, const float *b,
                      const float *add, int n, int in, int out, double *y, double *mag)
{
    float *wf = malloc((size_t)out * in * sizeof *wf);
    float *xf = malloc((size_t)n * in * sizeof *xf);
    assert_true(wf && xf);
    tdi_dequantize(dtype, wf, w, 0, (size_t)out * in);
    tdi_block_q8_0 *xq = malloc((size_t)n * in / TDI_Q8_BLOCK * sizeof *xq + 1);
    if (dtype == TDI_WT_Q8_0 && n < TDI_Q_BLAS_MIN_ROWS) { /* x quantised the same way */
        assert_true(tdi_quantize(TDI_WT_Q8_0, xq, x, (size_t)n * in));
        tdi_dequantize(TDI_WT_Q8_0, xf, xq, 0, (size_t)n * in);
    } else {
        memcpy(xf, x, (size_t)n * in * sizeof *xf);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++) {
            double s = (add ? add[(size_t)i * out + j] : 0.0) + (b ? b[j] : 0.0), m = fabs(s);
            for (int k = 0; k < in; k++) {
                double t = (double)xf[(size_t)i * in + k] * wf[(size_t)j * in + k];
                s += t;
                m += fabs(t);
            }
            y[(size_t)i * out + j] = s;
            mag[(size_t)i * out + j] = m;
        }
    free(xq);
    free(xf);
    free(wf);
}

static void check_product(int dtype, int n, int in, int out, int with_add)
{
    float *x = random_floats((size_t)n * in, 2.0);
    float *w32 = random_floats((size_t)out * in, 0.1);
    float *b = random_floats((size_t)out, 0.5);
    float *add = with_add ? random_floats((size_t)n * out, 1.0) : NULL;
    void *w = malloc(tdi_wt_bytes(dtype, (size_t)out * in));
    assert_non_null(w);
    assert_true(tdi_quantize(dtype, w, w32, (size_t)out * in));
    double *yr = malloc((size_t)n * out * sizeof *yr), *mag = malloc((size_t)n * out * sizeof *mag);
    float *y1 = malloc((size_t)n * out * sizeof *y1), *y3 = malloc((size_t)n * out * sizeof *y3);
    assert_true(yr && mag && y1 && y3);
    reference(dtype, x, w, b, add, n, in, out, yr, mag);
    tdi_linear_forward_q(y1, x, w, dtype, b, add, n, in, out, NULL);
    /* the portable C and the vector code (AVX2, VNNI where the CPU has them) agree */
    for (int impl = TDI_Q8_PORTABLE; impl <= TDI_Q8_VNNI; impl++) {
        if (!tdi_q8_impl_available(impl)) continue;
        tdi_linear_forward_q_impl(y3, x, w, dtype, b, add, n, in, out, impl, NULL);
        assert_memory_equal(y1, y3, (size_t)n * out * sizeof *y1);
    }
    tdi_pool *pool;
    assert_int_equal(tdi_pool_create(NULL, 3, &pool), TD_OK);
    if (add) memcpy(y3, add, (size_t)n * out * sizeof *y3); /* the in-place residual */
    tdi_linear_forward_q(y3, x, w, dtype, b, add ? y3 : NULL, n, in, out, pool);
    tdi_pool_free(pool);
    assert_memory_equal(y1, y3, (size_t)n * out * sizeof *y1); /* any pool size, in place */
    /* Float sums of `in` terms: each partial sum rounds once per addition
     * (a generous bound: the lanes make the chains shorter). */
    double bound = (in + 2) * 0x1p-24 * 1.01;
    for (size_t i = 0; i < (size_t)n * out; i++)
        if (fabs(y1[i] - yr[i]) > bound * mag[i] + 1e-30)
            fail_msg("%s n=%d in=%d out=%d: y[%zu] = %.9g, reference %.9g (bound %.3g)",
                     tdi_wt_name(dtype), n, in, out, i, y1[i], yr[i], bound * mag[i]);
    free(x), free(w32), free(b), free(add), free(w), free(yr), free(mag), free(y1), free(y3);
}

static void test_q8_product_matches_double_reference(void **state)
{
    (void)state;
    check_product(TDI_WT_Q8_0, 1, 32, 1, 0);
    check_product(TDI_WT_Q8_0, 1, 96, 70, 1);    /* one row: four columns at a time, a tail */
    check_product(TDI_WT_Q8_0, 1, 4160, 9, 0);
    check_product(TDI_WT_Q8_0, 7, 96, 70, 1);    /* partial tiles both ways */
    check_product(TDI_WT_Q8_0, 9, 4160, 5, 1);   /* more than one chunk of x */
    check_product(TDI_WT_Q8_0, 16, 64, 130, 0);
    check_product(TDI_WT_Q8_0, TDI_Q_BLAS_MIN_ROWS, 96, 70, 1); /* dequantised, the BLAS */
    check_product(TDI_WT_Q8_0, 45, 1088, 33, 0);
}

static void test_bf16_product_matches_double_reference(void **state)
{
    (void)state;
    check_product(TDI_WT_BF16, 1, 1, 1, 0);
    check_product(TDI_WT_BF16, 1, 70, 71, 1);    /* one row: four columns at a time */
    check_product(TDI_WT_BF16, 7, 37, 70, 1);    /* a tail after the 16 lanes */
    check_product(TDI_WT_BF16, 5, 300, 65, 1);
    check_product(TDI_WT_BF16, 40, 600, 35, 1);   /* dequantised, the BLAS */
}

/* ---- whole models -------------------------------------------------------- */

static td_model_config model_config(int variant)
{
    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.vocab_size = 40;
    c.mask_id = 39;
    c.max_seq_len = 16;
    c.d_model = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.d_ff = 128;
    if (variant == 1) { /* BERT-like: learned positions, post-LN, untied, head transform */
        c.pos_encoding = TD_POS_LEARNED;
        c.norm_placement = TD_NORM_POST;
        c.tie_embeddings = 0;
        c.head_transform = 1;
        c.activation = TD_ACT_GELU_ERF;
        c.type_vocab_size = 2;
    } else if (variant == 2) { /* causal, d_ff not a multiple of 32: fc2 stays f32 in q8_0 */
        c.causal = 1;
        c.d_ff = 72;
    }
    return c;
}

/* A model with weights of a trained model's size: N(0, 0.02²) makes logits
 * of ~0.1, where every relative error looks large. */
static td_model *make_model(int variant)
{
    td_model_config c = model_config(variant);
    td_model *m;
    assert_int_equal(td_model_create(&c, 7, NULL, &m), TD_OK);
    return m;
}

static void logits_of(const td_model *m, const int32_t *ids, int T, float *out)
{
    assert_int_equal(td_model_logits(m, ids, 2, T, 2, out), TD_OK);
}

/* max |a − b| over finite entries, relative to the spread (max − min) of b. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double lo = INFINITY, hi = -INFINITY, e = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i])) {
            assert_true(a[i] == b[i]);
            continue;
        }
        lo = fmin(lo, b[i]);
        hi = fmax(hi, b[i]);
        e = fmax(e, fabs((double)a[i] - b[i]));
    }
    return e / (hi - lo);
}

static void test_converted_logits_stay_near_float32(void **state)
{
    (void)state;
    enum { T = 16 };
    int32_t ids[2 * T];
    for (int i = 0; i < 2 * T; i++) ids[i] = (i * 7 + 3) % 39;
    ids[3] = ids[20] = 39; /* [MASK] */
    const size_t n = 2 * T * 40;
    float *l32 = malloc(n * sizeof *l32), *lq = malloc(n * sizeof *lq);
    assert_true(l32 && lq);
    for (int variant = 0; variant < 3; variant++) {
        td_model *m = make_model(variant);
        logits_of(m, ids, T, l32);
        static const double tol[3] = { 0, 0.005, 0.02 }; /* docs/quantization.md */
        for (int dt = TD_DTYPE_BF16; dt <= TD_DTYPE_Q8_0; dt++) {
            td_model *q;
            assert_int_equal(td_model_convert(m, dt, NULL, &q), TD_OK);
            int32_t got = -1;
            assert_int_equal(td_model_get_dtype(q, &got), TD_OK);
            assert_int_equal(got, dt);
            uint64_t np = 0, np32 = 0;
            td_model_num_params(q, &np);
            td_model_num_params(m, &np32);
            assert_int_equal(np, np32);
            /* 2 x 16 rows: the dequantised weights and the BLAS; 16 rows: the
             * library's int8 (q8_0) or bf16 kernels */
            for (int batch = 2; batch >= 1; batch--) {
                assert_int_equal(td_model_logits(q, ids, batch, T, 2, lq), TD_OK);
                double e = rel_err(lq, l32, (size_t)batch * T * 40);
                if (!(e <= tol[dt] && e > 0))
                    fail_msg("variant %d, %s, %d rows: logits differ by %.3g of their range "
                             "(limit %.3g)", variant, dt == TD_DTYPE_BF16 ? "bf16" : "q8_0",
                             batch * T, e, tol[dt]);
            }
            td_model_free(q);
        }
        td_model_free(m);
    }
    free(l32);
    free(lq);
}

/* The incremental (cached) forward of a causal q8_0 model gives the logits
 * of its full forward, within the rounding that moves a quantised
 * activation by a step now and then (the rows' float sums are grouped
 * differently); and the left-to-right sampler runs on it. */
static void test_causal_steps_match_the_full_forward(void **state)
{
    (void)state;
    enum { T = 8, V = 40 };
    td_model *m = make_model(2), *q;
    assert_int_equal(td_model_convert(m, TD_DTYPE_Q8_0, NULL, &q), TD_OK);
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 11 + 2) % 39;
    float full[T * V], step[T * V];
    assert_int_equal(td_model_logits(q, ids, 1, T, 1, full), TD_OK);
    tdi_kv_cache *c;
    assert_int_equal(tdi_kv_cache_create(q->m, 1, T, 1, &c), TD_OK);
    for (int t = 0; t < T; t++) tdi_model_step(q->m, c, ids + t, 1, t, step + t * V, NULL);
    tdi_kv_cache_free(c);
    double e = rel_err(step, full, T * V);
    if (!(e <= 1e-5)) fail_msg("cached steps differ by %.3g of the logits' range", e);

    td_schedule *s;
    td_schedule_config sc;
    td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR);
    assert_int_equal(td_schedule_create(&sc, NULL, &s), TD_OK);
    td_sampler_config cfg;
    td_sampler_config_default(&cfg);
    cfg.max_batch = 1;
    cfg.seed = 3;
    cfg.strategy = TD_SAMPLER_LEFT_TO_RIGHT;
    td_sampler *smp;
    td_status sst = td_sampler_create(q, s, &cfg, &smp);
    if (sst != TD_OK) fail_msg("%s", td_last_error_message());
    int32_t canvas[T];
    for (int i = 0; i < T; i++) canvas[i] = i < 2 ? i + 1 : 39;
    assert_int_equal(td_sampler_generate(smp, canvas, 1, T, NULL, NULL, NULL), TD_OK);
    for (int i = 0; i < T; i++) assert_true(canvas[i] >= 0 && canvas[i] < 39);
    td_sampler_free(smp);
    td_schedule_free(s);
    td_model_free(q);
    td_model_free(m);
}

/* ---- checkpoints --------------------------------------------------------- */

static char tmp_path[256];

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *read_all(const char *path, long *n)
{
    *n = file_size(path);
    unsigned char *p = malloc((size_t)*n);
    FILE *f = fopen(path, "rb");
    assert_true(p && f);
    assert_int_equal(fread(p, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return p;
}

static void test_save_load_round_trip_is_exact(void **state)
{
    (void)state;
    enum { T = 16 };
    int32_t ids[2 * T];
    for (int i = 0; i < 2 * T; i++) ids[i] = (i * 5 + 1) % 39;
    const size_t n = 2 * T * 40;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/td_test_quant_%ld.tdm", (long)getpid());
    for (int variant = 0; variant < 3; variant++) {
        td_model *m = make_model(variant);
        assert_int_equal(td_model_save(m, tmp_path), TD_OK);
        long f32_size = file_size(tmp_path);
        for (int dt = TD_DTYPE_BF16; dt <= TD_DTYPE_Q8_0; dt++) {
            td_model *q, *r, *r2;
            assert_int_equal(td_model_convert(m, dt, NULL, &q), TD_OK);
            assert_int_equal(td_model_save(q, tmp_path), TD_OK);
            long size = file_size(tmp_path);
            /* (variant 2 keeps its fc2.w, whose rows of 72 are no multiple of 32, as f32) */
            assert_true(size < (dt == TD_DTYPE_BF16 ? 0.55 : 0.45) * f32_size);
            assert_int_equal(td_model_load(tmp_path, NULL, &r), TD_OK);
            assert_non_null(r->m->map.addr); /* mapped, like a float32 file */
            long len;
            unsigned char *bytes = read_all(tmp_path, &len);
            assert_int_equal(bytes[8], 2); /* major 2: the file has bf16 or q8_0 tensors */
            assert_int_equal(td_model_load_memory(bytes, (size_t)len, NULL, &r2), TD_OK);
            uint32_t c0 = 0, c1 = 1, c2 = 2;
            td_model_checksum(q, &c0);
            td_model_checksum(r, &c1);
            td_model_checksum(r2, &c2);
            assert_int_equal(c0, c1);
            assert_int_equal(c0, c2);
            int32_t got = -1;
            td_model_get_dtype(r, &got);
            assert_int_equal(got, dt);
            logits_of(q, ids, T, a);
            logits_of(r, ids, T, b);
            assert_memory_equal(a, b, n * sizeof *a);

            /* The same file marked major 1 (its CRC fixed): a 1.x reader's
             * view, where these dtypes do not exist. */
            td_model *bad = NULL;
            bytes[8] = 1;
            uint32_t crc = tdi_crc32(0, bytes, 124);
            for (int k = 0; k < 4; k++) bytes[124 + k] = (unsigned char)(crc >> (8 * k));
            assert_int_equal(td_model_load_memory(bytes, (size_t)len, NULL, &bad),
                             TD_ERR_FORMAT);
            assert_non_null(strstr(td_last_error_message(), "unknown dtype"));
            bytes[8] = 3; /* a future major */
            crc = tdi_crc32(0, bytes, 124);
            for (int k = 0; k < 4; k++) bytes[124 + k] = (unsigned char)(crc >> (8 * k));
            assert_int_equal(td_model_load_memory(bytes, (size_t)len, NULL, &bad),
                             TD_ERR_VERSION);
            assert_null(bad);
            free(bytes);
            td_model_free(r2);
            td_model_free(r);
            td_model_free(q);
        }
        td_model_free(m);
    }
    unlink(tmp_path);
    free(a);
    free(b);
}

/* Files whose containers are sound (every CRC right) but whose contents are
 * not: a q8_0 value of −128, a non-finite scale, a dtype key that the
 * tensors contradict. */
static void test_invalid_quantised_files_are_refused(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/td_test_quant_bad_%ld.tdm", (long)getpid());
    td_model *m = make_model(0), *q, *r = (td_model *)1;
    assert_int_equal(td_model_convert(m, TD_DTYPE_Q8_0, NULL, &q), TD_OK);
    const tdi_tensor *t = tdi_model_find(q->m, "0.fc.w");
    assert_non_null(t);
    assert_int_equal(t->dtype, TDI_WT_Q8_0);
    tdi_block_q8_0 *blk = (tdi_block_q8_0 *)(void *)(q->m->params + t->offset);
    int8_t keep = blk[3].qs[5];
    blk[3].qs[5] = -128;
    assert_int_equal(td_model_save(q, tmp_path), TD_OK);
    assert_int_equal(td_model_load(tmp_path, NULL, &r), TD_ERR_CORRUPT);
    assert_null(r);
    assert_non_null(strstr(td_last_error_message(), "-128"));
    assert_non_null(strstr(td_last_error_message(), "0.fc.w"));
    blk[3].qs[5] = keep;
    blk[7].d = NAN;
    assert_int_equal(td_model_save(q, tmp_path), TD_OK);
    assert_int_equal(td_model_load(tmp_path, NULL, &r), TD_ERR_CORRUPT);
    assert_non_null(strstr(td_last_error_message(), "non-finite"));
    /* a float32 model whose key says q8_0 */
    m->m->dtype = TDI_WT_Q8_0;
    assert_int_equal(td_model_save(m, tmp_path), TD_OK);
    m->m->dtype = TDI_WT_F32;
    assert_int_equal(td_model_load(tmp_path, NULL, &r), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "tok_emb"));
    unlink(tmp_path);
    td_model_free(q);
    td_model_free(m);
}

/* bf16 tensors of an odd number of values end inside a float of the buffer:
 * the two bytes after them are padding, zero however the model was made. */
static void test_odd_bf16_tensors_round_trip(void **state)
{
    (void)state;
    td_model_config c = model_config(0);
    c.pos_encoding = TD_POS_LEARNED; /* an odd head size needs no RoPE */
    c.d_model = 5;
    c.n_heads = 1;
    c.d_ff = 7;
    c.vocab_size = 41;
    c.mask_id = 40;
    td_model *m, *q, *r, *r2;
    assert_int_equal(td_model_create(&c, 3, NULL, &m), TD_OK);
    assert_int_equal(td_model_convert(m, TD_DTYPE_BF16, NULL, &q), TD_OK);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/td_test_quant_odd_%ld.tdm", (long)getpid());
    assert_int_equal(td_model_save(q, tmp_path), TD_OK);
    assert_int_equal(td_model_load(tmp_path, NULL, &r), TD_OK);
    long len;
    unsigned char *bytes = read_all(tmp_path, &len);
    assert_int_equal(td_model_load_memory(bytes, (size_t)len, NULL, &r2), TD_OK);
    uint32_t c0 = 0, c1 = 1, c2 = 2;
    td_model_checksum(q, &c0);
    td_model_checksum(r, &c1);
    td_model_checksum(r2, &c2);
    assert_int_equal(c0, c1);
    assert_int_equal(c0, c2);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = (i * 3) % 40;
    float a[16 * 41], b[16 * 41];
    assert_int_equal(td_model_logits(q, ids, 1, 16, 1, a), TD_OK);
    assert_int_equal(td_model_logits(r2, ids, 1, 16, 1, b), TD_OK);
    assert_memory_equal(a, b, sizeof a);
    free(bytes);
    unlink(tmp_path);
    td_model_free(r2);
    td_model_free(r);
    td_model_free(q);
    td_model_free(m);
}

/* ---- errors -------------------------------------------------------------- */

static void test_bad_requests_are_refused_with_a_message(void **state)
{
    (void)state;
    td_model *m = make_model(1), *q = NULL, *q2 = (td_model *)1;
    char msg[256];
    assert_int_equal(td_model_convert(m, 3, NULL, &q2), TD_ERR_INVALID_ARG);
    assert_null(q2);
    td_model_errmsg(m, msg, sizeof msg);
    assert_non_null(strstr(msg, "TD_DTYPE_Q8_0"));
    assert_int_equal(td_model_convert(m, TD_DTYPE_F32, NULL, &q2), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_convert(m, -1, NULL, &q2), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_convert(NULL, TD_DTYPE_Q8_0, NULL, &q2), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_convert(m, TD_DTYPE_Q8_0, NULL, NULL), TD_ERR_INVALID_ARG);
    int32_t dt = -1;
    assert_int_equal(td_model_get_dtype(m, &dt), TD_OK);
    assert_int_equal(dt, TD_DTYPE_F32);
    assert_int_equal(td_model_get_dtype(m, NULL), TD_ERR_INVALID_ARG);

    assert_int_equal(td_model_convert(m, TD_DTYPE_Q8_0, NULL, &q), TD_OK);
    assert_int_equal(td_model_convert(q, TD_DTYPE_BF16, NULL, &q2), TD_ERR_STATE);
    td_model_errmsg(q, msg, sizeof msg);
    assert_non_null(strstr(msg, "already q8_0"));

    td_schedule *s;
    td_schedule_config sc;
    td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR);
    assert_int_equal(td_schedule_create(&sc, NULL, &s), TD_OK);
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = 2;
    tc.seq_len = 8;
    td_trainer *tr = (td_trainer *)1;
    assert_int_equal(td_trainer_create(q, s, &tc, &tr), TD_ERR_UNSUPPORTED);
    assert_null(tr);
    td_model_errmsg(q, msg, sizeof msg);
    assert_non_null(strstr(msg, "inference only"));
    assert_int_equal(td_model_save_hf(q, "/tmp/td_test_quant_never", 0), TD_ERR_UNSUPPORTED);

    /* a trainer checkpoint whose model.dtype key is not f32 does not resume */
    assert_int_equal(td_trainer_create(m, s, &tc, &tr), TD_OK);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/td_test_quant_tr_%ld.tdc", (long)getpid());
    m->m->dtype = TDI_WT_Q8_0;
    td_status saved = td_trainer_save(tr, tmp_path);
    m->m->dtype = TDI_WT_F32;
    assert_int_equal(saved, TD_OK);
    assert_int_equal(td_trainer_resume(tr, tmp_path, TD_RESUME_STRICT), TD_ERR_FORMAT);
    td_trainer_errmsg(tr, msg, sizeof msg);
    assert_non_null(strstr(msg, "model.dtype"));
    unlink(tmp_path);
    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(q);
    td_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_blocks_round_to_the_nearest_step),
        cmocka_unit_test(test_bf16_rounds_to_nearest_even),
        cmocka_unit_test(test_q8_product_matches_double_reference),
        cmocka_unit_test(test_bf16_product_matches_double_reference),
        cmocka_unit_test(test_converted_logits_stay_near_float32),
        cmocka_unit_test(test_causal_steps_match_the_full_forward),
        cmocka_unit_test(test_save_load_round_trip_is_exact),
        cmocka_unit_test(test_odd_bf16_tensors_round_trip),
        cmocka_unit_test(test_invalid_quantised_files_are_refused),
        cmocka_unit_test(test_bad_requests_are_refused_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
