"""The control API's gate: the bearer token is checked before any body is read.

A pure ASGI middleware in front of the FastAPI routes. FastAPI reads and parses a
request's body before it runs the route's dependencies, so a token checked by a
dependency alone lets anybody make the agent buffer any amount of data. Here the
``Authorization`` header is checked first; which tokens a route accepts is decided by the
app (``policy``). Then a declared ``Content-Length`` above the limit is refused at once;
a body without one (chunked) is counted while the route reads it by Starlette's
``RequestBodyLimitMiddleware``, which the app places behind this gate.

A refusal of a request that still has a body on the wire carries ``Connection: close``,
so the server drops the rest instead of reading it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException
from fastapi.security.utils import get_authorization_scheme_param

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

Policy = Callable[[Scope], tuple[str, ...] | None]
"""The tokens a request may carry, or None when it needs none (health, OpenAPI)."""

UNAUTHORIZED = "missing or wrong bearer token"


def tokens_match(given: str | bytes, tokens: tuple[str, ...]) -> bool:
    """``given`` is one of ``tokens`` (the empty ones never match).

    Every token compared, in constant time, whichever matches."""
    raw = given.encode() if isinstance(given, str) else given
    results = [secrets.compare_digest(raw, t.encode()) for t in tokens if t]
    return any(results)


def bearer_matches(header: bytes | None, tokens: tuple[str, ...]) -> bool:
    """``Authorization: Bearer <t>`` with t one of ``tokens`` (constant time, all compared)."""
    if header is None:
        return False
    scheme, _, given = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return tokens_match(given.strip(), tokens)


def route_authorized(authorization: str | None, *tokens: str) -> bool:
    """What the routes' own token check (:func:`agent.api.services.authorize`) decides for
    an ``Authorization`` header (decoded as Starlette decodes headers, latin-1):
    HTTPBearer's parsing, then the same comparison. For the routes served without
    FastAPI's stack (:mod:`agent.api.fast_routes`)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return False
    return tokens_match(credentials, tokens)


def refusal() -> HTTPException:
    """The routes' answer to a missing or wrong token (401, as the gate's)."""
    return HTTPException(
        status_code=401,
        detail=UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or (
        length is not None and length.strip() not in (b"", b"0")
    )


async def _answer(
    send: Send, status: int, error: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """The bearer token, then a declared body length, before the app reads a byte.

    Args:
        app: the ASGI application behind the gate.
        policy: the tokens accepted for a request (None: public).
        max_body: the largest request body, in bytes.
    """

    def __init__(self, app: App, policy: Policy, max_body: int) -> None:
        self.app = app
        self.policy = policy
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            tokens = self.policy(scope)
            if tokens is not None and not bearer_matches(_header(scope, b"authorization"), tokens):
                headers = {"WWW-Authenticate": "Bearer"}
                if _has_body(scope):
                    headers["Connection"] = "close"
                await _answer(send, 401, UNAUTHORIZED, headers)
                return
            declared = _header(scope, b"content-length")
            if declared is not None and declared.strip().isdigit():
                length = int(declared)
                if length > self.max_body:
                    error = f"request body of {length} bytes is larger than {self.max_body}"
                    await _answer(send, 413, error, {"Connection": "close"})
                    return
        await self.app(scope, receive, send)
