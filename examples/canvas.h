/* The canvas the sample example generates into, from the command line's
 * text. Not part of the library. */
#ifndef TD_EXAMPLES_CANVAS_H
#define TD_EXAMPLES_CANVAS_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

enum {
    CANVAS_TEMPLATE = 1, /* text is a template, not a prompt */
    CANVAS_FRAMED = 2    /* [CLS] ... [SEP] (<s> ... </s>) around the canvas */
};

/* One canvas row (malloc'ed into *row) for `text`; mode is 0 or a set of
 * the flags above:
 *  - a prompt: its ids first, then [MASK] up to *len positions;
 *  - a template (CANVAS_TEMPLATE): every '_' becomes one [MASK], the text
 *    between gaps is encoded run by run and kept, and *len becomes the
 *    template's length in ids;
 *  - framed (CANVAS_FRAMED): the tokenizer's [CLS] first and [SEP] last,
 *    counted in *len, as BERT and RoBERTa frame a sequence.
 * Returns TD_OK, a status of the tokenizer's (td_last_error_message() says
 * why), or TD_ERR_INVALID_ARG with *why set: a prompt longer than *len, an
 * empty template, or framing with a tokenizer that has no [CLS]/[SEP]. */
td_status canvas_row(const td_tokenizer *tok, const char *text, size_t text_len, int mode,
                     int32_t *len, int32_t **row, const char **why);

#endif
