/* Data-parallel training over MPI: the core library's reduce hook
 * (td_trainer_set_data_parallel) implemented with MPI_Allreduce, plus the
 * checks that keep the replicas one model (docs/distributed.md). */
#include "textdiff/textdiff_mpi.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct td_mpi {
    td_allocator alloc;
    MPI_Comm comm;        /* our duplicate, MPI_ERRORS_RETURN */
    int rank, size;
    td_trainer *trainer;  /* attached; not owned */
    td_model *model;      /* its model (for the checksum) */
    int32_t check_every;  /* compare checksums every that many steps; 0: never */
    int64_t steps;        /* reductions since attach */
    char msg[512];
};

static void *default_malloc(void *user, size_t size)
{
    (void)user;
    return malloc(size);
}

static void default_free(void *user, void *p)
{
    (void)user;
    free(p);
}

static td_status fail(td_mpi *mp, td_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mp->msg, sizeof mp->msg, fmt, ap);
    va_end(ap);
    return st;
}

/* A failed MPI call: TD_ERR_IO with MPI's own words. */
static td_status mpi_fail(td_mpi *mp, const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "?");
    return fail(mp, TD_ERR_IO, "td_mpi (rank %d of %d): %s failed: %s", mp->rank, mp->size,
                what, text);
}

td_status td_mpi_create(MPI_Comm comm, const td_allocator *alloc, td_mpi **out)
{
    if (out == NULL) return TD_ERR_INVALID_ARG;
    *out = NULL;
    int init = 0;
    MPI_Initialized(&init);
    if (!init) return TD_ERR_STATE;
    td_allocator a = { default_malloc, NULL, default_free, NULL };
    if (alloc != NULL) {
        if (alloc->malloc_fn == NULL || alloc->free_fn == NULL) return TD_ERR_INVALID_ARG;
        a = *alloc;
    }
    td_mpi *mp = a.malloc_fn(a.user, sizeof *mp);
    if (mp == NULL) return TD_ERR_NOMEM;
    memset(mp, 0, sizeof *mp);
    mp->alloc = a;
    /* Our own communicator: its error handler is ours to set, and our
     * messages cannot match the host's. */
    int rc = MPI_Comm_dup(comm, &mp->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(mp->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(mp->comm, &mp->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mp->comm, &mp->size);
    if (rc != MPI_SUCCESS) {
        if (mp->comm != MPI_COMM_NULL) MPI_Comm_free(&mp->comm);
        a.free_fn(a.user, mp);
        return TD_ERR_IO;
    }
    *out = mp;
    return TD_OK;
}

void td_mpi_free(td_mpi *mp)
{
    if (mp == NULL) return;
    if (mp->comm != MPI_COMM_NULL) MPI_Comm_free(&mp->comm);
    td_allocator a = mp->alloc;
    a.free_fn(a.user, mp);
}

int32_t td_mpi_rank(const td_mpi *mp) { return mp != NULL ? mp->rank : -1; }
int32_t td_mpi_size(const td_mpi *mp) { return mp != NULL ? mp->size : 0; }

size_t td_mpi_errmsg(const td_mpi *mp, char *buf, size_t cap)
{
    const char *m = mp != NULL ? mp->msg : "td_mpi: mp is NULL";
    if (buf != NULL && cap > 0) snprintf(buf, cap, "%s", m);
    return strlen(m);
}

/* FNV-1a: a 64-bit digest of a configuration's bytes. */
static uint64_t digest(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

/* What every rank must agree on, in the order it is reported. */
enum { F_VERSION, F_MODEL, F_TRAINER, F_STEP, F_PARAMS, N_FIELDS };
static const char *const field_names[N_FIELDS] = {
    "the libtextdiff version", "the model configuration",
    "the trainer configuration (batch_size, seq_len, seed or optimizer settings)",
    "the step count (a checkpoint resumed on some ranks only?)", "the parameters",
};

/* Compares every rank's fields[n] (field_names[first_field ...]) with rank
 * 0's and fails, on every rank alike, with TD_ERR_STATE naming the first
 * field in which some ranks differ. Allocates nothing, so that no rank can leave the others waiting. */
static td_status compare(td_mpi *mp, const uint64_t *fields, int first_field, int n,
                         const char *func)
{
    uint64_t ref[N_FIELDS];
    int count[N_FIELDS], first[N_FIELDS];
    memcpy(ref, fields, sizeof(uint64_t) * (size_t)n);
    int rc = MPI_Bcast(ref, n, MPI_UINT64_T, 0, mp->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mp, "MPI_Bcast", rc);
    for (int f = 0; f < n; f++) {
        count[f] = fields[f] != ref[f];
        first[f] = count[f] ? mp->rank : INT_MAX;
    }
    rc = MPI_Allreduce(MPI_IN_PLACE, count, n, MPI_INT, MPI_SUM, mp->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, first, n, MPI_INT, MPI_MIN, mp->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mp, "MPI_Allreduce", rc);
    for (int f = 0; f < n; f++) {
        if (count[f] == 0) continue;
        char others[64] = "";
        if (count[f] > 1) snprintf(others, sizeof others, " (and %d other ranks)", count[f] - 1);
        return fail(mp, TD_ERR_STATE,
                    "%s: rank %d%s differs from rank 0 in %s; every rank must train the same "
                    "model the same way",
                    func, first[f], others, field_names[first_field + f]);
    }
    return TD_OK;
}

static td_status checksum_field(td_mpi *mp, uint64_t *out, const char *func)
{
    uint32_t crc = 0;
    if (td_model_checksum(mp->model, &crc) != TD_OK)
        return fail(mp, TD_ERR_INTERNAL, "%s: td_model_checksum failed", func);
    *out = crc;
    return TD_OK;
}

td_status td_mpi_check(td_mpi *mp)
{
    if (mp == NULL) return TD_ERR_INVALID_ARG;
    if (mp->trainer == NULL) return fail(mp, TD_ERR_STATE, "td_mpi_check: no trainer attached");
    uint64_t f = 0;
    td_status st = checksum_field(mp, &f, __func__);
    if (st != TD_OK) return st;
    st = compare(mp, &f, F_PARAMS, 1, __func__);
    if (st == TD_ERR_STATE) {
        char m[sizeof mp->msg];
        memcpy(m, mp->msg, sizeof m);
        fail(mp, st, "%s; after %lld steps the replicas drifted apart", m,
             (long long)mp->steps);
    }
    return st;
}

/* MPI counts are int: reduce a long buffer in pieces. */
static int allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Comm comm)
{
    char *p = buf;
    while (n > 0) {
        int k = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, k, type, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return rc;
        p += (size_t)k * elem;
        n -= (size_t)k;
    }
    return MPI_SUCCESS;
}

/* The hook: sums the shards' gradients and losses. One allreduce for the
 * whole gradient after backward: overlapping it with backward would need a
 * hook per layer and MPI progress during the computation
 * (docs/distributed.md measures what it would save). */
static td_status reduce(void *user, float *grads, size_t n_grads, double *values,
                        size_t n_values)
{
    td_mpi *mp = user;
    if (mp->check_every > 0 && mp->steps > 0 && mp->steps % mp->check_every == 0) {
        td_status st = td_mpi_check(mp);
        if (st != TD_OK) return st;
    }
    mp->steps++;
    int rc = allreduce(grads, n_grads, MPI_FLOAT, sizeof *grads, mp->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mp, "MPI_Allreduce of the gradient", rc);
    rc = allreduce(values, n_values, MPI_DOUBLE, sizeof *values, mp->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(mp, "MPI_Allreduce of the loss", rc);
    return TD_OK;
}

td_status td_mpi_attach(td_mpi *mp, td_trainer *t, td_model *model, int32_t check_every)
{
    static const char func[] = "td_mpi_attach";
    if (mp == NULL) return TD_ERR_INVALID_ARG;
    if (t == NULL || model == NULL)
        return fail(mp, TD_ERR_INVALID_ARG, "%s: %s is NULL", func, t == NULL ? "t" : "model");
    if (check_every < 0)
        return fail(mp, TD_ERR_INVALID_ARG, "%s: check_every = %d must be >= 0", func,
                    (int)check_every);
    td_trainer_config tc = { .struct_size = sizeof tc };
    int64_t step = 0;
    if (td_trainer_get_config(t, &tc) != TD_OK || td_trainer_get_step(t, &step) != TD_OK)
        return fail(mp, TD_ERR_INTERNAL, "%s: cannot read the trainer's configuration", func);
    td_model_config mc = { .struct_size = sizeof mc };
    if (td_model_get_config(model, &mc) != TD_OK)
        return fail(mp, TD_ERR_INTERNAL, "%s: cannot read the model's configuration", func);
    mp->model = model;

    /* What may differ between ranks: their threads and passes. */
    int32_t batch = tc.batch_size;
    tc.n_threads = 0;
    tc.micro_batch = 0;
    uint64_t fields[N_FIELDS];
    fields[F_VERSION] = (uint64_t)td_version_number() << 32 | td_abi_version();
    fields[F_MODEL] = digest(&mc, sizeof mc);
    fields[F_TRAINER] = digest(&tc, sizeof tc);
    fields[F_STEP] = (uint64_t)step;
    td_status st = checksum_field(mp, &fields[F_PARAMS], func);
    if (st != TD_OK) return st;
    st = compare(mp, fields, 0, N_FIELDS, func);
    if (st != TD_OK) return st;
    /* Every rank has the same batch_size now, so this fails on all alike. */
    if (batch % mp->size != 0)
        return fail(mp, TD_ERR_INVALID_ARG,
                    "%s: the global batch_size = %d is not divisible by the %d ranks: run on "
                    "a number of ranks that divides it",
                    func, (int)batch, mp->size);
    st = td_trainer_set_data_parallel(t, mp->rank, mp->size, reduce, mp);
    if (st != TD_OK) {
        char m[400];
        td_trainer_errmsg(t, m, sizeof m);
        return fail(mp, st, "%s: %s", func, m);
    }
    mp->trainer = t;
    mp->check_every = check_every;
    mp->steps = 0;
    return TD_OK;
}
