/* test_session.h - a session on an in-memory model, and a copy of its graph
 * outputs, for the tests that compare whole-graph runs (fused vs unfused,
 * chained vs not, reference vs SIMD). Header-only; include after cmocka.h. */
#ifndef SQZ_TEST_SESSION_H
#define SQZ_TEST_SESSION_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/sqz.h"

/* up to two graph outputs, copied out of the session */
typedef struct ts_outputs {
    float *out[2];
    size_t n[2];
    int n_out;
} ts_outputs;

/* Loads file[0 .. size) and opens a session of `threads` threads, with the
 * scalar reference kernels when ref is set (until ts_take_outputs). */
static inline sqz_session *ts_open(const uint8_t *file, size_t size, int threads, int ref,
                                   sqz_model **m) {
    sqz_status st;
    sqz_set_force_reference(ref);
    *m = NULL;
    if (sqz_model_load_buffer(file, size, m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    sqz_session_options o;
    sqz_session_options_init(&o);
    o.num_threads = threads;
    sqz_session *s = NULL;
    if (sqz_session_create(*m, &o, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    return s;
}

/* Copies the session's outputs into *res, then frees the session and the
 * model and leaves reference mode. */
static inline void ts_take_outputs(ts_outputs *res, sqz_session *s, sqz_model *m) {
    res->n_out = 0;
    for (int k = 0; k < 2; k++) {
        const float *y;
        sqz_shape ys;
        if (sqz_session_output(s, k, &y, &ys, NULL) != SQZ_OK) break;
        res->n[k] = (size_t)sqz_shape_numel(&ys);
        res->out[k] = malloc(res->n[k] * sizeof(float));
        assert_non_null(res->out[k]);
        memcpy(res->out[k], y, res->n[k] * sizeof(float));
        res->n_out++;
    }
    sqz_session_free(s);
    sqz_model_free(m);
    sqz_set_force_reference(0);
}

static inline void ts_outputs_free(ts_outputs *r) {
    for (int k = 0; k < r->n_out; k++) free(r->out[k]);
}

#endif
