"""What cevent's asyncio face knows of asyncio's private layout: all of it,
in this one file, checked once at import against the running interpreter.

The face's C code (``Modules/_loopcore/``) is fast because it relies on
details that asyncio does not promise:

* ``handles``: it builds ``asyncio.Handle`` and ``TimerHandle`` objects
  without calling ``__init__``, writing their ``__slots__`` through the
  member descriptors' offsets (``HANDLE_SLOTS``, ``TIMER_SLOTS``), reads
  ``_cancelled`` from the slot and runs a plain handle's callback itself
  instead of calling ``Handle._run``; it also leaves queued handles
  untracked by the garbage collector while the loop runs them;
* ``selector_key``: its fd handlers read ``selectors.SelectorKey`` by tuple
  position (``KEY_FIELDS``);
* ``transport``: its socket transport reads and calls the private
  attributes of ``asyncio.selector_events._SelectorSocketTransport``
  (``TRANSPORT_ATTRS``) from the instance ``__dict__``;
* ``loop_core``: its ``_LoopCore`` replaces ``BaseEventLoop``'s
  ``_ready``, ``_scheduled``, ``_stopping``, ``_closed``, ``_debug`` and
  ``_timer_cancelled_count`` attributes (``LOOP_ATTRS``) with its own and
  runs ``_run_once`` in C;
* ``ring_reads``: on io_uring, its socket transport reads with recv
  requests on the ring (``cevent._transport._SocketTransport``) and learns when
  to read from asyncio's private ``_add_reader`` hooks of the transport and
  the loop.

``check()`` verifies each piece.  A piece that does not match (a future
asyncio changed it) is not used: the face falls back to asyncio's own
Python code for it (still correct, slower) and says so once, with a
``RuntimeWarning`` naming what did not match.  ``CEVENT_ASYNCIO_FALLBACK``
(comma-separated piece names, or ``all``) forces the fallback, for tests.
"""

from __future__ import annotations

import os
import selectors
import types
import warnings
from asyncio import base_events, events, protocols, selector_events
from collections.abc import Callable
from typing import Any

PIECES = ("handles", "selector_key", "transport", "loop_core", "ring_reads")

#: asyncio.Handle's slots that the C code writes, in its order.
HANDLE_SLOTS = ("_callback", "_args", "_cancelled", "_loop",
                "_source_traceback", "_repr", "_context")

#: asyncio.TimerHandle's slots, and the one cevent's TimerHandle adds.
TIMER_SLOTS = ("_scheduled", "_when", "_when_ns")

#: What the C code calls, reads or writes on a handle by name: a handle
#: of another type, or every handle when the slots do not match.
HANDLE_ATTRS = ("_run", "_cancelled", "_when", "_scheduled")

#: selectors.SelectorKey's fields, in tuple order, that the fd handlers
#: read: the fd and the data (the (reader, writer) handles).
KEY_FIELDS = ("fileobj", "fd", "events", "data")

#: What the socket transport's C methods use, in the C code's order.  The
#: ``_slow`` names are cevent's (see cevent._transport._SocketTransport): two
#: aliases of asyncio's methods and the ring reader's path for a protocol
#: that is not a plain Protocol; ``data_received`` is the protocol's.
TRANSPORT_ATTRS = (
    "_read_ready_cb", "_conn_lost", "max_size", "_sock_fd", "_protocol",
    "data_received", "_fatal_error", "_read_ready__on_eof",
    "_read_ready__data_received_slow", "_eof", "_empty_waiter", "_buffer",
    "_write_slow", "_ring_data_slow",
)
#: Of those, the instance attributes that asyncio's transport __init__s
#: set, and the methods and class attributes it has.
_TRANSPORT_INSTANCE = ("_read_ready_cb", "_conn_lost", "_sock_fd",
                       "_protocol", "_eof", "_empty_waiter", "_buffer")
_TRANSPORT_CLASS = ("max_size", "_fatal_error", "_read_ready__on_eof",
                    "_read_ready__data_received", "_read_ready", "write")

#: asyncio 3.14's call_soon_threadsafe() returns this Handle subclass, whose
#: lock keeps a cancel() from another thread from racing the handle's run;
#: where it exists, cevent.Loop schedules thread-safe callbacks with
#: asyncio's own method (so the handle is asyncio's), and its C core runs
#: the handle through its own _run (a Handle subclass).  None before 3.14.
THREADSAFE_HANDLE: type | None = getattr(events, "_ThreadSafeHandle", None)

#: BaseEventLoop's attributes that _LoopCore keeps itself.
LOOP_ATTRS = ("_ready", "_scheduled", "_stopping", "_closed", "_debug",
              "_timer_cancelled_count")


def _object_slots(cls: type, names: tuple[str, ...]) -> list[str]:
    """The names of @names that are not object slots of @cls."""
    bad = []
    for name in names:
        descr = getattr(cls, name, None)
        if not isinstance(descr, types.MemberDescriptorType):
            bad.append(name)
    return bad


def _init_names(cls: type) -> set[str]:
    """The names used by the __init__ methods along @cls's MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names


def _check_handles() -> str | None:
    bad = _object_slots(events.Handle, HANDLE_SLOTS)
    bad += _object_slots(events.TimerHandle, TIMER_SLOTS[:-1])
    bad += [name for name in HANDLE_ATTRS
            if not hasattr(events.TimerHandle, name)]
    if events.TimerHandle.__base__ is not events.Handle:
        bad.append("TimerHandle.__base__")
    if bad:
        return "asyncio.Handle/TimerHandle lack the slots " + ", ".join(bad)
    return None


def _check_selector_key() -> str | None:
    fields = getattr(selectors.SelectorKey, "_fields", None)
    if not issubclass(selectors.SelectorKey, tuple) or \
            fields != KEY_FIELDS:
        return f"selectors.SelectorKey fields are {fields!r}"
    return None


def _check_transport() -> str | None:
    cls: Any = selector_events._SelectorSocketTransport  # type: ignore
    bad = [name for name in _TRANSPORT_CLASS if not hasattr(cls, name)]
    names = _init_names(cls)
    bad += [name for name in _TRANSPORT_INSTANCE if name not in names]
    if not cls.__dictoffset__:
        bad.append("__dict__")
    if bad:
        return ("asyncio's _SelectorSocketTransport lacks "
                + ", ".join(bad))
    return None


def _check_loop_core() -> str | None:
    loop = base_events.BaseEventLoop()
    try:
        names = set(vars(loop))
    finally:
        loop.close()
    bad = [name for name in LOOP_ATTRS if name not in names]
    if not hasattr(base_events.BaseEventLoop, "_run_once"):
        bad.append("_run_once")
    if bad:
        return "asyncio's BaseEventLoop lacks " + ", ".join(bad)
    return None


def _check_ring_reads() -> str | None:
    """What cevent._transport._SocketTransport's reads through io_uring rely
    on: the transport asks for reading through its own ``_add_reader``
    (made, resumed) and stops through the loop's ``_remove_reader``;
    ``set_protocol`` picks ``_read_ready_cb``; asyncio can feed bytes to a
    BufferedProtocol; ``_call_connection_lost`` ends the connection (the
    transport drops its reader there)."""
    cls: Any = selector_events._SelectorSocketTransport  # type: ignore
    bad = [name for name in ("_add_reader", "is_reading", "set_protocol",
                             "_read_ready__get_buffer",
                             "_read_ready__data_received",
                             "_call_connection_lost")
           if not hasattr(cls, name)]
    for meth in ("__init__", "resume_reading"):
        code = getattr(getattr(cls, meth, None), "__code__", None)
        if code is None or "_add_reader" not in code.co_names:
            bad.append(f"{meth} -> _add_reader")
    if not hasattr(protocols, "_feed_data_to_buffered_proto"):
        bad.append("protocols._feed_data_to_buffered_proto")
    if bad:
        return "asyncio's socket transport lacks " + ", ".join(bad)
    return None


_CHECKS: dict[str, Callable[[], str | None]] = {
    "handles": _check_handles,
    "selector_key": _check_selector_key,
    "transport": _check_transport,
    "loop_core": _check_loop_core,
    "ring_reads": _check_ring_reads,
}


def _forced() -> set[str]:
    value = os.environ.get("CEVENT_ASYNCIO_FALLBACK", "")
    names = {n.strip() for n in value.split(",") if n.strip()}
    if "all" in names:
        return set(PIECES)
    unknown = names - set(PIECES)
    if unknown:
        raise ValueError(
            f"CEVENT_ASYNCIO_FALLBACK: unknown piece(s) {sorted(unknown)}; "
            f"known: {', '.join(PIECES)}, all")
    return names


def check() -> dict[str, str | None]:
    """Each piece's mismatch (a description), or None where it matches."""
    forced = _forced()
    result: dict[str, str | None] = {}
    for piece in PIECES:
        if piece in forced:
            result[piece] = "forced by CEVENT_ASYNCIO_FALLBACK"
        else:
            result[piece] = _CHECKS[piece]()
    return result


#: The result of the check at import: piece -> mismatch or None.
MISMATCHES = check()

#: Whether the face uses its C code for each piece.
NATIVE = {piece: MISMATCHES[piece] is None for piece in PIECES}

for _piece, _why in MISMATCHES.items():
    if _why is not None:
        warnings.warn(
            f"cevent.Loop falls back to asyncio's own Python code for "
            f"{_piece!r}: asyncio's private layout does not match ({_why})",
            RuntimeWarning, stacklevel=2)
del _piece, _why

#: The configure() arguments that carry this knowledge into the C code.
C_LAYOUT: dict[str, Any] = {
    "handle_slots": HANDLE_SLOTS if NATIVE["handles"] else None,
    "timer_slots": TIMER_SLOTS if NATIVE["handles"] else None,
    "handle_attrs": HANDLE_ATTRS,
    "key_fields": ((KEY_FIELDS.index("fd"), KEY_FIELDS.index("data"),
                    len(KEY_FIELDS)) if NATIVE["selector_key"] else None),
    "transport_attrs": TRANSPORT_ATTRS,
}

__all__ = ["PIECES", "NATIVE", "MISMATCHES", "C_LAYOUT", "THREADSAFE_HANDLE",
           "check"]
