/*
 * Clocks, timer lists, timer list groups and timers: the part of QEMU's
 * include/qemu/timer.h that AioContext uses.  See Modules/qemu-timer.c.
 *
 * Upstream: include/qemu/timer.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07
 * (GPL-2.0-or-later).  Written for cevent; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */
#ifndef QEMU_TIMER_H
#define QEMU_TIMER_H

#include "qemu/osdep.h"

#define NANOSECONDS_PER_SECOND 1000000000LL

/* timers */

#define SCALE_MS 1000000
#define SCALE_US 1000
#define SCALE_NS 1

/*
 * QEMU_CLOCK_REALTIME: monotonic host time.
 * QEMU_CLOCK_VIRTUAL: cevent: a process-wide manual clock that starts at 0
 *     and moves only through qemu_clock_step() (deterministic tests).
 * QEMU_CLOCK_HOST: wall-clock time; follows changes of the system time.
 * QEMU_CLOCK_VIRTUAL_RT: cevent: an alias of REALTIME (no icount here).
 */
typedef enum {
    QEMU_CLOCK_REALTIME = 0,
    QEMU_CLOCK_VIRTUAL = 1,
    QEMU_CLOCK_HOST = 2,
    QEMU_CLOCK_VIRTUAL_RT = 3,
    QEMU_CLOCK_MAX
} QEMUClockType;

/* Timer attributes: only the record/replay hint exists upstream. */
#define QEMU_TIMER_ATTR_EXTERNAL ((int)BIT(0))
#define QEMU_TIMER_ATTR_ALL      0xffffffff
#ifndef BIT
#define BIT(nr) (1UL << (nr))
#endif

typedef struct QEMUTimerList QEMUTimerList;

struct QEMUTimerListGroup {
    QEMUTimerList *tl[QEMU_CLOCK_MAX];
};

typedef void QEMUTimerCB(void *opaque);
typedef void QEMUTimerListNotifyCB(void *opaque, QEMUClockType type);

struct QEMUTimer {
    int64_t expire_time;        /* in nanoseconds; -1 when not armed */
    QEMUTimerList *timer_list;
    QEMUTimerCB *cb;
    void *opaque;
    int attributes;
    int scale;
    /*
     * cevent: upstream keeps armed timers in a sorted singly linked list
     * (a 'next' field here), which makes arming O(n).  cevent keeps them in
     * a 4-ary min-heap ordered by (expire_time, arm_seq): the same
     * observable order (earliest first, ties in arming order), O(log n)
     * arm and disarm.
     */
    size_t heap_index;          /* position in the heap; SIZE_MAX if none */
    uint64_t arm_seq;           /* arming order, breaks expire_time ties */
};

extern QEMUTimerListGroup main_loop_tlg;

/*
 * qemu_clock_get_ns: the current time of @type in nanoseconds.
 */
int64_t qemu_clock_get_ns(QEMUClockType type);

static inline int64_t qemu_clock_get_ms(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / SCALE_MS;
}

static inline int64_t qemu_clock_get_us(QEMUClockType type)
{
    return qemu_clock_get_ns(type) / SCALE_US;
}

bool qemu_clock_has_timers(QEMUClockType type);
bool qemu_clock_expired(QEMUClockType type);
bool qemu_clock_use_for_deadline(QEMUClockType type);
int64_t qemu_clock_deadline_ns_all(QEMUClockType type, int attr_mask);
void qemu_clock_notify(QEMUClockType type);
void qemu_clock_enable(QEMUClockType type, bool enabled);

/*
 * cevent: qemu_clock_step: advance QEMU_CLOCK_VIRTUAL by @ns (>= 0) and
 * notify every timer list of that clock that has an armed timer.  Any
 * thread.
 */
void qemu_clock_step(int64_t ns);

/* Timer lists */

QEMUTimerList *timerlist_new(QEMUClockType type,
                             QEMUTimerListNotifyCB *cb, void *opaque);
void timerlist_free(QEMUTimerList *timer_list);
bool timerlist_has_timers(QEMUTimerList *timer_list);
bool timerlist_expired(QEMUTimerList *timer_list);
int64_t timerlist_deadline_ns(QEMUTimerList *timer_list);
QEMUClockType timerlist_get_clock(QEMUTimerList *timer_list);
bool timerlist_run_timers(QEMUTimerList *timer_list);
void timerlist_notify(QEMUTimerList *timer_list);

/* Timer list groups */

void timerlistgroup_init(QEMUTimerListGroup *tlg,
                         QEMUTimerListNotifyCB *cb, void *opaque);
void timerlistgroup_deinit(QEMUTimerListGroup *tlg);
bool timerlistgroup_run_timers(QEMUTimerListGroup *tlg);
int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup *tlg);

/* Timers */

void timer_init_full(QEMUTimer *ts,
                     QEMUTimerListGroup *timer_list_group, QEMUClockType type,
                     int scale, int attributes,
                     QEMUTimerCB *cb, void *opaque);

static inline void timer_init(QEMUTimer *ts, QEMUClockType type, int scale,
                              QEMUTimerCB *cb, void *opaque)
{
    timer_init_full(ts, NULL, type, scale, 0, cb, opaque);
}

static inline QEMUTimer *timer_new_full(QEMUTimerListGroup *timer_list_group,
                                        QEMUClockType type,
                                        int scale, int attributes,
                                        QEMUTimerCB *cb, void *opaque)
{
    QEMUTimer *ts = g_new0(QEMUTimer, 1);
    timer_init_full(ts, timer_list_group, type, scale, attributes, cb, opaque);
    return ts;
}

static inline QEMUTimer *timer_new(QEMUClockType type, int scale,
                                   QEMUTimerCB *cb, void *opaque)
{
    return timer_new_full(NULL, type, scale, 0, cb, opaque);
}

static inline QEMUTimer *timer_new_ns(QEMUClockType type, QEMUTimerCB *cb,
                                      void *opaque)
{
    return timer_new(type, SCALE_NS, cb, opaque);
}

static inline QEMUTimer *timer_new_us(QEMUClockType type, QEMUTimerCB *cb,
                                      void *opaque)
{
    return timer_new(type, SCALE_US, cb, opaque);
}

static inline QEMUTimer *timer_new_ms(QEMUClockType type, QEMUTimerCB *cb,
                                      void *opaque)
{
    return timer_new(type, SCALE_MS, cb, opaque);
}

void timer_deinit(QEMUTimer *ts);
void timer_del(QEMUTimer *ts);

static inline void timer_free(QEMUTimer *ts)
{
    if (ts) {
        timer_del(ts);
        g_free(ts);
    }
}

void timer_mod_ns(QEMUTimer *ts, int64_t expire_time);
void timer_mod_anticipate_ns(QEMUTimer *ts, int64_t expire_time);
void timer_mod(QEMUTimer *ts, int64_t expire_timer);
void timer_mod_anticipate(QEMUTimer *ts, int64_t expire_time);
bool timer_pending(QEMUTimer *ts);
bool timer_expired(QEMUTimer *timer_head, int64_t current_time);
uint64_t timer_expire_time_ns(QEMUTimer *ts);

/* General utility functions */

/*
 * qemu_soonest_timeout: the sooner of two timeouts, where -1 means
 * "infinite".  Compared as unsigned so that -1 loses to everything and 0
 * wins against everything.
 */
static inline int64_t qemu_soonest_timeout(int64_t timeout1, int64_t timeout2)
{
    return ((uint64_t) timeout1 < (uint64_t) timeout2) ? timeout1 : timeout2;
}

int qemu_timeout_ns_to_ms(int64_t ns);
int qemu_poll_ns(GPollFD *fds, guint nfds, int64_t timeout);

void init_clocks(QEMUTimerListNotifyCB *notify_cb);

/*
 * cevent: pthread_atfork handlers for the process-wide timer locks (see
 * qemu-timer.c); an embedder that allows fork() calls them from its own.
 */
void qemu_timer_atfork_prepare(void);
void qemu_timer_atfork_parent(void);
void qemu_timer_atfork_child(void);

/* Clocks */

static inline int64_t get_clock_realtime(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
}

static inline int64_t get_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
}

#endif /* QEMU_TIMER_H */
