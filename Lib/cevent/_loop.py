"""The asyncio face of cevent: an ``asyncio`` event loop on an AioContext.

:class:`Loop` is asyncio's own Unix selector loop
(``asyncio.unix_events._UnixSelectorEventLoop``: transports, servers, SSL,
subprocesses, signals, executors, sendfile, ...) driven by a
:class:`cevent.AioContext` instead of a :mod:`selectors` selector:

* readiness comes from ``ctx.set_fd_handler``: the fd handlers put the
  reader or writer :class:`asyncio.Handle` straight on the ready queue while
  ``ctx.poll()`` runs, so there is no event list to walk afterwards;
* the wait for the next ``call_later``/``call_at`` is a cevent
  :class:`~cevent.Timer` on ``CLOCK_REALTIME`` in ns, armed at the earliest
  deadline of the loop's timer heap (kept in C by ``_LoopCore``), and
  ``ctx.poll(True)`` (which releases the GIL) returns when it fires;
* ``call_soon_threadsafe`` wakes the loop with ``ctx.notify()``, not the
  self-pipe (which stays for signals only);
* the loop's clock is QEMU's ``QEMU_CLOCK_REALTIME`` (``cevent.clock_ns()``,
  ``CLOCK_MONOTONIC``), kept in integer ns.  Every timer handle carries its
  deadline in ns, rounded up, and runs only once the clock has reached it:
  unlike ``BaseEventLoop`` there is no ``_clock_resolution`` slack, so a
  callback never runs before its delay has elapsed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import weakref
from asyncio import base_events, events, unix_events
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar

from . import _asyncio_layout
from ._cevent import AioContext, backends, unavailable_backends
from ._fallbacks import _PyLoopCore
from ._loopcore import _LoopCore
from ._selector import _AioContextSelector
from ._sockops import SockOps
from ._transport import _RingReader, _SocketTransport

__all__ = ["Loop", "new_event_loop", "run"]
if sys.version_info < (3, 14):
    __all__.append("EventLoopPolicy")

_T = TypeVar("_T")

_ASYNCIO_BASE_EVENTS: Any = base_events


#: The environment variable that names the fd monitor of a :class:`Loop`
#: made without ``backend`` (``"poll"``, ``"epoll"`` or ``"io_uring"``).
BACKEND_ENV = "CEVENT_LOOP_BACKEND"


def _default_backend() -> str | None:
    """The fd monitor of a :class:`Loop` made without ``backend``.

    ``None`` is the :class:`AioContext` default, QEMU's order: io_uring
    when the kernel gives a ring, else the poll/epoll pair (which the loop
    moves to epoll at its first fd).  It was chosen by the server benchmark
    (docs/performance.md), where io_uring's ring reads and batched
    ``POLL_ADD`` submissions put it ahead of epoll over the rows.
    ``CEVENT_LOOP_BACKEND`` names another: ``ValueError`` for a name that
    is no fd monitor, ``OSError`` for one this process cannot use."""
    name = os.environ.get(BACKEND_ENV)
    if not name or name in backends():
        return name or None
    unavailable = unavailable_backends()
    if name in unavailable:
        raise OSError(errno.ENODEV, f"{BACKEND_ENV}={name}: "
                      f"{unavailable[name]}")
    known = ", ".join(sorted({*backends(), *unavailable}))
    raise ValueError(f"{BACKEND_ENV}={name!r}: not an fd monitor ({known})")


if _asyncio_layout.NATIVE["loop_core"]:
    _LoopBase: Any = _LoopCore
else:
    _LoopBase = _PyLoopCore


class Loop(_LoopBase,  # type: ignore[misc]
           SockOps,
           unix_events._UnixSelectorEventLoop):
    """An asyncio event loop driven by a :class:`cevent.AioContext`.

    Its native base, ``_LoopCore``, implements the scheduling methods
    (``call_soon``, ``call_soon_threadsafe``, ``call_later``, ``call_at``),
    the timer heap, ``_run_once()``, ``time()``, ``get_debug()`` and
    ``create_future()`` in C, with asyncio's semantics (debug mode defers
    to asyncio's Python code).  Its socket transports have their read and
    write paths in C (``_SocketTransport``); on io_uring they read through
    the context's ring.

    ``backend`` picks the context's fd monitor as ``AioContext(backend)``
    does; ``None`` is io_uring when usable, else epoll, unless
    ``CEVENT_LOOP_BACKEND`` names one (``_default_backend``).  On epoll
    the context moves from ``ppoll()`` to ``epoll_wait()`` at the first
    fd rather than at QEMU's 64.  The loop may be created in one thread
    and run in another: ``run_forever()`` makes the running thread the
    context's home thread.
    """

    def __init__(self, *, backend: str | None = None) -> None:
        # BaseEventLoop.__del__ reads _closed: let a loop whose context
        # could not be made (bad backend) be collected quietly.
        self._closed = True
        if backend is None:
            backend = _default_backend()
        self._ctx = AioContext(backend)
        # asyncio's selector loops use epoll for any number of fds; QEMU's
        # poll/epoll pair waits for 64.  An empty epoll_wait() is cheaper
        # than a ppoll() of a few fds, and the loop makes one per iteration.
        self._ctx._set_epoll_threshold(1)
        ready: deque[events.Handle] = deque()
        # The fd handlers run handles inline only for the native core.
        self.__selector = _AioContextSelector(
            self._ctx, ready,
            self if _asyncio_layout.NATIVE["loop_core"] else None)
        super().__init__(self.__selector)
        # BaseEventLoop made a ready queue of its own: run the one the fd
        # handlers fill instead (nothing is queued yet).
        self._ready = ready
        # No early timers: asyncio's own _run_once (when it is used) runs
        # those due before now + _clock_resolution.
        self._clock_resolution = 0.0
        self._attach(self._ctx)
        # Socket transports read through the ring on io_uring (see
        # _SocketTransport); the active readers by fd, and all with
        # requests that may be in flight (each holds itself alive then).
        self._ring_reads = (
            _RingReader is not None and self._ctx.backend == "io_uring"
            and _asyncio_layout.NATIVE["ring_reads"]
            and _asyncio_layout.NATIVE["transport"]
            and _asyncio_layout.NATIVE["loop_core"])
        self._ring_active: dict[int, Any] = {}
        self._ring_readers: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def context(self) -> AioContext:
        """The :class:`cevent.AioContext` under this loop."""
        return self._ctx

    @property
    def backend(self) -> str:
        """The fd monitor in use (``AioContext.backend``)."""
        return self._ctx.backend

    def _make_socket_transport(
            self, sock: Any, protocol: Any, waiter: Any = None, *,
            extra: Any = None, server: Any = None,
            context: Context | None = None) -> _SocketTransport:
        return _SocketTransport(self, sock, protocol, waiter, extra, server,
                                context)

    def close(self) -> None:
        super().close()
        # BaseEventLoop.close() cleared a copy of the timer heap: drop the
        # handles themselves.
        if self._closed:
            self._scheduled: list[events.TimerHandle] = []
            # The context has cancelled and reaped the ring readers'
            # requests without their completions.
            self._ring_active.clear()
            for reader in list(self._ring_readers):
                reader._abandon()

    def _new_ring_reader(self, transport: Any, fd: int) -> Any:
        reader = _RingReader(self, transport, fd)
        self._ring_readers.add(reader)
        return reader

    def _ring_start(self, fd: int, reader: Any, context: Context) -> None:
        self._ring_active[fd] = reader
        reader.start(context)

    def _remove_reader(self, fd: Any) -> bool:
        reader = self._ring_active.pop(fd, None)
        if reader is not None:
            reader.stop()
            return True
        return bool(super()._remove_reader(fd))

    if _asyncio_layout.THREADSAFE_HANDLE is not None:
        # asyncio's method: its handle locks against a cancel() from another
        # thread; it wakes the loop through _write_to_self() below.
        call_soon_threadsafe = base_events.BaseEventLoop.call_soon_threadsafe

    def _write_to_self(self) -> None:
        # call_soon_threadsafe's wake-up: aio_notify, thread-safe and
        # race-free against a poll that is about to block.
        try:
            self._ctx.notify()
        except ValueError:
            pass  # closed meanwhile

    def run_forever(self) -> None:
        self._check_closed()
        self._check_running()
        self._ctx._set_home_thread()
        # BaseEventLoop.run_forever() calls _run_once() until _stopping:
        # with _iterate set, the first call runs all those iterations in C.
        self._iterate = True
        try:
            super().run_forever()
        finally:
            self._iterate = False

    def _run_ready_debug(self, ntodo: int) -> None:
        ready = self._ready
        handle: events.Handle | None = None
        for _ in range(ntodo):
            handle = ready.popleft()
            if handle._cancelled:
                continue
            try:
                self._current_handle = handle
                t0 = self.time()
                handle._run()
                dt = self.time() - t0
                if dt >= self.slow_callback_duration:
                    _ASYNCIO_BASE_EVENTS.logger.warning(
                        "Executing %s took %.3f seconds",
                        _ASYNCIO_BASE_EVENTS._format_handle(handle), dt)
            finally:
                self._current_handle = None  # type: ignore[assignment]
        handle = None  # Needed to break cycles when an exception occurs.


def new_event_loop(*, backend: str | None = None) -> Loop:
    """Return a new :class:`Loop` (``backend``: as for ``AioContext``;
    ``None`` is io_uring when usable, else epoll, unless
    ``CEVENT_LOOP_BACKEND`` names one)."""
    return Loop(backend=backend)


#: asyncio deprecates its policy system in 3.14 (the names
#: ``asyncio.DefaultEventLoopPolicy``, ``get_event_loop_policy()`` and
#: ``set_event_loop_policy()`` warn) and removes it in 3.16.
#: ``cevent.EventLoopPolicy`` follows: from 3.14 its name warns as asyncio's
#: do (``cevent.__getattr__``), and from 3.16 it is gone.
POLICY_DEPRECATED = sys.version_info >= (3, 14)

if sys.version_info < (3, 16):
    class EventLoopPolicy(unix_events._UnixDefaultEventLoopPolicy):
        """asyncio's default Unix policy (with its child watchers up to
        3.13) whose loops are :class:`Loop` objects::

            asyncio.set_event_loop_policy(cevent.EventLoopPolicy())

        Deprecated from Python 3.14, as asyncio's policies are: use
        ``cevent.run(main)`` or ``asyncio.run(main,
        loop_factory=cevent.new_event_loop)``.
        """

        def __init__(self, *, backend: str | None = None) -> None:
            super().__init__()
            self._backend = backend

        def _loop_factory(self) -> Loop:
            return Loop(backend=self._backend)

    EventLoopPolicy.__module__ = "cevent"


def run(main: Coroutine[Any, Any, _T], *,
        loop_factory: Callable[[], Loop] | None = new_event_loop,
        debug: bool | None = None, **run_kwargs: Any) -> _T:
    """Run the coroutine ``main`` on a new :class:`Loop` and return its
    result, as ``asyncio.run`` does (and ``uvloop.run``, whose signature
    this is).  ``loop_factory`` must return a :class:`Loop`."""

    if events._get_running_loop() is not None:
        raise RuntimeError(
            "asyncio.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")

    async def wrapper() -> _T:
        loop = events._get_running_loop()
        if not isinstance(loop, Loop):
            main.close()
            raise TypeError("cevent.run() uses a non-cevent event loop")
        return await main

    if sys.version_info >= (3, 12):
        return asyncio.run(wrapper(), loop_factory=loop_factory,
                           debug=debug, **run_kwargs)
    with asyncio.Runner(loop_factory=loop_factory, debug=debug,
                        **run_kwargs) as runner:
        return runner.run(wrapper())


# Keep the names users see in tracebacks and reprs short.
for _obj in (Loop, new_event_loop, run):
    _obj.__module__ = "cevent"
del _obj
