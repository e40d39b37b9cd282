"""The built-in http connector, run through the conformance suite against a real
`provsync simulate` process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.connectors.http import HttpConnector
from agent.connectors.registry import load
from agent.errors import ConfigError, ConnectorError, ElementUnreachable
from tests.conftest import free_port
from tests.connector_conformance import ConnectorConformance
from tests.simulated import SimulatedElement


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
            # An answer is not retried, even a 500: only transport errors are.
            errors = []
            for _ in range(4):
                try:
                    await flaky.info()
                except ConnectorError as exc:
                    errors.append(str(exc))
            assert len(errors) == 2
            assert all("500" in e for e in errors)
        element.admin("POST", "/admin/faults", {"down": True})
        async with element.connect(element.credentials) as down:
            with pytest.raises(ConnectorError, match="503"):
                await down.info()

    asyncio.run(scenario())


def test_simulator_data_is_seeded_and_realistic(element: SimulatedElement) -> None:
    info = element.admin("GET", "/api/v1/info")
    counts = info["counts"]
    assert counts["user"] == counts["station"] == counts["directory-number"] == 90
    assert counts["system-parameter"] == 1
    users = element.admin("GET", "/api/v1/objects/user?limit=3")["objects"]
    assert all("@example.com" in u["data"]["email"] for u in users)


def test_an_element_trickling_its_answer_times_out() -> None:
    """A byte every 50 ms keeps each of httpx's reads within its timeout for ever: the
    attempt as a whole is bounded by the connector's timeout, then retried, then given up."""

    handlers: list[asyncio.Task[Any]] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000000\r\n\r\n{")  # fmt: skip
            with contextlib.suppress(ConnectionError):
                while True:
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.05)
        finally:
            writer.close()

    async def scenario() -> float:
        server = await asyncio.start_server(trickle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        slow = HttpConnector(f"http://127.0.0.1:{port}", None, timeout=0.3, retries=1,
                             backoff=0.01)  # fmt: skip
        started = time.monotonic()
        try:
            async with slow:
                with pytest.raises(ElementUnreachable, match=r"no complete answer within 0\.3 s"):
                    await asyncio.wait_for(slow.info(), 10)
        finally:
            server.close()
            for handler in handlers:
                handler.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
        return time.monotonic() - started

    # Two attempts of 0.3 s and the backoff; without the bound, wait_for's 10 s ran out.
    assert asyncio.run(scenario()) < 3
