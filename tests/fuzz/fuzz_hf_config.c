/* libFuzzer target for config.json of Hugging Face models
 * (tdi_hf_parse_config): any input is refused with a status, or gives a
 * configuration that tdi_model_config_validate accepts. */
#include <stddef.h>
#include <stdint.h>

#include "model/hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdi_model_config c;
    hf_kind kind;
    if (tdi_hf_parse_config((const char *)data, size, 3, &c, &kind) == TD_OK) {
        CHECK(tdi_model_config_validate(&c) == TD_OK);
        CHECK(kind == HF_BERT || kind == HF_ROBERTA || kind == HF_DISTILBERT);
    }
    return 0;
}
