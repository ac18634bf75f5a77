"""cevent.LockCnt: QEMU's QemuLockCnt (util/lockcnt.c), a visit counter
paired with a mutex.  Misuse that would corrupt the state raises
RuntimeError.  (The contended cases run in test_aio_multithread.py.)"""

import threading
import time

import pytest

import cevent
from support import scaled

valgrind = pytest.mark.valgrind


def is_locked(lc):
    """Probe the mutex without blocking: unlock() raises when not locked.
    Leaves the state unchanged."""
    try:
        lc.unlock()
    except RuntimeError:
        return False
    lc.lock()
    return True


@valgrind
def test_inc_dec():
    lc = cevent.LockCnt()
    assert lc.count == 0
    lc.inc()
    lc.inc()
    assert lc.count == 2
    lc.dec()
    assert lc.count == 1
    lc.dec()
    assert lc.count == 0
    assert not is_locked(lc)
    with pytest.raises(AttributeError):
        lc.count = 3


@valgrind
def test_lock_unlock():
    lc = cevent.LockCnt()
    lc.lock()
    assert lc.count == 0
    assert is_locked(lc)
    lc.unlock()
    assert not is_locked(lc)
    # the lock does not stop visits while the counter is non-zero (R3)
    lc.inc()
    lc.lock()
    lc.inc()
    assert lc.count == 2
    lc.dec()
    lc.dec()
    lc.unlock()
    assert lc.count == 0


@valgrind
def test_misuse_raises():
    lc = cevent.LockCnt()
    with pytest.raises(RuntimeError):
        lc.dec()
    with pytest.raises(RuntimeError):
        lc.dec_and_lock()
    with pytest.raises(RuntimeError):
        lc.unlock()
    with pytest.raises(RuntimeError):
        lc.inc_and_unlock()
    # nothing changed
    assert lc.count == 0
    assert not is_locked(lc)
    lc.inc()
    with pytest.raises(RuntimeError):
        lc.unlock()
    with pytest.raises(RuntimeError):
        lc.inc_and_unlock()
    assert lc.count == 1
    lc.dec()


@valgrind
def test_dec_and_lock():
    lc = cevent.LockCnt()
    lc.inc()
    lc.inc()
    assert lc.dec_and_lock() is False      # 2 -> 1, not locked
    assert lc.count == 1
    assert not is_locked(lc)
    assert lc.dec_and_lock() is True       # 1 -> 0, locked
    assert lc.count == 0
    assert is_locked(lc)
    lc.inc_and_unlock()                    # 0 -> 1, unlocked
    assert lc.count == 1
    assert not is_locked(lc)
    lc.dec()


@valgrind
def test_dec_if_lock():
    """True only when the count was 1 (then 0 and locked); otherwise False
    with nothing changed -- at 0 too (QEMU's documented contract)."""
    lc = cevent.LockCnt()
    assert lc.dec_if_lock() is False
    assert lc.count == 0
    assert not is_locked(lc)

    lc.inc()
    lc.inc()
    assert lc.dec_if_lock() is False
    assert lc.count == 2
    assert not is_locked(lc)

    lc.dec()
    assert lc.dec_if_lock() is True
    assert lc.count == 0
    assert is_locked(lc)
    lc.unlock()
    assert lc.count == 0


def _started(target):
    done = threading.Event()

    def run():
        target()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_inc_at_zero_waits_for_lock():
    """R2: a visit cannot start (0 -> 1) while the lock is held."""
    lc = cevent.LockCnt()
    lc.lock()
    thread, done = _started(lc.inc)
    assert not done.wait(0.05)
    assert lc.count == 0
    lc.unlock()
    assert done.wait(scaled(5))
    thread.join()
    assert lc.count == 1
    lc.dec()


def test_lock_is_exclusive():
    """lock() waits for another thread's unlock(), without holding the GIL
    while it waits."""
    lc = cevent.LockCnt()
    lc.lock()
    thread, done = _started(lambda: (lc.lock(), lc.unlock()))
    assert not done.wait(0.05)
    lc.unlock()
    assert done.wait(scaled(5))
    thread.join()
    assert not is_locked(lc)


def test_dec_and_lock_waits_for_lock():
    lc = cevent.LockCnt()
    lc.inc()
    lc.lock()                              # held by us, count 1 (R3)
    result = []
    thread, done = _started(lambda: result.append(lc.dec_and_lock()))
    assert not done.wait(0.05)
    lc.unlock()
    assert done.wait(scaled(5))
    thread.join()
    assert result == [True]
    assert lc.count == 0
    lc.unlock()                            # the other thread's lock


def test_dec_if_lock_waits_for_lock():
    lc = cevent.LockCnt()
    lc.inc()
    lc.lock()
    result = []
    thread, done = _started(lambda: result.append(lc.dec_if_lock()))
    assert not done.wait(0.05)
    lc.unlock()
    assert done.wait(scaled(5))
    thread.join()
    assert result == [True]
    assert lc.count == 0
    lc.unlock()


def test_inc_and_unlock_wakes_waiters():
    """Waiters blocked in inc() at 0 pass the wake-up on: all proceed."""
    lc = cevent.LockCnt()
    lc.lock()
    started = [_started(lc.inc) for _ in range(4)]
    time.sleep(0.05)
    assert lc.count == 0
    lc.inc_and_unlock()
    for thread, done in started:
        assert done.wait(scaled(5))
        thread.join()
    assert lc.count == 5
    for _ in range(5):
        lc.dec()
    assert not is_locked(lc)


def test_counter_under_contention():
    """inc/dec from several threads: the counter ends at 0."""
    lc = cevent.LockCnt()

    def visits():
        for _ in range(2000):
            lc.inc()
            lc.dec()

    threads = [threading.Thread(target=visits) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lc.count == 0
    assert not is_locked(lc)


@valgrind
def test_independent_instances():
    a = cevent.LockCnt()
    b = cevent.LockCnt()
    a.inc()
    a.lock()
    b.lock()                               # not blocked by a's lock
    b.inc_and_unlock()
    assert (a.count, b.count) == (1, 1)
    assert is_locked(a)
    assert not is_locked(b)
    a.unlock()
    a.dec()
    b.dec()
