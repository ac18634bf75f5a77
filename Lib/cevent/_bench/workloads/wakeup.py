"""Cross-thread wake-up latency.

A second thread stamps ``t0 = perf_counter_ns()`` and wakes the loop; the
callback stamps ``t1`` (latency = t1 - t0) and releases a lock on which
the waker blocks before the next sample, so samples never pile up and the
loop is asleep (or spinning, with polling on) when the next one comes.
The latency includes the cost of the wake call itself.

* asyncio, uvloop, cevent.Loop: ``loop.call_soon_threadsafe(cb, t0)``;
* cevent (bare context, the main thread runs ``poll(True)``), three
  flavours: ``oneshot`` = ``ctx.bh_schedule_oneshot(cb)``; ``bh`` =
  ``bh.schedule()`` of one reused BH; ``notify`` = ``ctx.notify()``, the
  loop stamping t1 when ``poll(True)`` returns and sees the new sequence
  number.

Placements: ``same_cpu`` (both threads pinned to one CPU), ``cross_cpu``
(pinned to two CPUs), ``unpinned``.

``waited_pct`` (cevent only): the share of loop iterations that entered
the fd monitor (``stats()["waits"] / stats()["iterations"]``, warm-up
included); here nearly all of those slept, so with polling on it is the
share of wake-ups the spin did not catch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

import threading

from ..common import (
    collect,
    latency_metrics,
    perf_counter_ns,
    pin,
    placement_cpus,
    unpin,
)

NAME = "wakeup"
TITLE = "cross-thread wake-up latency"
DESCRIPTION = __doc__
POLL_MATTERS = True
ASYNCIO_ONLY = False

PLACEMENTS = ("same_cpu", "cross_cpu", "unpinned")
_METRICS = [("p50_us", "us", "lower"), ("p90_us", "us", "lower"),
            ("p99_us", "us", "lower"), ("waited_pct", "%", "lower")]
GROUPS = {p: {"metrics": _METRICS, "primary": "p50_us",
              "title": f"wake-up, {p.replace('_', ' ')}"}
          for p in PLACEMENTS}
FLAVOURS = ("oneshot", "bh", "notify")


def params(quick: bool, size: float) -> dict[str, Any]:
    samples = 4000 if quick else 20000
    warmup = 400 if quick else 1000
    return {"samples": max(10, int(samples * size)),
            "warmup": max(2, int(warmup * size)),
            "placements": list(PLACEMENTS)}


def _asyncio_once(loop: asyncio.AbstractEventLoop, total: int, placement: str
                  ) -> list[int]:
    loop_cpu, waker_cpu = placement_cpus(placement)
    lat: list[int] = []
    append = lat.append
    lock = threading.Lock()
    lock.acquire()

    def cb(t0: int) -> None:
        append(perf_counter_ns() - t0)
        lock.release()

    def waker() -> None:
        previous = pin(waker_cpu) if waker_cpu is not None else None
        threadsafe = loop.call_soon_threadsafe
        try:
            for _ in range(total):
                threadsafe(cb, perf_counter_ns())
                lock.acquire()
        finally:
            unpin(previous)
            loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=waker)
    previous = pin(loop_cpu) if loop_cpu is not None else None
    try:
        collect()
        loop.call_soon(thread.start)
        loop.run_forever()
        thread.join()
    finally:
        unpin(previous)
    return lat


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    total = p["samples"] + p["warmup"]
    out: list[dict[str, Any]] = []
    for placement in p["placements"]:
        loop = factory()
        try:
            lat = _asyncio_once(loop, total, placement)
        finally:
            loop.close()
        out.append({"group": placement, "flavour": "call_soon_threadsafe",
                    "metrics": latency_metrics(lat[p["warmup"]:]),
                    "info": {}})
    return out


def _native_once(backend: str | None, poll_max_ns: int, flavour: str,
                 placement: str, total: int
                 ) -> tuple[list[int], dict[str, Any]]:
    import cevent

    loop_cpu, waker_cpu = placement_cpus(placement)
    ctx = cevent.AioContext(backend)
    if poll_max_ns:
        ctx.set_poll_params(poll_max_ns)
    lat: list[int] = []
    append = lat.append
    lock = threading.Lock()
    lock.acquire()
    release = lock.release
    stamp = [0]
    seq = [0]

    def cb() -> None:
        append(perf_counter_ns() - stamp[0])
        release()

    bh = ctx.bh_new(cb) if flavour == "bh" else None

    def waker() -> None:
        previous = pin(waker_cpu) if waker_cpu is not None else None
        acquire = lock.acquire
        try:
            if flavour == "oneshot":
                oneshot = ctx.bh_schedule_oneshot
                for _ in range(total):
                    stamp[0] = perf_counter_ns()
                    oneshot(cb)
                    acquire()
            elif flavour == "bh":
                assert bh is not None
                schedule = bh.schedule
                for _ in range(total):
                    stamp[0] = perf_counter_ns()
                    schedule()
                    acquire()
            else:
                notify = ctx.notify
                for k in range(1, total + 1):
                    stamp[0] = perf_counter_ns()
                    seq[0] = k
                    notify()
                    acquire()
        finally:
            unpin(previous)

    thread = threading.Thread(target=waker)
    previous = pin(loop_cpu) if loop_cpu is not None else None
    poll = ctx.poll
    try:
        collect()
        thread.start()
        if flavour == "notify":
            last = 0
            while last < total:
                poll(True)
                t1 = perf_counter_ns()
                k = seq[0]
                if k != last:
                    last = k
                    append(t1 - stamp[0])
                    release()
        else:
            while len(lat) < total:
                poll(True)
        thread.join()
        stats = ctx.stats()
        used = ctx.backend
    finally:
        unpin(previous)
        if bh is not None:
            bh.delete()
        ctx.close()
    return lat, {"backend_used": used, "stats": stats}


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> list[dict[str, Any]]:
    total = p["samples"] + p["warmup"]
    out: list[dict[str, Any]] = []
    for placement in p["placements"]:
        for flavour in FLAVOURS:
            lat, info = _native_once(backend, poll_max_ns, flavour,
                                     placement, total)
            metrics = latency_metrics(lat[p["warmup"]:])
            stats = info["stats"]
            if stats.get("iterations"):
                metrics["waited_pct"] = (100.0 * stats.get("waits", 0)
                                        / stats["iterations"])
            out.append({"group": placement, "flavour": flavour,
                        "metrics": metrics, "info": info})
    return out
