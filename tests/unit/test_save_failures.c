/* Saving when the file system says no: a full disk (RLIMIT_FSIZE) and a
 * directory the process may not write return TD_ERR_IO, leave the previous
 * checkpoint intact and no temporary file behind; a symbolic link at the
 * target is replaced by the new file and its old target is left alone
 * (docs/format.md, "Atomic writes"). */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/toy.h"
#include "textdiff/textdiff.h"

enum { V = 40, MASK = 39, T = 16 };

static char g_dir[256];

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static unsigned char *slurp(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*size + 1);
    assert_int_equal(fread(b, 1, (size_t)*size, f), (size_t)*size);
    fclose(f);
    return b;
}

static void assert_no_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp-") != NULL) fail_msg("temporary file left: %s", e->d_name);
    closedir(d);
}

/* A trainer that has taken a step, so its checkpoint is not the initial one. */
static td_trainer *trained(td_model **m, td_schedule **s)
{
    *m = toy_model_create(V, MASK, T, 1, NULL);
    *s = toy_schedule(TD_SCHEDULE_LOGLINEAR);
    td_trainer_config c;
    td_trainer_config_default(&c);
    c.batch_size = 2;
    c.seq_len = T;
    td_trainer *t;
    assert_int_equal(td_trainer_create(*m, *s, &c, &t), TD_OK);
    int32_t tokens[2 * T];
    for (int i = 0; i < 2 * T; i++) tokens[i] = i % MASK;
    assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK);
    return t;
}

/* Runs fn in a child process (so its limits and identity stay there) and
 * returns the status the child's save returned. */
static td_status in_child(td_status (*fn)(td_trainer *, const char *), td_trainer *t,
                          const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit((int)fn(t, path));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return (td_status)WEXITSTATUS(status);
}

static td_status save_with_small_disk(td_trainer *t, const char *path)
{
    signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG */
    struct rlimit r = { 4096, 4096 };
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) return TD_ERR_INTERNAL;
    return td_trainer_save(t, path);
}

static td_status save_without_permission(td_trainer *t, const char *path)
{
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return TD_ERR_INTERNAL;
    return td_trainer_save(t, path);
}

static void test_full_disk_keeps_the_previous_checkpoint(void **state)
{
    (void)state;
    td_model *m;
    td_schedule *s;
    td_trainer *t = trained(&m, &s);
    const char *path = path_of("full.ckpt");
    assert_int_equal(td_trainer_save(t, path), TD_OK);
    long size;
    unsigned char *before = slurp(path, &size);
    assert_true(size > 4096);
    int32_t tokens[2 * T];
    for (int i = 0; i < 2 * T; i++) tokens[i] = (i * 3) % MASK;
    assert_int_equal(td_trainer_step(t, tokens, NULL), TD_OK); /* now it differs */

    assert_int_equal(in_child(save_with_small_disk, t, path), TD_ERR_IO);
    long after_size;
    unsigned char *after = slurp(path, &after_size);
    assert_int_equal(after_size, size);
    assert_memory_equal(after, before, (size_t)size);
    assert_no_temporaries(g_dir);
    free(before);
    free(after);
    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_unwritable_directory_keeps_the_previous_checkpoint(void **state)
{
    (void)state;
    td_model *m;
    td_schedule *s;
    td_trainer *t = trained(&m, &s);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/locked", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    assert_int_equal(td_trainer_save(t, path), TD_OK);
    long size;
    unsigned char *before = slurp(path, &size);
    if (getuid() != 0) assert_int_equal(chmod(dir, 0555), 0);
    assert_int_equal(in_child(save_without_permission, t, path), TD_ERR_IO);
    long after_size;
    unsigned char *after = slurp(path, &after_size);
    assert_int_equal(after_size, size);
    assert_memory_equal(after, before, (size_t)size);
    assert_no_temporaries(dir);
    chmod(dir, 0755);
    free(before);
    free(after);
    td_trainer_free(t);
    td_schedule_free(s);
    td_model_free(m);
}

static void test_a_symlink_is_replaced_not_followed(void **state)
{
    (void)state;
    td_model *a = toy_model_create(V, MASK, T, 1, NULL);
    td_model *b = toy_model_create(V, MASK, T, 2, NULL);
    const char *target = path_of("target.tdm"), *link = path_of("link.tdm");
    assert_int_equal(td_model_save(a, target), TD_OK);
    long size;
    unsigned char *before = slurp(target, &size);
    assert_int_equal(symlink("target.tdm", link), 0);
    assert_int_equal(td_model_save(b, link), TD_OK);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode)); /* the link became the new file */
    long after_size;
    unsigned char *after = slurp(target, &after_size);
    assert_int_equal(after_size, size); /* its old target is untouched */
    assert_memory_equal(after, before, (size_t)size);
    td_model *back;
    assert_int_equal(td_model_load(link, NULL, &back), TD_OK);
    float la[T * V], lb[T * V];
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = i;
    assert_int_equal(td_model_logits(b, ids, 1, T, 1, la), TD_OK);
    assert_int_equal(td_model_logits(back, ids, 1, T, 1, lb), TD_OK);
    assert_memory_equal(la, lb, sizeof la);
    free(before);
    free(after);
    td_model_free(back);
    td_model_free(b);
    td_model_free(a);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/td_save_failures_XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    chmod(g_dir, 0755); /* the unprivileged child must reach its subdirectory */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_keeps_the_previous_checkpoint),
        cmocka_unit_test(test_unwritable_directory_keeps_the_previous_checkpoint),
        cmocka_unit_test(test_a_symlink_is_replaced_not_followed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
