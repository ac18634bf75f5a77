/*
 * QEMU aio implementation: the AioContext, bottom halves, fd handlers.
 *
 * Upstream: include/block/aio.h, QEMU d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07.
 * CqeHandler, FDMonOps' dispatch and add_sqe, aio_has_io_uring() and
 * aio_add_sqe() from QEMU 10.2 (see Modules/PORTING.md).
 * Upstream licence: GNU GPL version 2 or (at your option) any later version.
 * Written for cevent in our own words; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.  Coroutine, thread-pool, linux-aio,
 * graph-lock and GSource members are dropped (see PORTING.md); fields that
 * cevent adds are at the end of AioContext, marked "cevent:".
 */
#ifndef QEMU_AIO_H
#define QEMU_AIO_H

#include "qemu/osdep.h"
#include "qemu/queue.h"
#include "qemu/event_notifier.h"
#include "qemu/lockcnt.h"
#include "qemu/thread.h"
#include "qemu/timer.h"

#ifdef CONFIG_LINUX_IO_URING
#include <liburing.h>
#endif

typedef void IOHandler(void *opaque);
typedef bool AioPollFn(void *opaque);
typedef void QEMUBHFunc(void *opaque);

typedef struct AioHandler AioHandler;
typedef QLIST_HEAD(, AioHandler) AioHandlerList;
typedef QSLIST_HEAD(, AioHandler) AioHandlerSList;

#ifdef CONFIG_LINUX_IO_URING
/*
 * Upstream: QEMU 10.2 (commit "aio-posix: add aio_add_sqe() API for
 * user-defined io_uring requests"), see Modules/PORTING.md.
 *
 * One CqeHandler per io_uring request, owned by whoever submits it; it must
 * stay valid from aio_add_sqe() until its ->cb() has been called.  A caller
 * needing more state embeds it in a larger struct (container_of).
 */
typedef struct CqeHandler CqeHandler;
struct CqeHandler {
    /* Run by the AioContext once the request has completed */
    void (*cb)(CqeHandler *handler);

    /* Internal to the AioContext */
    QSIMPLEQ_ENTRY(CqeHandler) next;

    /* The completion, copied here before ->cb() runs */
    struct io_uring_cqe cqe;
};

typedef QSIMPLEQ_HEAD(, CqeHandler) CqeHandlerSimpleQ;
#endif /* CONFIG_LINUX_IO_URING */

typedef struct FDMonOps {
    /*
     * update:
     * @ctx: the AioContext
     * @old_node: the existing handler or NULL if this file descriptor is
     *            being monitored for the first time
     * @new_node: the new handler or NULL if this file descriptor is being
     *            removed
     *
     * Add/remove/modify a monitored file descriptor.
     *
     * Called with ctx->list_lock acquired.
     */
    void (*update)(AioContext *ctx, AioHandler *old_node,
                   AioHandler *new_node);

    /*
     * wait:
     * @ctx: the AioContext
     * @ready_list: list for handlers that become ready
     * @timeout: maximum duration to wait, in nanoseconds (-1: no limit)
     *
     * Wait for file descriptors to become ready and place them on
     * ready_list.  Called with ctx->list_lock incremented but not locked.
     *
     * Returns: number of ready file descriptors.
     */
    int (*wait)(AioContext *ctx, AioHandlerList *ready_list, int64_t timeout);

    /*
     * need_wait:
     * @ctx: the AioContext
     *
     * Tell aio_poll() when to stop userspace polling early because ->wait()
     * has fds ready.  File descriptor monitoring implementations that cannot
     * poll fd readiness from userspace use aio_poll_disabled() here.
     */
    bool (*need_wait)(AioContext *ctx);

    /*
     * dispatch:
     * @ctx: the AioContext
     *
     * Run the callbacks that only this fd monitor knows of (io_uring's
     * CqeHandlers).  aio_poll() and aio_dispatch() call it where user
     * callbacks may run.  Optional (NULL).
     *
     * Returns: true if a callback ran (progress, as aio_poll() reports it).
     */
    bool (*dispatch)(AioContext *ctx);

#ifdef CONFIG_LINUX_IO_URING
    /*
     * add_sqe:
     * @ctx: the AioContext
     * @prep_sqe: fills in the sqe it is given
     * @opaque: passed to @prep_sqe
     * @cqe_handler: the request's handler (see CqeHandler)
     *
     * Queue an sqe on the context's ring.  @prep_sqe must not set the sqe's
     * user_data.  The kernel sees the sqe when the event loop next submits,
     * at the latest in the next aio_poll().  Only from the thread that runs
     * the context; not thread-safe.  NULL when the fd monitor has no ring.
     */
    void (*add_sqe)(AioContext *ctx,
                    void (*prep_sqe)(struct io_uring_sqe *sqe, void *opaque),
                    void *opaque, CqeHandler *cqe_handler);
#endif /* CONFIG_LINUX_IO_URING */
} FDMonOps;

/*
 * Each aio_bh_poll() call carves off a slice of the BH list, so that newly
 * scheduled BHs are not processed until the next aio_bh_poll() call.  All
 * active aio_bh_poll() calls chain their slices together in a list, so that
 * nested aio_bh_poll() calls process all scheduled bottom halves.
 */
typedef QSLIST_HEAD(, QEMUBH) BHList;
typedef struct BHListSlice BHListSlice;
struct BHListSlice {
    BHList bh_list;
    QSIMPLEQ_ENTRY(BHListSlice) next;
};

/* cevent: which monitor a context is asked to use (aio_context_new_full). */
typedef enum {
    AIO_FDMON_AUTO = 0,     /* as upstream: io_uring, else poll + epoll */
    AIO_FDMON_POLL,         /* poll only, never upgraded */
    AIO_FDMON_EPOLL,        /* poll with an epoll fd, upgraded at 64 fds */
    AIO_FDMON_IO_URING,     /* io_uring or fail */
} AioFdmonKind;

/*
 * cevent: the two places where aio_poll() may take a while without touching
 * the embedder's objects.  An embedder (the CPython binding) installs hooks
 * that run around them, e.g. to release a global interpreter lock.
 */
typedef enum {
    AIO_BLOCKING_WAIT,      /* around fdmon_ops->wait() with timeout != 0 */
    AIO_BLOCKING_SPIN,      /* around the busy-poll loop of run_poll_handlers */
} AioBlockingKind;

typedef void *AioBlockingBeginFn(AioContext *ctx, AioBlockingKind kind,
                                 void *opaque);
/*
 * Returns true to cut the spin short (for AIO_BLOCKING_WAIT the result is
 * ignored): the spin ends, and the wait that follows does not block.
 */
typedef bool AioBlockingEndFn(AioContext *ctx, AioBlockingKind kind,
                              void *token, void *opaque);

/*
 * cevent: a spin longer than this is cut into slices, with the hooks run
 * between them (end, then begin again), so that an embedder can look at
 * pending signals during a long spin.
 */
#define AIO_SPIN_SLICE_NS (10 * 1000 * 1000)

/* cevent: always-on counters, read with aio_context_get_stats(). */
typedef struct AioContextStats {
    uint64_t iterations;        /* aio_poll() calls */
    uint64_t blocked_ns;        /* time spent in fdmon_ops->wait() */
    uint64_t polling_ns;        /* time spent in run_poll_handlers() */
    uint64_t waits;             /* fdmon_ops->wait() calls */
    uint64_t handler_dispatches;/* fd/poll handler callbacks invoked */
    uint64_t bh_dispatches;     /* BH callbacks invoked */
    uint64_t timer_dispatches;  /* timer callbacks invoked */
    uint64_t poll_grow;         /* poll_ns increases */
    uint64_t poll_shrink;       /* poll_ns decreases */
    uint64_t notify_skipped;    /* aio_notify() that needed no syscall */
    uint64_t notify_syscalls;   /* aio_notify() that wrote the eventfd */
} AioContextStats;

struct AioContext {
    /* cevent: upstream embeds a GSource here; see 'gsource_*' below. */

    /*
     * Used by AioContext users to protect from multi-threaded access.
     * cevent: the recursive AioContext lock (aio_context_acquire) was
     * removed upstream in Dec 2023 and is not ported.
     */

    /*
     * The list of registered AIO handlers.  Protected by ctx->list_lock.
     */
    AioHandlerList aio_handlers;

    /* The list of AIO handlers to be deleted.  Protected by ctx->list_lock. */
    AioHandlerList deleted_aio_handlers;

    /*
     * Used to avoid unnecessary event_notifier_set calls in aio_notify;
     * only written from the AioContext home thread, or under the BQL in the
     * case of the main AioContext.  However, it is read from any thread so
     * it is still accessed with atomic primitives.
     *
     * If this field is 0, everything (file descriptors, bottom halves,
     * timers) will be re-evaluated before the next blocking poll() or
     * io_uring wait; therefore, the event_notifier_set call can be skipped.
     * If it is non-zero, you may need to wake up a concurrent aio_poll or
     * the glib main event loop, making event_notifier_set necessary.
     *
     * Bit 0 is reserved for GSource usage of the AioContext, and is 1
     * between a call to aio_ctx_prepare and the next call to aio_ctx_check.
     * Bits 1-31 simply count the number of active calls to aio_poll
     * that are in the prepare or poll phase.
     *
     * The GSource and aio_poll must use a different mechanism because
     * there is no certainty that a call to GSource's prepare callback
     * (via g_main_context_prepare) is indeed followed by check and
     * dispatch.  It's not clear whether this would be a bug, but let's
     * play safe and allow it---it will just cause extra busy waiting.
     */
    uint32_t notify_me;

    /*
     * A lock to protect between QEMUBH and AioHandler adders and deleter,
     * and to ensure that no callbacks are removed while we're walking and
     * dispatching them.
     */
    QemuLockCnt list_lock;

    /* Bottom Halves pending aio_bh_poll() processing */
    BHList bh_list;

    /* Chained BH list slices for each nested aio_bh_poll() call */
    QSIMPLEQ_HEAD(, BHListSlice) bh_slice_list;

    /*
     * Used by aio_notify.
     *
     * "notified" is used to avoid expensive event_notifier_test_and_clear
     * calls.  When it is clear, the EventNotifier is clear, or one thread
     * is going to clear "notified" before processing more events.  False
     * positives are possible, i.e. "notified" could be set even though the
     * EventNotifier is clear.
     *
     * Note that event_notifier_set *cannot* be optimized the same way.  For
     * more information on the problem that would result, see "#ifdef BUG2"
     * in the docs/aio_notify_accept.promela formal model.
     */
    bool notified;
    EventNotifier notifier;

    /* TimerLists for calling timers - one per clock type.  Has its own
     * locking.
     */
    QEMUTimerListGroup tlg;

    /* Number of AioHandlers without .io_poll() */
    int poll_disable_cnt;

    /* Polling mode parameters */
    int64_t poll_ns;        /* current polling time in nanoseconds */
    int64_t poll_max_ns;    /* maximum polling time in nanoseconds */
    int64_t poll_grow;      /* polling time growth factor */
    int64_t poll_shrink;    /* polling time shrink factor */

    /* AIO engine parameters */
    int64_t aio_max_batch;  /* maximum number of requests in a batch */

    /*
     * List of handlers participating in userspace polling.  Protected by
     * ctx->list_lock.  Iterated and modified mostly by the event loop
     * thread from aio_poll() with ctx->list_lock incremented.
     * aio_set_fd_handler() only removes handlers, and only when it does
     * so with ctx->list_lock locked and the count at zero.
     */
    AioHandlerList poll_aio_handlers;

    /*
     * Are we in polling mode or monitoring file descriptors?  Only
     * accessed from the AioContext home thread.
     */
    bool poll_started;

    /* epoll(7) state used when built with CONFIG_EPOLL */
    int epollfd;

    /*
     * cevent: fdmon-poll moves to epoll once this many fds are watched
     * (EPOLL_ENABLE_THRESHOLD unless aio_context_set_epoll_threshold()
     * changed it).
     */
    unsigned epoll_threshold;

    const FDMonOps *fdmon_ops;

#ifdef CONFIG_LINUX_IO_URING
    /*
     * State for Linux io_uring support.  On Linux, the fdmon-io_uring.c
     * file descriptor monitoring implementation is used.
     */
    struct io_uring fdmon_io_uring;
    AioHandlerSList submit_list;

    /* Completed requests whose CqeHandler has yet to run */
    CqeHandlerSimpleQ cqe_handler_ready_list;
#endif /* CONFIG_LINUX_IO_URING */

    /* cevent: everything below is cevent's own. */

    /* Reference count, replacing the GSource's. */
    unsigned refcnt;

    /* Which monitor the context was asked for at creation. */
    AioFdmonKind fdmon_kind;

    /*
     * Why io_uring is not in use, when it is not: the failing call (e.g.
     * "io_uring_queue_init") and its errno.  Empty/0 when io_uring is in
     * use, was never tried, or was torn down on purpose.
     */
    char fdmon_io_uring_error[96];
    int fdmon_io_uring_errno;
    /* Kernel features io_uring reported (IORING_FEAT_*), 0 if none. */
    unsigned fdmon_io_uring_features;
    /* The IORING_SETUP_* flags the ring was made with, 0 if none. */
    unsigned fdmon_io_uring_setup_flags;
    /*
     * aio_add_sqe() requests whose last completion has not been reaped,
     * and the process that made the ring (fdmon-io_uring.c waits for those
     * requests when it tears down its own ring, not one inherited by fork).
     */
    unsigned fdmon_io_uring_inflight;
    pid_t fdmon_io_uring_pid;

    /* Hooks installed by the embedder (aio_context_set_blocking_hooks). */
    AioBlockingBeginFn *blocking_begin;
    AioBlockingEndFn *blocking_end;
    void *blocking_opaque;

    /*
     * fd-based embedding (cevent's stand-in for the GSource): an epoll fd
     * watching every handler fd and the context notifier, -1 when the
     * context was never embedded (aio_get_g_source_fd).  gsource_armed:
     * whether notify_me holds 2 for an outer loop that may be waiting on
     * the fd without aio_ctx_prepare() (aio_gsource_arm);
     * gsource_poll_depth: aio_poll() calls in progress.
     */
    int gsource_fd;
    bool gsource_destroyed;
    int gsource_armed;
    unsigned gsource_poll_depth;

    AioContextStats stats;
};

/**
 * aio_context_new: Allocate a new AioContext.
 *
 * AioContext provide a mini event-loop that can be waited on
 * synchronously.  They also provide bottom halves, a service to execute a
 * piece of code as soon as possible.
 */
AioContext *aio_context_new(Error **errp);

/* cevent: aio_context_new with a choice of fd monitor. */
AioContext *aio_context_new_full(AioFdmonKind kind, Error **errp);

/**
 * aio_context_ref:
 * @ctx: The AioContext to operate on.
 *
 * Add a reference to an AioContext.
 */
void aio_context_ref(AioContext *ctx);

/**
 * aio_context_unref:
 * @ctx: The AioContext to operate on.
 *
 * Drop a reference to an AioContext; the last one finalizes it.
 * cevent: finalization releases handlers, BHs still queued and their
 * opaques instead of aborting (see PORTING.md).  Timers must have been
 * deleted by their owners first.
 */
void aio_context_unref(AioContext *ctx);

/**
 * aio_bh_schedule_oneshot_full: Allocate a new bottom half structure that
 * will run only once and as soon as possible.  Any thread.
 *
 * cevent: @release, if not NULL, is called with @opaque when the BH record
 * is freed (after it ran, or when the context is finalized first).
 */
void aio_bh_schedule_oneshot_full(AioContext *ctx, QEMUBHFunc *cb,
                                  void *opaque, const char *name,
                                  QEMUBHFunc *release);

#define aio_bh_schedule_oneshot(ctx, cb, opaque) \
    aio_bh_schedule_oneshot_full((ctx), (cb), (opaque), (stringify(cb)), NULL)

/**
 * aio_bh_new_full: Allocate a new bottom half structure.  Any thread.
 *
 * Bottom halves are lightweight callbacks whose invocation is guaranteed
 * to be wait-free, thread-safe and signal-safe.  The #QEMUBH structure
 * is opaque and must be allocated prior to its use.
 *
 * cevent: @release, if not NULL, is called with @opaque when the BH record
 * is really freed (by aio_bh_poll after qemu_bh_delete, or at finalization).
 * The re-entrancy guard of upstream is dropped (device-model feature).
 */
QEMUBH *aio_bh_new_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                        const char *name, QEMUBHFunc *release);

#define stringify(s) tostring(s)
#define tostring(s) #s

#define aio_bh_new(ctx, cb, opaque) \
    aio_bh_new_full((ctx), (cb), (opaque), (stringify(cb)), NULL)

/**
 * aio_notify: Force processing of pending events.
 *
 * Similar to signaling a condition variable, aio_notify forces
 * aio_poll to exit, so that the next call will re-examine pending events.
 * The caller of aio_notify will usually call aio_poll again very soon,
 * or go through another iteration of the GLib main loop.  Hence, aio_notify
 * also has the side effect of recalculating the sets of file descriptors
 * that the main loop waits for.
 *
 * Calling aio_notify is rarely necessary, because for example scheduling
 * a bottom half calls it already.
 */
void aio_notify(AioContext *ctx);

/**
 * aio_notify_accept: Acknowledge receiving an aio_notify.
 *
 * aio_notify() uses an EventNotifier in order to wake up a sleeping
 * aio_poll() or g_main_context_iteration().  Calls to aio_notify() are
 * usually rare, but the AioContext has to clear the EventNotifier on
 * every aio_poll() or g_main_context_iteration() in order to avoid
 * busy waiting.  This event_notifier_test_and_clear() cannot be done
 * using the usual aio_context_set_event_notifier(), because it must
 * be done before processing all events (file descriptors, bottom halves,
 * timers).
 *
 * aio_notify_accept() is an optimized event_notifier_test_and_clear()
 * that is specific to an AioContext's notifier; it is used internally
 * to clear the EventNotifier only if aio_notify() had been called.
 */
void aio_notify_accept(AioContext *ctx);

/**
 * aio_bh_call: Executes callback function of the specified BH.
 */
void aio_bh_call(QEMUBH *bh);

/**
 * aio_bh_poll: Poll bottom halves for an AioContext.
 *
 * These are internal functions used by the QEMU main loop.
 * And notice that multiple occurrences of aio_bh_poll cannot
 * be called concurrently
 */
int aio_bh_poll(AioContext *ctx);

/**
 * qemu_bh_schedule: Schedule a bottom half.
 *
 * Scheduling a bottom half interrupts the main loop and causes the
 * execution of the callback that was passed to qemu_bh_new.
 *
 * Bottom halves that are scheduled from a bottom half handler are instantly
 * invoked.  This can create an infinite loop if a bottom half handler
 * schedules itself.
 *
 * @bh: The bottom half to be scheduled.
 */
void qemu_bh_schedule(QEMUBH *bh);

/**
 * qemu_bh_cancel: Cancel execution of a bottom half.
 *
 * Canceling execution of a bottom half undoes the effect of calls to
 * qemu_bh_schedule without freeing its resources yet.  While cancellation
 * itself is also wait-free and thread-safe, it can of course race with the
 * loop that executes bottom halves unless you are holding the iothread
 * mutex.  This makes it mostly useless if you are not holding the mutex.
 *
 * @bh: The bottom half to be canceled.
 */
void qemu_bh_cancel(QEMUBH *bh);

/**
 * qemu_bh_delete: Cancel execution of a bottom half and free its resources.
 *
 * Deleting a bottom half frees the memory that was allocated for it by
 * qemu_bh_new.  It also implies canceling the bottom half if it was
 * scheduled.
 * This func is async. The bottom half will do the delete action at the
 * finial end.
 *
 * @bh: The bottom half to be deleted.
 */
void qemu_bh_delete(QEMUBH *bh);

/**
 * qemu_bh_schedule_idle: Schedule a bottom half in idle mode: it is not
 * progress and only forces a wake-up within 10 ms.
 */
void qemu_bh_schedule_idle(QEMUBH *bh);

/* cevent: is @bh scheduled (SCHEDULED set, DELETED not set)?  Any thread. */
bool qemu_bh_is_scheduled(QEMUBH *bh);

/*
 * cevent: hand a BH over to the loop: if it is scheduled, mark it ONESHOT so
 * that it runs once more and is then freed; otherwise delete it.  Used when
 * the last user reference to a scheduled BH goes away.
 */
void qemu_bh_orphan(QEMUBH *bh);

/* Return whether there are any pending callbacks from the GSource
 * attached to the AioContext, before g_poll is invoked.
 *
 * This is used internally in the implementation of the GSource.
 */
bool aio_prepare(AioContext *ctx);

/* Return whether there are any pending callbacks from the GSource
 * attached to the AioContext, after g_poll is invoked.
 *
 * This is used internally in the implementation of the GSource.
 */
bool aio_pending(AioContext *ctx);

/* Dispatch any pending callbacks from the GSource attached to the
 * AioContext.
 *
 * This is used internally in the implementation of the GSource.
 */
void aio_dispatch(AioContext *ctx);

/* Progress in completing AIO work to occur.  This can issue new pending
 * aio as a result of executing I/O completion or bh callbacks.
 *
 * Return whether any progress was made by executing AIO or bottom half
 * handlers.  If @blocking == true, this should always be true except
 * if someone called aio_notify.
 *
 * If there are no pending bottom halves, but there are pending AIO
 * operations, it may not be possible to make any progress without
 * blocking.  If @blocking is true, this function will wait until one
 * or more AIO events have completed, to ensure something has moved
 * before returning.
 */
bool aio_poll(AioContext *ctx, bool blocking);

/* Register a file descriptor and associated callbacks.  Behaves very
 * similarly to qemu_set_fd_handler.  Unlike qemu_set_fd_handler, these
 * callbacks will be invoked when using aio_poll().
 *
 * Code that invokes AIO completion functions should rely on this function
 * instead of qemu_set_fd_handler[2].
 */
void aio_set_fd_handler(AioContext *ctx,
                        int fd,
                        IOHandler *io_read,
                        IOHandler *io_write,
                        AioPollFn *io_poll,
                        IOHandler *io_poll_ready,
                        void *opaque);

/*
 * cevent: aio_set_fd_handler with @opaque_release, called with @opaque
 * when the handler node is really freed (after deferred deletion), never
 * with ctx->list_lock held.
 */
void aio_set_fd_handler_full(AioContext *ctx,
                             int fd,
                             IOHandler *io_read,
                             IOHandler *io_write,
                             AioPollFn *io_poll,
                             IOHandler *io_poll_ready,
                             void *opaque,
                             IOHandler *opaque_release);

/* Register an event notifier and associated callbacks.  Behaves very
 * similarly to event_notifier_set_handler.  Unlike event_notifier_set_handler,
 * these callbacks will be invoked when using aio_poll().
 *
 * Code that invokes AIO completion functions should rely on this function
 * instead of event_notifier_set_handler.
 */
void aio_set_event_notifier(AioContext *ctx,
                            EventNotifier *notifier,
                            EventNotifierHandler *io_read,
                            AioPollFn *io_poll,
                            EventNotifierHandler *io_poll_ready);

/* Set polling begin/end callbacks for an event notifier that has already
 * been registered with aio_set_event_notifier.  Do nothing if the event
 * notifier is not registered.
 */
void aio_set_event_notifier_poll(AioContext *ctx,
                                 EventNotifier *notifier,
                                 EventNotifierHandler *io_poll_begin,
                                 EventNotifierHandler *io_poll_end);

/*
 * cevent: the fd-based stand-in for aio_get_g_source().  Switches the
 * context to embedded use (aio_context_use_g_source) on the first call and
 * returns a descriptor that is readable whenever a handler fd is ready or
 * the context was notified while an outer loop may be waiting.  Two
 * protocols drive it: GLib's (aio_ctx_prepare(), wait on the fd,
 * aio_ctx_check(), aio_ctx_dispatch()) and the plain one (wait on the fd
 * for at most aio_compute_timeout() ns, then aio_poll(ctx, false)); see
 * aio_gsource_arm().  From the first call on, a non-blocking aio_poll()
 * always looks at the fds.
 */
int aio_get_g_source_fd(AioContext *ctx, Error **errp);

/* cevent: whether aio_get_g_source_fd() switched @ctx to embedded use. */
bool aio_context_uses_g_source(AioContext *ctx);

/*
 * cevent: the opaque of @fd's live handler when it was registered with
 * @opaque_release (aio_set_fd_handler_full), else NULL.
 */
void *aio_get_fd_handler_opaque(AioContext *ctx, int fd,
                                IOHandler *opaque_release);

/*
 * cevent: whether a handler taking part in polling has @io_poll.  Only
 * inside aio_poll() (from the blocking hooks).
 */
bool aio_context_polls_with(AioContext *ctx, AioPollFn *io_poll);

/* cevent: the IORING_FEAT_* flags of @ctx's ring, 0 without one. */
unsigned aio_context_io_uring_features(AioContext *ctx);

/* cevent: the IORING_SETUP_* flags of @ctx's ring, 0 without one. */
unsigned aio_context_io_uring_setup_flags(AioContext *ctx);

/* cevent: count a timer callback run by the embedder in the statistics. */
void aio_context_stats_timer_dispatch(AioContext *ctx);

/*
 * cevent: in a child right after fork(), detach @ctx from the kernel
 * objects it shares with the parent (see async.c).  @polling_here: the
 * forking thread is inside aio_poll() of @ctx; @poller_gone: another
 * thread, which the child lacks, was.
 */
void aio_context_fork_child(AioContext *ctx, bool polling_here,
                            bool poller_gone);

/*
 * The GSource callbacks, on an AioContext (cevent: no GSource).
 * aio_ctx_prepare() returns whether the context is ready without waiting
 * and stores the wait bound in *timeout (ms, -1 infinite, as GLib);
 * aio_ctx_check() is called after waiting on aio_get_g_source_fd() and
 * returns whether aio_ctx_dispatch() has work; aio_ctx_dispatch() runs it.
 */
bool aio_ctx_prepare(AioContext *ctx, int *timeout);
bool aio_ctx_check(AioContext *ctx);
bool aio_ctx_dispatch(AioContext *ctx);

/**
 * aio_timer_new_with_attrs:
 * @ctx: the aio context
 * @type: the clock type
 * @scale: the scale
 * @attributes: 0, or one to multiple OR'ed QEMU_TIMER_ATTR_<id> values
 *              to assign
 * @cb: the callback to call on timer expiry
 * @opaque: the opaque pointer to pass to the callback
 *
 * Allocate a new timer (with attributes) attached to the context @ctx.
 * The function is responsible for memory allocation.
 *
 * The preferred interface is aio_timer_init or aio_timer_init_with_attrs.
 * Use that unless you really need dynamic memory allocation.
 *
 * Returns: a pointer to the new timer
 */
static inline QEMUTimer *aio_timer_new_with_attrs(AioContext *ctx,
                                                  QEMUClockType type,
                                                  int scale, int attributes,
                                                  QEMUTimerCB *cb, void *opaque)
{
    return timer_new_full(&ctx->tlg, type, scale, attributes, cb, opaque);
}

static inline QEMUTimer *aio_timer_new(AioContext *ctx, QEMUClockType type,
                                       int scale,
                                       QEMUTimerCB *cb, void *opaque)
{
    return timer_new_full(&ctx->tlg, type, scale, 0, cb, opaque);
}

static inline void aio_timer_init_with_attrs(AioContext *ctx,
                                             QEMUTimer *ts, QEMUClockType type,
                                             int scale, int attributes,
                                             QEMUTimerCB *cb, void *opaque)
{
    timer_init_full(ts, &ctx->tlg, type, scale, attributes, cb, opaque);
}

static inline void aio_timer_init(AioContext *ctx,
                                  QEMUTimer *ts, QEMUClockType type,
                                  int scale,
                                  QEMUTimerCB *cb, void *opaque)
{
    timer_init_full(ts, &ctx->tlg, type, scale, 0, cb, opaque);
}

/**
 * aio_compute_timeout:
 * @ctx: the aio context
 *
 * Compute the timeout that a blocking aio_poll should use.
 */
int64_t aio_compute_timeout(AioContext *ctx);

/**
 * aio_context_setup:
 * @ctx: the aio context
 *
 * Initialize the aio context.
 */
void aio_context_setup(AioContext *ctx);

/**
 * aio_context_destroy:
 * @ctx: the aio context
 *
 * Destroy the aio context.
 */
void aio_context_destroy(AioContext *ctx);

/* Used internally, do not call outside AioContext code */
void aio_context_use_g_source(AioContext *ctx);

/**
 * aio_context_set_poll_params:
 * @ctx: the aio context
 * @max_ns: how long to busy poll for, in nanoseconds
 * @grow: polling time growth factor
 * @shrink: polling time shrink factor
 *
 * Poll mode can be disabled by setting poll_max_ns to 0.
 */
void aio_context_set_poll_params(AioContext *ctx, int64_t max_ns,
                                 int64_t grow, int64_t shrink, Error **errp);

/**
 * aio_context_set_aio_params:
 * @ctx: the aio context
 * @max_batch: maximum number of requests in a batch, 0 means that the
 *             engine will use its default
 */
void aio_context_set_aio_params(AioContext *ctx, int64_t max_batch);

/* cevent: embedder hooks and introspection. */
void aio_context_set_blocking_hooks(AioContext *ctx,
                                    AioBlockingBeginFn *begin,
                                    AioBlockingEndFn *end,
                                    void *opaque);

/*
 * The number of watched fds at which the poll/epoll pair moves to epoll
 * (>= 1; QEMU's is 64).  Home thread.
 */
void aio_context_set_epoll_threshold(AioContext *ctx, unsigned threshold);

/* The name of the fd monitor in use now: "poll", "epoll" or "io_uring". */
const char *aio_context_fdmon_name(AioContext *ctx);

void aio_context_get_stats(AioContext *ctx, AioContextStats *stats);

#ifdef CONFIG_LINUX_IO_URING
/**
 * aio_has_io_uring: whether aio_add_sqe() may be used on @ctx.
 *
 * cevent: upstream takes no argument and asks the current thread's
 * AioContext, and all of QEMU's contexts have io_uring or none do.  cevent
 * has no current context (PORTING.md) and its contexts may use different
 * fd monitors, so the context is an argument.
 */
static inline bool aio_has_io_uring(AioContext *ctx)
{
    return ctx->fdmon_ops->add_sqe != NULL;
}

/**
 * aio_add_sqe: queue an io_uring request on @ctx's ring.
 * @ctx: the context (cevent: an argument, see aio_has_io_uring())
 * @prep_sqe: fills in the sqe; must not set its user_data
 * @opaque: passed to @prep_sqe
 * @cqe_handler: the request's own handler; ->cb() runs on the context's
 *               thread inside aio_poll() or aio_dispatch(), with the cqe
 *
 * As upstream, one request posts one cqe: a multishot request would queue
 * its handler twice before it runs.
 *
 * The kernel sees the sqe at the latest in the next aio_poll().  Only from
 * the thread that runs @ctx, and only when aio_has_io_uring(@ctx).
 *
 * When the context is destroyed, requests still in flight are cancelled and
 * their handlers are not called.  cevent: destruction also waits until the
 * kernel has let go of them, so their buffers may be freed afterwards.
 */
void aio_add_sqe(AioContext *ctx,
                 void (*prep_sqe)(struct io_uring_sqe *sqe, void *opaque),
                 void *opaque, CqeHandler *cqe_handler);
#endif /* CONFIG_LINUX_IO_URING */

#endif /* QEMU_AIO_H */
