"""The server benchmark: ``python -m cevent bench --only servers``.

Each loop runs a real server in its own process (:mod:`.server_proc`),
pinned to one CPU; a load generator, pinned to another CPU, drives it over
loopback:

* **echo rows**, for each style (``protocol``, ``streams``, ``sock``),
  message size (1, 10, 100 KiB) and number of connections (1, 10, 100):
  the C program ``c/loadgen.c`` (request/response: send a message, read the
  whole echo, compare every byte, send the next; it fails loudly on a short
  or wrong echo and on a stall).  ``c/echo_epoll.c``, a plain C epoll echo
  server, runs each echo row too: the physical floor ("% of C");
* **HTTP rows** (``httptools``, ``aiohttp``), each loaded two ways:
  ``wrk`` (HTTP/1.1 keep-alive, 64 connections, one thread), with its
  latency percentiles, and the C program ``c/httpload.c`` (10 keep-alive
  connections, one request in flight on each; it checks the status, the
  length and the body of every response and fails loudly otherwise).
  ``wrk`` parses every response and keeps 64 connections busy, so on two
  CPUs it is often the bottleneck; ``httpload`` needs less CPU per
  request, so its rows show the servers apart.

Servers: asyncio's ``SelectorEventLoop``, uvloop, rloop, rsloop and zuvloop
(each when it imports), and ``cevent.Loop`` on every backend of
``cevent.backends()``.
Every row runs every server once per rep, the order rotated from rep to
rep; a ratio is taken within a rep (the same minute of the same machine)
and the report gives the median of the per-rep ratios.  The load
generator's CPU use is recorded: near 100% of its CPU means the client,
not the server, bounded the row, and the report says so.

Timings are for comparison only, never pass/fail tests.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import cbuild
from .loops import PEERS
from .server_proc import BODY

STYLES_ECHO = ("protocol", "streams", "sock")
STYLES_HTTP = ("httptools", "aiohttp")
SIZES = (1024, 10240, 102400)
CONNS = (1, 10, 100)
HTTP_CONNS = 64
#: connections of the httpload rows (the "10 connections" of the targets)
HTTPLOAD_CONNS = 10
REFERENCE = "uvloop"
FLOOR = "C epoll"
#: client CPU use above which the row is reported as client-bound
CLIENT_BOUND = 0.9

# Runs server_proc from the same cevent._bench as this runner, even when
# that is the source tree's copy next to an installed extension.
_BOOT = (
    "import sys, cevent\n"
    "d = sys.argv[1]\n"
    "if d and d not in cevent.__path__:\n"
    "    cevent.__path__.insert(0, d)\n"
    "from cevent._bench.server_proc import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _importable(name: str) -> tuple[bool, str]:
    proc = subprocess.run(
        [sys.executable, "-c",
         f"import {name}, importlib.metadata as m; "
         f"print(getattr({name}, '__version__', None) or m.version({name!r}))"],
        capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["import failed"]
        return False, lines[-1]
    return True, proc.stdout.strip()


#: A --backends name of its own: cevent.Loop on io_uring with its socket
#: transports reading on readiness (CEVENT_ASYNCIO_FALLBACK=ring_reads), to
#: set against the default ring reads in the same run.
READINESS_VARIANT = "io_uring-readiness"


def servers(backends: Sequence[str], kinds: Sequence[str] | None,
            notes: list[str]) -> list[dict[str, Any]]:
    """The Python servers to run: name, loop kind and backend."""
    out: list[dict[str, Any]] = []
    wanted = set(kinds or ("asyncio",) + PEERS + ("cevent.Loop",))
    if "asyncio" in wanted:
        out.append({"name": "asyncio", "loop": "asyncio"})
    for kind in PEERS:
        if kind not in wanted:
            continue
        ok, version = _importable(kind)
        if ok:
            out.append({"name": kind, "loop": kind, "version": version})
        else:
            notes.append(f"{kind} skipped: {version}")
    if "cevent.Loop" in wanted:
        for backend in backends:
            spec: dict[str, Any] = {"name": f"cevent.Loop {backend}",
                                    "loop": "cevent.Loop",
                                    "backend": backend}
            if backend == READINESS_VARIANT:
                # io_uring with the transports' ring reads turned off
                spec["backend"] = "io_uring"
                spec["env"] = {
                    "CEVENT_ASYNCIO_FALLBACK": "ring_reads",
                    "PYTHONWARNINGS":
                        "ignore:cevent.Loop falls back:RuntimeWarning"}
            out.append(spec)
    return out


def rows(styles: Sequence[str], sizes: Sequence[int],
         conns: Sequence[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for style in styles:
        if style in STYLES_HTTP:
            out.append({"kind": "http", "style": style, "client": "wrk",
                        "conns": HTTP_CONNS})
            out.append({"kind": "http", "style": style,
                        "client": "httpload", "conns": HTTPLOAD_CONNS})
            continue
        for size in sizes:
            for n in conns:
                out.append({"kind": "echo", "style": style, "size": size,
                            "conns": n})
    return out


def row_label(row: dict[str, Any]) -> str:
    if row["kind"] == "http":
        if row["client"] == "wrk":
            return f"HTTP {row['style']}, wrk -c{row['conns']}"
        return f"HTTP {row['style']}, C client, {row['conns']} conn"
    size = row["size"]
    text = f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"
    return f"echo {row['style']}, {text}, {row['conns']} conn"


def _pin(cpu: int | None) -> Any:
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})
    return pin


def _cpu_times(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server process: started, waited for (``READY <port>``), stopped."""

    def __init__(self, spec: dict[str, Any], style: str, cpu: int | None,
                 echo_floor: str | None) -> None:
        if spec["name"] == FLOOR:
            assert echo_floor is not None
            cmd = [echo_floor, "0"]
        else:
            cmd = [sys.executable, "-c", _BOOT, _PKG_DIR, spec["loop"],
                   style]
            if spec.get("backend"):
                cmd.append(spec["backend"])
        env = None
        if spec.get("env"):
            env = dict(os.environ, **spec["env"])
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, preexec_fn=_pin(cpu))
        self.stderr = ""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(r"READY (\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(
                f"server {spec['name']} {style} did not start: "
                f"{line!r} {self.stderr[-2000:]}")
        self.port = int(match.group(1))

    def cpu(self) -> float:
        return _cpu_times(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_loadgen(loadgen: str, port: int, row: dict[str, Any],
                duration: float, cpu: int | None) -> dict[str, Any]:
    """One run of ``c/loadgen.c`` (an echo row) or ``c/httpload.c`` (an
    HTTP row, whose server answers :data:`server_proc.BODY`)."""
    warmup = min(0.5, duration / 2)
    what = str(row["size"]) if row["kind"] == "echo" else BODY.decode()
    proc = subprocess.run(
        [loadgen, "127.0.0.1", str(port), str(row["conns"]),
         what, str(duration), str(warmup), "10"],
        capture_output=True, text=True, preexec_fn=_pin(cpu),
        timeout=duration + warmup + 60)
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip()
                                            .splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": f"loadgen exit {proc.returncode}: "
                                      f"{proc.stdout!r} {proc.stderr!r}"}
    size = row["size"] if row["kind"] == "echo" else len(BODY)
    if result.get("ok") and result["verified_bytes"] != \
            result["round_trips"] * size:
        return {"ok": False, "error": "loadgen: not every reply verified"}
    return result


_WRK_LATENCY = re.compile(r"^\s*(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_WRK_SCALE = {"us": 1.0, "ms": 1e3, "s": 1e6}


def run_wrk(port: int, row: dict[str, Any], duration: float,
            cpu: int | None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/"
    base = ["wrk", "-t1", f"-c{row['conns']}"]
    # a short warm-up run, then the measured one
    subprocess.run([*base, f"-d{max(1, int(duration / 4))}s", url],
                   capture_output=True, preexec_fn=_pin(cpu),
                   timeout=duration + 60)
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*base, f"-d{max(1, round(duration))}s", "--latency", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_pin(cpu))
    out, err = proc.communicate(timeout=duration + 60)
    wall = time.monotonic() - t0
    # wrk is the only child waited for in between: its own CPU use
    ru = _children_cpu() - cpu0
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if proc.returncode or not match:
        return {"ok": False, "error": f"wrk exit {proc.returncode}: "
                                      f"{out[-500:]!r} {err[-500:]!r}"}
    result: dict[str, Any] = {"ok": True, "rate": float(match.group(1)),
                              "cpu": ru / wall if wall else 0.0}
    for pct, value, unit in _WRK_LATENCY.findall(out):
        result[f"p{pct}_us"] = float(value) * _WRK_SCALE[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        result["ok"] = False
        result["error"] = "wrk: " + " ".join(
            m.group(0) for m in (bad, errors) if m)
    return result


def _children_cpu() -> float:
    """CPU seconds of every child waited for so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(row: dict[str, Any], spec: dict[str, Any], duration: float,
            cpus: tuple[int | None, int | None], clients: dict[str, str],
            echo_floor: str | None) -> dict[str, Any]:
    """One server process under one load: ``clients`` maps ``loadgen``
    and ``httpload`` to their built programs."""
    server = Server(spec, row["style"], cpus[0], echo_floor)
    try:
        cpu0, t0 = server.cpu(), time.monotonic()
        if row["kind"] == "echo":
            result = run_loadgen(clients["loadgen"], server.port, row,
                                 duration, cpus[1])
        elif row["client"] == "httpload":
            result = run_loadgen(clients["httpload"], server.port, row,
                                 duration, cpus[1])
        else:
            result = run_wrk(server.port, row, duration, cpus[1])
        result["server_cpu"] = ((server.cpu() - cpu0) /
                                max(1e-9, time.monotonic() - t0))
    finally:
        server.stop()
    if server.proc.returncode not in (0, -signal.SIGTERM):
        result = {"ok": False,
                  "error": f"server exit {server.proc.returncode}: "
                           f"{server.stderr[-2000:]}"}
    elif server.stderr.strip() and result.get("ok"):
        # a server that logged errors (e.g. an exception in a callback)
        result["server_stderr"] = server.stderr[-2000:]
    return result


def run(styles: Sequence[str] = STYLES_ECHO + STYLES_HTTP,
        sizes: Sequence[int] = SIZES, conns: Sequence[int] = CONNS,
        backends: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None, reps: int = 3,
        duration: float = 2.0, floor: bool = True,
        progress: Any = None) -> dict[str, Any]:
    """Run the benchmark; returns the results (see :func:`summarise`)."""
    import cevent

    notes: list[str] = []
    backends = list(backends or cevent.backends())
    specs = servers(backends, kinds, notes)
    table = rows(styles, sizes, conns)
    if (any(r.get("client") == "wrk" for r in table)
            and not shutil.which("wrk")):
        notes.append("HTTP rows under wrk skipped: wrk is not installed "
                     "(Debian: apt-get install wrk)")
        table = [r for r in table if r.get("client") != "wrk"]
    for style in ("httptools", "aiohttp"):
        if any(r["style"] == style for r in table):
            ok, why = _importable(style)
            if not ok:
                notes.append(f"HTTP {style} row skipped: {why}")
                table = [r for r in table if r["style"] != style]
    clients = {"loadgen": cbuild.build("loadgen"),
               "httpload": cbuild.build("httpload")}
    echo_floor = cbuild.build("echo_epoll") if floor else None
    ncpu = len(os.sched_getaffinity(0))
    cpus: tuple[int | None, int | None]
    if ncpu >= 2:
        mine = sorted(os.sched_getaffinity(0))
        cpus = (mine[0], mine[1])
    else:
        cpus = (None, None)
        notes.append("one CPU only: server and load generator share it")

    runs: list[dict[str, Any]] = []
    jobs = []
    for row in table:
        row_specs = list(specs)
        if row["kind"] == "echo" and echo_floor:
            row_specs.append({"name": FLOOR})
        for rep in range(reps):
            k = rep % len(row_specs)
            for spec in row_specs[k:] + row_specs[:k]:
                jobs.append((row, rep, spec))
    for i, (row, rep, spec) in enumerate(jobs):
        if progress:
            progress(i, len(jobs),
                     f"{row_label(row)} rep {rep + 1} {spec['name']}")
        try:
            result = measure(row, spec, duration, cpus, clients, echo_floor)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            result = {"ok": False, "error": str(exc)}
        runs.append({"row": row, "rep": rep, "server": spec["name"],
                     "result": result})
    return {"environment": {
                "python": sys.version.split()[0],
                "cpus": list(cpus), "duration": duration, "reps": reps,
                "servers": specs, "notes": notes,
                "loadavg": list(os.getloadavg())},
            "rows": table, "runs": runs,
            "summary": summarise(table, runs)}


def summarise(table: Sequence[dict[str, Any]],
              runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row and server: the median rate, the median of the per-rep
    ratios to uvloop and to the C floor, the client's and the server's
    median CPU use."""
    out = []
    for row in table:
        mine = [r for r in runs if r["row"] is row]
        by_rep: dict[int, dict[str, dict[str, Any]]] = {}
        for r in mine:
            if r["result"].get("ok"):
                by_rep.setdefault(r["rep"], {})[r["server"]] = r["result"]
        names = list(dict.fromkeys(r["server"] for r in mine))
        entry: dict[str, Any] = {"row": row, "label": row_label(row),
                                 "servers": {}}
        for name in names:
            got = [rep[name] for rep in by_rep.values() if name in rep]
            failed = [r["result"].get("error") for r in mine
                      if r["server"] == name and not r["result"].get("ok")]
            cell: dict[str, Any] = {"failed": failed}
            if got:
                cell["rate"] = statistics.median(g["rate"] for g in got)
                cell["client_cpu"] = statistics.median(
                    g.get("cpu", 0.0) for g in got)
                cell["server_cpu"] = statistics.median(
                    g.get("server_cpu", 0.0) for g in got)
                if "p99_us" in got[0]:
                    cell["p50_us"] = statistics.median(g["p50_us"]
                                                       for g in got)
                    cell["p99_us"] = statistics.median(g["p99_us"]
                                                       for g in got)
                for ref, key in ((REFERENCE, "x_ref"), (FLOOR, "of_floor")):
                    ratios = [rep[name]["rate"] / rep[ref]["rate"]
                              for rep in by_rep.values()
                              if name in rep and ref in rep
                              and rep[ref]["rate"]]
                    if ratios:
                        cell[key] = statistics.median(ratios)
            entry["servers"][name] = cell
        out.append(entry)
    return out


def render_text(result: dict[str, Any]) -> str:
    env = result["environment"]
    names = [s["name"] for s in env["servers"]]
    if any(r["kind"] == "echo" for r in result["rows"]):
        names.append(FLOOR)
    lines = [
        "Server benchmark: each server in its own process pinned to CPU "
        f"{env['cpus'][0]}, the load generator on CPU {env['cpus'][1]}; "
        f"{env['reps']} reps of {env['duration']} s, order rotated; "
        f"Python {env['python']}, load average {env['loadavg']}",
    ]
    for note in env["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append("Ratio to uvloop (median of per-rep ratios); "
                 "[% of the C epoll server]; * = the load generator used "
                 f">= {CLIENT_BOUND:.0%} of its CPU (client-bound)")
    width = max(14, *(len(n) for n in names))
    head = f"{'row':<34}" + "".join(f"{n:>{width + 2}}" for n in names)
    lines.append(head)
    lines.append("-" * len(head))
    for entry in result["summary"]:
        cells = []
        for name in names:
            cell = entry["servers"].get(name)
            if cell is None:
                text = ""
            elif "rate" not in cell:
                text = "FAILED"
            else:
                ref = cell.get("x_ref")
                text = f"{ref:.2f}x" if ref is not None else \
                    f"{cell['rate']:.0f}/s"
                if name != FLOOR and "of_floor" in cell:
                    text += f" [{cell['of_floor']:.0%}]"
                if cell.get("client_cpu", 0) >= CLIENT_BOUND:
                    text += "*"
            cells.append(f"{text:>{width + 2}}")
        lines.append(f"{entry['label']:<34}" + "".join(cells))
    lines.append("")
    lines.append("Rates (round trips or requests per second, median), "
                 "client CPU / server CPU, p99 latency:")
    for entry in result["summary"]:
        parts = []
        for name in names:
            cell = entry["servers"].get(name)
            if cell and "rate" in cell:
                part = (f"{name} {cell['rate']:,.0f}/s "
                        f"({cell['client_cpu']:.0%}/{cell['server_cpu']:.0%}")
                if "p99_us" in cell:
                    part += f", p99 {cell['p99_us']:.0f} us"
                parts.append(part + ")")
        lines.append(f"  {entry['label']}: " + "; ".join(parts))
    failures = [(e["label"], n, c["failed"]) for e in result["summary"]
                for n, c in e["servers"].items() if c["failed"]]
    if failures:
        lines.append("")
        lines.append("FAILED runs:")
        for label, name, errors in failures:
            lines.append(f"  {label} / {name}: {errors[0]}")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kK](?:i?B)?)?", text.strip())
    if not match:
        raise ValueError(f"not a message size: {text!r} (e.g. 1024, 10k)")
    return int(match.group(1)) * (1024 if match.group(2) else 1)


def main(args: Any, out_dir: str) -> int:
    """``--only servers`` of the benchmark's command line."""
    styles = args.styles or list(STYLES_ECHO + STYLES_HTTP)
    sizes = [parse_size(s) for s in args.sizes] if args.sizes else \
        ([1024] if args.quick else list(SIZES))
    conns = args.conns or ([10] if args.quick else list(CONNS))
    duration = args.duration or (1.0 if args.quick else 2.0)
    kinds = args.loops or ["asyncio", *PEERS, "cevent.Loop"]

    def progress(i: int, n: int, what: str) -> None:
        print(f"[{i + 1}/{n}] {what}", file=sys.stderr, flush=True)

    result = run(styles=styles, sizes=sizes, conns=conns,
                 backends=args.backends, kinds=kinds, reps=args.reps,
                 duration=duration * args.size, progress=progress)
    text = render_text(result)
    print(text)
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "servers-" + time.strftime("%Y%m%d-%H%M%S"))
    with open(base + ".txt", "w") as f:
        f.write(text + "\n")
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"written: {base}.txt, {base}.json")
    failed = sum(1 for r in result["runs"] if not r["result"].get("ok"))
    if failed:
        print(f"{failed} run(s) failed (see above and the JSON)",
              file=sys.stderr)
        return 1
    return 0
