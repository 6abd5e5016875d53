/* Drawing a token from logits: the inverse CDF of the tempered, top-k and
 * top-p filtered distribution, checked against a long-double reference on
 * a fine grid of uniforms; confidences against their definitions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diffusion/draw.h"

enum { V = 9 };

/* The reference: candidates ranked, filtered, weighted in long double. */
typedef struct ref_dist {
    int32_t n;          /* kept candidates */
    int32_t id[V];      /* in draw order */
    long double p[V];   /* normalised */
} ref_dist;

static void reference(const tdi_draw_config *c, const float *z, ref_dist *r)
{
    int32_t ids[V], n = 0;
    for (int32_t i = 0; i < V; i++)
        if (i != c->exclude && isfinite(z[i])) ids[n++] = i;
    /* insertion sort by (logit desc, id asc) */
    for (int32_t a = 1; a < n; a++)
        for (int32_t b = a; b > 0 && (z[ids[b]] > z[ids[b - 1]] ||
                                      (z[ids[b]] == z[ids[b - 1]] && ids[b] < ids[b - 1]));
             b--) {
            int32_t t = ids[b];
            ids[b] = ids[b - 1];
            ids[b - 1] = t;
        }
    long double tau = c->temperature > 0 ? c->temperature : 1.0L, m = z[ids[0]];
    int ranked = c->top_k > 0 || c->top_p < 1.0;
    if (c->top_k > 0 && c->top_k < n) n = c->top_k;
    long double q[V], total = 0;
    for (int32_t j = 0; j < n; j++) total += q[j] = expl(((long double)z[ids[j]] - m) / tau);
    if (c->top_p < 1.0) {
        long double cum = 0;
        int32_t j = 0;
        while (j < n) {
            cum += q[j++];
            if (cum >= (long double)c->top_p * total) break;
        }
        n = j;
        total = cum;
    }
    if (!ranked) { /* draw order is id order */
        for (int32_t a = 1; a < n; a++)
            for (int32_t b = a; b > 0 && ids[b] < ids[b - 1]; b--) {
                int32_t t = ids[b];
                ids[b] = ids[b - 1];
                ids[b - 1] = t;
                long double tq = q[b];
                q[b] = q[b - 1];
                q[b - 1] = tq;
            }
    }
    r->n = n;
    for (int32_t j = 0; j < n; j++) {
        r->id[j] = ids[j];
        r->p[j] = q[j] / total;
    }
}

static const float logits_a[V] = { 0.5f, 2.0f, -1.0f, 2.0f, 0.0f, -INFINITY, 1.25f, -3.0f, 0.7f };

/* For u on a grid, the drawn token is the reference's inverse CDF at u
 * (points within 1e-9 of a CDF step are skipped). */
static void check_grid(const tdi_draw_config *c, const float *z)
{
    ref_dist r;
    reference(c, z, &r);
    double w[V];
    tdi_logit_rank rank[V];
    const int G = 20000;
    int checked = 0;
    for (int g = 0; g < G; g++) {
        double u = (g + 0.5) / G;
        long double cum = 0;
        int32_t want = -1, near = 0;
        for (int32_t j = 0; j < r.n; j++) {
            cum += r.p[j];
            if (fabsl(cum - u) < 1e-9L) near = 1;
            if (want < 0 && (long double)u < cum) want = r.id[j];
        }
        if (near) continue;
        int32_t tok = -1;
        double conf = 0;
        assert_int_equal(tdi_draw_token(c, z, V, u, w, tdi_draw_ranks(c) ? rank : NULL, &tok,
                                        &conf), 0);
        assert_int_equal(tok, want);
        checked++;
    }
    assert_true(checked > G - 20);
}

static tdi_draw_config config(double temperature, int32_t top_k, double top_p, int32_t exclude)
{
    tdi_draw_config c;
    c.temperature = temperature;
    c.top_k = top_k;
    c.top_p = top_p;
    c.exclude = exclude;
    c.confidence = TDI_CONF_NONE;
    return c;
}

static void test_inverse_cdf(void **state)
{
    (void)state;
    const double temps[] = { 1.0, 0.3, 2.5 };
    for (int i = 0; i < 3; i++) {
        tdi_draw_config c = config(temps[i], 0, 1.0, -1);
        check_grid(&c, logits_a);
        c = config(temps[i], 3, 1.0, -1);
        check_grid(&c, logits_a);
        c = config(temps[i], 0, 0.8, -1);
        check_grid(&c, logits_a);
        c = config(temps[i], 5, 0.6, 8);
        check_grid(&c, logits_a);
        c = config(temps[i], 0, 1.0, 1); /* one of the two maxima excluded */
        check_grid(&c, logits_a);
    }
}

/* The filters keep exactly the ranked prefix they promise. */
static void test_filters_keep_the_right_set(void **state)
{
    (void)state;
    double w[V];
    tdi_logit_rank rank[V];
    int seen[V];
    /* top-k = 2 over the tie at 2.0 keeps ids 1 and 3 only. */
    tdi_draw_config c = config(1.0, 2, 1.0, -1);
    memset(seen, 0, sizeof seen);
    for (int g = 0; g < 1000; g++) {
        int32_t tok;
        assert_int_equal(tdi_draw_token(&c, logits_a, V, (g + 0.5) / 1000, w, rank, &tok, NULL),
                         0);
        seen[tok]++;
    }
    assert_true(seen[1] > 400 && seen[3] > 400 && seen[1] + seen[3] == 1000);
    /* top-p small enough keeps only the first ranked (id 1 before id 3). */
    c = config(1.0, 0, 0.01, -1);
    for (int g = 0; g < 100; g++) {
        int32_t tok;
        assert_int_equal(tdi_draw_token(&c, logits_a, V, (g + 0.5) / 100, w, rank, &tok, NULL), 0);
        assert_int_equal(tok, 1);
    }
    /* the -inf logit and an excluded id are never drawn, even at u -> 1 */
    c = config(50.0, 0, 1.0, 7);
    memset(seen, 0, sizeof seen);
    for (int g = 0; g < 5000; g++) {
        int32_t tok;
        assert_int_equal(tdi_draw_token(&c, logits_a, V, (g + 0.5) / 5000, w, NULL, &tok, NULL),
                         0);
        seen[tok]++;
    }
    assert_int_equal(seen[5], 0);
    assert_int_equal(seen[7], 0);
    for (int i = 0; i < V; i++)
        if (i != 5 && i != 7) assert_true(seen[i] > 0);
}

static void test_greedy_is_first_maximum(void **state)
{
    (void)state;
    double w[V];
    tdi_logit_rank rank[V];
    for (int ranked = 0; ranked < 2; ranked++) {
        tdi_draw_config c = config(0.0, ranked ? 4 : 0, 1.0, -1);
        for (int g = 0; g < 50; g++) {
            int32_t tok;
            assert_int_equal(tdi_draw_token(&c, logits_a, V, g / 50.0, w, rank, &tok, NULL), 0);
            assert_int_equal(tok, 1);
        }
        c.exclude = 1;
        int32_t tok;
        assert_int_equal(tdi_draw_token(&c, logits_a, V, 0.99, w, rank, &tok, NULL), 0);
        assert_int_equal(tok, 3);
    }
}

/* A token of probability about 1e-12 is reachable with a 53-bit uniform; a
 * 24-bit one (largest value 1 − 2^-24) could never reach it. */
static void test_tail_is_reachable(void **state)
{
    (void)state;
    float z[V];
    for (int i = 0; i < V; i++) z[i] = 0.0f;
    z[V - 1] = -30.0f; /* p ≈ e^-30 / 8 ≈ 1.2e-14 */
    tdi_draw_config c = config(1.0, 0, 1.0, -1);
    double w[V];
    int32_t tok;
    assert_int_equal(tdi_draw_token(&c, z, V, 1.0 - 0x1.0p-53, w, NULL, &tok, NULL), 0);
    assert_int_equal(tok, V - 1);
    assert_int_equal(tdi_draw_token(&c, z, V, 1.0 - 0x1.0p-24, w, NULL, &tok, NULL), 0);
    assert_int_equal(tok, V - 2);
}

/* A large vocabulary with many tied logits: top-k (which selects the k
 * first without sorting the vocabulary) draws the inverse CDF of the k
 * first of a full sort by (logit descending, id ascending). */
static const float *big_z;
static int big_cmp(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (big_z[x] != big_z[y]) return big_z[x] > big_z[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static void test_top_k_large_vocabulary(void **state)
{
    (void)state;
    enum { BV = 3000 };
    static float z[BV];
    static double w[BV];
    static tdi_logit_rank rank[BV];
    static int32_t ids[BV];
    uint64_t x = 12345;
    for (int32_t i = 0; i < BV; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        z[i] = (float)((x >> 33) % 40) * 0.25f - 5.0f; /* 40 values: ties everywhere */
    }
    z[7] = -INFINITY;
    big_z = z;
    const int32_t ks[] = { 1, 2, 3, 17, 50, 256, BV - 2 };
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        tdi_draw_config c = config(0.8, ks[ki], ki % 2 ? 0.9 : 1.0, 11);
        int32_t n = 0;
        for (int32_t i = 0; i < BV; i++)
            if (i != c.exclude && isfinite(z[i])) ids[n++] = i;
        qsort(ids, (size_t)n, sizeof *ids, big_cmp);
        if (c.top_k < n) n = c.top_k;
        long double q[BV], total = 0;
        for (int32_t j = 0; j < n; j++)
            total += q[j] = expl(((long double)z[ids[j]] - z[ids[0]]) / 0.8L);
        if (c.top_p < 1.0) {
            long double cum = 0;
            int32_t j = 0;
            while (j < n) {
                cum += q[j++];
                if (cum >= (long double)c.top_p * total) break;
            }
            n = j;
            total = cum;
        }
        for (int g = 0; g < 500; g++) {
            const double u = (g + 0.5) / 500;
            long double cum = 0;
            int32_t want = -1, near = 0;
            for (int32_t j = 0; j < n; j++) {
                cum += q[j] / total;
                if (fabsl(cum - u) < 1e-9L) near = 1;
                if (want < 0 && (long double)u < cum) want = ids[j];
            }
            if (near) continue;
            int32_t tok = -1;
            assert_int_equal(tdi_draw_token(&c, z, BV, u, w, rank, &tok, NULL), 0);
            assert_int_equal(tok, want);
        }
        /* greedy: the first of the ranking */
        c.temperature = 0.0;
        int32_t tok = -1;
        assert_int_equal(tdi_draw_token(&c, z, BV, 0.5, w, rank, &tok, NULL), 0);
        assert_int_equal(tok, ids[0]);
    }
}

static void test_confidences(void **state)
{
    (void)state;
    double w[V];
    tdi_logit_rank rank[V];
    const double temps[] = { 0.0, 1.0, 0.5 };
    for (int ti = 0; ti < 3; ti++)
        for (int f = 0; f < 2; f++) {
            tdi_draw_config c = config(temps[ti], f ? 6 : 0, f ? 0.9 : 1.0, 3);
            ref_dist r;
            reference(&c, logits_a, &r);
            long double best = 0, second = 0, negent = 0;
            for (int32_t j = 0; j < r.n; j++) {
                long double p = r.p[j];
                if (p > best) {
                    second = best;
                    best = p;
                } else if (p > second) {
                    second = p;
                }
                if (p > 0) negent += p * logl(p);
            }
            for (int g = 0; g < 7; g++) {
                double u = (g + 0.5) / 7;
                int32_t tok;
                double conf;
                c.confidence = TDI_CONF_PROB;
                assert_int_equal(tdi_draw_token(&c, logits_a, V, u, w, rank, &tok, &conf), 0);
                long double ptok = 0;
                for (int32_t j = 0; j < r.n; j++)
                    if (r.id[j] == tok) ptok = r.p[j];
                assert_true(ptok > 0);
                assert_true(fabsl(conf - ptok) < 1e-12L);
                c.confidence = TDI_CONF_MARGIN;
                assert_int_equal(tdi_draw_token(&c, logits_a, V, u, w, rank, &tok, &conf), 0);
                assert_true(fabsl(conf - (best - second)) < 1e-12L);
                c.confidence = TDI_CONF_NEG_ENTROPY;
                assert_int_equal(tdi_draw_token(&c, logits_a, V, u, w, rank, &tok, &conf), 0);
                assert_true(fabsl(conf - negent) < 1e-12L);
            }
        }
}

static void test_bad_rows(void **state)
{
    (void)state;
    double w[V];
    tdi_logit_rank rank[V];
    float z[V];
    tdi_draw_config c = config(1.0, 0, 1.0, -1);
    int32_t tok = 123;
    memcpy(z, logits_a, sizeof z);
    z[4] = NAN;
    assert_int_equal(tdi_draw_token(&c, z, V, 0.5, w, NULL, &tok, NULL), -1);
    memcpy(z, logits_a, sizeof z);
    z[0] = INFINITY;
    assert_int_equal(tdi_draw_token(&c, z, V, 0.5, w, NULL, &tok, NULL), -1);
    for (int i = 0; i < V; i++) z[i] = -INFINITY;
    z[3] = 1.0f;
    c.exclude = 3; /* the only finite logit is excluded */
    assert_int_equal(tdi_draw_token(&c, z, V, 0.5, w, NULL, &tok, NULL), -1);
    c.top_k = 2;
    assert_int_equal(tdi_draw_token(&c, z, V, 0.5, w, rank, &tok, NULL), -1);
    assert_int_equal(tok, 123);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inverse_cdf),
        cmocka_unit_test(test_filters_keep_the_right_set),
        cmocka_unit_test(test_greedy_is_first_maximum),
        cmocka_unit_test(test_tail_is_reachable),
        cmocka_unit_test(test_top_k_large_vocabulary),
        cmocka_unit_test(test_confidences),
        cmocka_unit_test(test_bad_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
