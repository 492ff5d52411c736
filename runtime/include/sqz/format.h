/* sqz/format.h - the .sqz file format, version 3.
 *
 * Little-endian throughout. Version 2 stores every count, id, shape, string
 * reference and size as a varint (below) and packs tensor payloads back to
 * back, which takes the fixed per-file cost of a small model from tens of KB
 * to about 2 bytes per tensor / id. Version 3 adds the linear codebook
 * (SQZ_PF_LINEAR below: a uniform grid stored as offset + step instead of a
 * centroid table, used for biases) and grid-coded centroid tables
 * (SQZ_PF_GRID: centroids on a power-of-two grid, stored as varint steps);
 * otherwise it is version 2, and a v3 reader
 * loads v2 files (which must not use v3 features). The writer marks a file 3
 * only when it uses a v3 feature, so v2 runtimes keep reading the rest. Layout:
 *
 *   file header (32 bytes)
 *     u8  magic[8]      "SQZMODEL"
 *     u32 version       SQZ_FORMAT_VERSION
 *     u32 flags         0 (reserved)
 *     u32 n_sections    1..SQZ_MAX_SECTIONS
 *     u32 table_crc     CRC-32 (zlib polynomial) of the section table bytes
 *     u64 file_size     total bytes, checked against the actual size
 *   section table: n_sections entries of 24 bytes
 *     u32 type          sqz_section_type; each type at most once
 *     u32 crc           CRC-32 of the section payload
 *     u64 offset        from file start, 8-byte aligned, inside the file
 *     u64 size          payload bytes
 *
 * var  : unsigned LEB128 (7 bits a byte, low group first, high bit = more),
 *        at most 10 bytes and at most 64 bits; every field has a bound below
 *        and a value past it is rejected. zvar: a signed value zigzag-mapped
 *        ((v << 1) ^ (v >> 63)) and stored as var.
 * STRINGS  : a blob of NUL-terminated UTF-8 strings; a string reference is a
 *            var byte offset into it that must land on a string start inside
 *            the blob (offset 0 is the empty string). Names of internal
 *            tensors and of nodes are optional (the writer drops them unless
 *            asked to keep them); the loader names an unnamed tensor "t<id>"
 *            and an unnamed node "n<index>". Graph inputs and outputs are named.
 * TENSORS  : var count (<= 2^24), then per tensor:
 *              var name, u8 dtype, u8 encoding, u8 flags, u8 ndim (<= 8),
 *              var dims[ndim]                   (each <= 2^40, product too)
 *              u8 quant: kind (low 4 bits: 0 none, 1 per-tensor, 2 per-channel,
 *                 3 per-channel symmetric = per-channel with every zero point
 *                 0, not stored) | SQZ_QF_F16_SCALES (scales stored as IEEE
 *                 half; the loader widens them exactly); other bits 0
 *              kind != 0: u8 qaxis, then nq = 1 (per-tensor) or dims[qaxis]
 *                 scales (f32 or f16), then kinds 1 and 2: nq zvar zero points
 *              SQZ_TF_CONST: var data_size (<= 2^40)
 *            Constant payloads lie in DATA in tensor order, back to back from
 *            offset 0, and cover DATA exactly.
 * GRAPH    : var n_nodes (<= 2^22), then per node:
 *              var op, var name,
 *              var n_in (<= 4096), var in[n_in] (tensor id + 1; 0 = absent
 *                optional input),
 *              var n_out (1..4096), var out[n_out] (tensor id)
 *              var n_attr (<= 256), then per attribute:
 *                var name, u8 type (sqz_attr_type),
 *                INT: zvar; FLOAT: f32; INTS: var count, zvar[count];
 *                FLOATS: var count, f32[count]; STRING: var string reference
 *            An absent attribute has its ONNX default; the writer leaves out
 *            Conv dilations / strides of 1, pads of 0, group 1, kernel_shape
 *            equal to the weight's spatial dims, Gemm alpha / beta 1 and
 *            transA / transB 0.
 *            then var n_inputs, var ids[], var n_outputs, var ids[]
 *            Nodes are stored in a valid execution (topological) order.
 * DATA     : tensor payloads (no alignment: the loader copies / decodes each
 *            into its own 64-byte aligned buffer).
 *            encoding RAW: numel values of the tensor's dtype, little-endian:
 *            f32 numel * 4 bytes, i8 numel bytes, i32 numel * 4 bytes
 *            (data_size == numel * sqz_dtype_size(dtype)).
 *            f32 tensors: SQZ_ENC_F16 alone: numel IEEE halves (data_size ==
 *            2 * numel), widened exactly; or an encoded payload (CODEBOOK /
 *            SPARSE / HUFFMAN bits, below), data_size its exact size.
 *            i8 tensors: SQZ_ENC_HUFFMAN alone: one Huffman stream (below) of
 *            numel symbols over the 256 two's-complement byte values.
 *            i32 tensors: SQZ_ENC_VARINT: numel zvar values (each within
 *            int32); with SQZ_ENC_HUFFMAN too: var n_bytes, then one Huffman
 *            stream of n_bytes symbols over 256 that decodes to those zvars.
 *            Every stream must end exactly at the payload's end.
 * METADATA : var count, then (var key, var value) string references.
 *
 * Sections TENSORS, GRAPH and STRINGS are required; the loader validates every
 * count, offset and id before use and rejects the file otherwise.
 *
 * ---- INT8 (quantized) tensors
 * dtypes the runtime accepts: f32, i8, i32 (f16 / u8 are reserved).
 * Quantization record of a tensor (quant, qaxis, nq, scale[], zero_point[]):
 *   quant 0 (SQZ_QUANT_NONE): nq == 0, qaxis 0. Required for f32 tensors.
 *   quant 1 (SQZ_QUANT_PER_TENSOR): nq == 1, qaxis 0.
 *   quant 2 (SQZ_QUANT_PER_CHANNEL): qaxis < ndim, nq == dims[qaxis].
 *   quant 3 (SQZ_QUANT_PER_CHANNEL_SYM): as 2, zero points all 0 (not stored).
 *   Every scale is finite and > 0; real = scale[c] * (q - zero_point[c]).
 * - i8 tensors always carry quant 1, 2 or 3, zero points in [-128, 127].
 *   Activations (non-constant i8) are per-tensor. Weights are i8 constants,
 *   symmetric per output channel (quant 3, or 2 with zero points 0; values in
 *   [-127, 127]); qaxis = output-channel axis (Conv W [Cout, Cin/g, kh, kw]:
 *   0; Gemm B: 1 if transB == 0 else 0; MatMul B [K, N]: 1).
 * - i32 tensors are constants (biases); quant 0, or 1/2/3 with zero point 0.
 *   A bias of a quantized Conv / Gemm / MatMul is in units of
 *   s_x * s_w[c] (its own scales, if stored, are informative only).
 * Ops are dtype-driven (sqz/ops.h): Conv / Gemm / MatMul with an i8 input run
 * the int8 kernels; QuantizeLinear (f32 -> i8) and DequantizeLinear (i8 ->
 * f32) bound the fp32 islands. Requantization (bit-exact on every ISA,
 * "fp32 requantization"): m = s_x * s_w[c] / s_y (computed in double) is
 * stored at prepare as the float s = (float)m (0 < m < 2^30);
 *   v = clamp((float)acc * s, (float)(lo - zp_y), (float)(hi - zp_y))
 *   y = round_half_to_even(v) + zp_y
 * (float arithmetic, default rounding mode; one multiply, so no FMA
 * contraction); lo/hi = [-128, 127] narrowed by a fused RELU / CLIP. Exact
 * conversions for |acc| <= 2^24; beyond, (float)acc is rounded to nearest
 * even, identically on every ISA. QLinearConv-compatible (ONNX rounds half to
 * even) up to the float rounding of m and of the product. Mul, AveragePool,
 * GlobalAveragePool, Concat, Relu / Clip with new params requantize the same
 * way with their own m; Add keeps a fixed-point formula (two multipliers on
 * one shift, round half up, runtime/kernels/ref/int8.c).
 *
 * ---- Encoded tensor payloads (Deep Compression storage, Han et al.,
 * arXiv:1510.00149: weight sharing + relative-index sparse storage + Huffman)
 * The tensor's encoding byte is a bit set: SQZ_ENC_CODEBOOK (values are k-bit
 * indices into a centroid table), SQZ_ENC_SPARSE (only non-zeros are stored,
 * positioned by gaps), SQZ_ENC_HUFFMAN (at least one stream below is
 * canonical-Huffman coded). CODEBOOK and/or SPARSE must be set; other bits 0.
 * Payload, data_size == its exact length (v2: counts are varints):
 *   u8  pflags      SQZ_PF_F16 (centroids are fp16; needs CODEBOOK),
 *                   SQZ_PF_LINEAR (v3: linear codebook; needs CODEBOOK, not
 *                   with SQZ_PF_F16),
 *                   SQZ_PF_GRID (v3: grid-coded centroids; needs CODEBOOK,
 *                   not with SQZ_PF_F16 or SQZ_PF_LINEAR),
 *                   SQZ_PF_IDX_HUFF (value stream Huffman; needs CODEBOOK),
 *                   SQZ_PF_GAP_HUFF (gap stream Huffman; needs SPARSE);
 *                   other bits 0; (IDX_HUFF|GAP_HUFF) != 0 iff SQZ_ENC_HUFFMAN
 *   u8  index_bits  CODEBOOK: k = 1..8; else 0
 *   u8  gap_bits    SPARSE: b = 1..8; else 0
 *   var n_centroids CODEBOOK: 1..2^k (0 only if n_values == 0); else 0
 *   var n_values    values stored: numel (dense) or non-zeros (SPARSE)
 *   var n_gaps      SPARSE: gap symbols, n_values <= n_gaps <= numel; else 0
 *   var value_bytes bytes of the value stream
 *   centroids       n_centroids x (f16 if SQZ_PF_F16 else f32), finite;
 *                   SQZ_PF_LINEAR: zvar offset o (|o| <= 2^24), then f32
 *                   step s (finite, > 0): centroid j = (float)(j + o) * s,
 *                   one IEEE single multiplication (exact on every ISA),
 *                   each finite; n_centroids >= 1;
 *                   SQZ_PF_GRID: zvar e (-149..127), zvar g_0, then
 *                   n_centroids - 1 var d_j (1..2^25), g_j = g_(j-1) + d_j,
 *                   every |g_j| <= 2^24: centroid j = ldexpf(g_j, e), finite
 *                   (ascending centroids); n_centroids >= 1
 *   value stream    CODEBOOK: n_values symbols < n_centroids, either
 *                   packed (k bits each, LSB-first, value_bytes ==
 *                   ceil(n_values*k/8), padding bits 0) or a Huffman
 *                   stream over 2^k symbols (IDX_HUFF);
 *                   no CODEBOOK: n_values f32 (value_bytes == 4*n_values)
 *   gap stream      SPARSE: the rest of the payload (gap_bytes); n_gaps
 *                   symbols < 2^b, packed (b bits each, as above) or a
 *                   Huffman stream over 2^b (GAP_HUFF); not SPARSE: empty
 * Sparse positions: M = 2^b - 1; pos = 0; per gap symbol g: g == M is a filler
 * (pos += M, no value: Deep Compression's filler zero, without storing the
 * zero), else the next value goes to pos + g and pos = pos + g + 1. Every value
 * lands below numel, exactly n_values values are placed, and at the end
 * numel - pos < M (trailing zeros of M or more are coded as fillers, which
 * bounds a payload's expansion). Unplaced elements are +0.0.
 * Huffman stream: u16 n_lens (1..2^alphabet bits); ceil(n_lens/2) bytes of
 * 4-bit code lengths (0 = unused, 1..15; symbol 2j low nibble, 2j+1 high;
 * an unused final nibble is 0); symbols >= n_lens are unused. Codes are
 * canonical (shorter first, then by symbol, as DEFLATE) and must not
 * over-subscribe (Kraft sum <= 1). Then the bit stream: each code written
 * LSB-first starting with its first (most significant) bit, ending in the
 * stream's last byte with zero padding bits.
 */
#ifndef SQZ_FORMAT_H
#define SQZ_FORMAT_H

#include <stdint.h>

#define SQZ_MAGIC "SQZMODEL"
#define SQZ_MAGIC_LEN 8
#define SQZ_FORMAT_VERSION 3u
#define SQZ_FORMAT_VERSION_MIN 2u /* oldest version this runtime reads */
#define SQZ_HEADER_BYTES 32u
#define SQZ_SECTION_ENTRY_BYTES 24u
#define SQZ_MAX_SECTIONS 16u

typedef enum sqz_section_type {
    SQZ_SEC_STRINGS = 1,
    SQZ_SEC_TENSORS = 2,
    SQZ_SEC_GRAPH = 3,
    SQZ_SEC_DATA = 4,
    SQZ_SEC_METADATA = 5,
} sqz_section_type;

typedef enum sqz_dtype {
    SQZ_DT_F32 = 1,
    SQZ_DT_F16 = 2,
    SQZ_DT_I8 = 3,
    SQZ_DT_I32 = 4,
    SQZ_DT_U8 = 5,
} sqz_dtype;

typedef enum sqz_encoding {
    SQZ_ENC_RAW = 0,
    /* bits of an encoded payload (layout above) */
    SQZ_ENC_CODEBOOK = 1,
    SQZ_ENC_SPARSE = 2,
    SQZ_ENC_HUFFMAN = 4,
    /* v2: f32 stored as IEEE half (alone); i32 stored as zigzag varints */
    SQZ_ENC_F16 = 8,
    SQZ_ENC_VARINT = 16,
} sqz_encoding;

#define SQZ_ENC_ALL 7u /* the bits of a codebook / sparse payload */
#define SQZ_VAR_MAX_BYTES 10u
#define SQZ_PAYLOAD_HEADER_MIN 7u /* 3 bytes + 4 one-byte varints */
/* payload pflags */
#define SQZ_PF_F16 1u
#define SQZ_PF_IDX_HUFF 2u
#define SQZ_PF_GAP_HUFF 4u
#define SQZ_PF_LINEAR 8u /* v3 */
#define SQZ_PF_GRID 16u  /* v3 */
#define SQZ_LINEAR_MAX_OFFSET (1 << 24)

/* Quantization record kinds (tensor record byte "quant"). */
typedef enum sqz_quant_kind {
    SQZ_QUANT_NONE = 0,
    SQZ_QUANT_PER_TENSOR = 1,
    SQZ_QUANT_PER_CHANNEL = 2,
    SQZ_QUANT_PER_CHANNEL_SYM = 3, /* per-channel, zero points 0 and not stored */
} sqz_quant_kind;

#define SQZ_QF_F16_SCALES 0x10u /* quant byte: scales stored as f16 */
#define SQZ_QF_KIND_MASK 0x0fu

typedef enum sqz_tensor_flags {
    SQZ_TF_CONST = 1,  /* has data */
    SQZ_TF_INPUT = 2,  /* graph input */
    SQZ_TF_OUTPUT = 4, /* graph output */
} sqz_tensor_flags;

/* Size in bytes of one element, 0 for an unknown dtype. */
static inline unsigned sqz_dtype_size(unsigned dt) {
    switch (dt) {
    case SQZ_DT_F32:
        return 4;
    case SQZ_DT_F16:
        return 2;
    case SQZ_DT_I8:
        return 1;
    case SQZ_DT_I32:
        return 4;
    case SQZ_DT_U8:
        return 1;
    default:
        return 0;
    }
}

/* CRC-32 (IEEE 802.3 / zlib polynomial, reflected 0xEDB88320); the runtime's
 * own implementation, tested against zlib's crc32(). */
uint32_t sqz_crc32(uint32_t crc, const void *data, uint64_t len);

#endif
