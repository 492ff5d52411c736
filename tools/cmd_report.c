/* cmd_report.c - `sqz report` (see cmd_report.h).
 *
 * Points: #0 is the model as imported (fp32); #1.. are the grid of the sweep
 * values (first --sweep key varies slowest) on top of a base recipe. Point k
 * belongs to shard (k mod N) + 1. A partial result is a small tab-separated
 * text file: a header naming the model, data and sweep (must match across
 * the files being merged), then one "p" line per point. */
#include "cmd_report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "cmd_compress_search.h"
#include "evaluate.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/recipe.h"

#define CMD "report"
#define MAX_SWEEP 8
#define MAX_VALS 32
#define MAX_POINTS 4096
#define MAX_PARTIAL_BYTES (16 << 20)

void cmd_report_usage(FILE *f) {
    fprintf(f,
            "usage: sqz report model.onnx --data NAME [--sweep KEY=V1,V2,...]... [options]\n"
            "       sqz report --merge PART... -o PREFIX\n\n"
            "Sweep compression recipes over strengths: every combination of the --sweep\n"
            "values (recipe keys, see sqz compress --help) on top of the base recipe\n"
            "(--recipe / --set), plus the fp32 model. Each point is compressed, encoded and\n"
            "evaluated through the runtime on a labelled set; the sizes are the encoded .sqz\n"
            "bytes. Writes PREFIX.md (Markdown table) and PREFIX.html (self-contained page,\n"
            "accuracy-vs-size plot in inline SVG, Pareto front marked) and prints the table.\n"
            "Default sweep: share.bits=8,6,5,4,3,2 and prune.sparsity=0,0.5,0.7,0.8,0.9.\n\n"
            "  -o, --output PREFIX      output prefix (default sqz_report); with --shard: the\n"
            "                           partial result file itself\n"
            "  --sweep KEY=V1,V2,...    a recipe key and its values (repeatable, <= %d keys)\n"
            "  --recipe FILE            base recipe file\n"
            "  --set KEY=VALUE          base recipe key (repeatable)\n"
            "  --data NAME              labelled set: fashion-mnist or mnist (required)\n"
            "  --data-dir DIR           default /usr/share/datasets/<NAME>\n"
            "  --split t10k|train       default t10k (the test split)\n"
            "  --limit N                first N images of the split (default all)\n"
            "  --input-shape NAME:DIMS  as sqz import\n"
            "  --shard I/N              evaluate only the points of shard I (1..N) and write a\n"
            "                           partial result (for array jobs / GNU parallel)\n"
            "  --search                 one more point: the default search of sqz compress\n"
            "                           (per-layer settings chosen on the last 10,000 TRAINING\n"
            "                           images for <= 0.5 points drop; reported on --split)\n"
            "  --merge PART...          join partial results (all shards) into the report\n"
            "  --batch B                images per run (default 50)\n"
            "  --threads N              worker threads (default 1)\n"
            "  -h, --help               this help\n",
            MAX_SWEEP);
}

/* ------------------------------------------------------------ text buffer */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)w < room) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)w) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* HTML-escaped text */
static void sb_html(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            sb_printf(b, "&lt;");
            break;
        case '>':
            sb_printf(b, "&gt;");
            break;
        case '&':
            sb_printf(b, "&amp;");
            break;
        case '"':
            sb_printf(b, "&quot;");
            break;
        default:
            sb_printf(b, "%c", *s);
        }
    }
}

/* Markdown table cell: '|' escaped */
static void sb_md(sbuf *b, const char *s) {
    for (; *s; s++) sb_printf(b, *s == '|' ? "\\|" : "%c", *s);
}

/* ------------------------------------------------------------ options */

typedef struct sweep_key {
    char *key;
    char *vals[MAX_VALS]; /* owned */
    int n;
} sweep_key;

typedef struct kv_arg {
    char *key;
    const char *value, *where;
} kv_arg;

typedef struct ropts {
    const char *in, *out, *recipe, *dataset, *data_dir, *split;
    sweep_key sw[MAX_SWEEP];
    int nsw, default_sweep;
    kv_arg *kv;
    int n_kv;
    cli_shapes shapes;
    long long limit, batch, threads;
    int shard_i, shard_n;
    int search; /* one more point: the default search of sqz compress */
    double search_drop;
    const char **merge;
    int n_merge;
} ropts;

static void ropts_free(ropts *o) {
    for (int i = 0; i < o->nsw; i++) {
        free(o->sw[i].key);
        for (int k = 0; k < o->sw[i].n; k++) free(o->sw[i].vals[k]);
    }
    for (int i = 0; i < o->n_kv; i++) free(o->kv[i].key);
    free(o->kv);
    free(o->merge);
    cli_shapes_free(&o->shapes);
}

static char *xstrndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* "KEY=V1,V2" -> a sweep key; 0 ok, -1 error printed */
static int add_sweep(ropts *o, const char *spec) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        cli_error(CMD, "--sweep '%s': expected KEY=V1,V2,...", spec);
        return -1;
    }
    if (o->nsw >= MAX_SWEEP) {
        cli_error(CMD, "--sweep: at most %d keys", MAX_SWEEP);
        return -1;
    }
    sweep_key *k = &o->sw[o->nsw];
    memset(k, 0, sizeof *k);
    k->key = xstrndup(spec, (size_t)(eq - spec));
    if (!k->key) goto oom;
    o->nsw++;
    for (int i = 0; i < o->nsw - 1; i++)
        if (strcmp(o->sw[i].key, k->key) == 0) {
            cli_error(CMD, "--sweep: key '%s' given twice", k->key);
            return -1;
        }
    const char *p = eq + 1;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0) {
            cli_error(CMD, "--sweep '%s': empty value", spec);
            return -1;
        }
        if (k->n >= MAX_VALS) {
            cli_error(CMD, "--sweep '%s': at most %d values", spec, MAX_VALS);
            return -1;
        }
        if (!(k->vals[k->n] = xstrndup(p, len))) goto oom;
        k->n++;
        if (!c) break;
        p = c + 1;
    }
    return 0;
oom:
    cli_error(CMD, "out of memory");
    return -1;
}

static int parse_shard(const char *v, int *i, int *n) {
    long long a, b;
    const char *sl = strchr(v, '/');
    if (!sl) return -1;
    char buf[64];
    size_t l = (size_t)(sl - v);
    if (l == 0 || l >= sizeof buf) return -1;
    memcpy(buf, v, l);
    buf[l] = '\0';
    if (cli_parse_int(buf, 1, MAX_POINTS, &a) != 0 ||
        cli_parse_int(sl + 1, 1, MAX_POINTS, &b) != 0 || a > b)
        return -1;
    *i = (int)a;
    *n = (int)b;
    return 0;
}

/* 0 ok, 1 help, -1 error printed */
static int parse_args(int argc, char **argv, ropts *o) {
    o->batch = 50;
    o->threads = 1;
    o->split = "t10k";
    o->search_drop = 0.5;
    const cli_opt opts[] = {
        {.name = "--output", .alias = "-o", .kind = CLI_STR, .dst = &o->out},
        {.name = "--recipe", .kind = CLI_STR, .dst = &o->recipe},
        {.name = "--data", .kind = CLI_STR, .dst = &o->dataset},
        {.name = "--data-dir", .kind = CLI_STR, .dst = &o->data_dir},
        {.name = "--split", .kind = CLI_STR, .dst = &o->split, .choices = "t10k,train"},
        {.name = "--limit", .kind = CLI_INT, .dst = &o->limit, .lo = 1, .hi = 1 << 30},
        {.name = "--batch", .kind = CLI_INT, .dst = &o->batch, .lo = 1, .hi = 65536},
        {.name = "--threads", .kind = CLI_INT, .dst = &o->threads, .lo = 1, .hi = 1024},
        {.name = "--input-shape", .kind = CLI_SHAPES, .dst = &o->shapes},
        {.name = "--search", .kind = CLI_FLAG, .dst = &o->search, .lo = 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd_report_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--merge") == 0) {
            free(o->merge);
            o->merge = calloc((size_t)argc, sizeof *o->merge);
            if (!o->merge) {
                cli_error(CMD, "out of memory");
                return -1;
            }
            o->n_merge = 0;
            while (i + 1 < argc && argv[i + 1][0] != '-') o->merge[o->n_merge++] = argv[++i];
            if (o->n_merge == 0) {
                cli_error(CMD, "--merge needs partial result files");
                return -1;
            }
            continue;
        }
        int which = cli_opt_parse(CMD, argc, argv, &i, opts, (int)(sizeof opts / sizeof opts[0]));
        if (which == -2) return -1;
        if (which >= 0) continue;
        static const char *const kValued[] = {"--shard", "--sweep", "--set"};
        which = cli_opt_table(argc, argv, &i, kValued, (int)(sizeof kValued / sizeof kValued[0]),
                              CMD, &v);
        if (which == -2) return -1;
        if (which < 0) {
            if (cli_positional(CMD, a, &o->in) != 0) return -1;
            continue;
        }
        switch (which) {
        case 0:
            if (parse_shard(v, &o->shard_i, &o->shard_n) != 0) {
                cli_error(CMD, "--shard '%s': expected I/N with 1 <= I <= N <= %d", v, MAX_POINTS);
                return -1;
            }
            break;
        case 1:
            if (add_sweep(o, v) != 0) return -1;
            break;
        case 2: {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                cli_error(CMD, "--set '%s': expected KEY=VALUE", v);
                return -1;
            }
            kv_arg *p = realloc(o->kv, ((size_t)o->n_kv + 1) * sizeof *p);
            if (!p) {
                cli_error(CMD, "out of memory");
                return -1;
            }
            o->kv = p;
            p[o->n_kv].key = xstrndup(v, (size_t)(eq - v));
            p[o->n_kv].value = eq + 1;
            p[o->n_kv].where = "--set";
            if (!p[o->n_kv].key) {
                cli_error(CMD, "out of memory");
                return -1;
            }
            o->n_kv++;
            break;
        }
        default:
            break;
        }
    }
    if (o->n_merge > 0) {
        if (o->in || o->shard_n || o->nsw || o->dataset || o->search) {
            cli_error(CMD, "--merge takes only partial result files and -o");
            return -1;
        }
        return 0;
    }
    if (!o->in) {
        cli_error(CMD, "missing input model.onnx (try sqz report --help)");
        return -1;
    }
    size_t il = strlen(o->in);
    if (il >= 4 && strcmp(o->in + il - 4, ".sqz") == 0) {
        cli_error(CMD, "%s: a .sqz input is not supported; give the .onnx model", o->in);
        return -1;
    }
    if (!o->dataset) {
        cli_error(CMD, "the report needs a labelled set: --data fashion-mnist (or mnist)");
        return -1;
    }
    if (o->nsw == 0) {
        o->default_sweep = 1;
        if (add_sweep(o, "share.bits=8,6,5,4,3,2") != 0 ||
            add_sweep(o, "prune.sparsity=0,0.5,0.7,0.8,0.9") != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ points */

typedef struct point {
    int have;
    long long bytes;
    int correct, total;
    char *label, *recipe; /* one line each, no tabs */
} point;

typedef struct report {
    char *model, *data, *sweep; /* header lines (values) */
    long long onnx_bytes;
    int npoints;
    point *pts;
} report;

static void report_free(report *r) {
    for (int i = 0; r->pts && i < r->npoints; i++) {
        free(r->pts[i].label);
        free(r->pts[i].recipe);
    }
    free(r->pts);
    free(r->model);
    free(r->data);
    free(r->sweep);
    memset(r, 0, sizeof *r);
}

static int n_grid(const ropts *o) {
    long long n = 1;
    for (int i = 0; i < o->nsw; i++) {
        n *= o->sw[i].n;
        if (n > MAX_POINTS) return -1;
    }
    return (int)n;
}

/* value index of sweep key j for grid point k (k >= 1) */
static int grid_val(const ropts *o, int k, int j) {
    int m = k - 1;
    for (int i = o->nsw - 1; i > j; i--) m /= o->sw[i].n;
    return m % o->sw[j].n;
}

/* base recipe + the values of point k (k >= 1). 0 ok, -1 with err */
static int build_recipe(const ropts *o, int k, sqzc_recipe *r, char *err, size_t err_len) {
    sqzc_recipe_init(r);
    r->huffman = 1;
    if (o->recipe && sqzc_recipe_parse_file(r, o->recipe, err, err_len) != 0) return -1;
    for (int i = 0; i < o->n_kv; i++)
        if (sqzc_recipe_set(r, o->kv[i].key, o->kv[i].value, o->kv[i].where, err, err_len) != 0)
            return -1;
    for (int j = 0; j < o->nsw; j++) {
        const sweep_key *s = &o->sw[j];
        if (sqzc_recipe_set(r, s->key, s->vals[grid_val(o, k, j)], "--sweep", err, err_len) != 0)
            return -1;
    }
    if (!r->prune && !r->share) {
        snprintf(err, err_len, "--sweep: point %d has no prune or share stage", k);
        return -1;
    }
    return 0;
}

/* replace tabs / newlines (the partial file is line- and tab-separated) */
static char *one_line(const char *s, const char *nl) {
    size_t n = strlen(s), extra = strlen(nl);
    char *p = malloc(n * (extra + 1) + 1), *q = p;
    if (!p) return NULL;
    for (; *s; s++) {
        if (*s == '\n') {
            if (s[1]) {
                memcpy(q, nl, extra);
                q += extra;
            }
        } else {
            *q++ = *s == '\t' || *s == '\r' ? ' ' : *s;
        }
    }
    *q = '\0';
    return p;
}

static char *point_label(const ropts *o, int k, int search_k) {
    sbuf b = {0};
    if (k == search_k) {
        sb_printf(&b, "sqz compress search (per-layer, <= %g points on training images)",
                  o->search_drop);
    } else if (k == 0) {
        sb_printf(&b, "fp32 (imported)");
    } else {
        for (int j = 0; j < o->nsw; j++)
            sb_printf(&b, "%s%s=%s", j ? " " : "", o->sw[j].key, o->sw[j].vals[grid_val(o, k, j)]);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    char *l = one_line(b.p, " ");
    free(b.p);
    return l;
}

/* ------------------------------------------------------------ partial files */

static int write_partial(const report *r, const char *path, int shard_i, int shard_n) {
    sbuf b = {0};
    char err[512];
    sb_printf(&b, "sqz-report-partial\t1\nmodel\t%s\nonnx_bytes\t%lld\ndata\t%s\nsweep\t%s\n",
              r->model, r->onnx_bytes, r->data, r->sweep);
    sb_printf(&b, "points\t%d\nshard\t%d/%d\n", r->npoints, shard_i, shard_n);
    for (int k = 0; k < r->npoints; k++) {
        const point *p = &r->pts[k];
        if (!p->have) continue;
        sb_printf(&b, "p\t%d\t%lld\t%d\t%d\t%s\t%s\n", k, p->bytes, p->correct, p->total, p->label,
                  p->recipe);
    }
    if (b.oom) {
        free(b.p);
        cli_error(CMD, "out of memory");
        return CLI_ERUNTIME;
    }
    int rc = cli_write_file_atomic(path, b.p, b.n, err, sizeof err);
    free(b.p);
    if (rc != 0) {
        cli_error(CMD, "%s", err);
        return CLI_ERUNTIME;
    }
    return CLI_OK;
}

static char *read_text(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *p = malloc(MAX_PARTIAL_BYTES + 1);
    if (!p) {
        fclose(f);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    size_t n = fread(p, 1, MAX_PARTIAL_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_PARTIAL_BYTES) {
        snprintf(err, err_len, "%s: %s", path,
                 bad ? "read error" : "too large for a partial result");
        free(p);
        return NULL;
    }
    p[n] = '\0';
    if (strlen(p) != n) {
        snprintf(err, err_len, "%s: not a text file (NUL byte)", path);
        free(p);
        return NULL;
    }
    return p;
}

/* split s (modified) at tabs into f[0..max); returns the field count */
static int fields(char *s, char **f, int max) {
    int n = 0;
    for (;;) {
        if (n < max) f[n] = s;
        n++;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = '\0';
        s = t + 1;
    }
    return n;
}

static int set_str(char **dst, const char *v) {
    free(*dst);
    *dst = xstrndup(v, strlen(v));
    return *dst ? 0 : -1;
}

/* Merge one partial file into r (r->npoints == 0: first file sets the
 * header). 0 ok, -1 with err. */
static int merge_file(report *r, const char *path, char *err, size_t err_len) {
    char *text = read_text(path, err, err_len);
    if (!text) return -1;
    int rc = -1, line = 0, seen_magic = 0;
    char *save = text;
    report h;
    memset(&h, 0, sizeof h);
    h.onnx_bytes = -1;
    for (char *s = text; s && *s; line++) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        char *f[8];
        int nf = fields(s, f, 8);
        s = nl ? nl + 1 : NULL;
        long long v;
        if (line == 0) {
            if (nf != 2 || strcmp(f[0], "sqz-report-partial") != 0 || strcmp(f[1], "1") != 0) {
                snprintf(err, err_len, "%s: not an sqz report partial result (version 1)", path);
                goto done;
            }
            seen_magic = 1;
            continue;
        }
        if (nf == 2 && (strcmp(f[0], "model") == 0 || strcmp(f[0], "data") == 0 ||
                        strcmp(f[0], "sweep") == 0)) {
            char **dst = f[0][0] == 'm' ? &h.model : f[0][0] == 'd' ? &h.data : &h.sweep;
            if (set_str(dst, f[1]) != 0) goto oom;
        } else if (nf == 2 && strcmp(f[0], "onnx_bytes") == 0 &&
                   cli_parse_int(f[1], 1, INT64_MAX / 2, &v) == 0) {
            h.onnx_bytes = v;
        } else if (nf == 2 && strcmp(f[0], "points") == 0 &&
                   cli_parse_int(f[1], 1, MAX_POINTS + 1, &v) == 0) {
            h.npoints = (int)v;
        } else if (nf == 2 && strcmp(f[0], "shard") == 0) {
            /* informational */
        } else if (nf == 7 && strcmp(f[0], "p") == 0) {
            if (!h.model || !h.data || !h.sweep || h.onnx_bytes < 0 || h.npoints < 1) {
                snprintf(err, err_len, "%s:%d: point before the complete header", path, line + 1);
                goto done;
            }
            if (r->npoints == 0) { /* first file: take its header */
                r->pts = calloc((size_t)h.npoints, sizeof *r->pts);
                if (!r->pts || set_str(&r->model, h.model) || set_str(&r->data, h.data) ||
                    set_str(&r->sweep, h.sweep))
                    goto oom;
                r->onnx_bytes = h.onnx_bytes;
                r->npoints = h.npoints;
            } else if (strcmp(r->model, h.model) != 0 || strcmp(r->data, h.data) != 0 ||
                       strcmp(r->sweep, h.sweep) != 0 || r->onnx_bytes != h.onnx_bytes ||
                       r->npoints != h.npoints) {
                snprintf(err, err_len,
                         "%s: another report (model, data or sweep differ from the first file)",
                         path);
                goto done;
            }
            long long k, bytes, cor, tot;
            if (cli_parse_int(f[1], 0, r->npoints - 1, &k) != 0 ||
                cli_parse_int(f[2], 1, INT64_MAX / 2, &bytes) != 0 ||
                cli_parse_int(f[4], 1, INT32_MAX, &tot) != 0 ||
                cli_parse_int(f[3], 0, tot, &cor) != 0) {
                snprintf(err, err_len, "%s:%d: bad point line", path, line + 1);
                goto done;
            }
            point *p = &r->pts[k];
            if (p->have) {
                if (p->bytes != bytes || p->correct != (int)cor || p->total != (int)tot) {
                    snprintf(err, err_len, "%s:%d: point %lld differs from an earlier file", path,
                             line + 1, k);
                    goto done;
                }
                continue;
            }
            p->have = 1;
            p->bytes = bytes;
            p->correct = (int)cor;
            p->total = (int)tot;
            if (set_str(&p->label, f[5]) || set_str(&p->recipe, f[6])) goto oom;
        } else if (!(nf == 1 && f[0][0] == '\0')) {
            snprintf(err, err_len, "%s:%d: unexpected line", path, line + 1);
            goto done;
        }
    }
    if (!seen_magic) {
        snprintf(err, err_len, "%s: empty file", path);
        goto done;
    }
    if (r->npoints == 0) { /* a shard with no points: keep the header */
        if (!h.model || !h.data || !h.sweep || h.onnx_bytes < 0 || h.npoints < 1) {
            snprintf(err, err_len, "%s: incomplete header", path);
            goto done;
        }
    }
    rc = 0;
    goto done;
oom:
    snprintf(err, err_len, "out of memory");
done:
    report_free(&h);
    free(save);
    return rc;
}

/* ------------------------------------------------------------ output */

static double acc_of(const point *p) {
    return p->total ? 100.0 * p->correct / p->total : 0.0;
}

/* Pareto: no other point is at most as large and at least as accurate, and
 * strictly better in one of the two */
static void pareto(const report *r, int *front) {
    for (int i = 0; i < r->npoints; i++) {
        front[i] = 0;
        const point *p = &r->pts[i];
        int dom = 0;
        for (int j = 0; j < r->npoints && !dom; j++) {
            const point *q = &r->pts[j];
            if (j == i) continue;
            double ap = acc_of(p), aq = acc_of(q);
            dom = q->bytes <= p->bytes && aq >= ap && (q->bytes < p->bytes || aq > ap);
        }
        front[i] = !dom;
    }
}

static void write_md(sbuf *b, const report *r, const int *front) {
    double base = acc_of(&r->pts[0]);
    sb_printf(b, "# sqz report: ");
    sb_md(b, r->model);
    sb_printf(b, "\n\nData: ");
    sb_md(b, r->data);
    sb_printf(b, "; sweep: ");
    sb_md(b, r->sweep);
    sb_printf(b,
              ".\nSizes are encoded .sqz bytes; ratio against the ONNX file (%lld bytes); "
              "P marks the Pareto front (no point smaller and at least as accurate).\n\n",
              r->onnx_bytes);
    sb_printf(b, "| # | recipe | bytes | ratio | accuracy %% | drop (points) | P |\n"
                 "|---:|---|---:|---:|---:|---:|:-:|\n");
    for (int k = 0; k < r->npoints; k++) {
        const point *p = &r->pts[k];
        sb_printf(b, "| %d | ", k);
        sb_md(b, p->label);
        sb_printf(b, " | %lld | %.2fx | %.2f | %+.2f | %s |\n", p->bytes,
                  (double)r->onnx_bytes / (double)p->bytes, acc_of(p), base - acc_of(p),
                  front[k] ? "P" : "");
    }
}

static double nice_step(double span, int want) {
    double raw = span / want, e = pow(10.0, floor(log10(raw))), m = raw / e;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * e;
}

static void write_html(sbuf *b, const report *r, const int *front) {
    const double W = 760, H = 440, ml = 70, mr = 20, mt = 20, mb = 60;
    double base = acc_of(&r->pts[0]);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < r->npoints; k++) {
        double x = log10((double)r->onnx_bytes / (double)r->pts[k].bytes), y = acc_of(&r->pts[k]);
        xmin = fmin(xmin, x);
        xmax = fmax(xmax, x);
        ymin = fmin(ymin, y);
        ymax = fmax(ymax, y);
    }
    if (xmax - xmin < 0.2) {
        xmin -= 0.1;
        xmax += 0.1;
    }
    if (ymax - ymin < 1.0) {
        ymin -= 0.5;
        ymax += 0.5;
    }
    double xpad = 0.05 * (xmax - xmin), ypad = 0.05 * (ymax - ymin);
    xmin -= xpad;
    xmax += xpad;
    ymin -= ypad;
    ymax += ypad;
#define PX(x) (ml + ((x)-xmin) / (xmax - xmin) * (W - ml - mr))
#define PY(y) (mt + (ymax - (y)) / (ymax - ymin) * (H - mt - mb))
    sb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>sqz "
                 "report: ");
    sb_html(b, r->model);
    sb_printf(b, "</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}"
                 "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
                 "padding:3px 8px;text-align:right}td.l{text-align:left}tr.front{background:"
                 "#fde8e8}svg text{font-size:12px}</style></head><body>\n<h1>sqz report: ");
    sb_html(b, r->model);
    sb_printf(b, "</h1>\n<p>Data: ");
    sb_html(b, r->data);
    sb_printf(b, ". Sweep: ");
    sb_html(b, r->sweep);
    sb_printf(b, ". fp32 accuracy %.2f%%, ONNX file %lld bytes.</p>\n", base, r->onnx_bytes);
    sb_printf(b,
              "<svg id=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
              "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n<rect x=\"0\" y=\"0\" width=\"%.0f\" "
              "height=\"%.0f\" fill=\"#fff\"/>\n",
              W, H, W, H, W, H);
    sb_printf(b,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
              "stroke=\"#888\"/>\n",
              ml, mt, W - ml - mr, H - mt - mb);
    /* y ticks */
    double ys = nice_step(ymax - ymin, 6);
    for (double y = ceil(ymin / ys) * ys; y <= ymax; y += ys)
        sb_printf(b,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  ml, W - mr, PY(y), PY(y), ml - 6, PY(y) + 4, y);
    /* x ticks: ratios 1, 2, 5, 10, ... */
    for (double dec = floor(xmin); dec <= ceil(xmax); dec += 1.0) {
        static const double kM[3] = {1, 2, 5};
        for (int t = 0; t < 3; t++) {
            double x = dec + log10(kM[t]);
            if (x < xmin || x > xmax) continue;
            sb_printf(b,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%gx</text>\n",
                      PX(x), PX(x), mt, H - mb, PX(x), H - mb + 16, pow(10.0, x));
        }
    }
    sb_printf(b,
              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">compression ratio vs the ONNX "
              "file (log scale)</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" "
              "text-anchor=\"middle\">top-1 accuracy (%%)</text>\n",
              ml + (W - ml - mr) / 2, H - 14, mt + (H - mt - mb) / 2);
    /* the 0.5-point budget */
    if (base - 0.5 > ymin)
        sb_printf(b,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#2a7\" "
                  "stroke-dasharray=\"5 4\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"#2a7\" "
                  "text-anchor=\"start\">fp32 - 0.5 points</text>\n",
                  ml, W - mr, PY(base - 0.5), PY(base - 0.5), ml + 40, PY(base - 0.5) + 14);
    /* Pareto front polyline, by size */
    sb_printf(b, "<polyline class=\"front\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" "
                 "points=\"");
    for (int pass = 0, last = -1; pass < r->npoints; pass++) {
        int nx = -1; /* next front point by decreasing bytes (increasing ratio) */
        for (int k = 0; k < r->npoints; k++)
            if (front[k] && (last < 0 || r->pts[k].bytes < r->pts[last].bytes) &&
                (nx < 0 || r->pts[k].bytes > r->pts[nx].bytes))
                nx = k;
        if (nx < 0) break;
        double x = log10((double)r->onnx_bytes / (double)r->pts[nx].bytes);
        sb_printf(b, "%.1f,%.1f ", PX(x), PY(acc_of(&r->pts[nx])));
        last = nx;
    }
    sb_printf(b, "\"/>\n");
    for (int k = 0; k < r->npoints; k++) {
        const point *p = &r->pts[k];
        double x = log10((double)r->onnx_bytes / (double)p->bytes), y = acc_of(p);
        sb_printf(b,
                  "<circle class=\"pt%s\" data-idx=\"%d\" data-bytes=\"%lld\" "
                  "data-acc=\"%.2f\" cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\" "
                  "stroke=\"#222\" stroke-width=\"0.5\"><title>#%d ",
                  front[k] ? " pareto" : "", k, p->bytes, y, PX(x), PY(y), front[k] ? 6 : 4,
                  front[k] ? "#d62728" : "#4c72b0", k);
        sb_html(b, p->label);
        sb_printf(b, ": %lld bytes, %.2f%%</title></circle>\n", p->bytes, y);
        if (strncmp(p->label, "sqz compress search", 19) == 0)
            sb_printf(b,
                      "<circle class=\"search\" cx=\"%.1f\" cy=\"%.1f\" r=\"10\" fill=\"none\" "
                      "stroke=\"#2a7\" stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" "
                      "fill=\"#2a7\">sqz compress</text>\n",
                      PX(x), PY(y), PX(x) + 12, PY(y) - 10);
    }
#undef PX
#undef PY
    sb_printf(b, "</svg>\n<p><span style=\"color:#d62728\">&#9679;</span> Pareto front "
                 "<span style=\"color:#4c72b0\">&#9679;</span> other points</p>\n");
    sb_printf(b, "<table><tr><th>#</th><th>recipe</th><th>bytes</th><th>ratio</th>"
                 "<th>accuracy %%</th><th>drop</th><th>Pareto</th></tr>\n");
    for (int k = 0; k < r->npoints; k++) {
        const point *p = &r->pts[k];
        sb_printf(b, "<tr%s><td>%d</td><td class=\"l\" title=\"",
                  front[k] ? " class=\"front\"" : "", k);
        sb_html(b, p->recipe);
        sb_printf(b, "\">");
        sb_html(b, p->label);
        sb_printf(b,
                  "</td><td>%lld</td><td>%.2fx</td><td>%.2f</td><td>%+.2f</td><td>%s</td></tr>\n",
                  p->bytes, (double)r->onnx_bytes / (double)p->bytes, acc_of(p), base - acc_of(p),
                  front[k] ? "yes" : "");
    }
    sb_printf(b, "</table>\n</body></html>\n");
}

static int write_report(const report *r, const char *prefix) {
    if (r->npoints < 1 || r->npoints > MAX_POINTS + 1) {
        cli_error(CMD, "no points to report");
        return CLI_EUSAGE;
    }
    for (int k = 0; k < r->npoints; k++)
        if (!r->pts[k].have) {
            cli_error(CMD, "point %d of %d is missing (a shard not merged?)", k, r->npoints);
            return CLI_EUSAGE;
        }
    int *front = calloc((size_t)r->npoints, sizeof *front);
    size_t pl = strlen(prefix);
    char *path = malloc(pl + 8);
    sbuf md = {0}, html = {0};
    int rc = CLI_ERUNTIME;
    char err[512];
    if (!front || !path) goto oom;
    pareto(r, front);
    write_md(&md, r, front);
    write_html(&html, r, front);
    if (md.oom || html.oom) goto oom;
    snprintf(path, pl + 8, "%s.md", prefix);
    if (cli_write_file_atomic(path, md.p, md.n, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    snprintf(path, pl + 8, "%s.html", prefix);
    if (cli_write_file_atomic(path, html.p, html.n, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    fwrite(md.p, 1, md.n, stdout);
    printf("\nwrote %s.md and %s.html\n", prefix, prefix);
    rc = fflush(stdout) == 0 ? CLI_OK : CLI_ERUNTIME;
    goto done;
oom:
    cli_error(CMD, "out of memory");
done:
    free(front);
    free(path);
    free(md.p);
    free(html.p);
    return rc;
}

/* ------------------------------------------------------------ sweep */

static int labels_present(const ropts *o, const char *split) {
    char dflt[256], path[1024];
    const char *dir = o->data_dir;
    if (!dir) {
        snprintf(dflt, sizeof dflt, "/usr/share/datasets/%s", o->dataset);
        dir = dflt;
    }
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    cli_error(CMD, "%s: no labels (%s is missing): the report needs a labelled set", dir, path);
    return 0;
}

static int run_sweep(ropts *o) {
    char err[512];
    int rc = CLI_EUSAGE;
    report r;
    memset(&r, 0, sizeof r);
    sqzc_graph *g = NULL;
    sqzc_named_shape *named = NULL;
    eval_set set;
    int have_set = 0;
    csr_snapshot snap;
    memset(&snap, 0, sizeof snap);
    sqzc_recipe rec;
    sqzc_recipe_init(&rec);

    /* everything that can be checked is checked before any work */
    float dm, dsd;
    if (eval_dataset_norm(o->dataset, &dm, &dsd) != 0) {
        cli_error(CMD, "unknown dataset '%s' (fashion-mnist or mnist)", o->dataset);
        goto done;
    }
    if (!labels_present(o, o->split) || (o->search && !labels_present(o, "train"))) goto done;
    int ng = n_grid(o);
    if (ng < 0 || ng + 1 > MAX_POINTS) {
        cli_error(CMD, "--sweep: more than %d points", MAX_POINTS);
        goto done;
    }
    r.npoints = ng + 1 + (o->search != 0);
    const int search_k = o->search ? ng + 1 : -1;
    for (int k = 1; k <= ng; k++) {
        if (build_recipe(o, k, &rec, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
        sqzc_recipe_free(&rec);
    }
    long long onnx_bytes = cli_file_size(o->in);
    if (onnx_bytes <= 0) {
        cli_error(CMD, "cannot read '%s'", o->in);
        goto done;
    }
    r.onnx_bytes = onnx_bytes;
    r.pts = calloc((size_t)r.npoints, sizeof *r.pts);
    sbuf sw = {0}, data = {0};
    if (o->recipe) sb_printf(&sw, "base recipe %s; ", o->recipe);
    for (int i = 0; i < o->n_kv; i++) sb_printf(&sw, "%s=%s; ", o->kv[i].key, o->kv[i].value);
    for (int j = 0; j < o->nsw; j++) {
        sb_printf(&sw, "%s%s=", j ? " x " : "", o->sw[j].key);
        for (int v = 0; v < o->sw[j].n; v++) sb_printf(&sw, "%s%s", v ? "," : "", o->sw[j].vals[v]);
    }
    if (o->search) sb_printf(&sw, " + sqz compress search");
    r.sweep = sw.p ? one_line(sw.p, " ") : NULL;
    r.model = one_line(o->in, " ");
    free(sw.p);
    if (!r.pts || !r.sweep || !r.model || sw.oom) goto oom;

    /* import as sqz import / compress */
    if (o->shapes.n > 0) {
        named = calloc((size_t)o->shapes.n, sizeof *named);
        if (!named) goto oom;
        for (int i = 0; i < o->shapes.n; i++) {
            named[i].name = o->shapes.names[i];
            named[i].shape = o->shapes.shapes[i];
        }
    }
    sqzc_import_options iopt;
    memset(&iopt, 0, sizeof iopt);
    iopt.input_shapes = named;
    iopt.n_input_shapes = o->shapes.n;
    iopt.default_batch = 1;
    err[0] = '\0';
    if (sqzc_import_onnx(o->in, &iopt, &g, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err[0] ? err : "import failed");
        goto done;
    }
    if (sqzc_optimize(g, err, sizeof err) != 0) {
        cli_error(CMD, "optimize: %s", err);
        goto done;
    }
    for (int k = 1; k <= ng; k++) {
        if (build_recipe(o, k, &rec, err, sizeof err) != 0 ||
            sqzc_recipe_check(&rec, g, err, sizeof err) != 0) {
            cli_error(CMD, "%s", err);
            goto done;
        }
        sqzc_recipe_free(&rec);
    }
    if ((rc = eval_set_load(CMD, o->dataset, o->data_dir, o->split, &set)) != 0) goto done;
    have_set = 1;
    rc = CLI_EUSAGE;
    int count = set.imgs.n;
    if (o->limit > 0 && o->limit < count) count = (int)o->limit;
    sb_printf(&data, "%s %s images 0..%d", o->dataset, o->split, count - 1);
    if (data.oom) goto oom;
    r.data = data.p;
    if (csr_snapshot_take(g, &snap) != 0) goto oom;

    for (int k = 0; k < r.npoints; k++) {
        if (o->shard_n && k % o->shard_n != o->shard_i - 1) continue;
        point *p = &r.pts[k];
        if (!(p->label = point_label(o, k, search_k))) goto oom;
        if (csr_snapshot_restore(g, &snap) != 0) goto oom;
        char *rtext = NULL;
        int bias_bits = SQZC_DEFAULT_BIAS_BITS;
        if (k == search_k) {
            /* the defaults of sqz compress; last point: the search also
             * corrects biases, which the weight snapshot does not restore */
            eval_set train;
            if ((rc = eval_set_load(CMD, o->dataset, o->data_dir, "train", &train)) != 0) goto done;
            csr_options so;
            memset(&so, 0, sizeof so);
            so.count = train.imgs.n < 10000 ? train.imgs.n : 10000;
            so.first = train.imgs.n - so.count;
            so.n_calib = so.count < 500 ? so.count : 500;
            so.batch = (int)o->batch;
            so.threads = (int)o->threads;
            so.target_drop = o->search_drop;
            so.fp16 = so.huffman = so.aware = 1; /* the defaults of sqz compress */
            so.bias_bits = SQZC_DEFAULT_BIAS_BITS;
            so.refine = 8;
            so.z = 0.0;
            csr_result sr;
            sqzc_recipe_init(&rec);
            rc = csr_search(CMD, g, &train, &so, &rec, &sr);
            eval_set_free(&train);
            if (rc != 0) goto done;
            rtext = sqzc_recipe_to_text(&rec);
            sqzc_recipe_free(&rec);
            if (!rtext) goto oom;
        } else if (k > 0) {
            if (build_recipe(o, k, &rec, err, sizeof err) != 0 ||
                sqzc_recipe_apply(g, &rec, err, sizeof err) != 0) {
                cli_error(CMD, "point %d (%s): %s", k, p->label, err);
                rc = CLI_ERUNTIME;
                goto done;
            }
            bias_bits = rec.bias_bits;
            rtext = sqzc_recipe_to_text(&rec);
            sqzc_recipe_free(&rec);
            if (!rtext) goto oom;
        }
        p->recipe = one_line(rtext ? rtext : "(none)", "; ");
        free(rtext);
        if (!p->recipe) goto oom;
        /* the file sqz compress writes for this recipe */
        if (k > 0 && csr_finalize(g, bias_bits) != 0) goto oom;
        sqz_model *m = NULL;
        size_t size = 0;
        if ((rc = csr_graph_model(CMD, g, k == 0, &m, &size)) != 0) goto done;
        eval_result res;
        rc = eval_run(CMD, m, &set, 0, count, (int)o->batch, (int)o->threads, NULL, &res);
        sqz_model_free(m);
        if (rc != 0) goto done;
        rc = CLI_EUSAGE;
        p->have = 1;
        p->bytes = (long long)size;
        p->correct = res.correct;
        p->total = res.total;
        fprintf(stderr, "sqz report: #%d %s: %lld bytes, %.2f%%\n", k, p->label, p->bytes,
                acc_of(p));
    }
    if (o->shard_n)
        rc = write_partial(&r, o->out ? o->out : "sqz_report.part", o->shard_i, o->shard_n);
    else
        rc = write_report(&r, o->out ? o->out : "sqz_report");
    goto done;
oom:
    cli_error(CMD, "out of memory");
    rc = CLI_ERUNTIME;
done:
    sqzc_recipe_free(&rec);
    csr_snapshot_free(&snap);
    if (have_set) eval_set_free(&set);
    sqzc_graph_free(g);
    free(named);
    report_free(&r);
    return rc;
}

int cmd_report(int argc, char **argv) {
    ropts o;
    memset(&o, 0, sizeof o);
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        ropts_free(&o);
        return pr > 0 ? CLI_OK : CLI_EUSAGE;
    }
    int rc;
    if (o.n_merge > 0) {
        report r;
        memset(&r, 0, sizeof r);
        char err[512];
        rc = CLI_OK;
        for (int i = 0; i < o.n_merge && rc == CLI_OK; i++)
            if (merge_file(&r, o.merge[i], err, sizeof err) != 0) {
                cli_error(CMD, "%s", err);
                rc = CLI_EUSAGE;
            }
        if (rc == CLI_OK && r.npoints == 0) {
            cli_error(CMD, "--merge: no points in the given files");
            rc = CLI_EUSAGE;
        }
        if (rc == CLI_OK) rc = write_report(&r, o.out ? o.out : "sqz_report");
        report_free(&r);
    } else {
        rc = run_sweep(&o);
    }
    ropts_free(&o);
    return rc;
}
