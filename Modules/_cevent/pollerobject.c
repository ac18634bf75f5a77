/*
 * cevent._cevent: native pollers, io_poll functions that run in the
 * busy-poll spin without the GIL.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * Type hierarchy: cevent.Poller is an abstract base (BASETYPE, cannot be
 * instantiated) that holds the shared slots (dealloc, traverse, clear,
 * check(), target).  cevent.EventNotifierPoller and cevent.MemoryPoller
 * derive from it, are final, and share the PollerObject struct; each
 * constructor sets self->poll.  The context recognizes native pollers with
 * PyObject_TypeCheck(obj, state->PollerType) and calls self->poll through
 * cev_io_poll_native().
 *
 * The poll functions read only C fields that are set in the constructor
 * and change again only in clear, which the garbage collector runs only
 * on an unreachable poller, never one a registered handler still holds.
 */

#include "module.h"

#include <poll.h>

/* ---- poll functions -------------------------------------------------- */

/* After clear: never ready.  Any thread, no GIL needed. */
static bool
poller_poll_never(PollerObject *self)
{
    (void)self;
    return false;
}

/*
 * EventNotifierPoller: is the notifier's fd readable?  A zero-timeout
 * poll(), which does not consume the notification.
 * Called without the GIL; must not touch PyObjects.
 */
static bool
event_notifier_poller_poll(PollerObject *self)
{
    struct pollfd pfd = {.fd = self->fd, .events = POLLIN};
    int ret;

    do {
        ret = poll(&pfd, 1, 0);
    } while (ret < 0 && errno == EINTR);
    return ret > 0 && (pfd.revents & POLLIN) != 0;
}

/*
 * MemoryPoller: did the word change since the last check?  The first check
 * only records it.  The load is atomic on the naturally aligned word
 * (checked by the constructor); acquire ordering pairs with a producer's
 * release store of the word (e.g. a ring index), so that what it published
 * before is visible to the io_poll_ready callback.
 * Called without the GIL; must not touch PyObjects.
 */
static bool
memory_poller_poll(PollerObject *self)
{
    const char *p = (const char *)self->view.buf + self->offset;
    uint64_t value;

    switch (self->size) {
    case 1:
        value = __atomic_load_n((const uint8_t *)p, __ATOMIC_ACQUIRE);
        break;
    case 2:
        value = __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
        break;
    case 4:
        value = __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
        break;
    default:
        value = __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
        break;
    }
    if (!self->primed) {
        self->primed = true;
        self->last = value;
        return false;
    }
    if (value != self->last) {
        self->last = value;
        return true;
    }
    return false;
}

/* ---- cevent.Poller (abstract base) ----------------------------------- */

PyDoc_STRVAR(poller_check_doc,
"check($self, /)\n--\n\n"
"Run the poll function once, as the busy-poll spin does, and return\n"
"whether it reports ready.  A MemoryPoller shares its last-seen value\n"
"with the spin.");

static PyObject *
poller_check(PollerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->target == NULL) {
        PyErr_SetString(PyExc_ValueError, "poller released");
        return NULL;
    }
    return PyBool_FromLong(self->poll(self));
}

static PyObject *
poller_get_target(PollerObject *self, void *Py_UNUSED(closure))
{
    if (self->target == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->target);
}

static int
poller_traverse(PollerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->target);
    /* The held buffer owns a reference to its exporter. */
    Py_VISIT(self->view.obj);
    return 0;
}

static int
poller_clear(PollerObject *self)
{
    self->poll = poller_poll_never;
    Py_CLEAR(self->target);
    /* A no-op when no buffer is held (view.obj is NULL). */
    PyBuffer_Release(&self->view);
    return 0;
}

static void
poller_dealloc(PollerObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    CEV_CLEAR_WEAKREFS(self);
    (void)poller_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef poller_methods[] = {
    {"check", (PyCFunction)poller_check, METH_NOARGS, poller_check_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef poller_getset[] = {
    {"target", (getter)poller_get_target, NULL,
     "What is polled: the EventNotifier, or the buffer object.", NULL},
    {NULL}
};

static PyMemberDef poller_members[] = {
    CEV_WEAKREF_MEMBER(PollerObject)
    {NULL}
};

PyDoc_STRVAR(poller_doc,
"Base class of the native pollers, io_poll functions that run in the\n"
"busy-poll spin without the GIL.  Not instantiable; see\n"
"EventNotifierPoller and MemoryPoller.");

static PyType_Slot poller_slots[] = {
    {Py_tp_dealloc, poller_dealloc},
    {Py_tp_traverse, poller_traverse},
    {Py_tp_clear, poller_clear},
    {Py_tp_methods, poller_methods},
    {Py_tp_getset, poller_getset},
    {Py_tp_members, poller_members},
    {Py_tp_doc, (void *)poller_doc},
    {0, NULL}
};

PyType_Spec cev_poller_spec = {
    .name = "cevent.Poller",
    .basicsize = sizeof(PollerObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_BASETYPE |
              Py_TPFLAGS_DISALLOW_INSTANTIATION | CEV_WEAKREF_FLAG),
    .slots = poller_slots,
};

/* ---- cevent.EventNotifierPoller -------------------------------------- */

static PyObject *
event_notifier_poller_new(PyTypeObject *type, PyObject *args,
                          PyObject *kwds)
{
    static char *kwlist[] = {"notifier", NULL};
    cevent_state *state = cevent_state_by_type(type);
    NotifierObject *notifier;
    PollerObject *self;
    PyObject *obj;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:EventNotifierPoller",
                                     kwlist, &obj)) {
        return NULL;
    }
    if (!PyObject_TypeCheck(obj, state->NotifierType)) {
        PyErr_Format(PyExc_TypeError,
                     "notifier must be a cevent.EventNotifier, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    notifier = (NotifierObject *)obj;
    if (cev_notifier_check_open(notifier) < 0) {
        return NULL;
    }
    self = (PollerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->poll = event_notifier_poller_poll;
    self->target = Py_NewRef(obj);
    self->fd = event_notifier_get_fd(&notifier->notifier);
    return (PyObject *)self;
}

static PyObject *
event_notifier_poller_repr(PollerObject *self)
{
    if (self->target == NULL) {
        return PyUnicode_FromString("<cevent.EventNotifierPoller released>");
    }
    return PyUnicode_FromFormat("<cevent.EventNotifierPoller fd=%d>",
                                self->fd);
}

PyDoc_STRVAR(event_notifier_poller_doc,
"EventNotifierPoller(notifier)\n--\n\n"
"A native io_poll: ready while notifier (an open EventNotifier) is set.\n"
"It polls the notifier's descriptor with a zero timeout and does not\n"
"clear it.  Close the notifier only after removing the handler.");

static PyType_Slot event_notifier_poller_slots[] = {
    {Py_tp_new, event_notifier_poller_new},
    {Py_tp_dealloc, poller_dealloc},
    {Py_tp_traverse, poller_traverse},
    {Py_tp_clear, poller_clear},
    {Py_tp_repr, event_notifier_poller_repr},
    {Py_tp_members, poller_members},
    {Py_tp_doc, (void *)event_notifier_poller_doc},
    {0, NULL}
};

PyType_Spec cev_event_notifier_poller_spec = {
    .name = "cevent.EventNotifierPoller",
    .basicsize = sizeof(PollerObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | CEV_WEAKREF_FLAG),
    .slots = event_notifier_poller_slots,
};

/* ---- cevent.MemoryPoller --------------------------------------------- */

static PyObject *
memory_poller_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "size", NULL};
    Py_ssize_t offset = 0;
    PollerObject *self;
    PyObject *buffer;
    uintptr_t addr;
    int size = 8;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|ni:MemoryPoller", kwlist,
                                     &buffer, &offset, &size)) {
        return NULL;
    }
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        PyErr_Format(PyExc_ValueError,
                     "size must be 1, 2, 4 or 8 (bytes of the word), not %d",
                     size);
        return NULL;
    }
    if (offset < 0) {
        PyErr_Format(PyExc_ValueError, "offset must be >= 0, not %zd",
                     offset);
        return NULL;
    }
    if (offset % size != 0) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd is not a multiple of size %d: the word is "
                     "read with an atomic load, which needs natural "
                     "alignment", offset, size);
        return NULL;
    }

    self = (PollerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* Until the buffer is held: dealloc must not read it. */
    self->poll = poller_poll_never;
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0) {
        /* Word it as "w*" arguments do (socket.recv_into and friends). */
        if (PyErr_ExceptionMatches(PyExc_BufferError) ||
            PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError,
                         "buffer must be a writable bytes-like object, not "
                         "%.100s", Py_TYPE(buffer)->tp_name);
        }
        goto error;
    }
    if (offset > self->view.len - size) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd + size %d is past the end of the buffer "
                     "(%zd bytes)", offset, size, self->view.len);
        goto error;
    }
    addr = (uintptr_t)self->view.buf + (uintptr_t)offset;
    if (addr % (uintptr_t)size != 0) {
        PyErr_Format(PyExc_ValueError,
                     "the word at offset %zd is not aligned to %d bytes in "
                     "memory (the buffer itself starts unaligned); an "
                     "atomic load needs natural alignment", offset, size);
        goto error;
    }
    self->offset = offset;
    self->size = size;
    self->fd = -1;
    self->target = Py_NewRef(buffer);
    self->poll = memory_poller_poll;
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}

static PyObject *
memory_poller_get_offset(PollerObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->offset);
}

static PyObject *
memory_poller_get_size(PollerObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->size);
}

static PyObject *
memory_poller_repr(PollerObject *self)
{
    if (self->target == NULL) {
        return PyUnicode_FromString("<cevent.MemoryPoller released>");
    }
    return PyUnicode_FromFormat("<cevent.MemoryPoller offset=%zd size=%d>",
                                self->offset, self->size);
}

static PyGetSetDef memory_poller_getset[] = {
    {"offset", (getter)memory_poller_get_offset, NULL,
     "Byte offset of the polled word in the buffer.", NULL},
    {"size", (getter)memory_poller_get_size, NULL,
     "Size of the polled word in bytes (1, 2, 4 or 8).", NULL},
    {NULL}
};

PyDoc_STRVAR(memory_poller_doc,
"MemoryPoller(buffer, offset=0, size=8)\n--\n\n"
"A native io_poll: ready when the size-byte word (1, 2, 4 or 8) at\n"
"offset of a writable buffer (mmap, shared_memory, bytearray) differs\n"
"from its value at the last check; the first check only records it.  The\n"
"buffer is held (PEP 3118 export) while the poller lives.  offset must be\n"
"a multiple of size and offset + size at most the buffer's length.\n"
"\n"
"Call check() once before a producer may change the word: a change made\n"
"before the first check is recorded, not reported.  As for any io_poll,\n"
"the handler is busy-polled only once it has been dispatched (its fd\n"
"became ready once), and only while adaptive polling is on.");

static PyType_Slot memory_poller_slots[] = {
    {Py_tp_new, memory_poller_new},
    {Py_tp_dealloc, poller_dealloc},
    {Py_tp_traverse, poller_traverse},
    {Py_tp_clear, poller_clear},
    {Py_tp_repr, memory_poller_repr},
    {Py_tp_getset, memory_poller_getset},
    {Py_tp_members, poller_members},
    {Py_tp_doc, (void *)memory_poller_doc},
    {0, NULL}
};

PyType_Spec cev_memory_poller_spec = {
    .name = "cevent.MemoryPoller",
    .basicsize = sizeof(PollerObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | CEV_WEAKREF_FLAG),
    .slots = memory_poller_slots,
};
