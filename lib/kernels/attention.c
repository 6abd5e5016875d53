/* Multi-head self-attention without a causal mask. Q, K and V of one
 * (batch, head) are strided views of the [B·T, 3d] qkv buffer (leading
 * dimension 3d), so no head is ever copied out; each product is one sgemm.
 * The GEMMs run in (batch, head) order; the softmax between them runs over
 * all B·H·T rows at once, in parallel. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/parallel.h"

/* att [B, H, T, T]: scores in, probabilities out, one row per (b, h, query).
 * Masked keys get probability exactly 0 (their score becomes −∞ first). */
static void softmax_rows(float *att, const uint8_t *key_mask, int B, int T, int H, int nt)
{
    (void)nt;
    long n_rows = (long)B * H * T;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (long q = 0; q < n_rows; q++) {
        float *row = att + (size_t)q * T;
        if (key_mask) {
            const uint8_t *m = key_mask + (size_t)(q / ((long)H * T)) * T;
            TDI_OMP(simd)
            for (int j = 0; j < T; j++) row[j] = m[j] ? row[j] : -INFINITY;
        }
        float mx = -INFINITY;
        TDI_OMP(simd reduction(max:mx))
        for (int j = 0; j < T; j++) mx = row[j] > mx ? row[j] : mx;
        if (mx == -INFINITY) { /* nothing to attend: a padded-out sequence */
            for (int j = 0; j < T; j++) row[j] = 0.0f;
            continue;
        }
        float sum = 0.0f;
        TDI_OMP(simd reduction(+:sum))
        for (int j = 0; j < T; j++) {
            float e = tdi_expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        TDI_OMP(simd)
        for (int j = 0; j < T; j++) row[j] *= inv;
    }
}

/* out [B·T, d], att [B, H, T, T], qkv [B·T, 3d], key_mask [B·T] or NULL */
void tdi_attention_forward(float *out, float *att, const float *qkv, const uint8_t *key_mask,
                           int B, int T, int H, int hd, int nt)
{
    int d = H * hd, ld = 3 * d;
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * ld + (size_t)h * hd;
            float *s = att + ((size_t)b * H + h) * T * T;
            /* S [T, T] = scale · Q [T, hd] · K [T, hd]ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, ld, q + d,
                        ld, 0.0f, s, T);
        }
    softmax_rows(att, key_mask, B, T, H, nt);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *v = qkv + (size_t)b * T * ld + 2 * (size_t)d + (size_t)h * hd;
            const float *p = att + ((size_t)b * H + h) * T * T;
            /* Y [T, hd] = P [T, T] · V [T, hd], written into its head's columns */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, ld,
                        0.0f, out + (size_t)b * T * d + (size_t)h * hd, d);
        }
}

/* datt [B, H, T, T]: dP in, dS = P ⊙ (dP − Σ_j P·dP) out, row by row */
static void softmax_rows_backward(float *datt, const float *att, long n_rows, int T, int nt)
{
    (void)nt;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (long q = 0; q < n_rows; q++) {
        float *g = datt + (size_t)q * T;
        const float *p = att + (size_t)q * T;
        float dot = 0.0f;
        TDI_OMP(simd reduction(+:dot))
        for (int j = 0; j < T; j++) dot += p[j] * g[j];
        TDI_OMP(simd)
        for (int j = 0; j < T; j++) g[j] = p[j] * (g[j] - dot);
    }
}

/* dqkv [B·T, 3d] written; datt [B, H, T, T] scratch; dout [B·T, d];
 * qkv [B·T, 3d] and att [B, H, T, T] from the forward pass */
void tdi_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, int B, int T, int H, int hd, int nt)
{
    int d = H * hd, ld = 3 * d;
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t head = (size_t)b * T * ld + (size_t)h * hd;
            const float *dy = dout + (size_t)b * T * d + (size_t)h * hd;
            const float *p = att + ((size_t)b * H + h) * T * T;
            float *dp = datt + ((size_t)b * H + h) * T * T;
            /* dP [T, T] = dY [T, hd] · V [T, hd]ᵀ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, d,
                        qkv + head + 2 * (size_t)d, ld, 0.0f, dp, T);
            /* dV [T, hd] = P [T, T]ᵀ · dY [T, hd] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dy, d,
                        0.0f, dqkv + head + 2 * (size_t)d, ld);
        }
    softmax_rows_backward(datt, att, (long)B * H * T, T, nt);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t head = (size_t)b * T * ld + (size_t)h * hd;
            const float *ds = datt + ((size_t)b * H + h) * T * T;
            /* dQ [T, hd] = scale · dS [T, T] · K [T, hd] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, ds, T,
                        qkv + head + d, ld, 0.0f, dqkv + head, ld);
            /* dK [T, hd] = scale · dS [T, T]ᵀ · Q [T, hd] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, ds, T,
                        qkv + head, ld, 0.0f, dqkv + head + d, ld);
        }
}
