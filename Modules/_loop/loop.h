/*
 * cevent's asyncio face: private declarations shared by its C files.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * The face is the third floor of cevent (the README's "Source layout"):
 * asyncio's event loop on an AioContext.  Its C part lives here, built
 * into the cevent._cevent extension; its Python part is
 * Lib/cevent/_loop.py.  It uses the binding (Modules/_cevent/module.h:
 * the AioContext and Timer objects, cev_context_poll()) and nothing of
 * the port beyond the public headers the binding includes.
 *
 *   configobject.c     _LoopConfig: the face's types and configuration
 *                      (one object per module, cevent._cevent._loop_config)
 *   loopcoreobject.c   _LoopCore, the native base of cevent.Loop
 *   fdwatchobject.c    _FdWatch, the fd handler of one registered fd
 *   transportobject.c  _SocketTransportCore, the socket transport's paths
 *   ringreaderobject.c _RingReader, a socket transport's reads through
 *                      the context's io_uring ring
 *   timerheap.c        the loop's heap of timer handles
 *   handles.c          making, queueing and running asyncio handles
 *   deadline.c         float seconds to integer ns deadlines
 */
#ifndef CEVENT_LOOP_H
#define CEVENT_LOOP_H

#include "_cevent/module.h"

/*
 * What the face learns from _LoopConfig.configure() (the asyncio classes
 * and the Python fallbacks) and the method names it interns.  Made,
 * visited and cleared with its _LoopConfig object (configobject.c).
 */
#define CEV_LOOP_HANDLE_SLOTS 7
#define CEV_LOOP_TIMER_SLOTS 3

typedef struct {
    PyObject *handle_type;           /* asyncio.events.Handle */
    PyObject *timer_type;            /* cevent._loop.TimerHandle */
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
 * freed with the _LoopConfig object).
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


/* The face's object: its types and what they are configured with. */
typedef struct {
    PyObject_HEAD
    cev_loop_config loop;
    cev_transport_config transport;
    PyTypeObject *LoopCoreType;
    PyTypeObject *FdWatchType;
    PyTypeObject *TransportType;
    PyTypeObject *RingReaderType;   /* NULL without io_uring */
} LoopConfigObject;

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
    PyObject *wake_timer;   /* its Timer, armed at the earliest deadline */
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

/* The _LoopConfig object of the module that made @type. */
LoopConfigObject *cev_loop_face(PyTypeObject *type);

/* configobject.c */
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

#endif /* CEVENT_LOOP_H */
