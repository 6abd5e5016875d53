/* One categorical draw per row of logits, entirely in double precision:
 * a float32 draw truncates the tail of the distribution (a token of
 * probability 1e-9 is never drawn from a 24-bit uniform), which lowers the
 * effective temperature and flatters the measured quality of samples. */
#include "diffusion/draw.h"

#include <math.h>
#include <stdlib.h>

static int rank_cmp(const void *a, const void *b)
{
    const tdi_logit_rank *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Restores the heap below i (its root the worst entry in rank_cmp order). */
static void sift_worst(tdi_logit_rank *h, int32_t k, int32_t i)
{
    for (;;) {
        int32_t w = i;
        const int32_t l = 2 * i + 1, r = l + 1;
        if (l < k && rank_cmp(&h[l], &h[w]) > 0) w = l;
        if (r < k && rank_cmp(&h[r], &h[w]) > 0) w = r;
        if (w == i) return;
        const tdi_logit_rank t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k first of rank[0..n) in rank_cmp order (a strict order: ties go to
 * the lower id) into rank[0..k), sorted: what sorting all n and keeping k
 * gives, in O(n log k) — a vocabulary of 50,000 is not sorted per row for
 * a top-k of 50. */
static void select_first(tdi_logit_rank *rank, int32_t n, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_worst(rank, k, i);
    for (int32_t j = k; j < n; j++)
        if (rank_cmp(&rank[j], &rank[0]) < 0) {
            rank[0] = rank[j];
            sift_worst(rank, k, 0);
        }
    qsort(rank, (size_t)k, sizeof *rank, rank_cmp);
}

int tdi_draw_ranks(const tdi_draw_config *c) { return c->top_k > 0 || c->top_p < 1.0; }

/* Σ p log p of the kept distribution, from the weights and their logits. */
static double neg_entropy(const double *w, const float *z, int32_t n, double mx, double tau,
                          double total)
{
    double s = 0.0;
    for (int32_t j = 0; j < n; j++)
        if (w[j] > 0.0) s += w[j] * (((double)z[j] - mx) / tau);
    return s / total - log(total);
}

int tdi_draw_token(const tdi_draw_config *c, const float *logits, int32_t V, double u,
                   double *w, tdi_logit_rank *rank, int32_t *token, double *confidence)
{
    float m = -INFINITY;
    int32_t first = -1;
    for (int32_t i = 0; i < V; i++) {
        float z = logits[i];
        if (z != z) return -1;
        if (i != c->exclude && z > m) {
            m = z;
            first = i;
        }
    }
    if (first < 0 || m == INFINITY) return -1;

    /* Weights relative to the maximum (which weighs exactly 1), so that the
     * sum neither overflows nor loses the small ones to rounding. */
    const double tau = c->temperature > 0.0 ? c->temperature : 1.0, mx = m;
    const int ranked = tdi_draw_ranks(c);
    int32_t n = 0;
    double total = 0.0;
    if (ranked) {
        for (int32_t i = 0; i < V; i++)
            if (i != c->exclude && logits[i] > -INFINITY) {
                rank[n].z = logits[i];
                rank[n].id = i;
                n++;
            }
        if (c->top_k > 0 && c->top_k < n) {
            select_first(rank, n, c->top_k);
            n = c->top_k;
        } else {
            qsort(rank, (size_t)n, sizeof *rank, rank_cmp);
        }
        for (int32_t j = 0; j < n; j++) {
            w[j] = exp(((double)rank[j].z - mx) / tau);
            total += w[j];
        }
        if (c->top_p < 1.0) {
            const double need = c->top_p * total;
            double cum = 0.0;
            int32_t j = 0;
            while (j < n) {
                cum += w[j++];
                if (cum >= need) break;
            }
            n = j;
            total = cum; /* the same sum, in the same order, as the walk below */
        }
    } else {
        for (int32_t i = 0; i < V; i++) {
            w[i] = (i == c->exclude || !(logits[i] > -INFINITY))
                       ? 0.0 : exp(((double)logits[i] - mx) / tau);
            total += w[i];
        }
        n = V;
    }

    int32_t pick; /* index in candidate order */
    if (c->temperature > 0.0) {
        const double target = u * total;
        double cum = 0.0;
        int32_t last = -1;
        pick = -1;
        for (int32_t j = 0; j < n; j++) {
            if (!(w[j] > 0.0)) continue;
            cum += w[j];
            last = j;
            if (target < cum) {
                pick = j;
                break;
            }
        }
        if (pick < 0) pick = last; /* u·total rounded up to total */
    } else {
        pick = ranked ? 0 : first;
    }
    *token = ranked ? rank[pick].id : pick;

    switch (c->confidence) {
    case TDI_CONF_NONE: break;
    case TDI_CONF_PROB: *confidence = w[pick] / total; break;
    case TDI_CONF_MARGIN: {
        double second = 0.0;
        if (ranked) {
            second = n > 1 ? w[1] : 0.0;
        } else {
            for (int32_t j = 0; j < n; j++)
                if (j != first && w[j] > second) second = w[j];
        }
        *confidence = (1.0 - second) / total;
        break;
    }
    case TDI_CONF_NEG_ENTROPY:
        if (ranked) {
            double s = 0.0;
            for (int32_t j = 0; j < n; j++)
                if (w[j] > 0.0) s += w[j] * (((double)rank[j].z - mx) / tau);
            *confidence = s / total - log(total);
        } else {
            *confidence = neg_entropy(w, logits, n, mx, tau, total);
        }
        break;
    }
    return 0;
}
