/* bench/int8_kernels.c - int8 Conv / depthwise / Gemm kernel throughput vs
 * fp32 on the same shapes, same run, 1 and 2 threads.
 *
 *   bench_int8_kernels [--quick] [--only SUBSTR] [--threads N]
 *
 * --only runs the layers whose name contains SUBSTR; --threads N measures
 * at N threads only (default: 1 and 2).
 *
 * Each side uses the kernel the runtime would dispatch on this CPU (first
 * fast candidate that accepts the node, else the reference): int8 through
 * sqz_fast_ops_int8 (AVX-512 VNNI / AVX2 / depthwise), fp32 through
 * sqz_fast_ops. Figures: best wall time over repeated runs (the machine is
 * shared), GOPS = 2 * MACs / time, and the fp32 / int8 time ratio. Fused
 * ReLU on both sides; int8 uses per-channel weight scales and a zero point. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqz/ops.h"
#if defined(__x86_64__)
#include "cpu.h"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0, (n + 63) / 64 * 64);
    return p;
}

static uint32_t rnd(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

typedef struct layer {
    const char *name;
    int gemm; /* 1: Gemm rows x c -> m (transB = 1) */
    int64_t c, h, w, m, k, s, p, g;
} layer;

static const layer k_layers[] = {
    {"conv 3x3 64->64 @56", 0, 64, 56, 56, 64, 3, 1, 1, 1},
    {"conv 3x3 128->128 @28", 0, 128, 28, 28, 128, 3, 1, 1, 1},
    {"conv 1x1 144->24 @56", 0, 144, 56, 56, 24, 1, 1, 0, 1},
    {"conv 1x1 256->256 @14", 0, 256, 14, 14, 256, 1, 1, 0, 1},
    {"conv 3x3 s2 3->32 @224", 0, 3, 224, 224, 32, 3, 2, 1, 1},
    {"conv 7x7 s2 3->64 @224", 0, 3, 224, 224, 64, 7, 2, 3, 1},
    {"conv 1x1 s2 64->128 @56", 0, 64, 56, 56, 128, 1, 2, 0, 1},
    {"lenet5 conv 5x5 1->6 @28", 0, 1, 28, 28, 6, 5, 1, 2, 1},
    {"lenet5 conv 5x5 6->16 @14", 0, 6, 14, 14, 16, 5, 1, 0, 1},
    {"dw 3x3 144 @56", 0, 144, 56, 56, 144, 3, 1, 1, 144},
    {"dw 3x3 s2 144 @56", 0, 144, 56, 56, 144, 3, 2, 1, 144},
    {"dw 3x3 32 @112", 0, 32, 112, 112, 32, 3, 1, 1, 32},
    {"dw 3x3 960 @7", 0, 960, 7, 7, 960, 3, 1, 1, 960},
    {"dw 3x3 576 @14", 0, 576, 14, 14, 576, 3, 1, 1, 576},
    {"dw 5x5 240 @28", 0, 240, 28, 28, 240, 5, 1, 2, 240},
    {"dw 5x5 672 @14", 0, 672, 14, 14, 672, 5, 1, 2, 672},
    {"dw 5x5 1152 @7", 0, 1152, 7, 7, 1152, 5, 1, 2, 1152},
    {"dw 5x5 s2 240 @28", 0, 240, 28, 28, 240, 5, 2, 2, 240},
    {"gemm 1x784->300", 1, 784, 1, 1, 300, 0, 0, 0, 0},
    {"gemm 1x1280->1000", 1, 1280, 1, 1, 1000, 0, 0, 0, 0},
    {"gemm 64x512->512", 1, 512, 64, 1, 512, 0, 0, 0, 0},
};

typedef struct run {
    sqz_node node;
    sqz_attr attrs[6];
    int64_t pads[4], strides[2], ks[2], group, act, transb;
    sqz_shape in_shape[3], out_shape[1];
    const float *in_data[3];
    float *out[1];
    uint8_t in_dt[3], out_dt[1];
    sqz_qparams in_q[3], out_q[1];
    float sx, sy, *sw;
    int32_t zx, zy, *zw;
    sqz_op_ctx ctx;
    void *scratch;
    const sqz_op_impl *impl;
    char err[256];
} run;

/* Prepares the first candidate that accepts; -1 if none. */
static int setup(run *r, const layer *L, int int8, const void *x, const void *w, const void *b,
                 void *y, int threads) {
    static const int32_t ids[3] = {0, 1, 2};
    memset(r, 0, sizeof *r);
    int na = 0;
    r->act = SQZ_ACT_RELU;
    if (L->gemm) {
        r->transb = 1;
        r->attrs[na++] = (sqz_attr){"transB", SQZ_ATTR_INT, 1, &r->transb, NULL, NULL};
        r->in_shape[0] = (sqz_shape){2, {L->h, L->c}};
        r->in_shape[1] = (sqz_shape){2, {L->m, L->c}};
    } else {
        for (int i = 0; i < 4; i++) r->pads[i] = L->p;
        r->strides[0] = r->strides[1] = L->s;
        r->ks[0] = r->ks[1] = L->k;
        r->group = L->g;
        r->attrs[na++] = (sqz_attr){"pads", SQZ_ATTR_INTS, 4, r->pads, NULL, NULL};
        r->attrs[na++] = (sqz_attr){"strides", SQZ_ATTR_INTS, 2, r->strides, NULL, NULL};
        r->attrs[na++] = (sqz_attr){"kernel_shape", SQZ_ATTR_INTS, 2, r->ks, NULL, NULL};
        r->attrs[na++] = (sqz_attr){"group", SQZ_ATTR_INT, 1, &r->group, NULL, NULL};
        r->in_shape[0] = (sqz_shape){4, {1, L->c, L->h, L->w}};
        r->in_shape[1] = (sqz_shape){4, {L->m, L->c / L->g, L->k, L->k}};
    }
    r->attrs[na++] = (sqz_attr){"sqz_act", SQZ_ATTR_INT, 1, &r->act, NULL, NULL};
    r->in_shape[2] = (sqz_shape){1, {L->m}};
    int op = L->gemm ? SQZ_OP_GEMM : SQZ_OP_CONV;
    r->node = (sqz_node){(uint16_t)op, "bench", 3, 1, (uint32_t)na, ids, ids, r->attrs};
    r->in_data[1] = w;
    r->in_data[2] = b;
    r->out[0] = y;
    sqz_op_ctx *c = &r->ctx;
    c->node = &r->node;
    c->n_in = 3;
    c->n_out = 1;
    c->in_shape = r->in_shape;
    c->in_data = r->in_data;
    c->out_shape = r->out_shape;
    c->out_data = r->out;
    c->num_threads = threads;
    c->err = r->err;
    c->err_len = sizeof r->err;
    if (int8) {
        r->sx = 0.02f;
        r->zx = -5;
        r->sy = 0.1f;
        r->zy = -128;
        r->sw = xalloc((size_t)L->m * 4);
        r->zw = xalloc((size_t)L->m * 4);
        for (int64_t i = 0; i < L->m; i++) r->sw[i] = 0.001f * (float)(1 + i % 7);
        r->in_dt[0] = r->in_dt[1] = r->out_dt[0] = SQZ_DT_I8;
        r->in_dt[2] = SQZ_DT_I32;
        r->in_q[0] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &r->sx, &r->zx};
        r->in_q[1] = (sqz_qparams){SQZ_QUANT_PER_CHANNEL, 0, (uint32_t)L->m, r->sw, r->zw};
        r->out_q[0] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &r->sy, &r->zy};
        c->in_dtype = r->in_dt;
        c->out_dtype = r->out_dt;
        c->in_q = r->in_q;
        c->out_q = r->out_q;
    }
    const sqz_op_impl *cand[9];
    int n = int8 ? sqz_fast_ops_int8(op, cand, 8) : sqz_fast_ops(op, cand, 8);
    cand[n++] = int8 ? sqz_ref_op_int8(op) : sqz_ref_op(op);
    for (int i = 0; i < n; i++) {
        c->params = NULL;
        c->scratch_bytes = 0;
        int rc = cand[i]->prepare(c);
        if (rc == 0) {
            r->impl = cand[i];
            break;
        }
        if (c->params && cand[i]->release) cand[i]->release(c->params);
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", L->name, r->err);
            return -1;
        }
    }
    if (!r->impl) return -1;
    r->in_data[0] = x;
    r->scratch = c->scratch_bytes ? xalloc(c->scratch_bytes) : NULL;
    c->scratch = r->scratch;
    return 0;
}

static double best_time(run *r, double secs) {
    r->impl->run(&r->ctx); /* warm-up */
    double best = 1e30, total = 0;
    int runs = 0;
    while (total < secs || runs < 3) {
        double t0 = now();
        r->impl->run(&r->ctx);
        double t = now() - t0;
        total += t;
        runs++;
        if (t < best) best = t;
    }
    return best;
}

static void teardown(run *r) {
    if (r->impl && r->impl->release) r->impl->release(r->ctx.params);
    free(r->scratch);
    free(r->sw);
    free(r->zw);
}

int main(int argc, char **argv) {
    int quick = 0, thr_only = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            thr_only = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_int8_kernels [--quick] [--only SUBSTR] [--threads N]\n");
            return 2;
        }
    }
    double secs = quick ? 0.05 : 0.4;
#if defined(__x86_64__)
    printf("# CPU: avx2 %d, avx512 %d, avx512-vnni %d (SQZ_ISA caps these)\n",
           sqz_cpu_has_avx2_fma(), sqz_cpu_has_avx512(), sqz_cpu_has_avx512_vnni());
#endif
    printf("# best wall time of repeated runs; GOPS = 2 * MACs / time; ratio = fp32 / int8\n");
    printf("%-28s %3s %10s %10s %9s %9s %7s\n", "layer", "thr", "fp32 ms", "int8 ms", "fp32 GOPS",
           "int8 GOPS", "ratio");
    uint32_t seed = 1;
    for (size_t li = 0; li < sizeof k_layers / sizeof k_layers[0]; li++) {
        const layer *L = &k_layers[li];
        if (only && !strstr(L->name, only)) continue;
        int64_t oh = L->gemm ? 1 : (L->h + 2 * L->p - L->k) / L->s + 1;
        int64_t ow = L->gemm ? 1 : (L->w + 2 * L->p - L->k) / L->s + 1;
        int64_t nx = L->gemm ? L->h * L->c : L->c * L->h * L->w;
        int64_t kk = L->gemm ? L->c : (L->c / L->g) * L->k * L->k;
        int64_t nw = L->m * kk, ny = L->gemm ? L->h * L->m : L->m * oh * ow;
        double macs = (double)ny * (double)kk;
        float *xf = xalloc((size_t)nx * 4), *wf = xalloc((size_t)nw * 4),
              *bf = xalloc((size_t)L->m * 4);
        float *yf = xalloc((size_t)ny * 4);
        int8_t *xq = xalloc((size_t)nx), *wq = xalloc((size_t)nw), *yq = xalloc((size_t)ny);
        int32_t *bq = xalloc((size_t)L->m * 4);
        for (int64_t i = 0; i < nx; i++) {
            uint32_t v = rnd(&seed);
            xf[i] = (float)(v % 1000) / 1000.0f - 0.5f;
            xq[i] = (int8_t)((int)(v % 256) - 128);
        }
        for (int64_t i = 0; i < nw; i++) {
            uint32_t v = rnd(&seed);
            wf[i] = (float)(v % 1000) / 10000.0f - 0.05f;
            wq[i] = (int8_t)((int)(v % 255) - 127);
        }
        for (int64_t i = 0; i < L->m; i++) bq[i] = (int32_t)(rnd(&seed) % 2001) - 1000;
        for (int thr = 1; thr <= 2; thr++) {
            if (thr_only > 0 && thr != thr_only) continue;
            run rf, rq;
            if (setup(&rf, L, 0, xf, wf, bf, yf, thr) || setup(&rq, L, 1, xq, wq, bq, yq, thr)) {
                printf("%-28s: setup failed\n", L->name);
                return 1;
            }
            double tf = best_time(&rf, secs), tq = best_time(&rq, secs);
            printf("%-28s %3d %10.4f %10.4f %9.1f %9.1f %6.2fx\n", L->name, thr, tf * 1e3, tq * 1e3,
                   2 * macs / tf * 1e-9, 2 * macs / tq * 1e-9, tf / tq);
            teardown(&rf);
            teardown(&rq);
        }
        free(xf);
        free(wf);
        free(bf);
        free(yf);
        free(xq);
        free(wq);
        free(yq);
        free(bq);
    }
    return 0;
}
