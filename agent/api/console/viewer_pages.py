"""The Event Viewer: active alarms and recent events, live; acknowledge, unacknowledge
and clear with a note (the alarm manager's operations, as the control API does them)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from agent.alarms import queries
from agent.api.console.common import (
    CONSOLE_USER,
    ActingDep,
    ServicesDep,
    SessionDep,
    back_to,
    fragment,
    not_done,
    render,
)
from agent.api.services import Services
from agent.errors import AlarmError


def viewer_router() -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def viewer(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        alarms, events = await _viewer_data(services)
        return await render(
            request, "viewer.html", session, services, "viewer", alarms=alarms, events=events
        )

    @router.get("/fragments/viewer")
    async def tables(request: Request, session: SessionDep, services: ServicesDep) -> Response:
        # The tables alone: what the page's script puts in place after each change.
        alarms, events = await _viewer_data(services)
        return await fragment(
            request, "viewer_tables.html", session, services, alarms=alarms, events=events
        )

    @router.post("/alarms/{alarm_id}/{action}")
    async def act(
        session: ActingDep,
        services: ServicesDep,
        alarm_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        action: Literal["ack", "unack", "clear"],
        note: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        """Acknowledge, unacknowledge or clear an alarm with a note: the alarm manager's
        operations, as `POST /api/v1/alarms/{id}/ack|unack|clear` do them."""
        manager, text = services.manager, note.strip() or None
        try:
            if action == "clear":
                await manager.clear(alarm_id, note=text, by=CONSOLE_USER, bounded=True)
            else:
                await manager.acknowledge(
                    alarm_id, acknowledge=action == "ack", note=text, by=CONSOLE_USER, bounded=True
                )
        except AlarmError as exc:
            return not_done(exc)
        return back_to("/ui/")

    return router


async def _viewer_data(services: Services) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Active alarms, last changed first, and the newest events, newest first."""
    engine = services.store.engine if services.store is not None else services.manager.engine
    alarms = await asyncio.to_thread(queries.list_alarms, engine, limit=500)
    alarms.sort(key=lambda a: (a["changed_at"], a["id"]), reverse=True)
    events = list(reversed(await asyncio.to_thread(queries.list_events, engine, limit=50)))
    return alarms, events
