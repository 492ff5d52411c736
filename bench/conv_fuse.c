/* bench/conv_fuse.c - the executor's conv epilogue fusions (session.c
 * fuse_conv_add / fuse_conv_silu) on single blocks of the torchvision models:
 * Conv -> Add(residual) -> Relu and Conv -> Sigmoid -> Mul, a fused and an
 * unfused (SQZ_FUSE_CONV=0) session of the same graph timed in alternation
 * (fused, unfused, fused, ...), so both see the same machine state. The
 * residual is a graph input set before every run (as in the models, where
 * it was written a few nodes earlier).
 *
 * usage: bench_conv_fuse [--threads 1,2] [--runs R] [--cpu] [--cold]
 * Prints per block: median and min ms of each, and fused / unfused of the
 * medians (< 1: the fusion pays). --cpu: process CPU time instead of wall
 * time (1 thread on a shared machine). --cold: 16 MB written before each
 * run, so the inputs come from L3 / memory as in a model, where the
 * residual was written several nodes earlier (the time of that write is
 * outside the timed run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqz/sqz.h"
#include "sqzbuild.h"

enum { PAT_ADD_RELU, PAT_ADD, PAT_SILU };

typedef struct blk {
    const char *name;
    int C, M, H, W, k, stride, group, pat;
} blk;

/* name, C, M, H, W, k, stride, group, pattern */
static const blk BLOCKS[] = {
    {"resnet18 3x3 64->64 @56 +add+relu", 64, 64, 56, 56, 3, 1, 1, PAT_ADD_RELU},
    {"resnet18 3x3 256->256 @14 +add+relu", 256, 256, 14, 14, 3, 1, 1, PAT_ADD_RELU},
    {"mv2 1x1 144->24 @56 +add", 144, 24, 56, 56, 1, 1, 1, PAT_ADD},
    {"mv2 1x1 192->32 @28 +add", 192, 32, 28, 28, 1, 1, 1, PAT_ADD},
    {"mnasnet 1x1 1152->192 @7 +add", 1152, 192, 7, 7, 1, 1, 1, PAT_ADD},
    {"effnet 3x3 s2 3->32 @224 +silu", 3, 32, 224, 224, 3, 2, 1, PAT_SILU},
    {"effnet 1x1 16->96 @112 +silu", 16, 96, 112, 112, 1, 1, 1, PAT_SILU},
    {"effnet dw3x3 96 @112 s2 +silu", 96, 96, 112, 112, 3, 2, 96, PAT_SILU},
    {"effnet 1x1 24->144 @56 +silu", 24, 144, 56, 56, 1, 1, 1, PAT_SILU},
    {"effnet dw5x5 144 @56 +silu", 144, 144, 56, 56, 5, 1, 144, PAT_SILU},
    {"effnet 1x1 192->1152 @7 +silu", 192, 1152, 7, 7, 1, 1, 1, PAT_SILU},
    {"effnet 1x1 320->1280 @7 +silu", 320, 1280, 7, 7, 1, 1, 1, PAT_SILU},
    {"effnet se 1x1 1152->48 @1 +silu", 1152, 48, 1, 1, 1, 1, 1, PAT_SILU},
};

enum { T_X, T_R, T_W, T_B, T_Y, T_S, T_Z, T_Q, NT };

static uint8_t *build(const blk *b, float *w, float *bias, size_t *size, int *oh, int *ow) {
    const int pad = b->k / 2;
    const int OH = (b->H + 2 * pad - b->k) / b->stride + 1,
              OW = (b->W + 2 * pad - b->k) / b->stride + 1;
    *oh = OH;
    *ow = OW;
    const int cg = b->C / b->group;
    sb_tensor t[NT];
    memset(t, 0, sizeof t);
    t[T_X] = (sb_tensor){.name = "x",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, b->C, b->H, b->W}};
    t[T_R] = (sb_tensor){.name = "r",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, b->M, OH, OW}};
    if (b->pat == PAT_SILU) t[T_R].flags = 0;
    t[T_W] = (sb_tensor){.name = "w",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_CONST,
                         .ndim = 4,
                         .dims = {b->M, cg, b->k, b->k},
                         .data = w,
                         .data_bytes = (size_t)b->M * cg * b->k * b->k * 4};
    t[T_B] = (sb_tensor){.name = "b",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_CONST,
                         .ndim = 1,
                         .dims = {b->M},
                         .data = bias,
                         .data_bytes = (size_t)b->M * 4};
    const char *names[NT] = {"x", "r", "w", "b", "y", "s", "z", "q"};
    for (int i = T_Y; i < NT; i++)
        t[i] = (sb_tensor){
            .name = names[i], .dtype = SQZ_DT_F32, .ndim = 4, .dims = {1, b->M, OH, OW}};
    static int64_t ks[2], st[2], pads[4], grp;
    ks[0] = ks[1] = b->k;
    st[0] = st[1] = b->stride;
    pads[0] = pads[1] = pads[2] = pads[3] = pad;
    grp = b->group;
    static const sb_attr ca[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = ks},
        {.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = st},
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pads},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &grp}};
    static const int32_t i_c[] = {T_X, T_W, T_B}, o_c[] = {T_Y}, i_a[] = {T_Y, T_R}, o_z[] = {T_Z},
                         i_z[] = {T_Z}, o_q[] = {T_Q}, i_y[] = {T_Y}, o_s[] = {T_S},
                         i_m[] = {T_Y, T_S};
    sb_node n[3];
    int nn = 0;
    int32_t gin[2] = {T_X, T_R}, gout[1] = {T_Z};
    n[nn++] = (sb_node){SQZ_OP_CONV, "conv", 3, 1, 4, i_c, o_c, ca};
    if (b->pat == PAT_SILU) {
        n[nn++] = (sb_node){SQZ_OP_SIGMOID, "sig", 1, 1, 0, i_y, o_s, NULL};
        n[nn++] = (sb_node){SQZ_OP_MUL, "mul", 2, 1, 0, i_m, o_z, NULL};
    } else {
        n[nn++] = (sb_node){SQZ_OP_ADD, "add", 2, 1, 0, i_a, o_z, NULL};
        if (b->pat == PAT_ADD_RELU) {
            n[nn++] = (sb_node){SQZ_OP_RELU, "relu", 1, 1, 0, i_z, o_q, NULL};
            gout[0] = T_Q;
        }
    }
    t[gout[0]].flags |= SQZ_TF_OUTPUT;
    return sb_build(t, NT, n, nn, gin, b->pat == PAT_SILU ? 1 : 2, gout, 1, size);
}

/* uniform in [0, 1) */
static float frand(void) {
    return (float)(rand() % 65536) / 65536.0f;
}

static int use_cpu;
static double now(void) {
    struct timespec ts;
    clock_gettime(use_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static sqz_session *make(sqz_model *m, int threads, int fuse) {
    if (fuse)
        unsetenv("SQZ_FUSE_CONV");
    else
        setenv("SQZ_FUSE_CONV", "0", 1);
    sqz_session_options o;
    sqz_session_options_init(&o);
    o.num_threads = threads;
    sqz_session *s = NULL;
    sqz_status st;
    if (sqz_session_create(m, &o, &s, &st) != SQZ_OK) {
        fprintf(stderr, "bench_conv_fuse: session: %s\n", st.msg);
        exit(1);
    }
    unsetenv("SQZ_FUSE_CONV");
    return s;
}

static float *evict_buf; /* --cold: written before each run (L2 and most of L3) */
#define EVICT_FLOATS (4u << 20)

static double run_once(sqz_session *s, int n_in, const float *x, size_t nx, const float *r,
                       size_t nr) {
    sqz_status st;
    if (evict_buf)
        for (size_t i = 0; i < EVICT_FLOATS; i += 16) evict_buf[i] += 1.0f;
    sqz_session_set_input(s, 0, x, nx, &st);
    if (n_in > 1) sqz_session_set_input(s, 1, r, nr, &st);
    double t0 = now();
    if (sqz_session_run(s, &st) != SQZ_OK) {
        fprintf(stderr, "bench_conv_fuse: run: %s\n", st.msg);
        exit(1);
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    int runs = 200, threads_list[4] = {1, 2}, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *p = strtok(argv[++i], ","); p && n_threads < 4; p = strtok(NULL, ","))
                threads_list[n_threads++] = atoi(p);
        } else if (!strcmp(argv[i], "--cpu")) {
            use_cpu = 1;
        } else if (!strcmp(argv[i], "--cold")) {
            evict_buf = calloc(EVICT_FLOATS, sizeof(float));
            if (!evict_buf) return 1;
        } else {
            fprintf(stderr, "usage: bench_conv_fuse [--threads 1,2] [--runs R] [--cpu] [--cold]\n");
            return 2;
        }
    }
    if (runs < 4) runs = 4;
    double *tf = malloc((size_t)runs * sizeof *tf), *tu = malloc((size_t)runs * sizeof *tu);
    if (!tf || !tu) return 1;
    printf("%-38s %2s | %-17s | %-17s | %s\n", "block", "T", "fused med / min", "unfused med / min",
           "fused/unfused (medians)");
    for (size_t bi = 0; bi < sizeof BLOCKS / sizeof BLOCKS[0]; bi++) {
        const blk *b = &BLOCKS[bi];
        const size_t nw = (size_t)b->M * (b->C / b->group) * b->k * b->k;
        float *w = malloc(nw * sizeof(float)), *bias = malloc((size_t)b->M * sizeof(float));
        if (!w || !bias) return 1;
        srand(7);
        for (size_t i = 0; i < nw; i++) w[i] = frand() * 0.2f - 0.1f;
        for (int i = 0; i < b->M; i++) bias[i] = frand() - 0.5f;
        size_t size;
        int OH, OW;
        uint8_t *f = build(b, w, bias, &size, &OH, &OW);
        sqz_model *m = NULL;
        sqz_status st;
        if (sqz_model_load_buffer(f, size, &m, &st) != SQZ_OK) {
            fprintf(stderr, "bench_conv_fuse: load: %s\n", st.msg);
            return 1;
        }
        free(f);
        const size_t nx = (size_t)b->C * b->H * b->W, nr = (size_t)b->M * OH * OW;
        float *x = malloc(nx * sizeof(float)), *r = malloc(nr * sizeof(float));
        if (!x || !r) return 1;
        for (size_t i = 0; i < nx; i++) x[i] = frand() * 2 - 1;
        for (size_t i = 0; i < nr; i++) r[i] = frand() * 2 - 1;
        const int n_in = b->pat == PAT_SILU ? 1 : 2;
        for (int ti = 0; ti < n_threads; ti++) {
            int T = threads_list[ti];
            sqz_session *sf = make(m, T, 1), *su = make(m, T, 0);
            for (int i = 0; i < 5; i++) {
                run_once(sf, n_in, x, nx, r, nr);
                run_once(su, n_in, x, nx, r, nr);
            }
            for (int i = 0; i < runs; i++) {
                if (i & 1) {
                    tu[i] = run_once(su, n_in, x, nx, r, nr);
                    tf[i] = run_once(sf, n_in, x, nx, r, nr);
                } else {
                    tf[i] = run_once(sf, n_in, x, nx, r, nr);
                    tu[i] = run_once(su, n_in, x, nx, r, nr);
                }
            }
            qsort(tf, (size_t)runs, sizeof *tf, cmp_d);
            qsort(tu, (size_t)runs, sizeof *tu, cmp_d);
            double mf = tf[runs / 2] * 1e3, mu = tu[runs / 2] * 1e3;
            printf("%-38s %2d | %7.4f / %7.4f | %7.4f / %7.4f | %.3f\n", b->name, T, mf,
                   tf[0] * 1e3, mu, tu[0] * 1e3, mf / mu);
            fflush(stdout);
            sqz_session_free(sf);
            sqz_session_free(su);
        }
        sqz_model_free(m);
        free(x);
        free(r);
        free(w);
        free(bias);
    }
    free(tf);
    free(tu);
    free(evict_buf);
    return 0;
}
