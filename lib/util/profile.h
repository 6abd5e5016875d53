/* Opt-in time accounting of a training step, for the benchmark and for
 * anyone tuning the library: wall-clock nanoseconds per phase of the step
 * (forward, backward, optimizer) and, inside each phase, the time spent in
 * the matrix products and in attention. Everything else in a phase is its
 * total minus those two.
 *
 * It is always compiled in and costs one predictable branch per timed call
 * when no profile is attached (every function below returns at once for a
 * NULL profile, without reading the clock). A profile is attached to a
 * trainer with tdi_trainer_set_profile(); the trainer hands it to its
 * workspace, whose forward and backward passes time their kernels.
 *
 * What each category holds:
 *   MATMUL     the linear layers as called (the cblas_sgemm plus the bias
 *              and residual folded into its output, and the bias-gradient
 *              column sums in backward) and the output head's product;
 *   ATTENTION  RoPE and multi-head attention: the per-head score and value
 *              products and the softmax, forward and backward;
 *   the rest   embedding, layer norms, GELU, corruption, cross-entropy,
 *              gathering rows, zeroing gradients, AdamW.
 */
#ifndef TDI_PROFILE_H
#define TDI_PROFILE_H

#include <stdint.h>
#include <time.h>

typedef enum tdi_prof_phase {
    TDI_PROF_FORWARD = 0,   /* corruption, forward, logits, loss and its gradient */
    TDI_PROF_BACKWARD = 1,  /* zeroing the gradients, backward through the network */
    TDI_PROF_OPTIMIZER = 2, /* clipping and the AdamW update */
    TDI_PROF_N_PHASES = 3
} tdi_prof_phase;

typedef enum tdi_prof_kind {
    TDI_PROF_TOTAL = 0,     /* the whole phase */
    TDI_PROF_MATMUL = 1,
    TDI_PROF_ATTENTION = 2,
    TDI_PROF_N_KINDS = 3
} tdi_prof_kind;

typedef struct tdi_profile {
    uint64_t ns[TDI_PROF_N_PHASES][TDI_PROF_N_KINDS]; /* accumulated over steps */
    int64_t steps;                                    /* completed steps timed */
    int32_t phase;                                    /* where kernel times go now */
    /* The clock, read on the trainer's thread only; NULL (a zeroed profile):
     * CLOCK_MONOTONIC in nanoseconds. Any non-decreasing counter that never
     * returns 0 will do: the tests count clock reads with it, so that what
     * they assert does not depend on how busy the machine is. */
    uint64_t (*clock)(void);
} tdi_profile;

static inline uint64_t tdi_prof_clock(const tdi_profile *p)
{
    if (p->clock != NULL) return p->clock();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A start mark: the clock, or 0 without a profile. */
static inline uint64_t tdi_prof_mark(const tdi_profile *p)
{
    return p != NULL ? tdi_prof_clock(p) : 0;
}

/* Adds the time since `mark` to `kind` of the current phase. */
static inline void tdi_prof_add(tdi_profile *p, tdi_prof_kind kind, uint64_t mark)
{
    if (p != NULL) p->ns[p->phase][kind] += tdi_prof_clock(p) - mark;
}

/* Enters `phase` (kernel times go there from now on) and returns its mark;
 * tdi_prof_phase_end adds the elapsed time to the phase's total. A phase
 * may be entered several times in a step. */
static inline uint64_t tdi_prof_phase_begin(tdi_profile *p, tdi_prof_phase phase)
{
    if (p == NULL) return 0;
    p->phase = (int32_t)phase;
    return tdi_prof_clock(p);
}

static inline void tdi_prof_phase_end(tdi_profile *p, uint64_t mark)
{
    tdi_prof_add(p, TDI_PROF_TOTAL, mark);
}

/* Runs `call` and charges its time to `kind`:
 *   TDI_PROF_TIME(ws->prof, TDI_PROF_MATMUL, tdi_linear_forward(...)); */
#define TDI_PROF_TIME(prof, kind, call)                    \
    do {                                                   \
        uint64_t tdi_prof_mark_ = tdi_prof_mark(prof);     \
        call;                                              \
        tdi_prof_add((prof), (kind), tdi_prof_mark_);      \
    } while (0)

#endif
