"""CM notify sync, the hub's side: an element with the feature on tells the hub of each
change as it is made (``POST /api/v1/sync/notify``), and the hub applies it to its copy of
that element at once instead of at the next incremental.

A notification is applied as the incremental would apply the same change: in log order,
moving the element's cursor past it, in one transaction. So the incremental does not
synchronize what notify sync processed (the synchronization document): it starts after
it. The element marks in its log what the hub answered ``applied``. Only the change right
after the cursor can be applied: a change whose predecessors the hub has not got (a
notification lost while the hub was down) and a change of a full-initialization object
(which asks for an initialization, as only the incremental records) are answered
``ignored`` with the reason, and an incremental sync is queued to take them (and every
later one) from the log; so is every change while hub updates delivered to the element
wait after the cursor (an older change applied now would overwrite one of them). The
whole call is refused (409) while a sync of the element runs, because the job's pages may
be older than the change, for an element never initialized or needing an initialization,
and for another data epoch.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from agent import __version__
from agent.config import SyncSettings
from agent.errors import NotifyRefused
from agent.store.access import StoreAccess
from agent.sync.full_init import FullInitObjects
from agent.sync.jobs import JobQueue

APPLIED = "applied"

QueueIncremental = Callable[[str], Awaitable[int]]
"""Queues an incremental sync of the element (by name); returns the job id."""


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
        self,
        settings: SyncSettings,
        store: StoreAccess,
        jobs: JobQueue,
        queue_incremental: QueueIncremental,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self._queue_incremental = queue_incremental
        self._full_init = FullInitObjects(settings.full_init_objects)

    async def received(self, ident: str, epoch: str, changes: list[Notified]) -> list[str]:
        """Apply what follows the cursor of ``changes``: per change, ``applied`` or why not.

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
        # What stops or escalates the incremental stops this too: the hub's copy is not
        # one to build on until an initialization.
        if element.agent_version != __version__ or not element.last_init_ok:
            raise NotifyRefused(
                f"{element.name} needs an initialization sync first: nothing applied"
            )
        ordered = sorted(changes, key=lambda c: c.seq)
        # No await between this check and the transaction below: a job that starts later
        # reads a log that holds these changes already.
        if self.jobs.running(element.id):
            raise NotifyRefused(
                f"a sync of {element.name} is running: nothing applied, it takes the changes"
            )
        before, after = await asyncio.to_thread(
            functools.partial(
                self.store.objects.apply_in_order,
                element.id,
                ordered,
                element.generation,
                # The cursor cannot pass a full-initialization object here: only the
                # incremental records that one.
                stops=lambda c: (c.cls, c.key) in self._full_init,
            )
        )
        verdicts = {c.seq: self._verdict(c, before, after) for c in ordered}
        if any(c.seq > after for c in ordered):
            job = await self._queue_incremental(element.name)
            logger.info(
                "{}: notify sync left changes after {} to the incremental (job {})",
                element.name,
                after,
                job,
            )
        return [verdicts[c.seq] for c in changes]

    def _verdict(self, change: Notified, before: int, after: int) -> str:
        if change.seq <= before:
            return "ignored: the hub has it already"
        if change.seq <= after:
            return APPLIED
        if (change.cls, change.key) in self._full_init:
            return "ignored: synchronized by an initialization only; an incremental sync takes it"
        return (
            "ignored: an earlier change (or the hub's own update) is not synchronized yet; "
            "an incremental sync takes it"
        )
