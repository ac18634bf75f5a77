"""QEMU's tests/unit/test-fdmon-epoll.c (deleted upstream in May 2023) and
the fd-monitor transitions of Modules/fdmon-epoll.c (poll to epoll at
the threshold, back to poll for an fd epoll refuses).

A context forced to ``"epoll"`` starts on fdmon-poll with an epoll fd
prepared and upgrades to fdmon-epoll once a wait sees at least
EPOLL_ENABLE_THRESHOLD (64) watched fds (the context's own notifier
included); it never downgrades, and any ``epoll_ctl`` failure sends it back
to poll for good.  ``"poll"`` never upgrades; io_uring never has an epoll
fd, not even after ``fileno()`` tore it down.
"""

import os

import pytest

import cevent
from support import drain

EPOLL_ENABLE_THRESHOLD = 64


def dummy_io_handler_read(e):
    e.test_and_clear()


class Notifiers:
    """n EventNotifiers registered with a read handler that clears them
    and counts, without io_poll (so they watch fds)."""

    def __init__(self, ctx, n):
        self.ctx = ctx
        self.notifiers = []
        self.calls = []
        for _ in range(n):
            self.add()

    def add(self):
        e = cevent.EventNotifier()
        self.notifiers.append(e)
        self.ctx.set_event_notifier(e, io_read=self.read)
        return e

    def read(self, e):
        self.calls.append(e)
        e.test_and_clear()

    def __getitem__(self, i):
        return self.notifiers[i]

    def remove_all(self):
        for e in self.notifiers:
            self.ctx.set_event_notifier(e)

    def close(self):
        for e in self.notifiers:
            e.close()


@pytest.fixture
def epoll_ctx():
    ctx = cevent.AioContext("epoll")
    yield ctx
    ctx.close()


@pytest.mark.valgrind
def test_fdmon_epoll(epoll_ctx):
    """/fdmon-epoll/external-handler (its event-loop part): 100 notifiers
    are more than the threshold, so the first wait upgrades to epoll."""
    ctx = epoll_ctx
    assert ctx.backend == "poll"
    notifiers = Notifiers(ctx, 100)
    try:
        notifiers[0].set()
        assert ctx.poll(True) is True
        assert ctx.backend == "epoll"
        assert notifiers.calls == [notifiers[0]]

        notifiers[0].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[0], notifiers[0]]

        notifiers.remove_all()
        assert ctx.poll(False) is False
        # The upgrade is one-way.
        assert ctx.backend == "epoll"
        assert len(notifiers.calls) == 2
    finally:
        notifiers.close()


def test_epoll_threshold(epoll_ctx):
    """The upgrade happens at 64 watched fds, the context's own notifier
    counting as one."""
    ctx = epoll_ctx
    notifiers = Notifiers(ctx, EPOLL_ENABLE_THRESHOLD - 2)
    try:
        assert ctx.poll(False) is False
        assert ctx.backend == "poll"

        notifiers.add()
        assert ctx.poll(False) is False
        assert ctx.backend == "epoll"

        # Handlers still work after the upgrade, added or old.
        late = notifiers.add()
        for e in (notifiers[0], late):
            e.set()
            assert ctx.poll(False) is True
            assert notifiers.calls[-1] is e
        assert ctx.poll(False) is False
        notifiers.remove_all()
    finally:
        notifiers.close()


@pytest.mark.valgrind
def test_epoll_threshold_per_context(epoll_ctx):
    """_set_epoll_threshold(n) moves the upgrade point of one context (the
    context's own notifier counts as one fd)."""
    ctx = epoll_ctx
    ctx._set_epoll_threshold(3)
    notifiers = Notifiers(ctx, 1)
    try:
        assert ctx.poll(False) is False
        assert ctx.backend == "poll"            # 2 fds
        notifiers.add()
        assert ctx.poll(False) is False
        assert ctx.backend == "epoll"           # 3 fds
        notifiers[1].set()
        assert ctx.poll(False) is True
        assert notifiers.calls == [notifiers[1]]
        notifiers.remove_all()
    finally:
        notifiers.close()
    other = cevent.AioContext("epoll")          # QEMU's threshold as before
    more = Notifiers(other, 10)
    try:
        other.poll(False)
        assert other.backend == "poll"
        more.remove_all()
    finally:
        other.close()
        more.close()


def test_epoll_threshold_errors(epoll_ctx):
    with pytest.raises(ValueError):
        epoll_ctx._set_epoll_threshold(0)
    with pytest.raises(ValueError):
        epoll_ctx._set_epoll_threshold(-1)
    with pytest.raises(TypeError):
        epoll_ctx._set_epoll_threshold("1")
    with pytest.raises(OverflowError):
        epoll_ctx._set_epoll_threshold(1 << 100)
    # no effect where there is no poll/epoll pair
    ctx = cevent.AioContext("poll")
    ctx._set_epoll_threshold(1)
    notifiers = Notifiers(ctx, 2)
    try:
        ctx.poll(False)
        assert ctx.backend == "poll"
        notifiers.remove_all()
    finally:
        ctx.close()
        notifiers.close()
    epoll_ctx.close()
    with pytest.raises(ValueError):
        epoll_ctx._set_epoll_threshold(1)       # closed


def test_loop_moves_to_epoll_at_once():
    """cevent.Loop on "epoll" is on epoll from its first iteration, as
    asyncio's selector loops are."""
    import asyncio

    loop = cevent.new_event_loop(backend="epoll")
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.backend == "epoll"
    finally:
        loop.close()


def test_poll_never_upgrades():
    """A context forced to "poll" stays on poll whatever the fd count."""
    ctx = cevent.AioContext("poll")
    notifiers = Notifiers(ctx, 100)
    try:
        notifiers[42].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[42]]
        assert ctx.backend == "poll"
        notifiers.remove_all()
        assert ctx.backend == "poll"
    finally:
        ctx.close()
        notifiers.close()


def test_monitor_with_many_fds(backend):
    """With 100 watched fds each backend ends up on its own monitor:
    io_uring stays io_uring, epoll upgrades, poll stays poll."""
    expected = {"io_uring": "io_uring", "epoll": "epoll", "poll": "poll"}
    ctx = cevent.AioContext(backend)
    notifiers = Notifiers(ctx, 100)
    try:
        notifiers[99].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[99]]
        assert ctx.backend == expected[backend]
        notifiers.remove_all()
    finally:
        ctx.close()
        notifiers.close()


def test_monitor_after_fileno_with_many_fds(backend):
    """After fileno() (aio_context_use_g_source) io_uring is gone and the
    context stays on plain poll without an epoll fd, so it never upgrades;
    an epoll-capable context still upgrades."""
    expected = {"io_uring": "poll", "epoll": "epoll", "poll": "poll"}
    ctx = cevent.AioContext(backend)
    try:
        ctx.fileno()
        notifiers = Notifiers(ctx, 100)
        try:
            notifiers[7].set()
            assert ctx.poll(True) is True
            assert notifiers.calls == [notifiers[7]]
            assert ctx.backend == expected[backend]
            notifiers.remove_all()
        finally:
            notifiers.close()
    finally:
        ctx.close()


def test_fdmon_epoll_regular_file_falls_back(epoll_ctx, tmp_path):
    """epoll refuses a regular file (EPERM): an upgraded context falls back
    to poll for good, and every handler keeps working."""
    ctx = epoll_ctx
    notifiers = Notifiers(ctx, 70)
    path = tmp_path / "regular"
    path.write_bytes(b"data")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert ctx.poll(False) is False
        assert ctx.backend == "epoll"

        file_reads = []
        ctx.set_fd_handler(fd, io_read=lambda: file_reads.append(1))
        assert ctx.backend == "poll"

        # poll() reports a regular file as always readable.
        assert ctx.poll(False) is True
        assert len(file_reads) == 1

        notifiers[3].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[3]]
        assert len(file_reads) == 2

        ctx.set_fd_handler(fd)
        assert ctx.poll(False) is False
        assert len(file_reads) == 2

        # Poll for good: more fds do not upgrade again.
        for _ in range(10):
            notifiers.add()
        notifiers[75].set()
        assert ctx.poll(True) is True
        assert notifiers.calls[-1] is notifiers[75]
        assert ctx.backend == "poll"
        notifiers.remove_all()
    finally:
        os.close(fd)
        notifiers.close()


def test_fdmon_epoll_regular_file_prevents_upgrade(epoll_ctx, tmp_path):
    """A regular file among the fds makes the upgrade's EPOLL_CTL_ADD fail:
    the context stays on poll for good."""
    ctx = epoll_ctx
    path = tmp_path / "regular"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    file_reads = []
    ctx.set_fd_handler(fd, io_read=lambda: file_reads.append(1))
    notifiers = Notifiers(ctx, 70)
    try:
        assert ctx.poll(True) is True
        assert ctx.backend == "poll"
        assert len(file_reads) == 1

        ctx.set_fd_handler(fd)
        notifiers[1].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[1]]
        assert ctx.backend == "poll"
        notifiers.remove_all()
    finally:
        os.close(fd)
        notifiers.close()


def test_fdmon_epoll_closed_fd_falls_back(epoll_ctx):
    """Removing a handler whose fd was already closed fails EPOLL_CTL_DEL
    (EBADF): the context falls back to poll for good and keeps working."""
    ctx = epoll_ctx
    notifiers = Notifiers(ctx, 70)
    r, w = os.pipe()
    try:
        reads = []
        ctx.set_fd_handler(r, io_read=lambda: reads.append(os.read(r, 1)))
        assert ctx.poll(False) is False
        assert ctx.backend == "epoll"

        os.write(w, b"x")
        assert ctx.poll(True) is True
        assert reads == [b"x"]

        os.close(r)
        ctx.set_fd_handler(r)
        r = None
        assert ctx.backend == "poll"

        notifiers[0].set()
        assert ctx.poll(True) is True
        assert notifiers.calls == [notifiers[0]]
        drain(ctx)
        notifiers.remove_all()
        assert ctx.backend == "poll"
    finally:
        if r is not None:
            os.close(r)
        os.close(w)
        notifiers.close()
