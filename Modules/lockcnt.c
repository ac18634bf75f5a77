/*
 * QemuLockCnt: a visit counter and a lock sharing one object.
 *
 * Port of QEMU's util/lockcnt.c at revision
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07, restated in cevent's own words.
 * The upstream file (Copyright Red Hat, Inc. 2017, by Paolo Bonzini) has no
 * licence line of its own, so QEMU's top-level LICENSE applies to it:
 * GPL-2.0-or-later.  cevent is GPL-2.0-or-later.
 *
 * Divergences: see Modules/PORTING.md
 */
#include "qemu/osdep.h"
#include "qemu/lockcnt.h"
#include "qemu/thread.h"
#include "qemu/atomic.h"
/* cevent: no "trace.h"; the lockcnt trace points are not ported. */

#ifdef CONFIG_LOCKCNT_FUTEX
#include "qemu/futex.h"

/*
 * With futexes the whole object is one 32-bit word: its two low bits hold
 * the state of a futex-based lock and the remaining bits hold the counter.
 * The lock follows "mutex2" of Ulrich Drepper's paper "Futexes Are Tricky".
 */

#define QEMU_LOCKCNT_STATE_MASK    3
#define QEMU_LOCKCNT_STATE_FREE    0   /* nobody holds the lock */
#define QEMU_LOCKCNT_STATE_LOCKED  1   /* held, and nobody is waiting */
#define QEMU_LOCKCNT_STATE_WAITING 2   /* held, and others may be waiting */

#define QEMU_LOCKCNT_COUNT_STEP    4
#define QEMU_LOCKCNT_COUNT_SHIFT   2

void qemu_lockcnt_init(QemuLockCnt *lockcnt)
{
    lockcnt->count = 0;
}

void qemu_lockcnt_destroy(QemuLockCnt *lockcnt G_GNUC_UNUSED)
{
}

/*
 * On entry *val is the last value read from lockcnt->count.
 *
 * When the lock bits of *val say the lock is free, attempt one
 * compare-and-swap from *val to new_if_free.  If it works, store
 * new_if_free into *val and return true.
 *
 * Otherwise, wait until the lock is released, then return false; the
 * lock is *not* taken on that path, the caller has to compute its new
 * target value and call again.  Either way *val is left holding the most
 * recent value of lockcnt->count.
 *
 * Once *waited has been set, the caller must no longer ask for the
 * LOCKED state in new_if_free: it cannot tell whether other threads are
 * sleeping too, so it has to use WAITING.  Being woken also means that the
 * wake-up was handed to this thread: if it ends up not taking the lock, it
 * has to pass the wake-up on to another sleeper.
 */
static bool qemu_lockcnt_cmpxchg_or_wait(QemuLockCnt *lockcnt, int *val,
                                         int new_if_free, bool *waited)
{
    /* Quick attempt when nobody holds the lock. */
    if ((*val & QEMU_LOCKCNT_STATE_MASK) == QEMU_LOCKCNT_STATE_FREE) {
        int expected = *val;

        *val = qatomic_cmpxchg(&lockcnt->count, expected, new_if_free);
        if (*val == expected) {
            *val = new_if_free;
            return true;
        }
    }

    /*
     * Slow path: flag the lock as contended if it is not yet, then sleep
     * on the futex.  Either step may have to be repeated any number of
     * times; leave the loop only when the lock looks free again, so that
     * the caller can recompute its target and retry the quick attempt.
     */
    while ((*val & QEMU_LOCKCNT_STATE_MASK) != QEMU_LOCKCNT_STATE_FREE) {
        if ((*val & QEMU_LOCKCNT_STATE_MASK) == QEMU_LOCKCNT_STATE_LOCKED) {
            int expected = *val;
            int new = expected - QEMU_LOCKCNT_STATE_LOCKED +
                      QEMU_LOCKCNT_STATE_WAITING;

            *val = qatomic_cmpxchg(&lockcnt->count, expected, new);
            if (*val == expected) {
                *val = new;
            }
            continue;
        }

        if ((*val & QEMU_LOCKCNT_STATE_MASK) == QEMU_LOCKCNT_STATE_WAITING) {
            *waited = true;
            qemu_futex_wait(&lockcnt->count, *val);
            *val = qatomic_read(&lockcnt->count);
            continue;
        }

        abort();
    }
    return false;
}

static void lockcnt_wake(QemuLockCnt *lockcnt)
{
    qemu_futex_wake(&lockcnt->count, 1);
}

void qemu_lockcnt_inc(QemuLockCnt *lockcnt)
{
    int val = qatomic_read(&lockcnt->count);
    bool waited = false;

    for (;;) {
        if (val >= QEMU_LOCKCNT_COUNT_STEP) {
            int expected = val;
            val = qatomic_cmpxchg(&lockcnt->count, val,
                                  val + QEMU_LOCKCNT_COUNT_STEP);
            if (val == expected) {
                break;
            }
        } else {
            /* Quick case: count 0 and unlocked becomes count 1, unlocked. */
            if (qemu_lockcnt_cmpxchg_or_wait(lockcnt, &val,
                                             QEMU_LOCKCNT_COUNT_STEP,
                                             &waited)) {
                break;
            }
        }
    }

    /*
     * A thread that slept was handed the lock by the thread that woke it;
     * since we return without holding it, hand the wake-up on.  This
     * mirrors qemu_lockcnt_lock leaving WAITING in the low bits, which
     * qemu_lockcnt_inc_and_unlock would then see and act upon.
     */
    if (waited) {
        lockcnt_wake(lockcnt);
    }
}

void qemu_lockcnt_dec(QemuLockCnt *lockcnt)
{
    qatomic_sub(&lockcnt->count, QEMU_LOCKCNT_COUNT_STEP);
}

/*
 * Decrement the counter; when that takes it to zero, return true with the
 * lock held.  After a true return the counter stays at zero until the
 * lock is released with qemu_lockcnt_unlock.
 */
bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt)
{
    int val = qatomic_read(&lockcnt->count);
    int locked_state = QEMU_LOCKCNT_STATE_LOCKED;
    bool waited = false;

    for (;;) {
        if (val >= 2 * QEMU_LOCKCNT_COUNT_STEP) {
            int expected = val;
            val = qatomic_cmpxchg(&lockcnt->count, val,
                                  val - QEMU_LOCKCNT_COUNT_STEP);
            if (val == expected) {
                break;
            }
        } else {
            /*
             * The count goes from 1 to 0, so take the lock as well.  In
             * the quick case the word goes from (1, free) to (0, locked)
             * or to (0, waiting).
             */
            if (qemu_lockcnt_cmpxchg_or_wait(lockcnt, &val, locked_state,
                                             &waited)) {
                return true;
            }

            if (waited) {
                /*
                 * Other threads may be asleep too, and we cannot know:
                 * assume that they are.
                 */
                locked_state = QEMU_LOCKCNT_STATE_WAITING;
            }
        }
    }

    /*
     * We were handed the lock by a wake-up but return without it, so
     * hand the wake-up on; qemu_lockcnt_lock would have left WAITING in
     * the low bits, and qemu_lockcnt_unlock would have woken somebody.
     */
    if (waited) {
        lockcnt_wake(lockcnt);
    }
    return false;
}

/*
 * When the counter is one, decrement it and return true with the lock
 * held; in every other case leave everything as it is and return false.
 * After a true return the counter stays at zero until the lock is
 * released with qemu_lockcnt_unlock.
 */
bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt)
{
    int val = qatomic_read(&lockcnt->count);
    int locked_state = QEMU_LOCKCNT_STATE_LOCKED;
    bool waited = false;

    while (val < 2 * QEMU_LOCKCNT_COUNT_STEP) {
        /*
         * The count goes from 1 to 0, so take the lock as well.  In the
         * quick case the word goes from (1, free) to (0, locked) or to
         * (0, waiting).
         */
        if (qemu_lockcnt_cmpxchg_or_wait(lockcnt, &val, locked_state,
                                         &waited)) {
            return true;
        }

        if (waited) {
            /*
             * Other threads may be asleep too, and we cannot know: assume
             * that they are.
             */
            locked_state = QEMU_LOCKCNT_STATE_WAITING;
        }
    }

    /*
     * We were handed the lock by a wake-up but return without it, so hand
     * the wake-up on; qemu_lockcnt_lock would have left WAITING in the low
     * bits, and qemu_lockcnt_inc_and_unlock would have woken somebody.
     */
    if (waited) {
        lockcnt_wake(lockcnt);
    }
    return false;
}

void qemu_lockcnt_lock(QemuLockCnt *lockcnt)
{
    int val = qatomic_read(&lockcnt->count);
    int step = QEMU_LOCKCNT_STATE_LOCKED;
    bool waited = false;

    /*
     * new_if_free only matters when the lock bits of val are FREE (zero),
     * so adding the wanted state to val is always a correct target.
     */
    while (!qemu_lockcnt_cmpxchg_or_wait(lockcnt, &val, val + step,
                                         &waited)) {
        if (waited) {
            /*
             * Other threads may be asleep too, and we cannot know: assume
             * that they are.
             */
            step = QEMU_LOCKCNT_STATE_WAITING;
        }
    }
}

void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt)
{
    int expected, new, val;

    val = qatomic_read(&lockcnt->count);
    do {
        expected = val;
        new = (val + QEMU_LOCKCNT_COUNT_STEP) & ~QEMU_LOCKCNT_STATE_MASK;
        val = qatomic_cmpxchg(&lockcnt->count, val, new);
    } while (val != expected);

    if (val & QEMU_LOCKCNT_STATE_WAITING) {
        lockcnt_wake(lockcnt);
    }
}

void qemu_lockcnt_unlock(QemuLockCnt *lockcnt)
{
    int expected, new, val;

    val = qatomic_read(&lockcnt->count);
    do {
        expected = val;
        new = val & ~QEMU_LOCKCNT_STATE_MASK;
        val = qatomic_cmpxchg(&lockcnt->count, val, new);
    } while (val != expected);

    if (val & QEMU_LOCKCNT_STATE_WAITING) {
        lockcnt_wake(lockcnt);
    }
}

unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt)
{
    return qatomic_read(&lockcnt->count) >> QEMU_LOCKCNT_COUNT_SHIFT;
}

/* cevent: racy snapshot of the lock bits, for misuse checks. */
bool qemu_lockcnt_is_locked(QemuLockCnt *lockcnt)
{
    return (qatomic_read(&lockcnt->count) & QEMU_LOCKCNT_STATE_MASK) !=
           QEMU_LOCKCNT_STATE_FREE;
}
#else
void qemu_lockcnt_init(QemuLockCnt *lockcnt)
{
    qemu_mutex_init(&lockcnt->mutex);
    lockcnt->count = 0;
    lockcnt->locked = false; /* cevent: for qemu_lockcnt_is_locked */
}

void qemu_lockcnt_destroy(QemuLockCnt *lockcnt)
{
    qemu_mutex_destroy(&lockcnt->mutex);
}

void qemu_lockcnt_inc(QemuLockCnt *lockcnt)
{
    int old;
    for (;;) {
        old = qatomic_read(&lockcnt->count);
        if (old == 0) {
            qemu_lockcnt_lock(lockcnt);
            qemu_lockcnt_inc_and_unlock(lockcnt);
            return;
        } else {
            /* cevent: cast, as count is unsigned and we build -Wextra */
            if ((int)qatomic_cmpxchg(&lockcnt->count, old, old + 1) == old) {
                return;
            }
        }
    }
}

void qemu_lockcnt_dec(QemuLockCnt *lockcnt)
{
    qatomic_dec(&lockcnt->count);
}

/*
 * Decrement the counter; when that takes it to zero, return true with the
 * mutex held.  While the mutex is held the counter cannot leave zero.
 */
bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt)
{
    int val = qatomic_read(&lockcnt->count);
    while (val > 1) {
        int old = qatomic_cmpxchg(&lockcnt->count, val, val - 1);
        if (old != val) {
            val = old;
            continue;
        }

        return false;
    }

    qemu_lockcnt_lock(lockcnt);
    if (qatomic_fetch_dec(&lockcnt->count) == 1) {
        return true;
    }

    qemu_lockcnt_unlock(lockcnt);
    return false;
}

/*
 * When the counter is one, decrement it to zero and return true with the
 * mutex held; otherwise change nothing and return false.  While the mutex
 * is held the counter cannot leave zero.
 */
bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt)
{
    /* A false return needs no acquire ordering, so a plain read will do. */
    int val = qatomic_read(&lockcnt->count);
    if (val > 1) {
        return false;
    }

    qemu_lockcnt_lock(lockcnt);
    if (qatomic_fetch_dec(&lockcnt->count) == 1) {
        return true;
    }

    qemu_lockcnt_inc_and_unlock(lockcnt);
    return false;
}

void qemu_lockcnt_lock(QemuLockCnt *lockcnt)
{
    qemu_mutex_lock(&lockcnt->mutex);
    qatomic_set(&lockcnt->locked, true); /* cevent: see is_locked */
}

void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt)
{
    qatomic_inc(&lockcnt->count);
    qatomic_set(&lockcnt->locked, false); /* cevent: see is_locked */
    qemu_mutex_unlock(&lockcnt->mutex);
}

void qemu_lockcnt_unlock(QemuLockCnt *lockcnt)
{
    qatomic_set(&lockcnt->locked, false); /* cevent: see is_locked */
    qemu_mutex_unlock(&lockcnt->mutex);
}

unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt)
{
    return qatomic_read(&lockcnt->count);
}

/*
 * cevent: racy snapshot of whether the mutex is held; the flag is set
 * right after taking the mutex and cleared right before releasing it.
 */
bool qemu_lockcnt_is_locked(QemuLockCnt *lockcnt)
{
    return qatomic_read(&lockcnt->locked);
}
#endif
