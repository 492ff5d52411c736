/* cmd_compress.c - `sqz compress`: ONNX -> IR -> magnitude pruning -> weight
 * sharing -> encoded .sqz, with a Deep-Compression-style size table and the
 * accuracy before / after through the runtime. Without a recipe it searches
 * a ladder of (sparsity, bits, scope) settings for the smallest model whose
 * accuracy drop on held-out training images stays within the target. */
#include "cmd_compress.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "cmd_compress_search.h"
#include "evaluate.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/prune.h"
#include "sqzc/recipe.h"
#include "sqzc/tensor_encode.h"
#include "sqzc/weight_share.h"
#include "sqzc/writer.h"

#define CMD "compress"

void cmd_compress_usage(FILE *f) {
    fprintf(f,
            "usage: sqz compress model.onnx -o out.sqz [--recipe FILE | flags] [options]\n\n"
            "Import an ONNX model (as sqz import: default batch 1), prune the smallest weights\n"
            "of the Conv/ConvTranspose/Gemm/MatMul layers, share the rest through per-layer\n"
            "k-means codebooks, and write the encoded .sqz atomically. Prints the size per\n"
            "layer and per stage (fp32 -> pruned -> shared -> huffman), the ratio against the\n"
            "ONNX file, and the accuracy before / after when --data is given.\n"
            "A .sqz input is not supported yet: give the .onnx model.\n\n"
            "Without a recipe (no prune/share key or flag) the sparsity (0..0.95) and the\n"
            "codebook bits (2..8) of every layer are searched: each layer's sensitivity is\n"
            "measured alone (KL divergence from the fp32 outputs on --sens-images images),\n"
            "then a size / sensitivity trade-off is bisected for the smallest model whose\n"
            "top-1 accuracy on the last --select images of the TRAINING split drops by at\n"
            "most target.drop points (default 0.5); the test split is only used for the\n"
            "accuracy printed at the end. Needs --data. Centroids are fp16 in the search\n"
            "(--grid: grid-rounded); biases go on an 8-bit uniform grid (bias.bits), measured\n"
            "by the search.\n"
            "Conv / Gemm layers are pruned by |w| * std(input) and their biases corrected\n"
            "for the mean change, from input statistics of the sensitivity images\n"
            "(--magnitude-only: plain magnitude pruning, reproducible from the recipe).\n\n"
            "  -o, --output PATH        output .sqz (required)\n"
            "  --input-shape NAME:DIMS  fix an input shape (as sqz import; repeatable)\n"
            "  --recipe FILE            recipe file: key = value lines, # comments; keys:\n"
            "                           prune.sparsity, prune.scope (layer|global),\n"
            "                           prune.layer.<node>, share.bits, share.bits.conv,\n"
            "                           share.bits.fc, share.layer.<node>, share.fp16,\n"
            "                           huffman, target.drop\n"
            "  --sparsity S             prune.sparsity (0 <= S < 1)\n"
            "  --prune-scope layer|global\n"
            "  --bits B                 share.bits (2..8)\n"
            "  --bits-conv B            share.bits.conv\n"
            "  --bits-fc B              share.bits.fc\n"
            "  --fp16                   share.fp16 = 1\n"
            "  --grid                   share.grid = 1: centroids on a power-of-two grid,\n"
            "                           stored grid-coded (about a byte each; also in the\n"
            "                           search, whose default is fp16)\n"
            "  --bias-bits B            bias.bits: biases on a uniform grid of B = 2..8 bits\n"
            "                           (default 8), 0: fp16\n"
            "  --no-huffman             huffman = 0 (default 1)\n"
            "  --target-drop P          target.drop, accuracy points (default 0.5)\n"
            "  --set KEY=VALUE          any recipe key (repeatable; after --recipe)\n"
            "  --data NAME              fashion-mnist or mnist: accuracy before / after on\n"
            "                           the test split; the search uses the training split\n"
            "  --data-dir DIR           default /usr/share/datasets/<NAME>\n"
            "  --select N               training images for the search (default 10000)\n"
            "  --sens-images N          of which used for the sensitivity sweep (default 500)\n"
            "  --refine N               greedy one-layer steps after the bisection (default 8)\n"
            "  --confidence Z           a setting passes when drop + Z standard errors of the\n"
            "                           measured drop <= target.drop (default 0; 0..10)\n"
            "  --verbose                search progress on stderr also with --json\n"
            "  --lsq                    search: Gemm layers pruned by least squares instead\n"
            "                           (gradual re-masking as sqz prune --refit, the Gram\n"
            "                           matrix of their inputs from the 4000 training images\n"
            "                           before the selection; slower, smaller models)\n"
            "  --strip                  leave the metadata (recipe, import notes, ONNX producer)\n"
            "                           out of the file: what sqz info shows, not needed to run\n"
            "  --unencoded PATH         also write the same (pruned, shared) weights stored\n"
            "                           raw, to check that the encoding is lossless\n"
            "  --batch B                images per run when evaluating (default 50)\n"
            "  --threads N              worker threads (default 1)\n"
            "  --json                   one JSON object on stdout instead of the table\n"
            "  -h, --help               this help\n");
}

typedef struct kv_arg {
    const char *key, *value, *where;
    char *owned; /* --set copies */
} kv_arg;

typedef struct copts {
    const char *in, *out, *recipe, *dataset, *data_dir, *unencoded;
    cli_shapes shapes;
    kv_arg *kv;
    int n_kv;
    long long select, sens, batch, threads, refine;
    float z; /* --confidence */
    int json, verbose, magnitude, strip, lsq;
} copts;

static void copts_free(copts *o) {
    for (int i = 0; i < o->n_kv; i++) free(o->kv[i].owned);
    free(o->kv);
    cli_shapes_free(&o->shapes);
}

static int push_kv(copts *o, const char *key, const char *value, const char *where) {
    kv_arg *p = realloc(o->kv, ((size_t)o->n_kv + 1) * sizeof *p);
    if (!p) return -1;
    o->kv = p;
    p[o->n_kv].key = key;
    p[o->n_kv].value = value;
    p[o->n_kv].where = where;
    p[o->n_kv].owned = NULL;
    o->n_kv++;
    return 0;
}

/* 0 ok, 1 help shown, -1 error printed */
static int parse_args(int argc, char **argv, copts *o) {
    o->select = 10000;
    o->sens = 500;
    o->refine = 8;
    o->z = 0.0;
    o->batch = 50;
    o->threads = 1;
    static const struct {
        const char *flag, *key;
    } kFlagKeys[] = {{"--sparsity", "prune.sparsity"}, {"--prune-scope", "prune.scope"},
                     {"--bits", "share.bits"},         {"--bits-conv", "share.bits.conv"},
                     {"--bits-fc", "share.bits.fc"},   {"--target-drop", "target.drop"},
                     {"--bias-bits", "bias.bits"}};
    const cli_opt opts[] = {
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &o->out},
        {.name = "--recipe", .kind = CLI_STR, .dst = &o->recipe},
        {.name = "--data", .kind = CLI_STR, .dst = &o->dataset},
        {.name = "--data-dir", .kind = CLI_STR, .dst = &o->data_dir},
        {.name = "--select", .kind = CLI_INT, .dst = &o->select, .lo = 1, .hi = 1 << 30},
        {.name = "--batch", .kind = CLI_INT, .dst = &o->batch, .lo = 1, .hi = 65536},
        {.name = "--threads", .kind = CLI_INT, .dst = &o->threads, .lo = 1, .hi = 1024},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &o->shapes},
        {.name = "--sens-images", .kind = CLI_INT, .dst = &o->sens, .lo = 1, .hi = 1 << 30},
        {.name = "--unencoded", .kind = CLI_STR, .dst = &o->unencoded},
        {.name = "--refine", .kind = CLI_INT, .dst = &o->refine, .lo = 0, .hi = 1000},
        {.name = "--confidence", .kind = CLI_FLOAT, .dst = &o->z, .flo = 0, .fhi = 10},
        {.name = "--json", .kind = CLI_FLAG, .dst = &o->json, .lo = 1},
        {.name = "--verbose", .kind = CLI_FLAG, .dst = &o->verbose, .lo = 1},
        {.name = "--magnitude-only", .kind = CLI_FLAG, .dst = &o->magnitude, .lo = 1},
        {.name = "--strip", .kind = CLI_FLAG, .dst = &o->strip, .lo = 1},
        {.name = "--lsq", .kind = CLI_FLAG, .dst = &o->lsq, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int m;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_compress_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--grid") == 0) {
            if (push_kv(o, "share.grid", "1", a) != 0) goto oom;
            continue;
        }
        if (strcmp(a, "--fp16") == 0 || strcmp(a, "--no-huffman") == 0) {
            int fp = a[2] == 'f';
            if (push_kv(o, fp ? "share.fp16" : "huffman", fp ? "1" : "0", a) != 0) goto oom;
            continue;
        }
        int done = 0;
        for (size_t k = 0; k < sizeof kFlagKeys / sizeof kFlagKeys[0] && !done; k++) {
            if ((m = cli_opt_value(argc, argv, &i, kFlagKeys[k].flag, &v)) == 0) continue;
            if (m < 0) {
                cli_error(CMD, "%s needs a value", kFlagKeys[k].flag);
                return -1;
            }
            if (push_kv(o, kFlagKeys[k].key, v, kFlagKeys[k].flag) != 0) goto oom;
            done = 1;
        }
        if (done) continue;
        if ((m = cli_opt_value(argc, argv, &i, "--set", &v)) != 0) {
            if (m < 0) {
                cli_error(CMD, "--set needs KEY=VALUE");
                return -1;
            }
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                cli_error(CMD, "--set '%s': expected KEY=VALUE", v);
                return -1;
            }
            size_t kl = (size_t)(eq - v);
            char *key = malloc(kl + 1);
            if (!key || push_kv(o, key, eq + 1, "--set") != 0) {
                free(key);
                goto oom;
            }
            memcpy(key, v, kl);
            key[kl] = '\0';
            o->kv[o->n_kv - 1].owned = key;
            continue;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which < 0 && cli_positional(CMD, a, &o->in) != 0) return -1;
    }
    if (!o->in) {
        cli_error(CMD, "missing input model.onnx (try sqz compress --help)");
        return -1;
    }
    if (!o->out) {
        cli_error(CMD, "missing -o out.sqz");
        return -1;
    }
    size_t il = strlen(o->in);
    if (il >= 4 && strcmp(o->in + il - 4, ".sqz") == 0) {
        cli_error(CMD, "%s: a .sqz input is not supported yet; give the .onnx model", o->in);
        return -1;
    }
    return 0;
oom:
    cli_error(CMD, "out of memory");
    return -1;
}

/* ------------------------------------------------------------ helpers */

static int graph_to_model(sqzc_graph *g, int raw, sqz_model **m, size_t *size) {
    return csr_graph_model(CMD, g, raw, m, size);
}

static int graph_accuracy(sqzc_graph *g, const eval_set *set, int first, int count, const copts *o,
                          double *acc) {
    return csr_graph_accuracy(CMD, g, set, first, count, (int)o->batch, (int)o->threads, acc);
}

/* ------------------------------------------------------------ report */

static void print_table(const sqzc_layer_stats *ls, int nl, double other, long long onnx,
                        size_t file_bytes, int file_actual, const char *in, double w_written) {
    printf("%-28s %-8s %9s %6s %4s %3s %10s %10s %10s %10s %6s\n", "layer", "op", "params", "zeros",
           "bits", "gap", "fp32 B", "pruned B", "shared B", "huffman B", "bits/w");
    double t[4] = {0, 0, 0, 0};
    int64_t tp = 0, tz = 0;
    for (int i = 0; i < nl; i++) {
        const sqzc_layer_stats *s = &ls[i];
        printf("%-28.28s %-8.8s %9lld %5.1f%% %4d %3d %10.0f %10.0f %10.0f %10.0f %6.2f\n", s->node,
               sqz_op_name(s->op), (long long)s->params,
               s->params ? 100.0 * (double)s->zeros / (double)s->params : 0.0, s->bits,
               s->sparse ? s->gap_bits : 0, s->fp32, s->pruned, s->shared, s->huffman,
               s->params ? s->huffman * 8.0 / (double)s->params : 0.0);
        t[0] += s->fp32;
        t[1] += s->pruned;
        t[2] += s->shared;
        t[3] += s->huffman;
        tp += s->params;
        tz += s->zeros;
    }
    printf("%-28s %-8s %9lld %5.1f%% %4s %3s %10.0f %10.0f %10.0f %10.0f %6.2f\n", "total weights",
           "", (long long)tp, tp ? 100.0 * (double)tz / (double)tp : 0.0, "", "", t[0], t[1], t[2],
           t[3], tp ? t[3] * 8.0 / (double)tp : 0.0);
    printf("other (biases, graph, header): %.0f bytes in the fp32 file", other);
    if (file_actual && w_written > 0)
        printf(", %.0f in the written one (its weights: %.0f bytes)",
               (double)file_bytes - w_written, w_written);
    printf("\n\n");
    printf("stage      model bytes  ratio vs %s (%lld bytes)\n", in, onnx);
    static const char *const kStage[4] = {"fp32", "pruned", "shared", "huffman"};
    for (int k = 0; k < 4; k++) {
        double b = t[k] + other;
        printf("%-10s %11.0f  %6.2fx%s\n", kStage[k], b, b > 0 ? (double)onnx / b : 0.0,
               k == 3 && !file_actual ? "  (estimate: encoder not in the writer yet)" : "");
    }
    if (file_actual)
        printf("written    %11zu  %6.2fx  (actual .sqz file)\n", file_bytes,
               file_bytes ? (double)onnx / (double)file_bytes : 0.0);
}

int cmd_compress(int argc, char **argv) {
    copts o;
    memset(&o, 0, sizeof o);
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        copts_free(&o);
        return pr > 0 ? CLI_OK : CLI_EUSAGE;
    }
    char err[512];
    int rc = CLI_EUSAGE;
    sqzc_recipe rec, chosen;
    sqzc_recipe_init(&rec);
    sqzc_recipe_init(&chosen);
    rec.huffman = 1;
    sqzc_graph *g = NULL;
    sqzc_named_shape *named = NULL;
    eval_set train, test;
    int have_train = 0, have_test = 0;
    sqzc_layer_stats *ls = NULL;
    char *recipe_text = NULL;

    /* recipe: file first, then the flags in order; all checked before work */
    if (o.recipe && sqzc_recipe_parse_file(&rec, o.recipe, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    for (int i = 0; i < o.n_kv; i++) {
        if (sqzc_recipe_set(&rec, o.kv[i].key, o.kv[i].value, o.kv[i].where, err, sizeof err) !=
            0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
    }
    const int do_search = !rec.prune && !rec.share;
    if (do_search && !o.dataset) {
        cli_error(CMD, "no recipe given: the default search measures accuracy and needs --data "
                       "fashion-mnist (or give --recipe FILE / --sparsity / --bits)");
        goto done;
    }
    float dm, ds;
    if (o.dataset && eval_dataset_norm(o.dataset, &dm, &ds) != 0) {
        cli_error(CMD, "unknown dataset '%s' (fashion-mnist or mnist)", o.dataset);
        goto done;
    }
    long long onnx_bytes = cli_file_size(o.in);
    if (onnx_bytes < 0) {
        cli_error(CMD, "cannot read '%s'", o.in);
        goto done;
    }

    /* import (as sqz import) + optimize */
    if (o.shapes.n > 0) {
        named = calloc((size_t)o.shapes.n, sizeof *named);
        if (!named) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        for (int i = 0; i < o.shapes.n; i++) {
            named[i].name = o.shapes.names[i];
            named[i].shape = o.shapes.shapes[i];
        }
    }
    sqzc_import_options iopt;
    memset(&iopt, 0, sizeof iopt);
    iopt.input_shapes = named;
    iopt.n_input_shapes = o.shapes.n;
    iopt.default_batch = 1;
    err[0] = '\0';
    if (sqzc_import_onnx(o.in, &iopt, &g, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err[0] ? err : "import failed");
        goto done;
    }
    if (sqzc_optimize(g, err, sizeof err) != 0) {
        cli_error(CMD, "optimize: %s", err);
        goto done;
    }
    if (!do_search && sqzc_recipe_check(&rec, g, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    if (o.dataset) {
        if ((rc = eval_set_load(CMD, o.dataset, o.data_dir, "t10k", &test)) != 0) goto done;
        have_test = 1;
        if (do_search) {
            if ((rc = eval_set_load(CMD, o.dataset, o.data_dir, "train", &train)) != 0) goto done;
            have_train = 1;
        }
        rc = CLI_EUSAGE;
    }

    size_t raw_bytes = 0, file_bytes = 0;
    double acc_before = -1, acc_after = -1;
    if ((rc = graph_to_model(g, 1, NULL, &raw_bytes)) != 0) goto done;
    if (have_test && (rc = graph_accuracy(g, &test, 0, test.imgs.n, &o, &acc_before)) != 0)
        goto done;
    rc = CLI_EUSAGE;
    if (do_search) {
        /* the selection: the last n_sel training images (the test split is
         * only used for the accuracy reported below) */
        int n_sel = o.select < train.imgs.n ? (int)o.select : train.imgs.n;
        csr_options so;
        memset(&so, 0, sizeof so);
        so.first = train.imgs.n - n_sel;
        so.count = n_sel;
        so.n_calib = o.sens < n_sel ? (int)o.sens : n_sel;
        so.batch = (int)o.batch;
        so.threads = (int)o.threads;
        so.target_drop = rec.target_drop;
        /* fp16 centroids (half the table bytes, error < 2^-11 relative); with --grid on a
         * power-of-two grid of ~2^-12 of the layer's range (grid-coded tables, a byte or so
         * per centroid) */
        so.fp16 = rec.fp16 == SQZC_CENTROIDS_GRID ? SQZC_CENTROIDS_GRID : 1;
        so.huffman = rec.huffman;
        so.bias_bits = rec.bias_bits;
        so.aware = !o.magnitude;
        so.lsq = o.lsq;
        so.refine = (int)o.refine;
        so.z = o.z;
        so.verbose = !o.json || o.verbose;
        csr_result sr;
        if ((rc = csr_search(CMD, g, &train, &so, &chosen, &sr)) != 0) goto done;
        if (!o.json)
            fprintf(stderr,
                    "sqz compress: search: %d runs; training images %d..%d: fp32 %.2f%% -> "
                    "%.2f%% (drop %+.2f points)%s\n",
                    sr.evaluated, so.first, so.first + n_sel - 1, sr.base_acc * 100.0,
                    sr.acc * 100.0, (sr.base_acc - sr.acc) * 100.0,
                    sr.within_target ? "" : " - no allocation kept the target; the gentlest one");
    } else {
        if (sqzc_recipe_apply(g, &rec, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
    }
    const sqzc_recipe *used = do_search ? &chosen : &rec;
    if (csr_finalize(g, used->bias_bits) != 0) {
        cli_error(CMD, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    recipe_text = sqzc_recipe_to_text(used);
    if (!recipe_text) {
        cli_error(CMD, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    sqz_model *m = NULL;
    if ((rc = graph_to_model(g, 0, have_test ? &m : NULL, &file_bytes)) != 0) goto done;
    if (m) {
        eval_result res;
        rc = eval_run(CMD, m, &test, 0, test.imgs.n, (int)o.batch, (int)o.threads, NULL, &res);
        sqz_model_free(m);
        if (rc != 0) goto done;
        acc_after = res.total ? (double)res.correct / res.total : 0.0;
    }
    if (o.unencoded) { /* the same weights, stored raw: checks the lossless stage */
        uint8_t *raw = NULL;
        size_t raw_size = 0;
        sqzc_encoding **saved = malloc(((size_t)g->n_tensors + 1) * sizeof *saved);
        if (!saved) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        for (int t = 0; t < g->n_tensors; t++) {
            saved[t] = g->tensors[t].enc;
            g->tensors[t].enc = NULL;
        }
        int sr = sqzc_serialize(g, &raw, &raw_size, err, sizeof err);
        for (int t = 0; t < g->n_tensors; t++) g->tensors[t].enc = saved[t];
        free(saved);
        if (sr == 0 && cli_write_file_atomic(o.unencoded, raw, raw_size, err, sizeof err) != 0)
            sr = -1;
        free(raw);
        if (sr != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
    }
    if (o.strip) { /* metadata is for sqz info only; the runtime does not read it */
        for (int i = 0; i < g->n_meta; i++) {
            free(g->meta[i].key);
            free(g->meta[i].value);
        }
        g->n_meta = 0;
    }
    if (sqzc_write_sqz(g, o.out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        rc = CLI_ERUNTIME;
        goto done;
    }
    long long written = cli_file_size(o.out);
    if (written > 0) file_bytes = (size_t)written;
    int nl = sqzc_layer_stats_collect(g, &ls);
    if (nl < 0) {
        cli_error(CMD, "out of memory");
        rc = CLI_ERUNTIME;
        goto done;
    }
    double w32 = 0, wfinal = 0;
    for (int i = 0; i < nl; i++) {
        w32 += ls[i].fp32;
        wfinal += ls[i].huffman;
    }
    double other = (double)raw_bytes - w32;
    /* the writer encodes the requests when the file shrank */
    int actual = file_bytes < raw_bytes;
    double final_bytes = actual ? (double)file_bytes : other + wfinal;
    double ratio = final_bytes > 0 ? (double)onnx_bytes / final_bytes : 0.0;
    if (o.json) {
        printf("{\"input\":");
        cli_json_str(stdout, o.in);
        printf(",\"output\":");
        cli_json_str(stdout, o.out);
        printf(",\"onnx_bytes\":%lld,\"fp32_sqz_bytes\":%zu,\"sqz_bytes\":%.0f,"
               "\"size_is_estimate\":%s,\"ratio\":%.4f,\"file_bytes\":%zu",
               onnx_bytes, raw_bytes, final_bytes, actual ? "false" : "true", ratio, file_bytes);
        if (acc_before >= 0)
            printf(",\"accuracy_before\":%.6f,\"accuracy_after\":%.6f,\"drop_points\":%.4f",
                   acc_before, acc_after, (acc_before - acc_after) * 100.0);
        printf(",\"recipe\":");
        cli_json_str(stdout, recipe_text);
        double st[4] = {other, other, other, other};
        printf(",\"layers\":[");
        for (int i = 0; i < nl; i++) {
            const sqzc_layer_stats *s = &ls[i];
            st[0] += s->fp32;
            st[1] += s->pruned;
            st[2] += s->shared;
            st[3] += s->huffman;
            printf("%s{\"node\":", i ? "," : "");
            cli_json_str(stdout, s->node);
            printf(",\"op\":\"%s\",\"params\":%lld,\"zeros\":%lld,\"bits\":%d,\"gap_bits\":%d,"
                   "\"fp32\":%.0f,\"pruned\":%.0f,\"shared\":%.0f,\"huffman\":%.0f}",
                   sqz_op_name(s->op), (long long)s->params, (long long)s->zeros, s->bits,
                   s->sparse ? s->gap_bits : 0, s->fp32, s->pruned, s->shared, s->huffman);
        }
        printf("],\"stages\":{\"fp32\":%.0f,\"pruned\":%.0f,\"shared\":%.0f,\"huffman\":%.0f}}\n",
               st[0], st[1], st[2], st[3]);
    } else {
        /* the layer weights' payloads as the writer encodes them */
        double w_written = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            int t = sqzc_layer_weight(g, i), dup = 0;
            for (int j = 0; j < i && !dup; j++) dup = sqzc_layer_weight(g, j) == t;
            if (t < 0 || dup) continue;
            const sqzc_tensor *x = &g->tensors[t];
            uint64_t n = (uint64_t)sqz_shape_numel(&x->shape);
            uint8_t *pl = NULL;
            size_t psz = 4 * n;
            sqzc_enc_stats st;
            if (x->enc &&
                sqzc_tensor_encode(x->f32, n, x->enc, 0, &pl, &psz, &st, err, sizeof err) != 0)
                psz = 4 * n;
            free(pl);
            w_written += (double)psz;
        }
        print_table(ls, nl, other, onnx_bytes, file_bytes, actual, o.in, w_written);
        printf("\n%s -> %s: %.0f bytes%s, %.2fx smaller than the ONNX file\n", o.in, o.out,
               final_bytes, actual ? "" : " (estimate)", ratio);
        if (acc_before >= 0)
            printf("accuracy (%s test, %d images): fp32 %.2f%% -> compressed %.2f%% (drop %+.2f "
                   "points, target %.2f)\n",
                   o.dataset, test.imgs.n, acc_before * 100.0, acc_after * 100.0,
                   (acc_before - acc_after) * 100.0, (double)used->target_drop);
        printf("recipe:\n%s", recipe_text);
    }
    rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
done:
    free(recipe_text);
    free(ls);
    if (have_train) eval_set_free(&train);
    if (have_test) eval_set_free(&test);
    sqzc_graph_free(g);
    free(named);
    sqzc_recipe_free(&rec);
    sqzc_recipe_free(&chosen);
    copts_free(&o);
    return rc;
}
