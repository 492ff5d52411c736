/* model.c - .sqz v1 loader. The file is treated as hostile: every count,
 * offset, id and size is validated before it is used. */
#include "model.h"
#include "huffman.h"
#include "tensor_codec.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sqz_code sqz_set_status(sqz_status *st, sqz_code code, const char *fmt, ...) {
    if (st) {
        st->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void *sqz_aligned_alloc(size_t bytes) {
    /* 64-byte alignment for SIMD loads; round the size up as aligned_alloc requires */
    size_t n = (bytes + 63) / 64 * 64;
    if (n < bytes) return NULL;
    return aligned_alloc(64, n ? n : 64);
}

void sqz_aligned_free(void *p) {
    free(p);
}

/* ------------------------------------------------------------------ reader */

typedef struct reader {
    const uint8_t *p;
    uint64_t n, pos;
    int bad; /* ran past the end */
} reader;

static int rd_need(reader *r, uint64_t k) {
    if (r->bad || k > r->n - r->pos) {
        r->bad = 1;
        return 0;
    }
    return 1;
}
static uint8_t rd_u8(reader *r) {
    return rd_need(r, 1) ? r->p[r->pos++] : 0;
}
static uint16_t rd_u16(reader *r) {
    if (!rd_need(r, 2)) return 0;
    uint16_t v = (uint16_t)(r->p[r->pos] | (r->p[r->pos + 1] << 8));
    r->pos += 2;
    return v;
}
static uint32_t rd_u32(reader *r) {
    if (!rd_need(r, 4)) return 0;
    const uint8_t *q = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}
static uint64_t rd_u64(reader *r) {
    uint64_t lo = rd_u32(r);
    uint64_t hi = rd_u32(r);
    return lo | (hi << 32);
}
static float rd_f32(reader *r) {
    uint32_t u = rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* unsigned LEB128 (sqz/format.h "var"); a value above max, more than 10
 * bytes or more than 64 bits marks the reader bad (*over set when the value
 * was readable but too large, so the caller can say which field) */
static uint64_t rd_var_max(reader *r, uint64_t max, int *over) {
    uint64_t v = 0;
    for (unsigned i = 0; i < SQZ_VAR_MAX_BYTES; i++) {
        if (!rd_need(r, 1)) return 0;
        uint8_t b = r->p[r->pos++];
        if (i == 9 && b > 1) break; /* bits past 64 */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (v > max) {
                if (over) *over = 1;
                r->bad = 1;
                return 0;
            }
            return v;
        }
    }
    if (over) *over = 1;
    r->bad = 1;
    return 0;
}
static uint64_t rd_var(reader *r, uint64_t max) {
    return rd_var_max(r, max, NULL);
}
static int64_t rd_zvar(reader *r) {
    uint64_t u = rd_var(r, UINT64_MAX);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* ------------------------------------------------------------------ model */

void sqz_model_free(sqz_model *m) {
    if (!m) return;
    if (m->tensors)
        for (int i = 0; i < m->n_tensors; i++) {
            sqz_aligned_free(m->tensors[i].data);
            free((void *)m->tensors[i].q.scale);
            free((void *)m->tensors[i].q.zero_point);
        }
    free(m->tensors);
    if (m->nodes) {
        for (int i = 0; i < m->n_nodes; i++) {
            sqz_node *n = &m->nodes[i];
            free((void *)n->inputs);
            free((void *)n->outputs);
            if (n->attrs)
                for (uint32_t k = 0; k < n->n_attrs; k++) {
                    free((void *)n->attrs[k].ints);
                    free((void *)n->attrs[k].floats);
                }
            free((void *)n->attrs);
        }
    }
    free(m->nodes);
    free(m->inputs);
    free(m->outputs);
    free(m->meta_keys);
    free(m->meta_values);
    free(m->tensor_names);
    free(m->node_names);
    free(m->strings);
    free(m);
}

typedef struct load_ctx {
    sqz_model *m;
    sqz_status *st;
    const uint8_t *data_sec;
    uint64_t data_len;
    uint32_t version; /* file format version */
} load_ctx;

/* A string reference must point at the start of a string inside the blob. */
static const char *get_str(load_ctx *L, uint32_t ref, const char *what) {
    sqz_model *m = L->m;
    if (ref >= m->strings_len || (ref > 0 && m->strings[ref - 1] != '\0')) {
        sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: %s string reference %u out of range",
                       what, ref);
        return NULL;
    }
    return m->strings + ref;
}

static sqz_code fail_trunc(load_ctx *L, const char *sec) {
    return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: %s section truncated", sec);
}

/* Quantization record (sqz/format.h "TENSORS" and "INT8"): kind against the
 * dtype, then every scale finite and > 0, zero points in range. A stored
 * per-channel-symmetric record becomes per-channel with zero points 0. */
static sqz_code parse_quant(load_ctx *L, reader *r, sqz_tensor_rec *t, uint8_t qbyte) {
    const char *nm = t->name;
    unsigned quant = qbyte & SQZ_QF_KIND_MASK;
    int f16 = (qbyte & SQZ_QF_F16_SCALES) != 0;
    if ((qbyte & ~(SQZ_QF_KIND_MASK | SQZ_QF_F16_SCALES)) || quant > SQZ_QUANT_PER_CHANNEL_SYM ||
        (f16 && quant == SQZ_QUANT_NONE))
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: tensor '%s' quant byte 0x%x",
                              nm, qbyte);
    if (t->dtype == SQZ_DT_F32 && quant != SQZ_QUANT_NONE)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: f32 tensor '%s' has quantization parameters", nm);
    if (t->dtype == SQZ_DT_I8 && quant == SQZ_QUANT_NONE)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: i8 tensor '%s' has no quantization parameters", nm);
    if (quant == SQZ_QUANT_NONE) return SQZ_OK;
    uint8_t qaxis = rd_u8(r);
    if (r->bad) return fail_trunc(L, "tensor");
    uint64_t nq = 1;
    if (quant == SQZ_QUANT_PER_TENSOR) {
        if (qaxis != 0)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' quant axis %u without per-channel "
                                  "parameters",
                                  nm, qaxis);
    } else {
        if (qaxis >= t->shape.ndim)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' quant axis %u out of range for "
                                  "rank %d",
                                  nm, qaxis, t->shape.ndim);
        nq = (uint64_t)t->shape.dims[qaxis];
    }
    const unsigned ssz = f16 ? 2u : 4u;
    /* scales alone must fit in what is left of the section */
    if (nq == 0 || nq > (r->n - r->pos) / ssz)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: tensor '%s' has %llu quantization parameters, more "
                              "than the tensor section holds (or none)",
                              nm, (unsigned long long)nq);
    t->q.kind = quant == SQZ_QUANT_PER_CHANNEL_SYM ? SQZ_QUANT_PER_CHANNEL : quant;
    t->q.axis = qaxis;
    float *sc = malloc((size_t)nq * sizeof *sc);
    int32_t *zp = calloc((size_t)nq, sizeof *zp);
    t->q.scale = sc;
    t->q.zero_point = zp;
    if (!sc || !zp) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    t->q.n = (uint32_t)nq;
    for (uint64_t c = 0; c < nq; c++) {
        sc[c] = f16 ? sqz_f16_to_f32(rd_u16(r)) : rd_f32(r);
        if (!(sc[c] > 0.0f) || !(sc[c] <= 3.4e38f)) /* also rejects NaN and inf */
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' scale[%llu] = %g (must be finite "
                                  "and > 0)",
                                  nm, (unsigned long long)c, (double)sc[c]);
    }
    if (quant == SQZ_QUANT_PER_CHANNEL_SYM) return SQZ_OK;
    for (uint64_t c = 0; c < nq; c++) {
        int64_t z = rd_zvar(r);
        if (r->bad) return fail_trunc(L, "tensor");
        int ok = t->dtype == SQZ_DT_I8 ? z >= -128 && z <= 127 : z == 0;
        if (!ok)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' zero_point[%llu] = %lld out of range "
                                  "for dtype %s",
                                  nm, (unsigned long long)c, (long long)z,
                                  t->dtype == SQZ_DT_I8 ? "i8" : "i32");
        zp[c] = (int32_t)z;
    }
    return SQZ_OK;
}

/* Name of a record whose stored name is empty: "<prefix><index>" in a
 * buffer of the model's, 12 bytes a slot. */
static const char *gen_name(char *slot, char prefix, uint32_t idx) {
    snprintf(slot, 12, "%c%u", prefix, idx);
    return slot;
}

/* i8 payload (HUFFMAN): a Huffman stream of numel bytes; i32 payload
 * (VARINT[|HUFFMAN]): numel zvars, possibly behind a Huffman stream. */
static sqz_code decode_int_payload(load_ctx *L, sqz_tensor_rec *t, unsigned enc, const uint8_t *src,
                                   uint64_t size, uint64_t numel) {
    const char *msg = NULL;
    uint8_t *bytes = NULL;
    if (t->dtype == SQZ_DT_I8) {
        if (numel && sqz_huff_stream_decode(src, (size_t)size, 8, (uint8_t *)t->data, (size_t)numel,
                                            &msg) != 0) {
            if (!msg) msg = "Huffman stream invalid";
        } else if (!numel && size) {
            msg = "payload of an empty tensor";
        }
        goto out;
    }
    const uint8_t *vs = src;
    uint64_t vlen = size;
    if (enc & SQZ_ENC_HUFFMAN) {
        reader hr = {src, size, 0, 0};
        /* each zvar takes 1..5 bytes, each byte at least one bit */
        uint64_t nb = rd_var(&hr, 5 * numel);
        if (hr.bad || nb < numel || nb > 8 * (size - hr.pos)) {
            msg = "varint byte count invalid";
            goto out;
        }
        bytes = malloc(nb ? (size_t)nb : 1);
        if (!bytes) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
        if (nb && sqz_huff_stream_decode(src + hr.pos, (size_t)(size - hr.pos), 8, bytes,
                                         (size_t)nb, &msg) != 0) {
            if (!msg) msg = "Huffman stream invalid";
            goto out;
        }
        if (!nb && size != hr.pos) {
            msg = "trailing bytes";
            goto out;
        }
        vs = bytes;
        vlen = nb;
    }
    reader vr = {vs, vlen, 0, 0};
    int32_t *dst = (int32_t *)(void *)t->data;
    for (uint64_t k = 0; k < numel; k++) {
        int64_t v = rd_zvar(&vr);
        if (vr.bad || v < INT32_MIN || v > INT32_MAX) {
            msg = "varint value truncated or outside int32";
            goto out;
        }
        dst[k] = (int32_t)v;
    }
    if (vr.pos != vlen) msg = "varint stream longer than the tensor";
out:
    free(bytes);
    if (msg)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: tensor '%s' encoded data: %s",
                              t->name, msg);
    return SQZ_OK;
}

static sqz_code parse_tensors(load_ctx *L, reader *r) {
    sqz_model *m = L->m;
    int over = 0;
    /* smallest record: name, dtype, enc, flags, ndim, quant: 6 bytes */
    uint64_t n = rd_var_max(r, 1u << 24, &over);
    if (r->bad || n > (r->n - r->pos) / 6)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: tensor count %s invalid",
                              over ? "(too large)" : "");
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    m->tensor_names = malloc((size_t)(n ? n : 1) * 12);
    if (!m->tensors || !m->tensor_names)
        return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    m->n_tensors = (int)n;
    uint64_t data_pos = 0; /* payloads are back to back in DATA */
    for (uint32_t i = 0; i < n; i++) {
        sqz_tensor_rec *t = &m->tensors[i];
        uint32_t name = (uint32_t)rd_var(r, UINT32_MAX);
        t->dtype = rd_u8(r);
        uint8_t enc = rd_u8(r);
        t->flags = rd_u8(r);
        uint8_t ndim = rd_u8(r);
        if (r->bad) return fail_trunc(L, "tensor");
        if (!(t->name = get_str(L, name, "tensor name"))) return L->st->code;
        if (!*t->name) t->name = gen_name(m->tensor_names + 12 * (size_t)i, 't', i);
        if (ndim > SQZ_MAX_DIMS)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: tensor '%s' has %u dims",
                                  t->name, ndim);
        t->shape.ndim = ndim;
        uint64_t numel = 1, nz_numel = 1;
        for (int d = 0; d < ndim; d++) {
            over = 0;
            uint64_t v = rd_var_max(r, 1ull << 40, &over);
            if (r->bad && !over) return fail_trunc(L, "tensor");
            /* the product of the non-zero dims is bounded too: a 0 dim must not
             * let the others grow unchecked into a kernel's arithmetic */
            if (over || (v && nz_numel > (1ull << 40) / v))
                return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                      "corrupt model: tensor '%s' dim %d out of range", t->name, d);
            t->shape.dims[d] = (int64_t)v;
            numel *= v;
            if (v) nz_numel *= v;
        }
        uint8_t quant = rd_u8(r);
        if (r->bad) return fail_trunc(L, "tensor");
        if (t->dtype != SQZ_DT_F32 && t->dtype != SQZ_DT_I8 && t->dtype != SQZ_DT_I32)
            return sqz_set_status(L->st, SQZ_ERR_UNSUPPORTED,
                                  "tensor '%s': dtype %u not supported (f32, i8, i32 are)", t->name,
                                  t->dtype);
        int enc_ok = enc == SQZ_ENC_RAW;
        if (t->dtype == SQZ_DT_F32)
            enc_ok |= enc == SQZ_ENC_F16 ||
                      (!(enc & ~SQZ_ENC_ALL) && (enc & (SQZ_ENC_CODEBOOK | SQZ_ENC_SPARSE)));
        if (t->dtype == SQZ_DT_I8) enc_ok |= enc == SQZ_ENC_HUFFMAN;
        if (t->dtype == SQZ_DT_I32)
            enc_ok |= enc == SQZ_ENC_VARINT || enc == (SQZ_ENC_VARINT | SQZ_ENC_HUFFMAN);
        if (!enc_ok)
            return sqz_set_status(L->st, SQZ_ERR_UNSUPPORTED,
                                  "tensor '%s': encoding %u not supported for dtype %u", t->name,
                                  enc, t->dtype);
        sqz_code qrc = parse_quant(L, r, t, quant);
        if (qrc != SQZ_OK) return qrc;
        if (t->dtype == SQZ_DT_I32 && !(t->flags & SQZ_TF_CONST))
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: i32 tensor '%s' is not a constant (only i32 "
                                  "biases are supported)",
                                  t->name);
        if (t->flags & ~(SQZ_TF_CONST | SQZ_TF_INPUT | SQZ_TF_OUTPUT))
            return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: tensor '%s' flags 0x%x",
                                  t->name, t->flags);
        if (!(t->flags & SQZ_TF_CONST)) {
            if (enc != SQZ_ENC_RAW)
                return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                      "corrupt model: non-constant tensor '%s' has an encoding",
                                      t->name);
            continue;
        }
        if (t->flags & SQZ_TF_INPUT)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' is both constant and input", t->name);
        over = 0;
        uint64_t size = rd_var_max(r, 1ull << 42, &over);
        if (r->bad && !over) return fail_trunc(L, "tensor");
        uint64_t off = data_pos;
        if (over || size > L->data_len - off)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' data (offset %llu, %s bytes) lies "
                                  "outside DATA",
                                  t->name, (unsigned long long)off,
                                  over ? "too many" : "that many");
        data_pos += size;
        const uint8_t *src = size ? L->data_sec + off : NULL; /* no NULL + 0 */
        unsigned esz = sqz_dtype_size(t->dtype);
        if (enc & SQZ_ENC_ALL && t->dtype == SQZ_DT_F32) { /* codebook / sparse payload */
            sqz_payload_info pi;
            const char *why = NULL;
            if (sqz_payload_parse(enc, src, size, numel, &pi, &why) != 0)
                return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                      "corrupt model: tensor '%s' encoded data: %s", t->name, why);
            if ((pi.pflags & (SQZ_PF_LINEAR | SQZ_PF_GRID)) && L->version < 3)
                return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                      "corrupt model: tensor '%s': %s in a version %u file "
                                      "(needs 3)",
                                      t->name,
                                      (pi.pflags & SQZ_PF_LINEAR) ? "linear codebook"
                                                                  : "grid-coded centroids",
                                      L->version);
            t->data = sqz_aligned_alloc((size_t)numel * 4);
            if (!t->data) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
            char msg[160];
            int oom = 0;
            if (sqz_tensor_decode(enc, src, size, numel, t->data, msg, sizeof msg, &oom) != 0)
                return sqz_set_status(L->st, oom ? SQZ_ERR_NOMEM : SQZ_ERR_FORMAT,
                                      "%stensor '%s' encoded data: %s",
                                      oom ? "" : "corrupt model: ", t->name, msg);
            continue;
        }
        uint64_t want = enc == SQZ_ENC_RAW ? numel * esz : enc == SQZ_ENC_F16 ? numel * 2 : size;
        if (size != want)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' data (%llu bytes) does not match "
                                  "its shape",
                                  t->name, (unsigned long long)size);
        /* Huffman / varint payloads: every value takes at least one bit /
         * byte, which bounds the allocation by the payload's size */
        if ((enc == SQZ_ENC_VARINT && numel > size) ||
            ((enc & SQZ_ENC_HUFFMAN) && numel > 8 * size))
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: tensor '%s' payload (%llu bytes) too short for "
                                  "%llu values",
                                  t->name, (unsigned long long)size, (unsigned long long)numel);
        t->data = sqz_aligned_alloc((size_t)numel * esz);
        if (!t->data) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
        if (enc != SQZ_ENC_RAW && enc != SQZ_ENC_F16) {
            sqz_code rc = decode_int_payload(L, t, enc, src, size, numel);
            if (rc != SQZ_OK) return rc;
            continue;
        }
        if (numel == 0) continue; /* no payload (and maybe no DATA section) */
        if (enc == SQZ_ENC_F16) {
            for (uint64_t k = 0; k < numel; k++)
                t->data[k] = sqz_f16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
            continue;
        }
        if (esz == 1) {
            memcpy(t->data, src, (size_t)numel);
            continue;
        }
        /* f32 and i32: 4-byte little-endian words, stored in host order */
        uint32_t *dst = (uint32_t *)(void *)t->data;
        for (uint64_t k = 0; k < numel; k++) {
            uint32_t u = (uint32_t)src[4 * k] | ((uint32_t)src[4 * k + 1] << 8) |
                         ((uint32_t)src[4 * k + 2] << 16) | ((uint32_t)src[4 * k + 3] << 24);
            memcpy(&dst[k], &u, 4);
        }
    }
    if (r->pos != r->n)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: %llu bytes after the last tensor record",
                              (unsigned long long)(r->n - r->pos));
    if (data_pos != L->data_len)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: DATA holds %llu bytes, the tensors use %llu",
                              (unsigned long long)L->data_len, (unsigned long long)data_pos);
    return SQZ_OK;
}

static sqz_code parse_attr(load_ctx *L, reader *r, const char *node, sqz_attr *a) {
    uint32_t name = (uint32_t)rd_var(r, UINT32_MAX);
    a->type = rd_u8(r);
    if (r->bad) return fail_trunc(L, "graph");
    if (!(a->name = get_str(L, name, "attribute name"))) return L->st->code;
    uint64_t count = 1;
    int over = 0;
    if (a->type == SQZ_ATTR_INTS || a->type == SQZ_ATTR_FLOATS) {
        /* every element takes at least one byte */
        count = rd_var_max(r, r->n - r->pos, &over);
        if (r->bad)
            return over ? sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                         "corrupt model: node '%s' attribute '%s' count invalid",
                                         node, a->name)
                        : fail_trunc(L, "graph");
    }
    switch (a->type) {
    case SQZ_ATTR_INT:
    case SQZ_ATTR_INTS: {
        int64_t *v = malloc((size_t)(count ? count : 1) * sizeof *v);
        if (!v) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
        a->ints = v;
        for (uint64_t j = 0; j < count; j++) v[j] = rd_zvar(r);
        a->count = (uint32_t)count;
        break;
    }
    case SQZ_ATTR_FLOAT:
    case SQZ_ATTR_FLOATS: {
        if (count > (r->n - r->pos) / 4)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: node '%s' attribute '%s' count %llu invalid",
                                  node, a->name, (unsigned long long)count);
        float *v = malloc((size_t)(count ? count : 1) * sizeof *v);
        if (!v) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
        for (uint64_t j = 0; j < count; j++) v[j] = rd_f32(r);
        a->floats = v;
        a->count = (uint32_t)count;
        break;
    }
    case SQZ_ATTR_STRING: {
        uint32_t ref = (uint32_t)rd_var(r, UINT32_MAX);
        if (r->bad) return fail_trunc(L, "graph");
        if (!(a->str = get_str(L, ref, "attribute value"))) return L->st->code;
        a->count = 0;
        break;
    }
    default:
        return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                              "corrupt model: node '%s' attribute '%s' has unknown type %u", node,
                              a->name, a->type);
    }
    if (r->bad) return fail_trunc(L, "graph");
    return SQZ_OK;
}

/* n ids as vars; shift 1: stored id + 1 with 0 = absent (-1) */
static sqz_code read_ids(load_ctx *L, reader *r, const char *node, const char *what,
                         uint32_t *n_out, int32_t **ids_out, int shift) {
    int over = 0;
    uint64_t n = rd_var_max(r, 4096, &over);
    if (r->bad || n > r->n - r->pos)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: %s%s%s %s count invalid",
                              node ? "node '" : "graph", node ? node : "", node ? "'" : "", what);
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    *ids_out = ids;
    *n_out = 0; /* counts only validated ids */
    for (uint32_t k = 0; k < n; k++) {
        uint64_t v = rd_var(r, UINT32_MAX);
        if (r->bad || v >= (uint64_t)L->m->n_tensors + (uint64_t)shift)
            return sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                  "corrupt model: %s%s%s %s #%u: tensor id truncated or beyond "
                                  "the %d tensors",
                                  node ? "node '" : "graph", node ? node : "", node ? "'" : "",
                                  what, k, L->m->n_tensors);
        ids[k] = (int32_t)((int64_t)v - shift);
        *n_out = k + 1;
    }
    return SQZ_OK;
}

static sqz_code parse_graph(load_ctx *L, reader *r) {
    sqz_model *m = L->m;
    int over = 0;
    /* smallest node: op, name, n_in, n_out, one out, n_attr: 6 bytes */
    uint64_t n = rd_var_max(r, 1u << 22, &over);
    if (r->bad || n > (r->n - r->pos) / 6)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: node count invalid");
    m->nodes = calloc(n ? n : 1, sizeof *m->nodes);
    m->node_names = malloc((size_t)(n ? n : 1) * 12);
    if (!m->nodes || !m->node_names) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    m->n_nodes = (int)n;
    /* available[t]: 1 once tensor t has a value (const, input, produced) */
    char *avail = calloc((size_t)m->n_tensors + 1, 1);
    if (!avail) return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    for (int t = 0; t < m->n_tensors; t++)
        avail[t] = (m->tensors[t].flags & (SQZ_TF_CONST | SQZ_TF_INPUT)) != 0;
    sqz_code rc = SQZ_OK;
    for (uint32_t i = 0; i < n && rc == SQZ_OK; i++) {
        sqz_node *nd = &m->nodes[i];
        over = 0;
        uint64_t op = rd_var_max(r, 0xFFFF, &over);
        uint32_t name = (uint32_t)rd_var(r, UINT32_MAX);
        if (r->bad && !over) {
            rc = fail_trunc(L, "graph");
            break;
        }
        nd->op = (uint16_t)op;
        if (!over && !(nd->name = get_str(L, name, "node name"))) {
            rc = L->st->code;
            break;
        }
        if (over || !*nd->name) nd->name = gen_name(m->node_names + 12 * (size_t)i, 'n', i);
        if (over || !sqz_ref_op(nd->op)) {
            rc = sqz_set_status(L->st, SQZ_ERR_UNSUPPORTED,
                                "node '%s': unknown op id %llu (model made by a newer sqz?)",
                                nd->name, over ? 0x10000ull : (unsigned long long)op);
            break;
        }
        int32_t *ids = NULL;
        uint32_t cnt = 0;
        rc = read_ids(L, r, nd->name, "input", &cnt, &ids, 1);
        nd->inputs = ids; /* owned by the model even on failure */
        nd->n_inputs = cnt;
        if (rc != SQZ_OK) break;
        ids = NULL;
        cnt = 0;
        rc = read_ids(L, r, nd->name, "output", &cnt, &ids, 0);
        nd->outputs = ids;
        nd->n_outputs = cnt;
        if (rc != SQZ_OK) break;
        for (uint32_t k = 0; k < nd->n_inputs && rc == SQZ_OK; k++)
            if (nd->inputs[k] >= 0 && !avail[nd->inputs[k]])
                rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                    "corrupt model: node '%s' reads tensor '%s' before it is "
                                    "produced",
                                    nd->name, m->tensors[nd->inputs[k]].name);
        if (nd->n_outputs == 0 && rc == SQZ_OK)
            rc = sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: node '%s' has no outputs",
                                nd->name);
        for (uint32_t k = 0; k < nd->n_outputs && rc == SQZ_OK; k++) {
            if (avail[nd->outputs[k]])
                rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                    "corrupt model: node '%s' writes tensor '%s' that already "
                                    "has a value",
                                    nd->name, m->tensors[nd->outputs[k]].name);
            avail[nd->outputs[k]] = 1;
        }
        if (rc != SQZ_OK) break;
        /* smallest attribute: name, type, one payload byte */
        uint64_t na = rd_var_max(r, 256, &over);
        if (r->bad || na > (r->n - r->pos) / 3) {
            rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                "corrupt model: node '%s' attribute count invalid", nd->name);
            break;
        }
        sqz_attr *attrs = calloc(na ? na : 1, sizeof *attrs);
        if (!attrs) {
            rc = sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
            break;
        }
        nd->attrs = attrs;
        nd->n_attrs = (uint32_t)na;
        for (uint32_t k = 0; k < na && rc == SQZ_OK; k++)
            rc = parse_attr(L, r, nd->name, &attrs[k]);
    }
    if (rc == SQZ_OK) {
        uint32_t cnt = 0;
        int32_t *ids = NULL;
        rc = read_ids(L, r, NULL, "input", &cnt, &ids, 0);
        m->inputs = ids;
        m->n_inputs = rc == SQZ_OK ? (int)cnt : 0;
        for (int k = 0; k < m->n_inputs && rc == SQZ_OK; k++)
            if (!(m->tensors[ids[k]].flags & SQZ_TF_INPUT))
                rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                    "corrupt model: graph input '%s' not flagged as input",
                                    m->tensors[ids[k]].name);
    }
    if (rc == SQZ_OK) {
        uint32_t cnt = 0;
        int32_t *ids = NULL;
        rc = read_ids(L, r, NULL, "output", &cnt, &ids, 0);
        m->outputs = ids;
        m->n_outputs = rc == SQZ_OK ? (int)cnt : 0;
        if (rc == SQZ_OK && cnt == 0)
            rc = sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: graph has no outputs");
        for (int k = 0; k < m->n_outputs && rc == SQZ_OK; k++)
            if (!avail[ids[k]] || (m->tensors[ids[k]].flags & SQZ_TF_CONST))
                rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                                    "corrupt model: graph output '%s' is never produced",
                                    m->tensors[ids[k]].name);
    }
    if (rc == SQZ_OK && r->pos != r->n)
        rc = sqz_set_status(L->st, SQZ_ERR_FORMAT,
                            "corrupt model: %llu bytes after the graph's outputs",
                            (unsigned long long)(r->n - r->pos));
    free(avail);
    return rc;
}

static sqz_code parse_meta(load_ctx *L, reader *r) {
    sqz_model *m = L->m;
    uint64_t n = rd_var(r, r->n);
    if (r->bad || n > (r->n - r->pos) / 2)
        return sqz_set_status(L->st, SQZ_ERR_FORMAT, "corrupt model: metadata count invalid");
    m->meta_keys = calloc(n ? n : 1, sizeof *m->meta_keys);
    m->meta_values = calloc(n ? n : 1, sizeof *m->meta_values);
    if (!m->meta_keys || !m->meta_values)
        return sqz_set_status(L->st, SQZ_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        m->meta_keys[i] = get_str(L, (uint32_t)rd_var(r, UINT32_MAX), "metadata key");
        if (!m->meta_keys[i]) return L->st->code;
        m->meta_values[i] = get_str(L, (uint32_t)rd_var(r, UINT32_MAX), "metadata value");
        if (!m->meta_values[i]) return L->st->code;
        if (r->bad) return fail_trunc(L, "metadata");
        m->n_meta = (int)i + 1;
    }
    return SQZ_OK;
}

sqz_code sqz_model_load_buffer(const void *data, size_t size, sqz_model **out, sqz_status *st) {
    sqz_status dummy;
    if (!st) st = &dummy;
    st->code = SQZ_OK;
    st->msg[0] = 0;
    if (!out) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!data && size) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "data is NULL");
    const uint8_t *p = data;
    reader hr = {p, size, 0, 0};
    if (size < SQZ_HEADER_BYTES || memcmp(p, SQZ_MAGIC, SQZ_MAGIC_LEN) != 0)
        return sqz_set_status(st, SQZ_ERR_FORMAT,
                              "not a .sqz model (bad magic or too short: %zu bytes)", size);
    hr.pos = SQZ_MAGIC_LEN;
    uint32_t version = rd_u32(&hr), flags = rd_u32(&hr), ns = rd_u32(&hr), tcrc = rd_u32(&hr);
    uint64_t fsize = rd_u64(&hr);
    if (version < SQZ_FORMAT_VERSION_MIN || version > SQZ_FORMAT_VERSION)
        return sqz_set_status(st, SQZ_ERR_FORMAT,
                              ".sqz format version %u not supported (this runtime reads %u..%u)",
                              version, SQZ_FORMAT_VERSION_MIN, SQZ_FORMAT_VERSION);
    if (fsize != size)
        return sqz_set_status(st, SQZ_ERR_FORMAT,
                              "corrupt model: header says %llu bytes, file has %zu (truncated?)",
                              (unsigned long long)fsize, size);
    if (flags != 0)
        return sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: header flags 0x%x", flags);
    if (ns == 0 || ns > SQZ_MAX_SECTIONS ||
        SQZ_HEADER_BYTES + (uint64_t)ns * SQZ_SECTION_ENTRY_BYTES > size)
        return sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: section count %u invalid", ns);
    if (sqz_crc32(0, p + SQZ_HEADER_BYTES, (uint64_t)ns * SQZ_SECTION_ENTRY_BYTES) != tcrc)
        return sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: section table CRC mismatch");
    const uint8_t *sec_p[6] = {0};
    uint64_t sec_n[6] = {0};
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t type = rd_u32(&hr), crc = rd_u32(&hr);
        uint64_t off = rd_u64(&hr), len = rd_u64(&hr);
        if (off > size || len > size - off || off % 8)
            return sqz_set_status(st, SQZ_ERR_FORMAT,
                                  "corrupt model: section %u lies outside the file", type);
        if (sqz_crc32(0, p + off, len) != crc)
            return sqz_set_status(st, SQZ_ERR_FORMAT,
                                  "corrupt model: CRC mismatch in section %u (file damaged)", type);
        if (type >= 1 && type <= 5) {
            if (sec_p[type])
                return sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: section %u appears twice",
                                      type);
            sec_p[type] = p + off;
            sec_n[type] = len;
        } /* unknown section types are skipped: forward compatible */
    }
    if (!sec_p[SQZ_SEC_STRINGS] || !sec_p[SQZ_SEC_TENSORS] || !sec_p[SQZ_SEC_GRAPH])
        return sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: a required section is missing");

    sqz_model *m = calloc(1, sizeof *m);
    if (!m) return sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory");
    load_ctx L = {m, st, sec_p[SQZ_SEC_DATA], sec_n[SQZ_SEC_DATA], version};
    sqz_code rc = SQZ_OK;
    uint64_t sl = sec_n[SQZ_SEC_STRINGS];
    if (sl == 0 || sec_p[SQZ_SEC_STRINGS][sl - 1] != 0) {
        rc = sqz_set_status(st, SQZ_ERR_FORMAT, "corrupt model: string table not terminated");
        goto done;
    }
    m->strings = malloc(sl);
    if (!m->strings) {
        rc = sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(m->strings, sec_p[SQZ_SEC_STRINGS], sl);
    m->strings_len = sl;

    reader tr = {sec_p[SQZ_SEC_TENSORS], sec_n[SQZ_SEC_TENSORS], 0, 0};
    if ((rc = parse_tensors(&L, &tr)) != SQZ_OK) goto done;
    reader gr = {sec_p[SQZ_SEC_GRAPH], sec_n[SQZ_SEC_GRAPH], 0, 0};
    if ((rc = parse_graph(&L, &gr)) != SQZ_OK) goto done;
    if (sec_p[SQZ_SEC_METADATA]) {
        reader mr = {sec_p[SQZ_SEC_METADATA], sec_n[SQZ_SEC_METADATA], 0, 0};
        if ((rc = parse_meta(&L, &mr)) != SQZ_OK) goto done;
    }
done:
    if (rc != SQZ_OK) {
        sqz_model_free(m);
        return rc;
    }
    *out = m;
    return SQZ_OK;
}

sqz_code sqz_model_load_file(const char *path, sqz_model **out, sqz_status *st) {
    sqz_status dummy;
    if (!st) st = &dummy;
    if (!out) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sqz_set_status(st, SQZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return sqz_set_status(st, SQZ_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        free(buf);
        return sqz_set_status(st, SQZ_ERR_IO, "%s: read error", path);
    }
    sqz_code rc = sqz_model_load_buffer(buf, n, out, st);
    free(buf);
    if (rc != SQZ_OK) {
        /* prefix the file name so the user knows which model is at fault */
        char msg[2 * sizeof st->msg];
        snprintf(msg, sizeof msg, "%s: %s", path, st->msg);
        memcpy(st->msg, msg, sizeof st->msg - 1);
        st->msg[sizeof st->msg - 1] = 0;
    }
    return rc;
}

int sqz_model_num_inputs(const sqz_model *m) {
    return m->n_inputs;
}
int sqz_model_num_outputs(const sqz_model *m) {
    return m->n_outputs;
}
const char *sqz_model_input_name(const sqz_model *m, int i) {
    return i >= 0 && i < m->n_inputs ? m->tensors[m->inputs[i]].name : NULL;
}
const char *sqz_model_output_name(const sqz_model *m, int i) {
    return i >= 0 && i < m->n_outputs ? m->tensors[m->outputs[i]].name : NULL;
}
sqz_shape sqz_model_input_shape(const sqz_model *m, int i) {
    sqz_shape s = {-1, {0}};
    if (i >= 0 && i < m->n_inputs) s = m->tensors[m->inputs[i]].shape;
    return s;
}
static int tensor_info(const sqz_model *m, int t, int *dtype, sqz_qparams *q) {
    if (dtype) *dtype = m->tensors[t].dtype;
    if (q) *q = m->tensors[t].q;
    return 0;
}
int sqz_model_input_info(const sqz_model *m, int i, int *dtype, sqz_qparams *q) {
    if (!m || i < 0 || i >= m->n_inputs) return -1;
    return tensor_info(m, m->inputs[i], dtype, q);
}
int sqz_model_output_info(const sqz_model *m, int i, int *dtype, sqz_qparams *q) {
    if (!m || i < 0 || i >= m->n_outputs) return -1;
    return tensor_info(m, m->outputs[i], dtype, q);
}

const char *sqz_model_metadata(const sqz_model *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_keys[i], key) == 0) return m->meta_values[i];
    return NULL;
}
