/* Status strings, version queries, allocator plumbing and detail messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "internal.h"

const char *mom_strerror(int status)
{
    switch (status) {
    case MOM_OK: return "success";
    case MOM_E_INVALID: return "invalid argument";
    case MOM_E_NOMEM: return "out of memory";
    case MOM_E_SHAPE: return "shape mismatch";
    case MOM_E_STATE: return "call not allowed in the current state";
    case MOM_E_IO: return "input/output error";
    case MOM_E_FORMAT: return "bad or damaged file format";
    case MOM_E_DIVERGED: return "diverged: non-finite loss, gradient or update";
    case MOM_E_UNSUPPORTED: return "operation not supported";
    case MOM_E_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

const char *mom_status_name(int status)
{
    switch (status) {
    case MOM_OK: return "MOM_OK";
    case MOM_E_INVALID: return "MOM_E_INVALID";
    case MOM_E_NOMEM: return "MOM_E_NOMEM";
    case MOM_E_SHAPE: return "MOM_E_SHAPE";
    case MOM_E_STATE: return "MOM_E_STATE";
    case MOM_E_IO: return "MOM_E_IO";
    case MOM_E_FORMAT: return "MOM_E_FORMAT";
    case MOM_E_DIVERGED: return "MOM_E_DIVERGED";
    case MOM_E_UNSUPPORTED: return "MOM_E_UNSUPPORTED";
    case MOM_E_INTERNAL: return "MOM_E_INTERNAL";
    default: return "MOM_E_UNKNOWN";
    }
}

unsigned mom_version_number(void) { return (unsigned)MOM_VERSION_NUMBER; }

const char *mom_version_string(void) { return MOM_VERSION_STRING; }

static void *std_alloc(void *user, size_t size) { (void)user; return malloc(size); }
static void *std_realloc(void *user, void *ptr, size_t size) { (void)user; return realloc(ptr, size); }
static void std_free(void *user, void *ptr) { (void)user; free(ptr); }

int mom__alloc_init(mom_allocator *dst, const mom_allocator *src)
{
    if (src == NULL) {
        dst->alloc = std_alloc;
        dst->realloc = std_realloc;
        dst->free = std_free;
        dst->user = NULL;
        return MOM_OK;
    }
    if (src->alloc == NULL || src->realloc == NULL || src->free == NULL)
        return MOM_E_INVALID;
    *dst = *src;
    return MOM_OK;
}

void *mom__malloc(const mom_allocator *a, size_t size)
{
    if (size == 0)
        return NULL;
    return a->alloc(a->user, size);
}

void *mom__calloc(const mom_allocator *a, size_t n, size_t size)
{
    size_t bytes;
    if (!mom__mul_size(&bytes, n, size) || bytes == 0)
        return NULL;
    void *p = a->alloc(a->user, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

size_t mom__vec_stride(size_t n) { return n > SIZE_MAX - 15 ? 0 : (n + 15) & ~(size_t)15; }

float *mom__vectors_alloc(const mom_allocator *a, size_t n, size_t count, void **mem)
{
    size_t stride = mom__vec_stride(n), floats;
    *mem = NULL;
    if (stride == 0 || !mom__mul_size(&floats, stride, count) ||
        !mom__add_size(&floats, floats, 16))
        return NULL;
    char *p = mom__calloc(a, floats, sizeof(float));
    if (p == NULL)
        return NULL;
    *mem = p;
    return (float *)(void *)mom__align_ptr(p, 64);
}

void *mom__realloc(const mom_allocator *a, void *ptr, size_t size)
{
    if (size == 0)
        return NULL;
    if (ptr == NULL)
        return a->alloc(a->user, size);
    return a->realloc(a->user, ptr, size);
}

void mom__free(const mom_allocator *a, void *ptr)
{
    if (ptr != NULL)
        a->free(a->user, ptr);
}

int mom__mul_size(size_t *out, size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

int mom__add_size(size_t *out, size_t a, size_t b)
{
    if (b > SIZE_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

int mom__fail(mom__base *b, int status, const char *fmt, ...)
{
    if (b != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
        va_end(ap);
    }
    return status;
}

size_t mom__first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}
