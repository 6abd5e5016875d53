#include "canvas.h"

#include <stdlib.h>

td_status canvas_row(const td_tokenizer *tok, const char *text, size_t text_len, int infill,
                     int32_t *len, int32_t **row, const char **why)
{
    *row = NULL;
    *why = NULL;
    int32_t mask, underscore = -1;
    size_t n_ids, one;
    td_status st = td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask);
    if (st == TD_OK) st = td_tokenizer_encode(tok, text, text_len, NULL, 0, &n_ids);
    if (st != TD_OK) return st;
    if (infill) {
        if (td_tokenizer_encode(tok, "_", 1, &underscore, 1, &one) != TD_OK || one != 1) {
            *why = "the model's tokenizer has no '_' to mark the gaps of a template";
            return TD_ERR_INVALID_ARG;
        }
        if (n_ids == 0 || n_ids > INT32_MAX) {
            *why = "the template is empty or too long";
            return TD_ERR_INVALID_ARG;
        }
        *len = (int32_t)n_ids;
    } else if (n_ids > (size_t)*len || *len < 1) {
        *why = "the prompt is longer than the canvas";
        return TD_ERR_INVALID_ARG;
    }
    int32_t *r = malloc(sizeof *r * (size_t)*len);
    if (r == NULL) {
        *why = "out of memory";
        return TD_ERR_NOMEM;
    }
    st = td_tokenizer_encode(tok, text, text_len, r, (size_t)*len, &n_ids);
    if (st != TD_OK) {
        free(r);
        return st;
    }
    for (int32_t i = 0; i < *len; i++)
        if ((size_t)i >= n_ids || (infill && r[i] == underscore)) r[i] = mask;
    *row = r;
    return TD_OK;
}
