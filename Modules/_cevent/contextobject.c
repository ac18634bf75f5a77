/*
 * cevent._cevent: the AioContext type.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 */

#include "module.h"
#include "qapi/error.h"
#include "qemu/rcu_queue.h"

#include <pthread.h>
#include <pythread.h>
#include <unistd.h>

Py_ssize_t cev_live_contexts = 0;

/* ---- fork policy ------------------------------------------------------ */

/*
 * cevent fork policy: a context belongs to the process that created it.
 * In a fork child every method but close() raises RuntimeError
 * (cev_context_check_open), and close() only releases the child's own
 * copies: the kernel objects (eventfd, epoll set, io_uring ring) are shared
 * with the parent, so the child must never write, EPOLL_CTL_* or submit to
 * them.
 *
 * To guarantee that even for paths that do not go through a method check
 * (a BH or timer object of the context used in the child, a callback of an
 * iteration the forking thread was running), the fork child handler below
 * detaches every open context at once, before any Python code runs, with
 * the port's aio_context_fork_child() (Modules/async.c says what it does).
 * Only the thread that called fork() survives; if it was itself polling
 * the context (fork() from a callback), its iteration finishes normally;
 * the visits of a thread that the child lacks (an IOThread blocked in
 * poll()) are forgotten.
 */
static pid_t cev_pid;                   /* this process */
static QLIST_HEAD(, ContextObject) cev_open_contexts; /* by fork_link */
static pthread_mutex_t cev_open_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cev_atfork_registered;      /* GIL */

/* Lock order: cev_open_lock, then the port's timer locks. */
static void
context_atfork_prepare(void)
{
    pthread_mutex_lock(&cev_open_lock);
    qemu_timer_atfork_prepare();
}

static void
context_atfork_parent(void)
{
    qemu_timer_atfork_parent();
    pthread_mutex_unlock(&cev_open_lock);
}

/* Runs in the child inside fork(): C only, no Python API. */
static void
context_atfork_child(void)
{
    unsigned long me = PyThread_get_thread_ident();
    ContextObject *self;

    cev_pid = getpid();
    pthread_mutex_init(&cev_open_lock, NULL);
    qemu_timer_atfork_child();
    QLIST_FOREACH(self, &cev_open_contexts, fork_link) {
        bool polling = self->poll_depth > 0;

        if (self->ctx == NULL) {
            continue;
        }
        aio_context_fork_child(self->ctx, polling && self->home == me,
                               polling && self->home != me);
        if (polling && self->home != me) {
            self->poll_depth = 0;
        }
    }
}

/* Link a new context into the process-wide list.  GIL held. */
static void
context_fork_link(ContextObject *self)
{
    if (!cev_atfork_registered) {
        cev_pid = getpid();
        if (pthread_atfork(context_atfork_prepare, context_atfork_parent,
                           context_atfork_child) == 0) {
            cev_atfork_registered = true;
        }
    }
    self->owner_pid = cev_pid;
    pthread_mutex_lock(&cev_open_lock);
    QLIST_INSERT_HEAD(&cev_open_contexts, self, fork_link);
    pthread_mutex_unlock(&cev_open_lock);
}

/* Unlink a closing context.  GIL held. */
static void
context_fork_unlink(ContextObject *self)
{
    pthread_mutex_lock(&cev_open_lock);
    QLIST_SAFE_REMOVE(self, fork_link);
    pthread_mutex_unlock(&cev_open_lock);
}

/* Whether @self was created by another process (we are a fork child). */
static inline bool
context_forked(ContextObject *self)
{
    return self->owner_pid != cev_pid;
}

/* ---- shared helpers -------------------------------------------------- */

int
cev_context_check_process(ContextObject *self)
{
    if (context_forked(self)) {     /* fork policy, see above */
        PyErr_SetString(PyExc_RuntimeError,
                        "AioContext was created in another process (fork); "
                        "create a new one in the child");
        return -1;
    }
    return 0;
}

void
cev_context_set_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on closed AioContext");
}

int
cev_context_check_open(ContextObject *self)
{
    if (cev_context_check_process(self) < 0) {
        return -1;
    }
    if (self->ctx == NULL) {
        cev_context_set_closed_error();
        return -1;
    }
    return 0;
}

int
cev_context_check_home(ContextObject *self)
{
    if (PyThread_get_thread_ident() != self->home) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this AioContext method may only be called from "
                        "the context's home thread");
        return -1;
    }
    return 0;
}

bool
cev_context_wake_needs_release(ContextObject *self)
{
    return PyThread_get_thread_ident() != self->home;
}

void
cev_context_store_exception(ContextObject *self, PyObject *culprit)
{
    assert(PyErr_Occurred());
    if (self->exc_type == NULL) {
        PyErr_Fetch(&self->exc_type, &self->exc_value, &self->exc_tb);
        PyErr_NormalizeException(&self->exc_type, &self->exc_value,
                                 &self->exc_tb);
        if (self->exc_tb != NULL && self->exc_value != NULL) {
            PyException_SetTraceback(self->exc_value, self->exc_tb);
        }
    }
    else {
        PyErr_WriteUnraisable(culprit);
    }
}

int
cev_fd_converter(PyObject *obj, int *fd)
{
    int value = PyObject_AsFileDescriptor(obj);
    if (value < 0) {
        return -1;
    }
    *fd = value;
    return 0;
}

/*
 * The one-line reason why io_uring is not usable, from the error of a
 * failed forced creation.  Returns a new str.
 */
PyObject *
cev_io_uring_reason(const Error *err)
{
#ifndef CONFIG_LINUX_IO_URING
    (void)err;
    return PyUnicode_FromString("not built with liburing");
#else
    int disabled = 0;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");

    if (f != NULL) {
        if (fscanf(f, "%d", &disabled) != 1) {
            disabled = 0;
        }
        fclose(f);
    }
    if (err == NULL) {
        return PyUnicode_FromString("io_uring unavailable");
    }
    if (disabled != 0 && (err->errnum == EPERM || err->errnum == EACCES)) {
        return PyUnicode_FromFormat("kernel.io_uring_disabled=%d", disabled);
    }
    if (err->errnum == EPERM) {
        return PyUnicode_FromString(
            "io_uring_setup: Operation not permitted (seccomp?)");
    }
    if (err->errnum == ENOSYS) {
        return PyUnicode_FromString(
            "io_uring_setup: Function not implemented "
            "(seccomp or old kernel)");
    }
    return PyUnicode_FromString(err->msg);
#endif
}

/* ---- blocking hooks -------------------------------------------------- */

/*
 * Called by aio_poll() with the GIL held, right before a wait that may
 * block or before the busy-poll spin.  Returns the saved thread state when
 * the GIL was released, NULL when it was kept.
 */
static void *
context_blocking_begin(AioContext *ctx, AioBlockingKind kind,
                       void *opaque)
{
    ContextObject *self = opaque;

    if (kind == AIO_BLOCKING_WAIT && PyErr_CheckSignals() < 0) {
        /*
         * Signals: one that arrived since Python last looked (in
         * the spin, or in C code before the wait) would otherwise only be
         * seen after the next event.  notify_me is raised here, so the
         * notification makes the wait return at once.
         */
        cev_context_store_exception(self, NULL);
        aio_notify(ctx);
    }
    /* A Python io_poll needs the GIL for every call: keep it. */
    if (kind == AIO_BLOCKING_SPIN &&
        aio_context_polls_with(ctx, cev_io_poll_trampoline)) {
        return NULL;
    }
    return PyEval_SaveThread();
}

/*
 * Called without the GIL when @token is not NULL.  Returns true to cut a
 * spin short (and not block in the wait after it).
 */
static bool
context_blocking_end(AioContext *ctx, AioBlockingKind kind, void *token,
                     void *opaque)
{
    ContextObject *self = opaque;

    (void)ctx;
    if (token != NULL) {
        PyEval_RestoreThread((PyThreadState *)token);
    }
    if (PyErr_CheckSignals() < 0) {
        /*
         * A signal handler raised (KeyboardInterrupt): finish, then raise.
         * Issue 5: a spin stops here, within AIO_SPIN_SLICE_NS of the
         * signal, and poll() does not block in the wait that follows.
         */
        cev_context_store_exception(self, NULL);
        return kind == AIO_BLOCKING_SPIN;
    }
    return false;
}

/* ---- construction and teardown --------------------------------------- */

static PyObject *
context_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"backend", NULL};
    PyObject *backend = Py_None;
    AioFdmonKind kind = AIO_FDMON_AUTO;
    ContextObject *self;
    Error *err = NULL;
    AioContext *ctx;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:AioContext", kwlist,
                                     &backend)) {
        return NULL;
    }
    if (backend != Py_None) {
        if (!PyUnicode_Check(backend)) {
            PyErr_Format(PyExc_TypeError,
                         "backend must be a str or None, not %.100s",
                         Py_TYPE(backend)->tp_name);
            return NULL;
        }
        if (PyUnicode_CompareWithASCIIString(backend, "poll") == 0) {
            kind = AIO_FDMON_POLL;
        }
        else if (PyUnicode_CompareWithASCIIString(backend, "epoll") == 0) {
            kind = AIO_FDMON_EPOLL;
        }
        else if (PyUnicode_CompareWithASCIIString(backend, "io_uring") == 0) {
            kind = AIO_FDMON_IO_URING;
        }
        else {
            PyErr_Format(PyExc_ValueError,
                         "unknown backend %R (expected 'io_uring', 'epoll' "
                         "or 'poll')", backend);
            return NULL;
        }
    }

    self = (ContextObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->home = PyThread_get_thread_ident();

    Py_BEGIN_ALLOW_THREADS
    ctx = aio_context_new_full(kind, &err);
    Py_END_ALLOW_THREADS
    if (ctx == NULL) {
        int errnum = err ? err->errnum : 0;
        PyObject *msg;

        if (kind == AIO_FDMON_IO_URING) {
            msg = cev_io_uring_reason(err);
        }
        else {
            msg = PyUnicode_FromString(err ? err->msg : "AioContext failed");
        }
        if (msg != NULL) {
            PyObject *exc_args = Py_BuildValue("(iN)", errnum ? errnum : EIO,
                                               msg);
            if (exc_args != NULL) {
                PyErr_SetObject(PyExc_OSError, exc_args);
                Py_DECREF(exc_args);
            }
        }
        if (err) {
            error_free(err);
        }
        Py_DECREF(self);
        return NULL;
    }
    self->ctx = ctx;
    aio_context_set_blocking_hooks(ctx, context_blocking_begin,
                                   context_blocking_end, self);
    context_fork_link(self);        /* fork policy */
    cev_live_contexts++;
    return (PyObject *)self;
}

/*
 * Close the port's context: detach BHs and timers, then drop the context,
 * which releases every record.  Callbacks that run meanwhile (finalizers)
 * see a closed context.
 */
static int
context_close_impl(ContextObject *self)
{
    AioContext *ctx = self->ctx;

    if (ctx == NULL) {
        return 0;
    }
    if (self->poll_depth > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot close an AioContext while poll() or "
                        "dispatch() is running");
        return -1;
    }
    /*
     * Fork policy: in a fork child, the child handler has already detached
     * the context from the parent's kernel objects, so the teardown below
     * only closes the child's own descriptors.
     */
    context_fork_unlink(self);
    self->ctx = NULL;
    cev_live_contexts--;

    while (!QLIST_EMPTY(&self->bhs)) {
        cev_bh_detach(QLIST_FIRST(&self->bhs));
    }
    while (!QLIST_EMPTY(&self->timers)) {
        PyObject *armed_ref = cev_timer_detach(QLIST_FIRST(&self->timers));
        Py_XDECREF(armed_ref);
    }
    if (self->poll_deadline != NULL) {
        timer_free(self->poll_deadline);
        self->poll_deadline = NULL;
    }
    aio_context_unref(ctx);
    return 0;
}

static int
context_traverse(ContextObject *self, visitproc visit, void *arg)
{
    cev_record *rec;
    TimerObject *t;

    Py_VISIT(Py_TYPE(self));
#define VISIT_RECORD(rec) \
    do { \
        Py_VISIT((rec)->io_read); \
        Py_VISIT((rec)->io_write); \
        Py_VISIT((rec)->io_poll); \
        Py_VISIT((rec)->io_poll_ready); \
        Py_VISIT((rec)->io_poll_begin); \
        Py_VISIT((rec)->io_poll_end); \
        Py_VISIT((rec)->arg); \
    } while (0)
    QLIST_FOREACH(rec, &self->records, link) {
        /* An idle BH's callable belongs to its BH object (module.h). */
        if (rec->kind == CEV_REC_BH && rec->bh_obj != NULL &&
            !rec->loop_held) {
            continue;
        }
        VISIT_RECORD(rec);
    }
#undef VISIT_RECORD
    /* An armed timer's reference to itself belongs to the context. */
    QLIST_FOREACH(t, &self->timers, link) {
        if (t->armed) {
            Py_VISIT(t);
        }
    }
    Py_VISIT(self->exc_type);
    Py_VISIT(self->exc_value);
    Py_VISIT(self->exc_tb);
    return 0;
}

static int
context_clear(ContextObject *self)
{
    if (context_close_impl(self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_CLEAR(self->exc_type);
    Py_CLEAR(self->exc_value);
    Py_CLEAR(self->exc_tb);
    return 0;
}

static void
context_dealloc(ContextObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    PyObject_ClearWeakRefs((PyObject *)self);
    (void)context_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

PyDoc_STRVAR(context_close_doc,
"close($self, /)\n--\n\n"
"Destroy the context (aio_context_destroy).  Handlers, BHs and timers\n"
"still registered are released.  Idempotent.");

static PyObject *
context_close(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (context_close_impl(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
context_enter(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
context_exit(ContextObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (context_close_impl(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- handlers -------------------------------------------------------- */

/* NULL/None, a callable, or (for io_poll) a native poller. */
static int
check_callback(PyObject *obj, const char *name, bool allow_native,
               cevent_state *state)
{
    if (obj == Py_None) {
        return 0;
    }
    if (allow_native && PyObject_TypeCheck(obj, state->PollerType)) {
        return 0;
    }
    if (!PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be callable or None, not %.100s",
                     name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/*
 * Register (or remove, when every callable is None) the handlers of @fd.
 * @arg is the notifier for event-notifier registrations, else NULL.
 */
static PyObject *
context_register(ContextObject *self, int fd, PyObject *arg,
                 PyObject *io_read, PyObject *io_write, PyObject *io_poll,
                 PyObject *io_poll_ready)
{
    cevent_state *state = cevent_state_by_type(Py_TYPE(self));
    cev_record *rec;

    if (check_callback(io_read, "io_read", false, state) < 0 ||
        check_callback(io_write, "io_write", false, state) < 0 ||
        check_callback(io_poll, "io_poll", true, state) < 0 ||
        check_callback(io_poll_ready, "io_poll_ready", false, state) < 0) {
        return NULL;
    }
    /* As QEMU: polling without a ready handler is dropped. */
    if (io_poll_ready == Py_None) {
        io_poll = Py_None;
    }

    if (io_read == Py_None && io_write == Py_None && io_poll == Py_None) {
        aio_set_fd_handler_full(self->ctx, fd, NULL, NULL, NULL, NULL,
                                NULL, NULL);
        Py_RETURN_NONE;
    }

    if (fcntl(fd, F_GETFD) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }

    rec = cev_record_new(self, arg ? CEV_REC_NOTIFIER : CEV_REC_FD);
    if (rec == NULL) {
        return NULL;
    }
    if (io_read != Py_None) {
        rec->io_read = Py_NewRef(io_read);
    }
    if (io_write != Py_None) {
        rec->io_write = Py_NewRef(io_write);
    }
    if (io_poll != Py_None) {
        rec->io_poll = Py_NewRef(io_poll);
        rec->io_poll_ready = Py_NewRef(io_poll_ready);
        if (PyObject_TypeCheck(io_poll, state->PollerType)) {
            rec->native = (PollerObject *)io_poll;
        }
    }
    if (arg != NULL) {
        rec->arg = Py_NewRef(arg);
    }

    aio_set_fd_handler_full(
        self->ctx, fd,
        rec->io_read ? cev_io_read_trampoline : NULL,
        rec->io_write ? cev_io_write_trampoline : NULL,
        rec->io_poll ? (rec->native ? cev_io_poll_native
                                    : cev_io_poll_trampoline) : NULL,
        rec->io_poll_ready ? cev_io_poll_ready_trampoline : NULL,
        rec, cev_record_release);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(context_set_fd_handler_doc,
"set_fd_handler($self, /, fd, io_read=None, io_write=None, io_poll=None,\n"
"               io_poll_ready=None)\n--\n\n"
"aio_set_fd_handler: register callbacks for fd (an int >= 0 or an object\n"
"with fileno()).  All None removes the handler.  Thread-safe.");

static PyObject *
context_set_fd_handler(ContextObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "io_read", "io_write", "io_poll",
                             "io_poll_ready", NULL};
    PyObject *fdobj, *io_read = Py_None, *io_write = Py_None;
    PyObject *io_poll = Py_None, *io_poll_ready = Py_None;
    int fd;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOOO:set_fd_handler",
                                     kwlist, &fdobj, &io_read, &io_write,
                                     &io_poll, &io_poll_ready)) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    if (cev_fd_converter(fdobj, &fd) < 0) {
        return NULL;
    }
    return context_register(self, fd, NULL, io_read, io_write, io_poll,
                            io_poll_ready);
}

static NotifierObject *
get_notifier(ContextObject *self, PyObject *obj)
{
    cevent_state *state = cevent_state_by_type(Py_TYPE(self));

    if (!PyObject_TypeCheck(obj, state->NotifierType)) {
        PyErr_Format(PyExc_TypeError,
                     "notifier must be a cevent.EventNotifier, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (cev_notifier_check_open((NotifierObject *)obj) < 0) {
        return NULL;
    }
    return (NotifierObject *)obj;
}

PyDoc_STRVAR(context_set_event_notifier_doc,
"set_event_notifier($self, /, notifier, io_read=None, io_poll=None,\n"
"                   io_poll_ready=None)\n--\n\n"
"aio_set_event_notifier: each callable receives the notifier.");

static PyObject *
context_set_event_notifier(ContextObject *self, PyObject *args,
                           PyObject *kwds)
{
    static char *kwlist[] = {"notifier", "io_read", "io_poll",
                             "io_poll_ready", NULL};
    PyObject *nobj, *io_read = Py_None, *io_poll = Py_None;
    PyObject *io_poll_ready = Py_None;
    NotifierObject *notifier;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOO:set_event_notifier",
                                     kwlist, &nobj, &io_read, &io_poll,
                                     &io_poll_ready)) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    notifier = get_notifier(self, nobj);
    if (notifier == NULL) {
        return NULL;
    }
    return context_register(self,
                            event_notifier_get_fd(&notifier->notifier),
                            nobj, io_read, Py_None, io_poll, io_poll_ready);
}

PyDoc_STRVAR(context_set_event_notifier_poll_doc,
"set_event_notifier_poll($self, /, notifier, io_poll_begin=None,\n"
"                        io_poll_end=None)\n--\n\n"
"aio_set_event_notifier_poll: set the poll-mode begin/end callbacks of a\n"
"registered notifier (they receive the notifier).  Home thread only.");

static PyObject *
context_set_event_notifier_poll(ContextObject *self, PyObject *args,
                                PyObject *kwds)
{
    static char *kwlist[] = {"notifier", "io_poll_begin", "io_poll_end",
                             NULL};
    PyObject *nobj, *begin = Py_None, *end = Py_None;
    NotifierObject *notifier;
    cevent_state *state = cevent_state_by_type(Py_TYPE(self));
    cev_record *rec;

    if (!PyArg_ParseTupleAndKeywords(args, kwds,
                                     "O|OO:set_event_notifier_poll", kwlist,
                                     &nobj, &begin, &end)) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0 ||
        cev_context_check_home(self) < 0) {
        return NULL;
    }
    notifier = get_notifier(self, nobj);
    if (notifier == NULL) {
        return NULL;
    }
    if (check_callback(begin, "io_poll_begin", false, state) < 0 ||
        check_callback(end, "io_poll_end", false, state) < 0) {
        return NULL;
    }
    /* The current registration of the fd, as aio_set_fd_poll() finds it. */
    rec = aio_get_fd_handler_opaque(
        self->ctx, event_notifier_get_fd(&notifier->notifier),
        cev_record_release);
    if (rec == NULL) {
        Py_RETURN_NONE; /* not registered: nothing to do, as QEMU */
    }
    Py_XSETREF(rec->io_poll_begin, begin == Py_None ? NULL : Py_NewRef(begin));
    Py_XSETREF(rec->io_poll_end, end == Py_None ? NULL : Py_NewRef(end));
    aio_set_event_notifier_poll(
        self->ctx, &notifier->notifier,
        rec->io_poll_begin ?
            (EventNotifierHandler *)cev_io_poll_begin_trampoline : NULL,
        rec->io_poll_end ?
            (EventNotifierHandler *)cev_io_poll_end_trampoline : NULL);
    Py_RETURN_NONE;
}

/* ---- running the loop ------------------------------------------------ */

typedef struct {
    PyObject *type, *value, *tb;
} saved_exc;

/* Set aside an outer iteration's exception while an inner one runs. */
static void
exc_stash(ContextObject *self, saved_exc *save)
{
    save->type = self->exc_type;
    save->value = self->exc_value;
    save->tb = self->exc_tb;
    self->exc_type = self->exc_value = self->exc_tb = NULL;
}

/*
 * Restore the outer exception; raise this call's first exception if any.
 * Returns -1 with the exception set, else 0.
 */
static int
exc_unstash(ContextObject *self, saved_exc *save)
{
    PyObject *type = self->exc_type;
    PyObject *value = self->exc_value;
    PyObject *tb = self->exc_tb;

    self->exc_type = save->type;
    self->exc_value = save->value;
    self->exc_tb = save->tb;
    if (type != NULL) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    return 0;
}

typedef enum { RUN_POLL, RUN_PREPARE, RUN_CHECK, RUN_DISPATCH } run_kind;

/*
 * Run one step of the context: 1 or 0 (its result: progress made, work
 * pending), or -1 with an exception set (a callback's, or a check's).
 */
static int
context_run_step(ContextObject *self, run_kind what, bool blocking)
{
    saved_exc save;
    bool result = false;
    int timeout_ms;

    if (cev_context_check_open(self) < 0 ||
        cev_context_check_home(self) < 0) {
        return -1;
    }
    Py_INCREF(self);
    exc_stash(self, &save);
    self->poll_depth++;
    switch (what) {
    case RUN_POLL:
        result = aio_poll(self->ctx, blocking);
        break;
    case RUN_PREPARE:
        result = aio_ctx_prepare(self->ctx, &timeout_ms);
        break;
    case RUN_CHECK:
        result = aio_ctx_check(self->ctx);
        break;
    case RUN_DISPATCH:
        result = aio_ctx_dispatch(self->ctx);
        break;
    }
    self->poll_depth--;
    if (exc_unstash(self, &save) < 0) {
        Py_DECREF(self);
        return -1;
    }
    Py_DECREF(self);
    return result;
}

static PyObject *
context_run(ContextObject *self, run_kind what, bool blocking)
{
    int result = context_run_step(self, what, blocking);

    if (result < 0) {
        return NULL;
    }
    if (what == RUN_DISPATCH) {
        Py_RETURN_NONE;
    }
    return PyBool_FromLong(result);
}

static void
context_poll_deadline_cb(void *opaque)
{
    (void)opaque;       /* firing is all it is for: poll() returns */
}

int
cev_context_poll_until(ContextObject *self, int64_t deadline_ns)
{
    QEMUTimer *ts;

    if (deadline_ns <= 0) {
        return context_run_step(self, RUN_POLL, false) < 0 ? -1 : 0;
    }
    if (cev_context_check_open(self) < 0) {
        return -1;
    }
    ts = self->poll_deadline;
    if (deadline_ns == INT64_MAX) {
        if (ts != NULL && timer_pending(ts)) {
            timer_del(ts);
        }
    }
    else {
        if (ts == NULL) {
            ts = aio_timer_new(self->ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                               context_poll_deadline_cb, NULL);
            self->poll_deadline = ts;
        }
        if ((int64_t)timer_expire_time_ns(ts) != deadline_ns) {
            timer_mod_ns(ts, deadline_ns);
        }
    }
    return context_run_step(self, RUN_POLL, true) < 0 ? -1 : 0;
}

PyDoc_STRVAR(context_poll_doc,
"poll($self, /, blocking=True)\n--\n\n"
"aio_poll: run one iteration; return whether progress was made.  Home\n"
"thread only; the GIL is released while waiting and spinning.");

static PyObject *
context_poll(ContextObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *blocking_obj = NULL;
    int blocking = 1;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (nargs + nkw > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "poll() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        blocking_obj = args[0];
    }
    else if (nkw == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0),
                                             "blocking") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "poll() got an unexpected keyword argument %R",
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        blocking_obj = args[0];
    }
    if (blocking_obj != NULL) {
        blocking = PyObject_IsTrue(blocking_obj);
        if (blocking < 0) {
            return NULL;
        }
    }
    return context_run(self, RUN_POLL, blocking);
}

PyDoc_STRVAR(context_prepare_doc,
"prepare($self, /)\n--\n\n"
"The GSource prepare step (aio_ctx_prepare, which calls aio_prepare):\n"
"arm notifications for the embedding fd, leave poll mode, and return\n"
"True if dispatch() has work without waiting.  Home thread only.");

static PyObject *
context_prepare(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    return context_run(self, RUN_PREPARE, false);
}

PyDoc_STRVAR(context_pending_doc,
"pending($self, /)\n--\n\n"
"The GSource check step (aio_ctx_check, which calls aio_pending): after\n"
"waiting on fileno(), disarm notifications, look at the handler fds and\n"
"return True if dispatch() has work.  Home thread only.");

static PyObject *
context_pending(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    return context_run(self, RUN_CHECK, false);
}

PyDoc_STRVAR(context_dispatch_doc,
"dispatch($self, /)\n--\n\n"
"aio_dispatch: run BHs, every ready handler, then expired timers.  Home\n"
"thread only.");

static PyObject *
context_dispatch(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    return context_run(self, RUN_DISPATCH, false);
}

PyDoc_STRVAR(context_fileno_doc,
"fileno($self, /)\n--\n\n"
"A descriptor that is readable while poll(False) would find work; it\n"
"switches the context to embedded use (aio_context_use_g_source), which\n"
"tears io_uring down.  Home thread only.");

static PyObject *
context_fileno(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    Error *err = NULL;
    int fd;

    if (cev_context_check_open(self) < 0 ||
        cev_context_check_home(self) < 0) {
        return NULL;
    }
    if (self->poll_depth > 0 && !aio_context_uses_g_source(self->ctx)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "fileno() cannot switch to embedded use while "
                        "poll() is running");
        return NULL;
    }
    fd = aio_get_g_source_fd(self->ctx, &err);
    if (fd < 0) {
        errno = err ? err->errnum : EIO;
        if (err) {
            error_free(err);
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(fd);
}

PyDoc_STRVAR(context_notify_doc,
"notify($self, /)\n--\n\n"
"aio_notify: make a blocked poll() return.  Thread-safe.");

static PyObject *
context_notify(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_context_notify(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int
cev_context_notify(ContextObject *self)
{
    AioContext *ctx = self->ctx;

    if (cev_context_check_open(self) < 0) {
        return -1;
    }
    if (cev_context_wake_needs_release(self)) {
        /* Publish with the GIL released so the woken loop can take it. */
        aio_context_ref(ctx);
        Py_BEGIN_ALLOW_THREADS
        aio_notify(ctx);
        Py_END_ALLOW_THREADS
        aio_context_unref(ctx);
    }
    else {
        aio_notify(ctx);
    }
    return 0;
}

PyDoc_STRVAR(context_compute_timeout_doc,
"compute_timeout($self, /)\n--\n\n"
"aio_compute_timeout: ns a blocking poll() would wait; -1 is infinite.");

static PyObject *
context_compute_timeout(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(aio_compute_timeout(self->ctx));
}

/* ---- parameters ------------------------------------------------------ */

PyDoc_STRVAR(context_set_poll_params_doc,
"set_poll_params($self, /, max_ns, grow=0, shrink=0)\n--\n\n"
"aio_context_set_poll_params: adaptive busy polling up to max_ns (0 turns\n"
"it off).  Negative values raise ValueError.");

static PyObject *
context_set_poll_params(ContextObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_ns", "grow", "shrink", NULL};
    long long max_ns, grow = 0, shrink = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L|LL:set_poll_params",
                                     kwlist, &max_ns, &grow, &shrink)) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    if (max_ns < 0 || grow < 0 || shrink < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "poll parameters must be >= 0");
        return NULL;
    }
    aio_context_set_poll_params(self->ctx, max_ns, grow, shrink, NULL);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(context__set_epoll_threshold_doc,
"_set_epoll_threshold($self, threshold, /)\n--\n\n"
"The number of watched fds at which the poll/epoll pair moves to epoll\n"
"(QEMU's is 64; cevent.Loop sets 1).  No effect on poll, io_uring, or a\n"
"context already on epoll.  Home thread only.");

static PyObject *
context__set_epoll_threshold(ContextObject *self, PyObject *arg)
{
    long threshold = PyLong_AsLong(arg);

    if (threshold == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0 ||
        cev_context_check_home(self) < 0) {
        return NULL;
    }
    if (threshold < 1 || threshold > INT_MAX) {
        PyErr_SetString(PyExc_ValueError,
                        "the epoll threshold must be >= 1");
        return NULL;
    }
    aio_context_set_epoll_threshold(self->ctx, (unsigned)threshold);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(context_set_aio_params_doc,
"set_aio_params($self, /, max_batch)\n--\n\n"
"aio_context_set_aio_params: advisory batch size (>= 0).");

static PyObject *
context_set_aio_params(ContextObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_batch", NULL};
    long long max_batch;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L:set_aio_params", kwlist,
                                     &max_batch)) {
        return NULL;
    }
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    if (max_batch < 0) {
        PyErr_SetString(PyExc_ValueError, "max_batch must be >= 0");
        return NULL;
    }
    aio_context_set_aio_params(self->ctx, max_batch);
    Py_RETURN_NONE;
}

/* ---- BHs, timers, clock --------------------------------------------- */

PyDoc_STRVAR(context_bh_new_doc,
"bh_new($self, callback, /)\n--\n\n"
"aio_bh_new: a bottom half that calls callback() when scheduled.");

static PyObject *
context_bh_new(ContextObject *self, PyObject *callback)
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return cev_bh_new(self, callback);
}

PyDoc_STRVAR(context_bh_schedule_oneshot_doc,
"bh_schedule_oneshot($self, callback, /)\n--\n\n"
"aio_bh_schedule_oneshot: run callback() once, soon.  Thread-safe.");

static PyObject *
context_bh_schedule_oneshot(ContextObject *self, PyObject *callback)
{
    AioContext *ctx = self->ctx;
    cev_record *rec;

    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(callback)->tp_name);
        return NULL;
    }
    rec = cev_record_new(self, CEV_REC_ONESHOT);
    if (rec == NULL) {
        return NULL;
    }
    rec->io_read = Py_NewRef(callback);
    if (cev_context_wake_needs_release(self)) {
        /* The reference keeps ctx alive if another thread closes it. */
        aio_context_ref(ctx);
        Py_BEGIN_ALLOW_THREADS
        aio_bh_schedule_oneshot_full(ctx, cev_bh_trampoline, rec,
                                     "python-oneshot", cev_record_release);
        Py_END_ALLOW_THREADS
        aio_context_unref(ctx);
    }
    else {
        aio_bh_schedule_oneshot_full(ctx, cev_bh_trampoline, rec,
                                     "python-oneshot", cev_record_release);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(context_timer_new_doc,
"timer_new($self, clock, scale, callback, /)\n--\n\n"
"aio_timer_new: a timer on clock (CLOCK_*) counting in scale ns units.");

static PyObject *
context_timer_new(ContextObject *self, PyObject *const *args,
                  Py_ssize_t nargs)
{
    int clock, scale;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "timer_new() takes exactly 3 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    clock = PyLong_AsInt(args[0]);
    if (clock == -1 && PyErr_Occurred()) {
        return NULL;
    }
    scale = PyLong_AsInt(args[1]);
    if (scale == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return cev_timer_new(self, clock, scale, args[2]);
}

PyObject *
cev_clock_step(PyObject *arg)
{
    long long ns = PyLong_AsLongLong(arg);

    if (ns == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (ns < 0) {
        PyErr_SetString(PyExc_ValueError, "clock_step() needs ns >= 0");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    qemu_clock_step(ns);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(context_clock_step_doc,
"clock_step($self, ns, /)\n--\n\n"
"Advance CLOCK_VIRTUAL by ns >= 0 and notify (same as cevent.clock_step).");

static PyObject *
context_clock_step(ContextObject *self, PyObject *arg)
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return cev_clock_step(arg);
}

PyDoc_STRVAR(context_stats_doc,
"stats($self, /)\n--\n\n"
"Always-on counters: iterations, blocked_ns, polling_ns, waits,\n"
"handler_dispatches, bh_dispatches, timer_dispatches, poll_grow,\n"
"poll_shrink, notify_skipped, notify_syscalls.");

static PyObject *
context_stats(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    AioContextStats st;

    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    aio_context_get_stats(self->ctx, &st);
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsK}",
        "iterations", (unsigned long long)st.iterations,
        "blocked_ns", (unsigned long long)st.blocked_ns,
        "polling_ns", (unsigned long long)st.polling_ns,
        "waits", (unsigned long long)st.waits,
        "handler_dispatches", (unsigned long long)st.handler_dispatches,
        "bh_dispatches", (unsigned long long)st.bh_dispatches,
        "timer_dispatches", (unsigned long long)st.timer_dispatches,
        "poll_grow", (unsigned long long)st.poll_grow,
        "poll_shrink", (unsigned long long)st.poll_shrink,
        "notify_skipped", (unsigned long long)st.notify_skipped,
        "notify_syscalls", (unsigned long long)st.notify_syscalls);
}

PyDoc_STRVAR(context_set_home_thread_doc,
"_set_home_thread($self, /)\n--\n\n"
"Make the calling thread the context's home thread (used by IOThread).");

static PyObject *
context_set_home_thread(ContextObject *self, PyObject *Py_UNUSED(ignored))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    if (self->poll_depth > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot move an AioContext while it is polled");
        return NULL;
    }
    self->home = PyThread_get_thread_ident();
    Py_RETURN_NONE;
}

/* ---- attributes ------------------------------------------------------ */

static PyObject *
context_get_backend(ContextObject *self, void *Py_UNUSED(closure))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return PyUnicode_FromString(aio_context_fdmon_name(self->ctx));
}

static PyObject *
context_get_closed(ContextObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->ctx == NULL);
}

static PyObject *
context_get_io_uring_features(ContextObject *self, void *Py_UNUSED(closure))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(aio_context_io_uring_features(self->ctx));
}

static PyObject *
context_get_io_uring_setup_flags(ContextObject *self,
                                 void *Py_UNUSED(closure))
{
    if (cev_context_check_open(self) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(
        aio_context_io_uring_setup_flags(self->ctx));
}

#define CONTEXT_INT64_GETTER(field) \
    static PyObject * \
    context_get_##field(ContextObject *self, void *Py_UNUSED(closure)) \
    { \
        if (cev_context_check_open(self) < 0) { \
            return NULL; \
        } \
        return PyLong_FromLongLong(self->ctx->field); \
    }

CONTEXT_INT64_GETTER(poll_ns)
CONTEXT_INT64_GETTER(poll_max_ns)
CONTEXT_INT64_GETTER(poll_grow)
CONTEXT_INT64_GETTER(poll_shrink)
CONTEXT_INT64_GETTER(aio_max_batch)
#undef CONTEXT_INT64_GETTER

static PyGetSetDef context_getset[] = {
    {"backend", (getter)context_get_backend, NULL,
     "The fd monitor in use now: 'io_uring', 'epoll' or 'poll'.", NULL},
    {"closed", (getter)context_get_closed, NULL,
     "True once close() was called.", NULL},
    {"io_uring_features", (getter)context_get_io_uring_features, NULL,
     "IORING_FEAT_* bits the kernel reported (0 when not on io_uring).",
     NULL},
    {"io_uring_setup_flags", (getter)context_get_io_uring_setup_flags, NULL,
     "IORING_SETUP_* flags the ring was made with (0 when not on "
     "io_uring).", NULL},
    {"poll_ns", (getter)context_get_poll_ns, NULL,
     "Current adaptive busy-poll time (ns).", NULL},
    {"poll_max_ns", (getter)context_get_poll_max_ns, NULL,
     "Maximum busy-poll time (ns); 0 = polling off.", NULL},
    {"poll_grow", (getter)context_get_poll_grow, NULL,
     "Busy-poll growth factor (0 = x2).", NULL},
    {"poll_shrink", (getter)context_get_poll_shrink, NULL,
     "Busy-poll shrink factor (0 = reset to 0).", NULL},
    {"aio_max_batch", (getter)context_get_aio_max_batch, NULL,
     "Advisory batch size set by set_aio_params().", NULL},
    {NULL}
};

static PyMethodDef context_methods[] = {
    {"close", (PyCFunction)context_close, METH_NOARGS, context_close_doc},
    {"__enter__", (PyCFunction)context_enter, METH_NOARGS, NULL},
    {"__exit__", CEV_METH(context_exit), METH_FASTCALL, NULL},
    {"set_fd_handler", CEV_METH(context_set_fd_handler),
     METH_VARARGS | METH_KEYWORDS, context_set_fd_handler_doc},
    {"set_event_notifier", CEV_METH(context_set_event_notifier),
     METH_VARARGS | METH_KEYWORDS, context_set_event_notifier_doc},
    {"set_event_notifier_poll", CEV_METH(context_set_event_notifier_poll),
     METH_VARARGS | METH_KEYWORDS, context_set_event_notifier_poll_doc},
    {"poll", CEV_METH(context_poll), METH_FASTCALL | METH_KEYWORDS,
     context_poll_doc},
    {"notify", (PyCFunction)context_notify, METH_NOARGS, context_notify_doc},
    {"pending", (PyCFunction)context_pending, METH_NOARGS,
     context_pending_doc},
    {"dispatch", (PyCFunction)context_dispatch, METH_NOARGS,
     context_dispatch_doc},
    {"prepare", (PyCFunction)context_prepare, METH_NOARGS,
     context_prepare_doc},
    {"compute_timeout", (PyCFunction)context_compute_timeout, METH_NOARGS,
     context_compute_timeout_doc},
    {"fileno", (PyCFunction)context_fileno, METH_NOARGS, context_fileno_doc},
    {"set_poll_params", CEV_METH(context_set_poll_params),
     METH_VARARGS | METH_KEYWORDS, context_set_poll_params_doc},
    {"_set_epoll_threshold", (PyCFunction)context__set_epoll_threshold,
     METH_O, context__set_epoll_threshold_doc},
    {"set_aio_params", CEV_METH(context_set_aio_params),
     METH_VARARGS | METH_KEYWORDS, context_set_aio_params_doc},
    {"bh_new", (PyCFunction)context_bh_new, METH_O, context_bh_new_doc},
    {"bh_schedule_oneshot", (PyCFunction)context_bh_schedule_oneshot,
     METH_O, context_bh_schedule_oneshot_doc},
    {"timer_new", CEV_METH(context_timer_new), METH_FASTCALL,
     context_timer_new_doc},
    {"clock_step", (PyCFunction)context_clock_step, METH_O,
     context_clock_step_doc},
    {"stats", (PyCFunction)context_stats, METH_NOARGS, context_stats_doc},
    {"_set_home_thread", (PyCFunction)context_set_home_thread, METH_NOARGS,
     context_set_home_thread_doc},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef context_members[] = {
    CEV_WEAKREF_MEMBER(ContextObject)
    {NULL}
};

PyDoc_STRVAR(context_doc,
"AioContext(backend=None)\n--\n\n"
"QEMU's AioContext: fd handlers, bottom halves, timers and adaptive busy\n"
"polling.  backend picks the fd monitor ('io_uring', 'epoll', 'poll');\n"
"None picks what QEMU picks.  The creating thread is the home thread.");

static PyType_Slot context_slots[] = {
    {Py_tp_new, context_new},
    {Py_tp_dealloc, context_dealloc},
    {Py_tp_traverse, context_traverse},
    {Py_tp_clear, context_clear},
    {Py_tp_methods, context_methods},
    {Py_tp_getset, context_getset},
    {Py_tp_members, context_members},
    {Py_tp_doc, (void *)context_doc},
    {0, NULL}
};

PyType_Spec cev_context_spec = {
    .name = "cevent.AioContext",
    .basicsize = sizeof(ContextObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_IMMUTABLETYPE | CEV_WEAKREF_FLAG),
    .slots = context_slots,
};
