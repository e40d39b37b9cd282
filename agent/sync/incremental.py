"""The incremental sync: the element's change log after the stored cursor, a page at a
time, the agent's own writes skipped (``[sync] service_user``).

It becomes an initialization (:class:`Escalate`, caught by the job around it) when the
last initialization did not complete, when the data epoch changed, when more than
``escalate_after_changes`` changes are pending, or when the log no longer reaches the
cursor. It stops with init-sync-required (``SyncStopped``) when the element or the agent
was upgraded since the last initialization, or when a full-sync-only class changed.
"""

from __future__ import annotations

import asyncio

from agent import __version__
from agent.alarms.manager import AlarmManager
from agent.clock import Clock
from agent.config import SyncSettings
from agent.connectors.base import Connector
from agent.errors import CursorGone, SyncStopped
from agent.store.access import StoreAccess
from agent.store.elements import Element

JobCounts = dict[str, object]
"""What a sync job reports (its ``counts``, the details of its completed event)."""


class Escalate(Exception):
    """An incremental sync that must become an initialization (``reason``: why).

    Raised and caught within one job (agent.sync.engine), so not a ProvsyncError
    (agent.errors says why it is not there).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Incremental:
    def __init__(
        self, settings: SyncSettings, manager: AlarmManager, store: StoreAccess, clock: Clock
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.store = store
        self.clock = clock

    async def run(self, element: Element, connector: Connector) -> JobCounts:
        """Apply the changes since the cursor: applied, skipped (own) and the new cursor.

        Raises:
            Escalate: an initialization must run instead.
            SyncStopped: an initialization is required first (alarm raised).
            ConnectorError: from the connector.
        """
        await self._check(element, connector)
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
            self.store.elements.set_state,
            element.id,
            sync_state="idle",
            last_sync_at=self.clock.now(),
        )
        return {"applied": applied, "skipped_own": skipped, "cursor": cursor}

    async def _check(self, element: Element, connector: Connector) -> None:
        """What must hold before the change log is applied (else escalate or stop)."""
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

    async def _needs_init(self, element: Element, reason: str) -> None:
        await self.manager.raise_alarm("init-sync-required", element.name, text=reason)
        await asyncio.to_thread(
            self.store.elements.set_state, element.id, sync_state="init-required"
        )
        raise SyncStopped(f"incremental sync of {element.name} stopped: {reason}")
