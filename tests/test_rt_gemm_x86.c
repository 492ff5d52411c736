/* test_rt_gemm_x86.c - the packed GEMM (scalar twin, AVX2, AVX-512 and, on
 * aarch64, NEON microkernels + driver) and the Conv / Gemm / MatMul impls built on it,
 * against naive double loops and the scalar reference kernels, for every ISA
 * this CPU has (the others are skipped with a message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/ops.h"
#include "gemm.h"
#include "testutil.h"
#include "test_node.h"
#if defined(__x86_64__)
#include "cpu.h"
#include "x86/ops_x86.h"
#endif
#if defined(__aarch64__)
#include "cpu.h"
#include "neon/ops_neon.h"
#endif

/* ------------------------------------------------------------- ISA list */

typedef struct isa {
    const char *name;
    const sqz_gemm_kernel *k;
    const sqz_op_impl *conv, *gemm, *matmul; /* NULL for the scalar twin */
} isa;

static isa isas[3];
static int n_isas;

static void collect_isas(void) {
    if (n_isas) return;
    isas[n_isas++] = (isa){"scalar", &sqz_gemm_scalar, NULL, NULL, NULL};
#if defined(__x86_64__)
    int hw = sqz_cpu_isa_hw();
    if (hw >= SQZ_ISA_AVX2)
        isas[n_isas++] = (isa){"avx2", &sqz_gemm_avx2, &sqz_x86_conv_avx2, &sqz_x86_gemm_avx2,
                               &sqz_x86_matmul_avx2};
    else
        printf("[ SKIP ] avx2: this CPU lacks AVX2+FMA (or the OS does not save YMM state)\n");
    if (hw >= SQZ_ISA_AVX512)
        isas[n_isas++] = (isa){"avx512", &sqz_gemm_avx512, &sqz_x86_conv_avx512,
                               &sqz_x86_gemm_avx512, &sqz_x86_matmul_avx512};
    else
        printf("[ SKIP ] avx512: this CPU lacks AVX-512 F/BW/DQ/VL (or OS ZMM support)\n");
#endif
#if defined(__aarch64__)
    if (sqz_cpu_isa_hw() >= SQZ_ISA_NEON)
        isas[n_isas++] =
            (isa){"neon", &sqz_gemm_neon, &sqz_neon_conv, &sqz_neon_gemm, &sqz_neon_matmul};
    else
        printf("[ SKIP ] neon: AT_HWCAP lacks ASIMD\n");
#endif
    printf("[ INFO ] ISAs covered:");
    for (int i = 0; i < n_isas; i++) printf(" %s", isas[i].name);
    printf("\n");
}

static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static float act_ref(int act, float alpha, float beta, float v) {
    switch (act) {
    case SQZ_ACT_RELU:
        return v > 0 ? v : 0;
    case SQZ_ACT_CLIP:
        return v < alpha ? alpha : (v > beta ? beta : v);
    case SQZ_ACT_LEAKY_RELU:
        return v < 0 ? v * alpha : v;
    case SQZ_ACT_HARD_SWISH: {
        float t = v / 6.0f + 0.5f;
        t = t < 0 ? 0 : (t > 1 ? 1 : t);
        return v * t;
    }
    case SQZ_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case SQZ_ACT_HARD_SIGMOID: {
        float t = alpha * v + beta;
        return t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    case SQZ_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

static const float act_alpha[8] = {0, 0, -0.5f, 0.1f, 0, 0, 0.2f, 0};
static const float act_beta[8] = {0, 0, 0.7f, 0, 0, 0, 0.5f, 0};

static int close_enough(float got, float want, int64_t K) {
    double tol = 1e-5 + 1e-6 * (double)(K + 8) * (1.0 + fabs(want));
    return fabs((double)got - (double)want) <= tol; /* NaN fails */
}

/* ----------------------------------------------------------- GEMM driver */

/* mode bits: 1 = A prepacked, 2 = B prepacked, 4 = B transposed source */
static void check_gemm(const isa *is, tu_rng *rng, int64_t M, int64_t N, int64_t K, int mode,
                       int act, int use_bias, int nt) {
    const sqz_gemm_kernel *k = is->k;
    float *A = falloc((size_t)(M * K)), *B = falloc((size_t)(K * N)), *bias = falloc((size_t)M);
    float *C = falloc((size_t)(M * N + 3)), *R = falloc((size_t)(M * N));
    tu_fill_uniform(rng, A, (size_t)(M * K), -1, 1);
    tu_fill_uniform(rng, B, (size_t)(K * N), -1, 1);
    tu_fill_uniform(rng, bias, (size_t)M, -1, 1);
    int bt = (mode & 4) != 0;
    /* B logical [K, N]; stored transposed ([N, K]) when bt */
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = use_bias ? bias[m] : 0.0;
            for (int64_t kk = 0; kk < K; kk++)
                s += (double)A[m * K + kk] * (double)(bt ? B[n * K + kk] : B[kk * N + n]);
            R[m * N + n] = act_ref(act, act_alpha[act], act_beta[act], (float)s);
        }
    for (int64_t i = 0; i < M * N + 3; i++) C[i] = NAN;
    C[M * N] = C[M * N + 1] = C[M * N + 2] = 12345.0f; /* guard */
    float *pa = NULL, *pb = NULL;
    sqz_gemm_args g;
    memset(&g, 0, sizeof(g));
    g.kernel = k;
    g.M = M;
    g.N = N;
    g.K = K;
    if (mode & 1) {
        pa = falloc(sqz_gemm_packed_a_floats(k, M, K));
        sqz_gemm_pack_a(k, M, K, A, K, 1, pa);
        g.a.packed = pa;
    } else {
        g.a.data = A;
        g.a.rs = K;
        g.a.cs = 1;
    }
    int64_t brs = bt ? 1 : N, bcs = bt ? K : 1;
    if (mode & 2) {
        pb = falloc(sqz_gemm_packed_b_floats(k, K, N));
        sqz_gemm_pack_b(k, K, N, B, brs, bcs, pb);
        g.b.packed = pb;
    } else {
        g.b.data = B;
        g.b.rs = brs;
        g.b.cs = bcs;
    }
    g.c = C;
    g.ldc = N;
    g.bias = use_bias ? bias : NULL;
    g.act = act;
    g.alpha = act_alpha[act];
    g.beta = act_beta[act];
    g.num_threads = nt;
    size_t sb = sqz_gemm_scratch_bytes(&g);
    void *scratch = sb ? aligned_alloc(64, (sb + 63) / 64 * 64) : NULL;
    if (sb) assert_non_null(scratch);
    sqz_gemm(&g, scratch);
    for (int64_t i = 0; i < M * N; i++)
        if (!close_enough(C[i], R[i], K))
            fail_msg("%s gemm M=%lld N=%lld K=%lld mode=%d act=%d bias=%d nt=%d: [%lld] %g vs %g",
                     is->name, (long long)M, (long long)N, (long long)K, mode, act, use_bias, nt,
                     (long long)i, (double)C[i], (double)R[i]);
    assert_true(C[M * N] == 12345.0f && C[M * N + 2] == 12345.0f);
    free(scratch);
    free(pa);
    free(pb);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(R);
}

/* Column splits (few rows, B not packed: strided, or indirect rows read in
 * place / packed per panel) cut at 16-column vectors: at 2 and 3 threads on
 * odd column counts the product equals the 1-thread product bit for bit
 * (the split never changes how an element is summed). */
static void test_gemm_split_cols(void **state) {
    (void)state;
    collect_isas();
    static const int64_t cols[] = {45, 101, 195, 197, 333};
    for (int ii = 0; ii < n_isas; ii++) {
        tu_rng rng;
        tu_rng_seed(&rng, 777 + (uint64_t)ii);
        for (size_t ci = 0; ci < sizeof(cols) / sizeof(cols[0]); ci++)
            for (int ind = 0; ind <= 1; ind++) {
                const int64_t M = ind ? 13 : 8, N = cols[ci], K = ind ? 37 : 24;
                float *A = falloc((size_t)(M * K)), *B = falloc((size_t)(K * N));
                float *bias = falloc((size_t)M), *C[3];
                int64_t *off = malloc((size_t)K * sizeof *off);
                assert_non_null(off);
                tu_fill_uniform(&rng, A, (size_t)(M * K), -1, 1);
                tu_fill_uniform(&rng, B, (size_t)(K * N), -1, 1);
                tu_fill_uniform(&rng, bias, (size_t)M, -1, 1);
                for (int64_t k = 0; k < K; k++) off[k] = (K - 1 - k) * N; /* rows reversed */
                for (int nt = 1; nt <= 3; nt++) {
                    sqz_gemm_args g;
                    memset(&g, 0, sizeof(g));
                    g.kernel = isas[ii].k;
                    g.M = M;
                    g.N = N;
                    g.K = K;
                    g.a.data = A;
                    g.a.rs = K;
                    g.a.cs = 1;
                    g.b.data = B;
                    g.b.rs = N;
                    g.b.cs = 1;
                    if (ind) g.b.off = off;
                    g.bias = bias;
                    g.act = SQZ_ACT_RELU;
                    g.c = C[nt - 1] = falloc((size_t)(M * N));
                    g.ldc = N;
                    g.num_threads = nt;
                    g.par_min_macs = 1;
                    size_t sb = sqz_gemm_scratch_bytes(&g);
                    void *scratch = sb ? aligned_alloc(64, (sb + 63) / 64 * 64) : NULL;
                    if (sb) assert_non_null(scratch);
                    sqz_gemm(&g, scratch);
                    free(scratch);
                }
                /* the 1-thread product against a plain sum (spot check) */
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n += 7) {
                        double acc = bias[m];
                        for (int64_t k = 0; k < K; k++)
                            acc += (double)A[m * K + k] * B[(ind ? off[k] : k * N) + n];
                        double want = acc > 0 ? acc : 0;
                        assert_true(fabs(C[0][m * N + n] - want) <= 1e-4 * (1 + fabs(want)));
                    }
                for (int nt = 2; nt <= 3; nt++) {
                    if (memcmp(C[0], C[nt - 1], (size_t)(M * N) * sizeof(float)))
                        fail_msg("%s split cols N=%lld ind=%d nt=%d differs from 1 thread",
                                 isas[ii].name, (long long)N, ind, nt);
                    free(C[nt - 1]);
                }
                free(C[0]);
                free(A);
                free(B);
                free(bias);
                free(off);
            }
    }
}

static const int64_t sizes[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                12, 13, 14, 15, 16, 17, 31, 33, 64, 100};
#define NSIZES ((int)(sizeof(sizes) / sizeof(sizes[0])))

static void test_gemm_driver(void **state) {
    (void)state;
    collect_isas();
    for (int ii = 0; ii < n_isas; ii++) {
        tu_rng rng;
        tu_rng_seed(&rng, 1234 + (uint64_t)ii);
        int cnt = 0;
        for (int mi = 0; mi < NSIZES; mi++)
            for (int ni = 0; ni < NSIZES; ni++, cnt++) {
                int64_t K = sizes[(mi * 7 + ni * 3) % NSIZES];
                check_gemm(&isas[ii], &rng, sizes[mi], sizes[ni], K, cnt % 8, cnt % 8, cnt % 3 != 0,
                           1 + cnt % 2);
            }
        /* every K edge on a fixed tile, and the k / m cache blocks */
        for (int ki = 0; ki < NSIZES; ki++)
            check_gemm(&isas[ii], &rng, 13, 37, sizes[ki], ki % 8, (ki + 3) % 8, 1, 1);
        check_gemm(&isas[ii], &rng, 500, 70, 600, 0, SQZ_ACT_RELU, 1, 1);
        check_gemm(&isas[ii], &rng, 500, 70, 600, 3, SQZ_ACT_SIGMOID, 1, 2);
        check_gemm(&isas[ii], &rng, 37, 300, 513, 2, SQZ_ACT_CLIP, 1, 2);
        check_gemm(&isas[ii], &rng, 1, 1000, 257, 6, SQZ_ACT_NONE, 0, 2);
        /* one / two rows (split-k accumulator sets): K not a multiple of 4 */
        check_gemm(&isas[ii], &rng, 1, 300, 785, 2, SQZ_ACT_RELU, 1, 1);
        check_gemm(&isas[ii], &rng, 2, 45, 1103, 3, SQZ_ACT_NONE, 1, 1);
        /* one-tile-high product with packed B: the whole K in one k block */
        check_gemm(&isas[ii], &rng, 5, 70, 1100, 2, SQZ_ACT_RELU, 1, 2);
        /* prepacked A above the driver's cold-A size (prefetching kernel path) */
        check_gemm(&isas[ii], &rng, 523, 45, 600, 1, SQZ_ACT_RELU, 1, 1);
        check_gemm(&isas[ii], &rng, 523, 45, 600, 1, SQZ_ACT_NONE, 1, 2);
        printf("[ INFO ] %s: GEMM driver + microkernel checked on %d shapes\n", isas[ii].name,
               cnt + NSIZES + 9);
    }
}

/* Indirect B rows (src.off) and the wide store (wide_qw / wide_ow): B(k, n)
 * = S[off[k] + n] with row offsets that overlap like a conv's taps; product
 * column n lands at compact column (n / qw) * ow + n % qw of its C row when
 * n % qw < ow (qw = 0: plain store). Cells the map skips must stay as they
 * were. */
static void check_gemm_ind(const isa *is, tu_rng *rng, int64_t M, int64_t N, int64_t K, int64_t qw,
                           int64_t ow, int act, int nt) {
    const sqz_gemm_kernel *k = is->k;
    int64_t cols = qw ? N / qw * ow + (N % qw < ow ? N % qw : ow) : N;
    int64_t ldc = cols + 3, span = 3 * K + N + 40;
    float *A = falloc((size_t)(M * K)), *S = falloc((size_t)span), *bias = falloc((size_t)M);
    float *C = falloc((size_t)(M * ldc)), *R = falloc((size_t)(M * ldc));
    int64_t *off = malloc((size_t)K * sizeof(*off));
    assert_non_null(off);
    tu_fill_uniform(rng, A, (size_t)(M * K), -1, 1);
    tu_fill_uniform(rng, S, (size_t)span, -1, 1);
    tu_fill_uniform(rng, bias, (size_t)M, -1, 1);
    for (int64_t kk = 0; kk < K; kk++) off[kk] = 3 * kk + (int64_t)(tu_rng_u32(rng) % 40);
    for (int64_t i = 0; i < M * ldc; i++) C[i] = R[i] = 12345.0f;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            if (qw && n % qw >= ow) continue;
            double acc = bias[m];
            for (int64_t kk = 0; kk < K; kk++)
                acc += (double)A[m * K + kk] * (double)S[off[kk] + n];
            int64_t col = qw ? n / qw * ow + n % qw : n;
            R[m * ldc + col] = act_ref(act, act_alpha[act], act_beta[act], (float)acc);
        }
    float *pa = falloc(sqz_gemm_packed_a_floats(k, M, K));
    sqz_gemm_pack_a(k, M, K, A, K, 1, pa);
    sqz_gemm_args g;
    memset(&g, 0, sizeof(g));
    g.kernel = k;
    g.M = M;
    g.N = N;
    g.K = K;
    g.a.packed = pa;
    g.b.data = S;
    g.b.off = off;
    g.c = C;
    g.ldc = ldc;
    g.bias = bias;
    g.act = act;
    g.alpha = act_alpha[act];
    g.beta = act_beta[act];
    g.num_threads = nt;
    g.wide_qw = qw;
    g.wide_ow = ow;
    size_t sb = sqz_gemm_scratch_bytes(&g);
    void *scratch = sb ? aligned_alloc(64, (sb + 63) / 64 * 64) : NULL;
    if (sb) assert_non_null(scratch);
    sqz_gemm(&g, scratch);
    for (int64_t i = 0; i < M * ldc; i++)
        if (!(R[i] == 12345.0f ? C[i] == 12345.0f : close_enough(C[i], R[i], K)))
            fail_msg("%s indirect gemm M=%lld N=%lld K=%lld qw=%lld ow=%lld act=%d nt=%d: [%lld] "
                     "%g vs %g",
                     is->name, (long long)M, (long long)N, (long long)K, (long long)qw,
                     (long long)ow, act, nt, (long long)i, (double)C[i], (double)R[i]);
    free(scratch);
    free(pa);
    free(off);
    free(A);
    free(S);
    free(bias);
    free(C);
    free(R);
}

static void test_gemm_indirect(void **state) {
    (void)state;
    collect_isas();
    /* (qw, ow): conv-like drops of 2 (3x3) / 1 (stride 2) / 4 (5x5), none,
     * a drop wider than the kept part, plain stores */
    static const int64_t geo[][2] = {{9, 7}, {16, 14}, {30, 28}, {15, 14}, {5, 5}, {3, 1}, {0, 0}};
    /* read in place (<= 8 row tiles) and packed into panels */
    static const int64_t ms[] = {1, 5, 8, 17, 33, 40, 70};
    static const int64_t ks[] = {1, 7, 300, 600}; /* one and several k blocks */
    for (int ii = 0; ii < n_isas; ii++) {
        tu_rng rng;
        tu_rng_seed(&rng, 777 + (uint64_t)ii);
        int cnt = 0;
        for (size_t gi = 0; gi < sizeof(geo) / sizeof(geo[0]); gi++)
            for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++, cnt++) {
                int64_t qw = geo[gi][0], ow = geo[gi][1];
                int64_t K = ks[(gi + mi) % 4];
                /* whole rows, a partial last row, one column */
                int64_t N = cnt % 3 == 0 ? (qw ? 4 * qw : 70) : cnt % 3 == 1 ? 61 : 1;
                check_gemm_ind(&isas[ii], &rng, ms[mi], N, K, qw, ow, cnt % 8, 1 + cnt % 2);
            }
        printf("[ INFO ] %s: indirect-B / wide-store GEMM checked on %d shapes\n", isas[ii].name,
               cnt);
    }
}

/* --------------------------------------------------------------- op tests */

static void tn_act(tnode *t, int act) {
    if (act == SQZ_ACT_NONE) return;
    tn_int(t, "sqz_act", act);
    if (act == SQZ_ACT_CLIP || act == SQZ_ACT_LEAKY_RELU || act == SQZ_ACT_HARD_SIGMOID) {
        tn_float(t, "sqz_act_alpha", act_alpha[act]);
        tn_float(t, "sqz_act_beta", act_beta[act]);
    }
}

/* scratch bytes the last successful run_impl prepare asked for */
static size_t last_scratch;

/* prepare (constant inputs visible where const_mask has the bit) + run;
 * returns prepare's rc; *out is malloc'ed (NaN-filled before run). */
static int run_impl(const sqz_op_impl *impl, tnode *t, uint32_t n_in, const sqz_shape *shapes,
                    const float *const *data, unsigned const_mask, int nt, float **out,
                    sqz_shape *oshape) {
    char err[256] = "";
    const float *pdata[4] = {0};
    for (uint32_t i = 0; i < n_in; i++)
        if (const_mask & (1u << i)) pdata[i] = data[i];
    t->node.n_inputs = n_in;
    t->node.n_outputs = 1;
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.node = &t->node;
    ctx.n_in = n_in;
    ctx.n_out = 1;
    ctx.in_shape = shapes;
    ctx.in_data = pdata;
    ctx.out_shape = oshape;
    ctx.err = err;
    ctx.err_len = sizeof(err);
    ctx.num_threads = nt;
    int rc = impl->prepare(&ctx);
    *out = NULL;
    if (rc == -1) printf("[ INFO ] prepare refused: %s\n", err);
    if (rc != 0) {
        if (rc == 1 && ctx.params && impl->release) impl->release(ctx.params);
        return rc;
    }
    last_scratch = ctx.scratch_bytes;
    size_t n = (size_t)sqz_shape_numel(oshape);
    float *y = falloc(n);
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    void *scratch = NULL;
    if (ctx.scratch_bytes) {
        scratch = aligned_alloc(64, (ctx.scratch_bytes + 63) / 64 * 64);
        assert_non_null(scratch);
    }
    float *outs[1] = {y};
    ctx.scratch = scratch;
    ctx.in_data = data;
    ctx.out_data = outs;
    impl->run(&ctx);
    if (impl->release) impl->release(ctx.params);
    free(scratch);
    *out = y;
    return 0;
}

/* fast impl vs reference on the same node; returns the fast rc (1 = declined). */
static int compare_op(const isa *is, const sqz_op_impl *fast, tnode *t, uint32_t n_in,
                      const sqz_shape *shapes, const float *const *data, unsigned const_mask,
                      int nt, int64_t K, const char *what) {
    float *yr, *yf;
    sqz_shape sr, sf;
    int rr = run_impl(sqz_ref_op(t->node.op), t, n_in, shapes, data, const_mask, 1, &yr, &sr);
    assert_int_equal(rr, 0);
    int rf = run_impl(fast, t, n_in, shapes, data, const_mask, nt, &yf, &sf);
    if (rf == 0) {
        assert_int_equal(sr.ndim, sf.ndim);
        for (int d = 0; d < sr.ndim; d++) assert_int_equal(sr.dims[d], sf.dims[d]);
        size_t n = (size_t)sqz_shape_numel(&sr);
        for (size_t i = 0; i < n; i++)
            if (!close_enough(yf[i], yr[i], K))
                fail_msg("%s %s nt=%d: [%zu] %g vs ref %g", is->name, what, nt, i, (double)yf[i],
                         (double)yr[i]);
    }
    free(yr);
    free(yf);
    return rf;
}

typedef struct conv_case {
    int64_t n, c, h, w, m, kh, kw, s, pt, pl, pb, pr, d, g;
    int act, bias;
} conv_case;

static const conv_case conv_cases[] = {
    /* n  c   h   w   m  kh kw s pt pl pb pr d g act bias */
    {1, 3, 17, 19, 8, 3, 3, 2, 1, 1, 1, 1, 1, 1, SQZ_ACT_RELU, 1},
    {1, 16, 14, 14, 24, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},
    {2, 16, 7, 9, 33, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_CLIP, 0},
    {1, 8, 9, 9, 17, 1, 1, 2, 0, 0, 0, 0, 1, 1, SQZ_ACT_HARD_SWISH, 1},
    {1, 12, 11, 13, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_LEAKY_RELU, 1},
    {1, 6, 12, 12, 9, 3, 3, 1, 2, 2, 2, 2, 2, 1, SQZ_ACT_SIGMOID, 1},
    {1, 8, 10, 11, 12, 3, 3, 1, 1, 1, 1, 1, 1, 4, SQZ_ACT_HARD_SIGMOID, 1},
    {2, 6, 8, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, SQZ_ACT_TANH, 1},
    {1, 5, 13, 10, 7, 5, 3, 2, 2, 1, 0, 2, 1, 1, SQZ_ACT_RELU, 0},
    {1, 4, 20, 20, 70, 7, 7, 2, 3, 3, 3, 3, 1, 1, SQZ_ACT_RELU, 1},
    {1, 9, 6, 8, 5, 2, 4, 3, 0, 1, 1, 0, 2, 1, SQZ_ACT_NONE, 1},
    {1, 64, 8, 8, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_RELU, 1}, /* K = 576 > KC */
    {1, 40, 5, 6, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1, SQZ_ACT_NONE, 1}, /* 1x1 with pads */
    {1, 3, 1, 1, 4, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},   /* 1x1 spatial */
    /* 1x1 planes run as a row-vector product (squeeze-excite convs) */
    {1, 1152, 1, 1, 48, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},
    {1, 37, 1, 1, 133, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_SIGMOID, 0},
    {1, 48, 1, 1, 1152, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_RELU, 1},
    {2, 17, 1, 1, 21, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_CLIP, 1},   /* batch 2: panels */
    {1, 4, 3, 3, 8, 3, 3, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},     /* 1x1 output */
    {1, 16, 33, 31, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_CLIP, 1}, /* odd planes */
    {1, 24, 12, 12, 48, 1, 1, 1, 0, 0, 0, 0, 1, 2, SQZ_ACT_RELU, 1}, /* grouped 1x1 */
    {1, 4, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4, SQZ_ACT_RELU, 1},     /* Cg = 1, Mg = 2 */
    /* stride-1 convs on the wide (padded-copy) path: OW >= 6 (kw - 1) */
    {2, 8, 14, 14, 12, 3, 3, 1, 1, 1, 1, 1, 1, 2, SQZ_ACT_RELU, 1},  /* batch 2, groups */
    {1, 5, 9, 26, 7, 3, 5, 1, 0, 2, 1, 1, 1, 1, SQZ_ACT_SIGMOID, 0}, /* asymmetric pads */
    {1, 40, 6, 20, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_CLIP, 1},  /* K = 360 > KC */
    {1, 3, 13, 40, 70, 3, 3, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},  /* no pads, M > MR */
    /* above the wide path's one-thread size: threads split output rows ... */
    {1, 16, 15, 20, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_RELU, 1},
    {1, 9, 33, 41, 40, 3, 3, 2, 1, 1, 1, 1, 1, 1, SQZ_ACT_NONE, 1}, /* strided (phases) */
    /* ... or output channels (few rows, many channels) */
    {1, 32, 7, 7, 97, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_CLIP, 1},
};

/* One conv_case on an ISA's Conv impl against the reference at nt_lo..nt_hi
 * threads (split_small: every conv is split, SQZ_PAR_MIN_MACS=1). */
static void check_conv_case(const isa *is, tu_rng *rng, const conv_case *cc, int nt_lo, int nt_hi,
                            int split_small, const char *what) {
    tnode t;
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_ints(&t, "pads", 4, (const int64_t[]){cc->pt, cc->pl, cc->pb, cc->pr});
    tn_ints(&t, "strides", 2, (const int64_t[]){cc->s, cc->s});
    tn_ints(&t, "dilations", 2, (const int64_t[]){cc->d, cc->d});
    tn_int(&t, "group", cc->g);
    tn_act(&t, cc->act);
    sqz_shape sh[3];
    memset(sh, 0, sizeof(sh));
    sh[0] = (sqz_shape){4, {cc->n, cc->c, cc->h, cc->w}};
    sh[1] = (sqz_shape){4, {cc->m, cc->c / cc->g, cc->kh, cc->kw}};
    sh[2] = (sqz_shape){1, {cc->m}};
    size_t nx = (size_t)sqz_shape_numel(&sh[0]), nw = (size_t)sqz_shape_numel(&sh[1]);
    float *x = falloc(nx), *w = falloc(nw), *b = falloc((size_t)cc->m);
    tu_fill_uniform(rng, x, nx, -1, 1);
    tu_fill_uniform(rng, w, nw, -1, 1);
    tu_fill_uniform(rng, b, (size_t)cc->m, -1, 1);
    const float *data[3] = {x, w, b};
    int64_t K = cc->c / cc->g * cc->kh * cc->kw;
    for (int nt = nt_lo; nt <= nt_hi; nt++) {
        if (split_small) setenv("SQZ_PAR_MIN_MACS", nt > 1 ? "1" : "0", 1);
        int rc = compare_op(is, is->conv, &t, cc->bias ? 3 : 2, sh, data, 6, nt, K, what);
        if (split_small) unsetenv("SQZ_PAR_MIN_MACS");
        assert_int_equal(rc, 0);
    }
    free(x);
    free(w);
    free(b);
}

static void test_conv_ops(void **state) {
    (void)state;
    collect_isas();
    int covered = 0;
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].conv) continue;
        covered++;
        tu_rng rng;
        tu_rng_seed(&rng, 99);
        for (size_t ci = 0; ci < sizeof(conv_cases) / sizeof(conv_cases[0]); ci++) {
            const conv_case *cc = &conv_cases[ci];
            char what[64];
            snprintf(what, sizeof(what), "conv case %zu", ci);
            /* 3 threads (an odd thread grid) where the conv is big enough to split */
            int64_t oh = (cc->h + cc->pt + cc->pb - cc->kh) / cc->s + 1;
            int64_t ow = (cc->w + cc->pl + cc->pr - cc->kw) / cc->s + 1;
            int64_t K = cc->c / cc->g * cc->kh * cc->kw;
            int max_nt = cc->m / cc->g * K * oh * ow >= (1 << 20) ? 3 : 2;
            check_conv_case(&isas[ii], &rng, cc, 1, max_nt, 0, what);
        }
    }
    printf("[ INFO ] Conv impls checked on %d ISA(s)\n", covered);
}

/* 1x1 convs on 1x1 planes take the kernel's gemv; with SQZ_GEMV=0 the
 * blocked driver with the weights packed as B (same cases, every ISA) */
static void test_conv_vec_no_gemv(void **state) {
    (void)state;
    collect_isas();
    static const conv_case cases[] = {
        {1, 1152, 1, 1, 48, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},
        {1, 37, 1, 1, 133, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_SIGMOID, 0},
        {1, 48, 1, 1, 1152, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_RELU, 1},
    };
    setenv("SQZ_GEMV", "0", 1);
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].conv) continue;
        for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
            check_conv_case(&isas[ii], &rng, &cases[ci], 1, 2, 0, "conv 1x1 plane, no gemv");
    }
    unsetenv("SQZ_GEMV");
}

/* Pixel-major conv tiles (kernels with px) against the scalar twin:
 * random K (odd, one and many), pixels per row 1..px_p over one row and
 * 1..px_p/2 over two, partial channel panels, every cheap activation, with
 * and without bias; elements outside the tile stay untouched. */
static void test_px_kernel(void **state) {
    (void)state;
    collect_isas();
    static const int acts[] = {SQZ_ACT_NONE,       SQZ_ACT_RELU,       SQZ_ACT_CLIP,
                               SQZ_ACT_LEAKY_RELU, SQZ_ACT_HARD_SWISH, SQZ_ACT_HARD_SIGMOID};
    static const size_t ks[] = {1, 2, 9, 37, 288};
    int covered = 0;
    for (int ii = 0; ii < n_isas; ii++) {
        const sqz_gemm_kernel *k = isas[ii].k;
        if (!k->px) continue;
        covered++;
        tu_rng rng;
        tu_rng_seed(&rng, 4242 + (uint64_t)ii);
        const int PM = k->px_m, PP = k->px_p;
        const int64_t xrow = 23, ldc = 37;
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            size_t K = ks[ki];
            float *w = falloc(K * (size_t)PM), *x = falloc(K * 64 + 64);
            int64_t *xoff = malloc(K * sizeof *xoff);
            float bias[64];
            assert_non_null(xoff);
            tu_fill_uniform(&rng, w, K * (size_t)PM, -1, 1);
            tu_fill_uniform(&rng, x, K * 64 + 64, -1, 1);
            tu_fill_uniform(&rng, bias, 64, -1, 1);
            for (size_t kk = 0; kk < K; kk++) xoff[kk] = (int64_t)(kk * 64 + kk % 3);
            for (int rows = 1; rows <= 2; rows++)
                for (int np = 1; np * rows <= PP; np++) {
                    int m = 1 + (int)(tu_rng_u32(&rng) % (uint32_t)PM);
                    if (np == 1) m = PM;
                    int act = acts[(size_t)(np + rows) % (sizeof(acts) / sizeof(acts[0]))];
                    int use_bias = (np + (int)ki) % 3 != 0;
                    sqz_gemm_epi e;
                    memset(&e, 0, sizeof(e));
                    e.bias = use_bias ? bias : NULL;
                    e.act = act;
                    e.alpha =
                        act == SQZ_ACT_CLIP ? -0.5f : (act == SQZ_ACT_LEAKY_RELU ? 0.1f : 0.2f);
                    e.beta = act == SQZ_ACT_CLIP ? 0.5f : 0.5f;
                    float got[64 * 37], want[64 * 37];
                    for (size_t i = 0; i < 64 * 37; i++) got[i] = want[i] = 777.0f;
                    k->px(K, w, x, xoff, xrow, (size_t)np, (size_t)rows, got, (size_t)ldc,
                          (size_t)m, &e);
                    sqz_gemm_px_ref(PM, K, w, x, xoff, xrow, (size_t)np, (size_t)rows, want,
                                    (size_t)ldc, (size_t)m, &e);
                    for (size_t i = 0; i < 64 * 37; i++) {
                        int in = (int64_t)(i % (size_t)ldc) < np * rows &&
                                 (int64_t)(i / (size_t)ldc) < m;
                        if (!in && got[i] != 777.0f)
                            fail_msg("%s px K=%zu np=%d rows=%d m=%d: wrote outside at %zu",
                                     isas[ii].name, K, np, rows, m, i);
                        if (in && !close_enough(got[i], want[i], (int64_t)K))
                            fail_msg("%s px K=%zu np=%d rows=%d m=%d act=%d: [%zu] %g vs %g",
                                     isas[ii].name, K, np, rows, m, act, i, (double)got[i],
                                     (double)want[i]);
                    }
                }
            free(w);
            free(x);
            free(xoff);
        }
    }
    if (!covered) printf("[ SKIP ] px kernel: no kernel of this CPU has one\n");
}

/* Band-copy planes (kernels with band) against the scalar twin, bit for
 * bit: strides 1..3, pads before / after / none / wider than the input,
 * rows above and below the input, widths around the 16-lane steps, one
 * plane or every column phase (planes a few floats further apart than
 * QH * QW: the gap stays untouched). */
static void test_band_plane(void **state) {
    (void)state;
    collect_isas();
    int covered = 0;
    for (int ii = 0; ii < n_isas; ii++) {
        const sqz_gemm_kernel *k = isas[ii].k;
        if (!k->band) continue;
        covered++;
        tu_rng rng;
        tu_rng_seed(&rng, 99 + (uint64_t)ii);
        for (int it = 0; it < 800; it++) {
            int64_t IH = 1 + tu_rng_u32(&rng) % 20, IW = 1 + tu_rng_u32(&rng) % 70;
            if (it % 50 == 0) IW = 300; /* more 16-lane steps than the mask table */
            int64_t sw = 1 + it % 3, sh = 1 + (it / 3) % 2;
            int64_t lead = (int64_t)(tu_rng_u32(&rng) % 7) - 3;
            int64_t ih0 = (int64_t)(tu_rng_u32(&rng) % 9) - 4;
            int64_t QH = 1 + tu_rng_u32(&rng) % 24, QW = (IW + 2) / sw + tu_rng_u32(&rng) % 3;
            if (it % 7 == 0) QW = 16;
            if (it % 11 == 0 && QW > 2) IW = 2 * QW - 1 - (int64_t)(tu_rng_u32(&rng) % 3); /* 7x7 */
            int64_t nb = (it / 6) % 2 ? sw : 1, ps = QH * QW + (int64_t)(tu_rng_u32(&rng) % 3);
            size_t nx = (size_t)(IH * IW), nd = (size_t)((nb - 1) * ps + QH * QW);
            float *x = falloc(nx), *got = falloc(nd + 1), *want = falloc(nd + 1);
            tu_fill_uniform(&rng, x, nx, -1, 1);
            for (size_t i = 0; i <= nd; i++) got[i] = want[i] = NAN;
            got[nd] = want[nd] = 5.0f;
            k->band(x, IH, IW, ih0, sh, lead, sw, QH, QW, got, nb, ps);
            sqz_gemm_band_ref(x, IH, IW, ih0, sh, lead, sw, QH, QW, want, nb, ps);
            if (memcmp(got, want, (nd + 1) * sizeof(float)) != 0)
                fail_msg("%s band IH=%lld IW=%lld ih0=%lld sh=%lld lead=%lld sw=%lld QH=%lld "
                         "QW=%lld nb=%lld differs",
                         isas[ii].name, (long long)IH, (long long)IW, (long long)ih0, (long long)sh,
                         (long long)lead, (long long)sw, (long long)QH, (long long)QW,
                         (long long)nb);
            free(x);
            free(got);
            free(want);
        }
    }
    if (!covered) printf("[ SKIP ] band plane: no kernel of this CPU has one\n");
}

/* The wide and direct 1x1 convs with the pixel-major tiles forced on and
 * off (SQZ_CONV_PX), against the reference: 7x7 / 14x14 / 28x28 planes (two
 * rows per tile, one row, row pieces), stride 2, partial channel panels,
 * 1..3 threads. */
static void test_conv_px(void **state) {
    (void)state;
    collect_isas();
    static const conv_case cases[] = {
        /* n  c   h   w   m  kh kw s pt pl pb pr d g act bias */
        {1, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_RELU, 1},
        {1, 32, 14, 14, 64, 3, 3, 2, 1, 1, 1, 1, 1, 1, SQZ_ACT_NONE, 1},
        {1, 16, 28, 28, 32, 3, 3, 2, 1, 1, 1, 1, 1, 1, SQZ_ACT_CLIP, 0},
        {1, 32, 14, 14, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_HARD_SWISH, 1},
        {1, 8, 30, 29, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_RELU, 1},
        {2, 12, 9, 11, 33, 3, 5, 1, 1, 2, 1, 2, 1, 3, SQZ_ACT_LEAKY_RELU, 1},
        {1, 20, 13, 13, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_HARD_SIGMOID, 1},
        {1, 8, 6, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, SQZ_ACT_SIGMOID, 1}, /* declines px */
        /* direct 1x1: pixel chunks across rows, channel panels 32 + 8, groups */
        {1, 24, 14, 14, 40, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_CLIP, 1},
        {1, 40, 7, 7, 64, 1, 1, 1, 0, 0, 0, 0, 1, 1, SQZ_ACT_NONE, 1},
        {2, 34, 5, 9, 66, 1, 1, 1, 0, 0, 0, 0, 1, 2, SQZ_ACT_RELU, 0},
    };
    const char *saved = getenv("SQZ_CONV_PX");
    char *keep = saved ? strdup(saved) : NULL;
    int covered = 0;
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].conv) continue;
        covered += isas[ii].k->px != NULL;
        tu_rng rng;
        tu_rng_seed(&rng, 5150);
        for (int force = 0; force <= 1; force++) {
            setenv("SQZ_CONV_PX", force ? "1" : "0", 1);
            for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
                char what[64];
                snprintf(what, sizeof(what), "px=%d conv case %zu", force, ci);
                check_conv_case(&isas[ii], &rng, &cases[ci], 1, 3, 1, what);
            }
        }
    }
    if (keep) {
        setenv("SQZ_CONV_PX", keep, 1);
        free(keep);
    } else {
        unsetenv("SQZ_CONV_PX");
    }
    printf("[ INFO ] px conv path checked on %d ISA(s)\n", covered);
}

static void test_conv_declines(void **state) {
    (void)state;
    collect_isas();
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].conv) continue;
        float *yf;
        sqz_shape so;
        float x[2 * 8 * 8], w[2 * 9];
        memset(x, 0, sizeof(x));
        memset(w, 0, sizeof(w));
        const float *data[2] = {x, w};
        tnode t;
        /* depthwise */
        tn_init(&t, SQZ_OP_CONV, "test", 1);
        tn_int(&t, "group", 2);
        sqz_shape sh[2] = {{4, {1, 2, 8, 8}}, {4, {2, 1, 3, 3}}};
        assert_int_equal(run_impl(isas[ii].conv, &t, 2, sh, data, 2, 1, &yf, &so), 1);
        /* non-constant weights */
        tn_init(&t, SQZ_OP_CONV, "test", 1);
        sqz_shape sh2[2] = {{4, {1, 2, 8, 8}}, {4, {1, 2, 3, 3}}};
        assert_int_equal(run_impl(isas[ii].conv, &t, 2, sh2, data, 0, 1, &yf, &so), 1);
        /* 1-D conv */
        tn_init(&t, SQZ_OP_CONV, "test", 1);
        sqz_shape sh3[2] = {{3, {1, 2, 8}}, {3, {1, 2, 3}}};
        assert_int_equal(run_impl(isas[ii].conv, &t, 2, sh3, data, 2, 1, &yf, &so), 1);
        /* invalid: fails like the reference */
        tn_init(&t, SQZ_OP_CONV, "test", 1);
        sqz_shape sh4[2] = {{4, {1, 2, 8, 8}}, {4, {1, 3, 3, 3}}};
        assert_int_equal(run_impl(isas[ii].conv, &t, 2, sh4, data, 2, 1, &yf, &so), -1);
    }
}

static void test_gemm_ops(void **state) {
    (void)state;
    collect_isas();
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].gemm) continue;
        tu_rng rng;
        tu_rng_seed(&rng, 7);
        int cnt = 0;
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++)
                for (int cm = 0; cm < 5; cm++) /* C: none, [N], scalar, [M,N], [M,1] */
                    for (int cst = 0; cst < 3; cst++, cnt++) {
                        int64_t M = sizes[(cnt * 5) % NSIZES], N = sizes[(cnt * 3 + 1) % NSIZES];
                        int64_t K = sizes[(cnt * 7 + 2) % NSIZES];
                        tnode t;
                        tn_init(&t, SQZ_OP_GEMM, "test", 1);
                        tn_int(&t, "transA", ta);
                        tn_int(&t, "transB", tb);
                        if (cnt % 3 == 1) tn_float(&t, "alpha", 0.75f);
                        if (cnt % 4 == 1) tn_float(&t, "beta", -1.5f);
                        int act = cnt % 8;
                        tn_act(&t, act);
                        sqz_shape sh[3];
                        memset(sh, 0, sizeof(sh));
                        sh[0] = ta ? (sqz_shape){2, {K, M}} : (sqz_shape){2, {M, K}};
                        sh[1] = tb ? (sqz_shape){2, {N, K}} : (sqz_shape){2, {K, N}};
                        if (cm == 1) sh[2] = (sqz_shape){1, {N}};
                        if (cm == 2) sh[2] = (sqz_shape){1, {1}};
                        if (cm == 3) sh[2] = (sqz_shape){2, {M, N}};
                        if (cm == 4) sh[2] = (sqz_shape){2, {M, 1}};
                        float *a = falloc((size_t)(M * K)), *b = falloc((size_t)(K * N));
                        float *c = falloc((size_t)(M * N));
                        tu_fill_uniform(&rng, a, (size_t)(M * K), -1, 1);
                        tu_fill_uniform(&rng, b, (size_t)(K * N), -1, 1);
                        tu_fill_uniform(&rng, c, (size_t)(M * N), -1, 1);
                        const float *data[3] = {a, b, c};
                        unsigned mask = cst == 0 ? 2u : (cst == 1 ? 1u : 0u);
                        char what[96];
                        snprintf(what, sizeof(what), "Gemm M=%lld N=%lld K=%lld tA=%d tB=%d C=%d",
                                 (long long)M, (long long)N, (long long)K, ta, tb, cm);
                        int rc = compare_op(&isas[ii], isas[ii].gemm, &t, cm ? 3 : 2, sh, data,
                                            mask | 4u, 1 + cnt % 2, K, what);
                        assert_int_equal(rc, 0);
                        free(a);
                        free(b);
                        free(c);
                    }
    }
}

typedef struct mm_case {
    int an, bn;
    int64_t ad[4], bd[4];
    unsigned mask;
    int expect_decline;
} mm_case;

static const mm_case mm_cases[] = {
    {2, 2, {7, 33}, {33, 17}, 2, 0},
    {2, 2, {1, 100}, {100, 31}, 2, 0},
    {2, 2, {16, 9}, {9, 5}, 0, 0},
    {3, 2, {3, 5, 12}, {12, 19}, 2, 0},
    {3, 3, {3, 5, 12}, {3, 12, 19}, 0, 0},
    {3, 3, {3, 5, 12}, {3, 12, 19}, 2, 0},
    {2, 3, {5, 12}, {4, 12, 6}, 1, 0},
    {1, 2, {13}, {13, 9}, 2, 0},
    {2, 1, {6, 13}, {13}, 0, 0},
    {4, 4, {2, 1, 3, 4}, {1, 3, 4, 5}, 0, 1}, /* two-sided broadcast: declined */
    {4, 2, {2, 2, 64, 64}, {64, 64}, 2, 0},
};

static void test_matmul_ops(void **state) {
    (void)state;
    collect_isas();
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].matmul) continue;
        tu_rng rng;
        tu_rng_seed(&rng, 11);
        for (size_t ci = 0; ci < sizeof(mm_cases) / sizeof(mm_cases[0]); ci++) {
            const mm_case *mc = &mm_cases[ci];
            tnode t;
            tn_init(&t, SQZ_OP_MATMUL, "test", 1);
            tn_act(&t, (int)(ci % 8));
            sqz_shape sh[2];
            memset(sh, 0, sizeof(sh));
            sh[0].ndim = mc->an;
            sh[1].ndim = mc->bn;
            memcpy(sh[0].dims, mc->ad, sizeof(mc->ad));
            memcpy(sh[1].dims, mc->bd, sizeof(mc->bd));
            size_t na = (size_t)sqz_shape_numel(&sh[0]), nb = (size_t)sqz_shape_numel(&sh[1]);
            float *a = falloc(na), *b = falloc(nb);
            tu_fill_uniform(&rng, a, na, -1, 1);
            tu_fill_uniform(&rng, b, nb, -1, 1);
            const float *data[2] = {a, b};
            char what[48];
            snprintf(what, sizeof(what), "MatMul case %zu", ci);
            for (int nt = 1; nt <= 2; nt++) {
                int rc = compare_op(&isas[ii], isas[ii].matmul, &t, 2, sh, data, mc->mask, nt,
                                    mc->ad[mc->an - 1], what);
                assert_int_equal(rc, mc->expect_decline ? 1 : 0);
            }
            free(a);
            free(b);
        }
    }
}

/* ------------------------------------------------------------------ gemv */

/* Each ISA's gemv panel kernel against its scalar twin (sqz_gemv_ref with
 * the kernel's vector length) and a double reference: one or two rows, every
 * panel width, odd K and column counts, bias or none, every cheap
 * activation; columns past n and past the rows' ldy must stay untouched. */
static void test_gemv_kernel(void **state) {
    (void)state;
    collect_isas();
    static const int64_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 100, 257, 300};
    static const int cheap[] = {SQZ_ACT_NONE,       SQZ_ACT_RELU,       SQZ_ACT_CLIP,
                                SQZ_ACT_LEAKY_RELU, SQZ_ACT_HARD_SWISH, SQZ_ACT_HARD_SIGMOID};
    for (int ii = 0; ii < n_isas; ii++) {
        const sqz_gemm_kernel *k = isas[ii].k;
        assert_non_null(k->gemv);
        const int VL = k->gemv_vl;
        tu_rng rng;
        tu_rng_seed(&rng, 23);
        int cnt = 0;
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++)
            for (int nv = 1; nv <= SQZ_GEMV_MAXV; nv++)
                for (int nn = 0; nn < 3; nn++)
                    for (int m = 1; m <= 2; m++, cnt++) {
                        const int64_t K = ks[ki];
                        /* n: one column of the last vector, a partial one, all */
                        size_t n = (size_t)(nv - 1) * (size_t)VL + (nn == 0   ? 1
                                                                    : nn == 1 ? (size_t)(VL + 1) / 2
                                                                              : (size_t)VL);
                        const size_t pw = (size_t)nv * (size_t)VL, ldx = (size_t)K + 3, ldy = n + 5;
                        int act = cheap[cnt % 6], use_bias = cnt % 3 != 0;
                        float *x = falloc(ldx * 2), *w = falloc((size_t)K * pw), *b = falloc(pw);
                        float *y = falloc(ldy * 2), *yr = falloc(ldy * 2);
                        tu_fill_uniform(&rng, x, ldx * 2, -1, 1);
                        tu_fill_uniform(&rng, w, (size_t)K * pw, -1, 1);
                        tu_fill_uniform(&rng, b, pw, -1, 1);
                        for (size_t i = 0; i < ldy * 2; i++) y[i] = yr[i] = 777.0f;
                        sqz_gemm_epi e;
                        memset(&e, 0, sizeof(e));
                        e.act = act;
                        e.alpha = act_alpha[act];
                        e.beta = act_beta[act];
                        /* every other case with the cold-weights hint (prefetches past
                         * the panel's end): outputs unchanged */
                        e.prefetch_a = cnt % 2;
                        k->gemv((size_t)K, x, ldx, (size_t)m, w, (size_t)nv, n, use_bias ? b : NULL,
                                y, ldy, &e);
                        sqz_gemv_ref(VL, (size_t)K, x, ldx, (size_t)m, w, (size_t)nv, n,
                                     use_bias ? b : NULL, yr, ldy, &e);
                        for (int r = 0; r < 2; r++)
                            for (size_t j = 0; j < ldy; j++) {
                                size_t i = (size_t)r * ldy + j;
                                if (r >= m || j >= n) {
                                    if (y[i] != 777.0f || yr[i] != 777.0f)
                                        fail_msg("%s gemv K=%lld nv=%d n=%zu m=%d: wrote [%d][%zu]",
                                                 isas[ii].name, (long long)K, nv, n, m, r, j);
                                    continue;
                                }
                                double s = use_bias ? b[j] : 0.0;
                                for (int64_t kk = 0; kk < K; kk++)
                                    s += (double)x[(size_t)r * ldx + (size_t)kk] *
                                         (double)w[(size_t)kk * pw + j];
                                float want = act_ref(act, act_alpha[act], act_beta[act], (float)s);
                                if (!close_enough(y[i], yr[i], K) || !close_enough(y[i], want, K))
                                    fail_msg("%s gemv K=%lld nv=%d n=%zu m=%d act=%d: [%d][%zu] "
                                             "%g vs twin %g vs %g",
                                             isas[ii].name, (long long)K, nv, n, m, act, r, j,
                                             (double)y[i], (double)yr[i], want);
                            }
                        free(x);
                        free(w);
                        free(b);
                        free(y);
                        free(yr);
                    }
    }
}

/* sqz_gemv_pack: panels of PV vectors, the last narrower, zero columns */
static void test_gemv_pack(void **state) {
    (void)state;
    const int64_t K = 3, N = 21; /* VL 4, PV 2: panels 8, 8, 8 (5 columns + 3 zero) */
    float src[3 * 21], dst[3 * 24];
    for (int i = 0; i < 63; i++) src[i] = (float)(i + 1);
    assert_int_equal(sqz_gemv_floats(4, 2, K, N), 3 * 24);
    assert_int_equal(sqz_gemv_floats(4, 4, K, 17), 3 * 20); /* 16 + one vector */
    /* src is N x K (transposed source: element (kk, j) at src[j*K + kk]) */
    sqz_gemv_pack(4, 2, K, N, src, 1, K, 2.0f, dst);
    for (int64_t p = 0; p < 3; p++)
        for (int64_t kk = 0; kk < K; kk++)
            for (int64_t c = 0; c < 8; c++) {
                int64_t j = p * 8 + c;
                float want = j < N ? 2.0f * src[j * K + kk] : 0.0f;
                assert_true(dst[p * 8 * K + kk * 8 + c] == want);
            }
}

/* Gemm / MatMul with constant weights and one or two rows (the gemv path:
 * no scratch) against the reference, at 1..3 threads, every C form */
static void test_gemv_ops(void **state) {
    (void)state;
    collect_isas();
    static const int64_t ns[] = {1, 5, 16, 17, 63, 64, 65, 100, 129, 300};
    static const int64_t kk[] = {1, 3, 17, 64, 300, 784};
    for (int ii = 0; ii < n_isas; ii++) {
        if (!isas[ii].gemm) continue;
        tu_rng rng;
        tu_rng_seed(&rng, 29);
        int cnt = 0;
        for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++)
            for (size_t ki = 0; ki < sizeof(kk) / sizeof(kk[0]); ki++, cnt++) {
                int64_t M = 1 + cnt % 2, N = ns[ni], K = kk[ki];
                int tb = cnt % 3 == 0, cm = cnt % 5, act = cnt % 8;
                tnode t;
                tn_init(&t, SQZ_OP_GEMM, "test", 1);
                tn_int(&t, "transB", tb);
                if (cnt % 4 == 1) tn_float(&t, "alpha", 0.75f);
                if (cnt % 3 == 1) tn_float(&t, "beta", -1.5f);
                tn_act(&t, act);
                sqz_shape sh[3];
                memset(sh, 0, sizeof(sh));
                sh[0] = (sqz_shape){2, {M, K}};
                sh[1] = tb ? (sqz_shape){2, {N, K}} : (sqz_shape){2, {K, N}};
                if (cm == 1) sh[2] = (sqz_shape){1, {N}};
                if (cm == 2) sh[2] = (sqz_shape){1, {1}};
                if (cm == 3) sh[2] = (sqz_shape){2, {M, N}};
                if (cm == 4) sh[2] = (sqz_shape){2, {M, 1}};
                float *a = falloc((size_t)(M * K)), *b = falloc((size_t)(K * N));
                float *c = falloc((size_t)(M * N));
                tu_fill_uniform(&rng, a, (size_t)(M * K), -1, 1);
                tu_fill_uniform(&rng, b, (size_t)(K * N), -1, 1);
                tu_fill_uniform(&rng, c, (size_t)(M * N), -1, 1);
                const float *data[3] = {a, b, c};
                char what[96];
                for (int nt = 1; nt <= 3; nt++)
                    for (int cconst = 0; cconst <= 1; cconst++) {
                        snprintf(what, sizeof(what), "gemv Gemm M=%lld N=%lld K=%lld tB=%d C=%d/%d",
                                 (long long)M, (long long)N, (long long)K, tb, cm, cconst);
                        unsigned mask = 2u | (cconst ? 4u : 0u);
                        int rc = compare_op(&isas[ii], isas[ii].gemm, &t, cm ? 3 : 2, sh, data,
                                            mask, nt, K, what);
                        assert_int_equal(rc, 0);
                        assert_int_equal(last_scratch, 0); /* no A panels: the gemv path */
                    }
                /* MatMul: [M, 1, K] x [K, N] (batch rows) and [1, K] x [K, N] */
                tnode u;
                tn_init(&u, SQZ_OP_MATMUL, "test", 1);
                tn_act(&u, act);
                sqz_shape ms[2];
                memset(ms, 0, sizeof(ms));
                ms[0] = (sqz_shape){3, {M, 1, K}};
                ms[1] = (sqz_shape){2, {K, N}};
                snprintf(what, sizeof(what), "gemv MatMul M=%lld N=%lld K=%lld", (long long)M,
                         (long long)N, (long long)K);
                int rc = compare_op(&isas[ii], isas[ii].matmul, &u, 2, ms, data, 2u, 1 + cnt % 2, K,
                                    what);
                assert_int_equal(rc, 0);
                assert_int_equal(last_scratch, 0);
                free(a);
                free(b);
                free(c);
            }
    }
}

static void test_isa_cap(void **state) {
    (void)state;
    collect_isas();
#if defined(__x86_64__)
    int hw = sqz_cpu_isa_hw();
    sqz_cpu_set_isa_cap(SQZ_ISA_SCALAR);
    assert_false(sqz_cpu_has_avx2_fma());
    assert_false(sqz_cpu_has_avx512());
    assert_ptr_equal(sqz_gemm_best(), &sqz_gemm_scalar);
    sqz_cpu_set_isa_cap(SQZ_ISA_AVX2);
    assert_int_equal(sqz_cpu_has_avx2_fma(), hw >= SQZ_ISA_AVX2);
    assert_false(sqz_cpu_has_avx512());
    assert_false(sqz_cpu_has_avx512_vnni());
    sqz_cpu_set_isa_cap(SQZ_ISA_AVX512);
    assert_int_equal(sqz_cpu_has_avx512(), hw >= SQZ_ISA_AVX512);
    sqz_cpu_set_isa_cap(-1);
    printf("[ INFO ] hardware ISA level %d (0 scalar, 1 avx2, 2 avx512), vnni %d\n", hw,
           sqz_cpu_has_avx512_vnni());
#endif
    /* dispatch offers the fast impls exactly when the CPU can run them */
    const sqz_op_impl *cand[8];
    int n = sqz_fast_ops(SQZ_OP_GEMM, cand, 8);
#if defined(__x86_64__)
    /* + the sparse Gemm (kernels/sparse.h), offered on every CPU: it declines dense weights */
    assert_int_equal(n, 1 + (hw >= SQZ_ISA_AVX2) + (hw >= SQZ_ISA_AVX512));
#else
    (void)n;
#endif
}

/* The px tiles' next-panel hint (epi->pf_next, pf_lines up to 2 K lines):
 * prefetches only, the outputs stay the scalar twin's (two rows, partial
 * panels, odd K). The gemv's cold hint is checked in test_gemv_kernel. */
static void test_px_prefetch_hint(void **state) {
    (void)state;
    collect_isas();
    static const size_t ks[] = {1, 5, 37};
    for (int ii = 0; ii < n_isas; ii++) {
        const sqz_gemm_kernel *k = isas[ii].k;
        if (!k->px) continue;
        tu_rng rng;
        tu_rng_seed(&rng, 777 + (uint64_t)ii);
        const int PM = k->px_m, PP = k->px_p;
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            const size_t K = ks[ki], nl = 2 * K;
            float *w = falloc(K * (size_t)PM), *x = falloc(K * 32 + 32), *nx = falloc(nl * 16);
            int64_t *xoff = malloc(K * sizeof *xoff);
            assert_non_null(xoff);
            tu_fill_uniform(&rng, w, K * (size_t)PM, -1, 1);
            tu_fill_uniform(&rng, x, K * 32 + 32, -1, 1);
            tu_fill_uniform(&rng, nx, nl * 16, -1, 1);
            for (size_t kk = 0; kk < K; kk++) xoff[kk] = (int64_t)(kk * 32);
            for (size_t lines = 0; lines <= nl; lines += (nl + 2) / 3) {
                int rows = 1 + (int)(lines % 2), np = rows == 2 ? PP / 2 : PP - 1;
                size_t m = (size_t)PM - 1 - lines % 3;
                sqz_gemm_epi e;
                memset(&e, 0, sizeof(e));
                e.pf_next = nx;
                e.pf_lines = lines;
                e.act = SQZ_ACT_RELU;
                float got[64 * 16], want[64 * 16];
                for (size_t i = 0; i < 64 * 16; i++) got[i] = want[i] = 5.0f;
                k->px(K, w, x, xoff, 7, (size_t)np, (size_t)rows, got, 16, m, &e);
                sqz_gemm_px_ref(PM, K, w, x, xoff, 7, (size_t)np, (size_t)rows, want, 16, m, &e);
                for (size_t i = 0; i < 64 * 16; i++)
                    if (!close_enough(got[i], want[i], (int64_t)K))
                        fail_msg("%s px hint K=%zu lines=%zu: [%zu] %g vs %g", isas[ii].name, K,
                                 lines, i, (double)got[i], (double)want[i]);
            }
            free(w);
            free(x);
            free(nx);
            free(xoff);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_cap),         cmocka_unit_test(test_gemm_driver),
        cmocka_unit_test(test_gemm_split_cols), cmocka_unit_test(test_gemm_indirect),
        cmocka_unit_test(test_conv_ops),        cmocka_unit_test(test_conv_vec_no_gemv),
        cmocka_unit_test(test_conv_declines),   cmocka_unit_test(test_gemm_ops),
        cmocka_unit_test(test_matmul_ops),      cmocka_unit_test(test_px_kernel),
        cmocka_unit_test(test_band_plane),      cmocka_unit_test(test_conv_px),
        cmocka_unit_test(test_gemv_kernel),     cmocka_unit_test(test_gemv_pack),
        cmocka_unit_test(test_gemv_ops),        cmocka_unit_test(test_px_prefetch_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
