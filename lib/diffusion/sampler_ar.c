/* The left-to-right loop of sampler_ar.h. Each step runs one position of
 * the whole batch through the model (tdi_model_step), so the cost of a
 * token does not grow with the prefix except for attention over the cache. */
#include "diffusion/sampler_ar.h"

#include <string.h>

#include "util/error.h"

td_status tdi_ar_generate(const tdi_ar_sampler *a, int32_t *canvas, int32_t batch,
                          int32_t seq_len, tdi_ar_counts *counts)
{
    const int32_t mask = a->model->cfg.mask_id, V = a->model->cfg.vocab_size;
    memset(counts, 0, sizeof *counts);
    /* The last masked position, and how many positions will draw a token. */
    int32_t last = -1, n_steps = 0;
    for (int32_t i = 0; i < seq_len; i++) {
        int any = 0;
        for (int32_t b = 0; b < batch; b++) any |= canvas[b * seq_len + i] == mask;
        if (any) {
            last = i;
            n_steps++;
        }
    }
    for (int32_t pos = 0, step = 0; pos <= last; pos++) {
        for (int32_t b = 0; b < batch; b++)
            a->ids[b] = pos == 0 ? mask : canvas[b * seq_len + pos - 1];
        tdi_model_step(a->model, a->kv, a->ids, batch, pos, a->logits, a->pool);
        counts->model_calls++;
        int32_t n = 0;
        for (int32_t b = 0; b < batch; b++) {
            const int32_t row = b * seq_len + pos;
            if (canvas[row] != mask) continue;
            const size_t o = (size_t)b * (size_t)V;
            const double u = tdi_rng_f64(&a->seq_rng[b]);
            int32_t tok;
            double conf;
            if (tdi_draw_token(a->draw, a->logits + o, V, u, a->w + o,
                               a->rank ? a->rank + o : NULL, &tok, &conf) != 0)
                return tdi_fail(TD_ERR_NUMERIC,
                                "td_sampler_generate: the model's logits at row %d are not "
                                "finite", (int)row);
            canvas[row] = tok;
            a->changed[n++] = row;
        }
        if (n == 0) continue;
        counts->steps++;
        counts->revealed += n;
        if (a->notify != NULL && a->notify(a->notify_ctx, step, n_steps, n) != 0)
            return tdi_fail(TD_ERR_CANCELLED,
                            "td_sampler_generate: cancelled by the callback after step %d of %d",
                            (int)step, (int)n_steps);
        step++;
    }
    return TD_OK;
}
