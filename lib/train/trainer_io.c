/* Resumable trainer checkpoints: the model, plus the optimizer moments, the
 * step count and the random generator state, so that a resumed run repeats
 * the uninterrupted one bit for bit. */
#include "io/checkpoint.h"
#include "model/model_io.h"
#include "train/trainer.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

static td_status write_state(const td_trainer *t, tdi_ckpt_writer *w)
{
    TDI_TRY(tdi_model_write(t->model, w, TDI_FORMAT_TRAINER, 0));
    tdi_adamw *opt = t->opt;
    uint64_t n = tdi_adamw_size(opt);
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.step", tdi_adamw_steps(opt)));
    TDI_TRY(tdi_ckpt_put_u64_array(w, "trainer.rng", t->rng.s, 4));
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.batch_size", t->cfg.batch_size));
    TDI_TRY(tdi_ckpt_put_i64(w, "trainer.seq_len", t->cfg.seq_len));
    TDI_TRY(tdi_ckpt_put_u64(w, "trainer.seed", t->cfg.seed));
    TDI_TRY(tdi_ckpt_put_string(w, "schedule.kind", tdi_schedule_kind_name(t->schedule.kind)));
    double sched[4] = { t->schedule.eps, t->schedule.power, t->schedule.rate, t->schedule.t_min };
    TDI_TRY(tdi_ckpt_put_f64_array(w, "schedule.eps_power_rate_tmin", sched, 4));
    TDI_TRY(tdi_ckpt_add_tensor(w, "opt.m", TDI_DTYPE_F32, 1, &n, tdi_adamw_m(opt), 0));
    TDI_TRY(tdi_ckpt_add_tensor(w, "opt.v", TDI_DTYPE_F32, 1, &n, tdi_adamw_v(opt), 0));
    return TD_OK;
}

td_status td_trainer_save(const td_trainer *t, const char *path)
{
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    tdi_ckpt_writer *w;
    TDI_TRY(tdi_ckpt_writer_create(&t->alloc, &w));
    td_status st = write_state(t, w);
    if (st == TD_OK) st = tdi_ckpt_write_file(w, path);
    tdi_ckpt_writer_free(w);
    return st;
}

static td_status moments(const tdi_ckpt *ck, const char *name, uint64_t n,
                         const tdi_ckpt_tensor **out)
{
    TDI_TRY(tdi_ckpt_tensor_get(ck, name, TDI_DTYPE_F32, out));
    if ((*out)->count != n)
        return tdi_fail(TD_ERR_FORMAT, "trainer checkpoint: %s has %llu values, %llu expected",
                        name, (unsigned long long)(*out)->count, (unsigned long long)n);
    const float *x = (*out)->data;
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || (name[4] == 'v' && x[i] < 0))
            return tdi_fail(TD_ERR_CORRUPT, "trainer checkpoint: %s[%llu] = %g is invalid", name,
                            (unsigned long long)i, (double)x[i]);
    return TD_OK;
}

/* Validate everything first, then change the trainer: a bad file loses
 * nothing. */
static td_status resume_from(td_trainer *t, const tdi_ckpt *ck)
{
    tdi_model *m = t->model->m;
    tdi_model_config c;
    TDI_TRY(tdi_model_read_config(ck, &c));
    if (memcmp(&c, &m->cfg, sizeof c) != 0)
        return tdi_fail(TD_ERR_INVALID_ARG,
                        "td_trainer_resume: the checkpoint's model configuration differs from "
                        "the trainer's model");
    int64_t step;
    TDI_TRY(tdi_ckpt_get_i64(ck, "trainer.step", &step));
    if (step < 0)
        return tdi_fail(TD_ERR_FORMAT, "trainer checkpoint: trainer.step = %lld is negative",
                        (long long)step);
    const uint64_t *rng;
    size_t n_rng;
    TDI_TRY(tdi_ckpt_get_u64_array(ck, "trainer.rng", &rng, &n_rng));
    if (n_rng != 4 || (rng[0] | rng[1] | rng[2] | rng[3]) == 0)
        return tdi_fail(TD_ERR_FORMAT, "trainer checkpoint: trainer.rng is not a generator state");
    const tdi_ckpt_tensor *mt, *vt;
    TDI_TRY(moments(ck, "opt.m", tdi_adamw_size(t->opt), &mt));
    TDI_TRY(moments(ck, "opt.v", tdi_adamw_size(t->opt), &vt));
    TDI_TRY(tdi_adamw_set_steps(t->opt, step)); /* validates the count; nothing else changed yet */
    TDI_TRY(tdi_model_read_params(ck, m));
    memcpy(tdi_adamw_m(t->opt), mt->data, mt->nbytes);
    memcpy(tdi_adamw_v(t->opt), vt->data, vt->nbytes);
    memcpy(t->rng.s, rng, sizeof t->rng.s);
    return TD_OK;
}

td_status td_trainer_resume(td_trainer *t, const char *path)
{
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(path);
    tdi_ckpt *ck;
    TDI_TRY(tdi_ckpt_read_file(&t->alloc, path, &ck));
    int64_t saved_steps = tdi_adamw_steps(t->opt);
    td_status st = resume_from(t, ck);
    if (st != TD_OK) tdi_adamw_set_steps(t->opt, saved_steps);
    tdi_ckpt_free(ck);
    return st;
}

td_status td_trainer_get_step(const td_trainer *t, int64_t *step)
{
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(step);
    *step = tdi_adamw_steps(t->opt);
    return TD_OK;
}
