"""The store on SQLite and on PostgreSQL: migrations, ownership lock, identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from agent.errors import StoreError, StoreLockedError
from agent.store.database import Store, normalize_url, redact_url


def test_migrations_create_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "alarms",
        "alarm_history",
        "events",
        "notification_log",
        "exporter_cursors",
        "meta",
        "elements",
        "jobs",
        "shared_objects",
        "sharing_base",
        "conflicts",
        "distributions",
        "device_data",
        "alembic_version",
    } <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"


def test_second_owner_is_refused(store: Store, store_url: str) -> None:
    second = Store(store_url)
    with pytest.raises(StoreLockedError, match="in use by another provsync agent"):
        second.open()


def test_lock_is_released_on_close_and_identity_kept(store_url: str) -> None:
    first = Store(store_url)
    first.open()
    identity = first.identity
    first.close()
    again = Store(store_url)
    again.open()
    try:
        assert again.identity == identity
    finally:
        again.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.open()
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        store.close()


def test_unreachable_server_is_a_clear_error() -> None:
    store = Store("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreError) as info:
        store.open()
    assert "secret" not in str(info.value)


def test_url_helpers() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert "hunter2" not in redact_url("postgresql+psycopg://u:hunter2@h/db")
