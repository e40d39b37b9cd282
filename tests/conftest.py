"""Shared fixtures: stores on SQLite and on the local PostgreSQL, and a real agent process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import tomli_w

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.http_tls import client_context
from agent.store.database import Store
from tests import forked
from tests.forked import Forked
from tests.waiting import healthy

# The console's browser fixture (chromium) for every test module.
pytest_plugins = ["tests.console_pages"]

PG_ADMIN_URL = os.environ.get("PROVSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent
TOKEN = "test-token-" + uuid.uuid4().hex


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nothing is bound to (of ``kind``: TCP unless told), as the kernel
    picks one: free when this returns, not reserved afterwards."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: most of their time is waiting (an outage, a restart), so on
    parallel workers they overlap the rest instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# ------------------------------------------------------------------ PostgreSQL
@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    """The admin URL of the local PostgreSQL, or a skip that says why there is none."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL} on this machine: {exc}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = f"provsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'provsync.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A store on SQLite only, for rules that do not depend on the database."""
    opened = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def manager(store: Store) -> Iterator[AlarmManager]:
    started = AlarmManager(store.engine, Catalog())
    started.start()
    yield started
    started.stop()


# ------------------------------------------------------------------ agent process
class AgentProcess:
    """``provsync run`` as a child process on free loopback ports."""

    def __init__(self, root: Path, extra: dict[str, Any] | None = None) -> None:
        self.root = root
        self.data_dir = root / "var"
        self.port = free_port()
        self.snmp_port = free_udp_port()
        self.config = root / "provsync.toml"
        self.log = root / "agent.log"
        document: dict[str, Any] = {
            "agent": {"data_dir": str(self.data_dir), "shutdown_timeout": "10s"},
            "api": {"listen": f"127.0.0.1:{self.port}", "token": TOKEN},
            "snmp": {
                "listen": [f"127.0.0.1:{self.snmp_port}"],
                "communities": [{"name": "public"}],
                "heartbeat_interval": "0s",
            },
            "exporters": {
                "poll_interval": "100ms",
                "retry_initial": "100ms",
                "retry_max": "1s",
                "file": [{"name": "jsonl", "path": "notifications.jsonl", "max_bytes": 1 << 30}],
            },
        }
        for section, values in (extra or {}).items():
            if isinstance(values, dict):
                document.setdefault(section, {}).update(values)
            else:
                document[section] = values
        self.config.write_text(tomli_w.dumps(document))
        self.proc: Forked | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jsonl(self) -> Path:
        return self.data_dir / "notifications.jsonl"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVSYNC_")}
        env["PROVSYNC_CONFIG"] = str(self.config)
        return env

    def start(self, wait: bool = True, setup: Callable[[], None] | None = None) -> AgentProcess:
        """``provsync run``; ``setup`` runs in the child first (tests/forked.py)."""
        self.proc = Forked(
            ["run", "--config", str(self.config)],
            env=self.env(),
            cwd=self.root,
            stdout=self.log,
            setup=setup,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()}")
            if healthy(self.url):
                return
            time.sleep(0.05)
        raise AssertionError(f"agent not ready in {timeout}s:\n{self.log_text()}")

    def wait_job(self, job_id: int, within: float = 60.0) -> dict[str, Any]:
        """The job as ``GET /api/v1/jobs/{id}`` shows it once it has ended (done or failed:
        the caller asserts which it expects)."""
        deadline = time.monotonic() + within
        with self.http() as http:
            while time.monotonic() < deadline:
                job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
                if job["state"] in ("done", "failed"):
                    return job
                time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish in {within}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"agent did not stop on signal {sig}:\n{self.log_text()}"
            ) from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = forked.run(list(args), env=self.env(), cwd=self.root)
        if check and result.returncode != 0:
            raise AssertionError(
                f"provsync {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            verify=client_context(),
        )


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Any]:
    agents: list[AgentProcess] = []

    def make(extra: dict[str, Any] | None = None, root: Path | None = None) -> AgentProcess:
        where = root or tmp_path / f"agent{len(agents)}"
        where.mkdir(parents=True, exist_ok=True)
        agent = AgentProcess(where, extra)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait()


@pytest.fixture
def agent(agent_factory: Any) -> AgentProcess:
    started: AgentProcess = agent_factory().start()
    return started


@pytest.fixture
def trapd(tmp_path: Path) -> Iterator[Any]:
    """A real snmptrapd on a free port, with the v3 user the SNMP tests send as."""
    from tests.test_snmp_traps import Trapd  # not at the top: that module imports this one

    receiver = Trapd(tmp_path)
    receiver.start()
    yield receiver
    receiver.stop()
