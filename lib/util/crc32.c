#include "util/crc32.h"

#include <zlib.h>

uint32_t tdi_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    uLong c = crc;
    while (n > 0) {
        uInt piece = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, piece);
        b += piece;
        n -= piece;
    }
    return (uint32_t)c;
}
