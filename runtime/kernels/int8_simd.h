/* int8_simd.h - packed int8 Conv / Gemm / MatMul (common/int8_gemm.c) and
 * depthwise conv (common/int8_dw.c) on ISA microkernels (internal).
 *
 * Two ISAs, one structure; results are bit-identical to ref/int8_linear.c
 * because every path computes the same exact int32 accumulator (int8.h) and
 * the same requantization:
 *   VNNI (AVX-512 VNNI, vpdpbusd): activations as u8 (x + 128), weights s8;
 *     4 consecutive k per 32-bit lane. acc = sum (x+128) w + off,
 *     off[c] = bias[c] - (zp_x + 128) * wsum[c].
 *   AVX2 (vpmaddwd): activations and weights sign-extended to int16, 2
 *     consecutive k per 32-bit lane. acc = sum x w + off,
 *     off[c] = bias[c] - zp_x * wsum[c].
 * Padded taps hold zp_x (VNNI: zp_x + 128), so they contribute 0 after the
 * offset; k beyond K is padded with zero weights.
 *
 * Conv: for each image and group, output pixels are cut into tiles of T
 * (a multiple of 32) pixels; a tile's im2col rows (stage 1, C) are
 * interleaved into the ISA layout (stage 2, ISA file) and multiplied by every
 * block of MR output channels (weights packed at prepare, [kq][MR][q] per
 * block, q = 4 (VNNI) or 2 (AVX2)). Stage 1: pointwise convs read input rows
 * in place; stride-1 convs use a zp-bordered copy of the input and "wide"
 * pixels q = oh * PW + ow (ow < PW), so every im2col row of a tile is the
 * padded plane at a fixed shift (no gather), and the columns ow >= OW are
 * dropped when the tile is stored; other convs gather rows into R[k][T].
 * Gemm / MatMul: output channels (n) along the vector; weights packed at
 * prepare as [n block of NB][kq][NB][q]; the activation row is converted once
 * per run (u8 or int16) and broadcast q elements at a time. */
#ifndef SQZ_KERNELS_INT8_SIMD_H
#define SQZ_KERNELS_INT8_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "int8.h"

enum { SQZ_I8_ISA_AVX2 = 1, SQZ_I8_ISA_VNNI = 2, SQZ_I8_ISA_NEON = 3, SQZ_I8_ISA_DOT = 4 };

/* Layers below this many MACs run on one thread (a few us of work). */
#define SQZ_I8_MT_MIN_MACS ((uint64_t)1 << 19)

/* Threads for a node whose single-thread work is estimated at est_ns:
 * nt (the session's threads, >= 1) when est_ns reaches the split minimum,
 * else 1. The minimum is ~4 us: the team's helper waits for the next job
 * between the nodes of an inference, briefly also with
 * OMP_WAIT_POLICY=passive (par.c TEAM_PASSIVE_SPIN; it was ~60 us while a
 * passive helper slept after every job and each split woke it, 15-25 us).
 * SQZ_I8_SPLIT_NS=<ns> sets the minimum (A/B). Rough 1-thread rates for
 * the estimates: SQZ_I8_NS_* (ns per unit of work). */
int sqz_i8_split_threads(int nt, double est_ns);
#define SQZ_I8_NS_MAC_PW 0.008   /* pointwise conv MAC (~125 GMAC/s) */
#define SQZ_I8_NS_MAC_CONV 0.012 /* other conv MAC (im2col / wide planes) */
#define SQZ_I8_NS_MAC_GEMV 0.04  /* Gemm / MatMul with one row (weight bound) */
#define SQZ_I8_NS_MAC_DW 0.025   /* depthwise MAC (~40 GMAC/s) */
#define SQZ_I8_NS_BYTE 0.1       /* a byte through a pool / element-wise pass */

/* The int8 drivers split their loops through sqz_par_for (par.h): inside the
 * executor's one team per inference there is no parallel region per node (a
 * sleeping worker never delays a node). fn(ctx, i0, i1, part) runs items
 * [i0, i1) on the scratch slice of part (< nt); contiguous ranges. */
typedef void (*sqz_i8_range_fn)(const sqz_op_ctx *ctx, int64_t i0, int64_t i1, int part);
void sqz_i8_par_range(const sqz_op_ctx *ctx, int nt, int64_t n, sqz_i8_range_fn fn);
/* sqz_i8_par_range over nt parts cut where a 1x1 conv's output-channel
 * chunks are (int8.h sqz_i8_conv_chsplit): part t runs items [t nblk / nt
 * mr, (t + 1) nblk / nt mr) clamped to n, the last part up to n. */
void sqz_i8_par_cuts(const sqz_op_ctx *ctx, int nt, int64_t n, int64_t mr, int64_t nblk,
                     sqz_i8_range_fn fn);
/* Items [*c0, *c1) of part t of parts in that cut (parts >= 1). */
static inline void sqz_i8_cut(int64_t t, int64_t parts, int64_t mr, int64_t nblk, int64_t n,
                              int64_t *c0, int64_t *c1) {
    int64_t a = t * nblk / parts * mr, b = t + 1 == parts ? n : (t + 1) * nblk / parts * mr;
    *c0 = a < n ? a : n;
    *c1 = b < n ? b : n;
}
/* Part t of parts of a pair's second node (sqz_i8_conv_fuse_pair) at its
 * cuts, with scratch as its scratch (int8_dw.c, int8_eltwise.c). */
typedef void (*sqz_i8_part_fn)(const sqz_op_ctx *ctx, void *scratch, int t, int parts);
void sqz_i8_dw_part(const sqz_op_ctx *ctx, void *scratch, int t, int parts);
void sqz_i8_gap_part(const sqz_op_ctx *ctx, void *scratch, int t, int parts);

/* Requantization constants of one output channel, in the forms the vector
 * epilogues use. */
typedef struct sqz_i8_rqv {
    float s; /* the float multiplier (int8.h); arrays of them load as vectors */
} sqz_i8_rqv;

/* Epilogue shared by a microkernel call. */
typedef struct sqz_i8_epi {
    const int32_t *off;   /* per channel */
    const sqz_i8_rqv *rq; /* per channel */
    int32_t zp, lo, hi;   /* output zero point and clamp */
    /* 1: |acc s| < 2^30 for every accumulator the layer can produce, so the
     * float -> int32 conversion cannot overflow and a kernel may clamp after
     * it, in int16 / int8 with saturating packs (integer bounds, monotone
     * rounding: the same bits as the float clamp) */
    int iclamp;
} sqz_i8_epi;

/* Conv microkernel: rows co0 .. co0 + mr - 1 (mr <= MR) of the packed weight
 * block wp times the interleaved tile xp (kq groups, T pixels), npx valid
 * pixels; writes y[r * ystride + j] for r < mr, j < npx. */
typedef void (*sqz_i8_conv_mk)(const void *xp, int64_t T, int64_t kq, const int8_t *wp, int mr,
                               int64_t npx, int8_t *y, int64_t ystride, const sqz_i8_epi *e);
/* Stage 2: rows[k] (Kp rows of T readable bytes, signed) -> the ISA layout. */
typedef void (*sqz_i8_interleave)(const int8_t *const *rows, int64_t Kp, int64_t T, void *xp);
/* Gemm microkernel: rows r < nrows of a (u8 / int16, row stride Kp
 * elements), output channels [n0, n0 + nn) of block wp; y row stride N. */
typedef void (*sqz_i8_gemm_mk)(const void *a, int nrows, int64_t Kp, const int8_t *wp, int64_t n0,
                               int64_t nn, int8_t *y, int64_t N, const sqz_i8_epi *e);
/* Activation row conversion: x (K int8) -> a (Kp elements, padded with
 * zp_x so padding contributes 0 after the offset). */
typedef void (*sqz_i8_convert_row)(const int8_t *x, int64_t K, int64_t Kp, int32_t zp_x, void *a);
/* Depthwise: one channel plane padded (PH x PW bytes, border = zp_x) ->
 * y (OH x OW), kh x kw taps w (int8), stride sh, sw, dilation dh, dw. */
typedef void (*sqz_i8_dw_plane)(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh,
                                int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                int64_t OH, int64_t OW, int32_t off, sqz_i8_rqv rq, int32_t zp,
                                int32_t lo, int32_t hi, int8_t *y, int32_t *accbuf);

typedef struct sqz_i8_isa {
    int isa;   /* SQZ_I8_ISA_* */
    int q;     /* k per 32-bit lane: 4 (u8 quads) or 2 (int16 pairs) */
    int mr;    /* conv rows per block */
    int nb;    /* gemm channels per block */
    int esz;   /* bytes per activation element in the packed layouts: 1 or 2 */
    int xbias; /* added to activations: 128 (VNNI) or 0 */
    sqz_i8_conv_mk conv;
    sqz_i8_interleave interleave;
    sqz_i8_gemm_mk gemm;
    sqz_i8_convert_row convert;
    sqz_i8_dw_plane dw;
} sqz_i8_isa;

#if defined(__x86_64__) || defined(_M_X64)
extern const sqz_i8_isa sqz_i8_isa_vnni, sqz_i8_isa_avx2;
/* VNNI depthwise plane: u8 plane (x + 128), w packed [kh][ceil(kw/4)][4],
 * dilation along w 1, stride along w 1 or 2 (int8_avx512.c). Its accbuf,
 * when not NULL, is a quad buffer of 4 x (the plane's bytes + slack) for the
 * stride-1 path (NULL: every quad built per use). */
extern const sqz_i8_dw_plane sqz_i8_dw_plane_vnni;
/* Small depthwise planes (PW <= 64, OW <= 64) on VNNI
 * (sqz_i8_dw_small_vnni, int8_avx512.c): X planes are unpadded H x W,
 * zb = zp_x + 128; buf holds two planes of buf_bytes (>= PH * PW + 64 +
 * the row kernel's read slack), tmp two of tmp_bytes (>= L + 64), qbuf
 * 4 x buf_bytes (the plane kernel's quad buffer) or NULL. */
typedef struct sqz_i8_dw_geom {
    int64_t H, W, pt, pl, PH, PW;
    int64_t kh, kw, sh, sw, dh;
    int64_t OH, OW, P, L; /* output, wide pitch and flat length */
    uint8_t zb;
} sqz_i8_dw_geom;
typedef struct sqz_i8_dw_small {
    sqz_i8_dw_geom gm;
    const int8_t *X;
    int8_t *Y;
    int64_t n_co, in_sp, out_sp;
    const int8_t *w; /* VNNI-packed, wstride bytes per channel */
    int64_t wstride;
    const int32_t *off;
    const sqz_i8_rqv *rq;
    int32_t zp, lo, hi;
    size_t buf_bytes, tmp_bytes;
} sqz_i8_dw_small;
void sqz_i8_dw_small_vnni(const sqz_i8_dw_small *a, int64_t pl0, int64_t pl1, uint8_t *buf,
                          int8_t *tmp, int32_t *qbuf);
/* Depthwise by byte gathers (AVX-512 VBMI + VNNI; int8_avx512.c), for
 * planes whose output rows come in bands of <= 64 outputs reading <= 128
 * contiguous input bytes (small planes: 7x7, 14x14, 28x28 with 3x3):
 * a band's input rows are loaded straight from X (two zmm, x + 128; the
 * bytes past them, at least byte 127, hold zb), and each 16-output group's
 * tap quad q is one vpermi2b of them by the index table idx (byte 4 l + k
 * of lane l = the input byte of tap 4 q + k of output l; 127 for a border
 * tap: zb, real zero), then one vpdpbusd with the channel's 4 weights of
 * quad q. No bordered copy, no per-plane setup; any kernel, stride,
 * dilation and padding. Tables (geometry only, built at prepare): per band
 * 5 int32 (input offset and length <= 127, output offset and length,
 * groups ng <= 4) and, per band, group (4 per band) and quad, 64 index
 * bytes. */
typedef struct sqz_i8_dw_gather {
    int64_t nb, nq; /* bands, tap quads ceil(kh kw / 4) */
    const int32_t *band;
    const uint8_t *idx;
    const int8_t *w; /* [n_co][nq][4] */
    const int32_t *off;
    const sqz_i8_rqv *rq;
    int32_t zp, lo, hi;
    uint8_t zb; /* zp_x + 128 */
    int iclamp; /* sqz_i8_epi.iclamp */
    /* > 0: every band but maybe the last holds g1 <= 16 outputs (one group)
     * at output offset b g1; with iclamp, four such bands share one
     * epilogue and one store (stride-2 planes of ~22..42 columns, whose
     * bands are one output row) */
    int64_t g1;
    int64_t n_co, in_sp, out_sp;
    const int8_t *X;
    int8_t *Y;
} sqz_i8_dw_gather;
/* planes [pl0, pl1) of X / Y (channel = plane % n_co). */
void sqz_i8_dw_gather_vbmi(const sqz_i8_dw_gather *a, int64_t pl0, int64_t pl1);
/* Depthwise 3-row kernels on output rows of 9..16 columns (AVX-512 VBMI +
 * VNNI; int8_avx512.c): kernel 3 x (<= 4) columns, stride along h 1 or 2,
 * input rows of <= 63 bytes. One vector per output row (lane ow); the tap
 * quads of an input row (lane ow: the 4 bytes its kernel row reads, u8 x +
 * 128, zb at borders and past kw) are one vpermb of the row by the index
 * idx (127: zb), made once and used by the up to 3
 * output rows that read that input row, where the gather kernel permutes
 * once per tap quad and output group: 14x14 3x3 stride 1, 14 instead of 42
 * permutes a plane. Four rows share an epilogue; cidx packs their OW
 * outputs (byte k < 4 OW: output i = k % OW of row j = k / OW, at byte
 * 16 (i / 4) + 4 j + i % 4 after the two packs). */
typedef struct sqz_i8_dw_rows {
    uint8_t idx[64], cidx[64];
    /* not NULL: two output rows of <= 8 columns a vector, stride 1 along
     * h, planes of <= 63 bytes; table m (m <= 2 ceil(OH / 2)): the quads of
     * input rows m - pt (lanes 0..7) and m + 1 - pt (lanes 8..15); cidx
     * then packs 8 rows (output ow of row 2 j + h: lane 8 h + ow, group j) */
    const uint8_t *pidx;
    int64_t H, W, OH, OW, sh, pt;
    const int8_t *w; /* [n_co][3][4], zero past kw */
    const int32_t *off;
    const sqz_i8_rqv *rq;
    int32_t zp, lo, hi;
    uint8_t zb;
    int iclamp; /* sqz_i8_epi.iclamp */
    int64_t n_co, in_sp, out_sp;
    const int8_t *X;
    int8_t *Y;
} sqz_i8_dw_rows;
/* planes [pl0, pl1) (channel = plane % n_co). */
void sqz_i8_dw_rows_vbmi(const sqz_i8_dw_rows *a, int64_t pl0, int64_t pl1);
/* dst[j] = src[2 j], j < n (vpmovwb of 64-byte loads; reads src[0 .. 2 n - 2]
 * only; AVX-512 BW; int8_avx512.c). */
void sqz_i8_even_bytes_avx512(const int8_t *src, int64_t n, int8_t *dst);
/* Phase plane (fh, fw) of an H x W int8 plane x for a conv with strides
 * sh, sw (sw 1 or 2) and top / left pads pt, pl: d[i][j] = x[i sh + fh - pt]
 * [j sw + fw - pl], zp outside x; PH x PW bytes (AVX-512 BW; int8_avx512.c;
 * the vector form of int8_gemm.c's conv_fill rows). */
void sqz_i8_phase_plane_avx512(const int8_t *x, int64_t H, int64_t W, int64_t sh, int64_t sw,
                               int64_t fh, int64_t fw, int64_t pt, int64_t pl, int64_t PH,
                               int64_t PW, int8_t zp, int8_t *d);
/* Channel-quad phase plane (AVX-512 VBMI; int8_avx512.c): the phase (fh,
 * fw) of four H x W int8 planes x[0..3] for a conv with strides sh, sw (sw
 * 1 or 2) and top / left pads pt, pl, interleaved as quads of u8:
 * d[(i PW + j) 4 + c] = x[c][i sh + fh - pt][j sw + fw - pl] + 128, and
 * zp + 128 outside the plane or where x[c] is NULL; PH x PW quads. */
void sqz_i8_quad_plane_vbmi(const int8_t *const x[4], int64_t H, int64_t W, int64_t sh, int64_t sw,
                            int64_t fh, int64_t fw, int64_t pt, int64_t pl, int64_t PH, int64_t PW,
                            int8_t zp, uint8_t *d);
/* The VNNI interleave (sqz_i8_interleave) with VBMI (int8_avx512.c). */
void sqz_i8_interleave_vbmi(const int8_t *const *rows, int64_t Kp, int64_t T, void *xp);
/* Tap quads of a u8 plane (AVX-512 VBMI; int8_avx512.c): Q[m] = the bytes
 * plane[m .. m + 3] for m < n rounded up to 16 (reads plane[0 .. that + 63]). */
void sqz_i8_tap_quads_vbmi(const uint8_t *plane, int64_t n, int32_t *Q);
/* Conv microkernel on quad planes (AVX-512 VNNI + VBMI; int8_avx512.c):
 * sqz_i8_conv_mk's computation, the quads of tile pixel j for k-quad k at
 * xb + qoff[k] + 4 j. Stores straight into y (row stride ys): per group of
 * 32 pixels g, gout[2 g + 1] outputs at y + gout[2 g] (consecutive), output
 * i of them from byte gidx[64 g + i] of the group's packed results (row r:
 * 128-bit lane L holds pixels 4 L .. 4 L + 3 at bytes 16 L .., pixels 16 +
 * 4 L .. at 16 L + 4; row r + 1 at + 8), gidx[64 g + 32 + i] = that + 8. */
void sqz_i8_conv_q_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp,
                        int mr, int64_t npx, const uint8_t *gidx, const int32_t *gout, int8_t *y,
                        int64_t ys, const sqz_i8_epi *e);
/* The same conv with the output channels along the lanes (AVX-512 VNNI +
 * VBMI; int8_avx512.c): no lanes for the wide columns (7x7 maps: 63 wide
 * pixels in two 32-pixel groups for 49 outputs). A block of 32 channels
 * (wp packed [kq][32][4]; the first nco <= 32 real) in two vectors, each
 * output row oh0 <= oh < oh1 cut into equal segments of <= 8 columns; per k-quad each
 * pixel's activation quad (at xb + qoff[k] + 4 (oh PW + ow)) is broadcast
 * into two vpdpbusd. A segment's bytes are transposed to channel rows by
 * vpermt2b and stored at y[c ys + oh OW + ow]. */
void sqz_i8_conv_rows_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp,
                           int nco, int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int8_t *y,
                           int64_t ys, const sqz_i8_epi *e);
/* The same for blocks of <= 16 channels (nco of them real): lane 2 i + j
 * of the two vectors holds channel i (8 + i) of the odd / even pixel j of
 * a pair, so one 8-byte broadcast (two wide pixels' quads) feeds both
 * vectors; wp packed [kq][2][8][2][4] (each channel's quad twice); rows cut
 * into equal segments of <= 16 columns. */
void sqz_i8_conv_pairs_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp,
                            int nco, int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int8_t *y,
                            int64_t ys, const sqz_i8_epi *e);
/* rows rows of n bytes: src (row stride ss) -> dst (row stride ds)
 * (AVX-512 BW; int8_avx512.c). */
void sqz_i8_copy_rows_avx512(const int8_t *src, int64_t ss, int8_t *dst, int64_t ds, int rows,
                             int64_t n);
/* The bordered u8 plane (x + 128, border zb) of an H x W int8 plane x:
 * PH x PW bytes at buf, pt rows / pl columns of border before the data
 * (AVX-512 BW; int8_avx512.c). */
void sqz_i8_dw_pack_u8(const int8_t *x, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t PH,
                       int64_t PW, uint8_t zb, uint8_t *buf);
/* QuantizeLinear (f32 -> i8), AVX2 (int8_avx2.c). */
extern const sqz_op_impl sqz_i8_quantize_avx2;
/* DequantizeLinear (i8 -> f32), AVX2 (int8_avx2.c). */
extern const sqz_op_impl sqz_i8_dequantize_avx2;
/* Add of two same-shape i8 tensors, the reference's integer formula on
 * 16 lanes (int8_avx2.c; AVX-512: 16 lanes per vector, int8_avx512.c);
 * broadcasting Adds decline. */
extern const sqz_op_impl sqz_i8_add_avx2, sqz_i8_add_avx512;
/* The Add constants as the reference derives them (int8_avx2.c; returns the
 * prepare code: 1 declines, -1 fails); y = clamp(zp_y + ((da Ma + db Mb +
 * rnd) >> S), lo, hi) with da = a - zp_a, db = b - zp_b. */
typedef struct sqz_i8_addp {
    int64_t n, Ma, Mb, rnd;
    int32_t S, zp_a, zp_b, zp_y, lo, hi;
} sqz_i8_addp;
int sqz_i8_add_params(sqz_op_ctx *ctx, sqz_i8_addp *p);
/* QLinearMul of a row (int8_avx512.c): y[i] = rq((a[i] - zp_a) * e) with
 * e = b[i] - zp_b, or db for every i when b is NULL; y may alias a or b. */
void sqz_i8_mul_row_avx512(const int8_t *a, const int8_t *b, int64_t n, int32_t zp_a, int32_t zp_b,
                           int32_t db, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi,
                           int8_t *y);
/* y[i] = t[x[i] + 128] (AVX-512 VBMI; int8_avx512.c); y may alias x. */
void sqz_i8_lut256_vbmi(const int8_t *t, const int8_t *x, int8_t *y, int64_t n);
/* QuantizeLinear of x[0..n) (AVX-512; int8_avx512.c): int8_avx2.c's
 * formula and its x * rcp estimate (rcp = RN(1 / s), nonzero only when that
 * estimate is sound), 16 lanes a step. */
void sqz_i8_quantize_avx512(const float *x, int64_t n, float s, float rcp, int32_t zp, int8_t *y);
/* GlobalAveragePool of np planes of sp (< 2^23) bytes at x + i sp into
 * y[i]: the int8.h formula of sum - sp zp_x with multiplier s, output zp_y,
 * clamp [-128, 127] (int8_avx512.c). */
void sqz_i8_gap_planes_avx512(const int8_t *x, int64_t sp, int64_t np, int32_t zp_x, float s,
                              int32_t zp_y, int8_t *y);
/* One output row of a 2x2 stride-2 unpadded MaxPool from input rows x0, x1
 * (2 OW bytes each; AVX-512 BW; int8_avx512.c). */
void sqz_i8_maxpool2_row_avx512(const int8_t *x0, const int8_t *x1, int64_t OW, int8_t *y);
/* np planes of that pool (OW <= 32): input planes x + i in_sp (rows of W
 * bytes), output planes y + i out_sp, OH rows of OW (int8_avx512.c). */
void sqz_i8_maxpool2_planes_avx512(const int8_t *x, int64_t W, int64_t in_sp, int64_t OH,
                                   int64_t OW, int64_t out_sp, int64_t np, int8_t *y);
/* One output row of a MaxPool with stride 2 along w and k (<= 15) taps
 * there, from the window's nrows valid input rows of W bytes: output ow
 * covers columns c0 + 2 ow + j (c0 + 2 ow >= 0; columns >= W are -128)
 * (AVX-512 BW; int8_avx512.c). */
void sqz_i8_maxpool_s2_row_avx512(const int8_t *const *rows, int nrows, int64_t W, int64_t c0,
                                  int64_t k, int64_t OW, int8_t *y);
#endif

#if defined(__aarch64__)
/* NEON smlal (int16 x int16, q = 1) for any aarch64 CPU (int8_neon.c) and
 * sdot (q = 4, signed activations) when HWCAP reports asimddp
 * (int8_neon_dot.c); the depthwise plane kernel is NEON smlal for both. */
extern const sqz_i8_isa sqz_i8_isa_neon, sqz_i8_isa_dot;
extern const sqz_i8_dw_plane sqz_i8_dw_plane_neon;
extern const sqz_op_impl sqz_i8_conv_neon, sqz_i8_conv_dot, sqz_i8_gemm_neon, sqz_i8_gemm_dot;
extern const sqz_op_impl sqz_i8_matmul_neon, sqz_i8_matmul_dot, sqz_i8_dwconv_neon;
#endif

/* Requantization constants of a channel. */
sqz_i8_rqv sqz_i8_rqv_of(sqz_rq r);

/* Impls (common/int8_gemm.c, common/int8_dw.c), one per ISA. */
extern const sqz_op_impl sqz_i8_conv_vnni, sqz_i8_conv_avx2;
extern const sqz_op_impl sqz_i8_gemm_vnni, sqz_i8_gemm_avx2;
extern const sqz_op_impl sqz_i8_matmul_vnni, sqz_i8_matmul_avx2;
extern const sqz_op_impl sqz_i8_dwconv_vnni, sqz_i8_dwconv_avx512, sqz_i8_dwconv_avx2;
/* Table-driven element-wise int8 kernels, any CPU (common/int8_lut.c). */
extern const sqz_op_impl sqz_i8_lut_relu, sqz_i8_lut_clip, sqz_i8_lut_add, sqz_i8_lut_dequantize;
extern const sqz_op_impl sqz_i8_lut_concat;
/* Sigmoid / HardSigmoid / HardSwish / Tanh as tables (common/int8_lut.c;
 * the int8 SiLU table: sqz_i8_silu_impl, fastops.h). */
extern const sqz_op_impl sqz_i8_lut_sigmoid, sqz_i8_lut_hard_sigmoid, sqz_i8_lut_hard_swish;
extern const sqz_op_impl sqz_i8_lut_tanh;
/* y = t[x + 128] on any CPU (VBMI when present). */
void sqz_i8_lut256(const int8_t *t, const int8_t *x, int8_t *y, int64_t n);
/* Mul with a per-row (per-channel gate) or same-shape operand, and
 * GlobalAveragePool (common/int8_eltwise.c). */
extern const sqz_op_impl sqz_i8_fast_mul, sqz_i8_fast_gap;
/* int8 MaxPool on -128-bordered planes, any CPU (common/int8_pool.c). */
extern const sqz_op_impl sqz_i8_fast_maxpool;

#endif
