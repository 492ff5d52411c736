/* cmd_quant.c - `sqz quant`: calibrate an fp32 model on a calibration set and
 * write its INT8 .sqz (sqzc/quant.h), with a per-layer report. */
/* madvise / MADV_HUGEPAGE */
#define _DEFAULT_SOURCE 1
#include "cmd_quant.h"

#include <math.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "sqzc/calib_set.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/quant.h"
#include "sqzc/quant_qdq.h"
#include "sqzc/sqz_read.h"
#include "sqzc/writer.h"
#include "sqz/sqz.h"

#define CMD "quant"
/* PNG pixels decoded into memory while the set is checked (the rest are
 * decoded again when each pass loads them) */
#define CALIB_DECODE_BYTES ((size_t)64 << 20)

/* SQZ_QUANT_PROFILE=1: phase times on stderr (as compress/quant/; =cpu:
 * process CPU time) */
static clockid_t prof_clock(void) {
    const char *e = getenv("SQZ_QUANT_PROFILE");
    return e && strcmp(e, "cpu") == 0 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
}
static void prof(const char *what, struct timespec *t) {
    const char *e = getenv("SQZ_QUANT_PROFILE");
    struct timespec now;
    clock_gettime(prof_clock(), &now);
    if (e && e[0] && strcmp(e, "0") != 0)
        fprintf(stderr, "quant profile: %-28s %8.2f ms\n", what,
                1e3 * (double)(now.tv_sec - t->tv_sec) + 1e-6 * (double)(now.tv_nsec - t->tv_nsec));
    *t = now;
}

/* The heap's first HEAP_HUGE bytes on transparent huge pages where the kernel
 * offers them (madvise mode): sqz quant touches ~10 MB of fresh heap on a
 * small model (the ONNX file, the calibration model's serialized and loaded
 * copies, packed weights per session, decoded images), and 4 KB page faults
 * (~2400 of them, ~1 us each) cost more than its forward passes. The block
 * is reserved (not touched) and freed back to the heap, which keeps it (trim
 * threshold above); pages are still only backed when touched. */
#define HEAP_HUGE ((size_t)30 << 20)
static void heap_huge_pages(void) {
#if defined(__GLIBC__) && defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t align = (size_t)2 << 20;
    char *p = malloc(HEAP_HUGE);
    if (!p) return;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1),
              e = ((uintptr_t)p + HEAP_HUGE) & ~(uintptr_t)(align - 1);
    if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE); /* advice: failure is harmless */
    const size_t pad = a - (uintptr_t)p;
    free(p);
    /* The block's head before its first 2 MB boundary (up to 2 MB) would
     * serve the first blocks (the ONNX file's buffer) from 4 KB pages: a
     * block over it is kept (only its header page touched), so the heap's
     * next blocks start at the boundary. (glibc: the freed block went back
     * to the top chunk at p - 16; a chunk of a - p bytes there ends at
     * a - 16, the next chunk's header: its memory starts at a.) */
    static void *head; /* reachable: not a leak */
    if (e > a && pad >= 64 && !head) head = malloc(pad - 16);
#endif
}

void cmd_quant_usage(FILE *f) {
    fprintf(f,
            "usage: sqz quant model.onnx|model.sqz --calib MANIFEST -o model.int8.sqz [options]\n\n"
            "INT8 post-training quantization: run the fp32 model over a calibration set\n"
            "(calib-data/README.md), choose activation ranges, quantize weights per output\n"
            "channel (int8, symmetric) and biases (int32), and write the int8 .sqz atomically.\n"
            "Prints a per-layer report (range, clipped share, SQNR and cosine of each int8\n"
            "layer simulated against fp32 on a subset).\n\n"
            "  --calib MANIFEST       calibration set manifest (required)\n"
            "  -o, --output PATH      output .sqz (required)\n"
            "  --method M             kl (default) | minmax | percentile | mse | auto (each\n"
            "                         method, bias correction, weight scale and rounding\n"
            "                         unless given; keeps the\n"
            "                         one whose int8 output is closest to fp32 (SQNR) on\n"
            "                         the first 512 calibration images, or on --select's)\n"
            "  --select MANIFEST      --method auto: choose on these images (a set in the\n"
            "                         calibration format, e.g. training images outside the\n"
            "                         calibration set; the first 5000)\n"
            "  --percentile P         share of values the percentile method keeps (99.99)\n"
            "  --json FILE            write the report as JSON\n"
            "  --onnx-qdq FILE        also write the int8 model as ONNX QDQ (check it in ONNX\n"
            "                         Runtime; QuantizeLinear/DequantizeLinear around float ops)\n"
            "  --min-sqnr DB          keep a Conv/Gemm/MatMul in fp32 when its simulated\n"
            "                         SQNR is below DB (default 0: never)\n"
            "  --no-equalize          no cross-layer equalization of conv pairs\n"
            "  --no-bias-correction   no bias correction (= --bias-correction none)\n"
            "  --bias-correction M    analytic (default: E[x] times the weight error) |\n"
            "                         empirical (then the mean pre-activation error of each\n"
            "                         layer with int8 input and weights, measured on up to\n"
            "                         256 calibration images) | none\n"
            "  --weight-scale S       max (default: per-channel max-abs / 127) | mse (the\n"
            "                         scale with the least squared rounding error of the\n"
            "                         channel's weights, clipping outliers when that pays)\n"
            "  --rounding R           nearest (default) | gptq (GPTQ: each layer's weights\n"
            "                         rounded one input at a time, each rounding error\n"
            "                         spread onto the inputs not yet rounded, by the\n"
            "                         inverse of the inputs' second moments on up to 256\n"
            "                         calibration images; less output error, same format)\n"
            "                         | gptq-seq (the same, layer after layer on the inputs\n"
            "                         of the int8 model, the layers before quantized; the\n"
            "                         weights fitted to the fp32 outputs, the bias to their\n"
            "                         mean: no other bias correction)\n"
            "  --range-search         with --rounding gptq-seq: each int8 tensor's range\n"
            "                         chosen in that simulation among the methods' ranges\n"
            "                         and scalings of the best (least squared error\n"
            "                         against the fp32 model's values), not by --method\n"
            "  --max-images N         first N images of the set only\n"
            "  --report-images N      images of the per-layer report (16; 0: none)\n"
            "  --batch B              images per calibration run at most (32; fewer when\n"
            "                         their activations exceed 4 MiB)\n"
            "  --threads N            threads (default 1): calibration images run in\n"
            "                         parallel, one runtime session per thread; statistics,\n"
            "                         ranges, weights and the report per tensor / layer (the\n"
            "                         model written does not depend on N)\n"
            "  --input-shape N:DIMS   fix an ONNX input shape (as sqz import)\n"
            "  -q, --quiet            no report table (the summary line stays)\n"
            "  -h, --help             this help\n\n"
            "Int8 runs Conv / Gemm / MatMul (fused ReLU / Clip), Add, pools, Concat, ReLU,\n"
            "Clip and reshapes; other ops stay fp32 behind Quantize/DequantizeLinear nodes.\n");
}

typedef struct qopts {
    const char *in, *out, *calib, *json, *qdq;
    const char *select; /* --select: --method auto's images (else the calibration set's) */
    cli_shapes shapes;
    int quiet;
    int auto_method; /* --method auto */
    int bc_given;    /* --bias-correction / --no-bias-correction given */
    int ws_given;    /* --weight-scale given */
    int rd_given;    /* --rounding given */
    sqzc_quant_options q;
} qopts;

static int parse(int argc, char **argv, qopts *o) {
    static const int kMethods[] = {SQZC_QM_KL, SQZC_QM_MINMAX, SQZC_QM_PERCENTILE, SQZC_QM_MSE,
                                   -1 /* auto */};
    static const int kRounding[] = {SQZC_QR_NEAREST, SQZC_QR_GPTQ, SQZC_QR_GPTQ_SEQ};
    int method = o->q.method;
    /* floats, read as before (a given value is the float the option parser reads), stored
     * only when given: the double defaults stay exact */
    float pct = 0, sqnr = 0;
    int pct_given = 0, sqnr_given = 0;
    const cli_opt opts[] = {
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &o->out},
        {.name = "--calib", .kind = CLI_STR, .dst = &o->calib},
        {.name = "--method",
         .kind = CLI_CHOICE,
         .dst = &method,
         .choices = "kl,minmax,percentile,mse,auto",
         .values = kMethods},
        {.name = "--percentile",
         .kind = CLI_FLOAT,
         .dst = &pct,
         .flo = 50,
         .fhi = 100,
         .open = CLI_LO_OPEN,
         .given = &pct_given},
        {.name = "--json", .kind = CLI_STR, .dst = &o->json},
        {.name = "--min-sqnr",
         .kind = CLI_FLOAT,
         .dst = &sqnr,
         .flo = 0,
         .fhi = 200,
         .open = CLI_HI_OPEN,
         .given = &sqnr_given},
        {.name = "--max-images",
         .kind = CLI_INT32,
         .dst = &o->q.max_images,
         .lo = 1,
         .hi = 1 << 30},
        {.name = "--batch",
         .kind = CLI_INT32,
         .dst = &o->q.batch,
         .lo = 1,
         .hi = 1 << 30,
         .clamp = 4096},
        {.name = "--threads", .kind = CLI_INT32, .dst = &o->q.num_threads, .lo = 1, .hi = 1024},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &o->shapes},
        {.name = "--report-images",
         .kind = CLI_INT32,
         .dst = &o->q.report_images,
         .lo = 0,
         .hi = 1 << 30},
        {.name = "--onnx-qdq", .kind = CLI_STR, .dst = &o->qdq},
        {.name = "--bias-correction",
         .kind = CLI_CHOICE,
         .dst = &o->q.bias_correction,
         .choices = "none,analytic,empirical",
         .given = &o->bc_given},
        {.name = "--no-bias-correction",
         .kind = CLI_FLAG,
         .dst = &o->q.bias_correction,
         .lo = 0,
         .given = &o->bc_given},
        {.name = "--weight-scale",
         .kind = CLI_CHOICE,
         .dst = &o->q.weight_mse,
         .choices = "max,mse",
         .given = &o->ws_given},
        {.name = "--rounding",
         .kind = CLI_CHOICE,
         .dst = &o->q.rounding,
         .choices = "nearest,gptq,gptq-seq",
         .values = kRounding,
         .given = &o->rd_given},
        {.name = "--select", .kind = CLI_STR, .dst = &o->select},
        {.name = "--quiet", .alias = "-q", .kind = CLI_FLAG, .dst = &o->quiet, .lo = 1},
        {.name = "--no-equalize", .kind = CLI_FLAG, .dst = &o->q.cle, .lo = 0},
        {.name = "--range-search", .kind = CLI_FLAG, .dst = &o->q.range_search, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_quant_usage(stdout);
            return 1;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which < 0 && cli_positional(CMD, a, &o->in) != 0) return -1;
    }
    o->auto_method = method < 0;
    if (method >= 0) o->q.method = method;
    if (pct_given) o->q.percentile = pct;
    if (sqnr_given) o->q.min_sqnr_db = sqnr;
    if (!o->in) {
        cli_error(CMD, "missing input model.onnx or model.sqz (try sqz quant --help)");
        return -1;
    }
    if (!o->calib) {
        cli_error(CMD, "missing --calib MANIFEST (calibration set, see calib-data/README.md)");
        return -1;
    }
    if (!o->out) {
        cli_error(CMD, "missing -o model.int8.sqz");
        return -1;
    }
    if (o->q.range_search && !o->auto_method && o->q.rounding != SQZC_QR_GPTQ_SEQ) {
        cli_error(CMD, "--range-search needs --rounding gptq-seq (or --method auto)");
        return -1;
    }
    return 0;
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* Import (and optimize) the model; on failure the message is in msg (one
 * line, for cli_error) and the return code says which kind. */
static int load_graph(const qopts *o, sqzc_graph **g, char *msg, size_t msg_len) {
    char err[512] = "";
    *g = NULL;
    if (has_suffix(o->in, ".sqz")) {
        if (o->shapes.n > 0) {
            snprintf(msg, msg_len, "--input-shape applies to ONNX input; %s has fixed shapes",
                     o->in);
            return CLI_EUSAGE;
        }
        if (sqzc_read_sqz(o->in, g, err, sizeof err) != 0) {
            snprintf(msg, msg_len, "%s", err);
            return CLI_EUSAGE;
        }
        return CLI_OK;
    }
    sqzc_named_shape *named = NULL;
    if (o->shapes.n > 0) {
        named = calloc((size_t)o->shapes.n, sizeof *named);
        if (!named) {
            snprintf(msg, msg_len, "out of memory");
            return CLI_ERUNTIME;
        }
        for (int i = 0; i < o->shapes.n; i++) {
            named[i].name = o->shapes.names[i];
            named[i].shape = o->shapes.shapes[i];
        }
    }
    sqzc_import_options io;
    memset(&io, 0, sizeof io);
    io.input_shapes = named;
    io.n_input_shapes = o->shapes.n;
    io.default_batch = 1;
    int rc = sqzc_import_onnx(o->in, &io, g, err, sizeof err);
    free(named);
    if (rc != 0) {
        snprintf(msg, msg_len, "%s", err[0] ? err : "import failed");
        return CLI_EUSAGE;
    }
    if (sqzc_optimize(*g, err, sizeof err) != 0) {
        snprintf(msg, msg_len, "optimize: %s", err);
        sqzc_graph_free(*g);
        *g = NULL;
        return CLI_EUSAGE;
    }
    return CLI_OK;
}

/* ---- --method auto: each method on the same set; the one whose int8 model
 * reproduces the fp32 model's first output best (highest SQNR) on the first
 * AUTO_IMAGES calibration images (training images, never the test set) is
 * kept. */
#define AUTO_IMAGES 512
/* --select's images at most: 5000 make the top-1 agreement move by 0.02%
 * an image, and the SQNR of a candidate steady to ~0.05 dB */
#define AUTO_SELECT_MAX 5000
/* candidates scored on all the images (the others on the first AUTO_IMAGES) */
#define AUTO_FINAL 3
#define AUTO_BYTES (64.0 * 1024 * 1024)

typedef struct runner {
    sqz_model *m;
    sqz_session *s;
} runner;

static void runner_free(runner *r) {
    sqz_session_free(r->s);
    sqz_model_free(r->m);
    r->s = NULL;
    r->m = NULL;
}

static int runner_open(const sqzc_graph *g, runner *r, char *err, size_t len) {
    uint8_t *buf = NULL;
    size_t size = 0;
    sqz_status st;
    memset(r, 0, sizeof *r);
    if (sqzc_serialize(g, &buf, &size, err, len) != 0) return -1;
    int rc = sqz_model_load_buffer(buf, size, &r->m, &st);
    free(buf);
    sqz_session_options so;
    sqz_session_options_init(&so);
    if (rc != SQZ_OK || sqz_session_create(r->m, &so, &r->s, &st) != SQZ_OK) {
        snprintf(err, len, "%s", st.msg);
        runner_free(r);
        return -1;
    }
    return 0;
}

/* Runs image i; *y (n values) views the first output. */
static int runner_run(runner *r, const float *x, size_t nx, const float **y, size_t *n, char *err,
                      size_t len) {
    sqz_status st;
    sqz_shape sh;
    if (sqz_session_set_input(r->s, 0, x, nx, &st) != SQZ_OK ||
        sqz_session_run(r->s, &st) != SQZ_OK ||
        sqz_session_output(r->s, 0, y, &sh, &st) != SQZ_OK) {
        snprintf(err, len, "%s", st.msg);
        return -1;
    }
    *n = (size_t)sqz_shape_numel(&sh);
    return 0;
}

static size_t argmax(const float *y, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (y[i] > y[b]) b = i;
    return b;
}

static const char *bc_name(int bc) {
    return bc == 0 ? "no" : bc == 1 ? "analytic" : "empirical";
}

static const char *rd_name(int rd) {
    return rd == SQZC_QR_GPTQ ? "gptq" : rd == SQZC_QR_GPTQ_SEQ ? "gptq-seq" : "nearest";
}

/* a candidate of --method auto: its graph, report and output error */
typedef struct auto_keep {
    sqzc_graph *g;
    sqzc_quant_report rep;
    int c;         /* candidate */
    double ee, yy; /* sums of the squared error and of the fp32 output squared */
    int agree;     /* images whose top-1 is fp32's */
    double score;  /* output SQNR on the first round's images */
} auto_keep;

static void keep_free(auto_keep *k) {
    sqzc_graph_free(k->g);
    sqzc_quant_report_free(&k->rep);
    k->g = NULL;
}

/* images [i0, i1) of x through k->g, against the fp32 outputs ref: adds to
 * k's sums. 0 ok, -1 with err. */
static int auto_score(const sqzc_graph *g, const float *x, const float *ref, size_t nx, size_t ny,
                      int i0, int i1, auto_keep *k, char *err, size_t len) {
    runner r;
    if (runner_open(g, &r, err, len) != 0) return -1;
    for (int i = i0; i < i1; i++) {
        const float *y = NULL;
        size_t n = 0;
        if (runner_run(&r, x + (size_t)i * nx, nx, &y, &n, err, len) != 0 || n != ny) {
            if (n != ny) snprintf(err, len, "int8 output size differs");
            runner_free(&r);
            return -1;
        }
        const float *t = ref + (size_t)i * ny;
        for (size_t j = 0; j < ny; j++) {
            double d = (double)y[j] - t[j];
            k->ee += d * d;
            k->yy += (double)t[j] * t[j];
        }
        k->agree += argmax(y, ny) == argmax(t, ny);
    }
    runner_free(&r);
    return 0;
}

/* Quantizes with every method and keeps the best graph in *g (report in
 * *rep); prints one line per method. */
static int quant_auto(const qopts *o, const sqzc_calib_set *set, sqzc_graph **g,
                      sqzc_quant_report *rep, char *err, size_t len) {
    const sqzc_tensor *in = &(*g)->tensors[(*g)->inputs[0]];
    sqz_shape in1 = in->shape;
    in1.dims[0] = 1;
    size_t nx = (size_t)sqz_shape_numel(&in1);
    /* the images of the choice: --select's, else the calibration set's */
    sqzc_calib_set sel;
    const sqzc_calib_set *src = set;
    if (o->select) {
        if (sqzc_calib_set_read(o->select, &sel, err, len) != 0) return -1;
        if (sqzc_calib_set_check_input(&sel, &in->shape, err, len) != 0) {
            sqzc_calib_set_free(&sel);
            return -1;
        }
        src = &sel;
    }
    const int cap = o->select ? AUTO_SELECT_MAX : AUTO_IMAGES;
    int n_img = src->n_items < cap ? src->n_items : cap;
    /* the inputs are held in memory: at most AUTO_BYTES of them */
    if ((double)n_img * (double)nx * sizeof(float) > AUTO_BYTES)
        n_img = (int)(AUTO_BYTES / ((double)nx * sizeof(float)));
    if (n_img < 1) n_img = 1;
    float *x = malloc(nx * sizeof *x * (size_t)n_img), *ref = NULL;
    size_t ny = 0;
    runner r;
    int rc = -1, n_keep = 0;
    sqzc_quant_calib *cal = NULL;
    auto_keep keep[AUTO_FINAL];
    /* every candidate scored on the first n1 images; the best AUTO_FINAL
     * then on all (the choice steadier at a fraction of the runs) */
    const int n1 = n_img < AUTO_IMAGES ? n_img : AUTO_IMAGES;
    if (!x) {
        snprintf(err, len, "out of memory");
        goto out;
    }
    if (sqzc_calib_set_load_many(src, 0, n_img, &in1, x, err, len) != 0) goto out;
    /* fp32 outputs */
    if (runner_open(*g, &r, err, len) != 0) goto out;
    for (int i = 0; i < n_img; i++) {
        const float *y = NULL;
        size_t n = 0;
        if (runner_run(&r, x + (size_t)i * nx, nx, &y, &n, err, len) != 0) {
            runner_free(&r);
            goto out;
        }
        if (!ref) {
            ny = n;
            ref = malloc(ny * sizeof *ref * (size_t)n_img);
            if (!ref) {
                runner_free(&r);
                snprintf(err, len, "out of memory");
                goto out;
            }
        }
        memcpy(ref + (size_t)i * ny, y, ny * sizeof *y);
    }
    runner_free(&r);
    /* one calibration (passes, equalization of *g, activations kept) serves
     * every candidate: each is a fresh import quantized from it */
    sqzc_quant_options qc = o->q;
    qc.progress = o->q.progress;
    if (!o->bc_given) qc.bias_correction = 2; /* the cache covers its images */
    if (sqzc_quant_calibrate(*g, set, &qc, &cal, err, len) != 0) goto out;
    /* candidates: each method, with analytic and with empirical bias
     * correction unless a correction was asked for */
    /* (method, bias correction, weight scales, rounding): each method with
     * each bias correction, weight scale and rounding to nearest or GPTQ;
     * then sequential GPTQ (which sets the biases itself, and costs a
     * simulation of the int8 model per candidate: ResNet 1.4 s CPU) for the
     * AUTO_SEQ methods that scored best, with their best weight scales */
    enum { MAX_CAND = 4 * 2 * 2 * 2 + 4 + 1, AUTO_SEQ = 2 };
    int cands[MAX_CAND][5], n_cand = 0;
    double scores[MAX_CAND];
    for (int m = SQZC_QM_MINMAX; m <= SQZC_QM_MSE; m++)
        for (int b = 0; b < (o->bc_given ? 1 : 2); b++)
            for (int w = 0; w < (o->ws_given ? 1 : 2); w++)
                for (int d = 0; d < (o->rd_given ? 1 : 2); d++) {
                    cands[n_cand][0] = m;
                    cands[n_cand][1] = o->bc_given ? o->q.bias_correction : 1 + b;
                    cands[n_cand][2] = o->ws_given ? o->q.weight_mse : w;
                    cands[n_cand][3] = o->rd_given ? o->q.rounding : d;
                    cands[n_cand][4] = o->q.range_search;
                    n_cand++;
                }
    const int n_base = n_cand;
    for (int cand = 0;; cand++) {
        if (cand == n_base && !o->rd_given) {
            /* the best candidate of each method; the AUTO_SEQ best methods */
            int top[4] = {-1, -1, -1, -1};
            for (int k = 0; k < n_base; k++) {
                const int mk = cands[k][0] - SQZC_QM_MINMAX;
                if (top[mk] < 0 || scores[k] > scores[top[mk]]) top[mk] = k;
            }
            for (int a = 0; a < 4; a++) /* by score, descending (ties: method order) */
                for (int b = a + 1; b < 4; b++)
                    if (top[b] >= 0 && (top[a] < 0 || scores[top[b]] > scores[top[a]])) {
                        int t = top[a];
                        top[a] = top[b];
                        top[b] = t;
                    }
            for (int a = 0; a < AUTO_SEQ && top[a] >= 0; a++) {
                memcpy(cands[n_cand], cands[top[a]], sizeof cands[0]);
                cands[n_cand][3] = SQZC_QR_GPTQ_SEQ;
                n_cand++;
            }
            /* and the best method's with each tensor's range searched in
             * the simulation (the method then ranges only the tensors the
             * simulation does not reach) */
            if (top[0] >= 0 && !o->q.range_search) {
                memcpy(cands[n_cand], cands[top[0]], sizeof cands[0]);
                cands[n_cand][3] = SQZC_QR_GPTQ_SEQ;
                cands[n_cand][4] = 1;
                n_cand++;
            }
        }
        if (cand >= n_cand) break;
        const int m = cands[cand][0], bc = cands[cand][1], ws = cands[cand][2], rd = cands[cand][3],
                  rs = cands[cand][4];
        sqzc_graph *gm = NULL;
        char lerr[512];
        if (load_graph(o, &gm, lerr, sizeof lerr) != CLI_OK) {
            snprintf(err, len, "re-import failed: %s", lerr);
            goto fail;
        }
        sqzc_quant_options q = o->q;
        q.method = m;
        q.progress = 0;
        q.bias_correction = bc;
        q.weight_mse = ws;
        q.rounding = rd;
        q.range_search = rs;
        auto_keep k;
        memset(&k, 0, sizeof k);
        k.g = gm;
        k.c = cand;
        if (sqzc_quantize_calibrated(gm, cal, &q, &k.rep, err, len) != 0 ||
            auto_score(gm, x, ref, nx, ny, 0, n1, &k, err, len) != 0) {
            keep_free(&k);
            goto fail;
        }
        double db = k.ee > 0 ? 10.0 * log10(k.yy / k.ee) : INFINITY;
        /* output SQNR: continuous, where top-1 agreement on a few dozen
         * images moves by single images (noise); agreement is reported */
        k.score = isfinite(db) ? db : 999.0;
        printf("auto: %-10s %-9s bias, %-3s weight scales, %-8s rounding%s: top-1 agreement with "
               "fp32 %d/%d, output SQNR %.2f dB\n",
               sqzc_qmethod_name(m), rd == SQZC_QR_GPTQ_SEQ ? "seq" : bc_name(bc),
               ws ? "mse" : "max", rd_name(rd), rs ? ", searched ranges" : "", k.agree, n1, db);
        scores[cand] = k.score;
        /* the AUTO_FINAL best so far, by score (ties: the earlier first) */
        int pos = n_keep;
        while (pos > 0 && k.score > keep[pos - 1].score) pos--;
        if (pos >= AUTO_FINAL) {
            keep_free(&k);
            continue;
        }
        if (n_keep == AUTO_FINAL) keep_free(&keep[--n_keep]);
        memmove(&keep[pos + 1], &keep[pos], sizeof keep[0] * (size_t)(n_keep - pos));
        keep[pos] = k;
        n_keep++;
    }
    /* more images than the first round's: the best few on all of them */
    int win = 0;
    if (n_img > n1) {
        double best = -INFINITY;
        for (int j = 0; j < n_keep; j++) {
            auto_keep *k = &keep[j];
            if (auto_score(k->g, x, ref, nx, ny, n1, n_img, k, err, len) != 0) goto fail;
            const double db = k->ee > 0 ? 10.0 * log10(k->yy / k->ee) : INFINITY;
            const double sc = isfinite(db) ? db : 999.0;
            const int *c = cands[k->c];
            printf("auto: on all %d: %-10s %-9s bias, %-3s weight scales, %-8s rounding%s: top-1 "
                   "agreement with fp32 %d/%d, output SQNR %.2f dB\n",
                   n_img, sqzc_qmethod_name(c[0]), c[3] == SQZC_QR_GPTQ_SEQ ? "seq" : bc_name(c[1]),
                   c[2] ? "mse" : "max", rd_name(c[3]), c[4] ? ", searched ranges" : "", k->agree,
                   n_img, db);
            if (sc > best) {
                best = sc;
                win = j;
            }
        }
    }
    const int *wc = cands[keep[win].c];
    printf("auto: chose %s (%s bias correction, %s weight scales, %s rounding%s; output SQNR on "
           "%d %s images)\n",
           sqzc_qmethod_name(wc[0]), wc[3] == SQZC_QR_GPTQ_SEQ ? "seq" : bc_name(wc[1]),
           wc[2] ? "mse" : "max", rd_name(wc[3]), wc[4] ? ", searched ranges" : "", n_img,
           o->select ? "selection" : "calibration");
    sqzc_quant_calib_free(cal);
    cal = NULL;
    sqzc_graph_free(*g); /* the calibrated (equalized fp32) graph */
    *g = keep[win].g;
    *rep = keep[win].rep;
    keep[win].g = NULL;
    memset(&keep[win].rep, 0, sizeof keep[win].rep);
    rc = 0;
    goto out;
fail:
out:
    for (int j = 0; j < n_keep; j++) keep_free(&keep[j]);
    sqzc_quant_calib_free(cal);
    free(x);
    free(ref);
    if (o->select) sqzc_calib_set_free(&sel);
    return rc;
}

/* sqzc_quantize's graph_done: the .sqz written as soon as the graph is
 * final (the per-layer report's simulation meanwhile on the other threads) */
typedef struct qwrite {
    const char *path;
    struct timespec *tp;
    int written; /* the file is in place (removed on a later failure: all outputs or none) */
    int failed;  /* the write failed (its message in err) */
} qwrite;

static int write_graph(const sqzc_graph *g, void *user, char *err, size_t err_len) {
    qwrite *w = user;
    prof("quantize", w->tp);
    if (sqzc_write_sqz(g, w->path, err, err_len) != 0) {
        w->failed = 1;
        return -1;
    }
    w->written = 1;
    prof("write", w->tp);
    return 0;
}

int cmd_quant(int argc, char **argv) {
    qopts o;
    memset(&o, 0, sizeof o);
    sqzc_quant_options_init(&o.q);
    int pr = parse(argc, argv, &o);
    if (pr != 0) {
        cli_shapes_free(&o.shapes);
        return pr > 0 ? CLI_OK : CLI_EUSAGE;
    }
    o.q.progress = isatty(2);
#if defined(__GLIBC__)
    /* calibration sessions, the report's layer runs and --method auto's
     * models allocate and free tens of MB: keep freed blocks in the heap
     * instead of returning them with munmap, so the next user reuses pages
     * instead of faulting in fresh zeroed ones */
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* the maximum glibc takes (1 GB: refused) */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_ARENA_MAX, 1);
    heap_huge_pages();
#endif
    char err[1024];
    sqzc_calib_set set;
    sqzc_graph *g = NULL;
    sqzc_quant_report rep;
    memset(&rep, 0, sizeof rep);
    cli_atomic js = {0};
    int rc = CLI_EUSAGE, have_js = 0;
    struct timespec tp;
    clock_gettime(prof_clock(), &tp);
    /* The set's files are checked, and small PNGs decoded into memory (each
     * file read once), on the other threads while one imports the model, and
     * on every thread but one while the quantizer opens its sessions (it
     * finishes the checks). A bad set fails before any calibration, and its
     * error wins over the import's. */
    if (sqzc_calib_set_parse(o.calib, CALIB_DECODE_BYTES, &set, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        cli_shapes_free(&o.shapes);
        return CLI_EUSAGE;
    }
    prof("read manifest", &tp);
    int grc = CLI_OK, imported = 0;
    char gerr[512] = "";
#if defined(_OPENMP)
#pragma omp parallel num_threads(o.q.num_threads) if (o.q.num_threads > 1)
#endif
    {
#if defined(_OPENMP)
#pragma omp single nowait
#endif
        {
            grc = load_graph(&o, &g, gerr, sizeof gerr);
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            imported = 1;
        }
        sqzc_calib_set_check_some(&set, &imported);
    }
    /* --method auto reads images before calibrating: the checks first */
    if ((grc != CLI_OK || o.auto_method) && sqzc_calib_set_check_done(&set, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        sqzc_graph_free(g);
        cli_shapes_free(&o.shapes);
        return CLI_EUSAGE;
    }
    if (grc != CLI_OK) cli_error(CMD, "%s", gerr);
    prof("import + optimize (+ check set)", &tp);
    rc = grc;
    if (rc != CLI_OK) goto done;
    if (o.json) {
        if (cli_atomic_open(&js, o.json, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
        have_js = 1;
    }
    /* (--method auto writes the graph it keeps after its candidates) */
    qwrite wr = {o.out, &tp, 0, 0};
    if (!o.auto_method) {
        o.q.graph_done = write_graph;
        o.q.graph_done_user = &wr;
    }
    if (o.auto_method ? quant_auto(&o, &set, &g, &rep, err, sizeof err) != 0
                      : sqzc_quantize(g, &set, &o.q, &rep, err, sizeof err) != 0) {
        char serr[1024];
        if (wr.written) unlink(o.out);
        if (wr.failed) {
            cli_error(CMD, "%s", err);
            rc = CLI_ERUNTIME;
            goto done;
        }
        if (sqzc_calib_set_check_finish(&set, serr, sizeof serr) != 0)
            cli_error(CMD, "%s", serr); /* the set's error (first bad file) */
        else
            cli_error(CMD, "%s: %s", o.in, err);
        rc = CLI_EUSAGE;
        goto done;
    }
    prof(wr.written ? "quantize (after the write)" : "quantize", &tp);
    if (!o.quiet) sqzc_quant_report_print(&rep, stdout);
    if (have_js && sqzc_quant_report_json(&rep, js.f) != 0) {
        cli_error(CMD, "%s: write failed", o.json);
        if (wr.written) unlink(o.out);
        rc = CLI_ERUNTIME;
        goto done;
    }
    prof("report print / json", &tp);
    /* (the weights' Huffman streams on the quantizer's threads here: same bytes;
     * write_graph's write shares them with the report) */
    if (!wr.written && sqzc_write_sqz_mt(g, o.out, o.q.num_threads, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        rc = CLI_ERUNTIME;
        goto done;
    }
    if (!wr.written) prof("write", &tp);
    if (o.qdq && sqzc_write_onnx_qdq(g, o.qdq, err, sizeof err) != 0) {
        cli_error(CMD, "%s: %s", o.qdq, err);
        unlink(o.out); /* all outputs or none */
        rc = CLI_ERUNTIME;
        goto done;
    }
    if (have_js) {
        have_js = 0;
        if (cli_atomic_commit(&js, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            unlink(o.out); /* all outputs or none */
            if (o.qdq) unlink(o.qdq);
            rc = CLI_ERUNTIME;
            goto done;
        }
        prof("json commit", &tp);
    }
    if (o.quiet) sqzc_quant_report_summary(&rep, stdout);
    printf("%s -> %s: %lld bytes (%s, %.2f s calibration, %.2f s total)\n", o.in, o.out,
           cli_file_size(o.out), sqzc_qmethod_name(rep.method), rep.secs_calibrate, rep.secs_total);
    rc = CLI_OK;
done:
    if (have_js) cli_atomic_abort(&js);
    sqzc_quant_report_free(&rep);
    sqzc_graph_free(g);
    sqzc_calib_set_free(&set);
    cli_shapes_free(&o.shapes);
    return rc;
}
