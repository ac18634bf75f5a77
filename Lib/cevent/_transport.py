"""The socket transport of cevent.Loop: asyncio's, with its hot paths in
C (``_SocketTransportCore`` from ``cevent._loopcore``) and, on io_uring,
its reads through the context's ring (``_RingReader``)."""

from __future__ import annotations

import asyncio
import contextvars
from asyncio import selector_events
from contextvars import Context
from typing import Any

from . import _asyncio_layout, _loopcore
from ._loopcore import _SocketTransportCore

# asyncio's private pieces used the Python way (a changed asyncio breaks
# them loudly); cevent._asyncio_layout checks what the C code relies on.
_ASYNCIO_TRANSPORT: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_ASYNCIO_PROTOCOLS: Any = asyncio.protocols

# The ring reader: None when the extension was built without io_uring.
_RingReader: Any = getattr(_loopcore, "_RingReader", None)


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
