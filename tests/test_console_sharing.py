"""The console's sharing pages (/ui/sharing, /ui/reconcile, /ui/distribution-errors,
/ui/activation): over HTTP from a running hub with simulated elements, and resolved from
the Event Viewer's resolution links in Debian's headless Chromium."""

from __future__ import annotations

import asyncio
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
from agent.api.services import Services
from agent.http_tls import client_context
from agent.store.database import Store
from tests.conftest import TOKEN, AgentProcess
from tests.console_pages import csrf_of, logged_in, login_link, screenshot
from tests.sharing_group import FAST, SHARED, SharingGroup
from tests.waiting import wait_for

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


def name_conflict(group: SharingGroup, name: str) -> str:
    """A user renamed on the hub and on ``name`` differently while ``name`` rejected the
    hub's update; its sync finds the conflict (tests/test_sharing_alarms.py's set-up).
    Returns the user's key."""
    element = group.elements[name]
    user = element.first_key("user")
    data = element.shared(SHARED)[("user", user)]
    element.reject("*", "", "element offline for maintenance")
    group.agent.cli("objects", "set", "user", user, "name=Hub Name")
    wait_for("rejected", lambda: group.alarms("distribution-errors", name))
    group.local_change(name, "update", "user", user, {**data, "name": "Elem Name"}, share=False)
    element.admin("DELETE", "/admin/reject")
    assert group.sync(name)["counts"]["unresolved"] == 1
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
            assert (await browser.get(f"/ui/login?code={code}")).status_code == 303
            shown = [await browser.get(page) for page in PAGES]
            shown.append(await browser.get("/ui/fragments/reconcile"))
            csrf = csrf_of(shown[0].text)
            shown.append(await browser.post("/ui/activation/vm1", data={"csrf": csrf}))
            return shown

    try:
        answers = asyncio.run(pages())
    finally:
        manager.stop()
        store.close()
    for answer in answers[:4]:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert "Sharing is not running" in answer.text
    assert "not running" in answers[4].text
    assert answers[5].status_code == 503
    assert "Not done: sharing is not running" in answers[5].text


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
        # A bulk decision confirmed for what is no longer what is open: not done.
        stale = browser.post(
            "/ui/reconcile/resolve",
            data={"csrf": csrf, "element": "cs1", "take": "skip", "expected": 2},
        )
        assert stale.status_code == 400
        assert "changed meanwhile" in stale.text
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


# ------------------------------------------------------------------ a real browser
def _from_the_viewer(chromium: Any, agent: AgentProcess, alarm_type: str) -> None:
    """Log in, and follow the resolution link of the ``alarm_type`` alarm's row."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(login_link(agent))
    WebDriverWait(chromium, 10).until(expected_conditions.title_contains("Event Viewer"))
    row = f"//table[@id='alarms']//tr[td[contains(., '{alarm_type}')]]"
    _click(chromium, f"{row}//a[contains(@class, 'fix')]")


def _until(chromium: Any, check: Any, within: float = 10, ignoring: tuple[Any, ...] = ()) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chromium, within, ignored_exceptions=ignoring).until(check)


def _click(chromium: Any, xpath: str) -> None:
    """Click what ``xpath`` finds, found again if a live refresh replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked(driver: Any) -> bool:
        driver.find_element(By.XPATH, xpath).click()
        return True

    _until(chromium, clicked, ignoring=(StaleElementReferenceException,))


def _text(chromium: Any, css: str) -> str:
    """The text of what ``css`` finds, once it is there (read again if replaced)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    ignoring = (NoSuchElementException, StaleElementReferenceException)
    found: str = _until(
        chromium, lambda d: d.find_element(By.CSS_SELECTOR, css).text or " ", ignoring=ignoring
    )
    return found


def test_a_conflict_and_an_activation_resolved_in_the_browser(
    group: SharingGroup, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    sharing(group, "cs1")
    name_conflict(group, "cs1")
    _from_the_viewer(chromium, group.agent, "sync-reconcile-required")
    _until(chromium, lambda d: d.title.endswith("Sync and Reconcile"))
    differing = _text(chromium, "article.conflict tr.differs")
    assert "Hub Name" in differing
    assert "Elem Name" in differing
    screenshot(chromium, "reconcile")
    _click(chromium, "//article[contains(@class, 'conflict')]//button[@value='element']")
    assert "name from Hub Name to Elem Name" in _text(chromium, "p.will")
    assert group.alarms("sync-reconcile-required", "cs1"), "nothing done before the confirm"
    _click(chromium, "//button[@id='confirm']")
    _until(chromium, lambda d: d.find_elements(By.ID, "no-conflict"))
    assert not group.alarms("sync-reconcile-required")
    assert group.events("reconcile-completed", "cs1")
    (resolved,) = group.get("/sharing/conflicts", all=True)["conflicts"]
    assert (resolved["resolution"], resolved["resolved_by"]) == ("element", "console")
    # Activation, from its alarm's link: the page says why vm1 waits.
    activation_required(group, "vm1", "cs1")
    _from_the_viewer(chromium, group.agent, "element-updated-activation-required")
    assert "was given the address" in _text(chromium, "tr[data-element=vm1]")
    screenshot(chromium, "activation")
    _click(chromium, "//button[text()='Activate vm1']")
    _until(chromium, lambda _: _text(chromium, "#waiting-count") == "0")
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
    row = _text(chromium, "#errors tr[data-id]")
    assert "no free port" in row
    assert "create station 39500" in row
    # Delete: a confirmation first, with the vendor's warning.
    _click(chromium, "//table[@id='errors']//button[text()='Delete…']")
    assert "not valid or required" in _text(chromium, "p.warning")
    assert group.alarms("distribution-errors", "cs1"), "nothing done before the confirm"
    _click(chromium, "//button[@id='confirm']")
    _until(chromium, lambda d: d.find_elements(By.ID, "no-error"))
    wait_for("cleared by the delete", lambda: not group.alarms("distribution-errors"))
    assert group.events("distribution-deleted", "cs1")
    # Another rejected update, live on the open page; its cause fixed, then retried.
    hub.cli("objects", "add", "station", "39501", "number=39501", "type=9611")
    assert "create station 39501" in _text(chromium, "#errors tr[data-id]")
    screenshot(chromium, "distribution-errors")
    cs1.admin("DELETE", "/admin/reject")
    _click(chromium, "//button[text()='Retry all of cs1']")
    wait_for("cleared by the retry", lambda: not group.alarms("distribution-errors"))
    assert ("station", "39501") in cs1.shared(SHARED)
    _until(chromium, lambda d: d.find_elements(By.ID, "no-error"))
    assert "by console" in group.events("distribution-retried", "cs1")[-1]["text"]


def test_the_red_banner_for_a_refused_start_and_for_ftp_inactive(
    group: SharingGroup, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    hub = group.agent
    sharing(group, "cs1")
    group.add("old", version="9.3.0")
    chromium.get(login_link(hub))
    chromium.get(f"{hub.url}/ui/sharing")
    start_old = "//tr[@data-element='old']//button[text()='Start sharing']"
    _click(chromium, start_old)
    banner = _text(chromium, "#banners .banner")
    assert "could not be started" in banner
    assert "9.3.0" in banner
    screenshot(chromium, "banner")
    chromium.get(f"{hub.url}/ui/")  # every page shows it until it is resolved
    assert "old runs 9.3.0" in _text(chromium, "#banners")
    # Resolved: old upgraded and started.
    group.elements["old"].admin("POST", "/admin/version", {"software_version": "10.3.0"})
    chromium.get(f"{hub.url}/ui/sharing")
    _click(chromium, start_old)
    _until(chromium, lambda d: not d.find_elements(By.CSS_SELECTOR, "#banners .banner"))
    cell = "tr[data-element=old] .sharing-state"
    assert _text(chromium, cell) == "syncRequired"
    group.sync("old")
    # ftp-inactive: the agent upgraded under data that had sharing enabled.
    assert hub.stop() == 0
    with sqlite3.connect(hub.data_dir / "provsync.db") as conn:
        conn.execute("UPDATE meta SET value='0.0.1' WHERE key='sharing_release'")
    conn.close()
    hub.start()
    assert group.alarms("ftp-inactive")
    chromium.get(login_link(hub))
    assert "Flow Through Provisioning Inactive" in _text(chromium, "#banners .banner")
    _click(chromium, "//div[@id='banners']//a[text()='Open the sharing page']")
    _until(chromium, lambda d: d.title.endswith("Sharing"))
    assert "yes" in _text(chromium, "#group-ftp")
    screenshot(chromium, "sharing")
    _click(chromium, "//tr[@data-element='cs1']//button[text()='Start sharing']")
    wait_for(
        "cs1 started",
        lambda: (
            {e["name"]: e["sharing"] for e in group.status()["elements"]}.get("cs1")
            not in (None, "notSharing")
        ),
    )
    group.sync("cs1")
    # The open page loses its banner live, once the sync cleared the alarm.
    _until(chromium, lambda d: not d.find_elements(By.CSS_SELECTOR, "#banners .banner"))
    assert not group.alarms("ftp-inactive")
