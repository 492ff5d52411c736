/* tensor_encode.c - one constant tensor -> encoded .sqz payload
 * (sqzc/tensor_encode.h; layout in sqz/format.h). The storage follows Deep
 * Compression (Han et al., arXiv:1510.00149): shared weights as k-bit indices
 * into a per-tensor codebook, pruned tensors as relative indices (gaps) with
 * filler entries for gaps too long for the gap width, and Huffman coding of
 * both symbol streams when that is smaller. */
#include "sqzc/tensor_encode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/format.h"
#include "sqzc/huffman.h"

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
/* unsigned LEB128 (sqz/format.h "var"); returns its length */
static size_t put_var(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) p[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

/* f32 -> f16 bits if exactly representable; -1 otherwise */
static int f32_to_f16_exact(float f, uint16_t *h) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xff) return -1; /* inf / NaN: never a centroid */
    if (exp == 0) {
        if (man) return -1; /* f32 subnormal: below the f16 range */
        *h = sign;
        return 0;
    }
    int e = (int)exp - 127;
    if (e > 15) return -1;
    if (e >= -14) {
        if (man & 0x1fffu) return -1;
        *h = (uint16_t)(sign | (uint32_t)(e + 15) << 10 | man >> 13);
        return 0;
    }
    if (e < -24) return -1;
    uint32_t full = 0x800000u | man;
    int shift = -1 - e; /* 14..23 */
    if (full & ((1u << shift) - 1)) return -1;
    *h = (uint16_t)(sign | full >> shift);
    return 0;
}

static uint64_t zig(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* The grid-coded table of ascending centroids c[0..n) (sqz/format.h
 * SQZ_PF_GRID): the coarsest power-of-two step 2^e all of them are integer
 * multiples of; returns its length in tab (room for 6 + 4 * n bytes), or 0
 * when the centroids are not strictly ascending or do not fit the grid's
 * bounds. */
size_t sqzc_grid_table(const float *c, int n, uint8_t *tab) {
    if (n < 1) return 0;
    int e = 1000;
    for (int j = 0; j < n; j++) {
        if (!isfinite(c[j]) || (j > 0 && !(c[j] > c[j - 1]))) return 0;
        if (c[j] == 0.0f) continue;
        int ex;
        float m = frexpf(fabsf(c[j]), &ex);   /* |c| = m * 2^ex, m in [0.5, 1) */
        uint32_t M = (uint32_t)ldexpf(m, 24); /* exact: 24 significant bits */
        int tz = 0;
        while (!(M & 1u)) {
            M >>= 1;
            tz++;
        }
        int v = ex - 24 + tz; /* c = odd * 2^v */
        e = v < e ? v : e;
    }
    if (e == 1000) e = 0; /* all zero */
    if (e < -149 || e > 127) return 0;
    size_t len = put_var(tab, zig(e));
    int64_t prev = 0;
    for (int j = 0; j < n; j++) {
        float g = ldexpf(c[j], -e); /* exact: a power-of-two scaling of a multiple of 2^e */
        if (fabsf(g) > 16777216.0f) return 0;
        int64_t gi = (int64_t)g;
        len += put_var(tab + len, j == 0 ? zig(gi) : (uint64_t)(gi - prev));
        prev = gi;
    }
    return len;
}

static uint64_t packed_bytes(uint64_t n, unsigned k) {
    return (n * k + 7) / 8;
}

static void pack(const uint8_t *s, uint64_t n, unsigned k, uint8_t *dst) {
    memset(dst, 0, packed_bytes(n, k));
    uint64_t bit = 0;
    for (uint64_t i = 0; i < n; i++, bit += k) {
        unsigned v = (unsigned)s[i] << (bit & 7);
        dst[bit >> 3] |= (uint8_t)v;
        if ((bit & 7) + k > 8) dst[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
    }
}

typedef struct centry {
    float v;
    int idx;
} centry;

static int cmp_centry(const void *a, const void *b) {
    float x = ((const centry *)a)->v, y = ((const centry *)b)->v;
    return (x > y) - (x < y);
}

static int find_centroid(const centry *c, int n, float v) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c[mid].v == v) return c[mid].idx;
        if (c[mid].v < v)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int encode_raw(const float *data, uint64_t numel, uint8_t **payload, size_t *size,
                      sqzc_enc_stats *st, char *err, size_t err_len) {
    st->encoding = SQZ_ENC_RAW;
    st->nnz = numel;
    st->index_bytes = st->total_bytes = numel * 4;
    if (numel == 0) return 0;
    uint8_t *p = malloc((size_t)numel * 4);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (uint64_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        put32(p + 4 * i, u);
    }
    *payload = p;
    *size = (size_t)numel * 4;
    return 0;
}

/* choose packed vs Huffman for a symbol stream; *huff set, returns bytes */
static int plan_stream(const uint8_t *s, uint64_t n, unsigned k, int try_huff, sqzc_huff_code *hc,
                       int *huff, uint64_t *bytes, uint64_t *packed) {
    *packed = packed_bytes(n, k);
    *bytes = *packed;
    *huff = 0;
    if (try_huff && n > 0) {
        if (sqzc_huff_code_build(hc, s, (size_t)n, k) != 0) return -1;
        if (hc->stream_bytes < *packed) {
            *huff = 1;
            *bytes = hc->stream_bytes;
        }
    }
    return 0;
}

int sqzc_tensor_encode(const float *data, uint64_t numel, const sqzc_encoding *enc, int flags,
                       uint8_t **payload, size_t *size, sqzc_enc_stats *st, char *err,
                       size_t err_len) {
    memset(st, 0, sizeof *st);
    *payload = NULL;
    *size = 0;
    st->numel = numel;
    st->raw_bytes = numel * 4;
    if (numel > (1ull << 40)) {
        snprintf(err, err_len, "tensor too large (%llu elements)", (unsigned long long)numel);
        return -1;
    }
    if (!enc || (enc->codebook_bits == 0 && !enc->sparse))
        return encode_raw(data, numel, payload, size, st, err, err_len);

    const int cb = enc->codebook_bits != 0, sp = enc->sparse != 0;
    if (enc->codebook_bits < 0 || enc->codebook_bits > 8) {
        snprintf(err, err_len, "codebook_bits %d not in 0..8", enc->codebook_bits);
        return -1;
    }
    if (sp && (enc->gap_bits < 1 || enc->gap_bits > 8)) {
        snprintf(err, err_len, "gap_bits %d not in 1..8", enc->gap_bits);
        return -1;
    }
    float cent[257];
    int nc = cb ? enc->n_centroids : 0;
    unsigned kbits = cb ? (unsigned)enc->codebook_bits : 0;
    if (cb && (nc < 0 || nc > (1 << kbits) || (nc > 0 && !enc->centroids))) {
        snprintf(err, err_len, "%d centroids for %u-bit indices", nc, kbits);
        return -1;
    }
    uint16_t c16[257];
    const int lin = cb && enc->linear;
    if (lin &&
        (enc->centroid_f16 || nc < 1 || !isfinite(enc->lin_step) || !(enc->lin_step > 0.0f) ||
         enc->lin_offset > SQZ_LINEAR_MAX_OFFSET || enc->lin_offset < -SQZ_LINEAR_MAX_OFFSET)) {
        snprintf(err, err_len, "linear codebook: bad step %g / offset %d / %d centroids%s",
                 (double)enc->lin_step, (int)enc->lin_offset, nc,
                 enc->centroid_f16 ? " / fp16" : "");
        return -1;
    }
    for (int c = 0; c < nc; c++) {
        if (lin && enc->centroids[c] != (float)((int64_t)c + enc->lin_offset) * enc->lin_step) {
            snprintf(err, err_len, "linear codebook: centroid %d (%.9g) is not (%d + %d) * %.9g", c,
                     (double)enc->centroids[c], c, (int)enc->lin_offset, (double)enc->lin_step);
            return -1;
        }
        cent[c] = enc->centroids[c];
        if (!isfinite(cent[c])) {
            snprintf(err, err_len, "centroid %d is not finite", c);
            return -1;
        }
        if (enc->centroid_f16 && f32_to_f16_exact(cent[c], &c16[c]) != 0) {
            snprintf(err, err_len, "centroid %d (%.9g) is not exactly representable in fp16", c,
                     (double)cent[c]);
            return -1;
        }
    }
    /* which elements are stored */
    uint64_t nnz = numel;
    if (sp) {
        nnz = 0;
        for (uint64_t i = 0; i < numel; i++) nnz += data[i] != 0.0f;
    } else if (cb) {
        /* a dense codebook must hold zero if the tensor has zeros */
        int has_zero = 0, zero_in = 0;
        for (uint64_t i = 0; i < numel && !has_zero; i++) has_zero = data[i] == 0.0f;
        for (int c = 0; c < nc; c++) zero_in |= cent[c] == 0.0f;
        if (has_zero && !zero_in) {
            if (lin) {
                snprintf(err, err_len, "tensor has zeros but its linear codebook has no zero");
                return -1;
            }
            if (nc == 256) {
                snprintf(err, err_len,
                         "tensor has zeros but its 256-entry codebook has no zero; store it "
                         "sparse");
                return -1;
            }
            cent[nc] = 0.0f;
            c16[nc] = 0;
            nc++;
            while ((1 << kbits) < nc) kbits++;
        }
    }
    st->nnz = nnz;
    const unsigned gbits = sp ? (unsigned)enc->gap_bits : 0;
    const uint64_t M = sp ? (1u << gbits) - 1 : 0;

    uint8_t *idx = NULL, *gaps = NULL, *out = NULL;
    uint64_t n_gaps = 0;
    int rc = -1;
    if (cb && nnz) {
        idx = malloc((size_t)nnz);
        if (!idx) goto oom;
        centry sorted[257];
        for (int c = 0; c < nc; c++) sorted[c] = (centry){cent[c], c};
        qsort(sorted, (size_t)nc, sizeof *sorted, cmp_centry);
        uint64_t k = 0;
        for (uint64_t i = 0; i < numel; i++) {
            if (sp && data[i] == 0.0f) continue;
            int c = find_centroid(sorted, nc, data[i]);
            if (c < 0) {
                snprintf(err, err_len, "element %llu (%.9g) is not one of the %d centroids",
                         (unsigned long long)i, (double)data[i], nc);
                goto done;
            }
            idx[k++] = (uint8_t)c;
        }
    }
    if (sp) {
        uint64_t pos = 0;
        for (uint64_t i = 0; i < numel; i++)
            if (data[i] != 0.0f) {
                n_gaps += (i - pos) / M + 1;
                pos = i + 1;
            }
        n_gaps += (numel - pos) / M;
        st->n_fillers = n_gaps - nnz;
        if (n_gaps) {
            gaps = malloc((size_t)n_gaps);
            if (!gaps) goto oom;
        }
        uint64_t g = 0;
        pos = 0;
        for (uint64_t i = 0; i < numel; i++)
            if (data[i] != 0.0f) {
                uint64_t d = i - pos;
                for (; d >= M; d -= M) gaps[g++] = (uint8_t)M;
                gaps[g++] = (uint8_t)d;
                pos = i + 1;
            }
        for (uint64_t d = numel - pos; d >= M; d -= M) gaps[g++] = (uint8_t)M;
    }

    sqzc_huff_code ic, gc;
    int ih = 0, gh = 0;
    uint64_t vbytes = 4 * nnz, gbytes = 0, ipacked = 0, gpacked = 0;
    if (cb && plan_stream(idx, nnz, kbits, enc->huffman, &ic, &ih, &vbytes, &ipacked) != 0)
        goto internal;
    if (sp && plan_stream(gaps, n_gaps, gbits, enc->huffman, &gc, &gh, &gbytes, &gpacked) != 0)
        goto internal;
    uint64_t cbytes = (uint64_t)nc * (enc->centroid_f16 ? 2u : 4u);
    uint8_t lin_tab[SQZ_VAR_MAX_BYTES + 4];
    if (lin) { /* zvar offset + f32 step */
        int64_t o = enc->lin_offset;
        size_t l = put_var(lin_tab, ((uint64_t)o << 1) ^ (uint64_t)(o >> 63));
        uint32_t u;
        memcpy(&u, &enc->lin_step, 4);
        put32(lin_tab + l, u);
        cbytes = l + 4;
    }
    /* grid-coded centroids when that table is smaller */
    uint8_t grid_tab[6 + 4 * 257];
    size_t glen = cb && !lin ? sqzc_grid_table(cent, nc, grid_tab) : 0;
    const int grid = glen > 0 && glen < cbytes;
    if (grid) cbytes = glen;
    uint8_t hdr[3 + 4 * SQZ_VAR_MAX_BYTES];
    uint64_t hlen = 3;
    const uint64_t hv[4] = {(uint64_t)nc, nnz, n_gaps, vbytes};
    for (int k = 0; k < 4; k++) hlen += put_var(hdr + hlen, hv[k]);
    uint64_t total = hlen + cbytes + vbytes + gbytes;
    if (!(flags & SQZC_ENC_FORCE) && total >= numel * 4) {
        free(idx);
        free(gaps);
        uint64_t ip = ipacked, gp = gpacked;
        rc = encode_raw(data, numel, payload, size, st, err, err_len);
        st->index_packed_bytes = ip;
        st->gap_packed_bytes = gp;
        return rc;
    }
    out = malloc((size_t)total);
    if (!out) goto oom;
    unsigned pf = (enc->centroid_f16 && cb && !grid ? SQZ_PF_F16 : 0) | (ih ? SQZ_PF_IDX_HUFF : 0) |
                  (gh ? SQZ_PF_GAP_HUFF : 0) | (lin ? SQZ_PF_LINEAR : 0) | (grid ? SQZ_PF_GRID : 0);
    hdr[0] = (uint8_t)pf;
    hdr[1] = (uint8_t)kbits;
    hdr[2] = (uint8_t)gbits;
    memcpy(out, hdr, (size_t)hlen);
    uint8_t *q = out + hlen;
    if (lin || grid) {
        memcpy(q, lin ? lin_tab : grid_tab, (size_t)cbytes);
        q += cbytes;
    }
    for (int c = 0; c < nc && !lin && !grid; c++) {
        if (pf & SQZ_PF_F16) {
            q[0] = (uint8_t)c16[c];
            q[1] = (uint8_t)(c16[c] >> 8);
            q += 2;
        } else {
            uint32_t u;
            memcpy(&u, &cent[c], 4);
            put32(q, u);
            q += 4;
        }
    }
    if (cb) {
        if (ih) {
            if (sqzc_huff_write(&ic, idx, (size_t)nnz, q, (size_t)vbytes) != 0) goto internal;
        } else {
            pack(idx, nnz, kbits, q);
        }
    } else {
        uint64_t k = 0;
        for (uint64_t i = 0; i < numel; i++)
            if (data[i] != 0.0f) {
                uint32_t u;
                memcpy(&u, &data[i], 4);
                put32(q + 4 * k++, u);
            }
    }
    q += vbytes;
    if (sp) {
        if (gh) {
            if (sqzc_huff_write(&gc, gaps, (size_t)n_gaps, q, (size_t)gbytes) != 0) goto internal;
        } else {
            pack(gaps, n_gaps, gbits, q);
        }
    }
    st->encoding =
        (cb ? SQZ_ENC_CODEBOOK : 0) | (sp ? SQZ_ENC_SPARSE : 0) | (ih || gh ? SQZ_ENC_HUFFMAN : 0);
    st->index_bits = (int)kbits;
    st->gap_bits = (int)gbits;
    st->n_centroids = nc;
    st->index_huffman = ih;
    st->gap_huffman = gh;
    st->header_bytes = hlen;
    st->centroid_bytes = cbytes;
    st->index_bytes = vbytes;
    st->gap_bytes = gbytes;
    st->total_bytes = total;
    st->index_packed_bytes = ipacked;
    st->gap_packed_bytes = gpacked;
    *payload = out;
    *size = (size_t)total;
    out = NULL;
    rc = 0;
    goto done;
internal:
    snprintf(err, err_len, "internal error while Huffman coding");
    goto done;
oom:
    snprintf(err, err_len, "out of memory");
done:
    free(idx);
    free(gaps);
    free(out);
    return rc;
}

int sqzc_encoding_choose_layout(const float *data, uint64_t numel, sqzc_encoding *enc) {
    if (!enc || enc->codebook_bits <= 0 || !enc->huffman) return 0;
    int has_zero = 0;
    for (uint64_t i = 0; i < numel && !has_zero; i++) has_zero = data[i] == 0.0f;
    if (!has_zero) return 0;
    sqzc_encoding e = *enc;
    int best_sparse = enc->sparse, best_gap = enc->gap_bits;
    uint64_t best = UINT64_MAX;
    char err[128];
    /* dense, then sparse with 1..8-bit gaps */
    for (int gb = 0; gb <= 8; gb++) {
        e.sparse = gb > 0;
        e.gap_bits = gb;
        uint8_t *p = NULL;
        size_t size = 0;
        sqzc_enc_stats st;
        if (sqzc_tensor_encode(data, numel, &e, 0, &p, &size, &st, err, sizeof err) != 0) {
            free(p);
            continue; /* e.g. a full dense codebook without zero: that layout is out */
        }
        free(p);
        if (size < best) {
            best = size;
            best_sparse = e.sparse;
            best_gap = gb;
        }
    }
    if (best == UINT64_MAX) return -1;
    enc->sparse = best_sparse;
    enc->gap_bits = best_gap;
    return 0;
}
