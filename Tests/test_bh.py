"""cevent.BH and bh_schedule_oneshot: QEMU's bottom halves (async.c)."""

import gc
import threading
import time
import weakref

import pytest

import cevent
from support import NS_PER_MS, Counter, drain, run_until, scaled

valgrind = pytest.mark.valgrind


class Recorder:
    def __init__(self):
        self.order = []

    def cb(self, name):
        def callback():
            self.order.append(name)
        return callback


@valgrind
def test_bh_runs_once(ctx):
    cb = Counter()
    bh = ctx.bh_new(cb)
    assert isinstance(bh, cevent.BH)
    assert ctx.poll(False) is False      # not scheduled: nothing runs
    bh.schedule()
    bh.schedule()                       # already pending: queued once
    assert cb.n == 0
    assert ctx.poll(False) is True
    assert cb.calls == [()]
    assert ctx.poll(False) is False
    assert cb.n == 1
    bh.delete()


@valgrind
def test_bh_lifo_order(ctx):
    """BHs run in reverse order of first scheduling (lock-free stack)."""
    rec = Recorder()
    bhs = [ctx.bh_new(rec.cb(i)) for i in range(5)]
    for bh in bhs:
        bh.schedule()
    assert ctx.poll(False) is True
    assert rec.order == [4, 3, 2, 1, 0]
    for bh in bhs:
        bh.delete()


@valgrind
def test_bh_reschedule_keeps_position(ctx):
    rec = Recorder()
    a = ctx.bh_new(rec.cb("a"))
    b = ctx.bh_new(rec.cb("b"))
    a.schedule()
    b.schedule()
    a.schedule()                        # keeps its old position
    assert ctx.poll(False) is True
    assert rec.order == ["b", "a"]
    a.delete()
    b.delete()


@valgrind
def test_bh_scheduled_during_poll_runs_next_time(ctx):
    rec = Recorder()
    b = ctx.bh_new(rec.cb("b"))

    def a_cb():
        rec.order.append("a")
        b.schedule()
        a.schedule()                    # self-rescheduling: once per poll

    a = ctx.bh_new(a_cb)
    a.schedule()
    assert ctx.poll(False) is True
    assert rec.order == ["a"]
    assert ctx.poll(False) is True
    # both were pushed during the first poll: b first, then a on top
    assert rec.order == ["a", "a", "b"]
    a.cancel()
    b.delete()
    a.delete()


@valgrind
def test_bh_scheduled_property(ctx):
    bh = ctx.bh_new(lambda: None)
    assert bh.scheduled is False
    bh.schedule()
    assert bh.scheduled is True
    bh.cancel()
    assert bh.scheduled is False
    bh.schedule_idle()
    assert bh.scheduled is True
    ctx.poll(False)
    assert bh.scheduled is False
    bh.schedule()
    assert ctx.poll(False) is True
    assert bh.scheduled is False
    with pytest.raises(AttributeError):
        bh.scheduled = True
    bh.delete()


@valgrind
def test_bh_cancel(ctx):
    cb = Counter()
    bh = ctx.bh_new(cb)
    bh.cancel()                         # not scheduled: no-op
    bh.schedule()
    bh.cancel()
    assert ctx.poll(False) is False
    assert cb.n == 0
    # schedule after cancel runs it again
    bh.schedule()
    bh.cancel()
    bh.schedule()
    assert ctx.poll(False) is True
    assert cb.n == 1
    bh.delete()


@valgrind
def test_bh_cancel_keeps_queue_position(ctx):
    """cancel leaves the BH queued; scheduling it again keeps its place."""
    rec = Recorder()
    a = ctx.bh_new(rec.cb("a"))
    b = ctx.bh_new(rec.cb("b"))
    a.schedule()
    b.schedule()
    a.cancel()
    a.schedule()
    assert ctx.poll(False) is True
    assert rec.order == ["b", "a"]
    a.delete()
    b.delete()


@valgrind
def test_bh_delete(ctx):
    cb = Counter()
    bh = ctx.bh_new(cb)
    bh.schedule()
    bh.delete()                         # DELETED wins: never runs
    bh.delete()                         # idempotent
    assert ctx.poll(False) is False
    assert cb.n == 0
    for method in (bh.schedule, bh.schedule_idle, bh.cancel):
        with pytest.raises(ValueError):
            method()
    with pytest.raises(ValueError):
        bh.scheduled
    bh.delete()


@valgrind
def test_bh_delete_from_other_bh(ctx):
    """Deleting a scheduled BH from a BH that runs first in the same poll
    prevents its run."""
    victim_cb = Counter()
    victim = ctx.bh_new(victim_cb)
    killer = ctx.bh_new(lambda: victim.delete())
    victim.schedule()
    killer.schedule()                   # LIFO: runs first
    assert ctx.poll(False) is True
    assert victim_cb.n == 0
    assert ctx.poll(False) is False
    killer.delete()


@valgrind
def test_bh_delete_self(ctx):
    calls = []

    def cb():
        calls.append(1)
        bh.delete()

    bh = ctx.bh_new(cb)
    bh.schedule()
    assert ctx.poll(False) is True
    assert calls == [1]
    assert ctx.poll(False) is False     # freeing is not progress
    with pytest.raises(ValueError):
        bh.schedule()


@valgrind
def test_schedule_idle(ctx):
    """An idle BH runs but is not progress, and bounds the wait to 10 ms."""
    cb = Counter()
    bh = ctx.bh_new(cb)
    bh.schedule_idle()
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    assert ctx.poll(False) is False
    assert cb.n == 1
    assert ctx.compute_timeout() == -1
    bh.delete()


def test_schedule_idle_blocking_poll(ctx):
    """A blocking poll with only an idle BH pending does not sleep longer
    than the idle bound: it runs the BH (no progress)."""
    cb = Counter()
    bh = ctx.bh_new(cb)
    ctx.poll(False)                     # consume the notification
    bh.schedule_idle()
    start = time.monotonic()
    assert ctx.poll(True) is False
    assert time.monotonic() - start < scaled(5)
    assert cb.n == 1
    bh.delete()


def test_schedule_idle_embedded(ctx):
    """On the embedding path the idle bound is the prepare() timeout."""
    cb = Counter()
    bh = ctx.bh_new(cb)
    ctx.fileno()
    bh.schedule_idle()
    assert ctx.prepare() is False       # 10 ms, not 0
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    assert ctx.pending() is True
    ctx.dispatch()
    assert cb.n == 1
    bh.delete()


@valgrind
def test_schedule_after_schedule_idle_stays_idle(ctx):
    """The idle bit is sticky until the BH runs."""
    cb = Counter()
    bh = ctx.bh_new(cb)
    bh.schedule_idle()
    bh.schedule()
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    assert ctx.poll(False) is False
    assert cb.n == 1
    # After running it is a normal BH again.
    bh.schedule()
    assert ctx.compute_timeout() == 0
    assert ctx.poll(False) is True
    assert cb.n == 2
    bh.delete()


@valgrind
def test_schedule_idle_after_schedule_makes_idle(ctx):
    cb = Counter()
    bh = ctx.bh_new(cb)
    bh.schedule()
    bh.schedule_idle()
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    assert ctx.poll(False) is False
    assert cb.n == 1
    bh.delete()


@valgrind
def test_bh_schedule_oneshot(ctx):
    rec = Recorder()
    bh = ctx.bh_new(rec.cb("bh"))
    ctx.bh_schedule_oneshot(rec.cb("one"))
    bh.schedule()
    ctx.bh_schedule_oneshot(rec.cb("two"))
    assert ctx.poll(False) is True
    assert rec.order == ["two", "bh", "one"]
    assert ctx.poll(False) is False
    assert rec.order == ["two", "bh", "one"]
    bh.delete()


@valgrind
def test_bh_schedule_oneshot_from_callback(ctx):
    calls = []

    def first():
        calls.append("first")
        ctx.bh_schedule_oneshot(lambda: calls.append("second"))

    ctx.bh_schedule_oneshot(first)
    assert ctx.poll(False) is True
    assert calls == ["first"]
    assert ctx.poll(False) is True
    assert calls == ["first", "second"]
    assert ctx.poll(False) is False


@valgrind
def test_nested_poll_finishes_outer_slice(ctx):
    """A nested poll() from a BH first runs the BHs the outer poll has not
    reached yet; each BH runs once.  compute_timeout() inside sees them."""
    rec = Recorder()
    seen_timeout = []
    nested_result = []

    def a_cb():
        rec.order.append("a")
        seen_timeout.append(ctx.compute_timeout())
        nested_result.append(ctx.poll(True))

    c = ctx.bh_new(rec.cb("c"))
    b = ctx.bh_new(rec.cb("b"))
    a = ctx.bh_new(a_cb)
    c.schedule()
    b.schedule()
    a.schedule()
    assert ctx.poll(False) is True
    assert rec.order == ["a", "b", "c"]
    assert seen_timeout == [0]
    assert nested_result == [True]
    assert ctx.poll(False) is False
    for bh in (a, b, c):
        bh.delete()


def test_bh_schedule_from_other_thread_wakes_poll(ctx):
    cb = Counter()
    bh = ctx.bh_new(cb)
    assert ctx.poll(True) is False      # consume the notification

    def schedule_later():
        time.sleep(0.02)
        bh.schedule()

    thread = threading.Thread(target=schedule_later)
    thread.start()
    try:
        start = time.monotonic()
        assert ctx.poll(True) is True
        assert time.monotonic() - start < scaled(5)
    finally:
        thread.join()
    assert cb.n == 1
    bh.delete()


def test_bh_schedule_oneshot_from_other_thread_wakes_poll(ctx):
    ran = []
    assert ctx.poll(True) is False

    def schedule_later():
        time.sleep(0.02)
        ctx.bh_schedule_oneshot(lambda: ran.append(threading.get_ident()))

    thread = threading.Thread(target=schedule_later)
    thread.start()
    try:
        run_until(ctx, lambda: ran)
    finally:
        thread.join()
    assert ran == [threading.get_ident()]


def test_bh_many_threads(ctx):
    """Concurrent schedules from several threads: every oneshot runs once."""
    ran = Counter()
    threads = [threading.Thread(
        target=lambda: [ctx.bh_schedule_oneshot(ran) for _ in range(200)])
        for _ in range(4)]
    for t in threads:
        t.start()
    try:
        run_until(ctx, lambda: ran.n >= 800, timeout=20)
    finally:
        for t in threads:
            t.join()
    drain(ctx)
    assert ran.n == 800


@valgrind
def test_scheduled_bh_without_reference_runs(ctx):
    """A scheduled BH stays alive (and runs) when the program holds no
    reference to it; afterwards it is deleted."""
    cb = Counter()
    bh = ctx.bh_new(cb)
    ref = weakref.ref(bh)
    bh.schedule()
    del bh
    gc.collect()
    assert cb.n == 0
    assert ctx.poll(False) is True
    assert cb.n == 1
    gc.collect()
    assert ref() is None
    assert ctx.poll(False) is False


@valgrind
def test_unscheduled_bh_without_reference_is_freed(ctx):
    class Callback:
        def __call__(self):
            raise AssertionError("must not run")

    cb = Callback()
    cb_ref = weakref.ref(cb)
    bh = ctx.bh_new(cb)
    bh_ref = weakref.ref(bh)
    del cb, bh
    gc.collect()
    assert bh_ref() is None
    # Deleted, and freed by the next aio_bh_poll, as qemu_bh_delete does.
    assert ctx.poll(False) is False
    gc.collect()
    assert cb_ref() is None


@valgrind
def test_cancelled_bh_without_reference_is_freed(ctx):
    cb = Counter()
    cb_ref = weakref.ref(cb)
    bh = ctx.bh_new(cb)
    bh.schedule()
    bh.cancel()
    del cb, bh
    gc.collect()
    assert ctx.poll(False) is False
    gc.collect()
    assert cb_ref() is None


@valgrind
def test_bh_delete_drops_callback(ctx):
    cb = Counter()
    cb_ref = weakref.ref(cb)
    bh = ctx.bh_new(cb)
    del cb
    bh.schedule()
    bh.delete()
    ctx.poll(False)
    gc.collect()
    assert cb_ref() is None


@valgrind
def test_oneshot_callback_released_after_run(ctx):
    cb = Counter()
    cb_ref = weakref.ref(cb)
    ctx.bh_schedule_oneshot(cb)
    del cb
    gc.collect()
    assert cb_ref() is not None
    assert ctx.poll(False) is True
    gc.collect()
    assert cb_ref() is None


@valgrind
def test_bh_type():
    assert cevent.BH.__name__ == "BH"
    with pytest.raises(TypeError):
        cevent.BH()
