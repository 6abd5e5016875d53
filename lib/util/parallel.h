/* OpenMP without -Wunknown-pragmas when it is disabled:
 *   TDI_OMP(parallel for num_threads(nt) schedule(static))
 * Thread counts are always explicit (an argument), never global. */
#ifndef TDI_PARALLEL_H
#define TDI_PARALLEL_H

#if defined(TD_HAVE_OPENMP)
#  define TDI_PRAGMA_(x) _Pragma(#x)
#  define TDI_OMP(x) TDI_PRAGMA_(omp x)
#else
#  define TDI_OMP(x)
#endif

#endif
