#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One message per thread, and the slot of the handle the thread's current
 * public call works on: the library keeps no other mutable global state. */
static _Thread_local char tdi_last_message[512];
static _Thread_local tdi_errslot *tdi_current;

void tdi_errslot_init(tdi_errslot *e)
{
    pthread_mutex_init(&e->lock, NULL);
    e->msg[0] = '\0';
}

void tdi_errslot_destroy(tdi_errslot *e)
{
    if (tdi_current == e) tdi_current = NULL;
    pthread_mutex_destroy(&e->lock);
}

size_t tdi_errslot_copy(const tdi_errslot *e, char *buf, size_t cap)
{
    if (e == NULL) {
        if (cap > 0) buf[0] = '\0';
        return 0;
    }
    tdi_errslot *w = (tdi_errslot *)e;
    pthread_mutex_lock(&w->lock);
    size_t len = strlen(w->msg);
    if (cap > 0 && buf != NULL) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, w->msg, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&w->lock);
    return len;
}

void tdi_enter(const tdi_errslot *e)
{
    tdi_current = (tdi_errslot *)e;
}

/* The thread's message is final: publish it to the current handle. */
static void publish(void)
{
    tdi_errslot *e = tdi_current;
    if (e == NULL) return;
    pthread_mutex_lock(&e->lock);
    memcpy(e->msg, tdi_last_message, sizeof e->msg);
    pthread_mutex_unlock(&e->lock);
}

td_status tdi_fail(td_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tdi_last_message, sizeof tdi_last_message, fmt, ap);
    va_end(ap);
    publish();
    return status;
}

td_status tdi_fail_context(td_status status, const char *fmt, ...)
{
    char detail[sizeof tdi_last_message];
    memcpy(detail, tdi_last_message, sizeof detail);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tdi_last_message, sizeof tdi_last_message, fmt, ap);
    va_end(ap);
    if (n < 0) {
        publish();
        return status;
    }
    /* Append ": detail", truncated to what is left of the buffer. */
    size_t used = (size_t)n < sizeof tdi_last_message ? (size_t)n : sizeof tdi_last_message - 1;
    const char *parts[2] = { ": ", detail };
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(parts[i]), room = sizeof tdi_last_message - 1 - used;
        if (len > room) len = room;
        memcpy(tdi_last_message + used, parts[i], len);
        used += len;
    }
    tdi_last_message[used] = '\0';
    publish();
    return status;
}

const char *td_last_error_message(void)
{
    return tdi_last_message;
}

const char *td_status_string(td_status status)
{
    switch (status) {
    case TD_OK:              return "success";
    case TD_ERR_INVALID_ARG: return "invalid argument";
    case TD_ERR_NOMEM:       return "out of memory";
    case TD_ERR_IO:          return "input/output error";
    case TD_ERR_FORMAT:      return "unrecognised file format";
    case TD_ERR_CORRUPT:     return "corrupt data";
    case TD_ERR_VERSION:     return "unsupported version";
    case TD_ERR_NUMERIC:     return "non-finite value";
    case TD_ERR_STATE:       return "invalid state for this call";
    case TD_ERR_CANCELLED:   return "cancelled";
    case TD_ERR_UNSUPPORTED: return "not supported by this build";
    case TD_ERR_INTERNAL:    return "internal error";
    }
    return "unknown status";
}
