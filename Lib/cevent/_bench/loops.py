"""The loops under test.

A loop spec is a small dict (it travels to the worker subprocess as JSON):

* ``{"kind": "asyncio"}``: ``asyncio.SelectorEventLoop()`` (EpollSelector
  here), debug off;
* ``{"kind": "uvloop"}``: ``uvloop.new_event_loop()``;
* ``{"kind": "rloop"}``, ``{"kind": "rsloop"}``, ``{"kind": "zuvloop"}``:
  that module's ``new_event_loop()`` (the server benchmark only: rloop and
  rsloop are Rust loops, zuvloop runs libuv from Zig);
* ``{"kind": "cevent.Loop", "backend": B, "poll_max_ns": P}``:
  ``cevent.new_event_loop(backend=B)``, the asyncio face (B None: the
  Loop's default backend, epoll), with ``loop.context.set_poll_params(P)`` when P > 0;
* ``{"kind": "cevent", "backend": B, "poll_max_ns": P}``: a bare
  ``cevent.AioContext(B)`` driven through its native API (BHs, fd
  handlers, timers), with ``set_poll_params(P)`` when P > 0.

The first three run the asyncio-level implementation of each workload, the
last its native implementation.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import asyncio

import asyncio

POLL_ON_NS = 32768

REFERENCES = ("asyncio", "uvloop")

#: The other loops the server benchmark sets beside cevent.Loop, each when
#: it imports: modules with a ``new_event_loop()``, uvloop first.
PEERS = ("uvloop", "rloop", "rsloop", "zuvloop")


def label(spec: dict[str, Any]) -> str:
    kind: str = spec["kind"]
    if kind == "cevent.Loop":
        text = kind
        if spec.get("backend"):
            text += f" {spec['backend']}"
        if spec.get("poll_max_ns"):
            text += f" poll={spec['poll_max_ns']}"
        return text
    if kind != "cevent":
        return kind
    text = f"cevent {spec['backend']}"
    if spec.get("idle_fds"):
        text += f"+{spec['idle_fds']}"
    if spec.get("poll_max_ns"):
        text += f" poll={spec['poll_max_ns']}"
    return text


def is_asyncio_level(spec: dict[str, Any]) -> bool:
    return bool(spec["kind"] != "cevent")


def new_asyncio_loop(spec: dict[str, Any]) -> asyncio.AbstractEventLoop:
    kind = spec["kind"]
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    if kind == "uvloop":
        import uvloop  # type: ignore[import-not-found, unused-ignore]
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    if kind in PEERS:
        # the server benchmark's other peers; optional, untyped
        peer = importlib.import_module(kind)
        return cast(asyncio.AbstractEventLoop, peer.new_event_loop())
    if kind == "cevent.Loop":
        import cevent
        loop = cevent.new_event_loop(backend=spec.get("backend"))
        if spec.get("poll_max_ns"):
            loop.context.set_poll_params(spec["poll_max_ns"])
        return loop
    raise ValueError(f"not an asyncio loop: {spec!r}")


def uvloop_status() -> tuple[bool, str]:
    """(available, version or reason)."""
    try:
        import uvloop
    except ImportError as exc:
        return False, f"uvloop not importable ({exc}); pip install uvloop"
    return True, getattr(uvloop, "__version__", "?")


def cevent_loop_status() -> tuple[bool, str]:
    """(available, reason): whether cevent's asyncio face can be used."""
    try:
        import cevent
        factory = getattr(cevent, "new_event_loop", None)
        if factory is None:
            return False, ("cevent.new_event_loop does not exist yet "
                           "(a build older than the asyncio face)")
        loop = factory()
        loop.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "skip"
        return False, f"cevent.new_event_loop() failed: {exc!r}"
    return True, "cevent.new_event_loop()"


def cevent_loop_default(backends: Sequence[str]) -> str | None:
    """The backend of ``cevent.new_event_loop()`` (epoll when usable, else
    the first of ``backends``, AioContext's default)."""
    try:
        from cevent._loop import _default_backend
    except ImportError:
        return backends[0] if backends else None
    return _default_backend() or (backends[0] if backends else None)


def all_specs(backends: Sequence[str], with_poll_on: bool,
              include_uvloop: bool = True, include_cevent_loop: bool = False,
              epoll_idle_fds: int = 0, loop_backends: Sequence[str] = ()
              ) -> list[dict[str, Any]]:
    """Every loop a workload runs on, in table order.  ``epoll_idle_fds``
    > 0 adds an "epoll+N" context with N idle fds registered first, so
    that QEMU's poll/epoll pair really runs on epoll (it upgrades at 64
    fds).  cevent.Loop runs on its default backend, then on each of
    ``loop_backends`` other than that, and with polling on (on io_uring)
    when ``with_poll_on``."""
    specs: list[dict[str, Any]] = [{"kind": "asyncio"}]
    if include_uvloop:
        specs.append({"kind": "uvloop"})
    if include_cevent_loop:
        specs.append({"kind": "cevent.Loop"})
        default = cevent_loop_default(loop_backends)
        for backend in loop_backends:
            if backend != default:
                specs.append({"kind": "cevent.Loop", "backend": backend})
        if with_poll_on:
            # QEMU polls with fd handlers that have no poll function (the
            # loop's self-pipe) only on io_uring: the Loop polls there.
            spec: dict[str, Any] = {"kind": "cevent.Loop",
                                    "poll_max_ns": POLL_ON_NS}
            if "io_uring" in loop_backends and default != "io_uring":
                spec["backend"] = "io_uring"
            specs.append(spec)
    for backend in backends:
        specs.append({"kind": "cevent", "backend": backend,
                      "poll_max_ns": 0})
        if with_poll_on:
            specs.append({"kind": "cevent", "backend": backend,
                          "poll_max_ns": POLL_ON_NS})
        if backend == "epoll" and epoll_idle_fds:
            specs.append({"kind": "cevent", "backend": backend,
                          "poll_max_ns": 0, "idle_fds": epoll_idle_fds})
    return specs
