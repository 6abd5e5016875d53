/* The canvas the sample example generates into, from the command line's
 * text. Not part of the library. */
#ifndef TD_EXAMPLES_CANVAS_H
#define TD_EXAMPLES_CANVAS_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

/* One canvas row (malloc'ed into *row) for `text`:
 *  - a prompt (infill 0): its ids first, then [MASK] up to *len positions;
 *  - a template (infill 1): every '_' becomes [MASK], everything else is
 *    kept, and *len becomes the template's length in ids.
 * Returns TD_OK, a status of the tokenizer's (td_last_error_message() says
 * why), or TD_ERR_INVALID_ARG with *why set: a prompt longer than *len, an
 * empty template, or a template whose tokenizer has no '_'. */
td_status canvas_row(const td_tokenizer *tok, const char *text, size_t text_len, int infill,
                     int32_t *len, int32_t **row, const char **why);

#endif
