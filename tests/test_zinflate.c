/* test_zinflate.c - sqzc_zinflate against zlib: every calibration PNG's
 * stream; zlib's own streams of many sizes, contents, levels, strategies and
 * windows (all accepted, the same bytes); and damaged streams (flipped
 * bits, cut or lengthened): whenever sqzc_zinflate accepts one, zlib accepts
 * it too with the same bytes (it may refuse more: those go to zlib). Inputs
 * in exact-size buffers (a read past them is an ASan error). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "sqzc/zinflate.h"
#include "testutil.h"

static uint32_t rng_next(uint32_t *r) {
    *r = *r * 1103515245u + 12345u;
    return *r >> 8;
}

/* zlib's verdict on in[0..n): 0 and its output (at most cap bytes) when it
 * ends the stream exactly at n, else -1 */
static int zlib_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    const int r = inflate(&z, Z_FINISH);
    *len = z.total_out;
    const int ok = r == Z_STREAM_END && z.avail_in == 0;
    inflateEnd(&z);
    return ok ? 0 : -1;
}

/* sqzc_zinflate of a copy of in (exact size); when it accepts, zlib must
 * accept with the same bytes; returns its verdict */
static int check_one(const uint8_t *in, size_t n, size_t cap) {
    uint8_t *cp = malloc(n ? n : 1), *a = malloc(cap ? cap : 1), *b = malloc(cap ? cap : 1);
    assert_true(cp && a && b);
    if (n) memcpy(cp, in, n);
    size_t la = 0, lb = 0;
    const int ra = sqzc_zinflate(cp, n, a, cap, &la);
    if (ra == 0) {
        assert_int_equal(zlib_inflate(cp, n, b, cap, &lb), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
    }
    free(cp);
    free(a);
    free(b);
    return ra;
}

/* kind: 0 zeros, 1 image-like (smooth rows, flat runs), 2 random bytes, 3
 * few symbols, 4 text-like repeats */
static void content(uint8_t *p, size_t n, int kind, uint32_t *r) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t x = rng_next(r);
        switch (kind) {
        case 0:
            p[i] = 0;
            break;
        case 1:
            p[i] = (i % 29 == 0) ? 0 : (uint8_t)(i > 0 && (x & 3) ? p[i - 1] + (x >> 8) % 5 : x);
            break;
        case 2:
            p[i] = (uint8_t)x;
            break;
        case 3:
            p[i] = (uint8_t)(x % 3 * 85);
            break;
        default:
            p[i] = i >= 40 && (x & 7) ? p[i - 40 + (x >> 4) % 3] : (uint8_t)('a' + x % 26);
        }
    }
}

static void test_zlib_streams(void **state) {
    (void)state;
    const size_t sizes[] = {0, 1, 2, 31, 258, 259, 785, 4096, 70001};
    const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
    uint32_t r = 31337;
    int cases = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int kind = 0; kind < 5; kind++) {
            const size_t n = sizes[si];
            uint8_t *src = malloc(n ? n : 1);
            assert_non_null(src);
            content(src, n, kind, &r);
            for (int level = 0; level <= 9; level++)
                for (size_t st = 0; st < sizeof strategies / sizeof strategies[0]; st++) {
                    if (level == 0 && st > 0) continue;
                    const int wbits = 9 + (int)(rng_next(&r) % 7);
                    z_stream z;
                    memset(&z, 0, sizeof z);
                    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, wbits, 8, strategies[st]),
                                     Z_OK);
                    const size_t cap = deflateBound(&z, (uLong)n) + 16;
                    uint8_t *c = malloc(cap);
                    assert_non_null(c);
                    z.next_in = src;
                    z.avail_in = (uInt)n;
                    z.next_out = c;
                    z.avail_out = (uInt)cap;
                    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
                    const size_t cn = z.total_out;
                    deflateEnd(&z);
                    /* accepted, the same bytes; exact room and one byte less */
                    assert_int_equal(check_one(c, cn, n), 0);
                    assert_int_equal(check_one(c, cn, n + 300), 0);
                    if (n > 0) assert_int_equal(check_one(c, cn, n - 1), -1);
                    uint8_t *out = malloc(n + 1);
                    size_t got = 0;
                    assert_non_null(out);
                    assert_int_equal(sqzc_zinflate(c, cn, out, n + 1, &got), 0);
                    assert_int_equal(got, n);
                    if (n) assert_memory_equal(out, src, n);
                    free(out);
                    /* damaged: bit flips, cuts, a byte more */
                    for (int k = 0; k < 40; k++) {
                        uint8_t *d = malloc(cn + 1);
                        assert_non_null(d);
                        memcpy(d, c, cn);
                        size_t dn = cn;
                        const uint32_t x = rng_next(&r);
                        if (x % 4 == 0 && cn > 1) {
                            dn = 1 + x / 4 % (cn - 1);
                        } else if (x % 4 == 1) {
                            d[cn] = (uint8_t)x;
                            dn = cn + 1;
                        } else {
                            for (int f = 0; f < 1 + (int)(x % 3); f++) {
                                const uint32_t y = rng_next(&r);
                                d[y % cn] ^= (uint8_t)(1u << (y >> 20) % 8);
                            }
                        }
                        check_one(d, dn, n + 300);
                        free(d);
                    }
                    free(c);
                    cases++;
                }
            free(src);
        }
    assert_true(cases > 300);
}

/* headers zlib refuses: another method, a 64 KB window, bad check bits, a
 * preset dictionary; a stored block whose lengths disagree; block type 3 */
static void test_bad_headers(void **state) {
    (void)state;
    uint8_t out[16];
    size_t got;
    const uint8_t good[] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}; /* empty */
    assert_int_equal(sqzc_zinflate(good, sizeof good, out, sizeof out, &got), 0);
    assert_int_equal(got, 0);
    uint8_t b[sizeof good];
    memcpy(b, good, sizeof b);
    b[0] = 0x77; /* method 7 */
    assert_int_equal(sqzc_zinflate(b, sizeof b, out, sizeof out, &got), -1);
    memcpy(b, good, sizeof b);
    b[0] = 0x88, b[1] = 0x1c; /* window 2^16, check bits right */
    assert_int_equal(((unsigned)b[0] << 8 | b[1]) % 31, 0);
    assert_int_equal(sqzc_zinflate(b, sizeof b, out, sizeof out, &got), -1);
    memcpy(b, good, sizeof b);
    b[1] = 0x9d; /* check bits wrong */
    assert_int_equal(sqzc_zinflate(b, sizeof b, out, sizeof out, &got), -1);
    memcpy(b, good, sizeof b);
    b[1] = 0xbb; /* FDICT, check bits right */
    assert_int_equal(((unsigned)b[0] << 8 | b[1]) % 31, 0);
    assert_int_equal(sqzc_zinflate(b, sizeof b, out, sizeof out, &got), -1);
    /* stored block, LEN 1 NLEN not ~LEN */
    const uint8_t st[] = {0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xfe, 0x41, 0x00, 0x42, 0x00, 0x42};
    assert_int_equal(sqzc_zinflate(st, sizeof st, out, sizeof out, &got), -1);
    /* block type 3 */
    const uint8_t t3[] = {0x78, 0x9c, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01};
    assert_int_equal(sqzc_zinflate(t3, sizeof t3, out, sizeof out, &got), -1);
    /* too short */
    assert_int_equal(sqzc_zinflate(good, 5, out, sizeof out, &got), -1);
}

/* every calibration image's zlib stream (its IDAT): accepted, zlib's bytes */
static void test_calibration_pngs(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/calib-data/fashion-mnist/images", tu_source_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n_img = 0;
    while ((e = readdir(d)) != NULL) {
        const size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".png") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t buf[1 << 16];
        const size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        size_t pos = 8;
        int found = 0;
        while (pos + 12 <= len) {
            const uint32_t cl = (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 |
                                (uint32_t)buf[pos + 2] << 8 | buf[pos + 3];
            if (!memcmp(buf + pos + 4, "IDAT", 4)) {
                assert_int_equal(check_one(buf + pos + 8, cl, 4096), 0);
                found = 1;
            }
            pos += 12 + cl;
        }
        assert_true(found);
        n_img++;
    }
    closedir(d);
    assert_true(n_img >= 500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_calibration_pngs),
        cmocka_unit_test(test_zlib_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
