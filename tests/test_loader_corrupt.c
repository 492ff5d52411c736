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
    g->keep_names = 1; /* the layout parser below finds the weight by name */
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
    /* TENSORS (v2: varint fields, offsets of each field's first byte) */
    size_t t_count_off;
    size_t w_name_off, w_dtype_off, w_enc_off, w_ndim_off, w_dims_off, w_quant_off;
    size_t w_dsize_off;
    uint64_t w_data_size;
    size_t t_end; /* end of the last tensor record */
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

static const char *str_at(const uint8_t *f, const section *strs, uint64_t ref) {
    assert_true(ref < strs->size);
    return (const char *)f + strs->off + ref;
}

/* unsigned LEB128 at *p (sqz/format.h "var"), advancing *p */
static uint64_t rdvar(const uint8_t *f, size_t *p) {
    uint64_t v = 0;
    for (int i = 0;; i++) {
        assert_true(i < 10);
        uint8_t b = f[(*p)++];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) return v;
    }
}
static size_t var_len(const uint8_t *f, size_t p) {
    size_t q = p;
    (void)rdvar(f, &q);
    return q - p;
}
static size_t put_var(uint8_t *dst, uint64_t v) {
    size_t n = 0;
    do {
        dst[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) dst[n] |= 0x80;
        n++;
    } while (v);
    return n;
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
    uint64_t count = rdvar(f, &p);
    int found_w = 0;
    for (uint64_t t = 0; t < count; t++) {
        size_t start = p;
        uint64_t name = rdvar(f, &p);
        size_t dtype_off = p;
        uint8_t flags = f[p + 2], ndim = f[p + 3];
        p += 4;
        size_t dims_off = p;
        for (int d = 0; d < ndim; d++) (void)rdvar(f, &p);
        size_t quant_off = p;
        assert_int_equal(f[p], 0); /* the fixture is float */
        p++;
        size_t dsize_off = p;
        uint64_t dsize = 0;
        if (flags & SQZ_TF_CONST) dsize = rdvar(f, &p);
        if (strcmp(str_at(f, strs, name), "conv0.weight") == 0) {
            found_w = 1;
            l->w_name_off = start;
            l->w_dtype_off = dtype_off;
            l->w_enc_off = dtype_off + 1;
            l->w_ndim_off = dtype_off + 3;
            l->w_dims_off = dims_off;
            l->w_quant_off = quant_off;
            l->w_dsize_off = dsize_off;
            l->w_data_size = dsize;
        }
        assert_true(p <= ten->off + ten->size);
    }
    assert_true(found_w);
    l->t_end = p;
    assert_int_equal(p, ten->off + ten->size);

    p = gr->off;
    l->g_nnodes_off = p;
    uint64_t n_nodes = rdvar(f, &p);
    assert_true(n_nodes >= 1);
    for (uint64_t n = 0; n < n_nodes; n++) {
        if (n == 0) l->n0_op_off = p;
        (void)rdvar(f, &p); /* op */
        (void)rdvar(f, &p); /* name */
        if (n == 0) l->n0_nin_off = p;
        uint64_t n_in = rdvar(f, &p);
        if (n == 0) l->n0_in0_off = p;
        for (uint64_t k = 0; k < n_in; k++) (void)rdvar(f, &p);
        uint64_t n_out = rdvar(f, &p);
        for (uint64_t k = 0; k < n_out; k++) (void)rdvar(f, &p);
        if (n == 0) l->n0_nattr_off = p;
        uint64_t n_attr = rdvar(f, &p);
        for (uint64_t a = 0; a < n_attr; a++) {
            (void)rdvar(f, &p); /* name */
            uint8_t type = f[p++];
            uint64_t cnt;
            switch (type) {
            case SQZ_ATTR_INT:
                (void)rdvar(f, &p);
                break;
            case SQZ_ATTR_FLOAT:
                p += 4;
                break;
            case SQZ_ATTR_INTS:
                if (n == 0 && !l->n0_attr0_count_off) l->n0_attr0_count_off = p;
                cnt = rdvar(f, &p);
                for (uint64_t j = 0; j < cnt; j++) (void)rdvar(f, &p);
                break;
            case SQZ_ATTR_FLOATS:
                cnt = rdvar(f, &p);
                p += 4 * (size_t)cnt;
                break;
            case SQZ_ATTR_STRING:
                if (n == 0) l->n0_strattr_ref_off = p;
                (void)rdvar(f, &p);
                break;
            default:
                fail_msg("unknown attribute type %u in the writer's output", type);
            }
        }
        assert_true(p <= gr->off + gr->size);
    }
    uint64_t n_gin = rdvar(f, &p);
    for (uint64_t k = 0; k < n_gin; k++) (void)rdvar(f, &p);
    assert_true(rdvar(f, &p) >= 1);
    l->g_out0_off = p;
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
    /* the sliced path (>= 64 KiB), odd lengths and offsets, a running CRC */
    size_t big = ((size_t)1 << 17) + 13;
    unsigned char *b = malloc(big);
    assert_non_null(b);
    uint32_t v = 12345;
    for (size_t i = 0; i < big; i++) {
        v = v * 1103515245u + 12345u;
        b[i] = (unsigned char)(v >> 16);
    }
    static const size_t offs[] = {0, 1, 3, 7}, lens[] = {65536, 65537, 65543, 100001, 131000};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 5; j++) {
            uint32_t want = (uint32_t)crc32(0L, b + offs[i], (uInt)lens[j]);
            assert_int_equal(sqz_crc32(0, b + offs[i], lens[j]), want);
            size_t h = lens[j] / 3; /* a running CRC over two pieces */
            uint32_t part = sqz_crc32(0, b + offs[i], h);
            assert_int_equal(sqz_crc32(part, b + offs[i] + h, lens[j] - h), want);
        }
    free(b);
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
            /* the version turned into another one this runtime reads: the
             * file uses no feature the other lacks, so it loads (v2 <-> v3) */
            uint32_t ver = rd32(f->file, 8) ^
                           (off >= 8 && off < 12 ? (uint32_t)masks[k] << (8 * (off - 8)) : 0u);
            if (off >= 8 && off < 12 && ver >= SQZ_FORMAT_VERSION_MIN && ver <= SQZ_FORMAT_VERSION)
                r = R_UNCHECKED;
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

/* Replace bytes [off, off + old_len) of the file (inside one section) by
 * rep[0..rep_len): the section grows or shrinks, later sections move (kept
 * 8-aligned), the table and file size follow, and every CRC is resealed, so
 * only the semantic edit remains. Returns a malloc'd file of *ns bytes. */
static uint8_t *splice(const uint8_t *f, size_t size, const layout *l, size_t off, size_t old_len,
                       const uint8_t *rep, size_t rep_len, size_t *ns) {
    size_t cap = size + rep_len + 8 * SQZ_MAX_SECTIONS;
    uint8_t *o = calloc(cap, 1);
    assert_non_null(o);
    size_t head = SQZ_HEADER_BYTES + (size_t)l->n_sections * SQZ_SECTION_ENTRY_BYTES;
    memcpy(o, f, head);
    /* sections in file order */
    uint32_t order[SQZ_MAX_SECTIONS];
    for (uint32_t i = 0; i < l->n_sections; i++) order[i] = i;
    for (uint32_t i = 0; i < l->n_sections; i++)
        for (uint32_t j = i + 1; j < l->n_sections; j++)
            if (l->sec[order[j]].off < l->sec[order[i]].off) {
                uint32_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    size_t pos = head;
    for (uint32_t k = 0; k < l->n_sections; k++) {
        const section *sc = &l->sec[order[k]];
        pos = (pos + 7) / 8 * 8;
        size_t n = sc->size;
        if (off >= sc->off && off < sc->off + sc->size) {
            assert_true(off + old_len <= sc->off + sc->size);
            size_t pre = off - sc->off;
            memcpy(o + pos, f + sc->off, pre);
            memcpy(o + pos + pre, rep, rep_len);
            memcpy(o + pos + pre + rep_len, f + off + old_len, sc->size - pre - old_len);
            n = sc->size - old_len + rep_len;
        } else {
            memcpy(o + pos, f + sc->off, sc->size);
        }
        wr64(o, sc->entry + 8, pos);
        wr64(o, sc->entry + 16, n);
        pos += n;
    }
    wr64(o, 24, pos);
    reseal(o, pos);
    *ns = pos;
    return o;
}

/* the var at off replaced by v (any length) */
static uint8_t *set_var(const uint8_t *f, size_t size, const layout *l, size_t off, uint64_t v,
                        size_t *ns) {
    uint8_t b[10];
    size_t n = put_var(b, v);
    return splice(f, size, l, off, var_len(f, off), b, n, ns);
}

typedef uint8_t *(*edit_fn)(const uint8_t *f, size_t size, const layout *l, size_t *ns);

/* in-place edits of fixed-width fields (header, table, u8 fields) */
static uint8_t *in_place(const uint8_t *f, size_t size, size_t *ns) {
    uint8_t *c = malloc(size);
    assert_non_null(c);
    memcpy(c, f, size);
    *ns = size;
    return c;
}
#define ED_VAR(fn, field, value)                                                                   \
    static uint8_t *fn(const uint8_t *f, size_t size, const layout *l, size_t *ns) {               \
        return set_var(f, size, l, l->field, (value), ns);                                         \
    }
#define ED_U8(fn, field, value)                                                                    \
    static uint8_t *fn(const uint8_t *f, size_t size, const layout *l, size_t *ns) {               \
        uint8_t *c = in_place(f, size, ns);                                                        \
        c[l->field] = (value);                                                                     \
        reseal(c, size);                                                                           \
        return c;                                                                                  \
    }

ED_VAR(ed_tensor_count_max, t_count_off, 0xFFFFFFFFu)
ED_VAR(ed_tensor_count_plus1, t_count_off, 6) /* the fixture has 5 tensors */
ED_VAR(ed_tensor_count_64bit, t_count_off, UINT64_MAX)
ED_VAR(ed_node_count_max, g_nnodes_off, 0xFFFFFFFFu)
ED_VAR(ed_node_input_oob, n0_in0_off, 1000)
ED_VAR(ed_node_input_huge, n0_in0_off, (uint64_t)1 << 40)
ED_VAR(ed_node_nin_huge, n0_nin_off, 0x7FFFFFFFu)
ED_VAR(ed_node_nattr_huge, n0_nattr_off, 0xFFFFFFFFu)
ED_VAR(ed_attr_count_huge, n0_attr0_count_off, 0x10000000u)
ED_VAR(ed_attr_str_oob, n0_strattr_ref_off, 0x00FFFFFFu)
ED_VAR(ed_attr_str_mid, n0_strattr_ref_off, l->mid_string_ref)
ED_VAR(ed_graph_output_oob, g_out0_off, 0x7FFFFFF0u)
ED_VAR(ed_dim_huge, w_dims_off, (uint64_t)1 << 62)
ED_VAR(ed_dim_2_40, w_dims_off, ((uint64_t)1 << 40) + 1)
ED_VAR(ed_name_oob, w_name_off, 0xFFFFFFFFu)
ED_VAR(ed_name_mid, w_name_off, l->mid_string_ref)
ED_VAR(ed_data_size_mismatch, w_dsize_off, l->w_data_size - 4)
ED_VAR(ed_data_past_end, w_dsize_off, l->w_data_size + 4096)
ED_VAR(ed_data_size_huge, w_dsize_off, UINT64_MAX)
ED_VAR(ed_op_unknown, n0_op_off, 0xFFFF)
ED_VAR(ed_op_huge, n0_op_off, (uint64_t)1 << 33)
ED_U8(ed_ndim_too_big, w_ndim_off, 200)
ED_U8(ed_dtype_bad, w_dtype_off, 99)
ED_U8(ed_encoding_bad, w_enc_off, 7)
ED_U8(ed_encoding_varint_f32, w_enc_off, SQZ_ENC_VARINT)
ED_U8(ed_encoding_f16_size, w_enc_off, SQZ_ENC_F16)
ED_U8(ed_quant_on_f32, w_quant_off, SQZ_QUANT_PER_CHANNEL_SYM | SQZ_QF_F16_SCALES)
ED_U8(ed_quant_bad_bits, w_quant_off, 0x40)

/* a dim stored as an over-long varint (11 bytes, more than 64 bits) */
static uint8_t *ed_dim_overlong(const uint8_t *f, size_t size, const layout *l, size_t *ns) {
    uint8_t b[11];
    memset(b, 0xFF, 10);
    b[10] = 0x01;
    return splice(f, size, l, l->w_dims_off, var_len(f, l->w_dims_off), b, sizeof b, ns);
}
/* a varint running to the section's end (continuation bit on the last byte) */
static uint8_t *ed_var_unterminated(const uint8_t *f, size_t size, const layout *l, size_t *ns) {
    const section *t = find_sec(l, SQZ_SEC_TENSORS);
    uint8_t b[3] = {0x80, 0x80, 0x80};
    return splice(f, size, l, t->off + t->size - 1, 1, b, sizeof b, ns);
}
/* bytes after the last tensor record / after the graph's outputs */
static uint8_t *ed_tensors_trailing(const uint8_t *f, size_t size, const layout *l, size_t *ns) {
    uint8_t b[1] = {0};
    return splice(f, size, l, l->t_end - 1, 1, (const uint8_t[2]){f[l->t_end - 1], b[0]}, 2, ns);
}
static uint8_t *ed_graph_trailing(const uint8_t *f, size_t size, const layout *l, size_t *ns) {
    const section *g = find_sec(l, SQZ_SEC_GRAPH);
    size_t last = g->off + g->size - 1;
    return splice(f, size, l, last, 1, (const uint8_t[2]){f[last], 0}, 2, ns);
}
/* DATA one byte longer than the tensors use */
static uint8_t *ed_data_extra(const uint8_t *f, size_t size, const layout *l, size_t *ns) {
    const section *d = find_sec(l, SQZ_SEC_DATA);
    assert_non_null(d);
    size_t last = d->off + d->size - 1;
    return splice(f, size, l, last, 1, (const uint8_t[2]){f[last], 0}, 2, ns);
}

#define ED_FILE(fn, body)                                                                          \
    static uint8_t *fn(const uint8_t *f, size_t size, const layout *l, size_t *ns) {               \
        uint8_t *c = in_place(f, size, ns);                                                        \
        (void)l;                                                                                   \
        body;                                                                                      \
        reseal(c, size);                                                                           \
        return c;                                                                                  \
    }
ED_FILE(ed_strings_unterminated, {
    const section *s = find_sec(l, SQZ_SEC_STRINGS);
    c[s->off + s->size - 1] = 'A';
})
ED_FILE(ed_sec_offset_oob, wr64(c, find_sec(l, SQZ_SEC_GRAPH)->entry + 8, (uint64_t)1 << 40))
ED_FILE(ed_sec_offset_unaligned, {
    const section *s = find_sec(l, SQZ_SEC_TENSORS);
    wr64(c, s->entry + 8, s->off + 1);
    wr64(c, s->entry + 16, s->size - 1);
})
ED_FILE(ed_sec_size_huge, wr64(c, find_sec(l, SQZ_SEC_TENSORS)->entry + 16, UINT64_MAX - 8))
ED_FILE(ed_sec_overlaps_header, {
    /* the 8 magic bytes as the strings blob: a sealable CRC, hostile place */
    const section *s = find_sec(l, SQZ_SEC_STRINGS);
    wr64(c, s->entry + 8, 0);
    wr64(c, s->entry + 16, SQZ_MAGIC_LEN);
})
ED_FILE(ed_sec_duplicate, wr32(c, find_sec(l, SQZ_SEC_GRAPH)->entry, SQZ_SEC_TENSORS))
ED_FILE(ed_sec_missing_graph, wr32(c, find_sec(l, SQZ_SEC_GRAPH)->entry, 77))
ED_FILE(ed_nsections_zero, wr32(c, 16, 0))
ED_FILE(ed_nsections_max, wr32(c, 16, 0xFFFFFFFFu))
ED_FILE(ed_file_size, wr64(c, 24, rd64(c, 24) + 64))
ED_FILE(ed_version, wr32(c, 8, SQZ_FORMAT_VERSION + 1))
ED_FILE(ed_version_1, wr32(c, 8, 1))

typedef struct hostile {
    const char *what;
    edit_fn edit;
    int session_ok; /* 1: failing at session creation (not load) is acceptable */
} hostile;

static const hostile k_hostile[] = {
    {"tensor count 0xFFFFFFFF", ed_tensor_count_max, 0},
    {"tensor count + 1", ed_tensor_count_plus1, 0},
    {"tensor count 2^64 - 1", ed_tensor_count_64bit, 0},
    {"node count 0xFFFFFFFF", ed_node_count_max, 0},
    {"node input id out of range", ed_node_input_oob, 0},
    {"node input id 2^40", ed_node_input_huge, 0},
    {"node n_in 0x7FFFFFFF", ed_node_nin_huge, 0},
    {"node n_attr 0xFFFFFFFF", ed_node_nattr_huge, 0},
    {"attribute count 0x10000000", ed_attr_count_huge, 0},
    {"string attribute outside the blob", ed_attr_str_oob, 0},
    {"string attribute inside a string", ed_attr_str_mid, 0},
    {"graph output id out of range", ed_graph_output_oob, 0},
    {"dim 2^62", ed_dim_huge, 0},
    {"dim 2^40 + 1", ed_dim_2_40, 0},
    {"dim over-long varint", ed_dim_overlong, 0},
    {"varint running off the section", ed_var_unterminated, 0},
    {"ndim 200", ed_ndim_too_big, 0},
    {"dtype 99", ed_dtype_bad, 0},
    {"encoding 7", ed_encoding_bad, 0},
    {"encoding VARINT on f32", ed_encoding_varint_f32, 0},
    {"encoding F16 with f32 size", ed_encoding_f16_size, 0},
    {"quant record on f32", ed_quant_on_f32, 0},
    {"quant byte unknown bits", ed_quant_bad_bits, 0},
    {"tensor name outside the blob", ed_name_oob, 0},
    {"tensor name inside a string", ed_name_mid, 0},
    {"data_size - 4", ed_data_size_mismatch, 0},
    {"data_size beyond DATA", ed_data_past_end, 0},
    {"data_size 2^64 - 1", ed_data_size_huge, 0},
    {"DATA longer than the tensors", ed_data_extra, 0},
    {"bytes after the tensor records", ed_tensors_trailing, 0},
    {"bytes after the graph", ed_graph_trailing, 0},
    {"op id 0xFFFF", ed_op_unknown, 1},
    {"op id 2^33", ed_op_huge, 0},
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
    {"version 1 (old layout)", ed_version_1, 0},
};

static void test_hostile_valid_crc(void **state) {
    fixture *f = *state;
    layout l;
    parse_layout(f->file, f->size, &l);
    for (size_t i = 0; i < sizeof k_hostile / sizeof k_hostile[0]; i++) {
        size_t ns = 0;
        uint8_t *c = k_hostile[i].edit(f->file, f->size, &l, &ns);
        if (k_hostile[i].session_ok)
            expect_clean_failure(c, ns, k_hostile[i].what);
        else
            expect_load_failure(c, ns, k_hostile[i].what);
        free(c);
    }
    /* the splice itself keeps a file valid: re-encoding a var unchanged loads */
    size_t ns = 0;
    uint8_t *c = set_var(f->file, f->size, &l, l.w_dsize_off, l.w_data_size, &ns);
    sqz_status st;
    double err;
    assert_int_equal(load_and_run(c, ns, &st, &err), SQZ_OK);
    assert_true(err >= 0 && err <= 1e-5);
    free(c);
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
