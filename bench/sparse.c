/* bench/sparse.c - latency of the sparse kernels against sqz's own dense
 * path for 1x1 Conv and Gemm layers at 50 / 70 / 90% unstructured sparsity
 * (random positions; int8 1x1 Conv also in 1x4 blocks along K, "zeros"
 * column), single thread, measured in the same run, fp32 then int8 (the
 * int8 rows also check the two outputs byte for byte).
 * The dense path is the first non-sparse implementation the dispatcher
 * offers for this CPU (packed GEMM); the sparse one is forced at every
 * density (SQZ_SPARSE=force) so the crossover is visible. Prints best-of
 * times, the sparse/dense ratio, and the max difference between the two.
 *
 *   build/rel/bench_sparse [--quick] [--fp32 | --int8] [--only SUBSTR] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sparse.h"
#include "sqz/ops.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *xalloc(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static uint32_t g_seed = 12345;
static const char *g_only; /* --only SUBSTR: layers whose name contains it */
static int g_int8;         /* setup() builds int8 nodes */
static float rnd(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / 16777216.0f - 0.5f;
}

typedef struct run {
    sqz_node node;
    uint8_t in_dt[3], out_dt[1];
    sqz_qparams in_q[3], out_q[1];
    float sx, sy, sw[2048];
    int32_t zx, zy, zw[2048];
    sqz_attr attrs[2];
    int64_t act, transB;
    sqz_shape in_shape[3], out_shape[1];
    const float *in_data[3];
    float *out[1];
    sqz_op_ctx ctx;
    void *scratch;
    const sqz_op_impl *impl;
    char err[256];
} run;

/* op: SQZ_OP_CONV (x [1, K, P, 1] -> y [1, N, P, 1], w [N, K, 1, 1]) or
 * SQZ_OP_GEMM (a [M, K], b [N, K] transB, c [N]). */
static int setup(run *r, const sqz_op_impl *impl, int op, int64_t K, int64_t N, int64_t P, float *x,
                 float *w, float *b, float *y) {
    static const int32_t ids[3] = {0, 1, 2};
    memset(r, 0, sizeof *r);
    r->impl = impl;
    r->act = SQZ_ACT_RELU;
    r->transB = 1;
    r->attrs[0] = (sqz_attr){"sqz_act", SQZ_ATTR_INT, 1, &r->act, NULL, NULL};
    r->attrs[1] = (sqz_attr){"transB", SQZ_ATTR_INT, 1, &r->transB, NULL, NULL};
    r->node =
        (sqz_node){(uint16_t)op, "bench", 3, 1, op == SQZ_OP_GEMM ? 2u : 1u, ids, ids, r->attrs};
    if (op == SQZ_OP_CONV) {
        r->in_shape[0] = (sqz_shape){4, {1, K, P, 1}};
        r->in_shape[1] = (sqz_shape){4, {N, K, 1, 1}};
    } else {
        r->in_shape[0] = (sqz_shape){2, {P, K}};
        r->in_shape[1] = (sqz_shape){2, {N, K}};
    }
    r->in_shape[2] = (sqz_shape){1, {N}};
    r->in_data[1] = w;
    r->in_data[2] = b;
    r->out[0] = y;
    sqz_op_ctx *c = &r->ctx;
    if (g_int8) { /* i8 x / w / y, i32 bias, per-channel weight scales */
        r->in_dt[0] = r->in_dt[1] = r->out_dt[0] = SQZ_DT_I8;
        r->in_dt[2] = SQZ_DT_I32;
        r->sx = 0.05f;
        r->sy = 0.2f;
        r->zx = 3;
        r->zy = -5;
        for (int64_t i = 0; i < N && i < 2048; i++) r->sw[i] = 0.004f + 0.00001f * (float)i;
        r->in_q[0] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &r->sx, &r->zx};
        r->in_q[1] = (sqz_qparams){SQZ_QUANT_PER_CHANNEL, 0, (uint32_t)N, r->sw, r->zw};
        r->out_q[0] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &r->sy, &r->zy};
        c->in_dtype = r->in_dt;
        c->out_dtype = r->out_dt;
        c->in_q = r->in_q;
        c->out_q = r->out_q;
    }
    c->node = &r->node;
    c->n_in = 3;
    c->n_out = 1;
    c->in_shape = r->in_shape;
    c->in_data = r->in_data;
    c->out_shape = r->out_shape;
    c->out_data = r->out;
    c->num_threads = 1;
    c->err = r->err;
    c->err_len = sizeof r->err;
    int rc = impl->prepare(c);
    if (rc != 0) return rc;
    r->in_data[0] = x;
    r->scratch = c->scratch_bytes ? xalloc(c->scratch_bytes / sizeof(float) + 16) : NULL;
    c->scratch = r->scratch;
    return 0;
}

static double best_time(run *r, double secs) {
    r->impl->run(&r->ctx);
    double best = 1e30, total = 0;
    int n = 0;
    while (total < secs || n < 5) {
        double t0 = now();
        r->impl->run(&r->ctx);
        double t = now() - t0;
        total += t;
        n++;
        if (t < best) best = t;
    }
    return best;
}

static void release(run *r) {
    if (r->impl->release && r->ctx.params) r->impl->release(r->ctx.params);
    free(r->scratch);
}

typedef struct layer {
    const char *name;
    int op;
    int64_t K, N, P; /* P: positions (conv) or rows of A (gemm) */
} layer;

static const layer kLayers[] = {
    {"conv1x1 mobilenet(fmnist) 96->24 @14x14", SQZ_OP_CONV, 96, 24, 196},
    {"conv1x1 mobilenet(fmnist) 48->192 @7x7", SQZ_OP_CONV, 48, 192, 49},
    {"conv1x1 mobilenetv2 96->576 @14x14", SQZ_OP_CONV, 96, 576, 196},
    {"conv1x1 mobilenetv2 320->1280 @7x7", SQZ_OP_CONV, 320, 1280, 49},
    {"gemm lenet300 fc1 784->300 (M=1)", SQZ_OP_GEMM, 784, 300, 1},
    {"gemm lenet300 fc2 300->100 (M=1)", SQZ_OP_GEMM, 300, 100, 1},
    {"gemm 1024->1024 (M=1)", SQZ_OP_GEMM, 1024, 1024, 1},
    {"gemm 1024->1024 (M=8)", SQZ_OP_GEMM, 1024, 1024, 8},
};

/* One table of rows: fp32 (int8 = 0) or int8 (x, w as int8, bias int32). */
static int bench_rows(int int8, double secs) {
    g_int8 = int8;
    static const float kSparsity[] = {0.5f, 0.7f, 0.9f};
    for (size_t l = 0; l < sizeof kLayers / sizeof kLayers[0]; l++) {
        const layer *L = &kLayers[l];
        if (g_only && !strstr(L->name, g_only)) continue;
        size_t nx = (size_t)(L->K * L->P), nw = (size_t)(L->K * L->N), ny = (size_t)(L->N * L->P);
        float *x = xalloc(nx), *w = xalloc(nw), *b = xalloc((size_t)L->N), *y1 = xalloc(ny),
              *y2 = xalloc(ny);
        for (size_t i = 0; i < nx; i++) x[i] = rnd();
        for (int64_t i = 0; i < L->N; i++) b[i] = rnd();
        if (int8) { /* the same buffers hold int8 x / w and int32 bias */
            int8_t *x8 = (int8_t *)x;
            for (size_t i = 0; i < nx; i++) x8[i] = (int8_t)(rnd() * 250.0f);
            int32_t *b32 = (int32_t *)b;
            for (int64_t i = 0; i < L->N; i++) b32[i] = (int32_t)(rnd() * 2000.0f);
        }
        /* int8 1x1 Conv also with 1x4 blocks (sqz prune --pattern 1x4): the
         * block kernel's case */
        const int npat = int8 && L->op == SQZ_OP_CONV ? 2 : 1;
        for (size_t s = 0; s < npat * (sizeof kSparsity / sizeof kSparsity[0]); s++) {
            const int pat = (int)(s / (sizeof kSparsity / sizeof kSparsity[0]));
            const float sparsity = kSparsity[s % (sizeof kSparsity / sizeof kSparsity[0])];
            int8_t *w8 = (int8_t *)w;
            int zero = 0;
            for (size_t i = 0; i < nw; i++) {
                float v = rnd();
                if (!pat || i % (size_t)L->K % 4 == 0) zero = (rnd() + 0.5f) < sparsity;
                if (int8) {
                    int q = (int)(v * 254.0f);
                    w8[i] = (int8_t)(zero ? 0 : q == 0 ? 1 : q);
                } else {
                    w[i] = zero ? 0.0f : v;
                }
            }
            const sqz_op_impl *cand[8];
            int nc = int8 ? sqz_fast_ops_int8(L->op, cand, 8) : sqz_fast_ops(L->op, cand, 8);
            run dense, sparse;
            int have_dense = 0;
            for (int c = 0; c < nc && !have_dense; c++) {
                if (cand[c] == &sqz_sparse_conv || cand[c] == &sqz_sparse_gemm ||
                    cand[c] == &sqz_sparse_i8_conv || cand[c] == &sqz_sparse_i8_gemm)
                    continue;
                int rc = setup(&dense, cand[c], L->op, L->K, L->N, L->P, x, w, b, y1);
                if (rc == 0)
                    have_dense = 1;
                else if (rc == 1)
                    continue;
                else
                    break;
            }
            const sqz_op_impl *ref = int8 ? sqz_ref_op_int8(L->op) : sqz_ref_op(L->op);
            if (!have_dense && setup(&dense, ref, L->op, L->K, L->N, L->P, x, w, b, y1) != 0) {
                fprintf(stderr, "%s: dense setup failed: %s\n", L->name, dense.err);
                return 1;
            }
            const sqz_op_impl *sp = L->op == SQZ_OP_CONV
                                        ? (int8 ? &sqz_sparse_i8_conv : &sqz_sparse_conv)
                                        : (int8 ? &sqz_sparse_i8_gemm : &sqz_sparse_gemm);
            if (setup(&sparse, sp, L->op, L->K, L->N, L->P, x, w, b, y2) != 0) {
                fprintf(stderr, "%s: sparse setup failed: %s\n", L->name, sparse.err);
                return 1;
            }
            double td = best_time(&dense, secs), ts = best_time(&sparse, secs);
            double md = 0;
            if (int8) {
                const int8_t *a = (const int8_t *)y1, *c = (const int8_t *)y2;
                for (size_t i = 0; i < ny; i++) md = fmax(md, fabs((double)a[i] - c[i]));
            } else {
                for (size_t i = 0; i < ny; i++) md = fmax(md, fabs((double)y1[i] - y2[i]));
            }
            printf("%-5s %-42s %-5s %7.0f%% %11.4f %11.4f %7.2fx %9.2g\n", int8 ? "int8" : "fp32",
                   L->name, pat ? "1x4" : "unstr", 100.0 * sparsity, td * 1e3, ts * 1e3, td / ts,
                   md);
            fflush(stdout);
            release(&dense);
            release(&sparse);
        }
        free(x);
        free(w);
        free(b);
        free(y1);
        free(y2);
    }
    return 0;
}

static const char *load_avg(void) {
    static char buf[128] = "?\n";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) snprintf(buf, sizeof buf, "?\n");
        fclose(f);
    }
    return buf;
}

int main(int argc, char **argv) {
    int quick = 0, only = -1; /* -1: both, 0: fp32, 1: int8 */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--fp32") == 0)
            only = 0;
        else if (strcmp(argv[i], "--int8") == 0)
            only = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            g_only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_sparse [--quick] [--fp32 | --int8] [--only SUBSTR]\n");
            return 2;
        }
    }
    double secs = quick ? 0.02 : 0.3;
    setenv("SQZ_SPARSE", "force", 1);
    printf("load average: %s", load_avg());
    printf("%-5s %-42s %-5s %8s %11s %11s %8s %9s\n", "dtype", "layer", "zeros", "sparsity",
           "dense ms", "sparse ms", "speedup", "max|diff|");
    if (only != 1 && bench_rows(0, secs)) return 1;
    if (only != 0 && bench_rows(1, secs)) return 1;
    printf("load average: %s", load_avg());
    return 0;
}
