/* minimal: the whole idea in one screen. Two copies of one small model are
 * trained on the bundled corpus by one trainer; the only difference is the
 * schedule line: BERT's fixed 15% masking rate (MLM) or every rate with the
 * ELBO weight (diffusion). Both are scored with one estimator, and the
 * diffusion model writes a line by iterative unmasking.
 * Usage: minimal [corpus.txt[.gz]] [steps]   (cc minimal.c -ltextdiff) */
#include <stdio.h>
#include <stdlib.h>

#include <textdiff/textdiff.h>

#define CHECK(call) do { if ((call) != TD_OK) { \
    fprintf(stderr, "%s: %s\n", #call, td_last_error_message()); exit(1); } } while (0)

enum { B = 16, T = 64 };

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : TD_DATA_DIR "/kjv.txt.gz";
    int64_t steps = argc > 2 ? atoll(argv[2]) : 300;
    CHECK(TD_CHECK_VERSION());
    td_tokenizer *tok;  CHECK(td_tokenizer_create_byte(NULL, &tok));
    td_corpus *corpus;  CHECK(td_corpus_load(path, tok, NULL, &corpus));
    static int32_t batch[B * T], valid[64 * T];
    CHECK(td_corpus_batch(corpus, TD_SPLIT_VALID, 9, 0, 64, T, valid));

    for (int diffusion = 0; diffusion <= 1; diffusion++) {
        td_schedule_config sc;
        if (!diffusion) CHECK(td_schedule_config_default(&sc, TD_SCHEDULE_FIXED_RATE)); /* MLM */
        else            CHECK(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR));  /* diffusion */
        td_schedule *sched;  CHECK(td_schedule_create(&sc, NULL, &sched));

        td_model_config mc;  CHECK(td_model_config_default(&mc));
        mc.d_model = 128; mc.n_layers = 2; mc.n_heads = 4; mc.d_ff = 512; mc.max_seq_len = T;
        td_model *model;     CHECK(td_model_create(&mc, 1, NULL, &model));

        td_trainer_config tc; CHECK(td_trainer_config_default(&tc));
        tc.batch_size = B; tc.seq_len = T; tc.total_steps = steps; tc.warmup_steps = steps / 10;
        td_trainer *tr;      CHECK(td_trainer_create(model, sched, &tc, &tr));
        for (int64_t k = 0; k < steps; k++) {
            CHECK(td_corpus_batch(corpus, TD_SPLIT_TRAIN, 1, (uint64_t)k, B, T, batch));
            CHECK(td_trainer_step(tr, batch, NULL));
        }

        td_eval_config ec;   CHECK(td_eval_config_default(&ec));
        ec.seq_len = T; ec.bytes_per_token = 1;
        td_eval_result r = { .struct_size = sizeof r };
        CHECK(td_eval_nelbo(model, valid, 64 * T, &ec, &r));
        printf("%-9s NELBO %.3f bits/byte after %lld steps\n",
               diffusion ? "diffusion" : "MLM", r.bits_per_byte, (long long)steps);

        if (diffusion) { /* write 64 bytes in 32 steps, from all [MASK] */
            td_sampler_config smc; CHECK(td_sampler_config_default(&smc));
            smc.steps = 32;
            td_sampler *s;       CHECK(td_sampler_create(model, sched, &smc, &s));
            int32_t canvas[T], mask;
            CHECK(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask));
            for (int i = 0; i < T; i++) canvas[i] = mask;
            CHECK(td_sampler_generate(s, canvas, 1, T, NULL, NULL, NULL));
            char text[4 * T + 1];
            size_t len;
            CHECK(td_tokenizer_decode(tok, canvas, T, NULL, text, sizeof text, &len));
            printf("sample: %s\n", text);
            td_sampler_free(s);
        }
        td_trainer_free(tr);
        td_model_free(model);
        td_schedule_free(sched);
    }
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    return 0;
}
