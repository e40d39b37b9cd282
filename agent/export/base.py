"""The exporter interface shared by every downstream target.

An exporter owns a cursor (last sequence number delivered) in the store. Its task reads
the notification log after the cursor, delivers what passes its filter, then commits the
cursor. After a crash it resumes from the committed cursor, so a target sees every
notification at least once, and a repeat only of entries after that cursor.

Nearly caught up, it reads the rows from the alarm manager's log tail (committed rows in
memory), not from the store; behind the tail (after a restart, a slow target) it reads the
store. Each round takes everything there is up to ``batch_size``. The cursor is committed
by the alarm manager's writer, in its group commit with whatever else is queued (no
write transaction of its own competing for the store's lock): in the background while
the next batch goes out, one save in flight at a time, so what is delivered and not yet
saved stays within two batches; at once when idle; and at stop(). Failed
deliveries are retried with exponential backoff; a target that falls more than
``backlog_threshold`` behind raises the exporter-backlog alarm, cleared when it has caught
up. A slow or dead target only grows its own backlog: the alarm manager never waits for it.

Commits wake an idle exporter, never one waiting out its backoff (only stop() does), so a
dead target is tried at the pace of the backoff whatever the commit rate. Every open is
bounded by ``deliver_timeout``; a delivery is given up after ``deliver_timeout`` without
progress (the deadline starts over at every acknowledged notification; a delivery given
up on is awaited ``CANCEL_GRACE`` seconds so what it reports as it ends counts), and a
failed batch that got part of it acknowledged keeps that part, starts the backoff over and does not
count as the target going down. The log says when a target goes down, reminds every
``down_reminder_interval`` while it stays down, and says when it is back; each attempt is
counted (status) but not logged above DEBUG.

While the store is fenced (the alarm manager's write guard refuses: another agent owns
it), nothing is delivered: each round waits out the backoff and asks again, so a fenced
agent never interleaves a batch with the new owner's resend; the connection stays open
and a batch already read stays in memory. The store is not the target: when it refuses
the cursor save (fenced, down) after a delivery, the delivered position is kept in
memory and only the save is retried (with the backoff), so nothing is sent twice by this
process; reads and saves that fail are logged as "export target X: cannot save its
cursor: ..." (or "cannot read the notification log", "not delivering while the store is
fenced"), one line per kind per ``down_reminder_interval``. The backlog alarm's state
changes only once the store took the raise or clear.

The rows a target has read and holds in memory (at most ``batch_size``), with those it
delivered while their save is in flight, are announced to the alarm manager (its holding)
before the read starts: retention keeps them until the cursor is saved past them, so a
restart from the committed cursor still finds them.

When retention purged entries the target had not received (past [retention]
``max_backlog``), the next batch starts above the cursor: the target is first sent an
export-gap notice naming the lost range in words (numbered as the last lost entry, so its
sequence still shows the jump), then the rest in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from sqlalchemy import Engine, func, select

from agent.alarms import queries
from agent.alarms.manager import AlarmManager
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.retention import Holding
from agent.alarms.severity import Severity
from agent.config import ExporterSettings
from agent.errors import AlarmNotFound, ExportError, ProvsyncError, StoreFencedError
from agent.store.models import CURSORS as _CURSORS
from agent.store.models import LOG as _LOG
from agent.store.outage import ThrottledLog, describe, is_store_outage
from agent.store.upsert import upsert

BACKLOG_ALARM = "exporter-backlog"
GAP_EVENT = "export-gap"
_STORE_TROUBLE = "store: "
CANCEL_GRACE = 1.0
"""Seconds a delivery given up on may take to end (and report its progress)."""


def load_cursor(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(_CURSORS.c.last_seq).where(_CURSORS.c.name == name)).scalar()
    return int(value or 0)


def first_cursor(engine: Engine, name: str, last_seq: int) -> int:
    """The target's cursor; a target seen for the first time starts below the oldest entry
    the log still holds (the whole log is delivered to it), and that is saved at once: what
    was purged before it existed is no loss of its own, what is purged later is."""
    with engine.connect() as conn:
        value = conn.execute(select(_CURSORS.c.last_seq).where(_CURSORS.c.name == name)).scalar()
        if value is not None:
            return int(value)
        oldest = conn.execute(select(func.min(_LOG.c.seq))).scalar()
    start = int(oldest) - 1 if oldest is not None else last_seq
    save_cursor(engine, name, start)
    return start


def save_cursor(engine: Engine, name: str, seq: int) -> None:
    values = {"name": name, "last_seq": seq, "updated_at": datetime.now(UTC)}
    with engine.begin() as conn:
        upsert(conn, _CURSORS, [values], ["name"])


class Exporter(ABC):
    """One export target with its own cursor and delivery task.

    Subclasses implement :meth:`deliver` (and optionally :meth:`open` / :meth:`close`).
    """

    def __init__(
        self,
        name: str,
        manager: AlarmManager,
        settings: ExporterSettings,
        *,
        min_severity: Severity = Severity.INDETERMINATE,
    ) -> None:
        self.name = name
        self.manager = manager
        self.engine = manager.engine
        self.settings = settings
        self.min_severity = min_severity
        self.cursor = 0
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._down_since: float | None = None
        self._down_attempts = 0
        self._reminded_at = 0.0
        self._gap_logged: tuple[int, int] | None = None
        self._backlog_active = False
        self._acked: int | None = None
        self._progress_at = 0.0
        # Set while a delivery attempt runs: progress reported outside one (late, from an
        # attempt already given up on) must not count for the next connect or batch.
        self._delivering = False
        # The position last committed to the store; self.cursor (what was delivered) runs
        # ahead of it while a save is in flight (at most one, see _run) or the store
        # refuses the save.
        self._saved = 0
        self._saving: asyncio.Task[bool] | None = None
        self._save_refused = False
        # Store failures get one line per kind, then a reminder at the down-reminder pace.
        self._store_log = ThrottledLog(settings.down_reminder_interval)
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

    # --- lifecycle ---------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self.cursor = await asyncio.to_thread(
            first_cursor, self.engine, self.name, self.manager.last_seq
        )
        self._saved = self.cursor
        # A backlog alarm raised before a restart is still ours to clear.
        raised = await asyncio.to_thread(
            queries.list_alarms, self.engine, type_id=BACKLOG_ALARM, resource=self.name
        )
        self._backlog_active = bool(raised)
        loop = asyncio.get_running_loop()

        def _on_commit(_seq: int) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.manager.add_listener(_on_commit)
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
                self._final_save(), max(1.0, min(drain_seconds, self._timeout()))
            )
        with contextlib.suppress(Exception):
            await self._bounded(self.close(), "close")
        # Stopped, it holds nothing: what it had not committed is undelivered again.
        self.manager.holdings.pop(self.name, None)

    def backlog(self) -> int:
        return max(0, self.manager.last_seq - self.cursor)

    # --- the delivery loop -------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.settings.retry_initial
        opened = False
        held: list[Notification] = []
        while True:
            if self._save_refused:
                # The store refused the cursor, not the target: what was delivered stays
                # delivered (self.cursor); only the save is retried, nothing is resent,
                # and nothing more is delivered until the store has it.
                if not await self._save_position():
                    if self._stopping:
                        return
                    await self._backoff(delay)
                    delay = min(delay * 2, self.settings.retry_max)
                    continue
                self._save_refused = False
            target = self.manager.last_seq
            if self.cursor >= target:
                # Idle: the delivered position is saved now, not with the next batch.
                if not await self._settle_saves():
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
                # Announced before the read: a purge while it runs already keeps them. It
                # reaches back to the saved position: what was delivered while its save is
                # in flight is still undelivered for a restart, so it is kept too.
                size = self.settings.batch_size
                self.manager.holdings[self.name] = Holding(
                    self._saved, self.cursor - self._saved + size
                )
                # Nearly caught up, the rows are in the manager's tail, committed and
                # not purged: no store read. Behind it (a restart, a slow target), the
                # store, which also shows what retention purged (the gap notice below).
                batch = self.manager.tail.after(self.cursor, size) or []
                if not batch:
                    try:
                        batch = await asyncio.to_thread(
                            queries.read_log, self.engine, self.cursor, size
                        )
                    except Exception as exc:
                        self._store_failed("cannot read the notification log", exc)
                        if self._stopping:
                            return
                        await self._backoff(delay)
                        delay = min(delay * 2, self.settings.retry_max)
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
                self.manager.check_writable()
            except StoreFencedError as exc:
                # Another agent owns the store and resends from the committed cursors: a
                # batch sent now would interleave with its, and the save would be refused.
                self._store_failed("not delivering while the store is fenced", exc)
                if self._stopping:
                    return
                await self._backoff(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            wanted = [n for n in batch if self.accepts(n)]
            if batch[0].seq > self.cursor + 1:
                wanted.insert(0, self._gap_notice(self.cursor + 1, batch[0].seq - 1, batch))
            try:
                if wanted:
                    await self._deliver_with_progress(wanted)
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
            self._came_back()
            # Saved in the background while the next batch goes out: one save in flight
            # at a time (the previous one, normally long done, is awaited first), so the
            # delivered-but-unsaved rows stay within two batches (a restart resends at
            # most those). A refused save stops deliveries until it is retried above.
            if await self._save_done() and self._saved != self.cursor:
                self._saving = asyncio.create_task(
                    self._save_position(), name=f"exporter:{self.name}:save"
                )
            await self._check_backlog()

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
            self._came_back()
            logger.debug(
                "export target {} failed after notification {}: {}",
                self.name,
                self.cursor,
                self.last_error,
            )
        else:
            self._went_down(delay)
        if opened:
            with contextlib.suppress(Exception):
                await self._bounded(self.close(), "close")
        await self._check_backlog()
        if self._stopping and not moved:
            return None
        await self._backoff(delay)
        return delay if moved else min(delay * 2, self.settings.retry_max)

    async def _save_done(self) -> bool:
        """Wait for the save in flight, if any; False (and the save is to be retried)
        when the store refused it."""
        task, self._saving = self._saving, None
        if task is not None and not await task:
            self._save_refused = True
            return False
        return True

    async def _settle_saves(self) -> bool:
        """Wait for the save in flight, then save the delivered position if it is still
        ahead of it; True when the store has the delivered position."""
        if not await self._save_done():
            return False
        if self._saved != self.cursor and not await self._save_position():
            self._save_refused = True
            return False
        return True

    async def _final_save(self) -> None:
        """At stop: the save in flight, then one more try if the position is still ahead
        (its refusal, already logged, does not stop the retry here)."""
        await self._save_done()
        if self._saved != self.cursor:
            await self._save_position()

    async def _save_position(self) -> bool:
        """Commit the delivered position; False (logged, throttled) when the store refuses.

        The save is a request to the alarm manager's writer, committed in its group
        commit with whatever else is queued: no write transaction of its own competing
        with the writer for the store's lock, and refused alike when the store is fenced.
        """
        seq = self.cursor
        try:
            await self.manager.save_cursor(self.name, seq)
        except Exception as exc:
            self._store_failed("cannot save its cursor", exc)
            return False
        self._saved = max(self._saved, seq)
        if self.last_error is not None and self.last_error.startswith(_STORE_TROUBLE):
            self.last_error = None
        return True

    def _store_failed(self, what: str, exc: Exception) -> None:
        """A store failure is the store's, not the target's: never "target down"."""
        self.last_error = f"{_STORE_TROUBLE}{what}: {describe(exc)}"
        line = f"export target {self.name}: {what}"
        if is_store_outage(exc):
            self._store_log.warning(line, exc)
        else:
            logger.opt(exception=exc).error("{}", line)

    def least_deliver_timeout(self) -> float:
        """The longest one notification may legitimately take (an inform with all its
        retries): an attempt is never cut shorter than that, whatever ``deliver_timeout``
        says, or such a target would time out on the same notification for ever."""
        return 0.0

    def _timeout(self) -> float:
        return max(self.settings.deliver_timeout, self.least_deliver_timeout())

    async def _bounded(self, step: Coroutine[Any, Any, None], what: str) -> None:
        """``step`` within ``deliver_timeout``: a stuck peer is a failure, retried."""
        timeout = self._timeout()
        try:
            await asyncio.wait_for(step, timeout)
        except TimeoutError:
            raise ExportError(f"{what} timed out after {timeout:g}s") from None

    async def _deliver_with_progress(self, notifications: Sequence[Notification]) -> None:
        """:meth:`deliver`, given up only after ``deliver_timeout`` without progress.

        The deadline starts over at every :meth:`progress` call: a batch of informs sent
        one after another may take far longer than the timeout as a whole (500 at 100 ms
        RTT take 50 s) while the target is healthy; only a target that stops answering
        is stuck.

        A delivery given up on is cancelled and then awaited for at most
        ``CANCEL_GRACE`` seconds, so that what it reports as it ends (the acknowledgements
        it counted) is kept before the failure is accounted; what it reports later is
        ignored (those notifications are sent again).
        """
        timeout = self._timeout()
        loop = asyncio.get_running_loop()
        self._acked = None
        self._progress_at = loop.time()
        self._delivering = True
        task = asyncio.ensure_future(self.deliver(notifications))
        # Its outcome after we gave up on it is of no interest (and must not be reported
        # as "never retrieved").
        task.add_done_callback(_consume)
        try:
            while True:
                remaining = self._progress_at + timeout - loop.time()
                if remaining <= 0:
                    task.cancel()
                    await asyncio.wait({task}, timeout=CANCEL_GRACE)
                    raise ExportError(f"delivery timed out after {timeout:g}s without progress")
                done, _ = await asyncio.wait({task}, timeout=remaining)
                if done:
                    task.result()
                    return
        finally:
            if not task.done():
                task.cancel()
            self._delivering = False

    def _gap_notice(self, first: int, last: int, batch: Sequence[Notification]) -> Notification:
        """Says in words what the sequence jump shows: entries ``first``-``last`` were
        purged by retention before this target got them. Numbered ``last`` (this target
        never received that entry), so the notice is in order and the jump stays visible."""
        lost = f"{first}-{last}" if first != last else f"{first}"
        text = (
            f"target {self.name} lost notifications {lost} (purged by retention before "
            f"delivery); the next one is {batch[0].seq}"
        )
        if self._gap_logged != (first, last):  # once, not once per retry
            self._gap_logged = (first, last)
            logger.warning(
                "export target {} skips notifications {}: purged before delivery", self.name, lost
            )
        gap_type = self.manager.catalog.get(GAP_EVENT)
        return Notification(
            seq=last,
            at=batch[0].at,
            kind=NotificationKind.EVENT,
            alarm_id=0,
            type_id=GAP_EVENT,
            resource=self.name,
            qualifier="",
            severity=gap_type.severity.value,
            text=text,
            raise_seq=0,
            payload={
                "type_name": gap_type.name,
                "event_type": gap_type.event_type.value,
                "probable_cause": gap_type.probable_cause,
                "details": {"target": self.name, "first_lost": first, "last_lost": last},
            },
        )

    def down_for(self) -> float | None:
        """Seconds since the target went down, None while it is up: what a NOC asks first
        of a target with failures (is it failing now, and since when?)."""
        if self._down_since is None:
            return None
        return time.monotonic() - self._down_since

    def _went_down(self, delay: float) -> None:
        """One warning when the target goes down, a reminder while it stays down."""
        now = time.monotonic()
        self._down_attempts += 1
        if self._down_since is None:
            self._down_since = now
            self._reminded_at = now
            logger.warning(
                "export target {} is down: {}; retrying with backoff ({:g}s up to {:g}s)",
                self.name,
                self.last_error,
                delay,
                self.settings.retry_max,
            )
        elif now - self._reminded_at >= self.settings.down_reminder_interval:
            self._reminded_at = now
            logger.warning(
                "export target {} still down after {:.0f}s and {} failed attempts: {}",
                self.name,
                now - self._down_since,
                self._down_attempts,
                self.last_error,
            )
        else:
            logger.debug(
                "export target {} attempt failed (retry in {:g}s): {}",
                self.name,
                delay,
                self.last_error,
            )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        logger.info(
            "export target {} is back after {:.1f}s down and {} failed attempts; "
            "delivered up to notification {}",
            self.name,
            time.monotonic() - self._down_since,
            self._down_attempts,
            self.cursor,
        )
        self._down_since = None
        self._down_attempts = 0

    def progress(self, seq: int) -> None:
        """Called by :meth:`deliver` when the target acknowledged everything up to ``seq``:
        if the batch then fails, the cursor keeps that progress and nothing the target
        acknowledged is sent again. Each call also restarts the delivery's timeout. A call
        outside a delivery attempt (late, after it was given up on) is ignored."""
        if not self._delivering:
            return
        self._acked = seq
        with contextlib.suppress(RuntimeError):  # called outside a loop: no deadline
            self._progress_at = asyncio.get_running_loop().time()

    def _keep_progress(self, sent: Sequence[Notification]) -> bool:
        """Move the delivered position to what the failed batch got acknowledged (saved
        by the next round); True if it moved."""
        acked = self._acked
        self._acked = None
        if acked is None or acked <= self.cursor:
            return False
        self.delivered += sum(1 for n in sent if n.seq <= acked)
        self.cursor = acked
        return True

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._stopping or self.manager.last_seq > self.cursor:
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

    async def _check_backlog(self) -> None:
        behind = self.backlog()
        threshold = self.settings.backlog_threshold
        # The flag changes only once the store took the change: while it is fenced or
        # down, the next round tries again (and is not told it is done).
        try:
            if not self._backlog_active and behind > threshold:
                await self.manager.raise_alarm(
                    BACKLOG_ALARM,
                    self.name,
                    text=f"export target {self.name} is {behind} notifications behind",
                )
                self._backlog_active = True
            elif self._backlog_active and behind <= threshold // 2:
                await self.manager.clear(type_id=BACKLOG_ALARM, resource=self.name)
                self._backlog_active = False
        except AlarmNotFound:
            self._backlog_active = False  # cleared by someone else: nothing left to clear
        except Exception as exc:
            if not isinstance(exc, ProvsyncError) and not is_store_outage(exc):
                raise
            logger.debug("backlog alarm for {} not changed: {}", self.name, exc)


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
