"""Distributions in the store: each hub update on its way to one sharing element.

A record goes pending -> inflight -> done | error; a rejected one stays ``rejected`` through
retries until it is applied. Blocking calls (run in threads); methods that take a
``Connection`` work inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.engine import Row

from agent.clock import now
from agent.store.bases import Bases
from agent.store.models import DISTRIBUTIONS, META
from agent.store.objects import applied_key as applied_key
from agent.store.objects import record_delivered
from agent.store.rows import Data, Key, dumps, loads
from agent.store.shared_data import Change
from agent.store.upsert import upsert

OPEN_STATES = ("pending", "inflight", "error")
"""The states of a distribution not yet done (what the cap and the listing count)."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """One ``distributions`` row; ``data`` decoded (None: a delete)."""

    id: int
    element_id: int
    element: str
    cls: str
    key: str
    op: str
    data: Data | None
    origin: str
    state: str
    attempts: int
    rejected: bool
    error: str | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime


def distribution_of(row: Row[tuple[object, ...]]) -> Distribution:
    values = dict(row._mapping)
    values["data"] = loads(values["data"])
    return Distribution(**values)


@dataclass
class Outcome:
    """What one batch came to, filled in as it is sent: applied, rejected (with the
    reason), not tried (a transport failure, ``transport_error``)."""

    done: list[Distribution] = field(default_factory=list)
    rejected: list[tuple[Distribution, str]] = field(default_factory=list)
    untried: list[Distribution] = field(default_factory=list)
    transport_error: str = ""
    applied_seq: int = 0
    """The element's change sequence number after the last update it applied (0: none)."""
    seqs: dict[int, int] = field(default_factory=dict)
    """Per applied record (its id): the element's change sequence number for it."""


class Distributions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._bases = Bases(engine)
        """What was applied becomes the element's base in the same transaction (settle)."""

    def add(
        self,
        conn: Connection,
        targets: Sequence[tuple[int, str]],
        changes: Sequence[Change],
        origin: str,
        at: datetime,
    ) -> int:
        """Each change to each target ``(element id, name)``, pending from ``at``."""
        rows = [
            {
                "element_id": element_id,
                "element": name,
                "cls": c.cls,
                "key": c.key,
                "op": c.op,
                "data": dumps(c.data),
                "origin": origin,
                "state": "pending",
                "attempts": 0,
                "rejected": False,
                "error": None,
                "created_at": at,
                "updated_at": at,
                "next_attempt_at": at,
            }
            for element_id, name in targets
            for c in changes
        ]
        if rows:
            conn.execute(insert(DISTRIBUTIONS), rows)
        return len(rows)

    def waiting(self, conn: Connection, element_id: int, cls: str, key: str) -> Distribution | None:
        """A hub update of this object still on its way to the element (or failed), if any."""
        row = conn.execute(
            select(DISTRIBUTIONS)
            .where(
                and_(
                    DISTRIBUTIONS.c.element_id == element_id,
                    DISTRIBUTIONS.c.cls == cls,
                    DISTRIBUTIONS.c.key == key,
                    DISTRIBUTIONS.c.state.in_(OPEN_STATES),
                )
            )
            .limit(1)
        ).first()
        return None if row is None else distribution_of(row)

    def cancel_open(self, conn: Connection, element_id: int, cls: str, key: str) -> None:
        """Drop hub updates of an object still waiting for the element (a decision
        replaced them)."""
        conn.execute(
            delete(DISTRIBUTIONS).where(
                and_(
                    DISTRIBUTIONS.c.element_id == element_id,
                    DISTRIBUTIONS.c.cls == cls,
                    DISTRIBUTIONS.c.key == key,
                    DISTRIBUTIONS.c.state.in_(("pending", "error")),
                )
            )
        )

    def drop_for(self, conn: Connection, element_id: int) -> None:
        conn.execute(delete(DISTRIBUTIONS).where(DISTRIBUTIONS.c.element_id == element_id))

    def open_counts(self) -> dict[int, dict[str, int]]:
        """Per element: distributions per open state, and "failed": the rejected ones not
        applied since (failed, or retried and waiting), which distribution-errors counts."""
        found: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    DISTRIBUTIONS.c.element_id,
                    DISTRIBUTIONS.c.state,
                    DISTRIBUTIONS.c.rejected,
                    func.count(),
                )
                .where(DISTRIBUTIONS.c.state.in_(OPEN_STATES))
                .group_by(
                    DISTRIBUTIONS.c.element_id, DISTRIBUTIONS.c.state, DISTRIBUTIONS.c.rejected
                )
            )
            for element_id, state, rejected, count in rows:
                counts = found.setdefault(element_id, {"failed": 0})
                counts[state] = counts.get(state, 0) + count
                if rejected:
                    counts["failed"] += count
        return found

    def take_batch(self, element_id: int, limit: int) -> list[Distribution]:
        """The element's oldest pending distributions, in order, marked in flight.

        Only the due ones before the first that is not: a later update never overtakes an
        earlier one waiting for its retry (the element would end with the older data).
        """
        due = now()
        with self.engine.begin() as conn:
            rows = [
                distribution_of(r)
                for r in conn.execute(
                    select(DISTRIBUTIONS)
                    .where(
                        and_(
                            DISTRIBUTIONS.c.element_id == element_id,
                            DISTRIBUTIONS.c.state == "pending",
                        )
                    )
                    .order_by(DISTRIBUTIONS.c.id)
                    .limit(limit)
                )
            ]
            waiting = next((i for i, r in enumerate(rows) if r.next_attempt_at > due), len(rows))
            rows = rows[:waiting]
            if rows:
                conn.execute(
                    update(DISTRIBUTIONS)
                    .where(DISTRIBUTIONS.c.id.in_([r.id for r in rows]))
                    .values(state="inflight")
                )
        return rows

    def next_due(self, element_id: int) -> datetime | None:
        """When the element's oldest pending distribution may go (the others wait for it)."""
        with self.engine.connect() as conn:
            value: datetime | None = conn.execute(
                select(DISTRIBUTIONS.c.next_attempt_at)
                .where(
                    and_(
                        DISTRIBUTIONS.c.element_id == element_id,
                        DISTRIBUTIONS.c.state == "pending",
                    )
                )
                .order_by(DISTRIBUTIONS.c.id)
                .limit(1)
            ).scalar()
        return value

    def settle(self, element_id: int, outcome: Outcome, retry_in: float) -> int:
        """Record a batch's outcome, the base of what was applied; returns superseded errors."""
        at = now()
        superseded = 0
        with self.engine.begin() as conn:
            # Rejections first: one rejected in this very batch before a newer update of the
            # same object was applied is superseded below like any older failure.
            for row, reason in outcome.rejected:
                conn.execute(
                    update(DISTRIBUTIONS)
                    .where(DISTRIBUTIONS.c.id == row.id)
                    .values(
                        state="error",
                        error=reason,
                        attempts=row.attempts + 1,
                        updated_at=at,
                        rejected=True,
                    )
                )
            if outcome.done:
                conn.execute(
                    update(DISTRIBUTIONS)
                    .where(DISTRIBUTIONS.c.id.in_([r.id for r in outcome.done]))
                    .values(state="done", updated_at=at, error=None, rejected=False)
                )
                applied = [(r.cls, r.key, r.data) for r in outcome.done]
                self._bases.set(conn, element_id, applied)
                record_delivered(
                    conn,
                    element_id,
                    [(r.cls, r.key, r.data, outcome.seqs.get(r.id, 0)) for r in outcome.done],
                )
                superseded = _supersede(conn, element_id, outcome.done, at)
                if outcome.applied_seq:
                    record_applied(conn, element_id, outcome.applied_seq)
            if outcome.untried:
                first = outcome.untried[0]
                conn.execute(
                    update(DISTRIBUTIONS)
                    .where(DISTRIBUTIONS.c.id.in_([r.id for r in outcome.untried]))
                    .values(
                        state="pending",
                        next_attempt_at=at + timedelta(seconds=retry_in),
                        updated_at=at,
                    )
                )
                conn.execute(
                    update(DISTRIBUTIONS)
                    .where(DISTRIBUTIONS.c.id == first.id)
                    .values(attempts=first.attempts + 1, error=outcome.transport_error)
                )
        return superseded

    def inflight(self) -> dict[int, set[tuple[str, str, str, str | None]]]:
        """Per element: (class, key, op, data as stored) of every open record.

        Not only those in flight: a record sent whose answer was lost (a transport error
        after the element applied it) is pending again, and a rejected one is an error;
        the element may hold any of them, and a record the store still has is no sign of
        a restore. The data tells this store's update from another one of the object."""
        found: dict[int, set[tuple[str, str, str, str | None]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    DISTRIBUTIONS.c.element_id,
                    DISTRIBUTIONS.c.cls,
                    DISTRIBUTIONS.c.key,
                    DISTRIBUTIONS.c.op,
                    DISTRIBUTIONS.c.data,
                ).where(DISTRIBUTIONS.c.state.in_(OPEN_STATES))
            )
            for element_id, cls, key, op, data in rows:
                record = (str(cls), str(key), str(op), None if data is None else str(data))
                found.setdefault(int(element_id), set()).add(record)
        return found

    def requeue_inflight(self) -> int:
        """Distributions left in flight by a stop or crash go out again (updates are
        idempotent)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(DISTRIBUTIONS)
                .where(DISTRIBUTIONS.c.state == "inflight")
                .values(state="pending")
            )
        return int(result.rowcount or 0)


def record_applied(conn: Connection, element_id: int, seq: int) -> None:
    """The element's change sequence after the hub's last applied update, in the caller's
    transaction."""
    upsert(conn, META, [{"key": applied_key(element_id), "value": str(seq)}], ["key"])


def clear_applied(conn: Connection, element_id: int) -> None:
    """Forget the element's mark, in the caller's transaction: the witness's next check
    takes the element's log as it is then (agent.sharing.witness)."""
    upsert(conn, META, [{"key": applied_key(element_id), "value": ""}], ["key"])


def _supersede(
    conn: Connection, element_id: int, done: Sequence[Distribution], at: datetime
) -> int:
    """An older failed update of an object a newer one just set is obsolete: retrying it
    would put old data back. Returns how many were closed so."""
    newest: dict[Key, int] = {}
    for r in done:
        newest[(r.cls, r.key)] = max(newest.get((r.cls, r.key), 0), r.id)
    superseded = 0
    for (cls, key), newest_id in newest.items():
        note = f"superseded by distribution {newest_id}"
        superseded += int(
            conn.execute(
                update(DISTRIBUTIONS)
                .where(
                    and_(
                        DISTRIBUTIONS.c.element_id == element_id,
                        DISTRIBUTIONS.c.state == "error",
                        DISTRIBUTIONS.c.cls == cls,
                        DISTRIBUTIONS.c.key == key,
                        DISTRIBUTIONS.c.id < newest_id,
                    )
                )
                .values(state="done", updated_at=at, error=note, rejected=False)
            ).rowcount
            or 0
        )
    return superseded
