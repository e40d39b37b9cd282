"""The alarm state machine: given the working set of a group commit and one request, the
rows to write and the caller's answer. No I/O: the writer loads the working set before and
writes what it holds after (agent.alarms.writer).

Raise, repeat, change, clear, acknowledge and emit each append their history, event and
log rows to the :class:`Batch`, take sequence numbers and alarm ids from the
:class:`Counters` (the writer is the only writer, so they are assigned here: strictly
increasing, never reused, gap-free) and build each log row's :class:`Notification` as the
store would hand it back, for the commit feed and the log tail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.alarms.catalog import Catalog
from agent.alarms.operations import AckOp, ClearOp, EventOp, RaiseOp
from agent.alarms.payloads import PayloadEncoder, utc
from agent.alarms.records import AlarmChange, Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.errors import AlarmNotFound

Clock = Callable[[], datetime]
Row = dict[str, Any]
"""One row to write, by column name (alarms, history, events, log)."""


@dataclass
class Counters:
    """The high-water marks the writer assigns from (persisted in ``meta``)."""

    last_seq: int = 0
    last_alarm_id: int = 0

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq


@dataclass
class Batch:
    """The working set of one group commit."""

    by_id: dict[int, Row] = field(default_factory=dict)
    active_by_key: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    new_ids: set[int] = field(default_factory=set)
    repeated: set[int] = field(default_factory=set)
    dirty_ids: set[int] = field(default_factory=set)
    history: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    log: list[Row] = field(default_factory=list)
    notes: list[Notification] = field(default_factory=list)
    """The log rows as exporters read them, for the commit feed and the log tail."""
    cursors: dict[str, int] = field(default_factory=dict)
    """Export target -> the newest position queued for it in this group commit."""
    purged: set[int] = field(default_factory=set)
    purged_through: int = 0
    """The highest log seq a purge deleted (0: none): the tail drops rows up to it."""

    def track(self, row: Row) -> None:
        self.by_id[row["id"]] = row
        if not row["cleared"]:
            self.active_by_key[(row["type_id"], row["resource"], row["qualifier"])] = row

    def mark_dirty(self, row: Row) -> None:
        if row["id"] not in self.new_ids:
            self.dirty_ids.add(row["id"])

    def find(self, alarm_id: int) -> Row:
        row = self.by_id.get(alarm_id)
        if row is None:
            raise AlarmNotFound(f"no alarm with id {alarm_id}")
        return row


class Transitions:
    """Applies requests to a :class:`Batch`; used by the writer thread only."""

    def __init__(self, catalog: Catalog, clock: Clock, counters: Counters) -> None:
        self.catalog = catalog
        self.counters = counters
        self._clock = clock
        self.payloads = PayloadEncoder(catalog)

    def raise_(self, work: Batch, op: RaiseOp) -> AlarmChange:
        now = self._clock()
        row = work.active_by_key.get((op.type_id, op.resource, op.qualifier))
        if row is None:
            return self._new(work, op, now)
        row["count"] += 1
        row["last_raised_at"] = now
        changes = []
        previous = row["severity"]
        if row["severity"] != op.severity.value:
            changes.append("severity")
            row["severity"] = op.severity.value
        if op.text and row["text"] != op.text:
            changes.append("text")
            row["text"] = op.text
        work.mark_dirty(row)
        if not changes:
            # A repeat of an unchanged condition: counted, not notified (RFC 8632 3.4).
            _history(work, row, "repeated", now, None, by=op.by)
            work.repeated.add(row["id"])
            return AlarmChange(dict(row), None, "repeated")
        row["changed_at"] = now
        change = "+".join(changes)
        extra = {"change": change}
        if "severity" in changes:
            extra["previous_severity"] = previous
        seq = self._log(work, NotificationKind.ALARM_CHANGED, row, row["severity"], now, extra)
        _history(work, row, change, now, seq, by=op.by)
        return AlarmChange(dict(row), seq, change)

    def _new(self, work: Batch, op: RaiseOp, now: datetime) -> AlarmChange:
        self.counters.last_alarm_id += 1
        alarm_type = self.catalog.get(op.type_id)
        row: Row = {
            "id": self.counters.last_alarm_id,
            "type_id": op.type_id,
            "resource": op.resource,
            "qualifier": op.qualifier,
            "severity": op.severity.value,
            "text": op.text or alarm_type.name,
            "cleared": False,
            "raised_at": now,
            "last_raised_at": now,
            "changed_at": now,
            "cleared_at": None,
            "count": 1,
            "raise_seq": 0,
            "operator_state": "none",
            "ack_by": None,
            "ack_at": None,
            "ack_note": None,
            "resolution": op.resolution or alarm_type.resolution.replace("{resource}", op.resource),
        }
        seq = self._log(work, NotificationKind.ALARM_RAISED, row, row["severity"], now)
        row["raise_seq"] = seq
        work.track(row)
        work.new_ids.add(row["id"])
        _history(work, row, "raised", now, seq, by=op.by)
        return AlarmChange(dict(row), seq, "raised")

    def clear(self, work: Batch, op: ClearOp) -> AlarmChange:
        if op.alarm_id is not None:
            row = work.find(op.alarm_id)
        else:
            assert op.key is not None
            found = work.active_by_key.get(op.key)
            if found is None:
                type_id, resource, qualifier = op.key
                suffix = f" qualifier {qualifier!r}" if qualifier else ""
                raise AlarmNotFound(f"no active {type_id} alarm for resource {resource!r}{suffix}")
            row = found
        if row["cleared"]:
            return AlarmChange(dict(row), None, "already-cleared")
        now = self._clock()
        row["cleared"] = True
        row["cleared_at"] = now
        row["changed_at"] = now
        del work.active_by_key[(row["type_id"], row["resource"], row["qualifier"])]
        work.mark_dirty(row)
        extra: dict[str, Any] = {"cleared_by": op.by} if op.by else {}
        if op.note:
            extra["note"] = op.note
        seq = self._log(
            work, NotificationKind.ALARM_CLEARED, row, Severity.CLEARED.value, now, extra
        )
        _history(work, row, "cleared", now, seq, by=op.by, note=op.note, severity=Severity.CLEARED)
        return AlarmChange(dict(row), seq, "cleared")

    def ack(self, work: Batch, op: AckOp) -> AlarmChange:
        row = work.find(op.alarm_id)
        wanted = "acknowledged" if op.acknowledge else "none"
        change = "acknowledged" if op.acknowledge else "unacknowledged"
        if row["operator_state"] == wanted:
            return AlarmChange(dict(row), None, f"already-{change}")
        now = self._clock()
        row["operator_state"] = wanted
        row["ack_by"] = op.by if op.acknowledge else None
        row["ack_at"] = now if op.acknowledge else None
        row["ack_note"] = op.note if op.acknowledge else None
        work.mark_dirty(row)
        severity = Severity.CLEARED.value if row["cleared"] else row["severity"]
        extra: dict[str, Any] = {"change": change, "operator": op.by}
        if op.note:
            extra["note"] = op.note
        seq = self._log(work, NotificationKind.ALARM_CHANGED, row, severity, now, extra)
        _history(work, row, change, now, seq, by=op.by, note=op.note)
        return AlarmChange(dict(row), seq, change)

    def event(self, work: Batch, op: EventOp) -> int:
        now = self._clock()
        # The type first: an unknown one must not take a sequence number (a gap).
        event_type = self.catalog.get(op.type_id)
        seq = self.counters.next_seq()
        text = op.text or event_type.name
        work.events.append(
            {
                "seq": seq,
                "at": now,
                "type_id": op.type_id,
                "resource": op.resource,
                "severity": op.severity.value,
                "text": text,
                "details": json.dumps(op.details, separators=(",", ":"), default=str),
            }
        )
        payload: dict[str, Any] = {
            "type_name": event_type.name,
            "event_type": event_type.event_type.value,
            "probable_cause": event_type.probable_cause,
        }
        if op.details:
            payload["details"] = op.details
        encoded = json.dumps(payload, separators=(",", ":"), default=str)
        work.log.append(
            {
                "seq": seq,
                "at": now,
                "kind": NotificationKind.EVENT.value,
                "alarm_id": 0,
                "type_id": op.type_id,
                "resource": op.resource,
                "qualifier": "",
                "severity": op.severity.value,
                "text": text,
                "raise_seq": 0,
                "payload": encoded,
            }
        )
        # The payload parsed back: details may hold values the JSON only has as strings.
        note = Notification(
            seq,
            utc(now),
            NotificationKind.EVENT,
            0,
            op.type_id,
            op.resource,
            "",
            op.severity.value,
            text,
            0,
            json.loads(encoded),
        )
        work.notes.append(note)
        return seq

    def _log(
        self,
        work: Batch,
        kind: NotificationKind,
        row: Row,
        severity: str,
        at: datetime,
        extra: dict[str, Any] | None = None,
    ) -> int:
        seq = self.counters.next_seq()
        payload, parsed = self.payloads.encode(row)
        if extra:
            payload = payload[:-1] + "," + json.dumps(extra, separators=(",", ":"))[1:]
            parsed = {**parsed, **extra}  # str and None values: what the JSON gives back
        raise_seq = row["raise_seq"] if kind is not NotificationKind.ALARM_RAISED else 0
        work.log.append(
            {
                "seq": seq,
                "at": at,
                "kind": kind.value,
                "alarm_id": row["id"],
                "type_id": row["type_id"],
                "resource": row["resource"],
                "qualifier": row["qualifier"],
                "severity": severity,
                "text": row["text"],
                "raise_seq": raise_seq,
                "payload": payload,
            }
        )
        # The row as the store hands it back (Notification.from_row), without reading it:
        # the payload dict is shared between notifications of one kind (readers never
        # change it), the time is the UTC one the store returns.
        # Positional: a quarter cheaper than keywords, and it runs once per log row.
        note = Notification(
            seq,
            utc(at),
            kind,
            row["id"],
            row["type_id"],
            row["resource"],
            row["qualifier"],
            severity,
            row["text"],
            raise_seq,
            parsed,
        )
        work.notes.append(note)
        return seq


def _history(
    work: Batch,
    row: Row,
    change: str,
    at: datetime,
    seq: int | None,
    by: str | None = None,
    note: str | None = None,
    severity: str | None = None,
) -> None:
    work.history.append(
        {
            "alarm_id": row["id"],
            "seq": seq,
            "at": at,
            "change": change,
            "severity": severity or row["severity"],
            "text": row["text"],
            "by": by,
            "note": note,
        }
    )
