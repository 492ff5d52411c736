/* bench/dwconv.c - depthwise conv kernels vs the reference Conv, 1 thread,
 * on the depthwise layer shapes of MobileNetV2, MNASNet 1.0 and
 * EfficientNet-B0 at 224x224. Prints GMAC/s per kernel family (best of
 * several timed runs) and, on AVX-512, the band and stride-2 kernels against
 * the kernels they replaced (SQZ_DW_BAND=0 SQZ_DW_S2=0 SQZ_DW_S1=0), measured in the same
 * run.
 * With OpenMP, a second table: 2 threads, the input rewritten before every
 * run by two threads each writing the top or bottom half of every plane (as
 * the 1x1 expansion convs before these layers split their output by pixels,
 * gemm.c), the layer split by planes vs by output rows (SQZ_DW_SPLIT), same
 * run, best run each.
 * Usage: bench_dwconv [min_seconds_per_measure (default 0.3)] [CxHxWkKsS ...]
 * (layers given on the command line, e.g. 48x112x112k3s2, replace the list) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dwconv.h"
#include "sqz/ops.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

typedef struct layer {
    int C, H, W, k, s;
    const char *models; /* v: MobileNetV2, m: MNASNet 1.0, e: EfficientNet-B0 */
} layer;

static layer layers[] = {
    {32, 112, 112, 3, 1, "vme"}, {96, 112, 112, 3, 2, "ve"}, {48, 112, 112, 3, 2, "m"},
    {144, 56, 56, 3, 1, "ve"},   {72, 56, 56, 3, 1, "m"},    {144, 56, 56, 3, 2, "v"},
    {144, 56, 56, 5, 2, "e"},    {72, 56, 56, 5, 2, "m"},    {192, 28, 28, 3, 1, "v"},
    {192, 28, 28, 3, 2, "v"},    {240, 28, 28, 3, 2, "e"},   {240, 28, 28, 5, 1, "e"},
    {120, 28, 28, 5, 1, "m"},    {240, 28, 28, 5, 2, "m"},   {384, 14, 14, 3, 1, "v"},
    {480, 14, 14, 3, 1, "me"},   {576, 14, 14, 3, 1, "vm"},  {576, 14, 14, 3, 2, "v"},
    {480, 14, 14, 5, 1, "me"},   {672, 14, 14, 5, 1, "e"},   {672, 14, 14, 5, 2, "e"},
    {576, 14, 14, 5, 2, "m"},    {960, 7, 7, 3, 1, "v"},     {1152, 7, 7, 3, 1, "me"},
    {1152, 7, 7, 5, 1, "me"},
};

static size_t n_layers = sizeof layers / sizeof layers[0];

/* argv layers "CxHxWkKsS" over the start of the list (at most its length) */
static void parse_layers(int argc, char **argv) {
    size_t n = 0;
    for (int i = 2; i < argc && n < sizeof layers / sizeof layers[0]; i++) {
        layer l = {0, 0, 0, 0, 0, "-"};
        if (sscanf(argv[i], "%dx%dx%dk%ds%d", &l.C, &l.H, &l.W, &l.k, &l.s) == 5 && l.C > 0 &&
            l.H > 0 && l.W > 0 && (l.k == 3 || l.k == 5) && (l.s == 1 || l.s == 2))
            layers[n++] = l;
        else
            fprintf(stderr, "bench_dwconv: ignoring layer '%s' (CxHxWkKsS)\n", argv[i]);
    }
    if (n) n_layers = n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bench_node {
    sqz_node node;
    sqz_attr attrs[6];
    int64_t group, pads[4], strides[2], act;
    float alpha, beta;
    int32_t ids[3];
} bench_node;

static void make_node(bench_node *b, const layer *l) {
    memset(b, 0, sizeof(*b));
    b->group = l->C;
    for (int i = 0; i < 4; i++) b->pads[i] = l->k / 2;
    b->strides[0] = b->strides[1] = l->s;
    b->act = SQZ_ACT_CLIP;
    b->alpha = 0.0f;
    b->beta = 6.0f;
    for (int i = 0; i < 3; i++) b->ids[i] = i;
    sqz_attr *a = b->attrs;
    a[0] = (sqz_attr){.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &b->group};
    a[1] = (sqz_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = b->pads};
    a[2] = (sqz_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = b->strides};
    a[3] = (sqz_attr){.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &b->act};
    a[4] = (sqz_attr){
        .name = "sqz_act_alpha", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &b->alpha};
    a[5] =
        (sqz_attr){.name = "sqz_act_beta", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &b->beta};
    b->node.op = SQZ_OP_CONV;
    b->node.name = "dw";
    b->node.n_inputs = 3;
    b->node.n_outputs = 1;
    b->node.n_attrs = 6;
    b->node.inputs = b->ids;
    b->node.outputs = b->ids;
    b->node.attrs = b->attrs;
}

/* the producer of the 2-thread table: rows [H t / 2, H (t + 1) / 2) of
 * every plane of x copied from x0 by thread t (so they sit in that core's
 * cache, written, as a pixel-split 1x1 conv leaves them) */
static void produce(const layer *l, const float *x0, float *x) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num();
        const size_t hw = (size_t)l->H * (size_t)l->W;
        const size_t r0 = (size_t)l->H * (size_t)t / 2, r1 = (size_t)l->H * (size_t)(t + 1) / 2;
        for (size_t c = 0; c < (size_t)l->C; c++)
            memcpy(x + c * hw + r0 * (size_t)l->W, x0 + c * hw + r0 * (size_t)l->W,
                   (r1 - r0) * (size_t)l->W * sizeof(float));
    }
#else
    memcpy(x, x0, (size_t)l->C * (size_t)l->H * (size_t)l->W * sizeof(float));
#endif
}

/* GMAC/s of impl on layer l (best run), or -1 when it declines / fails.
 * threads > 1: x is rewritten from x0 by produce() before every run. */
static double measure_t(const sqz_op_impl *impl, const layer *l, const float *x0, float *xw,
                        const float *w, const float *bias, float *y, double min_s, int threads) {
    const float *x = threads > 1 ? xw : x0;
    bench_node bn;
    make_node(&bn, l);
    sqz_shape in[3];
    memset(in, 0, sizeof(in));
    in[0].ndim = 4;
    in[0].dims[0] = 1;
    in[0].dims[1] = l->C;
    in[0].dims[2] = l->H;
    in[0].dims[3] = l->W;
    in[1].ndim = 4;
    in[1].dims[0] = l->C;
    in[1].dims[1] = 1;
    in[1].dims[2] = in[1].dims[3] = l->k;
    in[2].ndim = 1;
    in[2].dims[0] = l->C;
    const float *data[3] = {x, w, bias};
    sqz_shape out;
    char err[256] = {0};
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.node = &bn.node;
    ctx.n_in = 3;
    ctx.n_out = 1;
    ctx.in_shape = in;
    ctx.in_data = data;
    ctx.out_shape = &out;
    ctx.err = err;
    ctx.err_len = sizeof(err);
    ctx.num_threads = threads;
    int rc = impl->prepare(&ctx);
    if (rc != 0) {
        if (ctx.params && impl->release) impl->release(ctx.params);
        return -1.0;
    }
    void *scratch = NULL;
    if (ctx.scratch_bytes) {
        scratch = aligned_alloc(64, (ctx.scratch_bytes + 63) / 64 * 64);
        if (!scratch) {
            if (impl->release) impl->release(ctx.params);
            return -1.0;
        }
    }
    float *outs[1] = {y};
    ctx.scratch = scratch;
    ctx.out_data = outs;
    double macs = (double)out.dims[1] * (double)out.dims[2] * (double)out.dims[3] * l->k * l->k;
    if (threads > 1) produce(l, x0, xw);
    impl->run(&ctx); /* warm-up */
    double best = 1e30, t_end = now_s() + min_s;
    int reps = 0;
    do {
        if (threads > 1) produce(l, x0, xw);
        double t0 = now_s();
        impl->run(&ctx);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        reps++;
    } while (now_s() < t_end || reps < 3);
    if (impl->release) impl->release(ctx.params);
    free(scratch);
    return macs / best * 1e-9;
}

static double measure(const sqz_op_impl *impl, const layer *l, const float *x, const float *w,
                      const float *bias, float *y, double min_s) {
    return measure_t(impl, l, x, NULL, w, bias, y, min_s, 1);
}

/* the 2-thread table (see the top comment) */
static int two_threads(double min_s) {
#if defined(_OPENMP)
    printf("\n2 threads, input rows written by two threads (top / bottom halves); GMAC/s (best "
           "run)\n");
    printf("%-26s %9s %9s %8s\n", "layer (CxHxW kKsS models)", "planes", "rows", "rows/pl");
    for (size_t i = 0; i < n_layers; i++) {
        const layer *l = &layers[i];
        size_t nx = (size_t)l->C * (size_t)l->H * (size_t)l->W;
        float *x0 = malloc(nx * sizeof(float)), *x = malloc(nx * sizeof(float));
        float *y = malloc(nx * sizeof(float));
        float *w = malloc((size_t)(l->C * l->k * l->k) * sizeof(float));
        float *b = malloc((size_t)l->C * sizeof(float));
        if (!x0 || !x || !y || !w || !b) {
            fprintf(stderr, "bench_dwconv: out of memory\n");
            return 1;
        }
        for (size_t j = 0; j < nx; j++) x0[j] = (float)((j * 7919u) % 1000u) * 1e-3f - 0.5f;
        for (int j = 0; j < l->C * l->k * l->k; j++) w[j] = (float)((j * 31) % 17) * 0.05f - 0.4f;
        for (int j = 0; j < l->C; j++) b[j] = 0.01f * (float)(j % 7);
        char name[64];
        snprintf(name, sizeof name, "%dx%dx%d k%ds%d %s", l->C, l->H, l->W, l->k, l->s, l->models);
        /* planes, rows, planes again: the better planes figure is kept */
        double g[3];
        for (int m = 0; m < 3; m++) {
            setenv("SQZ_DW_SPLIT", m == 1 ? "rows" : "planes", 1);
            g[m] = measure_t(&sqz_dwconv, l, x0, x, w, b, y, min_s, 2);
        }
        unsetenv("SQZ_DW_SPLIT");
        if (g[2] > g[0]) g[0] = g[2];
        printf("%-26s %9.2f %9.2f %7.2fx\n", name, g[0], g[1], g[0] > 0 ? g[1] / g[0] : 0.0);
        fflush(stdout);
        free(x0);
        free(x);
        free(y);
        free(w);
        free(b);
    }
#else
    (void)min_s;
#endif
    return 0;
}

int main(int argc, char **argv) {
    double min_s = argc > 1 ? atof(argv[1]) : 0.3;
    if (!(min_s > 0.0)) min_s = 0.3;
    parse_layers(argc, argv);
    static const struct {
        int isa;
        const sqz_op_impl *impl;
    } fam[] = {
        {SQZ_DW_SCALAR, &sqz_dwconv_scalar},
        {SQZ_DW_AVX2, &sqz_dwconv_avx2},
        {SQZ_DW_AVX512, &sqz_dwconv_avx512},
        {SQZ_DW_NEON, &sqz_dwconv_neon},
    };
    const int nfam = (int)(sizeof fam / sizeof fam[0]);
    const int band = sqz_dw_isa_available(SQZ_DW_AVX512);
    printf("depthwise conv, fp32 NCHW, 1 thread, ReLU6 fused; GMAC/s (best run)\n");
    printf("%-26s %7s", "layer (CxHxW kKsS models)", "ref");
    for (int f = 0; f < nfam; f++)
        if (sqz_dw_isa_available(fam[f].isa)) printf(" %9s", sqz_dw_isa_name(fam[f].isa));
    if (band) printf(" %9s %8s", "512-old", "new/old");
    printf(" %9s\n", "best/ref");
    for (size_t i = 0; i < n_layers; i++) {
        const layer *l = &layers[i];
        size_t nx = (size_t)l->C * (size_t)l->H * (size_t)l->W;
        float *x = malloc(nx * sizeof(float)), *y = malloc(nx * sizeof(float));
        float *w = malloc((size_t)(l->C * l->k * l->k) * sizeof(float));
        float *b = malloc((size_t)l->C * sizeof(float));
        if (!x || !y || !w || !b) {
            fprintf(stderr, "bench_dwconv: out of memory\n");
            return 1;
        }
        for (size_t j = 0; j < nx; j++) x[j] = (float)((j * 7919u) % 1000u) * 1e-3f - 0.5f;
        for (int j = 0; j < l->C * l->k * l->k; j++) w[j] = (float)((j * 31) % 17) * 0.05f - 0.4f;
        for (int j = 0; j < l->C; j++) b[j] = 0.01f * (float)(j % 7);
        char name[64];
        snprintf(name, sizeof name, "%dx%dx%d k%ds%d %s", l->C, l->H, l->W, l->k, l->s, l->models);
        double ref = measure(sqz_ref_op(SQZ_OP_CONV), l, x, w, b, y, min_s / 4);
        printf("%-26s %7.2f", name, ref);
        double best = 0.0, g512 = 0.0;
        for (int f = 0; f < nfam; f++) {
            if (!sqz_dw_isa_available(fam[f].isa)) continue;
            double g = measure(fam[f].impl, l, x, w, b, y,
                               fam[f].isa == SQZ_DW_SCALAR ? min_s / 4 : min_s);
            if (g > best) best = g;
            if (fam[f].isa == SQZ_DW_AVX512) g512 = g;
            printf(" %9.2f", g);
        }
        if (band) { /* the kernels before the band and stride-2 kernels, then the new ones again */
            setenv("SQZ_DW_BAND", "0", 1);
            setenv("SQZ_DW_S2", "0", 1);
            setenv("SQZ_DW_S1", "0", 1);
            double old = measure(&sqz_dwconv_avx512, l, x, w, b, y, min_s);
            unsetenv("SQZ_DW_BAND");
            unsetenv("SQZ_DW_S2");
            unsetenv("SQZ_DW_S1");
            double g = measure(&sqz_dwconv_avx512, l, x, w, b, y, min_s);
            if (g > g512) g512 = g;
            printf(" %9.2f %7.2fx", old, old > 0 ? g512 / old : 0.0);
        }
        printf(" %8.1fx\n", ref > 0 ? best / ref : 0.0);
        fflush(stdout);
        free(x);
        free(y);
        free(w);
        free(b);
    }
    return two_threads(min_s);
}
