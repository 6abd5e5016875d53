#include "diffusion/corrupt.h"

#include "util/error.h"

/* BERT's split of the selected positions. */
#define TDI_BERT_MASK_FRAC   0.8
#define TDI_BERT_RANDOM_FRAC 0.1

static td_status check_vocab(const tdi_corrupt_vocab *v, int bert)
{
    TDI_CHECK_ARG(v->vocab_size >= 2, "tdi_corrupt: vocab_size = %ld must be >= 2",
                  (long)v->vocab_size);
    TDI_CHECK_ARG(v->mask_id >= 0 && v->mask_id < v->vocab_size,
                  "tdi_corrupt: mask_id = %ld must lie in [0, vocab_size = %ld)",
                  (long)v->mask_id, (long)v->vocab_size);
    if (!bert) return TD_OK;
    TDI_CHECK_ARG(v->random_lo >= 0 && v->random_lo < v->random_hi &&
                      v->random_hi <= v->vocab_size,
                  "tdi_corrupt: random token range [%ld, %ld) must be non-empty and "
                  "inside [0, vocab_size = %ld)",
                  (long)v->random_lo, (long)v->random_hi, (long)v->vocab_size);
    TDI_CHECK_ARG(v->mask_id < v->random_lo || v->mask_id >= v->random_hi,
                  "tdi_corrupt: random token range [%ld, %ld) contains mask_id = %ld",
                  (long)v->random_lo, (long)v->random_hi, (long)v->mask_id);
    return TD_OK;
}

static td_status check_batch(const tdi_corrupt_vocab *v, const int32_t *clean, size_t B,
                             size_t T, const double *t)
{
    for (size_t b = 0; b < B; b++)
        TDI_CHECK_ARG(t[b] >= 0.0 && t[b] <= 1.0,
                      "tdi_corrupt: t[%zu] = %g must be a number in [0, 1]", b, t[b]);
    /* A clean [MASK] would be a target the model can never predict (its
     * logit is −∞), i.e. an infinite loss: reject it here, by position. */
    for (size_t r = 0; r < B * T; r++)
        TDI_CHECK_ARG(clean[r] >= 0 && clean[r] < v->vocab_size && clean[r] != v->mask_id,
                      "tdi_corrupt: clean id %ld at sequence %zu, position %zu is %s",
                      (long)clean[r], r / T, r % T,
                      clean[r] == v->mask_id ? "the mask id" : "outside [0, vocab_size)");
    return TD_OK;
}

static int32_t bert_replacement(const tdi_corrupt_vocab *v, tdi_rng *rng, int32_t x)
{
    double u = tdi_rng_f64(rng);
    if (u < TDI_BERT_MASK_FRAC) return v->mask_id;
    if (u < TDI_BERT_MASK_FRAC + TDI_BERT_RANDOM_FRAC)
        return v->random_lo +
               (int32_t)tdi_rng_below(rng, (uint64_t)(v->random_hi - v->random_lo));
    return x;
}

/* The output buffers hold a batch of B sequences of T tokens. */
static td_status check_output(const tdi_corruption *out, size_t B, size_t T, const char *func)
{
    TDI_CHECK_ARG(out->ids && out->rows && out->targets && out->weights,
                  "%s: out->ids, rows, targets and weights must all be set", func);
    TDI_CHECK_ARG(B > 0 && T > 0, "%s: B = %zu and T = %zu must be > 0", func, B, T);
    TDI_CHECK_ARG(B <= (size_t)INT32_MAX / T,
                  "%s: B·T = %zu·%zu exceeds the int32 row index range", func, B, T);
    TDI_CHECK_ARG(out->capacity >= B * T, "%s: capacity = %zu is less than B·T = %zu", func,
                  out->capacity, B * T);
    return TD_OK;
}

static td_status check_protect(const uint8_t *protect, size_t B, size_t T)
{
    if (protect == NULL) return TD_OK;
    for (size_t r = 0; r < B * T; r++)
        TDI_CHECK_ARG(protect[r] <= TDI_PROTECT_DROPPED,
                      "protect[%zu] = %u (sequence %zu, position %zu) must be 0, 1 or 2", r,
                      (unsigned)protect[r], r / T, r % T);
    return TD_OK;
}

/* 1/(F_b·B): F_b the unprotected positions of sequence b (0 when all are). */
static double seq_norm(const uint8_t *protect, size_t b, size_t B, size_t T)
{
    size_t free_pos = T;
    if (protect != NULL)
        for (size_t i = 0; i < T; i++) free_pos -= protect[b * T + i] != 0;
    return free_pos > 0 ? 1.0 / ((double)free_pos * (double)B) : 0.0;
}

td_status tdi_corrupt(const tdi_schedule *s, const tdi_corrupt_vocab *vocab,
                      const int32_t *clean, size_t B, size_t T, const double *t,
                      tdi_rng *rng, tdi_corruption *out)
{
    return tdi_corrupt_protected(s, vocab, clean, NULL, B, T, t, rng, out);
}

td_status tdi_corrupt_protected(const tdi_schedule *s, const tdi_corrupt_vocab *vocab,
                                const int32_t *clean, const uint8_t *protect, size_t B,
                                size_t T, const double *t, tdi_rng *rng, tdi_corruption *out)
{
    TDI_CHECK_PTR(s);
    TDI_CHECK_PTR(vocab);
    TDI_CHECK_PTR(clean);
    TDI_CHECK_PTR(t);
    TDI_CHECK_PTR(rng);
    TDI_CHECK_PTR(out);
    TDI_TRY(check_output(out, B, T, __func__));
    TDI_TRY(tdi_schedule_validate(s));
    const int bert = s->bert_corrupt;
    TDI_TRY(check_vocab(vocab, bert));
    TDI_TRY(check_batch(vocab, clean, B, T, t));
    TDI_TRY(check_protect(protect, B, T));

    size_t n = 0;
    for (size_t b = 0; b < B; b++) {
        const double p = tdi_schedule_mask_prob(s, t[b]);
        const float w = (float)(tdi_schedule_weight(s, t[b]) * seq_norm(protect, b, B, T));
        const size_t base = b * T;
        for (size_t i = 0; i < T; i++) {
            const int32_t x = clean[base + i];
            int32_t z = x;
            int selected = tdi_rng_f64(rng) < p;
            if (protect != NULL && protect[base + i] == TDI_PROTECT_DROPPED) {
                z = vocab->mask_id;
            } else if (selected && (protect == NULL || !protect[base + i])) {
                z = bert ? bert_replacement(vocab, rng, x) : vocab->mask_id;
                out->rows[n] = (int32_t)(base + i);
                out->targets[n] = x;
                out->weights[n] = w;
                n++;
            }
            out->ids[base + i] = z;
        }
    }
    out->n = n;
    return TD_OK;
}

td_status tdi_corrupt_shift(const tdi_corrupt_vocab *vocab, const int32_t *clean, size_t B,
                            size_t T, tdi_corruption *out)
{
    return tdi_corrupt_shift_protected(vocab, clean, NULL, B, T, out);
}

td_status tdi_corrupt_shift_protected(const tdi_corrupt_vocab *vocab, const int32_t *clean,
                                      const uint8_t *protect, size_t B, size_t T,
                                      tdi_corruption *out)
{
    TDI_CHECK_PTR(vocab);
    TDI_CHECK_PTR(clean);
    TDI_CHECK_PTR(out);
    TDI_TRY(check_output(out, B, T, __func__));
    TDI_TRY(check_vocab(vocab, 0));
    for (size_t r = 0; r < B * T; r++)
        TDI_CHECK_ARG(clean[r] >= 0 && clean[r] < vocab->vocab_size &&
                          clean[r] != vocab->mask_id,
                      "tdi_corrupt: clean id %ld at sequence %zu, position %zu is %s",
                      (long)clean[r], r / T, r % T,
                      clean[r] == vocab->mask_id ? "the mask id" : "outside [0, vocab_size)");
    TDI_TRY(check_protect(protect, B, T));
    size_t n = 0;
    for (size_t b = 0; b < B; b++) {
        const float w = (float)seq_norm(protect, b, B, T);
        const size_t base = b * T;
        out->ids[base] = vocab->mask_id;
        for (size_t i = 0; i < T; i++) {
            if (i > 0)
                out->ids[base + i] = protect != NULL && protect[base + i - 1] ==
                                     TDI_PROTECT_DROPPED ? vocab->mask_id : clean[base + i - 1];
            if (protect != NULL && protect[base + i]) continue;
            out->rows[n] = (int32_t)(base + i);
            out->targets[n] = clean[base + i];
            out->weights[n] = w;
            n++;
        }
    }
    out->n = n;
    return TD_OK;
}
