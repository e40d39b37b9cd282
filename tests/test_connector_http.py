"""The built-in http connector, run through the conformance suite against a real
`provsync simulate` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.connectors.http import HttpConnector
from agent.connectors.registry import load
from agent.errors import ConfigError, ConnectorError, ElementUnreachable, MalformedAnswer
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
        dead = HttpConnector(
            f"http://127.0.0.1:{free_port()}", element.credentials, retries=2, backoff=0.01
        )
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
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\n\r\n{"
            )
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
        slow = HttpConnector(f"http://127.0.0.1:{port}", None, timeout=0.3, retries=1, backoff=0.01)
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


GOOD_INFO = {
    "element_id": "cs-1",
    "type": "call-server",
    "software_version": "2.1",
    "epoch": "e1",
    "classes": ["user"],
    "last_seq": 4,
    "counts": {"user": 3},
}
GOOD_CHANGE = {
    "seq": 5,
    "time": "2026-01-02T03:04:05Z",
    "user": "admin",
    "op": "update",
    "class": "user",
    "key": "u1",
    "data": {"name": "Ada"},
}


def _answering(content: bytes) -> HttpConnector:
    """A connector whose element answers every request with 200 and these bytes."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"Content-Type": "application/json"})

    return HttpConnector("http://element.test", None, transport=httpx.MockTransport(handler))


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("call", "content", "message"),
    [
        ("info", b"<html>busy</html>", r"answered GET /info with a body that is not JSON"),
        ("info", _json(["cs-1"]), r"answered GET /info with JSON that is not an object"),
        (
            "info",
            _json({k: v for k, v in GOOD_INFO.items() if k != "epoch"}),
            r"answered GET /info with no field 'epoch'",
        ),
        ("info", _json({**GOOD_INFO, "last_seq": "four"}), r"GET /info with a malformed answer"),
        ("info", _json({**GOOD_INFO, "counts": [1, 2]}), r"GET /info with a malformed answer"),
        (
            "info",
            _json({**GOOD_INFO, "notify_sync": "yes"}),
            r"GET /info with a malformed answer: a flag is str",
        ),
        (
            "objects",
            _json({"snapshot": "s", "objects": [{"key": "u1"}], "next": None}),
            r"answered GET /objects/user with no field 'data'",
        ),
        (
            "objects",
            _json({"snapshot": "s", "objects": [{"key": "u1", "data": 7}]}),
            r"GET /objects/user with a malformed answer",
        ),
        (
            "objects",
            _json({"snapshot": "s", "objects": ["u1"]}),
            r"GET /objects/user with a malformed answer",
        ),
        (
            "changes",
            _json({"epoch": "e1", "changes": [GOOD_CHANGE]}),
            r"answered GET /changes with no field 'last_seq'",
        ),
        (
            "changes",
            _json(
                {"epoch": "e1", "last_seq": 5, "changes": [{**GOOD_CHANGE, "time": "yesterday"}]}
            ),
            r"GET /changes with a malformed answer: .*yesterday",
        ),
        (
            "changes",
            _json({"epoch": "e1", "last_seq": 5, "changes": [{**GOOD_CHANGE, "data": ["Ada"]}]}),
            r"GET /changes with a malformed answer: a change's data is list",
        ),
        (
            "changes",
            _json({"epoch": "e1", "last_seq": 5, "changes": [{**GOOD_CHANGE, "notify_sync": 1}]}),
            r"GET /changes with a malformed answer: a flag is int",
        ),
        ("apply", _json({"status": "accepted"}), r"answered POST /updates with no field 'seq'"),
        ("apply", _json({"seq": "next"}), r"POST /updates with a malformed answer"),
    ],
)
def test_a_malformed_answer_is_the_contracts_error(call: str, content: bytes, message: str) -> None:
    """KeyError, TypeError and ValueError of reading a success answer do not escape the
    contract: the engine gets a ConnectorError (MalformedAnswer) naming the request."""

    async def scenario() -> None:
        async with _answering(content) as connector:
            requests: dict[str, Callable[[], Awaitable[object]]] = {
                "info": connector.info,
                "objects": lambda: connector.objects("user"),
                "changes": lambda: connector.changes(0, epoch=None),
                "apply": lambda: connector.apply("user", "u1", "update", {}, user="hub"),
            }
            with pytest.raises(MalformedAnswer, match=message) as info:
                await requests[call]()
            assert isinstance(info.value, ConnectorError)
            assert "element at http://element.test answered" in str(info.value)
            assert info.value.__cause__ is None  # no KeyError chained into the sync's log

    asyncio.run(scenario())


def test_well_formed_answers_still_decode() -> None:
    """The same decoding, fed what Element API v1 promises, returns the contract's models."""

    async def scenario() -> None:
        async with _answering(_json(GOOD_INFO)) as connector:
            info = await connector.info()
            assert (info.element_id, info.epoch, info.last_seq) == ("cs-1", "e1", 4)
            assert info.counts == {"user": 3}
        page = {
            "epoch": "e1",
            "last_seq": 5,
            "changes": [GOOD_CHANGE, {**GOOD_CHANGE, "seq": 6, "op": "delete", "data": None}],
        }
        async with _answering(_json(page)) as connector:
            changes = await connector.changes(4, epoch="e1")
            assert [(c.seq, c.op, c.data) for c in changes.changes] == [
                (5, "update", {"name": "Ada"}),
                (6, "delete", None),
            ]
            assert changes.changes[0].time.utcoffset() is not None

    asyncio.run(scenario())
