/* par.c - sqz_par_for and the executor's team (contract in par.h).
 *
 * Inside sqz_par_pool_run the calling thread (the master) publishes each
 * sqz_par_for in the pool's mailbox: the parts are claimed one at a time
 * through an atomic counter by the master and by the pool's helper threads,
 * which live as long as the pool (the session) and spin or sleep between
 * jobs. The master never waits for a helper to start (it claims every part
 * nobody has taken) and there is no barrier at the end of a run: it only
 * waits for the parts already running on a helper, which are bounded work
 * (spinning briefly, then yielding the CPU). A helper that wakes late finds
 * a later job, or nothing.
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
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, sched_getaffinity, pthread_setaffinity_np */
#endif
#include "par.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(SQZ_HAVE_OPENMP)
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
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

/* The solo probe (pool_probe_run): POOL_PROBE_K runs with every part on the
 * master (the helpers idle), then POOL_PROBE_WARM + POOL_PROBE_K runs split as
 * usual (the first POOL_PROBE_WARM, waking the helpers, not counted); if the
 * median split run is slower than POOL_PROBE_SOLO times the median solo run,
 * the runs until the next probe are solo. The bar favours splitting: the
 * master runs every part no helper claimed, so a slow helper costs a split
 * run little, and 8 runs taken while another process holds the second CPU
 * for a moment mislead (solo when split >= 0.97 solo, the first bar: a `yes` on
 * one CPU took small ResNet / MobileNet 2-thread medians from 0.114 / 0.100
 * ms to 0.115-0.139 / 0.100-0.135; with 1.10 0.114-0.116 / 0.100-0.103, as
 * SQZ_POOL_PROBE=0). First after
 * POOL_PROBE_FIRST runs, then every POOL_PROBE_EVERY runs (every
 * POOL_PROBE_SOLO_EVERY after a solo choice: a good period comes back
 * soon). On this 2-vCPU KVM guest, shared with other jobs, there are
 * periods (seconds to minutes) where a core-to-core round trip of a cache
 * line takes 0.3-1 us instead of 0.07-0.1 (two 1-thread processes on the two
 * CPUs run at full speed meanwhile) and every split run takes twice its
 * 1-thread time: small MobileNet 0.27 ms a run vs 0.131 at one thread and
 * 0.100 at two in a good period (ONNX Runtime at the same time: 0.241 vs
 * 0.150). With the probe 0.135 in such periods, 0.100-0.101 in good ones;
 * the probe's solo runs cost ~2% of them (the median unchanged).
 * The first probe waits POOL_PROBE_FIRST = 64 runs (was 16): its 8 solo runs
 * are a one-time cost of 8 x (1-thread - 2-thread time), which a process of a
 * few dozen runs of a large model pays in full (MobileNetV2 at 2 threads:
 * 8 runs at ~6.9 ms among ~25 of ~3.8 ms in one bench/latency.sh round,
 * which raises the round's median to its split runs' 70th percentile), while
 * a small model reaches run 64 within ~10 ms.
 * SQZ_POOL_PROBE=0: always split (A/B). */
#define POOL_PROBE_K 8
#define POOL_PROBE_WARM 2
#define POOL_PROBE_FIRST 64
#define POOL_PROBE_EVERY 512
#define POOL_PROBE_SOLO_EVERY 256
#define POOL_PROBE_SOLO 1.10

struct sqz_par_pool {
    _Atomic uint64_t word; /* generation << 32 | back << 16 | front (MB_BUSY: being written) */
    _Atomic(sqz_par_fn) fn;
    _Atomic(void *) arg;
    _Atomic int done;     /* parts finished in this generation */
    _Atomic int sleepers; /* helpers asleep (or about to be) on cv */
    _Atomic int closing;  /* sqz_par_pool_free: helpers exit */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nt, started;
#if defined(__linux__)
    cpu_set_t allowed; /* the creating thread's CPUs (the helpers get them less the master's) */
#endif
    int away;     /* the master's CPU the helpers were last moved off (-1: none) */
    long spin_ns; /* how long an idle helper spins before it sleeps */
    int active;   /* master only: a job is running (a nested sqz_par_for runs inline) */
    /* master only: the solo probe (pool_probe) */
    int solo;      /* runs keep every part on the master */
    int probe;     /* 0, or runs left in the current probe */
    int probe_off; /* SQZ_POOL_PROBE=0 */
    long runs;     /* runs since the pool started */
    long next;     /* the run that starts the next probe */
    long t_probe[2 * POOL_PROBE_K + POOL_PROBE_WARM];
    pthread_t th[];
};
typedef struct sqz_par_pool team;

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

/* the pool this thread is running (the master, in sqz_par_pool_run) */
static _Thread_local team *cur_team;
/* 1 on a pool's helper threads: a nested sqz_par_for runs inline */
static _Thread_local int pool_helper;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
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
static int claimable(team *t, memory_order mo) {
    uint32_t lo = (uint32_t)atomic_load_explicit(&t->word, mo);
    return lo != MB_BUSY && (lo & 0xFFFFu) < (lo >> 16);
}

/* A helper thread: claims parts of every job it sees; between jobs it spins
 * for spin_ns (the next split node, or the next run, usually comes sooner),
 * then sleeps until a job is published. The master never waits for a helper
 * to arrive: a helper that is asleep or has lost its CPU to another process
 * claims nothing, and the master runs every part itself (1-thread speed
 * where an OpenMP region per run waited at its end for every thread to
 * arrive: small ResNet, 2 threads, the other core busy, mean 5-12 ms a run). */
static void *helper_main(void *vp) {
    team *t = vp;
    pool_helper = 1;
    for (;;) {
        claim_parts(t, 1);
        long t0 = now_ns();
        for (int i = 1;; i++) {
            if (atomic_load_explicit(&t->closing, memory_order_acquire) ||
                claimable(t, memory_order_acquire))
                break;
            cpu_relax();
            if (i % 64 == 0 && now_ns() - t0 > t->spin_ns) break;
        }
        if (atomic_load_explicit(&t->closing, memory_order_acquire)) return NULL;
        if (claimable(t, memory_order_acquire)) continue;
        /* sleep: sleepers is raised before the last look at the mailbox and
         * the master publishes before it reads sleepers (both seq_cst), so
         * either this helper sees the job or the master wakes it */
        pthread_mutex_lock(&t->mu);
        atomic_fetch_add(&t->sleepers, 1);
        while (!claimable(t, memory_order_seq_cst) && !atomic_load(&t->closing))
            pthread_cond_wait(&t->cv, &t->mu);
        atomic_fetch_sub(&t->sleepers, 1);
        pthread_mutex_unlock(&t->mu);
    }
}

/* How long an idle helper spins before it sleeps: about what sleeping
 * costs (a sleeping helper took 15-25 us to wake on this VM), as a run's
 * split nodes, and in a loop of inferences the next run, mostly come sooner.
 * Longer spins took the CPU share of the process from the thread doing the
 * work when the machine is busy: 2 threads, load ~13, same run, medians
 * 2 ms -> 50 us: MobileNetV2 46.6 -> 28.3 ms, ResNet-18 152 -> 101 ms, the
 * small ResNet equal. OMP_WAIT_POLICY=passive: 10 us. SQZ_POOL_SPIN_NS
 * overrides (A/B). */
#define POOL_SPIN_NS 50000L
#define POOL_PASSIVE_SPIN_NS 10000L

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
    atomic_store(&t->word, gen << 32 | (uint64_t)parts << 16); /* seq_cst: see helper_main */
    if (atomic_load(&t->sleepers) > 0) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    claim_parts(t, 0);
    /* only parts a helper is running are left: bounded work */
    for (long spin = 0; atomic_load_explicit(&t->done, memory_order_acquire) < parts; spin++) {
        cpu_relax();
        if (spin > 4000) sched_yield(); /* the helper may have lost its CPU */
    }
}

/* The helpers run on the CPUs the pool's creator may use less the one the
 * master is on (set by the master when that CPU changes, checked at each
 * run): a new or woken helper is often put on the CPU of the thread that
 * woke it, where it waits for the master's time slice to end while the
 * master runs every part alone, and the scheduler left it there for
 * hundreds of runs when the other CPU was busy with other jobs (small
 * ResNet, 2 threads: split runs at the 1-thread time, 0.19 ms, from run 1 to
 * ~600; then 0.113). */
static void keep_helpers_away(team *t) {
#if defined(__linux__)
    int c = sched_getcpu();
    if (t->away == -2 || c < 0 || c >= CPU_SETSIZE || c == t->away) return;
    t->away = c;
    cpu_set_t m = t->allowed;
    CPU_CLR(c, &m);
    if (CPU_COUNT(&m) == 0) return;
    for (int i = 0; i < t->started; i++) pthread_setaffinity_np(t->th[i], sizeof m, &m);
#else
    (void)t;
#endif
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* One run of body on the master (cur_team = t), solo or split as the probe
 * says; during a probe, timed. */
static void pool_probe_run(team *t, void (*body)(void *), void *arg) {
    enum { RUNS = 2 * POOL_PROBE_K + POOL_PROBE_WARM };
    t->runs++;
    if (!t->probe_off && t->probe == 0 && t->runs >= t->next) t->probe = RUNS;
    if (t->probe == 0) {
        body(arg);
        return;
    }
    int i = RUNS - t->probe; /* [0, K) solo, then warm-up and K split */
    int keep = t->solo;
    t->solo = i < POOL_PROBE_K;
    long t0 = now_ns();
    body(arg);
    t->t_probe[i] = now_ns() - t0;
    t->solo = keep;
    if (--t->probe > 0) return;
    /* medians of the solo runs and of the counted split runs */
    long *so = t->t_probe, *sp = t->t_probe + POOL_PROBE_K + POOL_PROBE_WARM;
    qsort(so, POOL_PROBE_K, sizeof(long), cmp_long);
    qsort(sp, POOL_PROBE_K, sizeof(long), cmp_long);
    t->solo = (double)sp[POOL_PROBE_K / 2] > POOL_PROBE_SOLO * (double)so[POOL_PROBE_K / 2];
    t->next = t->runs + (t->solo ? POOL_PROBE_SOLO_EVERY : POOL_PROBE_EVERY);
}

#endif /* SQZ_HAVE_OPENMP */

sqz_par_pool *sqz_par_pool_new(int nt) {
#if defined(SQZ_HAVE_OPENMP)
    if (nt <= 1) return NULL;
    team *t = calloc(1, sizeof *t + (size_t)(nt - 1) * sizeof(pthread_t));
    if (!t) return NULL;
    atomic_init(&t->word, 0);
    atomic_init(&t->fn, NULL);
    atomic_init(&t->arg, NULL);
    atomic_init(&t->done, 0);
    atomic_init(&t->sleepers, 0);
    atomic_init(&t->closing, 0);
    t->away = -1;
#if defined(__linux__)
    if (sched_getaffinity(0, sizeof t->allowed, &t->allowed)) t->away = -2; /* unknown: never */
#endif
    t->nt = nt;
    t->next = POOL_PROBE_FIRST;
    const char *pe = getenv("SQZ_POOL_PROBE");
    t->probe_off = pe && pe[0] == '0';
    t->spin_ns = passive_policy() ? POOL_PASSIVE_SPIN_NS : POOL_SPIN_NS;
    const char *se = getenv("SQZ_POOL_SPIN_NS");
    if (se && *se) t->spin_ns = strtol(se, NULL, 10);
    if (pthread_mutex_init(&t->mu, NULL)) {
        free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->cv, NULL)) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    for (int i = 0; i < nt - 1; i++) {
        if (pthread_create(&t->th[i], NULL, helper_main, t)) break;
        t->started++;
    }
    if (t->started == 0) {
        sqz_par_pool_free(t);
        return NULL;
    }
    return t;
#else
    (void)nt;
    return NULL;
#endif
}

void sqz_par_pool_free(sqz_par_pool *t) {
#if defined(SQZ_HAVE_OPENMP)
    if (!t) return;
    atomic_store(&t->closing, 1);
    pthread_mutex_lock(&t->mu);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->started; i++) pthread_join(t->th[i], NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
#else
    (void)t;
#endif
}

void sqz_par_pool_run(sqz_par_pool *t, void (*body)(void *), void *arg) {
#if defined(SQZ_HAVE_OPENMP)
    /* inside a caller's parallel region the kernels use its team (tasks) */
    if (t && !cur_team && !pool_helper && !omp_in_parallel()) {
        keep_helpers_away(t);
        cur_team = t;
        pool_probe_run(t, body, arg);
        cur_team = NULL;
        return;
    }
#else
    (void)t;
#endif
    body(arg);
}

void sqz_par_team_run(int nt, void (*body)(void *), void *arg) {
    sqz_par_pool *t = sqz_par_pool_new(nt);
    sqz_par_pool_run(t, body, arg);
    sqz_par_pool_free(t);
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
        if (cur_team && !cur_team->active && !cur_team->solo) {
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
        if (cur_team || pool_helper) { /* nested in a part: inline */
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
