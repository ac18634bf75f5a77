"""fork() policy: a context belongs to the process that created it.

In a fork child every method of an inherited AioContext (and of an
IOThread's context) raises ``RuntimeError("AioContext was created in
another process (fork); create a new one in the child")``, except
``close()``, which releases the child's Python references and its own
copies of the descriptors.  The kernel objects are shared with the parent
(the notifier eventfd, the epoll set, the io_uring ring): the child never
writes, ``epoll_ctl``s or submits to them (at fork time its notifier is
replaced by a private eventfd, its copies of the epoll fds are closed and
its io_uring mapping is dropped), so the parent's loop goes on unharmed.
A child creates new contexts as it likes.

Each child reports through its exit status; the parent checks that its own
context still runs handlers, BHs and timers, and that a blocking poll() is
still woken by a cross-thread notify (the notifier registration survived).
"""

import gc
import os
import shutil
import subprocess
import threading
import time
import warnings

import pytest

import cevent
from support import drain, run_until, scaled

EPOLL_ENABLE_THRESHOLD = 64
FORK_ERROR = "created in another process"


def _native_stacks(pid):
    """The threads' C stacks of a hung process, for the failure message
    (where it waits is the whole diagnosis of a fork hang); empty without
    gdb."""
    if shutil.which("gdb") is None:
        return " (no gdb for its stacks)"
    try:
        out = subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
            capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f" (gdb failed: {exc})"
    return "; its threads:\n" + out[-8000:]


def fork():
    """os.fork().  Forking a process with threads is what these tests are
    about: the DeprecationWarning CPython gives for it (3.12+, whenever it
    sees another thread; 3.15 sees more of them) is expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"This process \(pid=\d+\) is multi-threaded",
            DeprecationWarning)
        return os.fork()


def run_child(body):
    """Fork; run body() in the child and exit 0 if it returned True, 1 if
    False, 2 on an exception.  Returns the child's exit code."""
    pid = fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if body() else 1
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + scaled(30)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            stacks = _native_stacks(pid)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("fork child hung" + stacks)
        time.sleep(0.005)


def refuses(call):
    try:
        call()
    except RuntimeError as exc:
        return FORK_ERROR in str(exc)
    return False


class Parent:
    """A context with an fd handler, a BH and a virtual timer that the
    parent keeps using across its children."""

    def __init__(self, backend, nfds=1):
        self.ctx = cevent.AioContext(backend)
        self.notifiers = [cevent.EventNotifier() for _ in range(nfds)]
        self.fd_calls = 0
        for e in self.notifiers:
            self.ctx.set_event_notifier(e, io_read=self._read)
        self.bh_calls = 0
        self.bh = self.ctx.bh_new(self._bh)
        self.timer_calls = 0
        self.timer = self.ctx.timer_new(cevent.CLOCK_VIRTUAL,
                                        cevent.SCALE_NS, self._timer)

    def _read(self, e):
        e.test_and_clear()
        self.fd_calls += 1

    def _bh(self):
        self.bh_calls += 1

    def _timer(self):
        self.timer_calls += 1

    def check_works(self):
        """Handlers, BHs, timers and cross-thread wake-ups all work."""
        ctx = self.ctx
        drain(ctx)
        before = self.fd_calls
        for e in self.notifiers:
            e.set()
        run_until(ctx, lambda: self.fd_calls >= before + len(self.notifiers))
        self.bh.schedule()
        assert ctx.poll(True) is True
        assert self.bh_calls >= 1
        now = cevent.clock_ns(cevent.CLOCK_VIRTUAL)
        self.timer.mod(now + 10)
        cevent.clock_step(10)
        calls = self.timer_calls
        run_until(ctx, lambda: self.timer_calls == calls + 1)
        # a blocking poll with nothing to do is woken from another thread
        drain(ctx)
        ctx.poll(False)
        n = self.bh_calls
        t = threading.Timer(0.05, self.bh.schedule)
        start = time.monotonic()
        t.start()
        try:
            assert ctx.poll(True) is True
        finally:
            t.join()
        assert self.bh_calls == n + 1
        assert time.monotonic() - start < scaled(5)

    def close(self):
        for e in self.notifiers:
            self.ctx.set_event_notifier(e)
        self.bh.delete()
        self.timer.delete()
        self.ctx.close()
        for e in self.notifiers:
            e.close()


@pytest.mark.parametrize("nfds", [1, EPOLL_ENABLE_THRESHOLD + 2],
                         ids=["few-fds", "many-fds"])
def test_fork_child_refuses_and_closes(backend, nfds):
    """The child gets RuntimeError from every method but close(), which
    works; the parent's context keeps working afterwards (with many fds the
    epoll context has upgraded, so its epoll set is shared with the
    child)."""
    parent = Parent(backend, nfds)
    try:
        parent.check_works()
        if backend == "epoll" and nfds > EPOLL_ENABLE_THRESHOLD:
            assert parent.ctx.backend == "epoll"
        ctx = parent.ctx
        e = parent.notifiers[0]

        def child():
            ok = all(refuses(call) for call in [
                lambda: ctx.poll(False),
                lambda: ctx.poll(True),
                ctx.notify,
                ctx.pending,
                ctx.dispatch,
                ctx.prepare,
                ctx.compute_timeout,
                ctx.fileno,
                ctx.stats,
                lambda: ctx.backend,
                lambda: ctx.poll_ns,
                lambda: ctx.set_fd_handler(e.fileno(), io_read=print),
                lambda: ctx.set_fd_handler(e.fileno()),
                lambda: ctx.set_event_notifier(e),
                lambda: ctx.set_poll_params(0),
                lambda: ctx.set_aio_params(0),
                lambda: ctx.bh_new(print),
                lambda: ctx.bh_schedule_oneshot(print),
                lambda: ctx.timer_new(cevent.CLOCK_REALTIME, 1, print),
                lambda: ctx.clock_step(0),
                ctx.__enter__,
            ])
            if not ok:
                return False
            ctx.close()
            ctx.close()             # idempotent
            if not ctx.closed:
                return False
            # a new context in the child works
            with cevent.AioContext(backend) as fresh:
                hits = []
                fresh.bh_schedule_oneshot(lambda: hits.append(1))
                fresh.poll(True)
                return hits == [1]

        assert run_child(child) == 0
        parent.check_works()
        # and once more, with a child that only exits
        assert run_child(lambda: True) == 0
        parent.check_works()
    finally:
        parent.close()


def test_fork_child_gc_of_inherited_context(backend):
    """The child drops its inherited context without close(): the garbage
    collector releases it, without touching the parent's objects."""
    parent = Parent(backend)
    try:
        holder = [parent]

        def child():
            holder.clear()
            gc.collect()
            return True

        assert run_child(child) == 0
        parent.check_works()
    finally:
        parent.close()


def test_fork_child_uses_bh_and_timer(backend):
    """BH and Timer objects of an inherited context refuse in the child as
    the context does (BH.delete() is allowed, as close() is); the parent is
    not woken and its BH does not run because of the child."""
    parent = Parent(backend)
    try:
        parent.check_works()
        drain(parent.ctx)

        def child():
            bh, timer = parent.bh, parent.timer
            ok = all(refuses(call) for call in (
                bh.schedule, bh.schedule_idle, bh.cancel,
                lambda: bh.scheduled,
                lambda: timer.mod(0), lambda: timer.mod_ns(0),
                lambda: timer.mod_anticipate(0), timer.delete,
                lambda: timer.pending, lambda: timer.expire_time))
            bh.delete()
            return ok

        n = parent.bh_calls
        assert run_child(child) == 0
        assert parent.ctx.poll(False) is False
        assert parent.bh_calls == n
        parent.check_works()
    finally:
        parent.close()


def test_fork_from_callback(backend):
    """fork() from inside a callback: the child finishes that iteration
    (its remaining callbacks run in the child), then refuses further use;
    the parent's iteration is unaffected."""
    parent_pid = os.getpid()
    ctx = cevent.AioContext(backend)
    try:
        order = []
        pids = []

        def forking_bh():
            order.append("fork")
            pid = fork()
            if pid == 0:
                order.append("child")
                return
            pids.append(pid)

        bh1 = ctx.bh_new(lambda: order.append("after"))
        bh2 = ctx.bh_new(forking_bh)
        drain(ctx)
        bh1.schedule()
        bh2.schedule()          # LIFO: bh2 runs first
        try:
            result = ctx.poll(False)
        finally:
            if os.getpid() != parent_pid:
                # the child: never return into pytest
                code = 1
                try:
                    if order == ["fork", "child", "after"] and \
                            refuses(lambda: ctx.poll(False)):
                        code = 0
                    ctx.close()
                except BaseException:
                    code = 3
                os._exit(code)
        assert result is True
        assert order == ["fork", "after"]
        _, status = os.waitpid(pids[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
        bh1.schedule()
        assert ctx.poll(True) is True
        assert order[-1] == "after"
        bh1.delete()
        bh2.delete()
    finally:
        ctx.close()


def test_fork_with_iothread(backend):
    """An IOThread polls its context when the main thread forks.  In the
    child the IOThread does not exist: its context refuses to run, and
    close() works although the parent's thread was inside poll().  The
    parent's IOThread keeps serving work."""
    io = cevent.IOThread(backend=backend)
    io.start()
    try:
        ctx = io.context
        done = threading.Event()
        ctx.bh_schedule_oneshot(done.set)
        assert done.wait(scaled(5))
        time.sleep(0.01)        # let it block in poll()

        def child():
            ok = refuses(lambda: ctx.poll(False)) and \
                refuses(lambda: ctx.bh_schedule_oneshot(print)) and \
                refuses(ctx.notify)
            ctx.close()
            return ok and ctx.closed

        assert run_child(child) == 0
        for _ in range(3):
            done.clear()
            ctx.bh_schedule_oneshot(done.set)
            assert done.wait(scaled(5))
        r, w = os.pipe()
        try:
            got = threading.Event()
            ctx.set_fd_handler(r, io_read=lambda: (os.read(r, 1),
                                                    got.set()))
            os.write(w, b"x")
            assert got.wait(scaled(5))
            ctx.set_fd_handler(r)
        finally:
            done.clear()
            ctx.bh_schedule_oneshot(done.set)
            assert done.wait(scaled(5))
            os.close(r)
            os.close(w)
    finally:
        io.stop()


def test_fork_child_can_use_new_iothread(backend):
    def child():
        with cevent.IOThread(backend=backend) as io:
            done = threading.Event()
            io.context.bh_schedule_oneshot(done.set)
            return done.wait(5)

    assert run_child(child) == 0


def test_fork_while_another_thread_makes_contexts(backend):
    """Another thread keeps making contexts, which takes the port's
    process-wide timer locks with the GIL released, while this one forks;
    every child makes and runs a context of its own.  (The locks are held
    across fork() and re-initialised in the child; the race they close is
    too narrow to hit on demand, so this is a stress check, not a
    reproducer.)"""
    stop = threading.Event()

    def maker():
        while not stop.is_set():
            cevent.AioContext(backend).close()

    thread = threading.Thread(target=maker)
    thread.start()
    try:
        def child():
            with cevent.AioContext(backend) as c:
                bh = c.bh_new(lambda: None)
                bh.schedule()
                ok = c.poll(False)
                bh.delete()
                return ok

        for _ in range(30):
            assert run_child(child) == 0
    finally:
        stop.set()
        thread.join()
