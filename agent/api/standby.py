"""The control API of a standby ([cluster]): health and status, and a refusal that names
the leader for everything else.

A standby owns nothing: no writer, no exporters, no views. It answers
``GET /api/v1/health`` (public, as the leader's) and ``GET /api/v1/status`` (its role,
node and the leader); any other request gets 503 naming the leader and its API URL. The
bearer token is checked first, by the same gate and policy as the leader's
(agent.api.guard): a standby tells nobody without the token who leads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from agent.api.guard import Receive, RequestGuard, Scope, Send
from agent.api.server import serve_asgi
from agent.api.sharing_routes import ELEMENT_ROUTES
from agent.api.status_routes import HEALTH
from agent.config import ApiSettings

STATUS = "/api/v1/status"

StandbyStatus = Callable[[], Awaitable[dict[str, Any]]]
"""The standby's status document (role, node, leader, members)."""


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def standby_app(
    token: str,
    element_token: str,
    status: StandbyStatus,
    refusal: Callable[[], str],
    max_body: int,
) -> RequestGuard:
    """The standby's ASGI application behind the API's token gate.

    Args:
        token: the operators' token.
        element_token: the elements' token (their routes only).
        status: the status document.
        refusal: the 503 message for every other route (it names the leader).
        max_body: the largest request body, as the leader's.
    """

    def policy(scope: Scope) -> tuple[str, ...] | None:
        path = str(scope.get("path", ""))
        if path == HEALTH:
            return None
        if scope.get("method") == "POST" and path in ELEMENT_ROUTES:
            return (token, element_token)
        # Unlike the leader, nothing outside /api/ is public: a standby serves no console.
        return (token,)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope.get("method"), scope.get("path")
        if method == "GET" and path == HEALTH:
            await _json(send, 200, {"status": "ok"})
        elif method == "GET" and path == STATUS:
            await _json(send, 200, await status())
        else:
            await _json(send, 503, {"error": refusal()})

    return RequestGuard(app, policy, max_body)


@asynccontextmanager
async def serve_standby_api(
    api: ApiSettings,
    app: RequestGuard,
    shutdown_timeout: float,
) -> AsyncIterator[None]:
    """Serve the standby's API on ``[api] listen`` until the block ends.

    Raises:
        ProvsyncError: the port cannot be bound.
    """
    async with serve_asgi(api, app, shutdown_timeout, what="standby control API"):
        yield


__all__ = ["STATUS", "StandbyStatus", "serve_standby_api", "standby_app"]
