/* bench/winograd.c - 3x3 stride-1 conv layers: the direct (implicit-im2col
 * GEMM) path vs Winograd F(2x2,3x3) and F(4x4,3x3), same run, interleaved.
 *
 *   bench_winograd [--runs R] [--threads T] [--only SUBSTRING]
 *
 * Prints per layer the median thread-CPU-time ms of each path (rounds
 * alternate the order), the ratios winograd / direct, the max relative error
 * of each Winograd output vs the direct one (|d| / (1 + |direct|)), and the
 * tile the automatic choice takes (0: direct). Layers: ResNet-18's 3x3 convs
 * (64x56x56 .. 512x7x7, pad 1, ReLU), SqueezeNet's expand 3x3 and the small
 * ResNet's. Thread CPU time with 1 thread (the machine is shared); with
 * --threads > 1 wall-clock time (spinning OpenMP workers make the process
 * CPU time meaningless), so noisy on a loaded machine. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "sqz/ops.h"
#include "winograd.h"

typedef struct layer {
    const char *name;
    int64_t C, M, H, W;
} layer;

static const layer layers[] = {
    {"resnet18 64x56x56", 64, 64, 56, 56},         {"resnet18 128x28x28", 128, 128, 28, 28},
    {"resnet18 256x14x14", 256, 256, 14, 14},      {"resnet18 512x7x7", 512, 512, 7, 7},
    {"squeezenet 16->64 55x55", 16, 64, 55, 55},   {"squeezenet 32->128 27x27", 32, 128, 27, 27},
    {"squeezenet 48->192 13x13", 48, 192, 13, 13}, {"squeezenet 64->256 13x13", 64, 256, 13, 13},
    {"small resnet 16x28x28", 16, 16, 28, 28},     {"small resnet 32x14x14", 32, 32, 14, 14},
    {"small resnet 64x7x7", 64, 64, 7, 7},
};
#define N_LAYERS ((int)(sizeof layers / sizeof layers[0]))
#define NP 4 /* paths: direct, F(2,3), F(4,3), small-channel F(4,3) */

static double cpu_now(int threads) {
    struct timespec ts;
    clock_gettime(threads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_winograd: out of memory\n");
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* a Conv node: 3x3, pad 1, stride 1, fused ReLU */
typedef struct cnode {
    sqz_node node;
    sqz_attr attrs[3];
    int64_t ks[2], pads[4], act;
    int32_t ids[3];
} cnode;

static void cnode_init(cnode *c) {
    memset(c, 0, sizeof(*c));
    c->ks[0] = c->ks[1] = 3;
    for (int i = 0; i < 4; i++) c->pads[i] = 1;
    c->act = SQZ_ACT_RELU;
    c->attrs[0] = (sqz_attr){"kernel_shape", SQZ_ATTR_INTS, 2, c->ks, NULL, NULL};
    c->attrs[1] = (sqz_attr){"pads", SQZ_ATTR_INTS, 4, c->pads, NULL, NULL};
    c->attrs[2] = (sqz_attr){"sqz_act", SQZ_ATTR_INT, 1, &c->act, NULL, NULL};
    for (int i = 0; i < 3; i++) c->ids[i] = i;
    c->node.op = SQZ_OP_CONV;
    c->node.name = "conv";
    c->node.n_inputs = 3;
    c->node.n_outputs = 1;
    c->node.inputs = c->ids;
    c->node.outputs = c->ids;
    c->node.attrs = c->attrs;
    c->node.n_attrs = 3;
}

typedef struct path {
    sqz_op_ctx ctx;
    sqz_shape out;
    const float *pdata[3], *data[3];
    float *outs[1];
    char err[256];
    void (*run)(const sqz_op_ctx *);
    void (*release)(void *);
} path;

/* m: 0 direct GEMM conv, 2 / 4 Winograd tile, SQZ_WINO_SMALL the
 * small-channel kernel. Returns 0 when prepared. */
static int path_prepare(path *p, const cnode *cn, const sqz_shape *in, const float *x,
                        const float *w, const float *b, float *y, int m, int threads) {
    memset(p, 0, sizeof(*p));
    p->pdata[1] = w;
    p->pdata[2] = b;
    p->data[0] = x;
    p->data[1] = w;
    p->data[2] = b;
    p->outs[0] = y;
    p->ctx.node = &cn->node;
    p->ctx.n_in = 3;
    p->ctx.n_out = 1;
    p->ctx.in_shape = in;
    p->ctx.in_data = p->pdata;
    p->ctx.out_shape = &p->out;
    p->ctx.num_threads = threads;
    p->ctx.err = p->err;
    p->ctx.err_len = sizeof(p->err);
    const sqz_gemm_kernel *k = sqz_gemm_best();
    int rc;
    if (m == 0) {
        rc = sqz_gemm_conv_prepare(&p->ctx, k);
        p->run = sqz_gemm_conv_run;
        p->release = sqz_gemm_op_release;
    } else {
        rc = sqz_winograd_conv_prepare(&p->ctx, k, m);
        p->run = sqz_winograd_conv_run;
        p->release = sqz_winograd_conv_release;
    }
    if (rc != 0) {
        if (p->ctx.params) p->release(p->ctx.params);
        p->ctx.params = NULL;
        return -1;
    }
    p->ctx.scratch = p->ctx.scratch_bytes ? xalloc(p->ctx.scratch_bytes) : NULL;
    p->ctx.in_data = p->data;
    p->ctx.out_data = p->outs;
    return 0;
}

static void path_free(path *p) {
    if (p->ctx.params) p->release(p->ctx.params);
    free(p->ctx.scratch);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double max_rel(const float *a, const float *ref, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]) / (1.0 + fabs((double)ref[i]));
        if (d > e) e = d;
    }
    return e;
}

int main(int argc, char **argv) {
    int runs = 30, threads = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_winograd [--runs R] [--threads T] [--only SUBSTRING]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (threads < 1) threads = 1;
    printf("Winograd vs direct 3x3 conv (pad 1, ReLU), GEMM kernel %s, %d thread(s), median of "
           "%d runs, %s time\n",
           sqz_gemm_best()->name, threads, runs, threads > 1 ? "wall-clock" : "thread CPU");
    printf("%-26s %9s %9s %9s %9s %8s %8s %8s %9s %9s %9s %5s\n", "layer", "direct", "F(2,3)",
           "F(4,3)", "small", "F2/dir", "F4/dir", "S/dir", "F2 err", "F4 err", "S err", "auto");
    double *t = malloc(sizeof(double) * NP * (size_t)runs);
    if (!t) return 1;
    for (int li = 0; li < N_LAYERS; li++) {
        const layer *L = &layers[li];
        if (only && !strstr(L->name, only)) continue;
        size_t nx = (size_t)(L->C * L->H * L->W), nw = (size_t)(L->M * L->C * 9),
               ny = (size_t)(L->M * L->H * L->W);
        float *x = xalloc(nx * 4), *w = xalloc(nw * 4), *b = xalloc((size_t)L->M * 4);
        float *y[NP] = {xalloc(ny * 4), xalloc(ny * 4), xalloc(ny * 4), xalloc(ny * 4)};
        fill(x, nx, 1);
        fill(w, nw, 2);
        fill(b, (size_t)L->M, 3);
        for (size_t i = 0; i < nw; i++) w[i] *= 0.2f;
        cnode cn;
        cnode_init(&cn);
        sqz_shape in[3];
        memset(in, 0, sizeof(in));
        in[0] = (sqz_shape){4, {1, L->C, L->H, L->W}};
        in[1] = (sqz_shape){4, {L->M, L->C, 3, 3}};
        in[2] = (sqz_shape){1, {L->M}};
        path p[NP];
        const int ms[NP] = {0, 2, 4, SQZ_WINO_SMALL};
        int ok[NP];
        for (int k = 0; k < NP; k++)
            ok[k] = !path_prepare(&p[k], &cn, in, x, w, b, y[k], ms[k], threads);
        /* the automatic choice (SQZ_WINOGRAD unset: 0, 2 or 4) */
        int auto_m = 0;
        {
            sqz_op_ctx c = p[0].ctx;
            c.in_data = p[0].pdata;
            c.params = NULL;
            c.scratch = NULL;
            if (sqz_winograd_conv_prepare(&c, sqz_gemm_best(), 0) == 0) {
                int parts;
                sqz_winograd_conv_info(&c, &auto_m, &parts);
                sqz_winograd_conv_release(c.params);
            }
        }
        for (int k = 0; k < NP; k++)
            if (ok[k]) p[k].run(&p[k].ctx); /* warm-up */
        for (int r = 0; r < runs; r++)
            for (int kk = 0; kk < NP; kk++) {
                int k = (r & 1) ? NP - 1 - kk : kk;
                if (!ok[k]) continue;
                double t0 = cpu_now(threads);
                p[k].run(&p[k].ctx);
                t[k * runs + r] = cpu_now(threads) - t0;
            }
        double med[NP] = {0, 0, 0, 0};
        for (int k = 0; k < NP; k++)
            if (ok[k]) {
                qsort(t + k * runs, (size_t)runs, sizeof(double), cmp_d);
                med[k] = 1e3 * t[k * runs + runs / 2];
            }
        /* the small-channel kernel declines most layers: 0 / nan there */
        printf("%-26s %9.3f %9.3f %9.3f %9.3f %8.2f %8.2f %8.2f %9.2e %9.2e %9.2e %5d\n", L->name,
               med[0], med[1], med[2], med[3], med[1] / med[0], med[2] / med[0], med[3] / med[0],
               max_rel(y[1], y[0], ny), max_rel(y[2], y[0], ny),
               ok[3] ? max_rel(y[3], y[0], ny) : 0.0, auto_m);
        for (int k = 0; k < NP; k++)
            if (ok[k]) path_free(&p[k]);
        free(x);
        free(w);
        free(b);
        for (int k = 0; k < NP; k++) free(y[k]);
    }
    free(t);
    return 0;
}
