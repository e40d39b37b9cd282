"""Each sharing alarm and event of the catalog, raised by behaviour and cleared by the fix.

Hub and elements are real processes (`provsync run`, `provsync simulate --hub`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.http_tls import client_context
from tests.conftest import AgentProcess
from tests.sharing_group import FAST, SHARED, SharingGroup
from tests.waiting import wait_for


def _settings(**sharing: Any) -> dict[str, Any]:
    return {"sharing": {**FAST["sharing"], **sharing}}


@pytest.fixture
def hub(agent_factory: Any) -> AgentProcess:
    agent: AgentProcess = agent_factory(_settings()).start()
    return agent


@pytest.fixture
def group(hub: AgentProcess, tmp_path: Path) -> Iterator[SharingGroup]:
    made = SharingGroup(hub, tmp_path)
    yield made
    made.stop()


def sharing(group: SharingGroup, *names: str) -> None:
    """Elements that started sharing and synced: the group shares."""
    for name in names:
        if name not in group.elements:
            group.add(name)
        assert group.start_sharing(name).status_code == 200
    group.sync(names[0])
    wait_for("sharing", lambda: group.status()["state"] == "sharing" and group.settled())


def cli_json(agent: AgentProcess, *args: str) -> Any:
    return json.loads(agent.cli(*args, "--json").stdout)


def test_sharing_refused_below_the_minimum_version_changes_nothing(group: SharingGroup) -> None:
    group.add("old", version="9.3.0")
    answer = group.start_sharing("old")
    assert answer.status_code == 409
    (event,) = group.events("sharing-refused", "old")
    assert event["severity"] == "minor"
    assert "9.3.0" in event["text"]
    assert "10.0" in event["text"]
    assert not group.events("sharing-started")
    assert not group.alarms("sync-required")
    # Refused, it is not in the sharing group: sharing status does not list it.
    assert group.status()["elements"] == []
    assert group.elements["old"].admin("GET", "/admin/status")["sharing"] is False


def test_start_sharing_raises_sync_required_until_a_sync_completes(group: SharingGroup) -> None:
    group.add("cs1")
    group.add("cs2")
    assert group.start_sharing("cs1").status_code == 200
    (started,) = group.events("sharing-started", "cs1")
    assert started["severity"] == "indeterminate"
    (alarm,) = group.alarms("sync-required")
    assert alarm["resource"] == "cs1"
    assert alarm["severity"] == "minor"
    assert "provsync sharing sync cs1" in alarm["resolution"]
    assert "POST /api/v1/sharing/sync" in alarm["resolution"]
    # The sync of another sharing element clears it too ("from any sharing element").
    assert group.start_sharing("cs2").status_code == 200
    job = group.sync("cs2")
    assert job["state"] == "done"
    assert job["kind"] == "user-sync"
    assert not group.alarms("sync-required")
    assert {a["resource"] for a in group.cleared("sync-required")} == {"cs1", "cs2"}
    assert group.events("user-sync-started", "cs2")
    (completed,) = group.events("user-sync-completed", "cs2")
    assert "completed" in completed["text"]


def test_gating_refuses_hub_changes_and_holds_element_updates(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1", "cs2")
    assert group.start_sharing("cs2").status_code == 200  # again: sync required again
    refused = hub.cli(
        "objects", "delete", "group", group.elements["cs1"].first_key("group"), check=False
    )
    assert refused.returncode == 1
    assert "sync-required is active" in refused.stderr
    # An element's update during sync-required is taken but not shared until it clears.
    user = group.elements["cs1"].first_key("user")
    data = group.hub_data()[("user", user)]
    answer = group.local_change("cs1", "update", "user", user, {**data, "name": "Held Back"})
    assert answer["hub"]["status"] == "accepted"
    time.sleep(1.0)
    assert group.elements["cs2"].shared(SHARED)[("user", user)]["name"] != "Held Back"
    assert group.status()["elements"][1]["pending"] == 1
    group.sync("cs1")
    wait_for(
        "the held update",
        lambda: group.elements["cs2"].shared(SHARED)[("user", user)]["name"] == "Held Back",
    )


def test_conflicts_raise_reconcile_required_until_resolved(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    users = sorted(k for c, k in cs1.shared(SHARED) if c == "user")
    data = {k: v for (c, k), v in cs1.shared(SHARED).items() if c == "user"}
    cs1.reject("*", "", "element offline for maintenance")
    # automatic: the two sides changed different fields of one user
    hub.cli("objects", "set", "user", users[0], "name=Hub Side")
    group.local_change(
        "cs1", "update", "user", users[0], {**data[users[0]], "email": "x@e.org"}, share=False
    )
    # unresolved: the same field, differently
    hub.cli("objects", "set", "user", users[1], "name=Hub Name")
    group.local_change(
        "cs1", "update", "user", users[1], {**data[users[1]], "name": "Elem Name"}, share=False
    )
    # for review: the element renamed a user (new key, same directory number)
    moved = {**data[users[2]], "login": "renamed"}
    group.local_change("cs1", "delete", "user", users[2], None, share=False)
    group.local_change("cs1", "create", "user", "renamed", moved, share=False)
    cs1.admin("DELETE", "/admin/reject")
    counts = group.sync("cs1")["counts"]
    assert (counts["automatic"], counts["unresolved"], counts["review"]) == (1, 1, 1)
    reconcile = cli_json(hub, "sharing", "reconcile")
    assert reconcile["summary"]["unresolved"] == 1
    assert reconcile["summary"]["review"] == 1
    assert reconcile["summary"]["automatic"] == 1
    by_category = {c["category"]: c for c in reconcile["conflicts"]}
    assert by_category["review"]["hub_key"] == users[2]
    assert by_category["review"]["key"] == "renamed"
    assert "same number" in by_category["review"]["reason"]
    (alarm,) = group.alarms("sync-reconcile-required", "cs1")
    assert "provsync sharing reconcile" in alarm["resolution"]
    # The merge was applied both ways at once.
    assert group.hub_data()[("user", users[0])]["email"] == "x@e.org"
    # Only one reconcile at a time: another sync is refused while it runs.
    again = cs1.call("POST", "/admin/sharing/sync")
    assert again.status_code == 409
    assert "reconcile is in progress" in again.json()["error"]
    hub.cli("sharing", "resolve", str(by_category["review"]["id"]), "--take", "element")
    assert group.alarms("sync-reconcile-required", "cs1"), "review items do not clear it"
    hub.cli("sharing", "resolve", str(by_category["unresolved"]["id"]), "--take", "element")
    assert not group.alarms("sync-reconcile-required")
    (completed,) = group.events("reconcile-completed", "cs1")
    assert "cs1" in completed["text"]
    twice = hub.cli(
        "sharing", "resolve", str(by_category["unresolved"]["id"]), "--take", "hub", check=False
    )
    assert twice.returncode == 1
    assert "already resolved" in twice.stderr
    wait_for("settled", group.settled)
    hub_data = group.hub_data()
    assert hub_data[("user", users[1])]["name"] == "Elem Name"
    assert ("user", "renamed") in hub_data
    assert ("user", users[2]) not in hub_data
    assert cs1.shared(SHARED) == hub_data


def test_distribution_errors_minor_then_major_cleared_by_retry(
    agent_factory: Any, tmp_path: Path
) -> None:
    hub = agent_factory(_settings(errors_major_at=3)).start()
    group = SharingGroup(hub, tmp_path)
    try:
        sharing(group, "cs1")
        cs1 = group.elements["cs1"]
        cs1.reject("mailbox", "", "voicemail is full")
        for index in range(3):
            hub.cli("objects", "add", "mailbox", f"mb{index}", "number=2000{index}", "cos:=2")
            expected = "minor" if index < 2 else "major"
            wait_for(
                f"{index + 1} errors",
                lambda i=index, s=expected: (
                    (a := group.alarms("distribution-errors", "cs1"))
                    and a[0]["severity"] == s
                    and f"{i + 1} shared update{'s' if i else ''} to cs1" in a[0]["text"]
                ),
            )
        (alarm,) = group.alarms("distribution-errors", "cs1")
        assert "voicemail is full" in alarm["text"]
        assert "provsync distribution list --element cs1" in alarm["resolution"]
        # Retried while the cause is still there: rejected again, the same alarm stays.
        hub.cli("distribution", "retry", "--all")
        wait_for(
            "rejected again",
            lambda: all(
                d["attempts"] == 2 and d["state"] == "error"
                for d in cli_json(hub, "distribution", "list")
            ),
        )
        assert [a["id"] for a in group.alarms("distribution-errors", "cs1")] == [alarm["id"]]
        cs1.admin("DELETE", "/admin/reject")
        hub.cli("distribution", "retry", "--all")
        retried = group.events("distribution-retried", "cs1")
        assert "3 failed distributions" in retried[-1]["text"]
        wait_for("cleared", lambda: not group.alarms("distribution-errors"))
        assert group.cleared("distribution-errors", "cs1")
        assert {k for c, k in cs1.shared(SHARED) if c == "mailbox"} >= {"mb0", "mb1", "mb2"}
    finally:
        group.stop()


def test_distribution_delete_clears_and_transport_failures_retry(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    cs1.reject("station", "", "no free port")
    hub.cli("objects", "add", "station", "39500", "number=39500", "type=9611")
    wait_for("error", lambda: group.alarms("distribution-errors", "cs1"))
    (failed,) = cli_json(hub, "distribution", "list", "--state", "error")
    assert (failed["class"], failed["key"], failed["op"]) == ("station", "39500", "create")
    assert failed["error"] == "no free port"
    hub.cli("distribution", "delete", str(failed["id"]))
    assert group.events("distribution-deleted", "cs1")
    wait_for("cleared", lambda: not group.alarms("distribution-errors"))
    assert not cli_json(hub, "distribution", "list")
    # The element down: updates wait and go out when it is back; no error, nothing lost.
    cs1.admin("DELETE", "/admin/reject")
    cs1.admin("POST", "/admin/faults", {"down": True})
    hub.cli("objects", "add", "station", "39501", "number=39501", "type=9611")
    waiting = wait_for(
        "retries",
        lambda: (d := cli_json(hub, "distribution", "list")) and d[0]["attempts"] >= 2 and d,
    )
    assert waiting[0]["state"] in ("pending", "inflight")
    assert not group.alarms("distribution-errors")
    (unreachable,) = wait_for("unreachable", lambda: group.alarms("element-unreachable", "cs1"))
    assert "distribution to cs1 failed 3 times" in unreachable["text"]
    cs1.admin("POST", "/admin/faults", {"down": False})
    wait_for("delivered", lambda: ("station", "39501") in cs1.shared(SHARED))
    wait_for("reachable", lambda: not group.alarms("element-unreachable"))


def test_distribution_cap_refuses_hub_changes(agent_factory: Any, tmp_path: Path) -> None:
    hub = agent_factory(_settings(distribution_cap=2)).start()
    group = SharingGroup(hub, tmp_path)
    try:
        sharing(group, "cs1")
        group.elements["cs1"].reject("*", "", "read-only")
        hub.cli("objects", "add", "group", "g1", "name=one")
        hub.cli("objects", "add", "group", "g2", "name=two")
        refused = hub.cli("objects", "add", "group", "g3", "name=three", check=False)
        assert refused.returncode == 1
        assert "the cap is 2" in refused.stderr
        assert "g3" not in {o["key"] for o in cli_json(hub, "objects", "list", "group")}
    finally:
        group.stop()


def test_update_rejected_for_validation_and_pending_hub_change(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1", "cs2")
    cs1 = group.elements["cs1"]
    users = {k: v for (c, k), v in cs1.shared(SHARED).items() if c == "user"}
    first, second = sorted(users)[:2]
    # validation: a second user with the same directory number
    answer = group.local_change(
        "cs1", "create", "user", "dup", {"login": "dup", "number": users[first]["number"]}
    )
    assert answer["hub"]["status"] == "rejected"
    assert f"already belongs to user {first}" in answer["hub"]["reason"]
    # conflict with a pending hub change: the hub's update waits for cs1 (which rejects it)
    cs1.reject("user", second, "busy")
    hub.cli("objects", "set", "user", second, "name=From Hub")
    wait_for("error", lambda: group.alarms("distribution-errors", "cs1"))
    cs1.admin("DELETE", "/admin/reject")
    answer = group.local_change("cs1", "update", "user", second, {**users[second], "name": "Mine"})
    assert answer["hub"]["status"] == "rejected"
    assert "pending hub change" in answer["hub"]["reason"]
    texts = [e["text"] for e in group.events("update-rejected", "cs1")]
    assert any("user dup" in t and "already belongs" in t for t in texts)
    assert any(f"user {second}" in t and "pending hub change" in t for t in texts)
    (event,) = [e for e in group.events("update-rejected", "cs1") if "dup" in e["text"]]
    assert event["severity"] == "minor"
    assert group.hub_data()[("user", second)]["name"] == "From Hub"


def test_device_data_registration_notifications_and_sync(group: SharingGroup) -> None:
    hub = group.agent
    group.add("cs2")  # never shares: the hub is not registered with it
    sharing(group, "cs1")
    (event,) = wait_for("registration", lambda: group.events("device-data-notification"))
    assert event["details"]["elements"] == ["cs1"]
    assert "cs1" in event["text"]
    assert group.elements["cs1"].admin("GET", "/admin/status")["device_data"] is True
    hub.cli("objects", "add", "directory-number", "39900", "number=39900")
    devices = {d["number"]: d for d in cli_json(hub, "sharing", "devices")}
    station = group.elements["cs1"].first_key("station")
    assert devices[station]["full"] is True
    assert devices[station]["element"] == "cs1"
    assert devices["39900"] == {"number": "39900", "full": False}
    # A phone changed on cs1: cs1 notifies the hub.
    data = group.elements["cs1"].shared(SHARED)[("station", station)]
    group.local_change("cs1", "update", "station", station, {**data, "type": "J189"})
    wait_for(
        "notification",
        lambda: (
            {d["number"]: d for d in cli_json(hub, "sharing", "devices")}[station]["details"][
                "type"
            ]
            == "J189"
        ),
    )
    # A device-data sync reads the phones of the sharing group (cs2 is not in it).
    hub.cli("sharing", "device-sync")
    (done,) = wait_for("device sync", lambda: group.events("device-data-sync-completed"))
    assert group.events("device-data-sync-started")
    assert set(done["details"]) == {"cs1"}
    assert done["details"]["cs1"] > 0


def test_messaging_element_needs_activation_after_updates(group: SharingGroup) -> None:
    hub = group.agent
    group.add("cs1")
    group.add("cs2")
    group.add("vm1", element_type="messaging", uses=["cs1", "cs2"])
    assert not group.alarms("element-updated-activation-required")
    password = group.root / "new-password"
    # The credentials it has, saved again: nothing changed, no activation (issue 14).
    password.write_text("s3cret-pass\n")
    hub.cli(
        "elements",
        "set-credentials",
        "cs1",
        "--username",
        "admin",
        "--password-file",
        str(password),
    )
    assert not group.alarms("element-updated-activation-required")
    password.write_text("another-pass\n")
    hub.cli(
        "elements",
        "set-credentials",
        "cs1",
        "--username",
        "admin",
        "--password-file",
        str(password),
    )
    assert group.alarms("auth-failed-incorrect", "cs1")  # tested at once: refused
    password.write_text("s3cret-pass\n")  # and back: a change again
    hub.cli(
        "elements",
        "set-credentials",
        "cs1",
        "--username",
        "admin",
        "--password-file",
        str(password),
    )
    assert not group.alarms("auth-failed-incorrect", "cs1")
    hub.cli("elements", "remove", "cs2")
    alarms = group.alarms("element-updated-activation-required", "vm1")
    assert {a["qualifier"] for a in alarms} == {"cs1", "cs2"}
    assert any("removed" in a["text"] for a in alarms)
    assert all("provsync elements activate vm1" in a["resolution"] for a in alarms)
    refused = hub.cli("elements", "activate", "cs1", check=False)
    assert refused.returncode == 1
    assert "only messaging elements" in refused.stderr
    hub.cli("elements", "activate", "vm1")
    assert not group.alarms("element-updated-activation-required")
    assert len(group.cleared("element-updated-activation-required", "vm1")) == 2
    (programming,) = group.elements["vm1"].admin("GET", "/admin/status")["activations"]
    assert [e["name"] for e in programming] == ["cs1"]
    # An upgrade seen by an initialization sync is an update too.
    group.elements["cs1"].admin("POST", "/admin/version", {"software_version": "10.3.0"})
    with hub.http() as http:
        job = http.post("/api/v1/elements/cs1/sync", json={"kind": "init"}).json()["job"]
    assert hub.wait_job(job, within=30)["state"] == "done"
    (alarm,) = group.alarms("element-updated-activation-required", "vm1")
    assert "upgraded from 10.2.1 to 10.3.0" in alarm["text"]


def _backup(agent: AgentProcess, target: Path) -> None:
    with sqlite3.connect(agent.data_dir / "provsync.db") as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()


def test_ftp_inactive_after_a_restore_cleared_by_start_sharing(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    backup = group.root / "backup.db"
    _backup(hub, backup)
    seq = cli_json(hub, "alarms", "test")["seq"]  # the store moves on after the backup...
    assert hub.stop() == 0  # ...and the agent records where it is when it stops
    identity = json.loads((hub.data_dir / "store-identity.json").read_text())
    assert identity["last_seq"] >= seq
    shutil.copy(backup, hub.data_dir / "provsync.db")
    hub.start()
    (alarm,) = group.alarms("ftp-inactive")
    assert "restored from a backup" in alarm["text"]
    assert "provsync sharing start cs1" in alarm["resolution"]
    status = cli_json(hub, "sharing", "status")
    assert status["ftp_inactive"] is True
    assert status["state"] == "notSharing"
    refused = group.local_change(
        "cs1", "update", "user", group.elements["cs1"].first_key("user"), {"login": "x"}
    )
    assert refused["hub"]["status"] == "rejected"
    assert group.start_sharing("cs1").status_code == 200
    assert group.alarms("ftp-inactive"), "sharing is back only once a sync completed"
    group.sync("cs1")
    assert not group.alarms("ftp-inactive")
    assert group.cleared("ftp-inactive")


def test_ftp_inactive_after_an_upgrade_cleared_after_reconcile(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    assert hub.stop() == 0
    with sqlite3.connect(hub.data_dir / "provsync.db") as conn:
        conn.execute("UPDATE meta SET value='0.0.1' WHERE key='sharing_release'")
    conn.close()
    hub.start()
    (alarm,) = group.alarms("ftp-inactive")
    assert "upgraded from 0.0.1" in alarm["text"]
    assert not group.alarms("sync-required")
    # While sharing is off, the hub and the element each change the same user.
    cs1 = group.elements["cs1"]
    user = cs1.first_key("user")
    data = group.hub_data()[("user", user)]
    hub.cli("objects", "set", "user", user, "name=Hub While Off")
    group.local_change("cs1", "update", "user", user, {**data, "name": "Element While Off"})
    assert group.start_sharing("cs1").status_code == 200
    assert group.sync("cs1")["counts"]["unresolved"] == 1
    assert group.alarms("ftp-inactive"), "conflicts exist: it waits for the reconcile"
    hub.cli("sharing", "resolve", "--all", "--take", "element")
    assert not group.alarms("ftp-inactive")
    assert group.cleared("ftp-inactive")
    # Restarting the same release keeps sharing on.
    assert hub.stop() == 0
    hub.start()
    assert not group.alarms("ftp-inactive")
    assert cli_json(hub, "sharing", "status")["elements"][0]["sharing"] != "notSharing"


def test_element_routes_need_the_token(group: SharingGroup) -> None:
    group.add("cs1")
    answer = httpx.post(
        f"{group.agent.url}/api/v1/sharing/start",
        json={"element": "cs1", "software_version": "10.2.1"},
        verify=client_context(),
    )
    assert answer.status_code == 401
    assert not group.events("sharing-started")
    with group.agent.http() as http:
        unknown = http.post(
            "/api/v1/sharing/start", json={"element": "nope", "software_version": "10.2.1"}
        )
        bad = http.post("/api/v1/sharing/start", json={"element": "cs1", "software_version": "ten"})
    assert unknown.status_code == 404
    assert bad.status_code == 400
    assert "not a software version" in bad.json()["error"]


def _element_table(agent: AgentProcess) -> dict[str, dict[str, str]]:
    from tests.netsnmp import run

    table = run(
        "snmptable",
        "-v2c",
        "-c",
        "public",
        "-OU",
        "-Cf",
        "|",
        f"127.0.0.1:{agent.snmp_port}",
        "PROVSYNC-MIB::provsyncElementTable",
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split("|") for line in table.stdout.splitlines() if line.count("|") >= 5]
    header, data = rows[0], rows[1:]
    return {
        row[header.index("provsyncElementName")]: dict(zip(header, row, strict=True))
        for row in data
    }


def test_snmp_element_table_shows_sharing_state_and_errors(group: SharingGroup) -> None:
    hub = group.agent
    group.add("cs1")
    group.add("cs2")
    assert group.start_sharing("cs1").status_code == 200
    rows = wait_for(
        "syncRequired",
        lambda: (
            (t := _element_table(hub))["cs1"]["provsyncElementSharingState"] == "syncRequired" and t
        ),
    )
    assert rows["cs2"]["provsyncElementSharingState"] == "notSharing"
    group.sync("cs1")
    group.elements["cs1"].reject("*", "", "no")
    hub.cli("objects", "add", "group", "g9", "name=nine")
    rows = wait_for(
        "errors",
        lambda: (t := _element_table(hub))["cs1"]["provsyncElementDistributionErrors"] == "1" and t,
    )
    assert rows["cs1"]["provsyncElementSharingState"] == "sharing"


def test_distributions_survive_a_crash(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    cs1.admin("POST", "/admin/faults", {"down": True})
    with hub.http() as http:
        changes = [
            {"class": "group", "key": f"crash{i}", "op": "create", "data": {"n": i}}
            for i in range(50)
        ]
        assert http.post("/api/v1/objects", json={"changes": changes}).status_code == 200
    hub.kill()
    hub.start()
    assert group.status()["elements"][0]["pending"] == 50
    cs1.admin("POST", "/admin/faults", {"down": False})
    wait_for("all delivered", group.settled)
    assert {k for c, k in cs1.shared(SHARED) if c == "group"} >= {f"crash{i}" for i in range(50)}
    assert group.hub_data() == cs1.shared(SHARED)


def test_element_refusing_an_update_outright_is_a_distribution_error(
    agent_factory: Any, tmp_path: Path
) -> None:
    classes = ["user", "station", "directory-number", "group", "mailbox", "speed-dial"]
    hub = agent_factory(_settings(classes=classes)).start()
    group = SharingGroup(hub, tmp_path)
    try:
        sharing(group, "cs1")
        hub.cli("objects", "add", "speed-dial", "sd1", "number=911")
        (failed,) = wait_for(
            "error", lambda: cli_json(hub, "distribution", "list", "--state", "error")
        )
        assert "422" in failed["error"]
        assert "speed-dial" in failed["error"]
        assert group.alarms("distribution-errors", "cs1")
    finally:
        group.stop()


def test_a_sync_never_gives_two_users_one_number(group: SharingGroup) -> None:
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    users = {k: v for (c, k), v in cs1.shared(SHARED).items() if c == "user"}
    taken = users[sorted(users)[0]]["number"]
    group.local_change(
        "cs1", "create", "user", "twin", {"login": "twin", "number": taken}, share=False
    )
    counts = group.sync("cs1")["counts"]
    assert counts["unresolved"] == 1
    (conflict,) = cli_json(group.agent, "sharing", "reconcile")["conflicts"]
    assert conflict["key"] == "twin"
    assert "already belongs" in conflict["reason"]
    assert ("user", "twin") not in group.hub_data()
    refused = group.agent.cli(
        "sharing", "resolve", str(conflict["id"]), "--take", "element", check=False
    )
    assert refused.returncode == 1
    assert "already belongs" in refused.stderr
    group.agent.cli("sharing", "resolve", str(conflict["id"]), "--take", "hub")
    wait_for("twin removed", lambda: ("user", "twin") not in cs1.shared(SHARED))


def test_a_retried_rejection_still_counts_across_a_restart(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    cs1.reject("group", "", "groups are frozen")
    hub.cli("objects", "add", "group", "g77", "name=seventy-seven")
    (alarm,) = wait_for("error", lambda: group.alarms("distribution-errors", "cs1"))
    cs1.admin("POST", "/admin/faults", {"down": True})
    hub.cli("distribution", "retry", "--all")  # waits for the element, still not applied
    assert hub.stop() == 0
    hub.start()
    assert [a["id"] for a in group.alarms("distribution-errors", "cs1")] == [alarm["id"]]
    assert cli_json(hub, "sharing", "status")["elements"][0]["errors"] == 1
    assert "Traceback" not in hub.log_text()
    cs1.admin("DELETE", "/admin/reject")
    cs1.admin("POST", "/admin/faults", {"down": False})
    wait_for("applied", lambda: not group.alarms("distribution-errors"))
    assert ("group", "g77") in cs1.shared(SHARED)


def test_updates_stay_in_order_through_failed_sends(agent_factory: Any, tmp_path: Path) -> None:
    hub = agent_factory(_settings(batch_size=1)).start()
    group = SharingGroup(hub, tmp_path)
    try:
        sharing(group, "cs1")
        cs1 = group.elements["cs1"]
        station = cs1.first_key("station")
        cs1.admin("POST", "/admin/faults", {"fail_every": 2})  # every second request: a 500
        changes = [
            {"class": "station", "key": station, "op": "update", "data": {"v": v}}
            for v in range(1, 7)
        ]
        with hub.http() as http:
            assert http.post("/api/v1/objects", json={"changes": changes}).status_code == 200
        wait_for("settled", group.settled)
        assert cs1.admin("GET", "/admin/objects/station")[station]["v"] == 6
        assert group.hub_data()[("station", station)]["v"] == 6
    finally:
        group.stop()


def test_elements_token_opens_element_routes_only(group: SharingGroup) -> None:
    hub = group.agent
    group.add("cs1")
    element_token = (hub.data_dir / "element.token").read_text().strip()
    assert element_token
    assert (hub.data_dir / "element.token").stat().st_mode & 0o077 == 0
    headers = {"Authorization": f"Bearer {element_token}"}
    with httpx.Client(base_url=hub.url, headers=headers, verify=client_context()) as http:
        started = http.post(
            "/api/v1/sharing/start", json={"element": "cs1", "software_version": "10.2.1"}
        )
        assert started.status_code == 200
        for method, path in (
            ("GET", "/api/v1/alarms"),
            ("GET", "/api/v1/distributions"),
            ("POST", "/api/v1/sharing/conflicts/resolve"),
            ("DELETE", "/api/v1/elements/cs1"),
        ):
            assert http.request(method, path, json={"take": "hub"}).status_code == 401, path
    assert group.status()["elements"][0]["sharing"] == "syncRequired"


def test_operator_starts_sharing_from_the_hub_and_keys_may_hold_slashes(
    group: SharingGroup,
) -> None:
    hub = group.agent
    group.add("cs1")
    hub.cli("sharing", "start", "cs1")
    (started,) = group.events("sharing-started", "cs1")
    assert started["details"]["software_version"] == "10.2.1"
    group.sync("cs1")
    hub.cli("objects", "add", "group", "sales/emea", "name=Sales EMEA")
    hub.cli("objects", "set", "group", "sales/emea", "name=Sales Europe")
    shown = json.loads(hub.cli("objects", "show", "group", "sales/emea").stdout)
    assert shown["data"] == {"name": "Sales Europe"}
    wait_for(
        "on cs1",
        lambda: (
            group.elements["cs1"].shared(SHARED).get(("group", "sales/emea"))
            == {"name": "Sales Europe"}
        ),
    )
    listed = cli_json(hub, "objects", "list", "group")
    assert "sales/emea" in {o["key"] for o in listed}
    assert len(listed) == len([k for c, k in group.hub_data() if c == "group"])


def test_a_reinstalled_element_gets_the_hub_data_back(group: SharingGroup) -> None:
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    before = group.hub_data()
    cs1.admin("POST", "/admin/wipe")  # no data at all, a new epoch: as a reinstalled element
    job = group.sync("cs1")
    assert job["state"] == "done"
    assert job["counts"]["to_hub"] == 0, "what the element lacks was not deleted there"
    assert group.hub_data() == before
    wait_for("restored", lambda: group.settled() and cs1.shared(SHARED) == before)
