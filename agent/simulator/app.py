"""The simulator's HTTP application: Element API v1 plus its administration routes."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field

from agent import __version__
from agent.simulator.state import CLASSES, ElementState, RejectRule, SimulatorError

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

    return router


def _admin() -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(_authorized)])

    @router.post("/changes")
    async def change(simulator: SimulatorDep, body: UpdateBody) -> dict[str, Any]:
        entry = simulator.state.change(body.user, body.op, body.cls, body.key, body.data)
        return entry.to_json()

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
