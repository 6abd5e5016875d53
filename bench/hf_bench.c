/* A Hugging Face model at full size in the library (docs/bert-is-a-sampler.md
 * "Speed"): one measurement per run, so that bench/hf_bench.sh can
 * interleave runs with PyTorch's (bench/hf_bench.py) and take medians.
 *
 *   hf_bench DIR load                 td_model_load_hf (run it twice: the
 *                                     second finds the file in the page cache)
 *   hf_bench DIR sample [options]     1 x LEN canvas of [MASK], STEPS steps
 *   hf_bench DIR train [options]      fine-tuning steps, batch B x LEN
 *
 *   --threads N (1)  --len N (128)  --steps N (32)  --batch N (8)
 *   --strategy ancestral|maxprob (ancestral)  --top-k K (0)  --top-p P (1)
 *   --train-steps N (2: the first is a warm-up, the rest are timed)
 *
 * Prints one JSON line: wall and CPU seconds of what was timed, tokens per
 * second (sample: canvas positions; train: batch tokens per step), and the
 * process's peak RSS (VmHWM) in MB. The model needs no tokenizer: the
 * canvas is all [MASK] (the mask id is 103 for a BERT vocabulary, 50,264
 * for RoBERTa's, else vocab_size - 1: --mask N overrides), the training
 * batches are random ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "textdiff/textdiff.h"

static void check(td_status st, const char *what)
{
    if (st == TD_OK) return;
    fprintf(stderr, "hf_bench: %s: %s: %s\n", what, td_status_string(st),
            td_last_error_message());
    exit(1);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hf_bench DIR load|sample|train [options]\n");
        return 2;
    }
    const char *dir = argv[1], *what = argv[2], *strategy = "ancestral";
    int threads = 1, len = 128, steps = 32, batch = 8, top_k = 0, train_steps = 2;
    int32_t mask = -1;
    double top_p = 1.0;
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--threads") == 0) threads = atoi(v);
        else if (strcmp(k, "--len") == 0) len = atoi(v);
        else if (strcmp(k, "--steps") == 0) steps = atoi(v);
        else if (strcmp(k, "--batch") == 0) batch = atoi(v);
        else if (strcmp(k, "--strategy") == 0) strategy = v;
        else if (strcmp(k, "--top-k") == 0) top_k = atoi(v);
        else if (strcmp(k, "--top-p") == 0) top_p = atof(v);
        else if (strcmp(k, "--train-steps") == 0) train_steps = atoi(v);
        else if (strcmp(k, "--mask") == 0) mask = atoi(v);
        else {
            fprintf(stderr, "hf_bench: unknown option %s\n", k);
            return 2;
        }
    }
    if (mask < 0) { /* the mask id from the vocabulary's size */
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *f = fopen(path, "r");
        char buf[8192];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = '\0';
        const char *vs = strstr(buf, "\"vocab_size\":");
        long v = vs ? strtol(vs + 13, NULL, 10) : 0;
        mask = v == 30522 ? 103 : v == 50265 ? 50264 : (int32_t)(v - 1);
    }

    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    td_model *m;
    check(td_model_load_hf(dir, mask, 0, NULL, &m), dir);
    double load_wall = clock_s(CLOCK_MONOTONIC) - w0;
    double load_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    uint64_t n_params;
    check(td_model_num_params(m, &n_params), "params");
    td_model_config mc;
    check(td_model_config_default(&mc), "config");
    check(td_model_get_config(m, &mc), "config");

    double wall = load_wall, cpu = load_cpu, tokens = 0;
    if (strcmp(what, "sample") == 0) {
        td_schedule_config scc;
        check(td_schedule_config_default(&scc, TD_SCHEDULE_LOGLINEAR), "schedule");
        td_schedule *sch;
        check(td_schedule_create(&scc, NULL, &sch), "schedule");
        td_sampler_config sc;
        check(td_sampler_config_default(&sc), "sampler");
        sc.strategy = strcmp(strategy, "maxprob") == 0 ? TD_SAMPLER_MAX_PROB : TD_SAMPLER_ANCESTRAL;
        sc.steps = steps;
        sc.top_k = top_k;
        sc.top_p = (float)top_p;
        sc.n_threads = threads;
        sc.max_batch = 1;
        sc.max_seq_len = len;
        sc.seed = 1;
        td_sampler *s;
        check(td_sampler_create(m, sch, &sc, &s), "sampler");
        int32_t *canvas = malloc(sizeof *canvas * (size_t)len);
        for (int i = 0; i < len; i++) canvas[i] = mask;
        w0 = clock_s(CLOCK_MONOTONIC);
        c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        check(td_sampler_generate(s, canvas, 1, len, NULL, NULL, NULL), "generate");
        wall = clock_s(CLOCK_MONOTONIC) - w0;
        cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        tokens = len;
        free(canvas);
        td_sampler_free(s);
        td_schedule_free(sch);
    } else if (strcmp(what, "train") == 0) {
        td_schedule_config scc;
        check(td_schedule_config_default(&scc, TD_SCHEDULE_LOGLINEAR), "schedule");
        td_schedule *sch;
        check(td_schedule_create(&scc, NULL, &sch), "schedule");
        td_trainer_config tc;
        check(td_trainer_config_default(&tc), "trainer");
        tc.batch_size = batch;
        tc.seq_len = len;
        tc.n_threads = threads;
        tc.lr = 1e-5f;
        tc.min_lr = 0.0f;
        tc.warmup_steps = 0;
        tc.total_steps = train_steps;
        td_trainer *t;
        check(td_trainer_create(m, sch, &tc, &t), "trainer");
        int32_t *ids = malloc(sizeof *ids * (size_t)batch * (size_t)len);
        uint64_t x = 88172645463325252ULL;
        for (int i = 0; i < batch * len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int32_t id = (int32_t)(x % (uint64_t)mc.vocab_size);
            ids[i] = id == mask ? 0 : id;
        }
        td_train_stats st = { .struct_size = sizeof st };
        check(td_trainer_step(t, ids, &st), "warm-up step");
        w0 = clock_s(CLOCK_MONOTONIC);
        c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 1; i < train_steps; i++) check(td_trainer_step(t, ids, &st), "step");
        wall = (clock_s(CLOCK_MONOTONIC) - w0) / (train_steps - 1);
        cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / (train_steps - 1);
        tokens = (double)batch * len;
        free(ids);
        td_trainer_free(t);
        td_schedule_free(sch);
    } else if (strcmp(what, "load") != 0) {
        fprintf(stderr, "hf_bench: load, sample or train\n");
        return 2;
    }
    printf("{\"impl\":\"libtextdiff\",\"what\":\"%s\",\"params\":%llu,\"threads\":%d,"
           "\"strategy\":\"%s\",\"top_k\":%d,\"top_p\":%g,\"load_s\":%.3f,\"wall_s\":%.3f,"
           "\"cpu_s\":%.3f,\"tokens_per_s\":%.1f,\"peak_rss_mb\":%.0f}\n",
           what, (unsigned long long)n_params, threads, strategy, top_k, top_p, load_wall, wall,
           cpu, tokens > 0 ? tokens / wall : 0.0, peak_rss_mb());
    td_model_free(m);
    return 0;
}
