"""The incremental sync: the element's change log after the stored cursor, a page at a
time, the hub's own writes skipped.

The hub's own writes are those of ``[sync] service_user`` (the hub's shared updates) and of
the login the element is registered with (the synchronization document: a station added
"by the same Communication Manager user that is available in the System Manager
inventory" is not pulled): not pulled as changes, but kept in the hub's copy of the
element in log order, as the element applied them. What CM notify sync processed the hub
applied when it was made, moving the cursor (agent.sync.notify): the incremental starts
after it.

It stops with init-sync-required (``SyncStopped``) when the element or the agent was
upgraded since the last initialization, whatever else changed. It becomes an
initialization (:class:`Escalate`, caught by the job around it) when the last
initialization did not complete, when the data epoch changed, when more than
``escalate_after_changes`` changes are pending, or when the log no longer reaches the
cursor. A change of a full-initialization object (``[sync] full_init_objects``) is not
applied: it raises init-sync-required naming it, and every other change is applied.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from loguru import logger

from agent import __version__
from agent.alarms.manager import AlarmManager
from agent.clock import Clock
from agent.config import SyncSettings
from agent.connectors.base import ChangeRecord, Connector, Credentials, ElementInfo
from agent.errors import CursorGone, SyncStopped
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.sync.full_init import FullInitObjects

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

    async def run(self, element: Element, connector: Connector, progress: Progress) -> None:
        """Apply the changes since the cursor, counting in ``progress`` (which the job
        reports also when this raises: what was applied before stays applied).

        Raises:
            Escalate: an initialization must run instead.
            SyncStopped: an initialization is required first (alarm raised).
            ConnectorError: from the connector.
        """
        info = await self._check(element, connector)
        await self.manager.emit_event(
            "incremental-sync-started",
            element.name,
            text=f"incremental sync of {element.name} started",
        )
        own_users = own_users_of(self.settings, connector.credentials)
        notify_on = info.notify_sync
        full_init = FullInitObjects(self.settings.full_init_objects)
        while True:
            try:
                page = await connector.changes(
                    progress.cursor, epoch=element.epoch, limit=self.settings.page_size
                )
            except CursorGone:
                raise Escalate("the change log no longer reaches the stored cursor") from None
            if not page.changes:
                break
            usable: list[ChangeRecord] = []
            own = pulled = missed = 0
            for change in page.changes:
                if (change.cls, change.key) in full_init:
                    progress.needs_init(change)
                elif change.user in own_users:
                    # The hub's own change coming back, as the element applied it: not
                    # pulled (nothing new to the hub), but kept in the hub's copy, in log
                    # order, so that the copy equals the element.
                    own += 1
                    usable.append(change)
                else:
                    # Notify sync moves the cursor past what it applies (agent.sync.notify):
                    # a change it processed that is still ahead of the cursor is one this
                    # store does not have (restored from a backup since): taken.
                    missed += notify_on and change.notify_sync
                    pulled += 1
                    usable.append(change)
            # The page's cursor commits with its changes (or alone: a page of skipped ones).
            await asyncio.to_thread(
                self.store.objects.apply_changes,
                element.id,
                usable,
                element.generation,
                cursor=page.changes[-1].seq,
            )
            progress.applied += pulled
            progress.skipped_own += own
            progress.notify_missed += missed
            progress.cursor = page.changes[-1].seq
        if progress.notify_missed:
            logger.warning(
                "{}: {} changes its notify sync processed were not in the hub's copy (a "
                "restored store?); applied now",
                element.name,
                progress.notify_missed,
            )
        init_required = self.manager.is_active("init-sync-required", element.name)
        if progress.init_objects:
            await self.manager.raise_alarm(
                "init-sync-required",
                element.name,
                text=progress.init_reason(already_required=init_required),
            )
            init_required = True
        await asyncio.to_thread(
            self.store.elements.set_state,
            element.id,
            sync_state="init-required" if init_required else "idle",
            last_sync_at=self.clock.now(),
        )

    async def _check(self, element: Element, connector: Connector) -> ElementInfo:
        """What must hold before the change log is applied (else escalate or stop)."""
        if not element.generation:  # set by the first initialization that completes
            raise Escalate("the element was never initialized")
        info = await connector.info()
        # An upgrade stops the incremental before anything else is looked at: the
        # document (10.2.1 onwards) no longer lets it switch to an initialization.
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
        if not element.last_init_ok:
            raise Escalate("the last initialization sync did not complete")
        if info.epoch != element.epoch:
            raise Escalate("the element's data epoch changed (restored or reset)")
        pending = info.last_seq - element.cursor
        if pending > self.settings.escalate_after_changes:
            raise Escalate(
                f"{pending} changes are pending, more than {self.settings.escalate_after_changes}"
            )
        return info

    async def _needs_init(self, element: Element, reason: str) -> None:
        await self.manager.raise_alarm("init-sync-required", element.name, text=reason)
        await asyncio.to_thread(
            self.store.elements.set_state, element.id, sync_state="init-required"
        )
        raise SyncStopped(f"incremental sync of {element.name} stopped: {reason}")


def own_users_of(settings: SyncSettings, credentials: Credentials | None) -> frozenset[str]:
    """The users whose changes on an element are the hub's own: ``[sync] service_user``
    (its shared updates) and the login the element is registered with."""
    return frozenset({settings.service_user, *([credentials.username] if credentials else [])})


@dataclass
class Progress:
    """What an incremental sync did so far (its job's counts, also when it fails)."""

    cursor: int
    applied: int = 0
    skipped_own: int = 0
    notify_missed: int = 0
    """Changes notify sync processed that the hub's copy did not have (applied)."""
    init_objects: list[str] = field(default_factory=list)
    """Full-initialization objects that changed, "class key" (first seen first, once)."""

    def needs_init(self, change: ChangeRecord) -> None:
        changed = f"{change.cls} {change.key}"
        if changed not in self.init_objects:
            self.init_objects.append(changed)

    def init_reason(self, *, already_required: bool = False) -> str:
        shown = ", ".join(self.init_objects[:10])
        more = len(self.init_objects) - 10
        return (
            f"{shown}{f' and {more} more' if more > 0 else ''} changed on the element: "
            + ("this object is" if len(self.init_objects) == 1 else "these objects are")
            + " synchronized by an initialization only; every other change was applied"
            + ("; earlier ones are in this alarm's history" if already_required else "")
        )

    def counts(self) -> JobCounts:
        counts: JobCounts = {
            "applied": self.applied,
            "skipped_own": self.skipped_own,
            "cursor": self.cursor,
        }
        if self.notify_missed:
            counts["notify_sync_missed"] = self.notify_missed
        if self.init_objects:
            counts["init_required"] = list(self.init_objects)
        return counts
