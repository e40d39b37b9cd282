"""Cursor saves go through the alarm manager's writer: committed in its group commits
(no write transaction of their own competing for the store's lock), coalesced per
target, refused while the store is fenced (the delivered position kept in memory and only
the save retried), and the final position saved at stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event

from agent.alarms.catalog import Catalog
from agent.alarms.cursors import load_cursor
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import CursorOp
from agent.alarms.records import Notification
from agent.config import ExporterSettings
from agent.errors import ExportError, StoreFencedError
from agent.export.base import Exporter
from agent.store.database import Store
from tests.waiting import until

FAST = ExporterSettings(
    poll_interval=0.05, retry_initial=0.02, retry_max=0.05, backlog_threshold=10**6
)


class Target(Exporter):
    def __init__(self, manager: AlarmManager, settings: ExporterSettings = FAST) -> None:
        super().__init__("fake", manager, settings)
        self.received: list[int] = []

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.received.extend(n.seq for n in notifications)


class Fence:
    def __init__(self) -> None:
        self.fenced = False
        self.refused = 0

    def __call__(self) -> None:
        if self.fenced:
            self.refused += 1
            raise StoreFencedError("the store is fenced: this agent lost its lock")


def test_saves_commit_in_the_writers_transactions(sqlite_store: Store) -> None:
    manager = AlarmManager(sqlite_store.engine, Catalog())
    manager.start()
    committers: list[str] = []

    def on_commit(_conn: Any) -> None:
        committers.append(threading.current_thread().name)

    async def scenario() -> None:
        target = Target(manager, FAST.model_copy(update={"batch_size": 7}))
        await target.start()  # its first cursor is written directly, once
        event.listen(sqlite_store.engine, "commit", on_commit)
        for index in range(50):
            await manager.emit_event("test", "load", text=f"n{index}")
        await until(lambda: load_cursor(manager.engine, "fake") == 50)
        await target.stop(10)
        assert target.received == list(range(1, 51))

    try:
        asyncio.run(scenario())
    finally:
        event.remove(sqlite_store.engine, "commit", on_commit)
        manager.stop()
    assert committers, "commits were seen"
    assert set(committers) == {"alarm-writer"}, "no save of its own outside the writer"


def test_saves_queued_together_write_only_the_newest_per_target(sqlite_store: Store) -> None:
    manager = AlarmManager(sqlite_store.engine, Catalog())
    manager.start()
    held = threading.Event()
    release = threading.Event()
    rows: list[int] = []

    def hold_first(_conn: Any) -> None:
        if not held.is_set():
            held.set()
            assert release.wait(10)

    traced: list[Any] = []

    def count_cursor_rows(statement: str) -> None:
        if "exporter_cursors" in statement:
            rows.append(1)  # the driver traces each row an executemany writes

    def trace(dbapi_connection: Any, *_args: Any) -> None:
        # At the driver: the writer hands its rows to the DBAPI cursor, not through
        # SQLAlchemy's statement events.
        dbapi_connection.set_trace_callback(count_cursor_rows)
        traced.append(dbapi_connection)

    event.listen(sqlite_store.engine, "commit", hold_first)
    event.listen(sqlite_store.engine, "checkout", trace)
    try:
        blocker = manager.submit(manager.make_event("test", "hold"))
        assert held.wait(10)
        # The writer is inside a commit: these queue and go in its next group commit.
        saves = [
            manager.submit(CursorOp(name, seq)) for seq in range(1, 101) for name in ("a", "b")
        ]
        release.set()
        blocker.result(10)
        for save in saves:
            save.result(10)
    finally:
        event.remove(sqlite_store.engine, "commit", hold_first)
        event.remove(sqlite_store.engine, "checkout", trace)
        manager.stop()
        for dbapi_connection in traced:
            dbapi_connection.set_trace_callback(None)
    assert load_cursor(sqlite_store.engine, "a") == 100
    assert load_cursor(sqlite_store.engine, "b") == 100
    assert sum(rows) == 2, f"one row per target, not per save: {rows}"


def test_saves_take_nothing_from_the_bound_on_waiting_requests(sqlite_store: Store) -> None:
    """The API's bound counts requests: a save in the writer does not refuse one."""
    manager = AlarmManager(sqlite_store.engine, Catalog(), pending_max=1)
    manager.start()
    held = threading.Event()
    release = threading.Event()

    def hold_first(_conn: Any) -> None:
        if not held.is_set():
            held.set()
            assert release.wait(10)

    event.listen(sqlite_store.engine, "commit", hold_first)
    try:
        save = manager.submit(CursorOp("a", 1))
        assert held.wait(10)
        assert manager.pending == 0
        raised = manager.submit(manager.make_raise("sync-failed", "cm1"), bounded=True)
        release.set()
        save.result(10)
        assert raised.result(10).seq == 1
    finally:
        event.remove(sqlite_store.engine, "commit", hold_first)
        manager.stop()
    assert manager.refused == 0


class FencedOnDelivery(Target):
    """The target takes the first batch, and the store is fenced as it does."""

    def __init__(self, manager: AlarmManager, fence: Fence, settings: ExporterSettings):
        super().__init__(manager, settings)
        self.fence = fence

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        first = not self.received
        await super().deliver(notifications)
        if first:
            self.fence.fenced = True


def test_a_fenced_store_refuses_the_save_and_the_position_is_kept(sqlite_store: Store) -> None:
    fence = Fence()
    manager = AlarmManager(sqlite_store.engine, Catalog(), write_guard=fence)
    manager.start()

    async def scenario() -> None:
        for index in range(10):
            await manager.emit_event("test", "load", text=f"n{index}")
        target = FencedOnDelivery(manager, fence, FAST.model_copy(update={"batch_size": 4}))
        await target.start()
        await until(lambda: "cannot save its cursor" in (target.last_error or ""))
        # Delivered and kept in memory; the store still has the old cursor; nothing more
        # is sent while the save is refused.
        assert target.cursor == 4
        assert load_cursor(manager.engine, "fake") == 0
        assert "fenced" in (target.last_error or "")
        refused = fence.refused
        await until(lambda: fence.refused >= refused + 5)  # retried with the backoff
        assert target.received == [1, 2, 3, 4], "nothing more while the save is refused"
        fence.fenced = False
        await until(lambda: load_cursor(manager.engine, "fake") == 10)
        assert target.received == list(range(1, 11)), "each once"
        await target.stop(10)

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()


class FailsAfterFirst(Target):
    async def deliver(self, notifications: Sequence[Notification]) -> None:
        if self.received:
            raise ExportError("receiver went away")
        await super().deliver(notifications)


def test_stop_saves_the_final_position(sqlite_store: Store) -> None:
    """Stopped during a backoff after a delivery: what was delivered is saved."""
    manager = AlarmManager(sqlite_store.engine, Catalog())
    manager.start()

    async def scenario() -> None:
        for index in range(10):
            await manager.emit_event("test", "load", text=f"n{index}")
        settings = FAST.model_copy(
            update={"batch_size": 5, "retry_initial": 30.0, "retry_max": 60.0}
        )
        target = FailsAfterFirst(manager, settings)
        await target.start()
        await until(lambda: target.failures >= 1)
        await target.stop(5)
        assert target.received == [1, 2, 3, 4, 5]
        assert load_cursor(manager.engine, "fake") == 5

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()
