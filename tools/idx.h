/* idx.h - IDX files (MNIST / Fashion-MNIST), gzip'd or plain, read with
 * zlib's gzread. Only unsigned-byte data: images [N, H, W] (magic 0x803)
 * and labels [N] (magic 0x801). Magic, dims and exact size are validated. */
#ifndef SQZ_IDX_H
#define SQZ_IDX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct idx_images {
    uint8_t *data; /* n * h * w */
    int n, h, w;
} idx_images;

typedef struct idx_labels {
    uint8_t *data; /* n */
    int n;
} idx_labels;

int idx_read_images(const char *path, idx_images *out, char *err, size_t err_len);
int idx_read_labels(const char *path, idx_labels *out, char *err, size_t err_len);
void idx_images_free(idx_images *x);
void idx_labels_free(idx_labels *x);

#ifdef __cplusplus
}
#endif
#endif
