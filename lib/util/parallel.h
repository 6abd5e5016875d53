/* OpenMP without -Wunknown-pragmas when it is disabled:
 *   TDI_OMP(parallel for num_threads(nt) schedule(static))
 * Thread counts are always explicit (an argument), never global. */
#ifndef TDI_PARALLEL_H
#define TDI_PARALLEL_H

#if defined(TD_HAVE_OPENMP)
#  include <omp.h>
#  define TDI_PRAGMA_(x) _Pragma(#x)
#  define TDI_OMP(x) TDI_PRAGMA_(omp x)
/* The calling thread's index in the innermost team, 0..team size − 1: it
 * picks a per-thread scratch slot, never a result. */
static inline int tdi_thread_num(void) { return omp_get_thread_num(); }
#else
#  define TDI_OMP(x)
static inline int tdi_thread_num(void) { return 0; }
#endif

#endif
