"""Cross-process wake-up latency through cevent.MemoryPoller with polling
on, side by side with asyncio's and uvloop's cross-thread wake-up.

    python Benchmarks/memory_poller_wakeup.py [--samples N] [--reps R]

cevent, MemoryPoller (one row per backend): a spawned producer process
stamps ``t0 = perf_counter_ns()`` into shared memory
(``multiprocessing.shared_memory``), then bumps the sequence word that a
MemoryPoller watches; it makes no system call.  The context polls with
``set_poll_params(10 ms)``, so the loop thread is spinning (GIL released)
when the write lands; io_poll_ready (a Python callable) stamps
``t1 = perf_counter_ns()`` first thing and acknowledges in shared memory.
Latency = t1 - t0: the spin noticing the store, retaking the GIL, the
dispatch and the Python call.  The producer waits for the acknowledgement
(spinning), then sleeps a random 20-100 us before the next sample.  The
loop and the producer are pinned to different CPUs (every row pins its
two threads or processes that way; --no-pin: no pinning).  A
REALTIME timer every 5 ms restarts the spin should it ever stop (it also
bounds each spin, so the loop is never stuck in the fd monitor).

asyncio / uvloop: the cross-thread ping-pong of the wakeup workload: a second thread
stamps t0 and calls ``loop.call_soon_threadsafe(cb, t0)``; cb stamps t1 and
releases a lock on which the waker blocks before the next sample.  The
loop sleeps in epoll_wait() between samples.

For reference, cevent's own cross-thread path, the same ping-pong with
``ctx.bh_schedule_oneshot(cb)``, once with polling off (the loop sleeps in
the fd monitor like asyncio) and once with polling on.

Each rep measures every row once, interleaved; reported: median over the
reps of each percentile, and the p50 ratio to asyncio's.
"""

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import random
import statistics
import sys
import threading
import time
from multiprocessing import shared_memory

import cevent

perf_counter_ns = time.perf_counter_ns

SEQ, STAMP, ACK, GO = 0, 1, 2, 3


# ---- cevent: MemoryPoller, producer process --------------------------------

# Read once: a thread inherits the affinity of the thread that made it, so
# asking again from a waker thread started after the main thread was pinned
# would see only the main thread's CPU.
CPUS = sorted(os.sched_getaffinity(0))


def pin(cpu):
    """Pin the calling thread to ``cpu`` if there is more than one; return
    the calling thread's previous affinity (or None)."""
    if len(CPUS) < 2:
        return None
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CPUS[cpu % len(CPUS)]})
    return previous


def producer(name, total, timeout_s, seed, cpu):
    """Spawned: ``total`` samples through shared memory, no syscall on the
    signalling path."""
    if cpu is not None:
        pin(cpu)
    rng = random.Random(seed)
    shm = shared_memory.SharedMemory(name)
    words = shm.buf.cast("q")
    try:
        deadline = time.monotonic() + timeout_s
        while words[GO] == 0:
            if time.monotonic() > deadline:
                raise SystemExit("consumer never started")
            time.sleep(0.0001)
        for k in range(1, total + 1):
            time.sleep(rng.uniform(20e-6, 100e-6))
            words[STAMP] = perf_counter_ns()
            words[SEQ] = k
            spins = 0
            while words[ACK] != k:
                spins += 1
                if spins % 4096 == 0 and time.monotonic() > deadline:
                    raise SystemExit(f"sample {k} never acknowledged")
    finally:
        words.release()
        shm.close()


class MemoryPollerConsumer:
    __slots__ = ("words", "last", "lat")

    def __init__(self, words):
        self.words = words
        self.last = 0
        self.lat = []

    def on_ready(self, e):
        t1 = perf_counter_ns()
        words = self.words
        seq = words[SEQ]
        if seq != self.last:
            self.lat.append(t1 - words[STAMP])
            self.last = seq
            words[ACK] = seq


def measure_memory_poller(backend, samples, warmup, timeout_s, pinned):
    total = samples + warmup
    shm = shared_memory.SharedMemory(create=True, size=4096)
    words = shm.buf.cast("q")
    ctx = cevent.AioContext(backend)
    e = cevent.EventNotifier()
    poller = cevent.MemoryPoller(shm.buf, 0, 8)
    poller.check()                  # record the initial value
    consumer = MemoryPollerConsumer(words)

    reads = []

    def on_read(e):
        e.test_and_clear()
        reads.append(1)

    def on_tick():
        tick.mod_ns(cevent.clock_ns() + 5_000_000)

    tick = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS, on_tick)
    proc = None
    affinity = None
    try:
        ctx.set_event_notifier(e, io_read=on_read, io_poll=poller,
                               io_poll_ready=consumer.on_ready)
        # The handler is busy-polled once it has been dispatched: make the
        # fd ready once.
        e.set()
        while not reads:
            ctx.poll(True)
        ctx.set_poll_params(10_000_000, grow=10_000)
        tick.mod_ns(cevent.clock_ns() + 5_000_000)
        proc = multiprocessing.get_context("spawn").Process(
            target=producer,
            args=(shm.name, total, timeout_s, random.randrange(1 << 30),
                  1 if pinned else None))
        proc.start()
        affinity = pin(0) if pinned else None
        words[GO] = 1
        deadline = time.monotonic() + timeout_s
        gc.collect()
        iterations = 0
        while consumer.last < total:
            ctx.poll(True)
            iterations += 1
            if iterations % 256 == 0:
                if proc.exitcode not in (None, 0):
                    raise RuntimeError(f"producer failed: {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("timed out")
        proc.join(timeout_s)
        if proc.exitcode != 0:
            raise RuntimeError(f"producer failed: {proc.exitcode}")
        stats = ctx.stats()
        return consumer.lat[warmup:], stats
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
        tick.delete()
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join()
        ctx.close()
        e.close()
        del poller, consumer
        gc.collect()
        words.release()
        shm.close()
        shm.unlink()


# ---- cross-thread ping-pongs ------------------------------------------------

def measure_asyncio_loop(loop, samples, warmup, pinned):
    total = samples + warmup
    lat = []
    lock = threading.Lock()
    lock.acquire()

    def cb(t0):
        lat.append(perf_counter_ns() - t0)
        lock.release()

    def waker():
        if pinned:
            pin(1)
        for _ in range(total):
            loop.call_soon_threadsafe(cb, perf_counter_ns())
            lock.acquire()
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=waker)
    affinity = pin(0) if pinned else None
    try:
        gc.collect()
        loop.call_soon(thread.start)
        loop.run_forever()
        thread.join()
    finally:
        loop.close()
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    return lat[warmup:]


def measure_cevent_oneshot(backend, samples, warmup, poll_max_ns, pinned):
    total = samples + warmup
    lat = []
    lock = threading.Lock()
    lock.acquire()
    ctx = cevent.AioContext(backend)
    ctx.set_poll_params(poll_max_ns)

    def waker():
        if pinned:
            pin(1)
        for _ in range(total):
            t0 = perf_counter_ns()

            def cb(t0=t0):
                lat.append(perf_counter_ns() - t0)
                lock.release()

            ctx.bh_schedule_oneshot(cb)
            lock.acquire()

    thread = threading.Thread(target=waker)
    affinity = pin(0) if pinned else None
    try:
        gc.collect()
        thread.start()
        while len(lat) < total:
            ctx.poll(True)
        thread.join()
    finally:
        ctx.close()
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    return lat[warmup:]


# ---- report -----------------------------------------------------------------

def percentiles(lat):
    lat = sorted(lat)
    n = len(lat)
    return [lat[min(n - 1, int(q * n))] / 1000 for q in (0.50, 0.90, 0.99)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the loop and the waker/producer "
                             "to different CPUs")
    args = parser.parse_args(argv)

    try:
        import uvloop
    except ImportError:
        uvloop = None

    print(f"cevent {cevent.__version__}, Python {platform.python_version()}, "
          f"Linux {platform.release()}, {os.cpu_count()} CPUs, uvloop "
          f"{uvloop.__version__ if uvloop else 'not installed'}")
    cmd = [os.path.basename(sys.executable)] + sys.argv
    print(f"command: {' '.join(cmd)}")
    print(f"{args.samples} samples per rep after {args.warmup} warm-up, "
          f"{args.reps} reps\n")

    pinned = not args.no_pin
    rows = []
    for backend in cevent.backends():
        rows.append((f"cevent MemoryPoller, process, {backend}",
                     lambda b=backend: measure_memory_poller(
                         b, args.samples, args.warmup, args.timeout,
                         pinned)[0]))
    rows.append(("asyncio call_soon_threadsafe, thread",
                 lambda: measure_asyncio_loop(asyncio.SelectorEventLoop(),
                                              args.samples, args.warmup,
                                              pinned)))
    if uvloop is not None:
        rows.append(("uvloop call_soon_threadsafe, thread",
                     lambda: measure_asyncio_loop(uvloop.new_event_loop(),
                                                  args.samples,
                                                  args.warmup, pinned)))
    default = cevent.backends()[0]
    rows.append((f"cevent bh_schedule_oneshot, thread, polling off, "
                 f"{default}",
                 lambda: measure_cevent_oneshot(default, args.samples,
                                                args.warmup, 0, pinned)))
    rows.append((f"cevent bh_schedule_oneshot, thread, polling 1 ms, "
                 f"{default}",
                 lambda: measure_cevent_oneshot(default, args.samples,
                                                args.warmup, 1_000_000,
                                                pinned)))

    results = {label: [] for label, _ in rows}
    for _ in range(args.reps):
        for label, fn in rows:
            results[label].append(percentiles(fn()))

    asyncio_label = "asyncio call_soon_threadsafe, thread"
    base = [r[0] for r in results[asyncio_label]]
    width = max(len(label) for label, _ in rows)
    print(f"{'wake-up latency (us)':<{width}}   p50      p90      p99   "
          f"p50 / asyncio")
    for label, _ in rows:
        reps = results[label]
        med = [statistics.median(r[i] for r in reps) for i in range(3)]
        ratio = statistics.median(r[0] / b for r, b in zip(reps, base))
        print(f"{label:<{width}} {med[0]:7.3f}  {med[1]:7.3f}  "
              f"{med[2]:7.3f}   {ratio:.3f}")


if __name__ == "__main__":
    main()
