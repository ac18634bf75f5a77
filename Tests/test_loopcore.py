"""cevent.Loop's native core (Modules/_cevent/loopcore.c): call_soon() and
the running of ready handles in C, checked against what asyncio's Python
Handle and BaseEventLoop do."""

import asyncio
import contextvars
import gc
import sys
import weakref

import pytest

import cevent
from cevent import _cevent

# C code with reference counting of its own: run under memcheck too.
pytestmark = pytest.mark.valgrind

VAR = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture
def loop():
    loop = cevent.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def run_pending(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_loop_is_a_loopcore(loop):
    assert isinstance(loop, _cevent._LoopCore)
    assert isinstance(loop, asyncio.AbstractEventLoop)


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


def test_context_already_entered(loop):
    """Context.run() refuses a context that is already entered; the
    RuntimeError goes to the exception handler, as Handle._run does."""
    seen = []
    loop.set_exception_handler(lambda lp, context: seen.append(context))
    ctx = contextvars.copy_context()
    got = []
    h = loop.call_soon(got.append, "never", context=ctx)
    ctx.run(loop._run_ready, 1)
    assert got == []
    assert len(seen) == 1 and seen[0]["handle"] is h
    assert isinstance(seen[0]["exception"], RuntimeError)
    assert not loop._ready


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
    from cevent import _loop

    good = (asyncio.Handle, _loop._TimerHandle, (), print, print, print,
            print)

    def configure(**change):
        args = list(good)
        for i, value in change.items():
            args[int(i[1:])] = value
        _cevent._loopcore_configure(*args)

    with pytest.raises(TypeError):
        configure(a0=1)
    with pytest.raises(TypeError):
        configure(a2=[])
    with pytest.raises(TypeError):
        configure(a6=None)
    with pytest.raises(TypeError):
        _cevent._loopcore_configure(asyncio.Handle, ())
    # the timer type must be a TimerHandle subclass
    with pytest.raises(TypeError):
        configure(a1=asyncio.TimerHandle)
    with pytest.raises(TypeError):
        configure(a1=int)

    class NoSlots:
        pass

    class NoSlotsTimer(NoSlots):
        pass

    class NoSlotsTimer2(NoSlotsTimer):
        pass

    with pytest.raises(AttributeError):
        configure(a0=NoSlots, a1=NoSlotsTimer2)
    # a TimerHandle subclass without the _when_ns slot
    class Plain(asyncio.TimerHandle):
        __slots__ = ()

    with pytest.raises(AttributeError):
        configure(a1=Plain)
    # still configured as before: call_soon works
    loop = cevent.new_event_loop()
    try:
        got = []
        loop.call_soon(got.append, 1)
        run_pending(loop)
        assert got == [1]
    finally:
        loop.close()


def test_refcounts_stable(loop):
    def cb(x):
        pass

    arg = object()
    before = sys.getrefcount(arg), sys.getrefcount(cb)
    for _ in range(1000):
        loop.call_soon(cb, arg)
    run_pending(loop)
    gc.collect()
    assert (sys.getrefcount(arg), sys.getrefcount(cb)) == before


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
        assert _cevent._ns_ceil(value) == max(-never, min(never, exact)), \
            value
    assert _cevent._ns_ceil(3) == 3 * 10**9
    assert _cevent._ns_ceil(10**30) == 10**39          # ints: exact
    assert _cevent._ns_ceil(Fraction(1, 3)) == 333333334
    assert _cevent._ns_ceil(1e300) == never
    assert _cevent._ns_ceil(-1e300) == -never
    assert _cevent._ns_ceil(float("inf")) == never
    assert _cevent._ns_ceil(float("-inf")) == -never
    with pytest.raises(ValueError, match="invalid time"):
        _cevent._ns_ceil(float("nan"))
    with pytest.raises(TypeError):
        _cevent._ns_ceil("1")
