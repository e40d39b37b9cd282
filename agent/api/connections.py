"""Bounds on the control API's connections, before any request exists.

uvicorn closes an idle keep-alive connection after a response, but a connection that
never completes its request headers is kept for ever: anyone who can reach the port can
hold sockets (file descriptors) open by sending nothing, or a byte now and then, and
enough of them leave the agent unable to open its store or its exporters' sockets. So
every request's headers must arrive within ``header_timeout`` of its first byte (or of
the connection, for the first request; trickling bytes does not extend it), and the
number of open connections is capped: past ``max_connections`` a new connection is
closed at once, before a byte of it is read.

Both of uvicorn's HTTP/1.1 implementations get the same guard: httptools (a C parser,
about twice the requests per second) when it is installed, h11 (pure Python) otherwise.
They differ only in how "the headers of the current request are complete" is learnt: h11
says it through its state, httptools through its ``on_headers_complete`` callback.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, Literal, Protocol

import h11
from loguru import logger
from uvicorn.protocols.http.h11_impl import H11Protocol

HttpChoice = Literal["auto", "httptools", "h11"]


def httptools_available() -> bool:
    return importlib.util.find_spec("httptools") is not None


def resolve_http(choice: HttpChoice) -> Literal["httptools", "h11"]:
    """The implementation ``[api] http`` names; ``auto``: httptools when installed."""
    if choice == "auto":
        return "httptools" if httptools_available() else "h11"
    return choice


class _Refusals:
    """Connections refused at the cap, logged at the 1st, 100th and every 10,000th."""

    def __init__(self, max_connections: int) -> None:
        self.count = 0
        self.max_connections = max_connections

    def refuse(self, transport: asyncio.Transport) -> None:
        self.count += 1
        if self.count in (1, 100) or self.count % 10_000 == 0:
            logger.warning(
                "control API: {} connections refused at the cap of {} ([api] max_connections)",
                self.count,
                self.max_connections,
            )
        transport.abort()


class _Guarded(Protocol):
    """What the guard needs of a uvicorn protocol (both have these)."""

    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop


class _HeaderDeadline:
    """The deadline of one connection's current request headers."""

    __slots__ = ("_handle", "_owner", "_timeout")

    def __init__(self, owner: _Guarded, timeout: float) -> None:
        self._owner = owner
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Start the clock unless it runs already (trickling does not extend it)."""
        if self._handle is None:
            self._handle = self._owner.loop.call_later(self._timeout, self._expire)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        self._handle = None
        transport = self._owner.transport
        if not transport.is_closing():
            transport.abort()


def guarded_protocol(
    header_timeout: float, max_connections: int, http: HttpChoice = "auto"
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (``http``) with a header deadline and a connection cap."""
    if resolve_http(http) == "httptools":
        return _guarded_httptools(header_timeout, max_connections)
    return _guarded_h11(header_timeout, max_connections)


def _guarded_h11(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    refusals = _Refusals(max_connections)

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._deadline = _HeaderDeadline(self, header_timeout)
            if len(self.connections) >= max_connections:
                # Not added to the server's connections: uvicorn never sees it.
                self.transport = transport
                refusals.refuse(transport)
                return
            super().connection_made(transport)
            self._deadline.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is not None and self not in self.connections:
                return  # refused at the cap: nothing of uvicorn's was set up
            self._deadline.disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._deadline.arm()  # part of a request's headers: the clock runs from here
            else:
                self._deadline.disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Idle now: uvicorn's keep-alive timeout takes over until the next byte.
            self._deadline.disarm()

    return GuardedH11Protocol


def _guarded_httptools(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    # Imported here: httptools is optional (the h11 protocol serves without it).
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    refusals = _Refusals(max_connections)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._deadline = _HeaderDeadline(self, header_timeout)
            self._in_headers = False
            if len(self.connections) >= max_connections:
                # Not added to the server's connections: uvicorn never sees it.
                self.transport = transport
                refusals.refuse(transport)
                return
            super().connection_made(transport)
            self._deadline.arm()  # the first request's clock runs from the connection

        def connection_lost(self, exc: Exception | None) -> None:
            if self.transport is not None and self not in self.connections:
                return  # refused at the cap: nothing of uvicorn's was set up
            self._deadline.disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            # The parser saw a request's first byte (its callback runs inside feed_data):
            # the clock runs from here, unless it already runs from the connection.
            self._in_headers = True
            self._deadline.arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._deadline.disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Between requests uvicorn's keep-alive timeout holds the connection; the
            # next request's first byte starts the clock again (on_message_begin). A
            # pipelined request whose headers are still arriving keeps its clock.
            if not self._in_headers:
                self._deadline.disarm()

    return GuardedHttpToolsProtocol
