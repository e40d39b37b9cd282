"""agent/store/upsert.py: its construct and its text write the same rows, on SQLite and on
PostgreSQL (the three writers that use it: exporter cursors, sync pages, the manager)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from agent.alarms.cursors import load_cursor, save_cursor
from agent.store.database import Store
from agent.store.models import CURSORS, META
from agent.store.upsert import placeholder, upsert, upsert_sql


def meta(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {row.key: row.value for row in conn.execute(select(META.c.key, META.c.value))}


def test_the_text_inserts_then_updates_by_key(store: Store) -> None:
    sql = upsert_sql(META.name, ("key", "value"), ("key",), placeholder(store.engine.dialect))
    before = meta(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(sql, [("r3-a", "1"), ("r3-b", "2")])
    with store.engine.begin() as conn:
        conn.exec_driver_sql(sql, [("r3-a", "3")])
    assert meta(store) == {**before, "r3-a": "3", "r3-b": "2"}


def test_the_construct_and_the_text_agree(store: Store) -> None:
    with store.engine.begin() as conn:
        upsert(conn, META, [{"key": "r3-c", "value": "1"}], ["key"])
        upsert(conn, META, [{"key": "r3-c", "value": "2"}, {"key": "r3-d", "value": "4"}], ["key"])
    sql = upsert_sql(META.name, ("key", "value"), ("key",), placeholder(store.engine.dialect))
    with store.engine.begin() as conn:
        conn.exec_driver_sql(sql, [("r3-d", "5")])
    assert {k: v for k, v in meta(store).items() if k.startswith("r3-")} == {
        "r3-c": "2",
        "r3-d": "5",
    }


def test_an_exporter_cursor_saved_twice_holds_the_last(store: Store) -> None:
    save_cursor(store.engine, "r3", 10)
    save_cursor(store.engine, "r3", 12)
    assert load_cursor(store.engine, "r3") == 12
    with store.engine.connect() as conn:
        (updated,) = conn.execute(select(CURSORS.c.updated_at).where(CURSORS.c.name == "r3"))
    stamp = updated[0] if updated[0].tzinfo else updated[0].replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
