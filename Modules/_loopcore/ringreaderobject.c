/*
 * cevent._loopcore: _RingReader, the reads of one socket transport
 * through the context's io_uring ring.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * On a cevent.Loop whose context uses io_uring, a socket transport with a
 * plain Protocol reads with IORING_OP_RECV requests instead of readiness:
 * one request at a time, into this object's own buffer, queued with the
 * C API's add_sqe() (QEMU 10.2's aio_add_sqe()), so the
 * kernel sees it in the loop's next poll together with that iteration's
 * other requests.  Its completion carries the bytes: no POLL_ADD re-armed
 * and no recv() made per read.  cevent._transport._SocketTransport decides
 * when a transport reads this way (start()) and when it stops (stop():
 * pause_reading, close, EOF kept open, a BufferedProtocol).
 *
 * A read that fills the buffer is followed by a non-blocking recv() of
 * the rest (transportobject.c), and switches the reader to poll mode: a
 * one-shot IORING_OP_POLL_ADD, then recv() into the module's shared read
 * buffer, as readiness does.  A bulk stream is read faster that way (its
 * bytes land in one cache-warm buffer in one piece, not first in a small
 * per-connection one); the first read smaller than the buffer switches
 * back to recv requests.
 *
 * A completion runs as an fd handler's reader handle does: at once while
 * the loop's _run_once() polls, outside debug mode and when nothing was
 * ready before (loopcore_runs_io_inline), else as a handle on the ready
 * queue.  What it read goes to the transport through
 * cev_transport_ring_result() (transportobject.c), with asyncio's
 * semantics; the next request is queued after data_received() returns,
 * if the transport still reads.
 *
 * Nothing read is lost.  stop() cancels the request in flight
 * (IORING_OP_ASYNC_CANCEL); if the kernel had completed it first, its
 * bytes (or EOF, or error) are held and delivered when reading starts
 * again (start()) or when the transport goes back to readiness (flush()).
 *
 * Lifetime: while a request (the recv or the cancel) is in flight, the
 * object holds a reference to itself, so the buffer and the CqeHandlers
 * the kernel and the context point to stay alive whatever Python drops.
 * The last completion releases it.  A context that closes with requests
 * in flight cancels and reaps them without calling their handlers: the
 * loop then calls _abandon(), which releases that reference.
 */

#include "loopcore.h"

#ifdef CONFIG_LINUX_IO_URING

#include <errno.h>
#include <poll.h>
#include <liburing.h>

/*
 * Bytes asked for by each recv request: the reader's own buffer, which it
 * keeps for its life.  asyncio's max_size (256 KiB) for every transport
 * would pin a quarter of a MiB per connection.  A read that fills it is
 * followed by a non-blocking recv() of what else the socket has, so that
 * a large message still comes in one data_received(), as asyncio reads it
 * (delivering it in buffer-sized pieces halved a 1-connection 100 KiB
 * echo), and starts poll mode (above).
 */
#define RING_RECV_SIZE (16 * 1024)

typedef struct {
    PyObject_HEAD
    PyObject *transport;        /* the socket transport read for */
    PyObject *loop;             /* its loop (a _LoopCore) */
    PyObject *context;          /* the loop's AioContext */
    PyObject *pycontext;        /* the contextvars.Context to deliver in,
                                 * as the reader handle asyncio would have
                                 * made (start()); NULL: the current one */
    cev_transport_config *tcfg; /* the module's (the type holds it) */
    cev_loop_config *lcfg;
    int fd;
    char *buf;                  /* RING_RECV_SIZE bytes */
    CEvent_CqeHandler recv_h;   /* the recv request */
    CEvent_CqeHandler cancel_h; /* the cancel of the recv request */
    unsigned recv_size;         /* of the request in flight */
    int held_res;               /* a completed recv's result, if held */
    unsigned held_off;          /* bytes of it delivered already */
    bool want;                  /* start()ed and not stop()ped */
    bool recv_inflight;
    bool cancel_inflight;
    bool held;                  /* held_res (and buf) not delivered yet */
    bool flushing;              /* deliver held_res though !want */
    bool queued;                /* a _deliver handle is on the ready queue */
    bool abandoned;             /* the context closed */
    bool poll_mode;             /* arm POLL_ADD, read with recv() */
    bool inflight_poll;         /* the request in flight is a POLL_ADD */
    bool held_readable;         /* what is held is POLL_ADD's "readable" */
    bool self_ref;              /* a reference to self is held */
    PyObject *weakreflist;
} RingReaderObject;

#define RINGREADER_METHOD(name, doc) \
    {#name, (PyCFunction)ringreader_##name, METH_NOARGS, doc}

static void
ringreader_prep_recv(struct io_uring_sqe *sqe, void *opaque)
{
    RingReaderObject *self = opaque;

    io_uring_prep_recv(sqe, self->fd, self->buf, self->recv_size, 0);
}

static void
ringreader_prep_poll(struct io_uring_sqe *sqe, void *opaque)
{
    RingReaderObject *self = opaque;

    io_uring_prep_poll_add(sqe, self->fd, POLLIN);
}

static void
ringreader_prep_cancel(struct io_uring_sqe *sqe, void *opaque)
{
    RingReaderObject *self = opaque;

    io_uring_prep_cancel64(sqe, CEVENT_SQE_USER_DATA(&self->recv_h), 0);
}

/*
 * Hold a reference to self while a request is in flight, drop it when
 * none is.  Dropping it may free self: the callers call this last.
 */
static void
ringreader_update_ref(RingReaderObject *self)
{
    bool busy = self->recv_inflight || self->cancel_inflight;

    if (busy && !self->self_ref) {
        self->self_ref = true;
        Py_INCREF(self);
    }
    else if (!busy && self->self_ref) {
        self->self_ref = false;
        Py_DECREF(self);
    }
}

/*
 * The context, if requests can be queued on it (it may have closed under
 * the loop), else NULL.  Leaves the error indicator as it was: a caller
 * may be passing on an exception.
 */
static CEvent_Context *
ringreader_ring(RingReaderObject *self)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    CEvent_Context *ctx;

    if (self->abandoned || self->context == NULL) {
        return NULL;
    }
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    ctx = CEvent_API->Context_AsContext(self->context);
    if (ctx == NULL) {
        PyErr_Clear();
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return ctx != NULL && CEvent_API->has_io_uring(ctx) ? ctx : NULL;
}

/* Queue one request; false if the context refused it (errno). */
static bool
ringreader_add(RingReaderObject *self, CEvent_Context *ctx,
               CEvent_PrepSqe *prep, CEvent_CqeHandler *handler)
{
    return CEvent_API->add_sqe(ctx, prep, self, handler) == 0;
}

/*
 * The transport's max_size (asyncio reads at most that much at a time),
 * within the buffer; the buffer's size if it is not a positive int.
 */
static unsigned
ringreader_recv_size(RingReaderObject *self)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    Py_ssize_t max_size;

    if (self->transport == NULL) {
        return RING_RECV_SIZE;
    }
    /* The caller may be passing on an exception from data_received() */
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    max_size = cev_transport_max_size(self->tcfg, self->transport);
    PyErr_Clear();
    PyErr_Restore(exc_type, exc_value, exc_tb);
    if (max_size <= 0 || max_size > RING_RECV_SIZE) {
        return RING_RECV_SIZE;
    }
    return (unsigned)max_size;
}

/*
 * Queue the next recv if the transport reads and nothing is pending.  Not
 * while a cancel is in flight either: it names its target by the recv's
 * user_data (&recv_h), which the next recv shares, so the next recv waits
 * for the cancel's completion (ringreader_cancel_done).
 */
static void
ringreader_arm(RingReaderObject *self)
{
    CEvent_Context *ctx;

    if (!self->want || self->recv_inflight || self->cancel_inflight ||
        self->held || (ctx = ringreader_ring(self)) == NULL) {
        return;
    }
    self->inflight_poll = self->poll_mode;
    if (!self->poll_mode) {
        self->recv_size = ringreader_recv_size(self);
    }
    self->recv_inflight = ringreader_add(
        self, ctx, self->poll_mode ? ringreader_prep_poll : ringreader_prep_recv,
        &self->recv_h);
}

static int ringreader_queue(RingReaderObject *self);

/*
 * Poll mode: the socket was readable.  Read it as readiness would, and go
 * back to recv requests once a read is smaller than the buffer.
 */
static int
ringreader_deliver_readable(RingReaderObject *self)
{
    PyObject *transport, *res;
    Py_ssize_t n;

    self->held = false;
    self->held_readable = false;
    self->flushing = false;
    transport = Py_NewRef(self->transport);
    res = cev_transport_ring_readable(self->tcfg, transport, &n);
    Py_DECREF(transport);
    if (n > 0 && n < RING_RECV_SIZE) {
        self->poll_mode = false;
    }
    /* EOF and errors: the transport stops reading or closes */
    ringreader_arm(self);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/*
 * Deliver the held result to the transport, then queue the next recv.
 * 0, or -1 with an exception set (SystemExit, KeyboardInterrupt, or a
 * failure of the transport's methods).
 */
static int
ringreader_deliver_held(RingReaderObject *self)
{
    PyObject *transport, *res;
    unsigned off, limit;
    int n, err = 0, rc = 0;
    bool full;

    if (!self->held || (!self->want && !self->flushing) ||
        self->transport == NULL) {
        return 0;
    }
    if (self->held_readable) {
        return ringreader_deliver_readable(self);
    }
    off = self->held_off;
    n = self->held_res - (int)off;
    full = off == 0 && n > 0 && (unsigned)n == self->recv_size;
    if (n > 0 && (unsigned)n > (limit = ringreader_recv_size(self))) {
        /*
         * max_size went down while the request was in flight: as many
         * reads of max_size as asyncio would make, the rest from the
         * ready queue.
         */
        n = (int)limit;
        self->held_off += limit;
    }
    else {
        self->held = false;
        self->flushing = false;
        self->held_off = 0;
    }
    transport = Py_NewRef(self->transport);
    res = cev_transport_ring_result(self->tcfg, transport, self->buf + off,
                                    n, full, &err);
    Py_DECREF(transport);
    if (res == NULL) {
        rc = -1;
    }
    Py_XDECREF(res);
    if (err != 0) {
        /* the socket's error after the bytes: the next read reports it */
        self->held = true;
        self->held_res = -err;
        self->held_off = 0;
    }
    if (self->held) {
        if (rc == 0) {
            rc = ringreader_queue(self);
        }
    }
    else if (n > 0) {
        /*
         * After EOF or an error the transport stops reading or closes.  A
         * read that filled the buffer starts poll mode: a bulk stream is
         * read faster by recv() into the shared buffer, as on readiness.
         */
        if (full && self->recv_size == RING_RECV_SIZE) {
            self->poll_mode = true;
        }
        ringreader_arm(self);
    }
    return rc;
}

/*
 * Put a handle that calls self._deliver() on the loop's ready queue,
 * once.  0, or -1 with an exception set.
 */
static int
ringreader_queue(RingReaderObject *self)
{
    PyObject *method, *args, *handle;
    int rc;

    if (self->queued || self->loop == NULL) {
        return 0;
    }
    method = PyObject_GetAttrString((PyObject *)self, "_deliver");
    if (method == NULL) {
        return -1;
    }
    args = PyTuple_New(0);
    if (args == NULL) {
        Py_DECREF(method);
        return -1;
    }
    handle = loopcore_make_handle(self->lcfg, self->lcfg->handle_type,
                                  self->loop, method, args, self->pycontext);
    Py_DECREF(args);
    Py_DECREF(method);
    if (handle == NULL) {
        return -1;
    }
    rc = loopcore_append_ready((LoopCoreObject *)self->loop, handle);
    Py_DECREF(handle);
    if (rc == 0) {
        self->queued = true;
    }
    return rc;
}

/*
 * A completion to deliver: now, as an fd handler runs its reader handle,
 * or from the ready queue.  Runs inside the context's poll: an exception
 * is kept by the context and raised by the poll (as an fd handler's).
 */
static void
ringreader_ready(RingReaderObject *self)
{
    int inline_io = loopcore_runs_io_inline((LoopCoreObject *)self->loop);
    int rc;

    if (inline_io < 0) {
        rc = -1;
    }
    else if (inline_io && !self->queued) {
        /* in the context the reader handle would run in */
        PyObject *ctx = Py_XNewRef(self->pycontext);

        if (ctx != NULL && PyContext_Enter(ctx) < 0) {
            rc = -1;        /* "cannot enter context", as Context.run */
        }
        else {
            rc = ringreader_deliver_held(self);
            if (ctx != NULL && PyContext_Exit(ctx) < 0) {
                rc = -1;
            }
        }
        Py_XDECREF(ctx);
    }
    else {
        rc = ringreader_queue(self);
    }
    if (rc < 0) {
        CEvent_API->Context_StoreException(self->context, (PyObject *)self);
    }
}

static void
ringreader_recv_done(CEvent_CqeHandler *handler)
{
    RingReaderObject *self = (RingReaderObject *)
        ((char *)handler - offsetof(RingReaderObject, recv_h));
    int res = handler->res;

    self->recv_inflight = false;
    if (res == -ECANCELED) {
        /* stop() took it back before it read anything */
        ringreader_arm(self);
    }
    else {
        self->held = true;
        /* a POLL_ADD's result (an event mask or an error) is not kept:
         * the read that follows finds what the socket has */
        self->held_readable = self->inflight_poll;
        self->held_res = res;
        self->held_off = 0;
        if (self->want && self->transport != NULL) {
            /* Python code may drop every other reference to self */
            Py_INCREF(self);
            ringreader_ready(self);
            Py_DECREF(self);
        }
    }
    ringreader_update_ref(self);
}

static void
ringreader_cancel_done(CEvent_CqeHandler *handler)
{
    RingReaderObject *self = (RingReaderObject *)
        ((char *)handler - offsetof(RingReaderObject, cancel_h));

    /* 0, -ENOENT (already completed) or -EALREADY: the recv's cqe tells */
    self->cancel_inflight = false;
    ringreader_arm(self);
    ringreader_update_ref(self);
}

static PyObject *
ringreader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    loopcore_state *face = loopcore_state_by_type(type);
    PyObject *loop, *transport;
    RingReaderObject *self;
    PyObject *context;
    CEvent_Context *ctx;
    int fd;

    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "_RingReader() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOi:_RingReader", &loop, &transport, &fd)) {
        return NULL;
    }
    if (!PyObject_TypeCheck(loop, face->LoopCoreType)) {
        PyErr_SetString(PyExc_TypeError,
                        "_RingReader: loop must be a _LoopCore");
        return NULL;
    }
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "invalid fd %d", fd);
        return NULL;
    }
    if (loopcore_check_configured(&face->loop) < 0) {
        return NULL;
    }
    context = ((LoopCoreObject *)loop)->context;
    if (context == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_RingReader: the loop has no context");
        return NULL;
    }
    ctx = CEvent_API->Context_AsContext(context);
    if (ctx == NULL) {
        return NULL;
    }
    if (!CEvent_API->has_io_uring(ctx)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_RingReader: the loop's context does not use "
                        "io_uring");
        return NULL;
    }
    self = (RingReaderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->buf = PyMem_RawMalloc(RING_RECV_SIZE);
    if (self->buf == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->transport = Py_NewRef(transport);
    self->loop = Py_NewRef(loop);
    self->context = Py_NewRef(context);
    self->tcfg = &face->transport;
    self->lcfg = &face->loop;
    self->fd = fd;
    self->recv_h.cb = ringreader_recv_done;
    self->cancel_h.cb = ringreader_cancel_done;
    return (PyObject *)self;
}

static int
ringreader_traverse(RingReaderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->transport);
    Py_VISIT(self->loop);
    Py_VISIT(self->context);
    Py_VISIT(self->pycontext);
    return 0;
}

static int
ringreader_clear(RingReaderObject *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->context);
    Py_CLEAR(self->pycontext);
    return 0;
}

static void
ringreader_dealloc(RingReaderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* No request is in flight: each holds a reference (self_ref). */
    assert(!self->recv_inflight && !self->cancel_inflight);
    PyObject_GC_UnTrack(self);
    PyObject_ClearWeakRefs((PyObject *)self);
    (void)ringreader_clear(self);
    PyMem_RawFree(self->buf);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

PyDoc_STRVAR(ringreader_start_doc,
"start($self, context=None, /)\n--\n\n"
"Read: queue a recv request, or deliver (from the ready queue) what a\n"
"request completed with while reading was stopped.  What is read is\n"
"delivered inside the contextvars.Context context (None: the current\n"
"one at each delivery), as asyncio runs its reader handle.");

static PyObject *
ringreader_start(RingReaderObject *self, PyObject *const *args,
                 Py_ssize_t nargs)
{
    PyObject *context = Py_None;

    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError,
                     "start() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    if (nargs == 1) {
        context = args[0];
    }
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError,
                     "start(): context must be a contextvars.Context or "
                     "None, not %.200s", Py_TYPE(context)->tp_name);
        return NULL;
    }
    if (!self->abandoned && self->context != NULL &&
        CEvent_API->Context_AsContext(self->context) == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            return NULL;        /* a fork child's context */
        }
        PyErr_Clear();          /* closed: as below */
    }
    if (ringreader_ring(self) == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the loop's context is closed");
        return NULL;
    }
    Py_XSETREF(self->pycontext,
               context == Py_None ? NULL : Py_NewRef(context));
    self->want = true;
    self->flushing = false;
    if (self->held) {
        if (ringreader_queue(self) < 0) {
            return NULL;
        }
    }
    else {
        ringreader_arm(self);
    }
    ringreader_update_ref(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ringreader_stop_doc,
"stop($self, /)\n--\n\n"
"Stop reading: cancel the recv request in flight.  What it completes\n"
"with anyway is held for start() or flush().");

static PyObject *
ringreader_stop(RingReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    CEvent_Context *ctx;

    self->want = false;
    if (self->recv_inflight && !self->cancel_inflight &&
        (ctx = ringreader_ring(self)) != NULL) {
        self->cancel_inflight = ringreader_add(self, ctx,
                                               ringreader_prep_cancel,
                                               &self->cancel_h);
    }
    ringreader_update_ref(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ringreader_flush_doc,
"flush($self, /)\n--\n\n"
"The transport reads through readiness from now on (stop() was called):\n"
"deliver what a recv request completed with, from the ready queue,\n"
"before anything readiness reads.");

static PyObject *
ringreader_flush(RingReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->held && self->held_readable) {
        /* nothing was read: readiness will find it */
        self->held = false;
        self->held_readable = false;
    }
    if (self->held && !self->want) {
        self->flushing = true;
        if (ringreader_queue(self) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ringreader__deliver_doc,
"_deliver($self, /)\n--\n\n"
"The queued delivery: pass the held completion to the transport.");

static PyObject *
ringreader__deliver(RingReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    self->queued = false;
    if (ringreader_deliver_held(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ringreader_detach_doc,
"detach($self, /)\n--\n\n"
"The transport's connection is lost: stop reading and drop the\n"
"transport, which holds this reader (a cycle that would otherwise wait\n"
"for the garbage collector).  A request still in flight completes into\n"
"nothing.");

static PyObject *
ringreader_detach(RingReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *res = ringreader_stop(self, NULL);

    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    self->held = false;
    self->flushing = false;
    Py_CLEAR(self->transport);
    Py_CLEAR(self->pycontext);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(ringreader__abandon_doc,
"_abandon($self, /)\n--\n\n"
"The loop's context has closed: its requests were cancelled and reaped\n"
"without their completions; forget them.");

static PyObject *
ringreader__abandon(RingReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->context != NULL &&
        CEvent_API->Context_AsContext(self->context) != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_abandon() before the context closed");
        return NULL;
    }
    PyErr_Clear();
    self->abandoned = true;
    self->want = false;
    self->held = false;
    self->recv_inflight = false;
    self->cancel_inflight = false;
    Py_INCREF(self);
    ringreader_update_ref(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
ringreader_get_state(RingReaderObject *self, void *Py_UNUSED(closure))
{
    return Py_BuildValue("{sOsOsOsOsOsO}",
                         "poll_mode", self->poll_mode ? Py_True : Py_False,
                         "reading", self->want ? Py_True : Py_False,
                         "recv_inflight",
                         self->recv_inflight ? Py_True : Py_False,
                         "cancel_inflight",
                         self->cancel_inflight ? Py_True : Py_False,
                         "held", self->held ? Py_True : Py_False,
                         "abandoned", self->abandoned ? Py_True : Py_False);
}

static PyMethodDef ringreader_methods[] = {
    {"start", (PyCFunction)(void (*)(void))ringreader_start, METH_FASTCALL,
     ringreader_start_doc},
    RINGREADER_METHOD(stop, ringreader_stop_doc),
    RINGREADER_METHOD(flush, ringreader_flush_doc),
    RINGREADER_METHOD(detach, ringreader_detach_doc),
    RINGREADER_METHOD(_deliver, ringreader__deliver_doc),
    RINGREADER_METHOD(_abandon, ringreader__abandon_doc),
    {NULL, NULL, 0, NULL}
};

static PyMemberDef ringreader_members[] = {
    /* weak references (Loop._ring_readers), the way every version has */
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(RingReaderObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyGetSetDef ringreader_getset[] = {
    {"state", (getter)ringreader_get_state, NULL,
     "A dict of the reader's flags (for tests and debugging).", NULL},
    {NULL}
};

PyDoc_STRVAR(ringreader_doc,
"_RingReader(loop, transport, fd, /)\n--\n\n"
"The reads of a socket transport of loop (a _LoopCore whose context uses\n"
"io_uring) through the ring: recv requests into the reader's buffer,\n"
"delivered to the transport as its _read_ready__data_received() would.");

static PyType_Slot ringreader_slots[] = {
    {Py_tp_new, ringreader_new},
    {Py_tp_dealloc, ringreader_dealloc},
    {Py_tp_traverse, ringreader_traverse},
    {Py_tp_clear, ringreader_clear},
    {Py_tp_methods, ringreader_methods},
    {Py_tp_members, ringreader_members},
    {Py_tp_getset, ringreader_getset},
    {Py_tp_doc, (void *)ringreader_doc},
    {0, NULL}
};

PyType_Spec cev_ringreader_spec = {
    .name = "cevent._loopcore._RingReader",
    .basicsize = sizeof(RingReaderObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE),
    .slots = ringreader_slots,
};

#endif /* CONFIG_LINUX_IO_URING */
