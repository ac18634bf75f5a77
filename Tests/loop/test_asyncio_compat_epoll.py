"""CPython's asyncio tests (test_asyncio_compat.py) on cevent.Loop with the
epoll fd monitor.  test_asyncio_compat.py runs on the Loop's default
backend, io_uring where the kernel gives a ring, whose socket transports
read through the ring (cevent._loopcore._RingReader); epoll, the default
where it does not (and asyncio's own choice), has readiness-driven
transports.  test_asyncio_compat.py picks its backend at import
(CEVENT_COMPAT_BACKEND), so this runs it again in a fresh interpreter with
epoll forced."""

import os
import subprocess
import sys

import pytest

import cevent
from cevent._loop import _default_backend

from support import scaled

HERE = os.path.dirname(os.path.abspath(__file__))


# The whole suite in one test: about a minute on two workers, more under
# the sanitizers, so it gets the slow tests' watchdog budget.
@pytest.mark.slow
@pytest.mark.skipif((_default_backend() or cevent.backends()[0]) == "epoll",
                    reason="the default loop is on epoll already: "
                           "test_asyncio_compat.py ran it")
def test_cpython_asyncio_tests_on_epoll():
    env = dict(os.environ, CEVENT_COMPAT_BACKEND="epoll")
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "2",
           "-p", "no:cacheprovider",
           os.path.join(HERE, "test_asyncio_compat.py")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=scaled(1200), cwd=os.path.dirname(HERE))
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    summary = res.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " failed" not in summary, summary
