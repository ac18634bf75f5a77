"""cevent: QEMU's AioContext event loop for Python.

The C extension ``cevent._cevent`` holds everything; this package only
re-exports it.  See ``cevent.AioContext`` for the loop itself.
"""

import os as _os

from ._version import __version__
from ._cevent import (
    CLOCK_HOST,
    CLOCK_REALTIME,
    CLOCK_VIRTUAL,
    SCALE_MS,
    SCALE_NS,
    SCALE_US,
    _C_API,
    BH,
    AioContext,
    EventNotifier,
    EventNotifierPoller,
    LockCnt,
    MemoryPoller,
    Timer,
    backends,
    clock_ns,
    clock_step,
    unavailable_backends,
)
from ._iothread import IOThread
from ._loop import EventLoopPolicy, Loop, new_event_loop, run


def get_include() -> str:
    """Return the directory that holds ``cevent.h``, for C extensions that
    use cevent's C API (``CEvent_Import()``)."""
    return _os.path.join(_os.path.dirname(_os.path.abspath(__file__)),
                         "include")


__all__ = [
    "__version__",
    "AioContext",
    "BH",
    "Timer",
    "EventNotifier",
    "LockCnt",
    "EventNotifierPoller",
    "MemoryPoller",
    "IOThread",
    "Loop",
    "new_event_loop",
    "EventLoopPolicy",
    "run",
    "backends",
    "unavailable_backends",
    "clock_ns",
    "clock_step",
    "CLOCK_REALTIME",
    "CLOCK_HOST",
    "CLOCK_VIRTUAL",
    "SCALE_NS",
    "SCALE_US",
    "SCALE_MS",
    "get_include",
]
