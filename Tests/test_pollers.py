"""Native pollers: cevent.EventNotifierPoller and cevent.MemoryPoller, the
io_poll functions that run in the busy-poll spin without the GIL.

A MemoryPoller lets a producer wake a polling loop by writing memory: a
thread on an anonymous ``mmap``, a process on
``multiprocessing.shared_memory``.  As in QEMU, a handler joins the
busy-poll list only once it has been dispatched, so each test makes the
handler's fd ready once first; with polling off the fd is the only way in.
"""

import gc
import mmap
import multiprocessing
import struct
import threading
import time
from multiprocessing import shared_memory

import pytest

import cevent
from support import (
    Counter,
    run_until,
    scaled,
    settle,
    warm_up_polling,
)

valgrind = pytest.mark.valgrind
REALTIME = cevent.CLOCK_REALTIME
FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


# ---- helpers --------------------------------------------------------------

class Ticker:
    """A REALTIME timer that re-arms itself every ``period_ns`` while
    started.  It keeps the loop's waits short, so that adaptive polling
    grows and restarts (poll_ns grows only after a wait shorter than
    poll_max_ns), and it gives the loop wake-ups that are not fd events:
    on io_uring an fd event re-arms a one-shot poll request, and an
    iteration with a request still to submit skips busy polling."""

    def __init__(self, ctx, period_ns, every=None):
        self.period_ns = period_ns
        self.every = every          # (n, fn): call fn() every n ticks
        self.ticks = 0
        self.timer = ctx.timer_new(REALTIME, cevent.SCALE_NS, self.on_tick)

    def on_tick(self):
        self.ticks += 1
        if self.every is not None and self.ticks % self.every[0] == 0:
            self.every[1]()
        self.timer.mod_ns(cevent.clock_ns() + self.period_ns)

    def start(self):
        self.timer.mod_ns(cevent.clock_ns() + self.period_ns)

    def stop(self):
        self.timer.delete()


class Consumer:
    """The loop side of a producer/consumer pair: a MemoryPoller on word 0
    of ``words`` (a memoryview cast to 'Q'), registered with an
    EventNotifier as the fd side.  A new value is *delivered* once, through
    whichever path sees it first, and acknowledged in word 1.

    ``polling`` follows QEMU's io_poll_begin/io_poll_end protocol (a
    virtqueue's notification suppression): while it is true the loop is
    spinning on the word, and a producer can skip the fd.  After
    io_poll_end the loop checks the word once more, so a producer that
    stores the word before reading ``polling`` never goes unseen."""

    def __init__(self, ctx, buffer, words, fd_delivers=True):
        self.ctx = ctx
        self.words = words
        self.fd_delivers = fd_delivers
        self.e = cevent.EventNotifier()
        self.poller = cevent.MemoryPoller(buffer, 0, 8)
        # Record the current value now: the first check only records, so
        # a change made before the loop's first check would go unseen.
        assert self.poller.check() is False
        self.last = 0
        self.via_poll = 0       # deliveries by io_poll_ready (the spin)
        self.via_fd = 0         # deliveries by io_read (the fd)
        self.reads = 0
        self.readies = 0
        self.polling = False
        self.poll_begins = 0
        ctx.set_event_notifier(self.e, io_read=self.on_read,
                               io_poll=self.poller,
                               io_poll_ready=self.on_ready)
        ctx.set_event_notifier_poll(self.e, io_poll_begin=self.on_begin,
                                    io_poll_end=self.on_end)

    def on_begin(self, e):
        self.poll_begins += 1
        self.polling = True

    def on_end(self, e):
        self.polling = False

    def deliver(self):
        value = self.words[0]
        if value == self.last:
            return False
        self.last = value
        self.words[1] = value
        return True

    def on_ready(self, e):
        self.readies += 1
        if self.deliver():
            self.via_poll += 1

    def on_read(self, e):
        e.test_and_clear()
        self.reads += 1
        if self.fd_delivers and self.deliver():
            self.via_fd += 1

    def enroll(self):
        """Make the fd ready once: the handler joins the poll list."""
        reads = self.reads
        self.e.set()
        run_until(self.ctx, lambda: self.reads > reads)

    def close(self):
        self.ctx.set_event_notifier(self.e)
        settle(self.ctx)            # io_uring frees removed nodes later
        self.poller = None
        self.words = None
        gc.collect()
        self.e.close()


# ---- EventNotifierPoller ----------------------------------------------------

@valgrind
def test_event_notifier_poller_check():
    e = cevent.EventNotifier()
    try:
        p = cevent.EventNotifierPoller(e)
        assert isinstance(p, cevent.EventNotifierPoller)
        assert p.target is e
        assert "fd=" in repr(p)
        assert p.check() is False
        e.set()
        assert p.check() is True
        assert p.check() is True        # polling does not consume it
        assert e.test_and_clear() is True
        assert p.check() is False
    finally:
        e.close()
    with pytest.raises(ValueError):
        cevent.EventNotifierPoller(e)   # closed
    for bad in (None, 0, object()):
        with pytest.raises(TypeError):
            cevent.EventNotifierPoller(bad)


def test_event_notifier_poller_in_context(ctx, backend):
    """Polling on: the spin finds the set notifier and runs io_poll_ready
    without asking the fd monitor; polling off: io_read runs.

    On io_uring setting the notifier also completes the fd's poll request,
    and a pending completion ends the spin (need_wait), so either path may
    deliver there; the spin must still have run."""
    e = cevent.EventNotifier()
    ready = Counter(lambda e: e.test_and_clear())
    read = Counter(lambda e: e.test_and_clear())

    def set_later():
        time.sleep(0.005)
        e.set()

    try:
        ctx.set_event_notifier(e, io_read=read,
                               io_poll=cevent.EventNotifierPoller(e),
                               io_poll_ready=ready)
        e.set()
        run_until(ctx, lambda: read.n + ready.n > 0)    # enroll
        warm_up_polling(ctx, 50_000_000)
        n_ready, n_read = ready.n, read.n
        before = ctx.stats()
        if backend == "io_uring":
            # An fd event leaves a poll request to re-arm, and the next
            # iteration then waits instead of spinning: the ticker's
            # timer wake-ups let the spin start again.
            ticker = Ticker(ctx, 200_000)
            ticker.start()
            try:
                thread = threading.Thread(target=set_later)
                thread.start()
                run_until(ctx, lambda: read.n + ready.n > n_ready + n_read)
                thread.join()
                run_until(ctx, lambda: (ctx.stats()["polling_ns"]
                                        > before["polling_ns"]))
            finally:
                ticker.stop()
        else:
            e.set()
            assert ctx.poll(True) is True
            assert (ready.n, read.n) == (n_ready + 1, n_read)
            assert ctx.stats()["waits"] == before["waits"]
            assert ready.calls[-1] == (e,)

        ctx.set_poll_params(0)
        ctx.poll(False)
        n_ready, n_read = ready.n, read.n
        thread = threading.Thread(target=set_later)
        thread.start()
        run_until(ctx, lambda: read.n > n_read)
        thread.join()
        assert ready.n == n_ready
    finally:
        ctx.set_event_notifier(e)
        settle(ctx)
        e.close()


# ---- MemoryPoller: the word ------------------------------------------------

@valgrind
@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_memory_poller_sizes(size):
    mm = mmap.mmap(-1, 4096)
    fmt = FORMATS[size]
    offset = 8 * size
    p = cevent.MemoryPoller(mm, offset, size)
    try:
        assert (p.offset, p.size, p.target) == (offset, size, mm)
        assert f"size={size}" in repr(p)
        assert p.check() is False           # first check: records only
        assert p.check() is False
        struct.pack_into(fmt, mm, offset, 1)
        assert p.check() is True
        assert p.check() is False
        # Bytes around the word do not count.
        mm[offset - 1] = 0xff
        mm[offset + size] = 0xff
        assert p.check() is False
        # Every byte of the word does.
        for i in range(size):
            mm[offset + i] ^= 0x80
            assert p.check() is True, i
        top = (1 << (8 * size)) - 1
        struct.pack_into(fmt, mm, offset, top)
        assert p.check() is True
        struct.pack_into(fmt, mm, offset, top)  # same value again
        assert p.check() is False
        struct.pack_into(fmt, mm, offset, 0)    # wrapped around
        assert p.check() is True
    finally:
        del p
        gc.collect()
        mm.close()


@valgrind
def test_memory_poller_defaults_and_shared_memory():
    shm = shared_memory.SharedMemory(create=True, size=64)
    try:
        p = cevent.MemoryPoller(shm.buf)
        assert (p.offset, p.size) == (0, 8)
        assert p.check() is False
        struct.pack_into("Q", shm.buf, 0, 7)
        assert p.check() is True
        # The buffer stays exported while the poller lives.
        with pytest.raises(BufferError):
            shm.close()
        del p
        gc.collect()
    finally:
        shm.close()
        shm.unlink()


@valgrind
def test_memory_poller_bad_arguments():
    mm = mmap.mmap(-1, 4096)
    try:
        for size in (0, 3, 5, 16, -1):
            with pytest.raises(ValueError, match="size"):
                cevent.MemoryPoller(mm, 0, size)
        with pytest.raises(ValueError):
            cevent.MemoryPoller(mm, -8, 8)
        with pytest.raises(ValueError, match="multiple"):
            cevent.MemoryPoller(mm, 4, 8)       # misaligned
        with pytest.raises(ValueError, match="past the end"):
            cevent.MemoryPoller(mm, 4096, 8)
        with pytest.raises(ValueError, match="past the end"):
            cevent.MemoryPoller(mm, 4096, 1)
        assert cevent.MemoryPoller(mm, 4088, 8).check() is False
        assert cevent.MemoryPoller(mm, 4095, 1).check() is False
        with pytest.raises(ValueError):
            cevent.MemoryPoller(bytearray(4), 0, 8)     # too short
        for bad in (b"12345678", "12345678", None, 42):
            with pytest.raises(TypeError):
                cevent.MemoryPoller(bad)
        with pytest.raises(TypeError):
            cevent.MemoryPoller(mm, "0")
    finally:
        gc.collect()
        mm.close()


# ---- MemoryPoller in a context: a producer thread ---------------------------

def _run_thread_producer(ctx, rounds, poll_max_ns):
    mm = mmap.mmap(-1, 4096)
    words = memoryview(mm).cast("Q")
    consumer = Consumer(ctx, mm, words)
    acked = [threading.Event() for _ in range(rounds + 1)]
    failures = []
    kicks = [0]
    real_deliver = consumer.deliver

    def deliver():
        if not real_deliver():
            return False
        acked[consumer.last].set()
        return True

    consumer.deliver = deliver

    def producer():
        try:
            for i in range(1, rounds + 1):
                words[0] = i            # the memory side ...
                if not consumer.polling:
                    consumer.e.set()    # ... and the fd side if needed
                    kicks[0] += 1
                if not acked[i].wait(scaled(10)):
                    failures.append(i)
                    return
        finally:
            consumer.e.set()            # wake the loop to see the end

    ticker = Ticker(ctx, 200_000)
    try:
        consumer.enroll()
        ctx.set_poll_params(poll_max_ns)
        if poll_max_ns:
            ticker.start()
        thread = threading.Thread(target=producer)
        thread.start()
        try:
            deadline = time.monotonic() + scaled(30)
            while (consumer.last < rounds and not failures
                   and time.monotonic() < deadline):
                ctx.poll(True)
        finally:
            thread.join(scaled(30))
        assert not thread.is_alive()
        assert not failures, f"round {failures} not delivered"
        assert consumer.last == rounds
        assert consumer.via_poll + consumer.via_fd == rounds
        consumer.kicks = kicks[0]
        return consumer
    finally:
        ticker.stop()
        consumer.close()
        words.release()
        mm.close()


def test_memory_poller_thread_producer_polling(ctx):
    """Polling on: once poll_ns has grown the loop spins, and the
    producer, seeing that, stores the word without touching the fd."""
    consumer = _run_thread_producer(ctx, 200, 1_000_000)
    assert ctx.stats()["poll_grow"] > 0
    assert consumer.poll_begins > 0
    assert consumer.via_poll > 0
    assert consumer.kicks < 200


def test_memory_poller_thread_producer_polling_off(ctx):
    """Polling off: the same handler works through the fd alone."""
    consumer = _run_thread_producer(ctx, 100, 0)
    assert consumer.via_fd == 100
    assert consumer.via_poll == 0
    assert consumer.readies == 0
    assert consumer.poll_begins == 0
    assert consumer.kicks == 100


# ---- MemoryPoller in a context: a producer process --------------------------

def _producer_process(name, rounds, timeout):
    """Spawned: bump word 0 of shared memory ``name`` ``rounds`` times,
    each time waiting (bounded) for the consumer's acknowledgement in
    word 1.  No descriptor is ever touched: the loop must find the
    changes in its spin.  Exit status 0 on success."""
    shm = shared_memory.SharedMemory(name)
    words = shm.buf.cast("Q")
    status = 0
    try:
        for i in range(1, rounds + 1):
            words[0] = i
            deadline = time.monotonic() + timeout
            while words[1] != i:
                if time.monotonic() > deadline:
                    status = 1
                    return
                time.sleep(0.0001)
    finally:
        words.release()
        shm.close()
        if status:
            raise SystemExit(status)


def test_memory_poller_process_producer(ctx):
    """A spawned process that only writes shared memory wakes the loop:
    every value is delivered by io_poll_ready from the spin.  A REALTIME
    tick keeps the fd waits short so that poll_ns grows (and a loop that
    stopped spinning starts again)."""
    rounds = 50
    shm = shared_memory.SharedMemory(create=True, size=4096)
    words = shm.buf.cast("Q")
    consumer = Consumer(ctx, shm.buf, words, fd_delivers=False)
    # io_uring drops a poll handler idle for 7 s: stay enrolled while the
    # child starts, with a kick every 1000 ticks (0.2 s).
    ticker = Ticker(ctx, 200_000, every=(1000, consumer.e.set))
    proc = None
    try:
        consumer.enroll()
        ctx.set_poll_params(1_000_000)
        ticker.start()
        proc = multiprocessing.get_context("spawn").Process(
            target=_producer_process, args=(shm.name, rounds, scaled(10)))
        proc.start()
        deadline = time.monotonic() + scaled(60)
        while consumer.last < rounds and time.monotonic() < deadline:
            ctx.poll(True)
            if proc.exitcode not in (None, 0):
                break
        proc.join(scaled(30))
        assert proc.exitcode == 0
        assert consumer.last == rounds
        assert consumer.via_poll == rounds
        assert consumer.via_fd == 0
    finally:
        ticker.stop()
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join()
        consumer.close()
        words.release()
        shm.close()
        shm.unlink()


# ---- the spin runs without the GIL ------------------------------------------

def test_spin_releases_gil(ctx):
    """While poll(True) spins on a native poller (and never waits on the
    fd monitor), another Python thread runs: it counts for a while, then
    bumps the word that ends the spin."""
    mm = mmap.mmap(-1, 4096)
    words = memoryview(mm).cast("Q")
    consumer = Consumer(ctx, mm, words)
    started = threading.Event()
    result = {}

    def worker():
        try:
            started.wait(scaled(10))
            time.sleep(0.01)
            t0 = time.perf_counter_ns()
            n = 0
            while time.perf_counter_ns() - t0 < 5_000_000:
                n += 1
            result["count"] = n
            result["bump_ns"] = time.perf_counter_ns()
            words[0] += 1
            deadline = time.monotonic() + scaled(2)
            while consumer.last != words[0]:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
        finally:
            consumer.e.set()    # never leave the loop blocked

    try:
        consumer.enroll()
        warm_up_polling(ctx, 200_000_000)
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            before = ctx.stats()
            started.set()
            begin = time.perf_counter_ns()
            progress = ctx.poll(True)
            end = time.perf_counter_ns()
            after = ctx.stats()
        finally:
            thread.join(scaled(30))
        assert progress is True
        assert consumer.via_poll == 1
        assert after["waits"] == before["waits"]
        assert after["polling_ns"] > before["polling_ns"]
        assert begin < result["bump_ns"] < end
        assert result["count"] > 0
    finally:
        consumer.close()
        words.release()
        mm.close()
