/* par.c - sqz_par_for (contract in par.h). */
#include "par.h"

#if defined(SQZ_HAVE_OPENMP)
#include <omp.h>
#endif

typedef struct elt_job {
    sqz_par_eltwise_fn fn;
    const float *x;
    float *y;
    size_t n;
    int nt;
} elt_job;

static void elt_part(void *arg, int t) {
    const elt_job *j = arg;
    size_t nt = (size_t)j->nt, b = j->n * (size_t)t / nt / 16 * 16,
           e = (size_t)t + 1 == nt ? j->n : j->n * (size_t)(t + 1) / nt / 16 * 16;
    if (e > b) j->fn(j->x ? j->x + b : NULL, j->y + b, e - b);
}

void sqz_par_eltwise(int nt, sqz_par_eltwise_fn fn, const float *x, float *y, size_t n) {
    if (nt <= 1) {
        fn(x, y, n);
        return;
    }
    elt_job j = {fn, x, y, n, nt};
    sqz_par_for(nt, nt, elt_part, &j);
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
        if (omp_in_parallel()) {
            /* tasks for parts 1.., part 0 here; taskwait runs the tasks no
             * other thread has started */
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
