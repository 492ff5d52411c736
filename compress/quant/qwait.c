/* qwait.c - sleeping waits on an atomic int (qwait.h). */
#define _GNU_SOURCE 1
#include "qwait.h"

#include <sched.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

void q_sleep(atomic_int *word, int seen, atomic_int *sleepers) {
    atomic_fetch_add(sleepers, 1);
#if defined(__linux__)
    /* (the kernel sleeps only while *word == seen: a wake between our read
     * and this call is not lost; the timeout bounds a wait on a waker that
     * does not call q_wake) */
    const struct timespec to = {0, 1000000};
    if (atomic_load(word) == seen)
        syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, seen, &to, NULL, 0);
#else
    if (atomic_load(word) == seen) sched_yield();
#endif
    atomic_fetch_sub(sleepers, 1);
}

void q_wake(atomic_int *word, atomic_int *sleepers) {
#if defined(__linux__)
    if (atomic_load(sleepers) > 0)
        syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)word;
    (void)sleepers;
#endif
}
