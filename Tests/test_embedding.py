"""Embedding an AioContext in another event loop, by both protocols.

* The plain protocol: wait until ``ctx.fileno()`` is readable, for at most
  ``ctx.compute_timeout()`` ns, then ``ctx.poll(False)``; again and again.
  This is what an asyncio ``add_reader``, a Qt ``QSocketNotifier``, a libuv
  ``uv_poll`` or a :mod:`selectors` loop does.
* The GLib protocol: ``prepare()``, wait on ``fileno()``, ``pending()``,
  ``dispatch()`` (QEMU's GSource prepare/check/dispatch).

In both, work handed over by another thread (``notify()``,
``BH.schedule()``, ``bh_schedule_oneshot()``, ``Timer.mod*()``,
``clock_step()``, ``set_fd_handler()``) must wake the embedder at every
point of its cycle: before it looks for work, between that look and its
wait, and during the wait.  Once the work is done the fd must not stay
readable, or the embedding loop would spin.  Every wait here is bounded, so
a lost wake-up fails the test instead of hanging it.
"""

import asyncio
import select
import socket
import threading
import time

import pytest

import cevent

from support import NS_PER_MS, readable, realtime_now, scaled, virtual_now

#: How long a wait may take before the wake-up counts as lost.
WAIT_S = 5.0

#: How long the handing-over thread sleeps before it acts "during the wait".
DURING_S = 0.05

POINTS = ["before_check", "between_check_and_wait", "during_wait"]


def wait_fd(fd, timeout_ns):
    """Wait until @fd is readable for at most @timeout_ns (-1: no bound),
    capped at WAIT_S.  Returns whether it became readable."""
    cap_ms = int(scaled(WAIT_S) * 1000)
    if timeout_ns < 0:
        ms = cap_ms
    else:
        ms = min(-(-timeout_ns // NS_PER_MS), cap_ms)
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(ms))


class Handover:
    """One kind of work handed to ``ctx`` by another thread: ``arm()`` sets
    it up on the home thread, ``give()`` runs on the other thread, ``done()``
    tells whether the embedder did the work, ``close()`` tears it down."""

    def __init__(self, ctx, kind):
        self.ctx = ctx
        self.kind = kind
        self.ran = []
        self.sock = None
        if kind == "bh_schedule":
            self.bh = ctx.bh_new(lambda: self.ran.append("bh"))
        elif kind == "timer_mod":
            self.timer = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS,
                                       lambda: self.ran.append("timer"))
        elif kind == "clock_step":
            self.timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                                       lambda: self.ran.append("timer"))
            # Far enough that only the step can make it due.
            self.timer.mod(virtual_now() + 3600 * 10**9)
        elif kind == "set_fd_handler":
            self.sock, self.peer = socket.socketpair()
            self.sock.setblocking(False)
            self.peer.send(b"x")        # readable from the start

    def give(self):
        if self.kind == "notify":
            self.ctx.notify()
        elif self.kind == "bh_schedule":
            self.bh.schedule()
        elif self.kind == "bh_schedule_oneshot":
            self.ctx.bh_schedule_oneshot(lambda: self.ran.append("oneshot"))
        elif self.kind == "timer_mod":
            self.timer.mod(realtime_now())
        elif self.kind == "clock_step":
            self.ctx.clock_step(3600 * 10**9)
        elif self.kind == "set_fd_handler":
            self.ctx.set_fd_handler(self.sock.fileno(), io_read=self.on_read)

    def on_read(self):
        self.ran.append(self.sock.recv(16))
        self.ctx.set_fd_handler(self.sock.fileno())

    def done(self):
        # notify() is not work: it only wakes the embedder.
        return self.kind == "notify" or len(self.ran) == 1

    def close(self):
        if self.kind == "bh_schedule":
            self.bh.delete()
        elif self.kind in ("timer_mod", "clock_step"):
            self.timer.delete()
        elif self.kind == "set_fd_handler":
            self.ctx.set_fd_handler(self.sock.fileno())
            self.sock.close()
            self.peer.close()


KINDS = ["notify", "bh_schedule", "bh_schedule_oneshot", "timer_mod",
         "clock_step", "set_fd_handler"]


def in_thread(fn, delay=0.0):
    """Run @fn on another thread after @delay seconds."""
    def run():
        if delay:
            time.sleep(delay)
        fn()
    t = threading.Thread(target=run)
    t.start()
    return t


def quiesce(ctx, fd):
    """Run what a fresh context has pending (it starts notified) until
    fileno() is quiet."""
    for _ in range(100):
        ctx.poll(False)
        if not readable(fd):
            return
    raise AssertionError("fileno() stays readable with nothing to do")


# ---- the plain protocol -------------------------------------------------

def plain_cycle(ctx, fd, handover, point):
    """One cycle of the plain embedder with the hand-over at @point.
    Returns whether the wait ended with fileno() readable."""
    thread = None
    if point == "before_check":
        in_thread(handover.give).join()
    timeout = ctx.compute_timeout()
    if point == "between_check_and_wait":
        in_thread(handover.give).join()
    elif point == "during_wait":
        thread = in_thread(handover.give, DURING_S)
    try:
        woke = timeout == 0 or wait_fd(fd, timeout)
    finally:
        if thread is not None:
            thread.join()
    ctx.poll(False)
    return woke


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_plain_protocol_wakes(ctx, kind, point):
    fd = ctx.fileno()
    handover = Handover(ctx, kind)
    quiesce(ctx, fd)
    try:
        assert not readable(fd)
        assert plain_cycle(ctx, fd, handover, point), \
            f"{kind} at {point}: the embedder was never woken"
        assert handover.done(), handover.ran
        # The work is done: the embedding loop must not spin.
        assert not readable(fd)
        assert ctx.compute_timeout() != 0 or kind == "set_fd_handler"
    finally:
        handover.close()


@pytest.mark.valgrind
def test_plain_protocol_issue_example(ctx):
    """A BH scheduled from a timer thread wakes a select.poll() wait."""
    fd = ctx.fileno()
    while ctx.poll(False):
        pass
    ran = []
    bh = ctx.bh_new(lambda: ran.append(1))
    t = threading.Timer(0.05, bh.schedule)
    t.start()
    try:
        assert ctx.compute_timeout() == -1
        assert wait_fd(fd, -1)
        assert ctx.poll(False) is True
        assert ran == [1]
        assert not readable(fd)
    finally:
        t.join()
        bh.delete()


@pytest.mark.valgrind
def test_plain_protocol_notify_then_quiet(ctx):
    """notify() after a poll(False) makes fileno() readable; one
    poll(False) consumes it (not progress)."""
    fd = ctx.fileno()
    quiesce(ctx, fd)
    ctx.notify()
    assert readable(fd)
    assert ctx.poll(False) is False
    assert not readable(fd)


def test_plain_protocol_all_handlers_poll(ctx):
    """With every handler polling (an io_poll each), a non-blocking poll()
    would skip the fds; embedded, it reads them, so a ready handler runs
    and fileno() goes quiet."""
    fd = ctx.fileno()
    e = cevent.EventNotifier()
    reads = []
    ctx.set_event_notifier(e, io_read=lambda n: reads.append(
        n.test_and_clear()), io_poll=lambda n: False)
    try:
        quiesce(ctx, fd)
        in_thread(e.set).join()
        assert readable(fd)
        assert ctx.poll(False) is True
        assert reads == [True]
        assert not readable(fd)
    finally:
        ctx.set_event_notifier(e)
        e.close()


def test_plain_protocol_timer_deadline(ctx):
    """A timer due in 20 ms: compute_timeout() bounds the wait, and the
    poll(False) after it runs the timer."""
    fd = ctx.fileno()
    quiesce(ctx, fd)
    ran = []
    t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_MS,
                      lambda: ran.append(1))
    t.mod(realtime_now() // NS_PER_MS + 20)
    deadline = time.monotonic() + scaled(WAIT_S)
    try:
        while not ran and time.monotonic() < deadline:
            timeout = ctx.compute_timeout()
            assert timeout != -1
            wait_fd(fd, timeout)
            ctx.poll(False)
        assert ran == [1]
        assert not readable(fd)
    finally:
        t.delete()


# ---- the GLib protocol --------------------------------------------------

def glib_cycle(ctx, fd, handover, point):
    """One GLib iteration (prepare, wait, check, dispatch) with the
    hand-over at @point.  Returns whether dispatch() ran."""
    thread = None
    if point == "before_check":
        in_thread(handover.give).join()
    if ctx.prepare():
        ctx.dispatch()
        return True
    timeout = ctx.compute_timeout()
    if point == "between_check_and_wait":
        in_thread(handover.give).join()
    elif point == "during_wait":
        thread = in_thread(handover.give, DURING_S)
    try:
        wait_fd(fd, timeout)
    finally:
        if thread is not None:
            thread.join()
    if ctx.pending():
        ctx.dispatch()
        return True
    return False


# A bare notify() before prepare() is no work, and prepare() absorbs it,
# as in QEMU (test_glib_notify_before_prepare_is_absorbed).
GLIB_CASES = [(k, p) for k in KINDS for p in POINTS
              if (k, p) != ("notify", "before_check")]


@pytest.mark.parametrize("kind,point", GLIB_CASES)
def test_glib_protocol_wakes(ctx, kind, point):
    fd = ctx.fileno()
    handover = Handover(ctx, kind)
    quiesce(ctx, fd)
    try:
        start = time.monotonic()
        assert glib_cycle(ctx, fd, handover, point), \
            f"{kind} at {point}: the iteration did not dispatch"
        assert time.monotonic() - start < scaled(WAIT_S) / 2, \
            f"{kind} at {point}: the wake-up was late or lost"
        assert handover.done(), handover.ran
        assert not readable(fd)
    finally:
        handover.close()


@pytest.mark.valgrind
def test_glib_notify_before_prepare_is_absorbed(ctx):
    """QEMU's GSource: notify_me is raised only from prepare() to
    pending(), so a notify() before prepare() does not make the fd readable
    after it, even once the plain protocol armed it."""
    fd = ctx.fileno()
    quiesce(ctx, fd)                    # poll(False) leaves it armed
    ctx.notify()
    assert readable(fd)                 # a plain embedder would wake
    assert ctx.prepare() is False
    assert not readable(fd)
    ctx.notify()                        # between prepare() and pending()
    assert readable(fd)
    assert ctx.pending() is True        # the notifier is ready
    ctx.dispatch()
    assert not readable(fd)


# ---- a real foreign loop ------------------------------------------------

def test_asyncio_add_reader_bh_ping_pong(backend):
    """asyncio's own loop embeds the context with add_reader(fileno())
    driving poll(False); another thread schedules a BH, waits for it to
    run, and schedules it again, 10,000 times, with no stall and no spin."""
    n = 10_000
    ctx = cevent.AioContext(backend)
    loop = asyncio.SelectorEventLoop()
    ran = 0
    reader_calls = 0
    pong = threading.Event()
    stalled = []

    def on_bh():
        nonlocal ran
        ran += 1
        pong.set()

    def on_readable():
        nonlocal reader_calls
        reader_calls += 1
        ctx.poll(False)
        if ran == n and not done.done():
            done.set_result(None)

    def pinger():
        for i in range(n):
            bh.schedule()
            if not pong.wait(scaled(WAIT_S)):
                stalled.append(i)
                return
            pong.clear()

    try:
        fd = ctx.fileno()
        quiesce(ctx, fd)
        bh = ctx.bh_new(on_bh)
        done = loop.create_future()
        loop.add_reader(fd, on_readable)
        thread = threading.Thread(target=pinger)
        thread.start()
        try:
            loop.run_until_complete(
                asyncio.wait_for(done, scaled(60)))
        finally:
            pong.set()
            thread.join()
        assert stalled == [], f"stalled at round trip {stalled}"
        assert ran == n
        # Woken once per BH at most, plus a few notifications: no spin.
        assert reader_calls <= 2 * n, reader_calls
        loop.remove_reader(fd)
        bh.delete()
    finally:
        loop.close()
        ctx.close()


def test_asyncio_add_reader_self_rescheduling_bh(backend):
    """Work that a callback leaves for the next poll(False) (a BH that
    schedules itself) keeps fileno() readable, so an outer loop that only
    watches the fd (no compute_timeout()) still runs it all."""
    n = 1000
    ctx = cevent.AioContext(backend)
    loop = asyncio.SelectorEventLoop()
    ran = 0

    def on_bh():
        nonlocal ran
        ran += 1
        if ran < n:
            bh.schedule()
        else:
            done.set_result(None)

    try:
        fd = ctx.fileno()
        quiesce(ctx, fd)
        bh = ctx.bh_new(on_bh)
        done = loop.create_future()
        loop.add_reader(fd, ctx.poll, False)
        bh.schedule()
        loop.run_until_complete(asyncio.wait_for(done, scaled(30)))
        assert ran == n
        ctx.poll(False)
        assert not readable(fd)
        loop.remove_reader(fd)
        bh.delete()
    finally:
        loop.close()
        ctx.close()


def test_quiet_after_callback_notifies(ctx):
    """A notification raised by a callback during poll(False) (removing its
    own handler) leaves no work, so fileno() is quiet afterwards."""
    fd = ctx.fileno()
    r, w = socket.socketpair()
    r.setblocking(False)

    def on_read():
        r.recv(16)
        ctx.set_fd_handler(r)

    try:
        ctx.set_fd_handler(r, io_read=on_read)
        quiesce(ctx, fd)
        w.send(b"x")
        assert readable(fd)
        assert ctx.poll(False) is True
        assert not readable(fd)
    finally:
        ctx.set_fd_handler(r)
        r.close()
        w.close()
