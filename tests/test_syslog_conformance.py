"""Every message a real rsyslogd received, as received, checked against the RFCs.

The agent raises, changes, acknowledges and clears alarms and emits events (hostile texts
included) and heartbeats, to rsyslogd over UDP, TCP, TLS and RELP. Each raw message
(``%rawmsg%``, control characters kept) must parse with the strict RFC 5424 parser
below (the ABNF of section 6 and the rules of sections 6.2.3, 6.3 and 7.3.1), follow
RFC 5674's rules for the ``alarm`` element (on alarm notifications only), and fit the
message limit of its transport. Any violation fails the test with the message.

The parser is written here, from the RFCs, apart from the agent's formatter: it must not
share the formatter's mistakes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.alarms.probable_cause import PROBABLE_CAUSES
from tests.conftest import AgentProcess
from tests.rsyslog import Rsyslog


class Violation(AssertionError):
    pass


# ------------------------------------------------------------------ RFC 5424 parser
BOM = b"\xef\xbb\xbf"
SP = 0x20
# Section 6: header field lengths.
HEADER_LIMITS = (("HOSTNAME", 255), ("APP-NAME", 48), ("PROCID", 128), ("MSGID", 32))
TIMESTAMP = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-](\d{2}):(\d{2}))"
)
# Section 7 (and RFC 5674 section 3): the SD-IDs without "@" that IANA registered.
REGISTERED_SD_IDS = {
    "timeQuality": {"tzKnown", "isSynced", "syncAccuracy"},
    "origin": {"ip", "enterpriseId", "software", "swVersion"},
    "meta": {"sequenceId", "sysUpTime", "language"},
    "alarm": {
        "resource",
        "probableCause",
        "perceivedSeverity",
        "eventType",
        "trendIndication",
        "resourceURI",
    },
}


@dataclass
class Message:
    raw: bytes
    prival: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    sd_order: list[str] = field(default_factory=list)
    msg: str | None = None

    @property
    def severity(self) -> int:
        return self.prival % 8

    def params(self, sd_id: str) -> dict[str, str]:
        return dict(self.sd.get(sd_id, []))


def _printusascii(value: bytes) -> bool:
    return all(33 <= b <= 126 for b in value)


def _sd_name(data: bytes, pos: int, what: str) -> tuple[str, int]:
    """SD-NAME = 1*32PRINTUSASCII except '=', SP, ']', '"'."""
    start = pos
    while pos < len(data) and 33 <= data[pos] <= 126 and data[pos] not in b'= ]"':
        pos += 1
    name = data[start:pos]
    if not 1 <= len(name) <= 32:
        raise Violation(f"{what} {name!r}: SD-NAME must be 1-32 characters (section 6.3.3)")
    return name.decode("ascii"), pos


def _param_value(data: bytes, pos: int) -> tuple[str, int]:
    """PARAM-VALUE up to its closing '"': '"', '\\' and ']' MUST be escaped (6.3.3)."""
    value = bytearray()
    while True:
        if pos >= len(data):
            raise Violation("PARAM-VALUE not closed by '\"'")
        octet = data[pos]
        if octet == 0x5C:  # backslash
            if pos + 1 >= len(data) or data[pos + 1] not in b'"\\]':
                raise Violation(
                    f"unescaped '\\' in PARAM-VALUE at octet {pos} (section 6.3.3: it MUST be)"
                )
            value.append(data[pos + 1])
            pos += 2
        elif octet == 0x22:
            break
        elif octet == 0x5D:
            raise Violation(f"unescaped ']' in PARAM-VALUE at octet {pos} (section 6.3.3)")
        else:
            value.append(octet)
            pos += 1
    try:
        return bytes(value).decode("utf-8"), pos + 1
    except UnicodeDecodeError as exc:
        raise Violation(f"PARAM-VALUE is not UTF-8 (section 6.3.3): {exc}") from None


def _timestamp(token: bytes) -> None:
    if token == b"-":
        return
    match = TIMESTAMP.fullmatch(token)
    if not match:
        raise Violation(f"TIMESTAMP {token!r} is not FULL-DATE 'T' FULL-TIME (section 6.2.3)")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if second > 59:
        raise Violation(f"TIMESTAMP {token!r}: leap seconds MUST NOT be used (6.2.3)")
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise Violation(f"TIMESTAMP {token!r}: {exc} (section 6.2.3)") from None
    if match.group(9) is not None:
        offset_h, offset_m = int(match.group(9)), int(match.group(10))
        if offset_h > 23 or offset_m > 59:
            raise Violation(f"TIMESTAMP {token!r}: TIME-OFFSET out of range (6.2.3)")


def parse(raw: bytes) -> Message:
    """A strict RFC 5424 parser (section 6's ABNF, MSG as MSG-UTF8); raises Violation."""
    match = re.match(rb"<(\d{1,3})>(\d{1,3}) ", raw)
    if not match:
        raise Violation("no PRI VERSION SP at the start (section 6.2)")
    prival_text, version = match.groups()
    # PRIVAL 0-191 (6.2.1); no leading zeros either (RFC 3164 4.1.1 spells that out):
    # one value, one spelling.
    if int(prival_text) > 191 or (len(prival_text) > 1 and prival_text.startswith(b"0")):
        raise Violation(f"PRIVAL {prival_text!r} is not 0-191 without leading zeros")
    if version != b"1":
        raise Violation(f"VERSION {version!r} is not 1 (section 6.2.2)")
    pos = match.end()
    tokens = []
    for _ in range(5):  # TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by SP
        end = raw.find(b" ", pos)
        if end < 0:
            raise Violation("header ends early (section 6)")
        tokens.append(raw[pos:end])
        pos = end + 1
    _timestamp(tokens[0])
    for (name, limit), token in zip(HEADER_LIMITS, tokens[1:], strict=True):
        if token != b"-" and not (1 <= len(token) <= limit and _printusascii(token)):
            raise Violation(f"{name} {token!r}: NILVALUE or 1-{limit} PRINTUSASCII (section 6)")
    message = Message(
        raw,
        int(prival_text),
        tokens[0].decode(),
        *(t.decode("ascii") for t in tokens[1:]),
    )
    # STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
    if raw[pos : pos + 1] == b"-":
        pos += 1
    elif raw[pos : pos + 1] == b"[":
        while raw[pos : pos + 1] == b"[":
            sd_id, pos = _sd_name(raw, pos + 1, "SD-ID")
            if sd_id in message.sd:
                raise Violation(f"SD-ID {sd_id} twice in one message (section 6.3.2)")
            if "@" in sd_id:
                if not re.fullmatch(r"[^@]+@[1-9][0-9]*", sd_id):
                    raise Violation(f"SD-ID {sd_id}: name@<private enterprise number> (7.2.2)")
            elif sd_id not in REGISTERED_SD_IDS:
                raise Violation(f"SD-ID {sd_id} has no '@' and is not IANA-registered (6.3.2)")
            params: list[tuple[str, str]] = []
            while raw[pos : pos + 1] == b" ":
                name, pos = _sd_name(raw, pos + 1, "PARAM-NAME")
                if raw[pos : pos + 2] != b'="':
                    raise Violation(f"{sd_id} {name}: expected '=\"' (section 6.3.3)")
                value, pos = _param_value(raw, pos + 2)
                params.append((name, value))
            if raw[pos : pos + 1] != b"]":
                raise Violation(f"SD-ELEMENT {sd_id} not closed by ']' at octet {pos} (6.3.1)")
            pos += 1
            if sd_id in REGISTERED_SD_IDS:
                unknown = {n for n, _ in params} - REGISTERED_SD_IDS[sd_id]
                if unknown:
                    raise Violation(f"SD-ID {sd_id}: unregistered PARAM-NAMEs {sorted(unknown)}")
            message.sd[sd_id] = params
            message.sd_order.append(sd_id)
    else:
        raise Violation(f"STRUCTURED-DATA at octet {pos}: neither '-' nor '[' (section 6.3)")
    if pos == len(raw):
        return message
    if raw[pos] != SP:
        raise Violation(f"octet {pos} after STRUCTURED-DATA is not SP (section 6)")
    body = raw[pos + 1 :]
    # MSG-UTF8 = BOM UTF-8-STRING (6.4); the agent promises UTF-8, so MSG-ANY is a failure.
    if not body.startswith(BOM):
        raise Violation("MSG does not start with the BOM (section 6.4)")
    try:
        message.msg = body[len(BOM) :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Violation(f"MSG after the BOM is not valid UTF-8 (RFC 3629): {exc}") from None
    meta = message.params("meta")
    if "sequenceId" in meta:
        seq = meta["sequenceId"]
        if not re.fullmatch(r"[1-9][0-9]{0,9}", seq) or int(seq) > 2_147_483_647:
            raise Violation(f"meta sequenceId {seq!r} is not 1-2147483647 (section 7.3.1)")
    return message


# ------------------------------------------------------------------ RFC 5674 rules
ALARM_MSGIDS = {"ALARM-RAISED", "ALARM-CHANGED", "ALARM-CLEARED"}
PERCEIVED = {"cleared", "indeterminate", "critical", "major", "minor", "warning"}
# RFC 5674 section 2: ITU perceived severity -> syslog severity.
SYSLOG_SEVERITY = {
    "critical": 1,
    "major": 2,
    "minor": 3,
    "warning": 4,
    "indeterminate": 5,
    "cleared": 5,
}
EVENT_TYPES = {
    "other",
    "communicationsAlarm",
    "qualityOfServiceAlarm",
    "processingErrorAlarm",
    "equipmentAlarm",
    "environmentalAlarm",
    "integrityViolation",
    "operationalViolation",
    "physicalViolation",
    "securityServiceOrMechanismViolation",
    "timeDomainViolation",
}
TRENDS = {"moreSevere", "noChange", "lessSevere"}


def check_rfc5674(message: Message) -> None:
    alarm_params = message.sd.get("alarm")
    if message.msgid not in ALARM_MSGIDS:
        # Events and heartbeats: an alarm element would be an alarm state for ever.
        if alarm_params is not None:
            raise Violation(f"MSGID {message.msgid} carries an alarm element (RFC 5674 3)")
        return
    if alarm_params is None:
        raise Violation(f"MSGID {message.msgid} has no alarm element")
    names = [n for n, _ in alarm_params]
    if len(set(names)) != len(names):
        raise Violation(f"alarm element repeats a parameter: {names}")
    params = dict(alarm_params)
    for required in ("resource", "probableCause", "perceivedSeverity"):
        if required not in params:
            raise Violation(f"alarm element without {required} (RFC 5674 section 3)")
    if not params["resource"]:
        raise Violation("alarm resource is empty (RFC 5674 3.1)")
    if params["probableCause"] not in PROBABLE_CAUSES:
        raise Violation(f"probableCause {params['probableCause']!r} is not IANA's (3.2)")
    severity = params["perceivedSeverity"]
    if severity not in PERCEIVED:
        raise Violation(f"perceivedSeverity {severity!r} (RFC 5674 3.3)")
    if "eventType" in params and params["eventType"] not in EVENT_TYPES:
        raise Violation(f"eventType {params['eventType']!r} is not IANAItuEventType (3.4)")
    if "trendIndication" in params and params["trendIndication"] not in TRENDS:
        raise Violation(f"trendIndication {params['trendIndication']!r} (RFC 5674 3.5)")
    if message.severity != SYSLOG_SEVERITY[severity]:
        raise Violation(
            f"PRI severity {message.severity} for perceivedSeverity {severity} (RFC 5674 2)"
        )
    if (message.msgid == "ALARM-CLEARED") != (severity == "cleared"):
        raise Violation(f"{message.msgid} with perceivedSeverity {severity}")


# ------------------------------------------------------------------ the parser is strict
GOOD = (
    b'<130>1 2026-11-21T21:14:50.670138Z host provsync 42 ALARM-RAISED [alarm resource="a\\]'
    b'\\"\\\\" probableCause="powerProblem" perceivedSeverity="major"][meta sequenceId="9"]'
    b" \xef\xbb\xbfok"
)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (GOOD.replace(b"<130>", b"<192>"), "PRIVAL"),
        (GOOD.replace(b"<130>1", b"<130>2"), "VERSION"),
        (GOOD.replace(b"21T21", b"21t21"), "TIMESTAMP"),
        (GOOD.replace(b"2026-11-21", b"2026-02-30"), "TIMESTAMP"),
        (GOOD.replace(b"50.670138Z", b"60Z"), "leap"),
        (GOOD.replace(b"50.670138Z", b"50.6701381Z"), "TIMESTAMP"),
        (GOOD.replace(b"host", b"h\xc3\xa9st"), "HOSTNAME"),
        (GOOD.replace(b"ALARM-RAISED", b"A" * 33), "MSGID"),
        (GOOD.replace(b"a\\]", b"a]"), "unescaped ']'"),
        (GOOD.replace(b'\\\\"', b'\\x"'), "unescaped '\\'"),
        (GOOD.replace(b"[meta", b"[alarm"), "twice"),
        (GOOD.replace(b"[meta", b"[private"), "not IANA-registered"),
        (GOOD.replace(b"[meta", b"[x@01"), "enterprise"),
        (GOOD.replace(b"sequenceId", b"sequence"), "unregistered"),
        (GOOD.replace(b'"9"', b'"0"'), "sequenceId"),
        (GOOD.replace(b"\xef\xbb\xbfok", b"ok"), "BOM"),
        (GOOD.replace(b"ok", b"o\xc3"), "UTF-8"),
        (GOOD.replace(b'"major"', b'"serious"'), "perceivedSeverity"),
        (GOOD.replace(b"<130>", b"<131>"), "PRI severity"),
        (GOOD.replace(b"powerProblem", b"cabinetDoorOpen"), "probableCause"),
        (GOOD.replace(b"ALARM-RAISED", b"EVENT"), "carries an alarm element"),
        (GOOD.replace(b' probableCause="powerProblem"', b""), "without probableCause"),
    ],
)
def test_the_checks_refuse_what_the_rfcs_refuse(raw: bytes, needle: str) -> None:
    assert check(GOOD).params("alarm")["resource"] == 'a]"\\'
    with pytest.raises(Violation, match=re.escape(needle)):
        check(raw)


def check(raw: bytes) -> Message:
    message = parse(raw)
    check_rfc5674(message)
    return message


# ------------------------------------------------------------------ against rsyslogd
TRANSPORTS = ("udp", "tcp", "tls", "relp")
LIMITS = {"udp": 2048, "tcp": 8192, "tls": 8192, "relp": 8192}  # the defaults
HOSTILE = 'quote " backslash \\ bracket ] close-sd "] \\] é ü 日本 😀 ctl \x01\t\n\r\x1b\x7f end'
LONG = "€" * 2999 + "x" * 3  # 9,000 octets: cut over every transport
LONG_LINK = "see runbook " + "r" * 2500  # header + SD beyond UDP's 2048: link dropped there
SITE_TYPE = {
    "id": "site-door",
    "name": 'Door "Open" ] \\ é',
    "kind": "alarm",
    "severity": "minor",
    "event_type": "environmentalAlarm",
    "probable_cause": "enclosureDoorOpen",
    "resolution": LONG_LINK,
}


@pytest.fixture
def raw_rsyslog(tmp_path: Path) -> Any:
    server = Rsyslog(tmp_path / "rsyslog", raw=True)
    server.start()
    yield server
    server.stop()


def _collectors(server: Rsyslog) -> list[dict[str, Any]]:
    made = []
    for name in TRANSPORTS:
        collector: dict[str, Any] = {
            "name": name,
            "transport": name,
            "timeout": "2s",
            "address": f"127.0.0.1:{server.ports[name]}",
        }
        if name == "tls":
            collector["ca_file"] = str(server.certs["ca"])
        made.append(collector)
    return made


def _log(agent: AgentProcess) -> dict[int, dict[str, Any]]:
    import json

    if not agent.jsonl.exists():
        return {}
    rows = [json.loads(line) for line in agent.jsonl.read_text().splitlines() if line]
    return {row["seq"]: row for row in rows}


def _exercise(agent: AgentProcess) -> None:
    with agent.http() as http:

        def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            answer = http.post(path, json=body or {})
            assert answer.status_code == 200, (path, answer.text)
            result: dict[str, Any] = answer.json()
            return result

        first = post(
            "/api/v1/alarms", {"type": "element-unreachable", "resource": "cm1", "text": HOSTILE}
        )
        key = {"type": "sync-failed", "resource": 'cm"2] \\é', "qualifier": 'q "]\\ ü'}
        post("/api/v1/alarms", {**key, "severity": "minor", "text": LONG})
        post("/api/v1/alarms", {**key, "severity": "critical", "text": "worse"})
        post("/api/v1/alarms", {**key, "severity": "warning", "text": "better"})
        door = post("/api/v1/alarms", {"type": "site-door", "resource": "cabinet ]7", "text": ""})
        post(f"/api/v1/alarms/{first['alarm']['id']}/ack", {"note": 'seen "]'})
        post(f"/api/v1/alarms/{first['alarm']['id']}/clear")
        post("/api/v1/alarms/clear", key)
        post(f"/api/v1/alarms/{door['alarm']['id']}/clear")
        post("/api/v1/test", {"text": HOSTILE})
        post("/api/v1/test", {"text": LONG})
        post("/api/v1/test", {"text": ""})


def _expected_text(sent: str, got: str | None, raw: bytes, limit: int) -> None:
    if sent == "":
        assert got in (None, ""), f"MSG {got!r} for an empty text"
        return
    assert got is not None, "MSG missing"
    if got == sent:
        return
    # Cut: only where the limit forced it, and on a character boundary (decoding worked).
    assert sent.startswith(got), f"MSG {got[:60]!r}... is not the text sent"
    assert len(raw) > limit - 4, f"MSG cut at {len(raw)} octets, below the limit {limit}"


class NotLoggedYet(Exception):
    pass


def _check_one(name: str, raw: bytes, log: dict[int, dict[str, Any]]) -> Message:
    assert len(raw) <= LIMITS[name], f"{len(raw)} octets, over the {name} limit"
    message = check(raw)
    assert message.app_name == "provsync"
    assert message.hostname == "provsync-conformance"
    assert message.prival // 8 == 16, "facility local0"
    assert message.procid.isdigit()
    seq = int(message.params("meta")["sequenceId"])
    if seq not in log:
        raise NotLoggedYet(seq)  # the JSON-lines exporter can be behind the collector
    row = log[seq]
    private = next((i for i in message.sd_order if i.startswith("provsync@")), None)
    assert private is not None, "no private element"
    mine = message.params(private)
    assert mine["typeId"] == row["type"]
    assert mine["element"] == row["resource"]
    expected_msgid = {
        "alarm-raised": "ALARM-RAISED",
        "alarm-changed": "ALARM-CHANGED",
        "alarm-cleared": "ALARM-CLEARED",
        "event": "EVENT",
    }[row["kind"]]
    if row["type"] == "heartbeat":
        expected_msgid = "HEARTBEAT"
    assert message.msgid == expected_msgid
    if expected_msgid in ALARM_MSGIDS:
        alarm = message.params("alarm")
        assert alarm["resource"] == row["resource"]
        assert alarm["probableCause"] == row["probable_cause"]
        assert alarm["perceivedSeverity"] == row["severity"]
        assert alarm.get("eventType") == row["event_type"]
        assert mine["alarmId"] == str(row["alarm_id"])
        assert mine.get("qualifier", "") == row["qualifier"]
        if row.get("resolution") and "link" in mine:
            assert mine["link"] == row["resolution"]
    else:
        assert "alarmId" not in mine
        assert (mine["eventType"], mine["probableCause"], mine["severity"]) == (
            row["event_type"],
            row["probable_cause"],
            row["severity"],
        )
        assert message.severity == SYSLOG_SEVERITY[row["severity"]]
    _expected_text(row["text"], message.msg, raw, LIMITS[name])
    return message


def test_every_message_rsyslogd_received_conforms(agent_factory: Any, raw_rsyslog: Rsyslog) -> None:
    agent: AgentProcess = agent_factory(
        {
            "syslog": {"collectors": _collectors(raw_rsyslog), "hostname": "provsync-conformance"},
            "snmp": {"heartbeat_interval": "300ms"},
            "alarm_types": [SITE_TYPE],
        }
    ).start()
    _exercise(agent)
    # Everything logged so far, plus a heartbeat after it, reaches every transport.
    deadline = time.monotonic() + 30
    seen: dict[str, list[Message]] = {}
    wanted = max(_log(agent))
    while True:
        log = _log(agent)
        failures = []
        for name in TRANSPORTS:
            received = raw_rsyslog.raw_messages(name)
            checked = []
            for index, raw in enumerate(received):
                try:
                    checked.append(_check_one(name, raw, log))
                except NotLoggedYet:
                    continue
                except (AssertionError, KeyError) as exc:
                    pytest.fail(f"{name} message {index}: {exc!r}\n{raw!r}")
            seen[name] = checked
            if len(checked) < len(received):
                failures.append(name)
                continue
            seqs = {int(m.params("meta")["sequenceId"]) for m in checked}
            beats = [m for m in checked if m.msgid == "HEARTBEAT"]
            if not (set(range(1, wanted + 1)) <= seqs and beats and max(seqs) > wanted):
                failures.append(name)
        if not failures:
            break
        assert time.monotonic() < deadline, f"incomplete on {failures}"
        time.sleep(0.1)
    agent.stop()
    for name, messages in seen.items():
        kinds = [m.msgid for m in messages]
        for msgid in ("ALARM-RAISED", "ALARM-CHANGED", "ALARM-CLEARED", "EVENT", "HEARTBEAT"):
            assert msgid in kinds, (name, msgid)
        trends = {m.params("alarm").get("trendIndication") for m in messages}
        assert {"moreSevere", "lessSevere", "noChange"} <= trends, (name, trends)
        hostile = [m for m in messages if m.msg == HOSTILE]
        # Raised, acknowledged, cleared, and the event: byte for byte each time.
        assert len(hostile) == 4, f"{name}: the hostile text did not arrive intact"
        cut = [m for m in messages if m.msg and m.msg != LONG and LONG.startswith(m.msg)]
        assert len(cut) == 2, name  # the alarm raised with it, and the event
        assert all(len(m.raw) > LIMITS[name] - 4 for m in cut), name
        doors = [
            m for m in messages if m.params("alarm").get("probableCause") == "enclosureDoorOpen"
        ]
        assert len(doors) == 2, name
        private = [m.params(i) for m in doors for i in m.sd_order if i.startswith("provsync@")]
        if name == "udp":
            assert all("link" not in p and "typeName" not in p for p in private), private
        else:
            assert all(p["link"] == LONG_LINK for p in private)
            assert all(p["typeName"] == SITE_TYPE["name"] for p in private)
