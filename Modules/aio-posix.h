/*
 * AioContext POSIX event loop implementation internal APIs
 *
 * Upstream: util/aio-posix.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07;
 * AioHandler's internal_cqe_handler from QEMU 10.2 (Modules/PORTING.md).
 * Upstream licence: GNU GPL version 2 or (at your option) any later version
 * (contributions after 2012-01-13).  Written for cevent in our own words;
 * cevent is GPL-2.0-or-later.  Divergences: see Modules/PORTING.md.
 */
#ifndef AIO_POSIX_H
#define AIO_POSIX_H

#include "block/aio.h"

struct AioHandler {
    GPollFD pfd;
    IOHandler *io_read;
    IOHandler *io_write;
    AioPollFn *io_poll;
    IOHandler *io_poll_ready;
    IOHandler *io_poll_begin;
    IOHandler *io_poll_end;
    void *opaque;
    QLIST_ENTRY(AioHandler) node;
    QLIST_ENTRY(AioHandler) node_ready; /* only used during aio_poll() */
    QLIST_ENTRY(AioHandler) node_deleted;
    QLIST_ENTRY(AioHandler) node_poll;
#ifdef CONFIG_LINUX_IO_URING
    QSLIST_ENTRY(AioHandler) node_submitted;
    unsigned flags; /* see fdmon-io_uring.c */
    CqeHandler internal_cqe_handler; /* for POLL_ADD and POLL_REMOVE */
#endif
    int64_t poll_idle_timeout; /* when to stop userspace polling */
    bool poll_ready; /* has polling detected an event? */
    /* cevent: called with opaque when the node is freed, if not NULL. */
    IOHandler *opaque_release;
};

/* Add a handler to a ready list */
void aio_add_ready_handler(AioHandlerList *ready_list, AioHandler *node,
                           int revents);

/*
 * cevent: free a node that nobody can reach any more: call its
 * opaque_release.  Never called with ctx->list_lock held.
 */
void aio_free_handler(AioHandler *node);

/*
 * cevent: the fd-based embedding fills in every handler's revents with a
 * non-blocking poll(), as GLib does for a GSource.  Home thread only.
 */
void aio_gsource_check_fds(AioContext *ctx);
/* cevent: notify_me for an outer loop that skips aio_ctx_prepare() */
enum {
    AIO_GSOURCE_DISARMED,
    AIO_GSOURCE_ARMED,          /* by aio_get_g_source_fd() */
    AIO_GSOURCE_ARMED_BY_POLL,  /* at the end of the outermost aio_poll() */
};
void aio_gsource_arm(AioContext *ctx, int how);
int aio_gsource_disarm(AioContext *ctx);

extern const FDMonOps fdmon_poll_ops;

/* Switch back to poll(2).  list_lock must be held. */
void fdmon_poll_downgrade(AioContext *ctx);

#ifdef CONFIG_EPOLL_CREATE1
bool fdmon_epoll_try_upgrade(AioContext *ctx, unsigned npfd);
void fdmon_epoll_setup(AioContext *ctx);

/* list_lock must be held */
void fdmon_epoll_disable(AioContext *ctx);
#else
/* cevent: G_GNUC_UNUSED keeps -Wextra -Werror builds quiet */
static inline bool fdmon_epoll_try_upgrade(AioContext *ctx G_GNUC_UNUSED,
                                           unsigned npfd G_GNUC_UNUSED)
{
    return false;
}

static inline void fdmon_epoll_setup(AioContext *ctx G_GNUC_UNUSED)
{
}

static inline void fdmon_epoll_disable(AioContext *ctx G_GNUC_UNUSED)
{
}
#endif /* !CONFIG_EPOLL_CREATE1 */

#ifdef CONFIG_LINUX_IO_URING
bool fdmon_io_uring_setup(AioContext *ctx);
void fdmon_io_uring_destroy(AioContext *ctx);
#else
/* cevent: G_GNUC_UNUSED keeps -Wextra -Werror builds quiet */
static inline bool fdmon_io_uring_setup(AioContext *ctx G_GNUC_UNUSED)
{
    return false;
}

static inline void fdmon_io_uring_destroy(AioContext *ctx G_GNUC_UNUSED)
{
}
#endif /* !CONFIG_LINUX_IO_URING */

bool aio_poll_disabled(AioContext *ctx);

#endif /* AIO_POSIX_H */
