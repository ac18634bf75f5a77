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
import contextvars
import heapq
import math
import selectors
import sys
import weakref
from asyncio import base_events, events, format_helpers
from asyncio import selector_events, unix_events
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from contextvars import Context
from typing import Any, TypeVar

from . import _asyncio_layout
from ._sockops import SockOps
from . import _cevent
from ._cevent import (
    CLOCK_REALTIME,
    SCALE_NS,
    AioContext,
    _FdWatch,
    _LoopCore,
    clock_ns,
    _SocketTransportCore,
    _loop_config,
    _ns_ceil,
    backends,
)

__all__ = ["Loop", "new_event_loop", "run"]
if sys.version_info < (3, 14):
    __all__.append("EventLoopPolicy")

_T = TypeVar("_T")

# Deadlines at or beyond this (either sign, e.g. call_later(math.inf))
# never fire: the C code's bound, for the Python stand-in of _LoopCore.
_NEVER_NS = 1 << 62

# asyncio's private pieces used the Python way (a changed asyncio breaks
# them loudly); cevent._asyncio_layout checks what the C code relies on.
_ASYNCIO_TRANSPORT: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_ASYNCIO_BASE_EVENTS: Any = base_events

_ASYNCIO_PROTOCOLS: Any = asyncio.protocols

# The ring reader: None when the extension was built without io_uring.
_RingReader: Any = getattr(_cevent, "_RingReader", None)

_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE


def _noop() -> None:
    pass


# The smallest integer number of ns that is >= seconds exactly: no float
# rounding (the float 0.1 is slightly more than 100 ms, so it gives
# 100000001 ns).  +-inf (and finite values beyond) give +-2**62, deadlines
# that never fire and never arm the wake-up timer; NaN
# raises ValueError.  In C, with 128-bit arithmetic on the float's mantissa.
_seconds_to_ns_ceil: Callable[[float], int] = _ns_ceil


class TimerHandle(events.TimerHandle):
    """The handle ``call_later``/``call_at`` return: an
    :class:`asyncio.TimerHandle` that also knows its deadline in integer ns
    on the loop's clock; the heap is ordered by it and the loop runs the
    handle only once ``clock_ns() >= _when_ns``.

    It has asyncio's class name, so ``repr()`` and the debug-mode "Executing
    ... took N seconds" warning print ``<TimerHandle ...>`` as on asyncio's
    loop.
    """

    __slots__ = ("_when_ns",)

    _when_ns: int

    def __lt__(self, other: object) -> bool:
        try:
            return bool(self._when_ns <
                        other._when_ns)  # type: ignore[attr-defined]
        except AttributeError:
            return super().__lt__(other)  # type: ignore[operator]


def _handle_exception(handle: events.Handle, exc: BaseException) -> None:
    """What ``Handle._run`` does when the callback raised ``exc`` (not
    SystemExit or KeyboardInterrupt); called by ``_LoopCore._run_once``."""
    cb = format_helpers._format_callback_source(
        handle._callback, handle._args)  # type: ignore[attr-defined]
    context = {
        "message": f"Exception in callback {cb}",
        "exception": exc,
        "handle": handle,
    }
    if handle._source_traceback:  # type: ignore[attr-defined]
        context["source_traceback"] = \
            handle._source_traceback  # type: ignore[attr-defined]
    handle._loop.call_exception_handler(context)  # type: ignore[attr-defined]


def _new_timer_debug(loop: Loop, name: str, when: float, when_ns: int,
                     callback: Callable[..., object], args: tuple[Any, ...],
                     context: Context | None) -> TimerHandle:
    """The timer handle of ``call_later``/``call_at`` in debug mode (and
    whenever asyncio's handle slots are not the ones the C code writes),
    made as ``BaseEventLoop.call_at`` does (in debug mode, thread and
    callback checks, a source traceback ending at the caller);
    ``_LoopCore`` pushes it."""
    if loop.get_debug():
        loop._check_thread()
        loop._check_callback(callback, name)
    timer = TimerHandle(when, callback, args, loop, context)
    traceback = timer._source_traceback  # type: ignore[attr-defined]
    if traceback:
        del traceback[-1]
    timer._when_ns = when_ns
    return timer


# The native core makes plain asyncio Handles in call_soon() and
# TimerHandles in call_later()/call_at(), runs the handles whose _run is
# Handle._run itself, and makes asyncio Futures in create_future().
_loop_config.configure(
    **_asyncio_layout.C_LAYOUT,
    handle_type=events.Handle,
    timer_type=TimerHandle,
    plain_handle_types=(events.Handle, events.TimerHandle, TimerHandle),
    exc_hook=_handle_exception,
    call_soon=base_events.BaseEventLoop.call_soon,
    call_soon_threadsafe=base_events.BaseEventLoop.call_soon_threadsafe,
    new_timer_debug=_new_timer_debug,
    future_type=asyncio.Future)


# _FdWatch (in C) is the fd handler of one registered fd: its
# read_ready/write_ready run or queue the asyncio reader or writer handle
# of the fd's selector key (what BaseSelectorEventLoop._process_events does
# for a selector's event list), or call selector._drop_cancelled() for a
# cancelled one, as _process_events does.


class _PyFdWatch:
    """``_FdWatch`` in Python, used when ``selectors.SelectorKey`` does not
    have the layout the C one reads (``cevent._asyncio_layout``): it queues
    the handles, as asyncio's ``_process_events`` does."""

    __slots__ = ("key", "ready", "selector")

    def __init__(self, key: selectors.SelectorKey, ready: deque[Any],
                 selector: _AioContextSelector,
                 loop: object = None) -> None:
        self.key = key
        self.ready = ready
        self.selector = selector

    def _ready_one(self, handle: Any, event: int) -> None:
        if handle is None:
            return
        if handle._cancelled:
            self.selector._drop_cancelled(self.key.fd, event)
        else:
            self.ready.append(handle)

    def read_ready(self) -> None:
        self._ready_one(self.key.data[0], _EVENT_READ)

    def write_ready(self) -> None:
        self._ready_one(self.key.data[1], _EVENT_WRITE)


_FdWatchType: Any = (_FdWatch if _asyncio_layout.NATIVE["selector_key"]
                     else _PyFdWatch)


class _SelectorMapping(Mapping[Any, selectors.SelectorKey]):
    """Mapping of file objects to selector keys (as in :mod:`selectors`)."""

    def __init__(self, selector: _AioContextSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._watches)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            fd = self._selector._fileobj_lookup(fileobj)
            key: selectors.SelectorKey = self._selector._watches[fd].key
            return key
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Any:
        return iter(self._selector._watches)


class _AioContextSelector(selectors.BaseSelector):
    """A :class:`selectors.BaseSelector` over ``AioContext.set_fd_handler``,
    made for :class:`Loop` only.

    The key data must be the ``(reader, writer)`` pair of asyncio handles
    that ``BaseSelectorEventLoop`` stores there.  Ready handles go straight
    to the loop's ready queue from the fd handlers, so :meth:`select`
    returns an empty list: the loop's ``_process_events`` then has nothing
    to do.
    """

    def __init__(self, ctx: AioContext, ready: deque[Any],
                 loop: _LoopCore | None = None) -> None:
        self._ctx = ctx
        self._ready = ready
        self._loop = loop
        self._watches: dict[int, _FdWatch] = {}
        self._map: _SelectorMapping | None = _SelectorMapping(self)
        self._timer = ctx.timer_new(CLOCK_REALTIME, SCALE_NS, _noop)

    def _fileobj_lookup(self, fileobj: Any) -> int:
        if type(fileobj) is int:
            if fileobj < 0:
                raise ValueError(f"Invalid file descriptor: {fileobj}")
            return fileobj
        try:
            return selectors._fileobj_to_fd(fileobj)  # type: ignore
        except ValueError:
            # A closed file object: search the registered keys for it, as
            # selectors._BaseSelectorImpl does.
            for watch in self._watches.values():
                if watch.key.fileobj is fileobj:
                    fd: int = watch.key.fd
                    return fd
            raise

    def _set_handler(self, watch: _FdWatch) -> None:
        events = watch.key.events
        self._ctx.set_fd_handler(
            watch.key.fd,
            watch.read_ready if events & _EVENT_READ else None,
            watch.write_ready if events & _EVENT_WRITE else None)

    def register(self, fileobj: Any, events: int,
                 data: Any = None) -> selectors.SelectorKey:
        if (not events) or (events & ~(_EVENT_READ | _EVENT_WRITE)):
            raise ValueError(f"Invalid events: {events!r}")
        if self._map is None:
            raise RuntimeError("selector is closed")
        fd = self._fileobj_lookup(fileobj)
        if fd in self._watches:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key: selectors.SelectorKey = \
            self._add_watch(fileobj, fd, events, data).key
        return key

    def _add_watch(self, fileobj: Any, fd: int, events: int,
                   data: Any) -> _FdWatch:
        """Watch ``fd``, which is not registered: the work of register()
        after its checks."""
        watch = _FdWatchType(selectors.SelectorKey(fileobj, fd, events, data),
                             self._ready, self, self._loop)
        self._set_handler(watch)
        self._watches[fd] = watch
        return watch  # type: ignore[no-any-return]

    def _forget(self, fd: int) -> _FdWatch:
        """Stop watching the registered ``fd``: the work of unregister()
        after its look-up.  KeyError if it is not registered."""
        watch = self._watches.pop(fd)
        if not self._ctx.closed:
            self._ctx.set_fd_handler(fd, None)
        return watch

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            watch = self._forget(self._fileobj_lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        removed: selectors.SelectorKey = watch.key
        return removed

    def modify(self, fileobj: Any, events: int,
               data: Any = None) -> selectors.SelectorKey:
        try:
            watch = self._watches[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        key = watch.key
        if events != key.events:
            if (not events) or (events & ~(_EVENT_READ | _EVENT_WRITE)):
                raise ValueError(f"Invalid events: {events!r}")
            watch.key = key = key._replace(events=events, data=data)
            self._set_handler(watch)
        elif data is not key.data:
            # Same events: the handler reads the handles from the key, so
            # the fd monitor needs no update.
            watch.key = key = key._replace(data=data)
        new_key: selectors.SelectorKey = key
        return new_key

    def _new_watch(self, fd: int, event: int,
                   data: tuple[Any, Any]) -> _FdWatch | None:
        """Register ``fd``, not registered yet, for ``event`` (one of the
        two) with ``data``: ``register()`` without the checks that cannot
        fail here.  ``None`` (nothing done) when ``fd`` is registered or
        this needs ``register()``'s errors."""
        if fd in self._watches or fd < 0 or self._map is None:
            return None
        return self._add_watch(fd, fd, event, data)

    def _drop_watch(self, fd: int, watch: _FdWatch,
                    handle: events.Handle) -> bool:
        """Unregister ``fd`` if ``watch`` (from :meth:`_new_watch`) is
        still its registration with ``handle`` as its only reader; else
        False (nothing done)."""
        if self._watches.get(fd) is not watch:
            return False
        key = watch.key
        if key.events != _EVENT_READ or key.data[0] is not handle:
            return False
        self._forget(fd)
        return True

    def _set_handle(self, fd: int, event: int,
                    handle: events.Handle) -> events.Handle | None:
        """Make ``handle`` the reader (``event`` is ``EVENT_READ``) or the
        writer of ``fd``, registering ``fd`` if needed; return the handle
        it replaces, if any (``BaseSelectorEventLoop._add_reader`` and
        ``_add_writer`` with one look-up)."""
        watch = self._watches.get(fd)
        if watch is None:
            data = (handle, None) if event == _EVENT_READ else (None, handle)
            if self._new_watch(fd, event, data) is None:
                self.register(fd, event, data)  # raises as it should
            return None
        key = watch.key
        reader, writer = key.data
        if event == _EVENT_READ:
            self.modify(fd, key.events | event, (handle, writer))
            return reader  # type: ignore[no-any-return]
        self.modify(fd, key.events | event, (reader, handle))
        return writer  # type: ignore[no-any-return]

    def _clear_handle(self, fd: int, event: int) -> events.Handle | None:
        """Stop watching ``fd`` for ``event``; return its reader (or
        writer) handle, if it had one (``BaseSelectorEventLoop``'s
        ``_remove_reader`` and ``_remove_writer`` with one look-up)."""
        watch = self._watches.get(fd)
        if watch is None:
            return None
        key = watch.key
        reader, writer = key.data
        mask = key.events & ~event
        if event == _EVENT_READ:
            old, data = reader, (None, writer)
        else:
            old, data = writer, (reader, None)
        if not mask:
            self._forget(fd)
        else:
            self.modify(fd, mask, data)
        return old  # type: ignore[no-any-return]

    def _drop_cancelled(self, fd: int, event: int) -> None:
        """Forget the cancelled reader (or writer) of ``fd``, as
        ``BaseSelectorEventLoop._remove_reader`` does."""
        self._clear_handle(fd, event)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        if self._map is None:
            raise RuntimeError("Selector is closed")
        try:
            key: selectors.SelectorKey = \
                self._watches[self._fileobj_lookup(fileobj)].key
            return key
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map  # type: ignore[return-value]

    def select(self, timeout: float | None = None) -> list[Any]:
        """One ``ctx.poll()``, blocking for at most ``timeout`` seconds
        (``None``: until something happens).  The fd handlers have put the
        ready handles on the loop's ready queue when it returns, so the
        event list is always empty.  Only asyncio's own ``_run_once`` calls
        it: when ``_LoopCore`` is not used (``cevent._asyncio_layout``);
        ``_LoopCore._run_once`` polls the context in C."""
        if timeout is not None and timeout <= 0:
            self._ctx.poll(False)
            return []
        if timeout is not None:
            deadline = clock_ns() + _seconds_to_ns_ceil(timeout)
            if self._timer.expire_time != deadline:
                self._timer.mod_ns(deadline)
        self._ctx.poll(True)
        return []

    def close(self) -> None:
        if self._map is None:
            return
        self._map = None
        ctx = self._ctx
        if not ctx.closed:
            self._timer.delete()
            for fd in self._watches:
                ctx.set_fd_handler(fd, None)
            ctx.close()
        self._watches.clear()
        self._loop = None       # the loop <-> selector cycle ends here


# Without the native paths, asyncio's own transport code throughout.
_TRANSPORT_BASES: tuple[type, ...] = (
    ((_SocketTransportCore,) if _asyncio_layout.NATIVE["transport"] else ())
    + (_ASYNCIO_TRANSPORT,))


class _SocketTransport(*_TRANSPORT_BASES):  # type: ignore[misc]
    """asyncio's socket transport with its hot paths in C.

    ``_SocketTransportCore`` (first in the bases) replaces ``_read_ready``,
    ``_read_ready__data_received`` and ``write``; the rest is asyncio's
    ``_SelectorSocketTransport``.  Reads go through one preallocated
    buffer: ``sock.recv(256 KiB)`` allocates 256 KiB for every read, which
    glibc serves with ``mmap``, so a read of 1 KiB can cost an ``mmap``, an
    ``mremap``, a ``munmap`` and page faults.  ``data_received()`` gets the
    same ``bytes``.  A write of ``bytes`` to a transport with nothing
    buffered is one ``send()``; every other case goes to asyncio's
    ``write()``."""

    # asyncio's own methods, for the cases the native ones hand over.
    _write_slow = _ASYNCIO_TRANSPORT.write
    _read_ready__data_received_slow = \
        _ASYNCIO_TRANSPORT._read_ready__data_received

    # Reads through io_uring (the loop's ``_ring_reads``): a ``_RingReader``
    # queues recv requests on the context's ring while the transport reads
    # and its protocol is a plain Protocol, whose ``_read_ready_cb`` is
    # ``_read_ready__data_received``; readiness serves the rest (a
    # BufferedProtocol reads into its own buffer).  asyncio asks for
    # reading through ``_add_reader`` (at connection and resume_reading)
    # and stops it through the loop's ``_remove_reader`` (pause_reading,
    # close, EOF kept open), which Loop routes to the reader.
    _ring_reader: Any = None

    def __init__(self, loop: Any, sock: Any, protocol: Any,
                 waiter: Any = None, extra: Any = None,
                 server: Any = None, context: Context | None = None) -> None:
        if loop._ring_reads:
            self._ring_reader = loop._new_ring_reader(self, sock.fileno())
        # asyncio's transports take a context from 3.15 on only.
        kwargs = {} if context is None else {"context": context}
        super().__init__(loop, sock, protocol, waiter, extra, server,
                         **kwargs)

    def _ring_wanted(self, callback: Any, args: tuple[Any, ...]) -> bool:
        return (self._ring_reader is not None and not args
                and callback == self._read_ready
                and self._read_ready_cb == self._read_ready__data_received)

    def _add_reader(self, fd: int, callback: Any, *args: Any) -> None:
        if not self._ring_wanted(callback, args):
            if self._ring_reader is not None:
                # what the ring read before this goes first
                self._ring_reader.flush()
            super()._add_reader(fd, callback, *args)
            return
        if not self.is_reading():
            return
        # The context asyncio's reader handle would run in: the
        # transport's (3.15), else a copy of the current one.
        context = self.__dict__.get("_context") or contextvars.copy_context()
        self._loop._ring_start(fd, self._ring_reader, context)

    def set_protocol(self, protocol: Any) -> None:
        loop = self._loop   # None once the connection is lost
        was_ring = self._ring_reader is not None and loop is not None and \
            loop._ring_active.get(self._sock_fd) is self._ring_reader
        super().set_protocol(protocol)
        # asyncio's __init__ sets the protocol before the reading state
        if self._ring_reader is None or loop is None \
                or "_paused" not in self.__dict__ or not self.is_reading():
            return
        if was_ring != self._ring_wanted(self._read_ready, ()):
            # another kind of protocol: move to the other way of reading
            loop._remove_reader(self._sock_fd)
            self._add_reader(self._sock_fd, self._read_ready)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._call_connection_lost(exc)
        finally:
            # The reader holds the transport: without this, a closed
            # transport would wait for the garbage collector.
            reader, self._ring_reader = self._ring_reader, None
            if reader is not None:
                reader.detach()

    def _ring_data_slow(self, data: bytes) -> None:
        """Bytes the ring read for a protocol that has since been replaced
        by a BufferedProtocol: copied into its buffers, as asyncio's SSL
        protocol feeds one."""
        try:
            _ASYNCIO_PROTOCOLS._feed_data_to_buffered_proto(
                self._protocol, data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.buffer_updated() call failed.')


def _default_backend() -> str | None:
    """The fd monitor of a :class:`Loop` made without ``backend``: epoll,
    asyncio's own choice on Linux, when usable (else ``None``, the
    :class:`AioContext` default).  Measured on asyncio workloads it beats
    io_uring's one-shot ``POLL_ADD`` per readiness event (``add_reader``
    ping-pong, cross-thread wake-ups), and on servers io_uring's ring
    reads (_SocketTransport) only draw level or a few percent ahead; it
    loses on pure callback chains, where io_uring's non-blocking poll
    makes no syscall; ``backend="io_uring"`` picks that one."""
    return "epoll" if "epoll" in backends() else None


class _PyLoopCore:
    """Stands in for ``_LoopCore`` when asyncio's ``BaseEventLoop`` does not
    have the attributes it replaces (``cevent._asyncio_layout``): the
    scheduling methods and ``_run_once`` are asyncio's own, and the
    selector's ``select()`` polls the context."""

    _iterate = False

    def _attach(self, ctx: AioContext, timer: Any) -> None:
        pass

    # call_later/call_at keep cevent's deadlines: integer ns, rounded up,
    # on TimerHandles ordered by them (asyncio's _run_once then runs a
    # timer once time() > when, as _clock_resolution is 0).

    def call_later(self, delay: float, callback: Callable[..., object],
                   *args: Any, context: Context | None = None) -> TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        when_ns = max(-_NEVER_NS, min(_NEVER_NS, clock_ns() + _ns_ceil(delay)))
        if abs(when_ns) >= _NEVER_NS:
            when = math.copysign(math.inf, when_ns)
        else:
            when = when_ns / 1e9
        return self._schedule_timer("call_later", when, when_ns, callback,
                                    args, context)

    def call_at(self, when: float, callback: Callable[..., object],
                *args: Any, context: Context | None = None) -> TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        return self._schedule_timer("call_at", when, _ns_ceil(when),
                                    callback, args, context)

    def _schedule_timer(self, name: str, when: float, when_ns: int,
                        callback: Callable[..., object], args: tuple[Any, ...],
                        context: Context | None) -> TimerHandle:
        loop: Any = self
        loop._check_closed()
        timer = _new_timer_debug(loop, name, when, when_ns, callback, args,
                                 context)
        handle: Any = timer
        if handle._source_traceback:
            # call_later/call_at and this method
            del handle._source_traceback[-2:]
        heapq.heappush(loop._scheduled, timer)
        handle._scheduled = True
        return timer


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
    does; ``None`` is epoll (``_default_backend``).  On epoll the context
    moves from ``ppoll()`` to ``epoll_wait()`` at the first fd rather than
    at QEMU's 64.  The loop may be created in one thread and run in
    another: ``run_forever()`` makes the running thread the context's home
    thread.
    """

    _selector: _AioContextSelector | None

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
        self._attach(self._ctx, self.__selector._timer)
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
    ``None`` is epoll when usable)."""
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
