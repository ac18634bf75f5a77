"""The ``loop.sock_*`` methods of :class:`cevent.Loop`, shorter than
asyncio's for the common case.

asyncio's ``sock_recv()`` that has to wait makes a reader ``Handle``, looks
the fd up in the selector twice (once to register, once to unregister),
binds a ``functools.partial`` as the future's done callback and removes the
reader through the public ``remove_reader()``, which checks for a
transport again.  Here:

* the reader of a waiting call is registered through the loop's
  ``Registration`` (``cevent._selector``): one dictionary look-up, and
  for an fd nobody else watches, registered and unregistered directly;
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

import socket
from asyncio import events
from typing import Any, Callable

from ._loopcore import _sock_recv_nowait as _recv_nowait
from ._selector import Registration

_socket = socket.socket
_recv_into = socket.socket.recv_into


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


def _recv_ready(fut: Any, sock: socket.socket, n: int) -> None:
    """The reader of a waiting ``sock_recv``: read without blocking and
    settle ``fut`` (asyncio's ``_sock_recv``), in one frame; nothing read
    (the fd was not readable after all) waits on."""
    if fut.done():
        return
    try:
        data = _recv_nowait(sock.fileno(), n)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        if data is not None:
            fut.set_result(data)


class SockOps(Registration):
    """Mixin of :class:`cevent.Loop`, before asyncio's selector loop in the
    bases: it waits through the loop's :class:`Registration`."""

    _debug: bool

    # asyncio's, found after this class in the loop's bases
    _ensure_fd_no_transport: Callable[[int], None]
    _transports: Any
    create_future: Callable[[], Any]

    # -- sock_* --------------------------------------------------------------

    async def _sock_wait_read(self, sock: socket.socket,
                              ready: Callable[..., None],
                              args: tuple[Any, ...]) -> Any:
        """Wait with ``ready(fut, *args)`` as the reader of ``sock`` until
        it settles ``fut``, and return the result."""
        fd = sock.fileno()
        # With no transport at all (len() of asyncio's WeakValueDictionary
        # of them), no transport owns fd: skip the look-up by key, which
        # raises and catches a KeyError when fd has none.
        if self._transports:
            self._ensure_fd_no_transport(fd)
        fut = self.create_future()
        handle = events.Handle(ready, (fut,) + args,
                               self, None)  # type: ignore[arg-type]
        wait = self._begin_read_wait(fd, handle)
        try:
            return await fut
        finally:
            self._end_read_wait(fd, handle, wait)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        if self._debug or type(sock) is not _socket:
            data: bytes = await super().sock_recv(sock, n)  # type: ignore
            return data
        got = _recv_nowait(sock.fileno(), n)
        if got is not None:
            return got
        data = await self._sock_wait_read(sock, _recv_ready, (sock, n))
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
        nbytes = await self._sock_wait_read(
            sock, _io_ready, (_recv_into, sock, buf))
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
        pair = await self._sock_wait_read(
            sock, _io_ready, (_accept, sock, None))
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
