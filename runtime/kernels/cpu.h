/* cpu.h - run-time CPU feature detection for kernel dispatch (cached).
 *
 * On x86-64 (kernels/x86/cpu_x86.c): cpuid + xgetbv (the OS must save YMM /
 * ZMM state). The environment variable SQZ_ISA=scalar|avx2|avx512 caps the
 * level (tests and benches); sqz_cpu_set_isa_cap() does the same from code. */
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
/* Highest level the hardware supports, ignoring any cap. */
int sqz_cpu_isa_hw(void);
/* Caps the level: SQZ_ISA_* or -1 to return to SQZ_ISA / no cap. */
void sqz_cpu_set_isa_cap(int level);
#endif

#ifdef __cplusplus
}
#endif
#endif
