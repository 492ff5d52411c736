/* test_rt_int8_simd.c - every SIMD int8 kernel against its scalar reference
 * twin, byte for byte: Conv (packed GEMM: 1x1, kxk, groups, strides,
 * dilations, pads, several tiles), depthwise, Gemm / MatMul, on random shapes
 * incl. odd sizes, extreme values and zero points, 1 and 2 threads, for each
 * ISA this CPU has (x86-64: AVX2, AVX-512, AVX-512 VNNI; aarch64: NEON smlal
 * and, where HWCAP reports asimddp, sdot); skipped ISAs are named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "int8_harness.h"
#include "testutil.h"
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#include "int8_simd.h"
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)

typedef struct isa_set {
    const char *name;
    int (*ok)(void);
    const sqz_op_impl *conv, *dw, *gemm, *matmul;
} isa_set;

static const isa_set k_isas[] = {
#if defined(__aarch64__)
    /* the smlal impls run on any aarch64 CPU, whatever HWCAP says */
    {"neon-sdot", sqz_cpu_has_neon_dot, &sqz_i8_conv_dot, &sqz_i8_dwconv_neon, &sqz_i8_gemm_dot,
     &sqz_i8_matmul_dot},
    {"neon-smlal", sqz_cpu_has_neon, &sqz_i8_conv_neon, &sqz_i8_dwconv_neon, &sqz_i8_gemm_neon,
     &sqz_i8_matmul_neon},
#else
    {"avx512-vnni", sqz_cpu_has_avx512_vnni, &sqz_i8_conv_vnni, &sqz_i8_dwconv_avx512,
     &sqz_i8_gemm_vnni, &sqz_i8_matmul_vnni},
    {"avx2", sqz_cpu_has_avx2_fma, &sqz_i8_conv_avx2, &sqz_i8_dwconv_avx2, &sqz_i8_gemm_avx2,
     &sqz_i8_matmul_avx2},
#endif
};

static int8_t *rand_i8(tu_rng *r, size_t n, int lo, int hi, int extreme) {
    int8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        int v = lo + (int)(tu_rng_u32(r) % (unsigned)(hi - lo + 1));
        if (extreme) v = (tu_rng_u32(r) & 1) ? hi : lo;
        p[i] = (int8_t)v;
    }
    return p;
}

/* Runs t through impl and the reference; outputs must be identical. Returns
 * 0 when compared, 1 when impl declined the node. */
static int compare(i8t *t, const sqz_op_impl *impl, const char *what) {
    void *want, *got;
    if (i8t_run(t, sqz_ref_op_int8(t->node.op), &want) != 0) fail_msg("%s: ref: %s", what, t->err);
    sqz_shape ws = t->out_shape[0];
    int rc = i8t_run(t, impl, &got);
    if (rc == 1) {
        free(want);
        return 1;
    }
    if (rc != 0) fail_msg("%s: simd prepare failed: %s", what, t->err);
    assert_int_equal(ws.ndim, t->out_shape[0].ndim);
    i8t_expect_same_bytes(want, got, (size_t)sqz_shape_numel(&ws), what);
    return 0;
}

typedef struct cconv {
    int64_t N, C, H, W, M, group, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
    int act, bias, extreme, threads;
} cconv;

/* Builds the conv, compares; returns compare()'s code. */
static int conv_case(const cconv *c, const sqz_op_impl *impl, tu_rng *g, const char *isa) {
    int64_t cpg = c->C / c->group;
    size_t nx = (size_t)(c->N * c->C * c->H * c->W), nw = (size_t)(c->M * cpg * c->kh * c->kw);
    int8_t *x = rand_i8(g, nx, -128, 127, c->extreme == 1 || c->extreme >= 3);
    int8_t *w = rand_i8(g, nw, -127, 127, c->extreme == 1 || c->extreme >= 3);
    float *sw = malloc((size_t)c->M * sizeof(float) + 4);
    int32_t *zw = calloc((size_t)c->M + 1, 4), *b = malloc((size_t)c->M * 4 + 4);
    assert_true(sw && zw && b);
    for (int64_t i = 0; i < c->M; i++) {
        sw[i] = tu_rng_uniform(g, 0.0005f, 0.02f);
        b[i] = (int32_t)(tu_rng_u32(g) % 200001) - 100000;
    }
    int32_t zx = c->extreme == 1 || c->extreme >= 3 ? (tu_rng_u32(g) & 1 ? 127 : -128)
                                                    : (int32_t)(tu_rng_u32(g) % 256) - 128;
    float sx = tu_rng_uniform(g, 0.01f, 0.05f), sy = tu_rng_uniform(g, 0.02f, 0.5f);
    if (c->extreme == 3) /* m < 0.45 (shift >= 32) on huge sums: outputs far past int16 */
        sy = sx * 0.02f / 0.45f;
    if (c->extreme == 4) /* m up to ~2^20: acc * m passes 2^31 (float clamp before rounding) */
        sy = sx * 0.02f / 1048576.0f;
    if (c->extreme == 2) { /* m = 2^-5 * 2^-6 / 2^-10 = 0.5 exactly: half of the outputs are ties */
        sx = 1.0f / 32;
        sy = 1.0f / 1024;
        for (int64_t i = 0; i < c->M; i++) sw[i] = 1.0f / 64;
    }
    i8t t;
    i8t_init(&t, SQZ_OP_CONV);
    t.threads = c->threads;
    i8t_act(&t, 0, i8t_shape(4, c->N, c->C, c->H, c->W), x, sx, zx);
    i8t_weight(&t, 1, i8t_shape(4, c->M, cpg, c->kh, c->kw), w, sw, zw, (uint32_t)c->M, 0);
    if (c->bias) i8t_bias(&t, 2, i8t_shape(1, c->M), b);
    i8t_out(&t, SQZ_DT_I8, sy, (int32_t)(tu_rng_u32(g) % 256) - 128);
    int64_t ks[2] = {c->kh, c->kw}, st[2] = {c->sh, c->sw}, dl[2] = {c->dh, c->dw};
    int64_t pads[4] = {c->pt, c->pl, c->pb, c->pr};
    i8t_ints(&t, "kernel_shape", 2, ks);
    i8t_ints(&t, "strides", 2, st);
    i8t_ints(&t, "dilations", 2, dl);
    i8t_ints(&t, "pads", 4, pads);
    i8t_int(&t, "group", c->group);
    if (c->act == 1) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
    if (c->act == 2) {
        i8t_int(&t, "sqz_act", SQZ_ACT_CLIP);
        i8t_float(&t, "sqz_act_alpha", 0.0f);
        i8t_float(&t, "sqz_act_beta", 6.0f);
    }
    char what[200];
    snprintf(what, sizeof what,
             "%s conv N%lld C%lld %lldx%lld M%lld g%lld k%lldx%lld s%lldx%lld p%lld,%lld,%lld,%lld "
             "d%lldx%lld act%d bias%d ext%d thr%d",
             isa, (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W,
             (long long)c->M, (long long)c->group, (long long)c->kh, (long long)c->kw,
             (long long)c->sh, (long long)c->sw, (long long)c->pt, (long long)c->pl,
             (long long)c->pb, (long long)c->pr, (long long)c->dh, (long long)c->dw, c->act,
             c->bias, c->extreme, c->threads);
    int rc = compare(&t, impl, what);
    free(x);
    free(w);
    free(sw);
    free(zw);
    free(b);
    return rc;
}

static cconv rand_conv(tu_rng *g, int depthwise) {
    cconv c;
    memset(&c, 0, sizeof c);
    c.N = 1 + tu_rng_u32(g) % 2;
    if (depthwise) {
        c.C = c.M = c.group = 1 + tu_rng_u32(g) % 9;
    } else {
        c.group = tu_rng_u32(g) % 4 == 0 ? 1 + tu_rng_u32(g) % 3 : 1;
        c.C = c.group * (1 + tu_rng_u32(g) % 13);
        c.M = c.group * (1 + tu_rng_u32(g) % 19);
    }
    int k = (int)(tu_rng_u32(g) % 4); /* 1, 3, 5, or 3x1 */
    c.kh = k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 5 : 3;
    c.kw = k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 5 : 1;
    c.sh = 1 + tu_rng_u32(g) % 2;
    c.sw = 1 + tu_rng_u32(g) % 2;
    c.dh = tu_rng_u32(g) % 5 == 0 ? 2 : 1;
    c.dw = tu_rng_u32(g) % 5 == 0 ? 2 : 1;
    c.pt = tu_rng_u32(g) % 3;
    c.pl = tu_rng_u32(g) % 3;
    c.pb = tu_rng_u32(g) % 3;
    c.pr = tu_rng_u32(g) % 3;
    int64_t eh = c.dh * (c.kh - 1) + 1, ew = c.dw * (c.kw - 1) + 1;
    c.H = eh + tu_rng_u32(g) % 20;
    c.W = ew + tu_rng_u32(g) % 40;
    c.act = (int)(tu_rng_u32(g) % 3);
    c.bias = tu_rng_u32(g) % 4 != 0;
    c.extreme = tu_rng_u32(g) % 5 == 0 ? 1 + (int)(tu_rng_u32(g) % 3) : 0;
    c.threads = 1 + (int)(tu_rng_u32(g) % 2);
    return c;
}

static void test_conv_bit_exact(void **state) {
    (void)state;
    for (size_t s = 0; s < sizeof k_isas / sizeof k_isas[0]; s++) {
        if (!k_isas[s].ok()) {
            printf("  (skipped %s: this CPU lacks it)\n", k_isas[s].name);
            continue;
        }
        tu_rng g;
        tu_rng_seed(&g, 100 + s);
        static const cconv fixed[] = {
            /* pointwise, several pixel tiles and a partial one, M not a multiple of MR */
            {1, 37, 19, 23, 29, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1},
            /* 3x3 pad 1, K = 9 * 33 (not a multiple of 4), 2 threads */
            {2, 33, 14, 15, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 2},
            /* long reduction near the accumulator bound with extreme values */
            {1, 512, 4, 5, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
            /* stride 2, asymmetric pads, grouped */
            {1, 12, 17, 21, 18, 3, 3, 3, 2, 2, 0, 1, 2, 0, 1, 1, 2, 1, 0, 2},
            /* a single output pixel */
            {1, 5, 3, 3, 7, 1, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1},
            /* 7x7 stride 2 pad 3 (a ResNet stem, small): phase planes */
            {1, 3, 37, 41, 10, 1, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 0, 2},
            /* 5x3 stride 3x2, asymmetric pads, dilation 2 along h */
            {1, 5, 23, 19, 9, 1, 5, 3, 3, 2, 2, 1, 0, 2, 2, 1, 0, 1, 0, 1},
            /* 1x1 stride 2 (a downsample) */
            {2, 16, 15, 17, 12, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1},
            /* pointwise maps of > 256 pixels in one tile (interleaved tile
             * <= 16 KiB): 16 -> 32 @28x28, and 783 pixels, batch 2 (the last
             * plane's rows copied), 2 threads */
            {1, 16, 28, 28, 32, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 0, 1},
            {2, 5, 27, 29, 11, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 3, 2},
            /* pointwise tiles ending in 1..4 single pixels (VNNI: rows
             * transposed per pixel block): 14x14 (192 + 4), 5x10 (48 + 2),
             * 3x11 (32 + 1), blocks of 13 and 21 channels */
            {1, 24, 14, 14, 13, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 0, 1},
            {1, 9, 5, 10, 7, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 4, 1},
            {1, 20, 3, 11, 21, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1},
            /* one tile of pixels at 2 threads: output channels split into chunks */
            {1, 256, 7, 7, 160, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 2},
            {1, 64, 7, 7, 72, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 2},
            {1, 96, 14, 14, 40, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 2},
            /* requantized sums far beyond int16 (saturating epilogue), odd M, tails */
            {1, 512, 5, 9, 13, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 3, 1},
            {1, 64, 9, 11, 10, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1},
            /* rounding ties (m = 0.5) */
            {1, 6, 9, 10, 11, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 2, 1},
            /* rows past 64 bytes (vector plane fill and output copy in chunks) */
            {1, 3, 9, 133, 5, 1, 3, 3, 1, 1, 1, 2, 1, 0, 1, 1, 0, 1, 0, 1},
            {1, 4, 11, 131, 6, 1, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1, 1, 1, 0, 2},
            {1, 2, 6, 129, 3, 1, 1, 5, 1, 2, 0, 2, 0, 2, 1, 1, 0, 0, 0, 1},
            /* channel-quad planes (VNNI + VBMI, >= 4 channels a group): LeNet-5's
             * 6 -> 16 5x5 (channels padded to 8), 16 -> 16 3x3 over two tiles,
             * rows of 66..70 quads (two 64-column chunks; stride 2: 127-byte
             * sources), dilation 2 along w, grouped with 4 channels a group,
             * 2 threads, extremes and ties */
            {1, 6, 14, 14, 16, 1, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1},
            {1, 16, 28, 28, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},
            {2, 5, 7, 68, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
            {1, 7, 9, 133, 10, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 2},
            {1, 9, 11, 23, 12, 1, 3, 3, 1, 1, 2, 2, 2, 2, 1, 2, 0, 0, 2, 1},
            {2, 16, 9, 10, 12, 4, 3, 3, 2, 1, 1, 0, 0, 1, 1, 1, 1, 1, 3, 2},
            {1, 32, 14, 14, 64, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1},
            /* tap quads (< 4 channels, stride 1): LeNet-5's 1 -> 6 5x5 pad 2, a
             * 1 -> 16 3x3 stem, 2 channels with dilation 2 along h, 7 taps wide */
            {1, 1, 28, 28, 6, 1, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1},
            {2, 1, 28, 28, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},
            {1, 2, 13, 17, 5, 1, 3, 3, 1, 1, 2, 0, 1, 2, 2, 1, 2, 1, 1, 1},
            {1, 3, 11, 21, 9, 1, 2, 7, 1, 1, 0, 3, 1, 3, 1, 1, 0, 0, 2, 1},
            /* acc * m past 2^31 possible (no clamp after the packs), and not */
            {1, 64, 9, 11, 10, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1},
            {1, 40, 6, 37, 9, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 4, 2},
            {1, 3, 6, 37, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 4, 1},
            /* pointwise tiles of 32 a + 17..20 pixels (VNNI: 48-pixel groups +
             * single pixels): 7x7 (49), 50, 52, 113, a 305-pixel map's last
             * tile of 49; 1..13 rows (mr tails), extremes, ties, 2 threads */
            {1, 48, 7, 7, 13, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 0, 1},
            {1, 96, 7, 7, 32, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 2},
            {2, 17, 5, 10, 7, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1},
            {1, 33, 4, 13, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 2, 1},
            {1, 9, 1, 113, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 3, 2},
            {1, 21, 5, 61, 10, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 4, 1},
            {1, 300, 7, 7, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 3, 1},
            {1, 5, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1},
            /* channels along the lanes (VNNI + VBMI, output rows of <= 16
             * columns, 17+ channels, 16+ k-quads): the small ResNet's 32 ->
             * 64 s2 into 7x7, s2 into 14x14 with blocks of 32 + 1, rows cut
             * 6 + 5 (batch 2) and 8 + 8, a partial second vector, grouped
             * (18 channels a group), 3 columns of a 5x5, dilation 2,
             * extremes, ties, 2 threads */
            {1, 32, 14, 14, 64, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
            {1, 16, 27, 27, 33, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},
            {2, 20, 13, 11, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1},
            {1, 12, 9, 16, 24, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3, 1},
            {1, 32, 8, 6, 36, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 4, 2},
            {1, 8, 5, 3, 17, 1, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 2, 1, 2, 1},
            {1, 16, 9, 9, 20, 1, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 0, 1},
            /* ... in pixel pairs (<= 16 channels, rows of <= 32): 13 columns
             * (a last odd pixel), 15 + 15 (odd segment start) with 5
             * channels, grouped (6 a group), a 1x1 s2 of 16 k-quads, s2
             * into rows of 16 + 16, extremes, ties, 2 threads */
            {1, 16, 13, 13, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {1, 8, 9, 30, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3, 2},
            {2, 16, 7, 20, 12, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1},
            {1, 64, 13, 17, 12, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 2, 1},
            {1, 12, 12, 64, 16, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},
        };
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            assert_int_equal(conv_case(&fixed[i], k_isas[s].conv, &g, k_isas[s].name), 0);
        for (int i = 0; i < 60; i++) {
            cconv c = rand_conv(&g, 0);
            assert_int_equal(conv_case(&c, k_isas[s].conv, &g, k_isas[s].name), 0);
        }
    }
}

static void test_depthwise_bit_exact(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int (*ok)(void);
        const sqz_op_impl *impl;
        int no_wdil; /* declines dilation along w */
    } dws[] = {
#if defined(__aarch64__)
        {"neon", sqz_cpu_has_neon, &sqz_i8_dwconv_neon, 0},
#else
        {"avx512-vnni", sqz_cpu_has_avx512_vnni, &sqz_i8_dwconv_vnni, 1},
        {"avx512", sqz_cpu_has_avx512, &sqz_i8_dwconv_avx512, 0},
        {"avx2", sqz_cpu_has_avx2_fma, &sqz_i8_dwconv_avx2, 0},
#endif
    };
    for (size_t s = 0; s < sizeof dws / sizeof dws[0]; s++) {
        if (!dws[s].ok()) {
            printf("  (skipped depthwise %s: this CPU lacks it)\n", dws[s].name);
            continue;
        }
        tu_rng g;
        tu_rng_seed(&g, 200 + s);
        static const cconv fixed[] = {
            {1, 32, 56, 56, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 2},
            {1, 7, 15, 33, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {2, 5, 9, 17, 5, 5, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1},
            {1, 3, 11, 13, 3, 3, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, 0, 1, 0, 1},
            {1, 4, 8, 19, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 2, 1}, /* ties */
            /* small planes run wide (one flat row per plane): 7x7, 14x14 s2, 5x5 k5 */
            {1, 24, 7, 7, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 2},
            {2, 9, 14, 14, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {1, 6, 5, 5, 6, 6, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 0, 1, 1, 1},
            /* wide but wider than the whole-plane kernel (padded width > 64) */
            {1, 3, 5, 70, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            /* the whole-plane kernel at its limit: padded width 64, 62 outputs */
            {1, 3, 12, 62, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1},
            /* wide with stride 2 along h only, and along w only (even padded width) */
            {1, 5, 13, 9, 5, 5, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
            {1, 5, 9, 12, 5, 5, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 0, 1},
            /* stride 1 through the quad buffer: k5 on a small plane, k7 (two tap
             * groups) with dilation along h on rows wider than 64, extremes */
            {1, 4, 28, 28, 4, 4, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 0, 1, 0, 1},
            {1, 3, 40, 80, 3, 3, 7, 7, 1, 1, 3, 3, 3, 3, 2, 1, 1, 1, 0, 2},
            {1, 2, 9, 100, 2, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 3, 1},
            /* outputs <= 16 wide through the plane kernel (5x5 s2 on 28x28: too
             * tall for the gather kernel, not fewer vectors wide): two output
             * rows per pass, an even and an odd number of rows */
            {1, 5, 28, 28, 5, 5, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 2},
            {2, 3, 25, 31, 3, 3, 5, 5, 2, 2, 2, 2, 2, 1, 1, 1, 0, 1, 1, 1},
            {1, 3, 26, 16, 3, 3, 7, 7, 2, 1, 3, 3, 3, 3, 1, 1, 2, 0, 0, 1},
            /* gather kernel (small planes) with acc * m past 2^31 possible (float
             * clamp) and its clamp-after-pack form: 14x14, 7x7 s1 / s2, 5x5 */
            {1, 8, 14, 14, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1},
            {1, 8, 7, 7, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 4, 1},
            {1, 9, 14, 14, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 4, 1},
            {1, 7, 7, 7, 7, 7, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 0, 1, 3, 2},
            {1, 6, 14, 14, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1},
            /* gather bands of one output row (stride 2, 22..42 columns), four
             * per epilogue: 14 / 15 / 16 bands of 14 / 13 / 16 outputs (a
             * remainder of 2, 3, none), and with the float clamp (not batched) */
            {1, 6, 28, 28, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {2, 5, 30, 26, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 0, 1, 2},
            {1, 3, 32, 32, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 1, 0, 2},
            {1, 5, 28, 28, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1},
            /* ... of <= 63 input bytes (vpermb): 10 bands of 10 outputs */
            {1, 4, 20, 20, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
            /* plane kernel rows of 90 outputs: a step of 64, then one of 26 */
            {1, 3, 6, 90, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
            /* ... and with acc * m past 2^30 possible: the 32-output loop */
            {1, 3, 6, 90, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 4, 1},
            /* 3-row kernel (3 x <= 4 kernels, 9..16 output columns): 9 and
             * 16 columns, 1 / 2 / 3 rows past the last four, pads 0 and 2
             * (asymmetric), 3x1 / 3x2 / 3x4, stride 2 along h only and
             * along both (31 and 33 input columns), one output row */
            {1, 5, 13, 9, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {1, 4, 18, 18, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 1, 2},
            {2, 3, 10, 12, 3, 3, 3, 3, 1, 1, 2, 2, 0, 1, 1, 1, 0, 1, 0, 1},
            {1, 6, 11, 15, 6, 6, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1},
            {1, 3, 9, 14, 3, 3, 3, 2, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1},
            {1, 3, 7, 16, 3, 3, 3, 4, 2, 1, 0, 2, 1, 1, 1, 1, 2, 1, 0, 1},
            {1, 5, 15, 12, 5, 5, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},
            {1, 4, 21, 31, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 4, 2},
            {1, 3, 6, 33, 3, 3, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, 2, 1},
            {1, 3, 1, 12, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
            {1, 7, 14, 14, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 4, 1},
            /* its two-row form (<= 8 columns, planes <= 63 bytes, stride 1
             * along h): 8 x 8 outputs (one full store), 63-byte planes and 9
             * rows (two stores), stride 2 along w, 3x2 and 3x4, one row */
            {1, 5, 6, 8, 5, 5, 3, 3, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 0, 1},
            {1, 4, 9, 7, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 2},
            {2, 3, 5, 12, 3, 3, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1},
            {1, 6, 4, 4, 6, 6, 3, 2, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 4, 1},
            {1, 3, 1, 5, 3, 3, 3, 4, 1, 1, 1, 2, 1, 1, 1, 1, 0, 1, 0, 1},
        };
        int compared = 0, expected = 0;
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
            /* the VNNI kernel declines dilation along w (the madd kernels take it) */
            expected += !(dws[s].no_wdil && fixed[i].dw != 1);
            compared += conv_case(&fixed[i], dws[s].impl, &g, dws[s].name) == 0;
        }
        for (int i = 0; i < 60; i++) {
            cconv c = rand_conv(&g, 1); /* all are stride <= 2 */
            expected += !(dws[s].no_wdil && c.dw != 1);
            compared += conv_case(&c, dws[s].impl, &g, dws[s].name) == 0;
        }
        assert_int_equal(compared, expected);
        assert_true(compared >= 50);
#if !defined(__aarch64__)
        if (dws[s].impl == &sqz_i8_dwconv_vnni) {
            /* the same shapes on the kernels before the 3-row one (gather) */
            setenv("SQZ_I8_DW_ROWS", "0", 1);
            int n0 = 0, e0 = 0;
            for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
                e0 += fixed[i].dw == 1;
                n0 += conv_case(&fixed[i], dws[s].impl, &g, dws[s].name) == 0;
            }
            unsetenv("SQZ_I8_DW_ROWS");
            assert_int_equal(n0, e0);
        }
#endif
        /* a non-depthwise conv is declined */
        cconv c = {1, 4, 5, 5, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1};
        assert_int_equal(conv_case(&c, dws[s].impl, &g, dws[s].name), 1);
    }
}

static void linear_case(int op, int64_t rows, int64_t K, int64_t N, int ta, int tb, int bias,
                        int act, int extreme, int threads, const sqz_op_impl *impl, tu_rng *g,
                        const char *isa) {
    int8_t *a = rand_i8(g, (size_t)(rows * K), -128, 127, extreme == 1);
    int8_t *w = rand_i8(g, (size_t)(K * N), -127, 127, extreme == 1);
    float *sw = malloc((size_t)N * sizeof(float));
    int32_t *zw = calloc((size_t)N, 4), *b = malloc((size_t)N * 4);
    assert_true(sw && zw && b);
    for (int64_t c = 0; c < N; c++) {
        sw[c] = tu_rng_uniform(g, 0.0005f, 0.02f);
        b[c] = (int32_t)(tu_rng_u32(g) % 200001) - 100000;
    }
    float sx = tu_rng_uniform(g, 0.01f, 0.05f), sy = tu_rng_uniform(g, 0.02f, 0.5f);
    if (extreme == 2) { /* m = 0.5 exactly: ties */
        sx = 1.0f / 32;
        sy = 1.0f / 1024;
        for (int64_t c = 0; c < N; c++) sw[c] = 1.0f / 64;
    }
    i8t t;
    i8t_init(&t, op);
    t.threads = threads;
    int32_t zx = (int32_t)(tu_rng_u32(g) % 256) - 128;
    if (op == SQZ_OP_GEMM) {
        i8t_act(&t, 0, ta ? i8t_shape(2, K, rows) : i8t_shape(2, rows, K), a, sx, zx);
        i8t_weight(&t, 1, tb ? i8t_shape(2, N, K) : i8t_shape(2, K, N), w, sw, zw, (uint32_t)N,
                   tb ? 0 : 1);
        if (bias) i8t_bias(&t, 2, i8t_shape(2, (int64_t)1, N), b);
        i8t_int(&t, "transA", ta);
        i8t_int(&t, "transB", tb);
    } else {
        sqz_shape as =
            rows % 3 == 0 ? i8t_shape(3, (int64_t)3, rows / 3, K) : i8t_shape(2, rows, K);
        i8t_act(&t, 0, as, a, sx, zx);
        i8t_weight(&t, 1, i8t_shape(2, K, N), w, sw, zw, (uint32_t)N, 1);
    }
    i8t_out(&t, SQZ_DT_I8, sy, (int32_t)(tu_rng_u32(g) % 256) - 128);
    if (act) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
    char what[160];
    snprintf(what, sizeof what, "%s %s rows %lld K %lld N %lld ta %d tb %d bias %d ext %d", isa,
             sqz_op_name(op), (long long)rows, (long long)K, (long long)N, ta, tb, bias, extreme);
    assert_int_equal(compare(&t, impl, what), 0);
    free(a);
    free(w);
    free(sw);
    free(zw);
    free(b);
}

static void test_gemm_matmul_bit_exact(void **state) {
    (void)state;
    for (size_t s = 0; s < sizeof k_isas / sizeof k_isas[0]; s++) {
        if (!k_isas[s].ok()) {
            printf("  (skipped %s: this CPU lacks it)\n", k_isas[s].name);
            continue;
        }
        tu_rng g;
        tu_rng_seed(&g, 300 + s);
        linear_case(SQZ_OP_GEMM, 1, 784, 300, 0, 1, 1, 1, 0, 1, k_isas[s].gemm, &g, k_isas[s].name);
        linear_case(SQZ_OP_GEMM, 1, 4000, 3, 0, 0, 1, 0, 1, 2, k_isas[s].gemm, &g, k_isas[s].name);
        for (int i = 0; i < 60; i++) {
            int64_t rows = 1 + tu_rng_u32(&g) % 9, K = 1 + tu_rng_u32(&g) % 70,
                    N = 1 + tu_rng_u32(&g) % 40;
            int v = (int)(tu_rng_u32(&g) % 16);
            int ext = (int)(tu_rng_u32(&g) % 6), thr = 1 + (int)(tu_rng_u32(&g) % 2);
            ext = ext < 2 ? ext + 1 : 0; /* 1 extreme values, 2 ties, 0 random */
            linear_case(SQZ_OP_GEMM, rows, K, N, v & 1, (v >> 1) & 1, (v >> 2) & 1, (v >> 3) & 1,
                        ext, thr, k_isas[s].gemm, &g, k_isas[s].name);
            linear_case(SQZ_OP_MATMUL, rows, K, N, 0, 0, 0, v & 1, ext, thr, k_isas[s].matmul, &g,
                        k_isas[s].name);
        }
    }
}

#if defined(__x86_64__) || defined(_M_X64)
/* QuantizeLinear AVX2 vs the reference: random values around the grid, exact
 * ties, huge values, infinities, NaN; lengths with vector tails; the last
 * inputs large enough to split over 2 / 3 threads (ragged parts). */
static void test_quantize_bit_exact(void **state) {
    (void)state;
    if (!sqz_cpu_has_avx2_fma()) {
        printf("  (skipped quantize avx2: this CPU lacks it)\n");
        return;
    }
    tu_rng g;
    tu_rng_seed(&g, 400);
    for (int it = 0; it < 200; it++) {
        int64_t n = it >= 190 ? 16384 + tu_rng_u32(&g) % 5000 : 1 + tu_rng_u32(&g) % 100;
        float *x = malloc((size_t)n * sizeof(float));
        assert_non_null(x);
        float s = it % 4 == 0 ? 0.5f : tu_rng_uniform(&g, 0.001f, 0.2f);
        for (int64_t i = 0; i < n; i++) {
            uint32_t k = tu_rng_u32(&g) % 12;
            /* near-ties at any s: (m + 0.5) * s and a few ulps around it (where
             * the kernel's x * (1 / s) estimate must defer to the division) */
            float tie = ((float)((int)(tu_rng_u32(&g) % 600) - 300) + 0.5f) * s;
            for (int u = (int)(tu_rng_u32(&g) % 5) - 2; u != 0; u += u > 0 ? -1 : 1)
                tie = nextafterf(tie, u > 0 ? INFINITY : -INFINITY);
            if (it % 3 == 1) { /* no specials: whole vectors through the x * (1 / s)
                                * estimate, near its margin (|t - n| vs 0.5 - 2^-10,
                                * |t| vs 1024) and at ties */
                float f = (float)((int)(tu_rng_u32(&g) % 2200) - 1100) + 0.5f;
                f += k < 4 ? 0.0f : (k < 8 ? 1.0f : -1.0f) * (0x1p-10f + (float)(k % 4) * 0x1p-13f);
                x[i] = k >= 10 ? tie : f * s;
                continue;
            }
            x[i] = k == 0 ? (float)((int)(tu_rng_u32(&g) % 400) - 200) * 0.25f /* ties at s = 0.5 */
                   : k == 1  ? 1e30f
                   : k == 2  ? -INFINITY
                   : k == 3  ? NAN
                   : k >= 10 ? tie
                             : tu_rng_uniform(&g, -150.0f, 150.0f) * s;
        }
        i8t t;
        i8t_init(&t, SQZ_OP_QUANTIZE_LINEAR);
        t.threads = it >= 190 ? 2 + it % 2 : 1;
        i8t_f32(&t, 0, i8t_shape(1, n), x);
        i8t_out(&t, SQZ_DT_I8, s, (int32_t)(tu_rng_u32(&g) % 256) - 128);
        void *a, *b;
        assert_int_equal(i8t_run(&t, sqz_ref_op(SQZ_OP_QUANTIZE_LINEAR), &a), 0);
        assert_int_equal(i8t_run(&t, &sqz_i8_quantize_avx2, &b), 0);
        assert_memory_equal(a, b, (size_t)n);
        free(b);
        if (sqz_cpu_has_avx512()) { /* and the AVX2 kernel it replaces there */
            setenv("SQZ_I8_Q256", "1", 1);
            assert_int_equal(i8t_run(&t, &sqz_i8_quantize_avx2, &b), 0);
            unsetenv("SQZ_I8_Q256");
            assert_memory_equal(a, b, (size_t)n);
            free(b);
        }
        free(a);
        free(x);
    }
}

/* DequantizeLinear AVX2 vs the reference: every byte value, random scales
 * and zero points, lengths with vector tails. */
static void test_dequantize_bit_exact(void **state) {
    (void)state;
    if (!sqz_cpu_has_avx2_fma()) {
        printf("  (skipped dequantize avx2: this CPU lacks it)\n");
        return;
    }
    tu_rng g;
    tu_rng_seed(&g, 450);
    for (int it = 0; it < 60; it++) {
        int64_t n = 1 + tu_rng_u32(&g) % 300;
        int8_t *x = malloc((size_t)n);
        assert_non_null(x);
        for (int64_t i = 0; i < n; i++) x[i] = (int8_t)(it < 2 ? i % 256 - 128 : tu_rng_u32(&g));
        float s = it % 3 == 0 ? 0.5f : tu_rng_uniform(&g, 1e-4f, 3.0f);
        i8t t;
        i8t_init(&t, SQZ_OP_DEQUANTIZE_LINEAR);
        i8t_act(&t, 0, i8t_shape(1, n), x, s, (int32_t)(tu_rng_u32(&g) % 256) - 128);
        i8t_out(&t, SQZ_DT_F32, 0, 0);
        void *a, *b;
        assert_int_equal(i8t_run(&t, sqz_ref_op(SQZ_OP_DEQUANTIZE_LINEAR), &a), 0);
        assert_int_equal(i8t_run(&t, &sqz_i8_dequantize_avx2, &b), 0);
        assert_memory_equal(a, b, (size_t)n * sizeof(float));
        free(a);
        free(b);
        free(x);
    }
}

/* Add AVX2 vs the reference: random lengths (vector tails), zero points,
 * scale ratios either way, exact ties (scale ratios powers of two), extreme
 * values, a fused ReLU; a broadcasting Add is declined. */
static void test_add_bit_exact(void **state) {
    (void)state;
    if (!sqz_cpu_has_avx2_fma()) {
        printf("  (skipped add avx2: this CPU lacks it)\n");
        return;
    }
    tu_rng g;
    tu_rng_seed(&g, 500);
    for (int it = 0; it < 120; it++) {
        /* the last ones long enough for the AVX-512 kernel to split over 2 / 3 threads */
        int64_t n = it >= 110 ? 4000 + tu_rng_u32(&g) % 3000 : 1 + tu_rng_u32(&g) % 300;
        int ext = it % 5 == 0;
        int8_t *a = rand_i8(&g, (size_t)n, -128, 127, ext),
               *b = rand_i8(&g, (size_t)n, -128, 127, ext);
        float sa = tu_rng_uniform(&g, 0.01f, 0.2f), sb = tu_rng_uniform(&g, 0.01f, 0.2f),
              sy = tu_rng_uniform(&g, 0.01f, 0.4f);
        if (it % 4 == 1) { /* ties: multipliers 1/2 and 1/4 */
            sa = 0.25f;
            sb = 0.125f;
            sy = 0.5f;
        }
        /* shifts at the AVX-512 16-bit path's ends (S 16..40) and past them */
        if (it % 8 == 3) sy = sa * 600.0f;     /* m ~ 2^-9.2: S = 40 */
        if (it % 8 == 7) sy = sa * 1500.0f;    /* S = 41: the 64-bit path */
        if (it % 16 == 5) sy = sa / 40000.0f;  /* m ~ 2^15.3: S = 15 */
        if (it % 16 == 13) sy = sa / 30000.0f; /* S = 16 */
        /* S = 17 (two-piece path's end); the larger multiplier's mantissa
         * >= 1 - 2^-16 (M >= 2^31 - 2^15: the three-piece path) */
        if (it % 16 == 9) sy = sa / 15000.0f;
        if (it % 16 == 11) sy = sa / 0.999995f, sb = sa * 0.5f;
        i8t t;
        i8t_init(&t, SQZ_OP_ADD);
        i8t_act(&t, 0, i8t_shape(2, (int64_t)1, n), a, sa, (int32_t)(tu_rng_u32(&g) % 256) - 128);
        i8t_act(&t, 1, i8t_shape(2, (int64_t)1, n), b, sb, (int32_t)(tu_rng_u32(&g) % 256) - 128);
        i8t_out(&t, SQZ_DT_I8, sy, (int32_t)(tu_rng_u32(&g) % 256) - 128);
        if (it % 3 == 2) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
        t.threads = it >= 110 ? 2 + it % 2 : 1;
        char what[64];
        snprintf(what, sizeof what, "avx2 Add n %lld it %d", (long long)n, it);
        assert_int_equal(compare(&t, &sqz_i8_add_avx2, what), 0);
        if (sqz_cpu_has_avx512()) {
            snprintf(what, sizeof what, "avx512 Add n %lld it %d", (long long)n, it);
            assert_int_equal(compare(&t, &sqz_i8_add_avx512, what), 0);
        }
        free(a);
        free(b);
    }
    int8_t a[12] = {0}, b[4] = {0};
    i8t t;
    i8t_init(&t, SQZ_OP_ADD);
    i8t_act(&t, 0, i8t_shape(2, (int64_t)3, (int64_t)4), a, 0.1f, 0);
    i8t_act(&t, 1, i8t_shape(1, (int64_t)4), b, 0.1f, 0);
    i8t_out(&t, SQZ_DT_I8, 0.2f, 0);
    assert_int_equal(compare(&t, &sqz_i8_add_avx2, "broadcast Add"), 1);
    if (sqz_cpu_has_avx512()) assert_int_equal(compare(&t, &sqz_i8_add_avx512, "broadcast Add"), 1);
}
#endif

#if defined(__aarch64__)
static int has(const sqz_op_impl *const *c, int n, const sqz_op_impl *want) {
    for (int i = 0; i < n; i++)
        if (c[i] == want) return 1;
    return 0;
}

/* The dispatcher picks sdot when the CPU has it and smlal when the dotprod
 * capability is masked (SQZ_ISA=neon, here via sqz_cpu_set_isa_cap). */
static void test_dispatch(void **state) {
    (void)state;
    const sqz_op_impl *c[8];
    int n = sqz_fast_ops_int8(SQZ_OP_CONV, c, 8);
    assert_true(has(c, n, &sqz_i8_conv_neon) && has(c, n, &sqz_i8_dwconv_neon));
    assert_int_equal(has(c, n, &sqz_i8_conv_dot), sqz_cpu_has_neon_dot());
    if (sqz_cpu_isa_hw() >= SQZ_ISA_NEON_DOT) {
        sqz_cpu_set_isa_cap(SQZ_ISA_NEON);
        assert_false(sqz_cpu_has_neon_dot());
        n = sqz_fast_ops_int8(SQZ_OP_GEMM, c, 8);
        assert_true(has(c, n, &sqz_i8_gemm_neon) && !has(c, n, &sqz_i8_gemm_dot));
        sqz_cpu_set_isa_cap(-1); /* back to SQZ_ISA (unset: the hardware) */
        n = sqz_fast_ops_int8(SQZ_OP_GEMM, c, 8);
        /* (sparse kernels may come first in the list: look for the dense one) */
        assert_true(has(c, n, sqz_cpu_has_neon_dot() ? &sqz_i8_gemm_dot : &sqz_i8_gemm_neon));
    } else {
        printf("  (dotprod masking not checked: this CPU lacks asimddp)\n");
    }
    assert_int_equal(sqz_fast_ops_int8(SQZ_OP_SOFTMAX, c, 8), 0);
}
#else
/* The dispatcher picks the SIMD kernels for int8 nodes (and not for others). */
static void test_dispatch(void **state) {
    (void)state;
    const sqz_op_impl *c[8];
    int n = sqz_fast_ops_int8(SQZ_OP_CONV, c, 8);
    if (sqz_cpu_has_avx2_fma()) assert_true(n >= 2);
    if (sqz_cpu_has_avx512_vnni()) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= c[i] == &sqz_i8_conv_vnni;
        assert_true(found);
    }
    assert_int_equal(sqz_fast_ops_int8(SQZ_OP_SOFTMAX, c, 8), 0);
}
#endif

int main(void) {
    /* 2-thread cases split whatever the size and OMP_WAIT_POLICY (run.sh: passive)
     * make of them (int8_simd.h sqz_i8_split_threads) */
    setenv("SQZ_I8_SPLIT_NS", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_bit_exact),
        cmocka_unit_test(test_depthwise_bit_exact),
        cmocka_unit_test(test_gemm_matmul_bit_exact),
#if defined(__x86_64__) || defined(_M_X64)
        cmocka_unit_test(test_quantize_bit_exact),
        cmocka_unit_test(test_dequantize_bit_exact),
        cmocka_unit_test(test_add_bit_exact),
#endif
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void) {
    printf("test_rt_int8_simd: skipped (no int8 SIMD kernels on this architecture)\n");
    return 0;
}
#endif
