"""The sync engine: the facade over element lifecycle, jobs, initialization and
incremental syncs, and the job body that joins them.

Rules (docs/sync.md), each in its module:
- adding an element queues an initialization sync (agent.sync.elements);
- an incremental sync applies the change log after the stored cursor (the hub's own
  changes kept in the copy, not counted as pulled), and becomes an initialization or
  stops with init-sync-required when it cannot (agent.sync.incremental); CM notify sync
  applies an element's changes as they are made (agent.sync.notify);
- an initialization reads every object, a forced one deletes the hub's copy of an
  emptied element only with a confirmation (agent.sync.init);
- one job per element, at most ``max_concurrent_init`` initializations at once, the
  recurring schedule (agent.sync.jobs);
- the contact alarms a sync's outcome keeps (agent.sync.contact).

The clock and the connector factory are constructor arguments (the real ones by
default), so tests drive the engine with a fake element and a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger

from agent.alarms import queries
from agent.alarms.manager import AlarmManager
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config import SyncSettings
from agent.connectors.connections import ElementConnections
from agent.connectors.registry import ConnectorFactory, connect
from agent.errors import (
    ConnectorError,
    ElementEmptied,
    InvalidRequest,
    ProvsyncError,
    SyncStopped,
)
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.store.encryption import KeyRing
from agent.sync.contact import ContactAlarms
from agent.sync.elements import ElementHooks, ElementLifecycle
from agent.sync.incremental import Escalate, Incremental, JobCounts, Progress
from agent.sync.init import Initialization, SyncOptions
from agent.sync.jobs import JobQueue
from agent.sync.notify import NotifySync


class SyncEngine:
    def __init__(
        self,
        settings: SyncSettings,
        manager: AlarmManager,
        store: StoreAccess,
        ring: KeyRing,
        *,
        clock: Clock = SYSTEM_CLOCK,
        connector_factory: ConnectorFactory = connect,
        retry_interrupted: bool = False,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.store = store
        self.ring = ring
        """Decrypts the element credentials kept in the store (and seals new ones)."""
        self.clock = clock
        self._connections = ElementConnections(store, ring, settings, connector_factory)
        """Opens an element's connector (its registered driver; tests pass their own)."""
        self.jobs = JobQueue(
            store,
            clock,
            settings.max_concurrent_init,
            self._run_job,
            retry_interrupted=retry_interrupted,
        )
        self.elements = ElementLifecycle(
            store,
            ring,
            int(settings.incremental_interval),
            lambda name: self.request(name, "init", "add"),
            self.forget,
        )
        self._contact = ContactAlarms(manager)
        self._init = Initialization(settings, manager, store, clock, self.elements.updated)
        self._incremental = Incremental(settings, manager, store, clock)
        self.notify = NotifySync(
            settings, store, self.jobs, lambda name: self.request(name, "incremental", "notify")
        )
        """CM notify sync: elements' changes applied as they are made."""

    def attach(self, hooks: ElementHooks) -> None:
        """Tell ``hooks`` (the sharing service) of element updates and removals."""
        self.elements.hooks = hooks

    async def start(self) -> None:
        await self.jobs.start()

    async def stop(self) -> None:
        await self.jobs.stop()

    async def request(
        self, name: str, kind: str, trigger: str = "manual", options: SyncOptions | None = None
    ) -> int:
        """Queue a sync of ``kind``; returns the job id (an already queued one if any).

        Raises:
            InvalidRequest: an unknown kind. ElementNotFound: no such element.
        """
        return await self.jobs.request(name, kind, trigger, options)

    async def forget(self, name: str) -> None:
        """An element is being removed: drop its queued job, stop its running one, clear
        its alarms."""
        element = await asyncio.to_thread(self.store.elements.get, name)
        await self.jobs.drop(element.id)
        for alarm in await asyncio.to_thread(
            queries.list_alarms, self.store.engine, resource=name, limit=100_000
        ):
            with contextlib.suppress(ProvsyncError):
                await self.manager.clear(alarm["id"], note="element removed")

    # ------------------------------------------------------------------ one job
    async def _run_job(
        self, element: Element, job_id: int, kind: str, options: SyncOptions | None
    ) -> None:
        await asyncio.to_thread(
            self.store.jobs.update, job_id, state="running", started_at=self.clock.now()
        )
        await asyncio.to_thread(self.store.elements.set_state, element.id, sync_state="running")
        counts: JobCounts = {}
        run_kind = kind
        progress: Progress | None = None
        try:
            async with await self._connections.open(element) as connector:
                if kind == "incremental":
                    try:
                        progress = Progress(element.cursor)
                        await self._incremental.run(element, connector, progress)
                        counts = progress.counts()
                    except Escalate as escalation:
                        progress = None
                        run_kind = "init"
                        await self._escalated(element, job_id, escalation.reason)
                        async with self.jobs.init_slots:
                            counts = await self._init.run(
                                element, connector, job_id, options=options
                            )
                else:
                    counts = await self._init.run(
                        element, connector, job_id, force=kind == "force", options=options
                    )
        except (ProvsyncError, Escalate) as exc:
            # A failed incremental reports what it applied before it failed.
            await self._failed(element, job_id, run_kind, exc, progress_of(progress, counts))
            return
        except Exception as exc:
            logger.exception("sync job {} of {} failed unexpectedly", job_id, element.name)
            await self._failed(
                element,
                job_id,
                run_kind,
                ProvsyncError(f"internal error: {exc!r}"),
                progress_of(progress, counts),
            )
            return
        # The job ends once what it changed is committed (alarms cleared, its event): a
        # client that waited for "done" then sees the alarms as the sync left them.
        try:
            await self._succeeded(element, run_kind, counts)
        finally:
            await self._end_job(job_id, "done", run_kind, counts)

    async def _end_job(
        self, job_id: int, state: str, kind: str, counts: JobCounts, error: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self.store.jobs.update,
            job_id,
            state=state,
            ended_at=self.clock.now(),
            counts=counts,
            kind=kind,
            error=error,
        )

    async def _escalated(self, element: Element, job_id: int, reason: str) -> None:
        await asyncio.to_thread(self.store.jobs.update, job_id, kind="init", reason=reason)
        await self.manager.emit_event(
            "sync-escalated",
            element.name,
            text=f"incremental sync of {element.name} replaced by an initialization sync: {reason}",
            details={"reason": reason},
        )

    async def _succeeded(self, element: Element, kind: str, counts: JobCounts) -> None:
        if counts.get("dry_run"):
            await asyncio.to_thread(
                self.store.elements.set_state,
                element.id,
                sync_state="idle" if element.last_init_ok else "never",
            )
            return
        await self._contact.reached(element)
        clear = self._contact.clear
        await clear("sync-failed", element.name, kind if kind == "incremental" else "init")
        if kind in ("init", "force"):
            await clear("sync-failed", element.name, "incremental")
            await clear("init-sync-required", element.name)
            await clear("element-emptied", element.name)
        event = "incremental-sync-completed" if kind == "incremental" else "init-sync-completed"
        await self.manager.emit_event(
            event, element.name, details=counts, text=f"{kind} sync of {element.name} completed"
        )

    async def _failed(
        self, element: Element, job_id: int, kind: str, exc: BaseException, counts: JobCounts
    ) -> None:
        message = str(exc)
        await self._contact.failed(element, exc)
        if isinstance(exc, InvalidRequest):
            # The operator's request refused (a force without --yes): the job says why.
            state = "idle" if element.last_init_ok else "never"
        elif isinstance(exc, ElementEmptied):
            # Nothing was deleted, but the element lost its data and every sync will stop
            # here until someone decides: an alarm for that, not sync-failed.
            state = "failed"
            await self.manager.raise_alarm("element-emptied", element.name, text=message)
            await self.manager.emit_event("init-sync-failed", element.name, text=message)
        else:
            state = "init-required" if isinstance(exc, SyncStopped) else "failed"
            if kind != "incremental":
                await asyncio.to_thread(
                    self.store.elements.set_state, element.id, last_init_ok=False
                )
            await self.manager.raise_alarm(
                "sync-failed",
                element.name,
                qualifier="incremental" if kind == "incremental" else "init",
                text=f"{kind} sync of {element.name} failed: {message}",
            )
            event = "incremental-sync-failed" if kind == "incremental" else "init-sync-failed"
            await self.manager.emit_event(event, element.name, text=message)
        await asyncio.to_thread(self.store.elements.set_state, element.id, sync_state=state)
        await self._end_job(job_id, "failed", kind, counts, message)
        if not isinstance(exc, ConnectorError | SyncStopped | InvalidRequest | ElementEmptied):
            logger.warning("sync of {} failed: {}", element.name, message)


def progress_of(progress: Progress | None, counts: JobCounts) -> JobCounts:
    """The counts of a job that failed: an incremental's progress, else what it had."""
    return progress.counts() if progress is not None else counts
