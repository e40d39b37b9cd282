"""The BER varbinds of notifications, encoded fast: byte for byte what
agent.export.snmp.notify's :func:`notification_vars` and :meth:`Var.ber` give.

The trap path encodes every notification it sends (agent.export.snmp.trap_path), so what
does not change between notifications is encoded once and kept (bounded caches).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.alarms.catalog import EventType
from agent.alarms.probable_cause import probable_cause_number
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.export.kinds import HEARTBEAT_TYPE
from agent.export.snmp import ber, values
from agent.export.snmp.notify import (
    TRAP_OF,
    ack_by,
    date_and_time_octets,
    notification_vars,
    operator_state,
)
from agent.export.snmp.oids import SNMP_TRAP_OID, SYS_UPTIME, MibOids


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
            self._at_varbind = _varbind(
                oid["provsyncNotifyTime"], ber.octets(date_and_time_octets(note))
            )
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
