"""The console's element and job pages (agent/api/console/element_pages.py) against a real
agent and `provsync simulate`: their forms over HTTP, then the resolution links, the sync
actions and the live progress bar in the real headless Chromium. The login test they
offer is checked through the control API and the CLI too."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
from tests.console_pages import (
    click,
    csrf_of,
    logged_in,
    open_console,
    screenshot,
    text_of,
    until,
)
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


def objects_of(agent: AgentProcess, name: str = "cm1") -> dict[str, int]:
    with agent.http() as api:
        found: dict[str, int] = api.get(f"/api/v1/elements/{name}").json()["objects"]
    return found


def jobs_of(agent: AgentProcess, name: str = "cm1") -> list[dict[str, Any]]:
    """The element's jobs, oldest first."""
    with agent.http() as api:
        found: list[dict[str, Any]] = api.get("/api/v1/jobs", params={"element": name}).json()
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
            assert (await browser.post("/ui/login", data={"code": code})).status_code == 303
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
        first = browser.get("/ui/elements")
        assert first.status_code == 200
        assert "Add element" in first.text
        csrf = csrf_of(first.text)
        new = {"name": "cm1", "url": element.url, "username": "admin", "password": PASSWORD}
        forged = browser.post("/ui/elements", data=new)
        assert forged.status_code == 403, "no CSRF token: refused"
        for bad, named in (
            ({"name": "no spaces"}, "name"),
            ({"interval": "soon"}, "interval"),
            # Not "0s" (no schedule) in disguise: the schedule counts whole seconds.
            ({"interval": "500ms"}, "interval: must be a whole number of seconds"),
            ({"interval": "1.5s"}, "interval: must be a whole number of seconds"),
        ):
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
        # Its object counts: the total, and per class.
        objects = objects_of(agent)
        per_class = ", ".join(f"{cls} {n}" for cls, n in sorted(objects.items()))
        assert len(objects) > 1, objects
        assert f'<td class="objects">{sum(objects.values())}<br><small>{per_class}</small>' in (
            listing
        )
        # The list and the jobs poll whatever runs: a scheduled job that starts shows.
        live = 'id="elements-live" data-fragment="/ui/fragments/elements" data-poll="3000"'
        assert f'{live} data-always="1"' in listing
        assert 'data-poll="3000" data-always="1"' in browser.get("/ui/jobs").text
        assert 'data-poll="1000"' in browser.get("/ui/elements/cm1").text, "its sync, while it runs"

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
        for sub_second in ("500ms", "90.5s"):
            refused = browser.post(
                "/ui/elements/cm1/schedule", data={"csrf": csrf, "interval": sub_second, "cron": ""}
            )
            assert refused.status_code == 422, sub_second
            assert "whole number of seconds" in refused.text
        assert elements_of(agent)["cm1"]["interval"] == 12 * 3600, "nothing changed"
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
        for missing in (
            "/ui/elements/nothere",
            "/ui/elements/nothere/remove",
            "/ui/fragments/elements/nothere/sync",
        ):
            answer = browser.get(missing)
            assert answer.status_code == 404, missing
            assert "Not found: no element named &#39;nothere&#39;" in answer.text, missing
            assert "Not done" not in answer.text, missing

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


def _age(agent: AgentProcess, job_id: int, by: timedelta) -> None:
    """Make a job older, as if it had run ``by`` earlier (the store's naive UTC text)."""
    with sqlite3.connect(agent.data_dir / "provsync.db") as conn:
        for column in ("created_at", "started_at", "ended_at"):
            (value,) = conn.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            older = datetime.fromisoformat(value) - by
            conn.execute(
                f"UPDATE jobs SET {column} = ? WHERE id = ?",
                (older.strftime("%Y-%m-%d %H:%M:%S.%f"), job_id),
            )


def test_a_forced_initialization_is_confirmed_only_on_its_last_fresh_dry_run(
    agent: AgentProcess, element: SimulatedElement
) -> None:
    with agent.http() as api:
        for name in ("cm1", "cm2"):
            body = {"name": name, "url": element.url, "username": "admin", "password": PASSWORD}
            assert agent.wait_job(api.post("/api/v1/elements", json=body).json()["job"])
    held = sum(objects_of(agent).values())
    assert held > 0

    with logged_in(agent) as browser:
        listing = browser.get("/ui/elements").text
        csrf = csrf_of(listing)
        for name in ("cm1", "cm2"):  # each its own counts (one query for them all)
            row = listing.split(f'data-name="{name}"', 1)[1].split("</tr>", 1)[0]
            assert f'<td class="objects">{held}<br>' in row, row

        def dry_run(name: str) -> int:
            asked = browser.post(f"/ui/elements/{name}/force/dry-run", data={"csrf": csrf})
            assert asked.status_code == 303, asked.text
            found = re.search(r"\?dry_run=(\d+)#sync$", asked.headers["location"])
            assert found, asked.headers["location"]
            job = agent.wait_job(int(found[1]))
            assert job["state"] == "done", job
            assert job["counts"]["dry_run"] is True
            return int(job["id"])

        def confirm(name: str, job_id: int) -> httpx.Response:
            return browser.post(
                f"/ui/elements/{name}/force/confirm", data={"csrf": csrf, "dry_run": str(job_id)}
            )

        def shown(job_id: int) -> str:
            return browser.get("/ui/elements/cm1", params={"dry_run": str(job_id)}).text

        def refused(answer: httpx.Response) -> None:
            assert answer.status_code == 409, answer.text
            assert "run the dry run again" in answer.text

        # Another element's dry run, a job that is no dry run: refused, and not shown as one.
        refused(confirm("cm1", dry_run("cm2")))
        init = jobs_of(agent)[-1]["id"]
        refused(confirm("cm1", init))
        assert 'id="dry-run"' not in shown(init)
        refused(confirm("cm1", 999_999))
        refused(confirm("cm1", 0))

        # Superseded: a job of the element came after it (the report may no longer hold).
        superseded = dry_run("cm1")
        with agent.http() as api:
            later = api.post("/api/v1/elements/cm1/sync", json={"kind": "incremental"})
            assert agent.wait_job(later.json()["job"])["state"] == "done"
        page = shown(superseded)
        assert 'id="dry-run-report"' in page, "the report is still shown"
        assert 'id="dry-run-stale"' in page
        assert 'id="force-confirm"' not in page
        refused(confirm("cm1", superseded))

        # Stale: more than ten minutes old.
        stale = dry_run("cm1")
        assert 'id="force-confirm"' in shown(stale)
        _age(agent, stale, timedelta(minutes=11))
        assert 'id="dry-run-stale"' in shown(stale)
        refused(confirm("cm1", stale))
        assert sum(objects_of(agent).values()) == held, "no refusal ran anything"

        # A report that would delete nothing confirms a run that may not delete: the
        # element emptied meanwhile, the forced run refuses and the hub keeps its copy.
        nothing = dry_run("cm1")
        assert agent.wait_job(nothing)["counts"]["would_delete"] == 0
        element.admin("POST", "/admin/wipe")
        confirmed = confirm("cm1", nothing)
        assert confirmed.status_code == 303, confirmed.text
        forced = jobs_of(agent)[-1]
        assert forced["id"] != nothing
        assert forced["kind"] == "force"
        ended = agent.wait_job(forced["id"])
        assert ended["state"] == "failed", ended
        assert "confirm with --yes" in ended["error"]
        assert not ended["counts"].get("dry_run")
        assert sum(objects_of(agent).values()) == held, "nothing was deleted"
        assert 'id="dry-run"' not in shown(forced["id"]), "a forced run is no dry run"
        refused(confirm("cm1", nothing))  # used, and superseded by the forced run

        # Its dry run again, now saying what it would delete: that confirmation deletes.
        deleting = dry_run("cm1")
        assert agent.wait_job(deleting)["counts"]["would_delete"] == held
        assert f"delete the hub's {held} objects" in shown(deleting)
        assert confirm("cm1", deleting).status_code == 303
        assert agent.wait_job(jobs_of(agent)[-1]["id"])["state"] == "done"
        assert objects_of(agent) == {}


def test_the_element_page_lists_its_newest_alarms(
    agent: AgentProcess, element: SimulatedElement
) -> None:
    with agent.http() as api:
        body = {"name": "cm1", "url": element.url, "username": "admin", "password": PASSWORD}
        assert agent.wait_job(api.post("/api/v1/elements", json=body).json()["job"])
        raises = [
            {"op": "raise", "type": "sync-failed", "resource": "cm1", "qualifier": f"q{n:03}"}
            for n in range(501)
        ]
        answer = api.post("/api/v1/alarms/batch", json={"operations": raises})
        assert answer.status_code == 200, answer.text
    with logged_in(agent) as browser:
        for path in ("/ui/elements/cm1", "/ui/fragments/elements/cm1/alarms"):
            page = browser.get(path).text
            assert "sync-failed (q500)" in page, path
            assert "sync-failed (q000)" not in page, "the oldest one is past the newest 500"
            assert "The newest 500 of 501 active alarms" in page


# ------------------------------------------------------------------ a real browser
def test_alarm_links_lead_to_the_fix_and_the_sync_actions(
    agent: AgentProcess, element: SimulatedElement, chromium: Any
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
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
    open_console(chromium, agent)

    # The wrong password's alarm links to the element, where the right one clears it.
    # (Live tables: what is clicked or read in one is found again after a refresh.)
    click(chromium, "//table[@id='alarms']//tr[@data-resource='cm1']//a[@href='/ui/elements/cm1']")
    wait(chromium).until(ec.title_contains("element cm1"))
    assert css('#element-alarms tr[data-type="auth-failed-incorrect"]')
    screenshot(chromium, "element")
    css("#username").send_keys("admin")
    css("#password").send_keys(PASSWORD)
    css("#credentials button").click()
    wait(chromium).until(lambda d: "accepted by cm1" in text_of(d, "#note"))
    assert not chromium.find_elements(
        By.CSS_SELECTOR, '#element-alarms tr[data-type="auth-failed-incorrect"]'
    )
    assert PASSWORD not in chromium.page_source
    assert not active(agent, "auth-failed-incorrect")

    # An init-sync-required alarm links to the sync actions; the sync runs under a live bar.
    chromium.get(f"{agent.url}/ui/")
    agent.cli("alarms", "raise", "init-sync-required", "--resource", "cm1", "--text", "needed")
    link = "//table[@id='alarms']//tr[.//small[text()='init-sync-required']]//a[@class='fix']"
    click(chromium, link)
    wait(chromium).until(ec.title_contains("element cm1"))
    assert chromium.current_url.endswith("/ui/elements/cm1#sync")
    element.admin("POST", "/admin/faults", {"latency_ms": 400})  # a job slow enough to watch
    css("#sync form:nth-of-type(1) button").click()  # Initialization
    wait(chromium).until(lambda d: text_of(d, "#note").startswith("init sync of cm1 queued"))
    page_id = chromium.execute_script("return window.performance.timeOrigin")

    def bar_label(driver: WebDriver) -> str:
        found = driver.find_element(By.CSS_SELECTOR, "#sync-live [data-running='1'] progress")
        label: str = found.get_attribute("aria-label") or ""
        return label

    assert until(chromium, bar_label, 15, (StaleElementReferenceException,)).startswith("job ")
    screenshot(chromium, "sync-actions")
    element.admin("POST", "/admin/faults", {"latency_ms": 0})
    wait(chromium, 60).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#last-job tr[data-state='done']"))
    )
    assert chromium.execute_script("return window.performance.timeOrigin") == page_id, (
        "the bar and the result came without a reload"
    )
    assert "objects: " in text_of(chromium, "#last-job")
    assert not active(agent, "init-sync-required"), "the initialization cleared it"

    # Force: the dry run says what it would delete; only the confirmation deletes it.
    element.admin("POST", "/admin/wipe")
    css("#sync form:nth-of-type(3) button").click()  # Force initialization...
    wait(chromium, 30).until(ec.visibility_of_element_located((By.ID, "dry-run-report")))
    assert "delete the hub's 204 objects" in text_of(chromium, "#dry-run-report")
    assert elements_of(agent)["cm1"]["sync_state"] == "idle", "the dry run changed nothing"
    with agent.http() as api:
        assert sum(api.get("/api/v1/elements/cm1").json()["objects"].values()) == 204
    screenshot(chromium, "sync-actions-force")
    click(chromium, "//form[@id='force-confirm']//button")
    wait(chromium).until(lambda d: "Forced initialization of cm1 queued" in text_of(d, "#note"))
    wait(chromium, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#last-job tr[data-state='done']"))
    )
    with agent.http() as api:
        assert api.get("/api/v1/elements/cm1").json()["objects"] == {}

    chromium.get(f"{agent.url}/ui/elements")
    wait(chromium).until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="cm1"]')))
    screenshot(chromium, "elements")
    chromium.get(f"{agent.url}/ui/jobs")

    def job_rows(driver: WebDriver) -> list[tuple[str, str]]:
        rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job]")
        return [(r.get_attribute("data-state") or "", r.text) for r in rows]

    rows = until(chromium, job_rows, ignoring=(StaleElementReferenceException,))
    assert [state for state, _ in rows] == ["done"] * 3 + ["failed"]
    assert "dry run" in rows[1][1], "newest first: the force, its dry run, the init"
    screenshot(chromium, "jobs")
