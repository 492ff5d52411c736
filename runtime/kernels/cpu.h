/* cpu.h - run-time CPU feature detection for kernel dispatch (cached).
 *
 * On x86-64 (kernels/x86/cpu_x86.c): cpuid + xgetbv (the OS must save YMM /
 * ZMM state). The environment variable SQZ_ISA=scalar|avx2|avx512 caps the
 * level (tests and benches); sqz_cpu_set_isa_cap() does the same from code.
 *
 * On aarch64 Linux (kernels/neon/cpu_neon.c): getauxval(AT_HWCAP), ASIMD
 * (NEON, baseline on every aarch64 CPU that runs Linux) and ASIMDDP (the
 * SDOT / UDOT dot-product instructions, Armv8.2 optional). SQZ_ISA=scalar|
 * neon|dotprod caps the level the same way. */
#ifndef SQZ_KERNELS_CPU_H
#define SQZ_KERNELS_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

enum { SQZ_ISA_SCALAR = 0, SQZ_ISA_AVX2 = 1, SQZ_ISA_AVX512 = 2 };

#if defined(__x86_64__) || defined(_M_X64)
/* AVX2 + FMA (+ OS YMM support), under the cap. */
int sqz_cpu_has_avx2_fma(void);
/* AVX-512 F + BW + DQ + VL (+ OS ZMM/opmask support), under the cap. */
int sqz_cpu_has_avx512(void);
/* AVX-512 VNNI on top of sqz_cpu_has_avx512(). */
int sqz_cpu_has_avx512_vnni(void);
/* AVX-512 VBMI (vpermb / vpermi2b) on top of sqz_cpu_has_avx512(). */
int sqz_cpu_has_avx512_vbmi(void);
/* Highest level the hardware supports, ignoring any cap. */
int sqz_cpu_isa_hw(void);
/* Caps the level: SQZ_ISA_* or -1 to return to SQZ_ISA / no cap. */
void sqz_cpu_set_isa_cap(int level);
/* 1 where a 512-bit FMA issues as two 256-bit halves, so zmm FMA peaks at
 * the ymm rate (AMD family 19h, Zen 4: 16 fp32 FMAs per cycle, not 32):
 * kernel choices that trade FMAs for loads and stores (Winograd) differ. */
int sqz_cpu_zmm_fma_half_rate(void);
#endif

#if defined(__aarch64__)
enum { SQZ_ISA_NEON = 1, SQZ_ISA_NEON_DOT = 2 };
/* Advanced SIMD (NEON) fp32, under the cap. */
int sqz_cpu_has_neon(void);
/* NEON + the dot-product extension (SDOT / UDOT), under the cap. */
int sqz_cpu_has_neon_dot(void);
/* Highest level the hardware supports (SQZ_ISA_*), ignoring any cap. */
int sqz_cpu_isa_hw(void);
/* Caps the level: SQZ_ISA_* or -1 to return to SQZ_ISA / no cap. */
void sqz_cpu_set_isa_cap(int level);
#endif

#ifdef __cplusplus
}
#endif
#endif
