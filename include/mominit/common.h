/*
 * libmominit: common definitions shared by every module.
 *
 * This header is the reference for the conventions every other header follows:
 *  - every fallible function returns an int status: MOM_OK (0) or a negative mom_status code;
 *  - constructors are named mom_<object>_create*, take the output handle first, set *out to NULL
 *    on failure, and are paired with mom_<object>_destroy(), which accepts NULL;
 *  - a handle keeps a detail message about its last failure (mom_<object>_errmsg());
 *  - one handle is used by one thread at a time; different handles may be used concurrently.
 * See docs/conventions.md for the narrative version.
 */
#ifndef MOMINIT_COMMON_H
#define MOMINIT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "mominit/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MOM_API marks every exported function: the library is built with hidden visibility by default
 * and a version script, so only these are exported; users need not define anything. (The
 * _WIN32 branch is for a future Windows build, which would define MOM_BUILDING_DLL; Windows is
 * not supported yet.) */
#if defined(_WIN32) && defined(MOM_BUILDING_DLL)
#define MOM_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define MOM_API __attribute__((visibility("default")))
#else
#define MOM_API
#endif

/* Compiler hint that a status must not be ignored. */
#if defined(__GNUC__) && (__GNUC__ > 3 || (__GNUC__ == 3 && __GNUC_MINOR__ >= 4))
#define MOM_NODISCARD __attribute__((warn_unused_result))
#else
#define MOM_NODISCARD
#endif

/**
 * Status codes. Values are pinned forever: a code is never renumbered or reused; new codes are
 * only ever appended (more negative). @since 0.1.0
 */
typedef enum mom_status {
    MOM_OK = 0,                /**< success */
    MOM_E_INVALID = -1,        /**< an argument is invalid (NULL, zero size, out of range) */
    MOM_E_NOMEM = -2,          /**< an allocation failed */
    MOM_E_SHAPE = -3,          /**< sizes do not match (batch vs. network, buffer vs. parameters) */
    MOM_E_STATE = -4,          /**< the call is not allowed in the handle's current state */
    MOM_E_IO = -5,             /**< reading or writing a file or stream failed */
    MOM_E_FORMAT = -6,         /**< a file or buffer is not in the expected format, or is damaged */
    MOM_E_DIVERGED = -7,       /**< a loss, gradient or update became non-finite; state restored */
    MOM_E_UNSUPPORTED = -8,    /**< the operation is not supported by this object or build */
    MOM_E_INTERNAL = -9        /**< an internal invariant failed (a bug: please report it) */
} mom_status;

/**
 * Static, human-readable text for a status code. Never returns NULL; unknown codes give
 * "unknown status". The string is owned by the library and valid forever. @since 0.1.0
 */
MOM_API const char *mom_strerror(int status);

/** Symbolic name of a status code ("MOM_E_SHAPE"), or "MOM_E_UNKNOWN". Static. @since 0.1.0 */
MOM_API const char *mom_status_name(int status);

/** Run-time version: MOM_VERSION_NUMBER of the library actually linked. @since 0.1.0 */
MOM_API unsigned mom_version_number(void);

/** Run-time version string ("MAJOR.MINOR.PATCH") of the library actually linked. Static. @since 0.1.0 */
MOM_API const char *mom_version_string(void);

/**
 * A custom allocator, given (by pointer) to constructors and copied into the handle; objects
 * created from a handle inherit it. Pass NULL to a constructor to use malloc/realloc/free.
 *
 * - alloc(user, size) returns memory for size bytes (size > 0) aligned at least for double,
 *   or NULL on failure;
 * - realloc(user, ptr, size) behaves like realloc with ptr != NULL and size > 0;
 * - free(user, ptr) releases ptr (never called with NULL).
 * All three must be set; user is passed back untouched. The allocator must stay usable until
 * every handle created with it has been destroyed. @since 0.1.0
 */
typedef struct mom_allocator {
    void *(*alloc)(void *user, size_t size);
    void *(*realloc)(void *user, void *ptr, size_t size);
    void (*free)(void *user, void *ptr);
    void *user;
} mom_allocator;

/* Opaque handles. */
typedef struct mom_rng mom_rng;     /**< random number stream (rng.h) */
typedef struct mom_net mom_net;     /**< feedforward or recurrent network (net.h) */
typedef struct mom_init mom_init;   /**< parameter initializer (init.h) */
typedef struct mom_sched mom_sched; /**< schedule of a value over steps (sched.h) */
typedef struct mom_optim mom_optim; /**< optimizer: SGD, CM, NAG, HF (optim.h) */
typedef struct mom_ckpt mom_ckpt;   /**< checkpoint image: save and load training state (ckpt.h) */

#ifdef __cplusplus
}
#endif

#endif
