/* Softmax cross-entropy fused with its gradient. A logit of −∞ (the [MASK]
 * column under the SUBS parameterisation) gives expf(−∞) = 0: probability
 * and gradient exactly 0 with no special case. The exponentials are float;
 * their sum and the loss are double, so the loss of a row is accurate to the
 * float rounding of the logits themselves. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

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
        float mx = l[0];
        for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        if (g) {
            for (int j = 0; j < V; j++) {
                float e = expf(l[j] - mx);
                g[j] = e;
                sum += e;
            }
            float w = weights ? weights[r] : 1.0f;
            float scale = (float)(w / sum);
            for (int j = 0; j < V; j++) g[j] *= scale;
            g[y] -= w;
        } else {
            for (int j = 0; j < V; j++) sum += expf(l[j] - mx);
        }
        row_loss[r] = log(sum) + (double)mx - (double)ly;
    }
    double total = 0.0;
    for (int r = 0; r < n; r++) total += (weights ? (double)weights[r] : 1.0) * row_loss[r];
    return total;
}
