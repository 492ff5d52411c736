/* test_cli_units.c - unit tests of the sqz CLI's helper modules: npy, shape
 * and list parsing, PNG reading, resize / preprocessing, IDX reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cli_util.h"
#include "cmd_bench.h"
#include "idx.h"
#include "sqzc/image.h"
#include "sqzc/npy.h"
#include "testutil.h"

static char *g_dir;

static char *tmp_path(const char *name) {
    size_t n = strlen(g_dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- npy */
static void test_npy_roundtrip(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    const sqz_shape shapes[] = {{0, {0}}, {1, {5}}, {2, {3, 4}}, {4, {2, 3, 4, 5}}};
    char err[256];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = (size_t)sqz_shape_numel(&shapes[s]);
        float *x = malloc(n * sizeof *x);
        assert_non_null(x);
        tu_fill_uniform(&r, x, n, -3.0f, 3.0f);
        char *p = tmp_path("rt.npy");
        assert_int_equal(npy_write(p, x, &shapes[s], err, sizeof err), 0);
        npy_array a;
        assert_int_equal(npy_read(p, &a, err, sizeof err), 0);
        assert_int_equal(a.shape.ndim, shapes[s].ndim);
        for (int d = 0; d < a.shape.ndim; d++) assert_int_equal(a.shape.dims[d], shapes[s].dims[d]);
        assert_int_equal(a.count, n);
        assert_memory_equal(a.data, x, n * sizeof *x);
        /* the header is padded to 64 bytes and ends in '\n' */
        uint8_t *buf;
        size_t size;
        assert_int_equal(npy_serialize(x, &shapes[s], &buf, &size, err, sizeof err), 0);
        size_t hl = (size_t)buf[8] | ((size_t)buf[9] << 8);
        assert_int_equal((10 + hl) % 64, 0);
        assert_int_equal(buf[10 + hl - 1], '\n');
        assert_int_equal(size, 10 + hl + 4 * n);
        free(buf);
        npy_free(&a);
        free(p);
        free(x);
    }
    /* no temporary left behind */
    char *p = tmp_path("rt.npy");
    unlink(p);
    free(p);
}

/* Build a .npy image from a header dict and raw payload. */
static size_t make_npy(uint8_t *out, size_t cap, int major, const char *dict, const void *payload,
                       size_t plen) {
    size_t dl = strlen(dict);
    size_t pre = major == 1 ? 10 : 12;
    size_t hl = (pre + dl + 1 + 63) / 64 * 64 - pre;
    assert_true(pre + hl + plen <= cap);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    if (major == 1) {
        out[8] = (uint8_t)hl;
        out[9] = (uint8_t)(hl >> 8);
    } else {
        out[8] = (uint8_t)hl;
        out[9] = (uint8_t)(hl >> 8);
        out[10] = 0;
        out[11] = 0;
    }
    memcpy(out + pre, dict, dl);
    memset(out + pre + dl, ' ', hl - dl - 1);
    out[pre + hl - 1] = '\n';
    memcpy(out + pre + hl, payload, plen);
    return pre + hl + plen;
}

static void test_npy_convert(void **state) {
    (void)state;
    uint8_t buf[512];
    char err[256];
    npy_array a;
    double d[3] = {1.5, -2.25, 1e3};
    size_t n = make_npy(buf, sizeof buf, 2,
                        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
    assert_int_equal(npy_parse(buf, n, &a, err, sizeof err), 0);
    assert_int_equal(a.shape.ndim, 1);
    assert_true(a.data[0] == 1.5f && a.data[1] == -2.25f && a.data[2] == 1000.0f);
    npy_free(&a);

    int32_t iv[4] = {-7, 0, 3, 100000};
    n = make_npy(buf, sizeof buf, 1, "{'fortran_order': False, 'shape': (2, 2), 'descr': '<i4'}",
                 iv, sizeof iv);
    assert_int_equal(npy_parse(buf, n, &a, err, sizeof err), 0);
    assert_int_equal(a.shape.ndim, 2);
    assert_true(a.data[0] == -7.0f && a.data[3] == 100000.0f);
    npy_free(&a);

    uint8_t u8[2] = {255, 1};
    n = make_npy(buf, sizeof buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)}", u8,
                 2);
    assert_int_equal(npy_parse(buf, n, &a, err, sizeof err), 0);
    assert_true(a.data[0] == 255.0f && a.data[1] == 1.0f);
    npy_free(&a);

    int64_t i8[1] = {-5};
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1)}",
                 i8, 8);
    assert_int_equal(npy_parse(buf, n, &a, err, sizeof err), 0);
    assert_true(a.data[0] == -5.0f);
    npy_free(&a);
}

static void test_npy_reject(void **state) {
    (void)state;
    uint8_t buf[512];
    char err[256];
    npy_array a;
    float f4[4] = {1, 2, 3, 4};
    static const char *const bad_dicts[] = {
        "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", /* big-endian */
        "{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }",  /* Fortran order */
        "{'descr': '<f4', 'shape': (4,), }",                         /* missing key */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4), }",  /* not a tuple */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", /* size mismatch */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", /* trailing data */
        "{'descr': '<c8', 'fortran_order': False, 'shape': (4,), }", /* complex */
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} junk",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,4)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (4,)}",
        "",
    };
    for (size_t i = 0; i < sizeof bad_dicts / sizeof bad_dicts[0]; i++) {
        size_t n = make_npy(buf, sizeof buf, 1, bad_dicts[i], f4, sizeof f4);
        int rc = npy_parse(buf, n, &a, err, sizeof err);
        if (rc == 0) fprintf(stderr, "accepted: %s\n", bad_dicts[i]);
        assert_int_equal(rc, -1);
        assert_null(a.data);
        assert_true(strlen(err) > 0);
    }
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    size_t n = make_npy(buf, sizeof buf, 1, good, f4, sizeof f4);
    assert_int_equal(npy_parse(buf, n, &a, err, sizeof err), 0);
    npy_free(&a);
    /* every truncation of a good file is rejected */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(npy_parse(buf, cut, &a, err, sizeof err), -1);
    /* header length beyond the file */
    uint8_t b2[512];
    memcpy(b2, buf, n);
    b2[8] = 0xff;
    b2[9] = 0xff;
    assert_int_equal(npy_parse(b2, n, &a, err, sizeof err), -1);
    /* bad magic, bad version */
    memcpy(b2, buf, n);
    b2[1] = 'X';
    assert_int_equal(npy_parse(b2, n, &a, err, sizeof err), -1);
    memcpy(b2, buf, n);
    b2[6] = 9;
    assert_int_equal(npy_parse(b2, n, &a, err, sizeof err), -1);
    /* missing file */
    char *p = tmp_path("does-not-exist.npy");
    assert_int_equal(npy_read(p, &a, err, sizeof err), -1);
    free(p);
}

/* ---------------------------------------------------------------- parsing */
static void test_shape_parse(void **state) {
    (void)state;
    char *name = NULL, err[256];
    sqz_shape s;
    assert_int_equal(cli_parse_named_shape("input:1,3,224,224", &name, &s, err, sizeof err), 0);
    assert_string_equal(name, "input");
    assert_int_equal(s.ndim, 4);
    assert_int_equal(s.dims[0], 1);
    assert_int_equal(s.dims[1], 3);
    assert_int_equal(s.dims[3], 224);
    free(name);
    /* names may contain ':' (the last one separates the dims) */
    assert_int_equal(cli_parse_named_shape("a:b:7", &name, &s, err, sizeof err), 0);
    assert_string_equal(name, "a:b");
    assert_int_equal(s.ndim, 1);
    assert_int_equal(s.dims[0], 7);
    free(name);
    static const char *const bad[] = {"x",
                                      "x:",
                                      ":1,2",
                                      "x:1,,2",
                                      "x:0,3",
                                      "x:1,a",
                                      "x:1,2,",
                                      "x:-1",
                                      "x:1.5",
                                      "",
                                      "x:1,1,1,1,1,1,1,1,1",
                                      "x:99999999999",
                                      "x: 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        name = (char *)1;
        assert_int_equal(cli_parse_named_shape(bad[i], &name, &s, err, sizeof err), -1);
        assert_null(name);
    }
    int64_t v[4];
    assert_int_equal(cli_parse_int_list("5", v, 4), 1);
    assert_int_equal(cli_parse_int_list("1,2,3,4", v, 4), 4);
    assert_int_equal(cli_parse_int_list("1,2,3,4,5", v, 4), -1);
    float f[3];
    assert_int_equal(cli_parse_float_list("0.485,0.456,0.406", f, 3), 3);
    assert_true(fabsf(f[1] - 0.456f) < 1e-7f);
    assert_int_equal(cli_parse_float_list("0.5,,1", f, 3), -1);
    assert_int_equal(cli_parse_float_list("nan", f, 3), -1);
    long long ll;
    assert_int_equal(cli_parse_int("12", 1, 100, &ll), 0);
    assert_int_equal(ll, 12);
    assert_int_equal(cli_parse_int("0", 1, 100, &ll), -1);
    assert_int_equal(cli_parse_int("12x", 1, 100, &ll), -1);
    char sb[64];
    assert_string_equal(cli_shape_str(&s, sb, sizeof sb), "[7]");

    cli_shapes sh = {0};
    assert_int_equal(cli_shapes_add(&sh, "a:1,2", err, sizeof err), 0);
    assert_int_equal(cli_shapes_add(&sh, "b:3", err, sizeof err), 0);
    assert_int_equal(cli_shapes_add(&sh, "a:1,2", err, sizeof err), -1); /* duplicate */
    assert_int_equal(sh.n, 2);
    cli_shapes_free(&sh);

    int argc = 4;
    char a0[] = "run", a1[] = "--top-k", a2[] = "3", a3[] = "--mean=0.5";
    char *argv[] = {a0, a1, a2, a3, NULL};
    int i = 1;
    const char *val = NULL;
    assert_int_equal(cli_opt_value(argc, argv, &i, "--top", &val), 0);
    assert_int_equal(cli_opt_value(argc, argv, &i, "--top-k", &val), 1);
    assert_int_equal(i, 2);
    assert_string_equal(val, "3");
    i = 3;
    assert_int_equal(cli_opt_value(argc, argv, &i, "--mean", &val), 1);
    assert_string_equal(val, "0.5");
    char b0[] = "--std";
    char *argv2[] = {a0, b0, NULL};
    i = 1;
    assert_int_equal(cli_opt_value(2, argv2, &i, "--std", &val), -1);
}

/* ---------------------------------------------------------------- PNG */
static void write_png(const char *path, int w, int h, int color_type, int depth,
                      const uint8_t *rows_data, const png_color *palette, int n_palette) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_RGB          ? 3
             : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
             : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                       : 1;
    size_t rowbytes = ((size_t)w * (size_t)ch * (size_t)depth + 7) / 8;
    for (int y = 0; y < h; y++) png_write_row(png, rows_data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
}

static void test_png_read(void **state) {
    (void)state;
    char err[256];
    image img;
    char *p = tmp_path("t.png");

    /* 8-bit gray 3x2 */
    const uint8_t g8[6] = {0, 50, 100, 150, 200, 255};
    write_png(p, 3, 2, PNG_COLOR_TYPE_GRAY, 8, g8, NULL, 0);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_int_equal(img.w, 3);
    assert_int_equal(img.h, 2);
    assert_int_equal(img.c, 1);
    for (int i = 0; i < 6; i++) assert_true(img.data[i] == (float)g8[i]);
    image_free(&img);

    /* 8-bit RGB 2x1 */
    const uint8_t rgb[6] = {10, 20, 30, 40, 50, 60};
    write_png(p, 2, 1, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_int_equal(img.c, 3);
    for (int i = 0; i < 6; i++) assert_true(img.data[i] == (float)rgb[i]);
    image_free(&img);

    /* RGBA: alpha dropped */
    const uint8_t rgba[8] = {1, 2, 3, 128, 4, 5, 6, 0};
    write_png(p, 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, NULL, 0);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_int_equal(img.c, 3);
    assert_true(img.data[0] == 1.0f && img.data[2] == 3.0f && img.data[3] == 4.0f &&
                img.data[5] == 6.0f);
    image_free(&img);

    /* 16-bit gray: samples / 257 */
    const uint8_t g16[4] = {0xff, 0xff, 0x01, 0x01};
    write_png(p, 2, 1, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_int_equal(img.c, 1);
    assert_true(fabsf(img.data[0] - 255.0f) < 1e-4f && fabsf(img.data[1] - 1.0f) < 1e-4f);
    image_free(&img);

    /* 4-bit palette */
    const png_color pal[2] = {{255, 0, 0}, {0, 0, 255}};
    const uint8_t idx4[1] = {0x01}; /* pixels: 0, 1 */
    write_png(p, 2, 1, PNG_COLOR_TYPE_PALETTE, 4, idx4, pal, 2);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_int_equal(img.c, 3);
    assert_true(img.data[0] == 255.0f && img.data[1] == 0.0f && img.data[5] == 255.0f);
    image_free(&img);

    /* 1-bit gray expands to 0 / 255 */
    const uint8_t g1[1] = {0x80}; /* 1 0 */
    write_png(p, 2, 1, PNG_COLOR_TYPE_GRAY, 1, g1, NULL, 0);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), 0);
    assert_true(img.data[0] == 255.0f && img.data[1] == 0.0f);
    image_free(&img);

    /* truncated and non-PNG files fail cleanly */
    write_png(p, 3, 2, PNG_COLOR_TYPE_GRAY, 8, g8, NULL, 0);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    uint8_t whole[1024];
    size_t n = fread(whole, 1, sizeof whole, f);
    fclose(f);
    for (size_t cut = 0; cut + 1 < n; cut += 7) {
        write_bytes(p, whole, cut);
        assert_int_equal(image_read_png(p, &img, err, sizeof err), -1);
        assert_null(img.data);
    }
    write_bytes(p, "hello world", 11);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), -1);
    unlink(p);
    assert_int_equal(image_read_png(p, &img, err, sizeof err), -1);
    free(p);
}

/* ---------------------------------------------------------------- resize */
static void test_resize(void **state) {
    (void)state;
    char err[256];
    float src2[4] = {0, 10, 20, 30};
    image s = {2, 2, 1, src2}, d;
    assert_int_equal(image_resize(&s, 4, 4, &d, err, sizeof err), 0);
    /* PyTorch F.interpolate(mode='bilinear', align_corners=False) of [[0,10],[20,30]] */
    const float want[16] = {0,  2.5f,  7.5f,  10, 5,  7.5f,  12.5f, 15,
                            15, 17.5f, 22.5f, 25, 20, 22.5f, 27.5f, 30};
    for (int i = 0; i < 16; i++) assert_true(fabsf(d.data[i] - want[i]) < 1e-5f);
    image_free(&d);

    /* halving averages 2x2 blocks; identity keeps values */
    float src4[16];
    for (int i = 0; i < 16; i++) src4[i] = (float)i;
    image s4 = {4, 4, 1, src4};
    assert_int_equal(image_resize(&s4, 2, 2, &d, err, sizeof err), 0);
    const float half[4] = {2.5f, 4.5f, 10.5f, 12.5f};
    for (int i = 0; i < 4; i++) assert_true(fabsf(d.data[i] - half[i]) < 1e-5f);
    image_free(&d);
    assert_int_equal(image_resize(&s4, 4, 4, &d, err, sizeof err), 0);
    assert_memory_equal(d.data, src4, sizeof src4);
    image_free(&d);

    /* center crop */
    assert_int_equal(image_center_crop(&s4, 2, 2, &d, err, sizeof err), 0);
    assert_true(d.data[0] == 5.0f && d.data[1] == 6.0f && d.data[2] == 9.0f && d.data[3] == 10.0f);
    image_free(&d);
    assert_int_equal(image_center_crop(&s4, 5, 2, &d, err, sizeof err), -1);
}

static void test_preprocess(void **state) {
    (void)state;
    char err[256];
    /* 1x2 RGB image */
    float px[6] = {255, 0, 51, 0, 255, 102};
    image img = {1, 2, 3, px};
    image_prep p;
    image_prep_init(&p);
    float out[6];
    assert_int_equal(image_preprocess(&img, &p, 1, 2, 3, out, err, sizeof err), 0);
    /* NCHW: R plane, G plane, B plane */
    const float nchw[6] = {1, 0, 0, 1, 0.2f, 0.4f};
    for (int i = 0; i < 6; i++) assert_true(fabsf(out[i] - nchw[i]) < 1e-6f);

    p.order = IMAGE_BGR;
    p.layout = IMAGE_NHWC;
    p.mean[0] = 0.5f;
    p.std[0] = 0.5f;
    assert_int_equal(image_preprocess(&img, &p, 1, 2, 3, out, err, sizeof err), 0);
    /* NHWC, BGR: pixel0 = (B,G,R) = (0.2, 0, 1) with channel 0 normalized */
    const float nhwc[6] = {(0.2f - 0.5f) / 0.5f, 0, 1, (0.4f - 0.5f) / 0.5f, 1, 0};
    for (int i = 0; i < 6; i++) assert_true(fabsf(out[i] - nhwc[i]) < 1e-6f);

    /* gray model: luma; resized 1x2 -> 2x4 */
    image_prep_init(&p);
    float g[8];
    assert_int_equal(image_preprocess(&img, &p, 2, 4, 1, g, err, sizeof err), 0);
    float l0 = (0.299f * 255 + 0.114f * 51) / 255, l1 = (0.587f * 255 + 0.114f * 102) / 255;
    assert_true(fabsf(g[0] - l0) < 1e-5f && fabsf(g[3] - l1) < 1e-5f && fabsf(g[7] - l1) < 1e-5f);

    /* --rgb on a 1-channel model, explicit resize that does not match: errors */
    p.order = IMAGE_RGB;
    assert_int_equal(image_preprocess(&img, &p, 1, 2, 1, out, err, sizeof err), -1);
    image_prep_init(&p);
    p.resize_h = 3;
    p.resize_w = 3;
    assert_int_equal(image_preprocess(&img, &p, 1, 2, 3, out, err, sizeof err), -1);
    p.crop_h = 1;
    p.crop_w = 2;
    assert_int_equal(image_preprocess(&img, &p, 1, 2, 3, out, err, sizeof err), 0);
}

/* ---------------------------------------------------------------- IDX */
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_gz(const char *path, const uint8_t *data, size_t n) {
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(gz), Z_OK);
}

static void test_idx(void **state) {
    (void)state;
    char err[256];
    uint8_t img[16 + 12];
    put_be32(img, 0x803);
    put_be32(img + 4, 3);
    put_be32(img + 8, 2);
    put_be32(img + 12, 2);
    for (int i = 0; i < 12; i++) img[16 + i] = (uint8_t)(i * 20);
    uint8_t lab[8 + 3];
    put_be32(lab, 0x801);
    put_be32(lab + 4, 3);
    lab[8] = 9;
    lab[9] = 0;
    lab[10] = 4;
    char *pi = tmp_path("img.gz"), *pl = tmp_path("lab.gz");
    write_gz(pi, img, sizeof img);
    write_gz(pl, lab, sizeof lab);
    idx_images im;
    idx_labels lb;
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), 0);
    assert_int_equal(im.n, 3);
    assert_int_equal(im.h, 2);
    assert_int_equal(im.w, 2);
    assert_memory_equal(im.data, img + 16, 12);
    idx_images_free(&im);
    assert_int_equal(idx_read_labels(pl, &lb, err, sizeof err), 0);
    assert_int_equal(lb.n, 3);
    assert_int_equal(lb.data[0], 9);
    assert_int_equal(lb.data[2], 4);
    idx_labels_free(&lb);
    /* labels file read as images: wrong magic */
    assert_int_equal(idx_read_images(pl, &im, err, sizeof err), -1);
    assert_null(im.data);

    /* plain (uncompressed) IDX is accepted too */
    write_bytes(pl, lab, sizeof lab);
    assert_int_equal(idx_read_labels(pl, &lb, err, sizeof err), 0);
    idx_labels_free(&lb);

    /* truncated payloads (plain and gzip'd) are rejected */
    write_gz(pi, img, sizeof img - 1);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    write_bytes(pi, img, sizeof img - 5);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    /* a gzip stream cut short */
    write_gz(pi, img, sizeof img);
    FILE *f = fopen(pi, "rb");
    assert_non_null(f);
    uint8_t whole[256];
    size_t n = fread(whole, 1, sizeof whole, f);
    fclose(f);
    assert_true(n > 12);
    for (size_t cut = 1; cut < n; cut++) {
        write_bytes(pi, whole, cut);
        assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
        assert_null(im.data);
    }
    /* trailing data, zero dims, huge dims */
    uint8_t big[16 + 13];
    memcpy(big, img, sizeof img);
    big[sizeof img] = 1;
    write_gz(pi, big, sizeof big);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    put_be32(img + 4, 0);
    write_gz(pi, img, sizeof img);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    put_be32(img + 4, 0xffffffffu);
    write_gz(pi, img, sizeof img);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    unlink(pi);
    assert_int_equal(idx_read_images(pi, &im, err, sizeof err), -1);
    unlink(pl);
    free(pi);
    free(pl);
}

/* ---------------------------------------------------------------- atomic */
static void test_atomic(void **state) {
    (void)state;
    char err[256];
    char *p = tmp_path("atomic.bin");
    assert_int_equal(cli_write_file_atomic(p, "abc", 3, err, sizeof err), 0);
    assert_int_equal(cli_file_size(p), 3);
    cli_atomic a;
    assert_int_equal(cli_atomic_open(&a, p, err, sizeof err), 0);
    fputs("partial", a.f);
    cli_atomic_abort(&a);
    assert_int_equal(cli_file_size(p), 3); /* untouched */
    unlink(p);
    free(p);
    /* unwritable directory */
    assert_int_equal(cli_write_file_atomic("/nonexistent-dir/x.bin", "a", 1, err, sizeof err), -1);
}

/* ---------------------------------------------------------------- bench */
static void test_bench_stats(void **state) {
    (void)state;
    bench_stats bs;
    double odd[] = {5.0, 1.0, 3.0, 9.0, 2.0};
    bench_stats_compute(odd, 5, &bs);
    assert_true(bs.median == 3.0 && bs.min == 1.0 && bs.max == 9.0);
    assert_true(fabs(bs.mean - 4.0) < 1e-12);
    double even[] = {4.0, 1.0, 2.0, 10.0};
    bench_stats_compute(even, 4, &bs);
    assert_true(bs.median == 3.0 && bs.min == 1.0 && bs.max == 10.0);
    double one[] = {7.5};
    bench_stats_compute(one, 1, &bs);
    assert_true(bs.median == 7.5 && bs.min == 7.5 && bs.mean == 7.5 && bs.max == 7.5);
}

static void test_bench_fill(void **state) {
    (void)state;
    enum { N = 4096 };
    static float a[N], b[N], c[N];
    bench_fill(a, N, 1);
    bench_fill(b, N, 1);
    bench_fill(c, N, 2);
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    assert_true(memcmp(a, c, sizeof a) != 0);
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= -1.0f && a[i] < 1.0f);
        sum += a[i];
    }
    assert_true(fabs(sum / N) < 0.05);
    /* pinned values: the same data on every platform */
    assert_true(a[0] == 0.13312304019927979f);
    assert_true(a[1] == 0.49156343936920166f);
    assert_true(a[2] == 0.9420053958892822f);
}

static int setup(void **state) {
    (void)state;
    g_dir = tu_make_temp_dir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (g_dir) rmdir(g_dir);
    free(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip), cmocka_unit_test(test_npy_convert),
        cmocka_unit_test(test_npy_reject),    cmocka_unit_test(test_shape_parse),
        cmocka_unit_test(test_png_read),      cmocka_unit_test(test_resize),
        cmocka_unit_test(test_preprocess),    cmocka_unit_test(test_idx),
        cmocka_unit_test(test_atomic),        cmocka_unit_test(test_bench_stats),
        cmocka_unit_test(test_bench_fill),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
