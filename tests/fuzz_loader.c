/* fuzz_loader.c - libFuzzer target for the .sqz loader.
 *
 * Feeds arbitrary bytes to sqz_model_load_buffer; when a model loads, creates
 * a session (stored input shapes, one thread), feeds zeros and runs it once.
 * Each input is tried twice: as is, and "re-sealed" (file_size, every
 * in-bounds section CRC and the table CRC recomputed) so that mutations reach
 * the section parsers instead of stopping at the CRC checks.
 * Any crash, sanitizer report, leak or hang is a bug: the loader must reject
 * hostile files cleanly (sqz/format.h).
 *
 * Build (clang only):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
 *         -DSQZ_SANITIZE=ON -DSQZ_FUZZ=ON -DSQZ_OPENMP=OFF
 *   cmake --build build-fuzz --target fuzz_loader
 * Seed corpus (a valid model written by the corruption test):
 *   mkdir -p corpus && SQZ_FUZZ_CORPUS=$PWD/corpus build-fuzz/test_loader_corrupt
 *   (any `sqz` output .sqz file is a good seed too)
 * Run:
 *   ASAN_OPTIONS=allocator_may_return_null=1 \
 *     build-fuzz/fuzz_loader corpus -max_len=65536 -rss_limit_mb=2048 -timeout=10
 * Reproduce a crash: build-fuzz/fuzz_loader crash-<sha1>
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/format.h"
#include "sqz/sqz.h"

/* Inputs larger than this are not fed (keeps a run fast on huge shapes). */
#define FUZZ_MAX_ELEMS (1 << 22)

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) {
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Recompute what a writer would: file_size, section CRCs, table CRC. */
static void reseal(uint8_t *f, size_t size) {
    if (size < SQZ_HEADER_BYTES) return;
    wr64(f + 24, size);
    uint32_t n = rd32(f + 16);
    if (n > SQZ_MAX_SECTIONS) return;
    size_t tbl = (size_t)n * SQZ_SECTION_ENTRY_BYTES;
    if (tbl > size - SQZ_HEADER_BYTES) return;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = f + SQZ_HEADER_BYTES + (size_t)i * SQZ_SECTION_ENTRY_BYTES;
        uint64_t off = rd64(e + 8), sz = rd64(e + 16);
        if (off <= size && sz <= size - off) wr32(e + 4, sqz_crc32(0, f + off, sz));
    }
    wr32(f + 20, sqz_crc32(0, f + SQZ_HEADER_BYTES, tbl));
}

static void load_and_run(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_and_run(data, size);
    if (size >= SQZ_HEADER_BYTES) {
        uint8_t *c = malloc(size);
        if (!c) return 0;
        memcpy(c, data, size);
        reseal(c, size);
        load_and_run(c, size);
        free(c);
    }
    return 0;
}

static void load_and_run(const uint8_t *data, size_t size) {
    sqz_status st;
    sqz_model *m = NULL;
    if (sqz_model_load_buffer(data, size, &m, &st) != SQZ_OK) return;
    /* A session for huge stored input shapes would only measure malloc. */
    for (int i = 0; i < sqz_model_num_inputs(m); i++) {
        sqz_shape sh = sqz_model_input_shape(m, i);
        int64_t n = sqz_shape_numel(&sh);
        if (n < 0 || n > FUZZ_MAX_ELEMS) {
            sqz_model_free(m);
            return;
        }
    }
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    sqz_session *s = NULL;
    if (sqz_session_create(m, &so, &s, &st) == SQZ_OK) {
        int ok = 1;
        int n_in = sqz_model_num_inputs(m);
        for (int i = 0; i < n_in && ok; i++) {
            sqz_shape sh = sqz_session_input_shape(s, i);
            int64_t n = sqz_shape_numel(&sh);
            if (n < 0 || n > FUZZ_MAX_ELEMS) {
                ok = 0;
                break;
            }
            float *x = calloc(n ? (size_t)n : 1, sizeof *x);
            if (!x) {
                ok = 0;
                break;
            }
            ok = sqz_session_set_input(s, i, x, (size_t)n, &st) == SQZ_OK;
            free(x);
        }
        if (ok && sqz_session_run(s, &st) == SQZ_OK) {
            int n_out = sqz_model_num_outputs(m);
            for (int i = 0; i < n_out; i++) {
                const float *y = NULL;
                sqz_shape ys;
                if (sqz_session_output(s, i, &y, &ys, &st) == SQZ_OK && y) {
                    int64_t n = sqz_shape_numel(&ys);
                    volatile float sink = 0;
                    if (n > 0) sink += y[0] + y[n - 1]; /* touch both ends */
                    (void)sink;
                }
            }
        }
        sqz_session_free(s);
    }
    sqz_model_free(m);
}
