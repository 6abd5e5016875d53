/* libFuzzer target for the checkpoint reader (memory buffers).
 *
 * Beyond "no crash, no leak, no out-of-bounds access", every accepted input
 * must be self-consistent: lookups by name find the entries that iteration
 * shows, every getter agrees with the type, tensor sizes match their shapes,
 * and writing the parsed contents back out and reading them again gives the
 * same contents. A violation traps, which the fuzzer reports as a crash.
 *
 * The same bytes, when accepted (and one input in 32 otherwise), are also
 * read back through a file, which must give the same verdict: the file reader streams (chunked reads, CRCs accumulated as
 * the bytes pass) where the memory reader sees everything at once. Every
 * input also goes through the reader that borrows stored tensors from a
 * lasting buffer (as td_model_load does from a mapped file).
 *
 * Build with -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION to let mutated inputs
 * past the CRCs (docs/format.md#reading); without it the fuzzer exercises the
 * checks in front of them. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static void check_meta(const tdi_ckpt *c, size_t i, tdi_ckpt_writer *w)
{
    const char *key = tdi_ckpt_meta_key(c, i);
    CHECK(key != NULL && strlen(key) >= 1 && strlen(key) <= TDI_CKPT_MAX_NAME);
    uint32_t type = tdi_ckpt_meta_type(c, key);
    CHECK(type != 0);
    int64_t i64;
    uint64_t u64;
    double f64;
    const char *s;
    size_t n;
    const int64_t *ia;
    const uint64_t *ua;
    const double *fa;
    CHECK((tdi_ckpt_get_i64(c, key, &i64) == TD_OK) == (type == TDI_META_I64));
    CHECK((tdi_ckpt_get_u64(c, key, &u64) == TD_OK) == (type == TDI_META_U64));
    CHECK((tdi_ckpt_get_f64(c, key, &f64) == TD_OK) == (type == TDI_META_F64));
    CHECK((tdi_ckpt_get_string(c, key, &s, &n) == TD_OK) == (type == TDI_META_STRING));
    CHECK((tdi_ckpt_get_i64_array(c, key, &ia, &n) == TD_OK) == (type == TDI_META_I64_ARRAY));
    CHECK((tdi_ckpt_get_u64_array(c, key, &ua, &n) == TD_OK) == (type == TDI_META_U64_ARRAY));
    CHECK((tdi_ckpt_get_f64_array(c, key, &fa, &n) == TD_OK) == (type == TDI_META_F64_ARRAY));
    td_status st = TD_OK;
    switch (type) {
    case TDI_META_I64: tdi_ckpt_get_i64(c, key, &i64); st = tdi_ckpt_put_i64(w, key, i64); break;
    case TDI_META_U64: tdi_ckpt_get_u64(c, key, &u64); st = tdi_ckpt_put_u64(w, key, u64); break;
    case TDI_META_F64: tdi_ckpt_get_f64(c, key, &f64); st = tdi_ckpt_put_f64(w, key, f64); break;
    case TDI_META_STRING:
        tdi_ckpt_get_string(c, key, &s, &n);
        CHECK(strlen(s) == n);
        st = tdi_ckpt_put_string(w, key, s);
        break;
    case TDI_META_I64_ARRAY:
        tdi_ckpt_get_i64_array(c, key, &ia, &n);
        st = tdi_ckpt_put_i64_array(w, key, ia, n);
        break;
    case TDI_META_U64_ARRAY:
        tdi_ckpt_get_u64_array(c, key, &ua, &n);
        st = tdi_ckpt_put_u64_array(w, key, ua, n);
        break;
    case TDI_META_F64_ARRAY:
        tdi_ckpt_get_f64_array(c, key, &fa, &n);
        st = tdi_ckpt_put_f64_array(w, key, fa, n);
        break;
    default: break; /* a newer minor's type: not carried over */
    }
    CHECK(st == TD_OK || st == TD_ERR_NOMEM);
}

static void check_tensor(const tdi_ckpt *c, size_t i, tdi_ckpt_writer *w)
{
    const tdi_ckpt_tensor *t = tdi_ckpt_tensor_at(c, i);
    CHECK(t != NULL && tdi_ckpt_tensor_find(c, t->name) == t);
    CHECK(t->ndim <= TDI_CKPT_MAX_DIMS);
    uint64_t count = 1;
    for (uint32_t d = 0; d < TDI_CKPT_MAX_DIMS; d++) {
        CHECK(t->dims[d] >= 1);
        count *= t->dims[d];
    }
    CHECK(count == t->count && t->nbytes == count * tdi_dtype_size(t->dtype));
    CHECK((uintptr_t)t->data % TDI_ALIGN == 0);
    volatile unsigned char sum = 0; /* every byte is readable */
    for (size_t b = 0; b < t->nbytes; b++) sum ^= ((const unsigned char *)t->data)[b];
    (void)sum;
    td_status st = tdi_ckpt_add_tensor(w, t->name, t->dtype, t->ndim, t->dims, t->data,
                                       (i % 2) ? TDI_CKPT_COMPRESS : 0);
    CHECK(st == TD_OK || st == TD_ERR_NOMEM);
}

/* The re-read copy holds the same entries (minus unknown types). */
static void check_same(const tdi_ckpt *a, const tdi_ckpt *b)
{
    CHECK(tdi_ckpt_tensor_count(a) == tdi_ckpt_tensor_count(b));
    for (size_t i = 0; i < tdi_ckpt_tensor_count(a); i++) {
        const tdi_ckpt_tensor *x = tdi_ckpt_tensor_at(a, i), *y = tdi_ckpt_tensor_at(b, i);
        CHECK(strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim);
        CHECK(memcmp(x->dims, y->dims, sizeof x->dims) == 0 && x->nbytes == y->nbytes);
        CHECK(memcmp(x->data, y->data, x->nbytes) == 0);
    }
    size_t kept = 0;
    for (size_t i = 0; i < tdi_ckpt_meta_count(a); i++) {
        const char *key = tdi_ckpt_meta_key(a, i);
        uint32_t type = tdi_ckpt_meta_type(a, key);
        if (type > TDI_META_F64_ARRAY) continue;
        CHECK(strcmp(tdi_ckpt_meta_key(b, kept++), key) == 0);
        CHECK(tdi_ckpt_meta_type(b, key) == type);
        const char *s, *t;
        size_t n, m;
        const int64_t *ia, *ib;
        switch (type) {
        case TDI_META_STRING:
            tdi_ckpt_get_string(a, key, &s, &n);
            tdi_ckpt_get_string(b, key, &t, &m);
            CHECK(n == m && memcmp(s, t, n) == 0);
            break;
        case TDI_META_I64_ARRAY:
            tdi_ckpt_get_i64_array(a, key, &ia, &n);
            tdi_ckpt_get_i64_array(b, key, &ib, &m);
            CHECK(n == m && (n == 0 || memcmp(ia, ib, n * 8) == 0));
            break;
        default: break;
        }
    }
    CHECK(kept == tdi_ckpt_meta_count(b));
}

/* One unlinked scratch file per process, reached through /proc (Linux, as
 * libFuzzer is), so that nothing is left behind however the run ends. */
static const char *scratch(int *fd_out)
{
    static char path[64];
    static int fd = -1;
    if (fd < 0) {
        char name[] = "/tmp/fuzz_checkpoint.XXXXXX";
        fd = mkstemp(name);
        if (fd < 0) return NULL;
        unlink(name);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    *fd_out = fd;
    return path;
}

static void check_file_agrees(const uint8_t *data, size_t size, td_status want)
{
    int fd;
    const char *path = scratch(&fd);
    if (!path || ftruncate(fd, 0) != 0) return;
    if (size && pwrite(fd, data, size, 0) != (ssize_t)size) return;
    tdi_ckpt *c = NULL;
    td_status st = tdi_ckpt_read_file(NULL, path, &c);
    CHECK(st == want || st == TD_ERR_NOMEM || want == TD_ERR_NOMEM);
    tdi_ckpt_free(c);
}

/* Two parses of the same bytes: the same tensors and the same metadata,
 * unknown types included. */
static void check_identical(const tdi_ckpt *a, const tdi_ckpt *b)
{
    CHECK(tdi_ckpt_tensor_count(a) == tdi_ckpt_tensor_count(b));
    for (size_t i = 0; i < tdi_ckpt_tensor_count(a); i++) {
        const tdi_ckpt_tensor *x = tdi_ckpt_tensor_at(a, i), *y = tdi_ckpt_tensor_at(b, i);
        CHECK(strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim);
        CHECK(memcmp(x->dims, y->dims, sizeof x->dims) == 0 && x->nbytes == y->nbytes);
        CHECK(memcmp(x->data, y->data, x->nbytes) == 0);
        CHECK((uintptr_t)y->data % TDI_ALIGN == 0);
    }
    CHECK(tdi_ckpt_meta_count(a) == tdi_ckpt_meta_count(b));
    for (size_t i = 0; i < tdi_ckpt_meta_count(a); i++) {
        const char *key = tdi_ckpt_meta_key(a, i);
        CHECK(strcmp(tdi_ckpt_meta_key(b, i), key) == 0);
        CHECK(tdi_ckpt_meta_type(a, key) == tdi_ckpt_meta_type(b, key));
    }
}

/* The reader that borrows stored tensors from a lasting buffer (a mapped
 * file, here a 64-byte-aligned copy) gives the same verdict and contents. */
static void check_borrowed_agrees(const uint8_t *data, size_t size, td_status want,
                                  const tdi_ckpt *c)
{
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size ? size : 1) != 0) return;
    if (size) memcpy(copy, data, size);
    tdi_ckpt *b = NULL;
    td_status st = tdi_ckpt_read_borrowed(NULL, copy, size, "<mapped>", &b);
    CHECK(st == want || st == TD_ERR_NOMEM || want == TD_ERR_NOMEM);
    if (st == TD_OK && c != NULL) check_identical(c, b);
    tdi_ckpt_free(b);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdi_ckpt *c = NULL;
    td_status st = tdi_ckpt_read_memory(NULL, data, size, &c);
    CHECK((st == TD_OK) == (c != NULL));
    check_borrowed_agrees(data, size, st, c);
    /* The file round trip costs system calls: every accepted input, and a
     * deterministic one in 32 of the rest. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    if (st == TD_OK || (h & 31) == 0) check_file_agrees(data, size, st);
    if (st != TD_OK) {
        CHECK(st == TD_ERR_FORMAT || st == TD_ERR_CORRUPT || st == TD_ERR_VERSION ||
              st == TD_ERR_NOMEM);
        return 0;
    }
    tdi_ckpt_writer *w = NULL;
    if (tdi_ckpt_writer_create(NULL, &w) != TD_OK) {
        tdi_ckpt_free(c);
        return 0;
    }
    tdi_ckpt_writer_set_level(w, (int)(size % 10));
    for (size_t i = 0; i < tdi_ckpt_meta_count(c); i++) check_meta(c, i, w);
    for (size_t i = 0; i < tdi_ckpt_tensor_count(c); i++) check_tensor(c, i, w);
    CHECK(tdi_ckpt_meta_key(c, tdi_ckpt_meta_count(c)) == NULL);
    CHECK(tdi_ckpt_tensor_at(c, tdi_ckpt_tensor_count(c)) == NULL);

    void *buf = NULL;
    size_t n = 0;
    st = tdi_ckpt_write_memory(w, &buf, &n);
    CHECK(st == TD_OK || st == TD_ERR_NOMEM);
    if (st == TD_OK) {
        tdi_ckpt *again = NULL;
        st = tdi_ckpt_read_memory(NULL, buf, n, &again);
        CHECK(st == TD_OK || st == TD_ERR_NOMEM);
        if (st == TD_OK) check_same(c, again);
        tdi_ckpt_free(again);
        tdi_free(tdi_ckpt_writer_allocator(w), buf);
    }
    tdi_ckpt_writer_free(w);
    tdi_ckpt_free(c);
    return 0;
}
