"""What a user does with the CLI against a running agent, and across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, AgentProcess
from tests.tcp_proxy import tcp_proxy


def as_json(agent: AgentProcess, *args: str) -> Any:
    return json.loads(agent.cli(*args, "--json").stdout)


def jsonl(agent: AgentProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in agent.jsonl.read_text().splitlines()]


def test_alarm_life_cycle_through_the_cli(agent: AgentProcess) -> None:
    assert agent.cli("status").returncode == 0
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm1", "--text", "job 7 failed")
    agent.cli("alarms", "raise", "sync-failed", "--resource", "cm1", "--text", "job 7 failed")
    (alarm,) = as_json(agent, "alarms", "list")
    assert (alarm["type"], alarm["resource"], alarm["count"]) == ("sync-failed", "cm1", 2)
    assert alarm["severity"] == "major"
    alarm_id = str(alarm["id"])

    acked = as_json(agent, "alarms", "ack", alarm_id, "--note", "looking", "--user", "alice")
    assert acked["alarm"]["ack_by"] == "alice"
    unacked = as_json(agent, "alarms", "unack", alarm_id)
    assert unacked["alarm"]["operator_state"] == "none"
    agent.cli("alarms", "clear", alarm_id, "--note", "fixed")
    assert as_json(agent, "alarms", "list") == []
    (cleared,) = as_json(agent, "alarms", "list", "--all")
    assert cleared["state"] == "cleared"
    shown = as_json(agent, "alarms", "show", alarm_id)
    assert [h["change"] for h in shown["history"]][-1] == "cleared"

    agent.cli("alarms", "raise", "auth-failed-missing", "-r", "cm2", "-q", "mitai")
    agent.cli("alarms", "clear", "auth-failed-missing", "--resource", "cm2", "--qualifier", "mitai")
    assert as_json(agent, "alarms", "list", "--cleared")[-1]["type"] == "auth-failed-missing"

    agent.cli("alarms", "test", "--text", "hello targets")
    events = as_json(agent, "events", "list")
    assert [e["type"] for e in events] == ["agent-started", "test"]
    assert as_json(agent, "events", "list", "--type", "test")[0]["text"] == "hello targets"

    # People get tables; the catalog lists every type.
    table = agent.cli("alarms", "list", "--all").stdout
    assert "sync-failed" in table
    assert "cm1" in table
    assert "exporter-backlog" in agent.cli("catalog").stdout

    agent.stop()
    lines = jsonl(agent)
    seqs = [line["seq"] for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = [line["kind"] for line in lines]
    assert kinds.count("alarm-raised") == 2
    assert kinds.count("alarm-cleared") == 2
    assert lines[-1]["type"] == "agent-stopping"


def test_refusals_exit_non_zero_with_one_line(agent: AgentProcess) -> None:
    bad = agent.cli("alarms", "raise", "no-such", "--resource", "x", check=False)
    assert bad.returncode == 1
    assert "unknown alarm type 'no-such'" in bad.stderr
    missing = agent.cli("alarms", "clear", "sync-failed", "-r", "nothing", check=False)
    assert missing.returncode == 1
    assert "no active sync-failed alarm" in missing.stderr
    no_resource = agent.cli("alarms", "clear", "sync-failed", check=False)
    assert no_resource.returncode == 2
    assert agent.cli("alarms", "ack", "999", check=False).returncode == 1


def test_site_alarm_types_from_the_config(agent_factory: Any) -> None:
    site = [{"id": "site-door-open", "name": "Door Open", "severity": "warning"}]
    agent = agent_factory({"alarm_types": site}).start()
    raised = as_json(agent, "alarms", "raise", "site-door-open", "--resource", "room-2")
    assert raised["alarm"]["severity"] == "warning"
    ids = {t["id"] for t in as_json(agent, "catalog")}
    assert "site-door-open" in ids


def test_everything_survives_a_restart(agent: AgentProcess) -> None:
    agent.cli("alarms", "raise", "element-unreachable", "-r", "cm1")
    raised = as_json(agent, "alarms", "raise", "sync-failed", "-r", "cm2")
    agent.cli("alarms", "ack", str(raised["alarm"]["id"]), "--note", "n1")
    before = as_json(agent, "alarms", "list", "--all")
    assert agent.stop() == 0
    down = agent.cli("status", check=False)
    assert down.returncode == 1
    assert "not running" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1

    agent.start()
    assert as_json(agent, "alarms", "list", "--all") == before
    after = as_json(agent, "alarms", "raise", "sync-failed", "-r", "cm3")
    assert after["alarm"]["id"] > max(a["id"] for a in before)
    types = [e["type"] for e in as_json(agent, "events", "list")]
    assert types == ["agent-started", "agent-stopping", "agent-started"]
    agent.cli("stop")
    assert agent.proc is not None
    assert agent.proc.wait(30) == 0
    seqs = [line["seq"] for line in jsonl(agent)]
    assert seqs == list(range(1, len(seqs) + 1)), "the exporter resumed from its cursor"


def test_sigint_stops_gracefully(agent: AgentProcess) -> None:
    assert agent.stop(signal.SIGINT) == 0
    assert jsonl(agent)[-1]["type"] == "agent-stopping"
    assert "stopped" in agent.log_text()


def test_second_agent_on_the_same_store_is_refused(agent: AgentProcess) -> None:
    other = subprocess.run(
        [str(BIN / "provsync"), "run"],
        env={**agent.env(), "PROVSYNC_CONFIG": str(agent.config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 1
    assert "in use by another provsync agent" in other.stderr
    assert agent.cli("status").returncode == 0


def test_generated_token_file(tmp_path: Path) -> None:
    """With no token in the config, the agent makes one and the local CLI finds it."""
    from tests.conftest import free_port

    port = free_port()
    config = tmp_path / "p.toml"
    config.write_text(
        f'[agent]\ndata_dir = "{tmp_path / "d"}"\n[api]\nlisten = "127.0.0.1:{port}"\n'
        "[snmp]\nenabled = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVSYNC_")}
    env["PROVSYNC_CONFIG"] = str(config)
    proc = subprocess.Popen(
        [str(BIN / "provsync"), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        token_file = tmp_path / "d" / "api.token"
        for _ in range(300):
            status = subprocess.run(
                [str(BIN / "provsync"), "status"], env=env, capture_output=True, timeout=30
            )
            if status.returncode == 0:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert status.returncode == 0
        assert token_file.stat().st_mode & 0o077 == 0
        token = token_file.read_text().strip()
        wrong = subprocess.run(
            [str(BIN / "provsync"), "--token", "bad", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert wrong.returncode == 1
        assert "token" in wrong.stderr
        assert token not in wrong.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert token.encode() not in err, "the token never appears in the log"


def test_status_names_the_store_state(agent: AgentProcess) -> None:
    shown = agent.cli("status").stdout
    assert "(owned)" in shown
    assert "active alarms:" in shown


@pytest.mark.postgres
def test_status_while_the_store_is_fenced(agent_factory: Any, pg_url: str) -> None:
    """A fenced store has no alarm counts: status says so, exits 0, no traceback."""
    with tcp_proxy("127.0.0.1", 5432) as proxy:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        agent: AgentProcess = agent_factory({"store": {"url": url}}).start()
        proxy.cut_now()
        try:
            deadline = time.monotonic() + 10
            while '"fenced"' not in agent.cli("status", "--json", check=False).stdout:
                assert time.monotonic() < deadline, "the store is not fenced within 10 s"
                time.sleep(0.1)
            shown = agent.cli("status", check=False)
        finally:
            proxy.resume()
        assert shown.returncode == 0, shown.stderr
        assert "Traceback" not in shown.stdout + shown.stderr
        assert "(fenced)" in shown.stdout
        assert "active alarms: unknown" in shown.stdout
        assert agent.stop() == 0
