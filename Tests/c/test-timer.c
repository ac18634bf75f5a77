/*
 * C tests of cevent's timer port (Modules/qemu-timer.c) and of the
 * POSIX EventNotifier (Modules/event_notifier-posix.c), no Python.
 *
 * Timers mostly run on QEMU_CLOCK_VIRTUAL, which in cevent is a manual
 * clock moved by qemu_clock_step(): deterministic.  The clock is
 * process-wide and only moves forward, so each test works relative to the
 * value it reads when it starts.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/event_notifier.h"
#include "qemu/fault-injection.h"
#include "qemu/timer.h"

#include <dirent.h>
#include <pthread.h>
#include "test-util.h"

/* xorshift64*: deterministic pseudo-random numbers. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int64_t vnow(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

/* ---- notify callback ------------------------------------------------- */

typedef struct {
    int count;
    QEMUClockType last_type;
} NotifyData;

static void notify_cb(void *opaque, QEMUClockType type)
{
    NotifyData *n = opaque;

    qatomic_inc(&n->count);
    qatomic_set(&n->last_type, type);
}

/* ---- recording callback ---------------------------------------------- */

typedef struct Rec Rec;

typedef struct {
    int *order;                 /* ids in firing order */
    int n;
    int cap;
} Log;

struct Rec {
    QEMUTimer timer;
    Log *log;
    int id;
    int64_t deadline;           /* as armed */
    int arm_index;              /* arming order */
    int fired;
    int rearm_times;            /* re-arm at 'rearm_at' this many times */
    int64_t rearm_at;
};

static void rec_cb(void *opaque)
{
    Rec *r = opaque;

    r->fired++;
    if (r->log && r->log->n < r->log->cap) {
        r->log->order[r->log->n++] = r->id;
    }
    if (r->rearm_times > 0) {
        r->rearm_times--;
        timer_mod_ns(&r->timer, r->rearm_at);
    }
}

/* ---- tests ----------------------------------------------------------- */

static void test_timeout_ns_to_ms(void)
{
    CHECK(qemu_timeout_ns_to_ms(-1) == -1);
    CHECK(qemu_timeout_ns_to_ms(INT64_MIN) == -1);
    CHECK(qemu_timeout_ns_to_ms(0) == 0);
    CHECK(qemu_timeout_ns_to_ms(1) == 1);
    CHECK(qemu_timeout_ns_to_ms(999999) == 1);
    CHECK(qemu_timeout_ns_to_ms(1000000) == 1);
    CHECK(qemu_timeout_ns_to_ms(1000001) == 2);
    CHECK(qemu_timeout_ns_to_ms(2500000000LL) == 2500);
    CHECK(qemu_timeout_ns_to_ms(INT64_MAX) == INT32_MAX);
    CHECK(qemu_soonest_timeout(-1, 5) == 5);
    CHECK(qemu_soonest_timeout(5, -1) == 5);
    CHECK(qemu_soonest_timeout(0, 5) == 0);
    CHECK(qemu_soonest_timeout(-1, -1) == -1);
    passed++;
}

static void test_clocks(void)
{
    int64_t a, b, host;
    struct timespec ts;

    a = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    b = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL_RT);
    CHECK(b >= a);
    CHECK(b - a < NANOSECONDS_PER_SECOND);
    clock_gettime(CLOCK_REALTIME, &ts);
    host = qemu_clock_get_ns(QEMU_CLOCK_HOST);
    CHECK(host / NANOSECONDS_PER_SECOND - ts.tv_sec <= 1);
    CHECK(host / NANOSECONDS_PER_SECOND - ts.tv_sec >= 0);

    a = vnow();
    CHECK(a >= 0);
    qemu_clock_step(0);
    CHECK(vnow() == a);
    qemu_clock_step(12345);
    CHECK(vnow() == a + 12345);
    CHECK(qemu_clock_get_us(QEMU_CLOCK_VIRTUAL) == (a + 12345) / 1000);
    CHECK(qemu_clock_use_for_deadline(QEMU_CLOCK_VIRTUAL));
    CHECK(qemu_clock_use_for_deadline(QEMU_CLOCK_REALTIME));
    passed++;
}

static int cmp_rec(const void *pa, const void *pb)
{
    const Rec *a = *(Rec * const *)pa;
    const Rec *b = *(Rec * const *)pb;

    if (a->deadline != b->deadline) {
        return a->deadline < b->deadline ? -1 : 1;
    }
    return a->arm_index - b->arm_index;
}

/* Many timers, random deadlines with many ties; some deleted, some moved. */
static void test_order(void)
{
    enum { N = 3000 };
    QEMUTimerList *tl = timerlist_new(QEMU_CLOCK_VIRTUAL, NULL, NULL);
    QEMUTimerListGroup tlg = { { NULL } };
    Rec *recs = g_new0(Rec, N);
    Rec **sorted = g_new0(Rec *, N);
    Log log = { g_new0(int, N), 0, N };
    int64_t base = vnow();
    int i, j, arm = 0, live = 0;

    tlg.tl[QEMU_CLOCK_VIRTUAL] = tl;
    for (i = 0; i < N; i++) {
        recs[i].id = i;
        recs[i].log = &log;
        timer_init_full(&recs[i].timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                        0, rec_cb, &recs[i]);
        CHECK(!timer_pending(&recs[i].timer));
        CHECK(recs[i].timer.heap_index == SIZE_MAX);
    }
    /* Arm in a random permutation order, with deadlines in [1, 400]. */
    for (i = 0; i < N; i++) {
        j = i + (int)(rng() % (uint64_t)(N - i));
        if (j != i) {
            Rec tmp = recs[i];
            recs[i] = recs[j];
            recs[j] = tmp;
        }
    }
    for (i = 0; i < N; i++) {
        /* the structs moved: re-point the callbacks' opaque */
        recs[i].timer.opaque = &recs[i];
    }
    for (i = 0; i < N; i++) {
        recs[i].deadline = base + 1 + (int64_t)(rng() % 400);
        recs[i].arm_index = arm++;
        timer_mod_ns(&recs[i].timer, recs[i].deadline);
    }
    /* Re-arm every 7th: it moves behind the others with its new deadline. */
    for (i = 0; i < N; i += 7) {
        recs[i].deadline = base + 1 + (int64_t)(rng() % 400);
        recs[i].arm_index = arm++;
        timer_mod_ns(&recs[i].timer, recs[i].deadline);
    }
    /* Delete every 5th. */
    for (i = 0; i < N; i += 5) {
        timer_del(&recs[i].timer);
        CHECK(!timer_pending(&recs[i].timer));
        CHECK(timer_expire_time_ns(&recs[i].timer) == UINT64_MAX);
    }
    for (i = 0; i < N; i++) {
        if (i % 5) {
            CHECK(timer_pending(&recs[i].timer));
            CHECK(timer_expire_time_ns(&recs[i].timer) ==
                  (uint64_t)recs[i].deadline);
            sorted[live++] = &recs[i];
        }
    }
    qsort(sorted, live, sizeof(*sorted), cmp_rec);

    CHECK(timerlist_has_timers(tl));
    CHECK(timerlist_deadline_ns(tl) == sorted[0]->deadline - base);
    CHECK(!timerlist_run_timers(tl));        /* nothing due at base */
    qemu_clock_step(400);
    CHECK(timerlist_expired(tl));
    CHECK(timerlist_deadline_ns(tl) == 0);
    CHECK(timerlist_run_timers(tl));
    CHECK(!timerlist_has_timers(tl));
    CHECK(!timerlist_expired(tl));
    CHECK(timerlist_deadline_ns(tl) == -1);
    CHECK(log.n == live);
    for (i = 0; i < live; i++) {
        CHECK(log.order[i] == sorted[i]->id);
        CHECK(sorted[i]->fired == 1);
    }
    for (i = 0; i < N; i++) {
        CHECK(!timer_pending(&recs[i].timer));
        CHECK(recs[i].timer.heap_index == SIZE_MAX);
        timer_deinit(&recs[i].timer);
    }
    timerlist_free(tl);
    g_free(log.order);
    g_free(sorted);
    g_free(recs);
    passed++;
}

static void test_mod_and_anticipate(void)
{
    QEMUTimerListGroup tlg;
    Log log = { g_new0(int, 16), 0, 16 };
    Rec a = { .id = 1, .log = &log }, b = { .id = 2, .log = &log };
    int64_t base = vnow();

    timerlistgroup_init(&tlg, NULL, NULL);
    timer_init_full(&a.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &a);
    timer_init_full(&b.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_US, 0,
                    rec_cb, &b);

    /* mod re-arms: later deadline moves it behind b */
    timer_mod_ns(&a.timer, base + 10);
    timer_mod(&b.timer, 0);                 /* scale applied: 0 us */
    CHECK(timer_expire_time_ns(&b.timer) == 0);
    timer_mod(&b.timer, (base + 20000) / 1000 + 1);
    CHECK(timer_expire_time_ns(&b.timer) ==
          (uint64_t)(((base + 20000) / 1000 + 1) * 1000));
    timer_mod_ns(&a.timer, base + 30000);
    CHECK(timer_expire_time_ns(&a.timer) == (uint64_t)(base + 30000));

    /* anticipate: never moves a deadline later */
    timer_mod_anticipate_ns(&a.timer, base + 50000);
    CHECK(timer_expire_time_ns(&a.timer) == (uint64_t)(base + 30000));
    timer_mod_anticipate_ns(&a.timer, base + 5);
    CHECK(timer_expire_time_ns(&a.timer) == (uint64_t)(base + 5));
    timer_del(&a.timer);
    timer_mod_anticipate_ns(&a.timer, base + 40000);   /* unarmed: arms */
    CHECK(timer_expire_time_ns(&a.timer) == (uint64_t)(base + 40000));
    timer_mod_anticipate(&b.timer, 1000000000);        /* later: no-op */
    CHECK(timer_expire_time_ns(&b.timer) ==
          (uint64_t)(((base + 20000) / 1000 + 1) * 1000));

    /* timer_expired compares in the timer's scale; no armed test */
    CHECK(!timer_expired(&a.timer, base + 39999));
    CHECK(timer_expired(&a.timer, base + 40000));
    CHECK(timer_expired(&b.timer, (base + 20000) / 1000 + 1));
    CHECK(!timer_expired(&b.timer, (base + 20000) / 1000));

    /* negative deadlines are clamped to 0 */
    timer_mod_ns(&a.timer, -5);
    CHECK(timer_pending(&a.timer));
    CHECK(timer_expire_time_ns(&a.timer) == 0);
    CHECK(timerlistgroup_deadline_ns(&tlg) == 0);
    timer_mod_ns(&a.timer, base + 40000);

    CHECK(timerlistgroup_deadline_ns(&tlg) ==
          ((base + 20000) / 1000 + 1) * 1000 - base);
    qemu_clock_step(50000);
    CHECK(timerlistgroup_run_timers(&tlg));
    CHECK(log.n == 2 && log.order[0] == 2 && log.order[1] == 1);
    CHECK(!timerlistgroup_run_timers(&tlg));
    CHECK(timerlistgroup_deadline_ns(&tlg) == -1);

    timer_deinit(&a.timer);
    timer_deinit(&b.timer);
    timer_del(&a.timer);        /* after deinit: harmless no-op */
    timerlistgroup_deinit(&tlg);
    g_free(log.order);
    passed++;
}

/* The clock is read once per pass. */
static void test_run_reads_clock_once(void)
{
    QEMUTimerListGroup tlg;
    Log log = { g_new0(int, 16), 0, 16 };
    Rec a = { .id = 1, .log = &log }, b = { .id = 2, .log = &log };
    int64_t base = vnow();

    timerlistgroup_init(&tlg, NULL, NULL);
    timer_init_full(&a.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &a);
    timer_init_full(&b.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &b);

    /* a re-arms itself at 'now' twice: runs 3 times in the same pass */
    a.rearm_times = 2;
    a.rearm_at = base + 10;
    timer_mod_ns(&a.timer, base + 10);
    /* b re-arms itself one ns later: runs once, then waits */
    b.rearm_times = 1;
    b.rearm_at = base + 11;
    timer_mod_ns(&b.timer, base + 5);

    qemu_clock_step(10);
    CHECK(timerlistgroup_run_timers(&tlg));
    CHECK(a.fired == 3);
    CHECK(b.fired == 1);
    CHECK(!timer_pending(&a.timer));
    CHECK(timer_pending(&b.timer));
    CHECK(log.n == 4);
    CHECK(log.order[0] == 2 && log.order[1] == 1 && log.order[2] == 1 &&
          log.order[3] == 1);
    CHECK(timerlistgroup_deadline_ns(&tlg) == 1);
    CHECK(!timerlistgroup_run_timers(&tlg));
    qemu_clock_step(1);
    CHECK(timerlistgroup_run_timers(&tlg));
    CHECK(b.fired == 2);
    CHECK(!timer_pending(&b.timer));

    timer_deinit(&a.timer);
    timer_deinit(&b.timer);
    timerlistgroup_deinit(&tlg);
    g_free(log.order);
    passed++;
}

static void test_notify(void)
{
    NotifyData nd = { 0, QEMU_CLOCK_MAX };
    NotifyData other = { 0, QEMU_CLOCK_MAX };
    QEMUTimerListGroup tlg, tlg2;
    Rec a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 }, d = { .id = 4 };
    int64_t base = vnow();

    timerlistgroup_init(&tlg, notify_cb, &nd);
    timerlistgroup_init(&tlg2, notify_cb, &other);
    timer_init_full(&a.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &a);
    timer_init_full(&b.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &b);
    timer_init_full(&c.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &c);
    timer_init_full(&d.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &d);

    CHECK(timerlist_get_clock(tlg.tl[QEMU_CLOCK_VIRTUAL]) ==
          QEMU_CLOCK_VIRTUAL);
    CHECK(timerlist_get_clock(tlg.tl[QEMU_CLOCK_HOST]) == QEMU_CLOCK_HOST);

    timer_mod_ns(&a.timer, base + 100);     /* first: notify */
    CHECK(nd.count == 1);
    CHECK(nd.last_type == QEMU_CLOCK_VIRTUAL);
    timer_mod_ns(&b.timer, base + 200);     /* not first: no notify */
    CHECK(nd.count == 1);
    timer_mod_ns(&c.timer, base + 50);      /* new first: notify */
    CHECK(nd.count == 2);
    timer_mod_ns(&d.timer, base + 50);      /* tie: after c, no notify */
    CHECK(nd.count == 2);
    timer_mod_ns(&a.timer, base + 10);      /* moved to first: notify */
    CHECK(nd.count == 3);
    timer_mod_anticipate_ns(&b.timer, base + 150);  /* not first */
    CHECK(nd.count == 3);
    timer_mod_anticipate_ns(&b.timer, base + 1);    /* first */
    CHECK(nd.count == 4);
    timer_mod_anticipate_ns(&b.timer, base + 0);    /* first again */
    CHECK(nd.count == 5);
    timer_mod_anticipate_ns(&b.timer, base + 100);  /* no change */
    CHECK(nd.count == 5);
    timer_del(&b.timer);                    /* deletion: no notify */
    CHECK(nd.count == 5);

    /* stepping notifies lists of the VIRTUAL clock that have timers */
    qemu_clock_step(1);
    CHECK(nd.count == 6);
    CHECK(other.count == 0);
    qemu_clock_notify(QEMU_CLOCK_VIRTUAL);  /* every list, armed or not */
    CHECK(nd.count == 7);
    CHECK(other.count == 1);

    CHECK(qemu_clock_has_timers(QEMU_CLOCK_VIRTUAL));
    CHECK(!qemu_clock_expired(QEMU_CLOCK_VIRTUAL));
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                     QEMU_TIMER_ATTR_ALL) == 9);

    /* a disabled clock has no deadline and runs nothing */
    qemu_clock_step(100);
    CHECK(nd.count == 8);
    CHECK(other.count == 1);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, false);
    CHECK(timerlist_deadline_ns(tlg.tl[QEMU_CLOCK_VIRTUAL]) == -1);
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                     QEMU_TIMER_ATTR_ALL) == -1);
    CHECK(!timerlistgroup_run_timers(&tlg));
    CHECK(a.fired == 0);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);    /* notifies */
    CHECK(nd.count == 9);
    CHECK(other.count == 2);
    qemu_clock_enable(QEMU_CLOCK_VIRTUAL, true);    /* no change */
    CHECK(nd.count == 9);
    CHECK(qemu_clock_expired(QEMU_CLOCK_VIRTUAL));
    CHECK(timerlistgroup_run_timers(&tlg));
    CHECK(a.fired == 1 && c.fired == 1 && d.fired == 1 && b.fired == 0);
    CHECK(!qemu_clock_has_timers(QEMU_CLOCK_VIRTUAL));
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                     QEMU_TIMER_ATTR_ALL) == -1);

    /* stepping with no armed timer notifies nobody */
    qemu_clock_step(1);
    CHECK(nd.count == 9);
    CHECK(other.count == 2);

    timer_deinit(&a.timer);
    timer_deinit(&b.timer);
    timer_deinit(&c.timer);
    timer_deinit(&d.timer);
    timerlistgroup_deinit(&tlg);
    timerlistgroup_deinit(&tlg2);
    passed++;
}

/* qemu_clock_deadline_ns_all skips timers outside the attribute mask. */
static void test_attr_mask(void)
{
    QEMUTimerListGroup tlg;
    Rec a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
    int64_t base = vnow();

    timerlistgroup_init(&tlg, NULL, NULL);
    timer_init_full(&a.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                    QEMU_TIMER_ATTR_EXTERNAL, rec_cb, &a);
    timer_init_full(&b.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &b);
    timer_init_full(&c.timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS, 0,
                    rec_cb, &c);
    timer_mod_ns(&a.timer, base + 10);
    timer_mod_ns(&c.timer, base + 40);
    timer_mod_ns(&b.timer, base + 30);
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                     QEMU_TIMER_ATTR_ALL) == 10);
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, 0) == 30);
    timer_del(&b.timer);
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, 0) == 40);
    timer_del(&c.timer);
    CHECK(qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL, 0) == -1);
    timer_del(&a.timer);
    timer_deinit(&a.timer);
    timer_deinit(&b.timer);
    timer_deinit(&c.timer);
    timerlistgroup_deinit(&tlg);
    passed++;
}

/* A REALTIME timer fires through qemu_poll_ns() with the group deadline. */
static void test_realtime(void)
{
    QEMUTimerListGroup tlg;
    Rec a = { .id = 1 }, far = { .id = 2 };
    int64_t start = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    int64_t deadline;
    int loops = 0;

    timerlistgroup_init(&tlg, NULL, NULL);
    timer_init_full(&a.timer, &tlg, QEMU_CLOCK_REALTIME, SCALE_MS, 0,
                    rec_cb, &a);
    timer_init_full(&far.timer, &tlg, QEMU_CLOCK_HOST, SCALE_MS, 0,
                    rec_cb, &far);
    timer_mod(&far.timer, qemu_clock_get_ms(QEMU_CLOCK_HOST) + 60000);
    timer_mod(&a.timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 2);
    deadline = timerlistgroup_deadline_ns(&tlg);
    CHECK(deadline > 0 && deadline <= 3 * SCALE_MS);
    while (!a.fired && loops++ < 1000) {
        CHECK(qemu_poll_ns(NULL, 0, timerlistgroup_deadline_ns(&tlg)) == 0);
        timerlistgroup_run_timers(&tlg);
    }
    CHECK(a.fired == 1);
    CHECK(qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - start >= SCALE_MS);
    CHECK(far.fired == 0);
    CHECK(timerlistgroup_deadline_ns(&tlg) > 50 * NANOSECONDS_PER_SECOND);
    timer_del(&far.timer);
    timer_deinit(&a.timer);
    timer_deinit(&far.timer);
    timerlistgroup_deinit(&tlg);
    passed++;
}

/* init_clocks() is idempotent; afterwards main_loop_tlg timers work. */
static void test_main_loop_tlg(void)
{
    QEMUTimer *ts;
    Rec a = { .id = 1 };
    QEMUTimerList *tl;

    init_clocks(NULL);
    tl = main_loop_tlg.tl[QEMU_CLOCK_VIRTUAL];
    CHECK(tl != NULL);
    init_clocks(NULL);
    CHECK(main_loop_tlg.tl[QEMU_CLOCK_VIRTUAL] == tl);

    ts = timer_new_ns(QEMU_CLOCK_VIRTUAL, rec_cb, &a);
    CHECK(ts->timer_list == tl);
    timer_mod_ns(ts, vnow() + 3);   /* no notify cb: nothing to call */
    CHECK(qemu_clock_has_timers(QEMU_CLOCK_VIRTUAL));
    qemu_clock_step(3);
    CHECK(qemu_clock_expired(QEMU_CLOCK_VIRTUAL));
    CHECK(timerlist_run_timers(tl));
    CHECK(a.fired == 1);
    timer_mod_ns(ts, vnow() + 3);
    timer_free(ts);                  /* disarms */
    CHECK(!timerlist_has_timers(tl));
    passed++;
}

/* Arming 100k random timers is fast (reported, not asserted). */
static void test_many_timers(void)
{
    enum { N = 100000 };
    QEMUTimerListGroup tlg;
    Rec *recs = g_new0(Rec, N);
    Log log = { g_new0(int, N), 0, N };
    int64_t base = vnow(), t0, t1, t2;
    int64_t prev_deadline = -1;
    int i, live = 0;

    timerlistgroup_init(&tlg, NULL, NULL);
    for (i = 0; i < N; i++) {
        recs[i].id = i;
        recs[i].log = &log;
        timer_init_full(&recs[i].timer, &tlg, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                        0, rec_cb, &recs[i]);
    }
    t0 = get_clock();
    for (i = 0; i < N; i++) {
        recs[i].deadline = base + 1 + (int64_t)(rng() % 1000000000);
        timer_mod_ns(&recs[i].timer, recs[i].deadline);
    }
    t1 = get_clock();
    for (i = 0; i < N; i += 2) {
        timer_del(&recs[i].timer);
    }
    t2 = get_clock();
    printf("  100k timers: arm %.1f ns/timer, del 50k %.1f ns/timer\n",
           (double)(t1 - t0) / N, (double)(t2 - t1) / (N / 2));
    qemu_clock_step(1000000000);
    CHECK(timerlistgroup_run_timers(&tlg));
    for (i = 0; i < N; i++) {
        CHECK(recs[i].fired == (i & 1));
        live += recs[i].fired;
    }
    CHECK(log.n == live);
    for (i = 0; i < log.n; i++) {
        Rec *r = &recs[log.order[i]];

        CHECK(r->deadline >= prev_deadline);
        prev_deadline = r->deadline;
    }
    for (i = 0; i < N; i++) {
        timer_deinit(&recs[i].timer);
    }
    timerlistgroup_deinit(&tlg);
    g_free(log.order);
    g_free(recs);
    passed++;
}

/* Timers armed and deleted from other threads while one thread runs. */
enum { MT_THREADS = 3, MT_TIMERS = 64, MT_ITERS = 20000 };

typedef struct {
    QEMUTimerListGroup *tlg;
    Rec recs[MT_TIMERS];
    int done;
} MTArmer;

static void *mt_armer(void *opaque)
{
    MTArmer *m = opaque;
    uint64_t seed = (uintptr_t)m;
    int i;

    for (i = 0; i < MT_ITERS; i++) {
        Rec *r;

        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        r = &m->recs[(seed >> 33) % MT_TIMERS];
        if ((seed >> 20) & 1) {
            timer_mod_ns(&r->timer, vnow() + (int64_t)((seed >> 40) % 50));
        } else if ((seed >> 21) & 1) {
            timer_mod_anticipate_ns(&r->timer, vnow() + 10);
        } else {
            timer_del(&r->timer);
        }
        if ((i & 255) == 0) {
            qemu_clock_step(7);
        }
    }
    for (i = 0; i < MT_TIMERS; i++) {
        timer_del(&m->recs[i].timer);
    }
    qatomic_set(&m->done, 1);
    return NULL;
}

static void mt_cb(void *opaque)
{
    Rec *r = opaque;

    qatomic_inc(&r->fired);
}

static void test_threads(void)
{
    NotifyData nd = { 0, QEMU_CLOCK_MAX };
    QEMUTimerListGroup tlg;
    MTArmer *m = g_new0(MTArmer, MT_THREADS);
    pthread_t th[MT_THREADS];
    int i, j, running, runs = 0;
    long fired = 0;

    timerlistgroup_init(&tlg, notify_cb, &nd);
    for (i = 0; i < MT_THREADS; i++) {
        m[i].tlg = &tlg;
        for (j = 0; j < MT_TIMERS; j++) {
            timer_init_full(&m[i].recs[j].timer, &tlg, QEMU_CLOCK_VIRTUAL,
                            SCALE_NS, 0, mt_cb, &m[i].recs[j]);
        }
    }
    for (i = 0; i < MT_THREADS; i++) {
        CHECK(pthread_create(&th[i], NULL, mt_armer, &m[i]) == 0);
    }
    do {
        running = 0;
        for (i = 0; i < MT_THREADS; i++) {
            running += !qatomic_read(&m[i].done);
        }
        qemu_clock_step(3);
        timerlistgroup_deadline_ns(&tlg);
        if (timerlistgroup_run_timers(&tlg)) {
            runs++;
        }
    } while (running);
    for (i = 0; i < MT_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK(!timerlist_has_timers(tlg.tl[QEMU_CLOCK_VIRTUAL]));
    for (i = 0; i < MT_THREADS; i++) {
        for (j = 0; j < MT_TIMERS; j++) {
            CHECK(!timer_pending(&m[i].recs[j].timer));
            fired += qatomic_read(&m[i].recs[j].fired);
            timer_deinit(&m[i].recs[j].timer);
        }
    }
    printf("  threads: %d passes ran timers, %ld callbacks, %d notifies\n",
           runs, fired, qatomic_read(&nd.count));
    timerlistgroup_deinit(&tlg);
    g_free(m);
    passed++;
}

/* ---- EventNotifier --------------------------------------------------- */

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    if (!d) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

static void check_notifier(EventNotifier *e, bool pipe_expected)
{
    GPollFD pfd;
    int fl;

    CHECK(e->initialized);
    CHECK(pipe_expected ? e->rfd != e->wfd : e->rfd == e->wfd);
    CHECK(event_notifier_get_fd(e) == e->rfd);
    CHECK(event_notifier_get_wfd(e) == e->wfd);
    fl = fcntl(e->rfd, F_GETFL);
    CHECK(fl != -1 && (fl & O_NONBLOCK));
    fl = fcntl(e->wfd, F_GETFL);
    CHECK(fl != -1 && (fl & O_NONBLOCK));
    CHECK(fcntl(e->rfd, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(e->wfd, F_GETFD) & FD_CLOEXEC);

    CHECK(event_notifier_test_and_clear(e) == 0);
    pfd.fd = e->rfd;
    pfd.events = G_IO_IN;
    pfd.revents = 0;
    CHECK(qemu_poll_ns(&pfd, 1, 0) == 0);
    CHECK(event_notifier_set(e) == 0);
    CHECK(event_notifier_set(e) == 0);
    CHECK(qemu_poll_ns(&pfd, 1, -1) == 1);
    CHECK(pfd.revents & G_IO_IN);
    CHECK(event_notifier_test_and_clear(e) == 1);
    CHECK(event_notifier_test_and_clear(e) == 0);
    CHECK(qemu_poll_ns(&pfd, 1, 1000) == 0);
    passed++;
}

static void test_event_notifier(void)
{
    EventNotifier e;
    int fds0 = count_open_fds();
    int i;

    /* eventfd, created inactive */
    CHECK(event_notifier_init(&e, false) == 0);
    check_notifier(&e, false);
    event_notifier_cleanup(&e);
    CHECK(!e.initialized && e.rfd == -1 && e.wfd == -1);
    event_notifier_cleanup(&e);             /* idempotent */
    CHECK(event_notifier_set(&e) == -1);    /* not initialised */
    CHECK(event_notifier_test_and_clear(&e) == 0);

    /* created active */
    CHECK(event_notifier_init(&e, true) == 0);
    CHECK(event_notifier_test_and_clear(&e) == 1);
    CHECK(event_notifier_test_and_clear(&e) == 0);
    event_notifier_cleanup(&e);

    /* init_fd adopts an existing descriptor */
    {
        EventNotifier tmp, f;

        CHECK(event_notifier_init(&tmp, false) == 0);
        CHECK(event_notifier_init_fd(&f, tmp.rfd) == 0);
        CHECK(f.initialized && f.rfd == tmp.rfd && f.wfd == tmp.rfd);
        CHECK(event_notifier_set(&f) == 0);
        CHECK(event_notifier_test_and_clear(&tmp) == 1);
        event_notifier_cleanup(&f);         /* closes the shared fd */
    }

#ifdef CEVENT_FAULT_INJECTION
    /* ENOSYS: the pipe fallback */
    qatomic_set(&cevent_fault_eventfd_errno, ENOSYS);
    CHECK(event_notifier_init(&e, false) == 0);
    qatomic_set(&cevent_fault_eventfd_errno, 0);
    check_notifier(&e, true);
    /* a pipe fills up: EAGAIN counts as success, one clear drains all */
    for (i = 0; i < 100000; i++) {
        CHECK(event_notifier_set(&e) == 0);
    }
    CHECK(event_notifier_test_and_clear(&e) == 1);
    CHECK(event_notifier_test_and_clear(&e) == 0);
    event_notifier_cleanup(&e);
    CHECK(!e.initialized);
    event_notifier_cleanup(&e);

    qatomic_set(&cevent_fault_eventfd_errno, ENOSYS);
    CHECK(event_notifier_init(&e, true) == 0);
    qatomic_set(&cevent_fault_eventfd_errno, 0);
    CHECK(e.rfd != e.wfd);
    CHECK(event_notifier_test_and_clear(&e) == 1);
    event_notifier_cleanup(&e);

    /* any other error: -errno, no fallback, nothing left open */
    memset(&e, 0, sizeof(e));
    qatomic_set(&cevent_fault_eventfd_errno, EMFILE);
    CHECK(event_notifier_init(&e, false) == -EMFILE);
    qatomic_set(&cevent_fault_eventfd_errno, 0);
    CHECK(!e.initialized);
    passed++;
#else
    (void)i;
    printf("  (fault injection not compiled in: pipe fallback skipped)\n");
#endif
    CHECK(count_open_fds() == fds0);
    passed++;
}

int main(void)
{
    printf("test-timer\n");
    test_timeout_ns_to_ms();
    test_clocks();
    test_order();
    test_mod_and_anticipate();
    test_run_reads_clock_once();
    test_notify();
    test_attr_mask();
    test_realtime();
    test_main_loop_tlg();
    test_many_timers();
    test_threads();
    test_event_notifier();

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
