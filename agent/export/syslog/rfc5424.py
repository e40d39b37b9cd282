"""RFC 5424 messages for notifications, with the RFC 5674 ``alarm`` structured data.

::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
        [alarm ...][meta sequenceId=...][provsync@PEN ...] BOM MSG   (one line)

PRI = facility x 8 + the severity of RFC 5674 section 2 (agent.alarms.severity).
Header fields are cut to their RFC lengths and to printable US-ASCII; SD values escape
``"``, ``\\`` and ``]``; MSG is UTF-8 behind a BOM.

Only alarm notifications (raised, changed, cleared) carry ``[alarm ...]``: RFC 5674
section 3 defines it for alarms, and its consumers keep every message that has one as
an alarm state until a ``cleared`` one for the same resource arrives. An event or a
heartbeat carries what it needs in the private element instead.

A message longer than its collector's limit loses the end of its MSG (on a character
boundary). If the header and structured data alone do not fit, the private element
drops ``link`` and ``typeName`` (both in the catalog); if it still does not fit,
:class:`Oversized` is raised and the message is not sent.
"""

from __future__ import annotations

from agent.alarms.catalog import EventType
from agent.alarms.probable_cause import PROBABLE_CAUSES
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.errors import Oversized

# Re-exported while agent/app.py still imports the table from here.
from agent.syslog_facilities import FACILITIES

MSGID = {
    NotificationKind.ALARM_RAISED: "ALARM-RAISED",
    NotificationKind.ALARM_CHANGED: "ALARM-CHANGED",
    NotificationKind.ALARM_CLEARED: "ALARM-CLEARED",
    NotificationKind.EVENT: "EVENT",
}
ALARM_KINDS = frozenset(
    {NotificationKind.ALARM_RAISED, NotificationKind.ALARM_CHANGED, NotificationKind.ALARM_CLEARED}
)
EVENT_TYPES = frozenset(e.value for e in EventType)
BOM = b"\xef\xbb\xbf"
NIL = "-"
SEQUENCE_ID_MAX = 2_147_483_647
"""RFC 5424 section 7.3.1: sequenceId runs from 1 to 2147483647, then starts at 1 again."""


def sequence_id(seq: int) -> int:
    return (seq - 1) % SEQUENCE_ID_MAX + 1


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


def _cut(value: str, limit: int | None) -> str:
    """``value`` at most ``limit`` characters, the last one "…" when it was longer."""
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "\u2026"


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
        udp_max_size: int = 2048,
    ) -> None:
        self.hostname = hostname
        self.pen = pen
        self.procid = procid
        self.facility = facility
        self.app_name = app_name
        self.max_size = max_size
        """Limit of a message to a stream collector (TCP, TLS, RELP), and the default."""
        self.udp_max_size = udp_max_size
        """Limit of a message to a UDP collector (RFC 5426 section 3.2)."""
        self._fields = (
            f" {header_field(hostname, 255)} {header_field(app_name, 48)} "
            f"{header_field(procid, 128)} "
        )
        self._private = f"[provsync@{pen}"
        self._pri = {s.value: f"<{self.priority(s.value)}>1 " for s in Severity}
        self._last_time: tuple[object, str] = (None, "")

    def priority(self, severity: str) -> int:
        return self.facility * 8 + int(Severity(severity).syslog)

    def structured_data(
        self, note: Notification, *, whole: bool = True, cut: int | None = None
    ) -> str:
        """``[alarm ...]`` (alarms only), ``[meta ...]`` and the private element;
        ``whole=False``: the private element without ``link`` and ``typeName``;
        ``cut``: the resource and the qualifier at most that many characters (the
        last one "…")."""
        # f-strings rather than a list of parts: this runs for every message sent.
        payload = note.payload
        cause = payload.get("probable_cause", "other")
        event_type = payload.get("event_type", "other")
        # Labels outside the registries (a notification logged before the config checked
        # them) become "other": RFC 5674 3.2 and 3.4 allow IANA labels only.
        if cause not in PROBABLE_CAUSES:
            cause = "other"
        if event_type not in EVENT_TYPES:
            event_type = "other"
        resource = sd_value(_cut(note.resource, cut))
        seq = note.seq
        if seq > SEQUENCE_ID_MAX:
            sd = f'[meta sequenceId="{sequence_id(seq)}"]{self._private} seq="{seq}"'
        else:
            sd = f'[meta sequenceId="{seq}"]{self._private}'
        alarm = note.kind in ALARM_KINDS
        if alarm:
            indication = trend(note)
            sd = (
                f'[alarm resource="{resource}" probableCause="{cause}" '
                f'perceivedSeverity="{note.severity}" eventType="{event_type}"'
                + (f' trendIndication="{indication}"]' if indication else "]")
                + sd
                + f' alarmId="{note.alarm_id}" typeId="{sd_value(note.type_id)}"'
            )
        else:
            sd += f' typeId="{sd_value(note.type_id)}"'
        if whole:
            sd += f' typeName="{sd_value(str(payload.get("type_name", note.type_id)))}"'
        sd += f' element="{resource}"'
        if not alarm:
            # An event has no alarm element: its X.733 fields and severity live here.
            sd += f' eventType="{event_type}" probableCause="{cause}" severity="{note.severity}"'
        if note.qualifier:
            sd += f' qualifier="{sd_value(_cut(note.qualifier, cut))}"'
        if note.raise_seq:
            sd += f' raiseSeq="{note.raise_seq}"'
        if alarm:
            resolution = payload.get("resolution")
            if whole and resolution:
                sd += f' link="{sd_value(str(resolution))}"'
            operator_state = payload.get("operator_state")
            if operator_state:
                sd += f' operatorState="{sd_value(str(operator_state))}"'
        return sd + "]"

    def _timestamp(self, at: object) -> str:
        # A group commit gives many notifications the same time object.
        if self._last_time[0] is at:
            return self._last_time[1]
        assert hasattr(at, "isoformat")
        text: str = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        self._last_time = (at, text)
        return text

    def format(self, note: Notification, max_size: int | None = None) -> bytes:
        """The message, at most ``max_size`` octets (default: the formatter's).

        Raises:
            Oversized: the header and structured data alone do not fit.
        """
        limit = max_size or self.max_size
        msgid = MSGID[note.kind]
        if msgid == "EVENT" and note.type_id == "heartbeat":
            msgid = "HEARTBEAT"
        start = f"{self._pri[note.severity]}{self._timestamp(note.at)}{self._fields}{msgid} "
        head = (start + self.structured_data(note)).encode()
        # Past the limit: drop what the catalog has (link, typeName), then shorten the
        # resource and qualifier (a hostile or long name must not keep its alarms off a
        # collector); only a header that cannot fit at all skips the message.
        for cut in (None, 64, 16):
            if len(head) <= limit:
                break
            head = (start + self.structured_data(note, whole=False, cut=cut)).encode()
        else:
            if len(head) > limit:
                raise Oversized(
                    f"notification {note.seq}: header and structured data take {len(head)} "
                    f"octets, more than the limit of {limit}"
                )
        return self.with_message(head, note.text, limit)

    def with_message(self, head: bytes, text: str, limit: int | None = None) -> bytes:
        message = text.encode()
        room = (limit or self.max_size) - len(head) - 1 - len(BOM)
        if not message or room <= 0:
            return head  # MSG is optional (RFC 5424 section 6); header and SD stay whole
        if len(message) > room:
            message = message[:room].decode("utf-8", errors="ignore").encode()
        return head + b" " + BOM + message
