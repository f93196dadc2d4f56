/* Minimal 8-bit greyscale PNG writer for the example trainers (uses zlib). */
#ifndef MOMEX_PNG_H
#define MOMEX_PNG_H
#include <stddef.h>
/* Write a width x height greyscale image (row-major bytes) to path. Returns 0 or -1. */
int png_write_grey(const char *path, const unsigned char *pixels, size_t width, size_t height);
#endif
