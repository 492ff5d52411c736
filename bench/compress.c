/* bench/compress.c - the compressed reference models: size against the ONNX
 * file, sqz's Huffman coding against zlib (deflate level 9, compress2) on the
 * same symbol streams, the runtime's decode speed on the real tensors, and the
 * load time of the compressed model.
 *
 * For each MODEL.onnx RECIPE pair: import (as sqz compress), apply the recipe
 * (libsqzc) - or, with RECIPE "search", run the default search of
 * `sqz compress --data fashion-mnist` (same code and defaults, so the same
 * model) - encode every requested tensor (sqzc_tensor_encode, as the writer
 * does), then:
 *  - streams: every index stream and gap stream the encoder produced is read
 *    back from the payload (Huffman-decoded or unpacked) into one symbol per
 *    byte; zlib-9 gets it both bit-packed and one byte per symbol, and the
 *    smaller zlib figure is compared with what sqz stores for the stream
 *    (Huffman incl. its code-length table, or plain packing when that is
 *    smaller). Totals per model; sqz must be <= zlib.
 *  - decode: sqz_tensor_decode of all encoded tensors, repeated >= 0.5 s:
 *    MB/s of f32 output (thread CPU time; SQZ_BENCH_WALL=1 for wall time).
 *  - load: sqz_model_load_buffer of the serialized .sqz (decodes and packs the
 *    weights), median of 21 runs, next to the same model stored raw.
 * Usage: bench_compress MODEL.onnx RECIPE|search[:lsq][:z=Z] [MODEL.onnx ...]
 *   (bench/compress.sh runs it on the reference models with bench/recipes/) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "cmd_compress_search.h"
#include "evaluate.h"
#include "huffman.h"
#include "sqz/format.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/recipe.h"
#include "sqzc/tensor_encode.h"
#include "sqzc/writer.h"
#include "tensor_codec.h"

static double now(void) {
    struct timespec t;
    clock_gettime(getenv("SQZ_BENCH_WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_compress: out of memory\n");
        exit(2);
    }
    return p;
}

static uint64_t zlib9(const uint8_t *p, size_t n) {
    uLongf cap = compressBound((uLong)n);
    uint8_t *o = xmalloc(cap);
    if (compress2(o, &cap, p, (uLong)n, 9) != Z_OK) {
        fprintf(stderr, "bench_compress: compress2 failed\n");
        exit(2);
    }
    free(o);
    return cap;
}

static void pack(const uint8_t *s, size_t n, unsigned k, uint8_t *dst) {
    memset(dst, 0, (n * k + 7) / 8);
    uint64_t bit = 0;
    for (size_t i = 0; i < n; i++, bit += k) {
        unsigned v = (unsigned)s[i] << (bit & 7);
        dst[bit >> 3] |= (uint8_t)v;
        if ((bit & 7) + k > 8) dst[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
    }
}

static void unpack(const uint8_t *src, size_t n, unsigned k, uint8_t *out) {
    uint64_t bit = 0;
    for (size_t i = 0; i < n; i++, bit += k) {
        unsigned v = src[bit >> 3] >> (bit & 7);
        if ((bit & 7) + k > 8) v |= (unsigned)src[(bit >> 3) + 1] << (8 - (bit & 7));
        out[i] = (uint8_t)(v & ((1u << k) - 1));
    }
}

typedef struct totals {
    uint64_t sqz, zlib, packed;
    int streams, huffman_streams;
} totals;

/* one stream of the payload: symbols back, zlib on them */
static void stream(const uint8_t *p, uint64_t len, int huff, unsigned k, uint64_t n, totals *t) {
    if (n == 0 || k == 0) return;
    uint8_t *sym = xmalloc((size_t)n), *pk = xmalloc((size_t)((n * k + 7) / 8));
    const char *msg = NULL;
    if (huff) {
        if (sqz_huff_stream_decode(p, (size_t)len, k, sym, (size_t)n, &msg) != 0) {
            fprintf(stderr, "bench_compress: stream decode: %s\n", msg ? msg : "?");
            exit(2);
        }
    } else {
        unpack(p, (size_t)n, k, sym);
    }
    pack(sym, (size_t)n, k, pk);
    uint64_t zp = zlib9(pk, (size_t)((n * k + 7) / 8)), zb = zlib9(sym, (size_t)n);
    t->sqz += len;
    t->zlib += zp < zb ? zp : zb;
    t->packed += (n * k + 7) / 8;
    t->streams++;
    t->huffman_streams += huff != 0;
    free(sym);
    free(pk);
}

static int all_ok = 1;

static void bench_model(const char *onnx, const char *recipe) {
    char err[512];
    sqzc_graph *g = NULL;
    sqzc_import_options io;
    memset(&io, 0, sizeof io);
    io.default_batch = 1;
    sqzc_recipe r;
    sqzc_recipe_init(&r);
    r.huffman = 1;
    if (sqzc_import_onnx(onnx, &io, &g, err, sizeof err) != 0 ||
        sqzc_optimize(g, err, sizeof err) != 0) {
        fprintf(stderr, "bench_compress: %s: %s\n", onnx, err);
        exit(2);
    }
    if (strncmp(recipe, "search", 6) == 0 && (recipe[6] == '\0' || recipe[6] == ':')) {
        /* the defaults of sqz compress (tools/cmd_compress.c) */
        eval_set train;
        if (eval_set_load("bench", "fashion-mnist", NULL, "train", &train) != 0) exit(2);
        csr_options so;
        memset(&so, 0, sizeof so);
        so.count = train.imgs.n < 10000 ? train.imgs.n : 10000;
        so.first = train.imgs.n - so.count;
        so.n_calib = so.count < 500 ? so.count : 500;
        so.batch = 50;
        so.threads = 1;
        so.target_drop = 0.5;
        so.fp16 = 1;
        so.huffman = 1;
        so.bias_bits = r.bias_bits;
        so.aware = 1;
        so.refine = 8;
        so.z = 0.0;
        /* search:lsq (sqz compress --lsq), search:z=Z (--confidence Z), combinable */
        so.lsq = strstr(recipe, ":lsq") != NULL;
        const char *zs = strstr(recipe, ":z=");
        if (zs) so.z = atof(zs + 3);
        csr_result sr;
        double t0 = now();
        if (csr_search("bench", g, &train, &so, &r, &sr) != 0) exit(2);
        printf("%s: search %.1f s CPU, %d runs, selection drop %+.2f points\n", onnx, now() - t0,
               sr.evaluated, (sr.base_acc - sr.acc) * 100.0);
        eval_set_free(&train);
    } else if (sqzc_recipe_parse_file(&r, recipe, err, sizeof err) != 0 ||
               sqzc_recipe_check(&r, g, err, sizeof err) != 0 ||
               sqzc_recipe_apply(g, &r, err, sizeof err) != 0) {
        fprintf(stderr, "bench_compress: %s: %s\n", onnx, err);
        exit(2);
    }
    if (csr_finalize(g, r.bias_bits) != 0) exit(2); /* as sqz compress */
    sqzc_recipe_free(&r);
    FILE *f = fopen(onnx, "rb");
    long onnx_bytes = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) onnx_bytes = ftell(f);
    if (f) fclose(f);

    /* encode every request, read the streams back */
    int n_enc = 0;
    uint8_t **pl = xmalloc((size_t)g->n_tensors * sizeof *pl);
    size_t *psz = xmalloc((size_t)g->n_tensors * sizeof *psz);
    unsigned *penc = xmalloc((size_t)g->n_tensors * sizeof *penc);
    uint64_t *pnum = xmalloc((size_t)g->n_tensors * sizeof *pnum);
    totals t;
    memset(&t, 0, sizeof t);
    uint64_t out_elems = 0, weight_bytes = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        sqzc_tensor *x = &g->tensors[i];
        if (!x->f32 || !x->enc) continue;
        uint64_t n = (uint64_t)sqz_shape_numel(&x->shape);
        sqzc_enc_stats st;
        uint8_t *p = NULL;
        size_t size = 0;
        if (sqzc_tensor_encode(x->f32, n, x->enc, 0, &p, &size, &st, err, sizeof err) != 0) {
            fprintf(stderr, "bench_compress: %s: %s\n", x->name, err);
            exit(2);
        }
        weight_bytes += size;
        if (st.encoding == SQZ_ENC_RAW) {
            free(p);
            continue;
        }
        sqz_payload_info pi;
        const char *msg;
        if (sqz_payload_parse(st.encoding, p, size, n, &pi, &msg) != 0) {
            fprintf(stderr, "bench_compress: %s: payload: %s\n", x->name, msg);
            exit(2);
        }
        const uint8_t *vs = p + pi.header_bytes + pi.centroid_bytes;
        if (st.encoding & SQZ_ENC_CODEBOOK)
            stream(vs, pi.value_bytes, pi.pflags & SQZ_PF_IDX_HUFF, pi.index_bits, pi.n_values, &t);
        if (st.encoding & SQZ_ENC_SPARSE)
            stream(vs + pi.value_bytes, pi.gap_bytes, pi.pflags & SQZ_PF_GAP_HUFF, pi.gap_bits,
                   pi.n_gaps, &t);
        pl[n_enc] = p;
        psz[n_enc] = size;
        penc[n_enc] = st.encoding;
        pnum[n_enc] = n;
        n_enc++;
        out_elems += n;
    }

    /* decode speed over the model's encoded tensors */
    float *out = xmalloc((size_t)(out_elems ? out_elems : 1) * sizeof *out);
    int reps = 0;
    double t0 = now(), el;
    do {
        float *o = out;
        for (int k = 0; k < n_enc; k++) {
            if (sqz_tensor_decode(penc[k], pl[k], psz[k], pnum[k], o, err, sizeof err, NULL) != 0) {
                fprintf(stderr, "bench_compress: decode: %s\n", err);
                exit(2);
            }
            o += pnum[k];
        }
        reps++;
    } while ((el = now() - t0) < 0.5);
    double mbps = (double)out_elems * 4.0 * reps / el / 1e6;

    /* load time: compressed and raw .sqz */
    double load_ms[2];
    size_t file_bytes[2];
    for (int raw = 0; raw < 2; raw++) {
        sqzc_encoding **saved = xmalloc((size_t)g->n_tensors * sizeof *saved);
        if (raw)
            for (int i = 0; i < g->n_tensors; i++) {
                saved[i] = g->tensors[i].enc;
                g->tensors[i].enc = NULL;
            }
        uint8_t *buf = NULL;
        if (sqzc_serialize(g, &buf, &file_bytes[raw], err, sizeof err) != 0) {
            fprintf(stderr, "bench_compress: serialize: %s\n", err);
            exit(2);
        }
        if (raw)
            for (int i = 0; i < g->n_tensors; i++) g->tensors[i].enc = saved[i];
        free(saved);
        double ts[21];
        for (int k = 0; k < 21; k++) {
            sqz_model *m = NULL;
            sqz_status s;
            double a = now();
            if (sqz_model_load_buffer(buf, file_bytes[raw], &m, &s) != SQZ_OK) {
                fprintf(stderr, "bench_compress: load: %s\n", s.msg);
                exit(2);
            }
            ts[k] = now() - a;
            sqz_model_free(m);
        }
        for (int a = 1; a < 21; a++) /* insertion sort for the median */
            for (int b = a; b > 0 && ts[b] < ts[b - 1]; b--) {
                double tmp = ts[b];
                ts[b] = ts[b - 1];
                ts[b - 1] = tmp;
            }
        load_ms[raw] = ts[10] * 1e3;
        free(buf);
    }
    int ok = t.sqz <= t.zlib;
    all_ok &= ok;
    printf("%s with %s:\n", onnx, recipe);
    printf("  size: onnx %ld B -> .sqz %zu B (%.2fx; raw .sqz %zu B), encoded weights %llu B\n",
           onnx_bytes, file_bytes[0], (double)onnx_bytes / (double)file_bytes[0], file_bytes[1],
           (unsigned long long)weight_bytes);
    printf("  streams: %d (%d Huffman-coded): sqz %llu B, zlib-9 %llu B (best of packed / byte "
           "per symbol), plain packing %llu B: sqz/zlib %.3f %s\n",
           t.streams, t.huffman_streams, (unsigned long long)t.sqz, (unsigned long long)t.zlib,
           (unsigned long long)t.packed, t.zlib ? (double)t.sqz / (double)t.zlib : 0.0,
           ok ? "(<= zlib)" : "<-- LARGER THAN ZLIB");
    printf("  decode: %d tensors, %llu weights: %.1f MB/s of f32 output\n", n_enc,
           (unsigned long long)out_elems, mbps);
    printf("  load (sqz_model_load_buffer, median of 21): compressed %.3f ms, raw %.3f ms\n",
           load_ms[0], load_ms[1]);
    for (int k = 0; k < n_enc; k++) free(pl[k]);
    free(pl);
    free(psz);
    free(penc);
    free(pnum);
    free(out);
    sqzc_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc < 3 || (argc - 1) % 2 != 0) {
        fprintf(stderr, "usage: bench_compress MODEL.onnx RECIPE [MODEL.onnx RECIPE ...]\n");
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) bench_model(argv[i], argv[i + 1]);
    printf("sqz Huffman <= zlib-9 on every model's streams: %s\n", all_ok ? "yes" : "NO");
    return all_ok ? 0 : 1;
}
