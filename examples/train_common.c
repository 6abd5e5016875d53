/* The training loop shared by train_mlm, train_diffusion and train_ar: MLM
 * and diffusion differ only in the schedule they hand to the trainer; AR in
 * the model's causal flag (its trainer then ignores the schedule).
 *
 * Built with TD_MPI=ON, the same programs run data-parallel under mpirun
 * (docs/distributed.md): every rank draws the same global batch and trains
 * its shard of it, and rank 0 alone prints, evaluates, logs and writes the
 * checkpoints and the exported model. */
#define _POSIX_C_SOURCE 200809L
#include "train_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifdef TD_WITH_MPI
#include "textdiff/textdiff_mpi.h"
#endif

/* The data-parallel job this process belongs to: rank 0 of 1 without MPI. */
typedef struct job {
    int rank, size;
#ifdef TD_WITH_MPI
    td_mpi *mp;
#endif
} job;

static void job_start(job *j, int *argc, char ***argv)
{
    j->rank = 0;
    j->size = 1;
#ifdef TD_WITH_MPI
    MPI_Init(argc, argv);
    j->mp = NULL;
    cli_check(td_mpi_create(MPI_COMM_WORLD, NULL, &j->mp), "MPI");
    j->rank = td_mpi_rank(j->mp);
    j->size = td_mpi_size(j->mp);
#else
    (void)argc;
    (void)argv;
#endif
}

/* Makes the trainer one rank of the job; a failure (another configuration
 * on some rank, a batch the ranks do not divide) is reported on every
 * rank, which then exits. */
static void job_attach(job *j, td_trainer *t, td_model *m)
{
#ifdef TD_WITH_MPI
    if (td_mpi_attach(j->mp, t, m, 100) == TD_OK) return;
    char msg[512];
    td_mpi_errmsg(j->mp, msg, sizeof msg);
    fprintf(stderr, "error (rank %d of %d): %s\n", j->rank, j->size, msg);
    td_mpi_free(j->mp);
    MPI_Finalize();
    exit(1);
#else
    (void)j;
    (void)t;
    (void)m;
#endif
}

static void job_step(job *j, td_trainer *t, const int32_t *tokens, td_train_stats *st)
{
    td_status rc = td_trainer_step(t, tokens, st);
    if (rc == TD_OK) return;
    char msg[512];
    td_trainer_errmsg(t, msg, sizeof msg);
    fprintf(stderr, "error (rank %d of %d): training step: %s (%s)\n", j->rank, j->size, msg,
            td_status_string(rc));
#ifdef TD_WITH_MPI
    td_mpi_errmsg(j->mp, msg, sizeof msg);
    if (msg[0] != '\0') fprintf(stderr, "error (rank %d of %d): %s\n", j->rank, j->size, msg);
    td_mpi_free(j->mp);
    MPI_Finalize();
#endif
    exit(1);
}

static void job_end(job *j)
{
#ifdef TD_WITH_MPI
    td_mpi_free(j->mp);
    MPI_Finalize();
#else
    (void)j;
#endif
}

static int parse_choice(const char *v, const char *const *names, int n, const char *flag)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    fprintf(stderr, "--%s: unknown value '%s'\n", flag, v);
    exit(2);
}

/* The validation NELBO (AR: NLL) in bits per byte of the windows' text. */
static double validation_nelbo(const td_model *m, const int32_t *valid, int64_t n_valid,
                               int seq_len, int threads, double bytes_per_token)
{
    td_eval_config ec;
    cli_check(td_eval_config_default(&ec), "eval config");
    ec.seq_len = seq_len;
    ec.n_threads = threads;
    ec.bytes_per_token = bytes_per_token;
    td_eval_result r = { .struct_size = sizeof r };
    cli_check(td_eval_nelbo(m, valid, n_valid, &ec, &r), "validation NELBO");
    return r.bits_per_byte;
}

int train_main(int argc, char **argv, int kind)
{
    const int diffusion = kind == TRAIN_DIFFUSION, ar = kind == TRAIN_AR;
    job jb;
    job_start(&jb, &argc, &argv);
    const int leader = jb.rank == 0;
    static const char *const names[] = { "MLM", "diffusion", "AR" };
    int d_model = 256, layers = 3, heads = 4, d_ff = 0, seq_len = 128, batch = 32, threads = 1;
    int64_t steps = 2000, warmup = 100, save_every = 500, eval_every = 500, seed = 1;
    int eval_windows = 200, resume = 0, allow_changes = 0, bert = 0;
    double lr = 1e-3, min_lr = 1e-4, rate = 0.15, weight_decay = 0.1;
    const char *corpus_path = TD_DEFAULT_CORPUS, *log_path = NULL, *export_path = NULL;
    const char *init_path = NULL, *tokenizer_dir = NULL, *docs = NULL, *export_hf = NULL;
    const char *checkpoint = ar ? "ar.ckpt" : diffusion ? "diffusion.ckpt" : "mlm.ckpt";
    const char *schedule_name = "loglinear", *pos = "rope", *norm = "pre";
    cli_flag flags[] = {
        { "corpus", CLI_STRING, &corpus_path, "text file, plain or .gz" },
        { "tokenizer", CLI_STRING, &tokenizer_dir,
          "Hugging Face tokenizer directory (tokenizer.json, vocab.json + merges.txt or "
          "vocab.txt); default: bytes" },
        { "d-model", CLI_INT, &d_model, "model width" },
        { "layers", CLI_INT, &layers, "transformer blocks" },
        { "heads", CLI_INT, &heads, "attention heads" },
        { "d-ff", CLI_INT, &d_ff, "MLP width (0: 4 x d-model)" },
        { "pos", CLI_STRING, &pos, "position encoding: rope or learned" },
        { "norm", CLI_STRING, &norm, "LayerNorm placement: pre or post" },
        { "seq-len", CLI_INT, &seq_len, "tokens per sequence" },
        { "batch", CLI_INT, &batch, "sequences per step" },
        { "steps", CLI_I64, &steps, "training steps" },
        { "lr", CLI_FLOAT, &lr, "peak learning rate" },
        { "min-lr", CLI_FLOAT, &min_lr, "final learning rate (cosine decay)" },
        { "warmup", CLI_I64, &warmup, "warm-up steps" },
        { "weight-decay", CLI_FLOAT, &weight_decay, "AdamW weight decay (matrices only)" },
        { "threads", CLI_INT, &threads, "threads the library computes with" },
        { "seed", CLI_I64, &seed, "seed of initialisation, batches and masks" },
        { "init", CLI_STRING, &init_path,
          "start from this model file's weights, or a Hugging Face BERT/RoBERTa/DistilBERT "
          "directory with its tokenizer (the shape replaces the model flags), e.g. an MLM "
          "model continued as a diffusion model" },
        { "checkpoint", CLI_STRING, &checkpoint, "resumable checkpoint path" },
        { "resume", CLI_SWITCH, &resume, "continue from --checkpoint if it exists" },
        { "allow-changes", CLI_SWITCH, &allow_changes,
          "with --resume: accept another schedule, batch, seq-len or seed" },
        { "save-every", CLI_I64, &save_every, "steps between checkpoints" },
        { "eval-every", CLI_I64, &eval_every, "steps between validation NELBO (0: off)" },
        { "eval-windows", CLI_INT, &eval_windows, "validation sequences per evaluation" },
        { "docs", CLI_STRING, &docs, "end every line (lines) or paragraph (paragraphs) with "
          "the tokenizer's end token; bytes: the byte tokenizer with [EOS]" },
        { "log", CLI_STRING, &log_path, "CSV log path" },
        { "export", CLI_STRING, &export_path, "also write the final model alone here" },
        { "export-hf", CLI_STRING, &export_hf, "also write the final model as a Hugging Face "
          "directory (config.json, model.safetensors and the tokenizer files of --init DIR or "
          "--tokenizer DIR)" },
        { diffusion ? "schedule" : "rate", diffusion ? CLI_STRING : CLI_FLOAT,
          diffusion ? (void *)&schedule_name : (void *)&rate,
          diffusion ? "linear, loglinear, cosine or polynomial"
                    : ar ? "masking rate (not used by AR training)" : "masking rate" },
        { "bert", CLI_SWITCH, &bert, "BERT's 80/10/10 corruption (MLM only)" },
    };
    cli_parse(argc, argv,
              diffusion ? "usage: train_diffusion [options]  (masked diffusion: every rate, "
                          "ELBO-weighted)"
              : ar      ? "usage: train_ar [options]  (autoregressive: causal model, "
                          "next-token prediction)"
                        : "usage: train_mlm [options]  (BERT-style MLM: one masking rate)",
              flags, (int)(sizeof flags / sizeof flags[0]), NULL, NULL);
    /* The schedule is the only difference between the two programs. */
    static const char *const schedules[] = { "linear", "loglinear", "cosine", "polynomial" };
    td_schedule_config sc;
    if (diffusion) {
        cli_check(td_schedule_config_default(
                      &sc, (td_schedule_kind)parse_choice(schedule_name, schedules, 4, "schedule")),
                  "schedule");
        if (bert) {
            fprintf(stderr, "--bert applies to MLM training only\n");
            return 2;
        }
    } else {
        cli_check(td_schedule_config_default(&sc, TD_SCHEDULE_FIXED_RATE), "schedule");
        sc.rate = rate;
        sc.bert_corruption = bert;
        if (ar && bert) {
            fprintf(stderr, "--bert applies to MLM training only\n");
            return 2;
        }
    }
    td_schedule *schedule;
    cli_check(td_schedule_create(&sc, NULL, &schedule), "schedule");

    static const char *const positions[] = { "rope", "learned" };
    static const char *const norms[] = { "pre", "post" };
    td_model_config mc;
    cli_check(td_model_config_default(&mc), "model config");
    td_model *model = NULL;
    td_tokenizer *tok = NULL;
    const int init_hf = init_path != NULL && cli_is_dir(init_path);
    if (init_hf && tokenizer_dir != NULL)
        fprintf(stderr, "--tokenizer ignored: %s brings its own\n", init_path);
    if (init_path != NULL) { /* a warm start: the trainer takes any model */
        if (init_hf) /* its tokenizer is attached: td_model_get_tokenizer below */
            cli_load_hf(init_path, &model, &tok);
        else
            cli_check(td_model_load(init_path, NULL, &model), init_path);
        cli_check(td_model_get_config(model, &mc), init_path);
        if (mc.causal != ar) {
            fprintf(stderr, "--init %s: a %s model cannot be trained %s\n", init_path,
                    mc.causal ? "causal" : "bidirectional", ar ? "autoregressively"
                                                                : "by masking");
            return 2;
        }
        /* its own tokenizer, if it brings one */
        if (!init_hf && td_model_get_tokenizer(model, NULL, &tok) == TD_OK &&
            tokenizer_dir != NULL)
            fprintf(stderr, "--tokenizer ignored: %s brings its own\n", init_path);
    }
    if (tok == NULL) {
        if (tokenizer_dir != NULL)
            cli_check(td_tokenizer_load_hf(tokenizer_dir, NULL, &tok), tokenizer_dir);
        else if (docs != NULL)
            cli_check(td_tokenizer_create_byte_eos(NULL, &tok), "tokenizer");
        else
            cli_check(td_tokenizer_create_byte(NULL, &tok), "tokenizer");
    }
    if (model == NULL) {
        mc.d_model = d_model;
        mc.n_layers = layers;
        mc.n_heads = heads;
        mc.d_ff = d_ff > 0 ? d_ff : 4 * d_model;
        mc.max_seq_len = seq_len;
        mc.pos_encoding = parse_choice(pos, positions, 2, "pos");
        mc.norm_placement = parse_choice(norm, norms, 2, "norm");
        mc.causal = ar;
        cli_check(td_tokenizer_vocab_size(tok, &mc.vocab_size), "tokenizer");
        cli_check(td_tokenizer_special_id(tok, TD_TOKEN_MASK, &mc.mask_id), "tokenizer");
        cli_check(td_model_create(&mc, (uint64_t)seed, NULL, &model), "model");
    }
    cli_check(td_model_set_tokenizer(model, tok), "tokenizer");
    cli_check(td_model_get_config(model, &mc), "model config");
    if (export_hf != NULL && (mc.pos_encoding != TD_POS_LEARNED ||
                              mc.norm_placement != TD_NORM_POST || !mc.head_transform ||
                              mc.causal)) { /* say so before training, not after */
        fprintf(stderr, "--export-hf: a Hugging Face BERT/RoBERTa/DistilBERT has learned "
                        "positions, post-LN and the head transform, and is bidirectional; "
                        "this model is not (docs/hf.md \"Export\")\n");
        return 2;
    }
    td_corpus *corpus;
    const char *sep = docs == NULL ? NULL : strcmp(docs, "lines") == 0 ? "\n"
                    : strcmp(docs, "paragraphs") == 0 ? "\n\n" : "";
    if (sep != NULL && *sep == '\0') {
        fprintf(stderr, "--docs takes lines or paragraphs\n");
        return 2;
    }
    if (sep != NULL)
        cli_check(td_corpus_load_docs(corpus_path, sep, tok, NULL, &corpus), corpus_path);
    else
        cli_check(td_corpus_load(corpus_path, tok, NULL, &corpus), corpus_path);

    td_trainer_config tc;
    cli_check(td_trainer_config_default(&tc), "trainer config");
    tc.batch_size = batch;
    tc.seq_len = seq_len;
    tc.n_threads = threads;
    tc.seed = (uint64_t)seed;
    tc.lr = (float)lr;
    tc.min_lr = (float)min_lr;
    tc.warmup_steps = warmup;
    tc.total_steps = steps;
    tc.weight_decay = (float)weight_decay;
    /* Activation memory for this rank's shard only (when the ranks divide
     * the batch; otherwise attaching says so below). */
    if (jb.size > 1 && batch % jb.size == 0) tc.micro_batch = batch / jb.size;
    td_trainer *trainer;
    cli_check(td_trainer_create(model, schedule, &tc, &trainer), "trainer");

    int64_t step = 0;
    if (resume && access(checkpoint, F_OK) == 0) {
        uint32_t allow = TD_RESUME_STRICT;
        if (allow_changes)
            allow = TD_RESUME_ALLOW_SCHEDULE | TD_RESUME_ALLOW_BATCH | TD_RESUME_ALLOW_SEQ_LEN |
                    TD_RESUME_ALLOW_SEED;
        cli_check(td_trainer_resume(trainer, checkpoint, allow), checkpoint);
        cli_check(td_trainer_get_step(trainer, &step), "step");
        if (leader) fprintf(stderr, "resumed %s at step %lld\n", checkpoint, (long long)step);
    }
    job_attach(&jb, trainer, model);

    /* Validation: the first eval_windows windows of the validation split. */
    uint64_t n_windows = 0;
    cli_check(td_corpus_num_windows(corpus, TD_SPLIT_VALID, seq_len, &n_windows), "validation");
    if (n_windows > (uint64_t)eval_windows) n_windows = (uint64_t)eval_windows;
    int64_t n_valid = (int64_t)n_windows * seq_len;
    int32_t *valid = malloc(sizeof *valid * (size_t)(n_valid > 0 ? n_valid : 1));
    for (uint64_t w = 0; w < n_windows; w++)
        cli_check(td_corpus_window(corpus, TD_SPLIT_VALID, seq_len, w, valid + w * seq_len),
                  "validation window");
    double bytes_per_token = 1.0; /* of the validation text, for bits per byte */
    if (n_valid > 0) { /* decoding stops at an end token: the text between them */
        int32_t eos = -1;
        if (docs != NULL) cli_check(td_tokenizer_special_id(tok, TD_TOKEN_EOS, &eos), "[EOS]");
        size_t bytes = 0, part;
        for (int64_t i = 0, j; i < n_valid; i = j + 1) {
            for (j = i; j < n_valid && valid[j] != eos; j++) continue;
            free(cli_decode(tok, valid + i, (size_t)(j - i), &part));
            bytes += part;
        }
        bytes_per_token = (double)bytes / (double)n_valid;
    }

    FILE *csv = NULL;
    if (log_path && leader) {
        csv = fopen(log_path, step > 0 ? "a" : "w");
        if (!csv) {
            perror(log_path);
            return 1;
        }
        if (step == 0)
            fprintf(csv, "step,loss_nats,loss_bits,grad_norm,lr,tokens_per_s,valid_bits_per_byte\n");
    }
    uint64_t n_params;
    td_model_num_params(model, &n_params);
    if (leader) {
        fprintf(stderr, "%s: %llu parameters, d=%d L=%d H=%d, batch %d x %d, %lld steps, %s\n",
                names[kind], (unsigned long long)n_params, mc.d_model, mc.n_layers, mc.n_heads,
                batch, seq_len, (long long)steps,
                diffusion ? schedule_name : ar ? "next token" : "fixed rate");
        if (jb.size > 1)
            fprintf(stderr, "data-parallel: %d ranks, %d sequences each per step\n", jb.size,
                    batch / jb.size);
        cli_print_runtime(stderr, threads, 1);
    }

    int32_t *tokens = malloc(sizeof *tokens * (size_t)batch * (size_t)seq_len);
    cli_progress progress;
    cli_progress_start(&progress, step, steps);
    double ema = NAN, t_last = cli_now();
    double tok_s = 0;
    while (step < steps) {
        cli_check(td_corpus_batch(corpus, TD_SPLIT_TRAIN, (uint64_t)seed, (uint64_t)step, batch,
                                  seq_len, tokens),
                  "batch");
        td_train_stats st = { .struct_size = sizeof st };
        job_step(&jb, trainer, tokens, &st);
        step = st.step;
        double now = cli_now();
        double inst = (double)batch * seq_len / (now - t_last);
        t_last = now;
        tok_s = tok_s > 0 ? 0.9 * tok_s + 0.1 * inst : inst;
        ema = isnan(ema) ? st.loss : 0.98 * ema + 0.02 * st.loss;
        double valid_bits = NAN;
        if (leader && eval_every > 0 && n_valid > 0 && (step % eval_every == 0 || step == steps)) {
            valid_bits = validation_nelbo(model, valid, n_valid, seq_len, threads,
                                          bytes_per_token);
            if (progress.tty) fputc('\n', stderr);
            fprintf(stderr, "step %lld: validation %s %.4f bits/byte\n", (long long)step,
                    ar ? "NLL" : "NELBO", valid_bits);
        }
        if (leader) cli_progress_update(&progress, step, tok_s, "loss %.3f bits", ema / log(2.0));
        if (csv) {
            fprintf(csv, "%lld,%.6f,%.6f,%.4f,%.3g,%.0f,", (long long)step, st.loss,
                    st.loss / log(2.0), st.grad_norm, st.lr, tok_s);
            if (!isnan(valid_bits)) fprintf(csv, "%.5f", valid_bits);
            fputc('\n', csv);
            fflush(csv);
        }
        if (leader && ((save_every > 0 && step % save_every == 0) || step == steps))
            cli_check(td_trainer_save(trainer, checkpoint), checkpoint);
    }
    if (leader) cli_progress_end(&progress);
    if (export_path && leader) {
        cli_check(td_model_save(model, export_path), export_path);
        fprintf(stderr, "wrote %s\n", export_path);
    }
    if (export_hf && leader) {
        cli_check(td_model_save_hf(model, export_hf, 0), export_hf);
        /* the tokenizer files of the directory the tokenizer came from */
        const char *tok_from = init_hf ? init_path : tokenizer_dir;
        int n_files = tok_from ? cli_copy_hf_tokenizer(tok_from, export_hf) : 0;
        fprintf(stderr, "wrote %s (Hugging Face; %d tokenizer files%s)\n", export_hf, n_files,
                n_files ? "" : ": none to copy, the tokenizer is only in --export's file");
    }
    if (csv) fclose(csv);
    free(tokens);
    free(valid);
    td_trainer_free(trainer);
    td_model_free(model);
    td_corpus_free(corpus);
    td_tokenizer_free(tok);
    td_schedule_free(schedule);
    job_end(&jb);
    return 0;
}
