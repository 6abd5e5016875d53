/* Left-to-right generation of a causal model with its key/value cache
 * against the same generation without it — td_model_logits over the whole
 * prefix at every position — on the default architecture (docs/sampling.md,
 * "Left to right"). Greedy, so the two must produce the same tokens.
 *
 *   ar_bench [--len N] [--threads N] [--quick]
 *
 * Prints one JSON line. --quick: a tiny model, for the smoke test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "textdiff/textdiff.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "ar_bench: %s: %s\n", what, td_last_error_message());
    exit(1);
}

int main(int argc, char **argv)
{
    int len = 256, threads = 1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--len") == 0 && i + 1 < argc) len = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else {
            fprintf(stderr, "usage: ar_bench [--len N] [--threads N] [--quick]\n");
            return 2;
        }
    }
    if (len < 1) len = 1;
    td_model_config c;
    check(td_model_config_default(&c), "model config");
    c.causal = 1;
    c.max_seq_len = len;
    if (quick) {
        c.d_model = 32;
        c.n_layers = 2;
        c.n_heads = 2;
        c.d_ff = 64;
    }
    td_model *m;
    check(td_model_create(&c, 1, NULL, &m), "model");
    td_schedule_config sc;
    check(td_schedule_config_default(&sc, TD_SCHEDULE_LINEAR), "schedule config");
    td_schedule *s;
    check(td_schedule_create(&sc, NULL, &s), "schedule");
    td_sampler_config q;
    check(td_sampler_config_default(&q), "sampler config");
    q.strategy = TD_SAMPLER_LEFT_TO_RIGHT;
    q.temperature = 0.0f;
    q.n_threads = threads;
    td_sampler *smp;
    check(td_sampler_create(m, s, &q, &smp), "sampler");

    int32_t *canvas = malloc(sizeof *canvas * (size_t)len);
    int32_t *in = malloc(sizeof *in * (size_t)len), *out = malloc(sizeof *out * (size_t)len);
    float *logits = malloc(sizeof *logits * (size_t)len * (size_t)c.vocab_size);
    for (int i = 0; i < len; i++) canvas[i] = c.mask_id;
    td_sample_stats st = { .struct_size = sizeof st };
    double t0 = now();
    check(td_sampler_generate(smp, canvas, 1, len, NULL, NULL, &st), "generate");
    double cached = now() - t0;

    int same = 1;
    t0 = now();
    for (int p = 0; p < len; p++) {
        for (int i = 0; i <= p; i++) in[i] = i == 0 ? c.mask_id : out[i - 1];
        check(td_model_logits(m, in, 1, p + 1, threads, logits), "logits");
        const float *row = logits + (size_t)p * (size_t)c.vocab_size;
        int best = 0;
        for (int j = 1; j < c.vocab_size; j++)
            if (row[j] > row[best]) best = j;
        out[p] = best;
        same &= out[p] == canvas[p];
    }
    double uncached = now() - t0;
    printf("{\"len\":%d,\"threads\":%d,\"d_model\":%d,\"n_layers\":%d,\"model_calls\":%lld,"
           "\"cached_s\":%.4f,\"cached_tokens_per_s\":%.1f,\"uncached_s\":%.4f,"
           "\"uncached_tokens_per_s\":%.1f,\"same_tokens\":%s}\n",
           len, threads, c.d_model, c.n_layers, (long long)st.model_calls, cached, len / cached,
           uncached, len / uncached, same ? "true" : "false");
    free(logits);
    free(out);
    free(in);
    free(canvas);
    td_sampler_free(smp);
    td_schedule_free(s);
    td_model_free(m);
    return same ? 0 : 1;
}
