/* test_prune_sparse.c - the sparse (CSR) kernels for pruned 1x1 Conv and
 * Gemm: every ISA row kernel against its scalar twin on random shapes (odd
 * sizes, column tails, empty rows, all-zero and dense rows), the ops against
 * the reference Conv / Gemm (bias, alpha / beta, transB, fused activation),
 * prepare() declining the layers it does not cover or that are too dense, and
 * a whole session picking the sparse path against the reference run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparse.h"
#include "sqz/ops.h"
#include "testutil.h"
#if defined(__x86_64__) || defined(_M_X64)
#include "cpu.h"
#endif

static void random_sparse(tu_rng *r, float *w, size_t n, float density) {
    for (size_t i = 0; i < n; i++) {
        float v = tu_rng_uniform(r, -1, 1);
        w[i] = tu_rng_uniform(r, 0, 1) < density ? v : 0.0f;
    }
}

static void test_csr_build(void **state) {
    (void)state;
    /* W = [[0 2 0] [0 0 0] [3 0 -1]] stored column-major (rs 1, cs 3) */
    const float wcm[9] = {0, 0, 3, 2, 0, 0, 0, 0, -1};
    sqz_csr m;
    assert_int_equal(sqz_csr_build(&m, wcm, 3, 3, 1, 3, 2.0f), 0);
    assert_int_equal(m.nnz, 3);
    const int32_t rp[4] = {0, 1, 1, 3}, col[3] = {1, 0, 2};
    const float val[3] = {4, 6, -2};
    assert_memory_equal(m.rowptr, rp, sizeof rp);
    assert_memory_equal(m.col, col, sizeof col);
    assert_memory_equal(m.val, val, sizeof val);
    sqz_csr_free(&m);
    assert_int_equal(sqz_csr_build(&m, wcm, 0, 3, 3, 1, 1.0f), -1);
}

typedef struct isa {
    const char *name;
    sqz_spmm_fn mm;
    sqz_spmv_fn mv;
} isa;

static int isas(isa *out) {
    int n = 0;
    (void)out; /* no ISA sparse kernels on other architectures */
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx2_fma()) out[n++] = (isa){"avx2", sqz_spmm_avx2, sqz_spmv_avx2};
    if (sqz_cpu_has_avx512()) out[n++] = (isa){"avx512", sqz_spmm_avx512, sqz_spmv_avx512};
#endif
    return n;
}

static void test_kernels_vs_twin(void **state) {
    (void)state;
    isa is[4];
    int ni = isas(is);
    if (ni == 0) {
        print_message("no ISA sparse kernel on this CPU: scalar twin only\n");
        skip();
    }
    static const int64_t Ps[] = {1,  2,  7,  8,  9,  15, 16, 17,  31,
                                 32, 33, 47, 49, 63, 64, 65, 100, 129};
    static const float dens[] = {0.0f, 0.1f, 0.5f, 1.0f};
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int trial = 0; trial < 60; trial++) {
        int64_t rows = 1 + tu_rng_u32(&r) % 37, cols = 1 + tu_rng_u32(&r) % 70;
        int64_t P = Ps[tu_rng_u32(&r) % (sizeof Ps / sizeof Ps[0])];
        float d = dens[trial % 4];
        float *w = malloc((size_t)(rows * cols) * sizeof *w);
        float *X = malloc((size_t)(cols * P) * sizeof *X), *bias = malloc((size_t)rows * 4);
        float *Y0 = malloc((size_t)(rows * P) * sizeof *Y0), *Y1 = malloc((size_t)(rows * P) * 4);
        assert_true(w && X && bias && Y0 && Y1);
        random_sparse(&r, w, (size_t)(rows * cols), d);
        tu_fill_uniform(&r, X, (size_t)(cols * P), -2, 2);
        tu_fill_uniform(&r, bias, (size_t)rows, -1, 1);
        sqz_csr m;
        assert_int_equal(sqz_csr_build(&m, w, rows, cols, cols, 1, 1.0f), 0);
        /* a row range that is not the whole matrix, then everything */
        int64_t r0 = rows > 2 ? 1 : 0, r1 = rows > 3 ? rows - 1 : rows;
        for (int k = 0; k < ni; k++) {
            for (int full = 0; full < 2; full++) {
                int64_t a = full ? 0 : r0, b = full ? rows : r1;
                const float *bb = trial & 1 ? bias : NULL;
                memset(Y0, 0, (size_t)(rows * P) * 4);
                memset(Y1, 0, (size_t)(rows * P) * 4);
                sqz_spmm_ref(&m, a, b, X, P, bb, Y0);
                is[k].mm(&m, a, b, X, P, bb, Y1);
                double dmax = tu_max_abs_diff(Y0, Y1, (size_t)(rows * P));
                if (dmax > 1e-4)
                    print_error("%s spmm rows %lld cols %lld P %lld: diff %g\n", is[k].name,
                                (long long)rows, (long long)cols, (long long)P, dmax);
                assert_true(dmax <= 1e-4);
                /* spmv on the first column of X laid out as a vector */
                sqz_spmv_ref(&m, a, b, X, bb, Y0);
                is[k].mv(&m, a, b, X, bb, Y1);
                dmax = tu_max_abs_diff(Y0 + a, Y1 + a, (size_t)(b - a));
                assert_true(dmax <= 1e-4);
            }
        }
        sqz_csr_free(&m);
        free(w);
        free(X);
        free(bias);
        free(Y0);
        free(Y1);
    }
}

/* An op ctx for a Conv (x [N, C, H, W], w [M, C, kh, kw]) or Gemm. */
typedef struct octx {
    sqz_node node;
    sqz_attr attrs[8];
    int64_t iv[8][4];
    float fv[8];
    int na;
    sqz_shape in_shape[3], out_shape[1];
    const float *in_data[3];
    float *out[1];
    sqz_op_ctx c;
    char err[256];
} octx;

static void attr_i(octx *o, const char *name, int n, const int64_t *v) {
    memcpy(o->iv[o->na], v, (size_t)n * sizeof *v);
    o->attrs[o->na] = (sqz_attr){
        name, n == 1 ? SQZ_ATTR_INT : SQZ_ATTR_INTS, (uint32_t)n, o->iv[o->na], NULL, NULL};
    o->na++;
}
static void attr_f(octx *o, const char *name, float v) {
    o->fv[o->na] = v;
    o->attrs[o->na] = (sqz_attr){name, SQZ_ATTR_FLOAT, 1, NULL, &o->fv[o->na], NULL};
    o->na++;
}

static void ctx_init(octx *o, int op, int n_in) {
    static const int32_t ids[3] = {0, 1, 2};
    o->node = (sqz_node){(uint16_t)op, "t", (uint32_t)n_in, 1, (uint32_t)o->na, ids, ids, o->attrs};
    memset(&o->c, 0, sizeof o->c);
    o->c.node = &o->node;
    o->c.n_in = (uint32_t)n_in;
    o->c.n_out = 1;
    o->c.in_shape = o->in_shape;
    o->c.in_data = o->in_data;
    o->c.out_shape = o->out_shape;
    o->c.out_data = o->out;
    o->c.num_threads = 1;
    o->c.err = o->err;
    o->c.err_len = sizeof o->err;
}

/* Run impl on o (prepare with constant weights, then run); returns prepare's code. */
static int run_impl(octx *o, const sqz_op_impl *impl, const float *x, float *y) {
    const float *saved = o->in_data[0];
    o->in_data[0] = NULL; /* only constants are known at prepare */
    o->c.params = NULL;
    o->c.scratch_bytes = 0;
    int rc = impl->prepare(&o->c);
    o->in_data[0] = saved ? saved : x;
    if (rc != 0) {
        if (o->c.params && impl->release) impl->release(o->c.params);
        return rc;
    }
    void *scratch =
        o->c.scratch_bytes ? aligned_alloc(64, (o->c.scratch_bytes + 63) / 64 * 64) : NULL;
    o->c.scratch = scratch;
    o->in_data[0] = x;
    o->out[0] = y;
    impl->run(&o->c);
    if (impl->release && o->c.params) impl->release(o->c.params);
    free(scratch);
    return 0;
}

static void test_conv_op(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    static const int64_t shapes[][5] = {
        {1, 13, 7, 5, 9}, {2, 32, 14, 14, 24}, {1, 3, 1, 1, 70}, {1, 64, 7, 7, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3],
                M = shapes[s][4];
        float *x = malloc((size_t)(N * C * H * W) * 4), *w = malloc((size_t)(M * C) * 4),
              *b = malloc((size_t)M * 4), *y0 = malloc((size_t)(N * M * H * W) * 4),
              *y1 = malloc((size_t)(N * M * H * W) * 4);
        assert_true(x && w && b && y0 && y1);
        tu_fill_uniform(&r, x, (size_t)(N * C * H * W), -1, 1);
        tu_fill_uniform(&r, b, (size_t)M, -1, 1);
        random_sparse(&r, w, (size_t)(M * C), 0.1f);
        for (int act = 0; act <= 2; act++) {
            octx o;
            memset(&o, 0, sizeof o);
            int64_t a = act == 2 ? SQZ_ACT_CLIP : act;
            attr_i(&o, "sqz_act", 1, &a);
            attr_f(&o, "sqz_act_alpha", 0.0f);
            attr_f(&o, "sqz_act_beta", 0.5f);
            ctx_init(&o, SQZ_OP_CONV, 3);
            o.in_shape[0] = (sqz_shape){4, {N, C, H, W}};
            o.in_shape[1] = (sqz_shape){4, {M, C, 1, 1}};
            o.in_shape[2] = (sqz_shape){1, {M}};
            o.in_data[1] = w;
            o.in_data[2] = b;
            assert_int_equal(run_impl(&o, sqz_ref_op(SQZ_OP_CONV), x, y0), 0);
            assert_int_equal(run_impl(&o, &sqz_sparse_conv, x, y1), 0);
            assert_true(tu_max_abs_diff(y0, y1, (size_t)(N * M * H * W)) <= 1e-5);
        }
        /* declines: dense weights, 3x3, stride 2 */
        octx o;
        memset(&o, 0, sizeof o);
        ctx_init(&o, SQZ_OP_CONV, 3);
        o.in_shape[0] = (sqz_shape){4, {N, C, H, W}};
        o.in_shape[1] = (sqz_shape){4, {M, C, 1, 1}};
        o.in_shape[2] = (sqz_shape){1, {M}};
        float *wd = malloc((size_t)(M * C) * 4);
        assert_non_null(wd);
        tu_fill_uniform(&r, wd, (size_t)(M * C), 0.5f, 1.0f);
        o.in_data[1] = wd;
        o.in_data[2] = b;
        assert_int_equal(run_impl(&o, &sqz_sparse_conv, x, y1), 1);
        int64_t two[2] = {2, 2};
        memset(&o, 0, sizeof o);
        attr_i(&o, "strides", 2, two);
        ctx_init(&o, SQZ_OP_CONV, 3);
        o.in_shape[0] = (sqz_shape){4, {N, C, H, W}};
        o.in_shape[1] = (sqz_shape){4, {M, C, 1, 1}};
        o.in_shape[2] = (sqz_shape){1, {M}};
        o.in_data[1] = w;
        o.in_data[2] = b;
        assert_int_equal(run_impl(&o, &sqz_sparse_conv, x, y1), 1);
        free(wd);
        free(x);
        free(w);
        free(b);
        free(y0);
        free(y1);
    }
}

static void test_gemm_op(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 6);
    for (int tb = 0; tb < 2; tb++)
        for (int cshape = 0; cshape < 3; cshape++) {
            int64_t M = 1 + tb, K = 77, N = 33;
            float *a = malloc((size_t)(M * K) * 4), *w = malloc((size_t)(K * N) * 4),
                  *c = malloc((size_t)N * 4), *y0 = malloc((size_t)(M * N) * 4),
                  *y1 = malloc((size_t)(M * N) * 4);
            assert_true(a && w && c && y0 && y1);
            tu_fill_uniform(&r, a, (size_t)(M * K), -1, 1);
            tu_fill_uniform(&r, c, (size_t)N, -1, 1);
            random_sparse(&r, w, (size_t)(K * N), 0.1f);
            octx o;
            memset(&o, 0, sizeof o);
            int64_t t = tb, act = SQZ_ACT_RELU;
            attr_i(&o, "transB", 1, &t);
            attr_f(&o, "alpha", 0.75f);
            attr_f(&o, "beta", 1.5f);
            attr_i(&o, "sqz_act", 1, &act);
            ctx_init(&o, SQZ_OP_GEMM, cshape == 0 ? 2 : 3);
            o.in_shape[0] = (sqz_shape){2, {M, K}};
            o.in_shape[1] = tb ? (sqz_shape){2, {N, K}} : (sqz_shape){2, {K, N}};
            o.in_shape[2] = cshape == 1 ? (sqz_shape){1, {N}} : (sqz_shape){2, {1, 1}};
            o.in_data[1] = w;
            o.in_data[2] = c;
            assert_int_equal(run_impl(&o, sqz_ref_op(SQZ_OP_GEMM), a, y0), 0);
            assert_int_equal(run_impl(&o, &sqz_sparse_gemm, a, y1), 0);
            assert_true(tu_max_abs_diff(y0, y1, (size_t)(M * N)) <= 1e-5);
            free(a);
            free(w);
            free(c);
            free(y0);
            free(y1);
        }
}

/* the sparse ops come before the dense ones in the dispatch order */
static void test_dispatch_order(void **state) {
    (void)state;
    const sqz_op_impl *c[8];
    assert_true(sqz_fast_ops(SQZ_OP_CONV, c, 8) >= 1);
    assert_ptr_equal(c[0], &sqz_sparse_conv);
    assert_true(sqz_fast_ops(SQZ_OP_GEMM, c, 8) >= 1);
    assert_ptr_equal(c[0], &sqz_sparse_gemm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_build),      cmocka_unit_test(test_kernels_vs_twin),
        cmocka_unit_test(test_conv_op),        cmocka_unit_test(test_gemm_op),
        cmocka_unit_test(test_dispatch_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
