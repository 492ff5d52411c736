/* equalize.c - cross-layer equalization (Nagel et al., "Data-Free
 * Quantization Through Weight Equalization and Bias Correction", ICCV 2019,
 * section 4.1): for Conv1 -> act -> Conv2 where Conv1's output feeds only
 * Conv2, output channel i of Conv1 and input channel i of Conv2 are rescaled
 * by s_i = sqrt(r1_i / r2_i) (r = max |w| of the channel's weights), which
 * leaves the function unchanged for a positively homogeneous act (none, ReLU)
 * and makes both ranges sqrt(r1_i r2_i), so per-channel int8 weights lose less.
 *
 * ReLU6 / Clip(0, M) is homogeneous only where it does not clip: a channel
 * whose calibration outputs reach M is left alone, and the others use
 * s_i >= max_i / M so the scaled channel stays below M on the calibration data
 * (the paper instead replaces ReLU6 by ReLU, changing the model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qinternal.h"

typedef struct pair {
    int n1, n2;
    float clip_max; /* Clip(0, M) act on Conv1: M; 0: none / ReLU */
    int obs;        /* observed index of Conv1's output (channel maxima) */
} pair;

static int conv_group(const sqzc_graph *g, int ni) {
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    return (int)sqz_attr_int(&v, "group", 1);
}

static int is_const_conv(const sqzc_graph *g, int ni) {
    const sqzc_node *n = &g->nodes[ni];
    if (n->op != SQZ_OP_CONV || n->n_in < 2 || n->n_out != 1) return 0;
    const sqzc_tensor *w = &g->tensors[n->in[1]];
    if (!w->f32 || w->shape.ndim != 4) return 0;
    if (n->n_in > 2 && n->in[2] >= 0 && !g->tensors[n->in[2]].f32) return 0;
    return 1;
}

/* Conv1 -> Conv2 pairs; clip pairs need channel maxima of Conv1's output */
static int find_pairs(qctx *q, pair **out) {
    sqzc_graph *g = q->g;
    pair *p = malloc(sizeof *p * (size_t)(g->n_nodes + 1));
    if (!p) return -1;
    int np = 0;
    for (int a = 0; a < g->n_nodes; a++) {
        if (!is_const_conv(g, a)) continue;
        int y = g->nodes[a].out[0];
        if (sqzc_consumer_count(g, y) != 1) continue;
        int is_out = 0;
        for (int k = 0; k < g->n_outputs; k++) is_out |= g->outputs[k] == y;
        if (is_out) continue;
        int b = -1;
        for (int j = 0; j < g->n_nodes && b < 0; j++)
            if (g->nodes[j].op != SQZ_OP_INVALID && g->nodes[j].n_in > 0 && g->nodes[j].in[0] == y)
                b = j;
        if (b < 0 || !is_const_conv(g, b)) continue;
        sqz_node v;
        sqzc_node_view(g, a, &v);
        int act = (int)sqz_attr_int(&v, "sqz_act", SQZ_ACT_NONE);
        float clip_max = 0;
        if (act == SQZ_ACT_CLIP) {
            if (sqz_attr_float(&v, "sqz_act_alpha", -1) != 0.0f) continue;
            clip_max = sqz_attr_float(&v, "sqz_act_beta", 0);
            if (!(clip_max > 0)) continue;
        } else if (act != SQZ_ACT_NONE && act != SQZ_ACT_RELU) {
            continue;
        }
        const sqzc_tensor *w1 = &g->tensors[g->nodes[a].in[1]];
        const sqzc_tensor *w2 = &g->tensors[g->nodes[b].in[1]];
        int g2 = conv_group(g, b);
        if (g2 < 1 || w2->shape.dims[1] * g2 != w1->shape.dims[0]) continue;
        p[np].n1 = a;
        p[np].n2 = b;
        p[np].clip_max = clip_max;
        p[np].obs = q->obs_of[y];
        q->ch[p[np].obs].c = (int)w1->shape.dims[0];
        q->ch[p[np].obs].minmax = 1;
        np++;
    }
    *out = p;
    return np;
}

/* max |w| over Conv2's weights reading input channel i */
static float in_range(const sqzc_tensor *w2, int groups, int i) {
    int64_t cout = w2->shape.dims[0], cin_g = w2->shape.dims[1];
    int64_t k = w2->shape.dims[2] * w2->shape.dims[3];
    int64_t cout_g = cout / groups, gi = i / cin_g, ci = i % cin_g;
    float r = 0;
    for (int64_t o = gi * cout_g; o < (gi + 1) * cout_g; o++) {
        const float *p = w2->f32 + ((size_t)o * (size_t)cin_g + (size_t)ci) * (size_t)k;
        for (int64_t j = 0; j < k; j++) r = fabsf(p[j]) > r ? fabsf(p[j]) : r;
    }
    return r;
}

static void scale_in(sqzc_tensor *w2, int groups, int i, float s) {
    int64_t cout = w2->shape.dims[0], cin_g = w2->shape.dims[1];
    int64_t k = w2->shape.dims[2] * w2->shape.dims[3];
    int64_t cout_g = cout / groups, gi = i / cin_g, ci = i % cin_g;
    for (int64_t o = gi * cout_g; o < (gi + 1) * cout_g; o++) {
        float *p = w2->f32 + ((size_t)o * (size_t)cin_g + (size_t)ci) * (size_t)k;
        for (int64_t j = 0; j < k; j++) p[j] *= s;
    }
}

int q_equalize_needs_data(qctx *q) {
    pair *p = NULL;
    int np = find_pairs(q, &p), need = 0;
    for (int i = 0; i < np; i++) {
        need |= p[i].clip_max > 0;
        q->ch[p[i].obs].minmax = 0; /* find_pairs marked them; q_equalize_mark does again */
    }
    free(p);
    return np < 0 ? -1 : need;
}

int q_equalize_mark(qctx *q) {
    pair *p = NULL;
    int np = find_pairs(q, &p);
    free(p);
    return np;
}

int q_equalize(qctx *q, int have_stats) {
    sqzc_graph *g = q->g;
    pair *p = NULL;
    int np = find_pairs(q, &p);
    if (np < 0) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    int need_max = 0;
    for (int i = 0; i < np; i++) need_max |= p[i].clip_max > 0;
    if (np > 0 && need_max && !have_stats && q_channel_max(q) != 0) {
        free(p);
        return -1;
    }
    /* a few sweeps: pairs share layers along a chain (Nagel et al. iterate
     * until the scales converge) */
    for (int sweep = 0; sweep < 4; sweep++) {
        for (int k = 0; k < np; k++) {
            sqzc_node *a = &g->nodes[p[k].n1], *b = &g->nodes[p[k].n2];
            sqzc_tensor *w1 = &g->tensors[a->in[1]], *w2 = &g->tensors[b->in[1]];
            sqzc_tensor *b1 = a->n_in > 2 && a->in[2] >= 0 ? &g->tensors[a->in[2]] : NULL;
            int groups = conv_group(g, p[k].n2);
            int64_t c1 = w1->shape.dims[0], per = sqz_shape_numel(&w1->shape) / c1;
            qchan *ch = &q->ch[p[k].obs];
            const int clip = p[k].clip_max > 0;
            float *mx = ch->max;
            for (int64_t i = 0; i < c1; i++) {
                float *row = w1->f32 + (size_t)i * (size_t)per;
                float r1 = 0;
                for (int64_t j = 0; j < per; j++) r1 = fabsf(row[j]) > r1 ? fabsf(row[j]) : r1;
                float r2 = in_range(w2, groups, (int)i);
                if (!(r1 > 0) || !(r2 > 0)) continue;
                float s = sqrtf(r1 / r2);
                if (clip) {
                    const float M = p[k].clip_max;
                    if (!(mx[i] < M * (1.0f - 1e-6f))) continue; /* clips: not homogeneous */
                    float smin = mx[i] > 0 ? mx[i] / (M * (1.0f - 1e-6f)) : 0;
                    if (s < smin) s = smin;
                }
                if (!isfinite(s) || s <= 0 || fabsf(s - 1.0f) < 1e-6f) continue;
                for (int64_t j = 0; j < per; j++) row[j] /= s;
                if (b1) b1->f32[i] /= s;
                scale_in(w2, groups, (int)i, s);
                /* the output channel scales by 1 / s: so do its statistics and
                 * its cached activations */
                q_cache_scale_channel(q, p[k].obs, (int)i, 1.0f / s);
                if (mx) mx[i] /= s;
                if (ch->min) ch->min[i] /= s;
                if (ch->sum) ch->sum[i] /= s;
            }
        }
    }
    if (have_stats) /* per-tensor range of the equalized outputs from their channels */
        for (int k = 0; k < np; k++) {
            qchan *ch = &q->ch[p[k].obs];
            sqzc_qstat *st = &q->st[p[k].obs];
            double mn = 0, mx = 0;
            for (int i = 0; i < ch->c; i++) {
                mn = ch->min[i] < mn ? ch->min[i] : mn;
                mx = ch->max[i] > mx ? ch->max[i] : mx;
            }
            st->min = mn;
            st->max = mx;
        }
    free(p);
    return np;
}
