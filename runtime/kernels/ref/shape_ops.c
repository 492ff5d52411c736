/* shape_ops.c - data movement: Concat, Split, Slice, Transpose, Reshape,
 * Flatten, Squeeze, Unsqueeze, Identity, Pad. */
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

static void copy_floats(float *y, const float *x, int64_t n) {
    if (n > 0 && y != x) memmove(y, x, (size_t)n * sizeof(float));
}

/* ------------------------------------------- views (no data rearrangement) */

static void view_run(const sqz_op_ctx *ctx) {
    copy_floats(ctx->out_data[0], ctx->in_data[0], sqz_shape_numel(&ctx->out_shape[0]));
}

static int identity_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    ctx->out_shape[0] = ctx->in_shape[0];
    return 0;
}

const sqz_op_impl sqz_ref_identity = {identity_prepare, view_run, NULL, NULL};

static int reshape_prepare(sqz_op_ctx *ctx) {
    /* a still-present shape input (not folded) is rejected: its data is int64 */
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    const int64_t *sv;
    int n = sqz_attr_ints(ctx->node, "shape", &sv);
    if (n < 0) return sqz_op_fail(ctx, "Reshape: attribute shape is required");
    if (n > SQZ_MAX_DIMS) return sqz_op_fail(ctx, "Reshape: shape rank %d too large", n);
    int64_t allowzero = sqz_attr_int(ctx->node, "allowzero", 0);
    sqz_shape o;
    o.ndim = n;
    int neg = -1;
    int64_t known = 1;
    int has_zero = 0;
    for (int i = 0; i < n; i++) {
        int64_t d = sv[i];
        if (d == -1) {
            if (neg >= 0) return sqz_op_fail(ctx, "Reshape: shape has more than one -1");
            neg = i;
            continue;
        }
        if (d < -1 || d > REF_MAX_NUMEL || (d > 0 && known > REF_MAX_NUMEL / d))
            return sqz_op_fail(ctx, "Reshape: shape[%d]=%lld invalid", i, (long long)d);
        if (d == 0) {
            if (allowzero) {
                has_zero = 1;
            } else {
                if (i >= x->ndim)
                    return sqz_op_fail(ctx, "Reshape: shape[%d]=0 copies a missing input dim", i);
                d = x->dims[i];
            }
        }
        o.dims[i] = d;
        known *= d;
    }
    int64_t total = sqz_shape_numel(x);
    if (neg >= 0) {
        if (has_zero) return sqz_op_fail(ctx, "Reshape: allowzero=1 with both 0 and -1 in shape");
        if (known == 0 || total % known != 0)
            return sqz_op_fail(ctx, "Reshape: cannot infer -1 (%lld elements into %lld)",
                               (long long)total, (long long)known);
        o.dims[neg] = total / known;
        known *= o.dims[neg];
    }
    if (known != total)
        return sqz_op_fail(ctx, "Reshape: element count %lld differs from input %lld",
                           (long long)known, (long long)total);
    ctx->out_shape[0] = o;
    return 0;
}

const sqz_op_impl sqz_ref_reshape = {reshape_prepare, view_run, NULL, NULL};

static int flatten_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", 1), x->ndim, 1, &axis))
        return -1;
    sqz_shape *o = &ctx->out_shape[0];
    o->ndim = 2;
    o->dims[0] = ref_prod(x->dims, 0, axis);
    o->dims[1] = ref_prod(x->dims, axis, x->ndim);
    return 0;
}

const sqz_op_impl sqz_ref_flatten = {flatten_prepare, view_run, NULL, NULL};

static int squeeze_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int drop[SQZ_MAX_DIMS] = {0};
    const int64_t *av;
    int n = sqz_attr_ints(ctx->node, "axes", &av);
    if (n < 0) {
        for (int i = 0; i < x->ndim; i++) drop[i] = x->dims[i] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            if (ref_norm_axis(ctx, "axes", av[i], x->ndim, 0, &a)) return -1;
            if (x->dims[a] != 1)
                return sqz_op_fail(ctx, "Squeeze: axes=%lld selects dim of size %lld",
                                   (long long)av[i], (long long)x->dims[a]);
            drop[a] = 1;
        }
    }
    sqz_shape o;
    o.ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!drop[i]) o.dims[o.ndim++] = x->dims[i];
    ctx->out_shape[0] = o;
    return 0;
}

const sqz_op_impl sqz_ref_squeeze = {squeeze_prepare, view_run, NULL, NULL};

static int unsqueeze_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    const int64_t *av;
    int n = sqz_attr_ints(ctx->node, "axes", &av);
    if (n < 0) return sqz_op_fail(ctx, "Unsqueeze: attribute axes is required");
    int r = x->ndim + n;
    if (r > SQZ_MAX_DIMS) return sqz_op_fail(ctx, "Unsqueeze: output rank %d too large", r);
    int ins[SQZ_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        if (ref_norm_axis(ctx, "axes", av[i], r, 0, &a)) return -1;
        if (ins[a])
            return sqz_op_fail(ctx, "Unsqueeze: axes has duplicate value %lld", (long long)av[i]);
        ins[a] = 1;
    }
    sqz_shape o;
    o.ndim = r;
    for (int i = 0, j = 0; i < r; i++) o.dims[i] = ins[i] ? 1 : x->dims[j++];
    ctx->out_shape[0] = o;
    return 0;
}

const sqz_op_impl sqz_ref_unsqueeze = {unsqueeze_prepare, view_run, NULL, NULL};

/* ----------------------------------------------------------------- Concat */

typedef struct concat_p {
    int64_t outer, out_inner;
} concat_p;

static int concat_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 0xFFFF, 1)) return -1;
    const sqz_shape *x0 = &ctx->in_shape[0];
    if (x0->ndim < 1) return sqz_op_fail(ctx, "Concat: scalar inputs unsupported");
    const sqz_attr *at = sqz_node_attr(ctx->node, "axis");
    if (!at) return sqz_op_fail(ctx, "Concat: attribute axis is required");
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", 0), x0->ndim, 0, &axis))
        return -1;
    sqz_shape o = *x0;
    o.dims[axis] = 0;
    for (uint32_t i = 0; i < ctx->n_in; i++) {
        const sqz_shape *s = &ctx->in_shape[i];
        if (s->ndim != x0->ndim)
            return sqz_op_fail(ctx, "Concat: input %u rank %d differs from %d", i, s->ndim,
                               x0->ndim);
        for (int d = 0; d < s->ndim; d++)
            if (d != axis && s->dims[d] != x0->dims[d])
                return sqz_op_fail(ctx, "Concat: input %u dim %d is %lld, expected %lld", i, d,
                                   (long long)s->dims[d], (long long)x0->dims[d]);
        o.dims[axis] += s->dims[axis];
    }
    concat_p *p = malloc(sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Concat: out of memory");
    p->outer = ref_prod(o.dims, 0, axis);
    p->out_inner = ref_prod(o.dims, axis, o.ndim);
    ctx->params = p;
    ctx->out_shape[0] = o;
    return 0;
}

static void concat_run(const sqz_op_ctx *ctx) {
    const concat_p *p = ctx->params;
    float *y = ctx->out_data[0];
    int64_t off = 0;
    for (uint32_t i = 0; i < ctx->n_in; i++) {
        const sqz_shape *s = &ctx->in_shape[i];
        int64_t chunk = p->outer ? sqz_shape_numel(s) / p->outer : 0;
        const float *x = ctx->in_data[i];
        for (int64_t o = 0; o < p->outer; o++)
            copy_floats(y + o * p->out_inner + off, x + o * chunk, chunk);
        off += chunk;
    }
}

const sqz_op_impl sqz_ref_concat = {concat_prepare, concat_run, free, NULL};

/* ------------------------------------------------------------------ Split */

typedef ref_split split_p;

static int split_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 0)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    if (x->ndim < 1) return sqz_op_fail(ctx, "Split: scalar input unsupported");
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", 0), x->ndim, 0, &axis))
        return -1;
    int64_t dim = x->dims[axis];
    uint32_t no = ctx->n_out;
    const int64_t *sv;
    int ns = sqz_attr_ints(ctx->node, "split", &sv);
    const sqz_attr *nat = sqz_node_attr(ctx->node, "num_outputs");
    int64_t sum = 0;
    if (ns >= 0) {
        if ((uint32_t)ns != no)
            return sqz_op_fail(ctx, "Split: split has %d values for %u outputs", ns, no);
        for (uint32_t i = 0; i < no; i++) {
            if (sv[i] < 0)
                return sqz_op_fail(ctx, "Split: split[%u]=%lld invalid", i, (long long)sv[i]);
            sum += sv[i];
        }
        if (sum != dim)
            return sqz_op_fail(ctx, "Split: split sums to %lld, axis dim is %lld", (long long)sum,
                               (long long)dim);
    } else if (nat) {
        int64_t num = sqz_attr_int(ctx->node, "num_outputs", 0);
        if (num < 1 || (uint64_t)num != no)
            return sqz_op_fail(ctx, "Split: num_outputs=%lld but node has %u outputs",
                               (long long)num, no);
    } else if (dim % no != 0) {
        return sqz_op_fail(ctx, "Split: axis dim %lld not divisible into %u outputs",
                           (long long)dim, no);
    }
    int64_t chunk = (dim + no - 1) / no; /* num_outputs: last one smaller */
    int64_t start = 0;
    for (uint32_t i = 0; i < no; i++) {
        int64_t len;
        if (ns >= 0)
            len = sv[i];
        else
            len = start + chunk <= dim ? chunk : dim - start;
        if (len < 0) len = 0;
        sqz_shape o = *x;
        o.dims[axis] = len;
        ctx->out_shape[i] = o;
        start += len;
    }
    if (start != dim)
        return sqz_op_fail(ctx, "Split: cannot split axis dim %lld into %u outputs", (long long)dim,
                           no);
    split_p *p = malloc(sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Split: out of memory");
    p->outer = ref_prod(x->dims, 0, axis);
    p->inner = ref_prod(x->dims, axis + 1, x->ndim);
    p->in_inner = dim * p->inner;
    ctx->params = p;
    return 0;
}

static void split_run(const sqz_op_ctx *ctx) {
    const split_p *p = ctx->params;
    const float *x = ctx->in_data[0];
    int64_t off = 0;
    for (uint32_t i = 0; i < ctx->n_out; i++) {
        const sqz_shape *s = &ctx->out_shape[i];
        int64_t chunk = p->outer ? sqz_shape_numel(s) / p->outer : 0;
        float *y = ctx->out_data[i];
        for (int64_t o = 0; o < p->outer; o++)
            copy_floats(y + o * chunk, x + o * p->in_inner + off, chunk);
        off += chunk;
    }
}

const sqz_op_impl sqz_ref_split = {split_prepare, split_run, free, NULL};

/* ---------------------------------------------- Slice / Transpose (strided) */

static void strided_run(const sqz_op_ctx *ctx) {
    const ref_strided *p = ctx->params;
    ref_strided_copy(ctx->out_data[0], ctx->in_data[0], p->nd, p->dims, p->base, p->st);
}

static int slice_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    const int64_t *sv, *ev, *av, *tv;
    int ns = sqz_attr_ints(ctx->node, "starts", &sv);
    int ne = sqz_attr_ints(ctx->node, "ends", &ev);
    if (ns < 0 || ne < 0) return sqz_op_fail(ctx, "Slice: attributes starts and ends are required");
    if (ns != ne) return sqz_op_fail(ctx, "Slice: starts has %d values, ends has %d", ns, ne);
    int na = sqz_attr_ints(ctx->node, "axes", &av);
    int nt = sqz_attr_ints(ctx->node, "steps", &tv);
    if (na >= 0 && na != ns)
        return sqz_op_fail(ctx, "Slice: axes has %d values, expected %d", na, ns);
    if (nt >= 0 && nt != ns)
        return sqz_op_fail(ctx, "Slice: steps has %d values, expected %d", nt, ns);
    int64_t start[SQZ_MAX_DIMS], step[SQZ_MAX_DIMS];
    sqz_shape o = *x;
    int seen[SQZ_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++) {
        start[d] = 0;
        step[d] = 1;
    }
    for (int i = 0; i < ns; i++) {
        int a = i;
        if (na >= 0) {
            if (ref_norm_axis(ctx, "axes", av[i], x->ndim, 0, &a)) return -1;
        } else if (i >= x->ndim) {
            return sqz_op_fail(ctx, "Slice: %d starts for rank %d", ns, x->ndim);
        }
        if (seen[a]) return sqz_op_fail(ctx, "Slice: axes repeats axis %d", a);
        seen[a] = 1;
        int64_t st = nt >= 0 ? tv[i] : 1;
        if (st == 0) return sqz_op_fail(ctx, "Slice: steps[%d]=0 invalid", i);
        int64_t dim = x->dims[a], s = sv[i], e = ev[i];
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        int64_t len;
        if (st > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
            len = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = s < 0 ? 0 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
            len = s > e ? (s - e - 1) / (-st) + 1 : 0;
        }
        start[a] = len > 0 ? s : 0;
        step[a] = st;
        o.dims[a] = len;
    }
    ref_strided *p = calloc(1, sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Slice: out of memory");
    int64_t xs[SQZ_MAX_DIMS];
    ref_strides(x, xs);
    p->nd = o.ndim;
    for (int d = 0; d < o.ndim; d++) {
        p->dims[d] = o.dims[d];
        p->st[d] = xs[d] * step[d];
        p->base += start[d] * xs[d];
    }
    ctx->params = p;
    ctx->out_shape[0] = o;
    return 0;
}

const sqz_op_impl sqz_ref_slice = {slice_prepare, strided_run, free, NULL};

static int transpose_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int r = x->ndim;
    int64_t perm[SQZ_MAX_DIMS];
    const int64_t *pv;
    int np = sqz_attr_ints(ctx->node, "perm", &pv);
    if (np < 0) {
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    } else {
        if (np != r) return sqz_op_fail(ctx, "Transpose: perm has %d values for rank %d", np, r);
        int seen[SQZ_MAX_DIMS] = {0};
        for (int i = 0; i < r; i++) {
            int64_t v = pv[i] < 0 ? pv[i] + r : pv[i];
            if (v < 0 || v >= r || seen[v])
                return sqz_op_fail(ctx, "Transpose: perm is not a permutation (perm[%d]=%lld)", i,
                                   (long long)pv[i]);
            seen[v] = 1;
            perm[i] = v;
        }
    }
    ref_strided *p = calloc(1, sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Transpose: out of memory");
    int64_t xs[SQZ_MAX_DIMS];
    ref_strides(x, xs);
    sqz_shape o;
    o.ndim = r;
    p->nd = r;
    for (int i = 0; i < r; i++) {
        o.dims[i] = x->dims[perm[i]];
        p->dims[i] = o.dims[i];
        p->st[i] = xs[perm[i]];
    }
    ctx->params = p;
    ctx->out_shape[0] = o;
    return 0;
}

const sqz_op_impl sqz_ref_transpose = {transpose_prepare, strided_run, free, NULL};

/* -------------------------------------------------------------------- Pad */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_p {
    int nd;
    int64_t odims[SQZ_MAX_DIMS], xst[SQZ_MAX_DIMS];
    float value;
    int64_t *map[SQZ_MAX_DIMS]; /* per dim: output index -> input index or -1 */
    int64_t storage[];
} pad_p;

static int64_t pad_src(int mode, int64_t i, int64_t n) {
    if (i >= 0 && i < n) return i;
    if (n <= 0) return -1;
    switch (mode) {
    case PAD_EDGE:
        return i < 0 ? 0 : n - 1;
    case PAD_WRAP:
        return ((i % n) + n) % n;
    case PAD_REFLECT: {
        if (n == 1) return 0;
        int64_t period = 2 * (n - 1);
        int64_t m = ((i % period) + period) % period;
        return m < n ? m : period - m;
    }
    default:
        return -1;
    }
}

static int pad_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int r = x->ndim;
    const char *ms = sqz_attr_str(ctx->node, "mode", "constant");
    int mode;
    if (strcmp(ms, "constant") == 0)
        mode = PAD_CONSTANT;
    else if (strcmp(ms, "reflect") == 0)
        mode = PAD_REFLECT;
    else if (strcmp(ms, "edge") == 0)
        mode = PAD_EDGE;
    else if (strcmp(ms, "wrap") == 0)
        mode = PAD_WRAP;
    else
        return sqz_op_fail(ctx, "Pad: mode=\"%s\" unsupported", ms);
    const int64_t *pv, *av;
    int np = sqz_attr_ints(ctx->node, "pads", &pv);
    if (np < 0) return sqz_op_fail(ctx, "Pad: attribute pads is required");
    int na = sqz_attr_ints(ctx->node, "axes", &av);
    int axes[SQZ_MAX_DIMS];
    int nax = na >= 0 ? na : r;
    if (nax > SQZ_MAX_DIMS) return sqz_op_fail(ctx, "Pad: too many axes");
    for (int i = 0; i < nax; i++) {
        axes[i] = i;
        if (na >= 0 && ref_norm_axis(ctx, "axes", av[i], r, 0, &axes[i])) return -1;
    }
    if (np != 2 * nax) return sqz_op_fail(ctx, "Pad: pads has %d values, expected %d", np, 2 * nax);
    int64_t pb[SQZ_MAX_DIMS] = {0}, pe[SQZ_MAX_DIMS] = {0};
    for (int i = 0; i < nax; i++) {
        if (pv[i] < -REF_MAX_NUMEL || pv[i] > REF_MAX_NUMEL || pv[i + nax] < -REF_MAX_NUMEL ||
            pv[i + nax] > REF_MAX_NUMEL)
            return sqz_op_fail(ctx, "Pad: pads value out of range");
        pb[axes[i]] = pv[i];
        pe[axes[i]] = pv[i + nax];
    }
    sqz_shape o = *x;
    int64_t msum = 0;
    for (int d = 0; d < r; d++) {
        o.dims[d] = x->dims[d] + pb[d] + pe[d];
        if (o.dims[d] < 0)
            return sqz_op_fail(ctx, "Pad: pads make dim %d negative (%lld)", d,
                               (long long)o.dims[d]);
        if (mode != PAD_CONSTANT && x->dims[d] == 0 && o.dims[d] > 0)
            return sqz_op_fail(ctx, "Pad: mode=\"%s\" cannot pad an empty dim", ms);
        msum += o.dims[d];
    }
    if (ref_check_size(ctx, r, o.dims)) return -1;
    pad_p *p = calloc(1, sizeof(*p) + (size_t)msum * sizeof(int64_t));
    if (!p) return sqz_op_fail(ctx, "Pad: out of memory");
    p->nd = r;
    p->value = sqz_attr_float(ctx->node, "value", 0.0f);
    ref_strides(x, p->xst);
    int64_t *m = p->storage;
    for (int d = 0; d < r; d++) {
        p->odims[d] = o.dims[d];
        p->map[d] = m;
        for (int64_t i = 0; i < o.dims[d]; i++) m[i] = pad_src(mode, i - pb[d], x->dims[d]);
        m += o.dims[d];
    }
    ctx->params = p;
    ctx->out_shape[0] = o;
    return 0;
}

static void pad_run(const sqz_op_ctx *ctx) {
    const pad_p *p = ctx->params;
    const float *x = ctx->in_data[0];
    float *y = ctx->out_data[0];
    int nd = p->nd;
    int64_t total = ref_prod(p->odims, 0, nd);
    if (total <= 0) return;
    if (nd == 0) {
        y[0] = x[0];
        return;
    }
    int64_t idx[SQZ_MAX_DIMS] = {0};
    int64_t inner = p->odims[nd - 1];
    const int64_t *im = p->map[nd - 1];
    for (int64_t o = 0; o < total; o += inner) {
        int64_t off = 0;
        int outside = 0;
        for (int d = 0; d < nd - 1; d++) {
            int64_t s = p->map[d][idx[d]];
            if (s < 0)
                outside = 1;
            else
                off += s * p->xst[d];
        }
        float *yr = y + o;
        if (outside) {
            for (int64_t i = 0; i < inner; i++) yr[i] = p->value;
        } else {
            const float *xr = x + off;
            for (int64_t i = 0; i < inner; i++) yr[i] = im[i] < 0 ? p->value : xr[im[i]];
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < p->odims[d]) break;
            idx[d] = 0;
        }
    }
}

const sqz_op_impl sqz_ref_pad = {pad_prepare, pad_run, free, NULL};
