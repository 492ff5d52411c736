/* sqzc/image.h - PNG input and preprocessing (`sqz run`, calibration sets).
 *
 * PNGs of any bit depth and colour type (gray, gray+alpha, RGB, RGBA,
 * palette) load as float H x W x C (C = 1 for gray, 3 for colour; alpha is
 * dropped), values on the 8-bit scale 0..255 (16-bit samples are divided by
 * 257). Preprocessing: optional bilinear resize, optional center crop,
 * resize to the model's H x W, channel conversion (gray / rgb / bgr),
 * x * scale, (x - mean[c]) / std[c], NCHW or NHWC layout. */
#ifndef SQZ_IMAGE_H
#define SQZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct image {
    int h, w, c; /* c is 1 or 3 */
    float *data; /* h * w * c, row-major HWC */
} image;

/* 8-bit samples as decoded (calibration sets keep decoded images in memory:
 * a quarter of the floats) */
typedef struct image8 {
    int h, w, c;
    uint8_t *data; /* h * w * c, row-major HWC */
} image8;

enum { IMAGE_AUTO = 0, IMAGE_GRAY, IMAGE_RGB, IMAGE_BGR };
enum { IMAGE_NCHW = 0, IMAGE_NHWC };

typedef struct image_prep {
    int resize_h, resize_w; /* 0: none */
    int crop_h, crop_w;     /* 0: none */
    float scale;            /* applied first; default 1/255 */
    float mean[3], std[3];  /* per output channel (in the output channel order) */
    int order;              /* IMAGE_AUTO: gray for 1 channel, rgb for 3 */
    int layout;             /* IMAGE_NCHW / IMAGE_NHWC */
} image_prep;

void image_prep_init(image_prep *p);

int image_read_png(const char *path, image *out, char *err, size_t err_len);
/* The same from a PNG file's bytes in memory; name is for messages. */
int image_read_png_mem(const uint8_t *buf, size_t len, const char *name, image *out, char *err,
                       size_t err_len);
/* An 8-bit PNG's samples (gray or RGB, alpha dropped, palette expanded):
 * 0 ok, 1 a 16-bit PNG (not decoded: use image_read_png_mem), -1 with err. */
int image8_read_png_mem(const uint8_t *buf, size_t len, const char *name, image8 *out, char *err,
                        size_t err_len);
void image8_free(image8 *img);
/* 0: every PNG through libpng (tests, A/B); 1 (default): 8-bit gray / RGB
 * PNGs of the plainest form are inflated in one call and unfiltered by sqz,
 * the same samples (image.c explains which files, and the fallback). */
void image_png_fast(int on);
/* A regular file's whole contents (malloc'd into *buf; at most 1 GiB). 0 ok,
 * -1 with err naming the file. */
int image_read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t err_len);
void image_free(image *img);

/* Bilinear resize with half-pixel centers (OpenCV INTER_LINEAR, PyTorch
 * align_corners=False without antialiasing). dst gets a new buffer. */
int image_resize(const image *src, int h, int w, image *dst, char *err, size_t err_len);
/* Center crop to h x w (must fit). dst gets a new buffer. */
int image_center_crop(const image *src, int h, int w, image *dst, char *err, size_t err_len);

/* Full pipeline into out (h * w * c floats): resize (p->resize_*), center
 * crop (p->crop_*), then a final resize to h x w unless p->resize_* was set,
 * in which case the result must already be h x w. c is the model's channel
 * count (1 or 3). */
int image_preprocess(const image *img, const image_prep *p, int h, int w, int c, float *out,
                     char *err, size_t err_len);

/* image_preprocess of the image with these 8-bit samples (the same values). */
int image8_preprocess(const image8 *img, const image_prep *p, int h, int w, int c, float *out,
                      char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
