/*
 * cevent: a minimal stand-in for QEMU's Error API (qapi/error.h).  An Error
 * carries an errno value and a message; functions that fail set *errp when
 * errp is not NULL, as upstream.
 *
 * cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef QAPI_ERROR_H
#define QAPI_ERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "qemu/osdep.h"

struct Error {
    int errnum;          /* errno value, or 0 */
    char msg[256];
};

static inline void __attribute__((format(printf, 3, 4)))
error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
{
    va_list ap;
    Error *err;
    size_t len;

    if (!errp || *errp) {
        return;
    }
    err = g_new0(Error, 1);
    err->errnum = os_errno;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (os_errno) {
        len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, ": %s",
                 strerror(os_errno));
    }
    *errp = err;
}

#define error_setg(errp, ...) error_setg_errno(errp, 0, __VA_ARGS__)

static inline const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

static inline void error_free(Error *err)
{
    g_free(err);
}

#endif /* QAPI_ERROR_H */
