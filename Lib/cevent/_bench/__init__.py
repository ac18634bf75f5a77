"""cevent's benchmark harness: every workload of ``workloads/`` for cevent (each backend, polling off and on where it
matters) side by side with asyncio's default loop and uvloop, in the same
run and the same process layout.

Entry points: ``python -m cevent bench [--quick] [--only W ...] [--out DIR]``
or ``python Benchmarks/bench.py`` (same options); see :mod:`.cli`.

Layout:

* :mod:`.cli`: command line, the runner (one fresh subprocess per workload,
  loop and rep), the progress bar;
* :mod:`.worker`: the subprocess side (runs one workload on one loop and
  prints one JSON line);
* :mod:`.loops`: the loops under test;
* :mod:`.common`: statistics, CPU pinning, fd limits;
* :mod:`.workloads`: one module per workload;
* :mod:`.report`: the text table, the targets, JSON and the PNG chart.

Timings are for comparison only: they are never pass/fail tests.
"""
