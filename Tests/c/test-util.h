/*
 * What the standalone C tests (Tests/c/test-*.c) share: the pass/fail
 * counters, CHECK(), and the fd monitor each run asks for.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */
#ifndef CEVENT_TEST_UTIL_H
#define CEVENT_TEST_UTIL_H

#include "qemu/osdep.h"

static int passed, failed;

/* Count a failed check and leave the test function */
#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, \
                    __LINE__, __func__, #cond); \
            failed++; \
            return; \
        } \
    } while (0)

#ifdef QEMU_AIO_H
/* The fd monitor of this run: CEVENT_TEST_FDMON (Makefile's check) */
static inline AioFdmonKind test_kind(void)
{
    const char *s = getenv("CEVENT_TEST_FDMON");

    if (!s || !strcmp(s, "auto")) {
        return AIO_FDMON_AUTO;
    } else if (!strcmp(s, "poll")) {
        return AIO_FDMON_POLL;
    } else if (!strcmp(s, "epoll")) {
        return AIO_FDMON_EPOLL;
    } else if (!strcmp(s, "io_uring")) {
        return AIO_FDMON_IO_URING;
    }
    fprintf(stderr, "unknown CEVENT_TEST_FDMON=%s\n", s);
    exit(2);
}

/* A new context on test_kind(); exits (2) if it cannot be made */
static inline AioContext *new_ctx(void)
{
    Error *err = NULL;
    AioContext *ctx = aio_context_new_full(test_kind(), &err);

    if (!ctx) {
        fprintf(stderr, "aio_context_new_full: %s\n", err->msg);
        exit(2);
    }
    return ctx;
}
#endif /* QEMU_AIO_H */

#endif /* CEVENT_TEST_UTIL_H */
