/* td_runtime_info_get: which BLAS, which of its kernels, how many threads,
 * and what the CPU could do (docs/api.md "Runtime report").
 *
 * The BLAS is the one this build was configured for (TD_BLAS_NAME); its
 * details come from its own query functions, declared as weak references so
 * that the library links against any CBLAS and reports what it can. */
#include "util/runtime.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "textdiff/textdiff.h"
#include "util/config.h"
#include "util/error.h"

#ifndef TD_BLAS_NAME
#  define TD_BLAS_NAME ""
#endif

/* The library's own threads (lib/util/pool.h). */
#define TDI_LIB_THREADING "pthread pool"

/* The size of td_runtime_info in 1.0: smaller structs are refused. */
#define RUNTIME_INFO_V1 360

/* ---- the BLAS's query functions ----------------------------------------- */

#if defined(__GNUC__)
#  define TDI_WEAK __attribute__((weak))
#else /* no weak references: report the BLAS by name only */
#  define TDI_WEAK_NONE 1
#endif

#if !defined(TDI_WEAK_NONE)
/* OpenBLAS */
char *openblas_get_config(void) TDI_WEAK;
char *openblas_get_corename(void) TDI_WEAK;
int openblas_get_num_threads(void) TDI_WEAK;
int openblas_get_parallel(void) TDI_WEAK;
/* BLIS 0.9: gint_t and dim_t are 64-bit there, 32-bit in some builds, so
 * only the low 32 bits of their results are read; arch_t is an enum. */
char *bli_info_get_version_str(void) TDI_WEAK;
int64_t bli_info_get_enable_openmp(void) TDI_WEAK;
int64_t bli_info_get_enable_pthreads(void) TDI_WEAK;
int64_t bli_thread_get_num_threads(void) TDI_WEAK;
int bli_arch_query_id(void) TDI_WEAK;
char *bli_arch_string(int id) TDI_WEAK;
#endif

/* openblas_get_config() rewrites one static buffer on every call: queries
 * are made one at a time. */
static pthread_mutex_t query_lock = PTHREAD_MUTEX_INITIALIZER;

static void put(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

static void query_openblas(td_runtime_info *r)
{
    put(r->blas_name, sizeof r->blas_name, "OpenBLAS");
#if !defined(TDI_WEAK_NONE)
    if (openblas_get_config) put(r->blas_version, sizeof r->blas_version, openblas_get_config());
    if (openblas_get_corename)
        put(r->blas_core, sizeof r->blas_core, openblas_get_corename());
    if (openblas_get_num_threads) r->blas_threads = openblas_get_num_threads();
    if (openblas_get_parallel) {
        int p = openblas_get_parallel();
        r->blas_threading = p >= TD_BLAS_SERIAL && p <= TD_BLAS_OPENMP
                                ? p : TD_BLAS_THREADING_UNKNOWN;
    }
#endif
    r->blas_slow_kernel = tdi_openblas_advice(r->cpu_features, r->blas_core, r->blas_advice,
                                              sizeof r->blas_advice);
}

static void query_blis(td_runtime_info *r)
{
    put(r->blas_name, sizeof r->blas_name, "BLIS");
#if !defined(TDI_WEAK_NONE)
    if (bli_info_get_version_str)
        snprintf(r->blas_version, sizeof r->blas_version, "BLIS %s",
                 bli_info_get_version_str());
    if (bli_arch_query_id && bli_arch_string)
        put(r->blas_core, sizeof r->blas_core, bli_arch_string(bli_arch_query_id()));
    if (bli_info_get_enable_openmp && bli_info_get_enable_pthreads) {
        if ((int32_t)bli_info_get_enable_openmp()) r->blas_threading = TD_BLAS_OPENMP;
        else if ((int32_t)bli_info_get_enable_pthreads()) r->blas_threading = TD_BLAS_PTHREADS;
        else r->blas_threading = TD_BLAS_SERIAL;
    }
    /* Unset (BLIS_NUM_THREADS and friends absent), BLIS runs one thread. */
    if (r->blas_threading == TD_BLAS_SERIAL) r->blas_threads = 1;
    else if (bli_thread_get_num_threads) {
        int32_t n = (int32_t)bli_thread_get_num_threads();
        r->blas_threads = n >= 1 ? n : 1;
    }
#endif
}

static void query_reference(td_runtime_info *r)
{
    put(r->blas_name, sizeof r->blas_name, "reference");
    r->blas_threads = 1;
    r->blas_threading = TD_BLAS_SERIAL;
}

td_status td_runtime_info_get(td_runtime_info *info)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(info);
    TDI_TRY(tdi_struct_size_check(info->struct_size, RUNTIME_INFO_V1, __func__, "info"));
    td_runtime_info r;
    memset(&r, 0, sizeof r);
    r.cpu_features = tdi_cpu_features();
    r.blas_threading = TD_BLAS_THREADING_UNKNOWN;
    put(r.lib_threading, sizeof r.lib_threading, TDI_LIB_THREADING);
    pthread_mutex_lock(&query_lock);
    if (strcmp(TD_BLAS_NAME, "openblas") == 0) query_openblas(&r);
    else if (strcmp(TD_BLAS_NAME, "blis") == 0) query_blis(&r);
    else if (strcmp(TD_BLAS_NAME, "reference") == 0) query_reference(&r);
    else put(r.blas_name, sizeof r.blas_name, TD_BLAS_NAME);
    pthread_mutex_unlock(&query_lock);
    tdi_struct_out(info, info->struct_size, &r, sizeof r);
    return TD_OK;
}

/* ---- the slow-kernel rule ------------------------------------------------ */

/* OpenBLAS's x86 kernel sets older than Haswell's AVX2 + FMA ones, as
 * openblas_get_corename() names them (dynamic builds; static builds give
 * them in capitals). */
static const char *const pre_avx2_cores[] = {
    "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn",
    "Dunnington", "Nehalem", "Sandybridge", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona",
    "Bobcat", "Nano", "Generic",
};

static int same_name(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (x != y) return 0;
        if (x == '\0') return 1;
    }
}

int tdi_openblas_advice(uint32_t cpu, const char *core, char *advice, size_t cap)
{
    const uint32_t avx2 = TD_CPU_AVX2 | TD_CPU_FMA;
    const uint32_t skx = TD_CPU_AVX512F | TD_CPU_AVX512CD | TD_CPU_AVX512BW | TD_CPU_AVX512DQ |
                         TD_CPU_AVX512VL;
    if (cap > 0) advice[0] = '\0';
    if (core == NULL || (cpu & avx2) != avx2) return 0;
    int old = 0;
    for (size_t i = 0; i < sizeof pre_avx2_cores / sizeof pre_avx2_cores[0]; i++)
        old |= same_name(core, pre_avx2_cores[i]);
    if (!old) return 0;
    /* The best kernel set this CPU can run: SkylakeX needs all five
     * AVX-512 subsets (a Xeon Phi has only some), Cooperlake adds BF16. */
    const char *target = "Haswell", *has = "AVX2 and FMA";
    if ((cpu & skx) == skx) {
        int bf16 = (cpu & TD_CPU_AVX512_BF16) != 0;
        target = bf16 ? "Cooperlake" : "SkylakeX";
        has = bf16 ? "AVX-512 and AVX512-BF16" : "AVX-512";
    }
    if (cap > 0)
        snprintf(advice, cap, "OpenBLAS runs its %s kernels on a CPU with %s: set "
                              "OPENBLAS_CORETYPE=%s", core, has, target);
    return 1;
}

/* ---- the CPU ------------------------------------------------------------- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

/* XCR0: which register state the operating system saves. */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

uint32_t tdi_cpu_features(void)
{
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const uint64_t xcr0 = (c >> 27) & 1u ? xgetbv0() : 0; /* OSXSAVE */
    const int ymm = (xcr0 & 0x6) == 0x6;                  /* SSE and AVX state */
    const int zmm = (xcr0 & 0xe6) == 0xe6;                /* and opmask, ZMM */
    const int tiles = (xcr0 & 0x60000) == 0x60000;        /* AMX tile config, data */
    if (c & (1u << 20)) f |= TD_CPU_SSE42;
    if (ymm && (c & (1u << 28))) f |= TD_CPU_AVX;
    if (ymm && (c & (1u << 12))) f |= TD_CPU_FMA;
    if (__get_cpuid_max(0, NULL) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_subleaf = a;
    if (ymm && (b & (1u << 5))) f |= TD_CPU_AVX2;
    if (zmm) {
        if (b & (1u << 16)) f |= TD_CPU_AVX512F;
        if (b & (1u << 17)) f |= TD_CPU_AVX512DQ;
        if (b & (1u << 28)) f |= TD_CPU_AVX512CD;
        if (b & (1u << 30)) f |= TD_CPU_AVX512BW;
        if (b & (1u << 31)) f |= TD_CPU_AVX512VL;
        if (c & (1u << 11)) f |= TD_CPU_AVX512_VNNI;
    }
    if (tiles) {
        if (d & (1u << 22)) f |= TD_CPU_AMX_BF16;
        if (d & (1u << 24)) f |= TD_CPU_AMX_TILE;
        if (d & (1u << 25)) f |= TD_CPU_AMX_INT8;
    }
    if (zmm && max_subleaf >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (a & (1u << 5)) f |= TD_CPU_AVX512_BF16;
    }
    return f;
}
#else
uint32_t tdi_cpu_features(void) { return 0; }
#endif
