/*
 * libmominit: checkpoints of the training state, and network files for inference.
 *
 * A checkpoint handle (mom_ckpt) holds one serialized image of a training state, in the portable
 * format of docs/file-format.md (little-endian, versioned, a CRC-32C per section). Work goes in
 * two phases, so that every source and destination combines with every kind of state:
 *
 *   saving:  mom_ckpt_capture()  copies the state of a network, an optimizer and any number of
 *                                random streams into the handle (a consistent snapshot);
 *            mom_ckpt_save_file() / _save_buffer() / _save_stream()  write the image out.
 *   loading: mom_ckpt_load_file() / _load_buffer() / _load_stream()  read an image into the
 *                                handle and check all of it (structure, CRCs, values);
 *            mom_ckpt_restore_new()  creates fresh handles from it, or
 *            mom_ckpt_restore()      writes it into existing handles of the same architecture.
 *
 * What is saved. The network: its kind, architecture, output, options (finite checks, subnormal
 * flushing) and parameter vector. The optimizer: kind, step count t, options (weight decay,
 * clipping, subnormal flushing; for HF lambda and all its settings), velocity (for HF the CG warm start), its schedules (learning rate, momentum; for HF
 * the fixed step size and the CG decay) with their parameters, so that the loaded optimizer
 * computes the same mu_t and eps_t at every t, and for HF the report of the last step and whether
 * a warm start is held. Callback schedules cannot be saved (MOM_E_UNSUPPORTED). The random
 * streams: mom_rng_get_state() of each, in the order given (the caller's data streams). The
 * caller's own bytes, if it set any with mom_ckpt_set_user_data() (user data: a trainer's
 * configuration, a running mean, ...), opaque to the library.
 * A network file for inference is a capture with no optimizer and no streams; a training
 * checkpoint holds everything needed to continue training.
 *
 * Resuming is bit-exact: training N steps, capturing, saving, loading into fresh handles and
 * training M more steps gives exactly the parameters of N + M steps trained straight through,
 * with the same BLAS library and thread count (docs/checkpoints.md).
 *
 * Typical use:
 *     mom_ckpt *ck;  mom_ckpt_create(&ck, NULL);
 *     // every 1000 steps:
 *     mom_ckpt_capture(ck, net, opt, &data_rng, 1);  mom_ckpt_save_file(ck, "run.ckpt");
 *     // later, in a new process:
 *     mom_ckpt_load_file(ck, "run.ckpt");
 *     mom_ckpt_restore_new(&net, &opt, &data_rng, 1, ck);
 *
 * Errors. Every failure sets the detail message of the checkpoint handle (mom_ckpt_errmsg()).
 * Damaged, truncated or malformed input gives MOM_E_FORMAT with a message naming the section and
 * the byte offset of the problem; a file of a newer, incompatible format version gives
 * MOM_E_UNSUPPORTED with a message naming the version it needs. A failed call changes nothing:
 * the handle keeps the image it held, and handles given to mom_ckpt_restore() keep their state.
 *
 * Memory. The image lives in the handle (its size is mom_ckpt_size()); loading reads the whole
 * input into it. Capturing into a handle whose buffer is already large enough does not allocate,
 * so a training loop that keeps one handle allocates only on its first capture.
 *
 * Threads. A checkpoint handle is used by one thread at a time. The image is a snapshot: once
 * mom_ckpt_capture() has returned, training may continue in one thread while another thread
 * saves the handle. mom_ckpt_save_file() and mom_ckpt_load_file() are not cancellation points:
 * where the library is built with POSIX threads, they disable the calling thread's
 * cancelability for their duration (pthread_setcancelstate()) and restore the caller's setting
 * before they return, so that a pthread_cancel() cannot leave a temporary file or an open file
 * descriptor behind; a cancellation requested meanwhile takes effect at the caller's next
 * cancellation point.
 */
#ifndef MOMINIT_CKPT_H
#define MOMINIT_CKPT_H

#include "mominit/common.h"
#include "mominit/net.h"
#include "mominit/optim.h"
#include "mominit/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Major version of the checkpoint format this library writes; it reads every file of the same
 *  major version (and refuses newer majors). @since 0.1.0 */
#define MOM_CKPT_FORMAT_MAJOR 1
/** Minor version of the checkpoint format this library writes. Files with a newer minor version
 *  are read, skipping the sections this library does not know. @since 0.1.0 */
#define MOM_CKPT_FORMAT_MINOR 3
/** Both as one number: MAJOR * 65536 + MINOR. @since 0.1.0 */
#define MOM_CKPT_FORMAT_VERSION (MOM_CKPT_FORMAT_MAJOR * 65536 + MOM_CKPT_FORMAT_MINOR)
/** The most bytes of user data a checkpoint holds (16 MiB): mom_ckpt_set_user_data() refuses
 *  more, and a reader refuses a file that holds more (a rule of every 1.x file). @since 0.5.0 */
#define MOM_CKPT_USER_DATA_MAX 16777216u

/**
 * Write callback of mom_ckpt_save_stream(): store `size` bytes of `data` (size > 0), after the
 * bytes of the previous calls. Return 0 on success, any other value on failure (saving then stops
 * and returns MOM_E_IO). `data` is valid during the call only.
 */
typedef int (*mom_ckpt_write_fn)(const void *data, size_t size, void *user_data);

/**
 * Read callback of mom_ckpt_load_stream(): copy up to `size` bytes (size > 0) of the input into
 * `buf` and their number into `*got`. Fewer than `size` bytes is fine (the loader calls again);
 * 0 bytes means the input ended. Return 0 on success, any other value on a read error (loading
 * then stops with MOM_E_IO).
 */
typedef int (*mom_ckpt_read_fn)(void *buf, size_t size, size_t *got, void *user_data);

/**
 * Create an empty checkpoint handle.
 * @param out   receives the handle (NULL on failure); destroy with mom_ckpt_destroy().
 * @param alloc allocator, or NULL for malloc. It is used for the image, and inherited by the
 *              handles mom_ckpt_restore_new() creates; it must stay usable until those and this
 *              handle are destroyed.
 * @return MOM_OK, MOM_E_INVALID (out NULL, incomplete allocator), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_create(mom_ckpt **out, const mom_allocator *alloc);

/** Destroy a checkpoint handle and its image. Accepts NULL. @since 0.1.0 */
MOM_API void mom_ckpt_destroy(mom_ckpt *ck);

/** Detail message about the last failed call on this handle ("" if none). Valid until the next
 *  call on the handle. Never NULL (for a NULL handle, a static string). @since 0.1.0 */
MOM_API const char *mom_ckpt_errmsg(const mom_ckpt *ck);

/** The format version this library writes, MOM_CKPT_FORMAT_VERSION. @since 0.1.0 */
MOM_API uint32_t mom_ckpt_format_version(void);

/**
 * Capture a snapshot of a training state into the handle, replacing the image it held.
 * @param net    the network (architecture, options, parameters), or NULL when only an optimizer
 *               is saved (a caller-driven model whose parameters the caller saves itself).
 * @param opt    the optimizer (kind, t, options, velocity, schedules), or NULL for a network
 *               file (inference, or a net trained by other means).
 * @param rngs   n_rngs random streams whose states are saved, in this order (typically the
 *               streams that shuffle or generate the training data); may be NULL if n_rngs == 0.
 *               Each must be non-NULL.
 * All are only read, during the call; nothing is kept. The user data set with
 * mom_ckpt_set_user_data(), if any, goes into the image too (and stays set for later captures).
 * @return MOM_OK; MOM_E_INVALID (ck NULL, net and opt both NULL, rngs or an element NULL);
 *         MOM_E_SHAPE (net and opt differ in parameter count); MOM_E_STATE (opt has a step begun
 *         with mom_optim_begin(): capture between steps); MOM_E_UNSUPPORTED (a schedule of opt is
 *         a callback or wraps one, or final-phase wrappers nested more than 64 deep);
 *         MOM_E_NOMEM; MOM_E_INTERNAL (the new image fails the library's own check: a bug; the
 *         handle then holds no image). Otherwise, on failure the handle keeps its previous image.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_capture(mom_ckpt *ck, const mom_net *net, const mom_optim *opt,
                                           const mom_rng *const *rngs, size_t n_rngs);

/**
 * Set the caller's own bytes ("user data") that the following captures store in the image, next
 * to the training state: for example a trainer's configuration, so that a resume can refuse a
 * checkpoint made with other settings, or a running mean that a resumed run needs to reproduce
 * the uninterrupted one. The library copies the bytes and never interprets them; encode them
 * portably (fixed byte order, no struct padding) if files travel between machines.
 * The bytes stay set: every mom_ckpt_capture() from now on stores them (as section USER, format
 * 1.2, docs/file-format.md), until another call replaces or clears them. Setting them does not
 * change the image the handle holds now (mom_ckpt_user_data() still returns the image's), and
 * loading does not change them (a load replaces the image, not the bytes set for the next
 * capture).
 * @param data  the bytes, copied during the call; may be NULL only when size is 0.
 * @param size  their number, at most MOM_CKPT_USER_DATA_MAX; 0 clears them (captures then store
 *              no user data).
 * @return MOM_OK; MOM_E_INVALID (ck NULL, data NULL with size > 0, size above
 *         MOM_CKPT_USER_DATA_MAX); MOM_E_NOMEM (the bytes set before are kept).
 * @since 0.5.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_set_user_data(mom_ckpt *ck, const void *data, size_t size);

/**
 * The user data of the image the handle holds: after a load, the file's (none if it has none,
 * as every file before format 1.2); after a capture, the bytes that were set then. No image, or
 * an image without user data, gives *data = NULL and *size = 0.
 * @param data  receives a pointer to the bytes, borrowed from the handle: valid until the next
 *              load, capture, mom_ckpt_set_user_data() or mom_ckpt_destroy() on it. The bytes
 *              are exactly those set, with no terminator added.
 * @param size  receives their number (at most MOM_CKPT_USER_DATA_MAX).
 * @return MOM_OK; MOM_E_INVALID (data, size or ck NULL; the outputs that are not NULL are then
 *         set to NULL and 0). A query: the detail message is written only on failure.
 * @since 0.5.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_user_data(const void **data, size_t *size, const mom_ckpt *ck);

/** Size in bytes of the image the handle holds (what the save functions write), 0 if it holds
 *  none or ck is NULL. @since 0.1.0 */
MOM_API size_t mom_ckpt_size(const mom_ckpt *ck);

/**
 * Write the image to a file, atomically: the data goes to a new temporary file in the same
 * directory, which is flushed to disk (fsync) and then renamed over `path`; the directory is then
 * synced. Readers see either the previous file or the complete new one, never a mixture.
 * What is at `path` is replaced: a regular file, or a symbolic link itself (not the file it
 * names); an existing directory, device, FIFO or socket there is refused (MOM_E_IO). The new
 * file has mode 0666 minus the umask.
 * @param path file name (UTF-8 / native encoding); the directory must exist and be writable.
 * @return MOM_OK; MOM_E_INVALID (ck or path NULL, empty path); MOM_E_STATE (the handle holds no
 *         image); MOM_E_NOMEM; MOM_E_IO (cannot create, write, sync or rename: the message names
 *         the file and the system error; any previous file at `path` is left intact and the
 *         temporary file is removed). If only the final directory sync fails, the new file is
 *         in place but MOM_E_IO is returned, since its durability is not assured.
 *         MOM_E_UNSUPPORTED on systems without POSIX files (use the stream interface there).
 * Thread cancellation is disabled during the call (see "Threads" above).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_save_file(mom_ckpt *ck, const char *path);

/**
 * Copy the image into a caller buffer of mom_ckpt_size() bytes or more.
 * @param buf  destination; @param cap its size in bytes.
 * @return MOM_OK, MOM_E_INVALID (ck or buf NULL), MOM_E_STATE (no image), MOM_E_SHAPE (cap
 *         smaller than mom_ckpt_size(); nothing is written).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_save_buffer(void *buf, size_t cap, mom_ckpt *ck);

/**
 * Write the image through a callback, in one or more calls of consecutive pieces.
 * @param write     the callback; @param user_data passed back to it untouched.
 * @return MOM_OK, MOM_E_INVALID (ck or write NULL), MOM_E_STATE (no image), MOM_E_IO (the
 *         callback failed; whatever it stored so far is incomplete).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_save_stream(mom_ckpt *ck, mom_ckpt_write_fn write,
                                               void *user_data);

/**
 * Read a checkpoint or network file into the handle and check it completely: magic, version,
 * section table, every CRC, and every value (architecture, schedule parameters, options, random
 * stream states, the size of the user data). The file must be exactly one image, with no
 * trailing bytes. The image's user data then replaces the previous image's (mom_ckpt_user_data());
 * the bytes set with mom_ckpt_set_user_data() for the next capture are not changed.
 * Thread cancellation is disabled during the call (see "Threads" above).
 * @return MOM_OK; MOM_E_INVALID (ck or path NULL); MOM_E_IO (cannot open or read: the message
 *         names the file and the system error); MOM_E_FORMAT (not a checkpoint, damaged,
 *         truncated or inconsistent: the message names the section and the byte offset);
 *         MOM_E_UNSUPPORTED (a newer major format version, or in a newer minor version a value
 *         this library does not know, such as a new schedule kind: the message says which);
 *         MOM_E_NOMEM; MOM_E_UNSUPPORTED also on systems without POSIX files. On failure the
 *         handle keeps its previous image (with its user data) and the bytes set for the next
 *         capture.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_load_file(mom_ckpt *ck, const char *path);

/**
 * As mom_ckpt_load_file(), from `size` bytes in memory, which must be exactly one image. The data
 * is copied; the buffer is not used after the call.
 * @return as mom_ckpt_load_file() (MOM_E_INVALID also for data NULL; no MOM_E_IO).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_load_buffer(mom_ckpt *ck, const void *data, size_t size);

/**
 * As mom_ckpt_load_file(), from a read callback. Exactly the bytes of one image are requested
 * (the header says how many), never more, so an image may be followed by other data in the same
 * stream. Memory grows with the data actually received, so a forged size in the header cannot
 * make the library allocate more than about twice what the stream delivered.
 * @return as mom_ckpt_load_file(); MOM_E_IO when the callback reports an error, MOM_E_FORMAT when
 *         the input ends before the image does.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_load_stream(mom_ckpt *ck, mom_ckpt_read_fn read,
                                               void *user_data);

/** mom_net_kind of the network in the image, 0 if it holds no network (or no image, or ck NULL).
 *  @since 0.1.0 */
MOM_API int mom_ckpt_net_kind(const mom_ckpt *ck);

/** mom_optim_kind of the optimizer in the image, 0 if it holds none. @since 0.1.0 */
MOM_API int mom_ckpt_optim_kind(const mom_ckpt *ck);

/** Parameter count of the network (or optimizer) in the image, 0 if it holds none. @since 0.1.0 */
MOM_API size_t mom_ckpt_num_params(const mom_ckpt *ck);

/** Number of random stream states in the image, 0 if none. @since 0.1.0 */
MOM_API size_t mom_ckpt_num_rngs(const mom_ckpt *ck);

/**
 * Create fresh handles from the image, with the allocator of the checkpoint handle.
 * @param net    receives a new network (destroy with mom_net_destroy()), or NULL not to create
 *               one (for example to restore only the optimizer).
 * @param opt    receives a new optimizer with its own schedules (destroy with
 *               mom_optim_destroy()), or NULL not to create one (inference from a training
 *               checkpoint).
 * @param rngs   array of n_rngs pointers receiving new streams set to the first n_rngs saved
 *               states (destroy each with mom_rng_destroy()); may be NULL if n_rngs == 0.
 * @return MOM_OK; MOM_E_INVALID (ck NULL, rngs NULL with n_rngs > 0); MOM_E_STATE (the handle
 *         holds no image); MOM_E_FORMAT (a handle was asked for that the image does not hold: a
 *         network or optimizer it lacks, more streams than it has); MOM_E_NOMEM. On failure every
 *         output is set to NULL and nothing is leaked.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_restore_new(mom_net **net, mom_optim **opt, mom_rng **rngs,
                                               size_t n_rngs, mom_ckpt *ck);

/**
 * Restore the image into existing handles. The network must have exactly the saved architecture
 * (kind, layer widths, activations, output, flags); its options and parameters are replaced. The
 * optimizer must be of the saved kind and parameter count; its step count, options (an option
 * the image does not list gets its default, as in a new handle), velocity and schedules are
 * replaced (it releases its old schedules and holds new ones, created with its own
 * allocator). Each stream gets the corresponding saved state (the first n_rngs).
 * @param net, opt   handles to restore into, or NULL to skip.
 * @param rngs       n_rngs streams (each non-NULL); may be NULL if n_rngs == 0.
 * @return MOM_OK; MOM_E_INVALID (ck NULL, rngs or an element NULL); MOM_E_STATE (no image, or opt
 *         has a step begun with mom_optim_begin()); MOM_E_FORMAT (the image does not match a
 *         handle: another architecture, kind or parameter count, or a handle the image lacks;
 *         the message names the section and the offset of the mismatching field); MOM_E_NOMEM.
 *         On failure no handle is changed.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_ckpt_restore(mom_ckpt *ck, mom_net *net, mom_optim *opt,
                                           mom_rng *const *rngs, size_t n_rngs);

#ifdef __cplusplus
}
#endif

#endif
