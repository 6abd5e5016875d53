/* The runtime report: its layout, its fields against independent sources
 * (the build's BLAS choice, the compiler's CPU feature test), struct_size
 * handling that never writes outside the caller's struct, and the
 * slow-kernel rule as a pure function of CPU features and core name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "textdiff/textdiff.h"
#include "util/runtime.h"

/* ---- the fields ---------------------------------------------------------------- */

static td_runtime_info full_info(void)
{
    td_runtime_info r;
    memset(&r, 0x7f, sizeof r);
    r.struct_size = sizeof r;
    assert_int_equal(td_runtime_info_get(&r), TD_OK);
    return r;
}

static void assert_terminated(const char *s, size_t cap)
{
    assert_non_null(memchr(s, '\0', cap));
}

static void test_fields_are_filled(void **state)
{
    (void)state;
    td_runtime_info r = full_info();
    assert_int_equal(r.struct_size, sizeof r);
    assert_terminated(r.blas_name, sizeof r.blas_name);
    assert_terminated(r.blas_version, sizeof r.blas_version);
    assert_terminated(r.blas_core, sizeof r.blas_core);
    assert_terminated(r.lib_threading, sizeof r.lib_threading);
    assert_terminated(r.blas_advice, sizeof r.blas_advice);
    assert_int_equal(r.reserved0, 0);
    assert_true(r.lib_threading[0] != '\0');
    assert_true(r.blas_threading >= TD_BLAS_THREADING_UNKNOWN && r.blas_threading <= TD_BLAS_OPENMP);
    print_message("%s | %s | core %s | %d thread(s), threading %d | library: %s | cpu 0x%x%s%s\n",
                  r.blas_name, r.blas_version, r.blas_core, (int)r.blas_threads,
                  (int)r.blas_threading, r.lib_threading, (unsigned)r.cpu_features,
                  r.blas_slow_kernel ? " | " : "", r.blas_advice);

    /* The BLAS the build chose, with what its query functions say. */
    if (strcmp(TD_BLAS_NAME, "openblas") == 0) {
        assert_string_equal(r.blas_name, "OpenBLAS");
        assert_non_null(strstr(r.blas_version, "OpenBLAS"));
        assert_true(r.blas_core[0] != '\0');
        assert_true(r.blas_threads >= 1);
        assert_true(r.blas_threading >= TD_BLAS_SERIAL);
    } else if (strcmp(TD_BLAS_NAME, "blis") == 0) {
        assert_string_equal(r.blas_name, "BLIS");
        assert_non_null(strstr(r.blas_version, "BLIS "));
        assert_true(r.blas_core[0] != '\0');
        assert_true(r.blas_threads >= 1);
        assert_true(r.blas_threading >= TD_BLAS_SERIAL);
    } else if (strcmp(TD_BLAS_NAME, "reference") == 0) {
        assert_string_equal(r.blas_name, "reference");
        assert_int_equal(r.blas_threads, 1);
        assert_int_equal(r.blas_threading, TD_BLAS_SERIAL);
    }

    /* The flag is the rule applied to the report's own fields. */
    char advice[128];
    int slow = strcmp(TD_BLAS_NAME, "openblas") == 0 &&
               tdi_openblas_advice(r.cpu_features, r.blas_core, advice, sizeof advice);
    assert_int_equal(r.blas_slow_kernel, slow);
    if (slow) assert_string_equal(r.blas_advice, advice);
    else assert_string_equal(r.blas_advice, "");

    /* A second call says the same. */
    td_runtime_info again = full_info();
    assert_memory_equal(&r, &again, sizeof r);
}

/* CPUID + XGETBV against the compiler's own feature test (GCC's and
 * clang's __builtin_cpu_supports know these names; AMX is left out). */
static void test_cpu_features_match_the_compiler(void **state)
{
    (void)state;
    uint32_t f = tdi_cpu_features();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
#define SAME(bit, name) assert_int_equal((f & (bit)) != 0, __builtin_cpu_supports(name) != 0)
    SAME(TD_CPU_SSE42, "sse4.2");
    SAME(TD_CPU_AVX, "avx");
    SAME(TD_CPU_AVX2, "avx2");
    SAME(TD_CPU_FMA, "fma");
    SAME(TD_CPU_AVX512F, "avx512f");
    SAME(TD_CPU_AVX512CD, "avx512cd");
    SAME(TD_CPU_AVX512BW, "avx512bw");
    SAME(TD_CPU_AVX512DQ, "avx512dq");
    SAME(TD_CPU_AVX512VL, "avx512vl");
    SAME(TD_CPU_AVX512_VNNI, "avx512vnni");
    SAME(TD_CPU_AVX512_BF16, "avx512bf16");
#undef SAME
    /* Every x86-64 CPU this century has SSE4.2; the rest imply their base. */
    if (f & TD_CPU_AVX2) assert_true(f & TD_CPU_AVX);
    if (f & TD_CPU_AVX512F) assert_true(f & TD_CPU_AVX2);
#else
    assert_int_equal(f, 0);
#endif
    assert_int_equal(full_info().cpu_features, f);
}

/* ---- arguments (the struct_size protocol: test_structs) ------------------- */

enum { CANARY = 0xA5 };

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void test_invalid_arguments_write_nothing(void **state)
{
    (void)state;
    assert_int_equal(td_runtime_info_get(NULL), TD_ERR_INVALID_ARG);
    assert_non_null(strstr(td_last_error_message(), "info"));
    unsigned char buf[sizeof(td_runtime_info)];
    for (uint32_t size = 0; size < sizeof(td_runtime_info); size += 4) {
        memset(buf, CANARY, sizeof buf);
        memcpy(buf, &size, sizeof size);
        assert_int_equal(td_runtime_info_get((td_runtime_info *)(void *)buf),
                         TD_ERR_INVALID_ARG);
        assert_non_null(strstr(td_last_error_message(), "struct_size"));
        assert_true(all_bytes(buf + 4, sizeof buf - 4, CANARY));
    }
}

/* ---- the slow-kernel rule ------------------------------------------------------------ */

#define AVX2_CPU (TD_CPU_SSE42 | TD_CPU_AVX | TD_CPU_AVX2 | TD_CPU_FMA)
#define SKX_CPU                                                                              \
    (AVX2_CPU | TD_CPU_AVX512F | TD_CPU_AVX512CD | TD_CPU_AVX512BW | TD_CPU_AVX512DQ |      \
     TD_CPU_AVX512VL)

static void expect_advice(uint32_t cpu, const char *core, const char *coretype)
{
    char advice[128];
    memset(advice, CANARY, sizeof advice);
    int slow = tdi_openblas_advice(cpu, core, advice, sizeof advice);
    if (coretype == NULL) {
        if (slow) fail_msg("%s on cpu 0x%x: flagged (%s)", core ? core : "NULL", cpu, advice);
        assert_string_equal(advice, "");
        return;
    }
    if (!slow) fail_msg("%s on cpu 0x%x: not flagged", core, cpu);
    char want[64];
    snprintf(want, sizeof want, "OPENBLAS_CORETYPE=%s", coretype);
    if (strstr(advice, want) == NULL) fail_msg("%s on cpu 0x%x: \"%s\"", core, cpu, advice);
    assert_non_null(strstr(advice, core)); /* it names the kernels it saw */
}

static void test_slow_kernel_rule(void **state)
{
    (void)state;
    /* Old kernels on an AVX2 + FMA CPU: the best set the CPU runs. */
    expect_advice(AVX2_CPU, "Prescott", "Haswell");
    expect_advice(AVX2_CPU, "Core2", "Haswell");
    expect_advice(AVX2_CPU, "Nehalem", "Haswell");
    expect_advice(AVX2_CPU, "Sandybridge", "Haswell");
    expect_advice(AVX2_CPU, "Atom", "Haswell");
    expect_advice(SKX_CPU, "Prescott", "SkylakeX");
    expect_advice(SKX_CPU | TD_CPU_AVX512_VNNI, "Sandybridge", "SkylakeX");
    expect_advice(SKX_CPU | TD_CPU_AVX512_BF16, "Prescott", "Cooperlake");
    expect_advice(SKX_CPU | TD_CPU_AVX512_BF16 | TD_CPU_AMX_TILE, "Nehalem", "Cooperlake");
    /* Static OpenBLAS builds name their core in capitals. */
    expect_advice(AVX2_CPU, "PRESCOTT", "Haswell");
    expect_advice(SKX_CPU, "sandybridge", "SkylakeX");
    /* AVX-512F without the rest (Xeon Phi) cannot run SkylakeX's kernels. */
    expect_advice(AVX2_CPU | TD_CPU_AVX512F | TD_CPU_AVX512CD, "Prescott", "Haswell");

    /* Kernels that use the CPU well enough, or a CPU with nothing better. */
    expect_advice(AVX2_CPU, "Haswell", NULL);
    expect_advice(SKX_CPU, "Haswell", NULL);
    expect_advice(SKX_CPU | TD_CPU_AVX512_BF16, "Zen", NULL);
    expect_advice(SKX_CPU, "SkylakeX", NULL);
    expect_advice(SKX_CPU | TD_CPU_AVX512_BF16, "Cooperlake", NULL);
    expect_advice(SKX_CPU, "SapphireRapids", NULL);
    expect_advice(TD_CPU_SSE42 | TD_CPU_AVX, "Sandybridge", NULL); /* no AVX2 */
    expect_advice(TD_CPU_SSE42 | TD_CPU_AVX | TD_CPU_AVX2, "Prescott", NULL); /* no FMA */
    expect_advice(TD_CPU_SSE42, "Prescott", NULL);
    expect_advice(0, "Prescott", NULL); /* not x86, or unknown */
    /* Unknown or missing names, and names that merely contain an old one. */
    expect_advice(SKX_CPU, "", NULL);
    expect_advice(SKX_CPU, NULL, NULL);
    expect_advice(SKX_CPU, "Unknown", NULL);
    expect_advice(SKX_CPU, "Prescott2", NULL);
    expect_advice(SKX_CPU, "Core", NULL);

    /* The advice fits any buffer: truncated and terminated, or not written. */
    char small[12];
    memset(small, CANARY, sizeof small);
    assert_int_equal(tdi_openblas_advice(AVX2_CPU, "Prescott", small, 8), 1);
    assert_int_equal(strlen(small), 7);
    assert_true(all_bytes((const unsigned char *)small + 8, sizeof small - 8, CANARY));
    assert_int_equal(tdi_openblas_advice(AVX2_CPU, "Prescott", NULL, 0), 1);
    assert_int_equal(tdi_openblas_advice(AVX2_CPU, "Haswell", NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_are_filled),
        cmocka_unit_test(test_cpu_features_match_the_compiler),
        cmocka_unit_test(test_invalid_arguments_write_nothing),
        cmocka_unit_test(test_slow_kernel_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
