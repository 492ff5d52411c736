/* sqzc/onnx_import.h - ONNX model import into the sqzc IR.
 *
 * Parses a ModelProto with protobuf-c (code generated at build time from the
 * system's onnx.proto), loads initializers, Constant nodes and external-data
 * tensors (files beside the model), fixes dynamic input dims from the caller's
 * shapes, and lowers every node to the sqz op set while inferring shapes and
 * folding constant sub-graphs (Shape/Gather/Cast/Concat/Reshape chains...).
 * Every unsupported op of the model is listed at once, by node name.
 */
#ifndef SQZC_ONNX_IMPORT_H
#define SQZC_ONNX_IMPORT_H

#include <stddef.h>

#include "sqz/ops.h"
#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqzc_named_shape {
    const char *name;
    sqz_shape shape;
} sqzc_named_shape;

typedef struct sqzc_const_binding {
    const char *name; /* graph input to replace by a constant */
    const char *path; /* serialized onnx TensorProto (.pb), as in ONNX test data */
} sqzc_const_binding;

typedef struct sqzc_import_options {
    const sqzc_named_shape *input_shapes; /* fixes dynamic (or overrides) input dims */
    int n_input_shapes;
    const sqzc_const_binding *const_inputs; /* e.g. int64 'shape' inputs of test graphs */
    int n_const_inputs;
    /* > 0: a dynamic dim 0 of an input not in input_shapes becomes this value
     * (noted in metadata "import.note"); 0: such a dim is an error. */
    int64_t default_batch;
} sqzc_import_options;

/* Import path into *out. On failure returns -1, *out is NULL, and err holds a
 * message naming the file and node / tensor / attribute at fault. */
int sqzc_import_onnx(const char *path, const sqzc_import_options *opts, sqzc_graph **out, char *err,
                     size_t err_len);

/* Read a serialized onnx TensorProto file (as in ONNX backend test data) into
 * a newly malloc'd float array (any numeric dtype converted to float). The
 * shape is written to *shape. Returns 0 or -1 with err. */
int sqzc_read_tensor_pb(const char *path, float **data, sqz_shape *shape, char *err,
                        size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
