"""asyncio's API as it changes from version to version, on cevent.Loop
against asyncio's own loop of the same interpreter.

Each test does the same thing on a cevent.Loop and on asyncio's own Unix
loop (or with cevent's policy and with asyncio's) and checks that the two
agree, so that one test states the behaviour for every CPython version:

* the policy system: deprecated in 3.14 (the names warn), gone in 3.16;
  ``get_event_loop()`` raises in 3.14 when no loop is set;
* child watchers: deprecated in 3.12, removed in 3.14 (the loop watches
  its children itself);
* ``call_soon_threadsafe()`` returns asyncio's locking handle from 3.14;
* ``create_task()`` passes every keyword through (``eager_start`` from
  3.14);
* ``python -m asyncio ps`` and ``pstree`` (3.14) show a running program's
  tasks;
* a socket transport runs its protocol's callbacks in one context per
  connection (3.15), ring reads on io_uring included.
"""

import asyncio
import contextlib
import contextvars
import re
import signal
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import cevent
from support import checked_loop, echo_subprocess, run, scaled


@pytest.fixture
def loop(backend):
    yield from checked_loop(backend)


@pytest.fixture
def aio_loop():
    """asyncio's own loop of this interpreter, for comparison."""
    lp = asyncio.SelectorEventLoop()
    try:
        yield lp
    finally:
        lp.close()


@contextlib.contextmanager
def policy_api():
    """The policy system warns from 3.14: those DeprecationWarnings are
    expected where a test uses it on purpose."""
    with warnings.catch_warnings():
        if cevent._loop.POLICY_DEPRECATED:
            warnings.simplefilter("ignore", DeprecationWarning)
        yield


def access(module, name):
    """('ok', [warning messages]) or ('missing', None) for module.name."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            getattr(module, name)
        except AttributeError:
            return "missing", None
    return "ok", [(w.category, str(w.message)) for w in caught]


# ---- the policy system ----------------------------------------------------

def test_policy_name_deprecated_as_asyncio():
    """cevent.EventLoopPolicy warns exactly when and as
    asyncio.DefaultEventLoopPolicy does, and is gone where it is."""
    state, warned = access(asyncio, "DefaultEventLoopPolicy")
    ours, our_warned = access(cevent, "EventLoopPolicy")
    assert ours == state
    if state == "ok":
        expected = [(category, message.replace(
                        "asyncio.DefaultEventLoopPolicy",
                        "cevent.EventLoopPolicy"))
                    for category, message in warned]
        assert our_warned == expected
        assert bool(warned) == cevent._loop.POLICY_DEPRECATED
    assert ("EventLoopPolicy" in cevent.__all__) == (
        "DefaultEventLoopPolicy" in asyncio.__all__)


def test_policy_deprecation_points_at_the_caller():
    with pytest.warns(DeprecationWarning) if cevent._loop.POLICY_DEPRECATED \
            else contextlib.nullcontext() as record:
        cevent.EventLoopPolicy
    if record is not None:
        assert record[0].filename == __file__


def test_policy_makes_cevent_loops():
    with policy_api():
        old = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(cevent.EventLoopPolicy())
        try:
            lp = asyncio.new_event_loop()
            assert type(lp) is cevent.Loop
            lp.close()

            async def main():
                return type(asyncio.get_running_loop())

            assert asyncio.run(main()) is cevent.Loop
            policy = cevent.EventLoopPolicy(backend="poll")
            lp = policy.new_event_loop()
            assert lp.backend == "poll"
            lp.close()
            assert isinstance(policy, asyncio.events._AbstractEventLoopPolicy
                              if hasattr(asyncio.events,
                                         "_AbstractEventLoopPolicy")
                              else asyncio.AbstractEventLoopPolicy)
        finally:
            asyncio.set_event_loop_policy(old)


NO_LOOP_PROGRAM = textwrap.dedent("""
    import asyncio, sys, warnings
    import cevent

    warnings.simplefilter("always")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if sys.argv[1] == "cevent":
            policy = cevent.EventLoopPolicy()
        else:
            policy = type(asyncio.get_event_loop_policy())()
        asyncio.set_event_loop_policy(policy)
    with warnings.catch_warnings(record=True) as caught:
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError as exc:
            print("raises", exc)
        else:
            print("makes a loop", isinstance(loop, asyncio.AbstractEventLoop))
            loop.close()
    print(sorted({w.category.__name__ for w in caught}))
""")


def test_get_event_loop_without_a_loop_as_asyncio():
    """asyncio.get_event_loop() in a main thread where no loop was ever
    set, under cevent's policy and under asyncio's: the same outcome (it
    warns and makes a loop up to 3.13, raises from 3.14)."""
    outcomes = [
        subprocess.run([sys.executable, "-c", NO_LOOP_PROGRAM, which],
                       capture_output=True, text=True, check=True,
                       timeout=scaled(60)).stdout
        for which in ("cevent", "asyncio")]
    assert outcomes[0] == outcomes[1]
    if sys.version_info >= (3, 14):
        assert outcomes[0].startswith("raises")


# ---- child watchers -------------------------------------------------------

def test_child_watcher_api_as_asyncio(loop, aio_loop):
    """The policy has child watcher methods exactly where asyncio's has
    them; the loop watches its children as asyncio's loop does."""
    with policy_api():
        ours = cevent.EventLoopPolicy()
        theirs = type(asyncio.get_event_loop_policy())()
    for name in ("get_child_watcher", "set_child_watcher"):
        assert hasattr(ours, name) == hasattr(theirs, name)
    for name in ("SafeChildWatcher", "ThreadedChildWatcher",
                 "PidfdChildWatcher"):
        assert hasattr(asyncio, name) == (sys.version_info < (3, 14))
    assert (type(getattr(loop, "_watcher", None))
            is type(getattr(aio_loop, "_watcher", None)))


def test_subprocess_with_the_version_s_child_watching(loop):
    """3.11-3.13: SafeChildWatcher reaps children from a SIGCHLD handler,
    that is through the loop's add_signal_handler().  3.14+: the loop's
    own watcher (pidfd), and the thread watcher asyncio falls back to."""
    if sys.version_info < (3, 14):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.SafeChildWatcher()
            watcher.attach_loop(loop)
            policy = asyncio.get_event_loop_policy()
            policy.set_child_watcher(watcher)
        try:
            assert echo_subprocess(loop) == (b"hi\n", 0)
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                policy.set_child_watcher(None)
                watcher.attach_loop(None)
                watcher.close()
        return
    from asyncio import unix_events
    assert echo_subprocess(loop) == (b"hi\n", 0)
    real = unix_events.can_use_pidfd
    unix_events.can_use_pidfd = lambda: False
    try:
        threaded = cevent.new_event_loop(backend=loop.backend)
    finally:
        unix_events.can_use_pidfd = real
    try:
        assert type(threaded._watcher).__name__ == "_ThreadedChildWatcher"
        assert echo_subprocess(threaded) == (b"hi\n", 0)
    finally:
        threaded.close()


# ---- call_soon_threadsafe -------------------------------------------------

def test_call_soon_threadsafe_handle_as_asyncio(loop, aio_loop):
    ran = []
    ours = loop.call_soon_threadsafe(ran.append, 1)
    theirs = aio_loop.call_soon_threadsafe(ran.append, 2)
    assert type(ours) is type(theirs)
    # Cancelled from another thread before its turn: it does not run.
    cancelled = loop.call_soon_threadsafe(ran.append, 3)
    thread = threading.Thread(target=cancelled.cancel)
    thread.start()
    thread.join()
    assert cancelled.cancelled()
    run(loop, asyncio.sleep(0))
    assert ran == [1]


def test_call_soon_threadsafe_from_threads_runs_each_once(loop):
    """Handles scheduled from several threads, half of them cancelled by
    yet another thread while the loop runs: each of the others runs once,
    none of the cancelled ones runs after its cancel() returned."""
    n = 200
    ran = []
    done = threading.Event()
    lock = threading.Lock()
    cancelled_at = {}

    def record(i):
        with lock:
            if i in cancelled_at:
                ran.append(("late", i))
                return
        ran.append(i)
        if len([x for x in ran if isinstance(x, int)]) == n // 2:
            loop.call_soon_threadsafe(done.set)

    handles = {}

    def producer(start):
        for i in range(start, n, 2):
            handles[i] = loop.call_soon_threadsafe(record, i)

    def canceller():
        for i in range(1, n, 2):
            while i not in handles:
                pass
            handle = handles[i]
            if handle.cancel() is None and handle.cancelled():
                with lock:
                    cancelled_at[i] = True

    async def main():
        threads = [threading.Thread(target=producer, args=(0,)),
                   threading.Thread(target=producer, args=(1,)),
                   threading.Thread(target=canceller)]
        for t in threads:
            t.start()
        while not done.is_set():
            await asyncio.sleep(0.001)
        for t in threads:
            t.join()
        await asyncio.sleep(0)

    run(loop, main(), timeout=30)
    evens = sorted(x for x in ran if isinstance(x, int) and x % 2 == 0)
    assert evens == list(range(0, n, 2))
    assert [x for x in ran if isinstance(x, tuple)] == []


# ---- create_task ----------------------------------------------------------

def _create_task_outcome(lp, **kwargs):
    steps = []

    async def coro():
        steps.append("started")
        return 7

    async def main():
        c = coro()
        try:
            task = lp.create_task(c, **kwargs)
        except TypeError as exc:
            c.close()
            return ("TypeError", re.sub(r"\w*Loop\w*", "LOOP", str(exc)))
        eager = task.done()
        name = task.get_name()
        result = await task
        return ("task", eager, name, result, list(steps))

    return lp.run_until_complete(main())


@pytest.mark.parametrize("kwargs", [
    {},
    {"name": "named"},
    {"context": contextvars.copy_context()},
    {"eager_start": True},
    {"eager_start": False, "name": "lazy"},
], ids=["none", "name", "context", "eager_start", "eager_start_false"])
def test_create_task_keywords_as_asyncio(loop, aio_loop, kwargs):
    theirs = _create_task_outcome(aio_loop, **kwargs)
    ours = _create_task_outcome(loop, **kwargs)
    if kwargs.get("name") is None and ours[0] == "task":
        # Default names count tasks: compare their form.
        ours = ours[:2] + (re.sub(r"\d+", "N", ours[2]),) + ours[3:]
        theirs = theirs[:2] + (re.sub(r"\d+", "N", theirs[2]),) + theirs[3:]
    assert ours == theirs
    if sys.version_info >= (3, 14) and kwargs.get("eager_start"):
        assert ours[1] is True   # ran to completion inside create_task()


# ---- the context of a connection's callbacks ------------------------------

REQUEST = contextvars.ContextVar("REQUEST", default=None)


class ContextProbe(asyncio.Protocol):
    """Sets REQUEST in connection_made and reports what data_received and
    connection_lost see of it."""

    def __init__(self, seen):
        self.seen = seen

    def connection_made(self, transport):
        self.transport = transport
        REQUEST.set("set in connection_made")

    def data_received(self, data):
        self.seen.append(("data_received", REQUEST.get()))
        self.transport.close()

    def connection_lost(self, exc):
        self.seen.append(("connection_lost", REQUEST.get()))


def _context_outcome(lp, side):
    """What ContextProbe saw, as the server's protocol (side "server") or
    the client's (side "client") of one connection on lp."""
    seen = []

    def send_and_close(reader, writer):
        writer.write(b"x")
        writer.close()

    async def main():
        if side == "server":
            server = await lp.create_server(
                lambda: ContextProbe(seen), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x")
            await reader.read()
            writer.close()
        else:
            server = await asyncio.start_server(send_and_close,
                                                "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            await lp.create_connection(lambda: ContextProbe(seen),
                                       "127.0.0.1", port)
        while len(seen) < 2:
            await asyncio.sleep(0.001)
        server.close()
        await server.wait_closed()

    lp.run_until_complete(asyncio.wait_for(main(), scaled(10)))
    return seen


@pytest.mark.parametrize("side", ["server", "client"])
def test_protocol_callbacks_context_as_asyncio(loop, aio_loop, side):
    """What a protocol's later callbacks see of a context variable set in
    connection_made: the same as under asyncio (they share the
    connection's context from 3.15; each had a copy of its own before).
    On io_uring the reads come through the ring."""
    theirs = _context_outcome(aio_loop, side)
    ours = _context_outcome(loop, side)
    assert ours == theirs
    if sys.version_info >= (3, 15):
        assert ("data_received", "set in connection_made") in ours


# ---- python -m asyncio ps / pstree ----------------------------------------

PROGRAM = textwrap.dedent("""
    import asyncio, sys
    import cevent

    async def leaf(ready):
        ready.set()
        await asyncio.sleep(60)

    async def branch(ready):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(leaf(ready), name="cevent-leaf")

    async def main():
        ready = asyncio.Event()
        asyncio.create_task(branch(ready), name="cevent-branch")
        await ready.wait()
        print("ready", flush=True)
        await asyncio.sleep(60)

    cevent.run(main(), loop_factory=lambda: cevent.new_event_loop(
        backend=sys.argv[1]))
""")


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="python -m asyncio ps/pstree are new in 3.14")
@pytest.mark.parametrize("command", ["ps", "pstree"])
def test_asyncio_ps_shows_cevent_tasks(backend, command):
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM, backend],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        out = subprocess.run(
            [sys.executable, "-m", "asyncio", command, str(proc.pid)],
            capture_output=True, text=True, timeout=scaled(60))
        assert out.returncode == 0, out.stderr
        assert "cevent-leaf" in out.stdout
        assert "cevent-branch" in out.stdout
        if command == "pstree":
            # The leaf is shown under the task that awaits it.
            assert out.stdout.index("cevent-branch") < out.stdout.index(
                "cevent-leaf")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
