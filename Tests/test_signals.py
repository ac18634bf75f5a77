"""Signals during poll(), on every backend.

* SIGINT and SIGTERM sent by another thread while ``poll(True)`` blocks in
  the fd monitor: the Python handler runs, and the exception it raises
  (``KeyboardInterrupt`` for SIGINT's default handler) comes out of
  ``poll()`` within 100 ms (times CEVENT_TEST_TIMEOUT_MULTIPLIER).
* The same while ``poll(True)`` busy-polls a native ``MemoryPoller``
  without the GIL (adaptive polling grown to ``poll_max_ns``): the signal
  is noticed when the spin ends, and the wait that would follow is
  skipped.  With ``poll_max_ns`` up to 50 ms that meets the 100 ms bound;
  a longer spin delays the exception to its end (see the xfail test).
* A handler that returns normally: poll() goes on; a blocking poll()
  woken by the signal returns False (no progress).
* ``signal.set_wakeup_fd`` with the read end registered as an fd handler:
  the signal number arrives as a byte and the handler reads it.
"""

import signal
import socket
import threading
import time

import pytest

import cevent
from support import MULTIPLIER, Killer, drain, interrupted_poll, scaled

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers run in the main thread only")

BOUND = 0.1 * MULTIPLIER


class Terminated(Exception):
    pass


@pytest.fixture
def handlers():
    """SIGINT -> KeyboardInterrupt (recording), SIGTERM -> Terminated."""
    calls = []

    def on_sigint(signum, frame):
        calls.append(signum)
        raise KeyboardInterrupt

    def on_sigterm(signum, frame):
        calls.append(signum)
        raise Terminated

    old_int = signal.signal(signal.SIGINT, on_sigint)
    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


EXPECTED = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_during_blocking_poll(backend, handlers, sig):
    ctx = cevent.AioContext(backend)
    r, w = socket.socketpair()
    try:
        # an fd handler and a distant timer, as a real loop would have
        ctx.set_fd_handler(r, io_read=lambda: r.recv(100))
        t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, print)
        t.mod(cevent.clock_ns() + 3600 * 10**9)
        drain(ctx)
        latency = interrupted_poll(ctx, Killer(sig, 0.05), EXPECTED[sig])
        assert handlers == [sig]
        assert latency < BOUND
        # still usable
        w.send(b"x")
        deadline = time.monotonic() + scaled(5)
        while not ctx.poll(True):
            assert time.monotonic() < deadline
        t.delete()
        ctx.set_fd_handler(r)
    finally:
        ctx.close()
        r.close()
        w.close()


def _grow_spin(ctx, max_ns):
    """Ramp the adaptive polling time up to max_ns with blocking polls
    bounded by REALTIME timers (each iteration blocks longer than poll_ns
    but less than max_ns, so poll_ns grows, by 100 each time)."""
    ctx.set_poll_params(max_ns, grow=100)
    drain(ctx)
    t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, lambda: None)
    try:
        for _ in range(20):
            if ctx.poll_ns >= max_ns:
                break
            block = min(max(2 * ctx.poll_ns, 1_000_000), max_ns * 9 // 10)
            t.mod(cevent.clock_ns() + block)
            deadline = time.monotonic() + scaled(5)
            while t.pending:
                ctx.poll(True)
                assert time.monotonic() < deadline
        assert ctx.poll_ns == max_ns
    finally:
        t.delete()


class SpinningContext:
    """A context whose poll(True) busy-polls a native MemoryPoller (GIL
    released) for poll_max_ns before it would block."""

    def __init__(self, backend, max_ns):
        self.ctx = cevent.AioContext(backend)
        self.buf = bytearray(8)
        self.e = cevent.EventNotifier()
        self.ready = []
        self.poller = cevent.MemoryPoller(self.buf)
        self.ctx.set_event_notifier(
            self.e, io_read=lambda e: e.test_and_clear(),
            io_poll=self.poller, io_poll_ready=self.ready.append)
        # an fd-driven dispatch puts the handler on the poll list
        deadline = time.monotonic() + scaled(5)
        self.e.set()
        while not self.ctx.poll(True):
            assert time.monotonic() < deadline
        _grow_spin(self.ctx, max_ns)

    def close(self):
        self.ctx.set_event_notifier(self.e)
        self.ctx.close()
        self.e.close()
        self.poller = None


def _signal_during_spin(backend, handlers, sig, max_ns, delay):
    spin = SpinningContext(backend, max_ns)
    try:
        ctx = spin.ctx
        drain(ctx)
        ctx.poll(False)
        for _ in range(5):
            polling = ctx.stats()["polling_ns"]
            killer = Killer(sig, delay)
            latency = interrupted_poll(ctx, killer, EXPECTED[sig])
            spun = ctx.stats()["polling_ns"] - polling
            # the delay runs from the Killer's start, and a loaded machine
            # may enter poll() late: what the spin must have covered is
            # the time from poll() being entered to the signal.  A signal
            # that beat poll() tests nothing here, and neither does one
            # that came while the loaded machine kept this thread from
            # spinning (it was spinning for less than 90% of that time),
            # so such a round is redone.
            if killer.entered is not None and killer.sent > killer.entered \
                    and spun >= (killer.sent - killer.entered) * 1e9 * 0.9:
                break
            handlers.clear()
        else:
            pytest.fail("in 5 rounds the signal never came while poll() "
                        "was spinning")
        assert spin.ready == []
        # still usable: a store to the polled word is seen by the spin
        spin.buf[0] ^= 1
        deadline = time.monotonic() + scaled(5)
        while not spin.ready:
            ctx.poll(True)
            assert time.monotonic() < deadline
        return latency
    finally:
        spin.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_during_polling_spin(backend, handlers, sig):
    """poll_max_ns = 50 ms (1500 times QEMU's IOThread default): the
    signal arrives 20 ms into the GIL-free spin; the exception surfaces
    when the spin ends, without blocking in the fd monitor afterwards."""
    latency = _signal_during_spin(backend, handlers, sig, 50_000_000, 0.02)
    assert handlers == [sig]
    assert latency < BOUND


def test_signal_during_long_polling_spin(backend, handlers):
    """poll_max_ns = 1 s: the spin is cut into 10 ms slices between which
    the binding looks at pending signals, so KeyboardInterrupt surfaces
    within a slice rather than when the whole spin ends."""
    latency = _signal_during_spin(backend, handlers, signal.SIGINT,
                                  1_000_000_000, 0.05)
    assert latency < BOUND


def test_signal_handler_returns_normally(backend):
    """A handler that does not raise: it runs during the wait, and poll()
    carries on (a blocking poll() woken by it makes no progress)."""
    ctx = cevent.AioContext(backend)
    got = []
    old = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    try:
        drain(ctx)
        bh = ctx.bh_new(lambda: got.append("bh"))
        killer = Killer(signal.SIGTERM, 0.03)
        timer = threading.Timer(0.2, bh.schedule)
        timer.start()
        try:
            deadline = time.monotonic() + scaled(5)
            while not ctx.poll(True):
                assert time.monotonic() < deadline
        finally:
            killer.join()
            timer.join()
        assert got == [signal.SIGTERM, "bh"]
        bh.delete()
    finally:
        signal.signal(signal.SIGTERM, old)
        ctx.close()


def test_set_wakeup_fd(backend):
    """signal.set_wakeup_fd with a socketpair whose read end is an fd
    handler of the context: the signal's byte arrives and the handler sees
    it; the Python handler runs too."""
    ctx = cevent.AioContext(backend)
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    got = []
    seen = bytearray()

    def on_read():
        try:
            seen.extend(r.recv(100))
        except BlockingIOError:
            pass

    old_handler = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    old_fd = signal.set_wakeup_fd(w.fileno())
    try:
        ctx.set_fd_handler(r, io_read=on_read)
        drain(ctx)
        killer = Killer(signal.SIGTERM, 0.05)
        try:
            deadline = time.monotonic() + scaled(5)
            while signal.SIGTERM not in seen:
                ctx.poll(True)
                assert time.monotonic() < deadline
            end = time.monotonic()
        finally:
            killer.join()
        assert end - killer.sent < BOUND
        assert bytes(seen) == bytes([signal.SIGTERM])
        assert got == [signal.SIGTERM]
        ctx.set_fd_handler(r)
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGTERM, old_handler)
        ctx.close()
        r.close()
        w.close()
