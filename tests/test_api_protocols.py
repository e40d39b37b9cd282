"""The event loop and HTTP implementation the agent runs on: chosen by [agent] event_loop
and [api] http, said in the start-up lines, and everything on that loop works with them
(the control API, the SNMP agent on UDP, the exporters, the writer thread's hand-over)."""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.wiring import loop_factory
from tests.conftest import AgentProcess
from tests.netsnmp import run

TABLE = "PROVSYNC-MIB::provsyncNotificationLogTable"


def _wait_log(agent: AgentProcess, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := agent.log_text()):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.05)
    return log


@pytest.mark.parametrize(
    ("loop", "http", "expected_loop"),
    [("auto", "auto", "uvloop"), ("asyncio", "h11", "asyncio"), ("uvloop", "h11", "uvloop")],
)
def test_the_agent_says_which_loop_and_parser_it_runs_and_all_of_it_works(
    agent_factory: Any, loop: str, http: str, expected_loop: str
) -> None:
    expected_http = "httptools" if http == "auto" else http
    agent: AgentProcess = agent_factory(
        {"agent": {"event_loop": loop}, "api": {"http": http}}
    ).start()
    log = _wait_log(agent, "event loop)")
    assert f" {expected_loop} event loop)" in log
    assert f"({expected_http})" in log
    with agent.http() as client:
        raised = client.post("/api/v1/alarms", json={"type": "sync-failed", "resource": "lp"})
        assert raised.status_code == 200, raised.text
        seq = raised.json()["seq"]
        batch = client.post(
            "/api/v1/alarms/batch",
            json={"operations": [{"op": "clear", "type": "sync-failed", "resource": "lp"}]},
        )
        assert batch.json()["results"][0]["ok"] is True
    # The SNMP agent answers on the same loop, with the alarm the API raised.
    deadline = time.monotonic() + 10
    while True:
        walk = run(
            "snmpwalk",
            "-v2c",
            "-c",
            "public",
            "-t",
            "2",
            "-r",
            "1",
            f"127.0.0.1:{agent.snmp_port}",
            TABLE,
        )
        if "alarmCleared(3)" in walk.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "alarmRaised(1)" in walk.stdout, walk.stdout[-2000:] + walk.stderr
    assert "alarmCleared(3)" in walk.stdout
    # And the file exporter delivered both transitions.
    deadline = time.monotonic() + 10
    while True:
        lines = agent.jsonl.read_text().splitlines() if agent.jsonl.exists() else []
        seqs = [json.loads(line)["seq"] for line in lines]
        if seq + 1 in seqs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {seq, seq + 1} <= set(seqs)
    assert agent.stop() == 0
    assert "Traceback" not in agent.log_text()


def test_auto_falls_back_to_the_standard_loop_without_uvloop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def without_uvloop(name: str, *args: Any) -> Any:
        return None if name == "uvloop" else real(name, *args)

    assert loop_factory("auto")[0] == "uvloop"
    monkeypatch.setattr(importlib.util, "find_spec", without_uvloop)
    name, factory = loop_factory("auto")
    assert name == "asyncio"
    loop = factory()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
    with pytest.raises(ConfigError, match="uvloop, which is not installed"):
        loop_factory("uvloop")
