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
from enum import Enum

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
