/* Flush-to-zero around library calls; see fpenv.h. No state outside the caller's struct: the
 * x86 DAZ support probe runs at every entry that changes the mode (one FXSAVE, well under a
 * microsecond, against calls that take milliseconds). */
#include "fpenv.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__SSE__) && defined(__GNUC__)
#include <xmmintrin.h>

#define MXCSR_DAZ 0x0040u
#define MXCSR_FTZ 0x8000u
#define MXCSR_FLAGS 0x003Fu /* sticky exception flags */

/* DAZ is supported when bit 6 of MXCSR_MASK (bytes 28..31 of the FXSAVE image) is set; a zero
 * mask means the default 0xFFBF, without DAZ. */
static unsigned daz_bit(void)
{
    _Alignas(16) unsigned char img[512];
    __asm__ __volatile__("fxsave %0" : "=m"(img));
    unsigned mask = (unsigned)img[28] | ((unsigned)img[29] << 8) | ((unsigned)img[30] << 16) |
                    ((unsigned)img[31] << 24);
    return (mask & MXCSR_DAZ) ? MXCSR_DAZ : 0u;
}

void mom__fpenv_enter(mom__fpenv *e, int on)
{
    unsigned cur = _mm_getcsr();
    e->saved = cur;
    e->changed = 0;
    if (!on || ((cur & MXCSR_FTZ) && (cur & MXCSR_DAZ)))
        return;
    unsigned want = cur | MXCSR_FTZ | daz_bit();
    if (want != cur) {
        _mm_setcsr(want);
        e->changed = 1;
    }
}

void mom__fpenv_leave(const mom__fpenv *e)
{
    if (e->changed)
        _mm_setcsr(((unsigned)e->saved & ~MXCSR_FLAGS) | (_mm_getcsr() & MXCSR_FLAGS));
}

unsigned long mom__fpenv_control(void) { return _mm_getcsr(); }

void mom__fpenv_adopt(unsigned long control)
{
    unsigned cur = _mm_getcsr();
    unsigned want = ((unsigned)control & ~MXCSR_FLAGS) | (cur & MXCSR_FLAGS);
    if (want != cur)
        _mm_setcsr(want);
}

#elif defined(__aarch64__) && defined(__GNUC__)

#define FPCR_FZ (1ul << 24)

void mom__fpenv_enter(mom__fpenv *e, int on)
{
    unsigned long cur;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(cur));
    e->saved = cur;
    e->changed = 0;
    if (on && !(cur & FPCR_FZ)) {
        unsigned long want = cur | FPCR_FZ;
        __asm__ __volatile__("msr fpcr, %0" : : "r"(want));
        e->changed = 1;
    }
}

void mom__fpenv_leave(const mom__fpenv *e)
{
    if (e->changed) {
        unsigned long v = e->saved;
        __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); /* FPSR (the flags) is separate */
    }
}

unsigned long mom__fpenv_control(void)
{
    unsigned long cur;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(cur));
    return cur;
}

void mom__fpenv_adopt(unsigned long control)
{
    if (mom__fpenv_control() != control)
        __asm__ __volatile__("msr fpcr, %0" : : "r"(control));
}

#else

void mom__fpenv_enter(mom__fpenv *e, int on)
{
    (void)on;
    e->saved = 0;
    e->changed = 0;
}

void mom__fpenv_leave(const mom__fpenv *e) { (void)e; }

unsigned long mom__fpenv_control(void) { return 0; }

void mom__fpenv_adopt(unsigned long control) { (void)control; }

#endif

void mom__fpenv_pause(mom__fpenv *e)
{
    if (e != NULL && e->changed) {
        e->mode = mom__fpenv_control();
        mom__fpenv_adopt(e->saved);
    }
}

void mom__fpenv_resume(const mom__fpenv *e)
{
    if (e != NULL && e->changed)
        mom__fpenv_adopt(e->mode);
}
