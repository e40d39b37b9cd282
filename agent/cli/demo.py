"""``provsync demo``: the agent with three simulated elements, to look around."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict

import httpx
import tomli_w

from agent.cli.client import JOB_ENDED, Client
from agent.errors import ProvsyncError
from agent.http_tls import client_context
from agent.store.element_types import CALL_SERVER, MESSAGING, SMALL_OFFICE

ELEMENTS = (("cm1", CALL_SERVER, 2000), ("ipo1", SMALL_OFFICE, 300), ("msg1", MESSAGING, 500))
TOKEN_BYTES = 24
JOB_WAIT = 120


class DemoResult(TypedDict):
    config: str
    # Per sync: done, failed, or timeout when it had not ended in JOB_WAIT seconds.
    jobs: dict[str, str]


def _port(preferred: int, kind: int = socket.SOCK_STREAM) -> int:
    """``preferred`` when it is free, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise ProvsyncError("no free port for the demo")


def _wait(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, verify=client_context()).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise ProvsyncError(f"{url} did not start")


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)


def command_name(executable: Path, search_path: str | None) -> str:
    """How the printed commands call provsync: bare ``provsync`` when ``search_path`` (the
    PATH) finds this very executable, else its full path, so that each one runs as pasted
    (the demo started as ``.venv/bin/provsync demo`` has no ``provsync`` on the PATH)."""
    found = shutil.which("provsync", path=search_path)
    if found is not None and Path(found).resolve() == executable.resolve():
        return "provsync"
    return str(executable)


def run_demo(
    say: Callable[[str], None], *, stay: bool = True, root: Path | None = None
) -> DemoResult:
    """Start everything, sync, change, sync again; then wait for Ctrl-C if ``stay``."""
    import secrets

    provsync = str(Path(sys.executable).parent / "provsync")
    with contextlib.ExitStack() as stack:
        where = root or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="provsync-demo-"))
        )
        procs = stack.enter_context(_processes())
        password = secrets.token_urlsafe(12)
        (where / "element-password").write_text(password)
        api_port, snmp_port = _port(8163), _port(1161, socket.SOCK_DGRAM)
        config = where / "provsync.toml"
        config.write_text(
            tomli_w.dumps(
                {
                    "agent": {"data_dir": str(where / "var"), "log_level": "WARNING"},
                    "api": {
                        "listen": f"127.0.0.1:{api_port}",
                        "token": secrets.token_urlsafe(TOKEN_BYTES),
                    },
                    "snmp": {
                        "listen": [f"127.0.0.1:{snmp_port}"],
                        "communities": [{"name": "public"}],
                    },
                    "exporters": {"file": [{"path": "notifications.jsonl", "name": "jsonl"}]},
                }
            )
        )
        urls = {}
        for index, (name, element_type, objects) in enumerate(ELEMENTS):
            port = _port(9001 + index)
            procs.append(
                subprocess.Popen(
                    [
                        provsync,
                        "simulate",
                        "--port",
                        str(port),
                        "--type",
                        element_type,
                        "--objects",
                        str(objects),
                        "--seed",
                        str(index + 1),
                        "--element-id",
                        name,
                        "--password-file",
                        str(where / "element-password"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls[name] = f"http://127.0.0.1:{port}"
        with (where / "agent.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    [provsync, "--config", str(config), "run"],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
        for url in urls.values():
            _wait(f"{url}/api/v1/health")
        _wait(f"http://127.0.0.1:{api_port}/api/v1/health")
        token = tomli_w_token(config)
        api = stack.enter_context(Client(f"http://127.0.0.1:{api_port}", token, timeout=60))
        say("adding three simulated elements; each gets an initialization sync")
        jobs = {}
        for name, element_type, _ in ELEMENTS:
            added = api.add_element(
                {
                    "name": name,
                    "type": element_type,
                    "url": urls[name],
                    "username": "admin",
                    "password": password,
                }
            )
            jobs[name] = added["job"]
        results = {name: _job(api, job) for name, job in jobs.items()}
        say("making changes on the elements as their own administrators, then syncing")
        for name, url in urls.items():
            with httpx.Client(
                base_url=url, auth=("admin", password), verify=client_context()
            ) as element:
                for index in range(5):
                    element.post(
                        "/admin/changes",
                        json={
                            "user": "tech",
                            "op": "create",
                            "class": "station",
                            "key": f"8{index:04d}",
                            "data": {"number": f"8{index:04d}"},
                        },
                    )
            job = api.sync(name, "incremental")["job"]
            results[f"{name}-incremental"] = _job(api, job)
        shown = command_name(Path(provsync), os.environ.get("PATH"))
        command = f"PROVSYNC_CONFIG={config} {shown}"
        say(
            "\nprovsync is running with three simulated elements. Look around:\n"
            f"  {command} elements list\n"
            f"  {command} jobs list\n"
            f"  {command} events list\n"
            f"  {command} alarms raise sync-failed --resource cm1 --text demo\n"
            f"  {command} alarms list\n"
            f"  snmptable -v2c -c public 127.0.0.1:{snmp_port} "
            f"PROVSYNC-MIB::provsyncActiveAlarmTable   (after `{shown} mib export`)\n"
            f"  tail -f {where / 'var' / 'notifications.jsonl'}\n"
        )
        if stay:
            say("Ctrl-C stops the demo and removes its files.")
            with contextlib.suppress(KeyboardInterrupt):
                while all(p.poll() is None for p in procs):
                    time.sleep(0.5)
        return {"config": str(config), "jobs": results}


def tomli_w_token(config: Path) -> str:
    import tomllib

    token: str = tomllib.loads(config.read_text())["api"]["token"]
    return token


def _job(api: Client, job_id: int) -> str:
    state = api.wait_job(job_id, JOB_WAIT, poll=0.1)["state"]
    return state if state in JOB_ENDED else "timeout"
