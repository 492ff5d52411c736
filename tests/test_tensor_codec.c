/* test_tensor_codec.c - encoded tensor storage: sqzc_tensor_encode (offline)
 * -> sqz_tensor_decode (runtime) round trips exactly on random tensors for
 * every index width 1..8, dense and sparse with every gap width 1..8
 * (including filler runs), Huffman on and off, fp32 and fp16 centroids, empty,
 * one-element and all-zero tensors; hostile payloads (truncations, byte flips,
 * over-subscribed code lengths, indices >= n_centroids, gaps past numel,
 * inconsistent headers) are rejected cleanly; a model with encoded weights
 * goes through sqzc_serialize and the loader unchanged. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sqz/format.h"
#include "sqz/sqz.h"
#include "sqzc/huffman.h"
#include "sqzc/ir.h"
#include "sqzc/tensor_encode.h"
#include "sqzc/weight_share.h"
#include "sqzc/writer.h"
#include "tensor_codec.h"
#include "testutil.h"

/* nc distinct fp16-exact centroids k/1024 (never 0 unless with_zero) */
static void make_centroids(tu_rng *r, float *c, int nc, int with_zero) {
    for (int i = 0; i < nc; i++) {
        for (;;) {
            int k = (int)(tu_rng_u32(r) % 2001) - 1000;
            if (k == 0 && !with_zero) continue;
            float v = (float)k / 1024.0f;
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= c[j] == v;
            if (!dup) {
                c[i] = v;
                break;
            }
        }
    }
}

/* skewed choice of a centroid (geometric-ish), so Huffman has something to gain */
static int pick(tu_rng *r, int nc) {
    int i = 0;
    while (i + 1 < nc && (tu_rng_u32(r) & 3) != 0) i++;
    return (int)((unsigned)i * 7u % (unsigned)nc);
}

static void check_roundtrip(const float *x, uint64_t n, const sqzc_encoding *e, int flags,
                            sqzc_enc_stats *out_st) {
    uint8_t *pl = NULL;
    size_t size = 0;
    sqzc_enc_stats st;
    char err[200] = "";
    int rc = sqzc_tensor_encode(x, n, e, flags, &pl, &size, &st, err, sizeof err);
    if (rc != 0) fail_msg("encode: %s", err);
    assert_int_equal(st.total_bytes, size);
    if (st.encoding != SQZ_ENC_RAW)
        assert_int_equal(st.header_bytes + st.centroid_bytes + st.index_bytes + st.gap_bytes, size);
    float *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    assert_non_null(y);
    if (st.encoding == SQZ_ENC_RAW) {
        assert_int_equal(size, n * 4);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)pl[4 * i] | (uint32_t)pl[4 * i + 1] << 8 |
                         (uint32_t)pl[4 * i + 2] << 16 | (uint32_t)pl[4 * i + 3] << 24;
            memcpy(&y[i], &u, 4);
        }
    } else {
        char derr[200] = "";
        int oom = 0;
        rc = sqz_tensor_decode(st.encoding, pl ? pl : (const uint8_t *)"", size, n, y, derr,
                               sizeof derr, &oom);
        if (rc != 0) fail_msg("decode: %s", derr);
    }
    if (n) assert_memory_equal(x, y, (size_t)n * sizeof *y);
    if (out_st) *out_st = st;
    free(y);
    free(pl);
}

static float *make_tensor(tu_rng *r, uint64_t n, const float *c, int nc, double density) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (uint64_t i = 0; i < n; i++) {
        double u = (tu_rng_u32(r) >> 8) * (1.0 / 16777216.0);
        x[i] = u < density ? c[pick(r, nc)] : 0.0f;
    }
    return x;
}

static void test_roundtrip_all_widths(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 42);
    int huff_used = 0, huff_gap_used = 0, fillers = 0;
    for (int bits = 1; bits <= 8; bits++)
        for (int sparse = 0; sparse <= 1; sparse++)
            for (int gb = sparse ? 1 : 0; gb <= (sparse ? 8 : 0); gb++)
                for (int huff = 0; huff <= 1; huff++)
                    for (int f16 = 0; f16 <= 1; f16++) {
                        float cent[256];
                        int nc = 1 + (int)(tu_rng_u32(&r) % (1u << bits));
                        if (!sparse && nc == (1 << bits)) nc--; /* room for an added zero */
                        if (nc < 1) nc = 1;
                        make_centroids(&r, cent, nc, 0);
                        sqzc_encoding e = {bits, cent, nc, f16, sparse, gb, huff, 0, 0, 0.0f};
                        static const uint64_t sizes[] = {0, 1, 2, 7, 100, 1000, 4099};
                        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                            uint64_t n = sizes[si];
                            double dens =
                                sparse ? 0.02 + 0.9 * ((tu_rng_u32(&r) >> 8) / 16777216.0) : 0.97;
                            float *x = make_tensor(&r, n, cent, nc, dens);
                            sqzc_enc_stats st;
                            check_roundtrip(x, n, &e, SQZC_ENC_FORCE, &st);
                            huff_used += st.index_huffman;
                            huff_gap_used += st.gap_huffman;
                            fillers += st.n_fillers > 0;
                            if (!huff) assert_int_equal(st.encoding & SQZ_ENC_HUFFMAN, 0);
                            check_roundtrip(x, n, &e, 0, NULL); /* may fall back to raw */
                            free(x);
                        }
                    }
    assert_true(huff_used > 10);
    assert_true(huff_gap_used > 10);
    assert_true(fillers > 10);
}

static void test_sparse_raw_values_and_fillers(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int gb = 1; gb <= 8; gb++)
        for (int huff = 0; huff <= 1; huff++) {
            uint64_t n = 3000;
            float *x = calloc(n, sizeof *x);
            assert_non_null(x);
            /* far-apart non-zeros: long filler runs, and a tail of zeros */
            const uint64_t pos[] = {0, 1, 2, 300, 301, 1200, 2047, 2048, 2600};
            for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
                x[pos[i]] = tu_rng_uniform(&r, -3.0f, 3.0f);
            sqzc_encoding e = {0, NULL, 0, 0, 1, gb, huff, 0, 0, 0.0f};
            sqzc_enc_stats st;
            check_roundtrip(x, n, &e, SQZC_ENC_FORCE, &st);
            assert_int_equal(st.nnz, 9);
            assert_int_equal(st.encoding & (SQZ_ENC_CODEBOOK | SQZ_ENC_SPARSE), SQZ_ENC_SPARSE);
            assert_true(st.n_fillers > 0);
            /* and the last element non-zero (no trailing fillers) */
            x[n - 1] = 1.5f;
            check_roundtrip(x, n, &e, SQZC_ENC_FORCE, NULL);
            free(x);
        }
}

static void test_edge_cases(void **state) {
    (void)state;
    float cent[4] = {0.5f, -0.25f, 1.0f, 2.0f};
    float zeros[64] = {0};
    for (int sparse = 0; sparse <= 1; sparse++)
        for (int huff = 0; huff <= 1; huff++) {
            sqzc_encoding e = {2, cent, 3, 1, sparse, 3, huff, 0, 0, 0.0f};
            check_roundtrip(zeros, 0, &e, SQZC_ENC_FORCE, NULL);
            check_roundtrip(zeros, 64, &e, SQZC_ENC_FORCE, NULL); /* all zero */
            check_roundtrip(zeros, 1, &e, SQZC_ENC_FORCE, NULL);
            float one = -0.25f;
            check_roundtrip(&one, 1, &e, SQZC_ENC_FORCE, NULL);
        }
    /* dense codebook full (4 of 2 bits) and a zero: the width grows to 3 bits */
    float x[6] = {0.5f, 0.0f, 2.0f, -0.25f, 1.0f, 0.0f};
    sqzc_encoding e = {2, cent, 4, 0, 0, 0, 0, 0, 0, 0.0f};
    sqzc_enc_stats st;
    check_roundtrip(x, 6, &e, SQZC_ENC_FORCE, &st);
    assert_int_equal(st.index_bits, 3);
    assert_int_equal(st.n_centroids, 5);
    /* 256 centroids, 8 bits, dense with a zero: refused with a message */
    float c256[256];
    for (int i = 0; i < 256; i++) c256[i] = (float)(i + 1);
    sqzc_encoding e8 = {8, c256, 256, 0, 0, 0, 1, 0, 0, 0.0f};
    uint8_t *pl = NULL;
    size_t size = 0;
    char err[200] = "";
    assert_int_equal(sqzc_tensor_encode(x, 6, &e8, 0, &pl, &size, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "sparse"));
    /* a value that is no centroid */
    float bad[2] = {0.5f, 0.3f};
    sqzc_encoding e2 = {2, cent, 4, 0, 0, 0, 0, 0, 0, 0.0f};
    assert_int_equal(sqzc_tensor_encode(bad, 2, &e2, 0, &pl, &size, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "centroid"));
    /* a centroid not fp16-exact */
    float c3[1] = {0.1f};
    sqzc_encoding e3 = {1, c3, 1, 1, 1, 4, 0, 0, 0, 0.0f};
    assert_int_equal(sqzc_tensor_encode(c3, 1, &e3, 0, &pl, &size, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "fp16"));
    /* widths out of range */
    sqzc_encoding e4 = {9, cent, 4, 0, 0, 0, 0, 0, 0, 0.0f};
    assert_int_equal(sqzc_tensor_encode(x, 6, &e4, 0, &pl, &size, &st, err, sizeof err), -1);
    sqzc_encoding e5 = {2, cent, 4, 0, 1, 0, 0, 0, 0, 0.0f};
    assert_int_equal(sqzc_tensor_encode(x, 6, &e5, 0, &pl, &size, &st, err, sizeof err), -1);
    /* without FORCE a tiny tensor falls back to raw */
    sqzc_encoding e6 = {2, cent, 4, 0, 1, 4, 1, 0, 0, 0.0f};
    check_roundtrip(x, 6, &e6, 0, &st);
    assert_int_equal(st.encoding, SQZ_ENC_RAW);
    assert_null(pl);
}

static void test_f16_conversion(void **state) {
    (void)state;
    /* every finite half converts and re-encodes to itself through a tensor */
    float c[2];
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = sqz_f16_to_f32((uint16_t)h);
        if (!isfinite(f)) {
            assert_int_equal(h & 0x7c00u, 0x7c00u);
            continue;
        }
        c[0] = f;
        c[1] = 1.0f;
        if (f == 1.0f) c[1] = 2.0f;
        sqzc_encoding e = {1, c, 2, 1, 0, 0, 0, 0, 0, 0.0f};
        float x[2] = {f, c[1]};
        if (f == 0.0f) continue; /* zero handled by the codebook-zero path */
        check_roundtrip(x, 2, &e, SQZC_ENC_FORCE, NULL);
    }
    assert_true(sqz_f16_to_f32(0x3c00) == 1.0f);
    assert_true(sqz_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(sqz_f16_to_f32(0xfbff) == -65504.0f);
}

/* ------------------------------------------------------------ hostile */

static uint8_t *encode_ok(const float *x, uint64_t n, const sqzc_encoding *e, size_t *size,
                          unsigned *enc) {
    uint8_t *pl = NULL;
    sqzc_enc_stats st;
    char err[200];
    assert_int_equal(sqzc_tensor_encode(x, n, e, SQZC_ENC_FORCE, &pl, size, &st, err, sizeof err),
                     0);
    *enc = st.encoding;
    return pl;
}

static int decode(unsigned enc, const uint8_t *p, size_t size, uint64_t n, float *y) {
    char err[200];
    return sqz_tensor_decode(enc, p, size, n, y, err, sizeof err, NULL);
}

static void test_hostile_payloads(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    float cent[16];
    make_centroids(&r, cent, 16, 0);
    enum { N = 600 };
    float *x = make_tensor(&r, N, cent, 16, 0.3);
    float y[N + 300];
    const sqzc_encoding encs[] = {
        {4, cent, 16, 0, 0, 0, 0, 0, 0, 0.0f}, {4, cent, 16, 1, 0, 0, 1, 0, 0, 0.0f},
        {4, cent, 16, 0, 1, 3, 0, 0, 0, 0.0f}, {4, cent, 16, 1, 1, 5, 1, 0, 0, 0.0f},
        {0, NULL, 0, 0, 1, 2, 1, 0, 0, 0.0f},
    };
    float *xd = make_tensor(&r, N, cent, 16, 1.0); /* dense: no zeros */
    for (size_t k = 0; k < sizeof encs / sizeof encs[0]; k++) {
        const float *src = encs[k].sparse ? x : xd;
        size_t size;
        unsigned enc;
        uint8_t *pl = encode_ok(src, N, &encs[k], &size, &enc);
        assert_int_equal(decode(enc, pl, size, N, y), 0);
        assert_memory_equal(y, src, N * sizeof *y);
        /* every truncation */
        for (size_t cut = 0; cut < size; cut++) assert_int_equal(decode(enc, pl, cut, N, y), -1);
        /* wrong numel */
        assert_int_equal(decode(enc, pl, size, N + 300, y), -1);
        float *small = malloc(N * sizeof *small);
        assert_non_null(small);
        assert_int_equal(decode(enc, pl, size, N / 2, small), -1);
        free(small);
        /* encoding byte inconsistent with the payload */
        assert_int_equal(decode(enc ^ SQZ_ENC_HUFFMAN, pl, size, N, y), -1);
        assert_int_equal(decode(enc ^ SQZ_ENC_SPARSE, pl, size, N, y), -1);
        assert_int_equal(decode(enc | 8, pl, size, N, y), -1);
        assert_int_equal(decode(SQZ_ENC_HUFFMAN, pl, size, N, y), -1);
        /* single-byte flips everywhere: clean accept or reject (sanitizers watch) */
        uint8_t *cp = malloc(size);
        assert_non_null(cp);
        for (size_t i = 0; i < size; i++)
            for (int b = 0; b < 8; b += 3) {
                memcpy(cp, pl, size);
                cp[i] ^= (uint8_t)(1u << b);
                (void)decode(enc, cp, size, N, y);
            }
        free(cp);
        free(pl);
    }
    free(x);
    free(xd);
}

/* hand-built payloads: header fields set one by one */
typedef struct hdr {
    uint8_t pf, ib, gb;
    uint32_t nc;
    uint64_t nv, ng, vb, gbytes;
} hdr;

/* the v2 payload header: 3 bytes, then varint counts; h->gbytes is implied
 * (the rest of the payload) and only checked here against the body */
static size_t build(uint8_t *p, const hdr *h, const uint8_t *body, size_t body_len) {
    size_t n = 0;
    p[n++] = h->pf;
    p[n++] = h->ib;
    p[n++] = h->gb;
    const uint64_t v[4] = {h->nc, h->nv, h->ng, h->vb};
    for (int k = 0; k < 4; k++) {
        uint64_t x = v[k];
        do {
            p[n] = (uint8_t)(x & 0x7f);
            x >>= 7;
            if (x) p[n] |= 0x80;
            n++;
        } while (x);
    }
    memcpy(p + n, body, body_len);
    return n + body_len;
}

static void test_handmade_hostile(void **state) {
    (void)state;
    uint8_t p[256];
    float y[64];
    /* 3 centroids (f32), 2-bit packed indices 0,1,2 then 3 (>= n_centroids) */
    uint8_t body[12 + 1];
    const float c3[3] = {1.0f, 2.0f, 3.0f};
    memcpy(body, c3, 12); /* little-endian host assumed by the test only */
    body[12] = 0 | 1 << 2 | 2 << 4 | 3u << 6;
    hdr h = {0, 2, 0, 3, 4, 0, 1, 0};
    size_t n = build(p, &h, body, 13);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 4, y), -1);
    body[12] = 0 | 1 << 2 | 2 << 4 | 2u << 6;
    n = build(p, &h, body, 13);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 4, y), 0);
    assert_true(y[0] == 1.0f && y[1] == 2.0f && y[2] == 3.0f && y[3] == 3.0f);
    /* 5 centroids for 2-bit indices */
    hdr h5 = {0, 2, 0, 5, 1, 0, 1, 0};
    uint8_t b5[21] = {0};
    n = build(p, &h5, b5, 21);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 1, y), -1);
    /* non-zero packed padding bits */
    hdr h6 = {0, 2, 0, 3, 3, 0, 1, 0};
    body[12] = 0 | 1 << 2 | 2 << 4 | 1u << 6;
    n = build(p, &h6, body, 13);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 3, y), -1);
    /* a non-finite centroid */
    const float cinf[3] = {1.0f, INFINITY, 3.0f};
    memcpy(body, cinf, 12);
    body[12] = 0;
    n = build(p, &h, body, 13);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 4, y), -1);
    memcpy(body, c3, 12);

    /* Huffman index stream with over-subscribed lengths {1,1,1} */
    uint8_t hb[12 + 5];
    memcpy(hb, c3, 12);
    hb[12] = 3;
    hb[13] = 0;
    hb[14] = 0x11;
    hb[15] = 0x01;
    hb[16] = 0;
    hdr hh = {SQZ_PF_IDX_HUFF, 2, 0, 3, 4, 0, 5, 0};
    n = build(p, &hh, hb, 17);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK | SQZ_ENC_HUFFMAN, p, n, 4, y), -1);
    /* valid lengths {1,2,2}: "0 0 0 0" = four symbol-0 */
    hb[14] = 0x21;
    hb[15] = 0x02;
    n = build(p, &hh, hb, 17);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK | SQZ_ENC_HUFFMAN, p, n, 4, y), 0);
    assert_true(y[0] == 1.0f && y[3] == 1.0f);
    /* Huffman flag without the encoding bit and vice versa */
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 4, y), -1);
    /* lengths {0,0,0,1} covering symbol 3 >= n_centroids: decodes, then rejected */
    hb[12] = 4;
    hb[14] = 0x00;
    hb[15] = 0x10;
    n = build(p, &hh, hb, 17);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK | SQZ_ENC_HUFFMAN, p, n, 4, y), -1);

    /* sparse, raw values: gaps (3-bit, M = 7) 2, 1 place values at 2 and 4 */
    const float v2[2] = {5.0f, -6.0f};
    uint8_t sb[8 + 1];
    memcpy(sb, v2, 8);
    sb[8] = 2 | 1 << 3;
    hdr hs = {0, 0, 3, 0, 2, 2, 8, 1};
    n = build(p, &hs, sb, 9);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 6, y), 0);
    assert_true(y[0] == 0.0f && y[2] == 5.0f && y[4] == -6.0f && y[5] == 0.0f);
    /* the same gaps beyond numel = 4 */
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 4, y), -1);
    /* a tail of M or more zeros must be fillers: numel 12 leaves 7 */
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 12, y), -1);
    /* filler past the end: gaps 7 (filler), 1 with numel 8 -> value at 8 */
    sb[8] = 7 | 1 << 3;
    n = build(p, &hs, sb, 9);
    hdr hs1 = {0, 0, 3, 0, 1, 2, 4, 1};
    n = build(p, &hs1, (const uint8_t[]){0, 0, 0x80, 0x3f, 7 | 1 << 3}, 5);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 8, y), -1);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 9, y), 0);
    assert_true(y[8] == 1.0f);
    /* more gap symbols with values than n_values */
    hdr hs2 = {0, 0, 3, 0, 1, 2, 4, 1};
    n = build(p, &hs2, (const uint8_t[]){0, 0, 0x80, 0x3f, 0 | 0 << 3}, 5);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 3, y), -1);
    /* fewer */
    hdr hs3 = {0, 0, 3, 0, 2, 2, 8, 1};
    n = build(p, &hs3, (const uint8_t[]){0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 7 | 0 << 3}, 9);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 9, y), -1);
    /* huge counts with a tiny payload (expansion bound, no allocation) */
    hdr hb1 = {0, 0, 8, 0, 0, 1000000, 0, 1};
    n = build(p, &hb1, (const uint8_t[]){0}, 1);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 1000000, y), -1);
    hdr hb2 = {0, 1, 0, 1, 1u << 30, 0, 1, 0};
    n = build(p, &hb2, (const uint8_t[]){0, 0, 0x80, 0x3f, 0}, 5);
    assert_int_equal(decode(SQZ_ENC_CODEBOOK, p, n, 1u << 30, y), -1);
    /* sizes that overflow when added */
    hdr ho = {0, 0, 3, 0, 0, 0, UINT64_MAX - 10, 20};
    n = build(p, &ho, sb, 9);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 0, y), -1);
    /* an over-long varint count (11 bytes) and unknown flag bits */
    {
        uint8_t ol[3 + 11 + 3];
        memcpy(ol, (const uint8_t[]){0, 0, 3}, 3);
        memset(ol + 3, 0xFF, 10);
        ol[13] = 0x01;
        memset(ol + 14, 0, 3);
        assert_int_equal(decode(SQZ_ENC_SPARSE, ol, sizeof ol, 6, y), -1);
    }
    n = build(p, &hs, sb, 9);
    p[0] = 8;
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 6, y), -1);
    n = build(p, &hs, sb, 9);
    p[0] = SQZ_PF_F16; /* fp16 without a codebook */
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 6, y), -1);
}

/* ------------------------------------------------------------ model level */

/* linear_bias 1: the bias on a 6-bit uniform grid (linear codebook, format v3);
 * 2: the weight's centroids grid-rounded (grid-coded table, v3) */
static void model_roundtrip(int linear_bias) {
    tu_rng r;
    tu_rng_seed(&r, 3);
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    int w = sqzc_tensor_get_or_add(g, "fc.weight");
    int b = sqzc_tensor_get_or_add(g, "fc.bias");
    int y = sqzc_tensor_get_or_add(g, "y");
    enum { IN = 300, OUT = 40 };
    sqz_shape xs = {2, {1, IN}}, ws = {2, {OUT, IN}}, bs = {1, {OUT}}, ys = {2, {1, OUT}};
    g->tensors[x].dtype = g->tensors[y].dtype = SQZC_F32;
    g->tensors[x].has_shape = g->tensors[y].has_shape = 1;
    g->tensors[x].shape = xs;
    g->tensors[y].shape = ys;
    float cent[32];
    make_centroids(&r, cent, 32, 0);
    float *wv = make_tensor(&r, IN * OUT, cent, 32, 0.1);
    float bv[OUT];
    tu_fill_uniform(&r, bv, OUT, -1, 1);
    assert_int_equal(sqzc_tensor_set_f32(g, w, &ws, wv), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, b, &bs, bv), 0);
    sqzc_encoding e = {5, cent, 32, 1, 1, 5, 1, 0, 0, 0.0f};
    if (linear_bias == 2) { /* grid-rounded weight centroids instead (grid-coded table) */
        int nc = sqzc_share_array(g->tensors[w].f32, IN * OUT, 5, SQZC_CENTROIDS_GRID, cent);
        assert_true(nc > 8);
        memcpy(wv, g->tensors[w].f32, sizeof(float) * IN * OUT); /* the pre-encoding model */
        e.n_centroids = nc;
        e.centroid_f16 = 0;
    }
    assert_int_equal(sqzc_tensor_set_encoding(g, w, &e), 0);
    sqzc_encoding eb = {0, NULL, 0, 0, 1, 4, 1, 0, 0, 0.0f}; /* not worth it: stored raw */
    float bcb[256];
    if (linear_bias == 1) {
        assert_true(sqzc_share_linear(g->tensors[b].f32, OUT, 6, bcb, &eb) > 1);
        eb.huffman = 1;
        memcpy(bv, g->tensors[b].f32, sizeof bv); /* the pre-encoding model */
    }
    assert_int_equal(sqzc_tensor_set_encoding(g, b, &eb), 0);
    const int32_t in[3] = {x, w, b}, out[1] = {y};
    int node = sqzc_add_node(g, SQZ_OP_GEMM, "fc", 3, in, 1, out);
    assert_true(node >= 0);
    assert_int_equal(sqzc_node_set_int(g, node, "transB", 1), 0);
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(sizeof *g->outputs);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = x;
    g->outputs[0] = y;
    g->n_inputs = g->n_outputs = 1;
    uint8_t *file = NULL;
    size_t size = 0;
    char err[256] = "";
    g->keep_names = 1; /* looked up by name below */
    if (sqzc_serialize(g, &file, &size, err, sizeof err) != 0) fail_msg("%s", err);
    assert_true(size < IN * OUT * 4 / 4); /* well below raw */
    const char *corpus = getenv("SQZ_FUZZ_CORPUS");
    if (corpus && *corpus) {
        char path[1024];
        snprintf(path, sizeof path, "%s/encoded_gemm.sqz", corpus);
        FILE *fp = fopen(path, "wb");
        if (fp) {
            fwrite(file, 1, size, fp);
            fclose(fp);
        }
    }
    /* v3 only when a v3 feature is used */
    assert_int_equal(file[8] | file[9] << 8 | file[10] << 16 | file[11] << 24, linear_bias ? 3 : 2);
    sqz_model *m = NULL;
    sqz_status st;
    if (linear_bias) { /* a v3 feature in a file marked v2 is refused */
        file[8] = 2;
        assert_int_equal(sqz_model_load_buffer(file, size, &m, &st), SQZ_ERR_FORMAT);
        assert_non_null(strstr(st.msg, linear_bias == 1 ? "linear codebook in a version 2 file"
                                                        : "grid-coded centroids in a version 2"));
        assert_null(m);
        file[8] = 3;
    }
    if (sqz_model_load_buffer(file, size, &m, &st) != SQZ_OK) fail_msg("%s", st.msg);
    int found = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        if (strcmp(m->tensors[t].name, "fc.weight") == 0) {
            assert_memory_equal(m->tensors[t].data, wv, sizeof(float) * IN * OUT);
            found++;
        }
        if (strcmp(m->tensors[t].name, "fc.bias") == 0) {
            assert_memory_equal(m->tensors[t].data, bv, sizeof bv);
            found++;
        }
    }
    assert_int_equal(found, 2);
    sqz_model_free(m);
    /* truncating the file anywhere fails cleanly */
    for (size_t cut = 0; cut < size; cut += 13) {
        m = NULL;
        assert_int_not_equal(sqz_model_load_buffer(file, cut, &m, &st), SQZ_OK);
        assert_null(m);
    }
    free(file);
    free(wv);
    sqzc_graph_free(g);
}

static void test_model_roundtrip(void **state) {
    (void)state;
    model_roundtrip(0);
    model_roundtrip(1);
    model_roundtrip(2);
}

/* ------------------------------------------------------------ linear codebook */

/* sqzc_share_linear on assorted arrays: <= 2^bits levels, error <= step / 2,
 * and the payload decodes to exactly the shared values, dense and sparse,
 * packed and Huffman */
static void test_linear_roundtrip(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    int huff = 0;
    for (int bits = 2; bits <= 8; bits++)
        for (int kind = 0; kind < 5; kind++) {
            static const uint64_t sizes[] = {1, 2, 9, 100, 1000};
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                uint64_t n = sizes[si];
                float *x = malloc(n * sizeof *x), *x0 = malloc(n * sizeof *x0);
                assert_non_null(x);
                assert_non_null(x0);
                for (uint64_t i = 0; i < n; i++) {
                    float u = (float)((tu_rng_u32(&r) >> 8) * (1.0 / 16777216.0));
                    x[i] = kind == 0   ? u * 2.0f - 1.0f               /* around 0 */
                           : kind == 1 ? 3.0f + u * 1e-3f              /* far from 0, narrow */
                           : kind == 2 ? -1e-4f * u                    /* tiny, one-sided */
                           : kind == 3 ? (u < 0.5f ? 0.0f : u * 50.0f) /* zeros */
                                       : 7.25f;                        /* constant */
                }
                memcpy(x0, x, n * sizeof *x);
                float c[256];
                sqzc_encoding e;
                int nc = sqzc_share_linear(x, (int64_t)n, bits, c, &e);
                assert_true(nc >= 1 && nc <= (1 << bits));
                assert_int_equal(e.n_centroids, nc);
                assert_true(e.linear && e.lin_step > 0.0f);
                for (uint64_t i = 0; i < n; i++) {
                    /* half a step, plus the float rounding of q * step */
                    if (!(fabsf(x[i] - x0[i]) <= 0.5f * e.lin_step + fabsf(x0[i]) * 0x1p-23f))
                        fail_msg("bits %d kind %d n %d: %.9g -> %.9g step %.9g", bits, kind, (int)n,
                                 (double)x0[i], (double)x[i], (double)e.lin_step);
                    if (x0[i] == 0.0f) assert_true(x[i] == 0.0f);
                }
                for (int sp = 0; sp <= (kind == 3 ? 1 : 0); sp++)
                    for (int h = 0; h <= 1; h++) {
                        sqzc_encoding q = e;
                        q.sparse = sp;
                        q.gap_bits = sp ? 3 : 0;
                        q.huffman = h;
                        sqzc_enc_stats st;
                        check_roundtrip(x, n, &q, SQZC_ENC_FORCE, &st);
                        assert_true(st.encoding & SQZ_ENC_CODEBOOK);
                        assert_true(st.centroid_bytes <= 4 + 4); /* offset + step */
                        huff += st.index_huffman;
                    }
                free(x);
                free(x0);
            }
        }
    assert_true(huff > 5);
    /* centroids that are not the grid, and bad grids, are refused */
    float x[3] = {0.5f, 1.0f, 1.5f}, c[3] = {0.5f, 1.0f, 1.5f};
    sqzc_encoding e = {2, c, 3, 0, 0, 0, 0, 1, 1, 0.5f};
    uint8_t *pl = NULL;
    size_t size;
    sqzc_enc_stats st;
    char err[200];
    assert_int_equal(sqzc_tensor_encode(x, 3, &e, SQZC_ENC_FORCE, &pl, &size, &st, err, sizeof err),
                     0);
    free(pl);
    pl = NULL;
    e.lin_offset = 2; /* (0 + 2) * 0.5 != 0.5 */
    assert_int_equal(sqzc_tensor_encode(x, 3, &e, SQZC_ENC_FORCE, &pl, &size, &st, err, sizeof err),
                     -1);
    e.lin_offset = 1;
    e.lin_step = 0.0f;
    assert_int_equal(sqzc_tensor_encode(x, 3, &e, SQZC_ENC_FORCE, &pl, &size, &st, err, sizeof err),
                     -1);
    e.lin_step = 0.5f;
    e.centroid_f16 = 1;
    assert_int_equal(sqzc_tensor_encode(x, 3, &e, SQZC_ENC_FORCE, &pl, &size, &st, err, sizeof err),
                     -1);
    assert_null(pl);
    float c256[256]; /* room for 2^8 centroids */
    float bad[2] = {1.0f, NAN};
    assert_int_equal(sqzc_share_linear(bad, 2, 8, c256, &e), -1);
    float wide[2] = {-1e30f, 1e30f}; /* fine: q = -127..127 */
    assert_true(sqzc_share_linear(wide, 2, 8, c256, &e) > 0);
    float narrow[2] = {1e6f, 1e6f + 0.0625f}; /* |q| would pass 2^24 */
    assert_int_equal(sqzc_share_linear(narrow, 2, 8, c256, &e), -1);
    assert_true(narrow[0] == 1e6f && narrow[1] == 1e6f + 0.0625f); /* untouched */
}

/* hand-built linear payloads: 3 centroids (2-bit indices 0,1,2,2), table
 * = zvar offset + f32 step */
static size_t build_linear(uint8_t *p, uint8_t pf, uint32_t nc, const uint8_t *tab,
                           size_t tab_len) {
    uint8_t body[32];
    memcpy(body, tab, tab_len);
    body[tab_len] = 0 | 1 << 2 | 2 << 4 | 2u << 6;
    hdr h = {pf, 2, 0, nc, 4, 0, 1, 0};
    return build(p, &h, body, tab_len + 1);
}

/* grid-rounded k-means codebooks: the encoder stores them grid-coded (a
 * byte or so per centroid) and they decode exactly */
static void test_grid_roundtrip(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 23);
    int grid_used = 0;
    for (int bits = 2; bits <= 8; bits++)
        for (int sp = 0; sp <= 1; sp++) {
            enum { N = 3000 };
            float *w = malloc(N * sizeof *w);
            assert_non_null(w);
            float scale = ldexpf(1.0f, (int)(tu_rng_u32(&r) % 20) - 12);
            for (int i = 0; i < N; i++) {
                float u = (float)((tu_rng_u32(&r) >> 8) * (1.0 / 16777216.0));
                float v = (float)((tu_rng_u32(&r) >> 8) * (1.0 / 16777216.0));
                w[i] = sp && u < 0.6f ? 0.0f : scale * (u + v - 1.0f);
            }
            float c[256];
            int nc = sqzc_share_array(w, N, bits, SQZC_CENTROIDS_GRID, c);
            assert_true(nc >= 1 && nc <= (1 << bits));
            uint8_t tab[6 + 4 * 256];
            size_t gl = sqzc_grid_table(c, nc, tab);
            assert_true(gl > 0);
            if (bits >= 5) assert_true(gl < (size_t)nc * 2); /* below an fp16 table */
            sqzc_encoding e = {bits, c, nc, 0, sp, sp ? 4 : 0, bits & 1, 0, 0, 0.0f};
            uint8_t *pl = NULL;
            size_t size = 0;
            sqzc_enc_stats st;
            char err[200];
            assert_int_equal(
                sqzc_tensor_encode(w, N, &e, SQZC_ENC_FORCE, &pl, &size, &st, err, sizeof err), 0);
            grid_used += (pl[0] & SQZ_PF_GRID) != 0;
            assert_int_equal(st.centroid_bytes, (pl[0] & SQZ_PF_GRID) ? gl : (uint64_t)nc * 4);
            free(pl);
            check_roundtrip(w, N, &e, SQZC_ENC_FORCE, NULL);
            free(w);
        }
    assert_true(grid_used >= 12);
    /* not ascending / off the grid's bounds: no grid table */
    uint8_t tab[64];
    const float desc[2] = {1.0f, 0.5f}, wide[2] = {1.0f, 0x1p30f};
    assert_int_equal(sqzc_grid_table(desc, 2, tab), 0);
    assert_int_equal(sqzc_grid_table(wide, 2, tab), 0); /* 2^0 * {1, 2^30}: g > 2^24 */
    const float ok2[3] = {-0.75f, 0.0f, 0.25f}; /* 2^-2 * {-3, 0, 1}: e -2 (zvar 3), g 3 1 */
    assert_int_equal(sqzc_grid_table(ok2, 3, tab), 4);
    assert_memory_equal(tab, ((const uint8_t[]){3, 5, 3, 1}), 4);
}

static void test_linear_hostile(void **state) {
    (void)state;
    uint8_t p[64];
    float y[8];
    const unsigned CB = SQZ_ENC_CODEBOOK;
    /* offset -1 (zvar 1), step 0.25: centroids -0.25, 0, 0.25 */
    uint8_t tab[8] = {1, 0, 0, 0x80, 0x3e};
    size_t n = build_linear(p, SQZ_PF_LINEAR, 3, tab, 5);
    assert_int_equal(decode(CB, p, n, 4, y), 0);
    assert_true(y[0] == -0.25f && y[1] == 0.0f && y[2] == 0.25f && y[3] == 0.25f);
    for (size_t cut = 0; cut < n; cut++) assert_int_equal(decode(CB, p, cut, 4, y), -1);
    /* with fp16 centroids / without a codebook / without centroids */
    n = build_linear(p, SQZ_PF_LINEAR | SQZ_PF_F16, 3, tab, 5);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    n = build_linear(p, SQZ_PF_LINEAR, 3, tab, 5);
    assert_int_equal(decode(SQZ_ENC_SPARSE, p, n, 4, y), -1);
    n = build_linear(p, SQZ_PF_LINEAR, 0, tab, 5);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    /* steps 0, negative, inf, NaN */
    static const uint32_t bad_steps[] = {0x00000000u, 0xbe800000u, 0x7f800000u, 0x7fc00000u};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 4; i++) tab[1 + i] = (uint8_t)(bad_steps[k] >> (8 * i));
        n = build_linear(p, SQZ_PF_LINEAR, 3, tab, 5);
        assert_int_equal(decode(CB, p, n, 4, y), -1);
    }
    /* offset 2^24 (zvar 2^25: 4 bytes) decodes; 2^24 + 1 and a 5-byte varint do not */
    const uint8_t ok_off[8] = {0x80, 0x80, 0x80, 0x10, 0, 0, 0x80, 0x3e};
    n = build_linear(p, SQZ_PF_LINEAR, 3, ok_off, 8);
    assert_int_equal(decode(CB, p, n, 4, y), 0);
    assert_true(y[0] == 4194304.0f); /* 2^24 * 0.25 */
    const uint8_t big_off[8] = {0x82, 0x80, 0x80, 0x10, 0, 0, 0x80, 0x3e};
    n = build_linear(p, SQZ_PF_LINEAR, 3, big_off, 8);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    const uint8_t long_var[9] = {0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0x80, 0x3e};
    n = build_linear(p, SQZ_PF_LINEAR, 3, long_var, 9);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    /* a centroid overflowing to inf: (2 + 0) * 3e38 */
    float big = 3e38f;
    uint8_t inf_tab[5] = {4};
    memcpy(inf_tab + 1, &big, 4); /* little-endian host assumed by the test only */
    n = build_linear(p, SQZ_PF_LINEAR, 3, inf_tab, 5);
    assert_int_equal(decode(CB, p, n, 4, y), -1);

    /* grid-coded table: e = -2 (zvar 3), g0 = -3 (zvar 5), steps 3, 1 */
    uint8_t gt[8] = {3, 5, 3, 1};
    n = build_linear(p, SQZ_PF_GRID, 3, gt, 4);
    assert_int_equal(decode(CB, p, n, 4, y), 0);
    assert_true(y[0] == -0.75f && y[1] == 0.0f && y[2] == 0.25f && y[3] == 0.25f);
    for (size_t cut = 0; cut < n; cut++) assert_int_equal(decode(CB, p, cut, 4, y), -1);
    n = build_linear(p, SQZ_PF_GRID | SQZ_PF_F16, 3, gt, 4);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    n = build_linear(p, SQZ_PF_GRID | SQZ_PF_LINEAR, 3, gt, 4);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    n = build_linear(p, SQZ_PF_GRID, 0, gt, 4);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    gt[2] = 0; /* a step of 0: not ascending */
    n = build_linear(p, SQZ_PF_GRID, 3, gt, 4);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    /* exponent 128 (zvar 256: 2 bytes) and a 3-byte exponent */
    const uint8_t e128[8] = {0x80, 0x02, 5, 3, 1};
    n = build_linear(p, SQZ_PF_GRID, 3, e128, 5);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    const uint8_t e3b[8] = {0x83, 0x80, 0x00, 5, 3, 1};
    n = build_linear(p, SQZ_PF_GRID, 3, e3b, 6);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    /* g past 2^24: g0 = 2^24 (zvar 2^25), then a step of 1 */
    const uint8_t gbig[8] = {0, 0x80, 0x80, 0x80, 0x10, 1, 1};
    n = build_linear(p, SQZ_PF_GRID, 3, gbig, 7);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
    /* finite grid values overflowing to inf: e = 127 (zvar 254), g0 = 2^23 */
    const uint8_t ginf[8] = {0xfe, 0x01, 0x80, 0x80, 0x80, 0x04, 1, 1};
    n = build_linear(p, SQZ_PF_GRID, 3, ginf, 8);
    assert_int_equal(decode(CB, p, n, 4, y), -1);
}

/* Huffman encoder: length limiting keeps Kraft and <= 15 bits on a
 * Fibonacci distribution (which would need ~25-bit codes unlimited). */
static void test_length_limit(void **state) {
    (void)state;
    uint64_t f[40];
    f[0] = f[1] = 1;
    for (int i = 2; i < 40; i++) f[i] = f[i - 1] + f[i - 2];
    uint8_t lens[40];
    assert_int_equal(sqzc_huff_lengths(f, 40, 15, lens), 0);
    double kraft = 0;
    for (int i = 0; i < 40; i++) {
        assert_true(lens[i] >= 1 && lens[i] <= 15);
        kraft += ldexp(1.0, -lens[i]);
    }
    assert_true(kraft <= 1.0);
    assert_true(lens[39] <= 2); /* the most frequent symbol keeps a short code */
    /* unlimited-capable case is optimal: dyadic frequencies give exact lengths */
    uint64_t d[4] = {8, 4, 2, 2};
    assert_int_equal(sqzc_huff_lengths(d, 4, 15, lens), 0);
    assert_int_equal(lens[0], 1);
    assert_int_equal(lens[1], 2);
    assert_int_equal(lens[2], 3);
    assert_int_equal(lens[3], 3);
}

/* Huffman stream writer: the bytes of a bit-by-bit reference (table, then
 * each symbol's LSB-first code, zero-padded) on skewed random streams of
 * 1..300 and 5000 symbols (codes up to 15 bits: the fast loop with 8 bytes
 * of room, its hand-over to the tail, a stream shorter than 8 bytes); a
 * symbol without a code fails; a wrong length fails. */
static void test_huff_write(void **state) {
    (void)state;
    uint32_t rng = 12345;
    uint8_t *syms = malloc(5000), *a = malloc(8192), *b = malloc(8192);
    assert_non_null(syms);
    assert_non_null(a);
    assert_non_null(b);
    for (int n = 1; n <= 5000; n = n < 300 ? n + 1 : n == 300 ? 5000 : 5001) {
        for (int i = 0; i < n; i++) {
            rng = rng * 1103515245u + 12345u;
            /* geometric-ish over 256 values: long codes for the rare ones */
            const unsigned r = rng >> 8;
            unsigned v = 0;
            while (v < 255 && (r >> (v % 24) & 1)) v++;
            syms[i] = (uint8_t)(n % 3 == 0 ? (v * 37u) & 255 : v);
        }
        sqzc_huff_code c;
        assert_int_equal(sqzc_huff_code_build(&c, syms, (size_t)n, 8), 0);
        assert_true(c.stream_bytes <= 8192);
        const size_t tab = (c.n_lens + 1) / 2, sb = (size_t)c.stream_bytes;
        memset(b, 0, sb);
        b[0] = (uint8_t)c.n_lens;
        b[1] = (uint8_t)(c.n_lens >> 8);
        for (unsigned k = 0; k < c.n_lens; k++)
            b[2 + k / 2] |= (uint8_t)(c.lens[k] << (4 * (k & 1)));
        size_t bit = 8 * (2 + tab);
        for (int i = 0; i < n; i++)
            for (unsigned k = 0; k < c.lens[syms[i]]; k++, bit++)
                b[bit / 8] |= (uint8_t)(((c.rev[syms[i]] >> k) & 1) << (bit % 8));
        assert_int_equal((bit + 7) / 8, sb);
        memset(a, 0xa5, sb);
        assert_int_equal(sqzc_huff_write(&c, syms, (size_t)n, a, sb), 0);
        assert_memory_equal(a, b, sb);
        assert_int_equal(sqzc_huff_write(&c, syms, (size_t)n, a, sb + 1), -1);
        if (c.n_lens < 256) { /* a symbol outside the table */
            syms[n / 2] = 255;
            assert_int_equal(sqzc_huff_write(&c, syms, (size_t)n, a, sb), -1);
        }
    }
    free(syms);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_widths),
        cmocka_unit_test(test_sparse_raw_values_and_fillers),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_hostile_payloads),
        cmocka_unit_test(test_handmade_hostile),
        cmocka_unit_test(test_model_roundtrip),
        cmocka_unit_test(test_linear_roundtrip),
        cmocka_unit_test(test_linear_hostile),
        cmocka_unit_test(test_grid_roundtrip),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_huff_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
