/* test_loader_corrupt.c - the .sqz loader treats its input as hostile.
 *
 * A small model (x[1,2,4,4] -> Conv(W,B, pad 1) -> Relu -> y) is built in the
 * IR, serialized with sqzc_serialize, checked against a known answer, and then
 * damaged: every truncation, single-byte flips at every offset, and
 * hand-crafted files whose CRCs are valid (re-sealed with zlib's crc32) but
 * whose counts, ids and offsets are hostile. Every damaged file must fail to
 * load with a message, or (only for bytes outside every CRC) load and run.
 * Under ASan/UBSan this also proves that nothing reads out of bounds.
 *
 * With SQZ_FUZZ_CORPUS=DIR in the environment the valid model is also written
 * to DIR/conv_relu.sqz as a seed for tests/fuzz_loader.c.
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
#include <zlib.h>

#include "sqz/format.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/writer.h"
#include "testutil.h"

#define N_IN 1
#define C_IN 2
#define H 4
#define W_ 4
#define C_OUT 3
#define K 3

/* ------------------------------------------------------------ the model */

typedef struct fixture {
    uint8_t *file;
    size_t size;
    float x[N_IN * C_IN * H * W_];
    float w[C_OUT * C_IN * K * K];
    float b[C_OUT];
    float ref[N_IN * C_OUT * H * W_]; /* known answer */
} fixture;

static fixture *g_fx;

static void reference_conv_relu(fixture *f) {
    for (int co = 0; co < C_OUT; co++)
        for (int oy = 0; oy < H; oy++)
            for (int ox = 0; ox < W_; ox++) {
                double acc = f->b[co];
                for (int ci = 0; ci < C_IN; ci++)
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy + ky - 1, ix = ox + kx - 1;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W_) continue;
                            acc += (double)f->x[(ci * H + iy) * W_ + ix] *
                                   (double)f->w[((co * C_IN + ci) * K + ky) * K + kx];
                        }
                f->ref[(co * H + oy) * W_ + ox] = acc > 0 ? (float)acc : 0.0f;
            }
}

static sqz_shape mkshape(int ndim, const int64_t *dims) {
    sqz_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.dims[i] = dims[i];
    return s;
}

static void set_activation(sqzc_graph *g, int t, int ndim, const int64_t *dims) {
    g->tensors[t].dtype = SQZC_F32;
    g->tensors[t].has_shape = 1;
    g->tensors[t].shape = mkshape(ndim, dims);
}

static sqzc_graph *build_graph(fixture *f) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    int w = sqzc_tensor_get_or_add(g, "conv0.weight");
    int b = sqzc_tensor_get_or_add(g, "conv0.bias");
    int c = sqzc_tensor_get_or_add(g, "conv0_out");
    int y = sqzc_tensor_get_or_add(g, "y");
    assert_true(x >= 0 && w >= 0 && b >= 0 && c >= 0 && y >= 0);
    const int64_t xd[4] = {N_IN, C_IN, H, W_}, wd[4] = {C_OUT, C_IN, K, K}, bd[1] = {C_OUT};
    const int64_t yd[4] = {N_IN, C_OUT, H, W_};
    set_activation(g, x, 4, xd);
    set_activation(g, c, 4, yd);
    set_activation(g, y, 4, yd);
    sqz_shape ws = mkshape(4, wd), bs = mkshape(1, bd);
    assert_int_equal(sqzc_tensor_set_f32(g, w, &ws, f->w), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, b, &bs, f->b), 0);

    const int32_t cin[3] = {x, w, b}, cout[1] = {c}, rin[1] = {c}, rout[1] = {y};
    int conv = sqzc_add_node(g, SQZ_OP_CONV, "conv0", 3, cin, 1, cout);
    assert_true(conv >= 0);
    const int64_t ks[2] = {K, K}, pads[4] = {1, 1, 1, 1}, ones[2] = {1, 1};
    assert_int_equal(sqzc_node_set_ints(g, conv, "kernel_shape", ks, 2), 0);
    assert_int_equal(sqzc_node_set_ints(g, conv, "pads", pads, 4), 0);
    assert_int_equal(sqzc_node_set_ints(g, conv, "strides", ones, 2), 0);
    assert_int_equal(sqzc_node_set_int(g, conv, "group", 1), 0);
    assert_int_equal(sqzc_node_set_str(g, conv, "auto_pad", "NOTSET"), 0);
    int relu = sqzc_add_node(g, SQZ_OP_RELU, "relu0", 1, rin, 1, rout);
    assert_true(relu >= 0);

    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(sizeof *g->outputs);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    g->outputs[0] = y;
    g->n_outputs = 1;
    assert_int_equal(sqzc_graph_set_meta(g, "producer", "test_loader_corrupt"), 0);
    return g;
}

static int setup(void **state) {
    (void)state;
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    tu_rng r;
    tu_rng_seed(&r, 1234);
    tu_fill_uniform(&r, f->x, sizeof f->x / sizeof f->x[0], -1.0f, 1.0f);
    tu_fill_uniform(&r, f->w, sizeof f->w / sizeof f->w[0], -0.5f, 0.5f);
    tu_fill_uniform(&r, f->b, sizeof f->b / sizeof f->b[0], -0.2f, 0.2f);
    reference_conv_relu(f);
    sqzc_graph *g = build_graph(f);
    char err[256] = "";
    int rc = sqzc_serialize(g, &f->file, &f->size, err, sizeof err);
    sqzc_graph_free(g);
    if (rc != 0) {
        fprintf(stderr, "sqzc_serialize: %s\n", err);
        free(f);
        return -1;
    }
    const char *corpus = getenv("SQZ_FUZZ_CORPUS");
    if (corpus && *corpus) {
        char path[1024];
        snprintf(path, sizeof path, "%s/conv_relu.sqz", corpus);
        FILE *fp = fopen(path, "wb");
        if (fp) {
            fwrite(f->file, 1, f->size, fp);
            fclose(fp);
        }
    }
    g_fx = f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f) free(f->file);
    free(f);
    g_fx = NULL;
    return 0;
}

/* ------------------------------------------------------------ helpers */

static uint32_t rd32(const uint8_t *p, size_t off) {
    return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
           (uint32_t)p[off + 3] << 24;
}
static uint64_t rd64(const uint8_t *p, size_t off) {
    return (uint64_t)rd32(p, off) | (uint64_t)rd32(p, off + 4) << 32;
}
static void wr8(uint8_t *p, size_t off, uint8_t v) {
    p[off] = v;
}
static void wr16(uint8_t *p, size_t off, uint16_t v) {
    p[off] = (uint8_t)v;
    p[off + 1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++) p[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, size_t off, uint64_t v) {
    wr32(p, off, (uint32_t)v);
    wr32(p, off + 4, (uint32_t)(v >> 32));
}

/* Load, and on success create a session with the stored input shape, feed x,
 * run, and return the output's max abs error against the known answer (or
 * -1 when a step after load failed cleanly). Returns the load code. */
static sqz_code load_and_run(const uint8_t *buf, size_t size, sqz_status *st, double *err_out) {
    sqz_model *m = NULL;
    memset(st, 0, sizeof *st);
    *err_out = -1;
    sqz_code code = sqz_model_load_buffer(buf, size, &m, st);
    if (code != SQZ_OK) {
        assert_null(m);
        return code;
    }
    assert_non_null(m);
    sqz_session *s = NULL;
    sqz_status st2;
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    if (sqz_session_create(m, &so, &s, &st2) == SQZ_OK) {
        int64_t n = -1;
        if (sqz_model_num_inputs(m) == 1) {
            sqz_shape in = sqz_session_input_shape(s, 0);
            n = sqz_shape_numel(&in);
        }
        if (n > 0 && n <= (1 << 20)) {
            float *x = calloc((size_t)n, sizeof *x);
            assert_non_null(x);
            memcpy(x, g_fx->x, sizeof g_fx->x < (size_t)n * 4 ? sizeof g_fx->x : (size_t)n * 4);
            if (sqz_session_set_input(s, 0, x, (size_t)n, &st2) == SQZ_OK &&
                sqz_session_run(s, &st2) == SQZ_OK && sqz_model_num_outputs(m) >= 1) {
                const float *y = NULL;
                sqz_shape ys;
                if (sqz_session_output(s, 0, &y, &ys, &st2) == SQZ_OK && y &&
                    sqz_shape_numel(&ys) == (int64_t)(sizeof g_fx->ref / sizeof g_fx->ref[0]))
                    *err_out = tu_max_abs_diff(y, g_fx->ref, sizeof g_fx->ref / 4);
            }
            free(x);
        }
        sqz_session_free(s);
    } else {
        assert_true(st2.msg[0] != 0);
    }
    sqz_model_free(m);
    return code;
}

static void expect_load_failure(const uint8_t *buf, size_t size, const char *what) {
    sqz_status st;
    sqz_model *m = NULL;
    memset(&st, 0, sizeof st);
    sqz_code code = sqz_model_load_buffer(buf, size, &m, &st);
    if (code == SQZ_OK) {
        sqz_model_free(m);
        fail_msg("%s: hostile file loaded", what);
    }
    assert_null(m);
    if (getenv("SQZ_TEST_VERBOSE")) printf("  %-36s -> %d: %s\n", what, (int)code, st.msg);
    assert_true(code == SQZ_ERR_FORMAT || code == SQZ_ERR_IO || code == SQZ_ERR_UNSUPPORTED);
    if (st.msg[0] == 0) fail_msg("%s: failed with an empty message", what);
}

/* Failure either at load or at session creation, with a message. */
static void expect_clean_failure(const uint8_t *buf, size_t size, const char *what) {
    sqz_status st;
    sqz_model *m = NULL;
    memset(&st, 0, sizeof st);
    sqz_code code = sqz_model_load_buffer(buf, size, &m, &st);
    if (code != SQZ_OK) {
        assert_null(m);
        if (st.msg[0] == 0) fail_msg("%s: load failed with an empty message", what);
        return;
    }
    sqz_session *s = NULL;
    sqz_session_options so;
    sqz_session_options_init(&so);
    code = sqz_session_create(m, &so, &s, &st);
    if (code == SQZ_OK) sqz_session_free(s);
    if (getenv("SQZ_TEST_VERBOSE")) printf("  %-36s -> session %d: %s\n", what, (int)code, st.msg);
    sqz_model_free(m);
    if (code == SQZ_OK) fail_msg("%s: hostile file loaded and a session was created", what);
    if (st.msg[0] == 0) fail_msg("%s: session failed with an empty message", what);
}

/* ------------------------------------------------------- layout parsing */

typedef struct section {
    uint32_t type;
    size_t entry; /* offset of its table entry */
    size_t off, size;
} section;

typedef struct layout {
    uint32_t n_sections;
    section sec[SQZ_MAX_SECTIONS];
    /* TENSORS */
    size_t t_count_off;
    size_t w_name_off, w_dtype_off, w_enc_off, w_ndim_off, w_dims_off, w_nq_off;
    size_t w_doff_off, w_dsize_off;
    uint64_t w_data_size;
    /* GRAPH */
    size_t g_nnodes_off;
    size_t n0_op_off, n0_nin_off, n0_in0_off, n0_nattr_off, n0_attr0_count_off;
    size_t n0_strattr_ref_off;
    size_t g_out0_off;
    /* STRINGS */
    size_t mid_string_ref; /* a string-relative offset that is not a string start */
} layout;

static const section *find_sec(const layout *l, uint32_t type) {
    for (uint32_t i = 0; i < l->n_sections; i++)
        if (l->sec[i].type == type) return &l->sec[i];
    return NULL;
}

static const char *str_at(const uint8_t *f, const section *strs, uint32_t ref) {
    assert_true(ref < strs->size);
    return (const char *)f + strs->off + ref;
}

static void parse_layout(const uint8_t *f, size_t size, layout *l) {
    memset(l, 0, sizeof *l);
    assert_true(size >= SQZ_HEADER_BYTES);
    assert_memory_equal(f, SQZ_MAGIC, SQZ_MAGIC_LEN);
    l->n_sections = rd32(f, 16);
    assert_true(l->n_sections >= 1 && l->n_sections <= SQZ_MAX_SECTIONS);
    for (uint32_t i = 0; i < l->n_sections; i++) {
        size_t e = SQZ_HEADER_BYTES + (size_t)i * SQZ_SECTION_ENTRY_BYTES;
        l->sec[i].type = rd32(f, e);
        l->sec[i].entry = e;
        l->sec[i].off = (size_t)rd64(f, e + 8);
        l->sec[i].size = (size_t)rd64(f, e + 16);
        assert_true(l->sec[i].off + l->sec[i].size <= size);
        /* the writer's CRCs agree with zlib's */
        assert_int_equal(rd32(f, e + 4),
                         (uint32_t)crc32(0L, f + l->sec[i].off, (uInt)l->sec[i].size));
    }
    const section *strs = find_sec(l, SQZ_SEC_STRINGS), *ten = find_sec(l, SQZ_SEC_TENSORS),
                  *gr = find_sec(l, SQZ_SEC_GRAPH);
    assert_non_null(strs);
    assert_non_null(ten);
    assert_non_null(gr);

    /* a string of length >= 2: its second byte is not a string start */
    for (size_t i = 1; i + 2 < strs->size; i++) {
        if (f[strs->off + i - 1] == 0 && f[strs->off + i] != 0 && f[strs->off + i + 1] != 0) {
            l->mid_string_ref = i + 1;
            break;
        }
    }
    assert_true(l->mid_string_ref != 0);

    size_t p = ten->off;
    l->t_count_off = p;
    uint32_t count = rd32(f, p);
    p += 4;
    int found_w = 0;
    for (uint32_t t = 0; t < count; t++) {
        size_t start = p;
        uint32_t name = rd32(f, p);
        uint8_t ndim = f[p + 6];
        p += 8 + 8 * (size_t)ndim;
        p += 4; /* quant, qaxis, pad */
        uint32_t nq = rd32(f, p);
        size_t nq_off = p;
        p += 4 + 8 * (size_t)nq;
        if (strcmp(str_at(f, strs, name), "conv0.weight") == 0) {
            found_w = 1;
            l->w_name_off = start;
            l->w_dtype_off = start + 4;
            l->w_enc_off = start + 5;
            l->w_ndim_off = start + 6;
            l->w_dims_off = start + 8;
            l->w_nq_off = nq_off;
            l->w_doff_off = p;
            l->w_dsize_off = p + 8;
            l->w_data_size = rd64(f, p + 8);
        }
        p += 16;
        assert_true(p <= ten->off + ten->size);
    }
    assert_true(found_w);

    p = gr->off;
    l->g_nnodes_off = p;
    uint32_t n_nodes = rd32(f, p);
    assert_true(n_nodes >= 1);
    p += 4;
    for (uint32_t n = 0; n < n_nodes; n++) {
        if (n == 0) l->n0_op_off = p;
        p += 8;
        uint32_t n_in = rd32(f, p);
        if (n == 0) {
            l->n0_nin_off = p;
            l->n0_in0_off = p + 4;
        }
        p += 4 + 4 * (size_t)n_in;
        uint32_t n_out = rd32(f, p);
        p += 4 + 4 * (size_t)n_out;
        uint32_t n_attr = rd32(f, p);
        if (n == 0) l->n0_nattr_off = p;
        p += 4;
        for (uint32_t a = 0; a < n_attr; a++) {
            uint8_t type = f[p + 4];
            uint32_t cnt = rd32(f, p + 8);
            if (n == 0 && a == 0) l->n0_attr0_count_off = p + 8;
            p += 12;
            switch (type) {
            case SQZ_ATTR_INT:
            case SQZ_ATTR_INTS:
                p += 8 * (size_t)cnt;
                break;
            case SQZ_ATTR_FLOAT:
            case SQZ_ATTR_FLOATS:
                p += 4 * (size_t)cnt;
                break;
            case SQZ_ATTR_STRING:
                if (n == 0) l->n0_strattr_ref_off = p;
                p += 4;
                break;
            default:
                fail_msg("unknown attribute type %u in the writer's output", type);
            }
        }
        assert_true(p <= gr->off + gr->size);
    }
    uint32_t n_gin = rd32(f, p);
    p += 4 + 4 * (size_t)n_gin;
    assert_true(rd32(f, p) >= 1);
    l->g_out0_off = p + 4;
    assert_true(l->n0_strattr_ref_off != 0);
    assert_true(l->n0_attr0_count_off != 0);
}

/* Recompute the CRC of the section holding byte off (if any) and the table
 * CRC, so that only the semantic edit remains. */
static void reseal(uint8_t *f, size_t size) {
    uint32_t n = rd32(f, 16);
    if (n > SQZ_MAX_SECTIONS) n = SQZ_MAX_SECTIONS;
    for (uint32_t i = 0; i < n; i++) {
        size_t e = SQZ_HEADER_BYTES + (size_t)i * SQZ_SECTION_ENTRY_BYTES;
        uint64_t off = rd64(f, e + 8), sz = rd64(f, e + 16);
        if (off <= size && sz <= size - off) wr32(f, e + 4, (uint32_t)crc32(0L, f + off, (uInt)sz));
    }
    size_t tbl = (size_t)n * SQZ_SECTION_ENTRY_BYTES;
    if (SQZ_HEADER_BYTES + tbl <= size)
        wr32(f, 20, (uint32_t)crc32(0L, f + SQZ_HEADER_BYTES, (uInt)tbl));
}

static uint8_t *copy_file(void) {
    uint8_t *c = malloc(g_fx->size);
    assert_non_null(c);
    memcpy(c, g_fx->file, g_fx->size);
    return c;
}

/* ------------------------------------------------------------ the tests */

static void test_valid_model_runs(void **state) {
    fixture *f = *state;
    sqz_status st;
    double err;
    assert_int_equal(load_and_run(f->file, f->size, &st, &err), SQZ_OK);
    assert_true(err >= 0);
    assert_true(err <= 1e-5);

    /* and through the full API by name */
    sqz_model *m = NULL;
    assert_int_equal(sqz_model_load_buffer(f->file, f->size, &m, &st), SQZ_OK);
    assert_int_equal(sqz_model_num_inputs(m), 1);
    assert_int_equal(sqz_model_num_outputs(m), 1);
    assert_string_equal(sqz_model_input_name(m, 0), "x");
    assert_string_equal(sqz_model_output_name(m, 0), "y");
    sqz_shape s = sqz_model_input_shape(m, 0);
    assert_int_equal(s.ndim, 4);
    assert_int_equal(s.dims[1], C_IN);
    sqz_model_free(m);
}

static void test_sections_crc_match_zlib(void **state) {
    fixture *f = *state;
    layout l;
    parse_layout(f->file, f->size, &l);
    assert_int_equal(rd32(f->file, 20), (uint32_t)crc32(0L, f->file + SQZ_HEADER_BYTES,
                                                        l.n_sections * SQZ_SECTION_ENTRY_BYTES));
    assert_int_equal(rd64(f->file, 24), f->size);
    assert_int_equal(sqz_crc32(0, f->file, f->size), (uint32_t)crc32(0L, f->file, (uInt)f->size));
}

static void test_truncation(void **state) {
    fixture *f = *state;
    sqz_status st;
    sqz_model *m = NULL;
    memset(&st, 0, sizeof st);
    assert_int_not_equal(sqz_model_load_buffer(NULL, 0, &m, &st), SQZ_OK);
    assert_null(m);
    assert_true(st.msg[0] != 0);
    for (size_t len = 0; len < f->size; len++) {
        /* a heap copy of exactly len bytes: ASan sees any read past it */
        uint8_t *c = malloc(len ? len : 1);
        assert_non_null(c);
        memcpy(c, f->file, len);
        memset(&st, 0, sizeof st);
        m = NULL;
        sqz_code code = sqz_model_load_buffer(c, len, &m, &st);
        free(c);
        if (code == SQZ_OK) {
            sqz_model_free(m);
            fail_msg("truncated to %zu of %zu bytes: loaded", len, f->size);
        }
        assert_null(m);
        if (code != SQZ_ERR_FORMAT && code != SQZ_ERR_IO)
            fail_msg("truncated to %zu: code %d, want FORMAT or IO", len, (int)code);
        if (st.msg[0] == 0) fail_msg("truncated to %zu: empty message", len);
    }
}

typedef enum region { R_MUST_FAIL, R_UNCHECKED } region;

static region classify(const layout *l, size_t off) {
    if (off < SQZ_HEADER_BYTES)
        return off >= 12 && off < 16 ? R_UNCHECKED : R_MUST_FAIL; /* flags */
    if (off < SQZ_HEADER_BYTES + (size_t)l->n_sections * SQZ_SECTION_ENTRY_BYTES)
        return R_MUST_FAIL;
    for (uint32_t i = 0; i < l->n_sections; i++)
        if (off >= l->sec[i].off && off < l->sec[i].off + l->sec[i].size) return R_MUST_FAIL;
    return R_UNCHECKED; /* alignment padding between sections */
}

static void test_byte_flips(void **state) {
    fixture *f = *state;
    layout l;
    parse_layout(f->file, f->size, &l);
    static const uint8_t masks[2] = {0xFF, 0x01};
    int unchecked_loaded = 0;
    for (size_t off = 0; off < f->size; off++) {
        for (int k = 0; k < 2; k++) {
            uint8_t *c = copy_file();
            c[off] ^= masks[k];
            sqz_status st;
            double err;
            sqz_code code = load_and_run(c, f->size, &st, &err);
            free(c);
            region r = classify(&l, off);
            if (code == SQZ_OK) {
                if (r == R_MUST_FAIL)
                    fail_msg("byte %zu ^ 0x%02x (CRC-covered) loaded", off, masks[k]);
                /* padding: the model is intact, so it must give the answer */
                if (!(off >= 12 && off < 16) && (err < 0 || err > 1e-5))
                    fail_msg("byte %zu ^ 0x%02x (padding): loaded but wrong result %g", off,
                             masks[k], err);
                unchecked_loaded++;
            } else {
                if (st.msg[0] == 0) fail_msg("byte %zu ^ 0x%02x: empty message", off, masks[k]);
                assert_true(code == SQZ_ERR_FORMAT || code == SQZ_ERR_UNSUPPORTED);
            }
        }
    }
    if (getenv("SQZ_TEST_VERBOSE"))
        printf("  %zu bytes, %d flips outside every CRC loaded and ran\n", f->size,
               unchecked_loaded);
}

typedef void (*edit_fn)(uint8_t *f, const layout *l);

static void ed_tensor_count_max(uint8_t *f, const layout *l) {
    wr32(f, l->t_count_off, 0xFFFFFFFFu);
}
static void ed_tensor_count_plus1(uint8_t *f, const layout *l) {
    wr32(f, l->t_count_off, rd32(f, l->t_count_off) + 1);
}
static void ed_node_count_max(uint8_t *f, const layout *l) {
    wr32(f, l->g_nnodes_off, 0xFFFFFFFFu);
}
static void ed_node_input_oob(uint8_t *f, const layout *l) {
    wr32(f, l->n0_in0_off, 1000);
}
static void ed_node_input_neg(uint8_t *f, const layout *l) {
    wr32(f, l->n0_in0_off, (uint32_t)-7);
}
static void ed_node_nin_huge(uint8_t *f, const layout *l) {
    wr32(f, l->n0_nin_off, 0x7FFFFFFFu);
}
static void ed_node_nattr_huge(uint8_t *f, const layout *l) {
    wr32(f, l->n0_nattr_off, 0xFFFFFFFFu);
}
static void ed_attr_count_huge(uint8_t *f, const layout *l) {
    wr32(f, l->n0_attr0_count_off, 0x10000000u);
}
static void ed_attr_str_oob(uint8_t *f, const layout *l) {
    wr32(f, l->n0_strattr_ref_off, 0x00FFFFFFu);
}
static void ed_attr_str_mid(uint8_t *f, const layout *l) {
    wr32(f, l->n0_strattr_ref_off, (uint32_t)l->mid_string_ref);
}
static void ed_graph_output_oob(uint8_t *f, const layout *l) {
    wr32(f, l->g_out0_off, 0x7FFFFFF0u);
}
static void ed_dim_negative(uint8_t *f, const layout *l) {
    wr64(f, l->w_dims_off, (uint64_t)-3);
}
static void ed_dim_huge(uint8_t *f, const layout *l) {
    wr64(f, l->w_dims_off, (uint64_t)1 << 62);
}
static void ed_ndim_too_big(uint8_t *f, const layout *l) {
    wr8(f, l->w_ndim_off, 200);
}
static void ed_dtype_bad(uint8_t *f, const layout *l) {
    wr8(f, l->w_dtype_off, 99);
}
static void ed_encoding_bad(uint8_t *f, const layout *l) {
    wr8(f, l->w_enc_off, 7);
}
static void ed_nq_huge(uint8_t *f, const layout *l) {
    wr32(f, l->w_nq_off, 0xFFFFFFF0u);
}
static void ed_name_oob(uint8_t *f, const layout *l) {
    wr32(f, l->w_name_off, 0xFFFFFFFFu);
}
static void ed_name_mid(uint8_t *f, const layout *l) {
    wr32(f, l->w_name_off, (uint32_t)l->mid_string_ref);
}
static void ed_data_past_end(uint8_t *f, const layout *l) {
    const section *d = find_sec(l, SQZ_SEC_DATA);
    assert_non_null(d);
    /* 64-aligned, but offset + size runs past the end of DATA */
    wr64(f, l->w_doff_off, (d->size / SQZ_DATA_ALIGN) * SQZ_DATA_ALIGN);
}
static void ed_data_offset_overflow(uint8_t *f, const layout *l) {
    wr64(f, l->w_doff_off, UINT64_MAX - 63);
}
static void ed_data_size_mismatch(uint8_t *f, const layout *l) {
    wr64(f, l->w_dsize_off, l->w_data_size - 4);
}
static void ed_data_size_huge(uint8_t *f, const layout *l) {
    wr64(f, l->w_dsize_off, UINT64_MAX);
}
static void ed_op_unknown(uint8_t *f, const layout *l) {
    wr16(f, l->n0_op_off, 0xFFFF);
}
static void ed_strings_unterminated(uint8_t *f, const layout *l) {
    const section *s = find_sec(l, SQZ_SEC_STRINGS);
    f[s->off + s->size - 1] = 'A';
}
static void ed_sec_offset_oob(uint8_t *f, const layout *l) {
    wr64(f, find_sec(l, SQZ_SEC_GRAPH)->entry + 8, (uint64_t)1 << 40);
}
static void ed_sec_offset_unaligned(uint8_t *f, const layout *l) {
    const section *s = find_sec(l, SQZ_SEC_TENSORS);
    wr64(f, s->entry + 8, s->off + 1);
    wr64(f, s->entry + 16, s->size - 1);
}
static void ed_sec_size_huge(uint8_t *f, const layout *l) {
    wr64(f, find_sec(l, SQZ_SEC_TENSORS)->entry + 16, UINT64_MAX - 8);
}
static void ed_sec_overlaps_header(uint8_t *f, const layout *l) {
    /* the 8 magic bytes as the strings blob: a sealable CRC, hostile place */
    const section *s = find_sec(l, SQZ_SEC_STRINGS);
    wr64(f, s->entry + 8, 0);
    wr64(f, s->entry + 16, SQZ_MAGIC_LEN);
}
static void ed_sec_duplicate(uint8_t *f, const layout *l) {
    const section *s = find_sec(l, SQZ_SEC_GRAPH);
    wr32(f, s->entry, SQZ_SEC_TENSORS);
}
static void ed_sec_missing_graph(uint8_t *f, const layout *l) {
    wr32(f, find_sec(l, SQZ_SEC_GRAPH)->entry, 77);
}
static void ed_nsections_zero(uint8_t *f, const layout *l) {
    (void)l;
    wr32(f, 16, 0);
}
static void ed_nsections_max(uint8_t *f, const layout *l) {
    (void)l;
    wr32(f, 16, 0xFFFFFFFFu);
}
static void ed_file_size(uint8_t *f, const layout *l) {
    (void)l;
    wr64(f, 24, rd64(f, 24) + 64);
}
static void ed_version(uint8_t *f, const layout *l) {
    (void)l;
    wr32(f, 8, SQZ_FORMAT_VERSION + 1);
}

typedef struct hostile {
    const char *what;
    edit_fn edit;
    int session_ok; /* 1: failing at session creation (not load) is acceptable */
} hostile;

static const hostile k_hostile[] = {
    {"tensor count 0xFFFFFFFF", ed_tensor_count_max, 0},
    {"tensor count + 1", ed_tensor_count_plus1, 0},
    {"node count 0xFFFFFFFF", ed_node_count_max, 0},
    {"node input id out of range", ed_node_input_oob, 0},
    {"node input id -7", ed_node_input_neg, 0},
    {"node n_in 0x7FFFFFFF", ed_node_nin_huge, 0},
    {"node n_attr 0xFFFFFFFF", ed_node_nattr_huge, 0},
    {"attribute count 0x10000000", ed_attr_count_huge, 0},
    {"string attribute outside the blob", ed_attr_str_oob, 0},
    {"string attribute inside a string", ed_attr_str_mid, 0},
    {"graph output id out of range", ed_graph_output_oob, 0},
    {"dim negative", ed_dim_negative, 0},
    {"dim 2^62", ed_dim_huge, 0},
    {"ndim 200", ed_ndim_too_big, 0},
    {"dtype 99", ed_dtype_bad, 0},
    {"encoding 7", ed_encoding_bad, 0},
    {"quant count huge", ed_nq_huge, 0},
    {"tensor name outside the blob", ed_name_oob, 0},
    {"tensor name inside a string", ed_name_mid, 0},
    {"data_offset + size beyond DATA", ed_data_past_end, 0},
    {"data_offset overflow", ed_data_offset_overflow, 0},
    {"data_size != numel * dtype size", ed_data_size_mismatch, 0},
    {"data_size UINT64_MAX", ed_data_size_huge, 0},
    {"op id 0xFFFF", ed_op_unknown, 1},
    {"strings blob not NUL-terminated", ed_strings_unterminated, 0},
    {"section offset beyond the file", ed_sec_offset_oob, 0},
    {"section offset not 8-aligned", ed_sec_offset_unaligned, 0},
    {"section size huge", ed_sec_size_huge, 0},
    {"section overlaps the header", ed_sec_overlaps_header, 0},
    {"duplicate section type", ed_sec_duplicate, 0},
    {"GRAPH section missing", ed_sec_missing_graph, 0},
    {"n_sections 0", ed_nsections_zero, 0},
    {"n_sections 0xFFFFFFFF", ed_nsections_max, 0},
    {"file_size wrong", ed_file_size, 0},
    {"version + 1", ed_version, 0},
};

static void test_hostile_valid_crc(void **state) {
    fixture *f = *state;
    layout l;
    parse_layout(f->file, f->size, &l);
    for (size_t i = 0; i < sizeof k_hostile / sizeof k_hostile[0]; i++) {
        uint8_t *c = copy_file();
        k_hostile[i].edit(c, &l);
        reseal(c, f->size);
        if (k_hostile[i].session_ok)
            expect_clean_failure(c, f->size, k_hostile[i].what);
        else
            expect_load_failure(c, f->size, k_hostile[i].what);
        free(c);
    }
}

static void test_wrong_input_shape(void **state) {
    fixture *f = *state;
    sqz_status st;
    sqz_model *m = NULL;
    assert_int_equal(sqz_model_load_buffer(f->file, f->size, &m, &st), SQZ_OK);

    /* 3 input channels for a conv whose weights expect 2 */
    sqz_input_shape is;
    const int64_t bad[4] = {1, C_IN + 1, H, W_};
    is.name = "x";
    is.shape = mkshape(4, bad);
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.input_shapes = &is;
    so.n_input_shapes = 1;
    sqz_session *s = NULL;
    memset(&st, 0, sizeof st);
    sqz_code code = sqz_session_create(m, &so, &s, &st);
    if (code == SQZ_OK) {
        sqz_session_free(s);
        sqz_model_free(m);
        fail_msg("session created with a wrong channel count");
    }
    assert_null(s);
    if (getenv("SQZ_TEST_VERBOSE")) printf("  wrong channel count -> %d: %s\n", (int)code, st.msg);
    if (!strstr(st.msg, "conv0")) fail_msg("message does not name the node: '%s'", st.msg);

    /* rank 3 input */
    is.shape = mkshape(3, bad + 1);
    memset(&st, 0, sizeof st);
    code = sqz_session_create(m, &so, &s, &st);
    if (code == SQZ_OK) sqz_session_free(s);
    assert_int_not_equal(code, SQZ_OK);
    assert_true(st.msg[0] != 0);

    /* unknown input name */
    is.name = "nope";
    is.shape = mkshape(4, bad);
    memset(&st, 0, sizeof st);
    code = sqz_session_create(m, &so, &s, &st);
    if (code == SQZ_OK) sqz_session_free(s);
    assert_int_equal(code, SQZ_ERR_INVALID_ARG);
    assert_true(st.msg[0] != 0);

    /* the right shape still works, and a wrong element count is refused */
    sqz_session_options_init(&so);
    assert_int_equal(sqz_session_create(m, &so, &s, &st), SQZ_OK);
    memset(&st, 0, sizeof st);
    assert_int_equal(sqz_session_set_input(s, 0, f->x, sizeof f->x / 4 - 1, &st),
                     SQZ_ERR_INVALID_ARG);
    assert_true(st.msg[0] != 0);
    assert_int_equal(sqz_session_set_input(s, 1, f->x, sizeof f->x / 4, &st), SQZ_ERR_INVALID_ARG);
    sqz_session_free(s);
    sqz_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_model_runs),  cmocka_unit_test(test_sections_crc_match_zlib),
        cmocka_unit_test(test_truncation),        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_hostile_valid_crc), cmocka_unit_test(test_wrong_input_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
