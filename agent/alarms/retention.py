"""Which notification-log rows retention may purge, and what a purge takes from a target.

Retention keeps at most ``notification_log_max`` rows, none older than
``notification_log_days``, except what a configured export target has not delivered yet
(its cursor is in ``exporter_cursors``). That protection is bounded, so a dead target
cannot grow the store without end: a target keeps only its newest ``max_backlog``
undelivered rows, and none older than ``max_backlog_age``. Rows purged past that bound
are a :class:`Loss`, which the alarm manager turns into an export-gap event and an
export-loss alarm in the same transaction. Cursors of targets that are no longer
configured hold nothing.

A target's committed cursor is its position for loss accounting: a row above it is
undelivered until the cursor is saved past it, whatever the exporter holds in memory (a
restart resumes from the committed cursor). The rows an exporter has read, or is reading,
and will deliver from memory, with those it delivered but whose cursor save is still in
flight (its :class:`Holding`: at most two batches) are never purged while it holds them,
whatever the bounds: purging them would lose them on a restart without any record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, not_, or_, select

from agent.alarms.operations import PurgeOp
from agent.durations import format_duration
from agent.store.models import CURSORS as _CURSORS
from agent.store.models import LOG as _LOG


@dataclass(frozen=True, slots=True)
class Loss:
    """Rows ``first``-``last`` (``count`` of them) purged before ``target`` got them."""

    target: str
    first: int
    last: int
    count: int
    bound: str
    """"max_backlog" or "max_backlog_age": the bound the target's backlog passed."""
    limit: str
    """The bound's value, as the configuration writes it."""

    @property
    def lost(self) -> str:
        return f"{self.first}-{self.last}" if self.first != self.last else str(self.first)

    @property
    def text(self) -> str:
        why = (
            f"more than {self.limit} notifications behind"
            if self.bound == "max_backlog"
            else f"undelivered for longer than {self.limit}"
        )
        return (
            f"target {self.target} lost notifications {self.lost} "
            f"(purged by retention before delivery: {why})"
        )

    def details(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "first_lost": self.first,
            "last_lost": self.last,
            "count": self.count,
            "bound": self.bound,
            "limit": self.limit,
        }


@dataclass(frozen=True, slots=True)
class Holding:
    """What an exporter has read, or is reading, to deliver from memory: the first
    ``count`` log rows after ``after`` (its saved position when it started the read: what
    it delivered since, while that save is in flight, is held too).

    Set before the read starts, so a purge that runs while the read is under way already
    protects the rows that read returns (the same rows: nothing is added below the newest
    one, and the protected ones are not deleted).
    """

    after: int
    count: int


Span = tuple[int, int | None]
"""Rows ``low`` < seq <= ``high`` (``None``: no upper end)."""


def read_cursors(conn: Connection, targets: tuple[str, ...]) -> dict[str, int]:
    """The committed cursor of every configured target (0 if it has delivered nothing)."""
    if not targets:
        return {}
    rows = conn.execute(
        select(_CURSORS.c.name, _CURSORS.c.last_seq).where(_CURSORS.c.name.in_(targets))
    )
    found = {name: int(seq) for name, seq in rows}
    return {name: found.get(name, 0) for name in targets}


def held_spans(
    conn: Connection, cursors: Mapping[str, int], holdings: Mapping[str, Holding]
) -> list[Span]:
    """The rows configured targets hold in memory and have not committed yet."""
    spans: list[Span] = []
    for name, holding in dict(holdings).items():  # a copy: exporters change it
        if name not in cursors or holding.count < 1:
            continue
        high = conn.execute(
            select(_LOG.c.seq)
            .where(_LOG.c.seq > holding.after)
            .order_by(_LOG.c.seq)
            .offset(holding.count - 1)
            .limit(1)
        ).scalar()
        low = max(cursors[name], holding.after)
        if high is None or int(high) > low:
            spans.append((low, None if high is None else int(high)))
    return spans


def purgeable(
    op: PurgeOp,
    last_seq: int,
    now: datetime,
    cursors: dict[str, int],
    held: Sequence[Span] = (),
) -> ColumnElement[bool]:
    """The log rows this purge deletes."""
    retention = or_(
        _LOG.c.seq <= last_seq - op.log_max, _LOG.c.at < now - timedelta(days=op.log_days)
    )
    if not cursors:
        return retention
    # Protected: above the lowest cursor, among the newest max_backlog, younger than
    # max_backlog_age. Everything else that retention wants goes, except what a target
    # holds in memory.
    floor = min(max(cursor, last_seq - op.max_backlog) for cursor in cursors.values())
    too_old = now - timedelta(seconds=op.max_backlog_age)
    doomed = and_(retention, or_(_LOG.c.seq <= floor, _LOG.c.at < too_old))
    if not held:
        return doomed
    kept = [
        _LOG.c.seq > low if high is None else and_(_LOG.c.seq > low, _LOG.c.seq <= high)
        for low, high in held
    ]
    return and_(doomed, not_(or_(*kept)))


def find_losses(
    conn: Connection,
    doomed: ColumnElement[bool],
    cursors: dict[str, int],
    op: PurgeOp,
    last_seq: int,
) -> list[Loss]:
    """What each target loses when the rows ``doomed`` selects are deleted (run before)."""
    losses = []
    for target, cursor in sorted(cursors.items()):
        first, last, count = conn.execute(
            select(func.min(_LOG.c.seq), func.max(_LOG.c.seq), func.count()).where(
                and_(doomed, _LOG.c.seq > cursor)
            )
        ).one()
        if not count:
            continue
        by_count = int(last) <= last_seq - op.max_backlog
        losses.append(
            Loss(
                target=target,
                first=int(first),
                last=int(last),
                count=int(count),
                bound="max_backlog" if by_count else "max_backlog_age",
                limit=str(op.max_backlog) if by_count else format_duration(op.max_backlog_age),
            )
        )
    return losses
