"""The initialization sync: every object of every class, read live, then the changes made
meanwhile replayed; objects the read did not see are removed.

A plain initialization never empties the hub: an element that returns no data while the
hub holds some fails it. A forced one skips the incremental's checks; if the element has
no data while the hub has some, it deletes the hub's copy only with ``yes``; ``dry_run``
only reports what it would do.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent import __version__
from agent.alarms.manager import AlarmManager
from agent.clock import Clock
from agent.config import SyncSettings
from agent.connectors.base import Connector, ElementInfo, ObjectRecord
from agent.errors import ElementEmptied, InvalidRequest
from agent.store.access import StoreAccess
from agent.store.elements import Element
from agent.sync.incremental import JobCounts

PAGES_AHEAD = 2
"""Pages an initialization reads ahead of its writes (its memory bound: these pages, the
one the fetcher holds and the batch being written)."""
WRITE_BATCH = 5000
"""Most objects in one write transaction of an initialization (pages already read wait
for no more: a batch is what is there)."""

_Fetched = tuple[str, tuple[ObjectRecord, ...]] | Exception | None
"""From the fetcher to the writer: a page of a class, the error that ended the read, or
None once every class is read."""

ElementUpdated = Callable[[str, str], Awaitable[None]]
"""Told (element name, how) when an initialization finds the element upgraded."""


@dataclass(frozen=True)
class SyncOptions:
    """What an operator asks of an initialization (``provsync sync ... --dry-run --yes``)."""

    dry_run: bool = False
    yes: bool = False
    max_delete: int | None = None
    """With ``yes``: the most hub objects the run may delete (what a dry run reported);
    None: no bound. A run that would delete more is refused, nothing deleted."""


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


def _report(remote: dict[str, int], hub: dict[str, int]) -> dict[str, int]:
    element_total, hub_total = sum(remote.values()), sum(hub.values())
    return {
        "element_objects": element_total,
        "hub_objects": hub_total,
        "would_delete": hub_total if element_total == 0 else 0,
    }


class Initialization:
    def __init__(
        self,
        settings: SyncSettings,
        manager: AlarmManager,
        store: StoreAccess,
        clock: Clock,
        element_updated: ElementUpdated,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.store = store
        self.clock = clock
        self._element_updated = element_updated

    async def run(
        self,
        element: Element,
        connector: Connector,
        job_id: int,
        *,
        force: bool = False,
        options: SyncOptions | None = None,
    ) -> JobCounts:
        """Initialize the hub's copy of ``element``: objects per class, replayed, removed.

        Raises:
            InvalidRequest: the element is empty and the hub is not, without confirmation.
            ConnectorError: from the connector. StoreError: from the store.
        """
        dry_run, yes = (options.dry_run, options.yes) if options else (False, False)
        max_delete = options.max_delete if options else None
        info = await connector.info()
        hub = await asyncio.to_thread(self.store.elements.object_counts, element.id)
        if dry_run:
            remote = info.counts or await self._count_remote(connector, info.classes)
            return {"dry_run": True, **_report(remote, hub)}
        if force:
            await self._forced(element, connector, info, hub, yes, max_delete)
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
            raise ElementEmptied(
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
            applied = await asyncio.to_thread(
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
            last_sync_at=self.clock.now(),
        )
        previous = element.software_version
        if previous and previous != info.software_version:
            await self._element_updated(
                element.name, f"upgraded from {previous} to {info.software_version}"
            )
        return {"objects": dict(counts), "replayed": replayed, "removed": removed}

    async def _forced(
        self,
        element: Element,
        connector: Connector,
        info: ElementInfo,
        hub: dict[str, int],
        yes: bool,
        max_delete: int | None = None,
    ) -> None:
        """Refuse to empty the hub unconfirmed, or beyond what was confirmed; else say
        what the forced run will do."""
        remote = info.counts or await self._count_remote(connector, info.classes)
        report = _report(remote, hub)
        if report["would_delete"] and not yes:
            raise InvalidRequest(
                f"{element.name} has no data and the hub holds {report['hub_objects']} "
                "objects for it: a forced initialization would delete them; confirm"
                " with --yes (see --dry-run)"
            )
        if max_delete is not None and report["would_delete"] > max_delete:
            raise InvalidRequest(
                f"a forced initialization of {element.name} would now delete "
                f"{report['would_delete']} hub objects, more than the {max_delete} confirmed;"
                " nothing was deleted: run the dry run again"
            )
        await self.manager.emit_event(
            "force-init-sync",
            element.name,
            severity="warning" if report["would_delete"] else "indeterminate",
            text=f"forced initialization sync of {element.name}"
            + (
                f", deleting {report['would_delete']} hub objects" if report["would_delete"] else ""
            ),
            details=report,
        )

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
