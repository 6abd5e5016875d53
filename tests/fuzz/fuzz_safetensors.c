/* libFuzzer target for the safetensors reader (tdi_st_parse): any input is
 * refused with a status or accepted with every tensor's bytes inside the
 * input, in order, not overlapping, and readable as float32. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdi_st *st = NULL;
    if (tdi_st_parse(data, size, NULL, &st) != TD_OK) {
        CHECK(st == NULL);
        return 0;
    }
    for (uint32_t i = 0; i < st->n; i++) {
        const tdi_st_tensor *t = &st->tensors[i];
        CHECK(t->data >= data && t->data + (t->end - t->begin) <= data + size);
        CHECK(tdi_st_find(st, t->name) == t);
        if (i > 0) CHECK(strcmp(st->tensors[i - 1].name, t->name) < 0);
        float *f = malloc(t->count ? t->count * sizeof *f : 1);
        CHECK(tdi_st_read_f32(t, f) <= t->count);
        free(f);
    }
    tdi_st_free(st);
    return 0;
}
