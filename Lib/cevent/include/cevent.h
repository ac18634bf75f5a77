/*
 * cevent.h: the C API of cevent, for other C extensions.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * Usage (in a consumer's module init, with the GIL held):
 *
 *     #include "cevent.h"
 *     if (CEvent_Import() < 0) {
 *         return NULL;
 *     }
 *     CEvent_Context *ctx = CEvent_API->Context_AsContext(py_context);
 *
 * Find this header with cevent.get_include().
 *
 * Versioning: CEvent_CAPI starts with abi_version and struct_size.  The
 * struct is append-only and never reordered; abi_version changes only for a
 * breaking change.  CEvent_Import() checks both.
 *
 * Lifetimes: what a consumer registers on a context (fd handlers, BHs,
 * timers) must be removed, deleted or freed before the Python AioContext
 * is closed or collected; keep a reference to the AioContext object for as
 * long as you use its CEvent_Context.  In detail:
 *
 *   - fd handlers: remove them (set_fd_handler with io_read, io_write and
 *     io_poll all NULL).  cevent never frees or touches the opaque of a C
 *     handler; it is the consumer's.  A removal made from the home thread
 *     outside poll() lets the consumer free the opaque at once; after a
 *     removal made from another thread, the home thread may still be
 *     inside a callback or the busy-poll spin of the old registration, so
 *     keep the opaque alive until that thread has completed one more
 *     iteration (e.g. until a BH scheduled after the removal has run).
 *   - BHs: bh_delete() each one.  A deleted BH never runs again and is
 *     freed by the loop, or by close(); the BH pointer must not be used
 *     after bh_delete().  Oneshot BHs free themselves; one still queued
 *     when the context closes is dropped without running.
 *   - timers: timer_free() each one, armed or not, before the context is
 *     closed.  close() frees the context's timer lists: an armed C timer
 *     then trips an assertion (debug builds) or is left pointing into
 *     freed memory (release builds), and a later timer_mod_ns(),
 *     timer_del() or timer_free() on any timer of that context is a
 *     use-after-free.  This differs from cevent.Timer objects, which
 *     close() detaches by itself.
 *   - io_uring requests (add_sqe): the CEvent_CqeHandler and whatever the
 *     request points at (buffers) must stay valid until its cb has run --
 *     or until the context is closed: close() cancels the requests still
 *     in flight, waits until the kernel has let go of them, and never runs
 *     their cb.  After close() returns, their memory may be freed.  In a
 *     child after fork() the parent's requests are dropped without a cb.
 *
 * Threads: the CEvent_Context is only a pointer; calls from other threads
 * must be finished before the context is closed (the Python object's
 * home thread closes it, and nothing synchronizes with those calls).
 *
 * Callbacks (CEvent_IOHandler, CEvent_AioPollFn, CEvent_BHFunc,
 * CEvent_TimerCB, CEvent_CqeFunc) run on the context's home thread from
 * inside AioContext.poll(), with the GIL held -- except io_poll functions,
 * which run in the busy-poll spin and may be called WITHOUT the GIL: they
 * must not touch Python objects.
 */
#ifndef CEVENT_H
#define CEVENT_H

#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CEVENT_CAPSULE_NAME "cevent._cevent._C_API"

/*
 * The ABI version this header describes.  A consumer may define
 * CEVENT_ABI_VERSION before including this header (cevent's own tests do,
 * to check the mismatch error of CEvent_Import()); the provider never
 * does, so the capsule always carries the header's version.
 */
#ifndef CEVENT_ABI_VERSION
#define CEVENT_ABI_VERSION 1
#elif defined(CEVENT_PROVIDER)
#error "the provider (cevent._cevent) must not override CEVENT_ABI_VERSION"
#endif

/* Opaque: QEMU's AioContext, QEMUBH and QEMUTimer. */
typedef struct CEvent_Context CEvent_Context;
typedef struct CEvent_BH CEvent_BH;
typedef struct CEvent_Timer CEvent_Timer;

/* Signature-compatible with QEMU's IOHandler and AioPollFn. */
typedef void CEvent_IOHandler(void *opaque);
typedef bool CEvent_AioPollFn(void *opaque);
typedef void CEvent_BHFunc(void *opaque);
typedef void CEvent_TimerCB(void *opaque);

/*
 * io_uring requests (QEMU's aio_add_sqe() and CqeHandler).  The sqe is the
 * kernel's struct io_uring_sqe (<linux/io_uring.h>, or liburing's copy);
 * CEvent_PrepSqe fills it in (liburing's io_uring_prep_*() or by hand) and
 * must not set user_data.
 */
struct io_uring_sqe;
typedef void CEvent_PrepSqe(struct io_uring_sqe *sqe, void *opaque);

typedef struct CEvent_CqeHandler CEvent_CqeHandler;
typedef void CEvent_CqeFunc(CEvent_CqeHandler *handler);

/*
 * One per request in flight, owned by the consumer (embed it in a larger
 * struct for more state).  Set cb before add_sqe(); res and flags are the
 * completion's (cqe->res: a result or a negative errno; cqe->flags:
 * IORING_CQE_F_*), filled in before cb runs.  A handler may be reused for a
 * new request once its cb has been called (also from inside cb).
 */
struct CEvent_CqeHandler {
    CEvent_CqeFunc *cb;
    int32_t res;
    uint32_t flags;
    void *cevent_private[6];    /* cevent's; do not touch */
};

/*
 * The user_data of the request made with @handler, for the requests that
 * name another one by it (IORING_OP_ASYNC_CANCEL: io_uring_prep_cancel64()).
 * Valid from add_sqe() until the handler's cb has run.
 */
#define CEVENT_SQE_USER_DATA(handler) \
    ((uint64_t)(uintptr_t)(void *)(handler)->cevent_private)

/* Clock ids, as cevent.CLOCK_* */
#define CEVENT_CLOCK_REALTIME 0
#define CEVENT_CLOCK_VIRTUAL  1
#define CEVENT_CLOCK_HOST     2

typedef struct {
    unsigned int abi_version;   /* CEVENT_ABI_VERSION */
    unsigned int struct_size;   /* sizeof(CEvent_CAPI) of the provider */

    /* ---- the context ---- */

    /*
     * The CEvent_Context of a cevent.AioContext.  GIL required; any
     * thread.  Returns NULL with TypeError (not an AioContext) or
     * ValueError (closed) set.  Borrowed: valid while the AioContext
     * object is open; the caller keeps a reference to the object.
     */
    CEvent_Context *(*Context_AsContext)(PyObject *obj);

    /* ---- C-level fd handlers ---- */

    /*
     * aio_set_fd_handler.  Any thread; no GIL needed (the GIL may be held
     * or not).  All of io_read, io_write and io_poll NULL removes the
     * handler of fd (no error if there is none).  io_poll without
     * io_poll_ready is ignored, as in QEMU.  A registration replaces any
     * earlier one of fd, Python or C.  The opaque stays the caller's (see
     * Lifetimes above).
     *
     * io_read, io_write and io_poll_ready run on the home thread inside
     * poll(), with the GIL held.  io_poll runs in the busy-poll spin,
     * usually WITHOUT the GIL (the GIL is kept only while a Python io_poll
     * is registered on the same context): it must not touch Python
     * objects, must not block, and should take tens of nanoseconds.
     * io_poll returning true runs io_poll_ready; the fd becoming ready
     * while the loop waits on it runs io_read/io_write.  As in QEMU, a
     * registration joins the busy-poll list only once it has been
     * dispatched (its fd became ready once, or io_poll found it ready
     * earlier); io_uring drops it from the list again after 7 s without
     * being ready.  Polling is adaptive (and off by default): a producer
     * that only writes memory must make the fd ready too, at least once
     * and whenever the loop may be blocked in the fd monitor.
     */
    void (*set_fd_handler)(CEvent_Context *ctx, int fd,
                           CEvent_IOHandler *io_read,
                           CEvent_IOHandler *io_write,
                           CEvent_AioPollFn *io_poll,
                           CEvent_IOHandler *io_poll_ready,
                           void *opaque);

    /* ---- bottom halves; cb runs on the home thread with the GIL ---- */

    /* aio_bh_new: any thread, no GIL needed.  Never NULL. */
    CEvent_BH *(*bh_new)(CEvent_Context *ctx, CEvent_BHFunc *cb,
                         void *opaque);
    /* qemu_bh_schedule: any thread, no GIL needed, async-signal-unsafe. */
    void (*bh_schedule)(CEvent_BH *bh);
    /* qemu_bh_cancel: any thread, no GIL needed (racy against the loop
     * when called off the home thread, as in QEMU). */
    void (*bh_cancel)(CEvent_BH *bh);
    /* qemu_bh_delete: any thread, no GIL needed.  The BH will not run
     * again; the loop frees it later (or close() does).  Do not use the
     * pointer afterwards. */
    void (*bh_delete)(CEvent_BH *bh);
    /* aio_bh_schedule_oneshot: any thread, no GIL needed.  cb(opaque)
     * runs once; the BH frees itself. */
    void (*bh_schedule_oneshot)(CEvent_Context *ctx, CEvent_BHFunc *cb,
                                void *opaque);

    /* ---- timers; cb runs on the home thread with the GIL ---- */

    /*
     * aio_timer_new: any thread, no GIL needed.  clock is CEVENT_CLOCK_*,
     * scale the ns per unit (> 0).  Returns NULL (no exception set) for a
     * bad clock or scale.  The timer is not armed; timer_free() it before
     * the context is closed (see Lifetimes above).
     */
    CEvent_Timer *(*timer_new)(CEvent_Context *ctx, int clock, int scale,
                               CEvent_TimerCB *cb, void *opaque);
    /* timer_mod_ns (absolute ns on the timer's clock, whatever its scale):
     * any thread, no GIL needed; wakes the loop when the deadline moves
     * earlier. */
    void (*timer_mod_ns)(CEvent_Timer *ts, int64_t expire_time_ns);
    /* timer_del: disarm (it can be armed again).  Any thread, no GIL. */
    void (*timer_del)(CEvent_Timer *ts);
    /* timer_free: disarm and free; NULL is a no-op.  No GIL needed; call
     * it where no other thread can still use the timer (not from its own
     * callback). */
    void (*timer_free)(CEvent_Timer *ts);
    /* qemu_clock_get_ns: any thread, no GIL needed; -1 for a bad clock.
     * CEVENT_CLOCK_VIRTUAL is cevent.clock_ns(cevent.CLOCK_VIRTUAL). */
    int64_t (*clock_get_ns)(int clock);

    /* ---- wake-up ---- */

    /* aio_notify: make a blocked or spinning poll() return.  Any thread,
     * no GIL needed, async-signal-unsafe. */
    void (*notify)(CEvent_Context *ctx);

    /*
     * ---- io_uring requests (appended; see Versioning) ----
     * A consumer built with this header gets an ImportError from
     * CEvent_Import() against an older cevent that lacks them.
     */

    /*
     * Whether ctx's fd monitor is io_uring, i.e. whether add_sqe() works on
     * it: 1 or 0.  Any thread, no GIL needed.  0 for contexts made with
     * backend "poll" or "epoll", or when io_uring is unavailable (see
     * cevent.unavailable_backends()); it never changes for an open context,
     * except to 0 in a child after fork().
     */
    int (*has_io_uring)(CEvent_Context *ctx);

    /*
     * aio_add_sqe: queue one request on ctx's ring.  prep_sqe(sqe, opaque)
     * is called at once, to fill in the sqe (it must not set user_data).
     * The kernel sees the request at the latest in the next poll(); its
     * handler's cb runs once, inside a later poll() on the home thread,
     * with the GIL held (never from inside add_sqe).  One request, one
     * completion: no multishot requests (IORING_CQE_F_MORE).
     *
     * Only from the context's home thread with the GIL held, outside
     * poll() or from one of the context's callbacks: the ring is not
     * thread-safe, and poll() uses it without the GIL.  Returns 0, or -1
     * with errno set (no Python exception): EOPNOTSUPP when
     * !has_io_uring(ctx), EINVAL for a NULL prep_sqe, handler or cb.
     */
    int (*add_sqe)(CEvent_Context *ctx, CEvent_PrepSqe *prep_sqe,
                   void *opaque, CEvent_CqeHandler *handler);

    /*
     * ---- driving a context from C (appended; see Versioning) ----
     * For event loops built on a context, as cevent.Loop is: they take the
     * AioContext object itself, not its CEvent_Context.  GIL required.
     */

    /*
     * AioContext.poll() with a deadline: one iteration of aio_poll(),
     * waiting for at most until deadline_ns, in ns on CEVENT_CLOCK_REALTIME
     * (clock_get_ns()).  deadline_ns <= 0 (CEVENT_POLL_NOWAIT) does not
     * wait; CEVENT_POLL_FOREVER waits until something happens.  The GIL is
     * released while it waits and spins.  Home thread only, as poll().
     * Returns 0, or -1 with an exception set: the first exception raised
     * by a callback of this iteration (see Context_StoreException), or
     * TypeError/ValueError/RuntimeError for a wrong object, a closed
     * context or another thread.  The context keeps one timer for the
     * deadline, so calling it with the same deadline again costs no timer
     * update.
     */
    int (*Context_Poll)(PyObject *context, int64_t deadline_ns);

    /*
     * 1 if a callback of the context's running poll() has raised an
     * exception that the poll will raise when it returns, else 0 (also for
     * an object that is not an AioContext).  No exception is set.  A loop
     * that runs callbacks of its own inside the poll (from an fd handler
     * or a cqe's cb) can stop running them then, as the poll would.
     */
    int (*Context_ExceptionPending)(PyObject *context);

    /*
     * Hand the exception that is set to the context's running poll(),
     * from inside one of its callbacks (a C fd handler, BH, timer or cqe
     * cb): the error indicator is cleared and the poll raises the
     * exception when it returns, as it does for a Python callback's.  If
     * one is pending already, or no poll() is running, the exception is
     * reported with PyErr_WriteUnraisable(culprit) instead (culprit may be
     * NULL).  Returns 0; -1 (exception reported the same way) for an
     * object that is not an AioContext, or with SystemError set when no
     * exception is set.
     */
    int (*Context_StoreException)(PyObject *context, PyObject *culprit);

    /*
     * AioContext.notify() without the method call: aio_notify on the
     * context object, from any thread, GIL held.  Off the context's home
     * thread the GIL is released while it wakes the loop (which would
     * otherwise wake only to wait for the GIL the caller holds), and the
     * context is kept alive meanwhile, so a close() on the home thread
     * cannot free it under the call (unlike notify() on a CEvent_Context).
     * Returns 0, or -1 with TypeError, ValueError (closed) or RuntimeError
     * (fork child) set.
     */
    int (*Context_Notify)(PyObject *context);
} CEvent_CAPI;

/* Context_Poll() deadlines */
#define CEVENT_POLL_NOWAIT  ((int64_t)0)
#define CEVENT_POLL_FOREVER INT64_MAX

#ifndef CEVENT_PROVIDER
/*
 * By default each translation unit that uses the API keeps its own
 * pointer, set by its own CEvent_Import().  A consumer made of several
 * files can share one instead: define CEVENT_API_SHARED before including
 * this header in all of them, and CEVENT_API_DEFINE too in exactly one of
 * them, which defines the pointer (give the module -fvisibility=hidden,
 * or the pointer is exported from it).  CEvent_Import() in any of the
 * files then sets it for all.
 */
#if defined(CEVENT_API_SHARED) && defined(CEVENT_API_DEFINE)
const CEvent_CAPI *CEvent_API = NULL;
#elif defined(CEVENT_API_SHARED)
extern const CEvent_CAPI *CEvent_API;
#else
static const CEvent_CAPI *CEvent_API = NULL;
#endif

/*
 * Import cevent's C API.  GIL required.  0 on success, -1 with ImportError
 * set (or the error of importing cevent itself).  The message of a version
 * mismatch names both versions.
 */
static inline int
CEvent_Import(void)
{
    PyObject *module, *capsule;
    const CEvent_CAPI *api;

    module = PyImport_ImportModule("cevent._cevent");
    if (module == NULL) {
        return -1;
    }
    capsule = PyObject_GetAttrString(module, "_C_API");
    Py_DECREF(module);
    if (capsule == NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "cevent._cevent has no _C_API capsule");
        return -1;
    }
    if (!PyCapsule_CheckExact(capsule)) {
        Py_DECREF(capsule);
        PyErr_SetString(PyExc_ImportError,
                        "cevent._cevent._C_API is not a capsule");
        return -1;
    }
    api = (const CEvent_CAPI *)PyCapsule_GetPointer(capsule,
                                                    CEVENT_CAPSULE_NAME);
    Py_DECREF(capsule);
    if (api == NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "cevent._cevent._C_API is not named "
                        CEVENT_CAPSULE_NAME);
        return -1;
    }
    if (api->abi_version != CEVENT_ABI_VERSION ||
        api->struct_size < sizeof(CEvent_CAPI)) {
        PyErr_Format(PyExc_ImportError,
                     "cevent C API mismatch: this module was built against "
                     "ABI version %d (struct size %zu), the installed "
                     "cevent provides ABI version %u (struct size %u)",
                     (int)CEVENT_ABI_VERSION, sizeof(CEvent_CAPI),
                     api->abi_version, api->struct_size);
        return -1;
    }
    CEvent_API = api;
    return 0;
}
#endif /* CEVENT_PROVIDER */

#ifdef __cplusplus
}
#endif

#endif /* CEVENT_H */
