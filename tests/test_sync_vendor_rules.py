"""The synchronization document's rules (issue 14) as a user meets them: a running agent,
`provsync simulate` elements as real processes, the control API and the hub's store.

The same rules in-process, with a fake element and a manual clock: tests/test_sync_rules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import AgentProcess
from tests.sharing_group import FAST, SharingGroup
from tests.simulated import SimulatedElement
from tests.test_sync import active, add, events, hub_objects, sync
from tests.waiting import wait_for


def test_a_full_init_object_change_leaves_the_element_current_and_asks_for_an_init(
    agent_factory: Any, tmp_path: Path
) -> None:
    """Item 1 and 2: the element does not freeze; only the document's objects ask."""
    agent: AgentProcess = agent_factory().start()
    element = SimulatedElement(tmp_path / "sim", objects=100)
    try:
        agent.wait_job(add(agent, element))
        element.change("tech", "create", "station", "72001", {"n": 1})
        element.change("tech", "update", "dial-plan", "main", {"prefixes": {"3": "extension"}})
        element.change("tech", "create", "system-parameter", "ip-options", {"ttl": 64})
        element.change("tech", "create", "station", "72002", {"n": 2})
        job = sync(agent, "incremental")
        assert (job["kind"], job["state"]) == ("incremental", "done"), job
        assert job["counts"]["applied"] == 3
        assert job["counts"]["init_required"] == ["dial-plan main"]
        hub = hub_objects(agent, "cm1")
        assert hub[("station", "72002")] == {"n": 2}, "changes after it are applied"
        assert hub[("system-parameter", "ip-options")] == {"ttl": 64}
        assert hub[("dial-plan", "main")] != {"prefixes": {"3": "extension"}}
        (alarm,) = active(agent, "init-sync-required")
        assert "dial-plan main changed" in alarm["text"]
        assert not active(agent, "sync-failed")
        with agent.http() as http:
            shown = http.get("/api/v1/elements/cm1").json()
        assert shown["sync_state"] == "init-required"
        element.change("tech", "create", "station", "72003", {"n": 3})
        assert sync(agent, "incremental")["state"] == "done"
        assert hub_objects(agent, "cm1")[("station", "72003")] == {"n": 3}
        assert sync(agent, "init")["state"] == "done"
        assert not active(agent, "init-sync-required")
        assert hub_objects(agent, "cm1") == element.objects()
    finally:
        element.stop()


def test_an_emptied_element_raises_its_alarm_until_a_forced_init(
    agent_factory: Any, tmp_path: Path
) -> None:
    """Item 6, through the CLI: the alarm, its hint, the event and the element's state."""
    agent: AgentProcess = agent_factory().start()
    element = SimulatedElement(tmp_path / "sim", objects=50)
    try:
        agent.wait_job(add(agent, element))
        element.admin("POST", "/admin/wipe")
        job = sync(agent, "init")
        assert job["state"] == "failed"
        (alarm,) = active(agent, "element-emptied")
        assert alarm["resource"] == "cm1"
        assert "returned no data" in alarm["text"]
        assert events(agent, "init-sync-failed")
        with agent.http() as http:
            assert http.get("/api/v1/elements/cm1").json()["sync_state"] == "failed"
        catalog = agent.cli("catalog")
        assert "element-emptied" in catalog.stdout
        assert sync(agent, "force", yes=True)["state"] == "done"
        assert not active(agent, "element-emptied")
        assert hub_objects(agent, "cm1") == {}
    finally:
        element.stop()


def test_a_hub_change_distributed_to_an_element_is_in_the_hubs_copy_of_it(
    agent_factory: Any, tmp_path: Path
) -> None:
    """Item 3: echo suppression keeps the hub's copy equal to the element."""
    agent: AgentProcess = agent_factory(FAST).start()
    group = SharingGroup(agent, tmp_path)
    try:
        cs1 = group.add("cs1")
        assert group.start_sharing("cs1").status_code == 200
        assert group.sync("cs1")["state"] == "done"
        agent.cli("objects", "add", "user", "newhire", "name=New Hire", "number=29001")
        wait_for("delivered", lambda: group.settled() and ("user", "newhire") in cs1.objects())
        # Recorded when delivered, before any incremental.
        assert hub_objects(agent, "cs1")[("user", "newhire")] == cs1.objects()[("user", "newhire")]
        job = sync(agent, "incremental", "cs1")
        assert job["state"] == "done", job
        assert job["counts"]["skipped_own"] >= 1, "the hub's own update is not pulled"
        assert hub_objects(agent, "cs1") == cs1.objects()
    finally:
        group.stop()


def test_cm_notify_sync_applies_changes_as_made_and_the_incremental_skips_them(
    agent_factory: Any, tmp_path: Path
) -> None:
    """Item 7 (and 4): notify sync through Element API v1, the simulator and the hub."""
    agent: AgentProcess = agent_factory().start()
    group = SharingGroup(agent, tmp_path)
    try:
        cm1 = group.add("cm1")
        assert cm1.admin("POST", "/admin/notify-sync", {"enabled": True})["notify_sync"]
        assert cm1.admin("GET", "/api/v1/info")["notify_sync"] is True
        made = _change(cm1, "tech", "create", "station", "78001", {"n": 1})
        assert made["notify"] == {"seq": made["seq"], "status": "applied"}
        assert made["notify_sync"] is True
        assert hub_objects(agent, "cm1")[("station", "78001")] == {"n": 1}, "at once"
        # The login cm1 is registered with is the hub's own user: kept, as applied.
        own = _change(cm1, "admin", "create", "station", "78002", {"n": 2})
        assert own["notify"]["status"] == "applied"
        job = sync(agent, "incremental")
        assert job["state"] == "done", job
        assert (job["counts"]["applied"], job["counts"]["cursor"]) == (0, own["seq"])
        changes = cm1.admin("GET", f"/api/v1/changes?after={made['seq'] - 1}")["changes"]
        assert [c["notify_sync"] for c in changes] == [True, True]
        # A full-initialization object: left to an incremental, which the hub queues.
        plan = _change(cm1, "tech", "update", "dial-plan", "main", {})
        assert plan["notify"]["status"] == "ignored"
        assert "initialization only" in plan["notify"]["reason"]
        assert plan["notify_sync"] is False
        (alarm,) = wait_for("init-sync-required", lambda: active(agent, "init-sync-required"))
        assert "dial-plan main changed" in alarm["text"]
        with agent.http() as http:
            jobs = http.get("/api/v1/jobs", params={"element": "cm1"}).json()
        assert any(j["trigger"] == "notify" for j in jobs)
        # Malformed notifications are refused whole; an unauthenticated one too.
        good = {"seq": 999, "user": "tech", "op": "create", "class": "station", "key": "9"}
        with agent.http() as http:
            for bad in ([{**good, "data": {}}, {**good, "data": {}}], [good]):
                answer = http.post(
                    "/api/v1/sync/notify", json={"element": "cm1", "epoch": "x", "changes": bad}
                )
                assert answer.status_code == 422, answer.text
            refused = http.post(
                "/api/v1/sync/notify",
                json={"element": "cm1", "epoch": "x", "changes": []},
                headers={"Authorization": "Bearer wrong"},
            )
        assert refused.status_code == 401
    finally:
        group.stop()


def test_a_notification_from_an_element_the_hub_does_not_trust_is_pulled_later(
    agent_factory: Any, tmp_path: Path
) -> None:
    """A refused notification (wrong token) leaves the change to the incremental."""
    agent: AgentProcess = agent_factory().start()
    element = SimulatedElement(tmp_path / "sim", objects=50, hub=agent.url, hub_token="wrong")
    try:
        agent.wait_job(add(agent, element))
        element.admin("POST", "/admin/notify-sync", {"enabled": True})
        made = _change(element, "tech", "create", "station", "79001", {})
        assert made["notify"]["status"] == 401
        assert made["notify_sync"] is False
        assert ("station", "79001") not in hub_objects(agent, "cm1")
        job = sync(agent, "incremental")
        assert job["counts"]["applied"] == 1
        assert hub_objects(agent, "cm1") == element.objects()
    finally:
        element.stop()


def _change(
    element: SimulatedElement, user: str, op: str, cls: str, key: str, data: Any
) -> dict[str, Any]:
    """A change made on the element by ``user``, not shared: the simulator's answer."""
    body = {"user": user, "op": op, "class": cls, "key": key, "data": data, "share": False}
    answer: dict[str, Any] = element.admin("POST", "/admin/changes", body)
    return answer
