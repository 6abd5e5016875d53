/* Rotary position embedding, "rotate half" form: within a head of width hd,
 * element i < hd/2 pairs with i + hd/2 and the pair turns by p·θ_i,
 * θ_i = 10000^(−2i/hd). The backward pass turns by −p·θ_i (the transpose of
 * a rotation is its inverse). */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "util/simd.h"

/* cos_t, sin_t [t_max, hd/2] */
void tdi_rope_tables(float *cos_t, float *sin_t, int t_max, int hd)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        double theta = pow(10000.0, -2.0 * (double)i / (double)hd);
        for (int p = 0; p < t_max; p++) {
            /* The angle in double: p·θ reaches 6.5e4 rad, where a float
             * angle would already be off by ~4e-3. */
            double a = (double)p * theta;
            cos_t[(size_t)p * half + i] = (float)cos(a);
            sin_t[(size_t)p * half + i] = (float)sin(a);
        }
    }
}

typedef struct rope_job {
    float *x;
    const float *cos_t, *sin_t;
    int ld, T, n_heads, hd;
    float dir;
} rope_job;

static void rotate_rows(void *ctx, long begin, long end, int tid)
{
    const rope_job *a = ctx;
    int half = a->hd / 2;
    float dir = a->dir;
    (void)tid;
    for (long r = begin; r < end; r++) {
        int p = (int)(r % a->T);
        const float *c = a->cos_t + (size_t)p * half;
        const float *s = a->sin_t + (size_t)p * half;
        for (int h = 0; h < a->n_heads; h++) {
            float *x0 = a->x + (size_t)r * a->ld + (size_t)h * a->hd;
            float *x1 = x0 + half;
            TDI_SIMD()
            for (int i = 0; i < half; i++) {
                float u = x0[i], v = x1[i], si = dir * s[i];
                x0[i] = u * c[i] - v * si;
                x1[i] = v * c[i] + u * si;
            }
        }
    }
}

/* x [n, ld], rotated in place; dir = +1 forward, −1 backward */
static void rope_apply(float *x, int ld, int n, int T, int n_heads, int hd,
                       const float *cos_t, const float *sin_t, float dir, tdi_pool *pool)
{
    rope_job a = { x, cos_t, sin_t, ld, T, n_heads, hd, dir };
    tdi_pool_for(pool, n, rotate_rows, &a);
}

void tdi_rope_forward(float *x, int ld, int n, int T, int n_heads, int hd,
                      const float *cos_t, const float *sin_t, tdi_pool *pool)
{
    rope_apply(x, ld, n, T, n_heads, hd, cos_t, sin_t, 1.0f, pool);
}

void tdi_rope_backward(float *dx, int ld, int n, int T, int n_heads, int hd,
                       const float *cos_t, const float *sin_t, tdi_pool *pool)
{
    rope_apply(dx, ld, n, T, n_heads, hd, cos_t, sin_t, -1.0f, pool);
}
