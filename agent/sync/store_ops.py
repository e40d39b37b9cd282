"""Writes of synchronized data: a page of objects or changes together with the cursor."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, update

from agent.connectors.base import ChangeRecord, ObjectRecord
from agent.store.models import ELEMENTS, OBJECTS
from agent.store.upsert import upsert


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    upsert(conn, OBJECTS, rows, ["element_id", "cls", "key"])


def write_objects(
    engine: Engine, element_id: int, cls: str, objects: Iterable[ObjectRecord], generation: int
) -> int:
    rows = [
        {"element_id": element_id, "cls": cls, "key": o.key,
         "data": json.dumps(o.data, sort_keys=True), "generation": generation}
        for o in objects
    ]  # fmt: skip
    with engine.begin() as conn:
        _upsert(conn, rows)
    return len(rows)


def apply_changes(
    engine: Engine,
    element_id: int,
    changes: Iterable[ChangeRecord],
    generation: int,
    *,
    cursor: int,
    skip_user: str | None = None,
) -> tuple[int, int]:
    """Apply changes and move the cursor in one transaction: (applied, skipped)."""
    applied = skipped = 0
    with engine.begin() as conn:
        for change in changes:
            if skip_user is not None and change.user == skip_user:
                skipped += 1  # the agent's own write coming back: the hub has it already
                continue
            if change.op == "delete" or change.data is None:
                conn.execute(delete(OBJECTS).where(and_(
                    OBJECTS.c.element_id == element_id, OBJECTS.c.cls == change.cls,
                    OBJECTS.c.key == change.key)))  # fmt: skip
            else:
                _upsert(conn, [{
                    "element_id": element_id, "cls": change.cls, "key": change.key,
                    "data": json.dumps(change.data, sort_keys=True), "generation": generation,
                }])  # fmt: skip
            applied += 1
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(cursor=cursor))
    return applied, skipped


def finish_init(engine: Engine, element_id: int, generation: int, **element: Any) -> int:
    """Drop what the element no longer has and record the new cursor and epoch, together."""
    with engine.begin() as conn:
        removed = conn.execute(delete(OBJECTS).where(and_(
            OBJECTS.c.element_id == element_id, OBJECTS.c.generation != generation,
        ))).rowcount  # fmt: skip
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(
            generation=generation, **element))  # fmt: skip
    return int(removed or 0)
