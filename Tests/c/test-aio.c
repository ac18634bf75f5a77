/*
 * C tests of cevent's AioContext port, with no Python: the scenarios of
 * QEMU's tests/unit/test-aio.c (BHs, event notifiers, timers, progress)
 * and tests/unit/test-aio-multithread.c (event-loop threads woken by
 * cross-thread BHs), re-expressed for cevent.  Built and run by
 * Tests/c/Makefile, once per fd monitor (CEVENT_TEST_FDMON), and under
 * ThreadSanitizer in CI.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/aio.h"
#include "qemu/atomic.h"
#include "qemu/timer.h"

#include <pthread.h>
#include "test-util.h"

/* ---- BHs (test-aio.c) ------------------------------------------------ */

typedef struct {
    QEMUBH *bh;
    int n;
    int max;
} BHTestData;

static void bh_test_cb(void *opaque)
{
    BHTestData *data = opaque;

    if (++data->n < data->max) {
        qemu_bh_schedule(data->bh);
    }
}

static void bh_delete_cb(void *opaque)
{
    BHTestData *data = opaque;

    if (++data->n < data->max) {
        qemu_bh_schedule(data->bh);
    } else {
        qemu_bh_delete(data->bh);
        data->bh = NULL;
    }
}

static void test_bh_schedule10(void)
{
    AioContext *ctx = new_ctx();
    BHTestData data = { .n = 0, .max = 10 };
    int i;

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    CHECK(data.n == 0);
    CHECK(aio_poll(ctx, false));
    CHECK(data.n == 1);
    CHECK(aio_poll(ctx, true));
    CHECK(data.n == 2);
    for (i = 0; i < 100 && data.n < 10; i++) {
        aio_poll(ctx, true);
    }
    CHECK(data.n == 10);
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 10);
    qemu_bh_delete(data.bh);
    aio_context_unref(ctx);
    passed++;
}

static void test_bh_cancel_delete(void)
{
    AioContext *ctx = new_ctx();
    BHTestData data = { .n = 0 };

    data.bh = aio_bh_new(ctx, bh_test_cb, &data);
    qemu_bh_schedule(data.bh);
    qemu_bh_cancel(data.bh);
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 0);
    qemu_bh_schedule(data.bh);
    qemu_bh_delete(data.bh);
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 0);
    aio_context_unref(ctx);
    passed++;
}

static void test_bh_delete_from_cb_many(void)
{
    AioContext *ctx = new_ctx();
    BHTestData d1 = { .max = 1 }, d2 = { .max = 3 }, d3 = { .max = 2 },
               d4 = { .max = 4 };
    int i;

    d1.bh = aio_bh_new(ctx, bh_delete_cb, &d1);
    d2.bh = aio_bh_new(ctx, bh_delete_cb, &d2);
    d3.bh = aio_bh_new(ctx, bh_delete_cb, &d3);
    d4.bh = aio_bh_new(ctx, bh_delete_cb, &d4);
    qemu_bh_schedule(d1.bh);
    qemu_bh_schedule(d2.bh);
    qemu_bh_schedule(d3.bh);
    qemu_bh_schedule(d4.bh);
    CHECK(aio_poll(ctx, false));
    CHECK(d1.n == 1 && d2.n == 1 && d3.n == 1 && d4.n == 1);
    CHECK(d1.bh == NULL);
    for (i = 0; i < 100 && (d2.bh || d3.bh || d4.bh); i++) {
        aio_poll(ctx, true);
    }
    CHECK(d1.n == 1 && d2.n == 3 && d3.n == 2 && d4.n == 4);
    CHECK(!d2.bh && !d3.bh && !d4.bh);
    aio_context_unref(ctx);
    passed++;
}

/* BHs run newest first (a lock-free stack) */
static int order[4], order_len;

static void record_order_cb(void *opaque)
{
    order[order_len++] = (int)(intptr_t)opaque;
}

static void test_bh_lifo(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh[3];
    int i;

    order_len = 0;
    for (i = 0; i < 3; i++) {
        bh[i] = aio_bh_new(ctx, record_order_cb, (void *)(intptr_t)i);
    }
    for (i = 0; i < 3; i++) {
        qemu_bh_schedule(bh[i]);
    }
    qemu_bh_schedule(bh[0]); /* already queued: keeps its position */
    CHECK(aio_poll(ctx, false));
    CHECK(order_len == 3);
    CHECK(order[0] == 2 && order[1] == 1 && order[2] == 0);
    for (i = 0; i < 3; i++) {
        qemu_bh_delete(bh[i]);
    }
    aio_context_unref(ctx);
    passed++;
}

/* Releasing a BH's opaque when it is freed (cevent addition) */
static int released;

static void count_release(void *opaque)
{
    (void)opaque;
    released++;
}

static void nop_cb(void *opaque)
{
    (void)opaque;
}

static void test_bh_release(void)
{
    AioContext *ctx = new_ctx();
    QEMUBH *bh;

    released = 0;
    aio_bh_schedule_oneshot_full(ctx, nop_cb, NULL, "x", count_release);
    CHECK(aio_poll(ctx, false));
    CHECK(released == 1);
    bh = aio_bh_new_full(ctx, nop_cb, NULL, "y", count_release);
    qemu_bh_schedule(bh);
    qemu_bh_orphan(bh);          /* runs once more, then freed */
    CHECK(aio_poll(ctx, false));
    CHECK(released == 2);
    bh = aio_bh_new_full(ctx, nop_cb, NULL, "z", count_release);
    qemu_bh_schedule(bh);        /* queued, never run: freed at unref */
    aio_bh_schedule_oneshot_full(ctx, nop_cb, NULL, "w", count_release);
    aio_context_unref(ctx);
    CHECK(released == 4);
    passed++;
}

/* ---- event notifiers (test-aio.c) ------------------------------------ */

typedef struct {
    EventNotifier e;
    int n;
    int active;
    bool auto_set;
} EventNotifierTestData;

static void event_ready_cb(EventNotifier *e)
{
    EventNotifierTestData *data = container_of(e, EventNotifierTestData, e);

    assert(event_notifier_test_and_clear(e));
    data->n++;
    if (data->active > 0) {
        data->active--;
    }
    if (data->auto_set && data->active) {
        event_notifier_set(e);
    }
}

static void test_wait_event_notifier(void)
{
    AioContext *ctx = new_ctx();
    EventNotifierTestData data = { .n = 0, .active = 1 };
    int i;

    CHECK(event_notifier_init(&data.e, false) == 0);
    aio_set_event_notifier(ctx, &data.e, event_ready_cb, NULL, NULL);
    for (i = 0; i < 10 && aio_poll(ctx, false); i++) {
        /* drain */
    }
    CHECK(data.n == 0);
    CHECK(data.active == 1);

    event_notifier_set(&data.e);
    CHECK(aio_poll(ctx, false));
    CHECK(data.n == 1);
    CHECK(data.active == 0);

    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 1);

    aio_set_event_notifier(ctx, &data.e, NULL, NULL, NULL);
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 1);
    event_notifier_cleanup(&data.e);
    aio_context_unref(ctx);
    passed++;
}

static void test_flush_event_notifier(void)
{
    AioContext *ctx = new_ctx();
    EventNotifierTestData data = { .n = 0, .active = 10, .auto_set = true };
    int i;

    CHECK(event_notifier_init(&data.e, false) == 0);
    aio_set_event_notifier(ctx, &data.e, event_ready_cb, NULL, NULL);
    for (i = 0; i < 10 && aio_poll(ctx, false); i++) {
        /* drain */
    }
    CHECK(data.n == 0);
    event_notifier_set(&data.e);
    CHECK(aio_poll(ctx, false));
    CHECK(data.n == 1);
    CHECK(data.active == 9);
    CHECK(aio_poll(ctx, false));
    for (i = 0; i < 100 && data.active > 0; i++) {
        aio_poll(ctx, true);
    }
    CHECK(data.n == 10);
    CHECK(data.active == 0);
    CHECK(!aio_poll(ctx, false));
    aio_set_event_notifier(ctx, &data.e, NULL, NULL, NULL);
    CHECK(!aio_poll(ctx, false));
    event_notifier_cleanup(&data.e);
    aio_context_unref(ctx);
    passed++;
}

/* Many fds (epoll upgrade at 64), one of them ready */
static void test_many_notifiers(void)
{
    AioContext *ctx = new_ctx();
    EventNotifierTestData data[100];
    int i;

    for (i = 0; i < 100; i++) {
        data[i] = (EventNotifierTestData){ .n = 0 };
        CHECK(event_notifier_init(&data[i].e, false) == 0);
        aio_set_event_notifier(ctx, &data[i].e, event_ready_cb, NULL, NULL);
    }
    aio_poll(ctx, false);
    event_notifier_set(&data[42].e);
    CHECK(aio_poll(ctx, true));
    CHECK(data[42].n == 1);
    if (test_kind() == AIO_FDMON_EPOLL) {
        CHECK(!strcmp(aio_context_fdmon_name(ctx), "epoll"));
    }
    event_notifier_set(&data[7].e);
    CHECK(aio_poll(ctx, true));
    CHECK(data[7].n == 1);
    for (i = 0; i < 100; i++) {
        aio_set_event_notifier(ctx, &data[i].e, NULL, NULL, NULL);
        event_notifier_cleanup(&data[i].e);
    }
    if (test_kind() == AIO_FDMON_EPOLL) {
        CHECK(!strcmp(aio_context_fdmon_name(ctx), "epoll"));
    }
    aio_context_unref(ctx);
    passed++;
}

/* Handlers still registered at unref are released (cevent) */
static void test_unref_releases_handlers(void)
{
    AioContext *ctx = new_ctx();
    EventNotifier e;

    released = 0;
    CHECK(event_notifier_init(&e, false) == 0);
    aio_set_fd_handler_full(ctx, event_notifier_get_fd(&e), nop_cb, NULL,
                            NULL, NULL, NULL, count_release);
    aio_poll(ctx, false);
    aio_context_unref(ctx);
    CHECK(released == 1);
    event_notifier_cleanup(&e);
    passed++;
}

/* ---- timers ---------------------------------------------------------- */

typedef struct {
    QEMUTimer *timer;
    int n;
    int max;
    int64_t ns;
} TimerTestData;

static void timer_test_cb(void *opaque)
{
    TimerTestData *data = opaque;

    if (++data->n < data->max) {
        timer_mod_ns(data->timer,
                     qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + data->ns);
    }
}

static void test_timer_schedule_virtual(void)
{
    AioContext *ctx = new_ctx();
    TimerTestData data = { .n = 0, .max = 2, .ns = 750 * SCALE_MS };
    int i;

    data.timer = aio_timer_new(ctx, QEMU_CLOCK_VIRTUAL, SCALE_NS,
                               timer_test_cb, &data);
    timer_mod_ns(data.timer,
                 qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) + data.ns);
    for (i = 0; i < 10 && aio_poll(ctx, false); i++) {
        /* drain the notification */
    }
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 0);
    CHECK(aio_compute_timeout(ctx) == data.ns);
    qemu_clock_step(data.ns - 1);
    CHECK(!aio_poll(ctx, false));
    CHECK(data.n == 0);
    qemu_clock_step(1);
    CHECK(aio_poll(ctx, false));
    CHECK(data.n == 1);
    CHECK(!aio_poll(ctx, false));
    qemu_clock_step(data.ns);
    CHECK(aio_poll(ctx, true));
    CHECK(data.n == 2);
    CHECK(!timer_pending(data.timer));
    timer_free(data.timer);
    aio_context_unref(ctx);
    passed++;
}

/* ---- adaptive polling ------------------------------------------------ */

/*
 * The adjustment rule is checked against the outcome the context itself
 * reports (stats.poll_grow / poll_shrink), so that a slow host (valgrind)
 * which takes longer than poll_ns for an iteration is judged by the same
 * rule rather than by an assumed speed.
 */
static void test_poll_ns_grows(void)
{
    AioContext *ctx = new_ctx();
    uint64_t grows, shrinks;

    /* 10 s: no iteration here blocks that long, so the first one grows */
    aio_context_set_poll_params(ctx, 10 * 1000 * (int64_t)SCALE_MS, 0, 0, NULL);
    CHECK(ctx->poll_ns == 0);
    grows = ctx->stats.poll_grow;
    shrinks = ctx->stats.poll_shrink;
    aio_poll(ctx, false);
    CHECK(ctx->stats.poll_shrink == shrinks);
    CHECK(ctx->stats.poll_grow == grows + 1);
    CHECK(ctx->poll_ns == 4000);

    /*
     * Within poll_ns is the sweet spot and changes nothing; a longer
     * iteration (a slow host) doubles it.
     */
    grows = ctx->stats.poll_grow;
    aio_poll(ctx, false);
    CHECK(ctx->stats.poll_shrink == shrinks);
    if (ctx->stats.poll_grow == grows) {
        CHECK(ctx->poll_ns == 4000);
    } else {
        CHECK(ctx->stats.poll_grow == grows + 1);
        CHECK(ctx->poll_ns == 8000);
    }

    /*
     * A 1 us ceiling: a first step of 4 us is clamped to it, or, when the
     * iteration itself took longer than the ceiling, polling is dropped
     * (poll_shrink 0 means "to zero").
     */
    aio_context_set_poll_params(ctx, 1000, 0, 0, NULL);
    CHECK(ctx->poll_ns == 0);
    grows = ctx->stats.poll_grow;
    shrinks = ctx->stats.poll_shrink;
    aio_poll(ctx, false);
    if (ctx->stats.poll_shrink == shrinks) {
        CHECK(ctx->stats.poll_grow == grows + 1);
        CHECK(ctx->poll_ns == 1000);
    } else {
        CHECK(ctx->stats.poll_shrink == shrinks + 1);
        CHECK(ctx->stats.poll_grow == grows);
        CHECK(ctx->poll_ns == 0);
    }
    aio_context_unref(ctx);
    passed++;
}

/*
 * cevent: a long spin is cut into AIO_SPIN_SLICE_NS slices with the
 * embedder's hooks run between them; an end hook returning true ends the
 * spin, and the wait after it does not block.
 */
typedef struct {
    int begins;
    int ends;
    int stop_after;         /* the end hook returns true at this call */
} SpinHookData;

static void *spin_hook_begin(AioContext *ctx G_GNUC_UNUSED,
                             AioBlockingKind kind, void *opaque)
{
    SpinHookData *d = opaque;

    if (kind == AIO_BLOCKING_SPIN) {
        d->begins++;
    }
    return d;
}

static bool spin_hook_end(AioContext *ctx G_GNUC_UNUSED,
                          AioBlockingKind kind, void *token, void *opaque)
{
    SpinHookData *d = opaque;

    assert(token == d);
    if (kind != AIO_BLOCKING_SPIN) {
        return false;
    }
    return ++d->ends == d->stop_after;
}

static bool never_ready(void *opaque G_GNUC_UNUSED)
{
    return false;
}

static int spin_notifier_reads;

static void spin_notifier_cb(EventNotifier *e)
{
    event_notifier_test_and_clear(e);
    spin_notifier_reads++;
}

static void test_spin_slices(void)
{
    AioContext *ctx = new_ctx();
    SpinHookData d = { .stop_after = 3 };
    EventNotifier e;
    int64_t t0, spun;
    uint64_t polling;
    bool progress;
    int i;

    CHECK(event_notifier_init(&e, false) == 0);
    aio_set_event_notifier(ctx, &e, spin_notifier_cb, never_ready,
                           spin_notifier_cb);
    /*
     * A dispatch puts the handler on the poll list.  Every handler can
     * poll, so a non-blocking aio_poll() skips the fd monitor: block.
     */
    spin_notifier_reads = 0;
    event_notifier_set(&e);
    for (i = 0; i < 10 && spin_notifier_reads == 0; i++) {
        aio_poll(ctx, true);
    }
    CHECK(spin_notifier_reads == 1);
    for (i = 0; i < 10 && aio_poll(ctx, false); i++) {
        /* drain */
    }
    CHECK(!QLIST_EMPTY(&ctx->poll_aio_handlers));
    aio_context_set_poll_params(ctx, 10 * 1000 * (int64_t)SCALE_MS, 0, 0,
                                NULL);
    aio_poll(ctx, false);                   /* accept the notification */
    ctx->poll_ns = ctx->poll_max_ns;        /* a 10 s spin */
    aio_context_set_blocking_hooks(ctx, spin_hook_begin, spin_hook_end, &d);

    polling = ctx->stats.polling_ns;
    t0 = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    progress = aio_poll(ctx, true);         /* would block for ever */
    spun = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - t0;

    CHECK(!progress);
    CHECK(d.ends == 3);
    CHECK(d.begins == 3);
    /* two whole slices, then the third hook call ended it */
    CHECK(ctx->stats.polling_ns - polling >= 2 * AIO_SPIN_SLICE_NS);
    CHECK(spun < 1000 * (int64_t)SCALE_MS);

    aio_context_set_blocking_hooks(ctx, NULL, NULL, NULL);
    aio_set_event_notifier(ctx, &e, NULL, NULL, NULL);
    event_notifier_cleanup(&e);
    aio_context_unref(ctx);
    passed++;
}

/* ---- multithreaded (test-aio-multithread.c) -------------------------- */

#define NUM_CONTEXTS 5

typedef struct {
    AioContext *ctx;
    pthread_t thread;
    bool stopping;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool ready;
} EventLoopThread;

static EventLoopThread threads[NUM_CONTEXTS];

static void *event_loop_thread(void *opaque)
{
    EventLoopThread *t = opaque;

    t->ctx = new_ctx();
    pthread_mutex_lock(&t->mutex);
    t->ready = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mutex);
    while (!qatomic_read(&t->stopping)) {
        aio_poll(t->ctx, true);
    }
    /* Run what was scheduled before the stop */
    while (aio_poll(t->ctx, false)) {
        /* drain */
    }
    return NULL;
}

static void stop_cb(void *opaque)
{
    EventLoopThread *t = opaque;

    qatomic_set(&t->stopping, true);
}

static void start_threads(void)
{
    int i;

    for (i = 0; i < NUM_CONTEXTS; i++) {
        EventLoopThread *t = &threads[i];

        memset(t, 0, sizeof(*t));
        pthread_mutex_init(&t->mutex, NULL);
        pthread_cond_init(&t->cond, NULL);
        pthread_create(&t->thread, NULL, event_loop_thread, t);
        pthread_mutex_lock(&t->mutex);
        while (!t->ready) {
            pthread_cond_wait(&t->cond, &t->mutex);
        }
        pthread_mutex_unlock(&t->mutex);
    }
}

static void join_threads(void)
{
    int i;

    /*
     * Stop and join every thread before freeing any context: a callback
     * on one thread may still be inside aio_notify() of another context.
     */
    for (i = 0; i < NUM_CONTEXTS; i++) {
        aio_bh_schedule_oneshot(threads[i].ctx, stop_cb, &threads[i]);
    }
    for (i = 0; i < NUM_CONTEXTS; i++) {
        pthread_join(threads[i].thread, NULL);
    }
    for (i = 0; i < NUM_CONTEXTS; i++) {
        EventLoopThread *t = &threads[i];

        aio_context_unref(t->ctx);
        pthread_mutex_destroy(&t->mutex);
        pthread_cond_destroy(&t->cond);
    }
}

/* A synchronous cross-thread call, as ctx_run() upstream */
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool done;
    int value;
} SyncCall;

static void sync_call_cb(void *opaque)
{
    SyncCall *call = opaque;

    pthread_mutex_lock(&call->mutex);
    call->value++;
    call->done = true;
    pthread_cond_signal(&call->cond);
    pthread_mutex_unlock(&call->mutex);
}

static void test_lifecycle(void)
{
    int i;

    start_threads();
    for (i = 0; i < NUM_CONTEXTS; i++) {
        SyncCall call = { .done = false };

        pthread_mutex_init(&call.mutex, NULL);
        pthread_cond_init(&call.cond, NULL);
        aio_bh_schedule_oneshot(threads[i].ctx, sync_call_cb, &call);
        pthread_mutex_lock(&call.mutex);
        while (!call.done) {
            pthread_cond_wait(&call.cond, &call.mutex);
        }
        pthread_mutex_unlock(&call.mutex);
        CHECK(call.value == 1);
        pthread_mutex_destroy(&call.mutex);
        pthread_cond_destroy(&call.cond);
    }
    join_threads();
    passed++;
}

/*
 * Tokens hopping between event-loop threads through one-shot BHs: every
 * hop is a cross-thread wake-up racing with aio_poll() going to sleep.
 * A lost wake-up hangs the test (the Makefile runs it under a timeout).
 */
#define HOPS_PER_TOKEN 20000
#define NUM_TOKENS 4

static unsigned hops_done;

typedef struct {
    int hops;
    unsigned seed;
} Token;

static void token_cb(void *opaque)
{
    Token *tok = opaque;
    int next;

    qatomic_inc(&hops_done);
    if (++tok->hops >= HOPS_PER_TOKEN) {
        return;
    }
    tok->seed = tok->seed * 1103515245 + 12345;
    next = (tok->seed >> 16) % NUM_CONTEXTS;
    aio_bh_schedule_oneshot(threads[next].ctx, token_cb, tok);
}

static void test_multi_schedule(void)
{
    Token tokens[NUM_TOKENS];
    int i;

    hops_done = 0;
    start_threads();
    for (i = 0; i < NUM_TOKENS; i++) {
        tokens[i] = (Token){ .hops = 0, .seed = (unsigned)i * 7919 + 1 };
        aio_bh_schedule_oneshot(threads[i % NUM_CONTEXTS].ctx, token_cb,
                                &tokens[i]);
    }
    while (qatomic_read(&hops_done) < NUM_TOKENS * HOPS_PER_TOKEN) {
        usleep(1000);
    }
    join_threads();
    for (i = 0; i < NUM_TOKENS; i++) {
        CHECK(tokens[i].hops == HOPS_PER_TOKEN);
    }
    passed++;
}

/*
 * aio_notify() storms from several threads while the loop alternates
 * between blocking and non-blocking polls, with busy polling on: each
 * round waits for one BH that another thread schedules, so a lost wake-up
 * would hang.
 */
#define STORM_ROUNDS 20000

static AioContext *storm_ctx;
static unsigned storm_seen;
static unsigned storm_sent;
static bool storm_stop;

static void storm_cb(void *opaque)
{
    (void)opaque;
    qatomic_inc(&storm_seen);
}

static void *storm_thread(void *opaque)
{
    (void)opaque;
    while (!qatomic_read(&storm_stop)) {
        /*
         * One value of storm_sent, read once, decides: another producer
         * may send between two reads, and a check made on the first read
         * would then let this one send a BH too many.
         */
        unsigned s = qatomic_read(&storm_sent);

        if (s == qatomic_read(&storm_seen)) {
            if (s >= STORM_ROUNDS) {
                break;
            }
            /* one producer wins the right to send the next BH */
            if (qatomic_cmpxchg(&storm_sent, s, s + 1) == s) {
                aio_bh_schedule_oneshot(storm_ctx, storm_cb, NULL);
            }
        } else {
            aio_notify(storm_ctx);
        }
    }
    return NULL;
}

static void test_notify_storm(void)
{
    pthread_t t[3];
    int i;
    unsigned iter = 0;

    storm_ctx = new_ctx();
    storm_seen = storm_sent = 0;
    storm_stop = false;
    aio_context_set_poll_params(storm_ctx, 32768, 0, 0, NULL);
    for (i = 0; i < 3; i++) {
        pthread_create(&t[i], NULL, storm_thread, NULL);
    }
    while (qatomic_read(&storm_seen) < STORM_ROUNDS) {
        aio_poll(storm_ctx, (iter++ & 1) == 0);
    }
    qatomic_set(&storm_stop, true);
    for (i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
    }
    while (aio_poll(storm_ctx, false)) {
        /* drain */
    }
    CHECK(storm_seen == STORM_ROUNDS);
    aio_context_unref(storm_ctx);
    passed++;
}

int main(void)
{
    test_bh_schedule10();
    test_bh_cancel_delete();
    test_bh_delete_from_cb_many();
    test_bh_lifo();
    test_bh_release();
    test_wait_event_notifier();
    test_flush_event_notifier();
    test_many_notifiers();
    test_unref_releases_handlers();
    test_timer_schedule_virtual();
    test_poll_ns_grows();
    test_spin_slices();
    test_lifecycle();
    test_multi_schedule();
    test_notify_storm();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
