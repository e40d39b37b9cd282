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
    # Most values need no escaping; the membership tests are much cheaper than a rewrite.
    if '"' in value or "\\" in value or "]" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return value


def trend(note: Notification) -> str | None:
    """RFC 5674 trendIndication for a change of severity, from the payload's previous."""
    previous = note.payload.get("previous_severity")
    if not previous or previous == note.severity:
        return "noChange" if note.kind is NotificationKind.ALARM_CHANGED else None
    before, after = Severity(previous).rank, Severity(note.severity).rank
    if after > before:
        return "moreSevere"
    return "lessSevere"


class Formatter:
    """Turns notifications into RFC 5424 messages for one agent.

    The fields that do not change per message are prepared once: formatting is on the
    export hot path (bench/syslog.py).
    """

    def __init__(
        self,
        hostname: str,
        pen: int,
        procid: str,
        facility: int = FACILITIES["local0"],
        app_name: str = "provsync",
        max_size: int = 8192,
    ) -> None:
        self.hostname = hostname
        self.pen = pen
        self.procid = procid
        self.facility = facility
        self.app_name = app_name
        self.max_size = max_size
        self._fields = (
            f" {header_field(hostname, 255)} {header_field(app_name, 48)} "
            f"{header_field(procid, 128)} "
        )
        self._private = f"[provsync@{pen}"
        self._pri = {s.value: f"<{self.priority(s.value)}>1 " for s in Severity}
        self._last_time: tuple[object, str] = (None, "")

    def priority(self, severity: str) -> int:
        return self.facility * 8 + int(Severity(severity).syslog)

    def structured_data(self, note: Notification) -> str:
        payload = note.payload
        parts = [
            '[alarm resource="', sd_value(note.resource),
            '" probableCause="', sd_value(str(payload.get("probable_cause", "other"))),
            '" perceivedSeverity="', note.severity,
            '" eventType="', sd_value(str(payload.get("event_type", "other"))), '"',
        ]  # fmt: skip
        indication = trend(note)
        if indication:
            parts += [' trendIndication="', indication, '"']
        parts += [
            '][meta sequenceId="', str(note.seq), '"]',
            self._private, ' alarmId="', str(note.alarm_id),
            '" typeId="', sd_value(note.type_id),
            '" typeName="', sd_value(str(payload.get("type_name", note.type_id))),
            '" element="', sd_value(note.resource), '"',
        ]  # fmt: skip
        if note.qualifier:
            parts += [' qualifier="', sd_value(note.qualifier), '"']
        if note.raise_seq:
            parts += [' raiseSeq="', str(note.raise_seq), '"']
        if payload.get("resolution"):
            parts += [' link="', sd_value(str(payload["resolution"])), '"']
        if payload.get("operator_state") and note.alarm_id:
            parts += [' operatorState="', sd_value(str(payload["operator_state"])), '"']
        parts.append("]")
        return "".join(parts)

    def _timestamp(self, at: object) -> str:
        # A group commit gives many notifications the same time object.
        if self._last_time[0] is at:
            return self._last_time[1]
        assert hasattr(at, "isoformat")
        text: str = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        self._last_time = (at, text)
        return text

    def format(self, note: Notification) -> bytes:
        msgid = MSGID[note.kind]
        if note.kind is NotificationKind.EVENT and note.type_id == "heartbeat":
            msgid = "HEARTBEAT"
        head = (
            self._pri[note.severity] + self._timestamp(note.at) + self._fields + msgid + " "
            + self.structured_data(note)
        ).encode()  # fmt: skip
        return self.with_message(head, note.text)

    def with_message(self, head: bytes, text: str) -> bytes:
        message = text.encode()
        room = self.max_size - len(head) - 1 - len(BOM)
        if room <= 0:
            return head  # header and structured data are kept whole, MSG dropped
        if len(message) > room:
            message = message[:room].decode("utf-8", errors="ignore").encode()
        return head + b" " + BOM + message
