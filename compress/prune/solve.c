/* solve.c - per-layer ratios from a sensitivity table: multiple-choice
 * knapsack by dynamic programming over the quantised drop. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "sqzc/prune_solve.h"

#define UNITS_PER_POINT 100.0 /* drop resolution: 0.01 point */
#define MAX_UNITS 20000       /* 200 points: more is never a useful prediction */

int sqzc_sens_solve(const sqzc_sens_table *t, double max_drop, double need_gain, int *choice,
                    double *pred_drop, double *pred_gain) {
    if (!t || !choice || t->n_layers < 0 || t->n_ratios < 1 || !t->drop || !t->gain) return -1;
    int L = t->n_layers, R = t->n_ratios;
    int B;
    if (need_gain > 0) {
        B = MAX_UNITS;
    } else {
        if (!(max_drop >= 0)) return -1;
        double b = floor(max_drop * UNITS_PER_POINT + 1e-9);
        B = b > MAX_UNITS ? MAX_UNITS : (int)b;
    }
    int *units = malloc(((size_t)L * R + 1) * sizeof *units);
    double *best = malloc(((size_t)B + 1) * sizeof *best);
    double *next = malloc(((size_t)B + 1) * sizeof *next);
    signed char *pick = malloc((size_t)L * ((size_t)B + 1) + 1); /* choice + 1 per (layer, b) */
    int rc = -1;
    if (!units || !best || !next || !pick || R > 126) goto done;
    for (int l = 0; l < L; l++) {
        double run = 0;
        for (int r = 0; r < R; r++) {
            double d = t->drop[(size_t)l * R + r];
            if (d > run) run = d; /* monotone: a larger ratio never predicts less drop */
            double u = ceil(run * UNITS_PER_POINT - 1e-9);
            units[(size_t)l * R + r] = u > MAX_UNITS ? MAX_UNITS + 1 : (int)u;
        }
    }
    /* best[b]: the largest gain of the layers so far with drop units <= b */
    for (int b = 0; b <= B; b++) best[b] = 0;
    for (int l = 0; l < L; l++) {
        signed char *pk = pick + (size_t)l * (B + 1);
        for (int b = 0; b <= B; b++) {
            double v = best[b];
            int c = 0;
            for (int r = 0; r < R; r++) {
                int u = units[(size_t)l * R + r];
                if (u > b) continue;
                double w = best[b - u] + t->gain[(size_t)l * R + r];
                if (w > v) v = w, c = r + 1;
            }
            next[b] = v;
            pk[b] = (signed char)c;
        }
        double *s = best;
        best = next;
        next = s;
    }
    int bsel = -1;
    if (need_gain > 0) {
        for (int b = 0; b <= B && bsel < 0; b++)
            if (best[b] >= need_gain * (1 - 1e-12)) bsel = b;
        if (bsel < 0) {
            rc = 1;
            goto done;
        }
    } else {
        bsel = B;
        while (bsel > 0 && best[bsel - 1] >= best[B]) bsel--; /* same gain, less drop */
    }
    double pd = 0, pg = 0;
    for (int l = L - 1, b = bsel; l >= 0; l--) {
        int c = pick[(size_t)l * (B + 1) + b] - 1;
        choice[l] = c;
        if (c >= 0) {
            b -= units[(size_t)l * R + c];
            pg += t->gain[(size_t)l * R + c];
            pd += units[(size_t)l * R + c] / UNITS_PER_POINT;
        }
    }
    if (pred_drop) *pred_drop = pd;
    if (pred_gain) *pred_gain = pg;
    rc = 0;
done:
    free(units);
    free(best);
    free(next);
    free(pick);
    return rc;
}
