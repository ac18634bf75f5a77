"""AioContext.set_fd_handler: read/write/poll handlers on descriptors
(aio_set_fd_handler and the dispatch rules of aio_dispatch_handler in
Modules/aio-posix.c)."""

import gc
import os
import socket
import threading
import time
import weakref

import pytest

import cevent
from support import Counter, bounded_poll, drain, run_until, scaled, settle

valgrind = pytest.mark.valgrind


@pytest.fixture
def pipe():
    r, w = os.pipe()
    fds = [r, w]
    yield fds
    for fd in fds:
        if fd is not None:
            os.close(fd)


@valgrind
def test_read_handler(ctx, sockpair):
    a, b = sockpair
    got = []
    ctx.set_fd_handler(a.fileno(), io_read=lambda: got.append(a.recv(100)))
    assert ctx.poll(False) is False
    b.send(b"hello")
    assert ctx.poll(True) is True
    assert got == [b"hello"]
    assert ctx.poll(False) is False
    ctx.set_fd_handler(a.fileno())


@valgrind
def test_read_handler_level_triggered(ctx, sockpair):
    a, b = sockpair
    calls = Counter()
    ctx.set_fd_handler(a, io_read=calls)
    b.send(b"x")
    assert ctx.poll(True) is True
    assert ctx.poll(True) is True        # not consumed: reported again
    assert calls.n == 2
    a.recv(1)
    assert ctx.poll(False) is False
    assert calls.n == 2
    ctx.set_fd_handler(a)


@valgrind
def test_write_handler(ctx, sockpair):
    a, _ = sockpair
    calls = Counter()
    ctx.set_fd_handler(a.fileno(), io_write=calls)
    assert ctx.poll(True) is True        # writable at once
    assert calls.calls == [()]
    assert ctx.poll(False) is True
    assert calls.n == 2
    ctx.set_fd_handler(a.fileno())
    assert ctx.poll(False) is False
    assert calls.n == 2


@valgrind
def test_read_and_write_handler(ctx, sockpair):
    a, b = sockpair
    events = []
    ctx.set_fd_handler(a, io_read=lambda: events.append(("r", a.recv(10))),
                       io_write=lambda: events.append(("w",)))
    b.send(b"z")
    assert ctx.poll(True) is True
    assert events == [("r", b"z"), ("w",)]     # read before write
    ctx.set_fd_handler(a, io_write=lambda: events.append(("w2",)))
    events.clear()
    assert ctx.poll(False) is True
    assert events == [("w2",)]
    ctx.set_fd_handler(a)


@valgrind
def test_fileno_objects(ctx, sockpair):
    a, b = sockpair

    class HasFileno:
        def fileno(self):
            return a.fileno()

    got = Counter(lambda: a.recv(10))
    ctx.set_fd_handler(HasFileno(), io_read=got)
    b.send(b"1")
    assert ctx.poll(True) is True
    assert got.n == 1
    # the same fd, given as an int: replaces and then removes
    ctx.set_fd_handler(a.fileno())
    b.send(b"2")
    assert ctx.poll(False) is False
    assert got.n == 1
    a.recv(10)


@valgrind
def test_hup_runs_read_handler(ctx, sockpair):
    a, b = sockpair
    got = []
    ctx.set_fd_handler(a, io_read=lambda: got.append(a.recv(10)))
    b.close()
    assert ctx.poll(True) is True
    assert got == [b""]
    ctx.set_fd_handler(a)


@valgrind
def test_err_runs_read_and_write_handlers(ctx, pipe):
    """ERR (a pipe whose reader went away) runs both callbacks."""
    r, w = pipe
    events = []
    ctx.set_fd_handler(w, io_read=lambda: events.append("r"),
                       io_write=lambda: events.append("w"))
    os.close(r)
    pipe[0] = None
    assert ctx.poll(True) is True
    assert events == ["r", "w"]
    ctx.set_fd_handler(w)


@valgrind
def test_replace_handler(ctx, sockpair):
    a, b = sockpair
    first = Counter(lambda: a.recv(10))
    second = Counter(lambda: a.recv(10))
    ctx.set_fd_handler(a, io_read=first)
    ctx.set_fd_handler(a, io_read=second)
    b.send(b"x")
    assert ctx.poll(True) is True
    assert (first.n, second.n) == (0, 1)
    ctx.set_fd_handler(a)


def test_replace_moves_to_newest():
    """fdmon-poll dispatches the oldest registration first; a replaced
    handler counts as new."""
    ctx = cevent.AioContext("poll")
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        order = []
        for i, (a, b) in enumerate(pairs):
            ctx.set_fd_handler(a, io_read=(lambda i=i, a=a: (
                order.append(i), a.recv(10))))
        for a, b in pairs:
            b.send(b"x")
        assert ctx.poll(True) is True
        assert order == [0, 1, 2]
        a0 = pairs[0][0]
        ctx.set_fd_handler(a0, io_read=lambda: (order.append(0),
                                                 a0.recv(10)))
        order.clear()
        for a, b in pairs:
            b.send(b"x")
        assert ctx.poll(True) is True
        assert order == [1, 2, 0]
        for a, _ in pairs:
            ctx.set_fd_handler(a)
    finally:
        ctx.close()
        for a, b in pairs:
            a.close()
            b.close()


@valgrind
def test_remove_handler(ctx, sockpair):
    a, b = sockpair
    calls = Counter()
    ctx.set_fd_handler(a, io_read=calls)
    ctx.set_fd_handler(a, None, None, None, None)
    b.send(b"x")
    assert ctx.poll(False) is False
    assert calls.n == 0
    # removing an fd that has no handler is not an error
    ctx.set_fd_handler(a)
    ctx.set_fd_handler(b.fileno())


@valgrind
def test_remove_from_own_callback(ctx, sockpair):
    """A handler removed by its read callback: its write callback does not
    run in the same dispatch, and it never runs again."""
    a, b = sockpair
    events = []

    def on_read():
        events.append("r")
        ctx.set_fd_handler(a)

    ctx.set_fd_handler(a, io_read=on_read, io_write=lambda: events.append("w"))
    b.send(b"x")
    assert ctx.poll(True) is True
    assert events == ["r"]
    assert ctx.poll(False) is False
    assert events == ["r"]


@valgrind
def test_remove_other_from_callback(ctx, sockpair):
    a, b = sockpair
    c, d = socket.socketpair()
    try:
        events = []
        ctx.set_fd_handler(a, io_read=lambda: (events.append("a"),
                                               a.recv(1),
                                               ctx.set_fd_handler(c)))
        ctx.set_fd_handler(c, io_read=lambda: (events.append("c"),
                                               c.recv(1),
                                               ctx.set_fd_handler(a)))
        b.send(b"x")
        d.send(b"x")
        assert ctx.poll(True) is True
        # whichever ran first removed the other before its turn
        assert events in (["a"], ["c"])
        ctx.set_fd_handler(a)
        ctx.set_fd_handler(c)
    finally:
        c.close()
        d.close()


@valgrind
def test_io_poll_without_io_poll_ready_is_dropped(ctx, sockpair):
    """io_poll without io_poll_ready is ignored, and the handler counts as
    non-polling: poll(False) looks at fds."""
    a, b = sockpair
    io_poll = Counter(lambda: True)
    reads = Counter(lambda: a.recv(10))
    ctx.set_poll_params(1_000_000)
    ctx.set_fd_handler(a, io_read=reads, io_poll=io_poll)
    b.send(b"x")
    assert ctx.poll(False) is True
    assert reads.n == 1
    b.send(b"y")
    assert ctx.poll(True) is True
    assert reads.n == 2
    assert ctx.poll(False) is False
    assert io_poll.n == 0
    ctx.set_fd_handler(a)


@valgrind
def test_io_poll_only_handler_removed(ctx, sockpair):
    """io_poll + io_poll_ready without read/write is a registration; all
    None removes it."""
    a, _ = sockpair
    ctx.set_fd_handler(a, io_poll=lambda: False, io_poll_ready=lambda: None)
    ctx.set_fd_handler(a, io_poll=lambda: True)   # no io_poll_ready: removal
    ctx.set_fd_handler(a)
    assert ctx.poll(False) is False


def test_io_poll_handler(ctx, sockpair):
    """Busy polling: a handler joins the poll list after its first
    fd-driven dispatch; then a true io_poll calls io_poll_ready (progress)
    without waiting for the fd."""
    a, b = sockpair
    flag = []
    reads = Counter(lambda: a.recv(10))
    ready = Counter(lambda: flag.clear())
    ctx.set_poll_params(10**9)
    ctx.set_fd_handler(a, io_read=reads, io_poll=lambda: bool(flag),
                       io_poll_ready=ready)
    drain(ctx)
    b.send(b"x")
    assert ctx.poll(True) is True
    assert reads.n == 1

    flag.append(1)
    for _ in range(20):
        bounded_poll(ctx)
        if ready.n:
            break
    assert ready.n == 1
    assert reads.n == 1
    ctx.set_fd_handler(a)


def test_set_fd_handler_from_other_thread(ctx, sockpair):
    """set_fd_handler is thread-safe and wakes the blocked poll."""
    a, b = sockpair
    got = []
    assert ctx.poll(True) is False

    def register():
        time.sleep(0.02)
        b.send(b"t")
        ctx.set_fd_handler(a, io_read=lambda: got.append(a.recv(10)))

    thread = threading.Thread(target=register)
    thread.start()
    try:
        run_until(ctx, lambda: got)
    finally:
        thread.join()
    assert got == [b"t"]
    ctx.set_fd_handler(a)


def test_fd_ready_from_other_thread_wakes_poll(ctx, sockpair):
    a, b = sockpair
    got = []
    ctx.set_fd_handler(a, io_read=lambda: got.append(a.recv(10)))
    drain(ctx)

    def send():
        time.sleep(0.02)
        b.send(b"w")

    thread = threading.Thread(target=send)
    thread.start()
    try:
        start = time.monotonic()
        run_until(ctx, lambda: got)
        assert time.monotonic() - start < scaled(5)
    finally:
        thread.join()
    ctx.set_fd_handler(a)


@valgrind
def test_many_fds(ctx):
    pairs = [socket.socketpair() for _ in range(80)]
    try:
        got = []
        for i, (a, _) in enumerate(pairs):
            ctx.set_fd_handler(a, io_read=(lambda i=i, a=a: (
                got.append(i), a.recv(10))))
        for i in (3, 50, 79):
            pairs[i][1].send(b"x")
        run_until(ctx, lambda: len(got) >= 3)
        assert sorted(got) == [3, 50, 79]
        assert ctx.poll(False) is False
        for a, _ in pairs:
            ctx.set_fd_handler(a)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


@valgrind
def test_removed_handler_callables_released(ctx, sockpair):
    a, _ = sockpair

    class Cb:
        def __call__(self):
            pass

    read, write = Cb(), Cb()
    refs = [weakref.ref(read), weakref.ref(write)]
    ctx.set_fd_handler(a, io_read=read, io_write=write)
    del read, write
    gc.collect()
    assert all(r() is not None for r in refs)
    ctx.set_fd_handler(a)
    settle(ctx)                 # io_uring frees the node on completion
    assert all(r() is None for r in refs)


@valgrind
def test_replaced_handler_callables_released(ctx, sockpair):
    a, _ = sockpair

    class Cb:
        def __call__(self):
            pass

    old = Cb()
    ref = weakref.ref(old)
    ctx.set_fd_handler(a, io_read=old)
    del old
    ctx.set_fd_handler(a, io_read=Cb())
    settle(ctx)
    assert ref() is None
    ctx.set_fd_handler(a)


@valgrind
def test_handler_removed_during_poll_released_after(ctx, sockpair):
    """Removal from a callback is deferred to the end of poll(); then the
    callables are released."""
    a, b = sockpair

    class Cb:
        def __call__(self):
            a.recv(10)
            ctx.set_fd_handler(a)

    cb = Cb()
    ref = weakref.ref(cb)
    ctx.set_fd_handler(a, io_read=cb)
    del cb
    b.send(b"x")
    assert ctx.poll(True) is True
    settle(ctx)
    assert ref() is None
