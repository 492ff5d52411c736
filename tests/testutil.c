#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_rng_seed(tu_rng *r, uint64_t seed) {
    r->s = seed ? seed : 0x9E3779B97F4A7C15ull;
}

uint32_t tu_rng_u32(tu_rng *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return (uint32_t)(x >> 32);
}

float tu_rng_uniform(tu_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((tu_rng_u32(r) >> 8) * (1.0 / 16777216.0));
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = tu_rng_uniform(r, lo, hi);
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

const char *tu_source_dir(void) {
    const char *s = getenv("SQZ_SOURCE_DIR");
    return s ? s : ".";
}

const char *tu_binary_dir(void) {
    const char *s = getenv("SQZ_BINARY_DIR");
    return s ? s : ".";
}

char *tu_make_temp_dir(void) {
    const char *base = getenv("TMPDIR");
    if (!base) base = "/tmp";
    size_t n = strlen(base) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/sqztest.XXXXXX", base);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}
