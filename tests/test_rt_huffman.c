/* test_rt_huffman.c - the runtime's canonical Huffman decoder against known
 * codes (RFC 1951's worked example, long codes through the slow path, a
 * single-symbol code) and against hostile input: over-subscribed lengths,
 * codes an incomplete set lacks, truncation, trailing bytes, non-zero padding,
 * bad length tables, random garbage (must fail or decode cleanly). The
 * reference encoder here is written independently of compress/huffman/:
 * canonical codes from lengths, emitted bit by bit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "huffman.h"
#include "testutil.h"

/* --- independent reference encoder: canonical codes, MSB of each code first */
typedef struct bw {
    uint8_t buf[1 << 16];
    size_t nbits;
} bw;

static void bw_bit(bw *w, unsigned b) {
    if (b) w->buf[w->nbits / 8] |= (uint8_t)(1u << (w->nbits % 8));
    w->nbits++;
}

static void canon_codes(const uint8_t *lens, unsigned n, uint32_t *codes) {
    /* assign by increasing (length, symbol) */
    uint32_t code = 0;
    for (unsigned l = 1; l <= 15; l++) {
        for (unsigned s = 0; s < n; s++)
            if (lens[s] == l) codes[s] = code++;
        code <<= 1;
    }
}

static void encode(bw *w, const uint8_t *lens, unsigned n, const uint8_t *syms, size_t ns) {
    uint32_t codes[256];
    canon_codes(lens, n, codes);
    for (size_t i = 0; i < ns; i++)
        for (int b = lens[syms[i]] - 1; b >= 0; b--) bw_bit(w, (codes[syms[i]] >> b) & 1);
}

static size_t bytes_of(const bw *w) {
    return (w->nbits + 7) / 8;
}

/* RFC 1951 3.2.2: lengths (3,3,3,3,3,2,4,4) give A=010 B=011 C=100 D=101
 * E=110 F=00 G=1110 H=1111. */
static void test_rfc1951_example(void **state) {
    (void)state;
    const uint8_t lens[8] = {3, 3, 3, 3, 3, 2, 4, 4};
    sqz_huff_dec d;
    assert_int_equal(sqz_huff_build(&d, lens, 8), 0);
    /* A F H G C: 010 00 1111 1110 100, written first-bit-lowest */
    const char *bits = "010 00 1111 1110 100";
    bw *w = calloc(1, sizeof *w);
    assert_non_null(w);
    for (const char *c = bits; *c; c++)
        if (*c != ' ') bw_bit(w, (unsigned)(*c - '0'));
    uint8_t out[5];
    assert_int_equal(sqz_huff_decode(&d, w->buf, bytes_of(w), out, 5), 0);
    const uint8_t want[5] = {0, 5, 7, 6, 2};
    assert_memory_equal(out, want, 5);
    /* one symbol more than coded: runs past the end */
    uint8_t out6[6];
    assert_int_equal(sqz_huff_decode(&d, w->buf, bytes_of(w), out6, 6), -1);
    /* a trailing byte is rejected */
    assert_int_equal(sqz_huff_decode(&d, w->buf, bytes_of(w) + 1, out, 5), -1);
    /* the same stream decoded through the reference encoder */
    bw *w2 = calloc(1, sizeof *w2);
    assert_non_null(w2);
    encode(w2, lens, 8, want, 5);
    assert_int_equal(w2->nbits, 16);
    assert_memory_equal(w2->buf, w->buf, 2);
    free(w);
    free(w2);
}

/* Lengths 1,2,...,14,15,15: a complete code with codes beyond the fast table. */
static void test_long_codes(void **state) {
    (void)state;
    uint8_t lens[16];
    for (int i = 0; i < 15; i++) lens[i] = (uint8_t)(i + 1);
    lens[15] = 15;
    sqz_huff_dec d;
    assert_int_equal(sqz_huff_build(&d, lens, 16), 0);
    assert_int_equal(d.max_len, 15);
    tu_rng r;
    tu_rng_seed(&r, 7);
    enum { N = 3000 };
    uint8_t syms[N], out[N];
    for (int i = 0; i < N; i++) syms[i] = (uint8_t)(tu_rng_u32(&r) % 16);
    bw *w = calloc(1, sizeof *w);
    assert_non_null(w);
    encode(w, lens, 16, syms, N);
    assert_int_equal(sqz_huff_decode(&d, w->buf, bytes_of(w), out, N), 0);
    assert_memory_equal(out, syms, N);
    /* every truncation fails */
    for (size_t cut = 0; cut < bytes_of(w); cut += 97)
        assert_int_equal(sqz_huff_decode(&d, w->buf, cut, out, N), -1);
    free(w);
}

/* Random length sets (via a random complete code of 256 symbols built by
 * splitting leaves) round-trip random streams of every length. */
static void test_random_codes(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 99);
    bw *w = calloc(1, sizeof *w);
    assert_non_null(w);
    for (int iter = 0; iter < 200; iter++) {
        unsigned n = 2 + tu_rng_u32(&r) % 255;
        uint8_t lens[256] = {0};
        /* start from one leaf of length 0 and split random leaves (<15) */
        unsigned nl = 1;
        uint8_t leaf[256] = {0};
        while (nl < n) {
            unsigned k = tu_rng_u32(&r) % nl;
            if (leaf[k] >= 15) {
                unsigned j;
                for (j = 0; j < nl && leaf[j] >= 15; j++) {
                }
                if (j == nl) break;
                k = j;
            }
            leaf[k]++;
            leaf[nl++] = leaf[k];
        }
        for (unsigned s = 0; s < nl; s++) lens[s] = leaf[s];
        sqz_huff_dec d;
        assert_int_equal(sqz_huff_build(&d, lens, nl), 0);
        size_t ns = tu_rng_u32(&r) % 5000;
        uint8_t *syms = malloc(ns + 1), *out = malloc(ns + 1);
        assert_non_null(syms);
        assert_non_null(out);
        for (size_t i = 0; i < ns; i++) syms[i] = (uint8_t)(tu_rng_u32(&r) % nl);
        memset(w, 0, sizeof *w);
        encode(w, lens, nl, syms, ns);
        assert_int_equal(sqz_huff_decode(&d, w->buf, bytes_of(w), out, ns), 0);
        if (ns) assert_memory_equal(out, syms, ns);
        free(syms);
        free(out);
    }
    free(w);
}

static void test_single_symbol(void **state) {
    (void)state;
    uint8_t lens[4] = {0, 0, 1, 0};
    sqz_huff_dec d;
    assert_int_equal(sqz_huff_build(&d, lens, 4), 0);
    uint8_t zeros[2] = {0, 0}, out[13];
    assert_int_equal(sqz_huff_decode(&d, zeros, 2, out, 13), 0);
    for (int i = 0; i < 13; i++) assert_int_equal(out[i], 2);
    /* the unused code "1" is rejected */
    uint8_t one[2] = {0x10, 0};
    assert_int_equal(sqz_huff_decode(&d, one, 2, out, 13), -1);
    /* non-zero padding bits (bits 13..15) are rejected */
    uint8_t pad[2] = {0, 0x80};
    assert_int_equal(sqz_huff_decode(&d, pad, 2, out, 13), -1);
    /* zero symbols: only the empty stream */
    assert_int_equal(sqz_huff_decode(&d, zeros, 0, out, 0), 0);
    assert_int_equal(sqz_huff_decode(&d, zeros, 1, out, 0), -1);
}

static void test_bad_lengths(void **state) {
    (void)state;
    sqz_huff_dec d;
    const uint8_t over[3] = {1, 1, 1}; /* Kraft 3/2 */
    assert_int_equal(sqz_huff_build(&d, over, 3), -1);
    const uint8_t over2[5] = {2, 2, 2, 2, 3}; /* Kraft 9/8 */
    assert_int_equal(sqz_huff_build(&d, over2, 5), -1);
    const uint8_t toolong[2] = {1, 16};
    assert_int_equal(sqz_huff_build(&d, toolong, 2), -1);
    uint8_t many[257] = {0};
    assert_int_equal(sqz_huff_build(&d, many, 257), -1);
    /* incomplete code: 1 and 01 used, 00.. never assigned? lens {1,2}: codes 0, 10; 11 unused */
    const uint8_t inc[2] = {1, 2};
    assert_int_equal(sqz_huff_build(&d, inc, 2), 0);
    uint8_t s[1] = {0x03}, out[1]; /* bits 1,1 -> "11": no such code */
    assert_int_equal(sqz_huff_decode(&d, s, 1, out, 1), -1);
    uint8_t s2[1] = {0x01}; /* "10" = symbol 1 */
    assert_int_equal(sqz_huff_decode(&d, s2, 1, out, 1), 0);
    assert_int_equal(out[0], 1);
}

/* the stream wrapper (u16 n_lens, nibble lengths, bits) */
static void test_stream_format(void **state) {
    (void)state;
    const char *msg = NULL;
    uint8_t out[8];
    /* 3 symbols, lens {1,2,2} -> 0, 10, 11; decode 1 2 0 = "10" "11" "0" */
    uint8_t ok[5] = {3, 0, 0x21, 0x02, 0};
    {
        bw w;
        memset(&w, 0, sizeof w);
        const uint8_t lens[3] = {1, 2, 2}, syms[3] = {1, 2, 0};
        encode(&w, lens, 3, syms, 3);
        ok[4] = w.buf[0];
    }
    assert_int_equal(sqz_huff_stream_decode(ok, 5, 2, out, 3, &msg), 0);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 0);
    /* alphabet too small for 3 lengths */
    assert_int_equal(sqz_huff_stream_decode(ok, 5, 1, out, 3, &msg), -1);
    /* n_lens 0 */
    uint8_t z[5];
    memcpy(z, ok, 5);
    z[0] = 0;
    assert_int_equal(sqz_huff_stream_decode(z, 5, 2, out, 3, &msg), -1);
    /* non-zero unused nibble */
    memcpy(z, ok, 5);
    z[3] = 0x12;
    assert_int_equal(sqz_huff_stream_decode(z, 5, 2, out, 3, &msg), -1);
    /* over-subscribed: lens {1,1,2} */
    memcpy(z, ok, 5);
    z[2] = 0x11;
    assert_int_equal(sqz_huff_stream_decode(z, 5, 2, out, 3, &msg), -1);
    assert_non_null(msg);
    /* truncations */
    for (size_t cut = 0; cut < 5; cut++)
        assert_int_equal(sqz_huff_stream_decode(ok, cut, 2, out, 3, &msg), -1);
    /* bad alphabet */
    assert_int_equal(sqz_huff_stream_decode(ok, 5, 0, out, 3, &msg), -1);
    assert_int_equal(sqz_huff_stream_decode(ok, 5, 9, out, 3, &msg), -1);
}

/* random garbage never crashes (ASan/UBSan), whatever it decodes to */
static void test_garbage(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 2024);
    uint8_t buf[300], out[2000];
    int ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = tu_rng_u32(&r) % sizeof buf;
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)tu_rng_u32(&r);
        if (len >= 2) {
            buf[1] = 0;
            if (iter & 1) buf[0] = (uint8_t)(1 + tu_rng_u32(&r) % 16);
        }
        size_t n = tu_rng_u32(&r) % sizeof out;
        unsigned bits = 1 + tu_rng_u32(&r) % 8;
        uint8_t *o = malloc(n + 1);
        assert_non_null(o);
        ok += sqz_huff_stream_decode(buf, len, bits, o, n, NULL) == 0;
        free(o);
    }
    (void)ok;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc1951_example), cmocka_unit_test(test_long_codes),
        cmocka_unit_test(test_random_codes),    cmocka_unit_test(test_single_symbol),
        cmocka_unit_test(test_bad_lengths),     cmocka_unit_test(test_stream_format),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
