"""Helpers shared by the workloads: CPU pinning, percentiles, fd limits,
timing loops."""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

perf_counter_ns = time.perf_counter_ns


# Taken once, at import: a thread created by a pinned thread inherits its
# affinity, so asking later would see a single CPU.
_CPUS = sorted(os.sched_getaffinity(0))


def cpus() -> list[int]:
    return list(_CPUS)


def pin(cpu: int) -> set[int] | None:
    """Pin the calling *thread* to the ``cpu``-th usable CPU (modulo their
    number).  Returns the previous affinity, or None when there is only one
    CPU (pinning is then meaningless)."""
    usable = cpus()
    if len(usable) < 2:
        return None
    previous = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {usable[cpu % len(usable)]})
    return previous


def unpin(previous: set[int] | None) -> None:
    if previous is not None:
        os.sched_setaffinity(0, previous)


def placement_cpus(placement: str) -> tuple[int | None, int | None]:
    """(loop CPU, other thread's CPU) for a placement; None = unpinned."""
    if placement == "same_cpu":
        return 0, 0
    if placement == "cross_cpu":
        return 0, 1
    return None, None


def percentile(sorted_values: Sequence[int], q: float) -> int:
    n = len(sorted_values)
    return sorted_values[min(n - 1, int(q * n))]


def latency_metrics(lat_ns: list[int], prefix: str = '') -> dict[str, float]:
    """p50/p90/p99 (and min/max) in microseconds."""
    lat = sorted(lat_ns)
    out = {}
    for q in (0.50, 0.90, 0.99):
        out[f"{prefix}p{int(q * 100)}_us"] = percentile(lat, q) / 1000
    return out


def raise_nofile(needed: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards the hard one; returns the
    soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return int(soft)


def max_idle_fds(margin: int = 200) -> int:
    soft = raise_nofile(1 << 30)
    return max(0, soft - margin)


def collect() -> None:
    """The garbage collector stays on; collect before each timed section
    (so that garbage of one section is not collected in the next)."""
    gc.collect()


def timed_iterations(run_batch: Callable[[int], object], min_ns: int,
                     first_batch: int = 1000, max_ns: int | None = None
                     ) -> Any:
    """Call ``run_batch(k)`` (which performs k iterations) with growing k
    until the total time reaches ``min_ns``; returns ns per iteration."""
    total_ns = 0
    total = 0
    k = first_batch
    while total_ns < min_ns:
        t0 = perf_counter_ns()
        run_batch(k)
        dt = perf_counter_ns() - t0
        total_ns += dt
        total += k
        if dt < min_ns // 4:
            k *= 2
    return total_ns / total
