/* image.c - PNG loading (libpng) and preprocessing. */
#include "sqzc/image.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (UINT64_C(1) << 28)
#define IMAGE_MAX_FILE (UINT64_C(1) << 30)

void image_prep_init(image_prep *p) {
    memset(p, 0, sizeof *p);
    p->scale = 1.0f / 255.0f;
    for (int i = 0; i < 3; i++) {
        p->mean[i] = 0.0f;
        p->std[i] = 1.0f;
    }
    p->order = IMAGE_AUTO;
    p->layout = IMAGE_NCHW;
}

void image_free(image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

static int image_alloc(image *img, int h, int w, int c, char *err, size_t err_len) {
    memset(img, 0, sizeof *img);
    if (h < 1 || w < 1 || c < 1 || (uint64_t)h * (uint64_t)w > IMAGE_MAX_PIXELS) {
        snprintf(err, err_len, "bad image size %dx%d", h, w);
        return -1;
    }
    img->data = malloc((size_t)h * (size_t)w * (size_t)c * sizeof(float));
    if (!img->data) {
        snprintf(err, err_len, "out of memory for a %dx%d image", h, w);
        return -1;
    }
    img->h = h;
    img->w = w;
    img->c = c;
    return 0;
}

/* ---------------------------------------------------------------- PNG */
typedef struct png_err_ctx {
    char msg[200];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *e = png_get_error_ptr(png);
    if (e) snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* libpng reads from a memory buffer */
typedef struct png_mem {
    const uint8_t *p;
    size_t len, pos;
} png_mem;

static void png_mem_read(png_structp png, png_bytep out, size_t n) {
    png_mem *m = png_get_io_ptr(png);
    if (n > m->len - m->pos) png_error(png, "truncated file");
    memcpy(out, m->p + m->pos, n);
    m->pos += n;
}

/* libpng's and zlib's allocations for one decode (the read struct, info,
 * inflate state and window, row buffers: ~45 KB for a small image, a dozen
 * blocks) come from a block on the decoder's stack, bump-allocated, and
 * what does not fit from malloc. Calibration sets decode hundreds of small
 * PNGs on every thread, and sqz quant runs glibc with one heap arena
 * (M_ARENA_MAX 1): with malloc, the threads queued on its lock (500
 * Fashion-MNIST PNGs in memory, 2 threads: 1.2-1.4x the speed of one
 * instead of 2x). */
#define PNG_ARENA_BYTES ((size_t)64 << 10)
typedef struct png_arena {
    unsigned char *p;
    size_t used;
} png_arena;

static png_voidp arena_malloc(png_structp png, png_alloc_size_t n) {
    png_arena *a = png_get_mem_ptr(png);
    const size_t need = ((size_t)n + 15) & ~(size_t)15;
    if (n > 0 && need >= (size_t)n && need <= PNG_ARENA_BYTES - a->used) {
        void *r = a->p + a->used;
        a->used += need;
        return r;
    }
    return malloc(n ? (size_t)n : 1);
}

static void arena_free(png_structp png, png_voidp ptr) {
    const png_arena *a = png_get_mem_ptr(png);
    const uintptr_t u = (uintptr_t)ptr, lo = (uintptr_t)a->p;
    if (u >= lo && u - lo < PNG_ARENA_BYTES) return; /* the block goes with the decode */
    free(ptr);
}

/* Decode into *pix (h * w * ch samples of depth 8 or 16 bits, big-endian
 * pairs for 16); libpng allocates from *arena. */
static int png_decode_in(const uint8_t *buf, size_t len, const char *name, png_arena *arena,
                         uint8_t **pix_out, int *ph, int *pw, int *pch, int *pdepth, char *err,
                         size_t err_len) {
    *pix_out = NULL;
    if (len < 8 || png_sig_cmp(buf, 0, 8) != 0) {
        snprintf(err, err_len, "'%s' is not a PNG file", name);
        return -1;
    }
    png_err_ctx ectx;
    memset(&ectx, 0, sizeof ectx);
    png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &ectx, png_on_error,
                                               png_on_warning, arena, arena_malloc, arena_free);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    png_mem mem = {buf, len, 8};
    uint8_t *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, err_len, "bad PNG '%s': %s", name, ectx.msg);
        free(pix);
        png_free(png, rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_read_fn(png, &mem, png_mem_read);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int ctype = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* transparency is dropped: tRNS is not expanded and alpha channels are stripped */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    int d = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || (d != 8 && d != 16) || w < 1 || h < 1 ||
        (uint64_t)w * h > IMAGE_MAX_PIXELS ||
        rowbytes != (size_t)w * (size_t)ch * (size_t)(d / 8)) {
        snprintf(ectx.msg, sizeof ectx.msg, "unsupported layout (%d channels, %d bits)", ch, d);
        png_longjmp(png, 1);
    }
    pix = malloc(rowbytes * h);
    rows = png_malloc_warn(png, sizeof(png_bytep) * h);
    if (!pix || !rows) {
        snprintf(ectx.msg, sizeof ectx.msg, "out of memory");
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pix + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_free(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    *pix_out = pix;
    *ph = (int)h;
    *pw = (int)w;
    *pch = ch;
    *pdepth = d;
    return 0;
}

/* ---------------------------------------------------------------- PNG fast path
 * libpng inflates one row at a time (avail_out = a row), which keeps zlib
 * off its fast loop (inflate_fast needs >= 258 bytes of output room): a
 * 28x28 gray image spent most of its decode in inflate's byte-at-a-time
 * state machine. For the plainest PNGs (8-bit gray or RGB, not interlaced,
 * only IHDR / IDAT / IEND) the whole stream is inflated
 * into one buffer and unfiltered here (PNG spec, ISO/IEC 15948 sec. 9: the
 * five filter types, Paeth's predictor). Anything else, or any irregularity
 * (CRC, zlib error or check, extra or missing data, trailing bytes), falls
 * back to libpng from the start, which then gives its own result or error:
 * the fast path only succeeds where libpng succeeds with the same samples. */
static int png_fast_on = 1;

void image_png_fast(int on) {
    png_fast_on = on;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* zlib's allocations (the inflate state, ~7 KB; no window: the output is one
 * buffer and the last call finishes) from the decoder's stack, as libpng's */
static voidpf z_arena_alloc(voidpf opaque, uInt items, uInt size) {
    png_arena *a = opaque;
    const size_t n = (size_t)items * size;
    const size_t need = (n + 15) & ~(size_t)15;
    if (size != 0 && n / size != items) return Z_NULL;
    if (n > 0 && need >= n && need <= PNG_ARENA_BYTES - a->used) {
        void *r = a->p + a->used;
        a->used += need;
        return r;
    }
    return malloc(n ? n : 1);
}

static void z_arena_free(voidpf opaque, voidpf ptr) {
    const png_arena *a = opaque;
    const uintptr_t u = (uintptr_t)ptr, lo = (uintptr_t)a->p;
    if (u >= lo && u - lo < PNG_ARENA_BYTES) return;
    free(ptr);
}

static int paeth(int a, int b, int c) {
    const int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Unfilter h rows of rb bytes (bpp bytes a pixel) in place: filtered row y
 * (filter byte + rb bytes) at raw + y * (rb + 1), output row y at raw + y * rb
 * (never after its input, so the input is read before it is overwritten).
 * 0 ok, -1 an unknown filter type. */
static int png_unfilter(uint8_t *raw, size_t h, size_t rb, size_t bpp) {
    for (size_t y = 0; y < h; y++) {
        const uint8_t *in = raw + y * (rb + 1) + 1;
        uint8_t *out = raw + y * rb;
        const uint8_t *up = y ? out - rb : NULL;
        const int f = in[-1];
        switch (f) {
        case 0:
            memmove(out, in, rb);
            break;
        case 1:
            for (size_t x = 0; x < rb; x++)
                out[x] = (uint8_t)(in[x] + (x >= bpp ? out[x - bpp] : 0));
            break;
        case 2:
            for (size_t x = 0; x < rb; x++) out[x] = (uint8_t)(in[x] + (up ? up[x] : 0));
            break;
        case 3:
            for (size_t x = 0; x < rb; x++) {
                const unsigned a = x >= bpp ? out[x - bpp] : 0, b = up ? up[x] : 0;
                out[x] = (uint8_t)(in[x] + ((a + b) >> 1));
            }
            break;
        case 4:
            for (size_t x = 0; x < rb; x++) {
                const int a = x >= bpp ? out[x - bpp] : 0, b = up ? up[x] : 0;
                const int c = up && x >= bpp ? up[x - bpp] : 0;
                out[x] = (uint8_t)(in[x] + paeth(a, b, c));
            }
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* 1: decoded into *pix_out (8-bit samples), 0: not this path's kind of PNG
 * or not regular (the caller decodes with libpng). buf holds a PNG signature. */
static int png_fast(const uint8_t *buf, size_t len, png_arena *arena, uint8_t **pix_out, int *ph,
                    int *pw, int *pch) {
    /* signature, IHDR (4 + 4 + 13 + 4), the first IDAT's length and type */
    if (!png_fast_on || len < 8 + 25 + 8 || be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4))
        return 0;
    const uint8_t *ih = buf + 16;
    const uint32_t w = be32(ih), h = be32(ih + 4);
    const int ct = ih[9];
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE ||
        (uint64_t)w * h > IMAGE_MAX_PIXELS || ih[8] != 8 || (ct != 0 && ct != 2) || ih[10] != 0 ||
        ih[11] != 0 || ih[12] != 0 || crc32(0, buf + 12, 17) != be32(buf + 29))
        return 0;
    const size_t bpp = ct == 2 ? 3 : 1, rb = (size_t)w * bpp;
    const size_t raw_len = (size_t)h * (rb + 1);
    /* output room past the image: zlib's fast loop runs while 258 bytes of
     * room remain (a longest match), so with room for exactly the image the
     * last 258 bytes came from its byte-at-a-time loop (a 28x28 image: a
     * third of its bytes); output past the image is still an error */
    const size_t slack = 258;
    uint8_t *raw = malloc(raw_len + slack);
    if (!raw) return 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    z.zalloc = z_arena_alloc;
    z.zfree = z_arena_free;
    z.opaque = arena;
    if (inflateInit(&z) != Z_OK) {
        free(raw);
        return 0;
    }
    z.next_out = raw;
    z.avail_out = (uInt)(raw_len + slack);
    size_t pos = 33;
    int ok = 0, ended = 0, n_idat = 0;
    for (;;) {
        if (len - pos < 12) break;
        const uint32_t n = be32(buf + pos);
        const uint8_t *type = buf + pos + 4;
        if (n > 0x7fffffffu || n > len - pos - 12 || crc32(0, type, n + 4) != be32(type + 4 + n))
            break;
        if (!memcmp(type, "IDAT", 4)) {
            /* IDATs in one run, none empty or after the stream's end. The
             * stream's window (CMF): libpng's row by row inflate finds a
             * distance past it wrong, one call only one past the output so
             * far: the same when the window is 32 KB (no distance is longer)
             * or holds the whole image (libpng writes small images so) */
            if (ended || n == 0) break;
            if (n_idat++ == 0 && ((type[4] & 15) != 8 || type[4] >> 4 > 7 ||
                                  (type[4] >> 4 < 7 && raw_len > (size_t)256 << (type[4] >> 4))))
                break;
            z.next_in = (Bytef *)(uintptr_t)(type + 4);
            z.avail_in = n;
            const int zr = inflate(&z, Z_FINISH);
            if (z.total_out > raw_len) break; /* more output than the image */
            if (zr == Z_STREAM_END)
                ended = 1;
            else if (zr != Z_BUF_ERROR)
                break; /* an error */
            if (z.avail_in != 0) break;
        } else if (!memcmp(type, "IEND", 4)) {
            ok = ended && n == 0 && z.total_out == raw_len && pos + 12 == len;
            break;
        } else {
            break;
        }
        pos += 12 + (size_t)n;
    }
    inflateEnd(&z);
    if (!ok || png_unfilter(raw, h, rb, bpp) != 0) {
        free(raw);
        return 0;
    }
    *pix_out = raw;
    *ph = (int)h;
    *pw = (int)w;
    *pch = (int)bpp;
    return 1;
}

static int png_decode(const uint8_t *buf, size_t len, const char *name, uint8_t **pix_out, int *ph,
                      int *pw, int *pch, int *pdepth, char *err, size_t err_len) {
    /* max_align_t alignment: the arena hands out 16-byte multiples from its start */
    union {
        max_align_t align;
        unsigned char b[PNG_ARENA_BYTES];
    } block;
    png_arena arena = {block.b, 0};
    if (len >= 8 && png_sig_cmp(buf, 0, 8) == 0 &&
        png_fast(buf, len, &arena, pix_out, ph, pw, pch)) {
        *pdepth = 8;
        return 0;
    }
    arena.used = 0;
    return png_decode_in(buf, len, name, &arena, pix_out, ph, pw, pch, pdepth, err, err_len);
}

int image_read_png_mem(const uint8_t *buf, size_t len, const char *name, image *out, char *err,
                       size_t err_len) {
    memset(out, 0, sizeof *out);
    uint8_t *pix;
    int h, w, ch, d;
    if (png_decode(buf, len, name, &pix, &h, &w, &ch, &d, err, err_len) != 0) return -1;
    if (image_alloc(out, h, w, ch, err, err_len) != 0) {
        free(pix);
        return -1;
    }
    size_t n = (size_t)w * (size_t)h * (size_t)ch;
    if (d == 8) {
        for (size_t i = 0; i < n; i++) out->data[i] = (float)pix[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned v = ((unsigned)pix[2 * i] << 8) | pix[2 * i + 1];
            out->data[i] = (float)v / 257.0f;
        }
    }
    free(pix);
    return 0;
}

int image8_read_png_mem(const uint8_t *buf, size_t len, const char *name, image8 *out, char *err,
                        size_t err_len) {
    memset(out, 0, sizeof *out);
    uint8_t *pix;
    int h, w, ch, d;
    if (png_decode(buf, len, name, &pix, &h, &w, &ch, &d, err, err_len) != 0) return -1;
    if (d != 8) {
        free(pix);
        return 1;
    }
    out->h = h;
    out->w = w;
    out->c = ch;
    out->data = pix;
    return 0;
}

void image8_free(image8 *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int image_read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t err_len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_len, "'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    if ((uint64_t)sb.st_size > IMAGE_MAX_FILE) {
        snprintf(err, err_len, "'%s' is larger than %llu bytes", path,
                 (unsigned long long)IMAGE_MAX_FILE);
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        snprintf(err, err_len, "out of memory reading '%s'", path);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(err, err_len, "cannot read '%s': %s", path,
                     r < 0 ? strerror(errno) : "file shrank while reading");
            free(b);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

int image_read_png(const char *path, image *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    /* the whole file in one read (calibration sets: hundreds of small files;
     * libpng's stdio reads cost more than the decoding) */
    if (image_read_file(path, &buf, &len, err, err_len) != 0) return -1;
    int rc = image_read_png_mem(buf, len, path, out, err, err_len);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- geometry */
int image_resize(const image *src, int h, int w, image *dst, char *err, size_t err_len) {
    if (image_alloc(dst, h, w, src->c, err, err_len) != 0) return -1;
    const int c = src->c;
    const double sy = (double)src->h / h, sx = (double)src->w / w;
    for (int y = 0; y < h; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy;
        if (y0 > src->h - 1) y0 = src->h - 1;
        int y1 = y0 + 1 < src->h ? y0 + 1 : src->h - 1;
        float wy = (float)(fy - y0);
        if (wy > 1.0f) wy = 1.0f;
        for (int x = 0; x < w; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int x0 = (int)fx;
            if (x0 > src->w - 1) x0 = src->w - 1;
            int x1 = x0 + 1 < src->w ? x0 + 1 : src->w - 1;
            float wx = (float)(fx - x0);
            if (wx > 1.0f) wx = 1.0f;
            const float *p00 = src->data + ((size_t)y0 * src->w + x0) * c;
            const float *p01 = src->data + ((size_t)y0 * src->w + x1) * c;
            const float *p10 = src->data + ((size_t)y1 * src->w + x0) * c;
            const float *p11 = src->data + ((size_t)y1 * src->w + x1) * c;
            float *q = dst->data + ((size_t)y * w + x) * c;
            for (int k = 0; k < c; k++) {
                float top = p00[k] + (p01[k] - p00[k]) * wx;
                float bot = p10[k] + (p11[k] - p10[k]) * wx;
                q[k] = top + (bot - top) * wy;
            }
        }
    }
    return 0;
}

int image_center_crop(const image *src, int h, int w, image *dst, char *err, size_t err_len) {
    if (h < 1 || w < 1 || h > src->h || w > src->w) {
        snprintf(err, err_len, "crop %dx%d does not fit a %dx%d image", h, w, src->h, src->w);
        return -1;
    }
    if (image_alloc(dst, h, w, src->c, err, err_len) != 0) return -1;
    int oy = (src->h - h) / 2, ox = (src->w - w) / 2;
    size_t row = (size_t)w * (size_t)src->c * sizeof(float);
    for (int y = 0; y < h; y++)
        memcpy(dst->data + (size_t)y * w * src->c,
               src->data + ((size_t)(y + oy) * src->w + ox) * src->c, row);
    return 0;
}

/* ---------------------------------------------------------------- pipeline */
/* The table of the gray fast path: ((v * scale) - mean) / std per 8-bit v */
static void gray_lut(const image_prep *p, float lut[256]) {
    for (int v = 0; v < 256; v++) lut[v] = ((float)v * p->scale - p->mean[0]) / p->std[0];
}

int image8_preprocess(const image8 *img, const image_prep *p, int h, int w, int c, float *out,
                      char *err, size_t err_len) {
    const int order = p->order == IMAGE_AUTO ? (c == 1 ? IMAGE_GRAY : IMAGE_RGB) : p->order;
    if (img->c == 1 && c == 1 && order == IMAGE_GRAY && p->resize_h <= 0 && p->crop_h <= 0 &&
        img->h == h && img->w == w) {
        /* gray, no geometry: the table straight from the bytes (what
         * image_preprocess computes for these exact integer values) */
        float lut[256];
        gray_lut(p, lut);
        const size_t plane = (size_t)h * (size_t)w;
        for (size_t i = 0; i < plane; i++) out[i] = lut[img->data[i]];
        return 0;
    }
    image f;
    if (image_alloc(&f, img->h, img->w, img->c, err, err_len) != 0) return -1;
    const size_t n = (size_t)img->h * (size_t)img->w * (size_t)img->c;
    for (size_t i = 0; i < n; i++) f.data[i] = (float)img->data[i];
    int rc = image_preprocess(&f, p, h, w, c, out, err, err_len);
    image_free(&f);
    return rc;
}

int image_preprocess(const image *img, const image_prep *p, int h, int w, int c, float *out,
                     char *err, size_t err_len) {
    if (c != 1 && c != 3) {
        snprintf(err, err_len, "model input has %d channels; images need 1 or 3", c);
        return -1;
    }
    int order = p->order;
    if (order == IMAGE_AUTO) order = c == 1 ? IMAGE_GRAY : IMAGE_RGB;
    if (order != IMAGE_GRAY && c != 3) {
        snprintf(err, err_len, "--%s needs a 3-channel model input (it has %d)",
                 order == IMAGE_RGB ? "rgb" : "bgr", c);
        return -1;
    }
    if (img->c != 1 && img->c != 3) {
        snprintf(err, err_len, "image has %d channels", img->c);
        return -1;
    }
    image cur = {img->h, img->w, img->c, img->data}; /* borrowed until replaced */
    int owned = 0;
    image tmp;
    if (p->resize_h > 0) {
        if (image_resize(&cur, p->resize_h, p->resize_w, &tmp, err, err_len) != 0) return -1;
        cur = tmp;
        owned = 1;
    }
    if (p->crop_h > 0) {
        int rc = image_center_crop(&cur, p->crop_h, p->crop_w, &tmp, err, err_len);
        if (owned) image_free(&cur);
        if (rc != 0) return -1;
        cur = tmp;
        owned = 1;
    }
    if (cur.h != h || cur.w != w) {
        if (p->resize_h > 0) {
            snprintf(err, err_len, "preprocessed image is %dx%d but the model input is %dx%d",
                     cur.h, cur.w, h, w);
            if (owned) image_free(&cur);
            return -1;
        }
        int rc = image_resize(&cur, h, w, &tmp, err, err_len);
        if (owned) image_free(&cur);
        if (rc != 0) return -1;
        cur = tmp;
        owned = 1;
    }
    const size_t plane = (size_t)h * (size_t)w;
    if (order == IMAGE_GRAY && cur.c == 1 && c == 1) {
        /* gray to one channel: 8-bit values through a table of the same
         * expression (a division a pixel was most of a small image's cost) */
        float lut[256];
        gray_lut(p, lut);
        for (size_t i = 0; i < plane; i++) {
            const float g = cur.data[i];
            const int iv = g >= 0.0f && g <= 255.0f ? (int)g : -1;
            out[i] = iv >= 0 && (float)iv == g ? lut[iv] : (g * p->scale - p->mean[0]) / p->std[0];
        }
        if (owned) image_free(&cur);
        return 0;
    }
    for (size_t i = 0; i < plane; i++) {
        const float *px = cur.data + i * (size_t)cur.c;
        float v[3];
        if (order == IMAGE_GRAY) {
            float g = cur.c == 1 ? px[0] : 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2];
            v[0] = v[1] = v[2] = g;
        } else {
            float r = px[0], g = cur.c == 1 ? px[0] : px[1], b = cur.c == 1 ? px[0] : px[2];
            v[0] = order == IMAGE_BGR ? b : r;
            v[1] = g;
            v[2] = order == IMAGE_BGR ? r : b;
        }
        for (int k = 0; k < c; k++) {
            float x = (v[k] * p->scale - p->mean[k]) / p->std[k];
            if (p->layout == IMAGE_NHWC)
                out[i * (size_t)c + (size_t)k] = x;
            else
                out[(size_t)k * plane + i] = x;
        }
    }
    if (owned) image_free(&cur);
    return 0;
}
