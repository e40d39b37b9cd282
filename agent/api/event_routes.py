"""Control API routes for events: the list, and the test notification (an event)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agent.alarms import queries
from agent.api.alarm_routes import severities
from agent.api.schemas import MAX_ID, AfterQuery, TestRequest
from agent.api.services import ServicesDep, StoreDep, authorize


def event_router() -> APIRouter:
    """The event routes (the operators' token)."""
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.get("/events", summary="List events, oldest first")
    async def list_events(
        store: StoreDep,
        type: Annotated[str | None, Query()] = None,
        resource: str | None = None,
        severity: Annotated[list[str] | None, Query()] = None,
        after: AfterQuery = 0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
        before: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_ID,
                description="only those with a lower sequence number (0: no bound); "
                "without `after`, the newest `limit` of those: a page back",
            ),
        ] = 0,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            queries.list_events,
            store.engine,
            type_id=type,
            resource=resource,
            severities=severities(severity),
            after_seq=after,
            limit=limit,
            before_seq=before,
        )

    @router.post("/test", summary="Send a test notification to every export target")
    async def test(services: ServicesDep, body: TestRequest | None = None) -> dict[str, Any]:
        body = body or TestRequest()
        text = body.text or "provsync test notification"
        details = {"requested_by": body.by} if body.by else {}
        seq = await services.manager.emit_event(
            "test", "agent", text=text, details=details, bounded=True
        )
        return {"seq": seq, "targets": [e.name for e in services.exporters]}

    return router
