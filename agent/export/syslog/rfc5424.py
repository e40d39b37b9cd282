"""RFC 5424 messages for notifications, with the RFC 5674 ``alarm`` structured data.

::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
        [alarm ...][meta sequenceId=...][provsync@PEN ...] BOM MSG   (one line)

PRI = facility x 8 + the severity of RFC 5674 section 2 (agent.alarms.severity).
Header fields are cut to their RFC lengths and to printable US-ASCII; SD values escape
``"``, ``\\`` and ``]``; MSG is UTF-8 behind a BOM. A message longer than the configured
maximum loses the end of its MSG (on a character boundary), never its header or
structured data.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13,
    "alert": 14, "clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
MSGID = {
    NotificationKind.ALARM_RAISED: "ALARM-RAISED",
    NotificationKind.ALARM_CHANGED: "ALARM-CHANGED",
    NotificationKind.ALARM_CLEARED: "ALARM-CLEARED",
    NotificationKind.EVENT: "EVENT",
}
BOM = b"\xef\xbb\xbf"
NIL = "-"


def header_field(value: str, limit: int) -> str:
    """PRINTUSASCII (33-126), at most ``limit`` characters, NILVALUE when empty."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or NIL


def sd_name(value: str) -> str:
    """SD-NAME: printable US-ASCII except ``=``, space, ``]`` and ``"``; 1-32 chars."""
    return "".join(c for c in value if 33 <= ord(c) <= 126 and c not in '= ]"')[:32]


def sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def sd_element(sd_id: str, params: list[tuple[str, str]]) -> str:
    body = "".join(f' {name}="{sd_value(value)}"' for name, value in params)
    return f"[{sd_id}{body}]"


def trend(note: Notification) -> str | None:
    """RFC 5674 trendIndication for a change of severity, from the payload's previous."""
    previous = note.payload.get("previous_severity")
    if not previous or previous == note.severity:
        return "noChange" if note.kind is NotificationKind.ALARM_CHANGED else None
    before, after = Severity(previous).rank, Severity(note.severity).rank
    if after > before:
        return "moreSevere"
    return "lessSevere"


@dataclass(frozen=True)
class Formatter:
    """Turns notifications into RFC 5424 messages for one agent."""

    hostname: str
    pen: int
    procid: str
    facility: int = FACILITIES["local0"]
    app_name: str = "provsync"
    max_size: int = 8192

    def priority(self, severity: str) -> int:
        return self.facility * 8 + int(Severity(severity).syslog)

    def structured_data(self, note: Notification) -> str:
        payload = note.payload
        alarm = [
            ("resource", note.resource),
            ("probableCause", str(payload.get("probable_cause", "other"))),
            ("perceivedSeverity", note.severity),
            ("eventType", str(payload.get("event_type", "other"))),
        ]
        indication = trend(note)
        if indication:
            alarm.append(("trendIndication", indication))
        private = [
            ("alarmId", str(note.alarm_id)),
            ("typeId", note.type_id),
            ("typeName", str(payload.get("type_name", note.type_id))),
        ]
        if note.qualifier:
            private.append(("qualifier", note.qualifier))
        if note.raise_seq:
            private.append(("raiseSeq", str(note.raise_seq)))
        if payload.get("resolution"):
            private.append(("link", str(payload["resolution"])))
        if payload.get("operator_state") and note.alarm_id:
            private.append(("operatorState", str(payload["operator_state"])))
        return (
            sd_element("alarm", alarm)
            + sd_element("meta", [("sequenceId", str(note.seq))])
            + sd_element(f"provsync@{self.pen}", private)
        )

    def format(self, note: Notification) -> bytes:
        timestamp = note.at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        msgid = MSGID[note.kind]
        if note.kind is NotificationKind.EVENT and note.type_id == "heartbeat":
            msgid = "HEARTBEAT"
        head = (
            f"<{self.priority(note.severity)}>1 {timestamp} {header_field(self.hostname, 255)} "
            f"{header_field(self.app_name, 48)} {header_field(self.procid, 128)} "
            f"{header_field(msgid, 32)} {self.structured_data(note)}"
        ).encode()
        return self.with_message(head, note.text)

    def with_message(self, head: bytes, text: str) -> bytes:
        message = text.encode("utf-8")
        room = self.max_size - len(head) - 1 - len(BOM)
        if room <= 0:
            return head  # header and structured data are kept whole, MSG dropped
        if len(message) > room:
            message = message[:room].decode("utf-8", errors="ignore").encode("utf-8")
        return head + b" " + BOM + message
