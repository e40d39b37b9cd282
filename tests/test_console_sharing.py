"""The console's sharing pages (/ui/sharing, /ui/reconcile, /ui/distribution-errors,
/ui/activation): over HTTP from a running hub with simulated elements, and resolved from
the Event Viewer's resolution links in Debian's headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.api.app import create_app
from agent.api.console.common import templates
from agent.api.console.element_pages import when
from agent.api.console.sharing_pages import CONFLICTS_SHOWN, _wizard_order, conflict_view, stamp
from agent.api.services import Services
from agent.cli.api_types import PlannedChange, PlannedDecision
from agent.http_tls import client_context
from agent.sharing.reconcile import Planned
from agent.store.conflicts import Conflict
from agent.store.database import Store
from agent.store.distributions import Distribution
from tests.conftest import TOKEN, AgentProcess
from tests.console_pages import (
    click,
    csrf_of,
    logged_in,
    open_console,
    screenshot,
    text_of,
    until,
)
from tests.sharing_group import FAST, SHARED, SharingGroup
from tests.waiting import wait_for

TIME = re.compile(r'<time datetime="\d{4}-[^"]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>')
IDS = re.compile(r'name="ids" value="(\d+)"')
PAGES = ("/ui/sharing", "/ui/reconcile", "/ui/distribution-errors", "/ui/activation")
ACTION_FORM = re.compile(r'<form method="post"(?! action="/ui/logout")')


@pytest.fixture
def group(agent_factory: Any, tmp_path: Path) -> Iterator[SharingGroup]:
    made = SharingGroup(agent_factory(FAST).start(), tmp_path)
    yield made
    made.stop()


def sharing(group: SharingGroup, name: str) -> None:
    """``name`` added, sharing and synced: the group shares."""
    group.add(name)
    assert group.start_sharing(name).status_code == 200
    group.sync(name)
    wait_for("sharing", lambda: group.status()["state"] == "sharing" and group.settled())


def name_conflict(
    group: SharingGroup,
    name: str,
    hub_name: str = "Hub Name",
    elem_name: str = "Elem Name",
    unresolved: int = 1,
) -> str:
    """A user renamed on the hub and on ``name`` differently while ``name`` rejected the
    hub's update; its sync finds the conflict (tests/test_sharing_alarms.py's set-up).
    Returns the user's key."""
    element = group.elements[name]
    user = element.first_key("user")
    data = element.shared(SHARED)[("user", user)]
    element.reject("*", "", "element offline for maintenance")
    group.agent.cli("objects", "set", "user", user, f"name={hub_name}")
    wait_for("rejected", lambda: group.alarms("distribution-errors", name))
    group.local_change(name, "update", "user", user, {**data, "name": elem_name}, share=False)
    element.admin("DELETE", "/admin/reject")
    assert group.sync(name)["counts"]["unresolved"] == unresolved
    assert group.alarms("sync-reconcile-required", name)
    return user


def activation_required(group: SharingGroup, messaging: str, used: str) -> None:
    """``messaging`` programmed with ``used``, whose address then moves (the same
    simulator under another spelling, so it stays reachable)."""
    group.add(messaging, element_type="messaging", uses=[used])
    moved = group.elements[used].url.replace("127.0.0.1", "localhost")
    group.agent.cli("elements", "set-address", used, moved)
    assert group.alarms("element-updated-activation-required", messaging)


# ------------------------------------------------------------------ in-process
def test_the_pages_say_so_when_sharing_is_not_running(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    manager = AlarmManager(store.engine, Catalog())
    manager.start()
    services = Services(
        manager=manager,
        token=TOKEN,
        started_at=datetime.now(UTC),
        store_url="sqlite://",
        store_id="test",
    )
    app = create_app(services)

    async def pages() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://agent", verify=client_context()
        ) as browser:
            code = app.state.console_sessions.new_code()
            assert (await browser.get(f"/ui/login?code={code}")).status_code == 200
            # The code is used when Log in is pressed (tests.console_pages.log_in).
            assert (await browser.post("/ui/login", data={"code": code})).status_code == 303
            shown = [await browser.get(page) for page in PAGES]
            shown.append(await browser.get("/ui/fragments/reconcile"))
            csrf = csrf_of(shown[0].text)
            for path, data in POSTS:
                shown.append(await browser.post(path, data={"csrf": csrf, **data}))
            return shown

    try:
        answers = asyncio.run(pages())
    finally:
        manager.stop()
        store.close()
    pages_and_posts = answers[:4] + answers[5:]
    assert len(pages_and_posts) == 4 + len(POSTS)
    for answer in pages_and_posts:
        # Every page and every action: the one page, 503 (as the API's sharing routes).
        assert answer.status_code == 503, answer.request.url
        assert answer.headers["content-type"].startswith("text/html")
        assert "<h1>Sharing is not running</h1>" in answer.text, answer.request.url
    assert answers[4].status_code == 503
    assert 'id="sharing-off"' in answers[4].text
    assert "<html" not in answers[4].text


POSTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/ui/activation/vm1", {}),
    ("/ui/sharing/cs1/start", {}),
    ("/ui/reconcile/preview", {"take": "hub"}),
    ("/ui/reconcile/resolve", {"take": "hub", "conflict": "1"}),
    ("/ui/distribution-errors/retry", {"distribution": "1"}),
    ("/ui/distribution-errors/delete/confirm", {"distribution": "1"}),
    ("/ui/distribution-errors/delete", {"distribution": "1"}),
)
"""Each action of the sharing pages, with what its form sends."""


def _conflict(n: int, category: str) -> Conflict:
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    hub, element = {"name": "Hub"}, {"name": "Elem"}
    return Conflict(
        n, 1, "cs1", "user", f"u{n}", f"u{n}", category, hub, element, hub,
        "both changed", "open", None, None, at, None,
    )  # fmt: skip


def test_the_wizard_shows_the_first_conflicts_with_times_to_the_second() -> None:
    # 10,000 open conflicts would all be rendered on every change in every tab.
    rows = [_conflict(n, "automatic" if n % 2 else "unresolved") for n in range(1, 151)]
    chosen = _wizard_order(rows)
    assert len(chosen) == CONFLICTS_SHOWN == 100
    assert [c.category for c in chosen[:75]] == ["unresolved"] * 75, "the wizard's order"
    assert _wizard_order(rows, "nope") == []
    views = [conflict_view(c, c.hub_data) for c in chosen]
    html = templates.get_template("reconcile_tables.html").render(
        csrf="t", read_only=False, running=False, total=150, more=50,
        summary={"unresolved": 75, "review": 0, "automatic": 75, "resolved": 0},
        groups=[("unresolved", "Unresolved", views)], by_element=["cs1"],
        stamp=stamp, when=when,
    )  # fmt: skip
    assert html.count('<article class="conflict"') == 100
    assert "50 more: resolve these first or in bulk" in html
    # As the other pages: to the second, UTC, the exact time in datetime.
    assert '<time datetime="2026-01-02T03:04:05.678000Z">2026-01-02 03:04:05 UTC</time>' in html


def _failed(n: int) -> Distribution:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return Distribution(
        n, 1, "cs1", "user", f"u{n}", "update", {"name": "Hub"}, "hub", "error", 3, True,
        "locked", at, at, at,
    )  # fmt: skip


def _delete_confirmation(**context: Any) -> str:
    html: str = templates.get_template("distribution_confirm.html").render(
        csrf="t", read_only=False, element="", back="", shown=str, stamp=stamp, when=when,
        **context,
    )  # fmt: skip
    return html


def test_the_delete_confirmation_says_the_first_of_many_only_for_a_bulk_delete() -> None:
    # One failed update of five deleted from its row: that row, not "the first 1 of 5".
    one = _delete_confirmation(rows=[_failed(3)], total=5, distribution=3)
    count = re.search(r'<p id="to-delete-count">(.*?)</p>', one)
    assert count, one
    assert count.group(1) == "1 failed update will be deleted:"
    assert 'name="distribution" value="3"' in one
    # The bulk form listing the first of more than it shows: it says so.
    bulk = _delete_confirmation(rows=[_failed(1), _failed(2)], total=5, distribution=None)
    assert "The first 2 of 5 failed updates are listed: these 2 will be deleted" in bulk
    assert IDS.findall(bulk) == ["1", "2"]


def _resolve_confirmation(planned: list[Planned]) -> str:
    refused = next((p for p in planned if p.refused), None)
    html: str = templates.get_template("reconcile_confirm.html").render(
        csrf="t", read_only=False, take="element", take_label="take the element's value",
        conflict=None, element="", more=0, unreached=0, refused=refused,
        ids=[p.conflict.id for p in planned],
        items=[(conflict_view(p.conflict, p.hub_value), "what it does") for p in planned],
    )  # fmt: skip
    return html


def test_no_confirm_when_the_first_decision_is_refused() -> None:
    first, second = _conflict(1, "unresolved"), _conflict(2, "unresolved")

    def planned(row: Conflict, refused: str = "") -> Planned:
        return Planned(row, "element", row.hub_data, [], "hub", None, [], [], [], refused)

    # Refused at the first decision: nothing would be resolved, nothing to confirm.
    nothing = _resolve_confirmation([planned(first, "number 29001 already belongs to u7")])
    assert 'id="confirm"' not in nothing
    assert 'action="/ui/reconcile/resolve"' not in nothing
    assert "Nothing would be resolved" in nothing
    said = re.search(r'<p id="nothing-to-confirm"[^>]*>(.*?)</p>', nothing)
    assert said, nothing
    assert "the first decision is refused" in said.group(1)
    # Refused at the second: the first would be resolved, so it may be confirmed.
    partly = _resolve_confirmation([planned(first), planned(second, "already belongs")])
    assert 'id="confirm"' in partly
    assert "The 1 before it would be resolved" in partly
    assert 'id="nothing-to-confirm"' not in partly


# ------------------------------------------------------------------ over HTTP
def test_the_pages_show_the_group_and_refuse_forged_and_read_only_actions(
    group: SharingGroup,
) -> None:
    hub = group.agent
    sharing(group, "cs1")
    group.add("old", version="9.3.0")
    user = name_conflict(group, "cs1")
    activation_required(group, "vm1", "cs1")
    with logged_in(hub) as browser:
        shown = {page: browser.get(page) for page in PAGES}
        for page, answer in shown.items():
            assert answer.status_code == 200, page
            assert ACTION_FORM.search(answer.text), f"{page} offers its actions"
        page = shown["/ui/sharing"].text
        assert "reconcileRequired" in page
        assert 'data-element="old"' in page, "an element out of the group can be started"
        # Offered only out of the group: again on cs1, it would ask it for a sync again.
        assert 'action="/ui/sharing/old/start"' in page
        assert 'action="/ui/sharing/cs1/start"' not in page
        assert "1 unresolved" in page
        for live in (
            "/ui/fragments/sharing",
            "/ui/fragments/reconcile",
            "/ui/fragments/distribution-errors?element=cs1",
            "/ui/fragments/activation",
        ):
            region = browser.get(live)
            assert region.status_code == 200, live
            assert "<html" not in region.text, f"{live}: the region only"
        assert "element offline" in browser.get("/ui/distribution-errors?element=cs1").text
        assert browser.get("/ui/distribution-errors?element=nope").status_code == 404
        wizard = shown["/ui/reconcile"].text
        assert "Elem Name" in wizard
        assert "Hub Name" in wizard
        assert 'class="differs"' in wizard
        assert TIME.search(wizard), "found: to the second, UTC, as the other pages"
        assert TIME.search(shown["/ui/distribution-errors"].text)
        assert TIME.search(shown["/ui/activation"].text)
        assert "element offline for maintenance" in shown["/ui/distribution-errors"].text
        assert "was given the address" in shown["/ui/activation"].text
        (conflict,) = group.get("/sharing/conflicts")["conflicts"]
        csrf = csrf_of(page)
        # What taking the element's value will do, shown before it is done.
        preview = browser.post(
            "/ui/reconcile/preview",
            data={"csrf": csrf, "conflict": conflict["id"], "take": "element"},
        )
        assert preview.status_code == 200
        assert f"sets user {user} on the hub: name from Hub Name to Elem Name" in preview.text
        assert 'action="/ui/reconcile/resolve"' in preview.text
        hub_preview = browser.post(
            "/ui/reconcile/preview", data={"csrf": csrf, "element": "cs1", "take": "hub"}
        )
        assert "name from Elem Name to Hub Name; it is sent to cs1" in hub_preview.text
        # The hub's update cs1 rejected is replaced by the decision: the plan says so.
        assert f"It cancels what waits for cs1: update user {user} (failed)" in hub_preview.text
        (failed,) = group.get("/distributions", state="error")
        confirm = browser.post(
            "/ui/distribution-errors/delete/confirm",
            data={"csrf": csrf, "distribution": failed["id"]},
        )
        assert "make sure the data entry is not valid or required" in confirm.text
        # Forms without their token: refused, nothing done.
        for path, data in (
            ("/ui/reconcile/resolve", {"conflict": conflict["id"], "take": "element"}),
            ("/ui/distribution-errors/delete", {"distribution": failed["id"]}),
            ("/ui/distribution-errors/retry", {}),
            ("/ui/activation/vm1", {}),
            ("/ui/sharing/old/start", {}),
        ):
            assert browser.post(path, data={"csrf": "forged", **data}).status_code == 403, path
        # A bulk decision is on the conflicts its confirmation showed, never "all".
        unseen = browser.post(
            "/ui/reconcile/resolve", data={"csrf": csrf, "element": "cs1", "take": "skip"}
        )
        assert unseen.status_code == 400
        assert "confirm a bulk decision from its preview" in unseen.text
        # A refused start: the page again, with the red banner saying why.
        refused = browser.post("/ui/sharing/old/start", data={"csrf": csrf})
        assert refused.status_code == 409
        assert re.search(r'class="banner"[^>]*>[^<]*old runs 9\.3\.0', refused.text)
    assert group.get("/sharing/conflicts")["conflicts"][0]["state"] == "open"
    assert [d["id"] for d in group.get("/distributions", state="error")] == [failed["id"]]
    assert group.alarms("element-updated-activation-required", "vm1")
    assert len(group.events("sharing-refused", "old")) == 1, "only the one with its token"
    with logged_in(hub, "--read-only") as viewer:
        for page in PAGES:
            answer = viewer.get(page)
            assert answer.status_code == 200
            assert not ACTION_FORM.search(answer.text), f"{page}: no action for a viewer"
        csrf = csrf_of(viewer.get("/ui/sharing").text)
        for path, data in (
            ("/ui/reconcile/preview", {"conflict": conflict["id"], "take": "hub"}),
            ("/ui/reconcile/resolve", {"conflict": conflict["id"], "take": "hub"}),
            ("/ui/distribution-errors/retry", {"element": "cs1"}),
            ("/ui/activation/vm1", {}),
        ):
            answer = viewer.post(path, data={"csrf": csrf, **data})
            assert answer.status_code == 403, path
            assert "read-only" in answer.text
    assert group.get("/sharing/conflicts")["conflicts"][0]["state"] == "open"
    assert group.alarms("element-updated-activation-required", "vm1")
    assert group.get("/distributions", state="error")


def _set_hub_name(group: SharingGroup, key: str, name: str) -> None:
    """The hub's user ``key`` renamed behind the agent's back: hub changes are refused
    while reconcile is required, and the hub's value a decision sends is the one now."""
    with sqlite3.connect(group.agent.data_dir / "provsync.db", timeout=30) as conn:
        (text,) = conn.execute(
            "SELECT data FROM shared_objects WHERE cls='user' AND key=?", (key,)
        ).fetchone()
        data = {**json.loads(text), "name": name}
        conn.execute(
            "UPDATE shared_objects SET data=? WHERE cls='user' AND key=?",
            (json.dumps(data, sort_keys=True), key),
        )
    conn.close()


def test_the_preview_is_the_services_plan_with_the_hub_value_now(group: SharingGroup) -> None:
    sharing(group, "cs1")
    user = name_conflict(group, "cs1")
    (conflict,) = group.get("/sharing/conflicts")["conflicts"]
    (failed,) = group.get("/distributions", state="error")
    _set_hub_name(group, user, "Newer Name")
    with group.agent.http() as api:
        one = api.post(f"/api/v1/sharing/conflicts/{conflict['id']}/plan", json={"take": "hub"})
        bulk = api.post(
            "/api/v1/sharing/conflicts/plan",
            json={"take": "element", "element": "cs1", "ids": [conflict["id"]], "by": "x"},
        )
        none = api.post("/api/v1/sharing/conflicts/plan", json={"take": "skip", "ids": [999]})
        # One conflict's routes refuse what chooses conflicts (they ignored it).
        single = [
            api.post(f"/api/v1/sharing/conflicts/{conflict['id']}/{action}", json=body)
            for action in ("plan", "resolve")
            for body in (
                {"take": "skip", "ids": [conflict["id"]]},
                {"take": "skip", "element": "cs1", "by": "x"},
            )
        ]
    assert one.status_code == 200, one.text
    (planned,) = one.json()["plan"]
    assert planned["hub_now"]["name"] == "Newer Name", "not the value the sync saw"
    assert planned["conflict"]["hub"]["name"] == "Hub Name"
    assert planned["written_to"] == "element"
    assert [(c["op"], c["data"]["name"]) for c in planned["changes"]] == [("update", "Newer Name")]
    assert planned["sent_to"] == ["cs1"]
    assert [d["id"] for d in planned["cancelled"]] == [failed["id"]]
    assert planned["refused"] is None
    # What the CLI's types say of a plan is what the API answers.
    assert set(planned) == set(PlannedDecision.__annotations__)
    assert set(planned["changes"][0]) == set(PlannedChange.__annotations__)
    assert bulk.status_code == 200, bulk.text
    (element_plan,) = bulk.json()["plan"]
    assert element_plan["written_to"] == "hub"
    assert element_plan["sent_to"] == [], "no other element shares"
    assert [d["id"] for d in element_plan["cancelled"]] == [failed["id"]]
    assert none.status_code == 400
    for answer in single:
        assert answer.status_code == 422, answer.text
        assert "only the bulk routes" in answer.json()["error"]
        assert answer.json()["error"].startswith(("ids: ", "element: "))
    # The same plan from the CLI.
    said = group.agent.cli(
        "sharing", "resolve", str(conflict["id"]), "--take", "hub", "--dry-run"
    ).stdout
    assert f"conflict {conflict['id']} (user {user} on cs1): writes update {user} to cs1" in said
    assert "sent to cs1; drops 1 unsent or failed update" in said
    assert "nothing was changed (--dry-run)" in said
    # A plan changes nothing.
    assert group.get("/sharing/conflicts")["conflicts"][0]["state"] == "open"
    assert [d["id"] for d in group.get("/distributions", state="error")] == [failed["id"]]
    assert group.hub_data()[("user", user)]["name"] == "Newer Name"
    with logged_in(group.agent) as browser:
        csrf = csrf_of(browser.get("/ui/reconcile").text)
        preview = browser.post(
            "/ui/reconcile/preview",
            data={"csrf": csrf, "conflict": conflict["id"], "take": "hub"},
        ).text
        assert "name from Elem Name to Newer Name; it is sent to cs1" in preview
        assert "Hub Name" not in preview, "the hub's value now, not the sync's"
        assert 'class="note hub-changed"' in preview
        resolved = browser.post(
            "/ui/reconcile/resolve", data={"csrf": csrf, "conflict": conflict["id"], "take": "hub"}
        )
        assert resolved.status_code == 303
    wait_for(
        "sent to cs1",
        lambda: group.elements["cs1"].shared(SHARED)[("user", user)]["name"] == "Newer Name",
    )


def test_bulk_confirmations_take_exactly_the_rows_they_showed(group: SharingGroup) -> None:
    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    cs1.reject("station", "", "no free port")
    hub.cli("objects", "add", "station", "39500", "number=39500", "type=9611")
    (first,) = wait_for("error", lambda: group.get("/distributions", state="error"))
    with logged_in(hub) as browser:
        page = browser.get("/ui/distribution-errors").text
        csrf = csrf_of(page)
        assert IDS.findall(page) == [str(first["id"])] * 2, "cs1's form and the one for all"
        confirm = browser.post(
            "/ui/distribution-errors/delete/confirm",
            data={"csrf": csrf, "element": "cs1", "ids": [first["id"]]},
        ).text
        shown_ids = IDS.findall(confirm)
        assert shown_ids == [str(first["id"])]
        # Meanwhile: that one deleted, another failed; as many as shown, not the same.
        with hub.http() as api:
            assert api.delete(f"/api/v1/distributions/{first['id']}").status_code == 200
        hub.cli("objects", "add", "station", "39501", "number=39501", "type=9611")
        (second,) = wait_for("error", lambda: group.get("/distributions", state="error"))
        for path in ("/ui/distribution-errors/delete", "/ui/distribution-errors/retry"):
            stale = browser.post(path, data={"csrf": csrf, "element": "cs1", "ids": shown_ids})
            assert stale.status_code == 400, path
            assert "matched" in stale.text
        assert [d["id"] for d in group.get("/distributions", state="error")] == [second["id"]]
        cs1.admin("DELETE", "/admin/reject")
        # The ids the page shows now: those are retried.
        page = browser.get("/ui/distribution-errors?element=cs1").text
        retried = browser.post(
            "/ui/distribution-errors/retry",
            data={"csrf": csrf, "element": "cs1", "ids": IDS.findall(page)},
        )
        assert retried.status_code == 303
        wait_for("settled", group.settled)
    # Reconcile: between the preview and its confirmation the conflict shown is resolved
    # and another found (the same count); the confirmation takes none of it.
    user = name_conflict(group, "cs1")
    with logged_in(hub) as browser:
        csrf = csrf_of(browser.get("/ui/reconcile").text)
        preview = browser.post(
            "/ui/reconcile/preview", data={"csrf": csrf, "element": "cs1", "take": "skip"}
        ).text
        (shown_conflict,) = IDS.findall(preview)
        hub.cli("sharing", "resolve", shown_conflict, "--take", "hub")
        name_conflict(group, "cs1", "Hub Two", "Elem Two")
        (now_open,) = group.get("/sharing/conflicts")["conflicts"]
        assert str(now_open["id"]) != shown_conflict
        stale = browser.post(
            "/ui/reconcile/resolve",
            data={"csrf": csrf, "element": "cs1", "take": "skip", "ids": [shown_conflict]},
        )
        assert stale.status_code == 400
        assert "no open conflict to resolve" in stale.text
        assert group.get("/sharing/conflicts")["conflicts"] == [now_open]
        # The API takes the ids too.
        with hub.http() as api:
            done = api.post(
                "/api/v1/sharing/conflicts/resolve",
                json={"take": "hub", "ids": [now_open["id"]], "by": "test"},
            )
        assert done.status_code == 200, done.text
        assert done.json()["resolved"] == [now_open["id"]]
    assert group.hub_data()[("user", user)]["name"] == "Hub Two"


def test_a_bulk_resolve_refused_midway_says_how_many_were_resolved(group: SharingGroup) -> None:
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    # One sync finds two conflicts: a rename (its element's value can be taken), then a
    # new user with a number another user has (its element's value is refused).
    users = {k: v for (c, k), v in cs1.shared(SHARED).items() if c == "user"}
    taken = users[sorted(users)[0]]["number"]
    group.local_change(
        "cs1", "create", "user", "zz-twin", {"login": "twin", "number": taken}, share=False
    )
    name_conflict(group, "cs1", unresolved=2)
    first, twin = group.get("/sharing/conflicts")["conflicts"]
    assert (first["key"], twin["key"]) == (sorted(users)[0], "zz-twin")
    with logged_in(group.agent) as browser:
        csrf = csrf_of(browser.get("/ui/reconcile").text)
        preview = browser.post("/ui/reconcile/preview", data={"csrf": csrf, "take": "element"})
        assert preview.status_code == 200
        # The plan sees the refusal coming, where the resolve would stop.
        refused = re.search(r'id="refused"[^>]*>([^<]*)<', preview.text)
        assert refused, preview.text
        assert f"It would stop at conflict {twin['id']}" in refused.group(1)
        assert "The 1 before it would be resolved" in refused.group(1)
        ids = IDS.findall(preview.text)
        assert ids == [str(first["id"]), str(twin["id"])]
        answer = browser.post(
            "/ui/reconcile/resolve", data={"csrf": csrf, "take": "element", "ids": ids}
        )
    assert answer.status_code == 400
    assert f"1 resolved, then refused (conflict {twin['id']})" in answer.text
    assert "already belongs" in answer.text
    assert "Not done" not in answer.text, "one decision was made"
    (left,) = group.get("/sharing/conflicts")["conflicts"]
    assert left["id"] == twin["id"]


# ------------------------------------------------------------------ a real browser
def _from_the_viewer(chromium: Any, agent: AgentProcess, alarm_type: str) -> None:
    """Log in, and follow the resolution link of the ``alarm_type`` alarm's row."""
    open_console(chromium, agent)
    row = f"//table[@id='alarms']//tr[td[contains(., '{alarm_type}')]]"
    click(chromium, f"{row}//a[contains(@class, 'fix')]")


def test_a_conflict_and_an_activation_resolved_in_the_browser(
    group: SharingGroup, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    sharing(group, "cs1")
    name_conflict(group, "cs1")
    _from_the_viewer(chromium, group.agent, "sync-reconcile-required")
    until(chromium, lambda d: d.title.endswith("Sync and Reconcile"))
    differing = text_of(chromium, "article.conflict tr.differs")
    assert "Hub Name" in differing
    assert "Elem Name" in differing
    screenshot(chromium, "reconcile")
    click(chromium, "//article[contains(@class, 'conflict')]//button[@value='element']")
    assert "name from Hub Name to Elem Name" in text_of(chromium, "p.will")
    assert group.alarms("sync-reconcile-required", "cs1"), "nothing done before the confirm"
    click(chromium, "//button[@id='confirm']")
    until(chromium, lambda d: d.find_elements(By.ID, "no-conflict"))
    assert not group.alarms("sync-reconcile-required")
    assert group.events("reconcile-completed", "cs1")
    (resolved,) = group.get("/sharing/conflicts", all=True)["conflicts"]
    assert (resolved["resolution"], resolved["resolved_by"]) == ("element", "console")
    # Activation, from its alarm's link: the page says why vm1 waits.
    activation_required(group, "vm1", "cs1")
    _from_the_viewer(chromium, group.agent, "element-updated-activation-required")
    assert "was given the address" in text_of(chromium, "tr[data-element=vm1]")
    screenshot(chromium, "activation")
    click(chromium, "//button[text()='Activate vm1']")
    until(chromium, lambda _: text_of(chromium, "#waiting-count") == "0")
    assert not group.alarms("element-updated-activation-required")
    assert group.cleared("element-updated-activation-required", "vm1")


def test_distribution_errors_retried_and_deleted_in_the_browser(
    group: SharingGroup, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    hub = group.agent
    sharing(group, "cs1")
    cs1 = group.elements["cs1"]
    cs1.reject("station", "", "no free port")
    hub.cli("objects", "add", "station", "39500", "number=39500", "type=9611")
    wait_for("error", lambda: group.alarms("distribution-errors", "cs1"))
    _from_the_viewer(chromium, hub, "distribution-errors")
    row = text_of(chromium, "#errors tr[data-id]")
    assert "no free port" in row
    assert "create station 39500" in row
    # Delete: a confirmation first, with the vendor's warning.
    click(chromium, "//table[@id='errors']//button[text()='Delete…']")
    assert "not valid or required" in text_of(chromium, "p.warning")
    assert group.alarms("distribution-errors", "cs1"), "nothing done before the confirm"
    click(chromium, "//button[@id='confirm']")
    until(chromium, lambda d: d.find_elements(By.ID, "no-error"))
    wait_for("cleared by the delete", lambda: not group.alarms("distribution-errors"))
    assert group.events("distribution-deleted", "cs1")
    # Another rejected update, live on the open page; its cause fixed, then retried.
    hub.cli("objects", "add", "station", "39501", "number=39501", "type=9611")
    assert "create station 39501" in text_of(chromium, "#errors tr[data-id]")
    screenshot(chromium, "distribution-errors")
    cs1.admin("DELETE", "/admin/reject")
    click(chromium, "//button[text()='Retry all of cs1']")
    wait_for("cleared by the retry", lambda: not group.alarms("distribution-errors"))
    assert ("station", "39501") in cs1.shared(SHARED)
    until(chromium, lambda d: d.find_elements(By.ID, "no-error"))
    assert "by console" in group.events("distribution-retried", "cs1")[-1]["text"]


def test_the_red_banner_for_a_refused_start_and_for_ftp_inactive(
    group: SharingGroup, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    hub = group.agent
    sharing(group, "cs1")
    group.add("old", version="9.3.0")
    open_console(chromium, hub)
    chromium.get(f"{hub.url}/ui/sharing")
    start_old = "//tr[@data-element='old']//button[text()='Start sharing']"
    click(chromium, start_old)
    banner = text_of(chromium, "#banners .banner")
    assert "could not be started" in banner
    assert "9.3.0" in banner
    screenshot(chromium, "banner")
    chromium.get(f"{hub.url}/ui/")  # every page shows it until it is resolved
    assert "old runs 9.3.0" in text_of(chromium, "#banners")
    # Resolved: old upgraded and started.
    group.elements["old"].admin("POST", "/admin/version", {"software_version": "10.3.0"})
    chromium.get(f"{hub.url}/ui/sharing")
    click(chromium, start_old)
    until(chromium, lambda d: not d.find_elements(By.CSS_SELECTOR, "#banners .banner"))
    cell = "tr[data-element=old] .sharing-state"
    assert text_of(chromium, cell) == "syncRequired"
    group.sync("old")
    # ftp-inactive: the agent upgraded under data that had sharing enabled.
    assert hub.stop() == 0
    with sqlite3.connect(hub.data_dir / "provsync.db") as conn:
        conn.execute("UPDATE meta SET value='0.0.1' WHERE key='sharing_release'")
    conn.close()
    hub.start()
    assert group.alarms("ftp-inactive")
    open_console(chromium, hub)
    assert "Flow Through Provisioning Inactive" in text_of(chromium, "#banners .banner")
    click(chromium, "//div[@id='banners']//a[text()='Open the sharing page']")
    until(chromium, lambda d: d.title.endswith("Sharing"))
    assert "yes" in text_of(chromium, "#group-ftp")
    screenshot(chromium, "sharing")
    click(chromium, "//tr[@data-element='cs1']//button[text()='Start sharing']")
    wait_for(
        "cs1 started",
        lambda: (
            {e["name"]: e["sharing"] for e in group.status()["elements"]}.get("cs1")
            not in (None, "notSharing")
        ),
    )
    group.sync("cs1")
    # The open page loses its banner live, once the sync cleared the alarm.
    until(chromium, lambda d: not d.find_elements(By.CSS_SELECTOR, "#banners .banner"))
    assert not group.alarms("ftp-inactive")
