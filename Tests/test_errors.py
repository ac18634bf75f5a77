"""Error handling: argument errors, closed contexts, the home-thread rule,
exceptions raised by callbacks, and KeyboardInterrupt during a blocking
poll()."""

import errno
import os
import signal
import socket
import threading
import time

import pytest

import cevent
from support import (
    MULTIPLIER,
    Alarm,
    Counter,
    Killer,
    bounded_poll,
    drain,
    interrupted_poll,
    scaled,
    virtual_now,
)

valgrind = pytest.mark.valgrind


class Boom(Exception):
    pass


# ---- constructor -----------------------------------------------------------

@valgrind
def test_unknown_backend():
    with pytest.raises(ValueError):
        cevent.AioContext("kqueue")
    with pytest.raises(ValueError):
        cevent.AioContext("")


@valgrind
@pytest.mark.parametrize("value", [1, b"poll", ["poll"], 3.5])
def test_backend_not_str(value):
    with pytest.raises(TypeError):
        cevent.AioContext(value)


@valgrind
def test_unavailable_backend_raises_oserror():
    for name in cevent.unavailable_backends():
        with pytest.raises(OSError) as info:
            cevent.AioContext(name)
        assert info.value.errno
        assert str(info.value)


# ---- fd arguments ------------------------------------------------------------

@valgrind
def test_negative_fd(ctx):
    with pytest.raises(ValueError):
        ctx.set_fd_handler(-1, io_read=lambda: None)


@valgrind
def test_closed_fd(ctx):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        ctx.set_fd_handler(r, io_read=lambda: None)
    assert info.value.errno == errno.EBADF
    assert ctx.poll(False) is False


@valgrind
@pytest.mark.parametrize("value", ["3", 3.0, None, object()])
def test_fd_of_wrong_type(ctx, value):
    with pytest.raises(TypeError):
        ctx.set_fd_handler(value, io_read=lambda: None)


@valgrind
def test_fileno_exception_propagates(ctx):
    class Bad:
        def fileno(self):
            raise Boom("from fileno")

    with pytest.raises(Boom, match="from fileno"):
        ctx.set_fd_handler(Bad(), io_read=lambda: None)


@valgrind
def test_fileno_returning_negative(ctx):
    class Bad:
        def fileno(self):
            return -5

    with pytest.raises(ValueError):
        ctx.set_fd_handler(Bad(), io_read=lambda: None)


@valgrind
def test_fileno_of_closed_socket(ctx):
    s = socket.socket()
    s.close()
    with pytest.raises((ValueError, OSError)):
        ctx.set_fd_handler(s, io_read=lambda: None)


# ---- callables -------------------------------------------------------------

@valgrind
@pytest.mark.parametrize("name", ["io_read", "io_write", "io_poll",
                                  "io_poll_ready"])
def test_non_callable_fd_callbacks(ctx, name):
    r, w = os.pipe()
    try:
        kwargs = {"io_read": lambda: None, "io_poll": lambda: False,
                  "io_poll_ready": lambda: None}
        kwargs[name] = 42
        with pytest.raises(TypeError):
            ctx.set_fd_handler(r, **kwargs)
        # nothing was registered
        os.write(w, b"x")
        assert ctx.poll(False) is False
    finally:
        os.close(r)
        os.close(w)


@valgrind
@pytest.mark.parametrize("name", ["io_read", "io_poll", "io_poll_ready"])
def test_non_callable_notifier_callbacks(ctx, name):
    e = cevent.EventNotifier()
    try:
        with pytest.raises(TypeError):
            ctx.set_event_notifier(e, **{name: "nope"})
        with pytest.raises(TypeError):
            ctx.set_event_notifier_poll(e, io_poll_begin="nope")
        with pytest.raises(TypeError):
            ctx.set_event_notifier_poll(e, io_poll_end=1)
    finally:
        e.close()


@valgrind
def test_non_callable_bh_and_timer(ctx):
    with pytest.raises(TypeError):
        ctx.bh_new(None)
    with pytest.raises(TypeError):
        ctx.bh_new(1)
    with pytest.raises(TypeError):
        ctx.bh_schedule_oneshot("x")
    with pytest.raises(TypeError):
        ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, 5)
    assert ctx.poll(False) is False


# ---- parameters ------------------------------------------------------------

@valgrind
@pytest.mark.parametrize("args", [(-1,), (0, -1), (0, 0, -1), (-5, -5, -5)])
def test_set_poll_params_negative(ctx, args):
    with pytest.raises(ValueError):
        ctx.set_poll_params(*args)
    assert (ctx.poll_max_ns, ctx.poll_grow, ctx.poll_shrink) == (0, 0, 0)


@valgrind
def test_set_aio_params_negative(ctx):
    with pytest.raises(ValueError):
        ctx.set_aio_params(-1)


# ---- closed context ----------------------------------------------------------

def _closed_context_calls(ctx, e, fd):
    return {
        "backend": lambda: ctx.backend,
        "poll_ns": lambda: ctx.poll_ns,
        "poll_max_ns": lambda: ctx.poll_max_ns,
        "poll_grow": lambda: ctx.poll_grow,
        "poll_shrink": lambda: ctx.poll_shrink,
        "set_fd_handler": lambda: ctx.set_fd_handler(fd, io_read=print),
        "set_fd_handler(remove)": lambda: ctx.set_fd_handler(fd),
        "set_event_notifier": lambda: ctx.set_event_notifier(e, print),
        "set_event_notifier_poll": lambda: ctx.set_event_notifier_poll(e),
        "poll": lambda: ctx.poll(False),
        "poll(True)": lambda: ctx.poll(True),
        "notify": ctx.notify,
        "pending": ctx.pending,
        "dispatch": ctx.dispatch,
        "prepare": ctx.prepare,
        "compute_timeout": ctx.compute_timeout,
        "fileno": ctx.fileno,
        "set_poll_params": lambda: ctx.set_poll_params(0),
        "set_aio_params": lambda: ctx.set_aio_params(0),
        "bh_new": lambda: ctx.bh_new(print),
        "bh_schedule_oneshot": lambda: ctx.bh_schedule_oneshot(print),
        "timer_new": lambda: ctx.timer_new(cevent.CLOCK_VIRTUAL,
                                           cevent.SCALE_NS, print),
        "clock_step": lambda: ctx.clock_step(0),
        "stats": ctx.stats,
        "__enter__": ctx.__enter__,
    }


@valgrind
def test_closed_context(backend):
    ctx = cevent.AioContext(backend)
    ctx.close()
    e = cevent.EventNotifier()
    try:
        for name, call in _closed_context_calls(ctx, e, e.fileno()).items():
            with pytest.raises(ValueError):
                call()
                pytest.fail(f"{name} did not raise on a closed context")
        ctx.close()
    finally:
        e.close()


@valgrind
def test_objects_of_closed_context(backend):
    ctx = cevent.AioContext(backend)
    bh = ctx.bh_new(print)
    bh.schedule()
    ctx.close()
    for call in (bh.schedule, bh.schedule_idle, bh.cancel):
        with pytest.raises(ValueError):
            call()
    bh.delete()


@valgrind
def test_close_during_poll(ctx):
    """close() from a callback cannot destroy the running context."""
    errors = []

    def cb():
        try:
            ctx.close()
        except RuntimeError as exc:
            errors.append(exc)

    ctx.bh_schedule_oneshot(cb)
    assert ctx.poll(False) is True
    assert len(errors) == 1
    assert ctx.poll(False) is False


# ---- home thread -----------------------------------------------------------

def _in_thread(fn):
    result = []

    def run():
        try:
            fn()
        except BaseException as exc:
            result.append(exc)
        else:
            result.append(None)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


@valgrind
@pytest.mark.parametrize("method", ["poll", "prepare", "pending", "dispatch",
                                    "fileno"])
def test_home_thread_only(ctx, method):
    exc = _in_thread(getattr(ctx, method))
    assert isinstance(exc, RuntimeError)
    assert ctx.poll(False) is False


@valgrind
def test_thread_safe_methods_from_other_thread(ctx):
    """The thread-safe calls work from any thread."""
    bh = ctx.bh_new(print)
    r, w = os.pipe()
    try:
        for fn in (ctx.notify, lambda: ctx.bh_schedule_oneshot(lambda: None),
                   lambda: ctx.set_fd_handler(r, io_read=lambda: None),
                   lambda: ctx.set_fd_handler(r),
                   lambda: ctx.clock_step(0), bh.cancel):
            assert _in_thread(fn) is None
    finally:
        os.close(r)
        os.close(w)
        bh.delete()
    drain(ctx)


# ---- exceptions from callbacks -----------------------------------------------

@valgrind
def test_callback_exception_reraised(ctx):
    def cb():
        raise Boom("bh")

    ctx.bh_schedule_oneshot(cb)
    with pytest.raises(Boom, match="bh"):
        ctx.poll(False)
    # the context is still usable
    assert ctx.poll(False) is False


@valgrind
def test_callback_exceptions_iteration_finishes(ctx, unraisable):
    """Every ready callback of the iteration still runs, in QEMU's order
    (BHs, fd handlers, timers); poll() raises the first exception, the later
    ones go to sys.unraisablehook."""
    ran = []

    def raiser(name):
        def cb(*args):
            ran.append(name)
            if args:
                args[0].test_and_clear()
            raise Boom(name)
        return cb

    e = cevent.EventNotifier()
    ctx.set_event_notifier(e, io_read=raiser("fd"))
    bh1 = ctx.bh_new(raiser("bh1"))
    bh2 = ctx.bh_new(raiser("bh2"))
    ok = ctx.bh_new(lambda: ran.append("ok"))
    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                          raiser("timer"))
    drain(ctx)
    bh1.schedule()
    ok.schedule()
    bh2.schedule()                      # LIFO: bh2 runs first
    e.set()
    timer.mod(virtual_now())
    with unraisable:
        with pytest.raises(Boom, match="bh2"):
            ctx.poll(True)
    assert ran == ["bh2", "ok", "bh1", "fd", "timer"]
    assert [str(x) for x in unraisable.exceptions] == ["bh1", "fd", "timer"]
    assert all(isinstance(x, Boom) for x in unraisable.exceptions)
    with unraisable:
        assert ctx.poll(False) is False
    assert len(unraisable.calls) == 3
    ctx.set_event_notifier(e)
    e.close()
    for bh in (bh1, bh2, ok):
        bh.delete()


@valgrind
def test_exception_in_nested_poll(ctx):
    """A nested poll() raises the exceptions of its own iteration; the outer
    poll() is not affected by them."""
    outer_saw = []

    def inner_cb():
        raise Boom("inner")

    def outer_cb():
        ctx.bh_schedule_oneshot(inner_cb)
        try:
            ctx.poll(False)
        except Boom as exc:
            outer_saw.append(str(exc))

    ctx.bh_schedule_oneshot(outer_cb)
    assert ctx.poll(False) is True
    assert outer_saw == ["inner"]


@valgrind
def test_exception_from_io_poll(ctx, unraisable):
    """An exception from a Python io_poll is raised by poll() (the spin may
    call it several times: the later ones are unraisable)."""
    r, w = os.pipe()
    try:
        def bad_poll():
            raise Boom("io_poll")

        reads = Counter(lambda: os.read(r, 10))
        ctx.set_poll_params(10**9)
        ctx.set_fd_handler(r, io_read=reads, io_poll=bad_poll,
                           io_poll_ready=lambda: None)
        os.write(w, b"x")
        raised = []
        for _ in range(10):
            try:
                with unraisable:
                    bounded_poll(ctx, 2)
            except Boom as exc:
                raised.append(exc)
            if raised:
                break
        assert reads.n == 1
        assert raised and str(raised[0]) == "io_poll"
        assert all(isinstance(x, Boom) for x in unraisable.exceptions)
        ctx.set_fd_handler(r)
    finally:
        os.close(r)
        os.close(w)


@valgrind
def test_base_exception_from_callback(ctx):
    def cb():
        raise SystemExit(3)

    ctx.bh_schedule_oneshot(cb)
    with pytest.raises(SystemExit):
        ctx.poll(False)
    assert ctx.poll(False) is False


# ---- KeyboardInterrupt ---------------------------------------------------------

@pytest.fixture
def sigalrm_raises_keyboardinterrupt():
    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_keyboard_interrupt_from_sigalrm(ctx,
                                         sigalrm_raises_keyboardinterrupt):
    """KeyboardInterrupt raised by a signal handler during a blocking
    poll(True) surfaces within 100 ms."""
    drain(ctx)
    latency = interrupted_poll(ctx, Alarm(0.05), KeyboardInterrupt)
    assert latency < 0.1 * MULTIPLIER
    # the context is still usable
    assert ctx.poll(False) is False


def test_keyboard_interrupt_from_sigint(ctx):
    """SIGINT sent by another thread during a blocking poll(True)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        drain(ctx)
        latency = interrupted_poll(ctx, Killer(signal.SIGINT, 0.05),
                                   KeyboardInterrupt)
        assert latency < 0.1 * MULTIPLIER
    finally:
        signal.signal(signal.SIGINT, old)
    assert ctx.poll(False) is False


def test_keyboard_interrupt_with_handlers(ctx,
                                          sigalrm_raises_keyboardinterrupt):
    """Also with handlers and a distant timer registered."""
    r, w = os.pipe()
    try:
        ctx.set_fd_handler(r, io_read=lambda: os.read(r, 10))
        t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, print)
        t.mod(cevent.clock_ns() + 3600 * 10**9)

        drain(ctx)
        latency = interrupted_poll(ctx, Alarm(0.05), KeyboardInterrupt)
        assert latency < 0.1 * MULTIPLIER
        t.delete()
        ctx.set_fd_handler(r)
    finally:
        os.close(r)
        os.close(w)


def test_signal_handler_without_exception(ctx):
    """A signal whose handler returns normally does not end a blocking
    poll() with an exception; the wait goes on (or returns False)."""
    got = []

    def handler(signum, frame):
        got.append(signum)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        bh = ctx.bh_new(lambda: None)

        def schedule_later():
            time.sleep(0.15)
            bh.schedule()

        drain(ctx)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        thread = threading.Thread(target=schedule_later)
        thread.start()
        try:
            deadline = time.monotonic() + scaled(5)
            while not ctx.poll(True):
                assert time.monotonic() < deadline
        finally:
            thread.join()
        assert got == [signal.SIGALRM]
        bh.delete()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
