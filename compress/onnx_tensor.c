/* onnx_tensor.c - decoding ONNX TensorProto messages (typed fields, raw_data,
 * external data files) into float or int64 arrays, and TensorProto .pb files. */
#include "onnx_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    DT_FLOAT = 1,
    DT_UINT8 = 2,
    DT_INT8 = 3,
    DT_UINT16 = 4,
    DT_INT16 = 5,
    DT_INT32 = 6,
    DT_INT64 = 7,
    DT_STRING = 8,
    DT_BOOL = 9,
    DT_FLOAT16 = 10,
    DT_DOUBLE = 11,
    DT_UINT32 = 12,
    DT_UINT64 = 13,
    DT_BFLOAT16 = 16,
};

/* Files larger than this are refused (protobuf's own limit is 2 GiB). */
#define OX_MAX_FILE ((size_t)1 << 31)

const char *ox_dtype_name(int dt) {
    static const char *names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                  "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                  "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                  "COMPLEX128", "BFLOAT16"};
    if (dt >= 0 && dt < (int)(sizeof names / sizeof names[0])) return names[dt];
    return "unknown";
}

int ox_dtype_class(int dt) {
    switch (dt) {
    case DT_FLOAT:
    case DT_FLOAT16:
    case DT_DOUBLE:
    case DT_BFLOAT16:
        return 1;
    case DT_UINT8:
    case DT_INT8:
    case DT_UINT16:
    case DT_INT16:
    case DT_INT32:
    case DT_INT64:
    case DT_BOOL:
    case DT_UINT32:
    case DT_UINT64:
        return 2;
    default:
        return 0;
    }
}

static size_t elem_size(int dt) {
    switch (dt) {
    case DT_UINT8:
    case DT_INT8:
    case DT_BOOL:
        return 1;
    case DT_UINT16:
    case DT_INT16:
    case DT_FLOAT16:
    case DT_BFLOAT16:
        return 2;
    case DT_FLOAT:
    case DT_INT32:
    case DT_UINT32:
        return 4;
    default:
        return 8;
    }
}

int64_t ox_numel(const sqz_shape *s) {
    if (s->ndim < 0 || s->ndim > SQZ_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->dims[i] < 0) return -1;
        if (s->dims[i] > 0 && n > INT64_MAX / s->dims[i]) return -1;
        n *= s->dims[i];
    }
    return n;
}

void ox_val_free(ox_val *v) {
    free(v->f32);
    free(v->i64);
    v->f32 = NULL;
    v->i64 = NULL;
}

int ox_store(sqzc_graph *g, int t, const ox_val *v) {
    if (v->dtype == SQZC_I64) return sqzc_tensor_set_i64(g, t, &v->shape, v->i64);
    return sqzc_tensor_set_f32(g, t, &v->shape, v->f32);
}

int ox_store_take(sqzc_graph *g, int t, ox_val *v) {
    if (v->dtype == SQZC_I64 || !v->f32) return ox_store(g, t, v);
    if (sqzc_tensor_take_f32(g, t, &v->shape, v->f32) != 0) return -1;
    v->f32 = NULL;
    return 0;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    float f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24); /* zero / subnormal */
    } else if (exp == 31) {
        f = mant ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(mant | 0x400u), exp - 25);
    }
    return sign ? -f : f;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Little-endian raw element i of dtype dt as double / int64 (exact for ints). */
static uint64_t raw_bits(const uint8_t *p, size_t es) {
    uint64_t v = 0;
    for (size_t b = 0; b < es; b++) v |= (uint64_t)p[b] << (8 * b);
    return v;
}

/* Set element i of v from an integer (sign already applied). */
static int put_int(ox_val *v, int64_t i, int64_t x) {
    if (v->dtype == SQZC_I64)
        v->i64[i] = x;
    else
        v->f32[i] = (float)x;
    return 0;
}

static void put_float(ox_val *v, int64_t i, double x) {
    /* float tensors only (class 1) */
    v->f32[i] = (float)x;
}

/* Decode one element stored as raw little-endian bytes. */
static int decode_raw_elem(int dt, const uint8_t *p, ox_val *v, int64_t i) {
    uint64_t b = raw_bits(p, elem_size(dt));
    switch (dt) {
    case DT_FLOAT: {
        uint32_t u = (uint32_t)b;
        float f;
        memcpy(&f, &u, sizeof f);
        put_float(v, i, f);
        return 0;
    }
    case DT_DOUBLE: {
        double d;
        memcpy(&d, &b, sizeof d);
        put_float(v, i, d);
        return 0;
    }
    case DT_FLOAT16:
        put_float(v, i, half_to_float((uint16_t)b));
        return 0;
    case DT_BFLOAT16:
        put_float(v, i, bf16_to_float((uint16_t)b));
        return 0;
    case DT_UINT8:
    case DT_UINT16:
    case DT_UINT32:
        return put_int(v, i, (int64_t)b);
    case DT_BOOL:
        return put_int(v, i, b != 0);
    case DT_INT8:
        return put_int(v, i, (int8_t)(uint8_t)b);
    case DT_INT16:
        return put_int(v, i, (int16_t)(uint16_t)b);
    case DT_INT32:
        return put_int(v, i, (int32_t)(uint32_t)b);
    case DT_INT64:
        return put_int(v, i, (int64_t)b);
    case DT_UINT64:
        if (b > (uint64_t)INT64_MAX) return -1;
        return put_int(v, i, (int64_t)b);
    default:
        return -1;
    }
}

/* Does name stay inside the model directory? (relative, no ".." component) */
static int safe_relative_path(const char *name) {
    if (!name[0] || name[0] == '/') return 0;
    const char *p = name;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < 0) return -1;
    *out = (int64_t)x;
    return 0;
}

/* Load external bytes for t into a fresh buffer of exactly want bytes. */
static uint8_t *read_external(const Onnx__TensorProto *t, const char *dir, const char *what,
                              size_t want, char *err, size_t err_len) {
    const char *loc = NULL;
    int64_t offset = 0, length = -1;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = t->external_data[k];
        const char *key = ox_s(e->key);
        if (strcmp(key, "location") == 0) {
            loc = ox_s(e->value);
        } else if (strcmp(key, "offset") == 0) {
            if (parse_i64(e->value, &offset) != 0) {
                snprintf(err, err_len, "tensor '%s': bad external data offset '%s'", what,
                         ox_s(e->value));
                return NULL;
            }
        } else if (strcmp(key, "length") == 0) {
            if (parse_i64(e->value, &length) != 0) {
                snprintf(err, err_len, "tensor '%s': bad external data length '%s'", what,
                         ox_s(e->value));
                return NULL;
            }
        }
    }
    if (!dir) {
        snprintf(err, err_len, "tensor '%s': external data not allowed here", what);
        return NULL;
    }
    if (!loc || !loc[0]) {
        snprintf(err, err_len, "tensor '%s': external data without a location", what);
        return NULL;
    }
    if (!safe_relative_path(loc)) {
        snprintf(err, err_len,
                 "tensor '%s': external data location '%s' escapes the model directory", what, loc);
        return NULL;
    }
    if (length >= 0 && (uint64_t)length != (uint64_t)want) {
        snprintf(err, err_len,
                 "tensor '%s': external data length %lld does not match its shape (%zu bytes)",
                 what, (long long)length, want);
        return NULL;
    }
    size_t plen = strlen(dir) + strlen(loc) + 2;
    char *full = malloc(plen);
    if (!full) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(full, plen, "%s/%s", dir, loc);
    FILE *f = fopen(full, "rb");
    if (!f) {
        snprintf(err, err_len, "tensor '%s': cannot open external data file '%s': %s", what, full,
                 strerror(errno));
        free(full);
        return NULL;
    }
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "tensor '%s': external data '%s' is not a regular file", what, full);
        goto done;
    }
    if ((uint64_t)offset > (uint64_t)st.st_size ||
        (uint64_t)st.st_size - (uint64_t)offset < (uint64_t)want) {
        snprintf(err, err_len,
                 "tensor '%s': external data '%s' too short (offset %lld + %zu bytes > file size "
                 "%lld)",
                 what, full, (long long)offset, want, (long long)st.st_size);
        goto done;
    }
    buf = malloc(want ? want : 1);
    if (!buf) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    if (fseeko(f, (off_t)offset, SEEK_SET) != 0 || fread(buf, 1, want, f) != want) {
        snprintf(err, err_len, "tensor '%s': cannot read external data '%s'", what, full);
        free(buf);
        buf = NULL;
    }
done:
    fclose(f);
    free(full);
    return buf;
}

static int decode(const Onnx__TensorProto *t, Onnx__TensorProto *take, const char *dir, ox_val *v,
                  char *err, size_t err_len);

int ox_tensor_decode(const Onnx__TensorProto *t, const char *dir, const char *path, ox_val *v,
                     char *err, size_t err_len) {
    (void)path;
    return decode(t, NULL, dir, v, err, err_len);
}

int ox_tensor_decode_take(Onnx__TensorProto *t, const char *dir, const char *path, ox_val *v,
                          char *err, size_t err_len) {
    (void)path;
    return decode(t, t, dir, v, err, err_len);
}

/* ox_tensor_decode; take (t itself, or NULL): its float raw_data may be
 * taken instead of copied */
static int decode(const Onnx__TensorProto *t, Onnx__TensorProto *take, const char *dir, ox_val *v,
                  char *err, size_t err_len) {
    const char *what = t->name && t->name[0] ? t->name : "(unnamed)";
    memset(v, 0, sizeof *v);
    int dt = t->has_data_type ? t->data_type : 0;
    int cls = ox_dtype_class(dt);
    if (!cls) {
        snprintf(err, err_len, "tensor '%s': unsupported data type %s", what, ox_dtype_name(dt));
        return -1;
    }
    if (t->segment) {
        snprintf(err, err_len, "tensor '%s': segmented tensors are not supported", what);
        return -1;
    }
    if (t->n_dims > SQZ_MAX_DIMS) {
        snprintf(err, err_len, "tensor '%s': rank %zu exceeds %d", what, t->n_dims, SQZ_MAX_DIMS);
        return -1;
    }
    v->shape.ndim = (int32_t)t->n_dims;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0) {
            snprintf(err, err_len, "tensor '%s': negative dim %lld", what, (long long)t->dims[i]);
            return -1;
        }
        v->shape.dims[i] = t->dims[i];
    }
    int64_t n = ox_numel(&v->shape);
    if (n < 0 || n > OX_MAX_CONST_ELEMS) {
        snprintf(err, err_len, "tensor '%s': too many elements", what);
        return -1;
    }
    v->dtype = cls == 1 ? SQZC_F32 : SQZC_I64;
    if (cls == 1)
        v->f32 = malloc((size_t)(n ? n : 1) * sizeof(float));
    else
        v->i64 = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (!v->f32 && !v->i64) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    size_t es = elem_size(dt);
    int external =
        t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external || t->has_raw_data) {
        size_t want = (size_t)n * es;
        const uint8_t *raw;
        uint8_t *owned = NULL;
        if (external) {
            owned = read_external(t, dir, what, want, err, err_len);
            if (!owned) goto fail;
            raw = owned;
        } else {
            if (t->raw_data.len != want) {
                snprintf(err, err_len,
                         "tensor '%s': raw_data has %zu bytes, its shape needs %zu (%lld x %zu)",
                         what, t->raw_data.len, want, (long long)n, es);
                goto fail;
            }
            raw = t->raw_data.data;
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (dt == DT_FLOAT && v->f32) { /* the host's layout: one copy (was a call per value) */
            if (take && !owned && n > 0 && (uintptr_t)raw % _Alignof(float) == 0) {
                /* or none: the unpacked proto's buffer (protobuf-c's default
                 * allocator: malloc) becomes v's; LeNet-300-100's 1 MB of
                 * weights were copied twice on import (~85 us) */
                free(v->f32);
                v->f32 = (float *)(void *)take->raw_data.data;
                take->raw_data.data = NULL;
                take->raw_data.len = 0;
                take->has_raw_data = 0;
                return 0;
            }
            if (n > 0) memcpy(v->f32, raw, (size_t)n * sizeof(float));
            free(owned);
            return 0;
        }
#endif
        for (int64_t i = 0; i < n; i++) {
            if (decode_raw_elem(dt, raw + (size_t)i * es, v, i) != 0) {
                snprintf(err, err_len, "tensor '%s': value out of int64 range", what);
                free(owned);
                goto fail;
            }
        }
        free(owned);
        return 0;
    }
    /* typed fields */
    size_t have;
    switch (dt) {
    case DT_FLOAT:
        have = t->n_float_data;
        break;
    case DT_DOUBLE:
        have = t->n_double_data;
        break;
    case DT_INT64:
        have = t->n_int64_data;
        break;
    case DT_UINT32:
    case DT_UINT64:
        have = t->n_uint64_data;
        break;
    default: /* int32_data carries INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16 */
        have = t->n_int32_data;
        break;
    }
    if (have != (size_t)n) {
        snprintf(err, err_len, "tensor '%s': has %zu values, its shape needs %lld", what, have,
                 (long long)n);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case DT_FLOAT:
            put_float(v, i, t->float_data[i]);
            break;
        case DT_DOUBLE:
            put_float(v, i, t->double_data[i]);
            break;
        case DT_FLOAT16:
            put_float(v, i, half_to_float((uint16_t)t->int32_data[i]));
            break;
        case DT_BFLOAT16:
            put_float(v, i, bf16_to_float((uint16_t)t->int32_data[i]));
            break;
        case DT_INT64:
            put_int(v, i, t->int64_data[i]);
            break;
        case DT_UINT32:
        case DT_UINT64:
            if (t->uint64_data[i] > (uint64_t)INT64_MAX) {
                snprintf(err, err_len, "tensor '%s': value out of int64 range", what);
                goto fail;
            }
            put_int(v, i, (int64_t)t->uint64_data[i]);
            break;
        case DT_BOOL:
            put_int(v, i, t->int32_data[i] != 0);
            break;
        default:
            put_int(v, i, t->int32_data[i]);
            break;
        }
    }
    return 0;
fail:
    ox_val_free(v);
    return -1;
}

uint8_t *ox_read_file(const char *path, size_t *len, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    if ((uint64_t)st.st_size >= OX_MAX_FILE) {
        snprintf(err, err_len, "%s: file too large (%lld bytes)", path, (long long)st.st_size);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, n, f) != n) {
        snprintf(err, err_len, "%s: read error", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

char *ox_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (slash && n == 0) n = 1; /* "/model.onnx" */
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (slash)
        memcpy(d, path, n);
    else
        d[0] = '.';
    d[n] = 0;
    return d;
}

int sqzc_read_tensor_pb(const char *path, float **data, sqz_shape *shape, char *err,
                        size_t err_len) {
    *data = NULL;
    size_t len;
    uint8_t *buf = ox_read_file(path, &len, err, err_len);
    if (!buf) return -1;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!t) {
        snprintf(err, err_len, "%s: not a valid ONNX TensorProto (truncated or corrupt protobuf)",
                 path);
        return -1;
    }
    char *dir = ox_dirname(path);
    ox_val v;
    char msg[512];
    int rc = dir ? ox_tensor_decode(t, dir, path, &v, msg, sizeof msg) : -1;
    if (!dir) snprintf(msg, sizeof msg, "out of memory");
    free(dir);
    onnx__tensor_proto__free_unpacked(t, NULL);
    if (rc != 0) {
        snprintf(err, err_len, "%s: %s", path, msg);
        return -1;
    }
    int64_t n = ox_numel(&v.shape);
    if (n < 0) n = 0; /* decode validated the dims; keeps the size arithmetic unsigned-safe */
    if (v.dtype == SQZC_I64) {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        if (!f) {
            ox_val_free(&v);
            snprintf(err, err_len, "%s: out of memory", path);
            return -1;
        }
        for (int64_t i = 0; i < n; i++) f[i] = (float)v.i64[i];
        free(v.i64);
        v.i64 = NULL;
        v.f32 = f;
    }
    *data = v.f32;
    *shape = v.shape;
    return 0;
}
