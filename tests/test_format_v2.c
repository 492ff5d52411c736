/* test_format_v2.c - the compact .sqz v2 storage (sqz/format.h) of an int8
 * model: per-channel symmetric records without zero points, f16 scales,
 * Huffman-coded i8 weights, varint / Huffman-varint i32 biases, f16 f32
 * constants and dropped internal names.
 *
 * The same model is written by the real writer (sqzc_serialize, encoded) and
 * by the tests' raw builder (sqzbuild.h, every payload raw, every name kept):
 * both must load to identical tensors and give bit-identical outputs (the
 * encodings are lossless). Then every byte of the encoded file's TENSORS and
 * DATA sections is flipped with the CRCs resealed: the loader must either
 * refuse the file with a message or load it (no crash, no out-of-bounds read
 * under ASan/UBSan), and every truncation must be refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/format.h"
#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "sqzc/ir.h"
#include "sqzc/writer.h"
#include "testutil.h"

#define CIN 16
#define COUT 16
#define HW 6
#define NW (COUT * CIN * 9)

enum { T_X, T_XQ, T_W, T_B, T_YQ, T_Y, T_S, T_O, NT };

typedef struct model {
    float sx, sy, sw[COUT];
    int32_t zx, zy, zw[COUT], b[COUT];
    int8_t w[NW];
    float scale_f16[COUT]; /* an f32 constant whose values are all f16-exact */
} model;

static void model_init(model *m) {
    memset(m, 0, sizeof *m);
    m->sx = 0.05f;
    m->zx = -3;
    m->sy = 0.25f;
    m->zy = 5;
    tu_rng r;
    tu_rng_seed(&r, 11);
    for (int c = 0; c < COUT; c++) m->sw[c] = ldexpf(1.0f + (float)c / 64.0f, -9); /* f16-exact */
    /* a peaked (roughly Laplacian) weight distribution: Huffman pays */
    for (int i = 0; i < NW; i++) {
        float u = tu_rng_uniform(&r, 0.0005f, 0.9995f);
        float v = -logf(u) * 12.0f * (tu_rng_u32(&r) & 1 ? 1.0f : -1.0f);
        int q = (int)lrintf(v);
        m->w[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    for (int c = 0; c < COUT; c++) {
        m->b[c] = (int32_t)(tu_rng_u32(&r) % 200001) - 100000;
        m->scale_f16[c] = (float)(int)(tu_rng_u32(&r) % 64) / 32.0f - 1.0f;
    }
    m->b[0] = -(1 << 24); /* 4-byte zigzag varints */
    m->b[1] = (1 << 24) - 1;
}

static const int64_t k_pads[4] = {1, 1, 1, 1}, k_ks[2] = {3, 3};

/* Raw v2 file through the tests' builder: all names, all payloads raw. */
static uint8_t *build_raw(const model *m, size_t *size) {
    sb_tensor t[NT];
    memset(t, 0, sizeof t);
    sb_qconv_tensors(t, CIN, COUT, HW, &m->sx, &m->zx, &m->sy, &m->zy, m->sw, m->zw, m->w, m->b);
    t[T_Y] = (sb_tensor){.name = "y", .dtype = SQZ_DT_F32, .ndim = 4, .dims = {1, COUT, HW, HW}};
    t[T_S] = (sb_tensor){.name = "s",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_CONST,
                         .ndim = 4,
                         .dims = {1, COUT, 1, 1},
                         .data = m->scale_f16,
                         .data_bytes = sizeof m->scale_f16};
    t[T_O] = (sb_tensor){.name = "out",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_OUTPUT,
                         .ndim = 4,
                         .dims = {1, COUT, HW, HW}};
    sb_attr ca[2] = {{.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = k_pads},
                     {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k_ks}};
    int32_t q_in[1] = {T_X}, q_out[1] = {T_XQ}, c_in[3] = {T_XQ, T_W, T_B}, c_out[1] = {T_YQ};
    int32_t d_in[1] = {T_YQ}, d_out[1] = {T_Y}, m_in[2] = {T_Y, T_S}, m_out[1] = {T_O};
    sb_node n[4] = {
        {.op = SQZ_OP_QUANTIZE_LINEAR,
         .name = "quant",
         .n_in = 1,
         .n_out = 1,
         .in = q_in,
         .out = q_out},
        {.op = SQZ_OP_CONV,
         .name = "conv",
         .n_in = 3,
         .n_out = 1,
         .n_attr = 2,
         .in = c_in,
         .out = c_out,
         .attrs = ca},
        {.op = SQZ_OP_DEQUANTIZE_LINEAR,
         .name = "dequant",
         .n_in = 1,
         .n_out = 1,
         .in = d_in,
         .out = d_out},
        {.op = SQZ_OP_MUL, .name = "mul", .n_in = 2, .n_out = 1, .in = m_in, .out = m_out},
    };
    int32_t gin[1] = {T_X}, gout[1] = {T_O};
    return sb_build(t, NT, n, 4, gin, 1, gout, 1, size);
}

static void set_q(sqzc_tensor *t, int kind, int axis, int n, const float *s, const int32_t *z) {
    t->q.kind = kind;
    t->q.axis = axis;
    t->q.n = n;
    t->q.scale = malloc(sizeof *t->q.scale * (size_t)n);
    t->q.zero_point = malloc(sizeof *t->q.zero_point * (size_t)n);
    assert_non_null(t->q.scale);
    assert_non_null(t->q.zero_point);
    memcpy(t->q.scale, s, sizeof *s * (size_t)n);
    memcpy(t->q.zero_point, z, sizeof *z * (size_t)n);
}

static sqz_shape shp(int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    sqz_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = nd;
    int64_t v[4] = {a, b, c, d};
    for (int i = 0; i < nd; i++) s.dims[i] = v[i];
    return s;
}

/* The same model through the IR and the real writer. */
static uint8_t *build_encoded(const model *m, int keep_names, size_t *size) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    const char *names[NT] = {"x", "x_q", "conv.w", "conv.b", "y_q", "y", "s", "out"};
    for (int i = 0; i < NT; i++) assert_int_equal(sqzc_tensor_get_or_add(g, names[i]), i);
    sqz_shape xs = shp(4, 1, CIN, HW, HW), ys = shp(4, 1, COUT, HW, HW);
    sqz_shape ws = shp(4, COUT, CIN, 3, 3), bs = shp(1, COUT, 0, 0, 0), ss = shp(4, 1, COUT, 1, 1);
    const sqz_shape *act[NT] = {&xs, &xs, NULL, NULL, &ys, &ys, NULL, &ys};
    for (int i = 0; i < NT; i++)
        if (act[i]) {
            g->tensors[i].has_shape = 1;
            g->tensors[i].shape = *act[i];
            g->tensors[i].dtype = SQZC_F32;
        }
    g->tensors[T_XQ].dtype = g->tensors[T_YQ].dtype = SQZC_I8;
    set_q(&g->tensors[T_XQ], SQZC_Q_TENSOR, 0, 1, &m->sx, &m->zx);
    set_q(&g->tensors[T_YQ], SQZC_Q_TENSOR, 0, 1, &m->sy, &m->zy);
    assert_int_equal(sqzc_tensor_set_i8(g, T_W, &ws, m->w), 0);
    set_q(&g->tensors[T_W], SQZC_Q_CHANNEL, 0, COUT, m->sw, m->zw);
    assert_int_equal(sqzc_tensor_set_i32(g, T_B, &bs, m->b), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, T_S, &ss, m->scale_f16), 0);
    int32_t q_in[1] = {T_X}, q_out[1] = {T_XQ}, c_in[3] = {T_XQ, T_W, T_B}, c_out[1] = {T_YQ};
    int32_t d_in[1] = {T_YQ}, d_out[1] = {T_Y}, m_in[2] = {T_Y, T_S}, m_out[1] = {T_O};
    assert_true(sqzc_add_node(g, SQZ_OP_QUANTIZE_LINEAR, "quant", 1, q_in, 1, q_out) >= 0);
    int c = sqzc_add_node(g, SQZ_OP_CONV, "conv", 3, c_in, 1, c_out);
    assert_true(c >= 0);
    assert_int_equal(sqzc_node_set_ints(g, c, "pads", k_pads, 4), 0);
    assert_int_equal(sqzc_node_set_ints(g, c, "kernel_shape", k_ks, 2), 0);
    assert_true(sqzc_add_node(g, SQZ_OP_DEQUANTIZE_LINEAR, "dequant", 1, d_in, 1, d_out) >= 0);
    assert_true(sqzc_add_node(g, SQZ_OP_MUL, "mul", 2, m_in, 1, m_out) >= 0);
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(sizeof *g->outputs);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = T_X;
    g->n_inputs = 1;
    g->outputs[0] = T_O;
    g->n_outputs = 1;
    g->keep_names = keep_names;
    uint8_t *buf = NULL;
    char err[256] = "";
    if (sqzc_serialize(g, &buf, size, err, sizeof err) != 0) fail_msg("serialize: %s", err);
    sqzc_graph_free(g);
    return buf;
}

/* run the model on a fixed input; returns malloc'd output */
static float *run(const uint8_t *buf, size_t size) {
    sqz_model *md = NULL;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &md, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    sqz_session *s = NULL;
    if (sqz_session_create(md, &so, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    float x[CIN * HW * HW];
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, x, CIN * HW * HW, -4.0f, 4.0f);
    if (sqz_session_set_input(s, 0, x, CIN * HW * HW, &st) != SQZ_OK ||
        sqz_session_run(s, &st) != SQZ_OK)
        fail_msg("run: %s", st.msg);
    const float *y = NULL;
    sqz_shape ysh;
    assert_int_equal(sqz_session_output(s, 0, &y, &ysh, &st), SQZ_OK);
    assert_int_equal(sqz_shape_numel(&ysh), COUT * HW * HW);
    float *out = malloc(sizeof *out * COUT * HW * HW);
    assert_non_null(out);
    memcpy(out, y, sizeof *out * COUT * HW * HW);
    sqz_session_free(s);
    sqz_model_free(md);
    return out;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) {
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static int find_section(const uint8_t *f, uint32_t type, uint64_t *off, uint64_t *size) {
    uint32_t n = rd32(f + 16);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = f + SQZ_HEADER_BYTES + (size_t)i * SQZ_SECTION_ENTRY_BYTES;
        if (rd32(e) == type) {
            *off = rd64(e + 8);
            *size = rd64(e + 16);
            return 1;
        }
    }
    return 0;
}
static void reseal(uint8_t *f) {
    uint32_t n = rd32(f + 16);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = f + SQZ_HEADER_BYTES + (size_t)i * SQZ_SECTION_ENTRY_BYTES;
        wr32(e + 4, sqz_crc32(0, f + rd64(e + 8), rd64(e + 16)));
    }
    wr32(f + 20, sqz_crc32(0, f + SQZ_HEADER_BYTES, (uint64_t)n * SQZ_SECTION_ENTRY_BYTES));
}

static void test_encoded_equals_raw(void **state) {
    (void)state;
    model m;
    model_init(&m);
    size_t raw_n = 0, enc_n = 0, kept_n = 0;
    uint8_t *raw = build_raw(&m, &raw_n);
    uint8_t *enc = build_encoded(&m, 0, &enc_n);
    uint8_t *kept = build_encoded(&m, 1, &kept_n);
    /* Huffman i8 weights, varint biases, f16 constant, no zero points, f16
     * scales, no internal names: each is smaller, so the whole is */
    uint64_t ro, rs, eo, es;
    assert_true(find_section(raw, SQZ_SEC_DATA, &ro, &rs));
    assert_true(find_section(enc, SQZ_SEC_DATA, &eo, &es));
    if (getenv("SQZ_TEST_VERBOSE"))
        printf("  raw %zu bytes (DATA %llu), encoded %zu (DATA %llu), names kept %zu\n", raw_n,
               (unsigned long long)rs, enc_n, (unsigned long long)es, kept_n);
    assert_true(es < rs - (uint64_t)NW / 8); /* the peaked weights save > 1 bit each */
    assert_true(enc_n < kept_n);
    assert_true(kept_n < raw_n);

    /* identical tensors after load, names aside */
    sqz_model *a = NULL, *b = NULL;
    sqz_status st;
    assert_int_equal(sqz_model_load_buffer(raw, raw_n, &a, &st), SQZ_OK);
    if (sqz_model_load_buffer(enc, enc_n, &b, &st) != SQZ_OK) fail_msg("%s", st.msg);
    assert_string_equal(sqz_model_input_name(b, 0), "x");
    assert_string_equal(sqz_model_output_name(b, 0), "out");
    int dt = 0;
    sqz_qparams qa, qb;
    assert_int_equal(sqz_model_output_info(a, 0, &dt, &qa), 0);
    assert_int_equal(sqz_model_output_info(b, 0, &dt, &qb), 0);
    sqz_model_free(a);
    sqz_model_free(b);

    float *ya = run(raw, raw_n), *yb = run(enc, enc_n), *yc = run(kept, kept_n);
    assert_memory_equal(ya, yb, sizeof *ya * COUT * HW * HW);
    assert_memory_equal(ya, yc, sizeof *ya * COUT * HW * HW);
    /* not a trivial output: the conv saturates neither everywhere nor nowhere */
    int distinct = 0;
    for (int i = 1; i < COUT * HW * HW; i++) distinct += ya[i] != ya[0];
    assert_true(distinct > COUT * HW * HW / 2);
    free(ya);
    free(yb);
    free(yc);
    free(raw);
    free(enc);
    free(kept);
}

static void test_encoded_hostile(void **state) {
    (void)state;
    model m;
    model_init(&m);
    size_t n = 0;
    uint8_t *f = build_encoded(&m, 0, &n);
    /* every truncation is refused */
    for (size_t len = 0; len < n; len++) {
        uint8_t *c = malloc(len ? len : 1);
        assert_non_null(c);
        memcpy(c, f, len);
        sqz_model *md = NULL;
        sqz_status st;
        memset(&st, 0, sizeof st);
        if (sqz_model_load_buffer(c, len, &md, &st) == SQZ_OK)
            fail_msg("truncated to %zu of %zu bytes: loaded", len, n);
        assert_true(st.msg[0] != 0);
        free(c);
    }
    /* every byte of TENSORS and DATA flipped (two masks), CRCs resealed */
    uint32_t secs[2] = {SQZ_SEC_TENSORS, SQZ_SEC_DATA};
    int refused = 0, loaded = 0;
    for (int s = 0; s < 2; s++) {
        uint64_t off, size;
        assert_true(find_section(f, secs[s], &off, &size));
        for (uint64_t i = off; i < off + size; i++) {
            for (int k = 0; k < 2; k++) {
                uint8_t *c = malloc(n);
                assert_non_null(c);
                memcpy(c, f, n);
                c[i] ^= k ? 0x01 : 0x80;
                reseal(c);
                sqz_model *md = NULL;
                sqz_status st;
                memset(&st, 0, sizeof st);
                if (sqz_model_load_buffer(c, n, &md, &st) == SQZ_OK) {
                    loaded++;
                    sqz_model_free(md);
                } else {
                    refused++;
                    if (st.msg[0] == 0) fail_msg("byte %llu: empty message", (unsigned long long)i);
                }
                free(c);
            }
        }
    }
    if (getenv("SQZ_TEST_VERBOSE"))
        printf("  %zu bytes: %d resealed flips refused, %d loaded (value bits)\n", n, refused,
               loaded);
    assert_true(refused > 0);
    assert_true(loaded > 0); /* weight / scale value bits: a valid, different model */
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoded_equals_raw),
        cmocka_unit_test(test_encoded_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
