"""One server process of the server benchmark (:mod:`.servers`).

    python -m cevent._bench.server_proc LOOP STYLE [BACKEND]

LOOP is ``asyncio``, a peer of :data:`.loops.PEERS` or ``cevent.Loop`` (on BACKEND,
or on its default backend), made by :func:`.loops.new_asyncio_loop`.  STYLE is one of :data:`STYLES`.
The server listens on 127.0.0.1 on a free port, prints ``READY <port>``
and serves until it is killed (SIGTERM ends it cleanly).

Echo styles (the three that uvloop's published benchmark, vmbench, compares,
so that these rows can be set beside its numbers):

* ``protocol``: an ``asyncio.Protocol`` whose ``data_received`` calls
  ``transport.write(data)``;
* ``streams``: ``asyncio.start_server``; ``await reader.read(102400)`` then
  ``writer.write(data)``;
* ``sock``: ``loop.sock_accept``, then per connection ``await
  loop.sock_recv(sock, 102400)`` and ``await loop.sock_sendall(sock,
  data)``.

HTTP/1.1 keep-alive styles, answering every request with a 13-byte text
body:

* ``httptools``: an ``asyncio.Protocol`` parsing with
  ``httptools.HttpRequestParser``;
* ``aiohttp``: an ``aiohttp.web`` application with one route.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import socket
import sys
from typing import Any, cast

from .loops import PEERS, new_asyncio_loop
from .workloads.tcp import EchoServer

STYLES = ("protocol", "streams", "sock", "httptools", "aiohttp")
LOOPS = ("asyncio",) + PEERS + ("cevent.Loop",)
READ_SIZE = 102400
BODY = b"Hello, World!"
RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
            b"\r\n" + BODY)


async def echo_streams(reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
    except ConnectionError:
        pass
    writer.close()


async def echo_sock(loop: asyncio.AbstractEventLoop,
                    sock: socket.socket) -> None:
    with sock:
        try:
            while True:
                data = await loop.sock_recv(sock, READ_SIZE)
                if not data:
                    break
                await loop.sock_sendall(sock, data)
        except ConnectionError:
            pass


async def sock_server(loop: asyncio.AbstractEventLoop,
                      listener: socket.socket) -> None:
    tasks: set[asyncio.Task[None]] = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo_sock(loop, sock))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with httptools: one fixed response per
    request, pipelining allowed."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        httptools = importlib.import_module("httptools")
        self.parser = httptools.HttpRequestParser(self)
        self.error = httptools.HttpParserError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.error:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(style: str) -> None:
    loop = asyncio.get_running_loop()
    listener = listening_socket()
    port = listener.getsockname()[1]
    keep: Any = None
    if style == "protocol":
        keep = await loop.create_server(EchoServer, sock=listener)
    elif style == "streams":
        keep = await asyncio.start_server(echo_streams, sock=listener,
                                          limit=READ_SIZE * 4)
    elif style == "sock":
        keep = loop.create_task(sock_server(loop, listener))
    elif style == "httptools":
        keep = await loop.create_server(HttpProtocol, sock=listener)
    elif style == "aiohttp":
        web = importlib.import_module("aiohttp.web")

        async def hello(request: Any) -> Any:
            return web.Response(body=BODY, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        keep = web.SockSite(runner, listener)
        await keep.start()
    else:
        raise ValueError(f"unknown style {style!r} (one of "
                         f"{', '.join(STYLES)})")
    stop = loop.create_future()
    try:
        loop.add_signal_handler(signal.SIGTERM, _set_once, stop)
    except NotImplementedError:  # pragma: no cover - a loop without it
        pass
    print(f"READY {port}", flush=True)
    await stop
    del keep


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    kind, style = argv[0], argv[1]
    backend = argv[2] if len(argv) == 3 else None
    if kind not in LOOPS:
        raise ValueError(f"unknown loop {kind!r} (one of {', '.join(LOOPS)})")
    loop = new_asyncio_loop({"kind": kind, "backend": backend})
    try:
        loop.run_until_complete(serve(style))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
