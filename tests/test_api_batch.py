"""The batch route: many raises, clears and acknowledgements in one request, each
answered in order; refused whole (nothing applied) when malformed, too long, or when it
does not fit in the writer's bound."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.api.app import create_app
from agent.api.services import Services
from agent.http_tls import client_context
from agent.store.database import Store
from tests.conftest import TOKEN, AgentProcess

BATCH = "/api/v1/alarms/batch"


def _active(http: httpx.Client) -> dict[str, dict[str, Any]]:
    alarms = http.get("/api/v1/alarms", params={"state": "all"}).json()
    return {a["resource"]: a for a in alarms}


def _logged(agent: AgentProcess, seqs: set[int], timeout: float = 20) -> list[tuple[int, str]]:
    """(seq, resource) of the file exporter's lines with these sequence numbers."""
    deadline = time.monotonic() + timeout
    while True:
        lines = agent.jsonl.read_text().splitlines() if agent.jsonl.exists() else []
        found = [(n["seq"], n["resource"]) for n in map(json.loads, lines) if n["seq"] in seqs]
        if len(found) >= len(seqs) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_mixed_operations_are_answered_in_order_with_their_own_errors(
    agent: AgentProcess,
) -> None:
    with agent.http() as http:
        first = http.post(
            BATCH,
            json={
                "operations": [
                    {"op": "raise", "type": "sync-failed", "resource": "b1", "text": "one"},
                    {
                        "op": "raise",
                        "type": "sync-failed",
                        "resource": "b2",
                        "severity": "critical",
                    },
                    {"op": "raise", "type": "element-unreachable", "resource": "b3"},
                ]
            },
        )
        assert first.status_code == 200, first.text
        results = first.json()["results"]
        assert [r["ok"] for r in results] == [True, True, True]
        assert [r["change"] for r in results] == ["raised", "raised", "raised"]
        assert [r["alarm"]["resource"] for r in results] == ["b1", "b2", "b3"]
        assert results[1]["alarm"]["severity"] == "critical"
        # The same object as the single route, plus "ok".
        single = http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "b1"})
        assert set(results[0]) == {"ok", *single.json()}
        seqs = [r["seq"] for r in results]
        assert seqs == sorted(seqs)
        id1, id2, id3 = (r["alarm"]["id"] for r in results)

        second = http.post(
            BATCH,
            json={
                "operations": [
                    {"op": "ack", "id": id1, "note": "seen", "by": "gw"},
                    {"op": "clear", "type": "sync-failed", "resource": "b2", "note": "fixed"},
                    {"op": "clear", "id": 999_999},
                    {"op": "raise", "type": "no-such-type", "resource": "x"},
                    {"op": "unack", "id": id1},
                    {"op": "clear", "id": id3, "by": "gw"},
                    {"op": "clear", "type": "sync-failed", "resource": "never-raised"},
                    {"op": "raise", "type": "sync-failed", "resource": "b4"},
                ]
            },
        )
        assert second.status_code == 200, second.text
        results = second.json()["results"]
        assert len(results) == 8
        assert [r["ok"] for r in results] == [True, True, False, False, True, True, False, True]
        assert results[0]["change"] == "acknowledged"
        assert results[0]["alarm"]["ack_by"] == "gw"
        assert results[1]["alarm"]["id"] == id2
        assert results[1]["alarm"]["state"] == "cleared"
        assert results[2]["status"] == 404
        assert "999999" in results[2]["error"]
        assert results[3]["status"] == 400
        assert "no-such-type" in results[3]["error"]
        assert results[0]["alarm"]["operator_state"] == "acknowledged"
        assert results[4]["alarm"]["operator_state"] == "none"
        assert results[5]["alarm"]["state"] == "cleared"
        assert results[6]["status"] == 404
        assert results[7]["change"] == "raised"
        applied = [r["seq"] for r in results if r["ok"]]
        assert applied == sorted(applied)  # committed in request order

        alarms = _active(http)
        assert alarms["b1"]["state"] == "active"
        assert alarms["b1"]["count"] == 2
        assert alarms["b2"]["state"] == "cleared"
        assert alarms["b3"]["state"] == "cleared"
        assert alarms["b4"]["state"] == "active"
        assert "x" not in alarms
    # Every transition that logged a notification reached the file exporter, in order.
    answered = [
        (r["seq"], r["alarm"]["resource"])
        for r in first.json()["results"] + results
        if r["ok"] and r["seq"] is not None
    ]
    assert len(answered) >= 7
    assert _logged(agent, {seq for seq, _ in answered}) == answered


def test_a_refused_last_operation_is_answered_in_its_place(agent: AgentProcess) -> None:
    # Before: the batch waited for its last operation by awaiting it, so its refusal
    # became the whole request's answer (404) although the others had committed.
    with agent.http() as http:
        response = http.post(
            BATCH,
            json={
                "operations": [
                    {"op": "raise", "type": "sync-failed", "resource": "l1"},
                    {"op": "clear", "id": 999_999},
                ]
            },
        )
        assert response.status_code == 200, response.text
        first, last = response.json()["results"]
        assert first["ok"] is True
        assert first["alarm"]["resource"] == "l1"
        assert last == {"ok": False, "status": 404, "error": "no alarm with id 999999"}
        assert set(_active(http)) == {"l1"}


def test_malformed_or_too_long_batches_are_refused_whole(agent_factory: Any) -> None:
    agent: AgentProcess = agent_factory({"api": {"max_batch": 5}}).start()
    good = {"op": "raise", "type": "sync-failed", "resource": "m1"}
    with agent.http() as http:
        cases = [
            ([good, {"op": "raise", "type": "sync-failed"}], "resource"),
            ([good, {"op": "explode", "id": 1}], "explode"),
            ([good, {"op": "clear", "id": 1, "type": "sync-failed", "resource": "m1"}], "not both"),
            ([good, {"op": "clear", "note": "which?"}], "needs an id"),
            ([good, {"op": "ack", "id": 2**63}], "id"),
            ([good, {"op": "raise", "type": "sync-failed", "resource": "m2", "extra": 1}], "extra"),
            ([], "operations"),
            ([good] * 6, "at most 5 ([api] max_batch)"),
        ]
        for operations, needle in cases:
            response = http.post(BATCH, json={"operations": operations})
            assert response.status_code == 422, (operations, response.text)
            assert needle in response.json()["error"], (needle, response.text)
        assert http.post(BATCH, json={"ops": [good]}).status_code == 422
        assert http.get("/api/v1/alarms").json() == []  # nothing of any was applied
        assert http.post(BATCH, json={"operations": [good] * 5}).status_code == 200


def test_a_batch_longer_than_the_writer_bound_is_refused_as_never_fitting(
    agent_factory: Any,
) -> None:
    agent: AgentProcess = agent_factory({"api": {"max_pending_writes": 3}}).start()
    ops = [{"op": "raise", "type": "sync-failed", "resource": f"n{i}"} for i in range(4)]
    with agent.http() as http:
        response = http.post(BATCH, json={"operations": ops})
        assert response.status_code == 422
        assert "max_pending_writes" in response.json()["error"]
        assert http.get("/api/v1/alarms").json() == []


def test_no_token_is_refused_before_the_body_is_read(agent: AgentProcess) -> None:
    # A declared 10 MB body that is never sent: an answer proves nothing waited for it.
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    started = time.monotonic()
    sock.sendall(
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 << 20}\r\n\r\n".encode()
    )
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert time.monotonic() - started < 2
    wrong = httpx.post(
        agent.url + BATCH,
        json={"operations": [{"op": "clear", "id": 1}]},
        headers={"Authorization": "Bearer wrong"},
        verify=client_context(),
    )
    assert wrong.status_code == 401


# ------------------------------------------------------------------ the writer's bound
@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[AlarmManager, threading.Event]]:
    """A real manager on SQLite whose writer hangs after its first commit, one counted."""
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog(), pending_max=10)
    gate = threading.Event()
    manager.add_listener(lambda seq: gate.wait(30))
    manager.start()
    first = manager.submit(manager.make_event("test", "first"), bounded=True)
    deadline = time.monotonic() + 10
    while not first.done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield manager, gate
    finally:
        gate.set()
        manager.stop()
        store.close()


def test_a_batch_that_does_not_fit_the_writer_bound_is_refused_whole(
    stalled: tuple[AlarmManager, threading.Event],
) -> None:
    manager, gate = stalled
    services = Services(
        manager=manager,
        token=TOKEN,
        started_at=datetime.now(UTC),
        store_url="sqlite://",
        store_id="test",
    )
    app = create_app(services)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def ops(prefix: str, n: int) -> dict[str, Any]:
        return {
            "operations": [
                {"op": "raise", "type": "sync-failed", "resource": f"{prefix}{i}"} for i in range(n)
            ]
        }

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://agent", headers=headers, verify=client_context()
        ) as http:
            assert manager.pending == 1  # the stalled commit
            refused = await http.post(BATCH, json=ops("refused", 10))  # 1 + 10 > 10
            assert manager.pending == 1
            fits = asyncio.ensure_future(http.post(BATCH, json=ops("fits", 9)))  # 1 + 9
            deadline = time.monotonic() + 10
            while manager.pending < 10:  # the manager has no event for it
                assert time.monotonic() < deadline, manager.pending
                await asyncio.sleep(0.01)
            single = await http.post(
                "/api/v1/alarms", json={"type": "sync-failed", "resource": "s"}
            )
            assert single.status_code == 503  # full: the batch's operations count
            gate.set()
            return refused, await fits

    refused, fits = asyncio.run(scenario())
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "this batch has 10" in refused.json()["error"]
    assert fits.status_code == 200, fits.text
    assert [r["alarm"]["resource"] for r in fits.json()["results"]] == [
        f"fits{i}" for i in range(9)
    ]
    assert manager.refused == 2
    resources = [
        r
        for (r,) in manager.engine.connect().exec_driver_sql(
            "SELECT resource FROM alarms ORDER BY id"
        )
    ]
    assert resources == [f"fits{i}" for i in range(9)]  # nothing of the refused batch
