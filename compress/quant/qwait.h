/* qwait.h - sleeping waits on an atomic int for the quantizer's threads
 * (private). A waiter that found its condition false sleeps until the word
 * changes (a futex on Linux, bounded to ~1 ms; elsewhere one sched_yield)
 * instead of yielding in a loop: on a CPU shared with other jobs,
 * sched_yield hands the core over for a whole time slice (EEVDF: ~0.5 ms
 * measured, sqz quant of LeNet-300-100 at 2 threads lost that at each of
 * its 15 batches), while a woken sleeper runs again within microseconds.
 *
 * A waiter spins Q_SPINS pauses (~25 us) before it sleeps: when both
 * threads have their cores the other's step is usually microseconds away,
 * and a sleeper's wake-up costs tens of microseconds (an idle vCPU woken):
 * MobileNet minmax at 2 threads, with 64 spins before the sleep, 80 -> 87 ms
 * minimum wall (the statistics of ~60 tensors a batch wait in turn).
 *
 * Protocol: the waker makes the condition true, then changes the word (or
 * the condition is the word's value), then calls q_wake; the waiter reads
 * the word, checks the condition, and calls q_sleep with the value it read
 * (it returns at once when the word changed since). */
#ifndef SQZC_QWAIT_H
#define SQZC_QWAIT_H

#include <stdatomic.h>

/* pauses a waiter spins before it sleeps */
#define Q_SPINS 1024

/* one pause of a spinning waiter */
static inline void q_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Sleep while *word == seen (or until a wake, a timeout, a signal);
 * *sleepers counts the sleeping threads (q_wake's test). */
void q_sleep(atomic_int *word, int seen, atomic_int *sleepers);
/* Wake every thread sleeping on word (a system call only when one is). */
void q_wake(atomic_int *word, atomic_int *sleepers);

#endif
