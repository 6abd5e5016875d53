#include "text/utf8.h"

#include "util/error.h"

size_t tdi_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned b = s[0];
    if (b < 0x80u) {
        *cp = b;
        return 1;
    }
    /* The lead byte fixes the length and the range of the second byte
     * (Table 3-7); this is what rejects overlongs, surrogates and > U+10FFFF
     * as early as possible, which the maximal-subpart rule requires. */
    size_t need;
    uint32_t c;
    unsigned lo = 0x80u, hi = 0xBFu;
    if (b >= 0xC2u && b <= 0xDFu) {
        need = 1;
        c = b & 0x1Fu;
    } else if (b >= 0xE0u && b <= 0xEFu) {
        need = 2;
        c = b & 0x0Fu;
        if (b == 0xE0u) lo = 0xA0u;
        if (b == 0xEDu) hi = 0x9Fu;
    } else if (b >= 0xF0u && b <= 0xF4u) {
        need = 3;
        c = b & 0x07u;
        if (b == 0xF0u) lo = 0x90u;
        if (b == 0xF4u) hi = 0x8Fu;
    } else {
        *cp = TDI_UTF8_REPLACEMENT;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *cp = TDI_UTF8_REPLACEMENT;
            return i;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
        lo = 0x80u;
        hi = 0xBFu;
    }
    *cp = c;
    return need + 1;
}

size_t tdi_utf8_put(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80u) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800u) {
        out[0] = (unsigned char)(0xC0u | (cp >> 6));
        out[1] = (unsigned char)(0x80u | (cp & 0x3Fu));
        return 2;
    }
    if (cp < 0x10000u) {
        out[0] = (unsigned char)(0xE0u | (cp >> 12));
        out[1] = (unsigned char)(0x80u | ((cp >> 6) & 0x3Fu));
        out[2] = (unsigned char)(0x80u | (cp & 0x3Fu));
        return 3;
    }
    out[0] = (unsigned char)(0xF0u | (cp >> 18));
    out[1] = (unsigned char)(0x80u | ((cp >> 12) & 0x3Fu));
    out[2] = (unsigned char)(0x80u | ((cp >> 6) & 0x3Fu));
    out[3] = (unsigned char)(0x80u | (cp & 0x3Fu));
    return 4;
}

td_status tdi_utf8_sanitize(const char *in, size_t n, char *out, size_t cap, size_t *len)
{
    TDI_CHECK_PTR(len);
    TDI_CHECK_ARG(in != NULL || n == 0, "%s: in is NULL", __func__);
    TDI_CHECK_ARG(out != NULL || cap == 0, "%s: out is NULL with cap %zu", __func__, cap);
    const unsigned char *s = (const unsigned char *)in;
    size_t pos = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = tdi_utf8_next(s + i, n - i, &cp);
        unsigned char enc[4];
        size_t m = tdi_utf8_put(cp, enc);
        for (size_t j = 0; j < m; j++, pos++)
            if (pos + 1 < cap) out[pos] = (char)enc[j];
        i += k;
    }
    *len = pos;
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    if (out == NULL) return TD_OK;
    if (pos >= cap)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: output needs %zu bytes, buffer holds %zu",
                        __func__, pos + 1, cap);
    return TD_OK;
}
