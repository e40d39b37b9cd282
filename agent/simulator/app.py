"""The simulator's HTTP application: Element API v1 plus its administration routes."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field

from agent import __version__
from agent.errors import SimulatorError
from agent.http_tls import client_context
from agent.simulator.state import CLASSES, Change, ElementState, RejectRule

_basic = HTTPBasic(auto_error=False)


@dataclass
class Faults:
    latency_ms: int = 0
    fail_every: int = 0
    down: bool = False
    requests: int = 0


@dataclass
class Simulator:
    state: ElementState
    username: str
    password: str
    faults: Faults
    hub: str = ""
    """Base URL of the hub's control API, for the element-to-hub calls."""
    hub_token: str = field(default="", repr=False)

    async def call_hub(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if not self.hub:
            raise SimulatorError(409, "no-hub", "start the simulator with --hub to call a hub")
        headers = {"Authorization": f"Bearer {self.hub_token}"}
        try:
            async with httpx.AsyncClient(
                base_url=self.hub, timeout=60.0, verify=client_context()
            ) as client:
                response = await client.post(f"/api/v1{path}", json=body, headers=headers)
        except httpx.TransportError as exc:
            raise SimulatorError(502, "hub-unreachable", f"the hub did not answer: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text[:200]}
        return response.status_code, answer

    def check(self, credentials: HTTPBasicCredentials | None) -> None:
        if credentials is None:
            raise SimulatorError(401, "credentials-required", "username and password required")
        user_ok = secrets.compare_digest(credentials.username.encode(), self.username.encode())
        pass_ok = secrets.compare_digest(credentials.password.encode(), self.password.encode())
        if not (user_ok and pass_ok):
            raise SimulatorError(401, "invalid-credentials", "wrong username or password")


def _simulator(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


SimulatorDep = Annotated[Simulator, Depends(_simulator)]


def _authorized(
    simulator: SimulatorDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> None:
    simulator.check(credentials)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpdateBody(_Body):
    cls: str = Field(alias="class")
    key: str = Field(min_length=1, max_length=128)
    op: str
    data: dict[str, Any] | None = None
    user: str = Field(default="provsync", max_length=64)


class LocalChangeBody(UpdateBody):
    # Someone working on the element: not "admin", the login the docs register elements
    # with, whose changes the hub takes for its own (not pulled).
    user: str = Field(default="tech", max_length=64)
    share: bool | None = Field(
        default=None, description="push to the hub; default: when the element is sharing"
    )


class EnabledBody(_Body):
    enabled: bool = True


class ActivationBody(_Body):
    elements: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class VersionBody(_Body):
    software_version: str = Field(min_length=1, max_length=32)


class RejectBody(_Body):
    cls: str = Field(default="*", alias="class")
    key_prefix: str = ""
    reason: str = "rejected by rule"


class FaultsBody(_Body):
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    fail_every: int = Field(default=0, ge=0)
    down: bool = False


class RetentionBody(_Body):
    keep: int = Field(ge=0)


def _api() -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(_authorized)])

    @router.get("/info")
    async def info(simulator: SimulatorDep) -> dict[str, Any]:
        state = simulator.state
        return {
            "api_version": 1,
            "element_id": state.element_id,
            "type": state.type,
            "software_version": state.software_version,
            "epoch": state.epoch,
            "classes": list(CLASSES),
            "last_seq": state.last_seq,
            "counts": state.counts(),
            "notify_sync": state.notify_sync,
        }

    @router.get("/objects/{cls}")
    async def objects(
        simulator: SimulatorDep,
        cls: str,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        after: str | None = None,
        snapshot: str | None = None,
    ) -> dict[str, Any]:
        state = simulator.state
        if snapshot is None:
            snapshot = state.snapshot_token()
        else:
            state.check_snapshot(snapshot)
        items, following = state.page(cls, after, limit)
        return {"snapshot": snapshot, "objects": items, "next": following}

    @router.get("/changes")
    async def changes(
        simulator: SimulatorDep,
        after: Annotated[int, Query(ge=0)] = 0,
        epoch: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        state = simulator.state
        found = state.changes_after(after, epoch, limit)
        return {
            "epoch": state.epoch,
            "changes": [c.to_json() for c in found],
            "last_seq": state.last_seq,
        }

    @router.post("/updates")
    async def updates(simulator: SimulatorDep, body: UpdateBody) -> dict[str, Any]:
        try:
            entry = simulator.state.apply_update(body.user, body.op, body.cls, body.key, body.data)
        except SimulatorError as exc:
            if exc.status == 409:
                raise SimulatorError(409, "rejected", str(exc)) from None
            raise
        return {"status": "accepted", "seq": entry.seq}

    @router.post("/device-data")
    async def device_data(simulator: SimulatorDep, body: EnabledBody) -> dict[str, bool]:
        simulator.state.device_data = body.enabled
        return {"device_data": body.enabled}

    @router.post("/activation")
    async def activation(simulator: SimulatorDep, body: ActivationBody) -> dict[str, Any]:
        if simulator.state.type != "messaging":
            raise SimulatorError(409, "not-messaging", "only messaging elements are activated")
        simulator.state.activations.append(body.elements)
        return {"activated": len(simulator.state.activations)}

    return router


async def _notify(simulator: Simulator, entry: Change) -> dict[str, Any]:
    """CM notify sync: tell the hub of a local change; what the hub applied is marked
    processed by notify sync in the log (the hub moved its cursor past it)."""
    state = simulator.state
    change = entry.to_json()
    del change["time"], change["notify_sync"]
    try:
        status, hub = await simulator.call_hub(
            "/sync/notify",
            {"element": state.element_id, "epoch": state.epoch, "changes": [change]},
        )
    except SimulatorError as exc:  # the hub is down: the incremental takes the change
        return {"status": exc.status, "error": exc.error}
    if status != 200:
        return {"status": status, **(hub if isinstance(hub, dict) else {})}
    result: dict[str, Any] = hub["results"][0]
    entry.notify_sync = result.get("status") == "applied"
    return result


def _admin() -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(_authorized)])

    @router.post("/changes")
    async def change(simulator: SimulatorDep, body: LocalChangeBody) -> dict[str, Any]:
        state = simulator.state
        entry = state.change(body.user, body.op, body.cls, body.key, body.data)
        answer: dict[str, Any] = entry.to_json()
        if state.notify_sync and simulator.hub:
            answer["notify"] = await _notify(simulator, entry)
            answer["notify_sync"] = entry.notify_sync
        share = state.sharing if body.share is None else body.share
        if share and simulator.hub:
            update = {"class": body.cls, "key": body.key, "op": body.op, "data": entry.data}
            status, hub = await simulator.call_hub(
                "/sharing/updates", {"element": state.element_id, "updates": [update]}
            )
            answer["hub"] = hub["results"][0] if status == 200 else {"status": status, **hub}
        if state.device_data and simulator.hub and body.cls == "station":
            device = {"number": body.key, "data": entry.data}
            await simulator.call_hub(
                "/sharing/device-data", {"element": state.element_id, "devices": [device]}
            )
        return answer

    @router.post("/notify-sync")
    async def notify_sync(simulator: SimulatorDep, body: EnabledBody) -> dict[str, bool]:
        simulator.state.notify_sync = body.enabled
        return {"notify_sync": body.enabled}

    @router.post("/sharing/start")
    async def start_sharing(simulator: SimulatorDep) -> JSONResponse:
        state = simulator.state
        status, answer = await simulator.call_hub(
            "/sharing/start",
            {"element": state.element_id, "software_version": state.software_version},
        )
        state.sharing = status == 200 or state.sharing
        return JSONResponse(answer, status_code=status)

    @router.post("/sharing/sync")
    async def sync_to_hub(simulator: SimulatorDep) -> JSONResponse:
        status, answer = await simulator.call_hub(
            "/sharing/sync", {"element": simulator.state.element_id}
        )
        return JSONResponse(answer, status_code=status)

    @router.get("/status")
    async def status(simulator: SimulatorDep) -> dict[str, Any]:
        state = simulator.state
        return {
            "element_id": state.element_id,
            "software_version": state.software_version,
            "sharing": state.sharing,
            "device_data": state.device_data,
            "activations": state.activations,
            "hub": simulator.hub,
            "counts": state.counts(),
        }

    @router.get("/objects/{cls}")
    async def dump(simulator: SimulatorDep, cls: str) -> dict[str, Any]:
        if cls not in CLASSES:
            raise SimulatorError(404, "unknown-class", f"no object class {cls!r}")
        return dict(simulator.state.objects[cls])

    @router.post("/version")
    async def version(simulator: SimulatorDep, body: VersionBody) -> dict[str, str]:
        simulator.state.software_version = body.software_version
        return {"software_version": body.software_version}

    @router.post("/epoch")
    async def epoch(simulator: SimulatorDep) -> dict[str, str]:
        simulator.state.reset_epoch()
        return {"epoch": simulator.state.epoch}

    @router.post("/wipe")
    async def wipe(simulator: SimulatorDep) -> dict[str, str]:
        state = simulator.state
        for cls in state.objects:
            state.objects[cls].clear()
            state.keys[cls].clear()
        state.reset_epoch()
        return {"epoch": state.epoch}

    @router.post("/reject")
    async def reject(simulator: SimulatorDep, body: RejectBody) -> dict[str, int]:
        simulator.state.reject_rules.append(RejectRule(body.cls, body.key_prefix, body.reason))
        return {"rules": len(simulator.state.reject_rules)}

    @router.delete("/reject")
    async def clear_rules(simulator: SimulatorDep) -> dict[str, int]:
        simulator.state.reject_rules.clear()
        return {"rules": 0}

    @router.post("/faults")
    async def faults(simulator: SimulatorDep, body: FaultsBody) -> dict[str, Any]:
        simulator.faults = Faults(body.latency_ms, body.fail_every, body.down)
        return body.model_dump()

    @router.post("/retention")
    async def retention(simulator: SimulatorDep, body: RetentionBody) -> dict[str, int]:
        state = simulator.state
        state.retention = body.keep
        while len(state.log) > state.retention:
            state.log.popleft()
        return {"kept": len(state.log)}

    return router


def create_simulator_app(simulator: Simulator) -> FastAPI:
    app = FastAPI(title="provsync element simulator", version=__version__)
    app.state.simulator = simulator

    @app.middleware("http")
    async def _faults(request: Request, call_next: Any) -> Any:
        faults = simulator.faults
        if not request.url.path.startswith("/admin") and request.url.path != "/api/v1/health":
            faults.requests += 1
            if faults.down:
                return JSONResponse({"error": "down"}, status_code=503)
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.fail_every and faults.requests % faults.fail_every == 0:
                return JSONResponse({"error": "injected-failure"}, status_code=500)
        return await call_next(request)

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(_api())
    app.include_router(_admin())

    @app.exception_handler(SimulatorError)
    async def _refused(request: Request, exc: SimulatorError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Basic"} if exc.status == 401 else None
        body: dict[str, Any] = {"error": exc.error, "message": str(exc)}
        if exc.error == "rejected":
            body = {"status": "rejected", "reason": str(exc)}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    return app
