/*
 * cevent._cevent: callback records and the trampolines that call Python.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * A record carries the Python callables of one registration (an fd
 * handler, an event notifier, a BH).  The port sees it only as the opaque
 * pointer of its node, and frees it through cev_record_release() when the
 * node is really freed.  The trampolines below are the only functions that
 * call Python callables; each runs with the GIL held (the port calls them
 * from aio_poll() outside the blocking hooks), holds strong references to
 * the callable and the context for the duration of the call, and never
 * returns to the port with an exception set.
 */

#include "module.h"

Py_ssize_t cev_live_records = 0;

#ifdef CEVENT_FAULT_INJECTION
/*
 * Fault injection (test builds only): N > 0 makes the Nth record
 * allocation from now on fail, once.  Set by _fault_inject("record_alloc").
 */
int cev_fault_record_alloc;

static bool
fault_record_alloc(void)
{
    if (cev_fault_record_alloc > 0 && --cev_fault_record_alloc == 0) {
        return true;
    }
    return false;
}
#endif

cev_record *
cev_record_new(ContextObject *ctx, cev_record_kind kind)
{
    cev_record *rec;

#ifdef CEVENT_FAULT_INJECTION
    rec = fault_record_alloc() ? NULL : PyMem_Calloc(1, sizeof(*rec));
#else
    rec = PyMem_Calloc(1, sizeof(*rec));
#endif
    if (rec == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    rec->owner = ctx;
    rec->kind = kind;
    QLIST_INSERT_HEAD(&ctx->records, rec, link);
    cev_live_records++;
    return rec;
}

/* GIL held. */
static void
record_free(cev_record *rec)
{
    assert(QLIST_IS_INSERTED(rec, link));
    QLIST_REMOVE(rec, link);
    cev_live_records--;

    /* Dropping the callables may run arbitrary code: do it last. */
    PyObject *objs[7] = {rec->io_read, rec->io_write, rec->io_poll,
                         rec->io_poll_ready, rec->io_poll_begin,
                         rec->io_poll_end, rec->arg};
    PyMem_Free(rec);
    for (int i = 0; i < 7; i++) {
        Py_XDECREF(objs[i]);
    }
}

void
cev_record_discard(cev_record *rec)
{
    record_free(rec);
}

/*
 * The port's release hook.  May be called on any thread, with or without
 * the GIL (the port calls it outside list_lock).
 */
void
cev_record_release(void *opaque)
{
    PyGILState_STATE gstate = PyGILState_Ensure();
    record_free((cev_record *)opaque);
    PyGILState_Release(gstate);
}

/*
 * Call @callable for @rec; with the notifier as argument for notifier
 * records.  Returns a new reference or NULL (exception stored).
 */
static PyObject *
record_call(cev_record *rec, PyObject *callable)
{
    ContextObject *ctx = rec->owner;
    PyObject *res;

    if (callable == NULL || callable == Py_None) {
        return Py_NewRef(Py_None);
    }
    /* The callback may replace or remove its own registration. */
    Py_INCREF(callable);
    Py_INCREF(ctx);
    if (rec->kind == CEV_REC_NOTIFIER) {
        PyObject *arg = Py_NewRef(rec->arg);
        res = PyObject_CallOneArg(callable, arg);
        Py_DECREF(arg);
    }
    else {
        res = PyObject_CallNoArgs(callable);
    }
    if (res == NULL) {
        cev_context_store_exception(ctx, callable);
    }
    Py_DECREF(ctx);
    Py_DECREF(callable);
    return res;
}

static void
record_call_void(cev_record *rec, PyObject *callable)
{
    PyObject *res = record_call(rec, callable);
    Py_XDECREF(res);
}

void
cev_io_read_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    record_call_void(rec, rec->io_read);
}

void
cev_io_write_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    record_call_void(rec, rec->io_write);
}

bool
cev_io_poll_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    PyObject *res = record_call(rec, rec->io_poll);
    int truth;

    if (res == NULL) {
        return false;
    }
    truth = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (truth < 0) {
        cev_context_store_exception(rec->owner, rec->io_poll);
        return false;
    }
    return truth != 0;
}

/* Called in the spin without the GIL: must not touch PyObjects. */
bool
cev_io_poll_native(void *opaque)
{
    cev_record *rec = opaque;
    return rec->native->poll(rec->native);
}

void
cev_io_poll_ready_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    record_call_void(rec, rec->io_poll_ready);
}

void
cev_io_poll_begin_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    record_call_void(rec, rec->io_poll_begin);
}

void
cev_io_poll_end_trampoline(void *opaque)
{
    cev_record *rec = opaque;
    record_call_void(rec, rec->io_poll_end);
}

void
cev_bh_trampoline(void *opaque)
{
    cev_record *rec = opaque;

    /* Dequeued: an idle BH's callable is its object's again (GC). */
    rec->loop_held = false;
    record_call_void(rec, rec->io_read);
}
