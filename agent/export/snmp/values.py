"""Store values -> BER value TLVs of PROVSYNC-MIB's syntaxes.

These run for every cell of every changed row after each group commit (the SNMP view
applies the commit feed on the event loop, which the control API shares), so the common
cases are spelled out here instead of going through ``ber``'s general helpers: a string
under 128 octets, an unsigned number (whose TLV never needs a long length), a DateAndTime
packed with its header. ``tests/test_snmp_values.py`` checks every one against ``ber``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import RowMapping

from agent.alarms.catalog import AlarmType, EventType, Kind
from agent.alarms.records import NotificationKind
from agent.alarms.severity import Severity
from agent.export.snmp import ber

EVENT_TYPE_NUMBER = {event_type: number for number, event_type in enumerate(EventType, 1)}
KIND_NUMBER = {Kind.ALARM: 1, Kind.EVENT: 2}
NOTIFICATION_KIND_NUMBER = {
    NotificationKind.ALARM_RAISED: 1,
    NotificationKind.ALARM_CHANGED: 2,
    NotificationKind.ALARM_CLEARED: 3,
    NotificationKind.EVENT: 4,
}
OPERATOR_STATE_NUMBER = {"none": 1, "acknowledged": 2}
MAX_STRING = 65535


def text(value: str | None) -> bytes:
    if not value:
        return _EMPTY_TEXT
    data = value.encode("utf-8")
    if len(data) < 0x80:
        return bytes((ber.OCTET_STRING, len(data))) + data
    return ber.octets(data[:MAX_STRING])


_EMPTY_TEXT = ber.octets(b"")


def _unsigned32(value: int, tag: int) -> bytes:
    # At most 5 content octets (a leading zero before a set top bit): a short length.
    size = value.bit_length() // 8 + 1
    return bytes((tag, size)) + value.to_bytes(size, "big")


def gauge(value: int) -> bytes:
    return _unsigned32(min(max(value, 0), 0xFFFFFFFF), ber.GAUGE32)


def counter(value: int) -> bytes:
    return _unsigned32(value & 0xFFFFFFFF, ber.COUNTER32)


def enum(value: int) -> bytes:
    return ber.integer(value)


def severity(value: str) -> bytes:
    return ber.integer(int(Severity(value).itu))


# The OCTET STRING header (tag, length 11) and the 11 octets in one pack.
_DATE_AND_TIME = struct.Struct(">BBHBBBBBBcBB")


def date_and_time(value: datetime | None) -> bytes:
    """SNMPv2-TC DateAndTime with its UTC offset (11 octets); empty when unknown."""
    if value is None:
        return _EMPTY_TEXT
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return _DATE_AND_TIME.pack(
        ber.OCTET_STRING,
        11,
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond // 100_000,
        b"+",
        0,
        0,
    )


def alarm_type_row(alarm_type: AlarmType) -> list[bytes]:
    return [
        text(alarm_type.id),
        text(alarm_type.name),
        enum(KIND_NUMBER[alarm_type.kind]),
        severity(alarm_type.severity),
        enum(EVENT_TYPE_NUMBER[alarm_type.event_type]),
        text(alarm_type.probable_cause),
        text(alarm_type.description),
        text(alarm_type.clear_instructions),
    ]


@lru_cache(maxsize=4096)
def _by_type(type_id: str, alarm_type: AlarmType) -> tuple[bytes, bytes, bytes, bytes]:
    """The cells an alarm's type decides, encoded once per type (not per alarm)."""
    return (text(type_id), text(alarm_type.name), enum(EVENT_TYPE_NUMBER[alarm_type.event_type]),
            text(alarm_type.probable_cause))  # fmt: skip


_SEVERITY = {s.value: ber.integer(int(s.itu)) for s in Severity}
_OPERATOR_STATE = {name: enum(number) for name, number in OPERATOR_STATE_NUMBER.items()}
_NOTIFICATION_KIND = {kind: enum(number) for kind, number in NOTIFICATION_KIND_NUMBER.items()}


@lru_cache(maxsize=4096)
def _type_text(type_id: str) -> bytes:
    return text(type_id)


def active_alarm_row(row: Mapping[str, Any] | RowMapping, alarm_type: AlarmType) -> list[bytes]:
    type_ref, name, event_type, probable_cause = _by_type(row["type_id"], alarm_type)
    return [
        type_ref,
        name,
        text(row["resource"]),
        text(row["qualifier"]),
        _SEVERITY.get(row["severity"]) or severity(row["severity"]),
        event_type,
        probable_cause,
        text(row["text"]),
        date_and_time(row["raised_at"]),
        date_and_time(row["changed_at"]),
        counter(row["count"]),
        _OPERATOR_STATE.get(row["operator_state"]) or enum(1),
        text(row["ack_by"]),
        gauge(row["raise_seq"]),
        text(row["resolution"]),
    ]


SYNC_STATE_NUMBER = {"never": 1, "idle": 2, "running": 3, "failed": 4, "init-required": 5}


SHARING_STATE_NUMBER = {"notSharing": 1, "syncRequired": 2, "reconcileRequired": 3,
                        "sharing": 4}  # fmt: skip


def element_row(row: Any, sharing: str = "notSharing", errors: int = 0) -> list[bytes]:
    return [
        text(row.name),
        text(row.type),
        enum(SYNC_STATE_NUMBER.get(row.sync_state, 1)),
        enum(SHARING_STATE_NUMBER[sharing]),
        date_and_time(row.last_sync_at),
        gauge(errors),
    ]


def log_row(
    at: datetime,
    kind: NotificationKind,
    alarm_id: int,
    type_id: str,
    resource: str,
    severity_name: str,
    message: str,
    raise_seq: int,
) -> list[bytes]:
    return [
        date_and_time(at),
        _NOTIFICATION_KIND[kind],
        gauge(alarm_id),
        _type_text(type_id),
        text(resource),
        _SEVERITY.get(severity_name) or severity(severity_name),
        text(message),
        gauge(raise_seq),
    ]
