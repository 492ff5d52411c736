/* writer.c - serialize the sqzc IR to .sqz v2 (layout in sqz/format.h). */
#include "sqzc/writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model.h" /* runtime-internal: sqzc_model_build fills a sqz_model */
#include "sqz/format.h"
#include "sqzc/huffman.h"
#include "tensor_codec.h"
#include "sqzc/tensor_encode.h"

typedef struct bytebuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} bytebuf;

static void bb_reserve(bytebuf *b, size_t extra) {
    if (b->oom) return;
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void bb_put(bytebuf *b, const void *src, size_t n) {
    bb_reserve(b, n);
    if (b->oom) return;
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_u8(bytebuf *b, uint8_t v) {
    bb_put(b, &v, 1);
}
static void bb_u16(bytebuf *b, uint16_t v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    bb_put(b, x, 2);
}
static void bb_u32(bytebuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, x, 4);
}
static void bb_u64(bytebuf *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
static void bb_f32(bytebuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    bb_u32(b, u);
}
static void bb_var(bytebuf *b, uint64_t v) {
    uint8_t x[SQZ_VAR_MAX_BYTES];
    size_t n = 0;
    do {
        x[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) x[n] |= 0x80;
        n++;
    } while (v);
    bb_put(b, x, n);
}
static void bb_zvar(bytebuf *b, int64_t v) {
    bb_var(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* f32 -> f16 bits if exactly representable (finite, no precision lost) */
static int f16_exact(float f, uint16_t *h) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xff) return 0;
    if (exp == 0) {
        if (man) return 0;
        *h = sign;
        return 1;
    }
    int e = (int)exp - 127;
    if (e > 15) return 0;
    if (e >= -14) {
        if (man & 0x1fffu) return 0;
        *h = (uint16_t)(sign | (uint32_t)(e + 15) << 10 | man >> 13);
        return 1;
    }
    if (e < -24) return 0;
    uint32_t full = 0x800000u | man;
    int shift = -1 - e; /* 14..23 */
    if (full & ((1u << shift) - 1)) return 0;
    *h = (uint16_t)(sign | full >> shift);
    return 1;
}

static int all_f16(const float *v, int64_t n) {
    uint16_t h;
    for (int64_t i = 0; i < n; i++)
        if (!f16_exact(v[i], &h)) return 0;
    return 1;
}

/* Payload of an i8 / i32 constant (sqz/format.h DATA): the smallest of raw,
 * (i32) zigzag varints, and a Huffman stream over the raw (i8) / varint
 * (i32) bytes, its code counted and written on up to `threads` threads.
 * Returns the encoding byte; -1 on OOM. */
static int put_int_payload(bytebuf *data, const sqzc_tensor *x, int64_t n, int threads) {
    bytebuf v = {0};
    if (!x->i8)
        for (int64_t i = 0; i < n; i++) bb_zvar(&v, x->i32[i]);
    if (v.oom) return -1;
    /* the bytes Huffman codes: i8 values as they are (no copy) */
    const uint8_t *vb = x->i8 ? (const uint8_t *)x->i8 : v.p;
    const size_t vn = x->i8 ? (size_t)n : v.n;
    const uint64_t raw = (uint64_t)n * (x->i8 ? 1u : 4u);
    uint64_t best = x->i8 ? raw : (v.n < raw ? v.n : raw);
    int enc = x->i8 || v.n >= raw ? SQZ_ENC_RAW : SQZ_ENC_VARINT;
    sqzc_huff_code hc;
    uint64_t hsize = UINT64_MAX, prefix = 0;
    if (n > 0 && sqzc_huff_code_build_mt(&hc, vb, vn, 8, threads) == 0) {
        bytebuf pre = {0};
        if (!x->i8) bb_var(&pre, v.n);
        prefix = pre.n;
        free(pre.p);
        hsize = prefix + hc.stream_bytes;
    }
    if (hsize < best) {
        size_t at = data->n;
        if (!x->i8) bb_var(data, v.n);
        bb_reserve(data, (size_t)hc.stream_bytes);
        if (!data->oom) {
            if (sqzc_huff_write(&hc, vb, vn, data->p + data->n, (size_t)hc.stream_bytes) != 0) {
                free(v.p);
                data->n = at;
                return -1;
            }
            data->n += (size_t)hc.stream_bytes;
        }
        enc = x->i8 ? SQZ_ENC_HUFFMAN : SQZ_ENC_VARINT | SQZ_ENC_HUFFMAN;
    } else if (enc == SQZ_ENC_VARINT) {
        bb_put(data, v.p, v.n);
    } else if (x->i8) {
        bb_put(data, x->i8, (size_t)n);
    } else {
        for (int64_t i = 0; i < n; i++) bb_u32(data, (uint32_t)x->i32[i]);
    }
    free(v.p);
    return data->oom ? -1 : enc;
}

/* Strings blob; offset 0 is the empty string. Equal strings share one copy
 * (attribute names repeat on every node): an open-addressing table of
 * offset + 1 keyed by the string's bytes. */
typedef struct strtab {
    uint32_t *slots;
    size_t cap, count;
} strtab;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint32_t str_ref(bytebuf *s, strtab *t, const char *str) {
    if (!str || !*str) return 0;
    if (!s->oom && (t->count + 1) * 2 > t->cap) { /* grow and rehash */
        size_t cap = t->cap ? t->cap * 2 : 256;
        uint32_t *ns = calloc(cap, sizeof *ns);
        if (!ns) {
            s->oom = 1;
        } else {
            for (size_t i = 0; i < t->cap; i++) {
                if (!t->slots[i]) continue;
                size_t h = (size_t)str_hash((const char *)s->p + t->slots[i] - 1) & (cap - 1);
                while (ns[h]) h = (h + 1) & (cap - 1);
                ns[h] = t->slots[i];
            }
            free(t->slots);
            t->slots = ns;
            t->cap = cap;
        }
    }
    if (s->oom) return 0;
    size_t h = (size_t)str_hash(str) & (t->cap - 1);
    while (t->slots[h]) {
        if (strcmp((const char *)s->p + t->slots[h] - 1, str) == 0) return t->slots[h] - 1;
        h = (h + 1) & (t->cap - 1);
    }
    uint32_t off = (uint32_t)s->n;
    bb_put(s, str, strlen(str) + 1);
    if (s->oom || s->n > UINT32_MAX) return 0;
    t->slots[h] = off + 1;
    t->count++;
    return off;
}

static int64_t numel(const sqz_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->dims[i];
    return n;
}

static int ints_all(const sqz_attr *a, int64_t v) {
    if (a->type != SQZ_ATTR_INTS || !a->ints) return 0;
    for (uint32_t k = 0; k < a->count; k++)
        if (a->ints[k] != v) return 0;
    return 1;
}

/* Attributes a reader takes as their ONNX default when absent (sqz/format.h
 * GRAPH): Conv dilations / strides all 1, pads all 0, group 1, kernel_shape
 * equal to the weight's spatial dims; Gemm alpha / beta 1, transA / transB 0.
 * The writer leaves them out. */
static int attr_is_default(const sqzc_graph *g, const sqzc_node *n, const sqz_attr *a) {
    if (!a->name) return 0;
    const int one_int = a->type == SQZ_ATTR_INT && a->ints && a->count == 1;
    const int one_float = a->type == SQZ_ATTR_FLOAT && a->floats && a->count == 1;
    if (n->op == SQZ_OP_CONV) {
        if (strcmp(a->name, "dilations") == 0 || strcmp(a->name, "strides") == 0)
            return ints_all(a, 1);
        if (strcmp(a->name, "pads") == 0) return ints_all(a, 0);
        if (strcmp(a->name, "group") == 0) return one_int && a->ints[0] == 1;
        if (strcmp(a->name, "kernel_shape") == 0 && a->type == SQZ_ATTR_INTS && a->ints &&
            n->n_in >= 2 && n->in[1] >= 0) {
            const sqzc_tensor *w = &g->tensors[n->in[1]];
            if (!w->has_shape || w->shape.ndim != (int)a->count + 2) return 0;
            for (uint32_t k = 0; k < a->count; k++)
                if (a->ints[k] != w->shape.dims[k + 2]) return 0;
            return 1;
        }
    }
    if (n->op == SQZ_OP_GEMM) {
        if (strcmp(a->name, "alpha") == 0 || strcmp(a->name, "beta") == 0)
            return one_float && a->floats[0] == 1.0f;
        if (strcmp(a->name, "transA") == 0 || strcmp(a->name, "transB") == 0)
            return one_int && a->ints[0] == 0;
    }
    return 0;
}

/* The CRC-32 of sqz/format.h (zlib's: the same polynomial, ~2x faster than
 * the runtime's table-driven sqz_crc32 on a model's weights) */
static uint32_t section_crc(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib's length is a uInt */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static int serialize(const sqzc_graph *g, int threads, uint8_t **out, size_t *out_size, char *err,
                     size_t err_len) {
    bytebuf str = {0}, ten = {0}, gr = {0}, data = {0}, meta = {0};
    strtab stab = {0};
    /* the oldest version holding what is written: v2 unless a v3 feature
     * (linear codebook, grid-coded centroids) is used, so older runtimes keep
     * reading the rest */
    uint32_t version = 2;
    *out = NULL;
    *out_size = 0;
    bb_u8(&str, 0);

    uint8_t *flags = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), 1);
    if (!flags) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int i = 0; i < g->n_inputs; i++) flags[g->inputs[i]] |= SQZ_TF_INPUT;
    for (int i = 0; i < g->n_outputs; i++) flags[g->outputs[i]] |= SQZ_TF_OUTPUT;

    /* TENSORS + DATA */
    bb_var(&ten, (uint64_t)g->n_tensors);
    for (int t = 0; t < g->n_tensors; t++) {
        const sqzc_tensor *x = &g->tensors[t];
        if (x->i64) {
            snprintf(err, err_len,
                     "tensor '%s' is an int64 constant left over from import (it feeds no "
                     "foldable op); the runtime only executes float tensors",
                     x->name);
            goto fail;
        }
        const int is_const = x->f32 || x->i8 || x->i32;
        uint8_t f = flags[t] | (is_const ? SQZ_TF_CONST : 0);
        if ((x->dtype == SQZC_I8 || x->dtype == SQZC_I32) && x->enc) {
            snprintf(err, err_len, "tensor '%s': encoded storage is for f32 tensors only", x->name);
            goto fail;
        }
        int ndim = x->has_shape ? x->shape.ndim : 0;
        const int64_t ne = numel(&x->shape);
        /* encoded storage requested by the compression passes (sqzc/tensor_encode.h);
         * the encoder falls back to raw when encoding does not pay */
        uint8_t *enc_pl = NULL;
        size_t enc_size = 0;
        sqzc_enc_stats enc_st = {0};
        if (x->f32 && x->enc) {
            char e[200];
            if (sqzc_tensor_encode(x->f32, (uint64_t)ne, x->enc, 0, &enc_pl, &enc_size, &enc_st, e,
                                   sizeof e) != 0) {
                snprintf(err, err_len, "tensor '%s': cannot encode: %s", x->name, e);
                goto fail;
            }
        }
        /* internal names are optional (sqz/format.h STRINGS) */
        int named = g->keep_names || (flags[t] & (SQZ_TF_INPUT | SQZ_TF_OUTPUT));
        bb_var(&ten, named ? str_ref(&str, &stab, x->name) : 0);
        bb_u8(&ten, x->dtype == SQZC_I8    ? SQZ_DT_I8
                    : x->dtype == SQZC_I32 ? SQZ_DT_I32
                                           : SQZ_DT_F32);
        size_t enc_at = ten.n;
        bb_u8(&ten, (uint8_t)enc_st.encoding);
        bb_u8(&ten, f);
        bb_u8(&ten, (uint8_t)ndim);
        for (int d = 0; d < ndim; d++) bb_var(&ten, (uint64_t)x->shape.dims[d]);
        /* quantization record (INT8 contract); f32 tensors carry none */
        const sqzc_qparams *q = &x->q;
        if (q->kind != SQZC_Q_NONE && x->dtype != SQZC_I8 && x->dtype != SQZC_I32) {
            snprintf(err, err_len, "tensor '%s': quantization parameters on a float tensor",
                     x->name);
            free(enc_pl);
            goto fail;
        }
        if ((q->kind == SQZC_Q_TENSOR && q->n != 1) ||
            (q->kind == SQZC_Q_CHANNEL &&
             (q->axis < 0 || q->axis >= ndim || (int64_t)q->n != x->shape.dims[q->axis]))) {
            snprintf(err, err_len, "tensor '%s': %d quantization pairs do not fit its shape",
                     x->name, q->n);
            free(enc_pl);
            goto fail;
        }
        if (q->kind == SQZC_Q_NONE) {
            bb_u8(&ten, SQZ_QUANT_NONE);
        } else {
            int sym = q->kind == SQZC_Q_CHANNEL;
            for (int k = 0; k < q->n && sym; k++) sym = q->zero_point[k] == 0;
            const int h = all_f16(q->scale, q->n);
            bb_u8(&ten, (uint8_t)((sym ? SQZ_QUANT_PER_CHANNEL_SYM : (unsigned)q->kind) |
                                  (h ? SQZ_QF_F16_SCALES : 0)));
            bb_u8(&ten, (uint8_t)(q->kind == SQZC_Q_CHANNEL ? q->axis : 0));
            for (int k = 0; k < q->n; k++) {
                uint16_t hv = 0;
                if (h && f16_exact(q->scale[k], &hv))
                    bb_u16(&ten, hv);
                else
                    bb_f32(&ten, q->scale[k]);
            }
            if (!sym)
                for (int k = 0; k < q->n; k++) bb_zvar(&ten, q->zero_point[k]);
        }
        if (!is_const) continue;
        const size_t at = data.n;
        int enc_byte = enc_st.encoding;
        if (x->i8 || x->i32) {
            enc_byte = put_int_payload(&data, x, ne, threads);
            if (enc_byte < 0) {
                snprintf(err, err_len, "out of memory while serializing");
                goto fail;
            }
        } else if (x->enc && enc_st.encoding != SQZ_ENC_RAW &&
                   !((uint64_t)enc_size > 2 * (uint64_t)ne && all_f16(x->f32, ne))) {
            if (enc_size > 0 && (enc_pl[0] & (SQZ_PF_LINEAR | SQZ_PF_GRID))) version = 3;
            bb_put(&data, enc_pl, enc_size);
            free(enc_pl);
            enc_pl = NULL;
        } else if (all_f16(x->f32, ne) && ne > 0) { /* exact: lossless */
            enc_byte = SQZ_ENC_F16;
            for (int64_t i = 0; i < ne; i++) {
                uint16_t hv = 0;
                (void)f16_exact(x->f32[i], &hv);
                bb_u16(&data, hv);
            }
        } else {
            enc_byte = SQZ_ENC_RAW;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* the file's byte order: one copy (sqz quant serializes its fp32
             * calibration model: a call per value cost ~1 ms a MB) */
            if (ne > 0) bb_put(&data, x->f32, sizeof(float) * (size_t)ne);
#else
            for (int64_t i = 0; i < ne; i++) bb_f32(&data, x->f32[i]);
#endif
        }
        free(enc_pl); /* an encoded payload not kept (or NULL) */
        if (!ten.oom) ten.p[enc_at] = (uint8_t)enc_byte;
        bb_var(&ten, (uint64_t)(data.n - at));
    }

    /* GRAPH */
    bb_var(&gr, (uint64_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        bb_var(&gr, (uint64_t)n->op);
        bb_var(&gr, g->keep_names ? str_ref(&str, &stab, n->name) : 0);
        bb_var(&gr, n->n_in);
        for (uint32_t k = 0; k < n->n_in; k++) bb_var(&gr, (uint64_t)((int64_t)n->in[k] + 1));
        bb_var(&gr, n->n_out);
        for (uint32_t k = 0; k < n->n_out; k++) bb_var(&gr, (uint64_t)n->out[k]);
        uint32_t n_attr = 0;
        for (uint32_t k = 0; k < n->n_attr; k++) n_attr += !attr_is_default(g, n, &n->attrs[k]);
        bb_var(&gr, n_attr);
        for (uint32_t k = 0; k < n->n_attr; k++) {
            const sqz_attr *a = &n->attrs[k];
            if (attr_is_default(g, n, a)) continue;
            bb_var(&gr, str_ref(&str, &stab, a->name));
            bb_u8(&gr, a->type);
            switch (a->type) {
            case SQZ_ATTR_INT:
                bb_zvar(&gr, a->ints[0]);
                break;
            case SQZ_ATTR_INTS:
                bb_var(&gr, a->count);
                for (uint32_t j = 0; j < a->count; j++) bb_zvar(&gr, a->ints[j]);
                break;
            case SQZ_ATTR_FLOAT:
                bb_f32(&gr, a->floats[0]);
                break;
            case SQZ_ATTR_FLOATS:
                bb_var(&gr, a->count);
                for (uint32_t j = 0; j < a->count; j++) bb_f32(&gr, a->floats[j]);
                break;
            case SQZ_ATTR_STRING:
                bb_var(&gr, str_ref(&str, &stab, a->str));
                break;
            default:
                snprintf(err, err_len, "node '%s': attribute '%s' has unknown type %d", n->name,
                         a->name, a->type);
                goto fail;
            }
        }
    }
    bb_var(&gr, (uint64_t)g->n_inputs);
    for (int i = 0; i < g->n_inputs; i++) bb_var(&gr, (uint64_t)g->inputs[i]);
    bb_var(&gr, (uint64_t)g->n_outputs);
    for (int i = 0; i < g->n_outputs; i++) bb_var(&gr, (uint64_t)g->outputs[i]);

    /* METADATA */
    bb_var(&meta, (uint64_t)g->n_meta);
    for (int i = 0; i < g->n_meta; i++) {
        bb_var(&meta, str_ref(&str, &stab, g->meta[i].key));
        bb_var(&meta, str_ref(&str, &stab, g->meta[i].value));
    }

    if (str.oom || ten.oom || gr.oom || data.oom || meta.oom) {
        snprintf(err, err_len, "out of memory while serializing");
        goto fail;
    }
    if (str.n > UINT32_MAX) {
        snprintf(err, err_len, "string table exceeds 4 GiB");
        goto fail;
    }

    {
        struct {
            uint32_t type;
            bytebuf *b;
        } secs[] = {{SQZ_SEC_STRINGS, &str},
                    {SQZ_SEC_TENSORS, &ten},
                    {SQZ_SEC_GRAPH, &gr},
                    {SQZ_SEC_METADATA, &meta},
                    {SQZ_SEC_DATA, &data}};
        const uint32_t ns = sizeof secs / sizeof secs[0];
        bytebuf file = {0}, table = {0};
        uint64_t off = SQZ_HEADER_BYTES + (uint64_t)ns * SQZ_SECTION_ENTRY_BYTES;
        uint64_t offs[8];
        for (uint32_t i = 0; i < ns; i++) {
            const uint64_t a = 8;
            off = (off + a - 1) / a * a;
            offs[i] = off;
            bb_u32(&table, secs[i].type);
            bb_u32(&table, section_crc(secs[i].b->p, secs[i].b->n));
            bb_u64(&table, off);
            bb_u64(&table, secs[i].b->n);
            off += secs[i].b->n;
        }
        bb_put(&file, SQZ_MAGIC, SQZ_MAGIC_LEN);
        bb_u32(&file, version);
        bb_u32(&file, 0);
        bb_u32(&file, ns);
        bb_u32(&file, table.oom ? 0 : sqz_crc32(0, table.p, table.n));
        bb_u64(&file, off);
        bb_put(&file, table.p, table.n);
        for (uint32_t i = 0; i < ns; i++) {
            while (file.n < offs[i]) bb_u8(&file, 0);
            bb_put(&file, secs[i].b->p, secs[i].b->n);
        }
        free(table.p);
        if (file.oom || table.oom) {
            free(file.p);
            snprintf(err, err_len, "out of memory while serializing");
            goto fail;
        }
        *out = file.p;
        *out_size = file.n;
    }
    free(flags);
    free(str.p);
    free(stab.slots);
    free(ten.p);
    free(gr.p);
    free(data.p);
    free(meta.p);
    return 0;
fail:
    free(flags);
    free(str.p);
    free(stab.slots);
    free(ten.p);
    free(gr.p);
    free(data.p);
    free(meta.p);
    return -1;
}

int sqzc_serialize(const sqzc_graph *g, uint8_t **out, size_t *out_size, char *err,
                   size_t err_len) {
    return serialize(g, 1, out, out_size, err, err_len);
}

/* ------------------------------------------------------------ in-memory model
 * What sqz_model_load_buffer makes of serialize()'s bytes, built from the
 * graph directly: the same tensors (ids, names or the loader's generated
 * "t<id>", dtype, flags, shape, quantization, decoded constants), nodes
 * (names or "n<index>", inputs, outputs, the attributes the writer keeps),
 * graph inputs / outputs and metadata. No bytes, no copies of the weights but
 * the model's own. */

/* a string into the model's blob (sized beforehand) */
static const char *blob_put(char *blob, size_t *at, const char *s) {
    if (!s) s = "";
    const size_t l = strlen(s) + 1;
    char *d = blob + *at;
    memcpy(d, s, l);
    *at += l;
    return d;
}

/* the loader's name for an unnamed tensor / node: "<prefix><index>" in a
 * 12-byte slot of names */
static const char *gen_name(char *names, char prefix, int i) {
    char *slot = names + 12 * (size_t)i;
    snprintf(slot, 12, "%c%d", prefix, i);
    return slot;
}

static size_t slen(const char *s) {
    return s ? strlen(s) + 1 : 1;
}

/* constant t's data as the loader decodes it (64-byte aligned, owned) */
static int build_data(const sqzc_tensor *x, sqz_tensor_rec *t, int64_t ne, char *err,
                      size_t err_len) {
    const size_t esz = x->i8 ? 1 : 4;
    t->data = sqz_aligned_alloc((size_t)ne * esz);
    if (!t->data) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (ne == 0) return 0;
    if (x->i8 || x->i32) {
        memcpy(t->data, x->i8 ? (const void *)x->i8 : (const void *)x->i32, (size_t)ne * esz);
        return 0;
    }
    if (x->enc) { /* the payload serialize() would store, decoded */
        uint8_t *pl = NULL;
        size_t size = 0;
        sqzc_enc_stats st = {0};
        char e[200];
        if (sqzc_tensor_encode(x->f32, (uint64_t)ne, x->enc, 0, &pl, &size, &st, e, sizeof e) !=
            0) {
            snprintf(err, err_len, "tensor '%s': cannot encode: %s", x->name, e);
            return -1;
        }
        int rc = 1;
        if (st.encoding != SQZ_ENC_RAW &&
            !((uint64_t)size > 2 * (uint64_t)ne && all_f16(x->f32, ne)))
            rc = sqz_tensor_decode((unsigned)st.encoding, pl, size, (uint64_t)ne, t->data, e,
                                   sizeof e, NULL);
        free(pl);
        if (rc < 0) {
            snprintf(err, err_len, "tensor '%s' encoded data: %s", x->name, e);
            return -1;
        }
        if (rc == 0) return 0;
    }
    memcpy(t->data, x->f32, (size_t)ne * sizeof(float)); /* raw and f16: exact */
    return 0;
}

int sqzc_model_build(const sqzc_graph *g, sqz_model **out, char *err, size_t err_len) {
    *out = NULL;
    sqz_model *m = calloc(1, sizeof *m);
    uint8_t *flags = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), 1);
    size_t blen = 1; /* every string the model points at, once each */
    for (int t = 0; t < g->n_tensors; t++) blen += slen(g->tensors[t].name);
    for (int i = 0; i < g->n_nodes; i++) {
        blen += slen(g->nodes[i].name);
        for (uint32_t k = 0; k < g->nodes[i].n_attr; k++)
            blen += slen(g->nodes[i].attrs[k].name) + slen(g->nodes[i].attrs[k].str);
    }
    for (int i = 0; i < g->n_meta; i++) blen += slen(g->meta[i].key) + slen(g->meta[i].value);
    const size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1),
                 nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    if (!m || !flags || !(m->strings = calloc(blen, 1)) ||
        !(m->tensors = calloc(nt, sizeof *m->tensors)) || !(m->tensor_names = malloc(nt * 12)) ||
        !(m->nodes = calloc(nn, sizeof *m->nodes)) || !(m->node_names = malloc(nn * 12)))
        goto oom;
    m->strings_len = blen;
    size_t at = 1; /* offset 0: the empty string */
    for (int i = 0; i < g->n_inputs; i++) flags[g->inputs[i]] |= SQZ_TF_INPUT;
    for (int i = 0; i < g->n_outputs; i++) flags[g->outputs[i]] |= SQZ_TF_OUTPUT;
    m->n_tensors = g->n_tensors;
    for (int i = 0; i < g->n_tensors; i++) {
        const sqzc_tensor *x = &g->tensors[i];
        sqz_tensor_rec *t = &m->tensors[i];
        if (x->i64) {
            snprintf(err, err_len,
                     "tensor '%s' is an int64 constant left over from import (it feeds no "
                     "foldable op); the runtime only executes float tensors",
                     x->name);
            goto fail;
        }
        const int is_const = x->f32 || x->i8 || x->i32;
        const int named = g->keep_names || (flags[i] & (SQZ_TF_INPUT | SQZ_TF_OUTPUT));
        t->name = named && x->name && *x->name ? blob_put(m->strings, &at, x->name)
                                               : gen_name(m->tensor_names, 't', i);
        t->dtype = x->dtype == SQZC_I8 ? SQZ_DT_I8 : x->dtype == SQZC_I32 ? SQZ_DT_I32 : SQZ_DT_F32;
        t->flags = (uint8_t)(flags[i] | (is_const ? SQZ_TF_CONST : 0));
        if (x->has_shape) t->shape = x->shape;
        /* what serialize() or the loader refuses */
        const sqzc_qparams *q = &x->q;
        const char *bad = NULL;
        if (q->kind != SQZC_Q_NONE && t->dtype == SQZ_DT_F32)
            bad = "quantization parameters on a float tensor";
        else if (q->kind == SQZC_Q_NONE && t->dtype == SQZ_DT_I8)
            bad = "an i8 tensor without quantization parameters";
        else if (t->dtype == SQZ_DT_I32 && !is_const)
            bad = "an i32 tensor that is not a constant";
        else if (t->dtype != SQZ_DT_F32 && x->enc)
            bad = "encoded storage is for f32 tensors only";
        else if ((q->kind == SQZC_Q_TENSOR && q->n != 1) ||
                 (q->kind == SQZC_Q_CHANNEL && (q->axis < 0 || q->axis >= t->shape.ndim ||
                                                (int64_t)q->n != t->shape.dims[q->axis])))
            bad = "quantization pairs that do not fit its shape";
        for (int k = 0; !bad && q->kind != SQZC_Q_NONE && k < q->n; k++)
            if (!(q->scale[k] > 0.0f) || !(q->scale[k] <= 3.4e38f) ||
                (t->dtype == SQZ_DT_I8 ? q->zero_point[k] < -128 || q->zero_point[k] > 127
                                       : q->zero_point[k] != 0))
                bad = "a quantization scale or zero point out of range";
        if (bad) {
            snprintf(err, err_len, "tensor '%s': %s", x->name ? x->name : "", bad);
            goto fail;
        }
        if (q->kind != SQZC_Q_NONE) {
            float *sc = malloc(sizeof *sc * (size_t)q->n);
            int32_t *zp = malloc(sizeof *zp * (size_t)q->n);
            t->q.scale = sc;
            t->q.zero_point = zp;
            if (!sc || !zp) goto oom;
            memcpy(sc, q->scale, sizeof *sc * (size_t)q->n);
            memcpy(zp, q->zero_point, sizeof *zp * (size_t)q->n);
            t->q.kind = q->kind == SQZC_Q_CHANNEL ? SQZ_QUANT_PER_CHANNEL : SQZ_QUANT_PER_TENSOR;
            t->q.axis = (uint8_t)(q->kind == SQZC_Q_CHANNEL ? q->axis : 0);
            t->q.n = (uint32_t)q->n;
        }
        if (is_const && build_data(x, t, numel(&t->shape), err, err_len) != 0) goto fail;
    }
    m->n_nodes = g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        sqz_node *nd = &m->nodes[i];
        nd->op = (uint16_t)n->op;
        nd->name = g->keep_names && n->name && *n->name ? blob_put(m->strings, &at, n->name)
                                                        : gen_name(m->node_names, 'n', i);
        int32_t *in = malloc(sizeof *in * (n->n_in ? n->n_in : 1)),
                *o = malloc(sizeof *o * (n->n_out ? n->n_out : 1));
        nd->inputs = in;
        nd->outputs = o;
        sqz_attr *attrs = calloc(n->n_attr ? n->n_attr : 1, sizeof *attrs);
        nd->attrs = attrs;
        if (!in || !o || !attrs) goto oom;
        if (n->n_in) memcpy(in, n->in, sizeof *in * n->n_in);
        if (n->n_out) memcpy(o, n->out, sizeof *o * n->n_out);
        nd->n_inputs = n->n_in;
        nd->n_outputs = n->n_out;
        for (uint32_t k = 0; k < n->n_attr; k++) {
            const sqz_attr *a = &n->attrs[k];
            if (attr_is_default(g, n, a)) continue;
            sqz_attr *d = &attrs[nd->n_attrs++];
            d->name = blob_put(m->strings, &at, a->name);
            d->type = a->type;
            d->count = a->type == SQZ_ATTR_INTS || a->type == SQZ_ATTR_FLOATS ? a->count
                       : a->type == SQZ_ATTR_STRING                           ? 0
                                                                              : 1;
            const size_t cnt = d->count ? d->count : 1;
            if (a->type == SQZ_ATTR_INT || a->type == SQZ_ATTR_INTS) {
                int64_t *v = malloc(sizeof *v * cnt);
                if (!(d->ints = v)) goto oom;
                if (d->count) memcpy(v, a->ints, sizeof *v * d->count);
            } else if (a->type == SQZ_ATTR_FLOAT || a->type == SQZ_ATTR_FLOATS) {
                float *v = malloc(sizeof *v * cnt);
                if (!(d->floats = v)) goto oom;
                if (d->count) memcpy(v, a->floats, sizeof *v * d->count);
            } else if (a->type == SQZ_ATTR_STRING) {
                d->str = blob_put(m->strings, &at, a->str);
            } else {
                snprintf(err, err_len, "node '%s': attribute '%s' has unknown type %d", n->name,
                         a->name, a->type);
                goto fail;
            }
        }
    }
    m->inputs = malloc(sizeof *m->inputs * (size_t)(g->n_inputs ? g->n_inputs : 1));
    m->outputs = malloc(sizeof *m->outputs * (size_t)(g->n_outputs ? g->n_outputs : 1));
    m->meta_keys = calloc((size_t)(g->n_meta ? g->n_meta : 1), sizeof *m->meta_keys);
    m->meta_values = calloc((size_t)(g->n_meta ? g->n_meta : 1), sizeof *m->meta_values);
    if (!m->inputs || !m->outputs || !m->meta_keys || !m->meta_values) goto oom;
    if (g->n_inputs) memcpy(m->inputs, g->inputs, sizeof *m->inputs * (size_t)g->n_inputs);
    if (g->n_outputs) memcpy(m->outputs, g->outputs, sizeof *m->outputs * (size_t)g->n_outputs);
    m->n_inputs = g->n_inputs;
    m->n_outputs = g->n_outputs;
    for (int i = 0; i < g->n_meta; i++) {
        m->meta_keys[i] = blob_put(m->strings, &at, g->meta[i].key);
        m->meta_values[i] = blob_put(m->strings, &at, g->meta[i].value);
    }
    m->n_meta = g->n_meta;
    free(flags);
    *out = m;
    return 0;
oom:
    snprintf(err, err_len, "out of memory");
fail:
    free(flags);
    sqz_model_free(m);
    return -1;
}

int sqzc_write_file_atomic(const char *path, const void *data, size_t size, char *err,
                           size_t err_len) {
    const uint8_t *buf = data;
    size_t plen = strlen(path) + 16;
    char *tmp = malloc(plen);
    if (!tmp) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(tmp, plen, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    mode_t um = umask(0); /* mkstemp makes 0600; give the file the usual mode */
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, buf + done, size - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    /* fsync only on request (SQZ_FSYNC=1): the rename already makes the file
     * appear whole or not at all to every reader; fsync adds durability across
     * a power loss at 2-20 ms per file (ext4 also flushes a renamed-over file's
     * data before the rename commits, auto_da_alloc) */
    const char *fs = getenv("SQZ_FSYNC");
    int ok = done == size && (!fs || !fs[0] || strcmp(fs, "0") == 0 || fsync(fd) == 0);
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = 0;
    }
    if (!ok) {
        unlink(tmp);
        snprintf(err, err_len, "%s: write failed: %s", path, strerror(saved));
    }
    free(tmp);
    return ok ? 0 : -1;
}

int sqzc_write_sqz(const sqzc_graph *g, const char *path, char *err, size_t err_len) {
    return sqzc_write_sqz_mt(g, path, 1, err, err_len);
}

int sqzc_write_sqz_mt(const sqzc_graph *g, const char *path, int threads, char *err,
                      size_t err_len) {
    uint8_t *buf;
    size_t size;
    if (serialize(g, threads, &buf, &size, err, err_len) != 0) return -1;
    int rc = sqzc_write_file_atomic(path, buf, size, err, err_len);
    free(buf);
    return rc;
}
