/*
 * cevent._cevent: _LoopCore, the native part of cevent.Loop.
 *
 * Copyright the cevent authors.  GPL-2.0-or-later.
 *
 * cevent.Loop (Lib/cevent/_loop.py) is asyncio's Unix selector loop driven
 * by an AioContext.  The paths that run once per callback or once per loop
 * iteration dominate a loop that does little else; _LoopCore, a base class
 * of Loop, does them in C with asyncio's semantics:
 *
 *   - call_soon(callback, *args, context=None) makes a real
 *     asyncio.events.Handle (its __slots__ are filled through their member
 *     descriptors' offsets, which is what Handle.__init__ would store) and
 *     appends it to the ready queue; call_soon_threadsafe() does the same
 *     and wakes the loop with AioContext.notify();
 *   - call_later() and call_at() make a cevent._loop.TimerHandle (an
 *     asyncio TimerHandle that also carries its deadline in integer ns,
 *     rounded up) and push it on the loop's timer heap.  The heap is a C
 *     array of (deadline ns, sequence, handle): comparisons are integer
 *     compares, and handles with the same deadline run in the order they
 *     were scheduled.  The loop's _scheduled attribute is a list made from
 *     it on demand;
 *   - _run_once() is BaseEventLoop._run_once(): purge cancelled timers, one
 *     AioContext.poll() (blocking unless handles are ready or the loop is
 *     stopping, with the wake-up timer armed at the earliest deadline),
 *     move the due timers to the ready queue, then run the handles that
 *     were ready before the callbacks started.  A handle runs as
 *     Handle._run() does: callback(*args) inside the handle's context,
 *     SystemExit and KeyboardInterrupt propagate, any other exception goes
 *     to the loop's exception handler (through a Python hook with
 *     Handle._run's code).
 *
 * The loop's _closed, _debug, _stopping, _ready, _scheduled and
 * _timer_cancelled_count attributes are data descriptors of this type, so
 * asyncio's Python code and this file share them.  In debug mode the
 * scheduling methods defer to Python code (thread and callback checks,
 * source tracebacks) and _run_once() runs the ready handles through the
 * loop's _run_ready_debug().  Handles of other types (a subclass with its
 * own _run) are run through their _run method.  _loopcore_configure() must
 * be called once, before any loop is used, with the asyncio pieces this
 * file relies on, and _attach() once per loop with its context and
 * wake-up timer.
 */

#include "module.h"

#include <math.h>
#include <structmember.h>

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
};

/* The Handle slots filled by call_soon(), by name. */
enum {
    SLOT_CALLBACK, SLOT_ARGS, SLOT_CANCELLED, SLOT_LOOP,
    SLOT_SOURCE_TRACEBACK, SLOT_REPR, SLOT_CONTEXT
};

static const char *const handle_slot_names[CEV_LOOP_HANDLE_SLOTS] = {
    "_callback", "_args", "_cancelled", "_loop", "_source_traceback",
    "_repr", "_context",
};

/* The slots a TimerHandle (TimerHandle) adds. */
enum { TSLOT_SCHEDULED, TSLOT_WHEN, TSLOT_WHEN_NS };

static const char *const timer_slot_names[CEV_LOOP_TIMER_SLOTS] = {
    "_scheduled", "_when", "_when_ns",
};

#define SLOT(cfg, obj, i) \
    (*(PyObject **)((char *)(obj) + (cfg)->handle_offsets[(i)]))
#define TSLOT(cfg, obj, i) \
    (*(PyObject **)((char *)(obj) + (cfg)->timer_offsets[(i)]))

/* Beyond this (either sign) a deadline never fires (call_later(math.inf)) */
#define LOOPCORE_NEVER_NS ((int64_t)1 << 62)

/* Same thresholds as BaseEventLoop for purging cancelled timer handles. */
#define MIN_SCHEDULED_TIMER_HANDLES 100
#define MIN_CANCELLED_TIMER_HANDLES_FRACTION 0.5

static cev_loop_config *
loopcore_config(PyTypeObject *defining_class)
{
    cevent_state *state = (cevent_state *)PyType_GetModuleState(
        defining_class);

    return &state->loop;
}

static int
loopcore_check_configured(cev_loop_config *cfg)
{
    if (cfg->handle_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cevent._cevent._loopcore_configure() was not called");
        return -1;
    }
    return 0;
}

/* ---- the state kept by the module ---------------------------------------- */

int
cev_loopcore_state_init(cev_loop_config *cfg)
{
#define INTERN(field, text) \
    do { \
        cfg->field = PyUnicode_InternFromString(text); \
        if (cfg->field == NULL) { \
            return -1; \
        } \
    } while (0)

    INTERN(str_append, "append");
    INTERN(str_popleft, "popleft");
    INTERN(str_appendleft, "appendleft");
    INTERN(str__run, "_run");
    INTERN(str__cancelled, "_cancelled");
    INTERN(str__when, "_when");
    INTERN(str__when_ns, "_when_ns");
    INTERN(str_notify, "notify");
    INTERN(str_mod_ns, "mod_ns");
    INTERN(str__run_ready_debug, "_run_ready_debug");
    INTERN(str_call_later, "call_later");
    INTERN(str_call_at, "call_at");
#undef INTERN
    cfg->kwnames_loop = Py_BuildValue("(s)", "loop");
    if (cfg->kwnames_loop == NULL) {
        return -1;
    }
    return 0;
}

/* Applies @op to every object field of @cfg. */
#define LOOP_CONFIG_OBJECTS(op, cfg)            \
    do {                                        \
        op((cfg)->handle_type);                 \
        op((cfg)->timer_type);                  \
        op((cfg)->plain_handle_types);          \
        op((cfg)->exc_hook);                    \
        op((cfg)->py_call_soon);                \
        op((cfg)->py_call_soon_threadsafe);     \
        op((cfg)->new_timer_debug);             \
        op((cfg)->future_type);                 \
        op((cfg)->kwnames_loop);                \
        op((cfg)->str_append);                  \
        op((cfg)->str_popleft);                 \
        op((cfg)->str_appendleft);              \
        op((cfg)->str__run);                    \
        op((cfg)->str__cancelled);              \
        op((cfg)->str__when);                   \
        op((cfg)->str__when_ns);                \
        op((cfg)->str_notify);                  \
        op((cfg)->str_mod_ns);                  \
        op((cfg)->str__run_ready_debug);        \
        op((cfg)->str_call_later);              \
        op((cfg)->str_call_at);                 \
    } while (0)

int
cev_loopcore_state_traverse(cev_loop_config *cfg, visitproc visit, void *arg)
{
    LOOP_CONFIG_OBJECTS(Py_VISIT, cfg);
    return 0;
}

void
cev_loopcore_state_clear(cev_loop_config *cfg)
{
    LOOP_CONFIG_OBJECTS(Py_CLEAR, cfg);
}

/* ---- deadlines ----------------------------------------------------------- */

/*
 * ceil(x * 1e9) exactly, for a finite double x, clamped to
 * [-LOOPCORE_NEVER_NS, LOOPCORE_NEVER_NS].  x = M * 2^sh with M the 53-bit
 * integer mantissa, so x * 1e9 = (M * 1e9) * 2^sh, with M * 1e9 < 2^83.
 */
static int64_t
loopcore_ns_ceil_double(double x)
{
    int e;
    double m = frexp(x, &e);            /* x = m * 2^e, 0.5 <= |m| < 1 */
    int64_t mant = (int64_t)ldexp(m, 53);
    int sh = e - 53;
    __int128 p = (__int128)mant * 1000000000;

    if (mant == 0) {
        return 0;
    }
    if (sh >= 0) {
        if (sh >= 62) {
            return mant > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        }
        p *= (__int128)1 << sh;
    }
    else if (-sh >= 100) {
        /* |x * 1e9| < 2^83 * 2^-100: ceil is 1 or 0 */
        return p > 0 ? 1 : 0;
    }
    else {
        int k = -sh;
        __int128 mask = ((__int128)1 << k) - 1;

        if (p >= 0) {
            p = (p >> k) + ((p & mask) != 0);
        }
        else {
            p = -((-p) >> k);           /* ceil of a negative: truncate */
        }
    }
    if (p >= LOOPCORE_NEVER_NS) {
        return LOOPCORE_NEVER_NS;
    }
    if (p <= -LOOPCORE_NEVER_NS) {
        return -LOOPCORE_NEVER_NS;
    }
    return (int64_t)p;
}

static int64_t
loopcore_clamp_ns(int64_t ns)
{
    if (ns >= LOOPCORE_NEVER_NS) {
        return LOOPCORE_NEVER_NS;
    }
    if (ns <= -LOOPCORE_NEVER_NS) {
        return -LOOPCORE_NEVER_NS;
    }
    return ns;
}

/*
 * seconds (an int exactly, anything else through float()) as ns, rounded
 * up and clamped to +-LOOPCORE_NEVER_NS, into *ns.  NaN raises ValueError.
 */
static int
loopcore_seconds_to_ns(PyObject *seconds, int64_t *ns)
{
    double x;

    if (PyLong_Check(seconds)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(seconds, &overflow);

        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow != 0) {
            *ns = overflow > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        }
        else if (v >= LOOPCORE_NEVER_NS / 1000000000) {
            *ns = LOOPCORE_NEVER_NS;
        }
        else if (v <= -LOOPCORE_NEVER_NS / 1000000000) {
            *ns = -LOOPCORE_NEVER_NS;
        }
        else {
            *ns = (int64_t)v * 1000000000;
        }
        return 0;
    }
    x = PyFloat_AsDouble(seconds);
    if (x == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (isnan(x)) {
        PyErr_Format(PyExc_ValueError, "invalid time: %R", seconds);
        return -1;
    }
    if (isinf(x)) {
        *ns = x > 0 ? LOOPCORE_NEVER_NS : -LOOPCORE_NEVER_NS;
        return 0;
    }
    *ns = loopcore_ns_ceil_double(x);
    return 0;
}

/*
 * _ns_ceil(seconds): the smallest integer number of ns >= seconds exactly
 * (no float rounding: the float 0.1 is slightly more than 100 ms, so it
 * gives 100000001).  An int is scaled exactly; anything else goes through
 * float().  +-inf and finite values beyond +-2**62 ns give +-2**62; NaN
 * raises ValueError.
 */
PyObject *
cev_loopcore_ns_ceil(PyObject *Py_UNUSED(module), PyObject *seconds)
{
    int64_t ns;

    if (PyLong_CheckExact(seconds)) {
        PyObject *scale = PyLong_FromLong(1000000000L);
        PyObject *res;

        if (scale == NULL) {
            return NULL;
        }
        res = PyNumber_Multiply(seconds, scale);
        Py_DECREF(scale);
        return res;
    }
    if (loopcore_seconds_to_ns(seconds, &ns) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(ns);
}

/* ---- object ------------------------------------------------------------ */

static PyObject *
loopcore_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
             PyObject *Py_UNUSED(kwds))
{
    /* Arguments are the subclass's __init__'s business. */
    LoopCoreObject *self = (LoopCoreObject *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->heap = NULL;
    self->nheap = self->heap_cap = 0;
    self->next_seq = 0;
    self->timer_cancelled_count = 0;
    self->running = 0;
    self->untracked = 0;
    self->closed = self->debug = self->stopping = 0;
    return (PyObject *)self;
}

/*
 * Empty the heap.  The handles are released only once the heap is empty
 * and consistent: releasing one may run Python code that uses the loop.
 */
static void
loopcore_heap_clear(LoopCoreObject *self)
{
    LoopTimer *heap = self->heap;
    Py_ssize_t i, n = self->nheap;

    self->heap = NULL;
    self->nheap = self->heap_cap = 0;
    for (i = 0; i < n; i++) {
        Py_DECREF(heap[i].handle);
    }
    PyMem_Free(heap);
}

static int
loopcore_traverse(LoopCoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->ready);
    Py_VISIT(self->ready_append);
    Py_VISIT(self->ready_popleft);
    Py_VISIT(self->context);
    Py_VISIT(self->wake_timer);
    for (Py_ssize_t i = 0; i < self->nheap; i++) {
        Py_VISIT(self->heap[i].handle);
    }
    return 0;
}

static int
loopcore_clear(LoopCoreObject *self)
{
    Py_CLEAR(self->ready);
    Py_CLEAR(self->ready_append);
    Py_CLEAR(self->ready_popleft);
    Py_CLEAR(self->context);
    Py_CLEAR(self->wake_timer);
    loopcore_heap_clear(self);
    return 0;
}

static void
loopcore_dealloc(LoopCoreObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void)loopcore_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- the timer heap ------------------------------------------------------ */

static inline bool
loop_timer_before(const LoopTimer *a, const LoopTimer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
loopcore_heap_sift_up(LoopTimer *heap, Py_ssize_t i)
{
    LoopTimer item = heap[i];

    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;

        if (!loop_timer_before(&item, &heap[parent])) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = item;
}

static void
loopcore_heap_sift_down(LoopTimer *heap, Py_ssize_t n, Py_ssize_t i)
{
    LoopTimer item = heap[i];

    for (;;) {
        Py_ssize_t child = 2 * i + 1;

        if (child >= n) {
            break;
        }
        if (child + 1 < n && loop_timer_before(&heap[child + 1],
                                               &heap[child])) {
            child++;
        }
        if (!loop_timer_before(&heap[child], &item)) {
            break;
        }
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = item;
}

/* Push @handle (a new reference is taken) with deadline @when. */
static int
loopcore_heap_push(LoopCoreObject *self, int64_t when, PyObject *handle)
{
    if (self->nheap == self->heap_cap) {
        Py_ssize_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        LoopTimer *heap = PyMem_Resize(self->heap, LoopTimer, cap);

        if (heap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->heap = heap;
        self->heap_cap = cap;
    }
    self->heap[self->nheap].when = when;
    self->heap[self->nheap].seq = self->next_seq++;
    self->heap[self->nheap].handle = Py_NewRef(handle);
    loopcore_heap_sift_up(self->heap, self->nheap);
    self->nheap++;
    return 0;
}

/* Remove the earliest entry; its reference passes to the caller. */
static PyObject *
loopcore_heap_pop(LoopCoreObject *self)
{
    PyObject *handle = self->heap[0].handle;

    self->nheap--;
    if (self->nheap > 0) {
        self->heap[0] = self->heap[self->nheap];
        loopcore_heap_sift_down(self->heap, self->nheap, 0);
    }
    /* Give back most of the memory a burst of timers took. */
    if (self->heap_cap > 1024 && self->nheap < self->heap_cap / 4) {
        LoopTimer *heap = PyMem_Realloc(self->heap,
                                        (self->heap_cap / 2) *
                                        sizeof(LoopTimer));

        if (heap != NULL) {
            self->heap = heap;
            self->heap_cap /= 2;
        }
    }
    return handle;
}

/* ---- handles ------------------------------------------------------------- */

static bool
loopcore_is_plain(cev_loop_config *cfg, PyObject *handle)
{
    PyObject *types = cfg->plain_handle_types;

    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(types); i++) {
        if ((PyObject *)Py_TYPE(handle) == PyTuple_GET_ITEM(types, i)) {
            return true;
        }
    }
    return false;
}

/* handle._cancelled as 1 or 0, or -1 with an exception set. */
static int
loopcore_handle_cancelled(cev_loop_config *cfg, PyObject *handle, bool plain)
{
    PyObject *flag;
    int cancelled;

    if (plain && SLOT(cfg, handle, SLOT_CANCELLED) != NULL) {
        flag = SLOT(cfg, handle, SLOT_CANCELLED);
        return flag == Py_False ? 0 : PyObject_IsTrue(flag);
    }
    flag = PyObject_GetAttr(handle, cfg->str__cancelled);
    if (flag == NULL) {
        return -1;
    }
    cancelled = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return cancelled;
}

/*
 * Every handle on the heap is an asyncio TimerHandle (call_later/call_at
 * make them, and check what the debug-mode helper returns; the _scheduled
 * setter checks too), so its _cancelled and _scheduled slots are read and
 * written directly: no Python code runs while the heap is being reordered.
 */
static inline PyTypeObject *
loopcore_timer_base(cev_loop_config *cfg)
{
    return ((PyTypeObject *)cfg->timer_type)->tp_base;   /* TimerHandle */
}

static inline bool
loopcore_timer_cancelled(cev_loop_config *cfg, PyObject *handle)
{
    return SLOT(cfg, handle, SLOT_CANCELLED) == Py_True;
}

/* handle._scheduled = value, for a handle entering or leaving the heap. */
static inline void
loopcore_timer_set_scheduled(cev_loop_config *cfg, PyObject *handle,
                             bool value)
{
    Py_XSETREF(TSLOT(cfg, handle, TSLOT_SCHEDULED),
               Py_NewRef(value ? Py_True : Py_False));
}

/*
 * A new handle of @type (the Handle type, or the TimerHandle type) for
 * callback(*args) in @context (NULL or None: a copy of the current one),
 * owned by @loop, with the Handle slots filled; a timer's own slots are
 * the caller's.
 */
static PyObject *
loopcore_make_handle(cev_loop_config *cfg, PyObject *type, PyObject *loop,
                     PyObject *callback, PyObject *args, PyObject *context)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *handle;

    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(context);
    }
    handle = tp->tp_alloc(tp, 0);
    if (handle == NULL) {
        Py_DECREF(context);
        return NULL;
    }
    SLOT(cfg, handle, SLOT_CONTEXT) = context;
    SLOT(cfg, handle, SLOT_LOOP) = Py_NewRef(loop);
    SLOT(cfg, handle, SLOT_CALLBACK) = Py_NewRef(callback);
    SLOT(cfg, handle, SLOT_ARGS) = Py_NewRef(args);
    SLOT(cfg, handle, SLOT_CANCELLED) = Py_NewRef(Py_False);
    SLOT(cfg, handle, SLOT_REPR) = Py_NewRef(Py_None);
    SLOT(cfg, handle, SLOT_SOURCE_TRACEBACK) = Py_NewRef(Py_None);
    return handle;
}

/*
 * The arguments of call_soon(callback, *args, context=None) and its
 * siblings: @npos leading positional arguments (the deadline, ...), then
 * the callback, its arguments and the context keyword.  Sets *cbargs to a
 * new tuple of the callback's arguments and *context (borrowed, NULL when
 * not given).
 */
static int
loopcore_parse_callback(const char *name, Py_ssize_t npos,
                        PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, PyObject **cbargs,
                        PyObject **context)
{
    *context = NULL;
    if (nargs < npos + 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required positional arguments", name);
        return -1;
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);

        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, i);

            if (PyUnicode_CompareWithASCIIString(kw, "context") != 0) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'",
                             name, kw);
                return -1;
            }
            *context = args[nargs + i];
        }
    }
    *cbargs = PyTuple_New(nargs - npos - 1);
    if (*cbargs == NULL) {
        return -1;
    }
    for (Py_ssize_t i = npos + 1; i < nargs; i++) {
        PyTuple_SET_ITEM(*cbargs, i - npos - 1, Py_NewRef(args[i]));
    }
    return 0;
}

/* self(*args, **kw) through @func (a Python function taking the loop). */
static PyObject *
loopcore_call_python(PyObject *func, PyObject *self, PyObject *const *args,
                     size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[8];
    PyObject **all = stack;
    PyObject *res;

    if (1 + nargs + nkw > (Py_ssize_t)Py_ARRAY_LENGTH(stack)) {
        all = PyMem_New(PyObject *, 1 + nargs + nkw);
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    memcpy(all + 1, args, (nargs + nkw) * sizeof(PyObject *));
    res = PyObject_Vectorcall(func, all, 1 + nargs, kwnames);
    if (all != stack) {
        PyMem_Free(all);
    }
    return res;
}

static int
loopcore_append_ready(LoopCoreObject *self, PyObject *handle)
{
    PyObject *res;

    if (self->ready_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return -1;
    }
    res = PyObject_Vectorcall(self->ready_append, &handle, 1, NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/*
 * The garbage collector and queued handles.
 *
 * A loop that runs many callbacks makes two GC objects per call_soon() (the
 * handle and its context copy), so the collector's young generation is
 * mostly handles waiting in the ready queue; traversing them was a third
 * of the time of a batch of empty callbacks.  Those handles are alive for
 * sure: the ready queue holds them and the running loop holds the queue.
 * So a handle that call_soon() queues while _run_once() is running is
 * untracked, and tracked again as soon as that stops being true:
 *
 *   - when it has run (loopcore_run_ready), if anything else still holds it;
 *   - at the end of the _run_once() call (which, with _iterate, spans all
 *     of run_forever()'s iterations), for the handles still queued
 *     (loopcore_track_queued), so that outside _run_once() every queued
 *     handle is tracked and a loop dropped with callbacks queued can be
 *     collected as before;
 *   - when Python code asks for the queue (the _ready getter), since it
 *     may take handles out of it.
 *
 * An untracked object is never freed by the collector; the only risk is a
 * cycle through it not being found while it is untracked, and each of the
 * paths above ends that.
 */
static void
loopcore_untrack_queued(LoopCoreObject *self, PyObject *handle)
{
    if (self->running > 0 && PyObject_GC_IsTracked(handle)) {
        PyObject_GC_UnTrack(handle);
        self->untracked++;
    }
}

/* @handle has left the ready queue: track it again if it lives on. */
static void
loopcore_track_dequeued(LoopCoreObject *self, PyObject *handle)
{
    if (self->untracked > 0 && !PyObject_GC_IsTracked(handle) &&
        PyObject_IS_GC(handle)) {
        self->untracked--;
        if (Py_REFCNT(handle) > 1) {
            PyObject_GC_Track(handle);
        }
    }
}

/* Track every queued handle again. */
static int
loopcore_track_queued(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject *it, *item;

    if (self->untracked == 0 || self->ready == NULL) {
        return 0;
    }
    it = PyObject_GetIter(self->ready);
    if (it == NULL) {
        return -1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        if ((PyObject *)Py_TYPE(item) == cfg->handle_type &&
            !PyObject_GC_IsTracked(item)) {
            PyObject_GC_Track(item);
        }
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return -1;
    }
    self->untracked = 0;
    return 0;
}

/* ---- call_soon, call_soon_threadsafe ------------------------------------ */

/* The Handle for call_soon()'s arguments, queued on the ready queue. */
static PyObject *
loopcore_queue_soon(cev_loop_config *cfg, LoopCoreObject *self,
                    const char *name, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames)
{
    PyObject *context, *cbargs, *handle;

    if (loopcore_parse_callback(name, 0, args, PyVectorcall_NARGS(nargsf),
                                kwnames, &cbargs, &context) < 0) {
        return NULL;
    }
    handle = loopcore_make_handle(cfg, cfg->handle_type, (PyObject *)self,
                                  args[0], cbargs, context);
    Py_DECREF(cbargs);
    if (handle == NULL) {
        return NULL;
    }
    if (loopcore_append_ready(self, handle) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    loopcore_untrack_queued(self, handle);
    return handle;
}

PyDoc_STRVAR(loopcore_call_soon_doc,
"call_soon($self, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called soon (FIFO); returns its\n"
"asyncio.Handle.");

static PyObject *
loopcore_call_soon(LoopCoreObject *self, PyTypeObject *defining_class,
                   PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->debug || self->closed) {
        /* BaseEventLoop's: checks, source traceback, "closed" error */
        return loopcore_call_python(cfg->py_call_soon, (PyObject *)self,
                                    args, nargsf, kwnames);
    }
    return loopcore_queue_soon(cfg, self, "call_soon", args, nargsf,
                               kwnames);
}

PyDoc_STRVAR(loopcore_call_soon_threadsafe_doc,
"call_soon_threadsafe($self, callback, /, *args, context=None)\n--\n\n"
"call_soon() from any thread: queues the handle and wakes the loop with\n"
"AioContext.notify().");

static PyObject *
loopcore_call_soon_threadsafe(LoopCoreObject *self,
                              PyTypeObject *defining_class,
                              PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    PyObject *handle, *res;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->debug || self->closed || self->context == NULL) {
        return loopcore_call_python(cfg->py_call_soon_threadsafe,
                                    (PyObject *)self, args, nargsf,
                                    kwnames);
    }
    handle = loopcore_queue_soon(cfg, self, "call_soon_threadsafe", args,
                                 nargsf, kwnames);
    if (handle == NULL) {
        return NULL;
    }
    /* aio_notify: thread-safe and race-free against a poll about to block */
    res = PyObject_VectorcallMethod(cfg->str_notify, &self->context,
                                    1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    NULL);
    if (res == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            Py_DECREF(handle);
            return NULL;
        }
        PyErr_Clear();          /* the context closed meanwhile */
    }
    Py_XDECREF(res);
    return handle;
}

/* ---- call_later, call_at ------------------------------------------------- */

/*
 * Make the timer handle for callback(*cbargs) due at @when_ns (@when is
 * what its _when holds) and push it on the heap.
 */
static PyObject *
loopcore_schedule_timer(cev_loop_config *cfg, LoopCoreObject *self,
                        PyObject *name, PyObject *when, int64_t when_ns,
                        PyObject *callback, PyObject *cbargs,
                        PyObject *context)
{
    PyObject *py_when_ns, *handle;

    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    py_when_ns = PyLong_FromLongLong(when_ns);
    if (py_when_ns == NULL) {
        return NULL;
    }
    if (self->debug) {
        PyObject *dargs[7] = {
            (PyObject *)self, name, when, py_when_ns, callback, cbargs,
            context != NULL ? context : Py_None,
        };

        handle = PyObject_Vectorcall(cfg->new_timer_debug, dargs, 7, NULL);
        if (handle != NULL &&
            !PyObject_TypeCheck(handle, loopcore_timer_base(cfg))) {
            PyErr_Format(PyExc_TypeError,
                         "new_timer_debug() returned %.200s, not a "
                         "TimerHandle", Py_TYPE(handle)->tp_name);
            Py_CLEAR(handle);
        }
    }
    else {
        handle = loopcore_make_handle(cfg, cfg->timer_type, (PyObject *)self,
                                      callback, cbargs, context);
        if (handle != NULL) {
            TSLOT(cfg, handle, TSLOT_SCHEDULED) = Py_NewRef(Py_False);
            TSLOT(cfg, handle, TSLOT_WHEN) = Py_NewRef(when);
            TSLOT(cfg, handle, TSLOT_WHEN_NS) = Py_NewRef(py_when_ns);
        }
    }
    Py_DECREF(py_when_ns);
    if (handle == NULL) {
        return NULL;
    }
    if (loopcore_heap_push(self, when_ns, handle) < 0) {
        Py_DECREF(handle);
        return NULL;
    }
    loopcore_timer_set_scheduled(cfg, handle, true);
    return handle;
}

PyDoc_STRVAR(loopcore_call_later_doc,
"call_later($self, delay, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called once delay seconds have\n"
"elapsed: the deadline is clock_ns() + delay in integer ns, rounded up,\n"
"so it never runs early.  Returns its asyncio.TimerHandle.");

static PyObject *
loopcore_call_later(LoopCoreObject *self, PyTypeObject *defining_class,
                    PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context, *cbargs, *when, *handle;
    int64_t delay_ns, when_ns;
    double when_s;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (nargs >= 1 && args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    if (loopcore_parse_callback("call_later", 1, args, nargs, kwnames,
                                &cbargs, &context) < 0) {
        return NULL;
    }
    if (loopcore_seconds_to_ns(args[0], &delay_ns) < 0) {
        Py_DECREF(cbargs);
        return NULL;
    }
    when_ns = loopcore_clamp_ns(qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                                delay_ns);
    if (when_ns >= LOOPCORE_NEVER_NS || when_ns <= -LOOPCORE_NEVER_NS) {
        when_s = when_ns > 0 ? INFINITY : -INFINITY;
    }
    else {
        when_s = (double)when_ns / 1e9;
    }
    when = PyFloat_FromDouble(when_s);
    if (when == NULL) {
        Py_DECREF(cbargs);
        return NULL;
    }
    handle = loopcore_schedule_timer(cfg, self, cfg->str_call_later, when,
                                     when_ns, args[1], cbargs, context);
    Py_DECREF(when);
    Py_DECREF(cbargs);
    return handle;
}

PyDoc_STRVAR(loopcore_call_at_doc,
"call_at($self, when, callback, /, *args, context=None)\n--\n\n"
"Arrange for callback(*args) to be called once time() >= when: the\n"
"deadline is when in integer ns, rounded up.  Returns its\n"
"asyncio.TimerHandle.");

static PyObject *
loopcore_call_at(LoopCoreObject *self, PyTypeObject *defining_class,
                 PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context, *cbargs, *handle;
    int64_t when_ns;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (nargs >= 1 && args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    if (loopcore_parse_callback("call_at", 1, args, nargs, kwnames, &cbargs,
                                &context) < 0) {
        return NULL;
    }
    if (loopcore_seconds_to_ns(args[0], &when_ns) < 0) {
        Py_DECREF(cbargs);
        return NULL;
    }
    handle = loopcore_schedule_timer(cfg, self, cfg->str_call_at, args[0],
                                     when_ns, args[1], cbargs, context);
    Py_DECREF(cbargs);
    return handle;
}

/* ---- running handles ------------------------------------------------------ */

/*
 * Run one handle that is not cancelled as Handle._run() does; @plain is
 * loopcore_is_plain(cfg, handle).  Returns 0, or -1 with an exception set
 * when it must propagate (SystemExit, KeyboardInterrupt, or a failing
 * exception handler).
 */
static int
loopcore_run_live_handle(cev_loop_config *cfg, PyObject *handle, bool plain)
{
    PyObject *ctx, *callback, *cbargs, *res, *value, *hook_args[2];

    ctx = SLOT(cfg, handle, SLOT_CONTEXT);
    callback = SLOT(cfg, handle, SLOT_CALLBACK);
    cbargs = SLOT(cfg, handle, SLOT_ARGS);
    if (!plain || ctx == NULL || callback == NULL || cbargs == NULL ||
        !PyTuple_Check(cbargs) || !PyContext_CheckExact(ctx)) {
        /*
         * A type with a _run of its own, or not what call_soon() makes:
         * Handle._run() deals with it.
         */
        res = PyObject_CallMethodNoArgs(handle, cfg->str__run);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
        return 0;
    }
    Py_INCREF(ctx);
    Py_INCREF(callback);
    Py_INCREF(cbargs);
    if (PyContext_Enter(ctx) == 0) {
        res = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(cbargs, 0),
                                  PyTuple_GET_SIZE(cbargs), NULL);
        if (PyContext_Exit(ctx) < 0 && res != NULL) {
            Py_CLEAR(res);
        }
    }
    else {
        res = NULL;     /* "cannot enter context": as Context.run raises */
    }
    Py_DECREF(cbargs);
    Py_DECREF(callback);
    Py_DECREF(ctx);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    value = cev_catch_exception();
    if (value == NULL) {
        return -1;
    }
    hook_args[0] = handle;
    hook_args[1] = value;
    res = PyObject_Vectorcall(cfg->exc_hook, hook_args, 2, NULL);
    Py_DECREF(value);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Run one handle as _run_once() does: a cancelled one is skipped. */
static int
loopcore_run_handle(cev_loop_config *cfg, PyObject *handle)
{
    bool plain = loopcore_is_plain(cfg, handle);
    int cancelled = loopcore_handle_cancelled(cfg, handle, plain);

    if (cancelled != 0) {
        return cancelled < 0 ? -1 : 0;
    }
    return loopcore_run_live_handle(cfg, handle, plain);
}

/* Pop @ntodo handles off the ready queue and run them. */
static int
loopcore_run_ready(cev_loop_config *cfg, LoopCoreObject *self,
                   Py_ssize_t ntodo)
{
    PyObject *popleft = self->ready_popleft;
    int rc = 0;

    if (popleft == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the loop has no ready queue");
        return -1;
    }
    Py_INCREF(popleft);                 /* a callback may rebind _ready */
    for (Py_ssize_t i = 0; i < ntodo && rc == 0; i++) {
        PyObject *handle = PyObject_Vectorcall(popleft, NULL, 0, NULL);

        if (handle == NULL) {
            rc = -1;
            break;
        }
        rc = loopcore_run_handle(cfg, handle);
        loopcore_track_dequeued(self, handle);
        Py_DECREF(handle);
    }
    Py_DECREF(popleft);
    return rc;
}

/* ---- _run_once ------------------------------------------------------------ */

/*
 * Drop every cancelled handle from the heap, as _run_once() does when they
 * are more than half of it.  The dropped handles are released last.
 */
static int
loopcore_purge_cancelled(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject **dropped = PyMem_New(PyObject *, self->nheap);
    Py_ssize_t i, kept = 0, ndropped = 0;

    if (dropped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < self->nheap; i++) {
        PyObject *handle = self->heap[i].handle;

        if (loopcore_timer_cancelled(cfg, handle)) {
            loopcore_timer_set_scheduled(cfg, handle, false);
            dropped[ndropped++] = handle;
        }
        else {
            self->heap[kept++] = self->heap[i];
        }
    }
    self->nheap = kept;
    for (i = kept / 2 - 1; i >= 0; i--) {
        loopcore_heap_sift_down(self->heap, kept, i);
    }
    self->timer_cancelled_count = 0;
    for (i = 0; i < ndropped; i++) {
        Py_DECREF(dropped[i]);
    }
    PyMem_Free(dropped);
    return 0;
}

/* Make the next blocking poll return by @deadline_ns. */
static int
loopcore_arm(cev_loop_config *cfg, LoopCoreObject *self, int64_t deadline_ns)
{
    TimerObject *timer = (TimerObject *)self->wake_timer;
    PyObject *margs[2], *res;

    if (deadline_ns >= LOOPCORE_NEVER_NS) {
        return 0;
    }
    if (timer->ts != NULL &&
        (int64_t)timer_expire_time_ns(timer->ts) == deadline_ns) {
        return 0;
    }
    margs[0] = self->wake_timer;
    margs[1] = PyLong_FromLongLong(deadline_ns);
    if (margs[1] == NULL) {
        return -1;
    }
    res = PyObject_VectorcallMethod(cfg->str_mod_ns, margs,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    NULL);
    Py_DECREF(margs[1]);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/*
 * The due timers after a poll whose fd handles ran inline.  The ready queue
 * then holds only what those handles queued, which asyncio would run in
 * its next iteration, after the timers that are due now: so these go in
 * front of it, in deadline order.  A timer that the handles scheduled
 * during the poll (sequence number @seq or later) stays on the heap until
 * the next iteration, as in asyncio, where the timers are collected before
 * the fd handles run.
 */
static int
loopcore_queue_due_first(cev_loop_config *cfg, LoopCoreObject *self,
                         uint64_t seq)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    LoopTimer *popped;
    Py_ssize_t npopped = 0, i;
    int rc = 0;

    if (self->heap[0].when > now) {
        return 0;
    }
    popped = PyMem_New(LoopTimer, self->nheap);
    if (popped == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (self->nheap > 0 && self->heap[0].when <= now) {
        popped[npopped] = self->heap[0];
        popped[npopped].handle = loopcore_heap_pop(self);
        npopped++;
    }
    /* Put back the new ones first: the heap is whole before Python runs. */
    for (i = 0; i < npopped; i++) {
        if (popped[i].seq >= seq) {
            self->heap[self->nheap] = popped[i];
            loopcore_heap_sift_up(self->heap, self->nheap);
            self->nheap++;
            popped[i].handle = NULL;
        }
    }
    for (i = npopped - 1; i >= 0; i--) {
        PyObject *handle = popped[i].handle, *res;

        if (handle == NULL) {
            continue;
        }
        loopcore_timer_set_scheduled(cfg, handle, false);
        if (rc == 0) {
            res = PyObject_CallMethodOneArg(self->ready, cfg->str_appendleft,
                                            handle);
            if (res == NULL) {
                rc = -1;
            }
            Py_XDECREF(res);
        }
        Py_DECREF(handle);
    }
    PyMem_Free(popped);
    return rc;
}

PyDoc_STRVAR(loopcore__run_once_doc,
"_run_once($self, /)\n--\n\n"
"One loop iteration, as BaseEventLoop._run_once(): AioContext.poll()\n"
"(the fd handlers queue the ready I/O handles), then the timers that are\n"
"due, then every handle that was ready before the callbacks started.");

/* The body of _run_once(), with self->running counted by the caller. */
static int
loopcore_run_once(cev_loop_config *cfg, LoopCoreObject *self)
{
    PyObject *res;
    Py_ssize_t ntodo;
    bool blocking, ran_inline;
    char io_mode;
    uint64_t seq;
    int rc;

    /* Purge cancelled timers: all of them, or those at the top. */
    if (self->nheap > MIN_SCHEDULED_TIMER_HANDLES &&
        (double)self->timer_cancelled_count / (double)self->nheap >
        MIN_CANCELLED_TIMER_HANDLES_FRACTION) {
        if (loopcore_purge_cancelled(cfg, self) < 0) {
            return -1;
        }
    }
    else {
        while (self->nheap > 0 &&
               loopcore_timer_cancelled(cfg, self->heap[0].handle)) {
            PyObject *handle = loopcore_heap_pop(self);

            self->timer_cancelled_count--;
            loopcore_timer_set_scheduled(cfg, handle, false);
            Py_DECREF(handle);
        }
    }

    ntodo = PyObject_Length(self->ready);
    if (ntodo < 0) {
        return -1;
    }
    blocking = ntodo == 0 && !self->stopping;
    if (blocking && self->nheap > 0 &&
        loopcore_arm(cfg, self, self->heap[0].when) < 0) {
        return -1;
    }
    io_mode = self->io_mode;
    self->io_mode = self->debug ? LOOP_IO_QUEUE : LOOP_IO_UNDECIDED;
    seq = self->next_seq;
    rc = cev_context_poll((ContextObject *)self->context, blocking);
    ran_inline = self->io_mode == LOOP_IO_INLINE;
    self->io_mode = io_mode;
    if (rc < 0) {
        return -1;
    }

    /* The timers that are due go to the ready queue. */
    if (ran_inline) {
        if (self->nheap > 0 && loopcore_queue_due_first(cfg, self, seq) < 0) {
            return -1;
        }
    }
    else if (self->nheap > 0) {
        int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);

        while (self->nheap > 0 && self->heap[0].when <= now) {
            PyObject *handle = loopcore_heap_pop(self);

            loopcore_timer_set_scheduled(cfg, handle, false);
            rc = loopcore_append_ready(self, handle);
            Py_DECREF(handle);
            if (rc < 0) {
                return -1;
            }
        }
    }

    /* The handles ready now; those they queue run next time. */
    ntodo = PyObject_Length(self->ready);
    if (ntodo < 0) {
        return -1;
    }
    if (self->debug) {
        PyObject *n = PyLong_FromSsize_t(ntodo);

        if (n == NULL) {
            return -1;
        }
        res = PyObject_CallMethodOneArg((PyObject *)self,
                                        cfg->str__run_ready_debug, n);
        Py_DECREF(n);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    else if (loopcore_run_ready(cfg, self, ntodo) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *
loopcore__run_once(LoopCoreObject *self, PyTypeObject *defining_class,
                   PyObject *const *Py_UNUSED(args), size_t nargsf,
                   PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    int rc;

    if (cev_check_no_args("_run_once", PyVectorcall_NARGS(nargsf),
                          kwnames) < 0) {
        return NULL;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    if (self->context == NULL || self->ready == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the loop has no context (_attach() not called)");
        return NULL;
    }
    /*
     * One iteration, or (while run_forever() runs, which sets _iterate) as
     * many as BaseEventLoop.run_forever() would run by calling _run_once()
     * until _stopping, without going back to Python in between.  Signal
     * handlers run between iterations, as the bytecode loop would run them.
     */
    self->running++;
    do {
        rc = loopcore_run_once(cfg, self);
    } while (rc == 0 && self->iterate && !self->stopping &&
             (rc = PyErr_CheckSignals()) == 0);
    self->running--;
    if (self->running == 0 && self->untracked > 0) {
        /* with an exception set or not: track what is still queued */
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if (loopcore_track_queued(cfg, self) < 0) {
            rc = -1;
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
        else {
            PyErr_Restore(type, value, tb);
        }
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(loopcore__attach_doc,
"_attach($self, context, wake_timer, /)\n--\n\n"
"The loop's AioContext and the Timer (on it) that _run_once() arms at\n"
"the earliest deadline.");

static PyObject *
loopcore__attach(LoopCoreObject *self, PyTypeObject *defining_class,
                 PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    cevent_state *state = PyType_GetModuleState(defining_class);

    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_attach() takes exactly two arguments");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], state->ContextType) ||
        !Py_IS_TYPE(args[1], state->TimerType) ||
        ((TimerObject *)args[1])->context !=
        (ContextObject *)args[0]) {
        PyErr_SetString(PyExc_TypeError,
                        "_attach() needs an AioContext and one of its "
                        "Timers");
        return NULL;
    }
    Py_XSETREF(self->context, Py_NewRef(args[0]));
    Py_XSETREF(self->wake_timer, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* ---- attributes shared with asyncio's Python code ---------------------- */

static int
loopcore_set_bool(char *field, PyObject *value, const char *name)
{
    int truth;

    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
        return -1;
    }
    truth = PyObject_IsTrue(value);
    if (truth < 0) {
        return -1;
    }
    *field = (char)truth;
    return 0;
}

#define LOOPCORE_BOOL_ATTR(field)                                          \
    static PyObject *                                                      \
    loopcore_get_##field(LoopCoreObject *self, void *Py_UNUSED(closure))   \
    {                                                                      \
        return PyBool_FromLong(self->field);                               \
    }                                                                      \
    static int                                                             \
    loopcore_set_##field(LoopCoreObject *self, PyObject *value,            \
                         void *Py_UNUSED(closure))                         \
    {                                                                      \
        return loopcore_set_bool(&self->field, value, "_" #field);         \
    }

LOOPCORE_BOOL_ATTR(closed)
LOOPCORE_BOOL_ATTR(debug)
LOOPCORE_BOOL_ATTR(stopping)
LOOPCORE_BOOL_ATTR(iterate)

static PyObject *
loopcore_get_ready(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    cev_loop_config *cfg = &cevent_state_by_type(Py_TYPE(self))->loop;

    if (self->ready == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_ready");
        return NULL;
    }
    /* Python code may take handles out of the queue: the GC must see them */
    if (loopcore_track_queued(cfg, self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->ready);
}

/* _ready = a collections.deque (anything with append and popleft). */
static int
loopcore_set_ready(LoopCoreObject *self, PyObject *value,
                   void *Py_UNUSED(closure))
{
    cev_loop_config *cfg = &cevent_state_by_type(Py_TYPE(self))->loop;
    PyObject *append, *popleft;

    if (value == NULL) {
        if (loopcore_track_queued(cfg, self) < 0) {
            return -1;
        }
        Py_CLEAR(self->ready);
        Py_CLEAR(self->ready_append);
        Py_CLEAR(self->ready_popleft);
        return 0;
    }
    /* handles left in the old queue must be tracked */
    if (loopcore_track_queued(cfg, self) < 0) {
        return -1;
    }
    append = PyObject_GetAttr(value, cfg->str_append);
    if (append == NULL) {
        return -1;
    }
    popleft = PyObject_GetAttr(value, cfg->str_popleft);
    if (popleft == NULL) {
        Py_DECREF(append);
        return -1;
    }
    Py_XSETREF(self->ready_append, append);
    Py_XSETREF(self->ready_popleft, popleft);
    Py_XSETREF(self->ready, Py_NewRef(value));
    return 0;
}

static PyObject *
loopcore_get_timer_cancelled_count(LoopCoreObject *self,
                                   void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->timer_cancelled_count);
}

static int
loopcore_set_timer_cancelled_count(LoopCoreObject *self, PyObject *value,
                                   void *Py_UNUSED(closure))
{
    Py_ssize_t count;

    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "cannot delete _timer_cancelled_count");
        return -1;
    }
    count = PyLong_AsSsize_t(value);
    if (count == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->timer_cancelled_count = count;
    return 0;
}

/* _scheduled: a new list of the scheduled timer handles, in heap order. */
static PyObject *
loopcore_get_scheduled(LoopCoreObject *self, void *Py_UNUSED(closure))
{
    PyObject *list = PyList_New(self->nheap);

    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->nheap; i++) {
        PyList_SET_ITEM(list, i, Py_NewRef(self->heap[i].handle));
    }
    return list;
}

/* The deadline in ns of a TimerHandle put on the heap by assignment. */
static int
loopcore_timer_deadline(cev_loop_config *cfg, PyObject *handle, int64_t *ns)
{
    PyObject *value = PyObject_GetAttr(handle, cfg->str__when_ns);
    int rc;

    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        value = PyObject_GetAttr(handle, cfg->str__when);
        if (value == NULL) {
            return -1;
        }
        rc = loopcore_seconds_to_ns(value, ns);
        Py_DECREF(value);
        return rc;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%R._when_ns is not an int", handle);
        rc = -1;
    }
    else {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);

        rc = (v == -1 && PyErr_Occurred()) ? -1 : 0;
        *ns = overflow ? (overflow > 0 ? LOOPCORE_NEVER_NS
                                       : -LOOPCORE_NEVER_NS)
                       : loopcore_clamp_ns(v);
    }
    Py_DECREF(value);
    return rc;
}

/*
 * _scheduled = iterable: the heap becomes those TimerHandles (ordered by
 * their _when_ns, else _when).  BaseEventLoop.__init__ assigns [].
 */
static int
loopcore_set_scheduled_attr(LoopCoreObject *self, PyObject *value,
                            void *Py_UNUSED(closure))
{
    cevent_state *state = cevent_state_by_type(Py_TYPE(self));
    cev_loop_config *cfg = &state->loop;
    PyObject *seq;
    PyTypeObject *timer_base;
    LoopTimer *heap = NULL;
    Py_ssize_t i, n;

    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _scheduled");
        return -1;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return -1;
    }
    timer_base = loopcore_timer_base(cfg);
    seq = PySequence_Fast(value, "_scheduled must be an iterable");
    if (seq == NULL) {
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0) {
        heap = PyMem_New(LoopTimer, n);
        if (heap == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        PyObject *handle = PySequence_Fast_GET_ITEM(seq, i);

        if (!PyObject_TypeCheck(handle, timer_base)) {
            PyErr_Format(PyExc_TypeError,
                         "_scheduled holds asyncio.TimerHandle objects, "
                         "not %.200s", Py_TYPE(handle)->tp_name);
            break;
        }
        if (loopcore_timer_deadline(cfg, handle, &heap[i].when) < 0) {
            break;
        }
        heap[i].handle = Py_NewRef(handle);
        heap[i].seq = self->next_seq++;
    }
    Py_DECREF(seq);
    if (i < n) {
        while (i-- > 0) {
            Py_DECREF(heap[i].handle);
        }
        PyMem_Free(heap);
        return -1;
    }
    loopcore_heap_clear(self);
    self->heap = heap;
    self->nheap = self->heap_cap = n;
    for (i = n / 2 - 1; i >= 0; i--) {
        loopcore_heap_sift_down(self->heap, n, i);
    }
    return 0;
}

/* ---- configuration ----------------------------------------------------- */

/* The offsets of @type's object slots @names into @offsets. */
static int
loopcore_slot_offsets(PyObject *type, const char *const *names, int count,
                      Py_ssize_t *offsets)
{
    for (int i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttrString(type, names[i]);
        PyMemberDef *member;

        if (descr == NULL) {
            return -1;
        }
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%s is not a slot", type,
                         names[i]);
            return -1;
        }
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%R.%s is not an object slot",
                         type, names[i]);
            return -1;
        }
        offsets[i] = member->offset;
        Py_DECREF(descr);
    }
    return 0;
}

/*
 * _loopcore_configure(handle_type, timer_type, plain_handle_types,
 * exc_hook, py_call_soon, py_call_soon_threadsafe, new_timer_debug,
 * future_type): the
 * Handle type that call_soon() makes, the TimerHandle subclass that
 * call_later() makes (with a _when_ns slot), the handle types whose _run is
 * Handle._run (run natively), exc_hook(handle, exc) for a callback that
 * raised, BaseEventLoop's call_soon and call_soon_threadsafe for debug
 * mode, new_timer_debug(loop, name, when, when_ns, callback, args,
 * context), which makes a timer handle in debug mode, and the Future type
 * that create_future() makes (asyncio.Future).
 */
PyObject *
cev_loopcore_configure(PyObject *module, PyObject *const *args,
                       Py_ssize_t nargs)
{
    cev_loop_config *cfg = &get_cevent_state(module)->loop;
    Py_ssize_t handle_offsets[CEV_LOOP_HANDLE_SLOTS];
    Py_ssize_t timer_offsets[CEV_LOOP_TIMER_SLOTS];

    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "_loopcore_configure() takes exactly 8 arguments");
        return NULL;
    }
    if (!PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyTuple_Check(args[2]) || !PyCallable_Check(args[3]) ||
        !PyCallable_Check(args[4]) || !PyCallable_Check(args[5]) ||
        !PyCallable_Check(args[6]) || !PyType_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError,
                        "_loopcore_configure(type, type, tuple, callable, "
                        "callable, callable, callable, type)");
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)args[1],
                          (PyTypeObject *)args[0]) ||
        ((PyTypeObject *)args[1])->tp_base == NULL ||
        ((PyTypeObject *)args[1])->tp_base == (PyTypeObject *)args[0]) {
        PyErr_SetString(PyExc_TypeError,
                        "the timer type must subclass a subclass of the "
                        "handle type (TimerHandle)");
        return NULL;
    }
    if (loopcore_slot_offsets(args[0], handle_slot_names,
                              CEV_LOOP_HANDLE_SLOTS, handle_offsets) < 0 ||
        loopcore_slot_offsets(args[1], timer_slot_names,
                              CEV_LOOP_TIMER_SLOTS, timer_offsets) < 0) {
        return NULL;
    }
    memcpy(cfg->handle_offsets, handle_offsets, sizeof(handle_offsets));
    memcpy(cfg->timer_offsets, timer_offsets, sizeof(timer_offsets));
    Py_XSETREF(cfg->handle_type, Py_NewRef(args[0]));
    Py_XSETREF(cfg->timer_type, Py_NewRef(args[1]));
    Py_XSETREF(cfg->plain_handle_types, Py_NewRef(args[2]));
    Py_XSETREF(cfg->exc_hook, Py_NewRef(args[3]));
    Py_XSETREF(cfg->py_call_soon, Py_NewRef(args[4]));
    Py_XSETREF(cfg->py_call_soon_threadsafe, Py_NewRef(args[5]));
    Py_XSETREF(cfg->new_timer_debug, Py_NewRef(args[6]));
    Py_XSETREF(cfg->future_type, Py_NewRef(args[7]));
    Py_RETURN_NONE;
}

/* ---- _FdWatch ---------------------------------------------------------- */

/*
 * The fd handler of one fd registered by cevent.Loop's selector: runs the
 * asyncio reader or writer handle of the fd's selector key while the loop's
 * _run_once() polls (outside debug mode), else puts it on the loop's ready
 * queue (what BaseSelectorEventLoop._process_events does for a selector's
 * event list), or has the selector drop a cancelled one as _process_events
 * does.  AioContext.set_fd_handler() calls its bound read_ready/write_ready
 * methods.
 */
typedef struct {
    PyObject_HEAD
    PyObject *key;          /* selectors.SelectorKey; data = (reader, writer) */
    PyObject *ready;        /* the loop's ready queue */
    PyObject *ready_append; /* its bound append */
    PyObject *selector;     /* has _drop_cancelled(fd, event) */
    PyObject *loop;         /* its loop (a _LoopCore), or NULL */
    cev_loop_config *cfg;   /* the module's (the type holds the module) */
} FdWatchObject;

enum { KEY_FD = 1, KEY_DATA = 3, KEY_SIZE = 4 };
#define WATCH_EVENT_READ 1      /* selectors.EVENT_READ */
#define WATCH_EVENT_WRITE 2     /* selectors.EVENT_WRITE */

static PyObject *
fdwatch_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", "ready", "selector", "loop", NULL};
    PyObject *key, *ready, *selector, *append, *loop = Py_None;
    FdWatchObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:_FdWatch", kwlist,
                                     &key, &ready, &selector, &loop)) {
        return NULL;
    }
    if (loop != Py_None &&
        !PyObject_TypeCheck(loop, cevent_state_by_type(type)->LoopCoreType)) {
        PyErr_SetString(PyExc_TypeError,
                        "_FdWatch: loop must be a _LoopCore or None");
        return NULL;
    }
    append = PyObject_GetAttrString(ready, "append");
    if (append == NULL) {
        return NULL;
    }
    self = (FdWatchObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    self->key = Py_NewRef(key);
    self->ready = Py_NewRef(ready);
    self->ready_append = append;
    self->selector = Py_NewRef(selector);
    self->loop = loop == Py_None ? NULL : Py_NewRef(loop);
    self->cfg = &cevent_state_by_type(type)->loop;
    return (PyObject *)self;
}

static int
fdwatch_traverse(FdWatchObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->key);
    Py_VISIT(self->ready);
    Py_VISIT(self->ready_append);
    Py_VISIT(self->selector);
    Py_VISIT(self->loop);
    return 0;
}

static int
fdwatch_clear(FdWatchObject *self)
{
    Py_CLEAR(self->key);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->ready_append);
    Py_CLEAR(self->selector);
    Py_CLEAR(self->loop);
    return 0;
}

static void
fdwatch_dealloc(FdWatchObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    (void)fdwatch_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* The reader (@index 0) or writer (1) handle of @key, borrowed. */
static PyObject *
fdwatch_handle(PyObject *key, Py_ssize_t index)
{
    PyObject *data;

    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != KEY_SIZE) {
        PyErr_SetString(PyExc_TypeError,
                        "_FdWatch.key must be a selectors.SelectorKey");
        return NULL;
    }
    data = PyTuple_GET_ITEM(key, KEY_DATA);
    if (!PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "the selector key's data must be (reader, writer)");
        return NULL;
    }
    return PyTuple_GET_ITEM(data, index);
}

/*
 * Run the handle now rather than queue it (1), or not (0), or -1 with an
 * exception set.  Inline while the loop's _run_once() polls, outside debug
 * mode, when nothing was ready before this poll's first fd handle (see
 * LOOP_IO_UNDECIDED), and unless a callback of this poll has already
 * raised an exception that will propagate: the rest are queued, as asyncio
 * leaves them on the ready queue.
 */
static int
fdwatch_runs_inline(FdWatchObject *self)
{
    LoopCoreObject *loop = (LoopCoreObject *)self->loop;

    if (loop == NULL || loop->context == NULL ||
        ((ContextObject *)loop->context)->exc_type != NULL) {
        return 0;
    }
    if (loop->io_mode == LOOP_IO_UNDECIDED) {
        Py_ssize_t n = PyObject_Length(loop->ready);

        if (n < 0) {
            return -1;
        }
        loop->io_mode = n == 0 ? LOOP_IO_INLINE : LOOP_IO_QUEUE;
    }
    return loop->io_mode == LOOP_IO_INLINE;
}

static PyObject *
fdwatch_ready(FdWatchObject *self, Py_ssize_t index, int event)
{
    cev_loop_config *cfg = self->cfg;
    PyObject *key, *handle, *res;
    bool plain;
    int cancelled, inline_io;

    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    /* Python code below (a handle's _cancelled) may replace self->key */
    key = Py_NewRef(self->key);
    handle = fdwatch_handle(key, index);
    if (handle == NULL || handle == Py_None) {
        Py_DECREF(key);
        return handle == NULL ? NULL : Py_NewRef(Py_None);
    }
    Py_INCREF(handle);
    plain = loopcore_is_plain(cfg, handle);
    cancelled = loopcore_handle_cancelled(cfg, handle, plain);
    if (cancelled < 0) {
        res = NULL;
    }
    else if (cancelled) {
        res = PyObject_CallMethod(self->selector, "_drop_cancelled", "Oi",
                                  PyTuple_GET_ITEM(key, KEY_FD), event);
    }
    else if ((inline_io = fdwatch_runs_inline(self)) < 0) {
        res = NULL;
    }
    else if (inline_io) {
        res = loopcore_run_live_handle(cfg, handle, plain) < 0 ? NULL
                                                               : Py_None;
        Py_XINCREF(res);
    }
    else {
        res = PyObject_Vectorcall(self->ready_append, &handle, 1, NULL);
    }
    Py_DECREF(handle);
    Py_DECREF(key);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(fdwatch_read_ready_doc,
"read_ready($self, /)\n--\n\n"
"The fd is readable: run the key's reader handle (while its loop's\n"
"_run_once() polls, outside debug mode) or queue it.");

static PyObject *
fdwatch_read_ready(FdWatchObject *self, PyObject *Py_UNUSED(ignored))
{
    return fdwatch_ready(self, 0, WATCH_EVENT_READ);
}

PyDoc_STRVAR(fdwatch_write_ready_doc,
"write_ready($self, /)\n--\n\n"
"The fd is writable: run the key's writer handle (while its loop's\n"
"_run_once() polls, outside debug mode) or queue it.");

static PyObject *
fdwatch_write_ready(FdWatchObject *self, PyObject *Py_UNUSED(ignored))
{
    return fdwatch_ready(self, 1, WATCH_EVENT_WRITE);
}

static PyObject *
fdwatch_get_key(FdWatchObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->key);
}

static int
fdwatch_set_key(FdWatchObject *self, PyObject *value,
                void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete key");
        return -1;
    }
    Py_SETREF(self->key, Py_NewRef(value));
    return 0;
}

static PyMethodDef fdwatch_methods[] = {
    {"read_ready", (PyCFunction)fdwatch_read_ready, METH_NOARGS,
     fdwatch_read_ready_doc},
    {"write_ready", (PyCFunction)fdwatch_write_ready, METH_NOARGS,
     fdwatch_write_ready_doc},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef fdwatch_members[] = {
    {"ready", T_OBJECT, offsetof(FdWatchObject, ready), READONLY,
     "The loop's ready queue."},
    {"selector", T_OBJECT, offsetof(FdWatchObject, selector), READONLY,
     "The selector that registered the fd."},
    {NULL}
};

static PyGetSetDef fdwatch_getset[] = {
    {"key", (getter)fdwatch_get_key, (setter)fdwatch_set_key,
     "The fd's selectors.SelectorKey (data: (reader, writer) handles).",
     NULL},
    {NULL}
};

PyDoc_STRVAR(fdwatch_doc,
"_FdWatch(key, ready, selector, loop=None)\n--\n\n"
"The fd handler of one fd registered by cevent.Loop's selector: runs the\n"
"key's reader or writer handle while loop's _run_once() polls (outside\n"
"debug mode), else queues it on the loop's ready queue.");

static PyType_Slot fdwatch_slots[] = {
    {Py_tp_new, fdwatch_new},
    {Py_tp_dealloc, fdwatch_dealloc},
    {Py_tp_traverse, fdwatch_traverse},
    {Py_tp_clear, fdwatch_clear},
    {Py_tp_methods, fdwatch_methods},
    {Py_tp_members, fdwatch_members},
    {Py_tp_getset, fdwatch_getset},
    {Py_tp_doc, (void *)fdwatch_doc},
    {0, NULL}
};

PyType_Spec cev_fdwatch_spec = {
    .name = "cevent._cevent._FdWatch",
    .basicsize = sizeof(FdWatchObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = fdwatch_slots,
};

/* ---- small methods of BaseEventLoop ------------------------------------ */

PyDoc_STRVAR(loopcore_time_doc,
"time($self, /)\n--\n\n"
"The loop's clock in seconds: cevent.clock_ns() / 1e9.");

static PyObject *
loopcore_time(LoopCoreObject *Py_UNUSED(self),
              PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(
        (double)qemu_clock_get_ns(QEMU_CLOCK_REALTIME) / 1e9);
}

PyDoc_STRVAR(loopcore_get_debug_doc,
"get_debug($self, /)\n--\n\n"
"The loop's debug mode.");

static PyObject *
loopcore_get_debug_method(LoopCoreObject *self,
                          PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->debug);
}

PyDoc_STRVAR(loopcore_create_future_doc,
"create_future($self, /)\n--\n\n"
"A new asyncio.Future attached to the loop.");

static PyObject *
loopcore_create_future(LoopCoreObject *self, PyTypeObject *defining_class,
                       PyObject *const *Py_UNUSED(args), size_t nargsf,
                       PyObject *kwnames)
{
    cev_loop_config *cfg = loopcore_config(defining_class);
    PyObject *loop = (PyObject *)self;

    if (cev_check_no_args("create_future", PyVectorcall_NARGS(nargsf),
                          kwnames) < 0) {
        return NULL;
    }
    if (loopcore_check_configured(cfg) < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(cfg->future_type, &loop, 0,
                               cfg->kwnames_loop);
}

/* ---- type -------------------------------------------------------------- */

#define LOOPCORE_METHOD(name) \
    {#name, CEV_METH(loopcore_##name), \
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, loopcore_##name##_doc}

static PyMethodDef loopcore_methods[] = {
    LOOPCORE_METHOD(call_soon),
    LOOPCORE_METHOD(call_soon_threadsafe),
    LOOPCORE_METHOD(call_later),
    LOOPCORE_METHOD(call_at),
    LOOPCORE_METHOD(_run_once),
    LOOPCORE_METHOD(_attach),
    LOOPCORE_METHOD(create_future),
    {"time", (PyCFunction)loopcore_time, METH_NOARGS, loopcore_time_doc},
    {"get_debug", (PyCFunction)loopcore_get_debug_method, METH_NOARGS,
     loopcore_get_debug_doc},
    {NULL, NULL, 0, NULL}
};

#undef LOOPCORE_METHOD

static PyGetSetDef loopcore_getset[] = {
    {"_closed", (getter)loopcore_get_closed, (setter)loopcore_set_closed,
     "True once the loop is closed.", NULL},
    {"_debug", (getter)loopcore_get_debug, (setter)loopcore_set_debug,
     "The loop's debug mode.", NULL},
    {"_stopping", (getter)loopcore_get_stopping,
     (setter)loopcore_set_stopping,
     "True once stop() was called, until run_forever() returns.", NULL},
    {"_iterate", (getter)loopcore_get_iterate,
     (setter)loopcore_set_iterate,
     "While true (run_forever() sets it), _run_once() runs iterations\n"
     "until _stopping.", NULL},
    {"_ready", (getter)loopcore_get_ready, (setter)loopcore_set_ready,
     "The ready queue (a collections.deque of handles).", NULL},
    {"_scheduled", (getter)loopcore_get_scheduled,
     (setter)loopcore_set_scheduled_attr,
     "A new list of the scheduled timer handles (in heap order);\n"
     "assigning an iterable of TimerHandles replaces them.", NULL},
    {"_timer_cancelled_count", (getter)loopcore_get_timer_cancelled_count,
     (setter)loopcore_set_timer_cancelled_count,
     "How many scheduled timer handles were cancelled.", NULL},
    {NULL}
};

PyDoc_STRVAR(loopcore_doc,
"_LoopCore()\n--\n\n"
"The native base of cevent.Loop: scheduling, the timer heap and the\n"
"loop iteration.");

static PyType_Slot loopcore_slots[] = {
    {Py_tp_new, loopcore_new},
    {Py_tp_dealloc, loopcore_dealloc},
    {Py_tp_traverse, loopcore_traverse},
    {Py_tp_clear, loopcore_clear},
    {Py_tp_methods, loopcore_methods},
    {Py_tp_getset, loopcore_getset},
    {Py_tp_doc, (void *)loopcore_doc},
    {0, NULL}
};

PyType_Spec cev_loopcore_spec = {
    .name = "cevent._cevent._LoopCore",
    .basicsize = sizeof(LoopCoreObject),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
              Py_TPFLAGS_BASETYPE),
    .slots = loopcore_slots,
};
