"""Key-value facts about the store itself (``meta``: e.g. the release sharing ran under)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from agent.store.models import META
from agent.store.upsert import upsert


class Meta:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == key)).scalar()
        return None if value is None else str(value)

    def set(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            upsert(conn, META, [{"key": key, "value": value}], ["key"])
