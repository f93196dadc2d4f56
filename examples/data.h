/* Data sets of the autoencoder trainer: the generated CURVES images and MNIST-format IDX files.
 * Example code on top of the public API. */
#ifndef MOMEX_DATA_H
#define MOMEX_DATA_H

#include <stddef.h>
#include <stdint.h>

#include <mominit/mominit.h>

/* A set of n row-major images of d floats in [0, 1] (owned). */
typedef struct dataset {
    size_t n, d, rows, cols;
    float *x;
} dataset;

void dataset_free(dataset *s);

/* CURVES approximation (docs/tasks.md): n images of 28x28, each a smooth curve through three
 * random points drawn as an anti-aliased stroke, from rng. Returns 0 or -1 (out of memory). */
int curves_generate(dataset *s, size_t n, mom_rng *rng);

/* Read an IDX image file (ubyte, 3 dimensions: count x rows x cols), gzip-compressed or plain,
 * scaled to [0, 1] (value / 255). At most max_n images (0 = all). On failure returns -1 and
 * writes a message naming the file and the problem into err. */
int idx_read_images(dataset *s, const char *path, size_t max_n, char *err, size_t err_size);

#endif
