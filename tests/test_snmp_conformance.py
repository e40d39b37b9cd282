"""PROVSYNC-MIB conformance, seen by a second SNMP stack: pysmi compiles the MIB, pysnmp
walks the agent and receives its notifications, snmptrapd (with the MIB loaded from
source) receives them too, and every value is checked against the MIB's syntax.

The data holds the hard cases: texts of 300 and 8,400 octets in multi-byte characters,
an empty and a long qualifier, an element that never synced, every severity, acknowledged
alarms, a site alarm type with long name, description and resolution, events in the log.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    usmAesCfb128Protocol,
    usmHMAC192SHA256AuthProtocol,
)
from pysnmp.proto import rfc1902

from tests.conftest import AgentProcess, free_port, free_udp_port
from tests.mibcheck import (
    MODULE,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    CompiledMib,
    Violation,
    compile_mib,
)
from tests.netsnmp import MIBS, base_mibs, tool

WALK_USER = {
    "name": "ops256",
    "auth_protocol": "SHA-256",
    "auth_key": "authpass256",
    "priv_protocol": "AES-128",
    "priv_key": "privpass256",
}
TRAP_USER = {
    "name": "trapper",
    "auth_protocol": "SHA-256",
    "auth_key": "trapauth123",
    "priv_protocol": "AES-128",
    "priv_key": "trappriv123",
}
ENGINE_ID = "80007ed9050102030405060709"

# Multi-byte texts: octets, not characters, are what SIZE constrains.
TEXT_300 = "é" * 150  # 300 octets
TEXT_8400 = "€" * 2800  # 8,400 octets (the API takes 4,096 characters)
QUALIFIER_LONG = "ü" * 255  # 510 octets
SITE_TYPE = {
    "id": "site-long-texts",
    "name": "Ü" * 255,  # 510 octets
    "kind": "alarm",
    "severity": "minor",
    "event_type": "equipmentAlarm",
    "probable_cause": "powerProblem",
    "description": "描述" * 1400,  # 8,400 octets
    "clear_instructions": "ß" * 200,  # 400 octets
    "resolution": "provsync elements show {resource} | GET /api/v1/elements/{resource} "
    + "→" * 300,
}
SEVERITIES = ("critical", "major", "minor", "warning", "indeterminate")

# What issue 12 lists as mandatory (RFC 3411 snmpEngine group, RFC 3418 snmp group,
# snmpEnableAuthenTraps, sysORLastChange and sysORTable), beside the system group.
STANDARD_OBJECTS = (
    (
        "SNMP-FRAMEWORK-MIB",
        ("snmpEngineID", "snmpEngineBoots", "snmpEngineTime", "snmpEngineMaxMessageSize"),
    ),
    (
        "SNMPv2-MIB",
        (
            "sysDescr",
            "sysObjectID",
            "sysUpTime",
            "sysContact",
            "sysName",
            "sysLocation",
            "sysServices",
            "sysORLastChange",
            "sysORID",
            "sysORDescr",
            "sysORUpTime",
            "snmpInPkts",
            "snmpInBadVersions",
            "snmpInBadCommunityNames",
            "snmpInBadCommunityUses",
            "snmpInASNParseErrs",
            "snmpEnableAuthenTraps",
            "snmpSilentDrops",
            "snmpProxyDrops",
        ),
    ),
)


@pytest.fixture(scope="module")
def mib(tmp_path_factory: pytest.TempPathFactory) -> CompiledMib:
    return CompiledMib(compile_mib(tmp_path_factory.mktemp("pysmi")))


def report(violations: list[Violation], what: str) -> str:
    lines = sorted({str(v) for v in violations})
    return f"{len(lines)} values of {what} break the MIB:\n  " + "\n  ".join(lines)


def test_the_checker_catches_what_breaks_the_mib(mib: CompiledMib) -> None:
    """Each kind of violation the conformance tests rely on, fed to mibcheck directly."""
    text = (*mib.oid(MODULE, "provsyncAlarmText"), 1)
    last_sync = (*mib.oid(MODULE, "provsyncElementLastSync"), 1)
    severity = (*mib.oid(MODULE, "provsyncAlarmSeverity"), 1)
    notify_text = (*mib.oid(MODULE, "provsyncNotifyText"), 0)
    sys_descr = mib.oid("SNMPv2-MIB", "sysDescr")
    octets = rfc1902.OctetString
    bad = {
        "SIZE": (text, octets(b"a" * 256)),
        "not UTF-8": (text, octets(b"\xff")),
        "0 octets": (last_sync, octets(b"")),
        "month 13": (last_sync, octets(bytes.fromhex("07ea0d0100000000"))),
        "direction": (last_sync, octets(bytes.fromhex("07ea0c0100000000200000"))),
        "{": (severity, rfc1902.Integer32(7)),
        "type OctetString": (severity, octets(b"x")),
        "MAX-ACCESS accessible-for-notify": (notify_text, octets(b"x")),
        "NVT ASCII": ((*sys_descr, 0), octets("é".encode())),
        "not .0": ((*sys_descr, 1), octets(b"x")),
    }
    for why, (oid, value) in bad.items():
        found = mib.check(oid, value)
        assert [why in v.why for v in found] == [True], (why, found)
    good = [
        (text, octets("€".encode() * 85)),  # 255 octets
        (last_sync, octets(bytes(8))),  # "unknown" (RFC 4268's convention)
        (last_sync, octets(bytes.fromhex("07ea0c02041f3b092b0530"))),
        (severity, rfc1902.Integer32(3)),
    ]
    assert [v for oid, value in good for v in mib.check(oid, value)] == []

    raised = mib.oid(MODULE, "provsyncAlarmRaised")
    _, objects = mib.objects_of(raised)
    header = [(SYS_UPTIME, rfc1902.TimeTicks(5)), (SNMP_TRAP_OID, univ.ObjectIdentifier(raised))]
    body = [((*mib.oid(module, name), 0), None) for module, name in objects]
    checked = mib.check_notification(header + body[1:])
    assert any("OBJECTS item 1" in v.why for v in checked.violations), checked
    assert mib.check_notification(header[1:] + body).violations[0].name == "notification"


# ------------------------------------------------------------------ data
def populate(agent: AgentProcess) -> dict[str, int]:
    """Alarms, acknowledgements, clears and events with every hard case; returns the
    alarm ids by role and the last notification sequence number."""
    ids: dict[str, int] = {}
    with agent.http() as http:

        def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            answer = http.post(path, json=body)
            assert answer.status_code == 200, (path, answer.text)
            result: dict[str, Any] = answer.json()
            return result

        for severity in SEVERITIES:
            raised = post(
                "/api/v1/alarms",
                {
                    "type": "sync-failed",
                    "resource": f"cm-{severity}",
                    "severity": severity,
                    "text": f"{severity} test",
                },
            )
            ids[severity] = raised["alarm"]["id"]
        ids["text300"] = post(
            "/api/v1/alarms", {"type": "sync-failed", "resource": "cm-300", "text": TEXT_300}
        )["alarm"]["id"]
        long_one = post(
            "/api/v1/alarms",
            {
                "type": SITE_TYPE["id"],
                "resource": "ü" * 255,
                "qualifier": QUALIFIER_LONG,
                "text": TEXT_8400,
            },
        )
        ids["text8400"] = long_one["alarm"]["id"]
        # A change: the same key raised again at another severity, then a text change.
        post(
            "/api/v1/alarms", {"type": "sync-failed", "resource": "cm-change", "severity": "minor"}
        )
        post(
            "/api/v1/alarms",
            {"type": "sync-failed", "resource": "cm-change", "severity": "major", "text": TEXT_300},
        )
        post(f"/api/v1/alarms/{ids['critical']}/ack", {"note": "on it", "by": "ö" * 128})
        post(f"/api/v1/alarms/{ids['text8400']}/ack", {"by": "operator"})
        post(f"/api/v1/alarms/{ids['text8400']}/unack", {"by": "operator"})
        post(f"/api/v1/alarms/{ids['text8400']}/ack", {"note": TEXT_8400, "by": "nöc"})
        cleared = post(
            "/api/v1/alarms",
            {
                "type": "element-unreachable",
                "resource": "cm-gone",
                "qualifier": "primary",
                "text": TEXT_8400,
            },
        )
        post(f"/api/v1/alarms/{cleared['alarm']['id']}/clear", {"note": TEXT_300})
        post("/api/v1/alarms", {"type": "sync-failed", "resource": "cm-clear"})
        post("/api/v1/alarms/clear", {"type": "sync-failed", "resource": "cm-clear"})
        ids["last_seq"] = post("/api/v1/test", {"text": TEXT_8400, "by": "tests"})["seq"]
    return ids


def never_synced_element(agent: AgentProcess) -> None:
    """An element whose initialization sync cannot reach it: it never synced. Returns once
    the failure's alarms and event are in (the walks must not race them)."""
    with agent.http() as http:
        added = http.post(
            "/api/v1/elements",
            json={
                "name": "never-synced",
                "url": f"http://127.0.0.1:{free_port()}",
                "username": "admin",
                "password": "x",
                "interval": 0,
            },
        )
        assert added.status_code == 200, added.text
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            events = http.get("/api/v1/events", params={"resource": "never-synced"}).json()
            alarms = http.get("/api/v1/alarms", params={"resource": "never-synced"}).json()
            if {e["type"] for e in events} >= {"init-sync-failed"} and {
                a["type"] for a in alarms
            } >= {"element-unreachable", "sync-failed"}:
                return
            time.sleep(0.05)
        raise AssertionError(f"the element's failed sync left no trace: {alarms} {events}")


# ------------------------------------------------------------------ walk
Varbinds = list[tuple[tuple[int, ...], Any]]


async def _walk(port: int, auth: CommunityData | UsmUserData) -> Varbinds:
    snmp = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
        found: Varbinds = []
        async for error, status, index, varbinds in bulk_walk_cmd(
            snmp,
            auth,
            target,
            ContextData(),
            0,
            25,
            ObjectType(ObjectIdentity("1.3.6.1")),
            lookupMib=False,
            lexicographicMode=True,
        ):
            assert not error, f"walk stopped: {error}"
            assert not status, f"walk stopped: {status.prettyPrint()} at {index}"
            found.extend((tuple(name), value) for name, value in varbinds)
        return found
    finally:
        snmp.close_dispatcher()


def walk(agent: AgentProcess, auth: CommunityData | UsmUserData) -> Varbinds:
    return asyncio.run(_walk(agent.snmp_port, auth))


def v3_walker() -> UsmUserData:
    return UsmUserData(
        WALK_USER["name"],
        WALK_USER["auth_key"],
        WALK_USER["priv_key"],
        authProtocol=usmHMAC192SHA256AuthProtocol,
        privProtocol=usmAesCfb128Protocol,
    )


def served_objects(mib: CompiledMib, varbinds: Varbinds) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for oid, _ in varbinds:
        module, name, _ = mib.locate(oid)
        counts[module, name] = counts.get((module, name), 0) + 1
    return counts


def readable_objects(mib: CompiledMib, module: str) -> list[str]:
    """The OBJECT-TYPEs of ``module`` a GET can read, not obsolete."""
    found = []
    for name, node in mib.builder.mibSymbols[module].items():
        if type(node).__name__ not in ("MibScalar", "MibTableColumn"):
            continue
        status = str(getattr(node, "getStatus", lambda: "current")())
        if str(node.getMaxAccess()) in ("read-only", "read-write") and status != "obsolete":
            found.append(name)
    return found


def test_walk_every_value_fits_the_compiled_mib(agent_factory: Any, mib: CompiledMib) -> None:
    agent: AgentProcess = agent_factory(
        {"snmp": {"users": [WALK_USER]}, "alarm_types": [SITE_TYPE]}
    ).start()
    never_synced_element(agent)
    ids = populate(agent)
    plain = walk_until(agent, mib, lambda counts: (MODULE, "provsyncElementName") in counts)
    secure = walk(agent, v3_walker())

    # Every value of both walks against its syntax, and the objects that must be there,
    # all reported at once.
    violations = [v for oid, value in plain + secure for v in mib.check(oid, value)]
    counts = served_objects(mib, plain)
    missing_standard = [
        f"{module}::{name}"
        for module, names in STANDARD_OBJECTS
        for name in names
        if (module, name) not in counts
    ]
    missing_own = [name for name in readable_objects(mib, MODULE) if (MODULE, name) not in counts]
    failures = []
    if violations:
        failures.append(report(violations, "the walk"))
    if missing_standard:
        failures.append(f"mandatory standard objects not served: {missing_standard}")
    if missing_own:
        failures.append(f"readable {MODULE} objects with no instance: {missing_own}")
    assert not failures, "\n".join(failures)

    # The same objects over v2c and v3 authPriv (values of counters and clocks move).
    assert [oid for oid, _ in secure] == [oid for oid, _ in plain]

    # The hard cases are really in what was walked.
    values = dict(plain)
    alarm_text = mib.oid(MODULE, "provsyncAlarmText")
    for role, full in (("text300", TEXT_300), ("text8400", TEXT_8400)):
        assert (*alarm_text, ids[role]) in values, f"no provsyncAlarmText for {role}"
        # As the MIB says: cut on a character boundary, ending with the marker U+2026.
        served_text = bytes(values[(*alarm_text, ids[role])].asOctets()).decode()
        assert served_text.endswith("\u2026"), served_text[-10:]
        assert full.startswith(served_text[:-1]), role
    severity = mib.oid(MODULE, "provsyncAlarmSeverity")
    served = {int(values[(*severity, ids[s])]) for s in SEVERITIES}
    assert served == {2, 3, 4, 5, 6}, served  # ProvsyncSeverity, RFC 3877's numbering
    assert counts[MODULE, "provsyncLogTime"] >= 10
    assert counts[MODULE, "provsyncAlarmTypeId"] >= 20
    in_pkts = values[(*mib.oid("SNMPv2-MIB", "snmpInPkts"), 0)]
    assert int(in_pkts) > 0, "snmpInPkts counts nothing"


def walk_until(
    agent: AgentProcess, mib: CompiledMib, ready: Callable[[dict[tuple[str, str], int]], bool]
) -> Varbinds:
    """Walk over v2c until ``ready`` holds for what was served (the element table follows
    the sync engine's writes a moment later than the alarms)."""
    deadline = time.monotonic() + 15
    while True:
        found = walk(agent, CommunityData("public"))
        if ready(served_objects(mib, found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


# ------------------------------------------------------------------ receivers
@dataclass
class Received:
    """One notification as a receiver decoded it."""

    receiver: str
    varbinds: Varbinds
    problems: list[str]

    @property
    def trap(self) -> tuple[int, ...]:
        for oid, value in self.varbinds:
            if oid == SNMP_TRAP_OID:
                return tuple(value)
        return ()

    def value(self, oid: tuple[int, ...]) -> Any:
        return next((v for o, v in self.varbinds if o == oid), None)


class PysnmpReceiver:
    """pysnmp's NotificationReceiver on a loopback port, v2c and v3 authPriv, in a thread
    with its own event loop; records every notification's raw varbinds."""

    def __init__(self) -> None:
        self.port = free_udp_port()
        self.got: dict[str, list[Received]] = {"v2c": [], "v3": []}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._engine: engine.SnmpEngine | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        snmp = engine.SnmpEngine()
        self._engine = snmp
        config.add_transport(
            snmp,
            udp.DOMAIN_NAME,
            udp.UdpAsyncioTransport().open_server_mode(("127.0.0.1", self.port)),
        )
        config.add_v1_system(snmp, "receiver", "public")
        config.add_v3_user(
            snmp,
            TRAP_USER["name"],
            usmHMAC192SHA256AuthProtocol,
            TRAP_USER["auth_key"],
            usmAesCfb128Protocol,
            TRAP_USER["priv_key"],
            securityEngineId=univ.OctetString(hexValue=ENGINE_ID),
        )

        def on_notification(
            snmp_engine: Any, state: Any, _engine_id: Any, _context: Any, varbinds: Any, _ctx: Any
        ) -> None:
            context = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
            version = "v3" if int(context["securityModel"]) == 3 else "v2c"
            pairs = [(tuple(name), value) for name, value in varbinds]
            with self._lock:
                self.got[version].append(Received(f"pysnmp {version}", pairs, []))

        ntfrcv.NotificationReceiver(snmp, on_notification)
        self._ready.set()
        self._loop.run_forever()
        snmp.close_dispatcher()
        # The transport's close completes in a callback: give it a turn of the loop.
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self) -> PysnmpReceiver:
        self._thread.start()
        assert self._ready.wait(10), "pysnmp receiver did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def received(self, version: str) -> list[Received]:
        with self._lock:
            return list(self.got[version])


# snmptrapd logs one record per notification between these separators: varbinds are
# numeric OIDs with net-snmp's type names; strings without a DISPLAY-HINT in hex (-Ox),
# enumerations as numbers (-Oe), without UNITS (-OU).
RECORD, FIELD, VARBIND, END = "\x1d", "\x1f", "\x1e", "\x1c"


class RawTrapd:
    """snmptrapd with PROVSYNC-MIB loaded from its source (-M / -m), logging raw varbinds."""

    def __init__(self, root: Path) -> None:
        self.port = free_udp_port()
        self.log = root / "snmptrapd-raw.log"
        self.config = root / "snmptrapd-raw.conf"
        self.config.write_text("authCommunity log public\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RawTrapd:
        self.proc = subprocess.Popen(
            [
                tool("snmptrapd"),
                "-f",
                "-C",
                "-c",
                str(self.config),
                "-M",
                f"{base_mibs()}:{MIBS}",
                "-m",
                f"+{MODULE}",
                "-On",
                "-Ox",
                "-Oe",
                "-OU",
                "-Lf",
                str(self.log),
                "-F",
                f"{RECORD}%P{FIELD}%V{VARBIND}%v{END}\n",
                f"--persistentDir={self.log.parent / 'trapd-persist'}",
                f"udp:127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"NET-SNMP version" not in self._bytes():
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def _bytes(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""

    def received(self, mib: CompiledMib) -> list[Received]:
        text = self._bytes().decode("utf-8", errors="surrogateescape")
        found = []
        for record in text.split(RECORD)[1:]:
            if END not in record:
                continue  # still being written
            _security, _, varbinds = record.split(END)[0].partition(FIELD)
            pairs: Varbinds = []
            problems: list[str] = []
            for item in varbinds.split(VARBIND):
                name, _, shown = item.partition(" = ")
                oid = tuple(int(arc) for arc in name.strip(".").split("."))
                try:
                    pairs.append((oid, parse_netsnmp(mib, oid, shown)))
                except ValueError as exc:
                    problems.append(f"{name}: {exc}")
            found.append(Received("snmptrapd", pairs, problems))
        return found


_DATE_AND_TIME = re.compile(r"(\d+)-(\d+)-(\d+),(\d+):(\d+):(\d+)\.(\d+)(?:,([+-])(\d+):(\d+))?")
_NETSNMP_INTEGERS = {
    "INTEGER": univ.Integer,
    "Gauge32": rfc1902.Gauge32,
    "Counter32": rfc1902.Counter32,
    "Counter64": rfc1902.Counter64,
}


def parse_netsnmp(mib: CompiledMib, oid: tuple[int, ...], shown: str) -> Any:
    """The ASN.1 value behind one varbind as snmptrapd prints it; ValueError for what the
    MIB-aware receiver flags itself (``Wrong Type``) or cannot be read back."""
    if shown.startswith("Wrong Type"):
        raise ValueError(f"snmptrapd: {shown[:200]}")
    kind, _, text = shown.partition(": ")
    if kind == "Hex-STRING":
        return univ.OctetString(bytes.fromhex("".join(text.split())))
    if kind == "STRING":
        # Printed through the object's DISPLAY-HINT: octets as they came, or DateAndTime's.
        raw = text.encode("utf-8", errors="surrogateescape")
        module, name, _ = mib.locate(oid)
        if type(mib.symbol(module, name).getSyntax()).__name__ != "DateAndTime" or not raw:
            return univ.OctetString(raw)
        match = _DATE_AND_TIME.fullmatch(text)
        if match is None:
            raise ValueError(f"DateAndTime snmptrapd could not render: {text!r}")
        year, *fields = match.groups()
        octets = int(year).to_bytes(2, "big") + bytes(int(f) for f in fields[:6])
        if fields[6]:
            octets += fields[6].encode() + bytes((int(fields[7]), int(fields[8])))
        return univ.OctetString(octets)
    if kind in _NETSNMP_INTEGERS:
        return _NETSNMP_INTEGERS[kind](int(text.split()[0]))
    if kind == "Timeticks":
        return rfc1902.TimeTicks(int(text.split(")")[0].strip("(")))
    if kind == "OID":
        return univ.ObjectIdentifier(text.strip().strip("."))
    raise ValueError(f"unexpected snmptrapd value {shown[:100]!r}")


@pytest.fixture
def pysnmp_receiver() -> Iterator[PysnmpReceiver]:
    receiver = PysnmpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def raw_trapd(tmp_path: Path) -> Iterator[RawTrapd]:
    receiver = RawTrapd(tmp_path).start()
    yield receiver
    receiver.stop()


def target(name: str, port: int, version: str) -> dict[str, Any]:
    made: dict[str, Any] = {
        "name": name,
        "address": f"127.0.0.1:{port}",
        "version": version,
        "kind": "trap",
    }
    made.update({"community": "public"} if version == "v2c" else {"user": TRAP_USER["name"]})
    return made


def sequence(mib: CompiledMib, received: Received) -> int | None:
    value = received.value((*mib.oid(MODULE, "provsyncNotifySequence"), 0))
    return None if value is None else int(value)


def wait_for_sequence(
    collect: Callable[[], list[Received]], mib: CompiledMib, last: int, within: float = 20
) -> list[Received]:
    deadline = time.monotonic() + within
    while True:
        got = collect()
        if any(sequence(mib, r) == last for r in got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def comparable(received: Received) -> list[tuple[tuple[int, ...], str, str]]:
    """The varbinds as (OID, ASN.1 tag, payload), without sysUpTime (each target's PDU is
    stamped on its own)."""
    found = []
    for oid, value in received.varbinds:
        if oid == SYS_UPTIME:
            continue
        if isinstance(value, univ.OctetString):
            payload = bytes(value.asOctets()).hex()
        elif isinstance(value, univ.ObjectIdentifier):
            payload = str(value)
        else:
            payload = str(int(value))
        found.append((oid, str(value.tagSet), payload))
    return found


def test_every_notification_fits_the_compiled_mib_at_both_receivers(
    agent_factory: Any, mib: CompiledMib, raw_trapd: RawTrapd, pysnmp_receiver: PysnmpReceiver
) -> None:
    targets = [
        target("trapd-v2c", raw_trapd.port, "v2c"),
        target("pysnmp-v2c", pysnmp_receiver.port, "v2c"),
        target("pysnmp-v3", pysnmp_receiver.port, "v3"),
    ]
    agent: AgentProcess = agent_factory(
        {
            "snmp": {"engine_id": ENGINE_ID, "users": [TRAP_USER], "targets": targets},
            "alarm_types": [SITE_TYPE],
        }
    ).start()
    last = populate(agent)["last_seq"]

    at: dict[str, list[Received]] = {
        "snmptrapd v2c": wait_for_sequence(lambda: raw_trapd.received(mib), mib, last),
        "pysnmp v2c": wait_for_sequence(lambda: pysnmp_receiver.received("v2c"), mib, last),
        "pysnmp v3": wait_for_sequence(lambda: pysnmp_receiver.received("v3"), mib, last),
    }
    for receiver, got in at.items():
        seqs = [sequence(mib, r) for r in got]
        assert last in seqs, f"{receiver} got no notification {last}: {seqs}"

    violations: list[Violation] = []
    unreadable: list[str] = []
    for receiver, got in at.items():
        for received in got:
            unreadable += [f"{receiver}: {p}" for p in received.problems]
            checked = mib.check_notification(received.varbinds)
            violations += [
                Violation(v.oid, f"{receiver} {checked.trap} {v.name}", v.index, v.why)
                for v in checked.violations
            ]
    assert not unreadable, "\n".join(unreadable)
    assert not violations, report(violations, "the notifications")

    # The same notifications at every receiver, in the same order; v2c ones varbind for
    # varbind (v3 ones too: only the security around them differs).
    traps = {receiver: [(r.trap, sequence(mib, r)) for r in got] for receiver, got in at.items()}
    assert traps["pysnmp v2c"] == traps["snmptrapd v2c"]
    assert traps["pysnmp v3"] == traps["snmptrapd v2c"]
    for left, right in zip(at["snmptrapd v2c"], at["pysnmp v2c"], strict=True):
        assert comparable(left) == comparable(right)
    for left, right in zip(at["pysnmp v3"], at["pysnmp v2c"], strict=True):
        assert comparable(left) == comparable(right)
    kinds = {mib.locate(trap)[1] for trap, _ in traps["pysnmp v2c"]}
    assert {
        "provsyncAlarmRaised",
        "provsyncAlarmChanged",
        "provsyncAlarmCleared",
        "provsyncEvent",
    } <= kinds, kinds
