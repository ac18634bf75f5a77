"""cevent.IOThread: QEMU's IOThread (iothread.c): a thread that runs an
AioContext's loop until it is stopped."""

import socket
import threading
import time

import pytest

import cevent
from support import Counter, scaled, virtual_now


def call_in(thread, fn, timeout=10.0):
    """Run fn() on the IOThread and return its result (ctx_run)."""
    done = threading.Event()
    result = []

    def bh():
        try:
            result.append((True, fn()))
        except BaseException as exc:
            result.append((False, exc))
        finally:
            done.set()

    thread.context.bh_schedule_oneshot(bh)
    assert done.wait(scaled(timeout)), "the IOThread did not run the BH"
    ok, value = result[0]
    if not ok:
        raise value
    return value


def test_defaults():
    t = cevent.IOThread()
    try:
        ctx = t.context
        assert isinstance(ctx, cevent.AioContext)
        assert ctx.poll_max_ns == 32768
        assert ctx.poll_grow == 0
        assert ctx.poll_shrink == 0
        assert t.name.startswith("cevent-iothread-")
    finally:
        t.stop()


def test_parameters():
    t = cevent.IOThread(1000, 3, 4, name="worker")
    try:
        assert (t.context.poll_max_ns, t.context.poll_grow,
                t.context.poll_shrink) == (1000, 3, 4)
        assert t.name == "worker"
    finally:
        t.stop()
    t = cevent.IOThread(poll_max_ns=0, poll_grow=0, poll_shrink=0)
    t.stop()


@pytest.mark.parametrize("kwargs", [{"poll_max_ns": -1}, {"poll_grow": -1},
                                    {"poll_shrink": -2}])
def test_negative_parameters(kwargs):
    with pytest.raises(ValueError):
        cevent.IOThread(**kwargs)


def test_default_names_are_distinct():
    threads = [cevent.IOThread() for _ in range(3)]
    try:
        names = [t.name for t in threads]
        assert len(set(names)) == 3
    finally:
        for t in threads:
            t.stop()


def test_backend(backend):
    with cevent.IOThread(backend=backend) as t:
        expected = {"io_uring": "io_uring", "epoll": "poll", "poll": "poll"}
        assert call_in(t, lambda: t.context.backend) == expected[backend]


def test_runs_callbacks_in_its_thread():
    with cevent.IOThread(name="cevent-test-io") as t:
        info = call_in(t, lambda: (threading.get_ident(),
                                   threading.current_thread().name))
        assert info[0] != threading.get_ident()
        assert info[0] == t.ident
        assert info[1] == "cevent-test-io"


def test_daemon_thread():
    with cevent.IOThread(name="cevent-test-daemon") as t:
        thread = call_in(t, threading.current_thread)
        assert thread.daemon
        assert thread.name == "cevent-test-daemon"
        assert t.is_alive()
    assert not t.is_alive()


def test_context_home_thread_is_the_iothread():
    with cevent.IOThread() as t:
        with pytest.raises(RuntimeError):
            t.context.poll(False)
        # and it can poll from inside (a nested poll in a BH)
        assert call_in(t, lambda: t.context.poll(False)) in (True, False)


def test_context_usable_before_start():
    t = cevent.IOThread()
    calls = Counter()
    bh = t.context.bh_new(calls)
    bh.schedule()
    t.start()
    try:
        deadline = time.monotonic() + scaled(5)
        while not calls.n:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        t.stop()
    assert calls.n == 1


def test_start_twice():
    t = cevent.IOThread()
    t.start()
    try:
        with pytest.raises(RuntimeError):
            t.start()
    finally:
        t.stop()
    with pytest.raises(RuntimeError):
        t.start()


def test_stop_idempotent_and_closes_context():
    t = cevent.IOThread()
    t.start()
    t.stop()
    t.stop()
    assert not t.is_alive()
    with pytest.raises(ValueError):
        t.context.notify()


def test_stop_without_start():
    t = cevent.IOThread()
    t.stop()
    t.stop()
    with pytest.raises(ValueError):
        t.context.notify()
    with pytest.raises(RuntimeError):
        t.start()


def test_stop_from_many_threads():
    t = cevent.IOThread()
    t.start()
    errors = []

    def stop():
        try:
            t.stop()
        except BaseException as exc:
            errors.append(exc)

    stoppers = [threading.Thread(target=stop) for _ in range(4)]
    for s in stoppers:
        s.start()
    for s in stoppers:
        s.join()
    assert errors == []
    assert not t.is_alive()


def test_stop_from_inside():
    t = cevent.IOThread()
    t.start()
    call_in(t, t.stop)
    deadline = time.monotonic() + scaled(5)
    while t.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    t.stop()
    with pytest.raises(ValueError):
        t.context.notify()


def test_context_manager():
    with cevent.IOThread() as t:
        assert isinstance(t, cevent.IOThread)
        assert t.is_alive()
    assert not t.is_alive()


def test_callback_exception_reraised_by_stop(monkeypatch):
    """A callback exception does not stop the IOThread; stop() re-raises
    the first one, later ones go to threading.excepthook."""
    hooked = []
    monkeypatch.setattr(threading, "excepthook",
                        lambda args: hooked.append(args.exc_value))

    class Boom(Exception):
        pass

    def raiser(msg):
        def cb():
            raise Boom(msg)
        return cb

    t = cevent.IOThread()
    t.start()
    t.context.bh_schedule_oneshot(raiser("first"))
    assert call_in(t, lambda: 42) == 42          # still running
    t.context.bh_schedule_oneshot(raiser("second"))
    assert call_in(t, lambda: 43) == 43
    with pytest.raises(Boom, match="first"):
        t.stop()
    assert [str(e) for e in hooked] == ["second"]
    t.stop()                                     # raised only once


def test_fd_handler_on_iothread():
    a, b = socket.socketpair()
    got = []
    done = threading.Event()
    try:
        with cevent.IOThread() as t:
            def on_read():
                got.append((threading.get_ident(), a.recv(10)))
                done.set()

            t.context.set_fd_handler(a, io_read=on_read)
            b.send(b"ping")
            assert done.wait(scaled(5))
            t.context.set_fd_handler(a)
            assert got == [(t.ident, b"ping")]
    finally:
        a.close()
        b.close()


def test_bh_schedule_on_iothread():
    with cevent.IOThread() as t:
        done = threading.Event()
        ran_in = []
        bh = t.context.bh_new(lambda: (ran_in.append(threading.get_ident()),
                                       done.set()))
        for _ in range(3):
            done.clear()
            bh.schedule()
            assert done.wait(scaled(5))
        assert ran_in == [t.ident] * 3
        bh.delete()


def test_notify_on_iothread():
    with cevent.IOThread() as t:
        for _ in range(10):
            t.context.notify()
        assert call_in(t, lambda: "alive") == "alive"


def test_virtual_timer_on_iothread():
    with cevent.IOThread() as t:
        done = threading.Event()
        timer = t.context.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                                    done.set)
        timer.mod(virtual_now() + 10**9)
        assert not done.wait(0.05)
        cevent.clock_step(10**9)
        assert done.wait(scaled(5))


def test_realtime_timer_on_iothread():
    with cevent.IOThread() as t:
        done = threading.Event()
        timer = t.context.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_MS,
                                    done.set)
        timer.mod(cevent.clock_ns() // cevent.SCALE_MS + 20)
        assert done.wait(scaled(5))


def test_many_iothreads_ping_pong():
    """BHs bounced between IOThreads: every hop is woken."""
    threads = [cevent.IOThread() for _ in range(3)]
    for t in threads:
        t.start()
    try:
        done = threading.Event()
        hops = []

        def hop(n):
            hops.append(threading.get_ident())
            if n == 0:
                done.set()
                return
            nxt = threads[n % len(threads)]
            nxt.context.bh_schedule_oneshot(lambda: hop(n - 1))

        threads[0].context.bh_schedule_oneshot(lambda: hop(300))
        assert done.wait(scaled(20))
        assert len(hops) == 301
        assert set(hops) == {t.ident for t in threads}
    finally:
        for t in threads:
            t.stop()
