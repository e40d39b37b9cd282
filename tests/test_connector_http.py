"""The built-in http connector, run through the conformance suite against a real
`provsync simulate` process."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.connectors.base import Credentials
from agent.connectors.http import HttpConnector
from agent.connectors.registry import load
from agent.errors import ConfigError, ElementUnreachable
from tests.conftest import BIN, free_port
from tests.connector_conformance import ConnectorConformance


class SimulatedElement:
    def __init__(self, root: Path, objects: int = 300) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        password_file = root / "password"
        password_file.write_text("s3cret-pass\n")
        self.credentials = Credentials("admin", "s3cret-pass")
        self.proc = subprocess.Popen(
            [str(BIN / "provsync"), "simulate", "--port", str(self.port), "--objects",
             str(objects), "--seed", "7", "--username", "admin", "--password-file",
             str(password_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("simulator did not start")

    def connect(self, credentials: Credentials | None) -> HttpConnector:
        return HttpConnector(self.url, credentials, retries=1, backoff=0.05)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        auth = (self.credentials.username, self.credentials.password)
        response = httpx.request(method, f"{self.url}{path}", json=body, auth=auth)
        response.raise_for_status()
        return response.json()

    def change(self, user: str, op: str, cls: str, key: str, data: Any) -> None:
        self.admin("POST", "/admin/changes",
                   {"user": user, "op": op, "class": cls, "key": key, "data": data})  # fmt: skip

    def new_epoch(self) -> None:
        self.admin("POST", "/admin/epoch")

    def reject(self, cls: str, prefix: str, reason: str) -> None:
        self.admin("POST", "/admin/reject", {"class": cls, "key_prefix": prefix, "reason": reason})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def element(tmp_path: Path) -> Iterator[SimulatedElement]:
    simulated = SimulatedElement(tmp_path)
    yield simulated
    simulated.stop()


class TestHttpConnector(ConnectorConformance):
    pass


def test_registry_finds_the_builtin_driver() -> None:
    assert load("http") is HttpConnector
    with pytest.raises(ConfigError, match="no connector 'nope'"):
        load("nope")


def test_unreachable_after_retries_and_faults(element: SimulatedElement) -> None:
    async def scenario() -> None:
        dead = HttpConnector(f"http://127.0.0.1:{free_port()}", element.credentials,
                             retries=2, backoff=0.01)  # fmt: skip
        async with dead:
            with pytest.raises(ElementUnreachable):
                await dead.info()
        element.admin("POST", "/admin/faults", {"fail_every": 2})
        async with element.connect(element.credentials) as flaky:
            for _ in range(4):  # every other request fails: the retry hides it
                assert (await flaky.info()).element_id
        element.admin("POST", "/admin/faults", {"down": True})
        async with element.connect(element.credentials) as down:
            with pytest.raises(ElementUnreachable):
                await down.info()

    asyncio.run(scenario())


def test_simulator_data_is_seeded_and_realistic(element: SimulatedElement) -> None:
    info = element.admin("GET", "/api/v1/info")
    counts = info["counts"]
    assert counts["user"] == counts["station"] == counts["directory-number"] == 90
    assert counts["system-parameter"] == 1
    users = element.admin("GET", "/api/v1/objects/user?limit=3")["objects"]
    assert all("@example.com" in u["data"]["email"] for u in users)
