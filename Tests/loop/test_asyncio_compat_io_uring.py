"""CPython's asyncio tests (test_asyncio_compat.py) on cevent.Loop with the
io_uring fd monitor, where socket transports read through the ring
(cevent._loopcore._RingReader).  test_asyncio_compat.py picks its backend at
import (CEVENT_COMPAT_BACKEND; by default the Loop's, epoll), so this runs
it again in a fresh interpreter with io_uring forced."""

import os
import subprocess
import sys

import pytest

import cevent
from cevent import _asyncio_layout

from support import scaled

HERE = os.path.dirname(os.path.abspath(__file__))


# The whole suite in one test: about a minute on two workers, more under
# the sanitizers, so it gets the slow tests' watchdog budget.
@pytest.mark.slow
@pytest.mark.skipif("io_uring" not in cevent.backends(),
                    reason="io_uring is not usable on this machine")
def test_cpython_asyncio_tests_on_io_uring():
    assert _asyncio_layout.NATIVE["ring_reads"]
    env = dict(os.environ, CEVENT_COMPAT_BACKEND="io_uring")
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "2",
           "-p", "no:cacheprovider",
           os.path.join(HERE, "test_asyncio_compat.py")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=scaled(1200), cwd=os.path.dirname(HERE))
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    summary = res.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " failed" not in summary, summary
