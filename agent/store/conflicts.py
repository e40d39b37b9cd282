"""Conflicts in the store: what a sync to the hub found, for reconcile.

A conflict is open until an operator resolves it (or a new sync from the element, or its
removal, withdraws it); an automatic merge is recorded resolved. Blocking calls; methods
that take a ``Connection`` work inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.engine import Row

from agent.clock import now
from agent.store.models import CONFLICTS
from agent.store.rows import Data, dumps, loads

IN_CHUNK = 1000
"""The most ids one ``IN (...)`` binds (SQLite bounds a statement's variables)."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """One ``conflicts`` row; the three values decoded (None: absent on that side)."""

    id: int
    element_id: int
    element: str
    cls: str
    key: str
    hub_key: str
    category: str
    """automatic, review or unresolved."""
    hub_data: Data | None
    element_data: Data | None
    base_data: Data | None
    reason: str
    state: str
    resolution: str | None
    resolved_by: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Found:
    """What a sync found about one object (agent/sharing/merge.py): a conflict to record.

    ``merged``: the value applied both ways by an automatic merge (the conflict is then
    recorded resolved), else None.
    """

    cls: str
    key: str
    hub_key: str
    category: str
    """automatic, review or unresolved."""
    hub: Data | None
    element: Data | None
    base: Data | None
    reason: str
    merged: Data | None = None


def _conflict(row: Row[tuple[object, ...]]) -> Conflict:
    values = dict(row._mapping)
    for name in ("hub_data", "element_data", "base_data"):
        values[name] = loads(values[name])
    return Conflict(**values)


class Conflicts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def listed(self, *, open_only: bool = True, limit: int = 10_000) -> list[Conflict]:
        query = select(CONFLICTS).order_by(CONFLICTS.c.id).limit(limit)
        if open_only:
            query = query.where(CONFLICTS.c.state == "open")
        with self.engine.connect() as conn:
            return [_conflict(r) for r in conn.execute(query)]

    def get(self, conflict_id: int) -> Conflict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(CONFLICTS).where(CONFLICTS.c.id == conflict_id)).first()
        return None if row is None else _conflict(row)

    def open_of(self, ids: Sequence[int]) -> list[Conflict]:
        """The conflicts of ``ids`` still open, by id: one query per ``IN_CHUNK`` ids (the
        variables a statement may bind on SQLite are bounded)."""
        wanted = sorted(set(ids))
        found: list[Conflict] = []
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                rows = conn.execute(
                    select(CONFLICTS)
                    .where(and_(CONFLICTS.c.id.in_(chunk), CONFLICTS.c.state == "open"))
                    .order_by(CONFLICTS.c.id)
                )
                found.extend(_conflict(r) for r in rows)
        return found

    def current(self, conn: Connection, conflict_id: int) -> Conflict | None:
        """The conflict as ``conn``'s transaction sees it; on PostgreSQL its row is locked
        for the rest of the transaction (a close by another one waits for it)."""
        query = select(CONFLICTS).where(CONFLICTS.c.id == conflict_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else _conflict(row)

    def counts(self) -> dict[str, int]:
        """Open conflicts per category, plus automatic ones of the last syncs."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CONFLICTS.c.category, CONFLICTS.c.state, func.count()).group_by(
                    CONFLICTS.c.category, CONFLICTS.c.state
                )
            )
            counts = {"automatic": 0, "review": 0, "unresolved": 0, "resolved": 0}
            for category, state, count in rows:
                if state == "open":
                    counts[category] += count
                elif category == "automatic":
                    counts["automatic"] += count
                else:
                    counts["resolved"] += count
        return counts

    def unresolved_elements(self) -> set[str]:
        """Names of the elements with unresolved conflicts open."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CONFLICTS.c.element)
                .distinct()
                .where(and_(CONFLICTS.c.state == "open", CONFLICTS.c.category == "unresolved"))
            )
            return {str(name) for (name,) in rows}

    def add(
        self,
        conn: Connection,
        element_id: int,
        element: str,
        found: Sequence[Found],
        at: datetime,
    ) -> None:
        rows = [
            {
                "element_id": element_id,
                "element": element,
                "cls": f.cls,
                "key": f.key,
                "hub_key": f.hub_key,
                "category": f.category,
                "hub_data": dumps(f.hub),
                "element_data": dumps(f.element),
                "base_data": dumps(f.base),
                "reason": f.reason,
                "state": "resolved" if f.merged is not None else "open",
                "resolution": "merged" if f.merged is not None else None,
                "created_at": at,
                "resolved_at": at if f.merged is not None else None,
            }
            for f in found
        ]
        if rows:
            conn.execute(insert(CONFLICTS), rows)

    def close(self, conn: Connection, conflict_id: int, resolution: str, by: str | None) -> bool:
        """Resolve the conflict if it is still open; False: it was not (withdrawn or
        resolved meanwhile), nothing changed."""
        result = conn.execute(
            update(CONFLICTS)
            .where(and_(CONFLICTS.c.id == conflict_id, CONFLICTS.c.state == "open"))
            .values(state="resolved", resolution=resolution, resolved_by=by, resolved_at=now())
        )
        return result.rowcount == 1

    def close_open_for(self, conn: Connection, element_id: int, resolution: str) -> None:
        """The element's open conflicts are resolved as ``resolution``: "superseded" when a
        new sync from it replaces them, "removed" with the element."""
        conn.execute(
            update(CONFLICTS)
            .where(and_(CONFLICTS.c.element_id == element_id, CONFLICTS.c.state == "open"))
            .values(state="resolved", resolution=resolution, resolved_at=now())
        )
