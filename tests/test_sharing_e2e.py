"""Sharing end to end: a hub and three `provsync simulate` elements as real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sharing_group import FAST, SHARED, SharingGroup
from tests.waiting import wait_for


def _json(agent: Any, *args: str) -> Any:
    return json.loads(agent.cli(*args, "--json").stdout)


def test_sharing_end_to_end(agent_factory: Any, tmp_path: Path, store_url: str) -> None:
    agent = agent_factory({**FAST, "store": {"url": store_url}}).start()
    group = SharingGroup(agent, tmp_path)
    try:
        _run(agent, group)
    finally:
        group.stop()


def _run(agent: Any, group: SharingGroup) -> None:
    cs1, cs2 = group.add("cs1"), group.add("cs2")
    cs3 = group.add("cs3", version="9.1")

    # --- start sharing: the element below the minimum version is refused and reverted
    refused = group.start_sharing("cs3")
    assert refused.status_code == 409, refused.text
    assert "older than the minimum 10.0" in refused.json()["error"]
    assert group.events("sharing-refused", "cs3")
    for name in ("cs1", "cs2"):
        assert group.start_sharing(name).status_code == 200
    status = _json(agent, "sharing", "status")
    assert status["state"] == "syncRequired"
    # cs3 was refused: it is not in the sharing group, so not listed.
    assert "cs3" not in {e["name"] for e in status["elements"]}
    assert {a["resource"] for a in group.alarms("sync-required")} == {"cs1", "cs2"}

    # --- while sync-required is active, flow-through provisioning is refused, naming it
    blocked = agent.cli("objects", "add", "user", "newhire", "name=New Hire", check=False)
    assert blocked.returncode == 1
    assert "sync-required" in blocked.stderr
    assert "newhire" not in {o["key"] for o in _json(agent, "objects", "list", "user")}

    # --- a sync from any sharing element clears it
    assert group.sync("cs1")["state"] == "done"
    assert not group.alarms("sync-required")
    assert group.events("user-sync-started", "cs1")
    assert group.events("user-sync-completed", "cs1")
    assert group.hub_data() == cs1.shared(SHARED)
    group.sync("cs2")

    # --- hub changes flow through to every sharing element
    agent.cli(
        "objects",
        "add",
        "user",
        "newhire",
        "name=New Hire",
        "number=29001",
        "email=newhire@example.com",
    )
    wait_for(
        "newhire everywhere",
        lambda: (
            group.settled() and all(("user", "newhire") in e.shared(SHARED) for e in (cs1, cs2))
        ),
    )

    # --- conflicting edits on cs1 (while it refuses the hub's update) and on the hub
    user = cs1.first_key("user")
    before = group.hub_data()[("user", user)]
    cs1.reject("user", user, "locked on the element")
    agent.cli("objects", "set", "user", user, "name=Hub Name")
    wait_for("the rejection", lambda: group.alarms("distribution-errors", "cs1"))
    group.local_change(
        "cs1", "update", "user", user, {**before, "name": "Element Name"}, share=False
    )
    cs1.admin("DELETE", "/admin/reject")
    assert group.sync("cs1")["counts"]["unresolved"] == 1
    reconcile = _json(agent, "sharing", "reconcile")
    assert reconcile["summary"]["unresolved"] == 1
    (conflict,) = [c for c in reconcile["conflicts"] if c["category"] == "unresolved"]
    assert conflict["key"] == user
    assert conflict["hub"]["name"] == "Hub Name"
    assert conflict["element_value"]["name"] == "Element Name"
    assert conflict["base"]["name"] == before["name"]
    assert group.alarms("sync-reconcile-required", "cs1")

    # --- during reconcile: hub changes refused, element updates rejected (update-rejected)
    blocked = agent.cli("objects", "set", "user", user, "name=Other", check=False)
    assert blocked.returncode == 1
    assert "sync-reconcile-required" in blocked.stderr
    station = cs2.first_key("station")
    station_data = cs2.shared(SHARED)[("station", station)]
    pushed = group.local_change(
        "cs2", "update", "station", station, {**station_data, "type": "J179"}
    )
    assert pushed["hub"]["status"] == "rejected"
    assert "reconcile" in pushed["hub"]["reason"]
    (rejected,) = group.events("update-rejected", "cs2")
    assert station in rejected["text"]
    assert "reconcile" in rejected["text"]

    # --- resolving the conflict clears the alarm; the hub's value goes to cs1
    agent.cli("sharing", "resolve", str(conflict["id"]), "--take", "hub")
    assert not group.alarms("sync-reconcile-required")
    assert group.events("reconcile-completed", "cs1")
    wait_for("hub name on cs1", lambda: cs1.shared(SHARED)[("user", user)]["name"] == "Hub Name")
    wait_for("cs1's errors gone", lambda: not group.alarms("distribution-errors", "cs1"))

    # --- an element rejecting updates: distribution errors, then retry and delete clear them
    cs2.reject("station", "", "stations are locked")
    agent.cli("objects", "add", "station", "39001", "number=39001", "type=9608")
    other = sorted(k for c, k in cs2.shared(SHARED) if c == "station")[1]
    agent.cli("objects", "set", "station", other, "type=J169")
    listing = ("distribution", "list", "--element", "cs2", "--state", "error")
    errors = wait_for("two errors", lambda: len(e := _json(agent, *listing)) == 2 and e)
    assert {e["error"] for e in errors} == {"stations are locked"}
    (alarm,) = group.alarms("distribution-errors", "cs2")
    assert alarm["severity"] == "minor"
    assert "2 shared updates" in alarm["text"]
    cs2.admin("DELETE", "/admin/reject")
    agent.cli("distribution", "retry", str(errors[0]["id"]))
    agent.cli("distribution", "delete", "--all", "--element", "cs2")
    assert group.events("distribution-retried", "cs2")
    assert group.events("distribution-deleted", "cs2")
    wait_for("cs2's errors cleared", lambda: not group.alarms("distribution-errors", "cs2"))
    assert group.cleared("distribution-errors", "cs2")
    wait_for("the retried update", lambda: ("station", "39001") in cs2.shared(SHARED))
    # The deleted update never reached cs2; its next sync sees the hub's change and sends it.
    group.sync("cs2")

    # --- cs3, upgraded, joins; what differs from the hub is reconciled in bulk
    cs3.admin("POST", "/admin/version", {"software_version": "10.2.1"})
    assert group.start_sharing("cs3").status_code == 200
    assert group.sync("cs3")["state"] == "done"
    # cs3 never shared: no base, so what differs from the hub is a conflict to review.
    assert group.alarms("sync-reconcile-required", "cs3")
    agent.cli("sharing", "resolve", "--all", "--take", "hub")
    assert not group.alarms("sync-reconcile-required")
    assert not group.alarms("sync-required")

    # --- at the end the hub and every element hold the same shared data
    wait_for("distribution to finish", group.settled, within=60)
    hub = group.hub_data()
    assert hub[("user", user)]["name"] == "Hub Name"
    assert ("station", "39001") in hub
    for element in (cs1, cs2, cs3):
        assert element.shared(SHARED) == hub
