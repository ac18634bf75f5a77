"""fd readiness dispatch: socketpair ping-pong.

One non-blocking AF_UNIX ``socketpair()``; both ends are readers of the
same loop, in one thread: ``on_a`` reads 1 byte and writes 1 byte to ``a``,
``on_b`` reads 1 byte from ``b`` and echoes it, all with ``os.read`` /
``os.write`` in the Python callbacks.  One round trip = 2 loop iterations
with one ready fd each.  asyncio, uvloop, cevent.Loop: ``add_reader``;
cevent: ``ctx.set_fd_handler(fd, io_read=...)`` driven by ``poll(True)``.
Timed after a 10% warm-up.  Note: cevent's ``epoll`` backend is QEMU's
poll/epoll pair, so with these 3 fds it still runs on ppoll (column
"ran on"); the ``epoll+64`` row registers 64 idle eventfds first, so that
the context has upgraded to epoll (what asyncio and uvloop use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

import os
import socket

from ..common import collect, perf_counter_ns

NAME = "fd"
TITLE = "fd ping-pong over a socketpair"
DESCRIPTION = __doc__
POLL_MATTERS = False
ASYNCIO_ONLY = False
EPOLL_IDLE_FDS = 64
GROUPS = {"pingpong": {"metrics": [("rtt_per_s", "round trips/s",
                                    "higher")],
                       "primary": "rtt_per_s",
                       "title": "fd ping-pong, Python io_read callbacks"}}


def params(quick: bool, size: float) -> dict[str, Any]:
    n = 20000 if quick else 100000
    return {"round_trips": max(10, int(n * size))}


def _noop() -> None:
    pass


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


class _PingPong:
    def __init__(self) -> None:
        self.a, self.b = _pair()
        self.fa, self.fb = self.a.fileno(), self.b.fileno()
        self.left = 0
        self.done_cb: Callable[[], object] | None = None

    def handlers(self) -> tuple[Callable[[], None], Callable[[], None]]:
        read, write = os.read, os.write
        fa, fb = self.fa, self.fb

        def on_a() -> None:
            read(fa, 1)
            self.left -= 1
            if self.left:
                write(fa, b"x")
            elif self.done_cb is not None:
                self.done_cb()

        def on_b() -> None:
            read(fb, 1)
            write(fb, b"x")

        return on_a, on_b

    def start(self, n: int) -> None:
        self.left = n
        os.write(self.fa, b"x")

    def close(self) -> None:
        self.a.close()
        self.b.close()


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    loop = factory()
    pp = _PingPong()
    try:
        on_a, on_b = pp.handlers()
        loop.add_reader(pp.fa, on_a)
        loop.add_reader(pp.fb, on_b)
        pp.done_cb = loop.stop
        n = p["round_trips"]
        pp.start(max(1, n // 10))
        loop.run_forever()
        collect()
        t0 = perf_counter_ns()
        pp.start(n)
        loop.run_forever()
        dt = perf_counter_ns() - t0
        loop.remove_reader(pp.fa)
        loop.remove_reader(pp.fb)
    finally:
        loop.close()
        pp.close()
    return [{"group": "pingpong", "flavour": "add_reader",
             "metrics": {"rtt_per_s": n / (dt / 1e9)}, "info": {}}]


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> list[dict[str, Any]]:
    import cevent

    ctx = cevent.AioContext(backend)
    if poll_max_ns:
        ctx.set_poll_params(poll_max_ns)
    pp = _PingPong()
    poll = ctx.poll
    idle = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            for _ in range(p.get("idle_fds", 0))]
    try:
        for fd in idle:
            ctx.set_fd_handler(fd, io_read=_noop)
        on_a, on_b = pp.handlers()
        ctx.set_fd_handler(pp.fa, io_read=on_a)
        ctx.set_fd_handler(pp.fb, io_read=on_b)
        n = p["round_trips"]
        pp.start(max(1, n // 10))
        while pp.left:
            poll(True)
        collect()
        t0 = perf_counter_ns()
        pp.start(n)
        while pp.left:
            poll(True)
        dt = perf_counter_ns() - t0
        used = ctx.backend
        ctx.set_fd_handler(pp.fa)
        ctx.set_fd_handler(pp.fb)
        for fd in idle:
            ctx.set_fd_handler(fd)
    finally:
        ctx.close()
        pp.close()
        for fd in idle:
            os.close(fd)
    return [{"group": "pingpong", "flavour": "set_fd_handler",
             "metrics": {"rtt_per_s": n / (dt / 1e9)},
             "info": {"backend_used": used}}]
