/* test_rt_conv_fuse.c - the executor's conv epilogue fusions (session.c
 * fuse_conv_add / fuse_conv_silu): Conv -> Add (-> Relu) and Conv ->
 * Sigmoid -> Mul graphs on every conv path that takes them (1x1 on the
 * GEMM's column panels and on px tiles, 3x3 wide bands, the implicit im2col
 * of dilated convs, Winograd F(2,3) / F(4,3), depthwise kernels, the gemv of
 * a 1x1 conv on a 1x1 plane), odd sizes, 1 and 2 threads, every ISA of this
 * CPU. Each fused session must equal the unfused one (SQZ_FUSE_CONV=0) bit
 * for bit and the reference kernels within 1e-5 relative, and report the Add
 * / Mul as not run; graphs that must not fuse (the conv output read twice,
 * or a graph output) keep their Add running and their results right. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu.h"
#include "fastops.h"
#include "gemm.h"
#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "testutil.h"
#include "test_session.h"

enum { PAT_ADD, PAT_ADD_RELU, PAT_SILU };
/* where the residual comes from / what else reads the conv output */
enum {
    RES_INPUT,      /* residual: a second graph input */
    RES_INPUT_DEAD, /* the same, Add(r, y): the Add writes over r */
    RES_TWICE,      /* y also feeds a Relu that is a second graph output: no fusion */
    RES_YOUT,       /* y is itself a graph output: no fusion */
};

typedef struct fcase {
    const char *name;
    int C, M, H, W, k, stride, pad, dil, group;
    int pat, res;
    const char *env; /* "NAME=VALUE" forcing a path, or NULL */
} fcase;

enum { T_X, T_R, T_W, T_B, T_Y, T_S, T_Z, T_Q, NT };

typedef struct built {
    uint8_t *file;
    size_t size;
    int n_in, OH, OW;
    int fused_node; /* the node that runs fused into the conv (Add / Mul) */
    int want_fused;
} built;

static float WT[64 * 64 * 9], BS[1024];

static built build(const fcase *c) {
    built b;
    memset(&b, 0, sizeof b);
    const int OH = (c->H + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    const int OW = (c->W + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    b.OH = OH;
    b.OW = OW;
    sb_tensor t[NT];
    memset(t, 0, sizeof t);
    t[T_X] = (sb_tensor){.name = "x",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, c->C, c->H, c->W}};
    t[T_R] = (sb_tensor){.name = "r",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, c->M, OH, OW}};
    const int cg = c->C / c->group;
    t[T_W] = (sb_tensor){.name = "w",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_CONST,
                         .ndim = 4,
                         .dims = {c->M, cg, c->k, c->k},
                         .data = WT,
                         .data_bytes = (size_t)c->M * cg * c->k * c->k * 4};
    t[T_B] = (sb_tensor){.name = "b",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_CONST,
                         .ndim = 1,
                         .dims = {c->M},
                         .data = BS,
                         .data_bytes = (size_t)c->M * 4};
    const sb_tensor act = {.dtype = SQZ_DT_F32, .ndim = 4, .dims = {1, c->M, OH, OW}};
    const char *names[NT] = {"x", "r", "w", "b", "y", "s", "z", "q"};
    for (int i = T_Y; i < NT; i++) {
        t[i] = act;
        t[i].name = names[i];
    }
    static int64_t ks[2], st[2], pads[4], dl[2], grp;
    ks[0] = ks[1] = c->k;
    st[0] = st[1] = c->stride;
    pads[0] = pads[1] = pads[2] = pads[3] = c->pad;
    dl[0] = dl[1] = c->dil;
    grp = c->group;
    static const sb_attr conv_attrs[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = ks},
        {.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = st},
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pads},
        {.name = "dilations", .type = SQZ_ATTR_INTS, .count = 2, .ints = dl},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &grp}};
    static const int32_t i_conv[] = {T_X, T_W, T_B}, o_conv[] = {T_Y};
    static const int32_t i_add_yr[] = {T_Y, T_R}, i_add_ry[] = {T_R, T_Y}, o_z[] = {T_Z};
    static const int32_t i_z[] = {T_Z}, o_q[] = {T_Q}, i_y[] = {T_Y}, o_s[] = {T_S};
    static const int32_t i_mul[] = {T_Y, T_S};
    sb_node n[4];
    int nn = 0;
    n[nn++] = (sb_node){SQZ_OP_CONV, "conv", 3, 1, 5, i_conv, o_conv, conv_attrs};
    int32_t gin[2] = {T_X, T_R}, gout[2] = {T_Z, T_Y};
    int ngout = 1;
    b.n_in = 1;
    if (c->pat == PAT_SILU) {
        n[nn++] = (sb_node){SQZ_OP_SIGMOID, "sig", 1, 1, 0, i_y, o_s, NULL};
        b.fused_node = nn;
        n[nn++] = (sb_node){SQZ_OP_MUL, "mul", 2, 1, 0, i_mul, o_z, NULL};
    } else {
        b.n_in = 2;
        b.fused_node = nn;
        n[nn++] = (sb_node){
            SQZ_OP_ADD, "add", 2, 1, 0, c->res == RES_INPUT_DEAD ? i_add_ry : i_add_yr, o_z, NULL};
        if (c->pat == PAT_ADD_RELU) {
            n[nn++] = (sb_node){SQZ_OP_RELU, "relu", 1, 1, 0, i_z, o_q, NULL};
            gout[0] = T_Q;
        }
    }
    if (c->res == RES_TWICE) { /* a Relu of y as a second output */
        static const int32_t o_s2[] = {T_S};
        n[nn++] = (sb_node){SQZ_OP_RELU, "relu_y", 1, 1, 0, i_y, o_s2, NULL};
        gout[1] = T_S;
        ngout = 2;
    }
    if (c->res == RES_YOUT) ngout = 2;
    for (int g = 0; g < ngout; g++) t[gout[g]].flags |= SQZ_TF_OUTPUT;
    if (b.n_in == 1) t[T_R].flags = 0;
    b.want_fused = c->res == RES_INPUT || c->res == RES_INPUT_DEAD;
    /* SiLU: where the executor has a fused SiLU kernel (x86 AVX2 / AVX-512) */
    if (c->pat == PAT_SILU && !sqz_fast_silu_row()) b.want_fused = 0;
    b.file = sb_build(t, NT, n, nn, gin, b.n_in, gout, ngout, &b.size);
    return b;
}

typedef struct result {
    ts_outputs o;
    int fused_skipped;
} result;

/* One session (threads, reference kernels or not, fusion on or off): the
 * graph outputs after two runs with fresh inputs (the second checked). */
static result run(const built *b, int threads, int ref, int fuse, const float *x, size_t nx,
                  const float *r, size_t nr) {
    result res;
    memset(&res, 0, sizeof res);
    if (fuse)
        unsetenv("SQZ_FUSE_CONV");
    else
        setenv("SQZ_FUSE_CONV", "0", 1);
    sqz_model *m = NULL;
    sqz_session *s = ts_open(b->file, b->size, threads, ref, &m);
    sqz_status st;
    sqz_node_info info;
    sqz_session_node_info(s, b->fused_node, &info);
    res.fused_skipped = info.skipped;
    for (int rep = 0; rep < 2; rep++) {
        /* the first run sees other inputs: nothing may carry over */
        float *xx = malloc(nx * sizeof(float)), *rr = malloc((nr ? nr : 1) * sizeof(float));
        assert_non_null(xx);
        assert_non_null(rr);
        for (size_t i = 0; i < nx; i++) xx[i] = rep ? x[i] : -x[i];
        for (size_t i = 0; i < nr; i++) rr[i] = rep ? r[i] : 0.5f * r[i];
        assert_int_equal(sqz_session_set_input(s, 0, xx, nx, &st), SQZ_OK);
        if (b->n_in > 1) assert_int_equal(sqz_session_set_input(s, 1, rr, nr, &st), SQZ_OK);
        free(xx);
        free(rr);
        if (sqz_session_run(s, &st) != SQZ_OK) fail_msg("run: %s", st.msg);
    }
    ts_take_outputs(&res.o, s, m);
    unsetenv("SQZ_FUSE_CONV");
    return res;
}

static void result_free(result *r) {
    ts_outputs_free(&r->o);
}

static int n_fused; /* cases that ran fused (all ISAs, threads) */

/* "A=1;B=2": set (on) or unset each variable */
static void set_env(const char *env, int on) {
    char buf[96];
    if (!env) return;
    snprintf(buf, sizeof buf, "%s", env);
    for (char *kv = strtok(buf, ";"); kv; kv = strtok(NULL, ";")) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = 0;
        if (on)
            setenv(kv, eq + 1, 1);
        else
            unsetenv(kv);
    }
}

static void check_case(const fcase *c, int isa_name_len, const char *isa, int strict) {
    tu_rng rng;
    tu_rng_seed(&rng, 1000u + (uint64_t)c->C * 31u + (uint64_t)c->M);
    const int cg = c->C / c->group;
    tu_fill_uniform(&rng, WT, (size_t)c->M * cg * c->k * c->k, -0.4f, 0.4f);
    tu_fill_uniform(&rng, BS, (size_t)c->M, -0.5f, 0.5f);
    built b = build(c); /* copies WT, BS */
    const size_t nx = (size_t)c->C * c->H * c->W, ny = (size_t)c->M * b.OH * b.OW;
    float *x = malloc(nx * sizeof(float)), *r = malloc(ny * sizeof(float));
    assert_non_null(x);
    assert_non_null(r);
    tu_fill_uniform(&rng, x, nx, -1.5f, 1.5f);
    tu_fill_uniform(&rng, r, ny, -2.0f, 2.0f);
    set_env(c->env, 1);
    /* Winograd's transforms round more than a direct sum (F(4,3): ~1e-5 of
     * the outputs here); its fusion is checked by the bitwise comparison */
    const float tol = c->env && strstr(c->env, "WINOGRAD=4") ? 1e-4f : 1e-5f;
    for (int threads = 1; threads <= 2; threads++) {
        result f = run(&b, threads, 0, 1, x, nx, r, ny);
        result u = run(&b, threads, 0, 0, x, nx, r, ny);
        result ref = run(&b, 1, 1, 0, x, nx, r, ny);
        assert_int_equal(f.o.n_out, ref.o.n_out);
        assert_int_equal(u.o.n_out, ref.o.n_out);
        int neg = 0;
        for (int k = 0; k < f.o.n_out; k++)
            for (size_t i = 0; i < f.o.n[k]; i++) {
                float a = f.o.out[k][i], e = ref.o.out[k][i];
                neg += e < 0.0f;
                if (memcmp(&a, &u.o.out[k][i], sizeof a))
                    fail_msg("%s [%.*s, %d thr]: output %d [%zu] fused %.9g, unfused %.9g", c->name,
                             isa_name_len, isa, threads, k, i, a, u.o.out[k][i]);
                if (!(fabsf(a - e) <= tol * (1.0f + fabsf(e))))
                    fail_msg("%s [%.*s, %d thr]: output %d [%zu] = %.9g, reference %.9g", c->name,
                             isa_name_len, isa, threads, k, i, a, e);
            }
        /* a Relu / SiLU with something to do (no all-positive outputs) */
        if (c->pat != PAT_ADD_RELU) assert_true(neg > 0);
        /* the unfused session and the reference never skip the node */
        assert_int_equal(u.fused_skipped, 0);
        assert_int_equal(ref.fused_skipped, 0);
        /* scalar: the reference conv (no GEMM conv), except Winograd: a
         * conv that runs fused must be one that may */
        if (strict ? f.fused_skipped != b.want_fused : f.fused_skipped > b.want_fused)
            fail_msg("%s [%.*s, %d thr]: %s", c->name, isa_name_len, isa, threads,
                     b.want_fused ? "not fused" : "fused although it must not");
        n_fused += f.fused_skipped;
        result_free(&f);
        result_free(&u);
        result_free(&ref);
    }
    set_env(c->env, 0);
    free(x);
    free(r);
    free(b.file);
}

/* name, C, M, H, W, k, stride, pad, dil, group, pattern, residual, env */
static const fcase CASES[] = {
    /* 1x1 on the column panels (few channels) and on px tiles */
    {"1x1 gemm add", 20, 24, 9, 13, 1, 1, 0, 1, 1, PAT_ADD, RES_INPUT, "SQZ_CONV_PX=0"},
    {"1x1 gemm add+relu over r", 20, 24, 9, 13, 1, 1, 0, 1, 1, PAT_ADD_RELU, RES_INPUT_DEAD,
     "SQZ_CONV_PX=0"},
    {"1x1 px add+relu", 24, 40, 7, 11, 1, 1, 0, 1, 1, PAT_ADD_RELU, RES_INPUT, "SQZ_CONV_PX=1"},
    {"1x1 px add over r", 24, 40, 7, 11, 1, 1, 0, 1, 1, PAT_ADD, RES_INPUT_DEAD, "SQZ_CONV_PX=1"},
    {"1x1 gemm silu", 20, 24, 9, 13, 1, 1, 0, 1, 1, PAT_SILU, RES_INPUT, "SQZ_CONV_PX=0"},
    {"1x1 px silu", 24, 40, 7, 11, 1, 1, 0, 1, 1, PAT_SILU, RES_INPUT, "SQZ_CONV_PX=1"},
    /* 3x3 wide bands (Winograd off), stride 1 and 2, column panels and px */
    {"3x3 wide add+relu", 12, 20, 11, 15, 3, 1, 1, 1, 1, PAT_ADD_RELU, RES_INPUT,
     "SQZ_WINOGRAD=0;SQZ_CONV_PX=0"},
    {"3x3 wide add over r K>256", 40, 20, 9, 10, 3, 1, 1, 1, 1, PAT_ADD, RES_INPUT_DEAD,
     "SQZ_WINOGRAD=0;SQZ_CONV_PX=0"},
    {"3x3 s2 wide silu", 6, 20, 17, 19, 3, 2, 1, 1, 1, PAT_SILU, RES_INPUT,
     "SQZ_WINOGRAD=0;SQZ_CONV_PX=0"},
    {"3x3 wide px add+relu", 16, 36, 10, 9, 3, 1, 1, 1, 1, PAT_ADD_RELU, RES_INPUT_DEAD,
     "SQZ_CONV_PX=1"},
    {"3x3 wide px silu", 16, 36, 10, 9, 3, 1, 1, 1, 1, PAT_SILU, RES_INPUT, "SQZ_CONV_PX=1"},
    {"3x3 wide px 2-row add over r", 16, 36, 9, 7, 3, 1, 1, 1, 1, PAT_ADD, RES_INPUT_DEAD,
     "SQZ_CONV_PX=1;SQZ_WINOGRAD=0"},
    /* more rows than one A block (M > 512): the driver's large-product
     * blocking (B packed once per column block) */
    {"1x1 gemm M>512 add over r", 24, 520, 9, 8, 1, 1, 0, 1, 1, PAT_ADD, RES_INPUT_DEAD,
     "SQZ_CONV_PX=0"},
    {"3x3 dil2 M>512 silu", 5, 530, 10, 9, 3, 1, 2, 2, 1, PAT_SILU, RES_INPUT, NULL},
    /* dilated 3x3: the implicit im2col packer */
    {"3x3 dil2 add+relu", 10, 18, 13, 12, 3, 1, 2, 2, 1, PAT_ADD_RELU, RES_INPUT, NULL},
    {"3x3 dil2 silu", 10, 18, 13, 12, 3, 1, 2, 2, 1, PAT_SILU, RES_INPUT, NULL},
    /* grouped 1x1 (two group matrices) */
    {"1x1 group2 add", 16, 24, 6, 7, 1, 1, 0, 1, 2, PAT_ADD, RES_INPUT_DEAD, NULL},
    /* Winograd F(2,3) and F(4,3), odd planes */
    {"winograd F2 add+relu", 16, 24, 11, 13, 3, 1, 1, 1, 1, PAT_ADD_RELU, RES_INPUT,
     "SQZ_WINOGRAD=2"},
    {"winograd F4 add over r", 16, 24, 13, 11, 3, 1, 1, 1, 1, PAT_ADD, RES_INPUT_DEAD,
     "SQZ_WINOGRAD=4"},
    {"winograd F4 silu", 16, 24, 13, 11, 3, 1, 1, 1, 1, PAT_SILU, RES_INPUT, "SQZ_WINOGRAD=4"},
    /* depthwise: channel blocks (7 wide), whole planes, bands (33..64
     * wide), padded rows (> 64 wide), stride 2, 5x5 */
    {"dw 3x3 7x7 silu", 20, 20, 7, 7, 3, 1, 1, 1, 20, PAT_SILU, RES_INPUT, NULL},
    {"dw 3x3 14x13 silu", 18, 18, 14, 13, 3, 1, 1, 1, 18, PAT_SILU, RES_INPUT, NULL},
    {"dw 5x5 s2 15x17 silu", 9, 9, 15, 17, 5, 2, 2, 1, 9, PAT_SILU, RES_INPUT, NULL},
    {"dw 3x3 9x40 silu", 5, 5, 9, 40, 3, 1, 1, 1, 5, PAT_SILU, RES_INPUT, NULL},
    {"dw 3x3 5x70 silu", 3, 3, 5, 70, 3, 1, 1, 1, 3, PAT_SILU, RES_INPUT, NULL},
    /* 1x1 on a 1x1 plane: the gemv */
    {"1x1 on 1x1 gemv silu", 40, 36, 1, 1, 1, 1, 0, 1, 1, PAT_SILU, RES_INPUT,
     "SQZ_GEMV_PAR_MIN=0"},
    {"1x1 on 1x1 gemv add+relu", 40, 36, 1, 1, 1, 1, 0, 1, 1, PAT_ADD_RELU, RES_INPUT,
     "SQZ_GEMV_PAR_MIN=0"},
    /* must not fuse: y read by a second node, y a graph output */
    {"1x1 gemm add, y read twice", 20, 24, 9, 13, 1, 1, 0, 1, 1, PAT_ADD, RES_TWICE, NULL},
    {"3x3 wide add, y an output", 12, 20, 11, 15, 3, 1, 1, 1, 1, PAT_ADD_RELU, RES_YOUT,
     "SQZ_WINOGRAD=0;SQZ_CONV_PX=0"},
    {"1x1 px silu, y an output", 24, 40, 7, 11, 1, 1, 0, 1, 1, PAT_SILU, RES_YOUT, "SQZ_CONV_PX=1"},
};

/* 1 when this CPU (under any SQZ_ISA cap) has the GEMM conv: then every
 * Add case must fuse (without it the reference conv runs, which never does) */
static int gemm_conv_cpu(void) {
#if defined(__x86_64__)
    return sqz_cpu_has_avx2_fma();
#elif defined(__aarch64__)
    return sqz_cpu_has_neon();
#else
    return 0;
#endif
}

static void run_all(int isa_len, const char *isa, int strict) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        check_case(&CASES[i], isa_len, isa, strict);
}

static void test_conv_fusion(void **state) {
    (void)state;
    /* split every conv over the threads, however small */
    setenv("SQZ_PAR_MIN_MACS", "1", 1);
    setenv("SQZ_DW_SPLIT_MACS", "0", 1);
    n_fused = 0;
    if (!sqz_fast_silu_row())
        printf("conv fusion: SiLU cases run unfused here (no fused SiLU kernel on this CPU: x86 "
               "AVX2 / AVX-512 only); their results are still checked\n");
    run_all(4, "best", gemm_conv_cpu());
#if defined(__x86_64__)
    /* AVX2 kernels store wide convs through a band buffer (no column map) */
    if (sqz_cpu_isa_hw() >= SQZ_ISA_AVX512) {
        sqz_cpu_set_isa_cap(SQZ_ISA_AVX2);
        run_all(4, "avx2", 1);
    }
    sqz_cpu_set_isa_cap(SQZ_ISA_SCALAR);
    run_all(6, "scalar", 0);
    sqz_cpu_set_isa_cap(-1);
#elif defined(__aarch64__)
    sqz_cpu_set_isa_cap(SQZ_ISA_SCALAR);
    run_all(6, "scalar", 0);
    sqz_cpu_set_isa_cap(-1);
#endif
    unsetenv("SQZ_PAR_MIN_MACS");
    unsetenv("SQZ_DW_SPLIT_MACS");
    printf("conv fusion: %d fused sessions\n", n_fused);
    assert_true(n_fused > 0);
}

/* the SIMD row functions of the fused Add against their scalar twin: every
 * length up to 80 (vector bodies and tails), relu on / off, with NaN, -0,
 * +-inf and negative sums among random values; out at y, res or apart */
static void check_add_fn(const char *name, sqz_conv_add_fn fn) {
    enum { N = 80 };
    float y[N], r[N], o1[N], o2[N];
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    for (int n = 0; n <= N; n++)
        for (int relu = 0; relu <= 1; relu++)
            for (int where = 0; where < 3; where++) {
                tu_fill_uniform(&rng, y, N, -3, 3);
                tu_fill_uniform(&rng, r, N, -3, 3);
                if (n > 4) {
                    y[n / 2] = NAN;
                    y[n / 3] = -0.0f;
                    r[n / 3] = -0.0f;
                    y[n - 1] = INFINITY;
                    r[n - 2] = -INFINITY;
                }
                float ya[N], ra[N], yb[N], rb[N];
                memcpy(ya, y, sizeof y);
                memcpy(ra, r, sizeof r);
                memcpy(yb, y, sizeof y);
                memcpy(rb, r, sizeof r);
                float *oa = where == 0 ? o1 : where == 1 ? ya : ra;
                float *ob = where == 0 ? o2 : where == 1 ? yb : rb;
                sqz_conv_add_ref(ya, ra, oa, (size_t)n, relu);
                fn(yb, rb, ob, (size_t)n, relu);
                for (int i = 0; i < n; i++)
                    if (memcmp(&oa[i], &ob[i], sizeof(float)) && !(isnan(oa[i]) && isnan(ob[i])))
                        fail_msg("%s n %d relu %d: [%d] %g vs twin %g", name, n, relu, i, ob[i],
                                 oa[i]);
            }
}

static void test_add_row_simd(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (sqz_cpu_has_avx2_fma()) check_add_fn("avx2", sqz_x86_conv_add_avx2);
    if (sqz_cpu_has_avx512()) check_add_fn("avx512", sqz_x86_conv_add_avx512);
#endif
    check_add_fn("best", sqz_conv_add_best());
}

/* ---- down conv fusion (session.c fuse_down): a stride-2 residual block
 * B = Conv3x3 s2 (x), C = Conv3x3 s1 (B), D = Conv1x1 s2 (x), Relu(C + D):
 * D runs inside B on B's band copy where both take px tiles (AVX-512). */
typedef struct dcase {
    const char *name;
    int C, MB, MD, H, W;
    int d_first; /* node order B, D, C (else B, C, D as in ResNet) */
    int d_out;   /* D's output also a graph output */
    int dpad;    /* D with pads 1 and a 3x3 B of pad 2: other output sizes, no fusion */
} dcase;

enum { D_X, D_WB, D_BB, D_YB, D_WC, D_BC, D_YC, D_WD, D_BD, D_YD, D_Z, D_Q, DNT };

static uint8_t *build_down(const dcase *c, const float *wb, const float *bb, const float *wc,
                           const float *bc, const float *wd, const float *bd, size_t *size,
                           int *d_node, int *OH, int *OW) {
    const int bp = c->dpad ? 2 : 1, dp = c->dpad ? 1 : 0;
    const int oh = (c->H + 2 * bp - 3) / 2 + 1, ow = (c->W + 2 * bp - 3) / 2 + 1;
    *OH = oh;
    *OW = ow;
    sb_tensor t[DNT];
    memset(t, 0, sizeof t);
    t[D_X] = (sb_tensor){.name = "x",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, c->C, c->H, c->W}};
#define DW(i, nm, d, n0, n1, n2, n3, nd)                                                           \
    t[i] = (sb_tensor){.name = nm,                                                                 \
                       .dtype = SQZ_DT_F32,                                                        \
                       .flags = SQZ_TF_CONST,                                                      \
                       .ndim = nd,                                                                 \
                       .dims = {n0, n1, n2, n3},                                                   \
                       .data = d,                                                                  \
                       .data_bytes = (size_t)(n0) * (nd > 1 ? (size_t)(n1) * (n2) * (n3) : 1) * 4}
    DW(D_WB, "wb", wb, c->MB, c->C, 3, 3, 4);
    DW(D_BB, "bb", bb, c->MB, 0, 0, 0, 1);
    DW(D_WC, "wc", wc, c->MD, c->MB, 3, 3, 4);
    DW(D_BC, "bc", bc, c->MD, 0, 0, 0, 1);
    DW(D_WD, "wd", wd, c->MD, c->C, 1, 1, 4);
    DW(D_BD, "bd", bd, c->MD, 0, 0, 0, 1);
#undef DW
    const char *names[DNT] = {"x", "wb", "bb", "yb", "wc", "bc", "yc", "wd", "bd", "yd", "z", "q"};
    const int act[] = {D_YB, D_YC, D_YD, D_Z, D_Q};
    for (int i = 0; i < 5; i++)
        t[act[i]] = (sb_tensor){.name = names[act[i]],
                                .dtype = SQZ_DT_F32,
                                .ndim = 4,
                                .dims = {1, act[i] == D_YB ? c->MB : c->MD, oh, ow}};
    static int64_t k3[2] = {3, 3}, k1[2] = {1, 1}, s2[2] = {2, 2}, s1[2] = {1, 1};
    static int64_t pb[4], p1[4] = {1, 1, 1, 1}, pd[4];
    for (int i = 0; i < 4; i++) {
        pb[i] = bp;
        pd[i] = dp;
    }
    static sb_attr ab[3], ac[3], ad[3];
    ab[0] = (sb_attr){.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3};
    ab[1] = (sb_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = s2};
    ab[2] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pb};
    ac[0] = ab[0];
    ac[1] = (sb_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = s1};
    ac[2] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = p1};
    ad[0] = (sb_attr){.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k1};
    ad[1] = ab[1];
    ad[2] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pd};
    static const int32_t ib[] = {D_X, D_WB, D_BB}, ob[] = {D_YB};
    static const int32_t ic[] = {D_YB, D_WC, D_BC}, oc[] = {D_YC};
    static const int32_t id[] = {D_X, D_WD, D_BD}, od[] = {D_YD};
    static const int32_t ia[] = {D_YC, D_YD}, oa[] = {D_Z}, ir[] = {D_Z}, orl[] = {D_Q};
    const sb_node nb = {SQZ_OP_CONV, "b", 3, 1, 3, ib, ob, ab};
    const sb_node nc = {SQZ_OP_CONV, "c", 3, 1, 3, ic, oc, ac};
    const sb_node nd = {SQZ_OP_CONV, "d", 3, 1, 3, id, od, ad};
    sb_node n[5] = {nb,
                    c->d_first ? nd : nc,
                    c->d_first ? nc : nd,
                    {SQZ_OP_ADD, "add", 2, 1, 0, ia, oa, NULL},
                    {SQZ_OP_RELU, "relu", 1, 1, 0, ir, orl, NULL}};
    *d_node = c->d_first ? 1 : 2;
    int32_t gin[1] = {D_X}, gout[2] = {D_Q, D_YD};
    const int ngout = c->d_out ? 2 : 1;
    for (int g = 0; g < ngout; g++) t[gout[g]].flags |= SQZ_TF_OUTPUT;
    return sb_build(t, DNT, n, 5, gin, 1, gout, ngout, size);
}

/* One session: its outputs (two runs, the second checked) and whether D ran */
static result run_down(const uint8_t *file, size_t size, int d_node, int threads, int ref, int fuse,
                       const float *x, size_t nx) {
    result res;
    memset(&res, 0, sizeof res);
    if (fuse)
        unsetenv("SQZ_FUSE_DOWN");
    else
        setenv("SQZ_FUSE_DOWN", "0", 1);
    sqz_model *m = NULL;
    sqz_session *s = ts_open(file, size, threads, ref, &m);
    sqz_status st;
    sqz_node_info info;
    sqz_session_node_info(s, d_node, &info);
    res.fused_skipped = info.skipped;
    for (int rep = 0; rep < 2; rep++) {
        float *xx = malloc(nx * sizeof(float));
        assert_non_null(xx);
        for (size_t i = 0; i < nx; i++) xx[i] = rep ? x[i] : -x[i];
        assert_int_equal(sqz_session_set_input(s, 0, xx, nx, &st), SQZ_OK);
        free(xx);
        if (sqz_session_run(s, &st) != SQZ_OK) fail_msg("run: %s", st.msg);
    }
    ts_take_outputs(&res.o, s, m);
    unsetenv("SQZ_FUSE_DOWN");
    return res;
}

static int n_down_fused;

static void check_down(const dcase *c, const char *isa, int want) {
    tu_rng rng;
    tu_rng_seed(&rng, 500u + (uint64_t)c->C * 7u + (uint64_t)c->MD);
    const size_t nwb = (size_t)c->MB * c->C * 9, nwc = (size_t)c->MD * c->MB * 9,
                 nwd = (size_t)c->MD * c->C;
    float *wb = malloc(nwb * 4), *wc = malloc(nwc * 4), *wd = malloc(nwd * 4);
    float *bb = malloc((size_t)c->MB * 4), *bc = malloc((size_t)c->MD * 4),
          *bd = malloc((size_t)c->MD * 4);
    const size_t nx = (size_t)c->C * c->H * c->W;
    float *x = malloc(nx * 4);
    assert_true(wb && wc && wd && bb && bc && bd && x);
    tu_fill_uniform(&rng, wb, nwb, -0.3f, 0.3f);
    tu_fill_uniform(&rng, wc, nwc, -0.2f, 0.2f);
    tu_fill_uniform(&rng, wd, nwd, -0.5f, 0.5f);
    tu_fill_uniform(&rng, bb, (size_t)c->MB, -0.5f, 0.5f);
    tu_fill_uniform(&rng, bc, (size_t)c->MD, -0.5f, 0.5f);
    tu_fill_uniform(&rng, bd, (size_t)c->MD, -0.5f, 0.5f);
    tu_fill_uniform(&rng, x, nx, -1.5f, 1.5f);
    size_t size;
    int d_node, OH, OW;
    uint8_t *file = build_down(c, wb, bb, wc, bc, wd, bd, &size, &d_node, &OH, &OW);
    want = want && !c->dpad;
    for (int threads = 1; threads <= 2; threads++) {
        result f = run_down(file, size, d_node, threads, 0, 1, x, nx);
        result u = run_down(file, size, d_node, threads, 0, 0, x, nx);
        result ref = run_down(file, size, d_node, 1, 1, 0, x, nx);
        assert_int_equal(f.o.n_out, c->d_out ? 2 : 1);
        assert_int_equal(u.o.n_out, f.o.n_out);
        assert_int_equal(ref.o.n_out, f.o.n_out);
        assert_int_equal(f.o.n[0], (size_t)c->MD * OH * OW);
        int pos = 0;
        for (int k = 0; k < f.o.n_out; k++)
            for (size_t i = 0; i < f.o.n[k]; i++) {
                float a = f.o.out[k][i], e = ref.o.out[k][i];
                pos += e > 0.0f;
                if (memcmp(&a, &u.o.out[k][i], sizeof a))
                    fail_msg("%s [%s, %d thr]: output %d [%zu] fused %.9g, unfused %.9g", c->name,
                             isa, threads, k, i, a, u.o.out[k][i]);
                if (!(fabsf(a - e) <= 1e-5f * (1.0f + fabsf(e))))
                    fail_msg("%s [%s, %d thr]: output %d [%zu] = %.9g, reference %.9g", c->name,
                             isa, threads, k, i, a, e);
            }
        /* the Relu leaves something: not all zeros */
        assert_true(pos > 0);
        assert_int_equal(u.fused_skipped, 0);
        assert_int_equal(ref.fused_skipped, 0);
        if (f.fused_skipped != want)
            fail_msg("%s [%s, %d thr]: %s", c->name, isa, threads,
                     want ? "D not fused" : "D fused although it must not");
        n_down_fused += f.fused_skipped;
        result_free(&f);
        result_free(&u);
        result_free(&ref);
    }
    free(file);
    free(wb);
    free(wc);
    free(wd);
    free(bb);
    free(bc);
    free(bd);
    free(x);
}

/* name, C, MB, MD, H, W, d_first, d_out, dpad */
static const dcase DCASES[] = {
    /* the small ResNet's two blocks (split by rows / by channels at 2 threads) */
    {"resnet 16->32 @28", 16, 32, 32, 28, 28, 0, 0, 0},
    {"resnet 32->64 @14", 32, 64, 64, 14, 14, 0, 0, 0},
    /* odd sizes and channel counts, D before C, D a graph output too */
    {"odd 5->17/20 @15x17", 5, 17, 20, 15, 17, 0, 0, 0},
    {"odd 7->36/19 @13x9 D first", 7, 36, 19, 13, 9, 1, 0, 0},
    {"odd 3->40/33 @9x30 D out", 3, 40, 33, 9, 30, 0, 1, 0},
    {"1 channel @21x11, D first, D out", 1, 16, 48, 21, 11, 1, 1, 0},
    /* other output planes: not fused */
    {"D padded: no fusion", 6, 20, 24, 11, 12, 0, 0, 1},
};

static void test_down_fusion(void **state) {
    (void)state;
    setenv("SQZ_PAR_MIN_MACS", "1", 1);
    setenv("SQZ_CONV_PX", "1", 1);  /* B and D on px tiles where the kernel has them */
    setenv("SQZ_WINOGRAD", "0", 1); /* C direct: the 1e-5 comparison is about D */
    n_down_fused = 0;
    int px = 0;
#if defined(__x86_64__)
    px = sqz_cpu_has_avx512();
#endif
    for (size_t i = 0; i < sizeof DCASES / sizeof DCASES[0]; i++)
        check_down(&DCASES[i], "best", px);
#if defined(__x86_64__)
    if (sqz_cpu_isa_hw() >= SQZ_ISA_AVX2) { /* no px tiles: D runs on its own */
        sqz_cpu_set_isa_cap(SQZ_ISA_AVX2);
        for (size_t i = 0; i < sizeof DCASES / sizeof DCASES[0]; i++)
            check_down(&DCASES[i], "avx2", 0);
        sqz_cpu_set_isa_cap(-1);
    }
#endif
    unsetenv("SQZ_PAR_MIN_MACS");
    unsetenv("SQZ_CONV_PX");
    unsetenv("SQZ_WINOGRAD");
    printf("down conv fusion: %d fused sessions\n", n_down_fused);
    if (px) assert_true(n_down_fused > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_row_simd),
        cmocka_unit_test(test_conv_fusion),
        cmocka_unit_test(test_down_fusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
