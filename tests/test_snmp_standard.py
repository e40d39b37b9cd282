"""The standard objects (SNMPv2-MIB system and snmp groups, sysORTable, SNMP-FRAMEWORK-MIB
snmpEngine, snmpMPDStats, usmStats) and SET over every version, against a running agent
polled with net-snmp."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from agent.export.snmp import ber, standard
from agent.export.snmp.oids import MibOids
from tests.conftest import AgentProcess
from tests.netsnmp import run
from tests.test_snmp_agent import start, v2c, v3

LONG_CONTACT = "é" * 200 + "x" * 100  # not NVT ASCII, and longer than 255
COUNTERS = (
    "snmpInPkts",
    "snmpInBadVersions",
    "snmpInBadCommunityNames",
    "snmpInBadCommunityUses",
    "snmpInASNParseErrs",
    "snmpSilentDrops",
    "snmpProxyDrops",
    "snmpUnknownSecurityModels",
    "snmpInvalidMsgs",
    "snmpUnknownPDUHandlers",
    "usmStatsUnsupportedSecLevels",
    "usmStatsNotInTimeWindows",
    "usmStatsUnknownUserNames",
    "usmStatsUnknownEngineIDs",
    "usmStatsWrongDigests",
    "usmStatsDecryptionErrors",
)
WALKED = ("1.3.6.1.2.1.1", "1.3.6.1.2.1.11", "1.3.6.1.6.3")


def _walk(result: Any) -> dict[str, str]:
    """``snmpwalk -OQs`` output as name.index -> value."""
    assert result.returncode == 0, result.stderr
    return dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)


def _walk_all(agent: AgentProcess, version: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for subtree in WALKED:
        poll = v2c if version == "v2c" else v3
        values |= _walk(poll(agent, "snmpwalk", "-OQs", subtree))
    return values


def _status(agent: AgentProcess) -> dict[str, Any]:
    with agent.http() as http:
        snmp: dict[str, Any] = http.get("/api/v1/status").json()["snmp"]
        return snmp


def _counters(agent: AgentProcess) -> dict[str, int]:
    got = v2c(agent, "snmpget", "-OQs", *(f"{name}.0" for name in COUNTERS))
    return {name.removesuffix(".0"): int(value) for name, value in _walk(got).items()}


def test_standard_objects_agree_over_v2c_and_v3(agent_factory: Any) -> None:
    agent = start(agent_factory, sys_contact=LONG_CONTACT)
    plain, secure = _walk_all(agent, "v2c"), _walk_all(agent, "v3")
    moving = {"sysUpTimeInstance", "snmpEngineTime.0", *(f"{c}.0" for c in COUNTERS)}
    assert {k: v for k, v in plain.items() if k not in moving} == {
        k: v for k, v in secure.items() if k not in moving
    }
    assert set(plain) == set(secure)
    status = _status(agent)
    engine_id = plain["snmpEngineID.0"].replace(" ", "").strip('"').lower()
    assert engine_id == status["engine_id"].lower()
    assert plain["snmpEngineBoots.0"] == str(status["engine_boots"]) == "1"
    assert plain["snmpEngineMaxMessageSize.0"] == "8192"
    assert plain["snmpEnableAuthenTraps.0"] == "disabled"
    assert plain["snmpProxyDrops.0"] == "0"
    assert 0 <= int(plain["snmpSetSerialNo.0"]) <= 2**31 - 1
    # sysORTable: one row per capability, all registered at start.
    ids = [plain[f"sysORID.{i}"] for i in range(1, 5)]
    assert ids == [
        "provsyncCompliance2",
        "snmpMIB",
        "snmpFrameworkMIBCompliance",
        "snmpMPDCompliance",
    ]
    assert "sysORID.5" not in plain
    stamps = {plain[f"sysORUpTime.{i}"] for i in range(1, 5)}
    assert stamps == {plain["sysORLastChange.0"]}
    # DisplayString is NVT ASCII of at most 255 octets (RFC 2579): "?" for what is not.
    contact = plain["sysContact.0"].strip('"')
    assert contact == "?" * 200 + "x" * 55


def test_values_are_the_engines_and_time_matches_v3_timeliness(agent_factory: Any) -> None:
    agent = start(agent_factory)
    state = json.loads((agent.data_dir / "snmp-engine.json").read_text())
    got = v2c(agent, "snmpget", "-Ov", "-Ox", "SNMP-FRAMEWORK-MIB::snmpEngineID.0")
    assert got.stdout.split(":", 1)[1].replace(" ", "").strip().lower() == state["engine_id"]
    # The engine time of the report the agent's USM sends (RFC 3414 4: discovery) and
    # snmpEngineTime come from one clock.
    engine, boots, report_time = _discover(agent.snmp_port)
    served = v2c(
        agent,
        "snmpget",
        "-OqvU",
        "SNMP-FRAMEWORK-MIB::snmpEngineTime.0",
        "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0",
    )
    served_time, served_boots = served.stdout.split()
    assert engine.hex() == state["engine_id"]
    assert boots == int(served_boots) == state["boots"]
    assert 0 <= int(served_time) - report_time <= 1


def test_engine_boots_move_on_restart(agent_factory: Any) -> None:
    agent = start(agent_factory)
    first = v3(
        agent,
        "snmpget",
        "-Oqv",
        "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0",
        "SNMP-FRAMEWORK-MIB::snmpEngineID.0",
    )
    assert first.returncode == 0, first.stderr
    agent.stop()
    agent.start()
    second = v3(
        agent,
        "snmpget",
        "-Oqv",
        "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0",
        "SNMP-FRAMEWORK-MIB::snmpEngineID.0",
    )
    boots, engine_id = first.stdout.split(maxsplit=1)
    assert second.stdout.split(maxsplit=1) == [str(int(boots) + 1), engine_id]
    persisted = json.loads((agent.data_dir / "snmp-engine.json").read_text())["boots"]
    assert persisted == int(boots) + 1 == _status(agent)["engine_boots"]
    # Timeliness restarts with the boots (RFC 3414 2.2.2): seconds, not the last run's.
    time_now = v2c(agent, "snmpget", "-OqvU", "SNMP-FRAMEWORK-MIB::snmpEngineTime.0")
    assert 0 <= int(time_now.stdout) < 30


def test_counters_move_with_what_is_sent(agent_factory: Any) -> None:
    agent = start(agent_factory)
    before = _counters(agent)
    junk = [
        b"\x30\x03\x02\x01",  # truncated: a parse error
        b"\x30\x0e\x02\x01\x05\x04\x06public\xa0\x01\x00",  # version 5: a bad version
        b"\x30\x11\x02\x01\x01\x04\x07private\xa0\x03\x02\x01\x01",  # unknown community
        _v3_header(flags=0x06),  # privacy without authentication: snmpInvalidMsgs
        _v3_header(model=2),  # not USM: snmpUnknownSecurityModels
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in junk:
            sock.sendto(datagram, ("127.0.0.1", agent.snmp_port))
    denied = v2c(agent, "snmpset", "SNMPv2-MIB::sysName.0", "s", "x")
    assert "noAccess" in denied.stdout + denied.stderr
    unknown = v3(agent, "snmpget", "SNMPv2-MIB::sysName.0", user="nobody")
    assert "Unknown user name" in unknown.stdout + unknown.stderr
    wrong = v3(agent, "snmpget", "SNMPv2-MIB::sysName.0", auth_key="not-the-key")
    assert wrong.returncode != 0
    after = _counters(agent)
    moved = {name: after[name] - before[name] for name in COUNTERS}
    assert moved["snmpInASNParseErrs"] == 1
    assert moved["snmpInBadVersions"] == 1
    assert moved["snmpInBadCommunityNames"] == 1
    assert moved["snmpInBadCommunityUses"] == 1  # the v2c SET
    assert moved["snmpInvalidMsgs"] == 1
    assert moved["snmpUnknownSecurityModels"] == 1
    assert moved["usmStatsUnknownUserNames"] == 1
    assert moved["usmStatsWrongDigests"] >= 1  # net-snmp may retry
    # Discovery of each v3 session: an unknown engine ID report each.
    assert moved["usmStatsUnknownEngineIDs"] >= 2
    # Every datagram once: the junk, the SET, each v3 session's discovery and requests
    # (as counted by the reports they got), and the GET that reads the counters.
    sent = (
        len(junk)
        + 1
        + moved["usmStatsUnknownEngineIDs"]
        + moved["usmStatsUnknownUserNames"]
        + moved["usmStatsWrongDigests"]
        + 1
    )
    assert moved["snmpInPkts"] == sent
    assert moved["snmpSilentDrops"] == moved["snmpProxyDrops"] == 0


def test_set_over_v3_gets_an_authenticated_encrypted_no_access(agent_factory: Any) -> None:
    agent = start(agent_factory)
    denied = run(
        "snmpset",
        "-d",
        "-v3",
        "-l",
        "authPriv",
        "-u",
        "ops256",
        "-a",
        "SHA-256",
        "-A",
        "authpass256",
        "-x",
        "AES",
        "-X",
        "privpass256",
        "-t",
        "2",
        "-r",
        "0",
        f"127.0.0.1:{agent.snmp_port}",
        "SNMPv2-MIB::sysName.0",
        "s",
        "evil",
    )
    assert denied.returncode != 0
    output = denied.stdout + denied.stderr
    assert "Reason: noAccess" in output
    assert "Failed object: SNMPv2-MIB::sysName.0" in output
    # The last packet received is the Response: authPriv flags, encrypted scoped PDU.
    received = _dumped_packets(output, "Received")
    assert received, output
    flags, encrypted = _v3_flags_and_data(received[-1])
    assert flags & 0x03 == 0x03
    assert encrypted
    assert _status(agent)["requests"]["v3_set_refused"] == 1
    name = v3(agent, "snmpget", "-Oqv", "SNMPv2-MIB::sysName.0")
    assert name.stdout.strip() != "evil"
    v1 = run(
        "snmpset",
        "-v1",
        "-c",
        "public",
        "-t",
        "2",
        "-r",
        "0",
        f"127.0.0.1:{agent.snmp_port}",
        "SNMPv2-MIB::sysName.0",
        "s",
        "evil",
    )
    assert v1.returncode != 0
    assert "noSuchName" in v1.stdout + v1.stderr


def test_the_whole_view_walks_in_order(agent_factory: Any) -> None:
    agent = start(agent_factory)
    walk = v2c(agent, "snmpbulkwalk", "-On", "-Cc", "1.3.6.1")
    assert walk.returncode == 0, walk.stderr
    oids = [
        tuple(int(arc) for arc in line.split(" ", 1)[0].strip(".").split("."))
        for line in walk.stdout.splitlines()
        if line.startswith(".") and "No more variables" not in line
    ]
    assert oids == sorted(oids)
    assert len(set(oids)) == len(oids)
    firsts = [
        standard.SYS_OR_LAST_CHANGE,
        standard.SYS_OR_ENTRY,
        standard.SNMP_GROUP,
        MibOids().root,
        standard.SNMP_SET,
        standard.SNMP_ENGINE,
        standard.SNMP_MPD_STATS,
        standard.USM_STATS,
    ]
    positions = [next(i for i, o in enumerate(oids) if o[: len(p)] == p) for p in firsts]
    assert positions == sorted(positions)
    v3_walk = v3(agent, "snmpbulkwalk", "-On", "-Cc", "1.3.6.1")
    assert v3_walk.returncode == 0, v3_walk.stderr
    v3_oids = [line.split(" ", 1)[0] for line in v3_walk.stdout.splitlines()]
    assert v3_oids == [line.split(" ", 1)[0] for line in walk.stdout.splitlines()]


def test_display_string_is_nvt_ascii_within_255_octets() -> None:
    assert standard.display_string("a" * 300) == ber.octets(b"a" * 255)
    assert standard.display_string("€" * 100) == ber.octets(b"?" * 100)
    assert standard.display_string("Zürich\track 1") == ber.octets(b"Z?rich?rack 1")
    assert standard.display_string("a" + "€" * 300) == ber.octets(b"a" + b"?" * 254)
    assert standard.display_string("") == ber.octets(b"")


# ------------------------------------------------------------------ raw v3
def _v3_header(flags: int = 0x04, model: int = 3, user: bytes = b"") -> bytes:
    """A v3 GET for sysDescr.0 with ``flags`` and security ``model`` (unauthenticated)."""
    vb = ber.sequence(ber.oid((1, 3, 6, 1, 2, 1, 1, 1, 0)), ber.NULL_VALUE)
    pdu = ber.tlv(ber.GET, ber.integer(1) + ber.integer(0) + ber.integer(0) + ber.sequence(vb))
    scoped = ber.sequence(ber.octets(b""), ber.octets(b""), pdu)
    glob = ber.sequence(
        ber.integer(int(time.time()) & 0xFFFF),
        ber.integer(65507),
        ber.octets(bytes([flags])),
        ber.integer(model),
    )
    usm = ber.sequence(
        ber.octets(b""),
        ber.integer(0),
        ber.integer(0),
        ber.octets(user),
        ber.octets(b""),
        ber.octets(b""),
    )
    return ber.sequence(ber.integer(3), glob, ber.octets(usm), scoped)


def _discover(port: int) -> tuple[bytes, int, int]:
    """(engine ID, boots, time) from the report to an engine-ID discovery."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(_v3_header(), ("127.0.0.1", port))
        report = sock.recv(65535)
    _, start, _ = ber.header(report, 0)
    _, _, position = ber.header(report, start)  # msgVersion
    _, _, position = ber.header(report, position)  # msgGlobalData
    _, params, _ = ber.header(report, position)  # msgSecurityParameters
    _, usm, _ = ber.header(report, params)
    _, e_start, e_end = ber.header(report, usm)
    _, b_start, b_end = ber.header(report, e_end)
    _, t_start, t_end = ber.header(report, b_end)
    return (
        report[e_start:e_end],
        ber.decode_int(report, b_start, b_end),
        ber.decode_int(report, t_start, t_end),
    )


def _dumped_packets(output: str, direction: str) -> list[bytes]:
    """The packets of net-snmp's ``-d`` dump that were ``Sent`` or ``Received``."""
    packets: list[bytes] = []
    current: bytearray | None = None
    for line in output.splitlines():
        if line.startswith(("Sending", "Received")):
            current = bytearray()
            if line.startswith(direction):
                packets.append(b"")
            else:
                current = None
            continue
        found = re.match(r"^[0-9]{4}: ((?:[0-9A-F]{2} ? ?){1,16})", line)
        if found and current is not None:
            current.extend(bytes.fromhex(found.group(1).replace(" ", "")))
            packets[-1] = bytes(current)
    return packets


def _v3_flags_and_data(message: bytes) -> tuple[int, bool]:
    """msgFlags and whether msgData is encrypted (an OCTET STRING)."""
    _, start, _ = ber.header(message, 0)
    _, _, position = ber.header(message, start)
    _, g_start, g_end = ber.header(message, position)
    _, _, after = ber.header(message, g_start)  # msgID
    _, _, after = ber.header(message, after)  # msgMaxSize
    _, f_start, _ = ber.header(message, after)
    _, _, s_end = ber.header(message, g_end)  # msgSecurityParameters
    tag, _, _ = ber.header(message, s_end)
    return message[f_start], tag == ber.OCTET_STRING
