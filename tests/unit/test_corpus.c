/* Corpus reading (plain and gzip), the bundled corpus, the train/validation
 * split and window sampling, checked against brute-force enumerations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/test_alloc_hooks.h"
#include "io/corpus.h"
#include "util/alloc.h"
#include "util/rng.h"

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/td_corpus_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
    static char path[2][128];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
    return path[which];
}

static int remove_tmpdir(void **state)
{
    (void)state;
    static const char *names[] = { "plain.txt", "text.gz", "empty.txt", "bomb.gz", "short.gz" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    return rmdir(tmpdir);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* gzip with zlib's deflate: an encoder independent of the reader's path. */
static unsigned char *gzip_bytes(const void *data, size_t n, int level, size_t *out_n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n);
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Word salad with newlines: compressible, like text. */
static char *make_text(size_t n, uint64_t seed)
{
    static const char *words[] = { "and", "the", "of", "LORD", "unto", "he", "shall", "said,",
                                   "thee;", "in", "his", "them.", "God", "be", "with", "ye" };
    char *t = malloc(n + 1);
    assert_non_null(t);
    tdi_rng r;
    tdi_rng_seed(&r, seed);
    size_t i = 0;
    while (i < n) {
        const char *w = words[tdi_rng_below(&r, 16)];
        for (size_t k = 0; w[k] && i < n; k++) t[i++] = w[k];
        if (i < n) t[i++] = tdi_rng_below(&r, 12) == 0 ? '\n' : ' ';
    }
    t[n] = '\0';
    return t;
}

/* ---- reading -------------------------------------------------------------- */

/* got and got_n by address: they are read after `st`'s call has run. */
static void expect_text(td_status st, char **got_p, const size_t *got_n_p, const char *want,
                        size_t want_n)
{
    assert_int_equal(st, TD_OK);
    char *got = *got_p;
    size_t got_n = *got_n_p;
    assert_non_null(got);
    assert_int_equal(got_n, want_n);
    if (want_n) assert_memory_equal(got, want, want_n);
    assert_int_equal(got[got_n], '\0');
    tdi_corpus_text_free(NULL, got);
}

static void test_plain_and_gzip_read_the_same(void **state)
{
    (void)state;
    enum { N = 300000 };
    char *text = make_text(N, 1);
    size_t gz_n, gz1_n;
    unsigned char *gz = gzip_bytes(text, N, 9, &gz_n);
    unsigned char *gz1 = gzip_bytes(text, N, 1, &gz1_n);
    assert_true(gz_n < N / 2);
    write_file(tmp_path("plain.txt"), text, N);
    write_file(tmp_path("text.gz"), gz, gz_n);

    char *t;
    size_t n;
    expect_text(tdi_corpus_read_file(tmp_path("plain.txt"), N, NULL, &t, &n), &t, &n, text, N);
    expect_text(tdi_corpus_read_file(tmp_path("text.gz"), N, NULL, &t, &n), &t, &n, text, N);
    expect_text(tdi_corpus_read_buffer(text, N, N, NULL, &t, &n), &t, &n, text, N);
    expect_text(tdi_corpus_read_buffer(gz, gz_n, N, NULL, &t, &n), &t, &n, text, N);
    expect_text(tdi_corpus_read_buffer(gz1, gz1_n, N, NULL, &t, &n), &t, &n, text, N);

    /* Concatenated members read as one text (gzip -d's behaviour). */
    size_t a_n, b_n;
    unsigned char *a = gzip_bytes(text, 1000, 6, &a_n);
    unsigned char *b = gzip_bytes(text + 1000, N - 1000, 6, &b_n);
    unsigned char *ab = malloc(a_n + b_n);
    assert_non_null(ab);
    memcpy(ab, a, a_n);
    memcpy(ab + a_n, b, b_n);
    expect_text(tdi_corpus_read_buffer(ab, a_n + b_n, N, NULL, &t, &n), &t, &n, text, N);

    /* Empty inputs: an empty file, and a gzip of nothing. */
    write_file(tmp_path("empty.txt"), "", 0);
    expect_text(tdi_corpus_read_file(tmp_path("empty.txt"), 10, NULL, &t, &n), &t, &n, "", 0);
    size_t e_n;
    unsigned char *e = gzip_bytes("", 0, 9, &e_n);
    expect_text(tdi_corpus_read_buffer(e, e_n, 10, NULL, &t, &n), &t, &n, "", 0);
    /* A one-byte file cannot carry the two-byte magic: it is plain text. */
    expect_text(tdi_corpus_read_buffer("\x1F", 1, 10, NULL, &t, &n), &t, &n, "\x1F", 1);
    /* Only the full magic selects gzip. */
    expect_text(tdi_corpus_read_buffer("\x1F\x8A\x08", 3, 10, NULL, &t, &n), &t, &n,
                "\x1F\x8A\x08", 3);
    expect_text(tdi_corpus_read_buffer("\x8B\x1F", 2, 10, NULL, &t, &n), &t, &n, "\x8B\x1F", 2);

    free(e);
    free(ab);
    free(b);
    free(a);
    free(gz1);
    free(gz);
    free(text);
}

static void test_bundled_corpus(void **state)
{
    (void)state;
    char *t;
    size_t n;
    assert_int_equal(tdi_corpus_read_file(TD_SOURCE_DIR "/data/kjv.txt.gz",
                                          TDI_CORPUS_DEFAULT_MAX_BYTES, NULL, &t, &n),
                     TD_OK);
    /* The figures published in data/README.md. */
    assert_int_equal(n, 4137847);
    assert_int_equal(crc32(0L, (const Bytef *)t, (uInt)n), 0xBC934FC9u);
    size_t lines = 0;
    unsigned char seen[256] = { 0 };
    for (size_t i = 0; i < n; i++) {
        lines += t[i] == '\n';
        seen[(unsigned char)t[i]] = 1;
    }
    assert_int_equal(lines, 31102);
    const char *first = "In the beginning God created the heaven and the earth.\n";
    assert_memory_equal(t, first, strlen(first));
    const char *last = "The grace of our Lord Jesus Christ be with you all. Amen.\n";
    assert_memory_equal(t + n - strlen(last), last, strlen(last));

    /* Its character vocabulary is exactly its set of bytes, ascending. */
    tdi_tokenizer *tok;
    assert_int_equal(td_tokenizer_create_char(t, n, 0, NULL, &tok), TD_OK);
    uint32_t want[256];
    size_t k = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) want[k++] = (uint32_t)b;
    assert_int_equal(k, 63);
    assert_int_equal(tdi_tokenizer_n_symbols(tok), 63);
    assert_memory_equal(tdi_tokenizer_code_points(tok), want, k * sizeof *want);
    assert_int_equal(tdi_tokenizer_vocab_size(tok), 65);
    td_tokenizer_free(tok);

    /* The default split of it, as docs/corpus.md tabulates. */
    tdi_corpus *c;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    assert_int_equal(tdi_corpus_create(t, n, tok, NULL, NULL, &c), TD_OK);
    assert_int_equal(tdi_corpus_split_size(c, TDI_SPLIT_TRAIN), 3933047);
    assert_int_equal(tdi_corpus_split_size(c, TDI_SPLIT_VALID), 204800);
    assert_int_equal(tdi_corpus_n_windows(c, TDI_SPLIT_TRAIN, 128), 3929745);
    assert_int_equal(tdi_corpus_n_windows(c, TDI_SPLIT_VALID, 128), 201625);
    assert_int_equal(tdi_corpus_n_tiles(c, TDI_SPLIT_VALID, 128), 1600);
    tdi_corpus_free(c);
    td_tokenizer_free(tok);
    tdi_corpus_text_free(NULL, t);
}

static void test_truncated_and_corrupt_gzip(void **state)
{
    (void)state;
    enum { N = 5000 };
    char *text = make_text(N, 2);
    size_t gz_n;
    unsigned char *gz = gzip_bytes(text, N, 9, &gz_n);
    unsigned char *buf = malloc(gz_n + 16);
    assert_non_null(buf);
    char *t = NULL;
    size_t n;

    /* Every truncation that keeps the magic. */
    for (size_t cut = 2; cut < gz_n; cut++) {
        td_status st = tdi_corpus_read_buffer(gz, cut, N, NULL, &t, &n);
        if (st != TD_ERR_CORRUPT) fail_msg("cut at %zu of %zu: status %d", cut, gz_n, st);
        assert_null(t);
    }
    assert_non_null(strstr(td_last_error_message(), "truncated"));
    write_file(tmp_path("short.gz"), gz, gz_n - 3);
    assert_int_equal(tdi_corpus_read_file(tmp_path("short.gz"), N, NULL, &t, &n),
                     TD_ERR_CORRUPT);
    assert_non_null(strstr(td_last_error_message(), "short.gz"));

    /* Each byte of the CRC-32 and length trailer, and the header's method
     * byte and reserved flag bits. */
    for (size_t i = gz_n - 8; i < gz_n; i++) {
        memcpy(buf, gz, gz_n);
        buf[i] ^= 0x01;
        assert_int_equal(tdi_corpus_read_buffer(buf, gz_n, N, NULL, &t, &n), TD_ERR_CORRUPT);
    }
    memcpy(buf, gz, gz_n);
    buf[2] = 7; /* compression method */
    assert_int_equal(tdi_corpus_read_buffer(buf, gz_n, N, NULL, &t, &n), TD_ERR_CORRUPT);
    memcpy(buf, gz, gz_n);
    buf[3] |= 0x80; /* reserved flag */
    assert_int_equal(tdi_corpus_read_buffer(buf, gz_n, N, NULL, &t, &n), TD_ERR_CORRUPT);

    /* A flipped bit in the compressed data is caught by inflate or by the
     * CRC; only the padding bits of the final byte go unnoticed, and then
     * the text is intact. (A generous limit: damaged data may inflate to
     * more than the original, and the limit would speak first.) */
    size_t accepted = 0;
    for (size_t i = 10; i < gz_n - 8; i++) {
        memcpy(buf, gz, gz_n);
        buf[i] ^= 0x10;
        td_status st = tdi_corpus_read_buffer(buf, gz_n, 1 << 24, NULL, &t, &n);
        if (st == TD_OK) {
            accepted++;
            expect_text(st, &t, &n, text, N);
        } else {
            assert_int_equal(st, TD_ERR_CORRUPT);
        }
    }
    assert_true(accepted <= 1);

    /* Anything after the last member that is not another member. */
    memcpy(buf, gz, gz_n);
    memcpy(buf + gz_n, "junk", 4);
    assert_int_equal(tdi_corpus_read_buffer(buf, gz_n + 4, N, NULL, &t, &n), TD_ERR_CORRUPT);
    buf[gz_n] = 0;
    assert_int_equal(tdi_corpus_read_buffer(buf, gz_n + 1, N, NULL, &t, &n), TD_ERR_CORRUPT);
    assert_int_equal(tdi_corpus_read_buffer("\x1F\x8Bnot gzip", 10, N, NULL, &t, &n),
                     TD_ERR_CORRUPT);
    free(buf);
    free(gz);
    free(text);
}

/* Records the largest block asked for (the test heap counts blocks only). */
typedef struct peak_heap { long live; size_t largest; } peak_heap;

static void *peak_malloc(void *user, size_t size)
{
    peak_heap *h = user;
    if (size > h->largest) h->largest = size;
    void *p = malloc(size);
    h->live += p != NULL;
    return p;
}

static void *peak_realloc(void *user, void *ptr, size_t size)
{
    peak_heap *h = user;
    if (size > h->largest) h->largest = size;
    void *p = realloc(ptr, size);
    if (ptr == NULL && p != NULL) h->live++;
    return p;
}

static void peak_free(void *user, void *ptr)
{
    peak_heap *h = user;
    h->live -= ptr != NULL;
    free(ptr);
}

static void test_size_limit_and_io_errors(void **state)
{
    (void)state;
    enum { N = 20000 };
    char *text = make_text(N, 3);
    size_t gz_n;
    unsigned char *gz = gzip_bytes(text, N, 9, &gz_n);
    write_file(tmp_path("plain.txt"), text, N);
    write_file(tmp_path("text.gz"), gz, gz_n);
    char *t = NULL;
    size_t n;

    /* Exactly at the limit is fine; one byte over is not. */
    expect_text(tdi_corpus_read_file(tmp_path("plain.txt"), N, NULL, &t, &n), &t, &n, text, N);
    expect_text(tdi_corpus_read_file(tmp_path("text.gz"), N, NULL, &t, &n), &t, &n, text, N);
    assert_int_equal(tdi_corpus_read_file(tmp_path("plain.txt"), N - 1, NULL, &t, &n),
                     TD_ERR_INVALID_ARG);
    assert_null(t);
    assert_non_null(strstr(td_last_error_message(), "max_bytes"));
    assert_int_equal(tdi_corpus_read_file(tmp_path("text.gz"), N - 1, NULL, &t, &n),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_read_buffer(text, N, N - 1, NULL, &t, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_read_buffer(gz, gz_n, 0, NULL, &t, &n), TD_ERR_INVALID_ARG);

    /* A gzip bomb (64 MiB of zeros in ~64 KiB) stops at the limit, and the
     * memory it took stays near the limit. */
    enum { BOMB = 64 << 20 };
    char *zeros = calloc(BOMB, 1);
    assert_non_null(zeros);
    size_t bomb_n;
    unsigned char *bomb = gzip_bytes(zeros, BOMB, 9, &bomb_n);
    free(zeros);
    write_file(tmp_path("bomb.gz"), bomb, bomb_n);
    peak_heap ph = { 0, 0 };
    td_allocator a = { peak_malloc, peak_realloc, peak_free, &ph };
    assert_int_equal(tdi_corpus_read_file(tmp_path("bomb.gz"), 1 << 20, &a, &t, &n),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(ph.live, 0);
    assert_true(ph.largest <= (1 << 20) + 4096);
    assert_true(ph.largest > (1 << 19)); /* it did fill up to the limit */
    free(bomb);

    /* I/O failures. */
    assert_int_equal(tdi_corpus_read_file(tmp_path("missing.txt"), N, NULL, &t, &n), TD_ERR_IO);
    assert_non_null(strstr(td_last_error_message(), "missing.txt"));
    assert_int_equal(tdi_corpus_read_file(tmpdir, N, NULL, &t, &n), TD_ERR_IO);
    assert_int_equal(tdi_corpus_read_file(NULL, N, NULL, &t, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_read_file(tmp_path("plain.txt"), N, NULL, NULL, &n),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_read_buffer(NULL, 3, N, NULL, &t, &n), TD_ERR_INVALID_ARG);
    free(gz);
    free(text);
}

/* ---- split and windows ---------------------------------------------------- */

static tdi_corpus *byte_corpus(const char *text, size_t n, size_t block_len, uint32_t every)
{
    tdi_tokenizer *tok;
    tdi_corpus *c;
    assert_int_equal(td_tokenizer_create_byte(NULL, &tok), TD_OK);
    tdi_split_opts o = { block_len, every, NULL };
    assert_int_equal(tdi_corpus_create(text, n, tok, &o, NULL, &c), TD_OK);
    td_tokenizer_free(tok); /* the corpus does not need it */
    return c;
}

/* The split of token `pos` by the definition in corpus.h. */
static tdi_split split_ref(size_t pos, size_t block_len, uint32_t every)
{
    if (every == 0) return TDI_SPLIT_TRAIN;
    return (pos / block_len) % every == every - 1 ? TDI_SPLIT_VALID : TDI_SPLIT_TRAIN;
}

static int window_in_split(size_t start, size_t len, size_t n, size_t bl, uint32_t k,
                           tdi_split s)
{
    if (start + len > n) return 0;
    for (size_t i = start; i < start + len; i++)
        if (split_ref(i, bl, k) != s) return 0;
    return 1;
}

static void test_split_deterministic_and_disjoint(void **state)
{
    (void)state;
    static const struct { size_t n, bl; uint32_t k; } cfg[] = {
        { 10007, 100, 5 }, { 10000, 100, 5 }, { 950, 100, 5 }, { 399, 100, 5 },
        { 5000, 1, 2 }, { 1234, 7, 0 }, { 300, 1000, 20 },
    };
    char *text = make_text(10007, 4);
    for (size_t c_i = 0; c_i < sizeof cfg / sizeof cfg[0]; c_i++) {
        size_t n = cfg[c_i].n, bl = cfg[c_i].bl;
        uint32_t k = cfg[c_i].k;
        tdi_corpus *c = byte_corpus(text, n, bl, k), *c2 = byte_corpus(text, n, bl, k);
        size_t nt, n2;
        const int32_t *ids = tdi_corpus_tokens(c, &nt), *ids2 = tdi_corpus_tokens(c2, &n2);
        assert_int_equal(nt, n);
        assert_int_equal(n2, n);
        size_t count[2] = { 0, 0 };
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(ids[i], (unsigned char)text[i]);
            assert_int_equal(ids2[i], ids[i]);
            tdi_split s = tdi_corpus_split_of(c, i);
            assert_int_equal(s, split_ref(i, bl, k));
            assert_int_equal(tdi_corpus_split_of(c2, i), s);
            count[s]++;
        }
        assert_int_equal(tdi_corpus_split_size(c, TDI_SPLIT_TRAIN), count[0]);
        assert_int_equal(tdi_corpus_split_size(c, TDI_SPLIT_VALID), count[1]);
        assert_int_equal(count[0] + count[1], n);
        tdi_corpus_free(c2);
        tdi_corpus_free(c);
    }
    /* The defaults: 5% validation in blocks of 8192. */
    tdi_split_opts d = tdi_split_opts_default();
    assert_int_equal(d.block_len, 8192);
    assert_int_equal(d.valid_every, 20);
    free(text);
}

static void test_windows_in_split_and_reproducible(void **state)
{
    (void)state;
    enum { N = 1000, BL = 50, K = 4, T = 20, DRAWS = 200000 };
    char *text = make_text(N, 5);
    tdi_corpus *c = byte_corpus(text, N, BL, K);
    size_t n;
    const int32_t *ids = tdi_corpus_tokens(c, &n);
    static int32_t out[DRAWS * 2], out2[64 * T];
    static size_t starts[DRAWS], starts2[64];
    static unsigned hits[N];

    for (int s = 0; s < 2; s++) {
        tdi_split split = (tdi_split)s;
        /* Brute force: every start whose window stays in the split. */
        uint64_t brute = 0;
        for (size_t i = 0; i < N; i++) brute += (uint64_t)window_in_split(i, T, N, BL, K, split);
        assert_int_equal(tdi_corpus_n_windows(c, split, T), brute);

        int32_t *rows = malloc((size_t)DRAWS * T * sizeof *rows);
        assert_non_null(rows);
        tdi_rng r;
        tdi_rng_seed(&r, 11);
        assert_int_equal(tdi_corpus_sample(c, split, &r, DRAWS, T, rows, starts), TD_OK);
        memset(hits, 0, sizeof hits);
        for (size_t b = 0; b < DRAWS; b++) {
            assert_true(window_in_split(starts[b], T, N, BL, K, split));
            assert_memory_equal(rows + b * T, ids + starts[b], T * sizeof *ids);
            hits[starts[b]]++;
        }
        /* Uniform over all windows: every one is drawn, none far from the mean
         * (6 standard deviations of a binomial count). */
        double mean = (double)DRAWS / (double)brute;
        for (size_t i = 0; i < N; i++) {
            if (!window_in_split(i, T, N, BL, K, split)) {
                assert_int_equal(hits[i], 0);
                continue;
            }
            double dev = (double)hits[i] - mean;
            assert_true(dev * dev < 36.0 * mean);
        }
        free(rows);

        /* Same seed, same windows; another seed, others. */
        tdi_rng r1, r2, r3;
        tdi_rng_seed(&r1, 99);
        tdi_rng_seed(&r2, 99);
        tdi_rng_seed(&r3, 100);
        assert_int_equal(tdi_corpus_sample(c, split, &r1, 64, T, out, starts), TD_OK);
        assert_int_equal(tdi_corpus_sample(c, split, &r2, 64, T, out2, starts2), TD_OK);
        assert_memory_equal(out, out2, 64 * T * sizeof *out);
        assert_memory_equal(starts, starts2, 64 * sizeof *starts);
        assert_int_equal(tdi_corpus_sample(c, split, &r3, 64, T, out2, starts2), TD_OK);
        assert_memory_not_equal(starts, starts2, 64 * sizeof *starts);
    }

    /* A window longer than any run of the split does not fit. */
    tdi_rng r;
    tdi_rng_seed(&r, 1);
    assert_int_equal(tdi_corpus_n_windows(c, TDI_SPLIT_VALID, BL), 5 * 1);
    assert_int_equal(tdi_corpus_n_windows(c, TDI_SPLIT_VALID, BL + 1), 0);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_VALID, &r, 1, BL + 1, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "validation"));
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, 1, (K - 1) * BL, out, NULL),
                     TD_OK);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, 1, (K - 1) * BL + 1, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, 0, T, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, 1, 0, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, NULL, 1, T, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, 1, T, NULL, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, (tdi_split)2, &r, 1, T, out, NULL),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_TRAIN, &r, SIZE_MAX / 2, 4, out, NULL),
                     TD_ERR_INVALID_ARG);
    tdi_corpus_free(c);

    /* No validation split at all. */
    c = byte_corpus(text, N, BL, 0);
    assert_int_equal(tdi_corpus_split_size(c, TDI_SPLIT_VALID), 0);
    assert_int_equal(tdi_corpus_n_windows(c, TDI_SPLIT_TRAIN, T), N - T + 1);
    assert_int_equal(tdi_corpus_sample(c, TDI_SPLIT_VALID, &r, 1, T, out, NULL),
                     TD_ERR_INVALID_ARG);
    tdi_corpus_free(c);
    free(text);
}

static void test_tiles(void **state)
{
    (void)state;
    enum { N = 1037, BL = 50, K = 4 };
    char *text = make_text(N, 6);
    tdi_corpus *c = byte_corpus(text, N, BL, K);
    size_t n;
    const int32_t *ids = tdi_corpus_tokens(c, &n);
    int32_t out[200];
    for (int s = 0; s < 2; s++) {
        tdi_split split = (tdi_split)s;
        for (size_t T = 1; T <= 160; T += 13) {
            /* Brute force: walk each run of the split, tiling from its start. */
            size_t want[N], n_want = 0;
            for (size_t i = 0; i < N;) {
                if (split_ref(i, BL, K) != split) {
                    i++;
                    continue;
                }
                size_t end = i;
                while (end < N && split_ref(end, BL, K) == split) end++;
                for (size_t p = i; p + T <= end; p += T) want[n_want++] = p;
                i = end;
            }
            assert_int_equal(tdi_corpus_n_tiles(c, split, T), n_want);
            for (size_t j = 0; j < n_want; j++) {
                size_t start = 0;
                assert_int_equal(tdi_corpus_tile(c, split, T, j, out, &start), TD_OK);
                assert_int_equal(start, want[j]);
                assert_memory_equal(out, ids + start, T * sizeof *ids);
            }
            assert_int_equal(tdi_corpus_tile(c, split, T, n_want, out, NULL), TD_ERR_INVALID_ARG);
        }
    }
    assert_int_equal(tdi_corpus_n_tiles(c, TDI_SPLIT_TRAIN, 0), 0);
    assert_int_equal(tdi_corpus_tile(c, TDI_SPLIT_TRAIN, 0, 0, out, NULL), TD_ERR_INVALID_ARG);
    tdi_corpus_free(c);
    free(text);
}

static void test_create_errors_and_char_corpus(void **state)
{
    (void)state;
    tdi_tokenizer *byte, *chr;
    tdi_corpus *c = (tdi_corpus *)1;
    assert_int_equal(td_tokenizer_create_byte(NULL, &byte), TD_OK);
    tdi_split_opts bad_every = { 10, 1, NULL }, bad_block = { 0, 5, NULL },
                   overflow = { SIZE_MAX / 2, 3, NULL };
    assert_int_equal(tdi_corpus_create("abc", 3, byte, &bad_every, NULL, &c), TD_ERR_INVALID_ARG);
    assert_null(c);
    assert_int_equal(tdi_corpus_create("abc", 3, byte, &bad_block, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_create("abc", 3, byte, &overflow, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_create("", 0, byte, NULL, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_create(NULL, 3, byte, NULL, NULL, &c), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_corpus_create("abc", 3, NULL, NULL, NULL, &c), TD_ERR_INVALID_ARG);

    /* Multi-byte characters: fewer tokens than bytes, each the right one. */
    const char *text = "\xC3\xA9t\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80!";
    assert_int_equal(td_tokenizer_create_char(text, strlen(text), 0, NULL, &chr), TD_OK);
    assert_int_equal(tdi_corpus_create(text, strlen(text), chr, NULL, NULL, &c), TD_OK);
    size_t n;
    const int32_t *ids = tdi_corpus_tokens(c, &n);
    const uint32_t *cps = tdi_tokenizer_code_points(chr);
    const uint32_t want[] = { 0xE9, 't', 0xE9, ' ', 0x2713, ' ', 0x1F600, '!' };
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) assert_int_equal(cps[ids[i]], want[i]);
    tdi_corpus_free(c);
    /* A character outside a vocabulary without [UNK] is refused. */
    assert_int_equal(tdi_corpus_create("zz", 2, chr, NULL, NULL, &c), TD_ERR_INVALID_ARG);
    assert_null(c);
    td_tokenizer_free(chr);
    td_tokenizer_free(byte);
    tdi_corpus_free(NULL);
}

/* ---- allocation failures -------------------------------------------------- */

typedef td_status (*op_fn)(const td_allocator *a, void **obj);

static unsigned char *g_gz;
static size_t g_gz_n;
static char *g_text;
enum { G_N = 200000 };

static td_status read_plain_buf(const td_allocator *a, void **obj)
{
    size_t n;
    return tdi_corpus_read_buffer(g_text, G_N, G_N, a, (char **)obj, &n);
}
static td_status read_gz_buf(const td_allocator *a, void **obj)
{
    size_t n;
    return tdi_corpus_read_buffer(g_gz, g_gz_n, G_N, a, (char **)obj, &n);
}
static td_status read_plain_file(const td_allocator *a, void **obj)
{
    size_t n;
    return tdi_corpus_read_file(tmp_path("plain.txt"), G_N, a, (char **)obj, &n);
}
static td_status read_gz_file(const td_allocator *a, void **obj)
{
    size_t n;
    return tdi_corpus_read_file(tmp_path("text.gz"), G_N, a, (char **)obj, &n);
}
static td_status load_char(const td_allocator *a, void **obj)
{
    tdi_tokenizer *tok;
    if (td_tokenizer_create_char(g_text, 1000, 8, NULL, &tok) != TD_OK) return TD_ERR_INTERNAL;
    td_status st = tdi_corpus_load(tmp_path("text.gz"), G_N, tok, NULL, a, (tdi_corpus **)obj);
    td_tokenizer_free(tok);
    return st;
}

static void fail_each_allocation(op_fn op, int is_corpus)
{
    test_heap heap;
    td_allocator a = test_heap_allocator(&heap);
    for (long k = 0;; k++) {
        heap.calls = 0;
        heap.fail_at = k;
        void *obj = (void *)1;
        td_status st = op(&a, &obj);
        if (st == TD_OK) {
            assert_true(k > 0);
            if (is_corpus) tdi_corpus_free(obj);
            else tdi_corpus_text_free(&a, obj);
            assert_int_equal(heap.live, 0);
            return;
        }
        if (st != TD_ERR_NOMEM)
            fail_msg("allocation %ld: status %d: %s", k, st, td_last_error_message());
        assert_null(obj);
        assert_int_equal(heap.live, 0);
        assert_true(k < 100);
    }
}

static void test_allocation_failures(void **state)
{
    (void)state;
    g_text = make_text(G_N, 7);
    g_gz = gzip_bytes(g_text, G_N, 9, &g_gz_n);
    write_file(tmp_path("plain.txt"), g_text, G_N);
    write_file(tmp_path("text.gz"), g_gz, g_gz_n);
    fail_each_allocation(read_plain_buf, 0);
    fail_each_allocation(read_gz_buf, 0);
    fail_each_allocation(read_plain_file, 0);
    fail_each_allocation(read_gz_file, 0);
    fail_each_allocation(load_char, 1);
    free(g_gz);
    free(g_text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_gzip_read_the_same),
        cmocka_unit_test(test_bundled_corpus),
        cmocka_unit_test(test_truncated_and_corrupt_gzip),
        cmocka_unit_test(test_size_limit_and_io_errors),
        cmocka_unit_test(test_split_deterministic_and_disjoint),
        cmocka_unit_test(test_windows_in_split_and_reproducible),
        cmocka_unit_test(test_tiles),
        cmocka_unit_test(test_create_errors_and_char_corpus),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
