/* npy.c - NumPy .npy reader / writer (float32 in memory). */
#include "sqzc/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "sqzc/writer.h"

#define NPY_MAX_FILE (UINT64_C(1) << 34) /* 16 GiB: refuse anything larger */

enum { K_F32, K_F64, K_I8, K_U8, K_I16, K_U16, K_I32, K_U32, K_I64, K_U64, K_BOOL };

static const struct {
    const char *descr;
    int kind;
    size_t size;
} kDescr[] = {
    {"<f4", K_F32, 4}, {"<f8", K_F64, 8}, {"|i1", K_I8, 1},   {"|u1", K_U8, 1},  {"<i1", K_I8, 1},
    {"<u1", K_U8, 1},  {"<i2", K_I16, 2}, {"<u2", K_U16, 2},  {"<i4", K_I32, 4}, {"<u4", K_U32, 4},
    {"<i8", K_I64, 8}, {"<u8", K_U64, 8}, {"|b1", K_BOOL, 1},
};

static uint64_t rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- a tiny strict parser for the header's Python dict literal ---- */
typedef struct hdr {
    const char *p, *end;
} hdr;

static void skip_ws(hdr *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t')) h->p++;
}

static int expect(hdr *h, char c) {
    skip_ws(h);
    if (h->p >= h->end || *h->p != c) return -1;
    h->p++;
    return 0;
}

/* A quoted string ('...' or "...") without escapes, into out (cap bytes). */
static int parse_str(hdr *h, char *out, size_t cap) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return -1;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap) return -1;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) return -1;
    h->p++;
    out[n] = '\0';
    return 0;
}

static int parse_bool(hdr *h, int *v) {
    skip_ws(h);
    size_t left = (size_t)(h->end - h->p);
    if (left >= 4 && memcmp(h->p, "True", 4) == 0) {
        h->p += 4;
        *v = 1;
        return 0;
    }
    if (left >= 5 && memcmp(h->p, "False", 5) == 0) {
        h->p += 5;
        *v = 0;
        return 0;
    }
    return -1;
}

static int parse_shape(hdr *h, sqz_shape *s) {
    if (expect(h, '(') != 0) return -1;
    s->ndim = 0;
    for (;;) {
        skip_ws(h);
        if (h->p < h->end && *h->p == ')') {
            h->p++;
            return 0;
        }
        if (h->p >= h->end || *h->p < '0' || *h->p > '9') return -1;
        uint64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            v = v * 10 + (uint64_t)(*h->p - '0');
            if (v > (UINT64_C(1) << 40)) return -1;
            h->p++;
        }
        if (s->ndim >= SQZ_MAX_DIMS) return -1;
        s->dims[s->ndim++] = (int64_t)v;
        skip_ws(h);
        if (h->p < h->end && *h->p == ',') {
            h->p++;
            continue;
        }
        if (h->p < h->end && *h->p == ')') {
            /* "(5)" is not a tuple in Python; numpy always writes "(5,)" */
            if (s->ndim == 1) return -1;
            h->p++;
            return 0;
        }
        return -1;
    }
}

static int parse_header(const char *text, size_t len, int *kind, size_t *isize, sqz_shape *shape,
                        char *err, size_t err_len) {
    hdr h = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    char descr[16] = {0};
    if (expect(&h, '{') != 0) goto bad;
    for (;;) {
        skip_ws(&h);
        if (h.p < h.end && *h.p == '}') {
            h.p++;
            break;
        }
        char key[32];
        if (parse_str(&h, key, sizeof key) != 0 || expect(&h, ':') != 0) goto bad;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (parse_str(&h, descr, sizeof descr) != 0) goto bad;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (parse_bool(&h, &fortran) != 0) goto bad;
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (parse_shape(&h, shape) != 0) goto bad;
            have_shape = 1;
        } else {
            goto bad;
        }
        skip_ws(&h);
        if (h.p < h.end && *h.p == ',') {
            h.p++;
            continue;
        }
        if (expect(&h, '}') != 0) goto bad;
        break;
    }
    /* trailing: spaces and a final newline only */
    while (h.p < h.end && (*h.p == ' ' || *h.p == '\n' || *h.p == '\0')) h.p++;
    if (h.p != h.end || !have_descr || !have_order || !have_shape) goto bad;
    if (fortran) {
        snprintf(err, err_len, "Fortran-order arrays are not supported");
        return -1;
    }
    for (size_t i = 0; i < sizeof kDescr / sizeof kDescr[0]; i++) {
        if (strcmp(descr, kDescr[i].descr) == 0) {
            *kind = kDescr[i].kind;
            *isize = kDescr[i].size;
            return 0;
        }
    }
    snprintf(err, err_len, "unsupported dtype '%s' (need little-endian float or integer)", descr);
    return -1;
bad:
    snprintf(err, err_len, "malformed .npy header");
    return -1;
}

/* n elements of dtype (kind, isize) at p to float */
static void convert(const uint8_t *p, int kind, size_t isize, size_t n, float *data) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (kind == K_F32) { /* the file's bytes are the floats */
        memcpy(data, p, n * sizeof(float));
        return;
    }
#endif
    for (size_t i = 0; i < n; i++, p += isize) {
        uint64_t u = rd_le(p, isize);
        float v;
        switch (kind) {
        case K_F32: {
            uint32_t u32 = (uint32_t)u;
            memcpy(&v, &u32, 4);
            break;
        }
        case K_F64: {
            double d;
            memcpy(&d, &u, 8);
            v = (float)d;
            break;
        }
        case K_I8:
            v = (float)(int8_t)u;
            break;
        case K_I16:
            v = (float)(int16_t)u;
            break;
        case K_I32:
            v = (float)(int32_t)u;
            break;
        case K_I64:
            v = (float)(int64_t)u;
            break;
        case K_BOOL:
            v = u ? 1.0f : 0.0f;
            break;
        default:
            v = (float)u;
            break;
        }
        data[i] = v;
    }
}

int npy_parse(const uint8_t *buf, size_t size, npy_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        snprintf(err, err_len, "not a .npy file (bad magic)");
        return -1;
    }
    int major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)rd_le(buf + 8, 2);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) {
            snprintf(err, err_len, "truncated .npy header");
            return -1;
        }
        hlen = (size_t)rd_le(buf + 8, 4);
        hstart = 12;
    } else {
        snprintf(err, err_len, "unsupported .npy version %d.%d", major, buf[7]);
        return -1;
    }
    if (hlen > size - hstart) {
        snprintf(err, err_len, "truncated .npy header (%zu bytes declared, %zu present)", hlen,
                 size - hstart);
        return -1;
    }
    int kind = 0;
    size_t isize = 0;
    sqz_shape shape;
    memset(&shape, 0, sizeof shape);
    if (parse_header((const char *)buf + hstart, hlen, &kind, &isize, &shape, err, err_len) != 0)
        return -1;
    uint64_t count = 1;
    for (int i = 0; i < shape.ndim; i++) {
        if ((uint64_t)shape.dims[i] != 0 && count > NPY_MAX_FILE / (uint64_t)shape.dims[i]) {
            snprintf(err, err_len, ".npy shape too large");
            return -1;
        }
        count *= (uint64_t)shape.dims[i];
    }
    size_t data_off = hstart + hlen;
    uint64_t need = count * isize;
    if (need > NPY_MAX_FILE || need != (uint64_t)(size - data_off)) {
        snprintf(err, err_len, ".npy data size mismatch: shape needs %llu bytes, file has %zu",
                 (unsigned long long)need, size - data_off);
        return -1;
    }
    float *data = NULL;
    if (count > 0) {
        data = malloc((size_t)count * sizeof(float));
        if (!data) {
            snprintf(err, err_len, "out of memory (%llu floats)", (unsigned long long)count);
            return -1;
        }
    }
    convert(buf + data_off, kind, isize, (size_t)count, data);
    out->data = data;
    out->count = (size_t)count;
    out->shape = shape;
    return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    long long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, err_len, "cannot read '%s': not a regular file", path);
        fclose(f);
        return -1;
    }
    if ((unsigned long long)sz > NPY_MAX_FILE) {
        snprintf(err, err_len, "'%s' is too large", path);
        fclose(f);
        return -1;
    }
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (!buf) {
        snprintf(err, err_len, "out of memory reading '%s'", path);
        fclose(f);
        return -1;
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        snprintf(err, err_len, "short read on '%s'", path);
        free(buf);
        return -1;
    }
    char e2[200];
    int rc = npy_parse(buf, (size_t)sz, out, e2, sizeof e2);
    free(buf);
    if (rc != 0) snprintf(err, err_len, "%s: %s", path, e2);
    return rc;
}

void npy_free(npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

int npy_serialize(const float *data, const sqz_shape *shape, uint8_t **buf, size_t *size, char *err,
                  size_t err_len) {
    *buf = NULL;
    *size = 0;
    if (shape->ndim < 0 || shape->ndim > SQZ_MAX_DIMS) {
        snprintf(err, err_len, "bad shape rank %d", shape->ndim);
        return -1;
    }
    char dict[64 + 24 * SQZ_MAX_DIMS];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    uint64_t count = 1;
    for (int i = 0; i < shape->ndim; i++) {
        if (shape->dims[i] < 0) {
            snprintf(err, err_len, "negative dim in shape");
            return -1;
        }
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape->dims[i],
                      (i + 1 < shape->ndim) ? " " : "");
        count *= (uint64_t)shape->dims[i];
    }
    /* numpy: "(5,)" for rank 1, "(2, 3)" for rank 2+ (the trailing comma is fine too) */
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t dlen = (size_t)n;
    size_t pre = 10;
    size_t total_h = (pre + dlen + 1 + 63) / 64 * 64; /* + '\n', padded to 64 */
    size_t hlen = total_h - pre;
    if (count > NPY_MAX_FILE / 4) {
        snprintf(err, err_len, "array too large");
        return -1;
    }
    size_t bytes = total_h + (size_t)count * 4;
    uint8_t *b = malloc(bytes);
    if (!b) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + pre, dict, dlen);
    memset(b + pre + dlen, ' ', hlen - dlen - 1);
    b[total_h - 1] = '\n';
    uint8_t *p = b + total_h;
    for (size_t i = 0; i < (size_t)count; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        p[0] = (uint8_t)u;
        p[1] = (uint8_t)(u >> 8);
        p[2] = (uint8_t)(u >> 16);
        p[3] = (uint8_t)(u >> 24);
    }
    *buf = b;
    *size = bytes;
    return 0;
}

int npy_write(const char *path, const float *data, const sqz_shape *shape, char *err,
              size_t err_len) {
    uint8_t *buf;
    size_t size;
    if (npy_serialize(data, shape, &buf, &size, err, err_len) != 0) return -1;
    int rc = sqzc_write_file_atomic(path, buf, size, err, err_len);
    free(buf);
    return rc;
}

int npy_read_info(const char *path, npy_info *info, char *err, size_t err_len) {
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    uint8_t pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    long long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    int rc = -1;
    char *text = NULL;
    size_t hlen = 0, hstart = 0;
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        snprintf(err, err_len, "%s: not a .npy file (bad magic)", path);
        goto out;
    }
    if (pre[6] == 1) {
        hlen = (size_t)rd_le(pre + 8, 2);
        hstart = 10;
    } else if ((pre[6] == 2 || pre[6] == 3) && got == 12) {
        hlen = (size_t)rd_le(pre + 8, 4);
        hstart = 12;
    } else {
        snprintf(err, err_len, "%s: unsupported or truncated .npy header", path);
        goto out;
    }
    /* a header is a short dict: refuse absurd lengths before allocating */
    if (sz < 0 || hlen > (1u << 20) || (unsigned long long)sz < hstart + hlen) {
        snprintf(err, err_len, "%s: truncated or oversized .npy header", path);
        goto out;
    }
    text = malloc(hlen ? hlen : 1);
    if (!text || fseek(f, (long)hstart, SEEK_SET) != 0 || fread(text, 1, hlen, f) != hlen) {
        snprintf(err, err_len, "%s: cannot read the .npy header", path);
        goto out;
    }
    char e2[200];
    if (parse_header(text, hlen, &info->kind, &info->isize, &info->shape, e2, sizeof e2) != 0) {
        snprintf(err, err_len, "%s: %s", path, e2);
        goto out;
    }
    uint64_t count = 1;
    for (int i = 0; i < info->shape.ndim; i++) {
        if ((uint64_t)info->shape.dims[i] != 0 &&
            count > NPY_MAX_FILE / (uint64_t)info->shape.dims[i]) {
            snprintf(err, err_len, "%s: .npy shape too large", path);
            goto out;
        }
        count *= (uint64_t)info->shape.dims[i];
    }
    info->data_off = hstart + hlen;
    info->count = count;
    if (count * info->isize > NPY_MAX_FILE ||
        count * info->isize != (uint64_t)sz - (uint64_t)info->data_off) {
        snprintf(err, err_len, "%s: .npy data size mismatch: shape needs %llu bytes, file has %llu",
                 path, (unsigned long long)(count * info->isize),
                 (unsigned long long)((uint64_t)sz - (uint64_t)info->data_off));
        goto out;
    }
    rc = 0;
out:
    free(text);
    fclose(f);
    return rc;
}

int npy_read_range(const char *path, const npy_info *info, uint64_t first, uint64_t n, float *out,
                   char *err, size_t err_len) {
    if (first > info->count || n > info->count - first) {
        snprintf(err, err_len, "%s: elements %llu..+%llu outside the array (%llu)", path,
                 (unsigned long long)first, (unsigned long long)n, (unsigned long long)info->count);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    const size_t bytes = (size_t)n * info->isize;
    uint8_t *buf = malloc(bytes ? bytes : 1);
    int rc = -1;
    if (!buf) {
        snprintf(err, err_len, "out of memory reading '%s'", path);
    } else if (fseeko(f, (off_t)(info->data_off + first * info->isize), SEEK_SET) != 0 ||
               fread(buf, 1, bytes, f) != bytes) {
        snprintf(err, err_len, "short read on '%s' (changed since it was checked?)", path);
    } else {
        convert(buf, info->kind, info->isize, (size_t)n, out);
        rc = 0;
    }
    free(buf);
    fclose(f);
    return rc;
}
