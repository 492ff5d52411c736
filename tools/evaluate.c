/* evaluate.c - accuracy of a .sqz model on an IDX image set through the
 * runtime (see evaluate.h). */
#include "evaluate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sqz/sqz.h"

int eval_dataset_norm(const char *dataset, float *mean, float *std) {
    if (strcmp(dataset, "fashion-mnist") == 0) {
        *mean = 0.2860f;
        *std = 0.3530f;
        return 0;
    }
    if (strcmp(dataset, "mnist") == 0) {
        *mean = 0.1307f;
        *std = 0.3081f;
        return 0;
    }
    return -1;
}

static char *join(const char *dir, const char *split, const char *file) {
    size_t n = strlen(dir) + strlen(split) + strlen(file) + 3;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", dir, split, file);
    return p;
}

int eval_set_load(const char *cmd, const char *dataset, const char *dir, const char *split,
                  eval_set *s) {
    char err[512], dflt[256];
    memset(s, 0, sizeof *s);
    if (eval_dataset_norm(dataset, &s->mean, &s->std) != 0) {
        cli_error(cmd, "unknown dataset '%s' (fashion-mnist or mnist)", dataset);
        return CLI_EUSAGE;
    }
    if (!dir) {
        snprintf(dflt, sizeof dflt, "/usr/share/datasets/%s", dataset);
        dir = dflt;
    }
    char *ip = join(dir, split, "-images-idx3-ubyte.gz");
    char *lp = join(dir, split, "-labels-idx1-ubyte.gz");
    int rc = CLI_EUSAGE;
    if (!ip || !lp) {
        cli_error(cmd, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    if (idx_read_images(ip, &s->imgs, err, sizeof err) != 0 ||
        idx_read_labels(lp, &s->labs, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    if (s->imgs.n != s->labs.n) {
        cli_error(cmd, "%d images but %d labels in %s", s->imgs.n, s->labs.n, dir);
        goto done;
    }
    rc = CLI_OK;
done:
    free(ip);
    free(lp);
    if (rc != CLI_OK) eval_set_free(s);
    return rc;
}

void eval_set_free(eval_set *s) {
    idx_images_free(&s->imgs);
    idx_labels_free(&s->labs);
}

int eval_run(const char *cmd, const sqz_model *m, const eval_set *set, int first, int count,
             int batch, int threads, uint8_t *pred, eval_result *res) {
    return eval_run_logits(cmd, m, set, first, count, batch, threads, pred, NULL, 0, res);
}

int eval_run_logits(const char *cmd, const sqz_model *m, const eval_set *set, int first, int count,
                    int batch, int threads, uint8_t *pred, float *logits, int classes_max,
                    eval_result *res) {
    return eval_run_each(cmd, m, set, first, count, batch, threads, pred, logits, classes_max, NULL,
                         NULL, res);
}

int eval_run_each(const char *cmd, const sqz_model *m, const eval_set *set, int first, int count,
                  int batch, int threads, uint8_t *pred, float *logits, int classes_max,
                  eval_batch_fn fn, void *ctx, eval_result *res) {
    char err[512], sb[32 * SQZ_MAX_DIMS];
    int rc = CLI_EUSAGE;
    cli_shapes ov = {0};
    sqz_session *s = NULL;
    float *in = NULL;
    memset(res, 0, sizeof *res);
    if (first < 0 || count < 0 || first > set->imgs.n || count > set->imgs.n - first) {
        cli_error(cmd, "images %d..%d out of the set's %d", first, first + count, set->imgs.n);
        return CLI_EUSAGE;
    }
    const int total = count;
    const size_t per = (size_t)set->imgs.h * (size_t)set->imgs.w;
    if (sqz_model_num_inputs(m) != 1 || sqz_model_num_outputs(m) < 1) {
        cli_error(cmd, "model has %d inputs and %d outputs; eval needs 1 input and an output",
                  sqz_model_num_inputs(m), sqz_model_num_outputs(m));
        goto done;
    }
    sqz_shape want = sqz_model_input_shape(m, 0);
    int64_t numel = sqz_shape_numel(&want);
    if (want.ndim < 2 || want.dims[0] < 1 || numel / want.dims[0] != (int64_t)per) {
        cli_error(cmd, "model input %s does not take %dx%d images",
                  cli_shape_str(&want, sb, sizeof sb), set->imgs.h, set->imgs.w);
        goto done;
    }
    if (batch < 1) batch = 1;
    if (batch > total) batch = total > 0 ? total : 1;
    if (want.dims[0] != batch) {
        char spec[64 + 32 * SQZ_MAX_DIMS];
        const char *nm = sqz_model_input_name(m, 0);
        snprintf(spec, sizeof spec, "%s:%d", nm ? nm : "", batch);
        for (int i = 1; i < want.ndim; i++) {
            size_t l = strlen(spec);
            snprintf(spec + l, sizeof spec - l, ",%" PRId64, want.dims[i]);
        }
        if (cli_shapes_add(&ov, spec, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            goto done;
        }
    }
    if ((rc = cli_open_session(cmd, m, &ov, threads, &s)) != 0) goto done;
    rc = CLI_ERUNTIME;
    in = malloc((size_t)batch * per * sizeof(float));
    if (!in) {
        cli_error(cmd, "out of memory");
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
            const uint8_t *src = set->imgs.data + (size_t)(first + start + b) * per;
            for (size_t k = 0; k < per; k++) dst[k] = ((float)src[k] * inv - set->mean) / set->std;
        }
        sqz_status st;
        memset(&st, 0, sizeof st);
        if (sqz_session_set_input(s, 0, in, (size_t)batch * per, &st) != SQZ_OK ||
            sqz_session_run(s, &st) != SQZ_OK) {
            cli_error(cmd, "image %d: %s", first + start, st.msg);
            goto done;
        }
        const float *out = NULL;
        sqz_shape osh;
        if (sqz_session_output(s, 0, &out, &osh, &st) != SQZ_OK || !out) {
            cli_error(cmd, "output: %s", st.msg);
            goto done;
        }
        int64_t on = sqz_shape_numel(&osh);
        if (on < batch || on % batch != 0) {
            cli_error(cmd, "output shape %s does not hold %d predictions",
                      cli_shape_str(&osh, sb, sizeof sb), batch);
            rc = CLI_EUSAGE;
            goto done;
        }
        if (fn && fn(ctx, s, in, nb, batch) != 0) {
            rc = CLI_ERUNTIME;
            goto done;
        }
        int64_t classes = on / batch;
        res->classes = classes > INT32_MAX ? INT32_MAX : (int)classes;
        if (logits && classes != classes_max) {
            cli_error(cmd, "output holds %lld classes per image, expected %d", (long long)classes,
                      classes_max);
            rc = CLI_EUSAGE;
            goto done;
        }
        if (logits)
            memcpy(logits + (size_t)start * (size_t)classes, out,
                   (size_t)nb * (size_t)classes * sizeof(float));
        for (int b = 0; b < nb; b++) {
            const float *row = out + (int64_t)b * classes;
            int64_t best = 0;
            for (int64_t j = 1; j < classes; j++)
                if (row[j] > row[best] || (row[best] != row[best] && row[j] == row[j])) best = j;
            if (pred) pred[start + b] = (uint8_t)(best > 255 ? 255 : best);
            if (best == set->labs.data[first + start + b]) correct++;
        }
    }
    res->secs = cli_now() - t0;
    res->correct = correct;
    res->total = total;
    res->batch = batch;
    rc = CLI_OK;
done:
    free(in);
    cli_shapes_free(&ov);
    sqz_session_free(s);
    return rc;
}
