"""SIGKILL while a client raises and clears alarms: nothing acknowledged is lost.

Two kills at different points of a run that raises and clears 2,000 alarms through the
control API. After each restart: every change the API acknowledged is in the store and in
the exporter's file, sequence numbers have no gap, and the file repeats only entries after
the cursor committed before the kill.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from agent.http_tls import client_context
from tests.conftest import TOKEN, AgentProcess

ALARMS = 2000
WORKERS = 4


class Client:
    """Raises then clears alarms r0..rN-1, remembering what the agent acknowledged."""

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        self.acked: dict[tuple[str, str], int] = {}  # (op, resource) -> seq (0: no change)
        self.lock = threading.Lock()
        self.done = [False] * ALARMS

    def _post(self, http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
        return http.post(path, json=body)

    def work(self, worker: int, stop_after: int | None) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(
            base_url=self.agent.url, headers=headers, timeout=10, verify=client_context()
        ) as http:
            for index in range(worker, ALARMS, WORKERS):
                if self.done[index]:
                    continue
                resource = f"r{index}"
                try:
                    for op, path in (
                        ("raise", "/api/v1/alarms"),
                        ("clear", "/api/v1/alarms/clear"),
                    ):
                        if (op, resource) in self.acked:
                            continue
                        response = self._post(
                            http, path, {"type": "sync-failed", "resource": resource}
                        )
                        if op == "clear" and response.status_code == 404:
                            # The clear committed but its answer was lost in the kill.
                            seq = 0
                        else:
                            response.raise_for_status()
                            seq = response.json()["seq"] or 0
                        with self.lock:
                            self.acked[(op, resource)] = seq
                    self.done[index] = True
                except httpx.TransportError:
                    return  # the agent was killed
                if stop_after is not None and len(self.acked) >= stop_after:
                    return

    def run(self, stop_after: int | None = None, kill: AgentProcess | None = None) -> None:
        threads = [threading.Thread(target=self.work, args=(w, stop_after)) for w in range(WORKERS)]
        for thread in threads:
            thread.start()
        if kill is not None and stop_after is not None:
            while len(self.acked) < stop_after and any(t.is_alive() for t in threads):
                threading.Event().wait(0.005)
            kill.kill()
        for thread in threads:
            thread.join(60)


def committed_cursor(agent: AgentProcess) -> int:
    with sqlite3.connect(agent.data_dir / "provsync.db") as conn:
        row = conn.execute("SELECT last_seq FROM exporter_cursors WHERE name='jsonl'").fetchone()
    return int(row[0]) if row else 0


def wait_drained(agent: AgentProcess) -> None:
    with agent.http() as http:
        for _ in range(600):
            status = http.get("/api/v1/status").json()
            exporter = status["exporters"][0]
            if exporter["cursor"] == status["last_seq"]:
                return
            threading.Event().wait(0.05)
    raise AssertionError("exporter did not catch up")


@pytest.mark.slow
def test_sigkill_loses_nothing_acknowledged(agent_factory: Any) -> None:
    agent = agent_factory({"exporters": {"batch_size": 100}}).start()
    client = Client(agent)
    cursors: list[int] = []
    for kill_at in (1200, 2900):
        client.run(stop_after=kill_at, kill=agent)
        cursors.append(committed_cursor(agent))
        agent.start()
    client.run()
    assert all(client.done), "the client finished after the restarts"
    wait_drained(agent)

    with agent.http() as http:
        alarms = http.get("/api/v1/alarms", params={"state": "all", "limit": 100_000}).json()
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        by_resource.setdefault(alarm["resource"], []).append(alarm)
    for (op, resource), _seq in client.acked.items():
        assert resource in by_resource, f"acknowledged {op} of {resource} is missing"
        if op == "clear":
            assert all(a["state"] == "cleared" for a in by_resource[resource])
    assert len(by_resource) == ALARMS
    assert all(a["state"] == "cleared" for a in alarms)

    agent.stop()
    lines = [json.loads(line) for line in agent.jsonl.read_text().splitlines()]
    seqs = [line["seq"] for line in lines]
    assert set(seqs) == set(range(1, max(seqs) + 1)), "no gap in sequence numbers"
    acked_seqs = {seq for seq in client.acked.values() if seq}
    assert acked_seqs <= set(seqs), "every acknowledged change reached the exporter"
    repeats = [seq for seq, n in Counter(seqs).items() if n > 1]
    for seq in repeats:
        assert any(seq > cursor for cursor in cursors), f"seq {seq} repeated before a cursor"
    by_seq: dict[int, dict[str, Any]] = {}
    for line in lines:
        assert by_seq.setdefault(line["seq"], line) == line, "a repeat is the same entry"
    # Ordered: apart from repeats after a restart, the file never goes backwards.
    assert seqs == sorted(seqs) or repeats
