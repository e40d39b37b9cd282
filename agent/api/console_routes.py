"""The control API's side of the web console: a one-time login link (operators' token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from agent.api.console.sessions import CODE_TTL, ConsoleSessions


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read_only: bool = False
    """A viewer's link (a NOC screen): its session sees every page and changes nothing."""


def console_link_router(
    authorize: Callable[..., Awaitable[None]], sessions: ConsoleSessions
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.post("/console/link", summary="A one-time link that logs a browser in to /ui/")
    async def link(request: Request, body: LinkBody | None = None) -> dict[str, object]:
        base = str(request.base_url).rstrip("/")
        read_only = body is not None and body.read_only
        code = sessions.new_code(read_only)
        return {
            "url": f"{base}/ui/login?code={code}",
            "expires_in": CODE_TTL,
            "read_only": read_only,
        }

    return router
