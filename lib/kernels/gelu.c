/* GELU, tanh approximation (GPT-2, BERT's "gelu_new"). */
#include "kernels/kernels.h"

#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/parallel.h"

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f

/* Chunks keep the OpenMP loop count in range and give each thread long,
 * vectorisable runs. */
#define CHUNK 4096

/* The kernels are static and cloned (an exported ifunc would escape the
 * library's hidden visibility); the tdi_ functions call them. */

/* y, x [n] */
TDI_TARGET_CLONES static void gelu_forward(float *y, const float *x, size_t n, int nt)
{
    (void)nt;
    long n_chunks = (long)((n + CHUNK - 1) / CHUNK);
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (long c = 0; c < n_chunks; c++) {
        size_t i0 = (size_t)c * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        TDI_OMP(simd)
        for (size_t i = i0; i < i1; i++) {
            float v = x[i];
            float t = tdi_tanhf(GELU_K * (v + GELU_C * v * v * v));
            y[i] = 0.5f * v * (1.0f + t);
        }
    }
}

/* dx, dy, x [n]:  gelu'(x) = ½(1 + t) + ½·x·(1 − t²)·k·(1 + 3c·x²) */
TDI_TARGET_CLONES static void gelu_backward(float *dx, const float *dy, const float *x, size_t n,
                                            int nt)
{
    (void)nt;
    long n_chunks = (long)((n + CHUNK - 1) / CHUNK);
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (long c = 0; c < n_chunks; c++) {
        size_t i0 = (size_t)c * CHUNK, i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        TDI_OMP(simd)
        for (size_t i = i0; i < i1; i++) {
            float v = x[i];
            float t = tdi_tanhf(GELU_K * (v + GELU_C * v * v * v));
            float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v);
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
        }
    }
}

void tdi_gelu_forward(float *y, const float *x, size_t n, int nt) { gelu_forward(y, x, n, nt); }

void tdi_gelu_backward(float *dx, const float *dy, const float *x, size_t n, int nt)
{
    gelu_backward(dx, dy, x, n, nt);
}
