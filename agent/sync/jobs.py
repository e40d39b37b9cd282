"""Sync jobs: one queue and one worker per element, the initialization limit, the schedule.

- one job per element at a time: a request for an element that already has a queued job
  returns that job, made stronger if the request is (incremental < init < force);
- at most ``max_concurrent_init`` initialization syncs at once; a queued one waits for a
  slot while its job still shows "queued";
- each element's recurring incremental is queued when due (agent.store.schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger

from agent.clock import Clock
from agent.errors import InvalidRequest, ProvsyncError
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.schedule import next_due
from agent.sync.init import SyncOptions

KINDS = ("init", "incremental", "force")
_STRENGTH = {"incremental": 0, "init": 1, "force": 2}

RunJob = Callable[[Element, int, str, SyncOptions | None], Awaitable[None]]
"""The body of a job: (element, job id, kind, options); it records its own outcome."""


@dataclass
class _Slot:
    """An element's work: its queued job and its worker task."""

    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: int | None = None
    kind: str = "incremental"
    options: SyncOptions | None = None
    running: int | None = None
    task: asyncio.Task[None] | None = None


class JobQueue:
    def __init__(
        self,
        store: StoreAccess,
        clock: Clock,
        max_concurrent_init: int,
        run_job: RunJob,
        *,
        retry_interrupted: bool = False,
    ) -> None:
        self.store = store
        self.retry_interrupted = retry_interrupted
        """Queue the jobs a crash interrupted again (a [cluster]'s new leader takes over
        the dead one's jobs); else they stay failed and the next sync escalates."""
        self.clock = clock
        self._run_job = run_job
        self.init_slots = asyncio.Semaphore(max_concurrent_init)
        """Held by every initialization while it runs (an escalated incremental too)."""
        self._slots: dict[int, _Slot] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self._outages = ThrottledLog()

    async def start(self) -> None:
        interrupted = await asyncio.to_thread(self.store.jobs.fail_interrupted)
        if interrupted:
            logger.warning("{} sync jobs were interrupted by a restart", len(interrupted))
        if self.retry_interrupted:
            # Once per element, the strongest kind; options (a forced run's) are not
            # kept in the store, so a forced init comes back as a plain one.
            strongest: dict[str, str] = {}
            for job in interrupted:
                kind = "init" if job.kind == "force" else job.kind
                if _STRENGTH[kind] >= _STRENGTH[strongest.get(job.element, "incremental")]:
                    strongest[job.element] = kind
            for name, kind in strongest.items():
                try:
                    job_id = await self.request(name, kind, "takeover", None)
                except ProvsyncError as exc:
                    logger.warning("interrupted sync of {} not queued again: {}", name, exc)
                    continue
                logger.info("interrupted {} sync of {} queued again (job {})", kind, name, job_id)
        self._scheduler = asyncio.create_task(self._schedule(), name="sync-scheduler")

    async def stop(self) -> None:
        tasks = [s.task for s in self._slots.values() if s.task] + (
            [self._scheduler] if self._scheduler else []
        )
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self) -> None:
        """Wait until every job queued so far, and any it leads to, has ended."""
        while True:
            workers = [s.task for s in self._slots.values() if s.task and not s.task.done()]
            if not workers:
                return
            await asyncio.wait(workers)

    def running(self, element_id: int) -> bool:
        """A job of the element is running now (its pages may be in flight)."""
        slot = self._slots.get(element_id)
        return slot is not None and slot.running is not None

    async def request(self, name: str, kind: str, trigger: str, options: SyncOptions | None) -> int:
        """Queue a sync of ``kind``; returns the job id (an already queued one if any)."""
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
        element = await asyncio.to_thread(self.store.elements.get, name)
        slot = self._slots.setdefault(element.id, _Slot())
        async with slot.lock:
            if slot.queued is not None:
                # Collapse into the queued job, made stronger if this request is
                # (incremental < init < force; force options win).
                if _STRENGTH[kind] > _STRENGTH[slot.kind] or (
                    kind == "force" and options is not None
                ):
                    slot.kind, slot.options = kind, options
                    await asyncio.to_thread(self.store.jobs.update, slot.queued, kind=kind)
                return slot.queued
            job_id = await asyncio.to_thread(self.store.jobs.create, element, kind, trigger, None)
            slot.queued, slot.kind, slot.options = job_id, kind, options
            slot.queue.put_nowait(job_id)
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._worker(element.id), name=f"sync:{name}")
        return job_id

    async def drop(self, element_id: int) -> None:
        """The element is being removed: its queued job fails, its running one stops."""
        slot = self._slots.pop(element_id, None)
        if slot is None:
            return
        if slot.queued is not None:
            await asyncio.to_thread(
                self.store.jobs.update,
                slot.queued,
                state="failed",
                error="the element was removed",
            )
            slot.queued = None
        running = slot.running
        if slot.task is not None:
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task
        if running is not None:
            # Stopped mid-way: recorded as failed, not left "running" until a restart.
            await asyncio.to_thread(
                self.store.jobs.update,
                running,
                state="failed",
                ended_at=self.clock.now(),
                error="the element was removed",
            )

    async def _worker(self, element_id: int) -> None:
        slot = self._slots[element_id]
        while not slot.queue.empty():
            job_id = slot.queue.get_nowait()
            if job_id != slot.queued:
                continue  # cancelled (element removed)
            kind, options = slot.kind, slot.options
            slot.queued = None
            slot.running = job_id
            try:
                await self._run(element_id, job_id, kind, options)
            except Exception:
                logger.exception("sync job {} crashed", job_id)
            finally:
                slot.running = None

    async def _run(
        self, element_id: int, job_id: int, kind: str, options: SyncOptions | None
    ) -> None:
        element = await asyncio.to_thread(self.store.elements.by_id, element_id)
        if element is None:
            await asyncio.to_thread(
                self.store.jobs.update,
                job_id,
                state="failed",
                error="the element was removed",
            )
            return
        if kind == "incremental":
            await self._run_job(element, job_id, kind, options)
            return
        # An initialization waits for a slot while its job still shows "queued", so the
        # recorded start and end times show how many ran at once.
        async with self.init_slots:
            await self._run_job(element, job_id, kind, options)

    async def _schedule(self) -> None:
        """Queue each element's recurring incremental sync when it is due."""
        while True:
            await self.clock.sleep(1)
            try:
                await self.schedule_round()
            except Exception as exc:
                # A store outage must not end the schedule (the task would be gone for
                # good, and re-raised at stop); anything else is a bug worth its traceback.
                if not is_store_outage(exc):
                    raise
                self._outages.warning("sync schedule: store read failed", exc)

    async def schedule_round(self) -> None:
        """Queue the incrementals due now (once a second; a test calls it directly)."""
        elements = await asyncio.to_thread(self.store.elements.all)
        attempts = await asyncio.to_thread(self.store.jobs.last_attempts)
        at = self.clock.now()
        for element in elements:
            due = next_due(element, attempts.get(element.id))
            if due is None:
                continue
            slot = self._slots.get(element.id)
            if slot and (slot.queued or slot.running):
                continue
            if at >= due:
                try:
                    await self.request(element.name, "incremental", "schedule", None)
                except ProvsyncError as exc:
                    if is_store_outage(exc):
                        raise
                    logger.warning("scheduled sync of {}: {}", element.name, exc)
