/* copy_fast.c - Slice and Transpose (f32) as block copies. See fastops.h.
 *
 * The reference copies one innermost row at a time over the output's full
 * index space: a Transpose that keeps the last dims in place (ShuffleNet's
 * channel shuffle, [1,2,58,28,28] perm 0,2,1,3,4) becomes thousands of
 * 28-float memcpys, and a Slice of whole channels one memcpy per row. Here
 * the index space is first simplified: size-1 dims are dropped and adjacent
 * dims that are contiguous in the input too (st[d] == st[d+1] * dims[d+1])
 * are merged, so the channel shuffle is 116 copies of 784 floats and a
 * channel Slice a single copy. Rows are split over the session's threads
 * when the copy is large enough to pay for it. Results are identical to the
 * reference (pure data movement). */
#include <stdlib.h>
#include <string.h>

#include "fastops.h"
#include "par.h"
#include "ref/ref.h"

/* below this many bytes a copy stays on one thread (a few microseconds) */
#define COPY_PAR_MIN_BYTES ((int64_t)1 << 16)

/* Drops size-1 dims and merges dims that are contiguous in the input. */
static void simplify(ref_strided *p) {
    int n = 0;
    int64_t dims[SQZ_MAX_DIMS], st[SQZ_MAX_DIMS];
    for (int d = 0; d < p->nd; d++) {
        if (p->dims[d] == 1) continue;
        if (n > 0 && st[n - 1] == p->st[d] * p->dims[d]) {
            dims[n - 1] *= p->dims[d]; /* outer dim d-1 steps over whole rows of d */
            st[n - 1] = p->st[d];
            continue;
        }
        dims[n] = p->dims[d];
        st[n] = p->st[d];
        n++;
    }
    if (n == 0) { /* a single element */
        dims[0] = 1;
        st[0] = 1;
        n = 1;
    }
    p->nd = n;
    for (int d = 0; d < n; d++) {
        p->dims[d] = dims[d];
        p->st[d] = st[d];
    }
}

static int copy_prepare(sqz_op_ctx *ctx, const sqz_op_impl *ref) {
    if (sqz_ctx_in_dtype(ctx, 0) != SQZ_DT_F32 || sqz_ctx_out_dtype(ctx, 0) != SQZ_DT_F32) return 1;
    int rc = ref->prepare(ctx);
    if (rc) return rc;
    simplify(ctx->params);
    return 0;
}

static int slice_prepare(sqz_op_ctx *ctx) {
    return copy_prepare(ctx, &sqz_ref_slice);
}
static int transpose_prepare(sqz_op_ctx *ctx) {
    return copy_prepare(ctx, &sqz_ref_transpose);
}

/* Output rows [r0, r1) (a row: the innermost dim), columns [c0, c1) of each. */
static void copy_rows(const ref_strided *p, const float *x, float *y, int64_t r0, int64_t r1,
                      int64_t c0, int64_t c1) {
    const int nd = p->nd;
    const int64_t inner = p->dims[nd - 1], ist = p->st[nd - 1];
    int64_t idx[SQZ_MAX_DIMS] = {0}, off = p->base, r = r0;
    for (int d = nd - 2; d >= 0; d--) { /* mixed-radix digits of r0 */
        idx[d] = r % p->dims[d];
        r /= p->dims[d];
        off += idx[d] * p->st[d];
    }
    for (int64_t row = r0; row < r1; row++) {
        float *yr = y + row * inner;
        const float *xr = x + off;
        if (ist == 1)
            memcpy(yr + c0, xr + c0, (size_t)(c1 - c0) * sizeof(float));
        else
            for (int64_t i = c0; i < c1; i++) yr[i] = xr[i * ist];
        for (int d = nd - 2; d >= 0; d--) {
            off += p->st[d];
            if (++idx[d] < p->dims[d]) break;
            off -= idx[d] * p->st[d];
            idx[d] = 0;
        }
    }
}

typedef struct copy_job {
    const ref_strided *p;
    const float *x;
    float *y;
    int64_t rows, inner;
    int parts;
} copy_job;

/* Part t: a range of rows. (Splitting every row by columns instead, the same
 * pixels of every channel, was slower on ShuffleNet at 2 threads.) */
static void copy_part(void *arg, int t) {
    const copy_job *j = arg;
    copy_rows(j->p, j->x, j->y, j->rows * t / j->parts, j->rows * (t + 1) / j->parts, 0, j->inner);
}

static void copy_run(const sqz_op_ctx *ctx) {
    const ref_strided *p = ctx->params;
    int64_t total = ref_prod(p->dims, 0, p->nd);
    if (total <= 0) return;
    int64_t inner = p->dims[p->nd - 1], rows = total / inner;
    int nt = ctx->num_threads;
    if (nt > 1 && total * (int64_t)sizeof(float) >= COPY_PAR_MIN_BYTES && rows >= nt) {
        copy_job j = {p, ctx->in_data[0], ctx->out_data[0], rows, inner, nt};
        sqz_par_for(nt, nt, copy_part, &j);
        return;
    }
    copy_rows(p, ctx->in_data[0], ctx->out_data[0], 0, rows, 0, inner);
}

const sqz_op_impl sqz_fast_slice = {slice_prepare, copy_run, free, NULL};
const sqz_op_impl sqz_fast_transpose = {transpose_prepare, copy_run, free, NULL};
