/* libFuzzer targets for the Hugging Face tokenizer files, one per format
 * (HF_FORMAT): 1 vocab.txt (+ tokenizer_config.json after a NUL byte),
 * 2 vocab.json + merges.txt (separated by a NUL byte), 3 tokenizer.json.
 * Beyond "no crash, no leak": a rejected file leaves no tokenizer; an
 * accepted one encodes the input itself (as text) to ids inside the
 * vocabulary that decode without error, and its checkpoint description
 * reads back to the same ids. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/hf.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static td_status parse(const char *s, size_t n, tdi_hf **h)
{
    const char *nul = memchr(s, '\0', n);
    size_t first = nul ? (size_t)(nul - s) : n;
    const char *second = nul ? nul + 1 : NULL;
    size_t second_len = nul ? n - first - 1 : 0;
#if HF_FORMAT == 1
    return tdi_hf_parse_vocab_txt(s, first, second, second_len, NULL, h);
#elif HF_FORMAT == 2
    return tdi_hf_parse_vocab_json(s, first, second ? second : "", second_len, NULL, h);
#else
    (void)first;
    (void)second;
    (void)second_len;
    return tdi_hf_parse_tokenizer_json(s, n, NULL, h);
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    tdi_hf *h = NULL;
    if (parse(s, size, &h) != TD_OK) {
        CHECK(h == NULL);
        return 0;
    }
    tdi_tokenizer *t = NULL;
    CHECK(tdi_tokenizer_from_hf(h, NULL, &t) == TD_OK);
    int32_t vocab = 0;
    CHECK(td_tokenizer_vocab_size(t, &vocab) == TD_OK);
    size_t n = 0, n2 = 0, len = 0;
    CHECK(td_tokenizer_encode(t, s, size, NULL, 0, &n) == TD_OK);
    int32_t *ids = malloc((n + 1) * sizeof *ids), *ids2 = malloc((n + 1) * sizeof *ids);
    CHECK(td_tokenizer_encode(t, s, size, ids, n, &n) == TD_OK);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < vocab);
    CHECK(td_tokenizer_decode(t, ids, n, NULL, NULL, 0, &len) == TD_OK);
    char *text = malloc(len + 1);
    CHECK(td_tokenizer_decode(t, ids, n, NULL, text, len + 1, &len) == TD_OK);

    size_t dsize = 0;
    CHECK(tdi_tokenizer_serialize(t, NULL, 0, &dsize) == TD_OK);
    unsigned char *desc = malloc(dsize);
    CHECK(tdi_tokenizer_serialize(t, desc, dsize, &dsize) == TD_OK);
    tdi_tokenizer *u = NULL;
    CHECK(tdi_tokenizer_deserialize(desc, dsize, NULL, &u) == TD_OK);
    CHECK(td_tokenizer_encode(u, s, size, ids2, n, &n2) == TD_OK);
    CHECK(n2 == n && memcmp(ids, ids2, n * sizeof *ids) == 0);
    td_tokenizer_free(u);
    free(desc);
    free(text);
    free(ids2);
    free(ids);
    td_tokenizer_free(t);
    return 0;
}
