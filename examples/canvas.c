#include "canvas.h"

#include <stdlib.h>
#include <string.h>

/* The template's ids, or with ids NULL just their number: each maximal run
 * of text between '_' encoded on its own, each '_' one [MASK] (so a
 * subword tokenizer cannot merge a gap into its neighbours). */
static td_status template_ids(const td_tokenizer *tok, const char *text, size_t text_len,
                              int32_t mask, int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    size_t i = 0;
    while (i < text_len) {
        if (text[i] == '_') {
            if (ids != NULL && *n < cap) ids[*n] = mask;
            ++*n;
            i++;
            continue;
        }
        const char *gap = memchr(text + i, '_', text_len - i);
        size_t run = gap ? (size_t)(gap - (text + i)) : text_len - i, got;
        td_status st = td_tokenizer_encode(tok, text + i, run, ids ? ids + *n : NULL,
                                           ids ? cap - *n : 0, &got);
        if (st != TD_OK) return st;
        *n += got;
        i += run;
    }
    return TD_OK;
}

td_status canvas_row(const td_tokenizer *tok, const char *text, size_t text_len, int mode,
                     int32_t *len, int32_t **row, const char **why)
{
    *row = NULL;
    *why = NULL;
    const int infill = (mode & CANVAS_TEMPLATE) != 0, framed = (mode & CANVAS_FRAMED) != 0;
    int32_t mask, cls = -1, sep = -1;
    size_t n_ids;
    td_status st = td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask);
    if (st != TD_OK) return st;
    if (framed && (td_tokenizer_special_id(tok, TD_TOKEN_CLS, &cls) != TD_OK ||
                   td_tokenizer_special_id(tok, TD_TOKEN_SEP, &sep) != TD_OK)) {
        *why = "the tokenizer has no [CLS]/<s> and [SEP]/</s> to frame the canvas";
        return TD_ERR_INVALID_ARG;
    }
    st = infill ? template_ids(tok, text, text_len, mask, NULL, 0, &n_ids)
                : td_tokenizer_encode(tok, text, text_len, NULL, 0, &n_ids);
    if (st != TD_OK) return st;
    const size_t frame = framed ? 2 : 0;
    if (infill) {
        if (n_ids == 0 || n_ids > INT32_MAX - frame) {
            *why = "the template is empty or too long";
            return TD_ERR_INVALID_ARG;
        }
        *len = (int32_t)(n_ids + frame);
    } else if (*len < 1 + (int32_t)frame || n_ids > (size_t)*len - frame) {
        *why = "the prompt is longer than the canvas";
        return TD_ERR_INVALID_ARG;
    }
    int32_t *r = malloc(sizeof *r * (size_t)*len);
    if (r == NULL) {
        *why = "out of memory";
        return TD_ERR_NOMEM;
    }
    int32_t *body = r + (framed ? 1 : 0);
    const size_t body_len = (size_t)*len - frame;
    st = infill ? template_ids(tok, text, text_len, mask, body, body_len, &n_ids)
                : td_tokenizer_encode(tok, text, text_len, body, body_len, &n_ids);
    if (st != TD_OK) {
        free(r);
        return st;
    }
    for (size_t i = n_ids; i < body_len; i++) body[i] = mask;
    if (framed) {
        r[0] = cls;
        r[*len - 1] = sep;
    }
    *row = r;
    return TD_OK;
}
