/* libFuzzer target for the tokenizer description stored in checkpoints
 * (tdi_tokenizer_deserialize). Beyond "no crash, no leak": an accepted
 * description serialises back to the same bytes, and every text encodes to
 * ids inside the vocabulary that decode without error. Each input is tried
 * as it is and with its last four bytes replaced by the CRC-32 of the rest,
 * so that mutations reach the parser behind the checksum. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size < 4) return 0;
    uint8_t *fixed = malloc(size);
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) fixed[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    one(fixed, size);
    free(fixed);
    return 0;
}

static void one(const uint8_t *data, size_t size)
{
    tdi_tokenizer *t = NULL;
    if (tdi_tokenizer_deserialize(data, size, NULL, &t) != TD_OK) {
        CHECK(t == NULL);
        return;
    }
    size_t n = 0;
    CHECK(tdi_tokenizer_serialize(t, NULL, 0, &n) == TD_OK);
    unsigned char *back = malloc(n);
    CHECK(tdi_tokenizer_serialize(t, back, n, &n) == TD_OK);
    CHECK(n == size && memcmp(back, data, n) == 0);
    free(back);

    /* The input itself as text: [UNK] or an error for unknown characters,
     * never an id outside the vocabulary. */
    int32_t vocab;
    CHECK(td_tokenizer_vocab_size(t, &vocab) == TD_OK);
    size_t n_ids = 0;
    td_status st = td_tokenizer_encode(t, (const char *)data, size, NULL, 0, &n_ids);
    if (st == TD_OK && n_ids > 0) {
        int32_t *ids = malloc(n_ids * sizeof *ids);
        CHECK(td_tokenizer_encode(t, (const char *)data, size, ids, n_ids, &n_ids) == TD_OK);
        for (size_t i = 0; i < n_ids; i++) CHECK(ids[i] >= 0 && ids[i] < vocab);
        size_t len = 0;
        CHECK(td_tokenizer_decode(t, ids, n_ids, NULL, NULL, 0, &len) == TD_OK);
        char *text = malloc(len + 1);
        CHECK(td_tokenizer_decode(t, ids, n_ids, NULL, text, len + 1, &len) == TD_OK);
        free(text);
        free(ids);
    }
    td_tokenizer_free(t);
}
