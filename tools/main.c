/* main.c - the `sqz` command-line tool: subcommand dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "cmd_bench.h"
#include "cmd_compress.h"
#include "cmd_eval.h"
#include "cmd_import.h"
#include "cmd_info.h"
#include "cmd_quant.h"
#include "cmd_report.h"
#include "cmd_prune.h"
#include "cmd_run.h"
#include "cmd_sensitivity.h"

#ifndef SQZ_VERSION
#define SQZ_VERSION "0.1.0"
#endif

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *f);
    int batch; /* an offline throughput job: idle OpenMP threads sleep (prefer_passive_wait) */
} command;

static const command kCommands[] = {
    {"import", "convert an ONNX model to .sqz (with graph optimizations)", cmd_import,
     cmd_import_usage, 0},
    {"compress", "prune + share weights of an ONNX model into a small .sqz (size table)",
     cmd_compress, cmd_compress_usage, 1},
    {"prune", "channel / magnitude pruning of an ONNX or .sqz model (.sqz or ONNX out)", cmd_prune,
     cmd_prune_usage, 1},
    {"sensitivity", "per-layer accuracy drop over a ladder of pruning ratios (table / JSON)",
     cmd_sensitivity, cmd_sensitivity_usage, 1},
    {"quant", "INT8 quantization calibrated on an image set (per-layer report)", cmd_quant,
     cmd_quant_usage, 1},
    {"info", "per-layer table of a .sqz model: shapes, params, bytes, MACs", cmd_info,
     cmd_info_usage, 0},
    {"run", "run a .sqz model on a PNG image or a .npy tensor", cmd_run, cmd_run_usage, 0},
    {"eval", "accuracy of a classifier on a test set (Fashion-MNIST)", cmd_eval, cmd_eval_usage, 1},
    {"report", "sweep recipes, accuracy vs size: Markdown table + HTML plot (Pareto front)",
     cmd_report, cmd_report_usage, 1},
    {"bench", "inference latency (median/min/mean/max ms over timed runs) and arena bytes",
     cmd_bench, cmd_bench_usage, 0},
};
enum { N_COMMANDS = sizeof kCommands / sizeof kCommands[0] };

static void usage(FILE *f) {
    fprintf(f, "usage: sqz <command> [options]\n"
               "       sqz <command> --help\n"
               "       sqz --version\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", kCommands[i].name, kCommands[i].summary);
}

/* Offline jobs (calibration, evaluation, pruning sweeps) run thousands of short
 * parallel regions. With libgomp's default policy a thread that finishes early
 * spins; on CPUs shared with other jobs it spins out its time slice while the
 * thread it waits for has no CPU: `sqz quant` of LeNet-300-100 at --threads 2,
 * load ~4, took 50-90 ms in half the runs instead of 10-20. libgomp reads
 * OMP_WAIT_POLICY once, when it is loaded (before main), so such a command sets
 * it to passive and starts the program again (~1 ms); a policy or spin count
 * the user set is kept. Latency commands (bench, run) keep spinning. */
static void prefer_passive_wait(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY"); /* no /proc: go on with the default policy */
#else
    (void)argv;
#endif
}

static const command *find(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(kCommands[i].name, name) == 0) return &kCommands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "sqz: missing command (try sqz --help)\n");
        return CLI_EUSAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        printf("sqz %s\n", SQZ_VERSION);
        return CLI_OK;
    }
    if (strcmp(a, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return CLI_OK;
        }
        const command *c = find(argv[2]);
        if (!c) {
            cli_error("help", "unknown command '%s' (try sqz --help)", argv[2]);
            return CLI_EUSAGE;
        }
        c->usage(stdout);
        return CLI_OK;
    }
    const command *c = find(a);
    if (!c) {
        fprintf(stderr, "sqz: unknown %s '%s' (try sqz --help)\n",
                a[0] == '-' ? "option" : "command", a);
        return CLI_EUSAGE;
    }
    if (c->batch) prefer_passive_wait(argv);
    return c->run(argc - 1, argv + 1);
}
