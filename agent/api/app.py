"""The control API application.

Every route but ``/api/v1/health`` needs ``Authorization: Bearer <token>``, checked from
the headers before any body is read (:mod:`agent.api.guard`). Errors are JSON
``{"error": "..."}`` with a 4xx status that says what is wrong (503 when the store cannot
do it now, with ``Retry-After`` when the writer is overloaded); a request is either
applied whole (after its commit) or not at all.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from agent import __version__
from agent.alarms import queries
from agent.alarms.catalog import Kind
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import AckOp, ClearOp, Operation
from agent.alarms.records import AlarmChange, alarm_to_json, iso
from agent.alarms.severity import Severity
from agent.api.guard import UNAUTHORIZED, Policy, RequestGuard, Scope
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
    TestRequest,
)
from agent.api.sharing_routes import ELEMENT_ROUTES, sharing_router
from agent.api.sync_routes import sync_router
from agent.errors import (
    AlarmNotFound,
    ConfigError,
    ElementNotFound,
    InvalidRequest,
    JobNotFound,
    ObjectNotFound,
    OverloadedError,
    ProvsyncError,
    SharingError,
    UnknownAlarmType,
)
from agent.export.base import Exporter
from agent.store.access import StoreAccess
from agent.store.outage import ThrottledLog, is_store_outage


@dataclass
class Services:
    """What the routes use; built by the agent's lifecycle and injected here."""

    manager: AlarmManager
    token: str
    started_at: datetime
    store_url: str
    store_id: str
    element_token: str = ""
    """Accepted on the element-to-hub routes only (besides the operators' token)."""
    exporters: list[Exporter] = field(default_factory=list)
    request_stop: Callable[[], None] = lambda: None
    snmp: Any = None
    """The SnmpService when SNMP is enabled."""
    sync: Any = None
    """The SyncEngine."""
    sharing: Any = None
    """The SharingService."""
    store: StoreAccess | None = None
    """The store's repositories (elements, jobs, shared data, distributions...)."""
    max_body: int = 1 << 20
    """``[api] max_body``: the largest request body, in bytes."""
    max_batch: int = 1000
    """``[api] max_batch``: the most operations in one request of the batch route."""
    store_state: Callable[[], str] = lambda: "owned"
    """owned, fenced (lock lost: writes refused until it is back) or lost (taken over)."""


_bearer = HTTPBearer(auto_error=False, description="the token from [api] token or api.token")


# The dependencies are coroutines although they never wait: FastAPI runs a plain def
# dependency in a worker thread, two thread hops per request (most of its cost here).
async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def _matches(credentials: HTTPAuthorizationCredentials | None, *tokens: str) -> bool:
    if credentials is None:
        return False
    return _given_matches(credentials.credentials, tokens)


def _given_matches(credentials: str, tokens: tuple[str, ...]) -> bool:
    given = credentials.encode()
    # Every token compared, in constant time, whichever matches.
    results = [secrets.compare_digest(given, t.encode()) for t in tokens if t]
    return any(results)


def route_authorized(authorization: str | None, *tokens: str) -> bool:
    """What ``_authorize`` decides for an ``Authorization`` header (decoded as Starlette
    decodes headers, latin-1): HTTPBearer's parsing, then ``_matches``. For the routes
    served without FastAPI's stack (:mod:`agent.api.fast_routes`)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return False
    return _given_matches(credentials, tokens)


def _refuse() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _authorize(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not _matches(credentials, services.token):
        raise _refuse()


async def _authorize_element(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Element-to-hub routes: the elements' token (or the operators')."""
    if not _matches(credentials, services.token, services.element_token):
        raise _refuse()


def _change(result: AlarmChange) -> dict[str, Any]:
    return {"change": result.change, "seq": result.seq, "alarm": alarm_to_json(result.alarm)}


def _severities(values: list[str] | None) -> list[Severity] | None:
    if not values:
        return None
    try:
        return [Severity(v) for v in values]
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise InvalidRequest(f"severity must be one of: {allowed}") from None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _snmp_status(snmp: Any) -> dict[str, Any] | None:
    if snmp is None:
        return None
    return {
        "engine_id": snmp.engine_id,
        "engine_boots": snmp.boots,
        "listen": list(snmp.snmp.listen),
        "view_seq": snmp.data.seq,
        "requests": dict(snmp.fast.counters) | snmp.counters,
    }


_BATCH_DESCRIPTION = """For gateways: a list of operations, applied in order, each answered.

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


def _status_of(exc: ProvsyncError) -> int:
    return next((s for t, s in _STATUS_OF if isinstance(exc, t)), 503)


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
    return {"ok": False, "status": _status_of(exc), "error": str(exc)}


async def _run_batch(services: Services, items: list[BatchOperation]) -> dict[str, Any]:
    manager = services.manager
    if len(items) > services.max_batch:
        _too_long(f"{len(items)} in one batch, at most {services.max_batch} ([api] max_batch)")
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
            results.append(
                {
                    "ok": True,
                    "change": change.change,
                    "seq": change.seq,
                    "alarm": alarm_to_json(change.alarm),
                }
            )
        elif isinstance(error, ProvsyncError):
            results.append(_failed(error))
        else:  # the writer turns everything into ProvsyncError; anything else is a bug
            raise error
    return {"results": results}


# ------------------------------------------------------------------ the write routes
# What each write route does, called by its FastAPI route and by the fast routes
# (agent.api.fast_routes): the same manager calls and answers whichever serves it.
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
    return _change(result)


async def do_clear_by_key(services: Services, body: ClearByKeyRequest) -> dict[str, Any]:
    result = await services.manager.clear(
        type_id=body.type,
        resource=body.resource,
        qualifier=body.qualifier,
        note=body.note,
        by=body.by,
        bounded=True,
    )
    return _change(result)


async def do_clear_by_id(
    services: Services, alarm_id: int, body: NoteRequest | None
) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.clear(alarm_id, note=body.note, by=body.by, bounded=True)
    return _change(result)


async def do_ack(services: Services, alarm_id: int, body: NoteRequest | None) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.acknowledge(alarm_id, note=body.note, by=body.by, bounded=True)
    return _change(result)


async def do_unack(services: Services, alarm_id: int, body: NoteRequest | None) -> dict[str, Any]:
    body = body or NoteRequest()
    result = await services.manager.acknowledge(
        alarm_id, acknowledge=False, note=body.note, by=body.by, bounded=True
    )
    return _change(result)


async def do_batch(services: Services, body: BatchRequest) -> dict[str, Any]:
    return await _run_batch(services, body.operations)


def _router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(_authorize)])

    @router.get("/status", summary="Agent status, alarm counts and exporter cursors")
    async def status(services: ServicesDep) -> dict[str, Any]:
        store_state = services.store_state()
        # Fenced: the store may be unreachable; the status answers at once and says so.
        counts = None
        if store_state == "owned":
            counts = await asyncio.to_thread(queries.alarm_counts, services.manager.engine)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": iso(services.started_at),
            "store": services.store_url,
            "store_id": services.store_id,
            "store_state": store_state,
            "last_seq": services.manager.last_seq,
            "writer": {
                "pending": services.manager.pending,
                "max_pending_writes": services.manager.pending_max,
                "refused": services.manager.refused,
            },
            "active_alarms": counts,
            "exporters": [
                {
                    "name": e.name,
                    "cursor": e.cursor,
                    "backlog": e.backlog(),
                    "delivered": e.delivered,
                    "failures": e.failures,
                    # Messages a collector's size limit cannot hold (syslog only): skipped.
                    "oversized": getattr(e, "oversized", 0),
                    "last_error": e.last_error,
                    "down_for": _rounded(e.down_for()),
                }
                for e in services.exporters
            ],
            "snmp": _snmp_status(services.snmp),
        }

    @router.get("/catalog", summary="Alarm and event types (alarm inventory)")
    async def catalog(services: ServicesDep) -> list[dict[str, Any]]:
        return [t.to_dict() for t in services.manager.catalog]

    @router.get("/alarms", summary="List alarms")
    async def list_alarms(
        services: ServicesDep,
        state: Annotated[str, Query(pattern="^(active|cleared|all)$")] = "active",
        severity: Annotated[list[str] | None, Query()] = None,
        type: Annotated[str | None, Query()] = None,
        resource: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
        after: AfterQuery = 0,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            queries.list_alarms,
            services.manager.engine,
            state=state,
            severities=_severities(severity),
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
        description=_BATCH_DESCRIPTION,
    )
    async def batch(services: ServicesDep, body: BatchRequest) -> dict[str, Any]:
        return await do_batch(services, body)

    @router.get("/alarms/{alarm_id}", summary="One alarm with its history")
    async def show_alarm(services: ServicesDep, alarm_id: RowId) -> dict[str, Any]:
        alarm = await asyncio.to_thread(queries.get_alarm, services.manager.engine, alarm_id)
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

    @router.get("/events", summary="List events, oldest first")
    async def list_events(
        services: ServicesDep,
        type: Annotated[str | None, Query()] = None,
        resource: str | None = None,
        severity: Annotated[list[str] | None, Query()] = None,
        after: AfterQuery = 0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            queries.list_events,
            services.manager.engine,
            type_id=type,
            resource=resource,
            severities=_severities(severity),
            after_seq=after,
            limit=limit,
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

    @router.post("/shutdown", summary="Stop the agent gracefully")
    async def shutdown(services: ServicesDep) -> dict[str, str]:
        services.request_stop()
        return {"status": "stopping"}

    return router


# Most specific first; any other ProvsyncError means the store could not do it (503).
_STATUS_OF: tuple[tuple[type[ProvsyncError], int], ...] = (
    (UnknownAlarmType, 400),
    (AlarmNotFound, 404),
    (ElementNotFound, 404),
    (JobNotFound, 404),
    (InvalidRequest, 400),
    (ConfigError, 400),
    (SharingError, 409),
    (ObjectNotFound, 404),
)


HEALTH = "/api/v1/health"


def token_policy(services: Services) -> Policy:
    """The tokens a request needs, from its method and path alone (no body read yet).

    Public: the health route, and what is not under ``/api/`` (OpenAPI, docs). The
    elements' token opens the element-to-hub routes (``ELEMENT_ROUTES``) only; everything
    else under ``/api/`` needs the operators' token, unknown paths included (nobody learns
    which routes exist without it). The routes' own dependencies say the same again.
    """
    operators = (services.token,)
    elements = (services.token, services.element_token)

    def policy(scope: Scope) -> tuple[str, ...] | None:
        path = str(scope.get("path", ""))
        if path == HEALTH or not path.startswith("/api/"):
            return None
        if scope.get("method") == "POST" and path in ELEMENT_ROUTES:
            return elements
        return operators

    return policy


def create_app(services: Services, *, guard: bool = True) -> FastAPI:
    """The FastAPI application: every route, the OpenAPI document, the error answers.

    ``guard``: with the RequestGuard as its outermost middleware. False when the caller
    puts the guard in front itself (:func:`agent.api.fast_routes.create_asgi`).
    """
    app = FastAPI(
        title="provsync control API",
        version=__version__,
        description="Operate the provsync agent: alarms, events, status.",
    )
    app.state.services = services
    store_failures = ThrottledLog()
    # The last added is the outermost: the guard answers from the headers (token, then a
    # declared length) before the limiter, behind it, counts what a route reads.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=services.max_body)
    if guard:
        app.add_middleware(RequestGuard, policy=token_policy(services), max_body=services.max_body)

    @app.get(HEALTH, summary="Liveness (no token needed)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    alarms = _router()
    app.include_router(alarms)
    # For agent.api.fast_routes: these routes' own declarations (fields, dependencies).
    app.state.alarm_router = alarms
    app.include_router(sync_router(_authorize))
    app.include_router(sharing_router(_authorize, _authorize_element))

    @app.exception_handler(ProvsyncError)
    async def _ours(request: Request, exc: ProvsyncError) -> JSONResponse:
        if isinstance(exc, OverloadedError):
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        status = next((s for t, s in _STATUS_OF if isinstance(exc, t)), 503)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(DBAPIError)
    async def _store(request: Request, exc: DBAPIError) -> JSONResponse:
        # A read the store could not answer: expected while it is down (one throttled
        # line, no traceback); anything else is a bug and keeps uvicorn's traceback.
        if not is_store_outage(exc):
            raise exc
        store_failures.warning("store read failed", exc)
        return JSONResponse({"error": "the store is not available; retry later"}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            # The rest of the body is still on the wire: close rather than read it.
            return JSONResponse(
                {"error": f"request body larger than {services.max_body} bytes"},
                status_code=413,
                headers={"Connection": "close"},
            )
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)

    return app
