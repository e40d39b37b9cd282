"""bench/api.py's own parts: its HTTP client against the real anchor, and its export
targets fed by the agent's real encoders (syslog RFC 5424, v2c traps, JSON lines with
rotation), so that the figures it prints rest on parsers that are right."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.alarms.records import Notification, NotificationKind
from agent.config import settings_from_dict
from agent.export.jsonfile import JsonLinesFile, encode
from agent.export.snmp import ber
from agent.export.snmp.notify import notification_vars, v2c_message
from agent.export.snmp.oids import MibOids
from agent.export.syslog.exporter import make_formatter
from tests.conftest import free_port
from tests.waiting import healthy

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.append(str(BENCH))  # last: bench/syslog.py must not shadow the stdlib syslog

import api  # noqa: E402
import http_client  # noqa: E402

TOKEN = api.TOKEN  # the token the bench's prebuilt requests carry


def note(seq: int) -> Notification:
    return Notification(
        seq=seq,
        at=datetime.now(UTC),
        kind=NotificationKind.ALARM_RAISED,
        alarm_id=seq,
        type_id="element-unreachable",
        resource=f"cs-{seq:05d}",
        qualifier="",
        severity="major",
        text="no answer from the call server",
        raise_seq=0,
        payload={
            "type_name": "Element Unreachable",
            "event_type": "communicationsAlarm",
            "probable_cause": "communicationsSubsystemFailure",
        },
    )


@pytest.fixture(scope="module", params=[("h11", "asyncio"), ("httptools", "uvloop")])
def anchor(request: pytest.FixtureRequest) -> Iterator[int]:
    http, loop = request.param
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "api_anchor.py"),
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--http",
            http,
            "--loop",
            loop,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if healthy(f"http://127.0.0.1:{port}"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the anchor did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_client_closed_loop_against_the_anchor(anchor: int) -> None:
    requests = api.raises("t", 40)
    run = http_client.run_loop(http_client.closed_loop("127.0.0.1", anchor, requests, 4))
    assert run.status == [200] * 40
    answers = api.answers(run)
    # Every request answered once, on its own index, with the agent's shape.
    assert sorted(a["alarm"]["resource"] for a in answers) == [f"t-{i:06d}" for i in range(40)]
    assert {"change", "seq", "alarm"} <= answers[0].keys()
    assert run.rate > 0


def test_client_sees_refusals_and_validation(anchor: int) -> None:
    wrong = http_client.request_bytes("POST", "/api/v1/alarms", "h", "not-it", b"{}")
    invalid = http_client.request_bytes("POST", "/api/v1/alarms", "h", TOKEN, b'{"type":""}')
    run = http_client.run_loop(http_client.closed_loop("127.0.0.1", anchor, [wrong, invalid], 1))
    assert run.status == [401, 422]
    assert run.failures() == {401: 1, 422: 1}


def test_open_loop_counts_from_the_scheduled_time(anchor: int) -> None:
    # 50 requests due over 0.25 s on one connection: each is sent at or after its due
    # time, so no latency is negative and the last one is due 0.245 s after the first.
    run = http_client.run_loop(
        http_client.open_loop("127.0.0.1", anchor, api.raises("o", 50), 200.0, 1)
    )
    assert run.status == [200] * 50
    assert min(run.latencies()) >= 0
    assert run.scheduled[-1] - run.scheduled[0] == pytest.approx(0.245)
    assert run.ended - run.started >= 0.245


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert http_client.percentile(values, 0.50) == 50.0
    assert http_client.percentile(values, 0.99) == 99.0
    assert http_client.percentile([3.0], 0.99) == 3.0


def test_check_targets_names_what_is_wrong() -> None:
    good = [[s, 0.0] for s in range(1, 6)]
    dump = {
        "file": good,
        "syslog": [[1, 0.0], [2, 0.0], [2, 0.0], [4, 0.0], [3, 0.0]],
        "trap": [[1, 0.0], [2, 0.0]],
        "unidentified": {"file": 0, "syslog": 0, "trap": 1},
    }
    verdicts = api.check_targets(dump, 5)
    assert verdicts["file"].startswith("ok")
    assert verdicts["syslog"] == ("1 missing, 1 duplicated, 2 out of order (of 1..5, 5 received)")
    assert verdicts["trap"].startswith("3 missing, 0 duplicated, 0 out of order")
    assert verdicts["trap"].endswith("1 without a sequence number")


def test_targets_read_the_agents_own_encodings(tmp_path: Path) -> None:
    jsonl = tmp_path / "notifications.jsonl"
    targets = api.Targets(jsonl)
    try:
        settings = settings_from_dict({})
        formatter = make_formatter(settings, "bench-host")
        oids = MibOids()
        # Small files: the tail must follow the exporter across several rotations.
        file = JsonLinesFile(jsonl, max_bytes=2048, backups=20, fsync=False)
        file.open()
        notes = [note(seq) for seq in range(1, 61)]

        async def send() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", targets.syslog_port)
            for n in notes:
                message = formatter.format(n)
                writer.write(str(len(message)).encode() + b" " + message)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in notes:
                varbinds = notification_vars(n, oids, 100)
                sock.sendto(
                    v2c_message(b"public", ber.TRAP_V2, n.seq, varbinds),
                    ("127.0.0.1", targets.trap_port),
                )
        for start in range(0, 60, 7):
            file.write([encode(n, "bench-host") for n in notes[start : start + 7]])
        file.close()
        asyncio.run(send())
        arrived = targets.wait(60, within=30)
        assert all(at > 0 for at in arrived.values()), arrived
        dump = targets.dump(tmp_path / "dump.json")
    finally:
        targets.close()
    assert len(list(tmp_path.glob("notifications.jsonl.*"))) >= 2  # it did rotate
    assert api.check_targets(dump, 60) == dict.fromkeys(api.TARGETS, "ok: 1..60 in order, once")
