/*
 * cevent._cevent: the EventNotifier type (an eventfd, or a pipe where
 * eventfd is missing).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * The object holds no Python references; it is a GC type only because
 * weak references to it need one on 3.12+ (Py_TPFLAGS_MANAGED_WEAKREF
 * requires Py_TPFLAGS_HAVE_GC), and its traverse visits just its type.
 */

#include "module.h"

int
cev_notifier_check_open(NotifierObject *self)
{
    if (!self->notifier.initialized) {
        PyErr_SetString(PyExc_ValueError,
                        "I/O operation on closed EventNotifier");
        return -1;
    }
    return 0;
}

/* Raise OSError from a negative errno returned by the port. */
static PyObject *
notifier_set_errno(int ret)
{
    errno = -ret;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/*
 * Mark the object closed, then close the descriptors with the GIL released,
 * as select.epoll does.  Working on a copy means that another thread never
 * sees a half-closed notifier, and two concurrent close() calls cannot
 * close the same descriptor twice.
 */
static void
notifier_close_impl(NotifierObject *self)
{
    EventNotifier e = self->notifier;

    if (!e.initialized) {
        return;
    }
    self->notifier.initialized = false;
    self->notifier.rfd = -1;
    self->notifier.wfd = -1;
    Py_BEGIN_ALLOW_THREADS
    event_notifier_cleanup(&e);
    Py_END_ALLOW_THREADS
}

static PyObject *
notifier_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    NotifierObject *self;
    int ret;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":EventNotifier", kwlist)) {
        return NULL;
    }
    /* Zeroed: initialized is false until event_notifier_init succeeds. */
    self = (NotifierObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->notifier.rfd = -1;
    self->notifier.wfd = -1;
    ret = event_notifier_init(&self->notifier, 0);
    if (ret < 0) {
        notifier_set_errno(ret);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ---- methods --------------------------------------------------------- */

PyDoc_STRVAR(notifier_set_doc,
"set($self, /)\n--\n\n"
"event_notifier_set: make the notifier readable.  Thread-safe; the GIL is\n"
"released around the write.");

static PyObject *
notifier_set(NotifierObject *self, PyObject *Py_UNUSED(ignored))
{
    EventNotifier e;
    int ret;

    if (cev_notifier_check_open(self) < 0) {
        return NULL;
    }
    /*
     * Let a loop thread that wakes up find the GIL free: it would
     * otherwise wait for the GIL this thread still holds.
     * Without the GIL, use a copy: close() may run meanwhile.
     */
    e = self->notifier;
    Py_BEGIN_ALLOW_THREADS
    ret = event_notifier_set(&e);
    Py_END_ALLOW_THREADS
    if (ret < 0) {
        return notifier_set_errno(ret);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(notifier_test_and_clear_doc,
"test_and_clear($self, /)\n--\n\n"
"event_notifier_test_and_clear: clear the notifier; return whether it was\n"
"set.  Never blocks.");

static PyObject *
notifier_test_and_clear(NotifierObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_notifier_check_open(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(event_notifier_test_and_clear(&self->notifier));
}

PyDoc_STRVAR(notifier_fileno_doc,
"fileno($self, /)\n--\n\n"
"The descriptor to monitor: readable while the notifier is set.");

static PyObject *
notifier_fileno(NotifierObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_notifier_check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromLong(event_notifier_get_fd(&self->notifier));
}

PyDoc_STRVAR(notifier_close_doc,
"close($self, /)\n--\n\n"
"event_notifier_cleanup: close the descriptors.  Idempotent.");

static PyObject *
notifier_close(NotifierObject *self, PyObject *Py_UNUSED(ignored))
{
    notifier_close_impl(self);
    Py_RETURN_NONE;
}

static PyObject *
notifier_enter(NotifierObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_notifier_check_open(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
notifier_exit(NotifierObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    notifier_close_impl(self);
    Py_RETURN_NONE;
}

static PyObject *
notifier_get_closed(NotifierObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(!self->notifier.initialized);
}

/* ---- slots ----------------------------------------------------------- */

static PyObject *
notifier_repr(NotifierObject *self)
{
    if (!self->notifier.initialized) {
        return PyUnicode_FromString("<cevent.EventNotifier closed>");
    }
    return PyUnicode_FromFormat("<cevent.EventNotifier fd=%d>",
                                event_notifier_get_fd(&self->notifier));
}

static int
notifier_traverse(NotifierObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void
notifier_dealloc(NotifierObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    CEV_CLEAR_WEAKREFS(self);
    notifier_close_impl(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef notifier_methods[] = {
    {"set", (PyCFunction)notifier_set, METH_NOARGS, notifier_set_doc},
    {"test_and_clear", (PyCFunction)notifier_test_and_clear, METH_NOARGS,
     notifier_test_and_clear_doc},
    {"fileno", (PyCFunction)notifier_fileno, METH_NOARGS,
     notifier_fileno_doc},
    {"close", (PyCFunction)notifier_close, METH_NOARGS, notifier_close_doc},
    {"__enter__", (PyCFunction)notifier_enter, METH_NOARGS, NULL},
    {"__exit__", CEV_METH(notifier_exit), METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef notifier_getset[] = {
    {"closed", (getter)notifier_get_closed, NULL,
     "True once close() was called.", NULL},
    {NULL}
};

static PyMemberDef notifier_members[] = {
    CEV_WEAKREF_MEMBER(NotifierObject)
    {NULL}
};

PyDoc_STRVAR(notifier_doc,
"EventNotifier()\n--\n\n"
"QEMU's EventNotifier: an eventfd (a pipe where eventfd is missing) that\n"
"wakes a thread polling it.  set() is thread-safe.  A context manager:\n"
"leaving the with-block closes it.");

static PyType_Slot notifier_slots[] = {
    {Py_tp_new, notifier_new},
    {Py_tp_dealloc, notifier_dealloc},
    {Py_tp_traverse, notifier_traverse},
    {Py_tp_repr, notifier_repr},
    {Py_tp_methods, notifier_methods},
    {Py_tp_getset, notifier_getset},
    {Py_tp_members, notifier_members},
    {Py_tp_doc, (void *)notifier_doc},
    {0, NULL}
};

PyType_Spec cev_notifier_spec = {
    .name = "cevent.EventNotifier",
    .basicsize = sizeof(NotifierObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | CEV_WEAKREF_FLAG),
    .slots = notifier_slots,
};
