/* Soak: several threads create a sampler on one shared model, generate and
 * free it, over and over, while another thread trains a model of its own;
 * the process's resident memory must stay flat.
 *
 * usage: soak [SECONDS] [THREADS]     (defaults 20 and 3)
 *
 * RSS is read from /proc/self/statm after a warm-up of a tenth of the run
 * and at the end; the run fails when it grew by more than 4 MiB (allocator
 * noise is well below that; a leak of one sampler per cycle is far above
 * it) or when any call fails. Prints cycles, generated tokens and both RSS
 * readings. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "textdiff/textdiff.h"

enum { V = 258, MASK = 256, T = 32 };

static td_model *g_model;
static td_schedule *g_sched;
static atomic_int g_stop, g_failed;
static atomic_long g_cycles, g_tokens, g_steps;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void fail(const char *what)
{
    fprintf(stderr, "soak: %s: %s\n", what, td_last_error_message());
    atomic_store(&g_failed, 1);
    atomic_store(&g_stop, 1);
}

static void *sampling(void *arg)
{
    uint64_t seed = (uint64_t)(intptr_t)arg;
    while (!atomic_load(&g_stop)) {
        td_sampler_config c;
        td_sampler_config_default(&c);
        c.strategy = (int32_t)(seed % 4);
        c.steps = 8;
        c.seed = seed++;
        c.max_batch = 2;
        c.max_seq_len = T;
        c.n_threads = 1 + (int32_t)(seed % 2);
        td_sampler *s;
        if (td_sampler_create(g_model, g_sched, &c, &s) != TD_OK) {
            fail("td_sampler_create");
            break;
        }
        int32_t canvas[2 * T];
        for (int i = 0; i < 2 * T; i++) canvas[i] = i < 4 ? 'a' + i : MASK;
        td_sample_stats st = { .struct_size = sizeof st };
        if (td_sampler_generate(s, canvas, 2, T, NULL, NULL, &st) != TD_OK) fail("generate");
        td_sampler_free(s);
        atomic_fetch_add(&g_cycles, 1);
        atomic_fetch_add(&g_tokens, (long)st.tokens_revealed);
    }
    return NULL;
}

static void *training(void *arg)
{
    (void)arg;
    td_model_config mc;
    td_model_config_default(&mc);
    mc.d_model = 32;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.d_ff = 64;
    mc.max_seq_len = T;
    td_model *m;
    td_trainer *tr;
    td_trainer_config tc;
    td_trainer_config_default(&tc);
    tc.batch_size = 4;
    tc.seq_len = T;
    tc.n_threads = 2;
    if (td_model_create(&mc, 3, NULL, &m) != TD_OK) {
        fail("td_model_create");
        return NULL;
    }
    if (td_trainer_create(m, g_sched, &tc, &tr) != TD_OK) {
        fail("td_trainer_create");
        td_model_free(m);
        return NULL;
    }
    int32_t tokens[4 * T];
    for (long k = 0; !atomic_load(&g_stop); k++) {
        for (int i = 0; i < 4 * T; i++) tokens[i] = (int32_t)((i * 31 + k) % 200);
        if (td_trainer_step(tr, tokens, NULL) != TD_OK) fail("td_trainer_step");
        atomic_fetch_add(&g_steps, 1);
    }
    td_trainer_free(tr);
    td_model_free(m);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 20.0;
    int n = argc > 2 ? atoi(argv[2]) : 3;
    if (seconds <= 0 || n < 1 || n > 64) {
        fprintf(stderr, "usage: soak [SECONDS] [THREADS]\n");
        return 2;
    }
    td_model_config mc;
    td_model_config_default(&mc);
    mc.d_model = 64;
    mc.n_layers = 2;
    mc.n_heads = 2;
    mc.d_ff = 128;
    mc.max_seq_len = T;
    td_schedule_config sc;
    td_schedule_config_default(&sc, TD_SCHEDULE_LOGLINEAR);
    if (td_model_create(&mc, 1, NULL, &g_model) != TD_OK ||
        td_schedule_create(&sc, NULL, &g_sched) != TD_OK) {
        fprintf(stderr, "soak: setup: %s\n", td_last_error_message());
        return 1;
    }
    pthread_t th[65];
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, sampling, (void *)(intptr_t)(i * 1000));
    pthread_create(&th[n], NULL, training, NULL);
    double start = now();
    while (now() - start < seconds / 10) pause_ms(10);
    long warm = rss_kib(), warm_cycles = atomic_load(&g_cycles);
    while (now() - start < seconds && !atomic_load(&g_stop)) pause_ms(50);
    atomic_store(&g_stop, 1);
    for (int i = 0; i <= n; i++) pthread_join(th[i], NULL);
    long end = rss_kib();
    td_schedule_free(g_sched);
    td_model_free(g_model);
    printf("soak: %.0f s, %d sampling threads + 1 training: %ld sampler cycles (%ld after "
           "warm-up), %ld tokens, %ld training steps; RSS %ld KiB after warm-up, %ld KiB at "
           "the end (%+ld KiB)\n",
           seconds, n, atomic_load(&g_cycles), atomic_load(&g_cycles) - warm_cycles,
           atomic_load(&g_tokens), atomic_load(&g_steps), warm, end, end - warm);
    if (atomic_load(&g_failed)) return 1;
    if (end - warm > 4096) {
        fprintf(stderr, "soak: resident memory grew by %ld KiB\n", end - warm);
        return 1;
    }
    return 0;
}
