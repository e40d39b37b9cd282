"""The hot write routes answered without FastAPI's stack (agent.api.fast_routes) give the
same answers as the FastAPI routes: the same requests, over HTTP on loopback, to the agent's
stack and to the plain FastAPI app, each over its own store with the same clock, compared
status, headers and body byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from agent.alarms.catalog import Catalog
from agent.alarms.manager import AlarmManager
from agent.api.app import create_app
from agent.api.fast_routes import FastRoutes, create_asgi
from agent.api.services import Services
from agent.errors import StoreFencedError
from agent.store.access import StoreAccess
from agent.store.database import Store
from tests.conftest import TOKEN, free_port

MAX_BODY = 64 * 1024


class _Clock:
    """Each call a millisecond later: two managers called alike tell the same times."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class _Side:
    manager: AlarmManager
    port: int
    fenced: threading.Event
    gate: threading.Event


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


async def _exchange(
    port: int, head: str, body: bytes = b"", chunks: list[bytes] | None = None
) -> _Answer:
    """One request on a fresh connection; the answer's headers without ``date``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body)
        for chunk in chunks or ():
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        if chunks is not None:
            writer.write(b"0\r\n\r\n")
        with contextlib.suppress(ConnectionError):  # answered and closed before all is sent
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        headers: list[tuple[str, str]] = []
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = int(dict(headers).get("content-length", "0"))
        content = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    return _Answer(int(status_line.split()[1]), [h for h in headers if h[0] != "date"], content)


def _request(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    token: str | None = TOKEN,
    content_type: str | None = "application/json",
    extra: str = "",
) -> tuple[str, bytes]:
    head = f"{method} {path} HTTP/1.1\nHost: agent\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\n"
    if content_type is not None and body is not None:
        head += f"Content-Type: {content_type}\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\n"
    return head + extra, body or b""


@asynccontextmanager
async def _served(app: Any) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="off", http="httptools"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn has no started event
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def make(name: str) -> Store:
        store = Store(f"sqlite:///{tmp_path / name}.db")
        store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _manager(store: Store, fenced: threading.Event, pending_max: int) -> AlarmManager:
    def guard() -> None:
        if fenced.is_set():
            raise StoreFencedError("the store is fenced: another agent may own it")

    return AlarmManager(
        store.engine, Catalog(), clock=_Clock(), pending_max=pending_max, write_guard=guard
    )


@asynccontextmanager
async def _pair(
    stores: Callable[[str], Store], pending_max: int = 0
) -> AsyncIterator[tuple[_Side, _Side]]:
    """The agent's stack (guard, fast routes, FastAPI) and the FastAPI app as it was
    served before (the guard as its middleware), each on its own store."""
    sides = []
    managers = []
    for name in ("fast", "fastapi"):
        fenced, gate = threading.Event(), threading.Event()
        gate.set()
        store = stores(name)
        manager = _manager(store, fenced, pending_max)
        manager.add_listener(lambda seq, gate=gate: gate.wait(30))
        manager.start()
        managers.append(manager)
        services = Services(
            manager=manager,
            token=TOKEN,
            started_at=datetime(2024, 1, 1, tzinfo=UTC),
            store_url="sqlite://",
            store_id="same",
            store=StoreAccess(store.engine),
            max_body=MAX_BODY,
            max_batch=5,
        )
        app = create_asgi(services) if name == "fast" else create_app(services)
        sides.append((manager, app, fenced, gate))
    try:
        async with _served(sides[0][1]) as fast_port, _served(sides[1][1]) as plain_port:
            yield (
                _Side(sides[0][0], fast_port, sides[0][2], sides[0][3]),
                _Side(sides[1][0], plain_port, sides[1][2], sides[1][3]),
            )
    finally:
        for _, _, _, gate in sides:
            gate.set()
        for manager in managers:
            await asyncio.to_thread(manager.stop)


def _post(path: str, body: Any = None, **options: Any) -> tuple[str, bytes]:
    """A POST; ``body`` as JSON unless it is bytes already."""
    raw = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    return _request("POST", path, raw, **options)


def _head(length: int) -> tuple[str, bytes]:
    """A raise declaring ``length`` bytes, with the good body after it."""
    head = (
        f"POST /api/v1/alarms HTTP/1.1\nHost: a\nAuthorization: Bearer {TOKEN}\n"
        f"Content-Type: application/json\nContent-Length: {length}\n"
    )
    return head, b"" if length > MAX_BODY else json.dumps(GOOD).encode()


GOOD = {"type": "sync-failed", "resource": "r1", "text": "timeout", "by": "ops"}
RAISE = "/api/v1/alarms"
KEY = "/api/v1/alarms/clear"
BATCH = "/api/v1/alarms/batch"
SF = "sync-failed"


def _cases() -> list[tuple[str, tuple[str, bytes]]]:
    odd = {"type": SF, "resource": "r\u00e9\u2713", "text": 'l\u00e0\n\u0001"q"\u2028'}
    ops = [
        {"op": "raise", "type": SF, "resource": "b1"},
        {"op": "raise", "type": "element-unreachable", "resource": "b2", "severity": "critical"},
        {"op": "clear", "id": 424242},
        {"op": "raise", "type": "nope", "resource": "x"},
        {"op": "ack", "id": 1, "note": "seen"},
        {"op": "clear", "id": 424243},  # a refused last one is answered in its place
    ]
    bearer = f"Authorization: bearer {TOKEN}\n"
    spaced = f"Authorization: Bearer  {TOKEN} \n"
    basic = "Authorization: Basic eDp5\n"
    return [
        ("raise", _post(RAISE, GOOD)),
        ("repeat", _post(RAISE, GOOD)),
        ("change", _post(RAISE, {"type": SF, "resource": "r1", "severity": "critical"})),
        ("non-ASCII and control characters", _post(RAISE, odd)),
        ("malformed JSON", _post(RAISE, b"{not json")),
        ("truncated JSON", _post(RAISE, b'{"type": "sync-failed", "res')),
        ("wrong types", _post(RAISE, {"type": 5, "resource": [], "text": None})),
        ("missing field", _post(RAISE, {"type": SF})),
        ("too long", _post(RAISE, {"type": SF, "resource": "x" * 256, "text": "y" * 4097})),
        ("unknown type", _post(RAISE, {"type": "nope", "resource": "x"})),
        ("event type", _post(RAISE, {"type": "test", "resource": "x"})),
        ("severity cleared", _post(RAISE, {"type": SF, "resource": "x", "severity": "cleared"})),
        ("unknown severity", _post(RAISE, {"type": SF, "resource": "x", "severity": "loud"})),
        ("extra field", _post(RAISE, {"type": SF, "resource": "x", "extra": 1})),
        ("empty body", _post(RAISE, b"")),
        ("no body at all", _post(RAISE)),
        ("null body", _post(RAISE, b"null")),
        ("list body", _post(RAISE, b"[1, 2]")),
        ("no content type", _post(RAISE, GOOD, content_type=None)),
        ("text content type", _post(RAISE, GOOD, content_type="text/plain")),
        ("charset", _post(RAISE, {"type": SF, "resource": "cs"}, content_type=JSON_UTF8)),
        ("+json", _post(RAISE, {"type": SF, "resource": "pj"}, content_type=PROBLEM_JSON)),
        ("not UTF-8", _post(RAISE, b'{"type": "sync-failed", "resource": "\xff\xfe"}')),
        ("UTF-16", _post(RAISE, json.dumps({"type": SF, "resource": "u16"}).encode("utf-16"))),
        ("NaN", _post(RAISE, b'{"type": "sync-failed", "resource": "n", "text": NaN}')),
        # Where pydantic's JSON parser and json.loads differ: FastAPI's answer wins.
        ("UTF-8 BOM", _post(RAISE, b"\xef\xbb\xbf" + json.dumps(GOOD).encode())),
        ("trailing data", _post(RAISE, json.dumps(GOOD).encode() + b" x")),
        ("lone surrogate", _post(RAISE, b'{"type": "sync-failed", "resource": "\\ud800"}')),
        (
            "duplicate keys",
            _post(RAISE, b'{"type": "sync-failed", "resource": "a", "resource": "d"}'),
        ),
        ("white space", _post(RAISE, b' \n{"type": "sync-failed", "resource": "ws"}\n ')),
        ("too deep", _post(RAISE, b"[" * 20_000 + b"]" * 20_000)),
        ("no token", _post(RAISE, GOOD, token=None)),
        ("wrong token", _post(RAISE, GOOD, token="wrong")),
        ("basic auth", _post(RAISE, GOOD, token=None, extra=basic)),
        (
            "lower-case scheme",
            _post(RAISE, {"type": SF, "resource": "lc"}, token=None, extra=bearer),
        ),
        ("two spaces", _post(RAISE, {"type": SF, "resource": "2s"}, token=None, extra=spaced)),
        ("declared too large", _head(MAX_BODY + 1)),
        ("shorter content length", _head(10)),
        ("clear by key", _post(KEY, {"type": SF, "resource": "r1", "note": "ok"})),
        ("clear by key, none active", _post(KEY, {"type": SF, "resource": "r1"})),
        ("clear by key, event type", _post(KEY, {"type": "test", "resource": "r1"})),
        ("clear by key, unknown type", _post(KEY, {"type": "nope", "resource": "r1"})),
        ("clear by key, missing", _post(KEY, {"resource": "r1"})),
        ("ack", _post("/api/v1/alarms/2/ack", {"note": "mine", "by": "op"})),
        ("ack without body", _post("/api/v1/alarms/2/ack")),
        ("ack, null body", _post("/api/v1/alarms/2/ack", b"null")),
        ("unack", _post("/api/v1/alarms/2/unack", {})),
        ("ack, unknown id", _post("/api/v1/alarms/424242/ack", {})),
        ("ack, extra field", _post("/api/v1/alarms/2/ack", {"x": 1})),
        ("ack, bad id and body", _post("/api/v1/alarms/zero/ack", {"note": 5})),
        ("ack, id 0", _post("/api/v1/alarms/0/ack", {})),
        ("ack, id 2^63", _post(f"/api/v1/alarms/{2**63}/ack", {})),
        ("ack, bad id and bad JSON", _post("/api/v1/alarms/x/ack", b"{")),
        ("unack, too long note", _post("/api/v1/alarms/2/unack", {"note": "n" * 4097})),
        ("clear by id", _post("/api/v1/alarms/2/clear", {"note": "fixed"})),
        ("clear by id again", _post("/api/v1/alarms/2/clear")),
        ("clear, unknown id", _post("/api/v1/alarms/424242/clear")),
        ("clear, id 'clear'", _post("/api/v1/alarms/clear/clear")),
        ("percent-encoded id", _post("/api/v1/alarms/%33/clear")),
        ("batch", _post(BATCH, {"operations": ops})),
        (
            "batch, ids as text, float, bool",
            _post(
                BATCH,
                {
                    "operations": [
                        {"op": "ack", "id": "2"},
                        {"op": "unack", "id": 2.0},
                        {"op": "ack", "id": True},
                    ]
                },
            ),
        ),
        (
            "batch, bad ids",
            _post(BATCH, {"operations": [{"op": "ack", "id": 2.5}, {"op": "ack", "id": "0x2"}]}),
        ),
        ("batch, too many", _post(BATCH, {"operations": [{"op": "clear", "id": 1}] * 6})),
        ("batch, empty", _post(BATCH, {"operations": []})),
        ("batch, malformed op", _post(BATCH, {"operations": [{"op": "explode"}]})),
        ("batch, both ways", _post(BATCH, {"operations": [{"op": "clear", "id": 1, "type": SF}]})),
        ("batch, wrong key", _post(BATCH, {"ops": []})),
        ("batch, bad JSON", _post(BATCH, b'{"operations": [')),
        ("trailing slash (FastAPI)", _post("/api/v1/alarms/", GOOD)),
        ("list (FastAPI)", _request("GET", "/api/v1/alarms")),
        ("other method (FastAPI)", _request("PUT", RAISE, b"{}")),
        ("unknown action (FastAPI)", _post("/api/v1/alarms/2/explode", {})),
        ("health (FastAPI)", _request("GET", "/api/v1/health", token=None)),
    ]


JSON_UTF8 = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json"


async def _compare(fast: _Side, plain: _Side, cases: list[tuple[str, tuple[str, bytes]]]) -> None:
    for name, (head, body) in cases:
        mine = await _exchange(fast.port, head, body)
        theirs = await _exchange(plain.port, head, body)
        assert mine == theirs, name


def test_the_fast_routes_answer_as_the_fastapi_routes(stores: Callable[[str], Store]) -> None:
    async def scenario() -> None:
        async with _pair(stores) as (fast, plain):
            cases = _cases()
            await _compare(fast, plain, cases)
            # A chunked body over the limit (413) and under it.
            chunked = (
                f"POST /api/v1/alarms HTTP/1.1\nHost: a\nAuthorization: Bearer {TOKEN}\n"
                "Content-Type: application/json\nTransfer-Encoding: chunked\n"
            )
            big = [b"x" * 8192] * 9
            small = [b'{"type": "sync-failed",', b' "resource": "chunked"}']
            for chunks in (big, small):
                mine = await _exchange(fast.port, chunked, chunks=chunks)
                theirs = await _exchange(plain.port, chunked, chunks=chunks)
                assert mine == theirs
            assert mine.status == 200
            # The store fenced: 503 from the manager's guard, through the app's handler.
            fast.fenced.set()
            plain.fenced.set()
            await _compare(fast, plain, [c for c in cases if c[0] in ("raise", "ack", "batch")])
            # Both stores went through the same changes.
            rows = [
                side.manager.engine.connect()
                .exec_driver_sql(
                    "SELECT id, type_id, resource, severity, cleared, count, operator_state,"
                    " raised_at FROM alarms ORDER BY id"
                )
                .all()
                for side in (fast, plain)
            ]
            assert rows[0] == rows[1]
            assert len(rows[0]) >= 5

    asyncio.run(scenario())


def test_overload_is_answered_alike(stores: Callable[[str], Store]) -> None:
    async def scenario() -> None:
        async with _pair(stores, pending_max=2) as (fast, plain):
            for side in (fast, plain):  # the writer stalls after this commit; 1 pending
                side.gate.clear()
                side.manager.submit(side.manager.make_event("test", "first"), bounded=True)
            body = {"type": SF, "resource": "o1"}
            pending = [
                asyncio.ensure_future(_exchange(s.port, *_post(RAISE, body))) for s in (fast, plain)
            ]
            while fast.manager.pending < 2 or plain.manager.pending < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            full = [
                ("raise, full", _post(RAISE, body)),
                ("clear, full", _post("/api/v1/alarms/1/clear")),
                ("batch, full", _post(BATCH, {"operations": [{"op": "clear", "id": 1}]})),
                ("batch, never fits", _post(BATCH, {"operations": [{"op": "clear", "id": 1}] * 3})),
            ]
            await _compare(fast, plain, full)
            for side in (fast, plain):
                side.gate.set()
            mine, theirs = await asyncio.gather(*pending)
            assert mine == theirs
            assert mine.status == 200
            assert fast.manager.refused == plain.manager.refused == 3

    asyncio.run(scenario())


def test_only_the_hot_routes_are_taken() -> None:
    """Built from the FastAPI routes themselves: each hot route found, with its fields."""
    services = Services(
        manager=None,
        token=TOKEN,
        started_at=datetime.now(UTC),  # type: ignore[arg-type]
        store_url="",
        store_id="",
    )
    routes = FastRoutes(create_app(services, guard=False), services)
    assert set(routes._exact) == {"/api/v1/alarms", "/api/v1/alarms/clear", "/api/v1/alarms/batch"}
    assert set(routes._by_id) == {"clear", "ack", "unack"}
