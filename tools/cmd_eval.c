/* cmd_eval.c - `sqz eval`: classification accuracy on an IDX test set. */
#include "cmd_eval.h"

#include <inttypes.h>
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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_eval_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        static const char *const kValued[] = {"--dataset", "--data-dir",   "--limit",
                                              "--batch",   "--threads",    "--mean",
                                              "--std",     "--predictions"};
        int which = -1;
        for (int k = 0; k < (int)(sizeof kValued / sizeof kValued[0]); k++) {
            int m = cli_opt_value(argc, argv, &i, kValued[k], &v);
            if (m < 0) {
                cli_error(CMD, "%s needs a value", kValued[k]);
                return -1;
            }
            if (m > 0) {
                which = k;
                break;
            }
        }
        if (which < 0) {
            if (cli_positional(CMD, a, &o->model) != 0) return -1;
            continue;
        }
        int bad = 0;
        switch (which) {
        case 0:
            o->dataset = v;
            break;
        case 1:
            o->data_dir = v;
            break;
        case 2:
            bad = cli_parse_int(v, 1, 1LL << 31, &o->limit) != 0;
            break;
        case 3:
            bad = cli_parse_int(v, 1, 65536, &o->batch) != 0;
            break;
        case 4:
            bad = cli_parse_int(v, 1, 1024, &o->threads) != 0;
            break;
        case 5:
            bad = cli_parse_float(v, &o->mean) != 0;
            o->have_mean = 1;
            break;
        case 6:
            bad = cli_parse_float(v, &o->std) != 0 || !(o->std != 0.0f);
            o->have_std = 1;
            break;
        case 7:
            o->predictions = v;
            break;
        default:
            break;
        }
        if (bad) {
            cli_error(CMD, "bad value '%s' for %s", v, kValued[which]);
            return -1;
        }
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
