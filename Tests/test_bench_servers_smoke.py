"""Smoke test of the server benchmark (Lib/cevent/_bench/servers.py): one
short run of each echo style and of the httptools HTTP rows (under wrk and
under the C client), on asyncio's loop, cevent.Loop (every backend) and
the C floor, checking that every run produced a rate with every echo or
response verified.  Timings are never checked (they are for comparison
only, never pass/fail).  Also: the load generators fail loudly on a wrong
or short echo and on a wrong response."""

import json
import shutil
import socket
import subprocess
import threading

import pytest

import cevent
from cevent._bench import cbuild, servers


def _check_runs(result, want_servers, styles):
    runs = result["runs"]
    seen = {(r["row"]["style"], r["server"]) for r in runs}
    assert seen == {(s, n) for s in styles for n in want_servers}
    for r in runs:
        res = r["result"]
        assert res.get("ok"), (r["server"], r["row"], res)
        assert res["rate"] > 0
        if r["row"]["kind"] == "echo" or r["row"]["client"] == "httpload":
            assert res["round_trips"] > 0
            size = r["row"].get("size", len(servers.BODY))
            assert res["verified_bytes"] == res["round_trips"] * size
            assert "p99_us" in res
    text = servers.render_text(result)
    for entry in result["summary"]:
        assert entry["label"] in text


def test_echo_styles(tmp_path):
    result = servers.run(styles=servers.STYLES_ECHO, sizes=[1024],
                         conns=[2], kinds=["asyncio", "cevent.Loop"],
                         reps=1, duration=0.3)
    want = ["asyncio"] + [f"cevent.Loop {b}" for b in cevent.backends()]
    _check_runs(result, want + [servers.FLOOR], servers.STYLES_ECHO)
    # ratios to the C floor are there (uvloop may be absent here)
    cell = result["summary"][0]["servers"]["asyncio"]
    assert cell["of_floor"] > 0


def test_echo_large_messages():
    """100 KiB messages through partial sends and reads."""
    result = servers.run(styles=["protocol"], sizes=[102400], conns=[3],
                         kinds=["cevent.Loop"], reps=1, duration=0.3,
                         backends=[cevent.backends()[0]])
    _check_runs(result, [f"cevent.Loop {cevent.backends()[0]}",
                         servers.FLOOR], ["protocol"])


@pytest.mark.skipif("io_uring" not in cevent.backends(),
                    reason="io_uring is not usable on this machine")
def test_io_uring_readiness_variant():
    """--backends io_uring-readiness: cevent.Loop on io_uring with the ring
    reads turned off in the server process, beside the default."""
    specs = servers.servers(["io_uring", servers.READINESS_VARIANT],
                            ["cevent.Loop"], [])
    variant = specs[1]
    assert variant["backend"] == "io_uring"
    assert variant["env"]["CEVENT_ASYNCIO_FALLBACK"] == "ring_reads"
    result = servers.run(styles=["protocol"], sizes=[102400], conns=[2],
                         kinds=["cevent.Loop"], reps=1, duration=0.3,
                         backends=["io_uring", servers.READINESS_VARIANT])
    _check_runs(result, ["cevent.Loop io_uring",
                         "cevent.Loop io_uring-readiness", servers.FLOOR],
                ["protocol"])
    for r in result["runs"]:
        assert "server_stderr" not in r["result"], r["result"]


@pytest.mark.skipif(shutil.which("wrk") is None,
                    reason="wrk is not installed (Debian: apt-get install "
                           "wrk; run.sh and CI install it)")
def test_http_httptools():
    pytest.importorskip("httptools")
    result = servers.run(styles=["httptools"], kinds=["cevent.Loop"],
                         reps=1, duration=1.0,
                         backends=[cevent.backends()[0]])
    _check_runs(result, [f"cevent.Loop {cevent.backends()[0]}"],
                ["httptools"])
    assert [r["client"] for r in result["rows"]] == ["wrk", "httpload"]
    for entry in result["summary"]:
        cell = entry["servers"][f"cevent.Loop {cevent.backends()[0]}"]
        assert cell["p99_us"] > 0


def _bad_http_server(reply):
    """An HTTP server answering the first request with ``reply``; it
    closes the connection at once after a cut one (no blank line)."""
    def serve_conn(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(1024)
        conn.sendall(reply)
        if b"\r\n\r\n" in reply:
            conn.recv(1)

    return _one_shot_server(serve_conn)


def _response(status, body, extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


@pytest.mark.parametrize("reply,error", [
    (_response(b"404 Not Found", servers.BODY), "not HTTP/1.1 200"),
    (_response(b"200 OK", b"Hello, World?"), "body differs"),
    (_response(b"200 OK", servers.BODY) + b"X", "ahead of the request"),
    (_response(b"200 OK", servers.BODY, b"Connection: close\r\n"),
     "Connection: close"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "no Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "short response"),
])
def test_httpload_fails_loudly(reply, error):
    httpload = cbuild.build("httpload")
    port, thread = _bad_http_server(reply)
    proc = subprocess.run([httpload, "127.0.0.1", str(port), "1",
                           servers.BODY.decode(), "5", "0", "5"],
                          capture_output=True, text=True, timeout=30)
    thread.join(10)
    assert proc.returncode != 0
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] is False and error in out["error"]


def _one_shot_server(serve_conn):
    """A server of one connection, served by ``serve_conn(conn)`` in a
    thread; returns its port and the thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            serve_conn(conn)
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def _bad_server(mode):
    """An echo server that corrupts ("wrong") or cuts ("short") the first
    echo."""
    def serve_conn(conn):
        data = b""
        while len(data) < 64:
            data += conn.recv(64 - len(data))
        if mode == "wrong":
            conn.sendall(data[:40] + bytes([data[40] ^ 1]) + data[41:])
            conn.recv(1)
        else:
            conn.sendall(data[:10])

    return _one_shot_server(serve_conn)


@pytest.mark.parametrize("mode,error", [("wrong", "wrong echo"),
                                        ("short", "short echo")])
def test_loadgen_fails_loudly(mode, error):
    loadgen = cbuild.build("loadgen")
    port, thread = _bad_server(mode)
    proc = subprocess.run([loadgen, "127.0.0.1", str(port), "1", "64", "5",
                           "0", "5"], capture_output=True, text=True,
                          timeout=30)
    thread.join(10)
    assert proc.returncode != 0
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] is False and error in out["error"]


def test_every_peer_runs_or_is_noted():
    """uvloop, rloop, rsloop and zuvloop are optional: each one either runs
    (with its version) or the report notes why it was left out."""
    from cevent._bench.loops import PEERS

    notes = []
    listed = servers.servers(cevent.backends(), list(PEERS), notes)
    names = {s["name"] for s in listed}
    for peer in PEERS:
        noted = any(n.startswith(f"{peer} skipped: ") for n in notes)
        assert (peer in names) != noted, (peer, names, notes)
