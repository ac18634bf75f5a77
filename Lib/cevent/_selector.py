"""The selector of cevent.Loop: asyncio's ``BaseSelector`` over the fd
handlers of an AioContext, and the loop's registration of readers and
writers on it.

asyncio's selector loop registers an fd's reader and writer handles as the
selector key's data.  :class:`_AioContextSelector` gives each registered
fd an fd handler (``_FdWatch`` from ``cevent._loopcore``, or its Python
stand-in) that puts the handles on the loop's ready queue, or runs them,
while the context polls: there is no event list to walk afterwards.
:class:`Registration`, a base of the loop, makes asyncio's
``_add_reader``/``_remove_reader`` (and the writer pair) one look-up.
"""

from __future__ import annotations

import selectors
from asyncio import events
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import Context
from typing import Any

from . import _asyncio_layout
from ._cevent import CLOCK_REALTIME, SCALE_NS, AioContext, clock_ns
from ._fallbacks import _PyFdWatch
from ._loopcore import _FdWatch, _LoopCore, _ns_ceil

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

_SelectorKey = selectors.SelectorKey
# What SelectorKey._make() calls: a key without the namedtuple's Python
# __new__ (a sock_* call that waits makes one).
_new_key = tuple.__new__


def _noop() -> None:
    pass


# _FdWatch (in C) is the fd handler of one registered fd: its
# read_ready/write_ready run or queue the asyncio reader or writer handle
# of the fd's selector key (what BaseSelectorEventLoop._process_events does
# for a selector's event list), or call selector._drop_cancelled() for a
# cancelled one, as _process_events does.
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
            watch.read_ready if events & EVENT_READ else None,
            watch.write_ready if events & EVENT_WRITE else None)

    def register(self, fileobj: Any, events: int,
                 data: Any = None) -> selectors.SelectorKey:
        if (not events) or (events & ~(EVENT_READ | EVENT_WRITE)):
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
        watch = _FdWatchType(_new_key(_SelectorKey,
                                      (fileobj, fd, events, data)),
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
            if (not events) or (events & ~(EVENT_READ | EVENT_WRITE)):
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
        if key.events != EVENT_READ or key.data[0] is not handle:
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
            data = (handle, None) if event == EVENT_READ else (None, handle)
            if self._new_watch(fd, event, data) is None:
                self.register(fd, event, data)  # raises as it should
            return None
        key = watch.key
        reader, writer = key.data
        if event == EVENT_READ:
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
        if event == EVENT_READ:
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
            deadline = clock_ns() + _ns_ceil(timeout)
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


class Registration:
    """Mixin of :class:`cevent.Loop`, before asyncio's selector loop in the
    bases: ``_add_reader``/``_remove_reader`` and the writer pair, which
    asyncio's transports use too, with asyncio's semantics and one
    dictionary look-up in the loop's :class:`_AioContextSelector` for an
    ``int`` fd (other file objects go to asyncio's methods)."""

    # asyncio's BaseSelectorEventLoop sets it to None when the loop
    # closes; these methods check _check_closed()/is_closed() first.
    _selector: _AioContextSelector

    # asyncio's, found after this class in the loop's bases
    _check_closed: Callable[[], None]
    is_closed: Callable[[], bool]

    def _add_handle(self, fd: int, event: int,
                    callback: Callable[..., object],
                    args: tuple[Any, ...],
                    context: Context | None = None) -> events.Handle:
        handle = events.Handle(callback, args, self, context)  # type: ignore
        self._install_handle(fd, event, handle)
        return handle

    def _install_handle(self, fd: int, event: int,
                        handle: events.Handle) -> None:
        """Make ``handle`` the reader or writer of ``fd``; the one it
        replaces is cancelled, as asyncio's ``_add_reader`` does."""
        self._check_closed()
        old = self._selector._set_handle(fd, event, handle)
        if old is not None:
            old.cancel()

    def _remove_handle(self, fd: int, event: int) -> bool:
        if self.is_closed():
            return False
        old = self._selector._clear_handle(fd, event)
        if old is None:
            return False
        old.cancel()
        return True

    # context: asyncio 3.15's transports pass theirs (asyncio's methods
    # take it from 3.15 on only).
    def _add_reader(self, fd: Any, callback: Callable[..., object],
                    *args: Any,
                    context: Context | None = None) -> events.Handle:
        if type(fd) is int:
            return self._add_handle(fd, EVENT_READ, callback, args, context)
        kwargs = {} if context is None else {"context": context}
        handle: events.Handle = super()._add_reader(  # type: ignore[misc]
            fd, callback, *args, **kwargs)
        return handle

    def _add_writer(self, fd: Any, callback: Callable[..., object],
                    *args: Any,
                    context: Context | None = None) -> events.Handle:
        if type(fd) is int:
            return self._add_handle(fd, EVENT_WRITE, callback, args, context)
        kwargs = {} if context is None else {"context": context}
        handle: events.Handle = super()._add_writer(  # type: ignore[misc]
            fd, callback, *args, **kwargs)
        return handle

    def _remove_reader(self, fd: Any) -> bool:
        if type(fd) is int:
            return self._remove_handle(fd, EVENT_READ)
        removed: bool = super()._remove_reader(fd)  # type: ignore[misc]
        return removed

    def _remove_writer(self, fd: Any) -> bool:
        if type(fd) is int:
            return self._remove_handle(fd, EVENT_WRITE)
        removed: bool = super()._remove_writer(fd)  # type: ignore[misc]
        return removed

    def _begin_read_wait(self, fd: int,
                         handle: events.Handle) -> _FdWatch | None:
        """Make ``handle`` the reader of ``fd`` while a ``sock_*`` call
        waits; pass what it returns to :meth:`_end_read_wait`.  The usual
        case, ``fd`` not registered, registers it directly; else as
        ``_add_reader``."""
        watch = self._selector._new_watch(fd, EVENT_READ, (handle, None))
        if watch is None:
            self._install_handle(fd, EVENT_READ, handle)
        return watch

    def _end_read_wait(self, fd: int, handle: events.Handle,
                       watch: _FdWatch | None) -> None:
        """The wait of :meth:`_begin_read_wait` is over.  The handle is
        the call's own: left in the ready queue, it finds the future done.
        A reader that ``add_reader()`` put in its place (cancelling it)
        stays."""
        selector: _AioContextSelector | None = self._selector
        if selector is None:
            return      # the loop closed meanwhile: nothing is watched
        if (watch is None or not selector._drop_watch(fd, watch, handle)) \
                and not handle.cancelled():
            self._remove_reader(fd)
