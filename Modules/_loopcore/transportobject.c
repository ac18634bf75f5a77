/*
 * cevent._loopcore._SocketTransportCore: the native hot paths of cevent.Loop's
 * socket transport.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * cevent._transport._SocketTransport is asyncio's own
 * selector_events._SelectorSocketTransport with this type first in its
 * bases, so that the three methods below replace asyncio's Python ones and
 * everything else (close, pause_reading, write_eof, sendfile, the write
 * buffer and its _write_ready, BufferedProtocol reads, ...) stays
 * asyncio's.  The type has no state of its own (asyncio's transport
 * classes have __slots__, so a base with a C layout could not be mixed in):
 * the methods read the transport's attributes (_sock_fd, _protocol,
 * _conn_lost, _buffer, ...) as asyncio's code writes them, from the
 * instance dict.
 *
 * - _read_ready(): calls self._read_ready_cb(), as asyncio does (without
 *   a call when that is _read_ready__data_received, asyncio's choice for
 *   a Protocol).
 * - _read_ready__data_received(): the fd is readable.  recv() into the
 *   module's read buffer, then protocol.data_received(bytes).  asyncio's
 *   sock.recv(max_size) allocates max_size (256 KiB) for every read and
 *   shrinks it, which glibc serves with mmap/mremap/munmap; one buffer and
 *   a copy of the bytes received give data_received() the same bytes.
 * - write(data): the common case, bytes written to a transport whose
 *   buffer is empty, is one send(); anything else (a partial send, a full
 *   socket buffer, another type, a closing or paused-by-sendfile
 *   transport) goes to asyncio's write() through self._write_slow(data),
 *   which raises, buffers, adds the writer and pauses the protocol as
 *   asyncio does.
 *
 * Errors follow asyncio: EAGAIN/EINTR are not errors; any other errno is
 * an OSError (of the errno's subclass) passed to self._fatal_error() with
 * asyncio's message; SystemExit and KeyboardInterrupt from
 * data_received() propagate, any other exception goes to _fatal_error().
 *
 * The syscalls are non-blocking (MSG_DONTWAIT) and made with the GIL held,
 * like the rest of the loop's work: the GIL is released only in the wait
 * and the busy-poll spin (module.h).  The read buffer is shared by every
 * transport of the module: it is filled and copied out with the GIL held
 * and before any Python code runs.
 */

#include "loopcore.h"

#include <errno.h>
#include <sys/socket.h>

/* asyncio's _SelectorSocketTransport.max_size */
#define TRANSPORT_RECV_MAX (256 * 1024)


int
cev_transport_state_init(cev_transport_config *cfg)
{
    /* The names come from configure() (transport_attrs) */
    for (int i = 0; i < CEV_TRANSPORT_NAMES; i++) {
        cfg->names[i] = NULL;
    }
    cfg->recv_buf = NULL;
    return 0;
}

void
cev_transport_state_clear(cev_transport_config *cfg)
{
    for (int i = 0; i < CEV_TRANSPORT_NAMES; i++) {
        Py_CLEAR(cfg->names[i]);
    }
}

void
cev_transport_state_free(cev_transport_config *cfg)
{
    PyMem_RawFree(cfg->recv_buf);
    cfg->recv_buf = NULL;
}

#define NAME(cfg, which) ((cfg)->names[CEV_TN_##which])

/* The shared read buffer, allocated on first use; NULL: no memory. */
static char *
transport_recv_buf(cev_transport_config *cfg)
{
    if (cfg->recv_buf == NULL) {
        cfg->recv_buf = PyMem_RawMalloc(TRANSPORT_RECV_MAX);
        if (cfg->recv_buf == NULL) {
            PyErr_NoMemory();
        }
    }
    return cfg->recv_buf;
}

/*
 * _sock_recv_nowait(fd, n): what loop.sock_recv() tries before it waits
 * (cevent._sockops).  sock.recv(n) on a non-blocking socket raises
 * BlockingIOError when nothing is there, which is most of the time in a
 * request/response server: the exception, with its message decoded from
 * the locale, costs more than the recv() itself.  This returns None then,
 * and never blocks (MSG_DONTWAIT).  The bytes are read into the shared
 * read buffer and copied into a bytes object of their size, not into one
 * of n bytes shrunk afterwards (which glibc may serve with mmap).
 */
PyObject *
cev_sock_recv_nowait(PyObject *module, PyObject *const *args,
                     Py_ssize_t nargs)
{
    cev_transport_config *cfg;
    PyObject *data = NULL;
    char *buf;
    Py_ssize_t n;
    ssize_t got;
    int fd;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "_sock_recv_nowait expected 2 arguments, got %zd",
                     nargs);
        return NULL;
    }
    fd = PyLong_AsInt(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* As socket.recv(): any object with __index__ */
    n = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    if (n == 0) {
        /* As socket.recv(0): no system call, so never None or an error. */
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    if (n <= TRANSPORT_RECV_MAX) {
        cfg = &((loopcore_state *)PyModule_GetState(module))->transport;
        buf = transport_recv_buf(cfg);
        if (buf == NULL) {
            return NULL;
        }
    }
    else {
        /* Larger than the shared buffer: into a bytes object of n. */
        data = PyBytes_FromStringAndSize(NULL, n);
        if (data == NULL) {
            return NULL;
        }
        buf = PyBytes_AS_STRING(data);
    }
    got = recv(fd, buf, (size_t)n, MSG_DONTWAIT);
    if (got < 0) {
        int err = errno;

        Py_XDECREF(data);
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            Py_RETURN_NONE;
        }
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (data == NULL) {
        return PyBytes_FromStringAndSize(buf, got);
    }
    if (got != n && _PyBytes_Resize(&data, got) < 0) {
        return NULL;
    }
    return data;
}

/* The names, or NULL with RuntimeError before configure(). */
static cev_transport_config *
transport_config(PyTypeObject *defining_class)
{
    cev_transport_config *cfg =
        &((loopcore_state *)PyType_GetModuleState(defining_class))->transport;

    if (cfg->names[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cevent._loopcore.configure() was not called");
        return NULL;
    }
    return cfg;
}

/*
 * Attribute @name of @self (new reference, or NULL with an exception set).
 * asyncio's transports keep the attributes read here in the instance
 * dict, so @dict (the instance dict, or NULL) is looked at first; the
 * generic lookup serves anything else.
 */
static PyObject *
transport_attr(PyObject *self, PyObject *dict, PyObject *name)
{
    if (dict != NULL) {
        PyObject *value = PyDict_GetItemWithError(dict, name);

        if (value != NULL) {
            return Py_NewRef(value);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetAttr(self, name);
}

/* The instance dict of @self, or NULL (no exception) if it has none. */
static PyObject *
transport_dict(PyObject *self)
{
    PyObject *dict = PyObject_GenericGetDict(self, NULL);

    if (dict == NULL || !PyDict_Check(dict)) {
        Py_XDECREF(dict);
        PyErr_Clear();
        return NULL;
    }
    return dict;
}

/* Is attribute @name of @self true?  -1 with an exception set on failure. */
static int
transport_attr_true(PyObject *self, PyObject *dict, PyObject *name)
{
    PyObject *value = transport_attr(self, dict, name);
    int res;

    if (value == NULL) {
        return -1;
    }
    res = PyObject_IsTrue(value);
    Py_DECREF(value);
    return res;
}

/* Is attribute @name of @self None?  -1 with an exception set on failure. */
static int
transport_attr_none(PyObject *self, PyObject *dict, PyObject *name)
{
    PyObject *value = transport_attr(self, dict, name);

    if (value == NULL) {
        return -1;
    }
    Py_DECREF(value);
    return value == Py_None;
}

/*
 * self._sock_fd, the socket's fd as asyncio's transport registers it.  The
 * callers check _conn_lost first: asyncio closes the socket only after
 * setting it.  -1 with an exception set on failure.
 */
static int
transport_sock_fd(cev_transport_config *cfg, PyObject *self, PyObject *dict)
{
    PyObject *value = transport_attr(self, dict, NAME(cfg, _sock_fd));
    int fd;

    if (value == NULL) {
        return -1;
    }
    fd = PyLong_AsInt(value);
    Py_DECREF(value);
    if (fd < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "the transport has no socket");
    }
    return fd < 0 ? -1 : fd;
}

/*
 * self._fatal_error(exc, message) with the exception that is set, as
 * asyncio's "except BaseException as exc" does.  SystemExit and
 * KeyboardInterrupt propagate instead (NULL).  Returns None, or NULL with
 * an exception set.
 */
static PyObject *
transport_fatal_error(cev_transport_config *cfg, PyObject *self,
                      const char *message)
{
    PyObject *value, *msg, *res;

    value = cev_catch_exception();
    if (value == NULL) {
        return NULL;
    }
    msg = PyUnicode_FromString(message);
    if (msg == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    res = PyObject_CallMethodObjArgs(self, NAME(cfg, _fatal_error), value,
                                     msg, NULL);
    Py_DECREF(msg);
    Py_DECREF(value);
    return res;
}

/* ---- reading ----------------------------------------------------------- */

static PyObject *transport_data_received(cev_transport_config *cfg,
                                         PyObject *self, PyObject *dict,
                                         Py_ssize_t *nread);
static PyObject *transport_read_ready__data_received(
    PyObject *self, PyTypeObject *defining_class, PyObject *const *args,
    Py_ssize_t nargs, PyObject *kwnames);

PyDoc_STRVAR(transport_read_ready_doc,
"_read_ready($self, /)\n--\n\n"
"The socket is readable: self._read_ready_cb().");

static PyObject *
transport_read_ready(PyObject *self, PyTypeObject *defining_class,
                     PyObject *const *Py_UNUSED(args), Py_ssize_t nargs,
                     PyObject *kwnames)
{
    cev_transport_config *cfg = transport_config(defining_class);
    Py_ssize_t nread;

    if (cfg == NULL) {
        return NULL;
    }
    if (cev_check_no_args("_read_ready", nargs, kwnames) < 0) {
        return NULL;
    }
    return cev_transport_ring_readable(cfg, self, &nread);
}

/* Is @cb (self._read_ready_cb) asyncio's choice for a Protocol? */
static bool
transport_cb_is_plain(PyObject *self, PyObject *cb)
{
    return PyCFunction_Check(cb) && PyCFunction_GET_SELF(cb) == self &&
           PyCFunction_GET_FUNCTION(cb) ==
           CEV_METH(transport_read_ready__data_received);
}

/*
 * self.max_size (asyncio reads at most that much at a time): 0 if it is
 * not a positive int, -1 with an exception set if it cannot be read.
 */
static Py_ssize_t
transport_max_size(cev_transport_config *cfg, PyObject *self, PyObject *dict)
{
    PyObject *value = transport_attr(self, dict, NAME(cfg, max_size));
    Py_ssize_t max_size;

    if (value == NULL) {
        return -1;
    }
    max_size = PyLong_Check(value) ? PyLong_AsSsize_t(value) : 0;
    Py_DECREF(value);
    if (max_size <= 0) {
        PyErr_Clear();          /* an overflowing int: not asyncio's */
        return 0;
    }
    return max_size;
}

Py_ssize_t
cev_transport_max_size(cev_transport_config *cfg, PyObject *self)
{
    return transport_max_size(cfg, self, NULL);
}

/*
 * protocol.data_received(@data), as asyncio's reads call it: any exception
 * but SystemExit and KeyboardInterrupt goes to _fatal_error().  Returns
 * None, or NULL with an exception set.
 */
static PyObject *
transport_pass_data(cev_transport_config *cfg, PyObject *self,
                    PyObject *dict, PyObject *data)
{
    PyObject *protocol, *res;

    protocol = transport_attr(self, dict, NAME(cfg, _protocol));
    if (protocol == NULL) {
        return NULL;
    }
    res = PyObject_CallMethodOneArg(protocol, NAME(cfg, data_received),
                                    data);
    Py_DECREF(protocol);
    if (res == NULL) {
        return transport_fatal_error(
            cfg, self, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/*
 * What _read_ready__data_received() does, with @dict the instance dict of
 * @self (or NULL).  *@nread (if not NULL) is set to what recv() returned,
 * or -1 when no recv() was made here or it failed.
 */
static PyObject *
transport_data_received(cev_transport_config *cfg, PyObject *self,
                        PyObject *dict, Py_ssize_t *nread)
{
    PyObject *data, *res;
    Py_ssize_t max_size, n, unused;
    int conn_lost, fd;

    if (nread == NULL) {
        nread = &unused;
    }
    *nread = -1;

    conn_lost = transport_attr_true(self, dict, NAME(cfg, _conn_lost));
    if (conn_lost != 0) {
        return conn_lost < 0 ? NULL : Py_NewRef(Py_None);
    }
    max_size = transport_max_size(cfg, self, dict);
    if (max_size < 0) {
        return NULL;
    }
    if (max_size == 0 || max_size > TRANSPORT_RECV_MAX) {
        /* Not what asyncio sets: asyncio's own path. */
        return PyObject_CallMethodNoArgs(
            self, NAME(cfg, _read_ready__data_received_slow));
    }
    fd = transport_sock_fd(cfg, self, dict);
    if (fd < 0) {
        return transport_fatal_error(cfg, self,
                                     "Fatal read error on socket transport");
    }
    if (transport_recv_buf(cfg) == NULL) {
        return NULL;
    }
    n = recv(fd, cfg->recv_buf, (size_t)max_size, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            *nread = 0;
            Py_RETURN_NONE;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return transport_fatal_error(cfg, self,
                                     "Fatal read error on socket transport");
    }
    if (n == 0) {
        return PyObject_CallMethodNoArgs(self,
                                         NAME(cfg, _read_ready__on_eof));
    }
    *nread = n;
    data = PyBytes_FromStringAndSize(cfg->recv_buf, n);
    if (data == NULL) {
        return NULL;
    }
    res = transport_pass_data(cfg, self, dict, data);
    Py_DECREF(data);
    return res;
}

/*
 * The bytes of a ring read that filled its buffer (@res bytes at @buf)
 * and, when the transport's max_size allows more, what one non-blocking
 * recv() finds after them: the read asyncio would have made, in one bytes
 * object.  The recv() goes into the shared read buffer.  Its error (an
 * errno, not EAGAIN) is the next read's, as in asyncio: it is stored in
 * *@err for the reader to deliver next.
 */
static PyObject *
transport_ring_bytes(cev_transport_config *cfg, PyObject *self,
                     PyObject *dict, const char *buf, int res, bool full,
                     int *err)
{
    PyObject *data;
    Py_ssize_t max_size;
    ssize_t more = 0;
    int fd;

    if (!full) {
        return PyBytes_FromStringAndSize(buf, res);
    }
    max_size = transport_max_size(cfg, self, dict);
    if (max_size < 0) {
        return NULL;
    }
    if (max_size > TRANSPORT_RECV_MAX) {
        max_size = TRANSPORT_RECV_MAX;
    }
    if (max_size > res) {
        /* No buffer or no socket: the bytes read so far, the rest later */
        if (transport_recv_buf(cfg) == NULL ||
            (fd = transport_sock_fd(cfg, self, dict)) < 0) {
            PyErr_Clear();
        }
        else {
            more = recv(fd, cfg->recv_buf, (size_t)(max_size - res),
                        MSG_DONTWAIT);
            if (more < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                errno != EINTR) {
                *err = errno;
            }
        }
    }
    if (more <= 0) {
        return PyBytes_FromStringAndSize(buf, res);
    }
    data = PyBytes_FromStringAndSize(NULL, res + more);
    if (data != NULL) {
        memcpy(PyBytes_AS_STRING(data), buf, (size_t)res);
        memcpy(PyBytes_AS_STRING(data) + res, cfg->recv_buf, (size_t)more);
    }
    return data;
}

/*
 * What a socket transport does with one completed read of its ring reader
 * (ringreaderobject.c): @res > 0 bytes at @buf, 0 for EOF, or -errno.
 * @full: the read filled the reader's buffer, so the socket may have more
 * (see transport_ring_bytes(), which sets *@err).  As
 * _read_ready__data_received() after its recv(): nothing once the
 * connection is lost; EOF goes to _read_ready__on_eof() and an error to
 * _fatal_error(); the bytes go to protocol.data_received() while
 * _read_ready_cb is asyncio's choice for a Protocol, else (the protocol
 * was replaced by another kind since the read was queued) to
 * self._ring_data_slow(data).  Returns None, or NULL with an exception
 * set (SystemExit and KeyboardInterrupt, or a failure of the transport's
 * own methods).
 */
PyObject *
cev_transport_ring_result(cev_transport_config *cfg, PyObject *self,
                          const char *buf, int res, bool full, int *err)
{
    PyObject *dict, *cb, *data, *ret = NULL;
    int conn_lost;
    bool plain;

    dict = transport_dict(self);
    conn_lost = transport_attr_true(self, dict, NAME(cfg, _conn_lost));
    if (conn_lost != 0) {
        Py_XDECREF(dict);
        return conn_lost < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (res < 0) {
        errno = -res;
        PyErr_SetFromErrno(PyExc_OSError);
        ret = transport_fatal_error(cfg, self,
                                    "Fatal read error on socket transport");
        goto out;
    }
    if (res == 0) {
        ret = PyObject_CallMethodNoArgs(self, NAME(cfg, _read_ready__on_eof));
        goto out;
    }
    data = transport_ring_bytes(cfg, self, dict, buf, res, full, err);
    if (data == NULL) {
        goto out;
    }
    cb = transport_attr(self, dict, NAME(cfg, _read_ready_cb));
    if (cb == NULL) {
        Py_DECREF(data);
        goto out;
    }
    plain = transport_cb_is_plain(self, cb);
    Py_DECREF(cb);
    if (plain) {
        ret = transport_pass_data(cfg, self, dict, data);
    }
    else {
        ret = PyObject_CallMethodOneArg(self, NAME(cfg, _ring_data_slow),
                                        data);
    }
    Py_DECREF(data);
out:
    Py_XDECREF(dict);
    return ret;
}

/*
 * _read_ready(), also the ring reader's poll mode: the socket is
 * readable, so self._read_ready_cb(), without a call for asyncio's choice
 * for a Protocol (set_protocol()).  *@nread: the bytes read, 0 if none
 * were there (no EOF), -1 otherwise (EOF, an error, or another kind of
 * protocol read through its own _read_ready_cb).  Returns None, or NULL
 * with an exception set.
 */
PyObject *
cev_transport_ring_readable(cev_transport_config *cfg, PyObject *self,
                            Py_ssize_t *nread)
{
    PyObject *dict, *cb, *res;

    *nread = -1;
    dict = transport_dict(self);
    cb = transport_attr(self, dict, NAME(cfg, _read_ready_cb));
    if (cb == NULL) {
        Py_XDECREF(dict);
        return NULL;
    }
    if (transport_cb_is_plain(self, cb)) {
        res = transport_data_received(cfg, self, dict, nread);
    }
    else {
        res = PyObject_CallNoArgs(cb);
    }
    Py_DECREF(cb);
    Py_XDECREF(dict);
    return res;
}

PyDoc_STRVAR(transport_read_ready__data_received_doc,
"_read_ready__data_received($self, /)\n--\n\n"
"Read what the socket has (up to self.max_size bytes) and pass it to\n"
"protocol.data_received(), as asyncio's transport does.");

static PyObject *
transport_read_ready__data_received(PyObject *self,
                                    PyTypeObject *defining_class,
                                    PyObject *const *Py_UNUSED(args),
                                    Py_ssize_t nargs, PyObject *kwnames)
{
    cev_transport_config *cfg = transport_config(defining_class);
    PyObject *dict, *res;

    if (cfg == NULL) {
        return NULL;
    }
    if (cev_check_no_args("_read_ready__data_received", nargs,
                          kwnames) < 0) {
        return NULL;
    }
    dict = transport_dict(self);
    res = transport_data_received(cfg, self, dict, NULL);
    Py_XDECREF(dict);
    return res;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * Can write(@data) try send() now, without asyncio's checks?  1 for bytes,
 * written to an open transport (no EOF written, no sendfile running, the
 * connection not lost) whose buffer is empty; 0 if asyncio's write() must
 * decide; -1 with an exception set.
 */
static int
transport_can_send_now(cev_transport_config *cfg, PyObject *self,
                       PyObject *dict, PyObject *data)
{
    int res;

    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) == 0) {
        return 0;
    }
    if ((res = transport_attr_true(self, dict, NAME(cfg, _eof))) != 0 ||
        (res = transport_attr_none(self, dict,
                                   NAME(cfg, _empty_waiter))) != 1 ||
        (res = transport_attr_true(self, dict, NAME(cfg, _conn_lost))) != 0 ||
        (res = transport_attr_true(self, dict, NAME(cfg, _buffer))) != 0) {
        return res < 0 ? -1 : 0;
    }
    return 1;
}

/* One send() of bytes @data; asyncio's write() takes what is left. */
static PyObject *
transport_send(cev_transport_config *cfg, PyObject *self, PyObject *dict,
               PyObject *data)
{
    PyObject *rest, *res;
    Py_ssize_t len, n;
    int fd;

    fd = transport_sock_fd(cfg, self, dict);
    if (fd < 0) {
        return transport_fatal_error(cfg, self,
                                     "Fatal write error on socket transport");
    }
    len = PyBytes_GET_SIZE(data);
    n = send(fd, PyBytes_AS_STRING(data), (size_t)len,
             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == len) {
        Py_RETURN_NONE;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return transport_fatal_error(
                cfg, self, "Fatal write error on socket transport");
        }
        n = 0;
    }
    /* The socket took part of it, or nothing: asyncio buffers the rest. */
    if (n == 0) {
        return PyObject_CallMethodOneArg(self, NAME(cfg, _write_slow), data);
    }
    rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + n, len - n);
    if (rest == NULL) {
        return NULL;
    }
    res = PyObject_CallMethodOneArg(self, NAME(cfg, _write_slow), rest);
    Py_DECREF(rest);
    return res;
}

PyDoc_STRVAR(transport_write_doc,
"write($self, data, /)\n--\n\n"
"Write data (bytes, bytearray or memoryview) to the transport, as\n"
"asyncio's transport does: sent now if the socket takes it, else\n"
"buffered and sent as the socket becomes writable.");

static PyObject *
transport_write(PyObject *self, PyTypeObject *defining_class,
                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cev_transport_config *cfg = transport_config(defining_class);
    PyObject *dict, *res;
    int now;

    if (cfg == NULL) {
        return NULL;
    }
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError,
                        "write() takes exactly one positional argument");
        return NULL;
    }
    dict = transport_dict(self);
    now = transport_can_send_now(cfg, self, dict, args[0]);
    if (now < 0) {
        res = NULL;
    }
    else if (now == 0) {
        res = PyObject_CallMethodOneArg(self, NAME(cfg, _write_slow),
                                        args[0]);
    }
    else {
        res = transport_send(cfg, self, dict, args[0]);
    }
    Py_XDECREF(dict);
    return res;
}

/* ---- type -------------------------------------------------------------- */

#define TRANSPORT_METHOD(pyname, name) \
    {pyname, CEV_METH(transport_##name), \
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, transport_##name##_doc}

static PyMethodDef transport_methods[] = {
    TRANSPORT_METHOD("_read_ready", read_ready),
    TRANSPORT_METHOD("_read_ready__data_received",
                     read_ready__data_received),
    TRANSPORT_METHOD("write", write),
    {NULL, NULL, 0, NULL}
};

#undef TRANSPORT_METHOD

PyDoc_STRVAR(transport_doc,
"_SocketTransportCore()\n--\n\n"
"The native methods of cevent.Loop's socket transport (a base of\n"
"cevent._transport._SocketTransport, before asyncio's\n"
"_SelectorSocketTransport): _read_ready, _read_ready__data_received and\n"
"write.  Subclasses provide _write_slow(data) and\n"
"_read_ready__data_received_slow(), asyncio's own methods.");

static int
transport_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void
transport_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot transport_slots[] = {
    {Py_tp_dealloc, transport_dealloc},
    {Py_tp_traverse, transport_traverse},
    {Py_tp_methods, transport_methods},
    {Py_tp_doc, (void *)transport_doc},
    {0, NULL}
};

PyType_Spec cev_transport_spec = {
    .name = "cevent._loopcore._SocketTransportCore",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = transport_slots,
};
