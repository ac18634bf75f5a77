"""Fixtures and hooks shared by the cevent test-suite.

* ``backend``: parametrised over ``cevent.backends()`` (ids = names), so
  every test that uses it (directly or through ``ctx``) runs once per fd
  monitor usable here.
* ``ctx``: a fresh ``AioContext(backend)``, closed at teardown, followed by
  ``gc.collect()`` and a check that no callback record or context was
  left alive (``_cevent._live_counts()``).
* ``unraisable``: collects ``sys.unraisablehook`` calls for tests that
  expect them (an unexpected one fails the test: pytest turns it into a
  warning, and warnings are errors here).
* A watchdog (``faulthandler.dump_traceback_later``) around each test turns
  a hang into a traceback and a failed worker instead of a lost run.  The
  budget is ``WATCHDOG_S`` (``SLOW_WATCHDOG_S`` for tests marked ``slow``)
  times ``CEVENT_TEST_TIMEOUT_MULTIPLIER``.

``cevent`` is imported lazily so that tests which do not need the extension
(e.g. the source checks) still run while it does not build.
"""

import faulthandler
import gc
import os
import socket
import sys

import pytest

# Same as support.MULTIPLIER; read here without importing support, which
# imports cevent.
MULTIPLIER = float(os.environ.get("CEVENT_TEST_TIMEOUT_MULTIPLIER") or 1)

WATCHDOG_S = 120
SLOW_WATCHDOG_S = 900

# A copy of the real stderr for the watchdog: fd 2 itself may be a capture
# file that is lost when the watchdog ends the process.
_watchdog_fd = None


def _register_hypothesis_profiles():
    """Hypothesis profiles for the model-based test (test_model.py):

    * "ci" (default): short sequences, enough examples that the total over
      all backends is at least 10,000 (test_model raises max_examples to
      that when fewer backends are available); about a minute on 2 cores.
    * "long" (CEVENT_HYPOTHESIS_PROFILE=long): 20,000 sequences of up to 50
      steps per backend, for soak runs outside CI.
    * "smoke" (CEVENT_HYPOTHESIS_PROFILE=smoke): 300 per backend, for the
      check of an installed binary wheel (``./run.sh wheel``).

    Both: no deadline (timing varies under sanitizers), no example
    database (no .hypothesis directory), random seeds, and a failure
    prints the falsifying steps and a reproduction blob.
    """
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return
    common = dict(deadline=None, database=None, derandomize=False,
                  print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=3400,
                              stateful_step_count=20, **common)
    # "smoke": the binary-wheel check of .ci/run (the packaging, not the
    # model: the plain passes run "ci").
    settings.register_profile("smoke", max_examples=300,
                              stateful_step_count=20, **common)
    settings.register_profile("long", max_examples=20_000,
                              stateful_step_count=50, **common)
    settings.load_profile(os.environ.get("CEVENT_HYPOTHESIS_PROFILE") or "ci")


_register_hypothesis_profiles()


def pytest_configure(config):
    global _watchdog_fd
    if _watchdog_fd is None:
        _watchdog_fd = os.dup(2)
    config.addinivalue_line(
        "markers", "valgrind: subset run under valgrind memcheck")
    config.addinivalue_line("markers", "slow: long-running")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        import cevent

        names = tuple(cevent.backends())
        metafunc.parametrize("backend", names, ids=list(names),
                             indirect=True)


@pytest.fixture
def backend(request):
    """The name of one fd monitor from ``cevent.backends()``."""
    return request.param


@pytest.fixture
def sockpair():
    """A connected pair of non-blocking sockets, closed afterwards."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def ctx(backend):
    """A fresh AioContext on ``backend``; closed at teardown.  Then the
    live callback records and open contexts must be back where they were
    before the test: every test that uses it is a leak test too."""
    import cevent
    from cevent import _cevent

    gc.collect()
    before = _cevent._live_counts()
    context = cevent.AioContext(backend)
    yield context
    context.close()
    del context
    gc.collect()
    assert _cevent._live_counts() == before, "callback records leaked"


@pytest.fixture
def loop(backend):
    """A cevent.Loop on ``backend``; closed at teardown (test_loop.py has a
    stricter one of its own)."""
    import cevent

    lp = cevent.new_event_loop(backend=backend)
    try:
        yield lp
    finally:
        lp.close()


class UnraisableCollector:
    """Records ``sys.unraisablehook`` calls (exc_type, exc_value, object,
    err_msg) instead of letting pytest report them.  Installed for the whole
    test; ``with unraisable:`` re-installs it around a block (for pytest
    versions that swap the hook during the test call)."""

    def __init__(self):
        self.calls = []
        self._saved = []

    def _hook(self, args):
        self.calls.append(_UnraisableRecord(args))

    def install(self):
        self._saved.append(sys.unraisablehook)
        sys.unraisablehook = self._hook

    def uninstall(self):
        sys.unraisablehook = self._saved.pop()

    def __enter__(self):
        self.install()
        return self

    def __exit__(self, *exc_info):
        self.uninstall()

    @property
    def exceptions(self):
        return [call.exc_value for call in self.calls]


class _UnraisableRecord:
    __slots__ = ("exc_type", "exc_value", "object", "err_msg")

    def __init__(self, args):
        self.exc_type = args.exc_type
        self.exc_value = args.exc_value
        self.object = args.object
        self.err_msg = args.err_msg


@pytest.fixture
def unraisable():
    collector = UnraisableCollector()
    collector.install()
    try:
        yield collector
    finally:
        collector.uninstall()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    budget = SLOW_WATCHDOG_S if item.get_closest_marker("slow") else WATCHDOG_S
    faulthandler.dump_traceback_later(budget * MULTIPLIER, exit=True,
                                      file=_watchdog_fd)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
