"""Store values -> BER value TLVs of PROVSYNC-MIB's syntaxes.

These run for every cell of every changed row after each group commit (the SNMP view
applies the commit feed on the event loop, which the control API shares), so the common
cases are spelled out here instead of going through ``ber``'s general helpers: a string
under 128 octets, an unsigned number (whose TLV never needs a long length), a DateAndTime
packed with its header. ``tests/test_snmp_values.py`` checks every one against ``ber``.

Every value fits its object's syntax in PROVSYNC-MIB (notify.py sends the same):
a text longer than its SIZE (255 octets for an SnmpAdminString without one, RFC 3411's
SNMP-FRAMEWORK-MIB) is cut on a UTF-8 character boundary and ends with :data:`MARKER`;
an object of SIZE (1..n) gets :data:`EMPTY_ID` instead of nothing; an unknown DateAndTime
(RFC 2579: SIZE (8 | 11)) is :data:`NEVER`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import RowMapping

from agent.alarms.catalog import AlarmType, EventType, Kind
from agent.alarms.probable_cause import probable_cause_number
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

ADMIN_STRING = 255
"""SnmpAdminString without a SIZE of its own: 0..255 octets."""
SHORT_TEXT = 64
"""The MIB's SIZE (0..64) and (1..64) objects: type ids, probable cause labels, elements."""
ACK_BY = 128
"""provsyncAlarmAckBy and provsyncNotifyAckBy: SIZE (0..128)."""
MARKER = "\u2026".encode()
"""U+2026 HORIZONTAL ELLIPSIS, 3 octets: ends a text that was cut, within its limit."""
EMPTY_ID = b"-"
"""Sent for an empty value of a SIZE (1..n) object: no type id can be it (they start
with a letter or digit), and it is RFC 5424's NILVALUE, which syslog sends for the same."""


def fit(data: bytes, limit: int = ADMIN_STRING) -> bytes:
    """``data`` (UTF-8) if it has at most ``limit`` octets; else its longest prefix of
    whole characters that leaves room for :data:`MARKER`, and the marker."""
    if len(data) <= limit:
        return data
    cut = limit - len(MARKER)
    # data[cut] is the first octet left out: a continuation octet (10xxxxxx) means the
    # character it belongs to started before the cut, so that character goes too.
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut] + MARKER


def octets(value: str | None, limit: int = ADMIN_STRING) -> bytes:
    """The content octets of a text object: UTF-8, cut to ``limit`` by :func:`fit`."""
    if not value:
        return b""
    return fit(value.encode("utf-8"), limit)


def identifier_octets(value: str | None, limit: int = SHORT_TEXT) -> bytes:
    """The content octets of a SIZE (1..``limit``) text object: never empty."""
    return octets(value, limit) or EMPTY_ID


def text(value: str | None, limit: int = ADMIN_STRING) -> bytes:
    """An OCTET STRING TLV of at most ``limit`` octets."""
    if not value:
        return _EMPTY_TEXT
    data = value.encode("utf-8")
    if len(data) < 0x80 and len(data) <= limit:
        return bytes((ber.OCTET_STRING, len(data))) + data
    return ber.octets(fit(data, limit))


def identifier(value: str | None, limit: int = SHORT_TEXT) -> bytes:
    """An OCTET STRING TLV of a SIZE (1..``limit``) object: :data:`EMPTY_ID` for nothing."""
    return text(value, limit) if value else _EMPTY_ID


_EMPTY_TEXT = ber.octets(b"")
_EMPTY_ID = ber.octets(EMPTY_ID)


def probable_cause(label: str | None) -> bytes:
    """The probable cause code (ProvsyncProbableCause: IANA's number) of ``label``."""
    return ber.integer(probable_cause_number(label or ""))


def _unsigned32(value: int, tag: int) -> bytes:
    # At most 5 content octets (a leading zero before a set top bit): a short length.
    size = value.bit_length() // 8 + 1
    return bytes((tag, size)) + value.to_bytes(size, "big")


def gauge(value: int) -> bytes:
    return _unsigned32(min(max(value, 0), 0xFFFFFFFF), ber.GAUGE32)


def unsigned(value: int) -> bytes:
    """Unsigned32 (the tag of Gauge32), clamped to its range."""
    return gauge(value)


def counter(value: int) -> bytes:
    return _unsigned32(value & 0xFFFFFFFF, ber.COUNTER32)


def enum(value: int) -> bytes:
    return ber.integer(value)


def severity(value: str) -> bytes:
    return ber.integer(int(Severity(value).itu))


# The OCTET STRING header (tag, length 11) and the 11 octets in one pack.
_DATE_AND_TIME = struct.Struct(">BBHBBBBBBcBB")


NEVER = ber.octets(bytes(8))
"""DateAndTime of something that never happened (unknown): '0000000000000000'H, the
convention of ENTITY-STATE-MIB (RFC 4268); a zero-length value is not a DateAndTime."""


def date_and_time(value: datetime | None) -> bytes:
    """SNMPv2-TC DateAndTime with its UTC offset (11 octets); :data:`NEVER` when unknown."""
    if value is None:
        return NEVER
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
        identifier(alarm_type.id),
        text(alarm_type.name),
        enum(KIND_NUMBER[alarm_type.kind]),
        severity(alarm_type.severity),
        enum(EVENT_TYPE_NUMBER[alarm_type.event_type]),
        text(alarm_type.probable_cause, SHORT_TEXT),
        text(alarm_type.description),
        text(alarm_type.clear_instructions),
        probable_cause(alarm_type.probable_cause),
    ]


@lru_cache(maxsize=4096)
def _by_type(type_id: str, alarm_type: AlarmType) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The cells an alarm's type decides, encoded once per type (not per alarm)."""
    return (
        identifier(type_id),
        text(alarm_type.name),
        enum(EVENT_TYPE_NUMBER[alarm_type.event_type]),
        text(alarm_type.probable_cause, SHORT_TEXT),
        probable_cause(alarm_type.probable_cause),
    )


_SEVERITY = {s.value: ber.integer(int(s.itu)) for s in Severity}
_OPERATOR_STATE = {name: enum(number) for name, number in OPERATOR_STATE_NUMBER.items()}
_NOTIFICATION_KIND = {kind: enum(number) for kind, number in NOTIFICATION_KIND_NUMBER.items()}


@lru_cache(maxsize=4096)
def _type_text(type_id: str) -> bytes:
    return identifier(type_id)


def active_alarm_row(row: Mapping[str, Any] | RowMapping, alarm_type: AlarmType) -> list[bytes]:
    type_ref, name, event_type, cause, cause_code = _by_type(row["type_id"], alarm_type)
    return [
        type_ref,
        name,
        text(row["resource"]),
        text(row["qualifier"]),
        _SEVERITY.get(row["severity"]) or severity(row["severity"]),
        event_type,
        cause,
        text(row["text"]),
        date_and_time(row["raised_at"]),
        date_and_time(row["changed_at"]),
        counter(row["count"]),  # provsyncAlarmCount: deprecated, the same value
        _OPERATOR_STATE.get(row["operator_state"]) or enum(1),
        text(row["ack_by"], ACK_BY),
        gauge(row["raise_seq"]),
        text(row["resolution"]),
        cause_code,
        unsigned(row["count"]),
    ]


SYNC_STATE_NUMBER = {"never": 1, "idle": 2, "running": 3, "failed": 4, "init-required": 5}


SHARING_STATE_NUMBER = {"notSharing": 1, "syncRequired": 2, "reconcileRequired": 3, "sharing": 4}


class ShownElement(Protocol):
    """What the element table shows of an element (agent.export.snmp.mibread.ElementRow)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def sync_state(self) -> str: ...
    @property
    def last_sync_at(self) -> datetime | None: ...


def element_row(row: ShownElement, sharing: str = "notSharing", errors: int = 0) -> list[bytes]:
    return [
        identifier(row.name),
        text(row.type, SHORT_TEXT),
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
