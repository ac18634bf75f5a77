"""The subprocess side: run one workload on one loop, print one JSON line.

    python -m cevent._bench.worker '{"workload": ..., "loop": {...},
                                     "params": {...}}'

The runner (:mod:`.cli`) starts one fresh interpreter per workload, loop
and rep, so no loop inherits another's heap, threads or CPU affinity.  The
last line of stdout is ``{"ok": true, "rows": [...]}`` or ``{"ok": false,
"error": "..."}``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from typing import Any

from .loops import is_asyncio_level, new_asyncio_loop
from .workloads import WORKLOADS


def run(job: dict[str, Any]) -> list[dict[str, Any]]:
    module = WORKLOADS[job["workload"]]
    spec = job["loop"]
    p = job["params"]
    if is_asyncio_level(spec):
        rows: list[dict[str, Any]] = module.run_asyncio(
            lambda: new_asyncio_loop(spec), p)
        return rows
    if spec.get("idle_fds"):
        p = dict(p, idle_fds=spec["idle_fds"])
    rows = module.run_native(spec["backend"], spec.get("poll_max_ns", 0), p)
    return rows


def main(arg: str | None = None) -> int:
    job = json.loads(arg if arg is not None else sys.argv[1])
    try:
        rows = run(job)
        result = {"ok": True, "rows": rows, "pid": os.getpid(),
                  "python": platform.python_version()}
    except BaseException as exc:  # noqa: BLE001 - reported to the runner
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
