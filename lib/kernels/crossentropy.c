/* Softmax cross-entropy fused with its gradient. A logit of −∞ (the [MASK]
 * column under the SUBS parameterisation) gives tdi_expf(−∞) = 0:
 * probability and gradient exactly 0 with no special case. The
 * exponentials are float; their sum and the loss are double. */
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "util/simd.h"

typedef struct ce_job {
    float *dlogits;
    double *row_loss;
    const float *logits, *weights;
    const int32_t *targets;
    int V;
} ce_job;

static void ce_rows(void *ctx, long begin, long end, int tid)
{
    const ce_job *c = ctx;
    int V = c->V;
    (void)tid;
    for (long r = begin; r < end; r++) {
        const float *l = c->logits + (size_t)r * V;
        float *g = c->dlogits ? c->dlogits + (size_t)r * V : NULL;
        int y = c->targets[r];
        float ly = l[y]; /* read before g, which may alias l, is written */
        float mx = -INFINITY;
        TDI_SIMD(reduction(max:mx))
        for (int j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        if (g) {
            TDI_SIMD(reduction(+:sum))
            for (int j = 0; j < V; j++) {
                float e = tdi_expf(l[j] - mx);
                g[j] = e;
                sum += e;
            }
            float w = c->weights ? c->weights[r] : 1.0f;
            float scale = (float)(w / sum);
            TDI_SIMD()
            for (int j = 0; j < V; j++) g[j] *= scale;
            g[y] -= w;
        } else {
            TDI_SIMD(reduction(+:sum))
            for (int j = 0; j < V; j++) sum += tdi_expf(l[j] - mx);
        }
        c->row_loss[r] = log(sum) + (double)mx - (double)ly;
    }
}

/* logits, dlogits [n, V]; targets, weights, row_loss [n] */
double tdi_crossentropy_forward_backward(float *dlogits, double *row_loss, const float *logits,
                                         const int32_t *targets, const float *weights, int n,
                                         int V, tdi_pool *pool)
{
    ce_job c = { dlogits, row_loss, logits, weights, targets, V };
    tdi_pool_for(pool, n, ce_rows, &c);
    double total = 0.0;
    for (int r = 0; r < n; r++) total += (weights ? (double)weights[r] : 1.0) * row_loss[r];
    return total;
}
