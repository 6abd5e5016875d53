/* Text statistics: hand-counted examples, and random texts against a naive
 * quadratic recount of every figure. */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/test_alloc_hooks.h"
#include "textdiff/textdiff.h"

static td_text_stats stats_of(const char *text, const char *ref)
{
    td_text_stats r = { .struct_size = sizeof r };
    assert_int_equal(td_text_stats_compute(text, strlen(text), ref, ref ? strlen(ref) : 0, NULL,
                                           &r), TD_OK);
    return r;
}

static void test_hand_counted(void **state)
{
    (void)state;
    td_text_stats r = stats_of("the cat, The CAT; the dog.", "and the dog barked");
    assert_int_equal(r.n_bytes, 26);
    assert_int_equal(r.n_words, 6);
    assert_true(r.distinct_1 == 3.0 / 6);
    assert_true(r.distinct_2 == 3.0 / 5);
    assert_true(r.distinct_3 == 3.0 / 4);
    double h = -(0.5 * log2(0.5) + (2.0 / 6) * log2(2.0 / 6) + (1.0 / 6) * log2(1.0 / 6));
    assert_true(fabs(r.word_entropy_bits - h) < 1e-12);
    assert_true(r.known_words == 4.0 / 6); /* the ×3, dog; not cat ×2 */

    r = stats_of("aaaaaaaa", NULL); /* one 4-gram covers everything */
    assert_true(r.repetition == 1.0);
    assert_true(isnan(r.known_words));
    assert_true(isnan(r.distinct_2)); /* one word */
    r = stats_of("", NULL);
    assert_int_equal(r.n_words, 0);
    assert_true(isnan(r.distinct_1) && isnan(r.word_entropy_bits) && isnan(r.repetition));
    r = stats_of("don't stop, naïve café", NULL);
    assert_int_equal(r.n_words, 4);
}

/* ---- the naive recount --------------------------------------------------- */

typedef struct span { size_t at, len; } span;

static int wordy(unsigned char c) { return isalnum(c) || c == '\'' || c >= 0x80; }

static size_t naive_words(const char *t, size_t n, span *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (!wordy((unsigned char)t[i])) { i++; continue; }
        size_t j = i;
        while (j < n && wordy((unsigned char)t[j])) j++;
        out[k++] = (span){ i, j - i };
        i = j;
    }
    return k;
}

static int same_word(const char *a, span x, const char *b, span y)
{
    if (x.len != y.len) return 0;
    for (size_t i = 0; i < x.len; i++)
        if (tolower((unsigned char)a[x.at + i]) != tolower((unsigned char)b[y.at + i])) return 0;
    return 1;
}

static double naive_distinct(const char *t, const span *w, size_t nw, size_t n)
{
    if (nw < n) return NAN;
    size_t total = nw - n + 1, uniq = 0;
    for (size_t i = 0; i < total; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            int eq = 1;
            for (size_t k = 0; k < n && eq; k++) eq = same_word(t, w[i + k], t, w[j + k]);
            seen = eq;
        }
        uniq += !seen;
    }
    return (double)uniq / (double)total;
}

static double naive_repetition(const char *t, size_t n)
{
    if (n < 4) return NAN;
    size_t total = n - 3;
    size_t *count = calloc(total, sizeof *count);
    for (size_t i = 0; i < total; i++)
        for (size_t j = 0; j < total; j++) count[i] += memcmp(t + i, t + j, 4) == 0;
    /* The 10 most frequent distinct 4-grams, ties broken by the smaller
     * little-endian value, as the library documents. */
    size_t top[10];
    int n_top = 0;
    for (int k = 0; k < 10; k++) {
        size_t best = total;
        for (size_t i = 0; i < total; i++) {
            int taken = 0;
            for (int q = 0; q < n_top; q++) taken |= memcmp(t + top[q], t + i, 4) == 0;
            if (taken) continue;
            uint32_t gi, gb = 0;
            memcpy(&gi, t + i, 4);
            if (best < total) memcpy(&gb, t + best, 4);
            if (best == total || count[i] > count[best] || (count[i] == count[best] && gi < gb))
                best = i;
        }
        if (best == total) break;
        top[n_top++] = best;
    }
    size_t covered = 0;
    for (size_t b = 0; b < n; b++) {
        int c = 0;
        for (size_t i = b >= 3 ? b - 3 : 0; i <= b && i < total && !c; i++)
            for (int q = 0; q < n_top && !c; q++) c = memcmp(t + top[q], t + i, 4) == 0;
        covered += (size_t)c;
    }
    free(count);
    return (double)covered / (double)n;
}

static void test_random_texts_against_a_naive_recount(void **state)
{
    (void)state;
    static const char alphabet[] = "abAB  ,'\xc3\xa9";
    srand(7);
    for (int trial = 0; trial < 40; trial++) {
        size_t n = 1 + (size_t)(rand() % 300), nr = (size_t)(rand() % 100);
        char *t = malloc(n + 1), *ref = malloc(nr + 1);
        for (size_t i = 0; i < n; i++) t[i] = alphabet[rand() % (sizeof alphabet - 1)];
        for (size_t i = 0; i < nr; i++) ref[i] = alphabet[rand() % (sizeof alphabet - 1)];
        t[n] = ref[nr] = '\0';
        td_text_stats r = { .struct_size = sizeof r };
        assert_int_equal(td_text_stats_compute(t, n, ref, nr, NULL, &r), TD_OK);

        span *w = malloc((n + 1) * sizeof *w), *rw = malloc((nr + 1) * sizeof *rw);
        size_t nw = naive_words(t, n, w), nrw = naive_words(ref, nr, rw);
        assert_int_equal(r.n_words, nw);
        for (size_t k = 1; k <= 3; k++) {
            double d = naive_distinct(t, w, nw, k);
            double got = k == 1 ? r.distinct_1 : k == 2 ? r.distinct_2 : r.distinct_3;
            assert_true((isnan(d) && isnan(got)) || d == got);
        }
        double h = 0;
        for (size_t i = 0; i < nw; i++) {
            size_t c = 0;
            for (size_t j = 0; j < nw; j++) c += (size_t)same_word(t, w[i], t, w[j]);
            h -= log2((double)c / (double)nw) / (double)nw;
        }
        assert_true(nw == 0 ? isnan(r.word_entropy_bits) : fabs(r.word_entropy_bits - h) < 1e-9);
        size_t hits = 0;
        for (size_t i = 0; i < nw; i++) {
            int k = 0;
            for (size_t j = 0; j < nrw && !k; j++) k = same_word(t, w[i], ref, rw[j]);
            hits += (size_t)k;
        }
        assert_true(nw == 0 ? isnan(r.known_words) : r.known_words == (double)hits / (double)nw);
        double rep = naive_repetition(t, n);
        assert_true((isnan(rep) && isnan(r.repetition)) || rep == r.repetition);
        free(w); free(rw); free(t); free(ref);
    }
}

static void test_bad_arguments_and_allocation_failures(void **state)
{
    (void)state;
    td_text_stats r = { .struct_size = sizeof r };
    assert_int_equal(td_text_stats_compute(NULL, 3, NULL, 0, NULL, &r), TD_ERR_INVALID_ARG);
    assert_int_equal(td_text_stats_compute("abc", 3, NULL, 5, NULL, &r), TD_ERR_INVALID_ARG);
    assert_int_equal(td_text_stats_compute("abc", 3, NULL, 0, NULL, NULL), TD_ERR_INVALID_ARG);
    r.struct_size = 12;
    assert_int_equal(td_text_stats_compute("abc", 3, NULL, 0, NULL, &r), TD_ERR_INVALID_ARG);
    td_allocator bad = { NULL, NULL, NULL, NULL };
    r.struct_size = sizeof r;
    assert_int_equal(td_text_stats_compute("abc", 3, NULL, 0, &bad, &r), TD_ERR_INVALID_ARG);

    static const char text[] = "in the beginning god created the heaven and the earth";
    test_heap h;
    for (long k = 0;; k++) {
        td_allocator a = test_heap_allocator(&h);
        h.fail_at = k;
        td_status st = td_text_stats_compute(text, sizeof text - 1, text, 20, &a, &r);
        assert_int_equal(h.live, 0);
        if (st == TD_OK) break;
        assert_int_equal(st, TD_ERR_NOMEM);
        assert_true(k < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_counted),
        cmocka_unit_test(test_random_texts_against_a_naive_recount),
        cmocka_unit_test(test_bad_arguments_and_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
