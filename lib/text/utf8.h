/* UTF-8 decoding with the Unicode Standard's "substitution of maximal
 * subparts" (§3.9, Table 3-8; also the WHATWG Encoding Standard): every
 * ill-formed piece of input becomes exactly one U+FFFD, and decoding resumes
 * at the first byte that cannot continue the piece. Overlong forms, surrogates
 * (U+D800..DFFF), values above U+10FFFF, lone continuation bytes and truncated
 * sequences are all ill-formed. */
#ifndef TDI_UTF8_H
#define TDI_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "textdiff/textdiff.h"

#define TDI_UTF8_REPLACEMENT 0xFFFDu
#define TDI_UTF8_MAX_SCALAR 0x10FFFFu

/* Decode the code point at s[0..n), n >= 1. Returns the bytes consumed
 * (1..4) and stores the scalar value, or U+FFFD for an ill-formed maximal
 * subpart. */
size_t tdi_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* Encode a Unicode scalar value (not a surrogate, <= U+10FFFF) into out[0..4);
 * returns its length 1..4. */
size_t tdi_utf8_put(uint32_t cp, unsigned char out[4]);

/* 1 for a Unicode scalar value: <= U+10FFFF and not a surrogate. */
static inline int tdi_utf8_is_scalar(uint32_t cp)
{
    return cp <= TDI_UTF8_MAX_SCALAR && (cp < 0xD800u || cp > 0xDFFFu);
}

/* Copy `in` to `out` with each ill-formed subpart replaced by U+FFFD, so that
 * arbitrary bytes (e.g. the output of a byte-level model) become valid UTF-8.
 * snprintf convention: *len receives the length of the full result (without
 * the terminating NUL); with out == NULL and cap == 0 that is all it does.
 * Otherwise a result that does not fit in cap - 1 bytes fails with
 * TD_ERR_INVALID_ARG, leaving a NUL-terminated prefix in out. */
td_status tdi_utf8_sanitize(const char *in, size_t n, char *out, size_t cap, size_t *len);

#endif
