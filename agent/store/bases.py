"""Sharing bases in the store: per element, the value of each object both sides last
agreed on (the B of the three-way compare, agent/sharing/merge.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, and_, delete, select

from agent.store.models import BASE
from agent.store.rows import Data, Key, dumps
from agent.store.upsert import upsert


class Bases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, element_id: int) -> dict[Key, Data]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(BASE.c.cls, BASE.c.key, BASE.c.data).where(BASE.c.element_id == element_id)
            )
            return {(cls, key): json.loads(data) for cls, key, data in rows}

    def set(
        self, conn: Connection, element_id: int, items: Iterable[tuple[str, str, Data | None]]
    ) -> None:
        """New base values (``(class, key, data)``; data None: no base any more)."""
        rows, gone = [], []
        for cls, key, data in items:
            if data is None:
                gone.append((cls, key))
            else:
                rows.append({"element_id": element_id, "cls": cls, "key": key, "data": dumps(data)})
        for cls, key in gone:
            conn.execute(
                delete(BASE).where(
                    and_(BASE.c.element_id == element_id, BASE.c.cls == cls, BASE.c.key == key)
                )
            )
        upsert(conn, BASE, rows, ["element_id", "cls", "key"])

    def drop(self, conn: Connection, element_id: int) -> None:
        conn.execute(delete(BASE).where(BASE.c.element_id == element_id))
