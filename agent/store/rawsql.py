"""Bulk writes through the driver, for the alarm manager's group commits.

Measured need: in a group commit of 512 transitions, SQLAlchemy's per-row parameter
processing (bind processors, expanding IN parameters) cost more than the database work
(see bench/alarms.py), and for a single raise its per-statement path (execution context,
result set-up, the engine's cursor events) cost more than SQLite did. These helpers build
plain INSERT / UPDATE text once per table and hand tuples straight to the DBAPI cursor of
the transaction's connection (``execute`` for one row, ``executemany`` for more). Values
must already be in the form the driver stores: timestamps are converted here exactly as
SQLAlchemy's own types store them, so reads through the ORM types see the same values.

Only statements skip SQLAlchemy: the transaction (begin, the engine's ``commit`` event
that checks store ownership, commit, rollback) is still the caller's ``Connection``.
Two consequences, both deliberate:

- The engine's ``before_cursor_execute`` / ``after_cursor_execute`` events do not fire
  for these statements. The one listener of the agent, :class:`TableWatch`, watches
  tables this writer never writes (elements, distributions).
- Driver errors mean what they mean through SQLAlchemy: they are raised as the
  ``sqlalchemy.exc.DBAPIError`` subclass SQLAlchemy would raise (``OperationalError``
  for a lost connection or a locked database, ``IntegrityError`` for a constraint), with
  the driver's exception as ``orig`` and no parameters in the message; a disconnect
  invalidates the connection, as SQLAlchemy does, and says so
  (``connection_invalidated``). So ``agent.store.outage.is_store_outage`` and the
  manager's error paths see exactly what they saw before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.engine.interfaces import DBAPIModule
from sqlalchemy.exc import DBAPIError

from agent.store.upsert import insert_sql, placeholder, upsert_sql

Row = dict[str, Any]
Stored = str | datetime
"""A timestamp as the driver takes it: SQLite's text form, or a naive UTC datetime."""
_Plan = tuple[Callable[[Row], Any], tuple[int, ...], bool]
"""How to turn a row into parameters: a getter of the columns' values, the positions of
the timestamps among them, and whether the getter returns one value (one column)."""


class RawWriter:
    """Statements built once, run on the driver's cursor. One writer thread per instance
    (it keeps one cursor of the connection it last wrote through)."""

    def __init__(self, dialect: Dialect) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.placeholder = placeholder(dialect)
        self._dialect = dialect
        self._dbapi_error: type[DBAPIModule.Error] = dialect.loaded_dbapi.Error
        # Timestamps converted in this group commit, by identity: a raise puts the same
        # datetime object in its alarm, history and log rows, which are written by three
        # statements, so a single "last value" memo converted each one three times. The
        # entry keeps the object alive, so its id cannot be reused while it is here.
        self._stamps: dict[int, tuple[datetime, Stored]] = {}
        self._cursor: Any = None
        self._cursor_of: Any = None
        """The DBAPI connection ``_cursor`` belongs to (a new connection: a new cursor)."""

    def stamp(self, value: datetime | None) -> Stored | None:
        """An aware datetime as the UTCDateTime column stores it (naive UTC)."""
        if value is None:
            return None
        known = self._stamps.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLite: the storage format of sqlalchemy.dialects.sqlite.DATETIME
        # ("%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.
        # %(microsecond)06d"); isoformat spells it alike, five times faster than strftime.
        stored: Stored = naive.isoformat(" ", "microseconds") if self.sqlite else naive
        if len(self._stamps) >= 4096:
            self._stamps.clear()  # a group commit has one per request: bounded
        self._stamps[id(value)] = (value, stored)
        return stored

    @cache  # noqa: B019 - one writer per engine, a handful of statements
    def _update_sql(self, table: str, columns: tuple[str, ...], key: str) -> str:
        sets = ", ".join(f'"{c}" = {self.placeholder}' for c in columns)
        return f'UPDATE "{table}" SET {sets} WHERE "{key}" = {self.placeholder}'  # noqa: S608

    @cache  # noqa: B019
    def _plan(self, columns: tuple[str, ...], stamps: frozenset[str]) -> _Plan:
        positions = tuple(i for i, c in enumerate(columns) if c in stamps)
        return itemgetter(*columns), positions, len(columns) == 1

    def insert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Row],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        columns = tuple(columns)
        params = self._params(rows, columns, stamps)
        if params:
            self._execute(conn, insert_sql(table.name, columns, self.placeholder), params)

    def upsert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        key: str,
        rows: Iterable[Row],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        """Insert each row, or update the row with the same ``key``."""
        columns = tuple(columns)
        params = self._params(rows, columns, stamps)
        if params:
            sql = upsert_sql(table.name, columns, (key,), self.placeholder)
            self._execute(conn, sql, params)

    def update(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        key: str,
        rows: Iterable[Row],
        stamps: frozenset[str] = frozenset(),
    ) -> None:
        # The key last: the WHERE clause's placeholder follows the SET clause's.
        columns = tuple(columns)
        params = self._params(rows, (*columns, key), stamps)
        if params:
            self._execute(conn, self._update_sql(table.name, columns, key), params)

    def _params(
        self, rows: Iterable[Row], columns: tuple[str, ...], stamps: frozenset[str]
    ) -> list[Any]:
        get, positions, single = self._plan(columns, stamps)
        if single:
            return [(self.stamp(get(row)) if positions else get(row),) for row in rows]
        if not positions:
            return [get(row) for row in rows]
        stamp = self.stamp
        params = []
        for row in rows:
            values = list(get(row))
            for i in positions:
                values[i] = stamp(values[i])
            params.append(values)
        return params

    def _execute(self, conn: Connection, sql: str, params: list[Any]) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        cursor = self._cursor
        try:
            if self._cursor_of is not dbapi_connection or cursor is None:
                assert dbapi_connection is not None  # an open Connection has one
                cursor = dbapi_connection.cursor()
                self._cursor, self._cursor_of = cursor, dbapi_connection
            if len(params) == 1:
                cursor.execute(sql, params[0])
            else:
                cursor.executemany(sql, params)
        except self._dbapi_error as exc:
            raise self._translate(conn, exc, sql, cursor, len(params) > 1) from exc

    def _translate(
        self, conn: Connection, exc: DBAPIModule.Error, sql: str, cursor: Any, many: bool
    ) -> BaseException:
        """``exc`` as SQLAlchemy's execution would raise it (see the module docstring)."""
        self._cursor = self._cursor_of = None  # never reuse a cursor that failed
        invalidated = self._dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if invalidated and not conn.invalidated:
            conn.invalidate(exc)
        wrapped = DBAPIError.instance(
            sql,
            None,  # never the parameters: alarm texts and notes stay out of the log
            exc,
            self._dbapi_error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=self._dialect,
            ismulti=many,
        )
        assert isinstance(wrapped, BaseException)  # DontWrapMixin: not a driver error
        return wrapped
