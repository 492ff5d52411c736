/* cpu_x86.c - x86-64 feature detection (cpuid + xgetbv), cached, with the
 * SQZ_ISA cap. Compiled with baseline x86-64 flags. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#if defined(__GNUC__)
#include <cpuid.h>
#endif

/* atomics: sessions may be created from several threads at once */
static _Atomic int hw_level = -1; /* -1: not detected yet */
static _Atomic int hw_vnni = 0;
static _Atomic int hw_vbmi = 0;
static _Atomic int hw_zmm_half = 0;
static _Atomic int cap_level = -2; /* -2: read SQZ_ISA on first use; -1: none */

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void) {
    unsigned a, b, c, d;
    int level = SQZ_ISA_SCALAR, vnni = 0, vbmi = 0, zmm_half = 0;
    unsigned maxleaf = __get_cpuid_max(0, NULL);
    if (maxleaf >= 1 && __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u /* "Auth" */ &&
        __get_cpuid(1, &a, &b, &c, &d)) {
        /* AMD: family = base (bits 8-11) + extended (bits 20-27) when base is
         * 0xf; 19h is Zen 3 / Zen 4, and only Zen 4 has AVX-512 (AMD's
         * Software Optimization Guide for family 19h: 512-bit ops are split
         * into two 256-bit ones) */
        unsigned fam = (a >> 8) & 0xf;
        if (fam == 0xf) fam += (a >> 20) & 0xff;
        zmm_half = fam == 0x19;
    }
    if (maxleaf >= 7 && __get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
        uint64_t xcr0 = osxsave ? read_xcr0() : 0;
        int ymm_os = (xcr0 & 0x6) == 0x6;   /* XMM + YMM state */
        int zmm_os = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
        __cpuid_count(7, 0, a, b, c, d);
        int avx2 = (b >> 5) & 1;
        int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        int vn = (c >> 11) & 1, vb = (c >> 1) & 1;
        if (avx && fma && avx2 && ymm_os) {
            level = SQZ_ISA_AVX2;
            if (f && dq && bw && vl && zmm_os) {
                level = SQZ_ISA_AVX512;
                vnni = vn;
                vbmi = vb;
            }
        }
    }
    hw_vnni = vnni;
    hw_vbmi = vbmi;
    hw_zmm_half = zmm_half;
    hw_level = level;
}

int sqz_cpu_isa_hw(void) {
    if (hw_level < 0) detect();
    return hw_level;
}

void sqz_cpu_set_isa_cap(int level) {
    cap_level = level < 0 ? -2 : level;
}

static int cap(void) {
    if (cap_level == -2) {
        const char *e = getenv("SQZ_ISA");
        int c = -1;
        if (e && strcmp(e, "scalar") == 0)
            c = SQZ_ISA_SCALAR;
        else if (e && strcmp(e, "avx2") == 0)
            c = SQZ_ISA_AVX2;
        else if (e && strcmp(e, "avx512") == 0)
            c = SQZ_ISA_AVX512;
        cap_level = c;
    }
    return cap_level;
}

static int level(void) {
    int hw = sqz_cpu_isa_hw(), c = cap();
    return c >= 0 && c < hw ? c : hw;
}

int sqz_cpu_has_avx2_fma(void) {
    return level() >= SQZ_ISA_AVX2;
}

int sqz_cpu_has_avx512(void) {
    return level() >= SQZ_ISA_AVX512;
}

int sqz_cpu_has_avx512_vnni(void) {
    return level() >= SQZ_ISA_AVX512 && hw_vnni;
}

int sqz_cpu_has_avx512_vbmi(void) {
    return level() >= SQZ_ISA_AVX512 && hw_vbmi;
}

int sqz_cpu_zmm_fma_half_rate(void) {
    if (hw_level < 0) detect();
    return hw_zmm_half;
}
