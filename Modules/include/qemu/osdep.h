/*
 * cevent: the small part of QEMU's include/qemu/osdep.h that the ported
 * event loop needs.  Written for cevent; QEMU's header is far larger.
 *
 * Upstream: include/qemu/osdep.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07
 * (GPL-2.0-or-later).  cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_OSDEP_H
#define QEMU_OSDEP_H

/* cevent: QEMU never builds with NDEBUG; keep assert() on, as upstream. */
#undef NDEBUG

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "glib-compat.h"

#ifndef MIN
#define MIN(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) (((a) > (b)) ? (a) : (b))
#endif

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define QEMU_BUILD_BUG_ON(x) _Static_assert(!(x), "build bug: " #x)
#define QEMU_UNUSED __attribute__((unused))
#define G_GNUC_UNUSED __attribute__((unused))

/* Retry a system call while it fails with EINTR. */
#define RETRY_ON_EINTR(expr) \
    __extension__ ({ \
        typeof(expr) __result; \
        do { \
            __result = (expr); \
        } while (__result == -1 && errno == EINTR); \
        __result; \
    })

typedef struct AioContext AioContext;
typedef struct QEMUBH QEMUBH;
typedef struct QEMUTimer QEMUTimer;
typedef struct QEMUTimerListGroup QEMUTimerListGroup;
typedef struct EventNotifier EventNotifier;
typedef struct Error Error;

#endif /* QEMU_OSDEP_H */
