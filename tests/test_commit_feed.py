"""The commit feed and the log tail: what each group commit changed, handed to readers in
the process without a store read, and exporters that deliver from it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.cursors import load_cursor
from agent.alarms.feed import Commit, LogTail
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.alarms.records import ALARM_FIELDS, Notification, NotificationKind
from agent.config import ExporterSettings
from agent.export.base import Exporter
from agent.store.database import Store
from agent.store.models import ALARMS
from tests.waiting import until

FAST = ExporterSettings(poll_interval=0.05, retry_initial=0.05, retry_max=0.2)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Target(Exporter):
    """A fake target that records what it is sent (and nothing can fail)."""

    def __init__(self, name: str, manager: AlarmManager, settings: ExporterSettings = FAST):
        super().__init__(name, manager, settings)
        self.received: list[Notification] = []

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.received.extend(notifications)


def store_alarms(manager: AlarmManager) -> dict[int, dict[str, Any]]:
    with manager.engine.connect() as conn:
        rows = conn.execute(select(*[ALARMS.c[f] for f in ALARM_FIELDS])).mappings()
        return {row["id"]: dict(row) for row in rows}


def test_each_commit_is_what_the_store_has(store: Store) -> None:
    """Log rows and alarm rows from the feed equal what a store read returns, repeats
    (a count changed, no log row) included; seqs are contiguous across commits."""
    clock = Clock()
    manager = AlarmManager(store.engine, Catalog(), clock=clock)
    commits: list[Commit] = []
    manager.add_commit_listener(commits.append)
    manager.start()

    async def scenario() -> None:
        await asyncio.gather(
            *(manager.raise_alarm("sync-failed", f"cm{i}", text=f"t{i}") for i in range(40))
        )
        repeat = await manager.raise_alarm("sync-failed", "cm1", text="t1")
        assert repeat.seq is None, "a repeat logs nothing"
        await manager.raise_alarm("sync-failed", "cm2", severity="critical")
        await manager.acknowledge(3, note="looking", by="op")
        await manager.clear(type_id="sync-failed", resource="cm4", note="fixed", by="op")
        await manager.emit_event("test", "gw", details={"when": clock.now, "n": 1})

    try:
        asyncio.run(scenario())
        logged = queries.read_log(manager.engine, 0, 10_000)
        fed = [n for commit in commits for n in commit.notifications]
        assert fed == logged
        assert [n.to_json() for n in fed] == [n.to_json() for n in logged]
        expected = 1
        for commit in commits:
            assert commit.first_seq == expected
            assert [n.seq for n in commit.notifications] == list(
                range(commit.first_seq, commit.last_seq + 1)
            )
            expected = commit.last_seq + 1
        # The last state the feed gave of each alarm is the store's.
        latest: dict[int, dict[str, Any]] = {}
        for commit in commits:
            for row in commit.alarms:
                latest[row["id"]] = {f: row[f] for f in ALARM_FIELDS}
        assert latest == store_alarms(manager)
        # The repeat is a commit with no log row and the alarm's new count.
        repeats = [c for c in commits if not c.notifications]
        assert repeats, "the repeat was published"
        assert repeats[0].first_seq == repeats[0].last_seq + 1
        assert [(r["resource"], r["count"]) for r in repeats[0].alarms] == [("cm1", 2)]
    finally:
        manager.stop()


def test_a_purge_names_the_alarms_it_deleted(sqlite_store: Store) -> None:
    clock = Clock()
    manager = AlarmManager(sqlite_store.engine, Catalog(), clock=clock)
    commits: list[Commit] = []
    manager.add_commit_listener(commits.append)
    manager.start()

    async def scenario() -> None:
        for index in range(3):
            await manager.raise_alarm("sync-failed", f"cm{index}")
        await manager.clear(type_id="sync-failed", resource="cm0")
        await manager.clear(type_id="sync-failed", resource="cm1")
        clock.now += timedelta(days=40)
        await manager.purge(
            PurgeOp(cleared_alarm_days=30, event_days=30, log_max=10**6, log_days=3650)
        )

    try:
        asyncio.run(scenario())
        assert commits[-1].purged == frozenset({1, 2})
        assert set(store_alarms(manager)) == {3}
    finally:
        manager.stop()


def test_listeners_run_before_the_caller_hears_back(sqlite_store: Store) -> None:
    manager = AlarmManager(sqlite_store.engine, Catalog())
    seen: list[tuple[int, int, int]] = []

    def slow_listener(commit: Commit) -> None:
        # Slow on purpose: were replies delivered first, the caller would be told before
        # this returns, and find nothing recorded.
        time.sleep(0.05)
        tail = manager.tail.after(commit.first_seq - 1, 10)
        seen.append((commit.last_seq, manager.last_seq, tail[-1].seq if tail else 0))

    manager.add_commit_listener(slow_listener)
    manager.start()

    async def scenario() -> None:
        for index in range(3):
            change = await manager.raise_alarm("sync-failed", f"cm{index}")
            # last_seq and the tail already had the commit when the listener ran.
            assert seen[-1] == (change.seq, change.seq, change.seq)

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()


def test_the_tail_never_has_a_hole() -> None:
    def notes(first: int, last: int) -> tuple[Notification, ...]:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        return tuple(
            Notification(seq, at, NotificationKind.EVENT, 0, "test", "r", "", "minor", "", 0)
            for seq in range(first, last + 1)
        )

    tail = LogTail(size=16)
    tail.extend(notes(1, 10))
    assert [n.seq for n in tail.after(4, 3) or []] == [5, 6, 7]
    assert tail.after(10, 5) == []
    tail.extend(notes(12, 13))  # a commit it did not see: starts over
    assert tail.after(10, 5) is None
    assert [n.seq for n in tail.after(11, 5) or []] == [12, 13]
    tail.extend(notes(14, 60))
    assert 16 <= len(tail) <= 18, "bounded near its size"
    assert tail.after(20, 5) is None
    assert [n.seq for n in tail.after(59, 5) or []] == [60]
    tail.discard_through(50)  # a purge deleted up to 50
    assert tail.after(48, 5) is None
    assert [n.seq for n in tail.after(50, 20) or []] == list(range(51, 61))


def test_a_caught_up_exporter_reads_no_store(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many concurrent raises and clears: every notification reaches the target once, in
    order, all of it from the tail."""
    reads: list[int] = []
    real_read = queries.read_log

    def counted(engine: Any, after_seq: int, limit: int) -> list[Notification]:
        reads.append(after_seq)
        return real_read(engine, after_seq, limit)

    monkeypatch.setattr(queries, "read_log", counted)
    manager = AlarmManager(sqlite_store.engine, Catalog())
    manager.start()

    async def scenario() -> None:
        target = Target("fake", manager)
        await target.start()

        async def caller(first: int) -> None:
            for index in range(first, 1000, 25):
                await manager.raise_alarm("sync-failed", f"cm{index}")
                await manager.clear(type_id="sync-failed", resource=f"cm{index}")

        await asyncio.gather(*(caller(i) for i in range(25)))
        await until(lambda: target.cursor == manager.last_seq)
        await target.stop(10)
        assert [n.seq for n in target.received] == list(range(1, 2001))
        assert load_cursor(manager.engine, "fake") == 2000

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()
    assert reads == [], "a caught-up exporter reads the tail, not the store"


def test_past_the_tail_the_exporter_reads_the_store_then_the_tail(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_read = queries.read_log

    def counted(engine: Any, after_seq: int, limit: int) -> list[Notification]:
        reads.append(after_seq)
        return real_read(engine, after_seq, limit)

    monkeypatch.setattr(queries, "read_log", counted)
    manager = AlarmManager(sqlite_store.engine, Catalog(), tail_size=16)
    manager.start()
    settings = FAST.model_copy(update={"batch_size": 10})

    async def scenario() -> None:
        for index in range(100):
            await manager.emit_event("test", "load", text=f"n{index}")
        first = Target("fake", manager, settings)
        await first.start()
        await until(lambda: first.cursor == 100)
        assert reads, "far behind the tail: the store"
        from_store = len(reads)
        for index in range(30):
            await manager.emit_event("test", "load", text=f"m{index}")
        await until(lambda: first.cursor == 130)
        await first.stop(10)
        assert len(reads) == from_store, "caught up: the tail again"
        assert [n.seq for n in first.received] == list(range(1, 131))
        # A restart (a new exporter for the same target) resumes from the saved cursor.
        for index in range(5):
            await manager.emit_event("test", "load", text=f"late{index}")
        second = Target("fake", manager, settings)
        await second.start()
        await until(lambda: second.cursor == 135)
        await second.stop(10)
        assert [n.seq for n in second.received] == list(range(131, 136))

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()
