"""Frictions seen while trying the CLI (issue 14, item 14), each against a running agent
or, where it is a pure rule, in-process."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import forked
from tests.conftest import AgentProcess, free_port
from tests.simulated import SimulatedElement

ROOT = Path(__file__).resolve().parent.parent
PATH_LINE = 'export PATH="$PWD/.venv/bin:$PATH"'


def as_json(agent: AgentProcess, *args: str) -> Any:
    return json.loads(agent.cli(*args, "--json").stdout)


def words(text: str) -> str:
    """Help or table text with its boxes and line folds taken out."""
    return " ".join(re.sub(r"[│┃─━╭╮╰╯┏┓┗┛┡┩└┘┌┐]", " ", text).split())


def _unreachable(agent: AgentProcess, name: str, *options: str) -> dict[str, Any]:
    """An element nothing answers for: its initialization fails at once; the job, ended."""
    url = f"http://127.0.0.1:{free_port()}"
    added = as_json(agent, "elements", "add", name, "--url", url, *options)
    return agent.wait_job(int(added["job"]))


# ----------------------------------------------------------------- one way to run the CLI
def test_the_readme_runs_the_cli_one_way_and_says_how_once() -> None:
    text = (ROOT / "README.md").read_text()
    assert ".venv/bin/provsync" not in text
    assert text.count(PATH_LINE) == 1
    commands = [
        line.strip()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if "provsync " in line and not line.lstrip().startswith("#")
    ]
    assert commands, "the README shows commands"
    for line in commands:
        if line.startswith(("MIBDIRS", "snmptable", "curl", "sleep")):
            continue
        assert line.startswith(("provsync ", PATH_LINE)), line


def test_the_demo_prints_commands_that_run_where_it_was_started(tmp_path: Path) -> None:
    """Bare ``provsync`` when the PATH finds this very executable, else its full path."""
    from agent.cli.demo import command_name

    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    executable = bin_dir / "provsync"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    assert command_name(executable, "/usr/bin:/bin") == str(executable)
    assert command_name(executable, f"{bin_dir}:/usr/bin") == "provsync"
    other = tmp_path / "other"
    other.mkdir()
    (other / "provsync").write_text("#!/bin/sh\n")
    (other / "provsync").chmod(0o755)
    assert command_name(executable, f"{other}:{bin_dir}") == str(executable)


# ----------------------------------------------------------------- schedules
def test_set_schedule_says_no_schedule_for_0s(agent: AgentProcess) -> None:
    _unreachable(agent, "e1", "--interval", "1h")
    none = agent.cli("elements", "set-schedule", "e1", "--interval", "0s").stdout
    assert "no schedule" in none
    assert "every" not in none
    assert "every 2h" in agent.cli("elements", "set-schedule", "e1", "--interval", "2h").stdout
    cron = agent.cli("elements", "set-schedule", "e1", "--cron", "0 2 * * *").stdout
    assert "cron 0 2 * * * (UTC)" in cron


def _wide(agent: AgentProcess, *args: str) -> str:
    """A command's output on a terminal wide enough for each table cell on one line (the
    tests' environment says 80 columns)."""
    result = forked.run(list(args), env={**agent.env(), "COLUMNS": "200"}, cwd=agent.root)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_listings_show_when_the_next_scheduled_sync_is_due(agent: AgentProcess) -> None:
    job = _unreachable(agent, "e1", "--interval", "1h")
    assert job["state"] == "failed"
    (listed,) = as_json(agent, "elements", "list")
    # The schedule's own rule: an interval after the last attempt, failed or not.
    since = max(_at(job["ended"]), _at(listed["created_at"]))
    due = since + timedelta(hours=1)
    assert _at(listed["next_sync_at"]) == due
    assert _at(as_json(agent, "elements", "show", "e1")["next_sync_at"]) == due
    with agent.http() as http:
        (from_api,) = http.get("/api/v1/elements").json()
    assert _at(from_api["next_sync_at"]) == due
    table = words(_wide(agent, "elements", "list"))
    assert "next sync" in table
    assert due.strftime("%Y-%m-%d %H:%M:%S") in table

    agent.cli("elements", "set-schedule", "e1", "--interval", "0s")
    (unscheduled,) = as_json(agent, "elements", "list")
    assert unscheduled["next_sync_at"] is None
    assert "no schedule" in words(_wide(agent, "elements", "list"))
    assert "no schedule" in words(_wide(agent, "elements", "show", "e1"))


# ----------------------------------------------------------------- sync
def test_sync_wait_prints_its_counts_unwrapped(agent: AgentProcess, tmp_path: Path) -> None:
    element = SimulatedElement(tmp_path / "sim", objects=60)
    try:
        password = tmp_path / "password"
        password.write_text("s3cret-pass\n")
        added = as_json(
            agent,
            "elements",
            "add",
            "cm1",
            "--url",
            element.url,
            "--username",
            "admin",
            "--password-file",
            str(password),
        )
        assert agent.wait_job(int(added["job"]))["state"] == "done"
        # A narrow terminal: people's lines may fold, JSON must not.
        narrow = {**agent.env(), "COLUMNS": "40"}
        result = forked.run(["sync", "init", "cm1", "--wait"], env=narrow, cwd=agent.root)
    finally:
        element.stop()
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    head, counts = line.split(": ", 1)
    assert re.fullmatch(r"job \d+ init done", head)
    job_id = int(head.split()[1])
    with agent.http() as http:
        assert json.loads(counts) == http.get(f"/api/v1/jobs/{job_id}").json()["counts"]


def test_only_force_offers_dry_run_and_yes(agent: AgentProcess) -> None:
    for kind in ("init", "incremental"):
        shown = agent.cli("sync", kind, "--help").stdout
        assert "--dry-run" not in shown, kind
        assert "--yes" not in shown, kind
        refused = agent.cli("sync", kind, "e1", "--yes", check=False)
        assert refused.returncode == 2, kind
        assert "--yes" in refused.stderr
    force = agent.cli("sync", "force", "--help").stdout
    assert "--dry-run" in force
    assert "--yes" in force
    _unreachable(agent, "e1")
    with agent.http() as http:
        answer = http.post("/api/v1/elements/e1/sync", json={"kind": "init", "dry_run": True})
    assert answer.status_code == 422
    assert "force" in answer.text


# ----------------------------------------------------------------- element types
PRODUCTS = {
    "call-server": ["Communication Manager", "MiVoice Business"],
    "small-office": ["IP Office"],
    "messaging": ["Messaging", "Communication Manager Messaging", "NuPoint UM"],
}


@pytest.mark.parametrize("command", [["elements", "add"], ["simulate"]])
def test_type_help_lists_each_type_with_its_products(
    agent: AgentProcess, command: list[str]
) -> None:
    shown = words(agent.cli(*command, "--help").stdout)
    for element_type, products in PRODUCTS.items():
        found = re.search(rf"{element_type} = ([^;]*)", shown)
        assert found, (element_type, shown)
        for product in products:
            assert product in found.group(1), (element_type, product)


def test_the_cli_offers_every_element_type_the_agent_takes() -> None:
    from agent.cli.element_kinds import PRODUCTS as KNOWN
    from agent.cli.element_kinds import ElementType
    from agent.store.element_types import ELEMENT_TYPES

    assert [t.value for t in ElementType] == list(ELEMENT_TYPES)
    assert list(KNOWN) == list(ELEMENT_TYPES)


def test_an_unknown_type_is_bad_usage_naming_the_types(agent: AgentProcess) -> None:
    bad = agent.cli(
        "elements", "add", "x1", "--url", "http://127.0.0.1:9", "--type", "pbx", check=False
    )
    assert bad.returncode == 2
    for element_type in PRODUCTS:
        assert element_type in bad.stderr
    assert as_json(agent, "elements", "list") == []


# ----------------------------------------------------------------- alarms list
def test_alarms_list_shows_every_alarm_or_says_it_stopped(agent: AgentProcess) -> None:
    with agent.http() as http:
        for first in (0, 1000):
            count = 1000 if first == 0 else 5
            operations = [
                {"op": "raise", "type": "sync-failed", "resource": f"r{first + i:04d}"}
                for i in range(count)
            ]
            answer = http.post("/api/v1/alarms/batch", json={"operations": operations})
            assert answer.status_code == 200, answer.text
    listed = as_json(agent, "alarms", "list")
    assert len(listed) == 1005
    assert len({a["id"] for a in listed}) == 1005
    assert "Alarms (active): 1005" in agent.cli("alarms", "list").stdout

    limited = agent.cli("alarms", "list", "--limit", "10")
    assert "Alarms (active): 10" in limited.stdout
    assert "--limit" in limited.stderr
    assert "more" in limited.stderr
    assert len(as_json(agent, "alarms", "list", "--limit", "10")) == 10
    exact = agent.cli("alarms", "list", "--limit", "1005")
    assert exact.stderr == ""
