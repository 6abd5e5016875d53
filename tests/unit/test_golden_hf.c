/* Hugging Face models against transformers itself: tests/golden/hf/<name>/
 * (config.json + model.safetensors, saved by save_pretrained) loaded with
 * td_model_load_hf, and the logits, loss and every parameter gradient of
 * tests/golden/hf/<name>.tdgv, which tools/reference/make_hf_models.py
 * computed with the transformers model in float64 (docs/hf.md).
 *
 * Compared: the logits of every unpadded position (RoBERTa gives padded
 * positions another position id; their rows are never used), every column
 * but [MASK]'s (−∞ here), within 1e-4 of the largest logit; the loss within
 * 1e-5 relative; each gradient within 1e-4 of its tensor's largest entry.
 * bert_bf16 (BF16 file, tanh GELU, eps 1e-6) and roberta (F16 file) check
 * the conversions: the references use the rounded weights. */
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
#include "common/test_pool.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/model_api.h"

static void check_case(const char *name, int nt, int32_t expect_kind_types,
                       int32_t expect_offset)
{
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/hf/%s.tdgv", GOLDEN_DIR, name);
    golden_file *g = golden_load(path, err, sizeof err);
    if (g == NULL) fail_msg("%s: %s", path, err);
    snprintf(path, sizeof path, "%s/hf/%s", GOLDEN_DIR, name);
    int32_t mask_id = golden_i32(g, "mask_id")[0];

    td_model *model = NULL;
    if (td_model_load_hf(path, mask_id, 0, NULL, &model) != TD_OK)
        fail_msg("%s: %s", path, td_last_error_message());
    tdi_model *m = model->m;
    assert_int_equal(m->cfg.type_vocab_size, expect_kind_types);
    assert_int_equal(m->cfg.pos_offset, expect_offset);
    const golden_array *ids_a = golden_find(g, "ids");
    const int B = (int)ids_a->dims[0], T = (int)ids_a->dims[1], V = m->cfg.vocab_size;
    const int32_t *ids = ids_a->data;
    const int32_t *mask32 = golden_i32(g, "key_mask");
    uint8_t *key_mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) key_mask[i] = (uint8_t)mask32[i];

    tdi_workspace *ws;
    assert_int_equal(tdi_workspace_create(m, B, T, B * T, nt, 1, &ws), TD_OK);
    assert_int_equal(tdi_model_forward(m, ws, ids, B, T, key_mask, test_pool(nt)), TD_OK);
    int32_t *all = malloc(sizeof *all * (size_t)B * T);
    for (int i = 0; i < B * T; i++) all[i] = i;
    float *logits = malloc(sizeof *logits * (size_t)B * T * V);
    tdi_model_logits(m, ws, all, B * T, logits, test_pool(nt));
    const double *ref = golden_f64(g, "logits");
    double worst = 0, scale = 0;
    for (int i = 0; i < B * T * V; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < B * T * V; i++) {
        if (!key_mask[i / V]) continue;
        if (i % V == mask_id) {
            assert_true(isinf(logits[i]) && logits[i] < 0);
            continue;
        }
        worst = fmax(worst, fabs(logits[i] - ref[i]));
    }
    print_message("%s: logits within %.3g of the largest %.3g\n", name, worst, scale);
    if (worst > 1e-4 * scale) fail_msg("%s: logits differ by %g (largest %g)", name, worst, scale);

    const golden_array *rows_a = golden_find(g, "rows");
    const int n = (int)rows_a->count;
    const int32_t *rows = rows_a->data;
    float *sel = malloc(sizeof *sel * (size_t)n * V);
    double *row_loss = malloc(sizeof *row_loss * (size_t)n);
    tdi_model_logits(m, ws, rows, n, sel, test_pool(nt));
    double loss = tdi_crossentropy_forward_backward(sel, row_loss, sel, golden_i32(g, "targets"),
                                                    golden_f32(g, "row_weights"), n, V,
                                                    test_pool(nt));
    double ref_loss = golden_f64(g, "loss")[0];
    if (fabs(loss - ref_loss) > 1e-5 * fabs(ref_loss))
        fail_msg("%s: loss %.9g, reference %.9g", name, loss, ref_loss);

    float *grads = calloc(m->n_floats, sizeof *grads);
    tdi_model_backward(m, ws, rows, n, sel, grads, test_pool(nt));
    double worst_rel = 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *t = &m->tensors[i];
        char gname[64];
        snprintf(gname, sizeof gname, "grad.%s", t->name);
        const golden_array *a = golden_find(g, gname);
        if (a == NULL) fail_msg("%s: no %s", name, gname);
        assert_int_equal(a->count, (size_t)t->rows * (size_t)t->cols);
        const float *gr = a->data;
        double gs = 0, e = 0;
        for (size_t k = 0; k < a->count; k++) gs = fmax(gs, fabs(gr[k]));
        for (size_t k = 0; k < a->count; k++) e = fmax(e, fabs(grads[t->offset + k] - gr[k]));
        if (e > 1e-4 * fmax(gs, 1e-6))
            fail_msg("%s: %s differs by %g (largest entry %g)", name, gname, e, gs);
        if (gs > 0) worst_rel = fmax(worst_rel, e / gs);
    }
    print_message("%s: loss %.7g (reference %.7g), gradients within %.3g of each tensor's "
                  "largest entry\n", name, loss, ref_loss, worst_rel);

    free(grads);
    free(row_loss);
    free(sel);
    free(logits);
    free(all);
    free(key_mask);
    tdi_workspace_free(ws);
    td_model_free(model);
    golden_free(g);
}

static void test_bert(void **s) { (void)s; check_case("bert", 1, 2, 0); }
static void test_bert_bf16(void **s) { (void)s; check_case("bert_bf16", 2, 2, 0); }
static void test_roberta(void **s) { (void)s; check_case("roberta", 1, 1, 2); }
static void test_distilbert(void **s) { (void)s; check_case("distilbert", 2, 0, 0); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert),
        cmocka_unit_test(test_bert_bf16),
        cmocka_unit_test(test_roberta),
        cmocka_unit_test(test_distilbert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
