/* Errors a host can read: the per-thread message, the per-handle message
 * (read from another thread), the sampler's callback rules, and
 * TD_ERR_NOMEM — never another status — for an allocation failure anywhere
 * in a whole workflow. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { V = 40, MASK = 39, T = 16, B = 2 };

typedef struct reader {
    const td_trainer *trainer;
    char msg[512];
    size_t len;
    char thread_msg[512];
} reader;

static void *read_elsewhere(void *arg)
{
    reader *r = arg;
    r->len = td_trainer_errmsg(r->trainer, r->msg, sizeof r->msg);
    strcpy(r->thread_msg, td_last_error_message());
    return NULL;
}

static void test_handle_message_is_readable_from_any_thread(void **state)
{
    (void)state;
    td_model *m = toy_model_create(V, MASK, T, 1, NULL);
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = B;
    c.seq_len = T;
    td_trainer *tr;
    assert_int_equal(td_trainer_create(m, s, &c, &tr), TD_OK);
    char buf[512];
    assert_int_equal(td_trainer_errmsg(tr, buf, sizeof buf), 0);
    assert_string_equal(buf, "");

    int32_t tokens[B * T];
    for (int i = 0; i < B * T; i++) tokens[i] = i % MASK;
    tokens[3] = MASK;
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_ERR_INVALID_ARG);
    char here[512];
    strcpy(here, td_last_error_message());
    assert_non_null(strstr(here, "position 3"));

    reader r = { .trainer = tr };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_elsewhere, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(r.msg, here);
    assert_int_equal(r.len, strlen(here));
    assert_string_equal(r.thread_msg, ""); /* that thread never failed */

    /* A success leaves it alone; truncation follows snprintf. */
    tokens[3] = 0;
    assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_OK);
    char small[8];
    assert_int_equal(td_trainer_errmsg(tr, small, sizeof small), strlen(here));
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, here, sizeof small - 1);
    assert_int_equal(td_trainer_errmsg(tr, NULL, 0), strlen(here));
    assert_int_equal(td_trainer_errmsg(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "");

    /* Constructors with a parent report on it; other handles are untouched. */
    c.batch_size = 0;
    td_trainer *bad;
    assert_int_equal(td_trainer_create(m, s, &c, &bad), TD_ERR_INVALID_ARG);
    assert_true(td_model_errmsg(m, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "batch_size"));
    assert_int_equal(td_schedule_errmsg(s, buf, sizeof buf), 0);
    assert_int_equal(td_trainer_errmsg(tr, buf, sizeof buf), strlen(here));

    td_trainer_free(tr);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_every_handle_has_a_message(void **state)
{
    (void)state;
    char buf[512];
    td_schedule *s = toy_schedule(TD_SCHEDULE_LINEAR);
    double a;
    assert_int_equal(td_schedule_alpha(s, 2.0, &a), TD_ERR_INVALID_ARG);
    td_schedule_errmsg(s, buf, sizeof buf);
    assert_non_null(strstr(buf, "td_schedule_alpha"));

    td_tokenizer *tok;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    int32_t id;
    assert_int_equal(td_tokenizer_special_id(tok, TD_TOKEN_UNK, &id), TD_ERR_INVALID_ARG);
    td_tokenizer_errmsg(tok, buf, sizeof buf);
    assert_non_null(strstr(buf, "td_tokenizer_special_id"));

    static const char text[] = "in the beginning";
    td_corpus *corpus;
    assert_int_equal(td_corpus_create(text, sizeof text - 1, tok, NULL, &corpus), TD_OK);
    int32_t window[4];
    assert_int_equal(td_corpus_window(corpus, TD_SPLIT_TRAIN, 4, 1000, window),
                     TD_ERR_INVALID_ARG);
    td_corpus_errmsg(corpus, buf, sizeof buf);
    assert_non_null(strstr(buf, "tile 1000"));

    td_model *m = toy_model_create(V, MASK, T, 1, NULL);
    assert_int_equal(td_model_save(m, "/nonexistent-dir/x.tdm"), TD_ERR_IO);
    td_model_errmsg(m, buf, sizeof buf);
    assert_non_null(strstr(buf, "nonexistent-dir"));

    td_sampler_config sc;
    td_sampler_config_default(&sc);
    td_sampler *smp;
    assert_int_equal(td_sampler_create(m, s, &sc, &smp), TD_OK);
    int32_t canvas[T];
    for (int i = 0; i < T; i++) canvas[i] = MASK;
    assert_int_equal(td_sampler_generate(smp, canvas, 2, T, NULL, NULL, NULL),
                     TD_ERR_INVALID_ARG);
    td_sampler_errmsg(smp, buf, sizeof buf);
    assert_non_null(strstr(buf, "max_batch"));

    td_sampler_free(smp);
    td_model_free(m);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    td_schedule_free(s);
}

/* ---- the sampler's callback --------------------------------------------- */

typedef struct cb_state {
    td_sampler *s;
    const td_tokenizer *tok;
    td_status generate, set_seed, decode;
    int calls;
} cb_state;

static int32_t reentrant(void *user, int32_t step, int32_t n_steps, const int32_t *canvas,
                         int32_t batch, int32_t seq_len, const int32_t *changed,
                         int32_t n_changed)
{
    (void)step; (void)n_steps; (void)changed; (void)n_changed;
    cb_state *st = user;
    int32_t other[T];
    for (int i = 0; i < T; i++) other[i] = MASK;
    st->generate = td_sampler_generate(st->s, other, 1, T, NULL, NULL, NULL);
    st->set_seed = td_sampler_set_seed(st->s, 7);
    /* Any other call is fine, including a failing one on another handle. */
    char text[64];
    size_t len;
    st->decode = td_tokenizer_decode(st->tok, canvas, (size_t)(batch * seq_len), NULL, text, 1,
                                     &len);
    return ++st->calls == 2; /* stop after the second step */
}

static void test_callback_may_not_reenter_its_sampler(void **state)
{
    (void)state;
    td_model *m = toy_model_create(V, MASK, T, 1, NULL);
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_tokenizer *tok;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    td_sampler_config sc;
    td_sampler_config_default(&sc);
    sc.steps = 8;
    cb_state st = { .tok = tok };
    assert_int_equal(td_sampler_create(m, s, &sc, &st.s), TD_OK);
    int32_t canvas[T];
    for (int i = 0; i < T; i++) canvas[i] = MASK;
    assert_int_equal(td_sampler_generate(st.s, canvas, 1, T, reentrant, &st, NULL),
                     TD_ERR_CANCELLED);
    assert_int_equal(st.generate, TD_ERR_STATE);
    assert_int_equal(st.set_seed, TD_ERR_STATE);
    assert_int_equal(st.decode, TD_ERR_INVALID_ARG);
    /* The sampler's message is its own failure, not the tokenizer's. */
    char buf[512];
    td_sampler_errmsg(st.s, buf, sizeof buf);
    assert_non_null(strstr(buf, "cancelled"));
    td_tokenizer_errmsg(tok, buf, sizeof buf);
    assert_non_null(strstr(buf, "td_tokenizer_decode"));
    /* After generation, both calls work again. */
    assert_int_equal(td_sampler_set_seed(st.s, 7), TD_OK);
    for (int i = 0; i < T; i++) canvas[i] = MASK;
    assert_int_equal(td_sampler_generate(st.s, canvas, 1, T, NULL, NULL, NULL), TD_OK);
    td_sampler_free(st.s);
    td_tokenizer_free(tok);
    td_schedule_free(s);
    td_model_free(m);
}

/* ---- allocation failures over a whole workflow -------------------------- */

static int32_t keep_streaming(void *user, int32_t b, const int32_t *prefix, int32_t prefix_len,
                              int32_t n_new)
{
    (void)user;
    (void)b;
    (void)prefix;
    (void)prefix_len;
    (void)n_new;
    return 0;
}

/* A whole workflow under test_heap_fail_each: run(a) with the k-th
 * allocation failing for k = 0, 1, ... until it succeeds; each failing run
 * returns TD_ERR_NOMEM and leaks nothing, and the workflow allocates more
 * than 10 times. */
typedef struct workflow_run {
    td_status (*run)(const td_allocator *a);
    td_allocator alloc;
} workflow_run;

static td_status run_workflow(void *ctx)
{
    workflow_run *w = ctx;
    return w->run(&w->alloc);
}

static void fail_each_allocation(const char *what, td_status (*run)(const td_allocator *a))
{
    test_heap h;
    workflow_run w = { run, test_heap_allocator(&h) };
    assert_true(test_heap_fail_each(&h, what, run_workflow, NULL, &w) > 10);
    assert_int_equal(h.live, 0);
}

/* Everything a host does, every allocation through `a`. */
static td_status workflow(const td_allocator *a)
{
    td_schedule_config schc;
    td_schedule_config_default(&schc, TD_SCHEDULE_LOGLINEAR);
    td_schedule *sch = NULL;
    td_tokenizer *tok = NULL, *tok2 = NULL;
    td_corpus *corpus = NULL;
    td_model *m = NULL;
    td_trainer *tr = NULL;
    td_sampler *smp = NULL;
    static const char text[] = "and god said, let there be light: and there was light. "
                               "and god saw the light, that it was good.";
    td_status st = td_schedule_create(&schc, a, &sch);
    /* A Hugging Face tokenizer: loaded, encoding and decoding. (Not a corpus:
     * giving a corpus's slack back is a realloc whose failure is no error,
     * test_hf_tokenizer covers it.) */
    td_tokenizer *hf = NULL;
    int32_t hf_ids[sizeof text];
    size_t hf_n = 0, hf_len = 0;
    char hf_text[sizeof text + 16];
    if (st == TD_OK) st = td_tokenizer_load_hf(TD_SOURCE_DIR "/tests/golden/hf-tok/wordpiece", a,
                                               &hf);
    if (st == TD_OK) st = td_tokenizer_encode(hf, text, sizeof text - 1, hf_ids, sizeof text,
                                              &hf_n);
    if (st == TD_OK)
        st = td_tokenizer_decode(hf, hf_ids, hf_n, NULL, hf_text, sizeof hf_text, &hf_len);
    td_tokenizer_free(hf);
    if (st == TD_OK) st = td_tokenizer_create_char(text, sizeof text - 1, 0, a, &tok);
    if (st == TD_OK) st = td_corpus_create(text, sizeof text - 1, tok, a, &corpus);
    int32_t vocab = 0, mask = 0;
    if (st == TD_OK) {
        td_tokenizer_vocab_size(tok, &vocab);
        td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask);
        td_model_config mc;
        td_model_config_default(&mc);
        mc.vocab_size = vocab;
        mc.mask_id = mask;
        mc.max_seq_len = T;
        mc.d_model = 16;
        mc.n_layers = 1;
        mc.n_heads = 2;
        mc.d_ff = 32;
        st = td_model_create(&mc, 1, a, &m);
    }
    if (st == TD_OK) st = td_model_set_tokenizer(m, tok);
    if (st == TD_OK) st = td_model_get_tokenizer(m, a, &tok2);
    if (st == TD_OK) {
        td_trainer_config tc;
        td_trainer_config_default(&tc);
        tc.batch_size = B;
        tc.seq_len = T;
        tc.n_threads = 2;
        st = td_trainer_create(m, sch, &tc, &tr);
    }
    int32_t tokens[B * T];
    for (int k = 0; k < 2 && st == TD_OK; k++) {
        st = td_corpus_batch(corpus, TD_SPLIT_TRAIN, 1, (uint64_t)k, B, T, tokens);
        if (st == TD_OK) st = td_trainer_step(tr, tokens, NULL);
    }
    if (st == TD_OK) {
        td_sampler_config sc;
        td_sampler_config_default(&sc);
        sc.steps = 4;
        sc.n_threads = 2;
        sc.max_batch = 2;
        st = td_sampler_create(m, sch, &sc, &smp);
    }
    if (st == TD_OK) {
        int32_t canvas[2 * T];
        for (int i = 0; i < 2 * T; i++) canvas[i] = mask;
        st = td_sampler_generate(smp, canvas, 2, T, NULL, NULL, NULL);
    }
    if (st == TD_OK) { /* the sampler toolbox: a second workspace for guidance */
        td_sampler_free(smp);
        smp = NULL;
        td_sampler_config sc;
        td_sampler_config_default(&sc);
        sc.strategy = TD_SAMPLER_MAX_PROB;
        sc.steps = T;
        sc.n_threads = 2;
        sc.max_batch = 2;
        sc.threshold = 0.5f;
        sc.remask = TD_SAMPLER_REMASK_LOOP;
        sc.eta = 0.5f;
        sc.guidance = 1.5f;
        st = td_sampler_create(m, sch, &sc, &smp);
        const int32_t ban[1] = { 0 };
        if (st == TD_OK) st = td_sampler_set_tokens(smp, TD_SAMPLER_TOKENS_BAN, ban, 1);
        if (st == TD_OK) st = td_sampler_set_stream(smp, keep_streaming, NULL);
        int32_t canvas[2 * T];
        for (int i = 0; i < 2 * T; i++) canvas[i] = i < 3 ? 1 + i : mask;
        if (st == TD_OK) st = td_sampler_generate(smp, canvas, 2, T, NULL, NULL, NULL);
    }
    if (st == TD_OK) { /* approximate caching and an end of text */
        td_sampler_free(smp);
        smp = NULL;
        td_sampler_config sc;
        td_sampler_config_default(&sc);
        sc.strategy = TD_SAMPLER_MAX_PROB;
        sc.steps = 4;
        sc.n_threads = 2;
        sc.max_batch = 2;
        sc.block_len = 4;
        sc.approx_cache = TD_SAMPLER_APPROX_DUAL;
        td_tokenizer_special_id(tok, TD_TOKEN_PAD, &sc.pad_id);
        sc.eos_id = 0;
        st = td_sampler_create(m, sch, &sc, &smp);
        int32_t canvas[2 * T];
        for (int i = 0; i < 2 * T; i++) canvas[i] = mask;
        if (st == TD_OK) st = td_sampler_generate(smp, canvas, 2, T, NULL, NULL, NULL);
    }
    if (st == TD_OK) { /* documents packed with [EOS] */
        td_tokenizer *be = NULL;
        td_corpus *docs = NULL;
        st = td_tokenizer_create_byte_eos(a, &be);
        if (st == TD_OK) st = td_corpus_create_docs(text, sizeof text - 1, ", ", be, a, &docs);
        td_corpus_free(docs);
        td_tokenizer_free(be);
    }
    if (st == TD_OK) {
        td_eval_config ec;
        td_eval_config_default(&ec);
        ec.seq_len = T;
        ec.n_threads = 2;
        ec.n_times = 3;
        td_eval_result r = { .struct_size = sizeof r };
        st = td_eval_nelbo(m, tokens, B * T, &ec, &r);
        double rate = 0.5, loss;
        if (st == TD_OK) st = td_eval_rates(m, tokens, B * T, &rate, 1, &ec, &loss, NULL);
    }
    if (st == TD_OK) {
        float *logits = malloc(sizeof(float) * T * (size_t)vocab);
        st = td_model_logits(m, tokens, 1, T, 2, logits);
        free(logits);
    }
    td_sampler_free(smp);
    td_trainer_free(tr);
    td_model_free(m);
    td_corpus_free(corpus);
    td_tokenizer_free(tok2);
    td_tokenizer_free(tok);
    td_schedule_free(sch);
    return st;
}

static void test_every_allocation_failure_is_nomem(void **state)
{
    (void)state;
    fail_each_allocation("workflow", workflow);
}

/* The Hugging Face workflow: load (F32 and BF16 files), export, reload,
 * one fine-tuning step, sampling; a directory's model and tokenizer
 * together. */
static char hf_tmp[256];

static td_status hf_workflow(const td_allocator *a)
{
    td_model *m = NULL, *m2 = NULL, *m3 = NULL;
    td_schedule *sch = NULL;
    td_trainer *tr = NULL;
    td_sampler *smp = NULL;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/export", hf_tmp);
    td_status st = td_model_load_hf(TD_SOURCE_DIR "/tests/golden/hf/bert", 3, 0, a, &m);
    if (st == TD_OK) st = td_model_load_hf(TD_SOURCE_DIR "/tests/golden/hf/bert_bf16", 3, 0, a, &m2);
    if (st == TD_OK) st = td_model_save_hf(m, dir, 0);
    if (st == TD_OK) st = td_model_load_hf(dir, 3, 0, a, &m3);
    if (st == TD_OK) {
        td_schedule_config schc;
        td_schedule_config_default(&schc, TD_SCHEDULE_LINEAR);
        st = td_schedule_create(&schc, a, &sch);
    }
    if (st == TD_OK) {
        td_trainer_config tc;
        td_trainer_config_default(&tc);
        tc.batch_size = 2;
        tc.seq_len = 8;
        tc.n_threads = 2;
        st = td_trainer_create(m3, sch, &tc, &tr);
    }
    if (st == TD_OK) {
        int32_t tokens[16];
        for (int i = 0; i < 16; i++) tokens[i] = 5 + 7 * i % 90;
        st = td_trainer_step(tr, tokens, NULL);
    }
    if (st == TD_OK) {
        td_sampler_config sc;
        td_sampler_config_default(&sc);
        sc.steps = 4;
        sc.n_threads = 2;
        sc.max_batch = 2;
        st = td_sampler_create(m2, sch, &sc, &smp);
    }
    if (st == TD_OK) {
        int32_t canvas[2 * 8];
        for (int i = 0; i < 16; i++) canvas[i] = 3; /* [MASK] */
        st = td_sampler_generate(smp, canvas, 2, 8, NULL, NULL, NULL);
        for (int i = 0; st == TD_OK && i < 16; i++)
            if (canvas[i] == 3 || canvas[i] < 0 || canvas[i] >= 99) st = TD_ERR_INTERNAL;
    }
    /* a directory with its tokenizer, as sample --hf loads it: the
     * tokenizer, the model with its [MASK], the tokenizer attached */
    td_tokenizer *tok = NULL, *tok2 = NULL;
    td_model *m4 = NULL;
    int32_t mask = -1;
    if (st == TD_OK) st = td_tokenizer_load_hf(TD_SOURCE_DIR "/tests/golden/hf-lm/roberta", a, &tok);
    if (st == TD_OK) st = td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask);
    if (st == TD_OK) st = td_model_load_hf(TD_SOURCE_DIR "/tests/golden/hf-lm/roberta", mask, 0, a,
                                           &m4);
    if (st == TD_OK) st = td_model_set_tokenizer(m4, tok);
    if (st == TD_OK) st = td_model_get_tokenizer(m4, a, &tok2);
    td_tokenizer_free(tok2);
    td_model_free(m4);
    td_tokenizer_free(tok);
    td_sampler_free(smp);
    td_trainer_free(tr);
    td_schedule_free(sch);
    td_model_free(m3);
    td_model_free(m2);
    td_model_free(m);
    return st;
}

static void test_every_allocation_failure_is_nomem_hf(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(hf_tmp, sizeof hf_tmp, "%s/td-hf-err-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(hf_tmp));
    fail_each_allocation("Hugging Face workflow", hf_workflow);
    char path[400];
    snprintf(path, sizeof path, "%s/export/config.json", hf_tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/export/model.safetensors", hf_tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/export", hf_tmp);
    rmdir(path);
    rmdir(hf_tmp);
}

/* The reduced-precision workflow: convert (q8_0 and bf16), save, load
 * (mapped), sample and evaluate. (Loading from memory ends with an optional
 * shrinking realloc whose failure is no error: it is covered apart.) */
static char quant_path[256];

static td_status quant_workflow(const td_allocator *a)
{
    td_model *m = NULL, *q = NULL, *b = NULL, *r = NULL;
    td_schedule *sch = NULL;
    td_sampler *smp = NULL;
    td_model_config mc;
    td_model_config_default(&mc);
    mc.vocab_size = 40;
    mc.mask_id = 39;
    mc.max_seq_len = 8;
    mc.d_model = 32;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.d_ff = 64;
    td_status st = td_model_create(&mc, 1, a, &m);
    if (st == TD_OK) st = td_model_convert(m, TD_DTYPE_Q8_0, a, &q);
    if (st == TD_OK) st = td_model_convert(m, TD_DTYPE_BF16, a, &b);
    if (st == TD_OK) st = td_model_save(q, quant_path);
    if (st == TD_OK) st = td_model_load(quant_path, a, &r);
    if (st == TD_OK) {
        td_schedule_config schc;
        td_schedule_config_default(&schc, TD_SCHEDULE_LOGLINEAR);
        st = td_schedule_create(&schc, a, &sch);
    }
    if (st == TD_OK) {
        td_sampler_config sc;
        td_sampler_config_default(&sc);
        sc.steps = 4;
        sc.n_threads = 2;
        sc.max_batch = 2;
        st = td_sampler_create(r, sch, &sc, &smp);
    }
    if (st == TD_OK) {
        int32_t canvas[2 * 8];
        for (int i = 0; i < 16; i++) canvas[i] = 39;
        st = td_sampler_generate(smp, canvas, 2, 8, NULL, NULL, NULL);
    }
    if (st == TD_OK) {
        int32_t tokens[16];
        for (int i = 0; i < 16; i++) tokens[i] = (5 + 7 * i) % 39;
        td_eval_config ec;
        td_eval_config_default(&ec);
        ec.seq_len = 8;
        ec.n_threads = 2;
        ec.n_times = 2;
        td_eval_result res = { .struct_size = sizeof res };
        st = td_eval_nelbo(r, tokens, 16, &ec, &res);
        if (st == TD_OK) st = td_eval_nelbo(b, tokens, 16, &ec, &res);
    }
    td_sampler_free(smp);
    td_schedule_free(sch);
    td_model_free(r);
    td_model_free(b);
    td_model_free(q);
    td_model_free(m);
    return st;
}

typedef struct quant_buf {
    td_allocator alloc;
    unsigned char *data;
    size_t size;
} quant_buf;

static td_status load_quant_buf(void *ctx)
{
    quant_buf *b = ctx;
    td_model *m = NULL;
    td_status st = td_model_load_memory(b->data, b->size, &b->alloc, &m);
    int32_t dt = -1;
    if (st == TD_OK && (td_model_get_dtype(m, &dt) != TD_OK || dt != TD_DTYPE_Q8_0))
        st = TD_ERR_INTERNAL;
    td_model_free(m);
    return st;
}

static void test_every_allocation_failure_is_nomem_quant(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(quant_path, sizeof quant_path, "%s/td-quant-err-%ld.tdm",
             base && *base ? base : "/tmp", (long)getpid());
    fail_each_allocation("reduced-precision workflow", quant_workflow);
    /* the q8_0 file from memory: every allocation up to the first success */
    FILE *f = fopen(quant_path, "rb");
    assert_non_null(f);
    quant_buf qb = { { 0 }, NULL, 0 };
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    qb.size = (size_t)ftell(f);
    qb.data = malloc(qb.size);
    assert_non_null(qb.data);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    assert_int_equal(fread(qb.data, 1, qb.size, f), qb.size);
    fclose(f);
    test_heap h;
    qb.alloc = test_heap_allocator(&h);
    assert_true(test_heap_fail_each(&h, "td_model_load_memory (q8_0)", load_quant_buf, NULL,
                                    &qb) > 3);
    free(qb.data);
    unlink(quant_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_message_is_readable_from_any_thread),
        cmocka_unit_test(test_every_handle_has_a_message),
        cmocka_unit_test(test_callback_may_not_reenter_its_sampler),
        cmocka_unit_test(test_every_allocation_failure_is_nomem),
        cmocka_unit_test(test_every_allocation_failure_is_nomem_hf),
        cmocka_unit_test(test_every_allocation_failure_is_nomem_quant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
