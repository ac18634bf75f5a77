"""cevent: QEMU's AioContext event loop for Python.

Three layers, each usable without the one above it:

* the AioContext types (``AioContext``, ``BH``, ``Timer``,
  ``EventNotifier``, ``LockCnt``, the pollers, the C API capsule), from the
  C extension ``cevent._cevent``;
* ``IOThread`` (``cevent._iothread``), a thread that runs a context;
* the asyncio event loop on a context: ``Loop``, ``new_event_loop``,
  ``EventLoopPolicy``, ``run`` (``cevent._loop``), whose C part is the
  extension ``cevent._loopcore``, built on the C API.

See docs/development.md, "Source layout", for where each lives.
"""

import os as _os
import sys as _sys
from typing import Any as _Any

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
from ._loop import Loop, new_event_loop, run

if _sys.version_info < (3, 14):
    from ._loop import EventLoopPolicy
else:
    def __getattr__(name: str) -> _Any:
        # asyncio's policy system is deprecated from 3.14 and gone in 3.16:
        # cevent.EventLoopPolicy warns as asyncio.DefaultEventLoopPolicy
        # does, and is gone where that is.
        if name == "EventLoopPolicy" and _sys.version_info < (3, 16):
            import warnings

            from . import _loop

            warnings._deprecated(  # type: ignore[attr-defined]
                "cevent.EventLoopPolicy", remove=(3, 16))
            return _loop.EventLoopPolicy
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
if _sys.version_info < (3, 14):
    __all__.append("EventLoopPolicy")
