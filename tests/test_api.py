"""The control API of a running agent, over HTTP on loopback."""

from __future__ import annotations

import httpx

from agent.http_tls import client_context
from tests.conftest import AgentProcess


def test_token_is_required(agent: AgentProcess) -> None:
    assert httpx.get(f"{agent.url}/api/v1/health", verify=client_context()).json() == {
        "status": "ok"
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        response = httpx.get(f"{agent.url}/api/v1/alarms", headers=headers, verify=client_context())
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["error"]
    response = httpx.post(
        f"{agent.url}/api/v1/alarms",
        json={"type": "sync-failed", "resource": "x"},
        verify=client_context(),
    )
    assert response.status_code == 401
    with agent.http() as http:
        assert http.get("/api/v1/alarms").json() == []


def test_raise_list_show_clear(agent: AgentProcess) -> None:
    with agent.http() as http:
        raised = http.post(
            "/api/v1/alarms",
            json={"type": "element-unreachable", "resource": "cm1", "text": "timeout"},
        ).json()
        alarm_id = raised["alarm"]["id"]
        assert raised["change"] == "raised"
        http.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "cm2"})
        http.post(
            "/api/v1/alarms",
            json={"type": "sync-required", "resource": "g1", "severity": "warning"},
        )
        major = http.get("/api/v1/alarms", params={"severity": "major"}).json()
        assert {a["resource"] for a in major} == {"cm1", "cm2"}
        by_type = http.get("/api/v1/alarms", params={"type": "sync-required"}).json()
        assert by_type[0]["severity"] == "warning"
        assert http.get("/api/v1/alarms", params={"resource": "cm2"}).json()[0]["type"] == (
            "sync-failed"
        )
        acked = http.post(f"/api/v1/alarms/{alarm_id}/ack", json={"by": "ops", "note": "n"})
        assert acked.json()["alarm"]["operator_state"] == "acknowledged"
        cleared = http.post(f"/api/v1/alarms/{alarm_id}/clear", json={"note": "back"}).json()
        assert cleared["alarm"]["state"] == "cleared"
        shown = http.get(f"/api/v1/alarms/{alarm_id}").json()
        assert [h["change"] for h in shown["history"]] == ["raised", "acknowledged", "cleared"]
        assert len(http.get("/api/v1/alarms").json()) == 2
        assert len(http.get("/api/v1/alarms", params={"state": "all"}).json()) == 3
        key = {"type": "sync-failed", "resource": "cm2"}
        assert http.post("/api/v1/alarms/clear", json=key).status_code == 200
        status = http.get("/api/v1/status").json()
        assert status["active_alarms"]["total"] == 1
        assert status["active_alarms"]["minor"] == 0
        assert status["active_alarms"]["warning"] == 1


def test_bad_input_is_refused_whole(agent: AgentProcess) -> None:
    with agent.http() as http:
        cases = [
            ({"type": "nope", "resource": "x"}, 400, "unknown alarm type"),
            ({"type": "test", "resource": "x"}, 400, "event type"),
            ({"type": "sync-failed"}, 422, "resource"),
            ({"type": "sync-failed", "resource": "x", "severity": "loud"}, 422, "severity"),
            ({"type": "sync-failed", "resource": "x", "extra": 1}, 422, "extra"),
            ({"type": "sync-failed", "resource": "x", "severity": "cleared"}, 400, "cleared"),
        ]
        for body, status, needle in cases:
            response = http.post("/api/v1/alarms", json=body)
            assert response.status_code == status, (body, response.text)
            assert needle in response.json()["error"], response.text
        response = http.post(
            "/api/v1/alarms", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert http.post("/api/v1/alarms/424242/clear").status_code == 404
        assert http.post("/api/v1/alarms/424242/ack").status_code == 404
        assert http.get("/api/v1/alarms/424242").status_code == 404
        assert http.get("/api/v1/alarms", params={"state": "gone"}).status_code == 422
        assert http.get("/api/v1/alarms", params={"severity": "loud"}).status_code == 400
        missing = http.post("/api/v1/alarms/clear", json={"type": "sync-failed", "resource": "q"})
        assert missing.status_code == 404
        # Nothing was half-applied: the log holds only the agent-started event.
        assert http.get("/api/v1/alarms", params={"state": "all"}).json() == []
        assert http.get("/api/v1/status").json()["last_seq"] == 1


def test_events_and_test_notification(agent: AgentProcess) -> None:
    with agent.http() as http:
        sent = http.post("/api/v1/test", json={"text": "ping", "by": "me"}).json()
        assert sent["targets"] == ["jsonl"]
        events = http.get("/api/v1/events").json()
        assert [e["type"] for e in events] == ["agent-started", "test"]
        assert events[-1]["text"] == "ping"
        assert events[-1]["seq"] == sent["seq"]
        only = http.get("/api/v1/events", params={"type": "test"}).json()
        assert len(only) == 1


def test_catalog_and_openapi(agent: AgentProcess) -> None:
    with agent.http() as http:
        catalog = http.get("/api/v1/catalog").json()
        assert {"sync-failed", "exporter-backlog", "test"} <= {t["id"] for t in catalog}
        schema = http.get("/openapi.json").json()
        assert "/api/v1/alarms" in schema["paths"]
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
