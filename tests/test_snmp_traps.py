"""Traps and informs from a running agent, received and decoded by a real snmptrapd."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentProcess, free_udp_port
from tests.netsnmp import env, tool

ENGINE_ID = "80007ed9050102030405060708"
START_TRAPS = ("coldStart", "warmStart")
USER = {
    "name": "trapper",
    "auth_protocol": "SHA-256",
    "auth_key": "trapauth123",
    "priv_protocol": "AES-128",
    "priv_key": "trappriv123",
}


class Trapd:
    """snmptrapd on a loopback port, logging one line per notification."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_udp_port()
        self.logs: list[Path] = []
        self.config = root / "snmptrapd.conf"
        self.config.write_text(
            "authCommunity log public\n"
            # v3 traps: the sender is authoritative, so its engine ID is given;
            # v3 informs: snmptrapd is, so the same user without -e.
            f"createUser -e 0x{ENGINE_ID} trapper SHA-256 trapauth123 AES trappriv123\n"
            "createUser trapper SHA-256 trapauth123 AES trappriv123\n"
            "authUser log trapper\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # A fresh log per run: snmptrapd truncates the file it is given.
        log = self.root / f"trapd-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = subprocess.Popen(
            [
                tool("snmptrapd"),
                "-f",
                "-C",
                "-c",
                str(self.config),
                "-Lf",
                str(log),
                "-F",
                "TRAP %P|%v\n",
                f"--persistentDir={self.root / 'persist'}",
                f"udp:127.0.0.1:{self.port}",
            ],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            not log.exists() or "NET-SNMP version" not in log.read_text(errors="replace")
        ):
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def text(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def records(self, *, start_traps: bool = False) -> list[dict[str, Any]]:
        """The notifications logged, in order; the coldStart / warmStart each agent start
        sends (tests/test_snmp_start_traps.py) only with ``start_traps``."""
        found = []
        for line in self.text().splitlines():
            if not line.startswith("TRAP "):
                continue
            security, _, varbinds = line[5:].partition("|")
            values = {}
            for item in varbinds.split("\t"):
                name, _, value = item.partition(" = ")
                values[name.split("::")[-1]] = value
            trap = values.get("snmpTrapOID.0", "").split("::")[-1]
            if trap in START_TRAPS and not start_traps:
                continue
            found.append(
                {
                    "pdu": security.split(",")[0],
                    "version": "v3" if "SNMP v3" in security else "v2c",
                    "trap": trap,
                    "seq": int(values.get("provsyncNotifySequence.0", "0").split()[-1]),
                    "values": values,
                }
            )
        return found

    def wait_for(
        self, count: int, *, pdu: str, version: str, within: float = 30, start_traps: bool = False
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            got = [
                r
                for r in self.records(start_traps=start_traps)
                if r["pdu"] == pdu and r["version"] == version
            ]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)


def targets(port: int, *kinds: tuple[str, str]) -> list[dict[str, Any]]:
    made = []
    for version, kind in kinds:
        target: dict[str, Any] = {
            "name": f"{version}-{kind}",
            "address": f"127.0.0.1:{port}",
            "version": version,
            "kind": kind,
            "timeout": "500ms",
            "retries": 1,
        }
        if version == "v2c":
            target["community"] = "public"
        else:
            target["user"] = "trapper"
        made.append(target)
    return made


def agent_with(agent_factory: Any, trapd: Trapd, *kinds: tuple[str, str]) -> AgentProcess:
    snmp = {"engine_id": ENGINE_ID, "users": [USER], "targets": targets(trapd.port, *kinds)}
    agent: AgentProcess = agent_factory({"snmp": snmp})
    return agent.start()


ALL = (("v2c", "trap"), ("v3", "trap"), ("v2c", "inform"), ("v3", "inform"))


def test_raise_clear_event_reach_every_target_decoded(agent_factory: Any, trapd: Trapd) -> None:
    agent = agent_with(agent_factory, trapd, *ALL)
    with agent.http() as http:
        raised = http.post(
            "/api/v1/alarms",
            json={"type": "element-unreachable", "resource": "cm1", "text": "no route"},
        ).json()
        http.post(f"/api/v1/alarms/{raised['alarm']['id']}/clear")
    agent.cli("alarms", "test", "--text", "hello receivers")
    for version, kind in ALL:
        pdu = "TRAP2" if kind == "trap" else "INFORM"
        got = trapd.wait_for(4, pdu=pdu, version=version)
        assert [r["seq"] for r in got] == [1, 2, 3, 4], (version, kind, trapd.text()[-2000:])
        assert [r["trap"] for r in got] == [
            "provsyncEvent",
            "provsyncAlarmRaised",
            "provsyncAlarmCleared",
            "provsyncEvent",
        ]
        raise_note, clear_note, event = got[1]["values"], got[2]["values"], got[3]["values"]
        assert raise_note["provsyncNotifySeverity.0"] == "INTEGER: major(4)"
        assert (
            raise_note["provsyncNotifyResource.0"] == 'STRING: "cm1"'
            or raise_note["provsyncNotifyResource.0"] == "STRING: cm1"
        )
        assert raise_note["provsyncNotifyEventType.0"] == "INTEGER: communicationsAlarm(2)"
        assert "no route" in raise_note["provsyncNotifyText.0"]
        assert (
            "provsync elements show cm1 | GET /api/v1/elements/cm1"
            in raise_note["provsyncNotifyResolution.0"]
        )
        assert clear_note["provsyncNotifySeverity.0"] == "INTEGER: cleared(1)"
        assert clear_note["provsyncNotifyRaiseSequence.0"] == "Gauge32: 2"
        assert "hello receivers" in event["provsyncNotifyText.0"]
        assert event["provsyncNotifyAlarmId.0"] == "Gauge32: 0"
        assert list(got[1]["values"])[:2] == ["sysUpTimeInstance", "snmpTrapOID.0"]
        # Each kind of target got the agent's coldStart (RFC 3418) before its agent-started.
        with_start = trapd.wait_for(5, pdu=pdu, version=version, start_traps=True)
        assert [r["trap"] for r in with_start[:2]] == ["coldStart", "provsyncEvent"]
        assert list(with_start[0]["values"]) == ["sysUpTimeInstance", "snmpTrapOID.0"]
    with agent.http() as http:
        exporters = {e["name"]: e for e in http.get("/api/v1/status").json()["exporters"]}
    assert exporters["v2c-inform"]["cursor"] == 4
    assert exporters["v3-inform"]["cursor"] == 4


def test_heartbeat_at_the_configured_interval(agent_factory: Any, trapd: Trapd) -> None:
    target = targets(trapd.port, ("v2c", "trap"))[0]
    target["kinds"] = ["heartbeat"]
    agent: AgentProcess = agent_factory(
        {"snmp": {"targets": [target], "heartbeat_interval": "500ms"}}
    ).start()
    got = trapd.wait_for(2, pdu="TRAP2", version="v2c")
    assert [r["trap"] for r in got[:2]] == ["provsyncHeartbeat", "provsyncHeartbeat"]
    values = got[0]["values"]
    assert list(values)[2:] == [
        "provsyncLastSequence.0",
        "provsyncActiveAlarms.0",
        "provsyncNotifyTime.0",
    ]
    # The value, with or without the UNITS snmptrapd adds from the MIB.
    assert values["provsyncActiveAlarms.0"].split()[:2] == ["Gauge32:", "0"]
    with agent.http() as http:
        types = {e["type"] for e in http.get("/api/v1/events").json()}
    assert "heartbeat" in types


def test_filters_by_severity_and_kind(agent_factory: Any, trapd: Trapd) -> None:
    target = targets(trapd.port, ("v2c", "trap"))[0]
    target.update(min_severity="major", kinds=["alarm-raised", "alarm-cleared"])
    agent: AgentProcess = agent_factory({"snmp": {"targets": [target]}}).start()
    with agent.http() as http:
        http.post("/api/v1/alarms", json={"type": "sync-required", "resource": "g1"})  # minor
        major = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm1"})
        http.post(f"/api/v1/alarms/{major.json()['alarm']['id']}/clear")
        http.post("/api/v1/test")
    got = trapd.wait_for(2, pdu="TRAP2", version="v2c")
    time.sleep(0.5)
    got = trapd.wait_for(2, pdu="TRAP2", version="v2c")
    assert [r["trap"] for r in got] == ["provsyncAlarmRaised", "provsyncAlarmCleared"]
    assert [r["seq"] for r in got] == [3, 4]


def test_informs_survive_a_receiver_outage_in_order(agent_factory: Any, trapd: Trapd) -> None:
    agent = agent_with(agent_factory, trapd, ("v2c", "inform"), ("v3", "inform"))
    assert len(trapd.wait_for(1, pdu="INFORM", version="v2c")) == 1
    trapd.stop()
    with agent.http() as http:
        for index in range(20):
            http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": f"cm{index}"})
        time.sleep(2)  # informs time out and are retried while nobody answers
        status = http.get("/api/v1/status").json()
        pending = {e["name"]: e for e in status["exporters"]}
        assert pending["v2c-inform"]["cursor"] < status["last_seq"]
        assert pending["v2c-inform"]["failures"] > 0
    trapd.start()
    for version in ("v2c", "v3"):
        got = trapd.wait_for(21, pdu="INFORM", version=version, within=60)
        seqs = [r["seq"] for r in got]
        # The first one may come twice (sent before the outage and again if its answer was
        # lost); apart from that every sequence number arrives once, in order.
        assert sorted(set(seqs)) == list(range(1, 22)), (version, seqs)
        assert seqs == sorted(seqs), (version, seqs)


# ------------------------------------------------------------------ inform waits are bounded
def _inform_target(**fields: Any) -> dict[str, Any]:
    return {"address": "127.0.0.1:16200", "kind": "inform", **fields}


@pytest.mark.parametrize(
    "target",
    [
        # v2c: the timeout doubles on each retry: 10 min x (2^21 - 1) is decades.
        _inform_target(community="public", timeout="10m", retries=20),
        _inform_target(community="public", timeout="1s", retries=10),  # 2047 s
        # v3: 2 x timeout x (retries + 1) + 2 s.
        _inform_target(version="v3", user="trapper", timeout="1m", retries=5),  # 722 s
    ],
    ids=["v2c-decades", "v2c-34-minutes", "v3-12-minutes"],
)
def test_an_inform_that_could_wait_past_the_bound_is_a_config_error(
    tmp_path: Path, target: dict[str, Any]
) -> None:
    from agent.config import ConfigError, settings_from_dict
    from agent.inform_bounds import MAX_INFORM_WAIT
    from tests.test_config import run_cli

    with pytest.raises(ConfigError) as info:
        settings_from_dict({"snmp": {"users": [USER], "targets": [target]}}, "x.toml")
    assert "x.toml: snmp.targets[0]: " in str(info.value)
    assert "timeout and retries" in str(info.value)
    assert f"at most {MAX_INFORM_WAIT:g}s" in str(info.value)
    path = tmp_path / "wait.toml"
    lines = [
        f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"
        for key, value in target.items()
    ]
    user = "\n".join(f'{key} = "{value}"' for key, value in USER.items())
    path.write_text(
        "[[snmp.users]]\n" + user + "\n[[snmp.targets]]\n" + "\n".join(lines).replace("'", '"')
    )
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{path}: snmp.targets[0]: " in result.stderr
    assert "Traceback" not in result.stderr


def test_inform_waits_within_the_bound_are_accepted() -> None:
    from agent.config import settings_from_dict
    from agent.export.snmp.v3inform import inform_deadline
    from agent.inform_bounds import MAX_INFORM_WAIT, v2c_inform_wait

    targets = [
        _inform_target(name="a", community="public", timeout="1s", retries=8),  # 511 s
        _inform_target(name="b", version="v3", user="trapper", timeout="1m", retries=3),
        _inform_target(name="c", community="public", kind="trap", timeout="10m", retries=20),
    ]
    settings = settings_from_dict({"snmp": {"users": [USER], "targets": targets}})
    v2c, v3, _ = settings.snmp.targets
    assert v2c_inform_wait(v2c.timeout, v2c.retries) == 511 <= MAX_INFORM_WAIT
    assert inform_deadline(v3.timeout, v3.retries) == 482 <= MAX_INFORM_WAIT
