"""The web console (/ui/): its logins in-process, its pages from a running agent, and the
Event Viewer in a real headless Chromium (Debian's chromium and chromedriver, installed
by `make test`)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from agent.api.console.sessions import CODE_TTL, MAX_CODES, SESSION_IDLE, ConsoleSessions
from agent.http_tls import client_context
from tests.conftest import AgentProcess
from tests.console_pages import browser_client, csrf_of, logged_in, login_link, screenshot

ELEMENT_TOKEN = "element-token-for-the-console-tests"


# ------------------------------------------------------------------ logins, in-process
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_login_code_is_good_once_and_for_a_while() -> None:
    clock = Clock()
    sessions = ConsoleSessions(clock)
    code = sessions.new_code()
    session_id = sessions.redeem(code)
    assert session_id is not None
    assert sessions.redeem(code) is None, "used up"
    late = sessions.new_code()
    clock.now += CODE_TTL + 1
    assert sessions.redeem(late) is None, "expired"
    assert sessions.redeem("made-up") is None
    assert sessions.get(session_id) is not None


def test_sessions_end_idle_and_forms_need_their_csrf_token() -> None:
    clock = Clock()
    sessions = ConsoleSessions(clock)
    session_id = sessions.redeem(sessions.new_code())
    session = sessions.get(session_id)
    assert session is not None
    assert sessions.csrf_ok(session, session.csrf)
    assert not sessions.csrf_ok(session, None)
    assert not sessions.csrf_ok(session, session.csrf + "x")
    clock.now += SESSION_IDLE + 1
    assert sessions.get(session_id) is None, "idle too long"


def test_the_code_table_is_bounded() -> None:
    sessions = ConsoleSessions(Clock())
    first = sessions.new_code()
    for _ in range(MAX_CODES):
        sessions.new_code()
    assert sessions.redeem(first) is None, "the oldest code went first"


# ------------------------------------------------------------------ pages, a running agent
@pytest.fixture
def console_agent(agent_factory: Any) -> AgentProcess:
    agent: AgentProcess = agent_factory({"sharing": {"element_token": ELEMENT_TOKEN}}).start()
    return agent


def test_the_console_opens_only_through_a_login_link(console_agent: AgentProcess) -> None:
    agent = console_agent
    with browser_client(agent) as browser:
        refused = browser.get("/ui/")
        assert refused.status_code == 401
        assert "provsync console" in refused.text
        link = login_link(agent)
        logged_in = browser.get(link, follow_redirects=True)
        assert logged_in.status_code == 200
        assert "Event Viewer" in logged_in.text
        cookie = next(c for c in browser.cookies.jar if c.name == "provsync_session")
        assert cookie.path == "/ui"
        assert cookie.has_nonstandard_attr("HttpOnly")
        with browser_client(agent) as other:
            assert other.get(link).status_code == 403, "a link is good once"
        # A form without its CSRF token is refused, and nothing happens.
        assert browser.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
        assert browser.get("/ui/").status_code == 200
    with httpx.Client(base_url=agent.url, verify=client_context()) as element:
        made = element.post(
            "/api/v1/console/link", headers={"Authorization": f"Bearer {ELEMENT_TOKEN}"}
        )
        assert made.status_code == 401, "the elements' token opens nothing here"


def test_the_viewer_escapes_what_alarms_say(console_agent: AgentProcess) -> None:
    agent = console_agent
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm1", "--text", "<b>x</b>&<i>")
    with browser_client(agent) as browser:
        page = browser.get(login_link(agent), follow_redirects=True).text
    assert "&lt;b&gt;x&lt;/b&gt;&amp;&lt;i&gt;" in page
    assert "<b>x</b>" not in page
    assert "Synchronization Failed" in page


# ------------------------------------------------------------------ a real browser
def test_an_alarm_raised_through_the_cli_appears_without_a_reload(
    console_agent: AgentProcess, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    agent = console_agent
    chromium.get(login_link(agent))
    WebDriverWait(chromium, 10).until(expected_conditions.title_contains("Event Viewer"))
    live = chromium.find_element(By.ID, "live")
    WebDriverWait(chromium, 10).until(lambda _: live.text == "live")
    page_id = chromium.execute_script("return window.performance.timeOrigin")
    agent.cli("alarms", "raise", "element-unreachable", "--resource", "cs7", "--text", "gone")
    row = '#alarms tr[data-resource="cs7"]'
    WebDriverWait(chromium, 2).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, row))
    )
    assert chromium.execute_script("return window.performance.timeOrigin") == page_id, (
        "the same page, not a reload"
    )
    shown = chromium.find_element(By.CSS_SELECTOR, row)
    assert "major" in shown.text
    assert "Element Unreachable" in shown.text or "element-unreachable" in shown.text
    assert chromium.find_element(By.ID, "alarm-count").text == "1"
    screenshot(chromium, "event-viewer")
    # Acknowledged from the page with a note, by keyboard and a click.
    shown.find_element(By.NAME, "note").send_keys("looking")
    shown.find_element(By.XPATH, ".//button[text()='Acknowledge']").click()
    WebDriverWait(chromium, 5).until(
        lambda driver: "by console" in driver.find_element(By.CSS_SELECTOR, row).text
    )


def test_an_open_console_page_does_not_hold_the_agents_stop(console_agent: AgentProcess) -> None:
    agent = console_agent
    with browser_client(agent) as browser:
        browser.get(login_link(agent), follow_redirects=True)
        with browser.stream("GET", "/ui/stream") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"
            started = time.monotonic()
            assert agent.stop(timeout=30) == 0
            stopped_in = time.monotonic() - started
    # The shutdown timeout (10 s) would be reached if the stream held the stop.
    assert stopped_in < 5, stopped_in
    assert "Exception in ASGI application" not in agent.log_text()


def test_alarms_are_acknowledged_and_cleared_from_the_page_with_a_note(
    console_agent: AgentProcess,
) -> None:
    agent = console_agent
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm2", "--text", "down")
    with agent.http() as api:
        (alarm,) = api.get("/api/v1/alarms", params={"resource": "cm2"}).json()
    with browser_client(agent) as browser:
        page = browser.get(login_link(agent), follow_redirects=True).text
        csrf = csrf_of(page)
        forged = browser.post(f"/ui/alarms/{alarm['id']}/ack", data={"csrf": "x", "note": "n"})
        assert forged.status_code == 403
        acked = browser.post(f"/ui/alarms/{alarm['id']}/ack", data={"csrf": csrf, "note": "on it"})
        assert acked.status_code == 303
        with agent.http() as api:
            shown = api.get(f"/api/v1/alarms/{alarm['id']}").json()
        assert (shown["operator_state"], shown["ack_by"], shown["ack_note"]) == (
            "acknowledged",
            "console",
            "on it",
        )
        assert "Unacknowledge" in browser.get("/ui/").text
        cleared = browser.post(
            f"/ui/alarms/{alarm['id']}/clear", data={"csrf": csrf, "note": "fixed"}
        )
        assert cleared.status_code == 303
        again = browser.post(f"/ui/alarms/{alarm['id'] + 99}/clear", data={"csrf": csrf})
        assert again.status_code == 404
        assert "Not done" in again.text
    with agent.http() as api:
        assert api.get(f"/api/v1/alarms/{alarm['id']}").json()["state"] == "cleared"


def test_a_read_only_session_sees_everything_and_changes_nothing(
    console_agent: AgentProcess,
) -> None:
    agent = console_agent
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm3", "--text", "down")
    with agent.http() as api:
        (alarm,) = api.get("/api/v1/alarms", params={"resource": "cm3"}).json()
    with logged_in(agent, "--read-only") as viewer:
        page = viewer.get("/ui/").text
        assert 'data-resource="cm3"' in page, "it sees the alarms"
        assert "read-only" in page
        assert 'class="act"' not in page, "no action forms"
        refused = viewer.post(f"/ui/alarms/{alarm['id']}/ack", data={"csrf": csrf_of(page)})
        assert refused.status_code == 403
        assert "read-only" in refused.text
        # It may still log out.
        assert viewer.post("/ui/logout", data={"csrf": csrf_of(page)}).status_code == 200
    with agent.http() as api:
        assert api.get(f"/api/v1/alarms/{alarm['id']}").json()["operator_state"] != ("acknowledged")


def test_the_banner_stays_while_ftp_inactive_is_active(console_agent: AgentProcess) -> None:
    agent = console_agent
    with logged_in(agent) as browser:
        assert 'class="banner"' not in browser.get("/ui/fragments/banners").text
        agent.cli("alarms", "raise", "ftp-inactive", "--resource", "hub", "--text", "off")
        for path in ("/ui/", "/ui/fragments/banners"):
            shown = browser.get(path).text
            assert 'class="banner"' in shown, path
            assert "Flow Through Provisioning Inactive" in shown
            assert 'href="/ui/sharing"' in shown
        agent.cli("alarms", "clear", "ftp-inactive", "--resource", "hub")
        assert 'class="banner"' not in browser.get("/ui/fragments/banners").text
