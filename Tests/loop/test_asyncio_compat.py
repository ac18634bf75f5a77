"""CPython's own asyncio tests (``test.test_asyncio``), run on cevent.Loop.

Each class below subclasses one of CPython's test classes for real
(selector) event loops and makes its loops with the loop under test:

* ``create_event_loop()`` (test_events, test_sock_lowlevel, test_sendfile)
  and ``new_loop()`` (the ``functional.FunctionalTestCaseMixin`` classes:
  test_server, test_sslproto, test_buffered_proto) return a new loop;
* classes whose ``setUp`` builds ``asyncio.SelectorEventLoop()`` get a
  ``setUp`` that builds the loop under test instead;
* ``new_test_loop()`` (test_tasks, test_futures) returns a real loop under
  test; a test that passes it a time generator needs the stdlib's
  virtual-clock ``TestLoop`` and is skipped (it would not run on the loop
  under test at all);
* everything else (``asyncio.new_event_loop()``, ``asyncio.Runner``,
  ``IsolatedAsyncioTestCase``) reaches the loop through the event loop
  policy, which an autouse fixture sets around every test.

Tests that construct another loop class themselves (e.g.
``asyncio.SelectorEventLoop()``) do not exercise the loop under test and
are skipped automatically.  The others that cannot pass for a legitimate
reason are listed in ``DESELECTED`` with the reason.

``CEVENT_COMPAT_LOOP=uvloop`` runs the same classes on uvloop instead, to
compare pass rates (uvloop is not a test dependency otherwise);
``CEVENT_COMPAT_BACKEND`` forces cevent's fd monitor.
"""

import asyncio
import contextlib
import functools
import inspect
import os
import re
import sys
import unittest
import warnings

import pytest

import cevent

if sys.platform != "linux":  # pragma: no cover
    pytest.skip("Linux only", allow_module_level=True)

try:
    from test.test_asyncio import utils as test_utils
except ImportError:  # pragma: no cover - a Python without its test package
    pytest.skip("CPython's test package (test.test_asyncio) is not "
                "installed", allow_module_level=True)

from test.test_asyncio import (  # noqa: E402
    test_base_events,
    test_buffered_proto,
    test_context,
    test_events,
    test_futures,
    test_futures2,
    test_locks,
    test_queues,
    test_sendfile,
    test_server,
    test_sock_lowlevel,
    test_ssl,
    test_sslproto,
    test_streams,
    test_subprocess,
    test_taskgroups,
    test_tasks,
    test_threads,
    test_timeouts,
    test_unix_events,
    test_waitfor,
)

LOOP = os.environ.get("CEVENT_COMPAT_LOOP", "cevent")

if LOOP == "uvloop":
    uvloop = pytest.importorskip("uvloop")

    def new_loop():
        return uvloop.new_event_loop()

    class Policy(asyncio.DefaultEventLoopPolicy):
        """asyncio's default policy (with its child watchers, which the
        subprocess tests set), making uvloop loops."""

        def _loop_factory(self):
            return uvloop.new_event_loop()

    LOOP_TYPE = uvloop.Loop
elif LOOP == "cevent":
    # CEVENT_COMPAT_BACKEND=poll|epoll|io_uring forces an fd monitor (the
    # default is cevent.Loop's, io_uring when usable);
    # test_asyncio_compat_epoll.py runs this module on epoll.
    BACKEND = os.environ.get("CEVENT_COMPAT_BACKEND") or None

    def new_loop():
        return cevent.new_event_loop(backend=BACKEND)

    # cevent._loop's name: cevent.EventLoopPolicy warns from 3.14, as
    # asyncio's policy names do.
    Policy = functools.partial(cevent._loop.EventLoopPolicy, backend=BACKEND)
    LOOP_TYPE = cevent.Loop
else:  # pragma: no cover
    raise ValueError(f"CEVENT_COMPAT_LOOP={LOOP!r}: cevent or uvloop")


@pytest.fixture(autouse=True)
def _policy():
    """The loop under test for asyncio.new_event_loop(), asyncio.Runner()
    and IsolatedAsyncioTestCase.

    CPython runs these tests one after another on one policy, on which the
    previous test's ``test_utils.TestCase.tearDown`` called
    ``set_event_loop(None)``; some tests rely on it (from 3.12, the policy's
    get_event_loop() raises RuntimeError rather than warn and make a loop).
    A new policy per test starts from that same state.  The policy system
    is deprecated from 3.14; CPython's own tests set it all the same."""
    with _policy_api():
        asyncio.set_event_loop_policy(Policy())
    asyncio.set_event_loop(None)
    try:
        yield
    finally:
        with _policy_api():
            asyncio.set_event_loop_policy(None)


@contextlib.contextmanager
def _policy_api():
    with warnings.catch_warnings():
        if sys.version_info >= (3, 14):
            warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --------------------------------------------------------------------------
# Tests that cannot pass, with the reason.  Keys are "Class.test_name"
# (the class names of this module); "*.test_name" matches every class.
# Besides this table, two rules skip tests automatically (see compat()):
#
# | the test's body ...                | reason                            |
# | ---------------------------------- | --------------------------------- |
# | calls new_test_loop(gen)           | runs on the stdlib's virtual-clock|
# |                                    | TestLoop, not the loop under test |
# | builds asyncio.SelectorEventLoop(),| runs on that loop, not the loop   |
# | BaseEventLoop(), TestLoop(), ...   | under test                        |

#: cevent.Loop: none.  Every test of the classes below that runs on the
#: loop under test passes.
DESELECTED_CEVENT: dict[str, str] = {}

_UVLOOP_HANG = ("hangs on uvloop (the test or the loop's close() never "
                "returns; the per-test watchdog would end the worker): "
                "counted as a uvloop failure")

#: uvloop (CEVENT_COMPAT_LOOP=uvloop): only the tests that hang, so that a
#: uvloop run finishes; its other failures are left to fail.
DESELECTED_UVLOOP: dict[str, str] = {
    "BaseEvents_WithSelectorTests.test_create_connection_ipv6_scope":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_cant_bind":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_connect_err":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_no_addrinfo":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_nosoreuseport":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_setblk_err":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_datagram_endpoint_socket_err":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_server_cant_bind":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_server_empty_host":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_server_nosoreuseport":
        _UVLOOP_HANG,
    "BaseEvents_WithSelectorTests.test_create_server_soreuseport_only_defined":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_add_signal_handler":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_bidirectional_pty":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_create_datagram_endpoint":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_create_datagram_endpoint_ipv6":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_create_datagram_endpoint_sock":
        _UVLOOP_HANG,
    "Events_EventLoopTests.test_unclosed_pipe_transport":
        _UVLOOP_HANG,
    "SockLowlevel_Tests.test_sock_client_racing":
        _UVLOOP_HANG,
    "SslProto_StartTLSTests.test_create_connection_memory_leak":
        _UVLOOP_HANG,
    "SslProto_StartTLSTests.test_start_tls_client_buf_proto_1":
        _UVLOOP_HANG,
    "SslProto_StartTLSTests.test_start_tls_client_reg_proto_1":
        _UVLOOP_HANG,
    "Ssl_TestSSL.test_flush_before_shutdown":
        _UVLOOP_HANG,
    "Streams_StreamTests.test_read_all_from_pipe_reader":
        _UVLOOP_HANG,
    "Subprocess_ThreadedWatcherTests.test_close_dont_kill_finished":
        _UVLOOP_HANG,
    "Subprocess_ThreadedWatcherTests.test_close_kill_running":
        _UVLOOP_HANG,
    "UnixEvents_UnixSocketTests.test_create_unix_server_bind_error":
        _UVLOOP_HANG,
}

DESELECTED = DESELECTED_UVLOOP if LOOP == "uvloop" else DESELECTED_CEVENT

# A test whose own body builds a loop of a fixed class runs on that loop,
# not on the loop under test.
_OTHER_LOOP = re.compile(
    r"asyncio\.SelectorEventLoop\(|base_events\.BaseEventLoop\(|"
    r"asyncio\.BaseEventLoop\(|BaseSelectorEventLoop\(|\bTestLoop\(")


# new_test_loop(gen): the stdlib's TestLoop, whose clock the generator
# drives.  Skipped before the test body runs (it may create coroutines
# before it makes the loop).
_VIRTUAL_CLOCK = re.compile(r"new_test_loop\(\s*gen")
_VIRTUAL_CLOCK_REASON = ("drives the stdlib's virtual-clock TestLoop with a "
                         "time generator: does not run on the loop under "
                         "test")


def _skip(reason):
    def decorate(func):
        @functools.wraps(func)
        def skipped(self, *args, **kwargs):
            raise unittest.SkipTest(reason)
        return skipped
    return decorate


def compat(cls):
    """Finish a compat class: apply DESELECTED and the other-loop rule."""
    for name in dir(cls):
        if not name.startswith("test"):
            continue
        func = getattr(cls, name)
        if not callable(func):
            continue
        reason = (DESELECTED.get(f"{cls.__name__}.{name}")
                  or DESELECTED.get(f"*.{name}"))
        if reason is None:
            try:
                source = inspect.getsource(func)
            except (OSError, TypeError):
                source = ""
            match = _OTHER_LOOP.search(source)
            if match:
                reason = (f"builds its own {match.group(0)[:-1]} loop: "
                          "does not run on the loop under test")
            elif _VIRTUAL_CLOCK.search(source):
                reason = _VIRTUAL_CLOCK_REASON
        if reason is not None:
            setattr(cls, name, _skip(reason)(func))
    return cls


class _LoopUnderTest:
    """Loop factories of CPython's test mixins, returning the loop under
    test."""

    @staticmethod
    def close_loop(loop):
        # test_utils.TestCase.close_loop reads the stdlib loop's private
        # _default_executor (to join its threads); a loop without it
        # (uvloop) is just closed, which shuts its executor down.
        if hasattr(loop, "_default_executor"):
            return test_utils.TestCase.close_loop(loop)
        loop.close()

    def create_event_loop(self):
        return new_loop()

    def new_loop(self):
        return new_loop()

    def new_test_loop(self, gen=None):
        if gen is not None:
            self.skipTest(_VIRTUAL_CLOCK_REASON)
        loop = new_loop()
        self.set_event_loop(loop)
        return loop


def _replace_selector_loop_setup(stdlib_cls):
    """A mixin whose setUp does what ``stdlib_cls.setUp`` does (call the
    next setUp, then ``self.loop = asyncio.SelectorEventLoop()`` and
    ``self.set_event_loop``) with the loop under test."""

    class Mixin(_LoopUnderTest):
        def setUp(self):
            super(stdlib_cls, self).setUp()
            self.loop = new_loop()
            self.set_event_loop(self.loop)

    return Mixin


# --------------------------------------------------------------------------
# test_events

# 3.14 removed the Unix mixin (it set up child watchers) and kept its
# tests in EventLoopTestsMixin.
@compat
class Events_EventLoopTests(_LoopUnderTest,
                            getattr(test_events, "UnixEventLoopTestsMixin",
                                    test_events.EventLoopTestsMixin),
                            test_events.SubprocessTestsMixin,
                            test_utils.TestCase):
    if LOOP == "uvloop":
        # uvloop refuses asyncio's SIGCHLD child watchers (it reaps its
        # own children), which UnixEventLoopTestsMixin.setUp attaches:
        # leave them out so the tests run at all.
        def setUp(self):
            test_events.EventLoopTestsMixin.setUp(self)

        def tearDown(self):
            test_events.EventLoopTestsMixin.tearDown(self)


# --------------------------------------------------------------------------
# test_base_events

@compat
class BaseEvents_WithSelectorTests(
        _replace_selector_loop_setup(
            test_base_events.BaseEventLoopWithSelectorTests),
        test_base_events.BaseEventLoopWithSelectorTests):
    pass


@compat
class BaseEvents_RunningLoopTests(_LoopUnderTest,
                                  test_base_events.RunningLoopTests):
    pass


# --------------------------------------------------------------------------
# test_sock_lowlevel, test_sendfile, test_server, test_buffered_proto

@compat
class SockLowlevel_Tests(_LoopUnderTest,
                         test_sock_lowlevel.BaseSockTestsMixin,
                         test_utils.TestCase):
    pass


@compat
class Sendfile_Tests(_LoopUnderTest, test_sendfile.SendfileTestsBase,
                     test_utils.TestCase):
    pass


@compat
class Server_StartServerTests(_LoopUnderTest,
                              test_server.BaseStartServer,
                              unittest.TestCase):
    pass


@compat
class BufferedProto_Tests(_LoopUnderTest,
                          test_buffered_proto.BaseTestBufferedProtocol,
                          unittest.TestCase):
    pass


# --------------------------------------------------------------------------
# test_ssl, test_sslproto, test_streams

@compat
class Ssl_TestSSL(_LoopUnderTest, test_ssl.TestSSL):
    pass


@compat
class SslProto_HandshakeTests(_LoopUnderTest,
                              test_sslproto.SslProtoHandshakeTests):
    pass


@compat
class SslProto_StartTLSTests(_LoopUnderTest, test_sslproto.BaseStartTLS,
                             unittest.TestCase):
    pass


@compat
class Streams_StreamTests(_LoopUnderTest, test_streams.StreamTests):
    pass


# --------------------------------------------------------------------------
# test_unix_events

@compat
class UnixEvents_SignalTests(
        _replace_selector_loop_setup(
            test_unix_events.SelectorEventLoopSignalTests),
        test_unix_events.SelectorEventLoopSignalTests):
    pass


@compat
class UnixEvents_UnixSocketTests(
        _replace_selector_loop_setup(
            test_unix_events.SelectorEventLoopUnixSocketTests),
        test_unix_events.SelectorEventLoopUnixSocketTests):
    pass


@compat
class UnixEvents_UnixSockSendfileTests(
        _LoopUnderTest,
        test_unix_events.SelectorEventLoopUnixSockSendfileTests):
    pass


@compat
class UnixEvents_TestFunctional(_LoopUnderTest,
                                test_unix_events.TestFunctional):
    pass


# --------------------------------------------------------------------------
# test_subprocess: the policy makes the loop; the child watcher is the
# stdlib's.  ThreadedChildWatcher is 3.11's default; SafeChildWatcher
# exercises the SIGCHLD path (add_signal_handler).  3.14 removed child
# watchers: the loop watches its children with a pidfd, or with a thread
# where pidfds are missing (the threaded tests force that).

@compat
class Subprocess_ThreadedWatcherTests(
        _LoopUnderTest, test_subprocess.SubprocessThreadedWatcherTests):
    pass


if sys.version_info < (3, 14):
    @compat
    class Subprocess_SafeWatcherTests(
            _LoopUnderTest, test_subprocess.SubprocessSafeWatcherTests):
        pass

    @compat
    class Subprocess_GenericWatcherTests(
            _LoopUnderTest, test_subprocess.GenericWatcherTests):
        pass
else:
    @compat
    class Subprocess_PidfdWatcherTests(
            _LoopUnderTest, test_subprocess.SubprocessPidfdWatcherTests):
        pass


# --------------------------------------------------------------------------
# test_futures, test_futures2

def _loop_under_test_subclasses(module, names, prefix):
    for name in names:
        base = getattr(module, name, None)
        if base is None or getattr(base, "__unittest_skip__", False):
            continue
        cls = type(f"{prefix}_{name}", (_LoopUnderTest, base),
                   {"__module__": __name__,
                    "__qualname__": f"{prefix}_{name}"})
        globals()[cls.__name__] = compat(cls)


_loop_under_test_subclasses(test_futures, [
    "DuckTests", "CFutureTests", "CSubFutureTests", "PyFutureTests",
    "CFutureDoneCallbackTests", "CSubFutureDoneCallbackTests",
    "PyFutureDoneCallbackTests", "PyFutureInheritanceTests",
    "CFutureInheritanceTests",
], "Futures")

_loop_under_test_subclasses(test_futures2, [
    "CFutureTests", "PyFutureTests", "FutureReprTests",
], "Futures2")

# --------------------------------------------------------------------------
# test_tasks

_loop_under_test_subclasses(test_tasks, [
    "CTask_CFuture_Tests", "CTask_CFuture_SubclassTests",
    "CTaskSubclass_PyFuture_Tests", "PyTask_CFutureSubclass_Tests",
    "CTask_PyFuture_Tests", "PyTask_CFuture_Tests", "PyTask_PyFuture_Tests",
    "PyTask_PyFuture_SubclassTests", "CTask_Future_Tests",
    "PyIntrospectionTests", "CIntrospectionTests", "PyCurrentLoopTests",
    "CCurrentLoopTests", "GenericTaskTests", "FutureGatherTests",
    "CoroutineGatherTests", "RunCoroutineThreadsafeTests", "SleepTests",
    "CompatibilityTests",
], "Tasks")

# --------------------------------------------------------------------------
# IsolatedAsyncioTestCase modules: the loop comes from the policy.

_loop_under_test_subclasses(test_locks, [
    "LockTests", "EventTests", "ConditionTests", "SemaphoreTests",
    "BarrierTests",
], "Locks")
_loop_under_test_subclasses(test_queues, [
    "QueueBasicTests", "QueueGetTests", "QueuePutTests", "LifoQueueTests",
    "PriorityQueueTests", "QueueJoinTests", "LifoQueueJoinTests",
    "PriorityQueueJoinTests",
], "Queues")
_loop_under_test_subclasses(test_taskgroups, ["TestTaskGroup"],
                            "TaskGroups")
_loop_under_test_subclasses(test_timeouts, ["TimeoutTests"], "Timeouts")
_loop_under_test_subclasses(test_waitfor, ["AsyncioWaitForTest"],
                            "WaitFor")
_loop_under_test_subclasses(test_threads, ["ToThreadTests"], "Threads")
_loop_under_test_subclasses(test_context, ["DecimalContextTest"],
                            "Context")


# --------------------------------------------------------------------------
# The runner itself: every loop these classes made is the loop under test.

def test_loops_are_the_loop_under_test():
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is LOOP_TYPE
    finally:
        loop.close()
    loop = _LoopUnderTest().create_event_loop()
    try:
        assert type(loop) is LOOP_TYPE
    finally:
        loop.close()
