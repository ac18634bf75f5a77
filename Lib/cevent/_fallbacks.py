"""The Python stand-ins for ``cevent._loopcore``'s types.

``cevent._asyncio_layout`` checks that asyncio's private classes have the
layout the C code relies on.  Where they do not (a future CPython), the
loop uses these instead, at asyncio's speed and with its semantics:

* :class:`_PyFdWatch` for ``_FdWatch``: queues the handles of a ready fd,
  as asyncio's ``_process_events`` does;
* :class:`_PyLoopCore` for ``_LoopCore``: asyncio's own scheduling and
  ``_run_once``, with cevent's integer-ns deadlines.
"""

from __future__ import annotations

import heapq
import math
import selectors
from collections import deque
from collections.abc import Callable
from contextvars import Context
from typing import Any

from ._cevent import AioContext, clock_ns
from ._core import NEVER_NS, TimerHandle, _new_timer_debug
from ._loopcore import _ns_ceil


class _PyFdWatch:
    """``_FdWatch`` in Python, used when ``selectors.SelectorKey`` does not
    have the layout the C one reads (``cevent._asyncio_layout``): it queues
    the handles, as asyncio's ``_process_events`` does."""

    __slots__ = ("key", "ready", "selector")

    def __init__(self, key: selectors.SelectorKey, ready: deque[Any],
                 selector: Any,
                 loop: object = None) -> None:
        self.key = key
        self.ready = ready
        self.selector = selector

    def _ready_one(self, handle: Any, event: int) -> None:
        if handle is None:
            return
        if handle._cancelled:
            self.selector._drop_cancelled(self.key.fd, event)
        else:
            self.ready.append(handle)

    def read_ready(self) -> None:
        self._ready_one(self.key.data[0], selectors.EVENT_READ)

    def write_ready(self) -> None:
        self._ready_one(self.key.data[1], selectors.EVENT_WRITE)


class _PyLoopCore:
    """Stands in for ``_LoopCore`` when asyncio's ``BaseEventLoop`` does not
    have the attributes it replaces (``cevent._asyncio_layout``): the
    scheduling methods and ``_run_once`` are asyncio's own, and the
    selector's ``select()`` polls the context."""

    _iterate = False

    def _attach(self, ctx: AioContext) -> None:
        pass

    # call_later/call_at keep cevent's deadlines: integer ns, rounded up,
    # on TimerHandles ordered by them (asyncio's _run_once then runs a
    # timer once time() > when, as _clock_resolution is 0).

    def call_later(self, delay: float, callback: Callable[..., object],
                   *args: Any, context: Context | None = None) -> TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        when_ns = max(-NEVER_NS, min(NEVER_NS, clock_ns() + _ns_ceil(delay)))
        if abs(when_ns) >= NEVER_NS:
            when = math.copysign(math.inf, when_ns)
        else:
            when = when_ns / 1e9
        return self._schedule_timer("call_later", when, when_ns, callback,
                                    args, context)

    def call_at(self, when: float, callback: Callable[..., object],
                *args: Any, context: Context | None = None) -> TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        return self._schedule_timer("call_at", when, _ns_ceil(when),
                                    callback, args, context)

    def _schedule_timer(self, name: str, when: float, when_ns: int,
                        callback: Callable[..., object], args: tuple[Any, ...],
                        context: Context | None) -> TimerHandle:
        loop: Any = self
        loop._check_closed()
        timer = _new_timer_debug(loop, name, when, when_ns, callback, args,
                                 context)
        handle: Any = timer
        if handle._source_traceback:
            # call_later/call_at and this method
            del handle._source_traceback[-2:]
        heapq.heappush(loop._scheduled, timer)
        handle._scheduled = True
        return timer
