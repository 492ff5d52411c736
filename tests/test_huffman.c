/* test_huffman.c - the Huffman encoder's parts (sqzc_huff_code_build_mt +
 * sqzc_huff_write on several threads) against its one-thread stream and a
 * bit-by-bit reference; code lengths under ties and huge counts; the
 * writer's threaded .sqz against its one-thread bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqzc/huffman.h"
#include "test_graph.h"

static uint32_t rng_next(uint32_t *r) {
    *r = *r * 1103515245u + 12345u;
    return *r >> 8;
}

/* The stream bit by bit: the table, then each symbol's LSB-first code */
static void reference(const sqzc_huff_code *c, const uint8_t *syms, size_t n, uint8_t *b) {
    const size_t tab = (c->n_lens + 1) / 2;
    memset(b, 0, (size_t)c->stream_bytes);
    b[0] = (uint8_t)c->n_lens;
    b[1] = (uint8_t)(c->n_lens >> 8);
    for (unsigned k = 0; k < c->n_lens; k++) b[2 + k / 2] |= (uint8_t)(c->lens[k] << (4 * (k & 1)));
    size_t bit = 8 * (2 + tab);
    for (size_t i = 0; i < n; i++)
        for (unsigned k = 0; k < c->lens[syms[i]]; k++, bit++)
            b[bit / 8] |= (uint8_t)(((c->rev[syms[i]] >> k) & 1) << (bit % 8));
    assert_int_equal((bit + 7) / 8, c->stream_bytes);
}

/* kind 0: geometric over 256 values (codes up to 15 bits), 1: one symbol,
 * 2: two symbols (1-bit codes), 3: uniform over 2^bits values, 4: skewed
 * over 3 bits */
static void fill(uint8_t *s, size_t n, int kind, uint32_t *r) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t x = rng_next(r);
        unsigned v = 0;
        switch (kind) {
        case 0:
            while (v < 255 && (x >> (v % 24) & 1)) v++;
            break;
        case 1:
            v = 7;
            break;
        case 2:
            v = x & 1;
            break;
        case 3:
            v = x & 255;
            break;
        default:
            v = (x & 15) < 12 ? 0 : x & 7;
        }
        s[i] = (uint8_t)v;
    }
}

/* Each size and kind at 1..5 threads: the same code and bytes as one
 * thread and as the reference, parts as documented; exact-size buffers (a
 * byte past the stream would be an ASan error). Sizes: tiny, odd, and
 * around multiples of SQZC_HUFF_PART_MIN (parts whose boundaries fall at
 * every bit of a byte). */
static void test_parts_same_bytes(void **state) {
    (void)state;
    const size_t P = SQZC_HUFF_PART_MIN;
    const size_t sizes[] = {0,         1,         2,         3,         7,         8,
                            9,         31,        1000,      P - 1,     2 * P - 1, 2 * P,
                            2 * P + 1, 2 * P + 7, 3 * P + 5, 4 * P + 3, 5 * P - 1, 9 * P + 11};
    uint32_t r = 2024;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        uint8_t *s = malloc(n ? n : 1);
        assert_non_null(s);
        for (int kind = 0; kind < 5; kind++) {
            fill(s, n, kind, &r);
            const unsigned abits = kind == 4 ? 3 : 8;
            sqzc_huff_code c1;
            if (n == 0) {
                assert_int_equal(sqzc_huff_code_build(&c1, s, 0, abits), 0);
                assert_int_equal(c1.payload_bits, 0);
                continue;
            }
            assert_int_equal(sqzc_huff_code_build(&c1, s, n, abits), 0);
            assert_int_equal(c1.n_parts, 1);
            const size_t sb = (size_t)c1.stream_bytes;
            uint8_t *ref = malloc(sb), *one = malloc(sb), *par = malloc(sb);
            assert_true(ref && one && par);
            reference(&c1, s, n, ref);
            memset(one, 0x5a, sb);
            assert_int_equal(sqzc_huff_write(&c1, s, n, one, sb), 0);
            assert_memory_equal(one, ref, sb);
            for (int t = 2; t <= 5; t++) {
                sqzc_huff_code ct;
                assert_int_equal(sqzc_huff_code_build_mt(&ct, s, n, abits, t), 0);
                size_t want = (size_t)t < SQZC_HUFF_MAX_PARTS ? (size_t)t : SQZC_HUFF_MAX_PARTS;
                if (want > n / P) want = n / P;
                if (want < 1) want = 1;
                assert_int_equal(ct.n_parts, want);
                assert_int_equal(ct.part_end[ct.n_parts - 1], n);
                uint64_t bits = 0;
                for (unsigned p = 0; p < ct.n_parts; p++) {
                    bits += ct.part_bits[p];
                    if (p > 0) assert_true(ct.part_end[p] - ct.part_end[p - 1] >= P);
                }
                assert_int_equal(bits, c1.payload_bits);
                assert_int_equal(ct.stream_bytes, c1.stream_bytes);
                assert_memory_equal(ct.lens, c1.lens, sizeof c1.lens);
                memset(par, t & 1 ? 0xff : 0x00, sb); /* stale bytes must not leak */
                assert_int_equal(sqzc_huff_write(&ct, s, n, par, sb), 0);
                assert_memory_equal(par, ref, sb);
            }
            free(ref);
            free(one);
            free(par);
        }
        free(s);
    }
}

/* Wrong input to a parted code: other symbols (another bit count in a
 * part), a symbol without a code, another size; -1 each time, and no byte
 * written outside dst (exact-size buffer under ASan). */
static void test_parts_refuse(void **state) {
    (void)state;
    const size_t n = 3 * SQZC_HUFF_PART_MIN + 17;
    uint8_t *s = malloc(n);
    assert_non_null(s);
    uint32_t r = 77;
    fill(s, n, 0, &r);
    sqzc_huff_code c;
    assert_int_equal(sqzc_huff_code_build_mt(&c, s, n, 8, 3), 0);
    assert_int_equal(c.n_parts, 3);
    const size_t sb = (size_t)c.stream_bytes;
    uint8_t *d = malloc(sb);
    assert_non_null(d);
    /* swap a short code and a long one inside part 0: part 0's bit count changes */
    size_t a = 0, b = 0;
    for (size_t i = 0; i < c.part_end[0]; i++) {
        if (c.lens[s[i]] < c.lens[s[a]]) a = i;
        if (c.lens[s[i]] > c.lens[s[b]]) b = i;
    }
    assert_true(c.lens[s[a]] < c.lens[s[b]]);
    const uint8_t sa = s[a];
    s[a] = s[b];
    assert_int_equal(sqzc_huff_write(&c, s, n, d, sb), -1);
    s[a] = sa;
    /* the same in the last part, then the middle one */
    for (int p = 2; p >= 1; p--) {
        const size_t i = c.part_end[p - 1] + 5;
        const uint8_t si = s[i];
        unsigned longest = 0;
        for (unsigned v = 0; v < c.n_lens; v++)
            if (c.lens[v] > c.lens[longest]) longest = v;
        if (c.lens[si] == c.lens[longest]) continue;
        s[i] = (uint8_t)longest;
        assert_int_equal(sqzc_huff_write(&c, s, n, d, sb), -1);
        s[i] = si;
    }
    /* a symbol without a code */
    unsigned none = 256;
    for (unsigned v = 0; v < 256 && none == 256; v++)
        if (v >= c.n_lens || !c.lens[v]) none = v;
    if (none < 256) {
        const uint8_t k = s[n / 2];
        s[n / 2] = (uint8_t)none;
        assert_int_equal(sqzc_huff_write(&c, s, n, d, sb), -1);
        s[n / 2] = k;
    }
    /* fewer symbols than the parts cover: one run, whose size disagrees */
    assert_int_equal(sqzc_huff_write(&c, s, n - 1000, d, sb), -1);
    assert_int_equal(sqzc_huff_write(&c, s, n, d, sb), 0);
    free(d);
    free(s);
}

/* Code lengths: ties broken by symbol (equal counts: the lower symbol is
 * merged first and may get the longer code), and counts of 2^56 and more
 * (the sort's other path) give the lengths of the same counts scaled down. */
static void test_lengths_ties_huge(void **state) {
    (void)state;
    uint8_t l[256], h[256];
    /* four equal counts: all 2 bits */
    const uint64_t eq[4] = {5, 5, 5, 5};
    assert_int_equal(sqzc_huff_lengths(eq, 4, 15, l), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(l[i], 2);
    /* {1, 1, 1}: symbols 0 and 1 merge first (ties by symbol), 2 gets 1 bit */
    const uint64_t three[3] = {1, 1, 1};
    assert_int_equal(sqzc_huff_lengths(three, 3, 15, l), 0);
    assert_int_equal(l[0], 2);
    assert_int_equal(l[1], 2);
    assert_int_equal(l[2], 1);
    uint32_t r = 5;
    for (int rep = 0; rep < 50; rep++) {
        uint64_t f[256], g[256];
        const unsigned ns = 2 + rng_next(&r) % 255;
        for (unsigned i = 0; i < ns; i++) {
            f[i] = rng_next(&r) % 4 == 0 ? 0 : 1 + rng_next(&r) % (rep % 2 ? 4 : 5000);
            g[i] = f[i] << 50; /* counts of up to ~2^63 */
        }
        assert_int_equal(sqzc_huff_lengths(f, ns, 15, l), 0);
        assert_int_equal(sqzc_huff_lengths(g, ns, 15, h), 0);
        assert_memory_equal(l, h, ns);
        /* a complete prefix code (Kraft sum exactly 1) unless under 2 symbols */
        uint64_t kraft = 0;
        unsigned used = 0;
        for (unsigned i = 0; i < ns; i++) {
            assert_true(l[i] <= 15);
            assert_true((l[i] == 0) == (f[i] == 0));
            if (l[i]) kraft += 1ull << (15 - l[i]), used++;
        }
        if (used >= 2) assert_int_equal(kraft, 1ull << 15);
    }
}

static int64_t numel(const sqz_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->dims[i];
    return n;
}

/* sqzc_write_sqz_mt: a model with a large int8 weight (LeNet-300-100's
 * first layer, 235,200 values) written at 1, 2 and 3 threads: the same
 * file bytes. */
static void test_writer_threads(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tools/models/lenet300.onnx", tu_source_dir());
    sqzc_graph *g = tg_load(path, NULL);
    sqzc_tensor *big = NULL;
    for (int t = 0; t < g->n_tensors; t++) {
        sqzc_tensor *x = &g->tensors[t];
        if (x->f32 &&
            (!big || x->shape.dims[0] * x->shape.dims[1] > big->shape.dims[0] * big->shape.dims[1]))
            if (x->has_shape && x->shape.ndim == 2) big = x;
    }
    assert_non_null(big);
    const int64_t ne = big->shape.dims[0] * big->shape.dims[1];
    assert_true(ne >= 2 * (int64_t)SQZC_HUFF_PART_MIN);
    big->i8 = malloc((size_t)ne);
    big->q.scale = malloc(sizeof(float));
    big->q.zero_point = malloc(sizeof(int32_t));
    assert_true(big->i8 && big->q.scale && big->q.zero_point);
    float mx = 0;
    for (int64_t i = 0; i < ne; i++) mx = fabsf(big->f32[i]) > mx ? fabsf(big->f32[i]) : mx;
    for (int64_t i = 0; i < ne; i++) big->i8[i] = (int8_t)lrintf(big->f32[i] / mx * 127.0f);
    free(big->f32);
    big->f32 = NULL;
    big->dtype = SQZC_I8;
    big->q.kind = SQZC_Q_TENSOR;
    big->q.n = 1;
    big->q.scale[0] = mx / 127.0f;
    big->q.zero_point[0] = 0;
    char err[512], out[3][64];
    uint8_t *bytes[3];
    size_t sizes[3];
    for (int t = 0; t < 3; t++) {
        snprintf(out[t], sizeof out[t], "/tmp/test_huffman_%d_%d.sqz", (int)getpid(), t);
        assert_int_equal(sqzc_write_sqz_mt(g, out[t], t + 1, err, sizeof err), 0);
        FILE *f = fopen(out[t], "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        sizes[t] = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        bytes[t] = malloc(sizes[t]);
        assert_non_null(bytes[t]);
        assert_int_equal(fread(bytes[t], 1, sizes[t], f), sizes[t]);
        fclose(f);
        unlink(out[t]);
    }
    /* the weight went in as a Huffman stream (~12% under its raw bytes) */
    size_t others = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].f32) others += 4 * (size_t)numel(&g->tensors[t].shape);
    assert_true(sizes[0] + 10000 < (size_t)ne + others);
    for (int t = 1; t < 3; t++) {
        assert_int_equal(sizes[t], sizes[0]);
        assert_memory_equal(bytes[t], bytes[0], sizes[0]);
    }
    /* and sqzc_serialize (one thread) gives the same bytes */
    uint8_t *buf;
    size_t size;
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    assert_int_equal(size, sizes[0]);
    assert_memory_equal(buf, bytes[0], size);
    free(buf);
    for (int t = 0; t < 3; t++) free(bytes[t]);
    sqzc_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_same_bytes),
        cmocka_unit_test(test_parts_refuse),
        cmocka_unit_test(test_lengths_ties_huge),
        cmocka_unit_test(test_writer_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
