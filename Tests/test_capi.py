"""The C API (cevent.h, the capsule cevent._cevent._C_API), through a
consumer extension built here: Tests/capi/testcapi.c, compiled once per
test session (per xdist worker) into a temporary directory with only
``sysconfig``'s include directories and ``cevent.get_include()``.

Every member of CEvent_CAPI is used: Context_AsContext, C fd handlers
(io_read on a socketpair ping-pong, io_write, io_poll/io_poll_ready on a
memory word), BHs and oneshots (also from a C thread without the GIL),
timers (VIRTUAL with clock_step, REALTIME armed from a C thread),
clock_get_ns, notify, has_io_uring/add_sqe (a file and a socket read
and written through an io_uring context's ring, a request cancelled by
CEVENT_SQE_USER_DATA), Context_Poll with its deadlines, and
Context_StoreException/Context_ExceptionPending from a C BH.  A second build with a wrong CEVENT_ABI_VERSION
must fail to import with an ImportError naming both versions.

Every C handler, BH and timer is released before the context closes, as
cevent.h requires.
"""

import gc
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import weakref

import pytest

import cevent
from support import (
    Counter,
    run_until,
    scaled,
    settle,
    virtual_now,
    warm_up_polling,
)

valgrind = pytest.mark.valgrind

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capi",
                      "testcapi.c")
VIRTUAL = cevent.CLOCK_VIRTUAL
REALTIME = cevent.CLOCK_REALTIME


# ---- building the consumer -----------------------------------------------

def compile_flags():
    """Warnings as errors, as the package's own build with CEVENT_WERROR;
    the package's sanitizers when CEVENT_SANITIZE is set."""
    flags = ["-shared", "-fPIC", "-O2", "-g", "-Wall", "-Wextra", "-Werror"]
    sanitize = os.environ.get("CEVENT_SANITIZE", "").strip()
    if sanitize:
        flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer",
                  "-fno-sanitize-recover=all"]
    return flags


def build_consumer(name, out_dir, defines=()):
    """Compile testcapi.c into ``out_dir/<name><EXT_SUFFIX>``."""
    paths = sysconfig.get_paths()
    includes = {paths["include"], paths["platinclude"], cevent.get_include()}
    out = os.path.join(str(out_dir),
                       name + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = (shlex.split(os.environ.get("CC") or "cc") + compile_flags()
           + [f"-I{d}" for d in sorted(includes)] + list(defines)
           + [SOURCE, "-o", out])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building {name} failed:\n{shlex.join(cmd)}\n"
                    f"{proc.stdout}{proc.stderr}", pytrace=False)
    return out


def load_consumer(name, path):
    """Import the extension at ``path`` as module ``name`` (not added to
    sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def capi_build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("capi")


@pytest.fixture(scope="session")
def testcapi(capi_build_dir):
    path = build_consumer("_cevent_testcapi", capi_build_dir)
    return load_consumer("_cevent_testcapi", path)


# ---- helpers --------------------------------------------------------------

def socket_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def enroll(ctx, testcapi, pw, w):
    """Make the fd of a C poll handler ready once.  As in QEMU, a handler
    joins the busy-poll list only once it has been dispatched."""
    reads = testcapi.pollword_stats(pw)["reads"]
    w.send(b"e")
    run_until(ctx, lambda: testcapi.pollword_stats(pw)["reads"] > reads)


# ---- the capsule and the import helper --------------------------------------

@valgrind
def test_api_info(testcapi):
    info = testcapi.api_info()
    assert info["abi_version"] == 1
    assert info["header_abi_version"] == 1 == testcapi.ABI_VERSION
    # Append-only: the provider's struct is at least what we compiled.
    assert info["struct_size"] >= info["header_struct_size"] > 0
    assert info["capsule_name"] == "cevent._cevent._C_API"
    capsule = cevent._cevent._C_API
    assert type(capsule).__name__ == "PyCapsule"
    assert cevent._C_API is capsule
    assert os.path.isfile(os.path.join(cevent.get_include(), "cevent.h"))


@valgrind
def test_wrong_abi_version_raises_import_error(capi_build_dir):
    name = "_cevent_testcapi_wrongabi"
    path = build_consumer(name, capi_build_dir,
                          defines=["-DCEVENT_TEST_WRONG_ABI"])
    with pytest.raises(ImportError) as info:
        load_consumer(name, path)
    message = str(info.value)
    assert "ABI version 999" in message
    assert "ABI version 1 " in message
    assert name not in sys.modules


@valgrind
def test_context_as_context(testcapi, ctx, backend):
    ptr = testcapi.as_context(ctx)
    assert isinstance(ptr, int) and ptr != 0
    assert testcapi.as_context(ctx) == ptr
    with cevent.AioContext(backend) as other:
        assert testcapi.as_context(other) != ptr
    # Closed: ValueError, like every AioContext method.
    with pytest.raises(ValueError):
        testcapi.as_context(other)
    with pytest.raises(ValueError):
        testcapi.pingpong(other, 0, 1, 1)
    for bad in (None, object(), 3, cevent.EventNotifier):
        with pytest.raises(TypeError, match="AioContext"):
            testcapi.as_context(bad)
        with pytest.raises(TypeError):
            testcapi.bh_new(bad)


# ---- C fd handlers ----------------------------------------------------------

@valgrind
def test_pingpong_c_handlers(testcapi, ctx):
    a, b = socket_pair()
    try:
        assert testcapi.pingpong(ctx, a.fileno(), b.fileno(), 500) == 500
        # The handlers are gone: data on b wakes nobody.
        a.send(b"x")
        assert ctx.poll(False) is False
        assert b.recv(16) == b"x"
        # And can be registered again.
        assert testcapi.pingpong(ctx, a.fileno(), b.fileno(), 10) == 10
    finally:
        a.close()
        b.close()


def test_pingpong_c_handlers_many(testcapi, ctx):
    a, b = socket_pair()
    try:
        assert testcapi.pingpong(ctx, a.fileno(), b.fileno(), 20_000) == 20_000
    finally:
        a.close()
        b.close()


@valgrind
def test_c_handler_replaces_python_handler(testcapi, ctx):
    """A C registration replaces a Python one on the same fd, which
    releases the Python callable; Python can take the fd back after."""
    a, b = socket_pair()
    try:
        cb = Counter(lambda: b.recv(16))
        ref = weakref.ref(cb)
        ctx.set_fd_handler(b, io_read=cb)
        assert testcapi.pingpong(ctx, a.fileno(), b.fileno(), 5) == 5
        assert cb.n == 0
        del cb
        settle(ctx)
        assert ref() is None
        got = Counter(lambda: b.recv(16))
        ctx.set_fd_handler(b, io_read=got)
        a.send(b"y")
        run_until(ctx, lambda: got.n > 0)
        assert got.calls == [()]
        ctx.set_fd_handler(b)
    finally:
        a.close()
        b.close()


@valgrind
def test_c_io_write(testcapi, ctx):
    a, b = socket_pair()
    try:
        assert testcapi.write_once(ctx, a.fileno()) == 1
        assert b.recv(16) == b"w"
        assert ctx.poll(False) is False
    finally:
        a.close()
        b.close()


@valgrind
def test_c_poll_function(testcapi, ctx):
    """A C io_poll/io_poll_ready pair on a word in C memory: with polling
    on, a bump is found by the spin, which runs without the GIL; with
    polling off the registered fd still works through io_read."""
    r, w = socket_pair()
    pw = testcapi.pollword_new(ctx, r.fileno())
    try:
        enroll(ctx, testcapi, pw, w)
        warm_up_polling(ctx, 50_000_000)
        before = testcapi.pollword_stats(pw)
        assert before["ready"] == 0
        assert testcapi.pollword_bump(pw) == 1
        waits = ctx.stats()["waits"]
        assert ctx.poll(True) is True
        after = testcapi.pollword_stats(pw)
        assert after["ready"] == 1
        assert after["seen"] == 1
        assert after["reads"] == before["reads"] == 1
        assert after["polls"] > before["polls"]
        # Only C io_poll functions here: the spin released the GIL.
        assert after["polls_nogil"] > before["polls_nogil"]
        # Found by the spin: the fd monitor was not asked.
        assert ctx.stats()["waits"] == waits

        # Polling off: the fd side.
        ctx.set_poll_params(0)
        testcapi.pollword_bump(pw)
        w.send(b"z")
        run_until(ctx, lambda: testcapi.pollword_stats(pw)["reads"] > 1)
        assert testcapi.pollword_stats(pw)["seen"] == 2
        assert testcapi.pollword_stats(pw)["reads"] == 2
    finally:
        testcapi.pollword_free(pw)
        r.close()
        w.close()
    with pytest.raises(ValueError):
        testcapi.pollword_bump(pw)


def test_c_poll_function_woken_by_c_thread(testcapi, ctx):
    """A C thread bumps the word while the loop spins: the loop sees it in
    the spin, without a syscall on either side.  (Should the spin have
    ended, the thread writes to the fd instead; both are delivered.)"""
    r, w = socket_pair()
    pw = testcapi.pollword_new(ctx, r.fileno())
    try:
        enroll(ctx, testcapi, pw, w)
        warm_up_polling(ctx, 50_000_000)
        for i in range(1, 21):
            testcapi.pollword_bump_later(pw, 500, w.fileno(),
                                         int(scaled(0.2) * 1e6))
            run_until(ctx, lambda: testcapi.pollword_stats(pw)["seen"] == i,
                      timeout=10)
            stats = testcapi.pollword_stats(pw)
            assert stats["ready"] + stats["fallbacks"] >= i
            # wait for the thread before the next round
            deadline = time.monotonic() + scaled(10)
            while testcapi.pollword_stats(pw)["thread_running"]:
                assert time.monotonic() < deadline
                time.sleep(0.0005)
            if stats["ready"] >= 3:
                break
        stats = testcapi.pollword_stats(pw)
        assert stats["ready"] >= 1, stats
        assert stats["polls_nogil"] > 0, stats
    finally:
        testcapi.pollword_free(pw)
        settle(ctx)
        r.close()
        w.close()


# ---- BHs --------------------------------------------------------------------

@valgrind
def test_bh_schedule_cancel_delete(testcapi, ctx):
    bh = testcapi.bh_new(ctx)
    try:
        assert ctx.poll(False) is False
        assert testcapi.bh_runs(bh) == 0

        testcapi.bh_schedule(bh)
        assert ctx.poll(False) is True
        assert testcapi.bh_runs(bh) == 1
        assert ctx.poll(False) is False

        # Scheduling twice before the loop runs is one run.
        testcapi.bh_schedule(bh)
        testcapi.bh_schedule(bh)
        assert ctx.poll(False) is True
        assert ctx.poll(False) is False
        assert testcapi.bh_runs(bh) == 2

        # Cancelled: does not run.
        testcapi.bh_schedule(bh)
        testcapi.bh_cancel(bh)
        assert ctx.poll(False) is False
        assert testcapi.bh_runs(bh) == 2

        # Deleted while scheduled: does not run either.
        testcapi.bh_schedule(bh)
    finally:
        testcapi.bh_delete(bh)
    assert ctx.poll(False) is False
    assert testcapi.bh_runs(bh) == 2
    with pytest.raises(ValueError):
        testcapi.bh_schedule(bh)


@valgrind
def test_bh_deleted_unpolled_is_freed_by_close(testcapi, backend):
    """bh_delete() then close() without a poll in between: close frees it."""
    ctx = cevent.AioContext(backend)
    bh = testcapi.bh_new(ctx)
    testcapi.bh_schedule(bh)
    testcapi.bh_delete(bh)
    ctx.close()
    assert testcapi.bh_runs(bh) == 0


def test_bh_and_oneshot_from_c_thread(testcapi, ctx):
    """A C thread, never holding the GIL, makes a BH with bh_new and
    schedules it and a oneshot while this thread polls."""
    rounds = 50
    done, bh_runs, oneshot_runs, timed_out = testcapi.bh_from_thread(
        ctx, rounds, scaled(10))
    assert not timed_out
    assert (done, bh_runs, oneshot_runs) == (rounds, rounds, rounds)
    assert ctx.poll(False) is False


# ---- timers -----------------------------------------------------------------

@valgrind
def test_timer_virtual_clock(testcapi, ctx):
    now = testcapi.clock_get_ns(VIRTUAL)
    assert now == virtual_now()
    t = testcapi.timer_new(ctx, VIRTUAL)
    try:
        testcapi.timer_mod_ns(t, now + 1000)
        assert ctx.poll(False) is False
        assert testcapi.timer_fired(t) == (0, -1)
        ctx.clock_step(999)
        assert ctx.poll(False) is False
        assert testcapi.timer_fired(t) == (0, -1)
        ctx.clock_step(1)
        assert ctx.poll(False) is True
        assert testcapi.timer_fired(t) == (1, now + 1000)
        assert ctx.poll(False) is False

        # Disarmed: stepping past the deadline does nothing.
        testcapi.timer_mod_ns(t, now + 2000)
        testcapi.timer_del(t)
        cevent.clock_step(5000)
        assert ctx.poll(False) is False
        assert testcapi.timer_fired(t)[0] == 1

        # Re-armed in the past: fires on the next iteration.
        testcapi.timer_mod_ns(t, now)
        assert ctx.poll(False) is True
        assert testcapi.timer_fired(t) == (2, now + 6000)
    finally:
        testcapi.timer_free(t)
    with pytest.raises(ValueError):
        testcapi.timer_mod_ns(t, 0)


@valgrind
def test_timer_scale_and_free_armed(testcapi, ctx):
    """expire times are in ns whatever the scale; freeing an armed timer
    disarms it."""
    now = virtual_now()
    t = testcapi.timer_new(ctx, VIRTUAL, cevent.SCALE_MS)
    t2 = testcapi.timer_new(ctx, VIRTUAL, cevent.SCALE_US)
    try:
        testcapi.timer_mod_ns(t, now + 10)
        testcapi.timer_mod_ns(t2, now + 20)
        ctx.clock_step(10)
        assert ctx.poll(False) is True
        assert testcapi.timer_fired(t) == (1, now + 10)
        assert testcapi.timer_fired(t2)[0] == 0
    finally:
        testcapi.timer_free(t)
        testcapi.timer_free(t2)         # still armed
    ctx.clock_step(100)
    assert ctx.poll(False) is False


@valgrind
def test_timer_bad_arguments(testcapi, ctx):
    for clock, scale in [(-1, 1), (99, 1), (VIRTUAL, 0), (VIRTUAL, -5)]:
        with pytest.raises(ValueError):
            testcapi.timer_new(ctx, clock, scale)
    assert testcapi.clock_get_ns(99) == -1
    assert testcapi.clock_get_ns(-1) == -1
    assert testcapi.clock_get_ns(REALTIME) > 0


def test_timer_armed_from_c_thread(testcapi, ctx):
    """timer_mod_ns() from a C thread wakes a poll(True) blocked with no
    timer; the timer never fires early."""
    fired, late_ns = testcapi.timer_from_thread(ctx, 2_000_000, scaled(10))
    assert fired == 1
    assert late_ns >= 0


# ---- notify -----------------------------------------------------------------

def test_notify_from_c_thread(testcapi, ctx):
    results = testcapi.notify_from_thread(ctx, 2000)
    assert results
    # notify() alone is not progress.
    assert not any(results)


def test_notify_from_python_thread_without_gil(testcapi, ctx):
    guard = ctx.timer_new(REALTIME, cevent.SCALE_NS, lambda: None)
    guard.mod(cevent.clock_ns() + int(scaled(10) * 1e9))
    ctx.poll(False)                     # accept the arming's notification

    def notifier():
        time.sleep(0.005)
        testcapi.notify(ctx)

    thread = threading.Thread(target=notifier)
    thread.start()
    try:
        assert ctx.poll(True) is False  # woken by notify, not the guard
    finally:
        thread.join()
        guard.delete()


@valgrind
def test_notify_same_thread(testcapi, ctx):
    testcapi.notify(ctx)
    # A pending notification makes poll(True) return at once.
    assert ctx.poll(True) is False


# ---- closing --------------------------------------------------------------

@valgrind
def test_everything_released_then_close(testcapi, backend):
    """The cevent.h lifetime rule, end to end: handlers, BHs and timers
    made through the C API are released, then the context closes cleanly
    and the consumer's handles stay harmless."""
    ctx = cevent.AioContext(backend)
    a, b = socket_pair()
    try:
        bh = testcapi.bh_new(ctx)
        t = testcapi.timer_new(ctx, VIRTUAL)
        testcapi.timer_mod_ns(t, virtual_now() + 10**12)
        pw = testcapi.pollword_new(ctx, b.fileno())
        testcapi.bh_schedule(bh)
        ctx.poll(False)
        testcapi.pollword_free(pw)
        testcapi.bh_delete(bh)
        testcapi.timer_free(t)
        ctx.close()
        assert testcapi.bh_runs(bh) == 1
        assert testcapi.timer_fired(t) == (0, -1)
        del bh, t, pw
        gc.collect()
    finally:
        ctx.close()
        a.close()
        b.close()


# ---- io_uring requests: has_io_uring and add_sqe ---------------------------

def uring_done(testcapi, *reqs):
    return lambda: all(testcapi.uring_result(r) is not None for r in reqs)


def test_uring_available(testcapi, ctx, backend):
    assert testcapi.uring_available(ctx) is (backend == "io_uring")


def test_uring_bad_calls(testcapi, ctx, backend):
    """A NULL prep_sqe, handler or cb is EINVAL on every backend."""
    import errno
    bad = testcapi.uring_bad_calls(ctx)
    assert bad == {"null_prep": (-1, errno.EINVAL),
                   "null_handler": (-1, errno.EINVAL),
                   "null_cb": (-1, errno.EINVAL)}


def test_uring_absent_without_io_uring(testcapi):
    """poll and epoll contexts refuse requests with EOPNOTSUPP."""
    import errno
    other = [b for b in ("poll", "epoll") if b in cevent.backends()]
    for name in other:
        with cevent.AioContext(backend=name) as c:
            assert not testcapi.uring_available(c)
            with pytest.raises(OSError) as info:
                testcapi.uring_recv(c, 0, 16)
            assert info.value.errno == errno.EOPNOTSUPP


@pytest.fixture
def uring_ctx():
    """An io_uring context (add_sqe() needs one), closed afterwards."""
    if "io_uring" not in cevent.backends():
        pytest.skip("io_uring: " + cevent.unavailable_backends()["io_uring"])
    with cevent.AioContext(backend="io_uring") as c:
        yield c


def test_uring_reads_a_file(testcapi, uring_ctx, tmp_path):
    ctx = uring_ctx
    content = os.urandom(100_000)
    path = tmp_path / "data"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = testcapi.uring_read(ctx, fd, len(content))
        tail = testcapi.uring_read(ctx, fd, 1000, 99_500)
        # In 4 KiB chunks, each next one submitted from the callback, with
        # room for more than the file: it ends at end of file (res 0)
        chunked = testcapi.uring_read(ctx, fd, len(content) + 5000, 0, 4096)
        assert testcapi.uring_result(whole) is None   # never from add_sqe
        run_until(ctx, uring_done(testcapi, whole, tail, chunked))
    finally:
        os.close(fd)
    r = testcapi.uring_result(whole)
    assert (r["res"], r["calls"]) == (len(content), 1)
    assert r["data"] == content
    r = testcapi.uring_result(tail)
    assert (r["res"], r["data"]) == (500, content[99_500:])
    r = testcapi.uring_result(chunked)
    assert r["data"] == content
    assert r["res"] == 0 and r["resubmit_errno"] == 0
    assert r["calls"] == -(-len(content) // 4096) + 1


def test_uring_read_error_is_negative_errno(testcapi, uring_ctx):
    import errno
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    req = testcapi.uring_read(uring_ctx, r, 10)
    run_until(uring_ctx, uring_done(testcapi, req))
    assert testcapi.uring_result(req)["res"] == -errno.EBADF


def test_uring_socket_recv_and_send(testcapi, uring_ctx):
    ctx = uring_ctx
    a, b = socket_pair()
    with a, b:
        recv = testcapi.uring_recv(ctx, a.fileno(), 64)
        for _ in range(3):
            ctx.poll(False)
        assert testcapi.uring_result(recv) is None     # nothing sent yet
        send = testcapi.uring_send(ctx, b.fileno(), b"through the ring")
        run_until(ctx, uring_done(testcapi, recv, send))
        assert testcapi.uring_result(send)["res"] == 16
        r = testcapi.uring_result(recv)
        assert (r["res"], r["data"], r["calls"]) == (16, b"through the ring",
                                                     1)
        # An fd handler on the same context keeps working beside requests
        seen = Counter(lambda: a.recv(10))
        ctx.set_fd_handler(a.fileno(), seen)
        b.send(b"x")
        run_until(ctx, lambda: seen.n == 1)
        ctx.set_fd_handler(a.fileno(), None)
        # The peer's close: a receive of 0 bytes
        recv = testcapi.uring_recv(ctx, a.fileno(), 64)
        b.close()
        run_until(ctx, uring_done(testcapi, recv))
        assert testcapi.uring_result(recv)["res"] == 0


def test_uring_close_with_request_in_flight(testcapi, uring_ctx):
    """close() cancels a request in flight without its cb, and the kernel
    no longer writes into its buffer afterwards."""
    a, b = socket_pair()
    with a, b:
        ctx = uring_ctx
        recv = testcapi.uring_recv(ctx, a.fileno(), 8)
        ctx.poll(False)
        ctx.close()
        b.send(b"too late")
        time.sleep(scaled(0.05))
        assert testcapi.uring_buffer(recv) == b"x" * 8
        assert testcapi.uring_abandon(recv) == 0
        assert a.recv(8) == b"too late"


def test_uring_cancel_by_user_data(testcapi, uring_ctx):
    """CEVENT_SQE_USER_DATA() names a request for IORING_OP_ASYNC_CANCEL:
    a recv with nothing to read completes with -ECANCELED."""
    import errno

    a, b = socket_pair()
    with a, b:
        ctx = uring_ctx
        recv = testcapi.uring_recv(ctx, a.fileno(), 8)
        ctx.poll(False)
        cancel = testcapi.uring_cancel(ctx, recv)
        run_until(ctx, lambda: testcapi.uring_result(recv) is not None
                  and testcapi.uring_result(cancel) is not None)
        assert testcapi.uring_result(recv)["res"] == -errno.ECANCELED
        assert testcapi.uring_result(cancel)["res"] in (0, -errno.EALREADY)


# ---- driving a context from C: Context_Poll, Context_*Exception ----------

def test_context_poll_deadline(testcapi, ctx):
    """With nothing else to do, Context_Poll waits until its deadline: the
    context's own timer ends the wait.  (Arming that timer notifies the
    context, as QEMU's timer_mod_ns() does, so the first call may return
    at once; it does not spin.)"""
    while ctx.poll(False):
        pass
    deadline = cevent.clock_ns() + int(scaled(30_000_000))
    calls = 0
    while cevent.clock_ns() < deadline:
        testcapi.context_poll(ctx, deadline)
        calls += 1
        assert calls <= 3, "Context_Poll returned early again and again"
    # Past the deadline, or CEVENT_POLL_NOWAIT (0): no wait.
    t0 = time.monotonic()
    testcapi.context_poll(ctx, deadline)
    testcapi.context_poll(ctx, 0)
    assert time.monotonic() - t0 < scaled(1.0)


def test_context_poll_forever_returns_on_work(testcapi, ctx):
    """CEVENT_POLL_FOREVER waits until something happens (a BH), and a
    deadline armed earlier no longer wakes it."""
    ran = Counter()
    testcapi.context_poll(ctx, cevent.clock_ns() + 1)   # arms, fires
    ctx.bh_schedule_oneshot(ran)
    testcapi.context_poll(ctx, 2**63 - 1)
    assert len(ran.calls) == 1
    timer = threading.Timer(scaled(0.05), ctx.notify)
    t0 = time.monotonic()
    timer.start()
    try:
        testcapi.context_poll(ctx, 2**63 - 1)           # until notify()
    finally:
        timer.join()
    assert time.monotonic() - t0 >= scaled(0.05) * 0.9


def test_context_notify_from_another_thread(testcapi, ctx):
    """Context_Notify from a Python thread ends a blocking poll of the home
    thread (it releases the GIL for it); a closed context is ValueError."""
    while ctx.poll(False):
        pass
    ctx.poll(False)     # a fresh context starts notified (aio_notify_accept)
    timer = threading.Timer(scaled(0.05), testcapi.context_notify, (ctx,))
    t0 = time.monotonic()
    timer.start()
    try:
        testcapi.context_poll(ctx, 2**63 - 1)
    finally:
        timer.join()
    assert scaled(0.05) * 0.9 <= time.monotonic() - t0 < scaled(5.0)
    with pytest.raises(TypeError):
        testcapi.context_notify(object())
    closed = cevent.AioContext()
    closed.close()
    with pytest.raises(ValueError):
        testcapi.context_notify(closed)


def test_context_poll_checks_its_context(testcapi):
    with pytest.raises(TypeError):
        testcapi.context_poll(object(), 0)
    ctx = cevent.AioContext()
    ctx.close()
    with pytest.raises(ValueError):
        testcapi.context_poll(ctx, 0)
    ctx = cevent.AioContext()
    try:
        errors = []

        def other_thread():
            try:
                testcapi.context_poll(ctx, 0)
            except RuntimeError as exc:
                errors.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(errors) == 1, "poll from another thread must raise"
    finally:
        ctx.close()


def test_store_exception_is_raised_by_the_poll(testcapi, ctx):
    """An exception a C callback hands over with Context_StoreException is
    raised by the running poll (Context_Poll or AioContext.poll), and
    Context_ExceptionPending says so meanwhile."""
    for poll in (lambda: testcapi.context_poll(ctx, 0),
                 lambda: ctx.poll(False)):
        bh = testcapi.raise_in_bh(ctx, "from C")
        with pytest.raises(RuntimeError, match="from C"):
            poll()
        result = testcapi.raise_bh_result(bh)
        assert result["ran"] == 1
        assert result["pending"][:2] == (0, 1)
        assert result["stored"][0] == 0
        assert testcapi.exception_pending(ctx) == 0


def test_store_exception_second_one_is_unraisable(testcapi, ctx):
    """The first exception of a poll is raised; a second one is reported
    with sys.unraisablehook, as for Python callbacks."""
    import sys

    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        bh = testcapi.raise_in_bh(ctx, "twice", 2)
        with pytest.raises(RuntimeError, match="twice"):
            ctx.poll(False)
    finally:
        sys.unraisablehook = old
    result = testcapi.raise_bh_result(bh)
    assert result["stored"] == (0, 0)
    assert result["pending"] == (0, 1, 1)
    assert len(seen) == 1 and isinstance(seen[0].exc_value, RuntimeError)


def test_store_exception_outside_a_poll(testcapi, ctx):
    """With no poll to raise it, the exception is reported as unraisable;
    a non-context is refused the same way; no exception set is a
    SystemError."""
    import sys

    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        assert testcapi.store_exception(ctx, True) == 0
        assert testcapi.store_exception(object(), True) == -1
    finally:
        sys.unraisablehook = old
    assert [str(u.exc_value) for u in seen] == ["outside", "outside"]
    assert testcapi.exception_pending(ctx) == 0
    assert testcapi.exception_pending(object()) == 0
    with pytest.raises(SystemError):
        testcapi.store_exception(ctx, False)
