/* tensor_codec.c - encoded tensor payloads -> dense f32 (layout: sqz/format.h).
 *
 * Every header field is checked against the payload size and the tensor's
 * numel before anything is allocated or read, every stream is checked to
 * end exactly where the header says, every index against the centroid count
 * and every sparse position against numel. */
#include "tensor_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "huffman.h"
#include "sqz/format.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

float sqz_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31u, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            uint32_t e = 0;
            while (!(man & 0x400u)) {
                man <<= 1;
                e++;
            }
            u = sign | (113u - e) << 23 | (man & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0xffu << 23 | man << 13;
    } else {
        u = sign | (exp + 112u) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* unsigned LEB128 of at most max_bytes bytes at p[*pos..size); -1 when
 * truncated or longer */
static int rd_var(const uint8_t *p, uint64_t size, uint64_t *pos, unsigned max_bytes, uint64_t *v) {
    *v = 0;
    for (unsigned i = 0;; i++) {
        if (*pos >= size || i == max_bytes) return -1;
        uint8_t b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) return 0;
    }
}

static int64_t unzig(uint64_t z) {
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* SQZ_PF_GRID table at p[pos..size): checks it and returns its length (0 on
 * error, *msg set); cent (room for nc) gets the centroids when not NULL */
static uint64_t grid_table(const uint8_t *p, uint64_t size, uint64_t pos, unsigned nc, float *cent,
                           const char **msg) {
    uint64_t q = pos, z, d;
    if (rd_var(p, size, &q, 2, &z) != 0) {
        *msg = "grid table truncated or exponent out of range";
        return 0;
    }
    int64_t e = unzig(z), g = 0;
    if (e < -149 || e > 127) {
        *msg = "grid exponent out of range";
        return 0;
    }
    for (unsigned j = 0; j < nc; j++) {
        if (rd_var(p, size, &q, 4, &d) != 0) { /* 4 bytes: 28 bits */
            *msg = "grid table truncated or step out of range";
            return 0;
        }
        if (j == 0) {
            g = unzig(d);
        } else {
            if (d < 1 || d > (1u << 25)) {
                *msg = "grid step out of range";
                return 0;
            }
            g += (int64_t)d;
        }
        if (g > (1 << 24) || g < -(1 << 24)) {
            *msg = "grid value out of range";
            return 0;
        }
        if (cent) cent[j] = ldexpf((float)g, (int)e);
    }
    return q - pos;
}

static uint64_t packed_bytes(uint64_t n, unsigned k) {
    return (n * k + 7) / 8; /* n <= 2^40, k <= 8: no overflow */
}

int sqz_payload_parse(unsigned enc, const uint8_t *p, uint64_t size, uint64_t numel,
                      sqz_payload_info *in, const char **msg) {
#define BAD(m)                                                                                     \
    do {                                                                                           \
        *msg = m;                                                                                  \
        return -1;                                                                                 \
    } while (0)
    if (enc & ~SQZ_ENC_ALL || !(enc & (SQZ_ENC_CODEBOOK | SQZ_ENC_SPARSE))) BAD("unknown encoding");
    if (size < SQZ_PAYLOAD_HEADER_MIN) BAD("payload shorter than its header");
    int cb = (enc & SQZ_ENC_CODEBOOK) != 0, sp = (enc & SQZ_ENC_SPARSE) != 0;
    in->pflags = p[0];
    in->index_bits = p[1];
    in->gap_bits = p[2];
    uint64_t pos = 3, v[4];
    for (int k = 0; k < 4; k++) { /* n_centroids, n_values, n_gaps, value_bytes */
        v[k] = 0;
        for (unsigned i = 0;; i++) {
            if (pos >= size) BAD("payload shorter than its header");
            uint8_t b = p[pos++];
            if (i == SQZ_VAR_MAX_BYTES - 1 && b > 1) BAD("header count over 64 bits");
            v[k] |= (uint64_t)(b & 0x7f) << (7 * i);
            if (!(b & 0x80)) break;
            if (i == SQZ_VAR_MAX_BYTES - 1) BAD("header count over 64 bits");
        }
    }
    if (v[0] > 256 || v[1] > (1ull << 40) || v[2] > (1ull << 40) || v[3] > size)
        BAD("header count out of range");
    in->n_centroids = (unsigned)v[0];
    in->n_values = v[1];
    in->n_gaps = v[2];
    in->value_bytes = v[3];
    in->header_bytes = pos;
    unsigned f = in->pflags;
    if (f & ~(SQZ_PF_F16 | SQZ_PF_IDX_HUFF | SQZ_PF_GAP_HUFF | SQZ_PF_LINEAR | SQZ_PF_GRID))
        BAD("payload flags invalid");
    if (((f & (SQZ_PF_F16 | SQZ_PF_IDX_HUFF | SQZ_PF_LINEAR | SQZ_PF_GRID)) && !cb) ||
        ((f & SQZ_PF_GAP_HUFF) && !sp))
        BAD("payload flags do not match the encoding");
    if ((f & SQZ_PF_LINEAR) && (f & SQZ_PF_F16)) BAD("linear codebook with fp16 centroids");
    if ((f & SQZ_PF_GRID) && (f & (SQZ_PF_F16 | SQZ_PF_LINEAR)))
        BAD("grid centroids with fp16 centroids or a linear codebook");
    if (((f & (SQZ_PF_IDX_HUFF | SQZ_PF_GAP_HUFF)) != 0) != ((enc & SQZ_ENC_HUFFMAN) != 0))
        BAD("Huffman flag does not match the payload");
    if (cb) {
        if (in->index_bits < 1 || in->index_bits > 8) BAD("index width invalid");
        if (in->n_centroids > (1u << in->index_bits)) BAD("more centroids than index values");
        if (in->n_centroids == 0 && in->n_values != 0) BAD("indices without centroids");
    } else if (in->index_bits != 0 || in->n_centroids != 0) {
        BAD("centroids without codebook encoding");
    }
    if (sp) {
        if (in->gap_bits < 1 || in->gap_bits > 8) BAD("gap width invalid");
        if (in->n_values > in->n_gaps || in->n_gaps > numel) BAD("value / gap counts invalid");
    } else {
        if (in->gap_bits != 0 || in->n_gaps != 0) BAD("gaps without sparse encoding");
        if (in->n_values != numel) BAD("value count does not match the shape");
    }
    in->centroid_bytes = (uint64_t)in->n_centroids * ((f & SQZ_PF_F16) ? 2u : 4u);
    in->lin_offset = 0;
    in->lin_step = 0.0f;
    if (f & SQZ_PF_LINEAR) { /* zvar offset + f32 step instead of the table */
        if (in->n_centroids == 0) BAD("linear codebook without centroids");
        uint64_t z = 0, q = pos;
        for (unsigned i = 0;; i++) {
            if (q >= size) BAD("linear codebook truncated");
            uint8_t b = p[q++];
            if (i == 4) BAD("linear codebook offset out of range"); /* > 28 bits */
            z |= (uint64_t)(b & 0x7f) << (7 * i);
            if (!(b & 0x80)) break;
        }
        int64_t o = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        if (o > SQZ_LINEAR_MAX_OFFSET || o < -SQZ_LINEAR_MAX_OFFSET)
            BAD("linear codebook offset out of range");
        if (size - q < 4) BAD("linear codebook truncated");
        uint32_t u = le32(p + q);
        memcpy(&in->lin_step, &u, 4);
        if (!isfinite(in->lin_step) || !(in->lin_step > 0.0f)) BAD("linear codebook step invalid");
        in->lin_offset = o;
        in->centroid_bytes = q + 4 - pos;
    }
    if (f & SQZ_PF_GRID) {
        if (in->n_centroids == 0) BAD("grid centroids without centroids");
        const char *why = NULL;
        uint64_t len = grid_table(p, size, pos, in->n_centroids, NULL, &why);
        if (len == 0) BAD(why);
        in->centroid_bytes = len;
    }
    uint64_t avail = size - in->header_bytes;
    if (in->centroid_bytes > avail || in->value_bytes > avail - in->centroid_bytes)
        BAD("stream sizes do not add up to the payload size");
    in->gap_bytes = avail - in->centroid_bytes - in->value_bytes;
    if (!sp && in->gap_bytes != 0) BAD("stream sizes do not add up to the payload size");
    /* every symbol takes at least one bit and a gap symbol advances at most
     * M = 2^b - 1 positions, with fewer than M trailing zeros: this bounds the
     * expansion of a payload before anything is allocated */
    if (cb && in->n_values > 8 * in->value_bytes) BAD("index stream too short");
    if (sp) {
        uint64_t M = (1u << in->gap_bits) - 1;
        if (in->n_gaps > 8 * in->gap_bytes) BAD("gap stream too short");
        if (numel >= (in->n_gaps + 1) * M) BAD("gap stream cannot cover the tensor");
    }
    if (!cb && in->value_bytes != 4 * in->n_values) BAD("value stream size invalid");
    if (cb && !(f & SQZ_PF_IDX_HUFF) &&
        in->value_bytes != packed_bytes(in->n_values, in->index_bits))
        BAD("index stream size invalid");
    if (sp && !(f & SQZ_PF_GAP_HUFF) && in->gap_bytes != packed_bytes(in->n_gaps, in->gap_bits))
        BAD("gap stream size invalid");
#undef BAD
    return 0;
}

/* n symbols of k bits, LSB-first; len == packed_bytes(n, k) already checked */
static int unpack(const uint8_t *src, uint64_t len, unsigned k, uint8_t *out, uint64_t n) {
    if (k == 8) {
        if (n) memcpy(out, src, n);
        return 0;
    }
    const unsigned mask = (1u << k) - 1;
    uint64_t bit = 0;
    for (uint64_t i = 0; i < n; i++, bit += k) {
        uint64_t b = bit >> 3;
        unsigned sh = (unsigned)(bit & 7), v = src[b];
        if (sh + k > 8) v |= (unsigned)src[b + 1] << 8;
        out[i] = (uint8_t)((v >> sh) & mask);
    }
    uint64_t used = n * k;
    if (used % 8 && (src[len - 1] >> (used % 8)) != 0) return -1;
    return 0;
}

static int read_stream(const uint8_t *src, uint64_t len, unsigned k, int huff, uint8_t *out,
                       uint64_t n, const char **msg) {
    if (huff) return sqz_huff_stream_decode(src, (size_t)len, k, out, (size_t)n, msg);
    if (unpack(src, len, k, out, n) != 0) {
        *msg = "packed stream padding bits not zero";
        return -1;
    }
    return 0;
}

int sqz_tensor_decode(unsigned enc, const uint8_t *p, uint64_t size, uint64_t numel, float *out,
                      char *err, size_t err_len, int *oom) {
    sqz_payload_info in;
    const char *msg = NULL;
    uint8_t *idx = NULL, *gaps = NULL;
    if (oom) *oom = 0;
    if (sqz_payload_parse(enc, p, size, numel, &in, &msg) != 0) goto bad;
    float cent[256];
    const uint8_t *q = p + in.header_bytes;
    if ((in.pflags & SQZ_PF_GRID) &&
        grid_table(p, size, in.header_bytes, in.n_centroids, cent, &msg) == 0)
        goto bad;
    for (unsigned c = 0; c < in.n_centroids; c++) {
        if (in.pflags & SQZ_PF_GRID) {
            /* filled above */
        } else if (in.pflags & SQZ_PF_LINEAR) {
            /* |c + offset| <= 2^24 + 256: exact as float; one rounding */
            cent[c] = (float)((int64_t)c + in.lin_offset) * in.lin_step;
        } else if (in.pflags & SQZ_PF_F16) {
            cent[c] = sqz_f16_to_f32((uint16_t)(q[2 * c] | q[2 * c + 1] << 8));
        } else {
            uint32_t u = le32(q + 4 * c);
            memcpy(&cent[c], &u, 4);
        }
        if (!isfinite(cent[c])) {
            msg = "centroid not finite";
            goto bad;
        }
    }
    const uint8_t *vs = q + in.centroid_bytes, *gs = vs + in.value_bytes;
    int cb = (enc & SQZ_ENC_CODEBOOK) != 0;
    if (cb && in.n_values) {
        idx = malloc((size_t)in.n_values);
        if (!idx) goto nomem;
        if (read_stream(vs, in.value_bytes, in.index_bits, (in.pflags & SQZ_PF_IDX_HUFF) != 0, idx,
                        in.n_values, &msg) != 0)
            goto bad;
        unsigned mx = 0;
        for (uint64_t i = 0; i < in.n_values; i++) mx |= idx[i] >= in.n_centroids;
        if (mx) {
            msg = "codebook index out of range";
            goto bad;
        }
    }
    if (!(enc & SQZ_ENC_SPARSE)) { /* dense codebook */
        for (uint64_t i = 0; i < numel; i++) out[i] = cent[idx[i]];
        free(idx);
        return 0;
    }
    if (in.n_gaps) {
        gaps = malloc((size_t)in.n_gaps);
        if (!gaps) goto nomem;
        if (read_stream(gs, in.gap_bytes, in.gap_bits, (in.pflags & SQZ_PF_GAP_HUFF) != 0, gaps,
                        in.n_gaps, &msg) != 0)
            goto bad;
    }
    if (numel) memset(out, 0, (size_t)numel * sizeof *out);
    const uint64_t M = (1u << in.gap_bits) - 1;
    uint64_t pos = 0, k = 0;
    for (uint64_t i = 0; i < in.n_gaps; i++) {
        uint64_t g = gaps[i];
        if (g == M) {
            pos += M;
            if (pos > numel) goto past_end;
            continue;
        }
        pos += g;
        if (pos >= numel || k >= in.n_values) goto past_end;
        if (cb) {
            out[pos] = cent[idx[k]];
        } else {
            uint32_t u = le32(vs + 4 * k);
            memcpy(&out[pos], &u, 4);
        }
        k++;
        pos++;
    }
    if (k != in.n_values) {
        msg = "gap stream places fewer values than stored";
        goto bad;
    }
    if (numel - pos >= M) {
        msg = "gap stream ends too early (trailing zeros must be fillers)";
        goto bad;
    }
    free(idx);
    free(gaps);
    return 0;
past_end:
    msg = "gap stream runs past the tensor's end or places too many values";
bad:
    snprintf(err, err_len, "%s", msg ? msg : "corrupt payload");
    free(idx);
    free(gaps);
    return -1;
nomem:
    snprintf(err, err_len, "out of memory");
    if (oom) *oom = 1;
    free(idx);
    free(gaps);
    return -1;
}
