"""The ``loop.sock_*`` methods and reader/writer registration of
:class:`cevent.Loop`, shorter than asyncio's for the common case.

asyncio's ``sock_recv()`` that has to wait makes a reader ``Handle``, looks
the fd up in the selector twice (once to register, once to unregister),
binds a ``functools.partial`` as the future's done callback and removes the
reader through the public ``remove_reader()``, which checks for a
transport again.  Here:

* ``_add_reader``/``_remove_reader`` (and the writer pair), which asyncio's
  transports use too, make one dictionary look-up in the
  ``_AioContextSelector`` for an ``int`` fd;
* ``sock_recv``, ``sock_recv_into``, ``sock_accept`` and ``sock_sendall``
  try the call first, as asyncio does, and when they must wait, remove
  their reader in a ``finally`` of the coroutine instead of a done
  callback of the future;
* a call that is not the common case goes to asyncio's own method: debug
  mode (which checks that the socket is non-blocking), a socket that is
  not exactly ``socket.socket`` (an ``ssl.SSLSocket`` is refused there, as
  asyncio refuses it), a file object instead of an fd, and
  ``sock_sendall``'s remainder after a partial send.

What asyncio promises stays: the reader is registered with the selector
while the call waits, so ``add_reader()`` on the same fd replaces it (and
cancels the wait's handle, which then leaves the new reader in place),
an fd owned by a transport is refused with asyncio's ``RuntimeError``,
and cancelling the waiting task removes the reader at once.
"""

from __future__ import annotations

import selectors
import socket
from asyncio import events
from contextvars import Context
from typing import Any, Callable

from ._cevent import _sock_recv_nowait as _recv_nowait

_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE

_socket = socket.socket
_recv_into = socket.socket.recv_into


def _recv(sock: socket.socket, n: int) -> bytes:
    """sock.recv(n) for a reader that found ``sock`` readable: raises
    BlockingIOError if it was not after all."""
    data = _recv_nowait(sock.fileno(), n)
    if data is None:
        raise BlockingIOError
    return data


def _accept(sock: socket.socket, _: object) -> tuple[socket.socket, Any]:
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address


def _io_ready(fut: Any, op: Callable[[Any, Any], Any], sock: Any,
              arg: Any) -> None:
    """The reader of a waiting ``sock_*`` call: retry ``op`` and settle
    ``fut`` (asyncio's ``_sock_recv``, ``_sock_recv_into`` and
    ``_sock_accept`` in one)."""
    if fut.done():
        return
    try:
        result = op(sock, arg)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class SockOps:
    """Mixin of :class:`cevent.Loop`, before asyncio's selector loop in the
    bases; ``self._selector`` is the loop's ``_AioContextSelector``."""

    _selector: Any
    _debug: bool

    # -- registration: asyncio's semantics, one look-up -------------------

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
        self._check_closed()  # type: ignore[attr-defined]
        old = self._selector._set_handle(fd, event, handle)
        if old is not None:
            old.cancel()

    def _remove_handle(self, fd: int, event: int) -> bool:
        if self.is_closed():  # type: ignore[attr-defined]
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
            return self._add_handle(fd, _EVENT_READ, callback, args, context)
        kwargs = {} if context is None else {"context": context}
        handle: events.Handle = super()._add_reader(  # type: ignore[misc]
            fd, callback, *args, **kwargs)
        return handle

    def _add_writer(self, fd: Any, callback: Callable[..., object],
                    *args: Any,
                    context: Context | None = None) -> events.Handle:
        if type(fd) is int:
            return self._add_handle(fd, _EVENT_WRITE, callback, args, context)
        kwargs = {} if context is None else {"context": context}
        handle: events.Handle = super()._add_writer(  # type: ignore[misc]
            fd, callback, *args, **kwargs)
        return handle

    def _remove_reader(self, fd: Any) -> bool:
        if type(fd) is int:
            return self._remove_handle(fd, _EVENT_READ)
        removed: bool = super()._remove_reader(fd)  # type: ignore[misc]
        return removed

    def _remove_writer(self, fd: Any) -> bool:
        if type(fd) is int:
            return self._remove_handle(fd, _EVENT_WRITE)
        removed: bool = super()._remove_writer(fd)  # type: ignore[misc]
        return removed

    # -- sock_* --------------------------------------------------------------

    async def _sock_wait_read(self, sock: socket.socket,
                              op: Callable[[Any, Any], Any],
                              arg: Any) -> Any:
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)  # type: ignore[attr-defined]
        fut = self.create_future()  # type: ignore[attr-defined]
        handle = events.Handle(_io_ready, (fut, op, sock, arg),
                               self, None)  # type: ignore[arg-type]
        selector = self._selector
        # The usual case, fd not registered: register and unregister it
        # directly; else as _add_reader/_remove_reader.
        watch = selector._new_watch(fd, _EVENT_READ, (handle, None))
        if watch is None:
            self._install_handle(fd, _EVENT_READ, handle)
        try:
            return await fut
        finally:
            # The handle is this call's own: left in the ready queue, it
            # finds the future done.  A reader that add_reader() put in
            # its place (cancelling it) stays.
            if (watch is None or not selector._drop_watch(fd, watch, handle)) \
                    and not handle.cancelled():
                self._remove_reader(fd)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        if self._debug or type(sock) is not _socket:
            data: bytes = await super().sock_recv(sock, n)  # type: ignore
            return data
        got = _recv_nowait(sock.fileno(), n)
        if got is not None:
            return got
        data = await self._sock_wait_read(sock, _recv, n)
        return data

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        if self._debug or type(sock) is not _socket:
            nbytes: int = await super().sock_recv_into(  # type: ignore
                sock, buf)
            return nbytes
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        nbytes = await self._sock_wait_read(sock, _recv_into, buf)
        return nbytes

    async def sock_accept(self, sock: socket.socket
                          ) -> tuple[socket.socket, Any]:
        if self._debug or type(sock) is not _socket:
            pair: tuple[socket.socket, Any] = \
                await super().sock_accept(sock)  # type: ignore[misc]
            return pair
        try:
            return _accept(sock, None)
        except (BlockingIOError, InterruptedError):
            pass
        pair = await self._sock_wait_read(sock, _accept, None)
        return pair

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        if self._debug or type(sock) is not _socket:
            await super().sock_sendall(sock, data)  # type: ignore[misc]
            return
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        # send() counts bytes: so must the rest, whatever the item size
        # (send() has taken the buffer, so it is contiguous).
        view = memoryview(data).cast("B")
        if n == len(view):
            return
        # A partial send: asyncio's method waits for the rest.
        await super().sock_sendall(sock, view[n:])  # type: ignore[misc]
