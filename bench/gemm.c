/* bench/gemm.c - fp32 packed GEMM throughput vs the measured FMA peak of this
 * machine (same run), Gemm M=1 (matrix-vector) on the gemv path vs the blocked driver, and conv
 * layer timings vs the reference kernel.
 *
 *   bench_gemm [--quick] [--layers] [--only SUBSTRING] [--cold]
 *   (--layers: only the conv layers' fast kernel; --only: the layers whose name contains it;
 *   --cold: every layer run starts with its weights and activations out of L2)
 *
 * Peak (best of short windows): independent accumulator chains of vfmadd on zmm (AVX-512) / ymm
 * (AVX2) / v.4s (NEON, fmla) registers, 1 thread. Under qemu-aarch64 the figures
 * measure the emulator, not an Arm CPU (they only show that the path runs). GEMM: C = A.B with A
 * prepacked (weights), B packed per run from a row-major matrix (the Conv 1x1 path), 1 thread,
 * 256^2 / 512^2 / 1024^2 (and 2048^2 without --quick). All
 * times are wall clock, best of many runs (the thread CPU clock of a VM subtracts hypervisor steal
 * time coarsely and overstates rates); on a busy machine the large sizes (~10 ms per run) are the
 * noisiest. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqz/ops.h"
#include "gemm.h"
#if defined(__x86_64__)
#include <immintrin.h>

#include "cpu.h"
#include "x86/ops_x86.h"
#endif
#if defined(__aarch64__)
#include <arm_neon.h>

#include "cpu.h"
#include "neon/ops_neon.h"
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
    return p;
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* ------------------------------------------------------------- FMA peak */

#if defined(__x86_64__)
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"))) static double peak_avx512(double secs) {
    __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i));
    CHAINS(DECL)
#undef DECL
    double best = 0, t_all = now();
    do {
        double t0 = now();
        for (int r = 0; r < 20000; r++) {
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, m, a);
            CHAINS(STEP)
#undef STEP
        }
        double rate = 20000.0 / (now() - t0);
        if (rate > best) best = rate;
    } while (now() - t_all < secs);
    __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, c##i);
    CHAINS(SUM)
#undef SUM
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return best * 12 * 16 * 2 * 1e-9;
}

__attribute__((target("avx2,fma"))) static double peak_avx2(double secs) {
    __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 c##i = _mm256_set1_ps((float)(i));
    CHAINS(DECL)
#undef DECL
    double best = 0, t_all = now();
    do {
        double t0 = now();
        for (int r = 0; r < 20000; r++) {
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, m, a);
            CHAINS(STEP)
#undef STEP
        }
        double rate = 20000.0 / (now() - t0);
        if (rate > best) best = rate;
    } while (now() - t_all < secs);
    __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, c##i);
    CHAINS(SUM)
#undef SUM
    float v[8];
    _mm256_storeu_ps(v, s);
    volatile float sink = v[0] + v[7];
    (void)sink;
    return best * 12 * 8 * 2 * 1e-9;
}
#endif

#if defined(__aarch64__)
#define NCHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* 12 independent fmla chains on 4-float vectors */
static double peak_neon(double secs) {
    float32x4_t m = vdupq_n_f32(0.999999f), a = vdupq_n_f32(1e-7f);
#define DECL(i) float32x4_t c##i = vdupq_n_f32((float)(i));
    NCHAINS(DECL)
#undef DECL
    double best = 0, t_all = now();
    do {
        double t0 = now();
        for (int r = 0; r < 20000; r++) {
#define STEP(i) c##i = vfmaq_f32(a, c##i, m);
            NCHAINS(STEP)
#undef STEP
        }
        double rate = 20000.0 / (now() - t0);
        if (rate > best) best = rate;
    } while (now() - t_all < secs);
    float32x4_t s = vdupq_n_f32(0.0f);
#define SUM(i) s = vaddq_f32(s, c##i);
    NCHAINS(SUM)
#undef SUM
    volatile float sink = vaddvq_f32(s);
    (void)sink;
    return best * 12 * 4 * 2 * 1e-9;
}
#endif

/* ----------------------------------------------------------------- GEMM */

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1-minute load average (Linux), or -1. */
static double load1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* GFLOP/s from the best wall-clock run of at least 10 (--quick gave 1024^2
 * only 3-4 tries, 256^2 hundreds); *cpu_gf (if not NULL): from the best
 * run on the calling thread's CPU clock (1 thread: not charged for the time
 * slices other processes take on a shared machine, which a 10 ms run rarely
 * escapes). */
static double gemm_gflops_cpu(const sqz_gemm_kernel *k, int64_t n, int threads, double secs,
                              double *cpu_gf) {
    float *A = xalloc((size_t)(n * n) * 4), *B = xalloc((size_t)(n * n) * 4);
    float *C = xalloc((size_t)(n * n) * 4);
    float *pa = xalloc(sqz_gemm_packed_a_floats(k, n, n) * 4);
    fill(A, (size_t)(n * n), 1);
    fill(B, (size_t)(n * n), 2);
    sqz_gemm_pack_a(k, n, n, A, n, 1, pa);
    sqz_gemm_args g;
    memset(&g, 0, sizeof(g));
    g.kernel = k;
    g.M = g.N = g.K = n;
    g.a.packed = pa;
    g.b.data = B;
    g.b.rs = n;
    g.b.cs = 1;
    g.c = C;
    g.ldc = n;
    g.num_threads = threads;
    size_t sb = sqz_gemm_scratch_bytes(&g);
    void *scratch = sb ? xalloc(sb) : NULL;
    sqz_gemm(&g, scratch); /* warm-up */
    double best = 1e30, best_cpu = 1e30, total = 0;
    int runs = 0;
    double (*clk)(void) = now;
    while (total < secs || runs < 10) {
        double t0 = clk(), c0 = thread_cpu();
        sqz_gemm(&g, scratch);
        double t = clk() - t0, c = thread_cpu() - c0;
        total += t;
        runs++;
        if (t < best) best = t;
        if (c < best_cpu) best_cpu = c;
    }
    if (cpu_gf) *cpu_gf = 2.0 * (double)n * (double)n * (double)n / best_cpu * 1e-9;
    free(scratch);
    free(pa);
    free(A);
    free(B);
    free(C);
    return 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
}

static double gemm_gflops(const sqz_gemm_kernel *k, int64_t n, int threads, double secs) {
    return gemm_gflops_cpu(k, n, threads, secs, NULL);
}

/* ------------------------------------------------------------------ gemv */

/* Best thread-CPU seconds of one x[1,K] . W[K,N] + b: the gemv panels
 * (weights packed once, kernel->gemv over every panel) or, gemv == 0, the
 * blocked driver with W packed as B (what Gemm M=1 ran before the gemv
 * path: A packed into an MR-row panel per run). Weights stay warm (L2). */
static double gemv_time(const sqz_gemm_kernel *k, int64_t K, int64_t N, int gemv, double secs) {
    float *x = xalloc((size_t)K * 4), *w = xalloc((size_t)(K * N) * 4), *b = xalloc((size_t)N * 4);
    float *y = xalloc((size_t)N * 4);
    fill(x, (size_t)K, 1);
    fill(w, (size_t)(K * N), 2);
    fill(b, (size_t)N, 3);
    const int VL = k->gemv_vl, PV = SQZ_GEMV_MAXV;
    float *pk = NULL;
    void *scratch = NULL;
    sqz_gemm_args g;
    memset(&g, 0, sizeof(g));
    if (gemv) {
        pk = xalloc(sqz_gemv_floats(VL, PV, K, N) * 4);
        sqz_gemv_pack(VL, PV, K, N, w, N, 1, 1.0f, pk);
    } else {
        pk = xalloc(sqz_gemm_packed_b_floats(k, K, N) * 4);
        sqz_gemm_pack_b(k, K, N, w, N, 1, pk);
        g.kernel = k;
        g.M = 1;
        g.N = N;
        g.K = K;
        g.a.data = x;
        g.a.rs = K;
        g.a.cs = 1;
        g.b.packed = pk;
        g.c = y;
        g.ldc = N;
        g.num_threads = 1;
        size_t sb = sqz_gemm_scratch_bytes(&g);
        scratch = sb ? xalloc(sb) : NULL;
    }
    sqz_gemm_epi e;
    memset(&e, 0, sizeof(e));
    double best = 1e30, total = 0;
    int runs = 0;
    while (total < secs || runs < 100) {
        double c0 = thread_cpu();
        for (int rep = 0; rep < 10; rep++) {
            if (!gemv) {
                sqz_gemm(&g, scratch);
                continue;
            }
            for (int64_t j0 = 0; j0 < N; j0 += (int64_t)VL * PV) {
                int64_t cols = N - j0 < (int64_t)VL * PV ? N - j0 : (int64_t)VL * PV;
                k->gemv((size_t)K, x, (size_t)K, 1, pk + j0 * K, (size_t)((cols + VL - 1) / VL),
                        (size_t)cols, b + j0, y + j0, (size_t)N, &e);
            }
        }
        double c = (thread_cpu() - c0) / 10;
        total += c * 10;
        runs++;
        if (c < best) best = c;
    }
    free(scratch);
    free(pk);
    free(x);
    free(w);
    free(b);
    free(y);
    return best;
}

/* ----------------------------------------------------------- conv layers */

typedef struct layer {
    const char *name;
    int64_t c, h, w, m, k, s, p, g;
} layer;

static const layer layers[] = {
    {"resnet18 conv1 7x7/2 3->64 @224", 3, 224, 224, 64, 7, 2, 3, 1},
    {"resnet18 3x3 64->64 @56", 64, 56, 56, 64, 3, 1, 1, 1},
    {"resnet18 3x3/2 64->128 @56", 64, 56, 56, 128, 3, 2, 1, 1},
    {"resnet18 3x3 128->128 @28", 128, 28, 28, 128, 3, 1, 1, 1},
    {"resnet18 3x3 256->256 @14", 256, 14, 14, 256, 3, 1, 1, 1},
    {"resnet18 3x3 512->512 @7", 512, 7, 7, 512, 3, 1, 1, 1},
    {"mobilenetv2 3x3/2 3->32 @224", 3, 224, 224, 32, 3, 2, 1, 1},
    {"mobilenetv2 1x1 24->144 @56", 24, 56, 56, 144, 1, 1, 0, 1},
    {"mobilenetv2 1x1 144->24 @56", 144, 56, 56, 24, 1, 1, 0, 1},
    {"mobilenetv2 1x1 96->576 @14", 96, 14, 14, 576, 1, 1, 0, 1},
    {"mobilenetv2 1x1 320->1280 @7", 320, 7, 7, 1280, 1, 1, 0, 1},
    {"mobilenetv2 1x1 384->64 @14", 384, 14, 14, 64, 1, 1, 0, 1},
    {"mobilenetv2 1x1 576->96 @14", 576, 14, 14, 96, 1, 1, 0, 1},
    {"mobilenetv2 1x1 960->160 @7", 960, 7, 7, 160, 1, 1, 0, 1},
    {"mnasnet 1x1 192->1152 @7", 192, 7, 7, 1152, 1, 1, 0, 1},
    {"mnasnet 1x1 1152->192 @7", 1152, 7, 7, 192, 1, 1, 0, 1},
    {"mnasnet 1x1 1152->320 @7", 1152, 7, 7, 320, 1, 1, 0, 1},
    {"mnasnet 1x1 480->80 @14", 480, 14, 14, 80, 1, 1, 0, 1},
    {"efficientnet 1x1 16->96 @112", 16, 112, 112, 96, 1, 1, 0, 1},
    {"efficientnet 1x1 24->144 @56", 24, 56, 56, 144, 1, 1, 0, 1},
    {"shufflenetv2 1x1 58->58 @28", 58, 28, 28, 58, 1, 1, 0, 1},
    {"squeezenet 3x3 expand 16->64 @55", 16, 55, 55, 64, 3, 1, 1, 1},
    {"squeezenet conv1 3x3/2 3->64 @224", 3, 224, 224, 64, 3, 2, 0, 1},
    {"squeezenet 1x1 squeeze 128->32 @27", 128, 27, 27, 32, 1, 1, 0, 1},
    {"squeezenet 1x1 expand 32->128 @27", 32, 27, 27, 128, 1, 1, 0, 1},
    {"squeezenet 3x3 expand 64->256 @13", 64, 13, 13, 256, 3, 1, 1, 1},
    {"squeezenet 3x3 expand 32->128 @27", 32, 27, 27, 128, 3, 1, 1, 1},
    {"squeezenet conv10 1x1 512->1000 @13", 512, 13, 13, 1000, 1, 1, 0, 1},
    {"resnet 3x3 16->16 @28", 16, 28, 28, 16, 3, 1, 1, 1},
    {"resnet 3x3/2 16->32 @28", 16, 28, 28, 32, 3, 2, 1, 1},
    {"resnet 3x3 32->32 @14", 32, 14, 14, 32, 3, 1, 1, 1},
    {"resnet 3x3 64->64 @7", 64, 7, 7, 64, 3, 1, 1, 1},
};

typedef struct conv_run {
    sqz_node node;
    sqz_attr attrs[4];
    int64_t pads[4], strides[2], group, act;
    sqz_shape in_shape[3], out_shape[1];
    const float *in_data[3];
    float *out[1];
    sqz_op_ctx ctx;
    void *scratch;
    const sqz_op_impl *impl;
} conv_run;

static int conv_setup(conv_run *r, const sqz_op_impl *impl, const layer *L, float *x, float *w,
                      float *b, float *y, int threads) {
    static const int32_t ids[3] = {0, 1, 2};
    memset(r, 0, sizeof(*r));
    r->impl = impl;
    for (int i = 0; i < 4; i++) r->pads[i] = L->p;
    r->strides[0] = r->strides[1] = L->s;
    r->group = L->g;
    r->act = SQZ_ACT_RELU;
    r->attrs[0] = (sqz_attr){"pads", SQZ_ATTR_INTS, 4, r->pads, NULL, NULL};
    r->attrs[1] = (sqz_attr){"strides", SQZ_ATTR_INTS, 2, r->strides, NULL, NULL};
    r->attrs[2] = (sqz_attr){"group", SQZ_ATTR_INT, 1, &r->group, NULL, NULL};
    r->attrs[3] = (sqz_attr){"sqz_act", SQZ_ATTR_INT, 1, &r->act, NULL, NULL};
    r->node = (sqz_node){SQZ_OP_CONV, "bench", 3, 1, 4, ids, ids, r->attrs};
    r->in_shape[0] = (sqz_shape){4, {1, L->c, L->h, L->w}};
    r->in_shape[1] = (sqz_shape){4, {L->m, L->c / L->g, L->k, L->k}};
    r->in_shape[2] = (sqz_shape){1, {L->m}};
    r->in_data[1] = w;
    r->in_data[2] = b;
    r->out[0] = y;
    sqz_op_ctx *c = &r->ctx;
    static char err[256];
    c->node = &r->node;
    c->n_in = 3;
    c->n_out = 1;
    c->in_shape = r->in_shape;
    c->in_data = r->in_data;
    c->out_shape = r->out_shape;
    c->out_data = r->out;
    c->num_threads = threads;
    c->err = err;
    c->err_len = sizeof(err);
    if (impl->prepare(c) != 0) return -1;
    r->in_data[0] = x;
    r->scratch = c->scratch_bytes ? xalloc(c->scratch_bytes) : NULL;
    c->scratch = r->scratch;
    return 0;
}

/* --cold: before each timed run, a read through this buffer (twice the L2
 * of both cores) sends the layer's weights and activations back to L3, as
 * in a whole model where every layer's weights are cold */
static float *evict_buf;
static size_t evict_n;
static volatile float evict_sink;

static void evict(void) {
    float s = 0.0f;
    for (size_t i = 0; i < evict_n; i += 16) s += evict_buf[i];
    evict_sink = s;
}

/* Best wall-clock run; *cpu (if not NULL): best run on the thread CPU clock. */
static double conv_time(conv_run *r, double secs, double *cpu) {
    r->impl->run(&r->ctx); /* warm-up */
    double best = 1e30, best_cpu = 1e30, total = 0;
    int runs = 0;
    double (*clk)(void) = now;
    while (total < secs || runs < 3) {
        if (evict_buf) evict();
        double t0 = clk(), c0 = thread_cpu();
        r->impl->run(&r->ctx);
        double t = clk() - t0, c = thread_cpu() - c0;
        total += t;
        runs++;
        if (t < best) best = t;
        if (c < best_cpu) best_cpu = c;
    }
    if (cpu) *cpu = best_cpu;
    return best;
}

static void conv_free(conv_run *r) {
    if (r->impl->release) r->impl->release(r->ctx.params);
    free(r->scratch);
}

int main(int argc, char **argv) {
    int quick = 0, layers_only = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i], layers_only = 1;
        else if (strcmp(argv[i], "--layers") == 0)
            layers_only = 1;
        else if (strcmp(argv[i], "--cold") == 0) {
            evict_n = (size_t)16 << 20 >> 2;
            evict_buf = xalloc(evict_n * sizeof(float));
            fill(evict_buf, evict_n, 9);
        } else {
            fprintf(stderr,
                    "bench_gemm: unknown option '%s' (use --quick, --layers, --only S, --cold)\n",
                    argv[i]);
            return 2;
        }
    }
    double secs = quick ? 0.05 : 1.0;
    const sqz_gemm_kernel *ks[3];
    double peaks[3];
    int nk = 0;
#if defined(__x86_64__)
    int hw = sqz_cpu_isa_hw();
    if (hw >= SQZ_ISA_AVX2) {
        ks[nk] = &sqz_gemm_avx2;
        peaks[nk++] = peak_avx2(secs * 2);
    }
    if (hw >= SQZ_ISA_AVX512) {
        ks[nk] = &sqz_gemm_avx512;
        peaks[nk++] = peak_avx512(secs * 2);
    }
#endif
#if defined(__aarch64__)
    if (sqz_cpu_has_neon()) {
        ks[nk] = &sqz_gemm_neon;
        peaks[nk++] = peak_neon(secs * 2);
    }
#endif
    if (layers_only) goto layers;
    printf(
        "== fp32 GEMM, 1 thread (A prepacked, B packed per run), GFLOP/s vs measured FMA peak\n");
    for (int i = 0; i < nk; i++)
        printf("   %-7s measured FMA peak (12 independent %s chains): %7.1f GFLOP/s\n", ks[i]->name,
               strcmp(ks[i]->name, "avx512") == 0 ? "zmm"
               : strcmp(ks[i]->name, "neon") == 0 ? "v.4s"
                                                  : "ymm",
               peaks[i]);
    printf("   load average %.2f (cpu-clock columns: best run on the thread's CPU clock)\n",
           load1());
    printf("   %-7s %6s %12s %10s %8s %12s %8s\n", "kernel", "size", "GFLOP/s", "peak", "%peak",
           "cpu-clock", "%peak");
    /* 2048^2 (~0.1 s a run) only in the full bench */
    static const int64_t sq[] = {256, 512, 1024, 2048};
    for (int i = 0; i < nk; i++)
        for (int j = 0; j < (quick ? 3 : 4); j++) {
            double cgf = 0;
            double gf = gemm_gflops_cpu(ks[i], sq[j], 1, secs, &cgf);
            printf("   %-7s %6lld %12.1f %10.1f %7.1f%% %12.1f %7.1f%%\n", ks[i]->name,
                   (long long)sq[j], gf, peaks[i], 100.0 * gf / peaks[i], cgf,
                   100.0 * cgf / peaks[i]);
        }
    {
        double gf = gemm_gflops(&sqz_gemm_scalar, 256, 1, secs);
        printf("   %-7s %6d %12.1f\n", "scalar", 256, gf);
    }
    for (int j = 0; j < 3; j++) {
        const sqz_gemm_kernel *best = sqz_gemm_best();
        double gf = gemm_gflops(best, sq[j], 2, secs);
        printf("   %-7s %6lld %12.1f   (2 threads)\n", best->name, (long long)sq[j], gf);
    }

    printf(
        "\n== fp32 matrix-vector (Gemm M=1, weights warm in L2), 1 thread, best thread-CPU us\n");
    printf("   load average %.2f; GB/s: weight bytes per second (the L2 stream bound)\n", load1());
    printf("   %-7s %-12s %12s %12s %9s %9s\n", "kernel", "K x N", "blocked us", "gemv us",
           "speedup", "GB/s");
    {
        static const int64_t gv[][2] = {{784, 300}, {300, 100}, {512, 1000}, {1280, 1000}};
        for (int i = 0; i < nk; i++)
            for (size_t j = 0; j < sizeof(gv) / sizeof(gv[0]); j++) {
                double to = gemv_time(ks[i], gv[j][0], gv[j][1], 0, secs / 4);
                double tn = gemv_time(ks[i], gv[j][0], gv[j][1], 1, secs / 4);
                char sh[32];
                snprintf(sh, sizeof(sh), "%lldx%lld", (long long)gv[j][0], (long long)gv[j][1]);
                printf("   %-7s %-12s %12.2f %12.2f %8.2fx %9.1f\n", ks[i]->name, sh, to * 1e6,
                       tn * 1e6, to / tn, (double)(gv[j][0] * gv[j][1]) * 4.0 / tn * 1e-9);
            }
    }

layers:;
    const sqz_gemm_kernel *best = sqz_gemm_best();
    const sqz_op_impl *fast = NULL;
#if defined(__x86_64__)
    fast = hw >= SQZ_ISA_AVX512 ? &sqz_x86_conv_avx512
           : hw >= SQZ_ISA_AVX2 ? &sqz_x86_conv_avx2
                                : NULL;
#endif
#if defined(__aarch64__)
    fast = sqz_cpu_has_neon() ? &sqz_neon_conv : NULL;
#endif
    if (!fast) return 0;
    printf("\n== Conv layers (+ReLU), best ms: reference vs %s GEMM kernel\n", best->name);
    printf("   load average %.2f (cpu 1t: best run on the thread's CPU clock)\n", load1());
    printf("   %-36s %9s %9s %8s %9s %8s %8s %9s %8s\n", "layer", "ref 1t", "fast 1t", "speedup",
           "fast 2t", "GFLOP/s", "2t/1t", "cpu 1t", "GFLOP/s");
    for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
        const layer *L = &layers[li];
        if (only && !strstr(L->name, only)) continue;
        size_t nx = (size_t)(L->c * L->h * L->w), nw = (size_t)(L->m * L->c / L->g * L->k * L->k);
        int64_t oh = (L->h + 2 * L->p - L->k) / L->s + 1, ow = (L->w + 2 * L->p - L->k) / L->s + 1;
        size_t ny = (size_t)(L->m * oh * ow);
        float *x = xalloc(nx * 4), *w = xalloc(nw * 4), *b = xalloc((size_t)L->m * 4);
        float *y = xalloc(ny * 4);
        fill(x, nx, 3);
        fill(w, nw, 4);
        fill(b, (size_t)L->m, 5);
        conv_run r;
        double tr = 0, tf = 0, tf2 = 0, tc = 0;
        if (!layers_only && conv_setup(&r, sqz_ref_op(SQZ_OP_CONV), L, x, w, b, y, 1) == 0) {
            tr = conv_time(&r, secs, NULL);
            conv_free(&r);
        }
        if (conv_setup(&r, fast, L, x, w, b, y, 1) == 0) {
            tf = conv_time(&r, secs, &tc);
            conv_free(&r);
        }
        if (conv_setup(&r, fast, L, x, w, b, y, 2) == 0) {
            tf2 = conv_time(&r, secs, NULL);
            conv_free(&r);
        }
        double flop = 2.0 * (double)ny * (double)(L->c / L->g * L->k * L->k);
        printf("   %-36s %9.3f %9.3f %7.1fx %9.3f %8.1f %7.2fx %9.4f %8.1f\n", L->name, tr * 1e3,
               tf * 1e3, tf > 0 ? tr / tf : 0.0, tf2 * 1e3, tf > 0 ? flop / tf * 1e-9 : 0.0,
               tf2 > 0 ? tf / tf2 : 0.0, tc * 1e3, tc > 0 ? flop / tc * 1e-9 : 0.0);
        free(x);
        free(w);
        free(b);
        free(y);
    }
    return 0;
}
