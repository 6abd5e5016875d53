/* Killed training never loses a checkpoint.
 *
 * usage: crash_kill TRAIN_MLM CORPUS WORKDIR [KILLS]
 *
 * Runs the training example once without interruption (the reference), then
 * again under SIGKILL: it is started with --resume, killed, started again,
 * KILLS times (default 100). Each start lets a random number (0-3) of
 * checkpoint writes pass, which inotify reports as the temporary file is
 * created, so a start makes at most a few steps of progress however fast
 * the machine is. Then two kills in three follow within 0–400 µs of the
 * next write's start, while the file is being written, flushed or renamed;
 * the others come 0–3 ms later, anywhere in a step; one start in ten is
 * killed during its first 50 ms instead. After every kill the checkpoint
 * on disk must load. Finally the run is resumed to its end, and its final
 * model must equal the reference bit for bit. Prints the counts; exits 0 on
 * success. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "textdiff/textdiff.h"

static const char *train, *corpus, *dir;

static void die(const char *what)
{
    fprintf(stderr, "crash_kill: %s\n", what);
    exit(1);
}

static pid_t start(const char *name, const char *export_name)
{
    char ckpt[4096], export_path[4096];
    snprintf(ckpt, sizeof ckpt, "%s/%s", dir, name);
    snprintf(export_path, sizeof export_path, "%s/%s", dir, export_name);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(train, train, "--corpus", corpus, "--d-model", "32", "--layers", "1", "--heads",
              "2", "--seq-len", "32", "--batch", "4", "--steps", "1000", "--warmup", "10",
              "--save-every", "1", "--eval-every", "0", "--threads", "1", "--checkpoint", ckpt,
              "--resume", "--export", export_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    return status;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* Waits for the creation of a temporary checkpoint file (".run.ckpt.tmp-")
 * in the work directory, for at most timeout_s; 1 if one appeared. */
static int wait_for_write(int ino, double timeout_s)
{
    char buf[4096] __attribute__((aligned(8)));
    double end = now() + timeout_s;
    while (now() < end) {
        struct pollfd p = { ino, POLLIN, 0 };
        if (poll(&p, 1, 10) <= 0) continue;
        ssize_t n = read(ino, buf, sizeof buf);
        for (ssize_t off = 0; off < n;) {
            const struct inotify_event *e = (const void *)(buf + off);
            if (e->len > 0 && strstr(e->name, ".run.ckpt.tmp-") == e->name) return 1;
            off += (ssize_t)(sizeof *e + e->len);
        }
    }
    return 0;
}

static void drain(int ino)
{
    char buf[4096] __attribute__((aligned(8)));
    while (read(ino, buf, sizeof buf) > 0) {
    }
}

static int loads(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    td_model *m = NULL;
    td_status st = td_model_load(path, NULL, &m);
    td_model_free(m);
    if (st != TD_OK) fprintf(stderr, "crash_kill: %s: %s\n", path, td_last_error_message());
    return st == TD_OK;
}

static int same_file(const char *a, const char *b)
{
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/%s", dir, a);
    snprintf(pb, sizeof pb, "%s/%s", dir, b);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    int same = fa != NULL && fb != NULL;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

int main(int argc, char **argv)
{
    if (argc < 4) die("usage: crash_kill TRAIN_MLM CORPUS WORKDIR [KILLS]");
    train = argv[1];
    corpus = argv[2];
    dir = argv[3];
    int kills = argc > 4 ? atoi(argv[4]) : 100;
    mkdir(dir, 0755);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*.ckpt '%s'/*.tdm '%s'/.*.tmp-*", dir, dir, dir);
    if (system(cmd) != 0) die("cleaning the work directory");

    if (finish(start("ref.ckpt", "ref.tdm")) != 0) die("the reference run failed");

    int ino = inotify_init1(IN_NONBLOCK);
    if (ino < 0 || inotify_add_watch(ino, dir, IN_CREATE) < 0) die("inotify");
    srand(12345);
    int killed = 0, in_write = 0, restarts = 0;
    while (killed < kills) {
        drain(ino);
        pid_t pid = start("run.ckpt", "run.tdm");
        restarts++;
        int how = rand() % 30; /* 0-2: early; even: in a write; odd: anywhere */
        if (how < 3) {
            sleep_us(rand() % 50000);
        } else {
            int skip = rand() % 4, seen = 0;
            while (seen <= skip && wait_for_write(ino, 20.0)) seen++;
            if (how % 2 == 0 && seen > skip) {
                sleep_us(rand() % 400);
                in_write++;
            } else {
                sleep_us(rand() % 3000);
            }
        }
        if (kill(pid, SIGKILL) != 0) die("kill");
        int status = finish(pid);
        if (WIFEXITED(status)) { /* it finished before the kill */
            if (WEXITSTATUS(status) != 0) die("a resumed run failed");
            break;
        }
        killed++;
        char path[4096];
        snprintf(path, sizeof path, "%s/run.ckpt", dir);
        /* Before the first checkpoint there is none; after it, it loads. */
        if (access(path, F_OK) == 0 && !loads("run.ckpt"))
            die("the checkpoint on disk does not load");
    }
    if (finish(start("run.ckpt", "run.tdm")) != 0) die("the final resumed run failed");
    int same = same_file("ref.tdm", "run.tdm");
    printf("crash_kill: %d kills (%d timed inside a checkpoint write) over %d starts; "
           "every checkpoint loaded; final model %s the uninterrupted run's\n",
           killed, in_write, restarts, same ? "equals" : "DIFFERS FROM");
    if (killed < kills) die("the run finished before every kill was made");
    return same ? 0 : 1;
}
