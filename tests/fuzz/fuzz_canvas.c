/* libFuzzer target for prompts and infill templates as the sample example
 * turns them into a canvas (examples/canvas.c), under the byte tokenizer and
 * a character tokenizer with [UNK]. Input: one byte of options (bit 0:
 * template; bit 1: character tokenizer; bits 2-7: canvas length), then the
 * text. An accepted canvas has its length, ids inside the vocabulary,
 * [MASK] exactly where text is to be generated, and decodes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static td_tokenizer *g_byte, *g_char;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_byte == NULL) {
        static const char vocab[] = "In the beginning God created the heaven and the earth_.";
        CHECK(td_tokenizer_create_byte(NULL, &g_byte) == TD_OK);
        CHECK(td_tokenizer_create_char(vocab, sizeof vocab - 1, 12, NULL, &g_char) == TD_OK);
    }
    if (size < 1) return 0;
    const int infill = data[0] & 1;
    const td_tokenizer *tok = data[0] & 2 ? g_char : g_byte;
    int32_t len = data[0] >> 2, *row = NULL, vocab, mask;
    const char *text = (const char *)data + 1, *why = NULL;
    const size_t n = size - 1;
    td_status st = canvas_row(tok, text, n, infill, &len, &row, &why);
    if (st != TD_OK) {
        CHECK(row == NULL);
        return 0;
    }
    CHECK(why == NULL && row != NULL && len >= 1);
    td_tokenizer_vocab_size(tok, &vocab);
    td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask);
    size_t n_ids = 0;
    CHECK(td_tokenizer_encode(tok, text, n, NULL, 0, &n_ids) == TD_OK);
    if (infill) CHECK((size_t)len == n_ids);
    for (int32_t i = 0; i < len; i++) {
        CHECK(row[i] >= 0 && row[i] < vocab);
        if (!infill && (size_t)i >= n_ids) CHECK(row[i] == mask);
    }
    size_t out = 0;
    CHECK(td_tokenizer_decode(tok, row, (size_t)len, NULL, NULL, 0, &out) == TD_OK);
    free(row);
    return 0;
}
