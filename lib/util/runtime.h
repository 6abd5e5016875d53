/* The runtime report's parts (td_runtime_info_get, util/runtime.c) that
 * the tests reach directly: the CPU's vector extensions, and the rule that
 * says when OpenBLAS runs kernels far below the CPU. */
#ifndef TDI_RUNTIME_H
#define TDI_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* TD_CPU_* bits of this CPU: CPUID, and XGETBV for what the operating system
 * enables (AVX, AVX-512 and AMX state). 0 off x86-64. */
uint32_t tdi_cpu_features(void);

/* The slow-kernel rule, a pure function: 1 when OpenBLAS core `core` (as
 * openblas_get_corename() names it, any case) is a pre-AVX2 kernel set on a
 * CPU with `cpu_features` AVX2 and FMA, with the advice to set
 * OPENBLAS_CORETYPE to the best kernel set the CPU can run (Cooperlake,
 * SkylakeX or Haswell) written to advice[0..cap) (NUL-terminated, truncated;
 * advice may be NULL when cap is 0). Otherwise 0 and "". */
int tdi_openblas_advice(uint32_t cpu_features, const char *core, char *advice, size_t cap);

#endif
