"""SNMP figures of the agent, each against an anchor measured in the same run.

(a) `snmpbulkwalk -v2c -Cr50` of the active alarm table holding 10,000 alarms, against
    net-snmp's snmpd on another local port serving the same number of varbinds through
    `extend` output lines. Target: ours <= 1.5 x snmpd's time.
(b) traps per second delivered to a local UDP receiver, v2c and v3 authPriv, against a
    loop of pysnmp's high-level `send_notification`. Targets: >= 5,000 v2c and >= 2,000
    v3 authPriv traps/s.
(c) the agent's resident memory with 10,000 and 100,000 active alarms.

    .venv/bin/python bench/snmp.py [--alarms 10000] [--traps 5000] [--big 100000]
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
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import tomli_w
from loguru import logger

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.alarms.operations import RaiseOp
from agent.alarms.records import Notification, NotificationKind
from agent.alarms.severity import Severity
from agent.config import settings_from_dict
from agent.export.snmp.notify import notification_vars
from agent.export.snmp.oids import MibOids
from agent.export.snmp.v2c import V2cSender
from agent.export.snmp.v3trap import V3TrapEncoder
from agent.store.database import Store

BIN = Path(sys.executable).parent
TABLE = "1.3.6.1.4.1.32473.1.1.3"
EXTEND_LINES = "1.3.6.1.4.1.8072.1.3.2.4.1.2"  # NET-SNMP-EXTEND-MIB::nsExtendOutLine
LINES_PER_EXTEND = 2000  # snmpd keeps only about 128 KB of one command's output
ENGINE_ID = "80007ed9050a0b0c0d0e0f1011"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fill_store(data_dir: Path, count: int) -> None:
    store = Store(f"sqlite:///{data_dir / 'provsync.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog(), batch_max=2000)
    manager.start()
    futures = [
        manager.submit(
            RaiseOp("element-unreachable", f"call-server-{i:06d}", "", Severity.MAJOR,
                    f"no answer from call-server-{i:06d}", "bench")
        )
        for i in range(count)
    ]  # fmt: skip
    for future in futures:
        future.result()
    manager.stop()
    store.close()


class AgentRun:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.snmp_port = free_port()
        self.api_port = free_port(socket.SOCK_STREAM)
        config = {
            "agent": {"data_dir": str(root / "var"), "log_level": "WARNING"},
            "api": {"listen": f"127.0.0.1:{self.api_port}", "token": "bench"},
            "snmp": {"listen": [f"127.0.0.1:{self.snmp_port}"], "heartbeat_interval": "0s",
                     "communities": [{"name": "public"}]},
            "exporters": {"file": []},
        }  # fmt: skip
        (root / "p.toml").write_text(tomli_w.dumps(config))
        self.proc = subprocess.Popen(
            [str(BIN / "provsync"), "--config", str(root / "p.toml"), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.api_port}/api/v1/health").status_code == 200:
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
        ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr50", "-On", "-t", "10",
         f"127.0.0.1:{port}", oid],
        capture_output=True, text=True, check=True, env={**os.environ, "MIBS": ""},
    )  # fmt: skip
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
    port = free_port()
    conf = tmp / "snmpd.conf"
    conf.write_text("\n".join(config) + "\n")
    proc = subprocess.Popen(
        [snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp / "snmpd.pid"),
         f"udp:127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "snmpd-state"), "MIBS": ""},
    )  # fmt: skip
    try:
        time.sleep(1.0)
        return best_walk(port, EXTEND_LINES)
    finally:
        proc.terminate()
        proc.wait(10)


class Counter(threading.Thread):
    """A UDP receiver that counts datagrams until told to stop."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.sock.recv(65535)
                self.count += 1
            except TimeoutError:
                continue

    def wait_for(self, count: int, within: float = 60) -> float:
        deadline = time.perf_counter() + within
        while self.count < count and time.perf_counter() < deadline:
            time.sleep(0.001)
        return time.perf_counter()

    def close(self) -> None:
        self.running = False
        self.join()
        self.sock.close()


def sample_note(seq: int) -> Notification:
    from datetime import UTC, datetime

    return Notification(
        seq=seq, at=datetime.now(UTC), kind=NotificationKind.ALARM_RAISED, alarm_id=seq,
        type_id="element-unreachable", resource=f"call-server-{seq:06d}", qualifier="",
        severity="major", text="no answer from the call server", raise_seq=0,
        payload={"type_name": "Element Unreachable", "event_type": "communicationsAlarm",
                 "probable_cause": "communicationsSubsystemFailure"},
    )  # fmt: skip


async def ours_traps(count: int, version: str) -> float:
    receiver = Counter()
    receiver.start()
    oids = MibOids()
    notes = [sample_note(i + 1) for i in range(count)]
    try:
        sender = V2cSender(f"127.0.0.1:{receiver.port}", b"public")
        await sender.open()
        encoder = None
        if version == "v3":
            settings = settings_from_dict(
                {
                    "snmp": {
                        "users": [
                            {"name": "bench", "auth_key": "benchauth1", "priv_key": "benchpriv1"}
                        ]
                    }
                }
            )
            encoder = V3TrapEncoder(bytes.fromhex(ENGINE_ID), 1, settings.snmp.users[0])
        start = time.perf_counter()
        for index, note in enumerate(notes):
            varbinds = notification_vars(note, oids, index)
            if encoder is None:
                sender.trap(varbinds)
            else:
                sender.send(encoder.encode(varbinds))
            if index % 256 == 0:
                await asyncio.sleep(0)  # let the loop flush, as the exporter does
        await asyncio.sleep(0)
        end = await asyncio.to_thread(receiver.wait_for, count)
        return receiver.count / (end - start)
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
    )  # fmt: skip
    from pysnmp.proto import rfc1902

    receiver = Counter()
    receiver.start()
    try:
        engine = SnmpEngine(rfc1902.OctetString(hexValue=ENGINE_ID))
        auth: Any = (
            CommunityData("public", mpModel=1) if version == "v2c" else
            UsmUserData("bench", "benchauth1", "benchpriv1",
                        authProtocol=usmHMAC192SHA256AuthProtocol,
                        privProtocol=usmAesCfb128Protocol)
        )  # fmt: skip
        target = await UdpTransportTarget.create(("127.0.0.1", receiver.port))
        notification = NotificationType(ObjectIdentity("1.3.6.1.4.1.32473.1.0.1")).add_varbinds(
            ("1.3.6.1.4.1.32473.1.1.6.1.0", rfc1902.Unsigned32(1)),
            ("1.3.6.1.4.1.32473.1.1.6.9.0", rfc1902.OctetString("no answer from the call server")),
        )
        start = time.perf_counter()
        for _ in range(count):
            await send_notification(engine, auth, target, ContextData(), "trap", notification)
        end = await asyncio.to_thread(receiver.wait_for, count, 30)
        engine.close_dispatcher()
        return receiver.count / (end - start)
    finally:
        receiver.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--traps", type=int, default=5_000)
    args = parser.parse_args()
    logger.remove()
    ok = True
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # (a) and (c) at 10,000
        (tmp / "a" / "var").mkdir(parents=True)
        fill_store(tmp / "a" / "var", args.alarms)
        agent = AgentRun(tmp / "a")
        try:
            ours, varbinds = best_walk(agent.snmp_port, TABLE)
            rss_small = agent.rss_mb()
        finally:
            agent.stop()
        theirs, lines = snmpd_anchor(tmp, varbinds)
        ratio = ours / theirs
        print(f"(a) snmpbulkwalk -v2c -Cr50, active alarm table, {args.alarms:,} alarms")
        print(f"    ours  : {ours:6.2f} s for {varbinds:,} varbinds")
        print(f"    snmpd : {theirs:6.2f} s for {lines:,} varbinds (extend output lines)")
        verdict = "met" if ratio <= 1.5 else "NOT met"
        print(f"    ratio ours / snmpd: {ratio:.2f} (target <= 1.5): {verdict}")
        ok &= ratio <= 1.5

        # (b)
        print(f"(b) traps delivered to a local UDP receiver, {args.traps:,} each")
        for version, target in (("v2c", 5000), ("v3", 2000)):
            mine = asyncio.run(ours_traps(args.traps, version))
            base = asyncio.run(anchor_traps(min(args.traps, 2000), version))
            met = mine >= target
            ok &= met
            label = "v2c" if version == "v2c" else "v3 authPriv"
            print(f"    {label:12s} ours {mine:8,.0f}/s   pysnmp send_notification {base:8,.0f}/s"
                  f"   ratio {mine / base:5.1f}   target >= {target:,}/s: "
                  f"{'met' if met else 'NOT met'}")  # fmt: skip

        # (c)
        (tmp / "c" / "var").mkdir(parents=True)
        fill_store(tmp / "c" / "var", args.big)
        agent = AgentRun(tmp / "c")
        try:
            rss_big = agent.rss_mb()
        finally:
            agent.stop()
        print("(c) agent resident memory (VmRSS) after start")
        print(f"    {args.alarms:>7,} active alarms: {rss_small:7.1f} MB")
        print(f"    {args.big:>7,} active alarms: {rss_big:7.1f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
