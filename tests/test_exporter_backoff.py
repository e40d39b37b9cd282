"""A dead target is retried at the pace of its backoff, whatever the commit rate, and
logged when it goes down, while it stays down (rate-limited) and when it is back; a stuck
delivery is timed out and retried."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from sqlalchemy import event

from agent.alarms import queries
from agent.alarms.catalog import Catalog
from agent.alarms.cursors import load_cursor, save_cursor
from agent.alarms.manager import AlarmManager
from agent.alarms.records import Notification
from agent.config import ExporterSettings
from agent.errors import ExportError, StoreError, StoreFencedError
from agent.export.base import Exporter
from agent.store.database import Store
from tests.conftest import AgentProcess, free_port
from tests.waiting import until


class FlakyExporter(Exporter):
    """Fails (or hangs) while ``down`` is set; counts every delivery attempt."""

    def __init__(self, manager: AlarmManager, settings: ExporterSettings) -> None:
        super().__init__("fake", manager, settings)
        self.down = True
        self.hang = False
        self.attempts = 0
        self.received: list[int] = []

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.down:
            raise ExportError("receiver 127.0.0.1:9 refused the connection")
        self.received.extend(n.seq for n in notifications)


@pytest.fixture
def lite_manager(tmp_path: Path) -> Iterator[AlarmManager]:
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    yield manager
    manager.stop()
    store.close()


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []

    def sink(message: Any) -> None:
        lines.append((message.record["level"].name, message.record["message"]))

    handler = logger.add(sink, level="DEBUG")
    yield lines
    logger.remove(handler)


def allowed_attempts(elapsed: float, initial: float, most: float) -> int:
    """Most attempts the backoff allows in ``elapsed`` seconds (the first one is at 0)."""
    attempts, spent, delay = 1, 0.0, initial
    while spent + delay <= elapsed:
        spent += delay
        attempts += 1
        delay = min(delay * 2, most)
    return attempts


async def commit_for(manager: AlarmManager, seconds: float) -> int:
    """Commit one event after another for ``seconds``; returns how many."""
    commits = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await manager.emit_event("test", "load", text=f"commit {commits}")
        commits += 1
    return commits


def warnings_about(lines: list[tuple[str, str]], name: str) -> list[str]:
    return [m for level, m in lines if level in {"WARNING", "ERROR"} and name in m]


def test_commits_do_not_cut_the_backoff_short(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.05, retry_max=0.4, poll_interval=0.05, backlog_threshold=10**6
        )
        exporter = FlakyExporter(lite_manager, settings)
        await exporter.start()
        started = time.monotonic()
        commits = await commit_for(lite_manager, 2.5)
        elapsed = time.monotonic() - started
        attempts = exporter.attempts
        assert commits > 100, "the test needs a commit rate far above the backoff"
        # +1: the attempt that may be running as the clock is read.
        assert 3 <= attempts <= allowed_attempts(elapsed, 0.05, 0.4) + 1, (attempts, commits)
        assert exporter.failures == attempts
        down = warnings_about(log_lines, "fake")
        assert len(down) == 1, down
        assert "down" in down[0]
        assert "refused the connection" in down[0]

        exporter.down = False
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=10)
        back = [m for level, m in log_lines if level == "INFO" and "fake" in m]
        assert len(back) == 1, back
        assert "back" in back[0], back
        assert "failed attempts" in back[0], back
        assert exporter.received == list(range(1, lite_manager.last_seq + 1))
        assert len(warnings_about(log_lines, "fake")) == 1
        await exporter.stop(5)

    asyncio.run(scenario())


def test_a_target_that_stays_down_gets_a_rate_limited_reminder(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.02, retry_max=0.05, poll_interval=0.05, down_reminder_interval=0.5
        )
        exporter = FlakyExporter(lite_manager, settings)
        await exporter.start()
        await lite_manager.emit_event("test", "load")
        started = time.monotonic()
        await until(lambda: time.monotonic() - started > 1.6, within=10)
        lines = warnings_about(log_lines, "fake")
        assert exporter.attempts >= 15, exporter.attempts
        # The first line, then one reminder per 0.5 s: never one per attempt.
        assert 2 <= len(lines) <= 5, lines
        assert all("still down" in line for line in lines[1:]), lines
        await exporter.stop(0.5)

    asyncio.run(scenario())


def test_a_stuck_delivery_is_timed_out_logged_once_and_retried(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.05, retry_max=0.1, poll_interval=0.05, deliver_timeout=0.2
        )
        exporter = FlakyExporter(lite_manager, settings)
        exporter.hang = True
        await exporter.start()
        await lite_manager.emit_event("test", "load")
        await until(lambda: exporter.attempts >= 3, within=5)
        assert exporter.last_error is not None
        assert "timed out" in exporter.last_error
        assert len(warnings_about(log_lines, "fake")) == 1
        exporter.hang = False
        exporter.down = False
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=10)
        assert exporter.received == [lite_manager.last_seq]
        await exporter.stop(1)

    asyncio.run(scenario())


# ------------------------------------------------------------------ real agent process
class ClosingListener:
    """A TCP port that accepts and at once closes every connection, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_dead_collector_is_retried_at_the_backoff_pace(agent_factory: Any) -> None:
    closed_port = free_port()  # nothing listens here: connection refused
    relp = ClosingListener()
    agent: AgentProcess = agent_factory(
        {
            "exporters": {"retry_initial": "200ms", "retry_max": "1s"},
            "syslog": {
                "collectors": [
                    {"name": "dead-tcp", "transport": "tcp", "address": f"127.0.0.1:{closed_port}"},
                    {"name": "dead-relp", "transport": "relp", "address": f"127.0.0.1:{relp.port}"},
                ]
            },
        }
    ).start()
    try:
        commits = 0
        started = time.monotonic()
        with agent.http() as client:
            while time.monotonic() - started < 6:
                response = client.post(
                    "/api/v1/alarms",
                    json={"type": "sync-failed", "resource": f"cm{commits}", "text": "x"},
                )
                assert response.status_code == 200, response.text
                commits += 1
            elapsed = time.monotonic() - started
            status = client.get("/api/v1/status").json()
        allowed = allowed_attempts(elapsed + 1, 0.2, 1.0) + 1  # +1 s: attempts at start-up
        failures = {e["name"]: e["failures"] for e in status["exporters"]}
        down_for = {e["name"]: e["down_for"] for e in status["exporters"]}
        # The status says which targets fail now, and since when.
        assert down_for["jsonl"] is None
        assert down_for["dead-tcp"] is not None
        assert 4 < down_for["dead-tcp"] < 60, down_for
        assert commits > 60, commits
        assert 2 <= failures["dead-tcp"] <= allowed, (failures, commits, allowed)
        assert 2 <= failures["dead-relp"] <= allowed, (failures, commits, allowed)
        assert 2 <= relp.accepted <= allowed + 1, (relp.accepted, allowed)
        log = agent.log_text().splitlines()
        for name in ("dead-tcp", "dead-relp"):
            lines = [line for line in log if name in line]
            assert len(lines) == 1, lines
            assert "down" in lines[0]
    finally:
        agent.stop()
        relp.close()


class SlowInformExporter(FlakyExporter):
    """Each delivery takes 0.3 s, as an inform waiting out its retries may."""

    def least_deliver_timeout(self) -> float:
        return 0.6

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        await asyncio.sleep(0.3)
        self.received.extend(n.seq for n in notifications)


def test_deliver_timeout_never_cuts_one_notification_short(lite_manager: AlarmManager) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(retry_initial=0.05, poll_interval=0.05, deliver_timeout=0.1)
        exporter = SlowInformExporter(lite_manager, settings)
        await exporter.start()
        await lite_manager.emit_event("test", "load")
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=5)
        assert exporter.failures == 0
        assert exporter.received == [lite_manager.last_seq]
        await exporter.stop(1)

    asyncio.run(scenario())


class AckingInformExporter(FlakyExporter):
    """Informs one after another: each is acknowledged (progress) after ``rtt`` seconds,
    so a whole batch takes far longer than deliver_timeout while the target is healthy."""

    rtt = 0.05

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        for note in notifications:
            await asyncio.sleep(self.rtt)
            self.received.append(note.seq)
            self.progress(note.seq)


def test_deliver_timeout_bounds_lack_of_progress_not_the_batch(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        # 40 informs at 50 ms: a 2 s batch against a 0.5 s deliver_timeout (the margin
        # between two acknowledgements leaves room for a loaded machine).
        settings = ExporterSettings(
            retry_initial=0.05, poll_interval=0.05, deliver_timeout=0.5, batch_size=500
        )
        for index in range(40):
            await lite_manager.emit_event("test", "load", text=f"n{index}")
        exporter = AckingInformExporter(lite_manager, settings)
        await exporter.start()
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=10)
        assert exporter.received == list(range(1, 41))
        assert exporter.failures == 0, exporter.last_error
        assert exporter.attempts == 1
        assert not warnings_about(log_lines, "fake")
        await exporter.stop(1)

    asyncio.run(scenario())


class StallingInformExporter(FlakyExporter):
    """Acknowledges the first ``good`` informs of each attempt, then hangs (a receiver
    that stops answering mid-batch)."""

    good = 3

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        for index, note in enumerate(notifications):
            if index >= self.good and self.hang:
                await asyncio.Event().wait()
            self.received.append(note.seq)
            self.progress(note.seq)


def test_a_timed_out_batch_that_made_progress_is_not_a_down_target(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.05, retry_max=10, poll_interval=0.05, deliver_timeout=0.1
        )
        for index in range(10):
            await lite_manager.emit_event("test", "load", text=f"n{index}")
        exporter = StallingInformExporter(lite_manager, settings)
        exporter.hang = True
        await exporter.start()
        # Each attempt moves 3 on, then stalls: the backoff never grows (it would reach
        # 0.05 * 2**3 = 0.4 s by the fourth round), and the target is never "down".
        started = time.monotonic()
        await until(lambda: exporter.cursor >= 9, within=5)
        assert time.monotonic() - started < 3.0  # about 0.5 s; a grown backoff adds more
        assert exporter.received == list(range(1, 10))
        assert not warnings_about(log_lines, "fake")
        exporter.hang = False
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=10)
        await exporter.stop(1)

    asyncio.run(scenario())


class FailingOnce:
    """Wraps a manager coroutine method so that its first call fails as a store outage."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise StoreError("the store could not commit the change; retry later")
        return await self.method(*args, **kwargs)


def test_the_backlog_alarm_is_raised_and_cleared_after_a_failed_write(
    lite_manager: AlarmManager,
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.02, retry_max=0.05, poll_interval=0.05, backlog_threshold=3
        )
        raise_once = FailingOnce(lite_manager.raise_alarm)
        clear_once = FailingOnce(lite_manager.clear)
        lite_manager.raise_alarm = raise_once  # type: ignore[method-assign]
        lite_manager.clear = clear_once  # type: ignore[method-assign]
        exporter = FlakyExporter(lite_manager, settings)
        await exporter.start()
        for index in range(6):
            await lite_manager.emit_event("test", "load", text=f"n{index}")

        def backlog_alarms() -> list[dict[str, Any]]:
            return queries.list_alarms(lite_manager.engine, type_id="exporter-backlog")

        await until(lambda: bool(backlog_alarms()), within=5)
        assert raise_once.calls >= 2
        exporter.down = False
        await until(lambda: not backlog_alarms(), within=5)
        assert clear_once.calls >= 2
        await exporter.stop(1)

    asyncio.run(scenario())


def test_a_refused_cursor_save_is_retried_without_resending(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.02,
            retry_max=0.05,
            poll_interval=0.05,
            batch_size=4,
            backlog_threshold=10**6,
        )
        for index in range(10):
            await lite_manager.emit_event("test", "load", text=f"n{index}")
        save_cursor(lite_manager.engine, "fake", 0)
        refusals = {"left": 5}

        def fenced(_conn: Any) -> None:
            # Every commit from here on is a cursor save: the first five are refused,
            # as a fenced store refuses them.
            if refusals["left"] > 0:
                refusals["left"] -= 1
                raise StoreFencedError("the store is fenced: this agent lost its lock")

        event.listen(lite_manager.engine, "commit", fenced)
        try:
            exporter = FlakyExporter(lite_manager, settings)
            exporter.down = False
            await exporter.start()
            await until(lambda: load_cursor(lite_manager.engine, "fake") == 10, within=10)
            assert refusals["left"] == 0
            assert exporter.received == list(range(1, 11)), "each notification once"
            assert exporter.failures == 0
            warnings = warnings_about(log_lines, "fake")
            assert warnings, "the refused save is logged"
            assert all("cannot save its cursor" in w for w in warnings), warnings
            assert not any("down" in w for w in warnings), warnings
            assert len(warnings) == 1, "throttled"
            await exporter.stop(1)
        finally:
            event.remove(lite_manager.engine, "commit", fenced)

    asyncio.run(scenario())


class FinallyAckExporter(FlakyExporter):
    """The first attempt gets ``good`` notifications acknowledged but reports that only
    when it ends (in a ``finally``, as a transport that counts acknowledgements may),
    then hangs until timed out; later attempts deliver at once."""

    good = 3

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        if self.attempts > 1:
            self.received.extend(n.seq for n in notifications)
            return
        try:
            self.received.extend(n.seq for n in notifications[: self.good])
            await asyncio.Event().wait()
        finally:
            self.progress(notifications[self.good - 1].seq)


def test_progress_reported_as_a_timed_out_delivery_ends_is_kept(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.05, retry_max=10, poll_interval=0.05, deliver_timeout=0.2
        )
        for index in range(10):
            await lite_manager.emit_event("test", "load", text=f"n{index}")
        exporter = FinallyAckExporter(lite_manager, settings)
        await exporter.start()
        await until(lambda: exporter.cursor == lite_manager.last_seq, within=5)
        await exporter.stop(1)
        # What the cut attempt got acknowledged is not sent again, and the target that
        # acknowledged it is not "down".
        assert exporter.received == list(range(1, 11)), exporter.received
        assert exporter.attempts == 2
        assert not warnings_about(log_lines, "fake")

    asyncio.run(scenario())


class AckAfterCancelExporter(FlakyExporter):
    """Delivery hangs; once cancelled, it reports an acknowledgement late (after a
    moment), as a stale callback may. Connects fail from the second one on."""

    def __init__(self, manager: AlarmManager, settings: ExporterSettings) -> None:
        super().__init__(manager, settings)
        self.connects = 0

    async def open(self) -> None:
        self.connects += 1
        if self.connects > 1:
            raise ExportError("receiver 127.0.0.1:9 refused the connection")

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            asyncio.get_running_loop().call_later(1.5, self.progress, notifications[0].seq)
            raise


def test_a_late_acknowledgement_does_not_count_for_the_next_attempt(
    lite_manager: AlarmManager, log_lines: list[tuple[str, str]]
) -> None:
    async def scenario() -> None:
        settings = ExporterSettings(
            retry_initial=0.05, retry_max=0.1, poll_interval=0.05, deliver_timeout=0.2
        )
        await lite_manager.emit_event("test", "load")
        exporter = AckAfterCancelExporter(lite_manager, settings)
        await exporter.start()
        started = time.monotonic()
        # Connect failures go on past the moment the late acknowledgement comes in.
        await until(lambda: time.monotonic() - started > 2.2, within=10)
        assert exporter.connects >= 8
        await exporter.stop(1)
        # Only an acknowledgement within the attempt moves the cursor: the connect
        # failures after the late one are a down target, not progress.
        assert exporter.cursor == 0
        down = warnings_about(log_lines, "fake")
        assert down, "the failed connects are a down target"
        assert "down" in down[0], down
        assert not [m for level, m in log_lines if level == "INFO" and "back" in m]

    asyncio.run(scenario())


class Fence:
    """A manager's write guard: refuses while ``fenced``, counting its calls."""

    def __init__(self) -> None:
        self.fenced = False
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.fenced:
            raise StoreFencedError("the store is fenced: this agent lost its lock")


def test_a_fenced_agent_delivers_nothing_until_unfenced(
    tmp_path: Path, log_lines: list[tuple[str, str]]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    fence = Fence()
    manager = AlarmManager(store.engine, Catalog(), write_guard=fence)
    manager.start()

    async def scenario() -> None:
        for index in range(5):
            await manager.emit_event("test", "load", text=f"n{index}")
        fence.fenced = True  # another agent took the store over
        fence.calls = 0
        settings = ExporterSettings(
            retry_initial=0.02, retry_max=0.05, poll_interval=0.05, backlog_threshold=10**6
        )
        exporter = FlakyExporter(manager, settings)
        exporter.down = False
        await exporter.start()
        # It asks the guard before it delivers, round after round, and sends nothing.
        await until(lambda: fence.calls >= 5 or bool(exporter.received), within=5)
        assert exporter.received == []
        assert exporter.attempts == 0
        assert "fenced" in (exporter.last_error or "")
        warnings = warnings_about(log_lines, "fake")
        assert len(warnings) == 1, warnings  # throttled, and not "down"
        assert "fenced" in warnings[0]
        assert "down" not in warnings[0]
        fence.fenced = False
        await until(lambda: exporter.cursor == manager.last_seq, within=10)
        assert exporter.received == list(range(1, 6))
        assert exporter.last_error is None
        await exporter.stop(1)

    try:
        asyncio.run(scenario())
    finally:
        manager.stop()
        store.close()


def test_a_commit_while_an_idle_target_looks_is_not_missed(
    lite_manager: AlarmManager,
) -> None:
    """The wake-up of a commit that lands between "nothing to do" and the wait must not be
    cleared unseen (it was: the target then slept a whole poll_interval)."""

    async def scenario() -> None:
        settings = ExporterSettings(poll_interval=60)
        exporter = FlakyExporter(lite_manager, settings)
        exporter.down = False
        checked = asyncio.Event()
        original = exporter._check_backlog

        async def commit_while_checking() -> None:
            await original()
            if not checked.is_set():
                checked.set()
                # A commit, its wake-up delivered to the loop, all before the wait starts.
                await lite_manager.emit_event("test", "between")
                for _ in range(5):
                    await asyncio.sleep(0)

        exporter._check_backlog = commit_while_checking  # type: ignore[method-assign]
        await exporter.start()
        try:
            await asyncio.wait_for(checked.wait(), 10)
            deadline = time.monotonic() + 10
            while lite_manager.last_seq not in exporter.received:
                assert time.monotonic() < deadline, "the commit waited for the poll interval"
                await asyncio.sleep(0.01)
        finally:
            await exporter.stop(5)

    asyncio.run(scenario())
