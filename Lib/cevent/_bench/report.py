"""Aggregation (median [min, max] of the reps, per-rep ratios), the targets
of issues 7 and 8, the text table and the PNG chart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

import statistics

from . import loops as loops_mod
from .workloads import WORKLOADS

# ---- aggregation -------------------------------------------------------------

def _median(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(names: list[str], results: list[dict[str, Any]]) -> Any:
    """``{workload: {group: {..., "columns": [...]}}}``; each column is one
    (loop, flavour) with its per-rep values, median/min/max and the median
    of the per-rep ratios to asyncio and to uvloop."""
    summary = {}
    for name in names:
        module = WORKLOADS[name]
        reps = 1 + max((r["job"]["rep"] for r in results
                        if r["job"]["workload"] == name), default=0)
        groups = {}
        for group, meta in module.GROUPS.items():
            groups[group] = {"title": meta["title"],
                             "metrics": [list(m) for m in meta["metrics"]],
                             "primary": meta["primary"], "columns": []}
        errors = []
        columns: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in results:
            job, res = r["job"], r["result"]
            if job["workload"] != name:
                continue
            label = loops_mod.label(job["loop"])
            if not res.get("ok"):
                errors.append(f"{label} rep {job['rep'] + 1}: "
                              f"{res.get('error')}")
                continue
            for row in res["rows"]:
                g = groups.get(row["group"])
                if g is None:
                    continue
                key = (row["group"], label, row["flavour"])
                col = columns.get(key)
                if col is None:
                    col = {"loop": label, "spec": job["loop"],
                           "flavour": row["flavour"],
                           "values": {m[0]: [None] * reps
                                      for m in g["metrics"]},
                           "backend_used": []}
                    columns[key] = col
                    g["columns"].append(col)
                for metric, value in row["metrics"].items():
                    if metric in col["values"]:
                        col["values"][metric][job["rep"]] = value
                used = row.get("info", {}).get("backend_used")
                if used and used not in col["backend_used"]:
                    col["backend_used"].append(used)
        for g in groups.values():
            order = {"asyncio": 0, "uvloop": 1, "cevent.Loop": 2}
            g["columns"].sort(key=lambda c: order.get(
                c["loop"], 3 if c["spec"]["kind"] == "cevent.Loop" else 4))
            refs = {ref: next((c for c in g["columns"] if c["loop"] == ref),
                              None) for ref in loops_mod.REFERENCES}
            for col in g["columns"]:
                col["median"], col["min"], col["max"] = {}, {}, {}
                for metric, values in col["values"].items():
                    present = [v for v in values if v is not None]
                    col["median"][metric] = _median(present)
                    col["min"][metric] = min(present) if present else None
                    col["max"][metric] = max(present) if present else None
                for ref, ref_col in refs.items():
                    ratios: dict[str, float | None] = {}
                    for metric, values in col["values"].items():
                        if ref_col is None:
                            ratios[metric] = None
                            continue
                        per_rep = []
                        for v, b in zip(values, ref_col["values"][metric]):
                            if v is not None and b not in (None, 0):
                                per_rep.append(v / b)
                        ratios[metric] = _median(per_rep)
                    col[f"ratio_{ref}"] = ratios
        summary[name] = {"title": module.TITLE, "groups": groups,
                         "errors": errors, "reps": reps}
    return summary


# ---- targets -----------------------------------------------------------------

def _cevent_cols(summary: dict[str, Any], workload: str, group: str,
                 poll: Any = None, flavours: Any = None, kind: Any = 'cevent'
                 ) -> Any:
    g = summary.get(workload, {}).get("groups", {}).get(group)
    if g is None:
        return []
    out = []
    for col in g["columns"]:
        spec = col["spec"]
        if spec["kind"] != kind:
            continue
        if poll is not None and bool(spec.get("poll_max_ns")) != poll:
            continue
        if flavours is not None and col["flavour"] not in flavours:
            continue
        out.append(col)
    return out


def _check(value: Any, op: str, bound: Any) -> Any:
    if value is None:
        return None
    return value <= bound if op == "<=" else value >= bound


def evaluate_targets(summary: dict[str, Any], backends: Sequence[str]) -> Any:
    """The targets of issues 7 and 8, one row per cevent backend (and flavour);
    ``met`` is True/False, or None when not measured in this run."""
    rows = []

    def ratio_rows(tid: str, text: str, workload: str, group: str, metric: str,
                   ref: Any, op: str, bound: Any, poll: Any = None,
                   flavours: Any = None, kind: Any = 'cevent') -> None:
        cols = _cevent_cols(summary, workload, group, poll, flavours, kind)
        if not cols and workload in summary:
            rows.append({"id": tid, "target": text, "loop": "-",
                         "flavour": "", "value": None, "op": op,
                         "bound": bound, "ref": ref, "met": None})
        for col in cols:
            value = col[f"ratio_{ref}"].get(metric)
            rows.append({"id": tid, "target": text, "loop": col["loop"],
                         "flavour": col["flavour"], "value": value,
                         "op": op, "bound": bound, "ref": ref,
                         "met": _check(value, op, bound)})

    ratio_rows("wakeup_cross_poll",
               "cross-CPU wake-up p50, set_poll_params(32768)", "wakeup",
               "cross_cpu", "p50_us", "uvloop", "<=", 0.1, poll=True,
               flavours=("oneshot", "bh", "notify"))
    ratio_rows("wakeup_same_nopoll", "same-CPU wake-up p50, polling off",
               "wakeup", "same_cpu", "p50_us", "asyncio", "<=", 0.6,
               poll=False, flavours=("oneshot", "bh", "notify"))
    ratio_rows("fd", "fd ping-pong round trips/s", "fd", "pingpong",
               "rtt_per_s", "uvloop", ">=", 1.3, poll=False)
    ratio_rows("bh_chain", "BH chain vs call_soon chain", "bh", "chain",
               "cb_per_s", "uvloop", ">=", 2.0, poll=False)
    ratio_rows("bh_batch", "BH batch of 1000 vs call_soon batch", "bh",
               "batch", "cb_per_s", "uvloop", ">=", 1.5, poll=False)
    ratio_rows("timers", "100k timers throughput", "timers", "dense",
               "timers_per_s", "uvloop", ">=", 2.0, poll=False)

    # Issue 8: cevent.Loop (every backend; polling on too where it ran)
    # at least as fast as uvloop.
    for group, text in (("chain", "call_soon chain"),
                        ("batch", "call_soon batch of 1000")):
        ratio_rows(f"loop_{group}", f"cevent.Loop {text}", "bh", group,
                   "cb_per_s", "uvloop", ">=", 1.0, kind="cevent.Loop")
    ratio_rows("loop_timers", "cevent.Loop call_later 100k", "timers",
               "dense", "timers_per_s", "uvloop", ">=", 1.0,
               kind="cevent.Loop")
    for group, text in (("same_cpu", "same CPU"), ("cross_cpu", "cross CPU")):
        ratio_rows(f"loop_wakeup_{group}",
                   f"cevent.Loop call_soon_threadsafe p50, {text}",
                   "wakeup", group, "p50_us", "uvloop", "<=", 1.0,
                   kind="cevent.Loop")
    for api in ("protocols", "streams"):
        for clients in (1, 50):
            ratio_rows(f"loop_tcp_{api}_c{clients}",
                       f"cevent.Loop TCP echo, {api}, {clients} "
                       f"client{'s' if clients > 1 else ''}", "tcp",
                       f"{api}_c{clients}", "msg_per_s", "uvloop", ">=",
                       1.0, kind="cevent.Loop")

    # Never early: no timer fired before its deadline in any rep.
    if "timers" in summary:
        for col in _cevent_cols(summary, "timers", "dense"):
            sparse = next((c for c in _cevent_cols(summary, "timers",
                                                   "sparse")
                           if c["loop"] == col["loop"]), None)
            early = [v for v in col["values"]["early"] if v is not None]
            mins = []
            if sparse is not None:
                early += [v for v in sparse["values"]["early"]
                          if v is not None]
                mins = [v for v in sparse["values"]["late_min_us"]
                        if v is not None]
            total = sum(early) if early else None
            rows.append({"id": "timers_early",
                         "target": "timers never early (dense + sparse, "
                                   "all reps; value = early timers)",
                         "loop": col["loop"], "flavour": "",
                         "value": total, "op": "==", "bound": 0,
                         "ref": None,
                         "min_lateness_us": min(mins) if mins else None,
                         "met": None if total is None else total == 0})

    if "idle" in summary:
        groups = summary["idle"]["groups"]
        by_loop: dict[str, Any] = {}
        for group in groups:
            for col in _cevent_cols(summary, "idle", group,
                                    flavours=("poll(False)",)):
                by_loop.setdefault(col["loop"], {})[group] = col
        for label, cols in by_loop.items():
            worst, worst_n = None, None
            # poll() is O(N) by design (QEMU leaves it for epoll at 64
            # fds): the poll backend is held to the target up to N = 10.
            on_poll = label.split()[1] == "poll"
            for group, col in cols.items():
                if on_poll and group not in ("n1", "n10"):
                    continue
                r = col["ratio_uvloop"].get("ns_per_iter")
                if r is not None and (worst is None or r > worst):
                    worst, worst_n = r, group
            rows.append({"id": "idle", "target":
                         "idle iteration poll(False) vs uvloop (worst N)",
                         "loop": label,
                         "flavour": f"worst at {worst_n}"
                                    + (" (N <= 10)" if on_poll else ""),
                         "value": worst, "op": "<=", "bound": 0.5,
                         "ref": "uvloop", "met": _check(worst, "<=", 0.5)})
        for label, cols in by_loop.items():
            backend = label.split()[1]
            if backend not in ("epoll", "io_uring"):
                continue
            a, b = cols.get("n1"), cols.get("n10000")
            value = None
            if a is not None and b is not None:
                per_rep = [y / x for x, y in zip(a["values"]["ns_per_iter"],
                                                 b["values"]["ns_per_iter"])
                           if x and y]
                value = _median(per_rep)
            rows.append({"id": "idle_scaling", "target":
                         "idle iteration at 10k fds vs its own 1-fd cost",
                         "loop": label, "flavour": "poll(False)",
                         "value": value, "op": "<=", "bound": 1.1,
                         "ref": "self n1", "met": _check(value, "<=", 1.1)})
    return rows


# ---- text --------------------------------------------------------------------

def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:.3g}G"
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e4:
        return f"{x / 1e3:.3g}k"
    if a >= 100:
        return f"{x:.0f}"
    if a == int(a):
        return f"{int(x)}"
    return f"{x:.3g}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"x{x:.3g}"


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]]
           ) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows])
              for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))
             .rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths))
                     .rstrip())
    return lines


def render_text(env: dict[str, Any], names: list[str], summary: dict[str, Any],
                targets: list[dict[str, Any]]) -> str:
    out = []
    out.append(f"cevent {env['cevent']} on Python {env['python']}, Linux "
               f"{env['kernel']} {env['machine']}, {env['cpus']} CPUs; "
               f"uvloop {env['uvloop'] or 'missing'}; cevent backends "
               f"{', '.join(env['backends'])}; cevent.Loop default "
               f"{env.get('loop_backend') or '?'}")
    out.append(f"command: {' '.join(env['command'])}")
    out.append(f"reps: {env['reps']} (each a fresh subprocess per loop, "
               f"interleaved); cells: median [min, max]; ratios: median of "
               f"the per-rep ratios to asyncio (a) and uvloop (u), on the "
               f"group's first metric")
    la0, la1 = env["loadavg_start"], env.get("loadavg_end", ["?"])
    out.append(f"load average at start {la0[0]:.2f}, at end "
               f"{la1[0] if isinstance(la1[0], str) else f'{la1[0]:.2f}'} "
               f"(a shared 2-core machine is noisy: compare ratios, not "
               f"absolute numbers)")
    for note in env.get("notes", []):
        out.append(f"note: {note}")
    for name in names:
        s = summary[name]
        out.append("")
        out.append(f"== {name}: {s['title']} ==")
        for group, g in s["groups"].items():
            if not g["columns"]:
                continue
            metrics = g["metrics"]
            header = ["loop", "flavour"]
            header += [f"{m} ({u}, {'<' if b == 'lower' else '>'})"
                       for m, u, b in metrics]
            header += ["a", "u", "ran on"]
            rows = []
            primary = g["primary"]
            for col in g["columns"]:
                row = [col["loop"], col["flavour"]]
                for m, _, _ in metrics:
                    row.append(f"{fmt(col['median'][m])} "
                               f"[{fmt(col['min'][m])}, "
                               f"{fmt(col['max'][m])}]")
                row.append(fmt_ratio(col["ratio_asyncio"].get(primary)))
                row.append(fmt_ratio(col["ratio_uvloop"].get(primary)))
                row.append(",".join(col["backend_used"]))
                rows.append(row)
            out.append(f"-- {g['title']} (ratios on {primary})")
            out.extend(_table(header, rows))
        for err in s["errors"]:
            out.append(f"  error: {err}")
    if targets:
        out.append("")
        out.append("== targets (issues 7 and 8; ratios from this run) ==")
        header = ["target", "loop", "flavour", "value", "required", "met"]
        rows = []
        for t in targets:
            if t["id"] == "timers_early":
                value = (f"{fmt(t['value'])} early, min lateness "
                         f"{fmt(t.get('min_lateness_us'))} us")
                required = "0 early"
            else:
                value = fmt_ratio(t["value"])
                ref = t["ref"]
                required = f"{t['op']} {t['bound']}x {ref}"
            met = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
            rows.append([t["target"], t["loop"], t["flavour"], value,
                         required, met])
        out.extend(_table(header, rows))
        n_met = sum(1 for t in targets if t["met"])
        n_missed = sum(1 for t in targets if t["met"] is False)
        out.append(f"{n_met} met, {n_missed} missed, "
                   f"{len(targets) - n_met - n_missed} not measured")
    out.append(f"total time {env.get('seconds', 0):.0f} s")
    return "\n".join(out)


# ---- chart -------------------------------------------------------------------

def render_png(path: str, env: dict[str, Any], summary: dict[str, Any],
               targets: list[dict[str, Any]]) -> Any:
    """Horizontal bars: each target row as "times better than the
    reference" (log scale), green when met, red when missed, with the
    required value marked.  Returns (path, None) or (None, reason)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        return None, f"matplotlib not importable ({exc}); pip install " \
                     f"matplotlib"
    rows = [t for t in targets
            if t["value"] not in (None, 0) and t["id"] != "timers_early"]
    if not rows:
        return None, "no target was measured"
    labels, better, required, colors = [], [], [], []
    for t in rows:
        lower = t["op"] == "<="
        ref = "itself at N=1" if t["ref"] == "self n1" else t["ref"]
        labels.append(f"{t['loop']} {t['flavour']}: {t['target']} "
                      f"(vs {ref})")
        better.append(1 / t["value"] if lower else t["value"])
        required.append(1 / t["bound"] if lower else t["bound"])
        colors.append("tab:green" if t["met"] else "tab:red")
    height = max(3.0, 0.28 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(15, height))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, better, color=colors, alpha=0.8)
    ax.scatter(required, y, marker="|", s=200, color="black",
               label="target", zorder=3)
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("times better than the reference (asyncio or uvloop, "
                  "see label; >1 = cevent better)")
    ax.set_title(f"cevent {env['cevent']} targets, Python {env['python']}, "
                 f"{env['cpus']} CPUs (median of {env['reps']} reps)",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.subplots_adjust(left=0.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, None
