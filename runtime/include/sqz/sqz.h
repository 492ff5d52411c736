/* sqz/sqz.h - the sqz on-device runtime API.
 *
 * A model (sqz_model) is immutable once loaded and may be shared by many
 * sessions across threads. A session (sqz_session) owns shapes, packed
 * parameters and the activation arena of one input shape; use one session per
 * thread. Every call returns a status; sqz_last_error() style globals are
 * avoided: the message lands in the caller's sqz_status.
 */
#ifndef SQZ_SQZ_H
#define SQZ_SQZ_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sqz_code {
    SQZ_OK = 0,
    SQZ_ERR_IO = 1,          /* file missing / unreadable */
    SQZ_ERR_FORMAT = 2,      /* corrupt or unsupported .sqz */
    SQZ_ERR_INVALID_ARG = 3, /* caller error: bad name, shape, index */
    SQZ_ERR_UNSUPPORTED = 4, /* op / attribute the runtime cannot run */
    SQZ_ERR_NOMEM = 5,
} sqz_code;

typedef struct sqz_status {
    sqz_code code;
    char msg[256];
} sqz_status;

typedef struct sqz_model sqz_model;
typedef struct sqz_session sqz_session;

/* Load a model. The buffer variant copies what it needs; the caller may free
 * the buffer afterwards. */
sqz_code sqz_model_load_file(const char *path, sqz_model **out, sqz_status *st);
sqz_code sqz_model_load_buffer(const void *data, size_t size, sqz_model **out, sqz_status *st);
void sqz_model_free(sqz_model *m);

/* Graph inputs / outputs of a model. Shapes stored in the file are the
 * import-time shapes; a session may override input shapes. */
int sqz_model_num_inputs(const sqz_model *m);
int sqz_model_num_outputs(const sqz_model *m);
const char *sqz_model_input_name(const sqz_model *m, int i);
const char *sqz_model_output_name(const sqz_model *m, int i);
sqz_shape sqz_model_input_shape(const sqz_model *m, int i);
/* dtype (sqz_dtype) and quantization parameters of graph input / output i
 * (INT8 models; SQZ_DT_F32 and kind SQZ_QUANT_NONE for fp32 tensors; the
 * pointers in q stay valid while the model lives). Returns 0, -1 if i is out
 * of range. Graph inputs are normally f32: the quantizer inserts
 * QuantizeLinear after them. */
int sqz_model_input_info(const sqz_model *m, int i, int *dtype, sqz_qparams *q);
int sqz_model_output_info(const sqz_model *m, int i, int *dtype, sqz_qparams *q);
/* Metadata value for key, or NULL. */
const char *sqz_model_metadata(const sqz_model *m, const char *key);

typedef struct sqz_input_shape {
    const char *name; /* graph input name */
    sqz_shape shape;
} sqz_input_shape;

typedef struct sqz_session_options {
    int num_threads;                     /* <= 0: library default */
    const sqz_input_shape *input_shapes; /* optional overrides */
    int n_input_shapes;
} sqz_session_options;

void sqz_session_options_init(sqz_session_options *o);

sqz_code sqz_session_create(const sqz_model *m, const sqz_session_options *opts, sqz_session **out,
                            sqz_status *st);
void sqz_session_free(sqz_session *s);

/* Copy an input in (float32, the session's input shape, dense row-major);
 * refuses a non-f32 input (see sqz_session_set_input_raw). */
sqz_code sqz_session_set_input(sqz_session *s, int index, const float *data, size_t count,
                               sqz_status *st);
/* Copy an input of any dtype in: bytes == numel * sqz_dtype_size(dtype). */
sqz_code sqz_session_set_input_raw(sqz_session *s, int index, const void *data, size_t bytes,
                                   sqz_status *st);
/* Runs the graph. Every input must have been set since the previous run:
 * an input's arena space is reused once its last reader ran (MPool), so a
 * run without fresh inputs fails with SQZ_ERR_INVALID_ARG naming the input. */
sqz_code sqz_session_run(sqz_session *s, sqz_status *st);
/* Output view, valid until the next run or sqz_session_free. */
sqz_code sqz_session_output(const sqz_session *s, int index, const float **data, sqz_shape *shape,
                            sqz_status *st);
/* Output view of any dtype (sqz_session_output refuses non-f32 outputs). */
sqz_code sqz_session_output_raw(const sqz_session *s, int index, const void **data,
                                sqz_shape *shape, int *dtype, sqz_status *st);
sqz_shape sqz_session_input_shape(const sqz_session *s, int index);
int sqz_session_find_input(const sqz_session *s, const char *name);

/* Per-node view for reports (`sqz info`): op, name, output shape, MACs. */
typedef struct sqz_node_info {
    int op;
    const char *name;
    sqz_shape out_shape;
    uint64_t macs;
    uint64_t params; /* elements of constant inputs */
    uint64_t param_bytes;
    /* 1: the node does not run (fused into another node, e.g. an Add into
     * the conv before it, or made redundant by in-place planning) */
    int skipped;
} sqz_node_info;
int sqz_session_num_nodes(const sqz_session *s);
void sqz_session_node_info(const sqz_session *s, int i, sqz_node_info *info);
/* Bytes of the activation arena the session allocated. */
size_t sqz_session_arena_bytes(const sqz_session *s);

/* MPool figures: arena allocated, lower bound (largest set of buffers live at
 * one step), naive total (every buffer its own allocation), peak step. */
typedef struct sqz_memory_info {
    size_t arena_bytes, lower_bound_bytes, naive_bytes;
    int peak_step; /* node index where the live set peaks */
    /* 1: every buffer has its own slot (a small model on 2+ threads, see
     * SQZ_SEPARATE_MAX in session.c); reused_bytes is then the arena the
     * reusing plan would take (= arena_bytes otherwise) */
    int separate;
    size_t reused_bytes;
} sqz_memory_info;
void sqz_session_memory(const sqz_session *s, sqz_memory_info *mi);

#ifdef __cplusplus
}
#endif
#endif
