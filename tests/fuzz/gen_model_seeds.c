/* Writes small valid model and trainer checkpoints as a starting corpus for
 * fuzz_model: gen_model_seeds <directory>. Each model is tiny (a
 * character vocabulary of a few letters, d_model 4), so that a whole file
 * fits the fuzzer's input size limit. */
#include <stdio.h>
#include <string.h>

#include <textdiff/textdiff.h>

#define TRY(x) do { if ((x) != TD_OK) { fprintf(stderr, "failed: %s\n", #x); return 1; } } while (0)

static int one(const char *dir, const char *name, int32_t pos, int32_t norm, int32_t tie,
               int32_t causal, int train, int32_t dtype)
{
    static const char text[] = "abcab";
    char path[1024];
    td_tokenizer *tok = NULL;
    td_model *m = NULL;
    td_model_config c;
    int32_t v = 0, mask = 0;
    TRY(td_tokenizer_create_char(text, sizeof text - 1, 0, NULL, &tok));
    TRY(td_tokenizer_vocab_size(tok, &v));
    TRY(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mask));
    TRY(td_model_config_default(&c));
    c.vocab_size = v;
    c.mask_id = mask;
    c.max_seq_len = 4;
    c.d_model = dtype == TD_DTYPE_Q8_0 ? 32 : 4; /* q8_0 blocks: rows of 32 */
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = dtype == TD_DTYPE_Q8_0 ? 32 : 8;
    c.pos_encoding = pos;
    c.norm_placement = norm;
    c.tie_embeddings = tie;
    c.causal = causal;
    TRY(td_model_create(&c, 7, NULL, &m));
    TRY(td_model_set_tokenizer(m, tok));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (dtype != TD_DTYPE_F32) {
        td_model *q = NULL;
        TRY(td_model_convert(m, dtype, NULL, &q));
        TRY(td_model_save(q, path));
        td_model_free(q);
    } else if (!train) {
        TRY(td_model_save(m, path));
    } else {
        td_schedule_config sc;
        td_schedule *s = NULL;
        td_trainer_config tc;
        td_trainer *t = NULL;
        int32_t tokens[4] = { 0, 1, 2, 0 };
        TRY(td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR));
        TRY(td_schedule_create(&sc, NULL, &s));
        TRY(td_trainer_config_default(&tc));
        tc.batch_size = 1;
        tc.seq_len = 4;
        TRY(td_trainer_create(m, s, &tc, &t));
        TRY(td_trainer_step(t, tokens, NULL));
        TRY(td_trainer_save(t, path));
        td_trainer_free(t);
        td_schedule_free(s);
    }
    td_model_free(m);
    td_tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <directory>\n", argv[0]);
        return 2;
    }
    const char *d = argv[1];
    const int32_t f32 = TD_DTYPE_F32;
    return one(d, "rope-pre-tied.tdm", TD_POS_ROPE, TD_NORM_PRE, 1, 0, 0, f32) ||
           one(d, "learned-post-untied.tdm", TD_POS_LEARNED, TD_NORM_POST, 0, 0, 0, f32) ||
           one(d, "causal.tdm", TD_POS_ROPE, TD_NORM_PRE, 1, 1, 0, f32) ||
           one(d, "trainer.tdc", TD_POS_ROPE, TD_NORM_PRE, 1, 0, 1, f32) ||
           one(d, "trainer-causal.tdc", TD_POS_LEARNED, TD_NORM_POST, 0, 1, 1, f32) ||
           one(d, "bf16.tdm", TD_POS_LEARNED, TD_NORM_POST, 0, 0, 0, TD_DTYPE_BF16) ||
           one(d, "q8_0.tdm", TD_POS_ROPE, TD_NORM_PRE, 1, 0, 0, TD_DTYPE_Q8_0);
}
