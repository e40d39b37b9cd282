"""CM notify sync, the hub's side: an element with the feature on tells the hub of each
change as it is made (``POST /api/v1/sync/notify``), and the hub applies it to its copy
of that element at once instead of at the next incremental.

The element marks what the hub applied as processed by notify sync in its change log;
the incremental skips those (the synchronization document: it "does not synchronize
Communication Manager commands processed by the CM notify sync feature"). So the hub
applies a notification only when the incremental would have applied the change the same
way; anything else it answers ``ignored`` (with the reason), the element leaves the
change unmarked and the incremental takes it as usual:

- a change at or before the element's cursor (the incremental has been past it);
- the hub's own writes and the element's registered login's (never pulled);
- a full-initialization object (that asks for an initialization, which only the
  incremental raises);
- while a sync job of the element runs (the job's pages may be older than the change:
  written after it, they would undo it), for an element never initialized, or in another
  data epoch: the whole notification, with 409.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from agent.config import SyncSettings
from agent.errors import NotifyRefused
from agent.store.access import StoreAccess
from agent.store.encryption import KeyRing
from agent.sync.full_init import FullInitObjects
from agent.sync.jobs import JobQueue

APPLIED = "applied"


@dataclass(frozen=True)
class Notified:
    """One change an element notified: its log entry, as ``GET /changes`` gives it."""

    seq: int
    user: str
    op: str
    cls: str
    key: str
    data: dict[str, Any] | None


class NotifySync:
    def __init__(
        self, settings: SyncSettings, store: StoreAccess, ring: KeyRing, jobs: JobQueue
    ) -> None:
        self.settings = settings
        self.store = store
        self.ring = ring
        self.jobs = jobs
        self._full_init = FullInitObjects(settings.full_init_objects)

    async def received(self, ident: str, epoch: str, changes: list[Notified]) -> list[str]:
        """Apply what the hub may of ``changes``: per change, ``applied`` or why not.

        Raises:
            ElementNotFound: no element by that name or id.
            NotifyRefused: the whole notification refused (409), the reason in its text.
        """
        element = await asyncio.to_thread(self.store.elements.find, ident)
        if not element.generation:
            raise NotifyRefused(f"{element.name} was never initialized: nothing applied")
        if epoch != element.epoch:
            raise NotifyRefused(
                f"{element.name} is in another data epoch than the hub's copy: an "
                "initialization sync is needed, nothing applied"
            )
        credentials = await asyncio.to_thread(
            self.store.elements.credentials, element.id, self.ring
        )
        own = {self.settings.service_user}
        if credentials is not None:
            own.add(credentials.username)
        results = [self._verdict(c, element.cursor, own) for c in changes]
        usable = [c for c, r in zip(changes, results, strict=True) if r == APPLIED]
        # Checked after the last await before the write: a job that starts later reads a
        # log that holds these changes already.
        if self.jobs.running(element.id):
            raise NotifyRefused(
                f"a sync of {element.name} is running: nothing applied, it takes the changes"
            )
        if usable:
            await asyncio.to_thread(
                self.store.objects.apply_changes,
                element.id,
                usable,
                element.generation,
                cursor=None,
            )
        return results

    def _verdict(self, change: Notified, cursor: int, own: set[str]) -> str:
        if change.seq <= cursor:
            return "ignored: the hub's incremental sync has been past it"
        if change.user in own:
            return "ignored: the hub's own user"
        if (change.cls, change.key) in self._full_init:
            return "ignored: synchronized by an initialization only"
        return APPLIED
