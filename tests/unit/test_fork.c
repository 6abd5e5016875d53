/* fork() with the library's threads running: a child of a process that
 * trained and sampled on 2 threads trains and samples on 2 threads again,
 * finishes, and gets exactly what the parent gets from the same state. The
 * parent waits with a timeout, so a hang fails the test instead of stalling
 * it. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { B = 4, T = 64, V = 40, MASK = 38, STEPS = 2 };
#define CHILD_SECONDS 120

/* What a continuation produces: its losses and a sample, compared as bits. */
typedef struct outcome {
    double loss[STEPS];
    int32_t canvas[B * T];
} outcome;

typedef struct rig {
    td_model *model;
    td_schedule *schedule;
    td_trainer *trainer;
    td_sampler *sampler;
    td_sampler *idle;   /* started its workers, then left alone */
} rig;

static int32_t token_at(int step, int i) { return (int32_t)((i * 7 + step * 3) % 30); }

/* Returns 0 on success: no cmocka here, it also runs in the child. */
static int continue_run(rig *r, int first_step, outcome *out)
{
    int32_t tokens[B * T];
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < B * T; i++) tokens[i] = token_at(first_step + s, i);
        td_train_stats st = { .struct_size = sizeof st };
        if (td_trainer_step(r->trainer, tokens, &st) != TD_OK) return 1;
        out->loss[s] = st.loss;
    }
    for (int i = 0; i < B * T; i++) out->canvas[i] = MASK;
    if (td_sampler_generate(r->sampler, out->canvas, B, T, NULL, NULL, NULL) != TD_OK) return 2;
    return 0;
}

static void rig_create(rig *r)
{
    r->model = toy_model_sized(V, MASK, T, 64, 2, 2, 256, 11, NULL);
    r->schedule = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config tc;
    assert_int_equal(td_trainer_config_default(&tc), TD_OK);
    tc.batch_size = B;
    tc.seq_len = T;
    tc.n_threads = 2;
    assert_int_equal(td_trainer_create(r->model, r->schedule, &tc, &r->trainer), TD_OK);
    td_sampler_config sc;
    assert_int_equal(td_sampler_config_default(&sc), TD_OK);
    sc.steps = 8;
    sc.max_batch = B;
    sc.max_seq_len = T;
    sc.n_threads = 2;
    assert_int_equal(td_sampler_create(r->model, r->schedule, &sc, &r->sampler), TD_OK);
    assert_int_equal(td_sampler_create(r->model, r->schedule, &sc, &r->idle), TD_OK);
}

static void rig_free(rig *r)
{
    td_sampler_free(r->idle);
    td_sampler_free(r->sampler);
    td_trainer_free(r->trainer);
    td_schedule_free(r->schedule);
    td_model_free(r->model);
}

/* The child's side: continue, report through the pipe, free everything. */
static void child(rig *r, int fd)
{
    outcome o;
    memset(&o, 0, sizeof o);
    int rc = continue_run(r, STEPS, &o);
    if (rc == 0 && write(fd, &o, sizeof o) != (ssize_t)sizeof o) rc = 3;
    rig_free(r);
    _exit(rc);
}

/* Reads exactly n bytes within the deadline (seconds since the epoch of
 * CLOCK_MONOTONIC); returns 0 on success. */
static int read_within(int fd, void *buf, size_t n, double deadline)
{
    size_t got = 0;
    while (got < n) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = deadline - ((double)now.tv_sec + now.tv_nsec * 1e-9);
        if (left <= 0) return -1;
        struct pollfd p = { fd, POLLIN, 0 };
        int k = poll(&p, 1, (int)(left * 1000) + 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        ssize_t m = read(fd, (char *)buf + got, n - got);
        if (m <= 0) return -1;
        got += (size_t)m;
    }
    return 0;
}

static void test_fork_child_computes_on_threads(void **state)
{
    (void)state;
    rig r;
    rig_create(&r);
    outcome first;
    assert_int_equal(continue_run(&r, 0, &first), 0);
    /* Every handle has its workers now (the idle sampler too). */
    int32_t canvas[B * T];
    for (int i = 0; i < B * T; i++) canvas[i] = MASK;
    assert_int_equal(td_sampler_generate(r.idle, canvas, B, T, NULL, NULL, NULL), TD_OK);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child(&r, fds[1]);
    }
    close(fds[1]);
    outcome mine, theirs;
    assert_int_equal(continue_run(&r, STEPS, &mine), 0);

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double deadline = (double)now.tv_sec + now.tv_nsec * 1e-9 + CHILD_SECONDS;
    int got = read_within(fds[0], &theirs, sizeof theirs, deadline);
    close(fds[0]);
    int status = 0;
    pid_t w = 0;
    while (got == 0 && (w = waitpid(pid, &status, WNOHANG)) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)now.tv_sec + now.tv_nsec * 1e-9 > deadline) break;
        struct timespec nap = { 0, 10 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    if (got != 0 || w != pid) { /* hung (or died): do not leave it behind */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child did not finish within %d s (or died)", CHILD_SECONDS);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_memory_equal(&mine, &theirs, sizeof mine);
    /* and the parent's threads still work after the fork */
    assert_int_equal(td_sampler_generate(r.idle, canvas, B, T, NULL, NULL, NULL), TD_OK);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_child_computes_on_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
