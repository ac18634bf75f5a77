"""The order in which cevent.Loop runs callbacks, against asyncio's own loop.

asyncio's iteration is: poll, then run the handles queued before the poll,
then the reader and writer callbacks that poll found, then the timers that
are due; what those callbacks queue runs in the next iteration.  cevent.Loop
may run fd callbacks as the poll finds them (when nothing was queued before
them), but the relative order must be asyncio's.  Each scenario below runs
on a cevent.Loop (every backend) and on asyncio.SelectorEventLoop in the
same test, and the two orders must be equal.
"""

import asyncio
import logging
import re
import socket
import threading
import time

import pytest

import cevent

from support import scaled

#: Every scenario ends by itself well before this (the loop is stopped by a
#: timer); it is a bound, not a wait.
STOP_S = 0.15


class Scenario:
    """A run of a loop that records what ran in ``seen``."""

    def __init__(self, loop):
        self.loop = loop
        self.seen = []
        self.socks = []

    def note(self, name, then=None):
        def cb(*args):
            self.seen.append(name)
            if then is not None:
                then()
        return cb

    def readable_pair(self):
        """A connected pair whose first end has a byte to read."""
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        w.send(b"x")
        self.socks += [r, w]
        return r, w

    def reader(self, sock, name, then=None):
        def cb():
            self.seen.append(name)
            sock.recv(16)
            self.loop.remove_reader(sock)
            if then is not None:
                then()
        self.loop.add_reader(sock, cb)

    def writer(self, sock, name, then=None):
        def cb():
            self.seen.append(name)
            self.loop.remove_writer(sock)
            if then is not None:
                then()
        self.loop.add_writer(sock, cb)

    def run(self, stop_after=STOP_S):
        self.loop.call_later(scaled(stop_after), self.loop.stop)
        self.loop.run_forever()
        for s in self.socks:
            s.close()
        return self.seen


def sc_reader_after_call_soon(s):
    r, _ = s.readable_pair()
    s.reader(r, "reader")
    s.loop.call_soon(s.note("call_soon"))


def sc_writer_after_call_soon(s):
    _, w = s.readable_pair()
    s.writer(w, "writer")
    s.loop.call_soon(s.note("call_soon"))


def sc_reader_and_writer_of_one_fd(s):
    r, _ = s.readable_pair()
    s.reader(r, "reader")
    s.writer(r, "writer")
    s.loop.call_soon(s.note("call_soon"))


def sc_reader_then_due_timer(s):
    """Nothing queued before the poll: the reader, then the due timer, then
    what the reader queued."""
    r, _ = s.readable_pair()
    s.reader(r, "reader", then=lambda: s.loop.call_soon(s.note("queued")))
    s.loop.call_at(s.loop.time() - 1, s.note("timer"))


def sc_call_soon_reader_timer(s):
    r, _ = s.readable_pair()
    s.reader(r, "reader", then=lambda: s.loop.call_soon(s.note("queued")))
    s.loop.call_at(s.loop.time() - 1, s.note("timer"))
    s.loop.call_soon(s.note("call_soon"))


def sc_reader_schedules_due_timer(s):
    """A timer that a reader schedules, already due, waits for the next
    iteration: it runs after what the reader queued."""
    r, _ = s.readable_pair()

    def then():
        s.loop.call_later(0, s.note("later_0"))
        s.loop.call_soon(s.note("queued"))
    s.reader(r, "reader", then=then)


def sc_two_readers_queue(s):
    """Two readers found by one poll both run before what the first one
    queued."""
    r1, _ = s.readable_pair()
    r2, _ = s.readable_pair()
    s.reader(r1, "reader",
             then=lambda: s.loop.call_soon(s.note("queued")))
    s.reader(r2, "reader")


def sc_writer_then_due_timer(s):
    _, w = s.readable_pair()
    s.writer(w, "writer", then=lambda: s.loop.call_soon(s.note("queued")))
    s.loop.call_at(s.loop.time() - 1, s.note("timer"))


def sc_threadsafe_before_data(s):
    """Another thread queues a handle, then makes a reader ready, while the
    loop waits: the handle runs first."""
    r, w = socket.socketpair()
    r.setblocking(False)
    s.socks += [r, w]
    s.reader(r, "reader")

    def other():
        time.sleep(0.05)
        s.loop.call_soon_threadsafe(s.note("threadsafe"))
        w.send(b"x")
    t = threading.Thread(target=other)
    t.start()
    s.loop.call_later(scaled(STOP_S) - 0.01, t.join)


def sc_reader_stops_loop(s):
    """A reader that stops the loop: its iteration ends, and what it
    queued waits for the next run (here: never runs)."""
    r, _ = s.readable_pair()

    def then():
        s.loop.call_soon(s.note("queued"))
        s.loop.stop()
    s.reader(r, "reader", then=then)
    s.loop.call_soon(s.note("call_soon"))


def sc_queued_before_then_reader_chain(s):
    """Handles queued before the poll, a reader whose queued handle
    queues another: the order holds across the iterations."""
    r, _ = s.readable_pair()

    def then():
        s.loop.call_soon(s.note("queued", then=lambda: s.loop.call_soon(
            s.note("queued by queued"))))
    s.reader(r, "reader", then=then)
    s.loop.call_soon(s.note("call_soon 1"))
    s.loop.call_soon(s.note("call_soon 2"))


SCENARIOS = [sc_reader_stops_loop, sc_queued_before_then_reader_chain,
             sc_reader_after_call_soon, sc_writer_after_call_soon,
             sc_reader_and_writer_of_one_fd, sc_reader_then_due_timer,
             sc_call_soon_reader_timer, sc_reader_schedules_due_timer,
             sc_two_readers_queue, sc_writer_then_due_timer,
             sc_threadsafe_before_data]


def run_scenario(loop, scenario):
    try:
        s = Scenario(loop)
        scenario(s)
        return s.run()
    finally:
        loop.close()


@pytest.mark.parametrize("debug", [False, True], ids=["", "debug"])
@pytest.mark.parametrize("scenario", SCENARIOS,
                         ids=[f.__name__[3:] for f in SCENARIOS])
def test_order_as_asyncio(backend, scenario, debug):
    ref_loop = asyncio.SelectorEventLoop()
    ref_loop.set_debug(debug)
    expected = run_scenario(ref_loop, scenario)
    loop = cevent.new_event_loop(backend=backend)
    loop.set_debug(debug)
    got = run_scenario(loop, scenario)
    assert got == expected
    assert len(expected) >= 2


def test_issue_example(backend):
    """A handle queued before the poll runs before the reader it finds."""
    loop = cevent.new_event_loop(backend=backend)
    try:
        seen = []
        r, w = socket.socketpair()
        r.setblocking(False)
        w.send(b"x")
        loop.add_reader(r, lambda: (seen.append("reader"), r.recv(1),
                                    loop.remove_reader(r)))
        loop.call_soon(seen.append, "call_soon")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert seen == ["call_soon", "reader"]
        r.close()
        w.close()
    finally:
        loop.close()


# ---- the handles of call_later/call_at ------------------------------------

def _schedule(loop, how, cb):
    """One call site for both loops, so that debug-mode source tracebacks
    name the same line."""
    if how == "call_later":
        return loop.call_later(10, cb)
    return loop.call_at(loop.time() + 10, cb)


def _shape(text):
    """Text with the numbers that differ between two runs blanked out."""
    return re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", text)


@pytest.mark.parametrize("debug", [False, True], ids=["", "debug"])
@pytest.mark.parametrize("how", ["call_later", "call_at"])
def test_timer_handle_repr_as_asyncio(backend, how, debug):
    ref = asyncio.SelectorEventLoop()
    loop = cevent.new_event_loop(backend=backend)
    try:
        ref.set_debug(debug)
        loop.set_debug(debug)
        h_ref = _schedule(ref, how, print)
        h = _schedule(loop, how, print)
        assert isinstance(h, asyncio.TimerHandle)
        assert type(h).__name__ == "TimerHandle"
        assert repr(h).startswith("<TimerHandle ")
        assert _shape(repr(h)) == _shape(repr(h_ref))
        h_ref.cancel()
        h.cancel()
        assert _shape(repr(h)) == _shape(repr(h_ref))
        assert h.when() == pytest.approx(h_ref.when(), abs=1.0)
    finally:
        ref.close()
        loop.close()


def _slow_warning(loop, caplog):
    """The debug-mode warning for a slow timer callback, as logged."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.001

    def slow():
        time.sleep(0.01)
        loop.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_later(0.001, slow)
        loop.run_forever()
    msgs = [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("Executing ")]
    assert len(msgs) == 1, msgs
    return msgs[0]


def test_slow_timer_callback_warning_as_asyncio(backend, caplog):
    ref = asyncio.SelectorEventLoop()
    loop = cevent.new_event_loop(backend=backend)
    try:
        expected = _slow_warning(ref, caplog)
        got = _slow_warning(loop, caplog)
        assert got.startswith("Executing <TimerHandle when=")
        assert _shape(got) == _shape(expected)
    finally:
        ref.close()
        loop.close()
