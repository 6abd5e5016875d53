/* The trainer's state, shared by its step, checkpoint and evaluation code. */
#ifndef TDI_TRAINER_H
#define TDI_TRAINER_H

#include "diffusion/corrupt.h"
#include "diffusion/schedule.h"
#include "model/model_api.h"
#include "train/adamw.h"
#include "util/error.h"
#include "util/profile.h"
#include "util/rng.h"

struct td_trainer {
    tdi_errslot err;
    td_allocator alloc;
    td_model *model;          /* updated in place; not owned */
    tdi_schedule schedule;    /* a copy: the caller may free theirs */
    td_trainer_config cfg;
    tdi_rng rng;
    tdi_workspace *ws;
    tdi_pool *pool;           /* its n_threads; workers start at the first step */
    tdi_adamw *opt;
    int32_t micro_batch;      /* sequences per pass (cfg.micro_batch, 0 resolved) */
    float *grads;             /* [n_floats], the layout of the parameters */
    void *scratch;            /* one block for the fields below */
    tdi_corruption corr;      /* corrupted ids, scored rows, targets, weights */
    double *times;            /* [batch_size] */
    double *row_loss;         /* [batch_size · seq_len] cross-entropy per scored row */
    int32_t *pass_rows;       /* [micro_batch · seq_len] a pass's rows, from its start */
    float *logits;            /* [micro_batch · seq_len, V], then their gradient */
    tdi_profile *prof;        /* step timing (util/profile.h); NULL: off */
    int32_t rank, n_ranks;    /* data parallelism: this shard of n_ranks (0 of 1: off) */
    td_reduce_fn reduce;      /* sums the shards' gradients and losses; NULL: off */
    void *reduce_user;
};

/* Attach a profile (NULL detaches it): every later step adds its times to
 * it. The trainer does not own it; it must outlive the steps it times. */
void tdi_trainer_set_profile(td_trainer *t, tdi_profile *prof);

#endif
