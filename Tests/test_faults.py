"""Fault injection: system calls and allocations that fail, descriptors
closed under the loop, descriptor exhaustion, callbacks that run out of
memory.

Most tests here drive the private hook ``cevent._cevent._fault_inject(name,
value)``, which only exists in builds made with ``CEVENT_FAULT_INJECTION=1``
(or ``CEVENT_DEBUG=1``); ``./run.sh test`` and CI build that way.  In a
release build the whole module is skipped.

Knobs (see ``Modules/include/qemu/fault-injection.h``):

=================  =====================================================
``io_uring_init``  errno that ``io_uring_queue_init()`` fails with
``epoll_create``   errno that ``epoll_create1()`` fails with
``epoll_ctl``      N: the Nth ``epoll_ctl()`` of the epoll monitor fails
``epoll_ctl_errno`` errno of that failure (default EPERM)
``eventfd``        errno that ``eventfd()`` fails with (ENOSYS: pipe)
``record_alloc``   N: the Nth callback-record allocation fails
=================  =====================================================

What a descriptor closed while still registered does, per monitor (QEMU
expects handlers to be removed before their fd is closed; cevent only
promises not to crash, not to call a deleted handler, and that removing the
handler still works):

* ``poll`` (and ``epoll`` below its 64-fd threshold): ppoll reports
  POLLNVAL, which is masked out, so the handler is never called (a
  blocking ``poll()`` does not sleep while the stale fd is registered: it
  returns False at once, so the loop spins until the handler is removed).
* ``epoll`` after the upgrade: the kernel drops a closed file from the
  epoll set by itself, the handler is never called; removing the handler
  then fails with EBADF in ``epoll_ctl`` and the context goes back to poll
  for good (as QEMU does).
* ``io_uring``: the POLL_ADD in flight completes (for a pipe whose other
  end is gone, with POLLHUP) and the re-arm fails with EBADF, reported once
  as an error (read handler called); it is not re-armed after that.
"""

import contextlib
import errno
import gc
import os
import resource
import threading
import time

import pytest

import cevent
import cevent._cevent as _cevent
from support import bounded_poll, drain, run_until, settle

if not hasattr(_cevent, "_fault_inject"):
    pytest.skip("cevent was built without CEVENT_FAULT_INJECTION=1: the "
                "_fault_inject test hook is absent (release build)",
                allow_module_level=True)

EPOLL_ENABLE_THRESHOLD = 64

#: fast tests that valgrind can run (no cross-thread io_uring waits, no
#: signals): `.ci/run --pass valgrind` runs them under memcheck
valgrind = pytest.mark.valgrind


@contextlib.contextmanager
def fault(name, value):
    """Set a fault-injection knob for the duration of the block."""
    old = _cevent._fault_inject(name, value)
    try:
        yield
    finally:
        _cevent._fault_inject(name, old)


@pytest.fixture(autouse=True)
def _knobs_off():
    """Every knob is off before and after each test."""
    names = ("eventfd", "io_uring_init", "epoll_create", "epoll_ctl",
             "epoll_ctl_errno", "record_alloc")
    for name in names:
        _cevent._fault_inject(name, 0)
    yield
    for name in names:
        _cevent._fault_inject(name, 0)


def open_fds():
    return len(_used_fds())


def live_records():
    gc.collect()
    return _cevent._live_counts()["records"]


class Notifiers:
    """n EventNotifiers with a counting read handler and no io_poll, so
    that the monitor watches their fds."""

    def __init__(self, ctx, n):
        self.ctx = ctx
        self.notifiers = []
        self.calls = {}
        for _ in range(n):
            self.add()

    def add(self):
        e = cevent.EventNotifier()
        self.notifiers.append(e)
        self.calls[e.fileno()] = 0
        self.ctx.set_event_notifier(e, io_read=self.read)
        return e

    def read(self, e):
        self.calls[e.fileno()] += 1
        e.test_and_clear()

    def set_all(self):
        for e in self.notifiers:
            e.set()

    def all_fired(self, times=1):
        return all(n >= times for n in self.calls.values())

    def close(self):
        for e in self.notifiers:
            self.ctx.set_event_notifier(e)
        for e in self.notifiers:
            e.close()


def upgrade(ctx, notifiers):
    """Run one blocking poll so that fdmon-poll's wait may upgrade."""
    notifiers.set_all()
    run_until(ctx, notifiers.all_fired)


# ---- the hook itself ------------------------------------------------------

@valgrind
def test_fault_inject_hook():
    assert _cevent._fault_inject("eventfd", 5) == 0
    assert _cevent._fault_inject("eventfd", 0) == 5
    with pytest.raises(ValueError):
        _cevent._fault_inject("no-such-knob", 1)
    with pytest.raises(ValueError):
        _cevent._fault_inject("eventfd", -1)
    with pytest.raises(TypeError):
        _cevent._fault_inject(1, 1)


# ---- io_uring_queue_init ---------------------------------------------------

def test_io_uring_init_failure_falls_back_to_epoll():
    """As QEMU's aio_context_setup: without a ring, the context starts on
    poll with an epoll fd prepared and upgrades at 64 fds."""
    with fault("io_uring_init", errno.ENOMEM):
        ctx = cevent.AioContext()
    try:
        assert ctx.backend == "poll"
        n = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD + 2)
        upgrade(ctx, n)
        assert ctx.backend == "epoll"
        n.set_all()
        for e in n.notifiers:
            n.calls[e.fileno()] = 0
        run_until(ctx, n.all_fired)
        n.close()
    finally:
        ctx.close()


@pytest.mark.skipif(not cevent._cevent.HAVE_IO_URING,
                    reason="built without liburing")
@pytest.mark.parametrize("err", [errno.ENOMEM, errno.EPERM, errno.ENOSYS])
def test_forced_io_uring_init_failure(err):
    fds = open_fds()
    with fault("io_uring_init", err):
        with pytest.raises(OSError) as info:
            cevent.AioContext("io_uring")
    assert info.value.errno == err
    text = str(info.value)
    if err == errno.ENOMEM:
        assert "io_uring_queue_init" in text
        assert os.strerror(err) in text
    else:
        assert "io_uring_setup" in text or "io_uring_disabled" in text
    assert open_fds() == fds
    # nothing is broken: the knob off, io_uring works again
    with cevent.AioContext("io_uring") as ctx:
        assert ctx.backend == "io_uring"
        assert ctx.poll(False) is False


# ---- epoll_create1 ---------------------------------------------------------

def test_epoll_create_failure_stays_on_poll():
    """io_uring and epoll both unavailable: plain poll, never upgraded."""
    with fault("io_uring_init", errno.ENOSYS), \
            fault("epoll_create", errno.EMFILE):
        ctx = cevent.AioContext()
    try:
        assert ctx.backend == "poll"
        n = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD + 2)
        upgrade(ctx, n)
        assert ctx.backend == "poll"
        n.close()
    finally:
        ctx.close()


@valgrind
def test_forced_epoll_create_failure():
    fds = open_fds()
    with fault("epoll_create", errno.ENFILE):
        with pytest.raises(OSError) as info:
            cevent.AioContext("epoll")
    assert info.value.errno == errno.ENFILE
    assert "epoll" in str(info.value)
    assert open_fds() == fds
    with cevent.AioContext("epoll") as ctx:
        assert ctx.poll(False) is False


# ---- epoll_ctl --------------------------------------------------------------

@pytest.mark.parametrize("nth", [1, 7, EPOLL_ENABLE_THRESHOLD])
def test_epoll_ctl_failure_during_upgrade(nth):
    """One EPOLL_CTL_ADD of the upgrade fails: the context stays on poll
    for good (the epoll fd is closed), and every handler still fires."""
    ctx = cevent.AioContext("epoll")
    try:
        n = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD + 2)
        with fault("epoll_ctl", nth), fault("epoll_ctl_errno", errno.ENOSPC):
            upgrade(ctx, n)
            assert _cevent._fault_inject("epoll_ctl", 0) == 0  # consumed
        assert ctx.backend == "poll"
        # for good: more fds and more waits do not upgrade again
        for _ in range(4):
            n.add()
        n.set_all()
        for e in n.notifiers:
            n.calls[e.fileno()] = 0
        run_until(ctx, n.all_fired)
        assert ctx.backend == "poll"
        n.close()
    finally:
        ctx.close()


@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_epoll_ctl_failure_during_update(op):
    """After the upgrade, an epoll_ctl failure in aio_set_fd_handler's
    update (ADD, MOD or DEL) sends the context back to poll for good; the
    registration itself is not lost and every handler still fires."""
    ctx = cevent.AioContext("epoll")
    try:
        n = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD + 2)
        upgrade(ctx, n)
        assert ctx.backend == "epoll"
        extra = []
        with fault("epoll_ctl", 1):
            if op == "add":
                n.add()
            elif op == "replace":
                e = n.notifiers[0]
                ctx.set_event_notifier(e, io_read=lambda e: extra.append(
                    e.test_and_clear()))
            else:
                e = n.notifiers.pop(0)
                del n.calls[e.fileno()]
                ctx.set_event_notifier(e)
                e.close()
            assert _cevent._fault_inject("epoll_ctl", 0) == 0  # consumed
        assert ctx.backend == "poll"
        for e in n.notifiers:
            n.calls[e.fileno()] = 0
        n.set_all()
        if op == "replace":
            n.calls.pop(n.notifiers[0].fileno())
            run_until(ctx, lambda: n.all_fired() and extra == [True])
        else:
            run_until(ctx, n.all_fired)
        assert ctx.backend == "poll"
        drain(ctx)
        n.close()
    finally:
        ctx.close()


# ---- eventfd -----------------------------------------------------------------

@valgrind
@pytest.mark.parametrize("backend_name", [None, "poll", "epoll", "io_uring"])
def test_eventfd_failure_context(backend_name):
    """The context notifier cannot be created: AioContext() raises OSError
    with the errno, and nothing (ring, epoll fd) is left open."""
    if backend_name is not None and backend_name not in cevent.backends():
        pytest.skip(f"{backend_name} unavailable")
    fds = open_fds()
    records = live_records()
    contexts = _cevent._live_counts()["contexts"]
    with fault("eventfd", errno.EMFILE):
        with pytest.raises(OSError) as info:
            cevent.AioContext(backend_name)
    assert info.value.errno == errno.EMFILE
    assert open_fds() == fds
    assert live_records() == records
    assert _cevent._live_counts()["contexts"] == contexts


@valgrind
def test_eventfd_failure_notifier():
    fds = open_fds()
    with fault("eventfd", errno.ENFILE):
        with pytest.raises(OSError) as info:
            cevent.EventNotifier()
    assert info.value.errno == errno.ENFILE
    assert open_fds() == fds


def test_eventfd_enosys_pipe_fallback(backend):
    """ENOSYS selects QEMU's pipe fallback: the context works, including a
    cross-thread notify() that wakes a blocked poll()."""
    with fault("eventfd", errno.ENOSYS):
        ctx = cevent.AioContext(backend)
        e = cevent.EventNotifier()
    try:
        assert ctx.poll(True) is False          # creation notified
        hits = []
        ctx.set_event_notifier(e, io_read=lambda e: hits.append(
            e.test_and_clear()))
        e.set()
        run_until(ctx, lambda: hits == [True])
        drain(ctx)

        woke = []
        bh = ctx.bh_new(lambda: woke.append(1))
        t = threading.Timer(0.05, bh.schedule)
        t.start()
        try:
            run_until(ctx, lambda: woke == [1])
        finally:
            t.join()
        ctx.set_event_notifier(e)
        bh.delete()
    finally:
        ctx.close()
        e.close()


# ---- record allocation --------------------------------------------------------

def _ops(ctx, e, r):
    return {
        "set_fd_handler": lambda: ctx.set_fd_handler(r, io_read=print),
        "set_event_notifier": lambda: ctx.set_event_notifier(
            e, io_read=print),
        "bh_new": lambda: ctx.bh_new(print),
        "bh_schedule_oneshot": lambda: ctx.bh_schedule_oneshot(print),
    }


@pytest.mark.parametrize("op", ["set_fd_handler", "set_event_notifier",
                                "bh_new", "bh_schedule_oneshot"])
def test_record_alloc_failure(ctx, op):
    """The wrapper cannot allocate the callback record: MemoryError, no
    leak, the previous registration (if any) untouched, the context still
    usable."""
    r, w = os.pipe()
    e = cevent.EventNotifier()
    try:
        calls = []
        # an existing registration that a failed replacement must keep
        ctx.set_fd_handler(r, io_read=lambda: calls.append(os.read(r, 1)))
        drain(ctx)
        records = live_records()
        with fault("record_alloc", 1):
            with pytest.raises(MemoryError):
                _ops(ctx, e, r)[op]()
        assert live_records() == records
        os.write(w, b"x")
        run_until(ctx, lambda: calls == [b"x"])
        # and everything works again
        bh = ctx.bh_new(lambda: calls.append("bh"))
        bh.schedule()
        ctx.bh_schedule_oneshot(lambda: calls.append("oneshot"))
        assert ctx.poll(False) is True
        assert calls[1:] == ["bh", "oneshot"] or \
            calls[1:] == ["oneshot", "bh"]
        bh.delete()
        ctx.set_fd_handler(r)
        settle(ctx)
    finally:
        e.close()
        os.close(r)
        os.close(w)


@valgrind
def test_record_alloc_failure_nth(ctx):
    """The 3rd allocation fails: the first two registrations stand."""
    bhs = []
    with fault("record_alloc", 3):
        bhs.append(ctx.bh_new(lambda: None))
        bhs.append(ctx.bh_new(lambda: None))
        with pytest.raises(MemoryError):
            ctx.bh_new(lambda: None)
        bhs.append(ctx.bh_new(lambda: None))
    for bh in bhs:
        bh.schedule()
    assert ctx.poll(False) is True
    for bh in bhs:
        bh.delete()


# ---- a descriptor closed while registered --------------------------------------

def test_fd_closed_while_registered(backend):
    """Close both ends of a pipe whose read end is registered; see the
    module docstring for what each monitor does.  Nothing crashes, the
    handler is called at most twice (io_uring: HUP then the EBADF error)
    and then never again, the handler can be removed, and the context is
    usable afterwards (a blocking poll() sleeps again)."""
    ctx = cevent.AioContext(backend)
    try:
        calls = []
        r, w = os.pipe()
        ctx.set_fd_handler(r, io_read=lambda: calls.append(1))
        drain(ctx)
        os.close(r)
        os.close(w)
        deadline = time.monotonic() + 0.3
        polls = 0
        while time.monotonic() < deadline:
            ctx.poll(False)
            bounded_poll(ctx, 5)    # a blocking poll, at most ~5 ms
            polls += 1
        assert polls > 10
        n = len(calls)
        assert n <= 2
        if backend == "io_uring":
            assert n >= 1       # reported, once or twice
        else:
            assert n == 0       # POLLNVAL is masked out
        for _ in range(20):
            ctx.poll(False)
        assert len(calls) == n  # and then never again
        ctx.set_fd_handler(r)   # removal works on a closed fd
        settle(ctx)
        # a blocking poll sleeps again: woken by a BH from a thread
        drain(ctx)
        done = []
        bh = ctx.bh_new(lambda: done.append(1))
        t = threading.Timer(0.05, bh.schedule)
        start = time.monotonic()
        t.start()
        try:
            run_until(ctx, lambda: done)
        finally:
            t.join()
        assert time.monotonic() - start >= 0.04
        bh.delete()
    finally:
        ctx.close()


def test_fd_closed_while_registered_epoll_upgraded():
    """Closed under an upgraded epoll monitor: dropped by the kernel, never
    dispatched; removing it makes epoll_ctl fail with EBADF and the context
    returns to poll for good, with the other handlers still working."""
    ctx = cevent.AioContext("epoll")
    try:
        n = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD + 2)
        upgrade(ctx, n)
        assert ctx.backend == "epoll"
        calls = []
        r, w = os.pipe()
        ctx.set_fd_handler(r, io_read=lambda: calls.append(1))
        drain(ctx)
        os.close(r)
        os.close(w)
        for _ in range(20):
            ctx.poll(False)
        assert calls == []
        assert ctx.backend == "epoll"
        ctx.set_fd_handler(r)
        assert ctx.backend == "poll"
        for e in n.notifiers:
            n.calls[e.fileno()] = 0
        n.set_all()
        run_until(ctx, n.all_fired)
        n.close()
    finally:
        ctx.close()


# ---- descriptor exhaustion --------------------------------------------------------

def _used_fds():
    used = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))     # the listing's own fd is gone by now
        except OSError:
            continue
        used.add(int(name))
    return used


@contextlib.contextmanager
def fd_limit(extra):
    """Lower RLIMIT_NOFILE so that only ``extra`` more fds can be opened.
    Holes below the highest open fd are plugged with /dev/null first (fds
    are allocated lowest first), and unplugged afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = _used_fds()
    top = max(used)
    plugs = []
    try:
        for _ in range(top + 1 - len(used)):
            plugs.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        assert max(plugs, default=0) < top
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + extra, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    finally:
        for fd in plugs:
            os.close(fd)


@pytest.mark.parametrize("backend_name", [None, "poll", "epoll", "io_uring"])
def test_emfile_creating_contexts(backend_name):
    """With only k descriptors left (k = 0..3), AioContext() either works
    or raises OSError(EMFILE); either way nothing leaks and the failed
    creation leaves no descriptor behind."""
    if backend_name is not None and backend_name not in cevent.backends():
        pytest.skip(f"{backend_name} unavailable")
    gc.collect()
    records = live_records()
    contexts = _cevent._live_counts()["contexts"]
    for k in range(4):
        fds = open_fds()
        made = []
        with fd_limit(k):
            try:
                for _ in range(4):
                    made.append(cevent.AioContext(backend_name))
            except OSError as exc:
                assert exc.errno == errno.EMFILE, exc
            else:
                pytest.fail("never ran out of descriptors")
            for ctx in made:
                assert ctx.poll(False) is False
                ctx.close()
        assert open_fds() == fds
    assert live_records() == records
    assert _cevent._live_counts()["contexts"] == contexts


def test_emfile_creating_notifiers():
    fds = open_fds()
    made = []
    with fd_limit(2):
        with pytest.raises(OSError) as info:
            for _ in range(4):
                made.append(cevent.EventNotifier())
        assert info.value.errno == errno.EMFILE
        assert len(made) == 2
    for e in made:
        e.close()
    assert open_fds() == fds


def test_emfile_context_usable(backend):
    """Running out of descriptors does not break an existing context."""
    ctx = cevent.AioContext(backend)
    try:
        fired = []
        with fd_limit(0):
            with pytest.raises(OSError):
                cevent.AioContext(backend)
            with pytest.raises(OSError):
                cevent.EventNotifier()
            bh = ctx.bh_new(lambda: fired.append(1))
            bh.schedule()
            assert ctx.poll(True) is True
        assert fired == [1]
        bh.delete()
    finally:
        ctx.close()


# ---- a handler that raises MemoryError ----------------------------------------------

def test_handler_raises_memoryerror(backend, unraisable):
    """MemoryError from a callback is re-raised by poll() once the
    iteration is done, like any exception; the loop stays usable."""
    ctx = cevent.AioContext(backend)
    e = cevent.EventNotifier()
    try:
        order = []

        def oom(e=None):
            order.append("oom")
            if e is not None:
                e.test_and_clear()
            raise MemoryError("simulated")

        ctx.set_event_notifier(e, io_read=oom)
        bh = ctx.bh_new(lambda: order.append("bh"))
        drain(ctx)
        e.set()
        bh.schedule()
        with pytest.raises(MemoryError, match="simulated"):
            run_until(ctx, lambda: "oom" in order)
        assert order == ["bh", "oom"]
        ctx.set_event_notifier(e)
        bh.schedule()
        assert ctx.poll(False) is True
        assert order == ["bh", "oom", "bh"]
        # a MemoryError from a BH, and one from a timer in the same
        # iteration: the first is raised, the second is unraisable
        ctx.bh_schedule_oneshot(lambda: oom())
        t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, oom)
        t.mod(0)
        with pytest.raises(MemoryError):
            ctx.poll(False)
        assert [type(x) for x in unraisable.exceptions] == [MemoryError]
        assert ctx.poll(False) is False
        bh.delete()
    finally:
        ctx.close()
        e.close()
