/*
 * Clocks, timer lists, timer list groups and timers for the event loop.
 *
 * Port of the timer-list part of QEMU's util/qemu-timer.c at revision
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07, restated in cevent's own words.
 *
 * Upstream licence, restated: the upstream file (Copyright (c) 2003-2008
 * Fabrice Bellard) carries an MIT-style permission notice.  Anyone who
 * obtains a copy may deal in the software without restriction (use, copy,
 * modify, merge, publish, distribute, sublicense, sell copies) and let
 * others do so, on the condition that the copyright notice and that
 * permission notice are kept in all copies or substantial portions.  The
 * software comes "as is", with no warranty of any kind, express or
 * implied (including merchantability, fitness for a particular purpose
 * and non-infringement), and the authors and copyright holders are not
 * liable for any claim, damages or other liability arising from it or
 * from its use.
 *
 * cevent is GPL-2.0-or-later; this file is distributed under it.
 *
 * Divergences: see Modules/PORTING.md
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qemu/timer.h"

#ifdef CONFIG_PPOLL
#include <poll.h>
#endif

/* cevent: qemu_poll_ns() hands GPollFD arrays straight to (p)poll(). */
QEMU_BUILD_BUG_ON(sizeof(GPollFD) != sizeof(struct pollfd));
QEMU_BUILD_BUG_ON(offsetof(GPollFD, fd) != offsetof(struct pollfd, fd));
QEMU_BUILD_BUG_ON(offsetof(GPollFD, events) !=
                  offsetof(struct pollfd, events));
QEMU_BUILD_BUG_ON(offsetof(GPollFD, revents) !=
                  offsetof(struct pollfd, revents));

/* ---- timers --------------------------------------------------------- */

typedef struct QEMUClock {
    /*
     * cevent: upstream relies on the BQL to protect this list; cevent has
     * no BQL, so qemu_clocks_lock protects the lists of every clock.
     */
    QLIST_HEAD(, QEMUTimerList) timerlists;

    QEMUClockType type;
    bool enabled;
} QEMUClock;

/*
 * cevent: the main-loop group stays empty until init_clocks() is called;
 * AioContexts have their own groups and never use it.
 */
QEMUTimerListGroup main_loop_tlg;

/*
 * cevent: the clocks are set up statically rather than by init_clocks(),
 * and every clock starts enabled, QEMU_CLOCK_VIRTUAL included (upstream
 * leaves it disabled until the guest runs; here it is a manual clock).
 */
static QEMUClock qemu_clocks[QEMU_CLOCK_MAX] = {
    [QEMU_CLOCK_REALTIME] = {
        .type = QEMU_CLOCK_REALTIME, .enabled = true,
    },
    [QEMU_CLOCK_VIRTUAL] = {
        .type = QEMU_CLOCK_VIRTUAL, .enabled = true,
    },
    [QEMU_CLOCK_HOST] = {
        .type = QEMU_CLOCK_HOST, .enabled = true,
    },
    [QEMU_CLOCK_VIRTUAL_RT] = {
        .type = QEMU_CLOCK_VIRTUAL_RT, .enabled = true,
    },
};

/*
 * cevent: protects the timerlists of every QEMUClock (the BQL's job
 * upstream).  Lock order: qemu_clocks_lock, then a list's
 * active_timers_lock.  Notify callbacks may be called with it held, so
 * they must not create or free timer lists.
 */
static QemuMutex qemu_clocks_lock = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* cevent: serialises init_clocks(), which may create main-loop lists. */
static QemuMutex init_clocks_lock = { .lock = PTHREAD_MUTEX_INITIALIZER };

/*
 * cevent: QEMU_CLOCK_VIRTUAL is a process-wide manual clock, in ns,
 * starting at 0 and moved only by qemu_clock_step().
 */
static int64_t qemu_virtual_clock_ns;

/*
 * Each QEMUTimerList holds the timers of one clock.  A clock can have
 * several of them, for example one per AioContext or thread, and every
 * clock keeps a list of its timer lists so that all of their notifiers
 * can be called when the clock is enabled again.
 */

/* cevent: one element of a timer list's heap */
typedef struct QEMUTimerHeapEntry {
    int64_t expire_time;        /* copy of ts->expire_time */
    uint64_t arm_seq;           /* copy of ts->arm_seq */
    QEMUTimer *ts;
} QEMUTimerHeapEntry;

struct QEMUTimerList {
    QEMUClock *clock;
    QemuMutex active_timers_lock;
    /*
     * cevent: upstream keeps the armed timers in a sorted linked list
     * (active_timers), so arming is O(n) and was measured to go quadratic
     * (15.5 us per arm at 20k timers).  Here they are a 4-ary min-heap
     * ordered by (expire_time, arm_seq): the same order, earliest first
     * and ties in arming order, with O(log n) arm and disarm.  The keys
     * are copied into the heap's entries so that sifting compares
     * without following a pointer to each timer (a cache miss apiece
     * with many timers).
     * nr_active is written under active_timers_lock and may be read
     * without it, like upstream's active_timers head pointer.
     */
    QEMUTimerHeapEntry *active_timers;
    size_t nr_active;
    size_t active_timers_size;
    uint64_t arm_seq;
    QLIST_ENTRY(QEMUTimerList) list;
    QEMUTimerListNotifyCB *notify_cb;
    void *notify_opaque;
    /*
     * cevent: no timers_done_ev; qemu_clock_enable(false) does not wait
     * for running timer lists (see there).
     */
};

/*
 * qemu_clock_ptr: map a clock type to its QEMUClock.
 */
static inline QEMUClock *qemu_clock_ptr(QEMUClockType type)
{
    return &qemu_clocks[type];
}

static bool timer_expired_ns(QEMUTimer *timer_head, int64_t current_time)
{
    /* cevent: atomic read, as timer_expired() may run without the lock */
    return timer_head &&
           (qatomic_read(&timer_head->expire_time) <= current_time);
}

QEMUTimerList *timerlist_new(QEMUClockType type,
                             QEMUTimerListNotifyCB *cb,
                             void *opaque)
{
    QEMUTimerList *timer_list;
    QEMUClock *clock = qemu_clock_ptr(type);

    timer_list = g_new0(QEMUTimerList, 1);
    timer_list->clock = clock;
    timer_list->notify_cb = cb;
    timer_list->notify_opaque = opaque;
    qemu_mutex_init(&timer_list->active_timers_lock);
    qemu_mutex_lock(&qemu_clocks_lock); /* cevent: instead of the BQL */
    QLIST_INSERT_HEAD(&clock->timerlists, timer_list, list);
    qemu_mutex_unlock(&qemu_clocks_lock);
    return timer_list;
}

void timerlist_free(QEMUTimerList *timer_list)
{
    assert(!timerlist_has_timers(timer_list));
    if (timer_list->clock) {
        qemu_mutex_lock(&qemu_clocks_lock); /* cevent: instead of the BQL */
        QLIST_REMOVE(timer_list, list);
        qemu_mutex_unlock(&qemu_clocks_lock);
    }
    qemu_mutex_destroy(&timer_list->active_timers_lock);
    g_free(timer_list->active_timers); /* cevent: the heap array */
    g_free(timer_list);
}

static void qemu_clock_init(QEMUClockType type,
                            QEMUTimerListNotifyCB *notify_cb)
{
    /*
     * cevent: the QEMUClock itself is initialised statically (see
     * qemu_clocks), so only the main-loop timer list is created here; a
     * second call finds it and does nothing instead of asserting.
     */
    if (main_loop_tlg.tl[type] == NULL) {
        main_loop_tlg.tl[type] = timerlist_new(type, notify_cb, NULL);
    }
}

bool qemu_clock_use_for_deadline(QEMUClockType type G_GNUC_UNUSED)
{
    /* cevent: no icount, so every clock counts for deadlines */
    return true;
}

void qemu_clock_notify(QEMUClockType type)
{
    QEMUTimerList *timer_list;
    QEMUClock *clock = qemu_clock_ptr(type);

    qemu_mutex_lock(&qemu_clocks_lock); /* cevent: instead of the BQL */
    QLIST_FOREACH(timer_list, &clock->timerlists, list) {
        timerlist_notify(timer_list);
    }
    qemu_mutex_unlock(&qemu_clocks_lock);
}

/*
 * Enable or disable a clock.  Enabling a disabled clock notifies each of
 * its timer lists so that their deadlines are recomputed.
 *
 * cevent: upstream, disabling also waits until every timer list of the
 * clock has finished a timerlist_run_timers() that may be in progress;
 * cevent has no QemuEvent and does not wait: a callback already running
 * in another thread may still be finishing when this returns.
 */
void qemu_clock_enable(QEMUClockType type, bool enabled)
{
    QEMUClock *clock = qemu_clock_ptr(type);
    /* cevent: atomic, as the flag is read without any lock */
    bool old = qatomic_xchg(&clock->enabled, enabled);

    if (enabled && !old) {
        qemu_clock_notify(type);
    }
}

bool timerlist_has_timers(QEMUTimerList *timer_list)
{
    return !!qatomic_read(&timer_list->nr_active);
}

/*
 * cevent: upstream looks only at the clock's main-loop timer list; cevent
 * looks at every timer list of the clock, as the main-loop group is
 * normally empty here.
 */
bool qemu_clock_has_timers(QEMUClockType type)
{
    QEMUTimerList *timer_list;
    QEMUClock *clock = qemu_clock_ptr(type);
    bool ret = false;

    qemu_mutex_lock(&qemu_clocks_lock);
    QLIST_FOREACH(timer_list, &clock->timerlists, list) {
        if (timerlist_has_timers(timer_list)) {
            ret = true;
            break;
        }
    }
    qemu_mutex_unlock(&qemu_clocks_lock);
    return ret;
}

/* cevent: the heap's root, the earliest armed timer, or NULL. */
static QEMUTimer *timerlist_first_locked(QEMUTimerList *timer_list)
{
    return timer_list->nr_active ? timer_list->active_timers[0].ts : NULL;
}

bool timerlist_expired(QEMUTimerList *timer_list)
{
    int64_t expire_time = 0;
    QEMUTimer *first;

    if (!qatomic_read(&timer_list->nr_active)) {
        return false;
    }

    qemu_mutex_lock(&timer_list->active_timers_lock);
    first = timerlist_first_locked(timer_list);
    if (!first) {
        qemu_mutex_unlock(&timer_list->active_timers_lock);
        return false;
    }
    expire_time = first->expire_time;
    qemu_mutex_unlock(&timer_list->active_timers_lock);

    return expire_time <= qemu_clock_get_ns(timer_list->clock->type);
}

/* cevent: every timer list of the clock, as qemu_clock_has_timers(). */
bool qemu_clock_expired(QEMUClockType type)
{
    QEMUTimerList *timer_list;
    QEMUClock *clock = qemu_clock_ptr(type);
    bool ret = false;

    qemu_mutex_lock(&qemu_clocks_lock);
    QLIST_FOREACH(timer_list, &clock->timerlists, list) {
        if (timerlist_expired(timer_list)) {
            ret = true;
            break;
        }
    }
    qemu_mutex_unlock(&qemu_clocks_lock);
    return ret;
}

/*
 * Like a timeout computation, except that -1 means "no deadline" and the
 * result is not capped at 2^32: it is never negative.
 */
int64_t timerlist_deadline_ns(QEMUTimerList *timer_list)
{
    int64_t delta;
    int64_t expire_time = 0;
    QEMUTimer *first;

    if (!qatomic_read(&timer_list->nr_active)) {
        return -1;
    }

    if (!qatomic_read(&timer_list->clock->enabled)) {
        return -1;
    }

    /*
     * The armed timers can change as soon as the lock is dropped, before
     * the caller acts on the result; that is fine, because any change of
     * the earliest deadline calls ->notify_cb(), which makes the caller
     * compute its deadline again.
     */
    qemu_mutex_lock(&timer_list->active_timers_lock);
    first = timerlist_first_locked(timer_list);
    if (!first) {
        qemu_mutex_unlock(&timer_list->active_timers_lock);
        return -1;
    }
    expire_time = first->expire_time;
    qemu_mutex_unlock(&timer_list->active_timers_lock);

    delta = expire_time - qemu_clock_get_ns(timer_list->clock->type);

    if (delta <= 0) {
        return 0;
    }

    return delta;
}

/*
 * cevent: the earliest armed timer of @timer_list whose attributes are
 * all within @attr_mask.  Upstream walks its sorted list from the head;
 * the heap's root answers the common case, anything else needs a scan.
 */
static QEMUTimer *timerlist_first_matching_locked(QEMUTimerList *timer_list,
                                                  int attr_mask)
{
    QEMUTimer *best = NULL;
    QEMUTimer *ts;
    size_t i;

    ts = timerlist_first_locked(timer_list);
    if (!ts || !(ts->attributes & ~attr_mask)) {
        return ts;
    }
    for (i = 1; i < timer_list->nr_active; i++) {
        ts = timer_list->active_timers[i].ts;
        if (ts->attributes & ~attr_mask) {
            continue;
        }
        if (!best || ts->expire_time < best->expire_time ||
            (ts->expire_time == best->expire_time &&
             ts->arm_seq < best->arm_seq)) {
            best = ts;
        }
    }
    return best;
}

/*
 * The soonest deadline over every timer list of the clock.  Meant for the
 * icount timeout upstream, so qemu_clock_use_for_deadline() is not
 * consulted.
 */
int64_t qemu_clock_deadline_ns_all(QEMUClockType type, int attr_mask)
{
    int64_t deadline = -1;
    int64_t delta;
    int64_t expire_time;
    QEMUTimer *ts;
    QEMUTimerList *timer_list;
    QEMUClock *clock = qemu_clock_ptr(type);

    if (!qatomic_read(&clock->enabled)) {
        return -1;
    }

    qemu_mutex_lock(&qemu_clocks_lock); /* cevent: instead of the BQL */
    QLIST_FOREACH(timer_list, &clock->timerlists, list) {
        if (!qatomic_read(&timer_list->nr_active)) {
            continue;
        }
        qemu_mutex_lock(&timer_list->active_timers_lock);
        /* Ignore timers with attributes outside the mask. */
        ts = timerlist_first_matching_locked(timer_list, attr_mask);
        if (!ts) {
            qemu_mutex_unlock(&timer_list->active_timers_lock);
            continue;
        }
        expire_time = ts->expire_time;
        qemu_mutex_unlock(&timer_list->active_timers_lock);

        delta = expire_time - qemu_clock_get_ns(type);
        if (delta <= 0) {
            delta = 0;
        }
        deadline = qemu_soonest_timeout(deadline, delta);
    }
    qemu_mutex_unlock(&qemu_clocks_lock);
    return deadline;
}

QEMUClockType timerlist_get_clock(QEMUTimerList *timer_list)
{
    return timer_list->clock->type;
}

void timerlist_notify(QEMUTimerList *timer_list)
{
    if (timer_list->notify_cb) {
        timer_list->notify_cb(timer_list->notify_opaque,
                              timer_list->clock->type);
    }
    /*
     * cevent: upstream falls back to qemu_notify_event() (wake the main
     * loop); cevent has no global main loop, so nothing is done.
     */
}

/*
 * Turn a timeout in ns into one in ms, for systems without ppoll().
 */
int qemu_timeout_ns_to_ms(int64_t ns)
{
    int64_t ms;
    if (ns < 0) {
        return -1;
    }

    if (!ns) {
        return 0;
    }

    /*
     * Round up: sleeping a little too long is better than waking up too
     * early and spinning until the deadline.
     * cevent: written so that it cannot overflow near INT64_MAX.
     */
    ms = ns / SCALE_MS + (ns % SCALE_MS != 0);

    /* Cap at 2^31 - 1 ms (about 25 days) so that the int cannot overflow. */
    return MIN(ms, INT32_MAX);
}


/*
 * poll() with a timeout in nanoseconds (negative: wait forever).
 */
int qemu_poll_ns(GPollFD *fds, guint nfds, int64_t timeout)
{
#ifdef CONFIG_PPOLL
    if (timeout < 0) {
        return ppoll((struct pollfd *)fds, nfds, NULL, NULL);
    } else {
        struct timespec ts;
        int64_t tvsec = timeout / 1000000000LL;
        /*
         * Cap the seconds: a huge timeout must not overflow into a
         * negative value, which would make the wait return at once.
         */
        if (tvsec > (int64_t)INT32_MAX) {
            tvsec = INT32_MAX;
        }
        ts.tv_sec = tvsec;
        ts.tv_nsec = timeout % 1000000000LL;
        return ppoll((struct pollfd *)fds, nfds, &ts, NULL);
    }
#else
    /* cevent: poll() instead of glib's g_poll() */
    return poll((struct pollfd *)fds, nfds, qemu_timeout_ns_to_ms(timeout));
#endif
}


void timer_init_full(QEMUTimer *ts,
                     QEMUTimerListGroup *timer_list_group, QEMUClockType type,
                     int scale, int attributes,
                     QEMUTimerCB *cb, void *opaque)
{
    assert((unsigned)type < QEMU_CLOCK_MAX); /* cevent: defensive */
    if (!timer_list_group) {
        timer_list_group = &main_loop_tlg;
    }
    ts->timer_list = timer_list_group->tl[type];
    /*
     * cevent: main_loop_tlg only has lists after init_clocks(); fail
     * loudly instead of crashing later on a NULL list.
     */
    if (!ts->timer_list) {
        fprintf(stderr, "cevent: timer_init_full: no timer list for clock "
                "%d (the main-loop group needs init_clocks())\n", type);
        abort();
    }
    ts->cb = cb;
    ts->opaque = opaque;
    ts->scale = scale;
    ts->attributes = attributes;
    ts->expire_time = -1;
    ts->heap_index = SIZE_MAX; /* cevent: not in the heap */
    ts->arm_seq = 0;
}

void timer_deinit(QEMUTimer *ts)
{
    assert(ts->expire_time == -1);
    ts->timer_list = NULL;
}

/*
 * cevent: 4-ary min-heap helpers (replacing upstream's sorted list
 * walks).  Entry i's children are 4i+1 .. 4i+4.  All are called with
 * active_timers_lock held.
 */

#define TIMER_HEAP_ARITY 4

/* cevent: heap order: sooner expire_time first, then earlier arming. */
static inline bool timer_heap_before(const QEMUTimerHeapEntry *a,
                                     const QEMUTimerHeapEntry *b)
{
    if (a->expire_time != b->expire_time) {
        return a->expire_time < b->expire_time;
    }
    return a->arm_seq < b->arm_seq;
}

static inline void timer_heap_put(QEMUTimerList *timer_list, size_t i,
                                  const QEMUTimerHeapEntry *e)
{
    timer_list->active_timers[i] = *e;
    e->ts->heap_index = i;
}

static void timer_heap_sift_up(QEMUTimerList *timer_list, size_t i)
{
    QEMUTimerHeapEntry *heap = timer_list->active_timers;
    QEMUTimerHeapEntry e = heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / TIMER_HEAP_ARITY;

        if (!timer_heap_before(&e, &heap[parent])) {
            break;
        }
        timer_heap_put(timer_list, i, &heap[parent]);
        i = parent;
    }
    timer_heap_put(timer_list, i, &e);
}

static void timer_heap_sift_down(QEMUTimerList *timer_list, size_t i)
{
    QEMUTimerHeapEntry *heap = timer_list->active_timers;
    size_t n = timer_list->nr_active;
    QEMUTimerHeapEntry e = heap[i];

    for (;;) {
        size_t first = TIMER_HEAP_ARITY * i + 1;
        size_t end = MIN(first + TIMER_HEAP_ARITY, n);
        size_t best, c;

        if (first >= n) {
            break;
        }
        best = first;
        for (c = first + 1; c < end; c++) {
            if (timer_heap_before(&heap[c], &heap[best])) {
                best = c;
            }
        }
        if (!timer_heap_before(&heap[best], &e)) {
            break;
        }
        timer_heap_put(timer_list, i, &heap[best]);
        i = best;
    }
    timer_heap_put(timer_list, i, &e);
}

static void timer_heap_insert(QEMUTimerList *timer_list, QEMUTimer *ts)
{
    size_t n = timer_list->nr_active;
    QEMUTimerHeapEntry e = {
        .expire_time = ts->expire_time,
        .arm_seq = ts->arm_seq,
        .ts = ts,
    };

    if (n == timer_list->active_timers_size) {
        size_t size = n ? n * 2 : 16;

        timer_list->active_timers = g_renew(QEMUTimerHeapEntry,
                                            timer_list->active_timers, size);
        timer_list->active_timers_size = size;
    }
    timer_heap_put(timer_list, n, &e);
    qatomic_set(&timer_list->nr_active, n + 1);
    timer_heap_sift_up(timer_list, n);
}

static void timer_heap_remove(QEMUTimerList *timer_list, QEMUTimer *ts)
{
    QEMUTimerHeapEntry *heap = timer_list->active_timers;
    size_t i = ts->heap_index;
    size_t last = timer_list->nr_active - 1;

    assert(i < timer_list->nr_active && heap[i].ts == ts);
    ts->heap_index = SIZE_MAX;
    qatomic_set(&timer_list->nr_active, last);
    if (i == last) {
        return;
    }
    timer_heap_put(timer_list, i, &heap[last]);
    if (i > 0 &&
        timer_heap_before(&heap[i], &heap[(i - 1) / TIMER_HEAP_ARITY])) {
        timer_heap_sift_up(timer_list, i);
    } else {
        timer_heap_sift_down(timer_list, i);
    }
}

static void timer_del_locked(QEMUTimerList *timer_list, QEMUTimer *ts)
{
    /* cevent: atomic store; timer_pending() reads it without the lock */
    qatomic_set(&ts->expire_time, -1);
    /* cevent: O(log n) heap removal instead of a list walk */
    if (ts->heap_index != SIZE_MAX) {
        timer_heap_remove(timer_list, ts);
    }
}

/*
 * Arm @ts at @expire_time.  Returns true when @ts became the earliest
 * timer of the list, i.e. when the list's deadline moved earlier.
 */
static bool timer_mod_ns_locked(QEMUTimerList *timer_list,
                                QEMUTimer *ts, int64_t expire_time)
{
    /*
     * cevent: push onto the heap instead of inserting into the sorted
     * list.  A negative expire_time is clamped to 0 first and then
     * ordered after timers already armed at 0 (upstream placed it before
     * them).
     */
    qatomic_set(&ts->expire_time, MAX(expire_time, 0));
    ts->arm_seq = timer_list->arm_seq++;
    timer_heap_insert(timer_list, ts);

    return ts->heap_index == 0;
}

static void timerlist_rearm(QEMUTimerList *timer_list)
{
    timerlist_notify(timer_list);
}

/* Disarm a timer; its memory is left alone. */
void timer_del(QEMUTimer *ts)
{
    QEMUTimerList *timer_list = ts->timer_list;

    if (timer_list) {
        qemu_mutex_lock(&timer_list->active_timers_lock);
        timer_del_locked(timer_list, ts);
        qemu_mutex_unlock(&timer_list->active_timers_lock);
    }
}

/*
 * (Re-)arm a timer so that its callback runs once the clock reaches
 * @expire_time.
 */
void timer_mod_ns(QEMUTimer *ts, int64_t expire_time)
{
    QEMUTimerList *timer_list = ts->timer_list;
    bool rearm;

    qemu_mutex_lock(&timer_list->active_timers_lock);
    timer_del_locked(timer_list, ts);
    rearm = timer_mod_ns_locked(timer_list, ts, expire_time);
    qemu_mutex_unlock(&timer_list->active_timers_lock);

    if (rearm) {
        timerlist_rearm(timer_list);
    }
}

/*
 * Arm a timer for @expire_time, unless it is already armed for an
 * earlier time: the timer ends up firing at whichever comes first.
 */
void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time)
{
    QEMUTimerList *timer_list = ts->timer_list;
    bool rearm = false;

    qemu_mutex_lock(&timer_list->active_timers_lock);
    if (ts->expire_time == -1 || ts->expire_time > expire_time) {
        if (ts->expire_time != -1) {
            timer_del_locked(timer_list, ts);
        }
        rearm = timer_mod_ns_locked(timer_list, ts, expire_time);
    } else {
        rearm = false;
    }
    qemu_mutex_unlock(&timer_list->active_timers_lock);

    if (rearm) {
        timerlist_rearm(timer_list);
    }
}

void timer_mod(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_ns(ts, expire_time * ts->scale);
}

void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time)
{
    timer_mod_anticipate_ns(ts, expire_time * ts->scale);
}

bool timer_pending(QEMUTimer *ts)
{
    /* cevent: atomic read, the timer may be changed by another thread */
    return qatomic_read(&ts->expire_time) >= 0;
}

bool timer_expired(QEMUTimer *timer_head, int64_t current_time)
{
    return timer_expired_ns(timer_head, current_time * timer_head->scale);
}

bool timerlist_run_timers(QEMUTimerList *timer_list)
{
    QEMUTimer *ts;
    int64_t current_time;
    bool progress = false;
    QEMUTimerCB *cb;
    void *opaque;

    if (!qatomic_read(&timer_list->nr_active)) {
        return false;
    }

    /* cevent: no timers_done_ev to reset (see qemu_clock_enable) */
    if (!qatomic_read(&timer_list->clock->enabled)) {
        goto out;
    }

    /*
     * cevent: no record/replay, so none of upstream's per-clock replay
     * checkpoints.
     *
     * Take the expired timers off the heap one at a time, earliest
     * first, and run them.  The clock is read once: a callback that
     * re-arms its timer at or before current_time runs again in this
     * pass, one that re-arms it later waits for the next pass.
     */
    current_time = qemu_clock_get_ns(timer_list->clock->type);
    qemu_mutex_lock(&timer_list->active_timers_lock);
    while ((ts = timerlist_first_locked(timer_list))) {
        if (!timer_expired_ns(ts, current_time)) {
            /* Nothing else is due yet. */
            break;
        }

        /* Disarm the timer before its callback can see it. */
        timer_heap_remove(timer_list, ts);
        qatomic_set(&ts->expire_time, -1);
        cb = ts->cb;
        opaque = ts->opaque;

        /* Run the callback unlocked: it may modify the timer list. */
        qemu_mutex_unlock(&timer_list->active_timers_lock);
        cb(opaque);
        qemu_mutex_lock(&timer_list->active_timers_lock);

        progress = true;
    }
    qemu_mutex_unlock(&timer_list->active_timers_lock);

out:
    return progress;
}

void timerlistgroup_init(QEMUTimerListGroup *tlg,
                         QEMUTimerListNotifyCB *cb, void *opaque)
{
    QEMUClockType type;
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        tlg->tl[type] = timerlist_new(type, cb, opaque);
    }
}

void timerlistgroup_deinit(QEMUTimerListGroup *tlg)
{
    QEMUClockType type;
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        timerlist_free(tlg->tl[type]);
    }
}

bool timerlistgroup_run_timers(QEMUTimerListGroup *tlg)
{
    QEMUClockType type;
    bool progress = false;
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        progress |= timerlist_run_timers(tlg->tl[type]);
    }
    return progress;
}

int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup *tlg)
{
    int64_t deadline = -1;
    QEMUClockType type;
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        if (qemu_clock_use_for_deadline(type)) {
            deadline = qemu_soonest_timeout(deadline,
                                            timerlist_deadline_ns(
                                                tlg->tl[type]));
        }
    }
    return deadline;
}

int64_t qemu_clock_get_ns(QEMUClockType type)
{
    switch (type) {
    case QEMU_CLOCK_REALTIME:
        return get_clock();
    default:
    case QEMU_CLOCK_VIRTUAL:
        /* cevent: the manual clock moved by qemu_clock_step() */
        return qatomic_read(&qemu_virtual_clock_ns);
    case QEMU_CLOCK_HOST:
        /* cevent: no record/replay wrapper */
        return get_clock_realtime();
    case QEMU_CLOCK_VIRTUAL_RT:
        /* cevent: no icount, so an alias of QEMU_CLOCK_REALTIME */
        return get_clock();
    }
}

/*
 * cevent: replaces upstream's qemu_virtual_clock_set_ns().  Advance the
 * manual QEMU_CLOCK_VIRTUAL by @ns (saturating at INT64_MAX), then
 * notify each timer list of that clock that has an armed timer, so that
 * its event loop looks at its deadline again.  Any thread.
 */
void qemu_clock_step(int64_t ns)
{
    QEMUClock *clock = qemu_clock_ptr(QEMU_CLOCK_VIRTUAL);
    QEMUTimerList *timer_list;
    int64_t old, new, seen;

    assert(ns >= 0);
    old = qatomic_read(&qemu_virtual_clock_ns);
    for (;;) {
        new = (old > INT64_MAX - ns) ? INT64_MAX : old + ns;
        seen = qatomic_cmpxchg(&qemu_virtual_clock_ns, old, new);
        if (seen == old) {
            break;
        }
        old = seen;
    }

    qemu_mutex_lock(&qemu_clocks_lock);
    QLIST_FOREACH(timer_list, &clock->timerlists, list) {
        if (timerlist_has_timers(timer_list)) {
            timerlist_notify(timer_list);
        }
    }
    qemu_mutex_unlock(&qemu_clocks_lock);
}

/*
 * cevent: idempotent and harmless.  It creates the main-loop timer lists
 * (with @notify_cb) the first time only; the clocks themselves need no
 * run-time setup, and the process timer slack is left alone (upstream
 * sets it to 1 ns with prctl() where available).
 */
void init_clocks(QEMUTimerListNotifyCB *notify_cb)
{
    QEMUClockType type;

    qemu_mutex_lock(&init_clocks_lock);
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        qemu_clock_init(type, notify_cb);
    }
    qemu_mutex_unlock(&init_clocks_lock);
}

/*
 * cevent: fork safety of the process-wide locks.  An embedder that lets a
 * process fork while other threads use timers calls these from its
 * pthread_atfork handlers: prepare takes the locks (so that no other
 * thread holds one across the fork), the parent releases them, and the
 * child, where only the forking thread exists, initialises them again,
 * together with every timer list's lock (a thread that does not exist in
 * the child may have held one).
 */
void qemu_timer_atfork_prepare(void)
{
    qemu_mutex_lock(&init_clocks_lock);
    qemu_mutex_lock(&qemu_clocks_lock);
}

void qemu_timer_atfork_parent(void)
{
    qemu_mutex_unlock(&qemu_clocks_lock);
    qemu_mutex_unlock(&init_clocks_lock);
}

void qemu_timer_atfork_child(void)
{
    QEMUClockType type;
    QEMUTimerList *timer_list;

    qemu_mutex_init(&init_clocks_lock);
    qemu_mutex_init(&qemu_clocks_lock);
    for (type = 0; type < QEMU_CLOCK_MAX; type++) {
        QLIST_FOREACH(timer_list, &qemu_clock_ptr(type)->timerlists, list) {
            qemu_mutex_init(&timer_list->active_timers_lock);
        }
    }
}

uint64_t timer_expire_time_ns(QEMUTimer *ts)
{
    /* cevent: read once, as the timer may be changed by another thread */
    int64_t expire_time = qatomic_read(&ts->expire_time);

    return expire_time >= 0 ? (uint64_t)expire_time : (uint64_t)-1;
}
