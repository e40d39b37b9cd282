"""Writes of synchronized data (the hub's copy of each element's objects): pages of
objects, or changes together with the cursor."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, delete, select, update

from agent.store.elements import ElementValue
from agent.store.models import ELEMENTS, JOBS, META, OBJECTS
from agent.store.rows import Data
from agent.store.upsert import placeholder, upsert, upsert_sql

_encode = json.JSONEncoder(sort_keys=True).encode
"""The text ``json.dumps(data, sort_keys=True)`` gives, without building an encoder per
call (json.dumps does whenever an option is passed): one per object of an init sync."""

_OBJECT_COLUMNS = ("element_id", "cls", "key", "data", "generation")
_OBJECT_KEY = ("element_id", "cls", "key")


def applied_key(element_id: int) -> str:
    """The ``meta`` key of the element's change sequence after the last hub update applied.

    It travels with the store: an element whose change log holds hub updates after it
    was given them by a store that is not this one, or this one before a restore.
    """
    return f"hub_applied:{element_id}"


class ObjectItem(Protocol):
    """An object as a page of the element gives it (agent.connectors.base.ObjectRecord)."""

    @property
    def key(self) -> str: ...
    @property
    def data(self) -> Data: ...


class ChangeItem(Protocol):
    """A change of the element's log (agent.connectors.base.ChangeRecord)."""

    @property
    def cls(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def data(self) -> Data | None: ...


class SequencedChange(ChangeItem, Protocol):
    """A change with its sequence number in the element's log."""

    @property
    def seq(self) -> int: ...


class Objects:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_pages(
        self,
        element_id: int,
        pages: Sequence[tuple[str, Sequence[ObjectItem]]],
        generation: int,
        *,
        job_id: int | None = None,
        progress: dict[str, int] | None = None,
    ) -> int:
        """Upsert pages of objects (``(class, objects)``) in one transaction; the job's
        ``progress`` counts, when given, commit with them. Returns the objects written.

        Rows go straight to the driver's executemany: for a page of 1,000 objects
        SQLAlchemy's per-row parameter processing cost as much as SQLite's work
        (bench/sync.py; the alarm manager's writes do the same, agent/store/rawsql.py).
        """
        params = [
            (element_id, cls, o.key, _encode(o.data), generation)
            for cls, objects in pages
            for o in objects
        ]
        with self.engine.begin() as conn:
            if params:
                # The text of upsert()'s statement: the driver's executemany takes the tuples.
                sql = upsert_sql(
                    OBJECTS.name, _OBJECT_COLUMNS, _OBJECT_KEY, placeholder(conn.dialect)
                )
                conn.exec_driver_sql(sql, params)
            if job_id is not None and progress is not None:
                conn.execute(
                    update(JOBS).where(JOBS.c.id == job_id).values(counts=json.dumps(progress))
                )
        return len(params)

    def apply_changes(
        self,
        element_id: int,
        changes: Iterable[ChangeItem],
        generation: int,
        *,
        cursor: int | None,
    ) -> int:
        """Apply changes and move the cursor (None: leave it) in one transaction; returns
        how many. What is not the hub's to apply is left out by the caller; the cursor
        still moves past it."""
        applied = 0
        with self.engine.begin() as conn:
            _lock_element(conn, element_id)
            for change in changes:
                data = None if change.op == "delete" else change.data
                _write_object(conn, element_id, change.cls, change.key, data, generation)
                applied += 1
            if cursor is not None:
                conn.execute(
                    update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(cursor=cursor)
                )
        return applied

    def apply_in_order(
        self,
        element_id: int,
        changes: Sequence[SequencedChange],
        generation: int,
        *,
        stops: Callable[[SequencedChange], bool],
    ) -> tuple[int, int]:
        """Apply the changes that follow the element's cursor without a gap (``changes``
        sorted by sequence number), up to the first one that ``stops`` it, moving the
        cursor with them, in one transaction; returns the cursor before and after.

        The cursor is read under the write lock (SQLite) or the row lock (PostgreSQL):
        nothing else moves it meanwhile. Nothing is applied while hub updates delivered
        to the element wait after the cursor (the delivery wrote them into the copy; an
        older change applied now would overwrite one of them): the incremental takes
        them all, in log order.
        """
        with self.engine.begin() as conn:
            # A write first: on SQLite the transaction then holds the database's write lock.
            conn.execute(
                update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(cursor=ELEMENTS.c.cursor)
            )
            before = _lock_element(conn, element_id)
            delivered = conn.execute(
                select(META.c.value).where(META.c.key == applied_key(element_id))
            ).scalar()
            if delivered and int(delivered) > before:
                return before, before
            cursor = before
            for change in changes:
                if change.seq <= cursor:
                    continue
                if change.seq != cursor + 1 or stops(change):
                    break
                data = None if change.op == "delete" else change.data
                _write_object(conn, element_id, change.cls, change.key, data, generation)
                cursor = change.seq
            if cursor != before:
                conn.execute(
                    update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(cursor=cursor)
                )
        return before, cursor

    def finish_init(self, element_id: int, generation: int, **element: ElementValue) -> int:
        """Drop what the element no longer has and record the new cursor and epoch, together."""
        with self.engine.begin() as conn:
            _lock_element(conn, element_id)
            removed = conn.execute(
                delete(OBJECTS).where(
                    and_(
                        OBJECTS.c.element_id == element_id,
                        OBJECTS.c.generation != generation,
                    )
                )
            ).rowcount
            conn.execute(
                update(ELEMENTS)
                .where(ELEMENTS.c.id == element_id)
                .values(generation=generation, **element)
            )
        return int(removed or 0)


def record_delivered(
    conn: Connection, element_id: int, objects: Sequence[tuple[str, str, Data | None, int]]
) -> None:
    """Hub updates the element applied (class, key, data, the element's change sequence
    number for it), written into the hub's copy of it in the caller's transaction (the
    one that records them delivered): the incremental does not pull the hub's own updates
    as changes, so without this the copy would lack them until it next passes them.

    One the element's cursor has reached is left alone: the incremental has applied it,
    in log order, and maybe a later change of the same object after it, which this
    older data must not overwrite. The caller's transaction has written already (the
    distributions' states), so on SQLite it holds the write lock, and the row lock does
    the same on PostgreSQL: no incremental commits between this read and these writes.
    ``data`` None: a delete.
    """
    found = conn.execute(
        select(ELEMENTS.c.generation, ELEMENTS.c.cursor)
        .where(ELEMENTS.c.id == element_id)
        .with_for_update()
    ).first()
    if found is None:  # the element was removed meanwhile
        return
    generation, cursor = int(found[0]), int(found[1])
    for cls, key, data, seq in objects:
        if seq > cursor:
            _write_object(conn, element_id, cls, key, data, generation)


def _lock_element(conn: Connection, element_id: int) -> int:
    """Lock the element's row (PostgreSQL; SQLite has its one write lock) before any object
    row: every transaction that writes the copy takes the locks in this order, so an
    incremental and a delivery recorded at the same time never deadlock. Returns its
    cursor (0 for an element removed meanwhile)."""
    cursor = conn.execute(
        select(ELEMENTS.c.cursor).where(ELEMENTS.c.id == element_id).with_for_update()
    ).scalar()
    return int(cursor or 0)


def _write_object(
    conn: Connection, element_id: int, cls: str, key: str, data: Data | None, generation: int
) -> None:
    """Upsert one object of the hub's copy, or delete it (``data`` None)."""
    if data is None:
        conn.execute(
            delete(OBJECTS).where(
                and_(
                    OBJECTS.c.element_id == element_id,
                    OBJECTS.c.cls == cls,
                    OBJECTS.c.key == key,
                )
            )
        )
        return
    row: dict[str, Any] = {
        "element_id": element_id,
        "cls": cls,
        "key": key,
        "data": _encode(data),
        "generation": generation,
    }
    upsert(conn, OBJECTS, [row], list(_OBJECT_KEY))
