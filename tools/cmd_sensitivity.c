/* cmd_sensitivity.c - `sqz sensitivity`: prune one layer (or one channel
 * family) at a time over a ladder of ratios and report the accuracy drop on
 * images of the training split (the test split stays untouched for the final
 * report of `sqz prune --max-drop`). */
#include "cmd_sensitivity.h"

#include <stdlib.h>
#include <string.h>

#include "cmd_prune.h"

#define CMD "sensitivity"

void cmd_sensitivity_usage(FILE *f) {
    fprintf(f, "usage: sqz sensitivity model.onnx|model.sqz --data NAME [options]\n\n"
               "Prune one layer at a time (magnitude: that layer's weights; channels: one\n"
               "dependency family) at each ratio of a ladder and print the top-1 accuracy drop\n"
               "in points against the unpruned model, as a table or JSON. Accuracy is measured\n"
               "on the last --select images of the training split (as sqz prune --max-drop).\n\n"
               "  --data NAME              fashion-mnist or mnist (required)\n"
               "  --data-dir DIR           default /usr/share/datasets/<NAME>\n"
               "  --method sparsity|channels  default sparsity\n"
               "  --ratios R1,R2,...       ladder (default sparsity 0.5..0.98, channels 0.1..0.8)\n"
               "  --criterion l1|l2|bn     channel ranking (default l1)\n"
               "  --select N               training images (default 2000)\n"
               "  --batch B                images per run (default 50)\n"
               "  --threads N              worker threads (default 1)\n"
               "  --input-shape NAME:DIMS  fix an input shape (ONNX input)\n"
               "  --json                   JSON on stdout\n"
               "  -h, --help               this help\n");
}

int cmd_sensitivity(int argc, char **argv) {
    const char *in = NULL, *dataset = NULL, *data_dir = NULL;
    int method = SENS_SPARSITY, criterion = SQZC_CRIT_L1, json = 0, nr = 0;
    long long select = 2000, batch = 50, threads = 1;
    float ratios[32];
    cli_shapes shapes;
    memset(&shapes, 0, sizeof shapes);
    int rc = CLI_EUSAGE;
    const cli_opt opts[] = {
        {.name = "--data", .kind = CLI_STR, .dst = &dataset},
        {.name = "--data-dir", .kind = CLI_STR, .dst = &data_dir},
        {.name = "--method", .kind = CLI_CHOICE, .dst = &method, .choices = "sparsity,channels"},
        {.name = "--criterion", .kind = CLI_CHOICE, .dst = &criterion, .choices = "l1,l2,bn"},
        {.name = "--select", .kind = CLI_INT, .dst = &select, .lo = 1, .hi = 1 << 30},
        {.name = "--batch", .kind = CLI_INT, .dst = &batch, .lo = 1, .hi = 1 << 20},
        {.name = "--threads", .kind = CLI_INT, .dst = &threads, .lo = 1, .hi = 1024},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &shapes},
        {.name = "--json", .kind = CLI_FLAG, .dst = &json, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_sensitivity_usage(stdout);
            cli_shapes_free(&shapes);
            return CLI_OK;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) goto done;
        if (which >= 0) continue;
        int m = cli_opt_value(argc, argv, &i, "--ratios", &v);
        if (m < 0) {
            cli_error(CMD, "--ratios needs a value");
            goto done;
        }
        if (m == 0) {
            if (cli_positional(CMD, a, &in) != 0) goto done;
            continue;
        }
        nr = cli_parse_float_list(v, ratios, 32);
        int bad = nr <= 0;
        for (int k = 0; k < nr && !bad; k++) bad = !(ratios[k] > 0 && ratios[k] < 1);
        if (bad) {
            cli_error(CMD, "--ratios: bad value '%s'", v);
            goto done;
        }
    }
    if (!in) {
        cli_error(CMD, "missing input model (try sqz sensitivity --help)");
        goto done;
    }
    if (!dataset) {
        cli_error(CMD, "--data is required");
        goto done;
    }
    if (nr == 0) {
        static const float kSp[] = {0.5f, 0.6f,  0.7f,  0.8f,  0.85f,
                                    0.9f, 0.93f, 0.95f, 0.97f, 0.98f};
        static const float kCh[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
        nr = method == SENS_CHANNELS ? 8 : 10;
        memcpy(ratios, method == SENS_CHANNELS ? kCh : kSp, (size_t)nr * sizeof *ratios);
    }
    sqzc_graph *g = NULL;
    sqzc_bn_gammas *bn = NULL;
    eval_set train;
    if ((rc = prune_load(CMD, in, &shapes, &bn, &g)) != 0) goto done;
    if (method == SENS_CHANNELS && (rc = prune_check_bn(CMD, in, criterion, bn)) != 0) {
        sqzc_graph_free(g);
        sqzc_bn_gammas_free(bn);
        goto done;
    }
    if ((rc = eval_set_load(CMD, dataset, data_dir, "train", &train)) != 0) {
        sqzc_graph_free(g);
        sqzc_bn_gammas_free(bn);
        goto done;
    }
    prune_sens s;
    int n_sel = select < train.imgs.n ? (int)select : train.imgs.n;
    rc = prune_sensitivity(CMD, g, method, criterion, bn, ratios, nr, &train, train.imgs.n - n_sel,
                           n_sel, (int)batch, (int)threads, 0, &s);
    if (rc == 0) {
        prune_sens_print(stdout, &s, json);
        prune_sens_free(&s);
    }
    eval_set_free(&train);
    sqzc_graph_free(g);
    sqzc_bn_gammas_free(bn);
done:
    cli_shapes_free(&shapes);
    return rc;
}
