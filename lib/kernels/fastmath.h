/* exp and tanh for the elementwise kernels, written so that a loop calling
 * them vectorises under the library's flags: no libm call, no float-to-int
 * conversion, and no branch. (At -O2 with trapping math GCC will not
 * if-convert a float clamp once later arithmetic is moved into its arms, so
 * range handling is done with integer masks on the result.) libm's tanhf
 * alone took ~30% of a training step.
 * Accuracy: expf within a few ulp (Cephes polynomial after a two-constant
 * Cody-Waite reduction); tanhf within ~1e-7 absolute, which is what GELU
 * needs (it adds t to 1). */
#ifndef TDI_FASTMATH_H
#define TDI_FASTMATH_H

#include <stdint.h>

/* An elementwise kernel compiled for AVX-512, AVX2 and the baseline, picked
 * at load time for the CPU (GCC/Clang function multiversioning on x86-64
 * ELF). Only for loops whose lanes are independent: with no reductions and
 * no fused multiply-add (the library builds with -ffp-contract=off), every
 * version computes the same bits, only more of them at once. */
/* ThreadSanitizer instruments the resolver, which runs while the program is
 * relocated, before the sanitizer's runtime is up: no clones there. */
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define TDI_NO_CLONES_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__)
#  define TDI_NO_CLONES_TSAN 1
#endif
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(TD_NO_TARGET_CLONES) && !defined(TDI_NO_CLONES_TSAN)
#  define TDI_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define TDI_TARGET_CLONES
#endif

/* e^x for finite x in [−87.3, 88.3]; exactly 0 below (so e^−∞ = 0, as a
 * masked logit needs; true values there are under FLT_MIN), +inf above,
 * NaN for NaN. */
static inline float tdi_expf(float x)
{
    /* k = round(x / ln 2) lands in the low mantissa bits of 1.5·2^23 + k. */
    union { float f; uint32_t u; } kb, scale, e;
    kb.f = x * 1.44269504088896341f + 12582912.0f;
    float k = kb.f - 12582912.0f;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    scale.u = (kb.u - 0x4B400000u + 127u) << 23; /* 2^k, valid for k in [−126, 127] */
    e.f = p * scale.f;
    uint32_t keep = -(uint32_t)!(x < -87.3f), over = -(uint32_t)(x > 88.3f);
    e.u = (e.u & keep & ~over) | (0x7F800000u & over);
    return e.f;
}

/* tanh x = 1 − 2/(e^{2x} + 1): ±1 in the limits, NaN for NaN. */
static inline float tdi_tanhf(float x)
{
    return 1.0f - 2.0f / (tdi_expf(2.0f * x) + 1.0f);
}

#endif
