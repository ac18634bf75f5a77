"""Interpreter exit with live cevent objects: a child process that leaves
contexts, scheduled BHs, armed timers, registered handlers and running
IOThreads behind must exit with status 0 and print nothing on stderr."""

import subprocess
import sys
import textwrap

import pytest

from support import scaled

PRELUDE = textwrap.dedent("""
    import os, socket, sys, threading, time
    import cevent

    KEEP = []
""")

SCENARIOS = {
    "contexts": """
        for backend in cevent.backends():
            ctx = cevent.AioContext(backend)
            a, b = socket.socketpair()
            b.send(b"x")
            ctx.set_fd_handler(a, io_read=lambda: None, io_write=print)
            e = cevent.EventNotifier()
            e.set()
            ctx.set_event_notifier(e, io_read=lambda n: None,
                                   io_poll=lambda n: True,
                                   io_poll_ready=lambda n: None)
            bh = ctx.bh_new(lambda: print("must not run"))
            bh.schedule()
            idle = ctx.bh_new(print)
            idle.schedule_idle()
            ctx.bh_schedule_oneshot(lambda: print("must not run"))
            t = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_MS, print)
            t.mod(cevent.clock_ns() // 1000000 + 3600 * 1000)
            v = ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS, print)
            v.mod(10**15)
            KEEP.append((ctx, a, b, e, bh, idle, t, v))
        """,
    "unreferenced": """
        for backend in cevent.backends():
            ctx = cevent.AioContext(backend)
            ctx.bh_new(lambda: print("must not run")).schedule()
            ctx.timer_new(cevent.CLOCK_VIRTUAL, cevent.SCALE_NS,
                          lambda: ctx).mod(10**15)
            ctx.bh_schedule_oneshot(lambda: ctx)
            del ctx
        """,
    "cycle": """
        class Holder:
            pass
        h = Holder()
        h.ctx = cevent.AioContext()
        h.bh = h.ctx.bh_new(lambda: h)
        h.bh.schedule()
        h.self = h
        del h
        """,
    "embedded": """
        ctx = cevent.AioContext()
        fd = ctx.fileno()
        ctx.prepare()
        ctx.bh_new(print).schedule()
        KEEP.append(ctx)
        """,
    "mid_poll": """
        ctx = cevent.AioContext()
        def cb():
            sys.exit(0)
        ctx.bh_schedule_oneshot(cb)
        ctx.bh_schedule_oneshot(lambda: ctx.bh_schedule_oneshot(print))
        ctx.poll(False)
        """,
    "iothread": """
        threads = []
        for backend in cevent.backends():
            t = cevent.IOThread(backend=backend)
            t.start()
            ctx = t.context
            a, b = socket.socketpair()
            ctx.set_fd_handler(a, io_read=lambda a=a: a.recv(10))
            ctx.bh_schedule_oneshot(lambda: None)
            timer = ctx.timer_new(cevent.CLOCK_REALTIME, cevent.SCALE_NS,
                                  print)
            timer.mod(cevent.clock_ns() + 3600 * 10**9)
            KEEP.append((t, a, b, timer))
        # one that keeps getting work while the interpreter exits
        busy = cevent.IOThread()
        busy.start()
        def again():
            busy.context.bh_schedule_oneshot(again)
        busy.context.bh_schedule_oneshot(again)
        KEEP.append(busy)
        # one that was never started
        KEEP.append(cevent.IOThread())
        """,
    "iothread_blocked_in_callback": """
        t = cevent.IOThread()
        t.start()
        started = threading.Event()
        def sleeper():
            started.set()
            time.sleep(0.2)
        t.context.bh_schedule_oneshot(sleeper)
        started.wait(10)
        KEEP.append(t)
        """,
    "threads_scheduling": """
        ctx = cevent.AioContext()
        def hammer():
            while True:
                try:
                    ctx.bh_schedule_oneshot(lambda: None)
                    ctx.notify()
                except ValueError:
                    return
                time.sleep(0)
        for _ in range(3):
            threading.Thread(target=hammer, daemon=True).start()
        time.sleep(0.05)
        KEEP.append(ctx)
        """,
    "lockcnt_and_notifiers": """
        lc = cevent.LockCnt()
        lc.inc()
        lc2 = cevent.LockCnt()
        lc2.lock()
        e = cevent.EventNotifier()
        e.set()
        KEEP.extend([lc, lc2, e])
        """,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exit_with_live_objects(name):
    script = PRELUDE + textwrap.dedent(SCENARIOS[name])
    proc = subprocess.run([sys.executable, "-c", script],
                          capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "must not run" not in proc.stdout


def test_exit_after_gc_disabled():
    script = PRELUDE + textwrap.dedent("""
        import gc
        gc.disable()
        ctx = cevent.AioContext()
        ctx.bh_new(lambda: ctx).schedule()
        t = cevent.IOThread()
        t.start()
        KEEP.append(t)
        """)
    proc = subprocess.run([sys.executable, "-c", script],
                          capture_output=True, text=True,
                          timeout=scaled(60))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
