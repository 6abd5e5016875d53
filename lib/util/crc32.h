/* CRC-32 as zlib computes it (ISO-HDLC: reflected 0xEDB88320, initial value
 * and final XOR 0xFFFFFFFF), the checksum of every file the library writes. */
#ifndef TDI_CRC32_H
#define TDI_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue `crc` (0 to start) over p[0..n), for any n (zlib's crc32() takes
 * an unsigned int length). */
uint32_t tdi_crc32(uint32_t crc, const void *p, size_t n);

#endif
