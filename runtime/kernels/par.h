/* par.h - the runtime's one way to split a kernel over threads.
 *
 * sqz_par_for(nt, parts, fn, arg) runs fn(arg, part) for every part in
 * [0, parts) and returns when all are done. Parts are independent (each
 * writes its own outputs and, if it needs one, its own scratch slice indexed
 * by part).
 *
 * Three ways, chosen per call:
 * - on the master of sqz_par_pool_run (the executor runs a whole inference
 *   that way when the session has > 1 thread, see session.c): the parts are
 *   claimed one by one by the caller and by the pool's helper threads
 *   (par.c). The caller runs every part nobody has taken and waits only for
 *   parts a helper started, so a helper that is asleep or has lost its CPU
 *   to another process costs nothing, where a parallel region per node (or
 *   per run) waits for every worker to wake and then to arrive at its end;
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

/* A pool of nt - 1 helper threads (POSIX threads, in builds with OpenMP)
 * kept by a session for all its runs; NULL when nt <= 1, without threads or
 * when none could be started (sqz_par_pool_run then runs body alone). */
typedef struct sqz_par_pool sqz_par_pool;
sqz_par_pool *sqz_par_pool_new(int nt);
void sqz_par_pool_free(sqz_par_pool *pool);

/* Runs body(arg) on the calling thread, the pool's helpers taking parts of
 * the sqz_par_for calls body makes: the executor's inference. Without a
 * pool, inside a parallel region (the kernels then use the caller's team)
 * or nested in another pool run: body(arg) alone. */
void sqz_par_pool_run(sqz_par_pool *pool, void (*body)(void *), void *arg);

/* sqz_par_pool_run on a pool of nt threads made for this call (tests) */
void sqz_par_team_run(int nt, void (*body)(void *), void *arg);

/* 1 when the caller runs inside an OpenMP parallel region (sqz_par_for then
 * uses tasks), 0 otherwise or without OpenMP. */
int sqz_par_in_team(void);

#ifdef __cplusplus
}
#endif
#endif
