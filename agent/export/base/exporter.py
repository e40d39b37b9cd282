"""The exporter: one target's cursor and delivery loop (see agent.export.base)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from typing import Any

from loguru import logger

from agent.alarms.ports import ExporterPorts
from agent.alarms.records import Notification
from agent.alarms.retention import Holding
from agent.alarms.severity import Severity
from agent.config import ExporterSettings
from agent.errors import ProvsyncError, StoreFencedError
from agent.export.base.health import STORE_TROUBLE, StoreTrouble, TargetHealth
from agent.export.base.notices import BacklogAlarm, GapNotices
from agent.export.base.progress import Progress, bounded
from agent.export.base.saves import CursorSaves


class Exporter(ABC):
    """One export target with its own cursor and delivery task.

    Subclasses implement :meth:`deliver` (and optionally :meth:`open` / :meth:`close`).

    Args:
        name: the target's name (its cursor, its alarms' resource).
        ports: the notification log it reads and the sink of its backlog alarm (the
            alarm manager); it is given nothing else of the store.
        settings: the [exporter] settings shared by every target.
        min_severity: the target's filter.
    """

    def __init__(
        self,
        name: str,
        ports: ExporterPorts,
        settings: ExporterSettings,
        *,
        min_severity: Severity = Severity.INDETERMINATE,
    ) -> None:
        self.name = name
        self.log = ports
        self.settings = settings
        self.min_severity = min_severity
        self.cursor = 0
        """The delivered position; runs ahead of the saved one while a save is in flight
        (at most one, see _run) or the store refuses the save."""
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._health = TargetHealth(name, settings.retry_max, settings.down_reminder_interval)
        self._backlog = BacklogAlarm(name, ports, settings.backlog_threshold)
        self._progress = Progress()
        self._saves = CursorSaves(
            name, ports, failed=self._store_failed, saved_again=self._store_recovered
        )
        self._store_trouble = StoreTrouble(name, settings.down_reminder_interval)
        self._gaps = GapNotices(name, ports.catalog)
        self._task: asyncio.Task[None] | None = None

    # --- for subclasses --------------------------------------------------------------
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the transport; failures here are retried like deliveries."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the transport."""

    @abstractmethod
    async def deliver(self, notifications: Sequence[Notification]) -> None:
        """Deliver every notification, in order, or raise.

        Raises:
            ExportError: nothing after the cursor counts as delivered; retried.
        """

    def accepts(self, notification: Notification) -> bool:
        """The target's filter; cleared always passes so a sent raise gets its clear."""
        if notification.severity == Severity.CLEARED.value:
            return True
        return Severity(notification.severity).at_least(self.min_severity)

    def least_deliver_timeout(self) -> float:
        """The longest one notification may legitimately take (an inform with all its
        retries): an attempt is never cut shorter than that, whatever ``deliver_timeout``
        says, or such a target would time out on the same notification for ever."""
        return 0.0

    def progress(self, seq: int) -> None:
        """Called by :meth:`deliver` when the target acknowledged everything up to ``seq``:
        if the batch then fails, the cursor keeps that progress and nothing the target
        acknowledged is sent again. Each call also restarts the delivery's timeout. A call
        outside a delivery attempt (late, after it was given up on) is ignored."""
        self._progress.report(seq)

    # --- lifecycle ---------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self.cursor = await asyncio.to_thread(self.log.first_cursor, self.name)
        self._saves.saved = self.cursor
        self._backlog.recall()
        loop = asyncio.get_running_loop()

        def _on_commit(_seq: int) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.log.add_listener(_on_commit)
        self._task = asyncio.create_task(self._run(), name=f"exporter:{self.name}")

    async def stop(self, drain_seconds: float) -> None:
        """Deliver what is committed now (within ``drain_seconds``), then stop."""
        self._stopping = True
        self._wake.set()
        self._stop_requested.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_seconds)
        except TimeoutError:
            logger.warning(
                "exporter {} did not drain in {}s; stopping it", self.name, drain_seconds
            )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # The final position is saved: a save may still be in flight, or the loop ended
        # (a failure while stopping, a cancel) after a delivery it had not saved yet.
        # Refused or timed out, it is logged, and the rows stay undelivered (resent).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._saves.final(self.cursor), max(1.0, min(drain_seconds, self._timeout()))
            )
        with contextlib.suppress(Exception):
            await self._bounded(self.close(), "close")
        # Stopped, it holds nothing: what it had not committed is undelivered again.
        self.log.release(self.name)

    def backlog(self) -> int:
        return max(0, self.log.last_seq - self.cursor)

    def down_for(self) -> float | None:
        """Seconds since the target went down, None while it is up: what a NOC asks first
        of a target with failures (is it failing now, and since when?)."""
        return self._health.down_for()

    # --- the delivery loop -------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.settings.retry_initial
        opened = False
        held: list[Notification] = []
        while True:
            if self._saves.refused:
                # The store refused the cursor, not the target: what was delivered stays
                # delivered (self.cursor); only the save is retried, nothing is resent,
                # and nothing more is delivered until the store has it.
                if not await self._saves.save(self.cursor):
                    if self._stopping:
                        return
                    delay = await self._store_backoff(delay)
                    continue
                self._saves.refused = False
            target = self.log.last_seq
            if self.cursor >= target:
                # Idle: the delivered position is saved now, not with the next batch.
                if not await self._saves.settle(self.cursor):
                    continue  # refused: retried above, with the backoff
                if self._stopping:
                    return
                await self._check_backlog()  # a clear that failed is retried while idle
                await self._sleep(self.settings.poll_interval)
                continue
            if not opened:
                # Connect before reading: a target that cannot connect holds no rows.
                try:
                    await self._bounded(self.open(), "connect")
                    opened = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    next_delay = await self._failed(exc, (), delay, opened=False)
                    if next_delay is None:
                        return
                    delay = next_delay
                    continue
            # A batch that failed is retried from memory, from where it got; retention
            # keeps the rows this target holds (its holding) until its cursor is saved
            # past them, so a restart, which resumes from the saved cursor, finds them.
            batch = [n for n in held if n.seq > self.cursor]
            if not batch:
                try:
                    batch = await self._read_batch()
                except Exception as exc:
                    self._store_failed("cannot read the notification log", exc)
                    if self._stopping:
                        return
                    delay = await self._store_backoff(delay)
                    continue
                held = batch
            if not batch:
                # Nothing left above the cursor: purged before this target got it.
                logger.warning(
                    "export target {} skips notifications {}-{}: purged before delivery",
                    self.name,
                    self.cursor + 1,
                    target,
                )
                self.cursor = target
                continue
            try:
                self.log.check_writable()
            except StoreFencedError as exc:
                # Another agent owns the store and resends from the committed cursors: a
                # batch sent now would interleave with its, and the save would be refused.
                self._store_failed("not delivering while the store is fenced", exc)
                if self._stopping:
                    return
                delay = await self._store_backoff(delay)
                continue
            wanted = [n for n in batch if self.accepts(n)]
            if batch[0].seq > self.cursor + 1:
                wanted.insert(0, self._gaps.notice(self.cursor + 1, batch[0].seq - 1, batch))
            try:
                if wanted:
                    await self._progress.run(self.deliver(wanted), self._timeout())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                next_delay = await self._failed(exc, wanted, delay, opened=True)
                opened = False
                if next_delay is None:
                    return
                delay = next_delay
                continue
            self.cursor = batch[-1].seq
            self.delivered += len(wanted)
            delay = self.settings.retry_initial
            self.last_error = None
            self._health.came_back(self.cursor)
            # Saved in the background while the next batch goes out: one save in flight
            # at a time (the previous one, normally long done, is awaited first), so the
            # delivered-but-unsaved rows stay within two batches (a restart resends at
            # most those). A refused save stops deliveries until it is retried above.
            if await self._saves.done() and self._saves.saved != self.cursor:
                self._saves.save_in_background(self.cursor)
            await self._check_backlog()

    async def _read_batch(self) -> list[Notification]:
        """The next rows after the cursor, announced as held before the read."""
        # Announced before the read: a purge while it runs already keeps them. It reaches
        # back to the saved position: what was delivered while its save is in flight is
        # still undelivered for a restart, so it is kept too.
        size = self.settings.batch_size
        saved = self._saves.saved
        self.log.hold(self.name, Holding(saved, self.cursor - saved + size))
        # Nearly caught up, the rows are in the log's tail, committed and not purged: no
        # store read. Behind it (a restart, a slow target), the store, which also shows
        # what retention purged (the gap notice).
        batch = self.log.recent_after(self.cursor, size) or []
        if not batch:
            batch = await asyncio.to_thread(self.log.read_stored, self.cursor, size)
        return batch

    async def _failed(
        self, exc: Exception, sent: Sequence[Notification], delay: float, *, opened: bool
    ) -> float | None:
        """Account for a failed connect or delivery, close, wait out the backoff.

        Returns: the next delay, or None when the exporter is to stop.
        """
        moved = self._keep_progress(sent) if sent else False  # a connect delivers nothing
        self.failures += 1
        self.last_error = str(exc) if isinstance(exc, ProvsyncError) else repr(exc)
        if moved:
            # It acknowledged part of the batch: a slow or flaky target, not a dead one.
            # The backoff starts over and it is not logged as down.
            delay = self.settings.retry_initial
            self._health.came_back(self.cursor)
            logger.debug(
                "export target {} failed after notification {}: {}",
                self.name,
                self.cursor,
                self.last_error,
            )
        else:
            self._health.went_down(self.last_error, delay)
        if opened:
            with contextlib.suppress(Exception):
                await self._bounded(self.close(), "close")
        await self._check_backlog()
        if self._stopping and not moved:
            return None
        await self._backoff(delay)
        return delay if moved else min(delay * 2, self.settings.retry_max)

    def _keep_progress(self, sent: Sequence[Notification]) -> bool:
        """Move the delivered position to what the failed batch got acknowledged (saved
        by the next round); True if it moved."""
        acked = self._progress.take()
        if acked is None or acked <= self.cursor:
            return False
        self.delivered += sum(1 for n in sent if n.seq <= acked)
        self.cursor = acked
        return True

    def _store_failed(self, what: str, exc: Exception) -> None:
        """A store failure is the store's, not the target's: never "target down"."""
        self.last_error = self._store_trouble.report(what, exc)

    def _store_recovered(self) -> None:
        if self.last_error is not None and self.last_error.startswith(STORE_TROUBLE):
            self.last_error = None

    def _timeout(self) -> float:
        return max(self.settings.deliver_timeout, self.least_deliver_timeout())

    async def _bounded(self, step: Coroutine[Any, Any, None], what: str) -> None:
        """``step`` within ``deliver_timeout``: a stuck peer is a failure, retried."""
        await bounded(step, what, self._timeout())

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._stopping or self.log.last_seq > self.cursor:
            # A commit (or stop) after the loop found nothing to do set the event just
            # cleared: waiting now would miss it for a whole poll_interval.
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _backoff(self, seconds: float) -> None:
        """Wait out a retry delay: commits do not end it (they would turn the backoff into
        one attempt per commit), only stop() does."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    async def _store_backoff(self, delay: float) -> float:
        """Wait out ``delay`` after a store failure; returns the next delay."""
        await self._backoff(delay)
        return min(delay * 2, self.settings.retry_max)

    async def _check_backlog(self) -> None:
        await self._backlog.check(self.backlog())
