/* idx.c - gzip'd IDX reader. */
#include "idx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_BYTES (UINT64_C(1) << 31)

/* Read exactly n bytes; -1 on error or short read (message in err). */
static int gz_read_exact(gzFile gz, const char *path, void *buf, size_t n, char *err,
                         size_t err_len) {
    uint8_t *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(gz, p, chunk);
        if (got <= 0) {
            int zerr = Z_OK;
            const char *m = gzerror(gz, &zerr);
            if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
                snprintf(err, err_len, "'%s': read error: %s", path, m ? m : "?");
            else
                snprintf(err, err_len, "'%s': truncated file", path);
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Open, check magic (type 0x08 = u8 and rank), read dims, data and EOF. */
static int idx_read(const char *path, int rank, uint32_t *dims, uint8_t **data, char *err,
                    size_t err_len) {
    *data = NULL;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        snprintf(err, err_len, "cannot open '%s': %s", path, errno ? strerror(errno) : "gzopen");
        return -1;
    }
    uint8_t hdr[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)rank;
    if (gz_read_exact(gz, path, hdr, hlen, err, err_len) != 0) goto fail;
    uint32_t magic = be32(hdr);
    if (magic != (0x0800u | (uint32_t)rank)) {
        snprintf(err, err_len,
                 "'%s': bad IDX magic 0x%08x (expected 0x%08x, unsigned byte rank %d)", path, magic,
                 0x0800u | (uint32_t)rank, rank);
        goto fail;
    }
    uint64_t total = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > INT_MAX) {
            snprintf(err, err_len, "'%s': bad IDX dim %d = %u", path, i, dims[i]);
            goto fail;
        }
        total *= dims[i];
        if (total > IDX_MAX_BYTES) {
            snprintf(err, err_len, "'%s': IDX data too large", path);
            goto fail;
        }
    }
    *data = malloc((size_t)total);
    if (!*data) {
        snprintf(err, err_len, "out of memory (%llu bytes)", (unsigned long long)total);
        goto fail;
    }
    if (gz_read_exact(gz, path, *data, (size_t)total, err, err_len) != 0) goto fail;
    uint8_t extra;
    int more = gzread(gz, &extra, 1);
    if (more != 0) {
        if (more > 0)
            snprintf(err, err_len, "'%s': trailing data after %llu bytes of IDX data", path,
                     (unsigned long long)total);
        else
            snprintf(err, err_len, "'%s': read error at end of data", path);
        goto fail;
    }
    /* gzread returns 0 at a clean end; a cut-off gzip stream reports an error here */
    int zerr = Z_OK;
    const char *m = gzerror(gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        snprintf(err, err_len, "'%s': %s", path, m ? m : "gzip error");
        goto fail;
    }
    gzclose(gz);
    return 0;
fail:
    free(*data);
    *data = NULL;
    gzclose(gz);
    return -1;
}

int idx_read_images(const char *path, idx_images *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    uint32_t d[3];
    if (idx_read(path, 3, d, &out->data, err, err_len) != 0) return -1;
    out->n = (int)d[0];
    out->h = (int)d[1];
    out->w = (int)d[2];
    return 0;
}

int idx_read_labels(const char *path, idx_labels *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    uint32_t d[1];
    if (idx_read(path, 1, d, &out->data, err, err_len) != 0) return -1;
    out->n = (int)d[0];
    return 0;
}

void idx_images_free(idx_images *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

void idx_labels_free(idx_labels *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
