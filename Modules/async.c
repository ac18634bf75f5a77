/*
 * Bottom halves, aio_notify() and the life of an AioContext.
 *
 * Port of QEMU util/async.c at revision
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07.
 *
 * Upstream licence: Copyright (c) 2003-2008 Fabrice Bellard and
 * Copyright (c) 2009-2017 QEMU contributors; an MIT-style permission notice
 * (use, copy, modify, merge, publish, distribute, sublicense and/or sell
 * copies, provided the copyright and permission notice are kept; no
 * warranty of any kind).
 *
 * This port is written in our own words for cevent and is distributed under
 * the GNU GPL, version 2 or (at your option) any later version.
 *
 * Divergences: see Modules/PORTING.md (each is marked "cevent:" below).
 * Dropped: coroutine scheduling (aio_co_*), the thread pool, linux-aio and
 * io_uring block engines, the GSource function table (replaced by the
 * fd-based embedding in aio-posix.c), the BH re-entrancy guard, record/replay
 * and icount hooks.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/aio.h"
#include "qemu/atomic.h"
#include "qemu/rcu_queue.h"
#include "aio-posix.h"

#include <sys/eventfd.h>

/***********************************************************/
/* bottom halves (can be seen as timers which expire ASAP) */

/* QEMUBH::flags values */
enum {
    /* Already enqueued and waiting for aio_bh_poll() */
    BH_PENDING   = (1 << 0),

    /* Invoke the callback */
    BH_SCHEDULED = (1 << 1),

    /* Delete without invoking callback */
    BH_DELETED   = (1 << 2),

    /* Delete after invoking callback */
    BH_ONESHOT   = (1 << 3),

    /* Schedule periodically when the event loop is idle */
    BH_IDLE      = (1 << 4),
};

struct QEMUBH {
    AioContext *ctx;
    const char *name;
    QEMUBHFunc *cb;
    void *opaque;
    QSLIST_ENTRY(QEMUBH) next;
    unsigned flags;
    /* cevent: called with opaque when the BH is freed, if not NULL */
    QEMUBHFunc *release;
};

/* cevent: relaxed counters, safe from any thread */
#define aio_stats_inc(field) \
    ((void)__atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED))

/* Called concurrently from any thread */
static void aio_bh_enqueue(QEMUBH *bh, unsigned new_flags)
{
    AioContext *ctx = bh->ctx;
    unsigned old_flags;

    /*
     * Set BH_PENDING before the insertion starts.  Synchronizes with the
     * qatomic_fetch_and() in aio_bh_dequeue().
     */
    old_flags = qatomic_fetch_or(&bh->flags, BH_PENDING | new_flags);

    if (!(old_flags & BH_PENDING)) {
        /*
         * From here aio_bh_poll() can see the BH.  The insertion pairs with
         * QSLIST_MOVE_ATOMIC in aio_bh_poll(), so that (1) what the caller
         * wrote for the callback is visible to it once aio_bh_dequeue()
         * returns the BH, and (2) ctx was loaded above, before the BH could
         * run and be freed.
         */
        QSLIST_INSERT_HEAD_ATOMIC(&ctx->bh_list, bh, next);
    }

    aio_notify(ctx);
}

/* Only called from aio_bh_poll() and aio_ctx_finalize() */
static QEMUBH *aio_bh_dequeue(BHList *head, unsigned *flags)
{
    QEMUBH *bh = QSLIST_FIRST_RCU(head);

    if (!bh) {
        return NULL;
    }

    QSLIST_REMOVE_HEAD(head, next);

    /*
     * Clear BH_PENDING only after the removal is complete, so that a
     * concurrent aio_bh_enqueue() re-inserts the BH afterwards.  Pairs with
     * the qatomic_fetch_or() in aio_bh_enqueue().
     */
    *flags = qatomic_fetch_and(&bh->flags,
                              ~(BH_PENDING | BH_SCHEDULED | BH_IDLE));
    return bh;
}

/* cevent: free a BH record and tell its owner */
static void aio_bh_free(QEMUBH *bh)
{
    if (bh->release) {
        bh->release(bh->opaque);
    }
    g_free(bh);
}

void aio_bh_schedule_oneshot_full(AioContext *ctx, QEMUBHFunc *cb,
                                  void *opaque, const char *name,
                                  QEMUBHFunc *release)
{
    QEMUBH *bh;
    bh = g_new(QEMUBH, 1);
    *bh = (QEMUBH){
        .ctx = ctx,
        .cb = cb,
        .opaque = opaque,
        .name = name,
        .release = release, /* cevent */
    };
    aio_bh_enqueue(bh, BH_SCHEDULED | BH_ONESHOT);
}

QEMUBH *aio_bh_new_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                        const char *name, QEMUBHFunc *release)
{
    QEMUBH *bh;
    bh = g_new(QEMUBH, 1);
    *bh = (QEMUBH){
        .ctx = ctx,
        .cb = cb,
        .opaque = opaque,
        .name = name,
        .release = release, /* cevent */
    };
    return bh;
}

void aio_bh_call(QEMUBH *bh)
{
    /* cevent: no re-entrancy guard (a device-model feature) */
    bh->cb(bh->opaque);
}

/* Multiple occurrences of aio_bh_poll cannot be called concurrently. */
int aio_bh_poll(AioContext *ctx)
{
    BHListSlice slice;
    BHListSlice *s;
    int ret = 0;

    /* Pairs with QSLIST_INSERT_HEAD_ATOMIC in aio_bh_enqueue().  */
    QSLIST_MOVE_ATOMIC(&slice.bh_list, &ctx->bh_list);

    /*
     * The slice lives on this stack frame while it is on the context's
     * slice list; the loop below empties the list before returning.
     */
#pragma GCC diagnostic push
#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
    QSIMPLEQ_INSERT_TAIL(&ctx->bh_slice_list, &slice, next);
#pragma GCC diagnostic pop

    while ((s = QSIMPLEQ_FIRST(&ctx->bh_slice_list))) {
        QEMUBH *bh;
        unsigned flags;

        bh = aio_bh_dequeue(&s->bh_list, &flags);
        if (!bh) {
            QSIMPLEQ_REMOVE_HEAD(&ctx->bh_slice_list, next);
            continue;
        }

        if ((flags & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED) {
            /* An idle BH running is not progress */
            if (!(flags & BH_IDLE)) {
                ret = 1;
            }
            ctx->stats.bh_dispatches++; /* cevent */
            aio_bh_call(bh);
        }
        if (flags & (BH_DELETED | BH_ONESHOT)) {
            aio_bh_free(bh); /* cevent: releases the opaque too */
        }
    }

    return ret;
}

void qemu_bh_schedule_idle(QEMUBH *bh)
{
    aio_bh_enqueue(bh, BH_SCHEDULED | BH_IDLE);
}

void qemu_bh_schedule(QEMUBH *bh)
{
    aio_bh_enqueue(bh, BH_SCHEDULED);
}

/* This func is async.
 */
void qemu_bh_cancel(QEMUBH *bh)
{
    qatomic_and(&bh->flags, ~BH_SCHEDULED);
}

/* This func is async.The bottom half will do the delete action at the finial
 * end.
 */
void qemu_bh_delete(QEMUBH *bh)
{
    aio_bh_enqueue(bh, BH_DELETED);
}

/* cevent: see block/aio.h */
bool qemu_bh_is_scheduled(QEMUBH *bh)
{
    unsigned flags = qatomic_read(&bh->flags);

    return (flags & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED;
}

/* cevent: see block/aio.h */
void qemu_bh_orphan(QEMUBH *bh)
{
    unsigned flags = qatomic_read(&bh->flags);

    /*
     * SCHEDULED implies PENDING (only the loop's dequeue clears PENDING, and
     * it clears SCHEDULED with it), so a successful exchange leaves the BH
     * queued with ONESHOT: it runs once more and is then freed.
     */
    while ((flags & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED) {
        unsigned old = qatomic_cmpxchg(&bh->flags, flags, flags | BH_ONESHOT);
        if (old == flags) {
            return;
        }
        flags = old;
    }
    qemu_bh_delete(bh);
}

static int64_t aio_compute_bh_timeout(BHList *head, int timeout)
{
    QEMUBH *bh;

    QSLIST_FOREACH_RCU(bh, head, next) {
        /* cevent: flags are read atomically (other threads write them) */
        unsigned flags = qatomic_read(&bh->flags);

        if ((flags & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED) {
            if (flags & BH_IDLE) {
                /* an idle BH still runs at least every 10 ms */
                timeout = 10000000;
            } else {
                /* any other scheduled BH runs right away */
                return 0;
            }
        }
    }

    return timeout;
}

int64_t
aio_compute_timeout(AioContext *ctx)
{
    BHListSlice *s;
    int64_t deadline;
    int timeout = -1;

    timeout = aio_compute_bh_timeout(&ctx->bh_list, timeout);
    if (timeout == 0) {
        return 0;
    }

    QSIMPLEQ_FOREACH(s, &ctx->bh_slice_list, next) {
        timeout = aio_compute_bh_timeout(&s->bh_list, timeout);
        if (timeout == 0) {
            return 0;
        }
    }

    deadline = timerlistgroup_deadline_ns(&ctx->tlg);
    if (deadline == 0) {
        return 0;
    } else {
        return qemu_soonest_timeout(timeout, deadline);
    }
}

/*
 * cevent: upstream's GSource callbacks, taking the AioContext directly.
 * aio_get_g_source_fd() (aio-posix.c) gives the descriptor to wait on.
 */
bool
aio_ctx_prepare(AioContext *ctx, int *timeout)
{
    /*
     * cevent: the GLib protocol raises notify_me itself, just below.  A
     * notification written only because an outer loop of the plain
     * protocol might have been waiting (aio_gsource_arm) is one upstream
     * never writes: read it back.  Its work is seen below.
     */
    if (aio_gsource_disarm(ctx)) {
        event_notifier_test_and_clear(&ctx->notifier);
    }

    qatomic_set(&ctx->notify_me, qatomic_read(&ctx->notify_me) | 1);

    /*
     * notify_me must be visible before the timeout is computed (which
     * reads BH flags and so on).  Pairs with smp_mb in aio_notify().
     */
    smp_mb();

    /* No timeout was supplied before this one */
    *timeout = qemu_timeout_ns_to_ms(aio_compute_timeout(ctx));

    if (aio_prepare(ctx)) {
        *timeout = 0;
    }

    return *timeout == 0;
}

static bool aio_bh_list_has_scheduled(BHList *head)
{
    QEMUBH *bh;

    QSLIST_FOREACH_RCU(bh, head, next) {
        unsigned flags = qatomic_read(&bh->flags);

        if ((flags & (BH_SCHEDULED | BH_DELETED)) == BH_SCHEDULED) {
            return true;
        }
    }
    return false;
}

bool
aio_ctx_check(AioContext *ctx)
{
    BHListSlice *s;

    /* The timeout is computed; only now may the flag go down */
    qatomic_store_release(&ctx->notify_me, qatomic_read(&ctx->notify_me) & ~1);
    aio_notify_accept(ctx);

    /* cevent: GLib fills in the handlers' revents upstream; we do it */
    aio_gsource_check_fds(ctx);

    if (aio_bh_list_has_scheduled(&ctx->bh_list)) {
        return true;
    }

    QSIMPLEQ_FOREACH(s, &ctx->bh_slice_list, next) {
        if (aio_bh_list_has_scheduled(&s->bh_list)) {
            return true;
        }
    }
    return aio_pending(ctx) || (timerlistgroup_deadline_ns(&ctx->tlg) == 0);
}

bool
aio_ctx_dispatch(AioContext *ctx)
{
    aio_dispatch(ctx);
    return true;
}

static void
aio_ctx_finalize(AioContext *ctx)
{
    QEMUBH *bh;
    unsigned flags;

    assert(QSIMPLEQ_EMPTY(&ctx->bh_slice_list));

    while ((bh = aio_bh_dequeue(&ctx->bh_list, &flags))) {
        /*
         * cevent: upstream aborts when a BH still queued here was not
         * deleted, because something still expected it to run.  An
         * embedder cannot always guarantee that (a Python program that
         * forgets to close), so the BH is dropped without running and its
         * owner is told through the release hook.
         */
        aio_bh_free(bh);
    }

    aio_set_event_notifier(ctx, &ctx->notifier, NULL, NULL, NULL);
    event_notifier_cleanup(&ctx->notifier);
    timerlistgroup_deinit(&ctx->tlg);
    aio_context_destroy(ctx);
    /* cevent: destroyed last, since aio_context_destroy() takes the lock */
    qemu_lockcnt_destroy(&ctx->list_lock);
    g_free(ctx);
}

/*
 * cevent: aio_get_g_source() is replaced by aio_get_g_source_fd() in
 * aio-posix.c.
 */

void aio_notify(AioContext *ctx)
{
    /*
     * Publish e.g. ctx->bh_list before ctx->notified.  Pairs with smp_mb()
     * in aio_notify_accept().
     */
    smp_wmb();
    qatomic_set(&ctx->notified, true);

    /*
     * ctx->notified (and ctx->bh_list) must be visible before
     * ctx->notify_me is read.  Pairs with smp_mb() in aio_ctx_prepare or
     * aio_poll.
     */
    smp_mb();
    if (qatomic_read(&ctx->notify_me)) {
        event_notifier_set(&ctx->notifier);
        aio_stats_inc(ctx->stats.notify_syscalls); /* cevent */
    } else {
        aio_stats_inc(ctx->stats.notify_skipped); /* cevent */
    }
}

void aio_notify_accept(AioContext *ctx)
{
    qatomic_set(&ctx->notified, false);

    /*
     * Clearing ctx->notified (and reading it in aio_context_notifier_poll)
     * must happen before later reads such as bh->flags.  Pairs with
     * smp_wmb() in aio_notify.
     */
    smp_mb();
}

static void aio_timerlist_notify(void *opaque, QEMUClockType type G_GNUC_UNUSED)
{
    aio_notify(opaque);
}

static void aio_context_notifier_cb(EventNotifier *e)
{
    AioContext *ctx = container_of(e, AioContext, notifier);

    event_notifier_test_and_clear(&ctx->notifier);
}

/* Returns true if aio_notify() was called (e.g. a BH was scheduled) */
static bool aio_context_notifier_poll(void *opaque)
{
    EventNotifier *e = opaque;
    AioContext *ctx = container_of(e, AioContext, notifier);

    /*
     * A relaxed read suffices: this only ends the polling loop, and
     * aio_notify_accept() orders what comes after.
     */
    return qatomic_read(&ctx->notified);
}

static void aio_context_notifier_poll_ready(EventNotifier *e G_GNUC_UNUSED)
{
    /* Nothing to do: the point was only to wake aio_poll() */
}

AioContext *aio_context_new(Error **errp)
{
    return aio_context_new_full(AIO_FDMON_AUTO, errp);
}

/* cevent: aio_context_new() with a choice of fd monitor */
AioContext *aio_context_new_full(AioFdmonKind kind, Error **errp)
{
    int ret;
    AioContext *ctx;

    /* cevent: plain allocation, zeroed as g_source_new() does */
    ctx = g_new0(AioContext, 1);
    ctx->refcnt = 1;
    ctx->fdmon_kind = kind;
    ctx->gsource_fd = -1;
    QSLIST_INIT(&ctx->bh_list);
    QSIMPLEQ_INIT(&ctx->bh_slice_list);
    qemu_lockcnt_init(&ctx->list_lock); /* cevent: setup may take it */
    aio_context_setup(ctx);

    /* cevent: a monitor that was asked for by name must be there */
    if (kind == AIO_FDMON_IO_URING &&
        strcmp(aio_context_fdmon_name(ctx), "io_uring") != 0) {
        if (ctx->fdmon_io_uring_errno || ctx->fdmon_io_uring_error[0]) {
            error_setg_errno(errp, ctx->fdmon_io_uring_errno,
                             "io_uring unavailable (%s)",
                             ctx->fdmon_io_uring_error);
        } else {
            error_setg_errno(errp, ENOSYS,
                             "io_uring unavailable (not built with liburing)");
        }
        goto fail;
    }
    if (kind == AIO_FDMON_EPOLL && ctx->epollfd < 0) {
        error_setg_errno(errp, errno ? errno : ENOSYS,
                         "epoll unavailable (epoll_create1)");
        goto fail;
    }

    ret = event_notifier_init(&ctx->notifier, false);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to initialize event notifier");
        goto fail;
    }

    aio_set_event_notifier(ctx, &ctx->notifier,
                           aio_context_notifier_cb,
                           aio_context_notifier_poll,
                           aio_context_notifier_poll_ready);
    timerlistgroup_init(&ctx->tlg, aio_timerlist_notify, ctx);

    ctx->poll_ns = 0;
    ctx->poll_max_ns = 0;
    ctx->poll_grow = 0;
    ctx->poll_shrink = 0;

    ctx->aio_max_batch = 0;

    return ctx;
fail:
    /* cevent: upstream leaks part of the context here; tear it down */
    aio_context_destroy(ctx);
    qemu_lockcnt_destroy(&ctx->list_lock);
    g_free(ctx);
    return NULL;
}

void aio_context_ref(AioContext *ctx)
{
    /* cevent: a plain reference count replaces the GSource's */
    qatomic_inc(&ctx->refcnt);
}

void aio_context_unref(AioContext *ctx)
{
    if (qatomic_fetch_dec(&ctx->refcnt) == 1) {
        aio_ctx_finalize(ctx);
    }
}

/*
 * cevent: make @ctx private to the child, right after fork(), before any
 * other code of the child runs (no locks can be taken: a thread that held
 * one is gone).  The kernel objects that the context shares with the
 * parent (the notifier's eventfd, the epoll sets, the io_uring ring) must
 * never be written, changed or submitted to by the child:
 * - the notifier's fds are replaced (dup3) by a private eventfd, so that
 *   aio_notify() in the child cannot wake the parent's loop;
 * - the embedding fd and the epoll fd are closed, and the context falls
 *   back to poll(2), so no EPOLL_CTL_DEL of the child reaches the parent;
 * - the io_uring ring is exited in the child (unmapped and closed, nothing
 *   submitted), unless the forking thread is itself inside aio_poll()
 *   (@polling_here), which will finish its iteration normally first.
 * @poller_gone: a thread that no longer exists was inside aio_poll() (or
 * a GSource step): its visits are forgotten (list_lock's count and lock
 * are reset, notify_me is dropped, and the BH slices of its unfinished
 * aio_bh_poll() are dropped, with the BHs left in them), so that the
 * context can still be destroyed.
 */
void aio_context_fork_child(AioContext *ctx, bool polling_here,
                            bool poller_gone)
{
    EventNotifier *e = &ctx->notifier;
    int fd;

    if (e->initialized) {
        fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
            fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        }
        if (fd >= 0) {
            (void)dup3(fd, e->rfd, O_CLOEXEC);
            if (e->wfd != e->rfd) {
                (void)dup3(fd, e->wfd, O_CLOEXEC);
            }
            close(fd);
        }
    }

    /* The embedding ends: nobody in the child waits on the fd */
    aio_gsource_disarm(ctx);
    if (ctx->gsource_fd >= 0) {
        close(ctx->gsource_fd);
        ctx->gsource_fd = -1;
    }

    /* Only this thread runs: list_lock need not (and cannot) be taken */
    if (ctx->epollfd >= 0) {
        fdmon_epoll_disable(ctx);
    }

    if (poller_gone) {
        QSIMPLEQ_INIT(&ctx->bh_slice_list);
        qemu_lockcnt_init(&ctx->list_lock);
        ctx->notify_me = 0;
        ctx->gsource_poll_depth = 0;
    }
    if (!polling_here) {
        fdmon_io_uring_destroy(ctx);
    }
}
