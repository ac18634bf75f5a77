"""cevent vs asyncio vs uvloop on the workloads of Lib/cevent/_bench.

    python Benchmarks/bench.py [--quick] [--only WORKLOAD ...] [--out DIR]

A thin wrapper around ``cevent._bench`` (the same as ``python -m cevent
bench``), using this source tree's copy of the harness with the installed
extension; results go to Benchmarks/results/<timestamp>.{txt,json,png}.
Needs uvloop and matplotlib (``pip install .[bench]``).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_PKG = os.path.join(os.path.dirname(HERE), "Lib", "cevent")


def main(argv=None):
    import cevent

    # Prefer this tree's harness over an installed (possibly older) copy.
    if os.path.isdir(os.path.join(SOURCE_PKG, "_bench")) \
            and SOURCE_PKG not in cevent.__path__:
        cevent.__path__.insert(0, SOURCE_PKG)
    from cevent._bench import cli

    return cli.main(argv, prog="Benchmarks/bench.py",
                    default_out=os.path.join(HERE, "results"))


if __name__ == "__main__":
    sys.exit(main())
