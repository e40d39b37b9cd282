"""Two agents on one PostgreSQL store ([cluster]): one leads, the other stands by and relays
to it; the settings a cluster needs. Real agent processes on the local server (under load
and through failures: tests/test_cluster_takeover.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import forked
from tests.conftest import AgentProcess
from tests.test_snmp_agent import v2c
from tests.waiting import wait_for

SEQUENCE = re.compile(r'sequenceId="(\d+)"')


def member(
    agent_factory: Any, pg_url: str, node: str, key: Path, extra: dict[str, Any] | None = None
) -> AgentProcess:
    """An agent of the cluster: the shared store and credentials key, its own ports."""
    document: dict[str, Any] = {
        "agent": {"node": node},
        "store": {"url": pg_url, "key_file": str(key)},
        "cluster": {"enabled": True},
    }
    document.update(extra or {})
    made: AgentProcess = agent_factory(document)
    return made


def status(agent: AgentProcess) -> dict[str, Any] | None:
    try:
        with agent.http() as http:
            response = http.get("/api/v1/status", timeout=2)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    found: dict[str, Any] = response.json()
    return found


def role_of(agent: AgentProcess) -> str | None:
    found = status(agent)
    return None if found is None else found.get("role")


@pytest.mark.postgres
def test_second_agent_stands_by_and_names_the_leader(
    agent_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret.key"
    a = member(agent_factory, pg_url, "node-a", key).start()
    b = member(agent_factory, pg_url, "node-b", key).start()
    assert role_of(a) == "leader"
    standby = wait_for("B's status", lambda: status(b))
    assert standby["role"] == "standby"
    assert standby["node"] == "node-b"
    assert standby["leader"]["node"] == "node-a"
    assert standby["leader"]["api_url"] == a.url
    assert "standby: node-a leads the store" in b.log_text()
    with b.http() as http:
        # Writes and reads through the standby are the leader's (relayed, with a Via).
        raised = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "via-b"})
        assert raised.status_code == 200, raised.text
        assert raised.headers["via"] == "1.1 node-b (provsync standby)"
        listed = http.get("/api/v1/alarms", params={"resource": "via-b"})
        assert [x["id"] for x in listed.json()] == [raised.json()["alarm"]["id"]]
        assert http.get(
            "/api/v1/status", headers={"Authorization": "Bearer wrong"}
        ).status_code == (401)
        # Refused by the standby's own gate: nothing unauthenticated reaches the leader.
        assert http.get("/api/v1/alarms", headers={"Authorization": "Bearer x"}).status_code == (
            401
        )
        assert http.post(
            "/api/v1/alarms", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
        ).status_code == (413)
        # A request another standby relayed is not relayed again (no bounce between two).
        bounced = http.get("/api/v1/alarms", headers={"Via": "1.1 node-c (provsync standby)"})
        assert bounced.status_code == 503
        assert "came through another standby" in bounced.json()["error"]
        # The console too: a login link made through the standby names the standby.
        link = http.post("/api/v1/console/link", json={}).json()
        assert link["url"].startswith(b.url), link
    with a.http() as http:
        assert http.get("/api/v1/alarms", params={"resource": "via-b"}).json()[0]["resource"] == (
            "via-b"
        )
    leading = status(a)
    assert leading is not None
    assert (leading["node"], leading["leader"]["node"]) == ("node-a", "node-a")

    def both_listed() -> dict[str, Any] | None:
        listed = json.loads(a.cli("cluster", "--json").stdout)
        nodes = {m["node"]: m for m in listed["members"]}
        return listed if {"node-a", "node-b"} <= nodes.keys() else None

    listed = wait_for("both members listed", both_listed, within=10)
    roles = {m["node"]: (m["role"], m["leader"]) for m in listed["members"]}
    assert roles == {"node-a": ("leader", True), "node-b": ("standby", False)}
    table = b.cli("cluster").stdout
    assert re.search(r"\*\s.*node-a\s.*leader", table), table
    assert "node-b" in table
    shown = b.cli("status").stdout
    assert "standby" in shown
    assert re.search(r"members: node-a leader [\d.]+s ago, node-b standby [\d.]+s ago", shown)
    assert re.search(r"members: node-a leader [\d.]+s ago", a.cli("status").stdout)
    # The first leader of a store says so: leadership-taken, no previous leader.
    with a.http() as http:
        events = http.get("/api/v1/events", params={"type": "leadership-taken"}).json()
    assert [e["text"] for e in events] == ["node-a leads the store (previous: none)"]
    assert b.stop() == 0
    assert a.stop() == 0


def test_config_check_refuses_a_cluster_on_sqlite_and_a_bad_node(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVSYNC_")}
    cluster = tmp_path / "cluster.toml"
    cluster.write_text("[cluster]\nenabled = true\n")
    result = forked.run(["config", "check", str(cluster)], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "SQLite stays single-agent; a cluster needs a PostgreSQL store" in result.stderr
    run = forked.run(["run", "--config", str(cluster)], env=env, cwd=tmp_path)
    assert run.returncode == 2
    assert "SQLite stays single-agent" in run.stderr
    node = tmp_path / "node.toml"
    node.write_text('[agent]\nnode = "-bad node"\n')
    result = forked.run(["config", "check", str(node)], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "agent.node" in result.stderr
    fine = tmp_path / "fine.toml"
    fine.write_text(
        '[agent]\nnode = "hub-1.dc2"\n[store]\nurl = "postgresql://provsync@db/provsync"\n'
        '[cluster]\nenabled = true\npoll_interval = "500ms"\n'
    )
    assert forked.run(["config", "check", str(fine)], env=env, cwd=tmp_path).returncode == 0


TABLES = (
    "PROVSYNC-MIB::provsyncActiveAlarmTable",
    "PROVSYNC-MIB::provsyncNotificationLogTable",
    "PROVSYNC-MIB::provsyncElementTable",
)


def walk(agent: AgentProcess) -> dict[str, str]:
    """The three tables a standby follows, numerically."""
    out = {}
    for table in TABLES:
        result = v2c(agent, "snmpbulkwalk", "-On", table)
        assert result.returncode == 0, result.stderr
        out[table.split("::")[1]] = result.stdout
    return out


@pytest.mark.postgres
def test_a_standby_serves_the_leaders_snmp_view(
    agent_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret.key"
    a = member(agent_factory, pg_url, "node-a", key).start()
    b = member(agent_factory, pg_url, "node-b", key).start()
    wait_for("B stands by", lambda: role_of(b) == "standby")
    with b.http() as http:
        ids = []
        for resource in ("cm1", "cm2", "cm3"):
            raised = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": resource})
            ids.append(raised.json()["alarm"]["id"])
        # A repeat (count and time, no log row), an ack, a clear, an element.
        http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm1"})
        assert http.post(f"/api/v1/alarms/{ids[1]}/ack", json={}).status_code == 200
        assert http.post(f"/api/v1/alarms/{ids[2]}/clear", json={}).status_code == 200
        added = http.post(
            "/api/v1/elements",
            json={"name": "cs1", "url": "http://127.0.0.1:9"},
        )
        assert added.status_code in (200, 201), added.text

    def same() -> dict[str, str] | None:
        seen = walk(a)
        return seen if seen == walk(b) else None

    shown = wait_for("B's tables as A's", same, within=15)
    active = shown["provsyncActiveAlarmTable"]
    assert "cm1" in active
    assert "cm2" in active
    assert "cm3" not in active, "cleared"
    assert "cm3" in shown["provsyncNotificationLogTable"]
    assert "cs1" in shown["provsyncElementTable"]
    count = v2c(b, "snmpget", "-Oqv", f"PROVSYNC-MIB::provsyncAlarmOccurrences.{ids[0]}")
    assert count.stdout.strip() == "2 occurrences", count.stdout
    assert b.stop() == 0
    assert a.stop() == 0
