/* test_graph.h - an offline graph (sqzc) imported from ONNX, run through the
 * runtime, and the prune tests' fixture folder. Header-only; include after
 * cmocka.h in tests that link the offline library. */
#ifndef SQZ_TEST_GRAPH_H
#define SQZ_TEST_GRAPH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqz/sqz.h"
#include "sqzc/channel_prune.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/prune.h"
#include "sqzc/writer.h"
#include "testutil.h"

/* Import + optimize, batch 1 (BN gammas captured before folding when bn is
 * not NULL); fails the test with the importer's message. */
static inline sqzc_graph *tg_load(const char *path, sqzc_bn_gammas **bn) {
    sqzc_import_options o;
    memset(&o, 0, sizeof o);
    o.default_batch = 1;
    sqzc_graph *g = NULL;
    char err[512];
    if (sqzc_import_onnx(path, &o, &g, err, sizeof err) != 0) {
        print_error("import %s: %s\n", path, err);
        fail();
    }
    if (bn) assert_int_equal(sqzc_bn_gammas_capture(g, bn), 0);
    if (sqzc_optimize(g, err, sizeof err) != 0) {
        print_error("optimize %s: %s\n", path, err);
        fail();
    }
    return g;
}

/* Runs g on x (nx floats) through the runtime at one thread; returns the
 * first graph output (malloc'd, *ny floats) and, when mi is not NULL, the
 * session's memory plan. */
static inline float *tg_run_mem(const sqzc_graph *g, const float *x, size_t nx, size_t *ny,
                                sqz_memory_info *mi) {
    uint8_t *buf = NULL;
    size_t size = 0;
    char err[512];
    if (sqzc_serialize(g, &buf, &size, err, sizeof err) != 0) {
        print_error("serialize: %s\n", err);
        fail();
    }
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) {
        print_error("load: %s\n", st.msg);
        fail();
    }
    free(buf);
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    assert_int_equal(sqz_session_create(m, &so, &s, &st), SQZ_OK);
    assert_int_equal(sqz_session_set_input(s, 0, x, nx, &st), SQZ_OK);
    assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    const float *y;
    sqz_shape ys;
    assert_int_equal(sqz_session_output(s, 0, &y, &ys, &st), SQZ_OK);
    *ny = (size_t)sqz_shape_numel(&ys);
    float *out = malloc(*ny * sizeof *out);
    assert_non_null(out);
    memcpy(out, y, *ny * sizeof *out);
    if (mi) sqz_session_memory(s, mi);
    sqz_session_free(s);
    sqz_model_free(m);
    return out;
}

static inline float *tg_run(const sqzc_graph *g, const float *x, size_t nx, size_t *ny) {
    return tg_run_mem(g, x, nx, ny, NULL);
}

/* zero weights over the layers' weight tensors */
static inline int64_t tg_zero_weights(const sqzc_graph *g) {
    int64_t z = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0) continue;
        const int64_t n = sqz_shape_numel(&g->tensors[t].shape);
        for (int64_t k = 0; k < n; k++) z += g->tensors[t].f32[k] == 0.0f;
    }
    return z;
}

/* The prune fixtures (tests/fixtures/make_prune_fixtures.py, exported by
 * Debian's python3-torch into the build dir on first use) in dir[0 .. n);
 * returns 1 when they are there, 0 when they could not be made. */
static inline int tg_prune_fixtures(char *dir, size_t n) {
    snprintf(dir, n, "%s/prune_fixtures", tu_binary_dir());
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/prune_concat.onnx", dir);
    if (access(probe, R_OK) == 0) return 1;
    if (access("/usr/bin/python3", X_OK) != 0) return 0;
    char cmd[3000];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/fixtures/make_prune_fixtures.py %s >/dev/null 2>&1",
             tu_source_dir(), dir);
    return system(cmd) == 0 && access(probe, R_OK) == 0;
}

#endif
