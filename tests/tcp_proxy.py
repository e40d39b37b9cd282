"""A loopback TCP proxy that a test can cut: every connection dropped, new ones refused.

The proxy runs its own asyncio loop in a daemon thread, so synchronous tests drive it
with plain method calls. ``cut(seconds)`` closes every proxied connection (both sides,
so the server sees its client go away as it would after a network failure) and closes
the listening socket, so connecting is refused; after ``seconds`` it listens again on
the same port. ``pause(seconds)`` is the nastier failure: every socket stays open but
nothing is forwarded (a hung server or middlebox), so only client-side timeouts notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: asyncio.Event | None = None
        self.connections = 0

    # ------------------------------------------------------------ control (any thread)
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self, seconds: float) -> None:
        """Drop every connection and refuse new ones; listen again after ``seconds``."""
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._schedule_resume, seconds)

    def cut_now(self) -> None:
        """Drop every connection and refuse new ones until ``resume()``."""
        self._call(self._cut())

    def resume(self) -> None:
        self._call(self._listen())

    def pause(self, seconds: float) -> None:
        """Forward nothing (connections stay open, new ones hang) for ``seconds``."""
        self._call(self._set_flowing(False))
        self._loop.call_soon_threadsafe(
            lambda: self._loop.call_later(seconds, lambda: self._spawn(self._set_flowing(True)))
        )

    @property
    def paused(self) -> bool:
        return self._flowing is not None and not self._flowing.is_set()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(10)

    # ------------------------------------------------------------ proxy loop
    def _schedule_resume(self, seconds: float) -> None:
        self._loop.call_later(seconds, lambda: self._spawn(self._listen()))

    def _spawn(self, coro: object) -> None:
        task = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_flowing(self, flowing: bool) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), 5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if self._flowing is not None:
                    await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                if self._flowing is not None:
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.contextmanager
def tcp_proxy(upstream_host: str, upstream_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream_host, upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
