"""Smoke test of the benchmark harness (Lib/cevent/_bench): the CLI runs one
workload with tiny sizes and writes valid JSON.  Timings are never checked
(they are for comparison only, never pass/fail)."""

import glob
import json
import os
import subprocess
import sys

import pytest

import cevent


def _run_bench(tmp_path, *extra):
    cmd = [sys.executable, "-m", "cevent", "bench", "--only", "bh",
           "--size", "0.002", "--reps", "2", "--no-png",
           "--out", str(tmp_path), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = glob.glob(os.path.join(tmp_path, "*.json"))
    assert len(files) == 1, os.listdir(tmp_path)
    with open(files[0]) as f:
        return json.load(f), proc.stdout


def test_bench_cli_writes_json(tmp_path):
    data, out = _run_bench(tmp_path)
    assert "== bh:" in out and "== targets" in out
    env = data["environment"]
    assert env["reps"] == 2
    assert env["backends"] == list(cevent.backends())
    groups = data["summary"]["bh"]["groups"]
    assert set(groups) == {"chain", "batch"}
    loops = {col["loop"] for col in groups["chain"]["columns"]}
    assert "asyncio" in loops
    assert {f"cevent {b}" for b in cevent.backends()} <= loops
    for group in groups.values():
        for col in group["columns"]:
            values = col["values"]["cb_per_s"]
            assert len(values) == 2
            assert all(isinstance(v, float) and v > 0 for v in values)
            assert col["ratio_asyncio"]["cb_per_s"] > 0
    ids = {t["id"] for t in data["targets"]}
    assert {"bh_chain", "bh_batch"} <= ids
    assert all(r["result"]["ok"] for r in data["runs"])
    assert not glob.glob(os.path.join(tmp_path, "*.png"))


def test_bench_help():
    proc = subprocess.run([sys.executable, "-m", "cevent", "bench",
                           "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    assert "--quick" in proc.stdout and "--only" in proc.stdout


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--reps"]])
def test_bench_bad_arguments(argv):
    proc = subprocess.run([sys.executable, "-m", "cevent", "bench", *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
