/*
 * Thin wrappers around the Linux futex system call.
 *
 * Upstream: include/qemu/futex.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07
 * (GPL-2.0-or-later).  Written for cevent; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_FUTEX_H
#define QEMU_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define qemu_futex(...) syscall(__NR_futex, __VA_ARGS__)

static inline void qemu_futex_wake(void *f, int n)
{
    qemu_futex(f, FUTEX_WAKE, n, NULL, NULL, 0);
}

static inline void qemu_futex_wait(void *f, unsigned val)
{
    while (qemu_futex(f, FUTEX_WAIT, (int) val, NULL, NULL, 0)) {
        switch (errno) {
        case EWOULDBLOCK:
            return;
        case EINTR:
            break; /* get out of switch and retry */
        default:
            abort();
        }
    }
}

#endif /* QEMU_FUTEX_H */
