/*
 * _cevent_testcapi: a consumer of cevent's C API, built by the tests
 * (Tests/test_capi.py) and the benchmarks (Benchmarks/capi_pingpong.py).
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * It includes nothing but <Python.h>, "cevent.h" and, for io_uring's
 * struct io_uring_sqe, the kernel's <linux/io_uring.h>, as a third-party
 * extension would, and goes through CEvent_Import() and every member of
 * CEvent_CAPI.  It is also a worked example of the rules in cevent.h:
 *
 *   - fd handler, BH and timer callbacks run on the context's home thread
 *     with the GIL held; the io_poll function (pollword_io_poll) runs in
 *     the busy-poll spin, usually without the GIL, and touches no Python
 *     object;
 *   - BHs, oneshots, timers and notifications are handed to the loop from
 *     plain C threads that never hold the GIL;
 *   - everything registered is removed, deleted or freed before the
 *     context closes, and a helper thread is finished before the memory
 *     it uses is freed;
 *   - io_uring requests (UringReq) keep their handler and buffer alive
 *     until their cb has run, or until the context has closed.
 *
 * Built with -DCEVENT_TEST_WRONG_ABI, the same source becomes
 * _cevent_testcapi_wrongabi, compiled against a CEVENT_ABI_VERSION the
 * provider does not have: importing it must raise ImportError.
 *
 * Small C objects (a BH, a timer, a polled word) are handed to Python as
 * capsules.  A capsule frees its C memory only once the C API resource is
 * released (bh_delete, timer_free, pollword_free); a capsule that dies
 * earlier leaks it on purpose, since the loop may still use it.
 */

#define PY_SSIZE_T_CLEAN

#ifdef CEVENT_TEST_WRONG_ABI
#  define CEVENT_ABI_VERSION 999
#  define TESTCAPI_NAME "_cevent_testcapi_wrongabi"
#  define TESTCAPI_INIT PyInit__cevent_testcapi_wrongabi
#else
#  define TESTCAPI_NAME "_cevent_testcapi"
#  define TESTCAPI_INIT PyInit__cevent_testcapi
#endif

#include <Python.h>
#include "cevent.h"

#include <errno.h>
#include <string.h>
#include <linux/io_uring.h>

#define NS_PER_US 1000LL
#define NS_PER_S 1000000000LL

/* Interned "poll", for calling AioContext.poll() from C. */
static PyObject *str_poll = NULL;

/* ---- helpers ------------------------------------------------------- */

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

/* Any thread, no GIL needed. */
static int64_t
now_ns(void)
{
    return CEvent_API->clock_get_ns(CEVENT_CLOCK_REALTIME);
}

/* Any thread; called without the GIL. */
static void
sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/*
 * ctx.poll(blocking), the Python method, called from C.  GIL held.
 * Returns 1 (progress), 0 (none) or -1 with an exception set.
 */
static int
call_poll(PyObject *ctxobj, int blocking)
{
    PyObject *args[3] = {NULL, ctxobj, blocking ? Py_True : Py_False};
    PyObject *res;
    int truth;

    res = PyObject_VectorcallMethod(str_poll, args + 1,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    NULL);
    if (res == NULL) {
        return -1;
    }
    truth = PyObject_IsTrue(res);
    Py_DECREF(res);
    return truth;
}

/*
 * Wait (GIL released) until *flag is non-zero, for at most timeout_ns.
 * Returns 0 when set, -1 on timeout (no exception set).
 */
static int
wait_flag(int *flag, int64_t timeout_ns)
{
    int64_t deadline = now_ns() + timeout_ns;
    int ok = 0;

    Py_BEGIN_ALLOW_THREADS
    while (!(ok = LOAD(flag)) && now_ns() < deadline) {
        sleep_us(50);
    }
    Py_END_ALLOW_THREADS
    return ok ? 0 : -1;
}

/* Start a C thread that never takes the GIL.  GIL held. */
static int
start_thread(void (*func)(void *), void *arg)
{
    if (PyThread_start_new_thread(func, arg) == PYTHREAD_INVALID_THREAD_ID) {
        PyErr_SetString(PyExc_RuntimeError, "cannot start a thread");
        return -1;
    }
    return 0;
}

static int64_t
timeout_to_ns(double timeout_s)
{
    return (int64_t)(timeout_s * (double)NS_PER_S);
}

/*
 * Read what is readable on a non-blocking fd.  Any thread.  Returns the
 * number of bytes read (0: nothing there), or -1 with errno set (EPIPE for
 * end of file).
 */
static ssize_t
drain_fd(int fd)
{
    char buf[64];
    ssize_t total = 0;

    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r > 0) {
            total += r;
            continue;
        }
        if (r == 0) {
            errno = EPIPE;
            return -1;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return total;
        }
        return -1;
    }
}

/*
 * One read() of what is there, as a level-triggered handler does (more
 * data makes the fd ready again).  Returns the bytes read (0: spurious
 * wake-up), or -1 with errno set (EPIPE for end of file).
 */
static ssize_t
read_once(int fd)
{
    char buf[64];
    ssize_t r;

    do {
        r = read(fd, buf, sizeof(buf));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        errno = EPIPE;
        return -1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    return r;
}

/* Write one byte; any thread.  0 or -1 with errno set. */
static int
write_byte(int fd, char c)
{
    ssize_t r;

    do {
        r = write(fd, &c, 1);
    } while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

/* The CEvent_Context of a Python object.  GIL held. */
static CEvent_Context *
as_context(PyObject *obj)
{
    return CEvent_API->Context_AsContext(obj);
}

static void
remove_fd_handler(CEvent_Context *ctx, int fd)
{
    CEvent_API->set_fd_handler(ctx, fd, NULL, NULL, NULL, NULL, NULL);
}

/* ---- api_info, as_context, notify ---------------------------------- */

PyDoc_STRVAR(api_info_doc,
"api_info($module, /)\n--\n\n"
"The provider's abi_version and struct_size next to what this module was\n"
"compiled against, and the capsule name.");

static PyObject *
testcapi_api_info(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return Py_BuildValue("{sIsIsisnss}",
                         "abi_version", CEvent_API->abi_version,
                         "struct_size", CEvent_API->struct_size,
                         "header_abi_version", (int)CEVENT_ABI_VERSION,
                         "header_struct_size",
                         (Py_ssize_t)sizeof(CEvent_CAPI),
                         "capsule_name", CEVENT_CAPSULE_NAME);
}

PyDoc_STRVAR(as_context_doc,
"as_context($module, ctx, /)\n--\n\n"
"Context_AsContext(ctx) as an int (the C pointer).");

static PyObject *
testcapi_as_context(PyObject *module, PyObject *obj)
{
    CEvent_Context *ctx = as_context(obj);

    (void)module;
    if (ctx == NULL) {
        return NULL;
    }
    return PyLong_FromVoidPtr(ctx);
}

PyDoc_STRVAR(notify_doc,
"notify($module, ctx, /)\n--\n\n"
"The API's notify(ctx), called with the GIL released.");

static PyObject *
testcapi_notify(PyObject *module, PyObject *obj)
{
    CEvent_Context *ctx = as_context(obj);

    (void)module;
    if (ctx == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    CEvent_API->notify(ctx);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(clock_get_ns_doc,
"clock_get_ns($module, clock, /)\n--\n\n"
"The API's clock_get_ns(clock), called with the GIL released.");

static PyObject *
testcapi_clock_get_ns(PyObject *module, PyObject *arg)
{
    long clock = PyLong_AsLong(arg);
    int64_t ns;

    (void)module;
    if (clock == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (clock < INT_MIN || clock > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "clock out of range");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    ns = CEvent_API->clock_get_ns((int)clock);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(ns);
}

/* ---- socketpair ping-pong with C io_read handlers ------------------- */

typedef struct {
    CEvent_Context *ctx;
    int fd_a;           /* sends the ping, counts the echoes */
    int fd_b;           /* echoes every byte back */
    long n;             /* round trips wanted */
    long done;          /* round trips completed */
    long echoed;        /* bytes b sent back */
    int err;            /* errno of the first failure, or 0 */
} PingPong;

/* Stop the run: record errno and wake the loop.  Home thread, GIL held. */
static void
pingpong_fail(PingPong *pp)
{
    if (pp->err == 0) {
        pp->err = errno ? errno : EIO;
    }
    CEvent_API->notify(pp->ctx);
}

/* io_read of fd_b: echo what arrived.  Home thread, GIL held. */
static void
pingpong_read_b(void *opaque)
{
    PingPong *pp = opaque;
    ssize_t r = read_once(pp->fd_b);

    for (ssize_t i = 0; i < r; i++) {
        if (write_byte(pp->fd_b, 'o') < 0) {
            pingpong_fail(pp);
            return;
        }
        pp->echoed++;
    }
    if (r < 0) {
        pingpong_fail(pp);
    }
}

/* io_read of fd_a: an echo completes a round trip.  Home thread, GIL. */
static void
pingpong_read_a(void *opaque)
{
    PingPong *pp = opaque;
    ssize_t r = read_once(pp->fd_a);

    if (r < 0) {
        pingpong_fail(pp);
        return;
    }
    pp->done += r;
    if (r > 0 && pp->done < pp->n && write_byte(pp->fd_a, 'i') < 0) {
        pingpong_fail(pp);
    }
}

PyDoc_STRVAR(pingpong_doc,
"pingpong($module, ctx, fd_a, fd_b, n, /)\n--\n\n"
"Register C io_read handlers on both ends of a connected pair of\n"
"non-blocking sockets, send a byte from fd_a, let fd_b echo it, and call\n"
"ctx.poll(True) until n round trips are done.  Removes both handlers\n"
"and returns n.");

static PyObject *
testcapi_pingpong(PyObject *module, PyObject *args)
{
    PyObject *ctxobj;
    PingPong pp = {0};
    long budget;
    int ok = 0;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oiil:pingpong", &ctxobj, &pp.fd_a,
                          &pp.fd_b, &pp.n)) {
        return NULL;
    }
    if (pp.n < 1 || pp.n > LONG_MAX / 4 - 1000) {
        PyErr_SetString(PyExc_ValueError, "n out of range");
        return NULL;
    }
    pp.ctx = as_context(ctxobj);
    if (pp.ctx == NULL) {
        return NULL;
    }
    /* @pp lives on this frame: the handlers run only inside call_poll(). */
    CEvent_API->set_fd_handler(pp.ctx, pp.fd_a, pingpong_read_a, NULL, NULL,
                               NULL, &pp);
    CEvent_API->set_fd_handler(pp.ctx, pp.fd_b, pingpong_read_b, NULL, NULL,
                               NULL, &pp);
    if (write_byte(pp.fd_a, 'i') < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    /* Two iterations per round trip, plus slack for notifications. */
    budget = 4 * pp.n + 1000;
    while (pp.done < pp.n && pp.err == 0) {
        if (budget-- == 0) {
            PyErr_Format(PyExc_RuntimeError,
                         "pingpong: %ld of %ld round trips after %ld polls",
                         pp.done, pp.n, 4 * pp.n + 1000);
            goto done;
        }
        if (call_poll(ctxobj, 1) < 0) {
            goto done;
        }
    }
    if (pp.err != 0) {
        errno = pp.err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    ok = 1;

done:
    remove_fd_handler(pp.ctx, pp.fd_a);
    remove_fd_handler(pp.ctx, pp.fd_b);
    return ok ? PyLong_FromLong(pp.done) : NULL;
}

/* ---- io_write ------------------------------------------------------- */

typedef struct {
    CEvent_Context *ctx;
    int fd;
    long calls;
} Writer;

/* io_write: write one byte and remove the handler.  Home thread, GIL. */
static void
writer_io_write(void *opaque)
{
    Writer *w = opaque;

    w->calls++;
    (void)write_byte(w->fd, 'w');
    remove_fd_handler(w->ctx, w->fd);
}

PyDoc_STRVAR(write_once_doc,
"write_once($module, ctx, fd, /)\n--\n\n"
"Register a C io_write handler on fd that writes one byte and removes\n"
"itself; poll until it ran.  Returns how many times it ran (1).");

static PyObject *
testcapi_write_once(PyObject *module, PyObject *args)
{
    PyObject *ctxobj;
    Writer w = {0};
    int polls = 0;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oi:write_once", &ctxobj, &w.fd)) {
        return NULL;
    }
    w.ctx = as_context(ctxobj);
    if (w.ctx == NULL) {
        return NULL;
    }
    CEvent_API->set_fd_handler(w.ctx, w.fd, NULL, writer_io_write, NULL,
                               NULL, &w);
    while (w.calls == 0 && polls++ < 100) {
        if (call_poll(ctxobj, 1) < 0) {
            remove_fd_handler(w.ctx, w.fd);
            return NULL;
        }
    }
    /* A few more iterations: the handler is gone, nothing else runs. */
    for (int i = 0; i < 3; i++) {
        if (call_poll(ctxobj, 0) < 0) {
            remove_fd_handler(w.ctx, w.fd);
            return NULL;
        }
    }
    remove_fd_handler(w.ctx, w.fd);     /* no-op: already removed */
    return PyLong_FromLong(w.calls);
}

/* ---- BHs ------------------------------------------------------------ */

#define BH_CAPSULE "_cevent_testcapi.BH"

typedef struct {
    CEvent_BH *bh;      /* NULL once deleted */
    long runs;
} BHData;

/* BH callback.  Home thread, GIL held. */
static void
bh_data_cb(void *opaque)
{
    BHData *d = opaque;
    ADD(&d->runs, 1);
}

static void
bh_capsule_destructor(PyObject *capsule)
{
    BHData *d = PyCapsule_GetPointer(capsule, BH_CAPSULE);

    /* A BH that was never deleted may still run: leak its data. */
    if (d != NULL && d->bh == NULL) {
        PyMem_Free(d);
    }
}

static BHData *
get_bh(PyObject *capsule)
{
    BHData *d = PyCapsule_GetPointer(capsule, BH_CAPSULE);

    if (d != NULL && d->bh == NULL) {
        PyErr_SetString(PyExc_ValueError, "BH deleted");
        return NULL;
    }
    return d;
}

PyDoc_STRVAR(bh_new_doc,
"bh_new($module, ctx, /)\n--\n\n"
"bh_new() with a C callback that counts its runs; returns a handle.");

static PyObject *
testcapi_bh_new(PyObject *module, PyObject *ctxobj)
{
    CEvent_Context *ctx = as_context(ctxobj);
    PyObject *capsule;
    BHData *d;

    (void)module;
    if (ctx == NULL) {
        return NULL;
    }
    d = PyMem_Calloc(1, sizeof(*d));
    if (d == NULL) {
        return PyErr_NoMemory();
    }
    d->bh = CEvent_API->bh_new(ctx, bh_data_cb, d);
    capsule = PyCapsule_New(d, BH_CAPSULE, bh_capsule_destructor);
    if (capsule == NULL) {
        CEvent_API->bh_delete(d->bh);
        PyMem_Free(d);
    }
    return capsule;
}

PyDoc_STRVAR(bh_schedule_doc,
"bh_schedule($module, bh, /)\n--\n\nbh_schedule().");

static PyObject *
testcapi_bh_schedule(PyObject *module, PyObject *capsule)
{
    BHData *d = get_bh(capsule);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    CEvent_API->bh_schedule(d->bh);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_cancel_doc,
"bh_cancel($module, bh, /)\n--\n\nbh_cancel().");

static PyObject *
testcapi_bh_cancel(PyObject *module, PyObject *capsule)
{
    BHData *d = get_bh(capsule);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    CEvent_API->bh_cancel(d->bh);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_delete_doc,
"bh_delete($module, bh, /)\n--\n\nbh_delete(); the handle is dead after.");

static PyObject *
testcapi_bh_delete(PyObject *module, PyObject *capsule)
{
    BHData *d = get_bh(capsule);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    CEvent_API->bh_delete(d->bh);
    d->bh = NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bh_runs_doc,
"bh_runs($module, bh, /)\n--\n\nHow many times the BH ran.");

static PyObject *
testcapi_bh_runs(PyObject *module, PyObject *capsule)
{
    BHData *d = PyCapsule_GetPointer(capsule, BH_CAPSULE);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    return PyLong_FromLong(LOAD(&d->runs));
}

/* A BH and a oneshot scheduled from a C thread. */

typedef struct {
    CEvent_Context *ctx;
    CEvent_BH *bh;          /* made by the thread */
    long rounds;
    int64_t timeout_ns;
    long bh_runs;           /* atomic */
    long oneshot_runs;      /* atomic */
    long rounds_done;       /* atomic */
    int timed_out;          /* atomic */
    int finished;           /* atomic: the thread is about to notify */
    int done;               /* atomic: the thread's last write */
} BHThread;

/* Home thread, GIL held. */
static void
bh_thread_bh_cb(void *opaque)
{
    BHThread *t = opaque;
    ADD(&t->bh_runs, 1);
}

/* Home thread, GIL held. */
static void
bh_thread_oneshot_cb(void *opaque)
{
    BHThread *t = opaque;
    ADD(&t->oneshot_runs, 1);
}

/*
 * The C thread: no GIL, no Python.  Each round schedules the BH and a
 * oneshot, then waits until the loop ran both.
 */
static void
bh_thread_main(void *arg)
{
    BHThread *t = arg;
    CEvent_Context *ctx = t->ctx;
    int64_t deadline = now_ns() + t->timeout_ns;
    CEvent_BH *bh = CEvent_API->bh_new(ctx, bh_thread_bh_cb, t);

    STORE(&t->bh, bh);
    for (long i = 1; i <= t->rounds; i++) {
        CEvent_API->bh_schedule(bh);
        CEvent_API->bh_schedule_oneshot(ctx, bh_thread_oneshot_cb, t);
        while (LOAD(&t->bh_runs) < i || LOAD(&t->oneshot_runs) < i) {
            if (now_ns() > deadline) {
                STORE(&t->timed_out, 1);
                goto out;
            }
            sleep_us(10);
        }
        STORE(&t->rounds_done, i);
    }
out:
    STORE(&t->finished, 1);
    /* A notification is never lost: the loop sees finished afterwards. */
    CEvent_API->notify(ctx);
    STORE(&t->done, 1);
}

PyDoc_STRVAR(bh_from_thread_doc,
"bh_from_thread($module, ctx, rounds, timeout, /)\n--\n\n"
"A C thread (no GIL) creates a BH with bh_new, then each round calls\n"
"bh_schedule and bh_schedule_oneshot and waits until both ran; this\n"
"thread calls ctx.poll(True) meanwhile.  Deletes the BH and returns\n"
"(rounds_done, bh_runs, oneshot_runs, timed_out).");

static PyObject *
testcapi_bh_from_thread(PyObject *module, PyObject *args)
{
    PyObject *ctxobj, *result = NULL;
    double timeout_s;
    BHThread *t;

    (void)module;
    t = PyMem_Calloc(1, sizeof(*t));
    if (t == NULL) {
        return PyErr_NoMemory();
    }
    if (!PyArg_ParseTuple(args, "Old:bh_from_thread", &ctxobj, &t->rounds,
                          &timeout_s)) {
        goto out;
    }
    t->timeout_ns = timeout_to_ns(timeout_s);
    t->ctx = as_context(ctxobj);
    if (t->ctx == NULL || start_thread(bh_thread_main, t) < 0) {
        goto out;
    }
    while (!LOAD(&t->finished)) {
        if (call_poll(ctxobj, 1) < 0) {
            /* The thread gives up at its deadline; wait for it anyway. */
            break;
        }
    }
    if (wait_flag(&t->done, t->timeout_ns + 5 * NS_PER_S) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "BH thread hangs");
        }
        return NULL;    /* leak @t: the thread may still use it */
    }
    if (t->bh != NULL) {
        CEvent_API->bh_delete(t->bh);
    }
    if (PyErr_Occurred()) {
        /* A oneshot may still be queued, and would use @t: leak it. */
        return NULL;
    }
    result = Py_BuildValue("(lllO)", LOAD(&t->rounds_done),
                           LOAD(&t->bh_runs), LOAD(&t->oneshot_runs),
                           LOAD(&t->timed_out) ? Py_True : Py_False);
    if (LOAD(&t->timed_out)) {
        return result;  /* as above */
    }
out:
    PyMem_Free(t);
    return result;
}

/* ---- timers --------------------------------------------------------- */

#define TIMER_CAPSULE "_cevent_testcapi.Timer"

typedef struct {
    CEvent_Timer *ts;       /* NULL once freed */
    int clock;
    long fired;
    int64_t fired_at;       /* the clock's time in the last callback */
} TimerData;

/* Timer callback.  Home thread, GIL held. */
static void
timer_data_cb(void *opaque)
{
    TimerData *d = opaque;

    d->fired_at = CEvent_API->clock_get_ns(d->clock);
    ADD(&d->fired, 1);
}

static void
timer_capsule_destructor(PyObject *capsule)
{
    TimerData *d = PyCapsule_GetPointer(capsule, TIMER_CAPSULE);

    /* A timer never freed may still fire: leak its data. */
    if (d != NULL && d->ts == NULL) {
        PyMem_Free(d);
    }
}

static TimerData *
get_timer(PyObject *capsule)
{
    TimerData *d = PyCapsule_GetPointer(capsule, TIMER_CAPSULE);

    if (d != NULL && d->ts == NULL) {
        PyErr_SetString(PyExc_ValueError, "timer freed");
        return NULL;
    }
    return d;
}

PyDoc_STRVAR(timer_new_doc,
"timer_new($module, ctx, clock, scale=1, /)\n--\n\n"
"timer_new() with a C callback that counts its runs; returns a handle.\n"
"ValueError when the API refuses the clock or scale.");

static PyObject *
testcapi_timer_new(PyObject *module, PyObject *args)
{
    PyObject *ctxobj, *capsule;
    CEvent_Context *ctx;
    int clock, scale = 1;
    TimerData *d;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oi|i:timer_new", &ctxobj, &clock,
                          &scale)) {
        return NULL;
    }
    ctx = as_context(ctxobj);
    if (ctx == NULL) {
        return NULL;
    }
    d = PyMem_Calloc(1, sizeof(*d));
    if (d == NULL) {
        return PyErr_NoMemory();
    }
    d->clock = clock;
    d->fired_at = -1;
    d->ts = CEvent_API->timer_new(ctx, clock, scale, timer_data_cb, d);
    if (d->ts == NULL) {
        PyMem_Free(d);
        PyErr_Format(PyExc_ValueError,
                     "timer_new refused clock %d, scale %d", clock, scale);
        return NULL;
    }
    capsule = PyCapsule_New(d, TIMER_CAPSULE, timer_capsule_destructor);
    if (capsule == NULL) {
        CEvent_API->timer_free(d->ts);
        PyMem_Free(d);
    }
    return capsule;
}

PyDoc_STRVAR(timer_mod_ns_doc,
"timer_mod_ns($module, timer, expire_time_ns, /)\n--\n\n"
"timer_mod_ns(), called with the GIL released.");

static PyObject *
testcapi_timer_mod_ns(PyObject *module, PyObject *args)
{
    PyObject *capsule;
    long long expire;
    TimerData *d;

    (void)module;
    if (!PyArg_ParseTuple(args, "OL:timer_mod_ns", &capsule, &expire)) {
        return NULL;
    }
    d = get_timer(capsule);
    if (d == NULL) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    CEvent_API->timer_mod_ns(d->ts, (int64_t)expire);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timer_del_doc,
"timer_del($module, timer, /)\n--\n\ntimer_del(): disarm.");

static PyObject *
testcapi_timer_del(PyObject *module, PyObject *capsule)
{
    TimerData *d = get_timer(capsule);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    CEvent_API->timer_del(d->ts);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timer_free_doc,
"timer_free($module, timer, /)\n--\n\n"
"timer_free(); the handle is dead after.");

static PyObject *
testcapi_timer_free(PyObject *module, PyObject *capsule)
{
    TimerData *d = get_timer(capsule);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    CEvent_API->timer_free(d->ts);
    d->ts = NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(timer_fired_doc,
"timer_fired($module, timer, /)\n--\n\n"
"(times fired, the timer clock's time at the last callback or -1).");

static PyObject *
testcapi_timer_fired(PyObject *module, PyObject *capsule)
{
    TimerData *d = PyCapsule_GetPointer(capsule, TIMER_CAPSULE);

    (void)module;
    if (d == NULL) {
        return NULL;
    }
    return Py_BuildValue("(lL)", LOAD(&d->fired), (long long)d->fired_at);
}

/* A REALTIME timer armed from a C thread. */

typedef struct {
    CEvent_Timer *ts;
    int64_t delay_ns;
    int64_t expire;         /* the deadline the thread set */
    int done;
} TimerThread;

/* The C thread: no GIL.  Arms the timer delay_ns from now. */
static void
timer_thread_main(void *arg)
{
    TimerThread *t = arg;

    sleep_us(1000);     /* let the loop block first */
    t->expire = now_ns() + t->delay_ns;
    CEvent_API->timer_mod_ns(t->ts, t->expire);
    STORE(&t->done, 1);
}

PyDoc_STRVAR(timer_from_thread_doc,
"timer_from_thread($module, ctx, delay_ns, timeout, /)\n--\n\n"
"Create a REALTIME timer; a C thread arms it delay_ns ahead with\n"
"timer_mod_ns while this thread blocks in ctx.poll(True) until it fired.\n"
"Frees the timer and returns (fired, late_ns) where late_ns is how long\n"
"after its deadline the callback ran.");

static PyObject *
testcapi_timer_from_thread(PyObject *module, PyObject *args)
{
    PyObject *ctxobj, *result = NULL;
    TimerThread t = {0};
    TimerData d = {0};
    CEvent_Context *ctx;
    double timeout_s;
    int64_t start, deadline;
    long long delay;

    (void)module;
    if (!PyArg_ParseTuple(args, "OLd:timer_from_thread", &ctxobj, &delay,
                          &timeout_s)) {
        return NULL;
    }
    ctx = as_context(ctxobj);
    if (ctx == NULL) {
        return NULL;
    }
    d.clock = CEVENT_CLOCK_REALTIME;
    d.fired_at = -1;
    /* @d and @t live on this frame: the thread and the timer are done
     * with them before it returns. */
    d.ts = CEvent_API->timer_new(ctx, CEVENT_CLOCK_REALTIME, 1,
                                 timer_data_cb, &d);
    t.ts = d.ts;
    t.delay_ns = delay;
    start = now_ns();
    if (d.ts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "timer_new failed");
        return NULL;
    }
    if (start_thread(timer_thread_main, &t) < 0) {
        CEvent_API->timer_free(d.ts);
        return NULL;
    }
    deadline = start + timeout_to_ns(timeout_s);
    while (LOAD(&d.fired) == 0 && now_ns() < deadline) {
        /* The thread's timer_mod_ns() wakes this poll. */
        if (call_poll(ctxobj, 1) < 0) {
            break;
        }
    }
    /* The thread must be gone before @t goes (it is quick). */
    if (wait_flag(&t.done, 10 * NS_PER_S) < 0) {
        Py_FatalError("timer_from_thread: the C thread hangs");
    }
    CEvent_API->timer_free(d.ts);
    if (!PyErr_Occurred()) {
        result = Py_BuildValue("(lL)", d.fired,
                               (long long)(d.fired_at - t.expire));
    }
    return result;
}

/* ---- notify from a C thread ----------------------------------------- */

typedef struct {
    CEvent_Context *ctx;
    long delay_us;
    int finished;
    int done;
} Notifier;

/* The C thread: no GIL. */
static void
notifier_main(void *arg)
{
    Notifier *n = arg;
    CEvent_Context *ctx = n->ctx;

    sleep_us(n->delay_us);
    STORE(&n->finished, 1);
    CEvent_API->notify(ctx);
    STORE(&n->done, 1);
}

PyDoc_STRVAR(notify_from_thread_doc,
"notify_from_thread($module, ctx, delay_us, /)\n--\n\n"
"A C thread calls notify(ctx) after delay_us while this thread blocks in\n"
"ctx.poll(True).  Returns the list of poll() results.");

static PyObject *
testcapi_notify_from_thread(PyObject *module, PyObject *args)
{
    PyObject *ctxobj, *results;
    Notifier n = {0};

    (void)module;
    if (!PyArg_ParseTuple(args, "Ol:notify_from_thread", &ctxobj,
                          &n.delay_us)) {
        return NULL;
    }
    n.ctx = as_context(ctxobj);
    if (n.ctx == NULL) {
        return NULL;
    }
    results = PyList_New(0);
    if (results == NULL) {
        return NULL;
    }
    if (start_thread(notifier_main, &n) < 0) {
        Py_DECREF(results);
        return NULL;
    }
    /* At least one poll, even if a loaded machine lets the thread finish
     * first: its notification then ends that poll at once. */
    do {
        int r = call_poll(ctxobj, 1);
        if (r < 0 || PyList_Append(results, r ? Py_True : Py_False) < 0) {
            Py_CLEAR(results);
            break;
        }
    } while (!LOAD(&n.finished));
    if (wait_flag(&n.done, 10 * NS_PER_S) < 0) {
        Py_FatalError("notify_from_thread: the C thread hangs");
    }
    return results;
}

/* ---- a C io_poll function on a memory word -------------------------- */

#define POLLWORD_CAPSULE "_cevent_testcapi.PollWord"

typedef struct {
    CEvent_Context *ctx;
    int fd;                 /* registered: io_read drains it */
    int registered;
    uint64_t word;          /* bumped by any thread */
    /* Written by the home thread, read by any (atomics). */
    uint64_t last;          /* io_poll's value at its last call */
    uint64_t polls;         /* io_poll calls */
    uint64_t polls_nogil;   /* ... of which without the GIL */
    uint64_t ready;         /* io_poll_ready calls */
    uint64_t reads;         /* io_read calls */
    uint64_t seen;          /* the word when io_poll_ready/io_read ran */
    /* The bumper thread (pollword_bump_later). */
    int thread_running;     /* atomic */
    long delay_us;
    long fallback_us;
    int wfd;
    uint64_t fallbacks;     /* atomic */
} PollWord;

/*
 * io_poll: did the word change?  Runs in the busy-poll spin, usually
 * WITHOUT the GIL: touches no Python object.  PyGILState_Check() may be
 * called without the GIL.
 */
static bool
pollword_io_poll(void *opaque)
{
    PollWord *pw = opaque;
    uint64_t value = LOAD(&pw->word);

    STORE(&pw->polls, pw->polls + 1);
    if (!PyGILState_Check()) {
        STORE(&pw->polls_nogil, pw->polls_nogil + 1);
    }
    if (value != pw->last) {
        STORE(&pw->last, value);
        return true;
    }
    return false;
}

/* io_poll_ready.  Home thread, GIL held. */
static void
pollword_io_poll_ready(void *opaque)
{
    PollWord *pw = opaque;

    STORE(&pw->seen, LOAD(&pw->word));
    STORE(&pw->ready, pw->ready + 1);
}

/* io_read: the fd side.  Home thread, GIL held. */
static void
pollword_io_read(void *opaque)
{
    PollWord *pw = opaque;

    (void)drain_fd(pw->fd);
    STORE(&pw->seen, LOAD(&pw->word));
    STORE(&pw->reads, pw->reads + 1);
}

static void
pollword_capsule_destructor(PyObject *capsule)
{
    PollWord *pw = PyCapsule_GetPointer(capsule, POLLWORD_CAPSULE);

    /* Still registered, or its thread still running: leak it. */
    if (pw != NULL && !pw->registered && !LOAD(&pw->thread_running)) {
        PyMem_Free(pw);
    }
}

static PollWord *
get_pollword(PyObject *capsule)
{
    PollWord *pw = PyCapsule_GetPointer(capsule, POLLWORD_CAPSULE);

    if (pw != NULL && !pw->registered) {
        PyErr_SetString(PyExc_ValueError, "PollWord freed");
        return NULL;
    }
    return pw;
}

PyDoc_STRVAR(pollword_new_doc,
"pollword_new($module, ctx, fd, /)\n--\n\n"
"Register fd (non-blocking, read end) with a C io_read that drains it,\n"
"and a C io_poll/io_poll_ready pair watching a 64-bit word in C memory.\n"
"Returns a handle.");

static PyObject *
testcapi_pollword_new(PyObject *module, PyObject *args)
{
    PyObject *ctxobj, *capsule;
    CEvent_Context *ctx;
    PollWord *pw;
    int fd;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oi:pollword_new", &ctxobj, &fd)) {
        return NULL;
    }
    ctx = as_context(ctxobj);
    if (ctx == NULL) {
        return NULL;
    }
    pw = PyMem_Calloc(1, sizeof(*pw));
    if (pw == NULL) {
        return PyErr_NoMemory();
    }
    pw->ctx = ctx;
    pw->fd = fd;
    pw->wfd = -1;
    capsule = PyCapsule_New(pw, POLLWORD_CAPSULE,
                            pollword_capsule_destructor);
    if (capsule == NULL) {
        PyMem_Free(pw);
        return NULL;
    }
    pw->registered = 1;
    CEvent_API->set_fd_handler(ctx, fd, pollword_io_read, NULL,
                               pollword_io_poll, pollword_io_poll_ready, pw);
    return capsule;
}

PyDoc_STRVAR(pollword_bump_doc,
"pollword_bump($module, pw, /)\n--\n\n"
"Add 1 to the word (a release store, as a producer would).  Returns the\n"
"new value.");

static PyObject *
testcapi_pollword_bump(PyObject *module, PyObject *capsule)
{
    PollWord *pw = get_pollword(capsule);

    (void)module;
    if (pw == NULL) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(ADD(&pw->word, 1));
}

/*
 * The bumper thread: no GIL.  Sleeps, bumps the word, and if the loop has
 * not seen the new value within fallback_us, writes a byte to wfd so the
 * fd side wakes it (counted as a fallback).
 */
static void
pollword_thread_main(void *arg)
{
    PollWord *pw = arg;
    uint64_t value;
    int64_t deadline;

    sleep_us(pw->delay_us);
    value = ADD(&pw->word, 1);
    deadline = now_ns() + pw->fallback_us * NS_PER_US;
    while (LOAD(&pw->seen) != value) {
        if (now_ns() > deadline) {
            ADD(&pw->fallbacks, 1);
            (void)write_byte(pw->wfd, 'f');
            break;
        }
        sleep_us(20);
    }
    STORE(&pw->thread_running, 0);
}

PyDoc_STRVAR(pollword_bump_later_doc,
"pollword_bump_later($module, pw, delay_us, wfd, fallback_us, /)\n--\n\n"
"Start a C thread that bumps the word after delay_us; if the loop has not\n"
"seen it fallback_us later, the thread writes a byte to wfd (the other\n"
"end of the registered fd).  One thread at a time.");

static PyObject *
testcapi_pollword_bump_later(PyObject *module, PyObject *args)
{
    PyObject *capsule;
    long delay_us, fallback_us;
    PollWord *pw;
    int wfd;

    (void)module;
    if (!PyArg_ParseTuple(args, "Olil:pollword_bump_later", &capsule,
                          &delay_us, &wfd, &fallback_us)) {
        return NULL;
    }
    pw = get_pollword(capsule);
    if (pw == NULL) {
        return NULL;
    }
    if (LOAD(&pw->thread_running)) {
        PyErr_SetString(PyExc_RuntimeError, "a bumper thread is running");
        return NULL;
    }
    pw->delay_us = delay_us;
    pw->fallback_us = fallback_us;
    pw->wfd = wfd;
    STORE(&pw->thread_running, 1);
    if (start_thread(pollword_thread_main, pw) < 0) {
        STORE(&pw->thread_running, 0);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(pollword_stats_doc,
"pollword_stats($module, pw, /)\n--\n\n"
"A dict: word, polls, polls_nogil, ready, reads, seen, fallbacks,\n"
"thread_running.");

static PyObject *
testcapi_pollword_stats(PyObject *module, PyObject *capsule)
{
    PollWord *pw = PyCapsule_GetPointer(capsule, POLLWORD_CAPSULE);

    (void)module;
    if (pw == NULL) {
        return NULL;
    }
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsO}",
        "word", (unsigned long long)LOAD(&pw->word),
        "polls", (unsigned long long)LOAD(&pw->polls),
        "polls_nogil", (unsigned long long)LOAD(&pw->polls_nogil),
        "ready", (unsigned long long)LOAD(&pw->ready),
        "reads", (unsigned long long)LOAD(&pw->reads),
        "seen", (unsigned long long)LOAD(&pw->seen),
        "fallbacks", (unsigned long long)LOAD(&pw->fallbacks),
        "thread_running", LOAD(&pw->thread_running) ? Py_True : Py_False);
}

PyDoc_STRVAR(pollword_free_doc,
"pollword_free($module, pw, timeout=10.0, /)\n--\n\n"
"Wait for the bumper thread (if any), then remove the fd handler.  Home\n"
"thread, outside poll(): the memory is no longer used afterwards.");

static PyObject *
testcapi_pollword_free(PyObject *module, PyObject *args)
{
    double timeout_s = 10.0;
    PyObject *capsule;
    PollWord *pw;
    int64_t deadline;

    (void)module;
    if (!PyArg_ParseTuple(args, "O|d:pollword_free", &capsule, &timeout_s)) {
        return NULL;
    }
    pw = get_pollword(capsule);
    if (pw == NULL) {
        return NULL;
    }
    deadline = now_ns() + timeout_to_ns(timeout_s);
    Py_BEGIN_ALLOW_THREADS
    while (LOAD(&pw->thread_running) && now_ns() < deadline) {
        sleep_us(50);
    }
    Py_END_ALLOW_THREADS
    remove_fd_handler(pw->ctx, pw->fd);
    pw->registered = 0;
    if (LOAD(&pw->thread_running)) {
        PyErr_SetString(PyExc_RuntimeError, "bumper thread hangs");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- io_uring requests (has_io_uring, add_sqe) ------------------- */

/*
 * One request: a read (file), a receive or a send (socket).  A read with
 * chain set goes on from cb with the next chunk until end of file, so that
 * add_sqe() is also used from inside a completion callback.
 */
typedef struct {
    CEvent_CqeHandler handler;      /* first: the callback finds the rest */
    CEvent_Context *ctx;
    int opcode;
    int fd;
    uint64_t off;
    char *buf;
    size_t cap;                     /* bytes allocated at buf */
    size_t len;                     /* this request's length */
    size_t got;                     /* chain: bytes read so far */
    int chain;
    int in_flight;
    int calls;
    int32_t res;
    uint32_t flags;
    int resubmit_errno;             /* chain: add_sqe() failed from cb */
    uint64_t target;                /* ASYNC_CANCEL: the request's user_data */
} UringReq;

#define URING_REQ "_cevent_testcapi.uring_req"

static void
uring_prep(struct io_uring_sqe *sqe, void *opaque)
{
    UringReq *req = opaque;

    /* By hand, as liburing's io_uring_prep_rw() does; no user_data */
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = (uint8_t)req->opcode;
    if (req->opcode == IORING_OP_ASYNC_CANCEL) {
        sqe->fd = -1;
        sqe->addr = req->target;
        return;
    }
    sqe->fd = req->fd;
    sqe->addr = (uint64_t)(uintptr_t)(req->buf + req->got);
    sqe->len = (uint32_t)req->len;
    sqe->off = req->off + req->got;
}

/* cb: on the home thread, with the GIL, inside poll() */
static void
uring_cb(CEvent_CqeHandler *handler)
{
    UringReq *req = (UringReq *)handler;

    req->calls++;
    req->res = handler->res;
    req->flags = handler->flags;
    if (req->chain && handler->res > 0) {
        req->got += (size_t)handler->res;
        req->len = req->cap - req->got;
        if (req->len > (size_t)req->chain) {
            req->len = (size_t)req->chain;
        }
        if (req->len > 0) {
            /* The handler is free again: reuse it for the next chunk */
            if (CEvent_API->add_sqe(req->ctx, uring_prep, req,
                                    &req->handler) < 0) {
                req->resubmit_errno = errno;
                req->in_flight = 0;
            }
            return;
        }
    }
    req->in_flight = 0;
}

static void
uring_req_destructor(PyObject *capsule)
{
    UringReq *req = PyCapsule_GetPointer(capsule, URING_REQ);

    /* In flight: the kernel may still use it; leak it on purpose */
    if (req != NULL && !req->in_flight) {
        PyMem_RawFree(req->buf);
        PyMem_RawFree(req);
    }
}

static UringReq *
uring_req_get(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, URING_REQ);
}

/* Make and submit a request; a capsule, or NULL with an exception set */
static PyObject *
uring_submit_to(PyObject *pyctx, int opcode, int fd, uint64_t off,
                const char *data, size_t len, int chain, uint64_t target)
{
    CEvent_Context *ctx = CEvent_API->Context_AsContext(pyctx);
    UringReq *req;
    PyObject *capsule;

    if (ctx == NULL) {
        return NULL;
    }
    req = PyMem_RawCalloc(1, sizeof(*req));
    if (req == NULL) {
        return PyErr_NoMemory();
    }
    req->buf = PyMem_RawMalloc(len ? len : 1);
    if (req->buf == NULL) {
        PyMem_RawFree(req);
        return PyErr_NoMemory();
    }
    if (data != NULL) {
        memcpy(req->buf, data, len);
    } else {
        memset(req->buf, 'x', len);     /* visible if never written */
    }
    req->handler.cb = uring_cb;
    req->ctx = ctx;
    req->opcode = opcode;
    req->fd = fd;
    req->off = off;
    req->cap = len;
    req->len = chain && (size_t)chain < len ? (size_t)chain : len;
    req->chain = chain;
    req->target = target;
    req->res = INT32_MIN;
    capsule = PyCapsule_New(req, URING_REQ, uring_req_destructor);
    if (capsule == NULL) {
        PyMem_RawFree(req->buf);
        PyMem_RawFree(req);
        return NULL;
    }
    if (CEvent_API->add_sqe(ctx, uring_prep, req, &req->handler) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(capsule);
        return NULL;
    }
    req->in_flight = 1;
    return capsule;
}

static PyObject *
uring_submit(PyObject *pyctx, int opcode, int fd, uint64_t off,
             const char *data, size_t len, int chain)
{
    return uring_submit_to(pyctx, opcode, fd, off, data, len, chain, 0);
}

PyDoc_STRVAR(uring_cancel_doc,
"uring_cancel(ctx, request) -> request: IORING_OP_ASYNC_CANCEL of request,\n"
"named by CEVENT_SQE_USER_DATA() of its handler.");

static PyObject *
testcapi_uring_cancel(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx, *capsule;
    UringReq *target;

    if (!PyArg_ParseTuple(args, "OO:uring_cancel", &pyctx, &capsule)) {
        return NULL;
    }
    target = uring_req_get(capsule);
    if (target == NULL) {
        return NULL;
    }
    return uring_submit_to(pyctx, IORING_OP_ASYNC_CANCEL, -1, 0, NULL, 0, 0,
                           CEVENT_SQE_USER_DATA(&target->handler));
}

/* ---- driving a context (Context_Poll, Context_*Exception) -------- */

PyDoc_STRVAR(context_poll_doc,
"context_poll(ctx, deadline_ns) -> None: Context_Poll().");

static PyObject *
testcapi_context_poll(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx;
    long long deadline;

    if (!PyArg_ParseTuple(args, "OL:context_poll", &pyctx, &deadline)) {
        return NULL;
    }
    if (CEvent_API->Context_Poll(pyctx, (int64_t)deadline) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A oneshot BH that raises from C and hands the exception to the poll. */
typedef struct {
    PyObject *ctx;                  /* strong */
    PyObject *message;              /* strong */
    int pending[3];                 /* ExceptionPending: before, after, 2nd */
    int stored[2];                  /* Context_StoreException's results */
    int times;                      /* how many exceptions to raise */
    int ran;
} RaiseBH;

#define RAISE_BH "_cevent_testcapi.raise_bh"

static void
raise_bh_cb(void *opaque)
{
    RaiseBH *rb = opaque;

    rb->ran = 1;
    rb->pending[0] = CEvent_API->Context_ExceptionPending(rb->ctx);
    for (int i = 0; i < rb->times && i < 2; i++) {
        PyErr_SetObject(PyExc_RuntimeError, rb->message);
        rb->stored[i] = CEvent_API->Context_StoreException(rb->ctx, NULL);
        rb->pending[1 + i] = CEvent_API->Context_ExceptionPending(rb->ctx);
    }
}

static void
raise_bh_destructor(PyObject *capsule)
{
    RaiseBH *rb = PyCapsule_GetPointer(capsule, RAISE_BH);

    if (rb != NULL && rb->ran) {    /* else the loop may still run it */
        Py_XDECREF(rb->ctx);
        Py_XDECREF(rb->message);
        PyMem_RawFree(rb);
    }
}

PyDoc_STRVAR(raise_in_bh_doc,
"raise_in_bh(ctx, message, times=1) -> handle: a oneshot BH that raises\n"
"RuntimeError(message) `times` times (1 or 2) from C, each handed over\n"
"with Context_StoreException().");

static PyObject *
testcapi_raise_in_bh(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx, *message, *capsule;
    CEvent_Context *ctx;
    RaiseBH *rb;
    int times = 1;

    if (!PyArg_ParseTuple(args, "OU|i:raise_in_bh", &pyctx, &message,
                          &times)) {
        return NULL;
    }
    ctx = CEvent_API->Context_AsContext(pyctx);
    if (ctx == NULL) {
        return NULL;
    }
    rb = PyMem_RawCalloc(1, sizeof(*rb));
    if (rb == NULL) {
        return PyErr_NoMemory();
    }
    rb->ctx = Py_NewRef(pyctx);
    rb->message = Py_NewRef(message);
    rb->times = times;
    rb->pending[0] = rb->pending[1] = rb->pending[2] = -1;
    rb->stored[0] = rb->stored[1] = -2;
    capsule = PyCapsule_New(rb, RAISE_BH, raise_bh_destructor);
    if (capsule == NULL) {
        Py_DECREF(rb->ctx);
        Py_DECREF(rb->message);
        PyMem_RawFree(rb);
        return NULL;
    }
    CEvent_API->bh_schedule_oneshot(ctx, raise_bh_cb, rb);
    return capsule;
}

PyDoc_STRVAR(raise_bh_result_doc,
"raise_bh_result(handle) -> dict: ran, pending (ExceptionPending before,\n"
"after each), stored (StoreException's results).");

static PyObject *
testcapi_raise_bh_result(PyObject *Py_UNUSED(module), PyObject *capsule)
{
    RaiseBH *rb = PyCapsule_GetPointer(capsule, RAISE_BH);

    if (rb == NULL) {
        return NULL;
    }
    return Py_BuildValue("{s:i,s:(iii),s:(ii)}", "ran", rb->ran,
                         "pending", rb->pending[0], rb->pending[1],
                         rb->pending[2], "stored", rb->stored[0],
                         rb->stored[1]);
}

PyDoc_STRVAR(store_exception_doc,
"store_exception(obj, set_error) -> int: Context_StoreException(obj)\n"
"outside any callback, with RuntimeError('outside') set or (set_error\n"
"false) nothing set.");

static PyObject *
testcapi_store_exception(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *obj;
    int set_error, rc;

    if (!PyArg_ParseTuple(args, "Op:store_exception", &obj, &set_error)) {
        return NULL;
    }
    if (set_error) {
        PyErr_SetString(PyExc_RuntimeError, "outside");
    }
    rc = CEvent_API->Context_StoreException(obj, obj);
    if (rc < 0 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyErr_Occurred()) {
        PyErr_SetString(PyExc_AssertionError,
                        "Context_StoreException left an error set");
        return NULL;
    }
    return PyLong_FromLong(rc);
}

PyDoc_STRVAR(context_notify_doc,
"context_notify(ctx) -> None: Context_Notify().");

static PyObject *
testcapi_context_notify(PyObject *Py_UNUSED(module), PyObject *obj)
{
    if (CEvent_API->Context_Notify(obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(exception_pending_doc,
"exception_pending(obj) -> int: Context_ExceptionPending(obj).");

static PyObject *
testcapi_exception_pending(PyObject *Py_UNUSED(module), PyObject *obj)
{
    return PyLong_FromLong(CEvent_API->Context_ExceptionPending(obj));
}

PyDoc_STRVAR(uring_available_doc,
"uring_available(ctx) -> bool: has_io_uring().");

static PyObject *
testcapi_uring_available(PyObject *Py_UNUSED(module), PyObject *pyctx)
{
    CEvent_Context *ctx = CEvent_API->Context_AsContext(pyctx);

    if (ctx == NULL) {
        return NULL;
    }
    return PyBool_FromLong(CEvent_API->has_io_uring(ctx));
}

PyDoc_STRVAR(uring_read_doc,
"uring_read(ctx, fd, size, offset=0, chunk=0) -> request: read size bytes\n"
"of a file at offset through the ring; with chunk > 0, in chunks\n"
"resubmitted from the callback until size bytes or end of file.");

static PyObject *
testcapi_uring_read(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx;
    int fd, chunk = 0;
    Py_ssize_t size;
    unsigned long long off = 0;

    if (!PyArg_ParseTuple(args, "Oin|Ki:uring_read", &pyctx, &fd, &size,
                          &off, &chunk)) {
        return NULL;
    }
    if (size < 0 || chunk < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size or chunk");
        return NULL;
    }
    return uring_submit(pyctx, IORING_OP_READ, fd, off, NULL, (size_t)size,
                        chunk);
}

PyDoc_STRVAR(uring_recv_doc,
"uring_recv(ctx, fd, size) -> request: one receive of up to size bytes.");

static PyObject *
testcapi_uring_recv(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx;
    int fd;
    Py_ssize_t size;

    if (!PyArg_ParseTuple(args, "Oin:uring_recv", &pyctx, &fd, &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    return uring_submit(pyctx, IORING_OP_RECV, fd, 0, NULL, (size_t)size, 0);
}

PyDoc_STRVAR(uring_send_doc,
"uring_send(ctx, fd, data) -> request: one send of data (copied).");

static PyObject *
testcapi_uring_send(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *pyctx;
    int fd;
    Py_buffer data;
    PyObject *ret;

    if (!PyArg_ParseTuple(args, "Oiy*:uring_send", &pyctx, &fd, &data)) {
        return NULL;
    }
    ret = uring_submit(pyctx, IORING_OP_SEND, fd, 0, data.buf,
                       (size_t)data.len, 0);
    PyBuffer_Release(&data);
    return ret;
}

PyDoc_STRVAR(uring_result_doc,
"uring_result(request) -> None while in flight, else a dict: res, flags,\n"
"calls, data (what a read/receive wrote), resubmit_errno.");

static PyObject *
testcapi_uring_result(PyObject *Py_UNUSED(module), PyObject *capsule)
{
    UringReq *req = uring_req_get(capsule);
    Py_ssize_t n;

    if (req == NULL) {
        return NULL;
    }
    if (req->in_flight) {
        Py_RETURN_NONE;
    }
    n = (Py_ssize_t)req->got;
    if (!req->chain && req->opcode != IORING_OP_SEND && req->res > 0) {
        n = req->res;
    }
    return Py_BuildValue("{s:i,s:I,s:i,s:y#,s:i}", "res", (int)req->res,
                         "flags", (unsigned)req->flags, "calls", req->calls,
                         "data", req->buf, n,
                         "resubmit_errno", req->resubmit_errno);
}

PyDoc_STRVAR(uring_buffer_doc,
"uring_buffer(request) -> bytes: the whole buffer, as it is now.");

static PyObject *
testcapi_uring_buffer(PyObject *Py_UNUSED(module), PyObject *capsule)
{
    UringReq *req = uring_req_get(capsule);

    if (req == NULL) {
        return NULL;
    }
    return PyBytes_FromStringAndSize(req->buf, (Py_ssize_t)req->cap);
}

PyDoc_STRVAR(uring_abandon_doc,
"uring_abandon(request) -> calls: after the context has closed, a request\n"
"that was in flight is over (close() cancelled it without a cb): let the\n"
"capsule free its memory.  Returns how often cb ran.");

static PyObject *
testcapi_uring_abandon(PyObject *Py_UNUSED(module), PyObject *capsule)
{
    UringReq *req = uring_req_get(capsule);

    if (req == NULL) {
        return NULL;
    }
    req->in_flight = 0;
    return PyLong_FromLong(req->calls);
}

PyDoc_STRVAR(uring_bad_calls_doc,
"uring_bad_calls(ctx) -> dict: add_sqe()'s result and errno for a NULL\n"
"prep_sqe, a NULL handler and a NULL cb.");

static PyObject *
testcapi_uring_bad_calls(PyObject *Py_UNUSED(module), PyObject *pyctx)
{
    CEvent_Context *ctx = CEvent_API->Context_AsContext(pyctx);
    CEvent_CqeHandler handler;
    int rc[3], err[3];

    if (ctx == NULL) {
        return NULL;
    }
    memset(&handler, 0, sizeof(handler));
    handler.cb = uring_cb;
    errno = 0;
    rc[0] = CEvent_API->add_sqe(ctx, NULL, NULL, &handler);
    err[0] = errno;
    errno = 0;
    rc[1] = CEvent_API->add_sqe(ctx, uring_prep, NULL, NULL);
    err[1] = errno;
    handler.cb = NULL;
    errno = 0;
    rc[2] = CEvent_API->add_sqe(ctx, uring_prep, NULL, &handler);
    err[2] = errno;
    return Py_BuildValue("{s:(ii),s:(ii),s:(ii)}",
                         "null_prep", rc[0], err[0],
                         "null_handler", rc[1], err[1],
                         "null_cb", rc[2], err[2]);
}

/* ---- module --------------------------------------------------------- */

#define FN(name, flags) \
    {#name, (PyCFunction)(void (*)(void))testcapi_##name, (flags), \
     name##_doc}

static PyMethodDef testcapi_methods[] = {
    FN(api_info, METH_NOARGS),
    FN(as_context, METH_O),
    FN(notify, METH_O),
    FN(clock_get_ns, METH_O),
    FN(pingpong, METH_VARARGS),
    FN(write_once, METH_VARARGS),
    FN(bh_new, METH_O),
    FN(bh_schedule, METH_O),
    FN(bh_cancel, METH_O),
    FN(bh_delete, METH_O),
    FN(bh_runs, METH_O),
    FN(bh_from_thread, METH_VARARGS),
    FN(timer_new, METH_VARARGS),
    FN(timer_mod_ns, METH_VARARGS),
    FN(timer_del, METH_O),
    FN(timer_free, METH_O),
    FN(timer_fired, METH_O),
    FN(timer_from_thread, METH_VARARGS),
    FN(notify_from_thread, METH_VARARGS),
    FN(pollword_new, METH_VARARGS),
    FN(pollword_bump, METH_O),
    FN(pollword_bump_later, METH_VARARGS),
    FN(pollword_stats, METH_O),
    FN(pollword_free, METH_VARARGS),
    FN(uring_available, METH_O),
    FN(uring_read, METH_VARARGS),
    FN(uring_recv, METH_VARARGS),
    FN(uring_send, METH_VARARGS),
    FN(uring_result, METH_O),
    FN(uring_buffer, METH_O),
    FN(uring_abandon, METH_O),
    FN(uring_bad_calls, METH_O),
    FN(uring_cancel, METH_VARARGS),
    FN(context_poll, METH_VARARGS),
    FN(raise_in_bh, METH_VARARGS),
    FN(raise_bh_result, METH_O),
    FN(store_exception, METH_VARARGS),
    FN(exception_pending, METH_O),
    FN(context_notify, METH_O),
    {NULL, NULL, 0, NULL}
};

#undef FN

static int
testcapi_exec(PyObject *module)
{
    if (CEvent_Import() < 0) {
        return -1;
    }
    if (str_poll == NULL) {
        str_poll = PyUnicode_InternFromString("poll");
        if (str_poll == NULL) {
            return -1;
        }
    }
    if (PyModule_AddIntConstant(module, "ABI_VERSION",
                                CEVENT_ABI_VERSION) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot testcapi_slots[] = {
    {Py_mod_exec, testcapi_exec},
    {0, NULL}
};

PyDoc_STRVAR(testcapi_doc,
"Test consumer of cevent's C API (cevent.h); not part of cevent.");

static struct PyModuleDef testcapi_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = TESTCAPI_NAME,
    .m_doc = testcapi_doc,
    .m_size = 0,
    .m_methods = testcapi_methods,
    .m_slots = testcapi_slots,
};

PyMODINIT_FUNC
TESTCAPI_INIT(void)
{
    return PyModuleDef_Init(&testcapi_module);
}
