"""The sync engine: initialization, incremental and forced syncs, jobs and schedule.

Rules (DESIGN.md, Synchronization):
- adding an element queues an initialization sync;
- an incremental sync applies the change log after the stored cursor, skipping the
  agent's own writes (``[sync] service_user``), a page at a time, cursor committed with
  the data of that page;
- it becomes an initialization sync (sync-escalated says why) when the last
  initialization did not complete, when more than ``escalate_after_changes`` changes are
  pending, or when the log no longer reaches the cursor or the epoch changed;
- it stops with an error and init-sync-required when the element or the agent was
  upgraded since the last initialization, or when a full-sync-only class changed;
- a forced initialization skips those checks; if the element has no data while the hub
  has some, it deletes the hub's copy only with an explicit confirmation;
- at most ``max_concurrent_init`` initialization syncs at once, one job per element,
  a request for an element that already has a queued job returns that job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from agent import __version__
from agent.alarms import queries
from agent.alarms.contact import CONTACT_ALARMS, auth_alarm
from agent.alarms.manager import AlarmManager
from agent.clock import now
from agent.config import SyncSettings
from agent.connectors.base import Connector, Credentials, ElementInfo, ObjectRecord
from agent.connectors.registry import connect
from agent.errors import (
    AuthIncorrect,
    AuthMissing,
    ConnectorError,
    CursorGone,
    ElementUnreachable,
    InvalidRequest,
    ProvsyncError,
    SyncStopped,
)
from agent.store.access import StoreAccess
from agent.store.elements import Credentials as StoredCredentials
from agent.store.elements import Element
from agent.store.encryption import KeyRing
from agent.store.outage import ThrottledLog, is_store_outage
from agent.store.schedule import next_due

KINDS = ("init", "incremental", "force")
PAGES_AHEAD = 2
"""Pages an initialization reads ahead of its writes (its memory bound: these pages, the
one the fetcher holds and the batch being written)."""
WRITE_BATCH = 5000
"""Most objects in one write transaction of an initialization (pages already read wait
for no more: a batch is what is there)."""

_Fetched = tuple[str, tuple[ObjectRecord, ...]] | Exception | None
"""From the fetcher to the writer: a page of a class, the error that ended the read, or
None once every class is read."""


async def _fetch_pages(
    connector: Connector,
    classes: tuple[str, ...],
    page_size: int,
    ahead: asyncio.Queue[_Fetched],
) -> None:
    """Read every page of ``classes`` into ``ahead``; errors go there too, for the writer."""
    try:
        for cls in classes:
            pages = connector.pages(cls, limit=page_size)
            try:
                async for page in pages:
                    await ahead.put((cls, page.objects))
            finally:
                # Cancelled between two pages: close the generator now, not when the
                # loop's finalizer gets to it (a driver may return a plain iterator).
                close = getattr(pages, "aclose", None)
                if close is not None:
                    await close()
    except Exception as exc:  # the contract's errors and bugs alike: the writer raises it
        await ahead.put(exc)
        return
    await ahead.put(None)


async def _next_page(ahead: asyncio.Queue[_Fetched], fetcher: asyncio.Task[None]) -> _Fetched:
    """The fetcher's next item; it always ends with one (None or its error), but should it
    die without (cancelled from inside its driver), the writer is not left waiting."""
    if not ahead.empty():
        return ahead.get_nowait()
    getter = asyncio.ensure_future(ahead.get())
    try:
        await asyncio.wait([getter, fetcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if not ahead.empty():
        return ahead.get_nowait()
    return RuntimeError(f"the page fetcher {fetcher.get_name()} ended without a last item")


_STRENGTH = {"incremental": 0, "init": 1, "force": 2}


class ConnectorFactory(Protocol):
    """How the engine gets a connector for a stored element (agent.connectors.registry)."""

    def __call__(
        self, element: Element, credentials: Credentials | None, *, timeout: float, retries: int
    ) -> Connector: ...


def _report(remote: dict[str, int], hub: dict[str, int]) -> dict[str, int]:
    element_total, hub_total = sum(remote.values()), sum(hub.values())
    return {
        "element_objects": element_total,
        "hub_objects": hub_total,
        "would_delete": hub_total if element_total == 0 else 0,
    }


class Escalate(Exception):
    """An incremental sync that must become an initialization (``reason``: why).

    Internal to this module, raised and caught within one job, so not a ProvsyncError
    (agent.errors says why it is not there).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Slot:
    """An element's work: its queued job and its worker task."""

    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: int | None = None
    kind: str = "incremental"
    options: dict[str, Any] = field(default_factory=dict)
    running: int | None = None
    task: asyncio.Task[None] | None = None


class SyncEngine:
    def __init__(
        self,
        settings: SyncSettings,
        manager: AlarmManager,
        store: StoreAccess,
        ring: KeyRing,
        *,
        connector_factory: ConnectorFactory = connect,
    ) -> None:
        self.settings = settings
        self._connect = connector_factory
        """Makes an element's connector (its registered driver; tests pass their own)."""
        self.manager = manager
        self.store = store
        self.ring = ring
        """Decrypts the element credentials kept in the store (and seals new ones)."""
        self._init_slots = asyncio.Semaphore(settings.max_concurrent_init)
        self._slots: dict[int, _Slot] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self._outages = ThrottledLog()
        self.element_updated: Callable[[str, str], Awaitable[None]] | None = None
        """Told when an initialization finds the element upgraded (messaging activation)."""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        interrupted = await asyncio.to_thread(self.store.jobs.fail_interrupted)
        if interrupted:
            logger.warning("{} sync jobs were interrupted by a restart", interrupted)
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

    # ------------------------------------------------------------------ requests
    async def request(self, name: str, kind: str, trigger: str = "manual", **options: Any) -> int:
        """Queue a sync of ``kind``; returns the job id (an already queued one if any)."""
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
        element = await asyncio.to_thread(self.store.elements.get, name)
        slot = self._slots.setdefault(element.id, _Slot())
        async with slot.lock:
            if slot.queued is not None:
                # Collapse into the queued job, made stronger if this request is
                # (incremental < init < force; force options win).
                if _STRENGTH[kind] > _STRENGTH[slot.kind] or (kind == "force" and options):
                    slot.kind, slot.options = kind, options
                    await asyncio.to_thread(self.store.jobs.update, slot.queued, kind=kind)
                return slot.queued
            job_id = await asyncio.to_thread(
                self.store.jobs.create, element, kind, trigger, options.get("reason")
            )
            slot.queued, slot.kind, slot.options = job_id, kind, options
            slot.queue.put_nowait(job_id)
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._worker(element.id), name=f"sync:{name}")
        return job_id

    async def forget(self, name: str) -> None:
        """An element is being removed: drop its queued job, stop its running one."""
        element = await asyncio.to_thread(self.store.elements.get, name)
        slot = self._slots.pop(element.id, None)
        if slot is not None:
            if slot.queued is not None:
                await asyncio.to_thread(
                    self.store.jobs.update,
                    slot.queued,
                    state="failed",
                    error="the element was removed",
                )
                slot.queued = None
            if slot.task is not None:
                slot.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.task
        for alarm in await asyncio.to_thread(
            queries.list_alarms, self.store.engine, resource=name, limit=100_000
        ):
            with contextlib.suppress(ProvsyncError):
                await self.manager.clear(alarm["id"], note="element removed")

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

    # ------------------------------------------------------------------ jobs
    def _connector(self, element: Element, stored: StoredCredentials | None) -> Connector:
        # The connector contract's own type (the same fields): converted at the boundary.
        credentials = None if stored is None else Credentials(stored.username, stored.password)
        return self._connect(
            element, credentials, timeout=self.settings.timeout, retries=self.settings.retries
        )

    async def _run(self, element_id: int, job_id: int, kind: str, options: dict[str, Any]) -> None:
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
        async with self._init_slots:
            await self._run_job(element, job_id, kind, options)

    async def _run_job(
        self, element: Element, job_id: int, kind: str, options: dict[str, Any]
    ) -> None:
        element_id = element.id
        credentials = await asyncio.to_thread(
            self.store.elements.credentials, element_id, self.ring
        )
        started = now()
        await asyncio.to_thread(self.store.jobs.update, job_id, state="running", started_at=started)
        await asyncio.to_thread(self.store.elements.set_state, element_id, sync_state="running")
        counts: dict[str, Any] = {}
        run_kind = kind
        try:
            async with self._connector(element, credentials) as connector:
                if kind == "incremental":
                    try:
                        counts = await self._incremental(element, connector)
                    except Escalate as escalation:
                        run_kind = "init"
                        await self._escalated(element, job_id, escalation.reason)
                        async with self._init_slots:
                            counts = await self._init(element, connector, job_id, **options)
                else:
                    counts = await self._init(
                        element, connector, job_id, force=kind == "force", **options
                    )
        except (ProvsyncError, Escalate) as exc:
            await self._failed(element, job_id, run_kind, exc, counts)
            return
        except Exception as exc:
            logger.exception("sync job {} of {} failed unexpectedly", job_id, element.name)
            await self._failed(
                element, job_id, run_kind, ProvsyncError(f"internal error: {exc!r}"), counts
            )
            return
        await asyncio.to_thread(
            self.store.jobs.update,
            job_id,
            state="done",
            ended_at=now(),
            counts=counts,
            kind=run_kind,
        )
        await self._succeeded(element, run_kind, counts)

    async def _escalated(self, element: Element, job_id: int, reason: str) -> None:
        await asyncio.to_thread(self.store.jobs.update, job_id, kind="init", reason=reason)
        await self.manager.emit_event(
            "sync-escalated",
            element.name,
            text=f"incremental sync of {element.name} replaced by an initialization sync: {reason}",
            details={"reason": reason},
        )

    # ------------------------------------------------------------------ initialization
    async def _init(
        self,
        element: Element,
        connector: Connector,
        job_id: int,
        *,
        force: bool = False,
        dry_run: bool = False,
        yes: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        info = await connector.info()
        hub = await asyncio.to_thread(self.store.elements.object_counts, element.id)
        if dry_run:
            remote = info.counts or await self._count_remote(connector, info.classes)
            return {"dry_run": True, **_report(remote, hub)}
        if force:
            remote = info.counts or await self._count_remote(connector, info.classes)
            report = _report(remote, hub)
            if report["would_delete"] and not yes:
                raise InvalidRequest(
                    f"{element.name} has no data and the hub holds {report['hub_objects']} "
                    "objects for it: a forced initialization would delete them; confirm"
                    " with --yes (see --dry-run)"
                )
            await self.manager.emit_event(
                "force-init-sync",
                element.name,
                severity="warning" if report["would_delete"] else "indeterminate",
                text=f"forced initialization sync of {element.name}"
                + (
                    f", deleting {report['would_delete']} hub objects"
                    if report["would_delete"]
                    else ""
                ),
                details=report,
            )
        else:
            await self.manager.emit_event(
                "init-sync-started",
                element.name,
                text=f"initialization sync of {element.name} started",
            )
        # A generation no earlier run used (the job id): what an interrupted run wrote can
        # never pass for this run's data. Until this run finishes, the element needs an
        # initialization whatever happens.
        generation = job_id
        await asyncio.to_thread(self.store.elements.set_state, element.id, last_init_ok=False)
        counts = await self._read_objects(element.id, connector, info, job_id, generation)
        read_total: int = sum(counts.values())
        hub_total: int = sum(hub.values())
        if not force and read_total == 0 and hub_total > 0:
            raise InvalidRequest(
                f"{element.name} returned no data while the hub holds {hub_total} "
                "objects for it; nothing was deleted. If the element really is empty, run "
                f"`provsync sync force {element.name} --dry-run`, then `--yes`"
            )
        # Pages were read live: replay what changed since the start (idempotent).
        cursor, replayed = info.last_seq, 0
        while True:
            changes = await connector.changes(
                cursor, epoch=info.epoch, limit=self.settings.page_size
            )
            if not changes.changes:
                break
            cursor = changes.changes[-1].seq
            applied, _ = await asyncio.to_thread(
                self.store.objects.apply_changes,
                element.id,
                changes.changes,
                generation,
                cursor=element.cursor,
            )
            replayed += applied
        removed = await asyncio.to_thread(
            self.store.objects.finish_init,
            element.id,
            generation,
            cursor=cursor,
            epoch=info.epoch,
            software_version=info.software_version,
            remote_id=info.element_id[:64],
            agent_version=__version__,
            last_init_ok=True,
            sync_state="idle",
            last_sync_at=now(),
        )
        previous = element.software_version
        if previous and previous != info.software_version and self.element_updated is not None:
            await self.element_updated(
                element.name, f"upgraded from {previous} to {info.software_version}"
            )
        return {"objects": dict(counts), "replayed": replayed, "removed": removed}

    async def _read_objects(
        self,
        element_id: int,
        connector: Connector,
        info: ElementInfo,
        job_id: int,
        generation: int,
    ) -> Counter[str]:
        """Every object of every class, written with ``generation``: objects per class.

        A fetcher task reads pages while this one writes them: the element's answer (and
        its JSON decoding) overlaps the store's work instead of alternating with it. At
        most ``PAGES_AHEAD`` pages wait between the two, so memory stays bounded whatever
        the element's size. Each transaction takes every page waiting (up to
        ``WRITE_BATCH`` objects) with the job's progress. A failed fetch is raised once the
        pages read before it are written, so the store is left as a one-page-at-a-time
        read leaves it; a failed write (or a cancelled job) cancels the fetcher.
        """
        ahead: asyncio.Queue[_Fetched] = asyncio.Queue(maxsize=PAGES_AHEAD)
        fetcher = asyncio.create_task(
            _fetch_pages(connector, info.classes, self.settings.page_size, ahead),
            name=f"sync-fetch:{job_id}",
        )
        counts: Counter[str] = Counter()
        total = sum(info.counts.values())
        try:
            finished = False
            while not finished:
                batch: list[tuple[str, tuple[ObjectRecord, ...]]] = []
                size, failure = 0, None
                item = await _next_page(ahead, fetcher)
                while True:
                    if isinstance(item, BaseException):
                        failure, finished = item, True
                        break
                    if item is None:
                        finished = True
                        break
                    batch.append(item)
                    size += len(item[1])
                    if size >= WRITE_BATCH or ahead.empty():
                        break
                    item = ahead.get_nowait()
                if batch:
                    for cls, objects in batch:
                        counts[cls] += len(objects)
                    # Progress for `provsync sync ... --wait`: objects read so far, of how many.
                    await asyncio.to_thread(
                        self.store.objects.write_pages,
                        element_id,
                        batch,
                        generation,
                        job_id=job_id,
                        progress={"progress": sum(counts.values()), "total": total},
                    )
                if failure is not None:
                    raise failure
        finally:
            fetcher.cancel()
            # wait(), not await: the fetcher's own cancellation is expected, ours is not
            # to be swallowed.
            await asyncio.wait([fetcher])
        return counts

    async def _count_remote(self, connector: Connector, classes: tuple[str, ...]) -> dict[str, int]:
        """Objects per class, by paging (for elements whose info gives no counts)."""
        found: dict[str, int] = {}
        for cls in classes:
            found[cls] = 0
            async for page in connector.pages(cls, limit=self.settings.page_size):
                found[cls] += len(page.objects)
        return found

    # ------------------------------------------------------------------ incremental
    async def _incremental(self, element: Element, connector: Connector) -> dict[str, Any]:
        if not element.last_init_ok:
            raise Escalate("the last initialization sync did not complete")
        info = await connector.info()
        if info.epoch != element.epoch:
            raise Escalate("the element's data epoch changed (restored or reset)")
        if info.software_version != element.software_version:
            await self._needs_init(
                element,
                f"the element was upgraded from "
                f"{element.software_version} to {info.software_version}",
            )
        if element.agent_version != __version__:
            await self._needs_init(
                element, f"the agent was upgraded from {element.agent_version} to {__version__}"
            )
        pending = info.last_seq - element.cursor
        if pending > self.settings.escalate_after_changes:
            raise Escalate(
                f"{pending} changes are pending, more than {self.settings.escalate_after_changes}"
            )
        await self.manager.emit_event(
            "incremental-sync-started",
            element.name,
            text=f"incremental sync of {element.name} started",
        )
        cursor, applied, skipped = element.cursor, 0, 0
        full_only = set(self.settings.full_sync_only_classes)
        while True:
            try:
                page = await connector.changes(
                    cursor, epoch=element.epoch, limit=self.settings.page_size
                )
            except CursorGone:
                raise Escalate("the change log no longer reaches the stored cursor") from None
            batch = list(page.changes)
            if not batch:
                break
            blocked = next(
                (c for c in batch if c.cls in full_only and c.user != self.settings.service_user),
                None,
            )
            usable = batch if blocked is None else batch[: batch.index(blocked)]
            if usable:
                done, skip = await asyncio.to_thread(
                    self.store.objects.apply_changes,
                    element.id,
                    usable,
                    element.generation,
                    cursor=usable[-1].seq,
                    skip_user=self.settings.service_user,
                )
                applied, skipped, cursor = applied + done, skipped + skip, usable[-1].seq
            if blocked is not None:
                await self._needs_init(
                    element,
                    f"{blocked.cls} {blocked.key} changed; that "
                    "class is synchronized by initialization only",
                )
        await asyncio.to_thread(
            self.store.elements.set_state, element.id, sync_state="idle", last_sync_at=now()
        )
        return {"applied": applied, "skipped_own": skipped, "cursor": cursor}

    async def _needs_init(self, element: Element, reason: str) -> None:
        await self.manager.raise_alarm("init-sync-required", element.name, text=reason)
        await asyncio.to_thread(
            self.store.elements.set_state, element.id, sync_state="init-required"
        )
        raise SyncStopped(f"incremental sync of {element.name} stopped: {reason}")

    # ------------------------------------------------------------------ outcomes
    async def _clear(self, type_id: str, resource: str, qualifier: str = "") -> None:
        with contextlib.suppress(ProvsyncError):
            await self.manager.clear(type_id=type_id, resource=resource, qualifier=qualifier)

    async def _succeeded(self, element: Element, kind: str, counts: dict[str, Any]) -> None:
        if counts.get("dry_run"):
            await asyncio.to_thread(
                self.store.elements.set_state,
                element.id,
                sync_state="idle" if element.last_init_ok else "never",
            )
            return
        for type_id in CONTACT_ALARMS:
            await self._clear(type_id, element.name)
        await self._clear("sync-failed", element.name, kind if kind == "incremental" else "init")
        if kind in ("init", "force"):
            await self._clear("sync-failed", element.name, "incremental")
            await self._clear("init-sync-required", element.name)
        event = "incremental-sync-completed" if kind == "incremental" else "init-sync-completed"
        await self.manager.emit_event(
            event, element.name, details=counts, text=f"{kind} sync of {element.name} completed"
        )

    async def _failed(
        self, element: Element, job_id: int, kind: str, exc: BaseException, counts: dict[str, Any]
    ) -> None:
        message = str(exc)
        address = element.address
        # What this failure proves: contact worked unless unreachable; credentials passed
        # unless an authentication error.
        if not isinstance(exc, ElementUnreachable):
            await self._clear("element-unreachable", element.name)
        if not isinstance(exc, AuthMissing):
            await self._clear("auth-failed-missing", element.name)
        if not isinstance(exc, AuthIncorrect):
            await self._clear("auth-failed-incorrect", element.name)
        refused = auth_alarm(exc, address)
        if refused is not None:
            await self.manager.raise_alarm(refused[0], element.name, text=refused[1])
        elif isinstance(exc, ElementUnreachable):
            await self.manager.raise_alarm("element-unreachable", element.name, text=message)
        if isinstance(exc, InvalidRequest):
            state = "idle" if element.last_init_ok else "never"
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
        await asyncio.to_thread(
            self.store.jobs.update,
            job_id,
            state="failed",
            ended_at=now(),
            error=message,
            counts=counts,
            kind=kind,
        )
        if not isinstance(exc, ConnectorError | SyncStopped | InvalidRequest):
            logger.warning("sync of {} failed: {}", element.name, message)

    # ------------------------------------------------------------------ schedule
    async def _schedule(self) -> None:
        """Queue each element's recurring incremental sync when it is due."""
        while True:
            await asyncio.sleep(1)
            try:
                await self._schedule_round()
            except Exception as exc:
                # A store outage must not end the schedule (the task would be gone for
                # good, and re-raised at stop); anything else is a bug worth its traceback.
                if not is_store_outage(exc):
                    raise
                self._outages.warning("sync schedule: store read failed", exc)

    async def _schedule_round(self) -> None:
        elements = await asyncio.to_thread(self.store.elements.all)
        attempts = await asyncio.to_thread(self.store.jobs.last_attempts)
        at = now()
        for element in elements:
            due = next_due(element, attempts.get(element.id))
            if due is None:
                continue
            slot = self._slots.get(element.id)
            if slot and (slot.queued or slot.running):
                continue
            if at >= due:
                try:
                    await self.request(element.name, "incremental", "schedule")
                except ProvsyncError as exc:
                    if is_store_outage(exc):
                        raise
                    logger.warning("scheduled sync of {}: {}", element.name, exc)
