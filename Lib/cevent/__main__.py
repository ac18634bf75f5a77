"""``python -m cevent``: what this build and kernel offer, and a short demo.

``python -m cevent`` prints the version, the usable fd monitors (and why
the others are not usable), the io_uring features in use, then runs a
short live demo on each backend.  ``python -m cevent bench [--quick]
[--only WORKLOAD ...] [--out DIR]`` runs the benchmarks side by side with
asyncio and uvloop (``cevent._bench``; ``bench --help`` for the options).
"""

import socket
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import cevent

# IORING_FEAT_* bits (include/uapi/linux/io_uring.h), by bit.
_IORING_FEATURES = {1 << i: name for i, name in enumerate([
    "SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS",
    "CUR_PERSONALITY", "FAST_POLL", "POLL_32BITS", "SQPOLL_NONFIXED",
    "EXT_ARG", "NATIVE_WORKERS", "RSRC_TAGS", "CQE_SKIP", "LINKED_FILE",
    "REG_REG_RING", "RECVSEND_BUNDLE", "MIN_TIMEOUT", "RW_ATTR",
    "NO_IOWAIT",
])}
_IORING_FEAT_NO_IOWAIT = 1 << 17

#: IORING_SETUP_* bits cevent may ask for (Modules/fdmon-io_uring.c), and
#: NO_SQARRAY, which liburing 2.6+ adds by itself where the kernel has it.
_IORING_SETUP_FLAGS = {
    1 << 8: "COOP_TASKRUN",
    1 << 9: "TASKRUN_FLAG",
    1 << 12: "SINGLE_ISSUER",
    1 << 13: "DEFER_TASKRUN",
    1 << 16: "NO_SQARRAY",
}

PING_PONG_ROUNDS = 10_000
BH_CHAIN = 100_000
TIMERS = 1_000


def _usage(out: TextIO) -> None:
    print("usage: python -m cevent          info and a short demo\n"
          "       python -m cevent bench    benchmarks vs asyncio and uvloop "
          "(bench --help)", file=out)


def _decode_bits(bits: int, names: dict[int, str]) -> str:
    """The names of the known bits set in ``bits``, then the rest in hex;
    "none" for 0."""
    found = [name for bit, name in names.items() if bits & bit]
    unknown = bits & ~sum(names)
    if unknown:
        found.append(f"0x{unknown:x}")
    return " ".join(found) or "none"


def print_info() -> None:
    print(f"cevent {cevent.__version__} on Python {sys.version.split()[0]}")
    print(f"backends: {', '.join(cevent.backends())}")
    for name, reason in cevent.unavailable_backends().items():
        print(f"  {name} unavailable: {reason}")

    if "io_uring" in cevent.backends():
        with cevent.AioContext("io_uring") as ctx:
            bits = ctx.io_uring_features
            setup = ctx.io_uring_setup_flags
        print(f"io_uring features: 0x{bits:x} "
              f"({_decode_bits(bits, _IORING_FEATURES)})")
        print(f"io_uring setup flags: 0x{setup:x} "
              f"({_decode_bits(setup, _IORING_SETUP_FLAGS)})")
        if bits & _IORING_FEAT_NO_IOWAIT:
            print("io_uring waits: IORING_ENTER_NO_IOWAIT (an idle loop is "
                  "not accounted as iowait)")
        else:
            print("io_uring waits: counted as iowait (the kernel lacks "
                  "IORING_FEAT_NO_IOWAIT, Linux 6.15+)")
    with cevent.AioContext() as ctx:
        print(f"default backend: {ctx.backend}")
        counters = ", ".join(sorted(ctx.stats()))
        print(f"counters (AioContext.stats()): {counters}")


def _rate(count: int, seconds: float) -> str:
    if seconds <= 0:
        return "n/a"
    per_s = count / seconds
    return f"{per_s:,.0f}/s ({seconds * 1e9 / count:,.0f} ns each)"


def demo_ping_pong(ctx: cevent.AioContext,
                   rounds: int = PING_PONG_ROUNDS) -> float:
    """One byte bouncing between the two ends of a socketpair."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    done = 0

    def on_a() -> None:
        nonlocal done
        a.recv(1)
        done += 1
        if done < rounds:
            a.send(b"x")

    def on_b() -> None:
        b.recv(1)
        b.send(b"x")

    try:
        ctx.set_fd_handler(a, on_a)
        ctx.set_fd_handler(b, on_b)
        start = time.perf_counter()
        b.send(b"x")
        while done < rounds:
            ctx.poll(True)
        elapsed = time.perf_counter() - start
    finally:
        ctx.set_fd_handler(a)
        ctx.set_fd_handler(b)
        a.close()
        b.close()
    return elapsed


def demo_bh_chain(ctx: cevent.AioContext, length: int = BH_CHAIN) -> float:
    """A BH that reschedules itself from its own callback."""
    done = 0
    bh: cevent.BH | None = None

    def step() -> None:
        nonlocal done
        done += 1
        if done < length:
            assert bh is not None
            bh.schedule()

    bh = ctx.bh_new(step)
    try:
        start = time.perf_counter()
        bh.schedule()
        while done < length:
            ctx.poll(True)
        elapsed = time.perf_counter() - start
    finally:
        bh.delete()
    return elapsed


def demo_timers(ctx: cevent.AioContext, count: int = TIMERS) -> float:
    """count timers on CLOCK_VIRTUAL, 1 ns apart, fired by one clock step."""
    fired = 0

    def on_timer() -> None:
        nonlocal fired
        fired += 1

    timers = [ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, on_timer)
              for _ in range(count)]
    try:
        start = time.perf_counter()
        base = cevent.clock_ns(cevent.CLOCK_VIRTUAL)
        for i, timer in enumerate(timers):
            timer.mod_ns(base + 1 + i)
        cevent.clock_step(count)
        while fired < count:
            ctx.poll(True)
        elapsed = time.perf_counter() - start
    finally:
        for timer in timers:
            timer.delete()
    return elapsed


def run_demo() -> None:
    print()
    print("demo (a smoke run that shows the loop working, not a benchmark; "
          "see `python -m cevent bench`):")
    for backend in cevent.backends():
        with cevent.AioContext(backend) as ctx:
            pp = demo_ping_pong(ctx)
            bh = demo_bh_chain(ctx)
            tm = demo_timers(ctx)
            used = ctx.backend
        print(f"  {backend} (in use at the end: {used}):")
        print(f"    socketpair ping-pong, {PING_PONG_ROUNDS:,} round trips: "
              f"{_rate(PING_PONG_ROUNDS, pp)}")
        print(f"    BH chain, {BH_CHAIN:,} BHs: {_rate(BH_CHAIN, bh)}")
        print(f"    {TIMERS:,} CLOCK_VIRTUAL timers (arm + fire): "
              f"{_rate(TIMERS, tm)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print_info()
        run_demo()
        return 0
    if args[0] == "bench":
        from ._bench.cli import main as bench_main
        return bench_main(args[1:], prog="python -m cevent bench")
    if args[0] in ("-h", "--help"):
        _usage(sys.stdout)
        return 0
    _usage(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
