/* Who owns the threads of a matrix product.
 *
 * The library threads its own GEMMs: tdi_sgemm (kernels.h) splits each
 * product into blocks and runs them on its OpenMP threads, one
 * single-threaded BLAS call per block. A multi-threaded BLAS underneath
 * would nest a second busy-waiting thread pool inside the first, and on a
 * machine with as many threads as cores the two pools take turns stealing
 * each other's cores. So while the library computes, OpenBLAS (when it is
 * the BLAS and it is dynamically visible) is held at one thread:
 * tdi_blas_hold sets it to 1 and remembers the application's count;
 * tdi_blas_release restores it when the last holder leaves. Holds nest and
 * may come from any number of threads at once.
 *
 * With any other CBLAS both calls do nothing. */
#ifndef TDI_BLAS_THREADS_H
#define TDI_BLAS_THREADS_H

void tdi_blas_hold(void);
void tdi_blas_release(void);

/* 1 when the BLAS's thread count can be controlled (OpenBLAS). */
int tdi_blas_threads_controlled(void);

#endif
