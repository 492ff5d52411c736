/* test_rt_sparse.c - the sparse (CSR) 1x1 Conv / Gemm ops against the dense
 * reference ops, at every ISA level this CPU has (scalar twins, AVX2,
 * AVX-512 on x86-64; NEON on aarch64), on random shapes incl. odd sizes,
 * rows shorter than one vector, empty and full weight rows:
 *   int8: byte-identical to the dense int8 reference (sqz_ref_i8_*), so the
 *         same int32 accumulator and requantization (kernels/int8.h);
 *   fp32: within float rounding of the dense reference (sqz_ref_conv/gemm).
 * SQZ_SPARSE=force makes the sparse ops accept every density. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "int8_harness.h"
#include "ref/ref.h"
#include "sparse.h"
#include "testutil.h"
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#define HAVE_CAP 1
#else
#define HAVE_CAP 0
#endif

static int isa_levels(void) {
#if HAVE_CAP
    return sqz_cpu_isa_hw() + 1;
#else
    return 1;
#endif
}
static void set_level(int l) {
#if HAVE_CAP
    sqz_cpu_set_isa_cap(l);
#else
    (void)l;
#endif
}

/* Weight with density d (each entry non-zero with probability d), values in
 * [-127, 127]; row 0 is emptied and the last row filled when rows > 2. */
static void sparse_w_i8(tu_rng *r, int8_t *w, int64_t rows, int64_t cols, float d) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < cols; c++) {
            int v = (int)(tu_rng_u32(r) % 255) - 127;
            if (v == 0) v = 1;
            int keep = tu_rng_uniform(r, 0, 1) < d;
            if (rows > 2 && i == 0) keep = 0;
            if (rows > 2 && i == rows - 1) keep = 1;
            w[i * cols + c] = (int8_t)(keep ? v : 0);
        }
}

typedef struct conv_case {
    int64_t n, c, m, h, w;
} conv_case;

static const conv_case k_conv[] = {
    {1, 1, 1, 1, 1},
    {1, 3, 5, 1, 7},
    {1, 17, 9, 3, 5},
    {2, 8, 4, 4, 4},
    {1, 33, 31, 1, 17},
    {1, 16, 8, 7, 7},
    {1, 5, 7, 4, 8},
    {1, 24, 13, 3, 11},
    {2, 9, 6, 13, 5},
    {1, 40, 24, 14, 14},
    {1, 7, 3, 2, 32},
    {1, 12, 10, 1, 65},
    {1, 6, 4, 9, 9},
    /* above the int8 kernel's one-thread size (nnz x pixels >= 2^19 from 30%
     * density): its rows split over the 2 threads the sparse runs ask for */
    {1, 96, 64, 28, 28},
};
static const float k_dens[] = {0.0f, 0.1f, 0.3f, 0.55f, 1.0f};

static void test_i8_conv(void **state) {
    (void)state;
    setenv("SQZ_SPARSE", "force", 1);
    tu_rng rng;
    tu_rng_seed(&rng, 7);
    int checked = 0;
    for (int lvl = 0; lvl < isa_levels(); lvl++) {
        set_level(lvl);
        for (size_t ci = 0; ci < sizeof k_conv / sizeof k_conv[0]; ci++)
            for (size_t di = 0; di < sizeof k_dens / sizeof k_dens[0]; di++) {
                const conv_case *k = &k_conv[ci];
                int64_t nx = k->n * k->c * k->h * k->w, nw = k->m * k->c;
                int8_t *x = malloc((size_t)nx), *w = malloc((size_t)nw);
                int32_t *b = malloc((size_t)k->m * 4);
                float *ws = malloc((size_t)k->m * sizeof(float));
                int32_t *wz = calloc((size_t)k->m, 4);
                assert_true(x && w && b && ws && wz);
                /* extremes included: -128 and 127 activations */
                for (int64_t i = 0; i < nx; i++)
                    x[i] = (int8_t)((int)(tu_rng_u32(&rng) % 256) - 128);
                sparse_w_i8(&rng, w, k->m, k->c, k_dens[di]);
                for (int64_t i = 0; i < k->m; i++) {
                    b[i] = (int32_t)(tu_rng_u32(&rng) % 20001) - 10000;
                    ws[i] = tu_rng_uniform(&rng, 0.002f, 0.02f);
                }
                int32_t zx = (int32_t)(tu_rng_u32(&rng) % 256) - 128;
                int32_t zy = (int32_t)(tu_rng_u32(&rng) % 61) - 30;
                int relu = (int)(ci + di) % 2;
                void *out[2];
                for (int v = 0; v < 2; v++) {
                    i8t t;
                    i8t_init(&t, SQZ_OP_CONV);
                    if (relu) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
                    i8t_act(&t, 0, i8t_shape(4, k->n, k->c, k->h, k->w), x, 0.05f, zx);
                    i8t_weight(&t, 1, i8t_shape(4, k->m, k->c, (int64_t)1, (int64_t)1), w, ws, wz,
                               (uint32_t)k->m, 0);
                    if (ci % 3 != 1) i8t_bias(&t, 2, i8t_shape(1, k->m), b);
                    i8t_out(&t, SQZ_DT_I8, 0.1f + 0.05f * (float)(ci % 4), zy);
                    t.threads = v ? 2 : 1;
                    int rc = i8t_run(&t, v ? &sqz_sparse_i8_conv : &sqz_ref_i8_conv, &out[v]);
                    if (rc != 0) fail_msg("conv case %zu: prepare %d: %s", ci, rc, t.err);
                }
                size_t ny = (size_t)(k->n * k->m * k->h * k->w);
                if (memcmp(out[0], out[1], ny) != 0)
                    fail_msg("int8 conv case %zu density %.2f level %d: output differs", ci,
                             (double)k_dens[di], lvl);
                checked++;
                free(out[0]);
                free(out[1]);
                free(x);
                free(w);
                free(b);
                free(ws);
                free(wz);
            }
    }
    set_level(-1);
    unsetenv("SQZ_SPARSE");
    assert_true(checked > 0);
}

static void test_i8_gemm(void **state) {
    (void)state;
    setenv("SQZ_SPARSE", "force", 1);
    /* M >= 8: the x86 VBMI kernel's eight rows of A per pass (+ the rest) */
    static const int64_t shapes[][3] = {{1, 1, 1},   {1, 7, 3},    {2, 17, 9},   {1, 33, 40},
                                        {3, 64, 16}, {1, 100, 21}, {1, 300, 10}, {4, 15, 31},
                                        {8, 64, 33}, {9, 130, 17}, {17, 200, 40}};
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    for (int lvl = 0; lvl < isa_levels(); lvl++) {
        set_level(lvl);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (size_t di = 0; di < sizeof k_dens / sizeof k_dens[0]; di++) {
                int64_t M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
                int tb = (int)(si + di) % 2;
                int8_t *a = malloc((size_t)(M * K)), *wn = malloc((size_t)(N * K)),
                       *w = malloc((size_t)(N * K));
                int32_t *b = malloc((size_t)N * 4), *wz = calloc((size_t)N, 4);
                float *ws = malloc((size_t)N * sizeof(float));
                assert_true(a && wn && w && b && wz && ws);
                for (int64_t i = 0; i < M * K; i++)
                    a[i] = (int8_t)((int)(tu_rng_u32(&rng) % 256) - 128);
                sparse_w_i8(&rng, wn, N, K, k_dens[di]); /* [N][K] */
                for (int64_t n = 0; n < N; n++)
                    for (int64_t k = 0; k < K; k++) w[tb ? n * K + k : k * N + n] = wn[n * K + k];
                for (int64_t i = 0; i < N; i++) {
                    b[i] = (int32_t)(tu_rng_u32(&rng) % 20001) - 10000;
                    ws[i] = tu_rng_uniform(&rng, 0.002f, 0.02f);
                }
                int32_t zx = (int32_t)(tu_rng_u32(&rng) % 256) - 128;
                void *out[2];
                for (int v = 0; v < 2; v++) {
                    i8t t;
                    i8t_init(&t, SQZ_OP_GEMM);
                    i8t_int(&t, "transB", tb);
                    if (di % 2) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
                    i8t_act(&t, 0, i8t_shape(2, M, K), a, 0.05f, zx);
                    i8t_weight(&t, 1, tb ? i8t_shape(2, N, K) : i8t_shape(2, K, N), w, ws, wz,
                               (uint32_t)N, tb ? 0 : 1);
                    if (si % 3 != 2) i8t_bias(&t, 2, i8t_shape(1, N), b);
                    i8t_out(&t, SQZ_DT_I8, 0.15f, -7);
                    int rc = i8t_run(&t, v ? &sqz_sparse_i8_gemm : &sqz_ref_i8_gemm, &out[v]);
                    if (rc != 0) fail_msg("gemm case %zu: prepare %d: %s", si, rc, t.err);
                }
                if (memcmp(out[0], out[1], (size_t)(M * N)) != 0)
                    fail_msg("int8 gemm case %zu density %.2f level %d: output differs", si,
                             (double)k_dens[di], lvl);
                free(out[0]);
                free(out[1]);
                free(a);
                free(wn);
                free(w);
                free(b);
                free(wz);
                free(ws);
            }
    }
    set_level(-1);
    unsetenv("SQZ_SPARSE");
}

/* fp32: one node through prepare / run / release (f32 tensors). */
static float *run_f32(int op, const sqz_op_impl *impl, const sqz_shape *shp, const float **data,
                      uint32_t n_in, int transB, int act_turn, sqz_shape *oshape) {
    i8t t;
    i8t_init(&t, op);
    t.threads = 2; /* the sparse ops split large layers (the reference ignores it) */
    if (op == SQZ_OP_GEMM) i8t_int(&t, "transB", transB);
    /* fused ReLU, ReLU6 (Clip), HardSwish (the one applied as a pass) */
    static const int acts[3] = {SQZ_ACT_RELU, SQZ_ACT_CLIP, SQZ_ACT_HARD_SWISH};
    int act = acts[act_turn % 3];
    i8t_int(&t, "sqz_act", act);
    if (act == SQZ_ACT_CLIP) {
        i8t_float(&t, "sqz_act_alpha", -0.25f);
        i8t_float(&t, "sqz_act_beta", 0.5f);
    }
    for (uint32_t i = 0; i < n_in; i++) {
        i8t_f32(&t, i, shp[i], data[i]);
        t.in_const[i] = i > 0;
    }
    i8t_out(&t, SQZ_DT_F32, 1.0f, 0);
    void *out;
    int rc = i8t_run(&t, impl, &out);
    if (rc != 0)
        fail_msg("fp32 %s: prepare %d: %s", op == SQZ_OP_CONV ? "conv" : "gemm", rc, t.err);
    *oshape = t.out_shape[0];
    return out;
}

static void check_close(const float *a, const float *b, size_t n, const char *what, int lvl) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(a[i])))
            fail_msg("%s level %d: [%zu] %g vs %g", what, lvl, i, (double)a[i], (double)b[i]);
}

static void test_f32(void **state) {
    (void)state;
    setenv("SQZ_SPARSE", "force", 1);
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    for (int lvl = 0; lvl < isa_levels(); lvl++) {
        set_level(lvl);
        for (size_t ci = 0; ci < sizeof k_conv / sizeof k_conv[0]; ci++) {
            const conv_case *k = &k_conv[ci];
            int64_t nx = k->n * k->c * k->h * k->w, nw = k->m * k->c;
            float *x = malloc((size_t)nx * 4), *w = malloc((size_t)nw * 4),
                  *b = malloc((size_t)k->m * 4);
            assert_true(x && w && b);
            tu_fill_uniform(&rng, x, (size_t)nx, -1, 1);
            tu_fill_uniform(&rng, b, (size_t)k->m, -1, 1);
            for (int64_t i = 0; i < nw; i++)
                w[i] = tu_rng_uniform(&rng, 0, 1) < k_dens[ci % 5] ? tu_rng_uniform(&rng, -1, 1)
                                                                   : 0.0f;
            sqz_shape s[3] = {i8t_shape(4, k->n, k->c, k->h, k->w),
                              i8t_shape(4, k->m, k->c, (int64_t)1, (int64_t)1), i8t_shape(1, k->m)};
            const float *d[3] = {x, w, b};
            sqz_shape o0, o1;
            float *y0 = run_f32(SQZ_OP_CONV, &sqz_ref_conv, s, d, 3, 0, (int)ci, &o0);
            float *y1 = run_f32(SQZ_OP_CONV, &sqz_sparse_conv, s, d, 3, 0, (int)ci, &o1);
            check_close(y0, y1, (size_t)sqz_shape_numel(&o0), "fp32 conv", lvl);
            free(y0);
            free(y1);
            free(x);
            free(w);
            free(b);
        }
        /* M = 1: x86 AVX-512 ELL kernel (32-column segments, 16-row blocks);
         * M > 1 runs over A^T: M = 8 (x86 full-vector path), <= 16, > 16;
         * the last two large enough (nnz x M > 65536 at density >= 0.55) to
         * split their rows over 2 threads */
        static const int64_t g[][3] = {{1, 1, 1},   {1, 7, 3},     {1, 300, 37}, {1, 33, 16},
                                       {1, 64, 17}, {2, 33, 17},   {1, 100, 21}, {3, 40, 9},
                                       {8, 50, 13}, {8, 1, 1},     {16, 9, 70},  {5, 64, 33},
                                       {20, 31, 7}, {8, 300, 100}, {1, 700, 200}};
        for (size_t si = 0; si < sizeof g / sizeof g[0]; si++) {
            int64_t M = g[si][0], K = g[si][1], N = g[si][2];
            float *a = malloc((size_t)(M * K) * 4), *w = malloc((size_t)(N * K) * 4),
                  *b = malloc((size_t)N * 4);
            assert_true(a && w && b);
            tu_fill_uniform(&rng, a, (size_t)(M * K), -1, 1);
            tu_fill_uniform(&rng, b, (size_t)N, -1, 1);
            for (int64_t i = 0; i < N * K; i++)
                w[i] = tu_rng_uniform(&rng, 0, 1) < k_dens[(si + lvl) % 5]
                           ? tu_rng_uniform(&rng, -1, 1)
                           : 0.0f;
            int tb = (int)si % 2;
            sqz_shape s[3] = {i8t_shape(2, M, K), tb ? i8t_shape(2, N, K) : i8t_shape(2, K, N),
                              i8t_shape(1, N)};
            const float *d[3] = {a, w, b};
            sqz_shape o0, o1;
            float *y0 = run_f32(SQZ_OP_GEMM, &sqz_ref_gemm, s, d, 3, tb, (int)si, &o0);
            float *y1 = run_f32(SQZ_OP_GEMM, &sqz_sparse_gemm, s, d, 3, tb, (int)si, &o1);
            check_close(y0, y1, (size_t)(M * N), "fp32 gemm", lvl);
            free(y0);
            free(y1);
            free(a);
            free(w);
            free(b);
        }
    }
    set_level(-1);
    unsetenv("SQZ_SPARSE");
}

/* The fp32 Gemm row kernels against sqz_spmv_ref on CSRs of random shapes
 * (columns past one 32-column segment, rows past one 16-row block), whole
 * and inside row ranges (rows outside untouched), with and without bias and
 * clamp; the ELL copy holds every non-zero exactly once. */
static void test_f32_spmv_kernels(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 44);
    static const int64_t shp[][2] = {{1, 1},  {5, 3},    {16, 32},   {17, 33},
                                     {40, 7}, {33, 100}, {100, 300}, {3, 65}};
    int runs = 0;
    for (size_t si = 0; si < sizeof shp / sizeof shp[0]; si++)
        for (int di = 0; di < 5; di++) {
            int64_t R = shp[si][0], C = shp[si][1];
            float *w = malloc((size_t)(R * C) * 4), *x = malloc((size_t)C * 4),
                  *b = malloc((size_t)R * 4), *y0 = malloc((size_t)R * 4),
                  *y1 = malloc((size_t)R * 4);
            assert_true(w && x && b && y0 && y1);
            for (int64_t i = 0; i < R * C; i++)
                w[i] = tu_rng_uniform(&rng, 0, 1) < k_dens[di] ? tu_rng_uniform(&rng, -1, 1) : 0.0f;
            if (R > 2) /* an empty row and a full one */
                for (int64_t c = 0; c < C; c++) {
                    w[c] = 0.0f;
                    w[(R - 1) * C + c] = 1.0f - 0.01f * (float)c;
                }
            tu_fill_uniform(&rng, x, (size_t)C, -1, 1);
            tu_fill_uniform(&rng, b, (size_t)R, -1, 1);
            sqz_csr m;
            assert_int_equal(sqz_csr_build(&m, w, R, C, C, 1, 1.0f), 0);
            m.clamp = di % 2;
            m.lo = -0.3f;
            m.hi = 0.4f;
            assert_int_equal(sqz_csr_build_ell(&m), 0);
            int64_t real = 0; /* ELL entries with a weight: the non-zeros */
            for (int64_t i = 0; i < (int64_t)m.ell_step[(R + 15) / 16 * m.nseg] * 16; i++)
                real += m.ell_w[i] != 0.0f;
            assert_int_equal(real, m.nnz);
            const float *bias = si % 2 ? b : NULL;
            sqz_spmv_ref(&m, 0, R, x, bias, y0);
#if defined(__x86_64__) || defined(_M_X64)
            if (sqz_cpu_has_avx512()) {
                for (int pass = 0; pass < 2; pass++) {
                    int64_t r0 = pass ? R / 3 : 0, r1 = pass ? R - R / 4 : R;
                    for (int64_t r = 0; r < R; r++) y1[r] = 1234.5f;
                    sqz_spmv_perm_avx512(&m, r0, r1, x, bias, y1);
                    for (int64_t r = 0; r < R; r++) {
                        if (r < r0 || r >= r1) {
                            if (y1[r] != 1234.5f)
                                fail_msg("spmv_perm: row %lld written", (long long)r);
                        } else if (fabsf(y0[r] - y1[r]) > 1e-4f * (1.0f + fabsf(y0[r]))) {
                            fail_msg("spmv_perm shape %zu row %lld: %g vs %g", si, (long long)r,
                                     (double)y0[r], (double)y1[r]);
                        }
                    }
                }
                runs++;
            }
#endif
            sqz_csr_free(&m);
            free(w);
            free(x);
            free(b);
            free(y0);
            free(y1);
        }
    if (!runs) printf("    (spmv_perm_avx512 skipped: this CPU lacks AVX-512)\n");
}

/* Without SQZ_SPARSE=force, a dense int8 weight is declined (returns 1) and
 * a 90% sparse one taken. */
static void test_i8_decline(void **state) {
    (void)state;
    unsetenv("SQZ_SPARSE");
    tu_rng rng;
    tu_rng_seed(&rng, 3);
    int8_t x[32 * 49], w[16 * 32];
    float ws[16];
    int32_t wz[16] = {0};
    for (size_t i = 0; i < sizeof x; i++) x[i] = (int8_t)(tu_rng_u32(&rng) % 200 - 100);
    for (int i = 0; i < 16; i++) ws[i] = 0.01f;
    for (int pass = 0; pass < 2; pass++) {
        sparse_w_i8(&rng, w, 16, 32, pass ? 0.1f : 0.9f);
        i8t t;
        i8t_init(&t, SQZ_OP_CONV);
        i8t_act(&t, 0, i8t_shape(4, (int64_t)1, (int64_t)32, (int64_t)7, (int64_t)7), x, 0.05f, 0);
        i8t_weight(&t, 1, i8t_shape(4, (int64_t)16, (int64_t)32, (int64_t)1, (int64_t)1), w, ws, wz,
                   16, 0);
        i8t_out(&t, SQZ_DT_I8, 0.1f, 0);
        void *out;
        int rc = i8t_run(&t, &sqz_sparse_i8_conv, &out);
        assert_int_equal(rc, pass ? 0 : 1);
        free(out);
    }
}

/* Every int8 row kernel of this build/CPU against the scalar twins on one
 * CSR (covers the kernels the dispatcher never picks here, e.g. AVX-512
 * without VNNI when VNNI is present). */
typedef struct k8 {
    const char *name;
    int ok;
    sqz_spmm8_fn mm;
    sqz_spmv8_fn mv;
} k8;

static void test_i8_kernels(void **state) {
    (void)state;
    k8 ks[5];
    int nk = 0;
#if defined(__x86_64__) || defined(_M_X64)
    ks[nk++] = (k8){"avx2", sqz_cpu_has_avx2_fma(), sqz_spmm8_avx2, sqz_spmv8_avx2};
    ks[nk++] = (k8){"avx512", sqz_cpu_has_avx512(), sqz_spmm8_avx512, sqz_spmv8_avx512};
    ks[nk++] = (k8){"avx512-vnni", sqz_cpu_has_avx512_vnni(), sqz_spmm8_vnni, sqz_spmv8_avx512};
    ks[nk++] = (k8){"avx512-vbmi (ELL spmv)", sqz_spmv8_vbmi_ok(), sqz_spmm8_vnni, sqz_spmv8_vbmi};
#elif defined(__aarch64__)
    ks[nk++] = (k8){"neon", sqz_cpu_has_neon(), sqz_spmm8_neon, sqz_spmv8_neon};
#endif
    tu_rng rng;
    tu_rng_seed(&rng, 21);
    static const int64_t shp[][3] = {{5, 7, 1},  {9, 33, 15},  {13, 20, 31}, {4, 64, 49},
                                     {7, 3, 65}, {3, 40, 130}, {37, 300, 3}, {20, 129, 2}};
    for (size_t si = 0; si < sizeof shp / sizeof shp[0]; si++) {
        int64_t R = shp[si][0], C = shp[si][1], P = shp[si][2];
        int8_t *w = malloc((size_t)(R * C)), *y0 = malloc((size_t)(R * P)),
               *y1 = malloc((size_t)(R * P));
        const int64_t xs = sqz_spmm8_stride(P);
        int16_t *X = malloc((size_t)(C * xs) * 2);
        int8_t *x8 = malloc((size_t)C);
        void *tmp = NULL;
        int32_t *bias = malloc((size_t)R * 4), *wsum = calloc((size_t)R, 4);
        sqz_rq *rq = malloc((size_t)R * sizeof *rq);
        assert_true(w && y0 && y1 && X && x8 && bias && wsum && rq);
        sparse_w_i8(&rng, w, R, C, 0.25f);
        /* pads hold values too: kernels may load them but must not use them */
        for (int64_t i = 0; i < C * xs; i++) X[i] = (int16_t)((int)(tu_rng_u32(&rng) % 256) - 128);
        for (int64_t i = 0; i < C; i++) x8[i] = (int8_t)X[i * xs];
        for (int64_t i = 0; i < R; i++) {
            bias[i] = (int32_t)(tu_rng_u32(&rng) % 4001) - 2000;
            /* m >= 1/4 (S < 33) takes the kernels' general requantization */
            float mm = i % 3 == 0 ? tu_rng_uniform(&rng, 0.26f, 3.0f)
                                  : tu_rng_uniform(&rng, 0.0005f, 0.05f);
            assert_int_equal(sqz_rq_make(mm, &rq[i]), 0);
        }
        sqz_i8_linear li;
        memset(&li, 0, sizeof li);
        li.op = SQZ_OP_CONV;
        li.n_co = R;
        li.K = C;
        li.zp_x = (int32_t)si * 17 - 50;
        li.zp_y = 3;
        li.lo = -100;
        li.hi = 120;
        li.w = w;
        li.bias = bias;
        li.wsum = wsum;
        li.rq = rq;
        sqz_csr8 m;
        assert_int_equal(sqz_csr8_build(&m, &li), 0);
        assert_int_equal(sqz_csr8_build_ell(&m), 0);
        tmp = aligned_alloc(64, (sqz_spmv8_tmp_bytes(&m) + 63) / 64 * 64);
        assert_non_null(tmp);
        sqz_spmm8_ref(&m, 0, R, X, xs, P, y0);
        int8_t v0[64], v1[64];
        sqz_spmv8_ref(&m, 0, R, x8, tmp, v0);
        for (int i = 0; i < nk; i++) {
            if (!ks[i].ok) {
                printf("    (%s kernels skipped: this CPU lacks them)\n", ks[i].name);
                continue;
            }
            memset(y1, 0x5A, (size_t)(R * P));
            ks[i].mm(&m, 0, R, X, xs, P, y1);
            if (memcmp(y0, y1, (size_t)(R * P)) != 0)
                fail_msg("spmm8 %s shape %zu differs from the scalar twin", ks[i].name, si);
            memset(v1, 0x5A, sizeof v1);
            ks[i].mv(&m, 0, R, x8, tmp, v1);
            if (memcmp(v0, v1, (size_t)R) != 0)
                fail_msg("spmv8 %s shape %zu differs from the scalar twin", ks[i].name, si);
            /* a row range inside: rows outside it stay untouched */
            memset(v1, 0x5A, sizeof v1);
            ks[i].mv(&m, 1, R - 1, x8, tmp, v1);
            for (int64_t r = 0; r < R; r++)
                if (v1[r] != (r >= 1 && r < R - 1 ? v0[r] : (int8_t)0x5A))
                    fail_msg("spmv8 %s shape %zu rows [1, %lld): row %lld wrong", ks[i].name, si,
                             (long long)(R - 1), (long long)r);
        }
        /* the int16 input copy, per ISA */
        int16_t *X2 = malloc((size_t)(C * P) * 2 + 2);
        int8_t *x8s = malloc((size_t)(C * P));
        assert_true(X2 && x8s);
        for (int64_t i = 0; i < C * P; i++) x8s[i] = (int8_t)X[i];
        sqz_widen8_fn wf[3] = {sqz_widen8_ref, NULL, NULL};
#if defined(__x86_64__) || defined(_M_X64)
        if (sqz_cpu_has_avx2_fma()) wf[1] = sqz_widen8_avx2;
        if (sqz_cpu_has_avx512()) wf[2] = sqz_widen8_avx512;
#endif
        for (int i = 0; i < 3; i++) {
            if (!wf[i]) continue;
            X2[C * P] = 0x5A5A;
            wf[i](x8s, X2, C * P);
            assert_memory_equal(X, X2, (size_t)(C * P) * 2);
            assert_int_equal(X2[C * P], 0x5A5A);
        }
        free(X2);
        free(x8s);
        sqz_csr8_free(&m);
        free(w);
        free(y0);
        free(y1);
        free(X);
        free(x8);
        free(tmp);
        free(bias);
        free(wsum);
        free(rq);
    }
}

/* The 1x4-block (spmm8b) and quad (spmm8q) int8 kernels and their input
 * packings: scalar twins against the CSR scalar twin, and every ISA kernel
 * this CPU has against them, byte for byte; the layouts' pads (pixels >= P,
 * channels >= C) hold random bytes the kernels must not use; P covers the
 * 64-pixel steps, the xmm tail (P % 64 in 1..16) and masked stores. */
static void test_i8_block_kernels(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 33);
    static const int64_t shp[][3] = {{5, 7, 1},    {9, 33, 15},  {13, 20, 31}, {4, 64, 49},
                                     {7, 3, 65},   {3, 40, 130}, {6, 1, 17},   {20, 129, 2},
                                     {11, 97, 80}, {8, 48, 196}, {5, 9, 64},   {4, 5, 63},
                                     {3, 4, 4},    {9, 13, 129}, {2, 6, 16},   {7, 24, 36}};
    static const float dens[] = {0.0f, 0.1f, 0.3f, 0.55f, 1.0f};
    int kern_runs = 0;
    for (size_t si = 0; si < sizeof shp / sizeof shp[0]; si++)
        for (size_t di = 0; di < sizeof dens / sizeof dens[0]; di++) {
            int64_t R = shp[si][0], C = shp[si][1], P = shp[si][2];
            int8_t *w = malloc((size_t)(R * C)), *x = malloc((size_t)(C * P));
            int8_t *y0 = malloc((size_t)(R * P)), *y1 = malloc((size_t)(R * P));
            const int64_t xs = sqz_spmm8_stride(P), xb = sqz_spmm8b_stride(P),
                          xq = sqz_spmm8q_stride(P), ng = (C + 3) / 4;
            int16_t *X = malloc((size_t)(C * xs) * 2);
            uint8_t *B0 = malloc((size_t)(ng * xb * 4)), *B1 = malloc((size_t)(ng * xb * 4));
            uint8_t *U0 = malloc((size_t)(C * xq)), *U1 = malloc((size_t)(C * xq));
            int32_t *bias = malloc((size_t)R * 4), *wsum = calloc((size_t)R, 4);
            sqz_rq *rq = malloc((size_t)R * sizeof *rq);
            assert_true(w && x && y0 && y1 && X && B0 && B1 && U0 && U1 && bias && wsum && rq);
            sparse_w_i8(&rng, w, R, C, dens[di]);
            if (si % 3 == 2) /* 1x4 block pattern: whole groups of 4 kept or zeroed */
                for (int64_t r = 0; r < R; r++)
                    for (int64_t c = 0; c < C; c++)
                        if (w[r * C + c / 4 * 4] == 0) w[r * C + c] = 0;
            for (int64_t i = 0; i < C * P; i++)
                x[i] = (int8_t)((int)(tu_rng_u32(&rng) % 256) - 128);
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < xs; p++) X[c * xs + p] = p < P ? x[c * P + p] : 77;
            for (int64_t i = 0; i < R; i++) {
                bias[i] = (int32_t)(tu_rng_u32(&rng) % 40001) - 20000;
                float mm = i % 3 == 0 ? tu_rng_uniform(&rng, 0.26f, 3.0f)
                                      : tu_rng_uniform(&rng, 0.0005f, 0.05f);
                assert_int_equal(sqz_rq_make(mm, &rq[i]), 0);
            }
            sqz_i8_linear li;
            memset(&li, 0, sizeof li);
            li.op = SQZ_OP_CONV;
            li.n_co = R;
            li.K = C;
            li.zp_x = (int32_t)(si * 37 % 256) - 128;
            li.zp_y = (int32_t)di * 5 - 9;
            li.lo = si % 2 ? -128 : -100;
            li.hi = si % 2 ? 127 : 120;
            li.w = w;
            li.bias = bias;
            li.wsum = wsum;
            li.rq = rq;
            sqz_csr8 m;
            assert_int_equal(sqz_csr8_build(&m, &li), 0);
            assert_int_equal(sqz_csr8_build_b4(&m), 0);
            for (int64_t r = 0; r < R; r++) { /* blocks of the row's groups, quads of 4 */
                int64_t g = 0, n = 0;
                for (int64_t c = 0; c < C; c++) {
                    n += w[r * C + c] != 0;
                    if (c % 4 == 3 || c == C - 1) {
                        int any = 0;
                        for (int64_t t = c / 4 * 4; t <= c; t++) any |= w[r * C + t] != 0;
                        g += any;
                    }
                }
                assert_int_equal(m.b4_ptr[r + 1] - m.b4_ptr[r], g);
                assert_int_equal(m.q4_ptr[r + 1] - m.q4_ptr[r], (n + 3) / 4);
            }
            sqz_spmm8_ref(&m, 0, R, X, xs, P, y0);
            sqz_pack4_ref(x, C, P, xb, B0);
            sqz_tou8_ref(x, C, P, xq, U0);
            memset(y1, 0x5A, (size_t)(R * P));
            sqz_spmm8b_ref(&m, 0, R, B0, xb, P, y1);
            if (memcmp(y0, y1, (size_t)(R * P)) != 0)
                fail_msg("spmm8b_ref shape %zu density %.2f differs from spmm8_ref", si,
                         (double)dens[di]);
            memset(y1, 0x5A, (size_t)(R * P));
            sqz_spmm8q_ref(&m, 0, R, U0, xq, P, y1);
            if (memcmp(y0, y1, (size_t)(R * P)) != 0)
                fail_msg("spmm8q_ref shape %zu density %.2f differs from spmm8_ref", si,
                         (double)dens[di]);
#if defined(__x86_64__) || defined(_M_X64)
            if (sqz_cpu_has_avx512()) {
                memset(B1, 0xEE, (size_t)(ng * xb * 4));
                sqz_pack4_avx512(x, C, P, xb, B1);
                assert_memory_equal(B0, B1, (size_t)(ng * xb * 4));
                memset(U1, 0xEE, (size_t)(C * xq));
                sqz_tou8_avx512(x, C, P, xq, U1);
                assert_memory_equal(U0, U1, (size_t)(C * xq));
            }
            if (sqz_cpu_has_avx512_vnni()) {
                /* random pads: never used */
                for (int64_t g = 0; g < ng; g++)
                    for (int64_t p = 0; p < xb; p++)
                        for (int64_t t = 0; t < 4; t++)
                            if (p >= P || 4 * g + t >= C)
                                B0[(g * xb + p) * 4 + t] = (uint8_t)tu_rng_u32(&rng);
                for (int64_t c = 0; c < C; c++)
                    for (int64_t p = P; p < xq; p++) U0[c * xq + p] = (uint8_t)tu_rng_u32(&rng);
                for (int with = 0; with < 2; with++) {
                    if (with) assert_int_equal(sqz_csr8_b4_stride(&m, xb), 0);
                    memset(y1, 0x5A, (size_t)(R * P));
                    sqz_spmm8b_vnni(&m, 0, R, B0, xb, P, y1);
                    if (memcmp(y0, y1, (size_t)(R * P)) != 0)
                        fail_msg("spmm8b_vnni shape %zu density %.2f (offsets %d) differs", si,
                                 (double)dens[di], with);
                }
                /* without q4_rec for this stride: the scalar twin; with: the kernel */
                for (int with = 0; with < 2; with++) {
                    if (with) assert_int_equal(sqz_csr8_q4_stride(&m, xq), 0);
                    memset(y1, 0x5A, (size_t)(R * P));
                    sqz_spmm8q_vnni(&m, 0, R, U0, xq, P, y1);
                    if (memcmp(y0, y1, (size_t)(R * P)) != 0)
                        fail_msg("spmm8q_vnni shape %zu density %.2f (offsets %d) differs", si,
                                 (double)dens[di], with);
                }
                /* rows [1, R - 1) only: the others untouched */
                memset(y1, 0x5A, (size_t)(R * P));
                sqz_spmm8q_vnni(&m, 1, R - 1, U0, xq, P, y1);
                sqz_spmm8b_vnni(&m, 1, R - 1, B0, xb, P, y1);
                for (int64_t i = 0; i < R * P; i++)
                    if (y1[i] != (i >= P && i < (R - 1) * P ? y0[i] : (int8_t)0x5A))
                        fail_msg("spmm8b/q_vnni shape %zu: rows [1, R-1): byte %lld wrong", si,
                                 (long long)i);
                kern_runs++;
            }
#endif
            sqz_csr8_free(&m);
            free(w);
            free(x);
            free(y0);
            free(y1);
            free(X);
            free(B0);
            free(B1);
            free(U0);
            free(U1);
            free(bias);
            free(wsum);
            free(rq);
        }
    if (!kern_runs) printf("    (block / quad ISA kernels skipped: this CPU lacks AVX-512 VNNI)\n");
}

int main(void) {
    /* 2-thread cases split whatever the size and OMP_WAIT_POLICY (run.sh: passive)
     * make of them (int8_simd.h sqz_i8_split_threads) */
    setenv("SQZ_I8_SPLIT_NS", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i8_conv),
        cmocka_unit_test(test_i8_gemm),
        cmocka_unit_test(test_f32),
        cmocka_unit_test(test_i8_decline),
        cmocka_unit_test(test_i8_kernels),
        cmocka_unit_test(test_i8_block_kernels),
        cmocka_unit_test(test_f32_spmv_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
