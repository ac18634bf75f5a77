"""cevent._asyncio_layout: the face's knowledge of asyncio's private layout,
checked at import, and the fallback to asyncio's own Python code for each
piece that does not match (forced here with CEVENT_ASYNCIO_FALLBACK)."""

import os
import subprocess
import sys

import pytest

from cevent import _asyncio_layout

from support import scaled

HERE = os.path.dirname(os.path.abspath(__file__))

#: The warning filter that lets a forced fallback import under the suite's
#: "warnings are errors".
IGNORE = "ignore:cevent.Loop falls back:RuntimeWarning"


def _env(pieces):
    env = dict(os.environ)
    env["CEVENT_ASYNCIO_FALLBACK"] = pieces
    return env


def test_layout_matches_this_python():
    """On the interpreters cevent supports, every piece matches: the C
    paths are the ones in use."""
    assert _asyncio_layout.MISMATCHES == {p: None for p in
                                          _asyncio_layout.PIECES}
    assert all(_asyncio_layout.NATIVE.values())
    assert _asyncio_layout.check() == _asyncio_layout.MISMATCHES


def test_c_layout_follows_native():
    layout = _asyncio_layout.C_LAYOUT
    assert layout["handle_slots"] == _asyncio_layout.HANDLE_SLOTS
    assert layout["timer_slots"] == _asyncio_layout.TIMER_SLOTS
    assert layout["key_fields"] == (1, 3, 4)
    assert layout["transport_attrs"] == _asyncio_layout.TRANSPORT_ATTRS


@pytest.mark.parametrize("piece", _asyncio_layout.PIECES)
def test_forced_fallback_warns_once(piece):
    code = ("import warnings, cevent, cevent._asyncio_layout as L;"
            "print(sorted(k for k, v in L.NATIVE.items() if not v))")
    res = subprocess.run([sys.executable, "-W", "always", "-c", code],
                         env=_env(piece), capture_output=True, text=True,
                         timeout=scaled(60))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == repr([piece])
    lines = [ln for ln in res.stderr.splitlines()
             if "RuntimeWarning" in ln]
    assert len(lines) == 1, res.stderr
    assert f"falls back to asyncio's own Python code for {piece!r}" \
        in lines[0]
    assert "forced by CEVENT_ASYNCIO_FALLBACK" in lines[0]


def test_unknown_fallback_piece_is_an_error():
    res = subprocess.run([sys.executable, "-c", "import cevent"],
                         env=_env("handles,bogus"), capture_output=True,
                         text=True, timeout=scaled(60))
    assert res.returncode != 0
    assert "unknown piece(s) ['bogus']" in res.stderr


def _run_loop_tests(pieces, *extra):
    """The loop tests in a fresh interpreter with @pieces forced to fall
    back; returns pytest's output."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist",
           "-p", "no:cacheprovider", "-W", IGNORE,
           os.path.join(HERE, "test_loop.py"),
           os.path.join(HERE, "test_loop_order.py"), *extra]
    res = subprocess.run(cmd, env=_env(pieces), capture_output=True,
                         text=True, timeout=scaled(600),
                         cwd=os.path.dirname(HERE))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout
    assert " failed" not in res.stdout
    return res.stdout


@pytest.mark.parametrize("piece", _asyncio_layout.PIECES)
def test_loop_tests_pass_on_each_fallback(piece):
    """Each fallback alone, on one backend (the others run below): the
    ring reads' on io_uring, where they would be used."""
    backend = "epoll" if "epoll" in _backends() else "poll"
    if piece == "ring_reads" and "io_uring" in _backends():
        backend = "io_uring"
    _run_loop_tests(piece, "-k", backend)


def test_loop_tests_pass_with_every_fallback():
    """Every piece in Python at once, on every backend."""
    _run_loop_tests("all")


def _backends():
    import cevent
    return cevent.backends()
