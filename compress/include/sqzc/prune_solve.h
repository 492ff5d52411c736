/* sqzc/prune_solve.h - per-layer pruning ratios chosen from a sensitivity
 * table (one layer pruned at a time, accuracy drop per ladder ratio).
 *
 * Model: the drops of layers pruned together add up, and so do their gains
 * (weights or MACs removed). Under that model the choice of one ladder entry
 * per layer is a multiple-choice knapsack, solved exactly by dynamic
 * programming over the drop quantised to 0.01 point. The caller checks the
 * real combined drop (it is not additive, above all after a refit) and
 * rescales the budget. */
#ifndef SQZC_PRUNE_SOLVE_H
#define SQZC_PRUNE_SOLVE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqzc_sens_table {
    int n_layers, n_ratios;
    const double *drop; /* [n_layers * n_ratios]: drop (points) with that layer alone at ratio r */
    const double *gain; /* [n_layers * n_ratios]: what that layer at ratio r removes (> 0) */
} sqzc_sens_table;

/* Choose choice[l] in -1 (layer unpruned) .. n_ratios - 1. Drops are made
 * monotone along the ladder (running maximum), clamped at 0 and rounded up
 * to 0.01 point; predicted drops above 200 points are never chosen.
 *   need_gain <= 0: the largest total gain whose predicted drop <= max_drop
 *                   (ties: the smaller drop);
 *   need_gain > 0:  the smallest predicted drop whose total gain >= need_gain
 *                   (max_drop ignored).
 * *pred_drop / *pred_gain (may be NULL) receive the predicted totals.
 * Returns 0, 1 when need_gain cannot be reached, -1 on bad arguments / OOM. */
int sqzc_sens_solve(const sqzc_sens_table *t, double max_drop, double need_gain, int *choice,
                    double *pred_drop, double *pred_gain);

#ifdef __cplusplus
}
#endif
#endif
