"""Retention never purges what a configured export target has not delivered, unless its
backlog passes [retention] max_backlog (count) or max_backlog_age; then the loss is an
export-gap event and an export-loss alarm naming the target and the range, and the
target's next notification says the range in words."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.cursors import load_cursor, save_cursor
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import PurgeOp
from agent.alarms.records import Notification
from agent.config import ExporterSettings
from agent.errors import ExportError
from agent.export.base import Exporter
from agent.store.database import Store
from agent.store.models import LOG
from tests.conftest import AgentProcess
from tests.rsyslog import Rsyslog

DAY = 86400.0
SEQUENCE_ID = re.compile(r'sequenceId="(\d+)"')


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(store: Store, clock: Clock) -> Iterator[AlarmManager]:
    manager = AlarmManager(store.engine, Catalog(), clock=clock)
    manager.start()
    yield manager
    manager.stop()


def purge_op(
    *targets: str, log_max: int = 100, max_backlog: int = 10**6, max_backlog_age: float = 30 * DAY
) -> PurgeOp:
    return PurgeOp(
        cleared_alarm_days=30,
        event_days=30,
        log_max=log_max,
        log_days=30,
        targets=targets,
        max_backlog=max_backlog,
        max_backlog_age=max_backlog_age,
    )


def log_range(manager: AlarmManager) -> tuple[int, int, int]:
    with manager.engine.connect() as conn:
        low, high, count = conn.execute(
            select(func.min(LOG.c.seq), func.max(LOG.c.seq), func.count())
        ).one()
    return int(low or 0), int(high or 0), int(count)


async def emit(manager: AlarmManager, count: int) -> None:
    for index in range(count):
        await manager.emit_event("test", "load", text=f"n{index}")


def loss_alarms(manager: AlarmManager) -> list[dict[str, Any]]:
    return queries.list_alarms(manager.engine, type_id="export-loss")


def gap_events(manager: AlarmManager) -> list[dict[str, Any]]:
    return queries.list_events(manager.engine, type_id="export-gap")


def test_purge_keeps_what_a_live_target_has_not_delivered(clocked: AlarmManager) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        save_cursor(clocked.engine, "slow", 50)
        save_cursor(clocked.engine, "fast", 300)
        save_cursor(clocked.engine, "removed", 5)  # no longer configured: holds nothing
        counts = await clocked.purge(purge_op("slow", "fast"))
        assert log_range(clocked) == (51, 300, 250)
        assert counts["notifications"] == 50
        assert not loss_alarms(clocked)
        assert not gap_events(clocked)
        # Without live targets behind, retention keeps only log_max again.
        save_cursor(clocked.engine, "slow", 300)
        await clocked.purge(purge_op("slow", "fast"))
        assert log_range(clocked) == (201, 300, 100)
        assert not loss_alarms(clocked)

    asyncio.run(scenario())


def test_past_max_backlog_the_loss_is_an_event_and_an_alarm(clocked: AlarmManager) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        save_cursor(clocked.engine, "slow", 50)
        save_cursor(clocked.engine, "fast", 300)
        counts = await clocked.purge(purge_op("slow", "fast", max_backlog=120))
        # The newest 120 stay for "slow": 181-300; 51-180 are lost to it.
        low, high, _ = log_range(clocked)
        assert low == 181
        assert high == 302, "the purge logged the event and the alarm"
        assert counts["undelivered"] == 130
        text = "target slow lost notifications 51-180 (purged by retention before delivery"
        (alarm,) = loss_alarms(clocked)
        assert alarm["resource"] == "slow"
        assert alarm["severity"] == "major"
        assert alarm["text"].startswith(text), alarm["text"]
        assert "export-loss --resource slow" in alarm["resolution"]
        (event,) = gap_events(clocked)
        assert event["resource"] == "slow"
        assert event["text"].startswith(text), event["text"]
        assert event["details"]["first_lost"] == 51
        assert event["details"]["last_lost"] == 180
        assert event["details"]["bound"] == "max_backlog"

        # A second loss while the alarm is active changes its text (a notification).
        await emit(clocked, 200)
        save_cursor(clocked.engine, "fast", clocked.last_seq)
        await clocked.purge(purge_op("slow", "fast", max_backlog=120))
        (alarm,) = loss_alarms(clocked)
        assert "181-382" in alarm["text"], alarm["text"]
        assert alarm["count"] == 2
        assert [e["details"]["first_lost"] for e in gap_events(clocked)] == [51, 181]
        # The loss is permanent: the alarm stays until the operator clears it.
        save_cursor(clocked.engine, "slow", clocked.last_seq)
        await clocked.purge(purge_op("slow", "fast", max_backlog=120))
        assert len(loss_alarms(clocked)) == 1

    asyncio.run(scenario())


def test_past_max_backlog_age_the_old_undelivered_are_purged(
    clocked: AlarmManager, clock: Clock
) -> None:
    async def scenario() -> None:
        await emit(clocked, 150)
        clock.now += timedelta(days=32)
        await emit(clocked, 10)
        save_cursor(clocked.engine, "slow", 0)
        # Older than notification_log_days (30) but younger than max_backlog_age: kept.
        await clocked.purge(purge_op("slow", max_backlog_age=35 * DAY))
        assert log_range(clocked)[0] == 1
        assert not loss_alarms(clocked)
        clock.now += timedelta(days=4)
        await clocked.purge(purge_op("slow", max_backlog_age=35 * DAY))
        assert log_range(clocked)[0] == 151
        (event,) = gap_events(clocked)
        assert event["details"]["bound"] == "max_backlog_age"
        assert "lost notifications 1-150" in event["text"]

    asyncio.run(scenario())


class Collector(Exporter):
    def __init__(self, name: str, manager: AlarmManager) -> None:
        super().__init__(name, manager, ExporterSettings(poll_interval=0.05))
        self.received: list[Notification] = []

    def accepts(self, notification: Notification) -> bool:
        return notification.type_id != "export-gap"  # its filter must not hide the notice

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.received.extend(notifications)


def test_the_target_is_told_the_lost_range_first(clocked: AlarmManager) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        save_cursor(clocked.engine, "slow", 50)
        await clocked.purge(purge_op("slow", max_backlog=120))
        exporter = Collector("slow", clocked)
        await exporter.start()
        await exporter.stop(10)  # drains what is committed first
        first, *rest = exporter.received
        assert first.type_id == "export-gap"
        assert first.resource == "slow"
        assert first.seq == 180, "numbered as the last lost one: in order, jump visible"
        assert "lost notifications 51-180" in first.text
        assert "the next one is 181" in first.text
        # 301 is the logged export-gap event, which this target's filter drops.
        assert [n.seq for n in rest] == [*range(181, 301), 302]
        assert load_cursor(clocked.engine, "slow") == clocked.last_seq

    asyncio.run(scenario())


def test_a_new_target_is_not_told_of_what_was_purged_before_it_existed(
    clocked: AlarmManager,
) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        await clocked.purge(purge_op())  # no targets yet: retention keeps 201-300
        exporter = Collector("new", clocked)
        await exporter.start()
        await exporter.stop(10)
        assert [n.seq for n in exporter.received] == list(range(201, 301))
        # Its cursor is kept from the start: a later loss is its own, and said.
        await emit(clocked, 300)
        assert load_cursor(clocked.engine, "new") == 300
        await clocked.purge(purge_op("new", max_backlog=120))
        assert gap_events(clocked)[0]["details"]["first_lost"] == 301

    asyncio.run(scenario())


# ------------------------------------------------------------------ real agent process
def test_a_target_down_past_max_backlog_hears_of_the_gap(
    agent_factory: Any, tmp_path: Path
) -> None:
    rsyslog = Rsyslog(tmp_path / "rsyslog")  # not started yet: the collector is down
    agent: AgentProcess = agent_factory(
        {
            "retention": {
                "notification_log_max": 100,
                "max_backlog": 150,
                "purge_interval": "1s",
            },
            "exporters": {"backlog_threshold": 100000, "retry_max": "500ms"},
            "syslog": {
                "collectors": [
                    {
                        "name": "siem",
                        "transport": "tcp",
                        "address": f"127.0.0.1:{rsyslog.ports['tcp']}",
                    }
                ]
            },
        }
    ).start()
    try:
        with agent.http() as client:
            for index in range(400):
                assert client.post("/api/v1/test", json={"text": f"t{index}"}).status_code == 200
            deadline = time.monotonic() + 20
            alarms: list[dict[str, Any]] = []
            while not alarms and time.monotonic() < deadline:
                alarms = client.get("/api/v1/alarms", params={"type": "export-loss"}).json()
                time.sleep(0.1)
            assert alarms, agent.log_text()[-3000:]
            (alarm,) = alarms
            assert alarm["resource"] == "siem"
            assert "target siem lost notifications " in alarm["text"]
            events = client.get("/api/v1/events", params={"type": "export-gap"}).json()
            assert events[0]["text"].startswith("target siem lost notifications 1-"), events
            rsyslog.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = client.get("/api/v1/status").json()
                siem = next(e for e in status["exporters"] if e["name"] == "siem")
                if siem["cursor"] == status["last_seq"]:
                    break
                time.sleep(0.1)
            assert siem["cursor"] == status["last_seq"], siem
            lines = rsyslog.wait_for("tcp", siem["delivered"], within=30)
        assert len(lines) == siem["delivered"]
        first = lines[0]
        assert first["msgid"] == "EVENT"
        assert first["msg"].startswith("target siem lost notifications 1-"), first
        assert "purged by retention before delivery" in first["msg"]
        assert 'typeId="export-gap"' in first["sd"]
        # After the notice, what was kept arrives in order, the loss events included.
        seqs = [int(SEQUENCE_ID.findall(line["sd"])[0]) for line in lines]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        assert seqs[0] + 1 == seqs[1], "the notice is numbered as the last lost one"
        assert f"the next one is {seqs[1]}" in first["msg"]
        assert any("target siem lost notifications" in line["msg"] for line in lines[1:])
        log = agent.log_text()
        assert "export target siem skips notifications 1-" in log
        assert "retention purged notifications 1-" in log
    finally:
        agent.stop()
        rsyslog.stop()


class HeldCollector(Collector):
    """Reads a batch, then waits in deliver until ``release``; the first attempt fails."""

    def __init__(self, name: str, manager: AlarmManager) -> None:
        super().__init__(name, manager)
        self.settings = ExporterSettings(poll_interval=0.05, retry_initial=0.02, batch_size=500)
        self.delivering = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.calls += 1
        self.delivering.set()
        await self.release.wait()
        if self.calls == 1:
            raise ExportError("receiver went away mid-batch")
        await super().deliver(notifications)


def test_rows_a_target_holds_are_kept_and_no_loss(clocked: AlarmManager) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        exporter = HeldCollector("slow", clocked)
        await exporter.start()
        await asyncio.wait_for(exporter.delivering.wait(), 5)
        # Its committed cursor is 0, but it holds 1-300 in memory and is sending them:
        # they are protected (kept in the log), not counted as delivered.
        assert load_cursor(clocked.engine, "slow") == 0
        counts = await clocked.purge(purge_op("slow", max_backlog=120))
        assert counts["notifications"] == 0
        assert log_range(clocked) == (1, 300, 300)
        assert not loss_alarms(clocked)
        assert not gap_events(clocked)
        exporter.release.set()
        deadline = time.monotonic() + 10
        # The exporter has no event for "delivered up to": poll its position, bounded.
        while exporter.cursor < 300 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await exporter.stop(10)
        assert exporter.calls == 2
        # The failed attempt is retried from memory: all of it, once, and no gap notice.
        assert [n.seq for n in exporter.received] == list(range(1, 301))
        assert load_cursor(clocked.engine, "slow") == 300
        # Delivered and committed, they are no longer protected.
        await clocked.purge(purge_op("slow", max_backlog=120))
        assert log_range(clocked) == (201, 300, 100)

    asyncio.run(scenario())


def test_held_rows_reach_the_target_after_a_restart(clocked: AlarmManager) -> None:
    async def scenario() -> None:
        await emit(clocked, 300)
        exporter = HeldCollector("slow", clocked)
        await exporter.start()
        await asyncio.wait_for(exporter.delivering.wait(), 5)
        await clocked.purge(purge_op("slow", max_backlog=120))
        # Stopped while still sending (the agent stops or restarts): nothing delivered.
        await exporter.stop(0.1)
        assert not exporter.received
        assert load_cursor(clocked.engine, "slow") == 0
        # The next process resumes from the committed cursor: the rows are still there.
        restarted = Collector("slow", clocked)
        await restarted.start()
        await restarted.stop(10)
        assert [n.seq for n in restarted.received] == list(range(1, 301))
        assert not any(n.type_id == "export-gap" for n in restarted.received)
        assert not loss_alarms(clocked)
        assert not gap_events(clocked)

    asyncio.run(scenario())


def test_a_purge_while_the_exporter_reads_is_no_loss(
    clocked: AlarmManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read runs on a thread: a purge between its snapshot and its return must see
    the rows as held (they are on their way to the target), not lost."""
    read_done = threading.Event()
    purged = threading.Event()
    real_read = queries.read_log

    def slow_read(engine: Any, after_seq: int, limit: int) -> list[Notification]:
        rows = real_read(engine, after_seq, limit)
        read_done.set()
        assert purged.wait(10), "the purge did not run"
        return rows

    monkeypatch.setattr(queries, "read_log", slow_read)

    async def scenario() -> None:
        await emit(clocked, 300)
        # The rows are in the manager's tail (read in memory, no thread): forgotten, so
        # the exporter reads the store, as one behind the tail does.
        clocked.tail.clear()
        exporter = Collector("slow", clocked)
        exporter.settings = ExporterSettings(poll_interval=0.05, batch_size=500)
        await exporter.start()
        assert await asyncio.to_thread(read_done.wait, 10)
        try:
            await clocked.purge(purge_op("slow", max_backlog=120))
        finally:
            purged.set()
        assert log_range(clocked)[:2] == (1, 300)
        assert not loss_alarms(clocked)
        assert not gap_events(clocked)
        monkeypatch.setattr(queries, "read_log", real_read)
        await exporter.stop(10)
        assert [n.seq for n in exporter.received] == list(range(1, 301))

    asyncio.run(scenario())
