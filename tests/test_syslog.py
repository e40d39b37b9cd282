"""Syslog export: RFC 5424 / RFC 5674 messages received by a real rsyslogd."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from agent.alarms.manager import AlarmManager
from agent.alarms.records import Notification, NotificationKind
from agent.config import ExporterSettings, SyslogCollector
from agent.errors import Oversized
from agent.export.syslog.exporter import SyslogExporter
from agent.export.syslog.relp import frame as relp_frame
from agent.export.syslog.relp import read_frame
from agent.export.syslog.rfc5424 import BOM, Formatter, sd_value
from tests.conftest import AgentProcess, free_port
from tests.rsyslog import Rsyslog


def note(**fields: Any) -> Notification:
    base: dict[str, Any] = {
        "seq": 7,
        "at": datetime(2026, 11, 21, 21, 14, 50, 670138, tzinfo=UTC),
        "kind": NotificationKind.ALARM_RAISED,
        "alarm_id": 3,
        "type_id": "sync-failed",
        "resource": "cm1",
        "qualifier": "",
        "severity": "major",
        "text": "job failed",
        "raise_seq": 0,
        "payload": {
            "type_name": "Synchronization Failed",
            "event_type": "processingErrorAlarm",
            "probable_cause": "applicationSubsystemFailure",
            "resolution": "provsync jobs list --element cm1",
        },
    }
    base.update(fields)
    return Notification(**base)


FORMATTER = Formatter(hostname="noc agent\u00e9.example", pen=32473, procid="4242")


def test_message_layout() -> None:
    message = FORMATTER.format(note())
    head, _, msg = message.partition(b" " + BOM)
    assert msg == b"job failed"
    text = head.decode()
    assert text.startswith("<130>1 2026-11-21T21:14:50.670138Z nocagent.example provsync 4242 ")
    assert ' ALARM-RAISED [alarm resource="cm1" probableCause="applicationSubsystemFailure"' in text
    assert 'perceivedSeverity="major" eventType="processingErrorAlarm"]' in text
    assert '[meta sequenceId="7"]' in text
    assert '[provsync@32473 alarmId="3" typeId="sync-failed"' in text
    assert 'element="cm1"' in text
    assert 'link="provsync jobs list --element cm1"' in text


def test_escaping_and_truncation() -> None:
    assert sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    tricky = note(resource='cm"1]', text="é" * 5000)
    small = Formatter(hostname="h", pen=32473, procid="1", max_size=600)
    message = small.format(tricky)
    assert len(message) <= 600
    assert b'resource="cm\\"1\\]"' in message
    assert message.count(b"[") == 3, "structured data kept whole"
    message.decode("utf-8")  # cut on a character boundary


def test_clear_and_trend() -> None:
    cleared = FORMATTER.format(
        note(kind=NotificationKind.ALARM_CLEARED, severity="cleared", raise_seq=5)
    )
    assert cleared.startswith(b"<133>1 ")  # local0 (16) * 8 + notice (5)
    assert b'perceivedSeverity="cleared"' in cleared
    assert b'raiseSeq="5"' in cleared
    worse = FORMATTER.format(
        note(
            kind=NotificationKind.ALARM_CHANGED,
            severity="critical",
            payload={"previous_severity": "minor"},
        )
    )
    assert b'trendIndication="moreSevere"' in worse


def test_events_and_heartbeats_carry_no_alarm_element() -> None:
    # RFC 5674 section 3 defines [alarm] for alarms; its consumers keep each message
    # with one as an alarm state, so an event that carried it stayed "active" for ever.
    event = note(
        kind=NotificationKind.EVENT,
        alarm_id=0,
        type_id="test",
        severity="warning",
        payload={"type_name": "Test", "event_type": "other", "probable_cause": "other"},
    )
    heartbeat = note(
        kind=NotificationKind.EVENT,
        alarm_id=0,
        type_id="heartbeat",
        severity="indeterminate",
        text="",
        payload={"type_name": "Heartbeat", "event_type": "other", "probable_cause": "other"},
    )
    for message, msgid in (
        (FORMATTER.format(event), b" EVENT "),
        (FORMATTER.format(heartbeat), b" HEARTBEAT "),
    ):
        assert msgid + b'[meta sequenceId="7"][provsync@32473 typeId=' in message
        assert b"[alarm" not in message
        assert b"alarmId=" not in message
        assert b'eventType="other" probableCause="other"' in message
    assert b'severity="warning"' in FORMATTER.format(event)
    assert FORMATTER.format(heartbeat).endswith(b"]"), "no text: no MSG"
    alarm = FORMATTER.format(note())
    assert alarm.count(b"[alarm ") == 1
    assert b' eventType="processingErrorAlarm"' in alarm.split(b"[meta")[0]
    assert b"severity=" not in alarm.split(b"[provsync@")[1], "the alarm element has it"


def test_labels_outside_the_iana_registries_go_out_as_other() -> None:
    logged = note(
        payload={
            "type_name": "Door",
            "event_type": "doorAlarm",
            "probable_cause": "cabinetDoorOpen",
        }
    )
    message = FORMATTER.format(logged)
    assert b'probableCause="other"' in message
    assert b'eventType="other"' in message


def test_sequence_id_wraps_as_rfc_5424_says() -> None:
    assert b'[meta sequenceId="2147483647"]' in FORMATTER.format(note(seq=2_147_483_647))
    wrapped = FORMATTER.format(note(seq=2_147_483_648))
    assert b'[meta sequenceId="1"]' in wrapped
    assert b'seq="2147483648"' in wrapped, "the full number stays in the private element"


def test_a_message_that_cannot_fit_drops_link_and_type_name_then_is_refused() -> None:
    long_link = note(
        text="x" * 100,
        payload={
            "type_name": "N" * 200,
            "event_type": "other",
            "probable_cause": "other",
            "resolution": "L" * 1500,
        },
    )
    message = FORMATTER.format(long_link, 480)
    assert len(message) <= 480
    assert b"link=" not in message
    assert b"typeName=" not in message
    assert b'[alarm resource="cm1"' in message
    assert b"x" in message.partition(BOM)[2], "room left for some of the text"
    assert b"link=" in FORMATTER.format(long_link, 2048), "kept where it fits"
    # A hostile resource and qualifier are shortened, not a reason to skip the alarm.
    hostile = note(resource='"' * 255, qualifier="]" * 255)
    cut = FORMATTER.format(hostile, 480)
    assert len(cut) <= 480
    assert ('resource="' + '\\"' * 15 + '\u2026"').encode() in cut
    assert ('qualifier="' + "\\]" * 15 + '\u2026"').encode() in cut
    assert len(FORMATTER.format(hostile, 2048)) <= 2048
    # Only a header that cannot fit at all is refused.
    with pytest.raises(Oversized) as info:
        Formatter(hostname="h" * 200, pen=32473, procid="1").format(hostile, 480)
    assert "notification 7" in str(info.value)


def test_udp_collectors_get_the_udp_limit(manager: AlarmManager) -> None:
    formatter = Formatter(hostname="h", pen=32473, procid="1", max_size=8192, udp_max_size=600)
    settings = ExporterSettings()
    udp = SyslogExporter(
        manager, settings, SyslogCollector(address="127.0.0.1:514", transport="udp"), formatter
    )
    tcp = SyslogExporter(
        manager, settings, SyslogCollector(address="127.0.0.1:514", transport="tcp"), formatter
    )
    relp = SyslogExporter(
        manager, settings, SyslogCollector(address="127.0.0.1:514", transport="relp"), formatter
    )
    assert (udp.max_size, tcp.max_size, relp.max_size) == (600, 8192, 8192)


def test_an_oversized_message_is_skipped_and_counted(manager: AlarmManager) -> None:
    """Over UDP at 480 octets: the alarm whose SD alone is too long is not sent; the
    messages around it are, in order, and the cursor moves past all three."""
    import socket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]

    async def scenario() -> SyslogExporter:
        await manager.emit_event("test", "before", text="a")
        await manager.raise_alarm("sync-failed", '"' * 255, qualifier="]" * 255)
        await manager.emit_event("test", "after", text="b")
        # A 200-character HOSTNAME leaves room for an event's SD, not for an alarm's.
        formatter = Formatter(hostname="h" * 200, pen=32473, procid="1", udp_max_size=480)
        collector = SyslogCollector(name="u", transport="udp", address=f"127.0.0.1:{port}")
        exporter = SyslogExporter(
            manager, ExporterSettings(poll_interval=0.05), collector, formatter
        )
        await exporter.start()
        deadline = time.monotonic() + 10
        while exporter.cursor < manager.last_seq and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await exporter.stop(5)
        return exporter

    try:
        exporter = asyncio.run(scenario())
        got = [receiver.recv(65536) for _ in range(2)]
    finally:
        receiver.close()
    assert exporter.cursor == 3
    assert exporter.oversized == 1
    assert [SEQ.findall(m.decode()) for m in got] == [["1"], ["3"]]
    assert all(len(m) <= 480 for m in got)


# ------------------------------------------------------------------ with rsyslogd
@pytest.fixture
def rsyslog(tmp_path: Path) -> Any:
    server = Rsyslog(tmp_path / "rsyslog")
    server.start()
    yield server
    server.stop()


def collectors(server: Rsyslog, *names: str) -> list[dict[str, Any]]:
    made = []
    for name in names:
        collector: dict[str, Any] = {
            "name": name,
            "transport": name,
            "address": f"127.0.0.1:{server.ports[name]}",
            "timeout": "2s",
        }
        if name == "tls":
            collector["ca_file"] = str(server.certs["ca"])
        made.append(collector)
    return made


ALL = ("udp", "tcp", "tls", "relp")
SYSLOG_SEVERITY = {
    "critical": "1",
    "major": "2",
    "minor": "3",
    "warning": "4",
    "indeterminate": "5",
    "cleared": "5",
}


def test_fields_over_udp_tcp_tls_relp(agent_factory: Any, rsyslog: Rsyslog) -> None:
    agent: AgentProcess = agent_factory(
        {"syslog": {"collectors": collectors(rsyslog, *ALL), "hostname": "provsync-test"}}
    ).start()
    with agent.http() as http:
        raised = http.post(
            "/api/v1/alarms",
            json={"type": "element-unreachable", "resource": "cm1", "text": "no route"},
        ).json()
        http.post(f"/api/v1/alarms/{raised['alarm']['id']}/clear")
        http.post("/api/v1/test", json={"text": "hello collectors"})
    for name in ALL:
        got = rsyslog.wait_for(name, 4)
        assert [g["msgid"] for g in got] == ["EVENT", "ALARM-RAISED", "ALARM-CLEARED", "EVENT"], (
            name
        )
        started, raise_line, clear_line, event = got
        assert {g["app"] for g in got} == {"provsync"}
        assert {g["facility"] for g in got} == {"local0"}
        assert raise_line["severity"] == "2"  # major -> critical (RFC 5674)
        assert clear_line["severity"] == "5"
        assert raise_line["msg"] == "no route"
        assert 'link="provsync elements show cm1 | GET /api/v1/elements/cm1"' in raise_line["sd"]
        assert (
            '[alarm resource="cm1" probableCause="communicationsSubsystemFailure" '
            'perceivedSeverity="major" eventType="communicationsAlarm"]' in raise_line["sd"]
        )
        assert '[meta sequenceId="2"]' in raise_line["sd"]
        assert 'perceivedSeverity="cleared"' in clear_line["sd"]
        assert 'raiseSeq="2"' in clear_line["sd"]
        assert event["msg"] == "hello collectors"
        assert '[meta sequenceId="4"]' in event["sd"]
        assert started["procid"].isdigit()


def test_tls_pinned_fingerprint(agent_factory: Any, rsyslog: Rsyslog) -> None:
    address = f"127.0.0.1:{rsyslog.ports['tls']}"
    good = {
        "name": "pinned",
        "transport": "tls",
        "address": address,
        "fingerprint": "sha256:" + rsyslog.certs["fingerprint"].read_text().strip(),
    }
    wrong = {"name": "wrong-pin", "transport": "tls", "address": address, "fingerprint": "ab" * 32}
    agent: AgentProcess = agent_factory({"syslog": {"collectors": [good, wrong]}}).start()
    got = rsyslog.wait_for("tls", 1)
    assert got[0]["msgid"] == "EVENT"
    time.sleep(1)
    assert len(rsyslog.lines("tls")) == 1, "the wrong pin delivered nothing"
    with agent.http() as http:
        exporters = {e["name"]: e for e in http.get("/api/v1/status").json()["exporters"]}
    assert "fingerprint" in (exporters["wrong-pin"]["last_error"] or "")
    assert exporters["pinned"]["cursor"] == 1


def test_six_severities_per_rfc_5674(agent_factory: Any, rsyslog: Rsyslog) -> None:
    agent: AgentProcess = agent_factory(
        {"syslog": {"collectors": collectors(rsyslog, "tcp")}}
    ).start()
    order = ["critical", "major", "minor", "warning", "indeterminate"]
    with agent.http() as http:
        for index, severity in enumerate(order):
            http.post(
                "/api/v1/alarms",
                json={"type": "sync-failed", "resource": f"r{index}", "severity": severity},
            )
        http.post("/api/v1/alarms/clear", json={"type": "sync-failed", "resource": "r0"})
    got = rsyslog.wait_for("tcp", 7)[1:]
    assert [g["severity"] for g in got] == [SYSLOG_SEVERITY[s] for s in [*order, "cleared"]]
    for line, severity in zip(got, [*order, "cleared"], strict=True):
        assert f'perceivedSeverity="{severity}"' in line["sd"]


@pytest.mark.slow
def test_relp_restart_loses_nothing(agent_factory: Any, rsyslog: Rsyslog) -> None:
    agent: AgentProcess = agent_factory(
        {
            "syslog": {"collectors": collectors(rsyslog, "relp")},
            "exporters": {"backlog_threshold": 100_000},
        }
    ).start()
    total = 2500  # a quarter before the collector goes down, the rest during and after
    produced = []

    def produce() -> None:
        with agent.http() as http:
            for index in range(total):
                seq = http.post("/api/v1/test", json={"text": f"n{index}"}).json()["seq"]
                produced.append(seq)

    producer = threading.Thread(target=produce)
    producer.start()
    while len(produced) < total // 4:
        time.sleep(0.01)
    rsyslog.stop()  # collector down while notifications keep coming
    time.sleep(1.0)
    rsyslog.start()
    producer.join(300)
    assert len(produced) == total
    wanted = set(produced)
    deadline = time.monotonic() + 120
    seqs: list[int] = []
    while time.monotonic() < deadline:
        seqs = [
            int(m.group(1))
            for line in rsyslog.lines("relp")
            if (m := re.search(r'sequenceId="(\d+)"', line["sd"]))
        ]
        if wanted <= set(seqs):
            break
        time.sleep(0.2)
    assert wanted <= set(seqs), f"missing {len(wanted - set(seqs))} of {total}"
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == sorted(first_seen), "in order"


def test_dead_collector_never_delays_the_rest(agent_factory: Any, rsyslog: Rsyslog) -> None:
    dead_port = free_port()
    dead = {
        "name": "dead",
        "transport": "tcp",
        "address": f"127.0.0.1:{dead_port}",
        "timeout": "500ms",
    }
    wrong_tls = {
        "name": "not-tls",
        "transport": "tls",
        "ca_file": str(rsyslog.certs["ca"]),
        "address": f"127.0.0.1:{rsyslog.ports['tcp']}",
        "timeout": "1s",
    }
    agent: AgentProcess = agent_factory(
        {
            "syslog": {"collectors": [dead, wrong_tls, *collectors(rsyslog, "relp")]},
            "exporters": {"backlog_threshold": 20, "retry_max": "500ms"},
        }
    ).start()
    with agent.http() as http:
        started = time.monotonic()
        for index in range(60):
            assert http.post("/api/v1/test", json={"text": f"m{index}"}).status_code == 200
        api_seconds = time.monotonic() - started
        got = rsyslog.wait_for("relp", 61)
        assert len(got) >= 61, "the healthy collector got everything"
        for _ in range(100):
            active = http.get("/api/v1/alarms", params={"type": "exporter-backlog"}).json()
            if {a["resource"] for a in active} >= {"dead", "not-tls"}:
                break
            time.sleep(0.1)
        assert {a["resource"] for a in active} >= {"dead", "not-tls"}
        exporters = {e["name"]: e for e in http.get("/api/v1/status").json()["exporters"]}
        assert (
            "certificate" in (exporters["not-tls"]["last_error"] or "").lower()
            or "tls" in (exporters["not-tls"]["last_error"] or "").lower()
        )
    assert api_seconds < 60  # sanity only: 60 requests were answered while targets were dead
    # The dead collector comes back: its backlog drains and the alarm clears.
    import socket

    received = bytearray()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", dead_port))
    server.listen()
    server.settimeout(10)

    def accept() -> None:
        connection, _ = server.accept()
        with connection:
            connection.settimeout(2)
            while True:
                try:
                    chunk = connection.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                received.extend(chunk)

    reader = threading.Thread(target=accept, daemon=True)
    reader.start()
    with agent.http() as http:
        for _ in range(200):
            active = http.get("/api/v1/alarms", params={"type": "exporter-backlog"}).json()
            if "dead" not in {a["resource"] for a in active}:
                break
            time.sleep(0.1)
    assert "dead" not in {a["resource"] for a in active}
    server.close()
    reader.join(5)
    assert b'[meta sequenceId="2"]' in bytes(received), "the backlog was delivered"


def test_agent_log_goes_to_syslog_apart(agent_factory: Any, rsyslog: Rsyslog) -> None:
    agent: AgentProcess = agent_factory(
        {
            "syslog": {
                "agent_log": {
                    "enabled": True,
                    "level": "INFO",
                    "address": f"127.0.0.1:{rsyslog.ports['udp']}",
                }
            }
        }
    ).start()
    deadline = time.monotonic() + 30
    got = rsyslog.wait_for("udp", 1)
    while not any("running" in g["msg"] for g in got):
        assert time.monotonic() < deadline, f"no 'running' line among {got}"
        time.sleep(0.1)
        got = rsyslog.wait_for("udp", 1)
    assert {g["app"] for g in got} == {"provsync-agent"}
    assert {g["msgid"] for g in got} == {"LOG"}
    agent.stop()


# ------------------------------------------------------------------ a slow RELP collector
class SlowRelpCollector:
    """A RELP server on loopback that acknowledges each message ``delay`` seconds after
    the previous one: healthy, but a batch takes far longer than one acknowledgement."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[bytes] = []
        self.sessions = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        try:
            while True:
                txnr, command, data = await read_frame(reader)
                if command == b"syslog":
                    await asyncio.sleep(self.delay)
                    self.messages.append(data)
                writer.write(relp_frame(txnr, b"rsp", b"200 OK"))
                await writer.drain()
                if command == b"close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_a_slow_relp_collector_is_not_cut_mid_batch(manager: AlarmManager) -> None:
    """Each acknowledgement restarts the delivery deadline: a batch of 20 acknowledged
    at 50 ms each (1 s) against a 0.3 s deliver_timeout arrives once, in order."""
    lines: list[tuple[str, str]] = []
    handler = logger.add(
        lambda m: lines.append((m.record["level"].name, m.record["message"])), level="DEBUG"
    )

    async def scenario() -> None:
        server = SlowRelpCollector(delay=0.05)
        await server.start()
        for index in range(20):
            await manager.emit_event("test", "load", text=f"n{index}")
        collector = SyslogCollector(
            name="slow", transport="relp", address=f"127.0.0.1:{server.port}", timeout=2.0
        )
        settings = ExporterSettings(
            deliver_timeout=0.3, retry_initial=0.05, poll_interval=0.05, batch_size=500
        )
        exporter = SyslogExporter(manager, settings, collector, FORMATTER)
        await exporter.start()
        deadline = time.monotonic() + 10
        while exporter.cursor < manager.last_seq and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await exporter.stop(5)
        await server.stop()
        seqs = [int(m) for data in server.messages for m in SEQ.findall(data.decode())]
        assert seqs == list(range(1, 21)), seqs
        assert exporter.failures == 0, exporter.last_error
        assert server.sessions == 1

    try:
        asyncio.run(scenario())
    finally:
        logger.remove(handler)
    assert not [m for level, m in lines if level == "WARNING" and "slow" in m], lines


SEQ = re.compile(r'sequenceId="(\d+)"')


def test_agent_log_datagrams_are_cut_on_a_character_boundary() -> None:
    import socket

    from agent.export.syslog.agentlog import SyslogSink

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sink = SyslogSink(f"127.0.0.1:{receiver.getsockname()[1]}", "h", 16, max_size=480)
    handler = logger.add(sink, format="{message}")
    try:
        # Four offsets: one of them puts the limit inside a four-octet character.
        for pad in range(4):
            logger.info("a" * pad + "\U0001f600" * 200)
        datagrams = [receiver.recv(65536) for _ in range(4)]
    finally:
        logger.remove(handler)
        sink.close()
        receiver.close()
    for datagram in datagrams:
        assert 480 - 4 < len(datagram) <= 480, "cut only as far as the character needs"
        datagram.partition(BOM)[2].decode("utf-8")
