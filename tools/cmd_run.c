/* cmd_run.c - `sqz run`: one inference on a PNG image or a .npy tensor. */
#include "cmd_run.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "sqzc/image.h"
#include "sqzc/npy.h"
#include "sqz/sqz.h"

#define CMD "run"
#define MAX_LABELS 1000000

void cmd_run_usage(FILE *f) {
    fprintf(f, "usage: sqz run model.sqz --input x.png|x.npy [options]\n\n"
               "Run one inference. A PNG is preprocessed to the model input (resized to its\n"
               "H,W, channel count from its C); a .npy float/int array is used as is (its\n"
               "shape must match the model input, or differ only in the batch dim).\n"
               "Prints the top-k of the first output, or writes the outputs with --output.\n\n"
               "  --input PATH             input image (.png) or tensor (.npy) (required)\n"
               "  --input-name NAME        the model input to feed (default: the only one)\n"
               "  --output PATH            write outputs as .npy (several: y.npy, y.1.npy, ...)\n"
               "  --top-k K                print the K best scores (default 5 without --output)\n"
               "  --threads N              worker threads (default 1)\n"
               "  --labels FILE            class names, one per line (for --top-k)\n"
               "PNG preprocessing:\n"
               "  --resize H,W             bilinear resize first (then the result must match the\n"
               "                           model, after --crop)\n"
               "  --crop H,W               center crop (after --resize)\n"
               "  --scale S                multiply pixel values (0..255) by S (default 1/255)\n"
               "  --mean A[,B,C]           subtract per channel (in output channel order)\n"
               "  --std A[,B,C]            divide per channel (in output channel order)\n"
               "  --gray | --rgb | --bgr   channel order (default: gray for C=1, rgb for C=3)\n"
               "  --layout nchw|nhwc       model input layout (default nchw)\n"
               "  -h, --help               this help\n");
}

typedef struct run_opts {
    const char *model, *input, *input_name, *output, *labels;
    int top_k, threads, png_opts;
    image_prep prep;
} run_opts;

/* "H,W" with both >= 1. */
static int parse_hw(const char *v, int *h, int *w) {
    int64_t d[2];
    if (cli_parse_int_list(v, d, 2) != 2 || d[0] < 1 || d[1] < 1 || d[0] > 16384 || d[1] > 16384)
        return -1;
    *h = (int)d[0];
    *w = (int)d[1];
    return 0;
}

/* 1 or 3 values; one value is broadcast. */
static int parse_chan(const char *v, float *out, int positive) {
    float t[3];
    int n = cli_parse_float_list(v, t, 3);
    if (n != 1 && n != 3) return -1;
    for (int i = 0; i < 3; i++) {
        out[i] = t[n == 1 ? 0 : i];
        if (positive && !(out[i] != 0.0f)) return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, run_opts *o) {
    memset(o, 0, sizeof *o);
    o->top_k = -1;
    o->threads = 1;
    image_prep_init(&o->prep);
    static const int kLayouts[] = {IMAGE_NCHW, IMAGE_NCHW, IMAGE_NHWC, IMAGE_NHWC};
    const cli_opt opts[] = {
        {.name = "--input", .kind = CLI_STR, .dst = &o->input},
        {.name = "--input-name", .kind = CLI_STR, .dst = &o->input_name},
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &o->output},
        {.name = "--top-k", .kind = CLI_INT32, .dst = &o->top_k, .lo = 1, .hi = 1000000},
        {.name = "--threads", .kind = CLI_INT32, .dst = &o->threads, .lo = 1, .hi = 1024},
        {.name = "--labels", .kind = CLI_STR, .dst = &o->labels},
        {.name = "--scale",
         .kind = CLI_FLOAT,
         .dst = &o->prep.scale,
         .flo = -INFINITY,
         .fhi = INFINITY,
         .given = &o->png_opts},
        {.name = "--layout",
         .kind = CLI_CHOICE,
         .dst = &o->prep.layout,
         .choices = "nchw,NCHW,nhwc,NHWC",
         .values = kLayouts,
         .given = &o->png_opts},
    };
    /* the image options with a value of their own syntax */
    static const char *const kValued[] = {"--resize", "--crop", "--mean", "--std"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_run_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--gray") == 0 || strcmp(a, "--rgb") == 0 || strcmp(a, "--bgr") == 0) {
            int ord = a[2] == 'g' ? IMAGE_GRAY : a[2] == 'r' ? IMAGE_RGB : IMAGE_BGR;
            if (o->prep.order != IMAGE_AUTO && o->prep.order != ord) {
                cli_error(CMD, "--gray, --rgb and --bgr are exclusive");
                return -1;
            }
            o->prep.order = ord;
            o->png_opts = 1;
            continue;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which >= 0) continue;
        which = cli_opt_table(argc, argv, &i, kValued, (int)(sizeof kValued / sizeof kValued[0]),
                              CMD, &v);
        if (which == -2) return -1;
        if (which < 0) {
            if (cli_positional(CMD, a, &o->model) != 0) return -1;
            continue;
        }
        int bad = which == 0   ? parse_hw(v, &o->prep.resize_h, &o->prep.resize_w) != 0
                  : which == 1 ? parse_hw(v, &o->prep.crop_h, &o->prep.crop_w) != 0
                  : which == 2 ? parse_chan(v, o->prep.mean, 0) != 0
                               : parse_chan(v, o->prep.std, 1) != 0;
        if (bad) {
            cli_error(CMD, "bad value '%s' for %s", v, kValued[which]);
            return -1;
        }
        o->png_opts = 1;
    }
    if (!o->model) {
        cli_error(CMD, "missing model.sqz (try sqz run --help)");
        return -1;
    }
    if (!o->input) {
        cli_error(CMD, "missing --input x.png|x.npy");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- labels */
typedef struct labels {
    char *buf;
    char **line;
    int n;
} labels;

static void labels_free(labels *l) {
    free(l->buf);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int labels_read(const char *path, labels *l, char *err, size_t err_len) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open labels '%s': %s", path, strerror(errno));
        return -1;
    }
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || sz > (64L << 20) || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, err_len, "cannot read labels '%s' (not a file or larger than 64 MiB)", path);
        fclose(f);
        return -1;
    }
    l->buf = malloc((size_t)sz + 1);
    if (!l->buf) {
        fclose(f);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    size_t got = fread(l->buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        snprintf(err, err_len, "short read on labels '%s'", path);
        labels_free(l);
        return -1;
    }
    l->buf[sz] = '\0';
    int count = 0;
    for (long i = 0; i < sz; i++)
        if (l->buf[i] == '\n') count++;
    count++;
    if (count > MAX_LABELS) {
        snprintf(err, err_len, "labels '%s': more than %d lines", path, MAX_LABELS);
        labels_free(l);
        return -1;
    }
    l->line = calloc((size_t)count, sizeof *l->line);
    if (!l->line) {
        snprintf(err, err_len, "out of memory");
        labels_free(l);
        return -1;
    }
    char *p = l->buf;
    while (p < l->buf + sz && l->n < count) {
        char *nl = memchr(p, '\n', (size_t)(l->buf + sz - p));
        char *end = nl ? nl : l->buf + sz;
        *end = '\0';
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        l->line[l->n++] = p;
        p = end + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- output */
static int same_shape(const sqz_shape *a, const sqz_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static void print_topk(const char *oname, const float *d, const sqz_shape *sh, int k,
                       const labels *lab) {
    char sb[32 * SQZ_MAX_DIMS];
    int64_t numel = sqz_shape_numel(sh);
    int64_t rows = (sh->ndim >= 2 && sh->dims[0] > 1) ? sh->dims[0] : 1;
    int64_t cols = rows > 0 ? numel / rows : 0;
    if (k > cols) k = (int)cols;
    printf("output '%s' %s, top-%d:\n", oname ? oname : "?", cli_shape_str(sh, sb, sizeof sb), k);
    int64_t *best = malloc(sizeof *best * (size_t)(k > 0 ? k : 1));
    if (!best) {
        printf("  (out of memory)\n");
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *row = d + r * cols;
        if (rows > 1) printf(" batch %" PRId64 ":\n", r);
        int nb = 0;
        /* insertion into a sorted list of the k best; NaN ranks last */
        for (int64_t j = 0; j < cols; j++) {
            float v = row[j];
            int pos = nb;
            while (pos > 0) {
                float u = row[best[pos - 1]];
                int better = (v == v) && (u != u || v > u);
                if (!better) break;
                pos--;
            }
            if (pos >= k) continue;
            int last = nb < k ? nb : k - 1;
            for (int q = last; q > pos; q--) best[q] = best[q - 1];
            best[pos] = j;
            if (nb < k) nb++;
        }
        for (int q = 0; q < nb; q++) {
            int64_t j = best[q];
            const char *name = (lab && j < lab->n) ? lab->line[j] : NULL;
            printf("  %2d  %6" PRId64 "  %12.6g%s%s\n", q + 1, j, (double)row[j], name ? "  " : "",
                   name ? name : "");
        }
    }
    free(best);
}

static char *output_path(const char *base, int i) {
    size_t n = strlen(base) + 24;
    char *p = malloc(n);
    if (!p) return NULL;
    size_t bl = strlen(base);
    if (i == 0)
        snprintf(p, n, "%s", base);
    else if (bl >= 4 && strcmp(base + bl - 4, ".npy") == 0)
        snprintf(p, n, "%.*s.%d.npy", (int)(bl - 4), base, i);
    else
        snprintf(p, n, "%s.%d", base, i);
    return p;
}

static int write_outputs(const sqz_session *s, int n_out, const char *base) {
    char err[512];
    char **written = calloc((size_t)n_out + 1, sizeof *written);
    if (!written) {
        cli_error(CMD, "out of memory");
        return CLI_ERUNTIME;
    }
    int rc = CLI_OK;
    for (int i = 0; i < n_out; i++) {
        const float *d = NULL;
        sqz_shape sh;
        sqz_status st;
        if (sqz_session_output(s, i, &d, &sh, &st) != SQZ_OK || !d) {
            cli_error(CMD, "output %d: %s", i, st.msg);
            rc = CLI_ERUNTIME;
            break;
        }
        char *p = output_path(base, i);
        if (!p) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            break;
        }
        if (npy_write(p, d, &sh, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            free(p);
            rc = CLI_ERUNTIME;
            break;
        }
        written[i] = p;
    }
    for (int i = 0; i < n_out; i++) {
        if (!written[i]) continue;
        if (rc != CLI_OK)
            unlink(written[i]);
        else if (n_out > 1)
            printf("wrote %s\n", written[i]);
        free(written[i]);
    }
    free(written);
    return rc;
}

/* ---------------------------------------------------------------- main */
enum { IN_NPY, IN_PNG };

static int sniff(const char *path, int *kind, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    unsigned char b[8] = {0};
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) {
        *kind = IN_NPY;
        return 0;
    }
    if (n == 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
        *kind = IN_PNG;
        return 0;
    }
    snprintf(err, err_len, "'%s' is neither a PNG nor a .npy file", path);
    return -1;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) return pr > 0 ? CLI_OK : CLI_EUSAGE;

    char err[512], sb1[32 * SQZ_MAX_DIMS], sb2[32 * SQZ_MAX_DIMS];
    int rc = CLI_EUSAGE, kind = 0;
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    npy_array arr = {0};
    image img = {0};
    labels lab = {0};
    float *buf = NULL;
    cli_shapes ov = {0};

    if (sniff(o.input, &kind, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    if (kind == IN_NPY && o.png_opts) {
        cli_error(CMD, "preprocessing options apply to PNG inputs only (%s is a .npy)", o.input);
        goto done;
    }
    if (o.labels && labels_read(o.labels, &lab, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    if ((rc = cli_open_model(CMD, o.model, &m)) != 0) goto done;
    rc = CLI_EUSAGE;
    int n_in = sqz_model_num_inputs(m), idx = 0;
    if (o.input_name) {
        idx = -1;
        for (int i = 0; i < n_in; i++) {
            const char *nm = sqz_model_input_name(m, i);
            if (nm && strcmp(nm, o.input_name) == 0) idx = i;
        }
        if (idx < 0) {
            cli_error(CMD, "model has no input named '%s'", o.input_name);
            goto done;
        }
    }
    if (n_in != 1) {
        cli_error(CMD, "model has %d inputs; sqz run feeds exactly one", n_in);
        goto done;
    }
    const char *iname = sqz_model_input_name(m, idx);
    sqz_shape want = sqz_model_input_shape(m, idx), use = want;
    if (want.ndim < 0 || want.ndim > SQZ_MAX_DIMS) {
        cli_error(CMD, "%s: bad input shape in the model", o.model);
        goto done;
    }
    if (kind == IN_NPY) {
        if (npy_read(o.input, &arr, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
        if (!same_shape(&arr.shape, &want)) {
            int batch_only =
                arr.shape.ndim == want.ndim && want.ndim >= 1 && arr.shape.dims[0] >= 1;
            for (int i = 1; batch_only && i < want.ndim; i++)
                if (arr.shape.dims[i] != want.dims[i]) batch_only = 0;
            if (!batch_only) {
                cli_error(CMD, "input '%s' expects shape %s, %s has %s", iname ? iname : "?",
                          cli_shape_str(&want, sb1, sizeof sb1), o.input,
                          cli_shape_str(&arr.shape, sb2, sizeof sb2));
                goto done;
            }
            use = arr.shape;
        }
    } else {
        if (want.ndim != 4) {
            cli_error(CMD, "input '%s' has shape %s; images need a 4-D input", iname ? iname : "?",
                      cli_shape_str(&want, sb1, sizeof sb1));
            goto done;
        }
        int nhwc = o.prep.layout == IMAGE_NHWC;
        int64_t c = nhwc ? want.dims[3] : want.dims[1];
        int64_t h = nhwc ? want.dims[1] : want.dims[2];
        int64_t w = nhwc ? want.dims[2] : want.dims[3];
        if (h < 1 || w < 1 || h > 16384 || w > 16384 || (c != 1 && c != 3)) {
            cli_error(CMD, "input '%s' %s is not an image input (%s: C must be 1 or 3)",
                      iname ? iname : "?", cli_shape_str(&want, sb1, sizeof sb1),
                      nhwc ? "NHWC" : "NCHW");
            goto done;
        }
        if (image_read_png(o.input, &img, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
        buf = malloc((size_t)(h * w * c) * sizeof(float));
        if (!buf) {
            cli_error(CMD, "out of memory");
            rc = CLI_ERUNTIME;
            goto done;
        }
        if (image_preprocess(&img, &o.prep, (int)h, (int)w, (int)c, buf, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
        use.dims[0] = 1;
    }
    if (!same_shape(&use, &want)) {
        /* the batch dim differs: plan the session for the given one */
        char spec[64 + 32 * SQZ_MAX_DIMS];
        snprintf(spec, sizeof spec, "%s:", iname ? iname : "");
        for (int i = 0; i < use.ndim; i++) {
            size_t l = strlen(spec);
            snprintf(spec + l, sizeof spec - l, "%s%" PRId64, i ? "," : "", use.dims[i]);
        }
        if (cli_shapes_add(&ov, spec, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
    }
    if ((rc = cli_open_session(CMD, m, &ov, o.threads, &s)) != 0) goto done;
    sqz_status st;
    memset(&st, 0, sizeof st);
    const float *in = kind == IN_NPY ? arr.data : buf;
    size_t count = (size_t)sqz_shape_numel(&use);
    if (sqz_session_set_input(s, idx, in, count, &st) != SQZ_OK) {
        cli_error(CMD, "set input: %s", st.msg);
        rc = CLI_EUSAGE;
        goto done;
    }
    if (sqz_session_run(s, &st) != SQZ_OK) {
        cli_error(CMD, "run failed: %s", st.msg);
        rc = CLI_ERUNTIME;
        goto done;
    }
    int n_out = sqz_model_num_outputs(m);
    if (n_out < 1) {
        cli_error(CMD, "model has no outputs");
        rc = CLI_EUSAGE;
        goto done;
    }
    rc = CLI_OK;
    if (o.output) rc = write_outputs(s, n_out, o.output);
    if (rc == CLI_OK && (!o.output || o.top_k > 0)) {
        const float *d = NULL;
        sqz_shape sh;
        if (sqz_session_output(s, 0, &d, &sh, &st) != SQZ_OK || !d) {
            cli_error(CMD, "output 0: %s", st.msg);
            rc = CLI_ERUNTIME;
            goto done;
        }
        print_topk(sqz_model_output_name(m, 0), d, &sh, o.top_k > 0 ? o.top_k : 5,
                   o.labels ? &lab : NULL);
    }
    if (fflush(stdout) != 0) rc = CLI_ERUNTIME;
done:
    free(buf);
    image_free(&img);
    npy_free(&arr);
    labels_free(&lab);
    cli_shapes_free(&ov);
    sqz_session_free(s);
    sqz_model_free(m);
    return rc;
}
