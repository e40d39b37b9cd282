"""Device data in the store: the phones of each element, by directory number."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, delete, select

from agent.clock import now
from agent.store.models import DEVICES
from agent.store.rows import Data, dumps
from agent.store.upsert import upsert


class Devices:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store(
        self,
        element_id: int,
        devices: Iterable[tuple[str, Data | None]],
        *,
        replace: bool = False,
    ) -> int:
        """Record ``(number, data)`` (data None: gone), after dropping the element's others
        when ``replace``; returns how many were given."""
        at = now()
        count = 0
        with self.engine.begin() as conn:
            if replace:
                self.drop_for(conn, element_id)
            rows = []
            for number, data in devices:
                count += 1
                if data is None:
                    conn.execute(
                        delete(DEVICES).where(
                            and_(DEVICES.c.element_id == element_id, DEVICES.c.number == number)
                        )
                    )
                else:
                    rows.append(
                        {
                            "element_id": element_id,
                            "number": number,
                            "data": dumps(data),
                            "updated_at": at,
                        }
                    )
            upsert(conn, DEVICES, rows, ["element_id", "number"])
        return count

    def drop_for(self, conn: Connection, element_id: int) -> None:
        conn.execute(delete(DEVICES).where(DEVICES.c.element_id == element_id))

    def drop_all(self, conn: Connection) -> None:
        conn.execute(delete(DEVICES))

    def reported(self) -> dict[str, list[tuple[int, Data, datetime]]]:
        """Per directory number: each element that reported the phone, its details and
        when (several elements may hold a copy of a shared station)."""
        found: dict[str, list[tuple[int, Data, datetime]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(DEVICES.c.number, DEVICES.c.element_id, DEVICES.c.data, DEVICES.c.updated_at)
            )
            for number, element_id, data, at in rows:
                found.setdefault(number, []).append((element_id, json.loads(data), at))
        return found

    def details(self) -> dict[str, tuple[int, Data]]:
        """Per directory number: the element that has the phone, and its details."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(DEVICES.c.number, DEVICES.c.element_id, DEVICES.c.data))
            return {number: (element_id, json.loads(data)) for number, element_id, data in rows}
