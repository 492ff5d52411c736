/* sqzc/tensor_encode.h - encode one constant tensor for the .sqz DATA section
 * as requested by its sqzc_encoding (payload layout: sqz/format.h).
 *
 * Codebook indices and sparse gaps are packed at their bit widths; with
 * enc->huffman each stream is also canonical-Huffman coded and the smaller of
 * the two forms is kept, per stream. Unless SQZC_ENC_FORCE is given, a
 * tensor whose encoded payload would not be smaller than raw f32 is stored
 * raw. Lossless: the runtime decodes exactly the tensor's f32 values (a -0.0
 * stored sparse comes back as +0.0).
 */
#ifndef SQZC_TENSOR_ENCODE_H
#define SQZC_TENSOR_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size breakdown of one stored tensor (for per-layer reports). */
typedef struct sqzc_enc_stats {
    unsigned encoding;           /* sqz_encoding bits written; SQZ_ENC_RAW if stored raw */
    uint64_t numel;              /* elements */
    uint64_t nnz;                /* values stored (numel when dense) */
    uint64_t n_fillers;          /* sparse filler gap symbols */
    int index_bits;              /* index width used (may exceed the request by one level if a
                                    zero had to be added to a full dense codebook); 0 if none */
    int gap_bits;                /* 0 unless sparse */
    int n_centroids;             /* stored centroids (incl. an added zero) */
    int index_huffman;           /* 1: the index stream is Huffman coded */
    int gap_huffman;             /* 1: the gap stream is Huffman coded */
    uint64_t header_bytes;       /* payload header */
    uint64_t centroid_bytes;     /* centroid table */
    uint64_t index_bytes;        /* value stream: indices (packed or Huffman) or raw f32 values */
    uint64_t gap_bytes;          /* gap stream */
    uint64_t total_bytes;        /* == payload size == header+centroid+index+gap (raw: numel*4) */
    uint64_t index_packed_bytes; /* what plain k-bit packing of the indices takes */
    uint64_t gap_packed_bytes;   /* what plain b-bit packing of the gaps takes */
    uint64_t raw_bytes;          /* numel * 4 */
} sqzc_enc_stats;

/* bits per weight of a stored tensor: total_bytes * 8 / numel (0 if empty) */
static inline double sqzc_enc_bits_per_weight(const sqzc_enc_stats *s) {
    return s->numel ? (double)s->total_bytes * 8.0 / (double)s->numel : 0.0;
}

enum {
    SQZC_ENC_FORCE = 1, /* keep the requested encoding even if raw would be smaller */
};

/* Encode data[0..numel) as requested by enc (NULL: raw). On success *payload
 * is a malloc'd buffer of *size bytes (NULL when *size == 0) to be stored in
 * DATA with the encoding byte st->encoding; returns 0. On a request the data
 * does not satisfy (a non-zero value that is no centroid, a centroid not
 * fp16-exact, bad widths) or OOM returns -1 with a message in err. st must
 * not be NULL. */
int sqzc_tensor_encode(const float *data, uint64_t numel, const sqzc_encoding *enc, int flags,
                       uint8_t **payload, size_t *size, sqzc_enc_stats *st, char *err,
                       size_t err_len);

/* The grid-coded centroid table (sqz/format.h SQZ_PF_GRID, format v3) of
 * c[0..n): the coarsest power-of-two step all centroids are multiples of,
 * then varint steps between them. Returns its length, written to tab (room
 * for 6 + 4 * n bytes), or 0 when c is not strictly ascending or off the
 * grid's bounds. The encoder uses it when it is smaller than the table of
 * fp16 / f32 values. */
size_t sqzc_grid_table(const float *c, int n, uint8_t *tab);

/* For a Huffman-coded codebook request on data holding zeros: encode dense
 * and sparse with 1..8-bit gaps, and keep in *enc (sparse, gap_bits) the
 * layout of the smallest payload (the Huffman code lengths decide, not the
 * packed widths). Other requests are left alone. 0 ok, -1 when no layout
 * encodes (OOM or a request the data does not satisfy). */
int sqzc_encoding_choose_layout(const float *data, uint64_t numel, sqzc_encoding *enc);

#ifdef __cplusplus
}
#endif
#endif
