/*
 * Subnormal (denormal) floats inside library calls.
 *
 * On x86 an arithmetic instruction whose input or result is subnormal can take a microcode assist
 * of ~100 cycles or more; a matrix product on subnormal data measured here ran ~170 times slower.
 * Deep logistic nets and vanishing gradients produce such values. The library therefore, when the
 * handle's flush option is on (the default), runs its compute entry points with flush-to-zero
 * (FTZ: subnormal results become 0) and denormals-are-zero (DAZ: subnormal inputs read as 0) set
 * for the calling thread, and restores the caller's control bits before returning, so the caller
 * never sees a changed floating-point mode. Exception flags raised during the call (inexact,
 * underflow, ...) are left raised, as any floating-point code leaves them.
 *
 * x86 (SSE): MXCSR bits FTZ (15) and DAZ (6); DAZ only where the CPU supports it (MXCSR_MASK).
 * AArch64: FPCR.FZ (bit 24), which flushes both inputs and results. Elsewhere: nothing.
 *
 * The setting reaches only the calling thread: threads of a multithreaded BLAS keep their own
 * mode. The kernels of ffnet.c and rnn.c therefore also flush tiny values in the activations and
 * deltas they hand to the BLAS (see MOM__FLUSH_BELOW).
 */
#ifndef MOM_FPENV_H
#define MOM_FPENV_H

/* Magnitude below which the elementwise kernels set activations and deltas to zero when the
 * network's flush option is on: 2^-63. A product of two values at least this large is at least
 * 2^-126 = FLT_MIN, so products of flushed operands inside BLAS (a delta times an activation, an
 * activation times a weight of ordinary size) cannot be subnormal. */
#define MOM__FLUSH_BELOW 1.08420217e-19f /* 2^-63 */

/* The caller's state, saved by mom__fpenv_enter(). */
typedef struct mom__fpenv {
    unsigned long saved; /* control register as found */
    unsigned long mode;  /* the library's, while paused */
    int changed;         /* nonzero: mom__fpenv_leave() must restore */
} mom__fpenv;

/* If `on`, set flush-to-zero and denormals-are-zero for the calling thread; record what to
 * restore in *e (always call mom__fpenv_leave() with it afterwards). */
void mom__fpenv_enter(mom__fpenv *e, int on);

/* Restore the control bits saved by mom__fpenv_enter() (exception flags raised meanwhile stay
 * raised). */
void mom__fpenv_leave(const mom__fpenv *e);

/* Give the caller's mode back for a while, and take the library's again: an optimizer's step
 * calls the network in the mode the network would see if the caller called it, so that each
 * handle's flush option governs that handle's work only. Between mom__fpenv_enter() and
 * mom__fpenv_leave(); no effect if enter changed nothing, or for e NULL (what a caller passes
 * when the two handles' options agree: the modes are then the same, and a step spends nothing
 * on switching). */
void mom__fpenv_pause(mom__fpenv *e);
void mom__fpenv_resume(const mom__fpenv *e);

/* The calling thread's control register (x86 MXCSR, AArch64 FPCR; 0 elsewhere), and setting
 * another thread's control bits to it (its exception flags are kept): how a helper thread
 * (team.h) computes in the mode of the thread it helps. */
unsigned long mom__fpenv_control(void);
void mom__fpenv_adopt(unsigned long control);

#endif
