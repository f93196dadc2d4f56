/* CURVES generator and IDX reader; see data.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data.h"

void dataset_free(dataset *s)
{
    free(s->x);
    memset(s, 0, sizeof *s);
}

/* Distance from (px, py) to the segment (ax, ay)-(bx, by). */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.0;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    double ex = ax + t * dx - px, ey = ay + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

#define CURVE_SIDE 28
#define CURVE_SAMPLES 64
#define CURVE_RADIUS 0.8  /* half stroke width, pixels */
#define CURVE_SOFT 1.0    /* anti-aliasing ramp, pixels */
#define CURVE_LO 3.0      /* control points in [LO, HI]^2 (pixel units) */
#define CURVE_HI 24.0

/* One image: the quadratic through P0 (t=0), P1 (t=1/2), P2 (t=1) in Lagrange form, sampled at
 * CURVE_SAMPLES+1 points, each pixel centre's distance to that polyline d mapped to intensity
 * 1 for d <= RADIUS, falling linearly to 0 at RADIUS + SOFT. */
static void draw_curve(float *img, mom_rng *rng)
{
    double p[3][2];
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 2; c++)
            p[k][c] = CURVE_LO + (CURVE_HI - CURVE_LO) * mom_rng_uniform(rng);
    double pts[CURVE_SAMPLES + 1][2];
    for (int i = 0; i <= CURVE_SAMPLES; i++) {
        double t = (double)i / CURVE_SAMPLES;
        double l0 = 2 * (t - 0.5) * (t - 1), l1 = -4 * t * (t - 1), l2 = 2 * t * (t - 0.5);
        for (int c = 0; c < 2; c++)
            pts[i][c] = l0 * p[0][c] + l1 * p[1][c] + l2 * p[2][c];
    }
    /* Only pixels within RADIUS + SOFT of a segment can be lit: visit each segment's box. */
    double dist[CURVE_SIDE * CURVE_SIDE];
    for (int i = 0; i < CURVE_SIDE * CURVE_SIDE; i++)
        dist[i] = 1e9;
    const double reach = CURVE_RADIUS + CURVE_SOFT;
    for (int i = 0; i < CURVE_SAMPLES; i++) {
        double x0 = fmin(pts[i][0], pts[i + 1][0]) - reach, x1 = fmax(pts[i][0], pts[i + 1][0]) + reach;
        double y0 = fmin(pts[i][1], pts[i + 1][1]) - reach, y1 = fmax(pts[i][1], pts[i + 1][1]) + reach;
        int c0 = (int)floor(x0 - 0.5), c1 = (int)ceil(x1 - 0.5), r0 = (int)floor(y0 - 0.5),
            r1 = (int)ceil(y1 - 0.5);
        c0 = c0 < 0 ? 0 : c0;
        r0 = r0 < 0 ? 0 : r0;
        c1 = c1 > CURVE_SIDE - 1 ? CURVE_SIDE - 1 : c1;
        r1 = r1 > CURVE_SIDE - 1 ? CURVE_SIDE - 1 : r1;
        for (int r = r0; r <= r1; r++)
            for (int c = c0; c <= c1; c++) {
                double e = seg_dist(c + 0.5, r + 0.5, pts[i][0], pts[i][1], pts[i + 1][0],
                                    pts[i + 1][1]);
                if (e < dist[r * CURVE_SIDE + c])
                    dist[r * CURVE_SIDE + c] = e;
            }
    }
    for (int i = 0; i < CURVE_SIDE * CURVE_SIDE; i++) {
        double d = dist[i];
        double v = d <= CURVE_RADIUS ? 1.0 : 1.0 - (d - CURVE_RADIUS) / CURVE_SOFT;
        img[i] = v > 0 ? (float)v : 0.0f;
    }
}

int curves_generate(dataset *s, size_t n, mom_rng *rng)
{
    memset(s, 0, sizeof *s);
    s->x = malloc(n * CURVE_SIDE * CURVE_SIDE * sizeof *s->x);
    if (s->x == NULL)
        return -1;
    s->n = n;
    s->rows = s->cols = CURVE_SIDE;
    s->d = CURVE_SIDE * CURVE_SIDE;
    for (size_t i = 0; i < n; i++)
        draw_curve(s->x + i * s->d, rng);
    return 0;
}

/* Read len bytes: 0 done, 1 the data ended first, -1 a read error or a damaged gzip stream. */
static int read_exact(gzFile f, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got < 0)
            return -1;
        if (got == 0)
            return 1;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

/* The message of a failed read_exact(): what zlib says for -1, else `ended`. */
static void read_failed(char *err, size_t err_size, const char *path, gzFile f, int rc,
                        const char *ended)
{
    int zerr = Z_OK;
    const char *why = rc < 0 ? gzerror(f, &zerr) : NULL;
    if (rc < 0 && zerr == Z_ERRNO)
        why = strerror(errno);
    /* zlib's message starts with the path it was opened with: name the file once */
    size_t len = strlen(path);
    if (why && strncmp(why, path, len) == 0 && why[len] == ':' && why[len + 1] == ' ')
        why += len + 2;
    if (rc < 0)
        snprintf(err, err_size, "%s: cannot read: %s", path, why && *why ? why : "read error");
    else
        snprintf(err, err_size, "%s: %s", path, ended);
}

int idx_read_images(dataset *s, const char *path, size_t max_n, char *err, size_t err_size)
{
    memset(s, 0, sizeof *s);
    struct stat st;
    const int have_st = stat(path, &st) == 0;
    if (have_st && !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        return -1;
    }
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    unsigned char h[16];
    int rc = read_exact(f, h, 4);
    if (rc != 0) {
        read_failed(err, err_size, path, f, rc, "not an IDX file (shorter than its 4-byte magic)");
        gzclose(f);
        return -1;
    }
    if (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] != 3) {
        snprintf(err, err_size,
                 "%s: not an IDX image file (magic %02x %02x %02x %02x, expected 00 00 08 03: "
                 "unsigned bytes, 3 dimensions)",
                 path, h[0], h[1], h[2], h[3]);
        gzclose(f);
        return -1;
    }
    if ((rc = read_exact(f, h + 4, 12)) != 0) {
        read_failed(err, err_size, path, f, rc, "truncated IDX header");
        gzclose(f);
        return -1;
    }
    uint32_t dim[3];
    for (int k = 0; k < 3; k++)
        dim[k] = ((uint32_t)h[4 + 4 * k] << 24) | ((uint32_t)h[5 + 4 * k] << 16) |
                 ((uint32_t)h[6 + 4 * k] << 8) | h[7 + 4 * k];
    if (dim[0] == 0 || dim[1] == 0 || dim[2] == 0 || dim[1] > 4096 || dim[2] > 4096 ||
        dim[0] > 100000000u || (uint64_t)dim[0] * dim[1] * dim[2] > ((uint64_t)1 << 34)) {
        snprintf(err, err_size, "%s: implausible IDX dimensions %u x %u x %u", path, dim[0],
                 dim[1], dim[2]);
        gzclose(f);
        return -1;
    }
    size_t n = dim[0], d = (size_t)dim[1] * dim[2];
    if (max_n && n > max_n)
        n = max_n;
    /* A plain file must hold what its header announces: say so before allocating for it. */
    uint64_t need = 16 + (uint64_t)n * d;
    if (have_st && gzdirect(f) && (uint64_t)st.st_size < need) {
        snprintf(err, err_size,
                 "%s: truncated: the header announces %u images of %u x %u bytes, the file "
                 "holds %lld bytes of the %llu needed",
                 path, dim[0], dim[1], dim[2], (long long)st.st_size, (unsigned long long)need);
        gzclose(f);
        return -1;
    }
    /* Room grows with the data read (a compressed file's size says nothing of what it holds: a
     * tiny gzip file may announce millions of images), from 1 MB, doubling, up to the announced
     * size. */
    size_t first = ((size_t)1 << 20) / sizeof *s->x / d, cap = 0;
    first = first < 1 ? 1 : first > n ? n : first;
    unsigned char *raw = malloc(d);
    for (size_t i = 0; i < n; i++) {
        if (i == cap) {
            size_t grown = cap == 0 ? first : cap > n / 2 ? n : 2 * cap;
            float *x = raw ? realloc(s->x, grown * d * sizeof *s->x) : NULL;
            if (x == NULL) {
                free(raw);
                dataset_free(s);
                snprintf(err, err_size, "%s: out of memory for %zu images", path, grown);
                gzclose(f);
                return -1;
            }
            s->x = x;
            cap = grown;
        }
        if ((rc = read_exact(f, raw, d)) != 0) {
            char ended[128];
            snprintf(ended, sizeof ended,
                     "truncated: the header announces %u images, the data holds %zu whole ones",
                     dim[0], i);
            read_failed(err, err_size, path, f, rc, ended);
            free(raw);
            dataset_free(s);
            gzclose(f);
            return -1;
        }
        for (size_t j = 0; j < d; j++)
            s->x[i * d + j] = (float)raw[j] / 255.0f;
    }
    free(raw);
    if (n == dim[0]) {
        unsigned char extra;
        int got = gzread(f, &extra, 1);
        if (got != 0) {
            if (got > 0)
                snprintf(err, err_size,
                         "%s: trailing data after the %u images the header announces", path,
                         dim[0]);
            else
                read_failed(err, err_size, path, f, -1, "");
            dataset_free(s);
            gzclose(f);
            return -1;
        }
        /* zlib reports a gzip stream cut before its trailer (the CRC) only here */
        if (gzclose(f) != Z_OK) {
            snprintf(err, err_size, "%s: damaged gzip stream (cut before its end, or a bad CRC)",
                     path);
            dataset_free(s);
            return -1;
        }
        f = NULL;
    }
    if (f != NULL)
        gzclose(f);
    s->n = n;
    s->d = d;
    s->rows = dim[1];
    s->cols = dim[2];
    return 0;
}
