"""Lifetime: reference cycles through callbacks are collected (with and
without close()), released callables die, and repeating a workload does not
grow the number of live objects."""

import gc
import os
import weakref

import pytest

import cevent
from support import settle, virtual_now

pytestmark = pytest.mark.valgrind


class Callback:
    """A weak-referenceable callable that may hold anything."""

    def __init__(self, payload=None):
        self.payload = payload

    def __call__(self, *args):
        pass


def _live_records():
    counts = getattr(cevent._cevent, "_live_counts", None)
    return None if counts is None else counts()


def _cycle_through_fd_handler(ctx, fds):
    cb = Callback(ctx)
    ctx.set_fd_handler(fds[0], io_read=cb)
    return cb


def _cycle_through_notifier(ctx, fds):
    e = cevent.EventNotifier()
    fds.append(e)
    cb = Callback(ctx)
    ctx.set_event_notifier(e, io_read=cb, io_poll=Callback(ctx),
                           io_poll_ready=Callback(ctx))
    ctx.set_event_notifier_poll(e, io_poll_begin=Callback(ctx),
                                io_poll_end=Callback(ctx))
    return cb


def _cycle_through_bh(ctx, fds):
    cb = Callback()
    cb.payload = ctx.bh_new(cb)         # BH -> cb -> BH -> ctx
    return cb


def _cycle_through_scheduled_bh(ctx, fds):
    cb = Callback()
    cb.payload = ctx.bh_new(cb)
    cb.payload.schedule()
    return cb


def _cycle_through_oneshot(ctx, fds):
    cb = Callback(ctx)
    ctx.bh_schedule_oneshot(cb)
    return cb


def _cycle_through_timer(ctx, fds):
    cb = Callback()
    cb.payload = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, cb)
    return cb


def _cycle_through_armed_timer(ctx, fds):
    cb = Callback()
    cb.payload = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, cb)
    cb.payload.mod(virtual_now() + 10**12)
    return cb


CYCLES = [
    _cycle_through_fd_handler,
    _cycle_through_notifier,
    _cycle_through_bh,
    _cycle_through_scheduled_bh,
    _cycle_through_oneshot,
    _cycle_through_timer,
    _cycle_through_armed_timer,
]
IDS = [f.__name__[len("_cycle_through_"):] for f in CYCLES]


@pytest.fixture
def fds():
    r, w = os.pipe()
    holder = [r, w]
    yield holder
    os.close(r)
    os.close(w)
    for extra in holder[2:]:
        extra.close()


@pytest.mark.parametrize("make_cycle", CYCLES, ids=IDS)
def test_cycle_collected_without_close(backend, fds, make_cycle):
    ctx = cevent.AioContext(backend)
    cb = make_cycle(ctx, fds)
    ctx_ref = weakref.ref(ctx)
    cb_ref = weakref.ref(cb)
    del ctx, cb
    gc.collect()
    assert ctx_ref() is None
    assert cb_ref() is None


@pytest.mark.parametrize("make_cycle", CYCLES, ids=IDS)
def test_cycle_released_by_close(backend, fds, make_cycle):
    ctx = cevent.AioContext(backend)
    cb = make_cycle(ctx, fds)
    cb_ref = weakref.ref(cb)
    del cb
    ctx.close()
    gc.collect()
    assert cb_ref() is None
    ctx_ref = weakref.ref(ctx)
    del ctx
    gc.collect()
    assert ctx_ref() is None


def test_context_without_cycle_freed_by_refcount(backend):
    ctx = cevent.AioContext(backend)
    ref = weakref.ref(ctx)
    del ctx
    assert ref() is None


def test_close_releases_everything(backend, fds):
    ctx = cevent.AioContext(backend)
    callbacks = [Callback() for _ in range(6)]
    refs = [weakref.ref(c) for c in callbacks]
    e = cevent.EventNotifier()
    fds.append(e)
    ctx.set_fd_handler(fds[0], io_read=callbacks[0], io_write=callbacks[1])
    ctx.set_event_notifier(e, io_read=callbacks[2])
    bh = ctx.bh_new(callbacks[3])
    bh.schedule()
    ctx.bh_schedule_oneshot(callbacks[4])
    t = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, callbacks[5])
    t.mod(virtual_now() + 10**12)
    del callbacks
    ctx.close()
    gc.collect()
    assert [r() is None for r in refs[:5]] == [True] * 5
    # The armed timer no longer keeps itself alive.
    del t
    gc.collect()
    assert refs[5]() is None
    del bh


def test_removed_handler_callables_die(ctx, fds):
    cbs = [Callback() for _ in range(4)]
    refs = [weakref.ref(c) for c in cbs]
    ctx.set_fd_handler(fds[0], io_read=cbs[0], io_write=cbs[1],
                       io_poll=cbs[2], io_poll_ready=cbs[3])
    del cbs
    gc.collect()
    assert all(r() is not None for r in refs)
    ctx.set_fd_handler(fds[0])
    settle(ctx)     # io_uring frees a removed node when its poll completes
    assert all(r() is None for r in refs)


def test_dropped_io_poll_not_kept(ctx, fds):
    """io_poll without io_poll_ready is dropped: not even kept alive."""
    poll = Callback()
    ref = weakref.ref(poll)
    ctx.set_fd_handler(fds[0], io_read=Callback(), io_poll=poll)
    del poll
    gc.collect()
    assert ref() is None
    ctx.set_fd_handler(fds[0])


def test_context_dies_with_iothread_like_closure(backend):
    """A context referenced only from its own callbacks' closures."""
    def make():
        ctx = cevent.AioContext(backend)
        ctx.bh_schedule_oneshot(lambda: ctx.notify())
        bh = ctx.bh_new(lambda: ctx.poll(False))
        bh.schedule()
        t = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                          lambda: (ctx, t, bh))
        t.mod(virtual_now() + 10**12)
        return weakref.ref(ctx)

    ref = make()
    gc.collect()
    assert ref() is None


def _workload(backend, fds):
    with cevent.AioContext(backend) as ctx:
        e = cevent.EventNotifier()
        ctx.set_event_notifier(e, io_read=lambda n: n.test_and_clear())
        ctx.set_fd_handler(fds[0], io_read=lambda: None,
                           io_write=lambda: None)
        bh = ctx.bh_new(lambda: None)
        bh.schedule()
        ctx.bh_schedule_oneshot(lambda: None)
        t = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, lambda: None)
        t.mod(virtual_now())
        e.set()
        ctx.poll(False)
        ctx.poll(False)
        ctx.fileno()
        ctx.prepare()
        ctx.pending()
        ctx.dispatch()
        ctx.set_fd_handler(fds[0])
        ctx.set_event_notifier(e)
        t.mod(virtual_now() + 10**12)
        bh.schedule()
        e.close()


def test_no_growth(backend, fds):
    for _ in range(20):
        _workload(backend, fds)
    gc.collect()
    before = len(gc.get_objects())
    records_before = _live_records()
    for _ in range(50):
        _workload(backend, fds)
    gc.collect()
    after = len(gc.get_objects())
    assert after - before < 50, (before, after)
    if records_before is not None:
        assert _live_records() == records_before


def test_bh_self_cycle_collected_while_context_alive(ctx):
    """An unscheduled BH referenced only by its own callback is garbage,
    even though its context lives on."""
    def make():
        cb = Callback()
        cb.payload = ctx.bh_new(cb)
        return weakref.ref(cb), weakref.ref(cb.payload)

    cb_ref, bh_ref = make()
    gc.collect()
    assert bh_ref() is None
    assert cb_ref() is None
    assert ctx.poll(False) is False
    gc.collect()
    assert cb_ref() is None


def test_timer_self_cycle_collected_while_context_alive(ctx):
    def make():
        cb = Callback()
        cb.payload = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, cb)
        return weakref.ref(cb), weakref.ref(cb.payload)

    cb_ref, t_ref = make()
    gc.collect()
    assert t_ref() is None
    assert cb_ref() is None


def test_bh_cycle_no_growth(ctx):
    def cycle():
        bh = ctx.bh_new(lambda: bh)
        bh.schedule()
        ctx.poll(False)

    for _ in range(20):
        cycle()
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(200):
        cycle()
    gc.collect()
    assert len(gc.get_objects()) - before < 50
