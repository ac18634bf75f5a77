"""Profile one server of the server benchmark under its load.

    python Benchmarks/profile_server.py LOOP STYLE [--backend B]
        [--size 10k] [--conns 10] [--duration 5] [--out DIR]

LOOP and STYLE are those of ``python -m cevent._bench.server_proc``
(``cevent.Loop``, ``uvloop``, ``rloop``, ...; ``protocol``, ``streams``,
``sock``, ``httptools``, ``aiohttp``).  The server runs pinned to CPU 0
with Python's perf support on (``PYTHONPERFSUPPORT=1``, 3.12+, so Python
functions show by name), and its load on CPU 1, as in the benchmark;
``perf record -g`` samples the server process while the load runs.  The
report (self time by shared object and symbol, the top entries) is printed
and written with the raw data under ``--out``.  Needs ``perf`` (Debian:
linux-perf) and the installed cevent (with its benchmark peers).
"""

import argparse
import os
import subprocess
import sys
import threading

from cevent._bench import cbuild, servers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("loop")
    parser.add_argument("style")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--size", default="1k")
    parser.add_argument("--conns", type=int, default=None,
                        help="default: 10 (echo), 64 (HTTP)")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--out", default="perf-out")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    http = args.style in servers.STYLES_HTTP
    row = {"kind": "http" if http else "echo", "style": args.style,
           "size": servers.parse_size(args.size),
           "conns": args.conns or (64 if http else 10),
           "client": "wrk"}
    name = f"{args.loop}{'-' + args.backend if args.backend else ''}"
    tag = f"{name}-{args.style}-{args.size}-{row['conns']}"
    spec = {"name": name, "loop": args.loop, "backend": args.backend,
            "env": {"PYTHONPERFSUPPORT": "1"}}
    server = servers.Server(spec, args.style, 0, None)
    data = os.path.join(args.out, tag + ".data")
    try:
        result = {}

        def load():
            if http:
                result.update(servers.run_wrk(server.port, row,
                                              args.duration + 1, 1))
            else:
                result.update(servers.run_loadgen(
                    cbuild.build("loadgen"), server.port, row,
                    args.duration + 1, 1))

        loader = threading.Thread(target=load)
        loader.start()
        subprocess.run(["perf", "record", "-g", "-q", "-o", data,
                        "-p", str(server.proc.pid), "--", "sleep",
                        str(args.duration)], check=True,
                       stderr=subprocess.DEVNULL)
        loader.join()
    finally:
        server.stop()
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--stdio",
         "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.3"],
        capture_output=True, text=True).stdout
    lines = [ln for ln in report.splitlines()
             if ln.strip() and not ln.startswith("#")]
    by_dso = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--stdio",
         "--sort", "dso", "-g", "none", "--percent-limit", "0.5"],
        capture_output=True, text=True).stdout
    # Python functions (perf map entries, which exist only while this
    # process's /tmp does), with the time spent under them.
    python = subprocess.run(
        ["perf", "report", "-i", data, "--children", "--stdio",
         "--sort", "sym", "-g", "none"],
        capture_output=True, text=True).stdout
    py_lines = [ln for ln in python.splitlines() if "py::" in ln]
    text = (f"{tag}: {result.get('rate', 0):.0f} req/s "
            f"(ok={result.get('ok')})\n"
            + "\n".join(ln for ln in by_dso.splitlines()
                        if ln.strip() and not ln.startswith("#"))
            + "\n-- self time by symbol\n" + "\n".join(lines[:args.top])
            + "\n-- Python functions (children included)\n"
            + "\n".join(py_lines[:args.top]))
    with open(os.path.join(args.out, tag + ".txt"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
