"""What an SNMP notification carries, independent of the wire (BER fast path or pysnmp).

Varbind order (DESIGN.md): sysUpTime.0, snmpTrapOID.0, then provsyncNotifySequence,
alarm id (0 for events), type id, type name, resource, severity (ITU enum), event type,
probable cause, text, time (DateAndTime with UTC offset); changes and clears add the
sequence number of the raise, raises and changes the resolution: the OBJECTS clause of
each NOTIFICATION-TYPE, in its order. After those come the variables PROVSYNC-MIB's
revision 202612020000Z added, appended (RFC 3416 section 4.2.6 lets the originator add
variables after the OBJECTS ones) so that receivers mapping varbinds by position keep
working: the qualifier and the probable cause code, then on raises and changes the
operator state and who acknowledged. The heartbeat carries provsyncLastSequence,
provsyncActiveAlarms and the time.

Texts are cut to their object's SIZE as the SNMP view's cells are (values.fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from agent.alarms.catalog import EventType
from agent.alarms.probable_cause import probable_cause_number
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.export.kinds import HEARTBEAT_TYPE, kind_of
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


def _date_and_time(note: Notification) -> bytes:
    # values.date_and_time returns the TLV; the Var keeps only the content octets.
    tlv = values.date_and_time(note.at)
    _, start, _ = ber.header(tlv, 0)
    return tlv[start:]


def operator_state(payload: dict[str, Any]) -> int:
    """ProvsyncOperatorState of the alarm after the change (none(1) when not said)."""
    return values.OPERATOR_STATE_NUMBER.get(str(payload.get("operator_state", "none")), 1)


def ack_by(payload: dict[str, Any]) -> str:
    """Who acknowledged the alarm, if the notification says: its ``ack_by``, or the
    ``operator`` of the acknowledgement itself; empty for an alarm not acknowledged."""
    if str(payload.get("operator_state", "none")) != "acknowledged":
        return ""
    by = payload.get("ack_by")
    if by is None and payload.get("change") == "acknowledged":
        by = payload.get("operator")
    return "" if by is None else str(by)


def notification_vars(note: Notification, oids: MibOids, uptime: int) -> list[Var]:
    """sysUpTime.0, snmpTrapOID.0 and the objects of the notification, in order."""
    if kind_of(note) == "heartbeat":
        active = int(note.payload.get("details", {}).get("active_alarms", 0))
        return [
            Var(SYS_UPTIME, Syntax.TIMETICKS, uptime),
            Var(SNMP_TRAP_OID, Syntax.OID, oids["provsyncHeartbeat"]),
            Var(oids.instance("provsyncLastSequence"), Syntax.UNSIGNED, note.seq),
            Var(oids.instance("provsyncActiveAlarms"), Syntax.UNSIGNED, active),
            Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, _date_and_time(note)),
        ]
    payload = note.payload
    event_type = EventType(payload.get("event_type", "other"))
    cause = str(payload.get("probable_cause", ""))
    found: list[Var] = [
        Var(SYS_UPTIME, Syntax.TIMETICKS, uptime),
        Var(SNMP_TRAP_OID, Syntax.OID, oids[TRAP_OF[note.kind]]),
        Var(oids.instance("provsyncNotifySequence"), Syntax.UNSIGNED, note.seq),
        Var(oids.instance("provsyncNotifyAlarmId"), Syntax.UNSIGNED, note.alarm_id),
        Var(
            oids.instance("provsyncNotifyTypeId"),
            Syntax.OCTETS,
            values.identifier_octets(note.type_id),
        ),
        Var(
            oids.instance("provsyncNotifyTypeName"),
            Syntax.OCTETS,
            values.octets(str(payload.get("type_name", note.type_id))),
        ),
        Var(oids.instance("provsyncNotifyResource"), Syntax.OCTETS, values.octets(note.resource)),
        Var(
            oids.instance("provsyncNotifySeverity"),
            Syntax.INTEGER,
            int(Severity(note.severity).itu),
        ),
        Var(
            oids.instance("provsyncNotifyEventType"),
            Syntax.INTEGER,
            values.EVENT_TYPE_NUMBER[event_type],
        ),
        Var(
            oids.instance("provsyncNotifyProbableCause"),
            Syntax.OCTETS,
            values.octets(cause, values.SHORT_TEXT),
        ),
        Var(oids.instance("provsyncNotifyText"), Syntax.OCTETS, values.octets(note.text)),
        Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, _date_and_time(note)),
    ]
    if note.kind in (NotificationKind.ALARM_CLEARED, NotificationKind.ALARM_CHANGED):
        found.append(
            Var(oids.instance("provsyncNotifyRaiseSequence"), Syntax.UNSIGNED, note.raise_seq)
        )
    raised_or_changed = note.kind in (NotificationKind.ALARM_RAISED, NotificationKind.ALARM_CHANGED)
    if raised_or_changed:
        # What fixes it travels with the alarm, so an NMS shows it without polling the table.
        resolution = values.octets(str(payload.get("resolution", "")))
        found.append(Var(oids.instance("provsyncNotifyResolution"), Syntax.OCTETS, resolution))
    # Beyond the OBJECTS clause, appended (module docstring).
    found += [
        Var(oids.instance("provsyncNotifyQualifier"), Syntax.OCTETS, values.octets(note.qualifier)),
        Var(
            oids.instance("provsyncNotifyProbableCauseCode"),
            Syntax.INTEGER,
            probable_cause_number(cause),
        ),
    ]
    if raised_or_changed:
        found += [
            Var(
                oids.instance("provsyncNotifyOperatorState"),
                Syntax.INTEGER,
                operator_state(payload),
            ),
            Var(
                oids.instance("provsyncNotifyAckBy"),
                Syntax.OCTETS,
                values.octets(ack_by(payload), values.ACK_BY),
            ),
        ]
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
    probable cause varbinds (label and code) per alarm type, the resolution per text,
    the operator state per state, an empty qualifier and ack-by, the last DateAndTime.
    Per notification only the sequence numbers, ids, uptime, resource, text and a
    non-empty qualifier or ack-by are encoded.
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
                "provsyncNotifySequence",
                "provsyncNotifyAlarmId",
                "provsyncNotifyResource",
                "provsyncNotifyText",
                "provsyncNotifyTime",
                "provsyncNotifyRaiseSequence",
                "provsyncNotifyQualifier",
                "provsyncNotifyAckBy",
            )
        }
        self._no_qualifier = _varbind(self._oid["provsyncNotifyQualifier"], ber.octets(b""))
        self._no_ack_by = _varbind(self._oid["provsyncNotifyAckBy"], ber.octets(b""))
        state_oid = ber.oid(oids.instance("provsyncNotifyOperatorState"))
        self._states = {
            number: _varbind(state_oid, ber.integer(number))
            for number in values.OPERATOR_STATE_NUMBER.values()
        }
        self._severity_oid = ber.oid(oids.instance("provsyncNotifySeverity"))
        self._resolution_oid = ber.oid(oids.instance("provsyncNotifyResolution"))
        self._severity: dict[str, bytes] = {}
        # (type id, type name, event type, probable cause) -> (type id + type name
        # varbinds, event type + probable cause varbinds, probable cause code varbind):
        # they sit on either side of the resource and severity, and after the OBJECTS.
        self._types: dict[tuple[Any, ...], tuple[bytes, bytes, bytes]] = {}
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
            before, after, code = self._types[key]
        except KeyError:
            before, after, code = self._type_varbinds(note.type_id, type_name, event_type, cause)
            if len(self._types) >= CACHE_LIMIT:
                self._types.clear()
            self._types[key] = before, after, code
        except TypeError:  # a payload value that is not hashable: encode, do not keep
            before, after, code = self._type_varbinds(note.type_id, type_name, event_type, cause)
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
            _text_varbind(oid["provsyncNotifyResource"], values.octets(note.resource)),
            severity,
            after,
            _text_varbind(oid["provsyncNotifyText"], values.octets(note.text)),
            self._at_varbind,
        ]
        if kind is NotificationKind.ALARM_CLEARED or kind is NotificationKind.ALARM_CHANGED:
            parts.append(
                _number_varbind(oid["provsyncNotifyRaiseSequence"], ber.GAUGE32, note.raise_seq)
            )
        raised_or_changed = (
            kind is NotificationKind.ALARM_RAISED or kind is NotificationKind.ALARM_CHANGED
        )
        if raised_or_changed:
            resolution = str(payload.get("resolution", ""))
            found = self._resolutions.get(resolution)
            parts.append(found if found is not None else self._resolution_varbind(resolution))
        # Beyond the OBJECTS clause, appended in notification_vars' order.
        qualifier = note.qualifier
        parts.append(
            _text_varbind(oid["provsyncNotifyQualifier"], values.octets(qualifier))
            if qualifier
            else self._no_qualifier
        )
        parts.append(code)
        if raised_or_changed:
            parts.append(self._states[operator_state(payload)])
            by = ack_by(payload)
            parts.append(
                _text_varbind(oid["provsyncNotifyAckBy"], values.octets(by, values.ACK_BY))
                if by
                else self._no_ack_by
            )
        return b"".join(parts)

    def _type_varbinds(
        self, type_id: str, type_name: str, event_type: Any, cause: str
    ) -> tuple[bytes, bytes, bytes]:
        instance = self._oids.instance
        number = values.EVENT_TYPE_NUMBER[EventType(event_type)]
        before = _varbind(
            ber.oid(instance("provsyncNotifyTypeId")),
            ber.octets(values.identifier_octets(type_id)),
        ) + _varbind(
            ber.oid(instance("provsyncNotifyTypeName")), ber.octets(values.octets(type_name))
        )
        after = _varbind(
            ber.oid(instance("provsyncNotifyEventType")), ber.integer(number)
        ) + _varbind(
            ber.oid(instance("provsyncNotifyProbableCause")),
            ber.octets(values.octets(cause, values.SHORT_TEXT)),
        )
        code = _varbind(
            ber.oid(instance("provsyncNotifyProbableCauseCode")),
            ber.integer(probable_cause_number(cause)),
        )
        return before, after, code

    def _severity_varbind(self, severity: str) -> bytes:
        found = self._severity.get(severity)
        if found is None:
            found = _varbind(self._severity_oid, ber.integer(int(Severity(severity).itu)))
            self._severity[severity] = found  # a handful of names: Severity() refuses others
        return found

    def _resolution_varbind(self, resolution: str) -> bytes:
        found = self._resolutions.get(resolution)
        if found is None:
            found = _varbind(self._resolution_oid, ber.octets(values.octets(resolution)))
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
