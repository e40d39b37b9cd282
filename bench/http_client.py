"""A small HTTP/1.1 keep-alive client over asyncio streams, for bench/api.py.

The same client measures the agent and the bare anchor, so it must not be what limits
either: requests are prebuilt bytes, a response is read as its status line, headers up to
the blank line and exactly Content-Length body bytes (the agent and uvicorn always send
it); nothing is decoded on the clock. Two drivers:

- closed loop: C connections, each sends its next request as soon as the previous answer
  is in (throughput);
- open loop: requests scheduled at fixed times (``start + i / rate``) and taken by the
  next free connection; a request's latency runs from its scheduled time, so a server
  that falls behind is charged for the queue it causes (no coordinated omission).

``python bench/http_client.py serve`` runs a null server (a canned answer to every
request, no parsing beyond the framing) that prints its port: the client's own ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

T = TypeVar("T")

MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """A response the client cannot frame (no Content-Length, chunked, closed early)."""


def request_bytes(
    method: str, path: str, host: str, token: str, body: bytes | None = None
) -> bytes:
    """One request, ready to write: keep-alive (HTTP/1.1 default), bearer token, JSON."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 10) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=MAX_HEAD), timeout
        )
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Status and body of the answer to ``raw``.

        Raises:
            HttpError: the answer cannot be framed or the server closed the connection.
        """
        self.writer.write(raw)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise HttpError("connection closed before the answer") from exc
        # "HTTP/1.1 200 OK": the status is bytes 9-12.
        status = int(head[9:12])
        size = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                size = int(value)
                break
        if size < 0:
            raise HttpError(f"answer without Content-Length: {head[:200]!r}")
        body = await self.reader.readexactly(size) if size else b""
        return status, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Run:
    """What one driver run saw, one entry per request in request order."""

    started: float
    ended: float = 0.0
    scheduled: list[float] = field(default_factory=list)
    """When each request was sent (closed loop) or due (open loop), time.monotonic()."""
    done: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    retries: int = 0
    """Requests sent again after a 503 (closed loop with ``retry_503``)."""

    @property
    def count(self) -> int:
        return len(self.status)

    @property
    def rate(self) -> float:
        return self.count / (self.ended - self.started)

    def latencies(self) -> list[float]:
        return [d - s for s, d in zip(self.scheduled, self.done, strict=True)]

    def failures(self) -> dict[int, int]:
        found: dict[int, int] = {}
        for status in self.status:
            if status >= 300:
                found[status] = found.get(status, 0) + 1
        return found


def _run(count: int) -> Run:
    run = Run(started=0.0)
    run.scheduled = [0.0] * count
    run.done = [0.0] * count
    run.status = [0] * count
    run.body = [b""] * count
    return run


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    timeout: float = 600,
    retry_503: float | None = None,
) -> Run:
    """Send ``requests`` over ``clients`` connections, each as fast as answers come.

    ``retry_503``: a 503 answer (the agent's writer is full) is sent again after this
    many seconds, as a gateway would, and counted in ``Run.retries``; None: kept.
    """
    connections = [await Connection.open(host, port) for _ in range(clients)]
    run = _run(len(requests))
    position = 0
    clock = time.monotonic

    async def worker(conn: Connection) -> None:
        nonlocal position
        while position < len(requests):
            index = position
            position += 1
            run.scheduled[index] = clock()
            while True:
                run.status[index], run.body[index] = await conn.request(requests[index])
                if run.status[index] != 503 or retry_503 is None:
                    break
                run.retries += 1
                await asyncio.sleep(retry_503)
            run.done[index] = clock()

    try:
        run.started = clock()
        await asyncio.wait_for(asyncio.gather(*(worker(c) for c in connections)), timeout)
        run.ended = clock()
    finally:
        for conn in connections:
            await conn.close()
    return run


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    connections: int,
    timeout: float = 600,
) -> Run:
    """Request ``i`` is due at ``start + i / rate``; latency counts from then."""
    pool = [await Connection.open(host, port) for _ in range(connections)]
    run = _run(len(requests))
    position = 0
    clock = time.monotonic
    start = clock() + 0.05
    for index in range(len(requests)):
        run.scheduled[index] = start + index / rate

    async def worker(conn: Connection) -> None:
        nonlocal position
        while position < len(requests):
            index = position
            position += 1
            # uvloop's timers have millisecond resolution and may fire a little early:
            # a request must not leave before its time, or its latency is understated.
            while (wait := run.scheduled[index] - clock()) > 0:  # noqa: ASYNC110 - a clock, not an event
                await asyncio.sleep(wait)
            run.status[index], run.body[index] = await conn.request(requests[index])
            run.done[index] = clock()

    try:
        run.started = start
        await asyncio.wait_for(asyncio.gather(*(worker(c) for c in pool)), timeout)
        run.ended = clock()
    finally:
        for conn in pool:
            await conn.close()
    return run


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0-1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    # round() first: 0.99 * 100 is 99.00000000000001, whose ceiling would be 100.
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(len(ordered), rank) - 1]


NULL_ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


class _NullProtocol(asyncio.Protocol):
    """Answers every request (headers + Content-Length body) with NULL_ANSWER."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no asyncio.Transport subclass, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            size = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + size:
                break
            self.buffer = self.buffer[end + 4 + size :]
            answers += 1
        if answers:
            self.transport.write(NULL_ANSWER * answers)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_NullProtocol, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    # Until the bench closes our stdin (or dies): no orphan server.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (a cheaper client), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not Linux
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        run_loop(_serve())
    else:
        raise SystemExit("usage: python bench/http_client.py serve")
