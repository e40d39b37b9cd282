"""The control API of a standby ([cluster]): its own health, status and stop; the rest
relayed to the leader.

A standby owns nothing: no writer, no exporters. It answers ``GET /api/v1/health``
(public, as the leader's), ``GET /api/v1/status`` (its role, node and the leader) and
``POST /api/v1/shutdown`` (this standby stops: a stop sent to one agent never stops
another); every other request, console pages included, goes to ``relay`` (the leader,
agent.cluster.forward). The gate in front is the leader's, with the same tokens and
policy (agent.api.guard, agent.api.app.tokens_policy): what the leader would refuse
without a token is refused here before it costs the leader anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from agent.api.app import tokens_policy
from agent.api.guard import App, Receive, RequestGuard, Scope, Send
from agent.api.server import serve_asgi
from agent.api.status_routes import HEALTH
from agent.config import ApiSettings

STATUS = "/api/v1/status"
SHUTDOWN = "/api/v1/shutdown"

StandbyStatus = Callable[[], Awaitable[dict[str, Any]]]
"""The standby's status document (role, node, leader, members)."""


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def standby_app(
    token: str,
    element_token: str,
    status: StandbyStatus,
    relay: App,
    stop: Callable[[], None],
    max_body: int,
) -> RequestGuard:
    """The standby's ASGI application behind the API's token gate.

    Args:
        token: the operators' token.
        element_token: the elements' token (their routes only).
        status: the status document.
        relay: where every other request goes (the leader).
        stop: asks this standby to stop.
        max_body: the largest request body, as the leader's.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope.get("method"), scope.get("path")
        if method == "GET" and path == HEALTH:
            await _json(send, 200, {"status": "ok"})
        elif method == "GET" and path == STATUS:
            await _json(send, 200, await status())
        elif method == "POST" and path == SHUTDOWN:
            stop()
            await _json(send, 200, {"status": "stopping"})
        else:
            await relay(scope, receive, send)

    return RequestGuard(app, tokens_policy(token, element_token), max_body)


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


__all__ = ["SHUTDOWN", "STATUS", "StandbyStatus", "serve_standby_api", "standby_app"]
