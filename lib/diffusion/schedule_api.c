/* The public schedule handle over tdi_schedule. */
#include "diffusion/schedule.h"
#include "util/alloc.h"
#include "util/config.h"
#include "util/error.h"


struct td_schedule {
    tdi_errslot err;
    td_allocator alloc;
    tdi_schedule s;
};

/* The size of td_schedule_config in 1.0: smaller structs are refused. */
#define SCHEDULE_CONFIG_V1 48

/* The public view of a validated schedule. */
static td_schedule_config public_config(const tdi_schedule *s)
{
    td_schedule_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.kind = (int32_t)s->kind;
    c.eps = s->eps;
    c.power = s->power;
    c.rate = s->rate;
    c.t_min = s->t_min;
    c.bert_corruption = s->bert_corrupt;
    return c;
}

td_status td_schedule_config_init(td_schedule_config *cfg, size_t size, td_schedule_kind kind)
{
    TDI_ENTER_NONE();
    tdi_schedule s;
    if ((int)kind < TD_SCHEDULE_LINEAR || (int)kind > TD_SCHEDULE_FIXED_RATE)
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: unknown schedule kind %d", __func__, (int)kind);
    TDI_TRY(tdi_schedule_init(&s, (tdi_schedule_kind)kind));
    td_schedule_config c = public_config(&s);
    return tdi_struct_init(cfg, size, &c, sizeof c, SCHEDULE_CONFIG_V1, __func__);
}

/* Build a validated tdi_schedule; parameters the kind lacks are ignored. */
static td_status schedule_from_config(const td_schedule_config *c, tdi_schedule *s)
{
    if (c->kind < TD_SCHEDULE_LINEAR || c->kind > TD_SCHEDULE_FIXED_RATE)
        return tdi_fail(TD_ERR_INVALID_ARG, "td_schedule_create: unknown cfg->kind %d",
                        (int)c->kind);
    TDI_TRY(tdi_schedule_init(s, (tdi_schedule_kind)c->kind));
    switch (c->kind) {
    case TD_SCHEDULE_LOGLINEAR:  TDI_TRY(tdi_schedule_set_eps(s, c->eps)); break;
    case TD_SCHEDULE_POLYNOMIAL: TDI_TRY(tdi_schedule_set_power(s, c->power)); break;
    case TD_SCHEDULE_FIXED_RATE:
        TDI_TRY(tdi_schedule_set_rate(s, c->rate));
        TDI_TRY(tdi_schedule_set_bert_corrupt(s, c->bert_corruption));
        break;
    default: break;
    }
    if (c->kind != TD_SCHEDULE_FIXED_RATE && c->bert_corruption)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "td_schedule_create: cfg->bert_corruption needs TD_SCHEDULE_FIXED_RATE");
    TDI_TRY(tdi_schedule_set_t_min(s, c->t_min));
    return tdi_schedule_validate(s);
}

td_status td_schedule_create(const td_schedule_config *cfg, const td_allocator *alloc,
                             td_schedule **out)
{
    TDI_ENTER_NONE();
    TDI_CHECK_PTR(out);
    *out = NULL;
    TDI_CHECK_PTR(cfg);
    tdi_schedule dflt;
    TDI_TRY(tdi_schedule_init(&dflt, TDI_SCHEDULE_LINEAR));
    td_schedule_config c = public_config(&dflt);
    TDI_TRY(tdi_struct_in(&c, sizeof c, cfg, SCHEDULE_CONFIG_V1, __func__, "cfg"));
    TDI_CHECK_ARG(c.reserved0 == 0, "%s: cfg->reserved0 must be 0", __func__);
    td_allocator a;
    TDI_TRY(tdi_allocator_init(&a, alloc));
    tdi_schedule s;
    TDI_TRY(schedule_from_config(&c, &s));
    td_schedule *h = tdi_malloc(&a, sizeof *h);
    if (h == NULL) return tdi_nomem(__func__, sizeof *h);
    tdi_errslot_init(&h->err);
    h->alloc = a;
    h->s = s;
    *out = h;
    return TD_OK;
}

void td_schedule_free(td_schedule *s)
{
    if (s == NULL) return;
    tdi_errslot_destroy(&s->err);
    td_allocator a = s->alloc;
    tdi_free(&a, s);
}

size_t td_schedule_errmsg(const td_schedule *s, char *buf, size_t cap)
{
    return tdi_errslot_copy(s != NULL ? &s->err : NULL, buf, cap);
}

td_status td_schedule_get_config(const td_schedule *s, td_schedule_config *cfg)
{
    TDI_ENTER(s);
    TDI_CHECK_PTR(s);
    TDI_CHECK_PTR(cfg);
    TDI_TRY(tdi_struct_size_check(cfg->struct_size, SCHEDULE_CONFIG_V1, __func__, "cfg"));
    td_schedule_config c = public_config(&s->s);
    tdi_struct_out(cfg, cfg->struct_size, &c, sizeof c);
    return TD_OK;
}

const tdi_schedule *tdi_schedule_of(const td_schedule *s) { return &s->s; }

static td_status check_time(const td_schedule *s, double t, const void *out, const char *func)
{
    if (s == NULL) return tdi_fail(TD_ERR_INVALID_ARG, "%s: s is NULL", func);
    if (out == NULL) return tdi_fail(TD_ERR_INVALID_ARG, "%s: output pointer is NULL", func);
    if (!(t >= 0.0 && t <= 1.0))
        return tdi_fail(TD_ERR_INVALID_ARG, "%s: t = %g is outside [0, 1]", func, t);
    return TD_OK;
}

td_status td_schedule_alpha(const td_schedule *s, double t, double *alpha)
{
    TDI_ENTER(s);
    TDI_TRY(check_time(s, t, alpha, __func__));
    *alpha = tdi_schedule_alpha(&s->s, t);
    return TD_OK;
}

td_status td_schedule_alpha_deriv(const td_schedule *s, double t, double *deriv)
{
    TDI_ENTER(s);
    TDI_TRY(check_time(s, t, deriv, __func__));
    *deriv = tdi_schedule_alpha_deriv(&s->s, t);
    return TD_OK;
}

td_status td_schedule_weight(const td_schedule *s, double t, double *weight)
{
    TDI_ENTER(s);
    TDI_TRY(check_time(s, t, weight, __func__));
    *weight = tdi_schedule_weight(&s->s, t);
    return TD_OK;
}
