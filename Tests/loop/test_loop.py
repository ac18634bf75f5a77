"""cevent's asyncio face (cevent.Loop, new_event_loop, run): what
CPython's asyncio tests (test_asyncio_compat.py) do not cover.

* the loop's clock is cevent's ns clock and timers never fire early;
* call_soon_threadsafe wakes a blocked loop from other threads, under load;
* each fd monitor in cevent.backends() really drives the loop;
* run(), close semantics, exception handler, no leaks (the policy and
  what changes between versions: test_asyncio_versions.py).
"""

import asyncio
import errno
import gc
import math
import os
import random
import signal
import socket
import threading
import time
import weakref
from fractions import Fraction

import pytest

import cevent
from cevent import _cevent
from support import checked_loop, echo_subprocess, run, scaled


@pytest.fixture
def loop(backend):
    yield from checked_loop(backend)


# ---- clock and timers -----------------------------------------------------

def test_time_is_cevent_clock(loop):
    t1 = time.monotonic_ns()
    now = loop.time()
    t2 = time.monotonic_ns()
    # QEMU_CLOCK_REALTIME is CLOCK_MONOTONIC: the same clock as
    # time.monotonic_ns(), read in between.
    assert t1 / 1e9 <= now <= t2 / 1e9
    c1 = cevent.clock_ns()
    now = loop.time()
    c2 = cevent.clock_ns()
    assert c1 / 1e9 <= now <= c2 / 1e9


def test_call_later_never_early(loop):
    rng = random.Random(0xCE)
    results = []
    count = 400

    def cb(t0_ns, delay_ns, handle_box):
        results.append((time.monotonic_ns() - t0_ns, delay_ns,
                        loop.time(), handle_box[0].when()))
        if len(results) == count:
            loop.stop()

    for i in range(count):
        # Small delays, many of them sub-ms and not multiples of the
        # epoll wait's 1 ms granularity.
        delay_ns = rng.choice([0, 1, 999, rng.randrange(1, 3_000_000)])
        box = []
        t0_ns = time.monotonic_ns()
        box.append(loop.call_later(delay_ns / 1e9, cb, t0_ns, delay_ns,
                                   box))
    loop.call_later(scaled(10), loop.stop)
    loop.run_forever()
    assert len(results) == count
    for elapsed_ns, delay_ns, now, when in results:
        assert elapsed_ns >= delay_ns
        assert now >= when


def test_deadline_rounding():
    # Deadlines are whole ns rounded up from the exact value of the float:
    # the float 0.1 is a little more than 100 ms.
    from cevent._loopcore import _ns_ceil as _seconds_to_ns_ceil

    rng = random.Random(8)
    values = [0, 1, 2, 0.1, 0.5, 1e-9, 1e-10, 1.5e-3, 1e5 + 1e-7, -0.25,
              -1e-9, 86400 * 365.0]
    values += [rng.uniform(0, 1e6) for _ in range(2000)]
    values += [rng.randrange(10**9) / 1e9 for _ in range(2000)]
    for value in values:
        assert _seconds_to_ns_ceil(value) == math.ceil(
            Fraction(value) * 10**9), value


def test_call_later_and_call_at_deadlines(loop):
    for delay in (0, 1e-9, 0.1, 0.0015, 3):
        now_ns = cevent.clock_ns()
        handle = loop.call_later(delay, lambda: None)
        assert handle._when_ns - now_ns >= Fraction(delay) * 10**9
        assert handle.when() == handle._when_ns / 1e9
        handle.cancel()
    for when in (loop.time(), loop.time() + 1e-7, 12345.000000001):
        handle = loop.call_at(when, lambda: None)
        assert handle.when() == when
        assert handle._when_ns / 1e9 >= when
        assert handle._when_ns >= Fraction(when) * 10**9
        handle.cancel()


def test_call_at_never_early(loop):
    fired = []
    whens = [loop.time() + d for d in (0, 1e-9, 1e-7, 1e-5, 1e-4, 2e-3)]
    for when in whens:
        loop.call_at(when, lambda w=when: fired.append((loop.time(), w)))
    loop.call_at(max(whens) + 1e-3, loop.stop)
    loop.run_forever()
    assert len(fired) == len(whens)
    for now, when in fired:
        assert now >= when


def test_sleep_never_early(loop):
    async def main():
        for delay in (1e-6, 1e-4, 1.5e-3, 0.01):
            t0 = time.monotonic_ns()
            await asyncio.sleep(delay)
            assert time.monotonic_ns() - t0 >= Fraction(delay) * 10**9
    run(loop, main())


def test_timers_fire_in_order(loop):
    order = []
    for i, d in enumerate([0.003, 0.001, 0.002, 0.001, 0]):
        loop.call_later(d, order.append, (d, i))
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    assert order == sorted(order)


def test_call_later_infinity_never_fires(loop):
    fired = []
    h = loop.call_later(math.inf, fired.append, 1)
    assert h.when() == math.inf
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired == []
    h.cancel()
    with pytest.raises(ValueError):
        loop.call_later(math.nan, fired.append, 1)


def test_cancelled_timers_are_purged(loop):
    handles = [loop.call_later(100, lambda: None) for _ in range(300)]
    for h in handles[:250]:
        h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(loop._scheduled) == 50
    for h in handles[250:]:
        h.cancel()


def test_wait_releases_gil(loop):
    # While the loop waits for a timer, another Python thread runs.
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = len(ticks)
        run(loop, asyncio.sleep(0.1))
        assert len(ticks) > before
    finally:
        stop.set()
        t.join()


# ---- call_soon_threadsafe ----------------------------------------------

def test_call_soon_threadsafe_wakes_idle_loop(loop):
    # No fd ready, no timer: the loop blocks in ctx.poll(True) until
    # another thread's call_soon_threadsafe (ctx.notify()) wakes it.
    for _ in range(20):
        started = threading.Event()
        loop.call_soon(started.set)
        t = threading.Thread(
            target=lambda: (started.wait(), time.sleep(0.002),
                            loop.call_soon_threadsafe(loop.stop)))
        t.start()
        loop.run_forever()
        t.join()


def test_call_soon_threadsafe_under_load(loop):
    nthreads, per_thread = 4, 2000
    got = []
    done = threading.Barrier(nthreads + 1)

    def producer(k):
        for i in range(per_thread):
            loop.call_soon_threadsafe(got.append, (k, i))
            if i % 100 == 0:
                time.sleep(0)
        done.wait()

    async def consumer():
        # Keep the loop busy with its own I/O and timers meanwhile.
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            while len(got) < nthreads * per_thread:
                await loop.sock_sendall(a, b"x")
                assert await loop.sock_recv(b, 1) == b"x"
                await asyncio.sleep(0)
        finally:
            a.close()
            b.close()

    threads = [threading.Thread(target=producer, args=(k,))
               for k in range(nthreads)]
    for t in threads:
        t.start()
    run(loop, consumer(), timeout=30)
    done.wait()
    for t in threads:
        t.join()
    assert len(got) == nthreads * per_thread
    for k in range(nthreads):
        # Each producer's callbacks run in its order.
        assert [i for kk, i in got if kk == k] == list(range(per_thread))


def test_run_in_executor_and_to_thread(loop):
    async def main():
        a = await loop.run_in_executor(None, sum, [1, 2, 3])
        b = await asyncio.to_thread(pow, 2, 10)
        return a, b
    assert run(loop, main()) == (6, 1024)


def test_loop_created_in_one_thread_runs_in_another(backend):
    lp = cevent.new_event_loop(backend=backend)
    result = []

    def runner():
        result.append(lp.run_until_complete(asyncio.sleep(0.001, "ok")))

    t = threading.Thread(target=runner)
    t.start()
    t.join(scaled(10))
    assert result == ["ok"]
    # And back in this thread.
    assert lp.run_until_complete(asyncio.sleep(0, "again")) == "again"
    lp.close()


# ---- backends -------------------------------------------------------------

def test_backend_is_used(loop, backend):
    assert loop.context.backend in (backend, "poll")
    stats0 = loop.context.stats()

    async def echo_roundtrip():
        async def handle(reader, writer):
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    assert run(loop, echo_roundtrip()) == b"hello"
    stats = loop.context.stats()
    assert stats["iterations"] > stats0["iterations"]
    if backend == "epoll":
        # QEMU's poll/epoll pair: upgrades once 64 fds are watched.
        pairs = [socket.socketpair() for _ in range(70)]
        try:
            hits = []
            for a, _ in pairs:
                loop.add_reader(a, hits.append, a)
            pairs[-1][1].send(b"x")

            async def until_hit():
                while not hits:
                    await asyncio.sleep(0.001)
            run(loop, until_hit())
            assert set(hits) == {pairs[-1][0]}
            assert loop.backend == "epoll"
            for a, _ in pairs:
                assert loop.remove_reader(a)
        finally:
            for a, b in pairs:
                a.close()
                b.close()
    else:
        assert loop.backend == backend


def test_backend_keyword_errors():
    with pytest.raises(ValueError):
        cevent.new_event_loop(backend="kqueue")
    with pytest.raises(TypeError):
        cevent.new_event_loop(backend=3)
    for name, reason in cevent.unavailable_backends().items():
        with pytest.raises(OSError):
            cevent.new_event_loop(backend=name)


def test_default_backend(monkeypatch):
    """A Loop made without a backend takes AioContext's default, QEMU's
    order (io_uring when usable, else the poll/epoll pair, moved to epoll
    from its first iteration); on io_uring its transports read through
    the ring."""
    from cevent import _asyncio_layout
    from cevent._loop import _default_backend

    monkeypatch.delenv("CEVENT_LOOP_BACKEND", raising=False)
    assert _default_backend() is None
    lp = cevent.new_event_loop()
    try:
        lp.run_until_complete(asyncio.sleep(0))
        if "io_uring" in cevent.backends():
            assert lp.backend == "io_uring"
            assert lp._ring_reads == _asyncio_layout.NATIVE["ring_reads"]
        else:
            assert lp.backend == "epoll"
    finally:
        lp.close()
    with cevent.AioContext() as ctx:
        assert ctx.backend == cevent.backends()[0]


@pytest.mark.parametrize("name", ["poll", "epoll", "io_uring"])
def test_default_backend_from_environment(monkeypatch, name):
    """CEVENT_LOOP_BACKEND names the fd monitor of a Loop made without
    one; an explicit backend still wins."""
    if name not in cevent.backends():
        pytest.skip(cevent.unavailable_backends()[name])
    monkeypatch.setenv("CEVENT_LOOP_BACKEND", name)
    lp = cevent.new_event_loop()
    try:
        lp.run_until_complete(asyncio.sleep(0))
        assert lp.backend == name
    finally:
        lp.close()
    other = "poll" if name != "poll" else "epoll"
    lp = cevent.new_event_loop(backend=other)
    try:
        lp.run_until_complete(asyncio.sleep(0))
        assert lp.backend == other
    finally:
        lp.close()


def test_default_backend_from_environment_errors(monkeypatch):
    """A CEVENT_LOOP_BACKEND that is no fd monitor is a ValueError, one
    this process cannot use an OSError saying why, each naming the
    variable; an empty one is unset."""
    import cevent._loop as loop_mod

    monkeypatch.setenv("CEVENT_LOOP_BACKEND", "kqueue")
    with pytest.raises(ValueError, match="CEVENT_LOOP_BACKEND='kqueue'"):
        cevent.new_event_loop()
    monkeypatch.setenv("CEVENT_LOOP_BACKEND", "io_uring")
    monkeypatch.setattr(loop_mod, "backends", lambda: ("epoll", "poll"))
    monkeypatch.setattr(loop_mod, "unavailable_backends",
                        lambda: {"io_uring": "kernel.io_uring_disabled=2"})
    with pytest.raises(OSError) as info:
        cevent.new_event_loop()
    assert info.value.errno == errno.ENODEV
    assert "CEVENT_LOOP_BACKEND=io_uring: kernel.io_uring_disabled=2" \
        in str(info.value)
    monkeypatch.setenv("CEVENT_LOOP_BACKEND", "")
    assert loop_mod._default_backend() is None


def test_add_reader_writer(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        events = []
        loop.add_writer(a, events.append, "w")
        loop.add_reader(a, events.append, "r")
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        assert "w" in events and "r" not in events
        assert loop.remove_writer(a)
        assert not loop.remove_writer(a)
        events.clear()
        b.send(b"x")
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        assert "r" in events and "w" not in events
        assert loop.remove_reader(a)
        assert not loop.remove_reader(a)
        # A reader replaced by another: only the new one runs.
        loop.add_reader(a, events.append, "old")
        loop.add_reader(a, events.append, "new")
        events.clear()
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        assert "new" in events and "old" not in events
        assert loop.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_signal_handler_wakes_loop(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    try:
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)

        async def until():
            while not got:
                await asyncio.sleep(0.005)
        run(loop, until())
        assert got == ["usr1"]
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1)


def test_subprocess(loop):
    """With the child watcher asyncio of this version picks by itself (a
    thread on 3.11, pidfd on 3.12+; child watchers are deprecated from 3.12
    and gone in 3.14)."""
    assert echo_subprocess(loop) == (b"hi\n", 0)


def test_keyboard_interrupt_from_wait(loop):
    def alarm(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()  # nothing to do: blocks in ctx.poll(True)
        assert time.monotonic() - t0 < scaled(5)
        # The loop is still usable.
        assert loop.run_until_complete(asyncio.sleep(0, 7)) == 7
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- exceptions -----------------------------------------------------------

def test_callback_exceptions_go_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    a, b = socket.socketpair()
    try:
        def boom(what):
            raise ZeroDivisionError(what)

        def read_boom():
            loop.remove_reader(a)
            boom("reader")

        loop.call_soon(boom, "soon")
        loop.call_later(0.001, boom, "later")
        loop.add_reader(a, read_boom)
        b.send(b"x")
        threading.Thread(
            target=loop.call_soon_threadsafe, args=(boom, "threadsafe")
        ).start()
        ran_after = []
        loop.call_later(0.002, ran_after.append, True)
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
    finally:
        a.close()
        b.close()
    assert ran_after == [True]
    whats = sorted(str(c["exception"]) for c in contexts)
    assert whats == ["later", "reader", "soon", "threadsafe"]
    for c in contexts:
        assert isinstance(c["exception"], ZeroDivisionError)
        assert "handle" in c


def test_base_exception_propagates(loop):
    def stop():
        raise SystemExit(3)

    loop.call_soon(stop)
    with pytest.raises(SystemExit):
        loop.run_forever()
    assert not loop.is_running()


# ---- policy and run -----------------------------------------------------

def test_run_returns_result():
    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, cevent.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
        await asyncio.sleep(0.001)
        return 42

    assert cevent.run(main()) == 42


def test_run_debug_and_kwargs():
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert cevent.run(main(), debug=True) is True
    assert cevent.run(main(), debug=False) is False
    assert cevent.run(
        main(), loop_factory=lambda: cevent.new_event_loop(backend="poll")
    ) is False


def test_run_errors():
    with pytest.raises(ValueError):
        cevent.run(42)

    async def nested():
        coro = asyncio.sleep(0)
        try:
            cevent.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError):
        cevent.run(nested())

    async def main():
        return 1

    with pytest.raises(TypeError):
        cevent.run(main(), loop_factory=asyncio.new_event_loop)


def test_asyncio_runner_loop_factory():
    async def main():
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=cevent.new_event_loop) as runner:
        assert runner.run(main()) is cevent.Loop


def test_names_exported():
    for name in ("Loop", "new_event_loop", "run"):
        assert name in cevent.__all__
        assert hasattr(cevent, name)
    assert issubclass(cevent.Loop, asyncio.AbstractEventLoop)


# ---- close semantics and leaks ----------------------------------------

def test_close(loop):
    ctx = loop.context
    loop.close()
    assert loop.is_closed()
    assert ctx.closed
    loop.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1, lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_forever()


def test_close_while_running_refused(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(try_close)
    loop.run_forever()
    assert len(errors) == 1
    assert not loop.is_closed()


def test_close_from_other_thread(backend):
    lp = cevent.new_event_loop(backend=backend)
    lp.run_until_complete(asyncio.sleep(0))
    t = threading.Thread(target=lp.close)
    t.start()
    t.join()
    assert lp.is_closed()


def test_close_releases_callbacks(loop):
    a, b = socket.socketpair()

    class Cb:
        def __call__(self):
            pass

    reader, timer_cb, soon_cb = Cb(), Cb(), Cb()
    refs = [weakref.ref(x) for x in (reader, timer_cb, soon_cb)]
    loop.add_reader(a, reader)
    loop.call_later(10, timer_cb)
    loop.call_soon(soon_cb)
    del reader, timer_cb, soon_cb
    try:
        loop.close()
    finally:
        a.close()
        b.close()
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_remove_reader_releases_callback(loop):
    a, b = socket.socketpair()
    try:
        class Cb:
            def __call__(self):
                pass
        cb = Cb()
        ref = weakref.ref(cb)
        loop.add_reader(a, cb)
        del cb
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.remove_reader(a)
        loop.run_until_complete(asyncio.sleep(0))
        gc.collect()
        assert ref() is None
    finally:
        a.close()
        b.close()


def test_unclosed_loop_is_collected(backend):
    gc.collect()
    before = _cevent._live_counts()
    lp = cevent.new_event_loop(backend=backend)
    lp.run_until_complete(asyncio.sleep(0))
    with pytest.warns(ResourceWarning):
        del lp
        gc.collect()
    gc.collect()
    assert _cevent._live_counts() == before


def test_no_growth(backend):
    """Many loops with I/O, timers and threadsafe calls: no callback
    records or contexts left behind, no growth in live objects."""

    async def work(loop):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            await loop.sock_sendall(a, b"ping")
            assert await loop.sock_recv(b, 4) == b"ping"
            loop.call_later(100, lambda: None).cancel()
            fut = loop.create_future()
            threading.Thread(target=loop.call_soon_threadsafe,
                             args=(fut.set_result, 1)).start()
            await fut
            await asyncio.sleep(0.0001)
        finally:
            a.close()
            b.close()

    def one():
        lp = cevent.new_event_loop(backend=backend)
        try:
            lp.run_until_complete(work(lp))
        finally:
            lp.close()

    for _ in range(5):
        one()
    gc.collect()
    counts = _cevent._live_counts()
    objects = len(gc.get_objects())
    for _ in range(50):
        one()
    gc.collect()
    assert _cevent._live_counts() == counts
    assert len(gc.get_objects()) - objects < 200


# ---- the socket transport's reads -------------------------------------------

class _Collect(asyncio.Protocol):
    def __init__(self):
        self.chunks = []
        self.eof = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.chunks.append(data)

    def eof_received(self):
        self.eof.set_result(None)


def _receive(loop, payloads, max_size=None):
    """The chunks data_received() gets for payloads sent through a
    socketpair to a transport of ``loop`` (with its max_size changed to
    ``max_size`` when given), up to EOF."""
    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        transport, proto = await loop.connect_accepted_socket(_Collect, a)
        if max_size is not None:
            transport.max_size = max_size
        for payload in payloads:
            await loop.sock_sendall(b, payload)
        b.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(proto.eof, 10)
        b.close()
        kind = type(transport)
        transport.close()
        return kind, proto.chunks

    return run(loop, main())


def test_socket_transport_reads_into_the_loop_buffer(loop):
    from cevent._transport import _SocketTransport

    payloads = [os.urandom(n) for n in (1, 1000, 70_000, 600_000)]
    kind, chunks = _receive(loop, payloads)
    assert kind is _SocketTransport
    # every chunk is its own bytes object, not a view of the shared buffer
    assert all(type(c) is bytes for c in chunks)
    assert max(len(c) for c in chunks) <= 256 * 1024
    assert b"".join(chunks) == b"".join(payloads)


def test_socket_transport_own_max_size(loop):
    _, chunks = _receive(loop, [b"x" * 100], max_size=10)  # asyncio's path
    assert b"".join(chunks) == b"x" * 100
    assert max(len(c) for c in chunks) <= 10
