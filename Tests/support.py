"""Helpers shared by the cevent tests.

The data classes mirror the structs of QEMU's tests/unit/test-aio.c
(BHTestData, EventNotifierTestData, TimerTestData) so that the ported tests
read like the originals.  Every loop here is bounded: a helper that would
spin or block forever fails the test instead.
"""

import asyncio
import gc
import os
import select
import signal
import socket
import threading
import time

import cevent

#: Scales every wall-clock bound of the suite (libuv's idea); raise it for
#: slow runs (valgrind, sanitizers): CEVENT_TEST_TIMEOUT_MULTIPLIER=20.
MULTIPLIER = float(os.environ.get("CEVENT_TEST_TIMEOUT_MULTIPLIER") or 1)

#: Upper bound on iterations of the "drain" and "until" loops below.
MAX_ITERATIONS = 10_000

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def scaled(seconds):
    """A wall-clock bound in seconds, scaled by the multiplier."""
    return seconds * MULTIPLIER


# ---- QEMU's test data ---------------------------------------------------

class BHTestData:
    """BHTestData {bh, n, max} with bh_test_cb and bh_delete_cb."""

    def __init__(self, max=0):
        self.bh = None
        self.n = 0
        self.max = max

    def bh_test_cb(self):
        self.n += 1
        if self.n < self.max:
            self.bh.schedule()

    def bh_delete_cb(self):
        self.n += 1
        if self.n < self.max:
            self.bh.schedule()
        else:
            self.bh.delete()
            self.bh = None


class EventNotifierTestData:
    """EventNotifierTestData {e, n, active, auto_set} with event_ready_cb."""

    def __init__(self, active=0, auto_set=False):
        self.e = cevent.EventNotifier()
        self.n = 0
        self.active = active
        self.auto_set = auto_set

    def event_ready_cb(self, e):
        assert e is self.e
        assert e.test_and_clear()
        self.n += 1
        if self.active > 0:
            self.active -= 1
        if self.auto_set and self.active:
            e.set()

    def close(self):
        self.e.close()


class TimerTestData:
    """TimerTestData {timer, clock, n, max, ns} with timer_test_cb.

    The timer is created on ``ctx`` with SCALE_NS; the callback re-arms it
    at ``now(clock) + ns`` while ``n < max``.
    """

    def __init__(self, ctx, clock, ns, max):
        self.clock = clock
        self.n = 0
        self.max = max
        self.ns = ns
        self.run_times = []
        self.timer = ctx.timer_new(clock, cevent.SCALE_NS, self.timer_test_cb)

    def timer_test_cb(self):
        now = cevent.clock_ns(self.clock)
        self.run_times.append(now)
        self.n += 1
        if self.n < self.max:
            self.timer.mod(now + self.ns)


def dummy_io_handler_read(e):
    """QEMU's dummy_io_handler_read: does nothing."""


def dummy_notifier_read(e):
    """QEMU's dummy_notifier_read: clears the notifier."""
    e.test_and_clear()


def set_event_notifier(ctx, e, handler):
    """QEMU test-aio's set_event_notifier(): a read handler WITHOUT io_poll,
    so that non-blocking polls consult the fd monitor; None removes."""
    ctx.set_event_notifier(e, io_read=handler)


# ---- bounded loops ------------------------------------------------------

def drain(ctx, limit=MAX_ITERATIONS):
    """``while (aio_poll(ctx, false));`` with a bound.  Returns the number
    of iterations that made progress."""
    for i in range(limit):
        if not ctx.poll(False):
            return i
    raise AssertionError(f"poll(False) still made progress after {limit} "
                         f"iterations")


class _Waker:
    """Notify ``ctx`` once ``timeout`` seconds have passed, so that a
    blocking poll() that nothing else would wake returns and the caller
    can fail instead of hanging."""

    def __init__(self, ctx, timeout):
        self._ctx = ctx
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(timeout,),
                                        daemon=True)
        self._thread.start()

    def _run(self, timeout):
        while not self._cancelled.wait(timeout):
            try:
                self._ctx.notify()
            except ValueError:      # closed meanwhile
                return

    def cancel(self):
        self._cancelled.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.cancel()


def run_until(ctx, pred, timeout=5.0, blocking=True):
    """Call ``ctx.poll(blocking)`` until ``pred()`` is true.  Fails after
    ``timeout`` seconds (scaled) or MAX_ITERATIONS iterations."""
    deadline = time.monotonic() + scaled(timeout)
    with _Waker(ctx, scaled(timeout)):
        for _ in range(MAX_ITERATIONS):
            if pred():
                return
            if time.monotonic() > deadline:
                break
            ctx.poll(blocking)
    if pred():
        return
    raise AssertionError(f"condition not reached within {scaled(timeout)} s")


def bounded_poll(ctx, ms=5):
    """A ``poll(True)`` that waits at most about ``ms`` milliseconds: a
    REALTIME timer bounds the wait.  Arming the timer notifies the context,
    which would make the blocking poll return at once, so a ``poll(False)``
    accepts that notification first.  Returns the blocking poll's result
    (True when only the timer fired, too)."""
    timer = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS,
                          lambda: None)
    timer.mod(cevent.clock_ns() + ms * NS_PER_MS)
    try:
        ctx.poll(False)
        return ctx.poll(True)
    finally:
        timer.delete()


def settle(ctx, iterations=3):
    """A few non-blocking polls, e.g. so that io_uring reaps the
    completions of handler removals (their nodes, and the Python callables
    they hold, are freed only then), followed by gc.collect()."""
    for _ in range(iterations):
        ctx.poll(False)
    gc.collect()


def wait_until_inactive(ctx, data, timeout=5.0):
    """QEMU's wait_until_inactive(): ``poll(true)`` while data.active > 0."""
    run_until(ctx, lambda: data.active <= 0, timeout)


def poll_until(ctx, pred, timeout=5.0):
    """``while (!pred) aio_poll(ctx, true);`` as the QEMU tests write it."""
    run_until(ctx, pred, timeout)


# ---- the GSource path ---------------------------------------------------

def timeout_ns_to_ms(ns):
    """qemu_timeout_ns_to_ms(): -1 stays -1, else round up to ms."""
    if ns < 0:
        return -1
    if ns == 0:
        return 0
    return min(-(-ns // NS_PER_MS), 2**31 - 1)


def iterate(ctx, may_block, max_block=5.0):
    """One ``g_main_context_iteration(NULL, may_block)`` of a GLib loop
    holding only ``ctx``'s source: prepare, poll ``ctx.fileno()``, check
    (``pending()``), dispatch.  Returns whether dispatch ran.

    The wait is rounded up to ms as GLib does, so timers never fire early.
    A wait longer than ``max_block`` seconds (scaled), infinite ones
    included, is cut there, and fails the test if nothing became ready:
    such an iteration would have hung.
    """
    fd = ctx.fileno()
    if ctx.prepare():
        ctx.dispatch()
        return True
    timeout_ms = timeout_ns_to_ms(ctx.compute_timeout()) if may_block else 0
    cap_ms = int(scaled(max_block) * 1000)
    capped = timeout_ms < 0 or timeout_ms > cap_ms
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    events = poller.poll(cap_ms if capped else timeout_ms)
    if capped and not events:
        # Let check() disarm the notification protocol before failing.
        ctx.pending()
        raise AssertionError(
            f"iterate(may_block=True) would block for "
            f"{'ever' if timeout_ms < 0 else f'{timeout_ms} ms'}")
    if ctx.pending():
        ctx.dispatch()
        return True
    return False


def drain_source(ctx, limit=MAX_ITERATIONS):
    """``while (g_main_context_iteration(NULL, false));`` with a bound."""
    for i in range(limit):
        if not iterate(ctx, False):
            return i
    raise AssertionError(f"iterate(False) still dispatched after {limit} "
                         f"iterations")


def iterate_until(ctx, pred, timeout=5.0):
    """``while (!pred) g_main_context_iteration(NULL, true);`` bounded."""
    deadline = time.monotonic() + scaled(timeout)
    for _ in range(MAX_ITERATIONS):
        if pred():
            return
        if time.monotonic() > deadline:
            break
        iterate(ctx, True, max_block=timeout)
    if pred():
        return
    raise AssertionError(f"condition not reached within {scaled(timeout)} s")


# ---- descriptors --------------------------------------------------------

def readable(fd):
    """Whether fd is readable right now."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Counter:
    """A callable that counts its calls and records their arguments."""

    def __init__(self, action=None):
        self.calls = []
        self.action = action

    def __call__(self, *args):
        self.calls.append(args)
        if self.action is not None:
            return self.action(*args)
        return None

    @property
    def n(self):
        return len(self.calls)


def virtual_now():
    return cevent.clock_ns(cevent.CLOCK_VIRTUAL)


def realtime_now():
    return cevent.clock_ns(cevent.CLOCK_REALTIME)


def warm_up_polling(ctx, max_ns):
    """Turn adaptive polling on and let ``ctx.poll_ns`` reach ``max_ns``.

    QEMU grows poll_ns after a blocking poll() that took less than
    poll_max_ns.  A REALTIME timer ends a few short waits; the growth factor
    is big enough to go from the first step (4 us) to max_ns at once.
    """
    ctx.set_poll_params(max_ns, grow=max_ns)
    fired = []
    timer = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, lambda: fired.append(1))
    try:
        for _ in range(50):
            if ctx.poll_ns >= max_ns:
                return
            del fired[:]
            timer.mod(cevent.clock_ns() + max_ns // 10)
            for _ in range(1000):
                if fired:
                    break
                ctx.poll(True)
    finally:
        timer.delete()
    raise AssertionError(f"poll_ns stayed at {ctx.poll_ns} (max {max_ns})")


# ---- signals during a blocking poll() -------------------------------------

class Killer:
    """Send ``sig`` to this process from another thread after ``delay``
    seconds; ``sent`` is the monotonic time of the kill."""

    def __init__(self, sig, delay):
        self.sent = None
        self._thread = threading.Thread(target=self._run, args=(sig, delay))
        self._thread.start()

    def _run(self, sig, delay):
        time.sleep(delay)
        self.sent = time.monotonic()
        os.kill(os.getpid(), sig)

    def join(self):
        self._thread.join()


class Alarm:
    """SIGALRM to this thread after ``delay`` seconds (``setitimer``);
    ``sent`` is when it is due."""

    def __init__(self, delay):
        self.sent = time.monotonic() + delay
        signal.setitimer(signal.ITIMER_REAL, delay)

    def join(self):
        pass


def interrupted_poll(ctx, signaller, expected):
    """Block in ``ctx.poll(True)`` until the signal that ``signaller`` (a
    Killer or an Alarm, made after the caller drained ``ctx``) sends makes
    its handler raise ``expected``; return the seconds from the signal to
    poll() raising.  ``signaller.entered`` is set to the monotonic time
    just before poll() was called (None if the signal's exception came
    before that)."""
    import pytest

    assert threading.current_thread() is threading.main_thread()
    signaller.entered = None
    deadline = time.monotonic() + scaled(30)
    try:
        # entered is taken inside the block: on a loaded machine the signal
        # may come before poll() is entered, and must not escape the test.
        # A poll that returns before the signal came (woken by something
        # else on a loaded machine) is followed by another, so that the
        # signal always finds the test waiting for it.
        with pytest.raises(expected):
            while time.monotonic() < deadline:
                signaller.entered = time.monotonic()
                ctx.poll(True)
        end = time.monotonic()
    finally:
        signaller.join()
    if signaller.entered is None:
        return end - signaller.sent
    return end - max(signaller.entered, signaller.sent)


def checked_loop(backend):
    """Generator of a loop fixture: a cevent.Loop on ``backend``, closed at
    teardown (its default executor shut down first), after which the live
    callback records and contexts must be back where they were."""
    from cevent import _cevent

    gc.collect()
    before = _cevent._live_counts()
    lp = cevent.new_event_loop(backend=backend)
    asyncio.set_event_loop(None)
    yield lp
    if not lp.is_closed():
        if lp._default_executor is not None:
            lp.run_until_complete(lp.shutdown_default_executor())
        lp.close()
    del lp
    gc.collect()
    assert _cevent._live_counts() == before


def run(loop, coro, timeout=10.0):
    """``coro`` to completion on ``loop``, within ``timeout`` seconds
    (times CEVENT_TEST_TIMEOUT_MULTIPLIER)."""
    return loop.run_until_complete(asyncio.wait_for(coro, scaled(timeout)))


def echo_subprocess(loop):
    """Run ``sh -c 'echo hi'`` on ``loop``: (its stdout, its exit code)."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", "echo hi",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out, proc.returncode
    return run(loop, main())


class Recorder(asyncio.Protocol):
    """Keeps what the transport reports; ``eof_received()`` returns
    ``keep_open`` (False: asyncio closes the transport)."""

    def __init__(self):
        self.chunks = []
        self.eof = False
        self.keep_open = False
        self.lost = asyncio.get_running_loop().create_future()

    def data(self):
        return b"".join(self.chunks)

    def data_received(self, data):
        self.chunks.append(data)

    def eof_received(self):
        self.eof = True
        return self.keep_open

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def accepted(loop, protocol=Recorder):
    """A transport of ``loop`` on one end of a socketpair, its protocol and
    the other end (non-blocking)."""
    a, b = socket.socketpair()
    b.setblocking(False)
    transport, proto = await loop.connect_accepted_socket(protocol, a)
    return transport, proto, b
