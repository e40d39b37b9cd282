"""Three agents on one PostgreSQL store ([cluster]) under load: the leader killed while
four clients raise and clear alarms through the two standbys, a real rsyslogd (TCP) and a
real snmptrapd collecting; the leader cut from the store. Real agent processes on the
local server; what is counted is printed (pytest -s shows it)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import AgentProcess
from tests.rsyslog import Rsyslog
from tests.simulated import SimulatedElement
from tests.tcp_proxy import tcp_proxy
from tests.test_cluster import SEQUENCE, member, role_of, status
from tests.test_snmp_traps import Trapd, targets
from tests.test_store_fencing import through
from tests.test_sync import add
from tests.waiting import wait_for

CLIENTS = 4


@dataclass
class Client:
    """Raises then clears its own alarms, one request at a time, through ``agents`` in
    turn; a request refused (503) or cut off is sent again, to the next agent."""

    number: int
    agents: list[AgentProcess]
    answered: list[tuple[str, str, int | None]] = field(default_factory=list)
    """(op, resource, seq) of every answered request."""
    retried: int = 0

    def run(self, stop: threading.Event) -> None:
        clients = [agent.http() for agent in self.agents]
        turn = self.number
        index = 0
        try:
            while not stop.is_set():
                resource = f"c{self.number}-{index}"
                for op in ("raise", "clear"):
                    while not stop.is_set():
                        http = clients[turn % len(clients)]
                        path = "/api/v1/alarms" if op == "raise" else "/api/v1/alarms/clear"
                        try:
                            response = http.post(
                                path, json={"type": "sync-failed", "resource": resource}, timeout=5
                            )
                        except httpx.TransportError:
                            response = None
                        if response is not None and response.status_code == 200:
                            self.answered.append((op, resource, response.json()["seq"]))
                            break
                        if response is not None and op == "clear" and response.status_code == 404:
                            # The clear committed but its answer was lost: already cleared.
                            self.answered.append((op, resource, None))
                            break
                        assert response is None or response.status_code == 503, response.text
                        self.retried += 1
                        turn += 1
                        time.sleep(0.05)
                index += 1
        finally:
            for http in clients:
                http.close()


def store_rows(pg_url: str) -> tuple[list[int], dict[int, tuple[str, str]]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT seq, type_id, resource FROM notification_log ORDER BY seq")
        found = {seq: (type_id, resource) for seq, type_id, resource in rows}
    return list(found), found


def syslog_seqs(rsyslog: Rsyslog) -> list[tuple[int, str]]:
    """(sequence number, sender's pid) of every message, as received."""
    return [
        (int(m.group(1)), line["procid"])
        for line in rsyslog.lines("tcp")
        if (m := SEQUENCE.search(line["sd"]))
    ]


def trap_seqs(trapd: Trapd) -> list[int]:
    return [r["seq"] for r in trapd.records() if r["seq"]]


def check_delivery(
    name: str, got: list[int], seqs: list[int], new_leader_from: int
) -> tuple[int, list[int]]:
    """Every stored sequence number arrived, first arrivals in order; repeats only in one
    run just before the new leader's first notification. Returns (repeats, their seqs)."""
    first = list(dict.fromkeys(got))
    assert first == seqs, f"{name}: every sequence number, in order"
    counts = Counter(got)
    repeated = sorted(s for s, n in counts.items() if n > 1)
    if repeated:
        assert repeated == list(range(repeated[0], repeated[-1] + 1)), (name, repeated)
        assert repeated[-1] < new_leader_from, (name, repeated, new_leader_from)
    return len(got) - len(counts), repeated


def senders_in_turn(got: list[tuple[int, str]]) -> list[str]:
    """The senders (pids) in the order they delivered, each run of one sender once: two
    leaders delivering at once would interleave (A B A ...)."""
    runs: list[str] = []
    for _, pid in got:
        if not runs or runs[-1] != pid:
            runs.append(pid)
    return runs


@pytest.mark.postgres
@pytest.mark.slow
def test_three_agents_lose_nothing_when_the_leader_is_killed_under_load(
    agent_factory: Any, pg_url: str, tmp_path: Path, trapd: Trapd
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
        extra = {
            "syslog": {"collectors": [collector]},
            "snmp": {"targets": targets(trapd.port, ("v2c", "trap"))},
            "cluster": {"enabled": True, "member_timeout": "3s"},
        }
        key = tmp_path / "secret.key"
        a = member(agent_factory, pg_url, "node-a", key, extra).start()
        b = member(agent_factory, pg_url, "node-b", key, extra).start()
        c = member(agent_factory, pg_url, "node-c", key, extra).start()
        for standby in (b, c):
            wait_for("standby", lambda s=standby: role_of(s) == "standby")  # type: ignore[misc]
        assert role_of(a) == "leader"

        stop = threading.Event()
        clients = [Client(n, [b, c]) for n in range(CLIENTS)]
        threads = [threading.Thread(target=k.run, args=(stop,), daemon=True) for k in clients]
        for thread in threads:
            thread.start()

        def answered() -> int:
            return sum(len(k.answered) for k in clients)

        wait_for("requests through the standbys", lambda: answered() >= 200, within=30)
        before = answered()
        killed = time.monotonic()
        a.kill()
        leader = wait_for(
            "a new leader",
            lambda: next((s for s in (b, c) if role_of(s) == "leader"), None),
            within=15,
        )
        takeover = time.monotonic() - killed
        wait_for("requests after the takeover", lambda: answered() >= before + 200, within=30)
        stop.set()
        for thread in threads:
            thread.join(15)
        other = c if leader is b else b

        seqs, rows = store_rows(pg_url)
        assert seqs == list(range(1, len(seqs) + 1)), "the sequence is gap-free"
        lost = [
            (op, resource, seq)
            for k in clients
            for op, resource, seq in k.answered
            if seq is not None and rows.get(seq, ("", ""))[1] != resource
        ]
        assert not lost, f"every answered request is in the store: {lost[:5]}"
        leadership = [s for s, (t, _) in rows.items() if t == "leadership-taken"]
        assert len(leadership) == 2, leadership  # A's, then the new leader's
        new_leader_from = leadership[-1]

        wait_for("the collector has all", lambda: {s for s, _ in syslog_seqs(rsyslog)} >= set(seqs))
        wait_for("snmptrapd has all", lambda: set(trap_seqs(trapd)) >= set(seqs), within=30)
        got = syslog_seqs(rsyslog)
        syslog_repeats = check_delivery("syslog", [s for s, _ in got], seqs, new_leader_from)
        trap_repeats = check_delivery("snmptrapd", trap_seqs(trapd), seqs, new_leader_from)
        assert a.proc is not None
        assert leader.proc is not None
        assert senders_in_turn(got) == [str(a.proc.pid), str(leader.proc.pid)]
        retried = sum(k.retried for k in clients)
        print(
            f"\nthree agents, {CLIENTS} clients through the standbys: {answered()} requests "
            f"answered ({retried} sent again after a 503 or a cut), {len(seqs)} notifications; "
            f"the new leader led {takeover:.2f}s after the old one was killed; repeats at "
            f"syslog {syslog_repeats[0]} {syslog_repeats[1]}, at snmptrapd {trap_repeats[0]} "
            f"{trap_repeats[1]}"
        )
        assert takeover < 10

        # The new leader alarms the member that went silent; the standby relays to it.
        with other.http() as http:

            def lost_alarm() -> list[dict[str, Any]] | None:
                found: list[dict[str, Any]] = http.get(
                    "/api/v1/alarms", params={"type": "cluster-member-lost"}
                ).json()
                return found or None

            (alarm,) = wait_for("cluster-member-lost", lost_alarm, within=15)
        assert alarm["resource"] == "node-a"
        assert "node-a sent no heartbeat" in alarm["text"]
        seen = status(other)
        assert seen is not None
        assert seen["leader"]["node"] == ("node-b" if leader is b else "node-c")
        assert other.stop() == 0
        assert leader.stop() == 0
    finally:
        rsyslog.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_leader_cut_from_the_store_steps_down_and_never_delivers_beside_the_new_one(
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
        with tcp_proxy("127.0.0.1", 5432) as proxy:
            a = member(agent_factory, through(proxy, pg_url), "node-a", key, extra).start()
            b = member(agent_factory, pg_url, "node-b", key, extra).start()
            c = member(agent_factory, pg_url, "node-c", key, extra).start()
            for standby in (b, c):
                wait_for("standby", lambda s=standby: role_of(s) == "standby")  # type: ignore[misc]
            stop = threading.Event()
            client = Client(0, [b, c])
            thread = threading.Thread(target=client.run, args=(stop,), daemon=True)
            thread.start()
            wait_for("requests", lambda: len(client.answered) >= 50, within=30)
            cut = time.monotonic()
            proxy.cut(15)
            leader = wait_for(
                "a new leader",
                lambda: next((s for s in (b, c) if role_of(s) == "leader"), None),
                within=15,
            )
            takeover = time.monotonic() - cut
            wait_for("the proxy is back", lambda: proxy.listening, within=25)
            wait_for("A stands by", lambda: role_of(a) == "standby", within=30)
            count = len(client.answered)
            wait_for("requests after", lambda: len(client.answered) >= count + 50, within=30)
            stop.set()
            thread.join(15)
            seqs, _ = store_rows(pg_url)
            wait_for(
                "the collector has all", lambda: {s for s, _ in syslog_seqs(rsyslog)} >= set(seqs)
            )
            got = syslog_seqs(rsyslog)
            first = list(dict.fromkeys(s for s, _ in got))
            assert first == seqs, "every sequence number, in order"
            assert a.proc is not None
            assert leader.proc is not None
            # Seen from the receiver: A delivered, then only the new leader; never both.
            assert senders_in_turn(got) == [str(a.proc.pid), str(leader.proc.pid)]
            repeats = len(got) - len({s for s, _ in got})
            print(
                f"\nleader cut from the store for 15 s: a new leader led {takeover:.2f}s after "
                "the cut; the old leader stood by; repeats at syslog "
                f"{repeats}"
            )
            assert a.proc.poll() is None, "A did not exit"
            assert "taken over by another agent" in a.log_text()
            again = status(a)
            assert again is not None
            assert again["leader"]["node"] == ("node-b" if leader is b else "node-c")
            for agent in (a, b, c):
                assert agent.stop() == 0
    finally:
        rsyslog.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_the_new_leader_takes_over_the_sync_jobs_of_a_killed_one(
    agent_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret.key"
    # Small pages and a slow element: the initializations are still running at the kill.
    extra = {"sync": {"page_size": 20, "max_concurrent_init": 2}}
    a = member(agent_factory, pg_url, "node-a", key, extra).start()
    b = member(agent_factory, pg_url, "node-b", key, extra).start()
    wait_for("B stands by", lambda: role_of(b) == "standby")
    elements = [SimulatedElement(tmp_path / f"sim{n}", objects=200) for n in range(4)]
    try:
        for element in elements:
            element.admin("POST", "/admin/faults", {"latency_ms": 100})
        jobs = [add(a, element, name=f"cm{n}") for n, element in enumerate(elements)]

        def running() -> list[dict[str, Any]]:
            with a.http() as http:
                found: list[dict[str, Any]] = http.get("/api/v1/jobs").json()
            return [j for j in found if j["state"] == "running"]

        assert len(wait_for("two inits running", lambda: len(running()) == 2 and running())) == 2
        a.kill()
        wait_for("B leads", lambda: role_of(b) == "leader", within=15)
        with b.http() as http:

            def settled() -> list[dict[str, Any]] | None:
                found: list[dict[str, Any]] = http.get("/api/v1/jobs").json()
                retried = [j for j in found if j["trigger"] == "takeover"]
                done = len(retried) == 4 and all(j["state"] == "done" for j in retried)
                return found if done else None

            found = wait_for("every element's init taken over and done", settled, within=90)
        by_id = {j["id"]: j for j in found}
        for job_id in jobs:
            assert by_id[job_id]["state"] == "failed", by_id[job_id]
            assert by_id[job_id]["error"] == "interrupted by an agent restart"
        # Never two jobs of one element at once, never more than the init limit at once.
        spans = [
            (j["element"], j["started"], j["ended"])
            for j in found
            if j["trigger"] == "takeover" and j["started"]
        ]
        # At each start, the jobs running then: at most the limit, one per element.
        for element, start, _ in spans:
            at_once = [s for s in spans if s[1] <= start < s[2]]
            assert len(at_once) <= 2, at_once
            assert [s[0] for s in at_once].count(element) == 1, at_once
        with psycopg.connect(pg_url, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()
        assert left == (0,), "no job left running"
        assert b.stop() == 0
    finally:
        for element in elements:
            element.stop()
