/*
 * The QemuMutex subset of QEMU's include/qemu/thread.h, on pthreads.
 *
 * Upstream: include/qemu/thread.h, QEMU
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07 (GPL-2.0-or-later).  Written for
 * cevent; cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_THREAD_H
#define QEMU_THREAD_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct QemuMutex {
    pthread_mutex_t lock;
} QemuMutex;

static inline void
qemu_thread_fail(int err, const char *what)
{
    fprintf(stderr, "cevent: %s: %s\n", what, strerror(err));
    abort();
}

static inline void qemu_mutex_init(QemuMutex *mutex)
{
    int err = pthread_mutex_init(&mutex->lock, NULL);
    if (err) {
        qemu_thread_fail(err, "pthread_mutex_init");
    }
}

static inline void qemu_mutex_destroy(QemuMutex *mutex)
{
    int err = pthread_mutex_destroy(&mutex->lock);
    if (err) {
        qemu_thread_fail(err, "pthread_mutex_destroy");
    }
}

static inline void qemu_mutex_lock(QemuMutex *mutex)
{
    int err = pthread_mutex_lock(&mutex->lock);
    if (err) {
        qemu_thread_fail(err, "pthread_mutex_lock");
    }
}

static inline void qemu_mutex_unlock(QemuMutex *mutex)
{
    int err = pthread_mutex_unlock(&mutex->lock);
    if (err) {
        qemu_thread_fail(err, "pthread_mutex_unlock");
    }
}

#endif /* QEMU_THREAD_H */
