"""Plain records the alarm manager returns; independent of any wire format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    ALARM_RAISED = "alarm-raised"
    ALARM_CHANGED = "alarm-changed"
    ALARM_CLEARED = "alarm-cleared"
    EVENT = "event"


def iso(value: datetime | None) -> str | None:
    """RFC 3339 with microseconds and an explicit offset (``Z`` for UTC)."""
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


ALARM_FIELDS = (
    "id",
    "type_id",
    "resource",
    "qualifier",
    "severity",
    "text",
    "cleared",
    "raised_at",
    "last_raised_at",
    "changed_at",
    "cleared_at",
    "count",
    "raise_seq",
    "operator_state",
    "ack_by",
    "ack_at",
    "ack_note",
    "resolution",
)


def alarm_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A store row of ``alarms`` as the API and CLI show it."""
    # The writer stamps a change's times with one datetime object (raised_at,
    # last_raised_at and changed_at of a new alarm are the same one): formatted once.
    raised = row["raised_at"]
    raised_at = iso(raised)
    last = row["last_raised_at"]
    last_raised_at = raised_at if last is raised else iso(last)
    changed = row["changed_at"]
    if changed is last:
        changed_at = last_raised_at
    else:
        changed_at = raised_at if changed is raised else iso(changed)
    return {
        "id": row["id"],
        "type": row["type_id"],
        "resource": row["resource"],
        "qualifier": row["qualifier"],
        "severity": row["severity"],
        "state": "cleared" if row["cleared"] else "active",
        "text": row["text"],
        "count": row["count"],
        "raised_at": raised_at,
        "last_raised_at": last_raised_at,
        "changed_at": changed_at,
        "cleared_at": iso(row["cleared_at"]),
        "raise_seq": row["raise_seq"],
        "operator_state": row["operator_state"],
        "ack_by": row["ack_by"],
        "ack_at": iso(row["ack_at"]),
        "ack_note": row["ack_note"],
        "resolution": row["resolution"],
    }


@dataclass(frozen=True, slots=True)
class Notification:
    """One row of the notification log, as exporters read it."""

    seq: int
    at: datetime
    kind: NotificationKind
    alarm_id: int
    type_id: str
    resource: str
    qualifier: str
    severity: str
    text: str
    raise_seq: int
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> Notification:
        return cls(
            seq=row.seq,
            at=row.at,
            kind=NotificationKind(row.kind),
            alarm_id=row.alarm_id,
            type_id=row.type_id,
            resource=row.resource,
            qualifier=row.qualifier,
            severity=row.severity,
            text=row.text,
            raise_seq=row.raise_seq,
            payload=json.loads(row.payload) if row.payload else {},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": self.seq,
            "time": iso(self.at),
            "kind": self.kind.value,
            "alarm_id": self.alarm_id,
            "type": self.type_id,
            "resource": self.resource,
            "qualifier": self.qualifier,
            "severity": self.severity,
            "text": self.text,
        }
        if self.raise_seq:
            data["raise_seq"] = self.raise_seq
        data.update(self.payload)
        return data


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What one manager call did: the alarm after it, and the notification it logged."""

    alarm: dict[str, Any]
    seq: int | None
    """Sequence number of the notification, None when nothing changed (a repeat)."""
    change: str
