"""Files a user installs: the systemd unit, the README's commands, the CI entry."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.http_tls import client_context
from tests.conftest import BIN
from tests.waiting import healthy

ROOT = Path(__file__).resolve().parent.parent


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = (ROOT / "etc" / "provsync.service").read_text()
    assert "ExecStart=/opt/provsync/.venv/bin/provsync run" in unit
    local = tmp_path / "provsync.service"
    local.write_text(unit.replace("/opt/provsync/.venv/bin/provsync", str(BIN / "provsync")))
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "provsync.service" not in result.stderr, result.stderr


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, re.MULTILINE)
    assert commands[:2] == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == commands[1]


def test_console_script_and_module_agree() -> None:
    by_script = subprocess.run(
        [str(BIN / "provsync"), "--version"], capture_output=True, text=True, timeout=60
    )
    by_module = subprocess.run(
        [str(BIN / "python"), "-m", "agent", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout
    assert by_script.stdout.startswith("provsync ")


def test_make_run_starts_the_agent(tmp_path: Path) -> None:
    """The README's first command, pointed at a temporary config so it can run here."""
    import os
    import signal
    import time

    import httpx
    import tomli_w

    from tests.conftest import free_port, free_udp_port

    port = free_port()
    config = tmp_path / "provsync.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "agent": {"data_dir": str(tmp_path / "var")},
                "api": {"listen": f"127.0.0.1:{port}"},
                "snmp": {"listen": [f"127.0.0.1:{free_udp_port()}"]},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVSYNC_", "MAKE"))}
    env["VENV"] = str(BIN.parent)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"CONFIG={config}", f"VENV={BIN.parent}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if healthy(f"http://127.0.0.1:{port}"):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        token = (tmp_path / "var" / "api.token").read_text().strip()
        status = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/status",
            headers={"Authorization": f"Bearer {token}"},
            verify=client_context(),
        )
        assert status.status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert "stopped" in output


def test_demo_sets_up_three_elements() -> None:
    import json

    result = subprocess.run(
        [str(BIN / "provsync"), "demo", "--exit-after-setup", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert set(jobs) == {
        "cm1",
        "ipo1",
        "msg1",
        "cm1-incremental",
        "ipo1-incremental",
        "msg1-incremental",
    }
    assert set(jobs.values()) == {"done"}
