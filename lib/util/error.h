/* Internal error reporting: set the calling thread's detail message and
 * return the status, so a failure reads `return tdi_fail(TD_ERR_..., ...)`. */
#ifndef TDI_ERROR_H
#define TDI_ERROR_H

#include "textdiff/textdiff.h"

#if defined(__GNUC__)
#  define TDI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define TDI_PRINTF(f, a)
#endif

td_status tdi_fail(td_status status, const char *fmt, ...) TDI_PRINTF(2, 3);

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
