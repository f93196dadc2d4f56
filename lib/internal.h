/* libmominit internal declarations shared by every module. Not installed. */
#ifndef MOM_INTERNAL_H
#define MOM_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mominit/mominit.h"

#if defined(__GNUC__)
#define MOM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MOM_PRINTF(f, a)
#endif

#define MOM_ERRMSG_SIZE 256

/*
 * Hot elementwise loops are compiled for AVX-512 and AVX2 next to the baseline ISA and picked at
 * load time (GCC target_clones, an ifunc: x86-64 ELF with glibc only). Unless a function says
 * otherwise (layers.c's MOM_CONTRACT, rnn.c's tanh kernels), the clones run the same IEEE
 * operations in the same order (no FMA contraction: -ffp-contract=off), so results are identical
 * whichever runs; only the vector width changes.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__) &&       \
    defined(__GLIBC__) && !defined(MOM_NO_CLONES)
#define MOM__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOM__CLONES
#endif

/*
 * Fixed-width vectors for loops that accumulate in double (GCC and Clang vector extensions): 8
 * floats widened to 8 doubles, so that the loop is vectorized at any optimization level and the
 * compiler's own choice of width cannot change the summation order. A sum split this way uses
 * MOM__LANES independent accumulators, element k going to accumulator k % MOM__LANES, combined by
 * MOM__LANES_SUM; a scalar fallback (MOM__VEC == 0, or a loop's tail) that follows the same rule
 * gives the same bits. Loads and stores go through memcpy (no alignment assumed): include
 * <string.h>.
 */
#define MOM__LANES 8
#define MOM__LANES_SUM(a)                                                                      \
    ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))
#if defined(__GNUC__) && (!defined(__clang__) || __clang_major__ >= 9)
#define MOM__VEC 1
typedef float mom__vf __attribute__((vector_size(MOM__LANES * sizeof(float))));
typedef double mom__vd __attribute__((vector_size(MOM__LANES * sizeof(double))));
#define MOM__VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define MOM__VSTORE(p, v) memcpy((p), &(v), sizeof(v))
#define MOM__VWIDEN(v) __builtin_convertvector((v), mom__vd)
/* The vector accumulator into the lane array that a scalar tail continues. */
#define MOM__VSPILL(acc, lanes) memcpy((lanes), &(acc), sizeof(acc))
#else
#define MOM__VEC 0
#endif

/* Common head of every handle: its allocator and its detail message. */
typedef struct mom__base {
    mom_allocator alloc;
    char errmsg[MOM_ERRMSG_SIZE];
} mom__base;

/* Fill `dst` from a user allocator pointer (NULL = malloc family).
 * Returns MOM_E_INVALID if the allocator is incomplete. */
int mom__alloc_init(mom_allocator *dst, const mom_allocator *src);

/* Allocate through an allocator (NULL result on size 0 or failure). */
void *mom__malloc(const mom_allocator *a, size_t size);
/* Zeroed allocation of n * size bytes with overflow check. */
void *mom__calloc(const mom_allocator *a, size_t n, size_t size);
/* `count` zeroed vectors of n floats in one allocation, each starting on a 64-byte boundary
 * (vector k at the returned pointer + k * mom__vec_stride(n)): products and vector loops run
 * slower on a vector that starts off a 16-byte boundary (2% of an RNN's loss and gradient when
 * the parameters do). *mem receives the allocation to free; NULL (both) when out of memory. */
float *mom__vectors_alloc(const mom_allocator *a, size_t n, size_t count, void **mem);
/* Floats from one such vector to the next: n rounded up to a multiple of 16 (0 on overflow). */
size_t mom__vec_stride(size_t n);
void *mom__realloc(const mom_allocator *a, void *ptr, size_t size);
void mom__free(const mom_allocator *a, void *ptr);

/* Overflow-checked size arithmetic: return 0 on overflow, else 1 with *out set. */
int mom__mul_size(size_t *out, size_t a, size_t b);
int mom__add_size(size_t *out, size_t a, size_t b);

/* Set the handle's detail message (printf format) and return `status`, so that call sites can
 * write `return mom__fail(&h->base, MOM_E_INVALID, "...", ...);`. */
int mom__fail(mom__base *b, int status, const char *fmt, ...) MOM_PRINTF(3, 4);
/* Clear the detail message (start of every public call). */
static inline void mom__clear(mom__base *b) { b->errmsg[0] = '\0'; }

/* p rounded up to the next multiple of `align` (a power of two): the start of an aligned region
 * carved out of an allocation made `align` bytes larger than it needs. */
static inline char *mom__align_ptr(void *p, size_t align)
{
    return (char *)p + (align - (uintptr_t)p % align) % align;
}

/* Philox4x32-10 stream: the mom_rng handle (the initializers and checks that draw work on a
 * copy of it on the stack and write the copy back only on success). */
struct mom_rng {
    mom__base base;
    uint64_t key;     /* seed */
    uint64_t stream;  /* upper half of the counter */
    uint64_t ctr;     /* next block to generate */
    uint32_t buf[4];  /* outputs of block ctr - 1 */
    uint32_t pos;     /* next unused index in buf (4 = empty) */
    uint32_t has_spare;
    double spare;     /* cached second normal of the polar method */
};

/* Initialize an embedded stream (no allocation). */
void mom__rng_init(struct mom_rng *r, uint64_t seed, uint64_t stream);

/* Finite-check helpers: index of the first non-finite value, or n if all finite. */
size_t mom__first_nonfinite(const float *x, size_t n);

#endif
