"""cevent.Loop's native core (Modules/_loopcore/loopcoreobject.c): call_soon() and
the running of ready handles in C, checked against what asyncio's Python
Handle and BaseEventLoop do."""

import asyncio
import contextvars
import gc
import sys
import time
import weakref

import pytest

import cevent
from cevent import _asyncio_layout, _loopcore

# C code with reference counting of its own: run under memcheck too.
pytestmark = pytest.mark.valgrind

VAR = contextvars.ContextVar("VAR", default="unset")


def run_pending(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_loop_is_a_loopcore(loop):
    assert isinstance(loop, _loopcore._LoopCore)
    assert isinstance(loop, asyncio.AbstractEventLoop)


def test_run_forever_iterates_in_c(loop):
    """run_forever() sets _iterate, so its first _run_once() call runs the
    iterations until stop(); the flag is off again however it returns."""
    seen = []

    def step(n):
        seen.append((loop._iterate, n))
        if n:
            loop.call_soon(step, n - 1)
        else:
            loop.stop()
            loop.call_soon(seen.append, "after stop")

    assert loop._iterate is False
    loop.call_soon(step, 3)
    loop.run_forever()
    assert seen == [(True, 3), (True, 2), (True, 1), (True, 0)]
    assert loop._iterate is False
    # what was queued in the iteration that stopped runs next time, as in
    # asyncio
    run_pending(loop)
    assert seen[-1] == "after stop"

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert loop._iterate is False
    # _run_once() called on its own is one iteration
    loop.call_soon(step, 1)
    loop._run_once()
    assert seen[-1] == (False, 1)
    loop._run_once()
    assert seen[-1] == (False, 0)
    run_pending(loop)


def test_create_future_get_debug_time(loop):
    fut = loop.create_future()
    assert type(fut) is asyncio.Future
    assert fut.get_loop() is loop
    with pytest.raises(TypeError):
        loop.create_future(1)
    with pytest.raises(TypeError):
        loop.create_future(loop=loop)
    assert loop.get_debug() is False
    loop.set_debug(True)
    assert loop.get_debug() is True
    t1 = cevent.clock_ns()
    now = loop.time()
    t2 = cevent.clock_ns()
    assert t1 / 1e9 <= now <= t2 / 1e9


def test_call_soon_makes_an_asyncio_handle(loop):
    def cb(*args):
        pass

    h = loop.call_soon(cb, 1, "two")
    assert type(h) is asyncio.Handle
    assert h._callback is cb
    assert h._args == (1, "two")
    assert h._loop is loop
    assert h._cancelled is False and not h.cancelled()
    assert h._source_traceback is None
    assert isinstance(h._context, contextvars.Context)
    assert "cb" in repr(h)
    assert loop._ready[-1] is h
    h.cancel()
    assert h.cancelled()


def test_call_soon_order_and_args(loop):
    got = []
    for i in range(100):
        loop.call_soon(got.append, i)
    run_pending(loop)
    assert got == list(range(100))


def test_call_soon_context(loop):
    got = []
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "in ctx")
    loop.call_soon(lambda: got.append(VAR.get()), context=ctx)
    token = VAR.set("current")
    try:
        loop.call_soon(lambda: got.append(VAR.get()))    # a copy of current
    finally:
        VAR.reset(token)
    loop.call_soon(lambda: got.append(VAR.get()), context=None)
    run_pending(loop)
    assert got == ["in ctx", "current", "unset"]


def test_call_soon_bad_arguments(loop):
    with pytest.raises(TypeError):
        loop.call_soon()
    with pytest.raises(TypeError):
        loop.call_soon(print, bogus=1)


def test_call_soon_closed(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)


def test_callback_exception_goes_to_handler(loop):
    seen = []
    loop.set_exception_handler(lambda lp, context: seen.append(context))

    def boom():
        raise ValueError("boom")

    h = loop.call_soon(boom)
    after = []
    loop.call_soon(after.append, 1)
    run_pending(loop)
    assert after == [1]
    assert len(seen) == 1
    assert seen[0]["handle"] is h
    assert isinstance(seen[0]["exception"], ValueError)
    assert seen[0]["exception"].__traceback__ is not None
    assert seen[0]["message"].startswith("Exception in callback")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_propagate(loop, exc):
    def stop():
        raise exc

    got = []
    loop.call_soon(stop)
    loop.call_soon(got.append, "later")
    with pytest.raises(exc):
        loop.run_forever()
    # the handle after the one that raised is still queued
    assert got == []
    run_pending(loop)
    assert got == ["later"]


def test_cancelled_handle_is_skipped(loop):
    got = []
    h = loop.call_soon(got.append, 1)
    loop.call_soon(got.append, 2)
    h.cancel()
    run_pending(loop)
    assert got == [2]


def _run_in_entered_context(loop, caplog):
    """Queue a handle whose context the running code has already entered and
    run one iteration inside that context: Context.run() refuses it.  Return
    what ran, what the custom exception handler saw and what was logged."""
    seen = []
    loop.set_exception_handler(
        lambda lp, context: seen.append(
            (context["handle"] is h, type(context["exception"]))))
    ctx = contextvars.copy_context()
    got = []
    h = loop.call_soon(got.append, "never", context=ctx)
    caplog.clear()
    with caplog.at_level("ERROR", logger="asyncio"):
        ctx.run(loop._run_once)
    logged = [(r.getMessage().splitlines()[0],
               r.exc_info[0] if r.exc_info else None)
              for r in caplog.records]
    caplog.clear()
    return got, seen, logged, len(loop._ready)


def test_context_already_entered(loop, caplog):
    """Context.run() refuses a context that is already entered; the
    RuntimeError goes to call_exception_handler() as in Handle._run.  From
    3.12 on asyncio runs the custom handler in the handle's context too, which
    fails the same way and ends in the default handler: whatever the version,
    cevent.Loop does what asyncio's own loop does."""
    ref = asyncio.SelectorEventLoop()
    try:
        want = _run_in_entered_context(ref, caplog)
    finally:
        ref.close()
    got = _run_in_entered_context(loop, caplog)
    assert got == want
    assert got[0] == [] and got[3] == 0
    if sys.version_info < (3, 12):
        assert got[1] == [(True, RuntimeError)] and got[2] == []
    else:
        assert got[1] == []
        assert got[2] and got[2][0][0] == "Unhandled error in exception handler"


def test_handle_subclass_runs_its_own_run(loop):
    ran = []

    class MyHandle(asyncio.Handle):
        __slots__ = ()

        def _run(self):
            ran.append("mine")
            super()._run()

    h = MyHandle(ran.append, ("callback",), loop, None)
    loop._ready.append(h)
    run_pending(loop)
    assert ran == ["mine", "callback"]

    # cancelled: skipped without calling its _run, as _run_once() does
    h = MyHandle(ran.append, ("again",), loop, None)
    loop._ready.append(h)
    h.cancel()
    run_pending(loop)
    assert ran == ["mine", "callback"]


def test_debug_mode_uses_asyncio_checks(loop):
    loop.set_debug(True)
    assert loop._debug is True
    h = loop.call_soon(print)
    assert h._source_traceback          # made by BaseEventLoop.call_soon
    h.cancel()

    async def coro():
        pass

    c = coro()
    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.call_soon(c)
    c.close()
    loop.set_debug(False)
    assert loop._debug is False


def test_shared_attributes(loop):
    assert loop._closed is False
    ready = loop._ready
    assert ready is loop._ready
    loop._closed = 1
    assert loop._closed is True
    loop._closed = False
    with pytest.raises(AttributeError):
        del loop._closed


def test_loop_cycle_is_collected():
    loop = cevent.new_event_loop()
    loop.call_soon(lambda: loop)            # handle -> lambda -> loop cycle
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None


def test_configure_rejects_bad_arguments():
    from cevent import _asyncio_layout, _core

    good = dict(handle_type=asyncio.Handle, timer_type=_core.TimerHandle,
                plain_handle_types=(), exc_hook=print, call_soon=print,
                call_soon_threadsafe=print, new_timer_debug=print,
                future_type=asyncio.Future,
                **_asyncio_layout.C_LAYOUT)

    def configure(**change):
        _loopcore.configure(**{**good, **change})

    with pytest.raises(TypeError):
        configure(handle_type=1)
    with pytest.raises(TypeError):
        configure(plain_handle_types=[])
    with pytest.raises(TypeError):
        configure(new_timer_debug=None)
    with pytest.raises(TypeError):
        configure(future_type=print)    # the Future type must be a type
    with pytest.raises(TypeError):
        _loopcore.configure(handle_type=asyncio.Handle,
                                       plain_handle_types=())
    with pytest.raises(TypeError):      # positional arguments
        _loopcore.configure(*good.values())
    # the layout that cevent._asyncio_layout passes
    with pytest.raises(TypeError):
        configure(handle_slots=None)    # without timer_slots=None
    with pytest.raises(TypeError):
        configure(handle_slots=("_callback",))
    with pytest.raises(TypeError):
        configure(handle_attrs=("_run", "_cancelled", "_when"))
    with pytest.raises(TypeError):
        configure(transport_attrs=("_read_ready_cb",))
    with pytest.raises(TypeError):
        configure(key_fields=(1, 3))
    with pytest.raises(ValueError):
        configure(key_fields=(1, 1, 4))
    with pytest.raises(ValueError):
        configure(key_fields=(1, 4, 4))
    with pytest.raises(TypeError):
        configure(unknown=1)
    # the timer type must be a TimerHandle subclass
    with pytest.raises(TypeError):
        configure(timer_type=asyncio.TimerHandle)
    with pytest.raises(TypeError):
        configure(timer_type=int)

    class NoSlots:
        pass

    class NoSlotsTimer(NoSlots):
        pass

    class NoSlotsTimer2(NoSlotsTimer):
        pass

    with pytest.raises(AttributeError):
        configure(handle_type=NoSlots, timer_type=NoSlotsTimer2)
    # a TimerHandle subclass without the _when_ns slot
    class Plain(asyncio.TimerHandle):
        __slots__ = ()

    with pytest.raises(AttributeError):
        configure(timer_type=Plain)
    # still configured as before: call_soon works
    loop = cevent.new_event_loop()
    try:
        got = []
        loop.call_soon(got.append, 1)
        run_pending(loop)
        assert got == [1]
    finally:
        loop.close()


def _assert_refcounts_stable(loop, schedule, runs=1):
    """schedule(cb, arg) queues callbacks holding cb and arg; once they
    have run (``runs`` times run_pending) and the garbage collected, the
    loop holds no reference to either."""
    def cb(x):
        pass

    arg = object()
    before = sys.getrefcount(arg), sys.getrefcount(cb)
    schedule(cb, arg)
    for _ in range(runs):
        run_pending(loop)
    gc.collect()
    assert (sys.getrefcount(arg), sys.getrefcount(cb)) == before


def test_refcounts_stable(loop):
    def schedule(cb, arg):
        for _ in range(1000):
            loop.call_soon(cb, arg)

    _assert_refcounts_stable(loop, schedule)


def test_ns_ceil_exact():
    """_ns_ceil rounds the float's exact value up to whole ns, in C with
    128-bit arithmetic; checked against Fraction."""
    import math
    import random
    from fractions import Fraction

    never = 1 << 62
    rng = random.Random(5)
    values = [0.0, -0.0, 0.1, 1e-9, 1e-10, -1e-10, 5e-324, -5e-324, 1.5e-3,
              -0.25, 86400 * 365.0, 2.0 ** 40, 4.6e9, True]
    values += [rng.uniform(-1e6, 1e6) for _ in range(5000)]
    values += [rng.uniform(-1e-6, 1e-6) for _ in range(5000)]
    values += [rng.randrange(10**9) / 1e9 for _ in range(5000)]
    for value in values:
        exact = math.ceil(Fraction(value) * 10**9)
        assert _loopcore._ns_ceil(value) == max(-never, min(never, exact)), \
            value
    assert _loopcore._ns_ceil(3) == 3 * 10**9
    assert _loopcore._ns_ceil(10**30) == 10**39          # ints: exact
    assert _loopcore._ns_ceil(Fraction(1, 3)) == 333333334
    assert _loopcore._ns_ceil(1e300) == never
    assert _loopcore._ns_ceil(-1e300) == -never
    assert _loopcore._ns_ceil(float("inf")) == never
    assert _loopcore._ns_ceil(float("-inf")) == -never
    with pytest.raises(ValueError, match="invalid time"):
        _loopcore._ns_ceil(float("nan"))
    with pytest.raises(TypeError):
        _loopcore._ns_ceil("1")


# ---- timers: call_later/call_at and the C heap ------------------------------

def _noop():
    pass


def test_call_later_makes_a_timer_handle(loop):
    from cevent._core import TimerHandle

    def cb(*args):
        pass

    before = cevent.clock_ns()
    h = loop.call_later(0.5, cb, 1, 2)
    assert type(h) is TimerHandle
    assert isinstance(h, asyncio.TimerHandle)
    assert h._callback is cb and h._args == (1, 2) and h._loop is loop
    assert h._scheduled is True and h._cancelled is False
    assert h._source_traceback is None
    assert before + 500_000_000 <= h._when_ns <= cevent.clock_ns() + 500_000_000
    assert h.when() == h._when_ns / 1e9
    assert loop._scheduled == [h]
    h.cancel()
    assert loop._timer_cancelled_count == 1
    run_pending(loop)
    assert loop._scheduled == [] and h._scheduled is False
    assert loop._timer_cancelled_count == 0


def test_call_at_keeps_when(loop):
    when = loop.time() + 100
    h = loop.call_at(when, print)
    assert h.when() is when or h.when() == when
    assert h._when_ns >= when * 1e9
    h = loop.call_at(7, print)                  # an int: exact
    assert h._when_ns == 7 * 10**9 and h.when() == 7


def test_timer_arguments_checked(loop):
    with pytest.raises(TypeError, match="delay must not be None"):
        loop.call_later(None, print)
    with pytest.raises(TypeError, match="when cannot be None"):
        loop.call_at(None, print)
    with pytest.raises(TypeError):
        loop.call_later(1)
    with pytest.raises(TypeError):
        loop.call_later("1", print)
    with pytest.raises(TypeError):
        loop.call_at(1, print, bogus=1)
    with pytest.raises(ValueError):
        loop.call_later(float("nan"), print)
    assert loop._scheduled == []
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_at(1, print)


def test_equal_deadlines_run_in_scheduling_order(loop):
    got = []
    when = loop.time() + 0.001
    for i in range(50):
        loop.call_at(when, got.append, i)
    loop.call_at(when + 0.001, loop.stop)
    loop.run_forever()
    assert got == list(range(50))


def test_heap_order_random(loop):
    import random

    rng = random.Random(3)
    now = loop.time()
    got = []
    # 3000: the heap grows past 1024 entries, then shrinks as it drains
    whens = [now + rng.uniform(0, 0.02) for _ in range(3000)]
    handles = [loop.call_at(w, got.append, w) for w in whens]
    for h in handles[::7]:
        h.cancel()
    loop.call_at(now + 0.03, loop.stop)
    loop.run_forever()
    expect = sorted(w for i, w in enumerate(whens) if i % 7)
    assert got == expect


def test_cancelled_timers_purged_in_c(loop):
    handles = [loop.call_later(100 + i, print) for i in range(300)]
    for h in handles[:250]:
        h.cancel()
    assert loop._timer_cancelled_count == 250
    run_pending(loop)
    assert len(loop._scheduled) == 50
    assert loop._timer_cancelled_count == 0
    assert all(h._scheduled is False for h in handles[:250])
    assert all(h._scheduled is True for h in handles[250:])


def test_scheduled_attribute_assignment(loop):
    from cevent._core import TimerHandle

    got = []
    a = loop.call_later(100, got.append, "a")
    plain = asyncio.TimerHandle(loop.time() - 1, got.append, ("plain",),
                                loop)
    loop._scheduled = [a, plain]
    assert set(loop._scheduled) == {a, plain}
    with pytest.raises(TypeError, match="TimerHandle"):
        loop._scheduled = [a, asyncio.Handle(print, (), loop)]
    with pytest.raises(TypeError):
        loop._scheduled = 5
    with pytest.raises(TypeError):
        loop._scheduled = [a, "x"]
    assert set(loop._scheduled) == {a, plain}      # unchanged on error
    # a TimerHandle whose _when_ns was never set is ordered by its _when
    b = TimerHandle(loop.time() - 2, got.append, ("b",), loop)
    loop._scheduled = [a, plain, b]
    run_pending(loop)
    assert got == ["b", "plain"]
    with pytest.raises(AttributeError):
        del loop._scheduled
    loop._scheduled = []
    assert loop._scheduled == []


def test_close_drops_timer_handles(loop):
    class Obj:
        pass

    obj = Obj()
    ref = weakref.ref(obj)
    loop.call_later(100, print, obj)
    del obj
    loop.close()
    gc.collect()
    assert ref() is None
    assert loop._scheduled == []


def test_timer_heap_cycle_is_collected():
    loop = cevent.new_event_loop()
    ref = weakref.ref(loop)
    loop.call_later(100, lambda: loop)      # heap -> handle -> lambda -> loop
    loop.close()
    del loop
    gc.collect()
    assert ref() is None


def test_timer_refcounts_stable(loop):
    def schedule(cb, arg):
        for i in range(200):
            loop.call_later(0, cb, arg)
            loop.call_at(0, cb, arg)
        for i in range(200):
            loop.call_later(100, cb, arg).cancel()

    _assert_refcounts_stable(loop, schedule, runs=2)
    assert loop._scheduled == []


def test_timer_debug_mode_source_traceback(loop):
    loop.set_debug(True)
    lineno = sys._getframe().f_lineno + 1
    h = loop.call_later(100, print)
    assert h._source_traceback[-1][:3] == (
        __file__, lineno, "test_timer_debug_mode_source_traceback")
    assert loop._scheduled == [h] and h._scheduled is True
    h.cancel()

    async def coro():
        pass

    c = coro()
    with pytest.raises(TypeError, match="coroutines cannot be used"):
        loop.call_at(1, c)
    c.close()
    loop.set_debug(False)


# ---- call_soon_threadsafe -----------------------------------------------------

def test_call_soon_threadsafe_wakes_the_loop(loop):
    import threading

    got = []

    def done(ident):
        got.append(ident)
        loop.stop()

    def other():
        time.sleep(0.05)                    # let the loop block in poll
        h = loop.call_soon_threadsafe(done, threading.get_ident())
        # asyncio's type for this version (a locking subclass from 3.14)
        assert type(h) is (_asyncio_layout.THREADSAFE_HANDLE
                           or asyncio.Handle)

    thread = threading.Thread(target=other)
    loop.call_soon(thread.start)
    guard = loop.call_later(10, loop.stop)   # only if the wake-up is lost
    t0 = time.monotonic()
    loop.run_forever()
    thread.join()
    guard.cancel()
    assert got == [thread.ident]
    assert time.monotonic() - t0 < 5


def test_call_soon_threadsafe_checks(loop):
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe()
    with pytest.raises(TypeError):
        loop.call_soon_threadsafe(print, bogus=1)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(print)


# ---- queued handles and the garbage collector ---------------------------------

def test_queued_handles_untracked_only_inside_run_once(loop):
    seen = {}

    def cb():
        h = loop.call_soon(_noop)
        seen["inside"] = gc.is_tracked(h)
        seen["handle"] = h
        loop.stop()

    outside = loop.call_soon(cb)
    assert gc.is_tracked(outside)          # queued outside _run_once
    loop.run_forever()
    assert seen["inside"] is False         # queued by a callback
    # still queued after run_forever(): tracked again
    assert gc.is_tracked(seen["handle"])
    assert loop._ready[0] is seen["handle"]


def test_ready_getter_tracks_queued_handles(loop):
    seen = {}

    def cb():
        h = loop.call_soon(_noop)
        assert not gc.is_tracked(h)
        ready = loop._ready                 # Python code sees the queue
        seen["tracked"] = gc.is_tracked(h)
        assert ready[-1] is h
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen["tracked"] is True


def test_cycle_through_handle_queued_in_loop_is_collected(loop):
    class Obj:
        def method(self):
            pass

    refs = []

    def cb():
        obj = Obj()
        obj.handle = loop.call_soon(obj.method)     # obj <-> handle
        refs.append(weakref.ref(obj))
        loop.call_soon(loop.stop)

    loop.call_soon(cb)
    loop.run_forever()
    gc.collect()
    assert refs and refs[0]() is None


def test_unclosed_loop_with_handles_queued_by_callbacks_is_collected():
    loop = cevent.new_event_loop()

    def cb():
        loop.call_soon(lambda: loop)            # queued, never run
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    ref = weakref.ref(loop)
    del loop
    with pytest.warns(ResourceWarning):
        gc.collect()
    assert ref() is None


# ---- _FdWatch: the fd handlers of the loop's selector -----------------------

class _FakeSelector:
    def __init__(self):
        self.dropped = []

    def _drop_cancelled(self, fd, event):
        self.dropped.append((fd, event))


def _key(fd, reader, writer):
    import selectors

    return selectors.SelectorKey(fd, fd, selectors.EVENT_READ, (reader,
                                                                writer))


def test_fdwatch_queues_reader_and_writer(loop):
    from collections import deque

    ready = deque()
    sel = _FakeSelector()
    r = asyncio.Handle(print, (), loop)
    w = asyncio.Handle(print, (), loop)
    watch = _loopcore._FdWatch(_key(5, r, None), ready, sel)
    assert watch.ready is ready and watch.selector is sel
    watch.read_ready()
    watch.write_ready()                      # no writer: nothing
    assert list(ready) == [r]
    watch.key = _key(5, None, w)
    watch.read_ready()
    watch.write_ready()
    assert list(ready) == [r, w]
    w.cancel()
    watch.write_ready()                      # cancelled: dropped, not queued
    assert list(ready) == [r, w]
    assert sel.dropped == [(5, 2)]
    watch.key = _key(6, w, None)
    watch.read_ready()
    assert sel.dropped == [(5, 2), (6, 1)]
    with pytest.raises(AttributeError):
        del watch.key
    with pytest.raises(TypeError):
        watch.read_ready(1)


def test_fdwatch_bad_key(loop):
    from collections import deque

    watch = _loopcore._FdWatch((1, 2), deque(), _FakeSelector())
    with pytest.raises(TypeError, match="SelectorKey"):
        watch.read_ready()
    watch.key = (1, 1, 1, "not a pair")
    with pytest.raises(TypeError, match="reader, writer"):
        watch.read_ready()
    with pytest.raises(AttributeError):
        _loopcore._FdWatch((1, 2), object(), _FakeSelector())
    with pytest.raises(TypeError, match="_LoopCore"):
        _loopcore._FdWatch((1, 2), deque(), _FakeSelector(), object())


def test_cancelled_reader_is_dropped_by_the_loop(loop):
    import socket

    a, b = socket.socketpair()
    try:
        got = []
        loop.add_reader(a.fileno(), got.append, "read")
        key = loop._selector.get_key(a.fileno())
        key.data[0].cancel()                 # cancel without remove_reader
        b.send(b"x")
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        assert got == []
        with pytest.raises(KeyError):
            loop._selector.get_key(a.fileno())
    finally:
        a.close()
        b.close()


def test_fdwatch_cycle_is_collected():
    from collections import deque

    ready = deque()
    sel = _FakeSelector()
    watch = _loopcore._FdWatch(_key(1, None, None), ready, sel)
    sel.watch = watch                        # selector <-> watch
    ref = weakref.ref(sel)
    del sel, watch
    gc.collect()
    assert ref() is None


def test_debug_timer_helper_must_return_a_timer_handle(loop):
    """The heap holds TimerHandles only (their slots are written in C): a
    debug-mode helper returning anything else is refused."""
    from asyncio import base_events, events

    from cevent import _asyncio_layout, _core

    def configure(new_timer_debug):
        _loopcore.configure(
            **_asyncio_layout.C_LAYOUT,
            handle_type=events.Handle, timer_type=_core.TimerHandle,
            plain_handle_types=(events.Handle, events.TimerHandle,
                                _core.TimerHandle),
            exc_hook=_core._handle_exception,
            call_soon=base_events.BaseEventLoop.call_soon,
            call_soon_threadsafe=base_events.BaseEventLoop.call_soon_threadsafe,
            new_timer_debug=new_timer_debug,
            future_type=asyncio.Future)

    loop.set_debug(True)
    configure(lambda *args: object())
    try:
        with pytest.raises(TypeError, match="not a TimerHandle"):
            loop.call_later(1, print)
    finally:
        configure(_core._new_timer_debug)
    assert loop._scheduled == []
    h = loop.call_later(1, print)           # the real helper again
    assert loop._scheduled == [h]
    h.cancel()
    loop.set_debug(False)
