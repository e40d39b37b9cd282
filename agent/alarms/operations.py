"""Requests queued to the alarm manager's writer; each is applied in a group commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.alarms.severity import Severity


@dataclass(frozen=True, slots=True)
class RaiseOp:
    type_id: str
    resource: str
    qualifier: str
    severity: Severity
    text: str
    by: str | None
    resolution: str = ""
    """The hint of this alarm when it is new; "": the type's, its {resource} filled in."""


@dataclass(frozen=True, slots=True)
class ClearOp:
    alarm_id: int | None
    key: tuple[str, str, str] | None
    note: str | None
    by: str | None


@dataclass(frozen=True, slots=True)
class AckOp:
    alarm_id: int
    acknowledge: bool
    note: str | None
    by: str | None


@dataclass(frozen=True, slots=True)
class EventOp:
    type_id: str
    resource: str
    severity: Severity
    text: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PurgeOp:
    cleared_alarm_days: float
    event_days: float
    log_max: int
    log_days: float
    targets: tuple[str, ...] = ()
    """The configured export targets: what one of them has not delivered is kept (cursors
    of targets no longer configured hold nothing)."""
    max_backlog: int = 1_000_000
    """Past this many notifications behind, a target's older ones may be purged."""
    max_backlog_age: float = 30 * 86400.0
    """Seconds; undelivered notifications older than this may be purged."""


@dataclass(frozen=True, slots=True)
class CursorOp:
    """An export target's delivered position, saved in the writer's group commit instead
    of a write transaction of its own (which would compete with the writer for the
    store's lock); several saves of one target in a group commit write only the newest."""

    name: str
    seq: int


Operation = RaiseOp | ClearOp | AckOp | EventOp | PurgeOp | CursorOp
