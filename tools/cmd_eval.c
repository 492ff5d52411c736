/* cmd_eval.c - `sqz eval`: classification accuracy on an IDX test set. */
#include "cmd_eval.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "idx.h"
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
            if (a[0] == '-' && a[1] != '\0') {
                cli_error(CMD, "unknown option '%s' (try sqz eval --help)", a);
                return -1;
            }
            if (o->model) {
                cli_error(CMD, "unexpected argument '%s'", a);
                return -1;
            }
            o->model = a;
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
    if (strcmp(o->dataset, "fashion-mnist") == 0) {
        dm = 0.2860f;
        ds = 0.3530f;
    } else if (strcmp(o->dataset, "mnist") == 0) {
        dm = 0.1307f;
        ds = 0.3081f;
    } else {
        cli_error(CMD, "unknown dataset '%s' (fashion-mnist or mnist)", o->dataset);
        return -1;
    }
    if (!o->have_mean) o->mean = dm;
    if (!o->have_std) o->std = ds;
    return 0;
}

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, file);
    return p;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) return pr > 0 ? CLI_OK : CLI_EUSAGE;

    char err[512], sb[32 * SQZ_MAX_DIMS], dflt_dir[256];
    int rc = CLI_EUSAGE;
    idx_images imgs = {0};
    idx_labels labs = {0};
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    cli_shapes ov = {0};
    float *in = NULL;
    uint8_t *pred = NULL;
    char *ip = NULL, *lp = NULL;

    if (!o.data_dir) {
        snprintf(dflt_dir, sizeof dflt_dir, "/usr/share/datasets/%s", o.dataset);
        o.data_dir = dflt_dir;
    }
    ip = join(o.data_dir, "t10k-images-idx3-ubyte.gz");
    lp = join(o.data_dir, "t10k-labels-idx1-ubyte.gz");
    if (!ip || !lp) {
        cli_error(CMD, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    if (idx_read_images(ip, &imgs, err, sizeof err) != 0 ||
        idx_read_labels(lp, &labs, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    if (imgs.n != labs.n) {
        cli_error(CMD, "%d images but %d labels in %s", imgs.n, labs.n, o.data_dir);
        goto done;
    }
    int total = imgs.n;
    if (o.limit > 0 && o.limit < total) total = (int)o.limit;
    const size_t per = (size_t)imgs.h * (size_t)imgs.w;

    if ((rc = cli_open_model(CMD, o.model, &m)) != 0) goto done;
    rc = CLI_EUSAGE;
    if (sqz_model_num_inputs(m) != 1 || sqz_model_num_outputs(m) < 1) {
        cli_error(CMD, "model has %d inputs and %d outputs; eval needs 1 input and an output",
                  sqz_model_num_inputs(m), sqz_model_num_outputs(m));
        goto done;
    }
    sqz_shape want = sqz_model_input_shape(m, 0);
    int64_t numel = sqz_shape_numel(&want);
    if (want.ndim < 2 || want.dims[0] < 1 || numel / want.dims[0] != (int64_t)per) {
        cli_error(CMD, "model input %s does not take %dx%d images",
                  cli_shape_str(&want, sb, sizeof sb), imgs.h, imgs.w);
        goto done;
    }
    int batch = (int)o.batch;
    if (batch > total) batch = total;
    if (want.dims[0] != batch) {
        char spec[64 + 32 * SQZ_MAX_DIMS];
        const char *nm = sqz_model_input_name(m, 0);
        snprintf(spec, sizeof spec, "%s:%d", nm ? nm : "", batch);
        for (int i = 1; i < want.ndim; i++) {
            size_t l = strlen(spec);
            snprintf(spec + l, sizeof spec - l, ",%" PRId64, want.dims[i]);
        }
        if (cli_shapes_add(&ov, spec, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
    }
    if ((rc = cli_open_session(CMD, m, &ov, (int)o.threads, &s)) != 0) goto done;
    rc = CLI_ERUNTIME;
    in = malloc((size_t)batch * per * sizeof(float));
    pred = malloc((size_t)total + 1);
    if (!in || !pred) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    const float inv = 1.0f / 255.0f;
    int correct = 0;
    double t0 = cli_now();
    for (int start = 0; start < total; start += batch) {
        int nb = total - start < batch ? total - start : batch;
        for (int b = 0; b < batch; b++) {
            float *dst = in + (size_t)b * per;
            if (b >= nb) { /* pad the last batch */
                memset(dst, 0, per * sizeof(float));
                continue;
            }
            const uint8_t *src = imgs.data + (size_t)(start + b) * per;
            for (size_t k = 0; k < per; k++) dst[k] = ((float)src[k] * inv - o.mean) / o.std;
        }
        sqz_status st;
        memset(&st, 0, sizeof st);
        if (sqz_session_set_input(s, 0, in, (size_t)batch * per, &st) != SQZ_OK ||
            sqz_session_run(s, &st) != SQZ_OK) {
            cli_error(CMD, "image %d: %s", start, st.msg);
            goto done;
        }
        const float *out = NULL;
        sqz_shape osh;
        if (sqz_session_output(s, 0, &out, &osh, &st) != SQZ_OK || !out) {
            cli_error(CMD, "output: %s", st.msg);
            goto done;
        }
        int64_t on = sqz_shape_numel(&osh);
        if (on < batch || on % batch != 0) {
            cli_error(CMD, "output shape %s does not hold %d predictions",
                      cli_shape_str(&osh, sb, sizeof sb), batch);
            rc = CLI_EUSAGE;
            goto done;
        }
        int64_t classes = on / batch;
        for (int b = 0; b < nb; b++) {
            const float *row = out + (int64_t)b * classes;
            int64_t best = 0;
            for (int64_t j = 1; j < classes; j++)
                if (row[j] > row[best] || (row[best] != row[best] && row[j] == row[j])) best = j;
            pred[start + b] = (uint8_t)(best > 255 ? 255 : best);
            if (best == labs.data[start + b]) correct++;
        }
    }
    double secs = cli_now() - t0;
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
    free(ip);
    free(lp);
    free(in);
    free(pred);
    idx_images_free(&imgs);
    idx_labels_free(&labs);
    cli_shapes_free(&ov);
    sqz_session_free(s);
    sqz_model_free(m);
    return rc;
}
