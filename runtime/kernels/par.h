/* par.h - the runtime's one way to split a kernel over threads.
 *
 * sqz_par_for(nt, parts, fn, arg) runs fn(arg, part) for every part in
 * [0, parts) and returns when all are done. Parts are independent (each
 * writes its own outputs and, if it needs one, its own scratch slice indexed
 * by part).
 *
 * Two ways, chosen per call:
 * - inside an OpenMP parallel region (the executor runs a whole inference in
 *   one team when the session has > 1 thread, see session.c): parts 1.. are
 *   OpenMP tasks, part 0 runs at once on the calling thread, then a taskwait.
 *   Idle team threads take tasks; the caller runs every task nobody has
 *   started yet. A worker that is still asleep (OMP_WAIT_POLICY=passive)
 *   therefore costs nothing but the wake-up call, where a parallel region per
 *   node waits for every worker to wake (~50-70 us each on a shared VM);
 * - otherwise (a kernel called on its own: tests, benches, a one-thread
 *   session): an OpenMP parallel for over the parts on up to nt threads.
 * Without OpenMP, or with nt <= 1 or parts <= 1, the parts run in order. */
#ifndef SQZ_KERNELS_PAR_H
#define SQZ_KERNELS_PAR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*sqz_par_fn)(void *arg, int part);

void sqz_par_for(int nt, int parts, sqz_par_fn fn, void *arg);

/* An element-wise fn over n floats: nt contiguous ranges split on 16-float
 * (cache line) bounds, fn(x + b, y + b, e - b) each (x may be NULL). */
typedef void (*sqz_par_eltwise_fn)(const float *x, float *y, size_t n);
void sqz_par_eltwise(int nt, sqz_par_eltwise_fn fn, const float *x, float *y, size_t n);

/* 1 when the caller runs inside an OpenMP parallel region (sqz_par_for then
 * uses tasks), 0 otherwise or without OpenMP. */
int sqz_par_in_team(void);

#ifdef __cplusplus
}
#endif
#endif
