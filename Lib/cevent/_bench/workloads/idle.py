"""Idle-fd scaling: one loop iteration with N idle fds.

N = 1, 10, 100, 1,000, 10,000 eventfds that never become readable are
registered for reading (RLIMIT_NOFILE raised to the hard limit as needed;
an N above it is skipped), then one loop iteration with no ready fd is
timed, for at least ``min_ms`` per point:

* asyncio, uvloop, cevent.Loop: a ``call_soon`` chain (one iteration per
  step);
* cevent, flavour ``poll(False)``: ``ctx.poll(False)`` in a Python loop
  (the target metric); flavour ``bh chain``: a ``bh.schedule()`` chain
  driven by ``poll(True)``, the same shape as asyncio's measurement.

The fds are registered with a Python ``io_read`` and no ``io_poll``, so
QEMU's non-blocking ``aio_poll`` must look at them (one fd-monitor call
per iteration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

import os

from ..common import collect, max_idle_fds, timed_iterations

NAME = "idle"
TITLE = "idle iteration with N idle fds"
DESCRIPTION = __doc__
POLL_MATTERS = False
ASYNCIO_ONLY = False
NS = (1, 10, 100, 1000, 10000)
GROUPS = {f"n{n}": {"metrics": [("ns_per_iter", "ns", "lower")],
                    "primary": "ns_per_iter",
                    "title": f"one idle iteration, {n:,} idle fds"}
          for n in NS}


def params(quick: bool, size: float) -> dict[str, Any]:
    return {"ns": list(NS), "min_ms": (40 if quick else 200) * size}


def _eventfds(n: int) -> list[int]:
    return [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(n)]


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _noop() -> None:
    pass


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    limit = max_idle_fds()
    min_ns = int(p["min_ms"] * 1e6)
    for n in p["ns"]:
        if n > limit:
            continue
        loop = factory()
        fds = _eventfds(n)
        try:
            for fd in fds:
                loop.add_reader(fd, _noop)
            call_soon = loop.call_soon

            def chain(k: int) -> None:
                left = k

                def step() -> None:
                    nonlocal left
                    left -= 1
                    if left:
                        call_soon(step)
                    else:
                        loop.stop()

                call_soon(step)
                loop.run_forever()

            chain(1000)
            collect()
            ns = timed_iterations(chain, min_ns, first_batch=5000)
            for fd in fds:
                loop.remove_reader(fd)
        finally:
            loop.close()
            _close(fds)
        out.append({"group": f"n{n}", "flavour": "call_soon chain",
                    "metrics": {"ns_per_iter": ns}, "info": {}})
    return out


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> list[dict[str, Any]]:
    import cevent

    out: list[dict[str, Any]] = []
    limit = max_idle_fds()
    min_ns = int(p["min_ms"] * 1e6)
    for n in p["ns"]:
        if n > limit:
            continue
        ctx = cevent.AioContext(backend)
        if poll_max_ns:
            ctx.set_poll_params(poll_max_ns)
        fds = _eventfds(n)
        try:
            for fd in fds:
                ctx.set_fd_handler(fd, io_read=_noop)
            poll = ctx.poll
            for _ in range(10):
                poll(False)

            def poll_batch(k: int) -> None:
                for _ in range(k):
                    poll(False)

            collect()
            ns_poll = timed_iterations(poll_batch, min_ns, first_batch=2000
                                       if n < 1000 or backend != "poll"
                                       else 20)
            left = 0

            def step() -> None:
                nonlocal left
                left -= 1
                if left:
                    schedule()

            bh = ctx.bh_new(step)
            schedule = bh.schedule

            def chain(k: int) -> None:
                nonlocal left
                left = k
                schedule()
                while left:
                    poll(True)

            chain(100)
            collect()
            ns_chain = timed_iterations(chain, min_ns, first_batch=2000
                                        if n < 1000 or backend != "poll"
                                        else 20)
            bh.delete()
            used = ctx.backend
            for fd in fds:
                ctx.set_fd_handler(fd)
        finally:
            ctx.close()
            _close(fds)
        info = {"backend_used": used}
        out.append({"group": f"n{n}", "flavour": "poll(False)",
                    "metrics": {"ns_per_iter": ns_poll}, "info": info})
        out.append({"group": f"n{n}", "flavour": "bh chain",
                    "metrics": {"ns_per_iter": ns_chain}, "info": info})
    return out
