/* par.c - sqz_par_for and the executor's team (contract in par.h).
 *
 * Inside sqz_par_team_run the calling thread (the master) publishes each
 * sqz_par_for in the team's mailbox: the parts are claimed one at a time
 * through an atomic counter by the master and by helper tasks. A helper task
 * is created only when none is queued or running; it claims parts of
 * whatever job is current and ends when there is nothing left to claim. The
 * master never waits for a helper to start (it claims every part nobody has
 * taken) and never sleeps in an OpenMP wait: it only waits for the parts
 * already running on a helper, which are bounded work (spinning briefly, then
 * yielding the CPU). A helper that wakes late finds a later job, or nothing.
 *
 * The mailbox is a seqlock: word = generation << 32 | back << 16 | front,
 * the unclaimed parts being [front, back). The master marks the word busy,
 * writes the job, then publishes (generation + 1, back = parts, front = 0);
 * a claimer reads the word, then the job, and claims with a CAS on the word
 * it read, so a claim only succeeds for the job it read.
 * The master claims from the front, helpers from the back: with two
 * threads the master runs the first parts and the helper the last ones on
 * every run and every node, so the data a part touches (its half of the
 * weights, its rows of the activations, which the previous split node wrote
 * on the same core) stays in that core's cache. (Both claiming from the
 * front gave the halves to whichever core came first.) */
#include "par.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(SQZ_HAVE_OPENMP)
#include <omp.h>
#include <stdatomic.h>
#if defined(__unix__)
#include <sched.h>
#endif
#endif

typedef struct elt_job {
    sqz_par_eltwise_fn fn;
    const float *x;
    float *y;
    size_t n;
    int parts;
} elt_job;

static void elt_part(void *arg, int t) {
    const elt_job *j = arg;
    size_t nt = (size_t)j->parts, b = j->n * (size_t)t / nt / 16 * 16,
           e = (size_t)t + 1 == nt ? j->n : j->n * (size_t)(t + 1) / nt / 16 * 16;
    if (e > b) j->fn(j->x ? j->x + b : NULL, j->y + b, e - b);
}

void sqz_par_eltwise(int nt, sqz_par_eltwise_fn fn, const float *x, float *y, size_t n) {
    if (nt <= 1) {
        fn(x, y, n);
        return;
    }
    /* a few ranges per thread: a helper that starts late still takes some */
    int parts = 4 * nt;
    elt_job j = {fn, x, y, n, parts};
    sqz_par_for(nt, parts, elt_part, &j);
}

#if defined(SQZ_HAVE_OPENMP)

#define MB_BUSY 0xFFFFFFFFu

typedef struct team {
    _Atomic uint64_t word; /* generation << 32 | back << 16 | front (MB_BUSY: being written) */
    _Atomic(sqz_par_fn) fn;
    _Atomic(void *) arg;
    _Atomic int done;    /* parts finished in this generation */
    _Atomic int helpers; /* helper tasks queued or running */
    _Atomic int closing; /* the body is done: helpers stop waiting for jobs */
    int nt, spin;
    int active; /* master only: a job is running (a nested sqz_par_for runs inline) */
} team;

/* most parts one mailbox job holds (back and front are 16-bit fields; the
 * busy mark has both at 0xFFFF) */
#define TEAM_MAX_PARTS 0xFFF0

typedef struct offset_job {
    sqz_par_fn fn;
    void *arg;
    int base;
} offset_job;

static void offset_part(void *arg, int part) {
    const offset_job *o = arg;
    o->fn(o->arg, o->base + part);
}

/* the team this thread is the master of (NULL: none) */
static _Thread_local team *cur_team;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claim and run parts of the current job until none is left: from the front
 * (the master) or from the back (helpers). */
static void claim_parts(team *t, int from_back) {
    for (;;) {
        uint64_t w = atomic_load_explicit(&t->word, memory_order_acquire);
        uint32_t lo = (uint32_t)w;
        if (lo == MB_BUSY) return;
        uint32_t front = lo & 0xFFFFu, back = lo >> 16;
        if (front >= back) return;
        sqz_par_fn fn = atomic_load_explicit(&t->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&t->arg, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire); /* the job reads stay before the CAS */
        uint32_t part = from_back ? back - 1 : front;
        uint64_t nw = from_back ? w - ((uint64_t)1 << 16) : w + 1;
        /* the CAS succeeds only if the word (so the job) did not change */
        if (!atomic_compare_exchange_weak_explicit(&t->word, &w, nw, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        fn(arg, (int)part);
        atomic_fetch_add_explicit(&t->done, 1, memory_order_release);
    }
}

/* a part of the current job is left to claim */
static int claimable(team *t) {
    uint32_t lo = (uint32_t)atomic_load_explicit(&t->word, memory_order_acquire);
    return lo != MB_BUSY && (lo & 0xFFFFu) < (lo >> 16);
}

static void helper(team *t) {
    for (;;) {
        claim_parts(t, 1);
        /* wait a little for the next job here (TEAM_SPIN /
         * TEAM_PASSIVE_SPIN): cheaper than a new task per split node */
        for (int spin = 0; spin < t->spin; spin++) {
            if (atomic_load_explicit(&t->closing, memory_order_acquire) || claimable(t)) break;
            cpu_relax();
        }
        if (claimable(t)) continue;
        atomic_fetch_sub_explicit(&t->helpers, 1, memory_order_acq_rel);
        /* a job published while we were leaving saw us still counted and
         * made no new helper: take it */
        if (!claimable(t)) return;
        atomic_fetch_add_explicit(&t->helpers, 1, memory_order_acq_rel);
    }
}

/* Pauses a helper waits for the next job of the same inference before it
 * leaves (its thread then sleeps in the OpenMP runtime and the next split
 * must wake it: 15-25 us on this VM). Spinning workers (the default) wait
 * ~tens of us; with OMP_WAIT_POLICY=passive still a short while (a few us
 * to ~10 us), so the nodes of one inference do not each pay a wake-up but
 * an idle session does not keep a core busy. MobileNetV2 at 2 threads,
 * passive: fp32 4.56 -> 3.56 ms, int8 2.56 -> 1.84 ms (with the int8 split
 * minimum of int8_simd.h at 4 us); spinning 3.40 / 1.74 ms. */
#define TEAM_SPIN 2000
#define TEAM_PASSIVE_SPIN 1000

/* OMP_WAIT_POLICY=passive */
static int passive_policy(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("OMP_WAIT_POLICY");
        v = e && (e[0] == 'p' || e[0] == 'P');
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

static void team_for(team *t, int parts, sqz_par_fn fn, void *arg) {
    uint64_t w = atomic_load_explicit(&t->word, memory_order_relaxed);
    uint64_t gen = (w >> 32) + 1;
    atomic_store_explicit(&t->word, gen << 32 | MB_BUSY, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* BUSY is seen before the new job */
    atomic_store_explicit(&t->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&t->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&t->done, 0, memory_order_relaxed);
    atomic_store_explicit(&t->word, gen << 32 | (uint64_t)parts << 16, memory_order_release);
    if (atomic_load_explicit(&t->helpers, memory_order_acquire) < t->nt - 1) {
        atomic_fetch_add_explicit(&t->helpers, 1, memory_order_acq_rel);
#pragma omp task default(none) firstprivate(t)
        helper(t);
    }
    claim_parts(t, 0);
    /* only parts a helper is running are left: bounded work */
    for (long spin = 0; atomic_load_explicit(&t->done, memory_order_acquire) < parts; spin++) {
        cpu_relax();
#if defined(__unix__)
        if (spin > 4000) sched_yield(); /* the helper may have lost its CPU */
#endif
    }
}

#endif /* SQZ_HAVE_OPENMP */

void sqz_par_team_run(int nt, void (*body)(void *), void *arg) {
#if defined(SQZ_HAVE_OPENMP)
    if (nt > 1 && !omp_in_parallel()) {
        team t;
        memset(&t, 0, sizeof t);
        atomic_init(&t.word, 0);
        atomic_init(&t.fn, NULL);
        atomic_init(&t.arg, NULL);
        atomic_init(&t.done, 0);
        atomic_init(&t.helpers, 0);
        atomic_init(&t.closing, 0);
        t.nt = nt;
        t.spin = passive_policy() ? TEAM_PASSIVE_SPIN : TEAM_SPIN;
#pragma omp parallel num_threads(nt) default(none) shared(t, body, arg)
        {
#pragma omp master
            {
                cur_team = &t;
                body(arg);
                cur_team = NULL;
                atomic_store_explicit(&t.closing, 1, memory_order_release);
            }
        } /* the helpers still queued end at this barrier (nothing to claim) */
        return;
    }
#else
    (void)nt;
#endif
    body(arg);
}

int sqz_par_in_team(void) {
#if defined(SQZ_HAVE_OPENMP)
    return omp_in_parallel();
#else
    return 0;
#endif
}

void sqz_par_for(int nt, int parts, sqz_par_fn fn, void *arg) {
    if (parts <= 0) return;
#if defined(SQZ_HAVE_OPENMP)
    if (nt > 1 && parts > 1) {
        if (cur_team && !cur_team->active) {
            cur_team->active = 1;
            if (parts <= TEAM_MAX_PARTS) {
                team_for(cur_team, parts, fn, arg);
            } else { /* the mailbox counts parts in 16 bits: chunks of them */
                for (int base = 0; base < parts; base += TEAM_MAX_PARTS) {
                    offset_job o = {fn, arg, base};
                    int n = parts - base < TEAM_MAX_PARTS ? parts - base : TEAM_MAX_PARTS;
                    team_for(cur_team, n, offset_part, &o);
                }
            }
            cur_team->active = 0;
            return;
        }
        if (cur_team) { /* nested in a part the master runs: inline */
            for (int p = 0; p < parts; p++) fn(arg, p);
            return;
        }
        if (omp_in_parallel()) {
            /* a caller's own team: tasks for parts 1.., part 0 here;
             * taskwait runs the tasks no other thread has started */
            for (int p = 1; p < parts; p++) {
#pragma omp task default(none) firstprivate(p, fn, arg)
                fn(arg, p);
            }
            fn(arg, 0);
#pragma omp taskwait
            return;
        }
        if (nt > parts) nt = parts;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int p = 0; p < parts; p++) fn(arg, p);
        return;
    }
#else
    (void)nt;
#endif
    for (int p = 0; p < parts; p++) fn(arg, p);
}
