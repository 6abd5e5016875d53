/* A host that links neither libtextdiff nor a threads library of its own:
 * it dlopen()s the library, samples on 2 threads, frees everything and
 * dlclose()s it, 20 times. A worker left running inside the unmapped
 * library would crash it (SIGSEGV) or show up as a thread that outlives the
 * library. usage: dlopen_host PATH_TO_LIBTEXTDIFF_SO */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textdiff/textdiff.h"

enum { ROUNDS = 20, B = 2, T = 32, V = 40, MASK = 38 };

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Is a file whose path contains `name` mapped into this process? */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) return -1;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

/* The few functions the host needs, looked up by name. */
typedef struct api {
    td_status (*model_config_init)(td_model_config *, size_t);
    td_status (*model_create)(const td_model_config *, uint64_t, const td_allocator *,
                              td_model **);
    void (*model_free)(td_model *);
    td_status (*schedule_config_init)(td_schedule_config *, size_t, td_schedule_kind);
    td_status (*schedule_create)(const td_schedule_config *, const td_allocator *,
                                 td_schedule **);
    void (*schedule_free)(td_schedule *);
    td_status (*sampler_config_init)(td_sampler_config *, size_t);
    td_status (*sampler_create)(const td_model *, const td_schedule *,
                                const td_sampler_config *, td_sampler **);
    td_status (*sampler_generate)(td_sampler *, int32_t *, int32_t, int32_t,
                                  td_sampler_callback, void *, td_sample_stats *);
    void (*sampler_free)(td_sampler *);
    const char *(*last_error_message)(void);
} api;

/* POSIX: a function's address fits a void *; memcpy keeps ISO C quiet. */
static int lookup(void *lib, const char *name, void *fn, size_t size)
{
    void *sym = dlsym(lib, name);
    if (sym == NULL) {
        fprintf(stderr, "dlsym(%s): %s\n", name, dlerror());
        return 1;
    }
    memcpy(fn, &sym, size);
    return 0;
}

#define LOOKUP(lib, a, field) lookup(lib, "td_" #field, &(a)->field, sizeof (a)->field)

static int bind(void *lib, api *a)
{
    return LOOKUP(lib, a, model_config_init) | LOOKUP(lib, a, model_create) |
           LOOKUP(lib, a, model_free) | LOOKUP(lib, a, schedule_config_init) |
           LOOKUP(lib, a, schedule_create) | LOOKUP(lib, a, schedule_free) |
           LOOKUP(lib, a, sampler_config_init) | LOOKUP(lib, a, sampler_create) |
           LOOKUP(lib, a, sampler_generate) | LOOKUP(lib, a, sampler_free) |
           LOOKUP(lib, a, last_error_message);
}

/* One round through the API; returns 0 on success. */
static int sample_once(const api *a)
{
    td_model_config mc;
    td_schedule_config shc;
    td_sampler_config sc;
    td_model *m = NULL;
    td_schedule *sch = NULL;
    td_sampler *s = NULL;
    int32_t canvas[B * T];
    for (int i = 0; i < B * T; i++) canvas[i] = MASK;
    int bad = a->model_config_init(&mc, sizeof mc) != TD_OK;
    mc.vocab_size = V;
    mc.mask_id = MASK;
    mc.max_seq_len = T;
    mc.d_model = 64;
    mc.n_layers = 2;
    mc.n_heads = 2;
    mc.d_ff = 128;
    bad = bad || a->model_create(&mc, 1, NULL, &m) != TD_OK;
    bad = bad || a->schedule_config_init(&shc, sizeof shc, TD_SCHEDULE_LOGLINEAR) != TD_OK;
    bad = bad || a->schedule_create(&shc, NULL, &sch) != TD_OK;
    bad = bad || a->sampler_config_init(&sc, sizeof sc) != TD_OK;
    sc.steps = 8;
    sc.max_batch = B;
    sc.max_seq_len = T;
    sc.n_threads = 2;
    bad = bad || a->sampler_create(m, sch, &sc, &s) != TD_OK;
    bad = bad || a->sampler_generate(s, canvas, B, T, NULL, NULL, NULL) != TD_OK;
    for (int i = 0; !bad && i < B * T; i++) bad = canvas[i] == MASK;
    if (bad) fprintf(stderr, "failed: %s\n", a->last_error_message());
    a->sampler_free(s);
    a->schedule_free(sch);
    a->model_free(m);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_LIBTEXTDIFF_SO\n", argv[0]);
        return 2;
    }
    int base = count_threads();
    for (int r = 0; r < ROUNDS; r++) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        api a;
        memset(&a, 0, sizeof a);
        if (bind(lib, &a) != 0 || sample_once(&a) != 0) return 1;
        if (dlclose(lib) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
        if (mapped("libtextdiff") != 0) {
            fprintf(stderr, "round %d: the library is still mapped after dlclose\n", r);
            return 1;
        }
        if (count_threads() != base) {
            fprintf(stderr, "round %d: %d threads after dlclose, %d before dlopen\n", r,
                    count_threads(), base);
            return 1;
        }
    }
    printf("dlopen_host: %d rounds, no thread left behind\n", ROUNDS);
    return 0;
}
