"""A standby's control API and console, relayed to the leader.

Only the leader writes: its alarm manager holds the active alarms and the next sequence
number in memory, its writer thread is the one serialization of every commit, and the
console's sessions and live stream follow its commits. A standby therefore serves the
API by relaying each request to the leader's advertised URL and the answer back as it
comes (an event stream included), instead of writing to the store itself (decision
152). The client sees the leader's answer, with a ``Via`` naming the standby.

Bounded like the API itself: the standby's gate has checked the token and the declared
length before a request gets here; a body is read up to ``max_body``; every await on the
leader has a timeout (connect, write, each read, pool). A leader that does not answer,
or none at all (a takeover under way), is a 503 with ``Retry-After``: the client tries
again and the raise is idempotent by key. A request that already went through a standby
is never relayed again (a stale view could bounce it between two standbys).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import httpx
from loguru import logger

from agent.api.guard import Receive, Scope, Send

VIA_TOKEN = b"(provsync standby)"
"""In the ``Via`` a standby adds: how another standby sees that a request was relayed."""

# Hop-by-hop headers (RFC 9110 section 7.6.1) stay on their own connection; the lengths
# are set again by whoever sends the bytes on.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 60.0
"""Longer than the console stream's keep-alive (15 s) and any route's answer."""

LeaderUrl = Callable[[], str | None]
"""The leader's API URL as the standby last saw it (None: nobody leads now)."""


class _Refused(Exception):
    """The request cannot be relayed: answered 503 (or 413) with this message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def answer_json(send: Send, status: int, body: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


class LeaderRelay:
    """Relays requests to the leader's control API; one connection pool for its life.

    Args:
        node: this standby's node name (its ``Via``).
        leader_url: where the leader answers, as last seen.
        max_body: the largest request body relayed.
        max_connections: connections to the leader at most (the API's own limit).
    """

    def __init__(
        self, node: str, leader_url: LeaderUrl, max_body: int, max_connections: int
    ) -> None:
        self.node = node
        self.leader_url = leader_url
        self.max_body = max_body
        self.via = f"1.1 {node} ".encode() + VIA_TOKEN
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, write=10.0, pool=5.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
            follow_redirects=False,
            trust_env=False,
        )
        self.relayed = 0
        self.failed = 0

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.aclose(), 5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._relay(scope, receive, send)
        except _Refused as refused:
            self.failed += 1
            await answer_json(send, refused.status, {"error": str(refused)})

    def _target(self, scope: Scope) -> str:
        base = self.leader_url()
        if base is None:
            raise _Refused(503, "standby: no agent leads the store right now; retry shortly")
        raw = scope.get("raw_path")
        path = raw if isinstance(raw, bytes) else str(scope.get("path", "")).encode()
        if not path.startswith(b"/") or path.startswith(b"//") or b"@" in path.split(b"?")[0]:
            # "@host/..." or "//host" glued to the base would name another host.
            raise _Refused(400, "standby: the request target must be a path")
        query = scope.get("query_string") or b""
        target = base.rstrip("/") + path.decode("latin-1")
        return target + ("?" + query.decode("latin-1") if query else "")

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            lowered = name.lower()
            if lowered == b"via" and VIA_TOKEN in value:
                raise _Refused(503, "standby: the request came through another standby; retry")
            if lowered not in _HOP_BY_HOP:
                headers.append((lowered, value))
        # The Host the client used stays: the leader's links (console login) name it.
        headers.append((b"via", self.via))
        return headers

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole request body (None: the client went away)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, f"request body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target(scope)
        headers = self._headers(scope)
        body = await self._body(receive)
        if body is None:
            return
        request = self.client.build_request(
            str(scope.get("method", "GET")), target, headers=headers, content=body
        )
        try:
            response = await self.client.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.debug("standby: relay failed: {!r}", type(exc).__name__)
            raise _Refused(
                503, f"standby: the leader at {self.leader_url()} did not answer; retry shortly"
            ) from None
        try:
            self.relayed += 1
            raw = [(k.lower(), v) for k, v in response.headers.raw]
            out = [(k, v) for k, v in raw if k not in _HOP_BY_HOP]
            names = {k for k, _ in raw}
            if b"content-length" in names and b"transfer-encoding" not in names:
                # The raw bytes are relayed as they came (still encoded): same length.
                out.append((b"content-length", response.headers["content-length"].encode()))
            out.append((b"via", self.via))
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            await self._pump(response, receive, send)
        finally:
            await response.aclose()

    async def _pump(self, response: httpx.Response, receive: Receive, send: Send) -> None:
        """The answer's bytes as they come, until its end or the client's disconnect."""

        async def forward() -> None:
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                # Headers are sent: all that can be done is end the answer here.
                logger.debug("standby: the leader's answer broke off: {!r}", exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        relay = asyncio.create_task(forward())
        watch = asyncio.create_task(gone())
        try:
            await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            for task in (relay, watch):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


__all__ = ["VIA_TOKEN", "LeaderRelay", "LeaderUrl", "answer_json"]
