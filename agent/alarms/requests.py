"""Requests to the alarm writer, checked on the caller's side before they are queued: a
malformed one is refused at once and takes nothing from the writer."""

from __future__ import annotations

import re
from typing import Any

from agent.alarms.catalog import AlarmType, Catalog, Kind
from agent.alarms.operations import ClearOp, EventOp, RaiseOp
from agent.alarms.persistence import MAX_FIELD
from agent.alarms.severity import Severity
from agent.errors import InvalidRequest

MAX_TEXT = 4096
# One search instead of a generator over the characters: checked on the event loop for
# every request's resource and qualifier.
_CONTROL = re.compile(r"[\x00-\x1f]")


def raise_op(
    catalog: Catalog,
    type_id: str,
    resource: str,
    *,
    qualifier: str,
    severity: Severity | str | None,
    text: str,
    by: str | None,
    resolution: str = "",
) -> RaiseOp:
    alarm_type = _alarm_type(catalog, type_id, Kind.ALARM)
    chosen = Severity(severity) if severity is not None else alarm_type.severity
    if chosen is Severity.CLEARED:
        raise InvalidRequest("cannot raise with severity 'cleared'; clear the alarm instead")
    return RaiseOp(
        type_id,
        _field("resource", resource),
        _field("qualifier", qualifier, allow_empty=True),
        chosen,
        _text(text),
        by,
        _text(resolution),
    )


def clear_op(
    catalog: Catalog,
    alarm_id: int | None,
    *,
    type_id: str | None,
    resource: str | None,
    qualifier: str,
    note: str | None,
    by: str | None,
) -> ClearOp:
    if alarm_id is not None:
        return ClearOp(alarm_id, None, note, by)
    if type_id is not None and resource is not None:
        _alarm_type(catalog, type_id, Kind.ALARM)
        return ClearOp(None, (type_id, resource, qualifier), note, by)
    raise InvalidRequest("clear needs an alarm id, or a type and a resource")


def event_op(
    catalog: Catalog,
    type_id: str,
    resource: str,
    *,
    severity: Severity | str | None,
    text: str,
    details: dict[str, Any] | None,
) -> EventOp:
    event_type = _alarm_type(catalog, type_id, Kind.EVENT)
    chosen = Severity(severity) if severity is not None else event_type.severity
    if chosen is Severity.CLEARED:
        raise InvalidRequest("an event cannot have severity 'cleared'")
    return EventOp(type_id, _field("resource", resource), chosen, _text(text), details or {})


def _alarm_type(catalog: Catalog, type_id: str, kind: Kind) -> AlarmType:
    alarm_type = catalog.get(type_id)
    if alarm_type.kind is not kind:
        verb = "raise" if kind is Kind.ALARM else "emit as an event"
        raise InvalidRequest(f"{type_id!r} is an {alarm_type.kind.value} type; cannot {verb}")
    return alarm_type


def _field(name: str, value: str, *, allow_empty: bool = False) -> str:
    value = value.strip()
    if not value and not allow_empty:
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"{name} is longer than {MAX_FIELD} characters")
    if _CONTROL.search(value) is not None:
        raise InvalidRequest(f"{name} must not contain control characters")
    return value


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidRequest(f"text is longer than {MAX_TEXT} characters")
    return value
