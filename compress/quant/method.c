/* method.c - names of the calibration methods and default options. */
#include <string.h>

#include "sqzc/quant.h"

static const char *const kNames[] = {"minmax", "percentile", "kl", "mse"};

int sqzc_qmethod_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, kNames[i]) == 0) return i;
    return -1;
}

const char *sqzc_qmethod_name(int method) {
    return method >= 0 && method < 4 ? kNames[method] : "?";
}

void sqzc_quant_options_init(sqzc_quant_options *o) {
    memset(o, 0, sizeof *o);
    o->method = SQZC_QM_KL;
    o->percentile = 99.99;
    o->cle = 1;
    o->bias_correction = 1;
    o->min_sqnr_db = 0;
    o->batch = 32;
    o->report_images = 16;
    o->cache_bytes = (size_t)64 << 20;
    o->num_threads = 1;
}
