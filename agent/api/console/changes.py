"""Tells the console's open pages that alarms or events changed (server-sent events).

The alarm writer calls the commit listener from its thread after each group commit; the
pages' streams wait on the event loop. One counter and one event per loop: a stream
wakes, reads the counter, and tells its page to fetch the table again. The number of
streams is bounded (a stream holds a connection open).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from agent.alarms.feed import Commit
from agent.alarms.manager import AlarmManager

MAX_STREAMS = 32
HEARTBEAT = 15.0
"""Seconds between keep-alive comments (proxies close idle connections)."""


class ChangeSignal:
    def __init__(self, manager: AlarmManager) -> None:
        self.version = 0
        self.streams = 0
        self._manager = manager
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """End every stream (the server is stopping); called on the event loop."""
        self._closed = True
        self._changed.set()

    def _committed(self, commit: Commit) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def stream(self, alive: Callable[[], bool] = lambda: True) -> AsyncIterator[str]:
        """The text of a text/event-stream: a ``changed`` event after each commit, until
        ``alive()`` says the page's session ended (logged out, or idle too long)."""
        if self._loop is None:  # the first page: from now on each commit wakes the streams
            self._loop = asyncio.get_running_loop()
            self._manager.add_commit_listener(self._committed)
        self.streams += 1
        try:
            yield "retry: 2000\n\n"
            while not self._closed:
                changed = self._changed
                woken = False
                # The wait only under the timeout, never the yield (the timeout would
                # cancel whatever the response task does then).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HEARTBEAT):
                        await changed.wait()
                        woken = True
                if self._closed or not alive():
                    return
                yield f"event: changed\ndata: {self.version}\n\n" if woken else ": keep-alive\n\n"
        finally:
            self.streams -= 1
