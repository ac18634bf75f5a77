/*
 * cevent._loopcore: making, queueing and running asyncio handles.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "loopcore.h"

bool
loopcore_is_plain(cev_loop_config *cfg, PyObject *handle)
{
    PyObject *types = cfg->plain_handle_types;

    if (!cfg->native_handles) {
        return false;           /* run through _run: the slots are unknown */
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(types); i++) {
        if ((PyObject *)Py_TYPE(handle) == PyTuple_GET_ITEM(types, i)) {
            return true;
        }
    }
    return false;
}

/* handle._cancelled as 1 or 0, or -1 with an exception set. */
int
loopcore_handle_cancelled(cev_loop_config *cfg, PyObject *handle, bool plain)
{
    PyObject *flag;
    int cancelled;

    if (plain && SLOT(cfg, handle, SLOT_CANCELLED) != NULL) {
        flag = SLOT(cfg, handle, SLOT_CANCELLED);
        return flag == Py_False ? 0 : PyObject_IsTrue(flag);
    }
    flag = PyObject_GetAttr(handle, cfg->str__cancelled);
    if (flag == NULL) {
        return -1;
    }
    cancelled = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return cancelled;
}

/*
 * Every handle on the heap is an asyncio TimerHandle (call_later/call_at
 * make them, and check what the debug-mode helper returns; the _scheduled
 * setter checks too), so its _cancelled and _scheduled slots are read and
 * written directly: no Python code runs while the heap is being reordered.
 * Without native handles (cevent._asyncio_layout found the slots changed)
 * they are read and written by name; an error there cannot be raised
 * from the middle of the heap's work and goes to sys.unraisablehook.
 */
PyTypeObject *
loopcore_timer_base(cev_loop_config *cfg)
{
    return ((PyTypeObject *)cfg->timer_type)->tp_base;   /* TimerHandle */
}

bool
loopcore_timer_cancelled(cev_loop_config *cfg, PyObject *handle)
{
    int cancelled;

    if (cfg->native_handles) {
        return SLOT(cfg, handle, SLOT_CANCELLED) == Py_True;
    }
    cancelled = loopcore_handle_cancelled(cfg, handle, false);
    if (cancelled < 0) {
        PyErr_WriteUnraisable(handle);
        return false;
    }
    return cancelled;
}

/* handle._scheduled = value, for a handle entering or leaving the heap. */
void
loopcore_timer_set_scheduled(cev_loop_config *cfg, PyObject *handle,
                             bool value)
{
    if (cfg->native_handles) {
        Py_XSETREF(TSLOT(cfg, handle, TSLOT_SCHEDULED),
                   Py_NewRef(value ? Py_True : Py_False));
    }
    else if (PyObject_SetAttr(handle, cfg->str__scheduled,
                              value ? Py_True : Py_False) < 0) {
        PyErr_WriteUnraisable(handle);
    }
}

/*
 * A new handle of @type (the Handle type, or the TimerHandle type) for
 * callback(*args) in @context (NULL or None: a copy of the current one),
 * owned by @loop, with the Handle slots filled; a timer's own slots are
 * the caller's.
 */
PyObject *
loopcore_make_handle(cev_loop_config *cfg, PyObject *type, PyObject *loop,
                     PyObject *callback, PyObject *args, PyObject *context)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *handle;

    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(context);
    }
    handle = tp->tp_alloc(tp, 0);
    if (handle == NULL) {
        Py_DECREF(context);
        return NULL;
    }
    SLOT(cfg, handle, SLOT_CONTEXT) = context;
    SLOT(cfg, handle, SLOT_LOOP) = Py_NewRef(loop);
    SLOT(cfg, handle, SLOT_CALLBACK) = Py_NewRef(callback);
    SLOT(cfg, handle, SLOT_ARGS) = Py_NewRef(args);
    SLOT(cfg, handle, SLOT_CANCELLED) = Py_NewRef(Py_False);
    SLOT(cfg, handle, SLOT_REPR) = Py_NewRef(Py_None);
    SLOT(cfg, handle, SLOT_SOURCE_TRACEBACK) = Py_NewRef(Py_None);
    return handle;
}

/*
 * The arguments of call_soon(callback, *args, context=None) and its
 * siblings: @npos leading positional arguments (the deadline, ...), then
 * the callback, its arguments and the context keyword.  Sets *cbargs to a
 * new tuple of the callback's arguments and *context (borrowed, NULL when
 * not given).
 */
int
loopcore_parse_callback(const char *name, Py_ssize_t npos,
                        PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, PyObject **cbargs,
                        PyObject **context)
{
    *context = NULL;
    if (nargs < npos + 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required positional arguments", name);
        return -1;
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);

        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, i);

            if (PyUnicode_CompareWithASCIIString(kw, "context") != 0) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'",
                             name, kw);
                return -1;
            }
            *context = args[nargs + i];
        }
    }
    *cbargs = PyTuple_New(nargs - npos - 1);
    if (*cbargs == NULL) {
        return -1;
    }
    for (Py_ssize_t i = npos + 1; i < nargs; i++) {
        PyTuple_SET_ITEM(*cbargs, i - npos - 1, Py_NewRef(args[i]));
    }
    return 0;
}

/* self(*args, **kw) through @func (a Python function taking the loop). */
PyObject *
loopcore_call_python(PyObject *func, PyObject *self, PyObject *const *args,
                     size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[8];
    PyObject **all = stack;
    PyObject *res;

    if (1 + nargs + nkw > (Py_ssize_t)Py_ARRAY_LENGTH(stack)) {
        all = PyMem_New(PyObject *, 1 + nargs + nkw);
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    memcpy(all + 1, args, (nargs + nkw) * sizeof(PyObject *));
    res = PyObject_Vectorcall(func, all, 1 + nargs, kwnames);
    if (all != stack) {
        PyMem_Free(all);
    }
    return res;
}

int
loopcore_append_ready(LoopCoreObject *self, PyObject *handle)
{
    PyObject *res;

    if (self->ready_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return -1;
    }
    res = PyObject_Vectorcall(self->ready_append, &handle, 1, NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/*
 * The garbage collector and queued handles.
 *
 * A loop that runs many callbacks makes two GC objects per call_soon() (the
 * handle and its context copy), so the collector's young generation is
 * mostly handles waiting in the ready queue; traversing them was a third
 * of the time of a batch of empty callbacks.  Those handles are alive for
 * sure: the ready queue holds them and the running loop holds the queue.
 * So a handle that call_soon() queues while _run_once() is running is
 * untracked, and tracked again as soon as that stops being true:
 *
 *   - when it has run (loopcore_run_ready), if anything else still holds it;
 *   - at the end of the _run_once() call (which, with _iterate, spans all
 *     of run_forever()'s iterations), for the handles still queued
 *     (loopcore_track_queued), so that outside _run_once() every queued
 *     handle is tracked and a loop dropped with callbacks queued can be
 *     collected as before;
 *   - when Python code asks for the queue (the _ready getter), since it
 *     may take handles out of it.
 *
 * An untracked object is never freed by the collector; the only risk is a
 * cycle through it not being found while it is untracked, and each of the
 * paths above ends that.
 */
void
loopcore_untrack_queued(LoopCoreObject *self, PyObject *handle)
{
    if (self->running > 0 && PyObject_GC_IsTracked(handle)) {
        PyObject_GC_UnTrack(handle);
        self->untracked++;
    }
}

/* @handle has left the ready queue: track it again if it lives on. */
void
loopcore_track_dequeued(LoopCoreObject *self, PyObject *handle)
{
    if (self->untracked > 0 && !PyObject_GC_IsTracked(handle) &&
        PyObject_IS_GC(handle)) {
        self->untracked--;
        if (Py_REFCNT(handle) > 1) {
            PyObject_GC_Track(handle);
        }
    }
}

/* Track every queued handle again. */
int
loopcore_track_queued(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject *it, *item;

    if (self->untracked == 0 || self->ready == NULL) {
        return 0;
    }
    it = PyObject_GetIter(self->ready);
    if (it == NULL) {
        return -1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        if ((PyObject *)Py_TYPE(item) == cfg->handle_type &&
            !PyObject_GC_IsTracked(item)) {
            PyObject_GC_Track(item);
        }
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return -1;
    }
    self->untracked = 0;
    return 0;
}

/* ---- running handles ------------------------------------------------------ */

/*
 * Run one handle that is not cancelled as Handle._run() does; @plain is
 * loopcore_is_plain(cfg, handle).  Returns 0, or -1 with an exception set
 * when it must propagate (SystemExit, KeyboardInterrupt, or a failing
 * exception handler).
 */
int
loopcore_run_live_handle(cev_loop_config *cfg, PyObject *handle, bool plain)
{
    PyObject *ctx = NULL, *callback = NULL, *cbargs = NULL;
    PyObject *res, *value, *hook_args[2];

    if (plain) {
        ctx = SLOT(cfg, handle, SLOT_CONTEXT);
        callback = SLOT(cfg, handle, SLOT_CALLBACK);
        cbargs = SLOT(cfg, handle, SLOT_ARGS);
    }
    if (!plain || ctx == NULL || callback == NULL || cbargs == NULL ||
        !PyTuple_Check(cbargs) || !PyContext_CheckExact(ctx)) {
        /*
         * A type with a _run of its own, or not what call_soon() makes:
         * Handle._run() deals with it.
         */
        res = PyObject_CallMethodNoArgs(handle, cfg->str__run);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
        return 0;
    }
    Py_INCREF(ctx);
    Py_INCREF(callback);
    Py_INCREF(cbargs);
    if (PyContext_Enter(ctx) == 0) {
        res = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(cbargs, 0),
                                  PyTuple_GET_SIZE(cbargs), NULL);
        if (PyContext_Exit(ctx) < 0 && res != NULL) {
            Py_CLEAR(res);
        }
    }
    else {
        res = NULL;     /* "cannot enter context": as Context.run raises */
    }
    Py_DECREF(cbargs);
    Py_DECREF(callback);
    Py_DECREF(ctx);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    value = cev_catch_exception();
    if (value == NULL) {
        return -1;
    }
    hook_args[0] = handle;
    hook_args[1] = value;
    res = PyObject_Vectorcall(cfg->exc_hook, hook_args, 2, NULL);
    Py_DECREF(value);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Run one handle as _run_once() does: a cancelled one is skipped. */
int
loopcore_run_handle(cev_loop_config *cfg, PyObject *handle)
{
    bool plain = loopcore_is_plain(cfg, handle);
    int cancelled = loopcore_handle_cancelled(cfg, handle, plain);

    if (cancelled != 0) {
        return cancelled < 0 ? -1 : 0;
    }
    return loopcore_run_live_handle(cfg, handle, plain);
}

/* Pop @ntodo handles off the ready queue and run them. */
int
loopcore_run_ready(cev_loop_config *cfg, LoopCoreObject *self,
                   Py_ssize_t ntodo)
{
    PyObject *popleft = self->ready_popleft;
    int rc = 0;

    if (popleft == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return -1;
    }
    Py_INCREF(popleft);                 /* a callback may rebind _ready */
    for (Py_ssize_t i = 0; i < ntodo && rc == 0; i++) {
        PyObject *handle = PyObject_Vectorcall(popleft, NULL, 0, NULL);

        if (handle == NULL) {
            rc = -1;
            break;
        }
        rc = loopcore_run_handle(cfg, handle);
        loopcore_track_dequeued(self, handle);
        Py_DECREF(handle);
    }
    Py_DECREF(popleft);
    return rc;
}

/*
 * Run an I/O handle of @loop (NULL: no loop) now rather than queue it
 * (1), or not (0), or -1 with an exception set.  Inline while the loop's
 * _run_once() polls, outside debug mode, when nothing was ready before
 * this poll's first I/O handle (an fd handler's or a ring reader's; see
 * LOOP_IO_UNDECIDED), and unless a callback of this poll has already
 * raised an exception that will propagate: the rest are queued, as asyncio
 * leaves them on the ready queue.
 */
int
loopcore_runs_io_inline(LoopCoreObject *loop)
{
    if (loop == NULL || loop->context == NULL ||
        CEvent_API->Context_ExceptionPending(loop->context)) {
        return 0;
    }
    if (loop->io_mode == LOOP_IO_UNDECIDED) {
        Py_ssize_t n = PyObject_Length(loop->ready);

        if (n < 0) {
            return -1;
        }
        loop->io_mode = n == 0 ? LOOP_IO_INLINE : LOOP_IO_QUEUED;
    }
    return loop->io_mode == LOOP_IO_INLINE;
}
