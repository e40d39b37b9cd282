"""The element-to-hub route of CM notify sync (agent.sync.notify; docs/element-api.md,
"Element to hub"): opened by the elements' token, like the sharing element routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.api.sync_routes import EngineDep
from agent.sync.notify import Notified

NOTIFY_ROUTE = "/api/v1/sync/notify"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NotifiedChange(_Body):
    seq: int = Field(ge=1)
    user: str = Field(min_length=1, max_length=64)
    op: Literal["create", "update", "delete"]
    cls: str = Field(alias="class", min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] | None = None


class NotifyBody(_Body):
    element: str = Field(min_length=1, max_length=64, description="name or element id")
    epoch: str = Field(min_length=1, max_length=128)
    changes: list[NotifiedChange] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _well_formed(self) -> NotifyBody:
        # One answer per change: two of one sequence number could not both be applied.
        if len({c.seq for c in self.changes}) != len(self.changes):
            raise ValueError("changes repeat a sequence number")
        if any(c.op != "delete" and c.data is None for c in self.changes):
            raise ValueError("a create or update needs its data")
        return self


def notify_router(authorize_element: Callable[..., Awaitable[None]]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize_element)])

    @router.post(
        NOTIFY_ROUTE.removeprefix("/api/v1"),
        summary="CM notify sync: an element's changes as they are made",
    )
    async def notify(sync: EngineDep, body: NotifyBody) -> dict[str, list[dict[str, Any]]]:
        changes = [
            Notified(c.seq, c.user, c.op, c.cls, c.key, None if c.op == "delete" else c.data)
            for c in body.changes
        ]
        verdicts = await sync.notify.received(body.element, body.epoch, changes)
        return {
            "results": [
                {"seq": c.seq, "status": "applied"}
                if v == "applied"
                else {"seq": c.seq, "status": "ignored", "reason": v.removeprefix("ignored: ")}
                for c, v in zip(changes, verdicts, strict=True)
            ]
        }

    return router
