/* Internal error reporting: set the calling thread's detail message and
 * return the status, so a failure reads `return tdi_fail(TD_ERR_..., ...)`. */
#ifndef TDI_ERROR_H
#define TDI_ERROR_H

#include "textdiff/textdiff.h"

#include <pthread.h>

#if defined(__GNUC__)
#  define TDI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define TDI_PRINTF(f, a)
#endif

/* The calling thread's message is always set. While a public call runs on a
 * handle, the message is also copied into the handle's error slot, which a
 * host reads with td_<handle>_errmsg() from any thread. */
td_status tdi_fail(td_status status, const char *fmt, ...) TDI_PRINTF(2, 3);

/* Every handle's first member. The slot is logically outside the handle's
 * value: writing it through a const handle is allowed (and locked). */
typedef struct tdi_errslot {
    pthread_mutex_t lock;
    char msg[512];
} tdi_errslot;

void tdi_errslot_init(tdi_errslot *e);
/* Also forgets the slot if it is the calling thread's current one. */
void tdi_errslot_destroy(tdi_errslot *e);
/* The td_<handle>_errmsg() contract: copy, truncate, NUL-terminate,
 * return the full length. */
size_t tdi_errslot_copy(const tdi_errslot *e, char *buf, size_t cap);

/* The first statement of every public function that can fail: failures until
 * the next public call on this thread also go to `e` (NULL: the thread's
 * message only). Since every fallible public call begins with it, a slot
 * left current after a call is never written again. */
void tdi_enter(const tdi_errslot *e);
#define TDI_ENTER(h) tdi_enter((h) != NULL ? &(h)->err : NULL)
#define TDI_ENTER_NONE() tdi_enter(NULL)

/* Fail with `status`, putting a formatted context before the message the
 * failing callee left: "context: callee's message". */
td_status tdi_fail_context(td_status status, const char *fmt, ...) TDI_PRINTF(2, 3);

/* Argument checks that name the offending argument and function. */
#define TDI_CHECK_ARG(cond, ...) \
    do { if (!(cond)) return tdi_fail(TD_ERR_INVALID_ARG, __VA_ARGS__); } while (0)
#define TDI_CHECK_PTR(p) TDI_CHECK_ARG((p) != NULL, "%s: %s is NULL", __func__, #p)

/* Propagate a non-OK status unchanged (its message is already set). */
#define TDI_TRY(expr) \
    do { td_status tdi_st_ = (expr); if (tdi_st_ != TD_OK) return tdi_st_; } while (0)

#endif
