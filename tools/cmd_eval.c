/* cmd_eval.c - `sqz eval`: classification accuracy on an IDX test set. */
#include "cmd_eval.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "evaluate.h"
#include "sqz/sqz.h"

#define CMD "eval"

void cmd_eval_usage(FILE *f) {
    fprintf(f, "usage: sqz eval model.sqz --dataset fashion-mnist [options]\n\n"
               "Classify the test set (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz),\n"
               "each 28x28 image preprocessed as (x/255 - mean)/std, and report the accuracy of\n"
               "the argmax of the first output.\n\n"
               "  --dataset NAME        fashion-mnist or mnist (required)\n"
               "  --data-dir DIR        default /usr/share/datasets/<NAME>\n"
               "  --limit N             first N test images only\n"
               "  --batch B             images per run (the model's batch dim must be settable)\n"
               "  --threads N           worker threads (default 1)\n"
               "  --mean M --std S      normalization (fashion-mnist: 0.2860 0.3530;\n"
               "                        mnist: 0.1307 0.3081)\n"
               "  --predictions FILE    write the predicted labels as uint8 bytes, test-set order\n"
               "  --json                print {\"accuracy\":...,\"correct\":...,\"total\":...}\n"
               "  -h, --help            this help\n");
}

typedef struct eval_opts {
    const char *model, *dataset, *data_dir, *predictions;
    long long limit, batch, threads;
    float mean, std;
    int have_mean, have_std, json;
} eval_opts;

static int parse_args(int argc, char **argv, eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->limit = -1;
    o->batch = 1;
    o->threads = 1;
    const cli_opt opts[] = {
        {.name = "--dataset", .kind = CLI_STR, .dst = &o->dataset},
        {.name = "--data-dir", .kind = CLI_STR, .dst = &o->data_dir},
        {.name = "--limit", .kind = CLI_INT, .dst = &o->limit, .lo = 1, .hi = 1LL << 31},
        {.name = "--batch", .kind = CLI_INT, .dst = &o->batch, .lo = 1, .hi = 65536},
        {.name = "--threads", .kind = CLI_INT, .dst = &o->threads, .lo = 1, .hi = 1024},
        {.name = "--mean",
         .kind = CLI_FLOAT,
         .dst = &o->mean,
         .flo = -INFINITY,
         .fhi = INFINITY,
         .given = &o->have_mean},
        {.name = "--std",
         .kind = CLI_FLOAT,
         .dst = &o->std,
         .flo = 0,
         .fhi = INFINITY,
         .open = CLI_LO_OPEN,
         .given = &o->have_std},
        {.name = "--predictions", .kind = CLI_STR, .dst = &o->predictions},
        {.name = "--json", .kind = CLI_FLAG, .dst = &o->json, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_eval_usage(stdout);
            return 1;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which < 0 && cli_positional(CMD, a, &o->model) != 0) return -1;
    }
    if (!o->model) {
        cli_error(CMD, "missing model.sqz (try sqz eval --help)");
        return -1;
    }
    if (!o->dataset) {
        cli_error(CMD, "missing --dataset (fashion-mnist or mnist)");
        return -1;
    }
    float dm, ds;
    if (eval_dataset_norm(o->dataset, &dm, &ds) != 0) {
        cli_error(CMD, "unknown dataset '%s' (fashion-mnist or mnist)", o->dataset);
        return -1;
    }
    if (!o->have_mean) o->mean = dm;
    if (!o->have_std) o->std = ds;
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) return pr > 0 ? CLI_OK : CLI_EUSAGE;

    char err[512];
    int rc;
    eval_set set;
    sqz_model *m = NULL;
    uint8_t *pred = NULL;

    if ((rc = eval_set_load(CMD, o.dataset, o.data_dir, "t10k", &set)) != 0) return rc;
    set.mean = o.mean;
    set.std = o.std;
    int total = set.imgs.n;
    if (o.limit > 0 && o.limit < total) total = (int)o.limit;
    if ((rc = cli_open_model(CMD, o.model, &m)) != 0) goto done;
    pred = malloc((size_t)total + 1);
    if (!pred) {
        cli_error(CMD, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    eval_result res;
    if ((rc = eval_run(CMD, m, &set, 0, total, (int)o.batch, (int)o.threads, pred, &res)) != 0)
        goto done;
    rc = CLI_ERUNTIME;
    double secs = res.secs;
    int correct = res.correct, batch = res.batch;
    if (o.predictions &&
        cli_write_file_atomic(o.predictions, pred, (size_t)total, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    double acc = total > 0 ? (double)correct / total : 0.0;
    if (o.json) {
        printf("{\"accuracy\":%.6f,\"correct\":%d,\"total\":%d,\"seconds\":%.6f,"
               "\"ms_per_image\":%.6f,\"batch\":%d,\"threads\":%lld}\n",
               acc, correct, total, secs, total ? secs * 1e3 / total : 0.0, batch, o.threads);
    } else {
        printf("accuracy: %.2f%% (%d/%d)\n", acc * 100.0, correct, total);
        printf("time: %.3f s (%.3f ms/image, batch %d, %lld thread%s)\n", secs,
               total ? secs * 1e3 / total : 0.0, batch, o.threads, o.threads == 1 ? "" : "s");
    }
    rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
done:
    free(pred);
    eval_set_free(&set);
    sqz_model_free(m);
    return rc;
}
