"""Model-based testing: a small pure-Python reference model of QEMU's
AioContext (BHs, fd handlers, timers and notifications, as in
Modules/aio-posix.c, async.c and qemu-timer.c) runs side by side
with a real ``cevent.AioContext`` on every backend, driven by hypothesis'
``RuleBasedStateMachine``.  Any divergence fails the test.

What is modelled exactly:

* fd handlers (read handlers without ``io_poll`` on EventNotifiers):
  add, replace (a new node, newest), remove; level-triggered readiness;
  dispatch in registration order, oldest first (fdmon-poll; epoll below its
  64-fd threshold behaves the same); a handler removed or replaced during
  an iteration is not called again in it; a nested ``poll()`` steals ready
  nodes from the outer iteration's ready list.
* bottom halves: ``schedule``, ``schedule_idle`` (sticky idle bit, no
  progress, 10 ms timeout), ``cancel``, ``delete``, one-shots; the LIFO BH
  list, slices and nested ``aio_bh_poll`` (the nested call finishes the
  outer slice first), one run per scheduling.
* ``CLOCK_VIRTUAL`` timers: ``mod``, ``mod_anticipate``, ``delete``,
  ``clock_step``; one clock sample per run, expiry order with ties in arming
  order, notification only for a new earliest deadline.
* ``poll(False)`` / ``poll(True)`` progress, the ``notified`` flag
  (``poll(True)`` is only issued when the model says it cannot block for
  ever; a watchdog thread turns a wrong guess into a failure, not a hang),
  ``compute_timeout()``, exceptions from callbacks (the first is re-raised
  by its ``poll()``, later ones go to ``sys.unraisablehook``).
* callbacks run scripts drawn by hypothesis: they drain fds, add, replace
  and remove handlers (their own or others), schedule, cancel and delete
  BHs (themselves or others), queue one-shots, arm and delete timers,
  notify, raise, and call ``poll(False)`` nested (one level).

On io_uring the dispatch order of several fds ready in one wait follows
the completion order of the ring, which this model does not simulate, so
there at most one fd is made ready at a time.  Also, io_uring reports the
readiness it saw when the POLL_ADD completed: an fd made ready and drained
again between two polls while its POLL_ADD is in flight can still be
dispatched once (a spurious wake-up that poll and epoll, which look at the
fd during the wait, do not have; QEMU behaves the same).  So on io_uring
the test does not drain a ready fd between polls (callbacks still do).
Everything else is the same on every backend.

Profiles (``Tests/conftest.py``): "ci" (the default) runs at least 10,000
sequences in total across the available backends; ``CEVENT_HYPOTHESIS_PROFILE=long``
runs 20,000 longer sequences per backend.  No example database is kept;
a failure prints the falsifying steps and a reproduction blob.
"""

import math
import sys
import threading
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import settings, strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine, initialize, invariant, precondition, rule,
    run_state_machine_as_test)

import cevent  # noqa: E402
import cevent._cevent as _cevent  # noqa: E402
from support import scaled  # noqa: E402

NH = 2          # fd handler slots
NB = 3          # BH slots
NT = 3          # timer slots (few slots and small deltas: many ties and
                # interactions)
MAX_DEPTH = 2   # top-level poll + one nested poll
IDLE_NS = 10_000_000

#: sequences required in total over all backends by the "ci" profile
CI_TOTAL = 10_000


class ScriptError(Exception):
    """Raised by a callback script; compared by tag."""

    def __init__(self, tag):
        super().__init__(tag)
        self.tag = tag


# ---- callback scripts ---------------------------------------------------

def run_script(env, script):
    """Run one callback script against an environment (the real context or
    the model).  Both sides run the very same interpreter."""
    for act in script:
        op = act[0]
        if op == "drain":
            env.drain(act[1])
        elif op == "rm":
            env.remove(act[1])
        elif op == "add":
            env.add(act[1], act[2])
        elif op == "sched":
            env.bh_schedule(act[1])
        elif op == "idle":
            env.bh_schedule_idle(act[1])
        elif op == "cancel":
            env.bh_cancel(act[1])
        elif op == "del":
            env.bh_delete(act[1])
        elif op == "oneshot":
            env.oneshot(act[1])
        elif op == "tmod":
            env.timer_mod(act[1], act[2])
        elif op == "tdel":
            env.timer_del(act[1])
        elif op == "notify":
            env.notify()
        elif op == "poll":
            if env.depth < MAX_DEPTH:
                env.poll(False)
        elif op == "raise":
            raise ScriptError(act[1])
        else:  # pragma: no cover
            raise AssertionError(op)


slot_h = st.integers(0, NH - 1)
slot_b = st.integers(0, NB - 1)
slot_t = st.integers(0, NT - 1)


def _actions(depth):
    delta = st.integers(1, 4)
    simple = [
        st.tuples(st.just("drain"), slot_h),
        st.tuples(st.just("rm"), slot_h),
        st.tuples(st.just("rm"), slot_h),
        st.tuples(st.just("sched"), slot_b),
        st.tuples(st.just("sched"), slot_b),
        st.tuples(st.just("idle"), slot_b),
        st.tuples(st.just("cancel"), slot_b),
        st.tuples(st.just("del"), slot_b),
        st.tuples(st.just("del"), slot_b),
        st.tuples(st.just("tmod"), slot_t, delta),
        st.tuples(st.just("tmod"), slot_t, delta),
        st.tuples(st.just("tdel"), slot_t),
        st.tuples(st.just("notify")),
        st.tuples(st.just("poll")),
        st.tuples(st.just("poll")),
        st.tuples(st.just("poll")),
        st.tuples(st.just("raise"), st.integers(0, 99)),
    ]
    if depth == 0:
        simple += [
            st.tuples(st.just("add"), slot_h, scripts(1)),
            st.tuples(st.just("oneshot"), scripts(1)),
        ]
    return st.one_of(simple)


def scripts(depth=0):
    return st.lists(_actions(depth), max_size=3 if depth == 0 else 2) \
        .map(tuple)


# ---- the real side ------------------------------------------------------

class RealEnv:
    def __init__(self, backend):
        self.ctx = cevent.AioContext(backend)
        self.notifiers = [cevent.EventNotifier() for _ in range(NH)]
        self.bhs = [None] * NB
        self.bh_deleted = [False] * NB
        self.timers = [None] * NT
        self.graveyard = []
        self.trace = []
        self.depth = 0
        self.gen = 0
        self.unraisable = []

    def _call(self, entry, script):
        def callback():
            self.trace.append(entry())
            run_script(self, script)
        return callback

    # handlers
    def add(self, slot, script):
        self.gen += 1
        gen = self.gen
        self.ctx.set_fd_handler(self.notifiers[slot].fileno(),
                                io_read=self._call(lambda: ("fd", slot, gen),
                                                   script))

    def remove(self, slot):
        self.ctx.set_fd_handler(self.notifiers[slot].fileno())

    def drain(self, slot):
        self.notifiers[slot].test_and_clear()

    def make_readable(self, slot):
        self.notifiers[slot].set()

    # BHs
    def bh_new(self, slot, script):
        self.gen += 1
        gen = self.gen
        if self.bhs[slot] is not None:
            self.graveyard.append(self.bhs[slot])
        self.bhs[slot] = self.ctx.bh_new(
            self._call(lambda: ("bh", slot, gen), script))
        self.bh_deleted[slot] = False

    def _bh(self, slot):
        if self.bhs[slot] is None or self.bh_deleted[slot]:
            return None
        return self.bhs[slot]

    def bh_schedule(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            bh.schedule()

    def bh_schedule_idle(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            bh.schedule_idle()

    def bh_cancel(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            bh.cancel()

    def bh_delete(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            bh.delete()
            self.bh_deleted[slot] = True

    def oneshot(self, script):
        self.gen += 1
        gen = self.gen
        self.ctx.bh_schedule_oneshot(
            self._call(lambda: ("oneshot", gen), script))

    # timers
    def timer_new(self, slot, script):
        self.timers[slot] = self.ctx.timer_new(
            cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
            self._call(lambda: ("timer", slot), script))

    def timer_mod(self, slot, delta):
        if self.timers[slot] is not None:
            self.timers[slot].mod(cevent.clock_ns(cevent.CLOCK_VIRTUAL) +
                                  delta)

    def timer_mod_anticipate(self, slot, delta):
        if self.timers[slot] is not None:
            self.timers[slot].mod_anticipate(
                cevent.clock_ns(cevent.CLOCK_VIRTUAL) + delta)

    def timer_del(self, slot):
        if self.timers[slot] is not None:
            self.timers[slot].delete()

    def clock_step(self, ns):
        cevent.clock_step(ns)

    def notify(self):
        self.ctx.notify()

    def poll(self, blocking):
        self.depth += 1
        try:
            return self.ctx.poll(blocking)
        finally:
            self.depth -= 1

    def top_poll(self, blocking):
        """poll() from the test: (result, exception tag or None)."""
        saved = sys.unraisablehook
        sys.unraisablehook = lambda args: self.unraisable.append(
            getattr(args.exc_value, "tag", repr(args.exc_value)))
        try:
            return self.poll(blocking), None
        except ScriptError as exc:
            return None, exc.tag
        finally:
            sys.unraisablehook = saved

    def close(self):
        for slot in range(NH):
            self.remove(slot)
        self.ctx.close()
        for e in self.notifiers:
            e.close()


# ---- the model ------------------------------------------------------------

class MNode:
    __slots__ = ("slot", "gen", "seq", "script", "deleted")

    def __init__(self, slot, gen, seq, script):
        self.slot, self.gen, self.seq, self.script = slot, gen, seq, script
        self.deleted = False


class MBH:
    __slots__ = ("entry", "script", "pending", "scheduled", "idle",
                 "deleted", "oneshot")

    def __init__(self, entry, script, oneshot=False):
        self.entry, self.script = entry, script
        self.pending = self.scheduled = self.idle = self.deleted = False
        self.oneshot = oneshot


class MTimer:
    __slots__ = ("slot", "script", "expire", "seq")

    def __init__(self, slot, script):
        self.slot, self.script = slot, script
        self.expire = -1
        self.seq = 0


def soonest(a, b):
    """qemu_soonest_timeout: unsigned minimum (-1 is infinite)."""
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


class Model:
    def __init__(self, now):
        self.now = now
        self.notified = True            # registering the notifier notifies
        self.handlers = [None] * NH     # current MNode per fd slot
        self.readable = [False] * NH
        self.node_seq = 0
        self.bh_list = []               # index 0 = head (LIFO push)
        self.slices = []
        self.bhs = [None] * NB
        self.timers = [None] * NT
        self.arm_seq = 0
        self.trace = []
        self.depth = 0
        self.gen = 0
        self.ready_stack = []
        self.exc_stack = []
        self.unraisable = []

    # notification and exceptions
    def notify(self):
        self.notified = True

    def _store(self, exc):
        if self.exc_stack[-1] is None:
            self.exc_stack[-1] = exc
        else:
            self.unraisable.append(exc.tag)

    def _run(self, entry, script):
        self.trace.append(entry)
        try:
            run_script(self, script)
        except ScriptError as exc:
            self._store(exc)

    # handlers
    def add(self, slot, script):
        self.gen += 1
        self.node_seq += 1
        old = self.handlers[slot]
        if old is not None:
            old.deleted = True
        self.handlers[slot] = MNode(slot, self.gen, self.node_seq, script)
        self.notify()

    def remove(self, slot):
        old = self.handlers[slot]
        if old is None:
            return                      # no effect at all, no notify
        old.deleted = True
        self.handlers[slot] = None
        self.notify()

    def drain(self, slot):
        self.readable[slot] = False

    def make_readable(self, slot):
        self.readable[slot] = True

    # BHs
    def _enqueue(self, bh, scheduled=False, idle=False, deleted=False):
        was_pending = bh.pending
        bh.pending = True
        bh.scheduled |= scheduled
        bh.idle |= idle
        bh.deleted |= deleted
        if not was_pending:
            self.bh_list.insert(0, bh)
        self.notify()

    def bh_new(self, slot, script):
        self.gen += 1
        self.bhs[slot] = MBH(("bh", slot, self.gen), script)

    def _bh(self, slot):
        bh = self.bhs[slot]
        if bh is None or bh.deleted:
            return None
        return bh

    def bh_schedule(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            self._enqueue(bh, scheduled=True)

    def bh_schedule_idle(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            self._enqueue(bh, scheduled=True, idle=True)

    def bh_cancel(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            bh.scheduled = False

    def bh_delete(self, slot):
        bh = self._bh(slot)
        if bh is not None:
            self._enqueue(bh, deleted=True)

    def oneshot(self, script):
        self.gen += 1
        self._enqueue(MBH(("oneshot", self.gen), script, oneshot=True),
                      scheduled=True)

    def bh_scheduled(self, slot):
        bh = self.bhs[slot]
        return bh.scheduled and not bh.deleted

    def _bh_poll(self):
        self.slices.append(self.bh_list)
        self.bh_list = []
        progress = False
        while self.slices:
            s = self.slices[0]
            if not s:
                self.slices.pop(0)
                continue
            bh = s.pop(0)
            scheduled, idle = bh.scheduled, bh.idle
            bh.pending = bh.scheduled = bh.idle = False
            if scheduled and not bh.deleted:
                if not idle:
                    progress = True
                self._run(bh.entry, bh.script)
        return progress

    # timers
    def timer_new(self, slot, script):
        self.timers[slot] = MTimer(slot, script)

    def _first_timer(self):
        armed = [t for t in self.timers if t is not None and t.expire >= 0]
        if not armed:
            return None
        return min(armed, key=lambda t: (t.expire, t.seq))

    def _arm(self, t, expire):
        t.expire = max(expire, 0)
        self.arm_seq += 1
        t.seq = self.arm_seq
        if self._first_timer() is t:
            self.notify()

    def timer_mod(self, slot, delta):
        t = self.timers[slot]
        if t is not None:
            t.expire = -1
            self._arm(t, self.now + delta)

    def timer_mod_anticipate(self, slot, delta):
        t = self.timers[slot]
        if t is not None:
            when = self.now + delta
            if t.expire == -1 or t.expire > when:
                t.expire = -1
                self._arm(t, when)

    def timer_del(self, slot):
        t = self.timers[slot]
        if t is not None:
            t.expire = -1

    def clock_step(self, ns):
        self.now += ns
        if self._first_timer() is not None:
            self.notify()

    def _run_timers(self):
        if self._first_timer() is None:
            return False
        now = self.now
        progress = False
        while True:
            t = self._first_timer()
            if t is None or t.expire > now:
                break
            t.expire = -1
            self._run(("timer", t.slot), t.script)
            progress = True
        return progress

    # the loop
    def compute_timeout(self):
        bh_timeout = -1
        for bh in self.bh_list + [b for s in self.slices for b in s]:
            if bh.scheduled and not bh.deleted:
                if not bh.idle:
                    return 0
                bh_timeout = IDLE_NS
        t = self._first_timer()
        deadline = -1 if t is None else max(0, t.expire - self.now)
        if deadline == 0:
            return 0
        return soonest(bh_timeout, deadline)

    def _ready_nodes(self):
        nodes = [n for n in self.handlers
                 if n is not None and self.readable[n.slot]]
        return sorted(nodes, key=lambda n: n.seq)

    def blocking_poll_is_bounded(self):
        if self.notified or self._ready_nodes():
            return True
        return self.compute_timeout() >= 0

    def poll(self, blocking):
        self.depth += 1
        self.exc_stack.append(None)
        ready = self._ready_nodes()
        for outer in self.ready_stack:          # a nested wait steals
            for n in ready:
                if n in outer:
                    outer.remove(n)
        self.ready_stack.append(ready)
        self.notified = False                   # aio_notify_accept
        progress = self._bh_poll()
        while ready:
            n = ready.pop(0)
            if n.deleted:
                continue
            progress = True
            self._run(("fd", n.slot, n.gen), n.script)
        self.ready_stack.pop()
        progress |= self._run_timers()
        self.depth -= 1
        exc = self.exc_stack.pop()
        if exc is not None:
            raise exc
        return progress

    def top_poll(self, blocking):
        try:
            return self.poll(blocking), None
        except ScriptError as exc:
            return None, exc.tag


# ---- the state machine ---------------------------------------------------------

class Watchdog:
    """Notifies a context whose blocking poll() outlives its deadline, and
    says so: the model had predicted that it would not block."""

    def __init__(self):
        self.current = None
        self.rescued = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            current = self.current
            if current is not None and time.monotonic() > current[1]:
                self.rescued = True
                try:
                    current[0].notify()
                except (ValueError, RuntimeError):
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join()


class AioContextMachine(RuleBasedStateMachine):
    BACKEND = None
    WATCHDOG = None

    def __init__(self):
        super().__init__()
        self.records = _cevent._live_counts()["records"]
        self.real = RealEnv(self.BACKEND)
        self.model = Model(cevent.clock_ns(cevent.CLOCK_VIRTUAL))
        self.both = (self.real, self.model)

    def teardown(self):
        self.real.close()
        assert _cevent._live_counts()["records"] == self.records

    def _check_traces(self):
        real, model = self.real, self.model
        assert real.trace == model.trace
        assert real.unraisable == model.unraisable
        real.trace.clear()
        model.trace.clear()
        real.unraisable.clear()
        model.unraisable.clear()

    # handlers
    @rule(slot=slot_h, script=scripts())
    def set_handler(self, slot, script):
        for env in self.both:
            env.add(slot, script)

    @rule(slot=slot_h)
    def remove_handler(self, slot):
        for env in self.both:
            env.remove(slot)

    @precondition(lambda self: self.BACKEND != "io_uring" or
                  not any(self.model.readable))
    @rule(slot=slot_h)
    def make_readable(self, slot):
        for env in self.both:
            env.make_readable(slot)

    @rule(slot=slot_h)
    def drain(self, slot):
        if self.BACKEND == "io_uring" and self.model.readable[slot]:
            # Not modelled: io_uring reports the readiness it saw when the
            # completion was posted, so a ready fd drained again before
            # the next poll may still be dispatched once (see docstring).
            return
        for env in self.both:
            env.drain(slot)

    # BHs
    @precondition(lambda self: any(b is None or b.deleted
                                   for b in self.model.bhs))
    @rule(slot=slot_b, script=scripts())
    def bh_new(self, slot, script):
        if self.model.bhs[slot] is not None and \
                not self.model.bhs[slot].deleted:
            return
        for env in self.both:
            env.bh_new(slot, script)

    @rule(slot=slot_b)
    def bh_schedule(self, slot):
        for env in self.both:
            env.bh_schedule(slot)

    @rule(slot=slot_b)
    def bh_schedule_idle(self, slot):
        for env in self.both:
            env.bh_schedule_idle(slot)

    @rule(slot=slot_b)
    def bh_cancel(self, slot):
        for env in self.both:
            env.bh_cancel(slot)

    @rule(slot=slot_b)
    def bh_delete(self, slot):
        for env in self.both:
            env.bh_delete(slot)

    @rule(script=scripts())
    def oneshot(self, script):
        for env in self.both:
            env.oneshot(script)

    # timers and BHs exist from the start (BHs can be deleted and made
    # again), so that sequences reach the interesting interactions sooner
    @initialize(timer_scripts=st.lists(scripts(), min_size=NT, max_size=NT),
                bh_scripts=st.lists(scripts(), min_size=NB, max_size=NB))
    def make_timers_and_bhs(self, timer_scripts, bh_scripts):
        for env in self.both:
            for slot, script in enumerate(timer_scripts):
                env.timer_new(slot, script)
            for slot, script in enumerate(bh_scripts):
                env.bh_new(slot, script)

    @rule(slot=slot_t, delta=st.integers(0, 4))
    def timer_mod(self, slot, delta):
        for env in self.both:
            env.timer_mod(slot, delta)

    @rule(slot=slot_t, delta=st.integers(0, 4))
    def timer_mod_anticipate(self, slot, delta):
        for env in self.both:
            env.timer_mod_anticipate(slot, delta)

    @rule(slot=slot_t)
    def timer_del(self, slot):
        for env in self.both:
            env.timer_del(slot)

    @rule(ns=st.integers(0, 5))
    def clock_step(self, ns):
        for env in self.both:
            env.clock_step(ns)

    @rule()
    def notify(self):
        for env in self.both:
            env.notify()

    # the loop
    @rule()
    def poll_nonblocking(self):
        expected = self.model.top_poll(False)
        got = self.real.top_poll(False)
        assert got == expected
        self._check_traces()

    @precondition(lambda self: self.model.blocking_poll_is_bounded())
    @rule()
    def poll_blocking(self):
        expected = self.model.top_poll(True)
        self.WATCHDOG.rescued = False
        self.WATCHDOG.current = (self.real.ctx,
                                time.monotonic() + scaled(2.0))
        try:
            got = self.real.top_poll(True)
        finally:
            self.WATCHDOG.current = None
        assert not self.WATCHDOG.rescued, \
            "poll(True) blocked although the model said it would not"
        assert got == expected
        self._check_traces()

    # invariants
    @invariant()
    def same_timeout(self):
        assert self.real.ctx.compute_timeout() == \
            self.model.compute_timeout()

    @invariant()
    def same_objects(self):
        for slot in range(NB):
            bh = self.model.bhs[slot]
            if bh is not None and not bh.deleted:
                assert self.real.bhs[slot].scheduled == \
                    self.model.bh_scheduled(slot)
        for slot in range(NT):
            t = self.model.timers[slot]
            if t is not None:
                real = self.real.timers[slot]
                assert real.pending == (t.expire >= 0)
                assert real.expire_time == t.expire
        assert cevent.clock_ns(cevent.CLOCK_VIRTUAL) == self.model.now


def _examples():
    """Examples per backend: the profile's max_examples, raised in the
    "ci" profile so that the total over all backends is >= CI_TOTAL."""
    n = settings.default.max_examples
    if settings._current_profile == "ci":
        n = max(n, math.ceil(CI_TOTAL / len(cevent.backends())))
    return n


def test_model(backend):
    """The real context agrees with the reference model on every step."""
    machine = type(f"AioContextMachine_{backend}", (AioContextMachine,),
                   {"BACKEND": backend, "WATCHDOG": Watchdog()})
    try:
        run_state_machine_as_test(
            machine, settings=settings(max_examples=_examples()))
    finally:
        machine.WATCHDOG.stop()
