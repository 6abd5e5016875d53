/* Cross-attention, one (batch, head) pair per loop item. Unlike
 * self-attention (attention.c) the probabilities are kept: the latent
 * autoencoder's pairs are small (Nq·Lk with one of the two the latent
 * count), and keeping them makes the backward three products and a row
 * reduction. Each pair is the same calls whichever thread runs it, so the
 * results do not depend on the thread count. */
#include "kernels/cross_attention.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "kernels/kernels.h"

typedef struct xattn_job {
    float *out, *p, *dq, *dkv, *dp;
    const float *q, *kv, *dout, *pc;
    int Nq, Lk, H, hd;
    float scale;
} xattn_job;

static void softmax_rows(float *s, int rows, int cols)
{
    for (int i = 0; i < rows; i++) {
        float *r = s + (size_t)i * cols, mx = r[0], sum = 0.0f;
        for (int j = 1; j < cols; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < cols; j++) {
            r[j] = tdi_expf(r[j] - mx);
            sum += r[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < cols; j++) r[j] *= inv;
    }
}

static void forward_pairs(void *ctx, long begin, long end, int tid)
{
    const xattn_job *a = ctx;
    int Nq = a->Nq, Lk = a->Lk, H = a->H, hd = a->hd, d = H * hd;
    (void)tid;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        const float *q = a->q + (size_t)b * Nq * d + (size_t)h * hd;
        const float *k = a->kv + (size_t)b * Lk * 2 * d + (size_t)h * hd;
        float *p = a->p + (size_t)bh * Nq * Lk;
        /* S [Nq, Lk] = scale · Q [Nq, hd] · K [Lk, hd]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nq, Lk, hd, a->scale, q, d, k,
                    2 * d, 0.0f, p, Lk);
        softmax_rows(p, Nq, Lk);
        /* Y [Nq, hd] = P [Nq, Lk] · V [Lk, hd] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nq, hd, Lk, 1.0f, p, Lk, k + d,
                    2 * d, 0.0f, a->out + (size_t)b * Nq * d + (size_t)h * hd, d);
    }
}

static void backward_pairs(void *ctx, long begin, long end, int tid)
{
    const xattn_job *a = ctx;
    int Nq = a->Nq, Lk = a->Lk, H = a->H, hd = a->hd, d = H * hd;
    (void)tid;
    for (long bh = begin; bh < end; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        size_t qo = (size_t)b * Nq * d + (size_t)h * hd;
        size_t ko = (size_t)b * Lk * 2 * d + (size_t)h * hd;
        const float *p = a->pc + (size_t)bh * Nq * Lk, *dy = a->dout + qo;
        float *g = a->dp + (size_t)bh * Nq * Lk;
        /* dP [Nq, Lk] = dY [Nq, hd] · V [Lk, hd]ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nq, Lk, hd, 1.0f, dy, d,
                    a->kv + ko + d, 2 * d, 0.0f, g, Lk);
        /* dV [Lk, hd] = P [Nq, Lk]ᵀ · dY [Nq, hd] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lk, hd, Nq, 1.0f, p, Lk, dy, d,
                    0.0f, a->dkv + ko + d, 2 * d);
        /* dS = P ⊙ (dP − Σ_j P·dP), row by row */
        for (int i = 0; i < Nq; i++) {
            float *gr = g + (size_t)i * Lk;
            const float *pr = p + (size_t)i * Lk;
            float dot = 0.0f;
            for (int j = 0; j < Lk; j++) dot += pr[j] * gr[j];
            for (int j = 0; j < Lk; j++) gr[j] = pr[j] * (gr[j] - dot);
        }
        /* dQ [Nq, hd] = scale · dS · K [Lk, hd] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nq, hd, Lk, a->scale, g, Lk,
                    a->kv + ko, 2 * d, 0.0f, a->dq + qo, d);
        /* dK [Lk, hd] = scale · dSᵀ · Q [Nq, hd] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Lk, hd, Nq, a->scale, g, Lk,
                    a->q + qo, d, 0.0f, a->dkv + ko, 2 * d);
    }
}

void tdi_xattn_forward(float *out, float *p, const float *q, const float *kv, int B, int Nq,
                       int Lk, int H, int hd, tdi_pool *pool)
{
    xattn_job a = { out, p, NULL, NULL, NULL, q, kv, NULL, NULL, Nq, Lk, H, hd,
                    (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, tdi_blas_callers(), forward_pairs, &a);
}

void tdi_xattn_backward(float *dq, float *dkv, float *dp, const float *dout, const float *q,
                        const float *kv, const float *p, int B, int Nq, int Lk, int H, int hd,
                        tdi_pool *pool)
{
    xattn_job a = { NULL, NULL, dq, dkv, dp, q, kv, dout, p, Nq, Lk, H, hd,
                    (float)(1.0 / sqrt((double)hd)) };
    tdi_pool_run(pool, (long)B * H, tdi_blas_callers(), backward_pairs, &a);
}
