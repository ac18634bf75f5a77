/*
 * cevent._cevent: the Timer type (a QEMUTimer of an AioContext).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * A TimerObject owns one QEMUTimer made by aio_timer_new(), whose opaque is
 * the TimerObject itself (no callback record).  It holds strong references
 * to its callback and to its context, and is linked (borrowed) into
 * context->timers so that close() can detach it.
 *
 * An armed timer must stay alive with no Python reference (a user may
 * arm it and drop it, as with a QEMU timer; docs/aiocontext.md, Lifetimes), so
 * while the QEMUTimer is pending the object holds a reference to itself
 * ("armed").  For the garbage collector that reference belongs to the
 * context (context_traverse visits it).  The invariant, whenever the GIL is
 * released or Python code can run, is
 *
 *     self->armed == (self->ts != NULL && timer_pending(self->ts))
 *
 * except inside the trampoline, where the port has already disarmed the
 * timer and the trampoline keeps the old self-reference until the callback
 * returned.  Every change of the QEMUTimer happens with the GIL held (the
 * port runs timers from aio_poll() outside its blocking hooks), which is
 * what makes the flag reliable.
 *
 * Functions here are prefixed timerobj_ rather than timer_, which is the
 * port's (timer_mod, timer_del) and POSIX's (timer_delete) namespace.
 */

#include "module.h"

/* ---- helpers --------------------------------------------------------- */

static void
timerobj_unlink(TimerObject *self)
{
    ContextObject *ctx = self->context;

    if (ctx != NULL) {
        QLIST_SAFE_REMOVE(self, link);
    }
}

/* Raise ValueError and return -1 if the timer's context is closed,
 * RuntimeError if it belongs to another process (fork). */
static int
timerobj_check(TimerObject *self)
{
    if (self->context != NULL &&
        cev_context_check_process(self->context) < 0) {
        return -1;
    }
    if (self->ts == NULL || self->context == NULL ||
        self->context->ctx == NULL) {
        cev_context_set_closed_error();
        return -1;
    }
    return 0;
}

/*
 * After a change of the QEMUTimer: take or drop the self-reference so that
 * it matches timer_pending().  May drop the last reference to @self only
 * if the caller holds none (callers are methods, whose caller holds one).
 */
static void
timerobj_sync_armed(TimerObject *self)
{
    bool pending = timer_pending(self->ts);

    if (pending && !self->armed) {
        Py_INCREF(self);
        self->armed = true;
    }
    else if (!pending && self->armed) {
        self->armed = false;
        Py_DECREF(self);
    }
}

/* Convert an int expire time in @scale units to ns.  -1 on error. */
static int
timerobj_expire_to_ns(PyObject *arg, int scale, int64_t *ns)
{
    long long value = PyLong_AsLongLong(arg);
    int64_t result;

    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (__builtin_mul_overflow((int64_t)value, (int64_t)scale, &result)) {
        PyErr_Format(PyExc_OverflowError,
                     "expire_time %lld times scale %d does not fit in a "
                     "64-bit ns time", value, scale);
        return -1;
    }
    /* As timer_mod_ns() upstream: a time in the past means "now". */
    *ns = result < 0 ? 0 : result;
    return 0;
}

/*
 * The QEMUTimer callback: called by timerlist_run_timers() from aio_poll()
 * (or dispatch()) on the home thread, with the GIL held.  The port has
 * already disarmed the timer.
 */
static void
timerobj_trampoline(void *opaque)
{
    TimerObject *self = opaque;
    ContextObject *context;
    PyObject *callback, *res;
    bool drop_armed = false;

    Py_INCREF(self);
    if (self->armed) {
        /* It fired, so it is no longer pending; drop this after the call. */
        self->armed = false;
        drop_armed = true;
    }
    context = self->context;
    callback = self->callback;
    assert(context != NULL && context->ctx != NULL && callback != NULL);

    aio_context_stats_timer_dispatch(context->ctx);
    /* The callback may delete the timer, drop it, or close over it. */
    Py_INCREF(context);
    Py_INCREF(callback);
    res = PyObject_CallNoArgs(callback);
    if (res == NULL) {
        cev_context_store_exception(context, callback);
    }
    else {
        Py_DECREF(res);
    }
    Py_DECREF(callback);
    Py_DECREF(context);
    if (drop_armed) {
        Py_DECREF(self);
    }
    Py_DECREF(self);
}

PyObject *
cev_timer_new(ContextObject *ctx, int clock, int scale, PyObject *callable)
{
    cevent_state *state;
    TimerObject *self;

    assert(ctx->ctx != NULL);
    if (clock != QEMU_CLOCK_REALTIME && clock != QEMU_CLOCK_VIRTUAL &&
        clock != QEMU_CLOCK_HOST) {
        PyErr_Format(PyExc_ValueError,
                     "unknown clock %d (expected CLOCK_REALTIME, "
                     "CLOCK_VIRTUAL or CLOCK_HOST)", clock);
        return NULL;
    }
    if (scale <= 0) {
        PyErr_Format(PyExc_ValueError, "scale must be > 0, not %d", scale);
        return NULL;
    }
    if (!PyCallable_Check(callable)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(callable)->tp_name);
        return NULL;
    }
    state = cevent_state_by_type(Py_TYPE(ctx));
    self = PyObject_GC_New(TimerObject, state->TimerType);
    if (self == NULL) {
        return NULL;
    }
    self->callback = Py_NewRef(callable);
    self->scale = scale;
    self->clock = (QEMUClockType)clock;
    self->armed = false;
    self->link.le_next = NULL;
    self->link.le_prev = NULL;
    self->weakreflist = NULL;
    self->ts = aio_timer_new(ctx->ctx, self->clock, scale, timerobj_trampoline,
                             self);
    self->context = (ContextObject *)Py_NewRef(ctx);

    QLIST_INSERT_HEAD(&ctx->timers, self, link);

    PyObject_GC_Track(self);
    return (PyObject *)self;
}

PyObject *
cev_timer_detach(TimerObject *self)
{
    PyObject *armed_ref = NULL;

    timer_free(self->ts);
    self->ts = NULL;
    timerobj_unlink(self);
    if (self->armed) {
        self->armed = false;
        armed_ref = (PyObject *)self;
    }
    return armed_ref;
}

/* ---- methods --------------------------------------------------------- */

PyDoc_STRVAR(timerobj_mod_doc,
"mod($self, expire_time, /)\n--\n\n"
"timer_mod: arm the timer to fire at expire_time, in the timer's scale,\n"
"absolute on its clock (e.g. clock_ns(clock) // scale + delay).  An armed\n"
"timer stays alive until it fires or is deleted.");

static PyObject *
timerobj_mod(TimerObject *self, PyObject *arg)
{
    int64_t ns;

    if (timerobj_check(self) < 0 ||
        timerobj_expire_to_ns(arg, self->scale, &ns) < 0) {
        return NULL;
    }
    timer_mod_ns(self->ts, ns);
    timerobj_sync_armed(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timerobj_mod_ns_doc,
"mod_ns($self, expire_time_ns, /)\n--\n\n"
"timer_mod_ns: arm the timer to fire at expire_time_ns (ns, absolute on\n"
"the timer's clock), whatever its scale.");

static PyObject *
timerobj_mod_ns(TimerObject *self, PyObject *arg)
{
    int64_t ns;

    if (timerobj_check(self) < 0 || timerobj_expire_to_ns(arg, 1, &ns) < 0) {
        return NULL;
    }
    timer_mod_ns(self->ts, ns);
    timerobj_sync_armed(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timerobj_mod_anticipate_doc,
"mod_anticipate($self, expire_time, /)\n--\n\n"
"timer_mod_anticipate: arm the timer for expire_time (in its scale) unless\n"
"it is already armed to fire at or before that time.");

static PyObject *
timerobj_mod_anticipate(TimerObject *self, PyObject *arg)
{
    int64_t ns;

    if (timerobj_check(self) < 0 ||
        timerobj_expire_to_ns(arg, self->scale, &ns) < 0) {
        return NULL;
    }
    timer_mod_anticipate_ns(self->ts, ns);
    timerobj_sync_armed(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timerobj_delete_doc,
"delete($self, /)\n--\n\n"
"timer_del: disarm the timer.  It can be armed again.");

static PyObject *
timerobj_delete(TimerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (timerobj_check(self) < 0) {
        return NULL;
    }
    timer_del(self->ts);
    /* The caller holds a reference: dropping the armed one is safe. */
    timerobj_sync_armed(self);
    Py_RETURN_NONE;
}

static PyObject *
timerobj_get_pending(TimerObject *self, void *Py_UNUSED(closure))
{
    if (timerobj_check(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(timer_pending(self->ts));
}

static PyObject *
timerobj_get_expire_time(TimerObject *self, void *Py_UNUSED(closure))
{
    if (timerobj_check(self) < 0) {
        return NULL;
    }
    if (!timer_pending(self->ts)) {
        return PyLong_FromLong(-1);
    }
    return PyLong_FromLongLong((long long)timer_expire_time_ns(self->ts));
}

static PyObject *
timerobj_get_clock(TimerObject *self, void *Py_UNUSED(closure))
{
    if (timerobj_check(self) < 0) {
        return NULL;
    }
    return PyLong_FromLong((long)self->clock);
}

static PyObject *
timerobj_get_scale(TimerObject *self, void *Py_UNUSED(closure))
{
    if (timerobj_check(self) < 0) {
        return NULL;
    }
    return PyLong_FromLong(self->scale);
}

/* ---- slots ----------------------------------------------------------- */

static PyObject *
timerobj_repr(TimerObject *self)
{
    if (self->ts == NULL) {
        return PyUnicode_FromString("<cevent.Timer context closed>");
    }
    if (!timer_pending(self->ts)) {
        return PyUnicode_FromFormat("<cevent.Timer clock=%d scale=%d "
                                    "pending=False>",
                                    (int)self->clock, self->scale);
    }
    return PyUnicode_FromFormat("<cevent.Timer clock=%d scale=%d "
                                "pending=True expire_time=%lld>",
                                (int)self->clock, self->scale,
                                (long long)timer_expire_time_ns(self->ts));
}

static int
timerobj_traverse(TimerObject *self, visitproc visit, void *arg)
{
    /* The armed self-reference is visited by context_traverse. */
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->callback);
    Py_VISIT(self->context);
    return 0;
}

static int
timerobj_clear(TimerObject *self)
{
    bool drop_armed = false;

    if (self->ts != NULL) {
        timer_free(self->ts);
        self->ts = NULL;
    }
    if (self->armed) {
        /*
         * Only the garbage collector clears an armed timer, and it holds a
         * reference to the object during tp_clear: dropping the armed
         * reference (last, once the object is consistent) cannot free it.
         */
        self->armed = false;
        drop_armed = true;
    }
    timerobj_unlink(self);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->context);
    if (drop_armed) {
        Py_DECREF(self);
    }
    return 0;
}

static void
timerobj_dealloc(TimerObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* An armed timer holds a reference to itself. */
    assert(!self->armed);
    PyObject_GC_UnTrack(self);
    CEV_CLEAR_WEAKREFS(self);
    (void)timerobj_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef timerobjs[] = {
    {"mod", (PyCFunction)timerobj_mod, METH_O, timerobj_mod_doc},
    {"mod_ns", (PyCFunction)timerobj_mod_ns, METH_O, timerobj_mod_ns_doc},
    {"mod_anticipate", (PyCFunction)timerobj_mod_anticipate, METH_O,
     timerobj_mod_anticipate_doc},
    {"delete", (PyCFunction)timerobj_delete, METH_NOARGS, timerobj_delete_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef timerobj_getset[] = {
    {"pending", (getter)timerobj_get_pending, NULL,
     "Whether the timer is armed.", NULL},
    {"expire_time", (getter)timerobj_get_expire_time, NULL,
     "When the timer fires, in ns on its clock; -1 when not armed.", NULL},
    {"clock", (getter)timerobj_get_clock, NULL,
     "The timer's clock (CLOCK_REALTIME, CLOCK_VIRTUAL or CLOCK_HOST).",
     NULL},
    {"scale", (getter)timerobj_get_scale, NULL,
     "ns per unit of mod() and mod_anticipate() (SCALE_NS, SCALE_US, ...).",
     NULL},
    {NULL}
};

static PyMemberDef timerobj_members[] = {
    CEV_WEAKREF_MEMBER(TimerObject)
    {NULL}
};

PyDoc_STRVAR(timerobj_doc,
"A QEMU timer; made by AioContext.timer_new(clock, scale, callback).\n\n"
"A timer never fires before its expire time on its clock; it stays alive\n"
"while armed.");

static PyType_Slot timerobj_slots[] = {
    {Py_tp_dealloc, timerobj_dealloc},
    {Py_tp_traverse, timerobj_traverse},
    {Py_tp_clear, timerobj_clear},
    {Py_tp_repr, timerobj_repr},
    {Py_tp_methods, timerobjs},
    {Py_tp_getset, timerobj_getset},
    {Py_tp_members, timerobj_members},
    {Py_tp_doc, (void *)timerobj_doc},
    {0, NULL}
};

PyType_Spec cev_timer_spec = {
    .name = "cevent.Timer",
    .basicsize = sizeof(TimerObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
              CEV_WEAKREF_FLAG),
    .slots = timerobj_slots,
};
