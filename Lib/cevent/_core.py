"""The configuration of ``cevent._loopcore``, cevent.Loop's native core.

``cevent._loopcore`` (``Modules/_loopcore/``) makes asyncio handles and runs
them in C.  This module tells it, once at import, what it builds on:
asyncio's ``Handle``, cevent's :class:`TimerHandle`, the hook that reports
a callback's exception, the debug-mode timer maker and the layout facts of
``cevent._asyncio_layout``.  The Python fallbacks (``cevent._fallbacks``)
share the timer handle and its maker.
"""

from __future__ import annotations

import asyncio
from asyncio import base_events, events, format_helpers
from collections.abc import Callable
from contextvars import Context
from typing import TYPE_CHECKING, Any

from . import _asyncio_layout, _loopcore

if TYPE_CHECKING:
    from ._loop import Loop

# Deadlines at or beyond this (either sign, e.g. call_later(math.inf))
# never fire.
NEVER_NS: int = _loopcore.NEVER_NS


class TimerHandle(events.TimerHandle):
    """The handle ``call_later``/``call_at`` return: an
    :class:`asyncio.TimerHandle` that also knows its deadline in integer ns
    on the loop's clock; the heap is ordered by it and the loop runs the
    handle only once ``clock_ns() >= _when_ns``.

    It has asyncio's class name, so ``repr()`` and the debug-mode "Executing
    ... took N seconds" warning print ``<TimerHandle ...>`` as on asyncio's
    loop.
    """

    __slots__ = ("_when_ns",)

    _when_ns: int

    def __lt__(self, other: object) -> bool:
        try:
            return bool(self._when_ns <
                        other._when_ns)  # type: ignore[attr-defined]
        except AttributeError:
            return super().__lt__(other)  # type: ignore[operator]


def _handle_exception(handle: events.Handle, exc: BaseException) -> None:
    """What ``Handle._run`` does when the callback raised ``exc`` (not
    SystemExit or KeyboardInterrupt); called by ``_LoopCore._run_once``."""
    cb = format_helpers._format_callback_source(
        handle._callback, handle._args)  # type: ignore[attr-defined]
    context = {
        "message": f"Exception in callback {cb}",
        "exception": exc,
        "handle": handle,
    }
    if handle._source_traceback:  # type: ignore[attr-defined]
        context["source_traceback"] = \
            handle._source_traceback  # type: ignore[attr-defined]
    handle._loop.call_exception_handler(context)  # type: ignore[attr-defined]


def _new_timer_debug(loop: Loop, name: str, when: float, when_ns: int,
                     callback: Callable[..., object], args: tuple[Any, ...],
                     context: Context | None) -> TimerHandle:
    """The timer handle of ``call_later``/``call_at`` in debug mode (and
    whenever asyncio's handle slots are not the ones the C code writes),
    made as ``BaseEventLoop.call_at`` does (in debug mode, thread and
    callback checks, a source traceback ending at the caller);
    ``_LoopCore`` pushes it."""
    if loop.get_debug():
        loop._check_thread()
        loop._check_callback(callback, name)
    timer = TimerHandle(when, callback, args, loop, context)
    traceback = timer._source_traceback  # type: ignore[attr-defined]
    if traceback:
        del traceback[-1]
    timer._when_ns = when_ns
    return timer


# The native core makes plain asyncio Handles in call_soon() and
# TimerHandles in call_later()/call_at(), runs the handles whose _run is
# Handle._run itself, and makes asyncio Futures in create_future().
_loopcore.configure(
    **_asyncio_layout.C_LAYOUT,
    handle_type=events.Handle,
    timer_type=TimerHandle,
    plain_handle_types=(events.Handle, events.TimerHandle, TimerHandle),
    exc_hook=_handle_exception,
    call_soon=base_events.BaseEventLoop.call_soon,
    call_soon_threadsafe=base_events.BaseEventLoop.call_soon_threadsafe,
    new_timer_debug=_new_timer_debug,
    future_type=asyncio.Future)
