/* test_quant_calib.c - calibration sets (manifest parsing, checks, loading),
 * streaming statistics and range methods, int8 parameters, and the IR /
 * writer representation of int8 tensors. */
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
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "sqz/format.h"
#include "sqzc/calib_set.h"
#include "sqzc/image.h"
#include "sqzc/ir.h"
#include "sqzc/npy.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/quant.h"
#include "sqzc/quant_range.h"
#include "sqzc/writer.h"
#include "testutil.h"

static char *g_dir;

static char *tmp_path(const char *name) {
    size_t n = strlen(g_dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", g_dir, name);
    return p;
}

static void write_text(const char *name, const char *text) {
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    free(p);
}

/* w x h PNG, 1 (gray) or 3 (RGB) channels, pixel value = (x + 3 y + c) * 7 % 256 */
static void write_png(const char *name, int w, int h, int ch) {
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t row[64 * 3];
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) row[x * ch + c] = (uint8_t)((x + 3 * y + c) * 7 % 256);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
    free(p);
}

/* w x h gray PNG of pseudo-random pixels (seed): incompressible, so a large
 * one spans several reads */
static void write_png_noise(const char *name, int w, int h, unsigned seed0) {
    volatile unsigned seed = seed0; /* live across setjmp */
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t row[256];
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            seed = seed * 1103515245u + 12345u;
            row[x] = (uint8_t)(seed >> 16);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
    free(p);
}

/* parse + file checks on `threads` threads + done, decoding up to budget bytes */
static int read_set_par(const char *name, size_t budget, int threads, sqzc_calib_set *s, char *err,
                        size_t n) {
    char *p = tmp_path(name);
    int rc = sqzc_calib_set_parse(p, budget, s, err, n);
    free(p);
    if (rc != 0) return rc;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
#endif
    sqzc_calib_set_check_some(s, NULL);
    (void)threads;
    return sqzc_calib_set_check_done(s, err, n);
}

static int read_set(const char *name, sqzc_calib_set *s, char *err, size_t n) {
    char *p = tmp_path(name);
    int rc = sqzc_calib_set_read(p, s, err, n);
    free(p);
    return rc;
}

static void test_manifest_ok(void **state) {
    (void)state;
    write_png("g0.png", 8, 6, 1);
    write_png("g1.png", 8, 6, 1);
    float t[48];
    for (int i = 0; i < 48; i++) t[i] = (float)i * 0.5f - 3.0f;
    sqz_shape ts = {3, {1, 6, 8}};
    char err[512];
    char *np = tmp_path("t.npy");
    assert_int_equal(npy_write(np, t, &ts, err, sizeof err), 0);
    free(np);
    write_text("m.txt", "# comment\n\ncolor: gray\nscale: 0.00392156862745098\n"
                        "mean: 0.5\nstd: 0.25\nlayout: nchw\n  g0.png  \ng1.png\r\nt.npy\n");
    sqzc_calib_set s;
    assert_int_equal(read_set("m.txt", &s, err, sizeof err), 0);
    assert_int_equal(s.n_items, 3);
    assert_int_equal(s.items[0].kind, SQZC_CALIB_PNG);
    assert_int_equal(s.items[0].channels, 1);
    assert_int_equal(s.items[2].kind, SQZC_CALIB_NPY);
    assert_int_equal(s.items[1].line, 9);
    assert_true(strstr(s.items[1].path, "/g1.png") != NULL);
    assert_float_equal(s.prep.mean[2], 0.5f, 0);
    assert_float_equal(s.prep.std[1], 0.25f, 0);
    sqz_shape in = {4, {4, 1, 6, 8}};
    assert_int_equal(sqzc_calib_set_check_input(&s, &in, err, sizeof err), 0);
    float x[48];
    assert_int_equal(sqzc_calib_set_load(&s, 1, &in, x, err, sizeof err), 0);
    for (int y = 0; y < 6; y++)
        for (int c = 0; c < 8; c++) {
            float pix = (float)((c + 3 * y) * 7 % 256);
            assert_float_equal(x[y * 8 + c], (pix / 255.0f - 0.5f) / 0.25f, 1e-5);
        }
    assert_int_equal(sqzc_calib_set_load(&s, 2, &in, x, err, sizeof err), 0);
    assert_memory_equal(x, t, sizeof t);
    /* resized to the model's size (8x6 -> 4x3): mean of 2x2 blocks */
    sqz_shape small = {4, {1, 1, 3, 4}};
    assert_int_equal(sqzc_calib_set_load(&s, 0, &small, x, err, sizeof err), 0);
    float p00 = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) p00 += (float)((dx + 3 * dy) * 7 % 256) / 4.0f;
    assert_float_equal(x[0], (p00 / 255.0f - 0.5f) / 0.25f, 1e-4);
    /* model with 3 channels: gray set refused */
    sqz_shape rgb = {4, {1, 3, 6, 8}};
    assert_int_not_equal(sqzc_calib_set_check_input(&s, &rgb, err, sizeof err), 0);
    assert_non_null(strstr(err, "color: gray"));
    sqzc_calib_set_free(&s);
}

/* Files checked on several threads, PNGs decoded during the check within a
 * byte budget: every load equals the one from a set read without decoding,
 * the budget bounds the decoded pixels, and the error reported is the first
 * bad file in manifest order. */
static void test_manifest_decoded(void **state) {
    (void)state;
    enum { NI = 41, SIDE = 28 };
    char text[NI * 16 + 64] = "scale: 0.0039215686\nmean: 0.25\nstd: 0.5\n";
    for (int i = 0; i < NI; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%02d.png", i);
        /* one 200x200 image: a file larger than the first read */
        if (i == 7)
            write_png_noise(name, 200, 200, (unsigned)i);
        else
            write_png_noise(name, SIDE, SIDE, (unsigned)i);
        strcat(text, name);
        strcat(text, "\n");
    }
    write_text("dec.txt", text);
    char err[512];
    sqzc_calib_set ref, s;
    assert_int_equal(read_set("dec.txt", &ref, err, sizeof err), 0);
    const sqz_shape in = {4, {1, 1, SIDE, SIDE}};
    float *x0 = malloc(sizeof *x0 * NI * SIDE * SIDE), *x1 = malloc(sizeof *x1 * NI * SIDE * SIDE);
    assert_non_null(x0);
    assert_non_null(x1);
    assert_int_equal(sqzc_calib_set_load_many(&ref, 0, NI, &in, x0, err, sizeof err), 0);
    for (int i = 0; i < NI; i++) assert_null(ref.items[i].img.data);
    /* everything decoded (3 threads) */
    assert_int_equal(read_set_par("dec.txt", (size_t)64 << 20, 3, &s, err, sizeof err), 0);
    for (int i = 0; i < NI; i++) assert_non_null(s.items[i].img.data);
    assert_int_equal(s.items[7].img.w, 200);
    assert_int_equal(sqzc_calib_set_load_many(&s, 0, NI, &in, x1, err, sizeof err), 0);
    assert_memory_equal(x0, x1, sizeof *x0 * NI * SIDE * SIDE);
    sqzc_calib_set_free(&s);
    /* a budget of 10 small images: at most that many bytes decoded, the rest
     * decoded when loaded, the same values */
    const size_t budget = (size_t)10 * SIDE * SIDE * sizeof(float);
    assert_int_equal(read_set_par("dec.txt", budget, 2, &s, err, sizeof err), 0);
    size_t held = 0;
    int cached = 0;
    for (int i = 0; i < NI; i++)
        if (s.items[i].img.data) {
            cached++;
            held += (size_t)s.items[i].img.h * (size_t)s.items[i].img.w * sizeof(float);
        }
    assert_true(held <= budget);
    assert_true(cached >= 1 && cached <= 10);
    assert_int_equal(sqzc_calib_set_load_many(&s, 0, NI, &in, x1, err, sizeof err), 0);
    assert_memory_equal(x0, x1, sizeof *x0 * NI * SIDE * SIDE);
    sqzc_calib_set_free(&s);
    sqzc_calib_set_free(&ref);
    free(x0);
    free(x1);
    /* a truncated PNG: found by the decoding check (the header alone passes) */
    char *src = tmp_path("n07.png"), *dst = tmp_path("trunc.png");
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 8000);
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n / 2, f), n / 2);
    assert_int_equal(fclose(f), 0);
    free(src);
    free(dst);
    write_text("trunc.txt", "n00.png\ntrunc.png\n");
    assert_int_equal(read_set("trunc.txt", &s, err, sizeof err), 0);
    sqzc_calib_set_free(&s);
    assert_int_not_equal(read_set_par("trunc.txt", (size_t)1 << 20, 2, &s, err, sizeof err), 0);
    if (!strstr(err, "trunc.txt:2") || !strstr(err, "bad PNG")) fail_msg("error: %s", err);
    assert_null(s.items);
    /* several bad files, many threads: always the first one in manifest order */
    write_text("notpng.png", "this is not a png at all, just some text to fill the header\n");
    char bad[NI * 16 + 64] = "";
    for (int i = 0; i < 30; i++) {
        char line[32];
        snprintf(line, sizeof line, "%s\n",
                 i == 17   ? "notpng.png"
                 : i == 23 ? "missing.png"
                 : i == 25 ? "trunc.png"
                           : "n01.png");
        strcat(bad, line);
    }
    write_text("bad3.txt", bad);
    for (int rep = 0; rep < 5; rep++) {
        assert_int_not_equal(read_set_par("bad3.txt", (size_t)1 << 20, 4, &s, err, sizeof err), 0);
        if (!strstr(err, "bad3.txt:18") || !strstr(err, "is not a PNG file"))
            fail_msg("error: %s", err);
    }
}

static void expect_bad(const char *manifest_text, const char *needle) {
    write_text("bad.txt", manifest_text);
    sqzc_calib_set s;
    char err[512] = "";
    assert_int_not_equal(read_set("bad.txt", &s, err, sizeof err), 0);
    if (!strstr(err, needle)) fail_msg("error '%s' does not contain '%s'", err, needle);
    assert_int_equal(s.n_items, 0);
    assert_null(s.items);
}

static void test_manifest_errors(void **state) {
    (void)state;
    write_png("rgb.png", 4, 4, 3);
    write_png("g.png", 4, 4, 1);
    write_text("text.png", "this is not a png at all, just some text to fill the header\n");
    expect_bad("# nothing\n\n", "empty calibration set");
    expect_bad("missing.png\n", "cannot open");
    expect_bad("g.png\nmissing.png\n", "bad.txt:2");
    expect_bad("text.png\n", "is not a PNG file");
    expect_bad("g.png\nimage.jpg\n", "neither a .png image nor a .npy");
    expect_bad("color: gray\ng.png\nrgb.png\n",
               "is a colour image but the manifest says color: gray");
    expect_bad("color: rgb\ng.png\n", "is a grayscale image but the manifest says color: rgb");
    expect_bad("colour: gray\ng.png\n", "unknown key 'colour'");
    expect_bad("std: 0\ng.png\n", "bad value");
    expect_bad("resize: 0 4\ng.png\n", "bad value");
    expect_bad("mean: 1 2\ng.png\n", "bad value");
    /* a directory, and a FIFO (its open must not wait for a writer) */
    char *d = tmp_path("dir.png"), *fifo = tmp_path("fifo.png");
    assert_true(mkdir(d, 0700) == 0 || access(d, F_OK) == 0);
    assert_true(mkfifo(fifo, 0600) == 0 || access(fifo, F_OK) == 0);
    expect_bad("g.png\ndir.png\n", "bad.txt:2: '");
    expect_bad("dir.png\n", "is not a regular file");
    expect_bad("fifo.png\n", "is not a regular file");
    rmdir(d);
    unlink(fifo);
    free(d);
    free(fifo);
    sqzc_calib_set s;
    char err[512];
    char *p = tmp_path("does-not-exist.txt");
    assert_int_not_equal(sqzc_calib_set_read(p, &s, err, sizeof err), 0);
    assert_non_null(strstr(err, "cannot open calibration manifest"));
    free(p);
    /* no color key: an RGB image against a 1-channel model is refused */
    write_text("auto.txt", "rgb.png\n");
    assert_int_equal(read_set("auto.txt", &s, err, sizeof err), 0);
    sqz_shape in = {4, {1, 1, 4, 4}};
    assert_int_not_equal(sqzc_calib_set_check_input(&s, &in, err, sizeof err), 0);
    assert_non_null(strstr(err, "colour image but the model input has 1 channel"));
    sqzc_calib_set_free(&s);
    /* .npy of the wrong size: refused at load, naming the line */
    float t[5] = {0};
    sqz_shape ts = {1, {5}};
    p = tmp_path("five.npy");
    assert_int_equal(npy_write(p, t, &ts, err, sizeof err), 0);
    free(p);
    write_text("npy.txt", "five.npy\n");
    assert_int_equal(read_set("npy.txt", &s, err, sizeof err), 0);
    float x[16];
    assert_int_not_equal(sqzc_calib_set_load(&s, 0, &in, x, err, sizeof err), 0);
    assert_non_null(strstr(err, "npy.txt:1"));
    sqzc_calib_set_free(&s);
}

/* "npy_batch: FILE": an .npy of N pre-decoded samples along its first
 * dimension is N items, read a range of samples at a time; mixed with PNG and
 * single-sample .npy lines; bad files refused when the manifest is read
 * (naming the line), a sample size that does not fit the model at the input
 * check. */
static void test_npy_batch(void **state) {
    (void)state;
    write_png("g0.png", 8, 6, 1);
    float b[5 * 48], t[48];
    for (int i = 0; i < 5 * 48; i++) b[i] = (float)(i / 48) * 100.0f + (float)(i % 48) * 0.5f;
    for (int i = 0; i < 48; i++) t[i] = -(float)i;
    char err[512];
    char *p = tmp_path("b.npy");
    sqz_shape bs = {4, {5, 1, 6, 8}}, ts = {3, {1, 6, 8}};
    assert_int_equal(npy_write(p, b, &bs, err, sizeof err), 0);
    free(p);
    p = tmp_path("t.npy");
    assert_int_equal(npy_write(p, t, &ts, err, sizeof err), 0);
    free(p);
    write_text("mb.txt", "color: gray\ng0.png\nnpy_batch: b.npy\nt.npy\n");
    sqzc_calib_set s;
    assert_int_equal(read_set("mb.txt", &s, err, sizeof err), 0);
    assert_int_equal(s.n_items, 7);
    assert_int_equal(s.n_files, 1);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(s.items[i].kind, SQZC_CALIB_NPY_BATCH);
        assert_int_equal(s.items[i].index, i - 1);
        assert_int_equal(s.items[i].line, 3);
    }
    assert_int_equal(s.items[6].kind, SQZC_CALIB_NPY);
    sqz_shape in = {4, {1, 1, 6, 8}};
    assert_int_equal(sqzc_calib_set_check_input(&s, &in, err, sizeof err), 0);
    float x[7 * 48];
    assert_int_equal(sqzc_calib_set_load(&s, 3, &in, x, err, sizeof err), 0);
    assert_memory_equal(x, b + 2 * 48, 48 * sizeof(float));
    /* every item at once (one read for the five samples), and a range
     * starting inside the file */
    assert_int_equal(sqzc_calib_set_load_many(&s, 0, 7, &in, x, err, sizeof err), 0);
    float pix = (float)((1 + 3 * 2) * 7 % 256); /* g0.png at x 1, y 2 */
    assert_float_equal(x[2 * 8 + 1], pix / 255.0f, 1e-6);
    assert_memory_equal(x + 48, b, sizeof b);
    assert_memory_equal(x + 6 * 48, t, sizeof t);
    assert_int_equal(sqzc_calib_set_load_many(&s, 4, 3, &in, x, err, sizeof err), 0);
    assert_memory_equal(x, b + 3 * 48, 2 * 48 * sizeof(float));
    assert_memory_equal(x + 2 * 48, t, sizeof t);
    /* samples of 48 values against a model input of 16 */
    sqz_shape small = {4, {1, 1, 4, 4}};
    assert_int_not_equal(sqzc_calib_set_check_input(&s, &small, err, sizeof err), 0);
    assert_non_null(strstr(err, "mb.txt:3"));
    assert_non_null(strstr(err, "holds 5 samples of 48 elements; one model input sample has 16"));
    sqzc_calib_set_free(&s);
    /* bad files */
    expect_bad("npy_batch: g0.png\n", "npy_batch: 'g0.png' is not a .npy path");
    expect_bad("g0.png\nnpy_batch: missing.npy\n", "bad.txt:2: cannot open");
    write_text("fake.npy", "not an npy file, but long enough for a header check......\n");
    expect_bad("npy_batch: fake.npy\n", "not a .npy file");
    /* truncated: the header promises 5 samples */
    p = tmp_path("b.npy");
    assert_int_equal(truncate(p, 128 + 5 * 48 * 4 - 4), 0);
    free(p);
    expect_bad("npy_batch: b.npy\n", "size mismatch");
    sqz_shape zs = {2, {0, 48}};
    p = tmp_path("zero.npy");
    assert_int_equal(npy_write(p, t, &zs, err, sizeof err), 0);
    free(p);
    expect_bad("npy_batch: zero.npy\n", "holds no samples");
}

/* the committed Fashion-MNIST set: 500 gray 28x28 images, train split */
static void test_committed_set(void **state) {
    (void)state;
    char p[1024];
    snprintf(p, sizeof p, "%s/calib-data/fashion-mnist/manifest.txt", tu_source_dir());
    sqzc_calib_set s;
    char err[512];
    if (sqzc_calib_set_read(p, &s, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(s.n_items, 500);
    sqz_shape in = {4, {1, 1, 28, 28}};
    assert_int_equal(sqzc_calib_set_check_input(&s, &in, err, sizeof err), 0);
    for (int i = 0; i < s.n_items; i++) assert_non_null(strstr(s.items[i].path, "/train"));
    float x[784];
    assert_int_equal(sqzc_calib_set_load(&s, 7, &in, x, err, sizeof err), 0);
    image img;
    assert_int_equal(image_read_png(s.items[7].path, &img, err, sizeof err), 0);
    for (int i = 0; i < 784; i++)
        assert_float_equal(x[i], (img.data[i] / 255.0f - 0.286f) / 0.353f, 1e-5);
    image_free(&img);
    sqzc_calib_set_free(&s);
}

/* A set whose bad image is found only when a calibration batch loads it
 * (read without decoding: the header passes): the quantization fails naming
 * the first bad file in manifest order, whichever thread's batch holds it
 * (thread 1's first batch; two bad batches; the last image of thread 0's
 * batch and the first of thread 1's, which may fail together), and the
 * other thread stops instead of waiting for the failed batch's statistics
 * (a hang otherwise). */
/* the reference LeNet-5, imported (batch 1) and optimized as sqz quant does */
static sqzc_graph *load_lenet5(void) {
    char model[1024], err[512];
    snprintf(model, sizeof model, "%s/tools/models/lenet5.onnx", tu_source_dir());
    sqzc_graph *g = NULL;
    sqzc_import_options io;
    memset(&io, 0, sizeof io);
    io.default_batch = 1;
    if (sqzc_import_onnx(model, &io, &g, err, sizeof err) != 0 ||
        sqzc_optimize(g, err, sizeof err) != 0)
        fail_msg("%s: %s", model, err);
    return g;
}

static void test_load_error_threads(void **state) {
    (void)state;
    char line[64];
    /* a committed image and a truncated copy (IHDR intact) */
    char png[1100];
    snprintf(png, sizeof png, "%s/calib-data/fashion-mnist/images/train00006_c7.png",
             tu_source_dir());
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 100);
    char *dst = tmp_path("cut.png");
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, 60, f), 60);
    assert_int_equal(fclose(f), 0);
    free(dst);
    dst = tmp_path("good.png");
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(dst);
    static const int bad_at[][2] = {{40, -1}, {70, 10}, {32, 31}}; /* lines (0-based) */
    for (int c = 0; c < 3; c++) {
        char text[160 * 16];
        snprintf(text, sizeof text, "color: gray\n");
        for (int i = 0; i < 160; i++) {
            const int bad = i == bad_at[c][0] || i == bad_at[c][1];
            snprintf(line, sizeof line, "%s.png\n", bad ? "cut" : "good");
            strcat(text, line);
        }
        write_text("late.txt", text);
        sqzc_calib_set s;
        char err[512];
        assert_int_equal(read_set("late.txt", &s, err, sizeof err), 0);
        sqzc_graph *g = load_lenet5();
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.num_threads = 2;
        o.method = SQZC_QM_MINMAX;
        assert_int_not_equal(sqzc_quantize(g, &s, &o, NULL, err, sizeof err), 0);
        int first = bad_at[c][1] >= 0 && bad_at[c][1] < bad_at[c][0] ? bad_at[c][1] : bad_at[c][0];
        char want[64];
        snprintf(want, sizeof want, "late.txt:%d:", first + 2);
        if (!strstr(err, want) || !strstr(err, "bad PNG")) fail_msg("error: %s", err);
        sqzc_graph_free(g);
        sqzc_calib_set_free(&s);
    }
}

/* A set whose checks are pending (sqzc_calib_set_parse, as sqz quant hands
 * it to the quantizer): loads on two threads check the items they need
 * first, or wait for the thread checking them. The values equal a checked
 * set's (images decoded at the check or at the load); the load of a batch
 * holding a missing file fails (none waits forever on an item a thread
 * skipped after the failure); the set's error is its first bad file; and
 * sqzc_quantize on such a set fails with that message on 1 and 2 threads. */
static void test_pending_loads(void **state) {
    (void)state;
    enum { NI = 61, SIDE = 28, B = 4, BAD = 37 };
    char ok[NI * 16], bad[NI * 16];
    ok[0] = bad[0] = '\0';
    for (int i = 0; i < NI; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%02d.png", i);
        write_png_noise(name, SIDE, SIDE, 100u + (unsigned)i);
        strcat(ok, name);
        strcat(ok, "\n");
        strcat(bad, i == BAD ? "missing.png" : name);
        strcat(bad, "\n");
    }
    write_text("pend_ok.txt", ok);
    write_text("pend_bad.txt", bad);
    char err[512], *pok = tmp_path("pend_ok.txt"), *pbad = tmp_path("pend_bad.txt");
    sqzc_calib_set ref, s;
    assert_int_equal(read_set("pend_ok.txt", &ref, err, sizeof err), 0);
    const sqz_shape in = {4, {1, 1, SIDE, SIDE}};
    const size_t per = SIDE * SIDE;
    float *x0 = malloc(sizeof *x0 * NI * per), *x1 = malloc(sizeof *x1 * NI * per);
    assert_non_null(x0);
    assert_non_null(x1);
    assert_int_equal(sqzc_calib_set_load_many(&ref, 0, NI, &in, x0, err, sizeof err), 0);
    const int nb = (NI + B - 1) / B;
    int rc[(NI + B - 1) / B];
    for (int threads = 1; threads <= 2; threads++)
        for (int dec = 0; dec < 2; dec++)
            for (int which = 0; which < 2; which++) {
                assert_int_equal(sqzc_calib_set_parse(which ? pbad : pok,
                                                      dec ? (size_t)64 << 20 : 0, &s, err,
                                                      sizeof err),
                                 0);
                assert_true(sqzc_calib_set_pending(&s));
                memset(x1, 0, sizeof *x1 * NI * per);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(threads)
#endif
                for (int k = 0; k < nb; k++) {
                    char e[256];
                    const int cnt = NI - k * B < B ? NI - k * B : B;
                    rc[k] = sqzc_calib_set_load_many(&s, k * B, cnt, &in, x1 + (size_t)k * B * per,
                                                     e, sizeof e);
                }
                for (int k = 0; k < nb; k++) {
                    const int cnt = NI - k * B < B ? NI - k * B : B;
                    if (which && k * B + cnt > BAD) {
                        if (k * B <= BAD) assert_int_not_equal(rc[k], 0);
                        continue; /* after the bad file: checked or not, by timing */
                    }
                    assert_int_equal(rc[k], 0);
                    assert_memory_equal(x0 + (size_t)k * B * per, x1 + (size_t)k * B * per,
                                        sizeof *x0 * (size_t)cnt * per);
                }
                if (which) {
                    assert_int_not_equal(sqzc_calib_set_check_finish(&s, err, sizeof err), 0);
                    if (!strstr(err, "pend_bad.txt:38:") || !strstr(err, "cannot open"))
                        fail_msg("error: %s", err);
                } else {
                    assert_int_equal(sqzc_calib_set_check_finish(&s, err, sizeof err), 0);
                }
                sqzc_calib_set_free(&s);
            }
    /* through the quantizer */
    for (int threads = 1; threads <= 2; threads++) {
        sqzc_graph *g = load_lenet5();
        assert_int_equal(sqzc_calib_set_parse(pbad, (size_t)64 << 20, &s, err, sizeof err), 0);
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.num_threads = threads;
        o.method = SQZC_QM_MINMAX;
        o.batch = B;
        assert_int_not_equal(sqzc_quantize(g, &s, &o, NULL, err, sizeof err), 0);
        if (!strstr(err, "pend_bad.txt:38:") || !strstr(err, "cannot open"))
            fail_msg("threads %d: error: %s", threads, err);
        sqzc_graph_free(g);
        sqzc_calib_set_free(&s);
    }
    sqzc_calib_set_free(&ref);
    free(x0);
    free(x1);
    free(pok);
    free(pbad);
}

/* ---- statistics and range methods ---- */

static void observe(sqzc_qstat *s, const float *x, size_t n) {
    sqzc_qstat_init(s);
    for (size_t i = 0; i < n; i += 1000) sqzc_qstat_add(s, x + i, n - i < 1000 ? n - i : 1000);
    assert_int_equal(sqzc_qstat_begin_hist(s), 0);
    for (size_t i = 0; i < n; i += 777) sqzc_qstat_add(s, x + i, n - i < 777 ? n - i : 777);
}

/* The (SSE2 + 4 sub-histogram) statistics against a naive scalar twin of the
 * documented binning: min / max, zeros, and every bin, on values with
 * zeros, exact bin edges, the range ends, NaN, +-inf, odd lengths. */
static void test_hist_exact(void **state) {
    (void)state;
    enum { N = 5003 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    tu_rng g;
    tu_rng_seed(&g, 77);
    for (int it = 0; it < 6; it++) {
        for (int i = 0; i < N; i++) {
            uint32_t k = tu_rng_u32(&g) % 16;
            x[i] = k == 0   ? 0.0f
                   : k == 1 ? (float)((int)(tu_rng_u32(&g) % 64) - 32) / 8.0f /* edges */
                   : k == 2 ? NAN
                   : k == 3 ? (it & 1 ? INFINITY : -INFINITY)
                            : tu_rng_uniform(&g, it == 2 ? 0.0f : -4.0f, 3.0f);
        }
        x[0] = it == 2 ? 0.0f : -4.0f; /* the ends themselves */
        x[1] = 3.0f;
        sqzc_qstat s;
        size_t n = N - (size_t)it; /* vector tails */
        sqzc_qstat_init(&s);
        sqzc_qstat_add(&s, x, n);
        double mn = 0, mx = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(x[i])) {
                mn = x[i] < mn ? x[i] : mn;
                mx = x[i] > mx ? x[i] : mx;
            }
        assert_true(s.min == mn && s.max == mx);
        assert_int_equal(sqzc_qstat_begin_hist(&s), 0);
        sqzc_qstat_add(&s, x, n);
        uint64_t *pos = calloc(SQZC_QHIST_BINS, 8), *neg = calloc(SQZC_QHIST_BINS, 8), zeros = 0;
        assert_true(pos && neg);
        const float ip = mx > 0 ? (float)(SQZC_QHIST_BINS / mx) : 0.0f;
        const float in = mn < 0 ? (float)(SQZC_QHIST_BINS / -mn) : 0.0f;
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            zeros += v == 0;
            if (!isfinite(v) || v == 0) continue;
            float b = fabsf(v) * (v < 0 ? in : ip);
            int j = b < (float)(SQZC_QHIST_BINS - 1) ? (int)b : SQZC_QHIST_BINS - 1;
            (v < 0 ? neg : pos)[j]++;
        }
        assert_int_equal(s.zeros, zeros);
        assert_memory_equal(s.pos, pos, SQZC_QHIST_BINS * 8);
        assert_memory_equal(s.neg, neg, SQZC_QHIST_BINS * 8);
        free(pos);
        free(neg);
        sqzc_qstat_free(&s);
    }
    free(x);
}

/* One pass (range and histogram together, widths grown by merging bins)
 * against the two-pass histogram on data whose range grows chunk by chunk
 * (so the fine bins are merged several times), with zeros, NaN / inf and
 * both signs: min / max / zeros / totals equal; every value lands within one
 * bin of its two-pass bin, so each cumulative count differs by at most the
 * two bins around the cut; the chosen ranges of each method stay close
 * (minmax: equal). */
static void test_hist_one_pass(void **state) {
    (void)state;
    enum { N = 120000, NB = SQZC_QHIST_BINS };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    tu_rng g;
    tu_rng_seed(&g, 99);
    for (int it = 0; it < 3; it++) {
        for (int i = 0; i < N; i++) {
            uint32_t k = tu_rng_u32(&g) % 32;
            float grow = 0.01f + 4.0f * (float)i / N; /* the range grows along the data */
            float a = tu_rng_uniform(&g, 1e-7f, 1.0f), b = tu_rng_uniform(&g, 0.0f, 6.2831853f);
            float v = grow * sqrtf(-2.0f * logf(a)) * cosf(b);
            x[i] = k == 0 ? 0.0f : k == 1 ? NAN : k == 2 ? INFINITY : v;
            if (it == 1 && x[i] < 0) x[i] = 0; /* ReLU-like: one side only */
        }
        sqzc_qstat one, two;
        sqzc_qstat_init(&one);
        assert_int_equal(sqzc_qstat_begin_one_pass(&one), 0);
        for (size_t i = 0; i < N; i += 999) sqzc_qstat_add(&one, x + i, N - i < 999 ? N - i : 999);
        assert_int_equal(sqzc_qstat_end_one_pass(&one), 0);
        observe(&two, x, N);
        assert_true(one.min == two.min && one.max == two.max);
        assert_int_equal(one.zeros, two.zeros);
        assert_int_equal(one.count, two.count);
        assert_int_equal(one.pass, 2);
        for (int side = 0; side < 2; side++) {
            const uint64_t *h1 = side ? one.pos : one.neg, *h2 = side ? two.pos : two.neg;
            uint64_t c1 = 0, c2 = 0;
            for (int k = 0; k < NB; k++) {
                uint64_t slack = h2[k] + (k > 0 ? h2[k - 1] : 0);
                uint64_t d = c1 > c2 ? c1 - c2 : c2 - c1;
                if (d > slack)
                    fail_msg("it %d side %d bin %d: cum %llu vs %llu", it, side, k,
                             (unsigned long long)c1, (unsigned long long)c2);
                c1 += h1[k];
                c2 += h2[k];
            }
            assert_int_equal(c1, c2);
        }
        for (int m = SQZC_QM_MINMAX; m <= SQZC_QM_MSE; m++) {
            double lo1, hi1, lo2, hi2;
            sqzc_qstat_range(&one, m, 99.99, &lo1, &hi1);
            sqzc_qstat_range(&two, m, 99.99, &lo2, &hi2);
            /* KL's divergence curve is flat near its minimum (its choice on
             * the ReLU-like data moves by 10-20% of the range between two
             * samples of the same distribution): 10% */
            double span = two.max - two.min, tol = (m == SQZC_QM_KL ? 0.10 : 0.01) * span;
            if (m == SQZC_QM_MINMAX) tol = 0;
            if (fabs(hi1 - hi2) > tol || fabs(lo1 - lo2) > tol)
                fail_msg("it %d method %d: one pass [%g, %g], two passes [%g, %g]", it, m, lo1, hi1,
                         lo2, hi2);
        }
        sqzc_qstat_free(&one);
        sqzc_qstat_free(&two);
    }
    free(x);
}

static void test_ranges(void **state) {
    (void)state;
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    tu_rng r;
    tu_rng_seed(&r, 7);
    /* uniform [-1, 3]: every method keeps (nearly) the whole range */
    tu_fill_uniform(&r, x, N, -1.0f, 3.0f);
    sqzc_qstat s;
    observe(&s, x, N);
    assert_int_equal(s.count, N);
    assert_true(s.min >= -1.0 && s.min < -0.999 && s.max <= 3.0 && s.max > 2.999);
    double lo, hi;
    sqzc_qstat_range(&s, SQZC_QM_MINMAX, 0, &lo, &hi);
    assert_float_equal(lo, s.min, 1e-9);
    assert_float_equal(hi, s.max, 1e-9);
    for (int m = SQZC_QM_PERCENTILE; m <= SQZC_QM_MSE; m++) {
        sqzc_qstat_range(&s, m, 99.99, &lo, &hi);
        if (!(hi > 2.9 && lo < -0.96))
            fail_msg("method %d: [%g, %g] on uniform [-1, 3]", m, lo, hi);
    }
    sqzc_qstat_free(&s);
    /* Laplace(0, 1) with one outlier at 100 */
    for (int i = 0; i < N; i++) {
        float u = tu_rng_uniform(&r, -0.5f, 0.5f);
        x[i] = (u < 0 ? 1.0f : -1.0f) * logf(1.0f - 2.0f * fabsf(u) + 1e-12f);
    }
    x[N / 2] = 100.0f;
    observe(&s, x, N);
    sqzc_qstat_range(&s, SQZC_QM_MINMAX, 0, &lo, &hi);
    assert_float_equal(hi, 100.0, 1e-6);
    double clipped_mm = sqzc_qstat_clipped(&s, lo, hi);
    assert_float_equal(clipped_mm, 0.0, 0);
    /* 99.9% keeps |x| < ~ln(1000) = 6.9 on the negative side; the positive
     * side shrinks with it (proportional), well under 100 */
    sqzc_qstat_range(&s, SQZC_QM_PERCENTILE, 99.9, &lo, &hi);
    assert_true(hi < 100.0 && lo > s.min);
    double cl = sqzc_qstat_clipped(&s, lo, hi);
    if (!(cl <= 0.001 + 1e-9 && cl > 0)) fail_msg("percentile clipped %g", cl);
    /* entropy calibration clips the lone outlier (MSE, rightly, keeps it: one
     * value clipped by ~90 costs more than 200000 values at a 2x coarser step) */
    sqzc_qstat_range(&s, SQZC_QM_KL, 0, &lo, &hi);
    if (!(hi < 50.0 && hi > 3.0)) fail_msg("kl: hi %g on Laplace + outlier", hi);
    sqzc_qstat_free(&s);
    /* MSE optimum vs brute force: for N(0,1)-like data, the chosen range
     * has lower simulated quantization error than minmax and a 2x wider one */
    for (int i = 0; i < N; i++) {
        float a = tu_rng_uniform(&r, 1e-7f, 1.0f), b = tu_rng_uniform(&r, 0.0f, 6.2831853f);
        x[i] = sqrtf(-2.0f * logf(a)) * cosf(b);
    }
    observe(&s, x, N);
    double cand[3][2];
    sqzc_qstat_range(&s, SQZC_QM_MSE, 0, &cand[0][0], &cand[0][1]);
    sqzc_qstat_range(&s, SQZC_QM_MINMAX, 0, &cand[1][0], &cand[1][1]);
    cand[2][0] = cand[0][0] * 2;
    cand[2][1] = cand[0][1] * 2;
    double err[3];
    for (int c = 0; c < 3; c++) {
        float sc;
        int32_t zp;
        sqzc_qparams_from_range(cand[c][0], cand[c][1], &sc, &zp);
        double e = 0;
        for (int i = 0; i < N; i++) {
            float q = sc * (float)(sqzc_quantize_value(x[i], sc, zp) - zp);
            e += (double)(q - x[i]) * (q - x[i]);
        }
        err[c] = e;
    }
    if (!(err[0] < err[1] && err[0] < err[2]))
        fail_msg("mse range error %g vs minmax %g vs 2x %g", err[0], err[1], err[2]);
    sqzc_qstat_free(&s);
    free(x);
}

/* KL(P || Q) of candidate k by its definition, bin by bin (the reference of
 * range.c's prefix-sum search): the 2k merged bins (neg side reversed, then
 * pos), tails added to the edge bins; Q: each int8 level's count spread over
 * its non-empty bins, 1e-4 / m where P has mass and Q none. */
static double kl_naive(const sqzc_qstat *s, int k) {
    const double wp = s->max / SQZC_QHIST_BINS, wn = -s->min / SQZC_QHIST_BINS;
    const int has_neg = s->min<0, has_pos = s->max> 0, hn = has_neg ? k : 0;
    const int m = hn + (has_pos ? k : 0);
    const double lo = -k * wn, sc = (k * wp - lo) / 255.0;
    double *p = calloc((size_t)m, sizeof *p), *cnt = calloc((size_t)m, sizeof *cnt);
    int *lev = calloc((size_t)m, sizeof *lev);
    assert_true(p && cnt && lev);
    for (int u = 0; u < m; u++) {
        const int neg = u < hn, j = neg ? k - 1 - u : u - hn;
        const double x = neg ? -(j + 0.5) * wn : (j + 0.5) * wp;
        cnt[u] = (double)(neg ? s->neg[j] : s->pos[j]);
        p[u] = cnt[u];
        lev[u] = (int)floor((x - lo) / sc + 0.5);
    }
    for (int j = k; j < SQZC_QHIST_BINS; j++) {
        if (has_neg) p[0] += (double)s->neg[j];
        if (has_pos) p[m - 1] += (double)s->pos[j];
    }
    double sp = 0, sq = 0, kl = 0;
    for (int u = 0; u < m; u++) sp += p[u], sq += cnt[u];
    for (int a = 0; a < m;) {
        int b = a;
        while (b + 1 < m && lev[b + 1] == lev[a]) b++;
        double sum = 0, nz = 0;
        for (int u = a; u <= b; u++) sum += cnt[u], nz += cnt[u] > 0;
        for (int u = a; u <= b; u++) {
            if (p[u] <= 0) continue;
            double q = cnt[u] > 0 ? sum / nz / sq : 1e-4 / m;
            kl += p[u] / sp * log(p[u] / sp / q);
        }
        a = b + 1;
    }
    free(p);
    free(cnt);
    free(lev);
    return kl;
}

/* sqzc_qstat_range(KL) against the definition on random histograms (both
 * signs, ReLU-like, heavy tails, sparse ones with empty bins): the same k
 * as the naive search over the same candidates (every 8 bins from 128 / 256
 * a side, then every bin within 7 of the best), or one whose divergence
 * differs from the naive best's by rounding only */
/* sqzc_qstat_copy: the copy's state and answers are the source's, in each
 * mode (pass 1, pass 2, one pass before and after its end), and it owns its
 * arrays (the source freed first) */
static void test_qstat_copy(void **state) {
    (void)state;
    float x[3001];
    for (int i = 0; i < 3001; i++) x[i] = (float)((i * 37 % 1001) - 300) / 97.0f;
    for (int mode = 0; mode < 4; mode++) {
        sqzc_qstat s, c;
        sqzc_qstat_init(&s);
        sqzc_qstat_init(&c);
        if (mode >= 2) assert_int_equal(sqzc_qstat_begin_one_pass(&s), 0);
        sqzc_qstat_add(&s, x, 3001);
        if (mode == 1) {
            assert_int_equal(sqzc_qstat_begin_hist(&s), 0);
            sqzc_qstat_add(&s, x, 3001);
        }
        assert_int_equal(sqzc_qstat_copy(&c, &s), 0);
        if (mode == 2) { /* unfinished: both end alike */
            assert_int_equal(sqzc_qstat_end_one_pass(&s), 0);
            assert_int_equal(sqzc_qstat_end_one_pass(&c), 0);
        }
        if (mode == 3) {
            assert_int_equal(sqzc_qstat_end_one_pass(&s), 0);
            assert_int_equal(sqzc_qstat_copy(&c, &s), 0); /* over a copy */
        }
        assert_true(c.min == s.min && c.max == s.max);
        assert_int_equal(c.count, s.count);
        assert_int_equal(c.zeros, s.zeros);
        assert_int_equal(c.pass, s.pass);
        if (s.pos) {
            assert_true(c.pos != s.pos && c.neg != s.neg);
            assert_memory_equal(c.pos, s.pos, SQZC_QHIST_BINS * sizeof *s.pos);
            assert_memory_equal(c.neg, s.neg, SQZC_QHIST_BINS * sizeof *s.neg);
        }
        double l0, h0, l1, h1;
        sqzc_qstat_range(&s, mode ? SQZC_QM_KL : SQZC_QM_MINMAX, 0, &l0, &h0);
        sqzc_qstat_free(&s);
        sqzc_qstat_range(&c, mode ? SQZC_QM_KL : SQZC_QM_MINMAX, 0, &l1, &h1);
        assert_true(l0 == l1 && h0 == h1);
        assert_true(h1 > 0 && l1 < 0);
        sqzc_qstat_free(&c);
    }
}

static void test_kl_reference(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    for (int trial = 0; trial < 12; trial++) {
        sqzc_qstat s;
        sqzc_qstat_init(&s);
        assert_int_equal(sqzc_qstat_begin_hist(&s), 0);
        const int signed_ = trial % 3 != 1, sparse = trial % 4 == 3;
        s.max = 1.0 + trial;
        s.min = signed_ ? -0.5 * (1 + trial % 5) : 0.0;
        const double decay = 0.002 + 0.001 * trial;
        for (int j = 0; j < SQZC_QHIST_BINS; j++) {
            double e = 1e6 * exp(-decay * j) * tu_rng_uniform(&r, 0.5f, 1.5f);
            s.pos[j] = sparse && (tu_rng_u32(&r) & 3) ? 0 : (uint64_t)e;
            if (signed_) s.neg[j] = sparse && (tu_rng_u32(&r) & 1) ? 0 : (uint64_t)(0.3 * e);
        }
        s.pos[SQZC_QHIST_BINS - 1] += 50; /* outliers at the ends */
        if (signed_) s.neg[SQZC_QHIST_BINS - 1] += 20;
        s.zeros = 1000;
        double lo, hi;
        sqzc_qstat_range(&s, SQZC_QM_KL, 0, &lo, &hi);
        const int k = (int)lround(hi / s.max * SQZC_QHIST_BINS);
        assert_true(k >= 128 && k <= SQZC_QHIST_BINS);
        const int kmin = signed_ ? 128 : 256;
        int bk = SQZC_QHIST_BINS;
        double best = INFINITY;
        for (int c = kmin; c <= SQZC_QHIST_BINS; c += 8) {
            double v = kl_naive(&s, c);
            if (v < best) best = v, bk = c;
        }
        const int c0 = bk;
        for (int c = c0 - 7 < kmin ? kmin : c0 - 7; c <= c0 + 7 && c <= SQZC_QHIST_BINS; c++) {
            double v = kl_naive(&s, c);
            if (v < best) best = v, bk = c;
        }
        const double got = kl_naive(&s, k);
        if (k != bk && !(fabs(got - best) <= 1e-9 * fabs(best)))
            fail_msg("trial %d: kl chose k %d (KL %.12g), the definition k %d (KL %.12g)", trial, k,
                     got, bk, best);
        sqzc_qstat_free(&s);
    }
}

/* sqzc_qstat_kl (the search's divergence: int8 levels found from the bins by
 * products and a margin, the division only near a level edge) against the
 * definition for every candidate k, on histograms whose bin centres sit on
 * level edges for some k (one-sided: k = 255 puts every bin centre on one;
 * two-sided with equal sides: k = 255 / 2 multiples), and on uneven ones */
static void test_kl_every_k(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 91);
    /* max / min: one-sided, equal sides, and uneven sides either way (the
     * level that holds 0 spans bins of both widths) */
    static const double mx[] = {1.0, 3.7, 1.0, 3.7, 0.3, 5.0},
                        mn[] = {0, 0, -1.0, -1.3, -2.9, -0.2};
    for (int trial = 0; trial < 6; trial++) {
        sqzc_qstat s;
        sqzc_qstat_init(&s);
        assert_int_equal(sqzc_qstat_begin_hist(&s), 0);
        const int signed_ = trial >= 2;
        s.max = mx[trial];
        s.min = mn[trial];
        for (int j = 0; j < SQZC_QHIST_BINS; j++) {
            double e = 1e5 * exp(-0.003 * j) * tu_rng_uniform(&r, 0.5f, 1.5f);
            s.pos[j] = (uint64_t)e + 1;
            if (signed_) s.neg[j] = (uint64_t)(0.5 * e) + 1;
        }
        s.zeros = 100;
        /* (1e-12: the prefix sums' cancellation where the divergence is
         * tiny, k = 1; a bin in the wrong level moves it by 1e-6 or more) */
        for (int k = 1; k <= SQZC_QHIST_BINS; k++) {
            const double got = sqzc_qstat_kl(&s, k), want = kl_naive(&s, k);
            if (!(fabs(got - want) <= 1e-9 * fabs(want) + 1e-12))
                fail_msg("trial %d k %d: KL %.15g, definition %.15g", trial, k, got, want);
        }
        sqzc_qstat_free(&s);
    }
}

/* pick_kl's sweep (every 8th k from 128 / 256, then +-7 around the best)
 * over sqzc_qstat_kl's divergences: the range the search must choose */
static double kl_pick_ref(const sqzc_qstat *s) {
    const int kmin = (s->min < 0 && s->max > 0) ? 128 : 256;
    double best = INFINITY;
    int bestk = SQZC_QHIST_BINS;
    for (int k = kmin; k <= SQZC_QHIST_BINS; k += 8) {
        const double kl = sqzc_qstat_kl(s, k);
        if (kl < best) best = kl, bestk = k;
    }
    const int c = bestk;
    for (int k = c - 7 < kmin ? kmin : c - 7; k <= c + 7 && k <= SQZC_QHIST_BINS; k++) {
        const double kl = sqzc_qstat_kl(s, k);
        if (kl < best) best = kl, bestk = k;
    }
    return s->max * bestk / SQZC_QHIST_BINS;
}

/* The KL search's SIMD level starts (x86 AVX2) against the scalar loops,
 * and its table of logs against log() each time: every candidate's
 * divergence bit for bit, and the range chosen, on histograms that are
 * smooth, sparse (empty bins, repeated counts: the table's hits), one- and
 * two-sided with uneven sides, and with bin centres on level edges
 * (max = 1, -1: the exact checks). */
static void test_kl_simd_twin(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 17);
    static const double mx[] = {1.0, 3.7, 1.0, 3.7, 0.3, 5.0, 1.0, 2.5},
                        mn[] = {0, 0, -1.0, -1.3, -2.9, -0.2, 0, -0.7};
    for (int trial = 0; trial < 8; trial++) {
        sqzc_qstat s;
        sqzc_qstat_init(&s);
        assert_int_equal(sqzc_qstat_begin_hist(&s), 0);
        s.max = mx[trial];
        s.min = mn[trial];
        for (int j = 0; j < SQZC_QHIST_BINS; j++) {
            double e = 1e5 * exp(-0.003 * j) * tu_rng_uniform(&r, 0.5f, 1.5f);
            if (trial >= 6) /* sparse: small repeated counts, runs of empty bins */
                e = tu_rng_uniform(&r, 0.0f, 1.0f) < 0.4f ? 0 : (double)(j % 5) * (j < 900);
            s.pos[j] = (uint64_t)e + (trial < 6);
            if (s.min < 0) s.neg[j] = (uint64_t)(0.5 * e) + (trial < 6);
        }
        s.zeros = 100;
        for (int k = 1; k <= SQZC_QHIST_BINS; k++) {
            sqzc_qstat_kl_simd(1);
            const double a = sqzc_qstat_kl(&s, k);
            sqzc_qstat_kl_simd(0);
            const double b = sqzc_qstat_kl(&s, k);
            if (memcmp(&a, &b, sizeof a) != 0)
                fail_msg("trial %d k %d: KL %.17g with SIMD starts, %.17g scalar", trial, k, a, b);
        }
        const double want = kl_pick_ref(&s);
        for (int simd = 0; simd < 2; simd++) {
            sqzc_qstat_kl_simd(simd);
            double lo, hi;
            sqzc_qstat_range(&s, SQZC_QM_KL, 99.99, &lo, &hi);
            if (hi != want)
                fail_msg("trial %d simd %d: hi %.17g, sweep %.17g", trial, simd, hi, want);
        }
        sqzc_qstat_kl_simd(1);
        sqzc_qstat_free(&s);
    }
}

static void test_qparams(void **state) {
    (void)state;
    float s;
    int32_t zp;
    sqzc_qparams_from_range(0.0, 6.0, &s, &zp);
    assert_int_equal(zp, -128);
    assert_float_equal(s, 6.0f / 255.0f, 1e-9);
    assert_int_equal(sqzc_quantize_value(0.0f, s, zp), -128);
    assert_int_equal(sqzc_quantize_value(6.0f, s, zp), 127);
    assert_int_equal(sqzc_quantize_value(7.0f, s, zp), 127);
    sqzc_qparams_from_range(-2.0, 2.0, &s, &zp);
    assert_int_equal(zp, 0);
    sqzc_qparams_from_range(-1.0, 3.0, &s, &zp);
    assert_int_equal(zp, -64); /* -128 + 1 / (4 / 255) = -64.25 */
    assert_int_equal(sqzc_quantize_value(0.0f, s, zp), -64);
    /* a positive-only range still contains 0 exactly */
    sqzc_qparams_from_range(2.0, 5.0, &s, &zp);
    assert_int_equal(zp, -128);
    assert_float_equal(s, 5.0f / 255.0f, 1e-9);
    /* ties to even, as QuantizeLinear */
    assert_int_equal(sqzc_quantize_value(2.5f, 1.0f, 0), 2);
    assert_int_equal(sqzc_quantize_value(-3.5f, 1.0f, 0), -4);
    assert_int_equal(sqzc_quantize_value(NAN, 1.0f, 0), -128);
    assert_int_equal(sqzc_qmethod_parse("kl"), SQZC_QM_KL);
    assert_int_equal(sqzc_qmethod_parse("entropy"), -1);
    assert_string_equal(sqzc_qmethod_name(SQZC_QM_MSE), "mse");
}

/* ---- IR and writer: int8 / int32 constants and quant params ---- */
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rdvar(const uint8_t **p) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    return v;
}

static void test_writer_int8(void **state) {
    (void)state;
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int w = sqzc_tensor_get_or_add(g, "w");
    sqz_shape ws = {2, {2, 3}};
    const int8_t wv[6] = {-127, 0, 5, 127, -1, 2};
    assert_int_equal(sqzc_tensor_set_i8(g, w, &ws, wv), 0);
    const float sc[2] = {0.5f, 0.25f};
    const int32_t z[2] = {0, 0};
    assert_int_equal(sqzc_tensor_set_qparams(g, w, SQZC_Q_CHANNEL, 0, 2, sc, z), 0);
    assert_true(sqzc_tensor_is_const(g, w));
    int b = sqzc_tensor_get_or_add(g, "b");
    sqz_shape bs = {1, {2}};
    const int32_t bv[2] = {-70000, 123};
    assert_int_equal(sqzc_tensor_set_i32(g, b, &bs, bv), 0);
    assert_int_equal(sqzc_tensor_set_qparams(g, b, SQZC_Q_CHANNEL, 0, 2, sc, z), 0);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].dtype = SQZC_I8;
    g->tensors[x].shape = (sqz_shape){2, {1, 3}};
    g->tensors[x].has_shape = 1;
    const float xs = 0.1f;
    const int32_t xz = -5;
    assert_int_equal(sqzc_tensor_set_qparams(g, x, SQZC_Q_TENSOR, 0, 1, &xs, &xz), 0);
    uint8_t *buf;
    size_t size;
    char err[256];
    g->keep_names = 1;
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    /* find the TENSORS section and walk its records (sqz/format.h v2) */
    uint32_t ns = rd32(buf + 16);
    const uint8_t *ten = NULL, *data = NULL, *strs = NULL;
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = buf + SQZ_HEADER_BYTES + i * SQZ_SECTION_ENTRY_BYTES;
        uint64_t off = rd32(e + 8) | (uint64_t)rd32(e + 12) << 32;
        if (rd32(e) == SQZ_SEC_TENSORS) ten = buf + off;
        if (rd32(e) == SQZ_SEC_DATA) data = buf + off;
        if (rd32(e) == SQZ_SEC_STRINGS) strs = buf + off;
    }
    assert_non_null(ten);
    assert_non_null(data);
    const uint8_t *p = ten;
    assert_int_equal(rdvar(&p), 3);
    uint64_t doff = 0;
    for (int t = 0; t < 3; t++) {
        const char *name = (const char *)strs + rdvar(&p);
        uint8_t dt = p[0], enc = p[1], fl = p[2], ndim = p[3];
        p += 4;
        for (int d = 0; d < ndim; d++) (void)rdvar(&p);
        uint8_t qk = *p++;
        uint8_t qa = qk ? *p++ : 0;
        const uint8_t *sp = p;
        if (strcmp(name, "w") == 0) {
            assert_int_equal(dt, SQZ_DT_I8);
            assert_int_equal(fl & SQZ_TF_CONST, SQZ_TF_CONST);
            /* symmetric per channel: no zero points; 0.5 / 0.25 are f16-exact */
            assert_int_equal(qk, SQZ_QUANT_PER_CHANNEL_SYM | SQZ_QF_F16_SCALES);
            assert_int_equal(qa, 0);
            assert_int_equal(sp[2] | sp[3] << 8, 0x3400); /* 0.25 in f16 */
            p += 4;
            uint64_t dsz = rdvar(&p);
            assert_int_equal(enc, SQZ_ENC_RAW); /* 6 bytes: Huffman does not pay */
            assert_int_equal(dsz, 6);
            assert_memory_equal(data + doff, wv, 6);
            doff += dsz;
        } else if (strcmp(name, "b") == 0) {
            assert_int_equal(dt, SQZ_DT_I32);
            assert_int_equal(qk, SQZ_QUANT_PER_CHANNEL_SYM | SQZ_QF_F16_SCALES);
            p += 4;
            uint64_t dsz = rdvar(&p);
            /* zigzag varints: -70000 -> 139999 (3 bytes), 123 -> 246 (2 bytes) */
            assert_int_equal(enc, SQZ_ENC_VARINT);
            assert_int_equal(dsz, 5);
            const uint8_t *q = data + doff;
            assert_int_equal(rdvar(&q), 139999);
            assert_int_equal(rdvar(&q), 246);
            doff += dsz;
        } else {
            assert_string_equal(name, "x");
            assert_int_equal(dt, SQZ_DT_I8);
            assert_int_equal(fl & SQZ_TF_CONST, 0);
            assert_int_equal(qk, SQZ_QUANT_PER_TENSOR); /* 0.1 is not f16-exact: f32 */
            float f;
            memcpy(&f, sp, 4);
            assert_float_equal(f, 0.1f, 0);
            p += 4;
            assert_int_equal(rdvar(&p), 9); /* zigzag(-5) */
        }
    }
    free(buf);
    /* per-channel params that do not fit the shape are refused by name */
    const float s3[3] = {1, 1, 1};
    const int32_t z3[3] = {0, 0, 0};
    assert_int_equal(sqzc_tensor_set_qparams(g, w, SQZC_Q_CHANNEL, 0, 3, s3, z3), 0);
    assert_int_not_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    assert_non_null(strstr(err, "'w'"));
    sqzc_graph_free(g);
}

/* ---- PNG fast path (image.c): the same result as libpng, success or error */
typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep d, size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void mem_flush(png_structp png) {
    (void)png;
}

/* a w x h PNG in memory: 8-bit gray (ch 1) or RGB (3), the given row filter
 * (PNG_FILTER_*), zlib level and IDAT size (small: several IDAT chunks) */
static membuf png_in_mem(int w, int h, int ch, int filter, int level, size_t idat, unsigned seed) {
    membuf m = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    uint8_t *row = malloc((size_t)w * (size_t)ch);
    assert_non_null(row);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, 0, filter);
    png_set_compression_level(png, level);
    png_set_compression_buffer_size(png, idat);
    png_write_info(png, info);
    unsigned r = seed;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w * ch; x++) {
            r = r * 1103515245u + 12345u;
            /* smooth with noise (every filter has something to predict),
             * every third row random bytes (Paeth's ties and wrap-around) */
            row[x] = (uint8_t)(y % 3 == 2 ? r >> 24 : x * 5 + y * 3 + ((r >> 16) & 15));
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return m;
}

/* both decoders on buf: same return, samples or message */
static void png_same(const uint8_t *buf, size_t len, int *n_ok) {
    image8 a, b;
    char ea[256] = "", eb[256] = "";
    image_png_fast(0);
    const int ra = image8_read_png_mem(buf, len, "x.png", &a, ea, sizeof ea);
    image_png_fast(1);
    const int rb = image8_read_png_mem(buf, len, "x.png", &b, eb, sizeof eb);
    assert_int_equal(ra, rb);
    if (ra == 0) {
        assert_int_equal(a.h, b.h);
        assert_int_equal(a.w, b.w);
        assert_int_equal(a.c, b.c);
        assert_memory_equal(a.data, b.data, (size_t)a.h * (size_t)a.w * (size_t)a.c);
        (*n_ok)++;
    } else {
        assert_string_equal(ea, eb);
    }
    image8_free(&a);
    image8_free(&b);
}

/* the CRCs of every whole chunk after byte 8 recomputed (a mutation then
 * reaches the chunk's contents) */
static void png_fix_crcs(uint8_t *b, size_t len) {
    size_t pos = 8;
    while (len - pos >= 12) {
        const uint32_t n = ((uint32_t)b[pos] << 24) | ((uint32_t)b[pos + 1] << 16) |
                           ((uint32_t)b[pos + 2] << 8) | b[pos + 3];
        if (n > len - pos - 12) return;
        const uint32_t c = (uint32_t)crc32(0, b + pos + 4, n + 4);
        for (int i = 0; i < 4; i++) b[pos + 8 + n + (size_t)i] = (uint8_t)(c >> (24 - 8 * i));
        pos += 12 + n;
    }
}

static void test_png_fast(void **state) {
    (void)state;
    static const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB,   PNG_FILTER_UP,
                                  PNG_FILTER_AVG,  PNG_FILTER_PAETH, PNG_ALL_FILTERS};
    static const int sizes[][2] = {{1, 1}, {28, 28}, {7, 5}, {33, 17}, {300, 2}, {2, 300}};
    int n_ok = 0;
    for (int ch = 1; ch <= 3; ch += 2)
        for (size_t f = 0; f < sizeof filters / sizeof *filters; f++)
            for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                const int level = (int)((f + z) % 3) * 4 + 1 - (z == 2); /* 0, 1, 5, 9 */
                membuf m = png_in_mem(sizes[z][0], sizes[z][1], ch, filters[f], level,
                                      z == 3 ? 37 : 8192, (unsigned)(f * 31 + z));
                png_same(m.p, m.n, &n_ok);
                /* the known samples, first row (gray, no noise for x = 0: y 0) */
                image8 im;
                char e[256];
                assert_int_equal(image8_read_png_mem(m.p, m.n, "x.png", &im, e, sizeof e), 0);
                assert_int_equal(im.h, sizes[z][1]);
                assert_int_equal(im.w, sizes[z][0]);
                assert_int_equal(im.c, ch);
                unsigned r = (unsigned)(f * 31 + z);
                r = r * 1103515245u + 12345u;
                assert_int_equal(im.data[0], (r >> 16) & 15);
                image8_free(&im);
                free(m.p);
            }
    /* every truncation, trailing bytes, and every byte of a few files flipped
     * (with their CRCs as written, and recomputed) */
    for (int k = 0; k < 4; k++) {
        membuf m = png_in_mem(k < 2 ? 28 : 9, k < 2 ? 28 : 4, k == 3 ? 3 : 1,
                              k == 0 ? PNG_FILTER_NONE : PNG_ALL_FILTERS, 6, k == 1 ? 64 : 8192,
                              (unsigned)k);
        uint8_t *b = malloc(m.n + 16);
        assert_non_null(b);
        for (size_t len = 0; len <= m.n; len++) png_same(m.p, len, &n_ok);
        memcpy(b, m.p, m.n);
        memset(b + m.n, 0, 16);
        png_same(b, m.n + 1, &n_ok);
        png_same(b, m.n + 16, &n_ok);
        for (size_t i = 8; i < m.n; i++)
            for (int fix = 0; fix < 2; fix++)
                for (int bit = 0; bit < 8; bit += 7) {
                    memcpy(b, m.p, m.n);
                    b[i] ^= (uint8_t)(1u << bit);
                    if (fix) png_fix_crcs(b, m.n);
                    png_same(b, m.n, &n_ok);
                }
        free(b);
        free(m.p);
    }
    /* a zlib stream whose header declares a 256-byte window, with matches
     * 301 bytes back (two equal random rows of 300): libpng's row by row
     * inflate fails it ("too far back"), so must the fast path */
    {
        uint8_t raw[2 * 301], z[1024], png[1200];
        unsigned r = 77;
        for (int y = 0; y < 2; y++) {
            raw[y * 301] = 0;
            for (int x = 0; x < 300; x++) {
                if (y == 0) r = r * 1103515245u + 12345u;
                raw[y * 301 + 1 + x] = y == 0 ? (uint8_t)(r >> 24) : raw[1 + x];
            }
        }
        uLongf zn = sizeof z;
        assert_int_equal(compress2(z, &zn, raw, sizeof raw, 9), Z_OK);
        for (int win = 0; win < 2; win++) {
            if (win) { /* CINFO 0 (256 bytes), FCHECK redone */
                z[0] = 0x08;
                z[1] = (uint8_t)(z[1] & 0xe0);
                z[1] = (uint8_t)(z[1] + (31 - (z[0] * 256 + z[1]) % 31) % 31);
            }
            static const uint8_t head[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0,
                                             0,    13,  'I', 'H', 'D',  'R',  0,    0,    1, 44,
                                             0,    0,   0,   2,   8,    0,    0,    0,    0};
            memcpy(png, head, 33);
            const uint8_t idat[8] = {(uint8_t)(zn >> 24),
                                     (uint8_t)(zn >> 16),
                                     (uint8_t)(zn >> 8),
                                     (uint8_t)zn,
                                     'I',
                                     'D',
                                     'A',
                                     'T'};
            memcpy(png + 33, idat, 8);
            memcpy(png + 41, z, zn);
            static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0, 0, 0, 0};
            memcpy(png + 45 + zn, iend, 12);
            const size_t len = 57 + zn;
            png_fix_crcs(png, len);
            image8 im;
            char e[256];
            image_png_fast(0);
            const int rc = image8_read_png_mem(png, len, "x.png", &im, e, sizeof e);
            assert_int_equal(rc, win ? -1 : 0);
            if (rc == 0) {
                assert_memory_equal(im.data, raw + 1, 300);
                assert_memory_equal(im.data + 300, raw + 1, 300);
                image8_free(&im);
            }
            png_same(png, len, &n_ok);
        }
    }
    /* an ancillary chunk, an empty IDAT: libpng decodes them (no fast path) */
    membuf m = png_in_mem(5, 3, 1, PNG_FILTER_SUB, 6, 8192, 9);
    uint8_t *b = malloc(m.n + 12);
    assert_non_null(b);
    static const uint8_t extra[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0, 0, 0, 0};
    memcpy(b, m.p, 33);
    memcpy(b + 33, extra, 12);
    memcpy(b + 45, m.p + 33, m.n - 33);
    png_fix_crcs(b, m.n + 12);
    png_same(b, m.n + 12, &n_ok);
    memcpy(b + 37, "sRGB", 4);
    png_fix_crcs(b, m.n + 12);
    png_same(b, m.n + 12, &n_ok);
    free(b);
    free(m.p);
    image_png_fast(1);
    assert_true(n_ok > 100);
}

int main(void) {
    g_dir = tu_make_temp_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_ok),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_decoded),
        cmocka_unit_test(test_committed_set),
        cmocka_unit_test(test_load_error_threads),
        cmocka_unit_test(test_pending_loads),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_hist_exact),
        cmocka_unit_test(test_hist_one_pass),
        cmocka_unit_test(test_qparams),
        cmocka_unit_test(test_qstat_copy),
        cmocka_unit_test(test_kl_reference),
        cmocka_unit_test(test_kl_every_k),
        cmocka_unit_test(test_kl_simd_twin),
        cmocka_unit_test(test_writer_int8),
        cmocka_unit_test(test_npy_batch),
        cmocka_unit_test(test_png_fast),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    free(g_dir);
    return rc;
}
