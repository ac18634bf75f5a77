/*
 * cevent._cevent: the LockCnt type (QEMU's QemuLockCnt).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * Every operation that may sleep (lock, inc at count 0, dec_and_lock,
 * dec_if_lock) runs with the GIL released: the thread that holds the lock
 * needs the GIL to call unlock().  Operations that never sleep (dec,
 * unlock, inc_and_unlock) keep it.
 *
 * Misuse that would corrupt the state raises RuntimeError instead.  The
 * checks read the state while holding the GIL, which orders them against
 * the checks and non-sleeping operations of every other Python thread.
 * They cannot see an operation that another thread has started with the
 * GIL released but not finished (e.g. two threads that both call
 * dec_and_lock() at count 1): such races between callers are misuse of
 * the primitive itself, as in QEMU.
 *
 * The object holds no Python references; it is a GC type only because
 * weak references to it need one on 3.12+ (Py_TPFLAGS_MANAGED_WEAKREF
 * requires Py_TPFLAGS_HAVE_GC).
 */

#include "module.h"

static PyObject *
lockcnt_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    LockCntObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":LockCnt", kwlist)) {
        return NULL;
    }
    self = (LockCntObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    qemu_lockcnt_init(&self->lockcnt);
    return (PyObject *)self;
}

/* ---- methods --------------------------------------------------------- */

PyDoc_STRVAR(lockcnt_inc_doc,
"inc($self, /)\n--\n\n"
"qemu_lockcnt_inc: start a visit (count + 1).  May block: at count 0 it\n"
"waits until the lock is free (the GIL is released meanwhile).  Calling it\n"
"at count 0 while holding the lock deadlocks, as in QEMU.");

static PyObject *
lockcnt_inc(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    /*
     * Even at a non-zero count another thread's dec_and_lock() may bring
     * it to 0 and take the lock before this call runs: always release.
     */
    Py_BEGIN_ALLOW_THREADS
    qemu_lockcnt_inc(&self->lockcnt);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lockcnt_dec_doc,
"dec($self, /)\n--\n\n"
"qemu_lockcnt_dec: end a visit (count - 1).  Never blocks.  RuntimeError\n"
"at count 0 (nothing is changed).");

static PyObject *
lockcnt_dec(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    if (qemu_lockcnt_count(&self->lockcnt) == 0) {
        PyErr_SetString(PyExc_RuntimeError, "LockCnt.dec() at count 0");
        return NULL;
    }
    qemu_lockcnt_dec(&self->lockcnt);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lockcnt_dec_and_lock_doc,
"dec_and_lock($self, /)\n--\n\n"
"qemu_lockcnt_dec_and_lock: end a visit; if the count reaches 0, also take\n"
"the lock and return True, else return False (not locked).  May block for\n"
"the lock (the GIL is released meanwhile).  RuntimeError at count 0.");

static PyObject *
lockcnt_dec_and_lock(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    bool locked;

    if (qemu_lockcnt_count(&self->lockcnt) == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "LockCnt.dec_and_lock() at count 0");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    locked = qemu_lockcnt_dec_and_lock(&self->lockcnt);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(locked);
}

PyDoc_STRVAR(lockcnt_dec_if_lock_doc,
"dec_if_lock($self, /)\n--\n\n"
"qemu_lockcnt_dec_if_lock: if the count is 1, make it 0, take the lock\n"
"and return True; otherwise (count 0 included) change nothing and return\n"
"False.  May block for the lock (the GIL is released meanwhile).");

static PyObject *
lockcnt_dec_if_lock(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    bool locked;

    /*
     * QEMU's contract returns false at count 0; its futex code would take
     * the lock there instead, so do not call it.
     */
    if (qemu_lockcnt_count(&self->lockcnt) != 1) {
        Py_RETURN_FALSE;
    }
    /* The count may still change while this waits; the port handles it. */
    Py_BEGIN_ALLOW_THREADS
    locked = qemu_lockcnt_dec_if_lock(&self->lockcnt);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(locked);
}

PyDoc_STRVAR(lockcnt_lock_doc,
"lock($self, /)\n--\n\n"
"qemu_lockcnt_lock: take the lock; the count is unchanged.  May block (the\n"
"GIL is released meanwhile).  Not recursive: taking it twice deadlocks.");

static PyObject *
lockcnt_lock(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_ALLOW_THREADS
    qemu_lockcnt_lock(&self->lockcnt);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lockcnt_unlock_doc,
"unlock($self, /)\n--\n\n"
"qemu_lockcnt_unlock: release the lock.  Never blocks.  RuntimeError when\n"
"it is not locked.");

static PyObject *
lockcnt_unlock(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!qemu_lockcnt_is_locked(&self->lockcnt)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "LockCnt.unlock() when not locked");
        return NULL;
    }
    qemu_lockcnt_unlock(&self->lockcnt);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lockcnt_inc_and_unlock_doc,
"inc_and_unlock($self, /)\n--\n\n"
"qemu_lockcnt_inc_and_unlock: count + 1 and release the lock, atomically.\n"
"Never blocks.  RuntimeError when it is not locked.");

static PyObject *
lockcnt_inc_and_unlock(LockCntObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!qemu_lockcnt_is_locked(&self->lockcnt)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "LockCnt.inc_and_unlock() when not locked");
        return NULL;
    }
    qemu_lockcnt_inc_and_unlock(&self->lockcnt);
    Py_RETURN_NONE;
}

static PyObject *
lockcnt_get_count(LockCntObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(qemu_lockcnt_count(&self->lockcnt));
}

/* ---- slots ----------------------------------------------------------- */

static PyObject *
lockcnt_repr(LockCntObject *self)
{
    return PyUnicode_FromFormat("<cevent.LockCnt count=%u locked=%s>",
                                qemu_lockcnt_count(&self->lockcnt),
                                qemu_lockcnt_is_locked(&self->lockcnt) ?
                                "True" : "False");
}

static int
lockcnt_traverse(LockCntObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void
lockcnt_dealloc(LockCntObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* No waiter can be left: each holds a reference to self. */
    PyObject_GC_UnTrack(self);
    CEV_CLEAR_WEAKREFS(self);
    qemu_lockcnt_destroy(&self->lockcnt);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef lockcnt_methods[] = {
    {"inc", (PyCFunction)lockcnt_inc, METH_NOARGS, lockcnt_inc_doc},
    {"dec", (PyCFunction)lockcnt_dec, METH_NOARGS, lockcnt_dec_doc},
    {"dec_and_lock", (PyCFunction)lockcnt_dec_and_lock, METH_NOARGS,
     lockcnt_dec_and_lock_doc},
    {"dec_if_lock", (PyCFunction)lockcnt_dec_if_lock, METH_NOARGS,
     lockcnt_dec_if_lock_doc},
    {"lock", (PyCFunction)lockcnt_lock, METH_NOARGS, lockcnt_lock_doc},
    {"unlock", (PyCFunction)lockcnt_unlock, METH_NOARGS, lockcnt_unlock_doc},
    {"inc_and_unlock", (PyCFunction)lockcnt_inc_and_unlock, METH_NOARGS,
     lockcnt_inc_and_unlock_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef lockcnt_getset[] = {
    {"count", (getter)lockcnt_get_count, NULL,
     "The visit count (a snapshot).", NULL},
    {NULL}
};

static PyMemberDef lockcnt_members[] = {
    CEV_WEAKREF_MEMBER(LockCntObject)
    {NULL}
};

PyDoc_STRVAR(lockcnt_doc,
"LockCnt()\n--\n\n"
"QEMU's QemuLockCnt: a count of concurrent visits paired with a lock that\n"
"protects freeing what is visited.  lock(), inc() at count 0,\n"
"dec_and_lock() and dec_if_lock() may block and release the GIL while\n"
"they wait.");

static PyType_Slot lockcnt_slots[] = {
    {Py_tp_new, lockcnt_new},
    {Py_tp_dealloc, lockcnt_dealloc},
    {Py_tp_traverse, lockcnt_traverse},
    {Py_tp_repr, lockcnt_repr},
    {Py_tp_methods, lockcnt_methods},
    {Py_tp_getset, lockcnt_getset},
    {Py_tp_members, lockcnt_members},
    {Py_tp_doc, (void *)lockcnt_doc},
    {0, NULL}
};

PyType_Spec cev_lockcnt_spec = {
    .name = "cevent.LockCnt",
    .basicsize = sizeof(LockCntObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | CEV_WEAKREF_FLAG),
    .slots = lockcnt_slots,
};
