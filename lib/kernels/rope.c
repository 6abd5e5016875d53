/* Rotary position embedding, "rotate half" form: within a head of width hd,
 * element i < hd/2 pairs with i + hd/2 and the pair turns by p·θ_i,
 * θ_i = 10000^(−2i/hd). The backward pass turns by −p·θ_i (the transpose of
 * a rotation is its inverse). */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "util/parallel.h"

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

/* x [n, ld], rotated in place; dir = +1 forward, −1 backward */
static void rope_apply(float *x, int ld, int n, int T, int n_heads, int hd,
                       const float *cos_t, const float *sin_t, float dir, int nt)
{
    (void)nt;
    int half = hd / 2;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int r = 0; r < n; r++) {
        int p = r % T;
        const float *c = cos_t + (size_t)p * half;
        const float *s = sin_t + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *x0 = x + (size_t)r * ld + (size_t)h * hd;
            float *x1 = x0 + half;
            TDI_OMP(simd)
            for (int i = 0; i < half; i++) {
                float a = x0[i], b = x1[i], si = dir * s[i];
                x0[i] = a * c[i] - b * si;
                x1[i] = b * c[i] + a * si;
            }
        }
    }
}

void tdi_rope_forward(float *x, int ld, int n, int T, int n_heads, int hd,
                      const float *cos_t, const float *sin_t, int nt)
{
    rope_apply(x, ld, n, T, n_heads, hd, cos_t, sin_t, 1.0f, nt);
}

void tdi_rope_backward(float *dx, int ld, int n, int T, int n_heads, int hd,
                       const float *cos_t, const float *sin_t, int nt)
{
    rope_apply(dx, ld, n, T, n_heads, hd, cos_t, sin_t, -1.0f, nt);
}
