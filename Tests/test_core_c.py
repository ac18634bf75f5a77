"""Run the standalone C core tests (Tests/c) from pytest.

A single test function, so that it runs exactly once under pytest-xdist.  It
builds into Tests/c/build-pytest, separate from the build directories used by
``make -C Tests/c check`` and the sanitizer builds.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

C_DIR = Path(__file__).resolve().parent / "c"
BUILD = "build-pytest"
TIMEOUT = 600 * float(os.environ.get("CEVENT_TEST_TIMEOUT_MULTIPLIER", "1"))


@pytest.mark.slow
def test_core_c():
    make = shutil.which("make")
    cc = shutil.which(os.environ.get("CC", "cc"))
    assert make is not None, "make is required to build the C core tests"
    assert cc is not None, "a C compiler (cc) is required to build the C core tests"
    assert sorted(C_DIR.glob("test-*.c")), f"no test-*.c found in {C_DIR}"

    env = dict(os.environ)
    # Sanitizer/valgrind settings of the outer run (LD_PRELOAD of libasan,
    # PYTHONMALLOC) must not leak into the plain C build and its tests.
    for var in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS",
                "PYTHONMALLOC", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(var, None)

    proc = subprocess.run(
        [make, "-C", str(C_DIR), f"BUILD={BUILD}", "check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        sys.stdout.write(output)
    assert proc.returncode == 0, (
        f"make -C Tests/c BUILD={BUILD} check failed with exit code "
        f"{proc.returncode}:\n{output[-20000:]}"
    )
