#include "util/endian.h"

/* On a little-endian host the file's bytes are the host's: a copy (or
 * nothing, in place). Elsewhere the byte-wise stores swap each element. */
void tdi_le_convert(void *dst, const void *src, size_t n, size_t elem)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (tdi_host_is_little_endian() || elem == 1) {
        if (d != s && n > 0) memmove(d, s, n);
    } else if (elem == 4) {
        for (size_t i = 0; i + 4 <= n; i += 4) {
            uint32_t v;
            memcpy(&v, s + i, 4);
            tdi_le_put32(d + i, v);
        }
    } else if (elem == 2) {
        for (size_t i = 0; i + 2 <= n; i += 2) {
            uint16_t v;
            memcpy(&v, s + i, 2);
            tdi_le_put16(d + i, v);
        }
    } else if (elem == 36) { /* q8_0 block: an f32 scale, then 32 bytes */
        for (size_t i = 0; i + 36 <= n; i += 36) {
            uint32_t v;
            memcpy(&v, s + i, 4);
            if (d != s) memmove(d + i + 4, s + i + 4, 32);
            tdi_le_put32(d + i, v);
        }
    } else if (elem == 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            tdi_le_put64(d + i, v);
        }
    }
}
