/*
 * cevent._cevent: _LoopCore, the native part of cevent.Loop.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * cevent.Loop (Lib/cevent/_loop.py) is asyncio's Unix selector loop driven
 * by an AioContext.  Two of its paths run once per callback and dominate a
 * loop that does little else: call_soon(), which makes an asyncio Handle
 * and queues it, and the part of _run_once() that runs the ready handles.
 * _LoopCore is a base class of Loop that does both in C:
 *
 *   - call_soon(callback, *args, context=None) makes a real
 *     asyncio.events.Handle (its __slots__ are filled through their member
 *     descriptors' offsets, which is what Handle.__init__ would store) and
 *     appends it to the ready queue;
 *   - _run_ready(ntodo) pops ntodo handles and runs each as Handle._run()
 *     does: callback(*args) inside the handle's context, SystemExit and
 *     KeyboardInterrupt propagate, any other exception goes to the loop's
 *     exception handler (through a Python hook with Handle._run's code).
 *
 * The loop's _closed, _debug and _ready attributes are data descriptors of
 * this type, so asyncio's Python code and this file share them.  In debug
 * mode call_soon() defers to BaseEventLoop.call_soon (thread and callback
 * checks, source tracebacks) and _run_once() uses its own Python loop.
 * Handles of other types (a subclass with its own _run) are run through
 * their _run method.  _loopcore_configure() must be called once, before
 * any call_soon(), with the asyncio pieces this file relies on.
 */

#include "module.h"

#include <math.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *ready;        /* the loop's ready queue (collections.deque) */
    char closed;
    char debug;
} LoopCoreObject;

/* The Handle slots filled by call_soon(), by name. */
enum {
    SLOT_CALLBACK, SLOT_ARGS, SLOT_CANCELLED, SLOT_LOOP,
    SLOT_SOURCE_TRACEBACK, SLOT_REPR, SLOT_CONTEXT, SLOT_COUNT
};

static const char *const slot_names[SLOT_COUNT] = {
    "_callback", "_args", "_cancelled", "_loop", "_source_traceback",
    "_repr", "_context",
};

#define SLOT(obj, i) \
    (*(PyObject **)((char *)(obj) + state->loop_slot_offsets[(i)]))

static PyObject *
loopcore_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
             PyObject *Py_UNUSED(kwds))
{
    /* Arguments are the subclass's __init__'s business. */
    LoopCoreObject *self = (LoopCoreObject *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->closed = 0;
    self->debug = 0;
    return (PyObject *)self;
}

static int
loopcore_traverse(LoopCoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->ready);
    return 0;
}

static int
loopcore_clear(LoopCoreObject *self)
{
    Py_CLEAR(self->ready);
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

static cevent_state *
loopcore_state(PyTypeObject *defining_class)
{
    return (cevent_state *)PyType_GetModuleState(defining_class);
}

static int
loopcore_check_configured(cevent_state *state)
{
    if (state->loop_handle_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cevent._cevent._loopcore_configure() was not called");
        return -1;
    }
    return 0;
}

/* ---- call_soon --------------------------------------------------------- */

/* A new asyncio Handle for callback(*args) in @context (NULL: a copy of
 * the current one), owned by @loop. */
static PyObject *
loopcore_make_handle(cevent_state *state, PyObject *loop, PyObject *callback,
                     PyObject *args, PyObject *context)
{
    PyTypeObject *tp = (PyTypeObject *)state->loop_handle_type;
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
    SLOT(handle, SLOT_CONTEXT) = context;
    SLOT(handle, SLOT_LOOP) = Py_NewRef(loop);
    SLOT(handle, SLOT_CALLBACK) = Py_NewRef(callback);
    SLOT(handle, SLOT_ARGS) = Py_NewRef(args);
    SLOT(handle, SLOT_CANCELLED) = Py_NewRef(Py_False);
    SLOT(handle, SLOT_REPR) = Py_NewRef(Py_None);
    SLOT(handle, SLOT_SOURCE_TRACEBACK) = Py_NewRef(Py_None);
    return handle;
}

/* call_soon() in debug mode or on a closed loop: BaseEventLoop's. */
static PyObject *
loopcore_call_soon_python(cevent_state *state, PyObject *self,
                          PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
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
    res = PyObject_Vectorcall(state->loop_py_call_soon, all, 1 + nargs,
                              kwnames);
    if (all != stack) {
        PyMem_Free(all);
    }
    return res;
}

PyDoc_STRVAR(loopcore_call_soon_doc,
"call_soon($self, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called soon (FIFO); returns its\n"
"asyncio.Handle.");

static PyObject *
loopcore_call_soon(LoopCoreObject *self, PyTypeObject *defining_class,
                   PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cevent_state *state = loopcore_state(defining_class);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context = NULL;
    PyObject *cbargs, *handle, *res;

    if (loopcore_check_configured(state) < 0) {
        return NULL;
    }
    if (self->debug || self->closed) {
        return loopcore_call_soon_python(state, (PyObject *)self, args,
                                         nargsf, kwnames);
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "call_soon() missing 1 required positional argument: "
                        "'callback'");
        return NULL;
    }
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return NULL;
    }
    if (kwnames != NULL) {
        Py_ssize_t i, nkw = PyTuple_GET_SIZE(kwnames);

        for (i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);

            if (PyUnicode_CompareWithASCIIString(name, "context") != 0) {
                PyErr_Format(PyExc_TypeError,
                             "call_soon() got an unexpected keyword "
                             "argument '%U'", name);
                return NULL;
            }
            context = args[nargs + i];
        }
    }
    cbargs = PyTuple_New(nargs - 1);
    if (cbargs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(cbargs, i - 1, Py_NewRef(args[i]));
    }
    handle = loopcore_make_handle(state, (PyObject *)self, args[0], cbargs,
                                  context);
    Py_DECREF(cbargs);
    if (handle == NULL) {
        return NULL;
    }
    {
        PyObject *margs[2] = {self->ready, handle};

        res = PyObject_VectorcallMethod(state->str_append, margs,
                                        2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                        NULL);
    }
    if (res == NULL) {
        Py_DECREF(handle);
        return NULL;
    }
    Py_DECREF(res);
    return handle;
}

/* ---- _run_ready -------------------------------------------------------- */

/*
 * Run one handle as Handle._run() does.  Returns 0, or -1 with an exception
 * set when it must propagate (SystemExit, KeyboardInterrupt, or a failing
 * exception handler).
 */
static int
loopcore_run_handle(cevent_state *state, PyObject *handle)
{
    PyObject *ctx, *callback, *cbargs, *res, *hook_args[2];
    PyObject *type, *value, *tb;
    PyObject *plain_types = state->loop_plain_handle_types;
    bool plain = false;
    int cancelled;

    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(plain_types); i++) {
        if ((PyObject *)Py_TYPE(handle) == PyTuple_GET_ITEM(plain_types, i)) {
            plain = true;
            break;
        }
    }
    /* As _run_once(): a cancelled handle of any type is skipped. */
    if (plain && SLOT(handle, SLOT_CANCELLED) != NULL) {
        cancelled = PyObject_IsTrue(SLOT(handle, SLOT_CANCELLED));
    }
    else {
        PyObject *flag = PyObject_GetAttr(handle, state->str__cancelled);

        cancelled = flag != NULL ? PyObject_IsTrue(flag) : -1;
        Py_XDECREF(flag);
    }
    if (cancelled != 0) {
        return cancelled < 0 ? -1 : 0;
    }
    ctx = SLOT(handle, SLOT_CONTEXT);
    callback = SLOT(handle, SLOT_CALLBACK);
    cbargs = SLOT(handle, SLOT_ARGS);
    if (!plain || ctx == NULL || callback == NULL || cbargs == NULL ||
        !PyTuple_Check(cbargs) || !PyContext_CheckExact(ctx)) {
        /*
         * A type with a _run of its own, or not what call_soon() makes:
         * Handle._run() deals with it.
         */
        res = PyObject_CallMethodNoArgs(handle, state->str__run);
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
        res = PyObject_Call(callback, cbargs, NULL);
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
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return -1;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (value == NULL) {
        return 0;
    }
    hook_args[0] = handle;
    hook_args[1] = value;
    res = PyObject_Vectorcall(state->loop_exc_hook, hook_args, 2, NULL);
    Py_DECREF(value);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

PyDoc_STRVAR(loopcore__run_ready_doc,
"_run_ready($self, ntodo, /)\n--\n\n"
"Pop ntodo handles off the ready queue and run those not cancelled, as\n"
"BaseEventLoop._run_once() does outside debug mode.");

static PyObject *
loopcore__run_ready(LoopCoreObject *self, PyTypeObject *defining_class,
                    PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cevent_state *state = loopcore_state(defining_class);
    Py_ssize_t i, ntodo;
    PyObject *ready;

    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_run_ready() takes exactly one argument (ntodo)");
        return NULL;
    }
    if (loopcore_check_configured(state) < 0) {
        return NULL;
    }
    ntodo = PyLong_AsSsize_t(args[0]);
    if (ntodo == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return NULL;
    }
    ready = Py_NewRef(self->ready);     /* a callback may rebind _ready */
    for (i = 0; i < ntodo; i++) {
        PyObject *handle = PyObject_VectorcallMethod(
            state->str_popleft, &ready, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
            NULL);
        int rc;

        if (handle == NULL) {
            Py_DECREF(ready);
            return NULL;
        }
        rc = loopcore_run_handle(state, handle);
        Py_DECREF(handle);
        if (rc < 0) {
            Py_DECREF(ready);
            return NULL;
        }
    }
    Py_DECREF(ready);
    Py_RETURN_NONE;
}

/* ---- attributes shared with asyncio's Python code ---------------------- */

static PyObject *
loopcore_get_closed(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed);
}

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

static int
loopcore_set_closed(LoopCoreObject *self, PyObject *value,
                    void *Py_UNUSED(closure))
{
    return loopcore_set_bool(&self->closed, value, "_closed");
}

static PyObject *
loopcore_get_debug(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->debug);
}

static int
loopcore_set_debug(LoopCoreObject *self, PyObject *value,
                   void *Py_UNUSED(closure))
{
    return loopcore_set_bool(&self->debug, value, "_debug");
}

static PyObject *
loopcore_get_ready(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_ready");
        return NULL;
    }
    return Py_NewRef(self->ready);
}

static int
loopcore_set_ready(LoopCoreObject *self, PyObject *value,
                   void *Py_UNUSED(closure))
{
    Py_XSETREF(self->ready, Py_XNewRef(value));
    return 0;
}

/* ---- configuration ----------------------------------------------------- */

/*
 * _loopcore_configure(handle_type, plain_handle_types, exc_hook,
 * py_call_soon): the Handle type that call_soon() makes, the handle types
 * whose _run is Handle._run (run natively), exc_hook(handle, exc) for a
 * callback that raised, and the Python call_soon for debug mode.
 */
PyObject *
cev_loopcore_configure(PyObject *module, PyObject *const *args,
                       Py_ssize_t nargs)
{
    cevent_state *state = get_cevent_state(module);
    Py_ssize_t offsets[SLOT_COUNT];
    PyObject *handle_type;
    int i;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "_loopcore_configure() takes exactly 4 arguments");
        return NULL;
    }
    handle_type = args[0];
    if (!PyType_Check(handle_type) || !PyTuple_Check(args[1]) ||
        !PyCallable_Check(args[2]) || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "_loopcore_configure(type, tuple, callable, "
                        "callable)");
        return NULL;
    }
    for (i = 0; i < SLOT_COUNT; i++) {
        PyObject *descr = PyObject_GetAttrString(handle_type, slot_names[i]);
        PyMemberDef *member;

        if (descr == NULL) {
            return NULL;
        }
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%s is not a slot",
                         handle_type, slot_names[i]);
            return NULL;
        }
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%s is not an object slot",
                         handle_type, slot_names[i]);
            return NULL;
        }
        offsets[i] = member->offset;
        Py_DECREF(descr);
    }
    memcpy(state->loop_slot_offsets, offsets, sizeof(offsets));
    Py_XSETREF(state->loop_handle_type, Py_NewRef(handle_type));
    Py_XSETREF(state->loop_plain_handle_types, Py_NewRef(args[1]));
    Py_XSETREF(state->loop_exc_hook, Py_NewRef(args[2]));
    Py_XSETREF(state->loop_py_call_soon, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

/* ---- deadlines ----------------------------------------------------------- */

/* Beyond this (either sign) a deadline never fires: cevent._loop._NEVER_NS */
#define LOOPCORE_NEVER_NS ((int64_t)1 << 62)

/*
 * ceil(x * 1e9) exactly, for a finite double x, clamped to
 * [-LOOPCORE_NEVER_NS, LOOPCORE_NEVER_NS].  x = M * 2^sh with M the 53-bit
 * integer mantissa, so x * 1e9 = (M * 1e9) * 2^sh, with M * 1e9 < 2^83.
 */
static int64_t
loopcore_ns_ceil_double(double x)
{
    int e;
    double m = frexp(x, &e);            /* x = m * 2^e, 0.5 <= |m| < 1 */
    int64_t mant = (int64_t)ldexp(m, 53);
    int sh = e - 53;
    __int128 p = (__int128)mant * 1000000000;

    if (mant == 0) {
        return 0;
    }
    if (sh >= 0) {
        if (sh >= 62) {
            return mant > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        }
        p *= (__int128)1 << sh;
    }
    else if (-sh >= 100) {
        /* |x * 1e9| < 2^83 * 2^-100: ceil is 1 or 0 */
        return p > 0 ? 1 : 0;
    }
    else {
        int k = -sh;
        __int128 mask = ((__int128)1 << k) - 1;

        if (p >= 0) {
            p = (p >> k) + ((p & mask) != 0);
        }
        else {
            p = -((-p) >> k);           /* ceil of a negative: truncate */
        }
    }
    if (p >= LOOPCORE_NEVER_NS) {
        return LOOPCORE_NEVER_NS;
    }
    if (p <= -LOOPCORE_NEVER_NS) {
        return -LOOPCORE_NEVER_NS;
    }
    return (int64_t)p;
}

/*
 * _ns_ceil(seconds): the smallest integer number of ns >= seconds exactly
 * (no float rounding: the float 0.1 is slightly more than 100 ms, so it
 * gives 100000001).  An int is scaled exactly; anything else goes through
 * float().  +-inf and finite values beyond +-2**62 ns give +-2**62; NaN
 * raises ValueError.
 */
PyObject *
cev_loopcore_ns_ceil(PyObject *Py_UNUSED(module), PyObject *seconds)
{
    double x;

    if (PyLong_CheckExact(seconds)) {
        PyObject *scale = PyLong_FromLong(1000000000L);
        PyObject *res;

        if (scale == NULL) {
            return NULL;
        }
        res = PyNumber_Multiply(seconds, scale);
        Py_DECREF(scale);
        return res;
    }
    x = PyFloat_AsDouble(seconds);
    if (x == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (isnan(x)) {
        PyErr_Format(PyExc_ValueError, "invalid time: %R", seconds);
        return NULL;
    }
    if (isinf(x)) {
        return PyLong_FromLongLong(x > 0 ? LOOPCORE_NEVER_NS
                                         : -LOOPCORE_NEVER_NS);
    }
    return PyLong_FromLongLong(loopcore_ns_ceil_double(x));
}

/* ---- type -------------------------------------------------------------- */

static PyMethodDef loopcore_methods[] = {
    {"call_soon", CEV_METH(loopcore_call_soon),
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, loopcore_call_soon_doc},
    {"_run_ready", CEV_METH(loopcore__run_ready),
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, loopcore__run_ready_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef loopcore_getset[] = {
    {"_closed", (getter)loopcore_get_closed, (setter)loopcore_set_closed,
     "True once the loop is closed.", NULL},
    {"_debug", (getter)loopcore_get_debug, (setter)loopcore_set_debug,
     "The loop's debug mode.", NULL},
    {"_ready", (getter)loopcore_get_ready, (setter)loopcore_set_ready,
     "The ready queue (a collections.deque of handles).", NULL},
    {NULL}
};

PyDoc_STRVAR(loopcore_doc,
"_LoopCore()\n--\n\n"
"The native base of cevent.Loop: call_soon() and the running of ready\n"
"handles.");

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
    .name = "cevent._cevent._LoopCore",
    .basicsize = sizeof(LoopCoreObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_BASETYPE),
    .slots = loopcore_slots,
};
