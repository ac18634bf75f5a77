"""TCP echo over loopback (asyncio level only: asyncio, uvloop,
cevent.Loop).

Server and clients run in the same loop and process.  Each client sends a
1 KiB message, waits for the whole echo, then sends the next; 1 client or
50 concurrent clients.  ``protocols``: ``loop.create_server`` /
``loop.create_connection`` with ``asyncio.Protocol`` subclasses (server
echoes in ``data_received``); ``streams``: ``asyncio.start_server`` /
``asyncio.open_connection`` (server ``readexactly`` + ``write``, client
``write`` + ``readexactly``).  Rate = messages (round trips) per second
over all clients (asyncio's and uvloop's TCP transports set TCP_NODELAY).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import asyncio

import asyncio

from ..common import collect, perf_counter_ns

NAME = "tcp"
TITLE = "TCP echo over loopback, 1 KiB messages"
DESCRIPTION = __doc__
POLL_MATTERS = False
ASYNCIO_ONLY = True
MSG = 1024
CLIENTS = (1, 50)
GROUPS = {}
for _api in ("protocols", "streams"):
    for _c in CLIENTS:
        GROUPS[f"{_api}_c{_c}"] = {
            "metrics": [("msg_per_s", "messages/s", "higher")],
            "primary": "msg_per_s",
            "title": f"TCP echo, {_api}, {_c} client{'s' if _c > 1 else ''}"}


def params(quick: bool, size: float) -> dict[str, Any]:
    total = 10_000 if quick else 40_000
    return {"messages": max(50, int(total * size))}


class EchoServer(asyncio.Protocol):
    """Echoes in ``data_received``; also the server benchmark's
    ``protocol`` style (server_proc.py)."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and rloop's transports are not asyncio.Transport
        # subclasses
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _Client(asyncio.Protocol):
    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.left = count
        self.done = done
        self.got = 0
        self.payload = b"x" * MSG

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses
        self.transport: asyncio.Transport = cast(asyncio.Transport,
                                                 transport)

    def start(self) -> None:
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= MSG:
            self.got -= MSG
            self.left -= 1
            if self.left:
                self.transport.write(self.payload)
            elif not self.done.done():
                self.done.set_result(None)


async def _protocols(loop: asyncio.AbstractEventLoop, clients: int,
                     per_client: int) -> int:
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conns: list[tuple[asyncio.BaseTransport, _Client,
                      asyncio.Future[None]]] = []
    for _ in range(clients):
        done = loop.create_future()
        transport, proto = await loop.create_connection(
            lambda done=done: _Client(per_client, done),  # type: ignore[misc]
            "127.0.0.1", port)
        conns.append((transport, proto, done))
    collect()
    t0 = perf_counter_ns()
    for _, proto, _ in conns:
        proto.start()
    await asyncio.gather(*(done for _, _, done in conns))
    dt = perf_counter_ns() - t0
    for conn, _, _ in conns:
        conn.close()
    server.close()
    await server.wait_closed()
    return dt


async def _streams(loop: asyncio.AbstractEventLoop, clients: int,
                   per_client: int) -> int:
    async def handle(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readexactly(MSG)
                writer.write(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conns = [await asyncio.open_connection("127.0.0.1", port)
             for _ in range(clients)]
    payload = b"x" * MSG

    async def client(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        for _ in range(per_client):
            writer.write(payload)
            await reader.readexactly(MSG)

    collect()
    t0 = perf_counter_ns()
    await asyncio.gather(*(client(r, w) for r, w in conns))
    dt = perf_counter_ns() - t0
    for _, writer in conns:
        writer.close()
    server.close()
    await server.wait_closed()
    return dt


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for api, fn in (("protocols", _protocols), ("streams", _streams)):
        for clients in CLIENTS:
            per_client = max(1, p["messages"] // clients)
            loop = factory()
            try:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(fn(loop, clients,
                                           max(1, per_client // 10)))
                dt = loop.run_until_complete(fn(loop, clients, per_client))
            finally:
                asyncio.set_event_loop(None)
                loop.close()
            out.append({"group": f"{api}_c{clients}", "flavour": api,
                        "metrics": {"msg_per_s":
                                    clients * per_client / (dt / 1e9)},
                        "info": {}})
    return out


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> None:
    raise NotImplementedError("tcp is an asyncio-level workload")

