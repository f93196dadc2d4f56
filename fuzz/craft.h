/* Helpers shared by the fuzz target and the corpus generator: little-endian field access and
 * recomputation of every CRC of a checkpoint image (docs/file-format.md), so that crafted or
 * mutated images reach the checks that sit behind the checksums. */
#ifndef MOM_FUZZ_CRAFT_H
#define MOM_FUZZ_CRAFT_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/crc32c.h"

static inline uint32_t craft_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t craft_rd64(const unsigned char *p)
{
    return craft_rd32(p) | (uint64_t)craft_rd32(p + 4) << 32;
}

static inline void craft_wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void craft_wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute the preamble CRC, each section CRC whose entry lies in the file and whose extent is in
 * bounds, and the header CRC. Never reads or writes outside b[0..size). */
static inline void craft_fix_crcs(unsigned char *b, size_t size)
{
    if (size < 16)
        return;
    craft_wr32(b + 12, mom__crc32c(0, b, 12));
    if (size < 32)
        return;
    uint64_t n = craft_rd32(b + 24);
    if (n > (size - 32) / 24)
        n = (size - 32) / 24;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *e = b + 32 + 24 * i;
        uint64_t off = craft_rd64(e + 4), len = craft_rd64(e + 12);
        if (off <= size && len <= size - off)
            craft_wr32(e + 20, mom__crc32c(0, b + off, (size_t)len));
    }
    craft_wr32(b + 28, mom__crc32c(mom__crc32c(0, b + 16, 12), b + 32, 24 * (size_t)n));
}

/* Offset (and length) of the first section with a 4-character tag, or 0. */
static inline size_t craft_find(const unsigned char *b, size_t size, const char *tag, size_t *len)
{
    if (size < 32)
        return 0;
    uint64_t n = craft_rd32(b + 24);
    for (uint64_t i = 0; i < n && 32 + 24 * (i + 1) <= size; i++) {
        const unsigned char *e = b + 32 + 24 * i;
        if (e[0] == (unsigned char)tag[0] && e[1] == (unsigned char)tag[1] &&
            e[2] == (unsigned char)tag[2] && e[3] == (unsigned char)tag[3]) {
            if (len)
                *len = (size_t)craft_rd64(e + 12);
            return (size_t)craft_rd64(e + 4);
        }
    }
    return 0;
}

#endif
