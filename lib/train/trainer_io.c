/* Resumable trainer checkpoints (docs/format.md "Trainer checkpoints"): the
 * model, plus the optimizer moments, the step count and the random
 * generator state, so that a resumed run repeats the uninterrupted one bit
 * for bit, and the settings that make it the same run (schedule, batch
 * shape, seed), which a resume checks against the trainer's. */
#include "io/checkpoint.h"
#include "model/model_io.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/mmap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Limits of td_trainer_create's configuration that a file must respect. */
#define MAX_BATCH 65536

static const char *const schedule_kinds[] = {
    [TDI_SCHEDULE_LINEAR] = "linear",     [TDI_SCHEDULE_LOGLINEAR] = "loglinear",
    [TDI_SCHEDULE_COSINE] = "cosine",     [TDI_SCHEDULE_POLYNOMIAL] = "polynomial",
    [TDI_SCHEDULE_FIXED_RATE] = "fixed-rate",
};
#define N_KINDS (sizeof schedule_kinds / sizeof schedule_kinds[0])

static td_status write_state(const td_trainer *t, tdi_ckpt_writer *w)
{
    TDI_TRY(tdi_model_write(t->model, w, TDI_FORMAT_TRAINER, 0));
    tdi_adamw *opt = t->opt;
    uint64_t n = tdi_adamw_size(opt);
    const tdi_schedule *s = &t->schedule;
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.step", tdi_adamw_steps(opt)));
    TDI_TRY(tdi_ckpt_put_u64_array(w, "trainer.rng", t->rng.s, 4));
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.batch_size", t->cfg.batch_size));
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.seq_len", t->cfg.seq_len));
    TDI_TRY(tdi_ckpt_put_u64(w, "trainer.seed", t->cfg.seed));
    TDI_TRY(tdi_ckpt_put_string(w, "schedule.kind", tdi_schedule_kind_name(s->kind)));
    TDI_TRY(tdi_ckpt_put_f64(w, "schedule.eps", s->eps));
    TDI_TRY(tdi_ckpt_put_f64(w, "schedule.power", s->power));
    TDI_TRY(tdi_ckpt_put_f64(w, "schedule.rate", s->rate));
    TDI_TRY(tdi_ckpt_put_f64(w, "schedule.t_min", s->t_min));
    TDI_TRY(tdi_ckpt_put_i64(w, "schedule.bert_corruption", s->bert_corrupt));
    TDI_TRY(tdi_ckpt_add_tensor(w, "opt.m", TDI_DTYPE_F32, 1, &n, tdi_adamw_m(opt), 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "opt.v", TDI_DTYPE_F32, 1, &n, tdi_adamw_v(opt), 0));
    return TD_OK;
}

td_status td_trainer_save(const td_trainer *t, const char *path)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    tdi_ckpt_writer *w;
    TDI_TRY(tdi_ckpt_writer_create(&t->alloc, &w));
    td_status st = write_state(t, w);
    if (st == TD_OK) st = tdi_ckpt_write_file(w, path);
    tdi_ckpt_writer_free(w);
    return st;
}

/* ---------------------------------------------------------------------------
 * Reading: every key validated on its own (TD_ERR_FORMAT or TD_ERR_CORRUPT,
 * naming it), before anything is compared or changed.
 * ------------------------------------------------------------------------- */
typedef struct saved_state {
    tdi_model_config model;
    int64_t step;
    const uint64_t *rng;
    int64_t batch_size, seq_len;
    uint64_t seed;
    tdi_schedule schedule;
    const float *m, *v;
} saved_state;

#define BAD(...) tdi_fail(TD_ERR_FORMAT, "trainer checkpoint: " __VA_ARGS__)

static td_status get_int(const tdi_ckpt *ck, const char *key, int64_t lo, int64_t hi,
                         int64_t *v)
{
    TDI_TRY(tdi_ckpt_get_i64(ck, key, v));
    if (*v < lo || *v > hi)
        return BAD("%s = %lld is outside %lld..%lld", key, (long long)*v, (long long)lo,
                   (long long)hi);
    return TD_OK;
}

/* lo < v < hi; written so that NaN fails. */
static td_status get_real(const tdi_ckpt *ck, const char *key, double lo, double hi, double *v)
{
    TDI_TRY(tdi_ckpt_get_f64(ck, key, v));
    if (!(*v > lo && *v < hi))
        return BAD("%s = %.17g is outside the open interval (%g, %g)", key, *v, lo, hi);
    return TD_OK;
}

static td_status read_schedule(const tdi_ckpt *ck, tdi_schedule *s)
{
    const char *kind;
    TDI_TRY(tdi_ckpt_get_string(ck, "schedule.kind", &kind, NULL));
    size_t k = 0;
    while (k < N_KINDS && strcmp(kind, schedule_kinds[k]) != 0) k++;
    if (k == N_KINDS) return BAD("schedule.kind '%.40s' is not a schedule", kind);
    TDI_TRY(tdi_schedule_init(s, (tdi_schedule_kind)k));
    int64_t bert;
    TDI_TRY(get_real(ck, "schedule.eps", 0.0, 1.0, &s->eps));
    TDI_TRY(get_real(ck, "schedule.power", 0.0, INFINITY, &s->power));
    TDI_TRY(get_real(ck, "schedule.rate", 0.0, 1.0, &s->rate));
    TDI_TRY(get_real(ck, "schedule.t_min", 0.0, 0.5, &s->t_min));
    TDI_TRY(get_int(ck, "schedule.bert_corruption", 0, 1, &bert));
    if (bert && s->kind != TDI_SCHEDULE_FIXED_RATE)
        return BAD("schedule.bert_corruption = 1 needs schedule.kind 'fixed-rate', not '%s'",
                   kind);
    s->bert_corrupt = (int)bert;
    if (tdi_schedule_validate(s) != TD_OK)
        return tdi_fail_context(TD_ERR_FORMAT, "trainer checkpoint: schedule");
    return TD_OK;
}

/* n floats laid out as the parameter buffer: finite, v never negative, the
 * gaps between tensors zero (the optimizer never writes them). */
static td_status read_moments(const tdi_ckpt *ck, const tdi_model *m, const char *name,
                              const float **out)
{
    const tdi_ckpt_tensor *t;
    TDI_TRY(tdi_ckpt_tensor_get(ck, name, TDI_DTYPE_F32, &t));
    if (t->ndim != 1 || t->count != m->n_floats)
        return BAD("tensor %s has %llu values in %u dimensions, %zu expected in 1 (the "
                   "parameter buffer)", name, (unsigned long long)t->count, (unsigned)t->ndim,
                   m->n_floats);
    const float *x = t->data;
    int second = strcmp(name, "opt.v") == 0;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const tdi_tensor *ts = &m->tensors[i];
        size_t end = (size_t)ts->rows * (size_t)ts->cols + ts->offset;
        size_t next = i + 1 < m->n_tensors ? m->tensors[i + 1].offset : m->n_floats;
        for (size_t k = ts->offset; k < end; k++)
            if (!isfinite(x[k]) || (second && x[k] < 0))
                return tdi_fail(TD_ERR_CORRUPT, "trainer checkpoint: %s[%zu] = %g is invalid",
                                name, k, (double)x[k]);
        for (size_t k = end; k < next; k++)
            if (x[k] != 0.0f)
                return tdi_fail(TD_ERR_CORRUPT, "trainer checkpoint: %s[%zu] = %g lies between "
                                "tensors and must be 0", name, k, (double)x[k]);
    }
    *out = x;
    return TD_OK;
}

/* Every metadata key; the tensors follow (their layout depends on the
 * model's configuration). */
static td_status read_state(const tdi_ckpt *ck, saved_state *s)
{
    const char *format = NULL;
    if (tdi_ckpt_get_string(ck, "format", &format, NULL) != TD_OK ||
        strcmp(format, TDI_FORMAT_TRAINER) != 0)
        return BAD("the file is not a trainer checkpoint (metadata key 'format' is '%.40s', "
                   "not '%s'; td_trainer_save writes those)", format ? format : "",
                   TDI_FORMAT_TRAINER);
    TDI_TRY(tdi_model_read_config(ck, &s->model));
    int32_t dtype;
    TDI_TRY(tdi_model_read_dtype(ck, &dtype));
    if (dtype != TDI_WT_F32)
        return BAD("%s = %ld: a trainer checkpoint holds float32 weights", TDI_MODEL_DTYPE_KEY,
                   (long)dtype);
    TDI_TRY(get_int(ck, "trainer.step", 0, INT64_MAX, &s->step));
    size_t n_rng;
    TDI_TRY(tdi_ckpt_get_u64_array(ck, "trainer.rng", &s->rng, &n_rng));
    if (n_rng != 4 || (s->rng[0] | s->rng[1] | s->rng[2] | s->rng[3]) == 0)
        return BAD("trainer.rng is not a generator state (4 numbers, not all 0)");
    TDI_TRY(get_int(ck, "trainer.batch_size", 1, MAX_BATCH, &s->batch_size));
    TDI_TRY(get_int(ck, "trainer.seq_len", 1, s->model.max_seq_len, &s->seq_len));
    if (s->batch_size * s->seq_len > INT32_MAX / 4)
        return BAD("trainer.batch_size x trainer.seq_len = %lld is too large",
                   (long long)(s->batch_size * s->seq_len));
    TDI_TRY(tdi_ckpt_get_u64(ck, "trainer.seed", &s->seed));
    return read_schedule(ck, &s->schedule);
}

/* ---------------------------------------------------------------------------
 * Comparing: the first field in which the checkpoint and the trainer
 * differ, unless the caller allowed it.
 * ------------------------------------------------------------------------- */
static td_status differs(const char *path, const char *key, const char *flag,
                         const char *saved, const char *mine)
{
    return tdi_fail(TD_ERR_STATE, "td_trainer_resume: '%s' differs from the trainer in %s: the "
                    "checkpoint has %s, the trainer %s (%s%s)", path, key, saved, mine,
                    flag ? flag : "the model's configuration cannot differ",
                    flag ? " accepts that" : "");
}

#define DIFFERS(path, key, flag, fmt, saved, mine)                                         \
    do {                                                                                 \
        char a_[64], b_[64];                                                             \
        snprintf(a_, sizeof a_, fmt, saved);                                             \
        snprintf(b_, sizeof b_, fmt, mine);                                              \
        return differs(path, key, flag, a_, b_);                                         \
    } while (0)

static td_status compare_schedule(const char *path, const tdi_schedule *a,
                                  const tdi_schedule *b)
{
    const char *flag = "TD_RESUME_ALLOW_SCHEDULE";
    if (a->kind != b->kind)
        DIFFERS(path, "schedule.kind", flag, "'%s'", tdi_schedule_kind_name(a->kind),
                tdi_schedule_kind_name(b->kind));
    /* Only the parameters of the kind mean anything. */
    if (a->kind == TDI_SCHEDULE_LOGLINEAR && a->eps != b->eps)
        DIFFERS(path, "schedule.eps", flag, "%.17g", a->eps, b->eps);
    if (a->kind == TDI_SCHEDULE_POLYNOMIAL && a->power != b->power)
        DIFFERS(path, "schedule.power", flag, "%.17g", a->power, b->power);
    if (a->kind == TDI_SCHEDULE_FIXED_RATE && a->rate != b->rate)
        DIFFERS(path, "schedule.rate", flag, "%.17g", a->rate, b->rate);
    if (a->kind == TDI_SCHEDULE_FIXED_RATE && a->bert_corrupt != b->bert_corrupt)
        DIFFERS(path, "schedule.bert_corruption", flag, "%d", a->bert_corrupt,
                b->bert_corrupt);
    if (a->t_min != b->t_min)
        DIFFERS(path, "schedule.t_min", flag, "%.17g", a->t_min, b->t_min);
    return TD_OK;
}

static td_status compare_model(const td_trainer *t, const char *path, const saved_state *s)
{
    const tdi_model_config *mc = &t->model->m->cfg;
    for (size_t i = 0; i < TDI_MODEL_N_FIELDS; i++) {
        const tdi_model_field *f = &tdi_model_fields[i];
        int32_t a = tdi_model_field_get(&s->model, f), b = tdi_model_field_get(mc, f);
        if (a != b) DIFFERS(path, f->key, NULL, "%ld", (long)a, (long)b);
    }
    if (s->model.layer_norm_eps != mc->layer_norm_eps)
        DIFFERS(path, TDI_MODEL_EPS_KEY, NULL, "%.9g", (double)s->model.layer_norm_eps,
                (double)mc->layer_norm_eps);
    return TD_OK;
}

static td_status compare_run(const td_trainer *t, const char *path, const saved_state *s,
                             uint32_t flags)
{
    if (!(flags & TD_RESUME_ALLOW_SCHEDULE))
        TDI_TRY(compare_schedule(path, &s->schedule, &t->schedule));
    if (!(flags & TD_RESUME_ALLOW_BATCH) && s->batch_size != t->cfg.batch_size)
        DIFFERS(path, "trainer.batch_size", "TD_RESUME_ALLOW_BATCH", "%lld",
                (long long)s->batch_size, (long long)t->cfg.batch_size);
    if (!(flags & TD_RESUME_ALLOW_SEQ_LEN) && s->seq_len != t->cfg.seq_len)
        DIFFERS(path, "trainer.seq_len", "TD_RESUME_ALLOW_SEQ_LEN", "%lld",
                (long long)s->seq_len, (long long)t->cfg.seq_len);
    if (!(flags & TD_RESUME_ALLOW_SEED) && s->seed != t->cfg.seed)
        DIFFERS(path, "trainer.seed", "TD_RESUME_ALLOW_SEED", "%llu",
                (unsigned long long)s->seed, (unsigned long long)t->cfg.seed);
    return TD_OK;
}

/* Validate and compare everything, then change the trainer: nothing after
 * the checks can fail, so a refused file changes nothing. The model's
 * configuration is compared first because the tensors' layout follows from
 * it; the file is then validated completely before the settings that the
 * caller may allow to differ are compared. */
static td_status resume_from(td_trainer *t, const char *path, const tdi_ckpt *ck,
                             uint32_t flags)
{
    saved_state s;
    memset(&s, 0, sizeof s);
    tdi_model *m = t->model->m;
    TDI_TRY(read_state(ck, &s));
    TDI_TRY(compare_model(t, path, &s));
    TDI_TRY(read_moments(ck, m, "opt.m", &s.m));
    TDI_TRY(read_moments(ck, m, "opt.v", &s.v));
    TDI_TRY(tdi_model_check_params(ck, m));
    TDI_TRY(tdi_model_check_tokenizer(ck, &m->cfg, &t->alloc)); /* not restored: checked */
    TDI_TRY(compare_run(t, path, &s, flags));

    TDI_TRY(tdi_model_read_params(ck, m));        /* checked: cannot fail */
    TDI_TRY(tdi_adamw_set_steps(t->opt, s.step)); /* step >= 0: cannot fail */
    size_t bytes = m->n_floats * sizeof(float);
    memcpy(tdi_adamw_m(t->opt), s.m, bytes);
    memcpy(tdi_adamw_v(t->opt), s.v, bytes);
    /* Another seed (allowed by the caller) keeps the trainer's own stream. */
    if (s.seed == t->cfg.seed) memcpy(t->rng.s, s.rng, sizeof t->rng.s);
    return TD_OK;
}

td_status td_trainer_resume(td_trainer *t, const char *path, uint32_t flags)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    const uint32_t known = TD_RESUME_ALLOW_SCHEDULE | TD_RESUME_ALLOW_BATCH |
                           TD_RESUME_ALLOW_SEQ_LEN | TD_RESUME_ALLOW_SEED;
    TDI_CHECK_ARG((flags & ~known) == 0, "%s: unknown flags 0x%x", __func__,
                  (unsigned)(flags & ~known));
    /* Mapped when possible: the moments and parameters are copied once, from
     * the page cache, into the trainer. */
    tdi_mapping map = { NULL, 0 };
    tdi_ckpt *ck = NULL;
    td_status st;
    if (tdi_map_file(path, &map))
        st = tdi_ckpt_read_borrowed(&t->alloc, map.addr, map.size, path, &ck);
    else
        st = tdi_ckpt_read_file(&t->alloc, path, &ck);
    if (st == TD_OK) {
        st = resume_from(t, path, ck, flags);
        if (st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT)
            st = tdi_fail_context(st, "checkpoint '%s'", path);
    }
    tdi_ckpt_free(ck);
    tdi_unmap(&map);
    return st;
}

td_status td_trainer_get_step(const td_trainer *t, int64_t *step)
{
    TDI_ENTER(t);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(step);
    *step = tdi_adamw_steps(t->opt);
    return TD_OK;
}
