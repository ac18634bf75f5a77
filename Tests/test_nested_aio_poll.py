"""QEMU's tests/unit/test-nested-aio-poll.c (``/nested-aio-poll``).

Poll handlers are level-triggered: they keep firing until their condition
is reset.  If an ``io_poll_ready`` handler calls a nested ``poll()`` before
resetting it, the nested loop must not poll that handler again, or the
recursion never ends.  ``aio_poll`` prevents this by unlinking the handler
from the poll list while its ``io_poll_ready`` runs; this test checks it.
"""

import pytest

import cevent


class NestedPollData:
    """QEMU's TestData."""

    def __init__(self, ctx):
        self.ctx = ctx
        # The EventNotifier that drives the test
        self.poll_notifier = cevent.EventNotifier()
        # Only used to wake the nested poll()
        self.dummy_notifier = cevent.EventNotifier()
        self.nested = False
        self.nestings = 0
        self.nested_results = []
        self.io_read_calls = []
        self.io_poll_calls = {"true": 0, "false": 0}

    def io_read(self, notifier):
        self.io_read_calls.append(notifier)
        notifier.test_and_clear()

    def io_poll_true(self, notifier):
        self.io_poll_calls["true"] += 1
        return True

    def io_poll_false(self, notifier):
        self.io_poll_calls["false"] += 1
        return False

    def io_poll_ready(self, notifier):
        assert notifier is self.poll_notifier
        assert not self.nested
        self.nested = True
        self.nestings += 1

        # Wake the following nested poll() call
        self.dummy_notifier.set()

        # This nested event loop must not call io_poll()/io_poll_ready()
        # of this handler
        result = self.ctx.poll(True)
        self.nested_results.append(result)
        assert result is True

        self.nested = False

    def io_poll_never_ready(self, notifier):
        raise AssertionError("dummy_notifier's io_poll_ready must not run")


@pytest.mark.valgrind
def test_nested_aio_poll(backend):
    """/nested-aio-poll"""
    ctx = cevent.AioContext(backend)
    td = NestedPollData(ctx)
    try:
        # Enable polling
        ctx.set_poll_params(1_000_000, 2, 2)

        # The embedding fd is unused, but asking for it switches the context
        # to embedded use (aio_get_g_source), which changes the fd monitor:
        # io_uring is torn down.
        ctx.fileno()
        assert ctx.backend == "poll"

        # Make the event notifier active (set) right away
        td.poll_notifier.set()
        ctx.set_event_notifier(td.poll_notifier, io_read=td.io_read,
                               io_poll=td.io_poll_true,
                               io_poll_ready=td.io_poll_ready)

        # This event notifier will be used later
        ctx.set_event_notifier(td.dummy_notifier, io_read=td.io_read,
                               io_poll=td.io_poll_false,
                               io_poll_ready=td.io_poll_never_ready)

        # Consume aio_notify()
        assert ctx.poll(False) is False
        assert td.nestings == 0

        # Run the io_read() handler.  This has the side-effect of
        # activating polling in future poll() calls.
        assert ctx.poll(True) is True
        assert td.io_read_calls == [td.poll_notifier]
        assert td.nestings == 0

        # The second time around the io_poll()/io_poll_ready() handler runs
        assert ctx.poll(True) is True
        assert td.nestings == 1
        assert td.io_read_calls == [td.poll_notifier, td.dummy_notifier]

        # Run io_poll()/io_poll_ready() one more time to show it keeps
        # working
        assert ctx.poll(True) is True
        assert td.nestings == 2
        assert td.nested_results == [True, True]
        assert td.io_read_calls == [td.poll_notifier, td.dummy_notifier,
                                    td.dummy_notifier]
        assert not td.nested
        assert td.io_poll_calls["true"] >= 2

        ctx.set_event_notifier(td.dummy_notifier)
        ctx.set_event_notifier(td.poll_notifier)
    finally:
        ctx.close()
        td.dummy_notifier.close()
        td.poll_notifier.close()
