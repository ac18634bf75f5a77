"""QEMU's IOThread (``iothread.c``) on top of :class:`cevent.AioContext`.

An :class:`IOThread` is a thread that owns one AioContext and runs
``poll(True)`` until it is stopped.  Work is handed to it with the
context's thread-safe calls (``bh_schedule_oneshot``, ``BH.schedule``,
``set_fd_handler``, ``notify``).
"""

from __future__ import annotations

import atexit
import itertools
import operator
import threading
import weakref
from types import TracebackType
from typing import Any, Self



from ._cevent import AioContext

__all__ = ["IOThread"]

_names = itertools.count(1)
_live: weakref.WeakSet[IOThread] = weakref.WeakSet()
_live_lock = threading.Lock()


def _check_param(name: str, value: Any) -> int:
    try:
        index = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int, not {type(value).__name__}") from None
    if index < 0:
        raise ValueError(f"{name} must be >= 0, got {index}")
    return index


class IOThread:
    """IOThread(poll_max_ns=32768, poll_grow=0, poll_shrink=0, name=None, *,
    backend=None, aio_max_batch=0)

    A thread running ``context.poll(True)`` until :meth:`stop` is called,
    as QEMU's IOThread object does.

    The poll parameters are QEMU's ``poll-max-ns``, ``poll-grow`` and
    ``poll-shrink`` properties (defaults as in QEMU: 32768 ns, 0, 0); a
    negative value raises ``ValueError``.  ``aio_max_batch`` is QEMU's
    ``aio-max-batch``.  ``backend`` picks the context's fd monitor as
    ``AioContext(backend)`` does (unlike QEMU, the IOThread does not tear
    io_uring down: it never embeds its context in another loop).

    The constructor creates the context (so :attr:`context` is usable at
    once, e.g. to register handlers before the thread runs) but does not
    start the thread.  :meth:`start` starts the thread, which makes itself
    the context's home thread before it polls, and returns once it runs;
    from then on only the IOThread may call home-thread-only methods such
    as ``poll()``.

    :meth:`stop` is thread-safe and idempotent: it schedules a one-shot BH
    that ends the loop, joins the thread, and closes the context (from
    the IOThread, its home thread, once the loop has ended).  An IOThread
    that was never started is just closed.

    Exceptions raised by callbacks that the IOThread runs do not stop it.
    The first one is kept and re-raised by :meth:`stop` (once); later
    ones are reported through :func:`threading.excepthook`.

    The thread is a daemon thread, and IOThreads still running when the
    interpreter exits are stopped by an ``atexit`` handler, so a program
    that forgets :meth:`stop` does not hang at exit.

    An IOThread is a context manager: ``with IOThread() as t:`` starts it
    and returns it; leaving the block stops it.
    """

    def __init__(self, poll_max_ns: int = 32768, poll_grow: int = 0,
                 poll_shrink: int = 0, name: str | None = None, *,
                 backend: str | None = None, aio_max_batch: int = 0) -> None:
        poll_max_ns = _check_param("poll_max_ns", poll_max_ns)
        poll_grow = _check_param("poll_grow", poll_grow)
        poll_shrink = _check_param("poll_shrink", poll_shrink)
        aio_max_batch = _check_param("aio_max_batch", aio_max_batch)
        if name is None:
            name = f"cevent-iothread-{next(_names)}"
        elif not isinstance(name, str):
            raise TypeError(
                f"name must be a str or None, not {type(name).__name__}")

        ctx = AioContext(backend)
        try:
            ctx.set_poll_params(poll_max_ns, poll_grow, poll_shrink)
            ctx.set_aio_params(aio_max_batch)
        except BaseException:
            ctx.close()
            raise
        self._ctx = ctx
        self._lock = threading.Lock()
        self._state = "new"          # new -> running -> stopping -> stopped
        self._running = False        # loop condition; IOThread only
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._error: BaseException | None = None  # first callback exception
        self._thread = threading.Thread(target=self._run, name=name,
                                        daemon=True)

    def __repr__(self) -> str:
        return f"<cevent.IOThread {self.name!r} {self._state}>"

    @property
    def name(self) -> str:
        """The thread's name."""
        return self._thread.name

    @property
    def context(self) -> AioContext:
        """The IOThread's AioContext (its home thread is the IOThread
        once started)."""
        return self._ctx

    @property
    def ident(self) -> int | None:
        """The thread identifier (``threading.get_ident()`` inside the
        IOThread), or None before :meth:`start`."""
        return self._thread.ident

    def is_alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread.is_alive()

    # ---- life cycle ------------------------------------------------------

    def start(self) -> None:
        """Start the thread and wait until it polls its context.

        Raises RuntimeError if the IOThread was already started or stopped.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"IOThread {self.name!r} was already "
                                   f"started")
            self._state = "running"
            with _live_lock:
                _live.add(self)
            self._thread.start()
        self._started.wait()
        if self._startup_error is not None:
            self._thread.join()
            with self._lock:
                self._state = "stopped"
            error, self._startup_error = self._startup_error, None
            raise error

    def stop(self) -> None:
        """End the loop, join the thread and close the context.

        Thread-safe and idempotent.  Re-raises the first exception raised
        by a callback in the IOThread, if any (only once).  Called from the
        IOThread itself (e.g. from a BH), it only ends the loop; the
        context is closed when the loop returns.
        """
        join = False
        with self._lock:
            state = self._state
            if state == "new":
                self._state = "stopped"
                self._ctx.close()
            elif state == "running":
                self._state = "stopping"
                self._ctx.bh_schedule_oneshot(self._stop_bh)
                join = True
            elif state == "stopping":
                join = True
        if threading.current_thread() is self._thread:
            self._running = False
            return
        if join:
            self._thread.join()
            with self._lock:
                self._state = "stopped"
        error, self._error = self._error, None
        if error is not None:
            try:
                raise error
            finally:
                error = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- the thread ------------------------------------------------------

    def _stop_bh(self) -> None:
        self._running = False

    def _report(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            return
        try:
            threading.excepthook(threading.ExceptHookArgs(
                (type(exc), exc, exc.__traceback__, self._thread)))
        except BaseException:
            pass

    def _run(self) -> None:
        ctx = self._ctx
        try:
            ctx._set_home_thread()
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()
            return
        self._running = True
        self._started.set()
        try:
            while self._running:
                try:
                    ctx.poll(True)
                except BaseException as exc:
                    self._report(exc)
                    del exc
        finally:
            ctx.close()
            with _live_lock:
                _live.discard(self)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        threads = list(_live)
    for thread in threads:
        try:
            thread.stop()
        except BaseException:
            pass
