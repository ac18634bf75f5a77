"""cevent._loopcore: the C core of cevent.Loop (Modules/_loopcore/), an
extension built on cevent's C API."""

from collections.abc import Callable
from contextvars import Context
from typing import Any, Final, Self, final

from typing_extensions import disjoint_base

from ._cevent import AioContext

NEVER_NS: Final[int]

@disjoint_base
class _LoopCore:
    """The native base of cevent.Loop: scheduling, the timer heap and the
    loop iteration."""

    _closed: bool
    _debug: bool
    _stopping: bool
    _iterate: bool
    _ready: Any
    _scheduled: list[Any]
    _timer_cancelled_count: int
    def call_soon(
        self, callback: Callable[..., object], /, *args: Any,
        context: Any = None,
    ) -> Any: ...
    def call_soon_threadsafe(
        self, callback: Callable[..., object], /, *args: Any,
        context: Any = None,
    ) -> Any: ...
    def call_later(
        self, delay: float, callback: Callable[..., object], /, *args: Any,
        context: Any = None,
    ) -> Any: ...
    def call_at(
        self, when: float, callback: Callable[..., object], /, *args: Any,
        context: Any = None,
    ) -> Any: ...
    def _run_once(self) -> None: ...
    def time(self) -> float: ...
    def get_debug(self) -> bool: ...
    def create_future(self) -> Any: ...
    def _attach(self, context: AioContext, /) -> None: ...

@final
class _FdWatch:
    """The fd handler of one fd registered by cevent.Loop's selector."""

    key: Any
    @property
    def ready(self) -> Any: ...
    @property
    def selector(self) -> Any: ...
    def __new__(cls, key: Any, ready: Any, selector: Any,
                loop: _LoopCore | None = None) -> Self: ...
    def read_ready(self) -> None: ...
    def write_ready(self) -> None: ...

class _SocketTransportCore:
    """The native methods of cevent.Loop's socket transport."""

    def _read_ready(self) -> None: ...
    def _read_ready__data_received(self) -> None: ...
    def write(self, data: Any, /) -> None: ...

@final
class _RingReader:
    """The reads of one socket transport of cevent.Loop through the
    context's io_uring ring (only in a build with io_uring)."""

    @property
    def state(self) -> dict[str, bool]: ...
    def __new__(cls, loop: _LoopCore, transport: Any, fd: int, /) -> Self: ...
    def start(self, context: Context | None = None, /) -> None: ...
    def stop(self) -> None: ...
    def flush(self) -> None: ...
    def detach(self) -> None: ...
    def _deliver(self) -> None: ...
    def _abandon(self) -> None: ...

def configure(
    *, handle_type: type, timer_type: type,
    plain_handle_types: tuple[type, ...],
    exc_hook: Callable[[Any, BaseException], object],
    call_soon: Callable[..., Any],
    call_soon_threadsafe: Callable[..., Any],
    new_timer_debug: Callable[..., Any], future_type: type,
    handle_slots: tuple[str, ...] | None,
    timer_slots: tuple[str, ...] | None,
    handle_attrs: tuple[str, str, str, str],
    key_fields: tuple[int, int, int] | None,
    transport_attrs: tuple[str, ...],
) -> None: ...

def _ns_ceil(seconds: float, /) -> int: ...
def _sock_recv_nowait(fd: int, n: int, /) -> bytes | None: ...
