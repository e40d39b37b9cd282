"""Control API routes for alarms: list, show, raise, clear, acknowledge, and the batch.

The write routes' work is in the ``do_*`` functions, called by their FastAPI route and by
the fast routes (:mod:`agent.api.fast_routes`), so both answer alike whichever serves a
request.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from agent.alarms import queries
from agent.alarms.catalog import Kind
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import AckOp, ClearOp, Operation
from agent.alarms.records import AlarmChange, alarm_to_json
from agent.alarms.severity import Severity
from agent.api.schemas import (
    AfterQuery,
    BatchClear,
    BatchOperation,
    BatchRaise,
    BatchRequest,
    ClearByKeyRequest,
    NoteRequest,
    RaiseRequest,
    RowId,
)
from agent.api.services import Services, ServicesDep, StoreDep, authorize
from agent.api.statuses import status_of
from agent.errors import AlarmNotFound, InvalidRequest, OverloadedError, ProvsyncError


def change_json(result: AlarmChange) -> dict[str, Any]:
    """A write route's answer: what changed, its sequence number and the alarm."""
    return {"change": result.change, "seq": result.seq, "alarm": alarm_to_json(result.alarm)}


def severities(values: list[str] | None) -> list[Severity] | None:
    """The ``severity`` query values (None: any); InvalidRequest naming the allowed ones."""
    if not values:
        return None
    try:
        return [Severity(v) for v in values]
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise InvalidRequest(f"severity must be one of: {allowed}") from None


BATCH_DESCRIPTION = """For gateways: a list of operations, applied in order, each answered.

Each operation is `{"op": "raise", ...}` (the body of `POST /alarms`), `{"op": "clear",
"id": N}` or `{"op": "clear", "type": ..., "resource": ..., "qualifier": ...}` (with an
optional `note` and `by`), or `{"op": "ack" | "unack", "id": N}` (optional `note`, `by`).

All are handed to the alarm writer at once, in request order: they commit in its group
commits, and the answer comes when the last has committed. `results` holds one entry per
operation, in request order: `{"ok": true, "change", "seq", "alarm"}` (what the single
route answers) or `{"ok": false, "status": 404, "error": "..."}` (the status the single
route would have had). Operations are not one transaction: each is applied or refused on
its own, as if sent one by one on one connection.

Refused whole, nothing applied: a malformed operation (422), more than `[api] max_batch`
operations or more than `[api] max_pending_writes` (422), and a batch that does not fit
in the writer's bound now, each operation counting (503 with `Retry-After`)."""


def _batch_op(manager: AlarmManager, item: BatchOperation) -> Operation:
    """The writer's operation for one item; ProvsyncError when the item is refused."""
    if isinstance(item, BatchRaise):
        return manager.make_raise(
            item.type,
            item.resource,
            qualifier=item.qualifier,
            severity=item.severity,
            text=item.text,
            by=item.by,
        )
    if isinstance(item, BatchClear):
        if item.id is not None:
            return ClearOp(item.id, None, item.note, item.by)
        assert item.type is not None, "checked by the model"
        assert item.resource is not None, "checked by the model"
        if manager.catalog.get(item.type).kind is not Kind.ALARM:  # UnknownAlarmType
            raise InvalidRequest(f"{item.type!r} is an event type; cannot clear")
        return ClearOp(None, (item.type, item.resource, item.qualifier), item.note, item.by)
    return AckOp(item.id, item.op == "ack", item.note, item.by)


def _too_long(message: str) -> NoReturn:
    # As pydantic's own refusals: 422 naming the field, through the same handler.
    raise RequestValidationError(
        [{"loc": ("body", "operations"), "msg": message, "type": "too_long"}]
    )


def _failed(exc: ProvsyncError) -> dict[str, Any]:
    return {"ok": False, "status": status_of(exc), "error": str(exc)}


async def run_batch(
    manager: AlarmManager, max_batch: int, items: list[BatchOperation]
) -> dict[str, Any]:
    """The batch route's answer (see BATCH_DESCRIPTION)."""
    if len(items) > max_batch:
        _too_long(f"{len(items)} in one batch, at most {max_batch} ([api] max_batch)")
    if manager.pending_max and len(items) > manager.pending_max:
        _too_long(
            f"{len(items)} in one batch can never fit in the writer's bound of "
            f"{manager.pending_max} ([api] max_pending_writes)"
        )
    prepared: list[Operation | ProvsyncError] = []
    for item in items:
        try:
            prepared.append(_batch_op(manager, item))
        except ProvsyncError as exc:
            prepared.append(exc)
    ops = [op for op in prepared if not isinstance(op, ProvsyncError)]
    # The bound counts every operation, and the whole batch is checked before any is
    # queued: all bounded requests come from this event loop, so nothing else can take
    # the room between the check and the submits below (the writer only frees room).
    if manager.pending_max and manager.pending + len(ops) > manager.pending_max:
        manager.refused += 1
        raise OverloadedError(
            f"the alarm writer has {manager.pending} requests waiting and this batch has "
            f"{len(ops)} (bound {manager.pending_max}); retry later"
        )
    # Asyncio futures, settled on this loop once per group commit (not a thread-safe
    # Future each); the writer settles in queue order, so the last one is awaited.
    futures = manager.submit_many(ops)
    if futures:
        # Waited for, not awaited: a refused operation is answered in its place below
        # (awaiting the last one raised its refusal as the whole batch's answer).
        await asyncio.wait(futures[-1:])
        unsettled = [f for f in futures if not f.done()]  # only if the order ever changed
        if unsettled:
            await asyncio.wait(unsettled)
    results: list[dict[str, Any]] = []
    answers = iter(futures)
    for entry in prepared:
        if isinstance(entry, ProvsyncError):
            results.append(_failed(entry))
            continue
        future = next(answers)
        error = future.exception()
        if error is None:
            change: AlarmChange = future.result()
            results.append({"ok": True} | change_json(change))
        elif isinstance(error, ProvsyncError):
            results.append(_failed(error))
        else:  # the writer turns everything into ProvsyncError; anything else is a bug
            raise error
    return {"results": results}


# ------------------------------------------------------------------ the write routes
async def do_raise(services: Services, body: RaiseRequest) -> dict[str, Any]:
    result = await services.manager.raise_alarm(
        body.type,
        body.resource,
        qualifier=body.qualifier,
        severity=body.severity,
        text=body.text,
        by=body.by,
        bounded=True,
    )
    return change_json(result)


async def do_clear_by_key(services: Services, body: ClearByKeyRequest) -> dict[str, Any]:
    result = await services.manager.clear(
        type_id=body.type,
        resource=body.resource,
        qualifier=body.qualifier,
        note=body.note,
        by=body.by,
        bounded=True,
    )
    return change_json(result)


async def do_clear_by_id(
    services: Services, alarm_id: int, body: NoteRequest | None
) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.clear(alarm_id, note=body.note, by=body.by, bounded=True)
    return change_json(result)


async def do_ack(services: Services, alarm_id: int, body: NoteRequest | None) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.acknowledge(alarm_id, note=body.note, by=body.by, bounded=True)
    return change_json(result)


async def do_unack(services: Services, alarm_id: int, body: NoteRequest | None) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.acknowledge(
        alarm_id, acknowledge=False, note=body.note, by=body.by, bounded=True
    )
    return change_json(result)


async def do_batch(services: Services, body: BatchRequest) -> dict[str, Any]:
    return await run_batch(services.manager, services.max_batch, body.operations)


def alarm_router() -> APIRouter:
    """The alarm routes (the operators' token); the fast routes read their declarations."""
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.get("/alarms", summary="List alarms")
    async def list_alarms(
        store: StoreDep,
        state: Annotated[str, Query(pattern="^(active|cleared|all)$")] = "active",
        severity: Annotated[list[str] | None, Query()] = None,
        type: Annotated[str | None, Query()] = None,
        resource: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
        after: AfterQuery = 0,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            queries.list_alarms,
            store.engine,
            state=state,
            severities=severities(severity),
            type_id=type,
            resource=resource,
            limit=limit,
            after_id=after,
        )

    @router.post("/alarms", summary="Raise an alarm (or repeat / change the active one)")
    async def raise_alarm(services: ServicesDep, body: RaiseRequest) -> dict[str, Any]:
        return await do_raise(services, body)

    @router.post("/alarms/clear", summary="Clear the active alarm with this key")
    async def clear_by_key(services: ServicesDep, body: ClearByKeyRequest) -> dict[str, Any]:
        return await do_clear_by_key(services, body)

    @router.post(
        "/alarms/batch",
        summary="Raise, clear, acknowledge many alarms in one request, each answered",
        description=BATCH_DESCRIPTION,
    )
    async def batch(services: ServicesDep, body: BatchRequest) -> dict[str, Any]:
        return await do_batch(services, body)

    @router.get("/alarms/{alarm_id}", summary="One alarm with its history")
    async def show_alarm(store: StoreDep, alarm_id: RowId) -> dict[str, Any]:
        alarm = await asyncio.to_thread(queries.get_alarm, store.engine, alarm_id)
        if alarm is None:
            raise AlarmNotFound(f"no alarm with id {alarm_id}")
        return alarm

    @router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm by id")
    async def clear_by_id(
        services: ServicesDep, alarm_id: RowId, body: NoteRequest | None = None
    ) -> dict[str, Any]:
        return await do_clear_by_id(services, alarm_id, body)

    @router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm")
    async def ack(
        services: ServicesDep, alarm_id: RowId, body: NoteRequest | None = None
    ) -> dict[str, Any]:
        return await do_ack(services, alarm_id, body)

    @router.post("/alarms/{alarm_id}/unack", summary="Withdraw an acknowledgement")
    async def unack(
        services: ServicesDep, alarm_id: RowId, body: NoteRequest | None = None
    ) -> dict[str, Any]:
        return await do_unack(services, alarm_id, body)

    return router
