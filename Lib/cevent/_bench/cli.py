"""``python -m cevent bench`` / ``python Benchmarks/bench.py``.

    python -m cevent bench [--quick] [--only WORKLOAD ...] [--out DIR]
                           [--reps N] [--size F] [--backends B ...]
                           [--no-png] [--timeout S]

Runs every workload (``wakeup``, ``fd``, ``bh``, ``timers``, ``idle``,
``tcp``) on asyncio's default loop, uvloop, cevent.Loop (when it exists)
and bare cevent contexts (each backend of ``cevent.backends()``, polling
off, and on with ``set_poll_params(32768)`` where it matters), each in a
fresh subprocess per workload, loop and rep; reps are interleaved (rep 1
of every loop, then rep 2, ...) so the ratios compare the same moments.
Prints the table (median [min, max] of the reps, ratios to asyncio and
uvloop = median of the per-rep ratios), the targets and whether each is
met, and writes ``<out>/<timestamp>.{txt,json,png}``.

``--only servers`` runs the server benchmark instead (each loop serving
echo and HTTP in its own process against a C load generator and wrk; see
:mod:`.servers`), with ``--styles``, ``--sizes``, ``--conns`` and
``--duration``.

Timings are for comparison only, never pass/fail tests; the machine may be
shared: the load average is recorded at the start and the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from . import loops as loops_mod
from . import report
from .workloads import WORKLOADS

# Runs the worker from the same cevent._bench as this runner, even when
# that is the source tree's copy next to an installed extension.
_BOOT = (
    "import sys, cevent\n"
    "d = sys.argv[1]\n"
    "if d and d not in cevent.__path__:\n"
    "    cevent.__path__.insert(0, d)\n"
    "from cevent._bench.worker import main\n"
    "sys.exit(main(sys.argv[2]))\n"
)
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_out_dir() -> str:
    """``Benchmarks/results`` when run from a source tree (the current
    directory or the one this file lives in), else ``./bench-results``."""
    for top in (os.getcwd(), os.path.dirname(os.path.dirname(_PKG_PARENT))):
        if os.path.isfile(os.path.join(top, "Benchmarks", "bench.py")):
            return os.path.join(top, "Benchmarks", "results")
    return os.path.join(os.getcwd(), "bench-results")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="cevent vs asyncio vs uvloop, side by side "
                    "(the workloads of Lib/cevent/_bench/workloads)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (about 3 minutes on 2 cores)")
    parser.add_argument("--only", nargs="+", metavar="WORKLOAD",
                        choices=sorted(WORKLOADS) + ["servers"],
                        help=f"run only these ({', '.join(WORKLOADS)}); "
                             f"'servers' runs the server benchmark "
                             f"(cevent._bench.servers), which is not part "
                             f"of the default set")
    parser.add_argument("--out", metavar="DIR",
                        help="result directory (default: "
                             "Benchmarks/results in a source tree, else "
                             "./bench-results)")
    parser.add_argument("--reps", type=int, default=3,
                        help="reps per loop (default 3)")
    parser.add_argument("--size", type=float, default=1.0,
                        help="scale every sample count / duration "
                             "(e.g. 0.01 for a smoke test)")
    parser.add_argument("--backends", nargs="+", metavar="B",
                        help="cevent backends (default: cevent.backends()); "
                             "the server benchmark also takes "
                             "io_uring-readiness: io_uring with the socket "
                             "transports reading on readiness, not through "
                             "the ring")
    parser.add_argument("--loops", nargs="+", metavar="KIND",
                        choices=["asyncio", *loops_mod.PEERS, "cevent.Loop",
                                 "cevent"],
                        help="loop kinds to run (default: all available; "
                             "rloop, rsloop, zuvloop: the server benchmark "
                             "only)")
    servers = parser.add_argument_group(
        "server benchmark (--only servers)")
    servers.add_argument("--styles", nargs="+", metavar="STYLE",
                         choices=["protocol", "streams", "sock",
                                  "httptools", "aiohttp"],
                         help="server styles (default: all)")
    servers.add_argument("--sizes", nargs="+", metavar="SIZE",
                         help="echo message sizes, e.g. 1k 10k 100k "
                              "(default: 1k 10k 100k; --quick: 1k)")
    servers.add_argument("--conns", nargs="+", type=int, metavar="N",
                         help="echo connections (default: 1 10 100; "
                              "--quick: 10)")
    servers.add_argument("--duration", type=float, metavar="S",
                         help="seconds measured per run (default 2; "
                              "--quick: 1)")
    parser.add_argument("--no-png", action="store_true",
                        help="do not draw the chart")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds before one subprocess is killed")
    return parser


class Progress:
    """A one-line progress bar on stderr (one line per step when stderr is
    not a terminal)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream
        self.tty = stream.isatty()

    def _fmt(self, seconds: float) -> str:
        seconds = int(seconds)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def show(self, what: str) -> None:
        width = 24
        filled = width * self.done // max(1, self.total)
        elapsed = time.monotonic() - self.start
        eta = ""
        if self.done:
            eta = f" eta {self._fmt(elapsed / self.done * (self.total - self.done))}"
        line = (f"[{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total} {self._fmt(elapsed)}{eta} {what}")
        if self.tty:
            self.stream.write("\r\033[K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self) -> None:
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_job(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-c", _BOOT, _PKG_PARENT, json.dumps(job)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s",
                "seconds": time.monotonic() - t0}
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        result = {"ok": False,
                  "error": f"exit {proc.returncode}, no result: "
                           f"{proc.stderr.strip()[-2000:]}"}
    if not result.get("ok") and proc.stderr.strip():
        result["stderr"] = proc.stderr.strip()[-4000:]
    result["seconds"] = time.monotonic() - t0
    return result


def environment(args: argparse.Namespace, backends: Sequence[str],
                uv: tuple[bool, str], cl: tuple[bool, str]) -> dict[str, Any]:
    import cevent

    return {
        "cevent": cevent.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "backends": list(backends),
        "loop_backend": loops_mod.cevent_loop_default(list(backends)),
        "unavailable_backends": cevent.unavailable_backends(),
        "uvloop": uv[1] if uv[0] else None,
        "uvloop_note": None if uv[0] else uv[1],
        "cevent_loop": cl[0],
        "cevent_loop_note": cl[1],
        "loadavg_start": list(os.getloadavg()),
        "command": [os.path.basename(sys.executable)] + sys.argv,
        "quick": args.quick,
        "reps": args.reps,
        "size": args.size,
    }


def plan(args: argparse.Namespace, backends: Sequence[str],
         uv: tuple[bool, str], cl: tuple[bool, str]) -> Any:
    kinds = set(args.loops or ["asyncio", "uvloop", "cevent.Loop", "cevent"])
    names = args.only or list(WORKLOADS)
    jobs = []
    for name in names:
        module = WORKLOADS[name]
        specs = loops_mod.all_specs(
            backends if "cevent" in kinds and not module.ASYNCIO_ONLY else (),
            module.POLL_MATTERS,
            include_uvloop=uv[0] and "uvloop" in kinds,
            include_cevent_loop=cl[0] and "cevent.Loop" in kinds,
            epoll_idle_fds=getattr(module, "EPOLL_IDLE_FDS", 0),
            loop_backends=backends)
        if "asyncio" not in kinds:
            specs = [s for s in specs if s["kind"] != "asyncio"]
        p = module.params(args.quick, args.size)
        for rep in range(args.reps):
            for spec in specs:
                jobs.append({"workload": name, "loop": spec, "params": p,
                             "rep": rep})
    return names, jobs


def main(argv: Sequence[str] | None = None, prog: str | None = None,
         default_out: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    import cevent

    backends = list(args.backends or cevent.backends())
    usable = list(cevent.backends())
    if "io_uring" in usable and args.only == ["servers"]:
        from .servers import READINESS_VARIANT
        usable.append(READINESS_VARIANT)
    unknown = [b for b in backends if b not in usable]
    if unknown:
        print(f"unavailable backends: {unknown} (usable: {usable})",
              file=sys.stderr)
        return 2
    uv = loops_mod.uvloop_status()
    cl = loops_mod.cevent_loop_status()
    notes = []
    if not uv[0]:
        notes.append(f"uvloop skipped: {uv[1]}")
    if not cl[0]:
        notes.append(f"cevent.Loop skipped: {cl[1]}; the asyncio-level "
                     f"workloads (call_soon chain/batch, call_later, "
                     f"call_soon_threadsafe, TCP echo) run on asyncio and "
                     f"uvloop only")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    out_dir = args.out or default_out or default_out_dir()
    if args.only and "servers" in args.only:
        from . import servers
        args.only = [n for n in args.only if n != "servers"]
        if not args.only:
            return servers.main(args, out_dir)
        rc = servers.main(args, out_dir)
    else:
        rc = 0

    env = environment(args, backends, uv, cl)
    names, jobs = plan(args, backends, uv, cl)
    progress = Progress(len(jobs))
    results = []
    for job in jobs:
        what = (f"{job['workload']} rep {job['rep'] + 1}/{args.reps} "
                f"{loops_mod.label(job['loop'])}")
        progress.show(what)
        result = run_job(job, args.timeout)
        if not result.get("ok"):
            progress.finish()
            print(f"error: {what}: {result.get('error')}", file=sys.stderr)
        results.append({"job": job, "result": result})
        progress.step()
    progress.show("done")
    progress.finish()
    env["loadavg_end"] = list(os.getloadavg())
    env["seconds"] = time.monotonic() - progress.start
    env["notes"] = notes

    summary = report.summarise(names, results)
    targets = report.evaluate_targets(summary, backends)
    text = report.render_text(env, names, summary, targets)
    print(text)

    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(out_dir, stamp)
    with open(base + ".txt", "w") as f:
        f.write(text + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"environment": env, "summary": summary,
                   "targets": targets, "runs": results}, f, indent=1,
                  default=str)
    written = [base + ".txt", base + ".json"]
    if not args.no_png:
        png, why = report.render_png(base + ".png", env, summary, targets)
        if png:
            written.append(png)
        else:
            print(f"note: no chart: {why}", file=sys.stderr)
    print("written: " + ", ".join(written))
    failed = sum(1 for r in results if not r["result"].get("ok"))
    if failed:
        print(f"{failed} run(s) failed (see the JSON)", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
