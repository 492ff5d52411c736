/* cmd_bench.h - the `sqz bench` subcommand. */
#ifndef SQZ_CMD_BENCH_H
#define SQZ_CMD_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "bench". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_bench(int argc, char **argv);
void cmd_bench_usage(FILE *f);

/* Statistics of n run times (sorted in place): median (mean of the two middle
 * values when n is even), min, mean, max. n >= 1. Exposed for unit tests. */
typedef struct bench_stats {
    double median, min, mean, max;
} bench_stats;
void bench_stats_compute(double *t, int n, bench_stats *out);

/* Fixed pseudo-random fill, uniform in [-1, 1): the same (seed, count) gives
 * the same data on every platform. */
void bench_fill(float *x, size_t count, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
