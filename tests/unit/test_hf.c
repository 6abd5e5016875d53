/* Hugging Face models in and out (docs/hf.md), beyond the golden numbers of
 * test_golden_hf.c: the library's own checkpoints of a loaded model, export
 * and reload, [MASK] from tokenizer.json, and bad input of every kind — the
 * safetensors header, config.json, tensors that disagree — each refused
 * with its status and a message naming the problem. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/safetensors.h"
#include "model/model.h"
#include "model/model_api.h"
#include "util/endian.h"

#define HF_DIR TD_SOURCE_DIR "/tests/golden/hf"
#define MASK_ID 3

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/td-hf-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_all(path, text, strlen(text)); }

static td_model *load(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", HF_DIR, name);
    td_model *m = NULL;
    if (td_model_load_hf(dir, MASK_ID, 0, NULL, &m) != TD_OK)
        fail_msg("%s: %s", dir, td_last_error_message());
    return m;
}

static void assert_same_model(const td_model *a, const td_model *b)
{
    const tdi_model *x = a->m, *y = b->m;
    assert_memory_equal(&x->cfg, &y->cfg, sizeof x->cfg);
    assert_int_equal(x->n_floats, y->n_floats);
    assert_memory_equal(x->params, y->params, x->n_floats * sizeof(float));
}

/* A loaded model through the library's own checkpoint, and through export
 * and reload, bit for bit. */
static void test_round_trips(void **state)
{
    (void)state;
    const char *names[] = { "bert", "bert_bf16", "roberta", "distilbert" };
    char path[512];
    for (size_t i = 0; i < 4; i++) {
        td_model *m = load(names[i]), *back = NULL;
        snprintf(path, sizeof path, "%s/%s.tdm", tmpdir, names[i]);
        assert_int_equal(td_model_save(m, path), TD_OK);
        assert_int_equal(td_model_load(path, NULL, &back), TD_OK);
        assert_same_model(m, back);
        td_model_free(back);

        snprintf(path, sizeof path, "%s/export-%s", tmpdir, names[i]);
        assert_int_equal(td_model_save_hf(m, path, 0), TD_OK);
        assert_int_equal(td_model_load_hf(path, MASK_ID, 0, NULL, &back), TD_OK);
        assert_same_model(m, back);
        td_model_free(back);
        /* once more over the existing files */
        assert_int_equal(td_model_save_hf(m, path, 0), TD_OK);
        td_model_free(m);
    }
}

static void test_mask_id_from_tokenizer_json(void **state)
{
    (void)state;
    td_model *m = load("bert");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/tok", tmpdir);
    assert_int_equal(td_model_save_hf(m, dir, 0), TD_OK);
    td_model *back = NULL;
    assert_int_equal(td_model_load_hf(dir, -1, 0, NULL, &back), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "tokenizer.json"));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_text(path, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": "
                     "\"[PAD]\"}, {\"id\": 7, \"content\": \"[MASK]\"}], \"model\": {}}");
    assert_int_equal(td_model_load_hf(dir, -1, 0, NULL, &back), TD_OK);
    td_model_config c;
    c.struct_size = sizeof c;
    assert_int_equal(td_model_get_config(back, &c), TD_OK);
    assert_int_equal(c.mask_id, 7);
    td_model_free(back);
    write_text(path, "{\"added_tokens\": [{\"id\": 7, \"content\": \"[CLS]\"}]}");
    assert_int_equal(td_model_load_hf(dir, -1, 0, NULL, &back), TD_ERR_INVALID_ARG);
    assert_null(back);
    td_model_free(m);
}

static void test_arguments_and_export_refusals(void **state)
{
    (void)state;
    td_model *m = NULL;
    assert_int_equal(td_model_load_hf(NULL, 0, 0, NULL, &m), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_load_hf(HF_DIR "/bert", -2, 0, NULL, &m), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_load_hf(HF_DIR "/bert", 3, 1, NULL, &m), TD_ERR_INVALID_ARG);
    assert_int_equal(td_model_load_hf(HF_DIR "/no-such-dir", 3, 0, NULL, &m), TD_ERR_IO);
    assert_null(m);
    /* mask_id outside the vocabulary */
    assert_int_equal(td_model_load_hf(HF_DIR "/bert", 99, 0, NULL, &m), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "mask_id"));

    td_model_config c;
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.d_model = 16;
    c.d_ff = 32;
    c.n_layers = 1;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/refused", tmpdir);
    assert_int_equal(td_model_save_hf(m, dir, 0), TD_ERR_UNSUPPORTED); /* RoPE, pre-LN */
    td_model_free(m);
    c.pos_encoding = TD_POS_LEARNED;
    c.norm_placement = TD_NORM_POST;
    c.head_transform = 1;
    c.type_vocab_size = 0; /* a DistilBERT needs eps 1e-12 */
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
    assert_int_equal(td_model_save_hf(m, dir, 0), TD_ERR_UNSUPPORTED);
    assert_int_equal(td_model_save_hf(m, dir, 2), TD_ERR_INVALID_ARG);
    td_model_free(m);
    c.layer_norm_eps = 1e-12f;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
    assert_int_equal(td_model_save_hf(m, dir, 0), TD_OK);
    td_model_free(m);
}

/* The new configuration fields, each refused outside its range. */
static void test_config_fields(void **state)
{
    (void)state;
    td_model_config c;
    td_model *m = NULL;
    struct {
        int field;
        float eps;
        int32_t v;
    } bad[] = { { 0, 0, 2 }, { 1, 0.0f, 0 }, { 1, 2.0f, 0 }, { 1, NAN, 0 }, { 2, 0, -1 },
                { 2, 0, 1025 }, { 3, 0, 1 }, { 4, 0, 2 }, { 5, 0, 1 } };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(td_model_config_default(&c), TD_OK);
        switch (bad[i].field) {
        case 0: c.activation = bad[i].v; break;
        case 1: c.layer_norm_eps = bad[i].eps; break;
        case 2: c.type_vocab_size = bad[i].v; break;
        case 3: c.pos_offset = bad[i].v; break; /* with RoPE */
        case 4: c.head_transform = bad[i].v; break;
        default: c.reserved2 = bad[i].v; break;
        }
        assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_ERR_INVALID_ARG);
        assert_null(m);
    }
    /* head_transform is for bidirectional models */
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.head_transform = 1;
    c.causal = 1;
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_ERR_INVALID_ARG);
    /* a 56-byte (1.0 + causal) struct still works, with the defaults */
    assert_int_equal(td_model_config_default(&c), TD_OK);
    c.struct_size = 56;
    c.activation = 7; /* beyond the caller's struct: never read */
    assert_int_equal(td_model_create(&c, 1, NULL, &m), TD_OK);
    td_model_config got;
    got.struct_size = sizeof got;
    assert_int_equal(td_model_get_config(m, &got), TD_OK);
    assert_int_equal(got.activation, TD_ACT_GELU_TANH);
    assert_true(got.layer_norm_eps == 1e-5f);
    td_model_free(m);
}

/* Fine-tuning: a loaded RoBERTa (F16 file) trained on one batch fits it. */
static void test_fine_tuning(void **state)
{
    (void)state;
    td_model *m = load("roberta");
    td_schedule_config schc;
    td_schedule_config_default(&schc, TD_SCHEDULE_LINEAR);
    td_schedule *sch = NULL;
    assert_int_equal(td_schedule_create(&schc, NULL, &sch), TD_OK);
    enum { B = 2, T = 12 };
    int32_t tokens[B * T];
    for (int i = 0; i < B * T; i++) tokens[i] = 5 + (i * 37) % 90;
    td_eval_config ec;
    td_eval_config_default(&ec);
    ec.seq_len = T;
    ec.n_times = 8;
    td_eval_result before = { .struct_size = sizeof before }, after = before;
    assert_int_equal(td_eval_nelbo(m, tokens, B * T, &ec, &before), TD_OK);
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = B;
    tc.seq_len = T;
    tc.warmup_steps = 1;
    tc.lr = 3e-3f;
    td_trainer *tr = NULL;
    assert_int_equal(td_trainer_create(m, sch, &tc, &tr), TD_OK);
    for (int k = 0; k < 60; k++) assert_int_equal(td_trainer_step(tr, tokens, NULL), TD_OK);
    assert_int_equal(td_eval_nelbo(m, tokens, B * T, &ec, &after), TD_OK);
    print_message("fine-tuning: NELBO %.3f -> %.3f nats per token\n", before.nelbo_nats,
                  after.nelbo_nats);
    assert_true(after.nelbo_nats < 0.5 * before.nelbo_nats);
    td_trainer_free(tr);
    td_schedule_free(sch);
    td_model_free(m);
}

/* ---- safetensors headers ---------------------------------------------------- */

/* A file from a header text and `data` bytes of zeros. */
static unsigned char *st_file(const char *header, size_t data, size_t *size)
{
    size_t h = strlen(header);
    *size = 8 + h + data;
    unsigned char *p = calloc(1, *size);
    tdi_le_put64(p, h);
    memcpy(p + 8, header, h);
    return p;
}

static void expect_st(const char *header, size_t data, td_status want, const char *needle)
{
    size_t size;
    unsigned char *p = st_file(header, data, &size);
    tdi_st *st = NULL;
    td_status got = tdi_st_parse(p, size, NULL, &st);
    if (got != want || (needle && !strstr(td_last_error_message(), needle)))
        fail_msg("header %s: status %d (%s), want %d with '%s'", header, (int)got,
                 td_last_error_message(), (int)want, needle ? needle : "");
    if (got == TD_OK) tdi_st_free(st);
    assert_true(got == TD_OK || st == NULL);
    free(p);
}

static void test_safetensors_headers(void **state)
{
    (void)state;
    /* good: two tensors, and the conversions */
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
              "\"__metadata__\":{\"format\":\"pt\"}}   ", 12, TD_OK, NULL);
    expect_st("{}", 0, TD_OK, NULL);
    /* header length past the end, short file */
    {
        unsigned char p[16] = { 0 };
        tdi_le_put64(p, 9);
        tdi_st *st = NULL;
        assert_int_equal(tdi_st_parse(p, 16, NULL, &st), TD_ERR_FORMAT);
        assert_non_null(strstr(td_last_error_message(), "past the end"));
        assert_int_equal(tdi_st_parse(p, 5, NULL, &st), TD_ERR_FORMAT);
        tdi_le_put64(p, UINT64_MAX);
        assert_int_equal(tdi_st_parse(p, 16, NULL, &st), TD_ERR_FORMAT);
    }
    expect_st("{\"a\":", 0, TD_ERR_FORMAT, "not valid JSON");
    expect_st("[1, 2]", 0, TD_ERR_FORMAT, "not a JSON object");
    expect_st("{} x", 0, TD_ERR_FORMAT, "after the header");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
              TD_ERR_FORMAT, "outside");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
              TD_ERR_FORMAT, "overlaps");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
              TD_ERR_FORMAT, "belong to no tensor");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
              TD_ERR_FORMAT, "belong to no tensor");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
              TD_ERR_FORMAT, "twice");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
              TD_ERR_FORMAT, "bytes for a shape");
    expect_st("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
              TD_ERR_UNSUPPORTED, "I64");
    expect_st("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
              TD_ERR_FORMAT, "unknown dtype");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
              TD_ERR_FORMAT, "dimension");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
              TD_ERR_FORMAT, "dimension");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
              "\"data_offsets\":[0,4]}}", 4, TD_ERR_FORMAT, "overflows");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
              TD_ERR_FORMAT, "outside");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, TD_ERR_FORMAT, "data_offsets");
    expect_st("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, TD_ERR_FORMAT, "dtype");
    expect_st("{\"a\":[1]}", 0, TD_ERR_FORMAT, "not an object");
    expect_st("{\"__metadata__\":3}", 0, TD_ERR_FORMAT, "__metadata__");
    expect_st("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
              TD_ERR_FORMAT, "name");
}

static void test_half_conversions(void **state)
{
    (void)state;
    /* F16: 1, -2, 65504, the smallest subnormal, +inf; BF16: 1, -0.5 */
    const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[10,14]}}";
    size_t size;
    unsigned char *p = st_file(h, 14, &size);
    unsigned char *d = p + 8 + strlen(h);
    const uint16_t v[7] = { 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3F80, 0xBF00 };
    for (int i = 0; i < 7; i++) tdi_le_put16(d + 2 * i, v[i]);
    tdi_st *st = NULL;
    assert_int_equal(tdi_st_parse(p, size, NULL, &st), TD_OK);
    float f[5];
    assert_int_equal(tdi_st_read_f32(tdi_st_find(st, "h"), f), 4); /* +inf at 4 */
    assert_true(f[0] == 1.0f && f[1] == -2.0f && f[2] == 65504.0f);
    assert_true(f[3] == ldexpf(1.0f, -24));
    assert_int_equal(tdi_st_read_f32(tdi_st_find(st, "b"), f), 2);
    assert_true(f[0] == 1.0f && f[1] == -0.5f);
    assert_null(tdi_st_f32_view(tdi_st_find(st, "b")));
    tdi_st_free(st);
    free(p);
}

/* ---- directories that disagree ------------------------------------------------ */

/* A copy of tests/golden/hf/bert in tmpdir/<name> with config.json's text
 * `from` replaced by `to` (NULL: unchanged). */
static void make_dir(const char *name, const char *from, const char *to, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", tmpdir, name);
    mkdir(dir, 0777);
    char path[600];
    size_t n;
    char *cfg = read_all(HF_DIR "/bert/config.json", &n);
    char *out = malloc(n + 256);
    if (from) {
        char *at = strstr(cfg, from);
        assert_non_null(at);
        snprintf(out, n + 256, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    } else {
        strcpy(out, cfg);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, out);
    free(out);
    free(cfg);
    char *st = read_all(HF_DIR "/bert/model.safetensors", &n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_all(path, st, n);
    free(st);
}

static void expect_load(const char *dir, td_status want, const char *needle)
{
    td_model *m = (td_model *)(uintptr_t)1;
    td_status got = td_model_load_hf(dir, MASK_ID, 0, NULL, &m);
    if (got != want || (needle && !strstr(td_last_error_message(), needle)))
        fail_msg("%s: status %d (%s), want %d with '%s'", dir, (int)got,
                 td_last_error_message(), (int)want, needle ? needle : "");
    if (got == TD_OK)
        td_model_free(m);
    else
        assert_null(m);
}

static void test_bad_config(void **state)
{
    (void)state;
    char dir[512];
    const struct {
        const char *from, *to;
        td_status want;
        const char *needle;
    } cases[] = {
        { "\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"", TD_ERR_UNSUPPORTED, "gpt2" },
        { "\"model_type\": \"bert\"", "\"model_typ\": \"bert\"", TD_ERR_FORMAT, "model_type" },
        { "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"", TD_ERR_UNSUPPORTED, "relu" },
        { "\"vocab_size\": 99", "\"vocab_size\": 1e12", TD_ERR_FORMAT, "vocab_size" },
        { "\"vocab_size\": 99", "\"vocab_size\": 99.5", TD_ERR_FORMAT, "vocab_size" },
        { "\"vocab_size\": 99", "\"vocab_size\": \"99\"", TD_ERR_FORMAT, "vocab_size" },
        { "\"hidden_size\": 24", "\"hidden_size\": -24", TD_ERR_FORMAT, "hidden_size" },
        { "\"num_attention_heads\": 3", "\"num_attention_heads\": 5", TD_ERR_FORMAT, "n_heads" },
        /* each field in range, the whole over 2^31 parameters */
        { "\"hidden_size\": 24", "\"hidden_size\": 16383", TD_ERR_FORMAT, "parameters" },
        { "\"max_position_embeddings\": 20", "\"max_position_embeddings\": 1e300",
          TD_ERR_FORMAT, "max_position_embeddings" },
        { "\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": 0", TD_ERR_FORMAT, "layer_norm_eps" },
        { "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": 1", TD_ERR_FORMAT, "tie" },
        { "\"is_decoder\": false", "\"is_decoder\": true", TD_ERR_UNSUPPORTED, "is_decoder" },
        { "{", "[", TD_ERR_FORMAT, "JSON" },
        { "\"vocab_size\": 99\n}", "\"vocab_size\": 99\n", TD_ERR_FORMAT, "JSON" },
        /* shapes that disagree with the file */
        { "\"hidden_size\": 24", "\"hidden_size\": 48", TD_ERR_FORMAT, "shape" },
        { "\"vocab_size\": 99", "\"vocab_size\": 98", TD_ERR_FORMAT, "shape" },
        { "\"type_vocab_size\": 2", "\"type_vocab_size\": 3", TD_ERR_FORMAT, "shape" },
        { "\"intermediate_size\": 40", "\"intermediate_size\": 41", TD_ERR_FORMAT, "shape" },
        /* untied: the decoder's weight is then required */
        { "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", TD_ERR_FORMAT,
          "decoder.weight" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "cfg%zu", i);
        make_dir(name, cases[i].from, cases[i].to, dir, sizeof dir);
        expect_load(dir, cases[i].want, cases[i].needle);
    }
    /* no config.json */
    make_dir("nocfg", NULL, NULL, dir, sizeof dir);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    expect_load(dir, TD_ERR_IO, "config.json");
}

/* The golden BERT's tensors rewritten by `edit` into a new directory. */
typedef void (*edit_fn)(tdi_st_out *t, size_t *n, float *scratch);

static void tensor_case(const char *name, edit_fn edit, td_status want, const char *needle)
{
    char dir[512], path[600];
    make_dir(name, NULL, NULL, dir, sizeof dir);
    size_t size;
    char *file = read_all(HF_DIR "/bert/model.safetensors", &size);
    tdi_st *st;
    assert_int_equal(tdi_st_parse(file, size, NULL, &st), TD_OK);
    tdi_st_out *t = calloc(st->n + 1, sizeof *t);
    float *scratch = calloc(4096, sizeof *scratch);
    size_t n = st->n;
    for (uint32_t i = 0; i < st->n; i++) {
        t[i].name = st->tensors[i].name;
        t[i].ndim = st->tensors[i].ndim;
        t[i].dims[0] = st->tensors[i].dims[0];
        t[i].dims[1] = st->tensors[i].ndim > 1 ? st->tensors[i].dims[1] : 0;
        t[i].data = tdi_st_f32_view(&st->tensors[i]);
        assert_non_null(t[i].data);
    }
    edit(t, &n, scratch);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(tdi_st_write(path, t, n, NULL), TD_OK);
    expect_load(dir, want, needle);
    tdi_st_free(st);
    free(scratch);
    free(t);
    free(file);
}

static size_t find_out(tdi_st_out *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    fail_msg("no %s", name);
    return 0;
}

static void drop_key(tdi_st_out *t, size_t *n, float *s)
{
    (void)s;
    size_t i = find_out(t, *n, "bert.encoder.layer.1.attention.self.key.weight");
    t[i] = t[--*n];
}

static void add_extra(tdi_st_out *t, size_t *n, float *s)
{
    t[*n] = (tdi_st_out){ "bert.encoder.layer.2.output.dense.bias", 1, { 4, 0 }, s };
    (*n)++;
}

static void add_pooler(tdi_st_out *t, size_t *n, float *s)
{
    t[*n] = (tdi_st_out){ "bert.pooler.dense.bias", 1, { 24, 0 }, s };
    (*n)++;
}

static void wrong_shape(tdi_st_out *t, size_t *n, float *s)
{
    (void)s;
    size_t i = find_out(t, *n, "bert.encoder.layer.0.intermediate.dense.bias");
    t[i].ndim = 2;
    t[i].dims[0] = 8;
    t[i].dims[1] = 5;
}

static void not_finite(tdi_st_out *t, size_t *n, float *s)
{
    size_t i = find_out(t, *n, "cls.predictions.bias");
    memcpy(s, t[i].data, 99 * sizeof *s);
    s[42] = NAN;
    t[i].data = s;
}

/* Older BERT checkpoints name LayerNorm's parameters gamma and beta, and
 * keep the output bias as the decoder's. */
static void old_names(tdi_st_out *t, size_t *n, float *s)
{
    (void)s;
    t[find_out(t, *n, "bert.embeddings.LayerNorm.weight")].name = "bert.embeddings.LayerNorm.gamma";
    t[find_out(t, *n, "bert.encoder.layer.1.output.LayerNorm.bias")].name =
        "bert.encoder.layer.1.output.LayerNorm.beta";
    t[find_out(t, *n, "cls.predictions.bias")].name = "cls.predictions.decoder.bias";
}

static void both_names(tdi_st_out *t, size_t *n, float *s)
{
    size_t i = find_out(t, *n, "bert.embeddings.LayerNorm.weight");
    t[*n] = t[i];
    t[*n].name = "bert.embeddings.LayerNorm.gamma";
    t[*n].data = s;
    (*n)++;
}

static void test_bad_tensors(void **state)
{
    (void)state;
    tensor_case("ok", add_pooler, TD_OK, NULL); /* a pre-training checkpoint's extra */
    tensor_case("old", old_names, TD_OK, NULL);
    tensor_case("both", both_names, TD_ERR_FORMAT, "LayerNorm.gamma");
    tensor_case("missing", drop_key, TD_ERR_FORMAT,
                "no tensor 'bert.encoder.layer.1.attention.self.key.weight'");
    tensor_case("extra", add_extra, TD_ERR_FORMAT, "layer.2.output.dense.bias");
    tensor_case("shape", wrong_shape, TD_ERR_FORMAT, "[8, 5]");
    tensor_case("nan", not_finite, TD_ERR_CORRUPT, "non-finite value at 42");
    /* a truncated file */
    char dir[512], path[600];
    make_dir("truncated", NULL, NULL, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(truncate(path, 5000), 0);
    expect_load(dir, TD_ERR_FORMAT, "outside");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_mask_id_from_tokenizer_json),
        cmocka_unit_test(test_arguments_and_export_refusals),
        cmocka_unit_test(test_fine_tuning),
        cmocka_unit_test(test_config_fields),
        cmocka_unit_test(test_safetensors_headers),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_tensors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
