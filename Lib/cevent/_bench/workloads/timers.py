"""Timers: many at once, and the precision of a few.

``dense``: from inside one callback, 100,000 timers with delays uniform in
[0, 10 ms] (seeded; the same delays for every loop), then the loop runs
until all have fired.  asyncio & co: ``loop.call_later(delay, fire, i)``;
cevent: ``ctx.timer_new(CLOCK_REALTIME, SCALE_NS, partial(fire, i))``
then ``timer.mod_ns(t + delay)`` from a oneshot BH.  Reported: timers/s =
N / (last fire - start of arming), thread CPU time per timer, arming time
per timer, max lateness and the number of timers fired early.

``sparse``: 1,000 timers in [0, 200 ms], a precision test: lateness
p50/min/max.  Lateness = fire time - (``perf_counter_ns()`` just before
the arming call + delay), measured independently of each loop's clock;
below 0 = fired early.  cevent's CLOCK_REALTIME is CLOCK_MONOTONIC, the
clock of ``perf_counter_ns()``, so its deadline is exactly that stamp +
delay (checked at run time; otherwise ``clock_ns()`` is used).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    import cevent

import functools
import random
import time

from ..common import collect, percentile, perf_counter_ns

NAME = "timers"
TITLE = "timers"
DESCRIPTION = __doc__
POLL_MATTERS = False
ASYNCIO_ONLY = False
GROUPS = {
    "dense": {"metrics": [("timers_per_s", "timers/s", "higher"),
                          ("cpu_ns_per_timer", "ns", "lower"),
                          ("arm_ns_per_timer", "ns", "lower"),
                          ("late_max_ms", "ms", "lower"),
                          ("early", "timers", "lower")],
              "primary": "timers_per_s",
              "title": "100k timers in 10 ms"},
    "sparse": {"metrics": [("late_p50_us", "us", "lower"),
                           ("late_min_us", "us", "higher"),
                           ("late_max_us", "us", "lower"),
                           ("early", "timers", "lower")],
               "primary": "late_p50_us",
               "title": "1k timers in 200 ms (lateness; min < 0 = early)"},
}


def params(quick: bool, size: float) -> dict[str, Any]:
    return {"dense_n": max(10, int(100_000 * size)), "dense_window_ns":
            10_000_000, "sparse_n": max(10, int(1000 * size)),
            "sparse_window_ns": 200_000_000, "seed": 7}


def _delays(n: int, window_ns: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(window_ns + 1) for _ in range(n)]


def _summarise(group: str, n: int, delays: list[int], expected: Any,
               fired_at: Any, t_start: int, t_armed: int, cpu_ns: int
               ) -> dict[str, Any]:
    late = [fired_at[i] - expected[i] for i in range(n)]
    early = sum(1 for x in late if x < 0)
    if group == "dense":
        last = max(fired_at)
        return {"timers_per_s": n / ((last - t_start) / 1e9),
                "cpu_ns_per_timer": cpu_ns / n,
                "arm_ns_per_timer": (t_armed - t_start) / n,
                "late_max_ms": max(late) / 1e6,
                "early": early}
    late.sort()
    return {"late_p50_us": percentile(late, 0.5) / 1000,
            "late_min_us": late[0] / 1000,
            "late_max_us": late[-1] / 1000,
            "early": early}


def _asyncio_once(loop: asyncio.AbstractEventLoop, group: str, n: int,
                  delays: list[int]) -> dict[str, Any]:
    expected = [0] * n
    fired_at = [0] * n
    left = n
    marks = {}

    def fire(i: int) -> None:
        nonlocal left
        fired_at[i] = perf_counter_ns()
        left -= 1
        if not left:
            loop.stop()

    def arm() -> None:
        call_later = loop.call_later
        marks["start"] = perf_counter_ns()
        for i, d in enumerate(delays):
            t = perf_counter_ns()
            call_later(d / 1e9, fire, i)
            expected[i] = t + d
        marks["armed"] = perf_counter_ns()

    collect()
    cpu0 = time.thread_time_ns()
    loop.call_soon(arm)
    loop.run_forever()
    cpu = time.thread_time_ns() - cpu0
    return _summarise(group, n, delays, expected, fired_at, marks["start"],
                      marks["armed"], cpu)


def run_asyncio(factory: Callable[[], asyncio.AbstractEventLoop],
                p: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for group, n, window in (("dense", p["dense_n"], p["dense_window_ns"]),
                             ("sparse", p["sparse_n"],
                              p["sparse_window_ns"])):
        delays = _delays(n, window, p["seed"])
        loop = factory()
        try:
            # Warm-up: a few timers, so the first timed arm is not the
            # first call.
            _asyncio_once(loop, "sparse", 10, [1000] * 10)
            metrics = _asyncio_once(loop, group, n, delays)
        finally:
            loop.close()
        out.append({"group": group, "flavour": "call_later",
                    "metrics": metrics, "info": {}})
    return out


def _native_once(ctx: cevent.AioContext, group: str, n: int, delays: list[int]
                 ) -> dict[str, Any]:
    import cevent

    same_clock = abs(cevent.clock_ns(cevent.CLOCK_REALTIME)
                     - perf_counter_ns()) < 1_000_000
    expected = [0] * n
    fired_at = [0] * n
    left = n
    marks = {}

    def fire(i: int) -> None:
        nonlocal left
        fired_at[i] = perf_counter_ns()
        left -= 1

    def arm() -> None:
        timer_new = ctx.timer_new
        clock, scale = cevent.CLOCK_REALTIME, cevent.SCALE_NS
        partial = functools.partial
        clock_ns = cevent.clock_ns
        marks["start"] = perf_counter_ns()
        if same_clock:
            for i, d in enumerate(delays):
                t = perf_counter_ns()
                timer_new(clock, scale, partial(fire, i)).mod_ns(t + d)
                expected[i] = t + d
        else:
            for i, d in enumerate(delays):
                t = perf_counter_ns()
                timer_new(clock, scale, partial(fire, i)).mod_ns(
                    clock_ns() + d)
                expected[i] = t + d
        marks["armed"] = perf_counter_ns()

    poll = ctx.poll
    collect()
    cpu0 = time.thread_time_ns()
    ctx.bh_schedule_oneshot(arm)
    while left:
        poll(True)
    cpu = time.thread_time_ns() - cpu0
    return _summarise(group, n, delays, expected, fired_at, marks["start"],
                      marks["armed"], cpu)


def run_native(backend: str | None, poll_max_ns: int, p: dict[str, Any]
               ) -> list[dict[str, Any]]:
    import cevent

    out: list[dict[str, Any]] = []
    for group, n, window in (("dense", p["dense_n"], p["dense_window_ns"]),
                             ("sparse", p["sparse_n"],
                              p["sparse_window_ns"])):
        delays = _delays(n, window, p["seed"])
        ctx = cevent.AioContext(backend)
        if poll_max_ns:
            ctx.set_poll_params(poll_max_ns)
        try:
            _native_once(ctx, "sparse", 10, [1000] * 10)
            metrics = _native_once(ctx, group, n, delays)
            used = ctx.backend
        finally:
            ctx.close()
        out.append({"group": group, "flavour": "timer_new+mod_ns",
                    "metrics": metrics, "info": {"backend_used": used}})
    return out
