/* Multi-head self-attention, bidirectional or causal, one (batch, head) pair at
 * a time, so that no [B, H, T, T] tensor ever exists: the pair's T×T scores
 * live in its thread's scratch only while the pair is being computed. Q, K
 * and V of a pair are strided views of the [B·T, 3d] qkv buffer (leading
 * dimension 3d), so no head is ever copied out; each product is one sgemm.
 *
 * Forward keeps two numbers per query row, the score maximum and 1/Σe.
 * Backward recomputes the scores with the same sgemm and rebuilds the
 * probabilities from them through the same functions, so it sees the
 * forward's probabilities bit for bit. A pair's work is the same sequence of
 * calls whichever thread runs it, so results do not depend on the thread
 * count. */
#include "kernels/kernels.h"

#include <assert.h>
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/simd.h"

/* s [T, T] = scale · Q [T, hd] · K [T, hd]ᵀ of pair (b, h). Forward and
 * backward both call this, so the two see the same scores. */
static void scores(float *s, const float *qkv, int b, int h, int T, int d, int hd, float scale)
{
    int ld = 3 * d;
    const float *q = qkv + (size_t)b * T * ld + (size_t)h * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, ld, q + d, ld,
                0.0f, s, T);
}

/* row [T]: masked keys' scores become −∞ (m [T], 1 = attendable; NULL = all),
 * and so do keys j >= lim (lim = T: none; causal query i: lim = i + 1). */
static void mask_row(float *row, const uint8_t *m, int T, int lim)
{
    for (int j = lim; j < T; j++) row[j] = -INFINITY;
    if (!m) return;
    TDI_SIMD()
    for (int j = 0; j < lim; j++) row[j] = m[j] ? row[j] : -INFINITY;
}

/* Sums run in a fixed order — LANES interleaved partial sums, then those
 * in order — so that the versions of the softmax compiled for different
 * vector widths (TDI_TARGET_CLONES) give the same bits. */
#define LANES 16

static float sum_lanes(const float *acc)
{
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++) sum += acc[l];
    return sum;
}

/* row [T] = e^(row − mx), exactly 0 where row is −∞; returns Σ row. */
static inline float exp_shifted(float *row, float mx, int T)
{
    float acc[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= T; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = tdi_expf(row[j + l] - mx);
            row[j + l] = e;
            acc[l] += e;
        }
    for (int l = 0; j + l < T; l++) {
        float e = tdi_expf(row[j + l] - mx);
        row[j + l] = e;
        acc[l] += e;
    }
    return sum_lanes(acc);
}

static void scale_row(float *row, float inv, int T)
{
    TDI_SIMD()
    for (int j = 0; j < T; j++) row[j] *= inv;
}

static void zero_row(float *row, int T)
{
    for (int j = 0; j < T; j++) row[j] = 0.0f;
}

/* s [n, T]: scores in, probabilities out; mx, inv [n] receive each row's
 * maximum and 1/Σe. A row with no attendable key (a padded-out sequence)
 * becomes all zeros and is recorded as mx = −∞, inv = 0. */
TDI_TARGET_CLONES static void softmax_forward(float *s, float *mx_out, float *inv_out,
                                              const uint8_t *m, int n, int T, int causal)
{
    for (int i = 0; i < n; i++) {
        float *row = s + (size_t)i * T;
        mask_row(row, m, T, causal ? i + 1 : T);
        float mx = -INFINITY;
        TDI_SIMD(reduction(max:mx))
        for (int j = 0; j < T; j++) mx = row[j] > mx ? row[j] : mx;
        /* OpenMP starts each lane of a max reduction at the least finite
         * float (clang does), so a row of −∞ may come out as −FLT_MAX. */
        if (!(mx > -FLT_MAX)) {
            zero_row(row, T);
            mx_out[i] = -INFINITY;
            inv_out[i] = 0.0f;
            continue;
        }
        float inv = 1.0f / exp_shifted(row, mx, T);
        scale_row(row, inv, T);
        mx_out[i] = mx;
        inv_out[i] = inv;
    }
}

/* s [T, T]: the same scores in, the forward's probabilities out, from the
 * saved mx, inv [T] and the same operations (no division, no new sum). */
TDI_TARGET_CLONES static void softmax_rebuild(float *s, const float *mx, const float *inv,
                                              const uint8_t *m, int T, int causal)
{
    for (int i = 0; i < T; i++) {
        float *row = s + (size_t)i * T;
        if (mx[i] == -INFINITY) {
            zero_row(row, T);
            continue;
        }
        mask_row(row, m, T, causal ? i + 1 : T);
        (void)exp_shifted(row, mx[i], T);
        scale_row(row, inv[i], T);
    }
}

/* g [T, T]: dP in, dS = P ⊙ (dP − Σ_j P·dP) out, row by row; p [T, T] */
TDI_TARGET_CLONES static void softmax_backward(float *g, const float *p, int T)
{
    for (int i = 0; i < T; i++) {
        float *gr = g + (size_t)i * T;
        const float *pr = p + (size_t)i * T;
        float acc[LANES] = { 0 };
        int j = 0;
        for (; j + LANES <= T; j += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += pr[j + l] * gr[j + l];
        for (int l = 0; j + l < T; l++) acc[l] += pr[j + l] * gr[j + l];
        float dot = sum_lanes(acc);
        TDI_SIMD()
        for (int k = 0; k < T; k++) gr[k] = pr[k] * (gr[k] - dot);
    }
}

/* Threads for a loop of pairs: its scratch slices, and no more than may
 * call the BLAS at once. */
static int callers(int n_slices)
{
    int c = tdi_blas_callers();
    return c < n_slices ? c : n_slices;
}

/* One call's operands; each (batch, head) pair is one item of the loop. */
typedef struct attn_job {
    float *out, *row_max, *row_inv, *dqkv, *scratch;
    const float *qkv, *dout, *fmax, *finv;
    const uint8_t *key_mask;
    int T, H, hd, d, causal;
    size_t slice;
    float scale;
} attn_job;

static void forward_pairs(void *ctx, long begin, long end, int tid)
{
    const attn_job *a = ctx;
    int T = a->T, H = a->H, hd = a->hd, d = a->d, ld = 3 * d;
    float *p = a->scratch + (size_t)tid * a->slice;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        const float *v = a->qkv + (size_t)b * T * ld + 2 * (size_t)d + (size_t)h * hd;
        scores(p, a->qkv, b, h, T, d, hd, a->scale);
        softmax_forward(p, a->row_max + (size_t)bh * T, a->row_inv + (size_t)bh * T,
                        a->key_mask ? a->key_mask + (size_t)b * T : NULL, T, T, a->causal);
        /* Y [T, hd] = P [T, T] · V [T, hd], written into its head's columns */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, ld,
                    0.0f, a->out + (size_t)b * T * d + (size_t)h * hd, d);
    }
}

/* out [B·T, d]; row_max, row_inv [B, H, T] written; qkv [B·T, 3d];
 * key_mask [B·T] or NULL; scratch n_slices x [T, T] (padded, see kernels.h) */
void tdi_attention_forward(float *out, float *row_max, float *row_inv, const float *qkv,
                           const uint8_t *key_mask, int causal, int B, int T, int H, int hd,
                           float *scratch, int n_slices, tdi_pool *pool)
{
    assert(n_slices >= 1);
    attn_job a = { out, row_max, row_inv, NULL, scratch, qkv, NULL, NULL, NULL, key_mask,
                   T, H, hd, H * hd, causal != 0, tdi_attention_scratch_floats(T, 0),
                   (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, callers(n_slices), forward_pairs, &a);
}

/* Window attention's operands (kernels.h). */
typedef struct window_job {
    float *out, *scratch;
    const float *q, *k, *v;
    const uint8_t *key_mask;
    int W, T, H, hd, ldq;
    size_t slice;
    float scale;
} window_job;

static void window_pairs(void *ctx, long begin, long end, int tid)
{
    const window_job *a = ctx;
    const int W = a->W, T = a->T, H = a->H, hd = a->hd, d = H * hd;
    float *p = a->scratch + (size_t)tid * a->slice, *mx = p + (size_t)W * T, *inv = mx + W;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        const float *q = a->q + (size_t)b * W * a->ldq + (size_t)h * hd;
        const float *k = a->k + (size_t)b * T * d + (size_t)h * hd;
        const float *v = a->v + (size_t)b * T * d + (size_t)h * hd;
        /* S [W, T] = scale · Q [W, hd] · K [T, hd]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, W, T, hd, a->scale, q, a->ldq, k,
                    d, 0.0f, p, T);
        softmax_forward(p, mx, inv, a->key_mask ? a->key_mask + (size_t)b * T : NULL, W, T, 0);
        /* Y [W, hd] = P [W, T] · V [T, hd] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, W, hd, T, 1.0f, p, T, v, d,
                    0.0f, a->out + (size_t)b * W * d + (size_t)h * hd, d);
    }
}

void tdi_attention_window_forward(float *out, const float *q, int ldq, const float *k,
                                  const float *v, const uint8_t *key_mask, int B, int W, int T,
                                  int H, int hd, float *scratch, int n_slices, tdi_pool *pool)
{
    assert(n_slices >= 1 && W >= 1 && W <= T);
    window_job a = { out, scratch, q, k, v, key_mask, W, T, H, hd, ldq,
                     tdi_attention_window_floats(W, T), (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, callers(n_slices), window_pairs, &a);
}

static void backward_pairs(void *ctx, long begin, long end, int tid)
{
    const attn_job *a = ctx;
    int T = a->T, H = a->H, hd = a->hd, d = a->d, ld = 3 * d;
    float scale = a->scale;
    float *p = a->scratch + (size_t)tid * a->slice, *g = p + a->slice / 2;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        size_t head = (size_t)b * T * ld + (size_t)h * hd;
        const float *qkv = a->qkv, *dy = a->dout + (size_t)b * T * d + (size_t)h * hd;
        float *dqkv = a->dqkv;
        scores(p, qkv, b, h, T, d, hd, scale);
        softmax_rebuild(p, a->fmax + (size_t)bh * T, a->finv + (size_t)bh * T,
                        a->key_mask ? a->key_mask + (size_t)b * T : NULL, T, a->causal);
        /* dP [T, T] = dY [T, hd] · V [T, hd]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, d,
                    qkv + head + 2 * (size_t)d, ld, 0.0f, g, T);
        /* dV [T, hd] = P [T, T]ᵀ · dY [T, hd] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dy, d,
                    0.0f, dqkv + head + 2 * (size_t)d, ld);
        softmax_backward(g, p, T);
        /* dQ [T, hd] = scale · dS [T, T] · K [T, hd] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, g, T,
                    qkv + head + d, ld, 0.0f, dqkv + head, ld);
        /* dK [T, hd] = scale · dS [T, T]ᵀ · Q [T, hd] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, g, T,
                    qkv + head, ld, 0.0f, dqkv + head + d, ld);
    }
}

/* dqkv [B·T, 3d] written; dout [B·T, d]; qkv [B·T, 3d], row_max, row_inv
 * [B, H, T] and key_mask [B·T] (or NULL) as in the forward pass;
 * scratch n_slices x [2, T, T] (padded, see kernels.h) */
void tdi_attention_backward(float *dqkv, const float *dout, const float *qkv,
                            const float *row_max, const float *row_inv, const uint8_t *key_mask,
                            int causal, int B, int T, int H, int hd, float *scratch,
                            int n_slices, tdi_pool *pool)
{
    assert(n_slices >= 1);
    attn_job a = { NULL, NULL, NULL, dqkv, scratch, qkv, dout, row_max, row_inv, key_mask,
                   T, H, hd, H * hd, causal != 0, tdi_attention_scratch_floats(T, 1),
                   (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, callers(n_slices), backward_pairs, &a);
}
