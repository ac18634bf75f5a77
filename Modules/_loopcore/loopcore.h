/*
 * cevent._loopcore: private declarations shared by its C files.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * cevent._loopcore is the C part of cevent's asyncio face, the third
 * floor (docs/development.md): asyncio's event loop on an AioContext.
 * Its Python part is Lib/cevent/_loop.py and its neighbours.  It is a
 * client of the binding like any other C extension: it includes only
 * cevent.h and CPython's headers, and reaches cevent._cevent only through
 * the C API capsule (CEvent_API), never by its symbols
 * (Tests/test_source.py checks the object files).
 *
 * The files, each using only those listed above it:
 *
 *   state.c            the module state, found from a type; CEvent_API
 *   deadline.c         float seconds to integer ns deadlines
 *   handles.c          making, queueing and running asyncio handles
 *   timerheap.c        the loop's heap of timer handles
 *   fdwatchobject.c    _FdWatch, the fd handler of one registered fd
 *   transportobject.c  _SocketTransportCore, the socket transport's paths
 *   ringreaderobject.c _RingReader, a socket transport's reads through
 *                      the context's io_uring ring
 *   loopcoreobject.c   _LoopCore, the native base of cevent.Loop
 *   module.c           the module: its types, configure() and functions
 */
#ifndef CEVENT_LOOPCORE_H
#define CEVENT_LOOPCORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdbool.h>
#include <stdint.h>

/* One CEvent_API pointer for all the files; state.c defines it. */
#define CEVENT_API_SHARED 1
#include "cevent.h"

/*
 * Method tables hold PyCFunction pointers; METH_FASTCALL/METH_KEYWORDS
 * functions have other signatures.  -Wextra turns on -Wcast-function-type,
 * so cast through void (*)(void) in one place.
 */
#define CEV_METH(fn) ((PyCFunction)(void (*)(void))(fn))

/* PyLong_AsInt became public in 3.13. */
#if PY_VERSION_HEX < 0x030D0000
#  define PyLong_AsInt _PyLong_AsInt
#endif

/*
 * asyncio's "except (SystemExit, KeyboardInterrupt): raise" followed by
 * "except BaseException as exc", for the exception that is set: returns
 * NULL with it still set for SystemExit and KeyboardInterrupt (they
 * propagate); otherwise clears the error indicator and returns the
 * exception, normalized and with its traceback attached (new reference).
 */
static inline PyObject *
cev_catch_exception(void)
{
    PyObject *type, *value, *tb;

    assert(PyErr_Occurred());
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return NULL;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
}

/*
 * For METH_FASTCALL methods that take no arguments: 0, or -1 with
 * TypeError("@name() takes no arguments").
 */
static inline int
cev_check_no_args(const char *name, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", name);
        return -1;
    }
    return 0;
}

/*
 * What the face learns from configure() (the asyncio classes
 * and the Python fallbacks) and the method names it interns.  Made,
 * visited and cleared with the module state (module.c).
 */
#define CEV_LOOP_HANDLE_SLOTS 7
#define CEV_LOOP_TIMER_SLOTS 3

typedef struct {
    PyObject *handle_type;           /* asyncio.events.Handle */
    PyObject *timer_type;            /* cevent._core.TimerHandle */
    PyObject *plain_handle_types;    /* tuple: types run natively */
    PyObject *exc_hook;              /* exc_hook(handle, exc) */
    PyObject *py_call_soon;          /* BaseEventLoop.call_soon */
    PyObject *py_call_soon_threadsafe;
    PyObject *new_timer_debug;       /* TimerHandle maker for debug mode */
    PyObject *future_type;           /* asyncio.Future, for create_future */
    Py_ssize_t handle_offsets[CEV_LOOP_HANDLE_SLOTS];
    Py_ssize_t timer_offsets[CEV_LOOP_TIMER_SLOTS];
    PyObject *str_append;            /* interned names */
    PyObject *str_popleft;
    PyObject *str_appendleft;
    PyObject *str__run;              /* handle_attrs of configure() */
    PyObject *str__cancelled;
    PyObject *str__when;
    PyObject *str__scheduled;
    PyObject *str__when_ns;
    PyObject *str_notify;
    PyObject *str_mod_ns;
    PyObject *str__run_ready_debug;
    PyObject *str_call_later;
    PyObject *str_call_at;
    PyObject *kwnames_loop;          /* ("loop",) */
    /* From cevent._asyncio_layout: what the C code may rely on. */
    bool native_handles;             /* write Handle slots by offset */
    Py_ssize_t key_fd, key_data;     /* SelectorKey positions, */
    Py_ssize_t key_size;             /* 0: _FdWatch unusable */
} cev_loop_config;

/*
 * What transportobject.c needs: the attribute and method names it interns
 * and the read buffer of the socket transports (allocated on first use,
 * freed with the module state).
 */
enum {
    CEV_TN__read_ready_cb, CEV_TN__conn_lost, CEV_TN_max_size,
    CEV_TN__sock_fd, CEV_TN__protocol, CEV_TN_data_received,
    CEV_TN__fatal_error, CEV_TN__read_ready__on_eof,
    CEV_TN__read_ready__data_received_slow, CEV_TN__eof,
    CEV_TN__empty_waiter, CEV_TN__buffer, CEV_TN__write_slow,
    CEV_TN__ring_data_slow,
    CEV_TRANSPORT_NAMES
};

typedef struct {
    PyObject *names[CEV_TRANSPORT_NAMES];
    char *recv_buf;
} cev_transport_config;


/*
 * The module state: what configure() set, the transport's names and
 * buffer, and the types.  Made by module.c, found from a type by
 * loopcore_state_by_type() (state.c).
 */
typedef struct {
    cev_loop_config loop;
    cev_transport_config transport;
    PyTypeObject *LoopCoreType;
    PyTypeObject *FdWatchType;
    PyTypeObject *TransportType;
    PyTypeObject *RingReaderType;   /* NULL without io_uring */
} loopcore_state;

/* One scheduled timer handle: the heap orders by (when, seq). */
typedef struct {
    int64_t when;           /* deadline, ns on QEMU_CLOCK_REALTIME */
    uint64_t seq;           /* scheduling order, for equal deadlines */
    PyObject *handle;       /* strong */
} LoopTimer;

typedef struct {
    PyObject_HEAD
    PyObject *ready;        /* the loop's ready queue (collections.deque) */
    PyObject *ready_append; /* its bound append and popleft */
    PyObject *ready_popleft;
    PyObject *context;      /* the AioContext object, after _attach() */
    LoopTimer *heap;        /* binary min-heap of scheduled timer handles */
    Py_ssize_t nheap;
    Py_ssize_t heap_cap;
    uint64_t next_seq;
    Py_ssize_t timer_cancelled_count;
    int running;            /* _run_once() calls in progress */
    Py_ssize_t untracked;   /* queued handles the GC may not track */
    char closed;
    char debug;
    char stopping;
    char io_mode;           /* LOOP_IO_*: how fd handles found now run */
    char iterate;           /* _run_once() iterates until stop() */
} LoopCoreObject;

/*
 * What the fd handlers (_FdWatch) do with the reader and writer handles of
 * the fds a poll finds.  asyncio queues them behind the handles already
 * ready, and runs the timers that are due after them.  Running them at once
 * saves the second poll that would otherwise come before the handles they
 * queue (a stream's wake-up) could run, but keeps asyncio's order only when
 * nothing was ready before them: so the choice is made at the first fd
 * handler of each poll of _run_once(), outside debug mode.
 */
enum {
    LOOP_IO_QUEUE,          /* append to the ready queue, as asyncio does */
    LOOP_IO_UNDECIDED,      /* inline if the ready queue is empty */
    LOOP_IO_INLINE,         /* run at once */
    LOOP_IO_QUEUED,         /* queued behind handles already ready */
};

/* The Handle slots filled by call_soon(), by name. */
enum {
    SLOT_CALLBACK, SLOT_ARGS, SLOT_CANCELLED, SLOT_LOOP,
    SLOT_SOURCE_TRACEBACK, SLOT_REPR, SLOT_CONTEXT
};


/* The slots a TimerHandle (TimerHandle) adds. */
enum { TSLOT_SCHEDULED, TSLOT_WHEN, TSLOT_WHEN_NS };


#define SLOT(cfg, obj, i) \
    (*(PyObject **)((char *)(obj) + (cfg)->handle_offsets[(i)]))
#define TSLOT(cfg, obj, i) \
    (*(PyObject **)((char *)(obj) + (cfg)->timer_offsets[(i)]))

/* Beyond this (either sign) a deadline never fires (call_later(math.inf)) */
#define LOOPCORE_NEVER_NS ((int64_t)1 << 62)

/* Same thresholds as BaseEventLoop for purging cancelled timer handles. */
#define MIN_SCHEDULED_TIMER_HANDLES 100
#define MIN_CANCELLED_TIMER_HANDLES_FRACTION 0.5

/* state.c */
void loopcore_set_module_def(PyModuleDef *def);
loopcore_state *loopcore_state_by_type(PyTypeObject *type);
cev_loop_config *loopcore_config(PyTypeObject *defining_class);
int loopcore_check_configured(cev_loop_config *cfg);

/* deadline.c */
int64_t loopcore_ns_ceil_double(double x);
int64_t loopcore_clamp_ns(int64_t ns);
int loopcore_seconds_to_ns(PyObject *seconds, int64_t *ns);
PyObject *cev_loopcore_ns_ceil(PyObject *module, PyObject *seconds);

/* timerheap.c */
bool loop_timer_before(const LoopTimer *a, const LoopTimer *b);
void loopcore_heap_sift_up(LoopTimer *heap, Py_ssize_t i);
void loopcore_heap_sift_down(LoopTimer *heap, Py_ssize_t n, Py_ssize_t i);
int loopcore_heap_push(LoopCoreObject *self, int64_t when, PyObject *handle);
PyObject *loopcore_heap_pop(LoopCoreObject *self);
void loopcore_heap_clear(LoopCoreObject *self);
int loopcore_purge_cancelled(cev_loop_config *cfg, LoopCoreObject *self);

/* handles.c */
bool loopcore_is_plain(cev_loop_config *cfg, PyObject *handle);
int loopcore_handle_cancelled(cev_loop_config *cfg, PyObject *handle,
                              bool plain);
PyTypeObject *loopcore_timer_base(cev_loop_config *cfg);
bool loopcore_timer_cancelled(cev_loop_config *cfg, PyObject *handle);
void loopcore_timer_set_scheduled(cev_loop_config *cfg, PyObject *handle,
                                  bool value);
PyObject *loopcore_make_handle(cev_loop_config *cfg, PyObject *type,
                               PyObject *loop, PyObject *callback,
                               PyObject *args, PyObject *context);
int loopcore_parse_callback(const char *name, Py_ssize_t npos,
                            PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames, PyObject **cbargs,
                            PyObject **context);
PyObject *loopcore_call_python(PyObject *func, PyObject *self,
                               PyObject *const *args, size_t nargsf,
                               PyObject *kwnames);
int loopcore_append_ready(LoopCoreObject *self, PyObject *handle);
void loopcore_untrack_queued(LoopCoreObject *self, PyObject *handle);
void loopcore_track_dequeued(LoopCoreObject *self, PyObject *handle);
int loopcore_track_queued(cev_loop_config *cfg, LoopCoreObject *self);
int loopcore_run_live_handle(cev_loop_config *cfg, PyObject *handle,
                             bool plain);
int loopcore_run_handle(cev_loop_config *cfg, PyObject *handle);
int loopcore_run_ready(cev_loop_config *cfg, LoopCoreObject *self,
                       Py_ssize_t ntodo);
int loopcore_runs_io_inline(LoopCoreObject *loop);

/* The type specs, and the transport's names (transportobject.c). */
extern PyType_Spec cev_loopcore_spec;
extern PyType_Spec cev_fdwatch_spec;
extern PyType_Spec cev_transport_spec;
#ifdef CONFIG_LINUX_IO_URING
extern PyType_Spec cev_ringreader_spec;
#endif
int cev_transport_state_init(cev_transport_config *cfg);
PyObject *cev_sock_recv_nowait(PyObject *module, PyObject *const *args,
                               Py_ssize_t nargs);
PyObject *cev_transport_ring_result(cev_transport_config *cfg,
                                    PyObject *self, const char *buf,
                                    int res, bool full, int *err);
PyObject *cev_transport_ring_readable(cev_transport_config *cfg,
                                      PyObject *self, Py_ssize_t *nread);
Py_ssize_t cev_transport_max_size(cev_transport_config *cfg, PyObject *self);
void cev_transport_state_clear(cev_transport_config *cfg);
void cev_transport_state_free(cev_transport_config *cfg);

#endif /* CEVENT_LOOPCORE_H */
