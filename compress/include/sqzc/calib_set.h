/* sqzc/calib_set.h - calibration sets: a text manifest listing PNG images or
 * .npy tensors plus the preprocessing that turns an image into a model input
 * (format: calib-data/README.md).
 *
 * Reading a manifest checks every listed file up front (exists, readable,
 * PNG signature and header, channel count against the manifest's colour, or
 * .npy header), so a bad set fails before any work with a message naming the
 * manifest line and the file. */
#ifndef SQZC_CALIB_SET_H
#define SQZC_CALIB_SET_H

#include <stddef.h>

#include "sqz/ops.h"
#include "sqzc/image.h"
#include "sqzc/npy.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SQZC_CALIB_PNG = 1, SQZC_CALIB_NPY = 2, SQZC_CALIB_NPY_BATCH = 3 };

typedef struct sqzc_calib_item {
    char *path;    /* resolved (relative paths are relative to the manifest's directory);
                      NULL for a sample of an npy_batch file (the file's path) */
    int kind;      /* SQZC_CALIB_PNG / SQZC_CALIB_NPY / SQZC_CALIB_NPY_BATCH */
    int line;      /* manifest line, for messages */
    int channels;  /* PNG: 1 (gray) or 3 (colour) from its header; NPY: 0 */
    int file;      /* NPY_BATCH: index into files */
    int64_t index; /* NPY_BATCH: sample (first dimension) in the file */
    image8 img;    /* 8-bit PNG: decoded when the set was checked (data NULL: decoded when
                      loaded) */
} sqzc_calib_item;

/* An "npy_batch:" file: N pre-decoded samples along its first dimension,
 * read a range of samples at a time (never whole). */
typedef struct sqzc_calib_npyfile {
    char *path;
    int line;
    npy_info info;
    int64_t n;   /* samples: info.shape.dims[0] */
    int64_t per; /* elements per sample */
} sqzc_calib_npyfile;

typedef struct sqzc_calib_set {
    char *manifest;
    sqzc_calib_item *items;
    int n_items;
    sqzc_calib_npyfile *files;
    int n_files;
    image_prep prep;                /* color (order), resize, crop, scale, mean, std, layout */
    int color_set;                  /* a "color:" line was given */
    struct sqzc_calib_check *check; /* file checks (sqzc_calib_set_parse; NULL once
                                       sqzc_calib_set_check_done ran) */
} sqzc_calib_set;

/* Parse the manifest and check every listed file. 0 ok, -1 with err (one
 * line, naming the manifest and line or file). An empty set is an error. */
int sqzc_calib_set_read(const char *manifest, sqzc_calib_set *s, char *err, size_t err_len);
void sqzc_calib_set_free(sqzc_calib_set *s);

/* sqzc_calib_set_read in steps, for the file checks to run on several threads
 * while the caller does other work: parse the manifest (no listed file
 * opened); then sqzc_calib_set_check_some on each thread of one OpenMP team
 * (or on one thread), each taking the next unchecked item until none is left
 * or *stop (if stop is not NULL) is set; then sqzc_calib_set_check_finish
 * checks what is left on the calling thread and gives the result (the
 * failure first in manifest order, as sqzc_calib_set_read's; the same on
 * every call), and sqzc_calib_set_check_done does the same and frees the set
 * on failure. A set whose checks are not finished may be handed to
 * sqzc_quantize: it finishes them (on its other threads while it opens its
 * sessions). decode_bytes: PNGs are decoded during their check and kept in
 * memory while their 8-bit samples (h * w * c bytes) fit in this many bytes
 * in all (a set of small images is then read and decoded once, in
 * parallel); the others are decoded when loaded. Memory stays bounded by
 * decode_bytes whatever the set size. */
int sqzc_calib_set_parse(const char *manifest, size_t decode_bytes, sqzc_calib_set *s, char *err,
                         size_t err_len);
void sqzc_calib_set_check_some(const sqzc_calib_set *s, const int *stop);
int sqzc_calib_set_check_finish(const sqzc_calib_set *s, char *err, size_t err_len);
int sqzc_calib_set_check_done(sqzc_calib_set *s, char *err, size_t err_len);
/* 1 while sqzc_calib_set_check_finish has not run on a parsed set */
int sqzc_calib_set_pending(const sqzc_calib_set *s);

/* Check that the set fits a model input of shape [N, C, H, W] (NCHW layout)
 * or [N, H, W, C] (NHWC): image colour vs C, .npy element count vs C*H*W.
 * 0 ok, -1 with err. */
int sqzc_calib_set_check_input(const sqzc_calib_set *s, const sqz_shape *input, char *err,
                               size_t err_len);

/* Load item i as one sample for input (batch dim excluded): out receives
 * numel(input) / input->dims[0] floats. 0 ok, -1 with err naming the file. */
int sqzc_calib_set_load(const sqzc_calib_set *s, int i, const sqz_shape *input, float *out,
                        char *err, size_t err_len);

/* Items [first, first + count) into out (count samples one after another),
 * consecutive samples of one npy_batch file in one read. 0 ok, -1 with err
 * naming the file of the first failing item. */
int sqzc_calib_set_load_many(const sqzc_calib_set *s, int first, int count, const sqz_shape *input,
                             float *out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
