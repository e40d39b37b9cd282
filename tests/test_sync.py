"""Synchronization rules (docs/sync.md), each against `provsync simulate` as a real process."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentProcess, free_port
from tests.simulated import SimulatedElement


@pytest.fixture
def element(tmp_path: Path) -> Iterator[SimulatedElement]:
    simulated = SimulatedElement(tmp_path / "sim", objects=400)
    yield simulated
    simulated.stop()


@pytest.fixture
def sync_agent(agent_factory: Any) -> AgentProcess:
    agent: AgentProcess = agent_factory({"sync": {"escalate_after_changes": 5}}).start()
    return agent


def hub_objects(agent: AgentProcess, name: str) -> dict[tuple[str, str], Any]:
    with sqlite3.connect(agent.data_dir / "provsync.db") as conn:
        (element_id,) = conn.execute("SELECT id FROM elements WHERE name=?", (name,)).fetchone()
        rows = conn.execute(
            "SELECT cls, key, data FROM element_objects WHERE element_id=?", (element_id,)
        )
        return {(cls, key): json.loads(data) for cls, key, data in rows}


def add(agent: AgentProcess, element: SimulatedElement, name: str = "cm1", **extra: Any) -> int:
    body = {
        "name": name,
        "url": element.url,
        "username": "admin",
        "password": "s3cret-pass",
        **extra,
    }
    with agent.http() as http:
        response = http.post("/api/v1/elements", json=body)
        assert response.status_code == 200, response.text
        return int(response.json()["job"])


def sync(agent: AgentProcess, kind: str, name: str = "cm1", **options: Any) -> dict[str, Any]:
    with agent.http() as http:
        response = http.post(f"/api/v1/elements/{name}/sync", json={"kind": kind, **options})
        assert response.status_code == 200, response.text
    return agent.wait_job(response.json()["job"])


def active(agent: AgentProcess, type_id: str) -> list[dict[str, Any]]:
    with agent.http() as http:
        alarms: list[dict[str, Any]] = http.get("/api/v1/alarms", params={"type": type_id}).json()
        return alarms


def events(agent: AgentProcess, type_id: str) -> list[dict[str, Any]]:
    with agent.http() as http:
        found: list[dict[str, Any]] = http.get("/api/v1/events", params={"type": type_id}).json()
        return found


def test_adding_an_element_runs_an_initialization(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    job = sync_agent.wait_job(add(sync_agent, element))
    assert (job["kind"], job["trigger"], job["state"]) == ("init", "add", "done")
    assert hub_objects(sync_agent, "cm1") == element.objects()
    shown = json.loads(sync_agent.cli("elements", "show", "cm1", "--json").stdout)
    assert shown["sync_state"] == "idle"
    assert shown["software_version"] == "10.2.1"
    assert shown["objects"]["station"] == 120
    assert [e["type"] for e in events(sync_agent, "init-sync-completed")] == ["init-sync-completed"]


def test_incremental_applies_others_and_skips_its_own(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    sync_agent.wait_job(add(sync_agent, element))
    element.change("tech", "create", "station", "77001", {"number": "77001"})
    element.change("tech", "update", "user", element.first_key("user"), {"name": "Renamed"})
    element.admin(
        "POST",
        "/api/v1/updates",
        {"class": "station", "key": "77002", "op": "create", "data": {"n": 1}, "user": "provsync"},
    )
    job = sync(sync_agent, "incremental")
    assert job["state"] == "done", job
    assert job["counts"]["applied"] == 2
    assert job["counts"]["skipped_own"] == 1
    hub = hub_objects(sync_agent, "cm1")
    assert hub[("station", "77001")] == {"number": "77001"}
    # Not pulled (not counted as applied) but kept in the hub's copy, as the element has it.
    assert hub[("station", "77002")] == {"n": 1}
    assert hub == element.objects()
    again = sync(sync_agent, "incremental")
    assert again["counts"]["applied"] == 0


@pytest.mark.parametrize("cause", ["pending", "epoch", "gap", "failed-init"])
def test_escalation_to_initialization(
    sync_agent: AgentProcess, element: SimulatedElement, cause: str
) -> None:
    sync_agent.wait_job(add(sync_agent, element))
    reason = {
        "pending": "6 changes are pending",
        "epoch": "epoch changed",
        "gap": "no longer reaches",
        "failed-init": "did not complete",
    }[cause]
    if cause == "pending":
        for index in range(6):
            element.change("tech", "create", "station", f"7{index:04d}", {"n": index})
    elif cause == "epoch":
        element.new_epoch()
    elif cause == "gap":
        element.change("tech", "create", "station", "70001", {"n": 1})
        element.change("tech", "create", "station", "70002", {"n": 2})
        element.admin("POST", "/admin/retention", {"keep": 1})
    else:
        element.admin("POST", "/admin/faults", {"down": True})
        assert sync(sync_agent, "init")["state"] == "failed"
        element.admin("POST", "/admin/faults", {"down": False})
    job = sync(sync_agent, "incremental")
    assert job["state"] == "done", job
    assert job["kind"] == "init"
    assert reason in job["reason"]
    escalated = events(sync_agent, "sync-escalated")
    assert reason in escalated[-1]["text"]
    assert hub_objects(sync_agent, "cm1") == element.objects()


def test_upgrade_stops_incremental_with_init_required(agent_factory: Any, tmp_path: Path) -> None:
    element = SimulatedElement(tmp_path / "sim", objects=50)
    try:
        agent: AgentProcess = agent_factory().start()
        agent.wait_job(add(agent, element))
        element.admin("POST", "/admin/version", {"software_version": "10.2.2"})
        element.change("tech", "create", "station", "71001", {"n": 1})
        job = sync(agent, "incremental")
        assert job["state"] == "failed"
        assert "upgraded from 10.2.1 to 10.2.2" in job["error"]
        assert job["kind"] == "incremental", "it does not switch silently"
        assert ("station", "71001") not in hub_objects(agent, "cm1")
        assert active(agent, "init-sync-required")
        assert sync(agent, "init")["state"] == "done"
        assert not active(agent, "init-sync-required")
        assert hub_objects(agent, "cm1") == element.objects()
    finally:
        element.stop()


def test_force_initialization_needs_confirmation_to_delete(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    sync_agent.wait_job(add(sync_agent, element))
    element.admin("POST", "/admin/wipe")
    report = sync(sync_agent, "force", dry_run=True)
    assert report["state"] == "done"
    assert report["counts"]["would_delete"] == 400 + 4
    assert len(hub_objects(sync_agent, "cm1")) == 404, "a dry run changes nothing"
    refused = sync(sync_agent, "force")
    assert refused["state"] == "failed"
    assert "--yes" in refused["error"]
    assert len(hub_objects(sync_agent, "cm1")) == 404
    done = sync(sync_agent, "force", yes=True)
    assert done["state"] == "done"
    assert hub_objects(sync_agent, "cm1") == {}
    (event,) = events(sync_agent, "force-init-sync")[-1:]
    assert event["severity"] == "warning"


def test_credentials_and_reachability_alarms(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    with sync_agent.http() as http:
        response = http.post("/api/v1/elements", json={"name": "nocreds", "url": element.url})
        assert sync_agent.wait_job(response.json()["job"])["state"] == "failed"
        (missing,) = active(sync_agent, "auth-failed-missing")
        assert missing["resource"] == "nocreds"
        response = http.post(
            "/api/v1/elements",
            json={"name": "wrong", "url": element.url, "username": "admin", "password": "x"},
        )
        sync_agent.wait_job(response.json()["job"])
        assert active(sync_agent, "auth-failed-incorrect")[0]["resource"] == "wrong"
        http.put(
            "/api/v1/elements/wrong/credentials",
            json={"username": "admin", "password": "s3cret-pass"},
        )
    assert sync(sync_agent, "init", name="wrong")["state"] == "done"
    assert not active(sync_agent, "auth-failed-incorrect")
    assert not [a for a in active(sync_agent, "sync-failed") if a["resource"] == "wrong"]
    dead = {
        "name": "gone",
        "url": f"http://127.0.0.1:{free_port()}",
        "username": "a",
        "password": "b",
    }
    with sync_agent.http() as http:
        response = http.post("/api/v1/elements", json=dead)
        job = sync_agent.wait_job(response.json()["job"])
    assert job["state"] == "failed"
    assert active(sync_agent, "element-unreachable")[0]["resource"] == "gone"
    listing = sync_agent.cli("elements", "list", "--json").stdout
    assert "s3cret-pass" not in listing, "credentials never listed"


def test_duplicates_collapse_and_schedule(agent_factory: Any, element: SimulatedElement) -> None:
    agent: AgentProcess = agent_factory().start()
    agent.wait_job(add(agent, element, interval=1))
    element.admin("POST", "/admin/faults", {"latency_ms": 300})
    with agent.http() as http:
        ids = [
            http.post("/api/v1/elements/cm1/sync", json={"kind": "incremental"}).json()["job"]
            for _ in range(4)
        ]
    assert len(set(ids)) <= 2, "one running, the rest collapse into the queued one"
    element.admin("POST", "/admin/faults", {"latency_ms": 0})
    for job_id in set(ids):
        agent.wait_job(job_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = json.loads(agent.cli("jobs", "list", "--json").stdout)
        if any(j["trigger"] == "schedule" and j["state"] == "done" for j in jobs):
            break
        time.sleep(0.2)
    assert any(j["trigger"] == "schedule" for j in jobs)
    for job in jobs:
        assert set(job) >= {
            "id",
            "element",
            "kind",
            "trigger",
            "state",
            "started",
            "ended",
            "counts",
            "error",
        }


def test_ten_elements_at_most_nine_initializations_at_once(
    agent_factory: Any, element: SimulatedElement
) -> None:
    agent: AgentProcess = agent_factory().start()
    element.admin("POST", "/admin/faults", {"latency_ms": 150})
    job_ids = [add(agent, element, name=f"cm{i}") for i in range(10)]
    jobs = [agent.wait_job(job_id, within=120) for job_id in job_ids]
    assert all(j["state"] == "done" for j in jobs)
    moments = []
    for job in jobs:
        moments.append((datetime.fromisoformat(job["started"]), 1))
        moments.append((datetime.fromisoformat(job["ended"]), -1))
    running = peak = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):
        running += step
        peak = max(peak, running)
    assert 2 <= peak <= 9, peak


def test_elements_appear_in_the_snmp_element_table(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    from tests.netsnmp import run

    sync_agent.wait_job(add(sync_agent, element))
    table = run(
        "snmptable",
        "-v2c",
        "-c",
        "public",
        "-Cf",
        "|",
        f"127.0.0.1:{sync_agent.snmp_port}",
        "PROVSYNC-MIB::provsyncElementTable",
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split("|") for line in table.stdout.splitlines() if line.count("|") >= 5]
    header, data = rows[0], rows[1:]
    column = {name: i for i, name in enumerate(header)}
    assert [r[column["provsyncElementName"]] for r in data] == ["cm1"]
    assert data[0][column["provsyncElementSyncState"]] == "idle"
    assert data[0][column["provsyncElementType"]] == "call-server"


def test_schedule_interval_or_cron_editable(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    from datetime import UTC, timedelta
    from types import SimpleNamespace

    from agent.store.schedule import next_due

    base = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    row = SimpleNamespace(last_sync_at=base, created_at=base, cron="", interval=3600)
    assert next_due(row) == base + timedelta(hours=1)
    row.cron = "0 2 * * *"
    assert next_due(row) == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    row.cron, row.interval = "", 0
    assert next_due(row) is None

    sync_agent.wait_job(add(sync_agent, element))
    shown = sync_agent.cli("elements", "set-schedule", "cm1", "--cron", "*/5 * * * *", "--json")
    assert json.loads(shown.stdout)["cron"] == "*/5 * * * *"
    bad = sync_agent.cli("elements", "set-schedule", "cm1", "--cron", "every day", check=False)
    assert bad.returncode == 1
    assert "not a crontab expression" in bad.stderr
    back = sync_agent.cli(
        "elements", "set-schedule", "cm1", "--cron", "", "--interval", "12h", "--json"
    )
    assert (json.loads(back.stdout)["cron"], json.loads(back.stdout)["interval"]) == ("", 43200)


def test_agent_upgrade_stops_incremental(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    sync_agent.wait_job(add(sync_agent, element))
    with sqlite3.connect(sync_agent.data_dir / "provsync.db") as conn:
        conn.execute("UPDATE elements SET agent_version='0.0.9' WHERE name='cm1'")
    job = sync(sync_agent, "incremental")
    assert job["state"] == "failed"
    assert "agent was upgraded from 0.0.9" in job["error"]
    assert active(sync_agent, "init-sync-required")


def test_plain_init_never_empties_the_hub(
    sync_agent: AgentProcess, element: SimulatedElement
) -> None:
    sync_agent.wait_job(add(sync_agent, element))
    element.admin("POST", "/admin/wipe")  # restored from an empty backup, say
    job = sync(sync_agent, "incremental")  # the epoch changed: it escalates
    assert job["state"] == "failed"
    assert "nothing was deleted" in job["error"]
    assert len(hub_objects(sync_agent, "cm1")) == 404
    assert sync(sync_agent, "init")["state"] == "failed"
    assert len(hub_objects(sync_agent, "cm1")) == 404
