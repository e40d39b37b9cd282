"""Control API routes for sharing: element-facing calls, reconcile, distribution, hub data.

Elements call ``/api/v1/sharing/{start,sync,updates,device-data}`` with the elements'
token, not the operators' (ELEMENT_ROUTES; docs/element-api.md, "Element to hub").
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from agent.alarms.records import iso
from agent.api.schemas import RowId
from agent.api.sync_routes import StoreDep
from agent.errors import InvalidRequest, ObjectNotFound, ProvsyncError
from agent.sharing.service import Planned, SharingService
from agent.store.conflicts import Conflict
from agent.store.distributions import OPEN_STATES, Distribution
from agent.store.shared_data import Change, SharedObject


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StartBody(_Body):
    element: str = Field(min_length=1, max_length=64, description="name or element id")
    software_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="the element's; omitted (an operator starting it), the hub asks the element",
    )


class ElementRef(_Body):
    element: str = Field(min_length=1, max_length=64)


class UpdateItem(_Body):
    cls: str = Field(alias="class", min_length=1, max_length=32)
    key: str = Field(min_length=1, max_length=128)
    op: Literal["create", "update", "delete"]
    data: dict[str, Any] | None = None


class PushBody(_Body):
    element: str = Field(min_length=1, max_length=64)
    updates: list[UpdateItem] = Field(max_length=10_000)


class Device(_Body):
    number: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] | None = None


class DevicesBody(_Body):
    element: str = Field(min_length=1, max_length=64)
    devices: list[Device] = Field(max_length=100_000)


RowIds = list[Annotated[int, Field(ge=1, le=2**63 - 1)]]


class ResolveBody(_Body):
    take: Literal["hub", "element", "skip"]
    element: str | None = Field(default=None, max_length=64, description="bulk: only this one")
    ids: RowIds | None = Field(
        default=None,
        max_length=10_000,
        description="bulk: only these (the ones a plan showed); those no longer open are left",
    )
    by: str | None = Field(default=None, max_length=128)


class ResolveOneBody(_Body):
    """The body of one conflict's resolve and plan: ``element`` and ``ids`` choose
    conflicts for the bulk routes, so here they are refused, not ignored."""

    take: Literal["hub", "element", "skip"]
    element: Any = Field(default=None, description="refused: the bulk routes' only")
    ids: Any = Field(default=None, description="refused: the bulk routes' only")
    by: str | None = Field(default=None, max_length=128)

    @field_validator("element", "ids")
    @classmethod
    def _bulk_only(cls, value: object) -> None:
        if value is not None:
            raise PydanticCustomError(
                "bulk_only",
                "only the bulk routes (POST /api/v1/sharing/conflicts/resolve and "
                "/sharing/conflicts/plan) take element or ids; this one decides the "
                "conflict of its path alone",
            )


class SelectBody(_Body):
    element: str | None = Field(default=None, max_length=64)
    ids: RowIds | None = Field(
        default=None, max_length=10_000, description="only these (those still failed)"
    )
    by: str | None = Field(default=None, max_length=128)


class ObjectBody(_Body):
    key: str = Field(min_length=1, max_length=128)
    data: dict[str, Any]


class FieldsBody(_Body):
    data: dict[str, Any] = Field(description="fields to set; the others are kept")


class BatchBody(_Body):
    changes: list[UpdateItem] = Field(min_length=1, max_length=10_000)


async def _sharing(request: Request) -> SharingService:
    # async: FastAPI runs a plain def dependency in a worker thread, a hop per request.
    sharing: SharingService | None = request.app.state.services.sharing
    if sharing is None:
        raise ProvsyncError("sharing is not running")
    return sharing


SharingDep = Annotated[SharingService, Depends(_sharing)]


def distribution_json(row: Distribution) -> dict[str, Any]:
    return {
        "id": row.id,
        "element": row.element,
        "class": row.cls,
        "key": row.key,
        "op": row.op,
        "data": row.data,
        "origin": row.origin,
        "state": row.state,
        "attempts": row.attempts,
        "rejected": row.rejected,
        "error": row.error,
        "created": iso(row.created_at),
        "updated": iso(row.updated_at),
    }


def conflict_json(row: Conflict) -> dict[str, Any]:
    return {
        "id": row.id,
        "element": row.element,
        "class": row.cls,
        "key": row.key,
        "hub_key": row.hub_key,
        "category": row.category,
        "hub": row.hub_data,
        "element_value": row.element_data,
        "base": row.base_data,
        "reason": row.reason,
        "state": row.state,
        "resolution": row.resolution,
        "resolved_by": row.resolved_by,
        "created": iso(row.created_at),
        "resolved": iso(row.resolved_at),
    }


def change_json(change: Change) -> dict[str, Any]:
    return {"class": change.cls, "key": change.key, "op": change.op, "data": change.data}


def planned_json(item: Planned) -> dict[str, Any]:
    """One decision of a plan: the conflict, the hub's value now, what is written where,
    who receives it, the distributions it cancels, and a refusal (where it would stop)."""
    return {
        "conflict": conflict_json(item.conflict),
        "take": item.take,
        "hub_now": item.hub_value,
        "written_to": item.written_to or None,
        "changes": [change_json(c) for c in item.changes],
        "sent_to": item.sent_to,
        "cancelled": [distribution_json(d) for d in item.cancelled],
        "refused": item.refused or None,
    }


def shared_json(item: SharedObject) -> dict[str, Any]:
    return {
        "class": item.cls,
        "key": item.key,
        "data": item.data,
        "origin": item.origin,
        "changed": iso(item.changed_at),
    }


def _item(item: UpdateItem) -> dict[str, Any]:
    return {"class": item.cls, "key": item.key, "op": item.op, "data": item.data}


ELEMENT_ROUTES = frozenset(
    f"/api/v1/sharing/{name}" for name in ("start", "sync", "updates", "device-data")
)
"""The element-to-hub routes (POST): the only ones the elements' token opens. The
control API's guard checks the token from this list before the body is read."""


def sharing_router(authorize: Any, authorize_element: Any) -> APIRouter:
    outer = APIRouter()
    elements = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize_element)])
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    # -------------------------------------------------------------- element to hub
    @elements.post("/sharing/start", summary="An element starts sharing (version checked)")
    async def start(sharing: SharingDep, body: StartBody) -> dict[str, Any]:
        return await sharing.start_sharing(body.element, body.software_version)

    @elements.post("/sharing/sync", status_code=202, summary="Sync an element's data to the hub")
    async def sync(sharing: SharingDep, body: ElementRef) -> dict[str, Any]:
        return {"job": await sharing.request_sync(body.element)}

    @elements.post("/sharing/updates", summary="Updates an element pushes to the hub")
    async def updates(sharing: SharingDep, body: PushBody) -> dict[str, Any]:
        results = await sharing.push(body.element, [_item(u) for u in body.updates])
        return {"results": results}

    @elements.post("/sharing/device-data", summary="Device-data notification from an element")
    async def device_data(sharing: SharingDep, body: DevicesBody) -> dict[str, Any]:
        stored = await sharing.device_notification(
            body.element, [d.model_dump() for d in body.devices]
        )
        return {"stored": stored}

    # -------------------------------------------------------------- operators
    @router.get("/sharing", summary="Sharing state of the hub and each element")
    async def status(sharing: SharingDep) -> dict[str, Any]:
        return await sharing.status()

    @router.get("/sharing/conflicts", summary="Reconcile: conflicts by category")
    async def conflicts(sharing: SharingDep, all: bool = False) -> dict[str, Any]:
        report = await sharing.conflicts(open_only=not all)
        return {
            "running": report.running,
            "summary": report.summary,
            "conflicts": [conflict_json(c) for c in report.conflicts],
        }

    @router.post("/sharing/conflicts/{conflict_id}/resolve", summary="Resolve one conflict")
    async def resolve(
        sharing: SharingDep, conflict_id: RowId, body: ResolveOneBody
    ) -> dict[str, Any]:
        return await sharing.resolve(conflict_id, body.take, body.by)

    @router.post("/sharing/conflicts/resolve", summary="Resolve every open conflict (or ids)")
    async def resolve_all(sharing: SharingDep, body: ResolveBody) -> dict[str, Any]:
        return await sharing.resolve(None, body.take, body.by, body.element, body.ids)

    # The plans: what the resolve with the same body would do now, nothing changed (its
    # ``by`` is not used: a plan records nothing).
    @router.post("/sharing/conflicts/{conflict_id}/plan", summary="What a resolve would do")
    async def plan(sharing: SharingDep, conflict_id: RowId, body: ResolveOneBody) -> dict[str, Any]:
        planned = await sharing.plan(conflict_id, body.take)
        return {"take": body.take, "plan": [planned_json(p) for p in planned]}

    @router.post("/sharing/conflicts/plan", summary="What a bulk resolve would do")
    async def plan_all(sharing: SharingDep, body: ResolveBody) -> dict[str, Any]:
        planned = await sharing.plan(None, body.take, body.element, body.ids)
        return {"take": body.take, "plan": [planned_json(p) for p in planned]}

    @router.get("/sharing/devices", summary="Phone services: full details or number only")
    async def devices(sharing: SharingDep) -> list[dict[str, Any]]:
        return await sharing.devices()

    @router.post(
        "/sharing/device-data/sync",
        status_code=202,
        summary="Run a device-data sync with all elements",
    )
    async def device_sync(sharing: SharingDep) -> dict[str, str]:
        await sharing.device_sync()
        return {"status": "started"}

    # Read from the store, but only while sharing runs (as the other sharing routes).
    running = [Depends(_sharing)]

    @router.get(
        "/distributions",
        summary="Distribution records (default: not yet done)",
        dependencies=running,
    )
    async def distributions(
        store: StoreDep,
        element: str | None = None,
        state: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[dict[str, Any]]:
        element_id = None
        if element is not None:
            element_id = (await asyncio.to_thread(store.elements.get, element)).id
        states = tuple(state) if state else OPEN_STATES
        bad = set(states) - {"pending", "inflight", "done", "error"}
        if bad:
            raise InvalidRequest(f"state must be pending, inflight, done or error, not {bad}")
        rows = await asyncio.to_thread(
            store.distribution_admin.listed, element_id=element_id, states=states, limit=limit
        )
        return [distribution_json(r) for r in rows]

    @router.post("/distributions/{distribution_id}/retry", summary="Retry a failed distribution")
    async def retry_one(
        sharing: SharingDep, distribution_id: RowId, body: SelectBody | None = None
    ) -> dict[str, Any]:
        by = body.by if body else None
        return {"retried": await sharing.retry_distributions([distribution_id], None, by)}

    @router.post("/distributions/retry", summary="Retry every failed distribution (filter)")
    async def retry_all(sharing: SharingDep, body: SelectBody) -> dict[str, Any]:
        retried = await sharing.retry_distributions(body.ids, body.element, body.by)
        return {"retried": retried}

    @router.delete("/distributions/{distribution_id}", summary="Delete a failed distribution")
    async def delete_one(
        sharing: SharingDep,
        distribution_id: RowId,
        by: Annotated[str | None, Query(max_length=128)] = None,
    ) -> dict[str, Any]:
        return {"deleted": await sharing.delete_distributions([distribution_id], None, by)}

    @router.post("/distributions/delete", summary="Delete failed distributions (filter)")
    async def delete_all(sharing: SharingDep, body: SelectBody) -> dict[str, Any]:
        deleted = await sharing.delete_distributions(body.ids, body.element, body.by)
        return {"deleted": deleted}

    # -------------------------------------------------------------- hub data (flow-through)
    @router.get(
        "/objects/{cls}", summary="The hub's shared objects of a class", dependencies=running
    )
    async def objects(
        store: StoreDep,
        cls: str,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.shared.page, cls, after=after, limit=limit)
        return [shared_json(r) for r in rows]

    @router.get("/objects/{cls}/{key:path}", summary="One shared object", dependencies=running)
    async def object_one(store: StoreDep, cls: str, key: str) -> dict[str, Any]:
        data = await asyncio.to_thread(store.shared.get, cls, key)
        if data is None:
            raise ObjectNotFound(f"no {cls} {key} on the hub")
        return {"class": cls, "key": key, "data": data}

    @router.post("/objects/{cls}", summary="Add a shared object (flows to the elements)")
    async def add(sharing: SharingDep, cls: str, body: ObjectBody) -> dict[str, Any]:
        change = {"class": cls, "key": body.key, "op": "create", "data": body.data}
        return await sharing.hub_changes([change], None)

    @router.patch("/objects/{cls}/{key:path}", summary="Change fields of a shared object")
    async def change(sharing: SharingDep, cls: str, key: str, body: FieldsBody) -> dict[str, Any]:
        return await sharing.hub_changes(
            [{"class": cls, "key": key, "op": "update", "data": body.data}], None
        )

    @router.delete("/objects/{cls}/{key:path}", summary="Delete a shared object")
    async def delete(sharing: SharingDep, cls: str, key: str) -> dict[str, Any]:
        return await sharing.hub_changes(
            [{"class": cls, "key": key, "op": "delete", "data": None}], None
        )

    @router.post("/objects", summary="Several hub changes at once (all or nothing)")
    async def batch(sharing: SharingDep, body: BatchBody) -> dict[str, Any]:
        return await sharing.hub_changes([_item(c) for c in body.changes], None)

    # -------------------------------------------------------------- messaging elements
    @router.post("/elements/{name}/activate", summary="Activate a messaging element")
    async def activate(sharing: SharingDep, name: str) -> dict[str, Any]:
        return await sharing.activate(name)

    outer.include_router(elements)
    outer.include_router(router)
    return outer
