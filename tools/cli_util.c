/* cli_util.c - shared helpers of the sqz command-line tool. */
#include "cli_util.h"

#include "sqz/sqz.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "sqz %s: %s\n", cmd ? cmd : "", msg);
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *i += 1;
    *val = argv[*i];
    return 1;
}

/* strtoll / strtod skip leading spaces; the CLI does not. */
static int starts_clean(const char *s) {
    return s && *s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\v' &&
           *s != '\f';
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    if (!starts_clean(s)) return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float *out) {
    if (!starts_clean(s)) return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || fabs(v) > 3.4e38) return -1;
    *out = (float)v;
    return 0;
}

/* Split s at commas; call fn on each NUL-terminated element. */
static int split_list(const char *s, int max, int (*fn)(const char *, void *, int), void *out) {
    if (!s || !*s) return -1;
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, s, len + 1);
    int n = 0;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (n >= max || fn(p, out, n) != 0) {
            free(copy);
            return -1;
        }
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    free(copy);
    return n;
}

static int put_int(const char *s, void *out, int i) {
    long long v;
    if (cli_parse_int(s, INT64_MIN, INT64_MAX, &v) != 0) return -1;
    ((int64_t *)out)[i] = (int64_t)v;
    return 0;
}

static int put_float(const char *s, void *out, int i) {
    return cli_parse_float(s, &((float *)out)[i]);
}

int cli_parse_int_list(const char *s, int64_t *out, int max) {
    return split_list(s, max, put_int, out);
}

int cli_parse_float_list(const char *s, float *out, int max) {
    return split_list(s, max, put_float, out);
}

int cli_parse_named_shape(const char *s, char **name, sqz_shape *shape, char *err, size_t err_len) {
    *name = NULL;
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s) {
        snprintf(err, err_len, "bad input shape '%s' (expected name:d0,d1,...)", s ? s : "");
        return -1;
    }
    int64_t dims[SQZ_MAX_DIMS];
    int n = cli_parse_int_list(colon + 1, dims, SQZ_MAX_DIMS);
    if (n < 1) {
        snprintf(err, err_len, "bad input shape '%s' (dims must be %d or fewer integers)", s,
                 SQZ_MAX_DIMS);
        return -1;
    }
    int64_t total = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 1 || dims[i] > (INT64_C(1) << 31) || total > (INT64_C(1) << 40) / dims[i]) {
            snprintf(err, err_len, "bad input shape '%s' (dim %d out of range)", s, i);
            return -1;
        }
        total *= dims[i];
    }
    size_t nl = (size_t)(colon - s);
    *name = malloc(nl + 1);
    if (!*name) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    memcpy(*name, s, nl);
    (*name)[nl] = '\0';
    memset(shape, 0, sizeof *shape);
    shape->ndim = n;
    for (int i = 0; i < n; i++) shape->dims[i] = dims[i];
    return 0;
}

const char *cli_shape_str(const sqz_shape *s, char *buf, size_t len) {
    if (!buf || len == 0) return "";
    size_t pos = 0;
    buf[0] = '\0';
    int nd = s->ndim;
    if (nd < 0 || nd > SQZ_MAX_DIMS) {
        snprintf(buf, len, "?");
        return buf;
    }
    int w = snprintf(buf, len, "[");
    pos = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < nd && pos < len; i++) {
        w = snprintf(buf + pos, len - pos, "%s%lld", i ? "," : "", (long long)s->dims[i]);
        if (w < 0) break;
        pos += (size_t)w;
    }
    if (pos < len) snprintf(buf + pos, len - pos, "]");
    return buf;
}

int cli_atomic_open(cli_atomic *a, const char *path, char *err, size_t err_len) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path);
    a->tmp = malloc(n + 16);
    a->path = malloc(n + 1);
    if (!a->tmp || !a->path) {
        free(a->tmp);
        free(a->path);
        memset(a, 0, sizeof *a);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    memcpy(a->path, path, n + 1);
    snprintf(a->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        snprintf(err, err_len, "cannot create '%s': %s", path, strerror(errno));
        free(a->tmp);
        free(a->path);
        memset(a, 0, sizeof *a);
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        snprintf(err, err_len, "cannot open '%s': %s", a->tmp, strerror(errno));
        close(fd);
        unlink(a->tmp);
        free(a->tmp);
        free(a->path);
        memset(a, 0, sizeof *a);
        return -1;
    }
    return 0;
}

void cli_atomic_abort(cli_atomic *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

int cli_atomic_commit(cli_atomic *a, char *err, size_t err_len) {
    int ok = a->f != NULL;
    if (ok && (fflush(a->f) != 0 || ferror(a->f))) ok = 0;
    const char *fs = getenv("SQZ_FSYNC"); /* as sqzc_write_file_atomic */
    if (ok && fs && fs[0] && strcmp(fs, "0") != 0 && fsync(fileno(a->f)) != 0) ok = 0;
    if (a->f) {
        if (fclose(a->f) != 0) ok = 0;
        a->f = NULL;
    }
    if (!ok) {
        snprintf(err, err_len, "cannot write '%s': %s", a->path ? a->path : "?",
                 strerror(errno ? errno : EIO));
        cli_atomic_abort(a);
        return -1;
    }
    if (rename(a->tmp, a->path) != 0) {
        snprintf(err, err_len, "cannot rename to '%s': %s", a->path, strerror(errno));
        cli_atomic_abort(a);
        return -1;
    }
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
    return 0;
}

int cli_write_file_atomic(const char *path, const void *data, size_t size, char *err,
                          size_t err_len) {
    cli_atomic a;
    if (cli_atomic_open(&a, path, err, err_len) != 0) return -1;
    if (size && fwrite(data, 1, size, a.f) != size) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        cli_atomic_abort(&a);
        return -1;
    }
    return cli_atomic_commit(&a, err, err_len);
}

long long cli_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return (long long)st.st_size;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_shapes_add(cli_shapes *s, const char *spec, char *err, size_t err_len) {
    char *name = NULL;
    sqz_shape shape;
    if (cli_parse_named_shape(spec, &name, &shape, err, err_len) != 0) return -1;
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->names[i], name) == 0) {
            snprintf(err, err_len, "--input-shape given twice for '%s'", name);
            free(name);
            return -1;
        }
    }
    char **nn = realloc(s->names, sizeof *nn * (size_t)(s->n + 1));
    if (nn) s->names = nn;
    sqz_shape *ns = nn ? realloc(s->shapes, sizeof *ns * (size_t)(s->n + 1)) : NULL;
    if (ns) s->shapes = ns;
    if (!nn || !ns) {
        snprintf(err, err_len, "out of memory");
        free(name);
        return -1;
    }
    s->names[s->n] = name;
    s->shapes[s->n] = shape;
    s->n++;
    return 0;
}

void cli_shapes_free(cli_shapes *s) {
    for (int i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
    free(s->shapes);
    memset(s, 0, sizeof *s);
}

int cli_exit_for_sqz(int code) {
    return code == SQZ_ERR_NOMEM ? CLI_ERUNTIME : CLI_EUSAGE;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int cli_open_model(const char *cmd, const char *path, sqz_model **m) {
    sqz_status st;
    memset(&st, 0, sizeof st);
    *m = NULL;
    if (sqz_model_load_file(path, m, &st) != SQZ_OK) {
        *m = NULL;
        if (strstr(st.msg, path))
            cli_error(cmd, "%s", st.msg);
        else
            cli_error(cmd, "%s: %s", path, st.msg[0] ? st.msg : "cannot load model");
        return cli_exit_for_sqz(st.code ? st.code : SQZ_ERR_FORMAT);
    }
    return 0;
}

int cli_open_session(const char *cmd, const sqz_model *m, const cli_shapes *shapes, int threads,
                     sqz_session **s) {
    *s = NULL;
    int n = shapes ? shapes->n : 0;
    sqz_input_shape *ov = NULL;
    if (n > 0) {
        ov = calloc((size_t)n, sizeof *ov);
        if (!ov) {
            cli_error(cmd, "out of memory");
            return CLI_ERUNTIME;
        }
    }
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int k = 0; k < sqz_model_num_inputs(m); k++) {
            const char *nm = sqz_model_input_name(m, k);
            if (nm && strcmp(nm, shapes->names[i]) == 0) found = 1;
        }
        if (!found) {
            cli_error(cmd, "model has no input named '%s' (first input: '%s')", shapes->names[i],
                      sqz_model_num_inputs(m) > 0 && sqz_model_input_name(m, 0)
                          ? sqz_model_input_name(m, 0)
                          : "");
            free(ov);
            return CLI_EUSAGE;
        }
        ov[i].name = shapes->names[i];
        ov[i].shape = shapes->shapes[i];
    }
    sqz_session_options o;
    sqz_session_options_init(&o);
    o.num_threads = threads;
    o.input_shapes = ov;
    o.n_input_shapes = n;
    sqz_status st;
    memset(&st, 0, sizeof st);
    sqz_code c = sqz_session_create(m, &o, s, &st);
    free(ov);
    if (c != SQZ_OK) {
        *s = NULL;
        cli_error(cmd, "cannot create session: %s", st.msg[0] ? st.msg : "error");
        return cli_exit_for_sqz(c);
    }
    return 0;
}

int cli_positional(const char *cmd, const char *arg, const char **slot) {
    if (arg[0] == '-' && arg[1] != '\0') {
        cli_error(cmd, "unknown option '%s' (try sqz %s --help)", arg, cmd);
        return -1;
    }
    if (*slot) {
        cli_error(cmd, "unexpected argument '%s'", arg);
        return -1;
    }
    *slot = arg;
    return 0;
}

int cli_opt_table(int argc, char **argv, int *i, const char *const *names, int n_names,
                  const char *cmd, const char **val) {
    for (int k = 0; k < n_names; k++) {
        int m = cli_opt_value(argc, argv, i, names[k], val);
        if (m < 0) {
            cli_error(cmd, "%s needs a value", names[k]);
            return -2;
        }
        if (m > 0) return k;
    }
    return -1;
}

/* index of v in the comma list `choices`, -1 when absent */
static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int k = 0;
    for (const char *c = choices; *c; k++) {
        const char *e = strchr(c, ',');
        size_t l = e ? (size_t)(e - c) : strlen(c);
        if (l == n && strncmp(c, v, n) == 0) return k;
        if (!e) break;
        c = e + 1;
    }
    return -1;
}

/* "unknown --x 'v' (a, b, c)": the choices with a space after each comma */
static void bad_choice(const char *cmd, const cli_opt *o, const char *v) {
    char list[256];
    size_t j = 0;
    for (const char *c = o->choices; *c && j + 3 < sizeof list; c++) {
        list[j++] = *c;
        if (*c == ',') list[j++] = ' ';
    }
    list[j] = '\0';
    cli_error(cmd, "unknown %s '%s' (%s)", o->name, v, list);
}

static int store_value(const char *cmd, const cli_opt *o, const char *v) {
    long long n = 0;
    float f = 0;
    int k;
    char err[512];
    switch (o->kind) {
    case CLI_FLAG:
        break;
    case CLI_STR:
        if (o->choices && choice_index(o->choices, v) < 0) {
            bad_choice(cmd, o, v);
            return -1;
        }
        *(const char **)o->dst = v;
        return 0;
    case CLI_INT:
    case CLI_INT32:
        if (cli_parse_int(v, o->lo, o->hi, &n) != 0) {
            if (o->hi == LLONG_MAX)
                cli_error(cmd, "bad %s '%s' (expected an integer >= %lld)", o->name, v, o->lo);
            else
                cli_error(cmd, "bad %s '%s' (expected an integer in %lld..%lld)", o->name, v, o->lo,
                          o->hi);
            return -1;
        }
        if (o->clamp > 0 && n > o->clamp) n = o->clamp;
        if (o->kind == CLI_INT)
            *(long long *)o->dst = n;
        else
            *(int *)o->dst = (int)n;
        return 0;
    case CLI_FLOAT:
        if (cli_parse_float(v, &f) != 0 || !((o->open & CLI_LO_OPEN ? f > o->flo : f >= o->flo) &&
                                             (o->open & CLI_HI_OPEN ? f < o->fhi : f <= o->fhi))) {
            if (isinf(o->flo) && isinf(o->fhi))
                cli_error(cmd, "bad %s '%s' (expected a number)", o->name, v);
            else if (isinf(o->fhi))
                cli_error(cmd, "bad %s '%s' (expected a number %s %g)", o->name, v,
                          o->open & CLI_LO_OPEN ? ">" : ">=", (double)o->flo);
            else
                cli_error(cmd, "bad %s '%s' (expected a number in %c%g, %g%c)", o->name, v,
                          o->open & CLI_LO_OPEN ? '(' : '[', (double)o->flo, (double)o->fhi,
                          o->open & CLI_HI_OPEN ? ')' : ']');
            return -1;
        }
        *(float *)o->dst = f;
        return 0;
    case CLI_CHOICE:
        k = choice_index(o->choices, v);
        if (k < 0) {
            bad_choice(cmd, o, v);
            return -1;
        }
        *(int *)o->dst = o->values ? o->values[k] : k;
        return 0;
    case CLI_SHAPES:
        if (cli_shapes_add((cli_shapes *)o->dst, v, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            return -1;
        }
        return 0;
    }
    return 0;
}

int cli_opt_parse(const char *cmd, int argc, char **argv, int *i, const cli_opt *opts, int n) {
    const char *a = argv[*i], *v = NULL;
    for (int k = 0; k < n; k++) {
        const cli_opt *o = &opts[k];
        if (o->kind == CLI_FLAG) {
            if (strcmp(a, o->name) != 0 && !(o->alias && strcmp(a, o->alias) == 0)) continue;
            *(int *)o->dst = (int)o->lo;
        } else {
            int m = cli_opt_value(argc, argv, i, o->name, &v);
            if (m == 0 && o->alias) m = cli_opt_value(argc, argv, i, o->alias, &v);
            if (m == 0) continue;
            if (m < 0) {
                cli_error(cmd, "%s needs a value", a);
                return -2;
            }
            if (store_value(cmd, o, v) != 0) return -2;
        }
        if (o->given) *o->given = 1;
        return k;
    }
    return -1;
}
