/* libtextdiff_mpi — data-parallel training over MPI (docs/distributed.md).
 *
 * A small separate library (libtextdiff_mpi, pkg-config textdiff-mpi, built
 * with -DTD_MPI=ON) on top of the core library's data-parallel hook
 * (td_trainer_set_data_parallel in textdiff.h). The core library has no MPI
 * dependency; this is one implementation of the hook, with MPI_Allreduce.
 *
 *     MPI_Init(&argc, &argv);
 *     ... every rank: the same model, schedule and trainer configuration ...
 *     td_mpi *mp;
 *     td_mpi_create(MPI_COMM_WORLD, NULL, &mp);
 *     if (td_mpi_attach(mp, trainer, model, 100) != TD_OK) { ...td_mpi_errmsg... }
 *     for (step ...) {
 *         ... the same global batch on every rank ...
 *         td_trainer_step(trainer, tokens, &stats);    (global loss in stats)
 *         if (td_mpi_rank(mp) == 0 && step % 1000 == 0) td_trainer_save(...);
 *     }
 *     td_trainer_free(trainer);
 *     td_mpi_free(mp);
 *     MPI_Finalize();
 *
 * Every td_mpi_* function but td_mpi_rank, td_mpi_size, td_mpi_errmsg and
 * td_mpi_free is collective: every rank of the communicator calls it, in the
 * same order. Failures are reported on every rank with the same status and
 * a message (td_mpi_errmsg): a failed check never leaves one rank waiting
 * for the others.
 */
#ifndef TEXTDIFF_MPI_H
#define TEXTDIFF_MPI_H

#include <mpi.h>

#include "textdiff/textdiff.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_mpi td_mpi;

/* A context on a duplicate of `comm` whose MPI error handler is
 * MPI_ERRORS_RETURN, so that a failed communication returns TD_ERR_IO with
 * MPI's message instead of aborting the job. Collective over comm. alloc:
 * NULL for the C library. */
TD_API td_status td_mpi_create(MPI_Comm comm, const td_allocator *alloc, td_mpi **out);

/* Frees the context (NULL is fine). Not collective. Free it after the
 * trainer it was attached to, or detach that trainer first with
 * td_trainer_set_data_parallel(t, 0, 1, NULL, NULL). */
TD_API void td_mpi_free(td_mpi *mp);

/* This process's rank and the number of ranks. */
TD_API int32_t td_mpi_rank(const td_mpi *mp);
TD_API int32_t td_mpi_size(const td_mpi *mp);

/* The message of the last failed call on mp (snprintf semantics). */
TD_API size_t td_mpi_errmsg(const td_mpi *mp, char *buf, size_t cap);

/* Makes `t`, a trainer created on `model`, rank td_mpi_rank(mp) of a
 * data-parallel run. Collective. First
 * compares, across the ranks: the library's version, the model
 * configuration, the trainer configuration (batch_size, seq_len, seed and
 * the optimizer settings; n_threads and micro_batch may differ), the step
 * count and a checksum of the parameters — any difference fails on every
 * rank with TD_ERR_STATE naming the field and the ranks that differ from
 * rank 0. A batch_size that the number of ranks does not divide fails with
 * TD_ERR_INVALID_ARG. Then installs the reduce hook: each td_trainer_step
 * sums the ranks' gradients and losses with MPI_Allreduce.
 * Every `check_every` steps (0: never) the hook also compares the
 * parameter checksums before reducing; a difference fails that step on
 * every rank with TD_ERR_STATE (the replicas drifted). */
TD_API td_status td_mpi_attach(td_mpi *mp, td_trainer *t, td_model *model,
                                int32_t check_every);

/* Compares the parameter checksums of the attached trainer's model across
 * the ranks now. Collective. TD_ERR_STATE on every rank when they differ. */
TD_API td_status td_mpi_check(td_mpi *mp);

#ifdef __cplusplus
}
#endif

#endif
