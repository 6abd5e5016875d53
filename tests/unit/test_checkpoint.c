/* Checkpoint files: bit-exact round trips, the byte layout against an
 * independent encoder written from docs/format.md, and a reader that rejects
 * every truncation, bit flip and hand-crafted absurdity without crashing,
 * leaking, or allocating from unchecked sizes; atomic writes. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/test_alloc_hooks.h"
#include "common/toy.h"
#include "io/checkpoint.h"
#include "model/model_api.h"
#include "model/model_io.h"
#include "train/trainer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/rng.h"

#define assert_status(expr, want)                                                        \
    do {                                                                                 \
        td_status st_ = (expr);                                                          \
        if (st_ != (want))                                                               \
            print_message("%s:%d: got %s: %s\n", __FILE__, __LINE__, td_status_string(st_), \
                          td_last_error_message());                                      \
        assert_int_equal(st_, (want));                                                   \
    } while (0)

static int is_rejection(td_status st)
{
    return st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT || st == TD_ERR_VERSION;
}

/* ---------------------------------------------------------------------------
 * Little-endian fields and offsets, written down again from docs/format.md so
 * that the tests do not share the implementation's constants.
 * ------------------------------------------------------------------------- */
static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

enum {
    H_MAJOR = 8, H_MINOR = 10, H_HEADER_SIZE = 12, H_FILE_SIZE = 16, H_META_COUNT = 24,
    H_TENSOR_COUNT = 28, H_META = 32, H_DIR = 64, HEADER = 128,
    S_OFFSET = 0, S_STORED = 8, S_RAW = 16, S_CRC = 24, S_CODEC = 28,
    D_ENTRY_SIZE = 0, D_NAME_LEN = 4, D_DTYPE = 6, D_NDIM = 7, D_DIMS = 8, D_OFFSET = 40,
    D_STORED = 48, D_RAW = 56, D_CRC = 64, D_CODEC = 68, D_FIXED = 72
};
static const unsigned char MAGIC[8] = { 0x89, 'T', 'D', 'C', 0x0D, 0x0A, 0x1A, 0x0A };

static uint32_t crc(const unsigned char *p, size_t n) { return (uint32_t)crc32(0, p, (uInt)n); }

static void fix_header_crc(unsigned char *f)
{
    uint32_t hs = get32(f + H_HEADER_SIZE);
    put32(f + hs - 4, crc(f, hs - 4));
}

/* Recompute the CRC of a stored section (metadata: H_META, directory: H_DIR)
 * and then of the header. */
static void fix_section_crc(unsigned char *f, int desc)
{
    uint64_t off = get64(f + desc + S_OFFSET), stored = get64(f + desc + S_STORED);
    put32(f + desc + S_CRC, crc(f + off, (size_t)stored));
    fix_header_crc(f);
}

static unsigned char *dir_entry(unsigned char *f, unsigned i)
{
    unsigned char *p = f + get64(f + H_DIR + S_OFFSET);
    while (i--) p += get32(p + D_ENTRY_SIZE);
    return p;
}

static unsigned char *dup_buf(const void *p, size_t n)
{
    unsigned char *q = malloc(n ? n : 1);
    assert_non_null(q);
    memcpy(q, p, n);
    return q;
}

static td_status read_buf(const void *p, size_t n)
{
    tdi_ckpt *c = NULL;
    td_status st = tdi_ckpt_read_memory(NULL, p, n, &c);
    if (st == TD_OK) assert_non_null(c);
    else assert_null(c);
    tdi_ckpt_free(c);
    return st;
}

/* ---------------------------------------------------------------------------
 * The sample checkpoint
 * ------------------------------------------------------------------------- */
#define BIG_N 65537 /* more than four 64 KiB chunks of f32, and odd */

typedef struct sample {
    float odd[7];
    float cube[3 * 5 * 7];
    float scalar;
    float four[2 * 3 * 1 * 5];
    double f64[5];
    int32_t i32[9];
    int64_t i64[3];
    uint64_t u64[4];
    unsigned char u8[13];
    float *big;       /* BIG_N, or NULL for the small sample */
    double farr[1000];
    uint64_t rng_state[4];
} sample;

static const int64_t I64_ARRAY[4] = { 1, -2, INT64_MAX, INT64_MIN };
static const char *TOKENIZER = "bytes + [MASK] + [PAD] \xe2\x80\x94 UTF-8 \xe2\x9c\x93";

static double bits_to_f64(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static uint64_t f64_to_bits(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }

static void sample_init(sample *s, int with_big)
{
    tdi_rng r;
    tdi_rng_seed(&r, 20240601);
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < 7; i++) s->odd[i] = (float)tdi_rng_normal(&r);
    for (size_t i = 0; i < 105; i++) s->cube[i] = (float)tdi_rng_normal(&r);
    s->scalar = -0.0f;
    for (size_t i = 0; i < 30; i++) s->four[i] = (float)i - 14.5f;
    s->four[3] = (float)INFINITY;
    uint32_t nanbits = 0x7fc0beefu;
    memcpy(&s->four[4], &nanbits, 4);
    s->f64[0] = bits_to_f64(0x7ff8deadbeef0001ull);
    s->f64[1] = bits_to_f64(1); /* the smallest subnormal */
    s->f64[2] = -1e308;
    s->f64[3] = 3.141592653589793;
    s->f64[4] = -0.0;
    for (size_t i = 0; i < 9; i++) s->i32[i] = (int32_t)(tdi_rng_u64(&r) >> 32);
    s->i32[0] = INT32_MIN;
    s->i64[0] = INT64_MIN; s->i64[1] = -1; s->i64[2] = INT64_MAX;
    for (size_t i = 0; i < 4; i++) s->u64[i] = tdi_rng_u64(&r);
    for (size_t i = 0; i < 13; i++) s->u8[i] = (unsigned char)(i * 37);
    for (size_t i = 0; i < 1000; i++) s->farr[i] = tdi_rng_normal(&r);
    for (size_t i = 0; i < 4; i++) s->rng_state[i] = r.s[i];
    s->big = NULL;
    if (with_big) {
        s->big = malloc(BIG_N * sizeof(float));
        assert_non_null(s->big);
        /* Compressible but not trivial: a few distinct values. */
        for (size_t i = 0; i < BIG_N; i++) s->big[i] = (float)(tdi_rng_below(&r, 8)) * 0.25f;
    }
}

static void sample_free(sample *s) { free(s->big); }

/* Puts the sample into a writer; returns the first failure. */
static td_status sample_put(tdi_ckpt_writer *w, const sample *s, uint32_t zflag)
{
    static const uint64_t d_odd[1] = { 7 }, d_cube[3] = { 3, 5, 7 }, d_four[4] = { 2, 3, 1, 5 };
    static const uint64_t d_f64[1] = { 5 }, d_i32[2] = { 3, 3 }, d_i64[1] = { 3 };
    static const uint64_t d_u64[1] = { 4 }, d_u8[1] = { 13 }, d_big[1] = { BIG_N };
    TDI_TRY(tdi_ckpt_put_i64(w, "config.vocab_size", 258));
    TDI_TRY(tdi_ckpt_put_i64(w, "i64.min", INT64_MIN));
    TDI_TRY(tdi_ckpt_put_i64(w, "i64.neg", -1));
    TDI_TRY(tdi_ckpt_put_u64(w, "u64.max", UINT64_MAX));
    TDI_TRY(tdi_ckpt_put_f64(w, "f64.nan", bits_to_f64(0x7ff8deadbeef0001ull)));
    TDI_TRY(tdi_ckpt_put_f64(w, "f64.negzero", -0.0));
    TDI_TRY(tdi_ckpt_put_f64(w, "f64.inf", INFINITY));
    TDI_TRY(tdi_ckpt_put_f64(w, "f64.subnormal", bits_to_f64(1)));
    TDI_TRY(tdi_ckpt_put_string(w, "tokenizer", TOKENIZER));
    TDI_TRY(tdi_ckpt_put_string(w, "empty", ""));
    TDI_TRY(tdi_ckpt_put_i64_array(w, "i64.array", I64_ARRAY, 4));
    TDI_TRY(tdi_ckpt_put_i64_array(w, "i64.empty", NULL, 0));
    TDI_TRY(tdi_ckpt_put_u64_array(w, "rng.state", s->rng_state, 4));
    TDI_TRY(tdi_ckpt_put_f64_array(w, "f64.array", s->farr, 1000));
    TDI_TRY(tdi_ckpt_add_tensor(w, "odd", TDI_DTYPE_F32, 1, d_odd, s->odd, 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "cube", TDI_DTYPE_F32, 3, d_cube, s->cube, zflag));
    TDI_TRY(tdi_ckpt_add_tensor(w, "scalar", TDI_DTYPE_F32, 0, NULL, &s->scalar, 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "four", TDI_DTYPE_F32, 4, d_four, s->four, zflag));
    TDI_TRY(tdi_ckpt_add_tensor(w, "f64", TDI_DTYPE_F64, 1, d_f64, s->f64, 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "i32", TDI_DTYPE_I32, 2, d_i32, s->i32, zflag));
    TDI_TRY(tdi_ckpt_add_tensor(w, "i64", TDI_DTYPE_I64, 1, d_i64, s->i64, 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "opt.rng", TDI_DTYPE_U64, 1, d_u64, s->u64, zflag));
    TDI_TRY(tdi_ckpt_add_tensor(w, "u8", TDI_DTYPE_U8, 1, d_u8, s->u8, zflag));
    if (s->big) TDI_TRY(tdi_ckpt_add_tensor(w, "big", TDI_DTYPE_F32, 1, d_big, s->big, zflag));
    return TD_OK;
}

static void sample_write(const sample *s, int level, uint32_t zflag, unsigned char **buf,
                         size_t *size)
{
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, level), TD_OK);
    assert_status(sample_put(w, s, zflag), TD_OK);
    void *p = NULL;
    assert_status(tdi_ckpt_write_memory(w, &p, size), TD_OK);
    *buf = dup_buf(p, *size);
    tdi_free(tdi_ckpt_writer_allocator(w), p);
    tdi_ckpt_writer_free(w);
}

static void expect_tensor(const tdi_ckpt *c, size_t index, const char *name, tdi_dtype dtype,
                          uint32_t ndim, const uint64_t *dims, const void *data, size_t nbytes)
{
    const tdi_ckpt_tensor *t = tdi_ckpt_tensor_at(c, index);
    assert_non_null(t);
    assert_string_equal(t->name, name);
    assert_ptr_equal(tdi_ckpt_tensor_find(c, name), t);
    const tdi_ckpt_tensor *g = NULL;
    assert_status(tdi_ckpt_tensor_get(c, name, dtype, &g), TD_OK);
    assert_ptr_equal(g, t);
    assert_int_equal(t->dtype, dtype);
    assert_int_equal(t->ndim, ndim);
    uint64_t count = 1;
    for (uint32_t d = 0; d < 4; d++) {
        assert_int_equal(t->dims[d], d < ndim ? dims[d] : 1);
        count *= t->dims[d];
    }
    assert_int_equal(t->count, count);
    assert_int_equal(t->nbytes, nbytes);
    assert_int_equal((uintptr_t)t->data % 64, 0);
    assert_memory_equal(t->data, data, nbytes);
}

static void sample_check(const tdi_ckpt *c, const sample *s)
{
    uint32_t major = 0, minor = 9;
    tdi_ckpt_version(c, &major, &minor);
    assert_int_equal(major, 1);
    assert_int_equal(minor, 0);

    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    assert_status(tdi_ckpt_get_i64(c, "config.vocab_size", &i), TD_OK);
    assert_int_equal(i, 258);
    assert_status(tdi_ckpt_get_i64(c, "i64.min", &i), TD_OK);
    assert_true(i == INT64_MIN);
    assert_status(tdi_ckpt_get_i64(c, "i64.neg", &i), TD_OK);
    assert_true(i == -1);
    assert_status(tdi_ckpt_get_u64(c, "u64.max", &u), TD_OK);
    assert_true(u == UINT64_MAX);
    assert_status(tdi_ckpt_get_f64(c, "f64.nan", &f), TD_OK);
    assert_true(f64_to_bits(f) == 0x7ff8deadbeef0001ull);
    assert_status(tdi_ckpt_get_f64(c, "f64.negzero", &f), TD_OK);
    assert_true(f64_to_bits(f) == 0x8000000000000000ull);
    assert_status(tdi_ckpt_get_f64(c, "f64.inf", &f), TD_OK);
    assert_true(isinf(f) && f > 0);
    assert_status(tdi_ckpt_get_f64(c, "f64.subnormal", &f), TD_OK);
    assert_true(f64_to_bits(f) == 1);
    const char *str = NULL;
    size_t len = 0;
    assert_status(tdi_ckpt_get_string(c, "tokenizer", &str, &len), TD_OK);
    assert_string_equal(str, TOKENIZER);
    assert_int_equal(len, strlen(TOKENIZER));
    assert_status(tdi_ckpt_get_string(c, "empty", &str, NULL), TD_OK);
    assert_string_equal(str, "");
    const int64_t *ia = NULL;
    size_t n = 99;
    assert_status(tdi_ckpt_get_i64_array(c, "i64.array", &ia, &n), TD_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(ia, I64_ARRAY, sizeof I64_ARRAY);
    assert_int_equal((uintptr_t)ia % 8, 0);
    assert_status(tdi_ckpt_get_i64_array(c, "i64.empty", &ia, &n), TD_OK);
    assert_int_equal(n, 0);
    const uint64_t *ua = NULL;
    assert_status(tdi_ckpt_get_u64_array(c, "rng.state", &ua, &n), TD_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(ua, s->rng_state, sizeof s->rng_state);
    const double *fa = NULL;
    assert_status(tdi_ckpt_get_f64_array(c, "f64.array", &fa, &n), TD_OK);
    assert_int_equal(n, 1000);
    assert_memory_equal(fa, s->farr, sizeof s->farr);

    /* File order is insertion order. */
    assert_int_equal(tdi_ckpt_meta_count(c), 14);
    assert_string_equal(tdi_ckpt_meta_key(c, 0), "config.vocab_size");
    assert_string_equal(tdi_ckpt_meta_key(c, 13), "f64.array");
    assert_null(tdi_ckpt_meta_key(c, 14));
    assert_int_equal(tdi_ckpt_meta_type(c, "tokenizer"), TDI_META_STRING);
    assert_int_equal(tdi_ckpt_meta_type(c, "rng.state"), TDI_META_U64_ARRAY);
    assert_int_equal(tdi_ckpt_meta_type(c, "absent"), 0);

    static const uint64_t d_odd[1] = { 7 }, d_cube[3] = { 3, 5, 7 }, d_four[4] = { 2, 3, 1, 5 };
    static const uint64_t d_f64[1] = { 5 }, d_i32[2] = { 3, 3 }, d_i64[1] = { 3 };
    static const uint64_t d_u64[1] = { 4 }, d_u8[1] = { 13 }, d_big[1] = { BIG_N };
    assert_int_equal(tdi_ckpt_tensor_count(c), s->big ? 10 : 9);
    expect_tensor(c, 0, "odd", TDI_DTYPE_F32, 1, d_odd, s->odd, sizeof s->odd);
    expect_tensor(c, 1, "cube", TDI_DTYPE_F32, 3, d_cube, s->cube, sizeof s->cube);
    expect_tensor(c, 2, "scalar", TDI_DTYPE_F32, 0, NULL, &s->scalar, 4);
    expect_tensor(c, 3, "four", TDI_DTYPE_F32, 4, d_four, s->four, sizeof s->four);
    expect_tensor(c, 4, "f64", TDI_DTYPE_F64, 1, d_f64, s->f64, sizeof s->f64);
    expect_tensor(c, 5, "i32", TDI_DTYPE_I32, 2, d_i32, s->i32, sizeof s->i32);
    expect_tensor(c, 6, "i64", TDI_DTYPE_I64, 1, d_i64, s->i64, sizeof s->i64);
    expect_tensor(c, 7, "opt.rng", TDI_DTYPE_U64, 1, d_u64, s->u64, sizeof s->u64);
    expect_tensor(c, 8, "u8", TDI_DTYPE_U8, 1, d_u8, s->u8, sizeof s->u8);
    if (s->big)
        expect_tensor(c, 9, "big", TDI_DTYPE_F32, 1, d_big, s->big, BIG_N * sizeof(float));
    assert_null(tdi_ckpt_tensor_at(c, s->big ? 10 : 9));
    assert_null(tdi_ckpt_tensor_find(c, "absent"));
    assert_null(tdi_ckpt_tensor_find(c, "od"));
}

/* Small files keep the exhaustive sweeps fast; the big tensor is covered by
 * the round trips. */
typedef struct files {
    unsigned char *plain, *packed;
    size_t plain_size, packed_size;
} files;

static void small_files(files *f)
{
    sample s;
    sample_init(&s, 0);
    sample_write(&s, 0, 0, &f->plain, &f->plain_size);
    sample_write(&s, 9, TDI_CKPT_COMPRESS, &f->packed, &f->packed_size);
    sample_free(&s);
}

static void files_free(files *f)
{
    free(f->plain);
    free(f->packed);
}

/* ---------------------------------------------------------------------------
 * Round trips and the layout
 * ------------------------------------------------------------------------- */
static void round_trip(int level, uint32_t zflag)
{
    sample s;
    sample_init(&s, 1);
    unsigned char *buf;
    size_t size;
    sample_write(&s, level, zflag, &buf, &size);
    test_heap heap;
    td_allocator a = test_heap_allocator(&heap);
    tdi_ckpt *c = NULL;
    assert_status(tdi_ckpt_read_memory(&a, buf, size, &c), TD_OK);
    sample_check(c, &s);
    tdi_ckpt_free(c);
    assert_int_equal(heap.live, 0);

    /* Two writes of one writer give the same bytes. */
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(&a, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, level), TD_OK);
    assert_status(sample_put(w, &s, zflag), TD_OK);
    void *again = NULL;
    size_t again_size = 0;
    assert_status(tdi_ckpt_write_memory(w, &again, &again_size), TD_OK);
    assert_int_equal(again_size, size);
    assert_memory_equal(again, buf, size);
    tdi_free(&a, again);
    tdi_ckpt_writer_free(w);
    assert_int_equal(heap.live, 0);
    free(buf);
    sample_free(&s);
}

static void test_round_trip_stored(void **state) { (void)state; round_trip(0, 0); }
static void test_round_trip_sections_compressed(void **state) { (void)state; round_trip(6, 0); }
static void test_round_trip_all_compressed(void **state) { (void)state; round_trip(1, TDI_CKPT_COMPRESS); }

static void test_compression_is_used(void **state)
{
    (void)state;
    sample s;
    sample_init(&s, 1);
    unsigned char *plain, *packed;
    size_t plain_size, packed_size;
    sample_write(&s, 0, TDI_CKPT_COMPRESS, &plain, &plain_size); /* level 0: flag ignored */
    sample_write(&s, 1, TDI_CKPT_COMPRESS, &packed, &packed_size);
    assert_int_equal(plain[H_META + S_CODEC], 0);
    assert_int_equal(plain[H_DIR + S_CODEC], 0);
    assert_int_equal(packed[H_META + S_CODEC], 1);
    assert_int_equal(packed[H_DIR + S_CODEC], 1);
    /* 65537 floats of 3 bits of entropy each: zlib must at least halve them. */
    assert_true(packed_size * 2 < plain_size);
    /* An uncompressed file's size is exactly what the layout says. */
    uint64_t expect = HEADER + get64(plain + H_META + S_STORED);
    for (unsigned i = 0; i < 10; i++) {
        const unsigned char *e = dir_entry(plain, i);
        expect = ((expect + 63) & ~(uint64_t)63) + get64(e + D_STORED);
        assert_int_equal(e[D_CODEC], 0);
    }
    expect += get64(plain + H_DIR + S_STORED);
    assert_int_equal(plain_size, expect);
    free(plain);
    free(packed);
    sample_free(&s);
}

/* The bytes of a minimal file, built field by field from docs/format.md. */
static void test_bytes_match_the_spec(void **state)
{
    (void)state;
    assert_int_equal(crc((const unsigned char *)"123456789", 9), 0xCBF43926u);
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, 0), TD_OK);
    static const float data[2] = { 1.5f, -2.0f };
    static const uint64_t dims[1] = { 2 };
    assert_status(tdi_ckpt_put_i64(w, "step", -42), TD_OK);
    assert_status(tdi_ckpt_add_tensor(w, "w", TDI_DTYPE_F32, 1, dims, data, 0), TD_OK);
    void *out = NULL;
    size_t size = 0;
    assert_status(tdi_ckpt_write_memory(w, &out, &size), TD_OK);

    unsigned char e[273];
    memset(e, 0, sizeof e);
    /* metadata at 128: key_len, type (i64), value_len, "step", -42 */
    put16(e + 128, 4); put16(e + 130, 1); put32(e + 132, 8);
    memcpy(e + 136, "step", 4);
    put64(e + 140, (uint64_t)-42);
    /* 148..191 padding; tensor at 192: 1.5f = 0x3fc00000, -2.0f = 0xc0000000 */
    put32(e + 192, 0x3fc00000u); put32(e + 196, 0xc0000000u);
    /* directory at 200: one 73-byte entry */
    unsigned char *d = e + 200;
    put32(d + 0, 73); put16(d + 4, 1); d[6] = 1; d[7] = 1;
    put64(d + 8, 2);
    put64(d + 40, 192); put64(d + 48, 8); put64(d + 56, 8);
    put32(d + 64, crc(e + 192, 8));
    d[68] = 0;
    d[72] = 'w';
    /* header */
    memcpy(e, MAGIC, 8);
    put16(e + 8, 1); put16(e + 10, 0); put32(e + 12, 128);
    put64(e + 16, 273); put32(e + 24, 1); put32(e + 28, 1);
    put64(e + 32, 128); put64(e + 40, 20); put64(e + 48, 20); put32(e + 56, crc(e + 128, 20));
    put64(e + 64, 200); put64(e + 72, 73); put64(e + 80, 73); put32(e + 88, crc(e + 200, 73));
    put32(e + 124, crc(e, 124));

    assert_int_equal(size, sizeof e);
    assert_memory_equal(out, e, sizeof e);
    tdi_free(tdi_ckpt_writer_allocator(w), out);
    tdi_ckpt_writer_free(w);
}

static void test_getter_errors(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    tdi_ckpt *c = NULL;
    assert_status(tdi_ckpt_read_memory(NULL, f.packed, f.packed_size, &c), TD_OK);
    int64_t i;
    const char *s;
    const tdi_ckpt_tensor *t;
    assert_status(tdi_ckpt_get_i64(c, "no.such.key", &i), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "no.such.key"));
    assert_status(tdi_ckpt_get_i64(c, "tokenizer", &i), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "string"));
    assert_non_null(strstr(td_last_error_message(), "i64"));
    assert_status(tdi_ckpt_get_string(c, "i64.min", &s, NULL), TD_ERR_FORMAT);
    assert_status(tdi_ckpt_get_i64(c, NULL, &i), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_tensor_get(c, "odd", TDI_DTYPE_F64, &t), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "f32"));
    assert_status(tdi_ckpt_tensor_get(c, "nope", TDI_DTYPE_F32, &t), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "nope"));
    tdi_ckpt_free(c);
    files_free(&f);
}

static void test_writer_rejects_bad_arguments(void **state)
{
    (void)state;
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(NULL, NULL), TD_ERR_INVALID_ARG);
    td_allocator partial = { test_heap_malloc, NULL, test_heap_free, NULL };
    assert_status(tdi_ckpt_writer_create(&partial, &w), TD_ERR_INVALID_ARG);
    assert_null(w);
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, 10), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_writer_set_level(w, -1), TD_ERR_INVALID_ARG);
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_status(tdi_ckpt_put_i64(w, "", 1), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_put_i64(w, NULL, 1), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_put_i64(w, long_key, 1), TD_ERR_INVALID_ARG);
    long_key[255] = '\0';
    assert_status(tdi_ckpt_put_i64(w, long_key, 1), TD_OK); /* 255 bytes is the limit */
    assert_status(tdi_ckpt_put_string(w, "s", NULL), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_put_i64_array(w, "a", NULL, 3), TD_ERR_INVALID_ARG);
    float x[4] = { 0 };
    uint64_t dims[5] = { 1, 1, 1, 1, 1 }, zero[1] = { 0 }, huge[2] = { 1ull << 30, 1ull << 30 };
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 5, dims, x, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, zero, x, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 2, huge, x, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, dims, NULL, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", (tdi_dtype)0, 1, dims, x, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, dims, x, 2), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "", TDI_DTYPE_F32, 1, dims, x, 0), TD_ERR_INVALID_ARG);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, NULL, x, 0), TD_ERR_INVALID_ARG);

    /* Duplicates are reported when writing, naming the culprit. */
    void *buf = NULL;
    size_t size = 0;
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, dims, x, 0), TD_OK);
    assert_status(tdi_ckpt_add_tensor(w, "u", TDI_DTYPE_F32, 1, dims, x, 0), TD_OK);
    assert_status(tdi_ckpt_write_memory(w, &buf, &size), TD_OK);
    tdi_free(tdi_ckpt_writer_allocator(w), buf);
    assert_status(tdi_ckpt_add_tensor(w, "t", TDI_DTYPE_F32, 1, dims, x, 0), TD_OK);
    assert_status(tdi_ckpt_write_memory(w, &buf, &size), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "'t'"));
    assert_null(buf);
    tdi_ckpt_writer_free(w);

    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_put_i64(w, "k", 1), TD_OK);
    assert_status(tdi_ckpt_put_f64(w, "j", 1), TD_OK);
    assert_status(tdi_ckpt_put_string(w, "k", "again"), TD_OK);
    assert_status(tdi_ckpt_write_memory(w, &buf, &size), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "'k'"));
    tdi_ckpt_writer_free(w);
    tdi_ckpt_writer_free(NULL);
    tdi_ckpt_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Damage: truncation, bit flips
 * ------------------------------------------------------------------------- */
static void truncation_sweep(const unsigned char *f, size_t size)
{
    assert_status(read_buf(f, size), TD_OK);
    for (size_t len = 0; len < size; len++) {
        td_status st = read_buf(f, len);
        if (!(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT))
            fail_msg("truncated to %zu of %zu bytes: %s", len, size, td_status_string(st));
        if (len > 0 && len < 16) assert_int_equal(st, TD_ERR_CORRUPT); /* a magic prefix */
    }
    /* Truncation that the header agrees with: the layout must catch it. */
    unsigned char *g = dup_buf(f, size);
    for (size_t len = HEADER; len < size; len++) {
        memcpy(g, f, HEADER);
        put64(g + H_FILE_SIZE, len);
        fix_header_crc(g);
        td_status st = read_buf(g, len);
        if (!(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT))
            fail_msg("truncated to %zu with a matching header: %s", len, td_status_string(st));
    }
    free(g);
}

static void test_truncation_is_detected(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    truncation_sweep(f.plain, f.plain_size);
    truncation_sweep(f.packed, f.packed_size);
    files_free(&f);

    /* The big file: every byte of the header region, then a stride. */
    sample s;
    sample_init(&s, 1);
    unsigned char *buf;
    size_t size;
    sample_write(&s, 1, TDI_CKPT_COMPRESS, &buf, &size);
    for (size_t len = 0; len < size; len += len < 1024 ? 1 : 997) {
        td_status st = read_buf(buf, len);
        assert_true(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT);
    }
    assert_status(read_buf(buf, size - 1), TD_ERR_CORRUPT);
    free(buf);
    sample_free(&s);
}

static void flip_sweep(const unsigned char *f, size_t size, uint64_t seed)
{
    unsigned char *g = dup_buf(f, size);
    /* Every single bit. */
    for (size_t bit = 0; bit < size * 8; bit++) {
        g[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        td_status st = read_buf(g, size);
        if (!is_rejection(st))
            fail_msg("bit %zu (byte %zu) flipped: %s", bit, bit / 8, td_status_string(st));
        g[bit / 8] = f[bit / 8];
    }
    /* Random multi-bit damage: scattered flips and short bursts. */
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    for (int trial = 0; trial < 3000; trial++) {
        int flips = 2 + (int)tdi_rng_below(&r, 15);
        int burst = trial % 2;
        size_t at = (size_t)tdi_rng_below(&r, size * 8);
        for (int k = 0; k < flips; k++) {
            size_t bit = burst ? (at + (size_t)k) % (size * 8)
                               : (size_t)tdi_rng_below(&r, size * 8);
            g[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        td_status st = memcmp(g, f, size) == 0 ? TD_ERR_FORMAT : read_buf(g, size);
        if (!is_rejection(st))
            fail_msg("trial %d (%d flips) accepted: %s", trial, flips, td_status_string(st));
        memcpy(g, f, size);
    }
    free(g);
}

static void test_bit_flips_are_detected(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    flip_sweep(f.plain, f.plain_size, 1);
    flip_sweep(f.packed, f.packed_size, 2);
    files_free(&f);
}

static void test_not_a_checkpoint(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    unsigned char *g = dup_buf(f.plain, f.plain_size);
    g[0] = 'P';
    assert_status(read_buf(g, f.plain_size), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "magic"));
    assert_status(read_buf(g, 5), TD_ERR_FORMAT);
    assert_status(read_buf(f.plain, 0), TD_ERR_FORMAT);
    assert_status(read_buf(NULL, 0), TD_ERR_FORMAT);
    assert_status(tdi_ckpt_read_memory(NULL, NULL, 10, &(tdi_ckpt *){ NULL }), TD_ERR_INVALID_ARG);
    static const char text[] = "In the beginning God created the heaven and the earth.";
    assert_status(read_buf(text, sizeof text), TD_ERR_FORMAT);
    free(g);
    files_free(&f);
}

static void test_unknown_major_version(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    unsigned char *g = dup_buf(f.plain, f.plain_size);
    static const uint16_t majors[3] = { 0, 3, 0xffff }; /* 1 and 2 are known */
    for (int i = 0; i < 3; i++) {
        put16(g + H_MAJOR, majors[i]);
        assert_status(read_buf(g, f.plain_size), TD_ERR_VERSION); /* before the CRC */
        fix_header_crc(g);
        assert_status(read_buf(g, f.plain_size), TD_ERR_VERSION);
        assert_non_null(strstr(td_last_error_message(), "version"));
    }
    /* A future major may have any header after the prefix. */
    assert_status(read_buf(g, 16), TD_ERR_VERSION);
    free(g);
    files_free(&f);
}

/* ---------------------------------------------------------------------------
 * Hand-crafted files
 * ------------------------------------------------------------------------- */

/* Edits one field of a fresh copy of `f`, fixes the CRCs it names, reads. */
typedef void (*edit_fn)(unsigned char *g, size_t *size);

static td_status edited(const unsigned char *f, size_t size, edit_fn edit)
{
    unsigned char *g = malloc(size + 64);
    assert_non_null(g);
    memcpy(g, f, size);
    memset(g + size, 0, 64);
    edit(g, &size);
    td_status st = read_buf(g, size);
    free(g);
    return st;
}

static void e_header_size_small(unsigned char *g, size_t *n) { (void)n; put32(g + H_HEADER_SIZE, 64); }
static void e_header_size_v10(unsigned char *g, size_t *n) { (void)n; put32(g + H_HEADER_SIZE, 132); }
static void e_header_crc(unsigned char *g, size_t *n) { (void)n; g[100] ^= 1; }
static void e_file_size(unsigned char *g, size_t *n) { (void)n; put64(g + H_FILE_SIZE, get64(g + H_FILE_SIZE) + 1); fix_header_crc(g); }
static void e_trailing(unsigned char *g, size_t *n) { (void)g; (*n)++; }
static void e_file_size_huge(unsigned char *g, size_t *n) { (void)n; put64(g + H_FILE_SIZE, 1ull << 62); fix_header_crc(g); }
static void e_tensor_count_max(unsigned char *g, size_t *n) { (void)n; put32(g + H_TENSOR_COUNT, 0xffffffffu); fix_header_crc(g); }
static void e_tensor_count_plus(unsigned char *g, size_t *n) { (void)n; put32(g + H_TENSOR_COUNT, get32(g + H_TENSOR_COUNT) + 1); fix_header_crc(g); }
static void e_tensor_count_minus(unsigned char *g, size_t *n) { (void)n; put32(g + H_TENSOR_COUNT, get32(g + H_TENSOR_COUNT) - 1); fix_header_crc(g); }
static void e_meta_count_max(unsigned char *g, size_t *n) { (void)n; put32(g + H_META_COUNT, 65537); fix_header_crc(g); }
static void e_meta_count_plus(unsigned char *g, size_t *n) { (void)n; put32(g + H_META_COUNT, get32(g + H_META_COUNT) + 1); fix_header_crc(g); }
static void e_meta_codec(unsigned char *g, size_t *n) { (void)n; g[H_META + S_CODEC] = 7; fix_header_crc(g); }
static void e_meta_raw(unsigned char *g, size_t *n) { (void)n; put64(g + H_META + S_RAW, get64(g + H_META + S_RAW) + 1); fix_header_crc(g); }
static void e_meta_raw_huge(unsigned char *g, size_t *n) { (void)n; put64(g + H_META + S_RAW, 1ull << 50); fix_header_crc(g); }
static void e_meta_offset(unsigned char *g, size_t *n) { (void)n; put64(g + H_META + S_OFFSET, 129); fix_header_crc(g); }
static void e_dir_offset(unsigned char *g, size_t *n) { (void)n; put64(g + H_DIR + S_OFFSET, get64(g + H_DIR + S_OFFSET) + 1); fix_header_crc(g); }
static void e_dir_stored_huge(unsigned char *g, size_t *n) { (void)n; put64(g + H_DIR + S_STORED, ~0ull - 5); fix_header_crc(g); }
static void e_dir_offset_huge(unsigned char *g, size_t *n) { (void)n; put64(g + H_DIR + S_OFFSET, ~0ull - 5); fix_header_crc(g); }

/* Directory edits on tensor 3 ("four", [2, 3, 1, 5] f32), then CRC fixes. */
static unsigned char *t3(unsigned char *g) { return dir_entry(g, 3); }
static void dfix(unsigned char *g) { fix_section_crc(g, H_DIR); }
static void e_ndim5(unsigned char *g, size_t *n) { (void)n; t3(g)[D_NDIM] = 5; dfix(g); }
static void e_dim_zero(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_DIMS + 8, 0); dfix(g); }
static void e_dim_unused(unsigned char *g, size_t *n) { (void)n; t3(g)[D_NDIM] = 3; dfix(g); }
static void e_dims_overflow(unsigned char *g, size_t *n)
{
    (void)n;
    for (int d = 0; d < 4; d++) put64(t3(g) + D_DIMS + 8 * d, 1ull << 32);
    dfix(g);
}
static void e_dims_mismatch(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_DIMS, 3); dfix(g); }
static void e_dtype(unsigned char *g, size_t *n) { (void)n; t3(g)[D_DTYPE] = 99; dfix(g); }
static void e_dtype_f64(unsigned char *g, size_t *n) { (void)n; t3(g)[D_DTYPE] = 2; dfix(g); }
static void e_tensor_codec(unsigned char *g, size_t *n) { (void)n; t3(g)[D_CODEC] = 2; dfix(g); }
static void e_tensor_zlib(unsigned char *g, size_t *n) { (void)n; t3(g)[D_CODEC] = 1; dfix(g); }
static void e_tensor_offset_far(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_OFFSET, 1ull << 63); dfix(g); }
static void e_tensor_offset_next(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_OFFSET, get64(t3(g) + D_OFFSET) + 64); dfix(g); }
static void e_tensor_stored_huge(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_STORED, ~0ull); dfix(g); }
static void e_tensor_raw(unsigned char *g, size_t *n) { (void)n; put64(t3(g) + D_RAW, 124); dfix(g); }
static void e_tensor_crc(unsigned char *g, size_t *n) { (void)n; put32(t3(g) + D_CRC, get32(t3(g) + D_CRC) ^ 1); dfix(g); }
static void e_name_len0(unsigned char *g, size_t *n) { (void)n; put16(t3(g) + D_NAME_LEN, 0); dfix(g); }
static void e_name_len_long(unsigned char *g, size_t *n) { (void)n; put16(t3(g) + D_NAME_LEN, 300); dfix(g); }
static void e_entry_size(unsigned char *g, size_t *n) { (void)n; put32(t3(g) + D_ENTRY_SIZE, get32(t3(g) + D_ENTRY_SIZE) + 1); dfix(g); }
static void e_entry_size_huge(unsigned char *g, size_t *n) { (void)n; put32(t3(g) + D_ENTRY_SIZE, 0xffffffffu); dfix(g); }
static void e_name_nul(unsigned char *g, size_t *n) { (void)n; t3(g)[D_FIXED + 1] = 0; dfix(g); }
static void e_name_dup(unsigned char *g, size_t *n) { (void)n; memcpy(t3(g) + D_FIXED, "cube", 4); dfix(g); } /* "four" -> "cube" */
static void e_padding(unsigned char *g, size_t *n)
{
    (void)n;
    uint64_t at = get64(t3(g) + D_OFFSET) - 1; /* the byte before "four" */
    assert_int_equal(g[at], 0);
    g[at] = 0x80;
}
/* Metadata edits: the first entry is "config.vocab_size" (i64). */
static unsigned char *m0(unsigned char *g) { return g + get64(g + H_META + S_OFFSET); }
static void mfix(unsigned char *g) { fix_section_crc(g, H_META); }
static void e_key_nul(unsigned char *g, size_t *n) { (void)n; m0(g)[8 + 3] = 0; mfix(g); }
static void e_key_len0(unsigned char *g, size_t *n) { (void)n; put16(m0(g), 0); mfix(g); }
static void e_type0(unsigned char *g, size_t *n) { (void)n; put16(m0(g) + 2, 0); mfix(g); }
static void e_type_unknown(unsigned char *g, size_t *n) { (void)n; put16(m0(g) + 2, 99); mfix(g); }
static void e_type_string(unsigned char *g, size_t *n) { (void)n; put16(m0(g) + 2, 4); mfix(g); } /* 8 bytes of an i64 contain NULs */
static void e_type_array(unsigned char *g, size_t *n) { (void)n; put16(m0(g) + 2, 5); mfix(g); } /* valid: a 1-element array */
static void e_value_len(unsigned char *g, size_t *n) { (void)n; put32(m0(g) + 4, 0xfffffff0u); mfix(g); }
static unsigned char *meta_key(unsigned char *g, const char *key)
{
    unsigned char *p = m0(g);
    for (uint32_t i = 0; i < get32(g + H_META_COUNT); i++) {
        if (get16(p) == strlen(key) && memcmp(p + 8, key, strlen(key)) == 0) return p;
        p += 8 + get16(p) + get32(p + 4);
    }
    fail_msg("no key %s", key);
    return NULL;
}
static void e_key_dup(unsigned char *g, size_t *n) { (void)n; memcpy(meta_key(g, "i64.neg") + 8, "i64.min", 7); mfix(g); }

static void test_crafted_files_are_rejected(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    const unsigned char *p = f.plain;
    size_t n = f.plain_size;
    struct { const char *name; edit_fn edit; td_status want; } cases[] = {
        { "header_size 64", e_header_size_small, TD_ERR_FORMAT },
        { "header_size 132 in 1.0", e_header_size_v10, TD_ERR_FORMAT },
        { "reserved header byte", e_header_crc, TD_ERR_CORRUPT },
        { "file_size + 1", e_file_size, TD_ERR_CORRUPT },
        { "trailing byte", e_trailing, TD_ERR_CORRUPT },
        { "file_size 2^62", e_file_size_huge, TD_ERR_FORMAT },
        { "tensor_count 2^32-1", e_tensor_count_max, TD_ERR_FORMAT },
        { "tensor_count + 1", e_tensor_count_plus, TD_ERR_CORRUPT },
        { "tensor_count - 1", e_tensor_count_minus, TD_ERR_CORRUPT },
        { "meta_count 65537", e_meta_count_max, TD_ERR_FORMAT },
        { "meta_count + 1", e_meta_count_plus, TD_ERR_CORRUPT },
        { "metadata codec 7", e_meta_codec, TD_ERR_FORMAT },
        { "metadata raw != stored", e_meta_raw, TD_ERR_CORRUPT },
        { "metadata raw 2^50", e_meta_raw_huge, TD_ERR_FORMAT },
        { "metadata offset 129", e_meta_offset, TD_ERR_FORMAT },
        { "directory offset + 1", e_dir_offset, TD_ERR_CORRUPT },
        { "directory stored 2^64-6", e_dir_stored_huge, TD_ERR_CORRUPT },
        { "directory offset 2^64-6", e_dir_offset_huge, TD_ERR_CORRUPT },
        { "ndim 5", e_ndim5, TD_ERR_FORMAT },
        { "dims[1] 0", e_dim_zero, TD_ERR_FORMAT },
        { "unused dim not 0", e_dim_unused, TD_ERR_FORMAT },
        { "dims 2^32 each", e_dims_overflow, TD_ERR_FORMAT },
        { "dims disagree with raw_size", e_dims_mismatch, TD_ERR_CORRUPT },
        { "dtype 99", e_dtype, TD_ERR_FORMAT },
        { "dtype f64 for f32 bytes", e_dtype_f64, TD_ERR_CORRUPT },
        { "tensor codec 2", e_tensor_codec, TD_ERR_FORMAT },
        { "tensor claims zlib", e_tensor_zlib, TD_ERR_CORRUPT },
        { "tensor offset 2^63", e_tensor_offset_far, TD_ERR_CORRUPT },
        { "tensor offset + 64", e_tensor_offset_next, TD_ERR_FORMAT },
        { "tensor stored 2^64-1", e_tensor_stored_huge, TD_ERR_CORRUPT },
        { "tensor raw_size", e_tensor_raw, TD_ERR_CORRUPT },
        { "tensor crc", e_tensor_crc, TD_ERR_CORRUPT },
        { "name_len 0", e_name_len0, TD_ERR_FORMAT },
        { "name_len 300", e_name_len_long, TD_ERR_FORMAT },
        { "entry_size + 1 in 1.0", e_entry_size, TD_ERR_FORMAT },
        { "entry_size 2^32-1", e_entry_size_huge, TD_ERR_FORMAT },
        { "NUL in a name", e_name_nul, TD_ERR_FORMAT },
        { "duplicate tensor name", e_name_dup, TD_ERR_FORMAT },
        { "non-zero padding", e_padding, TD_ERR_CORRUPT },
        { "NUL in a key", e_key_nul, TD_ERR_FORMAT },
        { "key_len 0", e_key_len0, TD_ERR_FORMAT },
        { "metadata type 0", e_type0, TD_ERR_FORMAT },
        { "metadata type 99 in 1.0", e_type_unknown, TD_ERR_FORMAT },
        { "NUL in a string", e_type_string, TD_ERR_FORMAT },
        { "value_len 2^32-16", e_value_len, TD_ERR_CORRUPT },
        { "duplicate key", e_key_dup, TD_ERR_FORMAT },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_status st = edited(p, n, cases[i].edit);
        if (st != cases[i].want)
            fail_msg("%s: got %s, want %s (%s)", cases[i].name, td_status_string(st),
                     td_status_string(cases[i].want), td_last_error_message());
        assert_true(strlen(td_last_error_message()) > 20);
    }
    /* A sanity check of the editing itself: a valid edit is accepted. */
    assert_status(edited(p, n, e_type_array), TD_OK);
    files_free(&f);
}

/* An allocator that records the largest request: absurd sizes in a file must
 * be refused before anything is allocated from them. */
static size_t largest_request;
static void *largest_malloc(void *u, size_t n)
{
    if (n > largest_request) largest_request = n;
    return test_heap_malloc(u, n);
}
static void *largest_realloc(void *u, void *p, size_t n)
{
    if (n > largest_request) largest_request = n;
    return test_heap_realloc(u, p, n);
}

static void test_no_allocation_from_absurd_sizes(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    test_heap heap;
    td_allocator a = test_heap_allocator(&heap);
    a.malloc_fn = largest_malloc;
    a.realloc_fn = largest_realloc;
    unsigned char *g = dup_buf(f.packed, f.packed_size);
    /* A compressed metadata section that claims 60 MiB: within the limit,
     * but more than zlib can make of its stored bytes. */
    put64(g + H_META + S_RAW, 60ull << 20);
    fix_header_crc(g);
    tdi_ckpt *c = NULL;
    largest_request = 0;
    assert_status(tdi_ckpt_read_memory(&a, g, f.packed_size, &c), TD_ERR_CORRUPT);
    assert_non_null(strstr(td_last_error_message(), "zlib"));
    assert_true(largest_request < 4096);
    /* Counts that the section sizes cannot hold. */
    memcpy(g, f.packed, f.packed_size);
    put32(g + H_TENSOR_COUNT, 1000000);
    fix_header_crc(g);
    largest_request = 0;
    assert_status(tdi_ckpt_read_memory(&a, g, f.packed_size, &c), TD_ERR_CORRUPT);
    assert_true(largest_request < 4096);
    assert_int_equal(heap.live, 0);
    free(g);
    files_free(&f);
}

/* A file written by an independent encoder of docs/format.md: stored
 * sections, chosen minor version, header size and directory entry padding. */
typedef struct craft {
    unsigned minor, header_size, entry_extra;
    int meta_zlib;       /* compress the metadata section */
    int meta_junk;       /* bytes after the zlib stream (negative: cut it short) */
    long meta_raw_delta; /* added to the metadata raw_size */
    unsigned char meta[1024];
    size_t meta_len;
    unsigned meta_count;
    unsigned nt;
    struct { const char *name; unsigned dtype, ndim; uint64_t dims[4]; unsigned char data[64]; size_t nbytes; } t[4];
} craft;

static void craft_meta(craft *c, const char *key, unsigned type, const unsigned char *v, size_t n)
{
    unsigned char *p = c->meta + c->meta_len;
    put16(p, (uint16_t)strlen(key)); put16(p + 2, (uint16_t)type); put32(p + 4, (uint32_t)n);
    memcpy(p + 8, key, strlen(key));
    memcpy(p + 8 + strlen(key), v, n);
    c->meta_len += 8 + strlen(key) + n;
    c->meta_count++;
}

static size_t craft_build(const craft *c, unsigned char *out, size_t cap)
{
    memset(out, 0, cap);
    size_t pos = c->header_size, stored = c->meta_len;
    if (c->meta_zlib) {
        uLongf zlen = (uLongf)(cap - pos);
        assert_int_equal(compress2(out + pos, &zlen, c->meta, c->meta_len, 9), Z_OK);
        stored = (size_t)((long)zlen + c->meta_junk);
        for (size_t i = zlen; i < stored; i++) out[pos + i] = 0xa5;
        out[H_META + S_CODEC] = 1;
    } else {
        memcpy(out + pos, c->meta, c->meta_len);
    }
    put64(out + H_META + S_OFFSET, pos);
    put64(out + H_META + S_STORED, stored);
    put64(out + H_META + S_RAW, (uint64_t)((long)c->meta_len + c->meta_raw_delta));
    put32(out + H_META + S_CRC, crc(out + pos, stored));
    pos += stored;
    uint64_t offsets[4];
    for (unsigned i = 0; i < c->nt; i++) {
        pos = (pos + 63) & ~(size_t)63;
        offsets[i] = pos;
        memcpy(out + pos, c->t[i].data, c->t[i].nbytes);
        pos += c->t[i].nbytes;
    }
    size_t dir = pos;
    for (unsigned i = 0; i < c->nt; i++) {
        unsigned char *e = out + pos;
        size_t nl = strlen(c->t[i].name), es = D_FIXED + nl + c->entry_extra;
        put32(e + D_ENTRY_SIZE, (uint32_t)es); put16(e + D_NAME_LEN, (uint16_t)nl);
        e[D_DTYPE] = (unsigned char)c->t[i].dtype; e[D_NDIM] = (unsigned char)c->t[i].ndim;
        for (unsigned d = 0; d < c->t[i].ndim; d++) put64(e + D_DIMS + 8 * d, c->t[i].dims[d]);
        put64(e + D_OFFSET, offsets[i]); put64(e + D_STORED, c->t[i].nbytes);
        put64(e + D_RAW, c->t[i].nbytes); put32(e + D_CRC, crc(out + offsets[i], c->t[i].nbytes));
        memcpy(e + D_FIXED, c->t[i].name, nl);
        memset(e + D_FIXED + nl, 0xee, c->entry_extra); /* a newer minor's fields */
        pos += es;
    }
    put64(out + H_DIR + S_OFFSET, dir);
    put64(out + H_DIR + S_STORED, pos - dir);
    put64(out + H_DIR + S_RAW, pos - dir);
    put32(out + H_DIR + S_CRC, crc(out + dir, pos - dir));
    memcpy(out, MAGIC, 8);
    put16(out + H_MAJOR, 1); put16(out + H_MINOR, (uint16_t)c->minor);
    put32(out + H_HEADER_SIZE, c->header_size); put64(out + H_FILE_SIZE, pos);
    put32(out + H_META_COUNT, c->meta_count); put32(out + H_TENSOR_COUNT, c->nt);
    for (unsigned i = 96; i < c->header_size - 4; i++) out[i] = (unsigned char)(i * 7); /* reserved/new */
    fix_header_crc(out);
    assert_true(pos <= cap);
    return pos;
}

static void craft_sample(craft *c, unsigned minor)
{
    memset(c, 0, sizeof *c);
    c->minor = minor;
    c->header_size = 128;
    unsigned char v[16];
    put64(v, (uint64_t)-7);
    craft_meta(c, "step", 1, v, 8);
    craft_meta(c, "name", 4, (const unsigned char *)"kjv", 3);
    c->nt = 2;
    c->t[0].name = "w"; c->t[0].dtype = 1; c->t[0].ndim = 2;
    c->t[0].dims[0] = 2; c->t[0].dims[1] = 3; c->t[0].nbytes = 24;
    for (int i = 0; i < 6; i++) put32(c->t[0].data + 4 * i, 0x3f800000u + (uint32_t)i); /* ~1.0f */
    c->t[1].name = "ids"; c->t[1].dtype = 5; c->t[1].ndim = 1;
    c->t[1].dims[0] = 5; c->t[1].nbytes = 5;
    memcpy(c->t[1].data, "\x01\x02\x03\x04\x05", 5);
}

static void check_crafted(const tdi_ckpt *c, unsigned minor)
{
    uint32_t major, mn;
    tdi_ckpt_version(c, &major, &mn);
    assert_int_equal(major, 1);
    assert_int_equal(mn, minor);
    int64_t step = 0;
    const char *name;
    assert_status(tdi_ckpt_get_i64(c, "step", &step), TD_OK);
    assert_true(step == -7);
    assert_status(tdi_ckpt_get_string(c, "name", &name, NULL), TD_OK);
    assert_string_equal(name, "kjv");
    const tdi_ckpt_tensor *t;
    assert_status(tdi_ckpt_tensor_get(c, "w", TDI_DTYPE_F32, &t), TD_OK);
    assert_int_equal(t->count, 6);
    const float *w = t->data;
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        assert_int_equal(bits, 0x3f800000u + (uint32_t)i);
    }
    assert_status(tdi_ckpt_tensor_get(c, "ids", TDI_DTYPE_U8, &t), TD_OK);
    assert_memory_equal(t->data, "\x01\x02\x03\x04\x05", 5);
}

static void test_independent_encoder_and_minor_versions(void **state)
{
    (void)state;
    static unsigned char buf[8192];
    craft c;
    tdi_ckpt *r = NULL;

    craft_sample(&c, 0);
    size_t n = craft_build(&c, buf, sizeof buf);
    assert_status(tdi_ckpt_read_memory(NULL, buf, n, &r), TD_OK);
    check_crafted(r, 0);
    tdi_ckpt_free(r);

    /* A newer minor: bigger header, longer directory entries, a new
     * metadata type. All are skipped; the rest reads as before. */
    craft_sample(&c, 3);
    c.header_size = 256;
    c.entry_extra = 24;
    craft_meta(&c, "future", 42, (const unsigned char *)"\x01\x02\x03", 3);
    n = craft_build(&c, buf, sizeof buf);
    assert_status(tdi_ckpt_read_memory(NULL, buf, n, &r), TD_OK);
    check_crafted(r, 3);
    assert_int_equal(tdi_ckpt_meta_type(r, "future"), 42);
    int64_t x;
    assert_status(tdi_ckpt_get_i64(r, "future", &x), TD_ERR_FORMAT);
    assert_non_null(strstr(td_last_error_message(), "unknown"));
    tdi_ckpt_free(r);

    /* The same extensions in a 1.0 file are errors. */
    c.minor = 0;
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_ERR_FORMAT);
    craft_sample(&c, 0);
    c.entry_extra = 8;
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_ERR_FORMAT);
    craft_sample(&c, 0);
    craft_meta(&c, "future", 42, (const unsigned char *)"x", 1);
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_ERR_FORMAT);

    /* Header size rules of 1.x: 128..4096, a multiple of 4. */
    craft_sample(&c, 1);
    c.header_size = 130;
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_ERR_FORMAT);
    c.header_size = 4096;
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_OK);

    /* Metadata value rules. */
    static const struct { unsigned type; size_t len; td_status want; } rules[] = {
        { 1, 7, TD_ERR_FORMAT }, { 2, 9, TD_ERR_FORMAT }, { 3, 0, TD_ERR_FORMAT },
        { 5, 12, TD_ERR_FORMAT }, { 6, 16, TD_OK }, { 7, 0, TD_OK }, { 4, 0, TD_OK },
        { 0, 8, TD_ERR_FORMAT },
    };
    unsigned char v[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        craft_sample(&c, 0);
        craft_meta(&c, "k", rules[i].type, v, rules[i].len);
        n = craft_build(&c, buf, sizeof buf);
        td_status st = read_buf(buf, n);
        if (st != rules[i].want)
            fail_msg("type %u, value_len %zu: %s", rules[i].type, rules[i].len,
                     td_last_error_message());
    }
    /* A compressed metadata section: valid, then every way the zlib stream
     * and the sizes around it can disagree. */
    static const struct { int junk; long delta; td_status want; const char *msg; } z[] = {
        { 0, 0, TD_OK, "" },
        { 2, 0, TD_ERR_CORRUPT, "after the end" },
        { -1, 0, TD_ERR_CORRUPT, "ends early" },
        { -6, 0, TD_ERR_CORRUPT, "ends early" },
        { 0, -1, TD_ERR_CORRUPT, "more than raw_size" },
        { 0, 1, TD_ERR_CORRUPT, "decompresses to" },
    };
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
        craft_sample(&c, 0);
        c.meta_zlib = 1;
        c.meta_junk = z[i].junk;
        c.meta_raw_delta = z[i].delta;
        n = craft_build(&c, buf, sizeof buf);
        td_status st = tdi_ckpt_read_memory(NULL, buf, n, &r);
        if (st != z[i].want || !strstr(td_last_error_message(), z[i].msg))
            fail_msg("zlib case %zu: %s: %s", i, td_status_string(st), td_last_error_message());
        if (st == TD_OK) check_crafted(r, 0);
        tdi_ckpt_free(r);
        r = NULL;
    }
    /* Extra bytes after the last metadata entry. */
    craft_sample(&c, 0);
    c.meta_len += 3;
    n = craft_build(&c, buf, sizeof buf);
    assert_status(read_buf(buf, n), TD_ERR_CORRUPT);
}

/* ---------------------------------------------------------------------------
 * Allocation failures
 * ------------------------------------------------------------------------- */
static void test_writer_allocation_failures(void **state)
{
    (void)state;
    sample s;
    sample_init(&s, 0);
    test_heap heap;
    int failures = 0;
    for (long k = 0;; k++) {
        td_allocator a = test_heap_allocator(&heap);
        heap.fail_at = k;
        tdi_ckpt_writer *w = NULL;
        void *buf = NULL;
        size_t size = 0;
        td_status st = tdi_ckpt_writer_create(&a, &w);
        if (st == TD_OK) st = tdi_ckpt_writer_set_level(w, 6);
        if (st == TD_OK) st = sample_put(w, &s, TDI_CKPT_COMPRESS);
        if (st == TD_OK) st = tdi_ckpt_write_memory(w, &buf, &size);
        if (st == TD_OK) {
            assert_status(read_buf(buf, size), TD_OK);
            tdi_free(&a, buf);
        } else {
            assert_int_equal(st, TD_ERR_NOMEM);
            assert_null(buf);
            failures++;
        }
        tdi_ckpt_writer_free(w);
        assert_int_equal(heap.live, 0);
        if (st == TD_OK) break;
    }
    assert_true(failures >= 8); /* writer, buffers, zlib's several blocks */

    /* zlib's allocations go through the hooks: deflate's five blocks. */
    long calls[2];
    for (int level = 0; level < 2; level++) {
        td_allocator a = test_heap_allocator(&heap);
        tdi_ckpt_writer *w = NULL;
        void *buf = NULL;
        size_t size = 0;
        assert_status(tdi_ckpt_writer_create(&a, &w), TD_OK);
        assert_status(tdi_ckpt_writer_set_level(w, level), TD_OK);
        assert_status(sample_put(w, &s, TDI_CKPT_COMPRESS), TD_OK);
        assert_status(tdi_ckpt_write_memory(w, &buf, &size), TD_OK);
        tdi_free(&a, buf);
        tdi_ckpt_writer_free(w);
        calls[level] = heap.calls;
    }
    assert_true(calls[1] >= calls[0] + 5);
    sample_free(&s);
}

static long reader_failures(const unsigned char *f, size_t size, const char *path)
{
    long calls = 0;
    test_heap heap;
    int failures = 0;
    for (long k = 0;; k++) {
        td_allocator a = test_heap_allocator(&heap);
        heap.fail_at = k;
        tdi_ckpt *c = NULL;
        td_status st = path ? tdi_ckpt_read_file(&a, path, &c)
                            : tdi_ckpt_read_memory(&a, f, size, &c);
        if (st != TD_OK) {
            assert_int_equal(st, TD_ERR_NOMEM);
            assert_null(c);
            failures++;
        }
        tdi_ckpt_free(c);
        assert_int_equal(heap.live, 0);
        calls = heap.calls;
        if (st == TD_OK) break;
    }
    assert_true(failures >= 4);
    return calls; /* allocations of a successful read */
}

static void test_reader_allocation_failures(void **state)
{
    (void)state;
    files f;
    small_files(&f);
    long plain = reader_failures(f.plain, f.plain_size, NULL);
    long packed = reader_failures(f.packed, f.packed_size, NULL);
    assert_true(packed >= plain + 1); /* inflate's state, through the hooks */
    files_free(&f);
}

/* ---------------------------------------------------------------------------
 * Files and atomic writes
 * ------------------------------------------------------------------------- */
static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/td-ckpt-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d) return -1;
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        if (remove(path) != 0) { closedir(d); return -1; }
    }
    closedir(d);
    return rmdir(tmpdir);
}

/* The names in tmpdir, sorted, joined by spaces. */
static void dir_listing(char *out, size_t cap)
{
    char names[16][256];
    int n = 0;
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        assert_true(n < 16);
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[256];
            memcpy(t, names[j], sizeof t);
            memcpy(names[j], names[j - 1], sizeof t);
            memcpy(names[j - 1], t, sizeof t);
        }
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = snprintf(out + len, cap - len, "%s%s", i ? " " : "", names[i]);
        if (k < 0 || (size_t)k >= cap - len) break; /* full: the rest is cut */
        len += (size_t)k;
    }
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *size = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

static void write_sample_file(const char *path, const sample *s, int level, td_status want)
{
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, level), TD_OK);
    assert_status(sample_put(w, s, TDI_CKPT_COMPRESS), TD_OK);
    assert_status(tdi_ckpt_write_file(w, path), want);
    tdi_ckpt_writer_free(w);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    sample s;
    sample_init(&s, 1);
    char path[600], listing[1024];
    path_in(path, sizeof path, "model.tdc");
    for (int level = 0; level <= 1; level++) {
        write_sample_file(path, &s, level, TD_OK);
        dir_listing(listing, sizeof listing);
        assert_string_equal(listing, "model.tdc");
        tdi_ckpt *c = NULL;
        assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_OK);
        sample_check(c, &s);
        tdi_ckpt_free(c);
        /* The file holds what the memory writer makes. */
        size_t size;
        unsigned char *bytes = slurp(path, &size);
        unsigned char *mem;
        size_t mem_size;
        sample_write(&s, level, TDI_CKPT_COMPRESS, &mem, &mem_size);
        assert_int_equal(size, mem_size);
        assert_memory_equal(bytes, mem, size);
        /* Damage through the file reader too. */
        bytes[size / 2] ^= 4;
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(bytes, 1, size, fp), size);
        fclose(fp);
        assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_ERR_CORRUPT);
        assert_non_null(strstr(td_last_error_message(), "model.tdc"));
        assert_int_equal(truncate(path, (off_t)(size - 100)), 0);
        assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_ERR_CORRUPT);
        free(bytes);
        free(mem);
    }
    sample_free(&s);
    files f;
    small_files(&f);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f.packed, 1, f.packed_size, fp), f.packed_size);
    fclose(fp);
    reader_failures(NULL, 0, path);
    remove(path);

    /* A name near NAME_MAX still leaves room for the temporary file's. */
    char name[241];
    memset(name, 'n', 240);
    name[240] = '\0';
    path_in(path, sizeof path, name);
    tdi_ckpt_writer *w = NULL;
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_put_string(w, "k", "v"), TD_OK);
    assert_status(tdi_ckpt_write_file(w, path), TD_OK);
    tdi_ckpt_writer_free(w);
    dir_listing(listing, sizeof listing);
    assert_string_equal(listing, name);
    assert_status(read_buf(f.packed, f.packed_size), TD_OK);
    tdi_ckpt *c = NULL;
    assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_OK);
    assert_int_equal(tdi_ckpt_meta_count(c), 1);
    tdi_ckpt_free(c);
    files_free(&f);
    remove(path);
}

static void test_read_file_errors(void **state)
{
    (void)state;
    char path[600];
    tdi_ckpt *c = (tdi_ckpt *)&c;
    path_in(path, sizeof path, "missing.tdc");
    assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_ERR_IO);
    assert_null(c);
    assert_non_null(strstr(td_last_error_message(), "missing.tdc"));
    assert_status(tdi_ckpt_read_file(NULL, tmpdir, &c), TD_ERR_IO);
    assert_status(tdi_ckpt_read_file(NULL, NULL, &c), TD_ERR_INVALID_ARG);
}

static void test_atomic_write_failures(void **state)
{
    (void)state;
    sample s;
    sample_init(&s, 1);
    char path[600], listing[1024];
    tdi_ckpt_writer *w = NULL;

    /* A missing directory. */
    snprintf(path, sizeof path, "%s/no/such/dir/model.tdc", tmpdir);
    write_sample_file(path, &s, 0, TD_ERR_IO);
    assert_non_null(strstr(td_last_error_message(), "no/such/dir"));
    dir_listing(listing, sizeof listing);
    assert_string_equal(listing, "");

    /* The target is a directory: the rename fails after everything else
     * succeeded; the temporary file must go. */
    path_in(path, sizeof path, "dir.tdc");
    assert_int_equal(mkdir(path, 0700), 0);
    write_sample_file(path, &s, 0, TD_ERR_IO);
    assert_non_null(strstr(td_last_error_message(), "rename"));
    dir_listing(listing, sizeof listing);
    assert_string_equal(listing, "dir.tdc");
    assert_int_equal(rmdir(path), 0);

    /* A previous file survives a write that fails halfway (the file size
     * limit makes write() fail with EFBIG), and no temporary remains. */
    path_in(path, sizeof path, "model.tdc");
    files f;
    small_files(&f);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f.plain, 1, f.plain_size, fp), f.plain_size);
    fclose(fp);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100000; /* the big sample is ~330 kB */
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_status(tdi_ckpt_writer_create(NULL, &w), TD_OK);
    assert_status(tdi_ckpt_writer_set_level(w, 0), TD_OK);
    assert_status(sample_put(w, &s, 0), TD_OK);
    td_status st = tdi_ckpt_write_file(w, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_status(st, TD_ERR_IO);
    assert_non_null(strstr(td_last_error_message(), "write"));
    tdi_ckpt_writer_free(w);
    dir_listing(listing, sizeof listing);
    assert_string_equal(listing, "model.tdc");
    size_t size;
    unsigned char *bytes = slurp(path, &size);
    assert_int_equal(size, f.plain_size);
    assert_memory_equal(bytes, f.plain, size);
    free(bytes);

    /* Every allocation failing in turn: the old file stays, nothing leaks,
     * no temporary file remains. */
    test_heap heap;
    int failures = 0;
    for (long k = 0;; k++) {
        td_allocator a = test_heap_allocator(&heap);
        assert_status(tdi_ckpt_writer_create(&a, &w), TD_OK);
        assert_status(tdi_ckpt_writer_set_level(w, 1), TD_OK);
        assert_status(sample_put(w, &s, TDI_CKPT_COMPRESS), TD_OK);
        heap.fail_at = heap.calls + k;
        st = tdi_ckpt_write_file(w, path);
        tdi_ckpt_writer_free(w);
        assert_int_equal(heap.live, 0);
        dir_listing(listing, sizeof listing);
        assert_string_equal(listing, "model.tdc");
        if (st == TD_OK) break;
        assert_status(st, TD_ERR_NOMEM);
        failures++;
        bytes = slurp(path, &size);
        assert_int_equal(size, f.plain_size);
        assert_memory_equal(bytes, f.plain, size);
        free(bytes);
    }
    assert_true(failures >= 4);
    /* ...and the successful write replaced it. */
    tdi_ckpt *c = NULL;
    assert_status(tdi_ckpt_read_file(NULL, path, &c), TD_OK);
    sample_check(c, &s);
    tdi_ckpt_free(c);
    files_free(&f);
    sample_free(&s);
    remove(path);
}

/* ---------------------------------------------------------------------------
 * Models and trainers: every allocation failing in turn gives out-of-memory,
 * never another status, leaks nothing and changes nothing.
 * ------------------------------------------------------------------------- */
typedef struct io_case {
    test_heap heap;
    td_allocator alloc;
    td_model *model;     /* with a tokenizer, on the test heap */
    td_trainer *trainer; /* on that model, a few steps in */
    td_trainer *fresh;   /* another model and trainer, to resume into */
    td_model *fresh_model;
    char model_path[600], trainer_path[600], out_path[600];
    unsigned char *buf;  /* the model file's bytes */
    size_t size;
    /* The fresh trainer's state, which a failed resume must not change. */
    float *params;
    int64_t step;
    uint64_t rng[4];
} io_case;

static void no_temporary_files(void)
{
    char listing[1024];
    dir_listing(listing, sizeof listing);
    if (strstr(listing, ".tmp-")) fail_msg("a temporary file remains: %s", listing);
}

static td_status op_model_save(void *ctx)
{
    io_case *c = ctx;
    td_status st = td_model_save(c->model, c->out_path);
    no_temporary_files();
    return st;
}

static td_status op_trainer_save(void *ctx)
{
    io_case *c = ctx;
    td_status st = td_trainer_save(c->trainer, c->out_path);
    no_temporary_files();
    return st;
}

static td_status finish_load(td_status st, td_model *m)
{
    if (st == TD_OK) assert_non_null(m);
    else assert_null(m);
    td_model_free(m);
    return st;
}

static td_status op_model_load(void *ctx)
{
    io_case *c = ctx;
    td_model *m = (td_model *)&m;
    td_status st = td_model_load(c->model_path, &c->alloc, &m);
    return finish_load(st, m);
}

static td_status op_trainer_file_load(void *ctx)
{
    io_case *c = ctx;
    td_model *m = (td_model *)&m;
    td_status st = td_model_load(c->trainer_path, &c->alloc, &m);
    return finish_load(st, m);
}

static td_status op_model_read(void *ctx) /* the path, read instead of mapped */
{
    io_case *c = ctx;
    td_model *m = (td_model *)&m;
    td_status st = tdi_model_load_file(c->model_path, &c->alloc, 0, &m);
    return finish_load(st, m);
}

/* A trainer on a mapped model: the model is mapped until the trainer exists. */
static td_status op_train_mapped(void *ctx)
{
    io_case *c = ctx;
    td_model *m = NULL;
    td_status st = td_model_load(c->model_path, &c->alloc, &m);
    if (st != TD_OK) return st;
    assert_non_null(m->m->map.addr);
    td_schedule *s = toy_schedule(TD_SCHEDULE_FIXED_RATE);
    td_trainer_config tc;
    assert_status(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = 2;
    tc.seq_len = 16;
    td_trainer *t = NULL;
    st = td_trainer_create(m, s, &tc, &t);
    td_schedule_free(s);
    if (st == TD_OK) assert_null(m->m->map.addr);
    else assert_non_null(m->m->map.addr);
    td_trainer_free(t);
    td_model_free(m);
    return st;
}

static td_status op_model_load_memory(void *ctx)
{
    io_case *c = ctx;
    td_model *m = (td_model *)&m;
    td_status st = td_model_load_memory(c->buf, c->size, &c->alloc, &m);
    return finish_load(st, m);
}

static td_status op_resume(void *ctx)
{
    io_case *c = ctx;
    return td_trainer_resume(c->fresh, c->trainer_path, TD_RESUME_STRICT);
}

static void fresh_unchanged(void *ctx)
{
    io_case *c = ctx;
    const tdi_model *m = c->fresh_model->m;
    int64_t step = -1;
    assert_status(td_trainer_get_step(c->fresh, &step), TD_OK);
    assert_int_equal(step, c->step);
    assert_memory_equal(c->fresh->rng.s, c->rng, sizeof c->rng);
    assert_memory_equal(m->params, c->params, m->n_floats * sizeof(float));
}

static void io_case_init(io_case *c)
{
    memset(c, 0, sizeof *c);
    c->alloc = test_heap_allocator(&c->heap);
    c->model = toy_model_sized(258, 256, 16, 32, 2, 2, 64, 5, &c->alloc);
    td_tokenizer *tok = NULL;
    assert_status(td_tokenizer_create_byte(&c->alloc, &tok), TD_OK);
    assert_status(td_model_set_tokenizer(c->model, tok), TD_OK);
    td_tokenizer_free(tok);
    td_schedule *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config tc;
    assert_status(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = 2;
    tc.seq_len = 16;
    assert_status(td_trainer_create(c->model, s, &tc, &c->trainer), TD_OK);
    int32_t tokens[2 * 16];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2 * 16; j++) tokens[j] = (j * 7 + i) % 256;
        assert_status(td_trainer_step(c->trainer, tokens, NULL), TD_OK);
    }
    c->fresh_model = toy_model_sized(258, 256, 16, 32, 2, 2, 64, 6, &c->alloc);
    assert_status(td_trainer_create(c->fresh_model, s, &tc, &c->fresh), TD_OK);
    td_schedule_free(s);
    path_in(c->model_path, sizeof c->model_path, "io-model.tdm");
    path_in(c->trainer_path, sizeof c->trainer_path, "io-trainer.tdc");
    path_in(c->out_path, sizeof c->out_path, "io-out.tdm");
    assert_status(td_model_save(c->model, c->model_path), TD_OK);
    assert_status(td_trainer_save(c->trainer, c->trainer_path), TD_OK);
    c->buf = slurp(c->model_path, &c->size);
    const tdi_model *m = c->fresh_model->m;
    c->params = malloc(m->n_floats * sizeof(float));
    assert_non_null(c->params);
    memcpy(c->params, m->params, m->n_floats * sizeof(float));
    memcpy(c->rng, c->fresh->rng.s, sizeof c->rng);
    assert_status(td_trainer_get_step(c->fresh, &c->step), TD_OK);
}

static void io_case_free(io_case *c)
{
    td_trainer_free(c->trainer);
    td_trainer_free(c->fresh);
    td_model_free(c->model);
    td_model_free(c->fresh_model);
    assert_int_equal(c->heap.live, 0);
    free(c->buf);
    free(c->params);
    remove(c->model_path);
    remove(c->trainer_path);
    remove(c->out_path);
}

static void test_model_and_trainer_allocation_failures(void **state)
{
    (void)state;
    io_case c;
    io_case_init(&c);
    assert_true(test_heap_fail_each(&c.heap, "td_model_save", op_model_save, NULL, &c) >= 3);
    assert_true(test_heap_fail_each(&c.heap, "td_model_load", op_model_load, NULL, &c) >= 5);
    assert_true(test_heap_fail_each(&c.heap, "td_model_load, read", op_model_read, NULL, &c) >= 5);
    assert_true(test_heap_fail_each(&c.heap, "td_model_load (trainer file)", op_trainer_file_load,
                                    NULL, &c) >= 5);
    assert_true(test_heap_fail_each(&c.heap, "td_trainer_create on a mapped model",
                                    op_train_mapped, NULL, &c) >= 5);
    assert_true(test_heap_fail_each(&c.heap, "td_model_load_memory", op_model_load_memory, NULL,
                                    &c) >= 5);
    assert_true(test_heap_fail_each(&c.heap, "td_trainer_save", op_trainer_save, NULL, &c) >= 3);
    assert_true(test_heap_fail_each(&c.heap, "td_trainer_resume", op_resume, fresh_unchanged,
                                    &c) >= 3);
    /* The last run succeeded: the fresh trainer now is the first one. */
    assert_memory_equal(c.fresh_model->m->params, c.model->m->params,
                        c.model->m->n_floats * sizeof(float));
    assert_memory_equal(c.fresh->rng.s, c.trainer->rng.s, sizeof c.rng);
    io_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_stored),
        cmocka_unit_test(test_round_trip_sections_compressed),
        cmocka_unit_test(test_round_trip_all_compressed),
        cmocka_unit_test(test_compression_is_used),
        cmocka_unit_test(test_bytes_match_the_spec),
        cmocka_unit_test(test_getter_errors),
        cmocka_unit_test(test_writer_rejects_bad_arguments),
        cmocka_unit_test(test_truncation_is_detected),
        cmocka_unit_test(test_bit_flips_are_detected),
        cmocka_unit_test(test_not_a_checkpoint),
        cmocka_unit_test(test_unknown_major_version),
        cmocka_unit_test(test_crafted_files_are_rejected),
        cmocka_unit_test(test_no_allocation_from_absurd_sizes),
        cmocka_unit_test(test_independent_encoder_and_minor_versions),
        cmocka_unit_test(test_writer_allocation_failures),
        cmocka_unit_test(test_reader_allocation_failures),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_read_file_errors),
        cmocka_unit_test(test_atomic_write_failures),
        cmocka_unit_test(test_model_and_trainer_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
