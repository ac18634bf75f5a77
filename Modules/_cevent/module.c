/*
 * cevent._cevent: module initialisation, module state and module-level
 * functions.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "module.h"
#include "qapi/error.h"

#include <sys/epoll.h>

/* ---- backends -------------------------------------------------------- */

/* Append a new str to @list.  0 or -1. */
static int
append_str(PyObject *list, const char *value)
{
    PyObject *str = PyUnicode_FromString(value);
    int ret;

    if (str == NULL) {
        return -1;
    }
    ret = PyList_Append(list, str);
    Py_DECREF(str);
    return ret;
}

/*
 * Which fd monitors work in this process on this kernel.  io_uring is
 * probed by really creating a context on it, so sysctls, seccomp filters
 * and missing opcodes are all seen.
 */
static int
probe_backends(cevent_state *state)
{
    PyObject *usable = PyList_New(0);
    PyObject *unavailable = PyDict_New();
    Error *err = NULL;
    AioContext *ctx;
    PyObject *reason;
    int fd;

    if (usable == NULL || unavailable == NULL) {
        goto error;
    }

    ctx = aio_context_new_full(AIO_FDMON_IO_URING, &err);
    if (ctx != NULL) {
        aio_context_unref(ctx);
        if (append_str(usable, "io_uring") < 0) {
            goto error;
        }
    }
    else {
        reason = cev_io_uring_reason(err);
        error_free(err);
        if (reason == NULL ||
            PyDict_SetItemString(unavailable, "io_uring", reason) < 0) {
            Py_XDECREF(reason);
            goto error;
        }
        Py_DECREF(reason);
    }

    fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        if (append_str(usable, "epoll") < 0) {
            goto error;
        }
    }
    else {
        reason = PyUnicode_FromFormat("epoll_create1: %s", strerror(errno));
        if (reason == NULL ||
            PyDict_SetItemString(unavailable, "epoll", reason) < 0) {
            Py_XDECREF(reason);
            goto error;
        }
        Py_DECREF(reason);
    }

    if (append_str(usable, "poll") < 0) {
        goto error;
    }

    state->backends = PyList_AsTuple(usable);
    Py_DECREF(usable);
    state->unavailable = unavailable;
    return state->backends ? 0 : -1;

error:
    Py_XDECREF(usable);
    Py_XDECREF(unavailable);
    return -1;
}

PyDoc_STRVAR(backends_doc,
"backends()\n--\n\n"
"The fd monitors usable in this process on this kernel, best first: a\n"
"subset of ('io_uring', 'epoll', 'poll').");

static PyObject *
cevent_backends(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(get_cevent_state(module)->backends);
}

PyDoc_STRVAR(unavailable_backends_doc,
"unavailable_backends()\n--\n\n"
"A dict mapping each fd monitor that is not in backends() to a one-line\n"
"reason.");

static PyObject *
cevent_unavailable_backends(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyDict_Copy(get_cevent_state(module)->unavailable);
}

/* ---- clocks ---------------------------------------------------------- */

PyDoc_STRVAR(clock_ns_doc,
"clock_ns(clock=CLOCK_REALTIME)\n--\n\n"
"The current time of clock, in ns.");

static PyObject *
cevent_clock_ns(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"clock", NULL};
    int clock = QEMU_CLOCK_REALTIME;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:clock_ns", kwlist,
                                     &clock)) {
        return NULL;
    }
    if (clock != QEMU_CLOCK_REALTIME && clock != QEMU_CLOCK_VIRTUAL &&
        clock != QEMU_CLOCK_HOST) {
        PyErr_Format(PyExc_ValueError, "unknown clock %d", clock);
        return NULL;
    }
    return PyLong_FromLongLong(qemu_clock_get_ns((QEMUClockType)clock));
}

PyDoc_STRVAR(clock_step_doc,
"clock_step(ns, /)\n--\n\n"
"Advance CLOCK_VIRTUAL by ns >= 0 and wake every context that has a\n"
"virtual timer.  Any thread.");

static PyObject *
cevent_clock_step(PyObject *module, PyObject *arg)
{
    (void)module;
    return cev_clock_step(arg);
}

PyDoc_STRVAR(live_counts_doc,
"_live_counts()\n--\n\n"
"Live callback records and open contexts (for leak tests).");

static PyObject *
cevent_live_counts(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return Py_BuildValue("{snsn}", "records", cev_live_records,
                         "contexts", cev_live_contexts);
}

#ifdef CEVENT_FAULT_INJECTION
/* ---- fault injection (test builds only) ------------------------------ */

#include "qemu/fault-injection.h"

/*
 * Private test hook, compiled in only with CEVENT_FAULT_INJECTION (see
 * setup.py); release builds have no _fault_inject and the tests that need
 * it skip.  Each knob is an int; see qemu/fault-injection.h and module.h
 * for what it does.  The port's knobs are read atomically by any thread.
 */
typedef struct {
    const char *name;
    int *knob;
    const char *doc;
} cev_fault_knob;

static const cev_fault_knob cev_fault_knobs[] = {
    {"eventfd", &cevent_fault_eventfd_errno,
     "errno that eventfd() fails with (ENOSYS: pipe fallback)"},
    {"io_uring_init", &cevent_fault_io_uring_init_errno,
     "errno that io_uring_queue_init() fails with"},
    {"epoll_create", &cevent_fault_epoll_create_errno,
     "errno that epoll_create1() fails with"},
    {"epoll_ctl", &cevent_fault_epoll_ctl_countdown,
     "N: the Nth epoll_ctl() of the epoll monitor from now on fails"},
    {"epoll_ctl_errno", &cevent_fault_epoll_ctl_errno,
     "errno of the failing epoll_ctl() (0: EPERM)"},
    {"record_alloc", &cev_fault_record_alloc,
     "N: the Nth callback record allocation from now on fails"},
    {NULL, NULL, NULL}
};

PyDoc_STRVAR(fault_inject_doc,
"_fault_inject(name, value, /)\n--\n\n"
"Test builds only: set fault-injection knob name to value (0 turns it\n"
"off) and return its previous value.  Names: eventfd, io_uring_init,\n"
"epoll_create, epoll_ctl, epoll_ctl_errno, record_alloc.");

static PyObject *
cevent_fault_inject(PyObject *module, PyObject *const *args,
                    Py_ssize_t nargs)
{
    const char *name;
    int value, old;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "_fault_inject() takes exactly 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (!PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_fault_inject() name must be str");
        return NULL;
    }
    name = PyUnicode_AsUTF8(args[0]);
    if (name == NULL) {
        return NULL;
    }
    value = PyLong_AsInt(args[1]);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (value < 0) {
        PyErr_SetString(PyExc_ValueError, "_fault_inject() value must be >= 0");
        return NULL;
    }
    for (const cev_fault_knob *k = cev_fault_knobs; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            old = qatomic_xchg(k->knob, value);
            return PyLong_FromLong(old);
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown fault injection knob %R",
                 args[0]);
    return NULL;
}
#endif /* CEVENT_FAULT_INJECTION */

static PyMethodDef cevent_methods[] = {
    {"backends", cevent_backends, METH_NOARGS, backends_doc},
    {"unavailable_backends", cevent_unavailable_backends, METH_NOARGS,
     unavailable_backends_doc},
    {"clock_ns", CEV_METH(cevent_clock_ns), METH_VARARGS | METH_KEYWORDS,
     clock_ns_doc},
    {"clock_step", cevent_clock_step, METH_O, clock_step_doc},
    {"_live_counts", cevent_live_counts, METH_NOARGS, live_counts_doc},
#ifdef CEVENT_FAULT_INJECTION
    {"_fault_inject", CEV_METH(cevent_fault_inject), METH_FASTCALL,
     fault_inject_doc},
#endif
    {NULL, NULL, 0, NULL}
};

/* ---- module state and init ------------------------------------------- */

static int
cevent_traverse(PyObject *module, visitproc visit, void *arg)
{
    cevent_state *state = get_cevent_state(module);

    Py_VISIT(state->ContextType);
    Py_VISIT(state->BHType);
    Py_VISIT(state->TimerType);
    Py_VISIT(state->NotifierType);
    Py_VISIT(state->LockCntType);
    Py_VISIT(state->PollerType);
    Py_VISIT(state->EventNotifierPollerType);
    Py_VISIT(state->MemoryPollerType);
    Py_VISIT(state->capsule);
    Py_VISIT(state->backends);
    Py_VISIT(state->unavailable);
    return 0;
}

static int
cevent_clear(PyObject *module)
{
    cevent_state *state = get_cevent_state(module);

    Py_CLEAR(state->ContextType);
    Py_CLEAR(state->BHType);
    Py_CLEAR(state->TimerType);
    Py_CLEAR(state->NotifierType);
    Py_CLEAR(state->LockCntType);
    Py_CLEAR(state->PollerType);
    Py_CLEAR(state->EventNotifierPollerType);
    Py_CLEAR(state->MemoryPollerType);
    Py_CLEAR(state->capsule);
    Py_CLEAR(state->backends);
    Py_CLEAR(state->unavailable);
    return 0;
}

static void
cevent_free(void *module)
{
    (void)cevent_clear((PyObject *)module);
}

PyTypeObject *
cev_add_type(PyObject *module, PyType_Spec *spec, PyTypeObject *base)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec,
                                              (PyObject *)base);
    if (type == NULL) {
        return NULL;
    }
    if (PyModule_AddType(module, (PyTypeObject *)type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return (PyTypeObject *)type;
}

static int
cevent_exec(PyObject *module)
{
    cevent_state *state = get_cevent_state(module);

    /*
     * Main interpreter only, on every version (docs/guarantees.md, "Subinterpreters").
     * The open contexts, the fork handlers and the virtual clock are
     * process-wide, the C API capsule's type is a static, and the port
     * drops a callback's references from any thread with
     * PyGILState_Ensure() (cev_record_release()), which only knows the
     * main interpreter.  From 3.12 the slot below makes
     * CPython refuse isolated subinterpreters itself; this refuses the
     * legacy ones (and everything on 3.11) the same way.
     */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_Format(PyExc_ImportError,
                     "module %s does not support loading in subinterpreters "
                     "(it keeps process-wide state: import cevent in the "
                     "main interpreter)",
                     PyModule_GetName(module));
        return -1;
    }

#define ADD_TYPE(field, spec, base) \
    do { \
        state->field = cev_add_type(module, &(spec), (base)); \
        if (state->field == NULL) { \
            return -1; \
        } \
    } while (0)

    ADD_TYPE(ContextType, cev_context_spec, NULL);
    ADD_TYPE(BHType, cev_bh_spec, NULL);
    ADD_TYPE(TimerType, cev_timer_spec, NULL);
    ADD_TYPE(NotifierType, cev_notifier_spec, NULL);
    ADD_TYPE(LockCntType, cev_lockcnt_spec, NULL);
    ADD_TYPE(PollerType, cev_poller_spec, NULL);
    ADD_TYPE(EventNotifierPollerType, cev_event_notifier_poller_spec,
             state->PollerType);
    ADD_TYPE(MemoryPollerType, cev_memory_poller_spec, state->PollerType);
#undef ADD_TYPE

    if (PyModule_AddIntConstant(module, "CLOCK_REALTIME",
                                QEMU_CLOCK_REALTIME) < 0 ||
        PyModule_AddIntConstant(module, "CLOCK_VIRTUAL",
                                QEMU_CLOCK_VIRTUAL) < 0 ||
        PyModule_AddIntConstant(module, "CLOCK_HOST", QEMU_CLOCK_HOST) < 0 ||
        PyModule_AddIntConstant(module, "SCALE_NS", SCALE_NS) < 0 ||
        PyModule_AddIntConstant(module, "SCALE_US", SCALE_US) < 0 ||
        PyModule_AddIntConstant(module, "SCALE_MS", SCALE_MS) < 0) {
        return -1;
    }
#ifdef CONFIG_LINUX_IO_URING
    if (PyModule_AddIntConstant(module, "HAVE_IO_URING", 1) < 0) {
#else
    if (PyModule_AddIntConstant(module, "HAVE_IO_URING", 0) < 0) {
#endif
        return -1;
    }

    if (probe_backends(state) < 0) {
        return -1;
    }

    state->capsule = cev_capi_new(state);
    if (state->capsule == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "_C_API", state->capsule) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot cevent_slots[] = {
    {Py_mod_exec, cevent_exec},
#ifdef Py_mod_multiple_interpreters
    /* 3.12+: see cevent_exec() */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* 3.13+: the port's callbacks and the module's state rely on the GIL */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL}
};

PyDoc_STRVAR(cevent_doc,
"QEMU's AioContext event loop for Python (the C extension of cevent).");

PyModuleDef ceventmodule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cevent._cevent",
    .m_doc = cevent_doc,
    .m_size = sizeof(cevent_state),
    .m_methods = cevent_methods,
    .m_slots = cevent_slots,
    .m_traverse = cevent_traverse,
    .m_clear = cevent_clear,
    .m_free = cevent_free,
};

PyMODINIT_FUNC
PyInit__cevent(void)
{
    return PyModuleDef_Init(&ceventmodule);
}
