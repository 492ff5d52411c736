/* model.h - in-memory form of a loaded .sqz model (runtime-internal). */
#ifndef SQZ_MODEL_INTERNAL_H
#define SQZ_MODEL_INTERNAL_H

#include "sqz/format.h"
#include "sqz/sqz.h"

typedef struct sqz_tensor_rec {
    const char *name;
    uint8_t dtype, flags; /* sqz_dtype, sqz_tensor_flags */
    sqz_shape shape;      /* stored shape (import-time); constants: exact */
    /* constants: decoded, 64-byte aligned, owned; else NULL. Elements of the
     * tensor's dtype (i8 / i32 tensors: cast; f32 is the common case). */
    float *data;
    sqz_qparams q; /* quantization parameters; q.scale / q.zero_point owned */
} sqz_tensor_rec;

struct sqz_model {
    char *strings; /* owned copy of the STRINGS blob */
    uint64_t strings_len;
    int n_tensors;
    sqz_tensor_rec *tensors;
    int n_nodes;
    sqz_node *nodes; /* arrays inside are owned (freed in sqz_model_free) */
    int n_inputs, n_outputs;
    int32_t *inputs, *outputs;
    int n_meta;
    const char **meta_keys, **meta_values;
    /* names given to unnamed tensors / nodes ("t<id>", "n<index>"), 12 bytes a slot */
    char *tensor_names, *node_names;
};

/* Aligned allocation helpers shared by the runtime. */
void *sqz_aligned_alloc(size_t bytes);
void sqz_aligned_free(void *p);

/* Fill a status; returns code. */
sqz_code sqz_set_status(sqz_status *st, sqz_code code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
