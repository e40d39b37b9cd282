"""Bulk writes through the driver, for the alarm manager's group commits.

Measured need: in a group commit of 512 transitions, SQLAlchemy's per-row parameter
processing (bind processors, expanding IN parameters) cost more than the database work
(see bench/alarms.py). These helpers build plain INSERT / UPDATE text once per table and
hand tuples straight to the driver's ``executemany``. Values must already be in the form
the driver stores: timestamps are converted here exactly as SQLAlchemy's own types store
them, so reads through the ORM types see the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table


class RawWriter:
    def __init__(self, dialect: Dialect) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        self._last: tuple[datetime | None, Any] = (None, None)

    def stamp(self, value: datetime | None) -> Any:
        """An aware datetime as the UTCDateTime column stores it (naive UTC)."""
        if value is None:
            return None
        # A group commit repeats the same few datetime objects many times.
        if value is self._last[0]:
            return self._last[1]
        naive = value.astimezone(UTC).replace(tzinfo=None)
        if self.sqlite:
            # The storage format of sqlalchemy.dialects.sqlite.DATETIME.
            stored: Any = naive.strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            stored = naive
        self._last = (value, stored)
        return stored

    @cache  # noqa: B019 - one writer per engine, a handful of statements
    def _insert_sql(self, table: str, columns: tuple[str, ...]) -> str:
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join([self.placeholder] * len(columns))
        # Names come from our own table definitions, never from input.
        return f'INSERT INTO "{table}" ({names}) VALUES ({marks})'  # noqa: S608

    @cache  # noqa: B019
    def _upsert_sql(self, table: str, columns: tuple[str, ...], key: str) -> str:
        # ON CONFLICT ... DO UPDATE: SQLite 3.24+ and PostgreSQL 9.5+ spell it alike.
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != key)
        return f'{self._insert_sql(table, columns)} ON CONFLICT ("{key}") DO UPDATE SET {sets}'

    @cache  # noqa: B019
    def _update_sql(self, table: str, columns: tuple[str, ...], key: str) -> str:
        sets = ", ".join(f'"{c}" = {self.placeholder}' for c in columns)
        return f'UPDATE "{table}" SET {sets} WHERE "{key}" = {self.placeholder}'  # noqa: S608

    def insert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[dict[str, Any]],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        params = [self._values(row, columns, stamps) for row in rows]
        if params:
            conn.exec_driver_sql(self._insert_sql(table.name, tuple(columns)), params)

    def upsert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        key: str,
        rows: Iterable[dict[str, Any]],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        """Insert each row, or update the row with the same ``key``."""
        params = [self._values(row, columns, stamps) for row in rows]
        if params:
            conn.exec_driver_sql(self._upsert_sql(table.name, tuple(columns), key), params)

    def update(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        key: str,
        rows: Iterable[dict[str, Any]],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        params = [(*self._values(row, columns, stamps), row[key]) for row in rows]
        if params:
            conn.exec_driver_sql(self._update_sql(table.name, tuple(columns), key), params)

    def _values(
        self, row: dict[str, Any], columns: Sequence[str], stamps: frozenset[str]
    ) -> tuple[Any, ...]:
        return tuple(self.stamp(row[c]) if c in stamps else row[c] for c in columns)
