/* Every public struct: its pinned layout (no padding anywhere), and the
 * struct_size protocol against an older caller (a smaller struct) and a
 * newer one (a larger struct): the library never reads or writes a byte
 * outside the caller's struct, and never writes past its own size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/layouts.h"
#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { V = 40, MASK = 39, T = 16, GUARD = 64 };

typedef struct field {
    const char *name;
    size_t offset, size, pinned;
} field;

static void check_layout(const char *type, size_t size, const field *fs, size_t n)
{
    size_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (fs[i].offset != fs[i].pinned)
            fail_msg("%s.%s is at %zu, pinned at %zu", type, fs[i].name, fs[i].offset,
                     fs[i].pinned);
        if (fs[i].offset != end)
            fail_msg("%s: padding before %s (%zu, expected %zu)", type, fs[i].name,
                     fs[i].offset, end);
        end = fs[i].offset + fs[i].size;
    }
    if (end != size) fail_msg("%s: %zu bytes of tail padding", type, size - end);
    if (size % 8 != 0) fail_msg("%s: size %zu is not a multiple of 8", type, size);
}

#define FIELD(T_, f, off) { #f, offsetof(T_, f), sizeof(((T_ *)0)->f), (off) },
#define CHECK_STRUCT(T_, LIST)                                                \
    do {                                                                      \
        static const field fs[] = { LIST(FIELD) };                            \
        check_layout(#T_, sizeof(T_), fs, sizeof fs / sizeof fs[0]);          \
    } while (0);

static void test_layouts_are_pinned(void **state)
{
    (void)state;
    TD_LAYOUT_STRUCTS(CHECK_STRUCT)
}

/* A caller's struct of `size` bytes at the start of a buffer whose every
 * other byte is a guard value. */
typedef union buffer {
    unsigned char bytes[512];
    uint64_t align;
} buffer;

static void fill(buffer *b, unsigned char v) { memset(b->bytes, v, sizeof b->bytes); }

static void set_size(buffer *b, uint32_t size) { memcpy(b->bytes, &size, sizeof size); }

static uint32_t get_size(const buffer *b)
{
    uint32_t size;
    memcpy(&size, b->bytes, sizeof size);
    return size;
}

static void assert_untouched_from(const buffer *b, size_t from, unsigned char v)
{
    for (size_t i = from; i < sizeof b->bytes; i++)
        if (b->bytes[i] != v) fail_msg("byte %zu was written", i);
}

/* ---- config structs: _init and the constructors ------------------------ */

typedef struct config_case {
    const char *name;
    size_t size;
    td_status (*init)(void *cfg, size_t size);
    td_status (*use)(const void *cfg); /* creates and frees a handle, or evaluates */
    size_t v1;                         /* the 1.0 size when the struct has grown; 0: size */
} config_case;

/* The smallest size a struct is accepted at. */
#define V1(c) ((c)->v1 ? (c)->v1 : (c)->size)

static td_model *g_model;
static td_schedule *g_schedule;
static int32_t g_tokens[4 * T];

static td_status init_schedule(void *c, size_t n)
{
    return td_schedule_config_init(c, n, TD_SCHEDULE_LOGLINEAR);
}
static td_status init_model(void *c, size_t n)
{
    td_status st = td_model_config_init(c, n);
    if (st == TD_OK) { /* small, to be quick */
        td_model_config *mc = c;
        mc->d_model = 16;
        mc->n_layers = 1;
        mc->n_heads = 2;
        mc->d_ff = 32;
        mc->max_seq_len = T;
    }
    return st;
}
static td_status init_trainer(void *c, size_t n)
{
    td_status st = td_trainer_config_init(c, n);
    if (st == TD_OK) { /* a batch the toy model takes */
        td_trainer_config *tc = c;
        tc->batch_size = 2;
        tc->seq_len = T;
    }
    return st;
}
static td_status init_sampler(void *c, size_t n) { return td_sampler_config_init(c, n); }
static td_status init_eval(void *c, size_t n)
{
    td_status st = td_eval_config_init(c, n);
    if (st == TD_OK) ((td_eval_config *)c)->seq_len = T;
    return st;
}

static td_status use_schedule(const void *c)
{
    td_schedule *s = NULL;
    td_status st = td_schedule_create(c, NULL, &s);
    assert_true((st == TD_OK) == (s != NULL));
    td_schedule_free(s);
    return st;
}
static td_status use_model(const void *c)
{
    td_model *m = NULL;
    td_status st = td_model_create(c, 1, NULL, &m);
    assert_true((st == TD_OK) == (m != NULL));
    td_model_free(m);
    return st;
}
static td_status use_trainer(const void *c)
{
    td_trainer *t = NULL;
    td_status st = td_trainer_create(g_model, g_schedule, c, &t);
    assert_true((st == TD_OK) == (t != NULL));
    td_trainer_free(t);
    return st;
}
static td_status use_sampler(const void *c)
{
    td_sampler *s = NULL;
    td_status st = td_sampler_create(g_model, g_schedule, c, &s);
    assert_true((st == TD_OK) == (s != NULL));
    td_sampler_free(s);
    return st;
}
static td_status use_eval(const void *c)
{
    td_eval_result r = { .struct_size = sizeof r };
    return td_eval_nelbo(g_model, g_tokens, 4 * T, c, &r);
}

static const config_case config_cases[] = {
    { "td_schedule_config", sizeof(td_schedule_config), init_schedule, use_schedule, 0 },
    { "td_model_config", sizeof(td_model_config), init_model, use_model, 48 },
    { "td_trainer_config", sizeof(td_trainer_config), init_trainer, use_trainer, 0 },
    { "td_sampler_config", sizeof(td_sampler_config), init_sampler, use_sampler, 64 },
    { "td_eval_config", sizeof(td_eval_config), init_eval, use_eval, 0 },
};

static void test_config_init_writes_only_the_callers_bytes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof config_cases / sizeof config_cases[0]; k++) {
        const config_case *c = &config_cases[k];
        buffer ref, b;
        fill(&ref, 0);
        assert_int_equal(c->init(ref.bytes, c->size), TD_OK);
        assert_int_equal(get_size(&ref), c->size);

        /* Older caller: smaller than 1.0, or not a field boundary. */
        const size_t bad[] = { 0, 4, V1(c) - 8, c->size + 3, 8192 };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            fill(&b, 0xA5);
            assert_int_equal(c->init(b.bytes, bad[i]), TD_ERR_INVALID_ARG);
            assert_non_null(strstr(td_last_error_message(), "struct_size"));
            assert_untouched_from(&b, 0, 0xA5);
        }
        assert_int_equal(c->init(NULL, c->size), TD_ERR_INVALID_ARG);

        /* Newer caller: its fields beyond ours are left alone, and
         * struct_size says how much was written. */
        fill(&b, 0xA5);
        assert_int_equal(c->init(b.bytes, c->size + 16), TD_OK);
        assert_int_equal(get_size(&b), c->size);
        assert_memory_equal(b.bytes, ref.bytes, c->size);
        assert_untouched_from(&b, c->size, 0xA5);
    }
}

static void test_constructors_read_only_the_callers_bytes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof config_cases / sizeof config_cases[0]; k++) {
        const config_case *c = &config_cases[k];
        buffer b;
        fill(&b, 0);
        assert_int_equal(c->init(b.bytes, c->size), TD_OK);
        assert_int_equal(c->use(b.bytes), TD_OK);

        /* A 1.0 caller of a struct that has grown since. */
        if (V1(c) < c->size) {
            set_size(&b, (uint32_t)V1(c));
            assert_int_equal(c->use(b.bytes), TD_OK);
        }
        /* Older caller. */
        set_size(&b, (uint32_t)(V1(c) - 8));
        assert_int_equal(c->use(b.bytes), TD_ERR_INVALID_ARG);
        assert_non_null(strstr(td_last_error_message(), "struct_size"));
        set_size(&b, 0);
        assert_int_equal(c->use(b.bytes), TD_ERR_INVALID_ARG);

        /* Newer caller whose extra fields are all zero (their defaults). */
        set_size(&b, (uint32_t)(c->size + 16));
        assert_int_equal(c->use(b.bytes), TD_OK);
        /* ... and one that sets a knob this library does not know. */
        for (size_t at = c->size; at < c->size + 16; at += 5) {
            b.bytes[at] = 1;
            assert_int_equal(c->use(b.bytes), TD_ERR_VERSION);
            assert_non_null(strstr(td_last_error_message(), "newer"));
            b.bytes[at] = 0;
        }
        /* Garbage, not a version: an uninitialised struct_size. */
        set_size(&b, 0x7fffff00u);
        assert_int_equal(c->use(b.bytes), TD_ERR_INVALID_ARG);
    }
}

/* ---- structs the library fills ----------------------------------------- */

typedef struct output_case {
    const char *name;
    size_t size;
    td_status (*fill)(void *out); /* out->struct_size set by the test */
    size_t v1;                    /* the 1.0 size when the struct has grown; 0: size */
} output_case;

static td_trainer *g_trainer;
static td_sampler *g_sampler;

static td_status get_schedule_config(void *out) { return td_schedule_get_config(g_schedule, out); }
static td_status get_model_config(void *out) { return td_model_get_config(g_model, out); }
static td_status train_step(void *out) { return td_trainer_step(g_trainer, g_tokens, out); }
static td_status sample(void *out)
{
    int32_t canvas[T];
    for (int i = 0; i < T; i++) canvas[i] = MASK;
    return td_sampler_generate(g_sampler, canvas, 1, T, NULL, NULL, out);
}
static td_status evaluate(void *out)
{
    td_eval_config c;
    td_eval_config_default(&c);
    c.seq_len = T;
    return td_eval_nelbo(g_model, g_tokens, 4 * T, &c, out);
}

static td_status text_stats(void *out)
{
    return td_text_stats_compute("a b a", 5, "a", 1, NULL, out);
}

static td_status runtime_info(void *out) { return td_runtime_info_get(out); }

static const output_case output_cases[] = {
    { "td_schedule_config", sizeof(td_schedule_config), get_schedule_config, 0 },
    { "td_model_config", sizeof(td_model_config), get_model_config, 48 },
    { "td_train_stats", sizeof(td_train_stats), train_step, 0 },
    { "td_sample_stats", sizeof(td_sample_stats), sample, 40 },
    { "td_eval_result", sizeof(td_eval_result), evaluate, 0 },
    { "td_text_stats", sizeof(td_text_stats), text_stats, 0 },
    { "td_runtime_info", sizeof(td_runtime_info), runtime_info, 0 },
};

static void test_outputs_write_only_the_callers_bytes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof output_cases / sizeof output_cases[0]; k++) {
        const output_case *c = &output_cases[k];
        buffer b;
        int64_t before, after;

        /* Older caller: refused before anything happens. */
        const uint32_t bad[] = { 0, 12, (uint32_t)V1(c) - 8, (uint32_t)c->size + 4 };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            fill(&b, 0xA5);
            set_size(&b, bad[i]);
            td_trainer_get_step(g_trainer, &before);
            assert_int_equal(c->fill(b.bytes), TD_ERR_INVALID_ARG);
            td_trainer_get_step(g_trainer, &after);
            assert_int_equal(before, after); /* no training step was taken */
            assert_non_null(strstr(td_last_error_message(), "struct_size"));
            assert_int_equal(get_size(&b), bad[i]);
            assert_untouched_from(&b, sizeof(uint32_t), 0xA5);
        }

        /* Exact size, then a newer caller's larger struct. */
        fill(&b, 0xA5);
        set_size(&b, (uint32_t)c->size);
        assert_int_equal(c->fill(b.bytes), TD_OK);
        assert_int_equal(get_size(&b), c->size);
        assert_untouched_from(&b, c->size, 0xA5);
        fill(&b, 0xA5);
        set_size(&b, (uint32_t)c->size + GUARD);
        assert_int_equal(c->fill(b.bytes), TD_OK);
        assert_int_equal(get_size(&b), c->size); /* what was written */
        assert_untouched_from(&b, c->size, 0xA5);
    }
}

static int setup(void **state)
{
    (void)state;
    g_model = toy_model_create(V, MASK, T, 3, NULL);
    g_schedule = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    for (int i = 0; i < 4 * T; i++) g_tokens[i] = (i * 7) % MASK;
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = 2;
    tc.seq_len = T;
    assert_int_equal(td_trainer_create(g_model, g_schedule, &tc, &g_trainer), TD_OK);
    td_sampler_config sc;
    td_sampler_config_default(&sc);
    sc.steps = 4;
    assert_int_equal(td_sampler_create(g_model, g_schedule, &sc, &g_sampler), TD_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    td_sampler_free(g_sampler);
    td_trainer_free(g_trainer);
    td_schedule_free(g_schedule);
    td_model_free(g_model);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts_are_pinned),
        cmocka_unit_test(test_config_init_writes_only_the_callers_bytes),
        cmocka_unit_test(test_constructors_read_only_the_callers_bytes),
        cmocka_unit_test(test_outputs_write_only_the_callers_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
