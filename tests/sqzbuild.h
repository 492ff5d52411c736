/* sqzbuild.h - a tiny .sqz writer for runtime-only tests (header-only; the
 * real writer is compress/writer.c). Writes exactly the layout documented in
 * runtime/include/sqz/format.h, including quantization records, so tests can
 * build INT8 models (and hostile variants) without the offline library. */
#ifndef SQZ_TEST_SQZBUILD_H
#define SQZ_TEST_SQZBUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/format.h"
#include "sqz/ops.h"

typedef struct sb_tensor {
    const char *name;
    uint8_t dtype, flags, quant, qaxis;
    int ndim;
    int64_t dims[SQZ_MAX_DIMS];
    uint32_t nq;
    const float *scale;
    const int32_t *zp;
    const void *data; /* constants: raw little-endian payload of data_bytes */
    size_t data_bytes;
} sb_tensor;

typedef struct sb_attr {
    const char *name;
    uint8_t type; /* SQZ_ATTR_INT / INTS / FLOAT / FLOATS */
    uint32_t count;
    const int64_t *ints;
    const float *floats;
} sb_attr;

typedef struct sb_node {
    uint16_t op;
    const char *name;
    uint32_t n_in, n_out, n_attr;
    const int32_t *in, *out;
    const sb_attr *attrs;
} sb_node;

typedef struct sb_buf {
    uint8_t *p;
    size_t n, cap;
} sb_buf;

static void sb_put(sb_buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) abort();
        b->p = q;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void sb_u8(sb_buf *b, uint8_t v) {
    sb_put(b, &v, 1);
}
static void sb_u32(sb_buf *b, uint32_t v) {
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sb_put(b, t, 4);
}
static void sb_u64(sb_buf *b, uint64_t v) {
    sb_u32(b, (uint32_t)v);
    sb_u32(b, (uint32_t)(v >> 32));
}
static void sb_f32(sb_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    sb_u32(b, u);
}
static void sb_var(sb_buf *b, uint64_t v) {
    do {
        uint8_t x = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) x |= 0x80;
        sb_put(b, &x, 1);
    } while (v);
}
static void sb_zvar(sb_buf *b, int64_t v) {
    sb_var(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
static uint32_t sb_str(sb_buf *s, const char *str) {
    uint32_t off = (uint32_t)s->n;
    sb_put(s, str, strlen(str) + 1);
    return off;
}

/* Builds a whole file; returns malloc'ed bytes (*size set). */
static uint8_t *sb_build(const sb_tensor *t, int nt, const sb_node *nodes, int nn,
                         const int32_t *gin, int ngin, const int32_t *gout, int ngout,
                         size_t *size) {
    sb_buf str = {0}, ten = {0}, gr = {0}, dat = {0}, out = {0};
    sb_u8(&str, 0);
    sb_var(&ten, (uint64_t)nt);
    for (int i = 0; i < nt; i++) {
        const sb_tensor *x = &t[i];
        sb_var(&ten, sb_str(&str, x->name));
        sb_u8(&ten, x->dtype);
        sb_u8(&ten, SQZ_ENC_RAW);
        sb_u8(&ten, x->flags);
        sb_u8(&ten, (uint8_t)x->ndim);
        for (int d = 0; d < x->ndim; d++) sb_var(&ten, (uint64_t)x->dims[d]);
        sb_u8(&ten, x->quant);
        if (x->quant) {
            /* nq is implied by the kind and shape; a test giving a wrong nq
             * writes that many (a hostile record) */
            sb_u8(&ten, x->qaxis);
            for (uint32_t c = 0; c < x->nq; c++) sb_f32(&ten, x->scale[c]);
            if ((x->quant & SQZ_QF_KIND_MASK) != SQZ_QUANT_PER_CHANNEL_SYM)
                for (uint32_t c = 0; c < x->nq; c++) sb_zvar(&ten, x->zp[c]);
        }
        if (x->data) {
            sb_var(&ten, x->data_bytes);
            sb_put(&dat, x->data, x->data_bytes);
        }
    }
    sb_var(&gr, (uint64_t)nn);
    for (int i = 0; i < nn; i++) {
        const sb_node *n = &nodes[i];
        sb_var(&gr, n->op);
        sb_var(&gr, sb_str(&str, n->name));
        sb_var(&gr, n->n_in);
        for (uint32_t k = 0; k < n->n_in; k++) sb_var(&gr, (uint64_t)((int64_t)n->in[k] + 1));
        sb_var(&gr, n->n_out);
        for (uint32_t k = 0; k < n->n_out; k++) sb_var(&gr, (uint64_t)n->out[k]);
        sb_var(&gr, n->n_attr);
        for (uint32_t k = 0; k < n->n_attr; k++) {
            const sb_attr *a = &n->attrs[k];
            sb_var(&gr, sb_str(&str, a->name));
            sb_u8(&gr, a->type);
            if (a->type == SQZ_ATTR_INTS || a->type == SQZ_ATTR_FLOATS) sb_var(&gr, a->count);
            for (uint32_t j = 0; j < a->count; j++) {
                if (a->type == SQZ_ATTR_INT || a->type == SQZ_ATTR_INTS)
                    sb_zvar(&gr, a->ints[j]);
                else
                    sb_f32(&gr, a->floats[j]);
            }
        }
    }
    sb_var(&gr, (uint64_t)ngin);
    for (int k = 0; k < ngin; k++) sb_var(&gr, (uint64_t)gin[k]);
    sb_var(&gr, (uint64_t)ngout);
    for (int k = 0; k < ngout; k++) sb_var(&gr, (uint64_t)gout[k]);

    sb_buf *secs[4] = {&str, &ten, &gr, &dat};
    uint32_t types[4] = {SQZ_SEC_STRINGS, SQZ_SEC_TENSORS, SQZ_SEC_GRAPH, SQZ_SEC_DATA};
    uint32_t ns = 4;
    size_t off = SQZ_HEADER_BYTES + ns * SQZ_SECTION_ENTRY_BYTES, offs[4];
    for (uint32_t i = 0; i < ns; i++) {
        off = (off + 7) / 8 * 8;
        offs[i] = off;
        off += secs[i]->n;
    }
    sb_buf tab = {0};
    for (uint32_t i = 0; i < ns; i++) {
        sb_u32(&tab, types[i]);
        sb_u32(&tab, sqz_crc32(0, secs[i]->p, secs[i]->n));
        sb_u64(&tab, offs[i]);
        sb_u64(&tab, secs[i]->n);
    }
    sb_put(&out, SQZ_MAGIC, SQZ_MAGIC_LEN);
    sb_u32(&out, SQZ_FORMAT_VERSION);
    sb_u32(&out, 0);
    sb_u32(&out, ns);
    sb_u32(&out, sqz_crc32(0, tab.p, tab.n));
    sb_u64(&out, off);
    sb_put(&out, tab.p, tab.n);
    for (uint32_t i = 0; i < ns; i++) {
        while (out.n < offs[i]) sb_u8(&out, 0);
        sb_put(&out, secs[i]->p, secs[i]->n);
    }
    free(str.p);
    free(ten.p);
    free(gr.p);
    free(dat.p);
    free(tab.p);
    *size = out.n;
    return out.p;
}

/* The first five tensors of X f32 -> QuantizeLinear -> Xq -> Conv 3x3
 * (W i8 per output channel, B i32) -> Yq, which the int8 model tests share,
 * at t[0 .. 4] in that order: "x" (graph input, 1 x cin x hw x hw), "x_q",
 * "conv.w", "conv.b", "y_q" (1 x cout x hw x hw); sw, zw and b hold cout
 * values, w cout x cin x 3 x 3. The caller adds the rest. */
static inline void sb_qconv_tensors(sb_tensor *t, int cin, int cout, int hw_, const float *sx,
                                    const int32_t *zx, const float *sy, const int32_t *zy,
                                    const float *sw, const int32_t *zw, const int8_t *w,
                                    const int32_t *b) {
    const int64_t ci = cin, co = cout, hw = hw_;
    t[0] = (sb_tensor){.name = "x",
                       .dtype = SQZ_DT_F32,
                       .flags = SQZ_TF_INPUT,
                       .ndim = 4,
                       .dims = {1, ci, hw, hw}};
    t[1] = (sb_tensor){.name = "x_q",
                       .dtype = SQZ_DT_I8,
                       .quant = SQZ_QUANT_PER_TENSOR,
                       .ndim = 4,
                       .dims = {1, ci, hw, hw},
                       .nq = 1,
                       .scale = sx,
                       .zp = zx};
    t[2] = (sb_tensor){.name = "conv.w",
                       .dtype = SQZ_DT_I8,
                       .flags = SQZ_TF_CONST,
                       .quant = SQZ_QUANT_PER_CHANNEL,
                       .ndim = 4,
                       .dims = {co, ci, 3, 3},
                       .nq = (uint32_t)co,
                       .scale = sw,
                       .zp = zw,
                       .data = w,
                       .data_bytes = (size_t)(co * ci * 9)};
    t[3] = (sb_tensor){.name = "conv.b",
                       .dtype = SQZ_DT_I32,
                       .flags = SQZ_TF_CONST,
                       .ndim = 1,
                       .dims = {co},
                       .data = b,
                       .data_bytes = (size_t)co * sizeof(int32_t)};
    t[4] = (sb_tensor){.name = "y_q",
                       .dtype = SQZ_DT_I8,
                       .quant = SQZ_QUANT_PER_TENSOR,
                       .ndim = 4,
                       .dims = {1, co, hw, hw},
                       .nq = 1,
                       .scale = sy,
                       .zp = zy};
}

#endif
