"""The hub's shared data (users, stations, directory numbers...) in the store.

Blocking calls (the sharing service runs them in threads). Methods that take a
``Connection`` work inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, delete, select

from agent.errors import InvalidRequest
from agent.store.models import SHARED
from agent.store.rows import Data, Key, dumps, loads
from agent.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class Change:
    """A change of the shared data: ``data`` None deletes."""

    cls: str
    key: str
    op: str
    data: Data | None


@dataclass(frozen=True, slots=True)
class SharedObject:
    """One shared object as the hub holds it: who changed it last, and when."""

    cls: str
    key: str
    data: Data
    origin: str
    changed_at: datetime


def pairing_fields(cls: str, key: str, data: Data) -> dict[str, str | None]:
    """Users are paired by directory number first, then login id, then e-mail."""
    if cls != "user":
        return {"number": None, "login": None, "email": None}
    return {
        "number": _text(data.get("number")),
        "login": _text(data.get("login")) or key,
        "email": (_text(data.get("email")) or "").lower() or None,
    }


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


class SharedData:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, classes: Sequence[str]) -> dict[Key, Data]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SHARED.c.cls, SHARED.c.key, SHARED.c.data).where(SHARED.c.cls.in_(classes))
            )
            return {(cls, key): json.loads(data) for cls, key, data in rows}

    def get(self, cls: str, key: str) -> Data | None:
        with self.engine.connect() as conn:
            return self.current(conn, cls, key)

    def page(self, cls: str, *, after: str | None = None, limit: int = 1000) -> list[SharedObject]:
        """The objects of a class in key order, from the one after ``after``."""
        query = select(SHARED).where(SHARED.c.cls == cls).order_by(SHARED.c.key).limit(limit)
        if after is not None:
            query = query.where(SHARED.c.key > after)
        with self.engine.connect() as conn:
            return [
                SharedObject(r.cls, r.key, json.loads(r.data), r.origin, r.changed_at)
                for r in conn.execute(query)
            ]

    def current(self, conn: Connection, cls: str, key: str) -> Data | None:
        """The hub's shared value of an object, inside a transaction."""
        text = conn.execute(
            select(SHARED.c.data).where(and_(SHARED.c.cls == cls, SHARED.c.key == key))
        ).scalar()
        return loads(text)

    def check_unique(self, conn: Connection, change: Change) -> None:
        """Users must not share a directory number or an e-mail address with another user."""
        if change.cls != "user" or change.data is None:
            return
        fields = pairing_fields(change.cls, change.key, change.data)
        for name in ("number", "email"):
            value = fields[name]
            if value is None:
                continue
            other = conn.execute(
                select(SHARED.c.key)
                .where(
                    and_(
                        SHARED.c.cls == "user", SHARED.c.key != change.key, SHARED.c[name] == value
                    )
                )
                .limit(1)
            ).scalar()
            if other is not None:
                what = "directory number" if name == "number" else "e-mail address"
                raise InvalidRequest(f"{what} {value} already belongs to user {other}")

    def write(self, conn: Connection, changes: Iterable[Change], origin: str, at: datetime) -> None:
        for change in changes:
            where = and_(SHARED.c.cls == change.cls, SHARED.c.key == change.key)
            if change.data is None:
                conn.execute(delete(SHARED).where(where))
                continue
            row = {
                "cls": change.cls,
                "key": change.key,
                "data": dumps(change.data),
                "origin": origin,
                "changed_at": at,
                **pairing_fields(change.cls, change.key, change.data),
            }
            upsert(conn, SHARED, [row], ["cls", "key"])
