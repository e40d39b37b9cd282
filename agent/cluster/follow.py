"""A standby's view of the leader's commits: the store read every interval.

The SNMP view of a standby (agent.export.snmp.service) is the leader's view, built the
same way: from the store at start, then from a feed of commits. The leader's feed is its
writer thread; a standby's is this follower, which reads what the leader committed since
the last read: the log rows after the last sequence number seen, the alarms they name,
and the active alarms raised again since the newest raise seen (a repeat changes an
alarm's count and time without a log row). Each read becomes one ``Commit``, published to
the same listeners; a gap in the rows (retention purged them meanwhile) makes the view
build itself again from the store, as on the leader.

What a poll of a standby shows is therefore at most one interval behind the leader's.
The element table is read again after every read (``add_tick``: it is small, and the
leader's writes to it are not seen from here otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.feed import Commit, CommitFeedListener
from agent.alarms.severity import Severity
from agent.errors import ProvsyncError
from agent.store.outage import ThrottledLog, is_store_outage

BATCH = 5000
"""Log rows read at most per read (the rest at the next, without waiting)."""


class StoreFollower:
    """Publishes the leader's commits, as read from the store, to the view's listeners.

    Args:
        engine: the standby's engine (reads only).
        catalog: the alarm and event types (as the leader's: the same settings).
        interval: seconds between reads.
    """

    def __init__(self, engine: Engine, catalog: Catalog, interval: float) -> None:
        self.engine = engine
        self._catalog = catalog
        self.interval = interval
        self.seq = 0
        """The newest log row published."""
        self._raised: datetime | None = None
        self._listeners: list[CommitFeedListener] = []
        self._ticks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._outages = ThrottledLog()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def add_commit_listener(self, listener: CommitFeedListener) -> None:
        self._listeners.append(listener)

    def add_tick(self, callback: Callable[[], None]) -> None:
        """``callback()`` after each read (the element table's refresh)."""
        self._ticks.append(callback)

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
        """A standby records nothing: the leader's heartbeat is the cluster's."""
        raise ProvsyncError(f"a standby records no events ({type_id} for {resource})")

    async def start(self) -> None:
        """From the store's position now (the view's build reads the rest)."""
        self.seq, self._raised = await asyncio.to_thread(queries.log_position, self.engine)
        self._task = asyncio.create_task(self._run(), name="cluster-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            full = False
            try:
                commit = await asyncio.to_thread(self.read)
                full = len(commit.notifications) >= BATCH
                self.publish(commit)
            except Exception as exc:
                if not is_store_outage(exc):
                    raise
                self._outages.warning("standby view: store read failed", exc)
            if not full:
                await asyncio.sleep(self.interval)

    def read(self) -> Commit:
        """Worker thread: what was committed since the last read."""
        notes = queries.read_log(self.engine, self.seq, BATCH)
        ids = {n.alarm_id for n in notes if n.alarm_id}
        rows = queries.alarm_rows(self.engine, ids, self._raised)
        first = notes[0].seq if notes and notes[0].seq > self.seq + 1 else self.seq + 1
        last = notes[-1].seq if notes else self.seq
        return Commit(first, last, tuple(notes), tuple(rows))

    def publish(self, commit: Commit) -> None:
        """On the loop: hand ``commit`` to the listeners and move on past it."""
        self.seq = max(self.seq, commit.last_seq)
        for row in commit.alarms:
            raised = row["last_raised_at"]
            if not row["cleared"] and (self._raised is None or raised > self._raised):
                self._raised = raised
        if commit.notifications or commit.alarms:
            for listener in self._listeners:
                listener(commit)
        for tick in self._ticks:
            tick()


__all__ = ["BATCH", "StoreFollower"]
