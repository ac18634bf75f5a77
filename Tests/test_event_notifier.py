"""cevent.EventNotifier and AioContext.set_event_notifier /
set_event_notifier_poll (event_notifier-posix.c, aio_set_event_notifier)."""

import gc
import threading
import time
import weakref

import pytest

import cevent
from support import (
    Counter,
    bounded_poll,
    drain,
    readable,
    run_until,
    scaled,
    settle,
)

valgrind = pytest.mark.valgrind


@valgrind
def test_set_and_test_and_clear():
    e = cevent.EventNotifier()
    try:
        assert e.test_and_clear() is False
        e.set()
        assert e.test_and_clear() is True
        assert e.test_and_clear() is False
        # several sets coalesce into one wake-up
        e.set()
        e.set()
        e.set()
        assert e.test_and_clear() is True
        assert e.test_and_clear() is False
    finally:
        e.close()


@valgrind
def test_fileno():
    e = cevent.EventNotifier()
    try:
        fd = e.fileno()
        assert isinstance(fd, int) and fd >= 0
        assert not readable(fd)
        e.set()
        assert readable(fd)
        e.test_and_clear()
        assert not readable(fd)
    finally:
        e.close()


@valgrind
def test_close_idempotent_and_context_manager():
    with cevent.EventNotifier() as e:
        e.set()
    e.close()
    e.close()
    for method in (e.set, e.test_and_clear, e.fileno):
        with pytest.raises(ValueError):
            method()


def test_set_from_many_threads():
    e = cevent.EventNotifier()
    try:
        threads = [threading.Thread(
            target=lambda: [e.set() for _ in range(1000)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert e.test_and_clear() is True
        assert e.test_and_clear() is False
    finally:
        e.close()


@valgrind
def test_callbacks_receive_notifier(ctx):
    e = cevent.EventNotifier()
    reads = Counter(lambda n: n.test_and_clear())
    ctx.set_event_notifier(e, io_read=reads)
    e.set()
    assert ctx.poll(True) is True
    assert reads.calls == [(e,)]
    assert ctx.poll(False) is False
    ctx.set_event_notifier(e)
    e.close()


@valgrind
def test_set_event_notifier_remove(ctx):
    e = cevent.EventNotifier()
    reads = Counter()
    ctx.set_event_notifier(e, io_read=reads)
    ctx.set_event_notifier(e, None, None, None)
    e.set()
    assert ctx.poll(False) is False
    assert reads.n == 0
    ctx.set_event_notifier(e)        # not registered: fine
    e.close()


def test_set_from_other_thread_wakes_poll(ctx):
    e = cevent.EventNotifier()
    reads = Counter(lambda n: n.test_and_clear())
    ctx.set_event_notifier(e, io_read=reads)
    drain(ctx)

    def later():
        time.sleep(0.02)
        e.set()

    thread = threading.Thread(target=later)
    thread.start()
    try:
        start = time.monotonic()
        run_until(ctx, lambda: reads.n)
        assert time.monotonic() - start < scaled(5)
    finally:
        thread.join()
    assert reads.n == 1
    ctx.set_event_notifier(e)
    e.close()


def test_io_poll_ready_receives_notifier(ctx):
    """A notifier with io_poll: after its first fd-driven dispatch it is
    busy-polled, and a true io_poll calls io_poll_ready(notifier)."""
    e = cevent.EventNotifier()
    flag = []
    polls = Counter(lambda n: bool(flag))
    ready = Counter(lambda n: flag.clear())
    ctx.set_poll_params(10**9)
    ctx.set_event_notifier(e, io_read=lambda n: n.test_and_clear(),
                           io_poll=polls, io_poll_ready=ready)
    drain(ctx)
    e.set()
    assert ctx.poll(True) is True
    flag.append(1)
    for _ in range(20):
        bounded_poll(ctx)
        if ready.n:
            break
    assert ready.calls == [(e,)]
    assert all(args == (e,) for args in polls.calls)
    ctx.set_event_notifier(e)
    e.close()


def _bounded_polls(ctx, n, ms=3):
    for _ in range(n):
        bounded_poll(ctx, ms)


def test_set_event_notifier_poll(ctx):
    """io_poll_begin/io_poll_end run when the context enters and leaves
    poll mode; a later set_event_notifier() drops them (new node)."""
    e = cevent.EventNotifier()
    begins = Counter()
    ends = Counter()
    ctx.set_poll_params(10**9)

    def register():
        ctx.set_event_notifier(e, io_read=lambda n: n.test_and_clear(),
                               io_poll=lambda n: False,
                               io_poll_ready=lambda n: None)

    register()
    ctx.set_event_notifier_poll(e, io_poll_begin=begins, io_poll_end=ends)
    drain(ctx)
    e.set()
    assert ctx.poll(True) is True      # joins the poll list
    for _ in range(20):
        _bounded_polls(ctx, 1)
        if begins.n and ends.n:
            break
    assert begins.n >= 1
    assert ends.n >= 1
    assert all(args == (e,) for args in begins.calls + ends.calls)
    assert abs(begins.n - ends.n) <= 1

    # Replacing the handler drops io_poll_begin/io_poll_end.
    register()
    seen = (begins.n, ends.n)
    e.set()
    run_until(ctx, lambda: not readable(e.fileno()))
    _bounded_polls(ctx, 5)
    # At most the end of the poll mode entered before the replacement.
    assert begins.n == seen[0]
    assert ends.n - seen[1] <= 1
    ctx.set_event_notifier(e)
    e.close()


@valgrind
def test_set_event_notifier_poll_unregistered(ctx):
    e = cevent.EventNotifier()
    ctx.set_event_notifier_poll(e, io_poll_begin=lambda n: None)
    ctx.set_event_notifier_poll(e)
    e.close()


@valgrind
def test_set_event_notifier_wrong_type(ctx):
    with pytest.raises(TypeError):
        ctx.set_event_notifier(5, io_read=lambda n: None)
    with pytest.raises(TypeError):
        ctx.set_event_notifier_poll(object())


@valgrind
def test_closed_notifier_rejected(ctx):
    e = cevent.EventNotifier()
    e.close()
    with pytest.raises(ValueError):
        ctx.set_event_notifier(e, io_read=lambda n: None)


@valgrind
def test_notifier_callbacks_released(ctx):
    e = cevent.EventNotifier()

    class Cb:
        def __call__(self, n):
            return False

    read, poll, ready = Cb(), Cb(), Cb()
    refs = [weakref.ref(x) for x in (read, poll, ready)]
    ctx.set_event_notifier(e, io_read=read, io_poll=poll, io_poll_ready=ready)
    del read, poll, ready
    gc.collect()
    assert all(r() is not None for r in refs)
    ctx.set_event_notifier(e)
    settle(ctx)
    assert all(r() is None for r in refs)
    e.close()


@valgrind
def test_notifier_weakref():
    e = cevent.EventNotifier()
    ref = weakref.ref(e)
    e.close()
    del e
    gc.collect()
    assert ref() is None
