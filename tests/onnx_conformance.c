/* onnx_conformance.c - run the ONNX backend node tests through the whole sqz
 * pipeline: ONNX import -> sqzc_optimize -> sqzc_serialize ->
 * sqz_model_load_buffer -> session -> run, and compare with the reference
 * outputs shipped with the tests (Debian libonnx-testdata).
 *
 * usage: onnx_conformance [--data-dir DIR] [--filter SUBSTR] [-v] [--list-refused]
 *                         [--expect-refused FILE] [--no-fork]
 *
 * A test is "claimed" when every op of its model is in the runtime's op set
 * (sqz_op_from_name), or is Dropout, Constant or Upsample (lowered at import).
 * Unclaimed tests are only counted. A claimed test ends as
 *   PASS     every output of every test_data_set_* matches;
 *   FAIL     wrong numbers or shape (max abs error reported);
 *   REFUSED  import or session creation refused it with a message (which must
 *            name the unsupported op / attribute);
 *   ERROR    anything else (optimize / serialize / load / run failure, crash,
 *            sanitizer report, timeout); counted as failed.
 * Each test runs in a forked child so a crash is an ERROR, not the end of the
 * run (--no-fork runs in-process, for debuggers).
 *
 * Inputs: input_N.pb is the N-th graph input (initializers excluded). An input
 * is bound as a compile-time constant (sqzc_import_options.const_inputs) when
 * its dtype is not floating point (int64 shapes, axes...) or when it feeds a
 * parameter position that sqz folds into an attribute (sqz/ops.h: Reshape
 * shape, Slice starts/ends/axes/steps, Pad pads/value, Resize roi/scales/
 * sizes, Split split, Squeeze/Unsqueeze axes, ReduceMean axes, Clip min/max,
 * plus Upsample scales and Dropout ratio/training_mode). The others are fed at
 * run time with the .pb shapes as import and session input shapes.
 *
 * The last lines printed are "not claimed: U", "refused: K" and exactly
 * "N passed, M failed"; the exit code is non-zero when M > 0. With
 * --expect-refused FILE (one test name per line, '#' comments) a refused test
 * not in the list counts as failed: CI pins tests/conformance_refused.txt.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "sqz/ops.h"
#include "sqz/sqz.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/writer.h"

#define DEFAULT_DATA_DIR "/usr/include/onnx/backend/test/data/node"
#define PATH_LEN 4096
#define MSG_LEN 1024
#define MAX_IO 32
#define CHILD_TIMEOUT_S 60

/* Tolerances as in ONNX's backend test runner (onnx/backend/test/runner:
 * np.testing.assert_allclose(ref, out, rtol=1e-3, atol=1e-7)), with atol
 * widened to 1e-5 because sqz computes in float32 while some references were
 * produced in float64. An element passes when |a-b| <= atol + rtol*|b|. */
#define CMP_RTOL 1e-3
#define CMP_ATOL 1e-5

typedef enum outcome {
    OUT_PASS = 0,
    OUT_REFUSED = 1,
    OUT_FAIL = 2,
    OUT_ERROR = 3,
} outcome;

static const char *outcome_name(int o) {
    switch (o) {
    case OUT_PASS:
        return "PASS";
    case OUT_REFUSED:
        return "REFUSED";
    case OUT_FAIL:
        return "FAIL";
    default:
        return "ERROR";
    }
}

typedef struct result {
    int outcome;
    double max_err;
    char msg[MSG_LEN];
} result;

static void set_result(result *r, int o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void set_result(result *r, int o, const char *fmt, ...) {
    va_list ap;
    r->outcome = o;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

/* Message into err (truncated to err_len). */
static void errf(char *err, size_t err_len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void errf(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ file helpers */

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) != 0) goto fail;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    uint8_t *p = malloc((size_t)n + 1);
    if (!p) goto fail;
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        goto fail;
    }
    fclose(f);
    *buf = p;
    *len = (size_t)n;
    return 0;
fail:
    fclose(f);
    return -1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_names(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Sorted entry names of dir starting with prefix. 0 ok, -1 error. */
static int list_dir(const char *dir, const char *prefix, char ***out, size_t *count) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    size_t plen = strlen(prefix);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) != 0) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nv = realloc(v, nc * sizeof *nv);
            if (!nv) goto oom;
            v = nv;
            cap = nc;
        }
        v[n] = strdup(e->d_name);
        if (!v[n]) goto oom;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *count = n;
    return 0;
oom:
    closedir(d);
    free_names(v, n);
    return -1;
}

/* ------------------------------------------------------ TensorProto reader */

typedef struct ref_tensor {
    char name[256];
    int dtype; /* ONNX__TENSOR_PROTO__DATA_TYPE__* */
    int ndim;
    int64_t dims[16];
    size_t n;
    double *data; /* n elements, converted */
} ref_tensor;

static void ref_tensor_free(ref_tensor *t) {
    free(t->data);
    t->data = NULL;
}

static int dtype_is_float(int dt) {
    return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

static double half_to_double(uint16_t h) {
    int sign = h >> 15, ex = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (ex == 0)
        v = ldexp((double)man, -24);
    else if (ex == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp((double)(man | 0x400), ex - 25);
    return sign ? -v : v;
}

static double bf16_to_double(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return (double)f;
}

/* Element byte size for raw_data, 0 when unsupported. */
static size_t raw_elem_size(int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
        return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
        return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return 8;
    default:
        return 0;
    }
}

/* Little-endian host assumed (as the .sqz format itself). */
static double raw_elem(const uint8_t *p, int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? half_to_double(v) : bf16_to_double(v);
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
        return (double)(int8_t)p[0];
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return (double)p[0];
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    }
}

/* Read a TensorProto .pb; with want_data the elements are converted to
 * double. 0 ok, -1 with err. */
static int read_ref_tensor(const char *path, int want_data, ref_tensor *t, char *err,
                           size_t err_len) {
    memset(t, 0, sizeof *t);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len) != 0) {
        errf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) {
        errf(err, err_len, "%s: not a TensorProto", path);
        return -1;
    }
    int rc = -1;
    if (tp->name) snprintf(t->name, sizeof t->name, "%s", tp->name);
    t->dtype = tp->has_data_type ? tp->data_type : 0;
    if (tp->n_dims > sizeof t->dims / sizeof t->dims[0]) {
        errf(err, err_len, "%s: rank %zu too large", path, tp->n_dims);
        goto done;
    }
    t->ndim = (int)tp->n_dims;
    size_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t d = tp->dims[i];
        if (d < 0 || (d > 0 && n > SIZE_MAX / 8 / (size_t)d)) {
            errf(err, err_len, "%s: bad dim %lld", path, (long long)d);
            goto done;
        }
        t->dims[i] = d;
        n *= (size_t)d;
    }
    t->n = n;
    if (n > len) { /* every element takes at least one byte of the file */
        errf(err, err_len, "%s: %zu elements in a %zu-byte file", path, n, len);
        goto done;
    }
    if (!want_data) {
        rc = 0;
        goto done;
    }
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        errf(err, err_len, "%s: external data not supported by the runner", path);
        goto done;
    }
    t->data = malloc((n ? n : 1) * sizeof *t->data);
    if (!t->data) {
        errf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    int dt = t->dtype;
    if (tp->has_raw_data) {
        size_t es = raw_elem_size(dt);
        if (es == 0 || tp->raw_data.len != n * es) {
            errf(err, err_len, "%s: dtype %d raw_data of %zu bytes for %zu elements", path, dt,
                 tp->raw_data.len, n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) t->data[i] = raw_elem(tp->raw_data.data + i * es, dt);
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && tp->n_float_data == n) {
        for (size_t i = 0; i < n; i++) t->data[i] = tp->float_data[i];
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE && tp->n_double_data == n) {
        for (size_t i = 0; i < n; i++) t->data[i] = tp->double_data[i];
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && tp->n_int64_data == n) {
        for (size_t i = 0; i < n; i++) t->data[i] = (double)tp->int64_data[i];
    } else if ((dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32 ||
                dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64) &&
               tp->n_uint64_data == n) {
        for (size_t i = 0; i < n; i++) t->data[i] = (double)tp->uint64_data[i];
    } else if (tp->n_int32_data == n && (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT16 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT16 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
                                         dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)) {
        for (size_t i = 0; i < n; i++) {
            int32_t v = tp->int32_data[i];
            if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16)
                t->data[i] = half_to_double((uint16_t)v);
            else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)
                t->data[i] = bf16_to_double((uint16_t)v);
            else
                t->data[i] = v;
        }
    } else {
        errf(err, err_len, "%s: dtype %d: no data for %zu elements", path, dt, n);
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) ref_tensor_free(t);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

/* ------------------------------------------------------------ model facts */

typedef struct model_info {
    int claimed;
    char unclaimed_ops[256]; /* for -v -v */
    size_t n_inputs;         /* graph inputs without initializers */
    char *inputs[MAX_IO];
    int input_is_param[MAX_IO]; /* feeds a folded parameter position */
    size_t n_outputs;
    char *outputs[MAX_IO];
} model_info;

static void model_info_free(model_info *mi) {
    for (size_t i = 0; i < mi->n_inputs; i++) free(mi->inputs[i]);
    for (size_t i = 0; i < mi->n_outputs; i++) free(mi->outputs[i]);
    memset(mi, 0, sizeof *mi);
}

/* Ops that sqz lowers at import without a runtime op of the same name. */
static int op_claimed(const char *op_type) {
    if (sqz_op_from_name(op_type) != SQZ_OP_INVALID) return 1;
    return strcmp(op_type, "Dropout") == 0 || strcmp(op_type, "Constant") == 0 ||
           strcmp(op_type, "Upsample") == 0;
}

/* First input index of op_type that sqz folds into an attribute (sqz/ops.h),
 * or -1 when all inputs are data. */
static int first_param_input(const char *op_type) {
    static const char *const ops[] = {"Reshape",    "Slice", "Pad",     "Resize",
                                      "Upsample",   "Split", "Squeeze", "Unsqueeze",
                                      "ReduceMean", "Clip",  "Dropout"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op_type, ops[i]) == 0) return 1;
    return -1;
}

static void append_op(char *buf, size_t len, const char *op) {
    if (strstr(buf, op)) return;
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? "," : "", op);
}

static int load_model_info(const char *path, model_info *mi, char *err, size_t err_len) {
    memset(mi, 0, sizeof *mi);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len) != 0) {
        errf(err, err_len, "%s: cannot read", path);
        return -1;
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!mp || !mp->graph) {
        errf(err, err_len, "%s: not a ModelProto", path);
        if (mp) onnx__model_proto__free_unpacked(mp, NULL);
        return -1;
    }
    int rc = -1;
    const Onnx__GraphProto *g = mp->graph;
    mi->claimed = 1;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const char *op = n->op_type ? n->op_type : "";
        int std_domain = !n->domain || !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
        if (!std_domain || !op_claimed(op)) {
            mi->claimed = 0;
            append_op(mi->unclaimed_ops, sizeof mi->unclaimed_ops, op);
        }
    }
    /* sqz runs tensors only: sequence / optional / map graph I/O is unclaimed */
    for (size_t i = 0; i < g->n_input + g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = i < g->n_input ? g->input[i] : g->output[i - g->n_input];
        if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
            mi->claimed = 0;
            append_op(mi->unclaimed_ops, sizeof mi->unclaimed_ops, "<non-tensor I/O>");
        }
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = g->input[i]->name ? g->input[i]->name : "";
        int is_init = 0;
        for (size_t k = 0; k < g->n_initializer; k++)
            if (g->initializer[k]->name && strcmp(g->initializer[k]->name, name) == 0) is_init = 1;
        if (is_init) continue;
        if (mi->n_inputs == MAX_IO) {
            errf(err, err_len, "%s: too many inputs", path);
            goto done;
        }
        int param = 0;
        for (size_t k = 0; k < g->n_node; k++) {
            const Onnx__NodeProto *n = g->node[k];
            int first = first_param_input(n->op_type ? n->op_type : "");
            if (first < 0) continue;
            for (size_t j = (size_t)first; j < n->n_input; j++)
                if (strcmp(n->input[j], name) == 0) param = 1;
        }
        mi->input_is_param[mi->n_inputs] = param;
        mi->inputs[mi->n_inputs] = strdup(name);
        if (!mi->inputs[mi->n_inputs]) goto oom;
        mi->n_inputs++;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        if (mi->n_outputs == MAX_IO) {
            errf(err, err_len, "%s: too many outputs", path);
            goto done;
        }
        mi->outputs[mi->n_outputs] = strdup(g->output[i]->name ? g->output[i]->name : "");
        if (!mi->outputs[mi->n_outputs]) goto oom;
        mi->n_outputs++;
    }
    rc = 0;
    goto done;
oom:
    errf(err, err_len, "out of memory");
done:
    onnx__model_proto__free_unpacked(mp, NULL);
    if (rc != 0) model_info_free(mi);
    return rc;
}

/* ------------------------------------------------------ one data set */

static void fmt_dims(char *buf, size_t len, int ndim, const int64_t *dims) {
    size_t used = 0;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* Compare got (float) with want; fills r on mismatch. Returns 0 when equal. */
static int compare_output(const char *oname, int oi, const float *got, const sqz_shape *gs,
                          const ref_tensor *want, result *r) {
    int same = gs->ndim == want->ndim;
    for (int i = 0; same && i < want->ndim; i++) same = gs->dims[i] == want->dims[i];
    if (!same) {
        char a[128], b[128];
        fmt_dims(a, sizeof a, gs->ndim < 0 ? 0 : gs->ndim, gs->dims);
        fmt_dims(b, sizeof b, want->ndim, want->dims);
        set_result(r, OUT_FAIL, "output %d '%s': shape %s, expected %s", oi, oname, a, b);
        return -1;
    }
    double max_err = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < want->n; i++) {
        double a = got[i], b = want->data[i];
        int ok;
        double e;
        if (isnan(b) || isnan(a)) {
            ok = isnan(a) && isnan(b);
            e = ok ? 0 : INFINITY;
        } else if (isinf(b) || isinf(a)) {
            ok = a == b;
            e = ok ? 0 : INFINITY;
        } else {
            e = fabs(a - b);
            ok = e <= CMP_ATOL + CMP_RTOL * fabs(b);
        }
        if (!ok) {
            if (bad == 0 || e > max_err) worst = i;
            bad++;
        }
        if (e > max_err) max_err = e;
    }
    if (max_err > r->max_err) r->max_err = max_err;
    if (bad) {
        set_result(r, OUT_FAIL,
                   "output %d '%s': wrong values, max abs err %.6g; %zu/%zu outside tolerance "
                   "(first worst at %zu: got %.7g, want %.7g)",
                   oi, oname, max_err, bad, want->n, worst, (double)got[worst], want->data[worst]);
        return -1;
    }
    return 0;
}

static int to_sqz_shape(const ref_tensor *t, sqz_shape *s) {
    if (t->ndim > SQZ_MAX_DIMS) return -1;
    memset(s, 0, sizeof *s);
    s->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) s->dims[i] = t->dims[i];
    return 0;
}

typedef struct run_ctx {
    const char *model_path;
    const char *set_dir;
    const model_info *mi;
} run_ctx;

static void run_data_set(const run_ctx *c, result *r) {
    char path[PATH_LEN], err[MSG_LEN];
    ref_tensor ins[MAX_IO], outs[MAX_IO];
    size_t n_in = 0, n_out = 0;
    char in_paths[MAX_IO][PATH_LEN];
    sqzc_named_shape shapes[MAX_IO];
    sqzc_const_binding consts[MAX_IO];
    int n_shapes = 0, n_consts = 0;
    int is_rt[MAX_IO] = {0};
    sqzc_graph *g = NULL;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    r->outcome = OUT_PASS;
    r->msg[0] = 0;

    /* Inputs. */
    for (;;) {
        if (snprintf(path, sizeof path, "%s/input_%zu.pb", c->set_dir, n_in) >= (int)sizeof path ||
            !file_exists(path))
            break;
        if (n_in == MAX_IO || n_in >= c->mi->n_inputs) {
            set_result(r, OUT_ERROR, "more input_N.pb files than graph inputs");
            goto done;
        }
        if (read_ref_tensor(path, 1, &ins[n_in], err, sizeof err) != 0) {
            set_result(r, OUT_ERROR, "%s", err);
            goto done;
        }
        snprintf(in_paths[n_in], PATH_LEN, "%s", path);
        n_in++;
    }
    for (;;) {
        if (snprintf(path, sizeof path, "%s/output_%zu.pb", c->set_dir, n_out) >=
                (int)sizeof path ||
            !file_exists(path))
            break;
        if (n_out == MAX_IO || n_out >= c->mi->n_outputs) {
            set_result(r, OUT_ERROR, "more output_N.pb files than graph outputs");
            goto done;
        }
        if (read_ref_tensor(path, 1, &outs[n_out], err, sizeof err) != 0) {
            set_result(r, OUT_ERROR, "%s", err);
            goto done;
        }
        n_out++;
    }
    for (size_t i = 0; i < n_in; i++) {
        /* input_N.pb names its graph input when named; else position N. */
        const char *name = c->mi->inputs[i];
        for (size_t k = 0; k < c->mi->n_inputs; k++)
            if (ins[i].name[0] && strcmp(ins[i].name, c->mi->inputs[k]) == 0) {
                name = c->mi->inputs[k];
                is_rt[i] = !c->mi->input_is_param[k];
            }
        if (strcmp(name, c->mi->inputs[i]) == 0) is_rt[i] = !c->mi->input_is_param[i];
        snprintf(ins[i].name, sizeof ins[i].name, "%s", name);
        if (!dtype_is_float(ins[i].dtype)) is_rt[i] = 0;
        if (is_rt[i]) {
            shapes[n_shapes].name = ins[i].name;
            if (to_sqz_shape(&ins[i], &shapes[n_shapes].shape) != 0) {
                set_result(r, OUT_ERROR, "input '%s': rank %d > SQZ_MAX_DIMS", ins[i].name,
                           ins[i].ndim);
                goto done;
            }
            n_shapes++;
        } else {
            consts[n_consts].name = ins[i].name;
            consts[n_consts].path = in_paths[i];
            n_consts++;
        }
    }

    sqzc_import_options io;
    memset(&io, 0, sizeof io);
    io.input_shapes = shapes;
    io.n_input_shapes = n_shapes;
    io.const_inputs = consts;
    io.n_const_inputs = n_consts;
    err[0] = 0;
    if (sqzc_import_onnx(c->model_path, &io, &g, err, sizeof err) != 0) {
        if (!err[0])
            set_result(r, OUT_ERROR, "import failed with an empty message");
        else
            set_result(r, OUT_REFUSED, "import: %s", err);
        goto done;
    }
    err[0] = 0;
    if (sqzc_optimize(g, err, sizeof err) != 0) {
        set_result(r, OUT_ERROR, "optimize: %s", err);
        goto done;
    }
    err[0] = 0;
    if (sqzc_serialize(g, &blob, &blob_len, err, sizeof err) != 0) {
        set_result(r, OUT_ERROR, "serialize: %s", err);
        goto done;
    }
    if (sqz_model_load_buffer(blob, blob_len, &m, &st) != SQZ_OK) {
        set_result(r, OUT_ERROR, "load: code %d: %s", (int)st.code, st.msg);
        goto done;
    }
    sqz_input_shape sshapes[MAX_IO];
    for (int i = 0; i < n_shapes; i++) {
        sshapes[i].name = shapes[i].name;
        sshapes[i].shape = shapes[i].shape;
    }
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    so.input_shapes = sshapes;
    so.n_input_shapes = n_shapes;
    sqz_code code = sqz_session_create(m, &so, &s, &st);
    if (code != SQZ_OK) {
        if (code == SQZ_ERR_UNSUPPORTED && st.msg[0])
            set_result(r, OUT_REFUSED, "session: %s", st.msg);
        else
            set_result(r, OUT_ERROR, "session: code %d: %s", (int)code, st.msg);
        goto done;
    }
    int n_model_in = sqz_model_num_inputs(m);
    int set_count = 0;
    for (size_t i = 0; i < n_in; i++) {
        if (!is_rt[i]) continue;
        int idx = sqz_session_find_input(s, ins[i].name);
        if (idx < 0) continue; /* input unused after import: nothing to feed */
        float *f = malloc((ins[i].n ? ins[i].n : 1) * sizeof *f);
        if (!f) {
            set_result(r, OUT_ERROR, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < ins[i].n; k++) f[k] = (float)ins[i].data[k];
        code = sqz_session_set_input(s, idx, f, ins[i].n, &st);
        free(f);
        if (code != SQZ_OK) {
            set_result(r, OUT_ERROR, "set_input '%s': code %d: %s", ins[i].name, (int)code, st.msg);
            goto done;
        }
        set_count++;
    }
    if (set_count != n_model_in) {
        set_result(r, OUT_ERROR, "model has %d inputs, runner fed %d", n_model_in, set_count);
        goto done;
    }
    if (sqz_session_run(s, &st) != SQZ_OK) {
        set_result(r, OUT_ERROR, "run: code %d: %s", (int)st.code, st.msg);
        goto done;
    }
    int n_model_out = sqz_model_num_outputs(m);
    for (size_t i = 0; i < n_out; i++) {
        const char *oname = c->mi->outputs[i];
        int idx = -1;
        for (int k = 0; k < n_model_out; k++) {
            const char *mn = sqz_model_output_name(m, k);
            if (mn && strcmp(mn, oname) == 0) idx = k;
        }
        if (idx < 0) {
            set_result(r, OUT_ERROR, "output '%s' missing from the sqz model", oname);
            goto done;
        }
        const float *data = NULL;
        sqz_shape oshape;
        memset(&oshape, 0, sizeof oshape);
        if (sqz_session_output(s, idx, &data, &oshape, &st) != SQZ_OK ||
            (!data && sqz_shape_numel(&oshape) != 0)) {
            set_result(r, OUT_ERROR, "output '%s': code %d: %s", oname, (int)st.code, st.msg);
            goto done;
        }
        if (compare_output(oname, (int)i, data, &oshape, &outs[i], r) != 0) goto done;
    }
done:
    if (s) sqz_session_free(s);
    if (m) sqz_model_free(m);
    free(blob);
    if (g) sqzc_graph_free(g);
    for (size_t i = 0; i < n_in; i++) ref_tensor_free(&ins[i]);
    for (size_t i = 0; i < n_out; i++) ref_tensor_free(&outs[i]);
}

/* All data sets of one test; the worst outcome wins. */
static void run_test(const char *test_dir, const model_info *mi, result *r) {
    char model_path[PATH_LEN], set_dir[PATH_LEN];
    char **sets = NULL;
    size_t n_sets = 0;
    memset(r, 0, sizeof *r);
    if (snprintf(model_path, sizeof model_path, "%s/model.onnx", test_dir) >=
        (int)sizeof model_path) {
        set_result(r, OUT_ERROR, "path too long");
        return;
    }
    if (list_dir(test_dir, "test_data_set_", &sets, &n_sets) != 0) {
        set_result(r, OUT_ERROR, "cannot list %s", test_dir);
        return;
    }
    if (n_sets == 0) set_result(r, OUT_ERROR, "no test_data_set_*");
    for (size_t i = 0; i < n_sets; i++) {
        result one;
        memset(&one, 0, sizeof one);
        if (snprintf(set_dir, sizeof set_dir, "%s/%s", test_dir, sets[i]) >= (int)sizeof set_dir)
            continue;
        run_ctx c = {model_path, set_dir, mi};
        run_data_set(&c, &one);
        if (one.max_err > r->max_err) r->max_err = one.max_err;
        if (one.outcome > r->outcome) {
            r->outcome = one.outcome;
            if (n_sets > 1)
                snprintf(r->msg, sizeof r->msg, "%.64s: %.900s", sets[i], one.msg);
            else
                snprintf(r->msg, sizeof r->msg, "%s", one.msg);
        }
        if (one.outcome == OUT_REFUSED) break; /* the same refusal for every set */
    }
    free_names(sets, n_sets);
}

/* Run in a child so that crashes and sanitizer aborts become ERROR. */
static void run_test_forked(const char *test_dir, const model_info *mi, result *r) {
    int fds[2];
    memset(r, 0, sizeof *r);
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        set_result(r, OUT_ERROR, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        set_result(r, OUT_ERROR, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(CHILD_TIMEOUT_S);
        result cr;
        run_test(test_dir, mi, &cr);
        const char *p = (const char *)&cr;
        size_t left = sizeof cr;
        while (left > 0) {
            ssize_t w = write(fds[1], p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            p += w;
            left -= (size_t)w;
        }
        close(fds[1]);
        exit(0); /* normal exit: LeakSanitizer checks the child */
    }
    close(fds[1]);
    result cr;
    char *p = (char *)&cr;
    size_t got = 0;
    while (got < sizeof cr) {
        ssize_t n = read(fds[0], p + got, sizeof cr - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        set_result(r, OUT_ERROR, "crashed: signal %d (%s)%s", sig, strsignal(sig),
                   sig == SIGALRM ? ", timeout" : "");
    } else if (got != sizeof cr) {
        set_result(r, OUT_ERROR, "child died without a result (exit %d)",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else {
        *r = cr;
        r->msg[sizeof r->msg - 1] = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            char prev[MSG_LEN];
            snprintf(prev, sizeof prev, "%s", r->msg);
            set_result(r, OUT_ERROR, "exit code %d (sanitizer/leak report on stderr)%s%.900s",
                       WEXITSTATUS(status), prev[0] ? "; " : "", prev);
        }
    }
}

/* ------------------------------------------------------ expected refusals */

typedef struct name_list {
    char **v;
    size_t n, cap;
    int *seen;
} name_list;

static int load_name_list(const char *path, name_list *l) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *b = line;
        while (*b == ' ' || *b == '\t') b++;
        size_t n = strcspn(b, " \t\r\n");
        b[n] = 0;
        if (!*b) continue;
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 64;
            char **nv = realloc(l->v, nc * sizeof *nv);
            if (!nv) goto fail;
            l->v = nv;
            l->cap = nc;
        }
        l->v[l->n] = strdup(b);
        if (!l->v[l->n]) goto fail;
        l->n++;
    }
    fclose(f);
    l->seen = calloc(l->n ? l->n : 1, sizeof *l->seen);
    return l->seen ? 0 : -1;
fail:
    fclose(f);
    return -1;
}

static int name_list_find(const name_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0) return (int)i;
    return -1;
}

static void name_list_free(name_list *l) {
    free_names(l->v, l->n);
    free(l->seen);
}

/* ------------------------------------------------------------------ main */

typedef struct report_line {
    char *name;
    int outcome;
    char *msg;
} report_line;

static void usage(FILE *f) {
    fprintf(f, "usage: onnx_conformance [--data-dir DIR] [--filter SUBSTR] [-v] [--list-refused]\n"
               "                        [--expect-refused FILE] [--no-fork]\n");
}

int main(int argc, char **argv) {
    const char *data_dir = DEFAULT_DATA_DIR;
    const char *filter = NULL;
    const char *expect_path = NULL;
    int verbose = 0, list_refused = 0, use_fork = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--data-dir") == 0 && i + 1 < argc)
            data_dir = argv[++i];
        else if (strcmp(a, "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strcmp(a, "--expect-refused") == 0 && i + 1 < argc)
            expect_path = argv[++i];
        else if (strcmp(a, "-v") == 0)
            verbose++;
        else if (strcmp(a, "-vv") == 0)
            verbose += 2;
        else if (strcmp(a, "--list-refused") == 0)
            list_refused = 1;
        else if (strcmp(a, "--no-fork") == 0)
            use_fork = 0;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    name_list expect;
    memset(&expect, 0, sizeof expect);
    if (expect_path && load_name_list(expect_path, &expect) != 0) {
        fprintf(stderr, "onnx_conformance: cannot read %s\n", expect_path);
        name_list_free(&expect);
        return 2;
    }
    char **tests = NULL;
    size_t n_tests = 0;
    if (!is_dir(data_dir) || list_dir(data_dir, "test_", &tests, &n_tests) != 0) {
        fprintf(stderr, "onnx_conformance: cannot list %s\n", data_dir);
        name_list_free(&expect);
        return 2;
    }
    report_line *lines = calloc(n_tests ? n_tests : 1, sizeof *lines);
    if (!lines) {
        fprintf(stderr, "onnx_conformance: out of memory\n");
        free_names(tests, n_tests);
        name_list_free(&expect);
        return 2;
    }
    size_t n_lines = 0;
    int passed = 0, failed = 0, refused = 0, not_claimed = 0, unexpected_refused = 0;
    char test_dir[PATH_LEN], model_path[PATH_LEN], err[MSG_LEN];
    for (size_t t = 0; t < n_tests; t++) {
        const char *name = tests[t];
        if (filter && !strstr(name, filter)) continue;
        if (snprintf(test_dir, sizeof test_dir, "%s/%s", data_dir, name) >= (int)sizeof test_dir ||
            snprintf(model_path, sizeof model_path, "%s/model.onnx", test_dir) >=
                (int)sizeof model_path ||
            !file_exists(model_path))
            continue;
        model_info mi;
        result r;
        memset(&r, 0, sizeof r);
        if (load_model_info(model_path, &mi, err, sizeof err) != 0) {
            /* An unreadable model of a test the runner cannot judge. */
            not_claimed++;
            if (verbose > 1) printf("%-8s %s: %s\n", "NOCLAIM", name, err);
            continue;
        }
        if (!mi.claimed) {
            not_claimed++;
            if (verbose > 1) printf("%-8s %s (ops: %s)\n", "NOCLAIM", name, mi.unclaimed_ops);
            model_info_free(&mi);
            continue;
        }
        if (use_fork)
            run_test_forked(test_dir, &mi, &r);
        else
            run_test(test_dir, &mi, &r);
        model_info_free(&mi);

        int counts_failed = 0;
        switch (r.outcome) {
        case OUT_PASS:
            passed++;
            break;
        case OUT_REFUSED:
            refused++;
            if (expect_path) {
                int k = name_list_find(&expect, name);
                if (k < 0) {
                    unexpected_refused++;
                    counts_failed = 1;
                } else
                    expect.seen[k] = 1;
            }
            break;
        default:
            counts_failed = 1;
            break;
        }
        if (counts_failed) failed++;
        if (verbose) {
            if (r.outcome == OUT_PASS)
                printf("%-8s %s\n", "PASS", name);
            else
                printf("%-8s %s: %s%s\n", outcome_name(r.outcome), name, r.msg,
                       r.outcome == OUT_REFUSED && counts_failed ? " [not expected]" : "");
            fflush(stdout);
        }
        if (r.outcome != OUT_PASS) {
            lines[n_lines].name = strdup(name);
            lines[n_lines].msg = strdup(r.msg);
            lines[n_lines].outcome = counts_failed ? -r.outcome : r.outcome;
            if (lines[n_lines].name && lines[n_lines].msg)
                n_lines++;
            else {
                free(lines[n_lines].name);
                free(lines[n_lines].msg);
            }
        }
    }

    if (list_refused && refused) {
        printf("\nrefused tests:\n");
        for (size_t i = 0; i < n_lines; i++) {
            int o = lines[i].outcome < 0 ? -lines[i].outcome : lines[i].outcome;
            if (o == OUT_REFUSED)
                printf("  %s: %s%s\n", lines[i].name, lines[i].msg,
                       lines[i].outcome < 0 ? " [not expected]" : "");
        }
    }
    if (failed) {
        printf("\nfailed tests:\n");
        for (size_t i = 0; i < n_lines; i++) {
            if (lines[i].outcome >= 0) continue;
            int o = -lines[i].outcome;
            printf("  %-8s %s: %s%s\n", outcome_name(o), lines[i].name, lines[i].msg,
                   o == OUT_REFUSED ? " [refusal not in the expected list]" : "");
        }
    }
    if (expect_path) {
        int stale = 0;
        for (size_t i = 0; i < expect.n; i++) {
            if (expect.seen[i] || (filter && !strstr(expect.v[i], filter))) continue;
            if (!stale++)
                printf("\nexpected refusals that were not refused (update %s):\n", expect_path);
            printf("  %s\n", expect.v[i]);
        }
    }
    printf("\nnot claimed: %d\n", not_claimed);
    printf("refused: %d\n", refused);
    if (unexpected_refused) printf("unexpected refusals: %d\n", unexpected_refused);
    printf("%d passed, %d failed\n", passed, failed);

    for (size_t i = 0; i < n_lines; i++) {
        free(lines[i].name);
        free(lines[i].msg);
    }
    free(lines);
    free_names(tests, n_tests);
    name_list_free(&expect);
    return failed > 0 ? 1 : 0;
}
