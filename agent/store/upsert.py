"""Insert-or-update of rows by their key, on SQLite and PostgreSQL alike.

Two forms of the one statement: :func:`upsert` builds SQLAlchemy's construct (for the
occasional write), :func:`upsert_sql` its text for the driver's executemany (for the hot
paths that measured SQLAlchemy's per-row cost: agent/store/rawsql.py, store/objects.py).
``INSERT ... ON CONFLICT (key) DO UPDATE SET c = excluded.c`` is spelled alike by SQLite
3.24+ and PostgreSQL 9.5+, so the text needs no dialect of its own, only its placeholder.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Write ``rows``; a row whose ``keys`` exist updates the other columns it gives."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    columns = [c for c in rows[0] if c not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={c: statement.excluded[c] for c in columns}
    )
    conn.execute(statement, rows)


def placeholder(dialect: Dialect) -> str:
    """The driver's parameter mark: sqlite3's qmark, psycopg's format."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


@cache
def insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    """``INSERT INTO table (columns) VALUES (mark, ...)``, one row of parameters."""
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join([mark] * len(columns))
    # Names come from our own table definitions, never from input.
    return f'INSERT INTO "{table}" ({names}) VALUES ({marks})'  # noqa: S608


@cache
def upsert_sql(table: str, columns: tuple[str, ...], keys: tuple[str, ...], mark: str) -> str:
    """The text of :func:`upsert` for rows of ``columns`` (parameters in that order): the
    columns outside ``keys`` are updated when a row with the same ``keys`` exists."""
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in keys)
    conflict = ", ".join(f'"{k}"' for k in keys)
    return f"{insert_sql(table, columns, mark)} ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
