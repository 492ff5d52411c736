/* dwconv.c - depthwise Conv driver (sqz_op_impl), scalar twin and the
 * shared scalar border code. Contract in dwconv.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "act1.h"
#include "cpu.h"
#include "dwconv.h"
#include "par.h"
#include "ref/ref.h"

/* The NEON family exists once neon/dwconv_neon.c does (aarch64 builds). */
#if defined(__aarch64__) && defined(__has_include)
#if __has_include("neon/dwconv_neon.c")
#define SQZ_DW_HAVE_NEON 1
#endif
#endif

#define DW_MAX_EXTENT ((int64_t)1 << 24)
/* parts per thread of a split layer (each with its own plane buffers) */
#define DW_PARTS_PER_THREAD 4
/* the band kernels take stride-1 planes with out_w in (MIN, MAX]
 * (bench_dwconv, same run, band vs the kernels before it: AVX-512 56-wide
 * 1.08-1.34x; 28-wide (the whole-plane kernel) 0.86-0.97x, 112-wide
 * 0.90-0.97x, stride 2 0.86-1.05x, so those keep their kernels; AVX2 56-wide
 * 1.01-1.14x) */
#define DW_BAND_MIN_OW 32
#define DW_BAND_MAX_OW 64
/* 3x3 stride-2 layers with more outputs a row run on the stride-2 kernel's
 * wide-row path (SQZ_DW_S2W=0: the row kernel) */
#define DW_S2_ROW_OW 32
/* row splits (SQZ_DW_SPLIT=rows): bands of DW_ROW_UNIT output rows (the band
 * and whole-plane kernels' passes), fewer parts (each re-reads k - 1 rows) */
#define DW_ROW_UNIT 4
#define DW_ROW_PARTS_PER_THREAD 2
/* layers of fewer MACs (~3 us here) run on one thread (dw_run;
 * SQZ_DW_SPLIT_MACS for A/B) */
#define DW_SPLIT_MACS 32768.0
/* layers below DW_SMALL_MACS (and DW_SPLIT_BYTES of input) split into one
 * part per thread: the helper (par.c) takes the back half of the planes, the
 * half the channel-split 1x1 conv before it wrote on its core. The compact
 * CNN (seven 42K-170K MAC layers) at 2 threads, no other load (chrt -f),
 * same run: unsplit 0.129 ms, 4 parts a thread 0.110, 2 parts 0.106, 1 part
 * 0.104; 8 parts 0.114. With the machine oversubscribed (the helper mostly
 * without a CPU) 0.137 unsplit vs 0.138 split. (Unsplit had been faster with
 * an OpenMP region per node.) Larger layers keep DW_PARTS_PER_THREAD: the
 * 7x7 layers of MobileNetV2 / EfficientNet (~420K MACs) read an input the
 * channel-split expansion before them wrote half on each core, unsplit they
 * ran ~2x their 1-thread time. */
#define DW_SMALL_MACS 262144.0
/* ... unless its input is this big: split over the threads by the producer
 * before it, half of it sits in the other core's cache, and one core
 * reading it all costs more than the split (MobileNetV2's 576-channel 14x14
 * stride-2 layer, 254K MACs, 451 KB in: 24 us at 1 thread, 38-42 us unsplit
 * at 2 threads, 18 us split; SQZ_DW_SPLIT_BYTES for A/B) */
#define DW_SPLIT_BYTES 262144.0

/* ------------------------------------------------------------ CPU support */

#if defined(__x86_64__)
static int cpu_avx2(void) {
    return sqz_cpu_has_avx2_fma();
}
static int cpu_avx512(void) {
    return sqz_cpu_has_avx512();
}
#endif

int sqz_dw_isa_available(int isa) {
    switch (isa) {
    case SQZ_DW_AUTO:
    case SQZ_DW_SCALAR:
        return 1;
#if defined(__x86_64__)
    case SQZ_DW_AVX2:
        return cpu_avx2();
    case SQZ_DW_AVX512:
        return cpu_avx512();
#endif
#if defined(SQZ_DW_HAVE_NEON)
    case SQZ_DW_NEON:
        return sqz_cpu_has_neon();
#endif
    default:
        return 0;
    }
}

const char *sqz_dw_isa_name(int isa) {
    static const char *const names[] = {"auto", "scalar", "avx2", "avx512", "neon"};
    return isa >= 0 && isa <= SQZ_DW_NEON ? names[isa] : "?";
}

int sqz_dwconv_cpu_ok(void) {
    return 1; /* the scalar twin runs everywhere and beats im2col for depthwise */
}

static sqz_dw_row_fn pick_fn(int isa, int k, int s) {
    sqz_dw_row_fn f = NULL;
    (void)k; /* unused when this architecture has no SIMD family */
    (void)s;
    if (!sqz_dw_isa_available(isa)) return NULL;
    switch (isa) {
    case SQZ_DW_AUTO:
#if defined(__x86_64__)
        if (cpu_avx512()) f = sqz_dw_row_avx512(k, s);
        if (!f && cpu_avx2()) f = sqz_dw_row_avx2(k, s);
#endif
#if defined(SQZ_DW_HAVE_NEON)
        if (!f && sqz_cpu_has_neon()) f = sqz_dw_row_neon(k, s);
#endif
        return f ? f : sqz_dw_row_scalar;
    case SQZ_DW_SCALAR:
        return sqz_dw_row_scalar;
#if defined(__x86_64__)
    case SQZ_DW_AVX2:
        return sqz_dw_row_avx2(k, s);
    case SQZ_DW_AVX512:
        return sqz_dw_row_avx512(k, s);
#endif
#if defined(SQZ_DW_HAVE_NEON)
    case SQZ_DW_NEON:
        return sqz_dw_row_neon(k, s);
#endif
    default:
        return NULL;
    }
}

/* ------------------------------------------------------- scalar row code */

float sqz_dw_act1(const sqz_dw_row *a, float v) {
    return sqz_act1(a->act, a->alpha, a->beta, v);
}

void sqz_dw_border(const sqz_dw_row *a, const float *const *rows, float *y, int ox0, int ox1) {
    const int k = a->k, W = a->in_w;
    for (int ox = ox0; ox < ox1; ox++) {
        float acc = a->bias;
        int c0 = ox * a->stride - a->pad_l;
        for (int ky = 0; ky < k; ky++) {
            const float *r = rows[ky];
            const float *w = a->w + ky * k;
            for (int kx = 0; kx < k; kx++) {
                int c = c0 + kx;
                if (c >= 0 && c < W) acc += w[kx] * r[c];
            }
        }
        y[ox] = sqz_dw_act1(a, acc);
    }
}

static void row_scalar1(const sqz_dw_row *a, const float *const *rows, float *y) {
    const int k = a->k, s = a->stride;
    sqz_dw_border(a, rows, y, 0, a->ox_lo);
    for (int ox = a->ox_lo; ox < a->ox_hi; ox++) {
        int c0 = ox * s - a->pad_l;
        float acc = a->bias;
        for (int ky = 0; ky < k; ky++) {
            const float *r = rows[ky] + c0;
            const float *w = a->w + ky * k;
            for (int kx = 0; kx < k; kx++) acc += w[kx] * r[kx];
        }
        y[ox] = sqz_dw_act1(a, acc);
    }
    sqz_dw_border(a, rows, y, a->ox_hi, a->out_w);
}

void sqz_dw_row_scalar(const sqz_dw_row *a, const float *const *rows, float *y, float *y2) {
    row_scalar1(a, rows, y);
    if (y2) row_scalar1(a, rows + a->stride, y2);
}

/* ------------------------------------------------------------- the op */

typedef struct dw_p {
    int64_t N, C;
    int k, s, H, W, OH, OW, pt, pl, ox_lo, ox_hi;
    int has_bias;
    ref_act act; /* the node's activation */
    int post;    /* 1: act applied in a post-pass (sigmoid, hard_sigmoid, tanh) */
    /* the executor's fused SiLU (sqz_dwconv_set_silu), after the activation
     * on each plane (or channel block) just computed, or NULL */
    void (*rowfn)(const float *x, float *y, size_t n);
    sqz_dw_row_fn fn;
    size_t plane_floats; /* > 0: the AVX-512 whole-plane kernel, buffer floats per thread */
    size_t cb_floats;    /* > 0: the AVX-512 channel-block kernel, buffer floats per part */
    size_t band_floats;  /* > 0: the band kernel, buffer floats per part */
    int band_avx2;       /* the band kernel is the AVX2 one (else AVX-512) */
    int s2d;             /* the AVX-512 stride-2 kernel (no buffer) */
    int s1d;             /* the AVX-512 stride-1 direct kernel (no buffer) */
    int p7d;             /* the AVX-512 7x7 3x3 kernel (no buffer) */
    int c2d;             /* the AVX-512 channel-pair kernel (no buffer) */
    int c1d;             /* s1d / s2d planes on the one-channel variant of it */
    int split_rows;      /* threads split the layer by output rows (else planes) */
    double split_macs;   /* layers below this many MACs run on one thread */
    double split_bytes;  /* ... unless their input is at least this many bytes */
    int64_t cblocks;     /* channel blocks of 16 per image (cb kernel) */
    int pw;              /* > 0: rows are read from a zero-padded ring of pw-float rows */
    size_t ring_floats;  /* floats of one part's ring buffer (ring_rows x pw) */
    float *cbw;          /* cb kernel: per block [k*k][16] weights then [16] biases; c2
                          * kernel: per channel pair [k*k + 1][2] weights then biases */
    float zero[];        /* max(W, pw) zeros: the vertical padding row, then the cbw floats */
} dw_p;

/* the post-pass activation on output rows [ob, oe) of plane y */
static void post_rows(const dw_p *p, float *y, int ob, int oe) {
    if (oe <= ob) return;
    float *r = y + (size_t)ob * (size_t)p->OW;
    const size_t n = (size_t)(oe - ob) * (size_t)p->OW;
    if (p->post) ref_act_apply(&p->act, r, n);
    if (p->rowfn) p->rowfn(r, r, n);
}

#if defined(__x86_64__)
/* the plane kernels' geometry (a zeroed struct: whole planes, no act) */
static void geom_args(sqz_dw_plane *a, int k, int s, int H, int W, int OH, int OW, int pt, int pl) {
    *a =
        (sqz_dw_plane){.k = k, .stride = s, .H = H, .W = W, .OH = OH, .OW = OW, .pt = pt, .pl = pl};
}

/* the node's plane-kernel arguments: geometry and in-kernel activation */
static void plane_args(const dw_p *p, sqz_dw_plane *a) {
    geom_args(a, p->k, p->s, p->H, p->W, p->OH, p->OW, p->pt, p->pl);
    a->act = p->post ? SQZ_ACT_NONE : p->act.kind;
    a->alpha = p->act.alpha;
    a->beta = p->act.beta;
}

/* units [b, e) (unit = one block of up to 16 channels of one image) with the
 * channel-block kernel */
static void dw_cblocks_avx512(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e,
                              float *buf) {
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    const size_t in_sp = (size_t)p->H * (size_t)p->W, out_sp = (size_t)p->OH * (size_t)p->OW;
    const size_t kk = (size_t)p->k * (size_t)p->k;
    sqz_dw_plane a;
    plane_args(p, &a);
    sqz_dw_cb_zero_avx512(&a, buf);
    for (int64_t u = b; u < e; u++) {
        int64_t n = u / p->cblocks, cb = u % p->cblocks, c0 = cb * 16;
        a.nc = (int)(p->C - c0 < 16 ? p->C - c0 : 16);
        a.w = p->cbw + (size_t)cb * (kk + 1) * 16;
        a.b = a.w + kk * 16;
        size_t plane = (size_t)(n * p->C + c0);
        float *y = Y + plane * out_sp;
        sqz_dw_cb_run_avx512(&a, X + plane * in_sp, y, buf);
        if (p->post) ref_act_apply(&p->act, y, (size_t)a.nc * out_sp);
        if (p->rowfn) p->rowfn(y, y, (size_t)a.nc * out_sp);
    }
}

/* What the plane drivers below share: the node's tensors and the plane
 * arguments for output rows [ob, oe). */
typedef struct dw_io {
    const float *X, *W, *B;
    float *Y;
    size_t in_sp, out_sp, kk;
    sqz_dw_plane a;
} dw_io;

static void dw_io_init(const dw_p *p, const sqz_op_ctx *ctx, int ob, int oe, dw_io *io) {
    io->X = ctx->in_data[0];
    io->W = ctx->in_data[1];
    io->B = p->has_bias ? ctx->in_data[2] : NULL;
    io->Y = ctx->out_data[0];
    io->in_sp = (size_t)p->H * (size_t)p->W;
    io->out_sp = (size_t)p->OH * (size_t)p->OW;
    io->kk = (size_t)p->k * (size_t)p->k;
    plane_args(p, &io->a);
    io->a.oy0 = ob;
    io->a.oy1 = oe;
}

/* plane i's weights and bias into io->a; returns its output plane */
static float *dw_io_plane(const dw_p *p, dw_io *io, int64_t i) {
    int64_t c = i % p->C;
    io->a.w = io->W + (size_t)c * io->kk;
    io->a.bias = io->B ? io->B[c] : 0.0f;
    return io->Y + (size_t)i * io->out_sp;
}

/* output rows [ob, oe) of planes [b, e) with the whole-plane kernel, buf:
 * this thread's buffer */
static void dw_planes_avx512(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob,
                             int oe, float *buf) {
    dw_io io;
    dw_io_init(p, ctx, ob, oe, &io);
    /* two buffers: plane i + 1 is packed before plane i is computed */
    float *bufs[2] = {buf, buf + p->plane_floats};
    sqz_dw_plane_zero_avx512(&io.a, bufs[0]);
    sqz_dw_plane_zero_avx512(&io.a, bufs[1]);
    if (b < e) sqz_dw_plane_pack_avx512(&io.a, io.X + (size_t)b * io.in_sp, bufs[0]);
    for (int64_t i = b; i < e; i++) {
        if (i + 1 < e)
            sqz_dw_plane_pack_avx512(&io.a, io.X + (size_t)(i + 1) * io.in_sp,
                                     bufs[(i - b + 1) & 1]);
        float *y = dw_io_plane(p, &io, i);
        sqz_dw_plane_compute_avx512(&io.a, bufs[(i - b) & 1], y);
        if (p->post || p->rowfn) post_rows(p, y, ob, oe);
    }
}

/* output rows [ob, oe) of planes [b, e) with the band kernel, buf: this
 * part's buffer */
static void dw_planes_band(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob,
                           int oe, float *buf) {
    dw_io io;
    dw_io_init(p, ctx, ob, oe, &io);
    if (p->band_avx2)
        sqz_dw_band_zero_avx2(&io.a, buf);
    else
        sqz_dw_band_zero_avx512(&io.a, buf);
    for (int64_t i = b; i < e; i++) {
        float *y = dw_io_plane(p, &io, i);
        if (p->band_avx2)
            sqz_dw_band_run_avx2(&io.a, io.X + (size_t)i * io.in_sp, y, buf);
        else
            sqz_dw_band_run_avx512(&io.a, io.X + (size_t)i * io.in_sp, y, buf);
        if (p->post || p->rowfn) post_rows(p, y, ob, oe);
    }
}

/* output rows [ob, oe) of planes [b, e) with the direct kernels (no
 * buffer): the one-channel one (c1d), else stride 1 / stride 2 */
static void dw_planes_direct(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob,
                             int oe) {
    dw_io io;
    dw_io_init(p, ctx, ob, oe, &io);
    for (int64_t i = b; i < e; i++) {
        float *y = dw_io_plane(p, &io, i);
        const float *x = io.X + (size_t)i * io.in_sp;
        if (p->c1d)
            sqz_dw_c1_run_avx512(&io.a, x, y);
        else if (p->s == 2)
            sqz_dw_s2_run_avx512(&io.a, x, y);
        else
            sqz_dw_s1_run_avx512(&io.a, x, y);
        if (p->post || p->rowfn) post_rows(p, y, ob, oe);
    }
}

/* planes [b, e) with the 7x7 3x3 kernel (whole planes: ob = 0, oe = 7,
 * so the planes' outputs are contiguous) */
static void dw_planes_p7(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob,
                         int oe) {
    dw_io io;
    dw_io_init(p, ctx, ob, oe, &io);
    /* the post-pass activation / fused SiLU over 16 planes at once (the
     * planes are contiguous): once per 49-float plane it cost EfficientNet's
     * 1152x7x7 layer 41 -> 53 us at 1 thread, the 49th float of each plane
     * on the scalar tail */
    for (int64_t i0 = b; i0 < e; i0 += 16) {
        const int64_t i1 = e - i0 < 16 ? e : i0 + 16;
        for (int64_t i = i0; i < i1; i++)
            sqz_dw_p7_run_avx512(&io.a, io.X + (size_t)i * io.in_sp, dw_io_plane(p, &io, i));
        if (p->post || p->rowfn) {
            float *y = io.Y + (size_t)i0 * io.out_sp;
            const size_t n = (size_t)(i1 - i0) * io.out_sp;
            if (p->post) ref_act_apply(&p->act, y, n);
            if (p->rowfn) p->rowfn(y, y, n);
        }
    }
}

/* channel pairs [b, e) of the images (unit u: image u / pairs, channels
 * 2 (u % pairs) and the next) with the channel-pair kernel; the post-pass
 * activation / fused SiLU over 8 pairs at once (their planes are contiguous) */
static void dw_pairs_avx512(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e) {
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    const size_t in_sp = (size_t)p->H * (size_t)p->W, out_sp = (size_t)p->OH * (size_t)p->OW;
    const size_t kk = (size_t)p->k * (size_t)p->k;
    const int64_t pairs = (p->C + 1) / 2;
    sqz_dw_plane a;
    plane_args(p, &a);
    for (int64_t u0 = b; u0 < e; u0 += 8) {
        const int64_t u1 = e - u0 < 8 ? e : u0 + 8;
        size_t first = 0, end = 0;
        for (int64_t u = u0; u < u1; u++) {
            const int64_t n = u / pairs, q = u % pairs, c0 = 2 * q;
            a.nc = p->C - c0 < 2 ? 1 : 2;
            a.w = p->cbw + (size_t)q * (kk + 1) * 2;
            const size_t plane = (size_t)(n * p->C + c0);
            sqz_dw_c2_run_avx512(&a, X + plane * in_sp, Y + plane * out_sp);
            if (u == u0) first = plane;
            end = plane + (size_t)a.nc;
        }
        if (p->post || p->rowfn) {
            float *y = Y + first * out_sp;
            const size_t n = (end - first) * out_sp;
            if (p->post) ref_act_apply(&p->act, y, n);
            if (p->rowfn) p->rowfn(y, y, n);
        }
    }
}

/* A kernel choice on/off for A/B, read at prepare: SQZ_DW_<name>=0 turns
 * it off. C2: the channel-pair kernel (off: the kernels before it); C1: its
 * one-channel variant (off: the direct kernels); P7: the 7x7 3x3 kernel
 * (off: the channel blocks); S1 / S2: the stride-1 / stride-2 direct
 * kernels (off: the padded row kernels / the kernels before it); S2W: the
 * stride-2 kernel's 3x3 wide-row path for rows of more than DW_S2_ROW_OW
 * outputs (off: the row kernel); BAND: the band kernel (off: bench_dwconv's
 * comparison with the kernels before it). */
static int env_on(const char *name) {
    const char *e = getenv(name);
    return !(e && e[0] == '0');
}
#endif

/* Threads split a layer by planes (default) or, with SQZ_DW_SPLIT=rows (read
 * at prepare), by output rows: each part a band of rows of every plane, for
 * planes of >= 2 bands (not channel blocks). The idea: the 1x1 convs around
 * a depthwise conv split planes of 28 rows and more by pixels (gemm.c
 * plan_split, printed for MNASNet 1.0 at 2 threads: the 112 / 56 / 28-row
 * expansions with up to 120 channels and the projections), so each core
 * holds the top or bottom rows of every channel, and the team gives the
 * master the first parts (par.c). Measured at 2 threads (MNASNet, per-node
 * minima over 40 runs, the depthwise nodes of >= 28 rows, three interleaved
 * rounds, load ~11): planes 348-364 us, rows 436-447 us (4 or 8 parts) in
 * the rounds where both threads had a core, so planes stay the default;
 * rows is kept for A/B on a quiet machine (bench_dwconv's 2-thread table). */
static int split_rows(const dw_p *p) {
    const char *e = getenv("SQZ_DW_SPLIT");
    return e && e[0] == 'r' && !p->cb_floats && !p->c2d && p->OH >= 2 * DW_ROW_UNIT;
}

/* 1 (decline) unless ctx is a depthwise conv this file covers. */
static int dw_prepare_isa(sqz_op_ctx *ctx, int isa) {
    if (ctx->n_in < 2 || ctx->n_in > 3 || ctx->n_out != 1) return 1;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (x->ndim != 4 || w->ndim != 4) return 1;
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    if (N < 1 || C < 1 || H < 1 || W < 1 || H > DW_MAX_EXTENT || W > DW_MAX_EXTENT) return 1;
    if (N > REF_MAX_NUMEL || C > REF_MAX_NUMEL / N || H * W > REF_MAX_NUMEL / (N * C)) return 1;
    if (sqz_attr_int(ctx->node, "group", 1) != C) return 1;
    if (w->dims[0] != C || w->dims[1] != 1) return 1;
    int64_t k = w->dims[2];
    if ((k != 3 && k != 5) || w->dims[3] != k) return 1;
    int has_bias = ref_has_input(ctx, 2);
    if (has_bias && (ctx->in_shape[2].ndim != 1 || ctx->in_shape[2].dims[0] != C)) return 1;
    ref_geom g;
    if (ref_geom_prepare(ctx, &g, 2, x->dims + 2, w->dims + 2, 0)) return 1;
    if (g.d[1] != 1 || g.d[2] != 1 || g.s[1] != g.s[2] || (g.s[1] != 1 && g.s[1] != 2)) return 1;
    if (g.pb[1] > DW_MAX_EXTENT || g.pe[1] > DW_MAX_EXTENT || g.pb[2] > DW_MAX_EXTENT ||
        g.pe[2] > DW_MAX_EXTENT || g.out[1] < 1 || g.out[2] < 1 || g.out[1] > DW_MAX_EXTENT ||
        g.out[2] > DW_MAX_EXTENT)
        return 1;
    if (g.out[1] * g.out[2] > REF_MAX_NUMEL / (N * C)) return 1;
    ref_act act;
    if (ref_act_prepare(ctx, &act)) return 1;
    sqz_dw_row_fn fn = pick_fn(isa, (int)k, (int)g.s[1]);
#if defined(__x86_64__)
    /* rows of <= 8 outputs (7x7 planes): one 8-lane AVX2 vector beats a
     * mostly masked 16-lane one (bench_dwconv: 960x7x7 k3 6.5 vs 4.9, 1152x7x7
     * k5 9.0 vs 5.9 GMAC/s) */
    if (isa == SQZ_DW_AUTO && g.out[2] <= 8 && cpu_avx2()) {
        sqz_dw_row_fn f2 = sqz_dw_row_avx2((int)k, (int)g.s[1]);
        if (f2) fn = f2;
    }
#endif
    if (!fn) return 1;

    /* the channel-block kernel: AVX-512, constant weights (and bias), a
     * geometry it covers; its weights repacked per block of 16 channels */
    size_t cb_floats = 0, cbw_floats = 0;
    int64_t cblocks = (C + 15) / 16;
    int p7d = 0, c2d = 0; /* the 7x7 3x3 kernel, the channel-pair kernel (x86) */
    (void)p7d;
    (void)c2d;
#if defined(__x86_64__)
    sqz_dw_plane ga; /* the geometry the small-plane kernels' covers check */
    geom_args(&ga, (int)k, (int)g.s[1], (int)H, (int)W, (int)g.out[1], (int)g.out[2], (int)g.pb[1],
              (int)g.pb[2]);
    /* out_w / out_h <= 8: the channel-pair kernel (constant weights, repacked
     * per pair). bench_dwconv, 1 thread, vs the kernels before it (channel
     * blocks; 3x3 s1: the 7x7 kernel): 1152x7x7 k5 34.4 -> 38.0 GMAC/s,
     * k3 25.6 -> 27.1, 576x14x14 k5 s2 20.6 -> 28.0, k3 s2 9.7 -> 18.8. In
     * MNASNet at 1 thread (per-node minima) the 7x7 k5 layers 52-55 -> 37-38
     * us, the 576x14x14 k5 s2 one 47-49 -> 28-30 (no transposes: the channel
     * blocks read 16 planes strided). SQZ_DW_C2=0: the kernels before it. */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && env_on("SQZ_DW_C2") &&
        ctx->in_data && ctx->in_data[1] && (!has_bias || ctx->in_data[2])) {
        c2d = sqz_dw_c2_covers_avx512(&ga);
        if (c2d) cbw_floats = (size_t)((C + 1) / 2) * (size_t)(k * k + 1) * 2;
    }
    /* 3x3 stride 1 on 7x7 planes: the 7x7 kernel, not the channel blocks
     * (README Runtime notes); SQZ_DW_P7=0: the channel blocks */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !c2d &&
        env_on("SQZ_DW_P7")) {
        p7d = sqz_dw_p7_covers_avx512(&ga);
    }
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !p7d && !c2d &&
        ctx->in_data && ctx->in_data[1] && (!has_bias || ctx->in_data[2]) && g.pb[1] < k &&
        g.pb[2] < k) {
        cb_floats = sqz_dw_cb_floats_avx512(&ga);
        if (cb_floats) cbw_floats = (size_t)cblocks * (size_t)(k * k + 1) * 16;
    }
#endif
    /* SIMD row kernels on stride-1 rows wider than the whole-plane kernels
     * cover read a zero-padded copy of the input rows (pw floats: pad_l
     * zeros, the row, zeros up to every full vector block; sqz_dw_row.padded):
     * every block then runs on plain loads, where the direct rows cost
     * masked/expand-load edge blocks on both sides (a 56-wide row: 2 of its
     * 4 blocks). 80x56x56 k3 alone: 0.121 -> 0.098 ms, 32x112x112 k3:
     * 27 -> 30 GMAC/s. Stride 2 gained nothing (bench_dwconv). */
    int pw = 0;
    if (fn != sqz_dw_row_scalar && g.s[1] == 1 && g.out[2] > 32) {
        int64_t owr = (g.out[2] + 15) / 16 * 16;
        int64_t need = g.s[1] * owr + k - 1 + (g.s[1] - 1) * 16, data = g.pb[2] + W;
        int64_t w16 = ((need > data ? need : data) + 15) / 16 * 16;
        if (w16 <= 4096) pw = (int)w16;
    }
    size_t zw = (size_t)W > (size_t)pw ? (size_t)W : (size_t)pw;
    dw_p *p = calloc(1, sizeof(*p) + (zw + cbw_floats) * sizeof(float));
    if (!p) return sqz_op_fail(ctx, "Conv: out of memory");
#if defined(__x86_64__)
    if (c2d) {
        p->cbw = p->zero + zw;
        const float *Wt = ctx->in_data[1], *B = has_bias ? ctx->in_data[2] : NULL;
        const size_t kk = (size_t)(k * k);
        for (int64_t c = 0; c < C; c++) {
            float *pr = p->cbw + (size_t)(c / 2) * (kk + 1) * 2 + (size_t)(c % 2);
            for (size_t t = 0; t < kk; t++) pr[2 * t] = Wt[(size_t)c * kk + t];
            pr[2 * kk] = B ? B[c] : 0.0f;
        }
    }
#endif
    if (cb_floats) {
        p->cb_floats = cb_floats;
        p->cblocks = cblocks;
        p->cbw = p->zero + zw;
        const float *Wt = ctx->in_data[1], *B = has_bias ? ctx->in_data[2] : NULL;
        const size_t kk = (size_t)(k * k);
        for (int64_t c = 0; c < C; c++) {
            float *blk = p->cbw + (size_t)(c / 16) * (kk + 1) * 16;
            for (size_t t = 0; t < kk; t++) blk[t * 16 + (size_t)(c % 16)] = Wt[(size_t)c * kk + t];
            blk[kk * 16 + (size_t)(c % 16)] = B ? B[c] : 0.0f;
        }
    }
    p->N = N;
    p->C = C;
    p->k = (int)k;
    p->s = (int)g.s[1];
    p->H = (int)H;
    p->W = (int)W;
    p->OH = (int)g.out[1];
    p->OW = (int)g.out[2];
    p->pt = (int)g.pb[1];
    p->pl = (int)g.pb[2];
    p->has_bias = has_bias;
    p->act = act;
    p->post =
        act.kind == SQZ_ACT_SIGMOID || act.kind == SQZ_ACT_HARD_SIGMOID || act.kind == SQZ_ACT_TANH;
    p->fn = fn;
    p->pw = pw;
    /* ring rows: the k + s input rows of an output row pair */
    if (pw) p->ring_floats = (size_t)(p->k + p->s) * (size_t)pw;
    /* interior output columns: ox*s - pl >= 0 and ox*s - pl + k - 1 <= W - 1 */
    int s = p->s;
    int lo = (p->pl + s - 1) / s, hi;
    int64_t last = (int64_t)p->W - p->k + p->pl;
    hi = last < 0 ? 0 : (int)(last / s) + 1;
    if (lo > p->OW) lo = p->OW;
    if (hi > p->OW) hi = p->OW;
    if (hi < lo) hi = lo;
    p->ox_lo = lo;
    p->ox_hi = hi;

#if defined(__x86_64__)
    /* small planes: the AVX-512 whole-plane kernel (bench_dwconv: 672x14x14
     * k5 12 -> 36 GMAC/s) */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !p->cb_floats) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        p->plane_floats = sqz_dw_plane_floats_avx512(&pa);
        p->plane_floats = (p->plane_floats + 15) / 16 * 16; /* 64-byte aligned per thread */
    }
    /* wide planes: the AVX-512 band kernel */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !p->cb_floats &&
        p->s == 1 && p->OW > DW_BAND_MIN_OW && p->OW <= DW_BAND_MAX_OW && env_on("SQZ_DW_BAND")) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        p->band_floats = sqz_dw_band_floats_avx512(&pa);
        if (p->band_floats) p->plane_floats = 0;
    }
    /* stride 2: the direct kernel (bench_dwconv, interleaved, vs the
     * whole-plane kernel: 144x56x56 k3 1.3x, k5 1.3-1.4x, 72x56x56 k5 1.2x,
     * 240x28x28 k5 1.1x, 28x28 k3 equal; vs the row kernels on wide rows:
     * 48x112x112 k5 1.14x, 16x224x224 k5 1.39x); 3x3 rows of more than
     * DW_S2_ROW_OW outputs on its wide-row path (48x112x112 k3: 26.1 GMAC/s,
     * the row kernel 18.3, the 4-row groups 14.7) */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !p->cb_floats &&
        p->s == 2 && (p->k != 3 || p->OW <= DW_S2_ROW_OW || env_on("SQZ_DW_S2W")) &&
        env_on("SQZ_DW_S2")) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        if (sqz_dw_s2_covers_avx512(&pa)) {
            p->s2d = 1;
            p->plane_floats = 0;
            p->band_floats = 0;
        }
    }
    /* stride 1, rows wider than the band kernel's: the direct kernel */
    if ((isa == SQZ_DW_AUTO || isa == SQZ_DW_AVX512) && cpu_avx512() && !p->cb_floats &&
        p->s == 1 && p->OW > 8 && (p->OW > 32 || p->k == 3 || p->OW <= 16) && env_on("SQZ_DW_S1")) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        if (sqz_dw_s1_covers_avx512(&pa)) {
            p->s1d = 1;
            p->plane_floats = 0;
            p->band_floats = 0;
        }
    }
    /* out_w <= 16 (the 14x14 stage, stride 2 into it): the one-channel
     * variant of the channel-pair kernel, but 5x5 stride 1 (bench_dwconv, 1
     * thread, vs the direct kernels: 576x14x14 k3 28.4 -> 34.3 GMAC/s,
     * 240x28x28 k3 s2 16.9 -> 19.4, k5 s2 26.8 -> 27.9; 480x14x14 k5 41.6 ->
     * 27.8 stays on the direct one). SQZ_DW_C1=0: the direct kernels. */
    if ((p->s1d || p->s2d) && !(p->k == 5 && p->s == 1) && env_on("SQZ_DW_C1")) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        p->c1d = sqz_dw_c1_covers_avx512(&pa);
    }
    if (p7d || c2d) {
        p->p7d = p7d;
        p->c2d = c2d;
        p->plane_floats = 0;
        p->band_floats = 0;
        p->s1d = 0;
        p->s2d = 0;
    }
    /* the same on AVX2-only CPUs (and the avx2 family) */
    if (((isa == SQZ_DW_AUTO && !cpu_avx512()) || isa == SQZ_DW_AVX2) && cpu_avx2() &&
        !p->band_floats && fn == sqz_dw_row_avx2((int)k, (int)g.s[1]) && p->s == 1 &&
        p->OW > DW_BAND_MIN_OW && p->OW <= DW_BAND_MAX_OW && env_on("SQZ_DW_BAND")) {
        sqz_dw_plane pa;
        plane_args(p, &pa);
        p->band_floats = sqz_dw_band_floats_avx2(&pa);
        p->band_avx2 = p->band_floats != 0;
    }
#endif
    p->split_rows = split_rows(p);
    const char *sm = getenv("SQZ_DW_SPLIT_MACS"); /* A/B of the threshold in dw_run */
    p->split_macs = sm && atof(sm) >= 0.0 ? atof(sm) : DW_SPLIT_MACS;
    const char *sb = getenv("SQZ_DW_SPLIT_BYTES");
    p->split_bytes = sb && atof(sb) >= 0.0 ? atof(sb) : DW_SPLIT_BYTES;
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = 4;
    y->dims[0] = N;
    y->dims[1] = C;
    y->dims[2] = p->OH;
    y->dims[3] = p->OW;
    ctx->params = p;
    ctx->scratch_bytes = 0;
    int parts = ctx->num_threads > 1 ? DW_PARTS_PER_THREAD * ctx->num_threads : 1;
    if (p->plane_floats) ctx->scratch_bytes = (size_t)parts * 2 * p->plane_floats * sizeof(float);
    if (p->cb_floats) ctx->scratch_bytes = (size_t)parts * p->cb_floats * sizeof(float);
    if (p->band_floats) ctx->scratch_bytes = (size_t)parts * p->band_floats * sizeof(float);
    if (p->pw && !p->plane_floats && !p->cb_floats && !p->band_floats && !p->s2d && !p->s1d &&
        !p->p7d && !p->c2d)
        ctx->scratch_bytes = (size_t)parts * p->ring_floats * sizeof(float);
    else
        p->pw = 0;
    return 0;
}

/* output rows [ob, oe) of one plane */
static void dw_plane(const dw_p *p, const float *x, const float *w, float bias, float *y, int ob,
                     int oe) {
    sqz_dw_row a;
    a.w = w;
    a.bias = bias;
    a.k = p->k;
    a.stride = p->s;
    a.in_w = p->W;
    a.out_w = p->OW;
    a.pad_l = p->pl;
    a.ox_lo = p->ox_lo;
    a.ox_hi = p->ox_hi;
    a.padded = 0;
    a.act = p->post ? SQZ_ACT_NONE : p->act.kind;
    a.alpha = p->act.alpha;
    a.beta = p->act.beta;
    const float *rows[5 + 2];
    const int k = p->k, s = p->s, nr = k + s;
    for (int oy = ob; oy < oe; oy += 2) {
        int two = oy + 1 < oe;
        int iy0 = oy * s - p->pt;
        for (int r = 0; r < (two ? nr : k); r++) {
            int iy = iy0 + r;
            rows[r] = iy >= 0 && iy < p->H ? x + (size_t)iy * (size_t)p->W : p->zero;
        }
        float *y0 = y + (size_t)oy * (size_t)p->OW;
        p->fn(&a, rows, y0, two ? y0 + p->OW : NULL);
    }
    if (p->post || p->rowfn) post_rows(p, y, ob, oe);
}

typedef struct dw_job {
    const dw_p *p;
    const sqz_op_ctx *ctx;
    int64_t planes; /* units of work: planes, or channel blocks (cb kernel) */
    int parts;
    int rows; /* 1: each part computes a band of output rows of every plane */
} dw_job;

/* dw_plane on padded rows: input row iy lives in ring slot iy % (k + s), at
 * column pl of a pw-float row whose other columns stay zero (the ring is
 * zeroed by the caller once per part); rows are copied when an output row
 * pair first needs them, each row once per plane. */
static void dw_plane_padded(const dw_p *p, const float *x, const float *w, float bias, float *y,
                            int ob, int oe, float *ring) {
    sqz_dw_row a;
    a.w = w;
    a.bias = bias;
    a.k = p->k;
    a.stride = p->s;
    a.in_w = p->pw;
    a.out_w = p->OW;
    a.pad_l = 0;
    a.ox_lo = 0;
    a.ox_hi = p->OW;
    a.padded = 1;
    a.act = p->post ? SQZ_ACT_NONE : p->act.kind;
    a.alpha = p->act.alpha;
    a.beta = p->act.beta;
    const float *rows[5 + 2];
    const int k = p->k, s = p->s, nr = k + s;
    /* input rows [first, next) are (or were) in the ring */
    int next = ob * s - p->pt > 0 ? ob * s - p->pt : 0;
    for (int oy = ob; oy < oe; oy += 2) {
        int two = oy + 1 < oe;
        int iy0 = oy * s - p->pt;
        for (int r = 0; r < (two ? nr : k); r++) {
            int iy = iy0 + r;
            if (iy < 0 || iy >= p->H) {
                rows[r] = p->zero;
                continue;
            }
            float *slot = ring + (size_t)(iy % nr) * (size_t)p->pw;
            if (iy >= next) {
                memcpy(slot + p->pl, x + (size_t)iy * (size_t)p->W, (size_t)p->W * sizeof(float));
                next = iy + 1;
            }
            rows[r] = slot;
        }
        float *y0 = y + (size_t)oy * (size_t)p->OW;
        p->fn(&a, rows, y0, two ? y0 + p->OW : NULL);
    }
    if (p->post || p->rowfn) post_rows(p, y, ob, oe);
}

/* output rows [ob, oe) of planes [b, e) on padded rows, ring: this part's
 * buffer */
static void dw_planes_padded(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob,
                             int oe, float *ring) {
    const float *X = ctx->in_data[0], *Wt = ctx->in_data[1];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    const size_t in_sp = (size_t)p->H * (size_t)p->W, out_sp = (size_t)p->OH * (size_t)p->OW;
    const size_t kk = (size_t)p->k * (size_t)p->k;
    memset(ring, 0, p->ring_floats * sizeof(float));
    for (int64_t i = b; i < e; i++) {
        int64_t c = i % p->C;
        dw_plane_padded(p, X + (size_t)i * in_sp, Wt + (size_t)c * kk, B ? B[c] : 0.0f,
                        Y + (size_t)i * out_sp, ob, oe, ring);
    }
}

/* output rows [ob, oe) of planes [b, e) */
static void dw_planes(const dw_p *p, const sqz_op_ctx *ctx, int64_t b, int64_t e, int ob, int oe) {
    const float *X = ctx->in_data[0], *Wt = ctx->in_data[1];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    const size_t in_sp = (size_t)p->H * (size_t)p->W, out_sp = (size_t)p->OH * (size_t)p->OW;
    const size_t kk = (size_t)p->k * (size_t)p->k;
    for (int64_t i = b; i < e; i++) {
        int64_t c = i % p->C;
        dw_plane(p, X + (size_t)i * in_sp, Wt + (size_t)c * kk, B ? B[c] : 0.0f,
                 Y + (size_t)i * out_sp, ob, oe);
    }
}

static void dw_part(void *arg, int t) {
    const dw_job *j = arg;
    int64_t b = j->planes * t / j->parts, e = j->planes * (t + 1) / j->parts;
    int ob = 0, oe = j->p->OH;
    if (j->rows) { /* bands of DW_ROW_UNIT rows */
        const int64_t units = (j->p->OH + DW_ROW_UNIT - 1) / DW_ROW_UNIT;
        b = 0;
        e = j->p->N * j->p->C;
        ob = (int)(units * t / j->parts) * DW_ROW_UNIT;
        oe = (int)(units * (t + 1) / j->parts) * DW_ROW_UNIT;
        if (oe > j->p->OH) oe = j->p->OH;
    }
#if defined(__x86_64__)
    if (j->p->cb_floats) {
        dw_cblocks_avx512(j->p, j->ctx, b, e,
                          (float *)j->ctx->scratch + (size_t)t * j->p->cb_floats);
        return;
    }
    if (j->p->s2d || j->p->s1d) {
        dw_planes_direct(j->p, j->ctx, b, e, ob, oe);
        return;
    }
    if (j->p->p7d) {
        dw_planes_p7(j->p, j->ctx, b, e, ob, oe);
        return;
    }
    if (j->p->c2d) {
        dw_pairs_avx512(j->p, j->ctx, b, e);
        return;
    }
    if (j->p->band_floats) {
        dw_planes_band(j->p, j->ctx, b, e, ob, oe,
                       (float *)j->ctx->scratch + (size_t)t * j->p->band_floats);
        return;
    }
    if (j->p->plane_floats) {
        float *buf = (float *)j->ctx->scratch + (size_t)t * 2 * j->p->plane_floats;
        dw_planes_avx512(j->p, j->ctx, b, e, ob, oe, buf);
        return;
    }
#endif
    if (j->p->pw) {
        dw_planes_padded(j->p, j->ctx, b, e, ob, oe,
                         (float *)j->ctx->scratch + (size_t)t * j->p->ring_floats);
        return;
    }
    dw_planes(j->p, j->ctx, b, e, ob, oe);
}

static void dw_run(const sqz_op_ctx *ctx) {
    const dw_p *p = ctx->params;
    const int64_t planes = p->N * p->C;
    const size_t out_sp = (size_t)p->OH * (size_t)p->OW;
    const size_t kk = (size_t)p->k * (size_t)p->k;
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    const double macs = (double)planes * (double)out_sp * (double)kk;
    const int small = macs < DW_SMALL_MACS &&
                      (double)planes * (double)p->H * (double)p->W * sizeof(float) < p->split_bytes;
    if (nt > 1 && small && macs < p->split_macs) nt = 1;
    /* a larger layer in a few parts per thread: a helper that starts late
     * (a sleeping worker, par.h) still takes a share */
    const int rows = nt > 1 && p->split_rows;
    /* row parts: fewer (each re-reads the k - 1 input rows at its edges) */
    int ppt = rows ? DW_ROW_PARTS_PER_THREAD : small ? 1 : DW_PARTS_PER_THREAD;
    int parts = nt > 1 ? ppt * nt : 1;
    const int64_t units = rows           ? (p->OH + DW_ROW_UNIT - 1) / DW_ROW_UNIT
                          : p->cb_floats ? p->N * p->cblocks
                          : p->c2d       ? p->N * ((p->C + 1) / 2)
                                         : planes;
    if (parts > units) parts = (int)units;
    dw_job j = {p, ctx, units, parts, rows};
    sqz_par_for(nt, parts, dw_part, &j);
}

static uint64_t dw_macs(const sqz_op_ctx *ctx) {
    const dw_p *p = ctx->params;
    if (!p) return 0;
    return (uint64_t)p->N * (uint64_t)p->C * (uint64_t)p->OH * (uint64_t)p->OW *
           (uint64_t)(p->k * p->k);
}

static int dw_prepare_auto(sqz_op_ctx *ctx) {
    return dw_prepare_isa(ctx, SQZ_DW_AUTO);
}
static int dw_prepare_scalar(sqz_op_ctx *ctx) {
    return dw_prepare_isa(ctx, SQZ_DW_SCALAR);
}
static int dw_prepare_avx2(sqz_op_ctx *ctx) {
    return dw_prepare_isa(ctx, SQZ_DW_AVX2);
}
static int dw_prepare_avx512(sqz_op_ctx *ctx) {
    return dw_prepare_isa(ctx, SQZ_DW_AVX512);
}
static int dw_prepare_neon(sqz_op_ctx *ctx) {
    return dw_prepare_isa(ctx, SQZ_DW_NEON);
}

const sqz_op_impl sqz_dwconv = {dw_prepare_auto, dw_run, free, dw_macs};

sqz_dw_row_fn sqz_dw_row_best(int k, int stride) {
    return pick_fn(SQZ_DW_AUTO, k, stride);
}

int sqz_dwconv_set_silu(const sqz_op_impl *impl, sqz_op_ctx *ctx,
                        void (*rowfn)(const float *x, float *y, size_t n)) {
    if (!impl || impl->run != dw_run || !ctx->params || !rowfn) return 0;
    ((dw_p *)ctx->params)->rowfn = rowfn;
    return 1;
}
const sqz_op_impl sqz_dwconv_scalar = {dw_prepare_scalar, dw_run, free, dw_macs};
const sqz_op_impl sqz_dwconv_avx2 = {dw_prepare_avx2, dw_run, free, dw_macs};
const sqz_op_impl sqz_dwconv_avx512 = {dw_prepare_avx512, dw_run, free, dw_macs};
const sqz_op_impl sqz_dwconv_neon = {dw_prepare_neon, dw_run, free, dw_macs};
