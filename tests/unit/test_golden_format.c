/* The reference vectors in tests/golden/ and their reader.
 *
 * Each committed file is checked against itself: array set, dtypes and dims
 * against its config; inputs in range; logits recomputed from the stored
 * final hidden state and head; the loss and dlogits recomputed in double from
 * the stored logits; gradient identities that hold exactly (out.b, out.w) and
 * gradients that must vanish (unused positions, the [MASK] output, padding,
 * the key bias without RoPE); and the float32 run close to the float64 one.
 * The reader is checked on hand-written files, truncated and bit-flipped
 * copies, and damaged headers with a valid CRC.
 *
 * Tolerances: the float64 identities hold to rounding, so 1e-12 relative
 * (they are sums of a few hundred terms of size ~1). The float32 runs differ
 * from float64 by ~1e-6 (measured when the files were made; see
 * tests/golden/README.md), checked against 1e-5. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/golden.h"

typedef struct golden_case { const char *name; } golden_case;

static golden_case cases[] = {
    { "rope_pre_tied" },
    { "learned_post_untied" },
    { "rope_post_tied_keymask" },
    { "learned_pre_untied_keymask" },
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* tdi_model_config's fields, in its order; stored as "config.<field>". */
static const char *const config_fields[] = {
    "vocab_size", "mask_id", "max_seq_len", "d_model", "n_layers",
    "n_heads", "d_ff", "pos_encoding", "norm_placement", "tie_embeddings",
};
enum { F_V, F_MASK, F_TMAX, F_D, F_L, F_H, F_FF, F_POS, F_NORM, F_TIE, N_FIELDS };

typedef struct vec_file {
    const char *case_name;
    golden_file *g;
    int32_t cfg[N_FIELDS], pad_id, B, T, n_rows;
} vec_file;

/* Parameter tensors of docs/model.md, in buffer order. */
typedef struct param_spec { char name[32]; int ndim; int64_t dims[2]; } param_spec;
#define MAX_PARAMS 64

static int param_specs(const int32_t *c, param_spec *out)
{
    int n = 0;
    int64_t V = c[F_V], d = c[F_D], f = c[F_FF];
#define ADD2(nm, r, k) do { param_spec p_ = { "", 2, { (r), (k) } }; \
        snprintf(p_.name, sizeof p_.name, "%s", nm); out[n++] = p_; } while (0)
#define ADD1(nm, r) do { param_spec p_ = { "", 1, { (r), 1 } }; \
        snprintf(p_.name, sizeof p_.name, "%s", nm); out[n++] = p_; } while (0)
    ADD2("tok_emb", V, d);
    if (c[F_POS] == 1) ADD2("pos_emb", c[F_TMAX], d);
    for (int l = 0; l < c[F_L] && n + 12 < MAX_PARAMS - 4; l++) {
        char nm[32];
#define LNAME(s) (snprintf(nm, sizeof nm, "%d." s, l), nm)
        ADD1(LNAME("ln1.w"), d);      ADD1(LNAME("ln1.b"), d);
        ADD2(LNAME("qkv.w"), 3 * d, d); ADD1(LNAME("qkv.b"), 3 * d);
        ADD2(LNAME("proj.w"), d, d);  ADD1(LNAME("proj.b"), d);
        ADD1(LNAME("ln2.w"), d);      ADD1(LNAME("ln2.b"), d);
        ADD2(LNAME("fc.w"), f, d);    ADD1(LNAME("fc.b"), f);
        ADD2(LNAME("fc2.w"), d, f);   ADD1(LNAME("fc2.b"), d);
#undef LNAME
    }
    ADD1("lnf.w", d);
    ADD1("lnf.b", d);
    if (!c[F_TIE]) ADD2("out.w", V, d);
    ADD1("out.b", V);
#undef ADD1
#undef ADD2
    return n;
}

static const golden_array *need(const vec_file *v, const char *name, golden_dtype dtype,
                                int ndim, int64_t d0, int64_t d1)
{
    const golden_array *a = golden_find(v->g, name);
    if (a == NULL) fail_msg("%s: array '%s' missing", v->case_name, name);
    if (a->dtype != dtype)
        fail_msg("%s: '%s' is %s, want %s", v->case_name, name, golden_dtype_name(a->dtype),
                 golden_dtype_name(dtype));
    if (a->ndim != ndim || a->dims[0] != (ndim > 0 ? d0 : 1) || a->dims[1] != (ndim > 1 ? d1 : 1))
        fail_msg("%s: '%s' has dims [%lld, %lld] (ndim %d), want [%lld, %lld] (ndim %d)",
                 v->case_name, name, (long long)a->dims[0], (long long)a->dims[1], a->ndim,
                 (long long)d0, (long long)d1, ndim);
    return a;
}

/* "<prefix><name>"; the names are short, so truncation would be a bug here. */
static void prefixed(char *out, size_t size, const char *prefix, const char *name)
{
    int n = snprintf(out, size, "%s%s", prefix, name);
    assert_true(n > 0 && (size_t)n < size);
}

/* Loads a case and checks everything the other tests index by: config
 * ranges, each array's dtype and dims, rows and targets in range. After it,
 * no test can read out of bounds, however wrong the file. */
static void open_case(void **state, vec_file *v)
{
    const golden_case *gc = *state;
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s.tdgv", GOLDEN_DIR, gc->name);
    memset(v, 0, sizeof *v);
    v->case_name = gc->name;
    v->g = golden_load(path, err, sizeof err);
    if (v->g == NULL) fail_msg("%s: %s", path, err);
    for (int i = 0; i < N_FIELDS; i++) {
        char key[64];
        prefixed(key, sizeof key, "config.", config_fields[i]);
        if (!golden_int(v->g, key, &v->cfg[i])) fail_msg("%s: no scalar i32 '%s'", gc->name, key);
    }
    if (!golden_int(v->g, "pad_id", &v->pad_id) || !golden_int(v->g, "batch", &v->B) ||
        !golden_int(v->g, "seq_len", &v->T))
        fail_msg("%s: pad_id, batch or seq_len missing", gc->name);
    const int32_t *c = v->cfg;
    assert_in_range(c[F_V], 3, 4096);
    assert_in_range(c[F_MASK], 0, c[F_V] - 1);
    assert_in_range(v->pad_id, 0, c[F_V] - 1);
    assert_true(v->pad_id != c[F_MASK]);
    assert_in_range(c[F_D], 1, 4096);
    assert_in_range(c[F_H], 1, c[F_D]);
    assert_int_equal(c[F_D] % c[F_H], 0);
    assert_in_range(c[F_L], 1, 4);
    assert_in_range(c[F_FF], 1, 4096);
    assert_in_range(c[F_TMAX], 1, 4096);
    assert_in_range(c[F_POS], 0, 1);
    assert_in_range(c[F_NORM], 0, 1);
    assert_in_range(c[F_TIE], 0, 1);
    if (c[F_POS] == 0) assert_int_equal((c[F_D] / c[F_H]) % 2, 0);
    assert_in_range(v->B, 1, 64);
    assert_in_range(v->T, 1, c[F_TMAX]);

    param_spec ps[MAX_PARAMS];
    int np = param_specs(c, ps);
    for (int i = 0; i < np; i++) {
        char gname[48];
        need(v, ps[i].name, GOLDEN_F32, ps[i].ndim, ps[i].dims[0], ps[i].dims[1]);
        prefixed(gname, sizeof gname, "grad.", ps[i].name);
        need(v, gname, GOLDEN_F64, ps[i].ndim, ps[i].dims[0], ps[i].dims[1]);
        prefixed(gname, sizeof gname, "grad_f32.", ps[i].name);
        need(v, gname, GOLDEN_F32, ps[i].ndim, ps[i].dims[0], ps[i].dims[1]);
    }
    const golden_array *rows = golden_find(v->g, "rows");
    if (rows == NULL) fail_msg("%s: no rows", gc->name);
    v->n_rows = (int32_t)rows->count;
    int64_t BT = (int64_t)v->B * v->T;
    need(v, "ids", GOLDEN_I32, 2, v->B, v->T);
    need(v, "key_mask", GOLDEN_I32, 2, v->B, v->T);
    need(v, "rows", GOLDEN_I32, 1, v->n_rows, 1);
    need(v, "targets", GOLDEN_I32, 1, v->n_rows, 1);
    need(v, "row_weights", GOLDEN_F32, 1, v->n_rows, 1);
    need(v, "hidden", GOLDEN_F64, 2, BT, c[F_D]);
    need(v, "logits", GOLDEN_F64, 2, BT, c[F_V]);
    need(v, "logits_f32", GOLDEN_F32, 2, BT, c[F_V]);
    need(v, "loss", GOLDEN_F64, 1, 1, 1);
    need(v, "loss_f32", GOLDEN_F32, 1, 1, 1);
    need(v, "dlogits", GOLDEN_F64, 2, v->n_rows, c[F_V]);
    const int32_t *r = golden_i32(v->g, "rows"), *tg = golden_i32(v->g, "targets");
    for (int32_t k = 0; k < v->n_rows; k++) {
        assert_in_range(r[k], 0, BT - 1);
        assert_in_range(tg[k], 0, c[F_V] - 1);
    }
}

static double max_abs(const golden_array *a)
{
    double m = 0;
    for (size_t i = 0; i < a->count; i++) m = fmax(m, fabs(golden_at(a, i)));
    return m;
}

/* -------------------------------------------------------------------------- */

static void test_arrays_match_config(void **state)
{
    vec_file v;
    open_case(state, &v); /* dtypes and dims */
    const int32_t *c = v.cfg;
    param_spec ps[MAX_PARAMS];
    int np = param_specs(c, ps);
    assert_int_equal(np, 1 + (c[F_POS] == 1) + 12 * c[F_L] + 2 + (c[F_TIE] == 0) + 1);
    /* Parameters appear in buffer order, so offsets are running sums. */
    const golden_array *prev = NULL;
    for (int i = 0; i < np; i++) {
        const golden_array *p = golden_find(v.g, ps[i].name);
        assert_true(prev == NULL || p > prev);
        prev = p;
        for (size_t k = 0; k < p->count; k++) assert_true(isfinite(golden_at(p, k)));
    }
    if (c[F_POS] == 0) assert_null(golden_find(v.g, "pos_emb"));
    if (c[F_TIE]) assert_null(golden_find(v.g, "out.w"));
    /* Nothing else: 13 ints, 5 inputs, 6 outputs, 3 arrays per parameter. */
    assert_int_equal(v.g->n_arrays, 13 + 5 + 6 + 3 * np);
    golden_free(v.g);
}

static void test_inputs_are_consistent(void **state)
{
    vec_file v;
    open_case(state, &v);
    const int32_t *ids = golden_i32(v.g, "ids"), *km = golden_i32(v.g, "key_mask");
    const int32_t *rows = golden_i32(v.g, "rows"), *tg = golden_i32(v.g, "targets");
    const float *w = golden_f32(v.g, "row_weights");
    assert_non_null(ids); assert_non_null(km); assert_non_null(rows);
    assert_non_null(tg); assert_non_null(w);
    int32_t BT = v.B * v.T, mask = v.cfg[F_MASK];
    assert_true(v.n_rows >= 1);
    for (int32_t b = 0; b < v.B; b++) {
        int attended = 0;
        for (int32_t t = 0; t < v.T; t++) attended += km[b * v.T + t];
        assert_true(attended >= 1); /* no key to attend to: softmax of all −∞ is NaN */
    }
    int32_t r = 0;
    for (int32_t i = 0; i < BT; i++) {
        assert_in_range(ids[i], 0, v.cfg[F_V] - 1);
        assert_in_range(km[i], 0, 1);
        assert_int_equal(km[i] == 0, ids[i] == v.pad_id); /* padding is exactly the pad ids */
        /* rows = every [MASK] position, ascending. */
        if (ids[i] == mask) {
            assert_true(r < v.n_rows);
            assert_int_equal(rows[r], i);
            assert_int_equal(km[i], 1);
            r++;
        }
    }
    assert_int_equal(r, v.n_rows);
    for (int32_t k = 0; k < v.n_rows; k++) {
        assert_in_range(tg[k], 0, v.cfg[F_V] - 1);
        assert_true(tg[k] != mask && tg[k] != v.pad_id);
        assert_true(isfinite(w[k]) && w[k] > 0.0f);
    }
    golden_free(v.g);
}

/* logits = hidden · Eᵀ + out.b, [MASK] column −∞: checks the stored head,
 * the tie flag and the -inf column together. */
static void test_logits_follow_from_hidden(void **state)
{
    vec_file v;
    open_case(state, &v);
    int32_t V = v.cfg[F_V], d = v.cfg[F_D], BT = v.B * v.T, mask = v.cfg[F_MASK];
    const double *h = golden_f64(v.g, "hidden"), *lg = golden_f64(v.g, "logits");
    const float *lg32 = golden_f32(v.g, "logits_f32");
    const float *E = golden_f32(v.g, v.cfg[F_TIE] ? "tok_emb" : "out.w");
    const float *ob = golden_f32(v.g, "out.b");
    assert_non_null(h); assert_non_null(lg); assert_non_null(lg32);
    assert_non_null(E); assert_non_null(ob);
    double worst = 0, worst32 = 0, spread = 0;
    for (int32_t i = 0; i < BT; i++) {
        for (int32_t j = 0; j < V; j++) {
            double ref = lg[(size_t)i * V + j], f32 = lg32[(size_t)i * V + j];
            if (j == mask) {
                assert_true(isinf(ref) && ref < 0);
                assert_true(isinf(f32) && f32 < 0);
                continue;
            }
            assert_true(isfinite(ref) && isfinite(f32));
            double z = ob[j];
            for (int32_t k = 0; k < d; k++) z += h[(size_t)i * d + k] * E[(size_t)j * d + k];
            worst = fmax(worst, fabs(z - ref));
            worst32 = fmax(worst32, fabs(f32 - ref));
            spread = fmax(spread, fabs(ref));
        }
    }
    if (worst > 1e-12 * spread) fail_msg("%s: logits != hidden·Eᵀ + b by %g", v.case_name, worst);
    if (worst32 > 1e-5) fail_msg("%s: float32 logits off by %g", v.case_name, worst32);
    assert_true(spread > 0.5); /* not a degenerate, near-uniform model */
    golden_free(v.g);
}

static double weighted_ce(const vec_file *v, const char *logits_name, double *dlogits)
{
    const golden_array *a = golden_find(v->g, logits_name);
    const int32_t *rows = golden_i32(v->g, "rows"), *tg = golden_i32(v->g, "targets");
    const float *w = golden_f32(v->g, "row_weights");
    int32_t V = v->cfg[F_V], mask = v->cfg[F_MASK];
    double loss = 0;
    for (int32_t r = 0; r < v->n_rows; r++) {
        size_t base = (size_t)rows[r] * V;
        double mx = -INFINITY, sum = 0;
        for (int32_t j = 0; j < V; j++)
            if (j != mask) mx = fmax(mx, golden_at(a, base + j));
        for (int32_t j = 0; j < V; j++)
            if (j != mask) sum += exp(golden_at(a, base + j) - mx);
        loss += w[r] * (mx + log(sum) - golden_at(a, base + tg[r]));
        if (dlogits == NULL) continue;
        for (int32_t j = 0; j < V; j++) {
            double p = j == mask ? 0.0 : exp(golden_at(a, base + j) - mx) / sum;
            dlogits[(size_t)r * V + j] = w[r] * (p - (j == tg[r]));
        }
    }
    return loss;
}

static void test_loss_and_dlogits_recompute(void **state)
{
    vec_file v;
    open_case(state, &v);
    int32_t V = v.cfg[F_V];
    const double *loss = golden_f64(v.g, "loss"), *dl = golden_f64(v.g, "dlogits");
    const float *loss32 = golden_f32(v.g, "loss_f32");
    assert_non_null(loss); assert_non_null(dl); assert_non_null(loss32);
    double *mine = calloc((size_t)v.n_rows * V, sizeof *mine);
    assert_non_null(mine);
    double l64 = weighted_ce(&v, "logits", mine), l32 = weighted_ce(&v, "logits_f32", NULL);
    if (fabs(l64 - *loss) > 1e-12 * fabs(*loss))
        fail_msg("%s: loss %.17g, recomputed %.17g", v.case_name, *loss, l64);
    if (fabs(l32 - *loss32) > 1e-6 * fabs(l32) || fabs(*loss32 - *loss) > 1e-5 * fabs(*loss))
        fail_msg("%s: float32 loss %.9g, recomputed %.9g, reference %.9g", v.case_name,
                 (double)*loss32, l32, *loss);
    const float *w = golden_f32(v.g, "row_weights");
    for (int32_t r = 0; r < v.n_rows; r++) {
        double sum = 0;
        for (int32_t j = 0; j < V; j++) {
            size_t k = (size_t)r * V + j;
            if (fabs(dl[k] - mine[k]) > 1e-14)
                fail_msg("%s: dlogits[%d,%d] %.17g, recomputed %.17g", v.case_name, r, j,
                         dl[k], mine[k]);
            sum += dl[k];
        }
        assert_true(dl[(size_t)r * V + v.cfg[F_MASK]] == 0.0);
        assert_true(fabs(sum) < 1e-14 * (1 + w[r])); /* softmax − onehot sums to 0 */
    }
    free(mine);
    golden_free(v.g);
}

/* d loss / d out.b = Σ_r dlogits[r]; untied: d loss / d out.w = dlogitsᵀ · hidden[rows]. */
static void test_head_gradients_are_exact(void **state)
{
    vec_file v;
    open_case(state, &v);
    int32_t V = v.cfg[F_V], d = v.cfg[F_D];
    const double *dl = golden_f64(v.g, "dlogits"), *h = golden_f64(v.g, "hidden");
    const double *gb = golden_f64(v.g, "grad.out.b");
    const int32_t *rows = golden_i32(v.g, "rows");
    assert_non_null(dl); assert_non_null(h); assert_non_null(gb); assert_non_null(rows);
    for (int32_t j = 0; j < V; j++) {
        double s = 0;
        for (int32_t r = 0; r < v.n_rows; r++) s += dl[(size_t)r * V + j];
        if (fabs(s - gb[j]) > 1e-12) fail_msg("%s: grad.out.b[%d] %.17g vs %.17g",
                                              v.case_name, j, gb[j], s);
    }
    if (!v.cfg[F_TIE]) {
        const double *gw = golden_f64(v.g, "grad.out.w");
        assert_non_null(gw);
        for (int32_t j = 0; j < V; j++)
            for (int32_t k = 0; k < d; k++) {
                double s = 0;
                for (int32_t r = 0; r < v.n_rows; r++)
                    s += dl[(size_t)r * V + j] * h[(size_t)rows[r] * d + k];
                if (fabs(s - gw[(size_t)j * d + k]) > 1e-12)
                    fail_msg("%s: grad.out.w[%d,%d] %.17g vs %.17g", v.case_name, j, k,
                             gw[(size_t)j * d + k], s);
            }
    }
    golden_free(v.g);
}

static int row_is_zero(const golden_array *a, int64_t row)
{
    for (int64_t k = 0; k < a->dims[1]; k++)
        if (golden_at(a, (size_t)(row * a->dims[1] + k)) != 0.0) return 0;
    return 1;
}

/* Gradients the model must leave exactly zero (or, for the key bias, zero up
 * to rounding), and their non-zero counterparts. */
static void test_vanishing_gradients(void **state)
{
    vec_file v;
    open_case(state, &v);
    const int32_t *c = v.cfg, *ids = golden_i32(v.g, "ids");
    int32_t d = c[F_D], BT = v.B * v.T;
    assert_non_null(ids);
    /* [MASK] logit is −∞: its bias and (untied) output row get nothing. */
    assert_true(golden_f64(v.g, "grad.out.b")[c[F_MASK]] == 0.0);
    assert_true(golden_f32(v.g, "grad_f32.out.b")[c[F_MASK]] == 0.0f);
    if (!c[F_TIE]) {
        assert_true(row_is_zero(golden_find(v.g, "grad.out.w"), c[F_MASK]));
        assert_true(row_is_zero(golden_find(v.g, "grad_f32.out.w"), c[F_MASK]));
    }
    /* Positions at or beyond T are not used. */
    if (c[F_POS] == 1) {
        const golden_array *gp = golden_find(v.g, "grad.pos_emb");
        for (int64_t p = 0; p < c[F_TMAX]; p++) assert_int_equal(row_is_zero(gp, p), p >= v.T);
    }
    /* Untied: an embedding row gets gradient iff its token feeds a loss row;
     * padded positions are never attended to, so the pad id gets none. */
    if (!c[F_TIE]) {
        const golden_array *ge = golden_find(v.g, "grad.tok_emb");
        const int32_t *km = golden_i32(v.g, "key_mask");
        for (int32_t tok = 0; tok < c[F_V]; tok++) {
            int used = 0;
            for (int32_t i = 0; i < BT; i++) used |= ids[i] == tok && km[i];
            int zero = row_is_zero(ge, tok);
            if (zero == used)
                fail_msg("%s: grad.tok_emb row %d zero=%d, token used=%d", v.case_name, tok,
                         zero, used);
        }
    }
    /* A bias on the keys adds q·b_k to a whole score row, which softmax
     * ignores — unless RoPE rotates it differently at each position. */
    for (int32_t l = 0; l < c[F_L]; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "grad.%d.qkv.b", l);
        const golden_array *gb = golden_find(v.g, nm);
        assert_non_null(gb);
        double all = max_abs(gb), keys = 0;
        for (int32_t k = d; k < 2 * d; k++) keys = fmax(keys, fabs(golden_at(gb, (size_t)k)));
        if (c[F_POS] == 1) assert_true(keys <= 1e-12 * all);
        else assert_true(keys > 1e-3 * all);
    }
    golden_free(v.g);
}

static void test_float32_gradients_near_float64(void **state)
{
    vec_file v;
    open_case(state, &v);
    param_spec ps[MAX_PARAMS];
    int np = param_specs(v.cfg, ps);
    for (int i = 0; i < np; i++) {
        char n64[48], n32[48];
        prefixed(n64, sizeof n64, "grad.", ps[i].name);
        prefixed(n32, sizeof n32, "grad_f32.", ps[i].name);
        const golden_array *a = golden_find(v.g, n64), *b = golden_find(v.g, n32);
        assert_non_null(a); assert_non_null(b);
        double scale = max_abs(a), worst = 0;
        assert_true(scale > 1e-3); /* every tensor takes part */
        for (size_t k = 0; k < a->count; k++)
            worst = fmax(worst, fabs(golden_at(a, k) - golden_at(b, k)));
        if (worst > 1e-5 * scale)
            fail_msg("%s: %s float32 vs float64 differ by %g (max %g)", v.case_name, ps[i].name,
                     worst, scale);
    }
    golden_free(v.g);
}

/* ---- the reader ------------------------------------------------------------ */

typedef struct bytes { unsigned char b[4096]; size_t n; } bytes;

static void put32(bytes *o, uint32_t x)
{
    for (int i = 0; i < 4; i++) o->b[o->n++] = (unsigned char)(x >> (8 * i));
}

static void put_name(bytes *o, const char *s)
{
    put32(o, (uint32_t)strlen(s));
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}

static void seal(bytes *o)
{
    put32(o, (uint32_t)crc32(crc32(0L, Z_NULL, 0), o->b, (uInt)o->n));
}

static void start(bytes *o, uint32_t version, uint32_t n)
{
    o->n = 0;
    memcpy(o->b, "TDGV", 4);
    o->n = 4;
    put32(o, version);
    put32(o, n);
}

/* The format byte by byte, as tests/golden/README.md states it. */
static void test_reader_decodes_handmade_file(void **state)
{
    (void)state;
    bytes o;
    start(&o, 1, 4);
    put_name(&o, "x");
    put32(&o, 1); put32(&o, 2); put32(&o, 2); put32(&o, 1);  /* f32 [2,1] */
    put32(&o, 0x3fc00000u); put32(&o, 0xc0200000u);          /* 1.5, -2.5 */
    put_name(&o, "loss");
    put32(&o, 2); put32(&o, 0);                                /* f64 scalar */
    put32(&o, 0); put32(&o, 0x3ff80000u);                      /* 1.5 */
    put_name(&o, "ids");
    put32(&o, 3); put32(&o, 1); put32(&o, 3);                  /* i32 [3] */
    put32(&o, 7); put32(&o, 0xffffffffu); put32(&o, 0x7fffffffu);
    put_name(&o, "empty");
    put32(&o, 2); put32(&o, 2); put32(&o, 0); put32(&o, 5);    /* f64 [0,5] */
    seal(&o);
    char err[256];
    golden_file *g = golden_parse(o.b, o.n, err, sizeof err);
    if (g == NULL) fail_msg("%s", err);
    assert_int_equal(g->n_arrays, 4);
    const golden_array *x = golden_find(g, "x");
    assert_non_null(x);
    assert_int_equal(x->ndim, 2);
    assert_int_equal(x->dims[0], 2);
    assert_int_equal(x->dims[1], 1);
    assert_int_equal(x->count, 2);
    assert_true(golden_f32(g, "x")[0] == 1.5f && golden_f32(g, "x")[1] == -2.5f);
    assert_null(golden_f64(g, "x"));
    assert_null(golden_i32(g, "x"));
    assert_true(golden_f64(g, "loss")[0] == 1.5);
    assert_int_equal(golden_find(g, "loss")->count, 1);
    const int32_t *ids = golden_i32(g, "ids");
    assert_int_equal(ids[0], 7);
    assert_int_equal(ids[1], -1);
    assert_int_equal(ids[2], INT32_MAX);
    int32_t one;
    assert_false(golden_int(g, "ids", &one)); /* not a scalar */
    assert_int_equal(golden_find(g, "empty")->count, 0);
    assert_null(golden_find(g, "missing"));
    assert_null(golden_find(NULL, "x"));
    for (int i = 0; i < g->n_arrays; i++)
        assert_int_equal((uintptr_t)g->arrays[i].data % golden_dtype_size(g->arrays[i].dtype), 0);
    golden_free(g);
    golden_free(NULL);
}

/* Headers that are wrong in one field, each with a valid CRC so that the
 * structural check itself is what rejects them. */
static void test_reader_rejects_bad_headers(void **state)
{
    (void)state;
    struct { const char *what; uint32_t version, n, name_len, dtype, ndim, dim; int dup, extra; }
    bad[] = {
        { "version", 2, 1, 1, 1, 1, 1, 0, 0 },
        { "count", 1, 9999, 1, 1, 1, 1, 0, 0 },
        { "count", 1, 2, 1, 1, 1, 1, 0, 0 },      /* second array missing */
        { "name length", 1, 1, 0, 1, 1, 1, 0, 0 },
        { "name length", 1, 1, 64, 1, 1, 1, 0, 0 },
        { "name length", 1, 1, 0xffffffffu, 1, 1, 1, 0, 0 },
        { "dtype", 1, 1, 1, 0, 1, 1, 0, 0 },
        { "dtype", 1, 1, 1, 4, 1, 1, 0, 0 },
        { "ndim", 1, 1, 1, 1, 5, 1, 0, 0 },
        { "ndim", 1, 1, 1, 1, 0xffffffffu, 1, 0, 0 },
        { "dim", 1, 1, 1, 1, 1, 2, 0, 0 },        /* data short by one element */
        { "dim", 1, 1, 1, 1, 1, 0xffffffffu, 0, 0 },
        { "duplicate", 1, 2, 1, 1, 1, 1, 1, 0 },
        { "trailing", 1, 1, 1, 1, 1, 1, 0, 1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bytes o;
        start(&o, bad[i].version, bad[i].n);
        for (int a = 0; a < 1 + bad[i].dup; a++) {
            put32(&o, bad[i].name_len);
            o.b[o.n++] = 'a';
            put32(&o, bad[i].dtype);
            put32(&o, bad[i].ndim);
            if (bad[i].ndim <= 4) put32(&o, bad[i].dim);
            put32(&o, 0x3f800000u);
        }
        if (bad[i].extra) put32(&o, 0);
        seal(&o);
        char err[256] = "";
        golden_file *g = golden_parse(o.b, o.n, err, sizeof err);
        if (g != NULL) fail_msg("bad %s (case %zu) was accepted", bad[i].what, i);
        assert_true(strlen(err) > 0);
    }
    /* The same builder with nothing wrong is accepted. */
    bytes o;
    start(&o, 1, 1);
    put_name(&o, "a");
    put32(&o, 1); put32(&o, 1); put32(&o, 1); put32(&o, 0x3f800000u);
    seal(&o);
    golden_file *g = golden_parse(o.b, o.n, NULL, 0);
    assert_non_null(g);
    golden_free(g);
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *size = fread(buf, 1, 1 << 20, f);
    fclose(f);
    assert_true(*size > 0 && *size < (1 << 20));
    return buf;
}

static void test_reader_rejects_damaged_files(void **state)
{
    (void)state;
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s.tdgv", GOLDEN_DIR, cases[0].name);
    size_t size;
    unsigned char *buf = read_all(path, &size);
    golden_file *g = golden_parse(buf, size, err, sizeof err);
    if (g == NULL) fail_msg("%s", err);
    golden_free(g);
    for (size_t n = 0; n < size; n += n < 64 ? 1 : 97) {
        g = golden_parse(buf, n, err, sizeof err);
        if (g != NULL) fail_msg("a copy truncated to %zu bytes was accepted", n);
    }
    for (size_t pos = 0; pos < size; pos += 61) {
        buf[pos] ^= 0x10;
        g = golden_parse(buf, size, err, sizeof err);
        if (g != NULL) fail_msg("a bit flip at byte %zu was accepted", pos);
        buf[pos] ^= 0x10;
    }
    free(buf);
    assert_null(golden_load(GOLDEN_DIR "/no-such-file.tdgv", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(golden_load(NULL, NULL, 0));
}

#define PER_CASE(f)                               \
    cmocka_unit_test_prestate(f, &cases[0]),      \
    cmocka_unit_test_prestate(f, &cases[1]),      \
    cmocka_unit_test_prestate(f, &cases[2]),      \
    cmocka_unit_test_prestate(f, &cases[3])

int main(void)
{
    _Static_assert(N_CASES == 4, "PER_CASE lists every case");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_decodes_handmade_file),
        cmocka_unit_test(test_reader_rejects_bad_headers),
        cmocka_unit_test(test_reader_rejects_damaged_files),
        PER_CASE(test_arrays_match_config),
        PER_CASE(test_inputs_are_consistent),
        PER_CASE(test_logits_follow_from_hidden),
        PER_CASE(test_loss_and_dlogits_recompute),
        PER_CASE(test_head_gradients_are_exact),
        PER_CASE(test_vanishing_gradients),
        PER_CASE(test_float32_gradients_near_float64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
