/* cmd_import.c - `sqz import`: ONNX -> optimized IR -> .sqz (atomic write). */
#include "cmd_import.h"

#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/writer.h"

#define CMD "import"

void cmd_import_usage(FILE *f) {
    fprintf(f, "usage: sqz import model.onnx -o model.sqz [--input-shape name:d0,d1,...]...\n"
               "                  [--no-optimize]\n\n"
               "Import an ONNX model, optimize it (constant folding, BatchNorm folding,\n"
               "activation fusion, dead-node removal) and write a .sqz file atomically.\n\n"
               "  -o, --output PATH          output .sqz file (required)\n"
               "  --input-shape NAME:DIMS    fix the shape of a graph input, e.g. input:1,1,28,28\n"
               "                             (repeatable; needed for dynamic dims)\n"
               "  --no-optimize              write the graph as imported\n"
               "  -h, --help                 this help\n");
}

static uint64_t count_params(const sqzc_graph *g) {
    /* elements of every float constant that a node reads */
    char *seen = calloc((size_t)g->n_tensors + 1, 1);
    if (!seen) return 0;
    uint64_t total = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const sqzc_node *nd = &g->nodes[n];
        if (nd->op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < nd->n_in; k++) {
            int t = nd->in[k];
            if (t < 0 || t >= g->n_tensors || seen[t]) continue;
            seen[t] = 1;
            const sqzc_tensor *tt = &g->tensors[t];
            if (tt->f32 && tt->shape.ndim >= 0) total += (uint64_t)sqz_shape_numel(&tt->shape);
        }
    }
    free(seen);
    return total;
}

int cmd_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int optimize = 1;
    cli_shapes shapes = {0};
    char err[512];
    int rc = CLI_EUSAGE;
    sqzc_named_shape *named = NULL;
    sqzc_graph *g = NULL;

    const cli_opt cli[] = {
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &out},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &shapes},
        {.name = "--no-optimize", .kind = CLI_FLAG, .dst = &optimize, .lo = 0},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_import_usage(stdout);
            cli_shapes_free(&shapes);
            return CLI_OK;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, cli, (int)(sizeof cli / sizeof cli[0]));
        if (which == -2) goto done;
        if (which < 0 && cli_positional(CMD, a, &in) != 0) goto done;
    }
    if (!in) {
        cli_error(CMD, "missing input model.onnx (try sqz import --help)");
        goto done;
    }
    if (!out) {
        cli_error(CMD, "missing -o model.sqz");
        goto done;
    }
    if (shapes.n > 0) {
        named = calloc((size_t)shapes.n, sizeof *named);
        if (!named) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        for (int i = 0; i < shapes.n; i++) {
            named[i].name = shapes.names[i];
            named[i].shape = shapes.shapes[i];
        }
    }
    sqzc_import_options opts;
    memset(&opts, 0, sizeof opts);
    opts.input_shapes = named;
    opts.n_input_shapes = shapes.n;
    opts.default_batch = 1; /* exporters mark the batch dim dynamic; 1 unless told */
    err[0] = '\0';
    if (sqzc_import_onnx(in, &opts, &g, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err[0] ? err : "import failed");
        goto done;
    }
    for (int k = 0; k < g->n_meta; k++)
        if (strcmp(g->meta[k].key, "import.note") == 0)
            fprintf(stderr, "sqz import: note: %s\n", g->meta[k].value);
    if (optimize && sqzc_optimize(g, err, sizeof err) != 0) {
        cli_error(CMD, "optimize: %s", err);
        goto done;
    }
    if (sqzc_write_sqz(g, out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        rc = CLI_ERUNTIME;
        goto done;
    }
    int nodes = 0;
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].op != SQZ_OP_INVALID) nodes++;
    long long bytes = cli_file_size(out);
    printf("%s -> %s: %d nodes, %llu params, %lld bytes\n", in, out, nodes,
           (unsigned long long)count_params(g), bytes);
    rc = CLI_OK;
done:
    sqzc_graph_free(g);
    free(named);
    cli_shapes_free(&shapes);
    return rc;
}
