/* Noise schedules of absorbing-state diffusion (docs/diffusion.md).
 *
 * A schedule gives the probability α(t) that a token is still itself at
 * time t ∈ [0, 1], its derivative α′(t), the ELBO weight
 * w(t) = −α′(t) / (1 − α(t)), and the distribution of training times.
 *
 * MLM is not a separate code path: a fixed-rate schedule is the linear
 * schedule (α = 1 − t) whose time distribution is a point mass at the rate
 * r, so that a token is masked with probability r and its loss is weighted
 * by w(r) = 1/r — in expectation, the mean cross-entropy over masked tokens.
 *
 * A tdi_schedule is a small value: no allocation, no hidden state, safe to
 * copy and to read from many threads. Its evaluation functions are pure.
 * Configure it with tdi_schedule_init() and the setters, which validate
 * their argument and leave the schedule unchanged when they fail. */
#ifndef TDI_SCHEDULE_H
#define TDI_SCHEDULE_H

#include <stddef.h>

#include "textdiff/textdiff.h"
#include "util/rng.h"

typedef enum tdi_schedule_kind {
    TDI_SCHEDULE_LINEAR     = 0, /* α = 1 − t */
    TDI_SCHEDULE_LOGLINEAR  = 1, /* α = 1 − (1 − ε) t          (MDLM) */
    TDI_SCHEDULE_COSINE     = 2, /* α = cos(π t / 2) */
    TDI_SCHEDULE_POLYNOMIAL = 3, /* α = 1 − t^k, k > 0 */
    TDI_SCHEDULE_FIXED_RATE = 4  /* linear α, every time equal to r (MLM) */
} tdi_schedule_kind;

#define TDI_SCHEDULE_DEFAULT_EPS   1e-3
#define TDI_SCHEDULE_DEFAULT_POWER 2.0
#define TDI_SCHEDULE_DEFAULT_RATE  0.15
#define TDI_SCHEDULE_DEFAULT_T_MIN 1e-3

typedef struct tdi_schedule {
    tdi_schedule_kind kind;
    double eps;        /* log-linear: α(1) = ε, in (0, 1) */
    double power;      /* polynomial: k, finite and > 0 */
    double rate;       /* fixed-rate: r, in (0, 1) */
    double t_min;      /* lower end of training times and of w's argument, in (0, 0.5) */
    int bert_corrupt;  /* fixed-rate only: BERT's 80/10/10 rule for selected tokens */
} tdi_schedule;

/* Set `*s` to `kind` with the defaults above (BERT corruption off). */
td_status tdi_schedule_init(tdi_schedule *s, tdi_schedule_kind kind);

/* Parameter setters. Each rejects a value out of range, or a parameter that
 * the schedule's kind does not have, with TD_ERR_INVALID_ARG. */
td_status tdi_schedule_set_eps(tdi_schedule *s, double eps);       /* log-linear */
td_status tdi_schedule_set_power(tdi_schedule *s, double k);       /* polynomial */
td_status tdi_schedule_set_rate(tdi_schedule *s, double r);        /* fixed-rate */
td_status tdi_schedule_set_bert_corrupt(tdi_schedule *s, int on);  /* fixed-rate */
td_status tdi_schedule_set_t_min(tdi_schedule *s, double t_min);   /* any kind */

/* Check every field of a schedule filled in by other means (a checkpoint). */
td_status tdi_schedule_validate(const tdi_schedule *s);

/* "linear", "loglinear", "cosine", "polynomial", "fixed-rate" or "unknown". */
const char *tdi_schedule_kind_name(tdi_schedule_kind kind);

/* α(t) and 1 − α(t) on [0, 1], exact at both ends: α(0) = 1 and
 * 1 − α(0) = 0 for every kind (no clamping to t_min here, so that a sampler
 * that reaches t = 0 reveals everything). t outside [0, 1] is clamped to it;
 * NaN gives NaN. 1 − α is computed without cancellation, so it keeps its
 * relative precision for small t. */
double tdi_schedule_alpha(const tdi_schedule *s, double t);
double tdi_schedule_mask_prob(const tdi_schedule *s, double t);

/* α′(t) on [0, 1] (t clamped to it), exact: at t = 0 it is −∞ for a
 * polynomial schedule with k < 1, finite for every other case. */
double tdi_schedule_alpha_deriv(const tdi_schedule *s, double t);

/* The ELBO weight w(t) = −α′(t) / (1 − α(t)), which diverges like 1/t at
 * t = 0. It is evaluated at max(t, t_lo), where t_lo = t_min for the
 * diffusion kinds and min(t_min, r) for fixed-rate (so that w(r) = 1/r for
 * every valid r), and t is clamped to at most 1. Computed in closed form:
 * linear, log-linear 1/t; polynomial k/t; cosine (π/2)·cot(π t/4). */
double tdi_schedule_weight(const tdi_schedule *s, double t);

/* Probability that a position masked at time t is revealed by time s ≤ t:
 * (α(s) − α(t)) / (1 − α(t)), computed from 1 − α to avoid cancellation.
 * Exactly 1 at s = 0 and 0 at s = t; 1 when t = 0 (nothing is masked). */
double tdi_schedule_reveal_prob(const tdi_schedule *s, double t, double s_time);

/* B stratified uniforms: u0 ~ U[0, 1) once, then u_i = (u0 + i/B) mod 1,
 * so that each of the B bins [j/B, (j+1)/B) holds exactly one of them.
 * Consumes one draw from `rng`. */
td_status tdi_stratified_uniforms(tdi_rng *rng, size_t n, double *u);

/* The training times of a batch of B sequences, t[0..B-1]. Diffusion kinds:
 * the stratified uniforms above mapped affinely onto [t_min, 1],
 * t_i = t_min + (1 − t_min)·u_i (uniform there, still one per stratum).
 * Fixed-rate: every t_i = r; `rng` is not used and may be NULL. */
td_status tdi_schedule_draw_times(const tdi_schedule *s, tdi_rng *rng, size_t n, double *t);

/* The schedule inside a public handle (lib/diffusion/schedule_api.c). */
struct td_schedule;
const tdi_schedule *tdi_schedule_of(const struct td_schedule *s);

#endif
