/* Data-parallel training over MPI (libtextdiff_mpi), run with
 * `mpirun -np N test_mpi MODE DIR`:
 *
 *   equiv     N ranks train a tiny model for STEPS steps on one global batch
 *             per step; rank 0 then trains the same model in one process
 *             and compares the losses and the model's logits, and resumes
 *             the checkpoint it wrote at STEPS/2 in one process and compares
 *             again (docs/distributed.md gives the tolerances and why).
 *   badbatch  a batch_size that N does not divide: every rank fails.
 *   badconfig the last rank has another model configuration: every rank fails.
 *   drift     the last rank's parameters go back to an earlier checkpoint in
 *             the middle of the run: the next step fails on every rank.
 *
 * Every rank prints what it saw; any failed expectation exits non-zero. */
#include "textdiff/textdiff_mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 8
#define BATCH 8
#define SEQ   16

static int g_rank, g_failed;

#define EXPECT(cond, ...)                                          \
    do {                                                           \
        if (!(cond)) {                                             \
            fprintf(stderr, "rank %d: FAILED %s: ", g_rank, #cond); \
            fprintf(stderr, __VA_ARGS__);                          \
            fprintf(stderr, "\n");                                 \
            g_failed = 1;                                          \
        }                                                          \
    } while (0)

typedef struct run {
    td_model *model;
    td_schedule *sched;
    td_trainer *trainer;
} run;

static void run_free(run *r)
{
    td_trainer_free(r->trainer);
    td_schedule_free(r->sched);
    td_model_free(r->model);
}

/* The same tiny model and trainer on every rank, unless d_ff says otherwise. */
static td_status run_create(run *r, int32_t batch, int32_t micro, int32_t d_ff)
{
    memset(r, 0, sizeof *r);
    td_model_config mc;
    td_model_config_default(&mc);
    mc.d_model = 32;
    mc.n_layers = 2;
    mc.n_heads = 2;
    mc.d_ff = d_ff;
    mc.max_seq_len = SEQ;
    td_status st = td_model_create(&mc, 7, NULL, &r->model);
    td_schedule_config sc;
    td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR);
    if (st == TD_OK) st = td_schedule_create(&sc, NULL, &r->sched);
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = batch;
    tc.seq_len = SEQ;
    tc.micro_batch = micro;
    tc.seed = 11;
    tc.lr = 3e-3f;
    tc.warmup_steps = 2;
    tc.total_steps = STEPS;
    if (st == TD_OK) st = td_trainer_create(r->model, r->sched, &tc, &r->trainer);
    return st;
}

/* The global batch of a step: a pure function of the step, as
 * td_corpus_batch is of its index. */
static void batch_of(int64_t step, int32_t *tokens, int n)
{
    uint64_t x = 0x9e3779b97f4a7c15u * (uint64_t)(step + 1);
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        tokens[i] = (int32_t)(x % 64) + 'A';
    }
}

static td_status train(td_trainer *t, int64_t from, int64_t to, double *losses)
{
    int32_t tokens[BATCH * SEQ];
    for (int64_t s = from; s < to; s++) {
        td_train_stats st = { .struct_size = sizeof st };
        batch_of(s, tokens, BATCH * SEQ);
        td_status rc = td_trainer_step(t, tokens, &st);
        if (rc != TD_OK) return rc;
        losses[s] = st.loss;
    }
    return TD_OK;
}

/* The model's logits on a fixed input: what the parameters compute. */
static void logits_of(const td_model *m, float *out)
{
    int32_t ids[2 * SEQ];
    batch_of(1000, ids, 2 * SEQ);
    for (int i = 0; i < 2 * SEQ; i += 3) ids[i] = 256; /* [MASK] */
    td_model_logits(m, ids, 2, SEQ, 1, out);
}

/* Largest |a − b| over the finite entries. */
static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]) && fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

/* Tolerances (docs/distributed.md): the sums of the shards differ from the
 * one-process sums by float rounding (~1e-7 relative); Adam divides by
 * sqrt(v), which turns a tiny gradient's rounding into a visible step, so
 * the parameters and logits drift apart by a few 1e-6 per step at most. */
#define LOSS_RTOL  1e-6
#define LOGIT_ATOL 1e-4

static void mode_equiv(td_mpi *mp, const char *dir)
{
    int n = td_mpi_size(mp);
    run r;
    EXPECT(run_create(&r, BATCH, BATCH / n, 4 * 32) == TD_OK, "%s", td_last_error_message());
    char msg[512];
    td_status st = td_mpi_attach(mp, r.trainer, r.model, 2);
    td_mpi_errmsg(mp, msg, sizeof msg);
    EXPECT(st == TD_OK, "attach: %s", msg);
    if (st != TD_OK) return;
    double dist[STEPS], one[STEPS], resumed[STEPS];
    char mid[512];
    snprintf(mid, sizeof mid, "%s/mid-np%d.tdc", dir, n);
    st = train(r.trainer, 0, STEPS / 2, dist);
    if (st == TD_OK && td_mpi_rank(mp) == 0) st = td_trainer_save(r.trainer, mid);
    if (st == TD_OK) st = train(r.trainer, STEPS / 2, STEPS, dist);
    td_trainer_errmsg(r.trainer, msg, sizeof msg);
    EXPECT(st == TD_OK, "training: %s", msg);
    st = td_mpi_check(mp);
    EXPECT(st == TD_OK, "replicas differ at the end");
    /* Every rank reports the same (global) losses. */
    double lo[STEPS], hi[STEPS];
    MPI_Allreduce(dist, lo, STEPS, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(dist, hi, STEPS, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    for (int s = 0; s < STEPS; s++)
        EXPECT(lo[s] == hi[s], "step %d: ranks report losses %.9g and %.9g", s, lo[s], hi[s]);

    if (td_mpi_rank(mp) == 0) {
        size_t nl = (size_t)2 * SEQ * 258;
        float *a = malloc(nl * sizeof *a), *b = malloc(nl * sizeof *b);
        logits_of(r.model, a);
        /* One process, the whole batch in one pass. */
        run o;
        EXPECT(run_create(&o, BATCH, 0, 4 * 32) == TD_OK, "%s", td_last_error_message());
        EXPECT(train(o.trainer, 0, STEPS, one) == TD_OK, "one process");
        logits_of(o.model, b);
        for (int s = 0; s < STEPS; s++) {
            printf("np %d step %d: loss %.9f, one process %.9f\n", n, s, dist[s], one[s]);
            EXPECT(fabs(dist[s] - one[s]) <= LOSS_RTOL * fabs(one[s]),
                   "step %d: loss %.9g on %d ranks, %.9g in one process", s, dist[s], n, one[s]);
        }
        double d = max_diff(a, b, nl);
        printf("np %d: largest logit difference to one process %.3g\n", n, d);
        EXPECT(d <= LOGIT_ATOL, "logits differ by %g", d);
        run_free(&o);
        /* The checkpoint of N ranks resumes in one process. */
        EXPECT(run_create(&o, BATCH, 0, 4 * 32) == TD_OK, "%s", td_last_error_message());
        EXPECT(td_trainer_resume(o.trainer, mid, TD_RESUME_STRICT) == TD_OK, "resume: %s",
               td_last_error_message());
        EXPECT(train(o.trainer, STEPS / 2, STEPS, resumed) == TD_OK, "resumed");
        logits_of(o.model, b);
        for (int s = STEPS / 2; s < STEPS; s++)
            EXPECT(fabs(dist[s] - resumed[s]) <= LOSS_RTOL * fabs(resumed[s]),
                   "step %d after resume: loss %.9g on %d ranks, %.9g in one process", s,
                   dist[s], n, resumed[s]);
        d = max_diff(a, b, nl);
        printf("np %d: largest logit difference to one process resumed at step %d: %.3g\n", n,
               STEPS / 2, d);
        EXPECT(d <= LOGIT_ATOL, "logits after resume differ by %g", d);
        run_free(&o);
        free(a);
        free(b);
    }
    run_free(&r);
}

/* An allocator that always fails: td_mpi_create reports TD_ERR_NOMEM before
 * any collective call, on every rank alike. */
static void *no_malloc(void *user, size_t size)
{
    (void)user, (void)size;
    return NULL;
}

static void no_free(void *user, void *p)
{
    (void)user;
    free(p);
}

static void mode_badbatch(td_mpi *mp)
{
    td_allocator none = { no_malloc, NULL, no_free, NULL };
    td_mpi *other = (td_mpi *)&none;
    EXPECT(td_mpi_create(MPI_COMM_WORLD, &none, &other) == TD_ERR_NOMEM && other == NULL,
           "td_mpi_create with a failing allocator");
    EXPECT(td_mpi_create(MPI_COMM_WORLD, NULL, NULL) == TD_ERR_INVALID_ARG, "out is NULL");

    int n = td_mpi_size(mp);
    run r;
    EXPECT(run_create(&r, 2 * n + 1, 0, 4 * 32) == TD_OK, "%s", td_last_error_message());
    td_status st = td_mpi_attach(mp, r.trainer, r.model, 0);
    char msg[512];
    td_mpi_errmsg(mp, msg, sizeof msg);
    printf("rank %d: %s\n", g_rank, msg);
    EXPECT(st == TD_ERR_INVALID_ARG && strstr(msg, "not divisible"), "status %d: %s", st, msg);
    run_free(&r);
}

static void mode_badconfig(td_mpi *mp)
{
    int last = td_mpi_size(mp) - 1;
    run r;
    EXPECT(run_create(&r, BATCH, 0, g_rank == last ? 96 : 128) == TD_OK, "%s",
           td_last_error_message());
    td_status st = td_mpi_attach(mp, r.trainer, r.model, 0);
    char msg[512];
    td_mpi_errmsg(mp, msg, sizeof msg);
    printf("rank %d: %s\n", g_rank, msg);
    EXPECT(st == TD_ERR_STATE && strstr(msg, "model configuration"), "status %d: %s", st, msg);
    run_free(&r);
}

static void mode_drift(td_mpi *mp, const char *dir)
{
    int n = td_mpi_size(mp), last = n - 1;
    run r;
    EXPECT(run_create(&r, BATCH, BATCH / n, 4 * 32) == TD_OK, "%s", td_last_error_message());
    td_status st = td_mpi_attach(mp, r.trainer, r.model, 1);
    EXPECT(st == TD_OK, "attach");
    double losses[STEPS];
    char path[512];
    snprintf(path, sizeof path, "%s/drift-np%d.tdc", dir, n);
    st = train(r.trainer, 0, 2, losses);
    if (g_rank == 0) st = td_trainer_save(r.trainer, path);
    MPI_Barrier(MPI_COMM_WORLD);
    if (st == TD_OK) st = train(r.trainer, 2, 4, losses);
    EXPECT(st == TD_OK, "the steps before the drift");
    /* The last rank alone goes back two steps. */
    if (g_rank == last)
        EXPECT(td_trainer_resume(r.trainer, path, TD_RESUME_STRICT) == TD_OK, "resume");
    st = train(r.trainer, 4, 5, losses);
    char msg[512];
    td_trainer_errmsg(r.trainer, msg, sizeof msg);
    char detail[512];
    td_mpi_errmsg(mp, detail, sizeof detail);
    printf("rank %d: %s / %s\n", g_rank, msg, detail);
    EXPECT(st == TD_ERR_STATE && strstr(detail, "drifted") &&
               strstr(detail, "parameters") && strstr(msg, "reduce hook"), "status %d: %s", st, detail);
    run_free(&r);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    if (argc < 3) {
        fprintf(stderr, "usage: test_mpi equiv|badbatch|badconfig|drift DIR\n");
        MPI_Finalize();
        return 2;
    }
    td_mpi *mp = NULL;
    EXPECT(td_mpi_create(MPI_COMM_WORLD, NULL, &mp) == TD_OK, "td_mpi_create");
    if (mp != NULL) {
        if (strcmp(argv[1], "equiv") == 0) mode_equiv(mp, argv[2]);
        else if (strcmp(argv[1], "badbatch") == 0) mode_badbatch(mp);
        else if (strcmp(argv[1], "badconfig") == 0) mode_badconfig(mp);
        else if (strcmp(argv[1], "drift") == 0) mode_drift(mp, argv[2]);
        else EXPECT(0, "unknown mode %s", argv[1]);
    }
    td_mpi_free(mp);
    printf("rank %d: %s\n", g_rank, g_failed ? "FAILED" : "ok");
    MPI_Finalize();
    return g_failed;
}
