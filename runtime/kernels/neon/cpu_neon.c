/* cpu_neon.c - aarch64 Linux feature detection (getauxval(AT_HWCAP)),
 * cached, with the SQZ_ISA cap (scalar | neon | dotprod). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "cpu.h"

/* Linux arm64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h); defined
 * here so the build does not depend on the kernel headers' version. */
#define SQZ_HWCAP_ASIMD (1UL << 1)
#define SQZ_HWCAP_ASIMDDP (1UL << 20)

static _Atomic int hw_level = -1;  /* -1: not detected yet */
static _Atomic int cap_level = -2; /* -2: read SQZ_ISA on first use; -1: none */

static void detect(void) {
    unsigned long hw = getauxval(AT_HWCAP);
    int level = SQZ_ISA_SCALAR;
    if (hw & SQZ_HWCAP_ASIMD) {
        level = SQZ_ISA_NEON;
        if (hw & SQZ_HWCAP_ASIMDDP) level = SQZ_ISA_NEON_DOT;
    }
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
        else if (e && strcmp(e, "neon") == 0)
            c = SQZ_ISA_NEON;
        else if (e && strcmp(e, "dotprod") == 0)
            c = SQZ_ISA_NEON_DOT;
        cap_level = c;
    }
    return cap_level;
}

static int level(void) {
    int hw = sqz_cpu_isa_hw(), c = cap();
    return c >= 0 && c < hw ? c : hw;
}

int sqz_cpu_has_neon(void) {
    return level() >= SQZ_ISA_NEON;
}

int sqz_cpu_has_neon_dot(void) {
    return level() >= SQZ_ISA_NEON_DOT;
}
