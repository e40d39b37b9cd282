"""Two agents on one PostgreSQL store ([cluster]): one leads, the other stands by and takes
the lead when the leader dies. Real agent processes, the local server, a real rsyslogd."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests import forked
from tests.conftest import AgentProcess
from tests.rsyslog import Rsyslog
from tests.tcp_proxy import tcp_proxy
from tests.test_store_fencing import OUTAGE, through
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
    assert "standby" in b.cli("status").stdout
    # The first leader of a store says so: leadership-taken, no previous leader.
    with a.http() as http:
        events = http.get("/api/v1/events", params={"type": "leadership-taken"}).json()
    assert [e["text"] for e in events] == ["node-a leads the store (previous: none)"]
    assert b.stop() == 0
    assert a.stop() == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_standby_takes_over_a_killed_leader_and_loses_nothing(
    agent_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    rsyslog = Rsyslog(tmp_path / "rsyslog")
    rsyslog.start()
    try:
        collector = {
            "name": "tcp",
            "transport": "tcp",
            "address": f"127.0.0.1:{rsyslog.ports['tcp']}",
            "timeout": "2s",
        }
        extra = {"syslog": {"collectors": [collector]}}
        key = tmp_path / "secret.key"
        a = member(agent_factory, pg_url, "node-a", key, extra).start()
        b = member(agent_factory, pg_url, "node-b", key, extra).start()
        wait_for("B stands by", lambda: role_of(b) == "standby")

        answered: list[str] = []
        stop = threading.Event()
        b_leads = threading.Event()

        def client() -> None:
            # Through A while it answers, then through B once B leads.
            index = 0
            targets = [a, b]
            while not stop.is_set():
                target = targets[0]
                resource = f"r-{index}"
                try:
                    with target.http() as http:
                        response = http.post(
                            "/api/v1/alarms",
                            json={"type": "sync-failed", "resource": resource},
                            timeout=5,
                        )
                except httpx.TransportError:
                    if target is a:
                        targets.pop(0)
                    continue
                if response.status_code == 200:
                    answered.append(resource)
                    index += 1
                    if target is b and not b_leads.is_set():
                        b_leads.set()
                # 503 from the standby: not answered, tried again.

        worker = threading.Thread(target=client, daemon=True)
        worker.start()
        wait_for("alarms through A", lambda: len(answered) >= 30)
        killed = time.monotonic()
        a.kill()
        wait_for("B leads", lambda: role_of(b) == "leader", within=15)
        takeover = time.monotonic() - killed
        wait_for("alarms through B", lambda: b_leads.is_set() and len(answered) >= 60)
        stop.set()
        worker.join(15)
        print(f"\ntakeover: B led {takeover:.2f}s after A was killed")
        assert takeover < 10

        with psycopg.connect(pg_url, autocommit=True) as conn:
            resources = {r for (r,) in conn.execute("SELECT resource FROM alarms")}
            seqs = [s for (s,) in conn.execute("SELECT seq FROM notification_log ORDER BY seq")]
            (b_start,) = conn.execute(
                "SELECT min(seq) FROM notification_log WHERE type_id = 'leadership-taken' "
                "AND resource = 'node-b'"
            ).fetchone() or (None,)
        assert set(answered) <= resources, "every answered alarm is in the store"
        assert seqs == list(range(1, len(seqs) + 1)), "the sequence is gap-free"
        assert b_start is not None

        def received() -> list[int]:
            return [
                int(m.group(1))
                for line in rsyslog.lines("tcp")
                if (m := SEQUENCE.search(line["sd"]))
            ]

        wait_for("every notification at the collector", lambda: set(received()) >= set(seqs))
        got = received()
        first_seen = list(dict.fromkeys(got))
        assert first_seen == seqs, "every sequence number, in order"
        duplicates = [s for s in got if got.count(s) > 1]
        repeated = sorted(set(duplicates))
        print(f"duplicates: {len(got) - len(set(got))} repeated notifications ({repeated})")
        # B resent from A's last saved cursor: one run, A's last ones before B led.
        if repeated:
            assert repeated == list(range(repeated[0], repeated[-1] + 1))
            assert repeated[-1] < b_start
        with b.http() as http:
            events = http.get("/api/v1/events", params={"type": "leadership-taken"}).json()
        assert "node-b leads the store (previous: node-a)" in [e["text"] for e in events]
        assert b.stop() == 0
    finally:
        rsyslog.stop()


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


@pytest.mark.postgres
@pytest.mark.slow
def test_a_leader_cut_off_and_replaced_stands_by_instead_of_exiting(
    agent_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret.key"
    with tcp_proxy("127.0.0.1", 5432) as proxy:
        a = member(agent_factory, through(proxy, pg_url), "node-a", key).start()
        b = member(agent_factory, pg_url, "node-b", key).start()
        wait_for("B stands by", lambda: role_of(b) == "standby")
        proxy.cut(OUTAGE)
        # The server ends A's sessions with the cut: B takes the lock and leads.
        wait_for("B leads", lambda: role_of(b) == "leader", within=15)
        wait_for("the proxy is back", lambda: proxy.listening, within=OUTAGE + 5)
        # A sees that B owns the store: it stops its components and stands by.
        wait_for("A stands by", lambda: role_of(a) == "standby", within=20)
        assert a.proc is not None
        assert a.proc.poll() is None, "A did not exit"
        assert "taken over by another agent" in a.log_text()
        again = status(a)
        assert again is not None
        assert again["leader"]["node"] == "node-b"
        assert a.stop() == 0
        assert b.stop() == 0
