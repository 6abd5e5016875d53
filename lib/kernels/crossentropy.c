/* Softmax cross-entropy fused with its gradient. A logit of −∞ (the [MASK]
 * column under the SUBS parameterisation) gives tdi_expf(−∞) = 0:
 * probability and gradient exactly 0 with no special case. The
 * exponentials are float; their sum and the loss are double. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/parallel.h"

/* logits, dlogits [n, V]; targets, weights, row_loss [n] */
double tdi_crossentropy_forward_backward(float *dlogits, double *row_loss, const float *logits,
                                         const int32_t *targets, const float *weights, int n,
                                         int V, int nt)
{
    (void)nt;
    TDI_OMP(parallel for num_threads(nt) schedule(static))
    for (int r = 0; r < n; r++) {
        const float *l = logits + (size_t)r * V;
        float *g = dlogits ? dlogits + (size_t)r * V : NULL;
        int y = targets[r];
        float ly = l[y]; /* read before g, which may alias l, is written */
        float mx = -INFINITY;
        TDI_OMP(simd reduction(max:mx))
        for (int j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        if (g) {
            TDI_OMP(simd reduction(+:sum))
            for (int j = 0; j < V; j++) {
                float e = tdi_expf(l[j] - mx);
                g[j] = e;
                sum += e;
            }
            float w = weights ? weights[r] : 1.0f;
            float scale = (float)(w / sum);
            TDI_OMP(simd)
            for (int j = 0; j < V; j++) g[j] *= scale;
            g[y] -= w;
        } else {
            TDI_OMP(simd reduction(+:sum))
            for (int j = 0; j < V; j++) sum += tdi_expf(l[j] - mx);
        }
        row_loss[r] = log(sum) + (double)mx - (double)ly;
    }
    double total = 0.0;
    for (int r = 0; r < n; r++) total += (weights ? (double)weights[r] : 1.0) * row_loss[r];
    return total;
}
