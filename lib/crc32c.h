/* CRC-32C (Castagnoli), used by the checkpoint format (docs/file-format.md). Not installed. */
#ifndef MOM_CRC32C_H
#define MOM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of data[0..n), continuing from a previous result `crc` (0 to start): the reflected
 * polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF, so that
 * mom__crc32c(0, "123456789", 9) == 0xE3069283 and
 * mom__crc32c(mom__crc32c(0, a, n), b, m) equals the CRC of a followed by b. data may be NULL when
 * n == 0. Byte-order independent: the input is read byte by byte. */
uint32_t mom__crc32c(uint32_t crc, const void *data, size_t n);

#endif
