"""Read-only queries over the store for the control API, the CLI and exporters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select

from agent.alarms.records import ALARM_FIELDS, Notification, alarm_to_json, iso
from agent.alarms.severity import Severity
from agent.store.models import ALARMS as _ALARMS
from agent.store.models import EVENTS as _EVENTS
from agent.store.models import HISTORY as _HISTORY
from agent.store.models import LOG as _LOG


def _alarm_filters(
    query: Select[Any],
    state: str,
    severities: list[Severity] | None,
    type_id: str | None,
    resource: str | None,
) -> Select[Any]:
    if state == "active":
        query = query.where(_ALARMS.c.cleared.is_(False))
    elif state == "cleared":
        query = query.where(_ALARMS.c.cleared.is_(True))
    if severities:
        query = query.where(_ALARMS.c.severity.in_([s.value for s in severities]))
    if type_id:
        query = query.where(_ALARMS.c.type_id == type_id)
    if resource:
        query = query.where(_ALARMS.c.resource == resource)
    return query


def list_alarms(
    engine: Engine,
    *,
    state: str = "active",
    severities: list[Severity] | None = None,
    type_id: str | None = None,
    resource: str | None = None,
    limit: int = 1000,
    after_id: int = 0,
    before_id: int = 0,
    newest: bool = False,
) -> list[dict[str, Any]]:
    """Alarms by id, oldest first. ``after_id`` and ``before_id`` bound the ids (0: no
    bound); ``newest``: the newest ``limit`` of them rather than the oldest (with
    ``before_id``, the page before it: the Event Viewer's "older")."""
    query = select(*[_ALARMS.c[f] for f in ALARM_FIELDS]).where(_ALARMS.c.id > after_id)
    if before_id:
        query = query.where(_ALARMS.c.id < before_id)
    query = _alarm_filters(query, state, severities, type_id, resource)
    query = query.order_by(_ALARMS.c.id.desc() if newest else _ALARMS.c.id).limit(limit)
    with engine.connect() as conn:
        rows = [alarm_to_json(dict(row)) for row in conn.execute(query).mappings()]
    if newest:
        rows.reverse()
    return rows


def count_alarms(
    engine: Engine,
    *,
    state: str = "active",
    severities: list[Severity] | None = None,
    type_id: str | None = None,
    resource: str | None = None,
) -> int:
    """How many alarms :func:`list_alarms` would list with these filters, all pages."""
    query = _alarm_filters(
        select(func.count()).select_from(_ALARMS), state, severities, type_id, resource
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def get_alarm(engine: Engine, alarm_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(*[_ALARMS.c[f] for f in ALARM_FIELDS]).where(_ALARMS.c.id == alarm_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        history = conn.execute(
            select(_HISTORY).where(_HISTORY.c.alarm_id == alarm_id).order_by(_HISTORY.c.id)
        ).mappings()
        data = alarm_to_json(dict(row))
        data["history"] = [
            {
                "at": iso(h["at"]),
                "seq": h["seq"],
                "change": h["change"],
                "severity": h["severity"],
                "text": h["text"],
                "by": h["by"],
                "note": h["note"],
            }
            for h in history
        ]
    return data


def list_events(
    engine: Engine,
    *,
    type_id: str | None = None,
    resource: str | None = None,
    severities: list[Severity] | None = None,
    after_seq: int = 0,
    limit: int = 1000,
    before_seq: int = 0,
) -> list[dict[str, Any]]:
    query = select(_EVENTS).where(_EVENTS.c.seq > after_seq)
    if before_seq:  # 0: no upper bound
        query = query.where(_EVENTS.c.seq < before_seq)
    if type_id:
        query = query.where(_EVENTS.c.type_id == type_id)
    if resource:
        query = query.where(_EVENTS.c.resource == resource)
    if severities:
        query = query.where(_EVENTS.c.severity.in_([s.value for s in severities]))
    # Without `after_seq`: the newest `limit` (below `before_seq` if given, to page
    # back), oldest first, like the tail of a log. With it: the next `limit` after it,
    # to page forward.
    if after_seq:
        query = query.order_by(_EVENTS.c.seq).limit(limit)
    else:
        query = query.order_by(_EVENTS.c.seq.desc()).limit(limit)
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    if after_seq:
        rows.reverse()
    return [
        {
            "seq": r["seq"],
            "time": iso(r["at"]),
            "type": r["type_id"],
            "resource": r["resource"],
            "severity": r["severity"],
            "text": r["text"],
            "details": json.loads(r["details"]) if r["details"] else {},
        }
        for r in reversed(rows)
    ]


def newest_events_by_resource(
    engine: Engine, type_ids: tuple[str, ...]
) -> dict[tuple[str, str], tuple[int, str, datetime]]:
    """For each (type, resource) of these event types: its newest event's (seq, text,
    time)."""
    newest = (
        select(func.max(_EVENTS.c.seq).label("seq"))
        .where(_EVENTS.c.type_id.in_(type_ids))
        .group_by(_EVENTS.c.type_id, _EVENTS.c.resource)
    )
    query = select(
        _EVENTS.c.seq, _EVENTS.c.type_id, _EVENTS.c.resource, _EVENTS.c.text, _EVENTS.c.at
    ).where(_EVENTS.c.seq.in_(newest))
    with engine.connect() as conn:
        return {
            (r.type_id, r.resource): (int(r.seq), str(r.text), r.at) for r in conn.execute(query)
        }


def read_log(engine: Engine, after_seq: int, limit: int) -> list[Notification]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_LOG).where(_LOG.c.seq > after_seq).order_by(_LOG.c.seq).limit(limit)
        )
        return [Notification.from_row(r) for r in rows]


def alarm_rows(
    engine: Engine, ids: set[int], raised_since: datetime | None
) -> list[dict[str, Any]]:
    """The ``alarms`` rows (``ALARM_FIELDS``) with these ids, and the active ones raised
    again at or after ``raised_since`` (a repeat changes the count and time, no log row)."""
    columns = [_ALARMS.c[f] for f in ALARM_FIELDS]
    found: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        wanted = sorted(ids)
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            for row in conn.execute(select(*columns).where(_ALARMS.c.id.in_(chunk))).mappings():
                found[row["id"]] = dict(row)
        if raised_since is not None:
            repeated = select(*columns).where(
                _ALARMS.c.cleared.is_(False), _ALARMS.c.last_raised_at >= raised_since
            )
            for row in conn.execute(repeated).mappings():
                found[row["id"]] = dict(row)
    return [found[i] for i in sorted(found)]


def log_position(engine: Engine) -> tuple[int, datetime | None]:
    """The newest log row's seq (0: none) and the newest active alarm's last raise."""
    with engine.connect() as conn:
        seq = conn.execute(select(func.max(_LOG.c.seq))).scalar() or 0
        raised = conn.execute(
            select(func.max(_ALARMS.c.last_raised_at)).where(_ALARMS.c.cleared.is_(False))
        ).scalar()
    return int(seq), raised


def alarm_counts(engine: Engine) -> dict[str, int]:
    """Active alarms per severity, plus ``total``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_ALARMS.c.severity, func.count())
            .where(_ALARMS.c.cleared.is_(False))
            .group_by(_ALARMS.c.severity)
        ).all()
    counts = {s.value: 0 for s in Severity if s is not Severity.CLEARED}
    for severity, count in rows:
        counts[severity] = count
    counts["total"] = sum(counts.values())
    return counts
