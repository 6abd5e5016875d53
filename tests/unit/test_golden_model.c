/* The C model against PyTorch: logits, loss and every parameter gradient of
 * the six reference cases in tests/golden/ (tools/reference/make_vectors.py),
 * two of them causal models on the next-token objective.
 *
 * Tolerances (tests/golden/README.md): float32 PyTorch differs from its
 * float64 run by at most 8e-7 in the logits and 1e-6 of a tensor's largest
 * gradient; we allow 2e-5 absolute on logits, 2e-6 relative on the loss and
 * 2e-5 x the largest |gradient| per tensor, tight enough to catch a wrong
 * LayerNorm epsilon or the erf form of GELU. */
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
#include "kernels/kernels.h"
#include "model/model.h"
#include "common/test_pool.h"

static int golden_i(const golden_file *g, const char *name)
{
    int32_t v = 0;
    assert_true(golden_int(g, name, &v));
    return v;
}

static void check_case(const char *file, int nt)
{
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, file);
    golden_file *g = golden_load(path, err, sizeof err);
    if (g == NULL) fail_msg("%s: %s", path, err);

    tdi_model_config c = tdi_model_config_default();
    c.vocab_size = golden_i(g, "config.vocab_size");
    c.mask_id = golden_i(g, "config.mask_id");
    c.max_seq_len = golden_i(g, "config.max_seq_len");
    c.d_model = golden_i(g, "config.d_model");
    c.n_layers = golden_i(g, "config.n_layers");
    c.n_heads = golden_i(g, "config.n_heads");
    c.d_ff = golden_i(g, "config.d_ff");
    c.pos_encoding = golden_i(g, "config.pos_encoding");
    c.norm_placement = golden_i(g, "config.norm_placement");
    c.tie_embeddings = golden_i(g, "config.tie_embeddings");
    int32_t causal = 0; /* absent from the files that predate causal mode */
    c.causal = golden_int(g, "config.causal", &causal) ? causal : 0;
    const int B = golden_i(g, "batch"), T = golden_i(g, "seq_len"), V = c.vocab_size;

    tdi_model *m;
    assert_int_equal(tdi_model_create(&c, NULL, &m), TD_OK);
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        const golden_array *a = golden_find(g, t->name);
        if (a == NULL) fail_msg("%s: no tensor %s", file, t->name);
        assert_int_equal(a->count, (size_t)t->rows * (size_t)t->cols);
        memcpy(m->params + t->offset, a->data, a->count * sizeof(float));
    }

    const int32_t *ids = golden_i32(g, "ids");
    const int32_t *mask32 = golden_i32(g, "key_mask");
    uint8_t *key_mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) key_mask[i] = (uint8_t)mask32[i];
    const golden_array *rows_a = golden_find(g, "rows");
    const int n = (int)rows_a->count;
    const int32_t *rows = rows_a->data;

    tdi_workspace *ws;
    assert_int_equal(tdi_workspace_create(m, B, T, B * T, nt, 1, &ws), TD_OK);
    assert_int_equal(tdi_model_forward(m, ws, ids, B, T, key_mask, test_pool(nt)), TD_OK);

    /* Logits of every row. */
    int32_t *all = malloc(sizeof *all * (size_t)B * T);
    for (int i = 0; i < B * T; i++) all[i] = i;
    float *logits = malloc(sizeof *logits * (size_t)B * T * V);
    tdi_model_logits(m, ws, all, B * T, logits, test_pool(nt));
    const double *ref = golden_f64(g, "logits");
    double worst = 0;
    for (int i = 0; i < B * T * V; i++) {
        if (i % V == c.mask_id) {
            assert_true(isinf(logits[i]) && logits[i] < 0);
            continue;
        }
        double e = fabs(logits[i] - ref[i]);
        if (e > worst) worst = e;
    }
    if (worst > 2e-5) fail_msg("%s: logits differ by %g", file, worst);

    /* Loss and its gradient on the scored rows, then the backward pass. */
    float *sel = malloc(sizeof *sel * (size_t)n * V);
    double *row_loss = malloc(sizeof *row_loss * (size_t)n);
    tdi_model_logits(m, ws, rows, n, sel, test_pool(nt));
    double loss = tdi_crossentropy_forward_backward(sel, row_loss, sel, golden_i32(g, "targets"),
                                                    golden_f32(g, "row_weights"), n, V,
                                                    test_pool(nt));
    double ref_loss = golden_f64(g, "loss")[0];
    if (fabs(loss - ref_loss) > 2e-6 * fabs(ref_loss))
        fail_msg("%s: loss %.9g, reference %.9g", file, loss, ref_loss);

    float *grads = calloc(m->n_floats, sizeof *grads);
    tdi_model_backward(m, ws, rows, n, sel, grads, test_pool(nt));
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        char name[64];
        snprintf(name, sizeof name, "grad.%s", t->name);
        const golden_array *a = golden_find(g, name);
        if (a == NULL) fail_msg("%s: no %s", file, name);
        const double *gr = a->data;
        double scale = 0, err_max = 0;
        for (size_t k = 0; k < a->count; k++) scale = fmax(scale, fabs(gr[k]));
        for (size_t k = 0; k < a->count; k++)
            err_max = fmax(err_max, fabs(grads[t->offset + k] - gr[k]));
        if (err_max > 2e-5 * fmax(scale, 1e-6))
            fail_msg("%s: %s differs by %g (largest entry %g)", file, name, err_max, scale);
    }

    free(grads);
    free(row_loss);
    free(sel);
    free(logits);
    free(all);
    free(key_mask);
    tdi_workspace_free(ws);
    tdi_model_free(m);
    golden_free(g);
}

static void test_rope_pre_tied(void **state) { (void)state; check_case("rope_pre_tied.tdgv", 1); }
static void test_learned_post_untied(void **state)
{
    (void)state;
    check_case("learned_post_untied.tdgv", 1);
}
static void test_rope_post_tied_keymask(void **state)
{
    (void)state;
    check_case("rope_post_tied_keymask.tdgv", 2);
}
static void test_learned_pre_untied_keymask(void **state)
{
    (void)state;
    check_case("learned_pre_untied_keymask.tdgv", 2);
}

static void test_rope_pre_tied_causal(void **state)
{
    (void)state;
    check_case("rope_pre_tied_causal.tdgv", 1);
}
static void test_learned_post_untied_causal(void **state)
{
    (void)state;
    check_case("learned_post_untied_causal.tdgv", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_pre_tied),
        cmocka_unit_test(test_learned_post_untied),
        cmocka_unit_test(test_rope_post_tied_keymask),
        cmocka_unit_test(test_learned_pre_untied_keymask),
        cmocka_unit_test(test_rope_pre_tied_causal),
        cmocka_unit_test(test_learned_post_untied_causal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
