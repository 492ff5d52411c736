/* sqzc/onnx_export.h - write the sqzc IR back as an ONNX model (protobuf-c).
 *
 * For handing a compressed graph to a training framework or ONNX Runtime:
 * fp32 dense graphs (e.g. channel-pruned, or magnitude-pruned: the zeros of
 * the weights are kept, so the sparsity mask survives the round trip).
 * Runtime-only forms are undone: fused activations (sqz_act) become separate
 * nodes again, and parameters the IR holds as attributes (Reshape.shape,
 * Slice.starts..., Pad.pads, Clip.min/max, Resize.scales/sizes, Split.split,
 * Squeeze/Unsqueeze.axes) become constant inputs as the opset requires.
 * Output opset: ai.onnx 14. Anything that opset cannot express is an error
 * naming the node.
 */
#ifndef SQZC_ONNX_EXPORT_H
#define SQZC_ONNX_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqzc_onnx_export_options {
    const char *producer; /* producer_name (NULL: "sqz") */
    /* 1: the first dim of every graph input and output is written as the
     * symbolic dim "batch" (the graph must not depend on it, e.g. through a
     * Reshape with an explicit batch size). 0: the IR's fixed shapes. */
    int dynamic_batch;
    /* Room for later export modes (e.g. QDQ pairs for int8 tensors): fields
     * are only appended; zero means the fp32 default. */
} sqzc_onnx_export_options;

/* Serialize g to an ONNX ModelProto in a malloc'd buffer. opts may be NULL.
 * 0 ok, -1 with err naming the node / tensor. */
int sqzc_onnx_serialize(const sqzc_graph *g, const sqzc_onnx_export_options *opts, uint8_t **buf,
                        size_t *size, char *err, size_t err_len);
/* Write atomically (temporary file + rename). 0 ok, -1 with err. */
int sqzc_write_onnx(const sqzc_graph *g, const sqzc_onnx_export_options *opts, const char *path,
                    char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
