/* int8_harness.h - drive one int8 kernel (prepare / run / release) through an
 * sqz_op_ctx with dtypes and quantization parameters (header-only, for the
 * tests/test_rt_int8_*.c files). */
#ifndef SQZ_TEST_INT8_HARNESS_H
#define SQZ_TEST_INT8_HARNESS_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/ops.h"

#define I8T_MAX_IN 8

typedef struct i8t {
    sqz_node node;
    sqz_attr attrs[8];
    int64_t ints[8][8];
    float flts[8];
    uint32_t n_in;
    sqz_shape in_shape[I8T_MAX_IN];
    const void *in_data[I8T_MAX_IN];
    int in_const[I8T_MAX_IN];
    uint8_t in_dt[I8T_MAX_IN], out_dt[1];
    sqz_qparams in_q[I8T_MAX_IN], out_q[1];
    float in_s[I8T_MAX_IN], out_s;
    int32_t in_zp[I8T_MAX_IN], out_zp;
    sqz_shape out_shape[1];
    char err[256];
    int threads;
    /* called after a successful prepare, before scratch is sized (NULL: none) */
    void (*post_prepare)(sqz_op_ctx *c, void *arg);
    void *post_arg;
} i8t;

static inline void i8t_init(i8t *t, int op) {
    memset(t, 0, sizeof *t);
    t->node.op = (uint16_t)op;
    t->node.name = "node";
    t->node.attrs = t->attrs;
    t->threads = 1;
}

static inline void i8t_ints(i8t *t, const char *name, int n, const int64_t *v) {
    uint32_t k = t->node.n_attrs++;
    memcpy(t->ints[k], v, (size_t)n * sizeof(int64_t));
    t->attrs[k] =
        (sqz_attr){.name = name, .type = SQZ_ATTR_INTS, .count = (uint32_t)n, .ints = t->ints[k]};
}
static inline void i8t_int(i8t *t, const char *name, int64_t v) {
    uint32_t k = t->node.n_attrs++;
    t->ints[k][0] = v;
    t->attrs[k] = (sqz_attr){.name = name, .type = SQZ_ATTR_INT, .count = 1, .ints = t->ints[k]};
}
static inline void i8t_float(i8t *t, const char *name, float v) {
    uint32_t k = t->node.n_attrs++;
    t->flts[k] = v;
    t->attrs[k] =
        (sqz_attr){.name = name, .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &t->flts[k]};
}

static inline sqz_shape i8t_shape(int nd, ...) {
    sqz_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = nd;
    va_list ap;
    va_start(ap, nd);
    for (int i = 0; i < nd; i++) s.dims[i] = va_arg(ap, int64_t);
    va_end(ap);
    return s;
}

/* Input i: an i8 activation with per-tensor (scale, zp). */
static inline void i8t_act(i8t *t, uint32_t i, sqz_shape s, const int8_t *data, float scale,
                           int32_t zp) {
    if (t->n_in <= i) t->n_in = i + 1;
    t->in_shape[i] = s;
    t->in_data[i] = data;
    t->in_dt[i] = SQZ_DT_I8;
    t->in_s[i] = scale;
    t->in_zp[i] = zp;
    t->in_q[i] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &t->in_s[i], &t->in_zp[i]};
}

/* Input i: an i8 constant weight, symmetric per channel (scales[n] on axis). */
static inline void i8t_weight(i8t *t, uint32_t i, sqz_shape s, const int8_t *data,
                              const float *scales, const int32_t *zeros, uint32_t n, int axis) {
    if (t->n_in <= i) t->n_in = i + 1;
    t->in_shape[i] = s;
    t->in_data[i] = data;
    t->in_const[i] = 1;
    t->in_dt[i] = SQZ_DT_I8;
    t->in_q[i] = (sqz_qparams){n == 1 ? SQZ_QUANT_PER_TENSOR : SQZ_QUANT_PER_CHANNEL,
                               (uint8_t)(n == 1 ? 0 : axis), n, scales, zeros};
}

/* Input i: an i32 constant bias. */
static inline void i8t_bias(i8t *t, uint32_t i, sqz_shape s, const int32_t *data) {
    if (t->n_in <= i) t->n_in = i + 1;
    t->in_shape[i] = s;
    t->in_data[i] = data;
    t->in_const[i] = 1;
    t->in_dt[i] = SQZ_DT_I32;
}

/* Input i: an f32 activation (QuantizeLinear). */
static inline void i8t_f32(i8t *t, uint32_t i, sqz_shape s, const float *data) {
    if (t->n_in <= i) t->n_in = i + 1;
    t->in_shape[i] = s;
    t->in_data[i] = data;
    t->in_dt[i] = SQZ_DT_F32;
}

static inline void i8t_out(i8t *t, int dtype, float scale, int32_t zp) {
    t->out_dt[0] = (uint8_t)dtype;
    t->out_s = scale;
    t->out_zp = zp;
    if (dtype == SQZ_DT_I8)
        t->out_q[0] = (sqz_qparams){SQZ_QUANT_PER_TENSOR, 0, 1, &t->out_s, &t->out_zp};
}

/* prepare + run + release; *out is malloc'ed (numel * esz bytes). Returns
 * prepare's code (0 ok; then *out is set). */
static inline int i8t_run(i8t *t, const sqz_op_impl *impl, void **out) {
    int32_t ids[I8T_MAX_IN] = {0, 1, 2, 3, 4, 5, 6, 7};
    t->node.n_inputs = t->n_in;
    t->node.n_outputs = 1;
    t->node.inputs = ids;
    t->node.outputs = ids;
    const float *pdata[I8T_MAX_IN] = {0};
    for (uint32_t i = 0; i < t->n_in; i++)
        if (t->in_const[i]) pdata[i] = (const float *)t->in_data[i];
    float *odata[1] = {NULL};
    sqz_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = &t->node;
    c.n_in = t->n_in;
    c.n_out = 1;
    c.in_shape = t->in_shape;
    c.in_data = pdata;
    c.out_shape = t->out_shape;
    c.out_data = odata;
    c.num_threads = t->threads;
    c.err = t->err;
    c.err_len = sizeof t->err;
    c.in_dtype = t->in_dt;
    c.out_dtype = t->out_dt;
    c.in_q = t->in_q;
    c.out_q = t->out_q;
    t->err[0] = 0;
    int rc = impl->prepare(&c);
    *out = NULL;
    if (rc != 0) {
        if (c.params && impl->release) impl->release(c.params);
        return rc;
    }
    if (t->post_prepare) t->post_prepare(&c, t->post_arg);
    size_t esz = t->out_dt[0] == SQZ_DT_I8 ? 1 : 4;
    size_t n = (size_t)sqz_shape_numel(&t->out_shape[0]);
    unsigned char *o = malloc(n * esz + 64);
    if (!o) abort();
    memset(o, 0xA5, n * esz + 64); /* unwritten bytes show up */
    odata[0] = (float *)(void *)o;
    void *scratch = NULL;
    if (c.scratch_bytes) {
        scratch = aligned_alloc(64, (c.scratch_bytes + 63) / 64 * 64);
        if (!scratch) abort();
        memset(scratch, 0x5A, (c.scratch_bytes + 63) / 64 * 64);
    }
    c.scratch = scratch;
    for (uint32_t i = 0; i < t->n_in; i++) pdata[i] = (const float *)t->in_data[i];
    impl->run(&c);
    if (impl->release) impl->release(c.params);
    free(scratch);
    *out = o;
    return 0;
}

/* The contract's requantization, written again from its text (sqz/format.h):
 * float product of (float)acc and (float)m, clamped to [lo - zp, hi - zp],
 * rounded half to even (rintf in the default rounding mode), + zp. */
static inline int32_t i8t_requant(int64_t acc, double m, int32_t zp, int32_t lo, int32_t hi) {
    float v = (float)acc * (float)m;
    float l = (float)(lo - zp), h = (float)(hi - zp);
    v = v < l ? l : v > h ? h : v;
    return (int32_t)rintf(v) + zp;
}

/* n output bytes of a kernel (got) equal the reference's (want), and the 64
 * guard bytes i8t_run puts after an output untouched (nothing written past
 * it); frees both. For files that include cmocka.h before this header. */
#ifdef fail_msg
static inline void i8t_expect_same_bytes(void *want, void *got, size_t n, const char *what) {
    const int8_t *e = want, *o = got;
    for (size_t i = 0; i < n; i++)
        if (e[i] != o[i]) fail_msg("%s: element %zu: %d, reference %d", what, i, o[i], e[i]);
    for (size_t i = n; i < n + 64; i++) assert_int_equal((unsigned char)o[i], 0xA5);
    free(want);
    free(got);
}
#endif

#endif
