"""What an SNMP notification carries, independent of the wire (BER fast path or pysnmp).

Varbind order (docs/snmp.md): sysUpTime.0, snmpTrapOID.0, then provsyncNotifySequence,
alarm id (0 for events), type id, type name, resource, severity (ITU enum), event type,
probable cause, text, time (DateAndTime with UTC offset); changes and clears add the
sequence number of the raise, raises and changes the resolution: the OBJECTS clause of
each NOTIFICATION-TYPE, in its order. After those come the variables PROVSYNC-MIB's
revision 202612020000Z added, appended (RFC 3416 section 4.2.6 lets the originator add
variables after the OBJECTS ones) so that receivers mapping varbinds by position keep
working: the qualifier and the probable cause code, then on raises and changes the
operator state and who acknowledged. The heartbeat carries provsyncLastSequence,
provsyncActiveAlarms and the time.

Texts are cut to their object's SIZE as the SNMP view's cells are (values.fit). The
trap path encodes the same varbinds faster (agent.export.snmp.varbinds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent.alarms.catalog import EventType
from agent.alarms.probable_cause import probable_cause_number
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.export.kinds import kind_of
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


def date_and_time_octets(note: Notification) -> bytes:
    """The content octets of the notification's DateAndTime (values.date_and_time gives
    the TLV)."""
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
            Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, date_and_time_octets(note)),
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
        Var(oids.instance("provsyncNotifyTime"), Syntax.OCTETS, date_and_time_octets(note)),
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
