/* libFuzzer target for the corpus reader (plain text or gzip, several
 * members, truncated streams, bad trailers) and what follows it: a character
 * vocabulary built from the text, the text tokenised with it and with the
 * byte tokenizer, and the split. An accepted text decodes back to itself
 * through the byte tokenizer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/corpus.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    if (tdi_corpus_read_buffer(data, size, (size_t)1 << 20, NULL, &text, &len) != TD_OK) {
        CHECK(text == NULL);
        return 0;
    }
    CHECK(text[len] == '\0');
    int gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!gzip) CHECK(len == size && (size == 0 || memcmp(text, data, size) == 0));
    tdi_tokenizer *byte = NULL, *chr = NULL;
    CHECK(td_tokenizer_create_byte(NULL, &byte) == TD_OK);
    if (len > 0 && td_tokenizer_create_char(text, len, (uint32_t)(size % 5), NULL, &chr) == TD_OK) {
        tdi_split_opts o = { 1 + size % 7, (uint32_t)(size % 4 == 1 ? 0 : size % 4), NULL };
        tdi_corpus *c = NULL;
        if (tdi_corpus_create(text, len, chr, &o, NULL, &c) == TD_OK) {
            size_t n;
            const int32_t *ids = tdi_corpus_tokens(c, &n);
            int32_t vocab;
            td_tokenizer_vocab_size(chr, &vocab);
            for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < vocab);
            uint64_t train = 0, valid = 0;
            td_corpus_num_tokens(c, TD_SPLIT_TRAIN, &train);
            td_corpus_num_tokens(c, TD_SPLIT_VALID, &valid);
            CHECK(train + valid == n);
            tdi_corpus_free(c);
        }
        td_tokenizer_free(chr);
    }
    if (len > 0) {
        tdi_corpus *c = NULL;
        CHECK(tdi_corpus_create(text, len, byte, NULL, NULL, &c) == TD_OK);
        size_t n;
        const int32_t *ids = tdi_corpus_tokens(c, &n);
        CHECK(n == len);
        for (size_t i = 0; i < n; i++) CHECK(ids[i] == (unsigned char)text[i]);
        tdi_corpus_free(c);
    }
    td_tokenizer_free(byte);
    tdi_corpus_text_free(NULL, text);
    return 0;
}
