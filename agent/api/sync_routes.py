"""Control API routes for elements, synchronization and jobs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.alarms.records import iso
from agent.api.schemas import RowId
from agent.errors import JobNotFound, ProvsyncError
from agent.store.access import StoreAccess
from agent.store.element_types import DEFAULT_ELEMENT_TYPE
from agent.store.elements import Credentials, Element
from agent.store.jobs import Job
from agent.store.schedule import next_due
from agent.sync.engine import SyncEngine
from agent.sync.init import SyncOptions

MAX_INTERVAL = 366 * 86400
"""A sync schedule is at most a year apart (seconds)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ElementBody(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    type: str = DEFAULT_ELEMENT_TYPE
    url: str = Field(min_length=1, max_length=255)
    connector: str = "http"
    username: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, max_length=1024)
    interval: int | None = Field(
        default=None, ge=0, le=MAX_INTERVAL, description="seconds; 0: no schedule"
    )
    cron: str = Field(default="", max_length=128, description="crontab (UTC), instead")
    uses: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="messaging elements: the network elements they use",
    )


class ScheduleBody(_Body):
    interval: int | None = Field(default=None, ge=0, le=MAX_INTERVAL)
    cron: str | None = Field(default=None, max_length=128)
    url: str | None = Field(default=None, min_length=1, max_length=255)
    uses: list[str] | None = Field(default=None, max_length=100)


class CredentialsBody(_Body):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(max_length=1024)


class SyncBody(_Body):
    kind: str = Field(pattern="^(init|incremental|force)$")
    dry_run: bool = Field(default=False, description="force only: report what it would do")
    yes: bool = Field(default=False, description="force only: allow deleting hub data")
    max_delete: int | None = Field(
        default=None,
        ge=0,
        le=2**31,
        description="force with yes: the most hub objects it may delete (a dry run's "
        "would_delete); more, and it is refused with nothing deleted",
    )

    @model_validator(mode="after")
    def _force_only(self) -> SyncBody:
        # Asked of another kind they would be ignored (incremental) or half-applied (an
        # init's dry run): refused, so a caller never thinks it confirmed something.
        if self.kind != "force" and (self.dry_run or self.yes or self.max_delete is not None):
            raise ValueError("dry_run, yes and max_delete are for kind force only")
        return self


async def _engine(request: Request) -> SyncEngine:
    # async: FastAPI runs a plain def dependency in a worker thread, a hop per request.
    sync: SyncEngine | None = request.app.state.services.sync
    if sync is None:
        raise ProvsyncError("synchronization is not running")
    return sync


EngineDep = Annotated[SyncEngine, Depends(_engine)]


async def _store(request: Request) -> StoreAccess:
    store: StoreAccess | None = request.app.state.services.store
    if store is None:
        raise ProvsyncError("the store is not open")
    return store


StoreDep = Annotated[StoreAccess, Depends(_store)]
"""The store's repositories (the routes of sync and sharing read through them)."""


def element_json(
    element: Element,
    counts: dict[str, int] | None = None,
    *,
    last_attempt: datetime | None = None,
) -> dict[str, Any]:
    """An element as the API answers it; ``last_attempt``: when its last job ended (the
    schedule counts from it, so ``next_sync_at`` is when the schedule will queue one)."""
    data: dict[str, Any] = {
        "name": element.name,
        "type": element.type,
        "address": element.address,
        "connector": element.connector,
        "interval": element.interval,
        "cron": element.cron,
        "sync_state": element.sync_state,
        "cursor": element.cursor,
        "epoch": element.epoch,
        "software_version": element.software_version,
        "last_init_ok": element.last_init_ok,
        "remote_id": element.remote_id,
        "sharing": element.sharing,
        "device_data": element.device_data,
        "uses": list(element.uses),
        "last_sync_at": iso(element.last_sync_at),
        # None: no schedule. In the past while the due sync waits for a slot or the agent.
        "next_sync_at": iso(next_due(element, last_attempt)),
        "created_at": iso(element.created_at),
    }
    if counts is not None:
        data["objects"] = counts
    return data


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "element": job.element,
        "kind": job.kind,
        "trigger": job.trigger,
        "state": job.state,
        "created": iso(job.created_at),
        "started": iso(job.started_at),
        "ended": iso(job.ended_at),
        "counts": job.counts,
        "error": job.error,
        "reason": job.reason,
    }


async def add_element(sync: SyncEngine, body: ElementBody) -> tuple[Element, int]:
    """Add the element ``body`` describes (its credentials only with a username); its
    initialization is queued: the element and that job's id. The API's ``POST
    /elements`` and the console's "Add element" form."""
    return await sync.elements.add(
        body.name,
        body.type,
        body.url,
        body.connector,
        interval=body.interval,
        credentials=Credentials(body.username, body.password or "") if body.username else None,
        cron=body.cron,
        uses=body.uses,
    )


async def elements_view(store: StoreAccess, *, counts: bool = False) -> list[dict[str, Any]]:
    """Every element as ``GET /elements`` answers it; ``counts``: with its object counts
    (one query for them all), as the console's list shows them."""
    found = await asyncio.to_thread(store.elements.all)
    attempts = await asyncio.to_thread(store.jobs.last_attempts)
    objects = await asyncio.to_thread(store.elements.object_counts_all) if counts else {}
    return [
        element_json(e, objects.get(e.id, {}) if counts else None, last_attempt=attempts.get(e.id))
        for e in found
    ]


async def element_view(store: StoreAccess, name: str) -> dict[str, Any]:
    """One element with its object counts, as ``GET /elements/{name}`` answers it.

    Raises:
        ElementNotFound: no such element.
    """
    element = await asyncio.to_thread(store.elements.get, name)
    counts = await asyncio.to_thread(store.elements.object_counts, element.id)
    attempts = await asyncio.to_thread(store.jobs.last_attempts)
    return element_json(element, counts, last_attempt=attempts.get(element.id))


def sync_router(authorize: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)])

    @router.get("/elements", summary="Network elements and their sync state")
    async def elements(store: StoreDep) -> list[dict[str, Any]]:
        return await elements_view(store)

    @router.post("/elements", summary="Add an element (an initialization sync follows)")
    async def add(sync: EngineDep, body: ElementBody) -> dict[str, Any]:
        element, job = await add_element(sync, body)
        return {"element": element_json(element), "job": job}

    @router.get("/elements/{name}", summary="One element with its object counts")
    async def show(store: StoreDep, name: str) -> dict[str, Any]:
        return await element_view(store, name)

    @router.patch("/elements/{name}", summary="Change the element's schedule, address or uses")
    async def schedule(
        sync: EngineDep, store: StoreDep, name: str, body: ScheduleBody
    ) -> dict[str, Any]:
        element = await sync.elements.update(
            name, interval=body.interval, cron=body.cron, url=body.url, uses=body.uses
        )
        attempts = await asyncio.to_thread(store.jobs.last_attempts)
        return element_json(element, last_attempt=attempts.get(element.id))

    @router.delete("/elements/{name}", summary="Remove an element and the hub's copy")
    async def remove(sync: EngineDep, name: str) -> dict[str, str]:
        await sync.elements.remove(name)
        return {"removed": name}

    @router.put("/elements/{name}/credentials", summary="Set the element's credentials")
    async def credentials(sync: EngineDep, name: str, body: CredentialsBody) -> dict[str, str]:
        # Saved, then tested with a login (the contact alarms follow): "tested" says how.
        tested = await sync.elements.set_credentials(
            name, Credentials(body.username, body.password)
        )
        return {"element": name, "credentials": "set", "tested": tested}

    @router.post("/elements/{name}/test", summary="Test the element's login (credentials kept)")
    async def test_login(sync: EngineDep, name: str) -> dict[str, str]:
        # A login with the saved credentials; the contact alarms follow, as on a PUT.
        return {"element": name, "tested": await sync.elements.test_login(name)}

    @router.post("/elements/{name}/sync", summary="Queue a sync (init, incremental, force)")
    async def sync_now(sync: EngineDep, name: str, body: SyncBody) -> dict[str, Any]:
        options = SyncOptions(dry_run=body.dry_run, yes=body.yes, max_delete=body.max_delete)
        job = await sync.request(name, body.kind, "manual", options)
        return {"job": job}

    @router.get("/jobs", summary="Sync jobs, oldest first")
    async def jobs(
        store: StoreDep,
        element: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[dict[str, Any]]:
        return [job_json(j) for j in await asyncio.to_thread(store.jobs.recent, element, limit)]

    @router.get("/jobs/{job_id}", summary="One sync job")
    async def job(store: StoreDep, job_id: RowId) -> dict[str, Any]:
        found = await asyncio.to_thread(store.jobs.get, job_id)
        if found is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job_json(found)

    return router
