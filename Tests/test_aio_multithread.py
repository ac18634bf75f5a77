"""QEMU's tests/unit/test-aio-multithread.c, with cevent.IOThread.

Five event-loop threads (``NUM_CONTEXTS``), each owning an AioContext and
running ``poll(True)`` until stopped.  ``ctx_run`` calls a function
synchronously on one of them with ``bh_schedule_oneshot`` and a
``threading.Event`` (upstream's QemuEvent): every call must return, which
needs the blocked ``poll()`` of that thread to be woken by the BH's
notification.

Coroutines become callables ("tokens") handed between the threads with
``bh_schedule_oneshot``; the CoMutex/MCS/pthread mutex tests use
``cevent.LockCnt``'s mutex inside BHs, which doubles as a lockcnt stress
test: mutual exclusion under contention means ``counter == atomic_counter``.
Durations are upstream's quick mode (1 s; 1 s instead of 3 s for the
hand-off case), scaled by CEVENT_TEST_TIMEOUT_MULTIPLIER only for the
bounds on waiting, never for the run time.
"""

import itertools
import random
import threading
import time


import cevent
from support import scaled

NUM_CONTEXTS = 5
RUN_SECONDS = 1.0


class Contexts:
    """create_aio_contexts() / join_aio_contexts() / ctx_run()."""

    def __init__(self, backend, n=NUM_CONTEXTS):
        self.local = threading.local()
        self.threads = []
        try:
            for i in range(n):
                thread = cevent.IOThread(backend=backend,
                                         name=f"test-aio-multithread-{i}")
                self.threads.append(thread)
                thread.start()
        except BaseException:
            self.join()
            raise
        self.ctx = [t.context for t in self.threads]
        for i in range(n):
            self.ctx_run(i, self.set_id_cb, i)

    def set_id_cb(self, i):
        self.local.id = i

    @property
    def id(self):
        """The calling IOThread's index (upstream's __thread int id)."""
        return self.local.id

    def ctx_run(self, i, cb, *args, timeout=10.0):
        """Run cb(*args) on IOThread i and wait until it returned."""
        done = threading.Event()
        errors = []

        def ctx_run_bh_cb():
            try:
                cb(*args)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        self.ctx[i].bh_schedule_oneshot(ctx_run_bh_cb)
        assert done.wait(scaled(timeout)), \
            f"ctx_run({i}) did not return within {scaled(timeout)} s"
        if errors:
            raise errors[0]

    def join(self):
        """Stop every IOThread; re-raise the first error any of them kept."""
        errors = []
        for thread in self.threads:
            try:
                thread.stop()
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def test_lifecycle(backend):
    """/aio/multi/lifecycle"""
    contexts = Contexts(backend)
    try:
        seen = []
        for i in range(NUM_CONTEXTS):
            contexts.ctx_run(i, lambda: seen.append(
                (contexts.id, threading.get_ident())))
        assert seen == [(i, t.ident) for i, t in enumerate(contexts.threads)]
    finally:
        contexts.join()
    assert not any(t.is_alive() for t in contexts.threads)


class CoSchedule:
    """The state of /aio/multi/schedule: one token per context, parked in
    to_schedule[id] between runs; schedule_next(n) atomically takes the
    token parked in slot n and schedules it on context n."""

    def __init__(self, contexts):
        self.contexts = contexts
        self.lock = threading.Lock()
        self.to_schedule = [None] * NUM_CONTEXTS
        self.stop = [False] * NUM_CONTEXTS
        self.count_retry = 0
        self.count_here = 0
        self.count_other = 0
        self.runs = [0] * NUM_CONTEXTS
        self.finished = [0] * NUM_CONTEXTS
        self.wrong_thread = 0
        self.tokens = [self._make_token(i) for i in range(NUM_CONTEXTS)]

    def schedule_next(self, n):
        with self.lock:
            token = self.to_schedule[n]
            self.to_schedule[n] = None
            if token is None:
                self.count_retry += 1
                return False
            if n == self.contexts.id:
                self.count_here += 1
            else:
                self.count_other += 1
        self.contexts.ctx[n].bh_schedule_oneshot(token)
        return True

    def finish_cb(self):
        self.stop[self.contexts.id] = True
        self.schedule_next(self.contexts.id)

    def _make_token(self, i):
        def token():
            me = self.contexts.id
            if me != i:
                self.wrong_thread += 1
            with self.lock:
                assert self.to_schedule[i] is None
                self.runs[i] += 1
            # Once finish_cb ran there is no guarantee that the token is
            # woken again, so it must not park itself any more.
            if self.stop[i]:
                self.finished[i] += 1
                return
            self.schedule_next(random.randrange(NUM_CONTEXTS))
            with self.lock:
                self.to_schedule[i] = token
            # finish_cb can run here.
        return token


def test_multi_co_schedule(backend):
    """/aio/multi/schedule (quick mode: 1 s): tokens handed between five
    IOThreads with bh_schedule_oneshot, racing with each thread going to
    sleep in poll(True)."""
    contexts = Contexts(backend)
    try:
        state = CoSchedule(contexts)
        for i in range(NUM_CONTEXTS):
            contexts.ctx[i].bh_schedule_oneshot(state.tokens[i])

        time.sleep(RUN_SECONDS)

        # Guarantee that each context is woken up from its last wait.
        for i in range(NUM_CONTEXTS):
            contexts.ctx_run(i, state.finish_cb)
            with state.lock:
                assert state.to_schedule[i] is None
    finally:
        contexts.join()

    scheduled = state.count_here + state.count_other
    assert scheduled > 0
    assert state.wrong_thread == 0
    # Every token finished exactly once, and every take ran the token once.
    assert state.finished == [1] * NUM_CONTEXTS
    assert sum(state.runs) == NUM_CONTEXTS + scheduled
    assert state.to_schedule == [None] * NUM_CONTEXTS


class MutexTest:
    """counter (protected by the mutex) and atomic_counter (incremented
    after the mutex is released) must agree at the end."""

    def __init__(self, threads):
        self.lockcnt = cevent.LockCnt()
        self.counter = 0
        self._atomic = itertools.count()
        self.now_stopping = False
        self.running = threads
        self._running_lock = threading.Lock()
        self.all_done = threading.Event()

    def atomic_inc(self):
        # next() on itertools.count is atomic under the GIL.
        next(self._atomic)

    def done(self):
        with self._running_lock:
            self.running -= 1
            if self.running == 0:
                self.all_done.set()

    def run(self, backend, threads, start):
        """Start the test on the first ``threads`` IOThreads with
        ``start(contexts, i)``, let it run, stop it, check the counters."""
        contexts = Contexts(backend)
        try:
            for i in range(threads):
                start(contexts, i)
            time.sleep(RUN_SECONDS)
            self.now_stopping = True
            assert self.all_done.wait(scaled(30)), \
                f"{self.running} entries still running"
        finally:
            self.now_stopping = True
            contexts.join()
        atomic_counter = next(self._atomic)
        assert self.counter > 0
        assert self.counter == atomic_counter
        assert self.lockcnt.count == 0


def _co_mutex(backend, threads):
    """The CoMutex tests: each iteration is one run of a BH that reschedules
    itself, so the threads go back to their event loop between iterations
    (as a coroutine yields on a contended CoMutex)."""
    test = MutexTest(threads)
    entries = []

    class Entry:
        def __init__(self, ctx):
            self.bh = ctx.bh_new(self)

        def __call__(self):
            if test.now_stopping:
                self.bh.delete()
                self.bh = None
                test.done()
                return
            test.lockcnt.lock()
            test.counter += 1
            test.lockcnt.unlock()
            # Increase atomic_counter *after* releasing the mutex.
            test.atomic_inc()
            self.bh.schedule()

    def start_entry(ctx):
        # Runs on the IOThread that owns ctx.
        entry = Entry(ctx)
        entries.append(entry)
        entry.bh.schedule()

    test.run(backend, threads,
             lambda contexts, i: contexts.ctx[i].bh_schedule_oneshot(
                 lambda: start_entry(contexts.ctx[i])))
    assert len(entries) == threads


def test_multi_co_mutex(backend):
    """/aio/multi/mutex/contended analogue (5 threads, 1 s): LockCnt's
    mutex taken by self-rescheduling BHs on every IOThread."""
    _co_mutex(backend, NUM_CONTEXTS)


def test_multi_co_mutex_2(backend):
    """/aio/multi/mutex/handoff analogue (2 threads, 1 s instead of 3 s)."""
    _co_mutex(backend, 2)


def test_multi_fair_mutex(backend):
    """/aio/multi/mutex/mcs analogue (5 threads, 1 s): the entry never
    yields, so each IOThread is monopolised by one callback; the futex
    based LockCnt mutex replaces the MCS futex lock, and the critical
    section is entered through every locking path of the primitive:
    lock()/inc_and_unlock(), dec_if_lock() and dec_and_lock() (the last
    two return True only with the counter at 0, which must then stay 0
    while the lock is held)."""
    test = MutexTest(NUM_CONTEXTS)
    lc = test.lockcnt
    violations = []

    def entry():
        step = 0
        while not test.now_stopping:
            step += 1
            path = step % 3
            if path == 0:
                lc.lock()
                test.counter += 1
                lc.inc_and_unlock()
                lc.dec()
                test.atomic_inc()
            elif path == 1:
                lc.inc()
                if lc.dec_if_lock():
                    if lc.count != 0:
                        violations.append(("dec_if_lock", lc.count))
                    test.counter += 1
                    lc.unlock()
                    test.atomic_inc()
                else:
                    lc.dec()
            else:
                lc.inc()
                if lc.dec_and_lock():
                    if lc.count != 0:
                        violations.append(("dec_and_lock", lc.count))
                    test.counter += 1
                    lc.unlock()
                    test.atomic_inc()
        test.done()

    test.run(backend, NUM_CONTEXTS,
             lambda contexts, i: contexts.ctx[i].bh_schedule_oneshot(entry))
    assert violations == []


def test_multi_mutex(backend):
    """/aio/multi/mutex/pthread analogue (5 threads, 1 s): a loop that
    never yields takes LockCnt's mutex with lock()/unlock()."""
    test = MutexTest(NUM_CONTEXTS)

    def entry():
        while not test.now_stopping:
            test.lockcnt.lock()
            test.counter += 1
            test.lockcnt.unlock()
            test.atomic_inc()
        test.done()

    test.run(backend, NUM_CONTEXTS,
             lambda contexts, i: contexts.ctx[i].bh_schedule_oneshot(entry))
