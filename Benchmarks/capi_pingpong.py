"""Socketpair ping-pong with C handlers registered through cevent's C API,
against a plain C epoll loop doing the same work.

    python Benchmarks/capi_pingpong.py [--round-trips N] [--reps R]

One AF_UNIX socketpair, non-blocking, both ends registered as readers in
one context, in one thread.  The consumer extension (Tests/capi/testcapi.c,
built here into a temporary directory) registers C io_read handlers with
the C API's set_fd_handler(): the handler of a reads the echo and sends the
next byte, the handler of b echoes.  Its pingpong() calls ctx.poll(True)
from C until N round trips are done, so each iteration is one aio_poll()
with the GIL released around the wait, one ready fd and its C handler.
The reference, Benchmarks/c_epoll_pingpong.c, is the same loop written
directly on epoll_wait().

Each rep runs the C program once and every backend once (after a warm-up),
so the ratios come from the same moments; reported: median [min, max] of
the reps, and the median of the per-rep ratios cevent/C.

The "epoll" backend behaves as QEMU's poll/epoll pair: with the 3 fds of
this benchmark it is still on ppoll() (QEMU upgrades to epoll at 64 fds);
the row "epoll+64" adds 64 idle socketpairs first, so that the context
really runs on epoll.
"""

import argparse
import gc
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import cevent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _capi_build  # noqa: E402


def socket_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


class CeventCase:
    def __init__(self, testcapi, label, backend, idle_fds=0):
        self.testcapi = testcapi
        self.label = label
        self.ctx = cevent.AioContext(backend)
        self.a, self.b = socket_pair()
        self.idle = [socket_pair() for _ in range(idle_fds)]
        for x, _ in self.idle:
            self.ctx.set_fd_handler(x, io_read=lambda: None)

    def run(self, n):
        gc.collect()
        t0 = time.perf_counter_ns()
        done = self.testcapi.pingpong(self.ctx, self.a.fileno(),
                                      self.b.fileno(), n)
        t1 = time.perf_counter_ns()
        assert done == n
        self.backend = self.ctx.backend
        return n / ((t1 - t0) / 1e9)

    def close(self):
        for x, y in self.idle:
            self.ctx.set_fd_handler(x)
            x.close()
            y.close()
        self.ctx.close()
        self.a.close()
        self.b.close()


def run_c(program, n, warmup):
    out = subprocess.run([program, str(n), str(warmup)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[2])


def fmt_rate(x):
    return f"{x / 1000:.0f}k"


def summary(values):
    return (f"{fmt_rate(statistics.median(values))} "
            f"[{fmt_rate(min(values))}, {fmt_rate(max(values))}]")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--round-trips", type=int, default=500_000)
    parser.add_argument("--warmup", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=None,
                        help="default: cevent.backends(), plus epoll+64")
    args = parser.parse_args(argv)

    print(f"cevent {cevent.__version__}, Python {platform.python_version()}, "
          f"Linux {platform.release()}, {os.cpu_count()} CPUs")
    cmd = [os.path.basename(sys.executable)] + sys.argv
    print(f"command: {' '.join(cmd)}")
    print(f"{args.round_trips} round trips per rep after {args.warmup} "
          f"warm-up, {args.reps} reps\n")

    with tempfile.TemporaryDirectory(prefix="cevent-bench-") as tmp:
        testcapi = _capi_build.build_testcapi(tmp)
        program = _capi_build.build_program("c_epoll_pingpong.c", tmp)

        names = args.backends
        if names is None:
            names = list(cevent.backends())
            if "epoll" in names:
                names.append("epoll+64")
        cases = []
        for name in names:
            if name == "epoll+64":
                case = CeventCase(testcapi, name, "epoll", idle_fds=64)
            else:
                case = CeventCase(testcapi, name, name)
            testcapi.pingpong(case.ctx, case.a.fileno(), case.b.fileno(),
                              args.warmup)
            cases.append(case)

        c_rates = []
        rates = {case.label: [] for case in cases}
        try:
            for _ in range(args.reps):
                c_rates.append(run_c(program, args.round_trips, args.warmup))
                for case in cases:
                    rates[case.label].append(case.run(args.round_trips))
        finally:
            for case in cases:
                case.close()

    print(f"{'loop':<34} {'round trips/s':<20} cevent/C")
    print(f"{'C epoll_wait (reference)':<34} {summary(c_rates):<20} 1")
    for case in cases:
        ratios = [r / c for r, c in zip(rates[case.label], c_rates)]
        label = f"cevent {case.label} (ran on {case.backend})"
        print(f"{label:<34} {summary(rates[case.label]):<20} "
              f"{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
