/* cmd_info.c - `sqz info`: per-layer report of a .sqz model. */
#include "cmd_info.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sqz/sqz.h"

#define CMD "info"

void cmd_info_usage(FILE *f) {
    fprintf(f, "usage: sqz info model.sqz [--input-shape name:d0,d1,...]... [--memory] [--json]\n\n"
               "Per layer: index, op, name, output shape, parameters (elements of constant\n"
               "inputs), parameter bytes and multiply-accumulates; totals; activation arena.\n"
               "With --memory: the MPool plan instead: arena bytes, lower bound (largest set\n"
               "of buffers live at one step), naive total (every buffer its own allocation)\n"
               "and the step (node) where the live set peaks.\n\n"
               "  --input-shape NAME:DIMS    plan for this input shape (repeatable)\n"
               "  --memory                   memory-plan report only\n"
               "  --json                     machine-readable output\n"
               "  -h, --help                 this help\n");
}

static void json_shape(FILE *f, const sqz_shape *s) {
    fputc('[', f);
    for (int i = 0; i < s->ndim && i < SQZ_MAX_DIMS; i++)
        fprintf(f, "%s%" PRId64, i ? "," : "", s->dims[i]);
    fputc(']', f);
}

static const char *op_str(int op, char *buf, size_t len) {
    const char *n = sqz_op_name(op);
    if (n) return n;
    snprintf(buf, len, "op#%d", op);
    return buf;
}

typedef struct io_desc {
    const char *name;
    sqz_shape shape;
} io_desc;

static void print_json(const char *path, long long fbytes, const sqz_session *s, int nn,
                       const sqz_node_info *info, const io_desc *ins, int n_in, const io_desc *outs,
                       int n_out, uint64_t params, uint64_t pbytes, uint64_t macs) {
    FILE *f = stdout;
    fputs("{\"model\":", f);
    cli_json_str(f, path);
    fprintf(f,
            ",\"bytes\":%lld,\"params\":%" PRIu64 ",\"param_bytes\":%" PRIu64 ",\"macs\":%" PRIu64
            ",\"arena_bytes\":%zu,\"nodes\":%d",
            fbytes, params, pbytes, macs, sqz_session_arena_bytes(s), nn);
    for (int pass = 0; pass < 2; pass++) {
        const io_desc *d = pass ? outs : ins;
        int n = pass ? n_out : n_in;
        fprintf(f, ",\"%s\":[", pass ? "outputs" : "inputs");
        for (int i = 0; i < n; i++) {
            fputs(i ? ",{\"name\":" : "{\"name\":", f);
            cli_json_str(f, d[i].name);
            fputs(",\"shape\":", f);
            json_shape(f, &d[i].shape);
            fputc('}', f);
        }
        fputc(']', f);
    }
    fputs(",\"layers\":[", f);
    for (int i = 0; i < nn; i++) {
        char ob[32];
        fprintf(f, "%s{\"index\":%d,\"op\":", i ? "," : "", i);
        cli_json_str(f, op_str(info[i].op, ob, sizeof ob));
        fputs(",\"name\":", f);
        cli_json_str(f, info[i].name);
        fputs(",\"shape\":", f);
        json_shape(f, &info[i].out_shape);
        fprintf(f, ",\"params\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"macs\":%" PRIu64 "}",
                info[i].params, info[i].param_bytes, info[i].macs);
    }
    fputs("]}\n", f);
}

static int width_u64(uint64_t v) {
    char b[32];
    return snprintf(b, sizeof b, "%" PRIu64, v);
}

static int max_i(int a, int b) {
    return a > b ? a : b;
}

static void print_table(const char *path, long long fbytes, const sqz_session *s, int nn,
                        const sqz_node_info *info, const io_desc *ins, int n_in,
                        const io_desc *outs, int n_out, uint64_t params, uint64_t pbytes,
                        uint64_t macs) {
    char sb[32 * SQZ_MAX_DIMS], ob[32];
    printf("model: %s (%lld bytes)\n", path, fbytes);
    for (int pass = 0; pass < 2; pass++) {
        const io_desc *d = pass ? outs : ins;
        int n = pass ? n_out : n_in;
        printf("%s", pass ? "outputs:" : "inputs: ");
        for (int i = 0; i < n; i++)
            printf("%s %s %s", i ? "," : "", d[i].name ? d[i].name : "?",
                   cli_shape_str(&d[i].shape, sb, sizeof sb));
        printf("\n");
    }
    printf("\n");
    int wi = max_i(1, width_u64((uint64_t)(nn > 0 ? nn - 1 : 0)));
    int wo = 2, wn = 4, ws = 6;
    int wp = max_i(6, width_u64(params)), wb = max_i(5, width_u64(pbytes));
    int wm = max_i(4, width_u64(macs));
    for (int i = 0; i < nn; i++) {
        wo = max_i(wo, (int)strlen(op_str(info[i].op, ob, sizeof ob)));
        wn = max_i(wn, (int)strlen(info[i].name ? info[i].name : ""));
        ws = max_i(ws, (int)strlen(cli_shape_str(&info[i].out_shape, sb, sizeof sb)));
    }
    if (wn > 48) wn = 48; /* very long names just push their row */
    wn = max_i(wn, 5);
    printf("%*s  %-*s  %-*s  %-*s  %*s  %*s  %*s\n", wi, "#", wo, "op", wn, "name", ws, "output",
           wp, "params", wb, "bytes", wm, "MACs");
    for (int i = 0; i < nn; i++) {
        printf("%*d  %-*s  %-*s  %-*s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "\n", wi, i, wo,
               op_str(info[i].op, ob, sizeof ob), wn, info[i].name ? info[i].name : "", ws,
               cli_shape_str(&info[i].out_shape, sb, sizeof sb), wp, info[i].params, wb,
               info[i].param_bytes, wm, info[i].macs);
    }
    printf("%*s  %-*s  %-*s  %-*s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "\n", wi, "", wo, "", wn,
           "total", ws, "", wp, params, wb, pbytes, wm, macs);
    printf("\nnodes: %d  params: %" PRIu64 "  MACs: %" PRIu64
           "  file: %lld bytes  arena: %zu bytes\n",
           nn, params, macs, fbytes, sqz_session_arena_bytes(s));
}

static void print_memory(const char *path, const sqz_session *s, int nn, int json) {
    sqz_memory_info mi;
    memset(&mi, 0, sizeof mi);
    sqz_session_memory(s, &mi);
    sqz_node_info peak;
    memset(&peak, 0, sizeof peak);
    int has_peak = mi.peak_step >= 0 && mi.peak_step < nn;
    if (has_peak) sqz_session_node_info(s, mi.peak_step, &peak);
    char ob[32];
    double over = mi.lower_bound_bytes ? (double)mi.arena_bytes / (double)mi.lower_bound_bytes : 0;
    double saved = mi.naive_bytes ? 1.0 - (double)mi.arena_bytes / (double)mi.naive_bytes : 0;
    if (json) {
        FILE *f = stdout;
        fputs("{\"model\":", f);
        cli_json_str(f, path);
        fprintf(f,
                ",\"arena_bytes\":%zu,\"lower_bound_bytes\":%zu,\"naive_bytes\":%zu"
                ",\"arena_over_lower_bound\":%.6f,\"saving_vs_naive\":%.6f,\"peak_step\":",
                mi.arena_bytes, mi.lower_bound_bytes, mi.naive_bytes, over, saved);
        if (has_peak) {
            fprintf(f, "{\"index\":%d,\"op\":", mi.peak_step);
            cli_json_str(f, op_str(peak.op, ob, sizeof ob));
            fputs(",\"name\":", f);
            cli_json_str(f, peak.name);
            fputc('}', f);
        } else {
            fputs("null", f);
        }
        fputs("}\n", f);
        return;
    }
    printf("model: %s\n", path);
    printf("arena:        %12zu bytes  (%.2f MiB)\n", mi.arena_bytes,
           (double)mi.arena_bytes / 1048576.0);
    printf("lower bound:  %12zu bytes  (arena / lower bound = %.3f)\n", mi.lower_bound_bytes, over);
    printf("naive:        %12zu bytes  (arena is %.1f%% below naive)\n", mi.naive_bytes,
           100.0 * saved);
    if (has_peak)
        printf("peak step:    %d %s %s\n", mi.peak_step, op_str(peak.op, ob, sizeof ob),
               peak.name ? peak.name : "");
    else
        printf("peak step:    none\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, memory = 0, rc = CLI_EUSAGE;
    cli_shapes shapes = {0};
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    sqz_node_info *info = NULL;
    io_desc *ins = NULL, *outs = NULL;

    const cli_opt cli[] = {
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &shapes},
        {.name = "--json", .kind = CLI_FLAG, .dst = &json, .lo = 1},
        {.name = "--memory", .kind = CLI_FLAG, .dst = &memory, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_info_usage(stdout);
            cli_shapes_free(&shapes);
            return CLI_OK;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, cli, (int)(sizeof cli / sizeof cli[0]));
        if (which == -2) goto done;
        if (which < 0 && cli_positional(CMD, a, &path) != 0) goto done;
    }
    if (!path) {
        cli_error(CMD, "missing model.sqz (try sqz info --help)");
        goto done;
    }
    if ((rc = cli_open_model(CMD, path, &m)) != 0) goto done;
    if ((rc = cli_open_session(CMD, m, &shapes, 1, &s)) != 0) goto done;
    rc = CLI_ERUNTIME;
    int nn = sqz_session_num_nodes(s);
    int n_in = sqz_model_num_inputs(m), n_out = sqz_model_num_outputs(m);
    if (nn < 0 || n_in < 0 || n_out < 0) {
        cli_error(CMD, "%s: bad model counts", path);
        rc = CLI_EUSAGE;
        goto done;
    }
    if (memory) {
        print_memory(path, s, nn, json);
        rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
        goto done;
    }
    info = calloc((size_t)nn + 1, sizeof *info);
    ins = calloc((size_t)n_in + 1, sizeof *ins);
    outs = calloc((size_t)n_out + 1, sizeof *outs);
    if (!info || !ins || !outs) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    uint64_t params = 0, pbytes = 0, macs = 0;
    for (int i = 0; i < nn; i++) {
        sqz_session_node_info(s, i, &info[i]);
        params += info[i].params;
        pbytes += info[i].param_bytes;
        macs += info[i].macs;
    }
    for (int i = 0; i < n_in; i++) {
        ins[i].name = sqz_model_input_name(m, i);
        ins[i].shape = sqz_session_input_shape(s, i);
    }
    for (int i = 0; i < n_out; i++) {
        sqz_status st;
        const float *d = NULL;
        outs[i].name = sqz_model_output_name(m, i);
        if (sqz_session_output(s, i, &d, &outs[i].shape, &st) != SQZ_OK) outs[i].shape.ndim = 0;
    }
    long long fbytes = cli_file_size(path);
    if (json)
        print_json(path, fbytes, s, nn, info, ins, n_in, outs, n_out, params, pbytes, macs);
    else
        print_table(path, fbytes, s, nn, info, ins, n_in, outs, n_out, params, pbytes, macs);
    rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
done:
    free(info);
    free(ins);
    free(outs);
    sqz_session_free(s);
    sqz_model_free(m);
    cli_shapes_free(&shapes);
    return rc;
}
