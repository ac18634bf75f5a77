/*
 * cevent._loopcore: _LoopCore, the native part of cevent.Loop.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * cevent.Loop (Lib/cevent/_loop.py) is asyncio's Unix selector loop driven
 * by an AioContext.  The paths that run once per callback or once per loop
 * iteration dominate a loop that does little else; _LoopCore, a base class
 * of Loop, does them in C with asyncio's semantics:
 *
 *   - call_soon(callback, *args, context=None) makes a real
 *     asyncio.events.Handle (its __slots__ are filled through their member
 *     descriptors' offsets, which is what Handle.__init__ would store) and
 *     appends it to the ready queue; call_soon_threadsafe() does the same
 *     and wakes the loop with the C API's Context_Notify();
 *   - call_later() and call_at() make a cevent._core.TimerHandle (an
 *     asyncio TimerHandle that also carries its deadline in integer ns,
 *     rounded up) and push it on the loop's timer heap.  The heap is a C
 *     array of (deadline ns, sequence, handle): comparisons are integer
 *     compares, and handles with the same deadline run in the order they
 *     were scheduled.  The loop's _scheduled attribute is a list made from
 *     it on demand;
 *   - _run_once() is BaseEventLoop._run_once(): purge cancelled timers, one
 *     poll of the context (the C API's Context_Poll(): no wait if handles
 *     are ready or the loop is stopping, else until the earliest deadline),
 *     move the due timers to the ready queue, then run the handles that
 *     were ready before the callbacks started.  A handle runs as
 *     Handle._run() does: callback(*args) inside the handle's context,
 *     SystemExit and KeyboardInterrupt propagate, any other exception goes
 *     to the loop's exception handler (through a Python hook with
 *     Handle._run's code).
 *
 * The loop's _closed, _debug, _stopping, _ready, _scheduled and
 * _timer_cancelled_count attributes are data descriptors of this type, so
 * asyncio's Python code and this file share them.  In debug mode the
 * scheduling methods defer to Python code (thread and callback checks,
 * source tracebacks) and _run_once() runs the ready handles through the
 * loop's _run_ready_debug().  Handles of other types (a subclass with its
 * own _run) are run through their _run method.  configure() must
 * be called once, before any loop is used, with the asyncio pieces this
 * file relies on, and _attach() once per loop with its context.
 */



#include "loopcore.h"

#include <math.h>

/* ---- object ------------------------------------------------------------ */

static PyObject *
loopcore_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
             PyObject *Py_UNUSED(kwds))
{
    /* Arguments are the subclass's __init__'s business. */
    LoopCoreObject *self = (LoopCoreObject *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->heap = NULL;
    self->nheap = self->heap_cap = 0;
    self->next_seq = 0;
    self->timer_cancelled_count = 0;
    self->running = 0;
    self->untracked = 0;
    self->closed = self->debug = self->stopping = 0;
    return (PyObject *)self;
}

static int
loopcore_traverse(LoopCoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->ready);
    Py_VISIT(self->ready_append);
    Py_VISIT(self->ready_popleft);
    Py_VISIT(self->context);
    for (Py_ssize_t i = 0; i < self->nheap; i++) {
        Py_VISIT(self->heap[i].handle);
    }
    return 0;
}

static int
loopcore_clear(LoopCoreObject *self)
{
    Py_CLEAR(self->ready);
    Py_CLEAR(self->ready_append);
    Py_CLEAR(self->ready_popleft);
    Py_CLEAR(self->context);
    loopcore_heap_clear(self);
    return 0;
}

static void
loopcore_dealloc(LoopCoreObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void)loopcore_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}
/* ---- call_soon, call_soon_threadsafe ------------------------------------ */

/* The Handle for call_soon()'s arguments, queued on the ready queue. */
static PyObject *
loopcore_queue_soon(cev_loop_config *cfg, LoopCoreObject *self,
                    const char *name, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames)
{
    PyObject *context, *cbargs, *handle;

    if (loopcore_parse_callback(name, 0, args, PyVectorcall_NARGS(nargsf),
                                kwnames, &cbargs, &context) < 0) {
        return NULL;
    }
    handle = loopcore_make_handle(cfg, cfg->handle_type, (PyObject *)self,
                                  args[0], cbargs, context);
    Py_DECREF(cbargs);
    if (handle == NULL) {
        return NULL;
    }
    if (loopcore_append_ready(self, handle) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    loopcore_untrack_queued(self, handle);
    return handle;
}

PyDoc_STRVAR(loopcore_call_soon_doc,
"call_soon($self, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called soon (FIFO); returns its\n"
"asyncio.Handle.");

static PyObject *
loopcore_call_soon(LoopCoreObject *self, PyTypeObject *defining_class,
                   PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->debug || self->closed || !cfg->native_handles) {
        /* BaseEventLoop's: checks, source traceback, "closed" error */
        return loopcore_call_python(cfg->py_call_soon, (PyObject *)self,
                                    args, nargsf, kwnames);
    }
    return loopcore_queue_soon(cfg, self, "call_soon", args, nargsf,
                               kwnames);
}

PyDoc_STRVAR(loopcore_call_soon_threadsafe_doc,
"call_soon_threadsafe($self, callback, /, *args, context=None)\n--\n\n"
"call_soon() from any thread: queues the handle and wakes the loop with\n"
"AioContext.notify().");

static PyObject *
loopcore_call_soon_threadsafe(LoopCoreObject *self,
                              PyTypeObject *defining_class,
                              PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    PyObject *handle;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->debug || self->closed || self->context == NULL ||
        !cfg->native_handles) {
        return loopcore_call_python(cfg->py_call_soon_threadsafe,
                                    (PyObject *)self, args, nargsf,
                                    kwnames);
    }
    handle = loopcore_queue_soon(cfg, self, "call_soon_threadsafe", args,
                                 nargsf, kwnames);
    if (handle == NULL) {
        return NULL;
    }
    /* aio_notify: thread-safe and race-free against a poll about to block */
    if (CEvent_API->Context_Notify(self->context) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            Py_DECREF(handle);
            return NULL;
        }
        PyErr_Clear();          /* the context closed meanwhile */
    }
    return handle;
}

/* ---- call_later, call_at ------------------------------------------------- */

/*
 * Make the timer handle for callback(*cbargs) due at @when_ns (@when is
 * what its _when holds) and push it on the heap.
 */
static PyObject *
loopcore_schedule_timer(cev_loop_config *cfg, LoopCoreObject *self,
                        PyObject *name, PyObject *when, int64_t when_ns,
                        PyObject *callback, PyObject *cbargs,
                        PyObject *context)
{
    PyObject *py_when_ns, *handle;

    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    py_when_ns = PyLong_FromLongLong(when_ns);
    if (py_when_ns == NULL) {
        return NULL;
    }
    if (self->debug || !cfg->native_handles) {
        PyObject *dargs[7] = {
            (PyObject *)self, name, when, py_when_ns, callback, cbargs,
            context != NULL ? context : Py_None,
        };

        handle = PyObject_Vectorcall(cfg->new_timer_debug, dargs, 7, NULL);
        if (handle != NULL &&
            !PyObject_TypeCheck(handle, loopcore_timer_base(cfg))) {
            PyErr_Format(PyExc_TypeError,
                         "new_timer_debug() returned %.200s, not a "
                         "TimerHandle", Py_TYPE(handle)->tp_name);
            Py_CLEAR(handle);
        }
    }
    else {
        handle = loopcore_make_handle(cfg, cfg->timer_type, (PyObject *)self,
                                      callback, cbargs, context);
        if (handle != NULL) {
            TSLOT(cfg, handle, TSLOT_SCHEDULED) = Py_NewRef(Py_False);
            TSLOT(cfg, handle, TSLOT_WHEN) = Py_NewRef(when);
            TSLOT(cfg, handle, TSLOT_WHEN_NS) = Py_NewRef(py_when_ns);
        }
    }
    Py_DECREF(py_when_ns);
    if (handle == NULL) {
        return NULL;
    }
    if (loopcore_heap_push(self, when_ns, handle) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    loopcore_timer_set_scheduled(cfg, handle, true);
    return handle;
}

PyDoc_STRVAR(loopcore_call_later_doc,
"call_later($self, delay, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called once delay seconds have\n"
"elapsed: the deadline is clock_ns() + delay in integer ns, rounded up,\n"
"so it never runs early.  Returns its asyncio.TimerHandle.");

static PyObject *
loopcore_call_later(LoopCoreObject *self, PyTypeObject *defining_class,
                    PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context, *cbargs, *when, *handle;
    int64_t delay_ns, when_ns;
    double when_s;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (nargs >= 1 && args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    if (loopcore_parse_callback("call_later", 1, args, nargs, kwnames,
                                &cbargs, &context) < 0) {
        return NULL;
    }
    if (loopcore_seconds_to_ns(args[0], &delay_ns) < 0) {
        Py_DECREF(cbargs);
        return NULL;
    }
    when_ns = loopcore_clamp_ns(CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME) +
                                delay_ns);
    if (when_ns >= LOOPCORE_NEVER_NS || when_ns <= -LOOPCORE_NEVER_NS) {
        when_s = when_ns > 0 ? INFINITY : -INFINITY;
    }
    else {
        when_s = (double)when_ns / 1e9;
    }
    when = PyFloat_FromDouble(when_s);
    if (when == NULL) {
        Py_DECREF(cbargs);
        return NULL;
    }
    handle = loopcore_schedule_timer(cfg, self, cfg->str_call_later, when,
                                     when_ns, args[1], cbargs, context);
    Py_DECREF(when);
    Py_DECREF(cbargs);
    return handle;
}

PyDoc_STRVAR(loopcore_call_at_doc,
"call_at($self, when, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called once time() >= when: the\n"
"deadline is when in integer ns, rounded up.  Returns its\n"
"asyncio.TimerHandle.");

static PyObject *
loopcore_call_at(LoopCoreObject *self, PyTypeObject *defining_class,
                 PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context, *cbargs, *handle;
    int64_t when_ns;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (nargs >= 1 && args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    if (loopcore_parse_callback("call_at", 1, args, nargs, kwnames, &cbargs,
                                &context) < 0) {
        return NULL;
    }
    if (loopcore_seconds_to_ns(args[0], &when_ns) < 0) {
        Py_DECREF(cbargs);
        return NULL;
    }
    handle = loopcore_schedule_timer(cfg, self, cfg->str_call_at, args[0],
                                     when_ns, args[1], cbargs, context);
    Py_DECREF(cbargs);
    return handle;
}
/* ---- _run_once ------------------------------------------------------------ */

/*
 * The due timers after a poll whose fd handles ran inline.  The ready queue
 * then holds only what those handles queued, which asyncio would run in
 * its next iteration, after the timers that are due now: so these go in
 * front of it, in deadline order.  A timer that the handles scheduled
 * during the poll (sequence number @seq or later) stays on the heap until
 * the next iteration, as in asyncio, where the timers are collected before
 * the fd handles run.
 */
static int
loopcore_queue_due_first(cev_loop_config *cfg, LoopCoreObject *self,
                         uint64_t seq)
{
    int64_t now = CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME);
    LoopTimer *popped;
    Py_ssize_t npopped = 0, i;
    int rc = 0;

    if (self->heap[0].when > now) {
        return 0;
    }
    popped = PyMem_New(LoopTimer, self->nheap);
    if (popped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (self->nheap > 0 && self->heap[0].when <= now) {
        popped[npopped] = self->heap[0];
        popped[npopped].handle = loopcore_heap_pop(self);
        npopped++;
    }
    /* Put back the new ones first: the heap is whole before Python runs. */
    for (i = 0; i < npopped; i++) {
        if (popped[i].seq >= seq) {
            self->heap[self->nheap] = popped[i];
            loopcore_heap_sift_up(self->heap, self->nheap);
            self->nheap++;
            popped[i].handle = NULL;
        }
    }
    for (i = npopped - 1; i >= 0; i--) {
        PyObject *handle = popped[i].handle, *res;

        if (handle == NULL) {
            continue;
        }
        loopcore_timer_set_scheduled(cfg, handle, false);
        if (rc == 0) {
            res = PyObject_CallMethodOneArg(self->ready, cfg->str_appendleft,
                                            handle);
            if (res == NULL) {
                rc = -1;
            }
            Py_XDECREF(res);
        }
        Py_DECREF(handle);
    }
    PyMem_Free(popped);
    return rc;
}

PyDoc_STRVAR(loopcore__run_once_doc,
"_run_once($self, /)\n--\n\n"
"One loop iteration, as BaseEventLoop._run_once(): AioContext.poll()\n"
"(the fd handlers queue the ready I/O handles), then the timers that are\n"
"due, then every handle that was ready before the callbacks started.");

/* The body of _run_once(), with self->running counted by the caller. */
static int
loopcore_run_once(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject *res;
    Py_ssize_t ntodo;
    bool ran_inline, queued_io;
    int64_t deadline;
    char io_mode;
    uint64_t seq;
    int rc;

    /* Purge cancelled timers: all of them, or those at the top. */
    if (self->nheap > MIN_SCHEDULED_TIMER_HANDLES &&
        (double)self->timer_cancelled_count / (double)self->nheap >
        MIN_CANCELLED_TIMER_HANDLES_FRACTION) {
        if (loopcore_purge_cancelled(cfg, self) < 0) {
            return -1;
        }
    }
    else {
        while (self->nheap > 0 &&
               loopcore_timer_cancelled(cfg, self->heap[0].handle)) {
            PyObject *handle = loopcore_heap_pop(self);

            self->timer_cancelled_count--;
            loopcore_timer_set_scheduled(cfg, handle, false);
            Py_DECREF(handle);
        }
    }

    ntodo = PyObject_Length(self->ready);
    if (ntodo < 0) {
        return -1;
    }
    /* Wait only with nothing ready, until the earliest timer if any. */
    if (ntodo > 0 || self->stopping) {
        deadline = CEVENT_POLL_NOWAIT;
    }
    else if (self->nheap > 0 && self->heap[0].when < LOOPCORE_NEVER_NS) {
        deadline = self->heap[0].when;     /* <= 0: due, no wait */
    }
    else {
        deadline = CEVENT_POLL_FOREVER;
    }
    io_mode = self->io_mode;
    self->io_mode = self->debug ? LOOP_IO_QUEUE : LOOP_IO_UNDECIDED;
    seq = self->next_seq;
    rc = CEvent_API->Context_Poll(self->context, deadline);
    ran_inline = self->io_mode == LOOP_IO_INLINE;
    queued_io = self->io_mode == LOOP_IO_QUEUED;
    self->io_mode = io_mode;
    if (rc < 0) {
        return -1;
    }

    /* The timers that are due go to the ready queue. */
    if (ran_inline) {
        if (self->nheap > 0 && loopcore_queue_due_first(cfg, self, seq) < 0) {
            return -1;
        }
    }
    else if (self->nheap > 0) {
        int64_t now = CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME);

        while (self->nheap > 0 && self->heap[0].when <= now) {
            PyObject *handle = loopcore_heap_pop(self);

            loopcore_timer_set_scheduled(cfg, handle, false);
            rc = loopcore_append_ready(self, handle);
            Py_DECREF(handle);
            if (rc < 0) {
                return -1;
            }
        }
    }

    /* The handles ready now; those they queue run next time. */
    ntodo = PyObject_Length(self->ready);
    if (ntodo < 0) {
        return -1;
    }
    if (self->debug) {
        PyObject *n = PyLong_FromSsize_t(ntodo);

        if (n == NULL) {
            return -1;
        }
        res = PyObject_CallMethodOneArg((PyObject *)self,
                                        cfg->str__run_ready_debug, n);
        Py_DECREF(n);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    else if (loopcore_run_ready(cfg, self, ntodo) < 0) {
        return -1;
    }

    /*
     * The fd handles were queued behind handles that were ready before
     * the poll (asyncio's order), so what they queued has not run yet, as
     * it would have inline.  Run it now, once, as asyncio's next iteration
     * would if its poll found nothing: the same order, one syscall less.
     * Not when a timer is due (asyncio's next iteration would run it
     * first) or the loop is stopping (its iteration ends here).
     */
    if (queued_io && !self->stopping &&
        (self->nheap == 0 ||
         self->heap[0].when > CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME))) {
        ntodo = PyObject_Length(self->ready);
        if (ntodo < 0 || loopcore_run_ready(cfg, self, ntodo) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
loopcore__run_once(LoopCoreObject *self, PyTypeObject *defining_class,
                   PyObject *const *Py_UNUSED(args), size_t nargsf,
                   PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    int rc;

    if (cev_check_no_args("_run_once", PyVectorcall_NARGS(nargsf),
                          kwnames) < 0) {
        return NULL;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->context == NULL || self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the loop has no context (_attach() not called)");
        return NULL;
    }
    /*
     * One iteration, or (while run_forever() runs, which sets _iterate) as
     * many as BaseEventLoop.run_forever() would run by calling _run_once()
     * until _stopping, without going back to Python in between.  Signal
     * handlers run between iterations, as the bytecode loop would run them.
     */
    self->running++;
    do {
        rc = loopcore_run_once(cfg, self);
    } while (rc == 0 && self->iterate && !self->stopping &&
             (rc = PyErr_CheckSignals()) == 0);
    self->running--;
    if (self->running == 0 && self->untracked > 0) {
        /* with an exception set or not: track what is still queued */
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if (loopcore_track_queued(cfg, self) < 0) {
            rc = -1;
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
        else {
            PyErr_Restore(type, value, tb);
        }
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(loopcore__attach_doc,
"_attach($self, context, /)\n--\n\n"
"The loop's AioContext, which _run_once() polls.");

static PyObject *
loopcore__attach(LoopCoreObject *self, PyObject *context)
{
    if (CEvent_API->Context_AsContext(context) == NULL) {
        return NULL;
    }
    Py_XSETREF(self->context, Py_NewRef(context));
    Py_RETURN_NONE;
}
/* ---- attributes shared with asyncio's Python code ---------------------- */

static int
loopcore_set_bool(char *field, PyObject *value, const char *name)
{
    int truth;

    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
        return -1;
    }
    truth = PyObject_IsTrue(value);
    if (truth < 0) {
        return -1;
    }
    *field = (char)truth;
    return 0;
}

#define LOOPCORE_BOOL_ATTR(field)                                          \
    static PyObject *                                                      \
    loopcore_get_##field(LoopCoreObject *self, void *Py_UNUSED(closure))   \
    {                                                                      \
        return PyBool_FromLong(self->field);                               \
    }                                                                      \
    static int                                                             \
    loopcore_set_##field(LoopCoreObject *self, PyObject *value,            \
                         void *Py_UNUSED(closure))                         \
    {                                                                      \
        return loopcore_set_bool(&self->field, value, "_" #field);         \
    }

LOOPCORE_BOOL_ATTR(closed)
LOOPCORE_BOOL_ATTR(debug)
LOOPCORE_BOOL_ATTR(stopping)
LOOPCORE_BOOL_ATTR(iterate)

static PyObject *
loopcore_get_ready(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    cev_loop_config *cfg = &loopcore_state_by_type(Py_TYPE(self))->loop;

    if (self->ready == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_ready");
        return NULL;
    }
    /* Python code may take handles out of the queue: the GC must see them */
    if (loopcore_track_queued(cfg, self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->ready);
}

/* _ready = a collections.deque (anything with append and popleft). */
static int
loopcore_set_ready(LoopCoreObject *self, PyObject *value,
                   void *Py_UNUSED(closure))
{
    cev_loop_config *cfg = &loopcore_state_by_type(Py_TYPE(self))->loop;
    PyObject *append, *popleft;

    if (value == NULL) {
        if (loopcore_track_queued(cfg, self) < 0) {
            return -1;
        }
        Py_CLEAR(self->ready);
        Py_CLEAR(self->ready_append);
        Py_CLEAR(self->ready_popleft);
        return 0;
    }
    /* handles left in the old queue must be tracked */
    if (loopcore_track_queued(cfg, self) < 0) {
        return -1;
    }
    append = PyObject_GetAttr(value, cfg->str_append);
    if (append == NULL) {
        return -1;
    }
    popleft = PyObject_GetAttr(value, cfg->str_popleft);
    if (popleft == NULL) {
        Py_DECREF(append);
        return -1;
    }
    Py_XSETREF(self->ready_append, append);
    Py_XSETREF(self->ready_popleft, popleft);
    Py_XSETREF(self->ready, Py_NewRef(value));
    return 0;
}

static PyObject *
loopcore_get_timer_cancelled_count(LoopCoreObject *self,
                                   void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->timer_cancelled_count);
}

static int
loopcore_set_timer_cancelled_count(LoopCoreObject *self, PyObject *value,
                                   void *Py_UNUSED(closure))
{
    Py_ssize_t count;

    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "cannot delete _timer_cancelled_count");
        return -1;
    }
    count = PyLong_AsSsize_t(value);
    if (count == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->timer_cancelled_count = count;
    return 0;
}

/* _scheduled: a new list of the scheduled timer handles, in heap order. */
static PyObject *
loopcore_get_scheduled(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    PyObject *list = PyList_New(self->nheap);

    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->nheap; i++) {
        PyList_SET_ITEM(list, i, Py_NewRef(self->heap[i].handle));
    }
    return list;
}

/* The deadline in ns of a TimerHandle put on the heap by assignment. */
static int
loopcore_timer_deadline(cev_loop_config *cfg, PyObject *handle, int64_t *ns)
{
    PyObject *value = PyObject_GetAttr(handle, cfg->str__when_ns);
    int rc;

    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        value = PyObject_GetAttr(handle, cfg->str__when);
        if (value == NULL) {
            return -1;
        }
        rc = loopcore_seconds_to_ns(value, ns);
        Py_DECREF(value);
        return rc;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%R._when_ns is not an int", handle);
        rc = -1;
    }
    else {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);

        rc = (v == -1 && PyErr_Occurred()) ? -1 : 0;
        *ns = overflow ? (overflow > 0 ? LOOPCORE_NEVER_NS
                                       : -LOOPCORE_NEVER_NS)
                       : loopcore_clamp_ns(v);
    }
    Py_DECREF(value);
    return rc;
}

/*
 * _scheduled = iterable: the heap becomes those TimerHandles (ordered by
 * their _when_ns, else _when).  BaseEventLoop.__init__ assigns [].
 */
static int
loopcore_set_scheduled_attr(LoopCoreObject *self, PyObject *value,
                            void *Py_UNUSED(closure))
{
    cev_loop_config *cfg = &loopcore_state_by_type(Py_TYPE(self))->loop;
    PyObject *seq;
    PyTypeObject *timer_base;
    LoopTimer *heap = NULL;
    Py_ssize_t i, n;

    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _scheduled");
        return -1;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return -1;
    }
    timer_base = loopcore_timer_base(cfg);
    seq = PySequence_Fast(value, "_scheduled must be an iterable");
    if (seq == NULL) {
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0) {
        heap = PyMem_New(LoopTimer, n);
        if (heap == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        PyObject *handle = PySequence_Fast_GET_ITEM(seq, i);

        if (!PyObject_TypeCheck(handle, timer_base)) {
            PyErr_Format(PyExc_TypeError,
                         "_scheduled holds asyncio.TimerHandle objects, "
                         "not %.200s", Py_TYPE(handle)->tp_name);
            break;
        }
        if (loopcore_timer_deadline(cfg, handle, &heap[i].when) < 0) {
            break;
        }
        heap[i].handle = Py_NewRef(handle);
        heap[i].seq = self->next_seq++;
    }
    Py_DECREF(seq);
    if (i < n) {
        while (i-- > 0) {
            Py_DECREF(heap[i].handle);
        }
        PyMem_Free(heap);
        return -1;
    }
    loopcore_heap_clear(self);
    self->heap = heap;
    self->nheap = self->heap_cap = n;
    for (i = n / 2 - 1; i >= 0; i--) {
        loopcore_heap_sift_down(self->heap, n, i);
    }
    return 0;
}
/* ---- small methods of BaseEventLoop ------------------------------------ */

PyDoc_STRVAR(loopcore_time_doc,
"time($self, /)\n--\n\n"
"The loop's clock in seconds: cevent.clock_ns() / 1e9.");

static PyObject *
loopcore_time(LoopCoreObject *Py_UNUSED(self),
              PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(
        (double)CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME) / 1e9);
}

PyDoc_STRVAR(loopcore_get_debug_doc,
"get_debug($self, /)\n--\n\n"
"The loop's debug mode.");

static PyObject *
loopcore_get_debug_method(LoopCoreObject *self,
                          PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->debug);
}

PyDoc_STRVAR(loopcore_create_future_doc,
"create_future($self, /)\n--\n\n"
"A new asyncio.Future attached to the loop.");

static PyObject *
loopcore_create_future(LoopCoreObject *self, PyTypeObject *defining_class,
                       PyObject *const *Py_UNUSED(args), size_t nargsf,
                       PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    PyObject *loop = (PyObject *)self;

    if (cev_check_no_args("create_future", PyVectorcall_NARGS(nargsf),
                          kwnames) < 0) {
        return NULL;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(cfg->future_type, &loop, 0,
                               cfg->kwnames_loop);
}

/* ---- type -------------------------------------------------------------- */

#define LOOPCORE_METHOD(name) \
    {#name, CEV_METH(loopcore_##name), \
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, loopcore_##name##_doc}

static PyMethodDef loopcore_methods[] = {
    LOOPCORE_METHOD(call_soon),
    LOOPCORE_METHOD(call_soon_threadsafe),
    LOOPCORE_METHOD(call_later),
    LOOPCORE_METHOD(call_at),
    LOOPCORE_METHOD(_run_once),
    {"_attach", (PyCFunction)loopcore__attach, METH_O, loopcore__attach_doc},
    LOOPCORE_METHOD(create_future),
    {"time", (PyCFunction)loopcore_time, METH_NOARGS, loopcore_time_doc},
    {"get_debug", (PyCFunction)loopcore_get_debug_method, METH_NOARGS,
     loopcore_get_debug_doc},
    {NULL, NULL, 0, NULL}
};

#undef LOOPCORE_METHOD

static PyGetSetDef loopcore_getset[] = {
    {"_closed", (getter)loopcore_get_closed, (setter)loopcore_set_closed,
     "True once the loop is closed.", NULL},
    {"_debug", (getter)loopcore_get_debug, (setter)loopcore_set_debug,
     "The loop's debug mode.", NULL},
    {"_stopping", (getter)loopcore_get_stopping,
     (setter)loopcore_set_stopping,
     "True once stop() was called, until run_forever() returns.", NULL},
    {"_iterate", (getter)loopcore_get_iterate,
     (setter)loopcore_set_iterate,
     "While true (run_forever() sets it), _run_once() runs iterations\n"
     "until _stopping.", NULL},
    {"_ready", (getter)loopcore_get_ready, (setter)loopcore_set_ready,
     "The ready queue (a collections.deque of handles).", NULL},
    {"_scheduled", (getter)loopcore_get_scheduled,
     (setter)loopcore_set_scheduled_attr,
     "A new list of the scheduled timer handles (in heap order);\n"
     "assigning an iterable of TimerHandles replaces them.", NULL},
    {"_timer_cancelled_count", (getter)loopcore_get_timer_cancelled_count,
     (setter)loopcore_set_timer_cancelled_count,
     "How many scheduled timer handles were cancelled.", NULL},
    {NULL}
};

PyDoc_STRVAR(loopcore_doc,
"_LoopCore()\n--\n\n"
"The native base of cevent.Loop: scheduling, the timer heap and the\n"
"loop iteration.");

static PyType_Slot loopcore_slots[] = {
    {Py_tp_new, loopcore_new},
    {Py_tp_dealloc, loopcore_dealloc},
    {Py_tp_traverse, loopcore_traverse},
    {Py_tp_clear, loopcore_clear},
    {Py_tp_methods, loopcore_methods},
    {Py_tp_getset, loopcore_getset},
    {Py_tp_doc, (void *)loopcore_doc},
    {0, NULL}
};

PyType_Spec cev_loopcore_spec = {
    .name = "cevent._loopcore._LoopCore",
    .basicsize = sizeof(LoopCoreObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_BASETYPE),
    .slots = loopcore_slots,
};
