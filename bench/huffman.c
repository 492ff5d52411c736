/* bench/huffman.c - speed of the runtime's Huffman / tensor decoder and size
 * of sqz's Huffman-coded weight streams against zlib (deflate level 9, via
 * compress2) on the same symbols.
 *
 * Streams: synthetic Laplacian weights shared to 16 and 32 centroids (1-D
 * k-means, linear init, as in Deep Compression), the same pruned to 10%
 * (index + gap streams), and every weight tensor (>= 1000 elements) of the
 * ONNX models given on the command line, shared to 32 centroids (and pruned to
 * 10% for the sparse line). zlib gets both the bit-packed stream and one byte
 * per symbol; the smaller zlib figure is the one sqz must beat.
 *
 * Usage: bench_huffman [model.onnx ...]
 *   (default: $SQZ_SOURCE_DIR or . + /tools/models/lenet300.onnx, lenet5.onnx)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "huffman.h"
#include "sqz/format.h"
#include "sqzc/huffman.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/tensor_encode.h"
#include "tensor_codec.h"

/* Thread CPU time: the figures stay meaningful on a loaded shared machine
 * (set SQZ_BENCH_WALL=1 for wall-clock time). */
static double now(void) {
    struct timespec t;
    clock_gettime(getenv("SQZ_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* (0,1) */
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return ((double)(rng_s >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* 1-D k-means over the non-zeros of w (linear init over [min, max], 25 Lloyd
 * steps on a sample of at most 200k), then every non-zero replaced by its
 * nearest centroid. Returns the number of centroids (<= k). */
static int share(float *w, size_t n, int k, float *cent) {
    size_t nz = 0;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (w[i] != 0.0f) {
            nz++;
            if (w[i] < lo) lo = w[i];
            if (w[i] > hi) hi = w[i];
        }
    if (!nz) return 0;
    size_t step = nz > 200000 ? nz / 200000 : 1, ns = 0;
    float *s = xmalloc(nz / step + 1 > 0 ? (nz / step + 1) * sizeof *s : 4);
    for (size_t i = 0, j = 0; i < n; i++)
        if (w[i] != 0.0f && j++ % step == 0) s[ns++] = w[i];
    for (int c = 0; c < k; c++) cent[c] = lo + (hi - lo) * ((float)c + 0.5f) / (float)k;
    double *sum = xmalloc((size_t)k * sizeof *sum);
    size_t *cnt = xmalloc((size_t)k * sizeof *cnt);
    for (int it = 0; it < 25; it++) {
        memset(sum, 0, (size_t)k * sizeof *sum);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (size_t i = 0; i < ns; i++) {
            int b = 0;
            for (int c = 1; c < k; c++)
                if (fabsf(s[i] - cent[c]) < fabsf(s[i] - cent[b])) b = c;
            sum[b] += s[i];
            cnt[b]++;
        }
        for (int c = 0; c < k; c++)
            if (cnt[c]) cent[c] = (float)(sum[c] / (double)cnt[c]);
    }
    /* keep non-empty, distinct, non-zero centroids */
    int m = 0;
    for (int c = 0; c < k; c++) {
        int dup = 0;
        for (int d = 0; d < m; d++) dup |= cent[d] == cent[c];
        if (cnt[c] && !dup && cent[c] != 0.0f) cent[m++] = cent[c];
    }
    for (size_t i = 0; i < n; i++)
        if (w[i] != 0.0f) {
            int b = 0;
            for (int c = 1; c < m; c++)
                if (fabsf(w[i] - cent[c]) < fabsf(w[i] - cent[b])) b = c;
            w[i] = cent[b];
        }
    free(s);
    free(sum);
    free(cnt);
    return m;
}

static int cmp(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static void prune(float *w, size_t n, double keep) {
    float *a = xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = fabsf(w[i]);
    /* threshold by sorting a copy (bench only) */
    qsort(a, n, sizeof *a, cmp);
    float t = a[(size_t)((double)n * (1.0 - keep))];
    for (size_t i = 0; i < n; i++)
        if (fabsf(w[i]) < t) w[i] = 0.0f;
    free(a);
}
static uint64_t zlib9(const uint8_t *p, size_t n) {
    uLongf cap = compressBound((uLong)n);
    uint8_t *o = xmalloc(cap);
    if (compress2(o, &cap, p, (uLong)n, 9) != Z_OK) {
        fprintf(stderr, "compress2 failed\n");
        exit(1);
    }
    free(o);
    return cap;
}

static int all_ok = 1;

/* one symbol stream: packed / Huffman / zlib */
static void size_line(const char *what, const uint8_t *sym, size_t n, unsigned bits) {
    uint64_t packed = (n * bits + 7) / 8;
    uint8_t *pk = xmalloc(packed);
    memset(pk, 0, packed);
    for (size_t i = 0; i < n; i++) {
        uint64_t b = i * bits;
        unsigned v = (unsigned)sym[i] << (b & 7);
        pk[b >> 3] |= (uint8_t)v;
        if ((b & 7) + bits > 8) pk[(b >> 3) + 1] |= (uint8_t)(v >> 8);
    }
    sqzc_huff_code c;
    if (sqzc_huff_code_build(&c, sym, n, bits) != 0) exit(1);
    uint64_t zp = zlib9(pk, packed), zb = zlib9(sym, n), z = zp < zb ? zp : zb;
    /* what sqz stores: the smaller of Huffman and plain packing (per stream) */
    uint64_t sqz = c.stream_bytes < packed ? c.stream_bytes : packed;
    int ok = sqz <= z;
    all_ok &= ok;
    printf("  %-34s %9zu sym %2u b | packed %8llu | sqz huffman %8llu (%.2f b/sym) | zlib-9 "
           "packed %8llu, bytes %8llu | sqz stored/zlib %.3f %s\n",
           what, n, bits, (unsigned long long)packed, (unsigned long long)c.stream_bytes,
           n ? 8.0 * (double)c.stream_bytes / (double)n : 0.0, (unsigned long long)zp,
           (unsigned long long)zb, z ? (double)sqz / (double)z : 0.0,
           ok ? "" : "  <-- LARGER THAN ZLIB");
    free(pk);
}

/* index (and gap) streams of a shared (and maybe pruned) tensor */
static void tensor_streams(const char *name, const float *w, size_t n, const float *cent, int nc,
                           int sparse) {
    unsigned bits = 1;
    while ((1 << bits) < nc) bits++;
    uint8_t *idx = xmalloc(n), *gaps = xmalloc(n * 2 + 1);
    size_t ni = 0, ng = 0;
    const unsigned gbits = 5, M = (1u << gbits) - 1; /* Deep Compression: 5-bit gaps (fc) */
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (sparse && w[i] == 0.0f) continue;
        int c = 0;
        while (c < nc && cent[c] != w[i]) c++;
        if (c == nc) { /* a dense zero: not in the codebook, give it the last index */
            c = nc;
            if ((1 << bits) <= nc) bits++;
        }
        idx[ni++] = (uint8_t)c;
        if (sparse) {
            size_t g = i - pos;
            for (; g >= M; g -= M) gaps[ng++] = (uint8_t)M;
            gaps[ng++] = (uint8_t)g;
            pos = i + 1;
        }
    }
    char what[256];
    snprintf(what, sizeof what, "%s idx", name);
    size_line(what, idx, ni, bits);
    if (sparse) {
        snprintf(what, sizeof what, "%s gaps", name);
        size_line(what, gaps, ng, gbits);
    }
    free(idx);
    free(gaps);
}

static float laplace(double b) {
    double u = urand() - 0.5;
    return (float)(-b * (u < 0 ? -1 : 1) * log(1 - 2 * fabs(u)));
}

static void speed(void) {
    const size_t n = 1u << 23;
    float *w = xmalloc(n * sizeof *w);
    float cent[32];
    for (size_t i = 0; i < n; i++) w[i] = laplace(0.05);
    int nc = share(w, n, 32, cent);
    sqzc_encoding e = {5, cent, nc, 0, 0, 0, 1, 0, 0, 0.0f};
    uint8_t *pl;
    size_t size;
    sqzc_enc_stats st;
    char err[200];
    if (sqzc_tensor_encode(w, n, &e, 0, &pl, &size, &st, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    sqz_payload_info pi;
    const char *msg;
    if (sqz_payload_parse(st.encoding, pl, size, n, &pi, &msg) != 0 || !st.index_huffman) {
        fprintf(stderr, "unexpected payload\n");
        exit(1);
    }
    const uint8_t *hs = pl + pi.header_bytes + pi.centroid_bytes;
    uint8_t *sym = xmalloc(n);
    float *out = xmalloc(n * sizeof *out);
    int reps = 0;
    double t0 = now(), t;
    do {
        if (sqz_huff_stream_decode(hs, (size_t)pi.value_bytes, 5, sym, n, &msg) != 0) exit(1);
        reps++;
    } while ((t = now() - t0) < 1.0);
    double sps = (double)n * reps / t;
    printf("decode speed (Laplacian weights, 32 centroids, %zu symbols, %.2f bits/symbol):\n", n,
           8.0 * (double)pi.value_bytes / (double)n);
    printf("  Huffman symbols -> u8      : %7.1f MB/s of decoded symbols (%.0f Msym/s)\n",
           sps / 1e6, sps / 1e6);
    reps = 0;
    t0 = now();
    do {
        if (sqz_tensor_decode(st.encoding, pl, size, n, out, err, sizeof err, NULL) != 0) exit(1);
        reps++;
    } while ((t = now() - t0) < 1.0);
    double eps = (double)n * reps / t;
    printf("  whole tensor -> f32        : %7.1f MB/s of f32 output (%.0f Melem/s)\n",
           eps * 4 / 1e6, eps / 1e6);
    if (memcmp(out, w, n * sizeof *w) != 0) {
        fprintf(stderr, "decode mismatch\n");
        exit(1);
    }
    free(pl);
    /* pruned to 10%, 5-bit gaps, Huffman: the Deep Compression fc setting */
    prune(w, n, 0.10);
    nc = share(w, n, 32, cent);
    sqzc_encoding es = {5, cent, nc, 0, 1, 5, 1, 0, 0, 0.0f};
    if (sqzc_tensor_encode(w, n, &es, 0, &pl, &size, &st, err, sizeof err) != 0) exit(1);
    reps = 0;
    t0 = now();
    do {
        if (sqz_tensor_decode(st.encoding, pl, size, n, out, err, sizeof err, NULL) != 0) exit(1);
        reps++;
    } while ((t = now() - t0) < 1.0);
    eps = (double)n * reps / t;
    printf("  sparse 10%% (idx+gaps) -> f32: %7.1f MB/s of f32 output (%.0f Melem/s), %.2f "
           "bits/weight\n",
           eps * 4 / 1e6, eps / 1e6, sqzc_enc_bits_per_weight(&st));
    if (memcmp(out, w, n * sizeof *w) != 0) exit(1);
    free(pl);
    free(sym);
    free(out);
    free(w);
}

static void synthetic_sizes(void) {
    const size_t n = 1u << 20;
    float *w = xmalloc(n * sizeof *w), cent[32];
    printf("sizes, synthetic Laplacian weights (%zu):\n", n);
    for (int k = 16; k <= 32; k *= 2) {
        for (size_t i = 0; i < n; i++) w[i] = laplace(0.05);
        int nc = share(w, n, k, cent);
        char name[64];
        snprintf(name, sizeof name, "laplace k=%d dense", k);
        tensor_streams(name, w, n, cent, nc, 0);
        prune(w, n, 0.10);
        nc = share(w, n, k, cent);
        snprintf(name, sizeof name, "laplace k=%d pruned 10%%", k);
        tensor_streams(name, w, n, cent, nc, 1);
    }
    free(w);
}

static void model_sizes(const char *path) {
    sqzc_graph *g = NULL;
    char err[512];
    sqzc_import_options o = {0};
    o.default_batch = 1;
    if (sqzc_import_onnx(path, &o, &g, err, sizeof err) != 0) {
        printf("  (skipped %s: %s)\n", path, err);
        return;
    }
    printf("sizes, %s (weights shared to 32 centroids; sparse: pruned to 10%%):\n", path);
    for (int t = 0; t < g->n_tensors; t++) {
        sqzc_tensor *x = &g->tensors[t];
        if (!x->f32 || !x->has_shape) continue;
        size_t n = 1;
        for (int d = 0; d < x->shape.ndim; d++) n *= (size_t)x->shape.dims[d];
        if (n < 1000) continue;
        float *w = xmalloc(n * sizeof *w), cent[32];
        memcpy(w, x->f32, n * sizeof *w);
        int nc = share(w, n, 32, cent);
        tensor_streams(x->name, w, n, cent, nc, 0);
        memcpy(w, x->f32, n * sizeof *w);
        prune(w, n, 0.10);
        nc = share(w, n, 32, cent);
        char name[160];
        snprintf(name, sizeof name, "%s p10%%", x->name);
        tensor_streams(name, w, n, cent, nc, 1);
        free(w);
    }
    sqzc_graph_free(g);
}

int main(int argc, char **argv) {
    speed();
    synthetic_sizes();
    if (argc > 1) {
        for (int i = 1; i < argc; i++) model_sizes(argv[i]);
    } else {
        const char *src = getenv("SQZ_SOURCE_DIR");
        char p[1024];
        const char *names[] = {"lenet300.onnx", "lenet5.onnx"};
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof p, "%s/tools/models/%s", src ? src : ".", names[i]);
            FILE *f = fopen(p, "rb");
            if (!f) continue;
            fclose(f);
            model_sizes(p);
        }
    }
    printf("sqz Huffman <= zlib-9 on every stream: %s\n", all_ok ? "yes" : "NO");
    return all_ok ? 0 : 1;
}
