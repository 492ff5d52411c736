/* testutil.h - small helpers shared by the cmocka tests. */
#ifndef SQZ_TESTUTIL_H
#define SQZ_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic xorshift PRNG. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
void tu_rng_seed(tu_rng *r, uint64_t seed);
uint32_t tu_rng_u32(tu_rng *r);
float tu_rng_uniform(tu_rng *r, float lo, float hi);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);

/* Max |a-b| over n elements. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Source / build directories (env SQZ_SOURCE_DIR / SQZ_BINARY_DIR set by
 * ctest; fall back to "." ). */
const char *tu_source_dir(void);
const char *tu_binary_dir(void);

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); the caller
 * frees the returned string. */
char *tu_make_temp_dir(void);

#endif
