/* par.h - the runtime's one way to split a kernel over threads.
 *
 * sqz_par_for(nt, parts, fn, arg) runs fn(arg, part) for every part in
 * [0, parts) and returns when all are done. Parts are independent (each
 * writes its own outputs and, if it needs one, its own scratch slice indexed
 * by part).
 *
 * Three ways, chosen per call:
 * - on the master of sqz_par_team_run (the executor runs a whole inference
 *   that way when the session has > 1 thread, see session.c): the parts are
 *   claimed one by one by the caller and by helper tasks on the team's other
 *   threads (par.c). The caller runs every part nobody has taken, so a worker
 *   that is still asleep (OMP_WAIT_POLICY=passive) costs nothing but the
 *   wake-up call, where a parallel region per node waits for every worker to
 *   wake and then to arrive at its end (~50-70 us per region on a shared VM);
 * - inside some other OpenMP parallel region: parts 1.. are OpenMP tasks,
 *   part 0 runs on the caller, then a taskwait (which runs the tasks nobody
 *   has started);
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

/* Runs body(arg) on the calling thread with a team of nt threads (OpenMP)
 * whose other threads help with the sqz_par_for calls body makes: the
 * executor's one team per inference. Without OpenMP, with nt <= 1 or inside
 * another parallel region: body(arg) alone. */
void sqz_par_team_run(int nt, void (*body)(void *), void *arg);

/* 1 when the caller runs inside an OpenMP parallel region (sqz_par_for then
 * uses tasks), 0 otherwise or without OpenMP. */
int sqz_par_in_team(void);

#ifdef __cplusplus
}
#endif
#endif
