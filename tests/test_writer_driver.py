"""The alarm writer's statements on the driver's cursor, on a connection it keeps: driver
errors mean what they meant through SQLAlchemy, a kept connection that broke is replaced
without losing a request, and the writer never writes a table the SNMP view watches.
SQLite and PostgreSQL (real servers, real connections)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import IntegrityError

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import CursorOp
from agent.export.snmp.mibread import watch_elements
from agent.store.database import Store
from agent.store.models import META
from agent.store.outage import describe, is_store_outage
from agent.store.rawsql import RawWriter


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def log_seqs(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(text("SELECT seq FROM notification_log ORDER BY seq")).scalars())


def kill(store: Store, conn: Connection) -> None:
    """Break ``conn`` under its user, as a store restart would."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    if store.engine.dialect.name == "sqlite":
        dbapi_connection.close()
        return
    pid = dbapi_connection.info.backend_pid
    with psycopg.connect(
        str(store.engine.url.set(drivername="postgresql")), autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_the_writer_keeps_one_connection_across_group_commits(store: Store) -> None:
    checkouts: list[int] = []
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:
        run(manager.raise_alarm("sync-failed", "first"))
        event.listen(store.engine, "checkout", lambda *_: checkouts.append(1))

        async def many() -> None:
            for i in range(30):
                await manager.raise_alarm("sync-failed", f"cm{i}")
                await manager.clear(type_id="sync-failed", resource=f"cm{i}")

        run(many())
    finally:
        manager.stop()
    assert checkouts == [], "no pool checkout per group commit"
    assert log_seqs(store) == list(range(1, 62))


def test_a_broken_kept_connection_is_replaced_and_nothing_is_lost(store: Store) -> None:
    watch = watch_elements(store.engine)  # as in the agent: it sees the rollback too
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:
        first = run(manager.raise_alarm("sync-failed", "before"))
        kept = manager._writer.store.conn
        assert kept is not None
        kill(store, kept)
        # The next group commit finds its connection dead before it commits: written
        # again on a fresh one, the caller sees no failure.
        again = run(manager.raise_alarm("sync-failed", "after"))
        assert again.change == "raised"
        assert again.alarm["id"] == first.alarm["id"] + 1
        assert manager._writer.store.conn is not None
        assert manager._writer.store.conn is not kept
        assert run(manager.raise_alarm("sync-failed", "after")).change == "repeated"
    finally:
        manager.stop()
        watch.close()
    assert manager._writer.store.conn is None, "stop returns the kept connection"
    assert log_seqs(store) == [1, 2]


def test_driver_errors_are_sqlalchemys(store: Store) -> None:
    raw = RawWriter(store.engine.dialect)
    row = {"key": "dup", "value": "secret-value"}
    with store.engine.connect() as conn:
        raw.insert(conn, META, ("key", "value"), [row])
        with pytest.raises(IntegrityError) as duplicate:
            raw.insert(conn, META, ("key", "value"), [row, {"key": "x", "value": "y"}])
        conn.rollback()
    assert isinstance(duplicate.value.orig, store.engine.dialect.loaded_dbapi.Error)
    assert not is_store_outage(duplicate.value), "a constraint is no outage"
    assert "secret-value" not in str(duplicate.value)
    assert "INSERT INTO" not in describe(duplicate.value)

    with store.engine.connect() as conn:
        kill(store, conn)
        with pytest.raises(Exception) as lost:
            raw.insert(conn, META, ("key", "value"), [{"key": "k", "value": "v"}])
        assert conn.invalidated, "a disconnect invalidates the connection"
    assert is_store_outage(lost.value)
    assert lost.value.connection_invalidated  # type: ignore[attr-defined]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_failing_statement_is_an_outage_and_the_writer_recovers(store: Store) -> None:
    down = [False]

    def attach(dbapi_connection: Any, *_: Any) -> None:
        # Non-zero from the handler: SQLite interrupts the statement (OperationalError).
        dbapi_connection.set_progress_handler(lambda: int(down[0]), 1)

    event.listen(store.engine, "checkout", attach)
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:
        run(manager.raise_alarm("sync-failed", "a"))
        down[0] = True
        with pytest.raises(Exception, match="retry later"):
            run(manager.raise_alarm("sync-failed", "b"))
        down[0] = False
        assert run(manager.raise_alarm("sync-failed", "b")).change == "raised"
    finally:
        manager.stop()
        event.remove(store.engine, "checkout", attach)
    assert log_seqs(store) == [1, 2]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_writer_never_writes_a_table_the_snmp_view_watches(store: Store) -> None:
    """TableWatch sees statements through SQLAlchemy's events; the writer's go to the
    driver, so none of them may write a watched table (or the view would miss it)."""
    watch = watch_elements(store.engine)
    watched = set(watch._columns)
    watch.close()
    written: set[str] = set()
    dml = re.compile(r"\s*(?:insert\s+into|update|delete\s+from)\s+\"?(\w+)", re.IGNORECASE)

    def trace(statement: str) -> None:
        found = dml.match(statement)
        if found:
            written.add(found.group(1).lower())

    def attach(dbapi_connection: sqlite3.Connection, *_: Any) -> None:
        dbapi_connection.set_trace_callback(trace)

    event.listen(store.engine, "checkout", attach)
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    try:

        async def everything() -> None:
            raised = await manager.raise_alarm("sync-failed", "cm1")
            await manager.raise_alarm("sync-failed", "cm1", severity="critical")
            await manager.acknowledge(raised.alarm["id"], by="op")
            await manager.clear(raised.alarm["id"])
            await manager.emit_event("heartbeat", "host1")
            await manager._call(CursorOp("target", 1))

        run(everything())
    finally:
        manager.stop()
        event.remove(store.engine, "checkout", attach)
    assert {"alarms", "alarm_history", "events", "notification_log", "meta"} <= written
    assert "exporter_cursors" in written
    assert written.isdisjoint(watched), written & watched
    assert watched == {"elements", "distributions"}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_connection_lost_at_commit_is_not_written_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT whose answer was lost may have committed: the group commit must not be
    written a second time (an event would be logged twice), only reported."""
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    dialect = store.engine.dialect
    real_commit = dialect.do_commit
    lose: list[bool] = []

    def commit_then_disconnect(dbapi_connection: Any) -> None:
        real_commit(dbapi_connection)
        if lose.pop() if lose else False:
            dbapi_connection.close()
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    try:
        run(manager.emit_event("test", "warm-up"))  # the connection is kept from here
        lose.append(True)
        monkeypatch.setattr(dialect, "do_commit", commit_then_disconnect)
        with pytest.raises(Exception, match=r"retry later|refused"):
            run(manager.emit_event("test", "once"))
        assert run(manager.emit_event("test", "after")) == 3
    finally:
        manager.stop()
    with store.engine.connect() as conn:
        resources = list(conn.execute(text("SELECT resource FROM events ORDER BY seq")).scalars())
    assert resources == ["warm-up", "once", "after"]
