/* Minimal PNG writer: signature, IHDR (8-bit greyscale), one IDAT (filter 0 rows, zlib), IEND. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "png.h"

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int chunk(FILE *f, const char *type, const unsigned char *data, size_t len)
{
    unsigned char head[8];
    put32(head, (uint32_t)len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len)
        crc = crc32(crc, data, (uInt)len);
    unsigned char tail[4];
    put32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) &&
                   fwrite(tail, 1, 4, f) == 4
               ? 0
               : -1;
}

int png_write_grey(const char *path, const unsigned char *pixels, size_t width, size_t height)
{
    size_t raw_len = (width + 1) * height;
    unsigned char *raw = malloc(raw_len);
    uLongf z_len = compressBound((uLong)raw_len);
    unsigned char *z = malloc(z_len);
    if (raw == NULL || z == NULL) {
        free(raw);
        free(z);
        return -1;
    }
    for (size_t r = 0; r < height; r++) {
        raw[r * (width + 1)] = 0;
        memcpy(raw + r * (width + 1) + 1, pixels + r * width, width);
    }
    int rc = compress2(z, &z_len, raw, (uLong)raw_len, 9) == Z_OK ? 0 : -1;
    FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
    if (f == NULL)
        rc = -1;
    if (rc == 0) {
        static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
        unsigned char ihdr[13];
        put32(ihdr, (uint32_t)width);
        put32(ihdr + 4, (uint32_t)height);
        ihdr[8] = 8;  /* bit depth */
        ihdr[9] = 0;  /* greyscale */
        ihdr[10] = 0; /* deflate */
        ihdr[11] = 0; /* adaptive filtering, filter 0 used */
        ihdr[12] = 0; /* no interlace */
        if (fwrite(sig, 1, 8, f) != 8 || chunk(f, "IHDR", ihdr, 13) || chunk(f, "IDAT", z, z_len) ||
            chunk(f, "IEND", NULL, 0))
            rc = -1;
    }
    if (f && fclose(f) != 0)
        rc = -1;
    free(raw);
    free(z);
    return rc;
}
