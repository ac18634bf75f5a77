"""One module per workload.  Each defines:

* ``NAME``, ``TITLE``, ``DESCRIPTION`` (one paragraph, how it is measured);
* ``POLL_MATTERS``: whether cevent runs it with polling off *and* on;
* ``ASYNCIO_ONLY``: True for workloads that only exist at the asyncio level
  (they run on asyncio, uvloop and cevent.Loop, not on bare contexts);
* ``GROUPS``: ``{group: {"metrics": [(name, unit, better)], "primary": name,
  "title": str}}`` with better ``"lower"`` or ``"higher"``;
* ``params(quick, size)``: the sizes, a JSON-able dict;
* ``run_asyncio(loop_factory, params)`` and (unless ASYNCIO_ONLY)
  ``run_native(backend, poll_max_ns, params)``: run once in the current
  process, return a list of ``{"group", "flavour", "metrics", "info"}``.

A *group* is what is compared across loops (the ratios); a *flavour* is a
way one loop does it (``bh.schedule()`` vs ``bh_schedule_oneshot()``).
"""

from . import bh, fd, idle, tcp, timers, wakeup

WORKLOADS = {m.NAME: m for m in (wakeup, fd, bh, timers, idle, tcp)}
