/* sqzc/quant.h - INT8 post-training quantization of a sqzc graph.
 *
 * Representation written (the INT8 contract of the runtime, sqz/format.h):
 * int8 activations per tensor (scale, zero point), int8 weights symmetric per
 * output channel (values in [-127, 127]), int32 biases with scale s_x * s_w[c],
 * QuantizeLinear / DequantizeLinear at the boundaries of fp32 islands. Ops run
 * on int8 when the runtime has int8 kernels for them: Conv / Gemm / MatMul
 * (constant weights, fused activation none / ReLU / Clip), Add, MaxPool,
 * AveragePool, GlobalAveragePool, Concat, Relu, Clip and the views; the rest
 * stays fp32.
 *
 * Pipeline (sqzc_quantize):
 *  1. cross-layer equalization of Conv -> (ReLU) -> Conv pairs (Nagel et al.,
 *     "Data-Free Quantization Through Weight Equalization and Bias
 *     Correction", ICCV 2019, section 4.1), fp32-exact;
 *  2. calibration through the sqz runtime over the set (batches of images;
 *     with o->num_threads > 1 one runtime session per thread, each decoding
 *     and running its own batch, the statistics then gathered per tensor in
 *     image order, so the result does not depend on the threads), streaming: per-tensor min / max,
 *     per-channel means and per-tensor histograms (2 x 2048 bins) in one pass
 *     (histogram bins widened by merging as the range grows, then re-binned
 *     over the final range: sqzc/quant_range.h), so memory does not grow with
 *     the set. When equalization needs the data first (a ReLU6 / Clip pair:
 *     channel maxima), pass 1 gathers ranges and channel statistics and pass 2
 *     the histograms of the equalized model. One runtime session serves every
 *     pass; the set's activations are kept for the later passes when they are
 *     read again more than once and fit in cache_bytes (else the model runs
 *     again);
 *  3. activation ranges by the method (minmax, percentile, kl, mse), from the
 *     statistics of the values the next layers read (a tensor read only
 *     through MaxPool: the pooled values; an Add / pool / Concat output read
 *     only by a Relu takes the Relu's range, its requantization doing the
 *     Relu);
 *  4. weights per output channel (scale max-abs / 127, or with weight_mse
 *     the one with the least squared rounding error); rounded to nearest, or
 *     with rounding gptq by GPTQ's error feedback (Frantar et al., ICLR 2023:
 *     columns one at a time, each rounding error spread onto the columns not
 *     yet rounded by the inverse of H = X X^T of the layer's fp32 inputs on
 *     up to 256 calibration images; with rounding gptq-seq layer after layer
 *     on the int8 model's inputs, the weights refitted to the fp32 outputs and
 *     the bias to their mean), bias correction (Nagel et al. section 4.2:
 *     the expected output shift eps_W * E[x] is subtracted from the bias;
 *     bias_correction 2 then also subtracts the measured mean pre-activation
 *     error with int8 input and weights), int32 bias;
 *  5. per-layer report: each int8 layer simulated on fp32 inputs of a subset
 *     (its input, weights and output quantized) against fp32; a Conv / Gemm /
 *     MatMul whose SQNR is below the threshold stays fp32;
 *  6. the graph is rewritten in place.
 */
#ifndef SQZC_QUANT_H
#define SQZC_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sqzc/calib_set.h"
#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sqzc_qmethod {
    SQZC_QM_MINMAX = 0,
    SQZC_QM_PERCENTILE = 1,
    SQZC_QM_KL = 2,
    SQZC_QM_MSE = 3,
} sqzc_qmethod;

/* "minmax" / "percentile" / "kl" / "mse" -> method; -1 unknown. */
int sqzc_qmethod_parse(const char *s);
const char *sqzc_qmethod_name(int method);

typedef struct sqzc_quant_options {
    int method;          /* sqzc_qmethod */
    double percentile;   /* SQZC_QM_PERCENTILE: share of values kept, in (50, 100]; 99.99 */
    int cle;             /* cross-layer equalization (1) */
    int bias_correction; /* 0 none, 1 analytic (E[x] x weight error), 2 analytic then
                          * empirical (measured mean output error per channel) (1) */
    double min_sqnr_db;  /* a Conv/Gemm/MatMul below this local SQNR stays fp32; <= 0: never */
    int max_images;      /* use the first N images of the set; 0: all */
    int batch;           /* images per calibration run at most (32); fewer when they would
                          * hold more than 4 MiB of activations (one when one image does),
                          * so memory is bounded by the model, never by the set size */
    int report_images;   /* images of the per-layer report (16; 0: no report, no fallback) */
    size_t cache_bytes;  /* activations of the set kept in memory when they fit in this
                          * (64 MiB): the passes after the first replay them instead of
                          * running the model again; 0: never (every pass runs it) */
    int num_threads;     /* runtime threads and the quantizer's own (image decoding, statistics,
                          * ranges; OpenMP; each tensor's statistics on one thread, so
                          * they do not depend on it) (<= 0: the
                          * runtime default, one for the quantizer) */
    int progress;        /* draw a progress bar on stderr */
    int weight_mse;      /* weight scales per channel by the rounding error (MSE), not
                          * max-abs (0) */
    int rounding;        /* weight rounding: SQZC_QR_NEAREST (0), SQZC_QR_GPTQ (error
                          * feedback over the layer's calibration inputs, step 4) or
                          * SQZC_QR_GPTQ_SEQ (sequential: each layer's inputs those of
                          * the int8 model, its layers before already quantized) */
    int range_search;    /* with rounding gptq-seq: each int8 tensor's range chosen in
                          * that simulation, when the tensor is first produced, among
                          * the methods' ranges (minmax, percentile 99.9 / 99.99 /
                          * 99.999, mse, kl) and scalings of the best by 0.8-1.25: the
                          * one whose int8 values are closest to the fp32 model's
                          * (squared error); 0: every tensor by `method` */
    /* sqzc_quantize calls graph_done(g, graph_done_user, ...) once with the
     * finished int8 graph before it returns (sqz quant writes it there),
     * possibly while the per-layer report is still computed on other
     * threads (its numbers are then not in the report yet); g must not be
     * changed. 0 ok; -1 with err fails sqzc_quantize with that message.
     * NULL: none. (sqzc_quantize_calibrated does not call it.) */
    int (*graph_done)(const sqzc_graph *g, void *user, char *err, size_t err_len);
    void *graph_done_user;
} sqzc_quant_options;

enum { SQZC_QR_NEAREST = 0, SQZC_QR_GPTQ = 1, SQZC_QR_GPTQ_SEQ = 2 };

void sqzc_quant_options_init(sqzc_quant_options *o);

/* One row of the report: a tensor the quantizer gave int8 parameters, with
 * the node producing it. */
typedef struct sqzc_quant_layer {
    char *node;      /* producing node ("" for a graph input) */
    char *tensor;    /* output tensor */
    int op;          /* sqz_op of the node (0 for a graph input) */
    int int8;        /* 1: runs in int8; 0: stays fp32 */
    const char *why; /* why not int8 (static string) or NULL */
    double min, max; /* observed over the calibration set */
    double lo, hi;   /* chosen range (real values of q = -128 and 127) */
    float scale;     /* activation scale, zero point */
    int32_t zero_point;
    double clipped;   /* share of calibration values outside [lo, hi] */
    double sqnr_db;   /* local SQNR of the int8 layer vs fp32 (NAN if not measured) */
    double cosine;    /* cosine similarity, same data */
    double w_sqnr_db; /* weights alone (Conv/Gemm/MatMul), else NAN */
} sqzc_quant_layer;

typedef struct sqzc_quant_report {
    sqzc_quant_layer *layers;
    int n_layers;
    int method;
    double percentile;
    int n_images, report_images;
    int cle_pairs;                /* equalized conv pairs */
    int n_int8, n_fp32;           /* compute layers (Conv/Gemm/MatMul) in int8 / kept fp32 */
    int n_quantize, n_dequantize; /* Q / DQ nodes inserted */
    double secs_calibrate;        /* both calibration passes */
    double secs_total;
} sqzc_quant_report;

void sqzc_quant_report_free(sqzc_quant_report *r);
/* Human-readable table (one row per layer) and a summary. */
void sqzc_quant_report_print(const sqzc_quant_report *r, FILE *f);
/* The summary line only. */
void sqzc_quant_report_summary(const sqzc_quant_report *r, FILE *f);
/* The report as one JSON object. */
int sqzc_quant_report_json(const sqzc_quant_report *r, FILE *f);

/* Quantize g in place (see above). g must be optimized (sqzc_optimize) and
 * have one graph input. rep (may be NULL) receives the report. 0 ok, -1 with
 * err (g is then unusable). */
int sqzc_quantize(sqzc_graph *g, const sqzc_calib_set *set, const sqzc_quant_options *o,
                  sqzc_quant_report *rep, char *err, size_t err_len);

/* Calibration shared by several quantizations of the same model (sqz quant
 * --method auto): sqzc_quant_calibrate runs the passes (histograms included,
 * whatever o->method) and equalizes g in place (g must stay alive until
 * sqzc_quant_calib_free); sqzc_quantize_calibrated then quantizes g2, a
 * second copy of the same graph (another import of the same file, before
 * any change) or g itself, with o's method and bias correction (o's
 * calibration settings - cle, max_images - are those of the calibration). */
typedef struct sqzc_quant_calib sqzc_quant_calib;
int sqzc_quant_calibrate(sqzc_graph *g, const sqzc_calib_set *set, const sqzc_quant_options *o,
                         sqzc_quant_calib **out, char *err, size_t err_len);
int sqzc_quantize_calibrated(sqzc_graph *g2, sqzc_quant_calib *c, const sqzc_quant_options *o,
                             sqzc_quant_report *rep, char *err, size_t err_len);
void sqzc_quant_calib_free(sqzc_quant_calib *c);

#ifdef __cplusplus
}
#endif
#endif
