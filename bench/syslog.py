"""Syslog messages per second, formatted (RFC 5424 + RFC 5674) and delivered over TCP
and RELP to a local receiver, against Python's logging.handlers.SysLogHandler over TCP
sending the same number of messages, measured in the same run.

Target (issue 4): >= 20,000 messages/s over TCP and >= 1.0 x the anchor.

    .venv/bin/python bench/syslog.py [--messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ports import free_port

from agent.alarms.records import Notification, NotificationKind
from agent.export.syslog.relp import RelpTransport
from agent.export.syslog.rfc5424 import Formatter
from agent.export.syslog.transports import StreamTransport, Transport

HERE = Path(__file__).resolve().parent
BATCH = 500  # the exporter's default batch_size


class Receiver:
    def __init__(self, mode: str, count: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "syslog_receiver.py"), mode, str(self.port), str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def seconds(self) -> float:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.proc.wait(60)
        return float(line)


def notes(count: int) -> list[Notification]:
    now = datetime.now(UTC)
    return [
        Notification(
            seq=i,
            at=now,
            kind=NotificationKind.ALARM_RAISED,
            alarm_id=i,
            type_id="element-unreachable",
            resource=f"call-server-{i:06d}",
            qualifier="",
            severity="major",
            text=f"no answer from call-server-{i:06d}",
            raise_seq=0,
            payload={
                "type_name": "Element Unreachable",
                "event_type": "communicationsAlarm",
                "probable_cause": "communicationsSubsystemFailure",
                "resolution": f"provsync elements show call-server-{i:06d}",
            },
        )
        for i in range(1, count + 1)
    ]


async def ours(transport: Transport, batch: list[Notification]) -> float:
    formatter = Formatter(hostname="bench.example", pen=32473, procid="1")
    await transport.connect()
    start = time.perf_counter()
    for offset in range(0, len(batch), BATCH):
        await transport.send([formatter.format(n) for n in batch[offset : offset + BATCH]])
    elapsed = time.perf_counter() - start
    await transport.close()
    return elapsed


def run_ours(mode: str, count: int) -> float:
    receiver = Receiver("octets" if mode == "tcp" else "relp", count)
    transport: Transport = (
        StreamTransport("127.0.0.1", receiver.port, 30.0)
        if mode == "tcp"
        else RelpTransport("127.0.0.1", receiver.port, 30.0)
    )
    start = time.perf_counter()
    asyncio.run(ours(transport, notes(count)))
    receiver.seconds()
    return count / (time.perf_counter() - start)


def run_anchor(count: int) -> float:
    receiver = Receiver("nul", count)
    handler = logging.handlers.SysLogHandler(
        address=("127.0.0.1", receiver.port), facility="local0", socktype=socket.SOCK_STREAM
    )
    log = logging.getLogger("anchor")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    messages = [f"no answer from call-server-{i:06d}" for i in range(1, count + 1)]
    start = time.perf_counter()
    for message in messages:
        log.warning(message)
    receiver.seconds()
    elapsed = time.perf_counter() - start
    handler.close()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    count = args.messages
    tcp = run_ours("tcp", count)
    relp = run_ours("relp", count)
    anchor = run_anchor(count)
    ok = tcp >= 20_000 and tcp >= anchor
    print(f"syslog, {count:,} messages each, formatted and delivered to a local receiver")
    print(f"  ours over TCP (octet counting) : {tcp:10,.0f} msg/s")
    print(f"  ours over RELP (acknowledged)  : {relp:10,.0f} msg/s")
    print(f"  anchor SysLogHandler over TCP  : {anchor:10,.0f} msg/s")
    print(f"  ratio TCP ours / anchor        : {tcp / anchor:10.2f}")
    print(f"  target >= 20,000/s and >= 1.0 x anchor: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
