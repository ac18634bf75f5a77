"""cevent.Loop's socket transport, whose read and write paths are C
(``_SocketTransportCore``), and the loop's dispatch of fd callbacks as
``ctx.poll()`` finds them.

What asyncio's own tests check of a transport (test_asyncio_compat.py)
still holds; these tests go through the native paths and their hand-overs
to asyncio's Python methods one by one.
"""

import asyncio
import gc
import os
import socket
import struct
import sys
from asyncio import selector_events

import pytest

from cevent import _loopcore
from cevent._transport import _SocketTransport
from support import Recorder, accepted, run, scaled

# C code with reference counting of its own: run under memcheck too.
pytestmark = pytest.mark.valgrind


async def receive(loop, sock, size):
    """``size`` bytes from ``sock`` through the loop."""
    got = bytearray()
    while len(got) < size:
        chunk = await loop.sock_recv(sock, size - len(got))
        assert chunk, "EOF before the whole payload"
        got += chunk
    return bytes(got)


def test_native_methods_come_first():
    core = _loopcore._SocketTransportCore
    assert _SocketTransport.__mro__[1] is core
    for name in ("write", "_read_ready", "_read_ready__data_received"):
        assert getattr(_SocketTransport, name) is core.__dict__[name]
    # the hand-overs are asyncio's own methods
    base = selector_events._SelectorSocketTransport
    assert _SocketTransport._write_slow is base.write
    assert (_SocketTransport._read_ready__data_received_slow
            is base._read_ready__data_received)


def test_write_bytes_is_sent_at_once(loop):
    async def main():
        transport, _, b = await accepted(loop)
        transport.write(b"hello")
        # one send() in write() itself: the peer has it before the loop
        # runs again
        assert b.recv(100) == b"hello"
        assert transport.get_write_buffer_size() == 0
        transport.write(b"")                    # nothing to do
        transport.close()
        b.close()

    run(loop, main())


def asyncio_write_error(data):
    """The message of the TypeError that asyncio's own socket transport
    raises for write(data) (it changed in 3.14)."""
    aio = asyncio.SelectorEventLoop()

    async def main():
        transport, _, b = await accepted(aio)
        try:
            transport.write(data)
        except TypeError as exc:
            return str(exc)
        finally:
            transport.close()
            b.close()
        raise AssertionError(f"asyncio's transport took {data!r}")

    try:
        return run(aio, main())
    finally:
        aio.close()


def test_write_other_types_go_to_asyncio(loop):
    expected = asyncio_write_error("text")

    async def main():
        transport, _, b = await accepted(loop)
        transport.write(bytearray(b"ab"))
        transport.write(memoryview(b"cd"))
        assert await receive(loop, b, 4) == b"abcd"
        with pytest.raises(TypeError) as info:
            transport.write("text")
        assert str(info.value) == expected
        with pytest.raises(TypeError):
            transport.write()
        with pytest.raises(TypeError):
            transport.write(b"x", b"y")
        transport.write_eof()
        with pytest.raises(RuntimeError, match="after write_eof"):
            transport.write(b"late")
        transport.close()
        b.close()

    run(loop, main())


def test_partial_write_buffers_the_rest(loop):
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        transport, _, b = await accepted(loop)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        transport.write(payload)
        # the socket took part of it, asyncio's buffer holds the rest
        buffered = transport.get_write_buffer_size()
        assert 0 < buffered < len(payload)
        # the buffer is asyncio's: a write now appends to it
        transport.write(b"tail")
        assert transport.get_write_buffer_size() == buffered + 4
        got = await receive(loop, b, len(payload) + 4)
        assert got == payload + b"tail"
        transport.close()
        b.close()

    run(loop, main())


def test_write_error_is_fatal_error(loop):
    async def main():
        transport, proto, b = await accepted(loop)
        b.close()
        transport.write(b"x" * 1000)             # EPIPE on the socketpair
        exc = await proto.lost
        assert isinstance(exc, (BrokenPipeError, ConnectionResetError))
        assert transport.is_closing()
        # later writes are counted, not raised (asyncio's path)
        transport.write(b"y")
        transport.write(b"z")
        assert transport._conn_lost >= 2

    run(loop, main())


def test_read_error_is_fatal_error(loop):
    async def main():
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            transport, proto = await loop.create_connection(
                Recorder, *listener.getsockname())
            peer, _ = listener.accept()
        # closing with a zero linger time sends RST: recv() fails with
        # ECONNRESET
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        peer.close()
        exc = await proto.lost
        assert isinstance(exc, ConnectionResetError)
        assert transport.is_closing()

    run(loop, main())


def test_data_received_exception_goes_to_handler(loop):
    contexts = []

    class Failing(Recorder):
        def data_received(self, data):
            raise ValueError("boom")

    async def main():
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        transport, proto, b = await accepted(loop, Failing)
        b.send(b"x")
        exc = await proto.lost
        assert isinstance(exc, ValueError)
        b.close()

    run(loop, main())
    [context] = contexts
    assert context["message"] == \
        "Fatal error: protocol.data_received() call failed."
    assert isinstance(context["exception"], ValueError)
    assert context["exception"].__traceback__ is not None
    assert isinstance(context["transport"], _SocketTransport)


def test_data_received_keyboard_interrupt_propagates(loop):
    class Interrupting(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise KeyboardInterrupt

    async def setup():
        return await accepted(loop, Interrupting)

    transport, proto, b = run(loop, setup())
    b.send(b"x")
    with pytest.raises(KeyboardInterrupt):
        run(loop, asyncio.sleep(scaled(5)))
    assert proto.chunks == [b"x"]
    assert not transport.is_closing()       # not a fatal error
    b.send(b"y")

    async def more():
        while proto.data() != b"xy":
            await asyncio.sleep(0.001)

    with pytest.raises(KeyboardInterrupt):
        run(loop, more())
    transport.close()
    b.close()
    run(loop, asyncio.sleep(0))


def test_eof_and_connection_lost(loop):
    async def main():
        transport, proto, b = await accepted(loop)
        b.send(b"last")
        b.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert proto.eof and proto.data() == b"last"
        b.close()

    run(loop, main())


def test_max_size_beyond_the_buffer_uses_asyncio(loop):
    calls = []
    # the readiness path, which io_uring's ring reads replace by default
    # (test_ring_reads.py)
    loop._ring_reads = False

    async def main():
        transport, proto, b = await accepted(loop)
        slow = transport._read_ready__data_received_slow

        def counted():
            calls.append(1)
            slow()

        transport._read_ready__data_received_slow = counted
        transport.max_size = 1024 * 1024        # above the native buffer
        b.send(b"z" * 1000)
        while len(proto.data()) < 1000:
            await asyncio.sleep(0.001)
        transport.close()
        b.close()
        return proto.data()

    assert run(loop, main()) == b"z" * 1000
    assert calls


def test_buffered_protocol(loop):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(64)
            self.got = bytearray()

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

    async def main():
        transport, proto, b = await accepted(loop, Buffered)
        b.send(b"buffered" * 20)
        while len(proto.got) < 160:
            await asyncio.sleep(0.001)
        transport.close()
        b.close()
        return bytes(proto.got)

    assert run(loop, main()) == b"buffered" * 20


def test_no_reference_leaks(loop):
    async def one():
        transport, _, b = await accepted(loop)
        transport.write(b"ping")
        assert await receive(loop, b, 4) == b"ping"
        b.send(b"pong")
        await asyncio.sleep(0)
        transport.close()
        b.close()
        await asyncio.sleep(0)

    core = _loopcore._SocketTransportCore
    run(loop, one())
    gc.collect()
    counts = sys.getrefcount(_SocketTransport), sys.getrefcount(core)
    for _ in range(20):
        run(loop, one())
    gc.collect()
    assert (sys.getrefcount(_SocketTransport), sys.getrefcount(core)) == \
        counts


def test_core_alone():
    """The native base on its own: nothing to read, clear errors."""
    core = _loopcore._SocketTransportCore()
    with pytest.raises(AttributeError):
        core.write(b"x")                        # no _eof attribute
    with pytest.raises(AttributeError):
        core._read_ready()
    with pytest.raises(TypeError):
        core._read_ready(1)
    del core


# ---- fd callbacks run as ctx.poll() finds them ------------------------------

def _readable_pair():
    r, w = socket.socketpair()
    r.setblocking(False)
    w.send(b"!")
    return r, w


def test_fd_callbacks_run_during_the_poll(loop):
    """Outside debug mode, with nothing queued before the poll, a reader
    runs when the poll finds its fd, and what it queues runs in the same
    iteration (one _run_once() call, no second poll)."""
    order = []
    r, w = _readable_pair()

    def reader():
        order.append("reader")
        r.recv(1)
        loop.call_soon(order.append, "queued by reader")

    loop.add_reader(r, reader)
    loop._run_once()
    assert order == ["reader", "queued by reader"]
    loop.remove_reader(r)
    r.close()
    w.close()


def test_fd_callbacks_after_handles_queued_before(loop):
    """A handle queued before the poll runs before the reader the poll
    finds, as in asyncio; what the reader queues runs after them, in the
    same _run_once() call (as asyncio's next iteration would if its poll
    found nothing)."""
    order = []
    r, w = _readable_pair()

    def reader():
        order.append("reader")
        r.recv(1)
        loop.call_soon(order.append, "queued by reader")

    loop.add_reader(r, reader)
    loop.call_soon(order.append, "queued before")
    loop._run_once()
    assert order == ["queued before", "reader", "queued by reader"]
    loop.remove_reader(r)
    r.close()
    w.close()


def test_debug_mode_queues_fd_callbacks(loop):
    """In debug mode the reader handle goes through the ready queue, as in
    asyncio (so slow callbacks are timed)."""
    order = []
    r, w = _readable_pair()

    def reader():
        order.append("reader")
        r.recv(1)
        loop.call_soon(order.append, "queued by reader")

    loop.set_debug(True)
    loop.add_reader(r, reader)
    loop.call_soon(order.append, "queued before")
    loop._run_once()
    assert order == ["queued before", "reader"]
    loop._run_once()
    assert order == ["queued before", "reader", "queued by reader"]
    loop.remove_reader(r)
    r.close()
    w.close()


def test_fd_callback_exception_goes_to_handler(loop):
    contexts = []
    r, w = _readable_pair()

    def reader():
        r.recv(1)
        raise ValueError("reader failed")

    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.add_reader(r, reader)
    loop._run_once()
    [context] = contexts
    assert isinstance(context["exception"], ValueError)
    assert context["message"].startswith("Exception in callback")
    loop.remove_reader(r)
    r.close()
    w.close()


def test_fd_callback_keyboard_interrupt_loses_nothing(loop, unraisable):
    """A reader that raises KeyboardInterrupt stops the iteration; the
    other fd found ready in the same poll is queued (not run, not lost),
    as asyncio leaves ready handles on its queue."""
    got = {"a": 0, "b": 0}
    raised = []
    pairs = {name: _readable_pair() for name in got}

    def reader(name):
        if name == "a" and not raised:
            raised.append(1)
            raise KeyboardInterrupt
        try:
            pairs[name][0].recv(1)
        except BlockingIOError:
            return          # a handle queued twice, as asyncio can
        got[name] += 1

    for name, (r, _) in pairs.items():
        loop.add_reader(r, reader, name)
    with pytest.raises(KeyboardInterrupt):
        loop._run_once()
    assert raised
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert got == {"a": 1, "b": 1}
    assert unraisable.calls == []
    for r, w in pairs.values():
        loop.remove_reader(r)
        r.close()
        w.close()
