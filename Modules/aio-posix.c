/*
 * The POSIX AioContext: fd handlers, userspace polling and aio_poll().
 *
 * Port of QEMU util/aio-posix.c at revision
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07 (the seed; the same file as
 * xref revision 73b49878), with aio_add_sqe() and the fdmon_ops->dispatch()
 * calls of QEMU 10.2 (Modules/PORTING.md).
 *
 * Upstream licence: originally Copyright IBM, Corp. 2008 (Anthony Liguori),
 * GNU GPL version 2; contributions after 2012-01-13 are GNU GPL version 2 or
 * (at your option) any later version.
 *
 * This port is written in our own words for cevent and is distributed under
 * the GNU GPL, version 2 or (at your option) any later version.
 *
 * Divergences: see Modules/PORTING.md (each is marked "cevent:" below).
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/rcu_queue.h"
#include "qemu/timer.h"
#include "aio-posix.h"

#include <sys/epoll.h>

/* Drop a handler from userspace polling once it has been idle this long */
#define POLL_IDLE_INTERVAL_NS (7 * NANOSECONDS_PER_SECOND)

/* cevent: forward declarations of the fd-embedding helpers (end of file) */
static void aio_gsource_add_poll(AioContext *ctx, AioHandler *node);
static void aio_gsource_remove_poll(AioContext *ctx, AioHandler *node);

bool aio_poll_disabled(AioContext *ctx)
{
    return qatomic_read(&ctx->poll_disable_cnt);
}

void aio_add_ready_handler(AioHandlerList *ready_list,
                           AioHandler *node,
                           int revents)
{
    /* A nested aio_poll() may take a node from its parent's ready list */
    QLIST_SAFE_REMOVE(node, node_ready);
    node->pfd.revents = revents;
    QLIST_INSERT_HEAD(ready_list, node, node_ready);
}

static void aio_add_poll_ready_handler(AioHandlerList *ready_list,
                                       AioHandler *node)
{
    /* Same stealing rule as aio_add_ready_handler() */
    QLIST_SAFE_REMOVE(node, node_ready);
    node->poll_ready = true;
    QLIST_INSERT_HEAD(ready_list, node, node_ready);
}

static AioHandler *find_aio_handler(AioContext *ctx, int fd)
{
    AioHandler *node;

    QLIST_FOREACH(node, &ctx->aio_handlers, node) {
        if (node->pfd.fd == fd) {
            if (!QLIST_IS_INSERTED(node, node_deleted)) {
                return node;
            }
        }
    }

    return NULL;
}

static bool aio_remove_fd_handler(AioContext *ctx, AioHandler *node)
{
    /*
     * cevent: upstream unregisters the pfd from the GSource here unless the
     * GSource is being destroyed; cevent mirrors that on its embedding fd.
     */
    if (!ctx->gsource_destroyed) {
        aio_gsource_remove_poll(ctx, node);
    }

    node->pfd.revents = 0;
    node->poll_ready = false;

    /* The fd monitor already owns the disposal of this node */
    if (QLIST_IS_INSERTED(node, node_deleted)) {
        return false;
    }

    /* Someone is walking the lists: only mark the node deleted for now */
    if (qemu_lockcnt_count(&ctx->list_lock)) {
        QLIST_INSERT_HEAD_RCU(&ctx->deleted_aio_handlers, node, node_deleted);
        return false;
    }
    /*
     * Nobody is walking and we hold the lock, so nobody can start: unlink
     * the node for real.  Marking it would not do, because deleted nodes
     * are only reclaimed by the end of a visit.
     */
    QLIST_SAFE_REMOVE(node, node_poll);
    QLIST_REMOVE(node, node);
    return true;
}

/* cevent: free a node and tell its owner; never with list_lock held */
void aio_free_handler(AioHandler *node)
{
    if (node->opaque_release) {
        node->opaque_release(node->opaque);
    }
    g_free(node);
}

void aio_set_fd_handler_full(AioContext *ctx,
                             int fd,
                             IOHandler *io_read,
                             IOHandler *io_write,
                             AioPollFn *io_poll,
                             IOHandler *io_poll_ready,
                             void *opaque,
                             IOHandler *opaque_release)
{
    AioHandler *node;
    AioHandler *new_node = NULL;
    bool is_new = false;
    bool deleted = false;
    int poll_disable_change;

    if (io_poll && !io_poll_ready) {
        io_poll = NULL; /* nothing would run when polling succeeds */
    }

    qemu_lockcnt_lock(&ctx->list_lock);

    node = find_aio_handler(ctx, fd);

    /* Is this a removal? */
    if (!io_read && !io_write && !io_poll) {
        if (node == NULL) {
            qemu_lockcnt_unlock(&ctx->list_lock);
            /*
             * cevent: nobody will ever own @opaque now; give it back so the
             * embedder does not leak what it attached.
             */
            if (opaque_release) {
                opaque_release(opaque);
            }
            return;
        }
        /* Zero the events so that epoll forgets the fd */
        node->pfd.events = 0;

        poll_disable_change = -!node->io_poll;
    } else {
        poll_disable_change = !io_poll - (node && !node->io_poll);
        if (node == NULL) {
            is_new = true;
        }
        /* Every registration gets a fresh node */
        new_node = g_new0(AioHandler, 1);

        /* Fill in the new callbacks */
        new_node->io_read = io_read;
        new_node->io_write = io_write;
        new_node->io_poll = io_poll;
        new_node->io_poll_ready = io_poll_ready;
        new_node->opaque = opaque;
        new_node->opaque_release = opaque_release; /* cevent */

        if (is_new) {
            new_node->pfd.fd = fd;
        } else {
            new_node->pfd = node->pfd;
        }

        new_node->pfd.events = (io_read ? G_IO_IN | G_IO_HUP | G_IO_ERR : 0);
        new_node->pfd.events |= (io_write ? G_IO_OUT | G_IO_ERR : 0);

        /* cevent: stands for g_source_add_poll() (fd-based embedding) */
        aio_gsource_add_poll(ctx, new_node);

        QLIST_INSERT_HEAD_RCU(&ctx->aio_handlers, new_node, node);
    }

    /*
     * The counter only decides whether polling is worth trying, so it
     * needs no ordering against the other updates: a little useless
     * polling until the aio_notify() below is harmless.
     */
    qatomic_set(&ctx->poll_disable_cnt,
               qatomic_read(&ctx->poll_disable_cnt) + poll_disable_change);

    ctx->fdmon_ops->update(ctx, node, new_node);
    if (node) {
        deleted = aio_remove_fd_handler(ctx, node);
    }
    qemu_lockcnt_unlock(&ctx->list_lock);
    aio_notify(ctx);

    if (deleted) {
        aio_free_handler(node); /* cevent: releases the opaque too */
    }
}

void aio_set_fd_handler(AioContext *ctx,
                        int fd,
                        IOHandler *io_read,
                        IOHandler *io_write,
                        AioPollFn *io_poll,
                        IOHandler *io_poll_ready,
                        void *opaque)
{
    /* cevent: upstream's body lives in aio_set_fd_handler_full() */
    aio_set_fd_handler_full(ctx, fd, io_read, io_write, io_poll,
                            io_poll_ready, opaque, NULL);
}

static void aio_set_fd_poll(AioContext *ctx, int fd,
                            IOHandler *io_poll_begin,
                            IOHandler *io_poll_end)
{
    AioHandler *node = find_aio_handler(ctx, fd);

    if (!node) {
        return;
    }

    node->io_poll_begin = io_poll_begin;
    node->io_poll_end = io_poll_end;
}

void aio_set_event_notifier(AioContext *ctx,
                            EventNotifier *notifier,
                            EventNotifierHandler *io_read,
                            AioPollFn *io_poll,
                            EventNotifierHandler *io_poll_ready)
{
    aio_set_fd_handler(ctx, event_notifier_get_fd(notifier),
                       (IOHandler *)io_read, NULL, io_poll,
                       (IOHandler *)io_poll_ready, notifier);
}

void aio_set_event_notifier_poll(AioContext *ctx,
                                 EventNotifier *notifier,
                                 EventNotifierHandler *io_poll_begin,
                                 EventNotifierHandler *io_poll_end)
{
    aio_set_fd_poll(ctx, event_notifier_get_fd(notifier),
                    (IOHandler *)io_poll_begin,
                    (IOHandler *)io_poll_end);
}

static bool poll_set_started(AioContext *ctx, AioHandlerList *ready_list,
                             bool started)
{
    AioHandler *node;
    bool progress = false;

    if (started == ctx->poll_started) {
        return false;
    }

    ctx->poll_started = started;

    qemu_lockcnt_inc(&ctx->list_lock);
    QLIST_FOREACH(node, &ctx->poll_aio_handlers, node_poll) {
        IOHandler *fn;

        if (QLIST_IS_INSERTED(node, node_deleted)) {
            continue;
        }

        if (started) {
            fn = node->io_poll_begin;
        } else {
            fn = node->io_poll_end;
        }

        if (fn) {
            fn(node->opaque);
        }

        /* An event may have slipped in while ->io_poll_end() ran: look */
        if (!started && node->io_poll(node->opaque)) {
            aio_add_poll_ready_handler(ready_list, node);
            progress = true;
        }
    }
    qemu_lockcnt_dec(&ctx->list_lock);

    return progress;
}


bool aio_prepare(AioContext *ctx)
{
    AioHandlerList ready_list = QLIST_HEAD_INITIALIZER(ready_list);
    AioHandler *node;

    /* An outer loop waits on our fds: leave poll mode */
    poll_set_started(ctx, &ready_list, false);

    /*
     * cevent: upstream leaves the nodes linked to this dying list head.
     * Unlink them; their poll_ready flag stays set and aio_dispatch() (or
     * the next aio_poll()) runs their ->io_poll_ready().
     */
    while ((node = QLIST_FIRST(&ready_list))) {
        QLIST_REMOVE(node, node_ready);
    }

    return false;
}

bool aio_pending(AioContext *ctx)
{
    AioHandler *node;
    bool result = false;

    /*
     * aio_set_fd_handler() may run concurrently, so walk with the visit
     * counter held.
     */
    qemu_lockcnt_inc(&ctx->list_lock);

    QLIST_FOREACH_RCU(node, &ctx->aio_handlers, node) {
        int revents;

        /* As upstream, poll_ready is not considered here */
        revents = node->pfd.revents & node->pfd.events;
        if (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR) && node->io_read) {
            result = true;
            break;
        }
        if (revents & (G_IO_OUT | G_IO_ERR) && node->io_write) {
            result = true;
            break;
        }
    }
    qemu_lockcnt_dec(&ctx->list_lock);

    return result;
}

static void aio_free_deleted_handlers(AioContext *ctx)
{
    AioHandler *node;
    AioHandlerList to_free = QLIST_HEAD_INITIALIZER(to_free);
    bool outside_visit = false;

    if (QLIST_EMPTY_RCU(&ctx->deleted_aio_handlers)) {
        return;
    }
    if (qemu_lockcnt_count(&ctx->list_lock) == 0) {
        /*
         * cevent: called outside any visit (aio_context_destroy,
         * aio_context_use_g_source).  dec_if_lock would "succeed" at zero
         * and leave the counter at 1 for good, so take the lock and check
         * that no visit has started instead.
         */
        qemu_lockcnt_lock(&ctx->list_lock);
        if (qemu_lockcnt_count(&ctx->list_lock) != 0) {
            qemu_lockcnt_unlock(&ctx->list_lock);
            return;
        }
        outside_visit = true;
    } else if (!qemu_lockcnt_dec_if_lock(&ctx->list_lock)) {
        return; /* a nested or concurrent visit: the outermost one frees */
    }

    while ((node = QLIST_FIRST_RCU(&ctx->deleted_aio_handlers))) {
        QLIST_REMOVE(node, node);
        QLIST_REMOVE(node, node_deleted);
        QLIST_SAFE_REMOVE(node, node_poll);
        /* cevent: freed below, once list_lock is released */
        QLIST_INSERT_HEAD(&to_free, node, node_deleted);
    }

    if (outside_visit) {
        qemu_lockcnt_unlock(&ctx->list_lock);
    } else {
        qemu_lockcnt_inc_and_unlock(&ctx->list_lock);
    }

    /*
     * cevent: the owner's release hook may run arbitrary code (in Python,
     * a finalizer that registers a handler), so it must not run under the
     * lock.  Upstream frees while still holding it.
     */
    while ((node = QLIST_FIRST(&to_free))) {
        QLIST_REMOVE(node, node_deleted);
        aio_free_handler(node);
    }
}

static bool aio_dispatch_handler(AioContext *ctx, AioHandler *node)
{
    bool progress = false;
    bool poll_ready;
    int revents;

    revents = node->pfd.revents & node->pfd.events;
    node->pfd.revents = 0;

    poll_ready = node->poll_ready;
    node->poll_ready = false;

    /*
     * A handler that just became ready is likely to stay busy, so start
     * polling it.  When the monitor supports polling, a handler that is
     * never polled could starve, but only until its fd fires once.
     */
    if (!QLIST_IS_INSERTED(node, node_deleted) &&
        !QLIST_IS_INSERTED(node, node_poll) &&
        node->io_poll) {
        if (ctx->poll_started && node->io_poll_begin) {
            node->io_poll_begin(node->opaque);
        }
        QLIST_INSERT_HEAD(&ctx->poll_aio_handlers, node, node_poll);
    }
    if (!QLIST_IS_INSERTED(node, node_deleted) &&
        poll_ready && revents == 0 && node->io_poll_ready) {
        /*
         * Take the node off the poll list while ->io_poll_ready() runs: if
         * it calls aio_poll() before clearing its condition, the nested
         * loop must not find it ready again and recurse forever.
         */
        QLIST_SAFE_REMOVE(node, node_poll);

        ctx->stats.handler_dispatches++; /* cevent */
        node->io_poll_ready(node->opaque);

        if (!QLIST_IS_INSERTED(node, node_poll)) {
            QLIST_INSERT_HEAD(&ctx->poll_aio_handlers, node, node_poll);
        }

        /* revents was 0, so we are done; aio_notify() is not progress */
        return node->opaque != &ctx->notifier;
    }

    if (!QLIST_IS_INSERTED(node, node_deleted) &&
        (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) &&
        node->io_read) {
        ctx->stats.handler_dispatches++; /* cevent */
        node->io_read(node->opaque);

        /* Draining our own notifier is not progress */
        if (node->opaque != &ctx->notifier) {
            progress = true;
        }
    }
    if (!QLIST_IS_INSERTED(node, node_deleted) &&
        (revents & (G_IO_OUT | G_IO_ERR)) &&
        node->io_write) {
        ctx->stats.handler_dispatches++; /* cevent */
        node->io_write(node->opaque);
        progress = true;
    }

    return progress;
}

/*
 * Dispatch only the handlers the monitor found ready: cheaper than
 * aio_dispatch_handlers(), which looks at every handler.
 */
static bool aio_dispatch_ready_handlers(AioContext *ctx,
                                        AioHandlerList *ready_list)
{
    bool progress = false;
    AioHandler *node;

    while ((node = QLIST_FIRST(ready_list))) {
        QLIST_REMOVE(node, node_ready);
        progress = aio_dispatch_handler(ctx, node) || progress;
    }

    return progress;
}

/* The slow path, used only by the GSource-style dispatch */
static bool aio_dispatch_handlers(AioContext *ctx)
{
    AioHandler *node, *tmp;
    bool progress = false;

    QLIST_FOREACH_SAFE_RCU(node, &ctx->aio_handlers, node, tmp) {
        progress = aio_dispatch_handler(ctx, node) || progress;
    }

    return progress;
}

void aio_dispatch(AioContext *ctx)
{
    qemu_lockcnt_inc(&ctx->list_lock);
    aio_bh_poll(ctx);

    if (ctx->fdmon_ops->dispatch) {
        ctx->fdmon_ops->dispatch(ctx);
    }

    aio_dispatch_handlers(ctx);
    aio_free_deleted_handlers(ctx);
    qemu_lockcnt_dec(&ctx->list_lock);

    timerlistgroup_run_timers(&ctx->tlg);
}

static bool run_poll_handlers_once(AioContext *ctx,
                                   AioHandlerList *ready_list,
                                   int64_t now,
                                   int64_t *timeout)
{
    bool progress = false;
    AioHandler *node;
    AioHandler *tmp;

    QLIST_FOREACH_SAFE(node, &ctx->poll_aio_handlers, node_poll, tmp) {
        if (node->io_poll(node->opaque)) {
            aio_add_poll_ready_handler(ready_list, node);

            node->poll_idle_timeout = now + POLL_IDLE_INTERVAL_NS;

            /*
             * Something is ready: leave the polling loop at once so that
             * the next polling time can be adjusted.
             */
            *timeout = 0;
            if (node->opaque != &ctx->notifier) {
                progress = true;
            }
        }

        /* Deleted nodes are freed by the caller, not here */
    }

    return progress;
}

static bool fdmon_supports_polling(AioContext *ctx)
{
    return ctx->fdmon_ops->need_wait != aio_poll_disabled;
}

static bool remove_idle_poll_handlers(AioContext *ctx,
                                      AioHandlerList *ready_list,
                                      int64_t now)
{
    AioHandler *node;
    AioHandler *tmp;
    bool progress = false;

    /*
     * When the fd monitor cannot poll from userspace, polling only some
     * handlers would starve the others' fds.  Keep every poller then.
     */
    if (!fdmon_supports_polling(ctx)) {
        return false;
    }

    QLIST_FOREACH_SAFE(node, &ctx->poll_aio_handlers, node_poll, tmp) {
        if (node->poll_idle_timeout == 0LL) {
            node->poll_idle_timeout = now + POLL_IDLE_INTERVAL_NS;
        } else if (now >= node->poll_idle_timeout) {
            node->poll_idle_timeout = 0LL;
            QLIST_SAFE_REMOVE(node, node_poll);
            if (ctx->poll_started && node->io_poll_end) {
                node->io_poll_end(node->opaque);

                /*
                 * One last look in case an event raced with
                 * ->io_poll_end().  If it is ready, the node rejoins the
                 * poll list when it is next dispatched.
                 */
                if (node->io_poll(node->opaque)) {
                    aio_add_poll_ready_handler(ready_list, node);
                    progress = true;
                }
            }
        }
    }

    return progress;
}

/* run_poll_handlers:
 * @ctx: the AioContext
 * @ready_list: where ready handlers are put
 * @max_ns: the longest time to poll, in nanoseconds
 *
 * Busy-poll the handlers on the poll list for up to @max_ns.
 *
 * The caller must have incremented ctx->list_lock.
 *
 * Returns: true if progress was made, false otherwise
 */
static bool run_poll_handlers(AioContext *ctx, AioHandlerList *ready_list,
                              int64_t max_ns, int64_t *timeout)
{
    bool progress;
    int64_t start_time, elapsed_time, slice_end;
    void *token = NULL;
    bool stop = false;

    assert(qemu_lockcnt_count(&ctx->list_lock) > 0);

    /*
     * cevent: upstream makes the whole loop one RCU read-side critical
     * section; there is no RCU here.  Instead the embedder's hook runs
     * around the spin (the Python binding releases the GIL when every
     * poller is native).
     */
    if (ctx->blocking_begin) {
        token = ctx->blocking_begin(ctx, AIO_BLOCKING_SPIN,
                                    ctx->blocking_opaque);
    }

    start_time = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    slice_end = start_time + AIO_SPIN_SLICE_NS;
    do {
        progress = run_poll_handlers_once(ctx, ready_list,
                                          start_time, timeout);
        elapsed_time = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - start_time;
        max_ns = qemu_soonest_timeout(*timeout, max_ns);
        assert(!(max_ns && progress));

        /*
         * cevent: between slices of a long spin the embedder gets a look
         * (pending signals), and may end the spin.
         */
        if (ctx->blocking_end && elapsed_time < max_ns &&
            start_time + elapsed_time >= slice_end) {
            stop = ctx->blocking_end(ctx, AIO_BLOCKING_SPIN, token,
                                     ctx->blocking_opaque);
            if (stop) {
                break;
            }
            token = ctx->blocking_begin(ctx, AIO_BLOCKING_SPIN,
                                        ctx->blocking_opaque);
            slice_end = start_time + elapsed_time + AIO_SPIN_SLICE_NS;
        }
    } while (elapsed_time < max_ns && !ctx->fdmon_ops->need_wait(ctx));

    if (ctx->blocking_end && !stop) {
        stop = ctx->blocking_end(ctx, AIO_BLOCKING_SPIN, token,
                                 ctx->blocking_opaque);
    }
    if (stop) {
        /* cevent: the embedder ended the spin; do not block after it */
        *timeout = 0;
    }
    ctx->stats.polling_ns += elapsed_time; /* cevent */

    if (remove_idle_poll_handlers(ctx, ready_list,
                                  start_time + elapsed_time)) {
        *timeout = 0;
        progress = true;
    }

    /* Nothing found: shorten the wait so that it ends when planned */
    if (*timeout != -1) {
        *timeout -= MIN(*timeout, elapsed_time);
    }

    return progress;
}

/* try_poll_mode:
 * @ctx: the AioContext
 * @ready_list: where handlers that must run are put
 * @timeout: the blocking wait's timeout, computed by the caller; set to 0
 *    when polling finds something
 *
 * The caller must have incremented ctx->list_lock.
 *
 * Returns: true if progress was made, false otherwise
 */
static bool try_poll_mode(AioContext *ctx, AioHandlerList *ready_list,
                          int64_t *timeout)
{
    int64_t max_ns;

    if (QLIST_EMPTY_RCU(&ctx->poll_aio_handlers)) {
        return false;
    }

    max_ns = qemu_soonest_timeout(*timeout, ctx->poll_ns);
    if (max_ns && !ctx->fdmon_ops->need_wait(ctx)) {
        /*
         * Enter poll mode; aio_poll() leaves it with poll_set_started()
         * right before it waits on the fd monitor.
         */
        poll_set_started(ctx, ready_list, true);

        if (run_poll_handlers(ctx, ready_list, max_ns, timeout)) {
            return true;
        }
    }
    return false;
}

bool aio_poll(AioContext *ctx, bool blocking)
{
    AioHandlerList ready_list = QLIST_HEAD_INITIALIZER(ready_list);
    bool progress;
    bool use_notify_me;
    bool woken;
    int64_t timeout;
    int64_t start = 0;

    /*
     * Only one aio_poll() per context may run at a time (and never beside
     * a GSource prepare/check/dispatch of the same context), which is what
     * lets notify_me be updated without locked instructions below.
     *
     * cevent: upstream asserts that this is the context's home thread; the
     * Python binding checks it and raises RuntimeError instead.
     */

    /* cevent: see aio_gsource_arm() */
    woken = aio_gsource_disarm(ctx) == AIO_GSOURCE_ARMED_BY_POLL && !blocking;
    ctx->gsource_poll_depth++;

    qemu_lockcnt_inc(&ctx->list_lock);
    ctx->stats.iterations++; /* cevent */

    if (ctx->poll_max_ns) {
        start = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    }

    timeout = blocking ? aio_compute_timeout(ctx) : 0;
    progress = try_poll_mode(ctx, &ready_list, &timeout);
    assert(!(timeout && progress));

    /*
     * aio_notify() may skip the costly event_notifier_set() as long as
     * fds, BHs and timers will all be looked at again before the next
     * blocking wait.  That is already so for a non-blocking call; for a
     * blocking one it holds only once the wait is over, so announce the
     * wait here.
     */
    use_notify_me = timeout != 0;
    if (use_notify_me) {
        qatomic_set(&ctx->notify_me, qatomic_read(&ctx->notify_me) + 2);
        /*
         * notify_me must be visible before notified is read.  Pairs with
         * smp_mb in aio_notify().
         */
        smp_mb();

        /* An aio_notify() already happened: do not block */
        if (qatomic_read(&ctx->notified)) {
            timeout = 0;
        }
    }

    /*
     * With polling allowed, a non-blocking aio_poll() can do without the
     * system call: one round of run_poll_handlers_once() is enough.
     */
    /*
     * cevent: an outer loop woken through the embedding fd (the plain
     * protocol) needs the fds looked at, even when every handler polls: a
     * notification stays readable on the event notifier until its handler
     * here reads it, and a ready fd until its handler runs.
     */
    if (timeout || ctx->fdmon_ops->need_wait(ctx) || woken) {
        void *token = NULL;
        bool hooked = false;
        int64_t wait_start = 0;

        /*
         * Leave poll mode before waiting on the fd monitor, so that a
         * notification arriving now wakes the thread: otherwise it could
         * hang or add latency.
         */
        if (poll_set_started(ctx, &ready_list, false)) {
            timeout = 0;
            progress = true;
        }

        /*
         * cevent: the embedder's hook runs around a wait that may block
         * (the Python binding releases the GIL there).  A zero-timeout
         * wait is too short to be worth it.
         */
        if (timeout && ctx->blocking_begin) {
            token = ctx->blocking_begin(ctx, AIO_BLOCKING_WAIT,
                                        ctx->blocking_opaque);
            hooked = true;
        }
        if (timeout) {
            wait_start = get_clock();
        }

        ctx->fdmon_ops->wait(ctx, &ready_list, timeout);

        if (timeout) {
            ctx->stats.blocked_ns += get_clock() - wait_start; /* cevent */
        }
        ctx->stats.waits++; /* cevent */
        if (hooked && ctx->blocking_end) {
            ctx->blocking_end(ctx, AIO_BLOCKING_WAIT, token,
                              ctx->blocking_opaque);
        }
    }

    if (use_notify_me) {
        /* The wait is over before the flag goes down */
        qatomic_store_release(&ctx->notify_me,
                             qatomic_read(&ctx->notify_me) - 2);
    }

    aio_notify_accept(ctx);

    /* Adapt the polling time */
    if (ctx->poll_max_ns) {
        int64_t block_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME) - start;

        if (block_ns <= ctx->poll_ns) {
            /* Polled long enough, and not too long: keep it */
        } else if (block_ns > ctx->poll_max_ns) {
            /* Polling could not have covered this: poll less */
            if (ctx->poll_shrink) {
                ctx->poll_ns /= ctx->poll_shrink;
            } else {
                ctx->poll_ns = 0;
            }
            ctx->stats.poll_shrink++; /* cevent */
        } else if (ctx->poll_ns < ctx->poll_max_ns &&
                   block_ns < ctx->poll_max_ns) {
            /* Polling a little longer would have caught it: grow */
            int64_t grow = ctx->poll_grow;

            if (grow == 0) {
                grow = 2;
            }

            if (ctx->poll_ns) {
                ctx->poll_ns *= grow;
            } else {
                ctx->poll_ns = 4000; /* the first step is 4 microseconds */
            }

            if (ctx->poll_ns > ctx->poll_max_ns) {
                ctx->poll_ns = ctx->poll_max_ns;
            }
            ctx->stats.poll_grow++; /* cevent */
        }
    }

    if (ctx->fdmon_ops->dispatch) {
        progress |= ctx->fdmon_ops->dispatch(ctx);
    }

    progress |= aio_bh_poll(ctx);
    progress |= aio_dispatch_ready_handlers(ctx, &ready_list);

    aio_free_deleted_handlers(ctx);

    qemu_lockcnt_dec(&ctx->list_lock);

    progress |= timerlistgroup_run_timers(&ctx->tlg);

    /* cevent: the outer loop may wait again once no aio_poll() runs */
    if (--ctx->gsource_poll_depth == 0) {
        aio_gsource_arm(ctx, AIO_GSOURCE_ARMED_BY_POLL);
    }

    return progress;
}

void aio_context_setup(AioContext *ctx)
{
    ctx->fdmon_ops = &fdmon_poll_ops;
    ctx->epollfd = -1;

    /*
     * cevent: the context may be asked for one monitor (aio_context_new_full);
     * AIO_FDMON_AUTO is upstream's choice.
     */
    switch (ctx->fdmon_kind) {
    case AIO_FDMON_POLL:
        return;
    case AIO_FDMON_EPOLL:
        fdmon_epoll_setup(ctx);
        return;
    case AIO_FDMON_IO_URING:
        fdmon_io_uring_setup(ctx);
        return;
    case AIO_FDMON_AUTO:
        break;
    }

    /* Prefer the fastest monitor the kernel offers */
    if (fdmon_io_uring_setup(ctx)) {
        return;
    }

    fdmon_epoll_setup(ctx);
}

void aio_context_destroy(AioContext *ctx)
{
    AioHandler *node;
    AioHandlerList to_free = QLIST_HEAD_INITIALIZER(to_free);

    fdmon_io_uring_destroy(ctx);
    /* cevent: upstream's comment says list_lock must be held; take it */
    qemu_lockcnt_lock(&ctx->list_lock);
    fdmon_epoll_disable(ctx);
    qemu_lockcnt_unlock(&ctx->list_lock);
    aio_free_deleted_handlers(ctx);

    /*
     * cevent: upstream expects every handler to be removed before the
     * context goes away and leaks those that are not.  Release them, and
     * their owners' opaques, exactly once.
     */
    qemu_lockcnt_lock(&ctx->list_lock);
    assert(qemu_lockcnt_count(&ctx->list_lock) == 0);
    while ((node = QLIST_FIRST(&ctx->aio_handlers))) {
        QLIST_REMOVE(node, node);
        QLIST_SAFE_REMOVE(node, node_poll);
        QLIST_SAFE_REMOVE(node, node_ready);
        if (QLIST_IS_INSERTED(node, node_deleted)) {
            node->node_deleted.le_prev = NULL;
            node->node_deleted.le_next = NULL;
        }
        QLIST_INSERT_HEAD(&to_free, node, node_deleted);
    }
    qemu_lockcnt_unlock(&ctx->list_lock);
    while ((node = QLIST_FIRST(&to_free))) {
        QLIST_REMOVE(node, node_deleted);
        aio_free_handler(node);
    }
    ctx->poll_disable_cnt = 0;

    /* cevent: the embedding fd, if aio_get_g_source_fd() made one */
    if (ctx->gsource_fd >= 0) {
        close(ctx->gsource_fd);
        ctx->gsource_fd = -1;
    }
}

void aio_context_use_g_source(AioContext *ctx)
{
    /*
     * io_uring cannot serve a context that is also driven by an outer
     * loop: it needs regular aio_poll() calls to submit fd changes, or the
     * list of pending handlers keeps growing.  Use poll from now on.
     */
    fdmon_io_uring_destroy(ctx);
    aio_free_deleted_handlers(ctx);
}

void aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                 int64_t grow, int64_t shrink,
                                 Error **errp G_GNUC_UNUSED)
{
    /* Unsynchronised on purpose: a stale value used once does no harm */
    ctx->poll_max_ns = max_ns;
    ctx->poll_ns = 0;
    ctx->poll_grow = grow;
    ctx->poll_shrink = shrink;

    aio_notify(ctx);
}

void aio_context_set_aio_params(AioContext *ctx, int64_t max_batch)
{
    /* Unsynchronised on purpose, as above */
    ctx->aio_max_batch = max_batch;

    aio_notify(ctx);
}

#ifdef CONFIG_LINUX_IO_URING
/* cevent: the context is an argument (see aio_has_io_uring() in aio.h) */
void aio_add_sqe(AioContext *ctx,
                 void (*prep_sqe)(struct io_uring_sqe *sqe, void *opaque),
                 void *opaque, CqeHandler *cqe_handler)
{
    ctx->fdmon_ops->add_sqe(ctx, prep_sqe, opaque, cqe_handler);
}
#endif /* CONFIG_LINUX_IO_URING */

/*
 * cevent: everything below is cevent's own.
 */

void aio_context_set_blocking_hooks(AioContext *ctx,
                                    AioBlockingBeginFn *begin,
                                    AioBlockingEndFn *end,
                                    void *opaque)
{
    ctx->blocking_begin = begin;
    ctx->blocking_end = end;
    ctx->blocking_opaque = opaque;
}

const char *aio_context_fdmon_name(AioContext *ctx)
{
    if (ctx->fdmon_ops == &fdmon_poll_ops) {
        return "poll";
    }
    /* Only an active epoll monitor coexists with an epoll fd */
    if (ctx->epollfd >= 0) {
        return "epoll";
    }
    return "io_uring";
}

void aio_context_get_stats(AioContext *ctx, AioContextStats *stats)
{
    *stats = ctx->stats;
}

/*
 * cevent: count a timer callback in ctx->stats, for an embedder whose
 * timers run through a callback of its own (the timer list does not know
 * its context).
 */
void aio_context_stats_timer_dispatch(AioContext *ctx)
{
    ctx->stats.timer_dispatches++;
}

/*
 * cevent: the opaque of @fd's live handler when it was registered with
 * @opaque_release (aio_set_fd_handler_full), else NULL: an embedder that
 * keeps a record per registration finds it the way aio_set_fd_poll() finds
 * the node.
 */
void *aio_get_fd_handler_opaque(AioContext *ctx, int fd,
                                IOHandler *opaque_release)
{
    AioHandler *node;
    void *opaque = NULL;

    qemu_lockcnt_inc(&ctx->list_lock);
    node = find_aio_handler(ctx, fd);
    if (node && node->opaque_release == opaque_release) {
        opaque = node->opaque;
    }
    qemu_lockcnt_dec(&ctx->list_lock);
    return opaque;
}

/*
 * cevent: whether a handler that takes part in polling uses @io_poll.  For
 * the blocking_begin hook, which runs inside aio_poll() (so the list is
 * visited already): an embedder whose io_poll needs a lock of its own for
 * each call keeps that lock through the spin instead of dropping it.
 */
bool aio_context_polls_with(AioContext *ctx, AioPollFn *io_poll)
{
    AioHandler *node;

    QLIST_FOREACH_RCU(node, &ctx->poll_aio_handlers, node_poll) {
        if (node->io_poll == io_poll) {
            return true;
        }
    }
    return false;
}

/* cevent: the IORING_FEAT_* flags of @ctx's ring, 0 without one */
unsigned aio_context_io_uring_features(AioContext *ctx)
{
    return ctx->fdmon_io_uring_features;
}

/* cevent: the IORING_SETUP_* flags of @ctx's ring (0 without one) */
unsigned aio_context_io_uring_setup_flags(AioContext *ctx)
{
    return ctx->fdmon_io_uring_setup_flags;
}

/* cevent: whether aio_get_g_source_fd() switched @ctx to embedded use */
bool aio_context_uses_g_source(AioContext *ctx)
{
    return ctx->gsource_fd >= 0;
}

/*
 * The fd-based embedding.  Upstream registers every handler's GPollFD with
 * the context's GSource, and GLib polls them.  cevent instead keeps an
 * epoll fd (ctx->gsource_fd) holding every handler fd, level-triggered:
 * it is readable exactly while some handler fd is ready, which an outer
 * loop can wait on.  aio_gsource_check_fds() plays GLib's part of filling
 * in each node's revents.
 */

static uint32_t aio_gsource_epoll_events(int events)
{
    return (events & G_IO_IN ? EPOLLIN : 0) |
           (events & G_IO_OUT ? EPOLLOUT : 0) |
           (events & G_IO_HUP ? EPOLLHUP : 0) |
           (events & G_IO_ERR ? EPOLLERR : 0);
}

/* Called with list_lock held (or before the context is shared) */
static void aio_gsource_add_poll(AioContext *ctx, AioHandler *node)
{
    struct epoll_event event;

    if (ctx->gsource_fd < 0) {
        return;
    }
    memset(&event, 0, sizeof(event));
    event.events = aio_gsource_epoll_events(node->pfd.events);
    event.data.fd = node->pfd.fd;
    if (epoll_ctl(ctx->gsource_fd, EPOLL_CTL_ADD, node->pfd.fd, &event) &&
        errno == EEXIST) {
        /* A replacement: the old node of this fd is still registered */
        epoll_ctl(ctx->gsource_fd, EPOLL_CTL_MOD, node->pfd.fd, &event);
    }
    /*
     * Other failures (EPERM for a regular file, EBADF) leave the fd out of
     * the embedding set: aio_gsource_check_fds() still polls it.
     */
}

/* Called with list_lock held */
static void aio_gsource_remove_poll(AioContext *ctx, AioHandler *node)
{
    struct epoll_event event;

    if (ctx->gsource_fd < 0) {
        return;
    }
    /* When the fd was re-registered, its new node keeps the entry */
    if (find_aio_handler(ctx, node->pfd.fd) != node &&
        find_aio_handler(ctx, node->pfd.fd) != NULL) {
        return;
    }
    memset(&event, 0, sizeof(event));
    epoll_ctl(ctx->gsource_fd, EPOLL_CTL_DEL, node->pfd.fd, &event);
}

int aio_get_g_source_fd(AioContext *ctx, Error **errp)
{
    AioHandler *node;
    int fd;

    if (ctx->gsource_fd >= 0) {
        return ctx->gsource_fd;
    }

    aio_context_use_g_source(ctx);

    fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "epoll_create1");
        return -1;
    }

    qemu_lockcnt_lock(&ctx->list_lock);
    ctx->gsource_fd = fd;
    QLIST_FOREACH(node, &ctx->aio_handlers, node) {
        if (!QLIST_IS_INSERTED(node, node_deleted)) {
            aio_gsource_add_poll(ctx, node);
        }
    }
    qemu_lockcnt_unlock(&ctx->list_lock);

    /* cevent: an outer loop may wait on the fd right away */
    aio_gsource_arm(ctx, AIO_GSOURCE_ARMED);
    return fd;
}

/*
 * The plain protocol: the outer loop waits on the fd for at most
 * aio_compute_timeout() ns, then calls aio_poll(ctx, false).  It never
 * calls aio_ctx_prepare(), so nothing raises notify_me for its wait, and
 * aio_notify() would write nothing.  aio_gsource_arm() raises it (by 2, as
 * a waiting aio_poll() does) when the fd is first handed out
 * (AIO_GSOURCE_ARMED) and when the outermost aio_poll() ends
 * (AIO_GSOURCE_ARMED_BY_POLL: the next non-blocking aio_poll() then looks
 * at the fds, since the outer loop may have been woken by them).
 * aio_gsource_disarm() drops it when the next aio_poll() or
 * aio_ctx_prepare() starts, and returns how it was armed.  So inside an
 * iteration, and all along the GLib protocol, notify_me is upstream's.
 * Home thread only, like aio_poll(), which updates notify_me without a
 * locked instruction too.
 */
void aio_gsource_arm(AioContext *ctx, int how)
{
    if (ctx->gsource_fd < 0 || ctx->gsource_armed) {
        return;
    }
    qatomic_set(&ctx->notify_me, qatomic_read(&ctx->notify_me) + 2);
    ctx->gsource_armed = how;
    if (how != AIO_GSOURCE_ARMED_BY_POLL) {
        return;
    }

    /*
     * notify_me must be visible before the work is looked at.  Pairs with
     * smp_mb in aio_notify(): a notification from now on writes the event
     * notifier, and one that came earlier published work that is seen
     * here.  Work left for the next aio_poll() (a BH scheduled by a
     * callback or by another thread while notify_me was low, a timer made
     * due) makes the fd readable now, so that an outer loop that only
     * watches the fd runs it too.
     */
    smp_mb();
    if (aio_compute_timeout(ctx) == 0) {
        event_notifier_set(&ctx->notifier);
    }
}

int aio_gsource_disarm(AioContext *ctx)
{
    int how = ctx->gsource_armed;

    if (how) {
        qatomic_set(&ctx->notify_me, qatomic_read(&ctx->notify_me) - 2);
        ctx->gsource_armed = AIO_GSOURCE_DISARMED;
    }
    return how;
}

/*
 * Fill in revents of every handler with a non-blocking poll(), as GLib
 * does after its wait.  Home thread only.
 */
void aio_gsource_check_fds(AioContext *ctx)
{
    AioHandler *node;
    GPollFD *pfds;
    AioHandler **nodes;
    unsigned n = 0, alloc = 0, i;
    bool ready;

    qemu_lockcnt_inc(&ctx->list_lock);
    QLIST_FOREACH_RCU(node, &ctx->aio_handlers, node) {
        alloc++;
    }
    pfds = g_new0(GPollFD, alloc);
    nodes = g_new0(AioHandler *, alloc);
    QLIST_FOREACH_RCU(node, &ctx->aio_handlers, node) {
        if (n == alloc) {
            break; /* a concurrent insertion; it is seen next time */
        }
        if (QLIST_IS_INSERTED(node, node_deleted) || !node->pfd.events) {
            continue;
        }
        pfds[n].fd = node->pfd.fd;
        pfds[n].events = node->pfd.events;
        nodes[n] = node;
        n++;
    }
    ready = n ? qemu_poll_ns(pfds, n, 0) > 0 : false;
    for (i = 0; i < n; i++) {
        /* Stale results of an earlier check must not linger */
        nodes[i]->pfd.revents = ready ? pfds[i].revents : 0;
    }
    qemu_lockcnt_dec(&ctx->list_lock);
    g_free(pfds);
    g_free(nodes);
}
