/* GELU: the tanh approximation (GPT-2, Hugging Face's "gelu_new") and the
 * exact erf form (BERT's "gelu"). */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/simd.h"

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

/* Chunks keep the loop count in range and give each thread long,
 * vectorisable runs. */
#define CHUNK 4096

/* The kernels are static and cloned (an exported ifunc would escape the
 * library's hidden visibility); the tdi_ functions call them. */

typedef struct gelu_job {
    float *out;
    const float *x, *dy;
    size_t n;
} gelu_job;

#define SQRT1_2 0.7071067811865476f    /* 1/√2 */
#define INV_SQRT_2PI 0.3989422804014327f /* 1/√(2π) */

/* The chunks' element range [i0, i1). */
static void chunk_range(const gelu_job *g, long c, size_t *i0, size_t *i1)
{
    *i0 = (size_t)c * CHUNK;
    *i1 = *i0 + CHUNK < g->n ? *i0 + CHUNK : g->n;
}

/* y, x [n] */
TDI_TARGET_CLONES static void gelu_forward(void *ctx, long begin, long end, int tid)
{
    const gelu_job *g = ctx;
    const float *x = g->x;
    float *y = g->out;
    (void)tid;
    for (long c = begin; c < end; c++) {
        size_t i0, i1;
        chunk_range(g, c, &i0, &i1);
        TDI_SIMD()
        for (size_t i = i0; i < i1; i++) {
            float v = x[i];
            float t = tdi_tanhf(GELU_K * (v + GELU_C * v * v * v));
            y[i] = 0.5f * v * (1.0f + t);
        }
    }
}

/* dx, dy, x [n]:  gelu'(x) = ½(1 + t) + ½·x·(1 − t²)·k·(1 + 3c·x²) */
TDI_TARGET_CLONES static void gelu_backward(void *ctx, long begin, long end, int tid)
{
    const gelu_job *g = ctx;
    const float *x = g->x, *dy = g->dy;
    float *dx = g->out;
    (void)tid;
    for (long c = begin; c < end; c++) {
        size_t i0, i1;
        chunk_range(g, c, &i0, &i1);
        TDI_SIMD()
        for (size_t i = i0; i < i1; i++) {
            float v = x[i];
            float t = tdi_tanhf(GELU_K * (v + GELU_C * v * v * v));
            float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v);
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
        }
    }
}

/* The erf form with libm's erff and expf (not vectorised: the models that
 * use it are imported ones, where matching the original matters more). */
static void gelu_erf_forward(void *ctx, long begin, long end, int tid)
{
    const gelu_job *g = ctx;
    (void)tid;
    for (long c = begin; c < end; c++) {
        size_t i0, i1;
        chunk_range(g, c, &i0, &i1);
        for (size_t i = i0; i < i1; i++) {
            float v = g->x[i];
            g->out[i] = 0.5f * v * (1.0f + erff(v * SQRT1_2));
        }
    }
}

/* gelu'(x) = ½(1 + erf(x/√2)) + x·φ(x), φ the standard normal density */
static void gelu_erf_backward(void *ctx, long begin, long end, int tid)
{
    const gelu_job *g = ctx;
    (void)tid;
    for (long c = begin; c < end; c++) {
        size_t i0, i1;
        chunk_range(g, c, &i0, &i1);
        for (size_t i = i0; i < i1; i++) {
            float v = g->x[i];
            float dg = 0.5f * (1.0f + erff(v * SQRT1_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v);
            g->out[i] = g->dy[i] * dg;
        }
    }
}

static long n_chunks(size_t n) { return (long)((n + CHUNK - 1) / CHUNK); }

void tdi_gelu_forward(float *y, const float *x, size_t n, int kind, tdi_pool *pool)
{
    gelu_job g = { y, x, NULL, n };
    tdi_pool_for(pool, n_chunks(n), kind == TDI_GELU_ERF ? gelu_erf_forward : gelu_forward, &g);
}

void tdi_gelu_backward(float *dx, const float *dy, const float *x, size_t n, int kind,
                       tdi_pool *pool)
{
    gelu_job g = { dx, x, dy, n };
    tdi_pool_for(pool, n_chunks(n), kind == TDI_GELU_ERF ? gelu_erf_backward : gelu_backward,
                 &g);
}
