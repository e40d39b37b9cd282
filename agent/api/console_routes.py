"""The control API's side of the web console: a one-time login link (operators' token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request

from agent.api.console.sessions import CODE_TTL, ConsoleSessions


def console_link_router(
    authorize: Callable[..., Awaitable[None]], sessions: ConsoleSessions
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.post("/console/link", summary="A one-time link that logs a browser in to /ui/")
    async def link(request: Request) -> dict[str, object]:
        base = str(request.base_url).rstrip("/")
        return {"url": f"{base}/ui/login?code={sessions.new_code()}", "expires_in": CODE_TTL}

    return router
