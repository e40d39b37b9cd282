"""The SNMP command responder of a running agent, polled with net-snmp tools."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from tests.conftest import AgentProcess, free_udp_port
from tests.netsnmp import run

USERS = [
    {
        "name": "ops256",
        "auth_protocol": "SHA-256",
        "auth_key": "authpass256",
        "priv_protocol": "AES-128",
        "priv_key": "privpass256",
    },
    {
        "name": "ops512",
        "auth_protocol": "SHA-512",
        "auth_key": "authpass512",
        "priv_protocol": "AES-128",
        "priv_key": "privpass512",
    },
]


def start(agent_factory: Any, **snmp: Any) -> AgentProcess:
    agent: AgentProcess = agent_factory({"snmp": {"users": USERS, **snmp}})
    agent.start()
    return agent


def v2c(agent: AgentProcess, command: str, *args: str, community: str = "public") -> Any:
    return run(
        command,
        "-v2c",
        "-c",
        community,
        "-t",
        "2",
        "-r",
        "1",
        f"127.0.0.1:{agent.snmp_port}",
        *args,
    )


def v3(
    agent: AgentProcess,
    command: str,
    *args: str,
    user: str = "ops256",
    auth: str = "SHA-256",
    auth_key: str = "authpass256",
    priv_key: str = "privpass256",
) -> Any:
    return run(
        command,
        "-v3",
        "-l",
        "authPriv",
        "-u",
        user,
        "-a",
        auth,
        "-A",
        auth_key,
        "-x",
        "AES",
        "-X",
        priv_key,
        "-t",
        "2",
        "-r",
        "1",
        f"127.0.0.1:{agent.snmp_port}",
        *args,
    )


def raise_three(agent: AgentProcess) -> None:
    with agent.http() as http:
        for body in (
            {"type": "sync-failed", "resource": "cm1", "text": "job 7 failed"},
            {"type": "element-unreachable", "resource": "cm2", "qualifier": "primary"},
            {"type": "auth-failed-missing", "resource": "cm3"},
        ):
            assert http.post("/api/v1/alarms", json=body).status_code == 200


def test_snmptable_shows_active_alarms(agent_factory: Any) -> None:
    agent = start(agent_factory)
    raise_three(agent)
    table = v2c(
        agent, "snmptable", "-Cf", "|", "-Cw", "400", "PROVSYNC-MIB::provsyncActiveAlarmTable"
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split("|") for line in table.stdout.splitlines() if line.count("|") > 5]
    header, data = rows[0], rows[1:]
    assert len(data) == 3
    column = {name: i for i, name in enumerate(header)}
    severity = [row[column["provsyncAlarmSeverity"]] for row in data]
    assert severity == ["major", "major", "critical"]
    assert [row[column["provsyncAlarmResource"]] for row in data] == ["cm1", "cm2", "cm3"]
    assert data[1][column["provsyncAlarmQualifier"]] == "primary"
    assert data[0][column["provsyncAlarmText"]] == "job 7 failed"
    assert data[0][column["provsyncAlarmEventType"]] == "processingErrorAlarm"
    assert re.match(
        r"\d{4}-\d+-\d+,\d+:\d+:\d+\.\d,\+0:0", data[0][column["provsyncAlarmRaisedTime"]]
    )


@pytest.mark.parametrize(
    ("user", "auth", "key", "priv"),
    [
        ("ops256", "SHA-256", "authpass256", "privpass256"),
        ("ops512", "SHA-512", "authpass512", "privpass512"),
    ],
)
def test_v3_authpriv_walk_equals_v2c(
    agent_factory: Any, user: str, auth: str, key: str, priv: str
) -> None:
    agent = start(agent_factory)
    raise_three(agent)
    plain = v2c(agent, "snmpbulkwalk", "-On", "PROVSYNC-MIB::provsyncObjects")
    secure = v3(
        agent,
        "snmpbulkwalk",
        "-On",
        "PROVSYNC-MIB::provsyncObjects",
        user=user,
        auth=auth,
        auth_key=key,
        priv_key=priv,
    )
    assert secure.returncode == 0, secure.stderr
    uptime = re.compile(r"^\.1\.3\.6\.1\.2\.1\.1\.3\.0.*$", re.MULTILINE)
    assert uptime.sub("", secure.stdout) == uptime.sub("", plain.stdout)
    assert ".1.3.6.1.4.1.32473.1.1.3.1.6.3 = INTEGER: critical(3)" in secure.stdout
    system = v3(
        agent,
        "snmpget",
        "-Ov",
        "SNMPv2-MIB::sysName.0",
        user=user,
        auth=auth,
        auth_key=key,
        priv_key=priv,
    )
    assert system.returncode == 0, system.stderr


def test_bad_credentials_get_no_answer_and_the_agent_keeps_serving(agent_factory: Any) -> None:
    agent = start(agent_factory)
    wrong_community = v2c(agent, "snmpget", "SNMPv2-MIB::sysDescr.0", community="private")
    assert wrong_community.returncode != 0
    assert "Timeout" in wrong_community.stderr
    wrong_key = v3(agent, "snmpget", "SNMPv2-MIB::sysDescr.0", auth_key="not-the-key")
    assert wrong_key.returncode != 0
    unknown_user = v3(agent, "snmpget", "SNMPv2-MIB::sysDescr.0", user="nobody")
    assert unknown_user.returncode != 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (
            b"",
            b"\x30",
            b"\x30\x03\x02\x01\x01",
            b"\x30\x82\xff\xff" + b"\x00" * 10,
            bytes(range(256)),
            b"\x30\x0b\x02\x01\x01\x04\x06public",
        ):
            sock.sendto(junk, ("127.0.0.1", agent.snmp_port))
    good = v2c(agent, "snmpget", "-Ov", "SNMPv2-MIB::sysDescr.0")
    assert good.returncode == 0
    assert "provsync" in good.stdout
    with agent.http() as http:
        counters = http.get("/api/v1/status").json()["snmp"]["requests"]
    assert counters["bad_community_names"] >= 1
    assert counters["parse_errors"] >= 3


def test_read_only_and_v1(agent_factory: Any) -> None:
    agent = start(agent_factory)
    denied = v2c(agent, "snmpset", "SNMPv2-MIB::sysName.0", "s", "evil")
    assert denied.returncode != 0
    assert "noAccess" in denied.stderr or "noAccess" in denied.stdout
    v1 = run(
        "snmpget",
        "-v1",
        "-c",
        "public",
        f"127.0.0.1:{agent.snmp_port}",
        "PROVSYNC-MIB::provsyncActiveAlarms.0",
        "SNMPv2-MIB::sysUpTime.0",
    )
    assert v1.returncode == 0, v1.stderr
    assert "Gauge32: 0" in v1.stdout
    missing = run(
        "snmpget",
        "-v1",
        "-c",
        "public",
        f"127.0.0.1:{agent.snmp_port}",
        "PROVSYNC-MIB::provsyncAlarmSeverity.999",
    )
    assert "noSuchName" in missing.stdout + missing.stderr


def test_get_answers_current_data_and_exceptions(agent_factory: Any) -> None:
    agent = start(agent_factory)
    with agent.http() as http:
        raised = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm9"})
        alarm_id = raised.json()["alarm"]["id"]
    # Polled at once: the agent brings its view up to date before answering.
    names = (
        f"PROVSYNC-MIB::provsyncAlarmResource.{alarm_id}",
        "PROVSYNC-MIB::provsyncAlarmResource.999",
        "SNMPv2-SMI::enterprises.9.1.0",
    )
    got = v2c(agent, "snmpget", "-Ov", *names)
    lines = got.stdout.splitlines()
    assert lines[0] == 'STRING: "cm9"' or lines[0] == "STRING: cm9"
    assert "No Such Instance" in lines[1]
    assert "No Such Object" in lines[2]
    with agent.http() as http:
        http.post(f"/api/v1/alarms/{alarm_id}/clear")
    gone = v2c(agent, "snmpget", "-Ov", f"PROVSYNC-MIB::provsyncAlarmResource.{alarm_id}")
    assert "No Such Instance" in gone.stdout
    # Past PROVSYNC-MIB come the standard objects under snmpModules, then the end.
    after = v2c(agent, "snmpgetnext", "-On", "1.3.6.1.4.1.32473.1.9")
    assert after.stdout.startswith(".1.3.6.1.6.3.1.1.6.1.0 = INTEGER: ")  # snmpSetSerialNo
    end = v2c(agent, "snmpgetnext", "-Ov", "1.3.6.1.6.3.15.1.1.6.0")  # the last usmStats
    assert "No more variables" in end.stdout + end.stderr


def test_scalars_count_by_severity(agent_factory: Any) -> None:
    agent = start(agent_factory)
    raise_three(agent)
    walk = v2c(agent, "snmpwalk", "-OQsU", "PROVSYNC-MIB::provsyncAgent")
    values = dict(line.split(" = ", 1) for line in walk.stdout.splitlines())
    assert values["provsyncActiveAlarms.0"] == "3"
    assert values["provsyncActiveMajor.0"] == "2"
    assert values["provsyncActiveCritical.0"] == "1"
    assert values["provsyncLastSequence.0"] == "4"
    log = v2c(agent, "snmpwalk", "-OQs", "PROVSYNC-MIB::provsyncLogKind")
    assert log.stdout.splitlines()[0] == "provsyncLogKind.1 = event"
    assert "provsyncLogKind.2 = alarmRaised" in log.stdout
    types = v2c(agent, "snmpwalk", "-OQs", "PROVSYNC-MIB::provsyncAlarmTypeId")
    assert "= sync-failed" in types.stdout


def test_engine_boots_persist(agent_factory: Any) -> None:
    agent = start(agent_factory)
    with agent.http() as http:
        first = http.get("/api/v1/status").json()["snmp"]
    agent.stop()
    agent.start()
    with agent.http() as http:
        second = http.get("/api/v1/status").json()["snmp"]
    assert second["engine_id"] == first["engine_id"]
    assert second["engine_boots"] == first["engine_boots"] + 1


def test_ipv6_listener(agent_factory: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6 loopback")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("this machine has no IPv6 loopback (::1)")
        port = probe.getsockname()[1]
    agent: AgentProcess = agent_factory(
        {"snmp": {"listen": [f"127.0.0.1:{free_udp_port()}", f"[::1]:{port}"], "users": USERS}}
    )
    agent.start()
    got = run(
        "snmpget", "-v2c", "-c", "public", "-Ov", f"udp6:[::1]:{port}", "SNMPv2-MIB::sysDescr.0"
    )
    assert got.returncode == 0, got.stderr
    assert "provsync" in got.stdout


def test_repeated_raise_updates_the_count_at_once(agent_factory: Any) -> None:
    agent = start(agent_factory)
    with agent.http() as http:
        raised = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm1"})
        alarm_id = raised.json()["alarm"]["id"]
        http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm1"})
        http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm1"})
    got = v2c(agent, "snmpget", "-Ov", f"PROVSYNC-MIB::provsyncAlarmCount.{alarm_id}")
    assert got.stdout.strip() == "Counter32: 3"
