/* test_rt_fastops.c - the portable fast pools and binaries (kernels/fastops.h)
 * against the reference kernels on random shapes, pads, strides, ceil_mode,
 * broadcast patterns and thread counts (incl. NaN propagation in MaxPool);
 * and the cases they must decline. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__x86_64__)
#include "cpu.h"
#endif
#include "fastops.h"
#include "model.h"
#include "ref/ref.h"
#include "sqz/ops.h"
#include "test_node.h"
#include "testutil.h"

/* prepare + run one impl; returns prepare's code, output in *y (malloc'd). */
static int run_impl(const sqz_op_impl *impl, const tnode *t, const sqz_shape *in, int n_in,
                    const float *const *data, int threads, float **y, sqz_shape *ys) {
    char err[256] = {0};
    const float *pdata[3] = {NULL, NULL, NULL};
    sqz_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = &t->node;
    c.n_in = (uint32_t)n_in;
    c.n_out = 1;
    c.in_shape = in;
    c.in_data = pdata;
    c.out_shape = ys;
    c.num_threads = threads;
    c.err = err;
    c.err_len = sizeof err;
    int rc = impl->prepare(&c);
    *y = NULL;
    if (rc != 0) {
        if (c.params && impl->release) impl->release(c.params);
        return rc;
    }
    int64_t n = sqz_shape_numel(ys);
    float *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    void *scratch = c.scratch_bytes ? sqz_aligned_alloc(c.scratch_bytes) : NULL;
    assert_non_null(out);
    if (c.scratch_bytes) assert_non_null(scratch);
    float *outs[1] = {out};
    c.in_data = data;
    c.out_data = outs;
    c.scratch = scratch;
    impl->run(&c);
    if (c.params && impl->release) impl->release(c.params);
    sqz_aligned_free(scratch);
    *y = out;
    return 0;
}

static void compare(const float *a, const float *b, int64_t n, float rtol) {
    for (int64_t i = 0; i < n; i++) {
        if (isnan(b[i])) {
            assert_true(isnan(a[i]));
            continue;
        }
        float tol = rtol * (1.0f + fabsf(b[i]));
        if (!(fabsf(a[i] - b[i]) <= tol) && !(a[i] == b[i]))
            fail_msg("element %lld: fast %g vs ref %g", (long long)i, a[i], b[i]);
    }
}

static void test_pools_random(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    for (int rep = 0; rep < 300; rep++) {
        int is_max = rep % 2 == 0;
        int64_t N = 1 + tu_rng_u32(&r) % 2, C = 1 + tu_rng_u32(&r) % 5;
        int64_t H = 1 + tu_rng_u32(&r) % 19, W = 1 + tu_rng_u32(&r) % 23;
        int64_t kh = 1 + tu_rng_u32(&r) % 4, kw = 1 + tu_rng_u32(&r) % 4;
        int lenet = rep % 5 == 1; /* 2x2 / 2 unpadded: the direct path */
        if (lenet) kh = kw = 2;
        if (kh > H + 2) kh = H;
        if (kw > W + 2) kw = W;
        int64_t st[2] = {1 + tu_rng_u32(&r) % 3, 1 + tu_rng_u32(&r) % 3};
        int64_t pads[4] = {tu_rng_u32(&r) % 2, tu_rng_u32(&r) % 2, tu_rng_u32(&r) % 2,
                           tu_rng_u32(&r) % 2};
        int64_t ks[2] = {kh, kw};
        for (int i = 0; i < 2; i++)
            if (pads[i] >= ks[i]) pads[i] = ks[i] - 1;
        for (int i = 2; i < 4; i++)
            if (pads[i] >= ks[i - 2]) pads[i] = ks[i - 2] - 1;
        if (lenet) {
            st[0] = st[1] = 2;
            for (int i = 0; i < 4; i++) pads[i] = 0;
        }
        if (H + pads[0] + pads[2] < kh || W + pads[1] + pads[3] < kw) continue;
        tnode t;
        tn_init(&t, is_max ? SQZ_OP_MAXPOOL : SQZ_OP_AVGPOOL, "n", 1);
        tn_ints(&t, "kernel_shape", 2, ks);
        tn_ints(&t, "strides", 2, st);
        tn_ints(&t, "pads", 4, pads);
        int64_t ceil = tu_rng_u32(&r) % 2, cip = tu_rng_u32(&r) % 2;
        tn_ints(&t, "ceil_mode", 1, &ceil);
        if (!is_max) tn_ints(&t, "count_include_pad", 1, &cip);
        sqz_shape in = {4, {N, C, H, W}};
        int64_t n = N * C * H * W;
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, (size_t)n, -3, 3);
        if (is_max && rep % 6 == 0) x[tu_rng_u32(&r) % n] = NAN;
        const float *data[1] = {x};
        float *yr, *yf;
        sqz_shape sr, sf;
        int rc_ref =
            run_impl(is_max ? &sqz_ref_maxpool : &sqz_ref_avgpool, &t, &in, 1, data, 1, &yr, &sr);
        int threads = 1 + (int)(rep % 3);
        int rc = run_impl(is_max ? &sqz_fast_maxpool : &sqz_fast_avgpool, &t, &in, 1, data, threads,
                          &yf, &sf);
        assert_int_equal(rc, rc_ref);
        if (rc == 0) {
            assert_int_equal(sf.ndim, sr.ndim);
            for (int d = 0; d < 4; d++) assert_int_equal(sf.dims[d], sr.dims[d]);
            compare(yf, yr, sqz_shape_numel(&sr), 1e-5f);
        }
        free(yr);
        free(yf);
        free(x);
    }
}

/* MaxPool 3x3 stride 2 and 2x2 stride 2 unpadded (the x86 AVX2 plane kernels
 * when the CPU has them):
 * widths from 1 to 80 cover the scalar left edge, full 8-output blocks and
 * the masked right end; pads 0..2, ceil_mode, +-inf, and NaN (first, last or
 * inner column, which sends the plane back to the generic code); exact. */
/* One ISA level (x86: the AVX-512, AVX2 and generic plane kernels in turn). */
static void maxpool3s2_random(uint32_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int rep = 0; rep < 200; rep++) {
        int64_t H = 1 + tu_rng_u32(&r) % 40, W = 1 + tu_rng_u32(&r) % 80;
        if (rep % 5 == 3) { /* SqueezeNet-like small planes: 13..33 wide */
            H = 13 + tu_rng_u32(&r) % 21;
            W = 13 + tu_rng_u32(&r) % 21;
        }
        int64_t ks[2] = {3, 3}, st[2] = {2, 2}, ceil = tu_rng_u32(&r) % 2;
        int64_t pads[4];
        for (int i = 0; i < 4; i++) pads[i] = tu_rng_u32(&r) % 3;
        if (rep % 3 == 2) { /* 2x2 stride 2 unpadded (LeNet): its own plane kernel */
            ks[0] = ks[1] = 2;
            ceil = 0;
            for (int i = 0; i < 4; i++) pads[i] = 0;
        }
        if (H + pads[0] + pads[2] < 3 || W + pads[1] + pads[3] < 3) continue;
        tnode t;
        tn_init(&t, SQZ_OP_MAXPOOL, "n", 1);
        tn_ints(&t, "kernel_shape", 2, ks);
        tn_ints(&t, "strides", 2, st);
        tn_ints(&t, "pads", 4, pads);
        tn_ints(&t, "ceil_mode", 1, &ceil);
        sqz_shape in = {4, {1, 1 + tu_rng_u32(&r) % 3, H, W}};
        int64_t n = sqz_shape_numel(&in);
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, (size_t)n, -3, 3);
        if (rep % 7 == 0) x[tu_rng_u32(&r) % n] = INFINITY;
        if (rep % 9 == 0) x[tu_rng_u32(&r) % n] = -INFINITY;
        if (rep % 4 == 1) {
            int64_t row = tu_rng_u32(&r) % (n / W), col = tu_rng_u32(&r) % W;
            if (rep % 3 == 0) col = 0;
            if (rep % 3 == 1) col = W - 1;
            x[row * W + col] = NAN;
        }
        const float *data[1] = {x};
        float *yr, *yf;
        sqz_shape sr, sf;
        int rc_ref = run_impl(&sqz_ref_maxpool, &t, &in, 1, data, 1, &yr, &sr);
        int rc = run_impl(&sqz_fast_maxpool, &t, &in, 1, data, 1, &yf, &sf);
        assert_int_equal(rc, rc_ref);
        if (rc == 0) {
            for (int d = 0; d < 4; d++) assert_int_equal(sf.dims[d], sr.dims[d]);
            compare(yf, yr, sqz_shape_numel(&sr), 0.0f);
        }
        free(yr);
        free(yf);
        free(x);
    }
}

/* fn(seed + i) at each x86 ISA level in turn (AVX-512, AVX2, scalar: the
 * pooling plane kernels a CPU cap selects), levels the CPU lacks skipped
 * with a message; other architectures: fn(seed) once. */
static void each_isa_level(void (*fn)(uint32_t), uint32_t seed, const char *what) {
#if defined(__x86_64__)
    const int caps[3] = {SQZ_ISA_AVX512, SQZ_ISA_AVX2, SQZ_ISA_SCALAR};
    for (int i = 0; i < 3; i++) {
        if (caps[i] > sqz_cpu_isa_hw()) {
            print_message("%s: ISA level %d not on this CPU, skipped\n", what, caps[i]);
            continue;
        }
        sqz_cpu_set_isa_cap(caps[i]);
        fn(seed + (uint32_t)i);
    }
    sqz_cpu_set_isa_cap(-1);
#else
    (void)what;
    fn(seed);
#endif
}

static void test_maxpool3s2_random(void **state) {
    (void)state;
    each_isa_level(maxpool3s2_random, 29, "maxpool 3x3/2");
}

/* large enough to take the threaded path */
static void test_pool_threads_large(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 3);
    int64_t ks[2] = {3, 3}, st[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
    tnode t;
    tn_init(&t, SQZ_OP_MAXPOOL, "n", 1);
    tn_ints(&t, "kernel_shape", 2, ks);
    tn_ints(&t, "strides", 2, st);
    tn_ints(&t, "pads", 4, pads);
    sqz_shape in = {4, {1, 13, 57, 61}};
    int64_t n = sqz_shape_numel(&in);
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    tu_fill_uniform(&r, x, (size_t)n, -3, 3);
    const float *data[1] = {x};
    float *yr, *yf;
    sqz_shape sr, sf;
    assert_int_equal(run_impl(&sqz_ref_maxpool, &t, &in, 1, data, 1, &yr, &sr), 0);
    for (int th = 1; th <= 3; th++) {
        assert_int_equal(run_impl(&sqz_fast_maxpool, &t, &in, 1, data, th, &yf, &sf), 0);
        compare(yf, yr, sqz_shape_numel(&sr), 0.0f);
        free(yf);
    }
    free(yr);
    free(x);
}

/* Above the split size pooling runs in bands of output rows, one per thread
 * (pool_fast.c): the 3x3/2 plane kernels on each band's input rows (top
 * padding only in the first), the 2x2/2 kernel and the generic rows; a NaN in
 * a later band sends that band alone back to the generic code. Exact against
 * the reference at 2..4 threads, on every x86 ISA level. */
static void pool_rows_split(uint32_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int rep = 0; rep < 24; rep++) {
        int kind = rep % 4; /* 0, 1: max 3x3/2; 2: max 2x2/2; 3: avg 3x3/1 */
        int64_t k = kind == 2 ? 2 : 3, s = kind == 3 ? 1 : 2;
        /* row bands from 16 output rows a thread (pool_fast.c), the plane
         * split below: both */
        int64_t H = rep % 3 == 0 ? 9 + tu_rng_u32(&r) % 40 : 70 + tu_rng_u32(&r) % 70;
        int64_t W = 9 + tu_rng_u32(&r) % 60;
        int64_t C = 40000 / (H * W) + 1 + tu_rng_u32(&r) % 3; /* >= 32768 elements */
        int64_t ks[2] = {k, k}, st[2] = {s, s}, pads[4] = {0, 0, 0, 0}, ceil = 0;
        if (kind != 2) {
            for (int i = 0; i < 4; i++) pads[i] = tu_rng_u32(&r) % 3;
            ceil = tu_rng_u32(&r) % 2;
        }
        tnode t;
        tn_init(&t, kind == 3 ? SQZ_OP_AVGPOOL : SQZ_OP_MAXPOOL, "n", 1);
        tn_ints(&t, "kernel_shape", 2, ks);
        tn_ints(&t, "strides", 2, st);
        tn_ints(&t, "pads", 4, pads);
        tn_ints(&t, "ceil_mode", 1, &ceil);
        if (kind == 3) {
            int64_t cip = rep % 8 == 3;
            tn_ints(&t, "count_include_pad", 1, &cip);
        }
        sqz_shape in = {4, {1, C, H, W}};
        int64_t n = sqz_shape_numel(&in);
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, (size_t)n, -3, 3);
        if (kind == 1) x[(tu_rng_u32(&r) % C) * H * W + (H - 1) * W + tu_rng_u32(&r) % W] = NAN;
        const float *data[1] = {x};
        float *yr, *yf;
        sqz_shape sr, sf;
        assert_int_equal(run_impl(kind == 3 ? &sqz_ref_avgpool : &sqz_ref_maxpool, &t, &in, 1, data,
                                  1, &yr, &sr),
                         0);
        for (int th = 2; th <= 4; th++) {
            assert_int_equal(run_impl(kind == 3 ? &sqz_fast_avgpool : &sqz_fast_maxpool, &t, &in, 1,
                                      data, th, &yf, &sf),
                             0);
            for (int d = 0; d < 4; d++) assert_int_equal(sf.dims[d], sr.dims[d]);
            compare(yf, yr, sqz_shape_numel(&sr), kind == 3 ? 1e-6f : 0.0f);
            free(yf);
        }
        free(yr);
        free(x);
    }
}

static void test_pool_rows_split(void **state) {
    (void)state;
    each_isa_level(pool_rows_split, 41, "pool row split");
}

static void test_pool_declines(void **state) {
    (void)state;
    int64_t ks[2] = {2, 2}, dil[2] = {2, 1};
    tnode t;
    tn_init(&t, SQZ_OP_MAXPOOL, "n", 1);
    tn_ints(&t, "kernel_shape", 2, ks);
    tn_ints(&t, "dilations", 2, dil);
    sqz_shape in = {4, {1, 2, 6, 6}};
    float x[72] = {0};
    const float *data[1] = {x};
    float *y;
    sqz_shape ys;
    assert_int_equal(run_impl(&sqz_fast_maxpool, &t, &in, 1, data, 1, &y, &ys), 1);
    /* 1-D pooling (rank 3) goes to the reference too */
    int64_t k1 = 2;
    tnode t1;
    tn_init(&t1, SQZ_OP_MAXPOOL, "n", 1);
    tn_ints(&t1, "kernel_shape", 1, &k1);
    sqz_shape in1 = {3, {1, 2, 6}};
    assert_int_equal(run_impl(&sqz_fast_maxpool, &t1, &in1, 1, data, 1, &y, &ys), 1);
}

static void test_gap_random(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int rep = 0; rep < 60; rep++) {
        sqz_shape in = {4,
                        {1 + tu_rng_u32(&r) % 2, 1 + tu_rng_u32(&r) % 40, 1 + tu_rng_u32(&r) % 60,
                         1 + tu_rng_u32(&r) % 60}};
        if (rep % 7 == 0) in.ndim = 3;
        int64_t n = sqz_shape_numel(&in);
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, (size_t)n, -1, 3);
        tnode t;
        tn_init(&t, SQZ_OP_GLOBAL_AVGPOOL, "n", 1);
        const float *data[1] = {x};
        float *yr, *yf;
        sqz_shape sr, sf;
        assert_int_equal(run_impl(&sqz_ref_global_avgpool, &t, &in, 1, data, 1, &yr, &sr), 0);
        assert_int_equal(
            run_impl(&sqz_fast_global_avgpool, &t, &in, 1, data, 1 + rep % 2, &yf, &sf), 0);
        compare(yf, yr, sqz_shape_numel(&sr), 1e-5f);
        free(yr);
        free(yf);
        free(x);
    }
}

/* ReduceMean: trailing axes (positive or negative, keepdims 0 / 1) match the
 * reference; other axis sets and absent axes are declined (left to it). */
static void test_reduce_mean_random(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 17);
    int accepted = 0, declined = 0;
    for (int rep = 0; rep < 80; rep++) {
        sqz_shape in = {4,
                        {1 + tu_rng_u32(&r) % 2, 1 + tu_rng_u32(&r) % 30, 1 + tu_rng_u32(&r) % 40,
                         1 + tu_rng_u32(&r) % 40}};
        if (rep % 9 == 0) in.dims[1] = 600; /* > 65536 elements: threaded split */
        int64_t axes[4];
        int na;
        switch (rep % 5) {
        case 0:
            axes[0] = 2;
            axes[1] = 3;
            na = 2;
            break;
        case 1:
            axes[0] = -1;
            axes[1] = -2;
            na = 2;
            break;
        case 2:
            axes[0] = 3;
            na = 1;
            break;
        case 3:
            axes[0] = 1;
            axes[1] = 2;
            axes[2] = 3;
            na = 3;
            break;
        default:
            axes[0] = 1;
            axes[1] = 3;
            na = 2;
            break; /* not trailing: declined */
        }
        int64_t keep = rep % 2;
        tnode t;
        tn_init(&t, SQZ_OP_REDUCE_MEAN, "n", 1);
        tn_ints(&t, "axes", na, axes);
        tn_ints(&t, "keepdims", 1, &keep);
        int64_t n = sqz_shape_numel(&in);
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, (size_t)n, -1, 3);
        const float *data[1] = {x};
        float *yr, *yf;
        sqz_shape sr, sf;
        assert_int_equal(run_impl(&sqz_ref_reduce_mean, &t, &in, 1, data, 1, &yr, &sr), 0);
        int rc = run_impl(&sqz_fast_reduce_mean, &t, &in, 1, data, 1 + rep % 2, &yf, &sf);
        if (rep % 5 == 4) {
            assert_int_equal(rc, 1);
            declined++;
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(sf.ndim, sr.ndim);
            for (int d = 0; d < sr.ndim; d++) assert_int_equal(sf.dims[d], sr.dims[d]);
            compare(yf, yr, sqz_shape_numel(&sr), 1e-5f);
            free(yf);
            accepted++;
        }
        free(yr);
        free(x);
    }
    assert_true(accepted > 0 && declined > 0);
}

/* A copy op (Transpose / Slice) on random x of shape in: the fast impl at
 * `threads` must give the reference's output shape and bytes; returns the
 * number of output elements. */
static int64_t same_copy(const sqz_op_impl *ref, const sqz_op_impl *fast, const tnode *t,
                         const sqz_shape *in, tu_rng *r, int threads) {
    int64_t n = sqz_shape_numel(in);
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    assert_non_null(x);
    tu_fill_uniform(r, x, (size_t)n, -3, 3);
    const float *data[1] = {x};
    float *yr, *yf;
    sqz_shape sr, sf;
    assert_int_equal(run_impl(ref, t, in, 1, data, 1, &yr, &sr), 0);
    assert_int_equal(run_impl(fast, t, in, 1, data, threads, &yf, &sf), 0);
    assert_int_equal(sf.ndim, sr.ndim);
    for (int d = 0; d < sr.ndim; d++) assert_int_equal(sf.dims[d], sr.dims[d]);
    int64_t m = sqz_shape_numel(&sr);
    if (m > 0) assert_memory_equal(yf, yr, (size_t)m * sizeof(float));
    free(yf);
    free(yr);
    free(x);
    return m;
}

/* Transpose: random ranks 1-6 (size-1 dims, the channel shuffle's rank-5
 * perm), thread counts 1-2, sizes above the threaded-split threshold;
 * output identical to the reference's. */
static void test_transpose_random(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 23);
    for (int rep = 0; rep < 120; rep++) {
        sqz_shape in;
        in.ndim = 1 + (int)(tu_rng_u32(&r) % 6);
        for (int d = 0; d < in.ndim; d++) in.dims[d] = 1 + tu_rng_u32(&r) % (in.ndim > 3 ? 7 : 40);
        int64_t perm[SQZ_MAX_DIMS];
        for (int d = 0; d < in.ndim; d++) perm[d] = d;
        if (rep % 4 == 0 && in.ndim == 5) { /* channel shuffle: swap dims 1 and 2 */
            perm[1] = 2;
            perm[2] = 1;
            in.dims[3] = 28;
            in.dims[4] = 28 + rep % 3;
        } else {
            for (int d = in.ndim - 1; d > 0; d--) { /* Fisher-Yates */
                int k = (int)(tu_rng_u32(&r) % (uint32_t)(d + 1));
                int64_t v = perm[d];
                perm[d] = perm[k];
                perm[k] = v;
            }
        }
        tnode t;
        tn_init(&t, SQZ_OP_TRANSPOSE, "n", 1);
        if (rep % 7 != 3) tn_ints(&t, "perm", in.ndim, perm); /* else: the default reversal */
        assert_int_equal(
            same_copy(&sqz_ref_transpose, &sqz_fast_transpose, &t, &in, &r, 1 + rep % 2),
            sqz_shape_numel(&in));
    }
}

/* Slice: random ranks 1-4, axes subsets, negative starts / ends, steps
 * (incl. negative), empty results, thread counts 1-2; identical output. */
static void test_slice_random(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 29);
    int empty = 0;
    for (int rep = 0; rep < 160; rep++) {
        sqz_shape in;
        in.ndim = 1 + (int)(tu_rng_u32(&r) % 4);
        for (int d = 0; d < in.ndim; d++) in.dims[d] = 1 + tu_rng_u32(&r) % 24;
        if (rep % 5 == 0 && in.ndim == 4) { /* big channel slice: the threaded copy */
            in.dims[0] = 1;
            in.dims[1] = 64 + rep % 9;
            in.dims[2] = in.dims[3] = 28;
        }
        int ns = 1 + (int)(tu_rng_u32(&r) % (uint32_t)in.ndim);
        int64_t starts[SQZ_MAX_DIMS], ends[SQZ_MAX_DIMS], axes[SQZ_MAX_DIMS], steps[SQZ_MAX_DIMS];
        int used[SQZ_MAX_DIMS] = {0};
        for (int i = 0; i < ns; i++) {
            int a;
            do a = (int)(tu_rng_u32(&r) % (uint32_t)in.ndim);
            while (used[a]);
            used[a] = 1;
            int64_t dim = in.dims[a];
            axes[i] = rep % 3 == 0 ? a - in.ndim : a; /* negative axes too */
            starts[i] = (int64_t)(tu_rng_u32(&r) % (uint32_t)(dim + 2)) - 1;
            ends[i] = (int64_t)(tu_rng_u32(&r) % (uint32_t)(dim + 3)) - 1;
            if (rep % 4 == 1) ends[i] = INT64_MAX; /* "to the end" */
            steps[i] = rep % 6 == 5 ? -1 - (int64_t)(tu_rng_u32(&r) % 2)
                                    : 1 + (int64_t)(rep % 7 == 0 ? tu_rng_u32(&r) % 3 : 0);
        }
        tnode t;
        tn_init(&t, SQZ_OP_SLICE, "n", 1);
        tn_ints(&t, "starts", ns, starts);
        tn_ints(&t, "ends", ns, ends);
        tn_ints(&t, "axes", ns, axes);
        tn_ints(&t, "steps", ns, steps);
        empty += same_copy(&sqz_ref_slice, &sqz_fast_slice, &t, &in, &r, 1 + rep % 2) == 0;
    }
    assert_true(empty > 0); /* the empty-result path ran */
}

/* Broadcast patterns: same shape, per-channel (either side), scalar, row
 * vector, outer broadcast, plus random shapes. */
static void test_binary_random(void **state) {
    (void)state;
    static const int ops[4] = {SQZ_OP_ADD, SQZ_OP_SUB, SQZ_OP_MUL, SQZ_OP_DIV};
    const sqz_op_impl *fast[4] = {&sqz_fast_add, &sqz_fast_sub, &sqz_fast_mul, &sqz_fast_div};
    const sqz_op_impl *ref[4] = {&sqz_ref_add, &sqz_ref_sub, &sqz_ref_mul, &sqz_ref_div};
    tu_rng r;
    tu_rng_seed(&r, 9);
    int accepted = 0;
    for (int rep = 0; rep < 400; rep++) {
        int k = rep % 4;
        sqz_shape o = {4,
                       {1 + tu_rng_u32(&r) % 2, 1 + tu_rng_u32(&r) % 9, 1 + tu_rng_u32(&r) % 13,
                        1 + tu_rng_u32(&r) % 17}};
        if (rep % 50 == 0) o.dims[1] = 300; /* > 65536 elements: threaded split */
        sqz_shape a = o, b = o;
        switch ((rep / 4) % 6) {
        case 0:
            break;
        case 1:
            b.dims[0] = 1;
            b.dims[2] = b.dims[3] = 1; /* per channel */
            break;
        case 2:
            a.dims[0] = 1;
            a.dims[2] = a.dims[3] = 1;
            break;
        case 3:
            b.ndim = 0; /* scalar */
            break;
        case 4:
            b.ndim = 1; /* row vector over W */
            b.dims[0] = o.dims[3];
            break;
        default:
            for (int d = 0; d < 4; d++)
                if (tu_rng_u32(&r) % 2)
                    a.dims[d] = 1;
                else if (tu_rng_u32(&r) % 2)
                    b.dims[d] = 1;
        }
        sqz_shape in[2] = {a, b};
        int64_t na = sqz_shape_numel(&a), nb = sqz_shape_numel(&b);
        float *xa = malloc((size_t)na * sizeof *xa), *xb = malloc((size_t)nb * sizeof *xb);
        assert_non_null(xa);
        assert_non_null(xb);
        tu_fill_uniform(&r, xa, (size_t)na, -2, 2);
        tu_fill_uniform(&r, xb, (size_t)nb, 0.5f, 2);
        tnode t;
        tn_init(&t, ops[k], "n", 2);
        const float *data[2] = {xa, xb};
        float *yr, *yf;
        sqz_shape sr, sf;
        assert_int_equal(run_impl(ref[k], &t, in, 2, data, 1, &yr, &sr), 0);
        int rc = run_impl(fast[k], &t, in, 2, data, 1 + rep % 3, &yf, &sf);
        assert_true(rc == 0 || rc == 1);
        if (rc == 0) {
            accepted++;
            assert_int_equal(sf.ndim, sr.ndim);
            compare(yf, yr, sqz_shape_numel(&sr), 0.0f); /* same single op: exact */
        }
        free(yr);
        free(yf);
        free(xa);
        free(xb);
    }
    assert_true(accepted >= 300); /* the patterns above are the covered ones */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_random),       cmocka_unit_test(test_maxpool3s2_random),
        cmocka_unit_test(test_pool_threads_large), cmocka_unit_test(test_pool_rows_split),
        cmocka_unit_test(test_pool_declines),      cmocka_unit_test(test_gap_random),
        cmocka_unit_test(test_reduce_mean_random), cmocka_unit_test(test_binary_random),
        cmocka_unit_test(test_transpose_random),   cmocka_unit_test(test_slice_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
