/* sqzc/quant_qdq.h - ONNX QDQ export of an INT8 graph (the output of
 * sqzc_quantize), for checking it in ONNX Runtime or handing it to a
 * training framework.
 *
 * Every int8 weight / int32 bias becomes an integer initializer followed by a
 * DequantizeLinear (per-channel scales, axis); every int8 activation becomes
 * float op output -> QuantizeLinear -> DequantizeLinear (per-tensor scale and
 * zero point); the graph's own Quantize/DequantizeLinear stay. ONNX Runtime
 * fuses the pairs into its QLinear kernels. Numerics equal sqz's int8 up to
 * the rounding-tie direction of requantization (sqz/format.h). */
#ifndef SQZC_QUANT_QDQ_H
#define SQZC_QUANT_QDQ_H

#include <stddef.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Build the QDQ form of the int8 graph q as a new graph (*out, to be written
 * with sqzc_write_onnx). 0 ok, -1 with err. */
int sqzc_quant_to_qdq(const sqzc_graph *q, sqzc_graph **out, char *err, size_t err_len);
/* sqzc_quant_to_qdq + sqzc_write_onnx (atomic). */
int sqzc_write_onnx_qdq(const sqzc_graph *q, const char *path, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
