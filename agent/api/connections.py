"""Bounds on the control API's connections, before any request exists.

uvicorn closes an idle keep-alive connection after a response, but a connection that
never completes its request headers is kept for ever: anyone who can reach the port can
hold sockets (file descriptors) open by sending nothing, or a byte now and then, and
enough of them leave the agent unable to open its store or its exporters' sockets. So
every request's headers must arrive within ``header_timeout`` of its first byte (or of
the connection, for the first request; trickling bytes does not extend it), and the
number of open connections is capped: past ``max_connections`` a new connection is
closed at once, before a byte of it is read.
"""

from __future__ import annotations

import asyncio

import h11
from loguru import logger
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a connection cap."""

    class GuardedH11Protocol(H11Protocol):
        _refused = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._header_deadline: asyncio.TimerHandle | None = None
            if len(self.connections) >= max_connections:
                # Not added to the server's connections: uvicorn never sees it.
                GuardedH11Protocol._refused += 1
                if (
                    GuardedH11Protocol._refused in (1, 100)
                    or GuardedH11Protocol._refused % 10_000 == 0
                ):
                    logger.warning(
                        "control API: {} connections refused at the cap of {} "
                        "([api] max_connections)",
                        GuardedH11Protocol._refused, max_connections,
                    )  # fmt: skip
                self.transport = transport
                transport.abort()
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is not None and self not in self.connections:
                return  # refused at the cap: nothing of uvicorn's was set up
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm()  # part of a request's headers: the clock runs from here
            else:
                self._disarm()

        def _arm(self) -> None:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _expire(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.abort()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Idle now: uvicorn's keep-alive timeout takes over until the next byte.
            self._disarm()

    return GuardedH11Protocol
