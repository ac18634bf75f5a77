"""cevent.Loop on io_uring: socket transports read through the ring.

A transport whose protocol is a plain ``asyncio.Protocol`` reads with recv
requests on the context's ring (``cevent._loopcore._RingReader``) instead of
readiness.  These tests check what asyncio promises on that path and
what the ring adds: nothing read is lost across pause_reading(), close()
and a change of protocol; errors and EOF surface as asyncio's; requests
in flight keep the reader (and its buffer) alive until they complete or
the loop closes.  CPython's asyncio tests also run on it: io_uring is
the Loop's default backend where the kernel gives a ring.
"""

import asyncio
import gc
import os
import socket
import struct
import weakref

import pytest

import cevent
from cevent import _asyncio_layout
from support import Recorder, accepted, checked_loop, run, scaled

pytestmark = pytest.mark.skipif(
    "io_uring" not in cevent.backends() or
    not _asyncio_layout.NATIVE["ring_reads"],
    reason="io_uring is not usable on this machine")


@pytest.fixture
def loop():
    yield from checked_loop("io_uring")


async def until(cond, what="condition"):
    deadline = asyncio.get_running_loop().time() + scaled(5)
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.001)


def test_ring_used_on_io_uring_only(loop):
    assert loop._ring_reads

    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        reader = transport._ring_reader
        assert reader is not None
        assert reader.state["reading"] and reader.state["recv_inflight"]
        b.send(b"hello")
        await until(lambda: proto.data() == b"hello")
        transport.close()
        b.close()
        assert await proto.lost is None

    run(loop, main())

    other = cevent.new_event_loop(backend="epoll")
    try:
        assert not other._ring_reads
    finally:
        other.close()


def test_large_transfer_in_order(loop):
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main():
        transport, proto, b = await accepted(loop)
        await loop.sock_sendall(b, payload)
        b.shutdown(socket.SHUT_WR)
        await until(lambda: proto.eof, "EOF")
        assert max(len(c) for c in proto.chunks) <= transport.max_size
        assert await proto.lost is None
        b.close()
        return proto.data()

    assert run(loop, main()) == payload


def test_large_message_in_one_read(loop):
    """A message larger than the reader's buffer, all in the socket when
    the request completes: the read that filled the buffer is followed by
    a recv() of the rest, so data_received() gets it whole, as from
    asyncio's one recv(max_size)."""
    payload = os.urandom(100 * 1024)

    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        assert b.send(payload) == len(payload)
        await until(lambda: len(proto.data()) == len(payload))
        transport.close()
        b.close()
        return proto.chunks

    chunks = run(loop, main())
    assert len(chunks) == 1 and chunks[0] == payload


def test_bulk_reads_switch_to_poll_mode_and_back(loop):
    """A read that fills the buffer moves the reader to POLL_ADD + recv()
    (poll mode); the first smaller read moves it back to recv requests.
    Pausing in poll mode holds only "readable": nothing is read while
    paused."""
    big = os.urandom(100 * 1024)

    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        reader = transport._ring_reader
        assert not reader.state["poll_mode"]
        b.send(big)
        await until(lambda: len(proto.data()) == len(big))
        assert reader.state["poll_mode"]
        # paused in poll mode: the bytes stay in the socket
        transport.pause_reading()
        b.send(b"while paused")
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.data() == big
        transport.resume_reading()
        await until(lambda: proto.data() == big + b"while paused")
        assert not reader.state["poll_mode"]
        b.send(b"small")
        await until(lambda: proto.data().endswith(b"small"))
        assert not reader.state["poll_mode"]
        transport.close()
        b.close()
        assert await proto.lost is None

    run(loop, main())


def test_error_after_a_full_read_comes_next(loop):
    """The recv() after a read that filled the buffer finds the socket's
    error (the peer closed with bytes of ours unread: ECONNRESET): the
    bytes are delivered first, then the error closes the transport."""
    payload = os.urandom(16 * 1024)     # the reader's buffer, exactly

    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        transport.write(b"unread by b")
        await asyncio.sleep(0)
        assert b.send(payload) == len(payload)
        b.close()
        exc = await proto.lost
        return proto.data(), exc

    loop.set_exception_handler(lambda lp, ctx: None)
    data, exc = run(loop, main())
    assert data == payload
    assert isinstance(exc, ConnectionResetError)


def test_pause_holds_what_the_ring_read(loop):
    """Bytes sent while reading is paused are not delivered until
    resume_reading(), then all of them, in order, once."""
    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        reader = transport._ring_reader
        for i in range(50):
            b.send(b"a%03d" % i)
            if i % 2:
                transport.pause_reading()
                assert not transport.is_reading()
                before = len(proto.data())
                b.send(b"p%03d" % i)
                for _ in range(3):
                    await asyncio.sleep(0)
                assert len(proto.data()) == before
                transport.resume_reading()
            await asyncio.sleep(0)
        await until(lambda: len(proto.data()) == 75 * 4)
        assert not reader.state["held"]
        transport.close()
        b.close()
        return proto.data()

    data = run(loop, main())
    expected = b"".join(
        b"a%03d" % i + (b"p%03d" % i if i % 2 else b"") for i in range(50))
    assert data == expected


def test_data_that_beat_the_cancel_is_held(loop):
    """The recv completes before its cancel: the reader holds it while
    paused and delivers it on resume."""
    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        reader = transport._ring_reader
        # bytes arrive, then (before the loop polls) reading is paused: the
        # armed recv completes with them in the poll that submits the cancel
        b.send(b"early")
        transport.pause_reading()
        await until(lambda: reader.state["held"], "held completion")
        assert proto.data() == b""
        assert not reader.state["reading"]
        transport.resume_reading()
        await until(lambda: proto.data() == b"early")
        b.send(b"late")
        await until(lambda: proto.data() == b"earlylate")
        transport.close()
        b.close()

    run(loop, main())


def test_stream_flow_control(loop):
    """asyncio streams pause the transport when their buffer is full (a
    small limit here) and resume as the reader drains it."""
    payload = os.urandom(1024 * 1024)

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=a, limit=4096)
        send = loop.create_task(loop.sock_sendall(b, payload))
        got = bytearray()
        while len(got) < len(payload):
            got += await reader.read(1000)
            await asyncio.sleep(0)
        await send
        writer.close()
        await writer.wait_closed()
        b.close()
        return bytes(got)

    assert run(loop, main()) == payload


def test_eof_kept_open_stops_reading(loop):
    async def main():
        transport, proto, b = await accepted(loop)
        proto.keep_open = True
        b.send(b"last")
        b.shutdown(socket.SHUT_WR)
        await until(lambda: proto.eof, "EOF")
        reader = transport._ring_reader
        assert proto.data() == b"last"
        assert not reader.state["reading"]
        assert not reader.state["recv_inflight"]
        # the transport can still write
        transport.write(b"reply")
        assert await loop.sock_recv(b, 100) == b"reply"
        transport.close()
        assert await proto.lost is None
        b.close()

    run(loop, main())


def test_read_error_is_fatal(loop):
    """A reset connection: the recv completes with -ECONNRESET, which
    closes the transport with ConnectionResetError, as asyncio's read."""
    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        b.send(b"x")
        await until(lambda: proto.data() == b"x")
        # unread data plus SO_LINGER 0: the close sends a RST
        transport.write(b"unread by b")
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        b.close()
        exc = await proto.lost
        assert isinstance(exc, ConnectionResetError)
        assert transport.is_closing()

    loop.set_exception_handler(lambda lp, ctx: None)
    run(loop, main())


def test_data_received_error_goes_to_fatal_error(loop):
    class Failing(Recorder):
        def data_received(self, data):
            raise ZeroDivisionError

    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    async def main():
        transport, proto, b = await accepted(loop, Failing)
        b.send(b"boom")
        exc = await proto.lost
        assert isinstance(exc, ZeroDivisionError)
        b.close()

    run(loop, main())
    assert errors and "data_received() call failed" in errors[0]["message"]


def test_keyboard_interrupt_propagates(loop):
    class Interrupting(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if data == b"stop":
                raise KeyboardInterrupt

    first = {}

    async def main():
        transport, proto, b = await accepted(loop, Interrupting)
        first.update(transport=transport, proto=proto, b=b)
        b.send(b"stop")
        await asyncio.sleep(scaled(5))

    task = loop.create_task(main())
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    assert first["proto"].data() == b"stop"
    task.cancel()

    # the loop and the interrupted transport go on
    async def again():
        first["b"].send(b"more")
        await until(lambda: first["proto"].data() == b"stopmore")
        first["transport"].close()
        first["b"].close()
        await first["proto"].lost

    run(loop, again())
    assert task.cancelled()


def test_switch_to_buffered_protocol_and_back(loop):
    """set_protocol() with a BufferedProtocol moves the transport to
    readiness (asyncio reads into its buffer); bytes the ring read before
    go to it first; a plain Protocol again moves back to the ring."""
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(64)
            self.got = bytearray()

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

        def connection_lost(self, exc):
            pass

    async def main():
        transport, proto, b = await accepted(loop)
        await asyncio.sleep(0)
        reader = transport._ring_reader
        b.send(b"one")
        transport.pause_reading()
        await until(lambda: reader.state["held"], "held completion")
        buffered = Buffered()
        transport.set_protocol(buffered)
        transport.resume_reading()
        await until(lambda: bytes(buffered.got) == b"one")
        assert loop._ring_active.get(transport._sock_fd) is None
        b.send(b"two")
        await until(lambda: bytes(buffered.got) == b"onetwo")
        # and back, while reading
        plain = Recorder()
        transport.set_protocol(plain)
        assert loop._ring_active.get(transport._sock_fd) is reader
        b.send(b"three")
        await until(lambda: plain.data() == b"three")
        transport.close()
        b.close()

    run(loop, main())


def test_debug_mode_queues_deliveries(loop):
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0

    async def main():
        transport, proto, b = await accepted(loop)
        for i in range(20):
            b.send(b"%02d" % i)
            await until(lambda: len(proto.data()) == 2 * (i + 1))
        transport.close()
        b.close()
        return proto.data()

    assert run(loop, main()) == b"".join(b"%02d" % i for i in range(20))


def _closed_transport_refs(lp):
    """Weak references to a transport of lp (and its ring reader, if any)
    after it was closed, with the garbage collector off."""
    async def main():
        transport, proto, b = await accepted(lp)
        await asyncio.sleep(0)
        refs = [weakref.ref(transport)]
        reader = getattr(transport, "_ring_reader", None)
        if reader is not None:
            assert reader.state["recv_inflight"]
            refs.append(weakref.ref(reader))
        transport.close()
        assert await proto.lost is None
        b.close()
        del transport, proto, reader
        for _ in range(5):
            await asyncio.sleep(0)
        return refs

    gc.collect()
    gc.disable()
    try:
        return [r() is None for r in run(lp, main())]
    finally:
        gc.enable()


def test_closed_transport_is_freed_as_asyncio_s(loop):
    """close() cancels the pending recv.  The reader and its transport point
    at each other while reading: the lost connection breaks that, so the
    reader (once the cancel of its recv completed) is freed by reference
    counting alone, with the garbage collector off, and the transport
    whenever asyncio's own is (3.14's asyncio breaks the transport's own
    cycles at connection loss; CPython's test_sslproto checks it after a
    failed start_tls())."""
    aio = asyncio.SelectorEventLoop()
    try:
        (theirs,) = _closed_transport_refs(aio)
    finally:
        aio.close()
    ours, reader_freed = _closed_transport_refs(loop)
    assert reader_freed
    assert ours == theirs


# The transports are left open on purpose: their warnings are expected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_loop_close_with_requests_in_flight(loop):
    """Transports never closed: loop.close() closes the context, which
    cancels and reaps their recv requests; the readers are released."""
    refs = []

    async def main():
        for _ in range(3):
            transport, proto, b = await accepted(loop)
            await asyncio.sleep(0)
            refs.append((weakref.ref(transport._ring_reader), b))
        assert all(r().state["recv_inflight"] for r, _ in refs)

    run(loop, main())
    loop.close()
    readers = [r() for r, _ in refs]
    assert all(r.state["abandoned"] for r in readers)
    assert not any(r.state["recv_inflight"] for r in readers)
    del readers
    for _, b in refs:
        b.close()
    gc.collect()
    assert all(r() is None for r, _ in refs)


def test_reader_needs_io_uring():
    from cevent._loopcore import _RingReader

    lp = cevent.new_event_loop(backend="epoll")
    try:
        with pytest.raises(RuntimeError, match="io_uring"):
            _RingReader(lp, None, 0)
        with pytest.raises(TypeError):
            _RingReader(object(), None, 0)
    finally:
        lp.close()
