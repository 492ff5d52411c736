/* npy.h - NumPy .npy files (format 1.0 / 2.0 / 3.0) as float32 arrays.
 *
 * Reading accepts little-endian, C-order arrays of f4, f8, i1/u1, i2/u2,
 * i4/u4, i8/u8 and b1, converting to float. Headers are parsed strictly and
 * every length is checked against the file. Writing produces '<f4' C-order
 * files (1.0 header, 2.0 when needed) atomically: temp file + rename. */
#ifndef SQZ_NPY_H
#define SQZ_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct npy_array {
    float *data; /* malloc'd, count elements (NULL when count is 0) */
    size_t count;
    sqz_shape shape; /* ndim 0 for a scalar */
} npy_array;

/* Parse an in-memory .npy image. 0 ok, -1 with err. */
int npy_parse(const uint8_t *buf, size_t size, npy_array *out, char *err, size_t err_len);
int npy_read(const char *path, npy_array *out, char *err, size_t err_len);
void npy_free(npy_array *a);

/* A file's header only (shape, dtype, where the data starts), with the file
 * size checked against it; then elements [first, first + n) (C order) read
 * and converted to float without reading the rest: large arrays streamed. */
typedef struct npy_info {
    sqz_shape shape;
    int kind;        /* dtype (private code) */
    size_t isize;    /* bytes per element */
    size_t data_off; /* file offset of element 0 */
    uint64_t count;  /* elements */
} npy_info;
int npy_read_info(const char *path, npy_info *info, char *err, size_t err_len);
int npy_read_range(const char *path, const npy_info *info, uint64_t first, uint64_t n, float *out,
                   char *err, size_t err_len);

/* Serialize a float32 array; *buf is malloc'd. */
int npy_serialize(const float *data, const sqz_shape *shape, uint8_t **buf, size_t *size, char *err,
                  size_t err_len);
/* Write atomically. */
int npy_write(const char *path, const float *data, const sqz_shape *shape, char *err,
              size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
