/* The transformer encoder: configuration limits, allocation failure,
 * parameter directory and initialisation, whole-model gradients, and the
 * properties the samplers and trainer rely on (row subsets, the [MASK]
 * column, thread-count independence, no leakage between sequences, padding).
 *
 * Gradient check tolerance. The model is float32, so a numeric derivative
 * carries the rounding noise of the loss (~1e-6 relative, and different for
 * every BLAS kernel) divided by the step, besides its truncation error.
 * Central differences at h = 1e-2 and 2e-2 on parameters of scale ~0.3..1,
 * combined by Richardson extrapolation, make the truncation O(h⁴) and the
 * noise ~1e-4 absolute. Every parameter of the tiny model is checked with
 * |g − g_fd| <= 2e-3 + 2e-2·|g_fd|; a missing or wrong term is typically off
 * by O(|g|), far outside that band. A directional derivative along a random
 * direction (a sum over all parameters) must match to 1e-3 relative. Under
 * four OpenBLAS kernels and with the last bits of every product perturbed,
 * the worst parameter used a third of its band and the directional
 * derivative a sixth of its tolerance (with plain central differences at
 * h = 2e-3 they had come within 10% of the band and past the tolerance).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "util/rng.h"
#include "common/test_pool.h"

static tdi_model_config tiny_config(int pos, int norm, int tie)
{
    tdi_model_config c = tdi_model_config_default();
    c.vocab_size = 11;
    c.mask_id = 10;
    c.max_seq_len = 8;
    c.d_model = 8;
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_ff = 16;
    c.pos_encoding = pos;
    c.norm_placement = norm;
    c.tie_embeddings = tie;
    return c;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ------------------------------------------------------------------------ */
/* configuration */

typedef struct bad_field {
    const char *field;
    void (*apply)(tdi_model_config *c);
} bad_field;

#define BAD(name, stmt) static void name(tdi_model_config *c) { stmt; }
BAD(vocab_small, c->vocab_size = 1)
BAD(vocab_big, c->vocab_size = 1048577)
BAD(mask_neg, c->mask_id = -1)
BAD(mask_big, c->mask_id = c->vocab_size)
BAD(seq_zero, c->max_seq_len = 0)
BAD(seq_big, c->max_seq_len = 65537)
BAD(d_zero, c->d_model = 0)
BAD(d_big, c->d_model = 16385)
BAD(layers_zero, c->n_layers = 0)
BAD(layers_big, c->n_layers = 1025)
BAD(heads_zero, c->n_heads = 0)
BAD(heads_big, c->n_heads = c->d_model + 2)
BAD(heads_divide, c->n_heads = 3)
BAD(heads_odd_rope, (c->d_model = 6, c->n_heads = 2))
BAD(ff_zero, c->d_ff = 0)
BAD(ff_big, c->d_ff = 65537)
BAD(pos_bad, c->pos_encoding = 2)
BAD(pos_neg, c->pos_encoding = -1)
BAD(norm_bad, c->norm_placement = 2)
BAD(tie_bad, c->tie_embeddings = 2)
BAD(tie_neg, c->tie_embeddings = -1)
BAD(too_many_params, (c->vocab_size = 1048576, c->d_model = 4096, c->n_heads = 4))
#undef BAD

static void test_config_validation(void **state)
{
    (void)state;
    static const bad_field bad[] = {
        { "vocab_size", vocab_small }, { "vocab_size", vocab_big },
        { "mask_id", mask_neg },       { "mask_id", mask_big },
        { "max_seq_len", seq_zero },   { "max_seq_len", seq_big },
        { "d_model", d_zero },         { "d_model", d_big },
        { "n_layers", layers_zero },   { "n_layers", layers_big },
        { "n_heads", heads_zero },     { "n_heads", heads_big },
        { "n_heads", heads_divide },   { "head size", heads_odd_rope },
        { "d_ff", ff_zero },           { "d_ff", ff_big },
        { "pos_encoding", pos_bad },   { "pos_encoding", pos_neg },
        { "norm_placement", norm_bad }, { "tie_embeddings", tie_bad },
        { "tie_embeddings", tie_neg }, { "parameters", too_many_params },
    };
    tdi_model_config ok = tdi_model_config_default();
    assert_int_equal(tdi_model_config_validate(&ok), TD_OK);
    assert_int_equal(tdi_model_config_validate(NULL), TD_ERR_INVALID_ARG);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tdi_model_config c = ok;
        bad[i].apply(&c);
        assert_int_equal(tdi_model_config_validate(&c), TD_ERR_INVALID_ARG);
        if (!strstr(td_last_error_message(), bad[i].field))
            fail_msg("case %zu: message \"%s\" does not name %s", i, td_last_error_message(),
                     bad[i].field);
        char dummy;
        tdi_model *m = (tdi_model *)(void *)&dummy; /* must be reset to NULL */
        assert_int_equal(tdi_model_create(&c, NULL, &m), TD_ERR_INVALID_ARG);
        assert_null(m);
    }
    /* Odd head size is fine without RoPE; limits themselves are valid. */
    tdi_model_config c = ok;
    c.d_model = 6;
    c.n_heads = 2;
    c.pos_encoding = TDI_POS_LEARNED;
    assert_int_equal(tdi_model_config_validate(&c), TD_OK);
    c = ok;
    c.vocab_size = 2;
    c.mask_id = 1;
    c.max_seq_len = 65536;
    c.n_heads = c.d_model;
    c.pos_encoding = TDI_POS_LEARNED;
    assert_int_equal(tdi_model_config_validate(&c), TD_OK);
}

/* ------------------------------------------------------------------------ */
/* allocation failure */

static void test_create_nomem_leaks_nothing(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        tdi_model_config c = tiny_config(variant, variant, 1 - variant);
        test_heap heap;
        td_allocator a = test_heap_allocator(&heap);
        long k;
        tdi_model *m = NULL;
        for (k = 0;; k++) {
            heap.calls = 0;
            heap.fail_at = k;
            td_status st = tdi_model_create(&c, &a, &m);
            if (st == TD_OK) break;
            assert_int_equal(st, TD_ERR_NOMEM);
            assert_null(m);
            assert_int_equal(heap.live, 0);
        }
        assert_true(k >= 3); /* struct, directory, layers, parameters */
        heap.fail_at = -1;
        for (int wb = 0; wb < 2; wb++) {
            tdi_workspace *ws = NULL;
            long j;
            long live = heap.live;
            for (j = 0;; j++) {
                heap.calls = 0;
                heap.fail_at = j;
                td_status st = tdi_workspace_create(m, 2, 5, 4, 2, wb, &ws);
                if (st == TD_OK) break;
                assert_int_equal(st, TD_ERR_NOMEM);
                assert_null(ws);
                assert_int_equal(heap.live, live);
            }
            assert_true(j >= (wb ? 3 : 2));
            heap.fail_at = -1;
            tdi_workspace_free(ws);
            assert_int_equal(heap.live, live);
        }
        tdi_model_free(m);
        assert_int_equal(heap.live, 0);
    }
    tdi_model_free(NULL);
    tdi_workspace_free(NULL);
}

static void test_workspace_arguments(void **state)
{
    (void)state;
    tdi_model_config c = tiny_config(TDI_POS_ROPE, TDI_NORM_PRE, 1);
    tdi_model *m;
    assert_int_equal(tdi_model_create(&c, NULL, &m), TD_OK);
    char dummy;
    tdi_workspace *ws = (tdi_workspace *)(void *)&dummy;
    assert_int_equal(tdi_workspace_create(m, 0, 5, 4, 1, 1, &ws), TD_ERR_INVALID_ARG);
    assert_null(ws);
    assert_non_null(strstr(td_last_error_message(), "b_max"));
    assert_int_equal(tdi_workspace_create(m, 2, 9, 4, 1, 1, &ws), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "t_max"));
    assert_int_equal(tdi_workspace_create(m, 2, 0, 4, 1, 1, &ws), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_workspace_create(m, 2, 5, 0, 1, 1, &ws), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "rows_max"));
    assert_int_equal(tdi_workspace_create(m, 2, 5, 4, 0, 1, &ws), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "n_threads"));
    assert_int_equal(tdi_workspace_create(m, 2, 5, 4, 1025, 0, &ws), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "n_threads"));
    assert_int_equal(tdi_workspace_create(m, 1 << 30, 8, 4, 1, 0, &ws), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_workspace_create(NULL, 2, 5, 4, 1, 1, &ws), TD_ERR_INVALID_ARG);

    assert_int_equal(tdi_workspace_create(m, 2, 5, 4, 1, 1, &ws), TD_OK);
    int32_t ids[10] = { 0 };
    assert_int_equal(tdi_model_forward(m, ws, ids, 3, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_model_forward(m, ws, ids, 2, 6, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_model_forward(m, ws, ids, 0, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    ids[7] = 11;
    assert_int_equal(tdi_model_forward(m, ws, ids, 2, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "ids[7]"));
    ids[7] = -1;
    assert_int_equal(tdi_model_forward(m, ws, ids, 2, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    ids[7] = 10;
    assert_int_equal(tdi_model_forward(m, ws, ids, 2, 5, NULL, test_pool(1)), TD_OK);
    assert_int_equal(tdi_model_forward(NULL, ws, ids, 2, 5, NULL, test_pool(1)),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_model_forward(m, ws, NULL, 2, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);

    /* A workspace belongs to one configuration. */
    tdi_model_config c2 = c;
    c2.d_ff = 32;
    tdi_model *m2;
    assert_int_equal(tdi_model_create(&c2, NULL, &m2), TD_OK);
    assert_int_equal(tdi_model_forward(m2, ws, ids, 2, 5, NULL, test_pool(1)), TD_ERR_INVALID_ARG);
    tdi_model_free(m2);
    tdi_workspace_free(ws);
    tdi_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* parameter directory and initialisation */

static void test_directory(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        int learned = variant & 1, tied = (variant >> 1) & 1;
        tdi_model_config c = tiny_config(learned, TDI_NORM_PRE, tied);
        c.n_layers = 3;
        tdi_model *m;
        assert_int_equal(tdi_model_create(&c, NULL, &m), TD_OK);
        size_t V = 11, d = 8, f = 16, L = 3;
        size_t expect = V * d + L * (2 * d + 3 * d * d + 3 * d + d * d + d + 2 * d + f * d + f
                                     + d * f + d)
                        + 2 * d + V + (learned ? 8 * d : 0) + (tied ? 0 : V * d);
        assert_int_equal(m->n_params, expect);
        assert_int_equal(tdi_model_config_n_params(&c), expect);
        assert_int_equal(m->n_tensors, 1 + learned + 12 * 3 + 2 + !tied + 1);
        /* The tensors fill the buffer in order, each at the next multiple of
         * 16 floats (64 bytes), as a checkpoint file lays them out. */
        size_t off = 0, count = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            off = (off + 15) / 16 * 16;
            assert_int_equal(m->tensors[i].offset, off);
            off += (size_t)m->tensors[i].rows * m->tensors[i].cols;
            count += (size_t)m->tensors[i].rows * m->tensors[i].cols;
        }
        assert_int_equal(off, m->n_floats);
        assert_int_equal(count, m->n_params);
        assert_true(m->n_floats > m->n_params); /* V = 11: tok_emb leaves a gap */
        static const char *order[] = { "ln1.w", "ln1.b", "qkv.w", "qkv.b", "proj.w", "proj.b",
                                       "ln2.w", "ln2.b", "fc.w", "fc.b", "fc2.w", "fc2.b" };
        static const int rows[] = { 1, 1, 24, 1, 8, 1, 1, 1, 16, 1, 8, 1 };
        static const int cols[] = { 8, 8, 8, 24, 8, 8, 8, 8, 8, 16, 16, 8 };
        enum { M = TDI_TENSOR_MATRIX, E = TDI_TENSOR_EMBEDDING, B = TDI_TENSOR_BIAS,
               N = TDI_TENSOR_NORM };
        static const int kinds[] = { N, N, M, B, M, B, N, N, M, B, M, B };
        int i = 0;
        assert_int_equal(m->tensors[i].kind, E);
        assert_string_equal(m->tensors[i++].name, "tok_emb");
        if (learned) assert_int_equal(m->tensors[i].kind, E);
        if (learned) assert_string_equal(m->tensors[i++].name, "pos_emb");
        for (int l = 0; l < 3; l++)
            for (int k = 0; k < 12; k++, i++) {
                char name[32];
                snprintf(name, sizeof name, "%d.%s", l, order[k]);
                assert_string_equal(m->tensors[i].name, name);
                assert_int_equal(m->tensors[i].rows, rows[k]);
                assert_int_equal(m->tensors[i].cols, cols[k]);
                assert_int_equal(m->tensors[i].kind, kinds[k]);
                assert_ptr_equal(tdi_model_find(m, name), &m->tensors[i]);
            }
        assert_int_equal(m->tensors[i].kind, N);
        assert_string_equal(m->tensors[i++].name, "lnf.w");
        assert_int_equal(m->tensors[i].kind, N);
        assert_string_equal(m->tensors[i++].name, "lnf.b");
        if (!tied) assert_int_equal(m->tensors[i].kind, M);
        if (!tied) assert_string_equal(m->tensors[i++].name, "out.w");
        assert_int_equal(m->tensors[i].kind, B);
        assert_string_equal(m->tensors[i++].name, "out.b");
        assert_int_equal(i, m->n_tensors);

        const tdi_tensor *tok = tdi_model_find(m, "tok_emb");
        assert_int_equal(tok->rows, 11);
        assert_int_equal(tok->cols, 8);
        assert_int_equal(tdi_model_find(m, "pos_emb") != NULL, learned);
        assert_int_equal(tdi_model_find(m, "out.w") != NULL, !tied);
        assert_int_equal(m->out_w, tied ? m->tok_emb : tdi_model_find(m, "out.w")->offset);
        assert_int_equal(m->layers[2].fc2_b, tdi_model_find(m, "2.fc2.b")->offset);
        assert_null(tdi_model_find(m, "3.qkv.w"));
        assert_null(tdi_model_find(m, "qkv.w"));
        assert_null(tdi_model_find(m, ""));
        tdi_model_free(m);
    }
}

/* Fills a tensor as docs/model.md prescribes, from the reference stream. */
static void expect_tensor(const tdi_model *m, float *expect, const char *name, double std,
                          float constant, tdi_rng *r)
{
    const tdi_tensor *t = tdi_model_find(m, name);
    assert_non_null(t);
    for (size_t j = 0; j < (size_t)t->rows * t->cols; j++)
        expect[t->offset + j] = std > 0 ? (float)(std * tdi_rng_normal(r)) : constant;
}

static void test_init_follows_the_definition(void **state)
{
    (void)state;
    tdi_model_config c = tiny_config(TDI_POS_LEARNED, TDI_NORM_PRE, 0);
    c.n_layers = 3;
    tdi_model *m;
    assert_int_equal(tdi_model_create(&c, NULL, &m), TD_OK);
    tdi_model_init(m, 1234);
    float *expect = xmalloc(m->n_floats * sizeof *expect);
    memset(expect, 0, m->n_floats * sizeof *expect); /* the gaps between tensors stay zero */
    tdi_rng r;
    tdi_rng_seed(&r, 1234);
    double s = 0.02, sr = 0.02 / sqrt(2.0 * 3);
    expect_tensor(m, expect, "tok_emb", s, 0, &r);
    expect_tensor(m, expect, "pos_emb", s, 0, &r);
    for (int l = 0; l < 3; l++) {
        char n[32];
#define EXPECT(suffix, std, k) \
        snprintf(n, sizeof n, "%d." suffix, l); expect_tensor(m, expect, n, std, k, &r)
        EXPECT("ln1.w", 0, 1.0f);
        EXPECT("ln1.b", 0, 0.0f);
        EXPECT("qkv.w", s, 0);
        EXPECT("qkv.b", 0, 0.0f);
        EXPECT("proj.w", sr, 0);
        EXPECT("proj.b", 0, 0.0f);
        EXPECT("ln2.w", 0, 1.0f);
        EXPECT("ln2.b", 0, 0.0f);
        EXPECT("fc.w", s, 0);
        EXPECT("fc.b", 0, 0.0f);
        EXPECT("fc2.w", sr, 0);
        EXPECT("fc2.b", 0, 0.0f);
#undef EXPECT
    }
    expect_tensor(m, expect, "lnf.w", 0, 1.0f, &r);
    expect_tensor(m, expect, "lnf.b", 0, 0.0f, &r);
    expect_tensor(m, expect, "out.w", s, 0, &r);
    expect_tensor(m, expect, "out.b", 0, 0.0f, &r);
    assert_memory_equal(m->params, expect, m->n_floats * sizeof *expect);

    /* Another seed, other numbers; the same seed, the same numbers. */
    tdi_model_init(m, 1235);
    assert_memory_not_equal(m->params, expect, m->n_floats * sizeof *expect);
    tdi_model_init(m, 1234);
    assert_memory_equal(m->params, expect, m->n_floats * sizeof *expect);
    free(expect);
    tdi_model_free(m);

    /* The scale, on a tensor big enough to measure it. */
    c = tdi_model_config_default();
    c.n_layers = 2;
    assert_int_equal(tdi_model_create(&c, NULL, &m), TD_OK);
    tdi_model_init(m, 7);
    const char *names[] = { "tok_emb", "1.fc2.w" };
    double stds[] = { 0.02, 0.01 };
    for (int k = 0; k < 2; k++) {
        const tdi_tensor *t = tdi_model_find(m, names[k]);
        double sum = 0, sq = 0;
        size_t n = (size_t)t->rows * t->cols;
        for (size_t j = 0; j < n; j++) {
            sum += m->params[t->offset + j];
            sq += (double)m->params[t->offset + j] * m->params[t->offset + j];
        }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        assert_true(fabs(mean) < 3 * stds[k] / sqrt((double)n) + 1e-12);
        assert_true(fabs(sd / stds[k] - 1) < 0.02);
    }
    tdi_model_free(m);
}

/* ------------------------------------------------------------------------ */
/* a small problem: model, workspace, batch, selected rows, targets */

/* The problem's workspace serves up to this many threads. */
#define PROBLEM_THREADS 3

typedef struct problem {
    tdi_model *m;
    tdi_workspace *ws;
    int32_t B, T, n_rows;
    int32_t *ids, *rows, *targets;
    uint8_t *mask; /* or NULL */
    float *weights, *logits, *dlogits, *grads;
    double *row_loss;
} problem;

static void problem_init(problem *p, const tdi_model_config *c, int32_t B, int32_t T,
                         int use_mask, uint64_t seed)
{
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    memset(p, 0, sizeof *p);
    assert_int_equal(tdi_model_create(c, NULL, &p->m), TD_OK);
    p->B = B;
    p->T = T;
    int32_t N = B * T, V = c->vocab_size;
    p->n_rows = N - N / 3;
    assert_int_equal(tdi_workspace_create(p->m, B, T, N, PROBLEM_THREADS, 1, &p->ws), TD_OK);
    p->ids = xmalloc(N * sizeof *p->ids);
    p->rows = xmalloc(p->n_rows * sizeof *p->rows);
    p->targets = xmalloc(p->n_rows * sizeof *p->targets);
    p->weights = xmalloc(p->n_rows * sizeof *p->weights);
    p->logits = xmalloc((size_t)p->n_rows * V * sizeof *p->logits);
    p->dlogits = xmalloc((size_t)p->n_rows * V * sizeof *p->dlogits);
    p->row_loss = xmalloc(p->n_rows * sizeof *p->row_loss);
    p->grads = xmalloc(p->m->n_floats * sizeof *p->grads);
    for (int i = 0; i < N; i++) p->ids[i] = (int32_t)tdi_rng_below(&r, (uint64_t)V);
    for (int i = 0; i < p->n_rows; i++) {
        p->rows[i] = (int32_t)((i * 3 + 1) % N); /* a scattered subset */
        p->targets[i] = (int32_t)tdi_rng_below(&r, (uint64_t)V - 1);
        if (p->targets[i] >= c->mask_id) p->targets[i]++;
        p->weights[i] = 0.5f + tdi_rng_f32(&r);
    }
    p->rows[p->n_rows - 1] = p->rows[0]; /* a repeated row adds up */
    if (use_mask) { /* the last sequence is padded: its last two keys */
        p->mask = xmalloc(N);
        memset(p->mask, 1, N);
        p->mask[N - 1] = p->mask[N - 2] = 0;
    }
    /* Parameters at a scale where every nonlinearity is exercised. */
    for (size_t i = 0; i < p->m->n_floats; i++)
        p->m->params[i] = (float)(0.8 * (tdi_rng_f64(&r) - 0.5));
    for (int32_t i = 0; i < p->m->n_tensors; i++) {
        const tdi_tensor *t = &p->m->tensors[i];
        if (strstr(t->name, "ln") && t->name[strlen(t->name) - 1] == 'w')
            for (int j = 0; j < t->cols; j++) p->m->params[t->offset + j] += 1.0f;
        if (strcmp(t->name, "tok_emb") == 0 || strcmp(t->name, "pos_emb") == 0)
            for (size_t j = 0; j < (size_t)t->rows * t->cols; j++)
                p->m->params[t->offset + j] *= 2.5f;
    }
}

static void problem_free(problem *p)
{
    tdi_workspace_free(p->ws);
    tdi_model_free(p->m);
    free(p->ids); free(p->rows); free(p->targets); free(p->weights); free(p->logits);
    free(p->dlogits); free(p->row_loss); free(p->grads); free(p->mask);
}

static double problem_loss(problem *p, int nt)
{
    assert_int_equal(
        tdi_model_forward(p->m, p->ws, p->ids, p->B, p->T, p->mask, test_pool(nt)), TD_OK);
    tdi_model_logits(p->m, p->ws, p->rows, p->n_rows, p->logits, test_pool(nt));
    return tdi_crossentropy_forward_backward(NULL, p->row_loss, p->logits, p->targets,
                                             p->weights, p->n_rows, p->m->cfg.vocab_size,
                                             test_pool(nt));
}

/* Loss, and its gradient into p->grads (zeroed first). */
static double problem_grad(problem *p, int nt)
{
    assert_int_equal(
        tdi_model_forward(p->m, p->ws, p->ids, p->B, p->T, p->mask, test_pool(nt)), TD_OK);
    tdi_model_logits(p->m, p->ws, p->rows, p->n_rows, p->logits, test_pool(nt));
    double loss = tdi_crossentropy_forward_backward(p->dlogits, p->row_loss, p->logits,
                                                    p->targets, p->weights, p->n_rows,
                                                    p->m->cfg.vocab_size, test_pool(nt));
    memset(p->grads, 0, p->m->n_floats * sizeof *p->grads);
    tdi_model_backward(p->m, p->ws, p->rows, p->n_rows, p->dlogits, p->grads, test_pool(nt));
    return loss;
}

static const char *tensor_of(const tdi_model *m, size_t i)
{
    for (int32_t k = m->n_tensors - 1; k >= 0; k--)
        if (m->tensors[k].offset <= i) return m->tensors[k].name;
    return "?";
}

/* The loss with every parameter at saved[i] + s·dir[i] (dir NULL: only
 * parameter `only` moves, by s). Returns the step actually taken, which
 * float rounding of the parameters makes differ slightly from s. */
static double loss_at(problem *p, const float *saved, const float *dir, size_t only, double s,
                      double *taken)
{
    float *theta = p->m->params;
    if (dir == NULL) {
        theta[only] = (float)(saved[only] + s);
        *taken = (double)theta[only] - (double)saved[only];
    } else {
        for (size_t i = 0; i < p->m->n_floats; i++) theta[i] = saved[i] + (float)s * dir[i];
        *taken = s;
    }
    double f = problem_loss(p, 1);
    memcpy(theta, saved, p->m->n_floats * sizeof *theta);
    return f;
}

/* The derivative of the loss along a parameter (dir NULL) or a direction:
 * central differences at steps h and 2h combined by Richardson
 * extrapolation, (4·D(h) − D(2h)) / 3, which cancels the h² term. Its error
 * is O(h⁴) plus the loss's rounding noise σ times ~1/h; with the O(h⁴) term
 * gone, h can be large enough that the noise — which differs from one BLAS
 * kernel to another — stays well inside the tolerances. */
static double numeric_derivative(problem *p, const float *saved, const float *dir, size_t only,
                                 double h)
{
    double d[2];
    for (int k = 0; k < 2; k++) {
        double s = h * (k + 1), tp, tm;
        double fp = loss_at(p, saved, dir, only, s, &tp);
        double fm = loss_at(p, saved, dir, only, -s, &tm);
        d[k] = (fp - fm) / (tp - tm);
    }
    return (4 * d[0] - d[1]) / 3;
}

/* The step of the numeric derivatives (in a parameter, or along a direction
 * whose entries lie in [-0.5, 0.5]). */
#define FD_STEP 1e-2

static void check_config_gradient(const tdi_model_config *cp, int use_mask, uint64_t seed)
{
    tdi_model_config c = *cp;
    int pos = c.pos_encoding, norm = c.norm_placement, tie = c.tie_embeddings;
    problem p;
    problem_init(&p, &c, 2, 5, use_mask, seed);
    problem_grad(&p, 2);
    const size_t np = p.m->n_floats;
    float *saved = xmalloc(np * sizeof *saved);
    memcpy(saved, p.m->params, np * sizeof *saved);
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        double num = numeric_derivative(&p, saved, NULL, i, FD_STEP);
        double err = fabs(p.grads[i] - num), tol = 2e-3 + 2e-2 * fabs(num);
        if (err / tol > worst) worst = err / tol;
        if (!(err <= tol))
            fail_msg("pos %d norm %d tie %d: d loss / d %s [%zu]: analytic %.6g, numeric %.6g",
                     pos, norm, tie, tensor_of(p.m, i), i, (double)p.grads[i], num);
    }
    /* Unused position rows (below pos_offset, and T < max_seq_len) get exactly
     * no gradient. */
    if (pos == TDI_POS_LEARNED) {
        size_t d = (size_t)c.d_model, off = (size_t)c.pos_offset;
        for (size_t j = 0; j < off * d; j++) assert_true(p.grads[p.m->pos_emb + j] == 0.0f);
        for (size_t j = (off + 5) * d; j < (off + 8) * d; j++)
            assert_true(p.grads[p.m->pos_emb + j] == 0.0f);
    }

    /* Directional derivative along a random direction. */
    tdi_rng r;
    tdi_rng_seed(&r, 5);
    float *dir = xmalloc(np * sizeof *dir);
    double gdot = 0;
    for (size_t i = 0; i < np; i++) {
        dir[i] = (float)(tdi_rng_f64(&r) - 0.5);
        gdot += (double)dir[i] * p.grads[i];
    }
    double num = numeric_derivative(&p, saved, dir, 0, FD_STEP);
    if (!(fabs(num - gdot) <= 1e-3 * fabs(gdot)))
        fail_msg("pos %d norm %d tie %d: directional derivative %.8g, numeric %.8g", pos, norm,
                 tie, gdot, num);
    print_message("pos %d norm %d tie %d: %zu parameters, worst error %.2f of tolerance, "
                  "directional %.3g relative\n", pos, norm, tie, np, worst,
                  fabs(num - gdot) / fabs(gdot));
    free(dir);
    free(saved);
    problem_free(&p);
}

static void check_model_gradient_mode(int pos, int norm, int tie, int causal)
{
    tdi_model_config c = tiny_config(pos, norm, tie);
    c.causal = causal;
    check_config_gradient(&c, tie == 0, 99 + (uint64_t)(pos * 4 + norm * 2 + tie));
}

static void check_model_gradient(int pos, int norm, int tie)
{
    check_model_gradient_mode(pos, norm, tie, 0);
}

/* The options of Hugging Face's encoders (docs/hf.md): BERT's (erf GELU,
 * token types, the head transform, eps 1e-12), RoBERTa's position offset,
 * and the same head on a pre-LN model with the tanh GELU. */
static void test_gradient_bert(void **s)
{
    (void)s;
    tdi_model_config c = tiny_config(TDI_POS_LEARNED, TDI_NORM_POST, 1);
    c.activation = TDI_GELU_ERF;
    c.type_vocab_size = 2;
    c.head_transform = 1;
    c.layer_norm_eps = 1e-12f;
    check_config_gradient(&c, 1, 123);
}

static void test_gradient_roberta(void **s)
{
    (void)s;
    tdi_model_config c = tiny_config(TDI_POS_LEARNED, TDI_NORM_POST, 1);
    c.activation = TDI_GELU_ERF;
    c.type_vocab_size = 1;
    c.pos_offset = 2;
    c.head_transform = 1;
    check_config_gradient(&c, 0, 124);
}

static void test_gradient_head_pre_untied(void **s)
{
    (void)s;
    tdi_model_config c = tiny_config(TDI_POS_ROPE, TDI_NORM_PRE, 0);
    c.head_transform = 1;
    c.type_vocab_size = 3;
    check_config_gradient(&c, 1, 125);
}

/* Causal attention: the same check, the later keys masked. */
static void test_gradient_causal_rope_pre_tied(void **s)
{
    (void)s;
    check_model_gradient_mode(0, 0, 1, 1);
}
static void test_gradient_causal_learned_post_untied(void **s)
{
    (void)s;
    check_model_gradient_mode(1, 1, 0, 1);
}

static void test_gradient_rope_pre_tied(void **s) { (void)s; check_model_gradient(0, 0, 1); }
static void test_gradient_rope_pre_untied(void **s) { (void)s; check_model_gradient(0, 0, 0); }
static void test_gradient_rope_post_tied(void **s) { (void)s; check_model_gradient(0, 1, 1); }
static void test_gradient_rope_post_untied(void **s) { (void)s; check_model_gradient(0, 1, 0); }
static void test_gradient_learned_pre_tied(void **s) { (void)s; check_model_gradient(1, 0, 1); }
static void test_gradient_learned_pre_untied(void **s) { (void)s; check_model_gradient(1, 0, 0); }
static void test_gradient_learned_post_tied(void **s) { (void)s; check_model_gradient(1, 1, 1); }
static void test_gradient_learned_post_untied(void **s) { (void)s; check_model_gradient(1, 1, 0); }

/* ------------------------------------------------------------------------ */
/* properties of the forward pass */

static void test_logit_rows_and_mask_column(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        tdi_model_config c = tiny_config(variant, variant, variant);
        problem p;
        problem_init(&p, &c, 2, 5, 0, 3);
        int32_t N = 10, V = 11;
        tdi_workspace *ws;
        assert_int_equal(tdi_workspace_create(p.m, 2, 5, N, 2, 0, &ws), TD_OK);
        assert_int_equal(tdi_model_forward(p.m, ws, p.ids, 2, 5, NULL, test_pool(1)), TD_OK);
        int32_t all[10];
        for (int i = 0; i < N; i++) all[i] = i;
        float *full = xmalloc((size_t)N * V * sizeof *full), sub[4 * 11];
        tdi_model_logits(p.m, ws, all, N, full, test_pool(1));
        static const int32_t some[4] = { 7, 2, 2, 9 };
        tdi_model_logits(p.m, ws, some, 4, sub, test_pool(2));
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < V; j++) {
                float a = sub[i * V + j], b = full[some[i] * V + j];
                if (j == c.mask_id) {
                    assert_true(isinf(a) && a < 0);
                    assert_true(isinf(b) && b < 0);
                } else {
                    assert_true(isfinite(a));
                    assert_true(fabsf(a - b) <= 1e-6f * (1 + fabsf(b)));
                }
            }
        /* Its probability is exactly 0 and so is its gradient. */
        int32_t targets[10];
        double row_loss[10];
        float *dfull = xmalloc((size_t)N * V * sizeof *dfull);
        for (int i = 0; i < N; i++) targets[i] = p.ids[i] % c.mask_id;
        double loss = tdi_crossentropy_forward_backward(dfull, row_loss, full, targets, NULL,
                                                        N, V, test_pool(1));
        assert_true(isfinite(loss));
        for (int i = 0; i < N; i++) assert_true(dfull[i * V + c.mask_id] == 0.0f);
        free(dfull);

        /* The inference workspace (one block reused) computes the same. */
        tdi_model_forward(p.m, p.ws, p.ids, 2, 5, NULL, test_pool(1));
        tdi_model_logits(p.m, p.ws, some, 4, p.logits, test_pool(2));
        assert_memory_equal(p.logits, sub, sizeof sub);
        free(full);
        tdi_workspace_free(ws);
        problem_free(&p);
    }
}

static void test_thread_count_does_not_change_bits(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        /* Wide enough that every parallel loop and column block splits. */
        tdi_model_config c = tdi_model_config_default();
        c.vocab_size = 70;
        c.mask_id = 3;
        c.max_seq_len = 16;
        c.d_model = 128;
        c.n_heads = 4;
        c.d_ff = 160;
        c.n_layers = 2;
        c.pos_encoding = variant;
        c.norm_placement = variant;
        c.tie_embeddings = 1 - variant;
        problem p;
        problem_init(&p, &c, 3, 16, 1, 11);
        double l1 = problem_grad(&p, 1);
        float *g1 = xmalloc(p.m->n_floats * sizeof *g1);
        memcpy(g1, p.grads, p.m->n_floats * sizeof *g1);
        size_t nl = (size_t)p.n_rows * c.vocab_size;
        float *lg1 = xmalloc(nl * sizeof *lg1);
        memcpy(lg1, p.logits, nl * sizeof *lg1);
        for (int nt = 2; nt <= PROBLEM_THREADS; nt++) {
            double l2 = problem_grad(&p, nt);
            assert_true(l1 == l2);
            assert_memory_equal(p.logits, lg1, nl * sizeof *lg1);
            assert_memory_equal(p.grads, g1, p.m->n_floats * sizeof *g1);
        }
        /* More threads than the workspace was made for: attention runs on
         * fewer, and nothing changes. */
        tdi_workspace_free(p.ws);
        assert_int_equal(tdi_workspace_create(p.m, p.B, p.T, p.B * p.T, 2, 1, &p.ws), TD_OK);
        assert_true(problem_grad(&p, 4) == l1);
        assert_memory_equal(p.logits, lg1, nl * sizeof *lg1);
        assert_memory_equal(p.grads, g1, p.m->n_floats * sizeof *g1);
        free(g1);
        free(lg1);
        problem_free(&p);
    }
}

/* Backward uses the key mask of its forward, which the workspace keeps: the
 * caller's copy may change in between, and a later forward without a mask
 * does not inherit it. */
static void test_backward_keeps_the_forward_key_mask(void **state)
{
    (void)state;
    tdi_model_config c = tiny_config(TDI_POS_ROPE, TDI_NORM_PRE, 1);
    problem p;
    problem_init(&p, &c, 2, 5, 1, 17);
    p.mask[1] = 0; /* the first sequence is padded too */
    double l_mask = problem_grad(&p, 2);
    size_t np = p.m->n_floats;
    float *g_mask = xmalloc(np * sizeof *g_mask);
    memcpy(g_mask, p.grads, np * sizeof *g_mask);

    uint8_t *mask = p.mask;
    p.mask = NULL;
    double l_none = problem_grad(&p, 2);
    float *g_none = xmalloc(np * sizeof *g_none);
    memcpy(g_none, p.grads, np * sizeof *g_none);
    assert_true(l_none != l_mask);

    /* Masked forward, then the caller's mask is cleared before backward. */
    assert_int_equal(tdi_model_forward(p.m, p.ws, p.ids, p.B, p.T, mask, test_pool(2)), TD_OK);
    memset(mask, 0, (size_t)p.B * p.T);
    tdi_model_logits(p.m, p.ws, p.rows, p.n_rows, p.logits, test_pool(2));
    tdi_crossentropy_forward_backward(p.dlogits, p.row_loss, p.logits, p.targets, p.weights,
                                      p.n_rows, c.vocab_size, test_pool(2));
    memset(p.grads, 0, np * sizeof *p.grads);
    tdi_model_backward(p.m, p.ws, p.rows, p.n_rows, p.dlogits, p.grads, test_pool(2));
    assert_memory_equal(p.grads, g_mask, np * sizeof *g_mask);

    /* And an unmasked forward after a masked one attends everywhere. */
    assert_true(problem_grad(&p, 2) == l_none);
    assert_memory_equal(p.grads, g_none, np * sizeof *g_none);
    assert_memory_not_equal(g_none, g_mask, np * sizeof *g_mask);
    p.mask = mask;
    free(g_mask);
    free(g_none);
    problem_free(&p);
}

/* Logits of every position of a forward over (ids, B, T, mask). */
static void all_logits(problem *p, const int32_t *ids, int32_t B, int32_t T,
                       const uint8_t *mask, float *out)
{
    int32_t rows[64];
    assert_true(B * T <= 64);
    for (int i = 0; i < B * T; i++) rows[i] = i;
    assert_int_equal(tdi_model_forward(p->m, p->ws, ids, B, T, mask, test_pool(1)), TD_OK);
    tdi_model_logits(p->m, p->ws, rows, B * T, out, test_pool(1));
}

static void assert_logits_close(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) {
            assert_true(a[i] == b[i]);
            continue;
        }
        if (!(fabsf(a[i] - b[i]) <= 1e-5f * (1 + fabsf(b[i]))))
            fail_msg("logit %zu: %.8g vs %.8g", i, (double)a[i], (double)b[i]);
    }
}

static void test_sequences_are_independent(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        tdi_model_config c = tiny_config(variant & 1, variant >> 1, 1);
        enum { B = 3, T = 6, V = 11 };
        problem p;
        problem_init(&p, &c, B, T, 0, 21);
        float *batched = xmalloc(B * T * V * sizeof(float)), single[T * V];
        all_logits(&p, p.ids, B, T, NULL, batched);
        /* Each sequence alone gives what it gave in the batch. */
        for (int b = 0; b < B; b++) {
            all_logits(&p, p.ids + b * T, 1, T, NULL, single);
            assert_logits_close(single, batched + b * T * V, T * V);
        }
        /* Changing one sequence changes nothing in the others, bit for bit. */
        float *changed = xmalloc(B * T * V * sizeof(float));
        int32_t ids2[B * T];
        memcpy(ids2, p.ids, sizeof ids2);
        for (int t = 0; t < T; t++) ids2[T + t] = (ids2[T + t] + 1 + t) % V;
        all_logits(&p, ids2, B, T, NULL, changed);
        assert_memory_equal(changed, batched, T * V * sizeof(float));
        assert_memory_equal(changed + 2 * T * V, batched + 2 * T * V, T * V * sizeof(float));
        assert_memory_not_equal(changed + T * V, batched + T * V, T * V * sizeof(float));
        /* ... and the model is bidirectional: changing the last token moves
         * the first position's logits. */
        memcpy(ids2, p.ids, sizeof ids2);
        ids2[T - 1] = (ids2[T - 1] + 1) % V;
        all_logits(&p, ids2, B, T, NULL, changed);
        assert_memory_not_equal(changed, batched, V * sizeof(float));

        /* Padding: a sequence of 4 padded to 6 with masked keys gives what the
         * 4 tokens give alone, whatever the padding holds. */
        uint8_t mask[B * T];
        memset(mask, 1, sizeof mask);
        mask[T - 2] = mask[T - 1] = 0;
        float short_logits[4 * V];
        all_logits(&p, p.ids, 1, 4, NULL, short_logits);
        for (int fill = 0; fill < 2; fill++) {
            memcpy(ids2, p.ids, sizeof ids2);
            ids2[T - 2] = ids2[T - 1] = fill ? 10 : 3;
            all_logits(&p, ids2, B, T, mask, changed);
            assert_logits_close(changed, short_logits, 4 * V);
        }
        free(batched);
        free(changed);
        problem_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_create_nomem_leaks_nothing),
        cmocka_unit_test(test_workspace_arguments),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_init_follows_the_definition),
        cmocka_unit_test(test_gradient_rope_pre_tied),
        cmocka_unit_test(test_gradient_rope_pre_untied),
        cmocka_unit_test(test_gradient_rope_post_tied),
        cmocka_unit_test(test_gradient_rope_post_untied),
        cmocka_unit_test(test_gradient_learned_pre_tied),
        cmocka_unit_test(test_gradient_learned_pre_untied),
        cmocka_unit_test(test_gradient_learned_post_tied),
        cmocka_unit_test(test_gradient_learned_post_untied),
        cmocka_unit_test(test_gradient_bert),
        cmocka_unit_test(test_gradient_roberta),
        cmocka_unit_test(test_gradient_head_pre_untied),
        cmocka_unit_test(test_gradient_causal_rope_pre_tied),
        cmocka_unit_test(test_gradient_causal_learned_post_untied),
        cmocka_unit_test(test_logit_rows_and_mask_column),
        cmocka_unit_test(test_thread_count_does_not_change_bits),
        cmocka_unit_test(test_backward_keeps_the_forward_key_mask),
        cmocka_unit_test(test_sequences_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
