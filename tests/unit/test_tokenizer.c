/* Tokenizers and UTF-8: round trips, the maximal-subpart rule against an
 * oracle built from an independent encoder, vocabularies, the description
 * format, errors and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/test_alloc_hooks.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "util/rng.h"

/* ---- an independent UTF-8 encoder (the test's oracle) -------------------- */

static size_t ref_encode(uint32_t cp, unsigned char *out)
{
    if (cp <= 0x7F) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    size_t n = cp <= 0x7FF ? 2 : cp <= 0xFFFF ? 3 : 4;
    static const unsigned char lead[5] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (unsigned char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (unsigned char)(lead[n] | cp);
    return n;
}

static int ref_is_scalar(uint32_t cp) { return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF); }

/* valid_prefix{1,2,3}: is this byte string the start of some well-formed
 * encoding? Built by encoding every scalar value. */
static unsigned char prefix1[256];
static unsigned char prefix2[1 << 16];
static unsigned char prefix3[1 << 21]; /* bit set over 24-bit strings */

static void build_prefix_oracle(void)
{
    static int built;
    if (built) return;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (!ref_is_scalar(cp)) continue;
        unsigned char e[4];
        size_t n = ref_encode(cp, e);
        prefix1[e[0]] = 1;
        if (n >= 2) prefix2[e[0] << 8 | e[1]] = 1;
        if (n >= 3) {
            uint32_t k = (uint32_t)e[0] << 16 | (uint32_t)e[1] << 8 | e[2];
            prefix3[k >> 3] |= (unsigned char)(1u << (k & 7));
        }
    }
    built = 1;
}

static int is_valid_prefix(const unsigned char *b, size_t k)
{
    switch (k) {
    case 1: return prefix1[b[0]];
    case 2: return prefix2[b[0] << 8 | b[1]];
    case 3: {
        uint32_t x = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
        return (prefix3[x >> 3] >> (x & 7)) & 1;
    }
    default: return 0;
    }
}

/* Is b[0..k) exactly the encoding of a scalar? Decode by the bit formula and
 * re-encode: only a well-formed sequence survives the round trip. */
static int is_complete(const unsigned char *b, size_t k, uint32_t *cp)
{
    static const unsigned char mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    uint32_t c = b[0] & mask[k];
    for (size_t i = 1; i < k; i++) c = c << 6 | (b[i] & 0x3Fu);
    if (!ref_is_scalar(c)) return 0;
    unsigned char e[4];
    if (ref_encode(c, e) != k || memcmp(e, b, k) != 0) return 0;
    *cp = c;
    return 1;
}

static void expect_next(const unsigned char *b, size_t n)
{
    size_t want_len = 0;
    uint32_t want_cp = TDI_UTF8_REPLACEMENT;
    for (size_t k = 1; k <= 4 && k <= n; k++) {
        uint32_t c;
        if (is_complete(b, k, &c)) {
            want_len = k;
            want_cp = c;
            break;
        }
    }
    if (want_len == 0) {
        want_len = 1;
        for (size_t k = 1; k <= 3 && k <= n; k++)
            if (is_valid_prefix(b, k)) want_len = k;
    }
    uint32_t cp = 0;
    size_t got = tdi_utf8_next(b, n, &cp);
    if (got != want_len || cp != want_cp)
        fail_msg("bytes %02X %02X %02X %02X (n=%zu): got len %zu cp %X, want len %zu cp %X",
                 b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n, got,
                 (unsigned)cp, want_len, (unsigned)want_cp);
}

static void test_utf8_put_matches_reference(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (!ref_is_scalar(cp)) continue;
        unsigned char a[4], b[4];
        size_t na = tdi_utf8_put(cp, a), nb = ref_encode(cp, b);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        uint32_t back;
        assert_int_equal(tdi_utf8_next(a, na, &back), na);
        assert_int_equal(back, cp);
    }
}

/* Every 1-, 2- and 3-byte input, and every 3-byte input followed by a fourth
 * byte, against the oracle. */
static void test_utf8_next_exhaustive(void **state)
{
    (void)state;
    build_prefix_oracle();
    unsigned char b[4];
    for (uint32_t x = 0; x < (1u << 24); x++) {
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        /* Alternate continuation bytes (which complete 4-byte forms) with
         * others, covering all 256 values over the run. */
        b[3] = (unsigned char)((x & 1) ? 0x80 + ((x >> 1) & 0x3F) : (x >> 1) & 0xFF);
        expect_next(b, 4);
        expect_next(b, 3);
        if ((x & 0xFF) == 0) expect_next(b, 2);
        if ((x & 0xFFFF) == 0) expect_next(b, 1);
    }
}

static void test_utf8_unicode_table_3_8(void **state)
{
    (void)state;
    /* The Unicode Standard's own examples of maximal-subpart substitution. */
    static const unsigned char in1[] = { 0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2,
                                         0x62, 0x80, 0x63, 0x80, 0xBF, 0x64 };
    static const char out1[] = "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD"
                               "c\xEF\xBF\xBD\xEF\xBF\xBD" "d";
    /* Table 3-8: non-shortest forms, surrogates, and out-of-range values give
     * one U+FFFD per byte; truncated sequences give one per maximal subpart. */
    static const unsigned char in2[] = { 0xC0, 0xAF, 0xE0, 0x80, 0xBF, 0xF0, 0x81, 0x82, 0x41 };
    static const unsigned char in3[] = { 0xED, 0xA0, 0x80, 0xED, 0xBF, 0xBF, 0xED, 0xAF, 0x41 };
    static const unsigned char in4[] = { 0xF4, 0x91, 0x92, 0x93, 0xFF, 0x41, 0x80, 0xBF, 0x42 };
    static const unsigned char in5[] = { 0xE1, 0x80, 0xE2, 0xF0, 0x91, 0x92, 0xF1, 0xBF, 0x41 };
    static const struct { const unsigned char *in; size_t n; const char *out; } cases[] = {
        { in1, sizeof in1, out1 },
        { in2, sizeof in2, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                           "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "A" },
        { in3, sizeof in3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                           "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "A" },
        { in4, sizeof in4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                           "A\xEF\xBF\xBD\xEF\xBF\xBD" "B" },
        { in5, sizeof in5, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "A" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char buf[128];
        size_t len = 0;
        assert_int_equal(tdi_utf8_sanitize((const char *)cases[c].in, cases[c].n, buf, sizeof buf,
                                           &len),
                         TD_OK);
        assert_int_equal(len, strlen(cases[c].out));
        assert_string_equal(buf, cases[c].out);
        /* Size query, then a buffer one byte short. */
        size_t need = 0;
        assert_int_equal(tdi_utf8_sanitize((const char *)cases[c].in, cases[c].n, NULL, 0, &need),
                         TD_OK);
        assert_int_equal(need, len);
        assert_int_equal(tdi_utf8_sanitize((const char *)cases[c].in, cases[c].n, buf, len, &need),
                         TD_ERR_INVALID_ARG);
        assert_int_equal(strlen(buf), len - 1);
    }
}

/* ---- byte-level ----------------------------------------------------------- */

static void test_byte_vocabulary(void **state)
{
    (void)state;
    tdi_tokenizer *t = NULL;
    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_BYTE);
    assert_int_equal(tdi_tokenizer_vocab_size(t), 258);
    assert_int_equal(TDI_TOKENIZER_BYTE_VOCAB, 258);
    assert_int_equal(tdi_tokenizer_n_symbols(t), 256);
    assert_int_equal(tdi_tokenizer_mask_id(t), 256);
    assert_int_equal(tdi_tokenizer_pad_id(t), 257);
    assert_int_equal(tdi_tokenizer_unk_id(t), -1);
    assert_null(tdi_tokenizer_code_points(t));
    td_tokenizer_free(t);
    td_tokenizer_free(NULL);
}

/* The byte tokenizer with an end of text: [EOS] = 258 after the old ids,
 * decoding stops there, text never encodes to it; its description is
 * version 3, and a version 1 byte description still means no end. */
static void test_byte_eos(void **state)
{
    (void)state;
    tdi_tokenizer *t = NULL, *plain = NULL, *u = NULL;
    assert_int_equal(td_tokenizer_create_byte_eos(NULL, &t), TD_OK);
    assert_int_equal(td_tokenizer_create_byte(NULL, &plain), TD_OK);
    int32_t v = 0, id = 0;
    assert_int_equal(td_tokenizer_vocab_size(t, &v), TD_OK);
    assert_int_equal(v, 259);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_EOS, &id), TD_OK);
    assert_int_equal(id, 258);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_MASK, &id), TD_OK);
    assert_int_equal(id, 256);
    assert_int_equal(td_tokenizer_special_id(t, TD_TOKEN_PAD, &id), TD_OK);
    assert_int_equal(id, 257);
    assert_int_equal(td_tokenizer_special_id(plain, TD_TOKEN_EOS, &id), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "[EOS]"));
    assert_int_equal(td_tokenizer_special_id(t, (td_special_token)6, &id), TD_ERR_INVALID_ARG);
    const int32_t ids[5] = { 'h', 'i', 258, 'x', 257 };
    char out[16];
    size_t n = 0;
    assert_int_equal(td_tokenizer_decode(t, ids, 5, NULL, out, sizeof out, &n), TD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out, "hi");
    /* 258 is outside the plain byte vocabulary */
    assert_int_equal(td_tokenizer_decode(plain, ids, 5, NULL, out, sizeof out, &n),
                     TD_ERR_INVALID_ARG);
    int32_t enc[4];
    assert_int_equal(td_tokenizer_encode(t, "\x02\xff", 2, enc, 4, &n), TD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(enc[1], 255);
    unsigned char buf[32];
    size_t size = 0;
    assert_int_equal(tdi_tokenizer_serialize(t, buf, sizeof buf, &size), TD_OK);
    assert_int_equal(size, 16);
    assert_memory_equal(buf, "TDTK\x03\x01\x02\x00\x00\x01\x00\x00", 12);
    assert_int_equal(tdi_tokenizer_deserialize(buf, size, NULL, &u), TD_OK);
    assert_int_equal(td_tokenizer_vocab_size(u, &v), TD_OK);
    assert_int_equal(v, 259);
    assert_int_equal(td_tokenizer_special_id(u, TD_TOKEN_EOS, &id), TD_OK);
    assert_int_equal(id, 258);
    td_tokenizer_free(u);
    assert_int_equal(tdi_tokenizer_serialize(plain, buf, sizeof buf, &size), TD_OK);
    assert_int_equal(buf[4], 1);
    assert_int_equal(tdi_tokenizer_deserialize(buf, size, NULL, &u), TD_OK);
    assert_int_equal(td_tokenizer_special_id(u, TD_TOKEN_EOS, &id), TD_ERR_INVALID_ARG);
    td_tokenizer_free(u);
    td_tokenizer_free(plain);
    td_tokenizer_free(t);
    assert_int_equal(td_tokenizer_create_byte_eos(NULL, NULL), TD_ERR_INVALID_ARG);
}

static void roundtrip(const tdi_tokenizer *t, const char *text, size_t len, int32_t *ids,
                      size_t n_expect)
{
    int32_t buf[512];
    char out[2048];
    size_t n = 0, m = 0;
    assert_true(len <= 512);
    assert_int_equal(td_tokenizer_encode(t, text, len, buf, 512, &n), TD_OK);
    assert_int_equal(n, n_expect);
    if (ids) memcpy(ids, buf, n * sizeof *buf);
    assert_int_equal(td_tokenizer_decode(t, buf, n, NULL, out, sizeof out, &m), TD_OK);
    assert_int_equal(m, len);
    if (len > 0) assert_memory_equal(out, text, len);
    assert_int_equal(out[m], '\0');
}

static void test_byte_roundtrips(void **state)
{
    (void)state;
    tdi_tokenizer *t;
    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    int32_t ids[512];

    const char *ascii = "In the beginning God created the heaven and the earth.\n";
    roundtrip(t, ascii, strlen(ascii), ids, strlen(ascii));
    for (size_t i = 0; i < strlen(ascii); i++) assert_int_equal(ids[i], (unsigned char)ascii[i]);

    const char *utf8 = "na\xC3\xAFve \xE2\x9C\x93 \xF0\x9F\x98\x80"; /* naïve ✓ 😀 */
    roundtrip(t, utf8, strlen(utf8), ids, strlen(utf8));
    assert_int_equal(ids[2], 0xC3);

    /* Every byte value, NUL and ill-formed UTF-8 included, comes back as is. */
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)(255 - i);
    roundtrip(t, all, sizeof all, ids, 256);
    static const char bad[] = "\xC0\x80 \xE0\x80\x80 \xED\xA0\x80 \x80\xBF \xE2\x82";
    roundtrip(t, bad, sizeof bad - 1, ids, sizeof bad - 1);

    roundtrip(t, "", 0, ids, 0);
    size_t n = 99;
    assert_int_equal(td_tokenizer_encode(t, NULL, 0, NULL, 0, &n), TD_OK);
    assert_int_equal(n, 0);
    td_tokenizer_free(t);
}

static void test_decode_specials(void **state)
{
    (void)state;
    tdi_tokenizer *t;
    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    const int32_t ids[] = { 'a', 256, 'b', 256, 256, 'c', 257, 'd', 256 };
    char out[64];
    size_t len;
    assert_int_equal(td_tokenizer_decode(t, ids, 9, NULL, out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "a_b__c"); /* [PAD] ends the text */
    assert_int_equal(len, 6);
    assert_int_equal(td_tokenizer_decode(t, ids, 9, "[MASK]", out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "a[MASK]b[MASK][MASK]c");
    assert_int_equal(td_tokenizer_decode(t, ids, 9, "", out, sizeof out, &len), TD_OK);
    assert_string_equal(out, "abc");
    assert_int_equal(td_tokenizer_decode(t, ids, 9, "\xE2\x96\x91", out, sizeof out, &len),
                     TD_OK);
    assert_string_equal(out, "a\xE2\x96\x91" "b\xE2\x96\x91\xE2\x96\x91" "c");
    /* A leading [PAD] gives the empty text; ids after it are not even checked. */
    const int32_t pad_first[] = { 257, 9999 };
    assert_int_equal(td_tokenizer_decode(t, pad_first, 2, NULL, out, sizeof out, &len), TD_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    td_tokenizer_free(t);
}

static void test_size_and_argument_errors(void **state)
{
    (void)state;
    tdi_tokenizer *t;
    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    int32_t ids[8];
    char out[8];
    size_t n = 0;

    /* encode: query, exact fit, one short. */
    assert_int_equal(td_tokenizer_encode(t, "hello", 5, NULL, 0, &n), TD_OK);
    assert_int_equal(n, 5);
    assert_int_equal(td_tokenizer_encode(t, "hello", 5, ids, 5, &n), TD_OK);
    n = 0;
    assert_int_equal(td_tokenizer_encode(t, "hello", 5, ids, 4, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(n, 5);
    assert_non_null(strstr(td_last_error_message(), "needs 5"));

    /* decode: the buffer needs len + 1 for the NUL. */
    const int32_t hello[] = { 'h', 'e', 'l', 'l', 'o' };
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, NULL, 0, &n), TD_OK);
    assert_int_equal(n, 5);
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, out, 6, &n), TD_OK);
    assert_string_equal(out, "hello");
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, out, 5, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(n, 5);
    assert_string_equal(out, "hell"); /* NUL-terminated prefix, like snprintf */
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, out, 0, &n), TD_ERR_INVALID_ARG);

    /* ids outside the vocabulary. */
    const int32_t neg[] = { 'a', -1 }, big[] = { 258 };
    assert_int_equal(td_tokenizer_decode(t, neg, 2, NULL, out, sizeof out, &n),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "ids[1]"));
    assert_int_equal(td_tokenizer_decode(t, big, 1, NULL, out, sizeof out, &n),
                     TD_ERR_INVALID_ARG);

    /* NULL arguments. */
    assert_int_equal(td_tokenizer_encode(NULL, "a", 1, ids, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_encode(t, "a", 1, ids, 8, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_encode(t, NULL, 1, ids, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_encode(t, "a", 1, NULL, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_decode(NULL, hello, 5, NULL, out, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_decode(t, NULL, 5, NULL, out, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, NULL, 8, &n), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_decode(t, hello, 5, NULL, out, 8, NULL), TD_ERR_INVALID_ARG);
    assert_int_equal(td_tokenizer_create_byte(NULL, NULL), TD_ERR_INVALID_ARG);
    tdi_tokenizer *u = t;
    assert_int_equal(td_tokenizer_create_char(NULL, 3, 0, NULL, &u), TD_ERR_INVALID_ARG);
    assert_null(u);
    assert_int_equal(td_tokenizer_create_char("", 0, 0, NULL, &u), TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_tokenizer_serialize(t, NULL, 4, &n), TD_ERR_INVALID_ARG);
    td_allocator partial = { test_heap_malloc, NULL, test_heap_free, NULL };
    assert_int_equal(td_tokenizer_create_byte(&partial, &u), TD_ERR_INVALID_ARG);
    td_tokenizer_free(t);
}

/* ---- character-level ------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_char_vocabulary_sorted_and_complete(void **state)
{
    (void)state;
    /* Characters from every UTF-8 length, drawn at random into a text. */
    static const uint32_t pool[] = { 'e', ' ', 'T', '\n', 0, 0x7F, 0xE9, 0xEF, 0x100, 0x3B1,
                                     0x7FF, 0x800, 0x2713, 0x4E2D, 0xD7FF, 0xE000, 0xFFFD,
                                     0xFFFF, 0x10000, 0x1F600, 0x10FFFF };
    enum { POOL = sizeof pool / sizeof pool[0], N_CHARS = 3000 };
    static uint32_t seq[N_CHARS];
    static char text[N_CHARS * 4];
    static int32_t ids[N_CHARS];
    static char back[N_CHARS * 4 + 1];
    uint32_t expect[POOL];
    unsigned char used[POOL] = { 0 };
    tdi_rng r;
    tdi_rng_seed(&r, 7);
    size_t len = 0;
    for (int i = 0; i < N_CHARS; i++) {
        size_t j = (size_t)tdi_rng_below(&r, POOL - 3); /* the last 3 never occur */
        used[j] = 1;
        seq[i] = pool[j];
        len += ref_encode(pool[j], (unsigned char *)text + len);
    }
    size_t n_expect = 0;
    for (size_t j = 0; j < POOL; j++)
        if (used[j]) expect[n_expect++] = pool[j];
    qsort(expect, n_expect, sizeof *expect, cmp_u32);

    tdi_tokenizer *t;
    assert_int_equal(td_tokenizer_create_char(text, len, 0, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(t), TDI_TOKENIZER_CHAR);
    assert_int_equal(tdi_tokenizer_n_symbols(t), n_expect);
    assert_memory_equal(tdi_tokenizer_code_points(t), expect, n_expect * sizeof *expect);
    assert_int_equal(tdi_tokenizer_mask_id(t), (int32_t)n_expect);
    assert_int_equal(tdi_tokenizer_pad_id(t), (int32_t)n_expect + 1);
    assert_int_equal(tdi_tokenizer_unk_id(t), -1);
    assert_int_equal(tdi_tokenizer_vocab_size(t), n_expect + 2);

    size_t n, m;
    assert_int_equal(td_tokenizer_encode(t, text, len, ids, N_CHARS, &n), TD_OK);
    assert_int_equal(n, N_CHARS);
    const uint32_t *cps = tdi_tokenizer_code_points(t);
    for (int i = 0; i < N_CHARS; i++) assert_int_equal(cps[ids[i]], seq[i]);
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, back, sizeof back, &m), TD_OK);
    assert_int_equal(m, len);
    assert_memory_equal(back, text, len);

    /* A character the text never had: no [UNK], so encoding fails. */
    unsigned char absent[4];
    size_t k = ref_encode(pool[POOL - 1], absent);
    assert_int_equal(td_tokenizer_encode(t, (const char *)absent, k, ids, N_CHARS, &n),
                     TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "U+10FFFF"));
    td_tokenizer_free(t);
}

static void test_char_invalid_utf8(void **state)
{
    (void)state;
    /* Overlong, surrogate, truncated-in-the-middle, lone continuation bytes,
     * above U+10FFFF, and a sequence cut off by the end of the text. */
    static const char bad[] = "ok \xC0\xAF \xED\xA0\x80 \xE2\x82x \x80\xBF \xF4\x90\x80\x80 "
                              "\xC3\xA9 \xF0\x9F\x98";
    static const char fixed[] = "ok \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                                "\xEF\xBF\xBDx \xEF\xBF\xBD\xEF\xBF\xBD "
                                "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                                "\xC3\xA9 \xEF\xBF\xBD";
    tdi_tokenizer *t;
    assert_int_equal(td_tokenizer_create_char(bad, sizeof bad - 1, 0, NULL, &t), TD_OK);
    const uint32_t want[] = { ' ', 'k', 'o', 'x', 0xE9, 0xFFFD };
    assert_int_equal(tdi_tokenizer_n_symbols(t), 6);
    assert_memory_equal(tdi_tokenizer_code_points(t), want, sizeof want);

    int32_t ids[64], ids2[64];
    char out[128];
    size_t n, n2, m;
    assert_int_equal(td_tokenizer_encode(t, bad, sizeof bad - 1, ids, 64, &n), TD_OK);
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, out, sizeof out, &m), TD_OK);
    assert_int_equal(m, sizeof fixed - 1);
    assert_string_equal(out, fixed);
    /* The replaced text is a fixed point. */
    assert_int_equal(td_tokenizer_encode(t, out, m, ids2, 64, &n2), TD_OK);
    assert_int_equal(n2, n);
    assert_memory_equal(ids2, ids, n * sizeof *ids);
    /* And it is what the sanitizer makes of the input. */
    char san[128];
    assert_int_equal(tdi_utf8_sanitize(bad, sizeof bad - 1, san, sizeof san, &m), TD_OK);
    assert_string_equal(san, fixed);
    td_tokenizer_free(t);
}

static void test_char_cap_and_unk(void **state)
{
    (void)state;
    tdi_tokenizer *t;
    /* counts: a 4, b 3, c 3, d 1 -> keep a and (tie at 3) the smaller b. */
    const char *text = "dcccbbbaaaa";
    assert_int_equal(td_tokenizer_create_char(text, strlen(text), 2, NULL, &t), TD_OK);
    const uint32_t want[] = { 'a', 'b' };
    assert_int_equal(tdi_tokenizer_n_symbols(t), 2);
    assert_memory_equal(tdi_tokenizer_code_points(t), want, sizeof want);
    assert_int_equal(tdi_tokenizer_mask_id(t), 2);
    assert_int_equal(tdi_tokenizer_pad_id(t), 3);
    assert_int_equal(tdi_tokenizer_unk_id(t), 4);
    assert_int_equal(tdi_tokenizer_vocab_size(t), 5);

    int32_t ids[16];
    size_t n, m;
    assert_int_equal(td_tokenizer_encode(t, "abc\xE2\x9C\x93" "d", 7, ids, 16, &n), TD_OK);
    const int32_t want_ids[] = { 0, 1, 4, 4, 4 };
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    char out[32];
    assert_int_equal(td_tokenizer_decode(t, ids, n, NULL, out, sizeof out, &m), TD_OK);
    assert_string_equal(out, "ab\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    td_tokenizer_free(t);

    /* A cap above the number of characters keeps them all, still with [UNK]. */
    assert_int_equal(td_tokenizer_create_char(text, strlen(text), 100, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_n_symbols(t), 4);
    assert_int_equal(tdi_tokenizer_unk_id(t), 6);
    td_tokenizer_free(t);
}

static void test_char_from_code_points_validates(void **state)
{
    (void)state;
    tdi_tokenizer *t = NULL;
    const uint32_t ok[] = { 'a', 0x1F600 };
    const uint32_t unsorted[] = { 'b', 'a' }, dup[] = { 'a', 'a' };
    const uint32_t surrogate[] = { 'a', 0xD800 }, too_big[] = { 0x110000 };
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(ok, 2, 1, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_vocab_size(t), 5);
    td_tokenizer_free(t);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(unsorted, 2, 0, NULL, &t),
                     TD_ERR_INVALID_ARG);
    assert_null(t);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(dup, 2, 0, NULL, &t),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(surrogate, 2, 0, NULL, &t),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(too_big, 1, 0, NULL, &t),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(ok, 0, 0, NULL, &t),
                     TD_ERR_INVALID_ARG);
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(ok, TDI_TOKENIZER_MAX_VOCAB - 2,
                                                                1, NULL, &t),
                     TD_ERR_INVALID_ARG);
}

/* ---- descriptions --------------------------------------------------------- */

static void test_serialize_roundtrip(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t size = 0;
    tdi_tokenizer *t, *u;

    assert_int_equal(td_tokenizer_create_byte(NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_serialize(t, NULL, 0, &size), TD_OK);
    assert_int_equal(size, 16);
    assert_int_equal(tdi_tokenizer_serialize(t, buf, size, &size), TD_OK);
    assert_memory_equal(buf, "TDTK\x01\x01\x00\x00\x00\x01\x00\x00", 12);
    assert_int_equal(tdi_tokenizer_deserialize(buf, size, NULL, &u), TD_OK);
    assert_int_equal(tdi_tokenizer_kind_of(u), TDI_TOKENIZER_BYTE);
    assert_int_equal(tdi_tokenizer_vocab_size(u), 258);
    td_tokenizer_free(u);
    td_tokenizer_free(t);

    const uint32_t cps[] = { '\n', ' ', 'a', 'z', 0xE9, 0x2713, 0x1F600, 0x10FFFF };
    for (int with_unk = 0; with_unk <= 1; with_unk++) {
        assert_int_equal(tdi_tokenizer_create_char_from_code_points(cps, 8, with_unk, NULL, &t),
                         TD_OK);
        assert_int_equal(tdi_tokenizer_serialize(t, NULL, 0, &size), TD_OK);
        /* deltas 10, 22, 65, 25, 111 (1 byte each), 9946 (2), 120045 (3), 989695 (3) */
        assert_int_equal(size, 12 + 5 + 2 + 3 + 3 + 4);
        assert_int_equal(tdi_tokenizer_serialize(t, buf, size - 1, &size), TD_ERR_INVALID_ARG);
        assert_int_equal(tdi_tokenizer_serialize(t, buf, sizeof buf, &size), TD_OK);
        assert_int_equal(buf[6], with_unk);
        assert_int_equal(tdi_tokenizer_deserialize(buf, size, NULL, &u), TD_OK);
        assert_int_equal(tdi_tokenizer_kind_of(u), TDI_TOKENIZER_CHAR);
        assert_int_equal(tdi_tokenizer_n_symbols(u), 8);
        assert_memory_equal(tdi_tokenizer_code_points(u), cps, sizeof cps);
        assert_int_equal(tdi_tokenizer_unk_id(u), with_unk ? 10 : -1);
        assert_int_equal(tdi_tokenizer_vocab_size(u), tdi_tokenizer_vocab_size(t));
        /* The rebuilt tokenizer encodes like the original. */
        const char *s = "a z\n\xF0\x9F\x98\x80\xC3\xA9";
        int32_t a[16], b[16];
        size_t na, nb;
        assert_int_equal(td_tokenizer_encode(t, s, strlen(s), a, 16, &na), TD_OK);
        assert_int_equal(td_tokenizer_encode(u, s, strlen(s), b, 16, &nb), TD_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
        td_tokenizer_free(u);
        td_tokenizer_free(t);
    }
}

/* A description with the given body and a correct CRC, so that only the
 * content checks can reject it. */
static size_t with_crc(unsigned char *buf, size_t body)
{
    uLong crc = crc32(0L, buf, (uInt)body);
    for (int i = 0; i < 4; i++) buf[body + (size_t)i] = (unsigned char)(crc >> (8 * i));
    return body + 4;
}

static td_status load(const unsigned char *buf, size_t size)
{
    tdi_tokenizer *t = (tdi_tokenizer *)1;
    td_status st = tdi_tokenizer_deserialize(buf, size, NULL, &t);
    if (st == TD_OK) td_tokenizer_free(t);
    else assert_null(t);
    return st;
}

static void test_deserialize_rejects_corruption(void **state)
{
    (void)state;
    const uint32_t cps[] = { '\n', ' ', 'a', 'z', 0xE9, 0x2713, 0x1F600 };
    tdi_tokenizer *t;
    unsigned char good[64], buf[64];
    size_t size;
    assert_int_equal(tdi_tokenizer_create_char_from_code_points(cps, 7, 1, NULL, &t), TD_OK);
    assert_int_equal(tdi_tokenizer_serialize(t, good, sizeof good, &size), TD_OK);
    td_tokenizer_free(t);
    assert_int_equal(load(good, size), TD_OK);

    /* Every single-bit flip and every truncation is caught. */
    for (size_t i = 0; i < size; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, good, size);
            buf[i] ^= (unsigned char)(1u << bit);
            td_status st = load(buf, size);
            if (i < 4) assert_int_equal(st, TD_ERR_FORMAT);
            else if (i == 4 && buf[4] == 3) assert_int_equal(st, TD_ERR_CORRUPT); /* EOS's */
            else if (i == 4) assert_int_equal(st, TD_ERR_VERSION);
            else assert_int_equal(st, TD_ERR_CORRUPT);
        }
    for (size_t n = 0; n < size; n++)
        assert_int_equal(load(good, n), n < 4 ? TD_ERR_FORMAT : TD_ERR_CORRUPT);
    memcpy(buf, good, size);
    buf[size] = 0;
    assert_int_equal(load(buf, size + 1), TD_ERR_CORRUPT);
    assert_int_equal(tdi_tokenizer_deserialize(NULL, 4, NULL, &t), TD_ERR_INVALID_ARG);

    /* Well-checksummed but invalid content. */
    static const struct { const char *what; unsigned char bytes[24]; size_t body; td_status st; }
    cases[] = {
        { "version 4", { 'T','D','T','K', 4, 1, 0, 0, 0,1,0,0 }, 12, TD_ERR_VERSION },
        { "version 3, no EOS", { 'T','D','T','K', 3, 1, 0, 0, 0,1,0,0 }, 12, TD_ERR_CORRUPT },
        { "version 3, char kind", { 'T','D','T','K', 3, 2, 2, 0, 1,0,0,0, 'a' }, 13,
          TD_ERR_CORRUPT },
        { "version 3, unk", { 'T','D','T','K', 3, 1, 3, 0, 0,1,0,0 }, 12, TD_ERR_CORRUPT },
        { "EOS in version 1", { 'T','D','T','K', 1, 1, 2, 0, 0,1,0,0 }, 12, TD_ERR_CORRUPT },
        { "version 2, byte kind", { 'T','D','T','K', 2, 1, 0, 0, 0,1,0,0 }, 12, TD_ERR_CORRUPT },
        { "kind 3", { 'T','D','T','K', 1, 3, 0, 0, 1,0,0,0, 'a' }, 13, TD_ERR_CORRUPT },
        { "unknown flag", { 'T','D','T','K', 1, 2, 2, 0, 1,0,0,0, 'a' }, 13, TD_ERR_CORRUPT },
        { "reserved", { 'T','D','T','K', 1, 2, 0, 9, 1,0,0,0, 'a' }, 13, TD_ERR_CORRUPT },
        { "byte with unk", { 'T','D','T','K', 1, 1, 1, 0, 0,1,0,0 }, 12, TD_ERR_CORRUPT },
        { "byte, 255", { 'T','D','T','K', 1, 1, 0, 0, 255,0,0,0 }, 12, TD_ERR_CORRUPT },
        { "byte, extra", { 'T','D','T','K', 1, 1, 0, 0, 0,1,0,0, 0 }, 13, TD_ERR_CORRUPT },
        { "no symbols", { 'T','D','T','K', 1, 2, 0, 0, 0,0,0,0 }, 12, TD_ERR_CORRUPT },
        { "n beyond data", { 'T','D','T','K', 1, 2, 0, 0, 3,0,0,0, 'a', 1 }, 14, TD_ERR_CORRUPT },
        { "n huge", { 'T','D','T','K', 1, 2, 0, 0, 255,255,255,255, 'a' }, 13, TD_ERR_CORRUPT },
        { "zero delta", { 'T','D','T','K', 1, 2, 0, 0, 2,0,0,0, 'a', 0 }, 14, TD_ERR_CORRUPT },
        { "overlong varint", { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 0xE1, 0x00 }, 14,
          TD_ERR_CORRUPT },
        { "4-byte varint", { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 0x80,0x80,0x80,0x01 }, 16,
          TD_ERR_CORRUPT },
        { "unterminated", { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 0x80 }, 13, TD_ERR_CORRUPT },
        { "surrogate", { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 0x80,0xB0,0x03 }, 15,
          TD_ERR_CORRUPT },
        { "above 10FFFF", { 'T','D','T','K', 1, 2, 0, 0, 2,0,0,0, 0xFF,0xFF,0x43, 0x01 }, 16,
          TD_ERR_CORRUPT },
        { "stray bytes", { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 'a', 'b' }, 14, TD_ERR_CORRUPT },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(buf, cases[c].bytes, cases[c].body);
        size_t n = with_crc(buf, cases[c].body);
        td_status st = load(buf, n);
        if (st != cases[c].st)
            fail_msg("%s: status %d, want %d (%s)", cases[c].what, st, cases[c].st,
                     td_last_error_message());
    }
    /* The same frame with valid content is accepted: the cases above fail
     * for the reason they name. */
    static const unsigned char valid[] = { 'T','D','T','K', 1, 2, 1, 0, 2,0,0,0, 'a', 1 };
    memcpy(buf, valid, sizeof valid);
    assert_int_equal(load(buf, with_crc(buf, sizeof valid)), TD_OK);
    static const unsigned char max_cp[] = { 'T','D','T','K', 1, 2, 0, 0, 1,0,0,0, 0xFF,0xFF,0x43 };
    memcpy(buf, max_cp, sizeof max_cp);
    assert_int_equal(load(buf, with_crc(buf, sizeof max_cp)), TD_OK);
}

/* ---- allocation failures -------------------------------------------------- */

typedef td_status (*make_fn)(const td_allocator *a, tdi_tokenizer **out);

static td_status make_char(const td_allocator *a, tdi_tokenizer **out)
{
    const char *s = "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80 \xFF";
    return td_tokenizer_create_char(s, strlen(s), 3, a, out);
}

static td_status make_byte(const td_allocator *a, tdi_tokenizer **out)
{
    return td_tokenizer_create_byte(a, out);
}

static td_status make_loaded(const td_allocator *a, tdi_tokenizer **out)
{
    static const uint32_t cps[] = { 'a', 'b', 0x1F600 };
    unsigned char buf[64];
    size_t size;
    tdi_tokenizer *t;
    if (tdi_tokenizer_create_char_from_code_points(cps, 3, 0, NULL, &t) != TD_OK)
        return TD_ERR_INTERNAL;
    td_status st = tdi_tokenizer_serialize(t, buf, sizeof buf, &size);
    td_tokenizer_free(t);
    if (st != TD_OK) return st;
    return tdi_tokenizer_deserialize(buf, size, a, out);
}

static void fail_each_allocation(make_fn make)
{
    test_heap heap;
    td_allocator a = test_heap_allocator(&heap);
    for (long k = 0;; k++) {
        heap.calls = 0;
        heap.fail_at = k;
        tdi_tokenizer *t = (tdi_tokenizer *)1;
        td_status st = make(&a, &t);
        if (st == TD_OK) {
            assert_true(k > 0);
            assert_non_null(t);
            td_tokenizer_free(t);
            assert_int_equal(heap.live, 0);
            return;
        }
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_null(t);
        assert_int_equal(heap.live, 0);
        assert_true(k < 100);
    }
}

static void test_allocation_failures(void **state)
{
    (void)state;
    fail_each_allocation(make_byte);
    fail_each_allocation(make_char);
    fail_each_allocation(make_loaded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_put_matches_reference),
        cmocka_unit_test(test_utf8_next_exhaustive),
        cmocka_unit_test(test_utf8_unicode_table_3_8),
        cmocka_unit_test(test_byte_vocabulary),
        cmocka_unit_test(test_byte_roundtrips),
        cmocka_unit_test(test_decode_specials),
        cmocka_unit_test(test_size_and_argument_errors),
        cmocka_unit_test(test_char_vocabulary_sorted_and_complete),
        cmocka_unit_test(test_char_invalid_utf8),
        cmocka_unit_test(test_char_cap_and_unk),
        cmocka_unit_test(test_char_from_code_points_validates),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test(test_byte_eos),
        cmocka_unit_test(test_deserialize_rejects_corruption),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
