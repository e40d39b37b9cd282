"""The distribution sender during a store outage: one throttled line, a doubling wait, no
traceback, and the distributions go out once the store answers again.

In-process: a real SQLite store, a store read that fails on demand (the outage), and a
fake element connector that records what it is sent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from agent.clock import now
from agent.config import SharingSettings, SyncSettings
from agent.connectors.connections import ElementConnections
from agent.sharing import distribution
from agent.store.access import StoreAccess
from agent.store.database import Store
from agent.store.elements import Credentials, Element
from agent.store.encryption import KeyRing, StoreKey
from agent.store.models import DISTRIBUTIONS, ELEMENTS
from agent.store.shared_data import Change


class FakeConnector:
    def __init__(self) -> None:
        self.applied: list[str] = []

    async def apply(self, cls: str, key: str, op: str, data: Any, *, user: str) -> None:
        self.applied.append(key)

    async def close(self) -> None:
        pass


class Outage:
    """Wraps a store function: while ``down``, each call fails as a lost store would."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.down = False
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            self.calls.append(time.monotonic())
            raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("disk I/O error"))
        return self.real(*args, **kwargs)


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """SQLite only here (conftest's ``store`` runs each test on PostgreSQL as well)."""
    return sqlite_store


@pytest.fixture
def lines() -> Iterator[list[str]]:
    captured: list[str] = []
    sink = logger.add(lambda message: captured.append(str(message)), level="DEBUG")
    yield captured
    logger.remove(sink)


def _element(store: Store, ring: KeyRing) -> Element:
    element = StoreAccess(store.engine).elements.add(
        "cs1",
        "call-server",
        "http://127.0.0.1:9",
        "http",
        0,
        Credentials("admin", "pw"),
        ring=ring,
    )
    with store.engine.begin() as conn:
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element.id).values(sharing=True))
    return element


def _distribute(store: Store, element: Element, *keys: str) -> None:
    changes = [Change("user", key, "create", {"name": key}) for key in keys]
    with store.engine.begin() as conn:
        StoreAccess(store.engine).distributions.add(
            conn, [(element.id, element.name)], changes, "hub", now()
        )


def _states(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            DISTRIBUTIONS.select().with_only_columns(DISTRIBUTIONS.c.key, DISTRIBUTIONS.c.state)
        )
        return {str(row.key): str(row.state) for row in rows}


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.01)


def _dispatcher(
    access: StoreAccess, ring: KeyRing, connector: Any = None, **sharing: Any
) -> distribution.Dispatcher:
    async def settled(element_id: int, name: str) -> None:
        pass

    async def contact(element: Any, error: Any, failures: int) -> None:
        pass

    return distribution.Dispatcher(
        access,
        SharingSettings(**sharing),
        SyncSettings(),
        lambda: "",
        settled,
        contact,
        connections=ElementConnections(
            access, ring, SyncSettings(), lambda *args, **kwargs: connector
        ),
    )


def test_store_outage_is_one_line_with_a_doubling_wait_then_distribution_resumes(
    store: Store, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    element = _element(store, ring)
    connector = FakeConnector()
    access = StoreAccess(store.engine)
    read = Outage(access.elements.by_id)
    monkeypatch.setattr(access.elements, "by_id", read)

    async def scenario() -> None:
        dispatcher = _dispatcher(access, ring, connector, retry_initial="20ms", retry_max="160ms")
        await dispatcher.start()
        try:
            _distribute(store, element, "before")
            dispatcher.wake(element.id)
            await _until(lambda: connector.applied == ["before"], 5, "the first is sent")

            read.down = True
            dispatcher.wake(element.id)
            await _until(lambda: len(read.calls) >= 8, 10, "eight failed rounds")
            _distribute(store, element, "during")
            read.down = False
            await _until(lambda: "during" in connector.applied, 5, "sent after the outage")
            # The outcome is recorded after the send: await it, not the send alone (CI of
            # stop 23 read the state between the two).
            await _until(
                lambda: _states(store).get("during") == "done", 5, "recorded after the outage"
            )
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())
    text = "".join(lines)
    assert "Traceback" not in text
    outage_lines = [line for line in lines if "disk I/O error" in line]
    assert len(outage_lines) == 1, outage_lines
    # The wait doubles from retry_initial up to retry_max: 20, 40, 80, 160, 160... ms.
    gaps = [b - a for a, b in zip(read.calls, read.calls[1:], strict=False)]
    assert gaps[2] > 0.06, gaps
    assert max(gaps) < 1.5, gaps  # capped at retry_max (with room for a loaded machine)
    assert sum(gaps[:7]) > 0.5, gaps
    assert _states(store) == {"before": "done", "during": "done"}


def test_outage_while_recording_a_batch_sends_it_again_afterwards(
    store: Store, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch went out but its outcome could not be written: it must not stay in flight
    (nothing would send it again before a restart); updates are idempotent, so resend."""
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    element = _element(store, ring)
    connector = FakeConnector()
    access = StoreAccess(store.engine)
    settle = Outage(access.distributions.settle)
    monkeypatch.setattr(access.distributions, "settle", settle)

    async def scenario() -> None:
        dispatcher = _dispatcher(access, ring, connector, retry_initial="20ms", retry_max="80ms")
        await dispatcher.start()
        try:
            settle.down = True
            _distribute(store, element, "one", "two")
            dispatcher.wake(element.id)
            await _until(lambda: bool(settle.calls), 5, "the outcome cannot be recorded")
            settle.down = False
            await _until(
                lambda: _states(store) == {"one": "done", "two": "done"},
                5,
                "the batch is sent again and recorded",
            )
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())
    assert connector.applied[:2] == ["one", "two"]
    assert connector.applied.count("one") == 2
    assert "Traceback" not in "".join(lines)


def test_a_bug_keeps_its_traceback(
    store: Store, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    element = _element(store, ring)
    calls: list[float] = []

    def broken(*args: Any) -> Any:
        calls.append(time.monotonic())
        raise KeyError("bug")

    access = StoreAccess(store.engine)
    monkeypatch.setattr(access.elements, "by_id", broken)

    async def scenario() -> None:
        dispatcher = _dispatcher(access, ring, retry_initial="20ms", retry_max="40ms")
        await dispatcher.start()
        try:
            dispatcher.wake(element.id)
            await _until(lambda: len(calls) >= 2, 5, "two rounds")
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())
    assert "Traceback" in "".join(lines)
    assert "KeyError" in "".join(lines)


def test_the_purge_of_applied_distributions_outlives_a_store_outage(
    store: Store, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.alarms.catalog import Catalog
    from agent.alarms.manager import AlarmManager
    from agent.sharing.service import SharingService

    manager = AlarmManager(store.engine, Catalog())
    ring = KeyRing([StoreKey.generate()], Path("test.key"))
    access = StoreAccess(store.engine)
    service = SharingService(
        SharingSettings(), SyncSettings(), manager, access, Path("."), store.identity, ring
    )
    outage = Outage(access.distribution_admin.purge_done)
    monkeypatch.setattr(access.distribution_admin, "purge_done", outage)

    async def rounds() -> list[int]:
        outage.down = True
        failed = [await service.purge_once() for _ in range(5)]
        outage.down = False
        return [*failed, await service.purge_once()]

    # The old loop caught ProvsyncError only: the first outage ended the task for good.
    assert asyncio.run(rounds()) == [0] * 6
    assert len(outage.calls) == 5
    said = [line for line in lines if "distribution purge" in line]
    assert len(said) == 1, said
    assert not any("Traceback" in line for line in lines)
