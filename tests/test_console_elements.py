"""The console's element and job pages (agent/api/console/element_pages.py) against a real
agent and `provsync simulate`: their forms over HTTP, then the resolution links, the sync
actions and the live progress bar in the real headless Chromium. The login test they
offer is checked through the control API and the CLI too."""

from __future__ import annotations

import asyncio
import re
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
from tests.simulated import SimulatedElement

PASSWORD = "s3cret-pass"  # what SimulatedElement accepts


@pytest.fixture
def element(tmp_path: Path) -> Iterator[SimulatedElement]:
    simulated = SimulatedElement(tmp_path / "sim", objects=200)
    yield simulated
    simulated.stop()


def elements_of(agent: AgentProcess) -> dict[str, Any]:
    with agent.http() as api:
        return {e["name"]: e for e in api.get("/api/v1/elements").json()}


def active(agent: AgentProcess, type_id: str, resource: str = "cm1") -> list[dict[str, Any]]:
    with agent.http() as api:
        found: list[dict[str, Any]] = api.get(
            "/api/v1/alarms", params={"type": type_id, "resource": resource}
        ).json()
    return found


def post_forms(page: str) -> list[str]:
    """The actions of a page's POST forms, logout left out."""
    actions = re.findall(r'<form method="post" action="([^"]*)"', page)
    return [a for a in actions if a != "/ui/logout"]


# ------------------------------------------------------------------ without a sync engine
def test_the_pages_say_so_when_synchronization_is_not_running(tmp_path: Path) -> None:
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

    async def pages() -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent", verify=client_context()
        ) as browser:
            code = app.state.console_sessions.new_code()
            assert (await browser.get(f"/ui/login?code={code}")).status_code == 303
            shown = [
                await browser.get(path)
                for path in ("/ui/elements", "/ui/elements/cm1", "/ui/jobs", "/ui/jobs/1")
            ]
            csrf = csrf_of(shown[0].text)
            sync = await browser.post("/ui/elements/cm1/sync", data={"csrf": csrf, "kind": "init"})
            return shown, sync

    try:
        shown, sync = asyncio.run(pages())
    finally:
        manager.stop()
        store.close()
    for answer in shown:
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("text/html")
        assert "Synchronization is not running" in answer.text
    assert sync.status_code == 503
    assert "synchronization is not running" in sync.text


# ------------------------------------------------------------------ forms over HTTP
def test_elements_are_added_and_set_up_through_the_forms(
    agent: AgentProcess, element: SimulatedElement
) -> None:
    with logged_in(agent) as browser:
        listing = browser.get("/ui/elements")
        assert listing.status_code == 200
        assert "Add element" in listing.text
        csrf = csrf_of(listing.text)
        new = {"name": "cm1", "url": element.url, "username": "admin", "password": PASSWORD}
        forged = browser.post("/ui/elements", data=new)
        assert forged.status_code == 403, "no CSRF token: refused"
        for bad, named in (({"name": "no spaces"}, "name"), ({"interval": "soon"}, "interval")):
            refused = browser.post("/ui/elements", data={**new, **bad, "csrf": csrf})
            assert refused.status_code == 422, refused.text
            assert "not valid" in refused.text
            assert named in refused.text
            assert PASSWORD not in refused.text, "a refusal never repeats the password"
        assert elements_of(agent) == {}, "nothing was added"

        added = browser.post("/ui/elements", data={**new, "csrf": csrf, "interval": "24h"})
        assert added.status_code == 303
        assert added.headers["location"] == "/ui/elements/cm1#sync"
        page = browser.get("/ui/elements/cm1").text
        queued = re.search(r"initialization sync is queued as job (\d+)", page)
        assert queued, page
        job_id = int(queued[1])
        assert f'href="/ui/jobs/{job_id}"' in page, "the note links its job"
        assert agent.wait_job(job_id)["state"] == "done"
        listing = browser.get("/ui/elements").text
        assert 'data-name="cm1"' in listing
        assert element.url in listing
        assert "idle" in listing
        assert "every 1d" in listing

        # Credentials: saved and tested, never shown again (nor put in a value).
        page = browser.get("/ui/elements/cm1").text
        assert 'type="password"' in page
        assert PASSWORD not in page
        saved = browser.post(
            "/ui/elements/cm1/credentials",
            data={"csrf": csrf, "username": "admin", "password": PASSWORD},
            follow_redirects=True,
        )
        assert "the credentials were accepted by cm1" in saved.text
        assert PASSWORD not in saved.text
        tested = browser.post("/ui/elements/cm1/test", data={"csrf": csrf}, follow_redirects=True)
        assert "Login test: the credentials were accepted by cm1" in tested.text
        empty = browser.post(
            "/ui/elements/cm1/credentials", data={"csrf": csrf, "username": "", "password": "x"}
        )
        assert empty.status_code == 422

        # The schedule: an interval, then a crontab; a bad one changes nothing.
        moved = browser.post(
            "/ui/elements/cm1/schedule", data={"csrf": csrf, "interval": "12h", "cron": ""}
        )
        assert moved.status_code == 303
        assert elements_of(agent)["cm1"]["interval"] == 12 * 3600
        browser.post(
            "/ui/elements/cm1/schedule", data={"csrf": csrf, "interval": "12h", "cron": "0 2 * * *"}
        )
        assert elements_of(agent)["cm1"]["cron"] == "0 2 * * *"
        assert "cron 0 2 * * * (UTC)" in browser.get("/ui/elements/cm1").text
        bad_cron = browser.post(
            "/ui/elements/cm1/schedule", data={"csrf": csrf, "interval": "", "cron": "every day"}
        )
        assert bad_cron.status_code == 400
        assert "Not done" in bad_cron.text
        forged = browser.post("/ui/elements/cm1/schedule", data={"interval": "1h", "cron": ""})
        assert forged.status_code == 403
        assert elements_of(agent)["cm1"]["interval"] == 12 * 3600, "nothing changed"

        jobs = browser.get("/ui/jobs", params={"element": "cm1"}).text
        assert f'data-job="{job_id}" data-state="done"' in jobs
        assert "objects: " in browser.get(f"/ui/jobs/{job_id}").text
        assert browser.get("/ui/jobs/999999").status_code == 404
        assert "Not found" in browser.get("/ui/jobs/not-an-id").text, "a page, not JSON"
        assert browser.get("/ui/elements/nothere").status_code == 404

        # A read-only session sees every page without a form, and its POSTs are refused.
        with logged_in(agent, "--read-only") as viewer:
            for path in ("/ui/elements", "/ui/elements/cm1", "/ui/jobs", f"/ui/jobs/{job_id}"):
                shown = viewer.get(path)
                assert shown.status_code == 200, path
                assert post_forms(shown.text) == [], path
            its_csrf = csrf_of(viewer.get("/ui/elements").text)
            for path in ("/ui/elements/cm1/sync", "/ui/elements/cm1/remove"):
                refused = viewer.post(path, data={"csrf": its_csrf, "kind": "init"})
                assert refused.status_code == 403, path
        assert "cm1" in elements_of(agent)

        # Removal asks first, on a page of its own.
        asked = browser.get("/ui/elements/cm1/remove")
        assert "Yes, remove cm1" in asked.text
        assert "cm1" in elements_of(agent), "asking removes nothing"
        removed = browser.post("/ui/elements/cm1/remove", data={"csrf": csrf})
        assert removed.status_code == 303
        assert removed.headers["location"] == "/ui/elements"
        assert "Removed cm1" in browser.get("/ui/elements").text
    assert elements_of(agent) == {}


def test_the_login_test_is_in_the_api_and_the_cli(
    agent: AgentProcess, element: SimulatedElement
) -> None:
    with agent.http() as api:
        body = {"name": "cm1", "url": element.url, "username": "admin", "password": "wrong"}
        job = api.post("/api/v1/elements", json=body).json()["job"]
        assert agent.wait_job(job)["state"] == "failed"
        assert active(agent, "auth-failed-incorrect")
        answer = api.post("/api/v1/elements/cm1/test")
        assert answer.status_code == 200
        assert answer.json()["tested"].startswith("the credentials were refused by cm1")
        assert api.post("/api/v1/elements/nothere/test").status_code == 404
        api.put(
            "/api/v1/elements/cm1/credentials", json={"username": "admin", "password": PASSWORD}
        )
    assert not active(agent, "auth-failed-incorrect")
    said = agent.cli("elements", "test", "cm1").stdout
    assert "login test of cm1: the credentials were accepted by cm1" in said
    missing = agent.cli("elements", "test", "nothere", check=False)
    assert missing.returncode == 1


# ------------------------------------------------------------------ a real browser
def test_alarm_links_lead_to_the_fix_and_the_sync_actions(
    agent: AgentProcess, element: SimulatedElement, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(driver: WebDriver, within: float = 15) -> WebDriverWait[WebDriver]:
        return WebDriverWait(driver, within)

    def css(selector: str) -> Any:
        return chromium.find_element(By.CSS_SELECTOR, selector)

    with agent.http() as api:
        body = {"name": "cm1", "url": element.url, "username": "admin", "password": "wrong"}
        assert agent.wait_job(api.post("/api/v1/elements", json=body).json()["job"])
    chromium.get(login_link(agent))
    wait(chromium).until(ec.title_contains("Event Viewer"))

    # The wrong password's alarm links to the element, where the right one clears it.
    css('#alarms tr[data-resource="cm1"] a[href="/ui/elements/cm1"]').click()
    wait(chromium).until(ec.title_contains("element cm1"))
    assert css('#element-alarms tr[data-type="auth-failed-incorrect"]')
    screenshot(chromium, "element")
    css("#username").send_keys("admin")
    css("#password").send_keys(PASSWORD)
    css("#credentials button").click()
    wait(chromium).until(lambda d: "accepted by cm1" in css("#note").text)
    assert not chromium.find_elements(
        By.CSS_SELECTOR, '#element-alarms tr[data-type="auth-failed-incorrect"]'
    )
    assert PASSWORD not in chromium.page_source
    assert not active(agent, "auth-failed-incorrect")

    # An init-sync-required alarm links to the sync actions; the sync runs under a live bar.
    chromium.get(f"{agent.url}/ui/")
    agent.cli("alarms", "raise", "init-sync-required", "--resource", "cm1", "--text", "needed")
    link = "//table[@id='alarms']//tr[.//small[text()='init-sync-required']]//a[@class='fix']"
    wait(chromium).until(ec.element_to_be_clickable((By.XPATH, link))).click()
    wait(chromium).until(ec.title_contains("element cm1"))
    assert chromium.current_url.endswith("/ui/elements/cm1#sync")
    element.admin("POST", "/admin/faults", {"latency_ms": 400})  # a job slow enough to watch
    css("#sync form:nth-of-type(1) button").click()  # Initialization
    wait(chromium).until(lambda d: css("#note").text.startswith("init sync of cm1 queued"))
    page_id = chromium.execute_script("return window.performance.timeOrigin")
    bar = wait(chromium).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#sync-live [data-running='1'] progress"))
    )
    assert bar.get_attribute("aria-label").startswith("job ")
    screenshot(chromium, "sync-actions")
    element.admin("POST", "/admin/faults", {"latency_ms": 0})
    wait(chromium, 60).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#last-job tr[data-state='done']"))
    )
    assert chromium.execute_script("return window.performance.timeOrigin") == page_id, (
        "the bar and the result came without a reload"
    )
    assert "objects: " in css("#last-job").text
    assert not active(agent, "init-sync-required"), "the initialization cleared it"

    # Force: the dry run says what it would delete; only the confirmation deletes it.
    element.admin("POST", "/admin/wipe")
    css("#sync form:nth-of-type(3) button").click()  # Force initialization...
    report = wait(chromium, 30).until(ec.visibility_of_element_located((By.ID, "dry-run-report")))
    assert "delete the hub's 204 objects" in report.text
    assert elements_of(agent)["cm1"]["sync_state"] == "idle", "the dry run changed nothing"
    with agent.http() as api:
        assert sum(api.get("/api/v1/elements/cm1").json()["objects"].values()) == 204
    screenshot(chromium, "sync-actions-force")
    css("#force-confirm button").click()
    wait(chromium).until(lambda d: "Forced initialization of cm1 queued" in css("#note").text)
    wait(chromium, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#last-job tr[data-state='done']"))
    )
    with agent.http() as api:
        assert api.get("/api/v1/elements/cm1").json()["objects"] == {}

    chromium.get(f"{agent.url}/ui/elements")
    wait(chromium).until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="cm1"]')))
    screenshot(chromium, "elements")
    chromium.get(f"{agent.url}/ui/jobs")
    rows = chromium.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job]")
    assert [r.get_attribute("data-state") for r in rows] == ["done"] * 3 + ["failed"]
    assert "dry run" in rows[1].text, "newest first: the force, its dry run, the init"
    screenshot(chromium, "jobs")
