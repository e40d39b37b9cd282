"""What an SNMP notification carries, independent of the wire (BER fast path or pysnmp).

Varbind order (DESIGN.md): sysUpTime.0, snmpTrapOID.0, then provsyncNotifySequence,
alarm id (0 for events), type id, type name, resource, severity (ITU enum), event type,
probable cause, text, time (DateAndTime with UTC offset); changes and clears add the
sequence number of the raise. The heartbeat carries provsyncLastSequence,
provsyncActiveAlarms and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from agent.alarms.catalog import EventType
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.export.snmp import ber, values
from agent.export.snmp.oids import SNMP_TRAP_OID, SYS_UPTIME, MibOids


class Syntax(Enum):
    OCTETS = "octets"
    INTEGER = "integer"
    UNSIGNED = "unsigned"  # Unsigned32 / Gauge32
    TIMETICKS = "timeticks"
    OID = "oid"


@dataclass(frozen=True, slots=True)
class Var:
    oid: tuple[int, ...]
    syntax: Syntax
    value: bytes | int | tuple[int, ...]

    def ber(self) -> bytes:
        if self.syntax is Syntax.OCTETS:
            assert isinstance(self.value, bytes)
            body = ber.octets(self.value)
        elif self.syntax is Syntax.INTEGER:
            assert isinstance(self.value, int)
            body = ber.integer(self.value)
        elif self.syntax is Syntax.UNSIGNED:
            assert isinstance(self.value, int)
            body = ber.unsigned(self.value, ber.GAUGE32)
        elif self.syntax is Syntax.TIMETICKS:
            assert isinstance(self.value, int)
            body = ber.unsigned(self.value, ber.TIMETICKS)
        else:
            assert isinstance(self.value, tuple)
            body = ber.oid(self.value)
        return ber.tlv(ber.SEQUENCE, ber.oid(self.oid) + body)


TRAP_OF = {
    NotificationKind.ALARM_RAISED: "provsyncAlarmRaised",
    NotificationKind.ALARM_CLEARED: "provsyncAlarmCleared",
    NotificationKind.ALARM_CHANGED: "provsyncAlarmChanged",
    NotificationKind.EVENT: "provsyncEvent",
}
HEARTBEAT_TYPE = "heartbeat"


def kind_of(note: Notification) -> str:
    """The target filter name of a notification (``kinds`` in [[snmp.targets]])."""
    if note.kind is NotificationKind.EVENT and note.type_id == HEARTBEAT_TYPE:
        return "heartbeat"
    return note.kind.value


def _date_and_time(note: Notification) -> bytes:
    # values.date_and_time returns the TLV; the Var keeps only the content octets.
    tlv = values.date_and_time(note.at)
    _, start, _ = ber.header(tlv, 0)
    return tlv[start:]


def notification_vars(note: Notification, oids: MibOids, uptime: int) -> list[Var]:
    """sysUpTime.0, snmpTrapOID.0 and the objects of the notification, in order."""
    text = note.text.encode("utf-8")[: values.MAX_STRING]
    if kind_of(note) == "heartbeat":
        active = int(note.payload.get("details", {}).get("active_alarms", 0))
        return [
            Var(SYS_UPTIME, Syntax.TIMETICKS, uptime),
            Var(SNMP_TRAP_OID, Syntax.OID, oids["provsyncHeartbeat"]),
            Var(oids.instance("provsyncLastSequence"), Syntax.UNSIGNED, note.seq),
            Var(oids.instance("provsyncActiveAlarms"), Syntax.UNSIGNED, active),
            Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, _date_and_time(note)),
        ]
    event_type = EventType(note.payload.get("event_type", "other"))
    found: list[Var] = [
        Var(SYS_UPTIME, Syntax.TIMETICKS, uptime),
        Var(SNMP_TRAP_OID, Syntax.OID, oids[TRAP_OF[note.kind]]),
        Var(oids.instance("provsyncNotifySequence"), Syntax.UNSIGNED, note.seq),
        Var(oids.instance("provsyncNotifyAlarmId"), Syntax.UNSIGNED, note.alarm_id),
        Var(oids.instance("provsyncNotifyTypeId"), Syntax.OCTETS, note.type_id.encode()),
        Var(
            oids.instance("provsyncNotifyTypeName"),
            Syntax.OCTETS,
            str(note.payload.get("type_name", note.type_id)).encode("utf-8"),
        ),
        Var(oids.instance("provsyncNotifyResource"), Syntax.OCTETS, note.resource.encode("utf-8")),
        Var(oids.instance("provsyncNotifySeverity"), Syntax.INTEGER,
            int(Severity(note.severity).itu)),
        Var(oids.instance("provsyncNotifyEventType"), Syntax.INTEGER,
            values.EVENT_TYPE_NUMBER[event_type]),
        Var(oids.instance("provsyncNotifyProbableCause"), Syntax.OCTETS,
            str(note.payload.get("probable_cause", "")).encode()),
        Var(oids.instance("provsyncNotifyText"), Syntax.OCTETS, text),
        Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, _date_and_time(note)),
    ]  # fmt: skip
    if note.kind in (NotificationKind.ALARM_CLEARED, NotificationKind.ALARM_CHANGED):
        found.append(
            Var(oids.instance("provsyncNotifyRaiseSequence"), Syntax.UNSIGNED, note.raise_seq)
        )
    if note.kind in (NotificationKind.ALARM_RAISED, NotificationKind.ALARM_CHANGED):
        # What fixes it travels with the alarm, so an NMS shows it without polling the table.
        resolution = str(note.payload.get("resolution", "")).encode("utf-8")
        found.append(Var(oids.instance("provsyncNotifyResolution"), Syntax.OCTETS,
                         resolution[: values.MAX_STRING]))  # fmt: skip
    return found


def _varbind(oid_tlv: bytes, value_tlv: bytes) -> bytes:
    """One VarBind SEQUENCE from its encoded OID and value (what :meth:`Var.ber` gives)."""
    size = len(oid_tlv) + len(value_tlv)
    if size < 0x80:
        return bytes((ber.SEQUENCE, size)) + oid_tlv + value_tlv
    return bytes((ber.SEQUENCE,)) + ber.length(size) + oid_tlv + value_tlv


def _number_varbind(oid_tlv: bytes, tag: int, value: int) -> bytes:
    """``_varbind(oid_tlv, ber.unsigned(value, tag))`` in one step (the per-trap numbers)."""
    if value < 0:
        raise ber.BerError(f"unsigned value {value} is negative")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    size = len(oid_tlv) + 2 + len(body)
    if size < 0x80:
        return bytes((ber.SEQUENCE, size)) + oid_tlv + bytes((tag, len(body))) + body
    return _varbind(oid_tlv, ber.unsigned(value, tag))


def _text_varbind(oid_tlv: bytes, data: bytes) -> bytes:
    """``_varbind(oid_tlv, ber.octets(data))`` in one step when both lengths are short."""
    size = len(oid_tlv) + 2 + len(data)
    if size < 0x80:
        return bytes((ber.SEQUENCE, size)) + oid_tlv + bytes((ber.OCTET_STRING, len(data))) + data
    return _varbind(oid_tlv, ber.octets(data))


CACHE_LIMIT = 4096
"""Entries per cache of :class:`VarbindEncoder`: alarm types and their resolutions are
few (the catalog), but they come from each notification's payload, so the caches are
bounded whatever the log holds."""


class VarbindEncoder:
    """The BER VarBindList content of notifications, byte for byte what
    :func:`notification_vars` and :meth:`Var.ber` give, built as a few concatenations.

    Measured need (bench/snmp.py (b)): building the :class:`Var` objects and encoding
    them took 70-120 us per trap here (this takes 6-9 us), most of it on varbinds that
    are the same for every notification of a type. Encoded once: every OID, snmpTrapOID
    per kind, the severity varbind per severity, the type id / name and event type /
    probable cause varbinds per alarm type, the resolution per text, the last
    DateAndTime. Per notification only the sequence numbers, ids, uptime, resource and
    text are encoded.
    Heartbeats (one every interval) take :func:`notification_vars` as they are.
    """

    def __init__(self, oids: MibOids) -> None:
        self._oids = oids
        self._uptime_oid = ber.oid(SYS_UPTIME)
        self._trap_oid = {
            kind: _varbind(ber.oid(SNMP_TRAP_OID), ber.oid(oids[name]))
            for kind, name in TRAP_OF.items()
        }
        self._oid = {
            name: ber.oid(oids.instance(name))
            for name in (
                "provsyncNotifySequence", "provsyncNotifyAlarmId", "provsyncNotifyResource",
                "provsyncNotifyText", "provsyncNotifyTime", "provsyncNotifyRaiseSequence",
            )
        }  # fmt: skip
        self._severity_oid = ber.oid(oids.instance("provsyncNotifySeverity"))
        self._resolution_oid = ber.oid(oids.instance("provsyncNotifyResolution"))
        self._severity: dict[str, bytes] = {}
        # (type id, type name, event type, probable cause) -> (type id + type name
        # varbinds, event type + probable cause varbinds): they sit on either side of the
        # resource and severity.
        self._types: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
        self._resolutions: dict[str, bytes] = {}
        self._at: datetime | None = None
        self._at_varbind = b""

    def encode(self, note: Notification, uptime: int) -> bytes:
        """The concatenated VarBinds (the content of the VarBindList SEQUENCE).

        Raises:
            ValueError: what :func:`notification_vars` raises for the same notification
                (an unknown severity or event type, a negative number).
        """
        kind = note.kind
        if kind is NotificationKind.EVENT and note.type_id == HEARTBEAT_TYPE:
            return b"".join(v.ber() for v in notification_vars(note, self._oids, uptime))
        oid = self._oid
        payload = note.payload
        # As text in the key: 1 and True are one dict key but "1" and "True" on the wire.
        type_name = str(payload.get("type_name", note.type_id))
        event_type = payload.get("event_type", "other")
        cause = str(payload.get("probable_cause", ""))
        key = (note.type_id, type_name, event_type, cause)
        try:
            before, after = self._types[key]
        except KeyError:
            before, after = self._type_varbinds(note.type_id, type_name, event_type, cause)
            if len(self._types) >= CACHE_LIMIT:
                self._types.clear()
            self._types[key] = before, after
        except TypeError:  # a payload value that is not hashable: encode, do not keep
            before, after = self._type_varbinds(note.type_id, type_name, event_type, cause)
        severity = self._severity.get(note.severity)
        if severity is None:
            severity = self._severity_varbind(note.severity)
        at = note.at
        if at != self._at or self._at is None:
            self._at_varbind = _varbind(oid["provsyncNotifyTime"], ber.octets(_date_and_time(note)))
            self._at = at
        parts = [
            _number_varbind(self._uptime_oid, ber.TIMETICKS, uptime),
            self._trap_oid[kind],
            _number_varbind(oid["provsyncNotifySequence"], ber.GAUGE32, note.seq),
            _number_varbind(oid["provsyncNotifyAlarmId"], ber.GAUGE32, note.alarm_id),
            before,
            _text_varbind(oid["provsyncNotifyResource"], note.resource.encode("utf-8")),
            severity,
            after,
            _text_varbind(
                oid["provsyncNotifyText"], note.text.encode("utf-8")[: values.MAX_STRING]
            ),
            self._at_varbind,
        ]
        if kind is NotificationKind.ALARM_CLEARED or kind is NotificationKind.ALARM_CHANGED:
            parts.append(
                _number_varbind(oid["provsyncNotifyRaiseSequence"], ber.GAUGE32, note.raise_seq)
            )
        if kind is NotificationKind.ALARM_RAISED or kind is NotificationKind.ALARM_CHANGED:
            resolution = str(payload.get("resolution", ""))
            found = self._resolutions.get(resolution)
            parts.append(found if found is not None else self._resolution_varbind(resolution))
        return b"".join(parts)

    def _type_varbinds(
        self, type_id: str, type_name: str, event_type: Any, cause: str
    ) -> tuple[bytes, bytes]:
        instance = self._oids.instance
        number = values.EVENT_TYPE_NUMBER[EventType(event_type)]
        before = _varbind(
            ber.oid(instance("provsyncNotifyTypeId")), ber.octets(type_id.encode())
        ) + _varbind(
            ber.oid(instance("provsyncNotifyTypeName")), ber.octets(type_name.encode("utf-8"))
        )
        after = _varbind(
            ber.oid(instance("provsyncNotifyEventType")), ber.integer(number)
        ) + _varbind(ber.oid(instance("provsyncNotifyProbableCause")), ber.octets(cause.encode()))
        return before, after

    def _severity_varbind(self, severity: str) -> bytes:
        found = self._severity.get(severity)
        if found is None:
            found = _varbind(self._severity_oid, ber.integer(int(Severity(severity).itu)))
            self._severity[severity] = found  # a handful of names: Severity() refuses others
        return found

    def _resolution_varbind(self, resolution: str) -> bytes:
        found = self._resolutions.get(resolution)
        if found is None:
            data = resolution.encode("utf-8")[: values.MAX_STRING]
            found = _varbind(self._resolution_oid, ber.octets(data))
            if len(self._resolutions) >= CACHE_LIMIT:
                self._resolutions.clear()
            self._resolutions[resolution] = found
        return found


def v2c_message(community: bytes, pdu_tag: int, request_id: int, varbinds: Sequence[Var]) -> bytes:
    """An SNMPv2c Trap-PDU or InformRequest-PDU message."""
    pdu = ber.tlv(
        pdu_tag,
        ber.integer(request_id)
        + ber.integer(0)
        + ber.integer(0)
        + ber.tlv(ber.SEQUENCE, b"".join(v.ber() for v in varbinds)),
    )
    return ber.tlv(ber.SEQUENCE, ber.integer(1) + ber.octets(community) + pdu)


def response_request_id(data: bytes) -> int | None:
    """The request-id of an SNMPv2c Response-PDU, or None if ``data`` is not one."""
    try:
        _, start, _ = ber.header(data, 0)
        _, _, version_end = ber.header(data, start)
        _, _, community_end = ber.header(data, version_end)
        tag, pdu_start, _ = ber.header(data, community_end)
        if tag != ber.RESPONSE:
            return None
        _, id_start, id_end = ber.header(data, pdu_start)
        return ber.decode_int(data, id_start, id_end)
    except ber.BerError:
        return None
