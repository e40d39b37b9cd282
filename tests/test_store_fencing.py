"""Store ownership on PostgreSQL: the owner notices a lost lock, fences itself, and two
agents never commit to one store. Real agents, a real server, a loopback proxy between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.errors import StoreError
from agent.store.database import Store
from agent.store.server_lock import LOCK_KEY
from tests.conftest import AgentProcess
from tests.tcp_proxy import TcpProxy, tcp_proxy

OUTAGE = 8.0


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", 5432) as started:
        yield started


def through(proxy: TcpProxy, url: str) -> str:
    """The same database, reached through the proxy."""
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


def raise_alarm(client: httpx.Client, resource: str) -> httpx.Response:
    return client.post("/api/v1/alarms", json={"type": "sync-failed", "resource": resource})


def owner_lock_held(pg_url: str) -> bool:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return bool(row and row[0])


def store_rows(pg_url: str) -> tuple[set[str], list[int]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        resources = {r for (r,) in conn.execute("SELECT resource FROM alarms")}
        seqs = [s for (s,) in conn.execute("SELECT seq FROM notification_log ORDER BY seq")]
    return resources, seqs


def assert_gap_free(seqs: list[int]) -> None:
    assert seqs, "the notification log is empty"
    assert len(seqs) == len(set(seqs))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gaps in {seqs}"


def store_state(client: httpx.Client) -> str | None:
    try:
        response = client.get("/api/v1/status", timeout=2)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    state: str = response.json().get("store_state", "")
    return state


@pytest.mark.postgres
@pytest.mark.slow
def test_short_outage_fences_then_same_agent_writes_again(
    agent_factory: Any, pg_url: str, proxy: TcpProxy
) -> None:
    a: AgentProcess = agent_factory({"store": {"url": through(proxy, pg_url)}}).start()
    committed: set[str] = set()
    with a.http() as client:
        for index in range(10):
            assert raise_alarm(client, f"before-{index}").status_code == 200
            committed.add(f"before-{index}")
        assert store_state(client) == "owned"

        cut_at = time.monotonic()
        proxy.cut(OUTAGE)
        wait_for(lambda: "store ownership lost" in a.log_text(), 5, "A logs the loss")
        noticed = time.monotonic() - cut_at
        assert noticed < 5
        assert wait_for(lambda: store_state(client) == "fenced", 3, "status says fenced")

        # Writes during the outage are refused at once, with the reason.
        refused = raise_alarm(client, "during")
        assert refused.status_code == 503
        assert "ownership" in refused.json()["error"]

        wait_for(lambda: proxy.listening, OUTAGE + 5, "the proxy is back")
        wait_for(lambda: store_state(client) == "owned", 15, "A holds the lock again")
        assert "store ownership regained" in a.log_text()
        for index in range(10):
            assert raise_alarm(client, f"after-{index}").status_code == 200
            committed.add(f"after-{index}")
    assert a.proc is not None
    assert a.proc.poll() is None, "A is still running"
    resources, seqs = store_rows(pg_url)
    assert committed <= resources, "nothing acknowledged is lost"
    assert "during" not in resources
    assert_gap_free(seqs)
    # Every loop that reads the store (sync schedule, SNMP view, exporters) lived through
    # the outage, and said so in lines, not tracebacks.
    assert a.stop() == 0
    assert "Traceback" not in a.log_text()


@pytest.mark.postgres
@pytest.mark.slow
def test_hung_server_is_noticed_by_the_watch_timeout(
    agent_factory: Any, pg_url: str, proxy: TcpProxy
) -> None:
    """Nothing forwarded, nothing closed: only the watch's own timeout can see it."""
    a: AgentProcess = agent_factory(
        {"store": {"url": through(proxy, pg_url), "server_timeout": "2s"}}
    ).start()
    with a.http() as client:
        assert raise_alarm(client, "before").status_code == 200
        proxy.pause(OUTAGE)
        # Fails unless the watch's own timeout (2 s + the 1 s interval) saw it in time.
        wait_for(lambda: "store ownership lost" in a.log_text(), 6, "A logs the loss")
        refused = raise_alarm(client, "during")
        assert refused.status_code == 503
        assert "ownership" in refused.json()["error"]
        wait_for(lambda: not proxy.paused, OUTAGE + 5, "the proxy forwards again")
        wait_for(lambda: store_state(client) == "owned", 20, "A holds the lock again")
        assert raise_alarm(client, "after").status_code == 200
    resources, seqs = store_rows(pg_url)
    assert {"before", "after"} <= resources
    assert "during" not in resources
    assert_gap_free(seqs)
    a.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_second_agent_takes_over_and_first_never_commits_again(
    agent_factory: Any, pg_url: str, proxy: TcpProxy
) -> None:
    a: AgentProcess = agent_factory({"store": {"url": through(proxy, pg_url)}}).start()
    committed: set[str] = set()
    with a.http() as client_a:
        for index in range(5):
            assert raise_alarm(client_a, f"a-{index}").status_code == 200
            committed.add(f"a-{index}")

        proxy.cut(OUTAGE)
        # The server released A's lock with A's connection: B may start now.
        wait_for(lambda: not owner_lock_held(pg_url), 5, "the server releases A's lock")
        b: AgentProcess = agent_factory({"store": {"url": pg_url}}).start()
        with b.http() as client_b:
            for index in range(5):
                assert raise_alarm(client_b, f"b-{index}").status_code == 200
                committed.add(f"b-{index}")

            # After the outage A must not commit anything: each write refused until A
            # sees that B owns the store and exits.
            wait_for(lambda: proxy.listening, OUTAGE + 5, "the proxy is back")
            accepted: list[str] = []
            deadline = time.monotonic() + 20
            index = 0
            assert a.proc is not None
            while a.proc.poll() is None and time.monotonic() < deadline:
                try:
                    response = raise_alarm(client_a, f"late-a-{index}")
                except httpx.TransportError:
                    break  # A is exiting
                if response.status_code == 200:
                    accepted.append(f"late-a-{index}")
                index += 1
                time.sleep(0.1)
            assert accepted == [], "A committed after B took over"
            assert a.proc.wait(10) != 0, "A exits with an error"
            assert "taken over by another agent" in a.log_text()

            for index in range(5, 10):
                assert raise_alarm(client_b, f"b-{index}").status_code == 200
                committed.add(f"b-{index}")
    resources, seqs = store_rows(pg_url)
    assert committed <= resources
    assert not any(r.startswith("late-a-") for r in resources)
    assert_gap_free(seqs)
    assert "duplicate key" not in b.log_text()
    assert b.stop() == 0


@pytest.mark.postgres
def test_fencing_token_refuses_the_old_owner_before_its_watch_notices(
    pg_url: str, pg_admin: str
) -> None:
    # The watch checks only once a minute here: what refuses the old owner is the token.
    first = Store(pg_url, lock_check_interval=60.0)
    first.open()
    second: Store | None = None
    try:
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = %s)",
                (pg_url.rsplit("/", 1)[1],),
            )
        second = Store(pg_url, lock_check_interval=60.0)
        second.open()  # the lock is free: the second one owns the store now
        with pytest.raises(StoreError, match="ownership"), first.engine.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('stale', 'first')"))
        assert first.fenced
        with second.engine.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('fresh', 'second')"))
        with second.engine.connect() as conn:
            keys = set(conn.execute(text("SELECT key FROM meta")).scalars())
        assert "fresh" in keys
        assert "stale" not in keys
    finally:
        if second is not None:
            second.close()
        first.close()


@pytest.mark.postgres
def test_lock_still_held_for_the_lost_session_means_wait_not_exit(
    pg_url: str, pg_admin: str
) -> None:
    """Until the server ends the session that held the lock, nobody else has claimed the
    store: the owner stays fenced and waits, then takes the lock back and writes again."""
    store = Store(pg_url, lock_check_interval=60.0)  # rounds driven by the test
    store.open()
    lost: list[str] = []
    store.on_lost(lost.append)
    try:
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'provsync-owner' AND datname = %s",
                (pg_url.rsplit("/", 1)[1],),
            )
        with psycopg.connect(pg_url, autocommit=True) as zombie:
            # Stands for the old session the server has not ended yet.
            wait_for(
                lambda: (
                    zombie.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                    == (True,)
                ),
                5,
                "the lock is free for the stand-in",
            )
            assert store.check_ownership().value == "fenced"
            assert store.check_ownership().value == "fenced", "waits while the lock is held"
            with pytest.raises(StoreError, match="ownership"), store.engine.begin() as conn:
                conn.execute(text("INSERT INTO meta (key, value) VALUES ('during', 'x')"))
            zombie.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        assert store.check_ownership().value == "owned"
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('after', 'x')"))
        assert lost == []
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_writer_reloads_its_counters_after_a_commit_of_unknown_outcome(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that reached the store but whose answer was lost must not make the
    writer reuse its ids and sequence numbers (every later write would fail)."""
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    dialect = store.engine.dialect
    real_commit = dialect.do_commit
    lost = {"once": True}

    def commit_then_lose_answer(dbapi_connection: Any) -> None:
        real_commit(dbapi_connection)
        if lost.pop("once", False):
            raise ConnectionResetError("connection lost after COMMIT was sent")

    try:
        monkeypatch.setattr(dialect, "do_commit", commit_then_lose_answer)

        async def scenario() -> None:
            with pytest.raises(StoreError):
                await manager.raise_alarm("sync-failed", "cm1")
            again = await manager.raise_alarm("sync-failed", "cm1")
            assert again.change == "repeated", "the committed alarm is known again"
            other = await manager.raise_alarm("sync-failed", "cm2")
            assert other.change == "raised"
            assert other.alarm["id"] == again.alarm["id"] + 1

        asyncio.run(scenario())
    finally:
        manager.stop()
    with store.engine.connect() as conn:
        seqs = list(conn.execute(text("SELECT seq FROM notification_log ORDER BY seq")).scalars())
    assert seqs == [1, 2]
