/* test_rt_cpu.c - run-time CPU detection (kernels/cpu.h): the hardware level
 * against the OS's own report, and the SQZ_ISA / sqz_cpu_set_isa_cap() cap as
 * seen by the kernel selection (GEMM, depthwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu.h"
#include "dwconv.h"
#include "gemm.h"

#if defined(__aarch64__)
#include <asm/hwcap.h> /* the kernel's own bit definitions, to cross-check cpu_neon.c */
#include <sys/auxv.h>

static void test_hw_level(void **state) {
    (void)state;
    unsigned long hw = getauxval(AT_HWCAP);
    int want = SQZ_ISA_SCALAR;
    if (hw & HWCAP_ASIMD) want = (hw & HWCAP_ASIMDDP) ? SQZ_ISA_NEON_DOT : SQZ_ISA_NEON;
    assert_int_equal(sqz_cpu_isa_hw(), want);
    /* the Linux arm64 ABI has FP/ASIMD on every CPU */
    assert_true(sqz_cpu_isa_hw() >= SQZ_ISA_NEON);
    printf("[ INFO ] AT_HWCAP 0x%lx: level %d (%s)\n", hw, sqz_cpu_isa_hw(),
           sqz_cpu_isa_hw() >= SQZ_ISA_NEON_DOT ? "neon + dotprod" : "neon");
}

static void test_cap(void **state) {
    (void)state;
    int hw = sqz_cpu_isa_hw();
    sqz_cpu_set_isa_cap(SQZ_ISA_SCALAR);
    assert_false(sqz_cpu_has_neon());
    assert_false(sqz_cpu_has_neon_dot());
    assert_string_equal(sqz_gemm_best()->name, "scalar");
    assert_false(sqz_dw_isa_available(SQZ_DW_NEON));
    sqz_cpu_set_isa_cap(SQZ_ISA_NEON);
    assert_true(sqz_cpu_has_neon());
    assert_false(sqz_cpu_has_neon_dot());
    assert_string_equal(sqz_gemm_best()->name, "neon");
    assert_true(sqz_dw_isa_available(SQZ_DW_NEON));
    /* back to the environment: SQZ_ISA is read again */
    assert_int_equal(setenv("SQZ_ISA", "scalar", 1), 0);
    sqz_cpu_set_isa_cap(-1);
    assert_false(sqz_cpu_has_neon());
    assert_int_equal(setenv("SQZ_ISA", "neon", 1), 0);
    sqz_cpu_set_isa_cap(-1);
    assert_true(sqz_cpu_has_neon());
    assert_false(sqz_cpu_has_neon_dot());
    assert_int_equal(unsetenv("SQZ_ISA"), 0);
    sqz_cpu_set_isa_cap(-1);
    assert_int_equal(sqz_cpu_has_neon_dot(), hw >= SQZ_ISA_NEON_DOT);
    assert_true(sqz_cpu_has_neon());
}
#elif defined(__x86_64__)
static void test_hw_level(void **state) {
    (void)state;
    int hw = sqz_cpu_isa_hw();
    assert_true(hw >= SQZ_ISA_SCALAR && hw <= SQZ_ISA_AVX512);
    /* the compiler's view of this CPU must agree on AVX2 + FMA (both read cpuid;
     * the OS YMM check is ours alone, so only "ours implies the compiler's") */
    __builtin_cpu_init();
    if (hw >= SQZ_ISA_AVX2)
        assert_true(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    printf("[ INFO ] x86 level %d\n", hw);
}

static void test_cap(void **state) {
    (void)state;
    int hw = sqz_cpu_isa_hw();
    sqz_cpu_set_isa_cap(SQZ_ISA_SCALAR);
    assert_false(sqz_cpu_has_avx2_fma());
    assert_false(sqz_cpu_has_avx512());
    assert_string_equal(sqz_gemm_best()->name, "scalar");
    assert_false(sqz_dw_isa_available(SQZ_DW_AVX2));
    assert_int_equal(setenv("SQZ_ISA", "scalar", 1), 0);
    sqz_cpu_set_isa_cap(-1);
    assert_false(sqz_cpu_has_avx2_fma());
    assert_int_equal(unsetenv("SQZ_ISA"), 0);
    sqz_cpu_set_isa_cap(-1);
    assert_int_equal(sqz_cpu_has_avx2_fma(), hw >= SQZ_ISA_AVX2);
    assert_int_equal(sqz_cpu_has_avx512(), hw >= SQZ_ISA_AVX512);
}
#else
static void test_hw_level(void **state) {
    (void)state;
    printf("[ SKIP ] no CPU detection on this architecture (scalar kernels only)\n");
}
static void test_cap(void **state) {
    (void)state;
    assert_string_equal(sqz_gemm_best()->name, "scalar");
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_hw_level), cmocka_unit_test(test_cap)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
