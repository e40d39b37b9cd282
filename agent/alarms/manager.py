"""The alarm manager: raise, change, clear, acknowledge alarms and emit events.

Every change and its notification-log row commit in the same transaction (the store is
the truth; exporters read the log after commit). One writer thread applies queued
requests in group commits: it drains whatever is queued (up to ``batch_max``), applies it
to an in-memory working set loaded with two queries, and writes the result with a few
``executemany`` statements. A caller's request is acknowledged only after its commit.

Because the writer is the only process-wide writer of these tables (the store lock keeps
other agents out), it assigns alarm ids and sequence numbers itself: they are strictly
increasing, never reused (the high-water marks live in ``meta``) and gap-free.

This module is the facade over requests (checked before queueing), transitions (the pure
state machine), persistence (the writer's store side), writer (the thread and its group
commits) and replies (the callers' futures). Components see it through agent.alarms.ports:
exporters as a ``NotificationLog``, sync, sharing and exporters as an ``AlarmSink``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from agent.alarms import cursors, queries, requests
from agent.alarms.catalog import Catalog
from agent.alarms.feed import CommitFeedListener, LogTail
from agent.alarms.operations import AckOp, CursorOp, EventOp, Operation, PurgeOp, RaiseOp
from agent.alarms.ports import CommitListener
from agent.alarms.records import AlarmChange, Notification
from agent.alarms.replies import Reply
from agent.alarms.retention import Holding
from agent.alarms.severity import Severity
from agent.alarms.transitions import Clock, Counters, Transitions
from agent.alarms.writer import AlarmWriter
from agent.errors import StoreError


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlarmManager:
    """Stateful alarms and stateless events over the store.

    Args:
        engine: the store's engine (already migrated).
        catalog: built-in and site alarm types.
        batch_max: most requests committed together.
        clock: returns aware UTC datetimes (injected by tests).
        pending_max: most requests waiting for the writer (queued or in the group commit
            being written) before a ``bounded`` request is refused with OverloadedError;
            0: no bound. Requests that are not bounded (the agent's own) always wait.
        write_guard: called before each group commit; raises (StoreFencedError) when the
            store must not be written now, so requests fail at once with its reason.
        tail_size: log rows kept in memory after their commit (``tail``), for exporters
            that are nearly caught up; about 600 bytes a row, so 16,384 (some 10 MB, a
            few seconds of the fastest commit rate, many batches) rather than more: a
            target further behind reads the store, as after a restart.
    """

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        *,
        batch_max: int = 512,
        clock: Clock = utc_now,
        pending_max: int = 0,
        write_guard: Callable[[], None] | None = None,
        tail_size: int = 16_384,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        # Export target -> the log rows it has read (or is reading) and holds in memory to
        # deliver: retention keeps them while held, as a restart resumes from the committed
        # cursor. Written by exporters on the loop, read by the writer thread (one
        # assignment of a frozen value at a time).
        self.holdings: dict[str, Holding] = {}
        self._transitions = Transitions(catalog, clock, Counters())
        self._writer = AlarmWriter(
            engine,
            self._transitions,
            self.holdings,
            batch_max=batch_max,
            clock=clock,
            pending_max=pending_max,
            write_guard=write_guard,
            tail_size=tail_size,
        )

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._writer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        self._writer.stop(timeout)

    def add_listener(self, listener: CommitListener) -> None:
        """``listener(last_seq)`` is called from the writer thread after each commit that
        changed an alarm, the log or a purge (not after one that only saved cursors)."""
        self._writer.listeners.append(listener)

    def add_commit_listener(self, listener: CommitFeedListener) -> None:
        """``listener(commit)`` is called from the writer thread after each group commit
        that changed something (log rows, alarms, a purge), with what it changed.

        It runs before the callers of that commit hear back, after ``last_seq`` and
        ``tail`` include the commit: a client told its change is committed, and asking
        next (over SNMP, say), finds it wherever the listener put it. It must not block.
        """
        self._writer.feed.append(listener)

    def check_writable(self) -> None:
        """Ask the write guard whether this agent may write the store now; readers that
        act for the agent (exporters) ask it before acting on what they read.

        Raises:
            StoreFencedError: the store is fenced (another agent owns it).
        """
        if self._writer.write_guard is not None:
            self._writer.write_guard()

    # ----------------------------------------------------------------- state
    def is_active(self, type_id: str, resource: str, qualifier: str = "") -> bool:
        return (type_id, resource, qualifier) in self._writer.active

    def active_keys(self, type_id: str) -> list[tuple[str, str, str]]:
        """Keys of the active alarms of one type (a copy: the writer thread changes them)."""
        return self._writer.active.keys_of(type_id)

    @property
    def last_seq(self) -> int:
        """Highest committed sequence number."""
        return self._writer.committed_seq

    @property
    def tail(self) -> LogTail:
        """The newest committed log rows: exporters read here, the store only past it."""
        return self._writer.tail

    @property
    def pending(self) -> int:
        """Requests queued or being written (not yet answered); exporters' cursor saves
        are not counted."""
        return self._writer.pending

    @property
    def pending_max(self) -> int:
        """The bound on ``pending`` for bounded requests (0: none)."""
        return self._writer.pending_max

    @property
    def refused(self) -> int:
        """Bounded requests refused with OverloadedError since the start (the API counts
        the batches it refuses here too)."""
        return self._writer.refused

    @refused.setter
    def refused(self, count: int) -> None:
        self._writer.refused = count

    # ----------------------------------------------------------------- the log (ports)
    def recent_after(self, seq: int, limit: int) -> list[Notification] | None:
        """Up to ``limit`` committed rows after ``seq`` from the tail; None when the tail
        does not reach back to ``seq + 1``."""
        return self._writer.tail.after(seq, limit)

    def read_stored(self, seq: int, limit: int) -> list[Notification]:
        """Up to ``limit`` log rows after ``seq`` from the store (blocking)."""
        return queries.read_log(self.engine, seq, limit)

    def first_cursor(self, name: str) -> int:
        """Export target ``name``'s committed position, created below the oldest log row
        for a target seen for the first time (blocking)."""
        return cursors.first_cursor(self.engine, name, self.last_seq)

    def hold(self, name: str, holding: Holding) -> None:
        """Retention keeps the rows ``name`` holds in memory (one frozen assignment)."""
        self.holdings[name] = holding

    def release(self, name: str) -> None:
        self.holdings.pop(name, None)

    # ----------------------------------------------------------------- requests
    def submit(self, op: Operation, *, bounded: bool = False) -> Future[Any]:
        """Queue ``op``; the future resolves after its commit (thread-safe).

        Raises:
            OverloadedError: ``bounded`` and ``pending_max`` requests already wait.
        """
        self._check_running()
        future: Future[Any] = Future()
        self._writer.enqueue(op, Reply(future), bounded)
        return future

    def submit_many(self, ops: Sequence[Operation]) -> list[asyncio.Future[Any]]:
        """Queue ``ops`` in order from the event loop (not bounded: the caller checked the
        writer's bound for all of them); each future resolves after its operation's
        commit. Asyncio futures, not ``submit``'s thread-safe ones (a lock and a condition
        each): the writer settles all those of a group commit with one wake-up of the loop.

        Raises:
            StoreError: the manager is not running.
        """
        self._check_running()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for op in ops:
            future: asyncio.Future[Any] = loop.create_future()
            self._writer.enqueue(op, Reply(future, loop), False)
            futures.append(future)
        return futures

    async def _call(self, op: Operation, bounded: bool = False) -> Any:
        self._check_running()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._writer.enqueue(op, Reply(future, loop), bounded)
        return await future

    def _check_running(self) -> None:
        if not self._writer.running:
            raise StoreError("the alarm manager is not running")

    def make_raise(
        self,
        type_id: str,
        resource: str,
        *,
        qualifier: str = "",
        severity: Severity | str | None = None,
        text: str = "",
        by: str | None = None,
        resolution: str = "",
    ) -> RaiseOp:
        return requests.raise_op(
            self.catalog,
            type_id,
            resource,
            qualifier=qualifier,
            severity=severity,
            text=text,
            by=by,
            resolution=resolution,
        )

    async def raise_alarm(
        self,
        type_id: str,
        resource: str,
        *,
        qualifier: str = "",
        severity: Severity | str | None = None,
        text: str = "",
        by: str | None = None,
        bounded: bool = False,
        resolution: str = "",
    ) -> AlarmChange:
        """Raise (or repeat, or change) the alarm with key (type, resource, qualifier).

        ``bounded``: refuse with OverloadedError when the writer is full (the API's
        requests); the agent's own wait. ``resolution``: the hint of a new alarm when the
        type's generic one is not enough (it names a placeholder the caller can fill).
        """
        op = self.make_raise(
            type_id,
            resource,
            qualifier=qualifier,
            severity=severity,
            text=text,
            by=by,
            resolution=resolution,
        )
        result: AlarmChange = await self._call(op, bounded)
        return result

    async def clear(
        self,
        alarm_id: int | None = None,
        *,
        type_id: str | None = None,
        resource: str | None = None,
        qualifier: str = "",
        note: str | None = None,
        by: str | None = None,
        bounded: bool = False,
    ) -> AlarmChange:
        """Clear by id, or by key (type, resource, qualifier) for the active alarm."""
        op = requests.clear_op(
            self.catalog,
            alarm_id,
            type_id=type_id,
            resource=resource,
            qualifier=qualifier,
            note=note,
            by=by,
        )
        result: AlarmChange = await self._call(op, bounded)
        return result

    async def acknowledge(
        self,
        alarm_id: int,
        *,
        acknowledge: bool = True,
        note: str | None = None,
        by: str | None,
        bounded: bool = False,
    ) -> AlarmChange:
        result: AlarmChange = await self._call(AckOp(alarm_id, acknowledge, note, by), bounded)
        return result

    def make_event(
        self,
        type_id: str,
        resource: str,
        *,
        severity: Severity | str | None = None,
        text: str = "",
        details: dict[str, Any] | None = None,
    ) -> EventOp:
        return requests.event_op(
            self.catalog, type_id, resource, severity=severity, text=text, details=details
        )

    async def emit_event(
        self,
        type_id: str,
        resource: str,
        *,
        severity: Severity | str | None = None,
        text: str = "",
        details: dict[str, Any] | None = None,
        bounded: bool = False,
    ) -> int:
        """Log a stateless event; returns its sequence number."""
        op = self.make_event(type_id, resource, severity=severity, text=text, details=details)
        seq: int = await self._call(op, bounded)
        return seq

    async def purge(self, op: PurgeOp) -> dict[str, int]:
        counts: dict[str, int] = await self._call(op)
        return counts

    async def save_cursor(self, name: str, seq: int) -> None:
        """Commit export target ``name``'s delivered position in the writer's next group
        commit, with whatever else is queued (one transaction, no second writer on the
        store's lock); saves of one target queued together write only the newest.

        Raises:
            StoreFencedError: the store is fenced (nothing is written).
            StoreError: the store could not commit it.
        """
        await self._call(CursorOp(name, seq))
