/* cmd_bench.c - `sqz bench`: inference latency of a .sqz model, in the manner
 * of ncnn's benchncnn and onnxruntime_perf_test: fixed input, W warm-up runs,
 * then R timed runs (CLOCK_MONOTONIC around each run), median / min / mean /
 * max and the activation arena. */
#include "cmd_bench.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sqzc/npy.h"
#include "sqz/sqz.h"

#define CMD "bench"
#define MAX_RUNS 10000000LL
#define MAX_THREADS 1024LL

void cmd_bench_usage(FILE *f) {
    fprintf(f,
            "usage: sqz bench model.sqz [--threads N] [--runs R] [--warmup W]\n"
            "                 [--input-shape name:d0,d1,...]... [--input x.npy] [--output y.npy]\n"
            "                 [--seed S] [--json]\n\n"
            "Latency of one inference. Creates one session, fills every input once with\n"
            "fixed pseudo-random data (uniform in [-1,1), from --seed) or with --input,\n"
            "runs W warm-up inferences, then R timed ones. Each timed run is\n"
            "set_input + run, measured with CLOCK_MONOTONIC. Prints median, min, mean and\n"
            "max milliseconds and the activation arena bytes.\n\n"
            "  --threads N                worker threads (default 1)\n"
            "  --runs R                   timed runs (default 50)\n"
            "  --warmup W                 untimed warm-up runs (default 10)\n"
            "  --input-shape NAME:DIMS    session input shape (repeatable)\n"
            "  --input PATH               .npy for the first input instead of random data\n"
            "                             (its shape must equal the session's input shape)\n"
            "  --output PATH              write the first output of the last run as .npy\n"
            "  --seed S                   seed of the random input (default 1)\n"
            "  --json                     one JSON object: median_ms, min_ms, mean_ms, max_ms,\n"
            "                             arena_bytes, runs, warmup, threads, times_ms, ...\n"
            "  -h, --help                 this help\n\n"
            "For stable figures pin the process (taskset -c 0, OMP_PROC_BIND=close) and keep\n"
            "OMP_NUM_THREADS equal to --threads; compare peers measured in the same run.\n");
}

/* ---------------------------------------------------------------- helpers */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_stats_compute(double *t, int n, bench_stats *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += t[i];
    out->min = t[0];
    out->max = t[n - 1];
    out->mean = sum / n;
    out->median = (n & 1) ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

void bench_fill(float *x, size_t count, uint64_t seed) {
    uint64_t z = seed;
    for (size_t i = 0; i < count; i++) {
        /* splitmix64 */
        z += 0x9E3779B97F4A7C15ull;
        uint64_t v = z;
        v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
        v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
        v ^= v >> 31;
        /* top 24 bits -> [0,1) exactly representable, then [-1,1) */
        x[i] = (float)(v >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
    }
}

typedef struct bench_opts {
    const char *model, *input, *output;
    long long threads, runs, warmup, seed;
    int json;
    cli_shapes shapes;
} bench_opts;

/* 0 ok, 1 help printed, -1 error printed. */
static int parse_args(int argc, char **argv, bench_opts *o) {
    const cli_opt opts[] = {
        {.name = "--threads", .kind = CLI_INT, .dst = &o->threads, .lo = 1, .hi = MAX_THREADS},
        {.name = "--runs", .kind = CLI_INT, .dst = &o->runs, .lo = 1, .hi = MAX_RUNS},
        {.name = "--warmup", .kind = CLI_INT, .dst = &o->warmup, .lo = 0, .hi = MAX_RUNS},
        {.name = "--seed", .kind = CLI_INT, .dst = &o->seed, .lo = 0, .hi = INT64_MAX},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &o->shapes},
        {.name = "--input", .kind = CLI_STR, .dst = &o->input},
        {.name = "--output", .kind = CLI_STR, .dst = &o->output},
        {.name = "--json", .kind = CLI_FLAG, .dst = &o->json, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_bench_usage(stdout);
            return 1;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which < 0 && cli_positional(CMD, a, &o->model) != 0) return -1;
    }
    if (!o->model) {
        cli_error(CMD, "missing model.sqz (try sqz bench --help)");
        return -1;
    }
    return 0;
}

static int same_shape(const sqz_shape *a, const sqz_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim && i < SQZ_MAX_DIMS; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static int run_once(sqz_session *s, float **in, const size_t *count, int n_in, sqz_status *st) {
    for (int k = 0; k < n_in; k++)
        if (sqz_session_set_input(s, k, in[k], count[k], st) != SQZ_OK) return -1;
    return sqz_session_run(s, st) == SQZ_OK ? 0 : -1;
}

static void print_json(const bench_opts *o, const sqz_model *m, const sqz_session *s, int n_in,
                       const bench_stats *bs, const double *times_unsorted, double load_ms,
                       double session_ms) {
    FILE *f = stdout;
    fputs("{\"model\":", f);
    cli_json_str(f, o->model);
    fprintf(f, ",\"threads\":%lld,\"runs\":%lld,\"warmup\":%lld", o->threads, o->runs, o->warmup);
    fputs(",\"input\":", f);
    if (o->input)
        cli_json_str(f, o->input);
    else
        fprintf(f, "\"random(seed=%lld)\"", o->seed);
    fputs(",\"inputs\":[", f);
    for (int k = 0; k < n_in; k++) {
        sqz_shape sh = sqz_session_input_shape(s, k);
        fputs(k ? ",{\"name\":" : "{\"name\":", f);
        cli_json_str(f, sqz_model_input_name(m, k));
        fputs(",\"shape\":[", f);
        for (int d = 0; d < sh.ndim && d < SQZ_MAX_DIMS; d++)
            fprintf(f, "%s%" PRId64, d ? "," : "", sh.dims[d]);
        fputs("]}", f);
    }
    fprintf(f,
            "],\"median_ms\":%.6f,\"min_ms\":%.6f,\"mean_ms\":%.6f,\"max_ms\":%.6f"
            ",\"arena_bytes\":%zu,\"load_ms\":%.3f,\"session_ms\":%.3f,\"times_ms\":[",
            bs->median, bs->min, bs->mean, bs->max, sqz_session_arena_bytes(s), load_ms,
            session_ms);
    for (long long i = 0; i < o->runs; i++) fprintf(f, "%s%.6f", i ? "," : "", times_unsorted[i]);
    sqz_memory_info mi;
    sqz_session_memory(s, &mi);
    fprintf(f, "],\"arena_separate\":%d,\"arena_reused_bytes\":%zu}\n", mi.separate,
            mi.reused_bytes);
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.runs = 50;
    o.warmup = 10;
    o.seed = 1;
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        cli_shapes_free(&o.shapes);
        return pr > 0 ? CLI_OK : CLI_EUSAGE;
    }

    int rc = CLI_EUSAGE, n_in = 0;
    char err[512];
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    npy_array arr = {0};
    float **in = NULL;
    size_t *count = NULL;
    double *times = NULL, *sorted = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);

    if (o.input && npy_read(o.input, &arr, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    double t0 = cli_now();
    if ((rc = cli_open_model(CMD, o.model, &m)) != 0) goto done;
    double t1 = cli_now();
    if ((rc = cli_open_session(CMD, m, &o.shapes, (int)o.threads, &s)) != 0) goto done;
    double t2 = cli_now();
    rc = CLI_ERUNTIME;

    n_in = sqz_model_num_inputs(m);
    if (n_in < 1) {
        cli_error(CMD, "%s: model has no inputs", o.model);
        rc = CLI_EUSAGE;
        goto done;
    }
    in = calloc((size_t)n_in, sizeof *in);
    count = calloc((size_t)n_in, sizeof *count);
    times = malloc((size_t)o.runs * sizeof *times);
    sorted = malloc((size_t)o.runs * sizeof *sorted);
    if (!in || !count || !times || !sorted) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    for (int k = 0; k < n_in; k++) {
        sqz_shape sh = sqz_session_input_shape(s, k);
        int64_t n = sqz_shape_numel(&sh);
        if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float)) {
            cli_error(CMD, "%s: input %d has a bad shape", o.model, k);
            rc = CLI_EUSAGE;
            goto done;
        }
        count[k] = (size_t)n;
        in[k] = malloc(count[k] ? count[k] * sizeof(float) : 1);
        if (!in[k]) {
            cli_error(CMD, "out of memory");
            goto done;
        }
        if (k == 0 && o.input) {
            if (!same_shape(&arr.shape, &sh)) {
                char b1[32 * SQZ_MAX_DIMS], b2[32 * SQZ_MAX_DIMS];
                cli_error(CMD, "%s has shape %s, input '%s' of the session is %s", o.input,
                          cli_shape_str(&arr.shape, b1, sizeof b1),
                          sqz_model_input_name(m, 0) ? sqz_model_input_name(m, 0) : "",
                          cli_shape_str(&sh, b2, sizeof b2));
                rc = CLI_EUSAGE;
                goto done;
            }
            if (count[k]) memcpy(in[k], arr.data, count[k] * sizeof(float));
        } else {
            bench_fill(in[k], count[k], (uint64_t)o.seed * 1000003u + (uint64_t)k);
        }
    }

    for (long long i = 0; i < o.warmup; i++) {
        if (run_once(s, in, count, n_in, &st) != 0) goto run_failed;
    }
    for (long long i = 0; i < o.runs; i++) {
        double a = cli_now();
        if (run_once(s, in, count, n_in, &st) != 0) goto run_failed;
        times[i] = (cli_now() - a) * 1e3;
    }
    memcpy(sorted, times, (size_t)o.runs * sizeof *times);
    bench_stats bs;
    bench_stats_compute(sorted, (int)o.runs, &bs);

    if (o.output) {
        const float *d = NULL;
        sqz_shape sh;
        if (sqz_session_output(s, 0, &d, &sh, &st) != SQZ_OK || !d) {
            cli_error(CMD, "output 0: %s", st.msg);
            goto done;
        }
        if (npy_write(o.output, d, &sh, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
    }

    double load_ms = (t1 - t0) * 1e3, session_ms = (t2 - t1) * 1e3;
    if (o.json) {
        print_json(&o, m, s, n_in, &bs, times, load_ms, session_ms);
    } else {
        char sb[32 * SQZ_MAX_DIMS];
        size_t arena = sqz_session_arena_bytes(s);
        printf("model: %s  threads: %lld  warmup: %lld  runs: %lld\n", o.model, o.threads, o.warmup,
               o.runs);
        for (int k = 0; k < n_in; k++) {
            sqz_shape sh = sqz_session_input_shape(s, k);
            printf("input: %s %s (%s)\n", sqz_model_input_name(m, k),
                   cli_shape_str(&sh, sb, sizeof sb), k == 0 && o.input ? o.input : "random");
        }
        printf("load %.2f ms  session %.2f ms\n", load_ms, session_ms);
        printf("%-24s median = %8.3f  min = %8.3f  mean = %8.3f  max = %8.3f  (ms)\n", "latency",
               bs.median, bs.min, bs.mean, bs.max);
        sqz_memory_info mi;
        sqz_session_memory(s, &mi);
        printf("arena: %zu bytes (%.2f MiB)", arena, (double)arena / (1024.0 * 1024.0));
        if (mi.separate)
            printf(", slots not reused (small model on %lld threads; reused: %zu bytes, "
                   "SQZ_ARENA_REUSE=1)",
                   o.threads, mi.reused_bytes);
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
    if (rc != CLI_OK && o.output) remove(o.output);
    goto done;

run_failed:
    cli_error(CMD, "%s: run failed: %s", o.model, st.msg[0] ? st.msg : "error");
    rc = cli_exit_for_sqz(st.code ? st.code : SQZ_ERR_UNSUPPORTED);
done:
    for (int k = 0; in && k < n_in; k++) free(in[k]);
    free(in);
    free(count);
    free(times);
    free(sorted);
    npy_free(&arr);
    sqz_session_free(s);
    sqz_model_free(m);
    cli_shapes_free(&o.shapes);
    return rc;
}
