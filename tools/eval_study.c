/* The measurements behind docs/evaluation.md "Variance and bias": trains a
 * small byte-level model on the bundled corpus with the diffusion (or MLM) loss, then
 * evaluates its NELBO on validation windows for several seeds and numbers of
 * quadrature times, and its loss curve over masking rates.
 *
 * It is not part of the build (it reads internal headers for the corpus). From
 * the source directory, after building into build/:
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -DTD_SOURCE_DIR=\"$PWD\" \
 *      -Iinclude -Ilib tools/eval_study.c build/libtextdiff.a \
 *      -lopenblas -lz -lm -pthread -o eval_study
 *   OPENBLAS_NUM_THREADS=1 ./eval_study [train_steps=400] [windows=200] [mlm]
 * "mlm" trains at the fixed masking rate 0.15 instead.
 * It takes about ten minutes on one core.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/corpus.h"
#include "textdiff/textdiff.h"
#include "util/rng.h"

enum { T = 128, B = 32 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "eval_study: %s: %s: %s\n", what, td_status_string(st),
            td_last_error_message());
    exit(1);
}

static td_model *train(const tdi_corpus *corpus, int steps, int mlm)
{
    td_model_config mc;
    check(td_model_config_default(&mc), "model config");
    mc.max_seq_len = T;
    mc.d_model = 128;
    mc.n_layers = 2;
    mc.n_heads = 4;
    mc.d_ff = 512;
    td_model *m;
    check(td_model_create(&mc, 1, NULL, &m), "model");
    td_schedule_config sc;
    td_schedule *s;
    check(td_schedule_config_default(&sc, mlm ? TD_SCHEDULE_FIXED_RATE : TD_SCHEDULE_LOGLINEAR),
          "schedule config");
    check(td_schedule_create(&sc, NULL, &s), "schedule");
    td_trainer_config tc;
    check(td_trainer_config_default(&tc), "trainer config");
    tc.batch_size = B;
    tc.seq_len = T;
    tc.lr = 2e-3f;
    tc.min_lr = 2e-4f;
    tc.warmup_steps = 50;
    tc.total_steps = steps;
    td_trainer *tr;
    check(td_trainer_create(m, s, &tc, &tr), "trainer");
    tdi_rng rng;
    tdi_rng_seed(&rng, 42);
    static int32_t batch[B * T];
    double t0 = now(), recent = 0;
    for (int i = 0; i < steps; i++) {
        check(tdi_corpus_sample(corpus, TDI_SPLIT_TRAIN, &rng, B, T, batch, NULL), "sample");
        td_train_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        check(td_trainer_step(tr, batch, &st), "step");
        recent += st.loss;
        if ((i + 1) % 50 == 0) {
            fprintf(stderr, "step %d  loss %.3f nats  %.0f s\n", i + 1, recent / 50, now() - t0);
            recent = 0;
        }
    }
    td_trainer_free(tr);
    td_schedule_free(s);
    return m;
}

int main(int argc, char **argv)
{
    const int steps = argc > 1 ? atoi(argv[1]) : 400;
    const int64_t windows = argc > 2 ? atoll(argv[2]) : 200;
    const int mlm = argc > 3 && strcmp(argv[3], "mlm") == 0;
    td_tokenizer *tok;
    check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
    tdi_corpus *corpus;
    check(tdi_corpus_load(TD_SOURCE_DIR "/data/kjv.txt.gz", TDI_CORPUS_DEFAULT_MAX_BYTES, tok,
                          NULL, NULL, &corpus),
          "corpus");
    const uint64_t n_tiles = tdi_corpus_n_tiles(corpus, TDI_SPLIT_VALID, T);
    int32_t *valid = malloc(sizeof *valid * n_tiles * T);
    for (uint64_t i = 0; i < n_tiles; i++)
        check(tdi_corpus_tile(corpus, TDI_SPLIT_VALID, T, i, valid + i * T, NULL), "tile");
    const int64_t n_valid = (int64_t)(n_tiles * T);

    td_model *m = train(corpus, steps, mlm);

    td_eval_config ec;
    check(td_eval_config_default(&ec), "eval config");
    ec.seq_len = T;
    ec.batch_size = 16;
    ec.bytes_per_token = 1.0;
    td_eval_result r;
    r.struct_size = sizeof r;

    /* Reference: every validation tile. */
    ec.n_times = 16;
    double t0 = now();
    check(td_eval_nelbo(m, valid, n_valid, &ec, &r), "nelbo");
    printf("reference: %lld windows, K = 16: %.4f nats = %.4f bits/byte +- %.4f (%.1f s)\n",
           (long long)r.n_sequences, r.nelbo_nats, r.bits_per_byte, r.std_error_nats,
           now() - t0);

    printf("\n| K | seed 1 | seed 2 | seed 3 | seed 4 | seed 5 | mean | sd over seeds | "
           "SE across windows | s per run |\n|---|---|---|---|---|---|---|---|---|---|\n");
    ec.max_sequences = windows;
    const int32_t ks[3] = { 8, 16, 32 };
    for (int ki = 0; ki < 3; ki++) {
        ec.n_times = ks[ki];
        double v[5], mean = 0, se = 0, secs = 0;
        for (int s = 0; s < 5; s++) {
            ec.seed = (uint64_t)s + 1;
            t0 = now();
            check(td_eval_nelbo(m, valid, n_valid, &ec, &r), "nelbo");
            secs += (now() - t0) / 5;
            v[s] = r.nelbo_nats;
            mean += v[s] / 5;
            se += r.std_error_nats / 5;
        }
        double var = 0;
        for (int s = 0; s < 5; s++) var += (v[s] - mean) * (v[s] - mean) / 4;
        printf("| %d |", (int)ks[ki]);
        for (int s = 0; s < 5; s++) printf(" %.4f |", v[s]);
        printf(" %.4f | %.4f | %.4f | %.2f |\n", mean, sqrt(var), se, secs);
    }

    /* The curve over rates on 400 tiles. */
    ec.max_sequences = 400;
    ec.seed = 1;
    double rates[19], loss[19], acc[19], integral = 0;
    for (int k = 0; k < 19; k++) rates[k] = 0.05 * (k + 1);
    t0 = now();
    check(td_eval_rates(m, valid, n_valid, rates, 19, &ec, loss, acc), "rates");
    printf("\nrates on 400 windows (%.1f s)\n| rate | loss (nats) | bits | top-1 accuracy |\n"
           "|---|---|---|---|\n", now() - t0);
    for (int k = 0; k < 19; k++) {
        printf("| %.2f | %.4f | %.4f | %.4f |\n", rates[k], loss[k], loss[k] / log(2.0), acc[k]);
        integral += loss[k] / 19;
    }
    printf("\nmean of the 19 rates: %.4f\n", integral);

    /* The ends of the curve, where the midpoint rule's error comes from:
     * every tile, several seeds pooled (few tokens are hidden at a small
     * rate). */
    const double ends[10] = { 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.96, 0.98, 1.0 };
    ec.max_sequences = 0;
    printf("\nends of the curve on %llu windows\n| rate | loss (nats), mean of seeds |\n"
           "|---|---|\n", (unsigned long long)n_tiles);
    for (int k = 0; k < 10; k++) {
        const int n_seeds = ends[k] < 0.5 ? 4 : 1;
        double mean = 0, l;
        for (int s = 0; s < n_seeds; s++) {
            ec.seed = (uint64_t)s + 1;
            check(td_eval_rates(m, valid, n_valid, &ends[k], 1, &ec, &l, NULL), "rates");
            mean += l / n_seeds;
        }
        printf("| %.4f | %.4f |\n", ends[k], mean);
    }
    td_model_free(m);
    tdi_corpus_free(corpus);
    td_tokenizer_free(tok);
    free(valid);
    return 0;
}
