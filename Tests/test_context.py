"""cevent.AioContext: construction, backends, notification, the GSource
(embedding) path, poll parameters and statistics."""

import os
import subprocess
import sys
import threading
import time

import pytest

import cevent
from support import (
    NS_PER_MS,
    Counter,
    drain,
    readable,
    run_until,
    scaled,
    virtual_now,
)

ALL_BACKENDS = ("io_uring", "epoll", "poll")
# The monitor a fresh context runs on: "epoll" starts on poll with an
# epoll fd prepared, and upgrades later (test_fdmon_epoll.py).
INITIAL_MONITOR = {"io_uring": "io_uring", "epoll": "poll", "poll": "poll"}


# ---- module level -------------------------------------------------------

@pytest.mark.valgrind
def test_backends():
    backends = cevent.backends()
    assert isinstance(backends, tuple)
    assert backends
    assert set(backends) <= set(ALL_BACKENDS)
    assert len(set(backends)) == len(backends)
    # best first
    assert list(backends) == [b for b in ALL_BACKENDS if b in backends]
    assert "poll" in backends


@pytest.mark.valgrind
def test_unavailable_backends():
    unavailable = cevent.unavailable_backends()
    assert isinstance(unavailable, dict)
    assert set(unavailable).isdisjoint(cevent.backends())
    assert set(unavailable) | set(cevent.backends()) == set(ALL_BACKENDS)
    for name, reason in unavailable.items():
        assert isinstance(reason, str) and reason.strip(), name
        assert "\n" not in reason
    # A copy: changing it changes nothing.
    unavailable["poll"] = "x"
    assert "poll" not in cevent.unavailable_backends()


def test_io_uring_required():
    """With CEVENT_REQUIRE_IO_URING=1 (builds made with CEVENT_IO_URING=1),
    io_uring must not quietly vanish from the usable backends."""
    if os.environ.get("CEVENT_REQUIRE_IO_URING") == "1":
        assert "io_uring" in cevent.backends(), \
            cevent.unavailable_backends().get("io_uring")


SECCOMP_NO_IO_URING = r"""
import ctypes, errno, sys

# A seccomp filter that makes io_uring_setup (425 on every architecture)
# fail with EPERM, as a container runtime's default profile does.
class sock_filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]
class sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort),
                ("filter", ctypes.POINTER(sock_filter))]
prog = (sock_filter * 4)(
    sock_filter(0x20, 0, 0, 0),                       # ld nr
    sock_filter(0x15, 0, 1, 425),                     # jeq io_uring_setup
    sock_filter(0x06, 0, 0, 0x00050000 | errno.EPERM),  # ret ERRNO(EPERM)
    sock_filter(0x06, 0, 0, 0x7FFF0000),              # ret ALLOW
)
fprog = sock_fprog(4, prog)
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                       ctypes.c_ulong, ctypes.c_ulong]
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) == 0
assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                  ctypes.addressof(fprog), 0, 0) == 0, ctypes.get_errno()

import cevent
assert "io_uring" not in cevent.backends(), cevent.backends()
reason = cevent.unavailable_backends()["io_uring"]
assert isinstance(reason, str) and reason, reason
try:
    cevent.AioContext("io_uring")
except OSError as exc:
    assert exc.errno in (errno.EPERM, errno.ENOSYS), exc
    assert str(exc)
else:
    raise AssertionError("AioContext('io_uring') did not raise")
with cevent.AioContext() as ctx:
    assert ctx.backend == "poll", ctx.backend
    assert ctx.poll(False) is False
print("ok", reason)
"""


def test_io_uring_refused_by_the_kernel():
    """When the kernel refuses a ring (here: a seccomp filter in a child
    process), io_uring is not in backends(), unavailable_backends() says
    why, forcing it raises OSError and the default falls back to poll."""
    proc = subprocess.run([sys.executable, "-c", SECCOMP_NO_IO_URING],
                          capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok ")
    assert proc.stderr == ""


@pytest.mark.valgrind
def test_clock_constants():
    assert (cevent.SCALE_NS, cevent.SCALE_US, cevent.SCALE_MS) == (
        1, 1000, 1000000)
    clocks = {cevent.CLOCK_REALTIME, cevent.CLOCK_VIRTUAL, cevent.CLOCK_HOST}
    assert len(clocks) == 3
    assert all(isinstance(c, int) for c in clocks)


def test_clock_ns():
    r1 = cevent.clock_ns()
    r2 = cevent.clock_ns(cevent.CLOCK_REALTIME)
    assert 0 < r1 <= r2
    host = cevent.clock_ns(cevent.CLOCK_HOST)
    assert abs(host - time.time_ns()) < 5 * 10**9
    v1 = virtual_now()
    time.sleep(0.01)
    assert virtual_now() == v1     # only clock_step moves it


def test_clock_step():
    v = virtual_now()
    cevent.clock_step(0)
    assert virtual_now() == v
    cevent.clock_step(1234)
    assert virtual_now() == v + 1234
    with cevent.AioContext() as ctx:
        ctx.clock_step(766)
    assert virtual_now() == v + 2000


def test_clock_step_any_thread():
    v = virtual_now()
    threads = [threading.Thread(target=cevent.clock_step, args=(1000,))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert virtual_now() == v + 4000


def test_version():
    assert isinstance(cevent.__version__, str)
    assert cevent.__version__[0].isdigit()


# ---- construction -------------------------------------------------------

@pytest.mark.valgrind
def test_initial_monitor(backend):
    with cevent.AioContext(backend) as ctx:
        assert ctx.backend == INITIAL_MONITOR[backend]
    with cevent.AioContext(backend=backend) as ctx:
        assert ctx.backend == INITIAL_MONITOR[backend]


#: IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, IORING_FEAT_NODROP
COOP_TASKRUN, TASKRUN_FLAG, FEAT_NODROP = 1 << 8, 1 << 9, 1 << 1
#: IORING_SETUP_NO_SQARRAY
NO_SQARRAY = 1 << 16


def kernel_at_least(major, minor):
    release = os.uname().release.split("-")[0].split(".")
    return (int(release[0]), int(release[1])) >= (major, minor)


def test_io_uring_ring_properties(backend):
    """The ring's features and setup flags: task-work coalescing with its
    flag from Linux 5.19 on (Modules/PORTING.md), nothing off io_uring."""
    with cevent.AioContext(backend) as ctx:
        if backend != "io_uring":
            assert ctx.io_uring_features == 0
            assert ctx.io_uring_setup_flags == 0
            return
        assert ctx.io_uring_features & FEAT_NODROP
        if kernel_at_least(5, 19):
            # liburing 2.6+ adds NO_SQARRAY by itself where the kernel has
            # it (6.6+): the one flag cevent does not ask for.
            assert (ctx.io_uring_setup_flags & ~NO_SQARRAY
                    == COOP_TASKRUN | TASKRUN_FLAG)
        else:
            assert ctx.io_uring_setup_flags == 0
        # The embedding fd tears the ring down: nothing left to report
        ctx.fileno()
        assert ctx.backend != "io_uring"
        assert ctx.io_uring_features == 0
        assert ctx.io_uring_setup_flags == 0
    with pytest.raises(ValueError):
        ctx.io_uring_setup_flags


def test_default_backend():
    """None picks what aio_context_setup picks: io_uring when usable, else
    poll (with an epoll fd prepared)."""
    expected = "io_uring" if "io_uring" in cevent.backends() else "poll"
    with cevent.AioContext() as ctx:
        assert ctx.backend == expected
    with cevent.AioContext(None) as ctx:
        assert ctx.backend == expected


@pytest.mark.valgrind
def test_default_poll_params(ctx):
    assert ctx.poll_max_ns == 0
    assert ctx.poll_grow == 0
    assert ctx.poll_shrink == 0
    assert ctx.poll_ns == 0


@pytest.mark.valgrind
def test_context_manager(backend):
    with cevent.AioContext(backend) as ctx:
        assert isinstance(ctx, cevent.AioContext)
        assert ctx.poll(False) is False
    with pytest.raises(ValueError):
        ctx.poll(False)
    ctx.close()


@pytest.mark.valgrind
def test_close_idempotent(backend):
    ctx = cevent.AioContext(backend)
    ctx.close()
    ctx.close()
    with pytest.raises(ValueError):
        ctx.notify()


def test_many_contexts(backend):
    contexts = [cevent.AioContext(backend) for _ in range(50)]
    try:
        for ctx in contexts:
            assert ctx.poll(True) is False
    finally:
        for ctx in contexts:
            ctx.close()


# ---- poll() and notify() ---------------------------------------------------

@pytest.mark.valgrind
def test_fresh_context_is_notified(ctx):
    """The first blocking poll returns False at once: creation notified the
    context, and notify is not progress."""
    start = time.monotonic()
    assert ctx.poll(True) is False
    assert ctx.poll(False) is False
    assert time.monotonic() - start < scaled(5)


@pytest.mark.valgrind
def test_poll_arguments(ctx):
    assert ctx.poll() is False
    assert ctx.poll(blocking=False) is False
    assert ctx.poll(0) is False
    with pytest.raises(TypeError):
        ctx.poll(False, True)
    with pytest.raises(TypeError):
        ctx.poll(block=False)


@pytest.mark.valgrind
def test_notify_is_not_progress(ctx):
    ctx.poll(False)
    ctx.notify()
    start = time.monotonic()
    assert ctx.poll(True) is False
    assert time.monotonic() - start < scaled(5)


def test_notify_wakes_blocked_poll(ctx):
    assert ctx.poll(True) is False        # consume the notification

    def wake():
        time.sleep(0.05)
        ctx.notify()

    thread = threading.Thread(target=wake)
    start = time.monotonic()
    thread.start()
    try:
        assert ctx.poll(True) is False
    finally:
        thread.join()
    elapsed = time.monotonic() - start
    assert 0.04 < elapsed < scaled(5)


def test_registration_notifies(ctx):
    """set_fd_handler, set_poll_params and set_aio_params notify: the next
    blocking poll does not sleep."""
    r, w = os.pipe()
    try:
        for action in (
            lambda: ctx.set_fd_handler(r, io_read=lambda: None),
            lambda: ctx.set_fd_handler(r),
            lambda: ctx.set_poll_params(0),
            lambda: ctx.set_aio_params(0),
        ):
            drain(ctx)
            action()
            start = time.monotonic()
            assert ctx.poll(True) is False
            assert time.monotonic() - start < scaled(5)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.valgrind
def test_nested_poll_allowed(ctx):
    results = []

    def outer():
        inner_bh.schedule()
        results.append(ctx.poll(False))

    inner = Counter()
    inner_bh = ctx.bh_new(inner)
    outer_bh = ctx.bh_new(outer)
    outer_bh.schedule()
    assert ctx.poll(False) is True
    # inner_bh was scheduled during the outer aio_bh_poll: the nested poll
    # takes it in its own slice.
    assert results == [True]
    assert inner.n == 1
    assert ctx.poll(False) is False
    inner_bh.delete()
    outer_bh.delete()


# ---- compute_timeout() ---------------------------------------------------

@pytest.mark.valgrind
def test_compute_timeout(ctx):
    assert ctx.compute_timeout() == -1
    bh = ctx.bh_new(lambda: None)
    bh.schedule()
    assert ctx.compute_timeout() == 0
    bh.cancel()
    assert ctx.compute_timeout() == -1
    bh.schedule_idle()
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    ctx.poll(False)
    assert ctx.compute_timeout() == -1

    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, lambda: None)
    timer.mod(virtual_now() + 123456789)
    assert ctx.compute_timeout() == 123456789
    bh.schedule_idle()
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    bh.schedule()                     # stays idle (sticky until it runs)
    assert ctx.compute_timeout() == 10 * NS_PER_MS
    ctx.poll(False)
    timer.mod(virtual_now() + 5 * NS_PER_MS)
    assert ctx.compute_timeout() == 5 * NS_PER_MS
    ctx.clock_step(5 * NS_PER_MS)
    assert ctx.compute_timeout() == 0
    ctx.poll(False)
    assert ctx.compute_timeout() == -1
    timer.mod(virtual_now() - 1)
    assert ctx.compute_timeout() == 0
    timer.delete()
    assert ctx.compute_timeout() == -1
    bh.delete()


# ---- poll parameters -----------------------------------------------------

@pytest.mark.valgrind
def test_set_poll_params(ctx):
    ctx.set_poll_params(32768, 3, 5)
    assert (ctx.poll_max_ns, ctx.poll_grow, ctx.poll_shrink) == (32768, 3, 5)
    assert ctx.poll_ns == 0
    ctx.set_poll_params(max_ns=1000)
    assert (ctx.poll_max_ns, ctx.poll_grow, ctx.poll_shrink) == (1000, 0, 0)
    ctx.set_poll_params(0)
    assert ctx.poll_max_ns == 0


def _timed_iteration(ctx, ns):
    """Consume pending notifications, then one blocking poll() that waits
    about ns for a REALTIME timer and runs it.  Returns poll_ns right
    before and right after that blocking poll."""
    fired = []
    timer = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS,
                          lambda: fired.append(1))
    timer.mod(cevent.clock_ns() + ns)
    ctx.poll(False)                    # accept timer.mod()'s notification
    before = ctx.poll_ns
    assert ctx.poll(True) is True
    after = ctx.poll_ns
    assert fired == [1]
    return before, after


def _distinct(values):
    out = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_poll_ns_grows(ctx):
    """Iterations longer than poll_ns but shorter than poll_max_ns grow it:
    0 -> 4000 -> 8000 -> 16000 ... (grow 0 means x2; each poll() grows it
    at most once)."""
    ctx.set_poll_params(10**9)
    assert ctx.poll_ns == 0
    # The first call after enabling always grows, even a non-blocking one.
    ctx.poll(False)
    assert ctx.poll_ns == 4000
    seen = [ctx.poll_ns]
    for _ in range(10):
        before, after = _timed_iteration(ctx, 2 * NS_PER_MS)
        assert after == 2 * before
        seen += [before, after]
        if len(_distinct(seen)) >= 4:
            break
    assert _distinct(seen)[:4] == [4000, 8000, 16000, 32000]

    # set_poll_params resets poll_ns
    ctx.set_poll_params(10**9, 3)
    assert ctx.poll_ns == 0
    ctx.poll(False)
    assert ctx.poll_ns == 4000
    seen = [ctx.poll_ns]
    for _ in range(10):
        before, after = _timed_iteration(ctx, 2 * NS_PER_MS)
        assert after == 3 * before
        seen += [before, after]
        if len(_distinct(seen)) >= 3:
            break
    assert _distinct(seen)[:3] == [4000, 12000, 36000]


def test_poll_ns_capped(ctx):
    """poll_ns never exceeds poll_max_ns (the first growth gives
    min(4000, poll_max_ns), unless that iteration already took longer than
    poll_max_ns and shrank it to 0)."""
    ctx.set_poll_params(1000)
    seen = []
    for _ in range(20):
        ctx.poll(False)
        seen.append(ctx.poll_ns)
    for _ in range(3):
        seen += _timed_iteration(ctx, NS_PER_MS)
    assert set(seen) <= {0, 1000}


def test_poll_ns_shrinks(ctx):
    """An iteration longer than poll_max_ns shrinks poll_ns: divided by
    poll_shrink, or reset to 0 when it is 0."""
    ctx.set_poll_params(100_000, 0, 2)
    _first_grow(ctx)
    before, after = _timed_iteration(ctx, 5 * NS_PER_MS)
    assert before in (4000, 8000)
    assert after == before // 2

    ctx.set_poll_params(100_000, 0, 0)
    _first_grow(ctx)
    before, after = _timed_iteration(ctx, 5 * NS_PER_MS)
    assert after == 0


def _first_grow(ctx):
    """Non-blocking polls until one is shorter than poll_max_ns (on a
    loaded or sanitized host one may take longer, and shrinks instead):
    that one takes poll_ns from 0 to the first step, 4 us."""
    assert ctx.poll_ns == 0
    for _ in range(1000):
        grows = ctx.stats()["poll_grow"]
        ctx.poll(False)
        if ctx.stats()["poll_grow"] > grows:
            break
        assert ctx.poll_ns == 0
    assert ctx.poll_ns == 4000


@pytest.mark.valgrind
def test_set_aio_params(ctx):
    ctx.set_aio_params(0)
    ctx.set_aio_params(max_batch=32)
    ctx.set_aio_params(2**40)


# ---- stats() ------------------------------------------------------------

STATS_KEYS = {"iterations", "blocked_ns", "polling_ns", "bh_dispatches",
              "handler_dispatches", "timer_dispatches", "poll_grow",
              "poll_shrink", "notify_skipped"}


@pytest.mark.valgrind
def test_stats(ctx):
    stats = ctx.stats()
    assert isinstance(stats, dict)
    assert STATS_KEYS <= set(stats)
    assert all(isinstance(v, int) and v >= 0 for v in stats.values())

    bh = ctx.bh_new(lambda: None)
    bh.schedule()
    e = cevent.EventNotifier()
    ctx.set_event_notifier(e, io_read=lambda n: n.test_and_clear())
    e.set()
    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, lambda: None)
    timer.mod(virtual_now())
    ctx.set_poll_params(10**9)
    for _ in range(3):
        ctx.poll(False)
    after = ctx.stats()
    assert after["iterations"] >= stats["iterations"] + 3
    assert after["bh_dispatches"] >= stats["bh_dispatches"] + 1
    assert after["handler_dispatches"] >= stats["handler_dispatches"] + 1
    assert after["timer_dispatches"] >= stats["timer_dispatches"] + 1
    assert after["poll_grow"] >= stats["poll_grow"] + 1
    # The stats are a snapshot.
    assert ctx.stats()["iterations"] == after["iterations"]
    ctx.set_event_notifier(e)
    e.close()
    bh.delete()


def test_stats_blocked_time(ctx):
    before = ctx.stats()["blocked_ns"]
    _timed_iteration(ctx, 20 * NS_PER_MS)
    assert ctx.stats()["blocked_ns"] >= before + 10 * NS_PER_MS


def test_stats_waits_and_polling(ctx):
    """waits counts fd-monitor waits; polling_ns grows while poll mode
    spins (a native poller keeps the handler on the poll list)."""
    before = ctx.stats()
    _timed_iteration(ctx, 2 * NS_PER_MS)
    after = ctx.stats()
    assert after["waits"] >= before["waits"] + 1
    assert after["polling_ns"] == before["polling_ns"]   # polling is off

    buf = bytearray(8)
    poller = cevent.MemoryPoller(buf)
    e = cevent.EventNotifier()
    ready = []
    ctx.set_event_notifier(e, io_read=lambda n: n.test_and_clear(),
                           io_poll=poller, io_poll_ready=ready.append)
    try:
        e.set()
        run_until(ctx, lambda: ctx.stats()["handler_dispatches"]
                  > after["handler_dispatches"])
        ctx.set_poll_params(10 * NS_PER_MS)
        before = ctx.stats()
        for _ in range(5):
            _timed_iteration(ctx, 2 * NS_PER_MS)
        assert ctx.stats()["polling_ns"] > before["polling_ns"]
    finally:
        ctx.set_event_notifier(e)
        e.close()


def test_stats_notify_counters(ctx):
    """notify() with nobody waiting only raises the flag (notify_skipped);
    one that finds the loop blocked writes the eventfd (notify_syscalls)."""
    drain(ctx)
    before = ctx.stats()
    ctx.notify()
    after = ctx.stats()
    assert after["notify_skipped"] == before["notify_skipped"] + 1
    assert after["notify_syscalls"] == before["notify_syscalls"]
    drain(ctx)

    before = ctx.stats()
    waker = threading.Timer(0.05, ctx.notify)
    waker.start()
    try:
        ctx.poll(True)                 # blocks until the notify
    finally:
        waker.join()
    assert ctx.stats()["notify_syscalls"] >= before["notify_syscalls"] + 1


# ---- the embedding (GSource) path ------------------------------------------

@pytest.mark.valgrind
def test_fileno(ctx, backend):
    fd = ctx.fileno()
    assert isinstance(fd, int) and fd >= 0
    assert ctx.fileno() == fd
    expected = {"io_uring": "poll", "epoll": "poll", "poll": "poll"}
    assert ctx.backend == expected[backend]
    assert not readable(fd)


@pytest.mark.valgrind
def test_fileno_readable_while_handler_ready(ctx):
    fd = ctx.fileno()
    e = cevent.EventNotifier()
    reads = Counter(lambda n: n.test_and_clear())
    ctx.set_event_notifier(e, io_read=reads)
    try:
        assert ctx.prepare() is False
        assert ctx.pending() is False
        assert not readable(fd)

        e.set()
        assert readable(fd)
        assert ctx.prepare() is False
        assert ctx.pending() is True
        ctx.dispatch()
        assert reads.calls == [(e,)]
        # The work is done: an embedding loop must not spin.
        assert not readable(fd)
        assert ctx.prepare() is False
        assert ctx.pending() is False
    finally:
        ctx.set_event_notifier(e)
        e.close()


@pytest.mark.valgrind
def test_fileno_readable_after_notify_while_armed(ctx):
    fd = ctx.fileno()
    assert ctx.prepare() is False
    assert not readable(fd)
    ctx.notify()                       # between prepare() and pending()
    assert readable(fd)
    ctx.pending()
    ctx.dispatch()
    assert not readable(fd)
    # Outside the prepare/pending window a notify only sets a flag.
    ctx.notify()
    assert not readable(fd)
    assert ctx.prepare() is False
    assert ctx.pending() is False


@pytest.mark.valgrind
def test_prepare_ready(ctx):
    ctx.fileno()
    bh = ctx.bh_new(lambda: None)
    assert ctx.prepare() is False
    ctx.pending()
    bh.schedule()
    assert ctx.prepare() is True
    ctx.dispatch()
    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, lambda: None)
    timer.mod(virtual_now())
    assert ctx.prepare() is True
    ctx.dispatch()
    assert timer.pending is False
    bh.delete()


def test_pending_sees_bh_scheduled_while_waiting(ctx):
    fd = ctx.fileno()
    bh = ctx.bh_new(lambda: None)
    assert ctx.prepare() is False
    thread = threading.Thread(target=bh.schedule)
    thread.start()
    thread.join()
    assert readable(fd)
    assert ctx.pending() is True
    ctx.dispatch()
    assert bh.scheduled is False
    bh.delete()


@pytest.mark.valgrind
def test_dispatch_order(ctx):
    """aio_dispatch: BHs, then every ready handler, then timers."""
    order = []
    e = cevent.EventNotifier()
    ctx.set_event_notifier(
        e, io_read=lambda n: (n.test_and_clear(), order.append("handler")))
    bh = ctx.bh_new(lambda: order.append("bh"))
    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                          lambda: order.append("timer"))
    ctx.fileno()
    drain(ctx)
    timer.mod(virtual_now())
    bh.schedule()
    e.set()
    assert ctx.prepare() is True
    assert ctx.pending() is True
    ctx.dispatch()
    assert order == ["bh", "handler", "timer"]
    ctx.set_event_notifier(e)
    e.close()
    bh.delete()


@pytest.mark.valgrind
def test_poll_order(ctx):
    """aio_poll: BHs, then ready handlers, then timers."""
    order = []
    e = cevent.EventNotifier()
    ctx.set_event_notifier(
        e, io_read=lambda n: (n.test_and_clear(), order.append("handler")))
    bh = ctx.bh_new(lambda: order.append("bh"))
    timer = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                          lambda: order.append("timer"))
    drain(ctx)
    timer.mod(virtual_now())
    e.set()
    bh.schedule()
    assert ctx.poll(True) is True
    assert order == ["bh", "handler", "timer"]
    ctx.set_event_notifier(e)
    e.close()
    bh.delete()


def test_poll_after_fileno(ctx):
    """poll() keeps working on an embedded context."""
    ctx.fileno()
    e = cevent.EventNotifier()
    reads = Counter(lambda n: n.test_and_clear())
    ctx.set_event_notifier(e, io_read=reads)
    drain(ctx)
    e.set()
    assert ctx.poll(True) is True
    assert reads.n == 1
    ctx.set_event_notifier(e)
    e.close()
