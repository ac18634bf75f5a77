/*
 * cevent._loopcore: _FdWatch, the fd handler of one fd registered by
 * cevent.Loop's selector.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "loopcore.h"

/*
 * The fd handler of one fd registered by cevent.Loop's selector: runs the
 * asyncio reader or writer handle of the fd's selector key while the loop's
 * _run_once() polls (outside debug mode), else puts it on the loop's ready
 * queue (what BaseSelectorEventLoop._process_events does for a selector's
 * event list), or has the selector drop a cancelled one as _process_events
 * does.  AioContext.set_fd_handler() calls its bound read_ready/write_ready
 * methods.
 */
typedef struct {
    PyObject_HEAD
    PyObject *key;          /* selectors.SelectorKey; data = (reader, writer) */
    PyObject *ready;        /* the loop's ready queue */
    PyObject *ready_append; /* its bound append */
    PyObject *selector;     /* has _drop_cancelled(fd, event) */
    PyObject *loop;         /* its loop (a _LoopCore), or NULL */
    cev_loop_config *cfg;   /* the module's (the type holds the module) */
} FdWatchObject;

#define WATCH_EVENT_READ 1      /* selectors.EVENT_READ */
#define WATCH_EVENT_WRITE 2     /* selectors.EVENT_WRITE */

static PyObject *
fdwatch_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", "ready", "selector", "loop", NULL};
    PyObject *key, *ready, *selector, *append, *loop = Py_None;
    FdWatchObject *self;
    loopcore_state *face = loopcore_state_by_type(type);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:_FdWatch", kwlist,
                                     &key, &ready, &selector, &loop)) {
        return NULL;
    }
    if (loop != Py_None &&
        !PyObject_TypeCheck(loop, face->LoopCoreType)) {
        PyErr_SetString(PyExc_TypeError,
                        "_FdWatch: loop must be a _LoopCore or None");
        return NULL;
    }
    append = PyObject_GetAttrString(ready, "append");
    if (append == NULL) {
        return NULL;
    }
    self = (FdWatchObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    self->key = Py_NewRef(key);
    self->ready = Py_NewRef(ready);
    self->ready_append = append;
    self->selector = Py_NewRef(selector);
    self->loop = loop == Py_None ? NULL : Py_NewRef(loop);
    self->cfg = &face->loop;
    return (PyObject *)self;
}

static int
fdwatch_traverse(FdWatchObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->key);
    Py_VISIT(self->ready);
    Py_VISIT(self->ready_append);
    Py_VISIT(self->selector);
    Py_VISIT(self->loop);
    return 0;
}

static int
fdwatch_clear(FdWatchObject *self)
{
    Py_CLEAR(self->key);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->ready_append);
    Py_CLEAR(self->selector);
    Py_CLEAR(self->loop);
    return 0;
}

static void
fdwatch_dealloc(FdWatchObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void)fdwatch_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/*
 * The reader (@index 0) or writer (1) handle of @key, borrowed.  The
 * key's positions come from cevent._asyncio_layout (configure()).
 */
static PyObject *
fdwatch_handle(cev_loop_config *cfg, PyObject *key, Py_ssize_t index)
{
    PyObject *data;

    if (cfg->key_size == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_FdWatch: selectors.SelectorKey does not have the "
                        "layout it reads");
        return NULL;
    }
    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != cfg->key_size) {
        PyErr_SetString(PyExc_TypeError,
                        "_FdWatch.key must be a selectors.SelectorKey");
        return NULL;
    }
    data = PyTuple_GET_ITEM(key, cfg->key_data);
    if (!PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "the selector key's data must be (reader, writer)");
        return NULL;
    }
    return PyTuple_GET_ITEM(data, index);
}

static PyObject *
fdwatch_ready(FdWatchObject *self, Py_ssize_t index, int event)
{
    cev_loop_config *cfg = self->cfg;
    PyObject *key, *handle, *res;
    bool plain;
    int cancelled, inline_io;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    /* Python code below (a handle's _cancelled) may replace self->key */
    key = Py_NewRef(self->key);
    handle = fdwatch_handle(cfg, key, index);
    if (handle == NULL || handle == Py_None) {
        Py_DECREF(key);
        return handle == NULL ? NULL : Py_NewRef(Py_None);
    }
    Py_INCREF(handle);
    plain = loopcore_is_plain(cfg, handle);
    cancelled = loopcore_handle_cancelled(cfg, handle, plain);
    if (cancelled < 0) {
        res = NULL;
    }
    else if (cancelled) {
        res = PyObject_CallMethod(self->selector, "_drop_cancelled", "Oi",
                                  PyTuple_GET_ITEM(key, cfg->key_fd), event);
    }
    else if ((inline_io = loopcore_runs_io_inline(
                  (LoopCoreObject *)self->loop)) < 0) {
        res = NULL;
    }
    else if (inline_io) {
        res = loopcore_run_live_handle(cfg, handle, plain) < 0 ? NULL
                                                               : Py_None;
        Py_XINCREF(res);
    }
    else {
        res = PyObject_Vectorcall(self->ready_append, &handle, 1, NULL);
    }
    Py_DECREF(handle);
    Py_DECREF(key);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(fdwatch_read_ready_doc,
"read_ready($self, /)\n--\n\n"
"The fd is readable: run the key's reader handle (while its loop's\n"
"_run_once() polls, outside debug mode) or queue it.");

static PyObject *
fdwatch_read_ready(FdWatchObject *self, PyObject *Py_UNUSED(ignored))
{
    return fdwatch_ready(self, 0, WATCH_EVENT_READ);
}

PyDoc_STRVAR(fdwatch_write_ready_doc,
"write_ready($self, /)\n--\n\n"
"The fd is writable: run the key's writer handle (while its loop's\n"
"_run_once() polls, outside debug mode) or queue it.");

static PyObject *
fdwatch_write_ready(FdWatchObject *self, PyObject *Py_UNUSED(ignored))
{
    return fdwatch_ready(self, 1, WATCH_EVENT_WRITE);
}

static PyObject *
fdwatch_get_key(FdWatchObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->key);
}

static int
fdwatch_set_key(FdWatchObject *self, PyObject *value,
                void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete key");
        return -1;
    }
    Py_SETREF(self->key, Py_NewRef(value));
    return 0;
}

static PyMethodDef fdwatch_methods[] = {
    {"read_ready", (PyCFunction)fdwatch_read_ready, METH_NOARGS,
     fdwatch_read_ready_doc},
    {"write_ready", (PyCFunction)fdwatch_write_ready, METH_NOARGS,
     fdwatch_write_ready_doc},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef fdwatch_members[] = {
    {"ready", T_OBJECT, offsetof(FdWatchObject, ready), READONLY,
     "The loop's ready queue."},
    {"selector", T_OBJECT, offsetof(FdWatchObject, selector), READONLY,
     "The selector that registered the fd."},
    {NULL}
};

static PyGetSetDef fdwatch_getset[] = {
    {"key", (getter)fdwatch_get_key, (setter)fdwatch_set_key,
     "The fd's selectors.SelectorKey (data: (reader, writer) handles).",
     NULL},
    {NULL}
};

PyDoc_STRVAR(fdwatch_doc,
"_FdWatch(key, ready, selector, loop=None)\n--\n\n"
"The fd handler of one fd registered by cevent.Loop's selector: runs the\n"
"key's reader or writer handle while loop's _run_once() polls (outside\n"
"debug mode), else queues it on the loop's ready queue.");

static PyType_Slot fdwatch_slots[] = {
    {Py_tp_new, fdwatch_new},
    {Py_tp_dealloc, fdwatch_dealloc},
    {Py_tp_traverse, fdwatch_traverse},
    {Py_tp_clear, fdwatch_clear},
    {Py_tp_methods, fdwatch_methods},
    {Py_tp_members, fdwatch_members},
    {Py_tp_getset, fdwatch_getset},
    {Py_tp_doc, (void *)fdwatch_doc},
    {0, NULL}
};

PyType_Spec cev_fdwatch_spec = {
    .name = "cevent._loopcore._FdWatch",
    .basicsize = sizeof(FdWatchObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = fdwatch_slots,
};
