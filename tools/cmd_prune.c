/* cmd_prune.c - `sqz prune`: channel pruning (dependency groups) and
 * magnitude pruning (unstructured or block patterns) of an ONNX or .sqz
 * model, by ratio, by MAC / parameter target, or by an accuracy budget
 * (--max-drop) or a target with --sensitivity: per-layer ratios chosen by a
 * knapsack solver from a sensitivity sweep on training images, reported on
 * the test split. Writes .sqz or ONNX. */
#include "cmd_prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" /* runtime-internal: the stored graph of a .sqz */
#include "sqz/sqz.h"
#include "sqzc/onnx_export.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/prune.h"
#include "sqzc/prune_pattern.h"
#include "sqzc/prune_refit.h"
#include "sqzc/prune_solve.h"
#include "sqzc/writer.h"

#define CMD "prune"

void cmd_prune_usage(FILE *f) {
    fprintf(f,
            "usage: sqz prune model.onnx|model.sqz -o out.sqz|out.onnx [mode] [options]\n\n"
            "Structured (channel) or unstructured (magnitude) pruning, post-training.\n"
            "Channel pruning removes whole filters and the matching inputs of every consumer;\n"
            "channels tied by residual Adds, depthwise convs, Concat/Split, Flatten->Gemm or\n"
            "squeeze-excite are removed together, and layers that cannot be pruned exactly are\n"
            "listed with the reason. Output is a smaller dense model (.sqz, or ONNX for\n"
            "fine-tuning: the zeros of magnitude pruning are kept in both).\n\n"
            "modes (one):\n"
            "  --channels R            remove fraction R of the prunable channel groups\n"
            "  --target-macs N         remove channels until the model has <= N MACs\n"
            "  --target-params N       remove channels until the model has <= N parameters\n"
            "  --sparsity S            zero fraction S of the Conv/Gemm/MatMul weights\n"
            "  --max-drop P --data D   per-layer ratios from a sensitivity sweep on the last\n"
            "                          --select training images: the most pruning whose\n"
            "                          measured drop there is <= P points (with --method\n"
            "                          channels|sparsity; removed parameters / zero weights)\n"
            "  --sensitivity           with --sparsity, --target-macs or --target-params and\n"
            "                          --data: per-layer ratios from the sweep, the least\n"
            "                          predicted accuracy drop that reaches the target\n"
            "options:\n"
            "  --criterion l1|l2|bn    channel ranking: filter mean |w|, RMS, or BatchNorm\n"
            "                          |gamma| (ONNX input with BatchNormalization; default l1)\n"
            "  --scope global|layer    one ranking across layers, or the ratio per layer\n"
            "                          (default: global for channels, layer for sparsity)\n"
            "  --pattern none|1x4|4x1|2:4  block pattern of magnitude pruning (default none)\n"
            "  --layer NAME=R          ratio / sparsity of one layer (repeatable)\n"
            "  --method channels|sparsity  what --max-drop tunes (default sparsity)\n"
            "  --ratios R1,R2,...      the sensitivity ladder for --max-drop\n"
            "  --data NAME             fashion-mnist or mnist: accuracy before / after (test)\n"
            "  --data-dir DIR          default /usr/share/datasets/<NAME>\n"
            "  --select N              the last N training images: the sweep of --max-drop /\n"
            "                          --sensitivity (default 2000; the test split is never used)\n"
            "  --limit N               first N test images only for before / after\n"
            "  --refit N               after pruning, refit the surviving weights of every layer\n"
            "                          by least squares to the original layer outputs on N\n"
            "                          training images (the first ones; needs --data); with\n"
            "                          --max-drop / --sensitivity the sweep is refit too\n"
            "  --sens-refit N          refit on only the first N of the --refit images inside\n"
            "                          the sensitivity sweep (faster; default: all of them)\n"
            "  --refit-mask gradual|once|obs  unstructured --refit: which weights are zero\n"
            "                          (their number per layer kept): gradual = in 6 steps,\n"
            "                          each zeroing the smallest |w| * std(input) of the\n"
            "                          weights refit at the step before (default); once = one\n"
            "                          step from the original weights; obs = SparseGPT-style\n"
            "                          OBS pruning with error compensation\n"
            "  --batch B               images per run when evaluating (default 50)\n"
            "  --threads N             worker threads (default 1)\n"
            "  --input-shape NAME:DIMS fix an input shape (ONNX input)\n"
            "  --json                  one JSON object on stdout instead of the report\n"
            "  -h, --help              this help\n");
}

/* ------------------------------------------------------------ loading */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int copy_node_attrs(sqzc_graph *g, int ni, const sqz_node *n) {
    for (uint32_t k = 0; k < n->n_attrs; k++) {
        const sqz_attr *a = &n->attrs[k];
        int rc = 0;
        switch (a->type) {
        case SQZ_ATTR_INT:
            rc = sqzc_node_set_int(g, ni, a->name, a->count && a->ints ? a->ints[0] : 0);
            break;
        case SQZ_ATTR_FLOAT:
            rc = sqzc_node_set_float(g, ni, a->name, a->count && a->floats ? a->floats[0] : 0);
            break;
        case SQZ_ATTR_INTS:
            rc = sqzc_node_set_ints(g, ni, a->name, a->ints, a->count);
            break;
        case SQZ_ATTR_FLOATS:
            rc = sqzc_node_set_floats(g, ni, a->name, a->floats, a->count);
            break;
        case SQZ_ATTR_STRING:
            rc = sqzc_node_set_str(g, ni, a->name, a->str ? a->str : "");
            break;
        default:
            rc = -1;
        }
        if (rc) return -1;
    }
    return 0;
}

/* The graph stored in a .sqz (weights decoded) as an IR graph. */
static int load_sqz(const char *path, sqzc_graph **out) {
    sqz_model *m = NULL;
    int rc = cli_open_model(CMD, path, &m);
    if (rc != 0) return rc;
    sqzc_graph *g = sqzc_graph_new();
    int32_t *ids = NULL;
    char err[512];
    if (!g) goto oom;
    ids = malloc(((size_t)m->n_tensors + 1) * sizeof *ids);
    if (!ids) goto oom;
    for (int t = 0; t < m->n_tensors; t++) {
        const sqz_tensor_rec *r = &m->tensors[t];
        ids[t] = sqzc_tensor_get_or_add(g, r->name);
        if (ids[t] < 0) goto oom;
        if ((r->flags & SQZ_TF_CONST) && r->data) {
            if (sqzc_tensor_set_f32(g, ids[t], &r->shape, r->data) != 0) goto oom;
        } else {
            g->tensors[ids[t]].shape = r->shape;
            g->tensors[ids[t]].has_shape = 1;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const sqz_node *n = &m->nodes[i];
        int32_t in[64], outv[64];
        if (n->n_inputs > 64 || n->n_outputs > 64) {
            cli_error(CMD, "%s: node '%s' has too many inputs", path, n->name);
            rc = CLI_EUSAGE;
            goto fail;
        }
        for (uint32_t k = 0; k < n->n_inputs; k++)
            in[k] = n->inputs[k] < 0 ? -1 : ids[n->inputs[k]];
        for (uint32_t k = 0; k < n->n_outputs; k++) outv[k] = ids[n->outputs[k]];
        int ni = sqzc_add_node(g, n->op, n->name, n->n_inputs, in, n->n_outputs, outv);
        if (ni < 0 || copy_node_attrs(g, ni, n) != 0) goto oom;
    }
    g->inputs = malloc(((size_t)m->n_inputs + 1) * sizeof *g->inputs);
    g->outputs = malloc(((size_t)m->n_outputs + 1) * sizeof *g->outputs);
    if (!g->inputs || !g->outputs) goto oom;
    for (int i = 0; i < m->n_inputs; i++) g->inputs[i] = ids[m->inputs[i]];
    for (int i = 0; i < m->n_outputs; i++) g->outputs[i] = ids[m->outputs[i]];
    g->n_inputs = m->n_inputs;
    g->n_outputs = m->n_outputs;
    for (int i = 0; i < m->n_meta; i++)
        if (sqzc_graph_set_meta(g, m->meta_keys[i], m->meta_values[i]) != 0) goto oom;
    if (sqzc_infer_shapes(g, err, sizeof err) != 0) {
        cli_error(CMD, "%s: %s", path, err);
        rc = CLI_EUSAGE;
        goto fail;
    }
    free(ids);
    sqz_model_free(m);
    *out = g;
    return 0;
oom:
    cli_error(CMD, "out of memory reading %s", path);
    rc = CLI_ERUNTIME;
fail:
    free(ids);
    sqzc_graph_free(g);
    sqz_model_free(m);
    return rc;
}

int prune_load(const char *cmd, const char *path, const cli_shapes *shapes, sqzc_bn_gammas **bn,
               sqzc_graph **out) {
    *out = NULL;
    if (bn) *bn = NULL;
    if (ends_with(path, ".sqz")) {
        if (shapes && shapes->n > 0) {
            cli_error(cmd, "--input-shape applies to ONNX input only");
            return CLI_EUSAGE;
        }
        int rc = load_sqz(path, out);
        /* BatchNorm that import could not fold stays a node: its gammas count */
        if (rc == 0 && bn && sqzc_bn_gammas_capture(*out, bn) != 0) {
            sqzc_graph_free(*out);
            *out = NULL;
            cli_error(cmd, "out of memory");
            return CLI_ERUNTIME;
        }
        return rc;
    }
    char err[1024];
    err[0] = '\0';
    sqzc_named_shape *named = NULL;
    if (shapes && shapes->n > 0) {
        named = calloc((size_t)shapes->n, sizeof *named);
        if (!named) {
            cli_error(cmd, "out of memory");
            return CLI_ERUNTIME;
        }
        for (int i = 0; i < shapes->n; i++) {
            named[i].name = shapes->names[i];
            named[i].shape = shapes->shapes[i];
        }
    }
    sqzc_import_options o;
    memset(&o, 0, sizeof o);
    o.input_shapes = named;
    o.n_input_shapes = shapes ? shapes->n : 0;
    o.default_batch = 1;
    sqzc_graph *g = NULL;
    int rc = sqzc_import_onnx(path, &o, &g, err, sizeof err);
    free(named);
    if (rc != 0) {
        cli_error(cmd, "%s", err[0] ? err : "import failed");
        return CLI_EUSAGE;
    }
    if (bn && sqzc_bn_gammas_capture(g, bn) != 0) {
        sqzc_graph_free(g);
        cli_error(cmd, "out of memory");
        return CLI_ERUNTIME;
    }
    if (sqzc_optimize(g, err, sizeof err) != 0) {
        cli_error(cmd, "optimize: %s", err);
        sqzc_graph_free(g);
        if (bn) sqzc_bn_gammas_free(*bn), *bn = NULL;
        return CLI_EUSAGE;
    }
    *out = g;
    return 0;
}

int prune_check_bn(const char *cmd, const char *path, int criterion, const sqzc_bn_gammas *bn) {
    if (criterion != SQZC_CRIT_BN || sqzc_bn_gammas_count(bn) > 0) return 0;
    if (ends_with(path, ".sqz"))
        cli_error(cmd,
                  "--criterion bn: %s: a .sqz model keeps no BatchNorm gamma (import folds "
                  "BatchNormalization into the conv weights, which loses it); prune the ONNX "
                  "model with its BatchNormalization nodes, or use --criterion l1|l2",
                  path);
    else
        cli_error(cmd, "--criterion bn: %s has no BatchNormalization after a Conv/Gemm", path);
    return CLI_EUSAGE;
}

int prune_accuracy(const char *cmd, sqzc_graph *g, const eval_set *s, int first, int count,
                   int batch, int threads, double *acc) {
    uint8_t *buf = NULL;
    size_t size = 0;
    char err[512];
    if (sqzc_serialize(g, &buf, &size, err, sizeof err) != 0) {
        cli_error(cmd, "serialize: %s", err);
        return CLI_ERUNTIME;
    }
    sqz_model *m = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    sqz_code c = sqz_model_load_buffer(buf, size, &m, &st);
    free(buf);
    if (c != SQZ_OK) {
        cli_error(cmd, "the runtime refuses the pruned model: %s", st.msg);
        return CLI_ERUNTIME;
    }
    eval_result res;
    int rc = eval_run(cmd, m, s, first, count, batch, threads, NULL, &res);
    sqz_model_free(m);
    if (rc == 0) *acc = res.total ? 100.0 * res.correct / res.total : 0.0;
    return rc;
}

/* ------------------------------------------------------------ snapshots */

/* Copies of every float constant, to undo in-place pruning. */
typedef struct snapshot {
    int n;
    float **data;
} snapshot;

static int snap_take(const sqzc_graph *g, snapshot *s) {
    s->n = g->n_tensors;
    s->data = calloc((size_t)s->n + 1, sizeof *s->data);
    if (!s->data) return -1;
    for (int t = 0; t < s->n; t++) {
        const sqzc_tensor *x = &g->tensors[t];
        if (!x->f32) continue;
        int64_t n = sqz_shape_numel(&x->shape);
        s->data[t] = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        if (!s->data[t]) return -1;
        if (n > 0) memcpy(s->data[t], x->f32, (size_t)n * sizeof(float));
    }
    return 0;
}

static void snap_restore(sqzc_graph *g, const snapshot *s) {
    for (int t = 0; t < s->n && t < g->n_tensors; t++) {
        if (!s->data[t] || !g->tensors[t].f32) continue;
        int64_t n = sqz_shape_numel(&g->tensors[t].shape);
        if (n > 0) memcpy(g->tensors[t].f32, s->data[t], (size_t)n * sizeof(float));
        if (g->tensors[t].enc) sqzc_tensor_set_encoding(g, t, NULL);
    }
}

static void snap_free(snapshot *s) {
    for (int t = 0; t < s->n && s->data; t++) free(s->data[t]);
    free(s->data);
    s->data = NULL;
}

/* ------------------------------------------------------------ sensitivity */

/* Reconstruction after pruning (--refit): the unpruned graph and the
 * calibration inputs, set once by cmd_prune (NULL orig: no refit); used
 * by the sensitivity sweep and the --max-drop search too. */
static sqzc_graph *g_refit_orig;
static sqzc_refit_options g_refit;

void prune_sens_free(prune_sens *s) {
    for (int i = 0; i < s->n_layers && s->names; i++) free(s->names[i]);
    free(s->names);
    free(s->size);
    free(s->ratios);
    free(s->acc);
    memset(s, 0, sizeof *s);
}

static char *dup_s(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Zero the channels of the given per-family ratios in place (reference
 * semantics of removal). */
static int zero_channels(sqzc_graph *g, const sqzc_channel_analysis *a, const sqzc_layer_value *lv,
                         int n, char *err, size_t err_len) {
    int ng = sqzc_channel_n_groups(a);
    uint8_t *rm = calloc((size_t)ng + 1, 1);
    if (!rm) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    sqzc_channel_options o;
    memset(&o, 0, sizeof o);
    o.layers = lv;
    o.n_layers = n;
    int rc = sqzc_channel_select(a, &o, rm, NULL, err, err_len);
    if (rc == 0) rc = sqzc_channel_zero(g, a, rm, err, err_len);
    free(rm);
    return rc;
}

int prune_sensitivity(const char *cmd, sqzc_graph *g, int method, int criterion,
                      const sqzc_bn_gammas *bn, const float *ratios, int n_ratios,
                      const eval_set *s, int first, int count, int batch, int threads, int verbose,
                      prune_sens *out) {
    memset(out, 0, sizeof *out);
    out->method = method;
    char err[1024];
    sqzc_channel_analysis *a = NULL;
    snapshot snap = {0, NULL};
    int rc = CLI_ERUNTIME;
    int nl = 0;
    if (method == SENS_CHANNELS) {
        if (sqzc_channel_analyze(g, criterion, bn, &a, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            return CLI_EUSAGE;
        }
        nl = sqzc_channel_n_families(a);
    } else {
        for (int i = 0; i < g->n_nodes; i++) nl += sqzc_layer_weight(g, i) >= 0;
    }
    out->names = calloc((size_t)nl + 1, sizeof *out->names);
    out->size = calloc((size_t)nl + 1, sizeof *out->size);
    out->ratios = malloc(((size_t)n_ratios + 1) * sizeof *out->ratios);
    out->acc = calloc((size_t)nl * (size_t)n_ratios + 1, sizeof *out->acc);
    if (!out->names || !out->size || !out->ratios || !out->acc || snap_take(g, &snap) != 0) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    out->n_layers = nl;
    out->n_ratios = n_ratios;
    memcpy(out->ratios, ratios, (size_t)n_ratios * sizeof *ratios);
    int *lnode = malloc(((size_t)nl + 1) * sizeof *lnode);
    if (!lnode) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    int k = 0;
    for (int i = 0; i < nl && method == SENS_CHANNELS; i++) {
        out->names[i] = dup_s(sqzc_channel_family_name(a, i));
        out->size[i] = sqzc_channel_family_groups(a, i);
    }
    for (int i = 0; i < g->n_nodes && method == SENS_SPARSITY; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0) continue;
        lnode[k] = i;
        out->names[k] = dup_s(g->nodes[i].name);
        out->size[k] = sqz_shape_numel(&g->tensors[t].shape);
        k++;
    }
    for (int i = 0; i < nl; i++)
        if (!out->names[i]) {
            free(lnode);
            cli_error(cmd, "out of memory");
            goto done;
        }
    if ((rc = prune_accuracy(cmd, g, s, first, count, batch, threads, &out->base)) != 0) {
        free(lnode);
        goto done;
    }
    for (int l = 0; l < nl; l++) {
        for (int r = 0; r < n_ratios; r++) {
            if (method == SENS_CHANNELS) {
                sqzc_layer_value lv = {out->names[l], ratios[r]};
                if (zero_channels(g, a, &lv, 1, err, sizeof err) != 0) {
                    cli_error(cmd, "%s", err);
                    rc = CLI_ERUNTIME;
                    free(lnode);
                    goto done;
                }
            } else {
                int t = sqzc_layer_weight(g, lnode[l]);
                if (sqzc_prune_array(g->tensors[t].f32, out->size[l], ratios[r]) < 0) {
                    cli_error(cmd, "out of memory");
                    rc = CLI_ERUNTIME;
                    free(lnode);
                    goto done;
                }
            }
            if (g_refit_orig && sqzc_prune_refit(g, g_refit_orig, &g_refit, err, sizeof err)) {
                cli_error(cmd, "%s", err);
                rc = CLI_ERUNTIME;
                free(lnode);
                goto done;
            }
            double acc;
            rc = prune_accuracy(cmd, g, s, first, count, batch, threads, &acc);
            snap_restore(g, &snap);
            if (rc != 0) {
                free(lnode);
                goto done;
            }
            out->acc[(size_t)l * n_ratios + r] = acc;
        }
        if (verbose)
            fprintf(stderr, "sqz %s: sensitivity %d/%d %s\n", cmd, l + 1, nl, out->names[l]);
    }
    free(lnode);
    rc = 0;
done:
    snap_free(&snap);
    sqzc_channel_analysis_free(a);
    if (rc != 0) prune_sens_free(out);
    return rc;
}

void prune_sens_print(FILE *f, const prune_sens *s, int json) {
    const char *unit = s->method == SENS_CHANNELS ? "channels" : "sparsity";
    if (json) {
        fprintf(f, "{\"method\":\"%s\",\"base_accuracy\":%.4f,\"ratios\":[", unit, s->base);
        for (int r = 0; r < s->n_ratios; r++)
            fprintf(f, "%s%.4g", r ? "," : "", (double)s->ratios[r]);
        fprintf(f, "],\"layers\":[");
        for (int l = 0; l < s->n_layers; l++) {
            fprintf(f, "%s{\"name\":", l ? "," : "");
            cli_json_str(f, s->names[l]);
            fprintf(f, ",\"size\":%lld,\"accuracy\":[", (long long)s->size[l]);
            for (int r = 0; r < s->n_ratios; r++)
                fprintf(f, "%s%.4f", r ? "," : "", s->acc[(size_t)l * s->n_ratios + r]);
            fprintf(f, "],\"drop\":[");
            for (int r = 0; r < s->n_ratios; r++)
                fprintf(f, "%s%.4f", r ? "," : "", s->base - s->acc[(size_t)l * s->n_ratios + r]);
            fprintf(f, "]}");
        }
        fprintf(f, "]}\n");
        return;
    }
    fprintf(f, "accuracy drop (points) with one %s pruned at a time; base accuracy %.2f%%\n",
            s->method == SENS_CHANNELS ? "channel family" : "layer", s->base);
    fprintf(f, "%-36s %9s", s->method == SENS_CHANNELS ? "family" : "layer",
            s->method == SENS_CHANNELS ? "groups" : "weights");
    for (int r = 0; r < s->n_ratios; r++) fprintf(f, " %6.2f", (double)s->ratios[r]);
    fprintf(f, "\n");
    for (int l = 0; l < s->n_layers; l++) {
        fprintf(f, "%-36.36s %9lld", s->names[l], (long long)s->size[l]);
        for (int r = 0; r < s->n_ratios; r++)
            fprintf(f, " %6.2f", s->base - s->acc[(size_t)l * s->n_ratios + r]);
        fprintf(f, "\n");
    }
}

/* Apply per-layer choices in place (zeroing for channels), then refit. */
static int apply_choice(sqzc_graph *g, const prune_sens *s, const sqzc_channel_analysis *a,
                        const sqzc_layer_value *lv, char *err, size_t err_len) {
    int rc;
    if (s->method == SENS_CHANNELS) {
        rc = zero_channels(g, a, lv, s->n_layers, err, err_len);
    } else {
        sqzc_prune_options po;
        memset(&po, 0, sizeof po);
        po.layers = lv;
        po.n_layers = s->n_layers;
        rc = sqzc_prune_magnitude(g, &po, err, err_len);
    }
    if (rc == 0 && g_refit_orig) rc = sqzc_prune_refit(g, g_refit_orig, &g_refit, err, err_len);
    return rc;
}

enum { GAIN_WEIGHTS, GAIN_MACS, GAIN_PARAMS };

/* What each (layer, ladder ratio) of the sweep removes on its own: zero
 * weights (sparsity), or MACs / parameters (channels). drop[] too. */
static int gain_table(const prune_sens *s, const sqzc_channel_analysis *a, int kind, double *drop,
                      double *gain, char *err, size_t err_len) {
    int64_t p0 = 0, m0 = 0;
    uint8_t *rm = NULL;
    if (s->method == SENS_CHANNELS) {
        sqzc_channel_cost(a, NULL, &p0, &m0);
        rm = calloc((size_t)sqzc_channel_n_groups(a) + 1, 1);
        if (!rm) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
    }
    for (int l = 0; l < s->n_layers; l++) {
        for (int r = 0; r < s->n_ratios; r++) {
            size_t i = (size_t)l * s->n_ratios + r;
            drop[i] = s->base - s->acc[i];
            if (s->method != SENS_CHANNELS) {
                gain[i] = (double)s->ratios[r] * (double)s->size[l];
                continue;
            }
            sqzc_layer_value lv = {s->names[l], s->ratios[r]};
            sqzc_channel_options o;
            memset(&o, 0, sizeof o);
            o.layers = &lv;
            o.n_layers = 1;
            int64_t p, m;
            if (sqzc_channel_select(a, &o, rm, NULL, err, err_len) != 0) {
                free(rm);
                return -1;
            }
            sqzc_channel_cost(a, rm, &p, &m);
            gain[i] = kind == GAIN_MACS ? (double)(m0 - m) : (double)(p0 - p);
        }
    }
    free(rm);
    return 0;
}

static void choice_values(const prune_sens *s, const int *c, sqzc_layer_value *lv) {
    for (int l = 0; l < s->n_layers; l++) {
        lv[l].name = s->names[l];
        lv[l].value = c[l] >= 0 ? s->ratios[c[l]] : 0.0f;
    }
}

/* --max-drop: per-layer ratios from the sweep by the knapsack solver, for a
 * budget of predicted (additive) drop; the real combined drop on the
 * selection images (after refit, when asked) differs from the prediction, so
 * the budget is searched (doubling, then bisection) for the largest one whose
 * measured drop stays <= max_drop. */
static int choose_max_drop(const char *cmd, sqzc_graph *g, const prune_sens *s,
                           const sqzc_channel_analysis *a, double max_drop, const eval_set *set,
                           int first, int count, int batch, int threads, int verbose,
                           sqzc_layer_value *lv, double *sel_acc) {
    size_t nt = (size_t)s->n_layers * s->n_ratios + 1;
    double *drop = malloc(nt * sizeof *drop), *gain = malloc(nt * sizeof *gain);
    int *c = malloc(((size_t)s->n_layers + 1) * sizeof *c);
    int *best = malloc(((size_t)s->n_layers + 1) * sizeof *best);
    snapshot snap = {0, NULL};
    int rc = CLI_ERUNTIME;
    char err[1024];
    if (!drop || !gain || !c || !best || snap_take(g, &snap) != 0) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    if (gain_table(s, a, GAIN_PARAMS, drop, gain, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    sqzc_sens_table t = {s->n_layers, s->n_ratios, drop, gain};
    for (int l = 0; l < s->n_layers; l++) best[l] = -1;
    *sel_acc = s->base;
    double best_gain = 0, lo = -1, hi = -1, b = max_drop > 0 ? max_drop : 0.01;
    double prev_gain = -1;
    for (int it = 0; it < 12; it++) {
        double pd, pg;
        if (sqzc_sens_solve(&t, b, 0, c, &pd, &pg) != 0) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        choice_values(s, c, lv);
        if (apply_choice(g, s, a, lv, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            goto done;
        }
        double acc;
        rc = prune_accuracy(cmd, g, set, first, count, batch, threads, &acc);
        snap_restore(g, &snap);
        if (rc != 0) goto done;
        rc = CLI_ERUNTIME;
        int pass = s->base - acc <= max_drop;
        if (verbose)
            fprintf(stderr,
                    "sqz %s: budget %.2f: predicted drop %.2f, measured %.2f on the selection "
                    "images -> %s\n",
                    cmd, b, pd, s->base - acc, pass ? "pass" : "fail");
        if (pass && pg >= best_gain) {
            best_gain = pg;
            memcpy(best, c, (size_t)s->n_layers * sizeof *c);
            *sel_acc = acc;
        }
        if (pass)
            lo = b;
        else
            hi = b;
        if (!pass && b == 0) break;
        if (pass && hi < 0 && pg == prev_gain && it > 0) break; /* the ladder is exhausted */
        prev_gain = pg;
        if (hi < 0)
            b *= 2;
        else if (lo < 0)
            b = it >= 5 ? 0 : b / 2;
        else
            b = 0.5 * (lo + hi);
        if (lo >= 0 && hi >= 0 && hi - lo < 0.05 * (hi > 1 ? hi : 1)) break;
        if (b == 0 && lo == 0) break;
    }
    choice_values(s, best, lv);
    rc = 0;
done:
    free(drop);
    free(gain);
    free(c);
    free(best);
    snap_free(&snap);
    return rc;
}

/* --sensitivity with a target (--sparsity S, --target-macs N, --target-params
 * N): the per-layer ratios with the least predicted drop that reach it. For
 * channels the gains of neighbouring families overlap (a conv loses input and
 * output channels), so the need is raised until the real cost meets it. */
static int choose_for_target(const char *cmd, const prune_sens *s, const sqzc_channel_analysis *a,
                             int kind, double need, int64_t target, sqzc_layer_value *lv,
                             double *pred_drop) {
    size_t nt = (size_t)s->n_layers * s->n_ratios + 1;
    double *drop = malloc(nt * sizeof *drop), *gain = malloc(nt * sizeof *gain);
    int *c = malloc(((size_t)s->n_layers + 1) * sizeof *c);
    uint8_t *rm = a ? calloc((size_t)sqzc_channel_n_groups(a) + 1, 1) : NULL;
    int rc = CLI_ERUNTIME;
    char err[1024];
    if (!drop || !gain || !c || (a && !rm)) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    if (gain_table(s, a, kind, drop, gain, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    sqzc_sens_table t = {s->n_layers, s->n_ratios, drop, gain};
    for (int it = 0; it < 40; it++) {
        double pg;
        int r = sqzc_sens_solve(&t, 0, need, c, pred_drop, &pg);
        if (r < 0) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        if (r > 0) {
            cli_error(cmd, "the target cannot be reached with the sensitivity ladder "
                           "(give larger --ratios)");
            rc = CLI_EUSAGE;
            goto done;
        }
        choice_values(s, c, lv);
        if (s->method != SENS_CHANNELS) break; /* zero counts add up exactly */
        sqzc_channel_options o;
        memset(&o, 0, sizeof o);
        o.layers = lv;
        o.n_layers = s->n_layers;
        int64_t p, m;
        if (sqzc_channel_select(a, &o, rm, NULL, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            goto done;
        }
        sqzc_channel_cost(a, rm, &p, &m);
        int64_t have = kind == GAIN_MACS ? m : p;
        if (have <= target) break;
        need += (double)(have - target);
        if (it == 39) {
            cli_error(cmd, "the target cannot be reached with the sensitivity ladder");
            rc = CLI_EUSAGE;
            goto done;
        }
    }
    rc = 0;
done:
    free(drop);
    free(gain);
    free(c);
    free(rm);
    return rc;
}

/* ------------------------------------------------------------ command */

typedef struct popts {
    const char *in, *out, *dataset, *data_dir;
    cli_shapes shapes;
    float channels, sparsity, max_drop;
    int have_channels, have_sparsity, have_max_drop, sens;
    long long target_macs, target_params, select, batch, threads, limit, refit, sens_refit;
    int criterion, scope, pattern, method, json, refit_mask;
    sqzc_layer_value *layers;
    char **layer_names;
    int n_layers;
    float ratios[32];
    int n_ratios;
} popts;

static void popts_free(popts *o) {
    for (int i = 0; i < o->n_layers; i++) free(o->layer_names[i]);
    free(o->layer_names);
    free(o->layers);
    cli_shapes_free(&o->shapes);
}

static int add_layer(popts *o, const char *spec) {
    const char *eq = strrchr(spec, '=');
    float v;
    if (!eq || eq == spec || cli_parse_float(eq + 1, &v) != 0 || !(v >= 0.0f && v < 1.0f)) {
        cli_error(CMD, "--layer '%s': expected NAME=R with 0 <= R < 1", spec);
        return -1;
    }
    sqzc_layer_value *l = realloc(o->layers, ((size_t)o->n_layers + 1) * sizeof *l);
    if (l) o->layers = l;
    char **nm = realloc(o->layer_names, ((size_t)o->n_layers + 1) * sizeof *nm);
    if (nm) o->layer_names = nm;
    char *name = malloc((size_t)(eq - spec) + 1);
    if (!l || !nm || !name) {
        free(name);
        cli_error(CMD, "out of memory");
        return -1;
    }
    memcpy(name, spec, (size_t)(eq - spec));
    name[eq - spec] = '\0';
    o->layer_names[o->n_layers] = name;
    o->layers[o->n_layers].name = name;
    o->layers[o->n_layers].value = v;
    o->n_layers++;
    return 0;
}

/* 0 ok, 1 help, -1 error printed */
static int parse_args(int argc, char **argv, popts *o) {
    o->select = 2000;
    o->batch = 50;
    o->threads = 1;
    o->scope = -1;
    o->criterion = SQZC_CRIT_L1;
    o->method = SENS_SPARSITY;
    static const int kRefitMask[] = {1, 2, 3}; /* sqzc_refit_options.remask values */
    const cli_opt opts[] = {
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &o->out},
        {.name = "--channels",
         .kind = CLI_FLOAT,
         .dst = &o->channels,
         .fhi = 1,
         .open = CLI_HI_OPEN,
         .given = &o->have_channels},
        {.name = "--sparsity",
         .kind = CLI_FLOAT,
         .dst = &o->sparsity,
         .fhi = 1,
         .open = CLI_HI_OPEN,
         .given = &o->have_sparsity},
        {.name = "--target-macs",
         .kind = CLI_INT,
         .dst = &o->target_macs,
         .lo = 1,
         .hi = 1LL << 62},
        {.name = "--target-params",
         .kind = CLI_INT,
         .dst = &o->target_params,
         .lo = 1,
         .hi = 1LL << 62},
        {.name = "--criterion", .kind = CLI_CHOICE, .dst = &o->criterion, .choices = "l1,l2,bn"},
        {.name = "--scope", .kind = CLI_CHOICE, .dst = &o->scope, .choices = "layer,global"},
        {.name = "--max-drop",
         .kind = CLI_FLOAT,
         .dst = &o->max_drop,
         .fhi = INFINITY,
         .given = &o->have_max_drop},
        {.name = "--method", .kind = CLI_CHOICE, .dst = &o->method, .choices = "sparsity,channels"},
        {.name = "--data", .kind = CLI_STR, .dst = &o->dataset},
        {.name = "--data-dir", .kind = CLI_STR, .dst = &o->data_dir},
        {.name = "--select", .kind = CLI_INT, .dst = &o->select, .lo = 1, .hi = 1 << 30},
        {.name = "--batch", .kind = CLI_INT, .dst = &o->batch, .lo = 1, .hi = 1 << 20},
        {.name = "--threads", .kind = CLI_INT, .dst = &o->threads, .lo = 1, .hi = 1024},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &o->shapes},
        {.name = "--limit", .kind = CLI_INT, .dst = &o->limit, .lo = 1, .hi = 1 << 30},
        {.name = "--refit", .kind = CLI_INT, .dst = &o->refit, .lo = 1, .hi = 1 << 20},
        {.name = "--sens-refit", .kind = CLI_INT, .dst = &o->sens_refit, .lo = 1, .hi = 1 << 20},
        {.name = "--refit-mask",
         .kind = CLI_CHOICE,
         .dst = &o->refit_mask,
         .choices = "obs,once,gradual",
         .values = kRefitMask},
        {.name = "--json", .kind = CLI_FLAG, .dst = &o->json, .lo = 1},
        {.name = "--sensitivity", .kind = CLI_FLAG, .dst = &o->sens, .lo = 1},
    };
    static const char *const kValued[] = {"--pattern", "--layer", "--ratios"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_prune_usage(stdout);
            return 1;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which >= 0) continue;
        which = cli_opt_table(argc, argv, &i, kValued, (int)(sizeof kValued / sizeof kValued[0]),
                              CMD, &v);
        if (which == -2) return -1;
        if (which < 0) {
            if (cli_positional(CMD, a, &o->in) != 0) return -1;
            continue;
        }
        int bad = 0;
        switch (which) {
        case 0:
            o->pattern = sqzc_prune_pattern_parse(v);
            bad = o->pattern < 0;
            break;
        case 1:
            if (add_layer(o, v) != 0) return -1;
            break;
        case 2:
            o->n_ratios = cli_parse_float_list(v, o->ratios, 32);
            bad = o->n_ratios <= 0;
            for (int k = 0; k < o->n_ratios && !bad; k++)
                bad = !(o->ratios[k] > 0 && o->ratios[k] < 1) ||
                      (k > 0 && o->ratios[k] <= o->ratios[k - 1]);
            break;
        }
        if (bad) {
            cli_error(CMD, "%s: bad value '%s' (try sqz prune --help)", kValued[which], v);
            return -1;
        }
    }
    if (!o->in) {
        cli_error(CMD, "missing input model (try sqz prune --help)");
        return -1;
    }
    if (!o->out) {
        cli_error(CMD, "missing -o out.sqz|out.onnx");
        return -1;
    }
    int modes = o->have_channels + (o->target_macs > 0) + (o->target_params > 0) +
                o->have_sparsity + o->have_max_drop;
    if (modes == 0 && o->n_layers == 0 && o->pattern == SQZC_PATTERN_NONE) {
        cli_error(CMD, "nothing to do: give --channels, --target-macs, --target-params, "
                       "--sparsity, --max-drop, --layer or --pattern");
        return -1;
    }
    if (modes > 1) {
        cli_error(CMD, "give one of --channels, --target-macs, --target-params, --sparsity, "
                       "--max-drop");
        return -1;
    }
    if (o->refit && !o->dataset) {
        cli_error(CMD, "--refit needs --data (its calibration images)");
        return -1;
    }
    if (o->have_max_drop && !o->dataset) {
        cli_error(CMD, "--max-drop needs --data");
        return -1;
    }
    if (o->sens && !o->have_sparsity && !o->target_macs && !o->target_params) {
        cli_error(CMD, "--sensitivity chooses per-layer ratios for --sparsity, --target-macs or "
                       "--target-params (--max-drop always uses it)");
        return -1;
    }
    if (o->sens && !o->dataset) {
        cli_error(CMD, "--sensitivity needs --data (training images to measure it on)");
        return -1;
    }
    if (o->sens && (o->n_layers > 0 || o->pattern != SQZC_PATTERN_NONE)) {
        cli_error(CMD, "--sensitivity chooses every layer's ratio: no --layer / --pattern");
        return -1;
    }
    if (o->sens) o->method = o->have_sparsity ? SENS_SPARSITY : SENS_CHANNELS;
    if (o->pattern != SQZC_PATTERN_NONE &&
        (o->have_channels || o->target_macs || o->target_params)) {
        cli_error(CMD, "--pattern applies to magnitude pruning (--sparsity), not to channels");
        return -1;
    }
    return 0;
}

static int is_channel_mode(const popts *o) {
    if (o->have_max_drop || o->sens) return o->method == SENS_CHANNELS;
    if (o->have_sparsity || o->pattern != SQZC_PATTERN_NONE) return 0;
    return 1; /* --channels, targets, or --layer alone */
}

static double weight_sparsity(const sqzc_graph *g, int64_t *nz_out, int64_t *n_out) {
    int64_t n = 0, z = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0) continue;
        int64_t k = sqz_shape_numel(&g->tensors[t].shape);
        for (int64_t j = 0; j < k; j++) z += g->tensors[t].f32[j] == 0.0f;
        n += k;
    }
    if (nz_out) *nz_out = n - z;
    if (n_out) *n_out = n;
    return n ? (double)z / n : 0.0;
}

static void graph_cost(const sqzc_graph *g, int64_t *params, int64_t *macs) {
    char err[256];
    sqzc_channel_analysis *a = NULL;
    *params = *macs = -1;
    if (sqzc_channel_analyze(g, SQZC_CRIT_L1, NULL, &a, err, sizeof err) != 0) return;
    sqzc_channel_cost(a, NULL, params, macs);
    sqzc_channel_analysis_free(a);
}

int cmd_prune(int argc, char **argv) {
    popts o;
    memset(&o, 0, sizeof o);
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        popts_free(&o);
        return pr > 0 ? CLI_OK : CLI_EUSAGE;
    }
    int channel_mode = is_channel_mode(&o);
    int rc;
    char err[1024];
    sqzc_graph *g = NULL;
    sqzc_bn_gammas *bn = NULL;
    sqzc_channel_analysis *a = NULL;
    uint8_t *rm = NULL;
    float *calib = NULL;
    sqzc_layer_value *chosen = NULL;
    prune_sens sens;
    memset(&sens, 0, sizeof sens);
    eval_set train, test;
    int have_train = 0, have_test = 0;
    double acc_before = -1, acc_after = -1, sel_base = -1, sel_after = -1, pred_drop = -1;
    float ratio_used = o.channels;
    int n_chosen = 0;
    if ((rc = prune_load(CMD, o.in, &o.shapes, &bn, &g)) != 0) goto done;
    if (is_channel_mode(&o) && (rc = prune_check_bn(CMD, o.in, o.criterion, bn)) != 0) goto done;
    if (o.dataset) {
        if ((rc = eval_set_load(CMD, o.dataset, o.data_dir, "t10k", &test)) != 0) goto done;
        have_test = 1;
        if (o.limit > 0 && o.limit < test.imgs.n) test.imgs.n = (int)o.limit;
        if (o.have_max_drop || o.sens || o.refit) {
            if ((rc = eval_set_load(CMD, o.dataset, o.data_dir, "train", &train)) != 0) goto done;
            have_train = 1;
        }
        if ((rc = prune_accuracy(CMD, g, &test, 0, test.imgs.n, (int)o.batch, (int)o.threads,
                                 &acc_before)) != 0)
            goto done;
    }
    int n_sel = have_train ? (o.select < train.imgs.n ? (int)o.select : train.imgs.n) : 0;
    int sel_first = have_train ? train.imgs.n - n_sel : 0;
    if (o.refit) {
        if ((rc = prune_load(CMD, o.in, &o.shapes, NULL, &g_refit_orig)) != 0) goto done;
        int64_t per = (int64_t)train.imgs.h * train.imgs.w;
        /* the first images of the training split; the selection images of
         * --max-drop / --sensitivity are the last --select ones */
        int first = 0;
        int avail = train.imgs.n - (o.have_max_drop || o.sens ? n_sel : 0);
        int n = (int)(o.refit < avail ? o.refit : avail);
        if (n < 1) {
            cli_error(CMD, "--refit: no training images left after the --select ones");
            rc = CLI_EUSAGE;
            goto done;
        }
        const sqz_shape *is = &g->tensors[g->inputs[0]].shape;
        if (sqz_shape_numel(is) != per * (is->ndim > 0 ? is->dims[0] : 1)) {
            cli_error(CMD, "--refit: input '%s' does not take one %dx%d image per batch row",
                      g->tensors[g->inputs[0]].name, train.imgs.h, train.imgs.w);
            rc = CLI_EUSAGE;
            goto done;
        }
        calib = malloc((size_t)(n * per) * sizeof *calib);
        if (!calib) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        for (int64_t i = 0; i < (int64_t)n * per; i++)
            calib[i] = ((float)train.imgs.data[(int64_t)first * per + i] / 255.0f - train.mean) /
                       train.std;
        memset(&g_refit, 0, sizeof g_refit);
        g_refit.inputs = calib;
        g_refit.n = n;
        g_refit.remask =
            !channel_mode && o.pattern == SQZC_PATTERN_NONE ? (o.refit_mask ? o.refit_mask : 3) : 0;
    }
    int64_t p0, m0, p1, m1, nz0, nz1, nw;
    graph_cost(g, &p0, &m0);
    double sp0 = weight_sparsity(g, &nz0, &nw);
    int global = o.scope >= 0 ? o.scope : channel_mode;
    if (channel_mode && sqzc_channel_analyze(g, o.criterion, bn, &a, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        rc = CLI_EUSAGE;
        goto done;
    }
    if (o.have_max_drop || o.sens) {
        static const float kSp[] = {0.5f, 0.6f,  0.7f,  0.8f,  0.85f,
                                    0.9f, 0.93f, 0.95f, 0.97f, 0.98f};
        static const float kCh[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
        const float *lad = o.n_ratios ? o.ratios : channel_mode ? kCh : kSp;
        int nlad = o.n_ratios ? o.n_ratios : channel_mode ? 8 : 10;
        int n_refit = g_refit.n; /* the sweep may refit on fewer images (--sens-refit) */
        if (o.sens_refit > 0 && o.sens_refit < n_refit) g_refit.n = (int)o.sens_refit;
        rc = prune_sensitivity(CMD, g, o.method, o.criterion, bn, lad, nlad, &train, sel_first,
                               n_sel, (int)o.batch, (int)o.threads, !o.json, &sens);
        g_refit.n = n_refit;
        if (rc != 0) goto done;
        chosen = calloc((size_t)sens.n_layers + 1, sizeof *chosen);
        if (!chosen) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        sel_base = sens.base;
        if (o.have_max_drop) {
            rc = choose_max_drop(CMD, g, &sens, a, o.max_drop, &train, sel_first, n_sel,
                                 (int)o.batch, (int)o.threads, !o.json, chosen, &sel_after);
        } else {
            int kind = !channel_mode ? GAIN_WEIGHTS : o.target_macs ? GAIN_MACS : GAIN_PARAMS;
            int64_t target = o.target_macs ? o.target_macs : o.target_params;
            double need = !channel_mode   ? (double)o.sparsity * (double)nw
                          : o.target_macs ? (double)(m0 - o.target_macs)
                                          : (double)(p0 - o.target_params);
            rc = choose_for_target(CMD, &sens, a, kind, need, target, chosen, &pred_drop);
        }
        if (rc != 0) goto done;
        n_chosen = sens.n_layers;
    }
    if (channel_mode) {
        int ng = sqzc_channel_n_groups(a);
        rm = calloc((size_t)ng + 1, 1);
        if (!rm) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        sqzc_channel_options co;
        memset(&co, 0, sizeof co);
        co.ratio = o.have_channels ? o.channels : 0.0f;
        co.global = global;
        co.layers = n_chosen ? chosen : o.layers;
        co.n_layers = n_chosen ? n_chosen : o.n_layers;
        co.target_macs = n_chosen ? 0 : o.target_macs;
        co.target_params = n_chosen ? 0 : o.target_params;
        if (sqzc_channel_select(a, &co, rm, &ratio_used, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_EUSAGE;
            goto done;
        }
        if (!o.json) {
            for (int i = 0; i < sqzc_channel_n_blocked(a); i++) {
                const char *layer, *why;
                sqzc_channel_blocked(a, i, &layer, &why);
                printf("kept whole: %s: %s\n", layer, why);
            }
        }
        if (g_refit_orig && (sqzc_channel_zero(g, a, rm, err, sizeof err) != 0 ||
                             sqzc_prune_refit(g, g_refit_orig, &g_refit, err, sizeof err) != 0)) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
        if (sqzc_channel_apply(g, a, rm, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
    } else {
        sqzc_prune_options po;
        memset(&po, 0, sizeof po);
        po.sparsity = o.have_sparsity ? o.sparsity : (o.pattern == SQZC_PATTERN_2OF4 ? 0.5f : 0);
        po.global = global;
        po.layers = n_chosen ? chosen : o.layers;
        po.n_layers = n_chosen ? n_chosen : o.n_layers;
        if (sqzc_prune_blocks(g, &po, o.pattern, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_EUSAGE;
            goto done;
        }
        if (g_refit_orig) {
            if (sqzc_prune_refit(g, g_refit_orig, &g_refit, err, sizeof err) != 0) {
                cli_error(CMD, "%s", err);
                rc = CLI_ERUNTIME;
                goto done;
            }
            for (int i = 0; i < g->n_nodes; i++) { /* refit values: storage requests again */
                int t = sqzc_layer_weight(g, i);
                if (t >= 0 && sqzc_update_sparse_request(g, t) != 0) {
                    cli_error(CMD, "out of memory");
                    rc = CLI_ERUNTIME;
                    goto done;
                }
            }
        }
    }
    graph_cost(g, &p1, &m1);
    double sp1 = weight_sparsity(g, &nz1, NULL);
    if (have_test && (rc = prune_accuracy(CMD, g, &test, 0, test.imgs.n, (int)o.batch,
                                          (int)o.threads, &acc_after)) != 0)
        goto done;
    if (ends_with(o.out, ".onnx")) {
        /* the sparse storage requests mean nothing to ONNX; zeros stay */
        if (sqzc_write_onnx(g, NULL, o.out, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
    } else if (sqzc_write_sqz(g, o.out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        rc = CLI_ERUNTIME;
        goto done;
    }
    long long bytes = cli_file_size(o.out);
    if (o.json) {
        printf("{\"input\":");
        cli_json_str(stdout, o.in);
        printf(",\"output\":");
        cli_json_str(stdout, o.out);
        printf(",\"mode\":\"%s\",\"params_before\":%lld,\"params_after\":%lld,"
               "\"macs_before\":%lld,\"macs_after\":%lld,\"sparsity_before\":%.6f,"
               "\"sparsity_after\":%.6f,\"nonzero_weights\":%lld,\"bytes\":%lld",
               channel_mode ? "channels" : "sparsity", (long long)p0, (long long)p1, (long long)m0,
               (long long)m1, sp0, sp1, (long long)nz1, bytes);
        if (channel_mode) printf(",\"ratio\":%.4f", (double)ratio_used);
        if (have_test)
            printf(",\"accuracy_before\":%.4f,\"accuracy_after\":%.4f", acc_before, acc_after);
        if (n_chosen) {
            if (o.have_max_drop)
                printf(",\"select_accuracy_before\":%.4f,\"select_accuracy_after\":%.4f", sel_base,
                       sel_after);
            else
                printf(",\"predicted_drop\":%.4f", pred_drop);
            printf(",\"layers\":{");
            for (int i = 0; i < n_chosen; i++) {
                printf("%s", i ? "," : "");
                cli_json_str(stdout, chosen[i].name);
                printf(":%.4g", (double)chosen[i].value);
            }
            printf("}");
        }
        if (a) {
            printf(",\"kept_whole\":[");
            for (int i = 0; i < sqzc_channel_n_blocked(a); i++) {
                const char *layer, *why;
                sqzc_channel_blocked(a, i, &layer, &why);
                printf("%s{\"layer\":", i ? "," : "");
                cli_json_str(stdout, layer);
                printf(",\"reason\":");
                cli_json_str(stdout, why);
                printf("}");
            }
            printf("]");
        }
        printf("}\n");
    } else {
        if (n_chosen && o.have_max_drop)
            printf("per-layer %s chosen for a drop <= %.2f points on the last %d training "
                   "images (%.2f%% -> %.2f%%):\n",
                   channel_mode ? "channel ratios" : "sparsities", (double)o.max_drop, n_sel,
                   sel_base, sel_after);
        else if (n_chosen)
            printf("per-layer %s chosen from the sensitivity on the last %d training images "
                   "(%.2f%%) for the target, least predicted drop %.2f points:\n",
                   channel_mode ? "channel ratios" : "sparsities", n_sel, sel_base, pred_drop);
        if (n_chosen) {
            for (int i = 0; i < n_chosen; i++)
                printf("  %-40s %.2f\n", chosen[i].name, (double)chosen[i].value);
        }
        if (channel_mode && !n_chosen && (o.target_macs || o.target_params))
            printf("channel ratio solved for the target: %.4f\n", (double)ratio_used);
        printf("%-22s %14s %14s %8s\n", "", "before", "after", "ratio");
        printf("%-22s %14lld %14lld %7.3fx\n", "params", (long long)p0, (long long)p1,
               p1 > 0 ? (double)p0 / p1 : 0.0);
        printf("%-22s %14lld %14lld %7.3fx\n", "MACs (dense)", (long long)m0, (long long)m1,
               m1 > 0 ? (double)m0 / m1 : 0.0);
        printf("%-22s %14lld %14lld %7.3fx\n", "non-zero weights", (long long)nz0, (long long)nz1,
               nz1 > 0 ? (double)nz0 / nz1 : 0.0);
        printf("%-22s %13.2f%% %13.2f%%\n", "weight sparsity", 100 * sp0, 100 * sp1);
        if (have_test)
            printf("%-22s %13.2f%% %13.2f%%  (drop %.2f points, %d test images)\n", "accuracy",
                   acc_before, acc_after, acc_before - acc_after, test.imgs.n);
        printf("wrote %s (%lld bytes)\n", o.out, bytes);
    }
    rc = CLI_OK;
done:
    if (have_train) eval_set_free(&train);
    if (have_test) eval_set_free(&test);
    prune_sens_free(&sens);
    sqzc_graph_free(g_refit_orig);
    g_refit_orig = NULL;
    free(calib);
    free(chosen);
    free(rm);
    sqzc_channel_analysis_free(a);
    sqzc_bn_gammas_free(bn);
    sqzc_graph_free(g);
    popts_free(&o);
    (void)nw;
    return rc;
}
