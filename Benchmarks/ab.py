"""Compare two installs of cevent, A (before) and B (after), with
``python -m cevent bench``, alternating them run by run in one sitting.

    python Benchmarks/ab.py --a /path/to/venv-a/bin/python \
        --b /path/to/venv-b/bin/python --rounds 5 -- --loops cevent.Loop

Everything after ``--`` goes to ``python -m cevent bench`` (for example
``--only servers --loops cevent.Loop --conns 10``).  Each round runs A
then B (B then A on odd rounds, so neither always goes first) with
``--reps 1``; each row's value is the median over the rounds of its
primary metric, and the ratio says how B compares with A: above 1.0 is
B faster (for a metric where lower is better, A/B).  The table goes to
stdout and, as JSON, to ``--json``.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_bench(python, bench_args, out_dir):
    """One ``python -m cevent bench`` run; the JSON it wrote."""
    os.makedirs(out_dir, exist_ok=True)
    before = set(glob.glob(os.path.join(out_dir, "*.json")))
    cmd = [python, "-m", "cevent", "bench", "--reps", "1", "--no-png",
           "--out", out_dir] + bench_args
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   cwd=tempfile.gettempdir())
    new = sorted(set(glob.glob(os.path.join(out_dir, "*.json"))) - before)
    if not new:
        sys.exit(f"ab: {' '.join(cmd)} wrote no JSON")
    with open(new[-1]) as f:
        return json.load(f)


def rows_of(result):
    """{row label: (value, higher_is_better)} of one run."""
    rows = {}
    summary = result["summary"]
    if isinstance(summary, list):                       # the servers
        for row in summary:
            for server, got in row["servers"].items():
                if server.startswith("cevent") and got.get("rate"):
                    rows[f"{row['label']} | {server}"] = (got["rate"], True)
        return rows
    for workload, data in summary.items():
        for group in data["groups"].values():
            primary = group["primary"]
            higher = {m[0]: m[2] == "higher" for m in group["metrics"]}
            for col in group["columns"]:
                value = col["median"].get(primary)
                if value is None or not col["loop"].startswith("cevent"):
                    continue
                label = (f"{workload}: {group['title']} | {col['loop']} "
                         f"{col.get('flavour', '')}").rstrip()
                rows[label] = (value, higher[primary])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="python of install A")
    parser.add_argument("--b", required=True, help="python of install B")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None,
                        help="directory for the runs' results")
    parser.add_argument("--json", default=None, help="write the table here")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    out = args.out or tempfile.mkdtemp(prefix="cevent-ab-")
    values = {"a": {}, "b": {}}
    higher = {}
    for rnd in range(args.rounds):
        order = ("a", "b") if rnd % 2 == 0 else ("b", "a")
        for which in order:
            python = args.a if which == "a" else args.b
            result = run_bench(python, bench_args,
                               os.path.join(out, which))
            for label, (value, hib) in rows_of(result).items():
                values[which].setdefault(label, []).append(value)
                higher[label] = hib
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    table = []
    for label in sorted(set(values["a"]) & set(values["b"])):
        a = statistics.median(values["a"][label])
        b = statistics.median(values["b"][label])
        if not a or not b:
            continue
        ratio = b / a if higher[label] else a / b
        table.append({"row": label, "a": a, "b": b, "b_vs_a": ratio,
                      "n": min(len(values["a"][label]),
                               len(values["b"][label]))})
    width = max((len(r["row"]) for r in table), default=10)
    print(f"{'row':<{width}}  {'A (median)':>12}  {'B (median)':>12}  "
          f"{'B vs A':>6}  n")
    for r in table:
        print(f"{r['row']:<{width}}  {r['a']:>12.4g}  {r['b']:>12.4g}  "
              f"{r['b_vs_a']:>6.3f}  {r['n']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "bench_args": bench_args,
                       "rows": table}, f, indent=1)


if __name__ == "__main__":
    main()
