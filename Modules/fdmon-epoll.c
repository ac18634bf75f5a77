/*
 * File descriptor monitoring with epoll(7)
 *
 * Upstream: util/fdmon-epoll.c, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07.
 * Upstream licence: GNU GPL version 2 or (at your option) any later version
 * (SPDX-License-Identifier: GPL-2.0-or-later).  Written for cevent in our
 * own words; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 */

#include "qemu/osdep.h"
#include <sys/epoll.h>
#include "qemu/rcu_queue.h"
#include "aio-posix.h"
#include "qemu/fault-injection.h" /* cevent: fault injection */

#ifdef CEVENT_FAULT_INJECTION
/* cevent: fault injection: test knobs, see qemu/fault-injection.h */
int cevent_fault_epoll_create_errno;
int cevent_fault_epoll_ctl_countdown;
int cevent_fault_epoll_ctl_errno;
#endif

#ifdef CONFIG_EPOLL_CREATE1

#ifdef CEVENT_FAULT_INJECTION
/* cevent: fault injection: every epoll_ctl() of this file goes through here */
static int fault_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    int n = qatomic_read(&cevent_fault_epoll_ctl_countdown);

    while (n > 0) {
        int seen = qatomic_cmpxchg(&cevent_fault_epoll_ctl_countdown, n, n - 1);
        if (seen == n) {
            if (n == 1) {
                int err = qatomic_read(&cevent_fault_epoll_ctl_errno);
                errno = err ? err : EPERM;
                return -1;
            }
            break;
        }
        n = seen;
    }
    return epoll_ctl(epfd, op, fd, event);
}
#define epoll_ctl fault_epoll_ctl
#endif

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif

/* How many monitored fds it takes before we move over to epoll */
#define EPOLL_ENABLE_THRESHOLD 64

void fdmon_epoll_disable(AioContext *ctx)
{
    if (ctx->epollfd >= 0) {
        close(ctx->epollfd);
        ctx->epollfd = -1;
    }

    /* Go back to poll(2) */
    ctx->fdmon_ops = &fdmon_poll_ops;
}

static inline int epoll_events_from_pfd(int pfd_events)
{
    return (pfd_events & G_IO_IN ? EPOLLIN : 0) |
           (pfd_events & G_IO_OUT ? EPOLLOUT : 0) |
           (pfd_events & G_IO_HUP ? EPOLLHUP : 0) |
           (pfd_events & G_IO_ERR ? EPOLLERR : 0);
}

static void fdmon_epoll_update(AioContext *ctx,
                               AioHandler *old_node,
                               AioHandler *new_node)
{
    /*
     * cevent: the whole event, padding and the unused part of the data
     * union included, is zeroed before use so that nothing uninitialised
     * reaches the kernel.
     */
    struct epoll_event event;
    int r;

    memset(&event, 0, sizeof(event));
    event.data.ptr = new_node;
    event.events = new_node ? epoll_events_from_pfd(new_node->pfd.events) : 0;

    if (!new_node) {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_DEL, old_node->pfd.fd, &event);
    } else if (!old_node) {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_ADD, new_node->pfd.fd, &event);
    } else {
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_MOD, new_node->pfd.fd, &event);
    }

    /*
     * Any failure (e.g. EPERM for a regular file, EBADF for a closed fd)
     * sends the context back to poll(2) for good.
     */
    if (r) {
        fdmon_epoll_disable(ctx);
    }
}

static int fdmon_epoll_wait(AioContext *ctx, AioHandlerList *ready_list,
                            int64_t timeout)
{
    GPollFD pfd = {
        .fd = ctx->epollfd,
        .events = G_IO_IN | G_IO_OUT | G_IO_HUP | G_IO_ERR,
    };
    AioHandler *node;
    int i, ret = 0;
    struct epoll_event events[128];

    /*
     * epoll_wait() only takes milliseconds, so a positive timeout is waited
     * for with ppoll(2) on the epoll fd itself (nanosecond resolution); once
     * that reports readiness, the events are fetched without blocking.
     */
    if (timeout > 0) {
        ret = qemu_poll_ns(&pfd, 1, timeout);
        if (ret > 0) {
            timeout = 0;
        }
    }
    if (timeout <= 0 || ret > 0) {
        ret = epoll_wait(ctx->epollfd, events,
                         ARRAY_SIZE(events),
                         (int)timeout);
        if (ret <= 0) {
            goto out;
        }
        for (i = 0; i < ret; i++) {
            int ev = events[i].events;
            int revents = (ev & EPOLLIN ? G_IO_IN : 0) |
                          (ev & EPOLLOUT ? G_IO_OUT : 0) |
                          (ev & EPOLLHUP ? G_IO_HUP : 0) |
                          (ev & EPOLLERR ? G_IO_ERR : 0);

            node = events[i].data.ptr;
            aio_add_ready_handler(ready_list, node, revents);
        }
    }
out:
    return ret;
}

static const FDMonOps fdmon_epoll_ops = {
    .update = fdmon_epoll_update,
    .wait = fdmon_epoll_wait,
    .need_wait = aio_poll_disabled,
};

static bool fdmon_epoll_try_enable(AioContext *ctx)
{
    AioHandler *node;
    struct epoll_event event;

    /* cevent: zeroed, see fdmon_epoll_update() */
    memset(&event, 0, sizeof(event));

    QLIST_FOREACH_RCU(node, &ctx->aio_handlers, node) {
        int r;
        if (QLIST_IS_INSERTED(node, node_deleted) || !node->pfd.events) {
            continue;
        }
        event.events = epoll_events_from_pfd(node->pfd.events);
        event.data.ptr = node;
        r = epoll_ctl(ctx->epollfd, EPOLL_CTL_ADD, node->pfd.fd, &event);
        if (r) {
            return false;
        }
    }

    ctx->fdmon_ops = &fdmon_epoll_ops;
    return true;
}

bool fdmon_epoll_try_upgrade(AioContext *ctx, unsigned npfd)
{
    bool ok;

    if (ctx->epollfd < 0) {
        return false;
    }

    /* cevent: a threshold per context, see aio_context_set_epoll_threshold */
    if (npfd < ctx->epoll_threshold) {
        return false;
    }

    /*
     * The handler list must stay put while its fds are added to epoll: take
     * the lock, which only works if we are the sole visitor (not nested).
     */
    if (!qemu_lockcnt_dec_if_lock(&ctx->list_lock)) {
        return false;
    }

    ok = fdmon_epoll_try_enable(ctx);

    qemu_lockcnt_inc_and_unlock(&ctx->list_lock);

    if (!ok) {
        fdmon_epoll_disable(ctx);
    }
    return ok;
}

void fdmon_epoll_setup(AioContext *ctx)
{
#ifdef CEVENT_FAULT_INJECTION
    /* cevent: fault injection: pretend epoll_create1() failed */
    int fault = qatomic_read(&cevent_fault_epoll_create_errno);

    if (fault) {
        ctx->epollfd = -1;
        fprintf(stderr, "cevent: epoll_create1: %s; staying with poll(2)\n",
                strerror(fault));
        errno = fault; /* for aio_context_new_full() */
        return;
    }
#endif
    ctx->epoll_threshold = EPOLL_ENABLE_THRESHOLD; /* cevent */
    ctx->epollfd = epoll_create1(EPOLL_CLOEXEC);
    if (ctx->epollfd == -1) {
        fprintf(stderr, "cevent: epoll_create1: %s; staying with poll(2)\n",
                strerror(errno));
    }
}

#endif /* CONFIG_EPOLL_CREATE1 */

/*
 * cevent: let an embedder move to epoll earlier (or later) than QEMU does.
 * cevent.Loop asks for 1, as asyncio's selector loops use epoll for any
 * number of fds: an empty epoll_wait() costs less than a ppoll() of a few
 * fds, and a loop that iterates with callbacks queued makes one such
 * zero-timeout wait per iteration.
 */
void aio_context_set_epoll_threshold(AioContext *ctx, unsigned threshold)
{
    assert(threshold >= 1);
    ctx->epoll_threshold = threshold;
}
