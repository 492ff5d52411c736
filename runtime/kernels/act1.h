/* act1.h - one activation value as the SIMD kernels compute it (the scalar
 * twins of the depthwise and small-K 1x1 kernels share it): NONE, RELU,
 * CLIP (alpha..beta), LEAKY_RELU (alpha), HARD_SWISH (v * clamp(v * (1/6) +
 * 1/2, 0, 1): a multiply by 1/6 like the vector code, not the reference's
 * division). Other kinds pass through. */
#ifndef SQZ_KERNELS_ACT1_H
#define SQZ_KERNELS_ACT1_H

#include "sqz/ops.h"

static inline float sqz_act1(int act, float alpha, float beta, float v) {
    switch (act) {
    case SQZ_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case SQZ_ACT_CLIP:
        return v < alpha ? alpha : (v > beta ? beta : v);
    case SQZ_ACT_LEAKY_RELU:
        return v < 0.0f ? v * alpha : v;
    case SQZ_ACT_HARD_SWISH: {
        float t = v * (1.0f / 6.0f) + 0.5f;
        t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        return v * t;
    }
    default:
        return v;
    }
}

#endif
