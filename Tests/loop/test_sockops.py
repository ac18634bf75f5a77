"""cevent.Loop's own sock_* methods and reader/writer registration
(cevent._sockops): asyncio's behaviour, on every backend.

CPython's test_sock_lowlevel runs them too (test_asyncio_compat.py); these
tests pin down what that suite does not look at: the reader is registered
while a call waits and gone as soon as it returns or is cancelled, a
reader added over a waiting call wins, the calls that go to asyncio's own
methods (debug mode, SSL sockets, socket subclasses, partial sends).
"""

import array
import asyncio
import errno
import select
import socket
import ssl
import threading

import pytest

from cevent._loopcore import _sock_recv_nowait
from support import checked_loop, run, scaled


@pytest.fixture
def loop(backend):
    yield from checked_loop(backend)


def reader_of(loop, fd):
    try:
        return loop._selector.get_key(fd).data[0]
    except KeyError:
        return None


def test_recv_waits_with_a_registered_reader(loop, sockpair):
    a, b = sockpair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        assert not task.done()
        assert reader_of(loop, a.fileno()) is not None
        b.send(b"hello")
        assert await task == b"hello"
        # gone once the call has returned
        assert reader_of(loop, a.fileno()) is None
        # data already there: no wait, no reader
        b.send(b"again")
        await asyncio.sleep(0.01)
        assert await loop.sock_recv(a, 100) == b"again"
        assert reader_of(loop, a.fileno()) is None

    run(loop, main())


def test_recv_into_and_accept_wait(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await asyncio.sleep(0)
        assert not accept.done()
        client = socket.socket()
        client.setblocking(False)
        with client:
            await loop.sock_connect(client, listener.getsockname())
            conn, address = await accept
            with conn:
                assert conn.gettimeout() == 0     # made non-blocking
                assert address == client.getsockname()
                assert reader_of(loop, listener.fileno()) is None
                buf = bytearray(10)
                into = asyncio.ensure_future(loop.sock_recv_into(conn, buf))
                await asyncio.sleep(0)
                assert not into.done()
                client.send(b"abc")
                assert await into == 3
                assert buf[:3] == b"abc"
                assert reader_of(loop, conn.fileno()) is None

    with listener:
        run(loop, main())


def test_cancel_removes_the_reader(loop, sockpair):
    a, b = sockpair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        assert reader_of(loop, a.fileno()) is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader_of(loop, a.fileno()) is None
        # the data is still there for the next call
        b.send(b"kept")
        assert await loop.sock_recv(a, 100) == b"kept"

    run(loop, main())


def test_reader_added_over_a_waiting_call_wins(loop, sockpair):
    """As with asyncio: add_reader() on the fd of a waiting sock_recv()
    replaces its reader; the call's end then leaves the new one alone."""
    a, b = sockpair
    seen = []

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        loop.add_reader(a.fileno(), seen.append, "user")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader_of(loop, a.fileno()) is not None
        b.send(b"x")
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.001)
        assert seen[0] == "user"
        assert loop.remove_reader(a.fileno())
        assert not loop.remove_reader(a.fileno())

    run(loop, main())


def test_reader_and_writer_on_one_fd(loop, sockpair):
    """The int-fd paths keep a writer when the reader goes, and back."""
    a, b = sockpair
    fd = a.fileno()
    events = []
    loop.add_writer(fd, events.append, "w")
    loop.add_reader(fd, events.append, "r")
    key = loop._selector.get_key(fd)
    assert key.events == 3
    assert loop.remove_reader(fd)
    key = loop._selector.get_key(fd)
    assert key.events == 2 and key.data[0] is None
    loop.add_reader(fd, events.append, "r2")
    assert loop.remove_writer(fd)
    key = loop._selector.get_key(fd)
    assert key.events == 1 and key.data[1] is None
    assert not loop.remove_writer(fd)
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert "r2" in events and "r" not in events
    assert loop.remove_reader(fd)
    assert fd not in loop._selector.get_map()
    assert fd not in loop._selector._watches


def test_bad_fds(loop):
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises(ValueError):
        loop.add_writer(-5, print)
    assert not loop.remove_reader(12345)
    assert not loop.remove_writer(12345)
    loop.close()
    with pytest.raises(RuntimeError):
        loop.add_reader(0, print)
    assert not loop.remove_reader(0)


def test_fd_of_a_transport_is_refused(loop):
    async def main():
        listener = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port)
        sock = transport.get_extra_info("socket")
        raw = socket.socket(fileno=sock.fileno())
        try:
            with pytest.raises(RuntimeError, match="used by transport"):
                await loop.sock_recv(raw, 10)
        finally:
            raw.detach()
        transport.close()
        listener.close()
        await listener.wait_closed()

    run(loop, main())


def test_errors_while_waiting_reach_the_caller(loop, sockpair):
    a, b = sockpair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.close()
        assert await task == b""        # EOF
        assert reader_of(loop, a.fileno()) is None

    run(loop, main())

    c = socket.socket()
    c.setblocking(False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def reset():
        await loop.sock_connect(c, listener.getsockname())
        conn, _ = listener.accept()
        task = asyncio.ensure_future(loop.sock_recv(c, 100))
        await asyncio.sleep(0)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()                     # RST
        with pytest.raises(ConnectionResetError):
            await task
        assert reader_of(loop, c.fileno()) is None

    with c, listener:
        run(loop, reset())


def test_sendall_partial_send_completes(loop, sockpair):
    a, b = sockpair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 8192          # 2 MiB
    got = bytearray()

    async def receive():
        while len(got) < len(payload):
            got.extend(await loop.sock_recv(b, 65536))

    async def main():
        recv = asyncio.ensure_future(receive())
        await loop.sock_sendall(a, payload)
        await asyncio.wait_for(recv, scaled(10))
        assert bytes(got) == payload

    run(loop, main())


def test_sendall_counts_bytes_of_any_item_size(loop, sockpair):
    """send() counts bytes, len() of a memoryview counts items: a view of
    4-byte items, whole or sent in parts, arrives whole."""
    a, b = sockpair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    small = memoryview(b"\x01\x02\x03\x04").cast("I")
    big = memoryview(array.array("I", range(300000)))    # 1.2 MB

    async def receive(n):
        got = bytearray()
        while len(got) < n:
            got.extend(await loop.sock_recv(b, 65536))
        return bytes(got)

    async def main():
        for view in (small, big):
            recv = asyncio.ensure_future(receive(view.nbytes))
            await loop.sock_sendall(a, view)
            assert await asyncio.wait_for(recv, scaled(10)) == view.tobytes()

    run(loop, main())


def test_debug_mode_checks_blocking_sockets(loop, sockpair):
    a, b = sockpair
    loop.set_debug(True)
    a.setblocking(True)

    async def main():
        for call in (loop.sock_recv(a, 1), loop.sock_sendall(a, b"x"),
                     loop.sock_recv_into(a, bytearray(1)),
                     loop.sock_accept(a)):
            with pytest.raises(ValueError, match="non-blocking"):
                await call
        a.setblocking(False)
        b.send(b"d")
        assert await loop.sock_recv(a, 1) == b"d"

    run(loop, main())


def test_ssl_sockets_are_refused(loop):
    ctx = ssl.create_default_context()
    sock = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False,
                           server_hostname="example.org")

    async def main():
        for call in (loop.sock_recv(sock, 1), loop.sock_sendall(sock, b"x"),
                     loop.sock_recv_into(sock, bytearray(1)),
                     loop.sock_accept(sock)):
            with pytest.raises(TypeError, match="SSLSocket"):
                await call

    with sock:
        run(loop, main())


def test_socket_subclass(loop, sockpair):
    class Sock(socket.socket):
        pass

    a, b = sockpair
    sub = Sock(fileno=a.detach())
    sub.setblocking(False)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(sub, 10))
        await asyncio.sleep(0)
        b.send(b"sub")
        assert await task == b"sub"
        await loop.sock_sendall(sub, b"back")
        await asyncio.sleep(0.01)
        assert b.recv(10) == b"back"

    with sub:
        run(loop, main())


def test_many_waits_leave_nothing_behind(loop, sockpair):
    a, b = sockpair

    async def side(sock, first):
        if first:
            await loop.sock_sendall(sock, b"p")
        for _ in range(500):
            data = await loop.sock_recv(sock, 10)
            await loop.sock_sendall(sock, data)

    async def main():
        one = asyncio.ensure_future(side(a, True))
        await side(b, False)
        one.cancel()
        with pytest.raises(asyncio.CancelledError):
            await one
        assert a.fileno() not in loop._selector.get_map()
        assert b.fileno() not in loop._selector.get_map()

    run(loop, main())


def test_recv_nowait(sockpair):
    """The non-raising recv() that sock_recv() tries first."""
    a, b = sockpair
    assert _sock_recv_nowait(a.fileno(), 100) is None      # nothing there
    b.send(b"abc")
    assert _sock_recv_nowait(a.fileno(), 2) == b"ab"
    assert _sock_recv_nowait(a.fileno(), 100) == b"c"
    assert _sock_recv_nowait(a.fileno(), 0) == b""          # as recv(0)
    # larger than the shared read buffer: its own bytes object
    big = bytes(range(256)) * 1024
    b.setblocking(True)
    sender = threading.Thread(target=b.sendall, args=(big,))
    sender.start()
    got = bytearray()
    while len(got) < len(big):
        data = _sock_recv_nowait(a.fileno(), 1 << 20)
        if data is None:
            select.select([a], [], [], 5)
            continue
        assert 0 < len(data) <= 1 << 20
        got += data
    sender.join()
    assert got == big
    b.close()
    assert _sock_recv_nowait(a.fileno(), 100) == b""        # EOF
    with pytest.raises(ValueError, match="negative buffersize"):
        _sock_recv_nowait(a.fileno(), -1)
    with pytest.raises(OSError) as info:
        _sock_recv_nowait(-1, 10)
    assert info.value.errno == errno.EBADF
    with pytest.raises(TypeError):
        _sock_recv_nowait(a.fileno())
    with pytest.raises(TypeError):
        _sock_recv_nowait("x", 1)
    with pytest.raises(TypeError):
        _sock_recv_nowait(a.fileno(), 1.5)


def test_recv_size_with_index(loop, sockpair):
    """As socket.recv(): the size may be any object with __index__."""
    class Size:
        def __index__(self):
            return 3

    a, b = sockpair
    b.send(b"abcdef")
    assert run(loop, loop.sock_recv(a, Size())) == b"abc"
