/* report.c - the quantizer's per-layer report as a table and as JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sqzc/quant.h"

static const char *op_label(int op) {
    if (op == 0) return "input";
    const char *n = sqz_op_name(op);
    return n ? n : "?";
}

static void num(FILE *f, double v, const char *fmt, int width) {
    if (isnan(v))
        fprintf(f, "%*s", width, "-");
    else if (isinf(v))
        fprintf(f, "%*s", width, "inf");
    else
        fprintf(f, fmt, width, v);
}

void sqzc_quant_report_print(const sqzc_quant_report *r, FILE *f) {
    fprintf(f, "%-28s %-18s %-5s %10s %10s %10s %10s %8s %8s %8s %8s\n", "layer (output tensor)",
            "op", "int8", "min", "max", "lo", "hi", "clip%", "SQNR dB", "cosine", "W SQNR");
    for (int i = 0; i < r->n_layers; i++) {
        const sqzc_quant_layer *l = &r->layers[i];
        const char *nm = l->node[0] ? l->node : l->tensor;
        fprintf(f, "%-28.28s %-18.18s %-5s %10.4g %10.4g %10.4g %10.4g %8.4f ", nm, op_label(l->op),
                l->int8 ? "yes" : "no", l->min, l->max, l->lo, l->hi, 100.0 * l->clipped);
        num(f, l->sqnr_db, "%*.2f", 8);
        fputc(' ', f);
        num(f, l->cosine, "%*.5f", 8);
        fputc(' ', f);
        num(f, l->w_sqnr_db, "%*.2f", 8);
        if (l->why) fprintf(f, "  (%s)", l->why);
        fputc('\n', f);
    }
    sqzc_quant_report_summary(r, f);
}

void sqzc_quant_report_summary(const sqzc_quant_report *r, FILE *f) {
    char pct[32];
    snprintf(pct, sizeof pct, " %g%%", r->percentile);
    fprintf(f,
            "method %s%s: %d calibration images (%.2f s), report on %d; %d Conv/Gemm/MatMul in "
            "int8, %d kept fp32; %d equalized conv pairs; %d Quantize / %d Dequantize nodes\n",
            sqzc_qmethod_name(r->method), r->method == SQZC_QM_PERCENTILE ? pct : "", r->n_images,
            r->secs_calibrate, r->report_images, r->n_int8, r->n_fp32, r->cle_pairs, r->n_quantize,
            r->n_dequantize);
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void jnum(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f); /* JSON has no NaN / inf */
}

int sqzc_quant_report_json(const sqzc_quant_report *r, FILE *f) {
    fprintf(f, "{\"method\":");
    jstr(f, sqzc_qmethod_name(r->method));
    if (r->method == SQZC_QM_PERCENTILE) {
        fprintf(f, ",\"percentile\":");
        jnum(f, r->percentile);
    }
    fprintf(f,
            ",\"calibration_images\":%d,\"report_images\":%d,\"calibration_seconds\":%.4f,"
            "\"total_seconds\":%.4f,\"equalized_pairs\":%d,\"int8_layers\":%d,\"fp32_layers\":%d,"
            "\"quantize_nodes\":%d,\"dequantize_nodes\":%d,\"layers\":[",
            r->n_images, r->report_images, r->secs_calibrate, r->secs_total, r->cle_pairs,
            r->n_int8, r->n_fp32, r->n_quantize, r->n_dequantize);
    for (int i = 0; i < r->n_layers; i++) {
        const sqzc_quant_layer *l = &r->layers[i];
        fprintf(f, "%s{\"node\":", i ? "," : "");
        jstr(f, l->node);
        fprintf(f, ",\"tensor\":");
        jstr(f, l->tensor);
        fprintf(f, ",\"op\":");
        jstr(f, op_label(l->op));
        fprintf(f, ",\"int8\":%s", l->int8 ? "true" : "false");
        if (l->why) {
            fprintf(f, ",\"why\":");
            jstr(f, l->why);
        }
        const char *keys[] = {"min",    "max",           "lo", "hi", "scale", "clipped", "sqnr_db",
                              "cosine", "weight_sqnr_db"};
        double vals[] = {l->min,     l->max,     l->lo,     l->hi,       (double)l->scale,
                         l->clipped, l->sqnr_db, l->cosine, l->w_sqnr_db};
        for (int k = 0; k < 9; k++) {
            fprintf(f, ",\"%s\":", keys[k]);
            jnum(f, vals[k]);
        }
        fprintf(f, ",\"zero_point\":%d}", (int)l->zero_point);
    }
    fprintf(f, "]}\n");
    return ferror(f) ? -1 : 0;
}
