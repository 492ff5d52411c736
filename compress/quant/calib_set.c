/* calib_set.c - calibration-set manifests (format: calib-data/README.md). */
#include "sqzc/calib_set.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qwait.h"
#include "sqzc/npy.h"

#define MANIFEST_MAX_BYTES (64u << 20)

struct sqzc_calib_check {
    int dirfd;          /* the manifest's directory (-1: none), for openat */
    size_t dlen;        /* length of its path prefix in the items' paths */
    size_t decode_left; /* bytes of decoded samples the checks may still keep */
    int next;           /* next item to check */
    int bad_item;       /* first item that failed (-1: none) */
    char *msg;          /* its message, or the colour mismatch's */
    int finished;       /* sqzc_calib_set_check_finish ran: result in rc / msg */
    int rc;
    atomic_uchar *done;  /* [n_items] ITEM_*: the item's check is over (a loader
                          * waits for it, sqzc_calib_set_load_many) */
    atomic_int marks;    /* items marked in done (a waiting loader sleeps on it) */
    atomic_int sleepers; /* loaders asleep (qwait.h) */
};

/* an item's check: not over (claimed or not), passed, failed or not made
 * (an item after a failed one) */
enum { ITEM_PENDING = 0, ITEM_OK = 1, ITEM_BAD = 2 };

static void check_free(sqzc_calib_set *s) {
    if (!s->check) return;
    if (s->check->dirfd >= 0) close(s->check->dirfd);
    free((void *)s->check->done);
    free(s->check->msg);
    free(s->check);
    s->check = NULL;
}

void sqzc_calib_set_free(sqzc_calib_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_items; i++) {
        free(s->items[i].path);
        image8_free(&s->items[i].img);
    }
    free(s->items);
    check_free(s);
    for (int i = 0; i < s->n_files; i++) free(s->files[i].path);
    free(s->files);
    free(s->manifest);
    memset(s, 0, sizeof *s);
}

static char *read_text(const char *path, size_t *len, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open calibration manifest '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        if (cap >= MANIFEST_MAX_BYTES) {
            snprintf(err, err_len, "%s: manifest larger than %u bytes", path, MANIFEST_MAX_BYTES);
            free(buf);
            fclose(f);
            return NULL;
        }
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    if (rerr) {
        snprintf(err, err_len, "cannot read calibration manifest '%s'", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int parse_floats(const char *v, float *out, int max) {
    int n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (n == max) return -1;
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p || errno != 0 || !(d > -1e30 && d < 1e30)) return -1;
        out[n++] = (float)d;
        p = end;
        if (*p && *p != ' ' && *p != '\t' && *p != ',') return -1;
    }
    return n;
}

static int parse_hw(const char *v, int *h, int *w) {
    float f[2];
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", v);
    for (char *c = tmp; *c; c++)
        if (*c == 'x' || *c == 'X') *c = ' ';
    if (parse_floats(tmp, f, 2) != 2) return -1;
    if (f[0] < 1 || f[1] < 1 || f[0] > 16384 || f[1] > 16384 || f[0] != (int)f[0] ||
        f[1] != (int)f[1])
        return -1;
    *h = (int)f[0];
    *w = (int)f[1];
    return 0;
}

static int has_ext(const char *p, const char *ext) {
    size_t n = strlen(p), e = strlen(ext);
    return n > e && strcasecmp(p + n - e, ext) == 0;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Check a PNG header (the file's first n bytes); fills it->channels. */
static int check_png_header(const char *manifest, sqzc_calib_item *it, const uint8_t *h, size_t n,
                            char *err, size_t err_len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(h, sig, 8) != 0) {
        snprintf(err, err_len, "%s:%d: '%s' is not a PNG file", manifest, it->line, it->path);
        return -1;
    }
    if (n < 33 || memcmp(h + 12, "IHDR", 4) != 0 || be32(h + 16) == 0 || be32(h + 20) == 0) {
        snprintf(err, err_len, "%s:%d: '%s': truncated or bad PNG header", manifest, it->line,
                 it->path);
        return -1;
    }
    switch (h[25]) { /* colour type */
    case 0:
    case 4:
        it->channels = 1;
        break;
    case 2:
    case 3:
    case 6:
        it->channels = 3;
        break;
    default:
        snprintf(err, err_len, "%s:%d: '%s': bad PNG colour type %u", manifest, it->line, it->path,
                 h[25]);
        return -1;
    }
    return 0;
}

/* Take bytes from the set's decoding budget (1) or not (0); bytes < 0 gives
 * them back. */
static int budget_take(const sqzc_calib_set *s, double bytes) {
    int ok = 0;
#if defined(_OPENMP)
#pragma omp critical(sqzc_calib_budget)
#endif
    {
        if (bytes < 0) {
            s->check->decode_left += (size_t)-bytes;
        } else if (bytes <= (double)s->check->decode_left) {
            s->check->decode_left -= (size_t)bytes;
            ok = 1;
        }
    }
    return ok;
}

/* Check a listed file; fills it->channels for PNGs, and decodes a PNG into
 * it->img when the decoding budget of s (NULL: none) covers it (the file is
 * then read once: here instead of again when loaded). */
static int check_file(const char *manifest, sqzc_calib_item *it, const sqzc_calib_set *s, char *err,
                      size_t err_len) {
    /* relative to the manifest's directory when the path is under it (the
     * kernel walks one or two components instead of the whole path; O_NONBLOCK:
     * a FIFO does not block the open) */
    const struct sqzc_calib_check *c = s ? s->check : NULL;
    const int rel = c && c->dirfd >= 0 && strncmp(it->path, manifest, c->dlen) == 0;
    int fd = rel ? openat(c->dirfd, it->path + c->dlen, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
                 : open(it->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, err_len, "%s:%d: cannot open '%s': %s", manifest, it->line, it->path,
                 strerror(errno));
        return -1;
    }
    /* the first 4 KB: a shorter read is the whole (regular) file, without an
     * fstat (one system call less per image, ~0.5 us; a directory or pipe
     * fails the read); a larger file's size and type from fstat */
    uint8_t head[4096], *buf = head;
    ssize_t r;
    do r = pread(fd, head, sizeof head, 0);
    while (r < 0 && errno == EINTR);
    struct stat sb;
    sb.st_size = r > 0 ? r : 0;
    if (r < 0 || ((size_t)r == sizeof head && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)))) {
        if (r < 0 && errno != EISDIR && errno != ESPIPE && errno != EINVAL)
            snprintf(err, err_len, "%s:%d: cannot read '%s': %s", manifest, it->line, it->path,
                     strerror(errno));
        else
            snprintf(err, err_len, "%s:%d: '%s' is not a regular file", manifest, it->line,
                     it->path);
        close(fd);
        return -1;
    }
    size_t n = (size_t)r;
    if (it->kind == SQZC_CALIB_NPY) {
        close(fd);
        if (n < 10 || memcmp(head, "\x93NUMPY", 6) != 0) {
            snprintf(err, err_len, "%s:%d: '%s' is not a .npy file", manifest, it->line, it->path);
            return -1;
        }
        return 0;
    }
    if (check_png_header(manifest, it, head, n, err, err_len) != 0) {
        close(fd);
        return -1;
    }
    /* decoded size: width x height x channels floats (8-bit scale) */
    const double bytes =
        (double)be32(head + 16) * (double)be32(head + 20) * (double)it->channels * sizeof(float);
    if (!s || !budget_take(s, bytes)) {
        close(fd);
        return 0;
    }
    int rc = 0;
    if (n < (uint64_t)sb.st_size) { /* the rest of a larger file */
        size_t len = (size_t)sb.st_size, got = n;
        buf = (uint64_t)sb.st_size <= (UINT64_C(1) << 30) ? malloc(len) : NULL;
        if (!buf) {
            close(fd);
            budget_take(s, -bytes);
            return 0; /* decoded when loaded instead */
        }
        memcpy(buf, head, n);
        while (got < len) {
            do r = pread(fd, buf + got, len - got, (off_t)got);
            while (r < 0 && errno == EINTR);
            if (r <= 0) break;
            got += (size_t)r;
        }
        n = got;
    }
    close(fd);
    char e[256];
    int dr = image8_read_png_mem(buf, n, it->path, &it->img, e, sizeof e);
    if (dr != 0) budget_take(s, -bytes);
    if (dr < 0) {
        snprintf(err, err_len, "%s:%d: %s", manifest, it->line, e);
        rc = -1;
    }
    if (buf != head) free(buf);
    return rc;
}

static const char *color_name(int order) {
    return order == IMAGE_GRAY ? "gray" : order == IMAGE_RGB ? "rgb" : "bgr";
}

/* "npy_batch: PATH": an .npy of N samples along its first dimension; its
 * header is checked now (and the file's size against it), N items added. */
static int add_npy_batch(sqzc_calib_set *s, const char *manifest, size_t dlen, const char *v,
                         int lineno, int *cap, char *err, size_t err_len) {
    if (!has_ext(v, ".npy")) {
        snprintf(err, err_len, "%s:%d: npy_batch: '%s' is not a .npy path", manifest, lineno, v);
        return -1;
    }
    size_t pl = strlen(v), pre = v[0] == '/' ? 0 : dlen;
    char *path = malloc(pre + pl + 1);
    sqzc_calib_npyfile *nf = realloc(s->files, sizeof *nf * (size_t)(s->n_files + 1));
    if (nf) s->files = nf;
    if (!path || !nf) {
        free(path);
        snprintf(err, err_len, "%s: out of memory", manifest);
        return -1;
    }
    memcpy(path, manifest, pre);
    memcpy(path + pre, v, pl + 1);
    sqzc_calib_npyfile *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    f->path = path;
    f->line = lineno;
    s->n_files++;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, err_len, "%s:%d: cannot open '%s': %s", manifest, lineno, path,
                 strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, err_len, "%s:%d: '%s' is not a regular file", manifest, lineno, path);
        return -1;
    }
    char e[512];
    if (npy_read_info(path, &f->info, e, sizeof e) != 0) {
        snprintf(err, err_len, "%s:%d: %s", manifest, lineno, e);
        return -1;
    }
    if (f->info.shape.ndim < 1 || f->info.shape.dims[0] < 1 || f->info.count == 0) {
        snprintf(err, err_len,
                 "%s:%d: '%s' holds no samples (npy_batch needs a first dimension N >= 1 and "
                 "non-empty samples)",
                 manifest, lineno, path);
        return -1;
    }
    f->n = f->info.shape.dims[0];
    f->per = (int64_t)(f->info.count / (uint64_t)f->n);
    if (f->n > (int64_t)(1 << 30) - s->n_items) {
        snprintf(err, err_len, "%s:%d: '%s': too many samples", manifest, lineno, path);
        return -1;
    }
    if (s->n_items + f->n > *cap) {
        int64_t nc = *cap ? *cap : 64;
        while (nc < s->n_items + f->n) nc *= 2;
        sqzc_calib_item *ni = realloc(s->items, sizeof *ni * (size_t)nc);
        if (!ni) {
            snprintf(err, err_len, "%s: out of memory", manifest);
            return -1;
        }
        s->items = ni;
        *cap = (int)(nc < INT32_MAX ? nc : INT32_MAX);
    }
    for (int64_t k = 0; k < f->n; k++) {
        sqzc_calib_item *it = &s->items[s->n_items++];
        memset(it, 0, sizeof *it);
        it->kind = SQZC_CALIB_NPY_BATCH;
        it->line = lineno;
        it->file = s->n_files - 1;
        it->index = k;
    }
    return 0;
}

int sqzc_calib_set_parse(const char *manifest, size_t decode_bytes, sqzc_calib_set *s, char *err,
                         size_t err_len) {
    memset(s, 0, sizeof *s);
    s->check = calloc(1, sizeof *s->check);
    if (!s->check) {
        snprintf(err, err_len, "%s: out of memory", manifest);
        return -1;
    }
    s->check->decode_left = decode_bytes;
    s->check->bad_item = -1;
    s->check->dirfd = -1;
    image_prep_init(&s->prep);
    size_t len;
    char *text = read_text(manifest, &len, err, err_len);
    if (!text) {
        sqzc_calib_set_free(s);
        return -1;
    }
    if (strlen(text) != len) {
        snprintf(err, err_len, "%s: not a text file (contains NUL bytes)", manifest);
        free(text);
        sqzc_calib_set_free(s);
        return -1;
    }
    s->manifest = strdup(manifest);
    /* directory of the manifest, for relative paths */
    const char *slash = strrchr(manifest, '/');
    size_t dlen = slash ? (size_t)(slash - manifest) + 1 : 0;
    if (dlen > 0) { /* (a failure leaves the full paths to open) */
        char *d = strndup(manifest, dlen);
        s->check->dirfd = d ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        s->check->dlen = dlen;
        free(d);
    }
    int cap = 0, lineno = 0, nmean = 0, nstd = 0;
    char *save = NULL;
    if (!s->manifest) goto oom;
    for (char *line = text; line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        /* trim */
        while (*line == ' ' || *line == '\t') line++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (!l || line[0] == '#') continue;
        /* "key: value" when the line starts with [a-z_]+ ':' */
        size_t k = 0;
        while ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_') k++;
        if (k > 0 && line[k] == ':') {
            line[k] = '\0';
            const char *key = line, *v = line + k + 1;
            while (*v == ' ' || *v == '\t') v++;
            int bad = 0;
            if (strcmp(key, "npy_batch") == 0) {
                if (add_npy_batch(s, manifest, dlen, v, lineno, &cap, err, err_len) != 0) goto fail;
                continue;
            }
            if (strcmp(key, "color") == 0) {
                if (strcmp(v, "gray") == 0)
                    s->prep.order = IMAGE_GRAY;
                else if (strcmp(v, "rgb") == 0)
                    s->prep.order = IMAGE_RGB;
                else if (strcmp(v, "bgr") == 0)
                    s->prep.order = IMAGE_BGR;
                else
                    bad = 1;
                s->color_set = 1;
            } else if (strcmp(key, "resize") == 0) {
                bad = parse_hw(v, &s->prep.resize_h, &s->prep.resize_w) != 0;
            } else if (strcmp(key, "crop") == 0) {
                bad = parse_hw(v, &s->prep.crop_h, &s->prep.crop_w) != 0;
            } else if (strcmp(key, "scale") == 0) {
                bad = parse_floats(v, &s->prep.scale, 1) != 1 || !(s->prep.scale > 0);
            } else if (strcmp(key, "mean") == 0) {
                nmean = parse_floats(v, s->prep.mean, 3);
                bad = nmean != 1 && nmean != 3;
            } else if (strcmp(key, "std") == 0) {
                nstd = parse_floats(v, s->prep.std, 3);
                bad = nstd != 1 && nstd != 3;
                for (int c = 0; c < nstd && !bad; c++) bad = !(s->prep.std[c] > 0);
            } else if (strcmp(key, "layout") == 0) {
                if (strcmp(v, "nchw") == 0)
                    s->prep.layout = IMAGE_NCHW;
                else if (strcmp(v, "nhwc") == 0)
                    s->prep.layout = IMAGE_NHWC;
                else
                    bad = 1;
            } else {
                snprintf(err, err_len,
                         "%s:%d: unknown key '%s' (keys: color, resize, crop, scale, mean, std, "
                         "layout, npy_batch)",
                         manifest, lineno, key);
                goto fail;
            }
            if (bad) {
                snprintf(err, err_len, "%s:%d: bad value '%s' for '%s'", manifest, lineno, v, key);
                goto fail;
            }
            continue;
        }
        int kind = has_ext(line, ".png")   ? SQZC_CALIB_PNG
                   : has_ext(line, ".npy") ? SQZC_CALIB_NPY
                                           : 0;
        if (!kind) {
            snprintf(err, err_len, "%s:%d: '%s' is neither a .png image nor a .npy tensor",
                     manifest, lineno, line);
            goto fail;
        }
        if (s->n_items == cap) {
            int nc = cap ? cap * 2 : 64;
            sqzc_calib_item *ni = realloc(s->items, sizeof *ni * (size_t)nc);
            if (!ni) goto oom;
            s->items = ni;
            cap = nc;
        }
        sqzc_calib_item *it = &s->items[s->n_items];
        memset(it, 0, sizeof *it);
        size_t pl = strlen(line), pre = line[0] == '/' ? 0 : dlen;
        it->path = malloc(pre + pl + 1);
        if (!it->path) goto oom;
        memcpy(it->path, manifest, pre);
        memcpy(it->path + pre, line, pl + 1);
        it->kind = kind;
        it->line = lineno;
        s->n_items++;
    }
    if (s->n_items == 0) {
        snprintf(err, err_len,
                 "%s: empty calibration set (no image, .npy path or npy_batch sample listed)",
                 manifest);
        goto fail;
    }
    s->check->done = malloc(sizeof *s->check->done * (size_t)s->n_items);
    if (!s->check->done) goto oom;
    for (int i = 0; i < s->n_items; i++) atomic_init(&s->check->done[i], ITEM_PENDING);
    atomic_init(&s->check->marks, 0);
    atomic_init(&s->check->sleepers, 0);
    /* one mean / std value applies to every channel */
    if (nmean == 1) s->prep.mean[1] = s->prep.mean[2] = s->prep.mean[0];
    if (nstd == 1) s->prep.std[1] = s->prep.std[2] = s->prep.std[0];
    free(text);
    return 0;
oom:
    snprintf(err, err_len, "%s: out of memory", manifest);
fail:
    free(text);
    sqzc_calib_set_free(s);
    return -1;
}

/* Claim the next unchecked item and check it: 1 (one claimed), 0 (none
 * left). An item after a failed one is marked failed unchecked (the first
 * failure in manifest order is reported: items before it are still
 * checked); every claimed item is marked, which a loader waits for. */
static int check_next(const sqzc_calib_set *s) {
    struct sqzc_calib_check *c = s->check;
    int i, bad;
#if defined(_OPENMP)
#pragma omp atomic capture
#endif
    i = c->next++;
    if (i >= s->n_items) return 0;
#if defined(_OPENMP)
#pragma omp atomic read
#endif
    bad = c->bad_item;
    if (bad >= 0 && i > bad) {
        atomic_store_explicit(&c->done[i], ITEM_BAD, memory_order_release);
        atomic_fetch_add(&c->marks, 1);
        q_wake(&c->marks, &c->sleepers);
        return 1;
    }
    sqzc_calib_item *it = &s->items[i];
    char e[1024];
    /* (an npy_batch sample is checked with its file) */
    const int ok =
        it->kind == SQZC_CALIB_NPY_BATCH || check_file(s->manifest, it, s, e, sizeof e) == 0;
    if (!ok) {
#if defined(_OPENMP)
#pragma omp critical(sqzc_calib_bad)
#endif
        if (c->bad_item < 0 || i < c->bad_item) {
            char *m = strdup(e);
            if (m) {
                free(c->msg);
                c->msg = m;
            }
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            c->bad_item = i;
        }
    }
    /* (release: the decoded image and channels before the mark) */
    atomic_store_explicit(&c->done[i], ok ? ITEM_OK : ITEM_BAD, memory_order_release);
    atomic_fetch_add(&c->marks, 1);
    q_wake(&c->marks, &c->sleepers);
    return 1;
}

void sqzc_calib_set_check_some(const sqzc_calib_set *s, const int *stop) {
    if (!s->check) return;
    for (;;) {
        int halt = 0;
        if (stop) {
#if defined(_OPENMP)
#pragma omp atomic read
#endif
            halt = *stop;
        }
        if (halt || !check_next(s)) return;
    }
}

/* Items [first, first + count) of a set whose checks are not over: the
 * unclaimed ones up to there checked here (in manifest order, as the other
 * threads claim them), then a wait for those others are checking. 0 when
 * all of them passed, -1 else. */
static int await_items(const sqzc_calib_set *s, int first, int count) {
    struct sqzc_calib_check *c = s->check;
    for (;;) {
        int next;
#if defined(_OPENMP)
#pragma omp atomic read
#endif
        next = c->next;
        if (next >= first + count || !check_next(s)) break;
    }
    for (int i = first; i < first + count; i++) {
        int st;
        /* (another thread is decoding it: a few microseconds, unless that
         * thread lost its CPU: then asleep until an item is marked) */
        for (unsigned spins = 0;; spins++) {
            const int seen = atomic_load(&c->marks);
            st = atomic_load_explicit(&c->done[i], memory_order_acquire);
            if (st != ITEM_PENDING) break;
            if (spins < Q_SPINS)
                q_pause();
            else
                q_sleep(&c->marks, seen, &c->sleepers);
        }
        if (st != ITEM_OK) return -1;
    }
    return 0;
}

int sqzc_calib_set_pending(const sqzc_calib_set *s) {
    return s->check && !s->check->finished;
}

int sqzc_calib_set_check_finish(const sqzc_calib_set *s, char *err, size_t err_len) {
    struct sqzc_calib_check *c = s->check;
    if (!c) return 0; /* sqzc_calib_set_check_done passed */
    if (!c->finished) {
        sqzc_calib_set_check_some(s, NULL);
        c->finished = 1;
        c->rc = c->bad_item >= 0 ? -1 : 0;
        for (int i = 0; i < s->n_items && c->rc == 0; i++) {
            const sqzc_calib_item *it = &s->items[i];
            if (it->kind != SQZC_CALIB_PNG || !s->color_set) continue;
            int want = s->prep.order == IMAGE_GRAY ? 1 : 3;
            if (it->channels != want) {
                char e[1024];
                snprintf(e, sizeof e, "%s:%d: '%s' is a %s image but the manifest says color: %s",
                         s->manifest, it->line, it->path,
                         it->channels == 1 ? "grayscale" : "colour", color_name(s->prep.order));
                free(c->msg);
                c->msg = strdup(e);
                c->rc = -1;
            }
        }
    }
    if (c->rc != 0) snprintf(err, err_len, "%s", c->msg ? c->msg : "out of memory");
    return c->rc;
}

int sqzc_calib_set_check_done(sqzc_calib_set *s, char *err, size_t err_len) {
    int rc = sqzc_calib_set_check_finish(s, err, err_len);
    if (rc != 0)
        sqzc_calib_set_free(s);
    else
        check_free(s);
    return rc;
}

int sqzc_calib_set_read(const char *manifest, sqzc_calib_set *s, char *err, size_t err_len) {
    if (sqzc_calib_set_parse(manifest, 0, s, err, err_len) != 0) return -1;
    return sqzc_calib_set_check_done(s, err, err_len);
}

/* C, H, W of a model input under the set's layout; -1 if not an image input. */
static int input_chw(const sqzc_calib_set *s, const sqz_shape *in, int *c, int *h, int *w) {
    if (in->ndim != 4) return -1;
    if (s->prep.layout == IMAGE_NHWC) {
        *h = (int)in->dims[1];
        *w = (int)in->dims[2];
        *c = (int)in->dims[3];
    } else {
        *c = (int)in->dims[1];
        *h = (int)in->dims[2];
        *w = (int)in->dims[3];
    }
    return 0;
}

int sqzc_calib_set_check_input(const sqzc_calib_set *s, const sqz_shape *input, char *err,
                               size_t err_len) {
    int c = 0, h = 0, w = 0, have_png = 0;
    const int64_t per =
        input->ndim >= 1 && input->dims[0] > 0 ? sqz_shape_numel(input) / input->dims[0] : 0;
    for (int i = 0; i < s->n_files; i++) {
        const sqzc_calib_npyfile *f = &s->files[i];
        if (f->per != per) {
            snprintf(err, err_len,
                     "%s:%d: '%s' holds %lld samples of %lld elements; one model input sample "
                     "has %lld",
                     s->manifest, f->line, f->path, (long long)f->n, (long long)f->per,
                     (long long)per);
            return -1;
        }
    }
    for (int i = 0; i < s->n_items; i++) have_png |= s->items[i].kind == SQZC_CALIB_PNG;
    if (!have_png) return 0; /* .npy sizes are checked per file at load */
    if (input_chw(s, input, &c, &h, &w) != 0) {
        snprintf(err, err_len,
                 "%s: images need a 4-D model input (%s), the model's has %d dims; list .npy "
                 "tensors instead",
                 s->manifest, s->prep.layout == IMAGE_NHWC ? "NHWC" : "NCHW", input->ndim);
        return -1;
    }
    if (c != 1 && c != 3) {
        snprintf(err, err_len, "%s: the model input has %d channels; images give 1 or 3",
                 s->manifest, c);
        return -1;
    }
    int order = s->color_set ? s->prep.order : (c == 1 ? IMAGE_GRAY : IMAGE_RGB);
    if ((order == IMAGE_GRAY) != (c == 1)) {
        snprintf(err, err_len, "%s: color: %s does not fit the model input's %d channel%s",
                 s->manifest, color_name(order), c, c == 1 ? "" : "s");
        return -1;
    }
    for (int i = 0; i < s->n_items; i++) {
        const sqzc_calib_item *it = &s->items[i];
        if (it->kind == SQZC_CALIB_PNG && it->channels != c) {
            snprintf(err, err_len, "%s:%d: '%s' is a %s image but the model input has %d channel%s",
                     s->manifest, it->line, it->path, it->channels == 1 ? "grayscale" : "colour", c,
                     c == 1 ? "" : "s");
            return -1;
        }
    }
    return 0;
}

int sqzc_calib_set_load(const sqzc_calib_set *s, int i, const sqz_shape *input, float *out,
                        char *err, size_t err_len) {
    const sqzc_calib_item *it = &s->items[i];
    int64_t per =
        input->ndim >= 1 && input->dims[0] > 0 ? sqz_shape_numel(input) / input->dims[0] : 0;
    if (it->kind == SQZC_CALIB_NPY_BATCH)
        return sqzc_calib_set_load_many(s, i, 1, input, out, err, err_len);
    if (it->kind == SQZC_CALIB_NPY) {
        npy_array a;
        char e[256];
        if (npy_read(it->path, &a, e, sizeof e) != 0) {
            snprintf(err, err_len, "%s:%d: %s", s->manifest, it->line, e);
            return -1;
        }
        if ((int64_t)a.count != per) {
            snprintf(err, err_len, "%s:%d: '%s' has %zu elements; one model input sample has %lld",
                     s->manifest, it->line, it->path, a.count, (long long)per);
            npy_free(&a);
            return -1;
        }
        memcpy(out, a.data, a.count * sizeof(float));
        npy_free(&a);
        return 0;
    }
    int c, h, w;
    if (input_chw(s, input, &c, &h, &w) != 0 || (int64_t)c * h * w != per) {
        snprintf(err, err_len, "%s: images need a 4-D model input", s->manifest);
        return -1;
    }
    char e[256];
    image_prep p = s->prep;
    if (!s->color_set) p.order = IMAGE_AUTO;
    int rc;
    if (it->img.data) { /* decoded when the set was checked */
        if (it->img.c != c) {
            snprintf(err, err_len, "%s:%d: '%s' has %d channel%s, the model input %d", s->manifest,
                     it->line, it->path, it->img.c, it->img.c == 1 ? "" : "s", c);
            return -1;
        }
        rc = image8_preprocess(&it->img, &p, h, w, c, out, e, sizeof e);
    } else {
        image img;
        if (image_read_png(it->path, &img, e, sizeof e) != 0) {
            snprintf(err, err_len, "%s:%d: %s", s->manifest, it->line, e);
            return -1;
        }
        if (img.c != c) {
            snprintf(err, err_len, "%s:%d: '%s' has %d channel%s, the model input %d", s->manifest,
                     it->line, it->path, img.c, img.c == 1 ? "" : "s", c);
            image_free(&img);
            return -1;
        }
        rc = image_preprocess(&img, &p, h, w, c, out, e, sizeof e);
        image_free(&img);
    }
    if (rc != 0) {
        snprintf(err, err_len, "%s:%d: '%s': %s", s->manifest, it->line, it->path, e);
        return -1;
    }
    return 0;
}

int sqzc_calib_set_load_many(const sqzc_calib_set *s, int first, int count, const sqz_shape *input,
                             float *out, char *err, size_t err_len) {
    const int64_t per =
        input->ndim >= 1 && input->dims[0] > 0 ? sqz_shape_numel(input) / input->dims[0] : 0;
    /* checks not over (sqzc_calib_set_parse): these items' first */
    if (s->check && !s->check->finished && await_items(s, first, count) != 0) {
        snprintf(err, err_len, "%s: a listed file failed its check", s->manifest);
        return -1;
    }
    for (int i = first; i < first + count;) {
        const sqzc_calib_item *it = &s->items[i];
        float *o = out + (size_t)(i - first) * (size_t)per;
        if (it->kind != SQZC_CALIB_NPY_BATCH) {
            if (sqzc_calib_set_load(s, i, input, o, err, err_len) != 0) return -1;
            i++;
            continue;
        }
        /* the run of consecutive samples of this file */
        int j = i + 1;
        while (j < first + count && s->items[j].kind == SQZC_CALIB_NPY_BATCH &&
               s->items[j].file == it->file && s->items[j].index == it->index + (j - i))
            j++;
        const sqzc_calib_npyfile *f = &s->files[it->file];
        if (f->per != per) {
            snprintf(err, err_len,
                     "%s:%d: '%s' has samples of %lld elements; one model input "
                     "sample has %lld",
                     s->manifest, f->line, f->path, (long long)f->per, (long long)per);
            return -1;
        }
        char e[512];
        if (npy_read_range(f->path, &f->info, (uint64_t)it->index * (uint64_t)per,
                           (uint64_t)(j - i) * (uint64_t)per, o, e, sizeof e) != 0) {
            snprintf(err, err_len, "%s:%d: %s", s->manifest, f->line, e);
            return -1;
        }
        i = j;
    }
    return 0;
}
