"""Syncs from an element to the hub: read it, compare three ways, apply the plan.

sync-required is cleared by any completed sync; a sync that found unresolved conflicts
raises sync-reconcile-required (before sync-required clears, so sharing is never
unblocked in between). One sync runs at a time (:class:`agent.sharing.gate.Gate`), and
the element's distribution is held while its data is read.
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger

from agent.config import SharingSettings, SyncSettings
from agent.connectors.connections import ElementConnections
from agent.errors import ProvsyncError
from agent.sharing.group import RECONCILE_REQUIRED, SYNC_REQUIRED
from agent.sharing.merge import compare
from agent.sharing.parts import HubComponent, HubParts
from agent.sharing.plan_apply import apply_plan
from agent.sharing.sink import HUB, clear_if_active
from agent.sharing.tasks import Tasks
from agent.sharing.wording import counted
from agent.store.elements import Element
from agent.store.rows import Data, Key


class UserSync(HubComponent):
    """Runs the syncs to the hub as jobs.

    Args:
        parts: the job and what a plan writes, the sync alarms (sync-failed,
            sync-required, sync-reconcile-required, ftp-inactive), the one sync slot,
            the dispatcher (holds the element's distribution while it is read).
        connections: opens the element's connector.
        tasks: where each sync runs.
        settings, sync: [sharing] classes and [sync] page size.
    """

    def __init__(
        self,
        parts: HubParts,
        connections: ElementConnections,
        tasks: Tasks,
        settings: SharingSettings,
        sync: SyncSettings,
    ) -> None:
        super().__init__(parts)
        self._connections = connections
        self._tasks = tasks
        self._classes = settings.classes
        self._page_size = sync.page_size
        self._running: dict[int, tuple[asyncio.Task[None], int]] = {}
        """Running syncs to the hub by element id: (task, job id)."""

    async def request(self, ident: str, trigger: str = "element") -> int:
        """Start a sync from the element; returns its job id.

        Raises:
            SharingError: the gate refuses it (see Gate.claim_sync).
        """
        element = await asyncio.to_thread(self._store.elements.find, ident)
        self._gate.claim_sync(element)
        try:
            job = await asyncio.to_thread(
                self._store.jobs.create, element, "user-sync", trigger, None
            )
        except BaseException:
            self._gate.release_sync()
            raise
        task = self._tasks.spawn(self._run(element, job), f"user-sync:{element.name}")
        self._running[element.id] = (task, job)
        task.add_done_callback(lambda _: self._running.pop(element.id, None))
        return job

    async def forget(self, element: Element) -> None:
        """The element is being removed: its running sync stops, its job fails."""
        running = self._running.pop(element.id, None)
        if running is None:
            return
        task, job = running
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(
            self._store.jobs.update,
            job,
            state="failed",
            ended_at=self._clock(),
            error="the element was removed",
        )

    async def _read_element(
        self, element: Element, job: int
    ) -> tuple[dict[Key, Data], list[str], str]:
        """The element's shared objects, the shared classes it offers, its data epoch."""
        found: dict[Key, Data] = {}
        async with await self._connections.open(element) as connector:
            info = await connector.info()
            offered = [cls for cls in self._classes if cls in info.classes]
            for cls in offered:
                async for page in connector.pages(cls, limit=self._page_size):
                    for item in page.objects:
                        found[(cls, item.key)] = item.data
                    await asyncio.to_thread(
                        self._store.jobs.update, job, counts={"progress": len(found)}
                    )
        return found, offered, info.epoch

    async def _run(self, element: Element, job: int) -> None:
        async with self._dispatcher.hold(element.id):
            await self._run_held(element, job)

    async def _run_held(self, element: Element, job: int) -> None:
        try:
            await asyncio.to_thread(
                self._store.jobs.update, job, state="running", started_at=self._clock()
            )
            await self._alarms.emit_event(
                "user-sync-started", element.name, text=f"sync from {element.name} started"
            )
            try:
                counts = await self._compare_and_apply(element, job)
            except ProvsyncError as exc:
                await self._failed(element, job, str(exc))
                return
            except Exception as exc:
                logger.exception("sync from {} failed unexpectedly", element.name)
                await self._failed(element, job, f"internal error: {exc!r}")
                return
            await self._dispatcher.recount()
            self._dispatcher.wake()
        finally:
            self._gate.release_sync()
        # Done once the sync is over, its slot released too: an element that waited for
        # "done" and pushes at once must not be refused as still syncing.
        await asyncio.to_thread(
            self._store.jobs.update, job, state="done", ended_at=self._clock(), counts=counts
        )

    async def _compare_and_apply(self, element: Element, job: int) -> dict[str, int]:
        # Only classes the element has are compared: the others are not deletions.
        data, offered, epoch = await self._read_element(element, job)
        async with self._gate.hub_lock:
            hub = await asyncio.to_thread(self._store.shared.load, self._classes)
            base = await asyncio.to_thread(self._store.bases.load, element.id)
            if element.sharing_epoch and epoch != element.sharing_epoch:
                # Restored or reinstalled since the last sync: what it lacks now was
                # not deleted there. Without a base, nothing is taken as a deletion.
                logger.warning(
                    "{}'s data epoch changed since its last sync: its base is dropped",
                    element.name,
                )
                base = {}
            plan = compare(data, hub, base, offered)
            await asyncio.to_thread(
                apply_plan, self._store, element, plan, hub, base, epoch, self._clock()
            )
            # Still holding the lock: no hub change slips between the alarms.
            counts = plan.counts()
            await self._synced(element, counts)
        return counts

    async def _synced(self, element: Element, counts: dict[str, int]) -> None:
        # The job ends after this, once the alarms are as the sync leaves them: a client
        # that waited for "done" must not see sync-required or ftp-inactive still active.
        # (If they cannot be written, the caller records the job as failed.)
        await self._sync_alarms(element, counts)

    async def _sync_alarms(self, element: Element, counts: dict[str, int]) -> None:
        await clear_if_active(self._alarms, "sync-failed", element.name, "user-sync")
        await self._alarms.emit_event(
            "user-sync-completed",
            element.name,
            details=counts,
            text=f"sync from {element.name} completed: {counts['to_hub']} to the hub, "
            f"{counts['to_element']} to the element, {counts['automatic']} merged, "
            f"{counts['review']} for review, {counts['unresolved']} unresolved",
        )
        # Raised before sync-required clears, so sharing is never unblocked in between.
        if counts["unresolved"]:
            await self._alarms.raise_alarm(
                RECONCILE_REQUIRED,
                element.name,
                text=f"sync from {element.name} found "
                f"{counted(counts['unresolved'], 'unresolved conflict')} "
                f"({counts['review']} more for review)",
            )
        else:
            await clear_if_active(
                self._alarms,
                RECONCILE_REQUIRED,
                element.name,
                note="a new sync replaced its conflicts",
            )
        for _, resource, qualifier in self._alarms.active_keys(SYNC_REQUIRED):
            await clear_if_active(
                self._alarms,
                SYNC_REQUIRED,
                resource,
                qualifier,
                f"sync from {element.name} completed",
            )
        if not await asyncio.to_thread(self._store.conflicts.unresolved_elements):
            # Sharing is back: started again, synced, nothing left to reconcile.
            await clear_if_active(
                self._alarms, "ftp-inactive", HUB, note=f"{element.name} shares again"
            )

    async def _failed(self, element: Element, job: int, message: str) -> None:
        await asyncio.to_thread(
            self._store.jobs.update,
            job,
            state="failed",
            ended_at=self._clock(),
            error=message,
        )
        text = f"sync from {element.name} failed: {message}"
        await self._alarms.raise_alarm(
            "sync-failed", element.name, qualifier="user-sync", text=text
        )
