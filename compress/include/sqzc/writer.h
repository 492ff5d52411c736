/* sqzc/writer.h - serialize the sqzc IR to a .sqz v1 file (sqz/format.h). */
#ifndef SQZC_WRITER_H
#define SQZC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/sqz.h"
#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Serialize into a malloc'd buffer. All tensors must be float (int64
 * constants must have been folded away). 0 ok, -1 with err. */
int sqzc_serialize(const sqzc_graph *g, uint8_t **buf, size_t *size, char *err, size_t err_len);
/* The runtime model sqz_model_load_buffer gives for sqzc_serialize's bytes,
 * built from g without them (sqz quant's calibration model: no serialized
 * copy of the weights to write, read and free). Free with sqz_model_free.
 * 0 ok, -1 with err (what sqzc_serialize or the loader refuses). */
int sqzc_model_build(const sqzc_graph *g, sqz_model **m, char *err, size_t err_len);
/* Write atomically: to path.tmp.XXXXXX (fsync when SQZ_FSYNC=1), rename. No partial file on
 * failure. */
int sqzc_write_sqz(const sqzc_graph *g, const char *path, char *err, size_t err_len);
/* The same, large Huffman streams coded on up to `threads` OpenMP threads
 * (the same bytes whatever the count). */
int sqzc_write_sqz_mt(const sqzc_graph *g, const char *path, int threads, char *err,
                      size_t err_len);
/* Write size bytes atomically the same way (any file: .sqz, .npy, reports). */
int sqzc_write_file_atomic(const char *path, const void *data, size_t size, char *err,
                           size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
