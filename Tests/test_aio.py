"""QEMU's tests/unit/test-aio.c, test by test, under the upstream names.

Each test asserts what upstream asserts: the progress returned by every
``poll()`` (``aio_poll``) or GSource iteration, and the counters.  Upstream
runs all tests on the main-loop context, one after the other; here each test
gets a fresh context (``ctx`` fixture), once per backend.  A fresh context
is "notified", so the tests that start with a blocking poll first consume
that notification (async.c: aio_context_new() leaves it notified).

Timer tests run on CLOCK_VIRTUAL with ``clock_step`` (deterministic); one
wall-clock variant of each timer test keeps upstream's REALTIME scenario
with shorter durations and checks only that timers never fire early.

The GSource variants (``/aio-gsource/...``) drive the context through
``fileno()``/``prepare()``/``pending()``/``dispatch()`` with
``support.iterate``, the equivalent of ``g_main_context_iteration``.

Not ported: ``/aio/coroutine/queue-chaining`` (coroutines only),
``/aio/acquire`` and ``/aio/external-client`` (APIs removed upstream).
"""

import threading
import time

import pytest

import cevent
from support import (
    MULTIPLIER,
    NS_PER_MS,
    NS_PER_S,
    BHTestData,
    EventNotifierTestData,
    TimerTestData,
    drain,
    drain_source,
    dummy_io_handler_read,
    iterate,
    iterate_until,
    poll_until,
    realtime_now,
    set_event_notifier,
    virtual_now,
    wait_until_inactive,
)

valgrind = pytest.mark.valgrind


# ---- /aio/bh ------------------------------------------------------------

@valgrind
def test_bh_schedule(ctx):
    """/aio/bh/schedule"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert ctx.poll(True) is True
    assert data.n == 1

    assert ctx.poll(False) is False
    assert data.n == 1
    data.bh.delete()


@valgrind
def test_bh_schedule10(ctx):
    """/aio/bh/schedule10"""
    data = BHTestData(max=10)
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert ctx.poll(False) is True
    assert data.n == 1

    assert ctx.poll(True) is True
    assert data.n == 2

    poll_until(ctx, lambda: data.n >= 10)
    assert data.n == 10

    assert ctx.poll(False) is False
    assert data.n == 10
    data.bh.delete()


@valgrind
def test_bh_cancel(ctx):
    """/aio/bh/cancel"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    data.bh.cancel()
    assert data.n == 0

    assert ctx.poll(False) is False
    assert data.n == 0
    data.bh.delete()


@valgrind
def test_bh_delete(ctx):
    """/aio/bh/delete"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    data.bh.delete()
    assert data.n == 0

    assert ctx.poll(False) is False
    assert data.n == 0


@valgrind
def test_bh_delete_from_cb(ctx):
    """/aio/bh/callback-delete/one"""
    data1 = BHTestData(max=1)
    data1.bh = ctx.bh_new(data1.bh_delete_cb)

    data1.bh.schedule()
    assert data1.n == 0

    poll_until(ctx, lambda: data1.n >= data1.max)
    assert data1.n == data1.max
    assert data1.bh is None

    assert ctx.poll(False) is False


@valgrind
def test_bh_delete_from_cb_many(ctx):
    """/aio/bh/callback-delete/many"""
    data1 = BHTestData(max=1)
    data2 = BHTestData(max=3)
    data3 = BHTestData(max=2)
    data4 = BHTestData(max=4)
    all_data = (data1, data2, data3, data4)
    for data in all_data:
        data.bh = ctx.bh_new(data.bh_delete_cb)

    for data in all_data:
        data.bh.schedule()
    assert [d.n for d in all_data] == [0, 0, 0, 0]

    assert ctx.poll(False) is True
    assert [d.n for d in all_data] == [1, 1, 1, 1]
    assert data1.bh is None

    poll_until(ctx, lambda: all(d.n >= d.max for d in all_data))
    assert [d.n for d in all_data] == [1, 3, 2, 4]
    assert [d.bh for d in all_data] == [None, None, None, None]


@valgrind
def test_bh_flush(ctx):
    """/aio/bh/flush"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert ctx.poll(True) is True
    assert data.n == 1

    assert ctx.poll(False) is False
    assert data.n == 1
    data.bh.delete()


# ---- /aio/event ---------------------------------------------------------

@valgrind
def test_set_event_notifier(ctx):
    """/aio/event/add-remove"""
    data = EventNotifierTestData(active=0)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    assert ctx.poll(False) is False
    assert data.n == 0

    set_event_notifier(ctx, data.e, None)
    assert ctx.poll(False) is False
    assert data.n == 0
    data.close()


@valgrind
def test_wait_event_notifier(ctx):
    """/aio/event/wait"""
    data = EventNotifierTestData(active=1)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    drain(ctx)
    assert data.n == 0
    assert data.active == 1

    data.e.set()
    assert ctx.poll(False) is True
    assert data.n == 1
    assert data.active == 0

    assert ctx.poll(False) is False
    assert data.n == 1
    assert data.active == 0

    set_event_notifier(ctx, data.e, None)
    assert ctx.poll(False) is False
    assert data.n == 1

    data.close()


@valgrind
def test_flush_event_notifier(ctx):
    """/aio/event/flush"""
    data = EventNotifierTestData(active=10, auto_set=True)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    drain(ctx)
    assert data.n == 0
    assert data.active == 10

    data.e.set()
    assert ctx.poll(False) is True
    assert data.n == 1
    assert data.active == 9
    assert ctx.poll(False) is True

    wait_until_inactive(ctx, data)
    assert data.n == 10
    assert data.active == 0
    assert ctx.poll(False) is False

    set_event_notifier(ctx, data.e, None)
    assert ctx.poll(False) is False
    data.close()


@valgrind
def test_wait_event_notifier_noflush(ctx):
    """/aio/event/wait/no-flush-cb"""
    data = EventNotifierTestData()
    dummy = EventNotifierTestData(active=1)

    set_event_notifier(ctx, data.e, data.event_ready_cb)

    assert ctx.poll(False) is False
    assert data.n == 0

    # Until there is an active descriptor, poll() may or may not call
    # event_ready_cb.  Still, it must not block.
    data.e.set()
    assert ctx.poll(True) is True
    data.n = 0

    # An active event notifier forces poll() to look at EventNotifiers.
    set_event_notifier(ctx, dummy.e, dummy.event_ready_cb)

    data.e.set()
    assert ctx.poll(False) is True
    assert data.n == 1
    assert ctx.poll(False) is False
    assert data.n == 1

    data.e.set()
    assert ctx.poll(False) is True
    assert data.n == 2
    assert ctx.poll(False) is False
    assert data.n == 2

    dummy.e.set()
    wait_until_inactive(ctx, dummy)
    assert data.n == 2
    assert dummy.n == 1
    assert dummy.active == 0

    set_event_notifier(ctx, dummy.e, None)
    dummy.close()

    set_event_notifier(ctx, data.e, None)
    assert ctx.poll(False) is False
    assert data.n == 2

    data.close()


# ---- /aio/timer ---------------------------------------------------------

@valgrind
def test_timer_schedule(ctx):
    """/aio/timer/schedule, on CLOCK_VIRTUAL: clock_step() replaces the
    1 s sleep and the blocking wait for the deadline."""
    e = cevent.EventNotifier()
    set_event_notifier(ctx, e, dummy_io_handler_read)
    ctx.poll(False)

    data = TimerTestData(ctx, cevent.CLOCK_VIRTUAL, 750 * NS_PER_MS, max=2)
    data.timer.mod(virtual_now() + data.ns)

    assert data.n == 0

    # timer.mod() may have notified the context: clear that.
    drain(ctx)

    assert ctx.poll(False) is False
    assert data.n == 0

    ctx.clock_step(NS_PER_S)
    assert data.n == 0

    assert ctx.poll(False) is True
    assert data.n == 1

    # timer.mod() called by the callback
    drain(ctx)

    assert ctx.poll(False) is False
    assert data.n == 1

    # Upstream blocks until the deadline; virtual time moves only when
    # stepped, so step it to the deadline first (the wake-up of a blocked
    # poll by another thread's clock_step is in test_timer.py).
    ctx.clock_step(data.ns)
    assert ctx.poll(True) is True
    assert data.n == 2

    # As max is now 2, nothing should have gone off.
    assert ctx.poll(False) is False
    assert data.n == 2

    set_event_notifier(ctx, e, None)
    e.close()

    data.timer.delete()


def test_timer_schedule_realtime(ctx):
    """/aio/timer/schedule with upstream's REALTIME clock and sleep, with
    shorter durations (75 ms instead of 750 ms, scaled): the timer never
    fires early, and the blocking poll waits for its deadline."""
    ns = int(75 * NS_PER_MS * MULTIPLIER)
    e = cevent.EventNotifier()
    set_event_notifier(ctx, e, dummy_io_handler_read)
    ctx.poll(False)

    data = TimerTestData(ctx, cevent.CLOCK_REALTIME, ns, max=2)
    armed_at = realtime_now()
    data.timer.mod(armed_at + data.ns)

    assert data.n == 0

    drain(ctx)

    assert ctx.poll(False) is False
    assert data.n == 0

    time.sleep(ns * 4 / 3 / NS_PER_S)
    assert data.n == 0

    assert ctx.poll(False) is True
    assert data.n == 1
    assert data.run_times[0] >= armed_at + ns

    drain(ctx)

    assert ctx.poll(False) is False
    assert data.n == 1

    start = time.monotonic()
    assert ctx.poll(True) is True
    elapsed = time.monotonic() - start
    assert data.n == 2
    assert data.run_times[1] >= data.run_times[0] + ns
    assert elapsed < 10 * MULTIPLIER

    assert ctx.poll(False) is False
    assert data.n == 2

    set_event_notifier(ctx, e, None)
    e.close()

    data.timer.delete()


# ---- /aio/coroutine -------------------------------------------------------

@valgrind
def test_worker_thread_co_enter(ctx):
    """/aio/coroutine/worker-thread-co-enter: a worker thread hands work to
    the context (bh_schedule_oneshot instead of aio_co_enter); it runs in
    the home thread at the next poll."""
    home = threading.get_ident()
    ran_in = []

    def co_check_current_thread():
        ran_in.append(threading.get_ident())

    worker = threading.Thread(
        target=ctx.bh_schedule_oneshot, args=(co_check_current_thread,))
    worker.start()
    worker.join()
    assert ctx.poll(True) is True
    assert ran_in == [home]
    assert ctx.poll(False) is False


# ---- /aio-gsource -------------------------------------------------------

@valgrind
def test_source_flush(ctx):
    """/aio-gsource/flush"""
    assert iterate(ctx, False) is False
    ctx.notify()
    drain_source(ctx)
    assert iterate(ctx, False) is False


@valgrind
def test_source_bh_schedule(ctx):
    """/aio-gsource/bh/schedule"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert iterate(ctx, True) is True
    assert data.n == 1

    assert iterate(ctx, False) is False
    assert data.n == 1
    data.bh.delete()


@valgrind
def test_source_bh_schedule10(ctx):
    """/aio-gsource/bh/schedule10"""
    data = BHTestData(max=10)
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert iterate(ctx, False) is True
    assert data.n == 1

    assert iterate(ctx, True) is True
    assert data.n == 2

    drain_source(ctx)
    assert data.n == 10

    assert iterate(ctx, False) is False
    assert data.n == 10
    data.bh.delete()


@valgrind
def test_source_bh_cancel(ctx):
    """/aio-gsource/bh/cancel"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    data.bh.cancel()
    assert data.n == 0

    drain_source(ctx)
    assert data.n == 0
    data.bh.delete()


@valgrind
def test_source_bh_delete(ctx):
    """/aio-gsource/bh/delete"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    data.bh.delete()
    assert data.n == 0

    drain_source(ctx)
    assert data.n == 0


@valgrind
def test_source_bh_delete_from_cb(ctx):
    """/aio-gsource/bh/callback-delete/one: exactly one extra dispatch
    after the self-delete (bit 0 of notify_me stays set through a dispatch
    whose prepare reported ready)."""
    data1 = BHTestData(max=1)
    data1.bh = ctx.bh_new(data1.bh_delete_cb)

    data1.bh.schedule()
    assert data1.n == 0

    iterate(ctx, True)
    assert data1.n == data1.max
    assert data1.bh is None

    assert iterate(ctx, False) is True
    assert iterate(ctx, False) is False


@valgrind
def test_source_bh_delete_from_cb_many(ctx):
    """/aio-gsource/bh/callback-delete/many"""
    data1 = BHTestData(max=1)
    data2 = BHTestData(max=3)
    data3 = BHTestData(max=2)
    data4 = BHTestData(max=4)
    all_data = (data1, data2, data3, data4)
    for data in all_data:
        data.bh = ctx.bh_new(data.bh_delete_cb)

    for data in all_data:
        data.bh.schedule()
    assert [d.n for d in all_data] == [0, 0, 0, 0]

    assert iterate(ctx, False) is True
    assert [d.n for d in all_data] == [1, 1, 1, 1]
    assert data1.bh is None

    drain_source(ctx)
    assert [d.n for d in all_data] == [1, 3, 2, 4]
    assert [d.bh for d in all_data] == [None, None, None, None]


@valgrind
def test_source_bh_flush(ctx):
    """/aio-gsource/bh/flush"""
    data = BHTestData()
    data.bh = ctx.bh_new(data.bh_test_cb)

    data.bh.schedule()
    assert data.n == 0

    assert iterate(ctx, True) is True
    assert data.n == 1

    assert iterate(ctx, False) is False
    assert data.n == 1
    data.bh.delete()


@valgrind
def test_source_set_event_notifier(ctx):
    """/aio-gsource/event/add-remove"""
    data = EventNotifierTestData(active=0)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    drain_source(ctx)
    assert data.n == 0

    set_event_notifier(ctx, data.e, None)
    drain_source(ctx)
    assert data.n == 0
    data.close()


@valgrind
def test_source_wait_event_notifier(ctx):
    """/aio-gsource/event/wait"""
    data = EventNotifierTestData(active=1)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    drain_source(ctx)
    assert data.n == 0
    assert data.active == 1

    data.e.set()
    assert iterate(ctx, False) is True
    assert data.n == 1
    assert data.active == 0

    drain_source(ctx)
    assert data.n == 1
    assert data.active == 0

    set_event_notifier(ctx, data.e, None)
    drain_source(ctx)
    assert data.n == 1

    data.close()


@valgrind
def test_source_flush_event_notifier(ctx):
    """/aio-gsource/event/flush"""
    data = EventNotifierTestData(active=10, auto_set=True)
    set_event_notifier(ctx, data.e, data.event_ready_cb)
    drain_source(ctx)
    assert data.n == 0
    assert data.active == 10

    data.e.set()
    assert iterate(ctx, False) is True
    assert data.n == 1
    assert data.active == 9
    assert iterate(ctx, False) is True

    drain_source(ctx)
    assert data.n == 10
    assert data.active == 0
    assert iterate(ctx, False) is False

    set_event_notifier(ctx, data.e, None)
    drain_source(ctx)
    data.close()


@valgrind
def test_source_wait_event_notifier_noflush(ctx):
    """/aio-gsource/event/wait/no-flush-cb"""
    data = EventNotifierTestData()
    dummy = EventNotifierTestData(active=1)

    set_event_notifier(ctx, data.e, data.event_ready_cb)

    drain_source(ctx)
    assert data.n == 0

    # Until there is an active descriptor, the iteration may or may not
    # call event_ready_cb.  Still, it must not block.
    data.e.set()
    iterate(ctx, True)
    data.n = 0

    # An active event notifier forces the context to look at notifiers.
    set_event_notifier(ctx, dummy.e, dummy.event_ready_cb)

    data.e.set()
    assert iterate(ctx, False) is True
    assert data.n == 1
    assert iterate(ctx, False) is False
    assert data.n == 1

    data.e.set()
    assert iterate(ctx, False) is True
    assert data.n == 2
    assert iterate(ctx, False) is False
    assert data.n == 2

    dummy.e.set()
    drain_source(ctx)
    assert data.n == 2
    assert dummy.n == 1
    assert dummy.active == 0

    set_event_notifier(ctx, dummy.e, None)
    dummy.close()

    set_event_notifier(ctx, data.e, None)
    drain_source(ctx)
    assert data.n == 2

    data.close()


@valgrind
def test_source_timer_schedule(ctx):
    """/aio-gsource/timer/schedule, on CLOCK_VIRTUAL: clock_step() replaces
    the sleep and the waits."""
    e = cevent.EventNotifier()
    set_event_notifier(ctx, e, dummy_io_handler_read)
    drain_source(ctx)

    data = TimerTestData(ctx, cevent.CLOCK_VIRTUAL, 750 * NS_PER_MS, max=2)
    expiry = virtual_now() + data.ns
    data.timer.mod(expiry)

    assert data.n == 0

    ctx.clock_step(NS_PER_S)
    assert data.n == 0

    assert iterate(ctx, True) is True
    assert data.n == 1
    expiry += data.ns

    ctx.clock_step(data.ns)
    iterate_until(ctx, lambda: data.n >= 2)

    assert data.n == 2
    assert virtual_now() > expiry

    set_event_notifier(ctx, e, None)
    e.close()

    data.timer.delete()


def test_source_timer_schedule_realtime(ctx):
    """/aio-gsource/timer/schedule with upstream's REALTIME clock, with
    shorter durations (75 ms instead of 750 ms, scaled): the blocking
    iterations wait on the ms-rounded-up timeout and never fire early."""
    ns = int(75 * NS_PER_MS * MULTIPLIER)
    e = cevent.EventNotifier()
    set_event_notifier(ctx, e, dummy_io_handler_read)
    drain_source(ctx)

    data = TimerTestData(ctx, cevent.CLOCK_REALTIME, ns, max=2)
    expiry = realtime_now() + data.ns
    data.timer.mod(expiry)

    assert data.n == 0

    time.sleep(ns * 4 / 3 / NS_PER_S)
    assert data.n == 0

    assert iterate(ctx, True) is True
    assert data.n == 1
    assert data.run_times[0] >= expiry
    expiry += data.ns

    iterate_until(ctx, lambda: data.n >= 2, timeout=10)

    assert data.n == 2
    assert realtime_now() > expiry
    assert data.run_times[1] >= data.run_times[0] + ns

    set_event_notifier(ctx, e, None)
    e.close()

    data.timer.delete()
