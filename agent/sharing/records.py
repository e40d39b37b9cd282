"""Shared data, bases, conflicts and distributions in the store (blocking calls).

The service runs these in threads. Objects are JSON text on disk and dicts here; an
absent object is None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from agent.alarms.records import iso
from agent.clock import now
from agent.errors import InvalidRequest
from agent.store.models import BASE, CONFLICTS, DEVICES, DISTRIBUTIONS, META, SHARED
from agent.store.upsert import upsert

Key = tuple[str, str]
Data = dict[str, Any]
OPEN_STATES = ("pending", "inflight", "error")


def dumps(data: Data | None) -> str | None:
    return None if data is None else json.dumps(data, sort_keys=True)


def loads(text: str | None) -> Data | None:
    return None if text is None else dict(json.loads(text))


def pairing_fields(cls: str, key: str, data: Data) -> dict[str, str | None]:
    """Users are paired by directory number first, then login id, then e-mail."""
    if cls != "user":
        return {"number": None, "login": None, "email": None}
    return {
        "number": _text(data.get("number")),
        "login": _text(data.get("login")) or key,
        "email": (_text(data.get("email")) or "").lower() or None,
    }


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# --------------------------------------------------------------------------- meta
def get_meta(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        value = conn.execute(select(META.c.value).where(META.c.key == key)).scalar()
    return None if value is None else str(value)


def set_meta(engine: Engine, key: str, value: str) -> None:
    with engine.begin() as conn:
        upsert(conn, META, [{"key": key, "value": value}], ["key"])


# --------------------------------------------------------------------------- shared data
def load_shared(engine: Engine, classes: Sequence[str]) -> dict[Key, Data]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(SHARED.c.cls, SHARED.c.key, SHARED.c.data).where(SHARED.c.cls.in_(classes))
        )
        return {(cls, key): json.loads(data) for cls, key, data in rows}


def load_base(engine: Engine, element_id: int) -> dict[Key, Data]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(BASE.c.cls, BASE.c.key, BASE.c.data).where(BASE.c.element_id == element_id)
        )
        return {(cls, key): json.loads(data) for cls, key, data in rows}


def get_shared(engine: Engine, cls: str, key: str) -> Data | None:
    with engine.connect() as conn:
        text = conn.execute(
            select(SHARED.c.data).where(and_(SHARED.c.cls == cls, SHARED.c.key == key))
        ).scalar()
    return loads(text)


def list_shared(
    engine: Engine, cls: str, *, after: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    query = select(SHARED).where(SHARED.c.cls == cls).order_by(SHARED.c.key).limit(limit)
    if after is not None:
        query = query.where(SHARED.c.key > after)
    with engine.connect() as conn:
        return [
            {
                "class": r.cls,
                "key": r.key,
                "data": json.loads(r.data),
                "origin": r.origin,
                "changed": iso(r.changed_at),
            }
            for r in conn.execute(query)
        ]


@dataclass(frozen=True)
class Change:
    """A change of the shared data: ``data`` None deletes."""

    cls: str
    key: str
    op: str
    data: Data | None


def check_unique(conn: Connection, change: Change) -> None:
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
                and_(SHARED.c.cls == "user", SHARED.c.key != change.key, SHARED.c[name] == value)
            )
            .limit(1)
        ).scalar()
        if other is not None:
            what = "directory number" if name == "number" else "e-mail address"
            raise InvalidRequest(f"{what} {value} already belongs to user {other}")


def write_shared(conn: Connection, changes: Iterable[Change], origin: str, at: datetime) -> None:
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


def set_base(
    conn: Connection, element_id: int, items: Iterable[tuple[str, str, Data | None]]
) -> None:
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


def drop_base(conn: Connection, element_id: int) -> None:
    conn.execute(delete(BASE).where(BASE.c.element_id == element_id))


def add_distributions(
    conn: Connection,
    targets: Sequence[tuple[int, str]],
    changes: Sequence[Change],
    origin: str,
    at: datetime,
) -> int:
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


# --------------------------------------------------------------------------- distributions
def waiting(conn: Connection, element_id: int, cls: str, key: str) -> Any:
    """A hub update of this object still on its way to the element (or failed), if any."""
    return conn.execute(
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


def current(conn: Connection, cls: str, key: str) -> Data | None:
    """The hub's shared value of an object, inside a transaction."""
    text = conn.execute(
        select(SHARED.c.data).where(and_(SHARED.c.cls == cls, SHARED.c.key == key))
    ).scalar()
    return loads(text)


def distribution_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "element": row.element,
        "class": row.cls,
        "key": row.key,
        "op": row.op,
        "data": loads(row.data),
        "origin": row.origin,
        "state": row.state,
        "attempts": row.attempts,
        "rejected": row.rejected,
        "error": row.error,
        "created": iso(row.created_at),
        "updated": iso(row.updated_at),
    }


def open_counts(engine: Engine) -> dict[int, dict[str, int]]:
    """Per element: distributions per open state, and "failed": the rejected ones not
    applied since (failed, or retried and waiting), which distribution-errors counts."""
    found: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                DISTRIBUTIONS.c.element_id,
                DISTRIBUTIONS.c.state,
                DISTRIBUTIONS.c.rejected,
                func.count(),
            )
            .where(DISTRIBUTIONS.c.state.in_(OPEN_STATES))
            .group_by(DISTRIBUTIONS.c.element_id, DISTRIBUTIONS.c.state, DISTRIBUTIONS.c.rejected)
        )
        for element_id, state, rejected, count in rows:
            counts = found.setdefault(element_id, {"failed": 0})
            counts[state] = counts.get(state, 0) + count
            if rejected:
                counts["failed"] += count
    return found


def take_batch(engine: Engine, element_id: int, limit: int) -> list[Any]:
    """The element's oldest pending distributions, in order, marked in flight.

    Only the due ones before the first that is not: a later update never overtakes an
    earlier one waiting for its retry (the element would end with the older data).
    """
    due = now()
    with engine.begin() as conn:
        rows = list(
            conn.execute(
                select(DISTRIBUTIONS)
                .where(
                    and_(
                        DISTRIBUTIONS.c.element_id == element_id, DISTRIBUTIONS.c.state == "pending"
                    )
                )
                .order_by(DISTRIBUTIONS.c.id)
                .limit(limit)
            )
        )
        waiting = next((i for i, r in enumerate(rows) if r.next_attempt_at > due), len(rows))
        rows = rows[:waiting]
        if rows:
            conn.execute(
                update(DISTRIBUTIONS)
                .where(DISTRIBUTIONS.c.id.in_([r.id for r in rows]))
                .values(state="inflight")
            )
    return rows


def next_due(engine: Engine, element_id: int) -> datetime | None:
    """When the element's oldest pending distribution may go (the others wait for it)."""
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            select(DISTRIBUTIONS.c.next_attempt_at)
            .where(
                and_(DISTRIBUTIONS.c.element_id == element_id, DISTRIBUTIONS.c.state == "pending")
            )
            .order_by(DISTRIBUTIONS.c.id)
            .limit(1)
        ).scalar()
    return value


@dataclass
class Outcome:
    """What one batch came to: applied rows, rejected (id, reason), not tried (transport)."""

    done: list[Any]
    rejected: list[tuple[Any, str]]
    untried: list[Any]
    transport_error: str = ""


def settle(engine: Engine, element_id: int, outcome: Outcome, retry_in: float) -> int:
    """Record a batch's outcome, the base of what was applied; returns superseded errors."""
    at = now()
    superseded = 0
    with engine.begin() as conn:
        # Rejections first: one rejected in this very batch before a newer update of the same
        # object was applied is superseded below like any older failure.
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
            set_base(conn, element_id, [(r.cls, r.key, loads(r.data)) for r in outcome.done])
            # An older failed update of an object a newer one just set is obsolete: retrying
            # it would put old data back.
            newest: dict[Key, int] = {}
            for r in outcome.done:
                newest[(r.cls, r.key)] = max(newest.get((r.cls, r.key), 0), r.id)
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
        if outcome.untried:
            first = outcome.untried[0]
            conn.execute(
                update(DISTRIBUTIONS)
                .where(DISTRIBUTIONS.c.id.in_([r.id for r in outcome.untried]))
                .values(
                    state="pending", next_attempt_at=at + timedelta(seconds=retry_in), updated_at=at
                )
            )
            conn.execute(
                update(DISTRIBUTIONS)
                .where(DISTRIBUTIONS.c.id == first.id)
                .values(attempts=first.attempts + 1, error=outcome.transport_error)
            )
    return superseded


def requeue_inflight(engine: Engine) -> int:
    """Distributions left in flight by a stop or crash go out again (updates are idempotent)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(DISTRIBUTIONS).where(DISTRIBUTIONS.c.state == "inflight").values(state="pending")
        )
    return int(result.rowcount or 0)


def _selection(ids: Sequence[int] | None, element_id: int | None, states: Sequence[str]) -> Any:
    clauses: list[Any] = [DISTRIBUTIONS.c.state.in_(states)]
    if ids is not None:
        clauses.append(DISTRIBUTIONS.c.id.in_(ids))
    if element_id is not None:
        clauses.append(DISTRIBUTIONS.c.element_id == element_id)
    return and_(*clauses)


def list_distributions(
    engine: Engine,
    *,
    element_id: int | None = None,
    states: Sequence[str] = OPEN_STATES,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    query = (
        select(DISTRIBUTIONS)
        .where(_selection(None, element_id, states))
        .order_by(DISTRIBUTIONS.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [distribution_json(r) for r in conn.execute(query)]


def get_distribution(engine: Engine, distribution_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(DISTRIBUTIONS).where(DISTRIBUTIONS.c.id == distribution_id)
        ).first()


def retry(engine: Engine, ids: Sequence[int] | None, element_id: int | None) -> dict[str, int]:
    """Failed distributions go out again now; returns how many per element name."""
    at = now()
    with engine.begin() as conn:
        where = _selection(ids, element_id, ("error",))
        found = _per_element(conn, where)
        conn.execute(
            update(DISTRIBUTIONS)
            .where(where)
            .values(state="pending", next_attempt_at=at, updated_at=at)
        )
    return found


def remove(engine: Engine, ids: Sequence[int] | None, element_id: int | None) -> dict[str, int]:
    """Delete failed distributions: the element keeps what it has."""
    with engine.begin() as conn:
        where = _selection(ids, element_id, ("error",))
        found = _per_element(conn, where)
        conn.execute(delete(DISTRIBUTIONS).where(where))
    return found


def _per_element(conn: Connection, where: Any) -> dict[str, int]:
    rows = conn.execute(
        select(DISTRIBUTIONS.c.element, func.count()).where(where).group_by(DISTRIBUTIONS.c.element)
    )
    return {name: count for name, count in rows}  # noqa: C416 - rows have .keys()


def failed_count(engine: Engine, element_id: int) -> int:
    """Updates the element rejected and that were neither applied since nor deleted."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    and_(
                        DISTRIBUTIONS.c.element_id == element_id,
                        DISTRIBUTIONS.c.rejected.is_(True),
                        DISTRIBUTIONS.c.state != "done",
                    )
                )
            ).scalar()
            or 0
        )


def last_error(engine: Engine, element_id: int) -> Any:
    """The newest rejected update of the element not applied since (failed or retried)."""
    with engine.connect() as conn:
        return conn.execute(
            select(DISTRIBUTIONS)
            .where(
                and_(
                    DISTRIBUTIONS.c.element_id == element_id,
                    DISTRIBUTIONS.c.rejected.is_(True),
                    DISTRIBUTIONS.c.state != "done",
                )
            )
            .order_by(DISTRIBUTIONS.c.id.desc())
            .limit(1)
        ).first()


def open_for(engine: Engine, element_id: int, keys: Iterable[Key]) -> set[Key]:
    """Which of these objects have a hub update on its way to the element (or failed)."""
    wanted = list(keys)
    if not wanted:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            select(DISTRIBUTIONS.c.cls, DISTRIBUTIONS.c.key).where(
                and_(
                    DISTRIBUTIONS.c.element_id == element_id,
                    DISTRIBUTIONS.c.state.in_(OPEN_STATES),
                    or_(
                        *[
                            and_(DISTRIBUTIONS.c.cls == c, DISTRIBUTIONS.c.key == k)
                            for c, k in wanted
                        ]
                    ),
                )
            )
        )
        return {(c, k) for c, k in rows}


def purge_done(engine: Engine, older_than: float) -> int:
    """Applied distributions and resolved conflicts older than ``older_than`` seconds."""
    before = now() - timedelta(seconds=older_than)
    with engine.begin() as conn:
        result = conn.execute(
            delete(DISTRIBUTIONS).where(
                and_(DISTRIBUTIONS.c.state == "done", DISTRIBUTIONS.c.updated_at < before)
            )
        )
        conn.execute(
            delete(CONFLICTS).where(
                and_(CONFLICTS.c.state == "resolved", CONFLICTS.c.resolved_at < before)
            )
        )
    return int(result.rowcount or 0)


def drop_element(conn: Connection, element_id: int) -> None:
    for table in (BASE, DISTRIBUTIONS, DEVICES):
        conn.execute(delete(table).where(table.c.element_id == element_id))
    conn.execute(
        update(CONFLICTS)
        .where(and_(CONFLICTS.c.element_id == element_id, CONFLICTS.c.state == "open"))
        .values(state="resolved", resolution="removed", resolved_at=now())
    )


# --------------------------------------------------------------------------- conflicts
def conflict_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "element": row.element,
        "class": row.cls,
        "key": row.key,
        "hub_key": row.hub_key,
        "category": row.category,
        "hub": loads(row.hub_data),
        "element_value": loads(row.element_data),
        "base": loads(row.base_data),
        "reason": row.reason,
        "state": row.state,
        "resolution": row.resolution,
        "resolved_by": row.resolved_by,
        "created": iso(row.created_at),
        "resolved": iso(row.resolved_at),
    }


def list_conflicts(engine: Engine, *, open_only: bool = True, limit: int = 10_000) -> list[Any]:
    query = select(CONFLICTS).order_by(CONFLICTS.c.id).limit(limit)
    if open_only:
        query = query.where(CONFLICTS.c.state == "open")
    with engine.connect() as conn:
        return list(conn.execute(query))


def conflict_counts(engine: Engine) -> dict[str, int]:
    """Open conflicts per category, plus automatic ones of the last syncs."""
    with engine.connect() as conn:
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


def unresolved_elements(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(CONFLICTS.c.element)
            .distinct()
            .where(and_(CONFLICTS.c.state == "open", CONFLICTS.c.category == "unresolved"))
        )
        return {name for (name,) in rows}


def get_conflict(engine: Engine, conflict_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(CONFLICTS).where(CONFLICTS.c.id == conflict_id)).first()


def add_conflicts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(CONFLICTS), rows)


def close_conflict(conn: Connection, conflict_id: int, resolution: str, by: str | None) -> None:
    conn.execute(
        update(CONFLICTS)
        .where(CONFLICTS.c.id == conflict_id)
        .values(state="resolved", resolution=resolution, resolved_by=by, resolved_at=now())
    )


def withdraw_open_for(conn: Connection, element_id: int) -> None:
    """A new sync from the element replaces what the previous one left open."""
    conn.execute(
        update(CONFLICTS)
        .where(and_(CONFLICTS.c.element_id == element_id, CONFLICTS.c.state == "open"))
        .values(state="resolved", resolution="superseded", resolved_at=now())
    )


def cancel_open(conn: Connection, element_id: int, cls: str, key: str) -> None:
    """Drop hub updates of an object still waiting for the element (a decision replaced them)."""
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


# --------------------------------------------------------------------------- device data
def store_devices(
    engine: Engine,
    element_id: int,
    devices: Iterable[tuple[str, Data | None]],
    *,
    replace: bool = False,
) -> int:
    at = now()
    count = 0
    with engine.begin() as conn:
        if replace:
            conn.execute(delete(DEVICES).where(DEVICES.c.element_id == element_id))
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


def drop_devices(conn: Connection) -> None:
    conn.execute(delete(DEVICES))


def device_details(engine: Engine) -> dict[str, tuple[int, Data]]:
    with engine.connect() as conn:
        rows = conn.execute(select(DEVICES.c.number, DEVICES.c.element_id, DEVICES.c.data))
        return {number: (element_id, json.loads(data)) for number, element_id, data in rows}
