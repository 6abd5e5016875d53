#include "diffusion/schedule.h"

#include <math.h>

#include "util/error.h"

#define TDI_PI 3.14159265358979323846

/* Ranges are written so that NaN fails every check. */
static int in_open_unit(double x) { return x > 0.0 && x < 1.0; }

static td_status check_kind(const tdi_schedule *s, tdi_schedule_kind kind, const char *func,
                            const char *param)
{
    if (s->kind != kind)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: %s applies only to a %s schedule, not %s",
                        func, param, tdi_schedule_kind_name(kind),
                        tdi_schedule_kind_name(s->kind));
    return TD_OK;
}

static td_status check_eps(double eps, const char *func)
{
    TDI_CHECK_ARG(in_open_unit(eps), "%s: eps = %g must lie in (0, 1)", func, eps);
    return TD_OK;
}

static td_status check_power(double k, const char *func)
{
    TDI_CHECK_ARG(isfinite(k) && k > 0.0, "%s: power k = %g must be finite and > 0", func, k);
    return TD_OK;
}

static td_status check_rate(double r, const char *func)
{
    TDI_CHECK_ARG(in_open_unit(r), "%s: rate r = %g must lie in (0, 1)", func, r);
    return TD_OK;
}

static td_status check_t_min(double t_min, const char *func)
{
    /* Above 0.5 the lower half of the time range would never be trained. */
    TDI_CHECK_ARG(t_min > 0.0 && t_min < 0.5, "%s: t_min = %g must lie in (0, 0.5)", func,
                  t_min);
    return TD_OK;
}

const char *tdi_schedule_kind_name(tdi_schedule_kind kind)
{
    switch (kind) {
    case TDI_SCHEDULE_LINEAR:     return "linear";
    case TDI_SCHEDULE_LOGLINEAR:  return "loglinear";
    case TDI_SCHEDULE_COSINE:     return "cosine";
    case TDI_SCHEDULE_POLYNOMIAL: return "polynomial";
    case TDI_SCHEDULE_FIXED_RATE: return "fixed-rate";
    }
    return "unknown";
}

static int kind_is_known(tdi_schedule_kind kind)
{
    return kind == TDI_SCHEDULE_LINEAR || kind == TDI_SCHEDULE_LOGLINEAR ||
           kind == TDI_SCHEDULE_COSINE || kind == TDI_SCHEDULE_POLYNOMIAL ||
           kind == TDI_SCHEDULE_FIXED_RATE;
}

td_status tdi_schedule_init(tdi_schedule *s, tdi_schedule_kind kind)
{
    TDI_CHECK_PTR(s);
    TDI_CHECK_ARG(kind_is_known(kind), "%s: unknown schedule kind %d", __func__, (int)kind);
    s->kind = kind;
    s->eps = TDI_SCHEDULE_DEFAULT_EPS;
    s->power = TDI_SCHEDULE_DEFAULT_POWER;
    s->rate = TDI_SCHEDULE_DEFAULT_RATE;
    s->t_min = TDI_SCHEDULE_DEFAULT_T_MIN;
    s->bert_corrupt = 0;
    return TD_OK;
}

td_status tdi_schedule_set_eps(tdi_schedule *s, double eps)
{
    TDI_CHECK_PTR(s);
    TDI_TRY(check_kind(s, TDI_SCHEDULE_LOGLINEAR, __func__, "eps"));
    TDI_TRY(check_eps(eps, __func__));
    s->eps = eps;
    return TD_OK;
}

td_status tdi_schedule_set_power(tdi_schedule *s, double k)
{
    TDI_CHECK_PTR(s);
    TDI_TRY(check_kind(s, TDI_SCHEDULE_POLYNOMIAL, __func__, "power"));
    TDI_TRY(check_power(k, __func__));
    s->power = k;
    return TD_OK;
}

td_status tdi_schedule_set_rate(tdi_schedule *s, double r)
{
    TDI_CHECK_PTR(s);
    TDI_TRY(check_kind(s, TDI_SCHEDULE_FIXED_RATE, __func__, "rate"));
    TDI_TRY(check_rate(r, __func__));
    s->rate = r;
    return TD_OK;
}

td_status tdi_schedule_set_bert_corrupt(tdi_schedule *s, int on)
{
    TDI_CHECK_PTR(s);
    /* Random-token replacement leaves the absorbing process, so the ELBO
     * weights of a diffusion schedule would no longer bound anything. */
    TDI_TRY(check_kind(s, TDI_SCHEDULE_FIXED_RATE, __func__, "BERT 80/10/10 corruption"));
    TDI_CHECK_ARG(on == 0 || on == 1, "%s: on = %d must be 0 or 1", __func__, on);
    s->bert_corrupt = on;
    return TD_OK;
}

td_status tdi_schedule_set_t_min(tdi_schedule *s, double t_min)
{
    TDI_CHECK_PTR(s);
    TDI_TRY(check_t_min(t_min, __func__));
    s->t_min = t_min;
    return TD_OK;
}

td_status tdi_schedule_validate(const tdi_schedule *s)
{
    TDI_CHECK_PTR(s);
    TDI_CHECK_ARG(kind_is_known(s->kind), "%s: unknown schedule kind %d", __func__,
                  (int)s->kind);
    TDI_TRY(check_t_min(s->t_min, __func__));
    switch (s->kind) {
    case TDI_SCHEDULE_LOGLINEAR:  TDI_TRY(check_eps(s->eps, __func__)); break;
    case TDI_SCHEDULE_POLYNOMIAL: TDI_TRY(check_power(s->power, __func__)); break;
    case TDI_SCHEDULE_FIXED_RATE: TDI_TRY(check_rate(s->rate, __func__)); break;
    case TDI_SCHEDULE_LINEAR:
    case TDI_SCHEDULE_COSINE:     break;
    }
    TDI_CHECK_ARG(s->bert_corrupt == 0 ||
                      (s->bert_corrupt == 1 && s->kind == TDI_SCHEDULE_FIXED_RATE),
                  "%s: BERT 80/10/10 corruption (%d) needs a fixed-rate schedule, not %s",
                  __func__, s->bert_corrupt, tdi_schedule_kind_name(s->kind));
    return TD_OK;
}

/* NaN passes through (every comparison with it is false). */
static double clamp01(double t)
{
    return t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
}

double tdi_schedule_mask_prob(const tdi_schedule *s, double t)
{
    t = clamp01(t);
    switch (s->kind) {
    case TDI_SCHEDULE_LINEAR:
    case TDI_SCHEDULE_FIXED_RATE: return t;
    case TDI_SCHEDULE_LOGLINEAR:  return (1.0 - s->eps) * t;
    case TDI_SCHEDULE_POLYNOMIAL: return pow(t, s->power);
    case TDI_SCHEDULE_COSINE: {
        /* 1 − cos x = 2 sin²(x/2): no cancellation for small t. */
        double h = sin(0.25 * TDI_PI * t);
        return 2.0 * h * h;
    }
    }
    return NAN;
}

double tdi_schedule_alpha(const tdi_schedule *s, double t)
{
    t = clamp01(t);
    /* cos directly: 1 − mask_prob would lose its last bits near t = 1. */
    if (s->kind == TDI_SCHEDULE_COSINE) return cos(0.5 * TDI_PI * t);
    return 1.0 - tdi_schedule_mask_prob(s, t);
}

double tdi_schedule_alpha_deriv(const tdi_schedule *s, double t)
{
    t = clamp01(t);
    switch (s->kind) {
    case TDI_SCHEDULE_LINEAR:
    case TDI_SCHEDULE_FIXED_RATE: return -1.0;
    case TDI_SCHEDULE_LOGLINEAR:  return -(1.0 - s->eps);
    case TDI_SCHEDULE_POLYNOMIAL:
        if (t == 0.0) return s->power < 1.0 ? -INFINITY : (s->power == 1.0 ? -1.0 : 0.0);
        return -s->power * pow(t, s->power - 1.0);
    case TDI_SCHEDULE_COSINE:     return -0.5 * TDI_PI * sin(0.5 * TDI_PI * t);
    }
    return NAN;
}

static double weight_floor(const tdi_schedule *s)
{
    if (s->kind == TDI_SCHEDULE_FIXED_RATE && s->rate < s->t_min) return s->rate;
    return s->t_min;
}

double tdi_schedule_weight(const tdi_schedule *s, double t)
{
    double lo = weight_floor(s);
    t = t < lo ? lo : (t > 1.0 ? 1.0 : t);
    switch (s->kind) {
    case TDI_SCHEDULE_LINEAR:
    case TDI_SCHEDULE_FIXED_RATE:
    case TDI_SCHEDULE_LOGLINEAR:  return 1.0 / t; /* (1 − ε) cancels exactly */
    case TDI_SCHEDULE_POLYNOMIAL: return s->power / t;
    case TDI_SCHEDULE_COSINE:
        /* (π/2) sin x / (1 − cos x) with x = πt/2 is (π/2) cot(x/2). */
        return 0.5 * TDI_PI / tan(0.25 * TDI_PI * t);
    }
    return NAN;
}

double tdi_schedule_reveal_prob(const tdi_schedule *s, double t, double s_time)
{
    double mt = tdi_schedule_mask_prob(s, t);
    double ms = tdi_schedule_mask_prob(s, s_time);
    if (!(mt > 0.0)) return 1.0;
    if (ms >= mt) return 0.0;
    return (mt - ms) / mt;
}

td_status tdi_stratified_uniforms(tdi_rng *rng, size_t n, double *u)
{
    TDI_CHECK_PTR(rng);
    TDI_CHECK_PTR(u);
    TDI_CHECK_ARG(n > 0, "%s: n must be > 0", __func__);
    double nd = (double)n;
    /* Split u0·n into stratum j and offset f once, then place sample i in
     * stratum (i + j) mod n with the same offset: the same points as
     * (u0 + i/n) mod 1, but the stratum of each is exact, not rounded. */
    double scaled = tdi_rng_f64(rng) * nd;
    double jd = floor(scaled);
    double f = scaled - jd;
    size_t j = (size_t)jd;
    if (j >= n) { j = n - 1; f = 0.0; } /* u0·n rounded up to n */
    for (size_t i = 0; i < n; i++) {
        size_t m = (i + j) % n;
        double v = ((double)m + f) / nd;
        /* m + f may round up to m + 1; keep the point inside its stratum. */
        double upper = (double)(m + 1) / nd;
        if (v >= upper) v = nextafter(upper, 0.0);
        u[i] = v;
    }
    return TD_OK;
}

td_status tdi_schedule_draw_times(const tdi_schedule *s, tdi_rng *rng, size_t n, double *t)
{
    TDI_CHECK_PTR(s);
    TDI_CHECK_PTR(t);
    TDI_CHECK_ARG(n > 0, "%s: n must be > 0", __func__);
    if (s->kind == TDI_SCHEDULE_FIXED_RATE) {
        for (size_t i = 0; i < n; i++) t[i] = s->rate;
        return TD_OK;
    }
    TDI_CHECK_PTR(rng);
    TDI_TRY(tdi_stratified_uniforms(rng, n, t));
    /* An affine map, not a clip: times stay uniform on [t_min, 1) and keep
     * one per stratum, with no atom of probability t_min at t_min. */
    for (size_t i = 0; i < n; i++) t[i] = s->t_min + (1.0 - s->t_min) * t[i];
    return TD_OK;
}
