"""asyncio's streams stay asyncio's on cevent.Loop.

A loop may make ``asyncio.start_server`` and ``asyncio.open_connection``
faster by replacing them, when it is imported, with native stream objects
(rsloop does: docs/performance.md, "Servers on 3.14").  Those are then not
``asyncio.StreamReader``/``StreamWriter``: subclasses, patched methods and
code that reads their attributes see something else.  cevent keeps
asyncio's: importing it replaces nothing in asyncio, and a streams server
on ``cevent.Loop`` gets asyncio's own classes, whose Python methods run.
"""

import asyncio
import subprocess
import sys

import cevent


def test_importing_cevent_replaces_nothing_in_asyncio():
    code = (
        "import asyncio, asyncio.streams\n"
        "names = ('start_server', 'open_connection', 'StreamReader',\n"
        "         'StreamWriter', 'new_event_loop', 'run', 'set_event_loop')\n"
        "before = {n: getattr(asyncio, n) for n in names}\n"
        "sbefore = {n: getattr(asyncio.streams, n) for n in names[:4]}\n"
        "import cevent\n"
        "assert all(getattr(asyncio, n) is f for n, f in before.items())\n"
        "assert all(getattr(asyncio.streams, n) is f\n"
        "           for n, f in sbefore.items())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_streams_server_gets_asyncios_classes(loop, monkeypatch):
    """The reader and writer are asyncio's classes, and a patched
    StreamReader.feed_data sees every byte the server reads."""
    fed = []
    original = asyncio.StreamReader.feed_data

    def feed_data(self, data):
        fed.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", feed_data)
    seen = {}

    async def handle(reader, writer):
        seen["types"] = (type(reader), type(writer))
        data = await reader.readexactly(5)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert type(reader) is asyncio.StreamReader
        assert type(writer) is asyncio.StreamWriter
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"HELLO"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    assert isinstance(loop, cevent.Loop)
    loop.run_until_complete(main())
    assert seen["types"] == (asyncio.StreamReader, asyncio.StreamWriter)
    assert b"hello" in b"".join(fed)        # the server's reader
    assert b"HELLO" in b"".join(fed)        # the client's reader, too
