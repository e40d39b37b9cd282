"""coldStart / warmStart (RFC 3418) at start: the cold/warm decision, which agent-started
event carries the start trap, and what a real snmptrapd logs over three starts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import tomli_w
from pyasn1.codec.ber import decoder
from pysnmp.proto import api

from agent.alarms.catalog import Catalog
from agent.alarms.records import Notification, NotificationKind
from agent.config import settings_from_dict
from agent.export.snmp.oids import MibOids
from agent.export.snmp.start_traps import (
    COLD_START,
    WARM_START,
    ThisStart,
    config_digest,
    record_digest,
    recorded_digest,
    start_kind,
    start_vars,
)
from agent.export.snmp.targets import SnmpTargetExporter
from agent.store.database import Store
from tests.conftest import AgentProcess
from tests.test_snmp_traps import ENGINE_ID, Trapd, agent_with

KEY = b"k" * 32
HOST = "agent.example.net"


def _user(auth_key: str = "authkey123") -> dict[str, str]:
    return {
        "name": "u",
        "auth_protocol": "SHA-256",
        "auth_key": auth_key,
        "priv_protocol": "AES-128",
        "priv_key": "privkey123",
    }


def _settings(api_port: int = 8163, alarm_types: tuple[Any, ...] = (), **snmp: Any) -> Any:
    base: dict[str, Any] = {
        "communities": [{"name": "public"}],
        "users": [_user()],
        "sys_location": "rack 1",
    }
    base.update(snmp)
    return settings_from_dict(
        {"snmp": base, "api": {"listen": f"127.0.0.1:{api_port}"}, "alarm_types": alarm_types}
    )


# ------------------------------------------------------------------ cold or warm
def test_first_start_is_cold_same_digest_warm_changed_cold() -> None:
    assert start_kind(None, "a" * 64) == "cold"
    assert start_kind("a" * 64, "a" * 64) == "warm"
    assert start_kind("a" * 64, "b" * 64) == "cold"


def test_the_digest_follows_what_snmp_serves_and_sends_and_nothing_else() -> None:
    same = config_digest(_settings(), HOST, KEY)
    assert config_digest(_settings(), HOST, KEY) == same
    # An API port is not what the SNMP entity serves: warm.
    assert config_digest(_settings(api_port=9), HOST, KEY) == same
    changed = {
        "location": config_digest(_settings(sys_location="rack 2"), HOST, KEY),
        "community": config_digest(_settings(communities=[{"name": "private"}]), HOST, KEY),
        "user key": config_digest(_settings(users=[_user("other12345")]), HOST, KEY),
        "host": config_digest(_settings(), "other.example.net", KEY),
        "version": config_digest(_settings(), HOST, KEY, version="0.0.0-other"),
        "key": config_digest(_settings(), HOST, b"x" * 32),
    }
    assert same not in changed.values(), changed
    assert len(set(changed.values())) == len(changed)
    site_type = {
        "id": "door",
        "name": "Door",
        "kind": "alarm",
        "severity": "minor",
        "event_type": "environmentalAlarm",
        "probable_cause": "enclosureDoorOpen",
    }
    assert config_digest(_settings(alarm_types=(site_type,)), HOST, KEY) != same


def test_the_digest_is_keyed_and_holds_no_secret() -> None:
    digest = config_digest(_settings(communities=[{"name": "s3cret-community"}]), HOST, KEY)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert "s3cret" not in digest


def test_the_digest_is_kept_in_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    try:
        assert recorded_digest(store.engine) is None
        record_digest(store.engine, "a" * 64)
        record_digest(store.engine, "b" * 64)
        assert recorded_digest(store.engine) == "b" * 64
    finally:
        store.close()


# ------------------------------------------------------------------ which agent-started
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STARTED = {"type_name": "Agent Started", "event_type": "other", "probable_cause": "other"}


def _started(seq: int, *, boots: int, start: str = "cold", pid: int | None = None) -> Notification:
    details = {
        "pid": os.getpid() if pid is None else pid,
        "store_id": "s",
        "snmp_engine_id": ENGINE_ID,
        "snmp_engine_boots": boots,
        "start": start,
    }
    return Notification(
        seq=seq,
        at=AT,
        kind=NotificationKind.EVENT,
        alarm_id=0,
        type_id="agent-started",
        resource=HOST,
        qualifier="",
        severity="indeterminate",
        text="provsync started",
        raise_seq=0,
        payload={**STARTED, "details": details},
    )


def _raised(seq: int) -> Notification:
    return Notification(
        seq=seq,
        at=AT,
        kind=NotificationKind.ALARM_RAISED,
        alarm_id=1,
        type_id="sync-failed",
        resource="cm1",
        qualifier="",
        severity="major",
        text="failed",
        raise_seq=0,
        payload={
            "type_name": "Sync Failed",
            "event_type": "processingErrorAlarm",
            "probable_cause": "softwareError",
        },
    )


def test_only_this_start_agent_started_names_a_start_kind() -> None:
    this = ThisStart.of(ENGINE_ID, 7)
    assert this.kind_of(_started(1, boots=7)) == "cold"
    assert this.kind_of(_started(1, boots=7, start="warm")) == "warm"
    assert this.kind_of(_started(1, boots=6)) is None  # the run before, delivered late
    assert this.kind_of(_started(1, boots=7, pid=os.getpid() + 1)) is None
    assert this.kind_of(_started(1, boots=7, start="hot")) is None
    assert this.kind_of(_raised(1)) is None
    assert [(v.oid, v.value) for v in start_vars("warm", 42)] == [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), 42),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), WARM_START),
    ]


OIDS = MibOids()
NAMES = {
    COLD_START: "coldStart",
    WARM_START: "warmStart",
    OIDS["provsyncEvent"]: "event",
    OIDS["provsyncAlarmRaised"]: "raised",
}


def _trap_oids(datagrams: list[bytes]) -> list[str]:
    """snmpTrapOID.0 of each v2c trap, as pysnmp decodes it (named by NAMES); a start
    trap carries nothing beyond sysUpTime.0 and snmpTrapOID.0, the others more."""
    pmod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    found = []
    for data in datagrams:
        message, _ = decoder.decode(data, asn1Spec=pmod.Message())
        varbinds = pmod.apiPDU.get_varbinds(pmod.apiMessage.get_pdu(message))
        assert str(varbinds[0][0]) == "1.3.6.1.2.1.1.3.0"
        assert str(varbinds[1][0]) == "1.3.6.1.6.3.1.1.4.1.0"
        name = NAMES[tuple(varbinds[1][1])]
        assert (len(varbinds) == 2) == name.endswith("Start"), (name, len(varbinds))
        found.append(name)
    return found


async def _deliver_batches(
    batches: list[list[Notification]], **target: Any
) -> tuple[list[str], SnmpTargetExporter]:
    """Deliver each batch, filtered as the exporter loop filters it, to a v2c trap target
    on a loopback socket; the traps it got."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    # Loopback: a datagram is in the receiver's buffer when the send returns, so what
    # the target sent is all there once deliver() has returned.
    receiver.setblocking(False)
    address = f"127.0.0.1:{receiver.getsockname()[1]}"
    settings = settings_from_dict(
        {"snmp": {"targets": [{"address": address, "community": "public", **target}]}}
    )
    service = SimpleNamespace(
        oids=OIDS, engine_id=ENGINE_ID, boots=7, snmp=settings.snmp, uptime=lambda: 500
    )
    # The exporter reads nothing from the log here: deliver() is called directly; the
    # catalog names the types a gap notice would carry.
    manager = SimpleNamespace(engine=None, catalog=Catalog())
    exporter = SnmpTargetExporter(
        manager,
        settings.exporters,
        settings.snmp.targets[0],
        service,
        0,  # type: ignore[arg-type]
    )
    await exporter.open()
    datagrams = []
    try:
        for batch in batches:
            await exporter.deliver([n for n in batch if exporter.accepts(n)])
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(receiver.recv(65535))
    finally:
        await exporter.close()
        receiver.close()
    return _trap_oids(datagrams), exporter


COLD, WARM, EVENT, RAISED = "coldStart", "warmStart", "event", "raised"


def test_this_start_sends_the_start_trap_before_its_event_an_older_one_does_not() -> None:
    old, this = _started(1, boots=6), _started(3, boots=7)
    got, _ = asyncio.run(_deliver_batches([[old, _raised(2), this, _raised(4)]]))
    assert got == [EVENT, RAISED, COLD, EVENT, RAISED]


def test_a_warm_start_sends_warm_start() -> None:
    got, _ = asyncio.run(_deliver_batches([[_started(1, boots=7, start="warm")]]))
    assert got == [WARM, EVENT]


def test_the_start_trap_goes_whatever_the_filter_its_event_follows_it() -> None:
    this = _started(1, boots=7)
    got, exporter = asyncio.run(
        _deliver_batches([[this, _raised(2)]], kinds=["alarm-raised"], min_severity="major")
    )
    assert got == [COLD, RAISED]
    assert not exporter.accepts(this)  # sent: a retry does not bring the event back


def test_a_retried_batch_does_not_send_the_start_trap_again() -> None:
    this = _started(1, boots=7)
    got, _ = asyncio.run(_deliver_batches([[this], [this, _raised(2)]]))
    assert got == [COLD, EVENT, EVENT, RAISED]


# ------------------------------------------------------------------ snmptrapd, three starts
def _sequence(trapd: Trapd, pdu: str, version: str, count: int) -> list[tuple[str, int]]:
    got = trapd.wait_for(count, pdu=pdu, version=version, start_traps=True)
    return [(r["trap"], r["seq"]) for r in got]


def _set_location(agent: AgentProcess, location: str) -> None:
    document = tomllib.loads(agent.config.read_text())
    document["snmp"]["sys_location"] = location
    agent.config.write_text(tomli_w.dumps(document))


def test_snmptrapd_logs_cold_then_warm_then_cold_after_a_change(
    agent_factory: Any, trapd: Trapd
) -> None:
    agent = agent_with(agent_factory, trapd, ("v2c", "trap"), ("v3", "inform"))
    first = [("coldStart", 0), ("provsyncEvent", 1)]
    for pdu, version in (("TRAP2", "v2c"), ("INFORM", "v3")):
        assert _sequence(trapd, pdu, version, 2) == first, trapd.text()[-2000:]
    cold = trapd.records(start_traps=True)[0]["values"]
    assert list(cold) == ["sysUpTimeInstance", "snmpTrapOID.0"]
    assert agent.stop() == 0
    agent.start()  # the same settings: warm
    # 2 is agent-stopping, delivered by the first run as it stopped.
    second = [*first, ("provsyncEvent", 2), ("warmStart", 0), ("provsyncEvent", 3)]
    for pdu, version in (("TRAP2", "v2c"), ("INFORM", "v3")):
        assert _sequence(trapd, pdu, version, 5) == second, trapd.text()[-2000:]
    assert agent.stop() == 0
    _set_location(agent, "another room")  # sysLocation is served: cold
    agent.start()
    third = [*second, ("provsyncEvent", 4), ("coldStart", 0), ("provsyncEvent", 5)]
    for pdu, version in (("TRAP2", "v2c"), ("INFORM", "v3")):
        assert _sequence(trapd, pdu, version, 8) == third, trapd.text()[-2000:]
    # The other exporters get the same event with the kind of start in its details.
    lines = [json.loads(line) for line in agent.jsonl.read_text().splitlines()]
    starts = [line for line in lines if line["type"] == "agent-started"]
    assert [s["details"]["start"] for s in starts] == ["cold", "warm", "cold"], starts
    assert len({s["details"]["snmp_engine_boots"] for s in starts}) == 3
