"""Callback throughput: chains and batches.

``chain``: each callback schedules the next one.  asyncio, uvloop,
cevent.Loop: ``loop.call_soon(step)`` (one loop iteration per step);
cevent: flavour ``bh.schedule`` (one BH, rescheduled from its own
callback) and flavour ``oneshot`` (``ctx.bh_schedule_oneshot(step)``), a
BH scheduled from a BH running in the next iteration; the main thread
drives ``ctx.poll(True)`` until the chain ends.

``batch``: rounds of 1,000 callbacks queued by one callback, which also
queues the next round.  asyncio & co: ``call_soon`` x 1000; cevent:
``bh.schedule`` (1,000 pre-made BHs, each scheduled once per round) or
``oneshot`` (1,000 ``bh_schedule_oneshot`` per round).  Callbacks are
empty functions; the rate counts the 1,000 callbacks of each round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    import cevent

from ..common import collect, perf_counter_ns

NAME = "bh"
TITLE = "BH / call_soon chain and batch"
DESCRIPTION = __doc__
POLL_MATTERS = False
ASYNCIO_ONLY = False
BATCH = 1000
GROUPS = {
    "chain": {"metrics": [("cb_per_s", "callbacks/s", "higher")],
              "primary": "cb_per_s", "title": "chain (each schedules the next)"},
    "batch": {"metrics": [("cb_per_s", "callbacks/s", "higher")],
              "primary": "cb_per_s", "title": f"batch of {BATCH}"},
}


def params(quick: bool, size: float) -> dict[str, Any]:
    chain = 100_000 if quick else 500_000
    rounds = 100 if quick else 500
    return {"chain": max(10, int(chain * size)),
            "rounds": max(2, int(rounds * size))}


def _noop() -> None:
    pass


# ---- asyncio level ----------------------------------------------------------

def _asyncio_chain(loop: asyncio.AbstractEventLoop, n: int) -> None:
    call_soon = loop.call_soon
    left = n

    def step() -> None:
        nonlocal left
        left -= 1
        if left:
            call_soon(step)
        else:
            loop.stop()

    call_soon(step)
    loop.run_forever()


def _asyncio_batch(loop: asyncio.AbstractEventLoop, rounds: int) -> None:
    call_soon = loop.call_soon
    left = rounds
    noop = _noop

    def round_() -> None:
        nonlocal left
        left -= 1
        for _ in range(BATCH):
            call_soon(noop)
        call_soon(round_ if left else loop.stop)

    call_soon(round_)
    loop.run_forever()


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    loop = factory()
    try:
        _asyncio_chain(loop, max(1, p["chain"] // 10))
        collect()
        t0 = perf_counter_ns()
        _asyncio_chain(loop, p["chain"])
        chain = p["chain"] / ((perf_counter_ns() - t0) / 1e9)
        _asyncio_batch(loop, max(1, p["rounds"] // 10))
        collect()
        t0 = perf_counter_ns()
        _asyncio_batch(loop, p["rounds"])
        batch = p["rounds"] * BATCH / ((perf_counter_ns() - t0) / 1e9)
    finally:
        loop.close()
    return [{"group": "chain", "flavour": "call_soon",
             "metrics": {"cb_per_s": chain}, "info": {}},
            {"group": "batch", "flavour": "call_soon",
             "metrics": {"cb_per_s": batch}, "info": {}}]


# ---- cevent ------------------------------------------------------------------

def _native_chain(ctx: cevent.AioContext, flavour: str, n: int) -> None:
    left = n
    poll = ctx.poll

    if flavour == "bh.schedule":
        def step() -> None:
            nonlocal left
            left -= 1
            if left:
                schedule()

        bh = ctx.bh_new(step)
        schedule = bh.schedule
        schedule()
        while left:
            poll(True)
        bh.delete()
    else:
        oneshot = ctx.bh_schedule_oneshot

        def step() -> None:
            nonlocal left
            left -= 1
            if left:
                oneshot(step)

        oneshot(step)
        while left:
            poll(True)


def _native_batch(ctx: cevent.AioContext, flavour: str, rounds: int) -> None:
    left = rounds
    poll = ctx.poll
    noop = _noop
    finished = False

    def finish() -> None:
        nonlocal finished
        finished = True

    if flavour == "bh.schedule":
        bhs = [ctx.bh_new(noop) for _ in range(BATCH)]
        schedules = [bh.schedule for bh in bhs]

        def round_() -> None:
            nonlocal left
            left -= 1
            for schedule in schedules:
                schedule()
            if left:
                schedule_round()
            else:
                ctx.bh_schedule_oneshot(finish)

        round_bh = ctx.bh_new(round_)
        schedule_round = round_bh.schedule
        schedule_round()
        while not finished:
            poll(True)
        round_bh.delete()
        for bh in bhs:
            bh.delete()
    else:
        oneshot = ctx.bh_schedule_oneshot

        def round_() -> None:
            nonlocal left
            left -= 1
            for _ in range(BATCH):
                oneshot(noop)
            oneshot(round_ if left else finish)

        oneshot(round_)
        while not finished:
            poll(True)


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> list[dict[str, Any]]:
    import cevent

    out: list[dict[str, Any]] = []
    ctx = cevent.AioContext(backend)
    if poll_max_ns:
        ctx.set_poll_params(poll_max_ns)
    try:
        for flavour in ("bh.schedule", "oneshot"):
            _native_chain(ctx, flavour, max(1, p["chain"] // 10))
            collect()
            t0 = perf_counter_ns()
            _native_chain(ctx, flavour, p["chain"])
            rate = p["chain"] / ((perf_counter_ns() - t0) / 1e9)
            out.append({"group": "chain", "flavour": flavour,
                        "metrics": {"cb_per_s": rate}, "info": {}})
        for flavour in ("bh.schedule", "oneshot"):
            _native_batch(ctx, flavour, max(1, p["rounds"] // 10))
            collect()
            t0 = perf_counter_ns()
            _native_batch(ctx, flavour, p["rounds"])
            rate = p["rounds"] * BATCH / ((perf_counter_ns() - t0) / 1e9)
            out.append({"group": "batch", "flavour": flavour,
                        "metrics": {"cb_per_s": rate}, "info": {}})
        stats = ctx.stats()
    finally:
        ctx.close()
    for row in out:
        row["info"]["stats"] = stats
    return out
