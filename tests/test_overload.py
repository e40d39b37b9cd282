"""Backpressure and store outages: the writer's bound on waiting API requests, and one
log line per kind of store failure instead of a traceback per write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from loguru import logger
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.errors import OverloadedError, StoreError
from agent.http_tls import client_context
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.outage import ThrottledLog, is_store_outage
from tests.conftest import TOKEN
from tests.waiting import wait_for


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m).rstrip("\n")), level="DEBUG", format="{level} {message}"
    )
    yield lines
    logger.remove(sink)


# ------------------------------------------------------------------ the bound
def test_bounded_requests_are_refused_at_once_past_the_bound(sqlite_store: Store) -> None:
    manager = AlarmManager(sqlite_store.engine, Catalog(), pending_max=3)
    gate = threading.Event()
    manager.add_listener(lambda seq: gate.wait(30))  # the writer stalls after a commit
    manager.start()
    try:
        first = manager.submit(manager.make_event("test", "a"), bounded=True)
        # Committed; the writer now hangs in the listener, still counted.
        wait_for("the first commit", first.done, within=10, every=0.01)
        queued = [manager.submit(manager.make_event("test", f"q{i}"), bounded=True) for i in (1, 2)]
        assert manager.pending == 3
        started = time.monotonic()
        with pytest.raises(OverloadedError, match="3 requests waiting"):
            manager.submit(manager.make_event("test", "refused"), bounded=True)
        assert time.monotonic() - started < 0.1
        # The agent's own writes are never refused: they wait their turn.
        own = manager.submit(manager.make_event("test", "internal"))
        assert manager.pending == 4

        async def bounded_call() -> None:
            await manager.emit_event("test", "api", bounded=True)

        with pytest.raises(OverloadedError):
            asyncio.run(bounded_call())
        gate.set()
        for future in [*queued, own]:
            assert isinstance(future.result(10), int)
        wait_for("nothing pending", lambda: manager.pending == 0, within=10, every=0.01)
        # Room again: the refused requests changed nothing, the next is accepted.
        assert isinstance(
            manager.submit(manager.make_event("test", "b"), bounded=True).result(10), int
        )
    finally:
        gate.set()
        manager.stop()
    resources = [
        r
        for (r,) in sqlite_store.engine.connect().exec_driver_sql(
            "SELECT resource FROM events ORDER BY seq"
        )
    ]
    assert "refused" not in resources
    assert "api" not in resources
    assert resources == ["a", "q1", "q2", "internal", "b"]


# ------------------------------------------------------------------ store outages
def test_a_store_outage_logs_one_line_not_a_traceback_per_write(
    sqlite_store: Store, log_lines: list[str]
) -> None:
    down = threading.Event()

    def _failing() -> int:
        # Non-zero: SQLite interrupts the statement (OperationalError "interrupted").
        return int(down.is_set() and threading.current_thread().name == "alarm-writer")

    @event.listens_for(sqlite_store.engine, "checkout")
    def _fail(dbapi_connection: Any, *args: Any) -> None:
        # At the driver: the writer runs its statements on the DBAPI cursor, without
        # SQLAlchemy's statement events.
        dbapi_connection.set_progress_handler(_failing, 1)

    manager = AlarmManager(sqlite_store.engine, Catalog(), batch_max=8)
    manager.start()
    try:
        down.set()

        async def burst() -> list[Any]:
            calls = [manager.emit_event("test", f"r{i}") for i in range(200)]
            return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(burst())
        assert all(isinstance(r, StoreError) for r in results), results[:3]
        assert "retry later" in str(results[0])
        down.clear()
        assert isinstance(asyncio.run(manager.emit_event("test", "back")), int)
    finally:
        manager.stop()
    failures = [line for line in log_lines if "alarm store write failed" in line]
    assert len(failures) == 1, failures[:5]
    assert failures[0].startswith("WARNING")
    assert "OperationalError: interrupted" in failures[0]
    assert not any("Traceback" in line or "[SQL:" in line for line in log_lines)


def test_throttled_log_reminds_with_the_count_it_held_back(log_lines: list[str]) -> None:
    now = [100.0]
    throttled = ThrottledLog(interval=10, clock=lambda: now[0])
    exc = OperationalError("INSERT INTO x", {"password": "s3cret"}, Exception("gone away"))
    assert throttled.warning("store write failed", exc)
    for _ in range(41):
        now[0] += 0.1
        assert not throttled.warning("store write failed", exc)
    # Another kind of failure is its own line.
    assert throttled.warning("store write failed", StoreError("locked"))
    now[0] += 10
    assert throttled.warning("store write failed", exc)
    lines = [line for line in log_lines if "store write failed" in line]
    assert lines == [
        "WARNING store write failed: Exception: gone away",
        "WARNING store write failed: StoreError: locked",
        "WARNING store write failed: Exception: gone away (41 more since the last such line)",
    ]
    assert not any("s3cret" in line or "INSERT" in line for line in log_lines)


def test_only_store_outages_are_expected() -> None:
    assert is_store_outage(OperationalError("x", {}, Exception("connection refused")))
    assert is_store_outage(StoreError("locked"))
    assert not is_store_outage(IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_store_outage(OverflowError("int too big"))
    assert not is_store_outage(KeyError("bug"))


# ------------------------------------------------------------------ a real agent
def test_an_overloaded_agent_refuses_at_once_and_keeps_latency_bounded(
    agent_factory: Any,
) -> None:
    # A small bound so that 64 concurrent clients offer far more than the writer takes.
    agent = agent_factory({"api": {"max_pending_writes": 8}}).start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    accepted: list[float] = []
    refused: list[tuple[float, str | None]] = []
    other: list[int] = []
    errors: list[str] = []

    async def client(http: httpx.AsyncClient, n: int) -> None:
        for i in range(25):
            started = time.monotonic()
            try:
                response = await http.post(
                    "/api/v1/alarms", json={"type": "sync-failed", "resource": f"c{n}-{i}"}
                )
            except httpx.TransportError as exc:
                errors.append(repr(exc))
                continue
            elapsed = time.monotonic() - started
            if response.status_code == 200:
                accepted.append(elapsed)
            elif response.status_code == 503:
                refused.append((elapsed, response.headers.get("retry-after")))
                assert "retry later" in response.json()["error"]
            else:
                other.append(response.status_code)

    async def load() -> None:
        # Below uvicorn's 5 s keep-alive, so no request races a server-side close.
        limits = httpx.Limits(max_connections=64, keepalive_expiry=2)
        async with httpx.AsyncClient(
            base_url=agent.url, headers=headers, timeout=30, limits=limits, verify=client_context()
        ) as http:
            await asyncio.gather(*(client(http, n) for n in range(64)))

    asyncio.run(load())
    assert errors == []
    assert other == []
    assert refused, "no request was refused at 64 concurrent writers with a bound of 8"
    assert all(after == "1" for _, after in refused)
    accepted.sort()
    # Generous (2 shared cores): without the bound every request waits behind all others.
    p99 = accepted[int(len(accepted) * 0.99) - 1]
    assert p99 < 5.0, f"accepted p99 {p99:.2f}s"
    with agent.http() as http:
        status = http.get("/api/v1/status").json()
    assert status["active_alarms"]["total"] == len(accepted)  # no refused one committed
    assert status["writer"]["refused"] == len(refused)
    assert status["writer"]["max_pending_writes"] == 8
    assert "Traceback" not in agent.log_text()


def test_a_store_outage_on_a_read_is_503_and_one_line(
    sqlite_store: Store, log_lines: list[str]
) -> None:
    from datetime import UTC, datetime

    from agent.api.app import Services, create_app

    @event.listens_for(sqlite_store.engine, "before_cursor_execute")
    def _fail(*args: Any) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    manager = AlarmManager(sqlite_store.engine, Catalog())
    app = create_app(
        Services(
            manager,
            TOKEN,
            datetime.now(UTC),
            "sqlite://",
            "id",
            store=StoreAccess(sqlite_store.engine),
        )
    )

    async def reads() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://agent", headers=headers, verify=client_context()
        ) as http:
            return [await http.get("/api/v1/alarms") for _ in range(20)]

    responses = asyncio.run(reads())
    assert {r.status_code for r in responses} == {503}
    assert "retry later" in responses[0].json()["error"]
    failures = [line for line in log_lines if "store read failed" in line]
    assert len(failures) == 1, failures
    assert "unable to open database file" in failures[0]
    assert not any("Traceback" in line for line in log_lines)


def test_a_stalled_writer_refuses_new_api_writes_at_once(agent_factory: Any) -> None:
    """The store locked by another process: 4 writes wait, the 5th is 503 at once, and
    the 4 commit when the lock goes."""
    agent = agent_factory({"api": {"max_pending_writes": 4}}).start()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def writer_idle() -> bool:
        with agent.http() as http:
            return bool(http.get("/api/v1/status").json()["writer"]["pending"] == 0)

    # What the agent commits on its own at start (agent-started, the exporters' first
    # notices) counts as waiting too: on a busy machine it could still be queued and take
    # one of the four places, so the fourth write would be refused instead of waiting.
    wait_for("the agent's own start-up commits", writer_idle)
    lock = sqlite3.connect(agent.data_dir / "provsync.db", timeout=10)
    lock.execute("BEGIN EXCLUSIVE")
    try:

        async def scenario() -> tuple[list[int], int, float]:
            async with httpx.AsyncClient(
                base_url=agent.url, headers=headers, timeout=60, verify=client_context()
            ) as http:

                def write(n: int) -> Any:
                    body = {"type": "sync-failed", "resource": f"r{n}"}
                    return asyncio.create_task(http.post("/api/v1/alarms", json=body))

                waiting = [write(n) for n in range(4)]
                deadline = time.monotonic() + 10
                while (await http.get("/api/v1/status")).json()["writer"]["pending"] < 4:
                    assert time.monotonic() < deadline, "the writes never queued"
                    await asyncio.sleep(0.02)
                started = time.monotonic()
                refused = await http.post(
                    "/api/v1/alarms", json={"type": "sync-failed", "resource": "late"}
                )
                took = time.monotonic() - started
                assert refused.headers["retry-after"] == "1"
                assert not any(task.done() for task in waiting)
                lock.rollback()
                answers = await asyncio.gather(*waiting)
                return [a.status_code for a in answers], refused.status_code, took

        codes, refused_status, took = asyncio.run(scenario())
    finally:
        lock.close()
    assert refused_status == 503
    assert took < 1.0, f"the refusal took {took:.2f}s"
    assert codes == [200, 200, 200, 200]
