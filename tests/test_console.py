"""The web console (/ui/): its logins in-process, its pages from a running agent, and the
Event Viewer in a real headless Chromium (Debian's chromium and chromedriver, installed
by `make test`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from agent.api.console.sessions import CODE_TTL, MAX_CODES, SESSION_IDLE, ConsoleSessions
from agent.http_tls import client_context
from agent.store.database import Store
from tests.conftest import AgentProcess
from tests.console_pages import (
    browser_client,
    click,
    csrf_of,
    log_in,
    logged_in,
    login_link,
    open_console,
    screenshot,
    text_of,
    type_into,
    until,
)

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
        # Opening the link (as a mail's link checker does) does not use it up.
        with browser_client(agent) as checker:
            assert checker.get(link).status_code == 200
            assert checker.get("/ui/").status_code == 401, "no session from a GET"
        log_in(browser, link)
        assert "Event Viewer" in browser.get("/ui/").text
        cookie = next(c for c in browser.cookies.jar if c.name == "provsync_session")
        assert cookie.path == "/ui"
        assert cookie.has_nonstandard_attr("HttpOnly")
        with browser_client(agent) as other:
            assert other.get(link).status_code == 403, "a link is good once"
            code = link.split("code=", 1)[1]
            assert other.post("/ui/login", data={"code": code}).status_code == 403
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
    with logged_in(agent) as browser:
        page = browser.get("/ui/").text
    assert "&lt;b&gt;x&lt;/b&gt;&amp;&lt;i&gt;" in page
    assert "<b>x</b>" not in page
    assert "Synchronization Failed" in page


# ------------------------------------------------------------------ a real browser
def test_an_alarm_raised_through_the_cli_appears_without_a_reload(
    console_agent: AgentProcess, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    agent = console_agent
    open_console(chromium, agent)
    # "live" only once the page's stream is open (the page says "connecting" before).
    until(chromium, lambda d: d.find_element(By.ID, "live").text == "live")
    page_id = chromium.execute_script("return window.performance.timeOrigin")
    agent.cli("alarms", "raise", "element-unreachable", "--resource", "cs7", "--text", "gone")
    row = '#alarms tr[data-resource="cs7"]'
    shown = text_of(chromium, row, within=2)
    assert chromium.execute_script("return window.performance.timeOrigin") == page_id, (
        "the same page, not a reload"
    )
    assert "major" in shown
    assert "Element Unreachable" in shown
    assert text_of(chromium, "#alarm-count") == "1"
    screenshot(chromium, "event-viewer")
    # Acknowledged from the page with a note, by keyboard and a click.
    type_into(chromium, f"{row} input[name=note]", "looking")
    click(chromium, "//tr[@data-resource='cs7']//button[text()='Acknowledge']")
    until(chromium, lambda _: "by console" in text_of(chromium, row), within=5)


def test_a_login_link_clicked_on_another_site_logs_the_browser_in(
    console_agent: AgentProcess, chromium: Any
) -> None:
    """A link in a mail or a chat is a cross-site navigation: the SameSite=Strict cookie
    must still reach the Event Viewer (it is not sent on a redirect of such a navigation)."""
    from selenium.webdriver.common.by import By

    link = login_link(console_agent)
    chromium.get(f"data:text/html,<a id=go href='{link}'>the console</a>")
    chromium.find_element(By.ID, "go").click()
    until(chromium, lambda d: d.find_element(By.XPATH, "//button[text()='Log in']")).click()
    until(chromium, lambda d: "Event Viewer" in d.title)
    assert chromium.find_element(By.ID, "alarms") is not None


def test_an_open_console_page_does_not_hold_the_agents_stop(console_agent: AgentProcess) -> None:
    agent = console_agent
    with logged_in(agent) as browser, browser.stream("GET", "/ui/stream") as stream:
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
    with logged_in(agent) as browser:
        page = browser.get("/ui/").text
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


def test_the_consoles_refusals_are_pages_not_the_apis_json(console_agent: AgentProcess) -> None:
    agent = console_agent
    with logged_in(agent) as browser:
        csrf = csrf_of(browser.get("/ui/").text)
        answers = {
            "no such page": browser.get("/ui/no-such-page"),
            "wrong method": browser.get("/ui/alarms/1/ack"),
            "a parameter refused": browser.get("/ui/distribution-errors?element=" + "e" * 500),
            "a form value refused": browser.post(
                "/ui/reconcile/resolve", data={"csrf": csrf, "take": "bogus"}
            ),
        }
        for why, answer in answers.items():
            assert answer.status_code in (404, 405, 422), why
            assert answer.headers["content-type"].startswith("text/html"), why
            assert 'href="/ui/"' in answer.text, why
            assert "run <code>provsync console</code>" not in answer.text, (
                f"{why}: the login help is for logging in only"
            )
    with httpx.Client(base_url=agent.url, verify=client_context()) as api:
        assert api.get("/api/v1/no-such-route").headers["content-type"] == "application/json"


# ------------------------------------------------------------------ the banner's rules
def test_a_refused_start_stays_until_that_element_starts_or_is_added_anew(
    sqlite_store: Store,
) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.alarms.catalog import Catalog
    from agent.alarms.manager import AlarmManager
    from agent.api.console.banner import MAX_REFUSALS, _refusals

    manager = AlarmManager(sqlite_store.engine, Catalog())
    manager.start()
    try:

        async def emit(type_id: str, name: str) -> None:
            await manager.emit_event(type_id, name, text=f"{type_id} {name}")

        async def scenario() -> None:
            for name in ("a", "b", "c"):
                await emit("sharing-refused", name)
            await emit("sharing-started", "b")
            # One element refused again and again does not hide the others.
            for _ in range(MAX_REFUSALS + 5):
                await emit("sharing-refused", "d")

        asyncio.run(scenario())
    finally:
        manager.stop()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    created = dict.fromkeys(("a", "b", "c", "d"), long_ago)
    shown = dict(_refusals(sqlite_store.engine, created))
    assert set(shown) == {"a", "c", "d"}, "b started sharing after its refusal"
    assert shown["a"] == "sharing-refused a"
    # c is sharing now (not in `created`); a was added again after its refusal.
    created.pop("c")
    created["a"] = datetime.now(UTC) + timedelta(seconds=1)
    assert [name for name, _ in _refusals(sqlite_store.engine, created)] == ["d"]


def test_a_pages_stream_ends_with_its_session(console_agent: AgentProcess) -> None:
    agent = console_agent
    # A stream that went on would wait for its next event: a read timeout ends the test.
    with (
        logged_in(agent) as browser,
        browser.stream("GET", "/ui/stream", timeout=httpx.Timeout(10, read=5)) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        csrf = csrf_of(browser.get("/ui/").text)
        assert browser.post("/ui/logout", data={"csrf": csrf}).status_code == 200
        # The next commit wakes the stream: it ends instead of telling a logged-out page.
        agent.cli("alarms", "raise", "sync-failed", "--resource", "cm4", "--text", "x")
        rest = list(lines)
    assert "event: changed" not in rest, rest


def test_console_answers_carry_a_content_security_policy(console_agent: AgentProcess) -> None:
    agent = console_agent
    with logged_in(agent) as browser:
        for path in ("/ui/", "/ui/static/console.js", "/ui/fragments/banners", "/ui/nope"):
            headers = browser.get(path).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "no-referrer", path
    with httpx.Client(base_url=agent.url, verify=client_context()) as api:
        assert "content-security-policy" not in api.get("/api/v1/health").headers


def _console_posts() -> list[str]:
    """Every POST of the console's pages, its path parameters filled in."""
    import re

    from fastapi.routing import APIRoute

    from agent.api.console.element_pages import element_router
    from agent.api.console.sharing_pages import sharing_router
    from agent.api.console.viewer_pages import viewer_router

    values = {"action": "ack"}
    posts = []
    for router in (viewer_router(), element_router(), sharing_router()):
        for route in router.routes:
            assert isinstance(route, APIRoute), route  # a nested router would hide its routes
            if "POST" in route.methods:
                path = re.sub(
                    r"\{(\w+)(:\w+)?\}",
                    lambda m: values.get(m.group(1), "1" if m.group(1).endswith("id") else "cm1"),
                    route.path,
                )
                posts.append(f"/ui{path}")
    return posts


def test_every_console_action_needs_its_csrf_token_and_a_session_that_may_act(
    console_agent: AgentProcess,
) -> None:
    agent = console_agent
    posts = [p for p in _console_posts() if p != "/ui/logout"]
    assert len(posts) >= 15, posts  # the pages' actions are all found
    with logged_in(agent) as operator, logged_in(agent, "--read-only") as viewer:
        viewer_csrf = csrf_of(viewer.get("/ui/").text)
        for path in posts:
            forged = operator.post(path, data={"csrf": "forged", "note": "x"})
            assert forged.status_code == 403, (path, forged.status_code, forged.text[:300])
            looking = viewer.post(path, data={"csrf": viewer_csrf, "note": "x"})
            assert looking.status_code == 403, (path, looking.status_code, looking.text[:300])
            assert "read-only" in looking.text, path
    with browser_client(agent) as stranger:
        for path in posts:
            assert stranger.post(path, data={"csrf": "x"}).status_code == 401, path


def test_an_open_page_finds_its_session_gone_after_a_restart_and_asks_to_log_in(
    console_agent: AgentProcess, chromium: Any
) -> None:
    """A restart forgets the sessions: the page's stream is refused (401), which ends an
    EventSource for good; the page must notice and say so, not stay "reconnecting"."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    agent = console_agent
    open_console(chromium, agent)
    until(chromium, lambda d: d.find_element(By.ID, "live").text == "live")
    assert agent.stop() == 0
    agent.start()
    until(
        chromium,
        lambda d: "Log in with a link" in d.find_element(By.TAG_NAME, "body").text,
        within=20,
        ignoring=(StaleElementReferenceException,),  # the page reloads meanwhile
    )


def test_the_consoles_files_have_nothing_its_content_security_policy_blocks() -> None:
    """No inline script or style, event handler attribute or javascript: URL (the policy
    allows the console's own files only; Chromium's tests also check what it blocked)."""
    import re
    from pathlib import Path

    from agent.api.console import common

    for path in sorted(Path(common.HERE).rglob("*")):
        if path.suffix not in (".html", ".js", ".css"):
            continue
        text = path.read_text()
        for pattern in (r"\sstyle=", r"<style", r"\son[a-z]+=", r"javascript:", r"<script>"):
            assert not re.search(pattern, text), (path.name, pattern)
        for script in re.findall(r"<script[^>]*>", text):
            assert 'src="/ui/static/' in script, (path.name, script)
