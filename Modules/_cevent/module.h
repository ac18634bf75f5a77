/*
 * cevent._cevent: private declarations shared by the wrapper files.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * Threading model
 * ---------------
 * Every Python object here is touched only with the GIL held.  The port
 * (the files directly under Modules/) never sees a PyObject: Python callables live in callback
 * records (cev_record) that the port treats as opaque pointers.  The GIL is
 * released only inside the two blocking hooks the context installs (around
 * the fd monitor's wait and around the busy-poll spin) and around the
 * eventfd writes of cross-thread wake-ups.
 *
 * Lifetimes
 * ---------
 * - A cev_record lives exactly as long as the port's node that points at
 *   it (AioHandler, QEMUBH): it is created by the wrapper before the node,
 *   and freed by the node's release hook (cev_record_release), which takes
 *   the GIL itself.  Records are linked into their context's registry,
 *   which changes only under the GIL; context_traverse walks it.
 * - BHObject and TimerObject hold a strong reference to their context.  The
 *   context keeps borrowed lists of both so that close() can detach them.
 * - An armed TimerObject holds a reference to itself (owned, for GC
 *   purposes, by the context: context_traverse visits it).
 */
#ifndef CEVENT_MODULE_H
#define CEVENT_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "qemu/osdep.h"
#include "block/aio.h"
#include "qemu/lockcnt.h"
#include "qemu/event_notifier.h"
#include "qemu/timer.h"
#include "qemu/queue.h"

#include "compat.h"

typedef struct {
    PyTypeObject *ContextType;
    PyTypeObject *BHType;
    PyTypeObject *TimerType;
    PyTypeObject *NotifierType;
    PyTypeObject *LockCntType;
    PyTypeObject *PollerType;            /* abstract base of native pollers */
    PyTypeObject *EventNotifierPollerType;
    PyTypeObject *MemoryPollerType;
    PyObject *capsule;                   /* cevent._C_API */
    PyObject *backends;                  /* tuple, best first */
    PyObject *unavailable;               /* dict: backend -> reason */
} cevent_state;

extern PyModuleDef ceventmodule;

static inline cevent_state *
get_cevent_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (cevent_state *)state;
}

static inline cevent_state *
cevent_state_by_type(PyTypeObject *tp)
{
    PyObject *module = PyType_GetModuleByDef(tp, &ceventmodule);
    assert(module != NULL);
    return get_cevent_state(module);
}

/* ---- callback records (callback.c) ---------------------------------- */

typedef enum {
    CEV_REC_FD,          /* set_fd_handler: callables take no argument */
    CEV_REC_NOTIFIER,    /* set_event_notifier: callables take the notifier */
    CEV_REC_BH,          /* bh_new: callback() */
    CEV_REC_ONESHOT,     /* bh_schedule_oneshot: callback() */
} cev_record_kind;

struct ContextObject;
struct PollerObject;

typedef struct cev_record {
    QLIST_ENTRY(cev_record) link;   /* in owner->records (GIL) */
    struct ContextObject *owner;    /* borrowed: outlives the record */
    cev_record_kind kind;
    PyObject *io_read;              /* also the BH callback */
    PyObject *io_write;
    PyObject *io_poll;              /* a callable or a PollerObject */
    PyObject *io_poll_ready;
    PyObject *io_poll_begin;        /* set_event_notifier_poll */
    PyObject *io_poll_end;
    PyObject *arg;                  /* the notifier for CEV_REC_NOTIFIER */
    struct PollerObject *native;    /* borrowed from io_poll when native */
    /*
     * CEV_REC_BH only (GIL): who owns the callable for the garbage
     * collector.  While the BH object lives and the loop does not hold the
     * BH (not scheduled), the object owns it (bh_traverse visits it), so an
     * idle BH referenced only by its own callback is collectable.  Once the
     * BH is scheduled (loop_held) or the object is gone (bh_obj NULL), the
     * context owns it (context_traverse).  Both change only under the GIL.
     */
    struct BHObject *bh_obj;
    bool loop_held;
} cev_record;

/* Create a record linked into @ctx's registry.  GIL held. */
cev_record *cev_record_new(struct ContextObject *ctx, cev_record_kind kind);
/* Unlink and free a record that the port never saw.  GIL held. */
void cev_record_discard(cev_record *rec);
/* The port's release hook: any thread, takes the GIL itself. */
void cev_record_release(void *opaque);

/* Trampolines: the only functions that call Python callables. */
void cev_io_read_trampoline(void *opaque);
void cev_io_write_trampoline(void *opaque);
bool cev_io_poll_trampoline(void *opaque);
bool cev_io_poll_native(void *opaque);      /* no GIL: native pollers */
void cev_io_poll_ready_trampoline(void *opaque);
void cev_io_poll_begin_trampoline(void *opaque);
void cev_io_poll_end_trampoline(void *opaque);
void cev_bh_trampoline(void *opaque);

/* ---- AioContext (contextobject.c) ------------------------------------ */

struct BHObject;
struct TimerObject;

typedef struct ContextObject {
    PyObject_HEAD
    AioContext *ctx;                /* NULL once closed */
    unsigned long home;             /* home thread (PyThread ident) */
    int poll_depth;                 /* poll()/dispatch() calls running */
    QLIST_HEAD(, cev_record) records;   /* registry of callback records */
    QLIST_HEAD(, BHObject) bhs;         /* live BH objects (borrowed) */
    QLIST_HEAD(, TimerObject) timers;   /* live Timer objects (borrowed) */
    PyObject *exc_type;             /* first callback exception */
    PyObject *exc_value;
    PyObject *exc_tb;
    PyObject *weakreflist;
    /*
     * Added for the fork policy (contextobject.c, "fork"): the process
     * that created the context.  In any other process (a fork child)
     * every method but close() raises RuntimeError.  Open contexts are
     * linked into a process-wide list (fork_link) that the fork
     * child handler walks to detach them from the parent's kernel objects.
     */
    pid_t owner_pid;
    QLIST_ENTRY(ContextObject) fork_link;
    /*
     * Added for the C API's Context_Poll(): the timer that makes a
     * blocking poll return at its deadline.  Made at the first deadline,
     * freed by close().
     */
    QEMUTimer *poll_deadline;
} ContextObject;

/* Raise ValueError and return -1 if closed; else 0. */
int cev_context_check_process(ContextObject *self);
int cev_context_check_open(ContextObject *self);
/* The ValueError of every operation on a closed context or its objects. */
void cev_context_set_closed_error(void);
/*
 * The C API's Context_Poll(): AioContext.poll(), waiting at most until
 * @deadline_ns (QEMU_CLOCK_REALTIME; <= 0: no wait, INT64_MAX: no
 * deadline).  0, or -1 with an exception set.
 */
int cev_context_poll_until(ContextObject *self, int64_t deadline_ns);
/*
 * AioContext.notify() (the C API's Context_Notify()): aio_notify, with
 * the GIL released off the home thread so the woken loop can take it.  0,
 * or -1 with ValueError (closed) or RuntimeError (fork child) set.
 */
int cev_context_notify(ContextObject *self);
/* Raise RuntimeError and return -1 if not on the home thread; else 0. */
int cev_context_check_home(ContextObject *self);
/*
 * Called by a trampoline with an exception set: keep it as the first
 * exception of the running iteration, or report it as unraisable
 * (naming @culprit).  Clears the error indicator.
 */
void cev_context_store_exception(ContextObject *self, PyObject *culprit);
/*
 * Whether a wake-up of @self's loop from this thread should be published
 * with the GIL released: true off the home thread, where the woken loop
 * thread would otherwise wait for the GIL the waker still holds.
 */
bool cev_context_wake_needs_release(ContextObject *self);

/* Why io_uring is unusable, from a failed forced creation (new str). */
PyObject *cev_io_uring_reason(const Error *err);
/* cevent.clock_step(ns) */
PyObject *cev_clock_step(PyObject *arg);

/* Parse an fd argument: int >= 0 or an object with fileno(). -1 on error. */
int cev_fd_converter(PyObject *obj, int *fd);

/* ---- BH (bhobject.c) ------------------------------------------------- */

typedef struct BHObject {
    PyObject_HEAD
    ContextObject *context;         /* strong; NULL after clear */
    QEMUBH *bh;                     /* NULL once deleted or closed */
    cev_record *rec;                /* the BH's record while bh != NULL */
    PyObject *dropped_callable;     /* released last (bhobject.c) */
    QLIST_ENTRY(BHObject) link;     /* in context->bhs */
    PyObject *weakreflist;
    /*
     * Added by bhobject.c: schedule() calls from other threads that are
     * inside qemu_bh_schedule() with the GIL released.  While it is
     * non-zero the QEMUBH must not be freed, so delete()/close() leave
     * the qemu_bh_delete() to the last of them (GIL held).
     */
    int schedulers;
} BHObject;

/* Create a BH object for @callable.  GIL held; context open. */
PyObject *cev_bh_new(ContextObject *ctx, PyObject *callable);
/* Detach from a closing context: delete the QEMUBH, forget it. */
void cev_bh_detach(BHObject *self);

/* ---- Timer (timerobject.c) ------------------------------------------- */

typedef struct TimerObject {
    PyObject_HEAD
    ContextObject *context;         /* strong; NULL after clear */
    QEMUTimer *ts;                  /* NULL once the context closed */
    PyObject *callback;
    int scale;
    QEMUClockType clock;
    bool armed;                     /* holds a reference to itself */
    QLIST_ENTRY(TimerObject) link;  /* in context->timers */
    PyObject *weakreflist;
} TimerObject;

PyObject *cev_timer_new(ContextObject *ctx, int clock, int scale,
                        PyObject *callable);
/*
 * Detach from a closing context: free the QEMUTimer.  Returns the
 * self-reference of an armed timer (to be released by the caller once the
 * context is consistent) or NULL.
 */
PyObject *cev_timer_detach(TimerObject *self);

/* ---- EventNotifier (notifierobject.c) -------------------------------- */

typedef struct {
    PyObject_HEAD
    EventNotifier notifier;         /* initialized == false once closed */
    PyObject *weakreflist;
} NotifierObject;

/* Raise ValueError and return -1 if closed. */
int cev_notifier_check_open(NotifierObject *self);

/* ---- LockCnt (lockcntobject.c) --------------------------------------- */

typedef struct {
    PyObject_HEAD
    QemuLockCnt lockcnt;
    PyObject *weakreflist;
} LockCntObject;

/* ---- native pollers (pollerobject.c) --------------------------------- */

/*
 * A native io_poll function: called in the busy-poll spin WITHOUT the GIL.
 * It must not touch any PyObject.
 */
typedef bool cev_native_poll_fn(struct PollerObject *self);

typedef struct PollerObject {
    PyObject_HEAD
    cev_native_poll_fn *poll;
    PyObject *target;               /* notifier or buffer owner */
    Py_buffer view;                 /* MemoryPoller: the held buffer */
    int fd;                         /* EventNotifierPoller: its read fd */
    Py_ssize_t offset;
    int size;
    uint64_t last;                  /* MemoryPoller: value at last check */
    bool primed;                    /* MemoryPoller: first check done */
    PyObject *weakreflist;
} PollerObject;

/* ---- type specs (one per file) --------------------------------------- */

extern PyType_Spec cev_context_spec;
extern PyType_Spec cev_bh_spec;
extern PyType_Spec cev_timer_spec;
extern PyType_Spec cev_notifier_spec;
extern PyType_Spec cev_lockcnt_spec;
extern PyType_Spec cev_poller_spec;
extern PyType_Spec cev_event_notifier_poller_spec;
extern PyType_Spec cev_memory_poller_spec;

/*
 * Create a type from @spec (with @base, or NULL) for @module and add it to
 * the module.  A new reference, or NULL with an exception set.
 */
PyTypeObject *cev_add_type(PyObject *module, PyType_Spec *spec,
                           PyTypeObject *base);

/* capi.c: build the cevent._C_API capsule. */
PyObject *cev_capi_new(cevent_state *state);

/* ---- debug counters (module.c) --------------------------------------- */

/* Live objects, for leak checks in tests (cevent._cevent._live_counts). */
extern Py_ssize_t cev_live_records;
extern Py_ssize_t cev_live_contexts;

#ifdef CEVENT_FAULT_INJECTION
/*
 * Fault injection (test builds only; cevent._cevent._fault_inject):
 * N > 0 makes the Nth cev_record_new() from now on fail with MemoryError.
 * GIL held.  Defined in callback.c.
 */
extern int cev_fault_record_alloc;
#endif

#endif /* CEVENT_MODULE_H */
