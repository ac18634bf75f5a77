"""cevent.Timer: QEMU's timers (qemu-timer.c) on an AioContext.

Deterministic tests use CLOCK_VIRTUAL, which only moves on clock_step();
it is process-wide, so every test reads its current value as the base.
"""

import gc
import random
import threading
import time
import weakref

import pytest

import cevent
from support import (
    MULTIPLIER,
    NS_PER_MS,
    Counter,
    drain,
    realtime_now,
    run_until,
    scaled,
    virtual_now,
)

valgrind = pytest.mark.valgrind
VIRTUAL = cevent.CLOCK_VIRTUAL


@valgrind
def test_timer_attributes(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    assert isinstance(t, cevent.Timer)
    assert t.pending is False
    assert t.expire_time == -1
    base = virtual_now()
    t.mod(base + 1000)
    assert t.pending is True
    assert t.expire_time == base + 1000
    t.mod_ns(base + 2000)
    assert t.expire_time == base + 2000
    t.delete()
    assert t.pending is False
    assert t.expire_time == -1
    t.delete()                          # disarming twice is fine
    with pytest.raises(AttributeError):
        t.pending = True
    with pytest.raises(AttributeError):
        t.expire_time = 5
    assert cb.n == 0


@valgrind
@pytest.mark.parametrize("scale", [cevent.SCALE_NS, cevent.SCALE_US,
                                   cevent.SCALE_MS])
def test_timer_scale(ctx, scale):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, scale, cb)
    base = virtual_now() // scale + 1
    t.mod(base + 5)
    # expire_time is in ns whatever the scale
    assert t.expire_time == (base + 5) * scale
    t.mod_ns(base * scale + 7)
    assert t.expire_time == base * scale + 7
    t.mod_anticipate(base)
    assert t.expire_time == base * scale
    t.delete()


@valgrind
def test_timer_never_early(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now() + 1000)
    drain(ctx)
    ctx.clock_step(999)
    assert ctx.poll(False) is False
    assert cb.n == 0
    assert t.pending is True
    ctx.clock_step(1)
    assert ctx.poll(False) is True
    assert cb.calls == [()]
    assert t.pending is False
    assert t.expire_time == -1
    assert ctx.poll(False) is False


@valgrind
def test_timer_fires_only_inside_poll(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now())
    ctx.clock_step(10)
    assert cb.n == 0
    assert ctx.poll(False) is True
    assert cb.n == 1


@valgrind
def test_timer_delete_and_rearm(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now() + 10)
    t.delete()
    ctx.clock_step(20)
    assert ctx.poll(False) is False
    assert cb.n == 0
    t.mod(virtual_now() + 10)
    ctx.clock_step(10)
    assert ctx.poll(False) is True
    assert cb.n == 1
    # re-arm after firing
    t.mod(virtual_now() + 5)
    ctx.clock_step(5)
    assert ctx.poll(False) is True
    assert cb.n == 2


@valgrind
def test_timer_mod_moves(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    base = virtual_now()
    t.mod(base + 10)
    t.mod(base + 100)                   # later: the old expiry is gone
    ctx.clock_step(50)
    assert ctx.poll(False) is False
    t.mod(base + 20)                    # earlier than now: runs at once
    assert ctx.poll(False) is True
    assert cb.n == 1


@valgrind
def test_timer_mod_anticipate(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    base = virtual_now()
    t.mod_anticipate(base + 100)        # not armed: arms
    assert t.expire_time == base + 100
    t.mod_anticipate(base + 200)        # later: no change
    assert t.expire_time == base + 100
    t.mod_anticipate(base + 100)        # same: no change
    assert t.expire_time == base + 100
    t.mod_anticipate(base + 50)         # earlier: moves
    assert t.expire_time == base + 50
    ctx.clock_step(50)
    assert ctx.poll(False) is True
    assert cb.n == 1
    t.delete()


@valgrind
def test_timer_expire_time_clamped(ctx):
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, lambda: None)
    t.mod_ns(-5)
    assert t.expire_time == 0
    assert t.pending is True
    assert ctx.poll(False) is True
    assert t.pending is False


@valgrind
def test_timer_ties_fire_in_arming_order(ctx):
    order = []
    base = virtual_now() + 10
    timers = [ctx.timer_new(VIRTUAL, cevent.SCALE_NS,
                            (lambda i=i: order.append(i)))
              for i in range(5)]
    for i in (3, 1, 4, 0, 2):
        timers[i].mod(base)
    timers[1].mod(base)                 # re-armed: goes after the others
    ctx.clock_step(10)
    assert ctx.poll(False) is True
    assert order == [3, 4, 0, 2, 1]


def test_many_random_timers_fire_in_order(ctx):
    """Timers fire by expire time, ties in (last) arming order, and never
    before their expire time."""
    rng = random.Random(1234)
    order = []
    base = virtual_now()
    timers = [ctx.timer_new(VIRTUAL, cevent.SCALE_NS,
                            (lambda i=i: order.append(i)))
              for i in range(300)]
    expiry = {}
    arming = {}
    seq = iter(range(10**6))

    def arm(i):
        expiry[i] = base + rng.randrange(1, 10_000)
        arming[i] = next(seq)
        timers[i].mod(expiry[i])

    for i in range(300):
        arm(i)
    for i in rng.sample(range(300), 100):   # re-arm a third of them
        arm(i)
    expected = sorted(range(300), key=lambda i: (expiry[i], arming[i]))

    now = base
    while len(order) < 300:
        now += 1000
        ctx.clock_step(1000)
        ctx.poll(False)
        assert all(expiry[i] <= now for i in order)
        assert all(not timers[i].pending for i in order)
    assert order == expected
    assert ctx.poll(False) is False


@valgrind
def test_timer_rearm_in_past_runs_again_in_same_pass(ctx):
    calls = []

    def cb():
        calls.append(virtual_now())
        if len(calls) < 3:
            t.mod(virtual_now())        # <= the sampled now: runs again

    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now())
    assert ctx.poll(False) is True
    assert len(calls) == 3


@valgrind
def test_timer_armed_later_during_pass_waits(ctx):
    calls = []
    other = Counter()
    o = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, other)

    def cb():
        calls.append(1)
        o.mod(virtual_now() + 1)

    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now())
    assert ctx.poll(False) is True
    assert calls == [1]
    assert other.n == 0
    ctx.clock_step(1)
    assert ctx.poll(False) is True
    assert other.n == 1


@valgrind
def test_timer_delete_from_other_timer(ctx):
    victim = Counter()
    v = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, victim)
    k = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, lambda: v.delete())
    base = virtual_now()
    k.mod(base)
    v.mod(base)
    ctx.clock_step(1)
    assert ctx.poll(False) is True
    assert victim.n == 0
    assert v.pending is False


@valgrind
def test_timer_clocks_are_separate(ctx):
    rt = Counter()
    vt = Counter()
    t_rt = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, rt)
    t_vt = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, vt)
    # far in the future on REALTIME; due now on VIRTUAL
    t_rt.mod(realtime_now() + 3600 * 10**9)
    t_vt.mod(virtual_now())
    assert ctx.poll(False) is True
    assert (rt.n, vt.n) == (0, 1)
    # virtual time does not move realtime timers
    ctx.clock_step(3600 * 10**9)
    assert ctx.poll(False) is False
    assert rt.n == 0
    t_rt.delete()


def test_host_clock_timer(ctx):
    cb = Counter()
    t = ctx.timer_new(cevent.CLOCK_HOST, cevent.SCALE_MS, cb)
    armed = cevent.clock_ns(cevent.CLOCK_HOST)
    t.mod(armed // cevent.SCALE_MS + 20)
    run_until(ctx, lambda: cb.n)
    assert cevent.clock_ns(cevent.CLOCK_HOST) >= armed + 19 * NS_PER_MS


def test_realtime_timer_blocking_poll(ctx):
    """A blocking poll sleeps until the earliest deadline, and the timer
    never fires before its expire time."""
    fired_at = []
    t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS,
                      lambda: fired_at.append(realtime_now()))
    ns = int(30 * NS_PER_MS * MULTIPLIER)
    expire = realtime_now() + ns
    t.mod(expire)
    drain(ctx)
    start = time.monotonic()
    run_until(ctx, lambda: fired_at, timeout=10)
    assert fired_at[0] >= expire
    assert time.monotonic() - start < scaled(10)


def test_timer_armed_from_other_thread_wakes_poll(ctx):
    """An earlier deadline set by another thread notifies the context."""
    cb = Counter()
    t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, cb)
    t.mod(realtime_now() + 3600 * 10**9)
    drain(ctx)

    def rearm():
        time.sleep(0.02)
        t.mod(realtime_now() + 10 * NS_PER_MS)

    thread = threading.Thread(target=rearm)
    thread.start()
    try:
        run_until(ctx, lambda: cb.n, timeout=10)
    finally:
        thread.join()
    assert cb.n == 1


def test_clock_step_from_other_thread_wakes_poll(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    t.mod(virtual_now() + 3600 * 10**9)   # an hour of virtual time
    drain(ctx)

    def step():
        time.sleep(0.02)
        cevent.clock_step(3600 * 10**9)

    thread = threading.Thread(target=step)
    thread.start()
    try:
        start = time.monotonic()
        run_until(ctx, lambda: cb.n)
        assert time.monotonic() - start < scaled(5)
    finally:
        thread.join()


@valgrind
def test_pending_timer_stays_alive(ctx):
    cb = Counter()
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    ref = weakref.ref(t)
    t.mod(virtual_now() + 10)
    del t
    gc.collect()
    assert ref() is not None
    ctx.clock_step(10)
    assert ctx.poll(False) is True
    assert cb.n == 1
    gc.collect()
    assert ref() is None


@valgrind
def test_unarmed_timer_is_freed(ctx):
    cb = Counter()
    cb_ref = weakref.ref(cb)
    t = ctx.timer_new(VIRTUAL, cevent.SCALE_NS, cb)
    ref = weakref.ref(t)
    t.mod(virtual_now() + 10)
    t.delete()
    del t, cb
    gc.collect()
    assert ref() is None
    assert cb_ref() is None
    ctx.clock_step(10)
    assert ctx.poll(False) is False


@valgrind
def test_clock_step_negative():
    with pytest.raises(ValueError):
        cevent.clock_step(-1)
    with cevent.AioContext() as ctx:
        with pytest.raises(ValueError):
            ctx.clock_step(-1)


@valgrind
def test_timer_type():
    with pytest.raises(TypeError):
        cevent.Timer()
