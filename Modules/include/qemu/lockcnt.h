/*
 * QemuLockCnt: a counter of concurrent visits paired with a lock that
 * protects the freeing of what is visited.  See Modules/lockcnt.c.
 *
 * Upstream: include/qemu/lockcnt.h (the API lived in include/qemu/thread.h at
 * the pinned revision), QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07
 * (GPL-2.0-or-later).  Written for cevent; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_LOCKCNT_H
#define QEMU_LOCKCNT_H

#include <stdbool.h>
#include "qemu/thread.h"

/* cevent: CONFIG_LINUX selects the futex implementation, as upstream. */
#ifdef CONFIG_LINUX
#define CONFIG_LOCKCNT_FUTEX 1
#endif

typedef struct QemuLockCnt QemuLockCnt;

struct QemuLockCnt {
#ifndef CONFIG_LOCKCNT_FUTEX
    QemuMutex mutex;
#endif
    unsigned count;
#ifndef CONFIG_LOCKCNT_FUTEX
    /* cevent: set while the mutex is held, for qemu_lockcnt_is_locked() */
    bool locked;
#endif
};

void qemu_lockcnt_init(QemuLockCnt *lockcnt);
void qemu_lockcnt_destroy(QemuLockCnt *lockcnt);
void qemu_lockcnt_inc(QemuLockCnt *lockcnt);
void qemu_lockcnt_dec(QemuLockCnt *lockcnt);
bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt);
bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt);
void qemu_lockcnt_lock(QemuLockCnt *lockcnt);
void qemu_lockcnt_unlock(QemuLockCnt *lockcnt);
void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt);
unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt);

/*
 * cevent: a racy snapshot of whether the lock is held (by anyone).  Used by
 * the Python binding to refuse misuse (unlock when not locked) instead of
 * corrupting the state, and by assertions.
 */
bool qemu_lockcnt_is_locked(QemuLockCnt *lockcnt);

#endif /* QEMU_LOCKCNT_H */
