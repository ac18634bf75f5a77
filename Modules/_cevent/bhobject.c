/*
 * cevent._cevent: the BH type (a QEMU bottom half).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * A BHObject owns one QEMUBH made by aio_bh_new_full().  The Python
 * callable lives in a callback record (the QEMUBH's opaque), which the port
 * frees through cev_record_release() when it frees the QEMUBH.  The object
 * holds a strong reference to its context and is linked (borrowed) into
 * context->bhs so that close() can detach it.
 *
 * Lifetime of the QEMUBH:
 * - delete(): qemu_bh_delete(); the next aio_bh_poll() frees it.
 * - the object dies while the context is open: qemu_bh_orphan(), so that a
 *   scheduled BH still runs once (a BH handed to schedule() is a promise
 *   to run it, as docs/aiocontext.md's Lifetimes say) and is then freed; an unscheduled
 *   one is deleted.
 * - the context closes: qemu_bh_delete(), and the context's finalizer frees
 *   it.
 * - schedule() from a thread other than the home thread releases the GIL
 *   around qemu_bh_schedule(), so that the woken loop thread finds the GIL
 *   free.  Meanwhile the home
 *   thread may delete the BH and run aio_bh_poll(), or close the context.
 *   So the scheduler holds a reference to the AioContext (the finalizer
 *   waits for it) and counts itself in self->schedulers; delete() and
 *   close() leave qemu_bh_delete() to the last scheduler when that count is
 *   not zero.  All of this bookkeeping happens with the GIL held.
 */

#include "module.h"

/* ---- helpers --------------------------------------------------------- */

/* Remove @self from its context's list of BHs, if it is on it. */
static void
bh_unlink(BHObject *self)
{
    ContextObject *ctx = self->context;

    if (ctx != NULL) {
        QLIST_SAFE_REMOVE(self, link);
    }
}

/* Raise ValueError and return -1 if the BH is deleted or its context
 * closed, RuntimeError if the context belongs to another process (fork). */
static int
bh_check(BHObject *self)
{
    if (self->context != NULL &&
        cev_context_check_process(self->context) < 0) {
        return -1;
    }
    if (self->context == NULL || self->context->ctx == NULL) {
        cev_context_set_closed_error();
        return -1;
    }
    if (self->bh == NULL) {
        PyErr_SetString(PyExc_ValueError, "BH deleted");
        return -1;
    }
    return 0;
}

/*
 * Hand the record over to the context.  When the BH will never run again
 * (deleted), drop its callable at once rather than at the next
 * aio_bh_poll(), which frees the record.
 */
static void
bh_release_record(BHObject *self, bool will_run)
{
    cev_record *rec = self->rec;

    if (rec == NULL) {
        return;
    }
    self->rec = NULL;
    self->dropped_callable = NULL;
    rec->bh_obj = NULL;
    if (!will_run) {
        PyObject *callable = rec->io_read;

        rec->loop_held = false;
        rec->io_read = NULL;
        /*
         * The callable may hold the last reference to this object (a BH
         * whose callback refers to it): drop it only after the caller is
         * done with self.  Callers run it through bh_drop_later().
         */
        self->dropped_callable = callable;
    }
}

/*
 * Forget the QEMUBH: delete it now, or leave that to the last schedule()
 * still running without the GIL.
 */
static void
bh_forget(BHObject *self)
{
    QEMUBH *bh = self->bh;

    bh_release_record(self, false);
    self->bh = NULL;
    if (bh != NULL && self->schedulers == 0) {
        qemu_bh_delete(bh);
    }
}

PyObject *
cev_bh_new(ContextObject *ctx, PyObject *callable)
{
    cevent_state *state;
    BHObject *self;
    cev_record *rec;

    assert(ctx->ctx != NULL);
    if (!PyCallable_Check(callable)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(callable)->tp_name);
        return NULL;
    }
    state = cevent_state_by_type(Py_TYPE(ctx));
    self = PyObject_GC_New(BHObject, state->BHType);
    if (self == NULL) {
        return NULL;
    }
    self->context = NULL;
    self->bh = NULL;
    self->link.le_next = NULL;
    self->link.le_prev = NULL;
    self->weakreflist = NULL;
    self->schedulers = 0;
    self->rec = NULL;
    self->dropped_callable = NULL;

    rec = cev_record_new(ctx, CEV_REC_BH);
    if (rec == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    rec->io_read = Py_NewRef(callable);
    rec->bh_obj = self;
    self->rec = rec;
    self->bh = aio_bh_new_full(ctx->ctx, cev_bh_trampoline, rec, "python",
                               cev_record_release);
    self->context = (ContextObject *)Py_NewRef(ctx);

    QLIST_INSERT_HEAD(&ctx->bhs, self, link);

    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* Release a callable dropped by bh_release_record(), as the last step. */
static void
bh_drop_later(BHObject *self)
{
    PyObject *callable = self->dropped_callable;

    self->dropped_callable = NULL;
    Py_XDECREF(callable);
}

void
cev_bh_detach(BHObject *self)
{
    /* The context's finalizer frees the QEMUBH (and its record). */
    Py_INCREF(self);
    bh_forget(self);
    bh_unlink(self);
    bh_drop_later(self);
    Py_DECREF(self);
}

/* ---- methods --------------------------------------------------------- */

PyDoc_STRVAR(bh_schedule_doc,
"schedule($self, /)\n--\n\n"
"qemu_bh_schedule: run the callback at the context's next aio_poll()\n"
"(once, however often it is scheduled before).  Thread-safe.");

static PyObject *
bh_schedule(BHObject *self, PyObject *Py_UNUSED(ignored))
{
    ContextObject *context = self->context;
    QEMUBH *bh = self->bh;
    AioContext *ctx;

    if (bh_check(self) < 0) {
        return NULL;
    }
    self->rec->loop_held = true;
    if (!cev_context_wake_needs_release(context)) {
        qemu_bh_schedule(bh);
        Py_RETURN_NONE;
    }

    /*
     * Publish the wake-up with the GIL released, so that a spinning loop
     * thread finds the GIL free.  See the file comment for what keeps the
     * QEMUBH and the AioContext alive meanwhile.
     */
    ctx = context->ctx;
    Py_INCREF(self);
    aio_context_ref(ctx);
    self->schedulers++;
    Py_BEGIN_ALLOW_THREADS
    qemu_bh_schedule(bh);
    Py_END_ALLOW_THREADS
    if (--self->schedulers == 0 && self->bh == NULL) {
        /* Deleted or detached meanwhile: do the deferred delete. */
        qemu_bh_delete(bh);
    }
    aio_context_unref(ctx);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_schedule_idle_doc,
"schedule_idle($self, /)\n--\n\n"
"qemu_bh_schedule_idle: schedule in idle mode; running it is not progress\n"
"and it only forces a wake-up within 10 ms.");

static PyObject *
bh_schedule_idle(BHObject *self, PyObject *Py_UNUSED(ignored))
{
    if (bh_check(self) < 0) {
        return NULL;
    }
    self->rec->loop_held = true;
    qemu_bh_schedule_idle(self->bh);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_cancel_doc,
"cancel($self, /)\n--\n\n"
"qemu_bh_cancel: undo schedule() if the BH has not run yet.");

static PyObject *
bh_cancel(BHObject *self, PyObject *Py_UNUSED(ignored))
{
    if (bh_check(self) < 0) {
        return NULL;
    }
    self->rec->loop_held = false;
    qemu_bh_cancel(self->bh);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_delete_doc,
"delete($self, /)\n--\n\n"
"qemu_bh_delete: cancel the BH and free it.  Idempotent; any later call\n"
"but delete() raises ValueError.");

static PyObject *
bh_delete(BHObject *self, PyObject *Py_UNUSED(ignored))
{
    bh_forget(self);
    bh_unlink(self);
    bh_drop_later(self);
    Py_RETURN_NONE;
}

static PyObject *
bh_get_scheduled(BHObject *self, void *Py_UNUSED(closure))
{
    if (bh_check(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(qemu_bh_is_scheduled(self->bh));
}

/* ---- slots ----------------------------------------------------------- */

static PyObject *
bh_repr(BHObject *self)
{
    if (self->context == NULL || self->context->ctx == NULL) {
        return PyUnicode_FromString("<cevent.BH context closed>");
    }
    if (self->bh == NULL) {
        return PyUnicode_FromString("<cevent.BH deleted>");
    }
    return PyUnicode_FromFormat("<cevent.BH scheduled=%s>",
                                qemu_bh_is_scheduled(self->bh) ?
                                "True" : "False");
}

static int
bh_traverse(BHObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->context);
    /* The callable of an idle BH is ours (see cev_record in module.h). */
    if (self->rec != NULL && !self->rec->loop_held) {
        Py_VISIT(self->rec->io_read);
    }
    return 0;
}

static int
bh_clear(BHObject *self)
{
    QEMUBH *bh = self->bh;

    if (bh != NULL) {
        /* Nobody can be in schedule(): it holds a reference to self. */
        assert(self->schedulers == 0);
        self->bh = NULL;
        /* A scheduled BH runs once more and frees itself; else deleted. */
        bh_release_record(self, qemu_bh_is_scheduled(bh));
        qemu_bh_orphan(bh);
    }
    bh_unlink(self);
    Py_CLEAR(self->context);
    bh_drop_later(self);
    return 0;
}

static void
bh_dealloc(BHObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    CEV_CLEAR_WEAKREFS(self);
    (void)bh_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef bh_methods[] = {
    {"schedule", (PyCFunction)bh_schedule, METH_NOARGS, bh_schedule_doc},
    {"schedule_idle", (PyCFunction)bh_schedule_idle, METH_NOARGS,
     bh_schedule_idle_doc},
    {"cancel", (PyCFunction)bh_cancel, METH_NOARGS, bh_cancel_doc},
    {"delete", (PyCFunction)bh_delete, METH_NOARGS, bh_delete_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef bh_getset[] = {
    {"scheduled", (getter)bh_get_scheduled, NULL,
     "Whether the BH is scheduled and has not run yet.", NULL},
    {NULL}
};

static PyMemberDef bh_members[] = {
    CEV_WEAKREF_MEMBER(BHObject)
    {NULL}
};

PyDoc_STRVAR(bh_doc,
"A QEMU bottom half; made by AioContext.bh_new(callback).\n\n"
"A scheduled BH stays alive and runs even when nothing references it;\n"
"an unscheduled, unreferenced BH is deleted.");

static PyType_Slot bh_slots[] = {
    {Py_tp_dealloc, bh_dealloc},
    {Py_tp_traverse, bh_traverse},
    {Py_tp_clear, bh_clear},
    {Py_tp_repr, bh_repr},
    {Py_tp_methods, bh_methods},
    {Py_tp_getset, bh_getset},
    {Py_tp_members, bh_members},
    {Py_tp_doc, (void *)bh_doc},
    {0, NULL}
};

PyType_Spec cev_bh_spec = {
    .name = "cevent.BH",
    .basicsize = sizeof(BHObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
              CEV_WEAKREF_FLAG),
    .slots = bh_slots,
};
