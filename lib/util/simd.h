/* Vectorisation hints: TDI_SIMD(reduction(+:s)) before a loop is
 * `#pragma omp simd reduction(+:s)`. The library is compiled with
 * -fopenmp-simd (gcc and clang), which honours these pragmas and nothing
 * else of OpenMP: no runtime library, no threads. The library's threads are
 * its own (util/pool.h). Without the flag the hints vanish, silently. */
#ifndef TDI_SIMD_H
#define TDI_SIMD_H

#if defined(TD_HAVE_OPENMP_SIMD)
#  define TDI_PRAGMA_(x) _Pragma(#x)
#  define TDI_SIMD(x) TDI_PRAGMA_(omp simd x)
#else
#  define TDI_SIMD(x)
#endif

#endif
