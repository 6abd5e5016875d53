/* A td_allocator for tests: counts live blocks, can be told to fail the k-th
 * allocation (fault injection, as SQLite does), and hands out blocks whose
 * address modulo 64 changes from call to call, so that code relying on the
 * host's alignment (instead of the library's own) is caught. */
#ifndef TD_TEST_ALLOC_HOOKS_H
#define TD_TEST_ALLOC_HOOKS_H

#include <stdlib.h>
#include <string.h>

#include "textdiff/textdiff.h"

typedef struct test_heap {
    long live;      /* blocks allocated and not yet freed */
    long calls;     /* malloc + realloc calls so far */
    long fail_at;   /* fail the call with this index (0-based); -1: never */
} test_heap;

typedef struct test_block_header { void *raw; size_t size; } test_block_header;

static void *test_heap_block(test_heap *h, size_t size)
{
    size_t shift = (size_t)(h->calls % 4) * 16; /* 16-aligned, varying mod 64 */
    unsigned char *raw = malloc(size + 64 + sizeof(test_block_header));
    if (!raw) return NULL;
    unsigned char *block = raw + sizeof(test_block_header) + shift;
    test_block_header hdr = { raw, size };
    memcpy(block - sizeof hdr, &hdr, sizeof hdr);
    return block;
}

static test_block_header test_heap_header(void *block)
{
    test_block_header hdr;
    memcpy(&hdr, (unsigned char *)block - sizeof hdr, sizeof hdr);
    return hdr;
}

static void *test_heap_malloc(void *user, size_t size)
{
    test_heap *h = user;
    if (h->calls++ == h->fail_at) return NULL;
    void *p = test_heap_block(h, size);
    if (p) h->live++;
    return p;
}

static void *test_heap_realloc(void *user, void *ptr, size_t size)
{
    test_heap *h = user;
    if (ptr == NULL) return test_heap_malloc(user, size);
    if (h->calls++ == h->fail_at) return NULL;
    void *p = test_heap_block(h, size);
    if (!p) return NULL;
    test_block_header old = test_heap_header(ptr);
    memcpy(p, ptr, old.size < size ? old.size : size);
    free(old.raw);
    return p;
}

static void test_heap_free(void *user, void *ptr)
{
    test_heap *h = user;
    if (ptr == NULL) return;
    h->live--;
    free(test_heap_header(ptr).raw);
}

static inline td_allocator test_heap_allocator(test_heap *h)
{
    memset(h, 0, sizeof *h);
    h->fail_at = -1;
    td_allocator a = { test_heap_malloc, test_heap_realloc, test_heap_free, h };
    return a;
}

/* Fault injection over one operation (include after <cmocka.h>): run
 * op(ctx) with the k-th allocation from now on failing, for k = 0, 1, 2, ...
 * until it succeeds. Every failing run must return exactly TD_ERR_NOMEM and
 * leave exactly the blocks that were live before it; `check` (may be NULL)
 * then runs, e.g. to see that nothing observable changed. The operation must
 * release what it creates when it succeeds, too. Returns the number of
 * failing runs. */
static inline long test_heap_fail_each(test_heap *h, const char *what, td_status (*op)(void *ctx),
                                       void (*check)(void *ctx), void *ctx)
{
    long live = h->live, failures = 0;
    for (long k = 0;; k++) {
        h->fail_at = h->calls + k;
        td_status st = op(ctx);
        h->fail_at = -1;
        if (h->live != live)
            fail_msg("%s, allocation %ld failing: %ld blocks leaked or freed (%s)", what, k,
                     h->live - live, td_status_string(st));
        if (st == TD_OK) break;
        if (st != TD_ERR_NOMEM)
            fail_msg("%s, allocation %ld failing: %s instead of out of memory: %s", what, k,
                     td_status_string(st), td_last_error_message());
        if (check) check(ctx);
        failures++;
    }
    return failures;
}

#endif
