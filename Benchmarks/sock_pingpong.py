"""A ``loop.sock_recv``/``loop.sock_sendall`` ping-pong over a socketpair,
on asyncio, uvloop (when it imports) and ``cevent.Loop`` on each backend.

    python Benchmarks/sock_pingpong.py [--round-trips N] [--reps R]
        [--size BYTES]

One process, one thread: an echo task waits in ``sock_recv`` on one end
and sends back what it reads; the main task sends a message on the other
end and waits in ``sock_recv`` for all of it to come back.  Every round
trip is two waits that register and unregister a reader, which is what
the ``sock_*`` rows of the server benchmark pay per message, without the
load generator and the second CPU.  Each rep runs every loop once, in
turn, so the ratios come from the same moments; printed: the median µs
per round trip over the reps, and the median of the per-rep ratios to
asyncio's loop (lower is faster).
"""

import argparse
import asyncio
import socket
import statistics
import time

import cevent


async def _echo(loop, sock):
    while True:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            return
        await loop.sock_sendall(sock, data)


async def _pingpong(n, size):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    echo = asyncio.ensure_future(_echo(loop, a))
    msg = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.sock_sendall(b, msg)
        got = 0
        while got < size:
            got += len(await loop.sock_recv(b, 65536))
    elapsed = time.perf_counter() - t0
    b.close()
    await echo
    a.close()
    return elapsed


def _loops():
    loops = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        loops.append(("uvloop", uvloop.new_event_loop))
    for backend in cevent.backends():
        loops.append((f"cevent.Loop {backend}",
                      lambda b=backend: cevent.new_event_loop(backend=b)))
    return loops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=50000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    loops = _loops()
    times = {name: [] for name, _ in loops}
    for _ in range(args.reps):
        for name, factory in loops:
            loop = factory()
            try:
                loop.run_until_complete(_pingpong(1000, args.size))
                elapsed = loop.run_until_complete(
                    _pingpong(args.round_trips, args.size))
            finally:
                loop.close()
            times[name].append(elapsed / args.round_trips * 1e6)
    base = times["asyncio"]
    print(f"sock_recv/sock_sendall ping-pong, {args.size} B, "
          f"{args.round_trips} round trips, {args.reps} reps")
    for name, _ in loops:
        us = times[name]
        ratio = statistics.median(t / b for t, b in zip(us, base))
        print(f"{name:24} {statistics.median(us):7.2f} us  "
              f"{ratio:5.2f}x asyncio's time")


if __name__ == "__main__":
    main()
