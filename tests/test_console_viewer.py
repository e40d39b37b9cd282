"""The Event Viewer's filters and pages, one alarm's page with its history and actions,
over HTTP from a running agent; and the filtered viewer live in a real Chromium."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import AgentProcess
from tests.console_pages import (
    click,
    csrf_of,
    logged_in,
    open_console,
    screenshot,
    text_of,
    type_into,
    until,
)

BATCH = "/api/v1/alarms/batch"


@pytest.fixture
def viewer_agent(agent_factory: Any) -> AgentProcess:
    agent: AgentProcess = agent_factory().start()
    return agent


def _table(page: str, table_id: str) -> str:
    start = page.index(f'<table id="{table_id}">')
    return page[start : page.index("</table>", start)]


def _resources(page: str) -> list[str]:
    """The resources of the alarm table's rows, in the page's order."""
    return re.findall(r'data-resource="([^"]*)"', _table(page, "alarms"))


def _alarm_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr [^>]*data-id="(\d+)"', _table(page, "alarms"))]


def _event_seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', _table(page, "events"))]


def _link(page: str, label: str) -> str | None:
    """The href of the pager link saying ``label``, unescaped (None: not on this page)."""
    found = re.search(rf'<a href="([^"]*)" rel="(?:prev|next)">[^<]*{label}', page)
    return html.unescape(found.group(1)) if found else None


def _raise(api: httpx.Client, *alarms: dict[str, Any]) -> list[dict[str, Any]]:
    made = api.post(BATCH, json={"operations": [{"op": "raise", **a} for a in alarms]})
    assert made.status_code == 200, made.text
    results = made.json()["results"]
    assert all(r["ok"] for r in results), results
    return [r["alarm"] for r in results]


def test_each_filter_narrows_the_tables_and_a_bad_one_is_refused(
    viewer_agent: AgentProcess,
) -> None:
    agent = viewer_agent
    with agent.http() as api:
        _raise(
            api,
            {"type": "sync-failed", "resource": "cm1", "severity": "critical"},
            {"type": "sync-failed", "resource": "cm2"},
            {"type": "element-unreachable", "resource": "cm3"},
        )
        cleared = api.post("/api/v1/alarms/clear", json={"type": "sync-failed", "resource": "cm2"})
        assert cleared.status_code == 200, cleared.text
        assert api.post("/api/v1/test", json={"text": "ping"}).status_code == 200
    with logged_in(agent) as browser:

        def shown(**params: Any) -> str:
            answer = browser.get("/ui/", params=params)
            assert answer.status_code == 200, answer.text
            return answer.text

        assert sorted(_resources(shown())) == ["cm1", "cm3"]
        assert _resources(shown(severity="critical")) == ["cm1"]
        assert sorted(_resources(shown(severity=["critical", "major"]))) == ["cm1", "cm3"]
        assert _resources(shown(type="element-unreachable")) == ["cm3"]
        assert _resources(shown(resource="cm1")) == ["cm1"]
        assert _resources(shown(state="cleared")) == ["cm2"]
        assert sorted(_resources(shown(state="all"))) == ["cm1", "cm2", "cm3"]
        assert _resources(shown(state="all", type="sync-failed", severity="major")) == ["cm2"]
        # What the empty form sends is no filter.
        assert len(_resources(shown(type="", resource="", state=""))) == 2

        # The events table: by type, resource and severity too.
        everything = _table(shown(), "events")
        assert "ping" in everything
        assert "Agent Started" in everything or "agent-started" in everything
        only_test = _table(shown(type="test"), "events")
        assert "ping" in only_test
        assert "agent-started" not in only_test
        assert "Agent Started" not in only_test
        assert "ping" not in _table(shown(resource="nowhere"), "events")

        # The live refresh asks for the same filters, and gets them.
        page = shown(severity="critical", resource="cm1")
        assert 'data-fragment="/ui/fragments/viewer?severity=critical&amp;resource=cm1"' in page
        tables = browser.get("/ui/fragments/viewer?severity=critical&resource=cm1")
        assert _resources(tables.text) == ["cm1"]

        for bad in (
            {"severity": "disastrous"},
            {"state": "gone"},
            {"resource": "x" * 300},
            {"before": "-1"},
            {"events_before": "1e3"},
        ):
            refused = browser.get("/ui/", params=bad)
            assert refused.status_code == 422, bad
            assert refused.headers["content-type"].startswith("text/html")
            assert "Not shown" in refused.text
        assert browser.get("/ui/fragments/viewer?severity=bad").status_code == 422
        assert "one of: critical" in browser.get("/ui/?severity=bad").text


def test_the_alarms_page_back_newest_first_each_seen_once(viewer_agent: AgentProcess) -> None:
    agent = viewer_agent
    with agent.http() as api:
        raised = _raise(api, *({"type": "sync-failed", "resource": f"p{n:03}"} for n in range(120)))
    every = sorted((a["id"] for a in raised), reverse=True)
    with logged_in(agent) as browser:
        first = browser.get("/ui/").text
        assert '<span id="alarm-count">120</span>' in first
        assert 'data-fragment="/ui/fragments/viewer"' in first
        assert _link(first, "newer alarms") is None
        seen, page, pages = _alarm_ids(first), first, [first]
        while (older := _link(page, "older alarms")) is not None:
            page = browser.get(older).text
            pages.append(page)
            seen += _alarm_ids(page)
        assert seen == every, "each alarm once, newest first"
        assert [len(_alarm_ids(p)) for p in pages] == [50, 50, 20]
        # Older pages are not refreshed under the reader's eyes, and say so.
        assert 'data-fragment="/ui/fragments/viewer' not in page
        assert 'id="live"' not in page
        assert "not live" in page
        # And forward again: the newest page, live, at the end.
        back = browser.get(_link(page, "newer alarms") or "").text
        assert _alarm_ids(back) == every[50:100]
        top = browser.get(_link(back, "newer alarms") or "").text
        assert _alarm_ids(top) == every[:50]
        assert 'id="live"' in top


def test_events_page_back_through_the_api_and_the_viewer(viewer_agent: AgentProcess) -> None:
    agent = viewer_agent
    with agent.http() as api:
        for n in range(55):
            assert api.post("/api/v1/test", json={"text": f"e{n}"}).status_code == 200
        everything = api.get("/api/v1/events").json()
        assert len(everything) >= 56, "agent-started and the tests"
        pages: list[list[dict[str, Any]]] = []
        before = 0
        while True:
            page = api.get("/api/v1/events", params={"limit": 20, "before": before}).json()
            if not page:
                break
            assert [e["seq"] for e in page] == sorted(e["seq"] for e in page), "oldest first"
            pages.append(page)
            before = page[0]["seq"]
        assert [e for page in reversed(pages) for e in page] == everything
        assert len(pages[0]) == 20
        only = api.get("/api/v1/events", params={"before": everything[3]["seq"], "type": "test"})
        assert only.json() == [e for e in everything[:3] if e["type"] == "test"]
        assert api.get("/api/v1/events", params={"before": -1}).status_code == 422
    seqs = sorted((e["seq"] for e in everything), reverse=True)
    with logged_in(agent) as browser:
        first = browser.get("/ui/").text
        assert _event_seqs(first) == seqs[:50]
        older = browser.get(_link(first, "older events") or "").text
        assert _event_seqs(older) == seqs[50:]
        assert _link(older, "older events") is None
        assert "not live" in older


def test_the_alarm_page_shows_the_alarm_its_history_and_acts_back_to_itself(
    viewer_agent: AgentProcess,
) -> None:
    agent = viewer_agent
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm1", "--text", "<b>down</b>")
    with agent.http() as api:
        (alarm,) = api.get("/api/v1/alarms").json()
        (described,) = [t for t in api.get("/api/v1/catalog").json() if t["id"] == "sync-failed"]
    path = f"/ui/alarms/{alarm['id']}"
    with logged_in(agent) as browser:
        viewer = browser.get("/ui/").text
        assert f'href="{path}"' in viewer, "each row opens its alarm"
        page = browser.get(path)
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert "Synchronization Failed" in text
        assert described["description"] in text
        assert described["resolution"].split("{resource}")[0] in text
        assert 'href="/ui/elements/cm1#sync"' in page.text, "its resolution link"
        assert "&lt;b&gt;down&lt;/b&gt;" in page.text
        assert "<b>down</b>" not in page.text
        csrf = csrf_of(page.text)

        acked = browser.post(f"{path}/ack", data={"csrf": csrf, "note": "on it", "back": path})
        assert (acked.status_code, acked.headers["location"]) == (303, path)
        cleared = browser.post(
            f"{path}/clear", data={"csrf": csrf, "note": "fixed <now>", "back": path}
        )
        assert (cleared.status_code, cleared.headers["location"]) == (303, path)
        history = _table(browser.get(path).text, "history")
        rows = history.split("<tr ")[1:]
        assert [re.findall(r"<td>([^<]*)</td>", r)[1] for r in rows] == [
            "raised",
            "acknowledged",
            "cleared",
        ]
        assert "<td>console</td><td>on it</td>" in rows[1].replace("\n", "")
        assert "<td>console</td><td>fixed &lt;now&gt;</td>" in rows[2].replace("\n", "")

        # The return address is a console page of this host, or nothing is done.
        for outside in (
            "https://elsewhere.example/ui/",
            "//elsewhere.example/ui/",
            "/\\elsewhere.example/ui/",
            "/ui/../api/v1/alarms",
            "/api/v1/alarms",
        ):
            refused = browser.post(
                f"{path}/unack", data={"csrf": csrf, "note": "", "back": outside}
            )
            assert refused.status_code == 422, outside
            assert "location" not in refused.headers
        with agent.http() as api:
            assert api.get(f"/api/v1/alarms/{alarm['id']}").json()["ack_by"] == "console"

        for unknown in (str(alarm["id"] + 99), "abc", "9" * 40):
            missing = browser.get(f"/ui/alarms/{unknown}")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("text/html")
    with logged_in(agent, "--read-only") as viewer_only:
        assert 'class="act"' not in viewer_only.get(path).text


# ------------------------------------------------------------------ a real browser
def test_a_filtered_viewer_shows_only_matching_alarms_live_and_opens_one_to_act(
    viewer_agent: AgentProcess, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    agent = viewer_agent
    open_console(chromium, agent)
    chromium.get(f"{agent.url}/ui/?severity=critical&state=active")
    until(chromium, lambda d: d.find_element(By.ID, "live").text == "live")
    page_id = chromium.execute_script("return window.performance.timeOrigin")
    agent.cli("alarms", "raise", "sync-failed", "--resource", "other", "--text", "not this")
    agent.cli(
        "alarms", "raise", "element-unreachable", "--resource", "cs9", "--severity", "critical"
    )
    row = '#alarms tr[data-resource="cs9"]'
    text_of(chromium, row, within=2)
    # Fetched after both commits: the major one would be there if the filter were lost.
    assert not chromium.find_elements(By.CSS_SELECTOR, '#alarms tr[data-resource="other"]')
    assert chromium.execute_script("return window.performance.timeOrigin") == page_id
    assert chromium.find_element(By.CSS_SELECTOR, 'input[value="critical"]').is_selected()
    screenshot(chromium, "event-viewer-filtered")

    click(chromium, "//tr[@data-resource='cs9']//a[contains(@class, 'open')]")
    until(chromium, lambda d: "alarm" in d.title)
    type_into(chromium, "form.act input[name=note]", "on my way")
    click(chromium, "//form[@class='act']//button[text()='Acknowledge']")
    until(chromium, lambda _: "on my way" in text_of(chromium, "#history"))
    assert "/ui/alarms/" in chromium.current_url
    history = text_of(chromium, "#history")
    assert "acknowledged" in history
    assert "console" in history
    assert "Unacknowledge" in text_of(chromium, "form.act")
    screenshot(chromium, "alarm")
