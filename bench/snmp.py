"""SNMP figures of the agent, each against an anchor measured in the same run.

(a) `snmpbulkwalk -v2c -Cr50` of the active alarm table holding 10,000 alarms, against
    net-snmp's snmpd on another local port serving the same number of varbinds through
    `extend` output lines. Target: ours <= 0.7 x snmpd's time.
(b) traps per second delivered to a local UDP receiver (another process), v2c and v3
    authPriv, through the path a trap target's exporter runs for a batch
    (agent.export.snmp.trap_path.TrapPath.deliver: encode, then the whole batch handed to
    the socket), against a loop of pysnmp's high-level `send_notification`. Targets:
    >= 20,000 v2c and >= 8,000 v3 authPriv traps/s.
(c) the agent's resident memory with 10,000 and 100,000 active alarms. Target: <= 200 MB
    with 100,000.

    .venv/bin/python bench/snmp.py [--alarms 10000] [--traps 20000] [--big 100000]
        [--parts abc]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import tomli_w
from loguru import logger
from ports import free_port

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import RaiseOp
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.config import settings_from_dict
from agent.export.snmp.oids import MibOids
from agent.export.snmp.trap_path import trap_path
from agent.http_tls import client_context
from agent.store.database import Store

BIN = Path(sys.executable).parent
TABLE = "1.3.6.1.4.1.32473.1.1.3"
EXTEND_LINES = "1.3.6.1.4.1.8072.1.3.2.4.1.2"  # NET-SNMP-EXTEND-MIB::nsExtendOutLine
LINES_PER_EXTEND = 2000  # snmpd keeps only about 128 KB of one command's output
ENGINE_ID = "80007ed9050a0b0c0d0e0f1011"


def fill_store(data_dir: Path, count: int) -> None:
    store = Store(f"sqlite:///{data_dir / 'provsync.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog(), batch_max=2000)
    manager.start()
    futures = [
        manager.submit(
            RaiseOp(
                "element-unreachable",
                f"call-server-{i:06d}",
                "",
                Severity.MAJOR,
                f"no answer from call-server-{i:06d}",
                "bench",
            )
        )
        for i in range(count)
    ]
    for future in futures:
        future.result()
    manager.stop()
    store.close()


class AgentRun:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.snmp_port = free_port(socket.SOCK_DGRAM)
        self.api_port = free_port()
        config = {
            "agent": {"data_dir": str(root / "var"), "log_level": "WARNING"},
            "api": {"listen": f"127.0.0.1:{self.api_port}", "token": "bench"},
            "snmp": {
                "listen": [f"127.0.0.1:{self.snmp_port}"],
                "heartbeat_interval": "0s",
                "communities": [{"name": "public"}],
            },
            "exporters": {"file": []},
        }
        (root / "p.toml").write_text(tomli_w.dumps(config))
        self.proc = subprocess.Popen(
            [str(BIN / "provsync"), "--config", str(root / "p.toml"), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(
                        f"http://127.0.0.1:{self.api_port}/api/v1/health", verify=client_context()
                    ).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("agent did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def timed_walk(port: int, oid: str) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(
        [
            "snmpbulkwalk",
            "-v2c",
            "-c",
            "public",
            "-Cr50",
            "-On",
            "-t",
            "10",
            f"127.0.0.1:{port}",
            oid,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MIBS": ""},
    )
    return time.perf_counter() - start, len(result.stdout.splitlines())


def best_walk(port: int, oid: str, runs: int = 3) -> tuple[float, int]:
    timed_walk(port, oid)  # warm-up: caches, snmpd's extend command
    results = [timed_walk(port, oid) for _ in range(runs)]
    return min(r[0] for r in results), results[0][1]


def snmpd_anchor(tmp: Path, lines: int) -> tuple[float, int]:
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    if not Path(snmpd).exists():
        raise SystemExit("snmpd is not installed (Debian package snmpd; `make bench` installs it)")
    config = ["rocommunity public 127.0.0.1"]
    for part, first in enumerate(range(0, lines, LINES_PER_EXTEND)):
        payload = tmp / f"lines-{part:03d}.txt"
        last = min(first + LINES_PER_EXTEND, lines)
        payload.write_text(
            "".join(f"no answer from call-server-{i:06d}\n" for i in range(first, last))
        )
        config.append(f"extend bench{part:03d} /bin/cat {payload}")
    port = free_port(socket.SOCK_DGRAM)
    conf = tmp / "snmpd.conf"
    conf.write_text("\n".join(config) + "\n")
    proc = subprocess.Popen(
        [
            snmpd,
            "-f",
            "-Lo",
            "-C",
            "-c",
            str(conf),
            "-p",
            str(tmp / "snmpd.pid"),
            f"udp:127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "snmpd-state"), "MIBS": ""},
    )
    try:
        time.sleep(1.0)
        return best_walk(port, EXTEND_LINES)
    finally:
        proc.terminate()
        proc.wait(10)


RECEIVER = """
import socket, sys, time
expected, idle = int(sys.argv[1]), float(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
count, last = 0, time.monotonic()
sock.settimeout(30)  # the first datagram
try:
    while count < expected:
        sock.recv(65535)
        last = time.monotonic()
        count += 1
        sock.settimeout(idle)
except TimeoutError:
    pass
print(count, last, flush=True)
"""


class Counter:
    """A UDP receiver in its own process (the sender's GIL does not slow it down), counting
    datagrams until it has them all or none came for a while (the rest were lost)."""

    def __init__(self, expected: int, idle: float = 2.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(expected), str(idle)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def result(self) -> tuple[int, float]:
        """(datagrams received, time.monotonic() of the last one): the clock is the
        system's monotonic clock, shared with the sending process."""
        out, _ = self.proc.communicate(timeout=120)
        count, last = out.split()
        return int(count), float(last)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sample_note(seq: int) -> Notification:
    from datetime import UTC, datetime

    return Notification(
        seq=seq,
        at=datetime.now(UTC),
        kind=NotificationKind.ALARM_RAISED,
        alarm_id=seq,
        type_id="element-unreachable",
        resource=f"call-server-{seq:06d}",
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


async def ours_traps(count: int, version: str, batch: int = 500) -> tuple[float, int]:
    """(traps/s received, traps lost) through a trap target's delivery path, in
    exporter-sized batches (``[exporters] batch_size``, 500 by default)."""
    receiver = Counter(count)
    oids = MibOids()
    notes = [sample_note(i + 1) for i in range(count)]
    try:
        snmp: dict[str, Any] = {
            "users": [{"name": "bench", "auth_key": "benchauth1", "priv_key": "benchpriv1"}],
            "targets": [
                {
                    "address": f"127.0.0.1:{receiver.port}",
                    "version": version,
                    "community": "public",
                    "user": "bench",
                }
            ],
        }
        settings = settings_from_dict({"snmp": snmp})
        path = trap_path(
            settings.snmp.targets[0],
            oids,
            engine_id=bytes.fromhex(ENGINE_ID),
            boots=1,
            users=settings.snmp.users,
        )
        await path.open()
        booted = time.monotonic()

        def uptime() -> int:
            return int((time.monotonic() - booted) * 100)

        acked: list[int] = []
        start = time.monotonic()
        for first in range(0, count, batch):
            await path.deliver(notes[first : first + batch], uptime, acked.append)
        got, last = await asyncio.to_thread(receiver.result)
        path.close()
        assert acked[-1] == count, acked[-1]
        return got / (last - start), count - got
    finally:
        receiver.close()


async def anchor_traps(count: int, version: str) -> float:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        NotificationType,
        ObjectIdentity,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        send_notification,
        usmAesCfb128Protocol,
        usmHMAC192SHA256AuthProtocol,
    )
    from pysnmp.proto import rfc1902

    receiver = Counter(count)
    try:
        engine = SnmpEngine(rfc1902.OctetString(hexValue=ENGINE_ID))
        auth: Any = (
            CommunityData("public", mpModel=1)
            if version == "v2c"
            else UsmUserData(
                "bench",
                "benchauth1",
                "benchpriv1",
                authProtocol=usmHMAC192SHA256AuthProtocol,
                privProtocol=usmAesCfb128Protocol,
            )
        )
        target = await UdpTransportTarget.create(("127.0.0.1", receiver.port))
        notification = NotificationType(ObjectIdentity("1.3.6.1.4.1.32473.1.0.1")).add_varbinds(
            ("1.3.6.1.4.1.32473.1.1.6.1.0", rfc1902.Unsigned32(1)),
            ("1.3.6.1.4.1.32473.1.1.6.9.0", rfc1902.OctetString("no answer from the call server")),
        )
        start = time.monotonic()
        for _ in range(count):
            await send_notification(engine, auth, target, ContextData(), "trap", notification)
        got, last = await asyncio.to_thread(receiver.result)
        engine.close_dispatcher()
        return got / (last - start)
    finally:
        receiver.close()


WALK_TARGET = 0.7
"""(a): our walk's time over snmpd's."""
TRAP_TARGETS = {"v2c": 20_000, "v3": 8_000}
"""(b): traps per second."""
RSS_TARGET = 200.0
"""(c): MB resident with --big active alarms."""


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--traps", type=int, default=20_000)
    parser.add_argument(
        "--anchor-traps",
        type=int,
        default=2_000,
        help="traps sent through pysnmp for the anchor (it is slow)",
    )
    parser.add_argument("--parts", default="abc", help="which figures: any of a, b, c")
    args = parser.parse_args()
    logger.remove()
    ok = True
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rss_small: float | None = None
        if "a" in args.parts or "c" in args.parts:
            # (a), and (c) at --alarms
            (tmp / "a" / "var").mkdir(parents=True)
            fill_store(tmp / "a" / "var", args.alarms)
            agent = AgentRun(tmp / "a")
            try:
                ours, varbinds = best_walk(agent.snmp_port, TABLE)
                rss_small = agent.rss_mb()
            finally:
                agent.stop()
        if "a" in args.parts:
            theirs, lines = snmpd_anchor(tmp, varbinds)
            ratio = ours / theirs
            met = ratio <= WALK_TARGET
            ok &= met
            print(f"(a) snmpbulkwalk -v2c -Cr50, active alarm table, {args.alarms:,} alarms")
            print(f"    ours  : {ours:6.2f} s for {varbinds:,} varbinds")
            print(f"    snmpd : {theirs:6.2f} s for {lines:,} varbinds (extend output lines)")
            print(f"    ratio ours / snmpd: {ratio:.2f} (target <= {WALK_TARGET}): {verdict(met)}")

        if "b" in args.parts:
            print(
                f"(b) traps delivered to a local UDP receiver, {args.traps:,} through the "
                f"exporter's trap path, {args.anchor_traps:,} through pysnmp"
            )
            for version, target in TRAP_TARGETS.items():
                mine, lost = asyncio.run(ours_traps(args.traps, version))
                base = asyncio.run(anchor_traps(args.anchor_traps, version))
                met = mine >= target and not lost
                ok &= met
                label = "v2c" if version == "v2c" else "v3 authPriv"
                note = f" ({lost:,} lost at the receiver)" if lost else ""
                print(
                    f"    {label:12s} ours {mine:8,.0f}/s{note}   pysnmp send_notification "
                    f"{base:8,.0f}/s   ratio {mine / base:5.1f}   target >= {target:,}/s: "
                    f"{verdict(met)}"
                )

        if "c" in args.parts:
            (tmp / "c" / "var").mkdir(parents=True)
            fill_store(tmp / "c" / "var", args.big)
            agent = AgentRun(tmp / "c")
            try:
                rss_big = agent.rss_mb()
            finally:
                agent.stop()
            met = rss_big <= RSS_TARGET
            ok &= met
            print("(c) agent resident memory (VmRSS) after start")
            print(f"    {args.alarms:>7,} active alarms: {rss_small:7.1f} MB (anchor)")
            print(
                f"    {args.big:>7,} active alarms: {rss_big:7.1f} MB   "
                f"target <= {RSS_TARGET:g} MB: {verdict(met)}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
