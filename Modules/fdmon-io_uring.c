/*
 * File descriptor monitoring with Linux io_uring
 *
 * Upstream: util/fdmon-io_uring.c, QEMU
 * d0f4aa7d50d485b1fb5ec8ab6f934e5df852ab07, and from QEMU 10.2 the
 * aio_add_sqe() API with its CqeHandlers and fdmon_ops->dispatch() (series
 * "aio: add the aio_add_sqe() io_uring API", v6, November 2025; see
 * Modules/PORTING.md).
 * Upstream licence: GNU GPL version 2 or (at your option) any later version
 * (SPDX-License-Identifier: GPL-2.0-or-later).  Written for cevent in our
 * own words; cevent is GPL-2.0-or-later.
 * Divergences: see Modules/PORTING.md.
 *
 * Why io_uring rather than poll(2) or epoll(7):
 *
 * 1. The completion queue is memory shared with the kernel, so readiness
 *    can be checked from userspace without a system call.  That lets the
 *    userspace polling loop of aio_poll() watch file descriptors too.
 *
 * 2. Submissions and completions travel together in one system call, which
 *    keeps the number of system calls down.
 *
 * 3. The cost of monitoring does not grow with the number of descriptors
 *    (as with epoll, unlike poll).
 *
 * 4. Timeouts have nanosecond resolution, so no extra system call is needed
 *    for precise timeouts (unlike epoll).
 *
 * Besides readiness, other code may submit requests of its own on the same
 * ring with aio_add_sqe() (QEMU 10.2): each carries a CqeHandler, whose
 * callback fdmon_io_uring_dispatch() runs once the request has completed.
 *
 * For readiness, three operations are used:
 *
 * 1. IORING_OP_POLL_ADD starts watching a descriptor (one shot).
 * 2. IORING_OP_POLL_REMOVE stops watching it.  A change of the event mask
 *    is done as a removal followed by a new POLL_ADD with the new mask.
 * 3. IORING_OP_TIMEOUT is queued before each blocking wait and completes
 *    early by itself as soon as any other completion arrives.
 *
 * In io_uring terms the submission queue is the "sq ring", the completion
 * queue the "cq ring", and their entries are "sqe"s and "cqe"s.
 *
 * Only fdmon_io_uring_wait() touches the rings.  Handler changes made by
 * fdmon_io_uring_update() (from any thread) only put the AioHandler on
 * ctx->submit_list; the next fdmon_io_uring_wait() turns that list into
 * POLL_ADD and/or POLL_REMOVE sqes.
 */

#include "qemu/osdep.h"
#include <poll.h>
#include "qemu/rcu_queue.h"
#include "qemu/fault-injection.h"
#include "aio-posix.h"

#ifdef CEVENT_FAULT_INJECTION
/*
 * cevent: test knob (see qemu/fault-injection.h).  Defined even without
 * io_uring support so that the binding links either way.
 */
int cevent_fault_io_uring_init_errno;
#endif

#ifdef CONFIG_LINUX_IO_URING

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif

/*
 * cevent: kernel UAPI values (Linux 6.15+) that liburing 2.3's headers do
 * not know about.
 */
#ifndef IORING_FEAT_NO_IOWAIT
#define IORING_FEAT_NO_IOWAIT (1U << 17)
#endif
#ifndef IORING_ENTER_NO_IOWAIT
#define IORING_ENTER_NO_IOWAIT (1U << 7)
#endif

enum {
    FDMON_IO_URING_ENTRIES  = 128, /* size of the sq ring (cq ring: 2x) */

    /* Bits of AioHandler::flags */
    FDMON_IO_URING_PENDING  = (1 << 0),
    FDMON_IO_URING_ADD      = (1 << 1),
    FDMON_IO_URING_REMOVE   = (1 << 2),

    /*
     * The kernel holds no POLL_ADD for this handler any more, so when
     * fill_sq_ring() dequeues it (a removal enqueued it: the only other
     * reason to enqueue an existing handler, a re-arm, is never combined
     * with this flag) it goes straight to ctx->deleted_aio_handlers with
     * no sqe.  Set by process_cqe_aio_handler() when a removal raced with
     * the completion (as in QEMU 10.2) or, cevent: when the handler was not
     * re-armed (closed fd).
     */
    FDMON_IO_URING_DELETE_AIO_HANDLER = (1 << 3),
};

/*
 * cevent: the ring's setup flags, first choice first; a kernel that does
 * not know a flag refuses the ring with EINVAL and the next choice is
 * tried.  Upstream sets none.
 *
 * Without IORING_SETUP_COOP_TASKRUN (Linux 5.19+), every completion caused
 * by another CPU (a peer's send() over loopback, say) interrupts this
 * loop's CPU to run the kernel's task work at once; with it the task work
 * waits until the thread next enters the kernel.  On a 10-connection echo
 * server that took cevent.Loop on io_uring from 0.67x to 0.94x of uvloop
 * (PORTING.md).
 * IORING_SETUP_TASKRUN_FLAG makes the kernel say, in the sq ring's flags
 * (IORING_SQ_TASKRUN), that such work is pending: fdmon_io_uring_need_wait()
 * looks at it, so that userspace polling, which never enters the kernel,
 * still sees completions at once rather than at the next timer tick.
 *
 * IORING_SETUP_DEFER_TASKRUN is not used: it requires SINGLE_ISSUER, and a
 * context may be created on one thread and run on another.
 */
static const unsigned fdmon_io_uring_setup_choices[] = {
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

static inline int poll_events_from_pfd(int pfd_events)
{
    return (pfd_events & G_IO_IN ? POLLIN : 0) |
           (pfd_events & G_IO_OUT ? POLLOUT : 0) |
           (pfd_events & G_IO_HUP ? POLLHUP : 0) |
           (pfd_events & G_IO_ERR ? POLLERR : 0);
}

static inline int pfd_events_from_poll(int poll_events)
{
    return (poll_events & POLLIN ? G_IO_IN : 0) |
           (poll_events & POLLOUT ? G_IO_OUT : 0) |
           (poll_events & POLLHUP ? G_IO_HUP : 0) |
           (poll_events & POLLERR ? G_IO_ERR : 0);
}

/* Get a free sqe to fill in.  Only on the thread that runs the context. */
static struct io_uring_sqe *get_sqe(AioContext *ctx)
{
    struct io_uring *ring = &ctx->fdmon_io_uring;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    int ret;

    if (likely(sqe)) {
        return sqe;
    }

    /* The sq ring is full: hand what is queued to the kernel first */
    do {
        ret = io_uring_submit(ring);
    } while (ret == -EINTR);

    assert(ret > 1);
    sqe = io_uring_get_sqe(ring);
    assert(sqe);
    return sqe;
}

/* Queue an AioHandler for submission; safe from any thread */
static void enqueue(AioHandlerSList *head, AioHandler *node, unsigned flags)
{
    unsigned old_flags;

    old_flags = qatomic_fetch_or(&node->flags, FDMON_IO_URING_PENDING | flags);
    if (!(old_flags & FDMON_IO_URING_PENDING)) {
        QSLIST_INSERT_HEAD_ATOMIC(head, node, node_submitted);
    }
}

/* Take the next AioHandler off a list moved out by fill_sq_ring() */
static AioHandler *dequeue(AioHandlerSList *head, unsigned *flags)
{
    AioHandler *node = QSLIST_FIRST(head);

    if (!node) {
        return NULL;
    }

    /* The list is private to fill_sq_ring() now: no atomics needed here */
    QSLIST_REMOVE_HEAD(head, node_submitted);

    /*
     * FDMON_IO_URING_REMOVE stays set on purpose.  It means two things:
     * fill_sq_ring() must queue a POLL_REMOVE, and process_cqe() must
     * retire the handler when its POLL_ADD completes.
     */
    *flags = qatomic_fetch_and(&node->flags, ~(FDMON_IO_URING_PENDING |
                                               FDMON_IO_URING_ADD));
    return node;
}

static void fdmon_io_uring_update(AioContext *ctx,
                                  AioHandler *old_node,
                                  AioHandler *new_node)
{
    if (new_node) {
        enqueue(&ctx->submit_list, new_node, FDMON_IO_URING_ADD);
    }

    if (old_node) {
        /*
         * Removal is the hard part: POLL_ADD and POLL_REMOVE complete
         * asynchronously, and the handler may only be freed once its
         * POLL_ADD has completed.  That completion may even be queued
         * already (the fd became ready) before our POLL_REMOVE goes out.
         *
         * So the handler is marked deleted at once, but not placed on
         * ctx->deleted_aio_handlers: its node_deleted link is made to look
         * inserted, which is all QLIST_IS_INSERTED() checks, so the rest
         * of the code treats it as deleted.
         *
         * process_cqe() moves it to the real ctx->deleted_aio_handlers
         * (to be freed) when the POLL_ADD completes.
         */
        assert(!QLIST_IS_INSERTED(old_node, node_deleted));
        old_node->node_deleted.le_prev = &old_node->node_deleted.le_next;

        enqueue(&ctx->submit_list, old_node, FDMON_IO_URING_REMOVE);
    }
}

static void fdmon_io_uring_add_sqe(AioContext *ctx,
        void (*prep_sqe)(struct io_uring_sqe *sqe, void *opaque),
        void *opaque, CqeHandler *cqe_handler)
{
    struct io_uring_sqe *sqe = get_sqe(ctx);

    prep_sqe(sqe, opaque);
    io_uring_sqe_set_data(sqe, cqe_handler);

    /*
     * cevent: count the request until its cqe is reaped, so that
     * fdmon_io_uring_destroy() knows whether the kernel may still use its
     * buffers.  Upstream has a trace point here; cevent has no trace events.
     */
    ctx->fdmon_io_uring_inflight++;
}

/*
 * Never called: its address marks the CqeHandler embedded in each
 * AioHandler, whose cqes process_cqe() handles itself.
 */
static void fdmon_special_cqe_handler(CqeHandler *cqe_handler G_GNUC_UNUSED)
{
}

static void add_poll_add_sqe(AioContext *ctx, AioHandler *node)
{
    struct io_uring_sqe *sqe = get_sqe(ctx);
    int events = poll_events_from_pfd(node->pfd.events);

    io_uring_prep_poll_add(sqe, node->pfd.fd, events);
    node->internal_cqe_handler.cb = fdmon_special_cqe_handler;
    io_uring_sqe_set_data(sqe, &node->internal_cqe_handler);
}

static void add_poll_remove_sqe(AioContext *ctx, AioHandler *node)
{
    struct io_uring_sqe *sqe = get_sqe(ctx);
    CqeHandler *cqe_handler = &node->internal_cqe_handler;

#ifdef LIBURING_HAVE_DATA64
    io_uring_prep_poll_remove(sqe, (uintptr_t)cqe_handler);
#else
    io_uring_prep_poll_remove(sqe, cqe_handler);
#endif
    io_uring_sqe_set_data(sqe, NULL);
}

/* Queue a timeout that completes early once any other cqe is posted */
static void add_timeout_sqe(AioContext *ctx, int64_t ns)
{
    /*
     * cevent: upstream points the sqe at a timespec on this function's
     * stack, which is gone by the time fdmon_io_uring_wait() submits the
     * sqe (the kernel reads it at submission).  A thread-local copy lives
     * long enough: the sqe is submitted by this same thread before the
     * wait returns, and a nested wait submits its own first.
     */
    static __thread struct __kernel_timespec ts;
    struct io_uring_sqe *sqe;

    ts.tv_sec = ns / NANOSECONDS_PER_SECOND;
    ts.tv_nsec = ns % NANOSECONDS_PER_SECOND;

    sqe = get_sqe(ctx);
    io_uring_prep_timeout(sqe, &ts, 1, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

/* Turn the handlers queued on ctx->submit_list into sqes */
static void fill_sq_ring(AioContext *ctx)
{
    AioHandlerSList submit_list;
    AioHandler *node;
    unsigned flags;

    QSLIST_MOVE_ATOMIC(&submit_list, &ctx->submit_list);

    while ((node = dequeue(&submit_list, &flags))) {
        /*
         * cevent: nothing of this handler is left in the kernel (see
         * FDMON_IO_URING_DELETE_AIO_HANDLER), and it is being removed:
         * retire it now, without any sqe.  It is already marked deleted, so
         * nobody else can queue it again.
         */
        if (flags & FDMON_IO_URING_DELETE_AIO_HANDLER) {
            assert(QLIST_IS_INSERTED(node, node_deleted));
            QLIST_INSERT_HEAD_RCU(&ctx->deleted_aio_handlers, node,
                                  node_deleted);
            continue;
        }

        /* If both bits are set, the add must go before the remove */
        if (flags & FDMON_IO_URING_ADD) {
            add_poll_add_sqe(ctx, node);
        }
        if (flags & FDMON_IO_URING_REMOVE) {
            add_poll_remove_sqe(ctx, node);
        }
    }
}

static bool process_cqe_aio_handler(AioContext *ctx,
                                    AioHandlerList *ready_list,
                                    AioHandler *node,
                                    struct io_uring_cqe *cqe)
{
    unsigned flags;
    int revents;

    /*
     * Only a POLL_ADD completion can retire a handler.  Racing with
     * enqueue() is harmless: clearing FDMON_IO_URING_REMOVE before its
     * POLL_REMOVE is submitted is fine.
     */
    flags = qatomic_fetch_and(&node->flags, ~FDMON_IO_URING_REMOVE);
    if (flags & FDMON_IO_URING_REMOVE) {
        /*
         * cevent: if the removal was queued after the last fill_sq_ring()
         * (PENDING set), the handler sits on ctx->submit_list (or is being
         * pushed there by another thread).  Upstream puts it on the deleted
         * list anyway, so it can be freed at the end of aio_poll() and then
         * be dequeued, freed memory, by the next fill_sq_ring().  Leave the
         * retirement to fill_sq_ring() instead.  No other thread changes
         * flags once REMOVE is set (the handler counts as deleted, so it is
         * never queued again) and dequeue() runs on this thread, so setting
         * the bit in a second step is safe.
         */
        if (flags & FDMON_IO_URING_PENDING) {
            qatomic_or(&node->flags, FDMON_IO_URING_DELETE_AIO_HANDLER);
            return false;
        }
        QLIST_INSERT_HEAD_RCU(&ctx->deleted_aio_handlers, node, node_deleted);
        return false;
    }

    /*
     * cevent: upstream decodes cqe->res as poll bits even when it is a
     * negative errno and always re-arms, which spins on a closed fd.
     */
    if (cqe->res == -ECANCELED) {
        /*
         * The kernel dropped the poll although we did not ask for it: this
         * happens when the thread that submitted it has exited (io_uring
         * ties requests to their submitter), e.g. when another thread now
         * runs the loop.  Re-arm from this thread, silently: a level
         * triggered POLL_ADD reports the fd again if it is ready.
         * (cevent: through submit_list, see the re-arm below.)
         */
        enqueue(&ctx->submit_list, node, FDMON_IO_URING_ADD);
        return false;
    }
    if (cqe->res < 0) {
        /* Like poll's POLLERR: both the read and write callbacks run */
        revents = G_IO_ERR;
    } else {
        revents = pfd_events_from_poll(cqe->res);
    }

    aio_add_ready_handler(ready_list, node, revents);

    if (cqe->res == -EBADF) {
        /*
         * cevent: the fd was closed under us; a new POLL_ADD would fail
         * the same way at once.  Leave it disarmed; its removal, when it
         * comes, retires it without a POLL_REMOVE
         * (FDMON_IO_URING_DELETE_AIO_HANDLER).
         */
        qatomic_or(&node->flags, FDMON_IO_URING_DELETE_AIO_HANDLER);
        return true;
    }

    /*
     * POLL_ADD fires only once: arm it again.
     *
     * cevent: upstream puts the re-arm sqe in the sq ring right here.
     * With more than FDMON_IO_URING_ENTRIES ready handlers, get_sqe() then
     * submits while the cq ring is still being reaped and before the
     * handlers ran, so the re-arms of fds that are still ready complete at
     * once: they are reaped again in this same loop (and re-armed again),
     * or land after the handler drained its fd and report it ready when it
     * is not, and a handler can end up with two POLL_ADDs in flight.
     * Queue the re-arm on submit_list instead: fill_sq_ring() turns it
     * into an sqe at the next wait, after the handlers ran.
     */
    enqueue(&ctx->submit_list, node, FDMON_IO_URING_ADD);
    return true;
}

/*
 * cevent: @cqe, just reaped, may end an aio_add_sqe() request: count it off
 * ctx->fdmon_io_uring_inflight (see fdmon_io_uring_add_sqe()).  The cqes of
 * timeouts, POLL_REMOVEs and cancellations (no handler) and of AioHandlers'
 * POLL_ADDs are not requests.
 */
static void count_request_reaped(AioContext *ctx, CqeHandler *cqe_handler,
                                 struct io_uring_cqe *cqe)
{
    if (cqe_handler && cqe_handler->cb != fdmon_special_cqe_handler &&
        !(cqe->flags & IORING_CQE_F_MORE)) {
        ctx->fdmon_io_uring_inflight--;
    }
}

/* Returns true if a handler became ready */
static bool process_cqe(AioContext *ctx,
                        AioHandlerList *ready_list,
                        struct io_uring_cqe *cqe)
{
    CqeHandler *cqe_handler = io_uring_cqe_get_data(cqe);

    /* Timeouts and POLL_REMOVEs carry a zero user_data */
    if (!cqe_handler) {
        return false;
    }

    /* An AioHandler's POLL_ADD: it needs ready_list and has a result */
    if (cqe_handler->cb == fdmon_special_cqe_handler) {
        AioHandler *node = container_of(cqe_handler, AioHandler,
                                        internal_cqe_handler);
        return process_cqe_aio_handler(ctx, ready_list, node, cqe);
    }

    count_request_reaped(ctx, cqe_handler, cqe);

    cqe_handler->cqe = *cqe;

    /* fdmon_io_uring_dispatch() runs the handler later */
    QSIMPLEQ_INSERT_TAIL(&ctx->cqe_handler_ready_list, cqe_handler, next);
    return false;
}

static int process_cq_ring(AioContext *ctx, AioHandlerList *ready_list)
{
    struct io_uring *ring = &ctx->fdmon_io_uring;
    struct io_uring_cqe *cqe;
    unsigned num_cqes = 0;
    unsigned num_ready = 0;
    unsigned head;

    io_uring_for_each_cqe(ring, head, cqe) {
        if (process_cqe(ctx, ready_list, cqe)) {
            num_ready++;
        }

        num_cqes++;
    }

    io_uring_cq_advance(ring, num_cqes);

    /*
     * cevent: completions that did not fit in the cq ring (more than
     * twice FDMON_IO_URING_ENTRIES at once: many ready fds, or many
     * handler changes between two waits) wait in the kernel until the
     * ring is entered again.  Upstream leaves them there, and a
     * non-blocking aio_poll() never enters the kernel for them, so those
     * events (and the retirement of removed handlers) could be held back
     * indefinitely.  Flush and reap them now.
     */
    while (num_cqes && io_uring_cq_has_overflow(ring)) {
        if (io_uring_get_events(ring) < 0) {
            break;
        }
        num_cqes = 0;
        io_uring_for_each_cqe(ring, head, cqe) {
            if (process_cqe(ctx, ready_list, cqe)) {
                num_ready++;
            }
            num_cqes++;
        }
        io_uring_cq_advance(ring, num_cqes);
    }
    return num_ready;
}

/* Run the CqeHandlers of completed requests */
static bool fdmon_io_uring_dispatch(AioContext *ctx)
{
    CqeHandlerSimpleQ *ready_list = &ctx->cqe_handler_ready_list;
    bool progress = false;

    /*
     * cevent: upstream brackets the loop with defer_call_begin()/end() so
     * that handlers can batch work; cevent has no defer_call (PORTING.md).
     * A handler that runs a nested aio_poll() lets that one go on with the
     * rest of the list.
     */
    while (!QSIMPLEQ_EMPTY(ready_list)) {
        CqeHandler *cqe_handler = QSIMPLEQ_FIRST(ready_list);

        QSIMPLEQ_REMOVE_HEAD(ready_list, next);

        cqe_handler->cb(cqe_handler);
        progress = true;
    }

    return progress;
}

/*
 * cevent: whether completions wait as task work that only entering the
 * kernel runs (IORING_SETUP_COOP_TASKRUN with IORING_SETUP_TASKRUN_FLAG).
 */
static bool fdmon_io_uring_taskrun_pending(AioContext *ctx)
{
    struct io_uring *ring = &ctx->fdmon_io_uring;

    return IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN;
}

/*
 * cevent: io_uring_submit_and_wait(), but when the kernel supports it
 * (IORING_FEAT_NO_IOWAIT, Linux 6.15+) the wait is entered with
 * IORING_ENTER_NO_IOWAIT so that an idle event loop is not accounted as
 * 100% iowait.  liburing 2.3 has no helper for the flag, so submission and
 * waiting are two steps.  Returns a negative errno on failure.
 */
static int fdmon_io_uring_submit_and_wait(AioContext *ctx, unsigned wait_nr)
{
    struct io_uring *ring = &ctx->fdmon_io_uring;
    int ret;

    /*
     * A non-blocking call (wait_nr 0) still runs the task work that holds
     * completions back, as fdmon_io_uring_need_wait() promised: liburing's
     * submission enters the kernel with GETEVENTS whenever the kernel
     * flags IORING_SQ_TASKRUN, even with nothing to submit.
     */
    if (!(ring->features & IORING_FEAT_NO_IOWAIT)) {
        return io_uring_submit_and_wait(ring, wait_nr);
    }

    ret = io_uring_submit(ring);
    if (ret < 0 || wait_nr == 0 || io_uring_cq_ready(ring)) {
        return ret;
    }
    return io_uring_enter(ring->ring_fd, 0, wait_nr,
                          IORING_ENTER_GETEVENTS | IORING_ENTER_NO_IOWAIT,
                          NULL);
}

static int fdmon_io_uring_wait(AioContext *ctx, AioHandlerList *ready_list,
                               int64_t timeout)
{
    unsigned wait_nr = 1; /* wait for at least one cqe */
    int ret;

    if (timeout == 0) {
        wait_nr = 0; /* do not block */
    } else if (timeout > 0) {
        add_timeout_sqe(ctx, timeout);
    }

    fill_sq_ring(ctx);

    ret = fdmon_io_uring_submit_and_wait(ctx, wait_nr);

    if (ret == -EINTR) {
        /*
         * cevent: upstream retries forever, so a signal could never
         * interrupt a blocking aio_poll().  Stop waiting instead; the sqes
         * were consumed by the kernel before the wait began.  Whatever has
         * completed is still processed; with nothing ready, report the
         * interruption like fdmon-poll does (-1, errno EINTR).
         */
        ret = process_cq_ring(ctx, ready_list);
        if (ret == 0) {
            errno = EINTR;
            return -1;
        }
        return ret;
    }

    if (ret < 0) {
        /* cevent: upstream only asserts */
        fprintf(stderr, "cevent: fdmon-io_uring: submit and wait: %s\n",
                strerror(-ret));
        abort();
    }

    return process_cq_ring(ctx, ready_list);
}

static bool fdmon_io_uring_need_wait(AioContext *ctx)
{
    /* Completions waiting to be processed? */
    if (io_uring_cq_ready(&ctx->fdmon_io_uring)) {
        return true;
    }

    /* cevent: or waiting in the kernel for room in the cq ring? */
    if (io_uring_cq_has_overflow(&ctx->fdmon_io_uring)) {
        return true;
    }

    /* cevent: or held back as task work (see fdmon_io_uring_setup_choices) */
    if (fdmon_io_uring_taskrun_pending(ctx)) {
        return true;
    }

    /*
     * Sqes waiting to be submitted, or handler changes waiting to become
     * sqes?  cevent: upstream returns true for these, so after every
     * dispatch (whose re-arm is such a change) the caller neither polls nor
     * skips the wait, and a context woken through io_uring never enters
     * poll mode.  Submit them here without waiting instead: what completes
     * at once makes the answer true, as above.
     */
    if (io_uring_sq_ready(&ctx->fdmon_io_uring) ||
        !QSLIST_EMPTY_RCU(&ctx->submit_list)) {
        int ret;

        fill_sq_ring(ctx);
        ret = io_uring_submit(&ctx->fdmon_io_uring);
        if (ret < 0) {
            return true;        /* let ->wait() submit again and report */
        }
        return io_uring_cq_ready(&ctx->fdmon_io_uring) != 0 ||
               fdmon_io_uring_taskrun_pending(ctx);
    }

    return false;
}

static const FDMonOps fdmon_io_uring_ops = {
    .update = fdmon_io_uring_update,
    .wait = fdmon_io_uring_wait,
    .need_wait = fdmon_io_uring_need_wait,
    .dispatch = fdmon_io_uring_dispatch,
    .add_sqe = fdmon_io_uring_add_sqe,
};

/* cevent: record on the context why io_uring cannot be used */
static void fdmon_io_uring_set_error(AioContext *ctx, int err,
                                     const char *what)
{
    ctx->fdmon_io_uring_errno = err;
    snprintf(ctx->fdmon_io_uring_error, sizeof(ctx->fdmon_io_uring_error),
             "%s: %s", what, strerror(err));
}

bool fdmon_io_uring_setup(AioContext *ctx)
{
    /* cevent: the operations this file relies on, checked below */
    static const struct {
        int op;
        const char *name;
    } needed_ops[] = {
        { IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD" },
        { IORING_OP_POLL_REMOVE, "IORING_OP_POLL_REMOVE" },
        { IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT" },
    };
    struct io_uring_probe *probe;
    char what[64];
    size_t i;
    int ret;

    /* cevent: the first setup flags the kernel accepts (see their table) */
    for (i = 0; i < ARRAY_SIZE(fdmon_io_uring_setup_choices); i++) {
#ifdef CEVENT_FAULT_INJECTION
        /* cevent: pretend io_uring_queue_init() failed, for tests */
        ret = -qatomic_read(&cevent_fault_io_uring_init_errno);
        if (ret != 0) {
            break;
        }
#endif
        ret = io_uring_queue_init(FDMON_IO_URING_ENTRIES,
                                  &ctx->fdmon_io_uring,
                                  fdmon_io_uring_setup_choices[i]);
        if (ret != -EINVAL) {
            break;
        }
    }
    if (ret != 0) {
        /* cevent: say why (e.g. EPERM under a seccomp filter or sysctl) */
        fdmon_io_uring_set_error(ctx, ret < 0 ? -ret : EIO,
                                 "io_uring_queue_init");
        return false;
    }

    /*
     * cevent: a ring may exist without the operations we need (old kernels,
     * restricted rings); check rather than fail later in the wait.
     */
    probe = io_uring_get_probe_ring(&ctx->fdmon_io_uring);
    if (!probe) {
        io_uring_queue_exit(&ctx->fdmon_io_uring);
        fdmon_io_uring_set_error(ctx, EOPNOTSUPP, "io_uring_get_probe_ring");
        return false;
    }
    for (i = 0; i < ARRAY_SIZE(needed_ops); i++) {
        if (!io_uring_opcode_supported(probe, needed_ops[i].op)) {
            io_uring_free_probe(probe);
            io_uring_queue_exit(&ctx->fdmon_io_uring);
            snprintf(what, sizeof(what), "missing opcode %s",
                     needed_ops[i].name);
            fdmon_io_uring_set_error(ctx, EOPNOTSUPP, what);
            return false;
        }
    }
    io_uring_free_probe(probe);

    /* cevent: in use: no error; remember what the kernel offers */
    ctx->fdmon_io_uring_errno = 0;
    ctx->fdmon_io_uring_error[0] = '\0';
    ctx->fdmon_io_uring_features = ctx->fdmon_io_uring.features;
    ctx->fdmon_io_uring_setup_flags = ctx->fdmon_io_uring.flags;
    ctx->fdmon_io_uring_inflight = 0;
    ctx->fdmon_io_uring_pid = getpid();

    QSLIST_INIT(&ctx->submit_list);
    QSIMPLEQ_INIT(&ctx->cqe_handler_ready_list);
    ctx->fdmon_ops = &fdmon_io_uring_ops;
    return true;
}

/*
 * cevent: before the ring goes, cancel the aio_add_sqe() requests still in
 * flight and reap their cqes, without running their handlers.  Upstream
 * only drops them and leaves them to the kernel's teardown of the ring,
 * part of which runs after close() has returned (work already running on
 * an io-wq thread finishes there).  Waiting here means that once the
 * context is destroyed the kernel no longer touches those requests'
 * buffers.  Not in a child after fork(): those requests are the parent's.
 */
static void fdmon_io_uring_cancel_requests(AioContext *ctx)
{
    struct io_uring *ring = &ctx->fdmon_io_uring;
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;
    int ret;

    if (!ctx->fdmon_io_uring_inflight || ctx->fdmon_io_uring_pid != getpid()) {
        return;
    }

    sqe = get_sqe(ctx);
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data(sqe, NULL);

    while (ctx->fdmon_io_uring_inflight) {
        struct __kernel_timespec ts = { .tv_sec = 5 };
        unsigned head, n = 0;

        ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (ret == -EINTR) {
            continue;
        }
        if (ret < 0) {
            fprintf(stderr, "cevent: fdmon-io_uring: %u request(s) still in "
                    "flight at close: %s\n", ctx->fdmon_io_uring_inflight,
                    strerror(-ret));
            return;
        }
        io_uring_for_each_cqe(ring, head, cqe) {
            count_request_reaped(ctx, io_uring_cqe_get_data(cqe), cqe);
            n++;
        }
        io_uring_cq_advance(ring, n);
    }
}

void fdmon_io_uring_destroy(AioContext *ctx)
{
    if (ctx->fdmon_ops == &fdmon_io_uring_ops) {
        AioHandler *node;

        fdmon_io_uring_cancel_requests(ctx);
        io_uring_queue_exit(&ctx->fdmon_io_uring);

        /*
         * cevent: upstream asserts that no CqeHandler waits to run.  A
         * context may be closed between the reaping and the dispatch of a
         * completion (fork, or a close from a callback); drop them, as
         * requests in flight are dropped.
         */
        QSIMPLEQ_INIT(&ctx->cqe_handler_ready_list);
        ctx->fdmon_io_uring_inflight = 0;

        /* cevent: no ring now, so no features or setup flags to report */
        ctx->fdmon_io_uring_features = 0;
        ctx->fdmon_io_uring_setup_flags = 0;

        /* Handlers still queued for removal go to the deleted list */
        while ((node = QSLIST_FIRST_RCU(&ctx->submit_list))) {
            unsigned flags = qatomic_fetch_and(&node->flags,
                    ~(FDMON_IO_URING_PENDING |
                      FDMON_IO_URING_ADD |
                      FDMON_IO_URING_REMOVE |
                      FDMON_IO_URING_DELETE_AIO_HANDLER));

            /* cevent: DELETE_AIO_HANDLER also means "being removed" */
            if (flags & (FDMON_IO_URING_REMOVE |
                         FDMON_IO_URING_DELETE_AIO_HANDLER)) {
                QLIST_INSERT_HEAD_RCU(&ctx->deleted_aio_handlers, node,
                                      node_deleted);
            }

            /*
             * cevent: plain removal (upstream: an RCU variant cevent does
             * not have); the context is not used concurrently here.
             */
            QSLIST_REMOVE_HEAD(&ctx->submit_list, node_submitted);
        }

        /*
         * cevent: a handler whose POLL_REMOVE was submitted but whose
         * POLL_ADD completion was never reaped is on neither list: it is
         * only marked deleted by the fake link of fdmon_io_uring_update().
         * Upstream leaks it; the ring is gone now, so retire it properly.
         */
        QLIST_FOREACH(node, &ctx->aio_handlers, node) {
            if (node->node_deleted.le_prev == &node->node_deleted.le_next) {
                qatomic_set(&node->flags, 0);
                QLIST_INSERT_HEAD_RCU(&ctx->deleted_aio_handlers, node,
                                      node_deleted);
            }
        }

        ctx->fdmon_ops = &fdmon_poll_ops;
    }
}

#endif /* CONFIG_LINUX_IO_URING */
